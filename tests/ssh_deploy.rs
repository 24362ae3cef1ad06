//! Production over SSH against a real OpenSSH server on 127.0.0.1: the stock
//! migration, host keys, authentication, the compare-and-swap, a dropped
//! connection, a failing health check, a fleet, and rollback.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::sshd::{Sshd, cached_agent};
use crate::support::{Workspace, column, content, sha256_file, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT);
INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', NULL), (3, 'cy', 7);";
const SOURCE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, tz TEXT NOT NULL DEFAULT 'UTC');";

fn url(sshd: &Sshd, path: &Path) -> String {
    format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        path.display()
    )
}

/// Writes sqlmorph.toml for one or more hosts (all served by sshds on
/// loopback; the "remote" files live in the workspace).
fn config(ws: &Workspace, targets: &[String], key: &Path, known_hosts: &Path, extra: &str) {
    let production = if targets.len() == 1 {
        format!("{:?}", targets[0])
    } else {
        format!(
            "[{}]",
            targets
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    ws.file(
        "sqlmorph.toml",
        &format!(
            "source = \"schema.sql\"\nproduction = {production}\n{extra}\n[ssh]\nidentity = {:?}\nknown_hosts = {:?}\n",
            key.display().to_string(),
            known_hosts.display().to_string()
        ),
    );
}

/// A workspace with a remote production database at `remote/prod.sqlite3`.
fn setup(sshd: &Sshd, extra: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    config(
        &ws,
        &[url(sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        extra,
    );
    (ws, remote)
}

fn run(ws: &Workspace, extra: &[&str]) -> Output {
    ws.cmd()
        .args(["run", "--yes"])
        .args(extra)
        .output()
        .unwrap()
}

/// Production holds `original` again (the same schema and rows), in the
/// same file (`inode`), and SQLite finds nothing wrong with it.
fn assert_put_back(db: &Path, original: &str, inode: u64) {
    assert_eq!(content(db), original, "{}: the old database", db.display());
    assert_eq!(
        std::fs::metadata(db).unwrap().ino(),
        inode,
        "{}",
        db.display()
    );
    assert_eq!(column(db, "PRAGMA integrity_check"), vec!["ok"]);
}

fn code(out: &Output, expected: i32) {
    assert_eq!(
        out.status.code(),
        Some(expected),
        "stdout:\n{}\nstderr:\n{}",
        stdout_of(out),
        stderr_of(out)
    );
}

#[test]
fn stock_migration_to_an_ssh_target_restarts_remotely() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(
        &sshd,
        "restart = \"echo \\\"$SSH_CONNECTION $SQLMORPH_DB\\\" >> restarts.txt\"",
    );
    let inode = std::fs::metadata(&remote).unwrap().ino();
    let out = run(&ws, &[]);
    code(&out, 0);
    assert_eq!(
        column(&remote, "SELECT id || name || tz FROM users ORDER BY id"),
        vec!["1annUTC", "2bobUTC", "3cyUTC"]
    );
    let out = ws
        .cmd()
        .args(["diff", remote.to_str().unwrap(), "schema.sql"])
        .output()
        .unwrap();
    code(&out, 0);
    // The restart ran through sshd (SSH_CONNECTION is set) and was told the path.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let restarts =
        std::fs::read_to_string(Path::new(&home).join("restarts.txt")).unwrap_or_default();
    let _ = std::fs::remove_file(Path::new(&home).join("restarts.txt"));
    assert!(
        restarts.contains("127.0.0.1") && restarts.contains(remote.to_str().unwrap()),
        "{restarts:?}"
    );
    // The new content was written into production's file, and nothing is
    // kept beside it: the backup is local.
    assert_eq!(std::fs::metadata(&remote).unwrap().ino(), inode);
    assert_eq!(listing(&ws.path("remote")), ["prod.sqlite3"]);
    let backups: Vec<_> = std::fs::read_dir(ws.path("backups")).unwrap().collect();
    assert_eq!(backups.len(), 1);
}

#[test]
fn an_unknown_host_key_is_refused_and_accepted_only_with_the_flag() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    let kh = ws.path("known_hosts");
    config(&ws, &[url(&sshd, &remote)], &sshd.client_key, &kh, "");
    let before = sha256_file(&remote);
    let out = run(&ws, &[]);
    code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("SHA256:") && err.contains("--accept-new-host-key"),
        "{err}"
    );
    assert_eq!(sha256_file(&remote), before);

    let out = run(&ws, &["--accept-new-host-key"]);
    code(&out, 0);
    let known = std::fs::read_to_string(&kh).unwrap();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ", sshd.port)),
        "{known}"
    );
}

