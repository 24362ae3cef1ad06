//! Progress bars at a real terminal (tmux) on the long steps of a run: the
//! backup of a WAL-mode production, each index build and the validation's
//! checksums, each with its rate and time left, cleared when done; and none
//! of it when standard error is not a terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::tty::Tty;
use crate::support::{Workspace, assert_code, column, run_migration};

/// Enough rows that every step with a bar lasts long enough to be seen
/// (tenths of a second at least) by a poll every 20 ms.
const ROWS: i64 = 300_000;

/// A WAL-mode production of `ROWS` rows and 64 MB of free pages (which
/// the backup copies and nothing else reads: its bar lasts), and a source
/// that adds a column and two indexes (`--rebuild`: the copy, index builds
/// and checksums run).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.db(
        "prod.sqlite3",
        &format!(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO t SELECT i, printf('%07d', (i * 7919) % 1000003) || hex(randomblob(30)),
             i % 1000 FROM n;
             CREATE TABLE junk(b);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16000)
             INSERT INTO junk SELECT zeroblob(4000) FROM n;
             DROP TABLE junk;"
        ),
    );
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT);
         CREATE INDEX t_a ON t(a);
         CREATE INDEX t_b ON t(b, a);",
    );
    ws
}

/// The labels of the bars the run shows.
const LABELS: [&str; 4] = [
    "prod_backup_",
    "index t_a",
    "index t_b",
    "checksums (both sides)",
];

/// Counts the bars on the screen (lines with a `[…]`, a rate and `eta`) by
/// label.
fn bars(screen: &str, seen: &mut BTreeMap<String, usize>) {
    for line in screen
        .lines()
        .filter(|l| l.contains("/s ") && l.contains(" eta "))
    {
        for label in LABELS {
            if line.contains(label) && line.contains('[') && line.contains(']') {
                *seen.entry(label.to_string()).or_default() += 1;
            }
        }
    }
}

#[test]
fn a_run_at_a_terminal_shows_bars_for_the_backup_index_builds_and_checksums_then_clears_them() {
    let ws = workspace();
    assert_eq!(
        column(&ws.path("prod.sqlite3"), "PRAGMA journal_mode"),
        vec!["wal"],
        "the backup goes through SQLite's backup API"
    );
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3 --yes --rebuild",
            bin.display()
        ),
    );
    let (start, mut seen) = (Instant::now(), BTreeMap::new());
    let screen = loop {
        let screen = tty.screen();
        bars(&screen, &mut seen);
        if screen.contains("EXIT=") {
            break screen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no end; the screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_eq!(
        seen.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(LABELS),
        "the bars seen ({seen:?}); the last screen:\n{screen}"
    );
    assert!(
        !screen.lines().any(|l| l.contains(" eta ")),
        "every bar was cleared:\n{screen}"
    );
}

#[test]
fn a_run_without_a_terminal_writes_no_bar() {
    let ws = workspace();
    let out = run_migration(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 0);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    for mark in ["\u{1b}", "\r", " eta ", "[==", "rows/s", "MiB"] {
        assert!(!stderr.contains(mark), "{mark:?} in stderr:\n{stderr}");
        assert!(!stdout.contains(mark), "{mark:?} in stdout:\n{stdout}");
    }
    assert!(
        stdout.contains("8/10 validate"),
        "the log is there:\n{stdout}"
    );
}
