//! Test helpers: temporary workspaces, databases built from SQL, the binary.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// A temporary directory that tests put files in.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a text file.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Creates a SQLite database by executing `sql`.
    pub fn db(&self, name: &str, sql: &str) -> PathBuf {
        let p = self.path(name);
        let conn = Connection::open(&p).unwrap();
        conn.execute_batch(sql).unwrap();
        p
    }

    /// Every file below the workspace with its SHA-256: a fingerprint of the
    /// whole tree, to prove a command changed nothing.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        tree_hashes(self.dir.path())
    }

    /// A command for the binary, run inside the workspace.
    pub fn cmd(&self) -> Command {
        let mut c = sqlmorph();
        c.current_dir(self.dir.path());
        c
    }
}

/// The `sqlmorph` binary, with colour and terminal detection neutralized.
pub fn sqlmorph() -> Command {
    let mut c = Command::cargo_bin("sqlmorph").unwrap();
    c.env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("TERM", "xterm");
    // The environment of whoever runs the tests must not steer the binary.
    for var in [
        "SQLMORPH_SOURCE",
        "SQLMORPH_PRODUCTION",
        "SQLMORPH_CONFIG",
        "SQLMORPH_BACKUP_DIR",
        "SQLMORPH_WORK_DIR",
        "SQLMORPH_SSH_IDENTITY",
        "SQLMORPH_SSH_KNOWN_HOSTS",
    ] {
        c.env_remove(var);
    }
    c
}

pub fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), "dir".into());
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), sha256_file(&p));
            }
        }
    }
    out
}

/// Output of a finished command as text.
pub fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a query and returns the first column of every row as text.
pub fn column(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        let v: rusqlite::types::Value = r.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Null => "NULL".to_string(),
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Real(f) => f.to_string(),
            rusqlite::types::Value::Text(t) => t,
            rusqlite::types::Value::Blob(b) => format!("x'{}'", hex::encode(b)),
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}
pub mod litestream;
pub mod sshd;

impl Workspace {
    /// A std command for the binary (for spawning in the background).
    pub fn cmd_std(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlmorph"));
        c.current_dir(self.dir.path()).env_remove("NO_COLOR");
        c
    }
}
pub mod tty;

pub mod paths;
pub use paths::{both_ways, run_both_ways};

/// A workspace with `prod.sqlite3` built from `prod_sql` and `schema.sql`.
pub fn setup(prod_sql: &str, source_sql: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let prod = ws.db("prod.sqlite3", prod_sql);
    ws.file("schema.sql", source_sql);
    (ws, prod)
}

/// The workspace's run directories (`.sqlmorph/runs/*`), oldest first.
pub fn run_dirs(ws: &Workspace) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `sqlmorph run [recipe] --source schema.sql --production prod.sqlite3 …`.
pub fn run_migration(ws: &Workspace, recipe: Option<&str>, extra: &[&str]) -> std::process::Output {
    let mut c = ws.cmd();
    c.arg("run");
    if let Some(r) = recipe {
        c.arg(r);
    }
    c.args(["--source", "schema.sql", "--production", "prod.sqlite3"])
        .args(extra)
        .output()
        .unwrap()
}

/// The exit code, with both outputs shown when it is not the expected one.
pub fn assert_code(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout_of(out),
        stderr_of(out)
    );
}

/// Production has exactly the source's schema, and SQLite finds nothing
/// wrong with it.
pub fn assert_sound(ws: &Workspace) {
    let out = ws
        .cmd()
        .args(["diff", "prod.sqlite3", "schema.sql"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let prod = ws.path("prod.sqlite3");
    assert_eq!(column(&prod, "PRAGMA integrity_check"), vec!["ok"]);
    assert_eq!(
        column(&prod, "PRAGMA foreign_key_check"),
        Vec::<String>::new()
    );
    let out = ws.cmd().args(["check", "prod.sqlite3"]).output().unwrap();
    assert_code(&out, 0);
}

/// A database's logical content: its schema (sqlite_schema, in order) and
/// every row of every table (in rowid or key order), as text. Equal for two
/// files that hold the same database, whatever their bytes.
pub fn content(db: &Path) -> String {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = String::new();
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (kind, name, sql) in objects {
        out.push_str(&format!("{kind} {name}: {}\n", sql.unwrap_or_default()));
        if kind != "table" || name.starts_with("sqlite_") {
            continue;
        }
        let q = format!("SELECT * FROM \"{}\" ORDER BY 1", name.replace('"', "\"\""));
        let mut stmt = conn.prepare(&q).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap();
        for row in rows {
            out.push_str(&format!("  {}\n", row.unwrap().join("|")));
        }
    }
    out
}