#[test]
fn a_changed_host_key_is_refused_even_with_the_flag() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts_wrong_key(),
        "",
    );
    let before = sha256_file(&remote);
    let out = run(&ws, &["--accept-new-host-key"]);
    code(&out, 2);
    assert!(stderr_of(&out).contains("CHANGED"), "{}", stderr_of(&out));
    assert_eq!(sha256_file(&remote), before);
}

#[test]
fn a_wrong_key_is_a_clear_authentication_error() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.unauthorized_key(),
        &sshd.known_hosts,
        "",
    );
    let out = run(&ws, &[]);
    code(&out, 2);
    assert!(
        stderr_of(&out).contains("authentication failed"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_write_after_the_snapshot_aborts_and_leaves_the_remote_untouched() {
    let sshd = Sshd::start();
    // The stop command (run on the host before the swap) plays the racing
    // application: it writes a row.
    let (ws, remote) = setup(
        &sshd,
        "stop = \"sqlite3 \\\"$SQLMORPH_DB\\\" \\\"INSERT INTO users VALUES (4, 'late', 1)\\\"\"",
    );
    let out = run(&ws, &[]);
    code(&out, 3);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        column(&remote, "SELECT name FROM users WHERE id = 4"),
        vec!["late"]
    );
    assert_eq!(
        column(&remote, "PRAGMA table_info(users)").len(),
        3,
        "old schema kept"
    );
}

#[test]
fn a_failing_health_check_rolls_back_and_exits_4() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "health_check = \"exit 7\"");
    let (before, inode) = (content(&remote), std::fs::metadata(&remote).unwrap().ino());
    let out = run(&ws, &[]);
    code(&out, 4);
    let err = stderr_of(&out);
    assert!(
        err.contains("health_check") && err.contains("rolled back"),
        "{err}"
    );
    assert_put_back(&remote, &before, inode);
}

#[test]
fn a_cut_connection_during_upload_leaves_the_remote_unchanged_and_a_rerun_succeeds() {
    let mut sshd = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    // Big enough that the upload takes a while on loopback.
    let remote = ws.db(
        "remote/prod.sqlite3",
        &format!("{PROD} CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60) INSERT INTO blobs SELECT i, randomblob(1000000) FROM n;"),
    );
    ws.file(
        "schema.sql",
        &format!("{SOURCE} CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);"),
    );
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        "",
    );
    let before = sha256_file(&remote);
    // The upload goes into the agent's private directory beside production.
    let staged = || {
        listing(&ws.path("remote"))
            .iter()
            .map(|d| ws.path("remote").join(d).join("new.sqlite3"))
            .find(|p| p.exists())
    };
    let child = ws
        .cmd_std()
        .args(["run", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while staged().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    sshd.kill_all();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert_eq!(sha256_file(&remote), before, "remote database unchanged");

    let sshd2 = Sshd::start();
    config(
        &ws,
        &[url(&sshd2, &remote)],
        &sshd2.client_key,
        &sshd2.known_hosts,
        "",
    );
    code(&run(&ws, &[]), 0);
    assert_eq!(column(&remote, "SELECT count(*) FROM blobs"), vec!["60"]);
    assert_eq!(
        column(&remote, "SELECT tz FROM users WHERE id = 1"),
        vec!["UTC"]
    );
    assert_eq!(
        listing(&ws.path("remote")),
        ["prod.sqlite3"],
        "the cut run's agent removed its directory too"
    );
}

#[test]
fn a_two_host_fleet_ends_all_old_when_the_second_swap_fails() {
    let a = Sshd::start();
    let b = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("host1")).unwrap();
    std::fs::create_dir_all(ws.path("host2")).unwrap();
    let p1 = ws.db("host1/prod.sqlite3", PROD);
    let p2 = ws.db("host2/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    let kh = ws.file(
        "known_hosts",
        &format!(
            "{}{}",
            std::fs::read_to_string(&a.known_hosts).unwrap(),
            std::fs::read_to_string(&b.known_hosts).unwrap()
        ),
    );
    // Both servers accept the first server's client key.
    std::fs::copy(&a.client_key, ws.path("key")).unwrap();
    let authorized_b = b.dir.join("client.pub");
    std::fs::copy(a.client_key.with_extension("pub"), &authorized_b).unwrap();
    let fleet = [url(&a, &p1), url(&b, &p2)];
    let (h1, h2) = (content(&p1), content(&p2));
    let h2_bytes = sha256_file(&p2);
    let (i1, i2) = (
        std::fs::metadata(&p1).unwrap().ino(),
        std::fs::metadata(&p2).unwrap().ino(),
    );
    config(
        &ws,
        &fleet,
        &ws.path("key"),
        &kh,
        "stop = \"case \\\"$SQLMORPH_DB\\\" in *host2*) exit 1;; esac\"",
    );
    let out = run(&ws, &[]);
    code(&out, 4);
    let err = stderr_of(&out);
    assert!(
        err.contains("rolled back to the previous database") && err.contains("host2"),
        "{err}"
    );
    // Both hosts end old: host1 was swapped and put back, host2 untouched.
    assert_put_back(&p1, &h1, i1);
    assert_put_back(&p2, &h2, i2);
    assert_eq!(sha256_file(&p2), h2_bytes, "host2 was never written");

    // Without the failure both end new.
    config(&ws, &fleet, &ws.path("key"), &kh, "");
    code(&run(&ws, &[]), 0);
    for p in [&p1, &p2] {
        assert_eq!(column(p, "SELECT tz FROM users WHERE id = 2"), vec!["UTC"]);
    }
}

