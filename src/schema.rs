//! The schema model: what a SQLite database declares, read with SQLite's own
//! pragmas (`table_list`, `table_xinfo`, `index_xinfo`, `foreign_key_list`)
//! plus the stored CREATE statements for what the pragmas do not expose
//! (CHECK constraints, generated-column expressions).
//!
//! Objects keep their original CREATE text; `sql` is its normalized form
//! (see [`crate::sqltext::normalize`]), which is what comparisons use.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::Serialize;

use crate::db;
use crate::sqltext::{self, Token};

/// A whole schema: user tables, indexes, views, triggers and the header
/// values an application relies on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Schema {
    pub tables: Vec<Table>,
    pub indexes: Vec<Index>,
    pub views: Vec<View>,
    pub triggers: Vec<Trigger>,
    pub user_version: i64,
    pub application_id: i64,
    /// `page_size` the schema sets explicitly (a `PRAGMA page_size` in a
    /// `.sql` script, a non-default page size in a SQLite file); `None`
    /// means SQLite's default, and in a source: keep production's.
    #[serde(skip)]
    pub page_size: Option<i64>,
    /// `auto_vacuum` (0 none, 1 full, 2 incremental) the source sets
    /// explicitly, as for `page_size`.
    #[serde(skip)]
    pub auto_vacuum: Option<i64>,
}

/// A table or virtual table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Table {
    pub name: String,
    /// The normalized CREATE statement.
    pub sql: String,
    /// The CREATE statement as stored by SQLite.
    #[serde(skip)]
    pub raw_sql: String,
    pub columns: Vec<Column>,
    /// Primary-key columns in key order (empty: rowid only).
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    /// UNIQUE constraints declared in the table (column lists).
    pub uniques: Vec<Vec<String>>,
    /// CHECK constraints (normalized expressions), table and column level.
    pub checks: Vec<String>,
    pub without_rowid: bool,
    pub strict: bool,
    pub autoincrement: bool,
    /// `Some(module)` for a virtual table (e.g. `fts5`).
    pub virtual_module: Option<String>,
    /// The primary key is an alias of the rowid: a rowid table whose single
    /// primary-key column is declared `INTEGER` (and not `PRIMARY KEY DESC`,
    /// which SQLite implements with a separate index).
    #[serde(skip)]
    pub rowid_alias: bool,
}

/// How a column gets its value.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Normal,
    /// A hidden column of a virtual table.
    Hidden,
    /// `GENERATED ALWAYS AS (…) VIRTUAL`.
    Virtual,
    /// `GENERATED ALWAYS AS (…) STORED`.
    Stored,
}

/// A column of a table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type as written (may be empty).
    pub decl_type: String,
    /// SQLite's type affinity: INTEGER, TEXT, BLOB, REAL or NUMERIC.
    pub affinity: String,
    pub not_null: bool,
    /// The DEFAULT expression, normalized.
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pub pk: u32,
    /// The collating sequence (BINARY unless declared).
    pub collation: String,
    pub kind: ColumnKind,
    /// The expression of a generated column, normalized.
    pub generated: Option<String>,
}

impl Column {
    /// True when values are stored by INSERT (not generated, not hidden).
    pub fn is_insertable(&self) -> bool {
        self.kind == ColumnKind::Normal
    }
}

/// A foreign key: columns of this table referencing another table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    /// Referenced columns; empty means the parent's primary key.
    pub ref_columns: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
}

/// An index. Automatic indexes (from UNIQUE and PRIMARY KEY constraints)
/// have no SQL and belong to their table's definition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Index {
    pub name: String,
    pub table: String,
    pub unique: bool,
    pub partial: bool,
    /// `c` (CREATE INDEX), `u` (UNIQUE constraint) or `pk`.
    pub origin: String,
    /// Key parts: a column name, or `<expr>` for an expression part.
    pub columns: Vec<IndexColumn>,
    pub sql: Option<String>,
    #[serde(skip)]
    pub raw_sql: Option<String>,
}

impl Index {
    /// True for an index created by `CREATE INDEX`.
    pub fn is_explicit(&self) -> bool {
        self.origin == "c"
    }
}

/// One key part of an index.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexColumn {
    /// The column name; `None` for an expression.
    pub name: Option<String>,
    pub desc: bool,
    pub collation: String,
}

/// A view.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct View {
    pub name: String,
    pub sql: String,
    #[serde(skip)]
    pub raw_sql: String,
}

