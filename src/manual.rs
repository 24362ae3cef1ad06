//! Shell completions and man pages, generated from the clap definitions
//! that parse the command line (`sqlmorph completions`, `sqlmorph man`).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// The clap command, with the version naming the bundled SQLite.
pub fn command() -> clap::Command {
    Cli::command().version(version())
}

/// "0.1.0 (SQLite 3.x.y)": the crate's version and the bundled SQLite's.
pub fn version() -> String {
    format!(
        "{} (SQLite {})",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    )
}

/// Prints the completion script for `shell` on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "sqlmorph", &mut out);
    crate::cli::print(&String::from_utf8_lossy(&out))?;
    Ok(0)
}

/// Prints the man page, or writes every command's page into `dir`.
pub fn man(dir: Option<&Path>) -> Result<u8> {
    let cmd = command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            crate::cli::print(&String::from_utf8_lossy(&out))?;
        }
    }
    Ok(0)
}
