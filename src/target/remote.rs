//! Production on hosts reached over SSH. Every read and write of a host's
//! database goes through sqlmorph's agent on that host ([`super::agent`]),
//! so a remote production gets the same live-safe copy and swap as a local
//! one: consistent copies and the compare-and-swap are made on the host,
//! through SQLite, under its locks, and the new content is written into the
//! file (its inode, owner, mode and symlink stay; the application's
//! connections see the old database or the new one).
//!
//! Each host keeps its own pre-deploy copy (in the agent's private
//! directory) as its restore source, so a fleet deploy that fails puts every
//! swapped host back in the state it had, and restarts every host it
//! stopped, whichever way it ends; [`restart_fleet`] runs `restart` on every
//! host (the `restart()` primitive).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::Access;
use super::agent::Agent;
use crate::config::Commands;
use crate::error::{ExitKind, aborted, exit_code};
use crate::log::Log;
use crate::target::commands::given;
use crate::target::ssh::{Remote, SshOptions, SshUrl, shell_command, shell_quote};

/// One production database on one host, served by its agent.
pub struct RemoteDb {
    pub url: SshUrl,
    /// Dropped before the session: closes production and removes the
    /// private directory on the host.
    agent: Agent,
    remote: Remote,
    /// The agent's private directory on the host.
    dir: String,
    copies: u32,
}

/// A consistent copy made on a host: the agent's token for production's
/// state at the copy, and the copy's path on the host (what this host's
/// restore puts back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCopy {
    pub token: u64,
    pub path: String,
}

impl RemoteDb {
    /// Connects (host key checked, key or agent authentication) and starts
    /// the agent, which opens production.
    pub fn connect(
        url: &SshUrl,
        opts: &SshOptions,
        access: Access,
        log: &mut Log,
    ) -> Result<RemoteDb> {
        let remote = Remote::connect(url, opts)?;
        let (agent, dir) = Agent::start(&remote, url, access, crate::progress::enabled(), log)?;
        Ok(RemoteDb {
            url: url.clone(),
            agent,
            remote,
            dir,
            copies: 0,
        })
    }

    fn in_dir(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// A consistent copy of production, made on the host.
    pub fn copy(&mut self) -> Result<HostCopy> {
        self.copies += 1;
        let path = self.in_dir(&format!("copy-{}.sqlite3", self.copies));
        let token = self
            .agent
            .copy(&path)
            .with_context(|| format!("copying {} on the host", self.url))?;
        Ok(HostCopy { token, path })
    }

    /// Downloads a copy made on the host to `local`.
    pub fn download(&self, copy: &HostCopy, local: &Path, progress: bool) -> Result<()> {
        self.remote.download(&copy.path, local, progress).map(drop)
    }

    /// Runs a configured command on the host (see [`run_on`]).
    pub fn run_command(&self, what: &str, command: &str, log: &mut Log) -> Result<()> {
        run_on(&self.remote, &self.url, what, command, log)
    }

    /// Uploads the new file into the private directory and checks its
    /// SHA-256 on the host. Returns its path there.
    pub fn stage(&self, local: &Path, progress: bool) -> Result<String> {
        let staged = self.in_dir("new.sqlite3");
        self.remote.upload(local, &staged, 0o600, progress)?;
        let expected = crate::target::files::file_sha256(local)?;
        match self.remote.sha256(&staged)? {
            Some(h) if h == expected => Ok(staged),
            other => bail!(
                "the uploaded file on {} does not match (sha256 {} here, {} there)",
                self.url.host_port(),
                expected,
                other.unwrap_or_else(|| "missing".into())
            ),
        }
    }

    /// Writes `src` (a file on the host) into production if production is
    /// still at `token`, checked on the host under the write lock. Returns
    /// the token of production right after.
    pub fn swap(&mut self, src: &str, token: u64) -> Result<u64> {
        self.agent.swap(src, token)
    }
}

/// What happened on one host of a deploy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub status: String,
}

