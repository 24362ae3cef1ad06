//! What `sqlmorph backups --prune` prints: a line per backup and the
//! totals, or the JSON object.

use std::path::Path;

use anyhow::Result;

use crate::pipeline::retention::{Policy, Verdict};

/// A prune's outcome, as shown.
pub struct Pruned<'a> {
    pub backup_dir: &'a Path,
    pub verdicts: &'a [Verdict],
    pub policy: Policy,
    /// The backup recorded with production's last deploy.
    pub last_deploy: Option<&'a Path>,
    pub dry_run: bool,
}

fn describe(policy: Policy) -> String {
    let mut rules = Vec::new();
    if let Some(n) = policy.keep {
        rules.push(format!("the newest {n}"));
    }
    if let Some(d) = policy.keep_days {
        rules.push(format!("those younger than {d} day(s)"));
    }
    rules.push("the last deploy's backup and newer".into());
    rules.join(", ")
}

/// A line per backup (removed, would remove, kept and why), then totals.
pub fn text(p: &Pruned) -> String {
    let (verdicts, policy, dry_run) = (p.verdicts, p.policy, p.dry_run);
    let mut out = String::new();
    for v in verdicts {
        let line = match (v.remove, dry_run) {
            (true, true) => format!("would remove  {}\n", v.path.display()),
            (true, false) => format!("removed       {}\n", v.path.display()),
            (false, _) => format!("kept          {}  ({})\n", v.path.display(), v.reason),
        };
        out.push_str(&line);
    }
    let gone = verdicts.iter().filter(|v| v.remove).count();
    out.push_str(&format!(
        "{} {gone} backup(s), kept {} (keeping {}){}\n",
        if dry_run { "Would remove" } else { "Removed" },
        verdicts.len() - gone,
        describe(policy),
        if dry_run {
            "; dry run: nothing was removed"
        } else {
            ""
        }
    ));
    out
}

/// The JSON of a prune, in the shared envelope (docs/json.md).
pub fn json(p: &Pruned) -> Result<String> {
    let verdicts: Vec<serde_json::Value> = p
        .verdicts
        .iter()
        .map(|v| {
            serde_json::json!({
                "path": v.path,
                "action": if v.remove { "remove" } else { "keep" },
                "reason": v.reason,
            })
        })
        .collect();
    super::json::success(
        "backups",
        &serde_json::json!({
            "backup_dir": p.backup_dir,
            "dry_run": p.dry_run,
            "policy": { "keep": p.policy.keep, "keep_days": p.policy.keep_days },
            "last_deploy_backup": p.last_deploy,
            "verdicts": verdicts,
        }),
    )
}
