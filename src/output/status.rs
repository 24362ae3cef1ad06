//! `status` and `history` as text (their JSON is the `Status` and
//! `Deploy` structs in the envelope; docs/json.md).

use crate::pipeline::backup::BackupInfo;
use crate::pipeline::status::{Deploy, Status};
use crate::style::Style;

/// How many deploys `status` shows (`history` shows them all).
pub const RECENT: usize = 5;

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// One deploy on one line.
pub fn deploy_line(d: &Deploy) -> String {
    format!(
        "  #{} {}  by {}  recipe {} (sha256 {})  schema {} -> {}  backup {}\n",
        d.id,
        d.deployed_at,
        d.who.as_deref().unwrap_or("(not recorded)"),
        d.recipe,
        short(&d.recipe_sha256),
        short(&d.schema_before),
        short(&d.schema_after),
        d.backup.as_deref().unwrap_or("(none)")
    )
}

/// One backup on one line (as `backups` prints it).
pub fn backup_line(b: &BackupInfo) -> String {
    format!(
        "{}  {:>12} bytes  schema {}  {}\n",
        b.time,
        b.bytes,
        b.schema_hash.as_deref().unwrap_or("(unreadable)"),
        b.path.display()
    )
}

fn schema_part(s: &Status) -> String {
    let head = format!(
        "Production: {} (schema {})\n",
        s.production,
        short(&s.schema_hash)
    );
    let Some(source) = &s.source else {
        return head + "Source: none configured (give --source or set `source`): drift unknown\n";
    };
    if s.changes.is_empty() {
        return format!("{head}Source: {}: in sync\n", source.display());
    }
    let d = crate::diff::SchemaDiff {
        changes: s.changes.clone(),
    };
    format!(
        "{head}Source: {}: DRIFT, {} change(s) from production to the source (`sqlmorph plan` shows the migration):\n{}",
        source.display(),
        s.changes.len(),
        crate::diff::render_text(&d, Style::stdout())
    )
}

/// Deploys, newest last; all of them or the last `limit`.
pub fn deploys(list: &[Deploy], limit: Option<usize>) -> String {
    if list.is_empty() {
        return "Deploys: none recorded in _sqlmorph_history\n".to_string();
    }
    let shown = limit.map_or(list.len(), |n| n.min(list.len()));
    let mut out = if shown < list.len() {
        format!(
            "Deploys: {} recorded, the last {shown} (`sqlmorph history` lists all):\n",
            list.len()
        )
    } else {
        format!("Deploys: {} recorded:\n", list.len())
    };
    for d in &list[list.len() - shown..] {
        out.push_str(&deploy_line(d));
    }
    out
}

/// `status` as text.
pub fn text(s: &Status) -> String {
    let mut out = schema_part(s);
    out.push_str(&deploys(&s.deploys, Some(RECENT)));
    if s.backups.is_empty() {
        out.push_str(&format!("Backups: none in {}\n", s.backup_dir.display()));
    } else {
        out.push_str(&format!(
            "Backups: {} in {}, newest first:\n",
            s.backups.len(),
            s.backup_dir.display()
        ));
        for b in &s.backups {
            out.push_str("  ");
            out.push_str(&backup_line(b));
        }
    }
    out
}
