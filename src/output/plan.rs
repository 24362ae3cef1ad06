//! `plan`'s text and JSON.

use serde_json::{Value, json};

use crate::pipeline::gate::Stop;
use crate::pipeline::path;
use crate::pipeline::preview::Preview;
use crate::style::Style;

/// The review and the path; what the run would need, if anything.
pub fn text(p: &Preview) -> String {
    if p.diff.is_empty() {
        return "No migration needed: production already matches the source.\n".to_string();
    }
    let mut out = crate::pipeline::review::render_review(&p.plan, &p.diff, Style::stdout())
        + p.choice.render().as_str();
    if p.needs.is_empty() {
        out.push_str("Gate: the run with these flags would complete.\n");
    } else {
        out.push_str("Gate: the run with these flags would stop (exit 3); it needs:\n");
        for n in &p.needs {
            out.push_str(&format!("  - {n}\n"));
        }
    }
    out
}

/// `plan`'s fields (docs/json.md).
pub fn body(p: &Preview) -> Value {
    json!({
        "identical": p.diff.is_empty(),
        "would_complete": p.needs.is_empty(),
        "changes": p.diff.changes,
        "plan": path::plan_json(&p.plan, &p.choice),
        "needs": p.needs,
    })
}

/// Prints `plan`'s output and returns its exit code: 0, or 1 with
/// `--exit-code` when changes are pending; a [`Stop`] (exit 3) when the run
/// would stop, after the text (or with the JSON fields beside the error).
pub fn emit(p: &Preview, json: bool, exit_code: bool) -> anyhow::Result<u8> {
    if !p.needs.is_empty() {
        if !json {
            crate::cli::print(&text(p))?;
        }
        return Err(Stop {
            needs: p.needs.clone(),
            detail: json.then(|| body(p)),
        }
        .into());
    }
    let out = if json {
        crate::output::json::success("plan", &body(p))?
    } else {
        text(p)
    };
    crate::cli::print(&out)?;
    Ok(u8::from(exit_code && !p.diff.is_empty()))
}
