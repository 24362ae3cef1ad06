//! The plan: what happens to every table and column when production's data
//! moves into a database built from the source schema, and what that costs
//! (rows copied, values dropped, values converted) measured on the snapshot.
//!
//! Column mapping is by name (case-insensitive), overridden by the recipe's
//! [`Mappings`] (renames, SQL expressions, fills, explicit drops).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use serde::Serialize;

use crate::pipeline::{affinity, checksum};
use crate::schema::{Column, ColumnKind, Schema, Table};
use crate::sqltext::{display_ident, quote_ident, quote_str};

/// What a recipe declared about the data, before the copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mappings {
    /// (old production name, new source name)
    pub table_renames: Vec<(String, String)>,
    /// (source table, old column, new column)
    pub column_renames: Vec<(String, String, String)>,
    /// (source table, column, SQL expression over the old row)
    pub expressions: Vec<(String, String, String)>,
    /// (source table, column, SQL expression) used for a new column
    pub fills: Vec<(String, String, String)>,
    /// Production tables whose loss is approved.
    pub drop_tables: Vec<String>,
    /// (production table, column) whose loss is approved.
    pub drop_columns: Vec<(String, String)>,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Mappings {
    /// The production table that feeds source table `table`, by rename or
    /// by name.
    pub fn origin_of<'a>(&self, prod: &'a Schema, table: &str) -> Option<&'a Table> {
        if let Some((old, _)) = self.table_renames.iter().find(|(_, new)| eq(new, table)) {
            return prod.table(old);
        }
        if self.table_renames.iter().any(|(old, _)| eq(old, table)) {
            return None;
        }
        prod.table(table)
    }

    fn lookup<'a>(
        list: &'a [(String, String, String)],
        table: &str,
        column: &str,
    ) -> Option<&'a str> {
        list.iter()
            .find(|(t, c, _)| eq(t, table) && eq(c, column))
            .map(|(_, _, e)| e.as_str())
    }
}

/// Where a target column's values come from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnSource {
    /// The production column of that name, value for value.
    Copy { from: String },
    /// The production column, converted by the new column's type.
    Convert {
        from: String,
        from_type: String,
        to_type: String,
    },
    /// A recipe's SQL expression over the old row.
    Expr { sql: String },
    /// A recipe's value for a new column.
    Fill { sql: String },
    /// Not in production: the column's DEFAULT (or NULL).
    Default { default: Option<String> },
    /// Generated or hidden: computed by SQLite, never inserted.
    Computed,
}

/// How values fared when they were converted (type change or expression),
/// measured on the snapshot with SQLite's own affinity rules.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Conversion {
    /// Non-NULL values examined.
    pub values: i64,
    /// Values that changed storage class without losing anything ('7' -> 7).
    pub converted: i64,
    /// Values whose meaning changed ('007' -> 7).
    pub lossy: i64,
    /// Non-NULL values that became NULL.
    pub nulled: i64,
    /// Values kept as they were although they do not fit the new type
    /// ('n/a' stays TEXT in an INTEGER column).
    pub unfit: i64,
    /// Values a STRICT table refuses.
    pub rejected: i64,
    /// A few examples of lossy, nulled or rejected values.
    pub samples: Vec<String>,
    /// Checksum of the converted values (validation compares the result).
    #[serde(skip)]
    pub checksum: u64,
}

impl Conversion {
    /// True when some stored value would be lost or changed in meaning.
    pub fn loses_data(&self) -> bool {
        self.lossy > 0 || self.nulled > 0
    }
}

/// The fate of one column of the target table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnPlan {
    pub name: String,
    pub source: ColumnSource,
    /// The SQL that reads the value from the production row.
    #[serde(skip)]
    pub select: Option<String>,
    /// The production column of the same (or renamed) name, if any.
    #[serde(skip)]
    pub old_select: Option<String>,
    pub conversion: Option<Conversion>,
}

/// A production column that the target does not keep.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DroppedColumn {
    pub name: String,
    /// Non-NULL values that would be lost.
    pub values: i64,
    /// Declared by the recipe (`drop_column`).
    pub approved: bool,
}

/// How a table's rows get into the new file.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// One `INSERT … SELECT` of the mapped columns.
    #[default]
    Rows,
    /// An external-content full-text index (`content='table'`): nothing is
    /// inserted; the index is rebuilt from its content table after the copy.
    Rebuild,
    /// A contentless full-text index (`content=''`) whose definition is
    /// unchanged: its shadow tables (the index itself) are copied as they
    /// are, since SQLite cannot give the indexed text back.
    Shadow,
    /// A contentless full-text index whose definition changed: the text
    /// cannot be read back, so the new index starts empty.
    Empty,
}

impl Fill {
    fn is_rows(&self) -> bool {
        *self == Fill::Rows
    }
}

