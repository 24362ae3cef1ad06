//! Copy-on-write databases: a file whose unchanged pages are read from
//! another one, for the in-place path's rehearsal.
//!
//! [`create`] makes `path` an *overlay* of `base` (the run's snapshot): a
//! sparse file as long as the database, holding only the pages written
//! through it. Every SQLite connection of this process that opens `path`
//! reads a page from that file when it was written, from `base` otherwise,
//! and writes pages to that file only; `base` is opened read-only and never
//! written. So a rehearsal costs what its statements write, not a copy of
//! the database, and every page it did not write *is* the snapshot's page
//! (the page proof then compares only the pages written, see
//! [`crate::pipeline::pageproof`]).
//!
//! How: a VFS registered as SQLite's default the first time an overlay is
//! made. It hands every file it does not know to the platform VFS untouched
//! (production's files included: their file objects are the platform's
//! own), and opens a registered overlay's main file with the methods below.
//! An overlay is seen with a rollback-journal header (bytes 18–19 = 1), so a
//! WAL-mode snapshot needs no shared memory; [`materialize`] writes the
//! snapshot's own bytes back when the overlay becomes a plain file.
//!
//! Outside this process (or once the process has [`forget`]-ten it) the
//! file is not a database: its unwritten pages are zeros, which SQLite
//! reports as corrupt rather than reading as data.
//!
//! One of the few places with `unsafe` code (the others: the VFS of
//! [`crate::inflight`], what the two share in [`crate::vfs`],
//! [`crate::target`]'s `dbfile`, one `sync_file_range` call in its
//! `files`, and the imposter test control in [`crate::pipeline::carry`]):
//! a VFS is C's interface.
//! Each block says what makes it sound.
#![allow(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use anyhow::{Context, Result, bail};
use rusqlite::ffi;

use crate::vfs::{self, Platform};

/// The VFS's name (also usable in a `vfs=` URI parameter).
const VFS_NAME: &CStr = c"sqlmorph-overlay";

/// One overlay: the base, the file of written pages, and which pages it holds.
struct Overlay {
    base: File,
    store: File,
    /// The store's identity: a path now naming another file is not this overlay.
    id: (u64, u64),
    page_size: u64,
    /// The base's header bytes 18–19 (file format versions), shown as 1.
    base_versions: [u8; 2],
    pages: RwLock<Pages>,
    locks: Mutex<Locks>,
}

/// The written pages (1-based numbers) and the database's length in bytes.
#[derive(Default)]
struct Pages {
    written: BTreeSet<u64>,
    len: u64,
}

/// SQLite's lock levels among this process's connections to one overlay.
#[derive(Default)]
struct Locks {
    shared: usize,
    /// A connection holds RESERVED or more (one writer at a time).
    writer: bool,
    /// The writer holds PENDING or EXCLUSIVE: no new SHARED lock.
    pending: bool,
}

/// The overlays of this process, by the full path SQLite opens.
fn registry() -> &'static Mutex<HashMap<CString, Arc<Overlay>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<CString, Arc<Overlay>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

static PLATFORM: OnceLock<Platform> = OnceLock::new();

/// The VFS that opened a file of a connection whose VFS is `vfs`, given the
/// file's `methods`: `vfs` itself, except under the overlay VFS, which hands
/// every file but an overlay to the platform VFS.
pub fn opener(
    vfs: *const ffi::sqlite3_vfs,
    methods: *const ffi::sqlite3_io_methods,
) -> *const ffi::sqlite3_vfs {
    let Some(platform) = PLATFORM.get() else {
        return vfs; // not registered: every file is its VFS's
    };
    // SAFETY: sqlite3_vfs_find is thread-safe and reads only the name.
    let overlay = unsafe { ffi::sqlite3_vfs_find(VFS_NAME.as_ptr()) };
    match std::ptr::eq(vfs, overlay) && !std::ptr::eq(methods, &METHODS) {
        true => platform.0,
        false => vfs,
    }
}

