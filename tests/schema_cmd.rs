//! `sqlmorph schema`: every kind of object is read, and the SQL output
//! round-trips.

use serde_json::Value;

use crate::support::Workspace;

const EVERYTHING: &str = r#"
CREATE TABLE users(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT COLLATE NOCASE NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT 'anon' CHECK (length(name) > 0),
    score REAL,
    doubled REAL GENERATED ALWAYS AS (score * 2) VIRTUAL,
    stored_len INT AS (length(name)) STORED
);
CREATE TABLE tags(name TEXT PRIMARY KEY, n INT) WITHOUT ROWID;
CREATE TABLE metric(id INTEGER PRIMARY KEY, value INTEGER, label TEXT) STRICT;
CREATE TABLE user_tags(
    user_id INT NOT NULL REFERENCES users(id) ON DELETE CASCADE ON UPDATE SET NULL,
    tag TEXT NOT NULL REFERENCES tags(name),
    PRIMARY KEY (user_id, tag),
    CHECK (tag <> '')
);
CREATE TABLE "odd name"("a b" TEXT, [c] INT);
CREATE INDEX users_score ON users(score DESC) WHERE score IS NOT NULL;
CREATE INDEX users_lower ON users(lower(name));
CREATE UNIQUE INDEX metric_label ON metric(label COLLATE NOCASE);
CREATE VIEW top_users AS SELECT id, name FROM users WHERE score > 10;
CREATE VIEW top_names AS SELECT name FROM top_users;
CREATE TRIGGER users_ai AFTER INSERT ON users BEGIN UPDATE metric SET value = value + 1; END;
CREATE VIRTUAL TABLE docs USING fts5(title, body);
CREATE TABLE _sqlmorph_history(id INTEGER PRIMARY KEY);
INSERT INTO users(email, name) VALUES ('a@x', 'Ann');
PRAGMA user_version = 42;
PRAGMA application_id = 1234;
"#;

