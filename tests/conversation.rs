//! The run's conversation at a real terminal (tmux): every question re-asks
//! on anything but a valid reply, with the choices spelled out; one question
//! after the review covers the whole run; `yes` must be typed in full only
//! where data is lost; declines and input errors are plain sentences;
//! Ctrl-C at a question exits 130 with production untouched.

use std::path::Path;

use crate::support::tty::Tty;
use crate::support::{Workspace, column, setup, sha256_file};

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, legacy TEXT);
INSERT INTO users VALUES (1, 'ann', 'a'), (2, 'bob', 'b');";
/// Adds a column: no data lost.
const USERS_ADDED: &str =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, legacy TEXT, email TEXT);";
/// Drops `legacy`: its values are lost.
const USERS_DROPPED: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);";

/// `sqlmorph run` at a terminal, with `extra` arguments.
fn run_at_terminal(ws: &Workspace, extra: &str) -> Tty {
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3 {extra}",
            bin.display()
        ),
    )
}

fn columns(prod: &Path) -> Vec<String> {
    column(
        prod,
        "SELECT group_concat(name) FROM pragma_table_info('users')",
    )
}

#[test]
fn one_question_after_the_review_accepts_y_and_re_asks_on_a_typo() {
    let (ws, prod) = setup(USERS, USERS_ADDED);
    let tty = run_at_terminal(&ws, "");
    let question = "Build, validate and deploy the migrated database to prod.sqlite3? [y/N]";
    tty.wait_for(question);
    tty.line("maybe");
    let screen = tty.wait_for("\"maybe\" is not an answer here");
    assert!(
        screen.contains("Type y (yes) to go on, or n (no, the default) to stop."),
        "{screen}"
    );
    assert_eq!(
        screen.matches(question).count(),
        2,
        "asked again:\n{screen}"
    );
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("Deploy the migrated database"),
        "asked once:\n{screen}"
    );
    assert!(
        !screen.contains("Type 'yes'"),
        "no data lost, y is enough:\n{screen}"
    );
    assert_eq!(columns(&prod), vec!["id,name,legacy,email"]);
}

#[test]
fn where_data_is_lost_yes_must_be_typed_and_y_re_asks() {
    let (ws, prod) = setup(USERS, USERS_DROPPED);
    let tty = run_at_terminal(&ws, "");
    let question = "Build, validate and deploy the migrated database to prod.sqlite3, \
                    losing the data listed above? Type 'yes' to accept, or 'no' to stop:";
    let screen = tty.wait_for(question);
    assert!(screen.contains("This migration loses data:"), "{screen}");
    assert_eq!(
        screen
            .matches("column users.legacy is dropped: 2 non-NULL value(s) lost")
            .count(),
        1,
        "names the data, once:\n{screen}"
    );
    tty.line("y");
    let screen = tty.wait_for("Data is lost: type yes in full to accept, or no to stop.");
    assert_eq!(
        screen.matches(question).count(),
        2,
        "asked again:\n{screen}"
    );
    assert_eq!(
        columns(&prod),
        vec!["id,name,legacy"],
        "nothing changed yet"
    );
    tty.line("yes");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("Deploy the migrated database"),
        "asked once:\n{screen}"
    );
    assert_eq!(columns(&prod), vec!["id,name"]);
}

#[test]
fn a_decline_is_a_plain_sentence_without_a_recipe_pointer() {
    let (ws, prod) = setup(USERS, USERS_ADDED);
    let before = sha256_file(&prod);
    let tty = run_at_terminal(&ws, "");
    tty.wait_for("[y/N]");
    tty.line("n");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=3"), "{screen}");
    assert!(screen.contains("declined; nothing was changed"), "{screen}");
    assert!(!screen.contains("-->"), "no source pointer:\n{screen}");
    assert!(!screen.contains("recipe error"), "{screen}");
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn the_rename_question_explains_each_choice_and_re_asks() {
    let (ws, prod) = setup(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, mail TEXT);
         INSERT INTO users VALUES (1, 'a@x'), (2, 'b@x');",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT);",
    );
    let tty = run_at_terminal(&ws, "");
    let screen = tty.wait_for("renamed to email?");
    for choice in ["y = yes, rename", "n = no: mail is dropped", "s = skip"] {
        assert!(screen.contains(choice), "{choice}:\n{screen}");
    }
    tty.line("x");
    let screen = tty.wait_for("\"x\" is not an answer here");
    assert_eq!(
        screen.matches("[y/n/s]").count(),
        2,
        "asked again:\n{screen}"
    );
    tty.line("y");
    tty.wait_for("[y/N]");
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_eq!(
        column(&prod, "SELECT group_concat(email) FROM users"),
        vec!["a@x,b@x"]
    );
}

#[test]
fn ctrl_c_at_the_question_exits_130_and_changes_nothing() {
    let (ws, prod) = setup(USERS, USERS_DROPPED);
    let before = sha256_file(&prod);
    let tty = run_at_terminal(&ws, "");
    tty.wait_for("Type 'yes' to accept");
    tty.keys(&["C-c"]);
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(
        screen.contains("interrupted (SIGINT); production was not changed"),
        "{screen}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn a_missing_source_file_is_a_plain_sentence() {
    let ws = Workspace::new();
    ws.db("prod.sqlite3", USERS);
    let out = ws
        .cmd()
        .args([
            "run",
            "--source",
            "nosuch.sql",
            "--production",
            "prod.sqlite3",
            "--yes",
        ])
        .output()
        .unwrap();
    let err = crate::support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nosuch.sql"), "{err}");
    assert!(!err.contains("-->"), "no source pointer:\n{err}");
    assert!(!err.contains("recipe error"), "{err}");
}