/// One table of the target schema.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TablePlan {
    pub table: String,
    /// The production table the rows come from (`None`: a new, empty table).
    pub from: Option<String>,
    pub rows: i64,
    /// The rowid is copied explicitly (rowid table without an alias column,
    /// full-text tables).
    pub copy_rowid: bool,
    /// How the rows get in (`rows` for every ordinary table).
    #[serde(skip_serializing_if = "Fill::is_rows")]
    pub fill: Fill,
    pub columns: Vec<ColumnPlan>,
    pub dropped: Vec<DroppedColumn>,
    /// Columns that identify a row on both sides (for checksums).
    pub key: Vec<String>,
    #[serde(skip)]
    pub source_key: Vec<String>,
}

impl TablePlan {
    /// True when every column is copied unchanged and nothing is dropped.
    pub fn is_identity(&self) -> bool {
        self.fill != Fill::Empty
            && self.dropped.is_empty()
            && self
                .columns
                .iter()
                .all(|c| matches!(c.source, ColumnSource::Copy { .. } | ColumnSource::Computed))
    }

    /// The columns an INSERT names and the expressions that feed them
    /// (`None` when nothing is inserted row by row, see [`Fill`]).
    pub fn insert_parts(&self) -> Option<(Vec<String>, Vec<String>)> {
        self.from.as_ref()?;
        if self.fill != Fill::Rows {
            return None;
        }
        let mut targets = Vec::new();
        let mut selects = Vec::new();
        if self.copy_rowid {
            targets.push("rowid".to_string());
            selects.push("rowid".to_string());
        }
        for c in &self.columns {
            if let Some(sel) = &c.select {
                targets.push(quote_ident(&c.name));
                selects.push(sel.clone());
            }
        }
        (!targets.is_empty()).then_some((targets, selects))
    }

    /// The INSERT … SELECT that copies this table from `snapshot_schema`
    /// (`None` when nothing is inserted row by row, see [`Fill`]).
    pub fn insert_sql(&self, snapshot_schema: &str) -> Option<String> {
        let from = self.from.as_ref()?;
        let (targets, selects) = self.insert_parts()?;
        Some(format!(
            "INSERT INTO main.{}({}) SELECT {} FROM {}.{}",
            quote_ident(&self.table),
            targets.join(", "),
            selects.join(", "),
            quote_ident(snapshot_schema),
            quote_ident(from)
        ))
    }
}

/// A production table that the target does not have.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DroppedTable {
    pub table: String,
    pub rows: i64,
    pub approved: bool,
}

/// The whole plan of a migration.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Plan {
    pub tables: Vec<TablePlan>,
    pub dropped_tables: Vec<DroppedTable>,
    /// Problems that make the copy impossible (a run stops on them).
    pub refusals: Vec<String>,
    /// Things that lose or change data and need approval.
    pub data_loss: Vec<String>,
    /// Facts worth knowing that need no approval.
    pub notes: Vec<String>,
    /// Renames the schemas suggest; decided by the run before the copy.
    pub renames: Vec<RenameSuggestion>,
}

impl Plan {
    /// The plan of one table.
    pub fn table(&self, name: &str) -> Option<&TablePlan> {
        self.tables.iter().find(|t| eq(&t.table, name))
    }
}

/// True when a rowid table's primary key is an alias of the rowid
/// (`INTEGER PRIMARY KEY`, but not `INTEGER PRIMARY KEY DESC`).
pub fn has_rowid_alias(t: &Table) -> bool {
    t.rowid_alias
}

/// True for the full-text modules, whose rows have stable rowids that an
/// INSERT can set.
fn is_fts(t: &Table) -> bool {
    t.virtual_module
        .as_deref()
        .is_some_and(|m| matches!(m, "fts3" | "fts4" | "fts5"))
}

/// The content table of an FTS table: `Some("")` for a contentless one,
/// `Some(table)` for external content, `None` when it stores its own text.
fn fts_content(t: &Table) -> Option<String> {
    if is_fts(t) {
        t.module_arg("content")
    } else {
        None
    }
}

fn is_rowid_table(t: &Table) -> bool {
    !t.without_rowid
}

/// Opens the run's copy of production for planning: `main` is the
/// database, and it is attached again as `snapshot` so that recipe
/// expressions written for the copy (`snapshot.users`) work here too.
pub fn open_for_plan(path: &std::path::Path) -> Result<Connection> {
    let conn = crate::db::open_readonly(path)?;
    crate::pipeline::copy::attach_snapshot(&conn, &path.to_string_lossy())?;
    Ok(conn)
}

/// The one way a plan is made, for `run`, `plan` and the REPL alike:
/// production's schema read from a consistent copy, its diff to the source,
/// and the plan measured on that copy.
pub fn from_copy(
    copy: &std::path::Path,
    source: &Schema,
    maps: &Mappings,
) -> Result<(Schema, crate::diff::SchemaDiff, Plan)> {
    let prod = Schema::load(copy)?;
    let d = crate::diff::diff(&prod, source);
    let plan = build(&prod, source, maps, &open_for_plan(copy)?)?;
    Ok((prod, d, plan))
}

