//! Consistent copies of SQLite files, made by SQLite's online backup API or,
//! when no writer can touch the file, by the kernel (0600, through an
//! unpredictably named `.partial` file, fsynced, renamed), and the names and
//! hashes of a database's files.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
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

/// The online backup of `conn`'s main database (which is `src`) into `dest`
/// (see [`write_durably`]).
pub fn backup_api_copy(conn: &Connection, src: &Path, dest: &Path) -> Result<()> {
    write_durably(src, dest, |tmp| {
        conn.backup(MAIN_DB, tmp, None::<fn(rusqlite::backup::Progress)>)
            .map_err(anyhow::Error::new)
    })
}

/// The first `len` bytes of `src` copied into `dest` by the kernel
/// (`copy_file_range`, no page-by-page round trip through SQLite); see
/// [`write_durably`]. Consistent only while nothing can write `src`: the
/// caller holds a read transaction on a rollback-journal database, whose
/// SHARED lock keeps every writer out of the file.
pub fn raw_copy(src: &Path, len: u64, dest: &Path) -> Result<()> {
    write_durably(src, dest, |tmp| {
        let (mut from, mut to) = (File::open(src)?, OpenOptions::new().write(true).open(tmp)?);
        let label = dest
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let bar = crate::progress::bytes_bar(crate::progress::enabled(), &label, len);
        let mut copied = 0;
        while copied < len {
            let n = std::io::copy(&mut (&mut from).take(RAW_CHUNK.min(len - copied)), &mut to)?;
            if n == 0 {
                anyhow::bail!("{} ended after {copied} of {len} bytes", src.display());
            }
            copied += n;
            if let Some(bar) = &bar {
                bar.set_position(copied);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    })
}

/// What [`raw_copy`] hands the kernel at a time (its progress bar moves
/// between pieces).
const RAW_CHUNK: u64 = 64 << 20;

/// Writes a copy of `src` to `dest` with `write` (given the temporary
/// path) through a temporary file beside `dest`
/// (`.sqlmorph-<pid>-<random>.partial`, so that a later run can tell a
/// killed run's leftover; created with `O_EXCL` and mode 0600), fsynced,
/// then renamed over `dest`. A failed copy leaves nothing behind.
fn write_durably(src: &Path, dest: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".sqlmorph-{}-", std::process::id()))
        .suffix(".partial")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                crate::error::no_space(dir, e)
            } else {
                anyhow::Error::new(e)
                    .context(format!("creating a temporary file in {}", dir.display()))
            }
        })?;
    let copied = write(tmp.path()).and_then(|()| Ok(tmp.as_file().sync_all()?));
    if let Err(e) = copied {
        return Err(if crate::error::is_disk_full(&e) {
            crate::error::no_space(dir, e)
        } else {
            e.context(format!("copying {} to {}", src.display(), dest.display()))
        });
    }
    tmp.persist(dest)
        .with_context(|| format!("renaming the copy to {}", dest.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_raw_copy_over_several_pieces_is_the_first_len_bytes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        let f = File::create(&src).unwrap();
        let size = 2 * RAW_CHUNK + 12345;
        f.set_len(size).unwrap();
        // Marks at the start, on both piece boundaries, and near the end.
        let marks = [0, RAW_CHUNK - 1, RAW_CHUNK, 2 * RAW_CHUNK, size - 6];
        for (i, &at) in marks.iter().enumerate() {
            f.write_all_at(&[i as u8 + 1], at).unwrap();
        }
        drop(f);
        raw_copy(&src, size - 5, &dest).unwrap();
        let copy = File::open(&dest).unwrap();
        assert_eq!(copy.metadata().unwrap().len(), size - 5);
        for (i, &at) in marks.iter().enumerate() {
            let mut b = [0u8];
            copy.read_exact_at(&mut b, at).unwrap();
            assert_eq!(b[0], i as u8 + 1, "byte at {at}");
        }
    }

    #[test]
    fn a_raw_copy_of_a_file_shorter_than_asked_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::write(&src, b"short").unwrap();
        let err = raw_copy(&src, 100, &dest).unwrap_err();
        assert!(
            format!("{err:#}").contains("ended after 5 of 100 bytes"),
            "{err:#}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only src"
        );
    }
}
