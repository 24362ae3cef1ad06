//! Run directories over time: the old ones pruned when a run starts
//! (`[retention] keep_runs`), and a dry run's copies dropped when it ends.
//!
//! A run directory is never pruned while it may be in use: the new run's
//! own, one whose log has no last word and whose process is alive (see
//! [`super::leftovers::in_progress`]), or one created in the last minute
//! with no log yet.

use std::path::{Path, PathBuf};

use crate::log::Log;

/// `<work_dir>/runs/*`, newest first (by name: `<YYYYMMDD_HHMMSS>[_<n>]`).
fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| std::cmp::Reverse(sort_key(d)));
    dirs
}

/// `20261201_010203_12` sorts after `20261201_010203_2`.
fn sort_key(dir: &Path) -> (String, u64) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = name.get(..15).unwrap_or(&name).to_string();
    let n = name
        .get(16..)
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::from(name.len() > 15));
    (stamp, n)
}

/// Created under a minute ago and no log yet: a run just starting.
fn just_created(dir: &Path) -> bool {
    !dir.join("log.txt").exists()
        && std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() < 60)
}

/// Keeps the newest `keep` run directories besides `ours` and removes the
/// older ones that are not in use; logs what went.
pub fn prune(runs: &Path, ours: &Path, keep: usize, log: &mut Log) {
    let old = run_dirs(runs)
        .into_iter()
        .filter(|d| d != ours)
        .skip(keep)
        .filter(|d| !super::leftovers::in_progress(d) && !just_created(d));
    let mut removed = 0;
    for dir in old {
        if std::fs::remove_dir_all(&dir).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log.line(&format!(
            "  removed {removed} old run director{} from {} (keeping the newest {keep}; \
             [retention] keep_runs in sqlmorph.toml)",
            if removed == 1 { "y" } else { "ies" },
            runs.display()
        ));
    }
}

/// A dry run is over: its snapshot and migrated file (and any rejected-row
/// probe, with their journals) go; the log, plan and report stay. Returns
/// the names removed.
pub fn drop_copies(dir: &Path) -> Vec<String> {
    let mut removed = super::leftovers::remove_scratch(dir);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let name = format!("production.sqlite3{suffix}");
        if std::fs::remove_file(dir.join(&name)).is_ok() && suffix.is_empty() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_runs_sort_after_their_stamp() {
        let a = sort_key(Path::new("r/20261201_010203"));
        let b = sort_key(Path::new("r/20261201_010203_2"));
        let c = sort_key(Path::new("r/20261201_010203_12"));
        assert!(a < b && b < c);
    }
}
