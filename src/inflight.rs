//! A database read while its copy is still being written, so that the
//! backup's `quick_check` runs beside the copy instead of after it.
//!
//! The copier registers the file it writes ([`Feed::start`]), asks which
//! piece to write next ([`Feed::next_piece`]: the one a reader waits for, if
//! any) and says when it is written ([`Feed::written`]). A connection
//! opened with [`open_readonly`] reads that file through a VFS whose reads
//! wait until the bytes they ask for are there, and fail when the copy is
//! abandoned;
//! the file's size is its final size from the start. Any other file opens
//! as usual. Only a copy whose bytes never change once written can be
//! read this way: the raw copy of a rollback-journal database under its
//! read lock ([`crate::target`]'s `files`).
//!
//! One of the few places with `unsafe` code (listed in [`crate::overlay`]):
//! a VFS is C's interface. Each block says what makes it sound.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, ffi};

use crate::vfs::{self, Platform};

/// The VFS's name.
const VFS_NAME: &CStr = c"sqlmorph-inflight";

/// One copy in progress, written piece by piece in any order.
struct Copy {
    /// Its final length in bytes.
    len: u64,
    /// The length of a piece (a multiple of the page size: no page
    /// straddles two).
    piece: u64,
    /// Which pieces are written.
    written: Vec<AtomicBool>,
    /// The piece a reader waits for ([`NONE`]: none): the copier's next.
    wanted: AtomicUsize,
    /// The rest never will be written.
    abandoned: AtomicBool,
    lock: Mutex<()>,
    moved: Condvar,
}

/// `Copy::wanted` when no reader waits.
const NONE: usize = usize::MAX;

impl Copy {
    /// Marks a change under the lock and wakes the waiting readers.
    fn set(&self, flag: &AtomicBool) {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        flag.store(true, Ordering::Release);
        self.moved.notify_all();
    }

