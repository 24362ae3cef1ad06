//! Backup retention (`sqlmorph backups --prune`): which backups a policy
//! keeps and which go. A backup is kept when any rule keeps it: among the
//! newest `keep`, younger than `keep_days`, or the backup recorded with the
//! last deploy in production's `_sqlmorph_history` (and every newer one) —
//! that one is what `rollback` restores, so no policy removes it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use serde::Serialize;

use crate::pipeline::backup::BackupInfo;

/// The days kept when neither `--keep`, `--keep-days` nor `[retention]`
/// says otherwise.
pub const DEFAULT_KEEP_DAYS: u64 = 30;

/// What a prune keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest this many backups.
    pub keep: Option<usize>,
    /// Every backup younger than this many days.
    pub keep_days: Option<u64>,
}

impl Policy {
    /// Flags replace the configuration as a whole (`--keep 0` alone keeps
    /// no backup by count and none by age); with neither, the configuration;
    /// with nothing at all, [`DEFAULT_KEEP_DAYS`].
    pub fn resolve(flags: Policy, config: Policy) -> Policy {
        let chosen = if flags == Policy::default() {
            config
        } else {
            flags
        };
        if chosen == Policy::default() {
            Policy {
                keep: None,
                keep_days: Some(DEFAULT_KEEP_DAYS),
            }
        } else {
            chosen
        }
    }
}

/// One backup and the prune's verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub path: PathBuf,
    pub remove: bool,
    /// Why it is kept (`newest 3`, `younger than 30 days`, `last deploy`…),
    /// or `expired` when it goes.
    pub reason: String,
}

/// The time in a backup's name (`<stem>_backup_<YYYYMMDD_HHMMSS>…`), local.
pub fn stamp_time(path: &Path) -> Option<NaiveDateTime> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let stamp = &name[name.rfind("_backup_")? + 8..];
    NaiveDateTime::parse_from_str(stamp.get(..15)?, "%Y%m%d_%H%M%S").ok()
}

/// Decides for each backup of `list` (newest first). `last_deploy` is the
/// backup recorded with production's last deploy: it and every newer one
/// stay. A backup whose time cannot be read stays.
pub fn decide(
    list: &[BackupInfo],
    policy: Policy,
    last_deploy: Option<&Path>,
    now: NaiveDateTime,
) -> Vec<Verdict> {
    let recorded = last_deploy.and_then(Path::file_name);
    let exact = |i: usize| recorded.is_some() && list[i].path.file_name() == recorded;
    // Newer than the recorded backup (which may be gone already): by the
    // time in the names, else by name.
    let newer = |b: &BackupInfo| {
        let Some(name) = recorded else { return false };
        match (stamp_time(&b.path), last_deploy.and_then(stamp_time)) {
            (Some(t), Some(r)) => t >= r,
            _ => b.path.file_name() > Some(name),
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, b)| {
            let reason = keep_reason(i, b, policy, newer(b), exact(i), now);
            Verdict {
                path: b.path.clone(),
                remove: reason.is_none(),
                reason: reason.unwrap_or_else(|| "expired".into()),
            }
        })
        .collect()
}

fn keep_reason(
    index: usize,
    backup: &BackupInfo,
    policy: Policy,
    newer: bool,
    is_last_deploy: bool,
    now: NaiveDateTime,
) -> Option<String> {
    if is_last_deploy {
        return Some("the last deploy's backup".into());
    }
    if newer {
        return Some("newer than the last deploy's backup".into());
    }
    if let Some(n) = policy.keep.filter(|n| index < *n) {
        return Some(format!("among the newest {n}"));
    }
    let Some(time) = stamp_time(&backup.path) else {
        return Some("its time cannot be read from its name".into());
    };
    match policy.keep_days {
        Some(d) if (now - time).num_seconds() < (d as i64) * 86_400 => {
            Some(format!("younger than {d} day(s)"))
        }
        _ => None,
    }
}

/// Removes the backups `verdicts` condemn; returns those removed.
pub fn remove(verdicts: &[Verdict]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for v in verdicts.iter().filter(|v| v.remove) {
        std::fs::remove_file(&v.path)
            .with_context(|| format!("removing the backup {}", v.path.display()))?;
        removed.push(v.path.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> BackupInfo {
        BackupInfo {
            path: PathBuf::from(format!("b/{name}")),
            time: String::new(),
            bytes: 0,
            schema_hash: None,
        }
    }

    fn now() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("20261201_000000", "%Y%m%d_%H%M%S").unwrap()
    }

    #[test]
    fn keeps_recent_and_counted_removes_the_rest() {
        let list = [
            info("p_backup_20261130_000000.sqlite3"),
            info("p_backup_20261001_000000.sqlite3"),
            info("p_backup_20260901_000000.sqlite3"),
        ];
        let policy = Policy {
            keep: Some(2),
            keep_days: Some(7),
        };
        let v = decide(&list, policy, None, now());
        assert_eq!(
            v.iter().map(|v| v.remove).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn a_gone_last_deploy_backup_still_protects_newer_ones() {
        let list = [
            info("p_backup_20261130_000000.sqlite3"),
            info("a_backup_20261101_000000.sqlite3"),
            info("p_backup_20260901_000000.sqlite3"),
        ];
        let policy = Policy {
            keep: Some(0),
            keep_days: Some(0),
        };
        let last = Path::new("p_backup_20261001_000000.sqlite3");
        let v = decide(&list, policy, Some(last), now());
        assert_eq!(
            v.iter().map(|v| v.remove).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn the_last_deploy_and_newer_survive_keep_zero() {
        let list = [
            info("p_backup_20261130_000000.sqlite3"),
            info("p_backup_20261001_000000.sqlite3"),
            info("p_backup_20260901_000000.sqlite3"),
        ];
        let policy = Policy {
            keep: Some(0),
            keep_days: None,
        };
        let last = Path::new("/x/p_backup_20261001_000000.sqlite3");
        let v = decide(&list, policy, Some(last), now());
        assert_eq!(
            v.iter().map(|v| v.remove).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn defaults_to_thirty_days_and_flags_replace_the_config() {
        let none = Policy::default();
        assert_eq!(Policy::resolve(none, none).keep_days, Some(30));
        let flags = Policy {
            keep: Some(0),
            keep_days: None,
        };
        let config = Policy {
            keep: None,
            keep_days: Some(90),
        };
        assert_eq!(Policy::resolve(flags, config), flags);
        assert_eq!(Policy::resolve(none, config), config);
    }
}
