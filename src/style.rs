//! Terminal colour: painting text when the stream gets colour (decided by
//! `term::colors`: `--color`, `NO_COLOR`, `CLICOLOR_FORCE`, a terminal).

/// Whether to paint output with ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// No colour at all.
    pub const PLAIN: Style = Style { color: false };

    /// Colour for standard output, if it is a terminal and the user allows it.
    pub fn stdout() -> Style {
        Style {
            color: crate::term::colors(&std::io::stdout()),
        }
    }

    /// Colour for standard error, likewise.
    pub fn stderr() -> Style {
        Style {
            color: crate::term::colors(&std::io::stderr()),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}