/// A trigger.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub table: String,
    pub sql: String,
    #[serde(skip)]
    pub raw_sql: String,
}

/// True for names that are not user objects: SQLite's own, this tool's
/// bookkeeping tables and Litestream's (`_litestream_seq`, which it writes
/// to force WAL frames and reads to hold its read lock, and
/// `_litestream_lock`, which it writes to take the write lock around a
/// checkpoint: dropping them breaks a running Litestream's checkpoints).
pub fn is_internal(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || is_bookkeeping(&lower)
}

/// True for the bookkeeping tables that stay with production whatever the
/// source says: a migration carries them over as they are.
pub fn is_bookkeeping(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("_sqlmorph_") || lower.starts_with("_litestream_")
}

/// SQLite's affinity rules (sqlite.org/datatype3.html §3.1).
pub fn affinity(decl_type: &str) -> &'static str {
    let t = decl_type.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.trim().is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

impl Table {
    /// SQL expressions that identify a row: `rowid`, or the primary-key
    /// columns of a WITHOUT ROWID table.
    pub fn row_identity(&self) -> Vec<String> {
        if self.without_rowid {
            self.primary_key
                .iter()
                .map(|c| sqltext::quote_ident(c))
                .collect()
        } else {
            vec!["rowid".to_string()]
        }
    }
}

impl Schema {
    /// Reads the schema of a source: a `.sql` script or a SQLite file.
    pub fn load(path: &Path) -> Result<Schema> {
        let conn = db::open_source(path)?;
        let mut schema = Schema::read(&conn, "main")
            .map_err(|e| match e.downcast_ref::<rusqlite::Error>() {
                Some(sqlite) => db::corrupt(path, sqlite),
                None => e,
            })
            .with_context(|| format!("reading the schema of {}", path.display()))?;
        if db::is_sql_script(path) {
            // What the script says, not what an in-memory database made of it.
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            schema.page_size = script_pragma(&text, "page_size");
            schema.auto_vacuum = script_pragma(&text, "auto_vacuum");
        }
        Ok(schema)
    }

    /// Reads the schema of one attached database (`main`, …) of a connection.
    pub fn read(conn: &Connection, db_name: &str) -> Result<Schema> {
        let q = sqltext::quote_ident(db_name);
        let mut list = conn.prepare(&format!(
            "SELECT name, type, wr, strict FROM {q}.pragma_table_list WHERE schema = ?1 AND type IN ('table', 'virtual')"
        ))?;
        let listed: Vec<(String, String, bool, bool)> = list
            .query_map([db_name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;

        let mut objects = conn.prepare(&format!(
            "SELECT type, name, tbl_name, sql FROM {q}.sqlite_schema ORDER BY rowid"
        ))?;
        let rows: Vec<(String, String, String, Option<String>)> = objects
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let stored_sql: BTreeMap<String, String> = rows
            .iter()
            .filter_map(|(_, name, _, sql)| Some((name.clone(), sql.clone()?)))
            .collect();

        let mut tables = Vec::new();
        let mut indexes = Vec::new();
        for (name, ty, without_rowid, strict) in listed {
            if is_internal(&name) {
                continue;
            }
            let raw_sql = stored_sql.get(&name).cloned().unwrap_or_default();
            let table = read_table(
                conn,
                db_name,
                &name,
                &raw_sql,
                ty == "virtual",
                without_rowid,
                strict,
            )
            .with_context(|| format!("reading table {name}"))?;
            if table.virtual_module.is_none() {
                indexes.extend(read_indexes(conn, db_name, &name, &stored_sql)?);
            }
            tables.push(table);
        }
        let mut views = Vec::new();
        let mut triggers = Vec::new();
        for (ty, name, tbl_name, sql) in rows {
            let Some(raw_sql) = sql else { continue };
            if is_internal(&name) {
                continue;
            }
            match ty.as_str() {
                "view" => views.push(View {
                    sql: sqltext::normalize(&raw_sql),
                    raw_sql,
                    name,
                }),
                "trigger" => triggers.push(Trigger {
                    sql: sqltext::normalize(&raw_sql),
                    raw_sql,
                    name,
                    table: tbl_name,
                }),
                _ => {}
            }
        }
        let user_version = conn.query_row(&format!("PRAGMA {q}.user_version"), [], |r| r.get(0))?;
        let application_id =
            conn.query_row(&format!("PRAGMA {q}.application_id"), [], |r| r.get(0))?;
        let page_size: i64 = conn.query_row(&format!("PRAGMA {q}.page_size"), [], |r| r.get(0))?;
        let auto_vacuum: i64 =
            conn.query_row(&format!("PRAGMA {q}.auto_vacuum"), [], |r| r.get(0))?;

        let by_name =
            |a: &String, b: &String| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b));
        tables.sort_by(|a, b| by_name(&a.name, &b.name));
        indexes.sort_by(|a, b| by_name(&a.name, &b.name));
        triggers.sort_by(|a, b| by_name(&a.name, &b.name));
        let views = order_views(views);
        Ok(Schema {
            tables,
            indexes,
            views,
            triggers,
            user_version,
            application_id,
            page_size: (page_size != DEFAULT_PAGE_SIZE).then_some(page_size),
            auto_vacuum: (auto_vacuum != 0).then_some(auto_vacuum),
        })
    }

