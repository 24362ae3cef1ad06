//! The gate tells the truth: `plan` and `run --dry-run` exit as the real
//! `run` with the same flags does (no terminal), on every kind of case of
//! the migration tests, and say what the run would need.

use std::process::Output;

use crate::support::{
    Workspace, assert_code, run_migration, setup, sha256_file, stderr_of, stdout_of,
};

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";
const ADDED_TZ: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');";
const NOT_NULL_EMAIL: &str =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, email TEXT NOT NULL);";
const DROPPED_AGE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);";
const PRACTICE: &str =
    "CREATE TABLE practice(id INTEGER PRIMARY KEY, tune TEXT NOT NULL, played TEXT, minutes INT);
INSERT INTO practice VALUES (1, 'The Kesh', '2026-03-14', 20), (2, 'Blue Monk', NULL, 30);";
const PRACTICE_RENAMED: &str = "CREATE TABLE practice(id INTEGER PRIMARY KEY, tune TEXT NOT NULL, practiced TEXT, minutes INT);";
const CODES: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, code TEXT); INSERT INTO t VALUES (1, '007'), (2, '12');";
const CODES_INT: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, code INTEGER);";

/// (name, production, source, flags, exit code, what the gate must name).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    i32,
    &'static str,
);

const CASES: &[Case] = &[
    ("clean", USERS, USERS, &[], 0, ""),
    ("clean with --yes", USERS, USERS, &["--yes"], 0, ""),
    ("additive without --yes", USERS, ADDED_TZ, &[], 3, "--yes"),
    ("additive with --yes", USERS, ADDED_TZ, &["--yes"], 0, ""),
    (
        "refusal",
        USERS,
        NOT_NULL_EMAIL,
        &["--yes", "--allow-destructive"],
        3,
        "users.email",
    ),
    (
        "rename question",
        PRACTICE,
        PRACTICE_RENAMED,
        &["--yes"],
        3,
        r#"rename_column("practice", "played", "practiced");"#,
    ),
    (
        "rename dropped by --allow-destructive",
        PRACTICE,
        PRACTICE_RENAMED,
        &["--yes", "--allow-destructive"],
        0,
        "",
    ),
    (
        "destructive without the flag",
        USERS,
        DROPPED_AGE,
        &["--yes"],
        3,
        "--allow-destructive",
    ),
    (
        "destructive with the flag",
        USERS,
        DROPPED_AGE,
        &["--yes", "--allow-destructive"],
        0,
        "",
    ),
    (
        "destructive without --yes",
        USERS,
        DROPPED_AGE,
        &["--allow-destructive"],
        3,
        "--yes",
    ),
    (
        "meaning change without the flag",
        CODES,
        CODES_INT,
        &["--yes"],
        3,
        "--allow-destructive",
    ),
];

