//! A live production file: one that an application may have open, in WAL
//! or rollback-journal mode, while sqlmorph reads it and, once, writes it.
//!
//! Every access goes through SQLite connections, so SQLite's own locking
//! protects the application and us alike (no file of production is ever
//! opened beside them: closing any descriptor of a file drops every POSIX
//! lock the process holds on it).
//!
//! * A [`LiveDb`] keeps one connection open for the whole session. It never
//!   checkpoints on close, and it leaves no `-wal`/`-shm` it created.
//! * [`LiveDb::copy_to`] writes a consistent copy with the online backup API
//!   inside one read transaction and records production's `data_version` in
//!   that same transaction: the compare-and-swap baseline.
//! * [`Swappable::swap_in`] writes the new content *into* the live file
//!   (WAL: the online backup API; rollback journal: SQLite's journal and
//!   then the pages, see [`journal`]), while SQLite's write lock is held, after
//!   checking under that lock that no other connection committed since the
//!   baseline and that the path still names the same file. The inode, owner,
//!   mode and any symlink stay as they were; a crash leaves SQLite's journal
//!   or WAL to make the write all or nothing; the application's connections
//!   see the old database or the new one (the backup bumps the schema cookie
//!   so their prepared statements are re-prepared).
//! * [`Swappable::apply_in_place`] changes production in one write
//!   transaction under the same checks: the rehearsal's changed pages
//!   written through `sqlite_dbpage` when nothing committed since the
//!   baseline (production's pages are then the snapshot's), the statements
//!   run again otherwise.
//!
//! WAL mode: the destination connection takes the write lock (a backup step
//! of zero pages) and the session connection, which readers may use beside a
//! writer, reads `data_version`. Rollback-journal mode: readers are shut out
//! by the exclusive lock the write needs, so the session connection takes it
//! itself (`locking_mode=EXCLUSIVE`, `BEGIN EXCLUSIVE`), checks, and the
//! journal swap writes through that connection's own file (or, where it
//! does not apply, the connection is the backup's destination); the lock
//! goes with the connection, which the journal swap replaces.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::files::{self, Unsynced};
use super::journal;
use crate::error::{aborted, input};

/// How long the swap waits for the application to release its locks.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The page cache of the connection the swap writes through (KiB). SQLite's
/// default (2 MiB) makes a rollback-journal write of a large database spill
/// and sync the journal often; 8 MiB halves the swap of a 1.2 GB database
/// (6.9 s to 3.4 s measured with `.restore`), more gains nothing.
const SWAP_CACHE_KIB: i64 = 8192;

/// The session's view of production: read it, copy it, and (through
/// [`Swappable`]) swap new content into it.
pub struct LiveDb {
    path: PathBuf,
    conn: Connection,
    identity: (u64, u64),
    /// Which connection `conn` is (a swap in WAL mode replaces it).
    generation: u32,
    wal_existed: bool,
    shm_existed: bool,
    swapped: bool,
    /// How the last in-place change went in.
    applied: Option<Applied>,
    /// A rollback journal being written ahead of the swap (see
    /// [`Swappable::prepare_journal`]).
    prepared: Option<std::thread::JoinHandle<Result<journal::Prepared>>>,
    /// How the last whole-file swap of a rollback-journal production went
    /// in (`None`: through the backup API).
    written: Option<journal::Written>,
}

/// Production's state at a consistent copy (or right after a swap): the
/// session connection's `data_version`, which moves when any other
/// connection commits. Only meaningful for the [`LiveDb`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    generation: u32,
    version: i64,
}

/// A migration applied in place: its statements, the schema hash the
/// rehearsal had after them, and the history row to add in the same
/// transaction.
pub struct InPlace<'a> {
    pub statements: &'a [String],
    pub schema_hash: &'a str,
    /// Production's schema hash at the snapshot, when the statements
    /// neither drop nor rewrite rows: then only the schema must be
    /// unchanged under the write lock, and rows the application wrote
    /// since the snapshot stay as they are (nothing reads or replaces
    /// them). `None`: nothing at all may have been committed since.
    pub schema_before: Option<&'a str>,
    pub history: &'a dyn Fn(&Connection) -> Result<()>,
    /// The validated rehearsal, its history row already in it: when nothing
    /// at all committed since the snapshot and this SQLite has
    /// `sqlite_dbpage`, its changed pages are written instead of running
    /// the statements again (an index is not built twice, and the write
    /// lock is held for the time it takes to write them).
    pub pages: Option<&'a crate::overlay::View>,
}

/// How an in-place change reached production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The statements ran again in production.
    Statements,
    /// The rehearsal's changed pages were written (how many).
    Pages(u64),
}

/// True when the bundled SQLite has the `sqlite_dbpage` virtual table
/// (built with this repository's `.cargo/config.toml`); asked once.
pub fn page_writes_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Connection::open_in_memory()
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM pragma_module_list WHERE name = 'sqlite_dbpage'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|n| n == 1)
    })
}

/// A [`LiveDb`] that may write production: the only type with `swap_in`.
/// A dry run, `plan` and the REPL hold a plain [`LiveDb`], which cannot.
pub struct Swappable(LiveDb);

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn identity(path: &Path) -> Result<(u64, u64)> {
    let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((m.dev(), m.ino()))
}

use crate::db::is_busy;

fn locked(path: &Path, wait: Duration) -> anyhow::Error {
    aborted(format!(
        "{} stayed locked by another process for {}s (a transaction held open by the application); \
         nothing was changed. Stop the application during the swap (`stop` in sqlmorph.toml) or retry",
        path.display(),
        wait.as_secs()
    ))
}

