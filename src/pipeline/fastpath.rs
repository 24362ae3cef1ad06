//! The in-place path: a migration whose every change SQLite makes with
//! `ALTER TABLE` or without touching a table (a new table, a new or dropped
//! index, view or trigger, an `ALTER TABLE … ADD COLUMN` SQLite accepts, a
//! table or column renamed by the plan, an approved dropped table or
//! column) is applied to production as those statements, so its cost
//! follows the change, not the database.
//!
//! * [`decide`] (no I/O but an empty in-memory database) turns the schema
//!   diff and the plan into the statements, in an order that works, or says
//!   why the run rebuilds. Renames and drops come from the plan
//!   ([`crate::pipeline::alter`]) and are tried first on an empty copy of
//!   production's schema: SQLite rewrites the references in views,
//!   triggers, indexes and foreign keys itself, and a view, trigger or
//!   index the source keeps as it is must come out unchanged; the whole
//!   list, tried the same way, must give the source's schema. `DROP
//!   COLUMN` only where SQLite's own restrictions allow (not primary key,
//!   UNIQUE, indexed, in a foreign key, in a view, trigger, generated
//!   column or CHECK). Recipe expressions and fills, conversions, anything
//!   else, and any doubt rebuild. [`crate::pipeline::path`] makes the
//!   decision when the plan is reviewed; a loss of data goes in place only
//!   once `approve` accepted it, exactly as the rebuild requires.
//! * [`crate::pipeline::rehearsal::rehearse`] applies them to a copy of the
//!   snapshot in the run directory; [`crate::pipeline::rehearsal::validate`] proves that copy right in time that follows
//!   the change: every b-tree the statements keep (a table kept, renamed,
//!   or with columns renamed or added, and its indexes) is proven to be the
//!   snapshot's page for page by [`crate::pipeline::pageproof`] (one byte
//!   comparison of the two files; only the changed trees are walked). The
//!   changed trees get `quick_check` and the index verification of their
//!   tables; a table whose rows `DROP COLUMN` rewrote is checked as the
//!   rebuild checks it, by row count and the checksum of every kept column
//!   ([`crate::pipeline::validate::compare_rows`]); foreign keys of every
//!   table whose definition or parent changed; new tables empty; the
//!   schema equal to the source.
//! * The deploy runs the same statements on production in one transaction
//!   under the write lock (`crate::target::live::Swappable::apply_in_place`).

use std::collections::HashSet;

use crate::diff::{self, ChangeKind, SchemaDiff};
use crate::pipeline::alter;
use crate::pipeline::plan::{ColumnSource, Fill, Mappings, Plan};
use crate::pipeline::validate::schema_differences;
use crate::schema::{ColumnKind, Schema, Table};
use crate::sqltext::{self, Token, display_ident, quote_ident};

/// The statements of an in-place migration, in the order they run.
#[derive(Debug, Default, PartialEq)]
struct Statements {
    drops: Vec<String>,
    tables: Vec<String>,
    alters: Vec<String>,
    creates: Vec<String>,
}

/// An in-place migration: its statements, and what validation must know
/// about the tables they touch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InPlace {
    pub statements: Vec<String>,
    /// (production name, source name) of every renamed table.
    pub renamed: Vec<(String, String)>,
    /// Source tables whose rows `DROP COLUMN` rewrote: validated by row
    /// counts and column checksums instead of pages.
    pub rewritten: Vec<String>,
    /// Production tables dropped.
    pub dropped: Vec<String>,
}

impl InPlace {
    /// The name a production table has after the statements (`None`: dropped).
    pub fn name_after(&self, table: &str) -> Option<String> {
        if self.dropped.iter().any(|d| d.eq_ignore_ascii_case(table)) {
            return None;
        }
        Some(
            self.renamed
                .iter()
                .find(|(old, _)| old.eq_ignore_ascii_case(table))
                .map_or(table, |(_, new)| new.as_str())
                .to_string(),
        )
    }

    /// True when a table's rows were rewritten (by its name after).
    pub fn rewrites(&self, table: &str) -> bool {
        self.rewritten.iter().any(|t| t.eq_ignore_ascii_case(table))
    }
}

