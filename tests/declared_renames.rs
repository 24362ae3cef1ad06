//! Renames declared in the source `.sql` file with sqldef's notation
//! (`-- @renamed from=OLD`): applied with no question on both paths, shown
//! by `plan`, already-applied ones accepted, wrong ones refused with the
//! file and line; and the declaration offered when a rename is confirmed
//! at a terminal.

use crate::support::paths::run_both_ways;
use crate::support::{Workspace, assert_code, column, run_migration, setup, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL);
CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT, body TEXT);
INSERT INTO posts VALUES (10, 1, 'hello');";

const RENAMED: &str = "CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  full_name TEXT, -- @renamed from=name
  age INT
);
CREATE TABLE articles ( -- @renamed from=posts
  id INTEGER PRIMARY KEY,
  user_id INT,
  text TEXT /* @renamed from=\"body\" */
);
";

#[test]
fn declared_renames_need_no_question_on_either_path() {
    let (ws, prod) = setup(PROD, RENAMED);
    // No terminal and no --allow-destructive: an undeclared rename would
    // stop the run (exit 3) at the question.
    let both = run_both_ways(&ws, None, &["--yes"]);
    assert_code(&both.in_place, 0);
    let out = stdout_of(&both.in_place);
    assert!(
        out.contains("renaming column users.name to full_name (declared at schema.sql:3)"),
        "{out}"
    );
    assert!(out.contains("renaming table posts to articles (declared at schema.sql:6)"));
    for db in [prod, both.twin.path("prod.sqlite3")] {
        assert_eq!(
            column(&db, "SELECT id || ':' || full_name FROM users ORDER BY id"),
            vec!["1:ann", "2:bob"]
        );
        assert_eq!(
            column(
                &db,
                "SELECT id || ':' || user_id || ':' || text FROM articles"
            ),
            vec!["10:1:hello"]
        );
    }
}

#[test]
fn plan_and_dry_run_apply_the_declarations_too() {
    let (ws, _) = setup(PROD, RENAMED);
    let args = ["--source", "schema.sql", "--production", "prod.sqlite3"];
    let out = ws
        .cmd()
        .arg("plan")
        .args(args)
        .args(["--yes", "--format", "json"])
        .output()
        .unwrap();
    // The gate: with the declarations, `run --yes` would complete.
    assert_code(&out, 0);
    assert!(stderr_of(&out).contains("renaming column users.name to full_name"));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["would_complete"], true, "{plan}");
    assert_eq!(
        plan["plan"]["renames"],
        serde_json::json!([]),
        "nothing left to ask"
    );
    let users = &plan["plan"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "users")
        .unwrap()["columns"];
    assert!(
        users.to_string().contains(r#""from":"name","kind":"copy""#),
        "full_name is copied from name: {users}"
    );
    let out = run_migration(&ws, None, &["--dry-run", "--yes"]);
    assert_code(&out, 0);
    assert!(!stdout_of(&out).contains("WARNING"), "{}", stdout_of(&out));
}

#[test]
fn a_declaration_already_applied_is_accepted_on_the_next_run() {
    let (ws, prod) = setup(PROD, RENAMED);
    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    // The file keeps its declarations; the next migration adds a table.
    ws.file(
        "schema.sql",
        &format!("{RENAMED}CREATE TABLE tags(id INTEGER PRIMARY KEY);\n"),
    );
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert_eq!(column(&prod, "SELECT count(*) FROM users"), vec!["2"]);
    assert!(
        text.contains("schema.sql:3: users.name is already full_name in production"),
        "{text}"
    );
}

#[test]
fn a_declaration_naming_nothing_in_production_is_an_input_error() {
    let (ws, prod) = setup(
        PROD,
        "CREATE TABLE users(\n  id INTEGER PRIMARY KEY,\n  full_name TEXT, -- @renamed from=nmae\n  age INT\n);\nCREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT, body TEXT);",
    );
    let before = crate::support::sha256_file(&prod);
    let out = run_migration(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "schema.sql:3: `@renamed from=nmae` on column full_name: production has no column nmae in table users (nor full_name); check the old name"
        ),
        "{err}"
    );
    assert_eq!(crate::support::sha256_file(&prod), before);
}

#[test]
fn a_misplaced_declaration_names_the_line() {
    let ws = Workspace::new();
    ws.db("prod.sqlite3", PROD);
    ws.file(
        "schema.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, age INT);\n-- @renamed from=posts\nCREATE TABLE articles(id INTEGER PRIMARY KEY, user_id INT, body TEXT);",
    );
    let out = run_migration(&ws, None, &["--dry-run"]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("schema.sql:2: `@renamed` must be on a CREATE TABLE line"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_rename_confirmed_at_a_terminal_prints_the_declaration_to_add() {
    use crate::support::tty::Tty;
    let (ws, prod) = setup(
        PROD,
        "CREATE TABLE users(\n  id INTEGER PRIMARY KEY,\n  full_name TEXT,\n  age INT\n);\nCREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT, body TEXT);",
    );
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3",
            bin.display()
        ),
    );
    tty.wait_for("renamed to full_name?");
    tty.line("y");
    tty.wait_for("Build, validate and deploy the migrated database to prod.sqlite3? [y/N]");
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("add `-- @renamed from=name` at the end of schema.sql:3"),
        "{screen}"
    );
    assert!(screen.contains("  full_name TEXT,"), "{screen}");
    assert_eq!(
        column(&prod, "SELECT full_name FROM users ORDER BY id"),
        vec!["ann", "bob"]
    );
}

#[test]
fn a_table_declaration_is_refused_when_production_has_both_names() {
    let (ws, _) = setup(
        &format!("{PROD}\nCREATE TABLE articles(id INTEGER PRIMARY KEY);"),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, age INT);\nCREATE TABLE articles ( -- @rename from=posts\n  id INTEGER PRIMARY KEY\n);",
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
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains(
            "schema.sql:2: `@renamed from=posts` on table articles: production has both tables posts and articles"
        ),
        "{}",
        stderr_of(&out)
    );
}
