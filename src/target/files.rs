//! Consistent copies of SQLite files, made by SQLite's online backup API or,
//! when no writer can touch the file, by the kernel (0600, through an
//! unpredictably named `.partial` file, fsynced, renamed), and the names and
//! hashes of a database's files.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use rusqlite::backup::Progress;
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
    copy_consistent_unsynced(src, dest, &mut |_| {})?.persist()
}

/// [`copy_consistent`], not yet synced nor renamed into place.
pub fn copy_consistent_unsynced(
    src: &Path,
    dest: &Path,
    while_copying: WhileCopying,
) -> Result<Unsynced> {
    backup_api_unsynced(&db::open_readonly(src)?, src, dest, while_copying)
}

/// Called once with a copy's temporary file as soon as that can be opened
/// with [`crate::inflight::open_readonly`]: before its first byte for a
/// raw copy (its readers wait for the pieces they read), once it is
/// complete otherwise.
pub type WhileCopying<'a> = &'a mut dyn FnMut(&Path);

/// The online backup of `conn`'s main database (which is `src`) into `dest`
/// (through a temporary file, synced and renamed: see [`write_unsynced`]).
/// With a progress bar (bytes: pages × page size) at a terminal.
pub fn backup_api_copy(conn: &Connection, src: &Path, dest: &Path) -> Result<()> {
    backup_api_unsynced(conn, src, dest, &mut |_| {})?.persist()
}

/// [`backup_api_copy`], not yet synced nor renamed into place. SQLite
/// writes the copy through its own pager, not front to back, so it is
/// handed to `while_copying` once complete.
pub fn backup_api_unsynced(
    conn: &Connection,
    src: &Path,
    dest: &Path,
    while_copying: WhileCopying,
) -> Result<Unsynced> {
    write_unsynced(src, dest, |tmp| {
        let bar = crate::progress::bytes_bar(crate::progress::enabled(), &label(dest), 0);
        backup_into(conn, tmp, bar.as_ref(), &|| ())?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        while_copying(tmp);
        Ok(())
    })
}

/// The backup itself: rusqlite's `Connection::backup` (100 pages a step;
/// inside the caller's read transaction, if any, every step reads the same
/// snapshot), moving `bar` and calling `after_step` after each step.
fn backup_into(
    conn: &Connection,
    to: &Path,
    bar: Option<&ProgressBar>,
    after_step: &dyn Fn(),
) -> Result<()> {
    let page_size: i64 = conn.query_row("PRAGMA main.page_size", [], |r| r.get(0))?;
    let page_size = page_size.max(0) as u64;
    let step = |p: Progress| {
        if let Some(bar) = bar {
            let (total, left) = (p.pagecount.max(0) as u64, p.remaining.max(0) as u64);
            bar.set_length(total * page_size);
            bar.set_position((total - left.min(total)) * page_size);
        }
        after_step();
    };
    Ok(conn.backup(MAIN_DB, to, Some(step))?)
}

/// The name a copy's progress bar shows: the file's.
fn label(dest: &Path) -> String {
    dest.file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
}

/// The first `len` bytes of `src` copied into `dest` by the kernel
/// (`copy_file_range`, no page-by-page round trip through SQLite); see
/// [`write_unsynced`]. Consistent only while nothing can write `src`: the
/// caller holds a read transaction on a rollback-journal database, whose
/// SHARED lock keeps every writer out of the file.
pub fn raw_copy(src: &Path, len: u64, dest: &Path) -> Result<()> {
    raw_copy_unsynced(src, len, dest, &mut |_| {})?.persist()
}

