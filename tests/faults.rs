//! The fault suite, bounded for CI (scripts/faults runs it at length with
//! `SQLMORPH_FAULT_ROUNDS`): a run killed with SIGKILL at every step and at
//! random moments, SIGINT and SIGTERM at a prompt, during the copy and
//! during a transform, and full disks. Each case checks the invariant —
//! production is exactly the old or exactly the migrated database, sound,
//! every backup holds the old content, the next run finishes the job and
//! cleans up — not merely that something happened. Each test prints a
//! `faults:` line with its figures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tty::Tty;
use crate::support::{Workspace, assert_code, column, content, stderr_of};

const SOURCE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT DEFAULT 'UTC');
CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), note TEXT, at INT);
CREATE INDEX events_user ON events(user_id, at);
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);";

/// Rounds of the random-moment cases (more in scripts/faults).
fn rounds() -> usize {
    std::env::var("SQLMORPH_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A production big enough that every step takes a moment (≈ 15 MB).
fn template() -> &'static Path {
    static T: std::sync::OnceLock<(Workspace, PathBuf)> = std::sync::OnceLock::new();
    let (_, p) = T.get_or_init(|| {
        let ws = Workspace::new();
        let p = ws.db(
            "template.sqlite3",
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
             CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), note TEXT, at INT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO users SELECT i, 'user ' || i, i % 90 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
             INSERT INTO events SELECT i, 1 + i % 2000, printf('event %d %s', i, hex(randomblob(20))), i * 7 FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        );
        (ws, p)
    });
    p
}

/// A workspace with a copy of the template as production and the source.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    std::fs::copy(template(), ws.path("prod.sqlite3")).unwrap();
    ws.file("schema.sql", SOURCE);
    ws
}

fn run_args(ws: &Workspace) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("sqlmorph"));
    cmd.current_dir(ws.dir.path()).env_remove("NO_COLOR").args([
        "run",
        "--source",
        "schema.sql",
        "--production",
        "prod.sqlite3",
        "--yes",
    ]);
    // A workspace holding a file `rebuild` migrates by rebuilding.
    if ws.path("rebuild").exists() {
        cmd.arg("--rebuild");
    }
    cmd
}

/// The old content and the migrated one (from a clean run on a copy).
fn outcomes() -> &'static (String, String) {
    static O: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    O.get_or_init(|| {
        let ws = workspace();
        let old = content(&ws.path("prod.sqlite3"));
        let out = run_args(&ws).output().unwrap();
        assert_code(&out, 0);
        (old, without_history(&content(&ws.path("prod.sqlite3"))))
    })
}

/// Content without `_sqlmorph_history` (its row holds the deploy's time).
fn without_history(text: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in text.lines() {
        let object = ["table ", "index ", "view ", "trigger "]
            .iter()
            .any(|k| line.starts_with(k));
        if object {
            skip = line.contains("_sqlmorph_history");
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The newest run directory's log, if any.
fn newest_log(ws: &Workspace) -> String {
    let runs = ws.path(".sqlmorph/runs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.last()
        .and_then(|d| std::fs::read_to_string(d.join("log.txt")).ok())
        .unwrap_or_default()
}

/// Waits until the run's log shows `marker` (or the run ends); true if seen.
fn wait_for_log(ws: &Workspace, child: &mut Child, marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if newest_log(ws).contains(marker) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the run never reached {marker:?}");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Which state production is in: "old" or "new"; anything else fails.
fn production_state(ws: &Workspace) -> &'static str {
    let prod = ws.path("prod.sqlite3");
    assert_eq!(column(&prod, "PRAGMA integrity_check"), ["ok"]);
    let now = content(&prod);
    let (old, new) = outcomes();
    if &now == old {
        "old"
    } else if &without_history(&now) == new {
        "new"
    } else {
        let first = |a: &str, b: &str| {
            a.lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("{x:.120} | {y:.120}"))
        };
        panic!(
            "production is neither the old nor the migrated database:\n vs old: {:?}\n vs new: {:?}",
            first(&now, old),
            first(&without_history(&now), new)
        );
    }
}

/// Every complete backup holds the old content (a partial one may be left
/// by the kill; the next run removes it).
fn backups_hold_the_old_content(ws: &Workspace) {
    for e in std::fs::read_dir(ws.path("backups")).into_iter().flatten() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sqlite3") {
            assert!(
                content(&p) == outcomes().0,
                "backup {name} is not the old content"
            );
        }
    }
}

/// After a fault: the next run migrates (or finds nothing to do) and leaves
/// no scratch file of the killed run.
fn rerun_finishes(ws: &Workspace) {
    let out = run_args(ws).output().unwrap();
    assert_code(&out, 0);
    assert_eq!(production_state(ws), "new");
    for e in std::fs::read_dir(ws.path(".sqlmorph/runs")).unwrap() {
        let d = e.unwrap().path();
        let left = scratch_in(&d);
        assert!(left.is_empty(), "{left:?} left in {}", d.display());
    }
    for e in std::fs::read_dir(ws.path("backups")).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".partial"), "left behind: {name}");
    }
    for e in std::fs::read_dir(ws.dir.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains("-journal"), "left beside production: {name}");
    }
}