/// Builds the plan for moving `prod`'s data (the snapshot, `main` of
/// `snapshot`) into the `source` schema.
pub fn build(
    prod: &Schema,
    source: &Schema,
    maps: &Mappings,
    snapshot: &Connection,
) -> Result<Plan> {
    let mut plan = Plan {
        tables: Vec::new(),
        dropped_tables: Vec::new(),
        refusals: Vec::new(),
        data_loss: Vec::new(),
        notes: Vec::new(),
        renames: Vec::new(),
    };
    let mut used_prod_tables = Vec::new();
    for target in &source.tables {
        let origin = maps.origin_of(prod, &target.name);
        if let Some(o) = origin {
            used_prod_tables.push(o.name.to_lowercase());
        }
        let tp = plan_table(target, origin, maps, snapshot, &mut plan)
            .with_context(|| format!("planning table {}", target.name))?;
        plan.tables.push(tp);
    }
    for t in &prod.tables {
        if used_prod_tables.contains(&t.name.to_lowercase()) {
            continue;
        }
        let rows = count_rows(snapshot, &t.name)?;
        let approved = maps.drop_tables.iter().any(|d| eq(d, &t.name));
        if rows > 0 && !approved {
            plan.data_loss.push(format!(
                "table {} is dropped: {rows} row(s) lost",
                display_ident(&t.name)
            ));
        }
        plan.dropped_tables.push(DroppedTable {
            table: t.name.clone(),
            rows,
            approved,
        });
    }
    plan.renames = suggest_renames(prod, source, &plan);
    Ok(plan)
}

fn count_rows(conn: &Connection, table: &str) -> Result<i64> {
    Ok(conn.query_row(
        &format!("SELECT count(*) FROM main.{}", quote_ident(table)),
        [],
        |r| r.get(0),
    )?)
}