    /// Waits until the piece holding byte `at` is written (at once past
    /// the end), asking the copier for it: false when the copy was
    /// abandoned.
    fn wait_for(&self, at: u64) -> bool {
        let i = usize::try_from(at / self.piece).unwrap_or(NONE);
        let Some(flag) = self.written.get(i) else {
            return true;
        };
        let ready =
            || (!self.abandoned.load(Ordering::Acquire)).then(|| flag.load(Ordering::Acquire));
        if let Some(true) = ready() {
            return true;
        }
        let mut held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.wanted.store(i, Ordering::Release);
        loop {
            match ready() {
                Some(true) => return true,
                None => return false,
                Some(false) => {
                    held = self
                        .moved
                        .wait(held)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// The copies in progress, by the (device, inode) of the file written.
type Copies = Mutex<HashMap<(u64, u64), Arc<Copy>>>;

fn registry() -> &'static Copies {
    static REGISTRY: OnceLock<Copies> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// The copier's side: which piece to write next ([`Feed::next_piece`]), and
/// which are written. Dropped before the copy is complete, it abandons it
/// (readers waiting for the rest fail instead of waiting for ever).
pub struct Feed {
    key: (u64, u64),
    copy: Arc<Copy>,
    /// The pieces in the order they are written unless a reader asks for
    /// another first: the first (the header and, mostly, the schema), then
    /// from the last to the second, because SQLite's `quick_check` walks
    /// each b-tree from its last cell to its first.
    order: std::vec::IntoIter<usize>,
}

impl Feed {
    /// Registers `path` (created, about to be written) as a copy that will
    /// be `len` bytes long, written in pieces of `piece` bytes (a multiple
    /// of the page size).
    pub fn start(path: &Path, len: u64, piece: u64) -> Result<Feed> {
        register()?;
        let key = identity(path).with_context(|| format!("reading {}", path.display()))?;
        let piece = piece.max(1);
        let pieces = usize::try_from(len.div_ceil(piece))?;
        let copy = Arc::new(Copy {
            len,
            piece,
            written: (0..pieces).map(|_| AtomicBool::new(false)).collect(),
            wanted: AtomicUsize::new(NONE),
            abandoned: AtomicBool::new(false),
            lock: Mutex::new(()),
            moved: Condvar::new(),
        });
        registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&copy));
        let order = (0..pieces.min(1))
            .chain((1..pieces).rev())
            .collect::<Vec<_>>();
        Ok(Feed {
            key,
            copy,
            order: order.into_iter(),
        })
    }

    /// The next piece to write, as (offset, length): the one a reader
    /// waits for, else the next unwritten one in order; `None` when all
    /// are written.
    pub fn next_piece(&mut self) -> Option<(u64, u64)> {
        let copy = &self.copy;
        let unwritten = |i: &usize| !copy.written[*i].load(Ordering::Acquire);
        let wanted = Some(copy.wanted.swap(NONE, Ordering::AcqRel)).filter(|&i| i != NONE);
        let i = wanted
            .filter(unwritten)
            .or_else(|| self.order.find(unwritten))?;
        let at = i as u64 * copy.piece;
        Some((at, copy.piece.min(copy.len - at)))
    }

    /// The piece at `at` is written (and stays as it is).
    pub fn written(&self, at: u64) {
        let i = usize::try_from(at / self.copy.piece).unwrap_or(NONE);
        if let Some(flag) = self.copy.written.get(i) {
            self.copy.set(flag);
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
        let copy = &self.copy;
        if !copy.written.iter().all(|w| w.load(Ordering::Acquire)) {
            copy.set(&copy.abandoned);
        }
    }
}

/// Opens `path` read-only; while a [`Feed`] copies into it, through the
/// VFS above (its reads wait for the copy). Reads nothing yet.
pub fn open_readonly(path: &Path) -> Result<Connection> {
    register()?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags_and_vfs(path, flags, VFS_NAME)
        .with_context(|| format!("opening {}", path.display()))
}

// ------------------------------------------------------------------ the VFS

static PLATFORM: OnceLock<Platform> = OnceLock::new();

/// Registers the VFS (not as the default), once: a copy of SQLite's
/// "unix" VFS, whatever the default is by then.
fn register() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let platform = vfs::platform(Some(c"unix"))?;
        let platform = PLATFORM.get_or_init(|| platform);
        let size = std::mem::size_of::<InflightFile>();
        vfs::register(platform, VFS_NAME, size, x_open, false)
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// A copy in progress as SQLite holds it open (`pMethods` first).
#[repr(C)]
struct InflightFile {
    base: ffi::sqlite3_file,
    copy: *const Copy,
    file: ManuallyDrop<File>,
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(vfs::x_file_control),
    xSectorSize: Some(vfs::x_sector_size),
    xDeviceCharacteristics: Some(vfs::x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Opens a copy in progress, read-only, with [`METHODS`]; everything else
/// is the platform VFS's, called as if SQLite had called it.
unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(platform) = PLATFORM.get() else {
        return ffi::SQLITE_CANTOPEN;
    };
    let main_readonly = ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_READONLY;
    // SAFETY: these are xOpen's arguments from SQLite.
    let path = unsafe { vfs::path_to_open(name, flags, main_readonly) };
    let copy = path.and_then(|path| {
        let key = identity(path).ok()?;
        let copies = registry().lock().unwrap_or_else(PoisonError::into_inner);
        copies.get(&key).cloned().map(|copy| (path, copy))
    });
    if let Some((path, copy)) = copy {
        let Ok(opened) = File::open(path) else {
            return ffi::SQLITE_CANTOPEN;
        };
        // SAFETY: SQLite allocated szOsFile bytes, at least an
        // InflightFile, and passes a place for the flags.
        unsafe {
            file.cast::<InflightFile>().write(InflightFile {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                copy: Arc::into_raw(copy),
                file: ManuallyDrop::new(opened),
            });
            if !out_flags.is_null() {
                *out_flags = flags;
            }
        }
        return ffi::SQLITE_OK;
    }
    // SAFETY: as above.
    unsafe { vfs::platform_open(platform, name, file, flags, out_flags) }
}

/// The open file behind `file` (opened by [`x_open`] with [`METHODS`]).
unsafe fn inflight<'a>(file: *mut ffi::sqlite3_file) -> &'a InflightFile {
    // SAFETY: only files written by x_open have METHODS; they stay valid
    // until x_close.
    unsafe { &*file.cast::<InflightFile>() }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: x_close is called once per x_open: the Arc leaked there is
    // taken back and the file closed, once.
    unsafe {
        let f = file.cast::<InflightFile>();
        drop(Arc::from_raw((*f).copy));
        ManuallyDrop::drop(&mut (*f).file);
        (*f).base.pMethods = std::ptr::null();
    }
    ffi::SQLITE_OK
}

/// Waits for the bytes, then reads them; past the end, zeros and a short
/// read, as SQLite expects.
unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    at: i64,
) -> c_int {
    // SAFETY: SQLite passes a buffer of `amt` bytes; the copy lives while
    // the file is open.
    let (f, buf) = unsafe {
        (
            inflight(file),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), amt as usize),
        )
    };
    let (copy, at) = (unsafe { &*f.copy }, at as u64);
    let last = at + buf.len().saturating_sub(1) as u64;
    if !(copy.wait_for(at) && copy.wait_for(last)) {
        return ffi::SQLITE_IOERR_READ;
    }
    let mut done = 0;
    while done < buf.len() {
        match f.file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return ffi::SQLITE_IOERR_READ,
        }
    }
    if done < buf.len() {
        buf[done..].fill(0);
        return ffi::SQLITE_IOERR_SHORT_READ;
    }
    ffi::SQLITE_OK
}

/// Read-only: SQLite never writes a file opened read-only.
unsafe extern "C" fn x_write(
    _file: *mut ffi::sqlite3_file,
    _buf: *const c_void,
    _amt: c_int,
    _at: i64,
) -> c_int {
    ffi::SQLITE_IOERR_WRITE
}

unsafe extern "C" fn x_truncate(_file: *mut ffi::sqlite3_file, _size: i64) -> c_int {
    ffi::SQLITE_IOERR_TRUNCATE
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}

/// The final length, from the start.
unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: SQLite passes a place for the size; the copy lives while the
    // file is open.
    unsafe { *size = (*inflight(file).copy).len as i64 };
    ffi::SQLITE_OK
}

