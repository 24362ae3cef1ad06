//! The values recipes hold, registered with their getters and `to_string`
//! (schemas, tables, columns, diffs, plans, reports, database handles, the
//! validated database), and the conversions between SQL and Rhai values.

use rhai::{Array, Dynamic, Engine, Map};
use rusqlite::types::Value;

use crate::diff::SchemaDiff;
use crate::pipeline::plan::Plan;
use crate::pipeline::session::{Db, Validated};
use crate::pipeline::validate::Report;
use crate::schema::{Column, Schema, Table};

/// A plan as recipes hold it: the plan, the diff it came from and the source
/// schema it targets.
#[derive(Debug, Clone)]
pub struct PlanValue {
    pub plan: Plan,
    pub diff: SchemaDiff,
    pub source: Schema,
    pub snapshot: Db,
}

fn to_array<T: Clone + 'static>(items: &[T]) -> Array {
    items.iter().cloned().map(Dynamic::from).collect()
}

fn strings(items: &[String]) -> Array {
    items.iter().map(|s| Dynamic::from(s.clone())).collect()
}

/// Registers every value type recipes see.
pub fn register_types(engine: &mut Engine) {
    engine
        .register_type_with_name::<Schema>("Schema")
        .register_get("tables", |s: &mut Schema| to_array(&s.tables))
        .register_get("views", |s: &mut Schema| {
            strings(&s.views.iter().map(|v| v.name.clone()).collect::<Vec<_>>())
        })
        .register_get("triggers", |s: &mut Schema| {
            strings(
                &s.triggers
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_get("indexes", |s: &mut Schema| {
            strings(
                &s.indexes
                    .iter()
                    .filter(|i| i.is_explicit())
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_get("user_version", |s: &mut Schema| s.user_version)
        .register_get("hash", |s: &mut Schema| s.hash())
        .register_fn("table", |s: &mut Schema, name: &str| {
            s.table(name).cloned().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("to_sql", |s: &mut Schema| s.to_sql())
        .register_fn("to_string", |s: &mut Schema| {
            format!(
                "schema: {} table(s), {} index(es), {} view(s), {} trigger(s), user_version {}",
                s.tables.len(),
                s.indexes.iter().filter(|i| i.is_explicit()).count(),
                s.views.len(),
                s.triggers.len(),
                s.user_version
            )
        });
    engine
        .register_type_with_name::<Table>("Table")
        .register_get("name", |t: &mut Table| t.name.clone())
        .register_get("columns", |t: &mut Table| to_array(&t.columns))
        .register_get("sql", |t: &mut Table| t.sql.clone())
        .register_get("primary_key", |t: &mut Table| strings(&t.primary_key))
        .register_get("strict", |t: &mut Table| t.strict)
        .register_get("without_rowid", |t: &mut Table| t.without_rowid)
        .register_fn("column", |t: &mut Table, name: &str| {
            t.column_named(name)
                .cloned()
                .map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("to_string", |t: &mut Table| crate::diff::pretty(&t.sql));
    engine
        .register_type_with_name::<Column>("Column")
        .register_get("name", |c: &mut Column| c.name.clone())
        .register_get("type", |c: &mut Column| c.decl_type.clone())
        .register_get("affinity", |c: &mut Column| c.affinity.clone())
        .register_get("not_null", |c: &mut Column| c.not_null)
        .register_get("default", |c: &mut Column| {
            c.default.clone().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_get("pk", |c: &mut Column| i64::from(c.pk))
        .register_get("collation", |c: &mut Column| c.collation.clone())
        .register_fn("to_string", |c: &mut Column| {
            format!("{} {}", c.name, c.decl_type).trim().to_string()
        });
    engine
        .register_type_with_name::<SchemaDiff>("Diff")
        .register_fn("is_empty", |d: &mut SchemaDiff| d.is_empty())
        .register_get("len", |d: &mut SchemaDiff| {
            i64::try_from(d.changes.len()).unwrap_or(i64::MAX)
        })
        .register_get("changes", |d: &mut SchemaDiff| {
            d.changes
                .iter()
                .map(|c| {
                    let mut m = Map::new();
                    m.insert("kind".into(), c.kind.as_str().into());
                    m.insert("name".into(), c.name.clone().into());
                    m.insert(
                        "table".into(),
                        c.table.clone().map_or(Dynamic::UNIT, Dynamic::from),
                    );
                    m.insert("details".into(), strings(&c.details).into());
                    Dynamic::from_map(m)
                })
                .collect::<Array>()
        })
        .register_fn("to_string", |d: &mut SchemaDiff| {
            crate::diff::render_text(d, crate::style::Style::PLAIN)
        });
    engine
        .register_type_with_name::<PlanValue>("Plan")
        .register_get("diff", |p: &mut PlanValue| p.diff.clone())
        .register_get("refusals", |p: &mut PlanValue| strings(&p.plan.refusals))
        .register_get("data_loss", |p: &mut PlanValue| strings(&p.plan.data_loss))
        .register_get("notes", |p: &mut PlanValue| strings(&p.plan.notes))
        .register_get("tables", |p: &mut PlanValue| {
            strings(
                &p.plan
                    .tables
                    .iter()
                    .map(|t| t.table.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_fn("rows", |p: &mut PlanValue, table: &str| {
            p.plan.table(table).map_or(0, |t| t.rows)
        })
        .register_fn("to_string", |p: &mut PlanValue| {
            crate::pipeline::review::render_review(&p.plan, &p.diff, crate::style::Style::PLAIN)
        });
    engine
        .register_type_with_name::<Report>("Report")
        .register_get("ok", |r: &mut Report| r.ok)
        .register_get("problems", |r: &mut Report| strings(&r.problems))
        .register_fn("to_string", |r: &mut Report| r.render());
    engine
        .register_type_with_name::<Db>("Db")
        .register_get("path", |d: &mut Db| d.path.display().to_string())
        .register_get("role", |d: &mut Db| d.role.name().to_string())
        .register_fn("to_string", |d: &mut Db| {
            format!("{} database {}", d.role.name(), d.path.display())
        });
    engine
        .register_type_with_name::<Validated>("Validated")
        .register_get("path", |v: &mut Validated| v.path().display().to_string())
        .register_fn("to_string", |v: &mut Validated| {
            format!("validated database {}", v.path().display())
        });
}

/// A Rhai value as an SQL value.
pub fn sql_value(v: &Dynamic) -> Value {
    if v.is_unit() {
        Value::Null
    } else if let Some(i) = v.clone().try_cast::<i64>() {
        Value::Integer(i)
    } else if let Some(f) = v.clone().try_cast::<f64>() {
        Value::Real(f)
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        Value::Integer(i64::from(b))
    } else if let Some(b) = v.clone().try_cast::<rhai::Blob>() {
        Value::Blob(b)
    } else {
        Value::Text(v.to_string())
    }
}

/// An SQL value as a Rhai value.
pub fn rhai_value(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(t) => t.into(),
        Value::Blob(b) => Dynamic::from_blob(b),
    }
}