/// Production could not even be read: another process kept it locked.
fn locked_for_reading(path: &Path, wait: Duration) -> anyhow::Error {
    aborted(format!(
        "{} stayed locked by another process for {}s, so it could not be read \
         (a transaction held open by the application); nothing was changed. Retry when it is \
         quieter, or stop the application while sqlmorph reads it",
        path.display(),
        wait.as_secs()
    ))
}

impl LiveDb {
    /// Opens production (which must exist, be SQLite and not be empty) and
    /// reads its schema once, so a corrupt file fails here.
    pub fn open(path: &Path) -> Result<LiveDb> {
        crate::db::check_database(path)?;
        let wal_existed = sibling(path, "-wal").exists();
        let shm_existed = sibling(path, "-shm").exists();
        let conn = connect(path)?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| {
            if is_busy(&e) {
                locked_for_reading(path, LOCK_WAIT)
            } else {
                crate::db::corrupt(path, &e)
            }
        })?;
        Ok(LiveDb {
            path: path.to_path_buf(),
            identity: identity(path)?,
            conn,
            generation: 0,
            wal_existed,
            shm_existed,
            swapped: false,
            applied: None,
            prepared: None,
            written: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads (schema, history) in their own statements.
    pub fn reader(&self) -> &Connection {
        &self.conn
    }

    fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// A consistent copy of production at `dest` (created 0600 through a
    /// `.partial` file, fsynced, renamed), and the compare-and-swap baseline
    /// read in the same transaction.
    pub fn copy_to(&self, dest: &Path) -> Result<Baseline> {
        let (baseline, copy) = self.copy_unsynced(dest, &mut |_| {})?;
        copy.persist()?;
        Ok(baseline)
    }

    /// [`LiveDb::copy_to`] up to the sync: the read transaction ends as
    /// soon as the copy is in the page cache, so the application's writers
    /// wait for the copy but not for the disk. The caller persists it.
    /// `while_copying`: see [`files::WhileCopying`].
    pub fn copy_unsynced(
        &self,
        dest: &Path,
        while_copying: files::WhileCopying,
    ) -> Result<(Baseline, Unsynced)> {
        self.conn.execute_batch("BEGIN")?;
        let copied = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(anyhow::Error::new)
            .and_then(|()| self.data_version())
            .and_then(|version| {
                self.copy_in_transaction(dest, while_copying)
                    .map(|copy| (version, copy))
            });
        let _ = self.conn.execute_batch("COMMIT");
        let (version, copy) = copied.map_err(|e| {
            let busy = e
                .chain()
                .any(|c| c.downcast_ref::<rusqlite::Error>().is_some_and(is_busy));
            if busy {
                locked_for_reading(&self.path, LOCK_WAIT)
            } else {
                e
            }
        })?;
        let baseline = Baseline {
            generation: self.generation,
            version,
        };
        Ok((baseline, copy))
    }

    /// The copy itself, inside the read transaction of [`LiveDb::copy_to`].
    /// In rollback-journal mode that transaction's SHARED lock keeps every
    /// writer out of the file (a writer needs EXCLUSIVE to write it, and a
    /// hot journal was rolled back by the read that took the lock), so the
    /// file's first `page_count` pages are the database: the kernel copies
    /// them at file-copy speed. In WAL mode the committed state is the file
    /// plus WAL frames, which SQLite's backup API assembles.
    fn copy_in_transaction(
        &self,
        dest: &Path,
        while_copying: files::WhileCopying,
    ) -> Result<Unsynced> {
        if self.journal_mode()? == "wal" {
            return files::backup_api_unsynced(&self.conn, &self.path, dest, while_copying);
        }
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        files::raw_copy_unsynced(&self.path, (pages * size) as u64, dest, while_copying)
    }

    /// Fails (exit 3) when a write reached production since `baseline` or
    /// the path now names another file.
    fn check_unchanged(&self, baseline: Baseline) -> Result<()> {
        if baseline.generation != self.generation {
            anyhow::bail!(
                "internal: a baseline of an earlier connection to {}",
                self.path.display()
            );
        }
        if identity(&self.path)? != self.identity {
            return Err(aborted(format!(
                "{} was replaced by another file during the migration; nothing was changed. \
                 Rerun sqlmorph to migrate the current file",
                self.path.display()
            )));
        }
        if self.data_version()? != baseline.version {
            let litestream = self.litestream_dir().map_or(String::new(), |d| {
                format!(
                    " (Litestream replicates it, {} is beside it, and writes _litestream_seq at its \
                     checkpoints: a rerun usually misses the next one)",
                    d.display()
                )
            });
            return Err(aborted(format!(
                "production ({}) changed after the snapshot was taken: a write reached it during the migration. \
                 Nothing was changed; rerun sqlmorph to migrate the current data{litestream}",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Fails (exit 3) when production's schema is no longer `hash` or the
    /// path now names another file (rows may have changed).
    fn check_schema_unchanged(&self, hash: &str) -> Result<()> {
        if identity(&self.path)? != self.identity {
            return Err(aborted(format!(
                "{} was replaced by another file during the migration; nothing was changed. \
                 Rerun sqlmorph to migrate the current file",
                self.path.display()
            )));
        }
        if crate::schema::Schema::read(&self.conn, "main")?.hash() != hash {
            return Err(aborted(format!(
                "production's schema ({}) changed after the snapshot was taken; nothing was \
                 changed. Rerun sqlmorph to migrate the current schema",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// True when nothing at all committed since `baseline` and the path
    /// still names the same file: production's pages are the snapshot's.
    fn untouched_since(&self, baseline: Baseline) -> Result<bool> {
        Ok(baseline.generation == self.generation
            && identity(&self.path)? == self.identity
            && self.data_version()? == baseline.version)
    }

    /// Inside the write transaction: the rehearsal's pages when production
    /// is still exactly the snapshot, otherwise the compare-and-swap check,
    /// the statements, the schema check and the history row.
    fn apply(&self, change: &InPlace<'_>, expected: Baseline) -> Result<Applied> {
        if let Some(pages) = change.pages
            && !pages.shrinks()
            && page_writes_available()
            && self.untouched_since(expected)?
        {
            return self.write_pages(pages).map(Applied::Pages);
        }
        self.run_statements(change, expected)?;
        Ok(Applied::Statements)
    }

    /// Writes the rehearsal's changed pages (see
    /// [`crate::overlay::View::write_into`]): production's pages are the
    /// snapshot's (checked under this lock), so afterwards it is the
    /// rehearsal, history row included.
    fn write_pages(&self, pages: &crate::overlay::View) -> Result<u64> {
        pages
            .write_into(&self.conn)
            .with_context(|| format!("writing the rehearsal's pages into {}", self.path.display()))
    }

    /// After a page write committed: the connection forgets the pages it
    /// had parsed before they were replaced, production's schema must be
    /// the rehearsal's, and the baseline for a later compare-and-swap (a
    /// restore) is returned. Forgetting the cache counts as one change in
    /// this connection's `data_version` (SQLite's `pager_reset`); a commit
    /// by another connection since ours counts too and is kept visible: it
    /// was seen before the reset (the baseline stays `expected`, which no
    /// longer matches) or is seen after it (one more change).
    fn after_page_write(&self, change: &InPlace<'_>, expected: Baseline) -> Result<Baseline> {
        let seen = self.data_version()?;
        crate::overlay::reset_cache(&self.conn)?;
        if crate::schema::Schema::read(&self.conn, "main")?.hash() != change.schema_hash {
            anyhow::bail!(
                "after writing the rehearsal's pages, the schema of {} is not the rehearsal's; \
                 `sqlmorph rollback` restores the backup taken before",
                self.path.display()
            );
        }
        Ok(if seen == expected.version {
            Baseline {
                version: seen + 1,
                ..expected
            }
        } else {
            expected
        })
    }

    /// The statements path of [`LiveDb::apply`].
    fn run_statements(&self, change: &InPlace<'_>, expected: Baseline) -> Result<()> {
        match change.schema_before {
            Some(hash) => self.check_schema_unchanged(hash)?,
            None => self.check_unchanged(expected)?,
        }
        for s in change.statements {
            self.conn
                .execute_batch(s)
                .with_context(|| format!("applying {s} to {}", self.path.display()))?;
        }
        let hash = crate::schema::Schema::read(&self.conn, "main")?.hash();
        if hash != change.schema_hash {
            return Err(aborted(format!(
                "applying the migration to {} gave another schema than the rehearsal's; \
                 it was rolled back, nothing was changed. Rerun with --rebuild",
                self.path.display()
            )));
        }
        (change.history)(&self.conn)
    }

    /// Litestream's directory beside production (`.<file>-litestream`, its
    /// default meta path), if there is one.
    pub fn litestream_dir(&self) -> Option<PathBuf> {
        let name = self.path.file_name()?.to_string_lossy();
        let dir = self.path.with_file_name(format!(".{name}-litestream"));
        dir.is_dir().then_some(dir)
    }

    /// What to say when Litestream has replicated production but cannot be
    /// replicating it now: production is in rollback-journal mode, and
    /// Litestream replicates only the WAL (it switches a database to WAL
    /// when it starts, and keeps it so while it runs). The swap goes ahead:
    /// the replica gets the new database when Litestream runs again, as the
    /// new snapshot it takes of a database changed behind its back.
    pub fn litestream_note(&self) -> Option<String> {
        let dir = self.litestream_dir()?;
        if self.journal_mode().ok()? == "wal" {
            return None;
        }
        Some(format!(
            "  note: {} is beside production, so Litestream has replicated it, but production is in \
             rollback-journal mode, which Litestream does not replicate (it switches a database to WAL \
             when it starts): the replica lacks this change until Litestream runs again and takes a \
             new snapshot",
            dir.display()
        ))
    }

    fn journal_mode(&self) -> Result<String> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        Ok(mode.to_ascii_lowercase())
    }
}

impl Swappable {
    pub fn open(path: &Path) -> Result<Swappable> {
        LiveDb::open(path).map(Swappable)
    }

    pub fn live(&self) -> &LiveDb {
        &self.0
    }

    pub fn live_mut(&mut self) -> &mut LiveDb {
        &mut self.0
    }

    /// Writes `new` into production if nothing committed since the last
    /// [`LiveDb::copy_to`]; otherwise exit 3 and production untouched.
    /// Afterwards the baseline is production right after this write, so a
    /// later swap (a restore) is refused once the application has written.
    pub fn swap_in(&mut self, new: &Path, expected: Baseline, wait: Duration) -> Result<Baseline> {
        let after = if self.0.journal_mode()? == "wal" {
            self.swap_wal(&crate::db::open_readonly(new)?, expected, wait)?
        } else {
            self.swap_exclusive(new, expected, wait)?
        };
        self.0.swapped = true;
        Ok(after)
    }

    /// Runs `change` on production in one transaction if nothing committed
    /// since `expected` (the checks of [`Swappable::swap_in`], under the
    /// write lock that `BEGIN IMMEDIATE` takes), and commits only if the
    /// resulting schema hashes as the rehearsal's. Any failure rolls back:
    /// production is untouched. The session connection's own commit leaves
    /// its `data_version`, so the baseline stays `expected`.
    pub fn apply_in_place(
        &mut self,
        change: &InPlace<'_>,
        expected: Baseline,
        wait: Duration,
    ) -> Result<Baseline> {
        let live = &mut self.0;
        live.conn.busy_timeout(wait)?;
        let result = match live.conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) if is_busy(&e) => Err(locked(&live.path, wait)),
            Err(e) => Err(e.into()),
            Ok(()) => {
                let applied = live.apply(change, expected);
                let ended = match applied {
                    Ok(_) => live.conn.execute_batch("COMMIT"),
                    Err(_) => live.conn.execute_batch("ROLLBACK"),
                };
                match (applied, ended) {
                    (Ok(_), Err(e)) => {
                        let _ = live.conn.execute_batch("ROLLBACK");
                        Err(if is_busy(&e) {
                            locked(&live.path, wait)
                        } else {
                            e.into()
                        })
                    }
                    (applied, _) => applied,
                }
            }
        };
        let _ = live.conn.busy_timeout(LOCK_WAIT);
        let applied = result?;
        self.0.applied = Some(applied);
        self.0.swapped = true;
        match applied {
            Applied::Pages(_) => self.0.after_page_write(change, expected),
            Applied::Statements => Ok(expected),
        }
    }

    /// Starts writing the swap's rollback journal from `snapshot` on
    /// another thread, while the run builds its indexes and validates:
    /// production's journal is then a rename away when the swap takes the
    /// lock (which it holds for the new pages only). For a rollback-journal
    /// production whose
    /// snapshot is its byte copy; the swap uses it only if production is
    /// still that copy, and writes the journal itself otherwise.
    pub fn prepare_journal(&mut self, snapshot: &Path) -> Result<()> {
        if self.0.journal_mode()? == "wal" || self.0.prepared.is_some() {
            return Ok(());
        }
        let Some(db) = self.0.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let (copy, db) = (snapshot.to_path_buf(), PathBuf::from(db));
        self.0.prepared = Some(std::thread::spawn(move || journal::prepare(&copy, &db)));
        Ok(())
    }

    /// How the last whole-file swap went in, when it was the journal swap.
    pub fn written(&self) -> Option<journal::Written> {
        self.0.written
    }

    /// How the last in-place change reached production.
    pub fn applied(&self) -> Option<Applied> {
        self.0.applied
    }

    /// WAL: a second connection holds the write lock while the session
    /// connection (a reader, never blocked by a writer) checks. The second
    /// connection then becomes the session connection: its `data_version`,
    /// read before the lock and unchanged up to the lock (the check proves
    /// it), ignores its own commit.
    fn swap_wal(
        &mut self,
        src: &Connection,
        expected: Baseline,
        wait: Duration,
    ) -> Result<Baseline> {
        let live = &mut self.0;
        let mut dst = Connection::open_with_flags(
            &live.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        dst.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        dst.busy_timeout(wait)?;
        dst.execute_batch(&format!("PRAGMA cache_size = -{SWAP_CACHE_KIB}"))?;
        let sizes: (i64, i64) = (
            src.query_row("PRAGMA page_size", [], |r| r.get(0))?,
            dst.query_row("PRAGMA page_size", [], |r| r.get(0))?,
        );
        if sizes.0 != sizes.1 {
            return Err(input(format!(
                "{} is in WAL mode with page_size {}, and SQLite cannot write a database of page_size {} \
                 into a WAL database; nothing was changed. Drop `PRAGMA page_size` from the source, or \
                 take production out of WAL mode for the migration",
                live.path.display(),
                sizes.1,
                sizes.0
            )));
        }
        let version: i64 = dst.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        {
            let backup = Backup::new(src, &mut dst)?;
            // A step of zero pages takes the write lock and copies nothing:
            // `More` means the lock is held, anything else that it is not.
            match backup.step(0) {
                Ok(StepResult::More) => {}
                Ok(StepResult::Busy | StepResult::Locked) => return Err(locked(&live.path, wait)),
                Err(e) if is_busy(&e) => return Err(locked(&live.path, wait)),
                other => {
                    return Err(input(format!(
                        "locking {} for the swap failed ({other:?}); nothing was changed",
                        live.path.display()
                    )));
                }
            }
            live.check_unchanged(expected)?;
            finish(&backup, &live.path)?;
        }
        // Move what the backup appended to the WAL into the file, as far as
        // the application's readers allow; never waits.
        let _ = dst.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        dst.busy_timeout(LOCK_WAIT)?;
        live.conn = dst;
        live.generation += 1;
        Ok(Baseline {
            generation: live.generation,
            version,
        })
    }

    /// Rollback journal: the session connection keeps the exclusive lock
    /// from the check to the end of the write. The write is SQLite's
    /// transaction as [`journal::swap`] makes it, when it applies; the
    /// session connection, whose pager saw none of it, is then replaced
    /// (as in WAL mode). Otherwise the online backup API writes through the
    /// session connection, whose own commit leaves the baseline as it was.
    fn swap_exclusive(
        &mut self,
        new: &Path,
        expected: Baseline,
        wait: Duration,
    ) -> Result<Baseline> {
        let live = &mut self.0;
        live.conn.busy_timeout(wait)?;
        live.conn.execute_batch(&format!(
            "PRAGMA cache_size = -{SWAP_CACHE_KIB}; PRAGMA locking_mode=EXCLUSIVE"
        ))?;
        // A journal still being written ahead is waited for before the
        // lock, not under it.
        let prepared = live.prepared.take().and_then(|h| h.join().ok()?.ok());
        let locked = live.lock_exclusive(expected, wait);
        let written = locked.map(|()| journal::swap(&live.conn, new, prepared, &mut |_| Ok(())));
        match written {
            Ok(Ok(Some(written))) => {
                live.written = Some(written);
                // Production is the new file now, whatever happens next.
                Ok(live
                    .reconnect(Some(written))
                    .unwrap_or_else(|_| live.unmatched()))
            }
            Ok(Err(e)) => {
                // A write stopped half way left its journal hot: the new
                // connection's first read plays it back (SQLite's recovery).
                if live.reconnect(None).is_err() {
                    let _ = live.unmatched();
                }
                match crate::error::is_disk_full(&e) {
                    true => Err(crate::error::no_space(&live.path, format!("{e:#}"))),
                    false => Err(e),
                }
            }
            Ok(Ok(None)) => {
                live.written = None;
                let result = crate::db::open_readonly(new).and_then(|src| {
                    let path = live.path.clone();
                    finish(&Backup::new(&src, &mut live.conn)?, &path)
                });
                live.release_exclusive();
                result.map(|()| expected)
            }
            Err(e) => {
                live.release_exclusive();
                Err(e)
            }
        }
    }
}

impl LiveDb {
    /// Takes the exclusive lock (the connection is in exclusive locking
    /// mode) and checks that nothing committed since `expected`.
    fn lock_exclusive(&self, expected: Baseline, wait: Duration) -> Result<()> {
        match self.conn.execute_batch("BEGIN EXCLUSIVE; COMMIT") {
            Err(e) if is_busy(&e) => return Err(locked(&self.path, wait)),
            other => other?,
        }
        self.check_unchanged(expected)
    }

    /// Back to normal locking; the next read releases the lock.
    fn release_exclusive(&self) {
        let _ = self.conn.execute_batch("PRAGMA locking_mode=NORMAL");
        let _ = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
        let _ = self.conn.busy_timeout(LOCK_WAIT);
    }

    /// After [`journal::swap`] wrote the file behind the session
    /// connection: a new connection replaces it (closing the old one
    /// releases the lock). The baseline is the new connection's
    /// `data_version`, read in the same read transaction that finds the
    /// change counter `written` left; when another counter is there, a
    /// writer got in between, and the baseline matches nothing (a later
    /// restore is refused rather than lose that write).
    fn reconnect(&mut self, written: Option<journal::Written>) -> Result<Baseline> {
        self.conn = connect(&self.path)?;
        self.generation += 1;
        let tx = self.conn.unchecked_transaction()?;
        tx.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let mut counter = [0u8; 4];
        super::dbfile::DbFile::of(&tx)?.read_at(&mut counter, 24)?;
        let version = self.data_version()?;
        tx.commit()?;
        let ours = written.is_some_and(|w| w.counter == u32::from_be_bytes(counter));
        Ok(Baseline {
            generation: self.generation,
            version: if ours { version } else { UNMATCHED },
        })
    }
}

impl LiveDb {
    /// When no new connection could replace the one the journal swap wrote
    /// behind: that one lets go of the lock and of its cache, and the
    /// baseline matches nothing (a later restore is refused).
    fn unmatched(&mut self) -> Baseline {
        let _ = crate::overlay::reset_cache(&self.conn);
        self.release_exclusive();
        Baseline {
            generation: self.generation,
            version: UNMATCHED,
        }
    }
}

/// A `data_version` no connection has (SQLite's counts start at 1).
const UNMATCHED: i64 = -1;

/// A read-write connection to production as the session keeps it: no
/// checkpoint on close, waiting up to [`LOCK_WAIT`] for locks.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.busy_timeout(LOCK_WAIT)?;
    Ok(conn)
}

/// Copies every remaining page and commits.
fn finish(backup: &Backup<'_, '_>, path: &Path) -> Result<()> {
    match backup.step(-1) {
        Ok(StepResult::Done) => Ok(()),
        Ok(other) => Err(input(format!(
            "writing {} did not finish ({other:?}); nothing was changed",
            path.display()
        ))),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
            Err(crate::error::no_space(path, e))
        }
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("writing the new content into {}", path.display()))),
    }
}

impl Drop for LiveDb {
    /// Leaves production's directory as it was found: a `-wal`/`-shm` that
    /// this session created is removed when the WAL holds nothing (then the
    /// close-time checkpoint has nothing to copy), or after a swap (whose
    /// content the checkpoint moves into the file).
    fn drop(&mut self) {
        if let Some(prep) = self.prepared.take() {
            let _ = prep.join();
        }
        let wal = sibling(&self.path, "-wal");
        let empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
        let ours = !self.wal_existed || !self.shm_existed;
        if self.swapped || (ours && empty) {
            let _ = self
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_code};

    /// A production in `mode` with one row, and a new database with another.
    fn files(mode: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let prod = dir.path().join("prod.db");
        let new = dir.path().join("new.db");
        Connection::open(&prod)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t(a); INSERT INTO t VALUES ('old');"
            ))
            .unwrap();
        Connection::open(&new)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t(a); INSERT INTO t VALUES ('new');"
            ))
            .unwrap();
        (dir, prod, new)
    }

    fn value(conn: &Connection) -> String {
        conn.query_row("SELECT group_concat(a) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// A rollback-journal production with `rows` rows of 1 KB.
    fn big(dir: &Path, rows: i64) -> PathBuf {
        let prod = dir.join("prod.db");
        Connection::open(&prod)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE t(a); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                 WHERE i < {rows}) INSERT INTO t SELECT randomblob(1000) FROM n;"
            ))
            .unwrap();
        prod
    }

    fn digest(path: &Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) || ':' || sum(length(a)) || ':' || hex(min(a)) FROM t",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_rollback_journal_copy_leaves_out_a_transaction_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let prod = big(dir.path(), 2000);
        let before = digest(&prod);
        let app = Connection::open(&prod).unwrap();
        // Uncommitted, and held: the copy must not see it, and must not wait for it.
        app.execute_batch("BEGIN IMMEDIATE; DELETE FROM t WHERE rowid <= 10;")
            .unwrap();
        let live = LiveDb::open(&prod).unwrap();
        live.copy_to(&dir.path().join("copy.db")).unwrap();
        app.execute_batch("COMMIT").unwrap();
        assert_eq!(digest(&dir.path().join("copy.db")), before);
        assert_ne!(digest(&prod), before);
    }

    #[test]
    fn a_writer_waits_for_the_backup_copy_but_not_for_its_sync() {
        let dir = tempfile::tempdir().unwrap();
        let prod = big(dir.path(), 2000);
        let before = digest(&prod);
        let dest = dir.path().join("copy.db");
        let live = LiveDb::open(&prod).unwrap();
        let (_, copy) = live.copy_unsynced(&dest, &mut |_| {}).unwrap();
        // Production is let go before the copy is synced: a writer that
        // does not wait at all commits.
        let app = Connection::open(&prod).unwrap();
        app.busy_timeout(Duration::ZERO).unwrap();
        app.execute_batch("DELETE FROM t WHERE rowid <= 10")
            .unwrap();
        assert!(!dest.exists(), "named only once synced");
        copy.persist().unwrap();
        assert_eq!(digest(&dest), before);
        assert_ne!(digest(&prod), before);
    }

    #[test]
    fn a_crashed_writers_hot_journal_is_rolled_back_before_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let prod = big(dir.path(), 2000);
        let before = digest(&prod);
        // A writer whose tiny cache spilled changed pages into the file
        // (the originals in its journal); copying both files now is what a
        // crash at this point leaves behind.
        let app = Connection::open(&prod).unwrap();
        app.execute_batch("PRAGMA cache_size = 5; BEGIN; UPDATE t SET a = zeroblob(1000);")
            .unwrap();
        let crashed = dir.path().join("crashed");
        std::fs::create_dir(&crashed).unwrap();
        std::fs::copy(&prod, crashed.join("prod.db")).unwrap();
        std::fs::copy(sibling(&prod, "-journal"), crashed.join("prod.db-journal")).unwrap();
        app.execute_batch("ROLLBACK").unwrap();
        let live = LiveDb::open(&crashed.join("prod.db")).unwrap();
        live.copy_to(&dir.path().join("copy.db")).unwrap();
        assert_eq!(digest(&dir.path().join("copy.db")), before);
    }

