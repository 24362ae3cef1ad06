//! One migration run: its directory (0700, every file in it 0600, through
//! `crate::private`), its log, and the state the primitives share
//! (snapshot, schemas, plan, migrated file, report). Every primitive a
//! recipe calls is a method here; `host` only exposes them to Rhai.
//!
//! Production is read by `backup`, `snapshot` and `production_schema`, and
//! written only by `deploy`, through the compare-and-swap in `deploy`.
//! When every change can be made in place (`super::fastpath`; decided by
//! `plan`, shown by `review`, decided again by `copy`), `copy`
//! makes a rehearsal instead of a rebuilt file, `validate` proves it page by
//! page, and `deploy` runs the statements in production under the same
//! compare-and-swap; a recipe that opens the rehearsal before `validate`
//! sends it back to the full validation and the whole-file swap.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::Serialize;

use crate::config::Options;
use crate::diff::{self, SchemaDiff};
use crate::error::{ExitKind, aborted, input};
use crate::log::Log;
use crate::pipeline::backup;
use crate::pipeline::backupcheck::{BackupCheck, BackupFailed, Checking};
use crate::pipeline::carry::{self, Carry};
use crate::pipeline::copy::{self, FileSettings};
use crate::pipeline::deploy;
use crate::pipeline::fastpath;
use crate::pipeline::path;
use crate::pipeline::plan::{self, Mappings, Plan};
use crate::pipeline::prompt::Prompter;
use crate::pipeline::rehearsal;
use crate::pipeline::validate::{self, Report};
use crate::schema::Schema;
use crate::sqltext::display_ident;
use crate::style::Style;
use crate::target::files::Syncing;
use crate::target::{Access, Production, Token};

/// What a database handle may be used for. The role decides how
/// [`Run::connect`] opens it, so a recipe cannot write what it must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Production: read only through a consistent copy (`snapshot`, or
    /// `schema(production())`); written only by `deploy`.
    Production,
    /// The consistent copy taken for this run: read-only.
    Snapshot,
    /// The fresh database the copy fills: the only writable one, until it
    /// is validated.
    Migrated,
    /// A file a recipe or the REPL opened by path: read-only in a dry run,
    /// in the read-only REPL, and for production's own file or a backup.
    File { writable: bool },
}

impl Role {
    /// The name recipes see (`db.role`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Snapshot => "snapshot",
            Role::Migrated => "migrated",
            Role::File { .. } => "file",
        }
    }
}

/// A database a recipe holds: production, the snapshot, the migrated file,
/// or one it opened by path.
#[derive(Debug, Clone, PartialEq)]
pub struct Db {
    pub path: PathBuf,
    pub role: Role,
}

/// The migrated database once validation passed: the only value `deploy`
/// accepts. Only [`Run::require`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    path: PathBuf,
}