/// Deploys `migrated` to every host: upload and verify everywhere, then
/// stop (when configured) and compare-and-swap host by host, then restart
/// and health-check everywhere. If any host fails, every host that was
/// swapped gets its own pre-deploy copy (`copies`) back, so the fleet ends
/// all-old or all-new, and every host that was stopped or had its database
/// changed is restarted.
pub fn deploy_fleet(
    hosts: &mut [RemoteDb],
    migrated: &Path,
    copies: &[HostCopy],
    commands: &Commands,
    progress: bool,
    log: &mut Log,
) -> Result<Vec<HostOutcome>> {
    let staged = stage_all(hosts, migrated, progress)?;
    let mut fleet = Fleet {
        hosts,
        staged,
        copies,
        commands,
        log,
        swapped: Vec::new(),
        owes_restart: BTreeSet::new(),
    };
    match fleet.swap_all().and_then(|()| fleet.restart_all()) {
        Ok(()) => Ok(fleet.outcomes("deployed")),
        Err((failed, err)) => Err(fleet.roll_back(failed, err)),
    }
}

/// Uploads and verifies the new file on every host, in parallel. On any
/// failure no host was changed (the uploads go with the agents' private
/// directories).
fn stage_all(hosts: &mut [RemoteDb], migrated: &Path, progress: bool) -> Result<Vec<String>> {
    let staged: Vec<Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter_mut()
            .map(|h| s.spawn(move || h.stage(migrated, progress)))
            .collect();
        handles
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("upload thread panicked")))
            })
            .collect()
    });
    if let Some((i, Err(e))) = staged.iter().enumerate().find(|(_, r)| r.is_err()) {
        return Err(anyhow::anyhow!("{e:#}")).with_context(|| {
            format!(
                "uploading to {}; no host was changed",
                hosts[i].url.host_port()
            )
        });
    }
    staged.into_iter().collect()
}

/// The swap, restart and rollback of a fleet deploy. It remembers every host
/// that owes a `restart` (its `stop` ran, or its database was swapped or put
/// back) and, when dropped, restarts those that are still owed one: on
/// every way out of a deploy, no host is left stopped.
struct Fleet<'a> {
    hosts: &'a mut [RemoteDb],
    staged: Vec<String>,
    copies: &'a [HostCopy],
    commands: &'a Commands,
    log: &'a mut Log,
    /// Hosts swapped, with the token of production right after the swap.
    swapped: Vec<(usize, u64)>,
    owes_restart: BTreeSet<usize>,
}

/// A step that failed on one host (its index).
type HostError = (usize, anyhow::Error);

