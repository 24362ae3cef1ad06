//! SSH transport for remote databases (`ssh://user@host[:port]/absolute/path.sqlite3`).
//!
//! One [`Remote`] is one authenticated SSH session (libssh2 through the `ssh2` crate). It
//! runs shell scripts with `/bin/sh -c`, keeps a command running for a line-by-line
//! dialogue ([`Remote::start`], for the sqlmorph agent), hashes remote files with
//! `sha256sum`, moves files both ways over SFTP with large pipelined buffers, and
//! replaces a remote file atomically with `mv -f --` (SFTP v3 `rename` refuses to
//! overwrite an existing file).
//!
//! Every remote command line is built with [`shell_quote`] (or [`shell_command`], which
//! quotes each word with it): paths, names and configured commands are never pasted into
//! a script unquoted, and the login shell only ever sees `/bin/sh -c '<script>'`.
//!
//! Host keys are checked against an OpenSSH `known_hosts` file with OpenSSH's rules: an
//! entry for a non-standard port is written and matched only as `[host]:port`, hashed
//! (`|1|...`) and wildcard entries are understood, and only entries of the key type the
//! server presented are compared (the handshake prefers the key types already on file).
//! An unknown key is refused unless [`SshOptions::accept_new_host_key`] is set, in which
//! case it is appended to the file; a changed key is always refused.
//!
//! Authentication uses [`SshOptions::identity`] when given, otherwise the ssh-agent and
//! then the default `~/.ssh/id_ed25519`, `id_ecdsa` and `id_rsa` files.

use std::cell::OnceCell;
use std::fmt;
use std::fs;
use std::io::IsTerminal;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::sshconf::home_dir;
pub use crate::sshconf::{DEFAULT_TIMEOUT, SshOptions, SshUrl};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, ErrorCode, FileStat, MethodType, OpenFlags, OpenType, Session, Sftp};

/// Size of each SFTP read/write call. libssh2 splits one call into many pipelined SFTP
/// requests, so a large buffer keeps the link busy (32 KiB calls run at a fraction of it).
const TRANSFER_BUF: usize = 4 << 20;

/// SFTP status codes (`SSH_FX_*`) that mean "no such file".
const FX_NO_SUCH_FILE: i32 = 2;
const FX_NO_SUCH_PATH: i32 = 10;
/// libssh2's `LIBSSH2_ERROR_EAGAIN` (non-blocking call would block).
const ERROR_EAGAIN: i32 = -37;

// ---------------------------------------------------------------------------------------
// Remote

/// Result of a remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; -1 when the command was killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One authenticated SSH session.
pub struct Remote {
    session: Session,
    sftp: OnceCell<Sftp>,
    target: String,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Connects, checks the host key against `opts.known_hosts` and authenticates.
    pub fn connect(url: &SshUrl, opts: &SshOptions) -> Result<Remote> {
        let target = url.host_port();
        let timeout_ms = u32::try_from(opts.connect_timeout.as_millis()).unwrap_or(u32::MAX);
        let tcp = tcp_connect(&url.host, url.port, opts.connect_timeout)
            .with_context(|| format!("cannot connect to {target}"))?;
        // Best effort: lower latency for the many small request/response round trips.
        let _ = tcp.set_nodelay(true);

        let mut session = Session::new().context("cannot create an SSH session")?;
        session.set_timeout(timeout_ms);
        let host_name = known_hosts_name(&url.host, url.port);
        let known = read_known_hosts(&session, &opts.known_hosts, &host_name)?;
        prefer_known_key_types(&session, &known);
        session.set_tcp_stream(tcp);
        session
            .handshake()
            .with_context(|| format!("SSH handshake with {target} failed"))?;

        verify_host_key(&session, &target, &host_name, &known, opts)?;
        authenticate(&session, url, opts)?;
        // Only after the handshake: configured before it, libssh2's key exchange fails.
        session.set_keepalive(false, 15);
        Ok(Remote {
            session,
            sftp: OnceCell::new(),
            target,
        })
    }

