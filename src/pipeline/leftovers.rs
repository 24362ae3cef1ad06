//! What a killed run leaves behind, recognised and removed by the next run.
//!
//! A run killed outright (`kill -9`, a power cut) cannot clean up. What it
//! can leave is harmless to production — SQLite recovers its own journal or
//! WAL — but it wastes space and could confuse: the migrated file and the
//! rejected-row probe in its run directory, and a backup still being
//! written (`.sqlmorph-<pid>-*.partial` in the backup directory). The next
//! run removes them when the process that wrote them is gone, and says so
//! in its log (and in the dead run's log).

use std::path::{Path, PathBuf};

use crate::log::Log;

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The pid in `.sqlmorph-<pid>-….partial` (see
/// [`crate::target::files::backup_api_copy`]).
fn partial_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".sqlmorph-")?;
    if !name.ends_with(".partial") {
        return None;
    }
    rest.split('-').next()?.parse().ok()
}

/// Removes what killed runs left: partial backups in `backup_dir` and the
/// scratch files of unfinished runs in `runs` (other than `ours`).
pub fn clean(backup_dir: &Path, runs: &Path, ours: &Path, log: &mut Log) {
    clean_backups(backup_dir, log);
    for dir in entries(runs).into_iter().filter(|d| d != ours) {
        clean_run(&dir, ours, log);
    }
}

/// Files that sqlmorph before 0.2 left beside a local production when it
/// was killed during its rename swap (`<db>.sqlmorph-prev`,
/// `.<db>.sqlmorph-new`): this version never writes them, so any found
/// are leftovers. Production's own file is never touched.
pub fn clean_beside(production: &Path, log: &mut Log) {
    let Some(name) = production
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return;
    };
    for old in [
        production.with_file_name(format!("{name}.sqlmorph-prev")),
        production.with_file_name(format!(".{name}.sqlmorph-new")),
    ] {
        if old.is_file() && std::fs::remove_file(&old).is_ok() {
            log.line(&format!(
                "  removed {}: left by an older sqlmorph's interrupted swap",
                old.display()
            ));
        }
    }
}

/// A swap journal that a killed run was writing ahead beside production
/// (`.<db>-journal.sqlmorph-<pid>`, see `target::journal::prepare`, next to
/// the file a symlink names): inert (its magic is zero, and SQLite only
/// reads `<db>-journal`), removed once its process is gone.
pub fn clean_prepared_journals(production: &Path, log: &mut Log) {
    let real = std::fs::canonicalize(production).unwrap_or_else(|_| production.to_path_buf());
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let prefix = format!(".{}-journal.sqlmorph-", name.to_string_lossy());
    for path in entries(dir) {
        let pid = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok());
        if matches!(pid, Some(pid) if !alive(pid)) && std::fs::remove_file(&path).is_ok() {
            log.line(&format!(
                "  removed {}: a swap journal a killed run was writing ahead (never used)",
                path.display()
            ));
        }
    }
}

fn clean_backups(backup_dir: &Path, log: &mut Log) {
    for path in entries(backup_dir) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(pid) = name.as_deref().and_then(partial_pid) {
            if !alive(pid) && std::fs::remove_file(&path).is_ok() {
                log.line(&format!(
                    "  removed {}: a backup left unfinished by a run that was killed",
                    path.display()
                ));
            }
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// A run directory whose log has no last word and whose process is gone.
fn clean_run(dir: &Path, ours: &Path, log: &mut Log) {
    if !matches!(unfinished_pid(dir), Some(Some(pid)) if !alive(pid)) {
        return;
    }
    let removed = remove_scratch(dir);
    if removed.is_empty() {
        return;
    }
    log.line(&format!(
        "  removed {} from {}: scratch files of a run that was killed",
        removed.join(", "),
        dir.display()
    ));
    if let Ok(mut dead) = Log::open(&dir.join("log.txt"), false) {
        dead.quiet(&format!(
            "killed before it finished; its scratch files were removed by the run {}",
            ours.display()
        ));
    }
}

/// A run whose log has no last word: `Some(pid)` of the process that wrote
/// it (`Some(None)` when the log names none), `None` when it ended or has
/// no log.
fn unfinished_pid(dir: &Path) -> Option<Option<u32>> {
    let text = std::fs::read_to_string(dir.join("log.txt")).ok()?;
    let ended = text.lines().any(|l| {
        l.contains(" finished: ") || l.contains(" error: ") || l.contains(" interrupted (")
    });
    if ended {
        return None;
    }
    Some(
        text.lines()
            .next()
            .and_then(|l| l.split(" pid ").nth(1))
            .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse::<u32>().ok()),
    )
}

/// True when a run directory may still be in use: its log has no last word
/// and its process is alive (or unknown).
pub fn in_progress(dir: &Path) -> bool {
    matches!(unfinished_pid(dir), Some(pid) if pid.is_none_or(alive))
}

/// Removes a run directory's scratch files — the migrated file and any
/// rejected-row probe, with their journals — and names the files removed.
pub fn remove_scratch(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    for path in entries(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let scratch = name.starts_with("migrated.sqlite3")
            || (name.starts_with("probe-") && name.contains(".sqlite3"));
        if scratch {
            crate::overlay::forget(&path);
        }
        if scratch && std::fs::remove_file(&path).is_ok() && name.ends_with(".sqlite3") {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}