/// The statements that migrate production in place, or why it must be
/// rebuilt. Order: drops of triggers, views and indexes; renames of tables,
/// then of columns; dropped columns; dropped tables; new tables; added
/// columns; new indexes, views, triggers (each in the source's order).
/// Renames and drops are tried first on an empty copy of the schema
/// ([`alter::simulate`]): what SQLite makes of them must be the source.
pub fn decide(
    prod: &Schema,
    source: &Schema,
    d: &SchemaDiff,
    plan: &Plan,
    mappings: &Mappings,
) -> std::result::Result<InPlace, String> {
    plan_allows(plan, mappings)?;
    if prod.auto_vacuum.unwrap_or(0) != 0 {
        return Err("production uses auto_vacuum, which moves pages".into());
    }
    let alters = alter::alters(prod, plan)?;
    if alters.is_empty() {
        let statements = statements(prod, source, d, &alters)?;
        return Ok(InPlace {
            statements,
            ..InPlace::default()
        });
    }
    let renamed = alter::simulate(prod, &alters.renames)?;
    alter::kept_objects_unchanged(prod, source, &renamed)?;
    let statements = statements(&renamed, source, &diff::diff(&renamed, source), &alters)?;
    let result = alter::simulate(prod, &statements)?;
    let left = schema_differences(&result, source);
    if !left.is_empty() {
        return Err(format!(
            "the statements would not give the source's schema ({})",
            left.join("; ")
        ));
    }
    Ok(InPlace {
        statements,
        renamed: alters.renamed,
        rewritten: alters.rewritten,
        dropped: alters.dropped,
    })
}

/// The statements from `prod` (production with its renames made) to the
/// source, whose diff is `d`, around the renames and drops of `alters`.
fn statements(
    prod: &Schema,
    source: &Schema,
    d: &SchemaDiff,
    alters: &alter::Alters,
) -> std::result::Result<Vec<String>, String> {
    let mut out = Statements::default();
    drops(prod, d, &mut out)?;
    for t in &source.tables {
        if d.of_kind(ChangeKind::TableAdded).any(|c| c.name == t.name) {
            if t.virtual_module.is_some() {
                return Err(format!("new virtual table {}", display_ident(&t.name)));
            }
            out.tables.push(t.raw_sql.clone());
        }
    }
    let dropped_column = |t: &str, c: &str| {
        alters
            .dropped_columns
            .iter()
            .any(|(tt, cc)| tt.eq_ignore_ascii_case(t) && cc.eq_ignore_ascii_case(c))
    };
    for c in &d.changes {
        match c.kind {
            // A new foreign key is checked by `add_columns` (only on an
            // added column with a NULL default).
            ChangeKind::TableChanged
                if !c
                    .details
                    .iter()
                    .all(|d| d.starts_with("foreign key added:")) =>
            {
                return Err(format!(
                    "table {} changed ({})",
                    display_ident(&c.name),
                    c.details.join("; ")
                ));
            }
            ChangeKind::TableChanged => {
                let (Some(a), Some(b)) = (prod.table(&c.name), source.table(&c.name)) else {
                    return Err(format!("table {} not found", display_ident(&c.name)));
                };
                out.alters
                    .extend(add_columns(a, b, &|c| dropped_column(&b.name, c))?);
            }
            ChangeKind::TableRemoved
                if alters
                    .dropped
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&c.name)) => {}
            ChangeKind::ColumnRemoved
                if c.table
                    .as_deref()
                    .is_some_and(|t| dropped_column(t, &c.name)) => {}
            // Header fields: page 1 only, in the same transaction.
            ChangeKind::UserVersionChanged => out
                .alters
                .push(format!("PRAGMA user_version = {}", source.user_version)),
            ChangeKind::ApplicationIdChanged => out
                .alters
                .push(format!("PRAGMA application_id = {}", source.application_id)),
            ChangeKind::TableAdded | ChangeKind::ColumnAdded => {}
            k if is_object_change(k) => {}
            k => return Err(format!("{} {}", k.as_str(), c.name)),
        }
    }
    creates(source, d, &mut out);
    Ok([
        out.drops,
        alters.renames.clone(),
        alters.drop_columns.clone(),
        alters.drop_tables.clone(),
        out.tables,
        out.alters,
        out.creates,
    ]
    .concat())
}

