//! Recipes that fail early (a mapping naming a table or column that does not
//! exist stops at its line, with the closest name, before any backup) and
//! `.sql` scripts run as they are with `sql_file`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use crate::support::{Workspace, assert_code, column, run_migration as run, setup, stderr_of};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, mail TEXT, legacy TEXT);
INSERT INTO users VALUES (1, 'ann@x', 'a'), (2, 'bob@x', 'b');";
const SOURCE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);";

/// The workspace's files (relative paths), the run directories (the run's
/// log) left out.
fn files(ws: &Workspace) -> BTreeMap<PathBuf, String> {
    ws.snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".sqlmorph"))
        .collect()
}

/// Runs `recipe` (written as recipe.rhai) and checks it stopped with exit 2
/// before anything was backed up, snapshotted or changed; returns stderr.
fn stops_early(recipe: &str) -> String {
    let (ws, _prod) = setup(PROD, SOURCE);
    ws.file("recipe.rhai", recipe);
    let before = files(&ws);
    let out: Output = run(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_code(&out, 2);
    assert_eq!(files(&ws), before, "production and every file untouched");
    assert!(!ws.path("backups").exists(), "nothing backed up");
    let snapshots = crate::support::tree_hashes(&ws.path(".sqlmorph/runs"));
    assert!(
        snapshots
            .keys()
            .all(|p| p.extension().is_none_or(|e| e != "sqlite3")),
        "no snapshot was taken: {snapshots:?}"
    );
    stderr_of(&out)
}

#[test]
fn a_mistyped_old_column_stops_at_its_line_with_the_production_name() {
    let err = stops_early(
        "// rename\nrename_column(\"users\", \"mial\", \"email\");\nimport \"std/default\";\n",
    );
    assert!(err.contains("recipe.rhai:2:"), "{err}");
    assert!(
        err.contains("production has no column `mial`; did you mean `mail`?"),
        "{err}"
    );
    assert!(!err.contains("renamed to"), "no rename question: {err}");
}

#[test]
fn a_mistyped_new_column_is_checked_against_the_source() {
    let err =
        stops_early("rename_column(\"users\", \"mail\", \"emial\");\nimport \"std/default\";\n");
    assert!(err.contains("recipe.rhai:1:"), "{err}");
    assert!(
        err.contains("the source schema has no column `emial`; did you mean `email`?"),
        "{err}"
    );
}

#[test]
fn a_missing_table_stops_at_its_line_with_the_closest_table() {
    let err = stops_early(
        "drop_column(\"users\", \"legacy\");\n\ndrop_table(\"user\");\nimport \"std/default\";\n",
    );
    assert!(err.contains("recipe.rhai:3:"), "{err}");
    assert!(
        err.contains("drop_table: production has no table `user`; did you mean `users`?"),
        "{err}"
    );
}

#[test]
fn a_column_with_no_near_name_lists_the_columns_there() {
    let err = stops_early("drop_column(\"users\", \"nosuch\");\nimport \"std/default\";\n");
    assert!(err.contains("recipe.rhai:1:"), "{err}");
    assert!(
        err.contains("has no column `nosuch` (its columns: id, mail, legacy)"),
        "{err}"
    );
}

#[test]
fn fill_and_map_column_name_source_columns() {
    let err = stops_early("fill(\"users\", \"emails\", \"'x'\");\nimport \"std/default\";\n");
    assert!(
        err.contains(
            "fill: table `users` in the source schema has no column `emails`; did you mean `email`?"
        ),
        "{err}"
    );
    let err = stops_early("map_column(\"usres\", \"email\", \"mail\");\nimport \"std/default\";\n");
    assert!(
        err.contains("map_column: the source schema has no table `usres`; did you mean `users`?"),
        "{err}"
    );
}

#[test]
fn a_migration_run_again_after_it_was_applied_is_not_an_error() {
    // Production already has the new name and no longer the dropped column.
    let (ws, _prod) = setup(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);",
        SOURCE,
    );
    ws.file(
        "recipe.rhai",
        "rename_column(\"users\", \"mail\", \"email\");\ndrop_column(\"users\", \"legacy\");\nimport \"std/default\";\n",
    );
    let out = run(&ws, Some("recipe.rhai"), &["--yes"]);
    assert_code(&out, 0);
    assert!(
        crate::support::stdout_of(&out).contains("No migration needed"),
        "{}",
        crate::support::stdout_of(&out)
    );
}

#[test]
fn a_rename_already_applied_is_accepted_while_other_changes_remain() {
    // The rename is in production already; a new column still comes.
    let (ws, prod) = setup(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT, tz TEXT);",
    );
    ws.file(
        "recipe.rhai",
        "rename_column(\"users\", \"mail\", \"email\");\nimport \"std/default\";\n",
    );
    assert_code(&run(&ws, Some("recipe.rhai"), &["--yes"]), 0);
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'tz'"
        ),
        vec!["1"]
    );
}

