//! Opening databases without surprises: a path that must be read is checked
//! first (exists, is a file, is SQLite, is readable), opened read-only so
//! nothing is ever created or changed (a file another process keeps locked
//! is reported as locked, exit 3, never as corrupt), and a `.sql` file is
//! executed into an in-memory database statement by statement so an error
//! can name its line.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::error::{aborted, input};

const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// True when the path names a `.sql` script rather than a database file.
pub fn is_sql_script(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
}

/// Checks that `path` is an existing, readable SQLite file, without opening
/// it through SQLite.
pub fn check_sqlite_file(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(input(format!(
                "{shown}: no such file (check the path; sqlmorph never creates a database it was asked to read)"
            )));
        }
        Err(e) => return Err(input(format!("{shown}: cannot read: {e}"))),
    };
    if meta.is_dir() {
        return Err(input(format!(
            "{shown} is a directory, not a SQLite database file"
        )));
    }
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| {
            input(format!(
                "{shown}: cannot read: {e} (check the file's permissions)"
            ))
        })?;
    if !head.is_empty() && head.as_slice() != HEADER {
        return Err(input(format!(
            "{shown} is not a SQLite database (its first bytes are not \"SQLite format 3\"); \
             a schema written as SQL text must have the .sql extension"
        )));
    }
    Ok(())
}

/// Like [`check_sqlite_file`], and refuses a zero-byte file: SQLite would
/// take it for an empty database, but a production that is empty is not a
/// database yet (a truncated copy, a wrong path), so nothing migrates it.
pub fn check_database(path: &Path) -> Result<()> {
    check_sqlite_file(path)?;
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(input(format!(
            "{} is empty (0 bytes): it is not a SQLite database yet, so there is nothing \
             to migrate; check the path (sqlmorph leaves the file as it is)",
            path.display()
        )));
    }
    Ok(())
}

/// Opens an existing SQLite file read-only and makes SQLite read its schema,
/// so that a corrupt file fails here with a message naming it.
pub fn open_readonly(path: &Path) -> Result<Connection> {
    check_sqlite_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| input(format!("{}: cannot open: {e}", path.display())))?;
    probe(&conn, path)?;
    Ok(conn)
}

/// Opens an existing SQLite file for writing (scratch files of a run only).
pub fn open_rw(path: &Path) -> Result<Connection> {
    check_sqlite_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    probe(&conn, path)?;
    Ok(conn)
}

/// Makes SQLite read the schema of `path`, which `conn` has open, so that
/// a corrupt file fails here with a message naming it.
pub fn probe(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| {
        if is_busy(&e) {
            locked(path)
        } else {
            corrupt(path, &e)
        }
    })?;
    Ok(())
}

/// True when SQLite gave up waiting for another connection's lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code().is_some_and(|c| {
        matches!(
            c,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        )
    })
}

/// The message for a file another process kept locked while it was read
/// (exit 3: nothing was changed).
fn locked(path: &Path) -> anyhow::Error {
    aborted(format!(
        "{} stayed locked by another process (a transaction held open by the application); \
         nothing was changed. Retry when it is idle",
        path.display()
    ))
}

/// The message for a file SQLite cannot read.
pub fn corrupt(path: &Path, e: &rusqlite::Error) -> anyhow::Error {
    input(format!(
        "{} is corrupt or not a database ({e}); run `sqlmorph check` on it, or restore it from a backup",
        path.display()
    ))
}

/// Executes a `.sql` script into a fresh in-memory database. A failing
/// statement is reported with the file, its line and its first line of text.
pub fn load_script(path: &Path) -> Result<Connection> {
    let shown = path.display();
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            input(format!(
                "{shown}: not UTF-8 text (a .sql file must be SQL text)"
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(input(format!("{shown}: no such file (check the path)")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory || path.is_dir() => {
            return Err(input(format!("{shown} is a directory, not a .sql file")));
        }
        Err(e) => return Err(input(format!("{shown}: cannot read: {e}"))),
    };
    let conn = Connection::open_in_memory()?;
    crate::sqlscript::execute(&conn, &text, &shown.to_string())?;
    Ok(conn)
}

/// Opens a schema source: a `.sql` script (executed in memory) or a SQLite
/// file (read-only).
pub fn open_source(path: &Path) -> Result<Connection> {
    if is_sql_script(path) {
        load_script(path)
    } else {
        open_readonly(path)
    }
}

/// True when a database file's header marks it as a WAL database (bytes 18
/// and 19 are 2), read from the file itself.
pub fn header_says_wal(path: &Path) -> Result<bool> {
    let mut head = [0u8; 20];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .with_context(|| format!("reading the header of {}", path.display()))?;
    Ok(head[18] == 2 && head[19] == 2)
}
