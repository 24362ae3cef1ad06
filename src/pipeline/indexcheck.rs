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
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::pipeline::checksum::{FUNCTION, TableSums};
use crate::schema::Schema;
use crate::sqltext::{self, Token, quote_ident};

/// What one index is checked with.
struct IndexSpec {
    name: String,
    /// Key expressions (column names quoted, or expression text).
    keys: Vec<String>,
    /// The partial index's condition.
    filter: Option<String>,
    /// The table's columns the keys are, when every key is a plain column
    /// and the index is not partial: its expected sum is then those
    /// columns' sums ([`Fusion`]).
    columns: Option<Vec<String>>,
}

/// The key expressions and WHERE of an index, from its CREATE text.
pub(crate) fn parse_index_sql(sql: &str) -> Option<(Vec<String>, Option<String>)> {
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

/// The table's column that the index key `key` (as [`parse_index_sql`]
/// renders it) is, if it is one: a single identifier naming a column.
fn column_named(table: &crate::schema::Table, key: &str) -> Option<String> {
    let tokens = sqltext::tokenize(key);
    let [token] = tokens.as_slice() else {
        return None;
    };
    let name = match &token.token {
        Token::Word(w) | Token::Quoted(w) => w,
        _ => return None,
    };
    table.column_named(name).map(|c| c.name.clone())
}

/// One table's checks: the aggregates a scan of the table computes for
/// every index's expected entries, and each index's own scan.
#[derive(Clone)]
struct TableCheck {
    table: String,
    /// The row identity the index sums are keyed by (`rowid`, or the
    /// primary key of a WITHOUT ROWID table), and for a rowid table with
    /// an INTEGER PRIMARY KEY, that column too (the same values).
    identities: Vec<Vec<String>>,
    /// Per index, [`IndexSpec::columns`].
    columns: Vec<Option<Vec<String>>>,
    indexes: Vec<String>,
    /// `count(*) FILTER (…), checksum(…) FILTER (…)` per index, over the
    /// table read NOT INDEXED.
    items: Vec<String>,
    /// `SELECT count(*), checksum FROM table INDEXED BY index`, per index.
    found: Vec<String>,
}

/// A count and an order-independent checksum.
pub type Sum = (i64, Option<Vec<u8>>);

/// The sums of each index, read from the index alone, table by table.
pub struct IndexSums(Vec<Vec<Sum>>);

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
            let columns = match filter {
                None => keys.iter().map(|k| column_named(table, k)).collect(),
                Some(_) => None,
            };
            specs.push(IndexSpec {
                name: index.name.clone(),
                keys,
                filter,
                columns,
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
        let mut items = Vec::new();
        let mut found = Vec::new();
        for s in &specs {
            let filter = s
                .filter
                .as_ref()
                .map_or(String::new(), |w| format!(" FILTER (WHERE {w})"));
            items.push(format!("count(*){filter}"));
            items.push(format!("{FUNCTION}({}){filter}", args(s)));
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
        let alias = table
            .rowid_alias
            .then(|| table.primary_key.first().map(|c| quote_ident(c)));
        out.push(TableCheck {
            table: table.name.clone(),
            identities: std::iter::once(ident)
                .chain(alias.flatten().map(|a| vec![a]))
                .collect(),
            columns: specs.iter().map(|s| s.columns.clone()).collect(),
            indexes: specs.into_iter().map(|s| s.name).collect(),
            items,
            found,
        });
    }
    Ok(out)
}

/// The table's side: one scan for all its indexes, the values of its items.
fn table_values(conn: &Connection, c: &TableCheck) -> Result<Vec<Value>> {
    let sql = format!(
        "SELECT {} FROM main.{} NOT INDEXED",
        c.items.join(", "),
        quote_ident(&c.table)
    );
    conn.query_row(&sql, [], |r| {
        (0..c.items.len())
            .map(|i| r.get(i))
            .collect::<rusqlite::Result<Vec<Value>>>()
    })
    .with_context(|| format!("scanning table {}", c.table))
}

/// The expected sums of `c` from the values of its items.
fn sums_of(c: &TableCheck, values: &[Value]) -> Result<Vec<Sum>> {
    let odd = || {
        anyhow!(
            "the scan of table {} did not return its index sums",
            c.table
        )
    };
    if values.len() != c.items.len() {
        return Err(odd());
    }
    values
        .chunks_exact(2)
        .map(|pair| match pair {
            [Value::Integer(n), Value::Blob(b)] => Ok((*n, Some(b.clone()))),
            [Value::Integer(n), Value::Null] => Ok((*n, None)),
            _ => Err(odd()),
        })
        .collect()
}

/// The indexes' side: each index read alone, as a covering scan.
fn found(conn: &Connection, c: &TableCheck) -> Result<Vec<Sum>> {
    (0..c.indexes.len())
        .map(|i| read_index(conn, c, i))
        .collect()
}

/// The `i`th index of `c` read alone.
fn read_index(conn: &Connection, c: &TableCheck, i: usize) -> Result<Sum> {
    conn.query_row(&c.found[i], [], |r| Ok((r.get(0)?, r.get(1)?)))
        .with_context(|| format!("scanning index {}", c.indexes[i]))
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

/// The verification of every index of every ordinary table of a schema,
/// in two halves that may run on different threads: the tables' side,
/// which a caller can fuse into its own scan of a table
/// ([`Verification::fusion`]), and the indexes' side
/// ([`Verification::scan_indexes`], [`Verification::queue`]).
#[derive(Clone)]
pub struct Verification(Vec<TableCheck>);

impl Verification {
    pub fn of(schema: &Schema) -> Result<Verification> {
        Ok(Verification(checks(schema)?))
    }

    /// The [`Fusion`] of `table`'s indexes into a checksum scan keyed by
    /// `key` that sums `columns` (their names, in the scan's order).
    pub fn fusion(&self, table: &str, key: &[String], columns: &[String]) -> Fusion {
        let Some(c) = self.0.iter().find(|c| c.table.eq_ignore_ascii_case(table)) else {
            return Fusion {
                reuse: Vec::new(),
                items: Vec::new(),
            };
        };
        let same_key = c.identities.iter().any(|ident| ident.as_slice() == key);
        let position = |col: &String| columns.iter().position(|n| n.eq_ignore_ascii_case(col));
        let reuse: Vec<Option<Vec<usize>>> = c
            .columns
            .iter()
            .map(|cols| {
                let cols = cols.as_ref().filter(|_| same_key)?;
                cols.iter().map(position).collect()
            })
            .collect();
        let items = reuse
            .iter()
            .zip(c.items.chunks_exact(2))
            .filter(|(r, _)| r.is_none())
            .flat_map(|(_, pair)| pair.iter().cloned())
            .collect();
        Fusion { reuse, items }
    }

    /// The indexes' side as a queue that several threads read from
    /// ([`IndexQueue`]).
    pub fn queue(&self) -> IndexQueue {
        let jobs: Vec<(usize, usize)> = self
            .0
            .iter()
            .enumerate()
            .flat_map(|(t, c)| (0..c.indexes.len()).map(move |i| (t, i)))
            .collect();
        IndexQueue {
            found: Mutex::new(jobs.iter().map(|_| None).collect()),
            jobs,
            next: AtomicUsize::new(0),
            checks: self.clone(),
        }
    }

    /// Reads every index alone.
    pub fn scan_indexes(&self, conn: &Connection) -> Result<IndexSums> {
        Ok(IndexSums(
            self.0
                .iter()
                .map(|c| found(conn, c))
                .collect::<Result<_>>()?,
        ))
    }

    /// The problems found (none: every index matches its table).
    /// `scanned` holds, by table, the table's side that a caller's scans
    /// read ([`Fusion::expected`]: a count and a sum per index); any other
    /// table is scanned here, on `conn`.
    pub fn problems(
        &self,
        conn: &Connection,
        scanned: &[(String, Vec<Value>)],
        found: &IndexSums,
    ) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (c, found) in self.0.iter().zip(&found.0) {
            let expected = match scanned
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(&c.table))
            {
                Some((_, values)) => sums_of(c, values)?,
                None => sums_of(c, &table_values(conn, c)?)?,
            };
            compare(c, &expected, found, &mut problems);
        }
        Ok(problems)
    }
}

/// How a caller's checksum scan of one table
/// ([`crate::pipeline::checksum::table_sums`])
/// serves the table's side of its indexes: the aggregates to add to the
/// scan, and how every index's expected count and sum follow from what
/// the scan returns.
///
/// An index whose keys are plain columns the scan sums anyway, keyed by
/// the same row identity, needs nothing more: its entries' sum is, column
/// by column, the sum of (row identity, value) over the table's rows,
/// which is what the scan computes for those columns. Only the other
/// indexes (expressions, partial, columns the scan does not sum) add
/// their own aggregates.
pub struct Fusion {
    /// Per index of the table: the positions, among the scan's summed
    /// columns, of its key columns; `None` when it adds its own
    /// aggregates.
    reuse: Vec<Option<Vec<usize>>>,
    /// The aggregates the scan adds (two per index not reused).
    pub items: Vec<String>,
}

impl Fusion {
    /// The table's side of every index of the table, in order (a count
    /// and a sum each, as [`Verification::problems`] takes them), from the
    /// scan's result.
    pub fn expected(&self, scan: &TableSums) -> Vec<Value> {
        let mut own = scan.extra.iter().cloned();
        let mut out = Vec::with_capacity(2 * self.reuse.len());
        for reuse in &self.reuse {
            match reuse {
                Some(positions) => {
                    let sum: Vec<u8> = positions
                        .iter()
                        .filter_map(|&p| scan.sums.get(p))
                        .flat_map(|s| s.to_le_bytes())
                        .collect();
                    out.push(Value::Integer(scan.rows));
                    // An empty table sums to nothing, as an empty index does.
                    out.push(match scan.rows {
                        0 => Value::Null,
                        _ => Value::Blob(sum),
                    });
                }
                None => out.extend(own.by_ref().take(2)),
            }
        }
        out
    }
}

/// The indexes' side shared by threads: each thread that calls
/// [`IndexQueue::drain`] reads the next index no one has taken, until none
/// is left, so the reads go to whichever thread is free first.
pub struct IndexQueue {
    checks: Verification,
    /// (table, index) positions in `checks`, in order.
    jobs: Vec<(usize, usize)>,
    next: AtomicUsize,
    found: Mutex<Vec<Option<Result<Sum>>>>,
}

impl IndexQueue {
    /// Reads indexes on `conn` (a connection to the verified file) until
    /// every one is taken.
    pub fn drain(&self, conn: &Connection) {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&(t, i)) = self.jobs.get(n) else {
                return;
            };
            let sum = read_index(conn, &self.checks.0[t], i);
            if let Ok(mut found) = self.found.lock() {
                found[n] = Some(sum);
            }
        }
    }

    /// Every index's sums once the threads that drained the queue are
    /// done: the first failed read is the error.
    pub fn sums(&self) -> Result<IndexSums> {
        let found = std::mem::take(
            &mut *self
                .found
                .lock()
                .map_err(|_| anyhow!("an index scan thread panicked"))?,
        );
        let mut sums: Vec<Vec<Sum>> = self.checks.0.iter().map(|_| Vec::new()).collect();
        for (&(t, _), sum) in self.jobs.iter().zip(found) {
            sums[t].push(sum.context("an index was not read")??);
        }
        Ok(IndexSums(sums))
    }
}