const NOTES: &str = "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO notes VALUES (1, 'a'), (2, 'b');";
const NOTES_AUDITED: &str = "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE audit(id INTEGER PRIMARY KEY, msg TEXT NOT NULL);";

/// A recipe in migrations/ that runs migrations/sql_scripts/fix.sql between
/// the copy and the validation.
fn with_script(script: &str) -> (Workspace, PathBuf, Output) {
    let (ws, prod) = setup(NOTES, NOTES_AUDITED);
    ws.file("migrations/sql_scripts/fix.sql", script);
    ws.file(
        "migrations/audit.rhai",
        "import \"std/steps\" as steps;\nlet p = steps::prepare();\nlet db = copy(p);\n\
         sql_file(db, \"sql_scripts/fix.sql\");\nsteps::finish(p, db);\n",
    );
    let out = run(&ws, Some("migrations/audit.rhai"), &["--yes"]);
    (ws, prod, out)
}

#[test]
fn sql_file_runs_a_script_beside_the_recipe_split_by_sqlite() {
    // A guess at `;` would cut the trigger's body and the string in two.
    let (_ws, prod, out) = with_script(
        "-- fix.sql: backfill the audit log\n\
         CREATE TEMP TABLE fired(n);\n\
         CREATE TEMP TRIGGER count_it AFTER INSERT ON audit BEGIN\n\
         \x20 INSERT INTO fired VALUES (1);\n\
         \x20 INSERT INTO fired VALUES (2);\n\
         END;\n\
         INSERT INTO audit(msg) SELECT 'note; ' || id FROM snapshot.notes ORDER BY id;\n\
         INSERT INTO audit(msg) SELECT 'fired ' || count(*) FROM fired\n",
    );
    assert_code(&out, 0);
    assert_eq!(
        column(&prod, "SELECT msg FROM audit ORDER BY id"),
        vec!["note; 1", "note; 2", "fired 4"]
    );
}

#[test]
fn an_error_in_the_third_statement_names_the_file_and_its_line() {
    let (ws, prod, out) = with_script(
        "INSERT INTO audit(id, msg) VALUES (1, 'one');\n\
         INSERT INTO audit(id, msg) VALUES (2, 'two;\n\
         still two');\n\
         -- the third statement starts on line 5\n\
         INSERT INTO audit(id, msg)\n\
         \x20 VALUES (1, 'a duplicate');\n\
         INSERT INTO audit(id, msg) VALUES (4, 'never');\n",
    );
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("sql_file: migrations/sql_scripts/fix.sql:5: statement 3 failed: UNIQUE constraint failed"),
        "{err}"
    );
    assert!(err.contains("audit.rhai:4:"), "the recipe line too: {err}");
    assert_eq!(column(&prod, "SELECT count(*) FROM notes"), vec!["2"]);
    assert!(
        column(&prod, "SELECT name FROM sqlite_master WHERE name = 'audit'").is_empty(),
        "production not migrated"
    );
    drop(ws);
}

#[test]
fn sql_file_keeps_the_handle_rules_and_names_a_missing_file() {
    let (ws, prod) = setup(NOTES, NOTES_AUDITED);
    let before = crate::support::sha256_file(&prod);
    ws.file("fix.sql", "DELETE FROM notes;\n");
    ws.file("prod.rhai", "sql_file(production(), \"fix.sql\");\n");
    let out = run(&ws, Some("prod.rhai"), &["--yes"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("sql_file: production") && err.contains("is not opened by recipes"),
        "{err}"
    );
    assert_eq!(crate::support::sha256_file(&prod), before);

    // A handle that is read-only here (any file, in a dry run) is refused.
    let other = ws.db("other.sqlite3", NOTES);
    let other_before = crate::support::sha256_file(&other);
    ws.file(
        "dry.rhai",
        "sql_file(open(\"other.sqlite3\"), \"fix.sql\");\n",
    );
    let out = run(&ws, Some("dry.rhai"), &["--yes", "--dry-run"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("attempt to write a readonly database: a dry run writes nothing"),
        "{err}"
    );
    assert_eq!(crate::support::sha256_file(&other), other_before);

    ws.file(
        "gone.rhai",
        "let db = open(\"prod.sqlite3\");\nsql_file(db, \"nosuch.sql\");\n",
    );
    let out = run(&ws, Some("gone.rhai"), &["--yes"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("sql_file: reading nosuch.sql:") && err.contains("gone.rhai:2:"),
        "{err}"
    );
}
