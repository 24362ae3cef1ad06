//! sqlmorph::target::ssh against a real OpenSSH server on 127.0.0.1 (see support/sshd.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlmorph::target::ssh::{Remote, SshOptions, SshUrl, shell_quote};

use crate::support::sshd::Sshd;

fn opts(sshd: &Sshd) -> SshOptions {
    SshOptions {
        identity: Some(sshd.client_key.clone()),
        passphrase: None,
        known_hosts: sshd.known_hosts.clone(),
        accept_new_host_key: false,
        connect_timeout: Duration::from_secs(10),
    }
}

fn url(sshd: &Sshd) -> SshUrl {
    sshd.url(&sshd.dir.join("db.sqlite3")).parse().expect("url")
}

fn connect(sshd: &Sshd) -> Remote {
    Remote::connect(&url(sshd), &opts(sshd))
        .unwrap_or_else(|e| panic!("connect: {e:#}\nsshd log:\n{}", sshd.log_text()))
}

fn connect_err(sshd: &Sshd, opts: &SshOptions) -> String {
    match Remote::connect(&url(sshd), opts) {
        Ok(_) => panic!("connect should have failed"),
        Err(e) => format!("{e:#}"),
    }
}

/// The host key fingerprint as OpenSSH prints it.
fn openssh_fingerprint(sshd: &Sshd) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.join("host.pub"))
        .output()
        .expect("ssh-keygen -lf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift), so content errors cannot hide.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn connect_and_exec() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let out = remote.exec("echo out; echo err >&2; exit 3").expect("exec");
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let out = remote
        .exec(&format!(
            "printf %s {}",
            shell_quote("it's a \"test\" $HOME")
        ))
        .expect("exec");
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (0, "it's a \"test\" $HOME")
    );
    let who = remote.exec("id -un").expect("exec");
    assert_eq!(who.stdout.trim(), sshd.user);
    // Megabytes on stderr while stdout is read first must not stall the channel.
    let out = remote.exec("head -c 5000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o; echo").expect("exec");
    assert_eq!(
        (out.status, out.stdout.len(), out.stderr.len()),
        (0, 3_000_001, 5_000_000)
    );
}

#[test]
fn exec_runs_the_script_with_bin_sh_not_the_login_shell() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    // The login shell only passes one quoted word on to /bin/sh.
    let out = remote
        .exec("printf '%s|' \"$0\" 'it'\\''s' \"$((1 + 1))\"")
        .expect("exec");
    assert_eq!((out.status, out.stdout.as_str()), (0, "/bin/sh|it's|2|"));
}

#[test]
fn exec_outlives_the_session_timeout() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    o.connect_timeout = Duration::from_secs(1);
    let remote = Remote::connect(&url(&sshd), &o).expect("connect");
    let out = remote
        .exec("sleep 3; echo finished")
        .expect("a silent command longer than the timeout");
    assert_eq!((out.status, out.stdout.as_str()), (0, "finished\n"));
    assert_eq!(remote.exec("echo again").expect("exec").stdout, "again\n");
}

#[test]
fn a_started_command_answers_line_by_line_however_long_it_is_idle_or_busy() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    o.connect_timeout = Duration::from_secs(1);
    let remote = Remote::connect(&url(&sshd), &o).expect("connect");
    let mut p = remote
        .start("while read -r line; do sleep 2; echo \"got $line\"; done; echo bye >&2; exit 4")
        .expect("start");
    // Idle for longer than the session timeout (a user at a prompt), then
    // an answer that takes longer than it too.
    std::thread::sleep(Duration::from_millis(2500));
    p.write_line("it's one").expect("write");
    assert_eq!(
        p.read_line(true).expect("read").as_deref(),
        Some("got it's one")
    );
    p.write_line("two").expect("write");
    let impatient = p.read_line(false);
    assert!(
        impatient.is_err(),
        "an impatient read times out: {impatient:?}"
    );
    assert_eq!(p.read_line(true).expect("read").as_deref(), Some("got two"));
    // Other commands run beside it on the same session.
    assert_eq!(remote.exec("echo beside").expect("exec").stdout, "beside\n");
    drop(p);
    assert_eq!(remote.exec("echo after").expect("exec").stdout, "after\n");
}