#[test]
fn rollback_over_ssh_restores_the_backup() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    let original = ws
        .cmd()
        .args(["schema", remote.to_str().unwrap()])
        .output()
        .unwrap()
        .stdout;
    code(&run(&ws, &[]), 0);
    assert_eq!(column(&remote, "PRAGMA table_info(users)").len(), 4);
    let out = ws.cmd().args(["rollback", "--yes"]).output().unwrap();
    code(&out, 0);
    assert_eq!(
        ws.cmd()
            .args(["schema", remote.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout,
        original
    );
    assert_eq!(
        column(&remote, "SELECT id || name FROM users ORDER BY id"),
        vec!["1ann", "2bob", "3cy"]
    );
    assert_eq!(std::fs::read_dir(ws.path("backups")).unwrap().count(), 2);
}

#[test]
fn an_encrypted_key_takes_its_passphrase_from_the_environment() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    // A passphrase-protected key that the server authorizes.
    let key = ws.path("locked_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "open sesame", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(key.with_extension("pub"), sshd.dir.join("client.pub")).unwrap();
    config(&ws, &[url(&sshd, &remote)], &key, &sshd.known_hosts, "");

    let out = ws
        .cmd()
        .args(["run", "--yes"])
        .env_remove("SQLMORPH_SSH_PASSPHRASE")
        .output()
        .unwrap();
    code(&out, 2);
    assert!(
        stderr_of(&out).contains("is the passphrase right?"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .cmd()
        .args(["run", "--yes"])
        .env("SQLMORPH_SSH_PASSPHRASE", "open sesame")
        .output()
        .unwrap();
    code(&out, 0);
    assert_eq!(
        column(&remote, "SELECT tz FROM users WHERE id = 1"),
        vec!["UTC"]
    );
    for run in std::fs::read_dir(ws.path(".sqlmorph/runs")).unwrap() {
        let log = std::fs::read_to_string(run.unwrap().path().join("log.txt")).unwrap();
        assert!(!log.contains("open sesame"), "secrets never reach the log");
    }
}

/// A directory of the tools the remote side needs, without `sqlite3`.
fn path_without_sqlite3(ws: &Workspace) -> PathBuf {
    let bin = ws.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in [
        "sh",
        "bash",
        "cat",
        "cut",
        "sha256sum",
        "ln",
        "cp",
        "mv",
        "sync",
        "dirname",
        "stat",
        "rm",
        "test",
        "env",
        "true",
        "mkdir",
    ] {
        if let Some(found) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
        {
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
    }
    assert!(!bin.join("sqlite3").exists());
    bin
}

#[test]
fn without_sqlite3_on_the_host_a_live_wal_production_is_copied_and_deployed() {
    let ws = Workspace::new();
    let bin = path_without_sqlite3(&ws);
    let sshd = Sshd::start_with(&[format!("SetEnv=PATH={}", bin.display())]);
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.path("remote/prod.sqlite3");
    // The "application" keeps a connection with committed rows still in the WAL.
    let app = rusqlite::Connection::open(&remote).unwrap();
    app.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; {PROD}"
    ))
    .unwrap();
    assert!(ws.path("remote/prod.sqlite3-wal").metadata().unwrap().len() > 0);
    ws.file("schema.sql", SOURCE);
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        "",
    );

    let out = ws
        .cmd()
        .args(["run", "--dry-run", "--yes", "--allow-destructive"])
        .output()
        .unwrap();
    code(&out, 0);
    let run_dir = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        column(
            &run_dir.join("production.sqlite3"),
            "SELECT count(*) FROM users"
        ),
        vec!["3"],
        "the WAL's rows are in the snapshot"
    );

    // With the application still there, a real run deploys into its WAL.
    code(&run(&ws, &[]), 0);
    let tz: String = app
        .query_row("SELECT group_concat(id || tz) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tz, "1UTC,2UTC,3UTC", "the application's connection");
    drop(app);
    assert_eq!(
        column(&remote, "SELECT id || tz FROM users ORDER BY id"),
        vec!["1UTC", "2UTC", "3UTC"]
    );
}

#[test]
fn plan_reads_remote_production_and_leaves_nothing_behind() {
    let sshd = Sshd::start();
    let (ws, remote) = setup(&sshd, "");
    let before = ws.snapshot();
    let out = ws.cmd().args(["plan", "--yes"]).output().unwrap();
    code(&out, 0);
    assert!(
        stdout_of(&out).contains("+ tz (DEFAULT 'UTC')"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(ws.snapshot(), before, "plan wrote nothing");
    assert_eq!(column(&remote, "PRAGMA table_info(users)").len(), 3);
}

/// The names in `dir`, sorted (empty when it does not exist).
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

/// `sqlmorph ARGS` with its temporary directory set to `tmp`.
fn with_tmpdir(ws: &Workspace, tmp: &Path, args: &[&str]) -> Output {
    ws.cmd().args(args).env("TMPDIR", tmp).output().unwrap()
}

#[test]
fn plan_of_a_remote_path_with_quotes_and_dollars_leaves_nothing_behind() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/it's $HOME.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        "",
    );
    let tmp = ws.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let before = listing(&ws.path("remote"));
    let out = with_tmpdir(&ws, &tmp, &["plan", "--yes"]);
    code(&out, 0);
    assert!(
        stdout_of(&out).contains("+ tz (DEFAULT 'UTC')"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        listing(&ws.path("remote")),
        before,
        "nothing left on the host"
    );
    assert_eq!(
        listing(&tmp),
        Vec::<String>::new(),
        "no local temporary left"
    );
}

#[test]
fn a_failed_remote_copy_leaves_no_temporary_behind() {
    // The host's disk takes no file larger than 2 KiB (`ulimit -f`, as a
    // full disk or a quota would): the agent opens production, but its copy
    // fails. The cached agent is this build's, started through that limit.
    let ws = Workspace::new();
    let sshd = Sshd::start_with_cache(&ws.path("cache"), &[]);
    let agent = cached_agent(&sshd.cache);
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\ntrap '' XFSZ\nulimit -f 4\nexec {:?} \"$@\"\n",
            assert_cmd::cargo::cargo_bin("sqlmorph")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        "",
    );
    let tmp = ws.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let before = listing(&ws.path("remote"));
    for args in [&["plan"][..], &["run", "--dry-run"]] {
        let out = with_tmpdir(&ws, &tmp, args);
        code(&out, 2);
        assert!(
            stderr_of(&out).contains("copying ssh://"),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert_eq!(
            listing(&ws.path("remote")),
            before,
            "{args:?}: nothing left on the host"
        );
        assert_eq!(
            listing(&tmp),
            Vec::<String>::new(),
            "{args:?}: no local temporary left"
        );
    }
}

#[test]
fn a_deploy_to_a_remote_path_with_quotes_and_dollars_works() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/it's $HOME \"x\".sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    let marker = ws.path("restarted.txt");
    config(
        &ws,
        &[url(&sshd, &remote)],
        &sshd.client_key,
        &sshd.known_hosts,
        &format!(
            "restart = {:?}",
            format!(
                "printf %s \"$SQLMORPH_DB\" > {:?}",
                marker.display().to_string()
            )
        ),
    );
    code(&run(&ws, &[]), 0);
    assert_eq!(
        column(&remote, "SELECT id || tz FROM users ORDER BY id"),
        vec!["1UTC", "2UTC", "3UTC"]
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        remote.display().to_string(),
        "the restart command was told the exact path"
    );
    assert_eq!(
        listing(&ws.path("remote")),
        ["it's $HOME \"x\".sqlite3"],
        "nothing is kept beside production"
    );
}

/// `<name>/prod.sqlite3` for each name: the databases of a fleet whose
/// "hosts" are one sshd.
fn fleet_dbs(ws: &Workspace, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|h| {
            std::fs::create_dir(ws.path(h)).unwrap();
            ws.db(&format!("{h}/prod.sqlite3"), PROD)
        })
        .collect()
}