    /// Runs the POSIX shell `script` as `/bin/sh -c '<script>'` (the remote user's login
    /// shell, whatever it is, only sees that one quoted word) and collects its output.
    pub fn exec(&self, script: &str) -> Result<ExecOutput> {
        let what = || format!("running `{script}` on {}", self.target);
        let mut channel = self.session.channel_session().with_context(what)?;
        channel
            .exec(&shell_command(&["/bin/sh", "-c", script]))
            .with_context(what)?;
        let (stdout, stderr) = self.read_output(&channel).with_context(what)?;
        channel.wait_close().with_context(what)?;
        let mut status = channel.exit_status().with_context(what)?;
        let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
        if let Ok(sig) = channel.exit_signal()
            && let Some(name) = sig.exit_signal
        {
            status = -1;
            stderr.push_str(&format!("killed by signal {name}\n"));
        }
        Ok(ExecOutput {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        })
    }

    /// Starts `script` (as [`Remote::exec`] does) and leaves it running, for a dialogue
    /// over its standard input and output (standard error is merged into the output),
    /// on a channel that stays open until the [`Process`] is dropped.
    pub fn start(&self, script: &str) -> Result<Process> {
        let what = || format!("starting `{script}` on {}", self.target);
        let mut channel = self.session.channel_session().with_context(what)?;
        channel
            .handle_extended_data(ssh2::ExtendedData::Merge)
            .with_context(what)?;
        channel
            .exec(&shell_command(&["/bin/sh", "-c", script]))
            .with_context(what)?;
        Ok(Process {
            channel,
            pending: Vec::new(),
            target: self.target.clone(),
        })
    }