fn plan_table(
    target: &Table,
    origin: Option<&Table>,
    maps: &Mappings,
    snap: &Connection,
    plan: &mut Plan,
) -> Result<TablePlan> {
    let Some(origin) = origin else {
        return Ok(TablePlan {
            table: target.name.clone(),
            from: None,
            rows: 0,
            copy_rowid: false,
            // A new external-content index is built from its content table.
            fill: match fts_content(target).as_deref() {
                Some(content) if !content.is_empty() => Fill::Rebuild,
                _ => Fill::Rows,
            },
            columns: target
                .columns
                .iter()
                .map(|c| ColumnPlan {
                    name: c.name.clone(),
                    source: if c.is_insertable() {
                        ColumnSource::Default {
                            default: c.default.clone(),
                        }
                    } else {
                        ColumnSource::Computed
                    },
                    select: None,
                    old_select: None,
                    conversion: None,
                })
                .collect(),
            dropped: Vec::new(),
            key: Vec::new(),
            source_key: Vec::new(),
        });
    };
    let rows = count_rows(snap, &origin.name)?;
    let tname = display_ident(&target.name);
    let mut used: Vec<String> = Vec::new();
    let mut columns = Vec::new();
    for col in &target.columns {
        if !col.is_insertable() {
            columns.push(ColumnPlan {
                name: col.name.clone(),
                source: ColumnSource::Computed,
                select: None,
                old_select: None,
                conversion: None,
            });
            continue;
        }
        let renamed_from = maps
            .column_renames
            .iter()
            .find(|(t, _, new)| eq(t, &target.name) && eq(new, &col.name))
            .map(|(_, old, _)| old.as_str());
        let renamed_away = maps
            .column_renames
            .iter()
            .any(|(t, old, _)| eq(t, &target.name) && eq(old, &col.name));
        let old = match renamed_from {
            Some(old) => origin.column_named(old),
            None if renamed_away => None,
            None => origin.column_named(&col.name),
        };
        let mut cp = ColumnPlan {
            name: col.name.clone(),
            source: ColumnSource::Computed,
            select: None,
            old_select: old.map(|o| quote_ident(&o.name)),
            conversion: None,
        };
        if let Some(expr) = Mappings::lookup(&maps.expressions, &target.name, &col.name) {
            cp.source = ColumnSource::Expr {
                sql: expr.to_string(),
            };
            cp.select = Some(format!("({expr})"));
            if let Some(o) = old {
                used.push(o.name.to_lowercase());
            }
        } else if let Some(o) = old {
            used.push(o.name.to_lowercase());
            let sel = quote_ident(&o.name);
            cp.select = Some(sel);
            cp.source = if needs_conversion(o, origin, col, target) {
                ColumnSource::Convert {
                    from: o.name.clone(),
                    from_type: o.decl_type.clone(),
                    to_type: col.decl_type.clone(),
                }
            } else {
                ColumnSource::Copy {
                    from: o.name.clone(),
                }
            };
        } else if let Some(fill) = Mappings::lookup(&maps.fills, &target.name, &col.name) {
            cp.source = ColumnSource::Fill {
                sql: fill.to_string(),
            };
            cp.select = Some(format!("({fill})"));
        } else {
            cp.source = ColumnSource::Default {
                default: col.default.clone(),
            };
            let alias = has_rowid_alias(target) && eq(&target.primary_key[0], &col.name);
            if col.not_null && col.default.is_none() && rows > 0 && !alias {
                plan.refusals.push(format!(
                    "column {tname}.{} is new, NOT NULL and has no DEFAULT, but {tname} has {rows} row(s): \
                     add a DEFAULT to the source schema, or give the value in a recipe: fill(\"{}\", \"{}\", \"<value or SQL expression>\")",
                    display_ident(&col.name),
                    target.name,
                    col.name
                ));
            }
        }
        // A value copied or converted from a NOT NULL column cannot be NULL;
        // anything else is counted on the snapshot.
        let cannot_be_null = matches!(
            cp.source,
            ColumnSource::Copy { .. } | ColumnSource::Convert { .. }
        ) && old.is_some_and(|o| o.not_null);
        if let (Some(sel), true, false) = (&cp.select, col.not_null, cannot_be_null) {
            let nulls: i64 = snap.query_row(
                &format!(
                    "SELECT count(*) FROM main.{} WHERE {sel} IS NULL",
                    quote_ident(&origin.name)
                ),
                [],
                |r| r.get(0),
            )?;
            if nulls > 0 {
                let samples = sample_keys(snap, origin, &format!("{sel} IS NULL"))?;
                plan.refusals.push(format!(
                    "column {tname}.{} is NOT NULL, but {nulls} row(s) would get NULL (rows {samples}): \
                     give those rows a value with map_column(\"{}\", \"{}\", \"coalesce({}, <value>)\") in a recipe",
                    display_ident(&col.name),
                    target.name,
                    col.name,
                    quote_ident(&col.name)
                ));
            }
        }
        columns.push(cp);
    }

    let copy_rowid = is_rowid_table(target)
        && is_rowid_table(origin)
        && !has_rowid_alias(target)
        && (target.virtual_module.is_none() || is_fts(target));
    let (key, source_key) = row_key(target, origin, &columns);
    let fill = plan_fill(target, origin, rows, maps, plan);

    // A stored column that becomes generated: SQLite computes its values
    // now, so the stored ones are replaced; count those that differ.
    for col in target.columns.iter().filter(|c| c.generated.is_some()) {
        let Some(old) = origin
            .column_named(&col.name)
            .filter(|o| o.kind == ColumnKind::Normal && !used.contains(&o.name.to_lowercase()))
        else {
            continue;
        };
        used.push(old.name.to_lowercase());
        let approved = maps
            .drop_columns
            .iter()
            .any(|(t, c)| (eq(t, &origin.name) || eq(t, &target.name)) && eq(c, &old.name));
        let expr = col.generated.clone().unwrap_or_default();
        let what = format!("{tname}.{}", display_ident(&col.name));
        let differing = replaced_values(snap, origin, old, &expr)?;
        match differing {
            (0, 0) => {}
            (0, values) => plan.notes.push(format!(
                "{what} becomes a generated column: its {values} stored value(s) all equal ({expr})"
            )),
            (n, _) if approved => plan.notes.push(format!(
                "{what} becomes a generated column: {n} stored value(s) differ from ({expr}) and are replaced (approved by recipe)"
            )),
            (n, _) => plan.data_loss.push(format!(
                "{what} becomes a generated column: {n} stored value(s) differ from ({expr}) and are replaced"
            )),
        }
    }

    let dropped: Vec<DroppedColumn> = origin
        .columns
        .iter()
        .filter(|c| c.kind == ColumnKind::Normal && !used.contains(&c.name.to_lowercase()))
        .map(|c| DroppedColumn {
            name: c.name.clone(),
            values: 0,
            approved: maps
                .drop_columns
                .iter()
                .any(|(t, col)| (eq(t, &origin.name) || eq(t, &target.name)) && eq(col, &c.name)),
        })
        .collect();
    // Non-NULL values of the dropped columns: one scan, on another core
    // (its own read-only connection) while the conversions are measured here.
    let counting = (!dropped.is_empty() && rows > 0).then(|| {
        let sql = format!(
            "SELECT {} FROM main.{}",
            dropped
                .iter()
                .map(|d| format!("count({})", quote_ident(&d.name)))
                .collect::<Vec<_>>()
                .join(", "),
            quote_ident(&origin.name)
        );
        let n = dropped.len();
        let path = snap
            .path()
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        std::thread::spawn(move || -> Result<Vec<i64>> {
            let conn = match path {
                Some(p) => crate::db::open_readonly(&p)?,
                None => anyhow::bail!("the snapshot has no file to read from another thread"),
            };
            Ok(conn.query_row(&sql, [], |r| {
                (0..n)
                    .map(|i| r.get(i))
                    .collect::<rusqlite::Result<Vec<i64>>>()
            })?)
        })
    });

    let mut tp = TablePlan {
        table: target.name.clone(),
        from: Some(origin.name.clone()),
        // Rows to copy: none when the index cannot be read back.
        rows: if fill == Fill::Empty { 0 } else { rows },
        copy_rowid,
        fill,
        columns,
        dropped,
        key,
        source_key,
    };
    if rows > 0 && fill == Fill::Rows {
        analyze_conversions(&mut tp, target, snap, plan)?;
    }
    if let Some(counting) = counting {
        let values = counting
            .join()
            .map_err(|_| anyhow::anyhow!("counting dropped values panicked"))??;
        for (d, v) in tp.dropped.iter_mut().zip(values) {
            d.values = v;
        }
    }
    for d in &tp.dropped {
        if d.values > 0 && !d.approved {
            plan.data_loss.push(format!(
                "column {}.{} is dropped: {} non-NULL value(s) lost",
                display_ident(&origin.name),
                display_ident(&d.name),
                d.values
            ));
        }
    }
    if target.autoincrement != origin.autoincrement && origin.autoincrement {
        plan.notes.push(format!(
            "{tname} loses AUTOINCREMENT: ids of deleted rows may be reused"
        ));
    }
    if is_rowid_table(origin) && !is_rowid_table(target) && !has_rowid_alias(origin) {
        plan.notes.push(format!(
            "{tname} becomes WITHOUT ROWID: its rowids are not kept"
        ));
    }
    Ok(tp)
}

