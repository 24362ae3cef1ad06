//! sqlmorph: database-first SQLite migrations, scripted in Rhai.
//!
//! The folders are the layers, each using only those listed before it:
//! settings and output (`config`, `log`, `private`, `style`, `term`, `progress`,
//! `error`, `interrupt`); the
//! schema model (`db`, `vfs`, `inflight`, `overlay`, `sqltext`, `schema`, `diff`); the production target
//! (`target`: a local file or hosts over SSH, one seam); the migration
//! pipeline (`pipeline`: session, plan, review, copy, validate, transform,
//! deploy — free of Rhai, used by the CLI, recipes and the REPL alike); the
//! script host (`script`: engine, values, primitives); and the front ends
//! (`cli`, `manual`, `repl`). The binary is a thin shell over this library; the
//! library has no semver promise of its own.

pub mod config;
pub mod config_file;
pub mod error;
pub mod interrupt;
pub mod log;
pub mod private;
pub mod progress;
pub mod sshconf;
pub mod style;
pub mod term;

pub mod db;
pub mod diff;
pub mod inflight;
pub mod overlay;
pub mod renames;
pub mod schema;
pub mod sqlscript;
pub mod sqltext;
pub mod vfs;

pub mod target;

pub mod pipeline;

pub mod output;

pub mod script;

pub mod cli;
pub mod manual;
pub mod prune;
pub mod repl;
pub mod test_cmd;
