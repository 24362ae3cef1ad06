//! Production over SSH with the application running on the host: the swap is
//! made on the host by sqlmorph's agent, through SQLite, so the
//! application's open connection sees the new schema and keeps writing,
//! production keeps its inode, owner, mode and symlink, a write that lands
//! after the snapshot stops the deploy (exit 3) and is kept, and nothing but
//! the cached agent binary is left on the host.
//!
//! The "host" is a test sshd on 127.0.0.1, so the remote production is a
//! file of the test's workspace and the application is a rusqlite
//! connection of this test process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use rusqlite::Connection;

use crate::support::sshd::{Sshd, cached_agent};
use crate::support::{Workspace, assert_code, column, content, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";
const SOURCE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT NOT NULL DEFAULT 'UTC');";

/// Writes sqlmorph.toml for production at `target` on `sshd`.
fn config(ws: &Workspace, sshd: &Sshd, target: &Path, extra: &str) {
    ws.file(
        "sqlmorph.toml",
        &format!(
            "source = \"schema.sql\"\nproduction = {:?}\n{extra}\n[ssh]\nidentity = {:?}\nknown_hosts = {:?}\n",
            sshd.url(target),
            sshd.client_key.display().to_string(),
            sshd.known_hosts.display().to_string()
        ),
    );
}

/// A workspace whose "host" directory `remote/` holds production, made
/// with `sql`, and `schema.sql`.
fn workspace(sql: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let prod = ws.db("remote/prod.sqlite3", sql);
    ws.file("schema.sql", SOURCE);
    (ws, prod)
}

fn sqlmorph(ws: &Workspace, args: &[&str]) -> Output {
    ws.cmd().args(args).output().unwrap()
}

/// The application: one connection kept open for the whole test.
fn application(prod: &Path) -> Connection {
    let app = Connection::open(prod).unwrap();
    app.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    app
}

/// (inode, uid, gid, permission bits)
fn identity(p: &Path) -> (u64, u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.ino(), m.uid(), m.gid(), m.mode() & 0o7777)
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The application keeps its connection (idle during the run) and writes
/// before and after: the same connection sees the new schema and writes
/// into it, and SQLite finds nothing wrong.
fn live_application_over_ssh(journal_mode: &str) {
    let sshd = Sshd::start();
    let (ws, prod) = workspace(&format!("PRAGMA journal_mode = {journal_mode}; {PROD}"));
    config(&ws, &sshd, &prod, "");
    let app = application(&prod);
    app.execute("INSERT INTO users VALUES (4, 'before', 40)", [])
        .unwrap();
    let inode = identity(&prod).0;

    let out = sqlmorph(&ws, &["run", "--yes"]);
    assert_code(&out, 0);

    let tz: String = app
        .query_row("SELECT tz FROM users WHERE id = 4", [], |r| r.get(0))
        .expect("the application's connection sees the new schema");
    assert_eq!(tz, "UTC");
    app.execute("INSERT INTO users VALUES (5, 'after', 50, 'CET')", [])
        .expect("the application's connection writes into the new schema");
    let check: String = app
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(
        column(&prod, "SELECT id || name || tz FROM users ORDER BY id"),
        vec!["1annUTC", "2bobUTC", "3cyUTC", "4beforeUTC", "5afterCET"]
    );
    let mode: String = app
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, journal_mode.to_ascii_lowercase());
    assert_eq!(identity(&prod).0, inode, "production's inode");
}

#[test]
fn a_live_wal_application_on_the_host_keeps_its_connection_through_run() {
    live_application_over_ssh("WAL");
}

#[test]
fn a_live_rollback_journal_application_on_the_host_keeps_its_connection_through_run() {
    live_application_over_ssh("DELETE");
}

