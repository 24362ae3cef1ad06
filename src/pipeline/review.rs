//! The review: a plan's schema changes and data impact, per table, as the
//! user reads it before approving.

use crate::diff::{self, SchemaDiff};
use crate::pipeline::plan::{self, ColumnSource, Plan};
use crate::style::Style;

/// The review text of a plan.
pub fn render_review(plan: &Plan, d: &SchemaDiff, style: Style) -> String {
    let mut out = String::new();
    out.push_str(&style.bold("Schema changes (production -> source):"));
    out.push('\n');
    out.push_str(&diff::render_text(d, style));
    out.push('\n');
    out.push_str(&style.bold("Data:"));
    out.push('\n');
    for tp in &plan.tables {
        let mut parts = Vec::new();
        match &tp.from {
            None => parts.push("new table".to_string()),
            Some(from) => {
                let verb = if tp.is_identity() {
                    "copied as is"
                } else {
                    "copied"
                };
                if from.eq_ignore_ascii_case(&tp.table) {
                    parts.push(format!("{} row(s) {verb}", tp.rows));
                } else {
                    parts.push(format!("{} row(s) from {from}", tp.rows));
                }
                for c in &tp.columns {
                    match &c.source {
                        ColumnSource::Default { default } => parts.push(format!(
                            "+ {} ({})",
                            c.name,
                            default
                                .as_deref()
                                .map_or("NULL".to_string(), |d| format!("DEFAULT {d}"))
                        )),
                        ColumnSource::Fill { sql } => parts.push(format!("+ {} = {sql}", c.name)),
                        ColumnSource::Expr { sql } => {
                            parts.push(format!("~ {} = {sql}{}", c.name, conv_text(c)))
                        }
                        ColumnSource::Convert {
                            from,
                            from_type,
                            to_type,
                        } => parts.push(format!(
                            "~ {}{} {} -> {}{}",
                            c.name,
                            if from.eq_ignore_ascii_case(&c.name) {
                                String::new()
                            } else {
                                format!(" (from {from})")
                            },
                            type_text(from_type),
                            type_text(to_type),
                            conv_text(c)
                        )),
                        ColumnSource::Copy { from } if !from.eq_ignore_ascii_case(&c.name) => {
                            parts.push(format!("{} <- {from}", c.name));
                        }
                        _ => {}
                    }
                }
                for dcol in &tp.dropped {
                    parts.push(format!(
                        "- {} ({} value(s) lost{})",
                        dcol.name,
                        dcol.values,
                        if dcol.approved {
                            ", approved by recipe"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        out.push_str(&format!("  {:<24} {}\n", tp.table, parts.join("; ")));
    }
    for t in &plan.dropped_tables {
        out.push_str(&format!(
            "  {:<24} {}\n",
            t.table,
            style.red(&format!(
                "DROPPED: {} row(s) lost{}",
                t.rows,
                if t.approved {
                    " (approved by recipe)"
                } else {
                    ""
                }
            ))
        ));
    }
    for (title, list) in [
        ("Refused:", &plan.refusals),
        ("Loses data:", &plan.data_loss),
        ("Notes:", &plan.notes),
    ] {
        if !list.is_empty() {
            out.push_str(&style.bold(title));
            out.push('\n');
            for l in list {
                out.push_str(&format!("  - {l}\n"));
            }
        }
    }
    out
}

/// A declared type as the review shows it (`(none)` for no type, as the
/// schema changes say it).
fn type_text(decl: &str) -> &str {
    if decl.is_empty() { "(none)" } else { decl }
}

fn conv_text(c: &plan::ColumnPlan) -> String {
    c.conversion.as_ref().map_or(String::new(), |v| {
        let mut s = format!(": {} value(s), {} converted", v.values, v.converted);
        if v.lossy > 0 {
            s.push_str(&format!(", {} changed", v.lossy));
        }
        if v.nulled > 0 {
            s.push_str(&format!(", {} become NULL", v.nulled));
        }
        if v.unfit > 0 {
            s.push_str(&format!(", {} kept as they are", v.unfit));
        }
        if v.rejected > 0 {
            s.push_str(&format!(", {} rejected", v.rejected));
        }
        s
    })
}
