//! The stock migration end to end on local files: every mapping case, the
//! refusals, the compare-and-swap, validation, dry runs, confirmations and
//! rollback. A change the in-place path takes runs both ways
//! (`run_both_ways`): in place, and with `--rebuild` on a twin workspace,
//! which must end alike.

use std::path::PathBuf;
use std::process::Output;

use crate::support::{
    Workspace, assert_code, assert_sound, both_ways, column, content, run_both_ways, run_dirs,
    run_migration, setup, sha256_file, stderr_of, stdout_of,
};

fn run(ws: &Workspace, extra: &[&str]) -> Output {
    run_migration(ws, None, extra)
}

fn backups(ws: &Workspace) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ws.path("backups"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";

#[test]
fn identical_schemas_need_no_migration_and_write_only_the_log() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &[]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("No migration needed"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(sha256_file(&prod), before);
    assert!(backups(&ws).is_empty(), "no backup for nothing");
    let dirs = run_dirs(&ws);
    assert_eq!(dirs.len(), 1);
    let files: Vec<String> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["log.txt"]);
}

#[test]
fn added_column_with_default_and_without() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT NOT NULL DEFAULT 'UTC', nick TEXT);",
    );
    // The report's row counts are the rebuild's (tests/fastpath.rs covers
    // the same change in place).
    let out = run(&ws, &["--yes", "--rebuild"]);
    assert_code(&out, 0);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || name || ':' || ifnull(age, 'NULL') || ':' || tz || ':' || ifnull(nick, 'NULL') FROM users ORDER BY id"
        ),
        vec![
            "1:ann:31:UTC:NULL",
            "2:bob:NULL:UTC:NULL",
            "3:cy:7:UTC:NULL"
        ]
    );
    assert_sound(&ws);
    // The run left its files, and one backup with mode 0600.
    let dir = &run_dirs(&ws)[0];
    for f in [
        "log.txt",
        "source.sql",
        "production.sql",
        "schema.diff",
        "plan.json",
        "report.json",
        "production.sqlite3",
    ] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    assert!(
        !dir.join("migrated.sqlite3").exists(),
        "moved into production"
    );
    let b = backups(&ws);
    assert_eq!(b.len(), 1);
    let name = b[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("prod_backup_")
            && name.ends_with(".sqlite3")
            && name.len() == "prod_backup_20260101_120000.sqlite3".len(),
        "{name}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&b[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(column(&b[0], "SELECT count(*) FROM users"), vec!["3"]);
    assert_eq!(
        column(&b[0], "PRAGMA table_info(users)").len(),
        3,
        "backup holds the old schema"
    );
    // History: one row naming the stock recipe.
    assert_eq!(
        column(&prod, "SELECT recipe FROM _sqlmorph_history"),
        vec!["default"]
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["tables"][0]["rows_found"], 3);
}

#[test]
fn added_not_null_column_without_default_is_refused() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, email TEXT NOT NULL);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("users.email is new, NOT NULL and has no DEFAULT") && err.contains("3 row(s)"),
        "{err}"
    );
    assert!(
        err.contains("fill(\"users\", \"email\""),
        "says how to fix it: {err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn dropped_column_needs_allow_destructive() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("column users.age is dropped: 2 non-NULL value(s) lost"),
        "{err}"
    );
    assert!(err.contains("--allow-destructive"), "{err}");
    assert_eq!(sha256_file(&prod), before);

    let out = run(&ws, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert_eq!(
        column(&prod, "SELECT id || name FROM users ORDER BY id"),
        vec!["1ann", "2bob", "3cy"]
    );
    assert_sound(&ws);
}

