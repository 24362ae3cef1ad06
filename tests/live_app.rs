//! Production safety of the local swap, with a live application: the
//! migrated content must reach the file the application has open (same
//! inode, owner and mode; a symlink stays a symlink), no acknowledged commit
//! may be lost (not even one waiting on the lock during the swap), a WAL
//! production that nobody has open or that an application left with an
//! uncheckpointed `-wal` is read without being changed, and a rollback
//! restores the backup taken before the deploy.
//!
//! The application is a set of threads in this test process using rusqlite:
//! to SQLite's POSIX locks that is another process than the `sqlmorph`
//! binary, which is what matters. Each live scenario runs in a process of
//! its own (see `in_own_process`).
//!
//! The writers write before the run and while it compares schemas, stay
//! away from production between the backup and the deploy step (any commit
//! there makes the compare-and-swap abort with exit 3, which is correct but
//! proves nothing about the swap), and are released onto the swap itself:
//! as soon as sqlmorph is seen holding production's write lock, so that
//! their transactions wait on it, or else as soon as the new schema is
//! visible. They then write until the run has exited and after; a `restart`
//! command keeps the run in its deploy step for a moment after the swap.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use crate::support::{
    Workspace, assert_code, assert_sound, column, run_migration, setup, sha256_file, stderr_of,
    stdout_of,
};

// ---------------------------------------------------------------------------
// 1 and 2: a live application keeps writing while `run --yes` deploys.
// ---------------------------------------------------------------------------

/// The application's table: identical in production and in the source, so
/// the application's statements keep working across the swap.
const EVENTS: &str = "CREATE TABLE events(id INTEGER PRIMARY KEY, writer TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 1);";

/// Production: the application's table, a table the migration changes, and
/// 4 MB of blobs so that the swap takes a measurable time.
fn live_production(mode: &str) -> String {
    format!(
        "PRAGMA journal_mode = {mode};
         {EVENTS}
         CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
         INSERT INTO events(id, writer) SELECT i, 'seed' FROM c;
         INSERT INTO items(id, name) SELECT id, 'item ' || id FROM events;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000)
         INSERT INTO blobs(id, data) SELECT i, randomblob(4000) FROM c;"
    )
}

/// The source: a nullable column on `items`, a new table and a new index;
/// `events` unchanged.
fn live_source() -> String {
    format!(
        "{EVENTS}
         CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT);
         CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         CREATE TABLE labels(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE INDEX items_name ON items(name);"
    )
}

/// How long the write lock must be seen held before the writers are
/// released onto it.
const LOCK_HELD: Duration = Duration::from_millis(3);

/// A table only the new schema has: its presence means the swap happened.
const NEW_TABLE: &str = "labels";

/// What the writers and the run controller share.
struct Live {
    prod: PathBuf,
    /// Writers start no new transaction while this is set.
    hold: AtomicBool,
    stop: AtomicBool,
    next_id: AtomicI64,
    /// When the run's deploy step was seen starting (its step line read).
    deploy_seen: Mutex<Option<Instant>>,
}

/// Sets the stop flag when dropped, so that a panic inside a thread scope
/// still ends the writers and the scope can join them.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Kills the child when dropped if it is still running (a failing test
/// never leaves a `sqlmorph` behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One acknowledged commit: COMMIT returned Ok.
struct Ack {
    id: i64,
    at: Instant,
    /// The earlier row of the same writer this transaction also updated.
    updated: Option<i64>,
}

/// What one writer did.
struct Writer {
    name: &'static str,
    acks: Vec<Ack>,
    /// Failed transactions (never acknowledged), by error text.
    failures: BTreeMap<String, usize>,
    /// Failures that are not contention (busy, locked, schema changed).
    bad_failures: Vec<String>,
}

fn open_writer(prod: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        prod,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(5))?;
    // Commits without fsync keep the test fast; locking is unchanged.
    c.pragma_update(None, "synchronous", "OFF")?;
    Ok(c)
}

