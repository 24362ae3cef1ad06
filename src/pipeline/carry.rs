//! Unchanged indexes carried over from the snapshot instead of rebuilt.
//!
//! `CREATE INDEX` scans its whole table and sorts every entry; on a large
//! table that is most of a rebuild's time. An index that is the same in
//! production and in the source, over columns that the copy takes value for
//! value (same affinity and collation) from a table whose rows keep their
//! rowids, has exactly the entries of production's index, already in order.
//! Such an index is written by reading production's index in key order into
//! an empty b-tree:
//!
//! 1. a staging `WITHOUT ROWID` table gives the new file an empty b-tree of
//!    the index kind;
//! 2. imposter tables (SQLite's own way of reading and writing an index
//!    b-tree as a table, used by its RBU extension and the CLI's
//!    `.imposter`) over that b-tree and over the snapshot's index, and one
//!    `INSERT INTO new SELECT * FROM old` between them, which SQLite runs as
//!    its transfer optimization (the one `VACUUM` uses): each entry copied
//!    as it is stored, in order, into pages filled as a bulk load;
//! 3. the staging row of `sqlite_schema` becomes the index's row (its name,
//!    table and `CREATE INDEX` text), under `PRAGMA writable_schema`, and
//!    `PRAGMA writable_schema = RESET` reloads the schema.
//!
//! Nothing here is taken on trust: validation verifies every index entry by
//! entry against its table ([`crate::pipeline::indexcheck`]) and compares
//! the schema with the source, so an index carried wrongly stops the run
//! with production unchanged. UNIQUE indexes are always built by SQLite,
//! which enforces their uniqueness. The one `unsafe` block here is the
//! test control's call (`imposter_table`).

use std::ffi::c_int;

use anyhow::{Result, bail};
use rusqlite::{Connection, ffi, params};

use crate::pipeline::copy::SNAPSHOT_SCHEMA;
use crate::pipeline::indexcheck::parse_index_sql;
use crate::pipeline::plan::{ColumnSource, Fill, Plan, TablePlan};
use crate::schema::{ColumnKind, Index, Schema, Table};
use crate::sqltext::{self, display_ident, quote_ident};

/// The prefix of the staging tables' names (and their imposters').
const STAGING: &str = "sqlmorph_carry_";

/// An index to carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct Carry {
    pub index: String,
    pub table: String,
    /// The `CREATE INDEX` text SQLite stores for it (the source's).
    sql: String,
    /// The key's collations and directions, in order.
    keys: Vec<(String, bool)>,
}

/// How `index` of `source` can be carried over from `prod`'s index of the
/// same name, or `None` when SQLite must build it.
pub fn plan_carry(index: &Index, plan: &Plan, prod: &Schema, source: &Schema) -> Option<Carry> {
    // The staging tables' names must be free on both sides.
    let taken = |s: &Schema| {
        s.tables
            .iter()
            .any(|t| t.name.to_ascii_lowercase().starts_with(STAGING))
    };
    if taken(prod) || taken(source) {
        return None;
    }
    let old = prod.index(&index.name)?;
    let same_index = index.is_explicit()
        && old.is_explicit()
        && !index.unique
        && !old.unique
        && index.sql == old.sql
        && index.columns == old.columns
        && index.partial == old.partial
        && old.table.eq_ignore_ascii_case(&index.table);
    if !same_index {
        return None;
    }
    let tp = plan
        .tables
        .iter()
        .find(|t| t.table.eq_ignore_ascii_case(&index.table))?;
    // The rows must come from the table the old index indexed.
    let from = tp.from.as_deref()?;
    if !from.eq_ignore_ascii_case(&old.table) {
        return None;
    }
    let new_table = source.table(&index.table)?;
    let old_table = prod.table(from)?;
    if !keeps_rowids(tp, new_table, old_table) {
        return None;
    }
    let (_, filter) = parse_index_sql(index.raw_sql.as_deref()?)?;
    let mut columns: Vec<String> = Vec::new();
    for c in &index.columns {
        columns.push(c.name.clone()?);
    }
    if let Some(f) = &filter {
        columns.extend(named_columns(f, new_table));
    }
    if !columns
        .iter()
        .all(|c| copied_as_is(c, tp, new_table, old_table))
    {
        return None;
    }
    Some(Carry {
        index: index.name.clone(),
        table: index.table.clone(),
        sql: index.raw_sql.clone()?,
        keys: index
            .columns
            .iter()
            .map(|c| (c.collation.clone(), c.desc))
            .collect(),
    })
}

