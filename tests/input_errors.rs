//! Bad input gets one clear message and exit 2; no file is created or changed.

use crate::support::{Workspace, stderr_of};

/// Runs `sqlmorph ARGS` and checks: exit 2, stderr contains `needle`, no panic,
/// and the workspace is byte-for-byte unchanged.
fn fails_cleanly(ws: &Workspace, args: &[&str], needle: &str) {
    let before = ws.snapshot();
    let out = ws.cmd().args(args).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one message: {err}"
    );
    assert_eq!(ws.snapshot(), before, "{args:?} changed files");
}

#[test]
fn missing_path_creates_nothing() {
    let ws = Workspace::new();
    let good = ws.file("good.sql", "CREATE TABLE t(a);");
    let good = good.to_str().unwrap();
    for cmd in [
        ["schema", "missing.sqlite3"].as_slice(),
        &["diff", "missing.sqlite3", good],
        &["diff", good, "missing.db"],
        &["check", "missing.sqlite3"],
    ] {
        fails_cleanly(&ws, cmd, "no such file");
    }
    assert!(!ws.path("missing.sqlite3").exists());
    fails_cleanly(&ws, &["schema", "missing.sql"], "no such file");
}

#[test]
fn a_directory_is_refused() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("adir")).unwrap();
    fails_cleanly(&ws, &["schema", "adir"], "is a directory");
    fails_cleanly(&ws, &["check", "adir"], "is a directory");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let ws = Workspace::new();
    ws.file("notes.txt", "hello, this is not a database at all\n");
    fails_cleanly(&ws, &["schema", "notes.txt"], "is not a SQLite database");
    fails_cleanly(&ws, &["check", "notes.txt"], "is not a SQLite database");
}

#[test]
fn a_corrupt_database_is_refused() {
    let ws = Workspace::new();
    let db = ws.db(
        "c.sqlite3",
        "CREATE TABLE t(a); CREATE TABLE u(b); INSERT INTO t VALUES (1);",
    );
    let mut bytes = std::fs::read(&db).unwrap();
    // Keep the 100-byte header, wreck the schema page's b-tree header.
    for b in &mut bytes[100..140] {
        *b = 0xEE;
    }
    std::fs::write(&db, bytes).unwrap();
    fails_cleanly(&ws, &["schema", "c.sqlite3"], "is corrupt");
    fails_cleanly(&ws, &["diff", "c.sqlite3", "c.sqlite3"], "is corrupt");
    fails_cleanly(&ws, &["check", "c.sqlite3"], "corrupt");
}

#[test]
fn an_unreadable_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let db = ws.db("secret.sqlite3", "CREATE TABLE t(a);");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    let before = ws.snapshot_with_perms();
    // Root reads everything, so run the binary as an unprivileged user there.
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let mut cmd = if is_root() {
        std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let out = cmd.arg("schema").arg(&db).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("secret.sqlite3"),
        "{err}"
    );
    assert_eq!(ws.snapshot_with_perms(), before);
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Workspace {
    /// Names and modes only (contents may be unreadable).
    fn snapshot_with_perms(&self) -> Vec<(std::path::PathBuf, u32, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut v: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                (e.path(), m.mode(), m.len())
            })
            .collect();
        v.sort();
        v
    }
}

#[test]
fn a_sql_syntax_error_names_the_statement_and_line() {
    let ws = Workspace::new();
    ws.file(
        "bad.sql",
        "CREATE TABLE a(x INT);\n\n-- the next one is wrong\nCREATE TABLE b(\n  y INT,\n  z TEXT NOT NUL\n);\n",
    );
    fails_cleanly(&ws, &["schema", "bad.sql"], "bad.sql:6: statement 2 failed");
    fails_cleanly(&ws, &["diff", "bad.sql", "bad.sql"], "CREATE TABLE b(");
}

