//! The swap into a rollback-journal production: the transaction SQLite's
//! own commit would make, written in large sequential writes.
//!
//! Through the online backup API, a 1.2 GB swap journals and writes page by
//! page and syncs the journal each time its page cache fills (every 8 MiB),
//! all of it under the write lock. This module writes the same two things
//! once each, in large writes, the second under the exclusive lock the
//! session connection holds:
//!
//! 1. `<production>-journal`, in SQLite's rollback-journal format: a header
//!    whose magic is still zero (no reader takes it for a hot journal yet),
//!    then every page of production as it is (page number, page, checksum),
//!    synced with its directory. Written under the lock from production, or
//!    ahead of it from the snapshot ([`prepare`], [`Prepared`]) and renamed
//!    into place once production is found to be still that copy;
//! 2. the header sealed (magic and record count) and synced: from here a
//!    crash leaves a hot journal, which the next connection to production
//!    plays back before it reads anything, so production is the old file;
//! 3. the new file's pages written over production's (page 1 keeps
//!    production's journal-mode bytes and moves its change counter and
//!    schema cookie, as a commit and the backup API do), the file cut to the
//!    new length and synced;
//! 4. the journal deleted and the directory synced: the commit.
//!
//! Both files are written in 4 MiB chunks, and the disk is asked to start
//! on each chunk as soon as it is in ([`start_writeback`]), so that the
//! syncs find little left to do.
//!
//! As SQLite does, the page holding the lock bytes (at 1 GiB) is neither
//! journaled nor written: SQLite never stores data there, and a playback
//! stops at a record for it.
//!
//! [`swap`] returns `None`, having written nothing, when the swap is not
//! this simple case (different page sizes, a file that is not whole, a hot
//! journal already there); the caller then writes through SQLite's backup
//! API.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

use super::dbfile::DbFile;
use super::files::start_writeback;

/// The first bytes of a rollback journal's header.
const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
/// The journal header's length (SQLite's sector size on a file system with
/// power-safe overwrite, the platform's default).
const HEADER: usize = 512;
/// SQLite's PENDING_BYTE: the page holding it carries no data.
const LOCK_BYTE: u64 = 0x4000_0000;
/// How much is read and written at a time.
const CHUNK: usize = 4 << 20;

/// A point of the swap, reported to `at` once reached (tests stop there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The journal's records are written and synced, not yet sealed.
    Journaled,
    /// The journal is sealed: a crash from here is rolled back.
    Sealed,
    /// The new pages are in production's file and synced.
    Written,
    /// The journal is gone: production is the new file.
    Committed,
}

/// What [`swap`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Pages of the new file.
    pub pages: u64,
    /// Production's change counter now (page 1, bytes 24–27).
    pub counter: u32,
    /// The journal was written ahead ([`Prepared`]), not under the lock.
    pub ahead: bool,
}

/// Sizes of the two files, in pages of one size, and the old file's page 1
/// (read once: compared, journaled, patched into the new page 1).
struct Shape {
    page: usize,
    old_pages: u64,
    new_pages: u64,
    first: Vec<u8>,
}

/// Writes `new` into the production file of `conn`, which must hold the
/// exclusive lock (`locking_mode=EXCLUSIVE`, a write transaction begun and
/// ended). Returns what it wrote, or `None` when this swap does not apply
/// and nothing was written. On an error, production is untouched or its
/// journal is hot (the next connection's first read restores it).
pub fn swap(
    conn: &Connection,
    new: &Path,
    prepared: Option<Prepared>,
    at: &mut dyn FnMut(Stage) -> Result<()>,
) -> Result<Option<Written>> {
    let Some(db_path) = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from) else {
        return Ok(None);
    };
    let prod = DbFile::of(conn)?;
    let Some(shape) = shape(&prod, new)? else {
        return Ok(None);
    };
    let journal_path = PathBuf::from(format!("{}-journal", db_path.display()));
    if is_hot(&journal_path) {
        return Ok(None);
    }
    let ready = match prepared {
        Some(p) if p.is_of(&shape) => Some(p),
        _ => None,
    };
    let ahead = ready.is_some();
    let (journal, records) = match ready {
        Some(p) => p.adopt(&journal_path)?,
        None => {
            let journal = Journal::create(&journal_path, &db_path)?;
            let nonce = random_u32();
            let read = |buf: &mut [u8], at: u64| prod.read_at(buf, at);
            match journal.write(&read, &shape, nonce) {
                Ok(records) => (journal, records),
                Err(e) => {
                    journal.discard();
                    return Err(e);
                }
            }
        }
    };
    let sealed = at(Stage::Journaled).and_then(|()| journal.seal(records));
    if let Err(e) = sealed.and_then(|()| at(Stage::Sealed)) {
        journal.discard();
        return Err(e);
    }
    let counter = write_new(&prod, new, &shape)
        .and_then(|counter| {
            at(Stage::Written)?;
            journal.commit().map(|()| counter)
        })
        .with_context(|| {
            format!(
                "writing the new content into {} stopped half way; its journal {} holds the old \
                 pages, and SQLite plays it back before the next read (production is then as before)",
                db_path.display(),
                journal_path.display()
            )
        })?;
    at(Stage::Committed)?;
    Ok(Some(Written {
        pages: shape.new_pages,
        counter,
        ahead,
    }))
}