/// Registers the overlay VFS as SQLite's default, once.
fn register() -> Result<&'static Platform> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let platform = vfs::platform(None)?;
        let platform = PLATFORM.get_or_init(|| platform);
        let size = std::mem::size_of::<OverlayFile>();
        vfs::register(platform, VFS_NAME, size, x_open, true)
    })
    .clone()
    .map_err(anyhow::Error::msg)?;
    PLATFORM.get().context("the overlay VFS is not registered")
}

/// The full path SQLite gives xOpen for `path` (the platform's own answer).
fn full_path(platform: &Platform, path: &Path) -> Result<CString> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: the platform VFS is valid for the process; the buffer is
    // mxPathname + 1 bytes as the interface requires.
    unsafe {
        let vfs = &*platform.0;
        let mut out = vec![0u8; vfs.mxPathname as usize + 1];
        let full = vfs
            .xFullPathname
            .context("the platform VFS has no xFullPathname")?;
        let rc = full(
            platform.0,
            c.as_ptr(),
            out.len() as c_int,
            out.as_mut_ptr().cast(),
        );
        // SQLITE_OK_SYMLINK is success too.
        if rc & 0xff != ffi::SQLITE_OK {
            bail!("SQLite cannot name {} ({rc})", path.display());
        }
        Ok(CStr::from_ptr(out.as_ptr().cast()).to_owned())
    }
}

/// Makes `path` (which must not exist) an overlay of `base`: a sparse file
/// of `base`'s length holding its first page. Until [`forget`] or
/// [`materialize`], SQLite connections of this process see at `path` the
/// pages written through them over `base`'s.
pub fn create(base: &Path, path: &Path) -> Result<()> {
    let platform = register()?;
    let base_file = File::open(base).with_context(|| format!("opening {}", base.display()))?;
    let mut header = [0u8; 100];
    base_file
        .read_exact_at(&mut header, 0)
        .with_context(|| format!("reading the header of {}", base.display()))?;
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => bail!("{}: page size {n} in its header", base.display()),
    };
    let len = base_file.metadata()?.len();
    let store = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(crate::private::FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    store.set_len(len)?;
    let meta = store.metadata()?;
    let overlay = Overlay {
        base: base_file,
        store,
        id: (meta.dev(), meta.ino()),
        page_size,
        base_versions: [header[18], header[19]],
        pages: RwLock::new(Pages {
            written: BTreeSet::new(),
            len,
        }),
        locks: Mutex::default(),
    };
    // Page 1 goes in at once (so the file starts as a database does),
    // with the rollback-journal versions.
    let mut first = vec![0u8; page_size as usize];
    overlay.read(&mut first, 0)?;
    overlay.write(&first, 0)?;
    let key = full_path(platform, path)?;
    registry()
        .lock()
        .map_err(|_| anyhow::anyhow!("the overlay registry is poisoned"))?
        .insert(key, Arc::new(overlay));
    Ok(())
}

/// The overlay registered for `path`, if the file there is still its store.
fn lookup(path: &Path) -> Option<Arc<Overlay>> {
    let key = full_path(PLATFORM.get()?, path).ok()?;
    let found = registry().lock().ok()?.get(&key).cloned()?;
    found.is_at(path).then_some(found)
}

/// `path` is a plain file again for this process (its store is left as it
/// is; delete it as any file).
pub fn forget(path: &Path) {
    if let (Some(platform), Ok(mut map)) = (PLATFORM.get(), registry().lock())
        && let Ok(key) = full_path(platform, path)
    {
        map.remove(&key);
    }
}

/// True when `path` is an overlay of this process.
pub fn is_overlay(path: &Path) -> bool {
    lookup(path).is_some()
}

