//! Production on a host reached over SSH: consistent copies, fingerprints
//! computed on the host, and the compare-and-swap deploy with rollback. A
//! fleet deploy restarts every host it stopped, whichever way it ends;
//! [`restart_fleet`] runs `restart` on every host (the `restart()` primitive).
//!
//! The fingerprint has the same definition as a local one (SHA-256 of the
//! file, then `-wal` and the WAL's bytes when a WAL exists), computed on the
//! host so that nothing is downloaded to check it. When the host has the
//! `sqlite3` CLI, the WAL is checkpointed first and copies are taken with
//! `.backup`; without it, the file and its WAL are downloaded together and
//! the fingerprint before and after proves that no write came in between.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::Commands;
use crate::error::aborted;
use crate::log::Log;
use crate::target::ssh::{Remote, SshOptions, SshUrl, shell_command, shell_quote};

/// One production database on one host.
pub struct RemoteDb {
    pub url: SshUrl,
    remote: Remote,
    has_sqlite3: bool,
}

fn given(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.trim().is_empty())
}

impl RemoteDb {
    /// Connects (host key checked, key or agent authentication).
    pub fn connect(url: &SshUrl, opts: &SshOptions) -> Result<RemoteDb> {
        let remote = Remote::connect(url, opts)?;
        let has_sqlite3 = remote.has_command("sqlite3").unwrap_or(false);
        Ok(RemoteDb {
            url: url.clone(),
            remote,
            has_sqlite3,
        })
    }