#[test]
fn a_run_that_stops_right_after_the_backup_leaves_the_backup_complete() {
    // The backup is synced, named and checked on another core while the run
    // goes on; a recipe that stops the moment it has it still leaves it
    // whole under its name, and no temporary file (64 MB: syncing it
    // outlasts the rest of this run).
    let (ws, prod) = setup(
        "CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16000)
         INSERT INTO blobs SELECT i, randomblob(4000) FROM n;",
        "CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB, c TEXT);",
    );
    let before = sha256_file(&prod);
    ws.file("stop.rhai", "backup();\nthrow \"stopped on purpose\";\n");
    let out = run_migration(&ws, Some("stop.rhai"), &["--yes"]);
    assert!(
        stderr_of(&out).contains("stopped on purpose"),
        "{}",
        stderr_of(&out)
    );
    let b = backups(&ws);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].to_string_lossy().ends_with(".sqlite3"), "{b:?}");
    assert_eq!(sha256_file(&b[0]), before);
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn convertible_type_change_converts_every_value() {
    let (ws, prod) = setup(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, tempo TEXT); INSERT INTO t VALUES (1, '120'), (2, NULL), (3, '96');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, tempo INTEGER);",
    );
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("tempo TEXT -> INTEGER: 2 value(s), 2 converted"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT typeof(tempo) || ':' || ifnull(tempo, '') FROM t ORDER BY id"
        ),
        vec!["integer:120", "null:", "integer:96"]
    );
    assert_sound(&ws);
}

#[test]
fn a_conversion_of_plain_and_other_values_is_measured_as_sqlite_stores_them() {
    // Plain values (NULL, integers, decimal integers' text) are settled
    // without SQLite; the others go through a column of the new type. The
    // review's counts and the checksum validation compares with the result
    // must come out as SQLite stores each value.
    let (ws, prod) = setup(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v);
         INSERT INTO t(v) VALUES ('120'), ('-7'), ('0'), (12), (NULL), ('007'), (' 5'), ('5 '),
           ('1e3'), ('1.0'), ('1.5'), ('-0'), ('abc'), ('9007199254740993'),
           ('1000000000000000000'), (x'01'), (2.5);",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);",
    );
    let out = run(&ws, &["--yes", "--allow-destructive", "--rebuild"]);
    assert_code(&out, 0);
    let review = stdout_of(&out);
    assert!(
        review.contains(
            "~ v (none) -> INTEGER: 16 value(s), 6 converted, 6 changed, 2 kept as they are"
        ),
        "{review}"
    );
    assert!(
        review.contains(
            "t.v: 6 value(s) change meaning and 0 become NULL when converted to INTEGER \
             (e.g. row 6: '007' -> 7 (lossy); row 7: ' 5' -> 5 (lossy); row 8: '5 ' -> 5 (lossy); \
             row 9: '1e3' -> 1000 (lossy); row 10: '1.0' -> 1 (lossy))"
        ),
        "{review}"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT typeof(v) || ':' || quote(v) FROM t ORDER BY id"
        ),
        vec![
            "integer:120",
            "integer:-7",
            "integer:0",
            "integer:12",
            "null:NULL",
            "integer:7",
            "integer:5",
            "integer:5",
            "integer:1000",
            "integer:1",
            "real:1.5",
            "integer:0",
            "text:'abc'",
            "integer:9007199254740993",
            "integer:1000000000000000000",
            "blob:X'01'",
            "real:2.5",
        ]
    );
    assert_sound(&ws);
}