/// Kills a run with SIGKILL once its log shows `marker` (after `delay`),
/// then checks every invariant. Returns production's state after the kill.
fn kill_at(marker: &str, delay: Duration) -> &'static str {
    kill_in(workspace(), marker, delay)
}

/// As [`kill_at`], in the workspace given.
fn kill_in(ws: Workspace, marker: &str, delay: Duration) -> &'static str {
    let mut child = run_args(&ws)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if wait_for_log(&ws, &mut child, marker) {
        std::thread::sleep(delay);
    }
    let _ = child.kill();
    child.wait().unwrap();
    let state = production_state(&ws);
    backups_hold_the_old_content(&ws);
    rerun_finishes(&ws);
    state
}

#[test]
fn sigkill_at_every_step_leaves_production_old_or_new_and_a_rerun_finishes() {
    let mut states = Vec::new();
    for step in 1..=10 {
        states.push(kill_at(&format!("] {step}/10"), Duration::ZERO));
    }
    let old = states.iter().filter(|s| **s == "old").count();
    println!(
        "faults: sigkill at steps 1-10: {} runs, production old {old}, new {}, corrupt 0",
        states.len(),
        states.len() - old
    );
    assert!(
        old >= 9,
        "a kill before the swap must leave the old database: {states:?}"
    );
}

#[test]
fn sigkill_at_random_moments_leaves_production_old_or_new() {
    let seed = std::env::var("SQLMORPH_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut x = seed | 1;
    let mut states = Vec::new();
    for _ in 0..rounds() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        states.push(kill_at("] 0/10", Duration::from_millis(x % 2500)));
    }
    println!(
        "faults: sigkill at random moments (seed {seed}): {} runs, old {}, new {}, corrupt 0",
        states.len(),
        states.iter().filter(|s| **s == "old").count(),
        states.iter().filter(|s| **s == "new").count()
    );
}

/// A rollback-journal production is swapped by writing SQLite's journal
/// (ahead, during validation) and then the pages (src/target/journal.rs):
/// killed at moments spread over validation and the swap, it is the old or
/// the new database, never a mix, and the rerun leaves nothing beside it.
#[test]
fn sigkill_during_a_rollback_journal_swap_leaves_production_old_or_new() {
    let mut states = Vec::new();
    for i in 0..rounds() * 4 {
        let ws = workspace();
        rusqlite::Connection::open(ws.path("prod.sqlite3"))
            .unwrap()
            .execute_batch("PRAGMA journal_mode = DELETE")
            .unwrap();
        ws.file("rebuild", "");
        // From the index build on, through validation, the swap's journal
        // is being written ahead.
        let (marker, delay) = match i % 4 {
            0 => ("] 7/10", Duration::from_millis(i as u64 * 7 % 100)),
            1 => ("] 8/10", Duration::from_millis(i as u64 * 7 % 100)),
            _ => ("] 10/10", Duration::from_millis(i as u64 * 5 % 60)),
        };
        states.push(kill_in(ws, marker, delay));
    }
    println!(
        "faults: sigkill during a rollback-journal swap: {} runs, old {}, new {}, corrupt 0",
        states.len(),
        states.iter().filter(|s| **s == "old").count(),
        states.iter().filter(|s| **s == "new").count()
    );
}

