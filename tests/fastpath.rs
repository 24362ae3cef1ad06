//! The in-place path: taken exactly for the changes SQLite makes without
//! rewriting a row, with results equal to the rebuild's, production's inode
//! kept, and a live application connection seeing the new schema.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use crate::support::{
    Workspace, assert_code, assert_sound, column, run_dirs, run_migration, setup, sha256_file,
    stderr_of, stdout_of,
};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);
CREATE INDEX notes_user ON notes(user_id);
CREATE VIEW adults AS SELECT * FROM users WHERE age >= 18;
CREATE TRIGGER users_name AFTER UPDATE ON users BEGIN SELECT 1; END;
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);
INSERT INTO notes VALUES (1, 1, 'hi'), (2, 3, 'yo');";

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);";
const NOTES: &str =
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);";
const INDEX: &str = "CREATE INDEX notes_user ON notes(user_id);";
const VIEW: &str = "CREATE VIEW adults AS SELECT * FROM users WHERE age >= 18;";
const TRIGGER: &str = "CREATE TRIGGER users_name AFTER UPDATE ON users BEGIN SELECT 1; END;";

/// A source schema from its statements.
fn source(parts: &[&str]) -> String {
    parts.join("\n")
}

fn path_of(out: &Output) -> &'static str {
    let s = stdout_of(out);
    if s.contains("path: in place") && !s.contains("path: rebuild") {
        "in place"
    } else if s.contains("path: rebuild") {
        "rebuild"
    } else {
        "none"
    }
}

/// Every row of every user table, as text (history excluded).
fn data(db: &Path) -> Vec<String> {
    let tables = column(
        db,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' \
         AND name NOT LIKE '\\_sqlmorph%' ESCAPE '\\' ORDER BY name",
    );
    let mut out = Vec::new();
    for t in tables {
        out.push(format!("table {t}"));
        out.extend(column(
            db,
            &format!("SELECT quote(json_array(*)) FROM (SELECT * FROM \"{t}\") ORDER BY 1"),
        ));
    }
    out
}

/// Migrates `PROD` to `src` both ways: the default run takes the in-place
/// path, keeps the inode, passes validation and equals `--rebuild`'s result.
fn in_place_equals_rebuild(src: &str) -> Workspace {
    in_place_equals_rebuild_with(src, None, &[])
}

/// [`in_place_equals_rebuild`] with a recipe (its text) and extra flags.
fn in_place_equals_rebuild_with(src: &str, recipe: Option<&str>, extra: &[&str]) -> Workspace {
    let (ws, prod) = setup(PROD, src);
    let inode = std::fs::metadata(&prod).unwrap().ino();
    let name = recipe.map(|text| {
        ws.file("recipe.rhai", text);
        "recipe.rhai"
    });
    let args = [&["--yes"][..], extra].concat();
    let out = run_migration(&ws, name, &args);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains("Validation passed"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(std::fs::metadata(&prod).unwrap().ino(), inode);
    assert_sound(&ws);
    assert_eq!(
        column(&prod, "SELECT count(*) FROM _sqlmorph_history"),
        vec!["1"]
    );

    let (other, rebuilt) = setup(PROD, src);
    if let Some(text) = recipe {
        other.file("recipe.rhai", text);
    }
    let args = [&["--yes", "--rebuild"][..], extra].concat();
    let out = run_migration(&other, name, &args);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "rebuild", "{}", stdout_of(&out));
    assert_eq!(data(&prod), data(&rebuilt));
    let same = ws
        .cmd()
        .arg("diff")
        .arg(&prod)
        .arg(&rebuilt)
        .output()
        .unwrap();
    assert_code(&same, 0);
    ws
}

/// The run rebuilds (and still succeeds).
fn rebuilds(src: &str, recipe: Option<&str>, extra: &[&str]) {
    let (ws, _) = setup(PROD, src);
    let mut args = vec!["--yes", "--allow-destructive"];
    args.extend_from_slice(extra);
    let out = run_migration(&ws, recipe, &args);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "rebuild", "{}", stdout_of(&out));
    assert_sound(&ws);
}