/// [`raw_copy`], not yet synced nor renamed into place: the caller can let
/// go of its read transaction first (syncing a large file takes longer
/// than copying it into the page cache). The copy is handed to
/// `while_copying` before its first byte and written in pieces, in the
/// order its readers need them ([`crate::inflight::Feed`]).
pub fn raw_copy_unsynced(
    src: &Path,
    len: u64,
    dest: &Path,
    while_copying: WhileCopying,
) -> Result<Unsynced> {
    write_unsynced(src, dest, |tmp| {
        let (mut from, mut to) = (File::open(src)?, OpenOptions::new().write(true).open(tmp)?);
        let mut feed = crate::inflight::Feed::start(tmp, len, RAW_CHUNK)?;
        while_copying(tmp);
        let bar = crate::progress::bytes_bar(crate::progress::enabled(), &label(dest), len);
        while let Some((at, want)) = feed.next_piece() {
            from.seek(SeekFrom::Start(at))?;
            to.seek(SeekFrom::Start(at))?;
            let n = std::io::copy(&mut (&mut from).take(want), &mut to)?;
            if n < want {
                let size = from.metadata()?.len();
                anyhow::bail!("{} ended after {size} of {len} bytes", src.display());
            }
            feed.written(at);
            if let Some(bar) = &bar {
                bar.inc(want);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(())
    })
}

/// What [`raw_copy`] hands the kernel at a time (its progress bar, and
/// the readers of the copy in progress, move on between pieces).
const RAW_CHUNK: u64 = 4 << 20;

/// A copy in its temporary file beside its destination, complete in the
/// page cache but neither synced nor named yet ([`Unsynced::persist`]
/// does both). Dropped unpersisted, the temporary file is removed.
pub struct Unsynced {
    tmp: tempfile::NamedTempFile,
    src: PathBuf,
    dest: PathBuf,
}

impl Unsynced {
    /// The temporary file (the inode the destination will name).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Where [`Unsynced::persist`] puts it.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs the copy, renames it over its destination and syncs the
    /// directory, so that the name survives a crash with the content.
    pub fn persist(self) -> Result<()> {
        let dir = parent_dir(&self.dest).to_path_buf();
        if let Err(e) = self.tmp.as_file().sync_all() {
            return Err(copy_failed(
                anyhow::Error::new(e),
                &dir,
                &self.src,
                &self.dest,
            ));
        }
        let dest = self.dest;
        self.tmp
            .persist(&dest)
            .with_context(|| format!("renaming the copy to {}", dest.display()))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing the directory {}", dir.display()))
    }
}

/// A file being synced on another thread, so that its writer can go on
/// (and read it from the page cache) meanwhile. [`Syncing::wait`] says how
/// the sync went; dropped, it waits.
#[derive(Default)]
pub struct Syncing(Option<(PathBuf, std::thread::JoinHandle<std::io::Result<()>>)>);

impl Syncing {
    /// Starts syncing `path` (the file opened now: a later rename or
    /// removal does not matter).
    pub fn start(path: &Path) -> Result<Syncing> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let handle = std::thread::spawn(move || file.sync_all());
        Ok(Syncing(Some((path.to_path_buf(), handle))))
    }

    /// Waits for the sync, once: its error names the file, or the device
    /// that is full.
    pub fn wait(&mut self) -> Result<()> {
        let Some((path, handle)) = self.0.take() else {
            return Ok(());
        };
        let synced = handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
        synced.map_err(|e| match e.kind() {
            std::io::ErrorKind::StorageFull => crate::error::no_space(parent_dir(&path), e),
            _ => anyhow::Error::new(e).context(format!("syncing {} to disk", path.display())),
        })
    }
}

impl Drop for Syncing {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Starts writing the dirty pages of `fd`'s file in `[offset, offset +
/// len)` to disk without waiting (Linux's
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`): a writer that calls it as it
/// goes keeps the disk busy while it copies, and its final sync finds
/// little left to do. Only a hint: it makes nothing durable, and where it
/// is unavailable (or fails) nothing happens.
pub fn start_writeback(fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is open while it is borrowed; the call
        // takes plain integers and touches no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, offset, len);
}

fn parent_dir(dest: &Path) -> &Path {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The error of a copy that failed: "no space left on the device of …"
/// for a full disk.
fn copy_failed(e: anyhow::Error, dir: &Path, src: &Path, dest: &Path) -> anyhow::Error {
    if crate::error::is_disk_full(&e) {
        crate::error::no_space(dir, e)
    } else {
        e.context(format!("copying {} to {}", src.display(), dest.display()))
    }
}

/// Writes a copy of `src` for `dest` with `write` (given the temporary
/// path) into a temporary file beside `dest`
/// (`.sqlmorph-<pid>-<random>.partial`, so that a later run can tell a
/// killed run's leftover; created with `O_EXCL` and mode 0600), to be
/// synced and renamed over `dest` by [`Unsynced::persist`]. A failed copy
/// leaves nothing behind.
fn write_unsynced(
    src: &Path,
    dest: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<Unsynced> {
    let dir = parent_dir(dest);
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
    write(tmp.path()).map_err(|e| copy_failed(e, dir, src, dest))?;
    Ok(Unsynced {
        tmp,
        src: src.to_path_buf(),
        dest: dest.to_path_buf(),
    })
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
    fn a_sync_beside_the_run_is_waited_for_once_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sqlite3");
        let err = format!("{:#}", Syncing::start(&missing).err().unwrap());
        assert!(err.contains("missing.sqlite3"), "{err}");
        let file = dir.path().join("db.sqlite3");
        std::fs::write(&file, vec![1u8; 1 << 20]).unwrap();
        let mut syncing = Syncing::start(&file).unwrap();
        // Removing the name does not matter: the file was opened.
        std::fs::remove_file(&file).unwrap();
        syncing.wait().unwrap();
        assert!(syncing.0.is_none());
        syncing.wait().unwrap();
    }

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
    fn a_raw_copy_is_handed_over_before_its_first_byte_and_read_whole_while_written() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src.db"), dir.path().join("dest.db"));
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
             INSERT INTO t SELECT i, printf('%080d', i) FROM n;
             CREATE INDEX t_v ON t(v);",
        )
        .unwrap();
        let size: i64 = conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = size as u64;
        assert!(size > 2 * RAW_CHUNK, "several pieces: {size} bytes");
        let read = |path: &Path| -> rusqlite::Result<(String, i64)> {
            let c = crate::inflight::open_readonly(path).unwrap();
            let ok = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            Ok((
                ok,
                c.query_row("SELECT sum(length(v) + id) FROM t", [], |r| r.get(0))?,
            ))
        };
        let expected = read(&src).unwrap();
        let mut handed = None;
        let copy = raw_copy_unsynced(&src, size, &dest, &mut |tmp| {
            let written = std::fs::metadata(tmp).unwrap().len();
            let tmp = tmp.to_path_buf();
            handed = Some((written, std::thread::spawn(move || read(&tmp))));
        })
        .unwrap();
        let (written, reader) = handed.expect("the copy was never handed over");
        assert_eq!(written, 0, "handed over after its first bytes");
        assert_eq!(reader.join().unwrap().unwrap(), expected);
        assert_eq!(
            std::fs::read(copy.path()).unwrap(),
            std::fs::read(&src).unwrap()
        );
    }

    #[test]
    fn an_unsynced_copy_is_named_only_when_persisted_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::write(&src, b"0123456789").unwrap();
        let names = || -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let copy = raw_copy_unsynced(&src, 8, &dest, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(copy.path()).unwrap(), b"01234567");
        assert!(!dest.exists());
        let tmp = copy.path().to_path_buf();
        copy.persist().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"01234567");
        assert!(!tmp.exists());
        assert_eq!(names(), ["dest", "src"]);

        drop(raw_copy_unsynced(&src, 4, &dir.path().join("other"), &mut |_| {}).unwrap());
        assert_eq!(names(), ["dest", "src"], "a dropped copy leaves nothing");
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

    /// A WAL-mode database of 3,000 rows of 1 KB (about 800 pages, several
    /// backup steps), half of them still in the WAL of `app`, which stays
    /// open (so nothing checkpoints them into the file).
    fn wal_db(dir: &Path) -> (PathBuf, Connection) {
        let src = dir.join("src.db");
        let app = Connection::open(&src).unwrap();
        app.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(a);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
             INSERT INTO t SELECT randomblob(1000) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
             INSERT INTO t SELECT randomblob(1000) FROM n;",
        )
        .unwrap();
        (src, app)
    }

    /// The rows of `t` in rowid order, hashed.
    fn content(path: &Path) -> String {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT rowid, a FROM t ORDER BY rowid")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut h = Sha256::new();
        while let Some(r) = rows.next().unwrap() {
            h.update(r.get::<_, i64>(0).unwrap().to_le_bytes());
            h.update(r.get::<_, Vec<u8>>(1).unwrap());
        }
        hex::encode(h.finalize())
    }

    fn integrity(path: &Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// Backs `src` up into `dest` through `reader` with a (hidden) bar,
    /// while `app` commits a change after the first step: (steps, bar).
    fn backup_with_a_commit_between_steps(
        reader: &Connection,
        app: &Connection,
        dest: &Path,
    ) -> (usize, ProgressBar) {
        let bar = ProgressBar::hidden();
        let steps = std::cell::Cell::new(0);
        backup_into(reader, dest, Some(&bar), &|| {
            steps.set(steps.get() + 1);
            if steps.get() == 1 {
                app.execute_batch(
                    "DELETE FROM t WHERE rowid % 7 = 0; INSERT INTO t VALUES (x'00');",
                )
                .unwrap();
            }
        })
        .unwrap();
        (steps.get(), bar)
    }

    #[test]
    fn a_wal_backup_in_steps_inside_a_read_transaction_is_the_snapshot_despite_a_commit_between_steps()
     {
        let dir = tempfile::tempdir().unwrap();
        let (src, app) = wal_db(dir.path());
        let before = content(&src);
        let dest = dir.path().join("copy.db");
        // As `LiveDb::copy_to` does: one read transaction around the copy.
        let reader = db::open_readonly(&src).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .unwrap();
        let (steps, bar) = backup_with_a_commit_between_steps(&reader, &app, &dest);
        reader.execute_batch("COMMIT").unwrap();
        assert!(steps > 3, "{steps} step(s)");
        assert_ne!(content(&src), before, "the commit reached the source");
        assert_eq!(content(&dest), before, "the copy is the snapshot read");
        assert_eq!(integrity(&dest), "ok");
        let size = std::fs::metadata(&dest).unwrap().len();
        assert_eq!(
            (bar.position(), bar.length()),
            (size, Some(size)),
            "the bar counts the copy's bytes"
        );
    }

    #[test]
    fn a_wal_backup_without_a_read_transaction_restarts_after_a_commit_and_copies_the_new_state() {
        let dir = tempfile::tempdir().unwrap();
        let (src, app) = wal_db(dir.path());
        let before = content(&src);
        let dest = dir.path().join("copy.db");
        let reader = db::open_readonly(&src).unwrap();
        let (steps, _) = backup_with_a_commit_between_steps(&reader, &app, &dest);
        assert!(steps > 3, "{steps} step(s)");
        let after = content(&src);
        assert_ne!(after, before);
        assert_eq!(content(&dest), after, "never a mix of the two");
        assert_eq!(integrity(&dest), "ok");
    }
}
