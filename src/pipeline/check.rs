//! `integrity_check` and `foreign_key_check`, collected in full.

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;

/// One row that violates a foreign key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct FkViolation {
    pub table: String,
    pub rowid: Option<i64>,
    pub parent: String,
}

/// What SQLite's own checks found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Health {
    /// Messages of `integrity_check` (empty when it said `ok`).
    pub integrity: Vec<String>,
    pub foreign_keys: Vec<FkViolation>,
}

impl Health {
    pub fn is_clean(&self) -> bool {
        self.integrity.is_empty() && self.foreign_keys.is_empty()
    }

    /// A readable report, one problem per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.integrity.is_empty() {
            out.push_str("integrity_check: ok\n");
        } else {
            out.push_str(&format!(
                "integrity_check: {} problem(s)\n",
                self.integrity.len()
            ));
            for m in &self.integrity {
                out.push_str(&format!("  {m}\n"));
            }
        }
        if self.foreign_keys.is_empty() {
            out.push_str("foreign_key_check: ok\n");
        } else {
            out.push_str(&format!(
                "foreign_key_check: {} row(s) reference missing parents\n",
                self.foreign_keys.len()
            ));
            for v in self.foreign_keys.iter().take(20) {
                let row = v
                    .rowid
                    .map_or("(no rowid)".to_string(), |r| format!("rowid {r}"));
                out.push_str(&format!("  {} {row} -> {}\n", v.table, v.parent));
            }
            if self.foreign_keys.len() > 20 {
                out.push_str(&format!("  … and {} more\n", self.foreign_keys.len() - 20));
            }
        }
        out
    }
}

/// Runs `integrity_check` (or `quick_check` when `quick`) and
/// `foreign_key_check` on the `main` database of a connection.
pub fn health(conn: &Connection, quick: bool) -> Result<Health> {
    Ok(Health {
        integrity: integrity(conn, quick)?,
        foreign_keys: foreign_key_violations(conn)?,
    })
}

/// The messages of `integrity_check` (or `quick_check` when `quick`) on
/// `main`; empty when it said `ok`.
pub fn integrity(conn: &Connection, quick: bool) -> Result<Vec<String>> {
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let mut stmt = conn.prepare(&format!("PRAGMA main.{pragma}"))?;
    let messages = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|m| m != "ok")
        .collect();
    Ok(messages)
}

/// `quick_check` of one table of `main` and its indexes (the page
/// accounting of the whole file is left out, as SQLite does for one table).
pub fn quick_check_of(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!(
        "PRAGMA main.quick_check({})",
        crate::sqltext::quote_ident(table)
    ))?;
    let messages = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(messages.into_iter().filter(|m| m != "ok").collect())
}

/// The rows of the given tables of `main` that violate a foreign key.
pub fn foreign_key_violations_in(conn: &Connection, tables: &[String]) -> Result<Vec<FkViolation>> {
    let mut v = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!(
            "PRAGMA main.foreign_key_check({})",
            crate::sqltext::quote_ident(t)
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(FkViolation {
                table: r.get(0)?,
                rowid: r.get(1)?,
                parent: r.get(2)?,
            })
        })?;
        v.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    v.sort();
    Ok(v)
}

/// Every row of `main` that violates a foreign key.
pub fn foreign_key_violations(conn: &Connection) -> Result<Vec<FkViolation>> {
    let mut stmt = conn.prepare("PRAGMA main.foreign_key_check")?;
    let mut v: Vec<FkViolation> = stmt
        .query_map([], |r| {
            Ok(FkViolation {
                table: r.get(0)?,
                rowid: r.get(1)?,
                parent: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    v.sort();
    Ok(v)
}
