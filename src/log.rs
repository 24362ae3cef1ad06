//! A run's log: every line goes to `log.txt` (created new, mode 0600) with a
//! timestamp, always as plain text, and to the console as `--quiet` and
//! `--verbose` allow.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::term::Verbosity;

/// A run's log: every line goes to `log.txt` with a timestamp and to the
/// console (standard output, or standard error in JSON mode).
pub struct Log {
    file: Option<File>,
    to_stderr: bool,
}

impl Log {
    pub fn open(path: &Path, to_stderr: bool) -> Result<Log> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(crate::private::FILE_MODE)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Log {
            file: Some(file),
            to_stderr,
        })
    }

    /// A log that only prints (commands that leave no run directory).
    pub fn console(to_stderr: bool) -> Log {
        Log {
            file: None,
            to_stderr,
        }
    }

    /// Writes a line to the console (unless `--quiet`) and, timestamped, to
    /// the log file.
    pub fn line(&mut self, text: &str) {
        self.at(Verbosity::Normal, text);
    }

    /// Writes a detail to the log file, and to the console with `--verbose`.
    pub fn detail(&mut self, text: &str) {
        self.at(Verbosity::Verbose, text);
    }

    /// Writes the run's last line: to the console even with `--quiet`.
    pub fn last(&mut self, text: &str) {
        self.at(Verbosity::Quiet, text);
    }

    fn at(&mut self, level: Verbosity, text: &str) {
        self.quiet(text);
        if crate::term::verbosity() < level {
            return;
        }
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// Writes to the log file only, without escape codes.
    pub fn quiet(&mut self, text: &str) {
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        if let Some(file) = &mut self.file {
            for l in crate::term::plain(text).lines() {
                let _ = writeln!(file, "{stamp} {l}");
            }
        }
    }
}
