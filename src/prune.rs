//! `sqlmorph backups --prune`: the flags, the run (production's last deploy
//! read through a read-only handle, the policy applied, files removed) and
//! what it prints. The policy itself is [`crate::pipeline::retention`].

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Options, Retention};
use crate::log::Log;
use crate::pipeline::retention::{self, Policy, Verdict};
use crate::target::{Access, Production};

/// The flags of `backups` that prune.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Remove the backups the retention policy does not keep.
    #[arg(long)]
    pub prune: bool,
    /// Keep the newest N backups (with --prune).
    #[arg(long, value_name = "N", requires = "prune")]
    pub keep: Option<usize>,
    /// Keep every backup younger than D days (with --prune).
    #[arg(long, value_name = "D", requires = "prune")]
    pub keep_days: Option<u64>,
    /// List what --prune would remove, and remove nothing.
    #[arg(long, requires = "prune")]
    pub dry_run: bool,
    /// The production database whose _sqlmorph_history names the last
    /// deploy's backup (default: from sqlmorph.toml).
    #[arg(long, value_name = "P")]
    pub production: Option<String>,
    /// Trust an SSH host key that is not in known_hosts yet.
    #[arg(long)]
    pub accept_new_host_key: bool,
}

impl PruneArgs {
    /// Where production is, for the shared path resolution.
    pub fn target(&self, config: Option<PathBuf>) -> crate::cli::Target {
        crate::cli::Target {
            source: None,
            production: self.production.clone(),
            config,
            accept_new_host_key: self.accept_new_host_key,
        }
    }

    fn policy(&self) -> Policy {
        Policy {
            keep: self.keep,
            keep_days: self.keep_days,
        }
    }
}

/// Prunes `opts.backup_dir`; returns the text (or JSON) to print.
pub fn run(opts: &Options, config: &Retention, args: &PruneArgs, json: bool) -> Result<String> {
    let policy = Policy::resolve(
        args.policy(),
        Policy {
            keep: config.keep_backups,
            keep_days: config.keep_days,
        },
    );
    let list = crate::pipeline::backup::list(&opts.backup_dir)?;
    let last = Production::new(opts, Access::ReadOnly)
        .last_deploy(&mut Log::console(true))?
        .map(|(_, path)| path);
    let now = chrono::Local::now().naive_local();
    let verdicts = retention::decide(&list, policy, last.as_deref(), now);
    if !args.dry_run {
        retention::remove(&verdicts)?;
    }
    Ok(if json {
        render_json(&verdicts, policy, last.as_ref(), args.dry_run)?
    } else {
        render_text(&verdicts, policy, args.dry_run)
    })
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

fn render_text(verdicts: &[Verdict], policy: Policy, dry_run: bool) -> String {
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

/// The JSON of a prune (one function, to move onto the shared envelope).
fn render_json(
    verdicts: &[Verdict],
    policy: Policy,
    last: Option<&PathBuf>,
    dry_run: bool,
) -> Result<String> {
    let backups: Vec<serde_json::Value> = verdicts
        .iter()
        .map(|v| {
            serde_json::json!({
                "path": v.path,
                "action": if v.remove { "remove" } else { "keep" },
                "reason": v.reason,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "format_version": 1,
        "dry_run": dry_run,
        "policy": { "keep": policy.keep, "keep_days": policy.keep_days },
        "last_deploy_backup": last,
        "backups": backups,
    }))? + "\n")
}