/// True when the copy gives every row of the table the rowid it has in the
/// snapshot: the rowid is copied explicitly, or the `INTEGER PRIMARY KEY`
/// is, value for value, from the old one.
fn keeps_rowids(tp: &TablePlan, new_table: &Table, old_table: &Table) -> bool {
    let ordinary = |t: &Table| !t.without_rowid && t.virtual_module.is_none();
    if tp.fill != Fill::Rows || !ordinary(new_table) || !ordinary(old_table) {
        return false;
    }
    if new_table.strict != old_table.strict {
        return false;
    }
    let aliased = || {
        old_table.rowid_alias
            && new_table.rowid_alias
            && old_table.primary_key.first().is_some_and(|alias| {
                new_table
                    .primary_key
                    .first()
                    .is_some_and(|k| k.eq_ignore_ascii_case(alias))
                    && copied_as_is(alias, tp, new_table, old_table)
            })
    };
    tp.copy_rowid || aliased()
}

/// True when column `name` of the new table is the old table's column of
/// the same name, copied value for value, stored with the same affinity and
/// compared with the same collation.
fn copied_as_is(name: &str, tp: &TablePlan, new_table: &Table, old_table: &Table) -> bool {
    let copied = tp.columns.iter().any(|c| {
        c.name.eq_ignore_ascii_case(name)
            && matches!(&c.source, ColumnSource::Copy { from } if from.eq_ignore_ascii_case(name))
    });
    match (new_table.column_named(name), old_table.column_named(name)) {
        (Some(new), Some(old)) => {
            copied
                && new.kind == ColumnKind::Normal
                && old.kind == ColumnKind::Normal
                && new.affinity.eq_ignore_ascii_case(&old.affinity)
                && new.collation.eq_ignore_ascii_case(&old.collation)
        }
        _ => false,
    }
}

/// The table's columns that an expression names (any token that can name a
/// column and is a column's name counts, a string literal too: erring on
/// the side of more columns to check).
fn named_columns(expr: &str, table: &Table) -> Vec<String> {
    sqltext::tokenize(expr)
        .iter()
        .filter_map(|t| table.column_named(t.token.ident()?))
        .map(|c| c.name.clone())
        .collect()
}

impl Carry {
    /// The staging table's name for the `n`th carried index.
    fn staging(n: usize) -> String {
        format!("{STAGING}{n}")
    }

    /// The key columns and the rowid, declared for the staging and imposter
    /// tables, and their PRIMARY KEY (the index's order). No column has an
    /// affinity: entries are copied as they are stored.
    fn definition(&self) -> String {
        let mut defs = Vec::new();
        let mut key = Vec::new();
        for (n, (collation, desc)) in self.keys.iter().enumerate() {
            defs.push(format!("c{n} COLLATE {}", quote_ident(collation)));
            key.push(format!("c{n}{}", if *desc { " DESC" } else { "" }));
        }
        defs.push("rid".to_string());
        key.push("rid".to_string());
        format!("{}, PRIMARY KEY({})", defs.join(", "), key.join(", "))
    }

