//! docs/json.md tells the truth: the keys of every documented object are
//! exactly the keys the commands emit (read from the field tables, marked
//! `<!-- fields: NAME -->`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::{Workspace, assert_code, run_migration, setup, stdout_of};

type Keys = BTreeSet<String>;

/// NAME -> the keys of the table that follows its marker.
fn documented() -> BTreeMap<String, Keys> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("<!-- fields: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            current = Some(name.to_string());
            tables.insert(name.to_string(), Keys::new());
        } else if let (Some(name), Some(rest)) = (&current, line.strip_prefix("| `")) {
            let key = rest.split('`').next().unwrap().to_string();
            tables.get_mut(name).unwrap().insert(key);
        } else if line.is_empty()
            && tables
                .get(current.as_deref().unwrap_or(""))
                .is_some_and(|k| !k.is_empty())
        {
            current = None;
        }
    }
    tables
}

fn keys(v: &Value) -> Keys {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

struct Doc(BTreeMap<String, Keys>);

impl Doc {
    fn table(&self, name: &str) -> Keys {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("docs/json.md has no table {name}"))
    }

    /// The envelope's keys and those of the named tables.
    fn top(&self, names: &[&str]) -> Keys {
        let mut k = self.table("envelope");
        for n in names {
            k.extend(self.table(n));
        }
        k
    }

    fn check(&self, what: &str, emitted: &Value, expected: Keys) {
        assert_eq!(
            keys(emitted),
            expected,
            "{what}: emitted (left) vs docs/json.md (right)\n{emitted:#}"
        );
    }
}

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL);";
const ADDED_TZ: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');";

fn cmd(ws: &Workspace, args: &[&str]) -> Value {
    json(
        &ws.cmd()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap(),
    )
}

#[test]
fn documented_fields_are_the_emitted_ones() {
    let doc = Doc(documented());
    let (ws, _) = setup(USERS, ADDED_TZ);
    let target = ["--source", "schema.sql", "--production", "prod.sqlite3"];

    let diff = cmd(&ws, &["diff", "prod.sqlite3", "schema.sql"]);
    doc.check("diff", &diff, doc.top(&["diff"]));
    doc.check("change", &diff["changes"][0], doc.table("change"));

    let plan = cmd(&ws, &[&["plan", "--yes"][..], &target].concat());
    doc.check("plan", &plan, doc.top(&["plan"]));
    doc.check("plan.plan", &plan["plan"], doc.table("plan_object"));

    let stopped = cmd(&ws, &[&["plan"][..], &target].concat());
    let mut expected = doc.top(&["plan"]);
    expected.insert("error".into());
    doc.check("plan (stopped)", &stopped, expected);
    doc.check("error (gate)", &stopped["error"], doc.table("error"));
    doc.check("need", &stopped["error"]["needs"][0], doc.table("need"));

    let bad = ws
        .cmd()
        .args(["diff", "missing.sqlite3", "schema.sql", "--format", "json"])
        .output()
        .unwrap();
    assert_code(&bad, 2);
    let bad = json(&bad);
    doc.check(
        "error object",
        &bad,
        doc.top(&[])
            .into_iter()
            .chain(["error".to_string()])
            .collect(),
    );
    let mut plain = doc.table("error");
    plain.remove("needs");
    doc.check("error (input)", &bad["error"], plain);

    let out = run_migration(&ws, None, &["--yes", "--rebuild", "--format", "json"]);
    assert_code(&out, 0);
    let run = json(&out);
    doc.check("run", &run, doc.top(&["run"]));
    doc.check("step", &run["steps"][0], doc.table("step"));
    doc.check("report", &run["report"], doc.table("report"));
    assert_eq!(
        run["changes"], diff["changes"],
        "the same changes array as diff"
    );

    let backups = cmd(&ws, &["backups"]);
    doc.check("backups", &backups, doc.top(&["backups"]));
    doc.check("backup", &backups["backups"][0], doc.table("backup"));

    let status = cmd(&ws, &[&["status"][..], &target].concat());
    doc.check("status", &status, doc.top(&["status"]));
    doc.check("deploy", &status["deploys"][0], doc.table("deploy"));
    let history = cmd(&ws, &["history", "--production", "prod.sqlite3"]);
    doc.check("history", &history, doc.top(&["history"]));

    let orphan = ws.db(
        "orphan.sqlite3",
        "PRAGMA foreign_keys = OFF; CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id)); INSERT INTO c VALUES (1, 9);",
    );
    let check = cmd(&ws, &["check", orphan.to_str().unwrap()]);
    doc.check("check", &check, doc.top(&["check"]));
    doc.check(
        "foreign_key_violation",
        &check["foreign_keys"][0],
        doc.table("foreign_key_violation"),
    );
}

#[test]
fn every_object_carries_format_version_one_and_snake_case_enums() {
    let (ws, _) = setup(USERS, ADDED_TZ);
    let out = run_migration(&ws, None, &["--yes", "--dry-run", "--format", "json"]);
    assert_code(&out, 0);
    let v = json(&out);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["outcome"], "dry_run");
    let out = run_migration(&ws, None, &["--yes", "--format", "json"]);
    assert_eq!(json(&out)["outcome"], "deployed");
    let out = run_migration(&ws, None, &["--yes", "--format", "json"]);
    assert_eq!(json(&out)["outcome"], "no_migration_needed");
}

#[test]
fn failures_print_the_error_object_with_their_exit_code() {
    let (ws, prod) = setup(USERS, ADDED_TZ);
    let cases: [(&[&str], i32, &str, &str); 3] = [
        (&["plan", "--bogus"], 2, "input", "--bogus"),
        (
            &[
                "run",
                "--source",
                "missing.sql",
                "--production",
                "prod.sqlite3",
            ],
            2,
            "input",
            "missing.sql",
        ),
        (
            &[
                "run",
                "--source",
                "schema.sql",
                "--production",
                "prod.sqlite3",
            ],
            3,
            "aborted",
            "--yes",
        ),
    ];
    for (args, code, kind, named) in cases {
        let out = ws
            .cmd()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_code(&out, code);
        let v = json(&out);
        assert_eq!(v["format_version"], 1, "{args:?}");
        assert_eq!(v["ok"], false, "{args:?}");
        assert_eq!(v["command"], args[0], "{args:?}");
        assert_eq!(v["error"]["kind"], kind, "{args:?}");
        assert_eq!(v["error"]["exit_code"], code, "{args:?}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{args:?}: {message}");
    }
    assert_eq!(
        crate::support::column(&prod, "SELECT count(*) FROM pragma_table_info('users')"),
        vec!["3"]
    );
}