/// Sends `sig` once the log shows `marker`; checks exit `code`, the log's
/// last line, no scratch file left, production byte-identical.
fn interrupt_at(recipe: Option<&str>, marker: &str, sig: &str, code: i32) {
    let ws = workspace();
    let before = crate::support::sha256_file(&ws.path("prod.sqlite3"));
    let mut cmd = run_args(&ws);
    if let Some(text) = recipe {
        ws.file("slow.rhai", text);
        cmd.arg("slow.rhai");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for_log(&ws, &mut child, marker),
        "ended before {marker}"
    );
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    assert_code(&out, code);
    assert!(
        stderr_of(&out).contains("interrupted"),
        "{}",
        stderr_of(&out)
    );
    let log = newest_log(&ws);
    assert!(
        log.lines().last().unwrap_or("").contains("interrupted"),
        "the log must end with the interruption:\n{log}"
    );
    assert!(!log.contains("deployed"), "{log}");
    assert_eq!(
        scratch_in(&newest_dir(&ws)),
        Vec::<String>::new(),
        "left behind"
    );
    assert_eq!(
        crate::support::sha256_file(&ws.path("prod.sqlite3")),
        before
    );
    assert!(!ws.path("prod.sqlite3-wal").exists() && !ws.path("prod.sqlite3-shm").exists());
    println!("faults: {sig} at {marker:?}: exit {code}, production untouched");
}

/// The scratch files in a run directory (the migrated file, a probe).
fn scratch_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("migrated.") || n.starts_with("probe"))
        .collect()
}

fn newest_dir(ws: &Workspace) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.pop().unwrap()
}

#[test]
fn sigint_and_sigterm_during_the_copy_stop_cleanly() {
    interrupt_at(None, "] 7/10", "-INT", 130);
    interrupt_at(None, "] 7/10", "-TERM", 143);
}

#[test]
fn sigterm_during_a_transform_stops_cleanly() {
    let recipe = r#"import "std/steps" as steps;
let p = steps::prepare();
let db = copy(p);
step("transforming");
transform("events", |row| { let s = 0; for i in 0..200 { s += i; } row.note = `${row.note}.`; row });
steps::finish(p, db);
"#;
    interrupt_at(Some(recipe), "transforming", "-TERM", 143);
}

#[test]
fn ctrl_c_at_the_prompt_stops_cleanly() {
    let ws = workspace();
    let before = crate::support::sha256_file(&ws.path("prod.sqlite3"));
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "{} run --source schema.sql --production prod.sqlite3",
            bin.display()
        ),
    );
    tty.wait_for("Build, validate and deploy the migrated database to prod.sqlite3? [y/N]");
    tty.keys(&["C-c"]);
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(screen.contains("interrupted (SIGINT)"), "{screen}");
    assert!(
        newest_log(&ws)
            .lines()
            .last()
            .unwrap()
            .contains("interrupted")
    );
    assert_eq!(
        crate::support::sha256_file(&ws.path("prod.sqlite3")),
        before
    );
    println!("faults: Ctrl-C at the prompt: exit 130, production untouched");
}