    /// How a consistent copy is taken on this host, for the log.
    pub fn copy_method(&self) -> &'static str {
        if self.has_sqlite3 {
            "sqlite3 .backup on the host"
        } else {
            "the file and its -wal together (no sqlite3 on the host)"
        }
    }

    fn q(&self) -> String {
        shell_quote(&self.url.path)
    }

    fn sibling(&self, suffix: &str) -> String {
        let p = Path::new(&self.url.path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.with_file_name(format!(".{name}.{suffix}"))
            .to_string_lossy()
            .into_owned()
    }

    /// `<db>.sqlmorph-prev` on the host.
    pub fn prev_path(&self) -> String {
        format!("{}.sqlmorph-prev", self.url.path)
    }

    /// The host's `sqlite3` on the database (10 s busy timeout), running `arg`.
    fn sqlite3(&self, arg: &str) -> String {
        shell_command(&["sqlite3", "-cmd", ".timeout 10000", &self.url.path, arg])
    }

    /// Shell text that checkpoints (when possible) and prints the fingerprint.
    fn fingerprint_script(&self) -> String {
        let db = self.q();
        let checkpoint = if self.has_sqlite3 {
            format!(
                "[ -e {db}-wal ] && {} >/dev/null; ",
                self.sqlite3("PRAGMA wal_checkpoint(TRUNCATE);")
            )
        } else {
            String::new()
        };
        format!(
            "{checkpoint}[ -f {db} ] || {{ echo 'no such file' >&2; exit 9; }}; \
             {{ cat -- {db}; if [ -e {db}-wal ]; then printf %s -wal; cat -- {db}-wal; fi; }} | sha256sum | cut -d' ' -f1"
        )
    }

    /// The fingerprint of the database on the host.
    pub fn fingerprint(&self) -> Result<String> {
        let out = self.remote.exec(&self.fingerprint_script())?;
        if out.status == 9 {
            bail!("{}: no such file on the host", self.url);
        }
        if out.status != 0 {
            bail!("fingerprinting {} failed: {}", self.url, out.stderr.trim());
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Downloads a consistent copy to `dest` and returns the fingerprint it
    /// matches (retried up to three times when the database kept changing).
    /// A failure leaves nothing behind: neither `dest` nor a temporary.
    pub fn fetch_consistent(&self, dest: &Path, progress: bool) -> Result<String> {
        let fetched = self.fetch_tries(dest, progress);
        if fetched.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        fetched
    }

    fn fetch_tries(&self, dest: &Path, progress: bool) -> Result<String> {
        for _ in 0..3 {
            let before = self.fingerprint()?;
            if self.has_sqlite3 {
                self.fetch_backup(dest, progress)?;
            } else {
                self.fetch_with_wal(dest, progress)?;
            }
            if self.fingerprint()? == before {
                return Ok(before);
            }
        }
        bail!(
            "{} kept changing while it was being copied (3 tries); stop the writers or try again",
            self.url
        )
    }

    /// A `.backup` taken on the host beside production, downloaded, removed.
    fn fetch_backup(&self, dest: &Path, progress: bool) -> Result<()> {
        let tmp = self.sibling("sqlmorph-copy");
        let backup = format!(".backup {}", dot_command_arg(&tmp));
        let fetched = self.remote.exec(&self.sqlite3(&backup)).and_then(|out| {
            if out.status != 0 {
                bail!(
                    "sqlite3 .backup of {} failed: {}",
                    self.url,
                    out.stderr.trim()
                );
            }
            self.remote.download(&tmp, dest, progress)
        });
        let _ = self.remote.remove(&tmp);
        fetched.map(drop)
    }

    /// The file and its `-wal` downloaded together; SQLite applies the WAL
    /// when the pair is opened, and the backup API writes one file.
    fn fetch_with_wal(&self, dest: &Path, progress: bool) -> Result<()> {
        let part = dest.with_extension("download");
        let local_wal = crate::target::files::wal_path(&part);
        let result = self
            .download_with_wal(&part, &local_wal, progress)
            .and_then(|()| crate::target::files::copy_consistent_rw(&part, dest));
        for p in [&part, &local_wal, &crate::target::files::shm_path(&part)] {
            let _ = std::fs::remove_file(p);
        }
        result
    }

    fn download_with_wal(&self, local: &Path, local_wal: &Path, progress: bool) -> Result<()> {
        let _ = std::fs::remove_file(local_wal);
        self.remote.download(&self.url.path, local, progress)?;
        let wal = format!("{}-wal", self.url.path);
        if self.remote.exists(&wal)? {
            self.remote.download(&wal, local_wal, progress)?;
        }
        Ok(())
    }

    /// Runs a configured command on the host; `SQLMORPH_DB` holds the
    /// database path. Output goes to the run log.
    pub fn run_command(&self, what: &str, command: &str, log: &mut Log) -> Result<()> {
        log.line(&format!("  {what} on {}: {command}", self.url.host_port()));
        let out = self.remote.exec(&format!(
            "SQLMORPH_DB={}; export SQLMORPH_DB; exec {}",
            self.q(),
            shell_command(&["/bin/sh", "-c", command])
        ))?;
        let text = format!("{}{}", out.stdout, out.stderr);
        if !text.trim().is_empty() {
            log.quiet(text.trim_end());
        }
        if out.status != 0 {
            bail!(
                "the {what} command `{command}` failed on {} (exit {}): {}",
                self.url.host_port(),
                out.status,
                text.trim()
            );
        }
        Ok(())
    }

    /// Uploads the new file beside production and checks its SHA-256 on the
    /// host. Returns the temporary remote path.
    pub fn stage(&self, local: &Path, progress: bool) -> Result<String> {
        let tmp = self.sibling("sqlmorph-new");
        let mode = self
            .remote
            .exec(&shell_command(&["stat", "-c", "%a", "--", &self.url.path]))
            .ok()
            .filter(|o| o.status == 0)
            .and_then(|o| i32::from_str_radix(o.stdout.trim(), 8).ok())
            .unwrap_or(0o644);
        self.remote.upload(local, &tmp, mode, progress)?;
        let expected = crate::target::files::file_sha256(local)?;
        match self.remote.sha256(&tmp)? {
            Some(h) if h == expected => Ok(tmp),
            other => {
                let _ = self.remote.remove(&tmp);
                bail!(
                    "the uploaded file on {} does not match (sha256 {} here, {} there)",
                    self.url.host_port(),
                    expected,
                    other.unwrap_or_else(|| "missing".into())
                )
            }
        }
    }

    /// Compare-and-swap: if the fingerprint still equals `expected`, keep
    /// the current file as `<db>.sqlmorph-prev` and rename `staged` over it,
    /// in one command on the host.
    pub fn swap(&self, staged: &str, expected: &str) -> Result<()> {
        let db = self.q();
        let script = format!(
            "set -e; fp=$({}); \
             if [ \"$fp\" != {exp} ]; then echo 'production changed' >&2; exit 3; fi; \
             if [ -s {db}-wal ]; then echo 'production has a WAL that could not be checkpointed' >&2; exit 5; fi; \
             ln -f -- {db} {prev} 2>/dev/null || cp -p -- {db} {prev}; \
             mv -f -- {new} {db}; \
             sync -- {db} \"$(dirname -- {db})\" 2>/dev/null || sync",
            self.fingerprint_script(),
            exp = shell_quote(expected),
            prev = shell_quote(&self.prev_path()),
            new = shell_quote(staged),
        );
        let out = self.remote.exec(&script)?;
        match out.status {
            0 => Ok(()),
            3 => Err(aborted(format!(
                "production on {} changed after the snapshot was taken: a write reached it during the migration. \
                 Nothing was changed there; rerun sqlmorph to migrate the current data",
                self.url
            ))),
            5 => Err(aborted(format!(
                "production on {} has a write-ahead log that could not be checkpointed (the application holds it, \
                 and the host has no sqlite3 to checkpoint it): configure `stop` to stop the application during the swap",
                self.url
            ))),
            _ => bail!(
                "the swap on {} failed: {}",
                self.url.host_port(),
                out.stderr.trim()
            ),
        }
    }

    /// Puts `<db>.sqlmorph-prev` back.
    pub fn restore_prev(&self) -> Result<()> {
        let out = self.remote.exec(&format!(
            "{} && sync",
            shell_command(&["mv", "-f", "--", &self.prev_path(), &self.url.path])
        ))?;
        if out.status != 0 {
            bail!(
                "restoring the previous database on {} failed: {}",
                self.url.host_port(),
                out.stderr.trim()
            );
        }
        Ok(())
    }

    /// Removes a staged upload.
    pub fn discard(&self, staged: &str) {
        let _ = self.remote.remove(staged);
    }
}

/// `path` as one argument of a sqlite3 dot-command: double-quoted, `\` and
/// `"` escaped (the CLI resolves backslash escapes inside double quotes).
fn dot_command_arg(path: &str) -> String {
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
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
/// swapped is rolled back, so the fleet ends all-old or all-new, and every
/// host that was stopped or had its database changed is restarted.
pub fn deploy_fleet(
    hosts: &mut [RemoteDb],
    migrated: &Path,
    fingerprints: &[String],
    commands: &Commands,
    progress: bool,
    log: &mut Log,
) -> Result<Vec<HostOutcome>> {
    let staged = stage_all(hosts, migrated, progress)?;
    let mut fleet = Fleet {
        hosts,
        staged,
        commands,
        log,
        swapped: Vec::new(),
        owes_restart: BTreeSet::new(),
    };
    match fleet
        .swap_all(fingerprints)
        .and_then(|()| fleet.restart_all())
    {
        Ok(()) => Ok(fleet.outcomes("deployed")),
        Err((failed, err)) => Err(fleet.roll_back(failed, err)),
    }
}

/// Uploads and verifies the new file on every host, in parallel. On any
/// failure every upload is removed and no host was changed.
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
        for (h, s) in hosts.iter().zip(&staged) {
            if let Ok(tmp) = s {
                h.discard(tmp);
            }
        }
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
    hosts: &'a [RemoteDb],
    staged: Vec<String>,
    commands: &'a Commands,
    log: &'a mut Log,
    swapped: Vec<usize>,
    owes_restart: BTreeSet<usize>,
}

/// A step that failed on one host (its index).
type HostError = (usize, anyhow::Error);

impl Fleet<'_> {
    /// Stop (when configured) and compare-and-swap, host by host.
    fn swap_all(&mut self, fingerprints: &[String]) -> Result<(), HostError> {
        for (i, fingerprint) in fingerprints.iter().enumerate() {
            self.swap_one(i, fingerprint).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn swap_one(&mut self, i: usize, fingerprint: &str) -> Result<()> {
        let host = &self.hosts[i];
        if let Some(stop) = given(&self.commands.stop) {
            self.owes_restart.insert(i);
            host.run_command("stop", stop, self.log)?;
        }
        host.swap(&self.staged[i], fingerprint)?;
        self.owes_restart.insert(i);
        self.swapped.push(i);
        self.log.line(&format!("  swapped {}", host.url));
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

    /// Puts `<db>.sqlmorph-prev` back on host `i`.
    fn restore(&mut self, i: usize) -> Result<()> {
        self.owes_restart.insert(i);
        self.hosts[i].restore_prev()
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

    /// Removes the uploads, rolls back every swapped host, restarts every
    /// host that owes it, and returns the error reporting each host.
    fn roll_back(&mut self, failed: usize, err: anyhow::Error) -> anyhow::Error {
        for (h, tmp) in self.hosts.iter().zip(&self.staged) {
            h.discard(tmp);
        }
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
        let (mut status, mut ok) = if self.swapped.contains(&i) {
            match self.restore(i) {
                Ok(()) => ("rolled back to the previous database".to_string(), true),
                Err(e) => (format!("ROLLBACK FAILED: {e:#}"), false),
            }
        } else if i == failed {
            (format!("failed: {err:#}"), true)
        } else {
            ("not changed".to_string(), true)
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
        let restarted = RemoteDb::connect(url, opts)
            .and_then(|host| host.run_command("restart", command, log))
            .with_context(|| format!("restarting on {}", url.host_port()));
        if let Err(e) = restarted {
            log.line(&format!("  {e:#}"));
            first_failure.get_or_insert(e);
        }
    }
    first_failure.map_or(Ok(()), Err)
}