#[test]
fn a_new_table_is_added_in_place() {
    in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
        "CREATE TABLE tags(id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT UNIQUE NOT NULL);",
    ]));
}

#[test]
fn a_new_index_is_added_in_place() {
    in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
        "CREATE INDEX users_age ON users(age DESC) WHERE age IS NOT NULL;",
    ]));
}

#[test]
fn a_dropped_index_is_dropped_in_place() {
    in_place_equals_rebuild(&source(&[USERS, NOTES, VIEW, TRIGGER]));
}

#[test]
fn a_new_view_is_added_in_place() {
    in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
        "CREATE VIEW minors AS SELECT name FROM users WHERE age < 18;",
    ]));
}

#[test]
fn a_dropped_view_is_dropped_in_place() {
    in_place_equals_rebuild(&source(&[USERS, NOTES, INDEX, TRIGGER]));
}

#[test]
fn a_changed_view_is_replaced_in_place() {
    in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        "CREATE VIEW adults AS SELECT id, name FROM users WHERE age >= 21;",
        TRIGGER,
    ]));
}

#[test]
fn a_new_trigger_is_added_in_place() {
    in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
        "CREATE TRIGGER notes_gone AFTER DELETE ON notes BEGIN SELECT 2; END;",
    ]));
}

#[test]
fn a_dropped_trigger_is_dropped_in_place() {
    in_place_equals_rebuild(&source(&[USERS, NOTES, INDEX, VIEW]));
}

#[test]
fn an_added_nullable_column_is_added_in_place() {
    in_place_equals_rebuild(&source(&[
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
    ]));
}

#[test]
fn added_columns_with_constant_defaults_and_a_reference_are_added_in_place() {
    let ws = in_place_equals_rebuild(&source(&[
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, \
         tz TEXT NOT NULL DEFAULT 'UTC', score REAL DEFAULT 1.5, \
         boss INTEGER REFERENCES users(id));",
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
    ]));
    assert_eq!(
        column(
            &ws.path("prod.sqlite3"),
            "SELECT tz || ':' || score || ':' || ifnull(boss, 'NULL') FROM users WHERE id = 2"
        ),
        vec!["UTC:1.5:NULL"]
    );
}

#[test]
fn every_kind_at_once_runs_in_a_working_order() {
    in_place_equals_rebuild(&source(&[
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
        NOTES,
        "CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT);",
        "CREATE INDEX tags_label ON tags(label);",
        "CREATE INDEX users_nick ON users(nick);",
        "CREATE VIEW adults AS SELECT id, nick FROM users WHERE age >= 18;",
        "CREATE TRIGGER tags_new AFTER INSERT ON tags BEGIN SELECT 3; END;",
    ]));
}

#[test]
fn a_changed_type_rebuilds() {
    rebuilds(
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age TEXT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
        None,
        &[],
    );
}

#[test]
fn a_new_not_null_column_without_default_never_goes_in_place() {
    // Production has rows, so the plan refuses it: the run stops (exit 3)
    // before any copy, and never on the in-place path.
    let (ws, _) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT NOT NULL);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
    );
    let out = run_migration(&ws, None, &["--yes", "--allow-destructive"]);
    assert_ne!(out.status.code(), Some(0));
    assert_ne!(path_of(&out), "in place", "{}", stdout_of(&out));
}

#[test]
fn a_new_check_rebuilds() {
    rebuilds(
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT CHECK (age IS NULL OR age >= 0));",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
        None,
        &[],
    );
}

#[test]
fn a_column_added_in_the_middle_rebuilds() {
    rebuilds(
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, nick TEXT, name TEXT NOT NULL, age INT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
        None,
        &[],
    );
}

#[test]
fn a_map_column_recipe_rebuilds() {
    let (ws, prod) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
    );
    ws.file(
        "recipe.rhai",
        "map_column(\"users\", \"nick\", \"upper(name)\");\nimport \"std/default\";\n",
    );
    let out = run_migration(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "rebuild", "{}", stdout_of(&out));
    assert_eq!(
        column(&prod, "SELECT nick FROM users ORDER BY id"),
        vec!["ANN", "BOB", "CY"]
    );
}

