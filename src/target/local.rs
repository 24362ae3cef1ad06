//! The deploy to a local production file: `stop`, the swap, `restart` and
//! `health_check`, and the restore when the service does not come back.
//!
//! Every way out of [`deploy`] after `stop` ran runs `restart`, so a failed
//! check never leaves the service stopped.

use std::path::Path;

use anyhow::Result;

use super::live::{Applied, Baseline, InPlace, LOCK_WAIT, Swappable};
use crate::config::Commands;
use crate::error::{ExitKind, deploy_failed, exit_code};
use crate::log::Log;
use crate::target::commands::{given, run_command};

/// Swaps `new` into production (if production is still at `expected`) and
/// brings the service back. When `restart` or `health_check` fails, `restore`
/// goes back in, unless the application already wrote to the new database.
pub fn deploy(
    prod: &mut Swappable,
    new: &Path,
    expected: Baseline,
    restore: &Path,
    commands: &Commands,
    log: &mut Log,
) -> Result<String> {
    let apply = |p: &mut Swappable| p.swap_in(new, expected, LOCK_WAIT);
    let note = deploy_with(prod, apply, restore, commands, log)?;
    let how = match prod.written() {
        Some(w) if w.ahead => ": the journal written ahead, then the new pages",
        Some(_) => ": the journal, then the new pages",
        None => "",
    };
    Ok(format!("{how}{note}"))
}

/// As [`deploy`], with the migration's statements run in production in one
/// transaction instead of a whole new file; `restore` (the snapshot) is
/// swapped back in when the service does not come back.
pub fn deploy_in_place(
    prod: &mut Swappable,
    change: &InPlace<'_>,
    expected: Baseline,
    restore: &Path,
    commands: &Commands,
    log: &mut Log,
) -> Result<String> {
    let apply = |p: &mut Swappable| p.apply_in_place(change, expected, LOCK_WAIT);
    let note = deploy_with(prod, apply, restore, commands, log)?;
    let how = match prod.applied() {
        Some(Applied::Pages(n)) => format!(": the rehearsal's {n} changed page(s) written"),
        Some(Applied::Statements) if change.pages.is_some() => {
            ": the statements run again (production changed since the snapshot)".to_string()
        }
        _ => ": the statements run again".to_string(),
    };
    Ok(format!("{how}{note}"))
}

/// `stop`, `apply`, then `restart` and `health_check` (restoring on failure).
fn deploy_with(
    prod: &mut Swappable,
    apply: impl FnOnce(&mut Swappable) -> Result<Baseline>,
    restore: &Path,
    commands: &Commands,
    log: &mut Log,
) -> Result<String> {
    if let Some(note) = prod.live().litestream_note() {
        log.line(&note);
    }
    let stopped = given(&commands.stop).is_some();
    if let Some(stop) = given(&commands.stop) {
        if let Err(e) = run_command("stop", stop, log) {
            return Err(restart_after(e, commands, log));
        }
    }
    let after = match apply(prod) {
        Ok(after) => after,
        Err(e) if stopped => return Err(restart_after(e, commands, log)),
        Err(e) => return Err(e),
    };
    match bring_back(commands, log) {
        Ok(note) => Ok(note),
        Err(e) => Err(restore_after(e, prod, restore, after, commands, log)),
    }
}

/// `restart`, then `health_check`; a note on what ran.
fn bring_back(commands: &Commands, log: &mut Log) -> Result<String> {
    let mut note = String::new();
    if let Some(c) = given(&commands.restart) {
        run_command("restart", c, log)?;
        note.push_str("; restarted");
    }
    if let Some(c) = given(&commands.health_check) {
        run_command("health_check", c, log)?;
        note.push_str("; health check passed");
    }
    Ok(note)
}

/// The deploy stopped before the swap after `stop` ran: restart, and say
/// so in the error (which keeps its exit code).
fn restart_after(e: anyhow::Error, commands: &Commands, log: &mut Log) -> anyhow::Error {
    match given(&commands.restart).map(|c| run_command("restart", c, log)) {
        Some(Ok(())) => e.context("production was not changed; the service was restarted"),
        Some(Err(r)) => e.context(format!(
            "production was not changed, but restarting the service failed: {r:#}"
        )),
        None => e,
    }
}

/// The service did not come back: put `restore` back in (refused when the
/// application wrote to the new database meanwhile) and restart (exit 4).
fn restore_after(
    e: anyhow::Error,
    prod: &mut Swappable,
    restore: &Path,
    after: Baseline,
    commands: &Commands,
    log: &mut Log,
) -> anyhow::Error {
    let path = prod.live().path().display().to_string();
    if let Err(r) = prod.swap_in(restore, after, LOCK_WAIT) {
        let why = if exit_code(&r) == ExitKind::Aborted as u8 {
            "the application already wrote to the new database, and restoring would lose those writes"
                .to_string()
        } else {
            format!("restoring failed: {r:#}")
        };
        return deploy_failed(format!(
            "{e:#}\nproduction ({path}) keeps the new database: {why}. \
             Check the service; `sqlmorph rollback` restores the backup taken before this deploy"
        ));
    }
    let again = given(&commands.restart).map(|c| run_command("restart", c, log));
    deploy_failed(format!(
        "{e:#}\nthe previous database was restored to {path}{}",
        match again {
            Some(Err(e2)) => format!(" but restarting again failed too: {e2:#}"),
            Some(Ok(())) => " and the service restarted".to_string(),
            None => String::new(),
        }
    ))
}
