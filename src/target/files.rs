//! Consistent copies of SQLite files, made by SQLite's online backup API
//! (0600, through a `.partial` file, fsynced, renamed), and the names and
//! hashes of a database's files.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, MAIN_DB};
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
pub fn backup_api_copy(conn: &Connection, src: &Path, dest: &Path) -> Result<()> {
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
