//! `transform`: every row of a migrated table through a closure (the slow
//! path, for what SQL cannot express), in batches, writing back only the
//! columns the closure changed.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use rusqlite::types::Value;

use crate::pipeline::copy;
use crate::pipeline::plan;
use crate::pipeline::session::{Db, Role, Run};
use crate::schema::Schema;

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
        shared: &std::rc::Rc<std::cell::RefCell<Run>>,
        table: &str,
        mut f: impl FnMut(Row) -> Result<Row>,
    ) -> Result<(i64, i64)> {
        use rusqlite::types::Value;
        let (plan, conn) = {
            let me = shared.borrow();
            let migrated = me
                .migrated
                .clone()
                .context("transform needs the migrated database: call it after copy")?;
            let plan = me.plan.clone().context("transform needs a plan")?;
            let conn = me.connect(&Db {
                path: migrated,
                role: Role::Migrated,
            })?;
            (plan, conn)
        };
        let tp = plan
            .table(table)
            .with_context(|| format!("no table {table} in the plan"))?
            .clone();
        let q = crate::sqltext::quote_ident;
        let target = Schema::read(&conn, "main")?;
        let t = target
            .table(table)
            .with_context(|| format!("no table {table} in the migrated database"))?
            .clone();
        let own: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.is_insertable())
            .map(|c| c.name.clone())
            .collect();
        let extra: Vec<String> = if tp.copy_rowid || plan::has_rowid_alias(&t) {
            tp.dropped.iter().map(|d| d.name.clone()).collect()
        } else {
            Vec::new()
        };
        let join = match (&tp.from, extra.is_empty()) {
            (Some(from), false) => format!(
                " LEFT JOIN {}.{} AS o ON o.rowid = m.rowid",
                q(copy::SNAPSHOT_SCHEMA),
                q(from)
            ),
            _ => String::new(),
        };
        let mut select: Vec<String> = vec!["m.rowid".into()];
        select.extend(own.iter().map(|c| format!("m.{}", q(c))));
        select.extend(extra.iter().map(|c| format!("o.{}", q(c))));
        let sql = format!(
            "SELECT {} FROM main.{} AS m{join} WHERE m.rowid > ?1 ORDER BY m.rowid LIMIT 10000",
            select.join(", "),
            q(table)
        );
        let total = tp.rows.max(0);
        let mut bar = crate::progress::rows_bar(crate::progress::enabled(), table, total);
        let (mut seen, mut changed_rows) = (0i64, 0i64);
        let mut changed_cols: Vec<String> = Vec::new();
        let mut last = i64::MIN;
        conn.execute_batch("BEGIN")?;
        loop {
            let batch: Vec<(i64, Vec<Value>)> = {
                let mut stmt = conn.prepare_cached(&sql)?;
                let n = select.len();
                stmt.query_map([last], |r| {
                    let id: i64 = r.get(0)?;
                    let vals = (1..n)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((id, vals))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            if batch.is_empty() {
                break;
            }
            for (id, vals) in batch {
                last = id;
                seen += 1;
                let mut row = Row::new();
                for (name, v) in own.iter().chain(&extra).zip(&vals) {
                    row.insert(name.clone(), v.clone());
                }
                let out = f(row).with_context(|| format!("transform of {table}, rowid {id}"))?;
                let mut sets = Vec::new();
                let mut params = Vec::new();
                for (i, name) in own.iter().enumerate() {
                    let Some(new) = out.get(name) else {
                        continue;
                    };
                    if *new != vals[i] {
                        sets.push(format!("{} = ?{}", q(name), params.len() + 1));
                        params.push(new.clone());
                        if !changed_cols.contains(name) {
                            changed_cols.push(name.clone());
                        }
                    }
                }
                if !sets.is_empty() {
                    changed_rows += 1;
                    params.push(Value::Integer(id));
                    conn.execute(
                        &format!(
                            "UPDATE main.{} SET {} WHERE rowid = ?{}",
                            q(table),
                            sets.join(", "),
                            params.len()
                        ),
                        rusqlite::params_from_iter(params),
                    )?;
                }
                bar.tick_ops(1, 1);
            }
        }
        conn.execute_batch("COMMIT")?;
        bar.finish();
        let mut me = shared.borrow_mut();
        for c in &changed_cols {
            me.transformed.push((table.to_string(), c.clone()));
        }
        me.log.line(&format!(
            "  transform {table}: {seen} row(s), {changed_rows} changed (column(s): {})",
            if changed_cols.is_empty() {
                "none".to_string()
            } else {
                changed_cols.join(", ")
            }
        ));
        Ok((seen, changed_rows))
    }
}