/// The two files' page size and lengths, or `None` when the swap is not
/// the simple case: the page sizes differ, a length is not whole pages, or
/// `new` is not complete in its own file (a journal or WAL beside it, an
/// overlay).
fn shape(prod: &DbFile<'_>, new: &Path) -> Result<Option<Shape>> {
    let mut head = [0u8; 100];
    prod.read_at(&mut head, 0)?;
    let page = page_size(&head);
    let mut new_head = [0u8; 100];
    File::open(new)
        .and_then(|f| f.read_exact_at(&mut new_head, 0))
        .with_context(|| format!("reading {}", new.display()))?;
    let beside = |suffix: &str| {
        let mut p = new.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
    };
    let (old_len, new_len) = (prod.size()?, std::fs::metadata(new)?.len());
    let whole = |len: u64| len > 0 && len % page as u64 == 0;
    if page_size(&new_head) != page
        || !whole(old_len)
        || !whole(new_len)
        || beside("-wal")
        || beside("-journal")
        || crate::overlay::is_overlay(new)
    {
        return Ok(None);
    }
    let mut first = vec![0u8; page];
    prod.read_at(&mut first, 0)?;
    Ok(Some(Shape {
        page,
        old_pages: old_len / page as u64,
        new_pages: new_len / page as u64,
        first,
    }))
}

/// A database header's page size (bytes 16–17; 1 means 65536).
fn page_size(head: &[u8; 100]) -> usize {
    match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => usize::from(n),
    }
}

/// The page SQLite keeps free for its lock bytes, for `page` bytes a page.
fn lock_page(page: usize) -> u64 {
    LOCK_BYTE / page as u64 + 1
}

/// SQLite's journal record checksum: the nonce plus every 200th byte.
fn checksum(nonce: u32, data: &[u8]) -> u32 {
    let mut sum = nonce;
    let mut i = data.len() as isize - 200;
    while i > 0 {
        sum = sum.wrapping_add(u32::from(data[i as usize]));
        i -= 200;
    }
    sum
}

/// Reads bytes of the database being journaled at an offset.
type Reader<'a> = dyn Fn(&mut [u8], u64) -> Result<()> + 'a;

/// True when `path` is a journal SQLite would play back (its first byte is
/// not zero), or not a plain file: SQLite must deal with it.
fn is_hot(path: &Path) -> bool {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let mut first = [0u8; 1];
    let hot = m.len() > 0
        && File::open(path)
            .and_then(|f| f.read_exact_at(&mut first, 0))
            .is_ok()
        && first[0] != 0;
    hot || !m.is_file()
}

/// A journal written ahead of the swap, beside production, from a copy
/// that is production page for page (the snapshot of a rollback-journal
/// production, a byte copy made inside a read transaction). Its magic is
/// zero, so it is inert until [`swap`] finds under the lock that
/// production still is that copy (the compare-and-swap check, then the
/// same length and the same page 1, change counter included), renames it
/// into place and seals it. Dropped unused, it is deleted.
pub struct Prepared {
    path: PathBuf,
    records: u32,
    shape: Shape,
    adopted: bool,
}