/// How the rows of a virtual table get into the new file, with what the
/// review must say about it.
fn plan_fill(target: &Table, origin: &Table, rows: i64, maps: &Mappings, plan: &mut Plan) -> Fill {
    if !is_fts(target) {
        return Fill::Rows;
    }
    let tname = display_ident(&target.name);
    let module = target
        .virtual_module
        .clone()
        .unwrap_or_default()
        .to_uppercase();
    match fts_content(target).as_deref() {
        Some("") if fts_content(origin).as_deref() == Some("") => {
            let args = |t: &Table| {
                let sql = crate::sqltext::fold_case(&t.sql);
                sql.find(" USING ").map(|i| sql[i..].to_string())
            };
            let unchanged =
                origin.virtual_module == target.virtual_module && args(origin) == args(target);
            if unchanged {
                plan.notes.push(format!(
                    "{tname} is a contentless {module} table (content=''): SQLite keeps only its index, not the text, \
                     so its index is copied as it is ({rows} row(s))"
                ));
                Fill::Shadow
            } else {
                let text = format!(
                    "{tname} is a contentless {module} table (content=''): SQLite keeps only its index, not the text, \
                     so its {rows} row(s) cannot be read back into the changed table; it starts empty \
                     (refill it from the application's data)"
                );
                let approved = maps.drop_tables.iter().any(|d| eq(d, &origin.name));
                if rows > 0 && !approved {
                    plan.data_loss.push(text);
                } else {
                    plan.notes.push(text);
                }
                Fill::Empty
            }
        }
        Some("") | None => Fill::Rows,
        Some(content) => {
            plan.notes.push(format!(
                "{tname} is an external-content {module} table (content={}): no row is copied into it; \
                 its index is rebuilt from {} after the copy",
                quote_str(content),
                display_ident(content)
            ));
            Fill::Rebuild
        }
    }
}

/// For a stored column that becomes generated: (stored values that differ
/// from the expression, non-NULL stored values). When the expression cannot
/// be evaluated on the old table (it names new columns), every non-NULL
/// stored value counts as replaced.
fn replaced_values(
    snap: &Connection,
    origin: &Table,
    old: &Column,
    expr: &str,
) -> Result<(i64, i64)> {
    let table = quote_ident(&origin.name);
    let col = quote_ident(&old.name);
    let values: i64 =
        snap.query_row(&format!("SELECT count({col}) FROM main.{table}"), [], |r| {
            r.get(0)
        })?;
    let differing = snap
        .query_row(
            &format!("SELECT count(*) FROM main.{table} WHERE {col} IS NOT ({expr})"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(values);
    Ok((differing, values))
}

/// True when copying the value can change it: the affinity differs, or the
/// target is STRICT and the origin was not.
fn needs_conversion(old: &Column, origin: &Table, new: &Column, target: &Table) -> bool {
    (target.strict && !origin.strict)
        || (old.affinity != new.affinity && new.affinity != "BLOB")
        || (target.strict && !old.decl_type.eq_ignore_ascii_case(&new.decl_type))
}

/// The columns that identify a row in the target and the matching SQL on
/// the production side.
fn row_key(target: &Table, origin: &Table, columns: &[ColumnPlan]) -> (Vec<String>, Vec<String>) {
    if is_rowid_table(target)
        && is_rowid_table(origin)
        && (target.virtual_module.is_none() || is_fts(target))
    {
        if has_rowid_alias(target) {
            // The alias column holds the rowid; it may come from another
            // production column, so key on the values on both sides.
            let pk = &target.primary_key[0];
            if let Some(sel) = columns
                .iter()
                .find(|c| eq(&c.name, pk))
                .and_then(|c| c.select.clone())
            {
                return (vec![quote_ident(pk)], vec![sel]);
            }
        }
        return (vec!["rowid".into()], vec!["rowid".into()]);
    }
    let mut key = Vec::new();
    let mut source = Vec::new();
    for pk in &target.primary_key {
        match columns
            .iter()
            .find(|c| eq(&c.name, pk))
            .and_then(|c| c.select.clone())
        {
            Some(sel) => {
                key.push(quote_ident(pk));
                source.push(sel);
            }
            None => return (Vec::new(), Vec::new()),
        }
    }
    (key, source)
}

fn sample_keys(snap: &Connection, origin: &Table, condition: &str) -> Result<String> {
    let key = origin.row_identity().join(" || ',' || ");
    let mut stmt = snap.prepare(&format!(
        "SELECT {key} FROM main.{} WHERE {condition} LIMIT 5",
        quote_ident(&origin.name)
    ))?;
    let keys: Vec<String> = stmt
        .query_map([], |r| r.get_ref(0).map(render_ref))?
        .collect::<rusqlite::Result<_>>()?;
    let label = if origin.without_rowid { "key" } else { "rowid" };
    Ok(keys
        .iter()
        .map(|k| format!("{label} {k}"))
        .collect::<Vec<_>>()
        .join(", "))
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// A value read from SQLite as SQL-ish text for messages. Text that is not
/// valid UTF-8 is shown with replacement characters, never refused.
pub fn render_ref(v: ValueRef<'_>) -> String {
    render_value(&owned(v))
}

/// A value as SQL-ish text for messages.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => {
            let short: String = t.chars().take(40).collect();
            quote_str(&short) + if t.chars().count() > 40 { "…" } else { "" }
        }
        Value::Blob(b) => format!("<blob {} bytes>", b.len()),
    }
}