#[test]
fn the_rebuild_flag_forces_the_rebuild() {
    rebuilds(
        &source(&[
            USERS,
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE VIEW v2 AS SELECT 1;",
        ]),
        None,
        &["--rebuild"],
    );
}

#[test]
fn a_recipe_writing_the_rehearsal_is_validated_in_full_and_deployed_whole() {
    let (ws, prod) = setup(
        PROD,
        &source(&[
            USERS,
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE TABLE tags(label TEXT);",
        ]),
    );
    ws.file(
        "recipe.rhai",
        "import \"std/steps\" as steps;\nlet p = steps::prepare();\nlet db = copy(p);\n\
         sql(db, \"INSERT INTO tags VALUES ('x')\");\nsteps::finish(p, db);\n",
    );
    let out = run_migration(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("validated in full and deployed whole"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(column(&prod, "SELECT label FROM tags"), vec!["x"]);
    assert_sound(&ws);
}

#[test]
fn a_live_application_connection_sees_the_new_schema() {
    let (ws, prod) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE VIEW names AS SELECT name FROM users;",
        ]),
    );
    let app = rusqlite::Connection::open(&prod).unwrap();
    app.execute_batch("PRAGMA journal_mode=WAL").unwrap();
    let count: i64 = app
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3);
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    let names: i64 = app
        .query_row("SELECT count(*) FROM names", [], |r| r.get(0))
        .unwrap();
    assert_eq!(names, 3);
    app.execute("UPDATE users SET nick = 'a' WHERE id = 1", [])
        .unwrap();
    drop(app);
    assert_eq!(
        column(&prod, "SELECT nick FROM users WHERE id = 1"),
        vec!["a"]
    );
    assert_sound(&ws);
}

#[test]
fn a_column_before_a_table_constraint_is_added_in_place() {
    // SQLite writes an added column after the last column definition, so
    // the result is the source's table.
    let (ws, prod) = setup(
        "CREATE TABLE p(a INT, b INT, PRIMARY KEY(a));
         INSERT INTO p VALUES (1, 2), (3, 4);",
        "CREATE TABLE p(a INT, b INT, c TEXT, PRIMARY KEY(a));",
    );
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    assert_eq!(
        column(
            &prod,
            "SELECT a || ':' || ifnull(c, 'NULL') FROM p ORDER BY a"
        ),
        vec!["1:NULL", "3:NULL"]
    );
    assert_sound(&ws);
}

#[test]
fn a_rehearsal_that_misses_the_source_falls_back_to_the_rebuild() {
    // Dropping a view drops its INSTEAD OF trigger too: the rehearsal lacks
    // the (unchanged) trigger, so the run says so and rebuilds.
    let trigger =
        "CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN INSERT INTO t VALUES (new.a); END;";
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE t(a); INSERT INTO t VALUES (1); CREATE VIEW v AS SELECT a FROM t; {trigger}"
        ),
        &format!("CREATE TABLE t(a); CREATE VIEW v AS SELECT a, a + 1 AS b FROM t; {trigger}"),
    );
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("path: rebuild (the in-place rehearsal failed"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'v_ins'"
        ),
        vec!["1"]
    );
    assert_sound(&ws);
}

// ------------------------------------------------------- renames and drops

/// The newest run directory of a workspace.
fn run_dir(ws: &Workspace) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