    /// Reads stdout and stderr to their ends, side by side: reading one to the end first
    /// would stall once the other fills the SSH window. Runs the session non-blocking and
    /// polls (std has no select); after `connect_timeout` of silence it sends a keepalive,
    /// so a slow silent command (hashing a big file) is waited for.
    fn read_output(&self, channel: &ssh2::Channel) -> Result<(Vec<u8>, Vec<u8>)> {
        struct Blocking<'a>(&'a Session);
        impl Drop for Blocking<'_> {
            fn drop(&mut self) {
                self.0.set_blocking(true);
            }
        }
        self.session.set_blocking(false);
        let _restore = Blocking(&self.session);

        let timeout = Duration::from_millis(u64::from(self.session.timeout()).max(1000));
        let mut bufs = (Vec::new(), Vec::new());
        let mut done = (false, false);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut nap = Duration::from_millis(1);
        let mut idle = Duration::ZERO;
        while !(done.0 && done.1) {
            let mut progress = false;
            for (stream_id, out, finished) in
                [(0, &mut bufs.0, &mut done.0), (1, &mut bufs.1, &mut done.1)]
            {
                let mut stream = channel.stream(stream_id);
                while !*finished {
                    match stream.read(&mut chunk) {
                        Ok(0) => *finished = true,
                        Ok(n) => {
                            out.extend_from_slice(&chunk[..n]);
                            progress = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if progress {
                nap = Duration::from_millis(1);
                idle = Duration::ZERO;
            } else if !(done.0 && done.1) {
                std::thread::sleep(nap);
                idle += nap;
                nap = (nap * 2).min(Duration::from_millis(20));
                if idle >= timeout {
                    idle = Duration::ZERO;
                    if let Err(e) = self.session.keepalive_send()
                        && !matches!(e.code(), ErrorCode::Session(ERROR_EAGAIN))
                    {
                        return Err(e).context("the connection is gone (keepalive failed)");
                    }
                }
            }
        }
        Ok(bufs)
    }

    /// SHA-256 (lowercase hex) of a remote file, or `None` when it does not exist.
    /// Uses `sha256sum`, falling back to `shasum -a 256` (macOS, BSD).
    pub fn sha256(&self, path: &str) -> Result<Option<String>> {
        let p = shell_quote(path);
        let out = self.exec(&format!(
            "[ -e {p} ] || exit 3; \
             if command -v sha256sum >/dev/null 2>&1; then exec sha256sum -- {p}; \
             elif command -v shasum >/dev/null 2>&1; then exec shasum -a 256 -- {p}; \
             else echo 'neither sha256sum nor shasum is installed' >&2; exit 4; fi"
        ))?;
        match out.status {
            0 => {}
            3 => return Ok(None),
            _ => bail!(
                "cannot hash {path} on {}: {}",
                self.target,
                describe_failure(&out)
            ),
        }
        // sha256sum prefixes the line with '\' when it had to escape the file name.
        let line = out.stdout.trim_start().trim_start_matches('\\');
        let hash = line.get(..64).unwrap_or_default();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "unexpected sha256sum output for {path} on {}: {:?}",
                self.target,
                out.stdout
            );
        }
        Ok(Some(hash.to_ascii_lowercase()))
    }

    fn sftp(&self) -> Result<&Sftp> {
        if let Some(sftp) = self.sftp.get() {
            return Ok(sftp);
        }
        let sftp = self.session.sftp().with_context(|| {
            format!(
                "cannot start SFTP on {} (is the sftp subsystem enabled?)",
                self.target
            )
        })?;
        Ok(self.sftp.get_or_init(|| sftp))
    }

    /// Copies a remote file to `local`: written to a temporary file beside it, fsynced,
    /// then renamed over `local`. Returns the number of bytes copied.
    pub fn download(&self, remote: &str, local: &Path, progress: bool) -> Result<u64> {
        let what = || {
            format!(
                "downloading {}:{remote} to {}",
                self.target,
                local.display()
            )
        };
        let sftp = self.sftp().with_context(what)?;
        let mut src = sftp.open(Path::new(remote)).with_context(what)?;
        let size = src.stat().ok().and_then(|s| s.size).unwrap_or(0);
        let file_name = local
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file path", local.display()))?;
        let dir = local
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Unpredictable, O_EXCL, 0600; removed on failure when dropped.
        let prefix = format!(".{}.sqlmorph-", file_name.to_string_lossy());
        (|| -> Result<u64> {
            let mut tmp = crate::private::temp_file_in(dir, &prefix, ".part")?;
            let bar = progress_bar(progress, size, &format!("download {remote}"));
            let n = copy_with(&mut src, tmp.as_file_mut(), bar.as_ref())?;
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("cannot fsync {}", tmp.path().display()))?;
            tmp.persist(local)
                .with_context(|| format!("cannot rename the download to {}", local.display()))?;
            sync_parent_dir(local);
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            Ok(n)
        })()
        .with_context(what)
    }

    /// Writes `local` to `remote` (created exclusively: it must not exist; permissions set to `mode`),
    /// fsyncs it on the server and returns the number of bytes copied. It is not atomic:
    /// upload to a temporary name in the same directory, check it, then [`Remote::rename_over`].
    pub fn upload(&self, local: &Path, remote: &str, mode: i32, progress: bool) -> Result<u64> {
        let what = || format!("uploading {} to {}:{remote}", local.display(), self.target);
        let mut src = fs::File::open(local).with_context(what)?;
        let size = src.metadata().map(|m| m.len()).unwrap_or(0);
        let sftp = self.sftp().with_context(what)?;
        let mut dst = sftp
            .open_mode(
                Path::new(remote),
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                mode,
                OpenType::File,
            )
            .with_context(what)?;
        // The mode given at open is only used for a new file, and through the server's umask.
        let perm = u32::try_from(mode & 0o7777).unwrap_or(0o600);
        dst.setstat(FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: Some(perm),
            atime: None,
            mtime: None,
        })
        .with_context(what)?;
        let bar = progress_bar(progress, size, &format!("upload {remote}"));
        let n = copy_with(&mut src, &mut dst, bar.as_ref()).with_context(what)?;
        // fsync@openssh.com; servers without the extension answer "unsupported": carry on.
        if let Err(e) = dst.fsync()
            && !matches!(e.code(), ErrorCode::SFTP(8))
        {
            return Err(e).with_context(what);
        }
        dst.close().with_context(what)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(n)
    }

    /// Atomically replaces `to` with `from` (`mv -f -- from to`); keep both in one directory.
    pub fn rename_over(&self, from: &str, to: &str) -> Result<()> {
        let out = self.exec(&shell_command(&["mv", "-f", "--", from, to]))?;
        if out.status != 0 {
            bail!(
                "cannot move {from} over {to} on {}: {}",
                self.target,
                describe_failure(&out)
            );
        }
        Ok(())
    }

    /// Whether `path` exists on the server (following symlinks).
    pub fn exists(&self, path: &str) -> Result<bool> {
        match self.sftp()?.stat(Path::new(path)) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot stat {path} on {}", self.target)),
        }
    }

    /// Removes a remote file; succeeds when it is already gone.
    pub fn remove(&self, path: &str) -> Result<()> {
        match self.sftp()?.unlink(Path::new(path)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {path} on {}", self.target)),
        }
    }
}