#[test]
fn run_and_rollback_over_ssh_keep_productions_inode_owner_and_mode() {
    let sshd = Sshd::start();
    let (ws, prod) = workspace(PROD);
    config(&ws, &sshd, &prod, "");
    std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o664)).unwrap();
    let root = std::fs::metadata(ws.file("whoami", "")).unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&prod, Some(65534), Some(65534)).unwrap();
    } else {
        eprintln!("not root: production stays this user's, the chown to 65534:65534 is skipped");
    }
    let before = identity(&prod);
    assert_eq!(before.3, 0o664);
    let original = content(&prod);

    assert_code(&sqlmorph(&ws, &["run", "--yes"]), 0);
    assert_eq!(column(&prod, "SELECT tz FROM users WHERE id = 1"), ["UTC"]);
    assert_eq!(
        identity(&prod),
        before,
        "after run: (inode, uid, gid, mode)"
    );

    assert_code(&sqlmorph(&ws, &["rollback", "--yes"]), 0);
    assert_eq!(
        content(&prod),
        original,
        "rollback restored the old database"
    );
    assert_eq!(
        identity(&prod),
        before,
        "after rollback: (inode, uid, gid, mode)"
    );
}

#[test]
fn a_symlinked_remote_production_stays_a_symlink() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("remote/data")).unwrap();
    let real = ws.db("remote/data/real.db", PROD);
    let link = ws.path("remote/prod.db");
    std::os::unix::fs::symlink("data/real.db", &link).unwrap();
    ws.file("schema.sql", SOURCE);
    config(&ws, &sshd, &link, "");
    let original = content(&real);
    let real_id = identity(&real);
    let still_linked = |when: &str| {
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{when}: no longer a symlink");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("data/real.db"),
            "{when}: the link's target"
        );
        assert_eq!(identity(&real), real_id, "{when}: the target's identity");
    };

    assert_code(&sqlmorph(&ws, &["run", "--yes"]), 0);
    still_linked("after run");
    assert_eq!(column(&real, "SELECT tz FROM users WHERE id = 2"), ["UTC"]);
    assert_code(&sqlmorph(&ws, &["rollback", "--yes"]), 0);
    still_linked("after rollback");
    assert_eq!(content(&real), original);
}

#[test]
fn a_write_after_the_snapshot_exits_3_keeps_the_write_and_restarts() {
    let sshd = Sshd::start();
    let (ws, prod) = workspace(&format!("PRAGMA journal_mode = WAL; {PROD}"));
    // The application holds the database open, as a running one does.
    let app = application(&prod);
    let _: i64 = app
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    // `stop`, run on the host, lets one last write reach production.
    let late = ws.file(
        "late.py",
        "import os, sqlite3\nc = sqlite3.connect(os.environ['SQLMORPH_DB'])\n\
         c.execute(\"INSERT INTO users VALUES (9, 'late', 1)\")\nc.commit()\n",
    );
    let service = ws.path("service.log");
    let stop = format!(
        "python3 {:?} && echo stopped >> {:?}",
        late.display().to_string(),
        service.display().to_string()
    );
    let restart = format!("echo restarted >> {:?}", service.display().to_string());
    config(
        &ws,
        &sshd,
        &prod,
        &format!("stop = {stop:?}\nrestart = {restart:?}"),
    );
    let before = listing(&ws.path("remote"));

    let out = sqlmorph(&ws, &["run", "--yes"]);
    assert_code(&out, 3);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        "stopped\nrestarted\n",
        "the service was restarted after the refused swap"
    );
    let late_row: String = app
        .query_row("SELECT name FROM users WHERE id = 9", [], |r| r.get(0))
        .expect("the late write is kept");
    assert_eq!(late_row, "late");
    assert_eq!(
        column(&prod, "PRAGMA table_info(users)").len(),
        3,
        "old schema"
    );
    assert_eq!(
        listing(&ws.path("remote")),
        before,
        "nothing left on the host"
    );
}

#[test]
fn a_restore_after_the_application_wrote_is_refused_and_keeps_its_write() {
    let sshd = Sshd::start();
    let (ws, prod) = workspace(PROD);
    // The restarted application writes into the new database, then the
    // health check fails: putting the old database back would lose that
    // write, so it is refused.
    let write = ws.file(
        "write.py",
        "import os, sqlite3\nc = sqlite3.connect(os.environ['SQLMORPH_DB'])\n\
         c.execute(\"INSERT INTO users VALUES (9, 'new', 1, 'CET')\")\nc.commit()\n",
    );
    let service = ws.path("service.log");
    let restart = format!("echo restarted >> {:?}", service.display().to_string());
    let health = format!("python3 {:?} && exit 1", write.display().to_string());
    config(
        &ws,
        &sshd,
        &prod,
        &format!("restart = {restart:?}\nhealth_check = {health:?}"),
    );
    let inode = identity(&prod).0;

    let out = sqlmorph(&ws, &["run", "--yes"]);
    assert_code(&out, 4);
    let err = stderr_of(&out);
    assert!(
        err.contains("KEEPS THE NEW DATABASE") && err.contains("sqlmorph rollback"),
        "{err}"
    );
    assert_eq!(
        column(&prod, "SELECT name || tz FROM users WHERE id = 9"),
        ["newCET"],
        "the application's write is kept"
    );
    assert_eq!(
        std::fs::read_to_string(&service).unwrap(),
        "restarted\nrestarted\n",
        "restarted after the swap and again after the refused restore"
    );
    assert_eq!(identity(&prod).0, inode);
    assert_eq!(column(&prod, "PRAGMA integrity_check"), ["ok"]);
}

