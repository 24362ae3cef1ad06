//! `sqlmorph status` and `history`: drift against the source, the deploys
//! of `_sqlmorph_history` (with who ran them), the backups on hand; local
//! and over SSH; production only read.

use std::path::Path;

use crate::support::sshd::Sshd;
use crate::support::{
    Workspace, assert_code, column, run_migration, setup, sha256_file, stdout_of,
};

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL);";
const ADDED_TZ: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');";
/// `_sqlmorph_history` as the first versions wrote it (no backup, no who).
const OLD_HISTORY: &str = "CREATE TABLE _sqlmorph_history(id INTEGER PRIMARY KEY, deployed_at TEXT NOT NULL,
    tool_version TEXT NOT NULL, recipe TEXT NOT NULL, recipe_sha256 TEXT NOT NULL,
    schema_before TEXT NOT NULL, schema_after TEXT NOT NULL, row_counts TEXT NOT NULL);
INSERT INTO _sqlmorph_history VALUES (1, '2025-01-02T03:04:05+01:00', '0.0.9', 'old.rhai', 'aa', 'b0', 'b1', '{}');";

fn status(ws: &Workspace, extra: &[&str]) -> std::process::Output {
    ws.cmd()
        .args([
            "status",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

#[test]
fn status_shows_drift_then_the_deploy_its_author_and_its_backup() {
    let (ws, prod) = setup(USERS, ADDED_TZ);
    let before = sha256_file(&prod);
    let out = status(&ws, &["--format", "json"]);
    assert_code(&out, 0);
    let v = json(&out);
    assert_eq!(v["state"], "drift");
    assert_eq!(v["changes"][0]["table"], "users");
    assert_eq!(v["deploys"], serde_json::json!([]));
    assert_eq!(sha256_file(&prod), before, "status only reads production");
    assert_code(&status(&ws, &["--exit-code"]), 1);
    assert!(stdout_of(&status(&ws, &[])).contains("DRIFT, 2 change(s)"));

    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    let v = json(&status(&ws, &["--format", "json"]));
    assert_eq!(v["state"], "in_sync");
    assert_eq!(v["changes"], serde_json::json!([]));
    let deploy = &v["deploys"][0];
    assert_eq!(deploy["recipe"], "default");
    assert_eq!(deploy["recipe_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(deploy["schema_after"], v["schema_hash"]);
    assert!(deploy["who"].as_str().unwrap().contains('@'), "{deploy}");
    let backup = v["backups"][0]["path"].as_str().unwrap();
    assert_eq!(deploy["backup"], backup);
    let time = v["backups"][0]["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    assert!(chrono::DateTime::parse_from_rfc3339(deploy["deployed_at"].as_str().unwrap()).is_ok());
    assert_code(&status(&ws, &["--exit-code"]), 0);
    let text = stdout_of(&status(&ws, &[]));
    assert!(
        text.contains("schema.sql: in sync")
            && text.contains("Deploys: 1 recorded")
            && text.contains(&format!("backup {backup}"))
            && text.contains("Backups: 1 in backups"),
        "{text}"
    );
}

#[test]
fn an_old_history_table_gains_who_and_keeps_its_rows() {
    let (ws, prod) = setup(&format!("{USERS}\n{OLD_HISTORY}"), ADDED_TZ);
    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || recipe || ':' || ifnull(who, 'null') FROM _sqlmorph_history ORDER BY id"
        )[0],
        "1:old.rhai:null"
    );
    let out = ws
        .cmd()
        .args(["history", "--production", "prod.sqlite3"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(text.contains("Deploys: 2 recorded"), "{text}");
    assert!(
        text.contains("#1 2025-01-02T03:04:05+01:00  by (not recorded)  recipe old.rhai"),
        "{text}"
    );
    assert!(
        text.contains("#2 ") && text.contains("recipe default"),
        "{text}"
    );
    let out = ws
        .cmd()
        .args([
            "history",
            "--production",
            "prod.sqlite3",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["deploys"][0]["who"], serde_json::Value::Null);
    assert!(v["deploys"][1]["who"].as_str().unwrap().contains('@'));
}

#[test]
fn status_of_an_ssh_production_reads_it_remotely() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/prod.sqlite3", USERS);
    ws.file("schema.sql", ADDED_TZ);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        remote.display()
    );
    ws.file(
        "sqlmorph.toml",
        &format!(
            "source = \"schema.sql\"\nproduction = {url:?}\n[ssh]\nidentity = {:?}\nknown_hosts = {:?}\n",
            sshd.client_key.display().to_string(),
            sshd.known_hosts.display().to_string()
        ),
    );
    let before = sha256_file(&remote);
    let out = ws
        .cmd()
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let v = json(&out);
    assert_eq!(v["state"], "drift");
    assert_eq!(v["production"], url.as_str());
    assert_eq!(sha256_file(&remote), before);
    assert!(
        !Path::new(&ws.path("remote"))
            .join("prod.sqlite3-journal")
            .exists()
    );
}