#[test]
fn a_started_command_that_ends_gives_its_output_and_status() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let mut p = remote
        .start("echo 'no such binary' >&2; exit 126")
        .expect("start");
    assert_eq!(
        p.read_line(false).expect("read").as_deref(),
        Some("no such binary"),
        "standard error is merged into the output"
    );
    assert_eq!(p.read_line(false).expect("read"), None);
    assert_eq!(p.exit_status(), 126);
}

#[test]
fn unknown_host_key_is_refused_with_fingerprint() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    o.known_hosts = sshd.known_hosts_empty();
    let err = connect_err(&sshd, &o);
    let fp = openssh_fingerprint(&sshd);
    assert!(fp.starts_with("SHA256:"), "{fp}");
    assert!(err.contains(&fp), "no fingerprint {fp} in: {err}");
    assert!(err.contains("ssh-ed25519"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", sshd.port)), "{err}");
    assert!(err.contains("--accept-new-host-key"), "{err}");
    assert!(
        err.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&o.known_hosts).expect("read"),
        "",
        "file must not change"
    );
}

#[test]
fn new_host_key_is_accepted_with_the_flag_and_saved() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    // Missing file in a missing directory: both are created.
    o.known_hosts = sshd.dir.join("new").join("dir").join("known_hosts");
    o.accept_new_host_key = true;
    drop(Remote::connect(&url(&sshd), &o).expect("connect with --accept-new-host-key"));
    let text = fs::read_to_string(&o.known_hosts).expect("known_hosts written");
    let key = sshd
        .host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(text, format!("[127.0.0.1]:{} {key}\n", sshd.port));
    // OpenSSH finds the entry under the same name.
    let found = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{}", sshd.port), "-f"])
        .arg(&o.known_hosts)
        .output()
        .expect("ssh-keygen -F");
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find the entry"
    );
    // Second connection: no flag needed, nothing appended.
    o.accept_new_host_key = false;
    let remote = Remote::connect(&url(&sshd), &o).expect("second connect");
    assert_eq!(remote.exec("true").expect("exec").status, 0);
    assert_eq!(fs::read_to_string(&o.known_hosts).expect("read"), text);
}

#[test]
fn changed_host_key_is_refused_even_with_the_flag() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    o.known_hosts = sshd.known_hosts_wrong_key();
    o.accept_new_host_key = true;
    let before = fs::read_to_string(&o.known_hosts).expect("read");
    let err = connect_err(&sshd, &o);
    assert!(err.contains("CHANGED"), "{err}");
    assert!(err.contains(&openssh_fingerprint(&sshd)), "{err}");
    assert!(err.contains(path_str(&o.known_hosts)), "{err}");
    assert_eq!(
        fs::read_to_string(&o.known_hosts).expect("read"),
        before,
        "file must not change"
    );
}