/// Index, view and trigger changes: statements only, no rows.
fn is_object_change(k: ChangeKind) -> bool {
    use ChangeKind::*;
    matches!(
        k,
        IndexAdded
            | IndexRemoved
            | IndexChanged
            | ViewAdded
            | ViewRemoved
            | ViewChanged
            | TriggerAdded
            | TriggerRemoved
            | TriggerChanged
    )
}

/// Only a plan that copies every kept value as it is (renamed or not),
/// with no recipe expression or fill and nothing refused.
fn plan_allows(plan: &Plan, m: &Mappings) -> std::result::Result<(), String> {
    if !(m.expressions.is_empty() && m.fills.is_empty()) {
        return Err("the recipe maps data (map_column or fill)".into());
    }
    if !plan.refusals.is_empty() {
        return Err("the plan refuses the copy".into());
    }
    for t in &plan.tables {
        let plain = t.columns.iter().all(|c| {
            matches!(
                c.source,
                ColumnSource::Copy { .. } | ColumnSource::Default { .. } | ColumnSource::Computed
            ) && c.conversion.is_none()
        });
        if t.fill != Fill::Rows || !plain {
            return Err(format!(
                "table {} is not copied as it is",
                display_ident(&t.table)
            ));
        }
    }
    Ok(())
}

/// DROP statements for removed or changed triggers, views and indexes.
fn drops(prod: &Schema, d: &SchemaDiff, out: &mut Statements) -> std::result::Result<(), String> {
    use ChangeKind::*;
    let gone = |kinds: [ChangeKind; 2]| -> Vec<String> {
        d.changes
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .map(|c| c.name.clone())
            .collect()
    };
    for n in gone([TriggerRemoved, TriggerChanged]) {
        out.drops.push(format!("DROP TRIGGER {}", quote_ident(&n)));
    }
    for n in gone([ViewRemoved, ViewChanged]) {
        out.drops.push(format!("DROP VIEW {}", quote_ident(&n)));
    }
    for n in gone([IndexRemoved, IndexChanged]) {
        if prod.index(&n).is_none_or(|i| !i.is_explicit()) {
            return Err(format!("index {} is not a CREATE INDEX", display_ident(&n)));
        }
        out.drops.push(format!("DROP INDEX {}", quote_ident(&n)));
    }
    Ok(())
}

/// CREATE statements for new or changed indexes, views and triggers.
fn creates(source: &Schema, d: &SchemaDiff, out: &mut Statements) {
    use ChangeKind::*;
    let wanted = |kinds: [ChangeKind; 2], name: &str| {
        d.changes
            .iter()
            .any(|c| kinds.contains(&c.kind) && c.name == name)
    };
    for i in &source.indexes {
        if let (true, Some(sql)) = (wanted([IndexAdded, IndexChanged], &i.name), &i.raw_sql) {
            out.creates.push(sql.clone());
        }
    }
    for v in &source.views {
        if wanted([ViewAdded, ViewChanged], &v.name) {
            out.creates.push(v.raw_sql.clone());
        }
    }
    for t in &source.triggers {
        if wanted([TriggerAdded, TriggerChanged], &t.name) {
            out.creates.push(t.raw_sql.clone());
        }
    }
}