/// A command left running on the host by [`Remote::start`]: lines in, lines out.
///
/// The session's timeout (`connect_timeout`) bounds each blocking wait of libssh2; a
/// patient [`Process::read_line`] waits through it as often as it takes, while libssh2
/// sends a keepalive every 15 s of the wait. Between requests nothing is read or sent,
/// so an idle process (a user answering a prompt for an hour) is not disturbed.
pub struct Process {
    channel: ssh2::Channel,
    pending: Vec<u8>,
    target: String,
}

impl Process {
    /// Sends one line (a newline is added) to the process's standard input.
    pub fn write_line(&mut self, line: &str) -> Result<()> {
        let sent = self
            .channel
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.channel.flush());
        sent.with_context(|| format!("writing to a command on {}", self.target))
    }

    /// The next line of output (without its newline), or `None` at the end of the
    /// output. Impatient, a wait longer than the session timeout is an error.
    pub fn read_line(&mut self, patient: bool) -> Result<Option<String>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..end]).into_owned()));
            }
            match self.channel.read(&mut chunk) {
                Ok(0) if self.pending.is_empty() => return Ok(None),
                Ok(0) => {
                    let rest = std::mem::take(&mut self.pending);
                    return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut && patient => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("reading from {}", self.target));
                }
            }
        }
    }

    /// After the end of the output: the exit status (-1 when killed by a signal or
    /// unknown).
    pub fn exit_status(&mut self) -> i32 {
        let _ = self.channel.wait_close();
        match self.channel.exit_signal() {
            Ok(sig) if sig.exit_signal.is_some() => -1,
            _ => self.channel.exit_status().unwrap_or(-1),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.session.disconnect(None, "bye", None);
    }
}

fn describe_failure(out: &ExecOutput) -> String {
    let stderr = out.stderr.trim();
    if stderr.is_empty() {
        format!("exit status {}", out.status)
    } else {
        format!("{stderr} (exit status {})", out.status)
    }
}

fn is_not_found(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(FX_NO_SUCH_FILE) | ErrorCode::SFTP(FX_NO_SUCH_PATH)
    )
}

fn progress_bar(enabled: bool, len: u64, message: &str) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    Some(
        ProgressBar::new(len)
            .with_style(style)
            .with_message(message.to_string()),
    )
}

fn copy_with(src: &mut impl Read, dst: &mut impl Write, bar: Option<&ProgressBar>) -> Result<u64> {
    let mut buf = vec![0u8; TRANSFER_BUF];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read failed"),
        };
        dst.write_all(&buf[..n]).context("write failed")?;
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    dst.flush().context("write failed")?;
    Ok(total)
}

fn sync_parent_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn tcp_connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(anyhow!("{addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{host} resolves to no address")))
}

// ---------------------------------------------------------------------------------------
// Quoting

