//! Validation of a migrated database against the snapshot it came from:
//! row counts and per-column checksums for every kept value; integrity
//! (what `PRAGMA integrity_check` proves, in linear time: `quick_check` for
//! the structure, NOT NULL and CHECK, plus every index verified against its
//! table by [`crate::pipeline::indexcheck`]); no new `foreign_key_check`
//! violations (rows of WITHOUT ROWID tables, which have no rowid, counted;
//! a table whose keys and rows the checksums prove is left out, see
//! [`crate::pipeline::fkproof`]);
//! and the resulting schema equal to the source. The snapshot's side runs
//! during the copy; then the result's tables (each in one scan for its
//! checksums and its indexes' expected entries) and its `quick_check` run
//! on two threads, which then read the indexes, each taking the next one
//! left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressFinish};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::diff;
use crate::pipeline::check::{self, FkViolation};
use crate::pipeline::checksum::{self, TableSums};
use crate::pipeline::fkproof;
use crate::pipeline::indexcheck;
use crate::pipeline::plan::{ColumnSource, Fill, Plan, TablePlan};
use crate::progress::{StatementRows, ops_per_row};
use crate::schema::Schema;
use crate::sqltext::{display_ident, quote_ident};

/// The check of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows_expected: i64,
    pub rows_found: i64,
    /// Columns whose values were compared by checksum.
    pub columns_checked: Vec<String>,
    /// Columns whose checksum differs.
    pub columns_differing: Vec<String>,
}

/// The validation report (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub tables: Vec<TableCheck>,
    /// Problems found by `quick_check` and the index verification
    /// ([`crate::pipeline::indexcheck`]); empty when the file is sound.
    pub integrity: Vec<String>,
    /// Indexes verified entry by entry against their tables.
    pub indexes_checked: usize,
    pub new_foreign_key_violations: Vec<FkViolation>,
    /// The tables whose `foreign_key_check` ran. Any other table with a
    /// foreign key kept production's rows and keys, proven by its checksums
    /// (rebuild, see [`crate::pipeline::fkproof`]) or by its pages (in
    /// place).
    pub foreign_key_tables: Vec<String>,
    /// Differences between the result's schema and the source (should be none).
    pub schema_differences: Vec<String>,
    pub problems: Vec<String>,
    pub seconds: f64,
    /// In-place path: table pages proven identical to the snapshot's
    /// (instead of row checksums; see `crate::pipeline::fastpath`); null
    /// on the rebuild path (a stable key of the JSON, docs/json.md).
    pub pages_compared: Option<u64>,
}

impl Report {
    /// The report of what validation found, `problems` holding the
    /// comparison's: after them come the integrity messages,
    /// `foreign_key` (the new violations told as problems) and the schema
    /// differences; `ok` when there are none, `seconds` since `start`.
    pub fn assemble(mut self, foreign_key: Vec<String>, start: Instant) -> Report {
        let mut problems = std::mem::take(&mut self.problems);
        problems.extend(self.integrity.iter().map(|m| format!("integrity: {m}")));
        problems.extend(foreign_key);
        problems.extend(
            self.schema_differences
                .iter()
                .map(|d| format!("schema differs from the source: {d}")),
        );
        Report {
            ok: problems.is_empty(),
            problems,
            seconds: start.elapsed().as_secs_f64(),
            ..self
        }
    }

    /// A readable summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let values: usize = self.tables.iter().map(|t| t.columns_checked.len()).sum();
        let rows: i64 = self.tables.iter().map(|t| t.rows_found).sum();
        let sums = format!(
            "{} table(s), {rows} row(s), {values} column checksum(s)",
            self.tables.len()
        );
        let kept = match self.pages_compared {
            // In place: kept rows are proved by their pages, not hashed;
            // only the tables DROP COLUMN rewrote are.
            Some(pages) => {
                let pages = format!(
                    "{pages} page(s) written, compared with the snapshot's (every kept table and index unchanged)"
                );
                if self.tables.is_empty() {
                    pages
                } else {
                    format!("{pages}, rewritten: {sums}")
                }
            }
            None => sums,
        };
        let checked = match self.pages_compared {
            Some(_) => format!(
                "the backup's quick_check; rebuilt tables' quick_check + {} new or rebuilt index(es) verified",
                self.indexes_checked
            ),
            None => format!("quick_check + {} index(es) verified", self.indexes_checked),
        };
        out.push_str(&format!(
            "Validation {}: {kept}, integrity {} ({checked}), foreign keys {}, schema {} ({:.1}s)\n",
            if self.ok { "passed" } else { "FAILED" },
            if self.integrity.is_empty() { "ok" } else { "FAILED" },
            if self.new_foreign_key_violations.is_empty() { "ok" } else { "FAILED" },
            if self.schema_differences.is_empty() { "matches the source" } else { "DIFFERS" },
            self.seconds
        ));
        for p in &self.problems {
            out.push_str(&format!("  - {p}\n"));
        }
        out
    }
}

fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    checksum::register(&conn)?;
    Ok(conn)
}

/// What validation compares for one table of the plan.
struct TableJob<'a> {
    tp: &'a TablePlan,
    /// Copied columns: compared with the same column of the snapshot.
    names: Vec<String>,
    /// Their SQL on the snapshot side.
    snap_vals: Vec<String>,
    /// Converted columns and the checksum the plan computed for them.
    conv: Vec<(String, u64)>,
}

fn jobs(plan: &Plan) -> Vec<TableJob<'_>> {
    plan.tables
        .iter()
        // A contentless full-text index that had to start empty: the review
        // said so and the loss was approved.
        .filter(|tp| tp.from.is_some() && tp.fill != Fill::Empty)
        .map(|tp| {
            let mut job = TableJob {
                tp,
                names: Vec::new(),
                snap_vals: Vec::new(),
                conv: Vec::new(),
            };
            if tp.key.is_empty() {
                return job; // no row identity on both sides: counts only
            }
            for c in &tp.columns {
                if let (ColumnSource::Copy { .. }, Some(sel)) = (&c.source, &c.select) {
                    job.names.push(c.name.clone());
                    job.snap_vals.push(sel.clone());
                }
                if let Some(cv) = &c.conversion {
                    job.conv.push((c.name.clone(), cv.checksum));
                }
            }
            job
        })
        .collect()
}

/// The snapshot's side of validation, from the plan alone: row counts and
/// the checksum of every copied column. It reads only the snapshot, so it can
/// run on another core while the copy builds the new file. At a terminal it
/// counts the rows it scans on a bar that stays hidden until validation
/// shows it ([`show_bar`]).
pub fn spawn_snapshot_sums(plan: &Plan, snapshot: &Path) -> SnapshotSums {
    let work: Vec<ScanWork> = jobs(plan)
        .iter()
        .map(|j| ScanWork {
            table: j.tp.from.clone().unwrap_or_default(),
            key: if j.tp.key.is_empty() {
                Vec::new()
            } else {
                j.tp.source_key.clone()
            },
            values: j.snap_vals.clone(),
            rows: rows_of(j),
            extra: Vec::new(),
            not_indexed: false,
        })
        .collect();
    let bar = crate::progress::enabled()
        .then(|| ProgressBar::hidden().with_finish(ProgressFinish::AndClear));
    SnapshotSums(scan(snapshot.to_path_buf(), work, bar.clone(), None), bar)
}

/// Snapshot checksums being computed on another thread, and their bar.
pub struct SnapshotSums(
    thread::JoinHandle<Result<Vec<TableSums>>>,
    Option<ProgressBar>,
);

/// What a scan hashes of one table.
struct ScanWork {
    table: String,
    key: Vec<String>,
    values: Vec<String>,
    rows: u64,
    /// Index verification's aggregates over the same rows, read in the
    /// same scan ([`indexcheck::Fusion`]).
    extra: Vec<String>,
    /// Read from the table itself, never from a covering index: its sums
    /// are what the indexes are checked against.
    not_indexed: bool,
}

fn rows_of(job: &TableJob<'_>) -> u64 {
    u64::try_from(job.tp.rows).unwrap_or(0)
}