/// A tmpfs of `kib` KiB at `dir` (root only); None with the reason otherwise.
fn small_disk(dir: &Path, kib: u64) -> Option<Mount> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("faults: disk-full case skipped: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(Mount(dir.to_path_buf()))
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn used(dir: &Path) -> u64 {
    let out = Command::new("du").args(["-sk"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_disk_stops_the_run_with_no_space_and_leaves_nothing() {
    for (what, flag) in [
        ("backup directory", "--backup-dir"),
        ("work directory", "--work-dir"),
    ] {
        let ws = workspace();
        let before = crate::support::sha256_file(&ws.path("prod.sqlite3"));
        let small = ws.path("small");
        let Some(_mount) = small_disk(&small, 2048) else {
            return;
        };
        let out = run_args(&ws).arg(flag).arg(&small).output().unwrap();
        assert_code(&out, 2);
        let err = stderr_of(&out);
        assert!(
            err.contains("no space left on the device of"),
            "{what}: {err}"
        );
        assert!(!err.contains("rejected rows"), "{what}: {err}");
        assert_eq!(
            crate::support::sha256_file(&ws.path("prod.sqlite3")),
            before,
            "{what}"
        );
        let left: Vec<String> = walk(&small)
            .into_iter()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.ends_with(".partial") || n.starts_with("migrated") || n.starts_with("probe")
            })
            .map(|p| p.display().to_string())
            .collect();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
        assert!(used(&small) < 1024, "{what}: the space was not given back");
        println!("faults: full {what}: exit 2, no space named, production untouched");
    }
}

#[test]
fn a_full_disk_under_production_or_tmpdir_stops_with_no_space() {
    // Production on a filesystem with room for the file but not for the
    // swap's journal (the WAL, or the rollback journal, written ahead or
    // under the lock): the swap's transaction rolls back.
    for mode in ["wal", "delete"] {
        if !full_production_filesystem(mode) {
            return;
        }
    }

    // `plan` copies production into $TMPDIR.
    let ws = workspace();
    let tmp = ws.path("tmp");
    let Some(_tmp_mount) = small_disk(&tmp, 512) else {
        return;
    };
    let out = ws
        .cmd()
        .env("TMPDIR", &tmp)
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
        stderr_of(&out).contains("no space left on the device of"),
        "{}",
        stderr_of(&out)
    );
    assert!(walk(&tmp).is_empty(), "left in $TMPDIR: {:?}", walk(&tmp));
    println!("faults: full $TMPDIR: exit 2, no space named, nothing left");
}

/// The first case of the test above, for a production in `mode`; false
/// when no small filesystem can be mounted here.
fn full_production_filesystem(mode: &str) -> bool {
    let ws = workspace();
    let small = ws.path("small");
    let size = std::fs::metadata(ws.path("prod.sqlite3")).unwrap().len() / 1024;
    let Some(_mount) = small_disk(&small, size + size / 4) else {
        return false;
    };
    std::fs::copy(ws.path("prod.sqlite3"), small.join("prod.sqlite3")).unwrap();
    rusqlite::Connection::open(small.join("prod.sqlite3"))
        .unwrap()
        .execute_batch(&format!("PRAGMA journal_mode = {mode}"))
        .unwrap();
    let before = content(&small.join("prod.sqlite3"));
    let out = Command::new(assert_cmd::cargo::cargo_bin("sqlmorph"))
        .current_dir(ws.dir.path())
        .args([
            "run",
            "--source",
            "schema.sql",
            "--production",
            "small/prod.sqlite3",
            "--yes",
            // The whole-file swap's journal is what does not fit.
            "--rebuild",
        ])
        .output()
        .unwrap();
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("no space left on the device of"),
        "{mode}: {err}"
    );
    assert_eq!(
        content(&small.join("prod.sqlite3")),
        before,
        "{mode}: production changed"
    );
    assert_eq!(
        column(&small.join("prod.sqlite3"), "PRAGMA integrity_check"),
        ["ok"]
    );
    let left: Vec<_> = walk(&small)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-journal"))
        .collect();
    assert!(left.is_empty(), "{mode}: left {left:?}");
    println!(
        "faults: full production filesystem ({mode}): exit 2, no space named, production untouched"
    );
    true
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// SIGKILL of a run whose production is on an SSH host, while its log
/// shows `marker`: the agent on the host sees its input end, finishes or
/// abandons its SQLite transaction and removes its private directory.
fn ssh_kill_at(marker: &str) -> &'static str {
    let sshd = crate::support::sshd::Sshd::start();
    let ws = workspace();
    std::fs::create_dir(ws.path("remote")).unwrap();
    std::fs::rename(ws.path("prod.sqlite3"), ws.path("remote/prod.sqlite3")).unwrap();
    let remote = ws.path("remote/prod.sqlite3");
    ws.file(
        "sqlmorph.toml",
        &format!(
            "source = \"schema.sql\"\nproduction = {:?}\n[ssh]\nidentity = {:?}\nknown_hosts = {:?}\n",
            sshd.url(&remote),
            sshd.client_key.display().to_string(),
            sshd.known_hosts.display().to_string()
        ),
    );
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sqlmorph"))
        .current_dir(ws.dir.path())
        .args(["run", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_log(&ws, &mut child, marker);
    let _ = child.kill();
    child.wait().unwrap();
    // The agent notices the dropped connection and cleans up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(ws.path("remote"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".sqlmorph-"))
            .collect()
    };
    while !leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "the agent left its directory"
    );
    assert_eq!(column(&remote, "PRAGMA integrity_check"), ["ok"]);
    let now = content(&remote);
    let state = if now == outcomes().0 {
        "old"
    } else if without_history(&now) == outcomes().1 {
        "new"
    } else {
        panic!("remote production is neither the old nor the migrated database");
    };
    let out = Command::new(assert_cmd::cargo::cargo_bin("sqlmorph"))
        .current_dir(ws.dir.path())
        .args(["run", "--yes"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(
        without_history(&content(&remote)) == outcomes().1,
        "the rerun migrated"
    );
    state
}

#[test]
fn sigkill_over_ssh_during_the_upload_and_the_swap_leaves_production_old_or_new() {
    let states = [ssh_kill_at("] 10/10"), ssh_kill_at("] 8/10")];
    println!(
        "faults: sigkill over ssh at steps 8 and 10: {} runs, old {}, new {}, corrupt 0",
        states.len(),
        states.iter().filter(|s| **s == "old").count(),
        states.iter().filter(|s| **s == "new").count()
    );
}

#[test]
fn a_writer_holding_its_transaction_across_the_swap_gets_a_bounded_wait_and_exit_3() {
    for mode in ["wal", "delete"] {
        let ws = Workspace::new();
        let prod = ws.db(
            "prod.sqlite3",
            &format!(
                "PRAGMA journal_mode = {mode}; CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
                 INSERT INTO users VALUES (1, 'ann', 3);"
            ),
        );
        ws.file("schema.sql", SOURCE);
        let before = content(&prod);
        let app = rusqlite::Connection::open(&prod).unwrap();
        app.execute_batch("BEGIN IMMEDIATE; INSERT INTO users VALUES (2, 'held', 4);")
            .unwrap();
        let started = Instant::now();
        let out = run_args(&ws).output().unwrap();
        let took = started.elapsed();
        assert_code(&out, 3);
        let err = stderr_of(&out);
        assert!(
            err.contains("locked") && err.contains("`stop`"),
            "{mode}: {err}"
        );
        assert!(took < Duration::from_secs(40), "{mode}: waited {took:?}");
        app.execute_batch("COMMIT").unwrap();
        let after = content(&prod);
        assert_ne!(after, before, "{mode}: the held transaction committed");
        assert!(after.contains("held"), "{mode}");
        println!(
            "faults: a writer holding BEGIN IMMEDIATE ({mode}): exit 3 after {took:.1?}, its commit kept"
        );
    }
}

#[test]
fn files_an_older_version_left_beside_production_are_removed_with_a_log_line() {
    let ws = workspace();
    std::fs::write(ws.path("prod.sqlite3.sqlmorph-prev"), b"old copy").unwrap();
    std::fs::write(ws.path(".prod.sqlite3.sqlmorph-new"), b"half a file").unwrap();
    let out = run_args(&ws).output().unwrap();
    assert_code(&out, 0);
    assert!(!ws.path("prod.sqlite3.sqlmorph-prev").exists());
    assert!(!ws.path(".prod.sqlite3.sqlmorph-new").exists());
    let log = newest_log(&ws);
    assert!(
        log.contains("left by an older sqlmorph's interrupted swap"),
        "{log}"
    );
}
