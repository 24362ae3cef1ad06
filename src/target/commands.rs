//! The commands run around the swap (`stop`, `restart`, `health_check`),
//! where production lives: here through `sh -c` for a local file (over SSH,
//! `remote` runs them on each host).

use std::process::Command;

use anyhow::{Context, Result};

use crate::log::Log;

/// Runs a configured command through `sh -c`; its output goes to the log.
pub fn run_command(what: &str, command: &str, log: &mut Log) -> Result<()> {
    log.line(&format!("  {what}: {command}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .with_context(|| format!("starting the {what} command"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.trim().is_empty() {
        log.quiet(text.trim_end());
    }
    if out.status.success() {
        Ok(())
    } else {
        anyhow::bail!(
            "the {what} command `{command}` failed ({}): {}",
            out.status,
            text.trim()
        )
    }
}

pub fn given(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.trim().is_empty())
}
