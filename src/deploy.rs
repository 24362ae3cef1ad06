//! Deploying the migrated file: the one place that writes production.
//!
//! Local swap: production is locked against writers, its fingerprint must
//! still equal the snapshot's (compare-and-swap: a write that came in since
//! the snapshot aborts the deploy, exit 3, production untouched), the old
//! file is kept as `<db>.sqlmorph-prev`, the new file is renamed over
//! production (atomic on one filesystem) and the directory is fsynced. The
//! configured `restart` and `health_check` commands run afterwards; if either
//! fails, the previous file is put back, `restart` runs again, and the deploy
//! reports failure (exit 4).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::backup;
use crate::error::{aborted, deploy_failed};
use crate::plan::Plan;
use crate::run::{Log, Options};

/// Commands run around the swap (from `sqlmorph.toml` or the recipe).
#[derive(Debug, Clone, Default)]
pub struct Commands {
    pub stop: Option<String>,
    pub restart: Option<String>,
    pub health_check: Option<String>,
}

/// `<db>.sqlmorph-prev`
pub fn prev_path(production: &Path) -> PathBuf {
    let mut s = production.as_os_str().to_owned();
    s.push(".sqlmorph-prev");
    PathBuf::from(s)
}

fn staged_path(production: &Path) -> PathBuf {
    let name = production
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    production.with_file_name(format!(".{name}.sqlmorph-new"))
}

/// The `_sqlmorph_history` table.
pub const HISTORY_SQL: &str = "CREATE TABLE IF NOT EXISTS _sqlmorph_history(
    id INTEGER PRIMARY KEY,
    deployed_at TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    recipe TEXT NOT NULL,
    recipe_sha256 TEXT NOT NULL,
    schema_before TEXT NOT NULL,
    schema_after TEXT NOT NULL,
    row_counts TEXT NOT NULL
)";

/// Appends this deploy's row to `_sqlmorph_history` in the migrated file.
pub fn record_history(
    migrated: &Path,
    opts: &Options,
    before: &str,
    after: &str,
    plan: Option<&Plan>,
) -> Result<()> {
    let conn = Connection::open(migrated)?;
    conn.execute_batch(HISTORY_SQL)?;
    let counts: serde_json::Map<String, serde_json::Value> = plan
        .map(|p| {
            p.tables
                .iter()
                .map(|t| (t.table.clone(), t.rows.into()))
                .collect()
        })
        .unwrap_or_default();
    conn.execute(
        "INSERT INTO _sqlmorph_history(deployed_at, tool_version, recipe, recipe_sha256, schema_before, schema_after, row_counts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            chrono::Local::now().to_rfc3339(),
            env!("CARGO_PKG_VERSION"),
            opts.recipe_name,
            opts.recipe_hash,
            before,
            after,
            serde_json::Value::Object(counts).to_string()
        ],
    )?;
    conn.close().map_err(|(_, e)| e)?;
    std::fs::File::open(migrated)?.sync_all()?;
    Ok(())
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Runs a configured command through `sh -c`; its output goes to the log.
pub fn run_command(what: &str, command: &str, log: &mut Log) -> Result<()> {
    log.line(&format!("  {what}: {command}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .with_context(|| format!("starting the {what} command"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.trim().is_empty() {
        log.quiet(text.trim_end());
    }
    if out.status.success() {
        Ok(())
    } else {
        anyhow::bail!(
            "the {what} command `{command}` failed ({}): {}",
            out.status,
            text.trim()
        )
    }
}

fn given(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.trim().is_empty())
}

/// Swaps `migrated` into `production` if production still has
/// `fingerprint`. Returns a note on what ran after the swap.
pub fn swap_local(
    production: &Path,
    migrated: &Path,
    fingerprint: &str,
    commands: &Commands,
    log: &mut Log,
) -> Result<String> {
    crate::db::check_sqlite_file(production)?;
    let staged = staged_path(production);
    let _ = std::fs::remove_file(&staged);
    let moved = std::fs::rename(migrated, &staged).is_ok();
    if !moved {
        std::fs::copy(migrated, &staged)
            .with_context(|| format!("copying the migrated file to {}", staged.display()))?;
        std::fs::File::open(&staged)?.sync_all()?;
    }
    let result = compare_and_swap(production, &staged, fingerprint, commands, log);
    if result.is_err() && moved && staged.exists() {
        // Not deployed: the migrated file goes back to the run directory.
        let _ = std::fs::rename(&staged, migrated);
    }
    let _ = std::fs::remove_file(&staged);
    result
}

fn compare_and_swap(
    production: &Path,
    staged: &Path,
    fingerprint: &str,
    commands: &Commands,
    log: &mut Log,
) -> Result<String> {
    if let Some(stop) = given(&commands.stop) {
        run_command("stop", stop, log)?;
    }
    backup::checkpoint(production)?;
    let lock = backup::lock_for_swap(production)?;
    let now = backup::fingerprint(production)?;
    if now != fingerprint {
        drop(lock);
        return Err(aborted(format!(
            "production ({}) changed after the snapshot was taken: a write reached it during the migration. \
             Nothing was changed; rerun sqlmorph to migrate the current data",
            production.display()
        )));
    }
    let prev = prev_path(production);
    let _ = std::fs::remove_file(&prev);
    std::fs::hard_link(production, &prev)
        .or_else(|_| std::fs::copy(production, &prev).map(|_| ()))
        .with_context(|| format!("keeping the previous file as {}", prev.display()))?;
    std::fs::rename(staged, production)
        .with_context(|| format!("renaming the new file over {}", production.display()))?;
    sync_dir(production)?;
    drop(lock);

    let mut note = String::new();
    let after = given(&commands.restart)
        .map(|c| run_command("restart", c, log))
        .transpose()
        .and_then(|_| {
            given(&commands.health_check)
                .map(|c| run_command("health_check", c, log))
                .transpose()
        });
    if let Err(e) = after {
        std::fs::rename(&prev, production).with_context(|| {
            format!("restoring {} from {}", production.display(), prev.display())
        })?;
        sync_dir(production)?;
        let again = given(&commands.restart).map(|c| run_command("restart", c, log));
        return Err(deploy_failed(format!(
            "{e:#}\nthe previous database was restored to {}{}",
            production.display(),
            match again {
                Some(Err(e2)) => format!(" but restarting again failed too: {e2:#}"),
                Some(Ok(())) => " and the service restarted".to_string(),
                None => String::new(),
            }
        )));
    }
    // A local deploy keeps its previous file only until the service is back;
    // the timestamped backup is the lasting copy.
    let _ = std::fs::remove_file(&prev);
    if given(&commands.restart).is_some() {
        note.push_str("; restarted");
    }
    if given(&commands.health_check).is_some() {
        note.push_str("; health check passed");
    }
    Ok(note)
}