#[test]
fn type_change_that_changes_meaning_needs_approval() {
    let (ws, prod) = setup(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, code TEXT); INSERT INTO t VALUES (1, '007'), (2, '12');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, code INTEGER);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("t.code: 1 value(s) change meaning") && err.contains("'007' -> 7"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn type_change_that_strict_rejects_is_refused_with_samples() {
    let (ws, prod) = setup(
        "CREATE TABLE metric(id INTEGER PRIMARY KEY, value INTEGER); INSERT INTO metric VALUES (1, 12), (2, 'n/a'), (3, '7');",
        "CREATE TABLE metric(id INTEGER PRIMARY KEY, value INTEGER) STRICT;",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("metric.value: 1 value(s) cannot be stored in STRICT INTEGER column")
            && err.contains("row 2: 'n/a'"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn table_added_and_table_dropped() {
    let (ws, prod) = setup(
        &format!(
            "{USERS} CREATE TABLE old_log(id INTEGER PRIMARY KEY, msg TEXT); INSERT INTO old_log VALUES (1, 'x'), (2, 'y');"
        ),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT); CREATE TABLE goals(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id));",
    );
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 3);
    assert!(
        stderr_of(&out).contains("table old_log is dropped: 2 row(s) lost"),
        "{}",
        stderr_of(&out)
    );
    let out = run(&ws, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("DROPPED: 2 row(s) lost"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(column(&prod, "SELECT count(*) FROM users"), vec!["3"]);
    assert_eq!(column(&prod, "SELECT count(*) FROM goals"), vec!["0"]);
    assert_sound(&ws);
}

#[test]
fn cascading_foreign_keys_and_triggers_keep_every_row_and_fire_nothing() {
    let (ws, prod) = setup(
        "CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE book(id INTEGER PRIMARY KEY, author_id INT NOT NULL REFERENCES author(id) ON DELETE CASCADE, title TEXT);
         CREATE TABLE audit(n INTEGER);
         CREATE TRIGGER book_ai AFTER INSERT ON book BEGIN INSERT INTO audit VALUES (new.id); END;
         CREATE TRIGGER author_ai AFTER INSERT ON author BEGIN INSERT INTO audit VALUES (-new.id); END;
         INSERT INTO author VALUES (1, 'Le Guin'), (2, 'Banks');
         INSERT INTO book VALUES (10, 1, 'The Dispossessed'), (11, 1, 'Lathe of Heaven'), (12, 2, 'Excession');",
        "CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT, born INTEGER);
         CREATE TABLE book(id INTEGER PRIMARY KEY, author_id INT NOT NULL REFERENCES author(id) ON DELETE CASCADE, title TEXT);
         CREATE TABLE audit(n INTEGER);
         CREATE TRIGGER book_ai AFTER INSERT ON book BEGIN INSERT INTO audit VALUES (new.id); END;
         CREATE TRIGGER author_ai AFTER INSERT ON author BEGIN INSERT INTO audit VALUES (-new.id); END;",
    );
    assert_eq!(column(&prod, "SELECT count(*) FROM audit"), vec!["5"]);
    let both = run_both_ways(&ws, None, &["--yes"]);
    assert_code(&both.in_place, 0);
    assert_eq!(
        column(&prod, "SELECT id FROM book ORDER BY id"),
        vec!["10", "11", "12"]
    );
    assert_eq!(
        column(&prod, "SELECT count(*) FROM audit"),
        vec!["5"],
        "no trigger fired during the copy"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name"
        ),
        vec!["author_ai", "book_ai"]
    );
    assert_sound(&ws);
}

/// The default recipe's steps with a hook line inserted before `validate`
/// or after `snapshot`.
fn recipe_with(after_snapshot: &str, before_validate: &str) -> String {
    format!(
        r#"let target = source();
backup();
let snap = snapshot();
{after_snapshot}
let p = plan(snap, target);
approve(p);
let migrated = copy(p);
{before_validate}
let report = validate(p, migrated);
let ok = require(report);
confirm_deploy();
deploy(ok);
"#
    )
}

#[test]
fn a_snapshot_taken_again_after_a_backup_is_that_backup() {
    // A snapshot and its compare-and-swap token go together: a recipe that
    // snapshots, backs up, then snapshots again gets the backup's copy
    // (the same file), not the first snapshot under the backup's token.
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    ws.file(
        "twice.rhai",
        &recipe_with("", "").replace("backup();", "let first = snapshot();\nbackup();"),
    );
    let out = run_migration(&ws, Some("twice.rhai"), &["--yes"]);
    assert_code(&out, 0);
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    let snapshot = run_dirs(&ws).last().unwrap().join("production.sqlite3");
    assert_eq!(inode(&snapshot), inode(&backups(&ws)[0]));
    assert_eq!(
        column(&prod, "SELECT tz FROM users WHERE id = 1"),
        vec!["UTC"]
    );
}

#[test]
fn a_write_after_the_snapshot_aborts_the_swap() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    // Another process writes production after the snapshot, before the
    // swap (the `stop` command runs in between).
    ws.file(
        "late.py",
        "import sqlite3\nc = sqlite3.connect('prod.sqlite3')\n\
         c.execute(\"INSERT INTO users VALUES (4, 'late', 1)\")\nc.commit()\n",
    );
    ws.file("sqlmorph.toml", "stop = \"python3 late.py\"\n");
    // The rebuild is built from the snapshot: the late row would be lost, so
    // the deploy is refused. (In place, a change that keeps every row goes
    // in beside it: see the test after this one.)
    let out = run_migration(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 3);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        column(&prod, "SELECT name FROM users WHERE id = 4"),
        vec!["late"],
        "the late write survives"
    );
    assert_eq!(
        column(&prod, "PRAGMA table_info(users)").len(),
        3,
        "old schema kept"
    );
    let dir = &run_dirs(&ws)[0];
    assert!(
        dir.join("migrated.sqlite3").exists(),
        "the migrated file stays in the run directory"
    );
    assert!(
        !ws.path(".prod.sqlite3.sqlmorph-new").exists(),
        "no staged file beside production"
    );
}

