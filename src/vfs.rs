//! What this crate's two SQLite VFSes share ([`crate::overlay`] and
//! [`crate::inflight`]). Each is a copy of the platform's VFS with its own
//! name and `xOpen`: it opens the files it knows with its own methods and
//! hands every other file to the platform's VFS, untouched.
//!
//! One of the few places with `unsafe` code (listed in [`crate::overlay`]):
//! a VFS is C's interface. Each block says what makes it sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::ffi;

/// The platform's VFS, which a VFS of this crate hands other files to.
pub struct Platform(pub *mut ffi::sqlite3_vfs);
// SAFETY: a VFS object is immutable once registered and SQLite calls it
// from any thread.
unsafe impl Send for Platform {}
unsafe impl Sync for Platform {}

/// A VFS's `xOpen`.
pub type XOpen = unsafe extern "C" fn(
    *mut ffi::sqlite3_vfs,
    *const c_char,
    *mut ffi::sqlite3_file,
    c_int,
    *mut c_int,
) -> c_int;

/// Finds the platform's VFS: the one named `name`, or SQLite's default.
pub fn platform(name: Option<&CStr>) -> Result<Platform, String> {
    // SAFETY: sqlite3_vfs_find is thread-safe and reads only the name.
    let vfs = unsafe { ffi::sqlite3_vfs_find(name.map_or(std::ptr::null(), CStr::as_ptr)) };
    match (vfs.is_null(), name) {
        (false, _) => Ok(Platform(vfs)),
        (true, Some(name)) => Err(format!("SQLite has no {} VFS", name.to_string_lossy())),
        (true, None) => Err("SQLite has no default VFS".into()),
    }
}

/// Registers a copy of `platform` named `name` whose files are opened by
/// `open` and take up to `file_size` bytes (SQLite's default VFS from now
/// on when `default`).
pub fn register(
    platform: &Platform,
    name: &'static CStr,
    file_size: usize,
    open: XOpen,
    default: bool,
) -> Result<(), String> {
    // SAFETY: the platform VFS is valid for the process and only read; the
    // copy is leaked (VFSes live for the process); sqlite3_vfs_register is
    // thread-safe.
    unsafe {
        let mut vfs = std::ptr::read(platform.0);
        vfs.zName = name.as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.szOsFile = vfs.szOsFile.max(file_size as c_int);
        vfs.xOpen = Some(open);
        match ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), c_int::from(default)) {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(format!(
                "registering the {} VFS failed ({rc})",
                name.to_string_lossy()
            )),
        }
    }
}

/// The path of the file SQLite asks `xOpen` to open, when `flags` include
/// all of `wanted` (a main database file, read-only, …).
///
/// # Safety
/// `name` is null or what SQLite passes `xOpen`: a NUL-terminated path
/// (URI parameters follow the first NUL and are not read), valid until the
/// file is closed.
pub unsafe fn path_to_open<'a>(
    name: *const c_char,
    flags: c_int,
    wanted: c_int,
) -> Option<&'a Path> {
    if name.is_null() || flags & wanted != wanted {
        return None;
    }
    // SAFETY: as the caller promises.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    Some(Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// Opens a file with the platform's VFS, as if SQLite had called it.
///
/// # Safety
/// The arguments are those SQLite passed the calling `xOpen`.
pub unsafe fn platform_open(
    platform: &Platform,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: the platform's xOpen, with the platform's VFS, as SQLite would.
    unsafe {
        match (*platform.0).xOpen {
            Some(open) => open(platform.0, name, file, flags, out_flags),
            None => ffi::SQLITE_CANTOPEN,
        }
    }
}

/// No file controls: SQLite then does without.
///
/// # Safety
/// None needed: the arguments are not read.
pub unsafe extern "C" fn x_file_control(
    _file: *mut ffi::sqlite3_file,
    _op: c_int,
    _arg: *mut c_void,
) -> c_int {
    ffi::SQLITE_NOTFOUND
}

/// 4096 bytes.
///
/// # Safety
/// None needed: the argument is not read.
pub unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    4096
}

/// None.
///
/// # Safety
/// None needed: the argument is not read.
pub unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    0
}
