//! The `ALTER TABLE` part of the in-place path: the renames the plan makes
//! (`RENAME TO`, `RENAME COLUMN … TO`) and the approved drops (`DROP
//! COLUMN`, `DROP TABLE`), and [`simulate`], which runs statements on an
//! empty copy of a schema so that SQLite itself says what a rename rewrites
//! (views, triggers, indexes, foreign keys) and whether a drop applies.

use rusqlite::Connection;

use crate::pipeline::plan::{ColumnSource, Plan, TablePlan};
use crate::schema::{Schema, Table};
use crate::sqltext::{display_ident, quote_ident};

/// The statements that rename and drop, and what they do to the tables.
#[derive(Debug, Default, PartialEq)]
pub struct Alters {
    /// `RENAME TO` first, then `RENAME COLUMN` (under the new table names).
    pub renames: Vec<String>,
    pub drop_columns: Vec<String>,
    pub drop_tables: Vec<String>,
    /// (production name, source name) of every renamed table.
    pub renamed: Vec<(String, String)>,
    /// Source tables whose rows `DROP COLUMN` rewrites.
    pub rewritten: Vec<String>,
    /// Production tables dropped.
    pub dropped: Vec<String>,
    /// (source table, production column) dropped.
    pub dropped_columns: Vec<(String, String)>,
}

impl Alters {
    /// True when nothing is renamed or dropped.
    pub fn is_empty(&self) -> bool {
        self.renames.is_empty() && self.drop_columns.is_empty() && self.drop_tables.is_empty()
    }
}

type Verdict<T> = std::result::Result<T, String>;

/// The renames and drops of `plan` as statements, or why they cannot be
/// made in place.
pub fn alters(prod: &Schema, plan: &Plan) -> Verdict<Alters> {
    let mut out = Alters::default();
    let mut column_renames = Vec::new();
    for tp in &plan.tables {
        let Some(from) = tp.from.as_deref() else {
            continue;
        };
        let origin = prod
            .table(from)
            .ok_or_else(|| format!("table {} not found", display_ident(from)))?;
        if from != tp.table && from.eq_ignore_ascii_case(&tp.table) {
            return Err(format!("table {}: case-only rename", display_ident(from)));
        }
        let renamed = from != tp.table;
        let columns = renamed_columns(tp, origin)?;
        if renamed && origin.autoincrement {
            return Err(format!(
                "table {} uses AUTOINCREMENT (its sqlite_sequence row would change)",
                display_ident(from)
            ));
        }
        if renamed {
            if prod.table(&tp.table).is_some() {
                return Err(format!(
                    "table {} is renamed to the name of another table",
                    display_ident(from)
                ));
            }
            plain(origin)?;
            out.renames.push(format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(&tp.table)
            ));
            out.renamed.push((from.to_string(), tp.table.clone()));
        }
        column_renames.extend(columns);
        drop_columns(prod, tp, origin, &mut out)?;
    }
    out.renames.extend(column_renames);
    for dt in &plan.dropped_tables {
        drop_table(prod, &dt.table, &mut out)?;
    }
    Ok(out)
}

/// Not a virtual table (its module decides what a rename or drop does).
fn plain(t: &Table) -> Verdict<()> {
    match &t.virtual_module {
        Some(m) => Err(format!(
            "table {} is a virtual table ({m})",
            display_ident(&t.name)
        )),
        None => Ok(()),
    }
}

/// `RENAME COLUMN` for each column the plan copies from another name.
fn renamed_columns(tp: &TablePlan, origin: &Table) -> Verdict<Vec<String>> {
    let mut out = Vec::new();
    for c in &tp.columns {
        let ColumnSource::Copy { from } = &c.source else {
            continue;
        };
        if from == &c.name {
            continue;
        }
        let what = format!("{}.{}", display_ident(&tp.table), display_ident(from));
        if from.eq_ignore_ascii_case(&c.name) {
            return Err(format!("column {what}: case-only rename"));
        }
        if origin.column_named(&c.name).is_some() {
            return Err(format!(
                "column {what} is renamed to the name of another column"
            ));
        }
        plain(origin)?;
        out.push(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            quote_ident(&tp.table),
            quote_ident(from),
            quote_ident(&c.name)
        ));
    }
    Ok(out)
}

