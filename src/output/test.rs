//! What `sqlmorph test` prints: a line per case (and why it failed), the
//! JSON object (`--format json`) and the JUnit XML (`--junit FILE`).

use anyhow::Result;

use crate::pipeline::testcase::Case;
use crate::style::Style;

/// One line per case, the failure's message, place and diagnostic under
/// it, then the totals.
pub fn text(cases: &[Case], style: Style) -> String {
    let mut out = String::new();
    for c in cases {
        let mark = if c.passed {
            style.green("PASS")
        } else {
            style.red("FAIL")
        };
        out.push_str(&format!(
            "{mark}  {}  on {}  ({:.2}s){}\n",
            c.recipe,
            c.fixture,
            c.seconds,
            if c.passed && c.test_bodies == 0 {
                "  (no assertions: the migration ran and validated)"
            } else {
                ""
            }
        ));
        if let Some(message) = &c.message {
            out.push_str(&format!("      {message}\n"));
        }
        // The diagnostic's first line is the message (or its end).
        for line in c.detail.iter().flat_map(|d| d.lines().skip(1)) {
            out.push_str(&format!("      {line}\n"));
        }
        if let Some(at) = &c.location {
            out.push_str(&format!("      failing call: {at}\n"));
        }
    }
    let failed = cases.iter().filter(|c| !c.passed).count();
    let summary = format!(
        "{} passed, {failed} failed ({} case(s))",
        cases.len() - failed,
        cases.len()
    );
    out.push_str(&if failed == 0 {
        style.green(&summary)
    } else {
        style.red(&summary)
    });
    out.push('\n');
    out
}

/// The JSON of a test run, in the shared envelope (docs/json.md).
pub fn json(cases: &[Case]) -> Result<String> {
    let failed = cases.iter().filter(|c| !c.passed).count();
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "recipe": c.recipe,
                "fixture": c.fixture,
                "outcome": if c.passed { "passed" } else { "failed" },
                "message": c.message,
                "location": c.location,
                "detail": c.detail,
                "test_bodies": c.test_bodies,
                "seconds": c.seconds,
            })
        })
        .collect();
    super::json::success(
        "test",
        &serde_json::json!({
            "passed": failed == 0,
            "total": cases.len(),
            "failed": failed,
            "cases": list,
        }),
    )
}

/// JUnit XML: a `<testsuite>` per recipe, a `<testcase>` per fixture, a
/// `<failure>` with the message and diagnostic when it failed.
pub fn junit(cases: &[Case]) -> String {
    let failed = cases.iter().filter(|c| !c.passed).count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sqlmorph\" tests=\"{}\" failures=\"{failed}\" time=\"{total:.3}\">\n",
        cases.len()
    );
    let mut recipes: Vec<&str> = cases.iter().map(|c| c.recipe.as_str()).collect();
    recipes.dedup();
    for recipe in recipes {
        out.push_str(&suite(recipe, cases.iter().filter(|c| c.recipe == recipe)));
    }
    out.push_str("</testsuites>\n");
    out
}

fn suite<'a>(recipe: &str, cases: impl Iterator<Item = &'a Case>) -> String {
    let cases: Vec<&Case> = cases.collect();
    let failed = cases.iter().filter(|c| !c.passed).count();
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{time:.3}\">\n",
        escape(recipe),
        cases.len()
    );
    for c in cases {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(recipe),
            escape(&c.fixture),
            c.seconds
        ));
        if c.passed {
            out.push_str("/>\n");
            continue;
        }
        let message = match (&c.message, &c.location) {
            (Some(m), Some(l)) => format!("{m} ({l})"),
            (Some(m), None) => m.clone(),
            _ => "failed".into(),
        };
        out.push_str(&format!(
            ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
            escape(&message),
            escape(c.detail.as_deref().unwrap_or_default()).replace("&#10;", "\n")
        ));
    }
    out.push_str("  </testsuite>\n");
    out
}

/// Text made safe for XML attributes and content (characters XML 1.0
/// cannot hold become U+FFFD).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"'\u{1}"),
            "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}"
        );
    }
}
