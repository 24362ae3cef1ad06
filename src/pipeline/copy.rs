//! Build a fresh database from the source schema and copy production's data
//! into it, inside SQLite: the snapshot is ATTACHed read-only and every table
//! is filled by one `INSERT … SELECT`, with journal and fsync off on the
//! scratch file and foreign keys off (no cascade can fire). Tables come
//! first, then the data, then indexes, views and triggers, so that indexes
//! are built once from sorted data and no trigger fires during the copy.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::aborted;
use crate::pipeline::carry::{self, Carry};
use crate::pipeline::plan::{Fill, Plan, TablePlan, render_ref};
use crate::schema::{Schema, Table};
use crate::sqltext::{self, Token, display_ident, quote_ident};
use crate::target::files::Syncing;

/// The schema name the snapshot is attached under while copying (and in
/// recipes' `sql`/`query` on the migrated database).
pub const SNAPSHOT_SCHEMA: &str = "snapshot";

/// What the copy did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CopyStats {
    /// (table, rows copied, seconds)
    pub tables: Vec<(String, i64, f64)>,
    pub seconds: f64,
    /// The statements that copied each table, in order (for `--verbose`).
    #[serde(skip)]
    pub sql: Vec<String>,
}

/// Settings carried over from production to the new file.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings {
    pub page_size: i64,
    pub auto_vacuum: i64,
    pub wal: bool,
}

impl FileSettings {
    /// Reads the settings of a database (`main` of `conn`).
    pub fn of(conn: &Connection) -> Result<FileSettings> {
        let page_size = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let auto_vacuum = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        Ok(FileSettings {
            page_size,
            auto_vacuum,
            wal: mode.eq_ignore_ascii_case("wal"),
        })
    }

    /// The settings of the new file: production's, except what the source
    /// sets explicitly (`PRAGMA page_size` / `PRAGMA auto_vacuum` in a `.sql`
    /// source, non-default values in a SQLite source).
    pub fn for_target(self, source: &Schema) -> FileSettings {
        FileSettings {
            page_size: source.page_size.unwrap_or(self.page_size),
            auto_vacuum: source.auto_vacuum.unwrap_or(self.auto_vacuum),
            wal: self.wal,
        }
    }
}

/// A URI for opening a file read-only through ATTACH.
pub fn readonly_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::from("file:");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out.push_str("?mode=ro");
    out
}

