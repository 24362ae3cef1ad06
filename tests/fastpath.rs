//! The in-place path: taken exactly for the changes SQLite makes without
//! rewriting a row, with results equal to the rebuild's, production's inode
//! kept, and a live application connection seeing the new schema.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use crate::support::{
    Workspace, assert_code, assert_sound, column, run_migration, setup, stdout_of,
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
    let (ws, prod) = setup(PROD, src);
    let inode = std::fs::metadata(&prod).unwrap().ino();
    let out = run_migration(&ws, None, &["--yes"]);
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
    let out = run_migration(&other, None, &["--yes", "--rebuild"]);
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