fn json_schema(ws: &Workspace, db: &std::path::Path) -> Value {
    let out = ws
        .cmd()
        .args(["schema", "--format", "json"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("{name} not found in {list}"))
}

#[test]
fn every_object_kind_is_read() {
    let ws = Workspace::new();
    let db = ws.db("all.sqlite3", EVERYTHING);
    let s = json_schema(&ws, &db);

    let names: Vec<&str> = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["docs", "metric", "odd name", "tags", "user_tags", "users"],
        "no shadow, internal or _sqlmorph_ tables"
    );

    let users = find(&s["tables"], "users");
    assert_eq!(users["autoincrement"], true);
    assert_eq!(users["primary_key"], serde_json::json!(["id"]));
    assert_eq!(users["uniques"], serde_json::json!([["email"]]));
    assert_eq!(users["checks"], serde_json::json!(["length(name) > 0"]));
    let email = find(&users["columns"], "email");
    assert_eq!(email["collation"], "NOCASE");
    assert_eq!(email["not_null"], true);
    assert_eq!(email["affinity"], "TEXT");
    let name = find(&users["columns"], "name");
    assert_eq!(name["default"], "'anon'");
    let id = find(&users["columns"], "id");
    assert_eq!(id["pk"], 1);
    assert_eq!(id["affinity"], "INTEGER");
    assert_eq!(find(&users["columns"], "score")["affinity"], "REAL");
    let doubled = find(&users["columns"], "doubled");
    assert_eq!(doubled["kind"], "virtual");
    assert_eq!(doubled["generated"], "score * 2");
    assert_eq!(find(&users["columns"], "stored_len")["kind"], "stored");

    let tags = find(&s["tables"], "tags");
    assert_eq!(tags["without_rowid"], true);
    assert_eq!(find(&s["tables"], "metric")["strict"], true);

    let ut = find(&s["tables"], "user_tags");
    assert_eq!(ut["primary_key"], serde_json::json!(["user_id", "tag"]));
    let fks = ut["foreign_keys"].as_array().unwrap();
    assert_eq!(fks.len(), 2);
    let to_users = fks.iter().find(|f| f["ref_table"] == "users").unwrap();
    assert_eq!(to_users["on_delete"], "CASCADE");
    assert_eq!(to_users["on_update"], "SET NULL");
    assert_eq!(ut["checks"], serde_json::json!(["tag <> ''"]));

    let odd = find(&s["tables"], "odd name");
    assert_eq!(odd["columns"][0]["name"], "a b");

    let docs = find(&s["tables"], "docs");
    assert_eq!(docs["virtual_module"], "fts5");

    let partial = find(&s["indexes"], "users_score");
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["columns"][0]["desc"], true);
    let expr = find(&s["indexes"], "users_lower");
    assert_eq!(
        expr["columns"][0]["name"],
        Value::Null,
        "expression key part"
    );
    let uniq = find(&s["indexes"], "metric_label");
    assert_eq!(uniq["unique"], true);
    assert_eq!(uniq["columns"][0]["collation"], "NOCASE");
    let auto = s["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["origin"] == "u")
        .expect("automatic index");
    assert_eq!(auto["table"], "users");
    assert_eq!(auto["sql"], Value::Null);

    let views: Vec<&str> = s["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(views, vec!["top_users", "top_names"], "dependencies first");
    assert_eq!(find(&s["triggers"], "users_ai")["table"], "users");
    assert_eq!(s["user_version"], 42);
    assert_eq!(s["application_id"], 1234);
}

#[test]
fn sql_output_round_trips_and_is_deterministic() {
    let ws = Workspace::new();
    let db = ws.db("all.sqlite3", EVERYTHING);
    let first = ws.cmd().arg("schema").arg(&db).output().unwrap();
    assert!(first.status.success());
    let second = ws.cmd().arg("schema").arg(&db).output().unwrap();
    assert_eq!(first.stdout, second.stdout, "deterministic");
    let sql = String::from_utf8(first.stdout).unwrap();
    assert!(
        sql.contains("WHERE score IS NOT NULL"),
        "partial index kept:\n{sql}"
    );

    let copy = ws.db("copy.sqlite3", &sql);
    ws.cmd()
        .arg("diff")
        .arg(&db)
        .arg(&copy)
        .assert()
        .code(0)
        .stdout("No differences.\n");
    let script = ws.file("copy.sql", &sql);
    ws.cmd().arg("diff").arg(&script).arg(&db).assert().code(0);
}

#[test]
fn a_sql_file_is_a_schema_too() {
    let ws = Workspace::new();
    let script = ws.file(
        "s.sql",
        "-- a comment\nCREATE TABLE t(a INT); PRAGMA user_version = 7;\n",
    );
    let out = ws.cmd().arg("schema").arg(&script).output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "CREATE TABLE t(a INT);\nPRAGMA user_version = 7;\nPRAGMA application_id = 0;\n"
    );
}

/// SQLite's own parser splits a `.sql` source: a trigger whose body holds
/// `;` in strings, `CASE … END` and `BEGIN`/`END` in strings stays whole,
/// and the last statement needs no `;`.
#[test]
fn a_sql_file_keeps_trigger_bodies_whole() {
    let ws = Workspace::new();
    let body = "CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN\n  \
        INSERT INTO log VALUES(CASE WHEN new.a > 1 THEN 'big; END' ELSE 'BEGIN;' END);\n  \
        UPDATE log SET m = m || ';' WHERE m = 'x';\nEND";
    let script = ws.file(
        "s.sql",
        &format!(
            "CREATE TABLE t(a INT);\nCREATE TABLE log(m TEXT);\n{body};\nCREATE INDEX t_a ON t(a)"
        ),
    );
    let s = json_schema(&ws, &script);
    assert_eq!(find(&s["triggers"], "t_ai")["table"], "t");
    assert!(find(&s["indexes"], "t_a").is_object(), "{s}");
    let out = ws.cmd().arg("schema").arg(&script).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let whole = "CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN INSERT INTO log VALUES \
        (CASE WHEN new.a > 1 THEN 'big; END' ELSE 'BEGIN;' END); \
        UPDATE log SET m = m || ';' WHERE m = 'x'; END;\n";
    assert!(text.contains(whole), "{text}");
}
