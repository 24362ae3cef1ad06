//! SIGINT and SIGTERM, handled where it is safe.
//!
//! The handler only records which signal came; nothing is done inside it.
//! A run looks at the record at safe points — the start of every step, the
//! progress handler of every long SQLite statement of the build, each batch
//! of a `transform`, and a prompt waiting for an answer — and stops there
//! with exit 130 (SIGINT) or 143 (SIGTERM) through the ordinary error path,
//! so every destructor runs: scratch files are removed and production's
//! connection is closed the way it always is. The swap is not a safe point:
//! once it has begun it completes (it is one SQLite transaction), and so do
//! the `stop`/`restart` commands around it.

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use anyhow::Result;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Exit, ExitKind};

fn record() -> &'static Arc<AtomicUsize> {
    static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    SIGNAL.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Records SIGINT and SIGTERM from now on (instead of dying at once).
pub fn install() -> Result<()> {
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(signal, Arc::clone(record()), signal as usize)?;
    }
    Ok(())
}

/// The signal received, if any.
pub fn pending() -> Option<i32> {
    match record().load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// The error that stops the run: exit 130 for SIGINT, 143 for SIGTERM.
pub fn error(signal: i32) -> anyhow::Error {
    let (kind, name) = if signal == SIGTERM {
        (ExitKind::Terminated, "SIGTERM")
    } else {
        (ExitKind::Interrupted, "SIGINT")
    };
    Exit {
        kind,
        message: format!("interrupted ({name}); production was not changed"),
    }
    .into()
}

/// Stops here if a signal came.
pub fn check() -> Result<()> {
    pending().map_or(Ok(()), |s| Err(error(s)))
}

/// Makes SQLite abandon `conn`'s running statement when a signal comes
/// (the statement fails with "interrupted"; [`check`] then names it).
pub fn watch(conn: &mut rusqlite::Connection) -> Result<()> {
    conn.progress_handler(10_000, Some(|| pending().is_some()))?;
    Ok(())
}

/// One line from standard input, or the signal that came while waiting.
/// `Ok(None)` at the end of the input.
pub fn read_line() -> Result<Option<String>> {
    let (tx, rx) = mpsc::channel();
    // The reader may outlive an interrupted question; the process ends soon
    // after, and nothing else reads standard input meanwhile.
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(read.map(|n| (n > 0).then_some(line)));
    });
    loop {
        check()?;
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(read) => return Ok(read?),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
        }
    }
}