/// The agent cache of `sshd` (its sessions' `$XDG_CACHE_HOME/sqlmorph`).
fn agent_cache(sshd: &Sshd) -> PathBuf {
    sshd.cache.join("sqlmorph")
}

/// The one cached agent: its name, inode and mode.
fn one_cached_agent(sshd: &Sshd) -> (String, u64, u32) {
    let names = listing(&agent_cache(sshd));
    assert_eq!(names.len(), 1, "one cached agent: {names:?}");
    let name = names[0].clone();
    let hex = name.strip_prefix("sqlmorph-").unwrap_or_default();
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "named by the binary's SHA-256: {name}"
    );
    let meta = std::fs::metadata(agent_cache(sshd).join(&name)).unwrap();
    (name, meta.ino(), meta.mode() & 0o777)
}

#[test]
fn nothing_is_left_on_the_host_but_the_cached_agent() {
    let ws = Workspace::new();
    let sshd = Sshd::start_with_cache(&ws.path("cache"), &[]);
    std::fs::create_dir(ws.path("remote")).unwrap();
    let prod = ws.db("remote/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    let remote = ws.path("remote");
    let before = listing(&remote);

    config(&ws, &sshd, &prod, "");
    let out = sqlmorph(&ws, &["plan", "--yes"]);
    assert_code(&out, 0);
    assert!(stdout_of(&out).contains("+ tz"), "{}", stdout_of(&out));
    assert_eq!(listing(&remote), before, "after plan");
    let agent = one_cached_agent(&sshd);
    assert_eq!(agent.2, 0o700, "the cached agent's mode");

    // A failed run: the health check fails, production is put back (exit 4).
    config(&ws, &sshd, &prod, "health_check = \"exit 7\"");
    let original = content(&prod);
    assert_code(&sqlmorph(&ws, &["run", "--yes"]), 4);
    assert_eq!(content(&prod), original, "put back");
    assert_eq!(listing(&remote), before, "after a failed run");

    config(&ws, &sshd, &prod, "");
    assert_code(&sqlmorph(&ws, &["run", "--yes"]), 0);
    assert_eq!(column(&prod, "SELECT tz FROM users WHERE id = 3"), ["UTC"]);
    assert_eq!(listing(&remote), before, "after run");
    assert_eq!(
        one_cached_agent(&sshd),
        agent,
        "the agent was uploaded once"
    );
}

#[test]
fn a_host_that_cannot_run_the_agent_is_named_with_what_to_do() {
    let ws = Workspace::new();
    let sshd = Sshd::start_with_cache(&ws.path("cache"), &[]);
    std::fs::create_dir(ws.path("remote")).unwrap();
    let prod = ws.db("remote/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    config(&ws, &sshd, &prod, "");
    // What a binary of another architecture does on the host, in the
    // cache under this binary's name.
    let fake = cached_agent(&sshd.cache);
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"$0: cannot execute binary file: Exec format error\" >&2\nexit 126\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = listing(&ws.path("remote"));
    let original = content(&prod);

    for args in [&["plan"][..], &["run", "--yes"]] {
        let out = sqlmorph(&ws, args);
        assert_code(&out, 2);
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("127.0.0.1:{}", sshd.port))
                && err.contains("Exec format error")
                && err.contains("same OS and architecture"),
            "{args:?}: {err}"
        );
        assert_eq!(listing(&ws.path("remote")), before, "{args:?}");
        assert_eq!(content(&prod), original, "{args:?}");
    }
}
