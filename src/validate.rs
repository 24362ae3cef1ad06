//! Validation of a migrated database against the snapshot it came from:
//! row counts and per-column checksums for every kept value, SQLite's
//! `integrity_check`, no new `foreign_key_check` violations, and the
//! resulting schema equal to the source. The snapshot and the result are
//! scanned on separate threads (and `integrity_check` on a third), so the
//! work spreads over the cores.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::check::{self, FkViolation};
use crate::checksum;
use crate::diff;
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
    pub integrity: Vec<String>,
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
            "Validation {}: {} table(s), {rows} row(s), {values} column checksum(s), integrity_check {}, foreign keys {}, schema {} ({:.1}s)\n",
            if self.ok { "passed" } else { "FAILED" },
            self.tables.len(),
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

struct Side {
    counts: Vec<(i64, Vec<u64>)>,
    violations: Vec<FkViolation>,
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
        let keyed = !tp.key.is_empty();
        jobs_snap.push((
            from.clone(),
            if keyed {
                tp.source_key.clone()
            } else {
                Vec::new()
            },
            if keyed { snap_vals } else { Vec::new() },
        ));
        jobs_new.push((
            tp.table.clone(),
            if keyed { tp.key.clone() } else { Vec::new() },
            if keyed { new_vals.clone() } else { Vec::new() },
        ));
        checked.push((tp, if keyed { names } else { Vec::new() }));
    }
    // Converted and computed columns: compare with the values the plan saw.
    let mut conv_jobs = Vec::new();
    for tp in &plan.tables {
        for c in &tp.columns {
            if let (Some(conv), false) = (&c.conversion, rewritten(&tp.table, &c.name)) {
                conv_jobs.push((
                    tp.table.clone(),
                    tp.key.clone(),
                    quote_ident(&c.name),
                    conv.checksum,
                    c.name.clone(),
                ));
            }
        }
    }

    let snap_path = snapshot.to_path_buf();
    let new_path = migrated.to_path_buf();
    let scan = |path: PathBuf, jobs: Vec<(String, Vec<String>, Vec<String>)>| {
        thread::spawn(move || -> Result<Side> {
            let conn = open_ro(&path)?;
            let mut counts = Vec::new();
            for (table, key, vals) in jobs {
                counts.push(checksum::table_sums(
                    &conn,
                    &format!("main.{}", quote_ident(&table)),
                    &key,
                    &vals,
                )?);
            }
            Ok(Side {
                counts,
                violations: check::foreign_key_violations(&conn)?,
            })
        })
    };
    let snap_thread = scan(snap_path, jobs_snap);
    let new_thread = scan(new_path.clone(), jobs_new);
    let integrity_path = new_path.clone();
    let integrity_thread = thread::spawn(move || -> Result<Vec<String>> {
        let conn = open_ro(&integrity_path)?;
        Ok(check::health(&conn, false)?.integrity)
    });

    let result_conn = open_ro(migrated)?;
    let mut conv_results = Vec::new();
    for (table, key, col, expected, name) in &conv_jobs {
        let (_, sums) = checksum::table_sums(
            &result_conn,
            &format!("main.{}", quote_ident(table)),
            key,
            std::slice::from_ref(col),
        )?;
        conv_results.push((
            table.clone(),
            name.clone(),
            sums.first().copied() == Some(*expected),
        ));
    }
    let result_schema = Schema::read(&result_conn, "main")?;
    drop(result_conn);

    let join = |h: thread::JoinHandle<Result<Side>>| {
        h.join()
            .map_err(|_| anyhow!("a validation thread panicked"))?
    };
    let snap = join(snap_thread).context("scanning the snapshot")?;
    let new = join(new_thread).context("scanning the migrated database")?;
    let integrity = integrity_thread
        .join()
        .map_err(|_| anyhow!("the integrity thread panicked"))?
        .context("checking integrity")?;

    let mut problems = Vec::new();
    let mut tables = Vec::new();
    for (i, (tp, names)) in checked.iter().enumerate() {
        let (snap_rows, snap_sums) = &snap.counts[i];
        let (new_rows, new_sums) = &new.counts[i];
        let mut differing = Vec::new();
        for (j, name) in names.iter().enumerate() {
            if snap_sums.get(j) != new_sums.get(j) {
                differing.push(name.clone());
            }
        }
        for (table, name, ok) in &conv_results {
            if table == &tp.table && !ok {
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
        columns_checked.extend(
            conv_results
                .iter()
                .filter(|(t, _, _)| t == &tp.table)
                .map(|(_, n, _)| n.clone()),
        );
        tables.push(TableCheck {
            table: tp.table.clone(),
            rows_expected: *snap_rows,
            rows_found: *new_rows,
            columns_checked,
            columns_differing: differing,
        });
    }
    for m in &integrity {
        problems.push(format!("integrity_check: {m}"));
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
    let old: Vec<(String, Option<i64>)> = snap
        .violations
        .iter()
        .map(|v| (renamed(&v.table), v.rowid))
        .collect();
    let new_violations: Vec<FkViolation> = new
        .violations
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
        new_foreign_key_violations: new_violations,
        schema_differences,
        problems,
        seconds: start.elapsed().as_secs_f64(),
    })
}
