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

/// What `plan` prints on standard output: the text, or the JSON when the
/// run would complete (when it would stop, the JSON is the error object,
/// which `main` prints with [`verdict`]'s error).
pub fn render(p: &Preview, json: bool) -> anyhow::Result<String> {
    match (json, p.needs.is_empty()) {
        (false, _) => Ok(text(p)),
        (true, true) => crate::output::json::success("plan", &body(p)),
        (true, false) => Ok(String::new()),
    }
}

/// `plan`'s exit code: 0, or 1 with `--exit-code` when changes are pending;
/// a [`Stop`] (exit 3) when the run would stop, with the JSON fields to
/// print beside the error object.
pub fn verdict(p: &Preview, json: bool, exit_code: bool) -> anyhow::Result<u8> {
    if !p.needs.is_empty() {
        return Err(Stop {
            needs: p.needs.clone(),
            detail: json.then(|| body(p)),
        }
        .into());
    }
    Ok(u8::from(exit_code && !p.diff.is_empty()))
}