fn json_of(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_renamed_table_is_renamed_in_place() {
    let ws = in_place_equals_rebuild_with(
        &source(&[
            USERS,
            "CREATE TABLE comments(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);",
            "CREATE INDEX notes_user ON comments(user_id);",
            VIEW,
            TRIGGER,
        ]),
        Some("rename_table(\"notes\", \"comments\");\nimport \"std/default\";\n"),
        &[],
    );
    let log = std::fs::read_to_string(run_dir(&ws).join("log.txt")).unwrap();
    assert!(log.contains("no row rewritten"), "{log}");
    assert_eq!(
        column(
            &ws.path("prod.sqlite3"),
            "SELECT body FROM comments ORDER BY id"
        ),
        vec!["hi", "yo"]
    );
    let plan = json_of(&run_dir(&ws).join("plan.json"));
    assert_eq!(plan["path"]["kind"], "in_place", "{plan}");
    let statements = plan["path"]["statements"].to_string();
    assert!(
        statements.contains("ALTER TABLE \\\"notes\\\" RENAME TO \\\"comments\\\""),
        "{statements}"
    );
    // Only the rename: the index followed the table, nothing was rebuilt.
    assert_eq!(plan["path"]["statements"].as_array().unwrap().len(), 1);
}

#[test]
fn a_renamed_column_with_an_added_column_and_index_goes_in_place() {
    // The view that the source rewrites for the new name is the view
    // SQLite's rename makes: it stays, nothing else is replaced.
    let ws = in_place_equals_rebuild_with(
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, years INT, nick TEXT);",
            NOTES,
            INDEX,
            "CREATE INDEX users_years ON users(years);",
            "CREATE VIEW adults AS SELECT * FROM users WHERE years >= 18;",
            TRIGGER,
        ]),
        Some("rename_column(\"users\", \"age\", \"years\");\nimport \"std/default\";\n"),
        &[],
    );
    let prod = ws.path("prod.sqlite3");
    assert_eq!(
        column(&prod, "SELECT ifnull(years, 'NULL') FROM users ORDER BY id"),
        vec!["31", "NULL", "7"]
    );
    assert_eq!(column(&prod, "SELECT name FROM adults"), vec!["ann"]);
    let plan = json_of(&run_dir(&ws).join("plan.json"));
    let statements: Vec<String> = plan["path"]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statements,
        vec![
            "ALTER TABLE \"users\" RENAME COLUMN \"age\" TO \"years\"",
            "ALTER TABLE \"users\" ADD COLUMN nick TEXT",
            "CREATE INDEX users_years ON users(years)",
        ]
    );
}