#[test]
fn known_hosts_follows_openssh_matching_rules() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    let key = sshd
        .host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");

    // A port-less entry with another key is about port 22: unknown here, not "changed".
    let other = sshd.dir.join("other");
    crate::support::sshd::keygen(&other);
    let other_key = fs::read_to_string(other.with_extension("pub")).expect("read");
    let path = sshd.dir.join("kh_portless");
    fs::write(&path, format!("127.0.0.1 {}\n", other_key.trim())).expect("write");
    o.known_hosts = path;
    let err = connect_err(&sshd, &o);
    assert!(err.contains("not known"), "{err}");

    // An entry of a key type the server does not have is not a change either.
    let rsa = sshd.dir.join("rsa");
    crate::support::sshd::keygen_type(&rsa, "rsa");
    let rsa_key = fs::read_to_string(rsa.with_extension("pub")).expect("read");
    let path = sshd.dir.join("kh_rsa");
    fs::write(
        &path,
        format!("[127.0.0.1]:{} {}\n", sshd.port, rsa_key.trim()),
    )
    .expect("write");
    o.known_hosts = path;
    let err = connect_err(&sshd, &o);
    assert!(err.contains("not known"), "{err}");

    // The server also has an ECDSA key: with only that one on file, it is the one used.
    let path = sshd.dir.join("kh_server_ecdsa");
    fs::write(
        &path,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_ecdsa_pub),
    )
    .expect("write");
    o.known_hosts = path;
    drop(Remote::connect(&url(&sshd), &o).expect("connect with only the ECDSA key known"));

    // Hashed names (ssh-keygen -H), comments and markers are understood.
    let path = sshd.dir.join("kh_hashed");
    let lines = format!(
        "# comment\n@cert-authority *.example.com {key}\n[127.0.0.1]:{} {key}\n",
        sshd.port
    );
    fs::write(&path, lines).expect("write");
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen -H");
    assert!(st.status.success());
    let hashed = fs::read_to_string(&path).expect("read");
    assert!(
        hashed.contains("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    o.known_hosts = path;
    drop(Remote::connect(&url(&sshd), &o).expect("connect with hashed known_hosts"));

    // Wildcards, and a negated pattern that excludes a line holding another key.
    let path = sshd.dir.join("kh_negated");
    let port = sshd.port;
    fs::write(
        &path,
        format!("[127.0.0.*]:*,![127.0.0.1]:{port} {}\n", other_key.trim()),
    )
    .expect("write");
    o.known_hosts = path;
    let err = connect_err(&sshd, &o);
    assert!(err.contains("not known"), "{err}");
    let path = sshd.dir.join("kh_wild");
    fs::write(&path, format!("[127.0.0.?]:*,!*.invalid {key}\n")).expect("write");
    o.known_hosts = path;
    drop(Remote::connect(&url(&sshd), &o).expect("connect with wildcard known_hosts"));
}

#[test]
fn wrong_client_key_gives_a_clear_auth_error() {
    let sshd = Sshd::start();
    let mut o = opts(&sshd);
    let stranger = sshd.unauthorized_key();
    o.identity = Some(stranger.clone());
    let err = connect_err(&sshd, &o);
    let want = format!(
        "authentication failed for {}@127.0.0.1:{} with key {}",
        sshd.user,
        sshd.port,
        stranger.display()
    );
    assert!(err.contains(&want), "{err}");

    o.identity = Some(sshd.dir.join("no-such-key"));
    let err = connect_err(&sshd, &o);
    assert!(
        err.contains("authentication failed") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn connection_errors_name_host_and_port() {
    let mut sshd = Sshd::start();
    let o = opts(&sshd);
    sshd.kill();
    let err = connect_err(&sshd, &o);
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{}", sshd.port)),
        "{err}"
    );
}

#[test]
fn upload_then_sha256_matches_local() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let local_dir = tempfile::tempdir().expect("tempdir");
    let local = local_dir.path().join("local.db");
    let data = noise(9 * 1024 * 1024 + 12_345, 7);
    fs::write(&local, &data).expect("write");
    let target = sshd.dir.join("it's uploaded.db");
    let t = path_str(&target);

    assert_eq!(remote.sha256(t).expect("sha256"), None);
    assert!(!remote.exists(t).expect("exists"));
    let n = remote.upload(&local, t, 0o640, true).expect("upload");
    assert_eq!(n, data.len() as u64);
    assert!(remote.exists(t).expect("exists"));
    assert_eq!(remote.sha256(t).expect("sha256"), Some(sha256_hex(&data)));
    assert_eq!(fs::read(&target).expect("read"), data);
    let mode = remote
        .exec(&format!("stat -c %a {}", shell_quote(t)))
        .expect("stat");
    assert_eq!(mode.stdout.trim(), "640");

    // An upload creates its file exclusively: an existing one (or a
    // planted symlink) is left alone.
    let short = local_dir.path().join("short.db");
    fs::write(&short, b"short").expect("write");
    remote
        .upload(&short, t, 0o600, false)
        .expect_err("the file exists");
    assert_eq!(remote.sha256(t).expect("sha256"), Some(sha256_hex(&data)));

    // Empty file.
    remote.remove(t).expect("remove");
    let empty = local_dir.path().join("empty.db");
    fs::write(&empty, b"").expect("write");
    assert_eq!(remote.upload(&empty, t, 0o600, false).expect("upload"), 0);
    assert_eq!(remote.sha256(t).expect("sha256"), Some(sha256_hex(b"")));

    remote.remove(t).expect("remove");
    assert!(!remote.exists(t).expect("exists"));
    remote.remove(t).expect("removing a missing file is fine");

    let err = remote
        .upload(&local, "/nonexistent-dir/x.db", 0o600, false)
        .expect_err("must fail");
    assert!(
        format!("{err:#}").contains("/nonexistent-dir/x.db"),
        "{err:#}"
    );
}

#[test]
fn download_matches_remote() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let data = noise(6 * 1024 * 1024 + 777, 11);
    let source = sshd.dir.join("remote.db");
    fs::write(&source, &data).expect("write");
    let local_dir = tempfile::tempdir().expect("tempdir");
    let local = local_dir.path().join("copy.db");
    fs::write(&local, b"old contents").expect("write");

    let n = remote
        .download(path_str(&source), &local, true)
        .expect("download");
    assert_eq!(n, data.len() as u64);
    assert_eq!(fs::read(&local).expect("read"), data);
    let leftovers: Vec<PathBuf> = fs::read_dir(local_dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p != &local)
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let missing = remote.download(path_str(&sshd.dir.join("missing.db")), &local, false);
    assert!(missing.is_err());
    assert_eq!(
        fs::read(&local).expect("read"),
        data,
        "a failed download keeps the old file"
    );
}

