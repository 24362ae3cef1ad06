//! SQLite's own open file of a connection's main database, for the
//! rollback-journal swap ([`super::journal`]), which writes production
//! under the lock that connection holds.
//!
//! Why not `std::fs::File`: POSIX locks belong to the process and the file,
//! so closing *any* descriptor of production would drop the locks SQLite
//! holds on it. Through the connection's own `sqlite3_file` (from
//! `SQLITE_FCNTL_FILE_POINTER`) nothing is opened or closed.
//!
//! The second module with `unsafe` code (after [`crate::overlay`]): these
//! are C's I/O methods. Each block says what makes it sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
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
    _conn: PhantomData<&'c Connection>,
}

impl<'c> DbFile<'c> {
    /// The connection's open main database file.
    pub fn of(conn: &'c Connection) -> Result<DbFile<'c>> {
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: the handle is valid while `conn` is borrowed; this file
        // control writes one pointer to the location given.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast::<c_void>(),
            )
        };
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
            _conn: PhantomData,
        })
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