/// `DROP COLUMN` for each column the plan drops, when SQLite's restrictions
/// allow it (those SQLite checks only on the schema, views, triggers,
/// generated columns and CHECKs, are left to [`simulate`]).
fn drop_columns(prod: &Schema, tp: &TablePlan, origin: &Table, out: &mut Alters) -> Verdict<()> {
    for d in &tp.dropped {
        let what = format!("{}.{}", display_ident(&origin.name), display_ident(&d.name));
        plain(origin)?;
        let col = origin
            .column_named(&d.name)
            .ok_or_else(|| format!("column {what} not found"))?;
        let is = |c: &String| c.eq_ignore_ascii_case(&d.name);
        let why = if col.pk > 0 || origin.primary_key.iter().any(is) {
            Some("is part of the primary key")
        } else if origin.uniques.iter().any(|u| u.iter().any(is)) {
            Some("is UNIQUE")
        } else if prod
            .indexes_of(&origin.name)
            .any(|i| i.columns.iter().any(|c| c.name.as_ref().is_some_and(is)))
        {
            Some("is indexed")
        } else if origin.foreign_keys.iter().any(|f| f.columns.iter().any(is))
            || prod.tables.iter().any(|t| {
                t.foreign_keys.iter().any(|f| {
                    f.ref_table.eq_ignore_ascii_case(&origin.name) && f.ref_columns.iter().any(is)
                })
            })
        {
            Some("is in a foreign key")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!("column {what} {why}: DROP COLUMN does not apply"));
        }
        out.drop_columns.push(format!(
            "ALTER TABLE {} DROP COLUMN {}",
            quote_ident(&tp.table),
            quote_ident(&d.name)
        ));
        out.dropped_columns.push((tp.table.clone(), d.name.clone()));
        if !out.rewritten.contains(&tp.table) {
            out.rewritten.push(tp.table.clone());
        }
    }
    Ok(())
}

/// `DROP TABLE` of a table the source no longer has, unless another table
/// references it (with foreign keys enforced, `DROP TABLE` deletes its rows
/// first, which would check or cascade into the tables referencing it).
fn drop_table(prod: &Schema, name: &str, out: &mut Alters) -> Verdict<()> {
    let t = prod
        .table(name)
        .ok_or_else(|| format!("table {} not found", display_ident(name)))?;
    plain(t)?;
    if t.autoincrement {
        return Err(format!(
            "table {} uses AUTOINCREMENT (its sqlite_sequence row would change)",
            display_ident(name)
        ));
    }
    let referenced = prod.tables.iter().any(|o| {
        !o.name.eq_ignore_ascii_case(name)
            && o.foreign_keys
                .iter()
                .any(|f| f.ref_table.eq_ignore_ascii_case(name))
    });
    if referenced {
        return Err(format!(
            "table {} is referenced by a foreign key of another table",
            display_ident(name)
        ));
    }
    out.drop_tables
        .push(format!("DROP TABLE {}", quote_ident(name)));
    out.dropped.push(name.to_string());
    Ok(())
}

/// `prod`'s schema, without rows, with `statements` applied: what SQLite
/// makes of them, or its refusal. Header values are `prod`'s.
pub fn simulate(prod: &Schema, statements: &[String]) -> Verdict<Schema> {
    let run = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_in_memory()?;
        for t in &prod.tables {
            conn.execute_batch(&t.raw_sql)?;
        }
        for sql in prod.indexes.iter().filter_map(|i| i.raw_sql.as_ref()) {
            conn.execute_batch(sql)?;
        }
        for v in &prod.views {
            conn.execute_batch(&v.raw_sql)?;
        }
        for t in &prod.triggers {
            conn.execute_batch(&t.raw_sql)?;
        }
        Ok(conn)
    };
    let conn =
        run().map_err(|e| format!("the schema cannot be rebuilt empty to try the change: {e}"))?;
    for s in statements {
        conn.execute_batch(s)
            .map_err(|e| format!("SQLite refuses {s}: {e}"))?;
    }
    let mut schema = Schema::read(&conn, "main").map_err(|e| format!("{e:#}"))?;
    schema.user_version = prod.user_version;
    schema.application_id = prod.application_id;
    schema.page_size = prod.page_size;
    schema.auto_vacuum = prod.auto_vacuum;
    Ok(schema)
}

/// Every index, view and trigger that production and the source share
/// unchanged must come out of the renames unchanged (SQLite rewrites the
/// references; a changed one would not be the source's).
pub fn kept_objects_unchanged(prod: &Schema, source: &Schema, renamed: &Schema) -> Verdict<()> {
    let names = prod
        .indexes
        .iter()
        .filter(|i| i.is_explicit())
        .map(|i| ("index", &i.name))
        .chain(prod.views.iter().map(|v| ("view", &v.name)))
        .chain(prod.triggers.iter().map(|t| ("trigger", &t.name)));
    for (kind, name) in names {
        let before = sql_of(prod, kind, name);
        if before == sql_of(source, kind, name) && before != sql_of(renamed, kind, name) {
            return Err(format!(
                "{kind} {} would be changed by the renames, and the source keeps it as it is",
                display_ident(name)
            ));
        }
    }
    Ok(())
}

/// An index's, view's or trigger's SQL as compared (case folded).
fn sql_of(s: &Schema, kind: &str, name: &str) -> Option<String> {
    let sql = match kind {
        "index" => s.index(name).and_then(|x| x.sql.clone()),
        "view" => s.view(name).map(|x| x.sql.clone()),
        _ => s.trigger(name).map(|x| x.sql.clone()),
    };
    sql.map(|q| crate::sqltext::fold_case(&q))
}