    /// Steps 1 and 2, inside the copy's transaction (the snapshot
    /// attached): the `n`th carried index's empty b-tree, and imposters
    /// over it and over the snapshot's index; returns the `INSERT` that
    /// copies the entries.
    pub fn stage(&self, conn: &Connection, n: usize) -> Result<String> {
        let staging = Carry::staging(n);
        let definition = self.definition();
        conn.execute_batch(&format!(
            "CREATE TABLE main.{}({definition}) WITHOUT ROWID",
            quote_ident(&staging)
        ))?;
        let root = |schema: &str, kind: &str, name: &str| -> rusqlite::Result<i64> {
            conn.query_row(
                &format!(
                    "SELECT rootpage FROM {}.sqlite_schema WHERE type = ?1 AND name = ?2",
                    quote_ident(schema)
                ),
                [kind, name],
                |r| r.get(0),
            )
        };
        let new_root = root("main", "table", &staging)?;
        let old_root = root(SNAPSHOT_SCHEMA, "index", &self.index)?;
        // No schema name in the CREATE: SQLite reads it as a schema entry.
        let create = |name: &str| {
            format!(
                "CREATE TABLE {}({definition}) WITHOUT ROWID",
                quote_ident(name)
            )
        };
        let (new, old) = (format!("{staging}_new"), format!("{staging}_old"));
        imposter_table(conn, "main", Imposter::Writable, new_root, &create(&new))?;
        imposter_table(
            conn,
            SNAPSHOT_SCHEMA,
            Imposter::ReadOnly,
            old_root,
            &create(&old),
        )?;
        Ok(format!(
            "INSERT INTO main.{} SELECT * FROM {}.{}",
            quote_ident(&new),
            quote_ident(SNAPSHOT_SCHEMA),
            quote_ident(&old)
        ))
    }
}

/// Step 3, inside the transaction that staged them: each staging table's
/// row becomes its index's row. The schema is reloaded by [`reload`].
pub fn install(conn: &Connection, carried: &[Carry]) -> Result<()> {
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    let installed = carried.iter().enumerate().try_for_each(|(n, c)| {
        let changed = conn.execute(
            "UPDATE main.sqlite_schema SET type = 'index', name = ?1, tbl_name = ?2, sql = ?3 \
             WHERE type = 'table' AND name = ?4",
            params![c.index, c.table, c.sql, Carry::staging(n)],
        )?;
        if changed != 1 {
            bail!(
                "carrying index {} over: its staging table is missing",
                c.index
            );
        }
        Ok(())
    });
    conn.execute_batch("PRAGMA writable_schema = OFF")?;
    installed
}