    /// The table with this name (SQLite names are case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The index with this name.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// The view with this name.
    pub fn view(&self, name: &str) -> Option<&View> {
        self.views
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// The trigger with this name.
    pub fn trigger(&self, name: &str) -> Option<&Trigger> {
        self.triggers
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Explicit (CREATE INDEX) indexes of a table.
    pub fn indexes_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Index> + 'a {
        self.indexes
            .iter()
            .filter(move |i| i.is_explicit() && i.table.eq_ignore_ascii_case(table))
    }

    /// The normalized schema as a SQL script that recreates it in an empty
    /// database: tables, indexes, views (dependencies first), triggers, then
    /// the header pragmas.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&t.sql);
            out.push_str(";\n");
        }
        for i in self.indexes.iter().filter(|i| i.is_explicit()) {
            if let Some(sql) = &i.sql {
                out.push_str(sql);
                out.push_str(";\n");
            }
        }
        for v in &self.views {
            out.push_str(&v.sql);
            out.push_str(";\n");
        }
        for t in &self.triggers {
            out.push_str(&t.sql);
            out.push_str(";\n");
        }
        out.push_str(&format!("PRAGMA user_version = {};\n", self.user_version));
        out.push_str(&format!(
            "PRAGMA application_id = {};\n",
            self.application_id
        ));
        out
    }

    /// A content hash of the normalized schema (hex SHA-256), for history
    /// rows and backup listings.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.to_sql().as_bytes()))
    }
}

/// SQLite's default page size: a database with another one chose it.
pub const DEFAULT_PAGE_SIZE: i64 = 4096;

/// The value a script sets with `PRAGMA [main.]name = value` (or
/// `PRAGMA name(value)`), the last one winning; `auto_vacuum` names are
/// turned into their numbers.
fn script_pragma(script: &str, name: &str) -> Option<i64> {
    let tokens = sqltext::tokenize(script);
    let mut found = None;
    for (i, t) in tokens.iter().enumerate() {
        if !t.token.is_kw("PRAGMA") {
            continue;
        }
        let mut j = i + 1;
        if matches!(tokens.get(j + 1).map(|t| &t.token), Some(Token::Punct(p)) if p == ".") {
            if !tokens
                .get(j)
                .and_then(|t| t.token.ident())
                .is_some_and(|s| s.eq_ignore_ascii_case("main"))
            {
                continue;
            }
            j += 2;
        }
        let named = tokens
            .get(j)
            .and_then(|t| t.token.ident())
            .is_some_and(|s| s.eq_ignore_ascii_case(name));
        let assigns = matches!(tokens.get(j + 1).map(|t| &t.token), Some(Token::Punct(p)) if p == "=" || p == "(");
        if !(named && assigns) {
            continue;
        }
        let value = match tokens.get(j + 2).map(|t| &t.token) {
            Some(Token::Literal(n)) => n.parse::<i64>().ok(),
            Some(Token::Str(s)) => {
                Some(s.trim_matches('\'').to_string()).and_then(|w| word_value(&w))
            }
            Some(Token::Word(w) | Token::Quoted(w)) => word_value(w),
            _ => None,
        };
        if value.is_some() {
            found = value;
        }
    }
    found
}

fn word_value(w: &str) -> Option<i64> {
    match w.to_ascii_uppercase().as_str() {
        "NONE" | "FALSE" | "OFF" | "NO" => Some(0),
        "FULL" | "TRUE" | "ON" | "YES" => Some(1),
        "INCREMENTAL" => Some(2),
        n => n.parse().ok(),
    }
}