#[test]
fn a_write_after_the_snapshot_is_kept_by_an_in_place_change_that_keeps_every_row() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    ws.file(
        "late.py",
        "import sqlite3\nc = sqlite3.connect('prod.sqlite3')\n\
         c.execute(\"INSERT INTO users VALUES (4, 'late', 1)\")\nc.commit()\n",
    );
    ws.file("sqlmorph.toml", "stop = \"python3 late.py\"\n");
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("path: in place"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(&prod, "SELECT name || ' ' || tz FROM users WHERE id = 4"),
        vec!["late UTC"],
        "the late write is kept, with the new column's default"
    );
    assert_sound(&ws);
}

#[test]
fn validation_catches_a_lost_row_before_deploy() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let before = sha256_file(&prod);
    ws.file(
        "lossy.rhai",
        &recipe_with("", r#"sql(migrated, "DELETE FROM users WHERE id = 2");"#),
    );
    let both = run_both_ways(&ws, Some("lossy.rhai"), &["--yes"]);
    for out in both.outputs() {
        assert_code(out, 3);
        let err = stderr_of(out);
        assert!(
            err.contains("validation failed")
                && err.contains("3 row(s) in the snapshot, 2 in the migrated database"),
            "{err}"
        );
    }
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn validation_catches_a_changed_value() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let before = sha256_file(&prod);
    ws.file(
        "edit.rhai",
        &recipe_with(
            "",
            r#"sql(migrated, "UPDATE users SET name = 'ANN' WHERE id = 1");"#,
        ),
    );
    let both = run_both_ways(&ws, Some("edit.rhai"), &["--yes"]);
    for out in both.outputs() {
        assert_code(out, 3);
        assert!(
            stderr_of(out).contains("values differ from the snapshot in column(s) name"),
            "{}",
            stderr_of(out)
        );
    }
    assert_eq!(sha256_file(&prod), before);
}

/// A WITHOUT ROWID child table (no rowid to tell its rows apart) that
/// already holds one orphan in production.
const ORPHANS: &str = "PRAGMA foreign_keys = OFF;
CREATE TABLE p(id INTEGER PRIMARY KEY);
CREATE TABLE c(k TEXT PRIMARY KEY, p INT REFERENCES p(id)) WITHOUT ROWID;
INSERT INTO p VALUES (1);
INSERT INTO c VALUES ('ok', 1), ('old orphan', 99);";
const ORPHANS_SOURCE: &str = "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE c(k TEXT PRIMARY KEY, p INT REFERENCES p(id)) WITHOUT ROWID;";