/// Reloads the schema after [`install`] (and forgets the imposters): to
/// be run once the transaction is committed and the snapshot detached.
pub fn reload(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA writable_schema = RESET")?;
    conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

/// Adds to validation's findings about a carried index (in `carried`)
/// where its entries came from: a mismatch there is production's own index
/// disagreeing with its table, which SQLite does not notice until asked.
pub fn explain(findings: &mut [String], carried: &[String]) {
    for finding in findings.iter_mut() {
        let named = carried.iter().find(|name| {
            let name = display_ident(name);
            finding.contains(&format!("index {name} does not match"))
                || finding.contains(&format!("index {name} has "))
        });
        if let Some(name) = named {
            finding.push_str(&format!(
                " (the index was carried over unchanged from production's {0}: \
                 run `sqlmorph check` on production; `REINDEX {0}` there repairs it)",
                display_ident(name)
            ));
        }
    }
}

/// How an imposter table may be used (SQLite's `imposterTable` values).
#[derive(Clone, Copy)]
enum Imposter {
    Writable = 1,
    ReadOnly = 2,
}

/// Creates an imposter table over b-tree `root` of `schema` with `create`
/// (`sqlite3_test_control(SQLITE_TESTCTRL_IMPOSTER)`, as the CLI's
/// `.imposter` does). It lives in the connection's schema only, until the
/// schema is reloaded or detached; dropping it would free the b-tree, so
/// nothing does.
#[allow(unsafe_code)]
fn imposter_table(
    conn: &Connection,
    schema: &str,
    mode: Imposter,
    root: i64,
    create: &str,
) -> Result<()> {
    let Ok(root) = c_int::try_from(root) else {
        bail!("page {root} is beyond an imposter's reach");
    };
    let schema = std::ffi::CString::new(schema)?;
    // SAFETY: the handle is the live connection's, used on its thread; the
    // test control reads (sqlite3*, const char*, int, int), which these are,
    // and `schema` is NUL-terminated and outlives the calls.
    let db = unsafe { conn.handle() };
    unsafe {
        ffi::sqlite3_test_control(
            ffi::SQLITE_TESTCTRL_IMPOSTER,
            db,
            schema.as_ptr(),
            mode as c_int,
            root,
        );
    }
    let created = conn.execute_batch(create);
    // SAFETY: as above. 0, 0 ends imposter mode and keeps the schema; it is
    // given `main` because SQLite also keeps the schema named here as the
    // one that unqualified CREATE statements go to.
    unsafe {
        ffi::sqlite3_test_control(
            ffi::SQLITE_TESTCTRL_IMPOSTER,
            db,
            c"main".as_ptr(),
            0 as c_int,
            0 as c_int,
        );
    }
    Ok(created?)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::pipeline::copy::{self, FileSettings};
    use crate::pipeline::plan::Mappings;

    /// A database at `dir/name` made by `sql`.
    fn db(dir: &Path, name: &str, sql: &str) -> PathBuf {
        let p = dir.join(name);
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        p
    }

    /// The names of the indexes of `source` that would be carried over
    /// from a production made by `prod_sql`.
    fn carried(prod_sql: &str, source_sql: &str) -> Vec<String> {
        carried_with(prod_sql, source_sql, &Mappings::default())
    }

    fn carried_with(prod_sql: &str, source_sql: &str, maps: &Mappings) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let prod = db(dir.path(), "prod.db", prod_sql);
        let source = Schema::load(&db(dir.path(), "source.db", source_sql)).unwrap();
        let (prod_schema, _, plan) =
            crate::pipeline::plan::from_copy(&prod, &source, maps).unwrap();
        source
            .indexes
            .iter()
            .filter_map(|i| plan_carry(i, &plan, &prod_schema, &source))
            .map(|c| c.index)
            .collect()
    }

    #[test]
    fn an_index_is_carried_only_when_its_entries_are_the_snapshots() {
        let prod = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT COLLATE NOCASE, gone BLOB);
                    CREATE TABLE r(k TEXT, v INT);
                    CREATE TABLE w(k TEXT PRIMARY KEY, v INT) WITHOUT ROWID;
                    CREATE TABLE n(x INT, v INT);";
        let same = "CREATE INDEX t_a ON t(a);
                    CREATE INDEX t_ab ON t(a DESC, b COLLATE RTRIM);
                    CREATE INDEX t_part ON t(a) WHERE b > 10;
                    CREATE INDEX t_c ON t(c);
                    CREATE INDEX t_expr ON t(lower(a));
                    CREATE UNIQUE INDEX t_u ON t(a, id);
                    CREATE INDEX r_v ON r(v);
                    CREATE INDEX w_v ON w(v);
                    CREATE INDEX n_v ON n(v);";
        // The table keeps its rows (a column is dropped, one added): the
        // plain indexes are carried, also without an INTEGER PRIMARY KEY
        // (the rowid is copied), not an expression, UNIQUE or WITHOUT ROWID.
        let source = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT COLLATE NOCASE, e TEXT DEFAULT 'x');
                      CREATE TABLE r(k TEXT, v INT, e INT);
                      CREATE TABLE w(k TEXT PRIMARY KEY, v INT, e INT) WITHOUT ROWID;
                      CREATE TABLE n(x INTEGER PRIMARY KEY, v INT);";
        let got = carried(&format!("{prod} {same}"), &format!("{source} {same}"));
        assert_eq!(got, ["r_v", "t_a", "t_ab", "t_c", "t_part"]);

        // n: the new INTEGER PRIMARY KEY gives the rows new rowids.
        assert!(!got.contains(&"n_v".to_string()));

        let changed = |table: &str| {
            carried(
                &format!("{prod} {same}"),
                &format!("{} {same}", source.replace(
                    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT COLLATE NOCASE, e TEXT DEFAULT 'x');",
                    table,
                )),
            )
        };
        // A type change of the key: its values are converted.
        let typed = changed(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b INT, c TEXT COLLATE NOCASE);",
        );
        assert_eq!(typed, ["r_v", "t_c"]);
        // A type change of a column only the partial index's WHERE reads.
        let where_typed = changed(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT COLLATE NOCASE);",
        );
        assert_eq!(where_typed, ["r_v", "t_a", "t_c"]);
        // Another collation of the key column: another order.
        let collated = changed("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT);");
        assert_eq!(collated, ["r_v", "t_a", "t_ab", "t_part"]);
        // STRICT on one side only.
        let strict = changed(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT COLLATE NOCASE) STRICT;",
        );
        assert_eq!(strict, ["r_v"]);

        // Another definition under the same name.
        let redefined = carried(
            &format!("{prod} {same}"),
            &format!(
                "{source} {}",
                same.replace("t_a ON t(a);", "t_a ON t(a DESC);")
            ),
        );
        assert!(!redefined.contains(&"t_a".to_string()));
        // A table named like the staging tables: nothing is carried.
        let clash = carried(
            &format!("{prod} {same}"),
            &format!("{source} {same} CREATE TABLE sqlmorph_carry_0(x);"),
        );
        assert!(clash.is_empty(), "{clash:?}");
        // An index new in the source is built.
        let fresh = carried(prod, &format!("{source} {same}"));
        assert!(fresh.is_empty(), "{fresh:?}");

        // The table's rows come from another table (renamed onto it): the
        // index of the same name indexed the old table's rows.
        let table = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); CREATE INDEX t_a ON t(a);";
        let maps = Mappings {
            table_renames: vec![("x".to_string(), "t".to_string())],
            drop_tables: vec!["t".to_string()],
            ..Mappings::default()
        };
        let renamed = carried_with(
            &format!("{table} CREATE TABLE x(id INTEGER PRIMARY KEY, a TEXT);"),
            table,
            &maps,
        );
        assert!(renamed.is_empty(), "{renamed:?}");
    }

    /// Copies production (`prod`) into `source_sql` the way a rebuild does,
    /// carrying what can be carried (`carry` false: every index built by
    /// SQLite); returns the new file and what was carried.
    fn rebuild(
        dir: &Path,
        name: &str,
        prod: &Path,
        source_sql: &str,
        carry: bool,
    ) -> (PathBuf, Vec<String>) {
        let source = Schema::load(&db(dir, &format!("{name}.source.db"), source_sql)).unwrap();
        let (prod_schema, _, plan) =
            crate::pipeline::plan::from_copy(prod, &source, &Mappings::default()).unwrap();
        let carried: Vec<Carry> = source
            .indexes
            .iter()
            .filter(|_| carry)
            .filter_map(|i| plan_carry(i, &plan, &prod_schema, &source))
            .collect();
        let settings = FileSettings::of(&Connection::open(prod).unwrap())
            .unwrap()
            .for_target(&source);
        let out = dir.join(name);
        let mut conn = copy::create_tables(&source, settings, &out, prod).unwrap();
        let stats =
            copy::copy_data(&mut conn, &plan, &prod_schema, &source, prod, dir, false).unwrap();
        copy::finish_schema(&mut conn, &source, settings, &stats, &carried, false).unwrap();
        drop(conn);
        (out, carried.into_iter().map(|c| c.index).collect())
    }

    /// Every index's entries in its own order, read as a covering scan.
    fn entries(path: &Path, index: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let conn = Connection::open(path).unwrap();
        let (table, cols): (String, Vec<String>) = {
            let table: String = conn
                .query_row(
                    "SELECT tbl_name FROM sqlite_schema WHERE name = ?1",
                    [index],
                    |r| r.get(0),
                )
                .unwrap();
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .unwrap();
            let cols = stmt
                .query_map([index], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (table, cols)
        };
        let filter: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = ?1",
                [index],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .and_then(|sql| parse_index_sql(&sql).and_then(|(_, f)| f));
        let sql = format!(
            "SELECT {}, rowid FROM {} INDEXED BY {}{}",
            cols.iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote_ident(&table),
            quote_ident(index),
            filter.map_or_else(String::new, |f| format!(" WHERE {f}"))
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn column_strings(path: &Path, sql: &str) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_carried_index_is_the_one_sqlite_builds_entry_for_entry_and_page_for_page() {
        for auto_vacuum in ["NONE", "FULL"] {
            let dir = tempfile::tempdir().unwrap();
            let indexes = "CREATE INDEX t_a ON t(a);
                 CREATE INDEX t_bd ON t(b DESC, d COLLATE RTRIM);
                 CREATE INDEX t_part ON t(c) WHERE c > 10 AND d IS NOT NULL;
                 CREATE INDEX t_expr ON t(lower(d));
                 CREATE INDEX r_v ON r(v);";
            let prod = db(
                dir.path(),
                "prod.db",
                &format!(
                    "PRAGMA auto_vacuum = {auto_vacuum};
                     CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE, b REAL, c INT, d TEXT, x BLOB);
                     CREATE TABLE r(k TEXT, v NUMERIC);
                     {indexes}
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
                     INSERT INTO t SELECT i * 3,
                         CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN 'Name ' || (i % 97) ELSE 'name ' || (i % 89) END,
                         CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 300) / 2.0 END,
                         i % 50, CASE WHEN i % 7 = 0 THEN NULL ELSE 'd' || (i % 13) || '  ' END,
                         randomblob(20) FROM n;
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                     INSERT INTO r SELECT 'k' || i, CASE i % 3 WHEN 0 THEN i WHEN 1 THEN i / 4.0 ELSE 'text' END FROM n;
                     DELETE FROM r WHERE rowid % 11 = 0;"
                ),
            );
            let source = format!(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE, b REAL, c INT, d TEXT, e TEXT DEFAULT 'new');
                 CREATE TABLE r(k TEXT, v NUMERIC, e INT);
                 {indexes}"
            );
            let (carried, names) = rebuild(dir.path(), "carried.db", &prod, &source, true);
            let (built, none) = rebuild(dir.path(), "built.db", &prod, &source, false);
            assert_eq!(names, ["r_v", "t_a", "t_bd", "t_part"], "{auto_vacuum}");
            assert!(none.is_empty());
            for path in [&carried, &built] {
                assert_eq!(column_strings(path, "PRAGMA integrity_check"), ["ok"]);
            }
            let schema = "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || sql FROM sqlite_schema ORDER BY rowid";
            assert_eq!(
                column_strings(&carried, schema),
                column_strings(&built, schema)
            );
            for index in ["t_a", "t_bd", "t_part", "r_v"] {
                let got = entries(&carried, index);
                assert!(got.len() > 1000, "{index}: {}", got.len());
                assert_eq!(got, entries(&built, index), "{index}");
            }
            // Written as a bulk load: as many pages as SQLite's own build,
            // but for t_bd. Its entries are production's byte for byte, and
            // there (index kept up by INSERTs) SQLite stored b's integral
            // REAL values as 8-byte reals, where CREATE INDEX stores them as
            // integers: equal values either way, in a few more pages.
            let pages = "SELECT name || ' ' || count(*) FROM dbstat WHERE name <> 't_bd' GROUP BY name ORDER BY name";
            assert_eq!(
                column_strings(&carried, pages),
                column_strings(&built, pages),
                "{auto_vacuum}"
            );
        }
    }
}
