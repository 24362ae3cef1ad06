//! `sqlmorph agent`: sqlmorph's own live-safe access to production, run on
//! the host that holds the file.
//!
//! Why: the swap is safe with the application running only when it is made
//! through SQLite on the machine that has the file: SQLite's locks and the
//! WAL index are local to it, the compare-and-swap check must run while the
//! write lock is held, and the new content must be written *into* the file
//! (a rename loses the commits that land meanwhile, corrupts a WAL database
//! the application has open, and changes production's inode, owner, mode or
//! symlink). The sqlite3 CLI's `.restore` cannot check under the lock in WAL
//! mode, so sqlmorph uploads its own binary ([`install`]) and runs it there:
//! the agent holds a [`LiveDb`](super::live::LiveDb) or
//! [`Swappable`](super::live::Swappable) for the whole session, exactly as a
//! local run does, and the host needs no sqlite3 at all.
//!
//! # Protocol
//!
//! One production per agent, over standard input and output: one JSON
//! object per line, one response per request, in order ([`Request`],
//! [`Response`]). Standard error carries nothing but a crash.
//!
//! ```text
//! {"op":"open","path":"/srv/app.sqlite3","swap":true}
//!     {"ok":true,"dir":"/srv/.sqlmorph-Xq3Ab1"}
//! {"op":"copy","dest":"/srv/.sqlmorph-Xq3Ab1/copy.sqlite3"}
//!     {"ok":true,"token":1}
//! {"op":"swap","src":"/srv/.sqlmorph-Xq3Ab1/new.sqlite3","token":1}
//!     {"ok":true,"token":2}
//!  or {"ok":false,"exit":3,"message":"production (/srv/app.sqlite3) changed after the snapshot …"}
//! {"op":"close"}
//!     {"ok":true}
//! ```
//!
//! * `open` opens production (for swapping only with `"swap":true`) and
//!   creates the agent's private directory beside it (mode 0700, on
//!   production's file system, where there is room for a copy), for the
//!   copies and the upload. The directory is removed when the agent ends.
//! * `copy` writes a consistent copy (0600) and answers a token for the
//!   compare-and-swap [`Baseline`] read in the same transaction.
//! * `swap` writes `src` into production if nothing committed since the
//!   token's baseline, checked under the write lock, and answers the token
//!   of production right after the swap: a swap back (a restore) with it is
//!   refused once the application has written to the new database.
//! * `close`, or the end of the input (a dropped connection), closes
//!   production and removes the private directory, before the answer.
//!
//! A failure answers `ok:false` with the exit code it means
//! ([`crate::error::exit_code`]) and the message; the agent keeps serving.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::live::{Baseline, LOCK_WAIT};
use super::ssh::{Process, Remote, SshUrl, shell_quote};
use super::{Access, Local};
use crate::error::{ExitKind, aborted, deploy_failed, exit_code, input};
use crate::log::Log;

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Open { path: String, swap: bool },
    Copy { dest: String },
    Swap { src: String, token: u64 },
    Close,
}

/// The agent's answer to one request. On the wire every answer is one
/// object with `ok`; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub enum Response {
    /// `open`: the agent's private directory on the host.
    Opened { dir: String },
    /// `copy` and `swap`: production's state, for a later `swap`.
    Token { token: u64 },
    /// `close`.
    Done,
    /// Any request that failed: the exit code it means, and why.
    Failed { exit: u8, message: String },
}

/// [`Response`] as it is written: `{"ok":…}` and the fields of the answer.
#[derive(Serialize, Deserialize)]
struct Wire {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl From<Response> for Wire {
    fn from(r: Response) -> Wire {
        let mut w = Wire {
            ok: true,
            dir: None,
            token: None,
            exit: None,
            message: None,
        };
        match r {
            Response::Opened { dir } => w.dir = Some(dir),
            Response::Token { token } => w.token = Some(token),
            Response::Done => {}
            Response::Failed { exit, message } => {
                w.ok = false;
                w.exit = Some(exit);
                w.message = Some(message);
            }
        }
        w
    }
}

impl TryFrom<Wire> for Response {
    type Error = String;