/// One application transaction: a new row, sometimes an update of an
/// earlier one. Rolled back unless COMMIT returns Ok.
fn transaction(c: &Connection, name: &str, id: i64, update: Option<i64>) -> rusqlite::Result<()> {
    c.execute_batch("BEGIN IMMEDIATE")?;
    let r = (|| {
        c.execute(
            "INSERT INTO events(id, writer) VALUES (?1, ?2)",
            params![id, name],
        )?;
        if let Some(u) = update {
            c.execute("UPDATE events SET n = n + 1 WHERE id = ?1", [u])?;
        }
        c.execute_batch("COMMIT")
    })();
    if r.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    r
}

fn is_contention(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SchemaChanged)
    )
}

/// The writer loop: a persistent connection (`conn` given) or a new
/// connection for every transaction (`conn` None). Returns the connection.
fn write_until_stopped(
    live: &Live,
    name: &'static str,
    mut conn: Option<Connection>,
) -> (Option<Connection>, Writer) {
    let mut w = Writer {
        name,
        acks: Vec::new(),
        failures: BTreeMap::new(),
        bad_failures: Vec::new(),
    };
    while !live.stop.load(SeqCst) {
        if live.hold.load(SeqCst) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let id = live.next_id.fetch_add(1, SeqCst);
        let update = (id % 3 == 0 && !w.acks.is_empty())
            .then(|| w.acks[usize::try_from(id).unwrap_or(0) % w.acks.len()].id);
        let result = match &conn {
            Some(c) => transaction(c, name, id, update),
            None => open_writer(&live.prod).and_then(|c| transaction(&c, name, id, update)),
        };
        match result {
            Ok(()) => w.acks.push(Ack {
                id,
                at: Instant::now(),
                updated: update,
            }),
            Err(e) => {
                if !is_contention(&e) && w.bad_failures.len() < 5 {
                    w.bad_failures.push(e.to_string());
                }
                *w.failures.entry(e.to_string()).or_default() += 1;
            }
        }
        // Up to a thousand transactions a second: busy, and it leaves the
        // run (and this machine's other users) some CPU.
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(c) = &mut conn {
        // Leave no transaction open on the persistent connection.
        if !c.is_autocommit() {
            let _ = c.execute_batch("ROLLBACK");
        }
    }
    (conn, w)
}

enum Probe {
    /// Another connection holds the write lock.
    Locked,
    /// Production has the new schema.
    Swapped,
    Idle,
}

/// Looks at production from a fresh connection without writing anything:
/// is its write lock held, or has the new schema arrived?
fn probe(prod: &Path) -> Probe {
    let Ok(c) = open_writer(prod) else {
        return Probe::Idle;
    };
    if c.busy_timeout(Duration::ZERO).is_err() {
        return Probe::Idle;
    }
    match c.execute_batch("BEGIN IMMEDIATE") {
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => Probe::Locked,
        Err(_) => Probe::Idle,
        Ok(()) => {
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                    [NEW_TABLE],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            let _ = c.execute_batch("ROLLBACK");
            if n > 0 { Probe::Swapped } else { Probe::Idle }
        }
    }
}

/// One `sqlmorph run --yes` while the writers run.
struct Attempt {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The deploy step's start as seen here (after sqlmorph printed it).
    deploy_seen: Option<Instant>,
    /// The last moment the run was known to be still running.
    last_alive: Instant,
    /// A writer was released while sqlmorph held production's write lock:
    /// it waited on that lock through the swap.
    waited_on_lock: bool,
}

/// Runs the migration while the writers write. They write freely until the
/// run starts its backup, hold off from then until its deploy step (a write
/// in that window legitimately aborts the swap, exit 3), and are released
/// again as soon as sqlmorph holds production's write lock for the swap (so
/// their transactions wait on that lock) or the new schema is visible.
fn run_during_writes(ws: &Workspace, live: &Live) -> Attempt {
    *live.deploy_seen.lock().unwrap() = None;
    live.hold.store(false, SeqCst);
    let mut child = ws
        .cmd_std()
        .args([
            "run",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
            "--yes",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sqlmorph");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(child);
    std::thread::scope(|s| {
        let out = s.spawn(|| {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("1/10 back up production") {
                    live.hold.store(true, SeqCst);
                }
                if line.contains("10/10 swap into production") {
                    *live.deploy_seen.lock().unwrap() = Some(Instant::now());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let err = s.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let mut last_alive = started;
        let mut waited_on_lock = false;
        // Since when the probe has seen the write lock held, without a
        // moment free in between.
        let mut locked_since: Option<Instant> = None;
        let code = loop {
            let now = Instant::now();
            if let Some(status) = child.0.try_wait().unwrap() {
                break status.code();
            }
            last_alive = now;
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.0.kill();
                let _ = child.0.wait();
                break None;
            }
            let deploying = live.deploy_seen.lock().unwrap().is_some();
            if deploying && live.hold.load(SeqCst) {
                match probe(&live.prod) {
                    // Held for a while: the swap, not a brief checkpoint
                    // before it. Transactions started now wait on it.
                    Probe::Locked => {
                        let since = *locked_since.get_or_insert(now);
                        if now - since >= LOCK_HELD {
                            waited_on_lock = true;
                            live.hold.store(false, SeqCst);
                        }
                    }
                    Probe::Swapped => live.hold.store(false, SeqCst),
                    Probe::Idle => locked_since = None,
                }
                std::thread::sleep(Duration::from_micros(100));
            } else {
                std::thread::sleep(Duration::from_micros(500));
            }
        };
        live.hold.store(false, SeqCst);
        Attempt {
            code,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            deploy_seen: *live.deploy_seen.lock().unwrap(),
            last_alive,
            waited_on_lock,
        }
    })
}

/// A query's first column as text, from a fresh connection; an error (a
/// corrupt file) as its message.
fn query(db: &Path, sql: &str) -> Result<Vec<String>, String> {
    let c = Connection::open(db).map_err(|e| e.to_string())?;
    let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
    let rows = st
        .query_map([], |r| {
            Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// Whether production has the new schema's table.
fn has_new_table(prod: &Path) -> Result<bool, String> {
    query(
        prod,
        &format!("SELECT name FROM sqlite_schema WHERE name = '{NEW_TABLE}'"),
    )
    .map(|v| !v.is_empty())
}

/// What one iteration found; `problems` empty means it passed.
struct Iteration {
    codes: Vec<Option<i32>>,
    acked: usize,
    during_deploy: usize,
    waited_on_lock: bool,
    problems: Vec<String>,
}

/// One production, two writers, up to four runs (until one deploys), then
/// every check.
fn live_iteration(mode: &str) -> Iteration {
    let (ws, prod) = setup(&live_production(mode), &live_source());
    // The run's `restart` is part of its deploy step: the writers keep
    // committing while it runs, after the swap.
    ws.file("sqlmorph.toml", "restart = \"sleep 0.2\"\n");
    let persistent = open_writer(&prod).expect("opening the persistent connection");
    let live = Live {
        prod: prod.clone(),
        hold: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        next_id: AtomicI64::new(1_000_000),
        deploy_seen: Mutex::new(None),
    };
    let mut problems = Vec::new();
    let mut attempts: Vec<Attempt> = Vec::new();
    let (persistent, writers) = std::thread::scope(|s| {
        let _stop = StopOnDrop(&live.stop);
        let p = s.spawn(|| write_until_stopped(&live, "persistent", Some(persistent)));
        let r = s.spawn(|| write_until_stopped(&live, "reconnecting", None));
        // Some transactions before the run starts.
        let t = Instant::now();
        while live.next_id.load(SeqCst) < 1_000_020 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..4 {
            let a = run_during_writes(&ws, &live);
            let code = a.code;
            match code {
                Some(0) => {}
                // Aborted (a write reached production after the snapshot):
                // production must not have changed schema.
                Some(3) => match has_new_table(&prod) {
                    Ok(false) => {}
                    Ok(true) => problems.push(format!(
                        "run exited 3 but production has the new schema\nstderr:\n{}",
                        a.stderr
                    )),
                    Err(e) => problems.push(format!("run exited 3, then production: {e}")),
                },
                _ => problems.push(format!(
                    "run exited {code:?} (expected 0, or 3 when a write raced the snapshot)\n\
                     stdout:\n{}\nstderr:\n{}",
                    a.stdout, a.stderr
                )),
            }
            attempts.push(a);
            if code != Some(3) {
                break;
            }
        }
        live.stop.store(true, SeqCst);
        let (conn, pw) = p.join().unwrap();
        let (_, rw) = r.join().unwrap();
        (conn.unwrap(), [pw, rw])
    });

    let deployed = attempts.last().is_some_and(|a| a.code == Some(0));
    let mut during_deploy = 0;
    let mut waited_on_lock = false;
    for a in attempts.iter().filter(|a| a.code == Some(0)) {
        waited_on_lock |= a.waited_on_lock;
        if let Some(start) = a.deploy_seen {
            during_deploy += writers
                .iter()
                .flat_map(|w| &w.acks)
                .filter(|k| k.at >= start && k.at <= a.last_alive)
                .count();
        }
    }
    let deploy_start = attempts.last().and_then(|a| a.deploy_seen);

    // Every acknowledged commit is in production, with its updates.
    let rows: Result<HashMap<i64, i64>, String> = query(&prod, "SELECT id || ' ' || n FROM events")
        .map(|v| {
            v.iter()
                .filter_map(|l| l.split_once(' '))
                .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
                .collect()
        });
    match &rows {
        Err(e) => problems.push(format!("reading the application's rows: {e}")),
        Ok(rows) => {
            for w in &writers {
                check_writer(w, rows, deploy_start, &mut problems);
            }
        }
    }
    for w in &writers {
        if !w.bad_failures.is_empty() {
            problems.push(format!(
                "{} writer saw errors that are not contention: {:?}",
                w.name, w.bad_failures
            ));
        }
        if !w.failures.is_empty() {
            eprintln!("  {} writer, failed transactions: {:?}", w.name, w.failures);
        }
    }

    match query(&prod, "PRAGMA integrity_check") {
        Ok(v) if v == ["ok"] => {}
        Ok(v) => problems.push(format!(
            "integrity_check: {}",
            v.join("; ").chars().take(600).collect::<String>()
        )),
        Err(e) => problems.push(format!("integrity_check: {e}")),
    }
    match query(&prod, "PRAGMA journal_mode") {
        Ok(v) if v == [mode] => {}
        other => problems.push(format!("journal mode: {other:?}, was {mode}")),
    }

    // The application's connection still works, and what it writes is in
    // production.
    let after = 9_999_999;
    match transaction(&persistent, "after", after, None) {
        Ok(()) => match query(&prod, &format!("SELECT id FROM events WHERE id = {after}")) {
            Ok(v) if v.len() == 1 => {}
            other => problems.push(format!(
                "the persistent connection committed row {after} after the run, \
                 but a fresh connection reads {other:?}"
            )),
        },
        Err(e) => problems.push(format!(
            "the persistent connection cannot write after the run: {e}"
        )),
    }
    drop(persistent);

    if deployed {
        let out = ws
            .cmd()
            .args(["diff", "prod.sqlite3", "schema.sql"])
            .output()
            .unwrap();
        if out.status.code() != Some(0) {
            problems.push(format!(
                "run exited 0 but production does not have the source schema:\n{}{}",
                stdout_of(&out),
                stderr_of(&out)
            ));
        }
        if during_deploy == 0 {
            problems.push("no commit was acknowledged during the deploy step".to_string());
        }
    } else if has_new_table(&prod) != Ok(false) {
        problems.push("no run deployed, yet production has the new schema".to_string());
    }
    Iteration {
        codes: attempts.iter().map(|a| a.code).collect(),
        acked: writers.iter().map(|w| w.acks.len()).sum(),
        during_deploy,
        waited_on_lock,
        problems,
    }
}

/// Every commit `w` acknowledged is in `rows` (id -> n), with every update
/// it acknowledged.
fn check_writer(
    w: &Writer,
    rows: &HashMap<i64, i64>,
    deploy_start: Option<Instant>,
    problems: &mut Vec<String>,
) {
    let mut expected: HashMap<i64, i64> = HashMap::new();
    for k in &w.acks {
        expected.insert(k.id, 1);
        if let Some(u) = k.updated {
            *expected.entry(u).or_insert(1) += 1;
        }
    }
    let missing: Vec<&Ack> = w
        .acks
        .iter()
        .filter(|k| !rows.contains_key(&k.id))
        .collect();
    if !missing.is_empty() {
        let examples: Vec<String> = missing
            .iter()
            .take(5)
            .map(|k| match deploy_start {
                Some(d) if k.at >= d => format!("{} (+{:?} into the deploy step)", k.id, k.at - d),
                _ => format!("{} (before the deploy step)", k.id),
            })
            .collect();
        problems.push(format!(
            "{} writer: {} of {} acknowledged commit(s) missing from production, e.g. {}",
            w.name,
            missing.len(),
            w.acks.len(),
            examples.join(", ")
        ));
    }
    let lost_updates = expected
        .iter()
        .filter(|(id, n)| rows.get(id).is_some_and(|have| have < n))
        .count();
    if lost_updates > 0 {
        problems.push(format!(
            "{} writer: {lost_updates} row(s) lost an acknowledged update",
            w.name
        ));
    }
}

/// Three iterations in one journal mode; at least one must deploy (the
/// writers stay away from the snapshot-to-swap window, so a run that
/// exits 3 is the rare exception).
fn live_application(mode: &str) {
    let start = Instant::now();
    let mut problems = Vec::new();
    let mut deployed = 0;
    let mut acked = 0;
    // scripts/faults runs more rounds.
    let rounds: usize = std::env::var("SQLMORPH_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for i in 1..=rounds {
        let it = live_iteration(mode);
        acked += it.acked;
        eprintln!(
            "{mode} iteration {i}: exit codes {:?}, {} commit(s) acknowledged, {} during the deploy step, \
             a writer waited on the swap's lock: {}",
            it.codes, it.acked, it.during_deploy, it.waited_on_lock
        );
        if it.codes.last() == Some(&Some(0)) {
            deployed += 1;
        }
        problems.extend(
            it.problems
                .into_iter()
                .map(|p| format!("{mode} iteration {i}: {p}")),
        );
    }
    if deployed == 0 {
        problems.push(format!("{mode}: no iteration deployed"));
    }
    eprintln!("{mode}: {:?}", start.elapsed());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Reached only when no commit was lost and no run ended corrupt.
    println!(
        "faults: live writers, {mode}: {rounds} runs ({deployed} deployed), \
         {acked} commits acknowledged, 0 lost, 0 corrupt"
    );
}

/// Set in the process that runs a live-application scenario.
const SCENARIO_ENV: &str = "SQLMORPH_TEST_LIVE_SCENARIO";

/// Runs `scenario` in a process of its own: this test binary, run again for
/// this one test. An application whose database is replaced under it can be
/// killed by SQLite itself (a `-shm` it has mapped truncated by another of
/// its connections: SIGBUS); that must fail this test, not end every other
/// test of the binary.
fn in_own_process(test: &str, scenario: fn()) {
    if std::env::var_os(SCENARIO_ENV).is_some() {
        scenario();
        return;
    }
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let name = format!("{module}::{test}");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(
        out.status.success() && text.contains("test result: ok. 1 passed"),
        "{name} failed in its own process ({}):\n{text}",
        match out.status.signal() {
            Some(7) => "killed by SIGBUS".to_string(),
            Some(n) => format!("killed by signal {n}"),
            None => out.status.to_string(),
        }
    );
    eprintln!("{text}");
}

#[test]
fn live_application_wal_keeps_every_acknowledged_commit() {
    in_own_process(
        "live_application_wal_keeps_every_acknowledged_commit",
        || live_application("wal"),
    );
}

#[test]
fn live_application_rollback_journal_keeps_every_acknowledged_commit() {
    in_own_process(
        "live_application_rollback_journal_keeps_every_acknowledged_commit",
        || live_application("delete"),
    );
}

// ---------------------------------------------------------------------------
// 3: WAL productions are read without being changed.
// ---------------------------------------------------------------------------

/// `sqlmorph plan --source schema.sql --production prod.sqlite3`.
fn plan(ws: &Workspace) -> Output {
    ws.cmd()
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
        .unwrap()
}

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A WAL production that no process has open: closed cleanly, so no `-wal`
/// or `-shm` beside it.
fn closed_wal_production(ws: &Workspace) -> PathBuf {
    let prod = ws.db(
        "prod.sqlite3",
        "PRAGMA journal_mode = WAL; CREATE TABLE t(a); INSERT INTO t VALUES (1), (2), (3);",
    );
    assert!(
        !beside(&prod, "-wal").exists() && !beside(&prod, "-shm").exists(),
        "precondition: closed cleanly"
    );
    assert_eq!(column(&prod, "PRAGMA journal_mode"), vec!["wal"]);
    // That read was the last connection again: nothing left beside it.
    assert!(!beside(&prod, "-wal").exists() && !beside(&prod, "-shm").exists());
    prod
}

#[test]
fn run_migrates_a_wal_production_that_no_process_has_open() {
    let ws = Workspace::new();
    let prod = closed_wal_production(&ws);
    ws.file("schema.sql", "CREATE TABLE t(a); CREATE TABLE u(b);");
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(
        column(&prod, "SELECT a FROM t ORDER BY a"),
        vec!["1", "2", "3"]
    );
    assert_eq!(column(&prod, "PRAGMA journal_mode"), vec!["wal"]);
    assert_sound(&ws);
}

#[test]
fn plan_on_a_closed_wal_production_leaves_no_wal_or_shm() {
    let ws = Workspace::new();
    closed_wal_production(&ws);
    ws.file("schema.sql", "CREATE TABLE t(a); CREATE TABLE u(b);");
    let before = ws.snapshot();
    let out = plan(&ws);
    assert_code(&out, 0);
    assert!(stdout_of(&out).contains("+ table u"), "{}", stdout_of(&out));
    assert_eq!(
        ws.snapshot(),
        before,
        "plan changed the files beside production"
    );
}

/// Production left by an application that stopped without checkpointing
/// (as after a crash): its table and rows live only in `prod.sqlite3-wal`.
fn crashed_wal_production(ws: &Workspace) -> PathBuf {
    let prod = ws.path("prod.sqlite3");
    let app = Connection::open(&prod).unwrap();
    app.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    app.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .unwrap();
    app.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'only'), (2, 'in the'), (3, 'wal');",
    )
    .unwrap();
    drop(app);
    assert!(beside(&prod, "-wal").metadata().unwrap().len() > 0);
    // The main file alone does not have them.
    let elsewhere = Workspace::new();
    let main_only = elsewhere.path("main-only.sqlite3");
    std::fs::copy(&prod, &main_only).unwrap();
    assert_eq!(
        column(&main_only, "SELECT count(*) FROM sqlite_schema"),
        vec!["0"],
        "precondition: the rows are in the -wal only"
    );
    prod
}

#[test]
fn plan_leaves_a_crashed_applications_wal_byte_identical() {
    let ws = Workspace::new();
    crashed_wal_production(&ws);
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w INT);",
    );
    // The -shm is SQLite's shared-memory index of the WAL, rebuilt by any
    // connection that finds it stale (the crashed application's is): its
    // bytes may change, the database and the -wal may not.
    let without_shm = |ws: &Workspace| {
        let mut files = ws.snapshot();
        let shm = files.remove(std::path::Path::new("prod.sqlite3-shm"));
        (files, shm.is_some())
    };
    let before = without_shm(&ws);
    let out = plan(&ws);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("3 row(s)"),
        "the plan reads the rows in the -wal: {}",
        stdout_of(&out)
    );
    assert_eq!(
        without_shm(&ws),
        before,
        "plan changed production's files (created, removed or checkpointed)"
    );
}

#[test]
fn run_migrates_the_rows_a_crashed_application_left_in_the_wal() {
    let ws = Workspace::new();
    let prod = crashed_wal_production(&ws);
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w INT);",
    );
    let out = run_migration(&ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || v || ':' || ifnull(w, 'NULL') FROM t ORDER BY id"
        ),
        vec!["1:only:NULL", "2:in the:NULL", "3:wal:NULL"]
    );
    assert_sound(&ws);
}

