//! Which path a run takes — in place or rebuild — and why, decided when
//! the plan is reviewed (the review text, `plan.json`, `plan --format
//! json`) and decided the same way again before the copy.

use serde::Serialize;

use crate::diff::SchemaDiff;
use crate::pipeline::fastpath::{self, InPlace};
use crate::pipeline::plan::{Mappings, Plan};
use crate::schema::Schema;

/// The path and the reason for it, as the review and the plan JSON say it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Choice {
    /// `in_place` or `rebuild`.
    pub kind: &'static str,
    pub reason: String,
    /// The in-place statements, in the order they run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
    #[serde(skip)]
    pub in_place: Option<InPlace>,
}

impl Choice {
    fn rebuild(reason: String) -> Choice {
        Choice {
            kind: "rebuild",
            reason,
            statements: Vec::new(),
            in_place: None,
        }
    }

    /// The review's line: `Path: in place (…)` or `Path: rebuild (…)`.
    pub fn render(&self) -> String {
        let kind = if self.in_place.is_some() {
            "in place"
        } else {
            "rebuild"
        };
        format!("Path: {kind} ({})\n", self.reason)
    }
}

/// The path of a plan: `forced` names why the run rebuilds whatever the
/// change (`--rebuild`, production over SSH); otherwise
/// [`fastpath::decide`] says.
pub fn choose(
    prod: &Schema,
    source: &Schema,
    d: &SchemaDiff,
    plan: &Plan,
    mappings: &Mappings,
    forced: Option<&str>,
) -> Choice {
    if let Some(why) = forced {
        return Choice::rebuild(why.to_string());
    }
    match fastpath::decide(prod, source, d, plan, mappings) {
        Ok(fast) => Choice {
            kind: "in_place",
            reason: reason(&fast),
            statements: fast.statements.clone(),
            in_place: Some(fast),
        },
        Err(why) => Choice::rebuild(why),
    }
}

/// Why in place: what the statements do to rows.
fn reason(fast: &InPlace) -> String {
    let n = fast.statements.len();
    if fast.rewritten.is_empty() {
        format!("{n} statement(s), no row rewritten")
    } else {
        format!(
            "{n} statement(s); DROP COLUMN rewrites the rows of {}, validated by row count and column checksums",
            fast.rewritten.join(", ")
        )
    }
}

/// Why a run rebuilds whatever its change: `--rebuild`, or production over
/// SSH.
pub fn forced(rebuild: bool, remote: bool) -> Option<&'static str> {
    if rebuild {
        Some("--rebuild")
    } else if remote {
        Some("production is reached over SSH (in place is local only)")
    } else {
        None
    }
}

/// A plan as JSON with its path (`"path": {"kind", "reason", …}`).
pub fn plan_json(plan: &Plan, choice: &Choice) -> serde_json::Value {
    let mut json = serde_json::to_value(plan).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "path".into(),
            serde_json::to_value(choice).unwrap_or_default(),
        );
    }
    json
}