/// Quotes `s` as one word for a POSIX shell: `it's` becomes `'it'\''s'`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command line from its words, each quoted with [`shell_quote`]:
/// `["mv", "--", "it's"]` becomes `'mv' '--' 'it'\''s'`.
pub fn shell_command(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Host keys

/// The name a known_hosts line uses for this host: `host` for port 22, else `[host]:port`.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A known_hosts line whose host patterns match the host being connected to.
#[derive(Debug)]
struct KnownEntry {
    line: usize,
    revoked: bool,
    key_type: String,
    key_b64: String,
}

/// Reads the entries of `path` that apply to `name`. A missing file has none; lines that
/// cannot be parsed and `@cert-authority` lines are skipped (as OpenSSH does).
fn read_known_hosts(session: &Session, path: &Path, name: &str) -> Result<Vec<KnownEntry>> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let mut revoked = false;
        if first.starts_with('@') {
            if first != "@revoked" {
                continue;
            }
            revoked = true;
            match fields.next() {
                Some(f) => first = f,
                None => continue,
            }
        }
        let (Some(key_type), Some(key_b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if hosts_match(session, first, key_type, key_b64, name) {
            entries.push(KnownEntry {
                line: i + 1,
                revoked,
                key_type: key_type.to_string(),
                key_b64: key_b64.to_string(),
            });
        }
    }
    Ok(entries)
}

/// OpenSSH host-pattern matching: comma-separated patterns with `*`, `?`, `!negation`,
/// and hashed `|1|salt|hash` names (checked by libssh2).
fn hosts_match(
    session: &Session,
    patterns: &str,
    key_type: &str,
    key_b64: &str,
    name: &str,
) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if pattern.starts_with("|1|") {
            if hashed_name_matches(session, pattern, key_type, key_b64, name) {
                matched = true;
            }
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(&negated.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if glob_match(&pattern.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            matched = true;
        }
    }
    matched
}

fn hashed_name_matches(
    session: &Session,
    pattern: &str,
    key_type: &str,
    key_b64: &str,
    name: &str,
) -> bool {
    let Ok(mut kh) = session.known_hosts() else {
        return false;
    };
    if kh
        .read_str(
            &format!("{pattern} {key_type} {key_b64}"),
            ssh2::KnownHostFileKind::OpenSSH,
        )
        .is_err()
    {
        return false;
    }
    // A dummy key: a hashed name that matches reports Mismatch, any other NotFound.
    !matches!(
        kh.check(name, &[0u8]),
        CheckResult::NotFound | CheckResult::Failure
    )
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Puts the host key algorithms of the keys already on file first, so a server with
/// several host keys presents one we can check (libssh2 would otherwise pick by its own
/// order and report an unknown key). Certificate algorithms are left out: there is no
/// CA checking here, and a certificate never matches a plain known_hosts entry.
fn prefer_known_key_types(session: &Session, known: &[KnownEntry]) {
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let supported: Vec<&str> = supported
        .into_iter()
        .filter(|a| !a.contains("-cert-"))
        .collect();
    let mut pref: Vec<&str> = Vec::new();
    for entry in known.iter().filter(|e| !e.revoked) {
        let algs: &[&str] = match entry.key_type.as_str() {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => &[other][..],
        };
        for alg in algs {
            if let Some(s) = supported.iter().find(|s| *s == alg)
                && !pref.contains(s)
            {
                pref.push(s);
            }
        }
    }
    for s in &supported {
        if !pref.contains(s) {
            pref.push(s);
        }
    }
    if !pref.is_empty() {
        let _ = session.method_pref(MethodType::HostKey, &pref.join(","));
    }
}

fn verify_host_key(
    session: &Session,
    target: &str,
    name: &str,
    known: &[KnownEntry],
    opts: &SshOptions,
) -> Result<()> {
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| anyhow!("{target} sent no host key"))?;
    let key_type = key_type_of(blob).unwrap_or("unknown");
    let key_b64 = base64(blob, true);
    let fp = fingerprint(blob);
    let file = opts.known_hosts.display();

    if let Some(e) = known.iter().find(|e| e.revoked && e.key_b64 == key_b64) {
        bail!(
            "the host key of {target} ({key_type} {fp}) is marked @revoked in {file} line {}",
            e.line
        );
    }
    let same_type = || {
        known
            .iter()
            .filter(|e| !e.revoked && e.key_type == key_type)
    };
    if same_type().any(|e| e.key_b64 == key_b64) {
        return Ok(());
    }
    if let Some(old) = same_type().next() {
        bail!(
            "the host key of {target} has CHANGED: it is now {key_type} {fp}, but {file} line {} \
             has another key. Someone may be intercepting the connection, or the server was \
             reinstalled. The key is not accepted (not even with --accept-new-host-key); if you \
             know the change is legitimate, remove the old entry with `ssh-keygen -R {} -f {file}` \
             and connect again.",
            old.line,
            shell_quote(name),
        );
    }
    if !opts.accept_new_host_key {
        let (host, port) = split_name(name);
        bail!(
            "the host key of {target} is not known: {key_type} {fp} is not in {file}. \
             If that fingerprint is right, rerun with --accept-new-host-key, or add the key \
             with `ssh-keyscan -p {port} {host} >> {file}`."
        );
    }
    append_known_host(&opts.known_hosts, &format!("{name} {key_type} {key_b64}"))
        .with_context(|| format!("cannot add the host key of {target} to {file}"))?;
    eprintln!("Added the host key of {target} ({key_type} {fp}) to {file}");
    // libssh2 agrees that the line we wrote matches (guards against format slips).
    let mut kh = session.known_hosts()?;
    kh.read_str(
        &format!("{name} {key_type} {key_b64}"),
        ssh2::KnownHostFileKind::OpenSSH,
    )?;
    let (host, port) = split_name(name);
    match kh.check_port(host, port, blob) {
        CheckResult::Match => Ok(()),
        other => bail!("internal error: the added known_hosts line does not match ({other:?})"),
    }
}

fn split_name(name: &str) -> (&str, u16) {
    if let Some(rest) = name.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
        && let Ok(port) = port.parse()
    {
        return (host, port);
    }
    (name, 22)
}

fn append_known_host(path: &Path, line: &str) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let needs_newline = match fs::read(path) {
        Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
        Err(_) => false,
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text = if needs_newline {
        format!("\n{line}\n")
    } else {
        format!("{line}\n")
    };
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The key type name that starts an SSH public key blob (`ssh-ed25519`, ...).
fn key_type_of(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// OpenSSH-style fingerprint: `SHA256:` and unpadded base64 of the SHA-256 of the key blob.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", base64(&Sha256::digest(blob), false))
}

/// Standard base64 (RFC 4648), padded or not, as OpenSSH writes keys and fingerprints.
fn base64(data: &[u8], pad: bool) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    if pad {
        STANDARD.encode(data)
    } else {
        STANDARD_NO_PAD.encode(data)
    }
}

// ---------------------------------------------------------------------------------------
// Authentication

fn authenticate(session: &Session, url: &SshUrl, opts: &SshOptions) -> Result<()> {
    let who = format!("{}@{}", url.user, url.host_port());
    let passphrase = opts.passphrase.as_deref();
    if let Some(key) = &opts.identity {
        if !key.is_file() {
            bail!(
                "authentication failed for {who} with key {}: no such file",
                key.display()
            );
        }
        let first = session.userauth_pubkey_file(&url.user, None, key, passphrase);
        // An encrypted key with no passphrase given: ask, at a terminal only.
        let first = match first {
            Err(_) if passphrase.is_none() && std::io::stdin().is_terminal() => {
                let asked =
                    rpassword::prompt_password(format!("Passphrase for {}: ", key.display()))
                        .context("reading the passphrase")?;
                session.userauth_pubkey_file(&url.user, None, key, Some(&asked))
            }
            other => other,
        };
        return first.map_err(|e| {
            anyhow!(
                "authentication failed for {who} with key {}: {} (is its public key in the \
                     server's authorized_keys? is the passphrase right?)",
                key.display(),
                e.message()
            )
        });
    }
    let mut tried = Vec::new();
    match agent_auth(session, &url.user) {
        Ok(()) => return Ok(()),
        Err(e) => tried.push(format!("ssh-agent: {e}")),
    }
    let ssh_dir = home_dir().join(".ssh");
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let key = ssh_dir.join(name);
        if !key.is_file() {
            continue;
        }
        match session.userauth_pubkey_file(&url.user, None, &key, passphrase) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("{}: {}", key.display(), e.message())),
        }
    }
    if tried.len() == 1 {
        tried.push(format!("no key file in {}", ssh_dir.display()));
    }
    bail!(
        "authentication failed for {who} (no identity file given; tried {}). Give an identity \
         file, or load the key into ssh-agent.",
        tried.join("; ")
    )
}

fn agent_auth(session: &Session, user: &str) -> Result<()> {
    let mut agent = session.agent()?;
    agent
        .connect()
        .map_err(|e| anyhow!("cannot reach it (is SSH_AUTH_SOCK set?): {}", e.message()))?;
    agent.list_identities()?;
    let identities = agent.identities()?;
    if identities.is_empty() {
        bail!("it holds no keys");
    }
    for identity in &identities {
        if agent.userauth(user, identity).is_ok() {
            return Ok(());
        }
    }
    bail!("none of its {} keys was accepted", identities.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes(), true), want);
            assert_eq!(base64(input.as_bytes(), false), want.trim_end_matches('='));
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("*.example.com", "db.example.com"));
        assert!(glob_match("[127.0.0.1]:2?22", "[127.0.0.1]:2222"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(
            shell_command(&["mv", "--", "it's", "$x"]),
            r"'mv' '--' 'it'\''s' '$x'"
        );
    }
}