/// The lines the restart command appended beside `db` (one per restart).
fn restarts(db: &Path) -> Vec<String> {
    std::fs::read_to_string(format!("{}.restarts", db.display()))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_fleet_that_aborts_restarts_every_host_it_stopped() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    let hosts = fleet_dbs(&ws, &["host1", "host2", "host3"]);
    ws.file("schema.sql", SOURCE);
    // host2's stop plays the racing application: a write lands there after
    // the snapshot, so its compare-and-swap fails and the fleet aborts.
    let stop = "case \"$SQLMORPH_DB\" in *host2*) sqlite3 \"$SQLMORPH_DB\" \"INSERT INTO users VALUES (4, 'late', 1)\";; esac";
    let restart = "echo \"$SSH_CONNECTION\" >> \"$SQLMORPH_DB.restarts\"";
    let fleet: Vec<String> = hosts.iter().map(|p| url(&sshd, p)).collect();
    config(
        &ws,
        &fleet,
        &sshd.client_key,
        &sshd.known_hosts,
        &format!("stop = {stop:?}\nrestart = {restart:?}"),
    );
    let old = content(&hosts[0]);
    let inode = std::fs::metadata(&hosts[0]).unwrap().ino();
    let out = run(&ws, &[]);
    code(&out, 4);
    assert!(
        stderr_of(&out).contains("changed after the snapshot"),
        "{}",
        stderr_of(&out)
    );
    assert_put_back(&hosts[0], &old, inode);
    assert_eq!(
        column(&hosts[1], "SELECT name FROM users WHERE id = 4"),
        vec!["late"]
    );
    // host1 (swapped, rolled back) and host2 (stopped, swap refused) each
    // restarted once, over SSH; host3 was never stopped.
    for stopped in &hosts[..2] {
        let lines = restarts(stopped);
        assert_eq!(lines.len(), 1, "{}: {lines:?}", stopped.display());
        assert!(lines[0].starts_with("127.0.0.1 "), "{lines:?}");
    }
    assert_eq!(restarts(&hosts[2]), Vec::<String>::new());
}