    fn try_from(w: Wire) -> Result<Response, String> {
        Ok(match w {
            Wire {
                ok: false,
                exit,
                message,
                ..
            } => Response::Failed {
                exit: exit.unwrap_or(ExitKind::Input as u8),
                message: message.unwrap_or_else(|| "the agent gave no reason".into()),
            },
            Wire { dir: Some(dir), .. } => Response::Opened { dir },
            Wire {
                token: Some(token), ..
            } => Response::Token { token },
            _ => Response::Done,
        })
    }
}

impl Response {
    fn failed(e: &anyhow::Error) -> Response {
        Response::Failed {
            exit: exit_code(e),
            message: format!("{e:#}"),
        }
    }
}

/// The error an agent reported, with the exit code it carried.
fn reported(exit: u8, message: String) -> anyhow::Error {
    match exit {
        3 => aborted(message),
        4 => deploy_failed(message),
        2 => input(message),
        _ => anyhow!(message),
    }
}

// ---------------------------------------------------------------------------
// The agent (on the host)

/// Production, opened by `open`. Fields drop in order: production's
/// connection is closed (its `-wal`/`-shm` tidied) before the private
/// directory is removed.
struct Served {
    db: Local,
    dir: tempfile::TempDir,
    baselines: HashMap<u64, Baseline>,
    next: u64,
}

impl Served {
    fn open(path: &str, swap: bool) -> Result<Served> {
        let path = Path::new(path);
        let access = if swap { Access::Swap } else { Access::ReadOnly };
        let db = Local::open(path, access)?;
        let real =
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        let parent = real.parent().unwrap_or(Path::new("/"));
        let dir = tempfile::Builder::new()
            .prefix(".sqlmorph-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .with_context(|| format!("creating a private directory in {}", parent.display()))?;
        Ok(Served {
            db,
            dir,
            baselines: HashMap::new(),
            next: 1,
        })
    }

    fn token(&mut self, baseline: Baseline) -> Response {
        let token = self.next;
        self.next += 1;
        self.baselines.insert(token, baseline);
        Response::Token { token }
    }

    fn handle(&mut self, request: Request) -> Result<Response> {
        match request {
            Request::Open { .. } => Err(input(format!(
                "this agent already serves {}",
                self.db.live().path().display()
            ))),
            Request::Copy { dest } => {
                let baseline = self.db.live().copy_to(Path::new(&dest))?;
                Ok(self.token(baseline))
            }
            Request::Swap { src, token } => {
                let expected = *self
                    .baselines
                    .get(&token)
                    .ok_or_else(|| anyhow!("internal: unknown token {token}"))?;
                let Local::Swap(prod) = &mut self.db else {
                    return Err(aborted(format!(
                        "{} was opened read-only: it cannot be swapped",
                        self.db.live().path().display()
                    )));
                };
                let after = prod.swap_in(Path::new(&src), expected, LOCK_WAIT)?;
                Ok(self.token(after))
            }
            Request::Close => Ok(Response::Done),
        }
    }
}

/// Serves one production: requests from `requests`, answers to `output`,
/// until `close` or the end of `requests`.
pub fn serve(requests: impl BufRead, mut output: impl Write) -> Result<()> {
    let mut served: Option<Served> = None;
    for line in requests.lines() {
        let line = line.context("reading a request")?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Close) => break,
            Ok(Request::Open { path, swap }) if served.is_none() => {
                Served::open(&path, swap).map(|s| {
                    let dir = s.dir.path().display().to_string();
                    served = Some(s);
                    Response::Opened { dir }
                })
            }
            Ok(request) => match &mut served {
                Some(s) => s.handle(request),
                None => Err(input("no production is open: send `open` first")),
            },
            Err(e) => Err(input(format!("not a request ({e}): {line}"))),
        };
        send(
            &mut output,
            &answer.unwrap_or_else(|e| Response::failed(&e)),
        )?;
    }
    drop(served);
    // Nobody may be listening any more (the input ended): not an error.
    let _ = send(&mut output, &Response::Done);
    Ok(())
}

fn send(output: &mut impl Write, response: &Response) -> Result<()> {
    let line = serde_json::to_string(response)?;
    writeln!(output, "{line}")?;
    output.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The client (here)

/// This binary and the name it is cached under on hosts: `sqlmorph-` and
/// the first 16 hex digits of its SHA-256 (one file per version).
fn this_binary() -> Result<&'static (PathBuf, String)> {
    static BINARY: OnceLock<(PathBuf, String)> = OnceLock::new();
    if let Some(b) = BINARY.get() {
        return Ok(b);
    }
    let exe = std::env::current_exe().context("finding this sqlmorph binary")?;
    let hash = crate::target::files::file_sha256(&exe)?;
    let name = format!("sqlmorph-{}", &hash[..16]);
    Ok(BINARY.get_or_init(|| (exe, name)))
}