/// Writes [`Prepared`] for production `db` from `copy`: `.<name>-journal.sqlmorph-<pid>`
/// in production's directory (a rename away from its journal's name).
pub fn prepare(copy: &Path, db: &Path) -> Result<Prepared> {
    let src = File::open(copy).with_context(|| format!("reading {}", copy.display()))?;
    let mut head = [0u8; 100];
    src.read_exact_at(&mut head, 0)?;
    let page = page_size(&head);
    let len = src.metadata()?.len();
    if len == 0 || len % page as u64 != 0 {
        bail!("{} is not whole pages", copy.display());
    }
    let mut first = vec![0u8; page];
    src.read_exact_at(&mut first, 0)?;
    let shape = Shape {
        page,
        old_pages: len / page as u64,
        new_pages: 0,
        first,
    };
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned());
    let path = db.with_file_name(format!(
        ".{}-journal.sqlmorph-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let journal = Journal::create(&path, db)?;
    let nonce = random_u32();
    let read = |buf: &mut [u8], at: u64| -> Result<()> { Ok(src.read_exact_at(buf, at)?) };
    let records = journal
        .write(&read, &shape, nonce)
        .inspect_err(|_| journal.discard())?;
    Ok(Prepared {
        path,
        records,
        shape,
        adopted: false,
    })
}

/// A random checksum nonce, as SQLite draws one per journal (stale records
/// of an older journal then fail their checksums).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

impl Prepared {
    /// True when production (under the lock) is still the copy it was
    /// written from: the same page size, length and page 1.
    fn is_of(&self, shape: &Shape) -> bool {
        (self.shape.page, self.shape.old_pages, &self.shape.first)
            == (shape.page, shape.old_pages, &shape.first)
    }

    /// Renames it to production's journal name (replacing a journal file
    /// SQLite would not play back) and syncs the directory.
    fn adopt(mut self, journal: &Path) -> Result<(Journal, u32)> {
        std::fs::rename(&self.path, journal).with_context(|| {
            format!("renaming {} to {}", self.path.display(), journal.display())
        })?;
        self.adopted = true;
        let opened = OpenOptions::new()
            .write(true)
            .open(journal)
            .map_err(anyhow::Error::from)
            .and_then(|file| sync_dir(journal).map(|()| file));
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                // Not sealed: no journal to SQLite yet, and production untouched.
                let _ = std::fs::remove_file(journal);
                return Err(e);
            }
        };
        Ok((
            Journal {
                path: journal.to_path_buf(),
                file,
            },
            self.records,
        ))
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.adopted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The rollback journal being written.
struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Creates (or truncates) a journal file at `path` with the mode of
    /// production `db` (and its owner, when run as root), as SQLite does.
    fn create(path: &Path, db: &Path) -> Result<Journal> {
        let meta = std::fs::metadata(db).with_context(|| format!("reading {}", db.display()))?;
        let mode = meta.mode() & 0o777;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let journal = Journal {
            path: path.to_path_buf(),
            file,
        };
        if let Err(e) = journal
            .file
            .set_permissions(std::fs::Permissions::from_mode(mode))
        {
            journal.discard();
            return Err(anyhow::Error::new(e).context(format!("creating {}", path.display())));
        }
        // Only root can give it production's owner; SQLite tries only then.
        let _ = std::os::unix::fs::fchown(&journal.file, Some(meta.uid()), Some(meta.gid()));
        Ok(journal)
    }

    /// Writes the header (magic and record count still zero) and a record
    /// of every page `read` gives (production's, or its page-for-page
    /// copy's), then syncs the journal and its directory. Returns the
    /// number of records.
    fn write(&self, read: &Reader<'_>, shape: &Shape, nonce: u32) -> Result<u32> {
        let page = shape.page;
        let mut header = vec![0u8; HEADER];
        header[12..16].copy_from_slice(&nonce.to_be_bytes());
        header[16..20].copy_from_slice(&u32::try_from(shape.old_pages)?.to_be_bytes());
        header[20..24].copy_from_slice(&(HEADER as u32).to_be_bytes());
        header[24..28].copy_from_slice(&u32::try_from(page)?.to_be_bytes());
        let mut out = std::io::BufWriter::with_capacity(CHUNK + page + 8, &self.file);
        out.write_all(&header)?;
        let per_chunk = (CHUNK / page) as u64;
        let mut buf = vec![0u8; CHUNK];
        let mut records = 0u32;
        let mut written = 0u64;
        let mut first = 1u64;
        while first <= shape.old_pages {
            let n = per_chunk.min(shape.old_pages - first + 1);
            let bytes = &mut buf[..n as usize * page];
            read(bytes, (first - 1) * page as u64)?;
            for (i, data) in bytes.chunks_exact(page).enumerate() {
                let pgno = first + i as u64;
                if pgno == lock_page(page) {
                    continue;
                }
                out.write_all(&u32::try_from(pgno)?.to_be_bytes())?;
                out.write_all(data)?;
                out.write_all(&checksum(nonce, data).to_be_bytes())?;
                records += 1;
            }
            first += n;
            // The disk writes what is written while the next chunk is read.
            out.flush()?;
            start_writeback(self.file.as_fd(), written, 0);
            written = HEADER as u64 + u64::from(records) * (page as u64 + 8);
        }
        out.flush()?;
        drop(out);
        self.file.sync_data()?;
        sync_dir(&self.path)?;
        Ok(records)
    }

    /// Writes the magic and the record count, and syncs: the journal is
    /// hot from here until [`Journal::commit`].
    fn seal(&self, records: u32) -> Result<()> {
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&MAGIC);
        head[8..].copy_from_slice(&records.to_be_bytes());
        self.file.write_all_at(&head, 0)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Deletes the journal (the commit) and makes that durable. Its pages
    /// leave the page cache when the file is closed, a quarter of a second
    /// per GB: that is done on another thread, so that production's lock
    /// is given back without waiting for it.
    fn commit(self) -> Result<()> {
        std::fs::remove_file(&self.path)
            .with_context(|| format!("deleting {}", self.path.display()))?;
        sync_dir(&self.path)?;
        std::thread::spawn(move || drop(self.file));
        Ok(())
    }

    /// Removes a journal that was never sealed (production untouched).
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Syncs the directory holding `path`, so a created or deleted name lasts.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Writes every page of `new` over production (page 1 patched by
/// [`first_page`]), cuts production to the new length and syncs it.
/// Returns the change counter written.
fn write_new(prod: &DbFile<'_>, new: &Path, shape: &Shape) -> Result<u32> {
    let page = shape.page;
    let src = File::open(new).with_context(|| format!("reading {}", new.display()))?;
    let lock = lock_page(page);
    let per_chunk = (CHUNK / page) as u64;
    let mut buf = vec![0u8; CHUNK];
    let mut first = 1u64;
    let mut counter = 0;
    while first <= shape.new_pages {
        let n = per_chunk.min(shape.new_pages - first + 1);
        let bytes = &mut buf[..n as usize * page];
        src.read_exact_at(bytes, (first - 1) * page as u64)?;
        if first == 1 {
            counter = first_page(&mut bytes[..page], &shape.first, shape.new_pages)?;
        }
        // The chunk, less the lock page when it falls inside.
        let end = first + n;
        for (from, to) in [
            (first, lock.clamp(first, end)),
            ((lock + 1).clamp(first, end), end),
        ] {
            if from < to {
                let at = (from - first) as usize * page;
                let len = (to - from) as usize * page;
                prod.write_at(&bytes[at..at + len], (from - 1) * page as u64)?;
            }
        }
        // The disk writes this chunk while the next one is copied.
        if let Some(fd) = prod.descriptor() {
            start_writeback(fd, (first - 1) * page as u64, n * page as u64);
        }
        first = end;
    }
    if shape.new_pages < shape.old_pages {
        prod.truncate(shape.new_pages * page as u64)?;
    }
    prod.sync()?;
    Ok(counter)
}

/// Page 1 of the new file as production's next version: production's
/// journal-mode bytes, its change counter and schema cookie moved on (open
/// connections reload their cache and re-prepare), the page count and the
/// SQLite version of this write. Returns the change counter.
fn first_page(new: &mut [u8], old: &[u8], pages: u64) -> Result<u32> {
    let get = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let counter = get(old, 24).wrapping_add(1);
    let cookie = get(old, 40).wrapping_add(1);
    new[18..20].copy_from_slice(&old[18..20]);
    new[24..28].copy_from_slice(&counter.to_be_bytes());
    new[28..32].copy_from_slice(&u32::try_from(pages)?.to_be_bytes());
    new[40..44].copy_from_slice(&cookie.to_be_bytes());
    new[92..96].copy_from_slice(&counter.to_be_bytes());
    new[96..100].copy_from_slice(&rusqlite::version_number().to_be_bytes());
    if &new[..16] != b"SQLite format 3\0" {
        bail!("the new file is not a SQLite database");
    }
    Ok(counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const OLD: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
        CREATE INDEX t_v ON t(v);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
        INSERT INTO t SELECT i, printf('old %d %s', i, hex(randomblob(40))) FROM n;";
    const NEW: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w INT);
        CREATE TABLE u(x);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
        INSERT INTO t SELECT i, printf('new %d %s', i, hex(randomblob(40))), i FROM n;
        INSERT INTO u VALUES ('added');";

    fn db(path: &Path, page_size: u32, sql: &str) {
        Connection::open(path)
            .unwrap()
            .execute_batch(&format!("PRAGMA page_size = {page_size}; {sql}"))
            .unwrap();
    }

    /// Everything a reader sees: the schema and every row of `t`.
    fn content(path: &Path) -> String {
        let conn = Connection::open(path).unwrap();
        conn.query_row(
            "SELECT (SELECT group_concat(sql, ';') FROM sqlite_schema) || '|' ||
                    (SELECT group_concat(id || '=' || v, ',') FROM t)",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn integrity(path: &Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// A connection holding production's exclusive lock, as the swap has it.
    fn locked(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT")
            .unwrap();
        conn
    }

    fn journal_of(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}-journal", path.display()))
    }

    #[test]
    fn a_swap_is_one_transaction_that_an_open_connection_sees_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (prod, new) = (dir.path().join("prod.db"), dir.path().join("new.db"));
        db(&prod, 4096, OLD);
        db(&new, 4096, NEW);
        std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o640)).unwrap();
        let inode = std::fs::metadata(&prod).unwrap().ino();
        let app = Connection::open(&prod).unwrap();
        let count =
            |c: &Connection| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0));
        assert_eq!(count(&app).unwrap(), 3000);
        let mut stages = Vec::new();
        let conn = locked(&prod);
        let written = swap(&conn, &new, None, &mut |s| {
            if s == Stage::Sealed {
                // The journal is hot while the lock is held; nobody reads.
                assert!(std::fs::metadata(journal_of(&prod)).unwrap().len() > 0);
            }
            stages.push(s);
            Ok(())
        })
        .unwrap()
        .expect("the simple case");
        drop(conn);
        assert_eq!(
            stages,
            [
                Stage::Journaled,
                Stage::Sealed,
                Stage::Written,
                Stage::Committed
            ]
        );
        assert!(
            !journal_of(&prod).exists(),
            "the commit deletes the journal"
        );
        assert_eq!(content(&prod), content(&new));
        assert_eq!(integrity(&prod), "ok");
        // The open connection reloads (change counter) and re-prepares (schema cookie).
        assert_eq!(count(&app).unwrap(), 6000);
        app.execute("INSERT INTO u VALUES ('app')", []).unwrap();
        let meta = std::fs::metadata(&prod).unwrap();
        assert_eq!((meta.ino(), meta.mode() & 0o777), (inode, 0o640));
        assert_eq!(written.pages * 4096, meta.len());
        let head = std::fs::read(&prod).unwrap();
        assert_eq!(&head[18..20], &[1, 1], "still a rollback-journal file");
        assert_eq!(head[24..28], head[92..96]);
        let journal_mode: String = app
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal_mode, "delete");
    }

    #[test]
    fn a_shrinking_swap_cuts_the_file_and_a_different_page_size_is_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let (prod, new) = (dir.path().join("prod.db"), dir.path().join("new.db"));
        db(&prod, 4096, NEW);
        db(&new, 4096, OLD);
        let conn = locked(&prod);
        swap(&conn, &new, None, &mut |_| Ok(())).unwrap().unwrap();
        drop(conn);
        assert_eq!(content(&prod), content(&new));
        assert_eq!(
            std::fs::metadata(&prod).unwrap().len(),
            std::fs::metadata(&new).unwrap().len()
        );
        assert_eq!(integrity(&prod), "ok");

        let other = dir.path().join("other.db");
        db(&other, 8192, NEW);
        let before = std::fs::read(&prod).unwrap();
        let conn = locked(&prod);
        assert!(
            swap(&conn, &other, None, &mut |_| Ok(()))
                .unwrap()
                .is_none()
        );
        drop(conn);
        assert!(std::fs::read(&prod).unwrap() == before, "nothing written");
        assert!(!journal_of(&prod).exists());
    }

    #[test]
    fn an_error_before_the_seal_leaves_production_untouched_and_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (prod, new) = (dir.path().join("prod.db"), dir.path().join("new.db"));
        db(&prod, 4096, OLD);
        db(&new, 4096, NEW);
        let before = std::fs::read(&prod).unwrap();
        let conn = locked(&prod);
        let err = swap(&conn, &new, None, &mut |s| match s {
            Stage::Journaled => anyhow::bail!("stopped"),
            _ => Ok(()),
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "stopped");
        drop(conn);
        assert!(!journal_of(&prod).exists());
        assert!(std::fs::read(&prod).unwrap() == before);
    }

    /// The child process of the crash tests: swaps, then kills itself with
    /// SIGKILL at the stage named by `SQLMORPH_TEST_CRASH_STAGE`.
    #[test]
    #[ignore = "run by the crash tests as a child process"]
    fn crash_child() {
        let Ok(stage) = std::env::var("SQLMORPH_TEST_CRASH_STAGE") else {
            return;
        };
        let prod = PathBuf::from(std::env::var("SQLMORPH_TEST_CRASH_PROD").unwrap());
        let new = PathBuf::from(std::env::var("SQLMORPH_TEST_CRASH_NEW").unwrap());
        let prepared = std::env::var_os("SQLMORPH_TEST_CRASH_AHEAD").map(|_| {
            let copy = prod.with_extension("copy");
            std::fs::copy(&prod, &copy).unwrap();
            prepare(&copy, &prod).unwrap()
        });
        let conn = locked(&prod);
        swap(&conn, &new, prepared, &mut |s| {
            if format!("{s:?}") == stage {
                let me = std::process::id().to_string();
                Command::new("kill").args(["-KILL", &me]).status().unwrap();
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
            Ok(())
        })
        .unwrap();
        panic!("the stage {stage} was never reached");
    }

    /// Runs [`crash_child`] against `prod` and `new`, killed at `stage`.
    fn crash_at(prod: &Path, new: &Path, stage: Stage) {
        crash_with(prod, new, stage, false);
    }

    /// As [`crash_at`]; `ahead`: with the journal written ahead from a copy.
    fn crash_with(prod: &Path, new: &Path, stage: Stage, ahead: bool) {
        let mut child = Command::new(std::env::current_exe().unwrap());
        if ahead {
            child.env("SQLMORPH_TEST_CRASH_AHEAD", "1");
        }
        let status = child
            .args([
                "--ignored",
                "--exact",
                "target::journal::tests::crash_child",
            ])
            .env("SQLMORPH_TEST_CRASH_STAGE", format!("{stage:?}"))
            .env("SQLMORPH_TEST_CRASH_PROD", prod)
            .env("SQLMORPH_TEST_CRASH_NEW", new)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{stage:?}: the child was killed");
    }

    #[test]
    fn a_crash_at_any_stage_leaves_production_old_or_new_and_sound() {
        let dir = tempfile::tempdir().unwrap();
        let (template, new) = (dir.path().join("old.db"), dir.path().join("new.db"));
        db(&template, 4096, OLD);
        db(&new, 4096, NEW);
        let (old_content, new_content) = (content(&template), content(&new));
        let stages = [
            (Stage::Journaled, false),
            (Stage::Sealed, false),
            (Stage::Written, false),
            (Stage::Committed, true),
        ];
        for ((stage, expect_new), ahead) in stages.into_iter().flat_map(|s| [(s, false), (s, true)])
        {
            let prod = dir.path().join(format!("prod-{stage:?}-{ahead}.db"));
            std::fs::copy(&template, &prod).unwrap();
            crash_with(&prod, &new, stage, ahead);
            if stage == Stage::Written {
                assert!(journal_of(&prod).exists(), "a hot journal is left");
            }
            // The first reader plays a hot journal back.
            let seen = content(&prod);
            assert_eq!(integrity(&prod), "ok", "{stage:?}");
            let want = if expect_new {
                &new_content
            } else {
                &old_content
            };
            assert!(
                &seen == want,
                "{stage:?}: production is not the {} file",
                if expect_new { "new" } else { "old" }
            );
            assert!(
                !journal_of(&prod).exists() || stage == Stage::Journaled,
                "{stage:?}"
            );
        }
    }

    /// The hidden files [`prepare`] leaves beside `prod`.
    fn ahead_files(prod: &Path) -> Vec<String> {
        std::fs::read_dir(prod.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("-journal.sqlmorph-"))
            .collect()
    }

    #[test]
    fn a_journal_written_ahead_is_used_only_while_production_is_still_its_copy() {
        for changed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (prod, new, copy) = (
                dir.path().join("prod.db"),
                dir.path().join("new.db"),
                dir.path().join("snapshot.db"),
            );
            db(&prod, 4096, OLD);
            db(&new, 4096, NEW);
            std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o640)).unwrap();
            std::fs::copy(&prod, &copy).unwrap();
            let prepared = prepare(&copy, &prod).unwrap();
            let files = ahead_files(&prod);
            assert_eq!(files.len(), 1, "{files:?}");
            let hidden = dir.path().join(&files[0]);
            assert_eq!(std::fs::metadata(&hidden).unwrap().mode() & 0o777, 0o640);
            assert!(!is_hot(&hidden), "inert until sealed");
            if changed {
                Connection::open(&prod)
                    .unwrap()
                    .execute("UPDATE t SET v = 'app' WHERE id = 1", [])
                    .unwrap();
            }
            let conn = locked(&prod);
            let written = swap(&conn, &new, Some(prepared), &mut |_| Ok(()))
                .unwrap()
                .unwrap();
            drop(conn);
            assert_eq!(written.ahead, !changed, "changed: {changed}");
            assert_eq!(content(&prod), content(&new));
            assert_eq!(integrity(&prod), "ok");
            assert!(ahead_files(&prod).is_empty(), "changed: {changed}");
            assert!(!journal_of(&prod).exists());
        }
    }

    #[test]
    fn a_journal_written_ahead_and_never_used_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (prod, copy) = (dir.path().join("prod.db"), dir.path().join("snapshot.db"));
        db(&prod, 4096, OLD);
        std::fs::copy(&prod, &copy).unwrap();
        let prepared = prepare(&copy, &prod).unwrap();
        assert_eq!(ahead_files(&prod).len(), 1);
        drop(prepared);
        assert!(ahead_files(&prod).is_empty());
    }

    /// SQLite keeps the page holding its lock bytes (at 1 GiB) out of every
    /// journal, and a playback stops at a record for it: a journal that
    /// holds one would leave the pages after it new.
    #[test]
    fn a_crash_rolls_back_the_pages_past_one_gibibyte() {
        let dir = tempfile::tempdir().unwrap();
        let (prod, new) = (dir.path().join("prod.db"), dir.path().join("new.db"));
        // Small databases made long by sparse pages, marked past 1 GiB.
        let page = 65536u64;
        db(&prod, page as u32, OLD);
        db(&new, page as u32, NEW);
        let pages = LOCK_BYTE / page + 40;
        for (path, mark) in [(&prod, 0xAAu8), (&new, 0xBB)] {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(pages * page).unwrap();
            for p in [lock_page(page as usize) + 1, pages - 1] {
                f.write_all_at(&vec![mark; page as usize], (p - 1) * page)
                    .unwrap();
            }
        }
        let marks = |path: &Path| {
            let f = File::open(path).unwrap();
            [lock_page(page as usize) + 1, pages - 1].map(|p| {
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, (p - 1) * page + 7).unwrap();
                b[0]
            })
        };
        let old_content = content(&prod);
        crash_at(&prod, &new, Stage::Written);
        assert_eq!(marks(&prod), [0xBB, 0xBB], "the new pages were written");
        assert_eq!(content(&prod), old_content);
        assert_eq!(marks(&prod), [0xAA, 0xAA], "the old pages are back");
        assert!(!journal_of(&prod).exists());
    }
}
