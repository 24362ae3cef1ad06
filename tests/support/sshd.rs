//! A throwaway OpenSSH server on 127.0.0.1 for tests: own host and client keys in a temp
//! dir, public-key login as the current user, SFTP enabled. Killed (by its own PID) and
//! its directory removed on drop. Needs /usr/sbin/sshd (Debian: openssh-server).
//!
//! Its sessions get `XDG_CACHE_HOME` pointing into cargo's target directory (shared by
//! the tests, so the sqlmorph agent is uploaded once per build), or into a directory of
//! the test's own ([`Sshd::start_with_cache`]), never into the user's real cache.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub port: u16,
    /// Temp dir holding the keys, known_hosts files and `sshd.log`.
    pub dir: PathBuf,
    /// Login user: the current user.
    pub user: String,
    /// Private key authorized to log in.
    pub client_key: PathBuf,
    /// known_hosts with the right `[127.0.0.1]:PORT` entry.
    pub known_hosts: PathBuf,
    /// The host public key line (`ssh-ed25519 AAAA... comment`).
    pub host_pub: String,
    /// The server's second host key (`ecdsa-sha2-nistp256 AAAA... comment`).
    pub host_ecdsa_pub: String,
    pub log: PathBuf,
    /// `XDG_CACHE_HOME` of the sessions: the agent is cached in `<cache>/sqlmorph`.
    pub cache: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with(&[])
    }

    /// Starts a server with extra `-o` options (e.g. `SetEnv=PATH=…`).
    pub fn start_with(options: &[String]) -> Sshd {
        let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ssh-agent-cache");
        Sshd::start_with_cache(&shared, options)
    }

    /// Starts a server whose sessions cache the agent under `cache`.
    pub fn start_with_cache(cache: &Path, options: &[String]) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (apt-get install -y openssh-server)"
        );
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let tmp = tempfile::Builder::new()
            .prefix("sqlmorph-sshd-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        keygen(&dir.join("host"));
        keygen(&dir.join("client"));
        keygen_type(&dir.join("host_ecdsa"), "ecdsa");
        let host_ecdsa_pub =
            fs::read_to_string(dir.join("host_ecdsa.pub")).expect("host_ecdsa.pub");
        let host_ecdsa_pub = host_ecdsa_pub.trim().to_string();
        let host_pub = fs::read_to_string(dir.join("host.pub")).expect("host.pub");
        let host_pub = host_pub.trim().to_string();
        let user = current_user();
        let log = dir.join("sshd.log");

        let mut failures = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(&dir, port, &log, &with_cache(cache, options)) {
                Ok(child) => {
                    let known_hosts = dir.join("known_hosts");
                    fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}\n"))
                        .expect("write known_hosts");
                    return Sshd {
                        port,
                        client_key: dir.join("client"),
                        known_hosts,
                        host_pub,
                        host_ecdsa_pub,
                        user,
                        log,
                        cache: cache.to_path_buf(),
                        dir,
                        child: Some(child),
                        _tmp: tmp,
                    };
                }
                Err(why) => failures.push_str(&format!("--- port {port}: {why}\n")),
            }
        }
        panic!("sshd did not start after 5 tries:\n{failures}");
    }

    /// `ssh://USER@127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// A known_hosts file whose `[127.0.0.1]:PORT` entry has another ed25519 key.
    pub fn known_hosts_wrong_key(&self) -> PathBuf {
        let other = self.dir.join("other_host");
        keygen(&other);
        let key = fs::read_to_string(other.with_extension("pub")).expect("other_host.pub");
        let path = self.dir.join("known_hosts_wrong");
        fs::write(&path, format!("[127.0.0.1]:{} {}\n", self.port, key.trim())).expect("write");
        path
    }

    /// An empty known_hosts file.
    pub fn known_hosts_empty(&self) -> PathBuf {
        let path = self.dir.join("known_hosts_empty");
        fs::write(&path, "").expect("write");
        path
    }

    /// A new client key pair that the server does not authorize.
    pub fn unauthorized_key(&self) -> PathBuf {
        let path = self.dir.join("stranger");
        keygen(&path);
        path
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the sessions of an sshd started with `cache` find this build's sqlmorph agent:
/// `<cache>/sqlmorph/sqlmorph-<the first 16 hex digits of the binary's SHA-256>`.
pub fn cached_agent(cache: &Path) -> PathBuf {
    let out = Command::new("sha256sum")
        .arg(assert_cmd::cargo::cargo_bin("sqlmorph"))
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum failed");
    let hash = String::from_utf8_lossy(&out.stdout)[..16].to_string();
    cache.join("sqlmorph").join(format!("sqlmorph-{hash}"))
}

/// An ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) {
    keygen_type(path, "ed25519");
}

pub fn keygen_type(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "sqlmorph-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// `options` with `XDG_CACHE_HOME=cache` added to their `SetEnv`: sshd uses only the
/// first `SetEnv` line, so every variable goes into one.
fn with_cache(cache: &Path, options: &[String]) -> Vec<String> {
    let mut env = format!("SetEnv=XDG_CACHE_HOME={}", cache.display());
    let mut out = Vec::new();
    for o in options {
        match o.strip_prefix("SetEnv=") {
            Some(vars) => {
                env.push(' ');
                env.push_str(vars);
            }
            None => out.push(o.clone()),
        }
    }
    out.insert(0, env);
    out
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    assert!(out.status.success(), "id -un failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Starts sshd and waits for "Server listening on"; stderr keeps being copied to `log`.
fn spawn(dir: &Path, port: u16, log: &Path, options: &[String]) -> Result<Child, String> {
    let d = dir.display();
    let mut child = Command::new(SSHD)
        .args([
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-o",
            "ListenAddress=127.0.0.1",
        ])
        .args(["-o", &format!("Port={port}")])
        .args([
            "-o",
            &format!("HostKey={d}/host"),
            "-o",
            &format!("HostKey={d}/host_ecdsa"),
        ])
        .args(["-o", &format!("AuthorizedKeysFile={d}/client.pub")])
        .args([
            "-o",
            "PidFile=none",
            "-o",
            "StrictModes=no",
            "-o",
            "PasswordAuthentication=no",
        ])
        .args(["-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no"])
        .args(["-o", "Subsystem=sftp internal-sftp"])
        .args(options.iter().flat_map(|o| ["-o", o.as_str()]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut ready = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{line}");
            if line.contains("Server listening on")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    if started {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    thread::sleep(Duration::from_millis(50));
    Err(fs::read_to_string(log).unwrap_or_default())
}

impl Sshd {
    /// Kills the server and every session it has open (its child
    /// processes), as a dropped network would.
    pub fn kill_all(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}