/// The path of this binary on the host, in `$XDG_CACHE_HOME/sqlmorph` (or
/// `~/.cache/sqlmorph`): reused when it is there, else uploaded (0700) to
/// a temporary name and renamed.
pub fn install(remote: &Remote, host: &str, progress: bool, log: &mut Log) -> Result<String> {
    let (exe, name) = this_binary()?;
    let script = format!(
        "d=\"${{XDG_CACHE_HOME:-$HOME/.cache}}/sqlmorph\"; f=\"$d\"/{}; printf '%s\\n' \"$f\"; \
         test -x \"$f\" && exit 0; mkdir -p -m 700 -- \"$d\" || exit 2; exit 1",
        shell_quote(name)
    );
    let out = remote.exec(&script)?;
    let path = out.stdout.trim_end_matches('\n').to_string();
    match out.status {
        0 => return Ok(path),
        1 => {}
        _ => bail!(
            "cannot create the directory of {path} on {host}: {}",
            out.stderr.trim()
        ),
    }
    log.line(&format!(
        "  uploading the sqlmorph agent to {host}:{path} (once per sqlmorph version)"
    ));
    // An unpredictable name, created exclusively by the upload.
    let tmp = format!("{path}.part-{}", crate::private::random_hex()?);
    let uploaded = remote
        .upload(exe, &tmp, 0o700, progress)
        .and_then(|_| remote.rename_over(&tmp, &path));
    if uploaded.is_err() {
        let _ = remote.remove(&tmp);
    }
    uploaded.with_context(|| format!("installing the sqlmorph agent on {host}"))?;
    Ok(path)
}

/// An agent running on a host, serving one production over one SSH
/// channel that stays open for the whole session.
pub struct Agent {
    process: Process,
    host: String,
    /// Its path on the host.
    binary: String,
    /// It has answered once (so it runs on this host).
    answered: bool,
    /// Its output has ended.
    ended: bool,
}

impl Agent {
    /// Installs (when needed) and starts the agent on the host of `url`,
    /// and opens production: the agent and its private directory.
    pub fn start(
        remote: &Remote,
        url: &SshUrl,
        access: Access,
        progress: bool,
        log: &mut Log,
    ) -> Result<(Agent, String)> {
        let host = url.host_port();
        let path = install(remote, &host, progress, log)?;
        let process = remote.start(&format!("exec {} agent", shell_quote(&path)))?;
        let mut agent = Agent {
            process,
            host,
            binary: path,
            answered: false,
            ended: false,
        };
        let open = Request::Open {
            path: url.path.clone(),
            swap: access == Access::Swap,
        };
        match agent.call(&open)? {
            Response::Opened { dir } => Ok((agent, dir)),
            other => bail!("the agent on {} answered {other:?} to open", agent.host),
        }
    }

    /// A consistent copy of production at `dest` on the host: its token.
    pub fn copy(&mut self, dest: &str) -> Result<u64> {
        self.token(&Request::Copy { dest: dest.into() })
    }

    /// Swaps `src` (on the host) into production if production is still
    /// as `token` says: the token of production right after.
    pub fn swap(&mut self, src: &str, token: u64) -> Result<u64> {
        self.token(&Request::Swap {
            src: src.into(),
            token,
        })
    }

    fn token(&mut self, request: &Request) -> Result<u64> {
        match self.call(request)? {
            Response::Token { token } => Ok(token),
            other => bail!("the agent on {} answered {other:?}", self.host),
        }
    }

    /// Sends `request` and waits for its answer, as long as it takes once
    /// the agent has answered before. Lines that are no answer (a shell's
    /// or a crash's message) are kept for the error.
    fn call(&mut self, request: &Request) -> Result<Response> {
        let sent = self.process.write_line(&serde_json::to_string(request)?);
        let mut said = Vec::new();
        loop {
            match self.process.read_line(self.answered) {
                Ok(Some(line)) => match serde_json::from_str::<Response>(&line) {
                    Ok(Response::Failed { exit, message }) => {
                        self.answered = true;
                        return Err(reported(exit, format!("{}: {message}", self.host)));
                    }
                    Ok(response) => {
                        self.answered = true;
                        return Ok(response);
                    }
                    Err(_) => said.push(line),
                },
                Ok(None) => return Err(self.gone(&said, sent.err())),
                Err(e) => return Err(self.gone(&said, Some(e))),
            }
        }
    }