/// Measures conversions on the snapshot with SQLite's own affinity rules: a
/// plain value (NULL, an integer, a decimal integer's text) is settled as
/// a column of the new type was seen to store it ([`affinity::Plain`]);
/// any other goes to a temporary table declared with the new column type,
/// whose BEFORE INSERT trigger hands the converted value to the same
/// native function and then discards the row, so nothing is stored.
fn analyze_conversions(
    tp: &mut TablePlan,
    target: &Table,
    snap: &Connection,
    plan: &mut Plan,
) -> Result<()> {
    let from = tp.from.clone().unwrap_or_default();
    let tname = display_ident(&tp.table);
    for i in 0..tp.columns.len() {
        let cp = &tp.columns[i];
        let sel = match (&cp.source, &cp.select) {
            (ColumnSource::Convert { .. } | ColumnSource::Expr { .. }, Some(sel)) => sel.clone(),
            _ => continue,
        };
        let old_expr = cp.old_select.clone().unwrap_or_else(|| sel.clone());
        let Some(col) = target.column_named(&cp.name) else {
            continue;
        };
        let intended = matches!(cp.source, ColumnSource::Expr { .. });
        let stats = Arc::new(Mutex::new(Observed::new(col, target.strict, intended)));
        let nkey = tp.source_key.len();
        // sqlmorph_observe(keys…, old, new) counts a converted value;
        // sqlmorph_plain(keys…, old, value) counts it too when the value
        // is plain and says whether it did.
        let plain = affinity::Plain::probe(snap, &col.decl_type)?;
        for (name, settle) in [("sqlmorph_observe", None), ("sqlmorph_plain", Some(plain))] {
            let sink = Arc::clone(&stats);
            snap.create_scalar_function(name, -1, FunctionFlags::SQLITE_UTF8, move |ctx| {
                let given = ctx.get_raw(nkey + 1);
                let Some(new) = settle.map_or(Some(given), |p| p.stored(given)) else {
                    return Ok(false);
                };
                let key = checksum::key_hash((0..nkey).map(|k| ctx.get_raw(k)));
                if let Ok(mut s) = sink.lock() {
                    s.observe(key, ctx.get_raw(nkey), new, || {
                        (0..nkey)
                            .map(|k| render_value(&owned(ctx.get_raw(k))))
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                }
                Ok(true)
            })?;
        }
        let mut cols: Vec<String> = (0..nkey).map(|k| format!("k{k}")).collect();
        cols.push("old".into());
        let args: Vec<String> = cols
            .iter()
            .map(|c| format!("NEW.{c}"))
            .chain(["NEW.new".to_string()])
            .collect();
        let decl = if col.decl_type.is_empty() {
            String::new()
        } else {
            format!(" {}", col.decl_type)
        };
        let setup = format!(
            "DROP TABLE IF EXISTS temp.sqlmorph_conv;
             CREATE TEMP TABLE sqlmorph_conv({}, new{decl});
             CREATE TEMP TRIGGER sqlmorph_conv_observe BEFORE INSERT ON sqlmorph_conv BEGIN
               SELECT sqlmorph_observe({}); SELECT RAISE(IGNORE);
             END;",
            cols.join(", "),
            args.join(", ")
        );
        snap.execute_batch(&setup)?;
        let mut selects = tp.source_key.clone();
        selects.push(old_expr);
        selects.push(sel);
        let selects = selects.join(", ");
        let run = snap.execute(
            &format!(
                "INSERT INTO temp.sqlmorph_conv SELECT {selects} FROM main.{} \
                 WHERE NOT sqlmorph_plain({selects})",
                quote_ident(&from)
            ),
            [],
        );
        snap.execute_batch("DROP TABLE IF EXISTS temp.sqlmorph_conv")?;
        run.with_context(|| {
            format!(
                "evaluating the values of {tname}.{}",
                display_ident(&cp.name)
            )
        })?;
        let conv = stats.lock().map(|s| s.result()).unwrap_or_default();
        let what = format!("{tname}.{}", display_ident(&cp.name));
        if conv.rejected > 0 {
            plan.refusals.push(format!(
                "{what}: {} value(s) cannot be stored in STRICT {} column (e.g. {}): convert them with map_column in a recipe",
                conv.rejected,
                col.decl_type,
                conv.samples.join("; ")
            ));
        } else if conv.loses_data() {
            plan.data_loss.push(format!(
                "{what}: {} value(s) change meaning and {} become NULL when converted to {} (e.g. {})",
                conv.lossy,
                conv.nulled,
                if col.decl_type.is_empty() { "no type" } else { &col.decl_type },
                conv.samples.join("; ")
            ));
        }
        if conv.unfit > 0 {
            plan.notes.push(format!(
                "{what}: {} value(s) do not fit type {} and are kept as they are",
                conv.unfit, col.decl_type
            ));
        }
        tp.columns[i].conversion = Some(conv);
    }
    Ok(())
}

/// Accumulates what happened to each value.
struct Observed {
    strict_type: Option<String>,
    /// A recipe's expression: changed values are what it asked for; only
    /// values that become NULL count as lost.
    intended: bool,
    affinity: String,
    conv: Conversion,
}

impl Observed {
    fn new(col: &Column, strict: bool, intended: bool) -> Observed {
        Observed {
            strict_type: strict.then(|| col.decl_type.to_ascii_uppercase()),
            intended,
            affinity: col.affinity.clone(),
            conv: Conversion::default(),
        }
    }

    fn observe(
        &mut self,
        key: u64,
        old: ValueRef<'_>,
        new: ValueRef<'_>,
        describe: impl Fn() -> String,
    ) {
        self.conv.checksum = self
            .conv
            .checksum
            .wrapping_add(checksum::cell_hash(key, new));
        if matches!(old, ValueRef::Null) && matches!(new, ValueRef::Null) {
            return;
        }
        self.conv.values += 1;
        let mut sample = None;
        if matches!(new, ValueRef::Null) {
            self.conv.nulled += 1;
            sample = Some("NULL");
        } else if !same(old, new) {
            if self.intended || lossless(old, new) {
                self.conv.converted += 1;
            } else {
                self.conv.lossy += 1;
                sample = Some("lossy");
            }
        }
        let fits = match self.affinity.as_str() {
            "INTEGER" | "REAL" | "NUMERIC" => {
                matches!(new, ValueRef::Integer(_) | ValueRef::Real(_))
            }
            "TEXT" => !matches!(new, ValueRef::Blob(_)),
            _ => true,
        };
        if !fits {
            self.conv.unfit += 1;
        }
        if let Some(t) = &self.strict_type {
            let ok = match t.as_str() {
                "INT" | "INTEGER" => matches!(new, ValueRef::Integer(_) | ValueRef::Null),
                "REAL" => matches!(new, ValueRef::Real(_) | ValueRef::Null),
                "TEXT" => matches!(new, ValueRef::Text(_) | ValueRef::Null),
                "BLOB" => matches!(new, ValueRef::Blob(_) | ValueRef::Null),
                _ => true,
            };
            if !ok {
                self.conv.rejected += 1;
                sample = Some("rejected");
            }
        }
        if let Some(why) = sample {
            if self.conv.samples.len() < 5 {
                self.conv.samples.push(format!(
                    "row {}: {} -> {} ({why})",
                    describe(),
                    render_value(&owned(old)),
                    render_value(&owned(new))
                ));
            }
        }
    }

    fn result(&self) -> Conversion {
        self.conv.clone()
    }
}

fn same(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::Real(x), ValueRef::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn as_number(v: ValueRef<'_>) -> Option<f64> {
    match v {
        #[allow(clippy::cast_precision_loss)]
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_string),
        _ => None,
    }
}

/// A conversion is lossless when the text reads the same, or both sides
/// are the same number and the text had no padding or leading zeros.
fn lossless(old: ValueRef<'_>, new: ValueRef<'_>) -> bool {
    if let (Some(a), Some(b)) = (as_text(old), as_text(new)) {
        if a == b {
            return true;
        }
    }
    let canonical = match (old, new) {
        (ValueRef::Text(t), ValueRef::Integer(i)) => {
            std::str::from_utf8(t).is_ok_and(|s| s == i.to_string())
        }
        (ValueRef::Text(t), ValueRef::Real(f)) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<f64>().ok().map(|p| (s, p)))
            .is_some_and(|(s, p)| {
                p.to_bits() == f.to_bits() && !s.starts_with(['0', ' ', '+']) || s.starts_with("0.")
            }),
        (ValueRef::Real(_) | ValueRef::Integer(_), ValueRef::Integer(_) | ValueRef::Real(_))
        | (ValueRef::Integer(_) | ValueRef::Real(_), ValueRef::Text(_)) => true,
        _ => false,
    };
    canonical
        && as_number(old)
            .zip(as_number(new))
            .is_some_and(|(a, b)| a == b)
}

/// A table or column that looks renamed rather than dropped and added.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RenameSuggestion {
    /// `table` or `column`.
    pub kind: String,
    /// The table (the source table, for a column rename).
    pub table: String,
    pub old: String,
    pub new: String,
    /// Why it looks like a rename.
    pub evidence: Vec<String>,
    /// The recipe line that declares it.
    pub recipe_line: String,
}

