//! Backup files: consistent copies made with SQLite's online backup API
//! (0600, through a `.partial` file, fsynced), their names, their
//! `quick_check`, and the listing `sqlmorph backups` prints. Production is
//! copied through `crate::target`, which also keeps the compare-and-swap
//! baseline of each copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::db;

/// Checks a copy with `quick_check` (abandoned when a signal comes).
pub fn quick_check(path: &Path) -> Result<()> {
    quick_check_open(db::open_readonly(path)?, path)
}

/// [`quick_check`] on a connection already open to `path` (which may be
/// renamed meanwhile).
pub fn quick_check_open(mut conn: rusqlite::Connection, path: &Path) -> Result<()> {
    crate::interrupt::watch(&mut conn)?;
    let msg: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if msg != "ok" {
        bail!("{} failed quick_check: {msg}", path.display());
    }
    Ok(())
}

/// `<backup_dir>/<stem>_backup_<YYYYMMDD_HHMMSS>.sqlite3`, with a counter
/// appended when that name is taken.
pub fn backup_path(production: &Path, backup_dir: &Path, stamp: &str) -> PathBuf {
    let stem = production.file_stem().map_or_else(
        || "production".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut p = backup_dir.join(format!("{stem}_backup_{stamp}.sqlite3"));
    let mut n = 2;
    while p.exists() {
        p = backup_dir.join(format!("{stem}_backup_{stamp}_{n}.sqlite3"));
        n += 1;
    }
    p
}

/// A stamp's local time (backup names are in local time) as RFC 3339 with
/// its offset, e.g. `2026-12-01T02:10:00+01:00`.
fn rfc3339_local(t: &chrono::NaiveDateTime) -> String {
    use chrono::TimeZone;
    chrono::Local.from_local_datetime(t).earliest().map_or_else(
        || t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        |l| l.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    )
}

/// One backup file.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    pub path: PathBuf,
    /// When it was taken: RFC 3339 with the offset.
    pub time: String,
    pub bytes: u64,
    pub schema_hash: Option<String>,
}

/// Backups in a directory, newest first.
pub fn list(backup_dir: &Path) -> Result<Vec<BackupInfo>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(backup_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", backup_dir.display())),
    };
    for e in entries {
        let path = e?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(pos) = name.find("_backup_") else {
            continue;
        };
        if !name.ends_with(".sqlite3") {
            continue;
        }
        let stamp = &name[pos + 8..name.len() - 8];
        let time =
            chrono::NaiveDateTime::parse_from_str(&stamp[..stamp.len().min(15)], "%Y%m%d_%H%M%S")
                .map_or_else(|_| stamp.to_string(), |t| rfc3339_local(&t));
        let bytes = std::fs::metadata(&path)?.len();
        let schema_hash = crate::schema::Schema::load(&path)
            .ok()
            .map(|s| s.hash()[..12].to_string());
        out.push(BackupInfo {
            path,
            time,
            bytes,
            schema_hash,
        });
    }
    out.sort_by(|a, b| b.path.file_name().cmp(&a.path.file_name()));
    Ok(out)
}