/// No locks: nothing but the copier writes the file, and only bytes that
/// no reader has read yet.
unsafe extern "C" fn x_lock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes a place for the answer.
    unsafe { *out = 0 };
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A database of a few hundred pages whose index b-tree lies after its
    /// table's (as an index created after the rows does).
    fn source(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("source.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT i, printf('%040d', i * 7) FROM n;
             CREATE INDEX t_v ON t(v);",
        )
        .unwrap();
        path
    }

    /// What a reader of `path` finds: quick_check's answer and a digest of
    /// every row.
    fn read(path: &Path) -> Result<(String, String)> {
        let conn = open_readonly(path)?;
        let check = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let rows = conn.query_row(
            "SELECT count(*) || ':' || sum(id) || ':' || sum(length(v)) || ':' || max(v) FROM t",
            [],
            |r| r.get(0),
        )?;
        Ok((check, rows))
    }

    /// Copies `src` into `dest` as the raw copy does, a piece at a time,
    /// with a pause before each; returns the pieces in the order written.
    fn copy_slowly(src: &Path, feed: &mut Feed, dest: &Path, stop_after: usize) -> Vec<u64> {
        let (from, to) = (
            File::open(src).unwrap(),
            std::fs::OpenOptions::new().write(true).open(dest).unwrap(),
        );
        let mut order = Vec::new();
        while let Some((at, len)) = feed.next_piece() {
            if order.len() == stop_after {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            let mut buf = vec![0u8; len as usize];
            from.read_exact_at(&mut buf, at).unwrap();
            to.write_all_at(&buf, at).unwrap();
            feed.written(at);
            order.push(at);
        }
        order
    }

    #[test]
    fn a_copy_is_read_while_it_is_written_and_the_reader_is_served_first() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let expected = read(&src).unwrap();
        assert_eq!(expected.0, "ok");
        let dest = dir.path().join("copy.db");
        File::create(&dest).unwrap();
        let len = std::fs::metadata(&src).unwrap().len();
        let piece = 16 * 4096;
        let mut feed = Feed::start(&dest, len, piece).unwrap();
        // The reader starts before the first byte is there: every read
        // waits for its piece.
        let reader = std::thread::spawn({
            let dest = dest.clone();
            move || read(&dest).map_err(|e| format!("{e:#}"))
        });
        let order = copy_slowly(&src, &mut feed, &dest, usize::MAX);
        drop(feed);
        assert_eq!(reader.join().unwrap().unwrap(), expected);
        let pieces = len.div_ceil(piece);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        let all: Vec<u64> = (0..pieces).map(|i| i * piece).collect();
        assert_eq!(sorted, all, "every piece written once");
        let default: Vec<u64> = (0..1).chain((1..pieces).rev()).map(|i| i * piece).collect();
        assert_ne!(
            order, default,
            "no piece was written when the reader asked for it"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());
    }

    #[test]
    fn the_copier_writes_first_the_piece_a_reader_waits_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        File::create(&path).unwrap();
        let mut feed = Feed::start(&path, 10 * 100 + 50, 100).unwrap();
        let mut next = || feed.next_piece().map(|(at, _)| at / 100);
        // The header's piece, then from the last.
        assert_eq!((next(), next()), (Some(0), Some(10)));
        let copy = Arc::clone(&feed.copy);
        let waiting = std::thread::spawn(move || copy.wait_for(3 * 100 + 17));
        let asked = std::time::Instant::now();
        while feed.copy.wanted.load(Ordering::Acquire) != 3 {
            assert!(
                asked.elapsed() < Duration::from_secs(30),
                "the reader never asked"
            );
            std::thread::yield_now();
        }
        assert_eq!(feed.next_piece(), Some((300, 100)));
        assert!(!waiting.is_finished());
        feed.written(300);
        assert!(waiting.join().unwrap());
        let rest: Vec<u64> =
            std::iter::from_fn(|| feed.next_piece().map(|(at, _)| at / 100)).collect();
        assert_eq!(
            rest,
            [9, 8, 7, 6, 5, 4, 2, 1],
            "each piece once, the asked one skipped"
        );
        // The last piece is short.
        assert_eq!(feed.copy.len - 10 * 100, 50);
    }

    #[test]
    fn an_abandoned_copy_fails_its_reader_instead_of_keeping_it_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let dest = dir.path().join("copy.db");
        File::create(&dest).unwrap();
        let len = std::fs::metadata(&src).unwrap().len();
        let mut feed = Feed::start(&dest, len, 16 * 4096).unwrap();
        let (done, outcome) = mpsc::channel();
        std::thread::spawn({
            let dest = dest.clone();
            move || done.send(read(&dest).map_err(|e| format!("{e:#}")))
        });
        // Two pieces (the header's and the last), then the copier gives up.
        copy_slowly(&src, &mut feed, &dest, 2);
        drop(feed);
        let read = outcome
            .recv_timeout(Duration::from_secs(30))
            .expect("the reader still waits for an abandoned copy");
        let err = read.unwrap_err();
        assert!(err.contains("disk I/O error"), "{err}");
    }

    #[test]
    fn a_file_that_no_copy_writes_opens_as_usual() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        assert_eq!(read(&src).unwrap().0, "ok");
        // Nor does a finished copy's: its feed is gone.
        let dest = dir.path().join("copy.db");
        std::fs::copy(&src, &dest).unwrap();
        let mut feed = Feed::start(&dest, std::fs::metadata(&src).unwrap().len(), 4096).unwrap();
        while let Some((at, _)) = feed.next_piece() {
            feed.written(at);
        }
        drop(feed);
        let key = identity(&dest).unwrap();
        assert!(!registry().lock().unwrap().contains_key(&key));
        assert_eq!(read(&dest).unwrap(), read(&src).unwrap());
    }
}