/// Opens the migrated database being built, with the snapshot attached
/// read-only under [`SNAPSHOT_SCHEMA`].
pub fn open_scratch(out: &Path, snapshot: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        out,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("creating {}", out.display()))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA threads = 2;",
    )?;
    // SQLite attaches only a database with the main one's text encoding: a
    // new file takes the snapshot's (an existing file keeps its own).
    let encoding: String =
        crate::db::open_readonly(snapshot)?.query_row("PRAGMA encoding", [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA main.encoding = '{encoding}'"))?;
    attach_snapshot(&conn, &readonly_uri(snapshot))
        .with_context(|| format!("attaching the snapshot {}", snapshot.display()))?;
    Ok(conn)
}

/// Attaches a database (path or URI) as [`SNAPSHOT_SCHEMA`]. A view or
/// trigger that names `main.<table>` explicitly is valid in its own file
/// but breaks loading that file's schema under another name ("view v cannot
/// reference objects in database main"), so the schema is loaded with
/// `writable_schema` on, which skips such objects; the copy needs only the
/// snapshot's tables. Anything that makes SQLite reload every schema (a
/// `VACUUM`) must detach the snapshot first.
pub fn attach_snapshot(conn: &Connection, file: &str) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    let attached = conn
        .execute(
            &format!("ATTACH DATABASE ?1 AS {}", quote_ident(SNAPSHOT_SCHEMA)),
            [file],
        )
        .and_then(|_| {
            conn.query_row(
                &format!(
                    "SELECT count(*) FROM {}.sqlite_schema",
                    quote_ident(SNAPSHOT_SCHEMA)
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
        });
    conn.execute_batch("PRAGMA writable_schema = OFF")?;
    attached.map(|_| ())
}

/// Creates the tables of `source` in a new file at `out` (mode 0600,
/// replacing any leftover) and returns the connection with the snapshot attached.
pub fn create_tables(
    source: &Schema,
    settings: FileSettings,
    out: &Path,
    snapshot: &Path,
) -> Result<Connection> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = format!("{}{suffix}", out.display());
        let _ = std::fs::remove_file(p);
    }
    // Created private before SQLite sees it (its journals take its mode).
    drop(crate::private::create_new(out)?);
    let mut conn = open_scratch(out, snapshot)?;
    crate::interrupt::watch(&mut conn)?;
    let settings = settings.for_target(source);
    conn.execute_batch(&format!(
        "PRAGMA main.page_size = {}; PRAGMA main.auto_vacuum = {};",
        settings.page_size, settings.auto_vacuum
    ))?;
    conn.execute_batch("BEGIN")?;
    for t in &source.tables {
        conn.execute_batch(&t.raw_sql)
            .with_context(|| format!("creating table {} from the source schema", t.name))?;
    }
    // Keep the bookkeeping tables with production, rows and all: the tool's
    // own history, and Litestream's tables, which a running Litestream
    // needs for its next checkpoint.
    let bookkeeping: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT name, sql FROM {}.sqlite_schema WHERE type = 'table' ORDER BY rowid",
            quote_ident(SNAPSHOT_SCHEMA)
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, Option<String>)>>>()?
        .into_iter()
        .filter(|(name, _)| crate::schema::is_bookkeeping(name))
        .filter_map(|(name, sql)| Some((name, sql?)))
        .collect();
    for (name, sql) in bookkeeping {
        conn.execute_batch(&sql)
            .with_context(|| format!("carrying {name} over"))?;
        conn.execute_batch(&format!(
            "INSERT INTO main.{q} SELECT * FROM {}.{q}",
            quote_ident(SNAPSHOT_SCHEMA),
            q = quote_ident(&name)
        ))?;
    }
    conn.execute_batch("COMMIT")?;
    Ok(conn)
}

/// Copies every planned table. A table whose rows the new schema rejects
/// stops the copy with the rejected rows named (exit 3).
pub fn copy_data(
    conn: &mut Connection,
    plan: &Plan,
    prod: &Schema,
    source: &Schema,
    snapshot: &Path,
    scratch_dir: &Path,
    progress: bool,
) -> Result<CopyStats> {
    let start = Instant::now();
    let mut stats = CopyStats::default();
    conn.execute_batch("BEGIN")?;
    for tp in &plan.tables {
        let Some(sql) = tp.insert_sql(SNAPSHOT_SCHEMA) else {
            continue;
        };
        let t0 = Instant::now();
        let copied = match copy_table(conn, tp, &sql, progress) {
            Ok(n) => n,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                crate::interrupt::check()?;
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
                    return Err(crate::error::input(format!(
                        "copying table {} failed: no space left on the device of {} ({e}); \
                         production was not changed",
                        display_ident(&tp.table),
                        scratch_dir.display()
                    )));
                }
                return Err(rejected(e, tp, prod, source, snapshot, scratch_dir));
            }
        };
        let rows = i64::try_from(copied).unwrap_or(i64::MAX);
        stats.sql.push(sql);
        stats
            .tables
            .push((tp.table.clone(), rows, t0.elapsed().as_secs_f64()));
    }
    fill_fulltext(conn, plan, &mut stats)?;
    check_fulltext(conn, source)?;
    restore_sequences(conn, plan, source)?;
    conn.execute_batch("COMMIT")?;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// One table's `INSERT … SELECT` (or the wide-table path), with a progress
