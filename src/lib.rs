//! sqlmorph: database-first SQLite migrations, scripted in Rhai.
//!
//! The binary is a thin shell over this library; the library has no semver
//! promise of its own.

pub mod check;
pub mod cli;
pub mod db;
pub mod diff;
pub mod error;
pub mod schema;
pub mod sqltext;
pub mod style;