impl Table {
    /// The value of a virtual table's `key = value` argument
    /// (`content = 'notes'` of an FTS table), unquoted.
    pub fn module_arg(&self, key: &str) -> Option<String> {
        self.virtual_module.as_ref()?;
        let tokens = sqltext::tokenize(&self.raw_sql);
        let using = tokens.iter().position(|t| t.token.is_kw("USING"))?;
        let open = tokens[using..]
            .iter()
            .position(|t| matches!(&t.token, Token::Punct(p) if p == "("))?
            + using;
        let (items, _) = sqltext::split_parenthesized(&tokens, open);
        items.iter().find_map(|item| match item {
            [k, eq, v]
                if matches!(&eq.token, Token::Punct(p) if p == "=")
                    && k.token.ident().is_some_and(|k| k.eq_ignore_ascii_case(key)) =>
            {
                match &v.token {
                    Token::Str(s) => {
                        Some(s[1..s.len().saturating_sub(1).max(1)].replace("''", "'"))
                    }
                    Token::Word(w) | Token::Quoted(w) => Some(w.clone()),
                    Token::Literal(l) => Some(l.clone()),
                    Token::Punct(_) => None,
                }
            }
            _ => None,
        })
    }
}

fn read_table(
    conn: &Connection,
    db_name: &str,
    name: &str,
    raw_sql: &str,
    is_virtual: bool,
    without_rowid: bool,
    strict: bool,
) -> Result<Table> {
    let q = sqltext::quote_ident(db_name);
    let parsed = parse_create_table(raw_sql);
    let mut stmt = conn.prepare(&format!(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM {q}.pragma_table_xinfo(?1)"
    ))?;
    let mut columns: Vec<Column> = stmt
        .query_map([name], |r| {
            let decl_type: String = r.get(1)?;
            let hidden: i64 = r.get(5)?;
            let default: Option<String> = r.get(3)?;
            Ok(Column {
                name: r.get(0)?,
                affinity: affinity(&decl_type).to_string(),
                decl_type,
                not_null: r.get(2)?,
                default: default.map(|d| sqltext::normalize(&d)),
                pk: r.get(4)?,
                collation: "BINARY".to_string(),
                kind: match hidden {
                    1 => ColumnKind::Hidden,
                    2 => ColumnKind::Virtual,
                    3 => ColumnKind::Stored,
                    _ => ColumnKind::Normal,
                },
                generated: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut autoincrement = false;
    if !is_virtual {
        for c in &mut columns {
            if let Ok((_, coll, _, _, autoinc)) =
                conn.column_metadata(Some(db_name), name, c.name.as_str())
            {
                if let Some(coll) = coll {
                    c.collation = coll.to_string_lossy().to_uppercase();
                }
                autoincrement |= autoinc;
            }
            c.generated = parsed
                .generated
                .iter()
                .find(|(col, _)| col.eq_ignore_ascii_case(&c.name))
                .map(|(_, e)| e.clone());
        }
    }
    let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);

    let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM {q}.pragma_foreign_key_list(?1) ORDER BY id, seq"
    ))?;
    let rows = stmt.query_map([name], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (id, table, from, to, on_update, on_delete) = row?;
        let fk = fks.entry(id).or_insert_with(|| ForeignKey {
            columns: Vec::new(),
            ref_table: table,
            ref_columns: Vec::new(),
            on_update,
            on_delete,
        });
        fk.columns.push(from);
        if let Some(to) = to {
            fk.ref_columns.push(to);
        }
    }
    let mut foreign_keys: Vec<ForeignKey> = fks.into_values().collect();
    foreign_keys.sort();

    let mut uniques = Vec::new();
    if !is_virtual {
        let mut stmt = conn.prepare(&format!(
            "SELECT name FROM {q}.pragma_index_list(?1) WHERE origin = 'u' ORDER BY name"
        ))?;
        let names: Vec<String> = stmt
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for index in names {
            let cols = index_columns(conn, db_name, &index)?;
            uniques.push(
                cols.into_iter()
                    .map(|c| c.name.unwrap_or_default())
                    .collect(),
            );
        }
        uniques.sort();
    }

    let rowid_alias = !is_virtual
        && !without_rowid
        && pk.len() == 1
        && pk[0].decl_type.eq_ignore_ascii_case("INTEGER")
        && conn.query_row(
            &format!("SELECT count(*) FROM {q}.pragma_index_list(?1) WHERE origin = 'pk'"),
            [name],
            |r| r.get::<_, i64>(0),
        )? == 0;
    let primary_key = pk.iter().map(|c| c.name.clone()).collect();

    Ok(Table {
        name: name.to_string(),
        sql: sqltext::normalize(raw_sql),
        raw_sql: raw_sql.to_string(),
        columns,
        primary_key,
        foreign_keys,
        uniques,
        checks: parsed.checks,
        without_rowid,
        strict,
        autoincrement,
        virtual_module: is_virtual.then(|| parsed.module.unwrap_or_default()),
        rowid_alias,
    })
}

fn index_columns(conn: &Connection, db_name: &str, index: &str) -> Result<Vec<IndexColumn>> {
    let q = sqltext::quote_ident(db_name);
    let mut stmt = conn.prepare(&format!(
        "SELECT cid, name, \"desc\", coll FROM {q}.pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno"
    ))?;
    let cols = stmt
        .query_map([index], |r| {
            let cid: i64 = r.get(0)?;
            let name: Option<String> = r.get(1)?;
            Ok(IndexColumn {
                name: if cid == -2 {
                    None
                } else {
                    name.or(Some("rowid".into()))
                },
                desc: r.get(2)?,
                collation: r
                    .get::<_, Option<String>>(3)?
                    .unwrap_or_default()
                    .to_uppercase(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(cols)
}

fn read_indexes(
    conn: &Connection,
    db_name: &str,
    table: &str,
    stored_sql: &BTreeMap<String, String>,
) -> Result<Vec<Index>> {
    let q = sqltext::quote_ident(db_name);
    let mut stmt = conn.prepare(&format!(
        "SELECT name, \"unique\", origin, partial FROM {q}.pragma_index_list(?1)"
    ))?;
    let list: Vec<(String, bool, String, bool)> = stmt
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (name, unique, origin, partial) in list {
        let raw_sql = stored_sql.get(&name).cloned();
        out.push(Index {
            columns: index_columns(conn, db_name, &name)?,
            sql: raw_sql.as_deref().map(sqltext::normalize),
            raw_sql,
            table: table.to_string(),
            name,
            unique,
            partial,
            origin,
        });
    }
    Ok(out)
}

/// What the CREATE TABLE text says that pragmas do not.
#[derive(Default)]
struct ParsedTable {
    checks: Vec<String>,
    generated: Vec<(String, String)>,
    module: Option<String>,
}

fn parse_create_table(sql: &str) -> ParsedTable {
    let tokens = sqltext::tokenize(sql);
    let mut parsed = ParsedTable::default();
    if let Some(using) = tokens.iter().position(|t| t.token.is_kw("USING")) {
        parsed.module = tokens
            .get(using + 1)
            .and_then(|t| t.token.ident())
            .map(str::to_ascii_lowercase);
        return parsed;
    }
    let Some(open) = tokens
        .iter()
        .position(|t| matches!(&t.token, Token::Punct(p) if p == "("))
    else {
        return parsed;
    };
    let (items, _) = sqltext::split_parenthesized(&tokens, open);
    for item in items {
        let Some(first) = item.first() else { continue };
        let is_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|k| first.token.is_kw(k));
        let column = (!is_constraint).then(|| first.token.ident().unwrap_or("").to_string());
        let mut i = 0;
        while i < item.len() {
            let t = &item[i].token;
            let paren_follows =
                matches!(item.get(i + 1).map(|t| &t.token), Some(Token::Punct(p)) if p == "(");
            if (t.is_kw("CHECK") || (t.is_kw("AS") && column.is_some())) && paren_follows {
                let (_, close) = sqltext::split_parenthesized(item, i + 1);
                let expr = sqltext::render(&item[i + 2..close.min(item.len())]);
                if t.is_kw("CHECK") {
                    parsed.checks.push(expr);
                } else if let Some(col) = &column {
                    parsed.generated.push((col.clone(), expr));
                }
                i = close;
            }
            i += 1;
        }
    }
    parsed.checks.sort();
    parsed
}

/// Orders views so that a view comes after the views it reads from, and by
/// name otherwise.
fn order_views(mut views: Vec<View>) -> Vec<View> {
    views.sort_by_key(|v| v.name.to_lowercase());
    let names: Vec<String> = views.iter().map(|v| v.name.to_lowercase()).collect();
    let deps: Vec<Vec<usize>> = views
        .iter()
        .map(|v| {
            let words: Vec<String> = sqltext::tokenize(&v.raw_sql)
                .iter()
                .filter_map(|t| t.token.ident().map(str::to_lowercase))
                .collect();
            names
                .iter()
                .enumerate()
                .filter(|(_, n)| **n != v.name.to_lowercase() && words.contains(n))
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let mut placed = vec![false; views.len()];
    let mut order = Vec::with_capacity(views.len());
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        placed: &mut [bool],
        order: &mut Vec<usize>,
        depth: usize,
    ) {
        if placed[i] || depth > deps.len() {
            return;
        }
        for &d in &deps[i] {
            visit(d, deps, placed, order, depth + 1);
        }
        if !placed[i] {
            placed[i] = true;
            order.push(i);
        }
    }
    for i in 0..views.len() {
        visit(i, &deps, &mut placed, &mut order, 0);
    }
    let mut slots: Vec<Option<View>> = views.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(sql: &str) -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        Schema::read(&conn, "main").unwrap()
    }

    #[test]
    fn reads_columns_and_constraints() {
        let s = schema_of(
            "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT COLLATE NOCASE NOT NULL DEFAULT 'x' CHECK (length(name) > 0), n INT UNIQUE, g INT AS (n * 2) STORED);
             CREATE TABLE b(a_id INT REFERENCES a(id) ON DELETE CASCADE, k TEXT, PRIMARY KEY (a_id, k)) WITHOUT ROWID;",
        );
        let a = s.table("A").unwrap();
        assert!(a.autoincrement);
        let name = &a.columns[1];
        assert_eq!(name.collation, "NOCASE");
        assert_eq!(name.default.as_deref(), Some("'x'"));
        assert!(name.not_null);
        assert_eq!(a.checks, vec!["length(name) > 0"]);
        assert_eq!(a.uniques, vec![vec!["n".to_string()]]);
        assert_eq!(a.columns[3].kind, ColumnKind::Stored);
        assert_eq!(a.columns[3].generated.as_deref(), Some("n * 2"));
        let b = s.table("b").unwrap();
        assert!(b.without_rowid);
        assert_eq!(b.primary_key, vec!["a_id", "k"]);
        assert_eq!(b.foreign_keys[0].on_delete, "CASCADE");
    }

    #[test]
    fn file_settings_a_script_sets() {
        let script = "PRAGMA main.page_size = 8192; CREATE TABLE t(x);\nPRAGMA auto_vacuum(incremental); PRAGMA other.page_size = 1024;";
        assert_eq!(script_pragma(script, "page_size"), Some(8192));
        assert_eq!(script_pragma(script, "auto_vacuum"), Some(2));
        assert_eq!(
            script_pragma("PRAGMA auto_vacuum = 'FULL';", "auto_vacuum"),
            Some(1)
        );
        assert_eq!(
            script_pragma("CREATE TABLE page_size(x);", "page_size"),
            None
        );
    }

    #[test]
    fn module_arguments_and_rowid_aliases() {
        let s = schema_of(
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
             CREATE VIRTUAL TABLE f USING fts5(body, content = 'notes', content_rowid='id');
             CREATE VIRTUAL TABLE c USING fts5(body, content='');
             CREATE TABLE d(id INTEGER PRIMARY KEY DESC, v);
             CREATE TABLE e(id INT PRIMARY KEY, v);",
        );
        let f = s.table("f").unwrap();
        assert_eq!(f.module_arg("content").as_deref(), Some("notes"));
        assert_eq!(f.module_arg("CONTENT_ROWID").as_deref(), Some("id"));
        assert_eq!(
            s.table("c").unwrap().module_arg("content").as_deref(),
            Some("")
        );
        assert_eq!(s.table("notes").unwrap().module_arg("content"), None);
        assert!(s.table("notes").unwrap().rowid_alias);
        assert!(
            !s.table("d").unwrap().rowid_alias,
            "PRIMARY KEY DESC is no alias"
        );
        assert!(!s.table("e").unwrap().rowid_alias, "INT is not INTEGER");
    }

    #[test]
    fn views_come_after_their_dependencies() {
        let s = schema_of(
            "CREATE TABLE t(x); CREATE VIEW b AS SELECT x FROM t; CREATE VIEW a AS SELECT x FROM b;",
        );
        let names: Vec<&str> = s.views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["b", "a"]);
    }
}
