//! Backups and snapshots of production, and its fingerprint.
//!
//! Both copies use SQLite's online backup API, which gives a consistent copy
//! even while the application writes (and in WAL mode). The fingerprint is
//! the SHA-256 of the database file and its `-wal`; it is taken before and
//! after a copy (a change in between means a write raced the copy, and the
//! copy is retried) and again at the swap, so that a write that reached
//! production after the snapshot is detected, never overwritten.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, MAIN_DB, OpenFlags};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db;

/// The content fingerprint of a local database file and its WAL: XXH3-128
/// of the file, then `-wal` and the WAL's bytes when a WAL exists. It is only
/// ever compared with another fingerprint of the same file taken the same
/// way, so a fast non-cryptographic hash is enough (a remote production is
/// fingerprinted with `sha256sum` on its host instead).
pub fn fingerprint(path: &Path) -> Result<String> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    hash_file(path, |b| h.update(b))?;
    let wal = wal_path(path);
    if wal.exists() {
        h.update(b"-wal");
        hash_file(&wal, |b| h.update(b))?;
    }
    Ok(format!("{:032x}", h.digest128()))
}

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

/// Moves a WAL database's committed pages into the main file and empties
/// the `-wal`, so that the file alone holds the content. Logical content is
/// unchanged. A database not in WAL mode is left alone.
pub fn checkpoint(path: &Path) -> Result<()> {
    if !wal_path(path).exists() {
        return Ok(());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if busy != 0 {
            bail!(
                "{} is busy: the WAL checkpoint could not finish",
                path.display()
            );
        }
    }
    Ok(())
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

/// Copies production to `dest` so that the copy matches a fingerprint: the
/// fingerprint is taken before and after the copy, and the copy is retried
/// (up to three times) when a write came in between. Returns the fingerprint.
pub fn copy_with_fingerprint(src: &Path, dest: &Path) -> Result<String> {
    for _ in 0..3 {
        checkpoint(src)?;
        let before = fingerprint(src)?;
        copy_consistent(src, dest)?;
        if fingerprint(src)? == before {
            return Ok(before);
        }
    }
    bail!(
        "{} kept changing while it was being copied (3 tries); stop the writers or try again",
        src.display()
    )
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

/// Makes a timestamped, quick-checked backup of a local database.
pub fn backup(production: &Path, backup_dir: &Path, stamp: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(backup_dir)
        .with_context(|| format!("creating the backup directory {}", backup_dir.display()))?;
    let dest = backup_path(production, backup_dir, stamp);
    copy_consistent(production, &dest)?;
    quick_check(&dest)?;
    Ok(dest)
}

/// Like [`backup`] without the final `quick_check` (the caller runs it, so
/// that it can overlap other work), and returns the fingerprint of
/// production that the backup matches (so the run's snapshot can be the
/// backup itself).
pub fn backup_with_fingerprint(
    production: &Path,
    backup_dir: &Path,
    stamp: &str,
) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(backup_dir)
        .with_context(|| format!("creating the backup directory {}", backup_dir.display()))?;
    let dest = backup_path(production, backup_dir, stamp);
    let fingerprint = copy_with_fingerprint(production, &dest)?;
    Ok((dest, fingerprint))
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

/// Opens a connection that guards production during the swap: its write
/// lock keeps other writers out between the last fingerprint and the rename.
pub fn lock_for_swap(production: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        production,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} to lock it", production.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("BEGIN IMMEDIATE").with_context(|| {
        format!(
            "locking {} (another process holds a write lock)",
            production.display()
        )
    })?;
    Ok(conn)
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
