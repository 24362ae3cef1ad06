//! The production target: the one seam through which a run reads and
//! writes production, whether it is a local file or hosts over SSH.
//!
//! A run never opens production itself. It asks the [`Production`] for a
//! consistent copy (which carries the compare-and-swap [`Token`]), for the
//! schema, and once for the swap. A [`Production`] opened for a dry run,
//! `plan` or the REPL is [`Access::ReadOnly`] and has no way to write.
//!
//! A local production is a [`LiveDb`] (or [`Swappable`]) in this process;
//! a remote one is the same, held by sqlmorph's agent on each host
//! ([`agent`]), so both get the same live-safe copy and swap.

pub mod agent;
pub mod commands;
mod dbfile;
pub mod files;
pub mod journal;
pub mod live;
pub mod local;
pub mod remote;
pub mod ssh;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::config::Commands;
use crate::config::Options;
use crate::error::aborted;
use crate::log::Log;
use crate::schema::Schema;
use crate::target::remote::{HostCopy, RemoteDb};
use files::Unsynced;
use live::{Baseline, LiveDb, Swappable};

/// Whether a session may write production at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Swap,
}

/// What a consistent copy proves about production at the time it was taken;
/// the swap is refused unless production is still in that state.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Local(Baseline),
    /// Every host's copy made on the host (its agent's token, and its
    /// restore source), in fleet order.
    Remote(Vec<HostCopy>),
}

/// Production on this machine (here, or in the agent on a host): opened on
/// first use, read-only unless swapping.
pub(crate) enum Local {
    ReadOnly(LiveDb),
    Swap(Swappable),
}

impl Local {
    pub(crate) fn open(path: &Path, access: Access) -> Result<Local> {
        Ok(match access {
            Access::ReadOnly => Local::ReadOnly(LiveDb::open(path)?),
            Access::Swap => Local::Swap(Swappable::open(path)?),
        })
    }

    pub(crate) fn live(&self) -> &LiveDb {
        match self {
            Local::ReadOnly(l) => l,
            Local::Swap(s) => s.live(),
        }
    }
}

/// Remote production: the hosts (connected, each with its agent, on first
/// use) and the copies made on them, the first one downloaded once,
/// outside the run directory.
#[derive(Default)]
struct Remote {
    hosts: Vec<RemoteDb>,
    fetched: Option<Fetched>,
}

struct Fetched {
    _dir: tempfile::TempDir,
    /// The first host's copy, here.
    path: PathBuf,
    copies: Vec<HostCopy>,
}

/// Production, local or remote.
pub struct Production {
    opts: Options,
    access: Access,
    local: Option<Local>,
    remote: Remote,
}

impl Production {
    pub fn new(opts: &Options, access: Access) -> Production {
        Production {
            opts: opts.clone(),
            access,
            local: None,
            remote: Remote::default(),
        }
    }

    pub fn is_remote(&self) -> bool {
        !self.opts.remotes.is_empty()
    }

    /// Where production is, for messages.
    pub fn name(&self) -> String {
        match self.opts.remotes.first() {
            Some(u) => u.to_string(),
            None => self.opts.production.display().to_string(),
        }
    }

    fn local(&mut self) -> Result<&Local> {
        if self.local.is_none() {
            self.local = Some(Local::open(&self.opts.production, self.access)?);
        }
        Ok(self.local.as_ref().expect("opened above"))
    }

    /// Connects to the hosts and starts their agents: every host of the
    /// fleet when swapping, only the first one (the one read) otherwise.
    fn connect(&mut self, log: &mut Log) -> Result<()> {
        let wanted = match self.access {
            Access::Swap => self.opts.remotes.len(),
            Access::ReadOnly => 1,
        };
        for url in &self.opts.remotes[self.remote.hosts.len()..wanted] {
            log.quiet(&format!("connecting to {}", url.host_port()));
            let host = RemoteDb::connect(url, &self.opts.ssh, self.access, log)?;
            self.remote.hosts.push(host);
        }
        Ok(())
    }

