//! Confirmations. On a terminal the user answers; without one, nothing is
//! ever assumed: `--yes` confirms what loses no data, `--allow-destructive`
//! (with `--yes`) what does, and anything else stops the run with exit 3
//! naming the flag that would allow it.
//!
//! A dry run asks nothing either: without a terminal, each question the real
//! run could not answer is recorded as a [`Need`] instead (the flag or the
//! recipe line), so the dry run ends as the real run would (see `gate`).

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::error::aborted;
pub use crate::pipeline::gate::Need;

/// How questions get answered.
#[derive(Debug, Clone)]
pub struct Prompter {
    /// Standard input is a terminal: ask.
    pub interactive: bool,
    /// `--yes`
    pub yes: bool,
    /// `--allow-destructive`
    pub allow_destructive: bool,
    /// `--dry-run`: nothing will change, so confirmations pass.
    pub dry_run: bool,
    /// What the real run would need that a dry run without a terminal
    /// recorded instead of asking (shared by the clones of this prompter).
    pub needs: std::sync::Arc<std::sync::Mutex<Vec<Need>>>,
}

impl Prompter {
    /// Detects the terminal; flags as given.
    pub fn new(yes: bool, allow_destructive: bool, dry_run: bool) -> Prompter {
        Prompter {
            interactive: std::io::stdin().is_terminal(),
            yes,
            allow_destructive,
            dry_run,
            needs: std::sync::Arc::default(),
        }
    }

    /// Records what the real run would need (a dry run without a terminal).
    pub fn need(&self, need: Need) {
        if let Ok(mut needs) = self.needs.lock() {
            if !needs.contains(&need) {
                needs.push(need);
            }
        }
    }

    /// What was recorded by [`Prompter::need`], in order.
    pub fn needs(&self) -> Vec<Need> {
        self.needs.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// True when the real run would stop at a question it cannot ask: a dry
    /// run without a terminal (it records the need instead).
    fn gating(&self) -> bool {
        self.dry_run && !self.interactive
    }

    fn ask(question: &str) -> Result<String> {
        eprint!("{question} ");
        std::io::stderr().flush()?;
        match crate::interrupt::read_line()? {
            Some(line) => Ok(line.trim().to_string()),
            None => Err(aborted(format!(
                "{question}: no answer (end of input); nothing was changed"
            ))),
        }
    }

    /// True when a question that loses no data is answered without asking
    /// (`--yes`, a dry run); an error when it must be asked and there is no
    /// terminal; false when the user is to be asked.
    fn answered(&self, question: &str) -> Result<bool> {
        if self.yes {
            return Ok(true);
        }
        if self.gating() {
            self.need(Need::flag("--yes", question));
            return Ok(true);
        }
        if self.dry_run {
            return Ok(true);
        }
        if !self.interactive {
            return Err(aborted(format!(
                "{question} — needs confirmation, and there is no terminal to ask: rerun with --yes"
            )));
        }
        Ok(false)
    }

    /// A yes/no question that loses no data. Declining aborts (exit 3).
    pub fn confirm(&self, question: &str) -> Result<()> {
        if self.answered(question)? {
            return Ok(());
        }
        let answer = Self::ask(&format!("{question} [y/N]"))?;
        if matches!(answer.to_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(aborted("declined; nothing was changed"))
        }
    }

    /// The deployment question: the user must type `yes` in full.
    pub fn confirm_typed(&self, question: &str) -> Result<()> {
        if self.answered(question)? {
            return Ok(());
        }
        let answer = Self::ask(&format!("{question} Type 'yes' to go on:"))?;
        if answer == "yes" {
            Ok(())
        } else {
            Err(aborted(format!(
                "answer was {answer:?}, not 'yes'; nothing was changed"
            )))
        }
    }

    /// Approval of changes that lose data (listed one per line).
    pub fn approve_loss(&self, losses: &[String]) -> Result<()> {
        if losses.is_empty() || self.allow_destructive {
            return Ok(());
        }
        if self.gating() {
            for loss in losses {
                self.need(Need::flag("--allow-destructive", loss));
            }
            return Ok(());
        }
        if self.dry_run {
            return Ok(());
        }
        let list = losses
            .iter()
            .map(|l| format!("  - {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        if !self.interactive {
            return Err(aborted(format!(
                "this migration loses data:\n{list}\nrerun with --yes --allow-destructive to accept, \
                 or declare each loss in a recipe (drop_table / drop_column), or keep the data with a mapping"
            )));
        }
        eprintln!("This migration loses data:\n{list}");
        let answer = Self::ask("Lose this data? Type 'yes' to accept:")?;
        if answer == "yes" {
            Ok(())
        } else {
            Err(aborted("data loss declined; nothing was changed"))
        }
    }

    /// A choice among single-letter options (e.g. `y`, `n`, `s`). Without a
    /// terminal this is an error naming `how_to_decide`.
    pub fn choose(&self, question: &str, options: &[char], how_to_decide: &str) -> Result<char> {
        if !self.interactive {
            return Err(aborted(format!("{question}\n{how_to_decide}")));
        }
        let letters: String = options
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("/");
        loop {
            let answer = Self::ask(&format!("{question} [{letters}]"))?;
            if let Some(c) = answer.chars().next().map(|c| c.to_ascii_lowercase()) {
                if options.contains(&c) {
                    return Ok(c);
                }
            }
        }
    }
}
