//! `sqlmorph check`: integrity and foreign keys, with exit codes.

use crate::support::{Workspace, stdout_of};

#[test]
fn clean_database_exits_zero() {
    let ws = Workspace::new();
    let db = ws.db("a.sqlite3", "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INT REFERENCES p(id)); INSERT INTO p VALUES (1); INSERT INTO c VALUES (1);");
    let out = ws.cmd().arg("check").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    assert!(text.contains("integrity_check: ok"), "{text}");
    assert!(text.contains("foreign_key_check: ok"), "{text}");
}

#[test]
fn foreign_key_violations_exit_one_and_are_listed() {
    let ws = Workspace::new();
    let db = ws.db(
        "a.sqlite3",
        "PRAGMA foreign_keys = OFF; CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id)); INSERT INTO c VALUES (7, 99);",
    );
    let out = ws.cmd().arg("check").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout_of(&out);
    assert!(text.contains("c rowid 7 -> p"), "{text}");

    let out = ws
        .cmd()
        .args(["check", "--format", "json"])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["foreign_keys"][0]["rowid"], 7);
    assert_eq!(v["foreign_keys"][0]["parent"], "p");
}

#[test]
fn broken_index_is_an_integrity_problem() {
    let ws = Workspace::new();
    let db = ws.db("a.sqlite3", "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); CREATE INDEX ta ON t(a); INSERT INTO t VALUES (1, 'x'), (2, 'y');");
    // Point the index at other rows behind SQLite's back.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX ta ON t(id)' WHERE name = 'ta'; PRAGMA writable_schema = OFF;").unwrap();
    drop(conn);
    let out = ws.cmd().arg("check").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout_of(&out));
    assert!(stdout_of(&out).contains("problem"), "{}", stdout_of(&out));
}
