//! `sqlmorph status` and `history`: production's schema against the
//! source, the deploys recorded in its `_sqlmorph_history`, and the backups
//! on hand. Production is only read, in one consistent read (over SSH: of
//! the copy the agent makes), through the `Production` seam.

use std::path::PathBuf;

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;

use crate::config::Options;
use crate::diff::{self, SchemaDiff};
use crate::pipeline::backup::{self, BackupInfo};
use crate::schema::Schema;
use crate::target::{Access, Production};

/// One row of `_sqlmorph_history`.
#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub id: i64,
    /// RFC 3339 with the offset of the machine that ran it.
    pub deployed_at: String,
    pub tool_version: String,
    pub recipe: String,
    pub recipe_sha256: String,
    pub schema_before: String,
    pub schema_after: String,
    /// `$USER@hostname`; null for deploys recorded before the column.
    pub who: Option<String>,
    /// The backup taken before it; null when none was recorded.
    pub backup: Option<String>,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Production as given (credentials never appear in an ssh:// URL).
    pub production: String,
    pub schema_hash: String,
    /// The source, when one is configured.
    pub source: Option<PathBuf>,
    /// `in_sync`, `drift`, or `unknown` (no source).
    pub state: &'static str,
    /// From production to the source (the same array as `diff`).
    pub changes: Vec<diff::Change>,
    /// Oldest first.
    pub deploys: Vec<Deploy>,
    pub backup_dir: PathBuf,
    /// Newest first.
    pub backups: Vec<BackupInfo>,
}

/// The deploys recorded in `conn`'s `_sqlmorph_history`, oldest first
/// (none when the table is missing); columns added later may be absent.
pub fn history(conn: &Connection) -> Result<Vec<Deploy>> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('_sqlmorph_history')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let optional = |c: &str| {
        if columns.iter().any(|n| n == c) {
            c.to_string()
        } else {
            "NULL".to_string()
        }
    };
    let sql = format!(
        "SELECT id, deployed_at, tool_version, recipe, recipe_sha256, schema_before, schema_after, {}, {}
         FROM _sqlmorph_history ORDER BY id",
        optional("who"),
        optional("backup")
    );
    let rows = conn
        .prepare(&sql)?
        .query_map([], |r| {
            Ok(Deploy {
                id: r.get(0)?,
                deployed_at: r.get(1)?,
                tool_version: r.get(2)?,
                recipe: r.get(3)?,
                recipe_sha256: r.get(4)?,
                schema_before: r.get(5)?,
                schema_after: r.get(6)?,
                who: r.get(7)?,
                backup: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Production's schema and history, read consistently (read-only).
pub fn read_production(opts: &Options) -> Result<(Schema, Vec<Deploy>)> {
    let mut prod = Production::new(opts, Access::ReadOnly);
    let mut log = crate::log::Log::console(true);
    prod.with_reader(&mut log, |conn| {
        Ok((Schema::read(conn, "main")?, history(conn)?))
    })
}

/// Production against the source (when `opts.source` is set), its
/// history, and the backups in `opts.backup_dir`.
pub fn status(opts: &Options) -> Result<Status> {
    let (schema, deploys) = read_production(opts)?;
    let has_source = !opts.source.as_os_str().is_empty();
    let d = if has_source {
        diff::diff(&schema, &crate::pipeline::session::load_source(opts)?)
    } else {
        SchemaDiff::default()
    };
    let state = match (has_source, d.is_empty()) {
        (false, _) => "unknown",
        (true, true) => "in_sync",
        (true, false) => "drift",
    };
    Ok(Status {
        production: crate::sshconf::redact(&opts.production.display().to_string()),
        schema_hash: schema.hash(),
        source: has_source.then(|| opts.source.clone()),
        state,
        changes: d.changes,
        deploys,
        backup_dir: opts.backup_dir.clone(),
        backups: backup::list(&opts.backup_dir)?,
    })
}
