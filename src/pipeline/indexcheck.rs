//! Index verification in linear time.
//!
//! `PRAGMA integrity_check` proves that every index matches its table by
//! looking each row up in each index, which costs about three times the whole
//! copy on a large file. Together with `PRAGMA quick_check` (which checks the
//! b-tree structure, NOT NULL and CHECK), this module proves the same thing
//! with sequential scans: for every index, the order-independent checksum of
//! its entries (key values and row identity, read from the index alone as a
//! covering scan) must equal the checksum of the same expressions computed
//! from the table (one scan of the table for all its indexes, partial indexes
//! through `FILTER`; the index side of a partial index is read through its own
//! condition). UNIQUE holds because the index was built by SQLite,
//! which enforces it.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::pipeline::checksum::FUNCTION;
use crate::schema::Schema;
use crate::sqltext::{self, Token, quote_ident};

/// What one index is checked with.
struct IndexSpec {
    name: String,
    /// Key expressions (column names quoted, or expression text).
    keys: Vec<String>,
    /// The partial index's condition.
    filter: Option<String>,
}

/// The key expressions and WHERE of an index, from its CREATE text.
fn parse_index_sql(sql: &str) -> Option<(Vec<String>, Option<String>)> {
    let tokens = sqltext::tokenize(sql);
    let on = tokens.iter().position(|t| t.token.is_kw("ON"))?;
    let open = tokens[on..]
        .iter()
        .position(|t| matches!(&t.token, Token::Punct(p) if p == "("))?
        + on;
    let (items, close) = sqltext::split_parenthesized(&tokens, open);
    let keys = items
        .iter()
        .map(|item| {
            // Drop a trailing ASC/DESC and COLLATE x: they do not change values.
            let mut end = item.len();
            if item
                .last()
                .is_some_and(|t| t.token.is_kw("ASC") || t.token.is_kw("DESC"))
            {
                end -= 1;
            }
            if end >= 2 && item[end - 2].token.is_kw("COLLATE") {
                end -= 2;
            }
            sqltext::render(&item[..end])
        })
        .collect();
    let filter = tokens
        .get(close + 1..)?
        .iter()
        .position(|t| t.token.is_kw("WHERE"))
        .map(|w| sqltext::render(&tokens[close + 2 + w..]));
    Some((keys, filter))
}

/// One table's checks: the scan of the table for every index's expected
/// entries, and each index's own scan.
#[derive(Clone)]
struct TableCheck {
    table: String,
    indexes: Vec<String>,
    /// `SELECT count, checksum, count, checksum, … FROM table NOT INDEXED`.
    expected: String,
    /// `SELECT count(*), checksum FROM table INDEXED BY index`, per index.
    found: Vec<String>,
}

/// A count and an order-independent checksum.
type Sum = (i64, Option<Vec<u8>>);

/// The checks of every index of every ordinary table of `schema`.
fn checks(schema: &Schema) -> Result<Vec<TableCheck>> {
    let mut out = Vec::new();
    for table in schema.tables.iter().filter(|t| t.virtual_module.is_none()) {
        let ident = table.row_identity();
        let mut specs = Vec::new();
        for index in schema
            .indexes
            .iter()
            .filter(|i| i.table.eq_ignore_ascii_case(&table.name))
        {
            let (keys, filter) = match &index.raw_sql {
                Some(sql) => parse_index_sql(sql)
                    .with_context(|| format!("reading the definition of index {}", index.name))?,
                None => (
                    index
                        .columns
                        .iter()
                        .map(|c| quote_ident(c.name.as_deref().unwrap_or("rowid")))
                        .collect(),
                    None,
                ),
            };
            specs.push(IndexSpec {
                name: index.name.clone(),
                keys,
                filter,
            });
        }
        if specs.is_empty() {
            continue;
        }
        let t = quote_ident(&table.name);
        let args = |s: &IndexSpec| -> String {
            let mut a = vec![ident.len().to_string()];
            a.extend(ident.iter().cloned());
            a.extend(s.keys.iter().cloned());
            a.join(", ")
        };
        let mut select = Vec::new();
        let mut found = Vec::new();
        for s in &specs {
            let filter = s
                .filter
                .as_ref()
                .map_or(String::new(), |w| format!(" FILTER (WHERE {w})"));
            select.push(format!("count(*){filter}"));
            select.push(format!("{FUNCTION}({}){filter}", args(s)));
            let filter = s
                .filter
                .as_ref()
                .map_or(String::new(), |w| format!(" WHERE {w}"));
            found.push(format!(
                "SELECT count(*), {FUNCTION}({}) FROM main.{t} INDEXED BY {}{filter}",
                args(s),
                quote_ident(&s.name)
            ));
        }
        out.push(TableCheck {
            table: table.name.clone(),
            indexes: specs.into_iter().map(|s| s.name).collect(),
            expected: format!("SELECT {} FROM main.{t} NOT INDEXED", select.join(", ")),
            found,
        });
    }
    Ok(out)
}