/// Scans the tables of `work` on another thread, then reads indexes from
/// `then` (the result's), if any, until none is left.
fn scan(
    path: PathBuf,
    work: Vec<ScanWork>,
    bar: Option<ProgressBar>,
    then: Option<Arc<indexcheck::IndexQueue>>,
) -> thread::JoinHandle<Result<Vec<TableSums>>> {
    thread::spawn(move || -> Result<Vec<TableSums>> {
        let mut conn = open_ro(&path)?;
        let sums = work
            .into_iter()
            .map(|w| {
                let from = match w.not_indexed {
                    false => format!("main.{}", quote_ident(&w.table)),
                    true => format!("main.{} NOT INDEXED", quote_ident(&w.table)),
                };
                let sums = |conn: &Connection| {
                    checksum::table_sums(conn, &from, &w.key, &w.values, &w.extra)
                };
                let Some(bar) = &bar else {
                    return sums(&conn);
                };
                // Every 1,000 steps of SQLite's virtual machine, the rows
                // they stand for go on the bar: the hashing loop itself is
                // not touched.
                let sql = checksum::sums_sql(&from, &w.key, &w.values, &w.extra);
                let counter = StatementRows::new(bar, w.rows, ops_per_row(&conn, &sql)?);
                let ticks = counter.clone();
                conn.progress_handler(
                    1000,
                    Some(move || {
                        ticks.tick_ops(1000);
                        false
                    }),
                )?;
                let sums = sums(&conn);
                conn.progress_handler(1000, None::<fn() -> bool>)?;
                counter.finish();
                sums
            })
            .collect();
        if let Some(queue) = then {
            queue.drain(&conn);
        }
        sums
    })
}

