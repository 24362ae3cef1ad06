//! `sqlmorph backups --prune`: the flags, the run (production's last deploy
//! read through a read-only handle, the policy applied, files removed) and
//! what it prints ([`crate::output::prune`]). The policy itself is
//! [`crate::pipeline::retention`].

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Options, Retention};
use crate::log::Log;
use crate::output::prune::Pruned;
use crate::pipeline::retention::{self, Policy};
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
    let shown = Pruned {
        backup_dir: &opts.backup_dir,
        verdicts: &verdicts,
        policy,
        last_deploy: last.as_deref(),
        dry_run: args.dry_run,
    };
    if json {
        crate::output::prune::json(&shown)
    } else {
        Ok(crate::output::prune::text(&shown))
    }
}