/// Checks every index of every ordinary table of `main`. Returns the
/// problems found (empty: every index matches its table).
pub fn verify(conn: &Connection, schema: &Schema) -> Result<Vec<String>> {
    let v = Verification::of(schema)?;
    v.problems(conn, &[], &v.scan_indexes(conn)?)
}

/// [`verify`] on two cores: the indexes are read by a second read-only
/// connection to `path` (the file `conn` has open) on another thread while
/// `conn` scans the tables.
pub fn verify_beside(conn: &Connection, path: &Path, schema: &Schema) -> Result<Vec<String>> {
    let v = Verification::of(schema)?;
    let (path, theirs) = (path.to_path_buf(), v.clone());
    let indexes = std::thread::spawn(move || -> Result<IndexSums> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        crate::pipeline::checksum::register(&conn)?;
        theirs.scan_indexes(&conn)
    });
    let scanned: Vec<(String, Vec<Value>)> =
        v.0.iter()
            .map(|c| Ok((c.table.clone(), table_values(conn, c)?)))
            .collect::<Result<_>>()?;
    let found = indexes
        .join()
        .map_err(|_| anyhow!("the index scan thread panicked"))??;
    v.problems(conn, &scanned, &found)
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
        // The same, with the table's side read by a caller's own scan of
        // the table (validation's checksum scan).
        let v = Verification::of(&schema).unwrap();
        // No column summed: every index adds its own aggregates.
        let fusion = v.fusion("t", &["rowid".to_string()], &[]);
        let fused = crate::pipeline::checksum::table_sums(
            &conn,
            "main.t NOT INDEXED",
            &["rowid".to_string()],
            &["c".to_string()],
            &fusion.items,
        )
        .unwrap();
        assert_eq!(fused.extra.len(), 6, "count and sum for each of 3 indexes");
        let found = v.scan_indexes(&conn).unwrap();
        let scanned = [("T".to_string(), fusion.expected(&fused))];
        assert_eq!(v.problems(&conn, &scanned, &found).unwrap(), problems);
        let short = [("t".to_string(), scanned[0].1[..4].to_vec())];
        let err = v.problems(&conn, &short, &found).unwrap_err();
        assert!(
            err.to_string().contains("did not return its index sums"),
            "{err}"
        );
        assert!(
            !crate::pipeline::check::health(&conn, false)
                .unwrap()
                .integrity
                .is_empty(),
            "integrity_check agrees"
        );
    }

    /// Validation's way: one checksum scan of each table (its columns
    /// summed, the fusion's aggregates added), the indexes read from a
    /// queue by two connections.
    fn validate_like(path: &Path, schema: &Schema, key: &str, columns: &[&str]) -> Vec<String> {
        let open = || {
            let conn = Connection::open(path).unwrap();
            crate::pipeline::checksum::register(&conn).unwrap();
            conn
        };
        let conn = open();
        let v = Verification::of(schema).unwrap();
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let fusion = v.fusion("t", &[key.to_string()], &columns);
        let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let sums = crate::pipeline::checksum::table_sums(
            &conn,
            "main.t NOT INDEXED",
            &[key.to_string()],
            &quoted,
            &fusion.items,
        )
        .unwrap();
        let queue = v.queue();
        std::thread::scope(|s| {
            s.spawn(|| queue.drain(&open()));
            queue.drain(&conn);
        });
        let found = queue.sums().unwrap();
        assert_eq!(
            found.0,
            v.scan_indexes(&conn).unwrap().0,
            "the queue reads what one connection reads"
        );
        let scanned = [("t".to_string(), fusion.expected(&sums))];
        v.problems(&conn, &scanned, &found).unwrap()
    }

    #[test]
    fn an_index_of_plain_columns_is_checked_against_the_tables_column_sums() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT);
             CREATE INDEX tab ON t(a COLLATE NOCASE, b DESC);
             CREATE INDEX tb ON t(b);
             CREATE INDEX tc ON t(upper(c));
             CREATE INDEX tp ON t(a) WHERE b > 1;
             CREATE INDEX tempty ON t(c);
             INSERT INTO t VALUES (1, 'x', 1, 'A'), (2, 'y', 5, 'B'), (3, 'z', 7, NULL), (4, NULL, NULL, 'D');",
        )
        .unwrap();
        let schema = Schema::read(&conn, "main").unwrap();
        let v = Verification::of(&schema).unwrap();
        let cols = ["id", "a", "b", "c"].map(String::from);
        // tab, tb and tempty need no aggregate of their own; tc (an
        // expression) and tp (partial) do. Keyed by the rowid's alias too.
        for key in ["rowid", "\"id\""] {
            let fusion = v.fusion("t", &[key.to_string()], &cols);
            assert_eq!(fusion.items.len(), 4, "{key}: {:?}", fusion.items);
        }
        // Another key, or a column the scan does not sum: no reuse.
        assert_eq!(v.fusion("t", &["\"a\"".to_string()], &cols).items.len(), 10);
        assert_eq!(
            v.fusion("t", &["rowid".to_string()], &cols[..3])
                .items
                .len(),
            6
        );
        assert_eq!(
            validate_like(&path, &schema, "\"id\"", &["id", "a", "b", "c"]),
            Vec::<String>::new()
        );
        // An empty table: its indexes are empty too.
        conn.execute_batch("DELETE FROM t").unwrap();
        assert_eq!(
            validate_like(&path, &schema, "rowid", &["a", "b", "c"]),
            Vec::<String>::new()
        );
        // tb's entries hold b; its definition now says a: the column sums
        // of a are not its entries' sums.
        conn.execute_batch(
            "INSERT INTO t VALUES (1, 'x', 1, 'A'), (2, 'y', 5, 'B');
             PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX tb ON t(a)' WHERE name = 'tb'; PRAGMA writable_schema = RESET;",
        )
        .unwrap();
        drop(conn);
        let schema = Schema::load(&path).unwrap();
        let problems = validate_like(&path, &schema, "rowid", &["id", "a", "b", "c"]);
        assert_eq!(
            problems,
            vec!["index tb does not match the content of table t".to_string()]
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
