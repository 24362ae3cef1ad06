//! The primitives: one Rhai function per step of the pipeline, each a thin
//! call into `crate::pipeline::session::Run` whose errors keep their exit
//! code.

use std::path::Path;
use std::rc::Rc;

use anyhow::Result;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};
use rusqlite::types::Value;

use super::engine::{Shared, Sources, fail, render_error};
use super::values::{PlanValue, rhai_value, sql_value};
use crate::pipeline::session::{Db, Run, Validated};
use crate::pipeline::validate::Report;
use crate::schema::Schema;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// `sql` on a handle: a write that the handle's role refuses names the rule.
fn exec_on(run: &Run, db: &Db, sql: &str, params: &Array) -> Result<i64> {
    exec_sql(&run.connect(db, "sql")?, sql, params).map_err(|e| {
        let read_only = e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::ReadOnly);
        if read_only {
            crate::error::input(format!(
                "sql: {}: attempt to write a readonly database: {}",
                db.path.display(),
                run.read_only_reason(db)
            ))
        } else {
            e
        }
    })
}

/// Runs one statement with bound parameters; returns the rows changed.
fn exec_sql(conn: &rusqlite::Connection, sql: &str, params: &Array) -> Result<i64> {
    let values: Vec<Value> = params.iter().map(sql_value).collect();
    if values.is_empty() {
        conn.execute_batch(sql)?;
        return Ok(i64::try_from(conn.changes()).unwrap_or(0));
    }
    Ok(i64::try_from(conn.execute(sql, rusqlite::params_from_iter(values))?).unwrap_or(0))
}

/// Runs a query; every row is a map from column name to value.
fn query_sql(conn: &rusqlite::Connection, sql: &str, params: &Array) -> Result<Array> {
    let values: Vec<Value> = params.iter().map(sql_value).collect();
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(n.as_str().into(), rhai_value(r.get(i)?));
        }
        Ok(Dynamic::from_map(m))
    })?;
    Ok(rows.collect::<rusqlite::Result<Array>>()?)
}

/// Registers every primitive, bound to one run.
pub fn register_primitives(engine: &mut Engine, run: &Shared<Run>) {
    macro_rules! prim {
        ($name:expr, |$r:ident $(, $arg:ident : $ty:ty)*| $body:expr) => {{
            let shared = Rc::clone(run);
            engine.register_fn($name, move |$($arg: $ty),*| -> RhaiResult<_> {
                let $r = &shared;
                #[allow(clippy::redundant_closure_call)]
                let result: Result<_> = (|| $body)();
                result.map_err(|e| fail(&shared, &e))
            });
        }};
    }

    prim!("step", |r, name: &str| r.borrow_mut().step(name));
    prim!("production", |r| Ok(r.borrow().production()));
    prim!("source", |r| r.borrow().source_schema());
    prim!("open", |r, path: &str| r
        .borrow()
        .open_file(Path::new(path)));
    prim!("backup", |r| Ok(r
        .borrow_mut()
        .backup()?
        .map_or(String::new(), |p| p.display().to_string())));
    prim!("snapshot", |r| r.borrow_mut().snapshot());
    prim!("schema", |r, db: Db| r.borrow_mut().schema_of(&db));
    prim!("schema", |_run, path: &str| Schema::load(Path::new(path)));
    prim!("diff", |_run, a: Schema, b: Schema| Ok(crate::diff::diff(
        &a, &b
    )));
    prim!("plan", |r, snapshot: Db, source: Schema| {
        let (plan, diff) = r.borrow_mut().plan(&snapshot, &source)?;
        Ok(PlanValue {
            plan,
            diff,
            source,
            snapshot,
        })
    });
    prim!("review", |r, p: PlanValue| Ok(r
        .borrow()
        .review(&p.plan, &p.diff)));
    prim!("approve", |r, p: PlanValue| r.borrow_mut().approve(&p.plan));
    prim!("confirm", |r, question: &str| r.borrow().confirm(question));
    prim!("copy", |r, p: PlanValue| r.borrow_mut().copy(
        &p.plan,
        &p.snapshot,
        &p.source
    ));
    prim!("validate", |r, p: PlanValue, db: Db| r
        .borrow_mut()
        .validate(&p.plan, &p.snapshot, &db, &p.source));
    prim!("require", |r, report: Report| r
        .borrow_mut()
        .require(&report));
    prim!("confirm_deploy", |r| r.borrow_mut().confirm_deploy());
    prim!("deploy", |r, v: Validated| r.borrow_mut().deploy(&v));
    prim!("deploy", |_run, db: Db| {
        Err::<(), _>(crate::error::input(format!(
            "deploy takes only the validated database that `require(report)` returns, not the {} database {}",
            db.role.name(),
            db.path.display()
        )))
    });
    prim!("restart", |r| r.borrow_mut().restart());
    prim!("sql", |r, db: Db, sql: &str| exec_on(
        &r.borrow(),
        &db,
        sql,
        &Array::new()
    ));
    prim!("sql", |r, db: Db, sql: &str, params: Array| exec_on(
        &r.borrow(),
        &db,
        sql,
        &params
    ));
    prim!("query", |r, db: Db, sql: &str| query_sql(
        &r.borrow().connect(&db, "query")?,
        sql,
        &Array::new()
    ));
    prim!("query", |r, db: Db, sql: &str, params: Array| query_sql(
        &r.borrow().connect(&db, "query")?,
        sql,
        &params
    ));
    prim!("dry_run", |r| Ok(r.borrow().dry_run()));
    prim!("finish", |r, outcome: &str| {
        r.borrow_mut().finish(outcome);
        Ok(())
    });

    let shared = Rc::clone(run);
    engine.register_fn(
        "transform",
        move |ctx: rhai::NativeCallContext, table: &str, f: rhai::FnPtr| -> RhaiResult<i64> {
            let result = Run::transform(&shared, table, |row| {
                let map: Map = row
                    .into_iter()
                    .map(|(k, v)| (k.into(), rhai_value(v)))
                    .collect();
                let out: Dynamic = f.call_within_context(&ctx, (map,)).map_err(|e| {
                    anyhow::anyhow!("{}", render_error(&e, &Sources::default(), "transform"))
                })?;
                let out = out.try_cast::<Map>().ok_or_else(|| {
                    anyhow::anyhow!("the transform closure must return the row (a map)")
                })?;
                Ok(out
                    .iter()
                    .map(|(k, v)| (k.to_string(), sql_value(v)))
                    .collect())
            });
            result.map(|(rows, _)| rows).map_err(|e| fail(&shared, &e))
        },
    );

    super::mappings::register(engine, run);
    prim!("quote_ident", |_run, name: &str| Ok(
        crate::sqltext::quote_ident(name)
    ));
}