/// `ALTER TABLE … ADD COLUMN` for each column `new` appends to `old`
/// (less the columns `dropped` says are dropped), when SQLite adds it
/// without touching a row and nothing else changed.
fn add_columns(
    old: &Table,
    new: &Table,
    dropped: &dyn Fn(&str) -> bool,
) -> std::result::Result<Vec<String>, String> {
    let name = display_ident(&new.name);
    let kept: Vec<&crate::schema::Column> =
        old.columns.iter().filter(|c| !dropped(&c.name)).collect();
    let same_prefix = kept.len() <= new.columns.len()
        && (kept.len() < old.columns.len() || kept.len() < new.columns.len())
        && kept
            .iter()
            .zip(&new.columns)
            .all(|(a, b)| a.name.eq_ignore_ascii_case(&b.name));
    if !same_prefix {
        return Err(format!("table {name}: columns are not only appended"));
    }
    let added = &new.columns[kept.len()..];
    if added.is_empty() {
        return Ok(Vec::new());
    }
    if old.without_rowid || old.virtual_module.is_some() {
        return Err(format!("table {name} is WITHOUT ROWID or virtual"));
    }
    if old.checks != new.checks || old.uniques != new.uniques || old.primary_key != new.primary_key
    {
        return Err(format!("table {name}: constraints changed"));
    }
    for fk in &new.foreign_keys {
        let on_added = fk.columns.len() == 1
            && added
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&fk.columns[0]));
        if !old.foreign_keys.contains(fk) && !on_added {
            return Err(format!("table {name}: foreign keys changed"));
        }
    }
    let fk_cols: HashSet<String> = new
        .foreign_keys
        .iter()
        .flat_map(|f| f.columns.iter().map(|c| c.to_ascii_lowercase()))
        .collect();
    let mut out = Vec::new();
    for c in added {
        let default = c
            .default
            .as_deref()
            .filter(|d| !d.eq_ignore_ascii_case("NULL"));
        let constant = default
            .is_none_or(|d| !d.starts_with('(') && !d.to_ascii_uppercase().starts_with("CURRENT_"));
        let ok = c.pk == 0
            && c.kind == ColumnKind::Normal
            && c.generated.is_none()
            && constant
            && (!c.not_null || default.is_some())
            && (default.is_none() || !fk_cols.contains(&c.name.to_ascii_lowercase()));
        if !ok {
            return Err(format!(
                "column {name}.{} cannot be added in place",
                display_ident(&c.name)
            ));
        }
        let def = column_definition(new, &c.name)
            .ok_or_else(|| format!("column {name}.{}: definition not found", c.name))?;
        out.push(format!(
            "ALTER TABLE {} ADD COLUMN {def}",
            quote_ident(&new.name)
        ));
    }
    Ok(out)
}