/// The name the download used to write to: guessable from the process id.
#[test]
fn a_download_never_writes_through_a_planted_temporary() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let source = sshd.dir.join("remote.db");
    fs::write(&source, b"production data").expect("write");
    let local_dir = tempfile::tempdir().expect("tempdir");
    let local = local_dir.path().join("copy.db");
    let victim = local_dir.path().join("victim");
    fs::write(&victim, b"keep me").expect("write");
    let planted = format!(".copy.db.sqlmorph-part-{}", std::process::id());
    std::os::unix::fs::symlink(&victim, local_dir.path().join(&planted)).expect("symlink");

    remote
        .download(path_str(&source), &local, false)
        .expect("download");
    assert_eq!(fs::read(&victim).expect("read"), b"keep me");
    assert!(!fs::symlink_metadata(&local).expect("local").is_symlink());
    assert_eq!(fs::read(&local).expect("read"), b"production data");
}

#[test]
fn rename_over_replaces_an_existing_file() {
    let sshd = Sshd::start();
    let remote = connect(&sshd);
    let from = sshd.dir.join("new db.tmp");
    let to = sshd.dir.join("live 'db'.sqlite3");
    fs::write(&from, b"new").expect("write");
    fs::write(&to, b"old").expect("write");
    remote
        .rename_over(path_str(&from), path_str(&to))
        .expect("rename_over");
    assert_eq!(fs::read(&to).expect("read"), b"new");
    assert!(!from.exists());
    let err = remote
        .rename_over(path_str(&from), path_str(&to))
        .expect_err("source is gone");
    assert!(format!("{err:#}").contains("cannot move"), "{err:#}");
}

#[test]
fn ssh_url_parsing() {
    let u: SshUrl = "ssh://deploy@db.example.com:2222/srv/app/data.sqlite3"
        .parse()
        .expect("parse");
    assert_eq!(
        u,
        SshUrl {
            user: "deploy".into(),
            host: "db.example.com".into(),
            port: 2222,
            path: "/srv/app/data.sqlite3".into()
        }
    );
    assert_eq!(
        u.to_string(),
        "ssh://deploy@db.example.com:2222/srv/app/data.sqlite3"
    );

    let u: SshUrl = "ssh://root@10.0.0.5/var/db.sqlite3".parse().expect("parse");
    assert_eq!((u.port, u.path.as_str()), (22, "/var/db.sqlite3"));
    assert_eq!(u.to_string(), "ssh://root@10.0.0.5/var/db.sqlite3");

    let u: SshUrl = "ssh://me@[::1]:2200/x.db".parse().expect("parse");
    assert_eq!((u.host.as_str(), u.port), ("::1", 2200));
    assert_eq!(u.to_string(), "ssh://me@[::1]:2200/x.db");

    let err = |s: &str| format!("{:#}", s.parse::<SshUrl>().expect_err(s));
    assert!(err("ssh://host/db.sqlite3").contains("missing user"));
    assert!(err("ssh://@host/db.sqlite3").contains("missing user"));
    assert!(err("ssh://me@host:db.sqlite3").contains("must be absolute"));
    assert!(err("ssh://me@host").contains("missing remote path"));
    assert!(err("ssh://me@host:22x/db").contains("bad port"));
    assert!(err("ssh://me@host:70000/db").contains("bad port"));
    assert!(err("ssh://me@host:0/db").contains("bad port"));
    assert!(err("ssh://me@host:/db").contains("bad port"));
    assert!(err("ssh://me@:22/db").contains("missing host"));
    assert!(err("sftp://me@host/db").contains("not an ssh:// URL"));
}
