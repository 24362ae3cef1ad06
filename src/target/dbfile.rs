//! SQLite's own open file of a connection's main database, for the
//! rollback-journal swap ([`super::journal`]), which writes production
//! under the lock that connection holds.
//!
//! Why not `std::fs::File`: POSIX locks belong to the process and the file,
//! so closing *any* descriptor of production would drop the locks SQLite
//! holds on it. Through the connection's own `sqlite3_file` (from
//! `SQLITE_FCNTL_FILE_POINTER`) nothing is opened or closed.
//!
//! A module with `unsafe` code (like [`crate::overlay`]): these
//! are C's I/O methods. Each block says what makes it sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt;
use std::ptr::NonNull;

use anyhow::{Result, bail};
use rusqlite::{Connection, ffi};

/// The most one I/O call is given: SQLite itself never reads or writes more
/// than a page (64 KiB at most), and the unix VFS masks a write's length to
/// 17 bits, so longer buffers go in pieces.
const PIECE: usize = 1 << 16;

/// The main database file of a borrowed connection. Not `Send` (a raw
/// pointer): it is used on the connection's thread only.
pub struct DbFile<'c> {
    file: NonNull<ffi::sqlite3_file>,
    methods: &'c ffi::sqlite3_io_methods,
    /// The unix VFS's descriptor of the file ([`DbFile::descriptor`]).
    fd: Option<c_int>,
    _conn: PhantomData<&'c Connection>,
}

/// The first fields of the unix VFS's `unixFile` (SQLite's os_unix.c),
/// whose `h` is the file's descriptor.
#[repr(C)]
struct UnixFileHead {
    methods: *const ffi::sqlite3_io_methods,
    vfs: *const ffi::sqlite3_vfs,
    inode: *const c_void,
    h: c_int,
}

impl<'c> DbFile<'c> {
    /// The connection's open main database file.
    pub fn of(conn: &'c Connection) -> Result<DbFile<'c>> {
        let (file, rc) = pointer_of::<ffi::sqlite3_file>(conn, ffi::SQLITE_FCNTL_FILE_POINTER);
        let Some(file) = NonNull::new(file).filter(|_| rc == ffi::SQLITE_OK) else {
            bail!("SQLite did not give its file of the database ({rc})");
        };
        // SAFETY: the file object and its methods live as long as the
        // connection keeps the database open, which the borrow of `conn`
        // (no `close`, no `DETACH` of main) guarantees for `'c`.
        let methods = unsafe { file.as_ref().pMethods.as_ref() };
        let Some(methods) = methods else {
            bail!("the database file is not open");
        };
        Ok(DbFile {
            file,
            methods,
            fd: unix_descriptor(conn, file),
            _conn: PhantomData,
        })
    }

    /// The descriptor SQLite's unix VFS reads and writes the file with,
    /// for hints such as [`super::files::start_writeback`]. Borrowed, never
    /// to be closed (closing any descriptor of the file would drop the
    /// locks SQLite holds on it). `None` under another VFS.
    pub fn descriptor(&self) -> Option<BorrowedFd<'c>> {
        // SAFETY: SQLite keeps the descriptor open as long as the file is
        // (for `'c`, see `of`), and it was checked to be this file's.
        self.fd.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// SQLite's result code as an error (so that a full disk is known as
    /// one, see [`crate::error::is_disk_full`]).
    fn check(&self, rc: c_int, what: &str) -> Result<()> {
        if rc != ffi::SQLITE_OK {
            let e = rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None);
            return Err(anyhow::Error::new(e).context(format!("{what} failed")));
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `at` (a short read is an error).
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let Some(read) = self.methods.xRead else {
            bail!("the database file cannot be read");
        };
        for (i, piece) in buf.chunks_mut(PIECE).enumerate() {
            let off = i64::try_from(at + (i * PIECE) as u64)?;
            // SAFETY: `piece` is valid for `piece.len()` (at most 64 KiB)
            // bytes of writes; the file is open (see `of`).
            let rc = unsafe {
                read(
                    self.file.as_ptr(),
                    piece.as_mut_ptr().cast(),
                    c_int::try_from(piece.len())?,
                    off,
                )
            };
            self.check(rc, "reading the database")?;
        }
        Ok(())
    }

    /// Writes all of `buf` at `at`.
    pub fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        let Some(write) = self.methods.xWrite else {
            bail!("the database file cannot be written");
        };
        for (i, piece) in buf.chunks(PIECE).enumerate() {
            let off = i64::try_from(at + (i * PIECE) as u64)?;
            // SAFETY: `piece` is valid for `piece.len()` (at most 64 KiB)
            // bytes of reads; the file is open (see `of`).
            let rc = unsafe {
                write(
                    self.file.as_ptr(),
                    piece.as_ptr().cast(),
                    c_int::try_from(piece.len())?,
                    off,
                )
            };
            self.check(rc, "writing the database")?;
        }
        Ok(())
    }

    /// Cuts (or extends) the file to `len` bytes.
    pub fn truncate(&self, len: u64) -> Result<()> {
        let Some(truncate) = self.methods.xTruncate else {
            bail!("the database file cannot be truncated");
        };
        // SAFETY: the file is open (see `of`).
        let rc = unsafe { truncate(self.file.as_ptr(), i64::try_from(len)?) };
        self.check(rc, "truncating the database")
    }