/// bar fed by SQLite's progress handler.
fn copy_table(
    conn: &mut Connection,
    tp: &TablePlan,
    sql: &str,
    progress: bool,
) -> rusqlite::Result<usize> {
    let bar = crate::progress::rows_bar(progress, &tp.table, tp.rows);
    let ncols = tp.columns.len().max(1) as u64;
    let mut counter = bar.clone();
    conn.progress_handler(
        1000,
        Some(move || {
            counter.tick_ops(1000, 12 + 4 * ncols);
            crate::interrupt::pending().is_some()
        }),
    )?;
    let wide = tp
        .insert_parts()
        .is_some_and(|(targets, _)| targets.len() > MAX_RESULT_COLUMNS);
    let result = if wide {
        copy_wide(conn, tp)
    } else {
        conn.execute(sql, [])
    };
    conn.progress_handler(10_000, Some(|| crate::interrupt::pending().is_some()))?;
    bar.finish();
    result
}

/// The error for a table whose rows the new schema rejected, naming them.
fn rejected(
    e: rusqlite::Error,
    tp: &TablePlan,
    prod: &Schema,
    source: &Schema,
    snapshot: &Path,
    scratch_dir: &Path,
) -> anyhow::Error {
    let rows = match source.table(&tp.table) {
        Some(target) => rejected_rows(tp, target, prod, snapshot, scratch_dir)
            .unwrap_or_else(|probe| vec![format!("(could not list the rows: {probe:#})")]),
        None => vec!["(the planned table is missing from the source)".to_string()],
    };
    aborted(format!(
        "copying table {} failed: {e}\n  rejected rows:\n    {}\n  \
         fix these rows in a recipe (map_column, or sql on the migrated database), or change the source schema",
        display_ident(&tp.table),
        rows.join("\n    ")
    ))
}