// ---------------------------------------------------------------------------
// 4: production keeps its identity: inode, owner, mode; a symlink stays one.
// ---------------------------------------------------------------------------

const USERS: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";

/// The users table with one more column (no data lost).
const USERS_V2: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');";

fn users(db: &Path) -> Vec<String> {
    column(
        db,
        "SELECT id || ':' || name || ':' || ifnull(age, 'NULL') FROM users ORDER BY id",
    )
}

/// (inode, uid, gid, permission bits)
fn identity(p: &Path) -> (u64, u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.ino(), m.uid(), m.gid(), m.mode() & 0o7777)
}

fn rollback(ws: &Workspace, production: &str, extra: &[&str]) -> Output {
    ws.cmd()
        .args(["rollback", "--production", production])
        .args(extra)
        .output()
        .unwrap()
}

/// `sqlmorph schema DB`: the normalized schema.
fn schema_text(ws: &Workspace, db: &str) -> String {
    let out = ws.cmd().args(["schema", db]).output().unwrap();
    assert_code(&out, 0);
    stdout_of(&out)
}

#[test]
fn run_and_rollback_keep_productions_inode_owner_and_mode() {
    let (ws, prod) = setup(USERS, USERS_V2);
    std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o664)).unwrap();
    let root = std::fs::metadata(ws.file("whoami", "")).unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&prod, Some(65534), Some(65534)).unwrap();
    } else {
        eprintln!("not root: production stays this user's, the chown to 65534:65534 is skipped");
    }
    let before = identity(&prod);
    assert_eq!(before.3, 0o664);
    let original = schema_text(&ws, "prod.sqlite3");

    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    assert_sound(&ws);
    assert_eq!(
        identity(&prod),
        before,
        "after run: production's (inode, uid, gid, mode)"
    );

    assert_code(&rollback(&ws, "prod.sqlite3", &["--yes"]), 0);
    assert_eq!(schema_text(&ws, "prod.sqlite3"), original);
    assert_eq!(
        identity(&prod),
        before,
        "after rollback: production's (inode, uid, gid, mode)"
    );
}

