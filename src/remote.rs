//! Production on a host reached over SSH: consistent copies, fingerprints
//! computed on the host, and the compare-and-swap deploy with rollback.
//!
//! The fingerprint has the same definition as a local one (SHA-256 of the
//! file, then `-wal` and the WAL's bytes when a WAL exists), computed on the
//! host so that nothing is downloaded to check it. When the host has the
//! `sqlite3` CLI, the WAL is checkpointed first and copies are taken with
//! `.backup`; without it, the file and its WAL are downloaded together and
//! the fingerprint before and after proves that no write came in between.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::deploy::Commands;
use crate::error::aborted;
use crate::run::Log;
use crate::ssh::{Remote, SshOptions, SshUrl, shell_command, shell_quote};

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
        let local_wal = crate::backup::wal_path(&part);
        let result = self
            .download_with_wal(&part, &local_wal, progress)
            .and_then(|()| crate::backup::copy_consistent_rw(&part, dest));
        for p in [&part, &local_wal, &crate::backup::shm_path(&part)] {
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
        let expected = crate::backup::file_sha256(local)?;
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
/// compare-and-swap everywhere, then restart and health-check everywhere.
/// If any host fails, every host that was swapped is rolled back (and
/// restarted), so the fleet ends all-old or all-new.
pub fn deploy_fleet(
    hosts: &mut [RemoteDb],
    migrated: &Path,
    fingerprints: &[String],
    commands: &Commands,
    progress: bool,
    log: &mut Log,
) -> Result<Vec<HostOutcome>> {
    // 1. Upload everywhere, in parallel.
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
    let staged: Vec<String> = staged.into_iter().map(|r| r.unwrap_or_default()).collect();

    let hosts: &[RemoteDb] = hosts;
    // 2. Stop (optional) and swap, host by host; undo all on a failure.
    let mut swapped: Vec<usize> = Vec::new();
    let mut failure: Option<(usize, anyhow::Error)> = None;
    for (i, h) in hosts.iter().enumerate() {
        let step = given(&commands.stop)
            .map(|c| h.run_command("stop", c, log))
            .transpose()
            .and_then(|_| h.swap(&staged[i], &fingerprints[i]));
        match step {
            Ok(()) => {
                log.line(&format!("  swapped {}", h.url));
                swapped.push(i);
            }
            Err(e) => {
                failure = Some((i, e));
                break;
            }
        }
    }
    // 3. Restart and health-check the swapped hosts.
    if failure.is_none() {
        for (i, h) in hosts.iter().enumerate() {
            let step = given(&commands.restart)
                .map(|c| h.run_command("restart", c, log))
                .transpose()
                .and_then(|_| {
                    given(&commands.health_check)
                        .map(|c| h.run_command("health_check", c, log))
                        .transpose()
                });
            if let Err(e) = step {
                failure = Some((i, e));
                break;
            }
        }
    }
    let Some((failed, err)) = failure else {
        return Ok(hosts
            .iter()
            .map(|h| HostOutcome {
                host: h.url.to_string(),
                status: "deployed".into(),
            })
            .collect());
    };
    for (h, tmp) in hosts.iter().zip(&staged) {
        h.discard(tmp);
    }
    let mut report = Vec::new();
    let mut rollback_failed = false;
    for (i, h) in hosts.iter().enumerate() {
        let status = if swapped.contains(&i) {
            let undo = h.restore_prev().and_then(|()| {
                given(&commands.restart)
                    .map(|c| h.run_command("restart", c, log))
                    .transpose()
                    .map(|_| ())
            });
            match undo {
                Ok(()) => "rolled back to the previous database".to_string(),
                Err(e) => {
                    rollback_failed = true;
                    format!("ROLLBACK FAILED: {e:#}")
                }
            }
        } else if i == failed {
            format!("failed: {err:#}")
        } else {
            "not changed".to_string()
        };
        log.line(&format!("  {}: {status}", h.url));
        report.push(HostOutcome {
            host: h.url.to_string(),
            status,
        });
    }
    let summary = report
        .iter()
        .map(|o| format!("  {}: {}", o.host, o.status))
        .collect::<Vec<_>>()
        .join("\n");
    let is_abort = err
        .chain()
        .any(|e| e.downcast_ref::<crate::error::Exit>().is_some())
        && swapped.is_empty();
    let message = format!(
        "deploy failed on {}: {err:#}\n{summary}",
        hosts[failed].url.host_port()
    );
    if is_abort && !rollback_failed {
        Err(aborted(message))
    } else {
        Err(crate::error::deploy_failed(message))
    }
}

/// Where the temporary prefetch of a remote production lives: outside the run
/// directory, removed when the run ends.
pub fn prefetch_path() -> PathBuf {
    std::env::temp_dir().join(format!("sqlmorph-prefetch-{}.sqlite3", std::process::id()))
}

/// A consistent copy of remote production in the temporary directory, for
/// commands that only read it (`plan`); removed when dropped.
pub struct TempCopy(Option<PathBuf>);

impl TempCopy {
    /// Fetches the first host's database when production is remote.
    pub fn of(opts: &crate::run::Options) -> Result<TempCopy> {
        let Some(url) = opts.remotes.first() else {
            return Ok(TempCopy(None));
        };
        let host = RemoteDb::connect(url, &opts.ssh)?;
        // Owned before the download starts: whatever happens, it is removed.
        let path = prefetch_path();
        let copy = TempCopy(Some(path.clone()));
        host.fetch_consistent(&path, crate::progress::enabled())?;
        Ok(copy)
    }

    /// The local copy, if production is remote.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
