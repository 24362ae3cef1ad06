//! `sqlmorph rollback`: put a backup back into production with the same
//! compare-and-swap as a deploy, after backing up the current production.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::backup;
use crate::deploy;
use crate::error::input;
use crate::prompt::Prompter;
use crate::run::{Log, Options, stamp_now};

/// Restores `chosen` (or the newest backup of production) into production.
pub fn rollback(opts: &Options, chosen: Option<&Path>, prompter: Prompter) -> Result<PathBuf> {
    let name = opts
        .remotes
        .first()
        .map_or_else(|| opts.production.clone(), |u| PathBuf::from(&u.path));
    let stem = name
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = match chosen {
        Some(p) => p.to_path_buf(),
        None => backup::list(&opts.backup_dir)?
            .into_iter()
            .find(|b| {
                b.path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}_backup_")))
            })
            .map(|b| b.path)
            .ok_or_else(|| {
                input(format!(
                    "no backup of {} in {}",
                    opts.production.display(),
                    opts.backup_dir.display()
                ))
            })?,
    };
    backup::quick_check(&source)
        .with_context(|| format!("checking the backup {}", source.display()))?;
    let mut log = Log::console(false);
    prompter.confirm_typed(&format!(
        "Restore {} from {}?",
        opts.production.display(),
        source.display()
    ))?;
    if opts.is_remote() {
        return rollback_remote(opts, &source, &name, &mut log);
    }
    backup::checkpoint(&opts.production)?;
    let fingerprint = backup::fingerprint(&opts.production)?;
    let current = backup::backup(&opts.production, &opts.backup_dir, &stamp_now())?;
    log.line(&format!(
        "backed up the current production to {}",
        current.display()
    ));
    // The swap consumes its input: restore from a copy, keep the backup.
    let staged =
        std::env::temp_dir().join(format!("sqlmorph-rollback-{}.sqlite3", std::process::id()));
    std::fs::copy(&source, &staged).with_context(|| format!("copying {}", source.display()))?;
    let result = deploy::swap_local(
        &opts.production,
        &staged,
        &fingerprint,
        &opts.commands(),
        &mut log,
    );
    let _ = std::fs::remove_file(&staged);
    let note = result?;
    log.line(&format!(
        "restored {} from {}{note}",
        opts.production.display(),
        source.display()
    ));
    Ok(source)
}

/// Rollback over SSH: every host's fingerprint, a backup of the current
/// production (from the first host), then the fleet deploy of the backup.
fn rollback_remote(opts: &Options, source: &Path, name: &Path, log: &mut Log) -> Result<PathBuf> {
    let mut hosts = opts
        .remotes
        .iter()
        .map(|u| crate::remote::RemoteDb::connect(u, &opts.ssh))
        .collect::<Result<Vec<_>>>()?;
    let current = crate::remote::prefetch_path();
    let fingerprint = hosts[0].fetch_consistent(&current, crate::progress::enabled())?;
    let mut fingerprints = vec![fingerprint];
    for h in hosts.iter().skip(1) {
        fingerprints.push(h.fingerprint()?);
    }
    std::fs::create_dir_all(&opts.backup_dir)?;
    let saved = backup::backup_path(name, &opts.backup_dir, &stamp_now());
    let kept = backup::copy_consistent(&current, &saved);
    let _ = std::fs::remove_file(&current);
    kept?;
    log.line(&format!(
        "backed up the current production to {}",
        saved.display()
    ));
    let commands = opts.commands();
    crate::remote::deploy_fleet(
        &mut hosts,
        source,
        &fingerprints,
        &commands,
        crate::progress::enabled(),
        log,
    )?;
    log.line(&format!(
        "restored {} from {}",
        opts.production.display(),
        source.display()
    ));
    Ok(source.to_path_buf())
}