    /// The copies made on the hosts (each host's own, when swapping), once,
    /// and the first host's downloaded.
    fn fetched(&mut self, log: &mut Log) -> Result<(PathBuf, Vec<HostCopy>)> {
        if let Some(f) = &self.remote.fetched {
            return Ok((f.path.clone(), f.copies.clone()));
        }
        self.connect(log)?;
        let dir = tempfile::Builder::new()
            .prefix("sqlmorph-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .context("creating a temporary directory")?;
        let dest = dir.path().join("production.sqlite3");
        let mut copies = Vec::new();
        for (i, host) in self.remote.hosts.iter_mut().enumerate() {
            let copy = host.copy()?;
            if i == 0 {
                log.line(&format!(
                    "  downloading a consistent copy of {} (made on the host by the sqlmorph agent)",
                    host.url
                ));
                host.download(&copy, &dest, crate::progress::enabled())?;
            } else {
                log.quiet(&format!(
                    "  {}: a consistent copy kept on the host",
                    host.url
                ));
            }
            copies.push(copy);
        }
        self.remote.fetched = Some(Fetched {
            _dir: dir,
            path: dest.clone(),
            copies: copies.clone(),
        });
        Ok((dest, copies))
    }

    /// A consistent copy of production at `dest` (0600), and its token.
    pub fn copy_to(&mut self, dest: &Path, log: &mut Log) -> Result<Token> {
        let (token, copy) = self.copy_unsynced(dest, log, &mut |_| {})?;
        copy.persist()?;
        Ok(token)
    }

    /// [`Production::copy_to`] up to the sync: production is let go as soon
    /// as the copy is in the page cache; the caller persists it. The copy
    /// can be read while it is written: see [`files::WhileCopying`].
    pub fn copy_unsynced(
        &mut self,
        dest: &Path,
        log: &mut Log,
        while_copying: files::WhileCopying,
    ) -> Result<(Token, Unsynced)> {
        if self.is_remote() {
            let (fetched, copies) = self.fetched(log)?;
            let copy = files::copy_consistent_unsynced(&fetched, dest, while_copying)?;
            return Ok((Token::Remote(copies), copy));
        }
        let (baseline, copy) = self.local()?.live().copy_unsynced(dest, while_copying)?;
        Ok((Token::Local(baseline), copy))
    }

    /// Runs `f` on a consistent read of production (a remote one: of its
    /// copy).
    pub fn with_reader<T>(
        &mut self,
        log: &mut Log,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        if self.is_remote() {
            let (fetched, _) = self.fetched(log)?;
            return f(&crate::db::open_readonly(&fetched)?);
        }
        let conn = self.local()?.live().reader();
        conn.execute_batch("BEGIN")?;
        let out = f(conn);
        let _ = conn.execute_batch("COMMIT");
        out
    }

    /// Production's schema, read consistently.
    pub fn schema(&mut self, log: &mut Log) -> Result<Schema> {
        self.with_reader(log, |c| Schema::read(c, "main"))
    }

    /// The newest deploy recorded in production's `_sqlmorph_history` with
    /// the backup taken before it: (deployed_at, backup path).
    pub fn last_deploy(&mut self, log: &mut Log) -> Result<Option<(String, PathBuf)>> {
        self.with_reader(log, |conn| {
            let has_column: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('_sqlmorph_history') WHERE name = 'backup'",
                [],
                |r| r.get(0),
            )?;
            if has_column == 0 {
                return Ok(None);
            }
            let row = conn.query_row(
                "SELECT deployed_at, backup FROM _sqlmorph_history
                 WHERE backup IS NOT NULL AND backup <> '' ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        PathBuf::from(r.get::<_, String>(1)?),
                    ))
                },
            );
            match row {
                Ok(r) => Ok(Some(r)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Runs `restart` where production lives: here for a local file, on
    /// every host of the fleet over SSH.
    pub fn restart(&mut self, command: &str, log: &mut Log) -> Result<()> {
        if self.is_remote() {
            return crate::target::remote::restart_fleet(
                &self.opts.remotes,
                &self.opts.ssh,
                command,
                log,
            );
        }
        crate::target::commands::run_command("restart", command, log)
    }

    /// Swaps `new` into production if production is still as `token`
    /// says; `restore` (production's content at `token`) goes back in when
    /// the service does not come back (over SSH, each host's own copy,
    /// Deploys in place (local production only): `change` runs in
    /// production under the write lock if production is still as `token`
    /// says; `restore` goes back in if the service does not come back.
    pub fn apply_in_place(
        &mut self,
        change: &live::InPlace<'_>,
        token: &Token,
        restore: &Path,
        commands: &Commands,
        log: &mut Log,
    ) -> Result<String> {
        let Token::Local(baseline) = token else {
            anyhow::bail!("internal: an in-place deploy needs a local production");
        };
        if self.access == Access::ReadOnly {
            return Err(aborted(format!(
                "{} was opened read-only (dry run, plan or REPL): it cannot be deployed to",
                self.name()
            )));
        }
        self.local()?;
        let Some(Local::Swap(prod)) = &mut self.local else {
            unreachable!("opened for swapping above")
        };
        local::deploy_in_place(prod, change, *baseline, restore, commands, log)
    }

    /// Lets a local rollback-journal production's swap journal be written
    /// ahead from `snapshot` (see [`Swappable::prepare_journal`]); nothing
    /// for a read-only or remote production, or when it cannot start.
    pub fn prepare_swap(&mut self, snapshot: &Path) {
        if self.access == Access::ReadOnly || self.is_remote() || self.local().is_err() {
            return;
        }
        if let Some(Local::Swap(prod)) = &mut self.local {
            let _ = prod.prepare_journal(snapshot);
        }
    }

    /// Writes the validated file `new` into production under its write lock
    /// if nothing committed since `token` (each host's own copy over SSH);
    /// when the service does not come back, `restore` (the snapshot, or the
    /// copy made on the host, goes back). Runs the commands around the swap.
    pub fn swap(
        &mut self,
        new: &Path,
        token: &Token,
        restore: &Path,
        commands: &Commands,
        log: &mut Log,
    ) -> Result<String> {
        if self.access == Access::ReadOnly {
            return Err(aborted(format!(
                "{} was opened read-only (dry run, plan or REPL): it cannot be deployed to",
                self.name()
            )));
        }
        match token {
            Token::Local(baseline) => {
                self.local()?;
                let Some(Local::Swap(prod)) = &mut self.local else {
                    unreachable!("opened for swapping above")
                };
                local::deploy(prod, new, *baseline, restore, commands, log)
            }
            Token::Remote(copies) => {
                self.fetched(log)?;
                let outcome = crate::target::remote::deploy_fleet(
                    &mut self.remote.hosts,
                    new,
                    copies,
                    commands,
                    crate::progress::enabled(),
                    log,
                )?;
                Ok(outcome
                    .iter()
                    .map(|o| format!("; {}: {}", o.host, o.status))
                    .collect())
            }
        }
    }
}