    /// The agent's output ended (or could not be read) before an answer.
    fn gone(&mut self, said: &[String], error: Option<anyhow::Error>) -> anyhow::Error {
        self.ended = true;
        let mut why = said.join("\n").trim().to_string();
        match error {
            Some(e) if why.is_empty() => why = format!("it did not answer ({e:#})"),
            Some(_) => {}
            None => {
                let status = self.process.exit_status();
                why = format!("{why} (exit status {status})").trim().to_string();
            }
        }
        if self.answered {
            return anyhow!("the sqlmorph agent on {} stopped: {why}", self.host);
        }
        input(format!(
            "the sqlmorph agent cannot run on {} ({}): {why}. sqlmorph runs its own binary on the \
             host to swap production under SQLite's lock, so the host must be able to run this \
             binary: the same OS and architecture as here ({} {}). Installing sqlmorph on the host \
             instead is not supported yet",
            self.host,
            self.binary,
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
    }
}

impl Drop for Agent {
    /// Closes production and lets the agent remove its private directory,
    /// waiting for it to say so.
    fn drop(&mut self) {
        if self.answered && !self.ended {
            let close = serde_json::to_string(&Request::Close).unwrap_or_default();
            if self.process.write_line(&close).is_ok() {
                let _ = self.process.read_line(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(lines: &[Request]) -> String {
        lines
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect()
    }

    fn answers(input: &str) -> Vec<Response> {
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        let open = Request::Open {
            path: "/srv/a b.db".into(),
            swap: true,
        };
        assert_eq!(
            serde_json::to_string(&open).unwrap(),
            r#"{"op":"open","path":"/srv/a b.db","swap":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Close).unwrap(),
            r#"{"op":"close"}"#
        );
        for (response, text) in [
            (Response::Token { token: 7 }, r#"{"ok":true,"token":7}"#),
            (Response::Done, r#"{"ok":true}"#),
            (
                Response::Failed {
                    exit: 3,
                    message: "changed".into(),
                },
                r#"{"ok":false,"exit":3,"message":"changed"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&response).unwrap(), text);
            assert_eq!(serde_json::from_str::<Response>(text).unwrap(), response);
        }
    }

    #[test]
    fn open_copy_swap_and_close_remove_the_private_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let prod = tmp.path().join("prod.db");
        let conn = rusqlite::Connection::open(&prod).unwrap();
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1);")
            .unwrap();
        rusqlite::Connection::open(tmp.path().join("new.db"))
            .unwrap()
            .execute_batch("CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2);")
            .unwrap();
        let at = |name: &str| tmp.path().join(name).display().to_string();
        let got = answers(&requests(&[
            Request::Copy {
                dest: at("early.db"),
            },
            Request::Open {
                path: at("prod.db"),
                swap: true,
            },
            Request::Copy {
                dest: at("copy.db"),
            },
            Request::Swap {
                src: at("new.db"),
                token: 1,
            },
            Request::Swap {
                src: at("copy.db"),
                token: 9,
            },
            Request::Close,
        ]));
        assert!(
            matches!(&got[0], Response::Failed { exit: 2, message } if message.contains("send `open` first")),
            "{got:?}"
        );
        let Response::Opened { dir } = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(got[2], Response::Token { token: 1 });
        assert_eq!(got[3], Response::Token { token: 2 });
        assert!(
            matches!(&got[4], Response::Failed { message, .. } if message.contains("unknown token")),
            "{got:?}"
        );
        assert_eq!(got[5], Response::Done);
        let b: i64 = conn.query_row("SELECT b FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 2, "swapped into the file the connection has open");
        assert!(
            Path::new(dir).starts_with(tmp.path()) && !Path::new(dir).exists(),
            "the private directory, beside production, went with the agent: {dir}"
        );
    }

    #[test]
    fn the_private_directory_is_beside_the_real_file_and_only_ours() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("data")).unwrap();
        rusqlite::Connection::open(tmp.path().join("data/real.db"))
            .unwrap()
            .execute_batch("CREATE TABLE t(a);")
            .unwrap();
        std::os::unix::fs::symlink("data/real.db", tmp.path().join("prod.db")).unwrap();
        let served =
            Served::open(&tmp.path().join("prod.db").display().to_string(), false).unwrap();
        let dir = served.dir.path().to_path_buf();
        let real = std::fs::canonicalize(tmp.path().join("data")).unwrap();
        assert_eq!(
            dir.parent(),
            Some(real.as_path()),
            "on the real file's file system"
        );
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(served);
        assert!(!dir.exists());
    }

    #[test]
    fn a_read_only_agent_refuses_to_swap_and_bad_lines_are_answered() {
        let tmp = tempfile::tempdir().unwrap();
        rusqlite::Connection::open(tmp.path().join("prod.db"))
            .unwrap()
            .execute_batch("CREATE TABLE t(a);")
            .unwrap();
        let at = |name: &str| tmp.path().join(name).display().to_string();
        let mut input = requests(&[
            Request::Open {
                path: at("prod.db"),
                swap: false,
            },
            Request::Copy { dest: at("c.db") },
            Request::Swap {
                src: at("c.db"),
                token: 1,
            },
        ]);
        input.push_str("{\"op\":\"format\"}\n");
        let got = answers(&input);
        assert!(
            matches!(&got[2], Response::Failed { exit: 3, message } if message.contains("read-only")),
            "{got:?}"
        );
        assert!(
            matches!(&got[3], Response::Failed { exit: 2, message } if message.contains("not a request")),
            "{got:?}"
        );
        assert_eq!(got.len(), 5, "the end of the input closes: {got:?}");
    }
}