/// Full-text indexes that are not filled row by row, now that their
/// content tables are in.
fn fill_fulltext(conn: &Connection, plan: &Plan, stats: &mut CopyStats) -> Result<()> {
    for tp in &plan.tables {
        let t0 = Instant::now();
        match tp.fill {
            Fill::Rebuild => {
                let t = quote_ident(&tp.table);
                conn.execute(&format!("INSERT INTO main.{t}({t}) VALUES ('rebuild')"), [])
                    .with_context(|| format!("rebuilding the full-text index {}", tp.table))?;
            }
            Fill::Shadow => copy_shadow_tables(conn, tp)
                .with_context(|| format!("copying the index of {}", tp.table))?,
            Fill::Rows | Fill::Empty => continue,
        }
        stats
            .tables
            .push((tp.table.clone(), tp.rows, t0.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// Every FTS5 index must agree with its text (and an external-content
/// index with its content table) before anything else is built on it.
fn check_fulltext(conn: &Connection, source: &Schema) -> Result<()> {
    for t in source
        .tables
        .iter()
        .filter(|t| t.virtual_module.as_deref() == Some("fts5"))
    {
        let q = quote_ident(&t.name);
        let external = t.module_arg("content").is_some_and(|c| !c.is_empty());
        conn.execute(
            &format!(
                "INSERT INTO main.{q}({q}, rank) VALUES ('integrity-check', {})",
                i32::from(external)
            ),
            [],
        )
        .with_context(|| {
            format!(
                "the full-text index {} does not match its content after the copy",
                display_ident(&t.name)
            )
        })?;
    }
    Ok(())
}

/// SQLite's limit on the columns of a result set (SQLITE_MAX_COLUMN).
const MAX_RESULT_COLUMNS: usize = 2000;

/// Copies a table whose INSERT … SELECT would need more result columns than
/// SQLite allows (a table at the 2,000-column limit whose rowid is copied
/// too): two statements read the columns in halves, in rowid order, and each
/// row is inserted with its values bound as they are (bytes untouched).
fn copy_wide(conn: &Connection, tp: &TablePlan) -> rusqlite::Result<usize> {
    let Some((targets, selects)) = tp.insert_parts() else {
        return Ok(0);
    };
    let from = format!(
        "{}.{}",
        quote_ident(SNAPSHOT_SCHEMA),
        quote_ident(tp.from.as_deref().unwrap_or_default())
    );
    let half = selects.len() / 2;
    let mut first = conn.prepare(&format!(
        "SELECT {} FROM {from} ORDER BY rowid",
        selects[..half].join(", ")
    ))?;
    let mut second = conn.prepare(&format!(
        "SELECT {} FROM {from} ORDER BY rowid",
        selects[half..].join(", ")
    ))?;
    let mut insert = conn.prepare(&format!(
        "INSERT INTO main.{}({}) VALUES ({})",
        quote_ident(&tp.table),
        targets.join(", "),
        (1..=targets.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let (mut a, mut b) = (first.query([])?, second.query([])?);
    let mut n = 0;
    while let (Some(ra), Some(rb)) = (a.next()?, b.next()?) {
        let mut values = Vec::with_capacity(targets.len());
        for i in 0..half {
            values.push(rusqlite::types::ToSqlOutput::Borrowed(ra.get_ref(i)?));
        }
        for i in 0..selects.len() - half {
            values.push(rusqlite::types::ToSqlOutput::Borrowed(rb.get_ref(i)?));
        }
        n += insert.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(n)
}

/// Copies the shadow tables of a virtual table (the index of a contentless
/// FTS table) from the snapshot verbatim, replacing the ones its CREATE made.
fn copy_shadow_tables(conn: &Connection, tp: &TablePlan) -> Result<()> {
    let from = tp.from.clone().unwrap_or_default();
    let mut stmt = conn.prepare(
        "SELECT name FROM pragma_table_list WHERE schema = ?1 AND type = 'shadow' ORDER BY name",
    )?;
    let shadows: Vec<String> = stmt
        .query_map([SNAPSHOT_SCHEMA], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // SQLite compares names ignoring ASCII case only.
    let suffix = |name: &str| -> Option<String> {
        let head = name.as_bytes().get(..from.len())?;
        let rest = name.get(from.len()..)?;
        (head.eq_ignore_ascii_case(from.as_bytes()) && rest.starts_with('_'))
            .then(|| rest.to_string())
    };
    for old in &shadows {
        let Some(rest) = suffix(old) else { continue };
        let new = format!("{}{rest}", tp.table);
        conn.execute_batch(&format!(
            "DELETE FROM main.{n}; INSERT INTO main.{n} SELECT * FROM {}.{};",
            quote_ident(SNAPSHOT_SCHEMA),
            quote_ident(old),
            n = quote_ident(&new),
        ))?;
    }
    Ok(())
}

/// AUTOINCREMENT counters: the larger of production's counter and the
/// highest copied id, so that a deleted highest id is never reused.
fn restore_sequences(conn: &Connection, plan: &Plan, source: &Schema) -> Result<()> {
    let snap = quote_ident(SNAPSHOT_SCHEMA);
    let snapshot_has_seq: bool = conn.query_row(
        &format!("SELECT count(*) FROM {snap}.sqlite_schema WHERE name = 'sqlite_sequence'"),
        [],
        |r| r.get(0),
    )?;
    for t in source.tables.iter().filter(|t| t.autoincrement) {
        let Some(from) = plan.table(&t.name).and_then(|tp| tp.from.clone()) else {
            continue;
        };
        let old: Option<i64> = if snapshot_has_seq {
            conn.query_row(
                &format!("SELECT seq FROM {snap}.sqlite_sequence WHERE name = ?1"),
                [&from],
                |r| r.get(0),
            )
            .ok()
        } else {
            None
        };
        let Some(old) = old else { continue };
        let updated = conn.execute(
            "UPDATE main.sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
            rusqlite::params![t.name, old],
        )?;
        if updated == 0 {
            conn.execute(
                "INSERT INTO main.sqlite_sequence(name, seq) VALUES (?1, ?2)",
                rusqlite::params![t.name, old],
            )?;
        }
    }
    Ok(())
}

/// Every view of the source can be queried in `conn`'s main database:
/// SQLite creates a view without resolving its names, so one that names a
/// missing table or column would reach production and fail there.
pub fn check_views(conn: &Connection, source: &Schema) -> Result<()> {
    for v in &source.views {
        conn.prepare(&format!(
            "SELECT * FROM main.{} LIMIT 0",
            quote_ident(&v.name)
        ))
        .with_context(|| format!("view {} does not work on the new schema", v.name))?;
    }
    Ok(())
}

/// Creates indexes, views and triggers (after the data), then sets the
/// header values from the source. An index in `carried` is carried over
/// from the snapshot ([`crate::pipeline::carry`]); every other one is built
/// by SQLite, and a UNIQUE index that the data violates is refused with the
/// duplicate keys. With `progress`, each index of a table `copied` put rows
/// in shows a bar.
pub fn finish_schema(
    conn: &mut Connection,
    source: &Schema,
    settings: FileSettings,
    copied: &CopyStats,
    carried: &[Carry],
    progress: bool,
) -> Result<()> {
    conn.execute_batch("BEGIN")?;
    let mut staged = Vec::new();
    for i in source.indexes.iter().filter(|i| i.is_explicit()) {
        let Some(sql) = &i.raw_sql else { continue };
        let rows = copied
            .tables
            .iter()
            .find(|(t, _, _)| t.eq_ignore_ascii_case(&i.table))
            .map_or(0, |(_, rows, _)| *rows);
        if let Some(c) = carried.iter().find(|c| c.index == i.name) {
            let filled = c
                .stage(conn, staged.len())
                .and_then(|fill| Ok(run_with_bar(conn, &i.name, &fill, rows, progress)?));
            if let Err(e) = filled {
                crate::interrupt::check()?;
                return Err(e.context(format!(
                    "carrying index {} over from the snapshot of production failed \
                     (run `sqlmorph check` on production: its index may be damaged)",
                    display_ident(&i.name)
                )));
            }
            staged.push(c.clone());
            continue;
        }
        if let Err(e) = run_with_bar(conn, &i.name, sql, rows, progress) {
            let _ = conn.execute_batch("ROLLBACK");
            let dups = duplicate_keys(conn, sql, &i.table).unwrap_or_default();
            return Err(aborted(format!(
                "creating index {} failed: {e}{}\n  fix the duplicates in a recipe, or change the index in the source schema",
                display_ident(&i.name),
                if dups.is_empty() {
                    String::new()
                } else {
                    format!("\n  duplicate keys: {}", dups.join("; "))
                }
            )));
        }
    }
    for v in &source.views {
        conn.execute_batch(&v.raw_sql)
            .with_context(|| format!("creating view {}", v.name))?;
    }
    for t in &source.triggers {
        conn.execute_batch(&t.raw_sql)
            .with_context(|| format!("creating trigger {}", t.name))?;
    }
    conn.execute_batch(&format!(
        "PRAGMA main.user_version = {}; PRAGMA main.application_id = {};",
        source.user_version, source.application_id
    ))?;
    carry::install(conn, &staged)?;
    conn.execute_batch("COMMIT")?;
    // The data is in: the VACUUM below would reload the snapshot's schema
    // without the care `attach_snapshot` takes.
    conn.execute_batch(&format!("DETACH DATABASE {}", quote_ident(SNAPSHOT_SCHEMA)))?;
    if !staged.is_empty() {
        carry::reload(conn)?;
    }
    check_views(conn, source)?;
    // The build leaves no free pages behind (a rebuilt index or a replaced
    // shadow table could); a fresh file should be as compact as a VACUUM.
    let free: i64 = conn.query_row("PRAGMA main.freelist_count", [], |r| r.get(0))?;
    if free > 0 {
        conn.execute_batch("VACUUM main")?;
    }
    if settings.wal {
        conn.query_row("PRAGMA main.journal_mode = WAL", [], |r| {
            r.get::<_, String>(0)
        })?;
    }
    Ok(())
}

/// One statement filling index `name` of a table of `rows` rows (its
/// `CREATE INDEX`, or the carried index's `INSERT`), with a bar whose
/// progress is estimated from SQLite's progress handler: the steps of the
/// program's loops (the table scan, then the sorted insert) per row. The bar
/// stands still while SQLite sorts, between the two.
fn run_with_bar(
    conn: &mut Connection,
    name: &str,
    sql: &str,
    rows: i64,
    progress: bool,
) -> rusqlite::Result<()> {
    let per_row = match progress && rows > 0 {
        true => crate::progress::ops_per_row(conn, sql).ok(),
        false => None,
    };
    let Some(per_row) = per_row else {
        return conn.execute_batch(sql);
    };
    let bar = crate::progress::rows_bar(true, &format!("index {name}"), rows);
    let mut counter = bar.clone();
    conn.progress_handler(
        1000,
        Some(move || {
            counter.tick_ops(1000, per_row);
            crate::interrupt::pending().is_some()
        }),
    )?;
    let result = conn.execute_batch(sql);
    conn.progress_handler(10_000, Some(|| crate::interrupt::pending().is_some()))?;
    bar.finish();
    result
}

/// Closes the migrated database and starts its sync to disk on another
/// thread: validation reads it from the page cache meanwhile, and the swap
/// waits for it (its writeback would compete with production's).
pub fn close_syncing(conn: Connection, path: &Path) -> Result<Syncing> {
    conn.execute(
        &format!("DETACH DATABASE {}", quote_ident(SNAPSHOT_SCHEMA)),
        [],
    )
    .ok();
    conn.close().map_err(|(_, e)| e)?;
    Syncing::start(path)
}

/// Keys that appear more than once for a UNIQUE index's key expressions.
fn duplicate_keys(conn: &Connection, index_sql: &str, table: &str) -> Result<Vec<String>> {
    let tokens = sqltext::tokenize(index_sql);
    let on = tokens
        .iter()
        .position(|t| t.token.is_kw("ON"))
        .context("no ON")?;
    let open = tokens[on..]
        .iter()
        .position(|t| matches!(&t.token, Token::Punct(p) if p == "("))
        .context("no (")?
        + on;
    let (items, close) = sqltext::split_parenthesized(&tokens, open);
    let keys: Vec<String> = items
        .iter()
        .map(|item| {
            let end = item.len()
                - usize::from(
                    item.last()
                        .is_some_and(|t| t.token.is_kw("ASC") || t.token.is_kw("DESC")),
                );
            sqltext::render(&item[..end])
        })
        .collect();
    let filter = tokens[close..]
        .iter()
        .position(|t| t.token.is_kw("WHERE"))
        .map(|w| format!(" WHERE {}", sqltext::render(&tokens[close + w + 1..])))
        .unwrap_or_default();
    let key = keys.join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, count(*) FROM main.{}{filter} GROUP BY {key} HAVING count(*) > 1 LIMIT 5",
        keys.iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS k{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        quote_ident(table)
    ))?;
    let n = keys.len();
    let rows = stmt
        .query_map([], |r| {
            let vals: Vec<String> = (0..n)
                .map(|i| r.get_ref(i).map(render_ref))
                .collect::<rusqlite::Result<_>>()?;
            let count: i64 = r.get(n)?;
            Ok(format!("({}) x{count}", vals.join(", ")))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Finds the first few production rows that the new table refuses, by
/// loading the rows in order into a scratch copy of the table and bisecting
/// each chunk that fails. Every kind of refusal (NOT NULL, CHECK, UNIQUE,
/// STRICT types) is found the same way: by SQLite itself.
fn rejected_rows(
    tp: &TablePlan,
    target: &Table,
    prod: &Schema,
    snapshot: &Path,
    dir: &Path,
) -> Result<Vec<String>> {
    // Removed when dropped, after the probe's connection closed.
    let probe = crate::private::temp_file_in(dir, "probe-", ".sqlite3")?;
    Probe::new(tp, target, prod, snapshot, probe.path())?.find(tp.rows)
}

/// A scratch table with the new schema, into which a table's rows are
/// inserted range by range to find the ones the schema rejects.
struct Probe<'a> {
    conn: Connection,
    origin: &'a Table,
    from: String,
    insert: String,
}

impl<'a> Probe<'a> {
    fn new(
        tp: &TablePlan,
        target: &Table,
        prod: &'a Schema,
        snapshot: &Path,
        path: &Path,
    ) -> Result<Probe<'a>> {
        let conn = open_scratch(path, snapshot)?;
        conn.execute_batch("PRAGMA journal_mode = MEMORY")?;
        conn.execute_batch(&target.raw_sql)?;
        let from = tp.from.clone().unwrap_or_default();
        let origin = prod.table(&from).context("origin table")?;
        let insert = format!(
            "{} ORDER BY {} LIMIT ?1 OFFSET ?2",
            tp.insert_sql(SNAPSHOT_SCHEMA)
                .context("nothing to insert")?,
            origin.row_identity().join(", ")
        );
        Ok(Probe {
            conn,
            origin,
            from,
            insert,
        })
    }

    /// Up to five rejected rows, each with SQLite's reason.
    fn find(&self, total: i64) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut offset = 0;
        let chunk = 4096;
        while offset < total && found.len() < 5 {
            let len = chunk.min(total - offset);
            if self.try_range(offset, len, true).is_ok() {
                offset += len;
                continue;
            }
            let (bad, error) = self.first_bad(offset, len);
            found.push(format!("{}: {error}", self.identify(bad)?));
            offset = bad + 1;
        }
        Ok(found)
    }

    /// Inserts `len` rows from `offset`, kept or rolled back; the error text
    /// when SQLite rejects one of them.
    fn try_range(&self, offset: i64, len: i64, keep: bool) -> std::result::Result<(), String> {
        let conn = &self.conn;
        conn.execute_batch("SAVEPOINT probe")
            .map_err(|e| e.to_string())?;
        match conn.execute(&self.insert, [len, offset]) {
            Ok(_) if keep => conn
                .execute_batch("RELEASE probe")
                .map_err(|e| e.to_string()),
            Ok(_) => conn
                .execute_batch("ROLLBACK TO probe; RELEASE probe")
                .map_err(|e| e.to_string()),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO probe; RELEASE probe");
                Err(e.to_string())
            }
        }
    }

    /// In a failing chunk, the smallest failing prefix ends at the bad row:
    /// its offset and the error; the rows before it are kept.
    fn first_bad(&self, offset: i64, len: i64) -> (i64, String) {
        let (mut lo, mut hi) = (1, len);
        let mut error = String::new();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.try_range(offset, mid, false) {
                Ok(()) => lo = mid + 1,
                Err(e) => {
                    error = e;
                    hi = mid;
                }
            }
        }
        if error.is_empty() {
            error = self.try_range(offset, lo, false).err().unwrap_or_default();
        }
        if lo > 1 {
            let _ = self.try_range(offset, lo - 1, true);
        }
        (offset + lo - 1, error)
    }

    /// "rowid 42" (or "key a,b") of the row at `offset` in production.
    fn identify(&self, offset: i64) -> Result<String> {
        let id: String = self.conn.query_row(
            &format!(
                "SELECT {} FROM {}.{} ORDER BY {} LIMIT 1 OFFSET ?1",
                self.origin.row_identity().join(" || ',' || "),
                quote_ident(SNAPSHOT_SCHEMA),
                quote_ident(&self.from),
                self.origin.row_identity().join(", ")
            ),
            [offset],
            |r| r.get_ref(0).map(render_ref),
        )?;
        let label = if self.origin.without_rowid {
            "key"
        } else {
            "rowid"
        };
        Ok(format!("{label} {id}"))
    }
}
