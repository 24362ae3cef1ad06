//! Validation of a migrated database against the snapshot it came from:
//! row counts and per-column checksums for every kept value; integrity
//! (what `PRAGMA integrity_check` proves, in linear time: `quick_check` for
//! the structure, NOT NULL and CHECK, plus every index verified against its
//! table by [`crate::indexcheck`]); no new `foreign_key_check` violations;
//! and the resulting schema equal to the source. The snapshot, the result
//! and the result's structure are scanned on three threads, so the work
//! spreads over the cores.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::check::{self, FkViolation};
use crate::checksum;
use crate::diff;
use crate::indexcheck;
use crate::plan::{ColumnSource, Fill, Plan};
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
    /// ([`crate::indexcheck`]); empty when the file is sound.
    pub integrity: Vec<String>,
    /// Indexes verified entry by entry against their tables.
    pub indexes_checked: usize,
    pub new_foreign_key_violations: Vec<FkViolation>,
    /// Differences between the result's schema and the source (should be none).
    pub schema_differences: Vec<String>,
    pub problems: Vec<String>,
    pub seconds: f64,
}

impl Report {
    /// A readable summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let values: usize = self.tables.iter().map(|t| t.columns_checked.len()).sum();
        let rows: i64 = self.tables.iter().map(|t| t.rows_found).sum();
        out.push_str(&format!(
            "Validation {}: {} table(s), {rows} row(s), {values} column checksum(s), integrity {} (quick_check + {} index(es) verified), foreign keys {}, schema {} ({:.1}s)\n",
            if self.ok { "passed" } else { "FAILED" },
            self.tables.len(),
            if self.integrity.is_empty() { "ok" } else { "FAILED" },
            self.indexes_checked,
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

/// A table's row count and column checksums.
type TableSums = (i64, Vec<u64>);

fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    checksum::register(&conn)?;
    Ok(conn)
}

/// Validates `migrated` against `snapshot` following `plan`.
/// `transformed` lists (table, column) pairs a recipe rewrote on purpose:
/// their values are not compared (row counts still are).
pub fn validate(
    plan: &Plan,
    source: &Schema,
    snapshot: &Path,
    migrated: &Path,
    transformed: &[(String, String)],
) -> Result<Report> {
    let rewritten = |t: &str, c: &str| {
        transformed
            .iter()
            .any(|(tt, cc)| tt.eq_ignore_ascii_case(t) && cc.eq_ignore_ascii_case(c))
    };
    let start = Instant::now();
    // What to compare, per table: (from, key on the snapshot, values on the
    // snapshot) and (table, key, values) on the result.
    let mut jobs_snap = Vec::new();
    let mut jobs_new = Vec::new();
    let mut checked = Vec::new();
    for tp in &plan.tables {
        let Some(from) = &tp.from else { continue };
        if tp.fill == Fill::Empty {
            // A contentless full-text index that had to start empty: the
            // review said so and the loss was approved.
            continue;
        }
        let mut snap_vals = Vec::new();
        let mut new_vals = Vec::new();
        let mut names = Vec::new();
        for c in &tp.columns {
            if rewritten(&tp.table, &c.name) {
                continue;
            }
            if let (ColumnSource::Copy { .. }, Some(sel)) = (&c.source, &c.select) {
                snap_vals.push(sel.clone());
                new_vals.push(quote_ident(&c.name));
                names.push(c.name.clone());
            }
        }
        // Converted columns are compared with the values the plan computed
        // on the snapshot (SQLite's own conversion of each value).
        let mut conv = Vec::new();
        for c in &tp.columns {
            if let (Some(cv), false) = (&c.conversion, rewritten(&tp.table, &c.name)) {
                new_vals.push(quote_ident(&c.name));
                conv.push((c.name.clone(), cv.checksum));
            }
        }
        let keyed = !tp.key.is_empty();
        if !keyed {
            snap_vals.clear();
            new_vals.clear();
            names.clear();
            conv.clear();
        }
        jobs_snap.push((
            from.clone(),
            if keyed {
                tp.source_key.clone()
            } else {
                Vec::new()
            },
            snap_vals,
        ));
        jobs_new.push((
            tp.table.clone(),
            if keyed { tp.key.clone() } else { Vec::new() },
            new_vals,
        ));
        checked.push((tp, names, conv));
    }

    // Three scans at once: the snapshot, the result, and the result's
    // structure (quick_check plus every index against its table).
    let scan = |path: PathBuf, jobs: Vec<(String, Vec<String>, Vec<String>)>| {
        thread::spawn(move || -> Result<Vec<TableSums>> {
            let conn = open_ro(&path)?;
            jobs.into_iter()
                .map(|(table, key, vals)| {
                    checksum::table_sums(
                        &conn,
                        &format!("main.{}", quote_ident(&table)),
                        &key,
                        &vals,
                    )
                })
                .collect()
        })
    };
    let snap_thread = scan(snapshot.to_path_buf(), jobs_snap);
    let new_thread = scan(migrated.to_path_buf(), jobs_new);
    let structure_path = migrated.to_path_buf();
    let structure_thread = thread::spawn(move || -> Result<(Vec<String>, usize)> {
        let conn = open_ro(&structure_path)?;
        let mut problems = check::health(&conn, true)?.integrity;
        let schema = Schema::read(&conn, "main")?;
        problems.extend(indexcheck::verify(&conn, &schema)?);
        Ok((problems, schema.indexes.len()))
    });

    let result_conn = open_ro(migrated)?;
    let result_schema = Schema::read(&result_conn, "main")?;
    let result_violations = check::foreign_key_violations(&result_conn)?;
    drop(result_conn);

    let join = |h: thread::JoinHandle<Result<Vec<TableSums>>>| {
        h.join()
            .map_err(|_| anyhow!("a validation thread panicked"))?
    };
    let snap = join(snap_thread).context("scanning the snapshot")?;
    let new = join(new_thread).context("scanning the migrated database")?;
    let (integrity, indexes_checked) = structure_thread
        .join()
        .map_err(|_| anyhow!("the integrity thread panicked"))?
        .context("checking integrity")?;

    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for (i, (tp, names, conv)) in checked.iter().enumerate() {
        let (snap_rows, snap_sums) = &snap[i];
        let (new_rows, new_sums) = &new[i];
        let mut differing = Vec::new();
        for (j, name) in names.iter().enumerate() {
            if snap_sums.get(j) != new_sums.get(j) {
                differing.push(name.clone());
            }
        }
        for (j, (name, expected)) in conv.iter().enumerate() {
            if new_sums.get(names.len() + j) != Some(expected) {
                differing.push(name.clone());
            }
        }
        if snap_rows != new_rows {
            problems.push(format!(
                "table {}: {snap_rows} row(s) in the snapshot, {new_rows} in the migrated database",
                display_ident(&tp.table)
            ));
        }
        if !differing.is_empty() {
            problems.push(format!(
                "table {}: values differ from the snapshot in column(s) {}",
                display_ident(&tp.table),
                differing.join(", ")
            ));
        }
        let mut columns_checked = names.clone();
        columns_checked.extend(conv.iter().map(|(n, _)| n.clone()));
        tables.push(TableCheck {
            table: tp.table.clone(),
            rows_expected: *snap_rows,
            rows_found: *new_rows,
            columns_checked,
            columns_differing: differing,
        });
    }
    for m in &integrity {
        problems.push(format!("integrity: {m}"));
    }
    // A violation is new unless the same row violated in production.
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
    // Violations that production already had are not new; look only when
    // the result has any (the check costs a lookup per row).
    let old: Vec<(String, Option<i64>)> = if result_violations.is_empty() {
        Vec::new()
    } else {
        check::foreign_key_violations(&open_ro(snapshot)?)?
            .iter()
            .map(|v| (renamed(&v.table), v.rowid))
            .collect()
    };
    let new_violations: Vec<FkViolation> = result_violations
        .into_iter()
        .filter(|v| !old.contains(&(v.table.to_lowercase(), v.rowid)))
        .collect();
    for v in new_violations.iter().take(10) {
        problems.push(format!(
            "foreign key: {} rowid {} references a missing row of {}",
            display_ident(&v.table),
            v.rowid.map_or("?".into(), |r| r.to_string()),
            display_ident(&v.parent)
        ));
    }
    let schema_differences: Vec<String> = diff::diff(&result_schema, source)
        .changes
        .iter()
        .map(|c| {
            format!("{} {} {}", c.kind.as_str(), c.name, c.details.join("; "))
                .trim()
                .to_string()
        })
        .collect();
    for d in &schema_differences {
        problems.push(format!("schema differs from the source: {d}"));
    }
    Ok(Report {
        ok: problems.is_empty(),
        tables,
        integrity,
        indexes_checked,
        new_foreign_key_violations: new_violations,
        schema_differences,
        problems,
        seconds: start.elapsed().as_secs_f64(),
    })
}
