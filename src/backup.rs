//! Backup files: consistent copies made with SQLite's online backup API
//! (0600, through a `.partial` file, fsynced), their names, their
//! `quick_check`, and the listing `sqlmorph backups` prints. Production is
//! copied through `crate::target`, which also keeps the compare-and-swap
//! baseline of each copy.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, MAIN_DB};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db;

/// Feeds a file to `update` in 1 MiB pieces.
fn hash_file(path: &Path, mut update: impl FnMut(&[u8])) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}

/// `<db>-wal`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Copies `src` (read-only) to `dest` with the online backup API. `dest` is
/// created with mode 0600 before SQLite writes to it.
pub fn copy_consistent(src: &Path, dest: &Path) -> Result<()> {
    backup_api_copy(&db::open_readonly(src)?, src, dest)
}

/// The online backup of `conn`'s main database (which is `src`) into `dest`,
/// through a 0600 temporary file renamed when complete and fsynced.
pub(crate) fn backup_api_copy(conn: &Connection, src: &Path, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    conn.backup(MAIN_DB, &tmp, None::<fn(rusqlite::backup::Progress)>)
        .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Checks a copy with `quick_check`.
pub fn quick_check(path: &Path) -> Result<()> {
    let conn = db::open_readonly(path)?;
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

/// One backup file.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    pub path: PathBuf,
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
                .map_or_else(
                    |_| stamp.to_string(),
                    |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
                );
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

/// `<db>-shm`.
pub fn shm_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// SHA-256 of one file (hex).
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    hash_file(path, |b| h.update(b))?;
    Ok(hex::encode(h.finalize()))
}

/// Like [`copy_consistent`], but opens the source read-write so that a WAL
/// file beside it is applied (a database and WAL downloaded together).
pub fn copy_consistent_rw(src: &Path, dest: &Path) -> Result<()> {
    backup_api_copy(&db::open_rw(src)?, src, dest)
}
