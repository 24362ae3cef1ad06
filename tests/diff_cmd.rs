//! `sqlmorph diff`: every kind of change is found, formatting is not a change,
//! and the output is stable.

use serde_json::Value;

use crate::support::{Workspace, stdout_of};

fn diff_json(before: &str, after: &str) -> (i32, Vec<Value>) {
    let ws = Workspace::new();
    let a = ws.file("a.sql", before);
    let b = ws.file("b.sql", after);
    let out = ws
        .cmd()
        .args(["diff", "--format", "json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["identical"], out.status.code() == Some(0));
    (
        out.status.code().unwrap(),
        v["changes"].as_array().unwrap().clone(),
    )
}

/// Asserts that exactly one change of `kind` names `name` and that its
/// details mention `detail`.
fn expect(before: &str, after: &str, kind: &str, name: &str, detail: &str) {
    let (code, changes) = diff_json(before, after);
    assert_eq!(code, 1, "{before} -> {after}");
    let hit = changes
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {changes:#?}"));
    let details: Vec<&str> = hit["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        detail.is_empty() || details.iter().any(|d| d.contains(detail)),
        "{kind} {name}: {details:?} lacks {detail:?}"
    );
}

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT);";

#[test]
fn tables_added_and_removed() {
    expect(
        T,
        &format!("{T} CREATE TABLE u(x);"),
        "table_added",
        "u",
        "",
    );
    expect(
        &format!("{T} CREATE TABLE u(x);"),
        T,
        "table_removed",
        "u",
        "",
    );
}

#[test]
fn columns_added_removed_and_changed() {
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT, c TEXT DEFAULT 'z');",
        "column_added",
        "c",
        "DEFAULT 'z'",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT);",
        "column_removed",
        "b",
        "INT",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL);",
        "column_changed",
        "b",
        "type: INT -> REAL",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INT);",
        "column_changed",
        "a",
        "NOT NULL added",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT DEFAULT 'x', b INT);",
        "column_changed",
        "a",
        "default: (none) -> 'x'",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER, a TEXT, b INT, PRIMARY KEY (id, a));",
        "column_changed",
        "a",
        "primary key position: 0 -> 2",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE, b INT);",
        "column_changed",
        "a",
        "collation: BINARY -> NOCASE",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT AS (id * 2));",
        "column_changed",
        "b",
        "generated",
    );
}

#[test]
fn constraints_and_table_options() {
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT UNIQUE, b INT);",
        "table_changed",
        "t",
        "constraint added: unique (a)",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT CHECK (b > 0));",
        "table_changed",
        "t",
        "CHECK added: b > 0",
    );
    expect(
        T,
        "CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT REFERENCES p(id) ON DELETE CASCADE);",
        "table_changed",
        "t",
        "foreign key added",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT) STRICT;",
        "table_changed",
        "t",
        "STRICT added",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT) WITHOUT ROWID;",
        "table_changed",
        "t",
        "WITHOUT ROWID added",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT, b INT);",
        "table_changed",
        "t",
        "AUTOINCREMENT added",
    );
    expect(
        T,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, b INT, a TEXT);",
        "table_changed",
        "t",
        "column order changed",
    );
}

#[test]
fn indexes_views_triggers() {
    let base = format!(
        "{T} CREATE INDEX ia ON t(a); CREATE VIEW v AS SELECT a FROM t; CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;"
    );
    expect(
        &base,
        &format!("{base} CREATE INDEX ib ON t(b) WHERE b > 0;"),
        "index_added",
        "ib",
        "",
    );
    expect(
        &base,
        &base.replace("CREATE INDEX ia ON t(a);", ""),
        "index_removed",
        "ia",
        "",
    );
    let (_, changes) = diff_json(&base, &base.replace("ON t(a)", "ON t(a DESC)"));
    assert_eq!(changes[0]["kind"], "index_changed");
    assert!(changes[0]["after"].as_str().unwrap().contains("a DESC"));
    expect(
        &base,
        &format!("{base} CREATE VIEW w AS SELECT b FROM t;"),
        "view_added",
        "w",
        "",
    );
    expect(
        &base,
        &base.replace("CREATE VIEW v AS SELECT a FROM t;", ""),
        "view_removed",
        "v",
        "",
    );
    let (_, changes) = diff_json(
        &base,
        &base.replace("SELECT a FROM t", "SELECT a, b FROM t"),
    );
    assert_eq!(changes[0]["kind"], "view_changed");
    expect(
        &base,
        &base.replace(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
            "",
        ),
        "trigger_removed",
        "tr",
        "",
    );
    let (_, changes) = diff_json(&base, &base.replace("SELECT 1;", "SELECT 2;"));
    assert_eq!(changes[0]["kind"], "trigger_changed");
    assert_eq!(changes[0]["table"], "t");
}

