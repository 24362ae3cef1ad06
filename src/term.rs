//! The terminal conventions of the whole process, set once from the global
//! flags: the colour choice (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`) and
//! how much the console is told (`--quiet`, `--verbose`).

use std::sync::atomic::{AtomicU8, Ordering};

/// `--color`: auto follows the stream and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

/// How much goes to the console (the log file always gets everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors and the final line only.
    Quiet = 0,
    Normal = 1,
    /// Also the SQL the copy runs and the time of each step.
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);
static COLOR: AtomicU8 = AtomicU8::new(ColorWhen::Auto as u8);

/// Applies the global flags; called once, before any output.
pub fn set(color: ColorWhen, verbosity: Verbosity) {
    COLOR.store(color as u8, Ordering::Relaxed);
    VERBOSITY.store(verbosity as u8, Ordering::Relaxed);
}

/// The console's verbosity.
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        2 => Verbosity::Verbose,
        _ => Verbosity::Normal,
    }
}

/// Whether a stream gets colour: `--color`, else `NO_COLOR` (never),
/// `CLICOLOR_FORCE` (always), else only at a terminal that is not `dumb`.
pub fn colors(stream: &impl std::io::IsTerminal) -> bool {
    match COLOR.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => auto_colors(stream.is_terminal()),
    }
}

/// The environment's say (anstyle-query reads the variables), where
/// `CLICOLOR_FORCE=0` does not force.
fn auto_colors(is_terminal: bool) -> bool {
    let forced = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
    if anstyle_query::no_color() {
        false
    } else if forced {
        true
    } else if anstyle_query::clicolor() == Some(false) {
        false
    } else {
        is_terminal && anstyle_query::term_supports_color()
    }
}

/// Removes ANSI escape sequences (for the log file).
pub fn plain(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}
