//! `transform`: every row of a migrated table through a closure (the slow
//! path, for what SQL cannot express), in batches, writing back only the
//! columns the closure changed. Rows are found by rowid, or by primary key
//! in a WITHOUT ROWID table (whose key columns are then read-only).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use anyhow::{Context, Result};
use rusqlite::types::Value;

use crate::pipeline::copy;
use crate::pipeline::plan;
use crate::pipeline::plan::TablePlan;
use crate::pipeline::session::{Db, Role, Run};
use crate::schema::{Schema, Table};
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
        let mut last: Option<Vec<Value>> = None;
        job.conn.execute_batch("BEGIN")?;
        loop {
            crate::interrupt::check()?;
            let batch = job.batch(last.as_deref())?;
            if batch.is_empty() {
                break;
            }
            for (id, vals) in batch {
                let out = f(job.row(&vals))
                    .with_context(|| format!("transform of {table}, {}", job.describe(&id)))?;
                job.write_back(&id, &vals, &out, &mut tally)?;
                bar.tick_ops(1, 1);
                last = Some(id);
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
/// columns a row holds and the batch queries.
struct Job {
    conn: rusqlite::Connection,
    table: String,
    /// The columns rows are found by: the primary key of a WITHOUT ROWID
    /// table; empty for the rowid.
    key: Vec<String>,
    /// The migrated table's insertable columns (written back when changed).
    own: Vec<String>,
    /// Production columns the new table dropped (read-only in the row).
    extra: Vec<String>,
    /// The first batch, and the batch after a given key.
    first: String,
    after: String,
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
        let (key, own, extra) = row_columns(t, tp);
        let select = Select {
            table,
            from: tp.from.as_deref(),
            key: &key,
            own: &own,
            extra: &extra,
        };
        Ok(Job {
            first: select.sql(false),
            after: select.sql(true),
            conn,
            table: table.to_string(),
            key,
            own,
            extra,
            total: tp.rows.max(0),
        })
    }

    /// The rows after `last` in key order (the first ones without it):
    /// (key, values).
    fn batch(&self, last: Option<&[Value]>) -> Result<Vec<(Vec<Value>, Vec<Value>)>> {
        let nkey = self.key.len().max(1);
        let n = nkey + self.own.len() + self.extra.len();
        let (sql, params) = match last {
            Some(key) => (&self.after, key),
            None => (&self.first, &[][..]),
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            let get = |range: std::ops::Range<usize>| {
                range
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            };
            Ok((get(0..nkey)?, get(nkey..n)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A row's identity, for error messages.
    fn describe(&self, id: &[Value]) -> String {
        let shown: Vec<String> = id.iter().map(show_value).collect();
        if self.key.is_empty() {
            format!("rowid {}", shown.join(""))
        } else {
            format!("key ({})", shown.join(", "))
        }
    }

    /// The WHERE clause that finds one row, its parameters numbered from
    /// `first`.
    fn row_condition(&self, first: usize) -> String {
        if self.key.is_empty() {
            return format!("rowid = ?{first}");
        }
        let terms: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} = ?{}", quote_ident(k), first + i))
            .collect();
        terms.join(" AND ")
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
    fn write_back(&self, id: &[Value], vals: &[Value], out: &Row, tally: &mut Tally) -> Result<()> {
        tally.rows += 1;
        let mut sets = Vec::new();
        let mut params = Vec::new();
        for (name, old) in self.own.iter().zip(vals) {
            match out.get(name) {
                Some(new) if new != old && self.key.contains(name) => {
                    anyhow::bail!(
                        "transform of {}, {}: {name} is part of the primary key of a WITHOUT ROWID table, \
                         by which rows are found; it cannot be changed by transform (use sql)",
                        self.table,
                        self.describe(id)
                    );
                }
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
        let condition = self.row_condition(params.len() + 1);
        params.extend(id.iter().cloned());
        self.conn.execute(
            &format!(
                "UPDATE main.{} SET {} WHERE {condition}",
                quote_ident(&self.table),
                sets.join(", "),
            ),
            rusqlite::params_from_iter(params),
        )?;
        Ok(())
    }
}

/// The columns a transformed row is made of: (the key rows are found by,
/// empty for the rowid; the migrated table's insertable columns; the
/// production columns it dropped, joined by rowid when the rowid was kept).
fn row_columns(t: &Table, tp: &TablePlan) -> (Vec<String>, Vec<String>, Vec<String>) {
    let key = if t.without_rowid {
        t.primary_key.clone()
    } else {
        Vec::new()
    };
    let own = t
        .columns
        .iter()
        .filter(|c| c.is_insertable())
        .map(|c| c.name.clone())
        .collect();
    let extra = if tp.copy_rowid || plan::has_rowid_alias(t) {
        tp.dropped.iter().map(|d| d.name.clone()).collect()
    } else {
        Vec::new()
    };
    (key, own, extra)
}

/// A key value as SQL would write it (`42`, `'ann'`).
fn show_value(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        other => format!("{other:?}"),
    }
}

/// What the batch queries read: the migrated rows in key order (rowid, or
/// a WITHOUT ROWID table's primary key), with the dropped production
/// columns joined from the snapshot by rowid.
struct Select<'a> {
    table: &'a str,
    from: Option<&'a str>,
    key: &'a [String],
    own: &'a [String],
    extra: &'a [String],
}

impl Select<'_> {
    /// The batch query; `after`: only the rows whose key is greater than
    /// the parameters.
    fn sql(&self, after: bool) -> String {
        let q = quote_ident;
        let join = match self.from {
            Some(from) if !self.extra.is_empty() => format!(
                " LEFT JOIN {}.{} AS o ON o.rowid = m.rowid",
                q(copy::SNAPSHOT_SCHEMA),
                q(from)
            ),
            _ => String::new(),
        };
        let key: Vec<String> = if self.key.is_empty() {
            vec!["m.rowid".into()]
        } else {
            self.key.iter().map(|k| format!("m.{}", q(k))).collect()
        };
        let mut select = key.clone();
        select.extend(self.own.iter().map(|c| format!("m.{}", q(c))));
        select.extend(self.extra.iter().map(|c| format!("o.{}", q(c))));
        let params: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
        let filter = if after {
            format!(" WHERE ({}) > ({})", key.join(", "), params.join(", "))
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM main.{} AS m{join}{filter} ORDER BY {} LIMIT 10000",
            select.join(", "),
            q(self.table),
            key.join(", ")
        )
    }
}
