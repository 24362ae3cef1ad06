//! The rules database handles carry: a recipe cannot write production (not
//! even in a dry run), the snapshot is read-only, a validated database
//! cannot change, `deploy` takes only what validation produced, and a
//! `stop` that ran is always followed by `restart`.

use crate::support::{
    Workspace, assert_code, column, content, run_migration, setup, sha256_file, stderr_of,
};

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";
const WITH_TZ: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');";

/// Runs `recipe` (written to attack.rhai) with `flags`.
fn attack(recipe: &str, flags: &[&str]) -> (Workspace, std::process::Output) {
    let (ws, _) = setup(USERS, WITH_TZ);
    ws.file("attack.rhai", recipe);
    let out = run_migration(&ws, Some("attack.rhai"), flags);
    (ws, out)
}

fn users(ws: &Workspace) -> Vec<String> {
    column(
        &ws.path("prod.sqlite3"),
        "SELECT name FROM users ORDER BY id",
    )
}

fn only_backup(ws: &Workspace) -> std::path::PathBuf {
    let mut list: Vec<_> = std::fs::read_dir(ws.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(list.len(), 1, "{list:?}");
    list.pop().unwrap()
}

#[test]
fn a_dry_run_recipe_cannot_write_production() {
    let (ws, _) = setup(USERS, WITH_TZ);
    let before = sha256_file(&ws.path("prod.sqlite3"));
    ws.file("attack.rhai", r#"sql(production(), "DELETE FROM users");"#);
    let out = run_migration(&ws, Some("attack.rhai"), &["--dry-run"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("sql: production") && err.contains("only `deploy` writes it"),
        "{err}"
    );
    assert_eq!(sha256_file(&ws.path("prod.sqlite3")), before);
}

#[test]
fn a_recipe_cannot_write_production_by_opening_its_file() {
    for path in ["prod.sqlite3", "./prod.sqlite3", "link.sqlite3"] {
        let (ws, _) = setup(USERS, WITH_TZ);
        std::os::unix::fs::symlink("prod.sqlite3", ws.path("link.sqlite3")).unwrap();
        ws.file(
            "attack.rhai",
            &format!(r#"sql(open("{path}"), "DELETE FROM users");"#),
        );
        let out = run_migration(&ws, Some("attack.rhai"), &["--yes"]);
        assert_code(&out, 2);
        assert!(
            stderr_of(&out).contains("only `deploy` writes it"),
            "{path}: {}",
            stderr_of(&out)
        );
        assert_eq!(users(&ws), ["ann", "bob", "cy"], "{path}");
    }
}

#[test]
fn the_snapshot_is_read_only_and_so_is_the_backup_behind_it() {
    let (ws, out) = attack(
        r#"backup();
let snap = snapshot();
sql(snap, "DELETE FROM users");"#,
        &["--yes"],
    );
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(err.contains("the snapshot is read-only"), "{err}");
    assert_eq!(
        column(&only_backup(&ws), "SELECT count(*) FROM users"),
        ["3"]
    );
}

#[test]
fn deploy_refuses_the_snapshot_and_the_backup_stays_intact() {
    let (ws, out) = attack(
        r#"backup();
let snap = snapshot();
deploy(snap);"#,
        &["--yes"],
    );
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("deploy takes only the validated database"),
        "{err}"
    );
    let backup = only_backup(&ws);
    assert_eq!(
        column(
            &backup,
            "SELECT count(*) FROM sqlite_schema WHERE name = '_sqlmorph_history'"
        ),
        ["0"],
        "the backup gained a history table"
    );
    assert_eq!(users(&ws), ["ann", "bob", "cy"]);
}

#[test]
fn deploy_refuses_production_itself() {
    let (ws, out) = attack(
        "backup();\nlet snap = snapshot();\ndeploy(production());",
        &["--yes"],
    );
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("deploy takes only the validated database"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        column(
            &ws.path("prod.sqlite3"),
            "SELECT count(*) FROM sqlite_schema WHERE name = '_sqlmorph_history'"
        ),
        ["0"],
        "production gained a history row"
    );
}

#[test]
fn a_validated_database_cannot_be_changed_before_deploy() {
    let (ws, out) = attack(
        r#"backup();
let snap = snapshot();
let p = plan(snap, source());
approve(p);
let migrated = copy(p);
let report = validate(p, migrated);
let ok = require(report);
sql(migrated, "DELETE FROM users");
deploy(ok);"#,
        &["--yes"],
    );
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(err.contains("the migrated database was validated"), "{err}");
    assert_eq!(users(&ws), ["ann", "bob", "cy"]);
    assert_eq!(
        column(&ws.path("prod.sqlite3"), "PRAGMA table_info(users)").len(),
        3,
        "not deployed"
    );
}

#[test]
fn a_dry_run_cannot_write_files_it_opens() {
    let (ws, _) = setup(USERS, WITH_TZ);
    let other = ws.db(
        "other.sqlite3",
        "CREATE TABLE t(a); INSERT INTO t VALUES (1);",
    );
    let before = sha256_file(&other);
    ws.file(
        "attack.rhai",
        r#"sql(open("other.sqlite3"), "DELETE FROM t");"#,
    );
    let out = run_migration(&ws, Some("attack.rhai"), &["--dry-run"]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("a dry run writes nothing"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&other), before);
}

#[test]
fn stop_is_followed_by_restart_when_the_swap_is_refused() {
    let (ws, prod) = setup(USERS, WITH_TZ);
    // `stop` itself lets a write reach production after the snapshot, so
    // the compare-and-swap refuses the deploy after `stop` ran.
    ws.file(
        "late.py",
        "import sqlite3\nc = sqlite3.connect('prod.sqlite3')\n\
         c.execute(\"INSERT INTO users VALUES (4, 'late', 1)\")\nc.commit()\n",
    );
    ws.file(
        "sqlmorph.toml",
        "stop = \"python3 late.py && echo stopped >> service.log\"\n\
         restart = \"echo restarted >> service.log\"\n",
    );
    let before_swap = content(&prod);
    // The rebuild (an in-place change that keeps every row would go in
    // beside the late write).
    let out = run_migration(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 3);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("service.log")).unwrap(),
        "stopped\nrestarted\n",
        "the service was left stopped"
    );
    assert_ne!(content(&prod), before_swap, "the late write is kept");
    assert_eq!(users(&ws), ["ann", "bob", "cy", "late"]);
}

#[test]
fn the_snapshot_opened_by_its_path_is_still_read_only() {
    let (ws, out) = attack(
        r#"backup();
let snap = snapshot();
sql(open(snap.path), "DELETE FROM users");"#,
        &["--yes"],
    );
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("the snapshot is read-only"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        column(&only_backup(&ws), "SELECT count(*) FROM users"),
        ["3"]
    );
}

#[test]
fn a_failed_health_check_keeps_the_new_database_when_the_application_wrote_to_it() {
    let (ws, prod) = setup(USERS, WITH_TZ);
    // The restarted application writes to the new database before the
    // health check fails: restoring the old one would lose that write.
    ws.file(
        "app.py",
        "import sqlite3\nc = sqlite3.connect('prod.sqlite3')\n\
         c.execute(\"INSERT INTO users(id, name, tz) VALUES (9, 'new app', 'CET')\")\nc.commit()\n",
    );
    ws.file(
        "sqlmorph.toml",
        "restart = \"python3 app.py\"\nhealth_check = \"exit 1\"\n",
    );
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 4);
    let err = stderr_of(&out);
    assert!(
        err.contains("keeps the new database: the application already wrote"),
        "{err}"
    );
    assert_eq!(
        column(&prod, "SELECT tz FROM users WHERE id = 9"),
        ["CET"],
        "the application's write is kept"
    );
}