#[test]
fn a_rename_that_would_change_a_kept_view_rebuilds() {
    // The source keeps the view as it was (on `age`): SQLite's rename would
    // rewrite it to `years`, which is not the source, so the run rebuilds.
    let (ws, prod) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, years INT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
    );
    ws.file(
        "recipe.rhai",
        "rename_column(\"users\", \"age\", \"years\");\nimport \"std/default\";\n",
    );
    let before = sha256_file(&prod);
    let out = run_migration(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_eq!(path_of(&out), "rebuild", "{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains(
            "path: rebuild (view adults would be changed by the renames, and the source keeps it as it is)"
        ),
        "{}",
        stdout_of(&out)
    );
    // The rebuild then finds the source's view broken and stops.
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("view adults does not work on the new schema"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn a_column_dropped_by_the_recipe_is_dropped_in_place_and_checked_by_checksums() {
    let ws = in_place_equals_rebuild_with(
        &source(&[
            USERS,
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
            INDEX,
            VIEW,
            TRIGGER,
        ]),
        Some("drop_column(\"notes\", \"body\");\nimport \"std/default\";\n"),
        &[],
    );
    let log = std::fs::read_to_string(run_dir(&ws).join("log.txt")).unwrap();
    assert!(
        log.contains("rewritten: 1 table(s), 2 row(s), 2 column checksum(s)"),
        "{log}"
    );
    let report = json_of(&run_dir(&ws).join("report.json"));
    assert!(report["pages_compared"].as_u64().unwrap() > 0, "{report}");
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{report}");
    assert_eq!(tables[0]["table"], "notes");
    assert_eq!(tables[0]["rows_found"], 2);
    assert_eq!(
        tables[0]["columns_checked"],
        serde_json::json!(["id", "user_id"])
    );
    let plan = json_of(&run_dir(&ws).join("plan.json"));
    assert!(
        plan["path"]["reason"]
            .as_str()
            .unwrap()
            .contains("DROP COLUMN rewrites the rows of notes"),
        "{plan}"
    );
}

#[test]
fn a_table_dropped_with_allow_destructive_is_dropped_in_place() {
    in_place_equals_rebuild_with(
        &source(&[USERS, VIEW, TRIGGER]),
        None,
        &["--allow-destructive"],
    );
}

#[test]
fn a_column_dropped_with_allow_destructive_is_dropped_in_place() {
    in_place_equals_rebuild_with(
        &source(&[
            USERS,
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
            INDEX,
            VIEW,
            TRIGGER,
        ]),
        None,
        &["--allow-destructive"],
    );
}

#[test]
fn an_unapproved_drop_stops_the_run_as_the_rebuild_does() {
    let src = source(&[
        USERS,
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
        INDEX,
        VIEW,
        TRIGGER,
    ]);
    let mut seen = Vec::new();
    for extra in [&["--yes"][..], &["--yes", "--rebuild"][..]] {
        let (ws, prod) = setup(PROD, &src);
        let before = sha256_file(&prod);
        let out = run_migration(&ws, None, extra);
        assert_code(&out, 3);
        assert!(
            stderr_of(&out).contains("column notes.body is dropped: 2 non-NULL value(s) lost"),
            "{}",
            stderr_of(&out)
        );
        assert_eq!(path_of(&out), "none", "{}", stdout_of(&out));
        assert_eq!(sha256_file(&prod), before);
        let err = stderr_of(&out);
        seen.push(err[err.find("this migration loses data").expect(&err)..].to_string());
    }
    assert_eq!(seen[0], seen[1]);
}

/// A workspace whose production has a column of each kind DROP COLUMN
/// refuses, and the source without `column`, with `--allow-destructive`.
fn drop_rebuilds(source_sql: &str, reason: &str) {
    let (ws, _) = setup(
        "CREATE TABLE k(code TEXT PRIMARY KEY, v INT);
         CREATE TABLE p(id INTEGER PRIMARY KEY, b INT, c INT REFERENCES p(id), d INT);
         CREATE INDEX p_b ON p(b);
         INSERT INTO k VALUES ('x', 1);
         INSERT INTO p VALUES (1, 2, 1, 4), (2, 3, 1, 5);",
        source_sql,
    );
    let out = run_migration(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "rebuild", "{}", stdout_of(&out));
    assert!(stdout_of(&out).contains(reason), "{}", stdout_of(&out));
    assert_sound(&ws);
}

#[test]
fn dropping_a_primary_key_indexed_or_foreign_key_column_rebuilds() {
    let p = "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT, c INT REFERENCES p(id), d INT);";
    let k = "CREATE TABLE k(code TEXT PRIMARY KEY, v INT);";
    drop_rebuilds(
        &format!("CREATE TABLE k(v INT); {p} CREATE INDEX p_b ON p(b);"),
        "column k.code is part of the primary key",
    );
    drop_rebuilds(
        &format!("{k} CREATE TABLE p(id INTEGER PRIMARY KEY, c INT REFERENCES p(id), d INT);"),
        "column p.b is indexed",
    );
    drop_rebuilds(
        &format!(
            "{k} CREATE TABLE p(id INTEGER PRIMARY KEY, b INT, d INT); CREATE INDEX p_b ON p(b);"
        ),
        "column p.c is in a foreign key",
    );
    // The control: the plain column goes in place.
    let (ws, _) = setup(
        "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT, d INT); INSERT INTO p VALUES (1, 2, 3);",
        "CREATE TABLE p(id INTEGER PRIMARY KEY, b INT);",
    );
    let out = run_migration(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
}

#[test]
fn the_review_and_the_plan_json_say_the_path_and_why() {
    let added = source(&[
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
    ]);
    let (ws, _) = setup(PROD, &added);
    let plan = |format: &str| {
        ws.cmd()
            .args([
                "plan",
                "--source",
                "schema.sql",
                "--production",
                "prod.sqlite3",
                "--yes",
            ])
            .args(["--format", format])
            .output()
            .unwrap()
    };
    let text = plan("text");
    assert_code(&text, 0);
    assert!(
        stdout_of(&text).contains("Path: in place (1 statement(s), no row rewritten)"),
        "{}",
        stdout_of(&text)
    );
    let json = plan("json");
    assert_code(&json, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&json)).unwrap();
    assert_eq!(v["plan"]["path"]["kind"], "in_place", "{v}");
    assert_eq!(
        v["plan"]["path"]["statements"],
        serde_json::json!(["ALTER TABLE \"users\" ADD COLUMN nick TEXT"])
    );

    // The run's review says it before the approval, and --rebuild says why.
    let out = run_migration(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 0);
    let stdout = stdout_of(&out);
    let said = stdout.find("Path: rebuild (--rebuild)").expect(&stdout);
    assert!(said < stdout.find("6/10").unwrap(), "{stdout}");
    let plan = json_of(&run_dir(&ws).join("plan.json"));
    assert_eq!(plan["path"]["kind"], "rebuild", "{plan}");
    assert_eq!(plan["path"]["reason"], "--rebuild", "{plan}");

    // A change that cannot go in place: the reason names it.
    let (ws, _) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age TEXT);",
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
        ]),
    );
    let out = ws
        .cmd()
        .args([
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["plan"]["path"]["kind"], "rebuild", "{v}");
    assert!(
        v["plan"]["path"]["reason"]
            .as_str()
            .unwrap()
            .contains("table users is not copied as it is"),
        "{v}"
    );
}

