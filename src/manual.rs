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

/// The command that parses `args`: clap's own help and errors follow their
/// `--color` too (`NO_COLOR` and `CLICOLOR_FORCE` clap reads itself).
pub fn command_for(args: &[String]) -> clap::Command {
    let choice = match color_flag(args) {
        Some("always") => clap::ColorChoice::Always,
        Some("never") => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    };
    command().color(choice)
}

/// The value of the last `--color WHEN` or `--color=WHEN` in `args`.
fn color_flag(args: &[String]) -> Option<&str> {
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(v) = arg.strip_prefix("--color=") {
            found = Some(v);
        } else if arg == "--color" {
            found = args.get(i + 1).map(String::as_str);
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::color_flag;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_last_color_flag_counts_in_either_spelling() {
        assert_eq!(color_flag(&args(&["sqlmorph", "run"])), None);
        assert_eq!(color_flag(&args(&["x", "--color", "never"])), Some("never"));
        assert_eq!(
            color_flag(&args(&["x", "--color=never", "--color=always"])),
            Some("always")
        );
    }
}