/// `sqlmorph run` against a bad production: exit 2, one message, no panic
/// and no backtrace even with `RUST_BACKTRACE=1`, production unchanged and
/// no backup written.
fn run_fails_cleanly(ws: &Workspace, prod: &str, needle: &str) {
    let before = ws.snapshot();
    let out = ws
        .cmd()
        .env("RUST_BACKTRACE", "1")
        .args(["run", "--yes", "--source", "good.sql", "--production", prod])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{prod}: {err}");
    assert!(err.contains(needle), "{prod}: {err:?} lacks {needle:?}");
    for bad in ["panicked", "backtrace", "Stack backtrace"] {
        assert!(!err.contains(bad), "{err}");
    }
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one message: {err}");
    let after = ws.snapshot();
    let outside_runs = |m: &std::collections::BTreeMap<std::path::PathBuf, String>| {
        m.iter()
            .filter(|(p, _)| !p.starts_with(".sqlmorph"))
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outside_runs(&after),
        outside_runs(&before),
        "{prod} changed files"
    );
}

#[test]
fn run_refuses_a_bad_production_cleanly() {
    let ws = Workspace::new();
    ws.file("good.sql", "CREATE TABLE t(a);");
    run_fails_cleanly(&ws, "missing.sqlite3", "no such file");
    assert!(!ws.path("missing.sqlite3").exists());
    std::fs::create_dir(ws.path("adir")).unwrap();
    run_fails_cleanly(&ws, "adir", "is a directory");
    ws.file("notes.txt", "hello, this is not a database at all\n");
    run_fails_cleanly(&ws, "notes.txt", "is not a SQLite database");
    let db = ws.db(
        "c.sqlite3",
        "CREATE TABLE t(a); CREATE TABLE u(b); INSERT INTO t VALUES (1);",
    );
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[100..140] {
        *b = 0xEE;
    }
    std::fs::write(&db, bytes).unwrap();
    run_fails_cleanly(&ws, "c.sqlite3", "is corrupt");
}

#[test]
fn run_refuses_an_unreadable_production_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.file("good.sql", "CREATE TABLE t(a);");
    let db = ws.db("secret.sqlite3", "CREATE TABLE t(a);");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    let before = ws.snapshot_with_perms();
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let mut cmd = if is_root() {
        std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let out = cmd
        .current_dir(ws.dir.path())
        .env("RUST_BACKTRACE", "1")
        .args(["run", "--yes", "--source", "good.sql", "--production"])
        .arg(&db)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("secret.sqlite3"),
        "{err}"
    );
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err}"
    );
    let after: Vec<_> = ws
        .snapshot_with_perms()
        .into_iter()
        .filter(|(p, _, _)| !p.ends_with(".sqlmorph"))
        .collect();
    assert_eq!(after, before);
}

/// A production whose index has a damaged page (SQLite still opens it).
fn damaged_production(ws: &Workspace) -> std::path::PathBuf {
    let prod = ws.db(
        "prod.sqlite3",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, printf('value %05d', i) FROM n;",
    );
    let page: i64 = crate::support::column(
        &prod,
        "SELECT pageno FROM dbstat WHERE name = 'tv' AND pagetype = 'leaf' LIMIT 1 OFFSET 3",
    )[0]
    .parse()
    .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&prod).unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &f,
        &b"value 99999".repeat(3),
        ((page - 1) * 4096 + 2000) as u64,
    )
    .unwrap();
    prod
}

#[test]
fn a_production_whose_backup_fails_quick_check_is_not_migrated_either_way() {
    for extra in [None, Some("--rebuild")] {
        let ws = Workspace::new();
        let prod = damaged_production(&ws);
        ws.file(
            "good.sql",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);
             CREATE VIEW w AS SELECT v FROM t;",
        );
        let before = crate::support::sha256_file(&prod);
        let mut args = vec![
            "run",
            "--yes",
            "--source",
            "good.sql",
            "--production",
            "prod.sqlite3",
        ];
        args.extend(extra);
        let out = ws.cmd().args(&args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("failed quick_check"), "{err}");
        assert!(err.contains("sqlmorph check"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(crate::support::sha256_file(&prod), before, "{extra:?}");
    }
}