    /// Makes what was written durable (SQLite's own sync of the file).
    pub fn sync(&self) -> Result<()> {
        let Some(sync) = self.methods.xSync else {
            bail!("the database file cannot be synced");
        };
        // SAFETY: the file is open (see `of`).
        let rc = unsafe { sync(self.file.as_ptr(), ffi::SQLITE_SYNC_NORMAL) };
        self.check(rc, "syncing the database")
    }

    /// The file's length in bytes.
    pub fn size(&self) -> Result<u64> {
        let Some(size) = self.methods.xFileSize else {
            bail!("the database file has no size");
        };
        let mut len: i64 = 0;
        // SAFETY: `len` is a valid location for one i64; the file is open.
        let rc = unsafe { size(self.file.as_ptr(), &raw mut len) };
        self.check(rc, "sizing the database")?;
        Ok(u64::try_from(len)?)
    }
}

/// The pointer a file control `op` of the main database gives (one of
/// those that write one pointer, such as `SQLITE_FCNTL_FILE_POINTER`), with
/// SQLite's result code.
fn pointer_of<T>(conn: &Connection, op: c_int) -> (*mut T, c_int) {
    let mut out: *mut T = std::ptr::null_mut();
    // SAFETY: the handle is valid while `conn` is borrowed; these file
    // controls write one pointer to the location given.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            op,
            (&raw mut out).cast::<c_void>(),
        )
    };
    (out, rc)
}

/// The descriptor of `file` when one of SQLite's unix VFSes opened it (its
/// files are `unixFile`s; under the overlay VFS, every file but an overlay
/// is the platform VFS's) and the descriptor found there
/// is the database's own file (same device and inode: a `unixFile` laid
/// out otherwise than [`UnixFileHead`] yields `None`, not another file).
fn unix_descriptor(conn: &Connection, file: NonNull<ffi::sqlite3_file>) -> Option<c_int> {
    let (vfs, rc) = pointer_of::<ffi::sqlite3_vfs>(conn, ffi::SQLITE_FCNTL_VFS_POINTER);
    if rc != ffi::SQLITE_OK {
        return None;
    }
    // SAFETY: `file` is open (see `DbFile::of`).
    let methods = unsafe { file.as_ref().pMethods };
    let vfs = crate::overlay::opener(vfs, methods);
    // SAFETY: a registered VFS outlives its connections; its name is a
    // NUL-terminated string.
    let name = unsafe { vfs.as_ref() }
        .filter(|v| !v.zName.is_null())
        .map(|v| unsafe { CStr::from_ptr(v.zName) })?;
    if !name.to_bytes().starts_with(b"unix") {
        return None;
    }
    // SAFETY: a file a unix VFS opened is a `unixFile`, which begins with
    // the fields of `UnixFileHead`.
    let fd = unsafe { file.cast::<UnixFileHead>().as_ref().h };
    let want = std::fs::metadata(conn.path()?).ok()?;
    // SAFETY: `st` is a stat buffer that fstat only writes; a descriptor
    // that is not open makes it fail.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
        return None;
    }
    // Their types differ between platforms.
    #[allow(clippy::useless_conversion)]
    let same = u64::from(st.st_dev) == want.dev() && u64::from(st.st_ino) == want.ino();
    same.then_some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;
    use std::fs::File;
    use std::mem::ManuallyDrop;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Reads the descriptor of `path`'s connection without closing it
    /// (closing would drop SQLite's locks): it is that database, header
    /// first, and SQLite goes on using it.
    fn assert_descriptor_of(path: &Path) {
        let conn = Connection::open(path).unwrap();
        let file = DbFile::of(&conn).unwrap();
        let fd = file.descriptor().expect("the unix VFS's descriptor");
        // SAFETY: the descriptor is open; ManuallyDrop never closes it.
        let borrowed = ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
        let mut head = [0u8; 16];
        borrowed.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"SQLite format 3\0");
        let meta = std::fs::metadata(path).unwrap();
        let seen = borrowed.metadata().unwrap();
        assert_eq!((seen.dev(), seen.ino()), (meta.dev(), meta.ino()));
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 42);
    }

    #[test]
    fn the_descriptor_is_the_open_database_file_under_the_overlay_vfs_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
            .unwrap();
        assert_descriptor_of(&path);
        // The overlay VFS becomes SQLite's default: a plain file is still
        // the platform VFS's, an overlay is not a file of its own.
        let over = dir.path().join("overlay.sqlite3");
        crate::overlay::create(&path, &over).unwrap();
        assert_descriptor_of(&path);
        let conn = Connection::open(&over).unwrap();
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 42);
        assert!(DbFile::of(&conn).unwrap().descriptor().is_none());
        crate::overlay::forget(&over);
    }

    #[test]
    fn another_vfs_gives_no_descriptor() {
        let conn = Connection::open_with_flags_and_vfs(
            "/sqlmorph-dbfile-test",
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            c"memdb",
        )
        .unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        let file = DbFile::of(&conn).unwrap();
        assert!(file.descriptor().is_none());
    }
}