#[test]
fn validation_catches_a_new_orphan_beside_an_old_one_without_rowid() {
    let (ws, prod) = setup(
        ORPHANS,
        "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(k TEXT PRIMARY KEY, p INT REFERENCES p(id), q INT REFERENCES p(id)) WITHOUT ROWID;",
    );
    let before = sha256_file(&prod);
    // The new column points row 'ok' at a parent that does not exist.
    ws.file(
        "orphan.rhai",
        "fill(\"c\", \"q\", \"CASE k WHEN 'ok' THEN 42 END\");\nimport \"std/default\";\n",
    );
    let out = run_migration(&ws, Some("orphan.rhai"), &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("validation failed")
            && err.contains("foreign key: c has 1 new row(s) referencing a missing row of p (2 in the migrated database, 1 in production)"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn validation_catches_a_new_violation_on_a_row_that_already_had_one() {
    let (ws, prod) = setup(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE a(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
         INSERT INTO c VALUES (1, 99);",
        "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE a(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id), a INT REFERENCES a(id));",
    );
    let before = sha256_file(&prod);
    // Row 1 already pointed at a missing p; now it also points at a missing a.
    ws.file(
        "orphan.rhai",
        "fill(\"c\", \"a\", \"7\");\nimport \"std/default\";\n",
    );
    let out = run_migration(&ws, Some("orphan.rhai"), &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("foreign key: c rowid 1 references a missing row of a"),
        "{err}"
    );
    assert!(!err.contains("missing row of p"), "{err}");
    assert_eq!(sha256_file(&prod), before);
}

/// The rebuild leaves out the `foreign_key_check` of a table whose keys
/// and rows its checksums prove (src/pipeline/fkproof.rs), and checks the
/// others: a new key, and a key whose column was converted.
#[test]
fn a_rebuild_checks_only_the_foreign_keys_its_checksums_do_not_prove() {
    let (ws, prod) = setup(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE kept(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
         CREATE TABLE keyed(id INTEGER PRIMARY KEY, p INT);
         CREATE TABLE typed(id INTEGER PRIMARY KEY, p TEXT REFERENCES p(id));
         INSERT INTO p VALUES (1, 'one');
         INSERT INTO kept VALUES (1, 1), (2, 99);
         INSERT INTO keyed VALUES (1, 1);
         INSERT INTO typed VALUES (1, '1');",
        "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT, note TEXT);
         CREATE TABLE kept(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
         CREATE TABLE keyed(id INTEGER PRIMARY KEY, p INT REFERENCES p(id));
         CREATE TABLE typed(id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));",
    );
    let out = run_migration(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dirs(&ws).last().unwrap().join("report.json")).unwrap(),
    )
    .unwrap();
    let mut checked: Vec<String> = report["foreign_key_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    checked.sort();
    assert_eq!(checked, ["keyed", "typed"]);
    // The old orphan of `kept` is kept and was never a new violation.
    assert_eq!(column(&prod, "SELECT p FROM kept WHERE id = 2"), vec!["99"]);
}

#[test]
fn an_old_orphan_without_rowid_alone_is_not_a_new_violation() {
    let (ws, prod) = setup(ORPHANS, ORPHANS_SOURCE);
    let both = run_both_ways(&ws, None, &["--yes"]);
    assert_code(&both.in_place, 0);
    assert_eq!(
        column(&prod, "SELECT k FROM c WHERE p = 99"),
        vec!["old orphan"]
    );
}

/// An index `name` on users, created as `index` (`ON users(…)`) on both
/// sides; a recipe then rewrites its definition in the migrated file to
/// `tampered`, so that its entries no longer match what it says: the run
/// must stop at validation, both ways, with production untouched.
fn assert_a_tampered_index_is_caught(name: &str, index: &str, tampered: &str) {
    let create = format!("CREATE INDEX {name} ON users{index};");
    let (ws, prod) = setup(
        &format!("{USERS} {create}"),
        &format!(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC'); {create}"
        ),
    );
    let before = sha256_file(&prod);
    let tamper = format!(
        r#"sql(migrated, "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX {name} ON users{tampered}' WHERE name = '{name}'; PRAGMA writable_schema = RESET;");"#
    );
    ws.file("tamper.rhai", &recipe_with("", &tamper));
    let both = run_both_ways(&ws, Some("tamper.rhai"), &["--yes"]);
    let expected = format!("index {name} does not match the content of table users");
    for out in both.outputs() {
        assert_code(out, 3);
        assert!(stderr_of(out).contains(&expected), "{}", stderr_of(out));
    }
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn validation_catches_an_index_that_does_not_match_its_table() {
    // Its entries hold lower(name); its definition then says upper(name).
    assert_a_tampered_index_is_caught("users_name", "(lower(name))", "(upper(name))");
}

#[test]
fn validation_catches_an_index_of_plain_columns_that_does_not_match_its_table() {
    // Such an index is checked against the column checksums validation
    // computes anyway (no aggregate of its own in the table's scan). Its
    // entries hold age; its definition then says name.
    assert_a_tampered_index_is_caught("users_age", "(age)", "(name)");
}

#[test]
fn a_rebuild_carries_unchanged_indexes_over_and_builds_the_others() {
    // users.age changes type (a rebuild); the index on name is production's
    // own, carried over; the one on age is built; the result is sound.
    let (ws, prod) = setup(
        &format!(
            "{USERS} CREATE INDEX users_name ON users(name); CREATE INDEX users_age ON users(age);"
        ),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age TEXT);
         CREATE INDEX users_name ON users(name); CREATE INDEX users_age ON users(age);",
    );
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 0);
    let log = stdout_of(&out);
    assert!(
        log.contains(
            "index(es) carried over from production unchanged (not rebuilt): users_name\n"
        ),
        "{log}"
    );
    assert_eq!(column(&prod, "PRAGMA integrity_check"), ["ok"]);
    assert_eq!(
        column(
            &prod,
            "SELECT name || ':' || typeof(age) FROM users INDEXED BY users_name ORDER BY name"
        ),
        ["ann:text", "bob:null", "cy:text"]
    );
}

#[test]
fn a_carried_index_that_disagrees_with_its_table_in_production_fails_validation() {
    // Production's index users_age holds the names (its definition was
    // rewritten; quick_check cannot see it). A rebuild carries it over:
    // validation finds it, says where it came from, and nothing changes.
    let (ws, prod) = setup(
        &format!(
            "{USERS} CREATE INDEX users_age ON users(name);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX users_age ON users(age)' WHERE name = 'users_age';
             PRAGMA writable_schema = OFF;"
        ),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT NOT NULL DEFAULT 'UTC',
             CHECK (age >= 0));
         CREATE INDEX users_age ON users(age);",
    );
    assert_eq!(column(&prod, "PRAGMA quick_check"), ["ok"]);
    let before = sha256_file(&prod);
    let out = run(&ws, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("index users_age does not match the content of table users (the index was carried over unchanged from production's users_age: run `sqlmorph check` on production; `REINDEX users_age` there repairs it)"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn a_view_that_does_not_work_on_the_new_schema_stops_the_run_both_ways() {
    // SQLite creates a view without resolving its columns: the run must
    // query it before production gets it, in place as in the rebuild.
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
         CREATE VIEW adults AS SELECT id, nmae FROM users WHERE age >= 18;",
    );
    let before = sha256_file(&prod);
    let both = run_both_ways(&ws, None, &["--yes"]);
    for out in both.outputs() {
        assert_code(out, 2);
        assert!(
            stderr_of(out).contains("view adults does not work on the new schema")
                && stderr_of(out).contains("no such column: nmae"),
            "{}",
            stderr_of(out)
        );
    }
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn dry_run_writes_nothing_outside_the_run_directory() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    std::fs::create_dir(ws.path("backups")).unwrap();
    let mut before = ws.snapshot();
    let out = run(&ws, &["--dry-run", "--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("Validation passed") && text.contains("dry run: production not changed"),
        "{text}"
    );
    let mut after = ws.snapshot();
    after.retain(|p, _| !p.starts_with(".sqlmorph"));
    before.retain(|p, _| !p.starts_with(".sqlmorph"));
    assert_eq!(after, before, "only .sqlmorph/ changed");
    assert!(backups(&ws).is_empty());
    assert_eq!(sha256_file(&prod), before[&PathBuf::from("prod.sqlite3")]);
}

#[test]
fn without_a_terminal_or_yes_the_first_confirmation_stops_the_run() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, &[]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("Build the migrated database?") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
    assert!(
        !run_dirs(&ws)[0].join("migrated.sqlite3").exists(),
        "stopped before building"
    );
}

#[test]
fn rollback_restores_the_backup_content() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let original = ws
        .cmd()
        .args(["schema", "prod.sqlite3"])
        .output()
        .unwrap()
        .stdout;
    let rows = column(
        &prod,
        "SELECT id || name || ifnull(age, '') FROM users ORDER BY id",
    );
    assert_code(&run_both_ways(&ws, None, &["--yes"]).in_place, 0);
    assert_eq!(column(&prod, "PRAGMA table_info(users)").len(), 4);

    let out = ws.cmd().args(["backups"]).output().unwrap();
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("prod_backup_"),
        "{}",
        stdout_of(&out)
    );

    let out = ws
        .cmd()
        .args(["rollback", "--production", "prod.sqlite3"])
        .output()
        .unwrap();
    assert_code(&out, 3);
    let out = ws
        .cmd()
        .args(["rollback", "--production", "prod.sqlite3", "--yes"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(
        ws.cmd()
            .args(["schema", "prod.sqlite3"])
            .output()
            .unwrap()
            .stdout,
        original
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || name || ifnull(age, '') FROM users ORDER BY id"
        ),
        rows
    );
    assert_eq!(
        backups(&ws).len(),
        2,
        "the migrated production was backed up first"
    );
}

#[test]
fn wal_production_is_migrated_with_its_uncheckpointed_writes() {
    let ws = Workspace::new();
    let prod = ws.path("prod.sqlite3");
    let conn = rusqlite::Connection::open(&prod).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);").unwrap();
    conn.execute_batch("INSERT INTO t VALUES (1, 'in wal'), (2, 'also');")
        .unwrap();
    assert!(ws.path("prod.sqlite3-wal").metadata().unwrap().len() > 0);
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w INT DEFAULT 5);",
    );
    let both = run_both_ways(&ws, None, &["--yes"]);
    drop(conn);
    assert_code(&both.in_place, 0);
    assert_eq!(
        column(&prod, "SELECT v || w FROM t ORDER BY id"),
        vec!["in wal5", "also5"]
    );
    assert_eq!(column(&prod, "PRAGMA journal_mode"), vec!["wal"]);
    assert_sound(&ws);
}

#[test]
fn json_summary_for_ci() {
    let (ws, _) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let both = run_both_ways(&ws, None, &["--yes", "--format", "json"]);
    // The same summary either way.
    let summary = |out: &Output| {
        assert_code(out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["deployed"], true);
        assert_eq!(v["report"]["ok"], true);
        assert!(
            stderr_of(out).contains("1/10 back up production"),
            "log on stderr"
        );
        // Every step's time, in the summary, in report.json and in the log.
        let steps: Vec<String> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert!(s["seconds"].as_f64().unwrap() >= 0.0);
                s["step"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            steps.first().map(String::as_str),
            Some("0/10 compare production with the source")
        );
        assert!(steps.iter().any(|s| s.starts_with("7/10")), "{steps:?}");
        assert!(steps.last().unwrap().starts_with("10/10"), "{steps:?}");
        steps
    };
    summary(&both.rebuild);
    let steps = summary(&both.in_place);
    let dir = &run_dirs(&ws)[0];
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["steps"].as_array().unwrap().len(), steps.len());
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(
        log.contains("  10/10 swap into production and restart: "),
        "{log}"
    );
}