fn plan(ws: &Workspace, flags: &[&str]) -> Output {
    ws.cmd()
        .args([
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .args(flags)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn plan_and_dry_run_exit_as_the_real_run_on_every_case() {
    for &(name, prod_sql, source_sql, flags, expected, needed) in CASES {
        let (ws, prod) = setup(prod_sql, source_sql);
        let before = sha256_file(&prod);
        let planned = plan(&ws, flags);
        let dry = run_migration(&ws, None, &[flags, &["--dry-run"]].concat());
        assert_eq!(
            sha256_file(&prod),
            before,
            "{name}: the gate changed production"
        );
        let real = run_migration(&ws, None, flags);
        let codes = (code(&planned), code(&dry), code(&real));
        assert_eq!(
            codes,
            (expected, expected, expected),
            "{name} {flags:?}: (plan, dry run, run)\nplan: {}{}\ndry run: {}\nrun: {}",
            stdout_of(&planned),
            stderr_of(&planned),
            stderr_of(&dry),
            stderr_of(&real)
        );
        for (what, out) in [("plan", &planned), ("dry run", &dry)] {
            let said = format!("{}{}", stdout_of(out), stderr_of(out));
            assert!(
                said.contains(needed),
                "{name}: {what} names {needed:?}:\n{said}"
            );
            if expected == 3 && what == "plan" {
                assert!(
                    said.contains("would stop"),
                    "{name}: {what} says it would stop:\n{said}"
                );
            }
        }
    }
}

#[test]
fn plan_exit_code_reports_pending_changes() {
    let (ws, _) = setup(USERS, ADDED_TZ);
    assert_code(&plan(&ws, &["--yes", "--exit-code"]), 1);
    assert_code(&plan(&ws, &["--yes"]), 0);
    let (ws, _) = setup(USERS, USERS);
    assert_code(&plan(&ws, &["--exit-code"]), 0);
    // A stop wins over "changes pending".
    let (ws, _) = setup(USERS, DROPPED_AGE);
    assert_code(&plan(&ws, &["--yes", "--exit-code"]), 3);
}

#[test]
fn a_stopping_plan_prints_the_needs_as_a_json_error_object() {
    let (ws, _) = setup(PRACTICE, PRACTICE_RENAMED);
    let out = plan(&ws, &["--format", "json"]);
    assert_code(&out, 3);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "aborted");
    assert_eq!(v["error"]["exit_code"], 3);
    let needs = v["error"]["needs"].as_array().unwrap();
    let fixes: Vec<(&str, &str)> = needs
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["fix"].as_str().unwrap()))
        .collect();
    assert!(
        fixes.contains(&(
            "recipe_line",
            r#"rename_column("practice", "played", "practiced");"#
        )),
        "{fixes:?}"
    );
    assert!(fixes.contains(&("flag", "--yes")), "{fixes:?}");
    assert!(
        !v["changes"].as_array().unwrap().is_empty(),
        "the plan's changes beside the error"
    );
}

#[test]
fn a_stopping_dry_run_prints_the_json_error_object() {
    let (ws, _) = setup(USERS, DROPPED_AGE);
    let out = run_migration(&ws, None, &["--dry-run", "--yes", "--format", "json"]);
    assert_code(&out, 3);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["command"], "run");
    assert_eq!(v["error"]["needs"][0]["fix"], "--allow-destructive");
    assert!(
        v["error"]["needs"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("users.age")
    );
}

/// (name, production, source, recipe, flags, exit code).
type RecipeCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    i32,
);

const RECIPE_CASES: &[RecipeCase] = &[
    (
        "rename declared",
        PRACTICE,
        PRACTICE_RENAMED,
        "rename_column(\"practice\", \"played\", \"practiced\");\nimport \"std/default\";\n",
        &["--yes"],
        0,
    ),
    (
        "rename declared, no --yes",
        PRACTICE,
        PRACTICE_RENAMED,
        "rename_column(\"practice\", \"played\", \"practiced\");\nimport \"std/default\";\n",
        &[],
        3,
    ),
    (
        "loss declared",
        USERS,
        DROPPED_AGE,
        "drop_column(\"users\", \"age\");\nimport \"std/default\";\n",
        &["--yes"],
        0,
    ),
    (
        "validation fails",
        USERS,
        ADDED_TZ,
        "let p = plan(snapshot(), source());\napprove(p);\nlet m = copy(p);\nsql(m, \"DELETE FROM users WHERE id = 2\");\nlet ok = require(validate(p, m));\nconfirm_deploy();\ndeploy(ok);\n",
        &["--yes"],
        3,
    ),
];

#[test]
fn a_recipes_dry_run_exits_as_its_run() {
    for &(name, prod_sql, source_sql, recipe, flags, expected) in RECIPE_CASES {
        let (ws, _) = setup(prod_sql, source_sql);
        ws.file("m.rhai", recipe);
        let dry = run_migration(&ws, Some("m.rhai"), &[flags, &["--dry-run"]].concat());
        let real = run_migration(&ws, Some("m.rhai"), flags);
        assert_eq!(
            (code(&dry), code(&real)),
            (expected, expected),
            "{name} {flags:?}: (dry run, run)\ndry run: {}\nrun: {}",
            stderr_of(&dry),
            stderr_of(&real)
        );
    }
}
