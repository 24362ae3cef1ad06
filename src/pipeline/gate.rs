//! The gate: what a real run without a terminal would need to complete (a
//! flag, a recipe line), or what stops it whatever the flags (a refusal).
//! `plan` predicts it from the plan; a dry run records it as it goes (see
//! [`crate::pipeline::prompt::Prompter::need`]); either ends with [`Stop`]
//! (exit 3) when the list is not empty, as the real run would.

use std::fmt;

use serde::Serialize;

use crate::diff::SchemaDiff;
use crate::pipeline::plan::Plan;

/// What kind of thing the real run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedKind {
    /// A command-line flag (`--yes`, `--allow-destructive`).
    Flag,
    /// A line in a recipe (a rename to declare).
    RecipeLine,
    /// A refusal: the data cannot be copied as it is; no flag helps.
    Refusal,
}

/// One thing the real run would need, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    pub kind: NeedKind,
    /// The flag, the recipe line, or the refusal itself.
    pub fix: String,
    /// The question or the loss it answers.
    pub reason: String,
}

impl Need {
    pub fn flag(flag: &str, reason: &str) -> Need {
        Need {
            kind: NeedKind::Flag,
            fix: flag.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn recipe_line(line: &str, reason: &str) -> Need {
        Need {
            kind: NeedKind::RecipeLine,
            fix: line.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn refusal(what: &str) -> Need {
        Need {
            kind: NeedKind::Refusal,
            fix: "change the source schema or map the data in a recipe".to_string(),
            reason: what.to_string(),
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NeedKind::Flag => write!(f, "{} ({})", self.fix, self.reason),
            NeedKind::RecipeLine => write!(f, "in a recipe: {} ({})", self.fix, self.reason),
            NeedKind::Refusal => write!(f, "refused: {} ({})", self.reason, self.fix),
        }
    }
}

/// The flags of the real run the gate speaks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub yes: bool,
    pub allow_destructive: bool,
    /// Standard input is a terminal: questions can be answered.
    pub interactive: bool,
}

/// What the stock recipe would need to complete on `plan` (the `plan`
/// command's prediction): nothing when there is no change; the refusals;
/// without a terminal, each rename to declare (unless
/// `--allow-destructive`), each loss (unless `--allow-destructive`) and the
/// confirmations (unless `--yes`).
pub fn predict(plan: &Plan, d: &SchemaDiff, flags: Flags) -> Vec<Need> {
    if d.is_empty() {
        return Vec::new();
    }
    let mut needs: Vec<Need> = plan.refusals.iter().map(|r| Need::refusal(r)).collect();
    if flags.interactive {
        return needs;
    }
    if !flags.allow_destructive {
        needs.extend(plan.renames.iter().map(|s| {
            Need::recipe_line(
                &s.recipe_line,
                &format!("{} {} looks renamed to {}", s.kind, s.old, s.new),
            )
        }));
        needs.extend(
            plan.data_loss
                .iter()
                .map(|l| Need::flag("--allow-destructive", l)),
        );
    }
    if !flags.yes {
        needs.push(Need::flag("--yes", "Build the migrated database?"));
        needs.push(Need::flag("--yes", "Deploy the migrated database?"));
    }
    needs
}

/// The real run would stop (exit 3): what it needs.
#[derive(Debug)]
pub struct Stop {
    pub needs: Vec<Need>,
    /// The command's own JSON fields to print beside the error object
    /// (`plan`'s changes), if any.
    pub detail: Option<serde_json::Value>,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the real run would stop here (exit 3) without a terminal; it needs:"
        )?;
        for n in &self.needs {
            writeln!(f, "  - {n}")?;
        }
        write!(f, "nothing was changed")
    }
}

impl std::error::Error for Stop {}

/// `Err(Stop)` when `needs` is not empty.
pub fn verdict(needs: Vec<Need>) -> anyhow::Result<()> {
    if needs.is_empty() {
        Ok(())
    } else {
        Err(Stop {
            needs,
            detail: None,
        }
        .into())
    }
}