#[test]
fn recipe_errors_name_file_line_and_column() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT);",
    );
    let before = sha256_file(&prod);
    ws.file("syntax.rhai", "let x = 1;\nlet y = ;\n");
    let out = run_migration(&ws, Some("syntax.rhai"), &[]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("syntax.rhai:2:9"),
        "{}",
        stderr_of(&out)
    );

    ws.file(
        "unknown.rhai",
        "backup();\nlet s = snapshot();\nfrobnicate(s);\n",
    );
    let out = run_migration(&ws, Some("unknown.rhai"), &[]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("frobnicate")
            && err.contains("unknown.rhai:3:1")
            && err.contains("3 | frobnicate(s);"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);

    // A small, configured limit keeps the test fast (and tests [limits]).
    ws.file("sqlmorph.toml", "[limits]\nmax_operations = 100000\n");
    ws.file("forever.rhai", "let n = 0;\nloop { n += 1; }\n");
    let out = run_migration(&ws, Some("forever.rhai"), &[]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("too many operations"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn sqlmorph_toml_supplies_options_and_flags_override() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    ws.file("sqlmorph.toml", "source = \"schema.sql\"\nproduction = \"prod.sqlite3\"\nbackup_dir = \"bk\"\nrestart = \"touch restarted.flag\"\n");
    let both = both_ways(&ws, |w, more| {
        w.cmd().args(["run", "--yes"]).args(more).output().unwrap()
    });
    for (out, w) in [(&both.in_place, &ws), (&both.rebuild, &both.twin)] {
        assert_code(out, 0);
        assert!(w.path("restarted.flag").exists(), "restart command ran");
        assert_eq!(std::fs::read_dir(w.path("bk")).unwrap().count(), 1);
    }
    assert_eq!(column(&prod, "PRAGMA table_info(users)").len(), 4);

    ws.file(
        "sqlmorph.toml",
        "source = \"schema.sql\"\nproduction = \"prod.sqlite3\"\nbogus = 1\n",
    );
    let out = ws.cmd().args(["run", "--yes"]).output().unwrap();
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("unknown field `bogus`"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_failing_health_check_restores_the_previous_file() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    let before = content(&prod);
    ws.file(
        "sqlmorph.toml",
        "health_check = \"exit 1\"\nrestart = \"echo restarted >> restarts.txt\"\n",
    );
    let both = run_both_ways(&ws, None, &["--yes"]);
    for out in both.outputs() {
        assert_code(out, 4);
        assert!(
            stderr_of(out).contains("health_check command `exit 1` failed"),
            "{}",
            stderr_of(out)
        );
    }
    assert_eq!(content(&prod), before, "the previous database is back");
    for w in [&ws, &both.twin] {
        assert_eq!(
            std::fs::read_to_string(w.path("restarts.txt"))
                .unwrap()
                .lines()
                .count(),
            2,
            "restarted after the swap and after the restore"
        );
    }
}

#[test]
fn plan_and_init_write_nothing_unexpected() {
    let (ws, _) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, tz TEXT DEFAULT 'UTC');",
    );
    let before = ws.snapshot();
    let out = ws
        .cmd()
        .args([
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
            "--yes",
            "--allow-destructive",
        ])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains("- age (2 value(s) lost)") && text.contains("+ tz (DEFAULT 'UTC')"),
        "{text}"
    );
    let out = ws
        .cmd()
        .args([
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["tables"][0]["dropped"][0]["values"], 2);
    assert_eq!(ws.snapshot(), before, "plan wrote nothing");

    assert_code(&ws.cmd().arg("init").output().unwrap(), 0);
    let toml = std::fs::read_to_string(ws.path("sqlmorph.toml")).unwrap();
    assert!(toml.contains("backup_dir = \"backups\""));
    assert!(
        std::fs::read_to_string(ws.path("recipe.rhai"))
            .unwrap()
            .contains("import \"std/default\"")
    );
}

#[test]
fn the_demo_migrates_end_to_end() {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let prod = ws.path("prod.sqlite3");
    let conn = rusqlite::Connection::open(&prod).unwrap();
    conn.execute_batch(
        &std::fs::read_to_string(root.join("examples/demo/production.sql")).unwrap(),
    )
    .unwrap();
    drop(conn);
    std::fs::copy(root.join("examples/demo/schema.sql"), ws.path("schema.sql")).unwrap();
    let practice = column(
        &prod,
        "SELECT id || ':' || ifnull(tempo, '') || ':' || minutes FROM practice ORDER BY id",
    );
    let out = run(&ws, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(tempo, '') || ':' || minutes FROM practice ORDER BY id"
        ),
        practice
    );
    assert_eq!(
        column(
            &prod,
            "SELECT DISTINCT typeof(tempo) FROM practice WHERE tempo IS NOT NULL"
        ),
        vec!["integer"]
    );
    assert_eq!(column(&prod, "PRAGMA user_version"), vec!["4"]);
    assert_sound(&ws);
}

#[test]
fn flags_override_sqlmorph_toml() {
    let (ws, prod) = setup(
        USERS,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');",
    );
    ws.file(
        "other.sql",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, nick TEXT);",
    );
    ws.file(
        "sqlmorph.toml",
        "source = \"schema.sql\"\nproduction = \"prod.sqlite3\"\nbackup_dir = \"bk\"\n",
    );
    let both = both_ways(&ws, |w, more| {
        w.cmd()
            .args([
                "run",
                "--yes",
                "--source",
                "other.sql",
                "--backup-dir",
                "flagdir",
            ])
            .args(more)
            .output()
            .unwrap()
    });
    for (out, w) in [(&both.in_place, &ws), (&both.rebuild, &both.twin)] {
        assert_code(out, 0);
        assert_eq!(std::fs::read_dir(w.path("flagdir")).unwrap().count(), 1);
        assert!(!w.path("bk").exists(), "the flag won over the file");
    }
    let columns = column(
        &prod,
        "SELECT name FROM pragma_table_info('users') ORDER BY cid",
    );
    assert_eq!(
        columns,
        vec!["id", "name", "age", "nick"],
        "--source won over the file"
    );
}
