//! `transform`: every row of a migrated table through a closure (the slow
//! path, for what SQL cannot express), in batches, writing back only the
//! columns the closure changed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use anyhow::{Context, Result};
use rusqlite::types::Value;

use crate::pipeline::copy;
use crate::pipeline::plan;
use crate::pipeline::session::{Db, Role, Run};
use crate::schema::Schema;
use crate::sqltext::quote_ident;

/// A row as a `transform` closure sees and returns it: column → value.
pub type Row = BTreeMap<String, Value>;

impl Run {
    /// Streams every row of a migrated table through `f` in batches and
    /// writes back the columns it changed. The row holds the migrated
    /// columns plus, read-only, the production columns the new table no
    /// longer has. Returns (rows, rows changed).
    ///
    /// The run is not borrowed while `f` runs, so the closure may call
    /// primitives (e.g. `print`).
    pub fn transform(
        shared: &Rc<RefCell<Run>>,
        table: &str,
        mut f: impl FnMut(Row) -> Result<Row>,
    ) -> Result<(i64, i64)> {
        let job = Job::prepare(&shared.borrow(), table)?;
        let mut bar = crate::progress::rows_bar(crate::progress::enabled(), table, job.total);
        let mut tally = Tally::default();
        let mut last = i64::MIN;
        job.conn.execute_batch("BEGIN")?;
        loop {
            crate::interrupt::check()?;
            let batch = job.batch(last)?;
            if batch.is_empty() {
                break;
            }
            for (id, vals) in batch {
                last = id;
                let out = f(job.row(&vals))
                    .with_context(|| format!("transform of {table}, rowid {id}"))?;
                job.write_back(id, &vals, &out, &mut tally)?;
                bar.tick_ops(1, 1);
            }
        }
        job.conn.execute_batch("COMMIT")?;
        bar.finish();
        let mut me = shared.borrow_mut();
        for c in &tally.columns {
            me.transformed.push((table.to_string(), c.clone()));
        }
        me.log.line(&format!(
            "  transform {table}: {} row(s), {} changed (column(s): {})",
            tally.rows,
            tally.changed,
            if tally.columns.is_empty() {
                "none".to_string()
            } else {
                tally.columns.join(", ")
            }
        ));
        Ok((tally.rows, tally.changed))
    }
}

/// Rows seen, rows changed, and the columns that changed.
#[derive(Default)]
struct Tally {
    rows: i64,
    changed: i64,
    columns: Vec<String>,
}

/// One table's transform: the migrated database (snapshot attached), the
/// columns a row holds and the batch query.
struct Job {
    conn: rusqlite::Connection,
    table: String,
    /// The migrated table's insertable columns (written back when changed).
    own: Vec<String>,
    /// Production columns the new table dropped (read-only in the row).
    extra: Vec<String>,
    select: String,
    total: i64,
}

impl Job {
    fn prepare(run: &Run, table: &str) -> Result<Job> {
        let migrated = run
            .migrated
            .clone()
            .context("transform needs the migrated database: call it after copy")?;
        let plan = run.plan.as_ref().context("transform needs a plan")?;
        let conn = run.connect(
            &Db {
                path: migrated,
                role: Role::Migrated,
            },
            "transform",
        )?;
        let tp = plan
            .table(table)
            .with_context(|| format!("no table {table} in the plan"))?;
        let target = Schema::read(&conn, "main")?;
        let t = target
            .table(table)
            .with_context(|| format!("no table {table} in the migrated database"))?;
        let own: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.is_insertable())
            .map(|c| c.name.clone())
            .collect();
        let extra: Vec<String> = if tp.copy_rowid || plan::has_rowid_alias(t) {
            tp.dropped.iter().map(|d| d.name.clone()).collect()
        } else {
            Vec::new()
        };
        let select = select_sql(table, tp.from.as_deref(), &own, &extra);
        Ok(Job {
            conn,
            table: table.to_string(),
            own,
            extra,
            select,
            total: tp.rows.max(0),
        })
    }

    /// The next rows after `last` (rowid order): (rowid, values).
    fn batch(&self, last: i64) -> Result<Vec<(i64, Vec<Value>)>> {
        let n = 1 + self.own.len() + self.extra.len();
        let mut stmt = self.conn.prepare_cached(&self.select)?;
        let rows = stmt.query_map([last], |r| {
            let vals = (1..n)
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((r.get(0)?, vals))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn row(&self, vals: &[Value]) -> Row {
        self.own
            .iter()
            .chain(&self.extra)
            .cloned()
            .zip(vals.iter().cloned())
            .collect()
    }

    /// Writes the migrated columns that `out` changed back to row `id`.
    fn write_back(&self, id: i64, vals: &[Value], out: &Row, tally: &mut Tally) -> Result<()> {
        tally.rows += 1;
        let mut sets = Vec::new();
        let mut params = Vec::new();
        for (name, old) in self.own.iter().zip(vals) {
            match out.get(name) {
                Some(new) if new != old => {
                    sets.push(format!("{} = ?{}", quote_ident(name), params.len() + 1));
                    params.push(new.clone());
                    if !tally.columns.contains(name) {
                        tally.columns.push(name.clone());
                    }
                }
                _ => {}
            }
        }
        if sets.is_empty() {
            return Ok(());
        }
        tally.changed += 1;
        params.push(Value::Integer(id));
        self.conn.execute(
            &format!(
                "UPDATE main.{} SET {} WHERE rowid = ?{}",
                quote_ident(&self.table),
                sets.join(", "),
                params.len()
            ),
            rusqlite::params_from_iter(params),
        )?;
        Ok(())
    }
}

/// The batch query: the migrated row by rowid, with the dropped production
/// columns joined from the snapshot.
fn select_sql(table: &str, from: Option<&str>, own: &[String], extra: &[String]) -> String {
    let q = quote_ident;
    let join = match from {
        Some(from) if !extra.is_empty() => format!(
            " LEFT JOIN {}.{} AS o ON o.rowid = m.rowid",
            q(copy::SNAPSHOT_SCHEMA),
            q(from)
        ),
        _ => String::new(),
    };
    let mut select: Vec<String> = vec!["m.rowid".into()];
    select.extend(own.iter().map(|c| format!("m.{}", q(c))));
    select.extend(extra.iter().map(|c| format!("o.{}", q(c))));
    format!(
        "SELECT {} FROM main.{} AS m{join} WHERE m.rowid > ?1 ORDER BY m.rowid LIMIT 10000",
        select.join(", "),
        q(table)
    )
}