#[test]
fn data_loss_goes_in_place_only_after_approve() {
    // A recipe that copies without calling `approve`: the loss was never
    // accepted, so the run does not drop in place.
    let (ws, _) = setup(
        PROD,
        &source(&[
            USERS,
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
            INDEX,
            VIEW,
            TRIGGER,
        ]),
    );
    ws.file(
        "recipe.rhai",
        "backup();\nlet p = plan(snapshot(), source());\nlet db = copy(p);\n",
    );
    let out = run_migration(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out)
            .contains("path: rebuild (the plan loses data that `approve` did not accept)"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn a_rename_accepted_at_the_terminal_goes_in_place() {
    use crate::support::tty::Tty;
    let (ws, prod) = setup(
        "CREATE TABLE practice(id INTEGER PRIMARY KEY, played INT);
         INSERT INTO practice VALUES (1, 3), (2, NULL);",
        "CREATE TABLE practice(id INTEGER PRIMARY KEY, practiced INT);",
    );
    let inode = std::fs::metadata(&prod).unwrap().ino();
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3",
            bin.display()
        ),
    );
    tty.wait_for("renamed to practiced?");
    tty.line("y");
    // The review, before the approval, says the path the answer opened.
    let screen =
        tty.wait_for("Build, validate and deploy the migrated database to prod.sqlite3? [y/N]");
    assert!(
        screen.contains("Path: in place (1 statement(s), no row rewritten)"),
        "{screen}"
    );
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("path: in place"), "{screen}");
    assert_eq!(std::fs::metadata(&prod).unwrap().ino(), inode);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(practiced, 'NULL') FROM practice ORDER BY id"
        ),
        vec!["1:3", "2:NULL"]
    );
    assert_sound(&ws);
}

#[test]
fn a_user_version_and_application_id_bump_goes_in_place() {
    let ws = in_place_equals_rebuild(&source(&[
        USERS,
        NOTES,
        INDEX,
        VIEW,
        TRIGGER,
        "CREATE VIEW minors AS SELECT name FROM users WHERE age < 18;",
        "PRAGMA user_version = 7;",
        "PRAGMA application_id = 42;",
    ]));
    let prod = ws.path("prod.sqlite3");
    assert_eq!(column(&prod, "PRAGMA user_version"), vec!["7"]);
    assert_eq!(column(&prod, "PRAGMA application_id"), vec!["42"]);
}

