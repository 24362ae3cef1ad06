//! sqlmorph: database-first SQLite migrations, scripted in Rhai.
//!
//! The binary is a thin shell over this library; the library has no semver
//! promise of its own.

pub mod backup;
pub mod check;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod copy;
pub mod db;
pub mod deploy;
pub mod diff;
pub mod error;
pub mod host;
pub mod indexcheck;
pub mod log;
pub mod plan;
pub mod progress;
pub mod prompt;
pub mod recipe;
pub mod reference;
pub mod repl;
pub mod rollback;
pub mod run;
pub mod schema;
pub mod sqltext;
pub mod style;
pub mod target;
pub mod validate;
