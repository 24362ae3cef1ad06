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

use anyhow::{Context, Result};
use rusqlite::Connection;

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

/// Checks every index of every ordinary table of `main`. Returns the
/// problems found (empty: every index matches its table).
pub fn verify(conn: &Connection, schema: &Schema) -> Result<Vec<String>> {
    let mut problems = Vec::new();
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
        // One scan of the table for every index's expected entries.
        let mut select = Vec::new();
        for s in &specs {
            let filter = s
                .filter
                .as_ref()
                .map_or(String::new(), |w| format!(" FILTER (WHERE {w})"));
            select.push(format!("count(*){filter}"));
            select.push(format!("{FUNCTION}({}){filter}", args(s)));
        }
        let expected: Vec<(i64, Option<Vec<u8>>)> = conn
            .query_row(
                &format!("SELECT {} FROM main.{t} NOT INDEXED", select.join(", ")),
                [],
                |r| {
                    (0..specs.len())
                        .map(|i| Ok((r.get(2 * i)?, r.get(2 * i + 1)?)))
                        .collect()
                },
            )
            .with_context(|| format!("scanning table {}", table.name))?;
        for (s, (rows, sum)) in specs.iter().zip(expected) {
            let filter = s
                .filter
                .as_ref()
                .map_or(String::new(), |w| format!(" WHERE {w}"));
            let (found_rows, found_sum): (i64, Option<Vec<u8>>) = conn
                .query_row(
                    &format!(
                        "SELECT count(*), {FUNCTION}({}) FROM main.{t} INDEXED BY {}{filter}",
                        args(s),
                        quote_ident(&s.name)
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .with_context(|| format!("scanning index {}", s.name))?;
            if found_rows != rows {
                problems.push(format!(
                    "index {} has {found_rows} entries, its table {} has {rows} matching rows",
                    s.name, table.name
                ));
            } else if found_sum.unwrap_or_default() != sum.unwrap_or_default() {
                problems.push(format!(
                    "index {} does not match the content of table {}",
                    s.name, table.name
                ));
            }
        }
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
