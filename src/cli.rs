//! The command line: clap definitions (their doc comments are the help text)
//! and the dispatch to the library. Nothing here touches a database directly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::diff;
use crate::schema::Schema;
use crate::style::Style;

/// Database-first SQLite migrations, scripted in Rhai.
///
/// Change your schema in a schema database (or a .sql file); sqlmorph takes
/// production from where it is to that schema: backup, snapshot, diff, review,
/// build a fresh file, copy the data, validate, then swap it in atomically.
///
/// Exit codes: 0 success (for `diff`: no difference), 1 `diff` found
/// differences or `check` found problems, 2 usage or input error, 3 aborted
/// (declined, not allowed, validation failed, production changed meanwhile),
/// 4 deploy failed and was rolled back.
#[derive(Debug, Parser)]
#[command(name = "sqlmorph", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the normalized schema of a database or .sql file.
    ///
    /// The SQL form is deterministic and re-executable into an empty database.
    Schema {
        /// A SQLite file or a .sql file of DDL.
        db: PathBuf,
        #[arg(long, value_enum, default_value_t = SchemaFormat::Sql)]
        format: SchemaFormat,
    },
    /// Compare two schemas: what changes from FROM to TO.
    ///
    /// Formatting (whitespace, comments, quoting, keyword case) is not a
    /// change. Exit 0 when identical, 1 when different, 2 on error.
    Diff {
        /// The current schema (e.g. production): a SQLite file or .sql file.
        from: PathBuf,
        /// The desired schema: a SQLite file or .sql file.
        to: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run SQLite's integrity_check and foreign_key_check on a database.
    ///
    /// Exit 0 when clean, 1 when problems were found, 2 on error.
    Check {
        /// The SQLite file to check (opened read-only).
        db: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Output format of `schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    Sql,
    Json,
}

/// Runs a parsed command line. `Ok` carries the exit code of a command that
/// completed (0, or 1 for "differences/problems found").
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Schema { db, format } => {
            let schema = Schema::load(&db)?;
            let text = match format {
                SchemaFormat::Sql => schema.to_sql(),
                SchemaFormat::Json => serde_json::to_string_pretty(&schema)? + "\n",
            };
            print(&text)?;
            Ok(0)
        }
        Command::Diff { from, to, format } => {
            let a = Schema::load(&from)?;
            let b = Schema::load(&to)?;
            let d = diff::diff(&a, &b);
            let text = match format {
                Format::Text => diff::render_text(&d, Style::stdout()),
                Format::Json => {
                    serde_json::to_string_pretty(&serde_json::json!({
                        "from": from,
                        "to": to,
                        "identical": d.is_empty(),
                        "changes": d.changes,
                    }))? + "\n"
                }
            };
            print(&text)?;
            Ok(u8::from(!d.is_empty()))
        }
        Command::Check { db, format } => {
            let conn = crate::db::open_readonly(&db)?;
            let health = crate::check::health(&conn, false).map_err(|e| {
                match e.downcast_ref::<rusqlite::Error>() {
                    Some(sqlite) => crate::db::corrupt(&db, sqlite),
                    None => e,
                }
            })?;
            let text = match format {
                Format::Text => format!("{}\n{}", db.display(), health.render()),
                Format::Json => serde_json::to_string_pretty(&health)? + "\n",
            };
            print(&text)?;
            Ok(u8::from(!health.is_clean()))
        }
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