/// Turns an overlay into the complete database it shows (the base's pages
/// with the written ones over them, the base's journal-mode header bytes),
/// renamed over `path`; nothing when `path` is not an overlay. For what
/// needs a plain file: a recipe that opens the rehearsal, a kept run file.
pub fn materialize(path: &Path) -> Result<bool> {
    let Some(overlay) = lookup(path) else {
        return Ok(false);
    };
    let tmp = crate::private::temp_file_in(crate::private::parent(path), ".migrated-", ".tmp")?;
    let (mut base, out) = (&overlay.base, tmp.as_file());
    std::io::copy(&mut base, &mut &*out)
        .with_context(|| format!("writing the complete {}", path.display()))?;
    let pages = overlay
        .pages
        .read()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut page = vec![0u8; overlay.page_size as usize];
    for &p in &pages.written {
        let at = (p - 1) * overlay.page_size;
        overlay.store.read_exact_at(&mut page, at)?;
        if p == 1 {
            page[18..20].copy_from_slice(&overlay.base_versions);
        }
        out.write_all_at(&page, at)?;
    }
    out.set_len(pages.len)?;
    drop(pages);
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    forget(path);
    Ok(true)
}

/// An overlay's pages for the page proof: which were written, and each
/// page as SQLite sees it.
pub struct View(Arc<Overlay>);

/// The view of `path` when it is an overlay.
pub fn view(path: &Path) -> Option<View> {
    lookup(path).map(View)
}

impl View {
    /// The database's length in bytes.
    pub fn bytes(&self) -> u64 {
        self.0.pages.read().map(|p| p.len).unwrap_or(0)
    }

    /// The pages written through the overlay (1-based): every other page
    /// is read from the base itself.
    pub fn written(&self) -> Vec<u64> {
        let pages = self.0.pages.read().map(|p| p.written.clone());
        pages.unwrap_or_default().into_iter().collect()
    }

    /// Reads as SQLite would (short reads are an error here).
    pub fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        if at + buf.len() as u64 > self.bytes() {
            bail!("reading past the end of the rehearsal (byte {at})");
        }
        self.0.read(buf, at)
    }

    /// True when the database is shorter than its base (a page-level
    /// deploy would have to cut production's file).
    pub fn shrinks(&self) -> bool {
        self.0
            .base
            .metadata()
            .map_or(true, |m| self.bytes() < m.len())
    }

    /// Calls `f` with each page that differs from the base, in page order
    /// but page 1 last, page 1 with the base's journal-mode bytes: written
    /// over a database whose pages are the base's, they make it this one.
    /// (Page 1 holds the schema cookie: written first, it would make SQLite
    /// reload a schema whose new pages are not there yet.)
    pub fn for_each_changed(&self, f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        let size = self.0.page_size;
        let base_len = self.0.base.metadata()?.len();
        let (mut old, mut new) = (vec![0u8; size as usize], vec![0u8; size as usize]);
        let mut order = self.written();
        order.sort_by_key(|&p| (p == 1, p));
        for p in order {
            let at = (p - 1) * size;
            self.0.store.read_exact_at(&mut new, at)?;
            if p == 1 {
                new[18..20].copy_from_slice(&self.0.base_versions);
            }
            if at + size <= base_len {
                self.0.base.read_exact_at(&mut old, at)?;
                if old == new {
                    continue;
                }
            }
            f(p, &new)?;
        }
        Ok(())
    }

    /// Writes the pages that differ from the base into the database `conn`
    /// has open (through `sqlite_dbpage`, inside the caller's write
    /// transaction: SQLite journals them, or appends them to the WAL, as any
    /// write). When that database's pages are the base's, it becomes this
    /// one. Returns how many pages were written. After the commit, call
    /// [`reset_cache`]: the pages went in beside SQLite's b-tree layer.
    pub fn write_into(&self, conn: &rusqlite::Connection) -> Result<u64> {
        let mut insert =
            conn.prepare("INSERT INTO main.sqlite_dbpage(pgno, data) VALUES (?1, ?2)")?;
        let mut written = 0;
        self.for_each_changed(&mut |pgno, data| {
            insert
                .execute(rusqlite::params![pgno as i64, data])
                .with_context(|| format!("writing page {pgno}"))?;
            written += 1;
            Ok(())
        })?;
        Ok(written)
    }

    /// Writes `bytes` at `at` as a connection would (for tests that plant
    /// a change in the rehearsal).
    pub fn write_at(&self, bytes: &[u8], at: u64) -> Result<()> {
        self.0.write(bytes, at)
    }
}