#[test]
fn header_values() {
    expect(
        T,
        &format!("{T} PRAGMA user_version = 5;"),
        "user_version_changed",
        "user_version",
        "0 -> 5",
    );
    expect(
        T,
        &format!("{T} PRAGMA application_id = 9;"),
        "application_id_changed",
        "application_id",
        "0 -> 9",
    );
}

#[test]
fn formatting_only_differences_are_no_difference() {
    let a = r#"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x', "group" INT);
CREATE INDEX users_name ON users(name) WHERE name <> 'x';
CREATE VIEW v AS SELECT id, name FROM users WHERE id > 1;
CREATE TRIGGER tr AFTER INSERT ON users BEGIN UPDATE users SET name = 'y' WHERE id = new.id; END;"#;
    let b = r#"-- reformatted by hand
create table [users] (
    `id`    integer primary key,   /* the key */
    "name"  text not null default 'x',
    "group" int
);
create index "users_name"
    on "users" ( name )
    where name <> 'x';
CREATE   VIEW   "v" AS
  select id,name from users where id>1;
create trigger tr after insert on users
begin
  update users set name='y' where id=new.id;
end;"#;
    let (code, changes) = diff_json(a, b);
    assert_eq!(code, 0, "{changes:#?}");
    assert!(changes.is_empty());
}

#[test]
fn a_string_literal_case_change_is_a_difference() {
    expect(
        "CREATE TABLE t(a TEXT DEFAULT 'x');",
        "CREATE TABLE t(a TEXT DEFAULT 'X');",
        "column_changed",
        "a",
        "default: 'x' -> 'X'",
    );
}

#[test]
fn text_output_groups_by_object_with_a_unified_diff() {
    let ws = Workspace::new();
    let a = ws.file(
        "a.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT);",
    );
    let b = ws.file(
        "b.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, c TEXT);",
    );
    let out = ws.cmd().arg("diff").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout_of(&out);
    assert_eq!(
        text,
        "~ table t\n       CREATE TABLE t(\n         id INTEGER PRIMARY KEY,\n         a TEXT,\n      -  b INT\n      +  c TEXT\n       )\n    + column c: TEXT\n    - column b: INT\n"
    );
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("`script` (util-linux) is needed to give the binary a terminal");
    }
    let ws = Workspace::new();
    ws.file("a.sql", "CREATE TABLE t(a INT);");
    ws.file("b.sql", "CREATE TABLE t(a INT, b INT);");
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let run = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.current_dir(ws.dir.path())
            .args([
                "-qec",
                &format!("{} diff a.sql b.sql", bin.display()),
                "/dev/null",
            ])
            .env("TERM", "xterm");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(run(false).contains("\x1b[32m"), "green on a terminal");
    let plain = run(true);
    assert!(plain.contains("+ column b"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR honoured: {plain:?}");
}

#[test]
fn a_generated_column_is_virtual_whether_or_not_it_says_so() {
    let plain = "CREATE TABLE g(a INT, b INT AS (a * 2), c INT GENERATED ALWAYS AS (a + 1));";
    let spelled = "CREATE TABLE g(a INT, b INT AS (a * 2) VIRTUAL, c INT AS (a + 1) virtual);";
    let (code, changes) = diff_json(plain, spelled);
    assert_eq!((code, changes.len()), (0, 0), "{changes:#?}");
    let (code, _) = diff_json(spelled, plain);
    assert_eq!(code, 0);
    // A real difference is still one.
    expect(
        plain,
        "CREATE TABLE g(a INT, b INT AS (a * 2) STORED, c INT GENERATED ALWAYS AS (a + 1));",
        "column_changed",
        "b",
        "stored",
    );
}

#[test]
fn a_migration_between_virtual_spellings_has_nothing_to_do() {
    let (ws, _) = crate::support::setup(
        "CREATE TABLE g(a INT, b INT AS (a * 2)); INSERT INTO g(a) VALUES (1);",
        "CREATE TABLE g(a INT, b INT AS (a * 2) VIRTUAL);",
    );
    let out = crate::support::run_migration(&ws, None, &["--yes"]);
    crate::support::assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("No migration needed"),
        "{}",
        stdout_of(&out)
    );
}