impl Fleet<'_> {
    /// Stop (when configured) and compare-and-swap, host by host.
    fn swap_all(&mut self) -> Result<(), HostError> {
        for i in 0..self.hosts.len() {
            self.swap_one(i).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn swap_one(&mut self, i: usize) -> Result<()> {
        if let Some(stop) = given(&self.commands.stop) {
            self.owes_restart.insert(i);
            self.hosts[i].run_command("stop", stop, self.log)?;
        }
        let after = self.hosts[i].swap(&self.staged[i], self.copies[i].token)?;
        self.owes_restart.insert(i);
        self.swapped.push((i, after));
        self.log.line(&format!("  swapped {}", self.hosts[i].url));
        Ok(())
    }

    /// Restart and health check, host by host, once every host is swapped.
    fn restart_all(&mut self) -> Result<(), HostError> {
        for i in 0..self.hosts.len() {
            self.restart(i)
                .and_then(|()| self.health_check(i))
                .map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Runs `restart` (when configured) on host `i`, which then owes none.
    fn restart(&mut self, i: usize) -> Result<()> {
        self.owes_restart.remove(&i);
        match given(&self.commands.restart) {
            Some(c) => self.hosts[i].run_command("restart", c, self.log),
            None => Ok(()),
        }
    }

    fn health_check(&mut self, i: usize) -> Result<()> {
        match given(&self.commands.health_check) {
            Some(c) => self.hosts[i].run_command("health_check", c, self.log),
            None => Ok(()),
        }
    }

    /// Swaps host `i`'s pre-deploy copy back in, through its agent: refused
    /// when the application wrote to the new database since (`after`).
    fn restore(&mut self, i: usize, after: u64) -> Result<()> {
        self.owes_restart.insert(i);
        let copy = &self.copies[i].path;
        self.hosts[i].swap(copy, after).map(drop)
    }

    fn outcomes(&self, status: &str) -> Vec<HostOutcome> {
        self.hosts
            .iter()
            .map(|h| HostOutcome {
                host: h.url.to_string(),
                status: status.to_string(),
            })
            .collect()
    }

    /// Rolls back every swapped host, restarts every host that owes it, and
    /// returns the error reporting each host.
    fn roll_back(&mut self, failed: usize, err: anyhow::Error) -> anyhow::Error {
        let mut undo_failed = false;
        let mut summary = String::new();
        for i in 0..self.hosts.len() {
            let (status, ok) = self.undo(i, failed, &err);
            undo_failed |= !ok;
            let host = &self.hosts[i].url;
            self.log.line(&format!("  {host}: {status}"));
            summary.push_str(&format!("\n  {host}: {status}"));
        }
        let is_abort = err
            .chain()
            .any(|e| e.downcast_ref::<crate::error::Exit>().is_some())
            && self.swapped.is_empty();
        let message = format!(
            "deploy failed on {}: {err:#}{summary}",
            self.hosts[failed].url.host_port()
        );
        if is_abort && !undo_failed {
            aborted(message)
        } else {
            crate::error::deploy_failed(message)
        }
    }

    /// Undoes what the deploy did on host `i`: its status, and whether the
    /// undo worked.
    fn undo(&mut self, i: usize, failed: usize, err: &anyhow::Error) -> (String, bool) {
        let swapped = self.swapped.iter().find(|(h, _)| *h == i).map(|s| s.1);
        let (mut status, mut ok) = match swapped {
            Some(after) => match self.restore(i, after) {
                Ok(()) => ("rolled back to the previous database".to_string(), true),
                Err(e) => (
                    format!("KEEPS THE NEW DATABASE: {}", not_restored(&e)),
                    false,
                ),
            },
            None if i == failed => (format!("failed: {err:#}"), true),
            None => ("not changed".to_string(), true),
        };
        if self.owes_restart.contains(&i) {
            match self.restart(i) {
                Ok(()) if given(&self.commands.restart).is_some() => status.push_str("; restarted"),
                Ok(()) => {}
                Err(e) => {
                    status.push_str(&format!("; RESTART FAILED: {e:#}"));
                    ok = false;
                }
            }
        }
        (status, ok)
    }
}

/// Why a swapped host keeps the new database, and what to do.
fn not_restored(e: &anyhow::Error) -> String {
    let why = if exit_code(e) == ExitKind::Aborted as u8 {
        "the application wrote to it since the swap (or held it locked), so putting the previous \
         one back was refused"
            .to_string()
    } else {
        format!("putting the previous one back failed: {e:#}")
    };
    format!(
        "{why}. Check the service; `sqlmorph rollback` restores the backup taken before this deploy"
    )
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        for i in std::mem::take(&mut self.owes_restart) {
            if let Err(e) = self.restart(i) {
                let host = &self.hosts[i].url;
                self.log.line(&format!("  restart on {host} failed: {e:#}"));
            }
        }
    }
}

/// Runs the `restart` command on every host, over SSH, as a deploy does
/// (`SQLMORPH_DB` set, output to the log). Every host is tried; the first
/// failure is returned.
pub fn restart_fleet(
    urls: &[SshUrl],
    opts: &SshOptions,
    command: &str,
    log: &mut Log,
) -> Result<()> {
    let mut first_failure = None;
    for url in urls {
        // A session of its own: `restart` needs no agent.
        let restarted = Remote::connect(url, opts)
            .and_then(|remote| run_on(&remote, url, "restart", command, log))
            .with_context(|| format!("restarting on {}", url.host_port()));
        if let Err(e) = restarted {
            log.line(&format!("  {e:#}"));
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// Runs a configured command on the host of `url` with `/bin/sh -c`;
/// `SQLMORPH_DB` holds the database path. Output goes to the run log.
fn run_on(remote: &Remote, url: &SshUrl, what: &str, command: &str, log: &mut Log) -> Result<()> {
    log.line(&format!("  {what} on {}: {command}", url.host_port()));
    let out = remote.exec(&format!(
        "SQLMORPH_DB={}; export SQLMORPH_DB; exec {}",
        shell_quote(&url.path),
        shell_command(&["/bin/sh", "-c", command])
    ))?;
    let text = format!("{}{}", out.stdout, out.stderr);
    if !text.trim().is_empty() {
        log.quiet(text.trim_end());
    }
    if out.status != 0 {
        bail!(
            "the {what} command `{command}` failed on {} (exit {}): {}",
            url.host_port(),
            out.status,
            text.trim()
        );
    }
    Ok(())
}