/// Makes `conn` forget every cached page and its schema, after pages were
/// written beside its b-tree layer ([`View::write_into`]): its next
/// statement reads them anew. `conn` must have no transaction open.
pub fn reset_cache(conn: &rusqlite::Connection) -> Result<()> {
    // SAFETY: the handle is valid while `conn` is borrowed, this file
    // control takes no argument, and it is a no-op inside a transaction.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_RESET_CACHE,
            std::ptr::null_mut(),
        )
    };
    if rc != ffi::SQLITE_OK {
        bail!("resetting the page cache failed ({rc})");
    }
    // SQLite's documented way to make a connection reload its schema.
    conn.execute_batch("PRAGMA writable_schema = RESET")?;
    Ok(())
}

impl Overlay {
    fn is_at(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Reads `buf.len()` bytes at `at`, page by page; bytes past the end
    /// are zeros (the caller reports the short read).
    fn read(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let pages = self.pages.read().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut done = 0usize;
        while done < buf.len() {
            let off = at + done as u64;
            let page = off / self.page_size + 1;
            let within = off % self.page_size;
            let n = ((self.page_size - within) as usize).min(buf.len() - done);
            let part = &mut buf[done..done + n];
            if off >= pages.len {
                part.fill(0);
            } else if pages.written.contains(&page) {
                self.store.read_exact_at(part, off)?;
            } else {
                read_or_zero(&self.base, part, off)?;
                if page == 1 {
                    for (i, b) in part.iter_mut().enumerate() {
                        if (18..20).contains(&(within + i as u64)) {
                            *b = 1;
                        }
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `bytes` at `at`, page by page; a page written in part first
    /// takes its current content.
    fn write(&self, bytes: &[u8], at: u64) -> Result<()> {
        let mut done = 0usize;
        while done < bytes.len() {
            let off = at + done as u64;
            let page = off / self.page_size + 1;
            let within = off % self.page_size;
            let n = ((self.page_size - within) as usize).min(bytes.len() - done);
            let start = (page - 1) * self.page_size;
            let known = self
                .pages
                .read()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .written
                .contains(&page);
            if !known && n as u64 != self.page_size {
                let mut whole = vec![0u8; self.page_size as usize];
                self.read(&mut whole, start)?;
                self.store.write_all_at(&whole, start)?;
            }
            self.store.write_all_at(&bytes[done..done + n], off)?;
            let mut pages = self
                .pages
                .write()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            pages.written.insert(page);
            pages.len = pages.len.max(off + n as u64);
            done += n;
        }
        Ok(())
    }

    fn truncate(&self, len: u64) -> Result<()> {
        let mut pages = self
            .pages
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let keep = len.div_ceil(self.page_size);
        pages.written.retain(|&p| p <= keep);
        pages.len = len;
        self.store.set_len(len)?;
        Ok(())
    }
}

/// Reads from `file` at `at`, zeros past its end.
fn read_or_zero(file: &File, buf: &mut [u8], at: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf[done..].fill(0);
    Ok(())
}

// ------------------------------------------------------------------ the VFS

/// An open overlay as SQLite holds it (`pMethods` first, as SQLite needs).
#[repr(C)]
struct OverlayFile {
    base: ffi::sqlite3_file,
    overlay: *const Overlay,
    lock: c_int,
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
    xUnlock: Some(x_unlock),
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

/// Opens a registered overlay's main file with [`METHODS`]; everything
/// else is the platform VFS's, called as if SQLite had called it.
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
    // SAFETY: these are xOpen's arguments from SQLite.
    let path = unsafe { vfs::path_to_open(name, flags, ffi::SQLITE_OPEN_MAIN_DB) };
    if let Some(overlay) = path.and_then(lookup) {
        let f = file.cast::<OverlayFile>();
        // SAFETY: SQLite allocated szOsFile bytes, at least an OverlayFile.
        unsafe {
            f.write(OverlayFile {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                overlay: Arc::into_raw(overlay),
                lock: ffi::SQLITE_LOCK_NONE,
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

/// The overlay behind a file SQLite opened with [`x_open`].
unsafe fn overlay_of<'a>(file: *mut ffi::sqlite3_file) -> &'a Overlay {
    // SAFETY: only files opened by x_open have METHODS, and their overlay
    // pointer holds an Arc until x_close.
    unsafe { &*(*file.cast::<OverlayFile>()).overlay }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the Arc leaked by x_open is taken back once.
    unsafe {
        let f = file.cast::<OverlayFile>();
        x_unlock(file, ffi::SQLITE_LOCK_NONE);
        drop(Arc::from_raw((*f).overlay));
        (*f).base.pMethods = std::ptr::null();
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    at: i64,
) -> c_int {
    // SAFETY: SQLite passes a buffer of `amt` bytes.
    let (overlay, buf) = unsafe {
        (
            overlay_of(file),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), amt as usize),
        )
    };
    let at = at as u64;
    if overlay.read(buf, at).is_err() {
        return ffi::SQLITE_IOERR_READ;
    }
    let len = overlay.pages.read().map(|p| p.len).unwrap_or(0);
    if at + buf.len() as u64 > len {
        ffi::SQLITE_IOERR_SHORT_READ
    } else {
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    at: i64,
) -> c_int {
    // SAFETY: SQLite passes `amt` bytes.
    let (overlay, bytes) = unsafe {
        (
            overlay_of(file),
            std::slice::from_raw_parts(buf.cast::<u8>(), amt as usize),
        )
    };
    match overlay.write(bytes, at as u64) {
        Ok(()) => ffi::SQLITE_OK,
        Err(_) => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    match unsafe { overlay_of(file) }.truncate(size as u64) {
        Ok(()) => ffi::SQLITE_OK,
        Err(_) => ffi::SQLITE_IOERR_TRUNCATE,
    }
}

/// A rehearsal is scratch: nothing is synced.
unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let len = unsafe { overlay_of(file) }.pages.read().map(|p| p.len);
    match len {
        // SAFETY: SQLite passes a place for the size.
        Ok(len) => unsafe {
            *size = len as i64;
            ffi::SQLITE_OK
        },
        Err(_) => ffi::SQLITE_IOERR_FSTAT,
    }
}

/// SQLite's locks among this process's connections (no other process
/// sees an overlay): many readers, or one writer whose PENDING lock keeps
/// new readers out until its EXCLUSIVE lock is dropped.
unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: the file is an OverlayFile (see overlay_of).
    let f = unsafe { &mut *file.cast::<OverlayFile>() };
    let Ok(mut locks) = unsafe { overlay_of(file) }.locks.lock() else {
        return ffi::SQLITE_IOERR_LOCK;
    };
    if level <= f.lock {
        return ffi::SQLITE_OK;
    }
    match level {
        ffi::SQLITE_LOCK_SHARED => {
            if locks.pending {
                return ffi::SQLITE_BUSY;
            }
            locks.shared += 1;
        }
        ffi::SQLITE_LOCK_RESERVED => {
            if locks.writer {
                return ffi::SQLITE_BUSY;
            }
            locks.writer = true;
        }
        _ => {
            // PENDING or EXCLUSIVE: the writer's own SHARED lock is the only one.
            if f.lock < ffi::SQLITE_LOCK_RESERVED {
                if locks.writer {
                    return ffi::SQLITE_BUSY;
                }
                locks.writer = true;
            }
            locks.pending = true;
            if level == ffi::SQLITE_LOCK_EXCLUSIVE && locks.shared > 1 {
                f.lock = ffi::SQLITE_LOCK_PENDING;
                return ffi::SQLITE_BUSY;
            }
        }
    }
    f.lock = level;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: the file is an OverlayFile (see overlay_of).
    let f = unsafe { &mut *file.cast::<OverlayFile>() };
    let Ok(mut locks) = unsafe { overlay_of(file) }.locks.lock() else {
        return ffi::SQLITE_IOERR_UNLOCK;
    };
    if level >= f.lock {
        return ffi::SQLITE_OK;
    }
    if f.lock >= ffi::SQLITE_LOCK_RESERVED {
        locks.writer = false;
        locks.pending = false;
    }
    if level == ffi::SQLITE_LOCK_NONE && f.lock >= ffi::SQLITE_LOCK_SHARED {
        locks.shared -= 1;
    }
    f.lock = level;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let held = unsafe { overlay_of(file) }.locks.lock().map(|l| l.writer);
    // SAFETY: SQLite passes a place for the answer.
    unsafe { *out = c_int::from(held.unwrap_or(true)) };
    ffi::SQLITE_OK
}

/// Removes `path`'s store and forgets it (the run's scratch clean-up).
pub fn remove(path: &Path) {
    forget(path);
    let _ = std::fs::remove_file(path);
}

/// The path of a fresh scratch name beside `path` (for tests).
#[cfg(test)]
fn beside(path: &Path, name: &str) -> PathBuf {
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn base(dir: &Path, wal: bool) -> PathBuf {
        let path = dir.join("base.db");
        let conn = Connection::open(&path).unwrap();
        if wal {
            conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
                .unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT i, printf('%0100d', i) FROM n;",
        )
        .unwrap();
        drop(conn);
        path
    }

    fn digest(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn writes_go_to_the_overlay_and_the_base_is_never_written() {
        for wal in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let base = base(dir.path(), wal);
            let before = digest(&base);
            let path = beside(&base, "overlay.db");
            create(&base, &path).unwrap();
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=MEMORY;
                 BEGIN; CREATE INDEX tv ON t(v); ALTER TABLE t ADD COLUMN w INTEGER;
                 UPDATE t SET v = 'changed' WHERE id = 7; COMMIT;",
            )
            .unwrap();
            drop(conn);
            assert_eq!(digest(&base), before, "the base was written (wal {wal})");
            let written = view(&path).unwrap().written();
            assert!(written.contains(&1) && written.len() < 200, "{written:?}");
            // Other connections, and threads, see the overlay's database.
            let seen = std::thread::spawn({
                let path = path.clone();
                move || {
                    let c = Connection::open(&path).unwrap();
                    let ok: String = c
                        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                        .unwrap();
                    let v: String = c
                        .query_row("SELECT v FROM t WHERE id = 7", [], |r| r.get(0))
                        .unwrap();
                    (ok, v)
                }
            })
            .join()
            .unwrap();
            assert_eq!(seen, ("ok".to_string(), "changed".to_string()));
            // Materialized, it is the same database as a plain file, with
            // the base's journal mode.
            assert!(materialize(&path).unwrap());
            assert!(!is_overlay(&path));
            let c = Connection::open(&path).unwrap();
            let mode: String = c
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, if wal { "wal" } else { "delete" });
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM t WHERE v = 'changed' AND w IS NULL",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn a_file_that_is_not_a_registered_overlay_is_the_platforms() {
        let dir = tempfile::tempdir().unwrap();
        let base = base(dir.path(), false);
        let path = beside(&base, "overlay.db");
        create(&base, &path).unwrap();
        // Replaced by another file: no longer the overlay.
        std::fs::remove_file(&path).unwrap();
        std::fs::copy(&base, &path).unwrap();
        assert!(!is_overlay(&path));
        let c = Connection::open(&path).unwrap();
        c.execute("DELETE FROM t WHERE id > 10", []).unwrap();
        drop(c);
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let n: i64 = Connection::open(&base)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5000);
    }

    #[test]
    fn a_second_writer_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let base = base(dir.path(), false);
        let path = beside(&base, "overlay.db");
        create(&base, &path).unwrap();
        let a = Connection::open(&path).unwrap();
        let b = Connection::open(&path).unwrap();
        b.busy_timeout(std::time::Duration::ZERO).unwrap();
        a.execute_batch("BEGIN IMMEDIATE; DELETE FROM t WHERE id = 1;")
            .unwrap();
        let err = b.execute("DELETE FROM t WHERE id = 2", []).unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
        a.execute_batch("COMMIT").unwrap();
        b.execute("DELETE FROM t WHERE id = 2", []).unwrap();
        let n: i64 = a
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4998);
    }
}