#[test]
fn the_restart_primitive_runs_on_every_host_over_ssh() {
    let sshd = Sshd::start();
    let ws = Workspace::new();
    let hosts = fleet_dbs(&ws, &["host1", "host2"]);
    ws.file("schema.sql", SOURCE);
    ws.file("restart.rhai", "restart();\n");
    let fleet: Vec<String> = hosts.iter().map(|p| url(&sshd, p)).collect();
    let restart = "echo \"$SSH_CONNECTION\" >> \"$SQLMORPH_DB.restarts\"";
    config(
        &ws,
        &fleet,
        &sshd.client_key,
        &sshd.known_hosts,
        &format!("restart = {restart:?}"),
    );
    let run_recipe = |extra: &[&str]| {
        ws.cmd()
            .args(["run", "restart.rhai", "--yes"])
            .args(extra)
            .env_remove("SSH_CONNECTION")
            .env_remove("SQLMORPH_DB")
            .output()
            .unwrap()
    };
    code(&run_recipe(&["--dry-run"]), 0);
    for db in &hosts {
        assert_eq!(
            restarts(db),
            Vec::<String>::new(),
            "a dry run restarts nothing"
        );
    }
    code(&run_recipe(&[]), 0);
    for db in &hosts {
        let lines = restarts(db);
        assert_eq!(lines.len(), 1, "{}: {lines:?}", db.display());
        assert!(lines[0].starts_with("127.0.0.1 "), "over SSH: {lines:?}");
    }
    assert!(!ws.path(".restarts").exists(), "nothing ran here");
}
