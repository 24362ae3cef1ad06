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

use crate::error::declined;
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
            None => Err(declined(format!(
                "{question}: no answer (end of input); nothing was changed"
            ))),
        }
    }

    /// Asks until the reply is one `reply` accepts; after any other, says
    /// what the valid replies are (`choices`) and asks again.
    fn ask_until<T>(question: &str, choices: &str, reply: impl Fn(&str) -> Option<T>) -> Result<T> {
        loop {
            let answer = Self::ask(question)?;
            if let Some(value) = reply(&answer.to_lowercase()) {
                return Ok(value);
            }
            let sep = if choices.contains('\n') { ":\n" } else { " " };
            eprintln!("  {answer:?} is not an answer here.{sep}{choices}");
        }
    }

    /// A `[y/N]` reply: `y`/`yes` go on; `n`/`no`/Enter stop.
    fn yes_no(answer: &str) -> Option<bool> {
        match answer {
            "y" | "yes" => Some(true),
            "" | "n" | "no" => Some(false),
            _ => None,
        }
    }

    /// A reply where data is lost: only `yes` in full goes on; `n`/`no` stop.
    fn typed_yes(answer: &str) -> Option<bool> {
        match answer {
            "yes" => Some(true),
            "n" | "no" => Some(false),
            _ => None,
        }
    }

    /// A `[y/N]` question at the terminal; declining aborts (exit 3).
    fn ask_yes_no(question: &str) -> Result<()> {
        let go = Self::ask_until(
            &format!("{question} [y/N]"),
            "Type y (yes) to go on, or n (no, the default) to stop.",
            Self::yes_no,
        )?;
        if go {
            Ok(())
        } else {
            Err(declined("declined; nothing was changed"))
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
            return Err(declined(format!(
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
        Self::ask_yes_no(question)
    }

    /// A question whose `yes` loses data (a rollback): `yes` must be typed
    /// in full; `y` and typos ask again.
    pub fn confirm_typed(&self, question: &str) -> Result<()> {
        if self.answered(question)? {
            return Ok(());
        }
        let go = Self::ask_until(
            &format!("{question} Type 'yes' to go on, or 'no' to stop:"),
            "Type yes in full to go on, or no to stop.",
            Self::typed_yes,
        )?;
        if go {
            Ok(())
        } else {
            Err(declined("declined; nothing was changed"))
        }
    }

    /// The one question after the review. At a terminal it covers the whole
    /// run — build, validation and deployment — and returns true: `yes` in
    /// full where `losses` (listed, one per line) are not approved by a flag,
    /// `[y/N]` otherwise (`run`, e.g. "Build, validate and deploy …?").
    /// Without a terminal, or with flags, it is the loss approval and then
    /// `build` (a yes/no) as the gate predicts, and returns false: the
    /// deployment question is answered on its own.
    pub fn approve_run(&self, losses: &[String], build: &str, run: &str) -> Result<bool> {
        let unapproved = !losses.is_empty() && !self.allow_destructive;
        if unapproved && self.interactive && !self.dry_run {
            Self::ask_loss(losses, run)?;
            return Ok(true);
        }
        self.approve_loss(losses)?;
        if self.answered(build)? {
            return Ok(false);
        }
        Self::ask_yes_no(run)?;
        Ok(true)
    }

    /// The deployment question, unless [`Prompter::approve_run`] already
    /// asked it (`approved`): `y` goes on, since nothing is lost that was
    /// not approved before.
    pub fn confirm_deploy(&self, question: &str, approved: bool) -> Result<()> {
        if approved {
            return Ok(());
        }
        self.confirm(question)
    }

    /// At a terminal: the data `losses` names is lost only on a typed `yes`.
    fn ask_loss(losses: &[String], run: &str) -> Result<()> {
        eprintln!("This migration loses data:\n{}", Self::list(losses));
        let what = if losses.len() == 1 {
            "the data listed above".to_string()
        } else {
            format!("the {} kinds of data listed above", losses.len())
        };
        let go = Self::ask_until(
            &format!(
                "{}, losing {what}? Type 'yes' to accept, or 'no' to stop:",
                run.trim_end_matches('?')
            ),
            "Data is lost: type yes in full to accept, or no to stop.",
            Self::typed_yes,
        )?;
        if go {
            Ok(())
        } else {
            Err(declined("data loss declined; nothing was changed"))
        }
    }

    fn list(items: &[String]) -> String {
        items
            .iter()
            .map(|l| format!("  - {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Approval of changes that lose data without a terminal (or by flag):
    /// `--allow-destructive`, a dry run (recording the need), or exit 3.
    fn approve_loss(&self, losses: &[String]) -> Result<()> {
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
        Err(declined(format!(
            "this migration loses data:\n{}\nrerun with --yes --allow-destructive to accept, \
             or declare each loss in a recipe (drop_table / drop_column), or keep the data with a mapping",
            Self::list(losses)
        )))
    }

    /// A choice among single-letter options, each explained in `choices`
    /// ("y = rename …; n = …"): re-asked, with the explanation, on any other
    /// reply. Without a terminal this is an error naming `how_to_decide`.
    pub fn choose(
        &self,
        question: &str,
        options: &[char],
        choices: &str,
        how_to_decide: &str,
    ) -> Result<char> {
        if !self.interactive {
            return Err(declined(format!("{question}\n{how_to_decide}")));
        }
        let letters: String = options
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("/");
        eprintln!("{choices}");
        Self::ask_until(&format!("{question} [{letters}]"), choices, |answer| {
            Self::letter(answer).filter(|c| options.contains(c))
        })
    }

    /// The option a reply names: one letter, or `yes`, `no`, `skip` in full.
    fn letter(answer: &str) -> Option<char> {
        match answer {
            "yes" => Some('y'),
            "no" => Some('n'),
            "skip" => Some('s'),
            _ => {
                let mut chars = answer.chars();
                chars.next().filter(|_| chars.next().is_none())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Prompter;

    #[test]
    fn y_n_questions_take_y_yes_n_no_and_enter_only() {
        assert_eq!(Prompter::yes_no("y"), Some(true));
        assert_eq!(Prompter::yes_no("yes"), Some(true));
        assert_eq!(Prompter::yes_no(""), Some(false));
        assert_eq!(Prompter::yes_no("no"), Some(false));
        assert_eq!(Prompter::yes_no("maybe"), None);
    }

    #[test]
    fn where_data_is_lost_only_yes_in_full_goes_on() {
        assert_eq!(Prompter::typed_yes("yes"), Some(true));
        assert_eq!(Prompter::typed_yes("n"), Some(false));
        assert_eq!(Prompter::typed_yes("y"), None);
        assert_eq!(Prompter::typed_yes(""), None);
    }

    #[test]
    fn a_choice_is_one_letter_or_its_word() {
        assert_eq!(Prompter::letter("s"), Some('s'));
        assert_eq!(Prompter::letter("skip"), Some('s'));
        assert_eq!(Prompter::letter("yes"), Some('y'));
        assert_eq!(Prompter::letter("xy"), None);
        assert_eq!(Prompter::letter(""), None);
    }
}
