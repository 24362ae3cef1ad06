//! How to reach a production over SSH, as settings: the
//! `ssh://user@host[:port]/absolute/path` address and the key, passphrase and
//! `known_hosts` options. Parsed and checked before anything connects (a
//! password in the URL is refused, and never shown: keys only); the
//! transport that uses them is `crate::target::ssh`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// Default TCP connect and session timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed `ssh://user@host[:port]/absolute/path` location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshUrl {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl SshUrl {
    /// `host:port`, with IPv6 hosts in brackets (`[::1]:22`); used in messages.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

const URL_FORM: &str = "ssh://user@host[:port]/absolute/path.sqlite3";

const NO_PASSWORD: &str = "an ssh:// URL must not hold a password (ssh://user:password@host/…): \
    sqlmorph authenticates with keys only — set [ssh] identity in sqlmorph.toml (its passphrase \
    from SQLMORPH_SSH_PASSPHRASE, or asked at a terminal) or load the key into ssh-agent";

/// Where the password of `user:password@host…` is in the text after
/// `ssh://`: a `:` before the first `@`, in a user part holding no `/` (a
/// bracketed IPv6 host never looks like one).
fn password_span(rest: &str) -> Option<std::ops::Range<usize>> {
    let at = rest.find('@')?;
    let colon = rest[..at].find(':')?;
    let user = &rest[..colon];
    (!user.contains('/') && !user.starts_with('[')).then_some(colon + 1..at)
}

/// `text` with the password of an `ssh://user:password@…` URL replaced by
/// `***`, for messages that show what the user gave.
pub fn redact(text: &str) -> String {
    match text.strip_prefix("ssh://").and_then(|rest| {
        password_span(rest).map(|r| (r.start + "ssh://".len())..(r.end + "ssh://".len()))
    }) {
        Some(span) => format!("{}***{}", &text[..span.start], &text[span.end..]),
        None => text.to_string(),
    }
}

impl FromStr for SshUrl {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let rest = s
            .strip_prefix("ssh://")
            .ok_or_else(|| anyhow!("not an ssh:// URL: {s:?} (expected {URL_FORM})"))?;
        if password_span(rest).is_some() {
            bail!("{NO_PASSWORD}");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => bail!("missing user in {s:?}: write it as {URL_FORM}"),
        };
        if user.is_empty() {
            bail!("missing user in {s:?}: write it as {URL_FORM}");
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| anyhow!("unclosed '[' in the host of {s:?}"))?;
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => bail!("unexpected {after:?} after the host in {s:?}"),
            };
            (&v6[..end], port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            bail!("missing host in {s:?}: write it as {URL_FORM}");
        }
        let port = match port {
            None => 22,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => {
                        bail!("bad port {p:?} in {s:?}: it must be a number from 1 to 65535")
                    }
                    Ok(n) => n,
                }
            }
            Some(p) if path.is_empty() && !p.is_empty() => bail!(
                "the remote path in {s:?} must be absolute: write it as {URL_FORM} \
                 (the scp form host:relative/path is not supported)"
            ),
            Some(p) => bail!("bad port {p:?} in {s:?}: it must be a number from 1 to 65535"),
        };
        if path.is_empty() {
            bail!("missing remote path in {s:?}: write it as {URL_FORM}");
        }
        if path == "/" {
            bail!("the remote path in {s:?} names a directory, not a database file");
        }
        Ok(SshUrl {
            user: user.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

impl fmt::Display for SshUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 22 {
            write!(f, "ssh://{}@{}{}", self.user, host, self.path)
        } else {
            write!(f, "ssh://{}@{}:{}{}", self.user, host, self.port, self.path)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Options

/// How to connect and authenticate.
#[derive(Clone)]
pub struct SshOptions {
    /// Private key file; `None` means ssh-agent, then `~/.ssh/id_{ed25519,ecdsa,rsa}`.
    pub identity: Option<PathBuf>,
    /// Passphrase for the private key, if it is encrypted.
    pub passphrase: Option<String>,
    /// OpenSSH known_hosts file to check the server's key against.
    pub known_hosts: PathBuf,
    /// Add an unknown host key to `known_hosts` instead of refusing it (never a changed one).
    pub accept_new_host_key: bool,
    /// TCP connect timeout, also used as the timeout of each blocking SSH operation.
    pub connect_timeout: Duration,
}

impl Default for SshOptions {
    /// No identity file, `$HOME/.ssh/known_hosts`, new keys refused, 30 s timeout.
    fn default() -> Self {
        SshOptions {
            identity: None,
            passphrase: None,
            known_hosts: home_dir().join(".ssh").join("known_hosts"),
            accept_new_host_key: false,
            connect_timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshOptions")
            .field("identity", &self.identity)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("known_hosts", &self.known_hosts)
            .field("accept_new_host_key", &self.accept_new_host_key)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The home directory (`$HOME`, else the account's; `.` when there is none).
pub fn home_dir() -> PathBuf {
    home::home_dir().unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_refused_without_being_shown() {
        for url in [
            "ssh://u:pw-secret@h/p.sqlite3",
            "ssh://u:pw-secret@h",
            "ssh://u:pw/secret@h:22/p.sqlite3",
        ] {
            let err = url.parse::<SshUrl>().unwrap_err().to_string();
            assert!(err.contains("must not hold a password"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        assert_eq!(
            redact("ssh://u:pw-secret@h/p.sqlite3"),
            "ssh://u:***@h/p.sqlite3"
        );
    }

    #[test]
    fn urls_without_a_password_are_kept() {
        for url in ["ssh://u@h:2222/a@b.sqlite3", "ssh://u@[::1]:22/p.sqlite3"] {
            assert!(url.parse::<SshUrl>().is_ok(), "{url}");
            assert_eq!(redact(url), url);
        }
    }
}