/// Runs `sqlmorph run --yes [extra]` while another connection inserts into
/// `notes` every 2 ms: (the run's output, the ids SQLite acknowledged).
fn run_while_writing(ws: &Workspace, prod: &Path, extra: &[&str]) -> (Output, Vec<i64>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let conn = rusqlite::Connection::open(prod).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(20))
                .unwrap();
            let mut acked = Vec::new();
            for id in 1000.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                conn.execute(
                    "INSERT INTO notes(id, user_id, body) VALUES (?1, 1, 'live')",
                    [id],
                )
                .unwrap();
                acked.push(id);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            acked
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let out = run_migration(ws, None, extra);
        std::thread::sleep(std::time::Duration::from_millis(50));
        stop.store(true, Ordering::SeqCst);
        (out, writer.join().unwrap())
    })
}

#[test]
fn an_application_writing_all_along_does_not_stop_a_change_that_keeps_every_row() {
    let (ws, prod) = setup(
        PROD,
        &source(&[
            USERS,
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT, mood TEXT);",
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE VIEW minors AS SELECT name FROM users WHERE age < 18;",
        ]),
    );
    let (out, acked) = run_while_writing(&ws, &prod, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    let kept = column(&prod, "SELECT count(*) FROM notes WHERE body = 'live'");
    assert_eq!(
        kept,
        vec![acked.len().to_string()],
        "every acknowledged row is kept"
    );
    assert!(
        acked.len() > 10,
        "the application wrote during the run: {}",
        acked.len()
    );
    assert_eq!(column(&prod, "SELECT count(*) FROM minors"), vec!["1"]);
    assert_sound(&ws);
}

#[test]
fn an_application_writing_all_along_stops_an_approved_drop_with_exit_3() {
    let (ws, prod) = setup(
        PROD,
        &source(&[
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
            NOTES,
            INDEX,
            "CREATE VIEW adults AS SELECT * FROM users;",
            TRIGGER,
        ]),
    );
    let (out, acked) = run_while_writing(&ws, &prod, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'age'"
        ),
        vec!["1"]
    );
    let kept = column(&prod, "SELECT count(*) FROM notes WHERE body = 'live'");
    assert_eq!(kept, vec![acked.len().to_string()]);
}

/// The run directory of the workspace's only run.
fn only_run_dir(ws: &Workspace) -> std::path::PathBuf {
    let runs = run_dirs(ws);
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_kept_in_place_dry_run_leaves_the_complete_migrated_database() {
    // The rehearsal is an overlay of the snapshot inside the sqlmorph
    // process; the file it leaves must be a database anyone can open, with
    // production's journal mode, rows and the new schema.
    let (ws, prod) = setup(
        PROD,
        &source(&[
            USERS,
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE VIEW names AS SELECT name FROM users;",
        ]),
    );
    rusqlite::Connection::open(&prod)
        .unwrap()
        .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    let out = run_migration(&ws, None, &["--dry-run", "--yes", "--keep-files"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    let migrated = only_run_dir(&ws).join("migrated.sqlite3");
    let conn = rusqlite::Connection::open(&migrated).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    assert_eq!(column(&migrated, "SELECT count(*) FROM names"), vec!["3"]);
    assert_eq!(data(&migrated), data(&prod));
}

#[test]
fn an_in_place_run_leaves_the_backup_exactly_production_before_it() {
    // The rehearsal reads the snapshot, which is the backup's file: the
    // statements must never reach it.
    let (ws, prod) = setup(
        PROD,
        &source(&[
            USERS,
            NOTES,
            INDEX,
            VIEW,
            TRIGGER,
            "CREATE INDEX users_age ON users(age);",
            "CREATE TABLE tags(label TEXT);",
        ]),
    );
    let before = sha256_file(&prod);
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(path_of(&out), "in place", "{}", stdout_of(&out));
    let backups: Vec<_> = std::fs::read_dir(ws.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite3"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(sha256_file(&backups[0]), before);
    assert_eq!(column(&prod, "SELECT count(*) FROM tags"), vec!["0"]);
    assert_sound(&ws);
}