    #[test]
    fn a_rollback_journal_copy_is_the_databases_pages_only() {
        let dir = tempfile::tempdir().unwrap();
        let prod = big(dir.path(), 50);
        let pages: i64 = Connection::open(&prod)
            .unwrap()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        // Bytes past the last page (a failed truncation) are not the database.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&prod)
            .unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 5000]).unwrap();
        drop(f);
        let copy = dir.path().join("copy.db");
        LiveDb::open(&prod).unwrap().copy_to(&copy).unwrap();
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), pages as u64 * 4096);
        assert_eq!(digest(&copy), digest(&prod));
    }

    #[test]
    fn the_swap_writes_into_the_open_file_in_both_journal_modes() {
        for mode in ["wal", "delete"] {
            let (dir, prod, new) = files(mode);
            let app = Connection::open(&prod).unwrap();
            assert_eq!(value(&app), "old");
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&dir.path().join("copy.db")).unwrap();
            live.swap_in(&new, base, Duration::from_secs(2)).unwrap();
            assert_eq!(
                value(&app),
                "new",
                "{mode}: the open connection sees the new database"
            );
            app.execute("INSERT INTO t VALUES ('later')", []).unwrap();
            drop(live);
            assert_eq!(
                value(&Connection::open(&prod).unwrap()),
                "new,later",
                "{mode}"
            );
        }
    }

    #[test]
    fn after_a_rollback_journal_swap_a_restore_goes_in_until_the_application_writes() {
        let (dir, prod, new) = files("delete");
        let copy = dir.path().join("copy.db");
        let mut live = Swappable::open(&prod).unwrap();
        let base = live.live().copy_to(&copy).unwrap();
        let wait = Duration::from_secs(2);
        // The snapshot is production's byte copy: its journal is written ahead.
        live.prepare_journal(&copy).unwrap();
        let after = live.swap_in(&new, base, wait).unwrap();
        assert!(live.written().is_some_and(|w| w.ahead));
        assert_eq!(value(&Connection::open(&prod).unwrap()), "new");
        let restored = live.swap_in(&copy, after, wait).unwrap();
        assert!(live.written().is_some_and(|w| !w.ahead));
        assert_eq!(value(&Connection::open(&prod).unwrap()), "old");
        Connection::open(&prod)
            .unwrap()
            .execute("INSERT INTO t VALUES ('app')", [])
            .unwrap();
        let err = live.swap_in(&new, restored, wait).unwrap_err();
        assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{err:#}");
        drop(live);
        assert_eq!(value(&Connection::open(&prod).unwrap()), "old,app");
        assert!(!sibling(&prod, "-journal").exists());
    }

    #[test]
    fn a_commit_after_the_copy_refuses_the_swap() {
        for mode in ["wal", "delete"] {
            let (dir, prod, new) = files(mode);
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&dir.path().join("copy.db")).unwrap();
            Connection::open(&prod)
                .unwrap()
                .execute("INSERT INTO t VALUES ('late')", [])
                .unwrap();
            let err = live
                .swap_in(&new, base, Duration::from_secs(2))
                .unwrap_err();
            assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{mode}: {err:#}");
            assert!(
                format!("{err:#}").contains("changed after the snapshot"),
                "{err:#}"
            );
            drop(live);
            assert_eq!(
                value(&Connection::open(&prod).unwrap()),
                "old,late",
                "{mode}"
            );
        }
    }

    #[test]
    fn a_transaction_held_by_the_application_makes_the_swap_give_up_in_time() {
        for mode in ["wal", "delete"] {
            let (dir, prod, new) = files(mode);
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&dir.path().join("copy.db")).unwrap();
            let app = Connection::open(&prod).unwrap();
            app.execute_batch("BEGIN IMMEDIATE").unwrap();
            let started = std::time::Instant::now();
            let err = live
                .swap_in(&new, base, Duration::from_millis(300))
                .unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{mode}: waited too long"
            );
            assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{mode}: {err:#}");
            assert!(format!("{err:#}").contains("stayed locked"), "{err:#}");
            app.execute_batch("INSERT INTO t VALUES ('app'); COMMIT")
                .unwrap();
            drop(live);
            assert_eq!(
                value(&Connection::open(&prod).unwrap()),
                "old,app",
                "{mode}"
            );
        }
    }

    #[test]
    fn a_copy_while_the_application_holds_the_lock_aborts() {
        let (dir, prod, _) = files("delete");
        let live = LiveDb::open(&prod).unwrap();
        live.reader()
            .busy_timeout(Duration::from_millis(200))
            .unwrap();
        let app = Connection::open(&prod).unwrap();
        app.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = live.copy_to(&dir.path().join("copy.db")).unwrap_err();
        assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{err:#}");
        assert!(format!("{err:#}").contains("stayed locked"), "{err:#}");
        assert!(!dir.path().join("copy.db").exists());
    }

    fn no_history(_: &Connection) -> Result<()> {
        Ok(())
    }

    fn in_place<'a>(statements: &'a [String], hash: &'a str) -> InPlace<'a> {
        InPlace {
            statements,
            schema_hash: hash,
            schema_before: None,
            history: &no_history,
            pages: None,
        }
    }

    /// Production in `mode` with `rows` rows, its snapshot, and a rehearsal
    /// of `sql` over the snapshot (an overlay) with a history-like row.
    fn rehearsed_pages(
        mode: &str,
        rows: i64,
        sql: &str,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Swappable,
        Baseline,
        PathBuf,
        String,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let prod = dir.path().join("prod.db");
        Connection::open(&prod)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t(a, b);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO t SELECT printf('row %d', i), i FROM n;"
            ))
            .unwrap();
        let live = Swappable::open(&prod).unwrap();
        let snap = dir.path().join("snap.db");
        let base = live.live().copy_to(&snap).unwrap();
        let reh = dir.path().join("reh.db");
        crate::overlay::create(&snap, &reh).unwrap();
        let conn = Connection::open(&reh).unwrap();
        conn.execute_batch(sql).unwrap();
        let hash = crate::schema::Schema::read(&conn, "main").unwrap().hash();
        conn.execute_batch(
            "CREATE TABLE _sqlmorph_history(x); INSERT INTO _sqlmorph_history VALUES (1);",
        )
        .unwrap();
        (dir, prod, live, base, reh, hash)
    }

    #[test]
    fn an_untouched_production_gets_the_rehearsals_pages_and_an_open_connection_sees_them() {
        assert!(page_writes_available(), "built without sqlite_dbpage");
        for mode in ["wal", "delete"] {
            let sql = "CREATE INDEX tb ON t(b); CREATE VIEW v AS SELECT a FROM t WHERE b < 3;";
            let (_dir, prod, mut live, base, reh, hash) = rehearsed_pages(mode, 20000, sql);
            let app = Connection::open(&prod).unwrap();
            let before: i64 = app
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            let statements = vec!["SELECT raise(ABORT, 'the statements ran')".to_string()];
            let view = crate::overlay::view(&reh).unwrap();
            let mut change = in_place(&statements, &hash);
            change.pages = Some(&view);
            let after = live
                .apply_in_place(&change, base, Duration::from_secs(2))
                .unwrap();
            // The new baseline holds until another connection commits.
            live.live().check_unchanged(after).unwrap();
            assert!(
                matches!(live.applied(), Some(Applied::Pages(n)) if n > 10),
                "{mode}"
            );
            // The application's connection sees the new schema and every row;
            // the file is sound and keeps its journal mode.
            let seen: String = app
                .query_row("SELECT group_concat(a) FROM v", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, "row 1,row 2", "{mode}");
            let n: i64 = app
                .query_row(
                    "SELECT count(*) FROM t INDEXED BY tb WHERE b > 0",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, before, "{mode}");
            let check: String = app
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "{mode}");
            let journal: String = app
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(journal, mode, "{mode}");
            let history: i64 = app
                .query_row("SELECT count(*) FROM _sqlmorph_history", [], |r| r.get(0))
                .unwrap();
            assert_eq!(history, 1, "{mode}");
            // The session connection reads the new schema too.
            let schema = crate::schema::Schema::read(live.live().reader(), "main").unwrap();
            assert_eq!(schema.hash(), hash, "{mode}");
            live.live().check_unchanged(after).unwrap();
            app.execute("INSERT INTO t VALUES ('late', 0)", []).unwrap();
            let err = live.live().check_unchanged(after).unwrap_err();
            assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{mode}: {err:#}");
        }
    }

    #[test]
    fn a_production_written_since_the_snapshot_gets_the_statements_not_the_pages() {
        for mode in ["wal", "delete"] {
            let sql = "CREATE VIEW v AS SELECT a FROM t WHERE b < 3;";
            let (_dir, prod, mut live, base, reh, hash) = rehearsed_pages(mode, 2000, sql);
            let app = Connection::open(&prod).unwrap();
            app.execute("INSERT INTO t VALUES ('late', 0)", []).unwrap();
            let before = {
                let snap = prod.with_file_name("snap.db");
                crate::schema::Schema::load(&snap).unwrap().hash()
            };
            let statements = vec![sql.to_string()];
            let view = crate::overlay::view(&reh).unwrap();
            let mut change = in_place(&statements, &hash);
            change.schema_before = Some(&before);
            change.pages = Some(&view);
            live.apply_in_place(&change, base, Duration::from_secs(2))
                .unwrap();
            assert_eq!(live.applied(), Some(Applied::Statements), "{mode}");
            let seen: String = app
                .query_row("SELECT group_concat(a) FROM v", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, "row 1,row 2,late", "{mode}: the late row is kept");
        }
    }

    #[test]
    fn statements_that_keep_rows_go_in_after_a_commit_but_not_after_a_schema_change() {
        for mode in ["wal", "delete"] {
            let (dir, prod, _) = files(mode);
            let statements = vec!["CREATE VIEW v AS SELECT a FROM t".to_string()];
            let copy = dir.path().join("copy.db");
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&copy).unwrap();
            let before = crate::schema::Schema::load(&copy).unwrap().hash();
            Connection::open(&copy)
                .unwrap()
                .execute_batch(&statements[0])
                .unwrap();
            let hash = crate::schema::Schema::load(&copy).unwrap().hash();
            let app = Connection::open(&prod).unwrap();
            app.execute("INSERT INTO t VALUES ('late')", []).unwrap();
            let mut change = in_place(&statements, &hash);
            change.schema_before = Some(&before);
            // The application's schema change after the snapshot refuses it.
            app.execute_batch("CREATE TABLE other(x)").unwrap();
            let err = live
                .apply_in_place(&change, base, Duration::from_secs(2))
                .unwrap_err();
            assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{mode}: {err:#}");
            assert!(format!("{err:#}").contains("schema"), "{mode}: {err:#}");
            // Without it, the row written since the snapshot stays and the view goes in.
            app.execute_batch("DROP TABLE other").unwrap();
            live.apply_in_place(&change, base, Duration::from_secs(2))
                .unwrap();
            let seen: String = app
                .query_row("SELECT group_concat(a) FROM v", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, "old,late", "{mode}");
        }
    }

    #[test]
    fn in_place_statements_reach_the_open_file_in_both_journal_modes() {
        for mode in ["wal", "delete"] {
            let (dir, prod, _) = files(mode);
            let app = Connection::open(&prod).unwrap();
            assert_eq!(value(&app), "old");
            let statements = vec!["CREATE VIEW v AS SELECT a FROM t".to_string()];
            let copy = dir.path().join("copy.db");
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&copy).unwrap();
            Connection::open(&copy)
                .unwrap()
                .execute_batch(&statements[0])
                .unwrap();
            let hash = crate::schema::Schema::load(&copy).unwrap().hash();
            let after = live
                .apply_in_place(&in_place(&statements, &hash), base, Duration::from_secs(2))
                .unwrap();
            assert_eq!(after, base, "{mode}");
            let seen: String = app
                .query_row("SELECT group_concat(a) FROM v", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, "old", "{mode}: the open connection sees the view");
        }
    }

    #[test]
    fn a_commit_after_the_copy_or_another_schema_refuses_the_in_place_change() {
        for mode in ["wal", "delete"] {
            let (dir, prod, _) = files(mode);
            let statements = vec!["CREATE VIEW v AS SELECT a FROM t".to_string()];
            let mut live = Swappable::open(&prod).unwrap();
            let base = live.live().copy_to(&dir.path().join("copy.db")).unwrap();
            let err = live
                .apply_in_place(
                    &in_place(&statements, "wrong"),
                    base,
                    Duration::from_secs(2),
                )
                .unwrap_err();
            assert_eq!(exit_code(&err), ExitKind::Aborted as u8, "{mode}: {err:#}");
            Connection::open(&prod)
                .unwrap()
                .execute("INSERT INTO t VALUES ('late')", [])
                .unwrap();
            let err = live
                .apply_in_place(
                    &in_place(&statements, "wrong"),
                    base,
                    Duration::from_secs(2),
                )
                .unwrap_err();
            assert!(
                format!("{err:#}").contains("changed after the snapshot"),
                "{mode}: {err:#}"
            );
            drop(live);
            let views: i64 = Connection::open(&prod)
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'view'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(views, 0, "{mode}: rolled back");
        }
    }

    #[test]
    fn a_replaced_file_refuses_the_swap() {
        let (dir, prod, new) = files("delete");
        let mut live = Swappable::open(&prod).unwrap();
        let base = live.live().copy_to(&dir.path().join("copy.db")).unwrap();
        let other = dir.path().join("other.db");
        std::fs::copy(&prod, &other).unwrap();
        std::fs::rename(&other, &prod).unwrap();
        let err = live
            .swap_in(&new, base, Duration::from_secs(1))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("replaced by another file"),
            "{err:#}"
        );
    }

    #[test]
    fn a_session_leaves_no_wal_or_shm_it_created() {
        let (dir, prod, _) = files("wal");
        assert!(!sibling(&prod, "-wal").exists());
        let live = LiveDb::open(&prod).unwrap();
        live.copy_to(&dir.path().join("copy.db")).unwrap();
        drop(live);
        assert!(!sibling(&prod, "-wal").exists() && !sibling(&prod, "-shm").exists());
    }
}
