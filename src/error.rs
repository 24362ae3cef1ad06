//! Errors that decide the exit code.
//!
//! Everything else travels as `anyhow::Error` with context naming the file or
//! object; an [`Exit`] anywhere in the chain sets the exit code that scripts
//! rely on (see the README's table), and without one a database that stayed
//! locked (SQLite's `BUSY`) is an abort.

use std::fmt;

/// Why a command stopped, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 2: bad usage or bad input (missing file, not SQLite, syntax error).
    Input = 2,
    /// 3: aborted before production changed (declined, not allowed,
    /// validation failed, production changed meanwhile).
    Aborted = 3,
    /// 4: the deploy failed and production was rolled back.
    DeployFailed = 4,
    /// 130: stopped by SIGINT (Ctrl-C) before production changed.
    Interrupted = 130,
    /// 143: stopped by SIGTERM before production changed.
    Terminated = 143,
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    pub kind: ExitKind,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Bad input: exit 2.
pub fn input(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: ExitKind::Input,
        message: message.into(),
    }
    .into()
}

/// Aborted before anything changed: exit 3.
pub fn aborted(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: ExitKind::Aborted,
        message: message.into(),
    }
    .into()
}

/// An error that is no fault of the recipe's code — a declined question, a
/// question nobody could answer, a source file that is missing — printed as
/// the plain sentence it is, never with a pointer into the recipe.
#[derive(Debug)]
pub struct Plain(pub Exit);

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Plain {}

/// A plain error (see [`Plain`]) with its exit code.
pub fn plain(kind: ExitKind, message: impl Into<String>) -> anyhow::Error {
    Plain(Exit {
        kind,
        message: message.into(),
    })
    .into()
}

/// The user declined, or could not be asked: exit 3, printed plainly.
pub fn declined(message: impl Into<String>) -> anyhow::Error {
    plain(ExitKind::Aborted, message)
}

/// True when `err` is to be printed plainly (see [`Plain`]).
pub fn is_plain(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<Plain>())
}

/// Deploy failed and was rolled back: exit 4.
pub fn deploy_failed(message: impl Into<String>) -> anyhow::Error {
    Exit {
        kind: ExitKind::DeployFailed,
        message: message.into(),
    }
    .into()
}

/// Why an error stopped the command: the first [`Exit`] in its chain
/// decides; a database that stayed locked by another process (SQLite's
/// `BUSY`) is an abort (3), nothing having changed; any other failure is an
/// input/usage error (2).
pub fn exit_kind(err: &anyhow::Error) -> ExitKind {
    if let Some(kind) = err.chain().find_map(|e| {
        e.downcast_ref::<Exit>()
            .map(|x| x.kind)
            .or_else(|| e.downcast_ref::<Plain>().map(|p| p.0.kind))
    }) {
        return kind;
    }
    if err.chain().any(|e| e.is::<crate::pipeline::gate::Stop>()) {
        return ExitKind::Aborted;
    }
    let busy = err.chain().any(|e| {
        e.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DatabaseBusy)
    });
    if busy {
        ExitKind::Aborted
    } else {
        ExitKind::Input
    }
}

/// The exit code for an error (see [`exit_kind`]).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    exit_kind(err) as u8
}

/// The error for a write that found its device full: exit 2, naming the
/// place and saying "no space", with the cause kept.
pub fn no_space(place: &std::path::Path, cause: impl fmt::Display) -> anyhow::Error {
    input(format!(
        "no space left on the device of {} ({cause}); production was not changed. \
         Free some space there, or choose another directory",
        place.display()
    ))
}

/// True when a SQLite or I/O error means the device is full.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    })
}