#[test]
fn a_symlinked_production_stays_a_symlink_through_run_and_rollback() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("data")).unwrap();
    let real = ws.db("data/real.db", USERS);
    std::os::unix::fs::symlink("data/real.db", ws.path("prod.db")).unwrap();
    ws.file("schema.sql", USERS_V2);
    let original = schema_text(&ws, "data/real.db");
    let rows = users(&real);
    let real_id = identity(&real);
    let still_linked = |when: &str| {
        let link = ws.path("prod.db");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{when}: prod.db is no longer a symlink"
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("data/real.db"),
            "{when}: the link's target"
        );
        assert_eq!(
            identity(&real),
            real_id,
            "{when}: the target file's identity"
        );
    };

    let out = ws
        .cmd()
        .args([
            "run",
            "--source",
            "schema.sql",
            "--production",
            "prod.db",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_code(&out, 0);
    still_linked("after run");
    assert_code(
        &ws.cmd()
            .args(["diff", "data/real.db", "schema.sql"])
            .output()
            .unwrap(),
        0,
    );
    assert_eq!(users(&real), rows);

    assert_code(&rollback(&ws, "prod.db", &["--yes"]), 0);
    still_linked("after rollback");
    assert_eq!(schema_text(&ws, "data/real.db"), original);
    assert_eq!(users(&real), rows);
}

// ---------------------------------------------------------------------------
// 5: rollback restores the backup taken before the deploy.
// ---------------------------------------------------------------------------

/// And one more.
const USERS_V3: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC', nick TEXT);";

#[test]
fn rollback_after_a_declined_run_restores_the_pre_deploy_backup() {
    let (ws, prod) = setup(USERS, USERS_V2);
    let original = schema_text(&ws, "prod.sqlite3");
    let rows = users(&prod);
    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    let deployed = schema_text(&ws, "prod.sqlite3");
    assert_ne!(deployed, original);

    // A second migration, declined: no terminal and no --yes.
    ws.file("schema.sql", USERS_V3);
    let out = run_migration(&ws, None, &[]);
    assert_code(&out, 3);
    assert_eq!(schema_text(&ws, "prod.sqlite3"), deployed, "declined");

    assert_code(&rollback(&ws, "prod.sqlite3", &["--yes"]), 0);
    assert_eq!(
        schema_text(&ws, "prod.sqlite3"),
        original,
        "rollback restored a backup other than the one taken before the deploy"
    );
    assert_eq!(users(&prod), rows);
}

#[test]
fn rollback_refuses_an_empty_backup_file() {
    let (ws, prod) = setup(USERS, USERS_V2);
    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    ws.file("empty.sqlite3", "");
    let before = sha256_file(&prod);
    let out = rollback(&ws, "prod.sqlite3", &["--backup", "empty.sqlite3", "--yes"]);
    assert!(
        matches!(out.status.code(), Some(2 | 3)),
        "restoring a 0-byte backup must be refused (exit 2 or 3), got {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout_of(&out),
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("empty.sqlite3"),
        "the refusal names the file: {}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&prod), before, "production unchanged");
}

#[test]
fn rollback_after_a_failed_rollback_still_restores_the_pre_deploy_backup() {
    let (ws, prod) = setup(USERS, USERS_V2);
    let original = schema_text(&ws, "prod.sqlite3");
    let rows = users(&prod);
    assert_code(&run_migration(&ws, None, &["--yes"]), 0);
    let deployed = schema_text(&ws, "prod.sqlite3");

    // A rollback whose health check fails: put back, exit 4.
    ws.file("sqlmorph.toml", "health_check = \"exit 1\"\n");
    assert_code(&rollback(&ws, "prod.sqlite3", &["--yes"]), 4);
    assert_eq!(
        schema_text(&ws, "prod.sqlite3"),
        deployed,
        "failed rollback put back"
    );
    std::fs::remove_file(ws.path("sqlmorph.toml")).unwrap();

    assert_code(&rollback(&ws, "prod.sqlite3", &["--yes"]), 0);
    assert_eq!(
        schema_text(&ws, "prod.sqlite3"),
        original,
        "the second rollback restored the failed rollback's backup of the deployed file"
    );
    assert_eq!(users(&prod), rows);
}

// ---------------------------------------------------------------------------
// Production locked by the application when the run opens it.
// ---------------------------------------------------------------------------

/// Holds an EXCLUSIVE lock on a rollback-journal production (as an
/// application in the middle of a write would) while `args` runs: the
/// command waits for the lock (10 s for a run or a plan, SQLite's 5 s for a
/// read), then stops with exit 3 (aborted), changing nothing.
fn aborts_while_locked(args: &[&str]) {
    let (ws, prod) = setup(
        "CREATE TABLE t(a); INSERT INTO t VALUES (1);",
        "CREATE TABLE t(a, b);",
    );
    let app = Connection::open(&prod).unwrap();
    app.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2);")
        .unwrap();
    let out = ws.cmd().args(args).output().unwrap();
    app.execute_batch("ROLLBACK").unwrap();
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(err.contains("stayed locked by another process"), "{err}");
    assert_eq!(column(&prod, "SELECT count(*) FROM t"), vec!["1"]);
}

/// `plan` opens production the same way (`LiveDb::open`); one run is
/// enough to pay the 10 s wait for.
#[test]
fn a_production_locked_at_open_aborts_the_run_with_exit_3() {
    aborts_while_locked(&[
        "run",
        "--yes",
        "--source",
        "schema.sql",
        "--production",
        "prod.sqlite3",
    ]);
}

/// `schema` and `diff` read files the same way (`db::open_readonly`).
#[test]
fn check_of_a_locked_database_exits_3_not_corrupt() {
    aborts_while_locked(&["check", "prod.sqlite3"]);
}
