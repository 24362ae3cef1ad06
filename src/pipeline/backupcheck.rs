//! The run's backup being completed beside the run. Its `quick_check`
//! starts on another core as soon as the copy can be read: while the copy
//! is written, for a raw copy (see [`crate::inflight`]), so the check
//! costs little more than the copy; otherwise once it is complete. Once
//! the copy is complete it is synced and renamed into place on a third
//! thread. Both are awaited before validation and before any deploy, and
//! when the run ends, however it ends, so a backup the log named is never
//! left a temporary file.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Result, anyhow};

use crate::pipeline::backup;
use crate::target::files::Unsynced;

/// Why a backup cannot be relied on.
pub enum BackupFailed {
    /// It could not be synced or named (or a signal stopped its check).
    Unwritten(anyhow::Error),
    /// It failed `quick_check`.
    Damaged(anyhow::Error),
}

/// The `quick_check` of a copy, started while the copy may still be written.
pub struct Checking {
    /// Whether the copy was opened (it must be before it is renamed).
    opened: mpsc::Receiver<Result<()>>,
    handle: JoinHandle<Result<(), BackupFailed>>,
}

impl Checking {
    /// Starts checking the copy at `path` (its temporary name; reads wait
    /// for the copy), named `dest` in its findings.
    pub fn start(path: &Path, dest: &Path) -> Checking {
        let (path, dest) = (path.to_path_buf(), dest.to_path_buf());
        let (said, opened) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let conn = crate::inflight::open_readonly(&path)
                .and_then(|conn| crate::db::probe(&conn, &path).map(|()| conn));
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = said.send(Err(e));
                    return Err(BackupFailed::Unwritten(anyhow!(
                        "the backup was not opened"
                    )));
                }
            };
            let _ = said.send(Ok(()));
            let checked = backup::quick_check_open(conn, &dest);
            // A signal abandons the check.
            crate::interrupt::check().map_err(BackupFailed::Unwritten)?;
            checked.map_err(BackupFailed::Damaged)
        });
        Checking { opened, handle }
    }
}

/// The sync and the check of a complete copy (none in a dry run).
pub struct BackupCheck(Option<[Part; 2]>);

/// The sync or the check: running, or its outcome.
enum Part {
    Running(JoinHandle<Result<(), BackupFailed>>),
    Done(Result<(), BackupFailed>),
}

impl Part {
    fn finish(self) -> Result<(), BackupFailed> {
        match self {
            Part::Running(h) => h.join().unwrap_or_else(|_| {
                Err(BackupFailed::Unwritten(anyhow!(
                    "the backup thread panicked"
                )))
            }),
            Part::Done(outcome) => outcome,
        }
    }
}

impl BackupCheck {
    /// Nothing to wait for.
    pub fn none() -> BackupCheck {
        BackupCheck(None)
    }

    /// `copy`, now complete and being checked by `checking`: synced and
    /// renamed once the check has it open (the open file does not notice
    /// the rename). Fails when the check could not open it.
    pub fn spawn(copy: Unsynced, checking: Checking) -> Result<BackupCheck> {
        match checking.opened.recv() {
            Ok(opened) => opened?,
            Err(_) => return Err(anyhow!("the backup's check stopped before it began")),
        }
        let synced = std::thread::spawn(move || copy.persist().map_err(BackupFailed::Unwritten));
        Ok(BackupCheck(Some([
            Part::Running(synced),
            Part::Running(checking.handle),
        ])))
    }

    /// True when the `quick_check` passed (or there is none): waits for
    /// it, not for the sync. When false, [`Self::wait`] tells why.
    pub fn check_passed(&mut self) -> bool {
        let Some([synced, checked]) = self.0.take() else {
            return true;
        };
        let checked = checked.finish();
        let passed = checked.is_ok();
        self.0 = Some([synced, Part::Done(checked)]);
        passed
    }

    /// Its outcome, once (`None` when there is none to wait for): the
    /// sync's failure first.
    pub fn wait(&mut self) -> Option<Result<(), BackupFailed>> {
        let [synced, checked] = self.0.take()?;
        let (synced, checked) = (synced.finish(), checked.finish());
        Some(synced.and(checked))
    }
}

impl Drop for BackupCheck {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}