/// The table's side: one scan for all its indexes.
fn expected(conn: &Connection, c: &TableCheck) -> Result<Vec<Sum>> {
    conn.query_row(&c.expected, [], |r| {
        (0..c.indexes.len())
            .map(|i| Ok((r.get(2 * i)?, r.get(2 * i + 1)?)))
            .collect()
    })
    .with_context(|| format!("scanning table {}", c.table))
}

/// The indexes' side: each index read alone, as a covering scan.
fn found(conn: &Connection, c: &TableCheck) -> Result<Vec<Sum>> {
    c.found
        .iter()
        .zip(&c.indexes)
        .map(|(sql, name)| {
            conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .with_context(|| format!("scanning index {name}"))
        })
        .collect()
}

fn compare(c: &TableCheck, expected: &[Sum], found: &[Sum], problems: &mut Vec<String>) {
    for ((name, (rows, sum)), (found_rows, found_sum)) in c.indexes.iter().zip(expected).zip(found)
    {
        if found_rows != rows {
            problems.push(format!(
                "index {name} has {found_rows} entries, its table {} has {rows} matching rows",
                c.table
            ));
        } else if found_sum.as_deref().unwrap_or_default() != sum.as_deref().unwrap_or_default() {
            problems.push(format!(
                "index {name} does not match the content of table {}",
                c.table
            ));
        }
    }
}

/// Checks every index of every ordinary table of `main`. Returns the
/// problems found (empty: every index matches its table).
pub fn verify(conn: &Connection, schema: &Schema) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for c in checks(schema)? {
        compare(&c, &expected(conn, &c)?, &found(conn, &c)?, &mut problems);
    }
    Ok(problems)
}

/// [`verify`] on two cores: the indexes are read by a second read-only
/// connection to `path` (the file `conn` has open) on another thread while
/// `conn` scans the tables.
pub fn verify_beside(conn: &Connection, path: &Path, schema: &Schema) -> Result<Vec<String>> {
    let checks = checks(schema)?;
    let (path, theirs) = (path.to_path_buf(), checks.clone());
    let indexes = std::thread::spawn(move || -> Result<Vec<Vec<Sum>>> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        crate::pipeline::checksum::register(&conn)?;
        theirs.iter().map(|c| found(&conn, c)).collect()
    });
    let expected: Vec<Vec<Sum>> = checks
        .iter()
        .map(|c| expected(conn, c))
        .collect::<Result<_>>()?;
    let found = indexes
        .join()
        .map_err(|_| anyhow::anyhow!("the index scan thread panicked"))??;
    let mut problems = Vec::new();
    for ((c, e), f) in checks.iter().zip(&expected).zip(&found) {
        compare(c, e, f, &mut problems);
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(sql: &str) -> (Connection, Schema) {
        let conn = Connection::open_in_memory().unwrap();
        crate::pipeline::checksum::register(&conn).unwrap();
        conn.execute_batch(sql).unwrap();
        let schema = Schema::read(&conn, "main").unwrap();
        (conn, schema)
    }

    #[test]
    fn sound_indexes_pass_and_a_broken_one_is_found() {
        let (conn, schema) = checked(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE UNIQUE, b INT, c TEXT);
             CREATE INDEX tb ON t(b DESC) WHERE b > 1;
             CREATE INDEX tl ON t(lower(c), b);
             CREATE TABLE w(k TEXT PRIMARY KEY, v INT) WITHOUT ROWID;
             CREATE INDEX wv ON w(v);
             INSERT INTO t VALUES (1, 'x', 1, 'A'), (2, 'y', 5, 'B'), (3, 'z', 7, NULL);
             INSERT INTO w VALUES ('p', 1), ('q', 2);",
        );
        assert_eq!(verify(&conn, &schema).unwrap(), Vec::<String>::new());
        // Make index tl disagree with its table behind SQLite's back: its
        // entries hold lower(c), the definition now says upper(c).
        conn.execute_batch(
            "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX tl ON t(upper(c), b)' WHERE name = 'tl'; PRAGMA writable_schema = RESET;",
        )
        .unwrap();
        let schema = Schema::read(&conn, "main").unwrap();
        let problems = verify(&conn, &schema).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("index tl"), "{problems:?}");
        assert!(
            !crate::pipeline::check::health(&conn, false)
                .unwrap()
                .integrity
                .is_empty(),
            "integrity_check agrees"
        );
    }

    #[test]
    fn parses_keys_and_conditions() {
        let (keys, filter) = parse_index_sql(
            "CREATE UNIQUE INDEX i ON t(lower(a) COLLATE NOCASE, b DESC) WHERE a IS NOT NULL",
        )
        .unwrap();
        assert_eq!(keys, vec!["lower(a)", "b"]);
        assert_eq!(filter.as_deref(), Some("a IS NOT NULL"));
    }
}