impl Validated {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a finished run reports (`--format json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub run_dir: PathBuf,
    pub outcome: String,
    pub backup: Option<PathBuf>,
    /// The schema changes, the same array as `plan` and `diff` print.
    pub changes: Vec<crate::diff::Change>,
    pub dry_run: bool,
    pub deployed: bool,
    pub report: Option<Report>,
    /// How long each step took, in order (also in the log and report.json).
    pub steps: Vec<StepTime>,
}

/// One step of a run and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    pub step: String,
    pub seconds: f64,
}

/// The state of one run.
pub struct Run {
    pub(super) opts: Options,
    pub(super) dir: PathBuf,
    pub(super) log: Log,
    pub(super) prompter: Prompter,
    pub(super) mappings: Mappings,
    pub(super) stamp: String,
    /// The snapshot and what it proves about production (the swap's check).
    pub(super) snapshot: Option<(PathBuf, Token)>,
    pub(super) plan: Option<Plan>,
    pub(super) migrated: Option<PathBuf>,
    pub(super) summary: Summary,
    /// The exit code of the error a primitive raised last, with that
    /// error's message.
    pub(super) exit: Option<(ExitKind, String, bool)>,
    /// The question after the review was answered at the terminal for the
    /// whole run (build, validation and deployment).
    run_approved: bool,
    /// Databases opened with `open` are read-only (the REPL without --write).
    pub(super) read_only: bool,
    /// (table, column) values rewritten by `transform`: validation reports
    /// them instead of comparing them with the snapshot.
    pub(super) transformed: Vec<(String, String)>,
    /// Indexes of the migrated file carried over from the snapshot's
    /// ([`carry`]), named in validation's findings.
    carried: Vec<String>,
    /// Production, reached only through the target seam.
    production: Production,
    /// This run's backup and production's state when it was taken.
    backup: Option<(PathBuf, Token)>,
    /// The migrated file passed validation: it is read-only from then on.
    validated: bool,
    /// The step running now and when it began.
    current_step: Option<(String, std::time::Instant)>,
    /// The backup being synced, named and checked on another core.
    backup_check: BackupCheck,
    /// The migrated file being synced on another core (awaited before the
    /// swap).
    migrated_sync: Syncing,
    /// The backup linked the run's snapshot (its copy, before it had its
    /// name).
    snapshot_linked: bool,
    /// The snapshot's checksums, computed on another core during the copy,
    /// with the plan they were computed for.
    snapshot_sums: Option<(Plan, validate::SnapshotSums)>,
    settings: Option<FileSettings>,
    /// The in-place path, when `copy` rehearsed it instead of rebuilding.
    fast: Option<FastPath>,
    /// A recipe opened the rehearsal: it is validated and deployed whole.
    fast_spoiled: AtomicBool,
    /// The path decided when the plan was made, for the review.
    path: Option<(Plan, path::Choice)>,
    /// The plan `approve` accepted (its data loss approved, if any).
    approved: Option<Plan>,
}

/// A rehearsed in-place migration: its statements and the schema hash they
/// gave the rehearsal.
#[derive(Debug, Clone)]
struct FastPath {
    statements: Vec<String>,
    schema_hash: String,
    /// What validation must know about the tables the statements touch.
    in_place: fastpath::InPlace,
}

/// The source schema of a run or plan. A source with no tables (an empty
/// `.sql` file, only comments) would drop every table of production, so it
/// is refused unless `--allow-empty-source` says that is meant.
pub fn load_source(opts: &Options) -> Result<Schema> {
    // Not the recipe's fault: printed plainly, without a pointer into it.
    let schema = Schema::load(&opts.source)
        .map_err(|e| crate::error::plain(crate::error::exit_kind(&e), format!("{e:#}")))?;
    if schema.tables.is_empty() && !opts.allow_empty_source {
        return Err(crate::error::plain(
            crate::error::ExitKind::Input,
            format!(
                "the source {} has no tables: migrating to it would drop every table of \
             production; if that is what you want, rerun with --allow-empty-source",
                opts.source.display()
            ),
        ));
    }
    Ok(schema)
}

/// What each reply to the rename question does.
fn rename_choices(s: &crate::pipeline::plan::RenameSuggestion) -> String {
    format!(
        "  y = yes, rename: {old} becomes {new}, its data kept (as the line {line} would)\n  \
         n = no: {old} is dropped (its data lost) and {new} added, as the schemas say\n  \
         s = skip: no to this and to every other suggested rename {scope}",
        old = s.old,
        new = s.new,
        line = s.recipe_line,
        scope = if s.kind == "column" {
            format!("in table {}", s.table)
        } else {
            "of this table".to_string()
        }
    )
}

/// A new run directory, `<work_dir>/runs/<stamp>[_<n>]`, mode 0700, in a
/// `runs` directory that is 0700 too (older versions left it 0755).
fn create_run_dir(work_dir: &Path, stamp: &str) -> Result<PathBuf> {
    let runs = work_dir.join("runs");
    crate::private::create_dir_all(&runs)?;
    std::fs::set_permissions(
        &runs,
        std::fs::Permissions::from_mode(crate::private::DIR_MODE),
    )
    .with_context(|| format!("making {} private", runs.display()))?;
    let mut dir = runs.join(stamp);
    let mut n = 2;
    while dir.exists() {
        dir = runs.join(format!("{stamp}_{n}"));
        n += 1;
    }
    crate::private::create_dir(&dir)?;
    Ok(dir)
}

/// A timestamp for file names.
pub fn stamp_now() -> String {
    chrono::Local::now().format("%Y%m%d_%H%M%S").to_string()
}

/// The run's snapshot, in the run directory.
const SNAPSHOT: &str = "production.sqlite3";

/// `dest` made the same file as `src` (a hard link, or a copy across
/// file systems).
fn link_or_copy(src: &Path, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_file(dest);
    let linked = std::fs::hard_link(src, dest).or_else(|_| std::fs::copy(src, dest).map(|_| ()));
    if let Err(e) = linked {
        let _ = std::fs::remove_file(dest);
        let dir = dest.parent().unwrap_or(Path::new("."));
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Err(crate::error::no_space(dir, e));
        }
        return Err(
            anyhow::Error::new(e).context(format!("copying the snapshot to {}", dest.display()))
        );
    }
    Ok(())
}

impl Run {
    /// Creates the run directory and its log.
    pub fn start(opts: Options, prompter: Prompter) -> Result<Run> {
        let stamp = stamp_now();
        let dir = create_run_dir(&opts.work_dir, &stamp)?;
        let mut log = Log::open(&dir.join("log.txt"), opts.json)?;
        log.quiet(&format!(
            "sqlmorph {} run pid {}: recipe {} (sha256 {}), source {}, production {}{}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            opts.recipe_name,
            opts.recipe_hash,
            opts.source.display(),
            opts.production.display(),
            if opts.dry_run { ", dry run" } else { "" }
        ));
        log.line(&super::origin::describe(&opts));
        super::leftovers::clean(
            &opts.backup_dir,
            &opts.work_dir.join("runs"),
            &dir,
            &mut log,
        );
        super::rundirs::prune(
            &opts.work_dir.join("runs"),
            &dir,
            opts.keep_runs.unwrap_or(crate::config::DEFAULT_KEEP_RUNS),
            &mut log,
        );
        if opts.remotes.is_empty() {
            super::leftovers::clean_beside(&opts.production, &mut log);
            super::leftovers::clean_prepared_journals(&opts.production, &mut log);
        }
        let summary = Summary {
            run_dir: dir.clone(),
            dry_run: opts.dry_run,
            ..Summary::default()
        };
        Ok(Run::assemble(
            opts, prompter, dir, log, stamp, summary, false,
        ))
    }

    /// A session with no run directory of its own (the REPL): scratch files
    /// go to `scratch`, the log only to the console.
    pub fn detached(opts: Options, prompter: Prompter, scratch: PathBuf, read_only: bool) -> Run {
        let summary = Summary {
            run_dir: scratch.clone(),
            ..Summary::default()
        };
        Run::assemble(
            opts,
            prompter,
            scratch,
            Log::console(false),
            stamp_now(),
            summary,
            read_only,
        )
    }

    fn assemble(
        opts: Options,
        prompter: Prompter,
        dir: PathBuf,
        log: Log,
        stamp: String,
        summary: Summary,
        read_only: bool,
    ) -> Run {
        Run {
            production: Production::new(
                &opts,
                if opts.dry_run || read_only {
                    Access::ReadOnly
                } else {
                    Access::Swap
                },
            ),
            opts,
            dir,
            log,
            prompter,
            mappings: Mappings::default(),
            stamp,
            snapshot: None,
            plan: None,
            migrated: None,
            summary,
            exit: None,
            run_approved: false,
            read_only,
            transformed: Vec::new(),
            carried: Vec::new(),
            backup: None,
            validated: false,
            current_step: None,
            backup_check: BackupCheck::none(),
            migrated_sync: Syncing::default(),
            snapshot_linked: false,
            snapshot_sums: None,
            settings: None,
            fast: None,
            fast_spoiled: AtomicBool::new(false),
            path: None,
            approved: None,
        }
    }

    /// The run's log.
    pub fn log(&mut self) -> &mut Log {
        &mut self.log
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The databases before and after the migration, for `sqlmorph test`:
    /// the snapshot and the migrated file (the snapshot again when the run
    /// built none, e.g. nothing to migrate). `None` before a snapshot.
    pub fn before_after(&self) -> Option<(Db, Db)> {
        let (snap, _) = self.snapshot.as_ref()?;
        let before = Db {
            path: snap.clone(),
            role: Role::Snapshot,
        };
        let after = match &self.migrated {
            Some(path) => Db {
                path: path.clone(),
                role: Role::Migrated,
            },
            None => before.clone(),
        };
        Some((before, after))
    }

    /// True in a dry run.
    pub fn dry_run(&self) -> bool {
        self.opts.dry_run
    }

    /// The mappings a recipe declared (renames, expressions, fills, drops).
    pub fn mappings(&self) -> &Mappings {
        &self.mappings
    }

    pub fn mappings_mut(&mut self) -> &mut Mappings {
        &mut self.mappings
    }

    /// Records the exit code of the error a primitive raised, the message
    /// the script sees for it, and whether it is printed plainly (see
    /// [`crate::error::Plain`]).
    pub fn set_exit(&mut self, kind: ExitKind, message: &str, plain: bool) {
        self.exit = Some((kind, message.to_string(), plain));
    }

    /// True when the error that ended a script with `message` is to be
    /// printed plainly, without a pointer into the recipe.
    pub fn is_plain(&self, message: Option<&str>) -> bool {
        matches!(&self.exit, Some((_, raised, true)) if message == Some(raised.as_str()))
    }

    /// Forgets the recorded exit code (a new REPL entry).
    pub fn clear_exit(&mut self) {
        self.exit = None;
    }

    /// The exit code of the error that ended a script, once: the one
    /// recorded by the primitive that raised it, only when `message` is
    /// that error's (a caught error must not decide a later, unrelated one).
    pub fn take_exit(&mut self, message: Option<&str>) -> Option<ExitKind> {
        match self.exit.take() {
            Some((kind, raised, _)) if message == Some(raised.as_str()) => Some(kind),
            _ => None,
        }
    }

    /// What a dry run without a terminal found the real run would need.
    pub fn needs(&self) -> Vec<crate::pipeline::gate::Need> {
        self.prompter.needs()
    }

    /// Sets the outcome the summary reports (`finish("deployed")`).
    pub fn finish(&mut self, outcome: &str) {
        self.summary.outcome = outcome.to_string();
    }

    /// What the run reports; "finished" when the recipe set no outcome.
    pub fn summary(&self) -> Summary {
        let mut summary = self.summary.clone();
        if summary.outcome.is_empty() {
            summary.outcome = "finished".into();
        }
        // A snake_case enum in the JSON, whatever a recipe passed to finish().
        summary.outcome = summary
            .outcome
            .trim()
            .to_lowercase()
            .replace([' ', '-'], "_");
        summary
    }

    /// A yes/no question (the `confirm` primitive).
    pub fn confirm(&self, question: &str) -> Result<()> {
        self.prompter.confirm(question)
    }

    /// Logs the start of a step.
    pub fn step(&mut self, name: &str) -> Result<()> {
        crate::interrupt::check()?;
        self.end_step();
        self.current_step = Some((name.to_string(), std::time::Instant::now()));
        self.log.line(&format!(
            "[{}] {name}",
            chrono::Local::now().format("%H:%M:%S")
        ));
        Ok(())
    }

    /// Records how long the current step took (log file, summary).
    fn end_step(&mut self) {
        if let Some((step, began)) = self.current_step.take() {
            let seconds = began.elapsed().as_secs_f64();
            self.log.detail(&format!("  {step}: {seconds:.2}s"));
            self.summary.steps.push(StepTime { step, seconds });
        }
    }

    /// The run is over: the last step's time is recorded, and `report.json`
    /// (when validation wrote one) gains every step's time.
    pub fn end(&mut self) {
        self.end_step();
        if self.opts.dry_run && !self.opts.keep_files {
            self.drop_copies();
        }
        // A rehearsal left in the run directory (kept, or not deployed)
        // becomes the complete database it stands for.
        if let Some(m) = &self.migrated
            && let Err(e) = crate::overlay::materialize(m)
        {
            self.log
                .line(&format!("  could not complete {}: {e:#}", m.display()));
        }
        let Some(report) = &self.summary.report else {
            return;
        };
        let mut json = serde_json::to_value(report).unwrap_or_default();
        if let Some(map) = json.as_object_mut() {
            map.insert(
                "steps".into(),
                serde_json::to_value(&self.summary.steps).unwrap_or_default(),
            );
        }
        if let Ok(text) = serde_json::to_string_pretty(&json) {
            let _ = crate::private::write(&self.dir.join("report.json"), text);
        }
    }

    /// A dry run leaves no copy of production behind (`--keep-files` keeps
    /// them): the snapshot and the migrated file go, the record stays.
    fn drop_copies(&mut self) {
        self.migrated = None;
        let removed = super::rundirs::drop_copies(&self.dir);
        if !removed.is_empty() {
            self.log.quiet(&format!(
                "dry run: removed {} (--keep-files keeps them)",
                removed.join(", ")
            ));
        }
    }

    /// The run stops on a signal: its scratch files go (the migrated file
    /// and the rejected-row probe; the log, plan, report and snapshot stay
    /// as the record), and the log's last line says so. Returns the message.
    pub fn interrupted(&mut self, kind: ExitKind) -> String {
        let name = if kind == ExitKind::Terminated {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        // The migrated file is known only once the copy is done; during the
        // copy it is already on disk under its name.
        self.migrated = None;
        let removed: Vec<String> = super::leftovers::remove_scratch(&self.dir)
            .iter()
            .map(|n| self.dir.join(n).display().to_string())
            .collect();
        let message = format!(
            "interrupted ({name}); production was not changed{}",
            if removed.is_empty() {
                String::new()
            } else {
                format!("; removed {}", removed.join(", "))
            }
        );
        self.log.line(&message);
        message
    }

    /// A database handle for the production file (read through primitives).
    pub fn production(&self) -> Db {
        Db {
            path: self.opts.production.clone(),
            role: Role::Production,
        }
    }

    /// A handle for a file a recipe opens by path. Production's own file and
    /// anything in the backup directory are read-only; so is everything in
    /// a dry run or the read-only REPL.
    pub fn open_file(&self, path: &Path) -> Result<Db> {
        crate::db::check_sqlite_file(path)?;
        let same = |other: Option<&Path>| {
            use std::os::unix::fs::MetadataExt;
            match (std::fs::metadata(path), other.map(std::fs::metadata)) {
                (Ok(a), Some(Ok(b))) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            }
        };
        // The run's own files keep their roles whatever path names them.
        let role = if !self.production.is_remote() && same(Some(&self.opts.production)) {
            Role::Production
        } else if same(self.snapshot.as_ref().map(|(p, _)| p.as_path()))
            || same(self.backup.as_ref().map(|(p, _)| p.as_path()))
        {
            Role::Snapshot
        } else if same(self.migrated.as_deref()) {
            Role::Migrated
        } else {
            let in_backups = std::fs::canonicalize(path)
                .ok()
                .zip(std::fs::canonicalize(&self.opts.backup_dir).ok())
                .is_some_and(|(p, b)| p.starts_with(b));
            Role::File {
                writable: !(self.opts.dry_run || self.read_only || in_backups),
            }
        };
        Ok(Db {
            path: path.to_path_buf(),
            role,
        })
    }

    /// The source schema (refused when it has no tables, unless allowed).
    pub fn source_schema(&self) -> Result<Schema> {
        load_source(&self.opts)
    }

    /// Step 1: a timestamped backup of production (skipped in a dry run),
    /// a consistent copy. Its `quick_check` starts on another core while
    /// the copy is written (see [`crate::inflight`]); production is let go
    /// once the copy is in the page cache; the copy is then synced and
    /// renamed into place on a third thread. Both are awaited before
    /// validation, before any deploy and when the run ends. The run's
    /// snapshot (step 2) is this copy, linked into the run directory before
    /// that.
    pub fn backup(&mut self) -> Result<Option<PathBuf>> {
        if self.opts.dry_run {
            self.log.line("  dry run: no backup written");
            return Ok(None);
        }
        let name = self
            .opts
            .remotes
            .first()
            .map_or_else(|| self.opts.production.clone(), |u| PathBuf::from(&u.path));
        crate::private::create_dir_all(&self.opts.backup_dir)
            .context("creating the backup directory")?;
        let dest = backup::backup_path(&name, &self.opts.backup_dir, &self.stamp);
        let mut checking = None;
        let (token, copy) = self
            .production
            .copy_unsynced(&dest, &mut self.log, &mut |copy| {
                checking = Some(Checking::start(copy, &dest));
            })?;
        let checking = checking.unwrap_or_else(|| Checking::start(copy.path(), &dest));
        // The snapshot to come, unless one was taken before (a snapshot
        // and its token always go together).
        self.snapshot_linked = self.snapshot.is_none();
        if self.snapshot_linked {
            link_or_copy(copy.path(), &self.dir.join(SNAPSHOT))?;
        }
        self.backup_check = BackupCheck::spawn(copy, checking)?;
        self.log.line(&format!(
            "  backup: {} (quick_check running)",
            dest.display()
        ));
        self.backup = Some((dest.clone(), token));
        self.summary.backup = Some(dest.clone());
        Ok(Some(dest))
    }

    /// Waits for the backup's `quick_check`: a backup that fails it stops
    /// the run before anything is validated or deployed (it runs on the
    /// other core while the copy or the rehearsal is made; the in-place
    /// proof relies on it, the snapshot being that file).
    fn backup_checked(&mut self) -> Result<()> {
        match self.backup_check.wait() {
            None => {}
            Some(Ok(())) => self.log.line("  backup quick_check ok"),
            Some(Err(BackupFailed::Unwritten(e))) if crate::interrupt::pending().is_some() => {
                return Err(e);
            }
            Some(Err(BackupFailed::Unwritten(e))) => {
                return Err(e.context("nothing was changed: the backup could not be written"));
            }
            Some(Err(BackupFailed::Damaged(e))) => {
                return Err(e.context(format!(
                    "nothing was changed: the backup of production failed quick_check, so \
                     production itself is most likely damaged (the backup is a copy of its \
                     pages). Run `sqlmorph check {}` and repair it before migrating",
                    self.opts.production.display()
                )));
            }
        }
        Ok(())
    }

    /// Step 2: a consistent snapshot of production in the run directory.
    /// After a backup it is that same copy, linked (no second read of
    /// production); every later step opens it read-only.
    pub fn snapshot(&mut self) -> Result<Db> {
        let dest = self.dir.join(SNAPSHOT);
        let token = match self.backup.clone() {
            Some((_, token)) if std::mem::take(&mut self.snapshot_linked) => token,
            Some((copy, token)) => {
                self.backup_checked()?;
                link_or_copy(&copy, &dest)?;
                token
            }
            None => self.production.copy_to(&dest, &mut self.log)?,
        };
        let conn = crate::db::open_readonly(&dest)?;
        // Production's journal mode is in the copy's header (the backup
        // keeps it), whatever the read-only connection reports.
        self.settings = Some(FileSettings {
            wal: crate::db::header_says_wal(&dest)?,
            ..FileSettings::of(&conn)?
        });
        self.log.line(&format!("  snapshot: {}", dest.display()));
        self.snapshot = Some((dest.clone(), token));
        Ok(Db {
            path: dest,
            role: Role::Snapshot,
        })
    }

    /// The schema of a database handle; production's is read consistently
    /// through the target.
    pub fn schema_of(&mut self, db: &Db) -> Result<Schema> {
        if db.role == Role::Production {
            return self.production.schema(&mut self.log);
        }
        Schema::load(&db.path)
    }

    /// Step 5 input: the plan from the snapshot to the source schema. Writes
    /// `source.sql`, `production.sql`, `schema.diff` and `plan.json`.
    pub fn plan(&mut self, snapshot: &Db, source: &Schema) -> Result<(Plan, SchemaDiff)> {
        let declared =
            super::declared::apply(&self.opts.source, &snapshot.path, &mut self.mappings)?;
        for note in declared {
            self.log.line(&note);
        }
        let (prod, d, mut plan) = plan::from_copy(&snapshot.path, source, &self.mappings)?;
        if self.decide_renames(&plan)? {
            plan = plan::from_copy(&snapshot.path, source, &self.mappings)?.2;
        }
        let choice = self.choose_path(&prod, source, &d, &plan);
        let write = |name: &str, text: String| crate::private::write(&self.dir.join(name), text);
        write("source.sql", source.to_sql())?;
        write("production.sql", prod.to_sql())?;
        write("schema.diff", diff::render_text(&d, Style::PLAIN))?;
        write(
            "plan.json",
            serde_json::to_string_pretty(&path::plan_json(&plan, &choice))?,
        )?;
        self.summary.changes = d.changes.clone();
        self.plan = Some(plan.clone());
        self.path = Some((plan.clone(), choice));
        Ok((plan, d))
    }

    /// The path this run takes for `plan` (see [`path::choose`]).
    fn choose_path(
        &self,
        prod: &Schema,
        source: &Schema,
        d: &SchemaDiff,
        plan: &Plan,
    ) -> path::Choice {
        let forced = path::forced(self.opts.rebuild, self.production.is_remote());
        path::choose(prod, source, d, plan, &self.mappings, forced)
    }

    /// Decides each suggested rename: at a terminal the user answers
    /// y (apply), n (drop and add), s (skip the rest of that table); without
    /// one the run stops (exit 3) with the recipe line, unless
    /// --allow-destructive, which drops and adds and says loudly what was
    /// lost. Returns true when a rename was applied.
    fn decide_renames(&mut self, plan: &Plan) -> Result<bool> {
        let mut applied = false;
        let mut skipped: Vec<String> = Vec::new();
        for s in &plan.renames {
            if skipped.iter().any(|t| t.eq_ignore_ascii_case(&s.table)) {
                continue;
            }
            let question = format!(
                "Was {} {}{} renamed to {}? ({})",
                s.kind,
                if s.kind == "column" {
                    format!("{}.", s.table)
                } else {
                    String::new()
                },
                s.old,
                s.new,
                s.evidence.join(", ")
            );
            if !self.prompter.interactive
                && self.prompter.dry_run
                && !self.prompter.allow_destructive
            {
                self.prompter.need(crate::pipeline::gate::Need::recipe_line(
                    &s.recipe_line,
                    &question,
                ));
            }
            if !self.prompter.interactive
                && (self.prompter.allow_destructive || self.prompter.dry_run)
            {
                self.log.line(&format!(
                    "  WARNING: {} {} is treated as dropped and {} as new; its data is NOT kept. \
                     To keep it, add this line to a recipe: {}",
                    s.kind, s.old, s.new, s.recipe_line
                ));
                continue;
            }
            let how = format!(
                "Declare it in a recipe to keep the data:\n    {}\nor rerun with --yes --allow-destructive to drop {} and add {} as the schemas say.",
                s.recipe_line, s.old, s.new
            );
            let choices = rename_choices(s);
            match self
                .prompter
                .choose(&question, &['y', 'n', 's'], &choices, &how)?
            {
                'y' => {
                    if s.kind == "column" {
                        self.mappings.column_renames.push((
                            s.table.clone(),
                            s.old.clone(),
                            s.new.clone(),
                        ));
                    } else {
                        self.mappings
                            .table_renames
                            .push((s.old.clone(), s.new.clone()));
                    }
                    self.log.line(&format!("  applying {}", s.recipe_line));
                    let hint = super::declared::hint(&self.opts.source, s);
                    self.log.line(&hint);
                    applied = true;
                }
                's' => skipped.push(s.table.clone()),
                _ => self.log.line(&format!(
                    "  {} {} dropped, {} added (as the schemas say)",
                    s.kind, s.old, s.new
                )),
            }
        }
        Ok(applied)
    }

    /// Asks for the review's approval: refusals stop the run, data loss
    /// needs explicit approval, then a yes/no.
    pub fn approve(&mut self, plan: &Plan) -> Result<()> {
        if !plan.refusals.is_empty() {
            let list = plan
                .refusals
                .iter()
                .map(|r| format!("  - {r}"))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(crate::error::declined(format!(
                "the migration cannot copy the data as it is:\n{list}"
            )));
        }
        // `data_loss` lists only what the recipe did not declare.
        self.run_approved = self.prompter.approve_run(
            &plan.data_loss,
            "Build the migrated database?",
            &format!(
                "Build, validate and deploy the migrated database to {}?",
                self.opts.production.display()
            ),
        )?;
        self.approved = Some(plan.clone());
        let approved_here = self.run_approved && !self.prompter.allow_destructive;
        if !plan.data_loss.is_empty() {
            let header = if self.opts.dry_run {
                "  data loss (a dry run changes nothing, so no approval is needed):"
            } else if self.prompter.allow_destructive {
                "  data loss approved by --allow-destructive:"
            } else {
                "  data loss approved at the terminal:"
            };
            self.say(approved_here, header);
            for l in &plan.data_loss {
                // Listed on the screen once: by the question, if it asked.
                self.say(approved_here, &format!("    - {l}"));
            }
        }
        Ok(())
    }

    /// Steps 6–7: the migration applied over the snapshot when it
    /// can be made in place (see [`fastpath`]); otherwise a fresh database
    /// from the source schema with the production data copied in.
    pub fn copy(&mut self, plan: &Plan, snapshot: &Db, source: &Schema) -> Result<Db> {
        self.fast = None;
        self.fast_spoiled.store(false, Ordering::SeqCst);
        if let Some(fast) = self.in_place_statements(plan, snapshot, source)? {
            if let Some(db) = self.rehearse(fast, snapshot, source)? {
                return Ok(db);
            }
        }
        self.rebuild(plan, snapshot, source)
    }

    /// The in-place statements, or `None` (and the reason in the log). The
    /// path is decided again as the review decided it; data loss goes in
    /// place only once `approve` accepted this very plan.
    fn in_place_statements(
        &mut self,
        plan: &Plan,
        snapshot: &Db,
        source: &Schema,
    ) -> Result<Option<fastpath::InPlace>> {
        let prod = Schema::load(&snapshot.path)?;
        let choice = self.choose_path(&prod, source, &diff::diff(&prod, source), plan);
        let unapproved = !plan.data_loss.is_empty() && self.approved.as_ref() != Some(plan);
        match choice.in_place {
            Some(_) if unapproved => {
                self.log
                    .line("  path: rebuild (the plan loses data that `approve` did not accept)");
                Ok(None)
            }
            Some(fast) => {
                self.log
                    .line(&format!("  path: in place ({})", choice.reason));
                Ok(Some(fast))
            }
            None => {
                self.log
                    .line(&format!("  path: rebuild ({})", choice.reason));
                Ok(None)
            }
        }
    }

    /// Applies `statements` over the snapshot; `None` (the run
    /// rebuilds) when SQLite refuses them or the result is not the source;
    /// an error, as for the rebuild, when a view of the source does not
    /// work.
    fn rehearse(
        &mut self,
        fast: fastpath::InPlace,
        snapshot: &Db,
        source: &Schema,
    ) -> Result<Option<Db>> {
        let statements = fast.statements.clone();
        let out = self.dir.join("migrated.sqlite3");
        let started = std::time::Instant::now();
        let rehearsed = rehearsal::rehearse(&snapshot.path, &out, &statements)
            .and_then(|()| Schema::load(&out));
        let why = match rehearsed {
            Ok(schema) if diff::diff(&schema, source).is_empty() => {
                // A view that does not work stops the run as it stops the
                // rebuild (rebuilding would not make it work).
                copy::check_views(&crate::db::open_readonly(&out)?, source)?;
                self.log.line(&format!(
                    "  rehearsed {} statement(s) over the snapshot in {:.2}s",
                    statements.len(),
                    started.elapsed().as_secs_f64()
                ));
                for sql in &statements {
                    self.log.detail(&format!("    sql: {sql}"));
                }
                self.fast = Some(FastPath {
                    statements,
                    schema_hash: schema.hash(),
                    in_place: fast,
                });
                self.migrated = Some(out.clone());
                self.validated = false;
                return Ok(Some(Db {
                    path: out,
                    role: Role::Migrated,
                }));
            }
            Ok(_) => "its schema is not the source's".to_string(),
            Err(e) => format!("{e:#}"),
        };
        self.log.line(&format!(
            "  path: rebuild (the in-place rehearsal failed: {why})"
        ));
        crate::overlay::forget(&out);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = out.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        Ok(None)
    }

    /// A fresh database from the source schema with the data copied in.
    fn rebuild(&mut self, plan: &Plan, snapshot: &Db, source: &Schema) -> Result<Db> {
        let out = self.dir.join("migrated.sqlite3");
        let prod = Schema::load(&snapshot.path)?;
        let settings = match self.settings {
            Some(s) => s,
            None => FileSettings::of(&crate::db::open_readonly(&snapshot.path)?)?,
        };
        // The snapshot's side of validation needs only the plan: run it on
        // the other core while SQLite builds the new file.
        self.snapshot_sums = Some((
            plan.clone(),
            validate::spawn_snapshot_sums(plan, &snapshot.path),
        ));
        let mut conn = copy::create_tables(source, settings, &out, &snapshot.path)?;
        let progress = crate::progress::enabled();
        let stats = copy::copy_data(
            &mut conn,
            plan,
            &prod,
            source,
            &snapshot.path,
            &self.dir,
            progress,
        )?;
        // A whole-file deploy's journal is written from here, while SQLite
        // builds the indexes and the run validates (written during
        // validation alone, it outlasted it: the swap waited for it; from
        // the start of the copy, it slowed the copy of the rows: measured).
        if !self.opts.dry_run {
            if let Some((snapshot, _)) = &self.snapshot {
                self.production.prepare_swap(snapshot);
            }
        }
        let carried: Vec<Carry> = source
            .indexes
            .iter()
            .filter_map(|i| carry::plan_carry(i, plan, &prod, source))
            .collect();
        // Carried indexes are read from the snapshot's: the backup's
        // quick_check (long done, beside the copy of the rows) must have
        // found their pages sound, or the run stops on it here. Its sync
        // may go on.
        if !carried.is_empty() && !self.backup_check.check_passed() {
            self.backup_checked()?;
        }
        copy::finish_schema(&mut conn, source, settings, &stats, &carried, progress)?;
        self.migrated_sync = copy::close_syncing(conn, &out)?;
        let rows: i64 = stats.tables.iter().map(|(_, r, _)| r).sum();
        self.log.line(&format!(
            "  copied {rows} row(s) in {} table(s) in {:.2}s",
            stats.tables.len(),
            stats.seconds
        ));
        self.carried = carried.iter().map(|c| c.index.clone()).collect();
        if !carried.is_empty() {
            let names: Vec<String> = carried.iter().map(|c| display_ident(&c.index)).collect();
            self.log.line(&format!(
                "  index(es) carried over from production unchanged (not rebuilt): {}",
                names.join(", ")
            ));
        }
        for sql in &stats.sql {
            self.log.detail(&format!("    sql: {sql}"));
        }
        for (t, r, s) in &stats.tables {
            self.log.detail(&format!("    {t}: {r} row(s) in {s:.2}s"));
        }
        self.migrated = Some(out.clone());
        self.validated = false;
        Ok(Db {
            path: out,
            role: Role::Migrated,
        })
    }

    /// Step 8: validation, printed and saved as `report.json`.
    pub fn validate(
        &mut self,
        plan: &Plan,
        snapshot: &Db,
        migrated: &Db,
        source: &Schema,
    ) -> Result<Report> {
        if self.fast.is_some() && self.fast_spoiled.load(Ordering::SeqCst) {
            self.log.line(
                "  the recipe opened the migrated database: it is validated in full and deployed whole",
            );
            self.fast = None;
        }
        if let Some(fast) = self
            .fast
            .as_ref()
            .filter(|_| self.migrated.as_ref() == Some(&migrated.path))
        {
            let report =
                rehearsal::validate(&snapshot.path, &migrated.path, source, plan, &fast.in_place)?;
            self.backup_checked()?;
            return self.record_report(report, migrated);
        }
        // The snapshot's side was started with the copy when the plan is the
        // same; otherwise it is computed now.
        let early = self
            .snapshot_sums
            .take()
            .filter(|(p, _)| p == plan)
            .map(|(_, s)| s);
        let mut report = validate::validate(
            plan,
            source,
            &snapshot.path,
            &migrated.path,
            &self.transformed,
            early,
        )?;
        carry::explain(&mut report.integrity, &self.carried);
        carry::explain(&mut report.problems, &self.carried);
        self.backup_checked()?;
        self.record_report(report, migrated)
    }

    /// Saves, prints and remembers a validation report.
    fn record_report(&mut self, report: Report, migrated: &Db) -> Result<Report> {
        crate::private::write(
            &self.dir.join("report.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        self.log.line(report.render().trim_end());
        self.summary.report = Some(report.clone());
        // A validated file is proof only while nothing writes it.
        self.validated = report.ok && self.migrated.as_ref() == Some(&migrated.path);
        Ok(report)
    }

    /// Stops the run unless the report passed; otherwise the validated
    /// database, which is what `deploy` takes.
    pub fn require(&mut self, report: &Report) -> Result<Validated> {
        if report.ok {
            match (&self.migrated, self.validated) {
                (Some(path), true) => Ok(Validated { path: path.clone() }),
                _ => Err(input(
                    "require: the migrated database of this run has not passed validation \
                     (validate it after the last copy: `let report = validate(p, migrated);`)",
                )),
            }
        } else {
            Err(aborted(format!(
                "validation failed; production was not touched:\n{}",
                report
                    .problems
                    .iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )))
        }
    }

    /// The `restart` primitive: the configured command, where production
    /// lives; nothing in a dry run.
    pub fn restart(&mut self) -> Result<()> {
        match crate::target::commands::given(&self.opts.restart) {
            Some(cmd) if !self.opts.dry_run => {
                let cmd = cmd.to_string();
                self.production.restart(&cmd, &mut self.log)
            }
            _ => Ok(()),
        }
    }

    /// A log line, to the log file only when `quiet` (the screen has it).
    fn say(&mut self, quiet: bool, text: &str) {
        if quiet {
            self.log.quiet(text);
        } else {
            self.log.line(text);
        }
    }

    /// Step 9: the deployment question, unless the question after the
    /// review covered the whole run; `y` accepted (the data it loses was
    /// approved before).
    pub fn confirm_deploy(&mut self) -> Result<()> {
        if self.run_approved {
            self.log.line("  deployment approved after the review");
        }
        self.prompter.confirm_deploy(
            &format!(
                "Deploy the migrated database to {}?",
                self.opts.production.display()
            ),
            self.run_approved,
        )
    }

    /// Step 10: compare-and-swap into production, history, restart.
    pub fn deploy(&mut self, validated: &Validated) -> Result<()> {
        self.backup_checked()?;
        if self.opts.dry_run {
            self.log.line("  dry run: production not changed");
            self.summary.outcome = "dry_run".into();
            return Ok(());
        }
        if self.migrated.as_deref() != Some(validated.path()) || !self.validated {
            return Err(input(
                "deploy: this is not the validated database of this run's last copy",
            ));
        }
        let (snapshot, token) = self
            .snapshot
            .clone()
            .context("deploy needs a snapshot first")?;
        let (backup, _) = self.backup.clone().ok_or_else(|| {
            input("deploy needs a backup of production taken in this run: call backup() first")
        })?;
        let before = Schema::load(&snapshot)?.hash();
        let after = self.source_schema()?.hash();
        let started = std::time::Instant::now();
        let note = match self.fast.clone() {
            Some(fast) => self.deploy_in_place(
                &fast,
                &token,
                &snapshot,
                before.as_str(),
                after.as_str(),
                &backup,
            )?,
            None => self.deploy_whole(
                validated,
                &token,
                &snapshot,
                before.as_str(),
                after.as_str(),
                &backup,
            )?,
        };
        self.log.line(&format!(
            "  deployed to {} {} in {:.2}s{note}",
            self.production.name(),
            if self.fast.is_some() {
                "in place"
            } else {
                "(whole file)"
            },
            started.elapsed().as_secs_f64()
        ));
        // Its content is production's now; the backup is the lasting copy.
        crate::overlay::forget(validated.path());
        for suffix in ["", "-wal", "-shm"] {
            let mut p = validated.path().as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        self.migrated = None;
        self.summary.deployed = true;
        self.summary.outcome = "deployed".into();
        Ok(())
    }

    /// The in-place deploy: the rehearsed statements and the history row in
    /// one transaction in production.
    fn deploy_in_place(
        &mut self,
        fast: &FastPath,
        token: &Token,
        snapshot: &Path,
        before: &str,
        after: &str,
        backup: &Path,
    ) -> Result<String> {
        let (opts, plan) = (&self.opts, self.plan.as_ref());
        let history = |conn: &Connection| {
            deploy::insert_history(conn, opts, before, after, plan, Some(backup))
        };
        // The validated rehearsal with its history row, to be written page
        // by page if production is still exactly the snapshot.
        let rehearsal = self.migrated.as_deref();
        let pages = match rehearsal.zip(rehearsal.and_then(crate::overlay::view)) {
            Some((path, view)) if crate::target::live::page_writes_available() => {
                let conn = Connection::open(path)?;
                let tx = conn.unchecked_transaction()?;
                history(&tx)?;
                tx.commit()?;
                Some(view)
            }
            _ => None,
        };
        // Statements that keep every row may meet rows written since the
        // snapshot; a drop may not (its loss was counted on the snapshot).
        let keeps_rows = fast.in_place.dropped.is_empty() && fast.in_place.rewritten.is_empty();
        let change = crate::target::live::InPlace {
            statements: &fast.statements,
            schema_hash: &fast.schema_hash,
            schema_before: keeps_rows.then_some(before),
            history: &history,
            pages: pages.as_ref(),
        };
        self.production.apply_in_place(
            &change,
            token,
            snapshot,
            &self.opts.commands(),
            &mut self.log,
        )
    }

    /// The rebuild's deploy: the history row in the migrated file, then the
    /// whole file swapped into production.
    fn deploy_whole(
        &mut self,
        validated: &Validated,
        token: &Token,
        snapshot: &Path,
        before: &str,
        after: &str,
        backup: &Path,
    ) -> Result<String> {
        self.migrated_sync.wait()?;
        deploy::record_history(
            validated.path(),
            &self.opts,
            before,
            after,
            self.plan.as_ref(),
            Some(backup),
        )?;
        self.production.swap(
            validated.path(),
            token,
            snapshot,
            &self.opts.commands(),
            &mut self.log,
        )
    }

    /// Opens a database handle as its role allows: production never (it is
    /// read through a copy), the snapshot read-only, the migrated file
    /// writable until validated (with the snapshot attached as `snapshot`),
    /// a file writable only outside a dry run.
    pub fn connect(&self, db: &Db, primitive: &str) -> Result<Connection> {
        match db.role {
            Role::Production => Err(input(format!(
                "{primitive}: production ({}) is not opened by recipes: read it through `snapshot()` \
                 (a consistent copy) or `schema(production())`; only `deploy` writes it",
                self.production.name()
            ))),
            Role::Migrated if !self.validated => {
                self.fast_spoiled.store(true, Ordering::SeqCst);
                // What the recipe does to it is deployed whole: a plain file.
                crate::overlay::materialize(&db.path)?;
                let (snap, _) = self.snapshot.as_ref().context("no snapshot")?;
                copy::open_scratch(&db.path, snap)
            }
            Role::File { writable: true } => crate::db::open_rw(&db.path),
            Role::Snapshot | Role::Migrated | Role::File { .. } => {
                crate::db::open_readonly(&db.path)
            }
        }
    }

    /// Why a handle refused a write, for the error a recipe sees.
    pub fn read_only_reason(&self, db: &Db) -> &'static str {
        match db.role {
            Role::Snapshot => {
                "the snapshot is read-only (it is production's content at the snapshot)"
            }
            Role::Migrated => {
                "the migrated database was validated: it is read-only now (make changes before `validate`)"
            }
            _ if self.opts.dry_run => "a dry run writes nothing outside its run directory",
            _ => {
                "this file is read-only here (production's own file, a backup, or the read-only REPL)"
            }
        }
    }

    /// The review: the schema diff and the data impact per table.
    /// The review: the schema diff, the data impact per table, and the
    /// path the run takes (when this plan is the one `plan` made).
    pub fn review(&self, plan: &Plan, d: &SchemaDiff) -> String {
        // The losses are listed once, by `approve`, which asks about them.
        let shown = Plan {
            data_loss: Vec::new(),
            ..plan.clone()
        };
        let mut text = super::review::render_review(&shown, d, Style::stdout());
        if let Some((_, choice)) = self.path.as_ref().filter(|(p, _)| p == plan) {
            text.push_str(&choice.render());
        }
        text
    }
}