/// Shows the bar of a validation's scans (both sides of `checked`).
fn show_bar(bar: &Option<ProgressBar>, checked: &[TableJob<'_>]) {
    if let Some(bar) = bar {
        bar.set_length(2 * checked.iter().map(rows_of).sum::<u64>());
        crate::progress::show_rows(bar, "checksums (both sides)");
    }
}

fn join(h: thread::JoinHandle<Result<Vec<TableSums>>>) -> Result<Vec<TableSums>> {
    h.join()
        .map_err(|_| anyhow!("a validation thread panicked"))?
}

/// Validates `migrated` against `snapshot` following `plan`.
/// `transformed` lists (table, column) pairs a recipe rewrote on purpose:
/// their values are not compared (row counts still are). `snapshot_sums`
/// is the snapshot's side if it was started earlier (see
/// [`spawn_snapshot_sums`]); otherwise it is computed now.
pub fn validate(
    plan: &Plan,
    source: &Schema,
    snapshot: &Path,
    migrated: &Path,
    transformed: &[(String, String)],
    snapshot_sums: Option<SnapshotSums>,
) -> Result<Report> {
    let start = Instant::now();
    let SnapshotSums(snap_thread, bar) =
        snapshot_sums.unwrap_or_else(|| spawn_snapshot_sums(plan, snapshot));
    let checked = jobs(plan);
    show_bar(&bar, &checked);
    let result_conn = open_ro(migrated)?;
    let result_schema = Schema::read(&result_conn, "main")?;
    // On one thread, the result's tables, each in one scan for its
    // checksums and its indexes' expected entries (see Fusion); on
    // another, quick_check.
    let indexes = indexcheck::Verification::of(&result_schema)?;
    let fusions: Vec<indexcheck::Fusion> = checked
        .iter()
        .map(|j| indexes.fusion(&j.tp.table, &j.tp.key, &summed(j)))
        .collect();
    // Both threads then read the indexes, each taking the next one left.
    let queue = Arc::new(indexes.queue());
    let new_thread = scan(
        migrated.to_path_buf(),
        result_work(&checked, Some(&fusions)),
        bar.clone(),
        Some(queue.clone()),
    );
    let structure_thread = spawn_structure_check(migrated.to_path_buf(), queue.clone());

    let foreign_key_tables =
        fkproof::to_check(plan, &Schema::load(snapshot)?, &result_schema, transformed);
    let mut result_violations =
        check::foreign_key_violations_in(&result_conn, &foreign_key_tables)?;
    result_violations.sort();

    let snap = join(snap_thread).context("scanning the snapshot")?;
    let new = join(new_thread).context("scanning the migrated database")?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut integrity = structure_thread
        .join()
        .map_err(|_| anyhow!("the integrity thread panicked"))?
        .context("checking integrity")?;
    let found = queue.sums()?;
    let scanned: Vec<(String, Vec<Value>)> = checked
        .iter()
        .zip(&new)
        .zip(&fusions)
        .map(|((j, sums), fusion)| (j.tp.table.clone(), fusion.expected(sums)))
        .collect();
    integrity.extend(indexes.problems(&result_conn, &scanned, &found)?);
    let indexes_checked = result_schema.indexes.len();

    let (tables, problems) = compare_tables(&checked, &snap, &new, transformed);
    let new_violations = new_violations(plan, snapshot, result_violations.clone())?;
    let foreign_key = violation_problems(&new_violations, &result_violations);
    Ok(Report {
        ok: false,
        tables,
        integrity,
        indexes_checked,
        new_foreign_key_violations: new_violations,
        foreign_key_tables,
        schema_differences: schema_differences(&result_schema, source),
        problems,
        seconds: 0.0,
        pages_compared: None,
    }
    .assemble(foreign_key, start))
}

/// Row counts and column checksums of every table of `plan`, compared as
/// [`validate`] compares them (the in-place path, for the tables whose
/// rows it rewrote): what was checked and the problems found.
pub fn compare_rows(
    plan: &Plan,
    snapshot: &Path,
    migrated: &Path,
) -> Result<(Vec<TableCheck>, Vec<String>)> {
    let SnapshotSums(snap_thread, bar) = spawn_snapshot_sums(plan, snapshot);
    let checked = jobs(plan);
    show_bar(&bar, &checked);
    let new = join(scan(
        migrated.to_path_buf(),
        result_work(&checked, None),
        bar,
        None,
    ))
    .context("scanning the migrated database")?;
    let snap = join(snap_thread).context("scanning the snapshot")?;
    Ok(compare_tables(&checked, &snap, &new, &[]))
}

/// The columns the result's scan of a table sums, in order: the copied
/// ones, then the converted ones.
fn summed(j: &TableJob<'_>) -> Vec<String> {
    j.names
        .iter()
        .chain(j.conv.iter().map(|(n, _)| n))
        .cloned()
        .collect()
}

/// What the result's scan hashes: per table, its key and its values, and
/// with them the aggregates its indexes' `fusions` add (one per table of
/// `checked`, when indexes are verified).
fn result_work(checked: &[TableJob<'_>], fusions: Option<&[indexcheck::Fusion]>) -> Vec<ScanWork> {
    checked
        .iter()
        .enumerate()
        .map(|(i, j)| ScanWork {
            table: j.tp.table.clone(),
            key: j.tp.key.clone(),
            values: summed(j).iter().map(|n| quote_ident(n)).collect(),
            rows: rows_of(j),
            extra: fusions
                .and_then(|f| f.get(i))
                .map_or(Vec::new(), |f| f.items.clone()),
            not_indexed: fusions.is_some(),
        })
        .collect()
}

/// `quick_check` on another core, then indexes from `queue` until none
/// is left: the problems `quick_check` found.
fn spawn_structure_check(
    path: PathBuf,
    queue: Arc<indexcheck::IndexQueue>,
) -> thread::JoinHandle<Result<Vec<String>>> {
    thread::spawn(move || {
        let conn = open_ro(&path)?;
        let problems = check::integrity(&conn, true)?;
        queue.drain(&conn);
        Ok(problems)
    })
}

/// Row counts and column checksums, table by table: what was checked and
/// the problems found.
fn compare_tables(
    checked: &[TableJob<'_>],
    snap: &[TableSums],
    new: &[TableSums],
    transformed: &[(String, String)],
) -> (Vec<TableCheck>, Vec<String>) {
    let rewritten = |t: &str, c: &str| {
        transformed
            .iter()
            .any(|(tt, cc)| tt.eq_ignore_ascii_case(t) && cc.eq_ignore_ascii_case(c))
    };
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for (i, job) in checked.iter().enumerate() {
        let table = &job.tp.table;
        let (snap_rows, snap_sums) = (&snap[i].rows, &snap[i].sums);
        let (new_rows, new_sums) = (&new[i].rows, &new[i].sums);
        // Copied columns against the snapshot's, converted ones against the
        // checksum the plan computed.
        let expected = job
            .names
            .iter()
            .enumerate()
            .map(|(j, name)| (name, snap_sums.get(j)))
            .chain(job.conv.iter().map(|(name, sum)| (name, Some(sum))));
        let mut differing = Vec::new();
        let mut columns_checked = Vec::new();
        for (j, (name, want)) in expected.enumerate() {
            if rewritten(table, name) {
                continue;
            }
            columns_checked.push(name.clone());
            if new_sums.get(j) != want {
                differing.push(name.clone());
            }
        }
        if snap_rows != new_rows {
            problems.push(format!(
                "table {}: {snap_rows} row(s) in the snapshot, {new_rows} in the migrated database",
                display_ident(table)
            ));
        }
        if !differing.is_empty() {
            problems.push(format!(
                "table {}: values differ from the snapshot in column(s) {}",
                display_ident(table),
                differing.join(", ")
            ));
        }
        tables.push(TableCheck {
            table: table.clone(),
            rows_expected: *snap_rows,
            rows_found: *new_rows,
            columns_checked,
            columns_differing: differing,
        });
    }
    (tables, problems)
}

/// The result's foreign-key violations that production did not already
/// have, under the tables' new names. A row of a rowid table is the same
/// row when its rowid is (rowids are kept), and its violation the same when
/// the parent table is. A WITHOUT ROWID table's
/// violations carry no rowid, so they are counted per (table, parent) with
/// multiplicity: every violation beyond production's count is new, and an
/// old orphan never hides a new one. Production is checked only when the
/// result has any (the check costs a lookup per row).
fn new_violations(
    plan: &Plan,
    snapshot: &Path,
    result_violations: Vec<FkViolation>,
) -> Result<Vec<FkViolation>> {
    let renamed = |t: &str| -> String {
        plan.tables
            .iter()
            .find(|tp| {
                tp.from
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(t))
            })
            .map_or(t.to_lowercase(), |tp| tp.table.to_lowercase())
    };
    not_in_snapshot(snapshot, result_violations, &renamed)
}

/// The result's violations that the snapshot did not already have, each
/// old violation (its table renamed as the result names it) excusing one
/// result violation, once. The snapshot is read only when the result has
/// any (the check costs a lookup per row).
pub(crate) fn not_in_snapshot(
    snapshot: &Path,
    result_violations: Vec<FkViolation>,
    renamed: &dyn Fn(&str) -> String,
) -> Result<Vec<FkViolation>> {
    if result_violations.is_empty() {
        return Ok(result_violations);
    }
    let mut old: Vec<ViolationKey> = check::foreign_key_violations(&open_ro(snapshot)?)?
        .iter()
        .map(|v| ViolationKey::of(v, renamed))
        .collect();
    let same = |v: &FkViolation| ViolationKey::of(v, &|t: &str| t.to_lowercase());
    Ok(result_violations
        .into_iter()
        .filter(|v| match old.iter().position(|o| *o == same(v)) {
            // Each old violation excuses one result violation, once.
            Some(i) => {
                old.swap_remove(i);
                false
            }
            None => true,
        })
        .collect())
}

/// What makes two violations the same: the child table, its row's rowid
/// and the parent table, or (WITHOUT ROWID) the child and parent tables.
#[derive(PartialEq)]
enum ViolationKey {
    Row(String, i64, String),
    Counted(String, String),
}

impl ViolationKey {
    fn of(v: &FkViolation, name: &dyn Fn(&str) -> String) -> ViolationKey {
        match v.rowid {
            Some(rowid) => ViolationKey::Row(name(&v.table), rowid, name(&v.parent)),
            None => ViolationKey::Counted(name(&v.table), name(&v.parent)),
        }
    }
}

/// Validation problems for new foreign-key violations: rows of rowid tables
/// by rowid (the first ten), rows of WITHOUT ROWID tables by count.
fn violation_problems(new: &[FkViolation], result: &[FkViolation]) -> Vec<String> {
    let mut problems: Vec<String> = new
        .iter()
        .filter_map(|v| {
            let rowid = v.rowid?;
            Some(format!(
                "foreign key: {} rowid {rowid} references a missing row of {}",
                display_ident(&v.table),
                display_ident(&v.parent)
            ))
        })
        .take(10)
        .collect();
    let mut counted: Vec<(&str, &str)> = Vec::new();
    for v in new.iter().filter(|v| v.rowid.is_none()) {
        let pair = (v.table.as_str(), v.parent.as_str());
        if counted.contains(&pair) {
            continue;
        }
        counted.push(pair);
        let count = |list: &[FkViolation]| {
            list.iter()
                .filter(|w| w.rowid.is_none() && (w.table.as_str(), w.parent.as_str()) == pair)
                .count()
        };
        let (fresh, now) = (count(new), count(result));
        problems.push(format!(
            "foreign key: {} has {fresh} new row(s) referencing a missing row of {} ({now} in the migrated database, {} in production)",
            display_ident(pair.0),
            display_ident(pair.1),
            now - fresh
        ));
    }
    problems
}

/// Differences between the result's schema and the source (should be none).
pub(crate) fn schema_differences(result: &Schema, source: &Schema) -> Vec<String> {
    diff::diff(result, source)
        .changes
        .iter()
        .map(|c| {
            format!("{} {} {}", c.kind.as_str(), c.name, c.details.join("; "))
                .trim()
                .to_string()
        })
        .collect()
}
