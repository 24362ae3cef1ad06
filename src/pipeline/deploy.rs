//! What surrounds a deploy: the commands run around the swap and the
//! `_sqlmorph_history` row that records it. The swap itself is the
//! production target's (`crate::target`).

use std::path::Path;

use anyhow::Result;
use rusqlite::Connection;

use crate::config::Options;
use crate::pipeline::plan::Plan;

/// The `_sqlmorph_history` table.
pub const HISTORY_SQL: &str = "CREATE TABLE IF NOT EXISTS _sqlmorph_history(
    id INTEGER PRIMARY KEY,
    deployed_at TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    recipe TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL,
    schema_before TEXT NOT NULL,
    schema_after TEXT NOT NULL,
    row_counts TEXT NOT NULL,
    backup TEXT,
    who TEXT
)";

/// Columns added to `_sqlmorph_history` after its first version: a table
/// from before them gains them (its rows kept, with NULL there).
const HISTORY_ADDED: &[&str] = &["backup", "who"];

/// Who runs this deploy: `$USER@hostname` (`unknown` for what cannot be
/// found).
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_of_this_process)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

/// The name of this process's user in /etc/passwd (when $USER is unset,
/// as under cron or in a container).
fn user_of_this_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
    })
}

/// Adds the columns of [`HISTORY_ADDED`] that the table lacks.
fn upgrade_history(conn: &Connection) -> Result<()> {
    for column in HISTORY_ADDED {
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('_sqlmorph_history') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!(
                "ALTER TABLE _sqlmorph_history ADD COLUMN {column} TEXT"
            ))?;
        }
    }
    Ok(())
}

/// Appends this deploy's row to `_sqlmorph_history` in the migrated file.
pub fn record_history(
    migrated: &Path,
    opts: &Options,
    before: &str,
    after: &str,
    plan: Option<&Plan>,
    backup: Option<&Path>,
) -> Result<()> {
    let conn = Connection::open(migrated)?;
    insert_history(&conn, opts, before, after, plan, backup)?;
    conn.close().map_err(|(_, e)| e)?;
    std::fs::File::open(migrated)?.sync_all()?;
    Ok(())
}

/// Appends this deploy's row to `_sqlmorph_history` through `conn` (the
/// migrated file's, or production's inside the in-place transaction).
pub fn insert_history(
    conn: &Connection,
    opts: &Options,
    before: &str,
    after: &str,
    plan: Option<&Plan>,
    backup: Option<&Path>,
) -> Result<()> {
    conn.execute_batch(HISTORY_SQL)?;
    upgrade_history(conn)?;
    let counts: serde_json::Map<String, serde_json::Value> = plan
        .map(|p| {
            p.tables
                .iter()
                .map(|t| (t.table.clone(), t.rows.into()))
                .collect()
        })
        .unwrap_or_default();
    conn.execute(
        "INSERT INTO _sqlmorph_history(deployed_at, tool_version, recipe, recipe_sha256, schema_before, schema_after, row_counts, backup, who)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        rusqlite::params![
            chrono::Local::now().to_rfc3339(),
            env!("CARGO_PKG_VERSION"),
            opts.recipe_name,
            opts.recipe_hash,
            before,
            after,
            serde_json::Value::Object(counts).to_string(),
            backup.map(|p| p.display().to_string()),
            who()
        ],
    )?;
    Ok(())
}