/// Levenshtein distance turned into a similarity in 0..=1.
pub fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    #[allow(clippy::cast_precision_loss)]
    let score = 1.0 - prev[b.len()] as f64 / a.len().max(b.len()) as f64;
    score
}

/// Renames that the schemas suggest and the recipe has not declared (nor
/// declared as drops).
pub fn suggest_renames(prod: &Schema, source: &Schema, plan: &Plan) -> Vec<RenameSuggestion> {
    let mut out = Vec::new();
    // Columns: a new column and a dropped one in the same table.
    for tp in &plan.tables {
        let (Some(from), Some(target)) = (&tp.from, source.table(&tp.table)) else {
            continue;
        };
        let Some(origin) = prod.table(from) else {
            continue;
        };
        let mut taken: Vec<String> = Vec::new();
        for (pos, col) in target.columns.iter().enumerate() {
            let is_new = tp.columns.iter().any(|c| {
                eq(&c.name, &col.name) && matches!(c.source, ColumnSource::Default { .. })
            });
            if !is_new {
                continue;
            }
            let best = tp
                .dropped
                .iter()
                .filter(|d| !d.approved && !taken.contains(&d.name))
                .filter_map(|d| origin.column_named(&d.name).map(|o| (d, o)))
                .filter(|(_, o)| o.affinity == col.affinity)
                .map(|(d, o)| {
                    let sim = similarity(&o.name, &col.name);
                    let same_pos =
                        origin.columns.iter().position(|c| eq(&c.name, &o.name)) == Some(pos);
                    (d, o, sim, same_pos)
                })
                .filter(|(_, _, sim, same_pos)| *sim >= 0.5 || *same_pos)
                .max_by(|a, b| {
                    (a.2 + f64::from(u8::from(a.3))).total_cmp(&(b.2 + f64::from(u8::from(b.3))))
                });
            if let Some((d, o, sim, same_pos)) = best {
                taken.push(d.name.clone());
                let mut evidence = vec![
                    format!("name similarity {:.0}%", sim * 100.0),
                    format!("same type affinity ({})", col.affinity),
                ];
                if same_pos {
                    evidence.push(format!("same position ({})", pos + 1));
                }
                evidence.push(format!(
                    "{} non-NULL value(s) would be lost otherwise",
                    d.values
                ));
                out.push(RenameSuggestion {
                    kind: "column".into(),
                    table: tp.table.clone(),
                    old: o.name.clone(),
                    new: col.name.clone(),
                    evidence,
                    recipe_line: format!(
                        "rename_column({:?}, {:?}, {:?});",
                        tp.table, o.name, col.name
                    ),
                });
            }
        }
    }
    // Tables: a dropped table and a new one with similar columns.
    let new_tables: Vec<&TablePlan> = plan.tables.iter().filter(|t| t.from.is_none()).collect();
    let mut taken: Vec<String> = Vec::new();
    for dropped in plan.dropped_tables.iter().filter(|d| !d.approved) {
        let Some(old) = prod.table(&dropped.table) else {
            continue;
        };
        let best = new_tables
            .iter()
            .filter(|t| !taken.contains(&t.table))
            .filter_map(|t| source.table(&t.table))
            .map(|t| {
                let shared = t
                    .columns
                    .iter()
                    .filter(|c| old.column_named(&c.name).is_some())
                    .count();
                let union = t.columns.len() + old.columns.len() - shared;
                #[allow(clippy::cast_precision_loss)]
                let overlap = shared as f64 / union.max(1) as f64;
                (t, overlap, similarity(&old.name, &t.name))
            })
            .filter(|(_, overlap, sim)| *overlap >= 0.5 || (*sim >= 0.6 && *overlap > 0.0))
            .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)));
        if let Some((t, overlap, sim)) = best {
            taken.push(t.name.clone());
            out.push(RenameSuggestion {
                kind: "table".into(),
                table: t.name.clone(),
                old: old.name.clone(),
                new: t.name.clone(),
                evidence: vec![
                    format!("{:.0}% of the columns are shared", overlap * 100.0),
                    format!("name similarity {:.0}%", sim * 100.0),
                    format!("{} row(s) would be lost otherwise", dropped.rows),
                ],
                recipe_line: format!("rename_table({:?}, {:?});", old.name, t.name),
            });
        }
    }
    out
}