/// The definition of `column` as the table's CREATE statement writes it.
fn column_definition(t: &Table, column: &str) -> Option<String> {
    let tokens = sqltext::tokenize(&t.raw_sql);
    let open = tokens
        .iter()
        .position(|s| matches!(&s.token, Token::Punct(p) if p == "("))?;
    let (items, _) = sqltext::split_parenthesized(&tokens, open);
    items
        .into_iter()
        .find(|item| {
            item.first()
                .and_then(|s| s.token.ident())
                .is_some_and(|n| n.eq_ignore_ascii_case(column))
        })
        .map(sqltext::render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::rehearsal::{rehearse, validate};
    use rusqlite::Connection;
    use std::path::Path;

    #[test]
    fn decide_orders_drops_tables_alters_then_creates() {
        let load = |sql: &str| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s.db");
            Connection::open(&p).unwrap().execute_batch(sql).unwrap();
            Schema::load(&p).unwrap()
        };
        let prod =
            load("CREATE TABLE t(a); CREATE VIEW v AS SELECT a FROM t; CREATE INDEX i ON t(a);");
        let source = load(
            "CREATE TABLE t(a, b TEXT DEFAULT 'x'); CREATE TABLE u(c); CREATE VIEW v2 AS SELECT b FROM t;",
        );
        let d = crate::diff::diff(&prod, &source);
        let plan = Plan::default();
        let got = decide(&prod, &source, &d, &plan, &Mappings::default())
            .unwrap()
            .statements;
        assert_eq!(
            got,
            vec![
                "DROP VIEW \"v\"",
                "DROP INDEX \"i\"",
                "CREATE TABLE u(c)",
                "ALTER TABLE \"t\" ADD COLUMN b TEXT DEFAULT 'x'",
                "CREATE VIEW v2 AS SELECT b FROM t",
            ]
        );
        let typed = load("CREATE TABLE t(a INTEGER);");
        let d = crate::diff::diff(&prod, &typed);
        assert!(decide(&prod, &typed, &d, &plan, &Mappings::default()).is_err());
    }

    /// A database at `dir/name` made by `sql`.
    fn db(dir: &Path, name: &str, sql: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        p
    }

    /// What `decide` says for production `prod_sql`, the source
    /// `source_sql` and `maps`, with the plan it decided on.
    fn decided(
        prod_sql: &str,
        source_sql: &str,
        maps: &Mappings,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Schema,
        Plan,
        std::result::Result<InPlace, String>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let snap = db(dir.path(), "snap.db", prod_sql);
        let src = dir.path().join("source.sql");
        std::fs::write(&src, source_sql).unwrap();
        let source = Schema::load(&src).unwrap();
        let (prod, d, plan) = crate::pipeline::plan::from_copy(&snap, &source, maps).unwrap();
        let got = decide(&prod, &source, &d, &plan, maps);
        (dir, snap, source, plan, got)
    }

    #[test]
    fn decide_renames_a_table_then_its_column() {
        let maps = Mappings {
            table_renames: vec![("a".into(), "a2".into())],
            column_renames: vec![("a2".into(), "y".into(), "w".into())],
            ..Mappings::default()
        };
        let (_dir, _, _, _, got) = decided(
            "CREATE TABLE a(x, y); CREATE TABLE b(z); CREATE VIEW vb AS SELECT z FROM b;
             INSERT INTO a VALUES (1, 2);",
            "CREATE TABLE a2(x, w); CREATE TABLE b(z); CREATE VIEW vb AS SELECT z FROM b;",
            &maps,
        );
        let got = got.unwrap();
        assert_eq!(
            got.statements,
            vec![
                "ALTER TABLE \"a\" RENAME TO \"a2\"",
                "ALTER TABLE \"a2\" RENAME COLUMN \"y\" TO \"w\"",
            ]
        );
        assert_eq!(got.renamed, vec![("a".to_string(), "a2".to_string())]);
        assert!(got.rewritten.is_empty());
    }

    #[test]
    fn decide_refuses_a_rename_that_changes_a_kept_view() {
        let maps = Mappings {
            column_renames: vec![("a".into(), "y".into(), "w".into())],
            ..Mappings::default()
        };
        let (_dir, _, _, _, got) = decided(
            "CREATE TABLE a(x, y); CREATE VIEW va AS SELECT y FROM a;",
            "CREATE TABLE a(x, w); CREATE VIEW va AS SELECT y FROM a;",
            &maps,
        );
        let why = got.unwrap_err();
        assert!(
            why.contains("view va would be changed by the renames"),
            "{why}"
        );
    }

    #[test]
    fn decide_refuses_drop_column_where_sqlite_would() {
        let maps = Mappings::default();
        let prod = "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT UNIQUE, c INT, d INT);
                    CREATE INDEX p_c ON p(c);
                    CREATE TABLE q(a, d); CREATE VIEW vq AS SELECT d FROM q;";
        let kept_q = "CREATE TABLE q(a, d); CREATE VIEW vq AS SELECT d FROM q;";
        for (source, reason) in [
            (
                format!(
                    "CREATE TABLE p(id INTEGER PRIMARY KEY, c INT, d INT); CREATE INDEX p_c ON p(c); {kept_q}"
                ),
                "column p.b is UNIQUE",
            ),
            (
                format!("CREATE TABLE p(id INTEGER PRIMARY KEY, b INT UNIQUE, d INT); {kept_q}"),
                "column p.c is indexed",
            ),
            (
                "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT UNIQUE, c INT, d INT);
                 CREATE INDEX p_c ON p(c);
                 CREATE TABLE q(a); CREATE VIEW vq AS SELECT d FROM q;"
                    .to_string(),
                "SQLite refuses ALTER TABLE \"q\" DROP COLUMN \"d\"",
            ),
        ] {
            let (_dir, _, _, _, got) = decided(prod, &source, &maps);
            let why = got.unwrap_err();
            assert!(why.contains(reason), "{reason}: {why}");
        }
        // The control: a plain column is dropped in place.
        let (_dir, _, _, _, got) = decided(
            prod,
            &format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT UNIQUE, c INT); CREATE INDEX p_c ON p(c); {kept_q}"
            ),
            &maps,
        );
        assert_eq!(
            got.unwrap().statements,
            vec!["ALTER TABLE \"p\" DROP COLUMN \"d\""]
        );
    }

    #[test]
    fn a_planted_value_in_a_table_drop_column_rewrote_fails_its_checksums() {
        let maps = Mappings {
            drop_columns: vec![("t".into(), "gone".into())],
            ..Mappings::default()
        };
        let (dir, snap, source, plan, got) = decided(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, gone TEXT);
             CREATE TABLE u(id INTEGER PRIMARY KEY, w TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, printf('value %d', i), 'x' FROM n;
             INSERT INTO u VALUES (1, 'kept');",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE u(id INTEGER PRIMARY KEY, w TEXT);",
            &maps,
        );
        let fast = got.unwrap();
        assert_eq!(
            fast.statements,
            vec!["ALTER TABLE \"t\" DROP COLUMN \"gone\""]
        );
        assert_eq!(fast.rewritten, vec!["t".to_string()]);
        let reh = dir.path().join("reh.db");
        rehearse(&snap, &reh, &fast.statements).unwrap();
        let report = validate(&snap, &reh, &source, &plan, &fast).unwrap();
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.tables.len(), 1);
        assert_eq!(report.tables[0].rows_found, 2000);
        assert!(report.tables[0].columns_checked.contains(&"v".to_string()));
        // u is still proven by its pages.
        assert!(report.pages_compared.unwrap() >= 1);

        Connection::open(&reh)
            .unwrap()
            .execute("UPDATE t SET v = 'planted' WHERE id = 1000", [])
            .unwrap();
        let report = validate(&snap, &reh, &source, &plan, &fast).unwrap();
        assert!(!report.ok);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("table t: values differ from the snapshot in column(s) v")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_renamed_table_is_proven_by_its_pages_under_its_new_name() {
        let maps = Mappings {
            table_renames: vec![("t".into(), "t2".into())],
            ..Mappings::default()
        };
        let (dir, snap, source, plan, got) = decided(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, printf('value %d', i) FROM n;",
            "CREATE TABLE t2(id INTEGER PRIMARY KEY, v TEXT);",
            &maps,
        );
        let fast = got.unwrap();
        let reh = dir.path().join("reh.db");
        rehearse(&snap, &reh, &fast.statements).unwrap();
        let report = validate(&snap, &reh, &source, &plan, &fast).unwrap();
        assert!(report.ok, "{:?}", report.problems);
        assert!(report.pages_compared.unwrap() >= 1);
        assert!(report.tables.is_empty());
        Connection::open(&reh)
            .unwrap()
            .execute("UPDATE t2 SET v = 'planted' WHERE id = 1000", [])
            .unwrap();
        let report = validate(&snap, &reh, &source, &plan, &fast).unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("differs from the snapshot") && p.contains("table t (")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn an_old_orphan_in_a_renamed_table_is_not_a_new_violation() {
        let maps = Mappings {
            table_renames: vec![("c".into(), "c2".into())],
            ..Mappings::default()
        };
        let (dir, snap, source, plan, got) = decided(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE p(id INTEGER PRIMARY KEY);
             CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
             INSERT INTO c VALUES (1, 9);",
            "CREATE TABLE p(id INTEGER PRIMARY KEY);
             CREATE TABLE c2(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));",
            &maps,
        );
        let fast = got.unwrap();
        let reh = dir.path().join("reh.db");
        rehearse(&snap, &reh, &fast.statements).unwrap();
        let report = validate(&snap, &reh, &source, &plan, &fast).unwrap();
        assert!(report.ok, "{:?}", report.problems);
        // Without the names mapped, the old orphan would look new.
        let unmapped = InPlace {
            renamed: Vec::new(),
            ..fast
        };
        let report = validate(&snap, &reh, &source, &plan, &unmapped).unwrap();
        assert_eq!(report.new_foreign_key_violations.len(), 1);
    }

    #[test]
    fn decide_drops_a_child_table_but_not_a_referenced_one() {
        let prod = "CREATE TABLE p(id INTEGER PRIMARY KEY);
                    CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
                    CREATE TABLE lone(a);";
        let maps = Mappings::default();
        let (_dir, _, _, _, got) = decided(prod, "CREATE TABLE p(id INTEGER PRIMARY KEY);", &maps);
        assert_eq!(
            got.unwrap().statements,
            vec!["DROP TABLE \"c\"", "DROP TABLE \"lone\""]
        );
        let (_dir, _, _, _, got) = decided(
            prod,
            "CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id)); CREATE TABLE lone(a);",
            &maps,
        );
        let why = got.unwrap_err();
        assert!(
            why.contains("table p is referenced by a foreign key of another table"),
            "{why}"
        );
        let (_dir, _, _, _, got) = decided(
            prod,
            "CREATE TABLE p(id INTEGER PRIMARY KEY);
             CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));",
            &maps,
        );
        assert_eq!(got.unwrap().statements, vec!["DROP TABLE \"lone\""]);
    }
}
