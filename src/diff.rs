//! Semantic schema comparison.
//!
//! Two schemas are compared object by object (tables by case-insensitive
//! name, as SQLite resolves them). Formatting never counts: statements are
//! compared in normalized form, and facts (columns, keys, constraints) are
//! compared from the model. A table whose normalized CREATE text differs is
//! always reported, even when no listed fact explains the difference, so a
//! real change is never hidden.

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use crate::schema::{Column, Schema, Table};
use crate::sqltext::{self, Token};
use crate::style::Style;

/// What happened to one object.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    TableAdded,
    TableRemoved,
    TableChanged,
    ColumnAdded,
    ColumnRemoved,
    ColumnChanged,
    IndexAdded,
    IndexRemoved,
    IndexChanged,
    ViewAdded,
    ViewRemoved,
    ViewChanged,
    TriggerAdded,
    TriggerRemoved,
    TriggerChanged,
    UserVersionChanged,
    ApplicationIdChanged,
    PageSizeChanged,
    AutoVacuumChanged,
}

impl ChangeKind {
    /// The `snake_case` name used in JSON and in recipes.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::TableAdded => "table_added",
            ChangeKind::TableRemoved => "table_removed",
            ChangeKind::TableChanged => "table_changed",
            ChangeKind::ColumnAdded => "column_added",
            ChangeKind::ColumnRemoved => "column_removed",
            ChangeKind::ColumnChanged => "column_changed",
            ChangeKind::IndexAdded => "index_added",
            ChangeKind::IndexRemoved => "index_removed",
            ChangeKind::IndexChanged => "index_changed",
            ChangeKind::ViewAdded => "view_added",
            ChangeKind::ViewRemoved => "view_removed",
            ChangeKind::ViewChanged => "view_changed",
            ChangeKind::TriggerAdded => "trigger_added",
            ChangeKind::TriggerRemoved => "trigger_removed",
            ChangeKind::TriggerChanged => "trigger_changed",
            ChangeKind::UserVersionChanged => "user_version_changed",
            ChangeKind::ApplicationIdChanged => "application_id_changed",
            ChangeKind::PageSizeChanged => "page_size_changed",
            ChangeKind::AutoVacuumChanged => "auto_vacuum_changed",
        }
    }

    fn sign(self) -> char {
        let name = self.as_str();
        if name.ends_with("_added") {
            '+'
        } else if name.ends_with("_removed") {
            '-'
        } else {
            '~'
        }
    }
}

/// One difference between two schemas.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    /// The table a column, index or trigger belongs to; the table itself for
    /// table changes.
    pub table: Option<String>,
    /// The object's name (the column name for column changes).
    pub name: String,
    /// What changed, one fact per entry (e.g. `type: TEXT -> INTEGER`).
    pub details: Vec<String>,
    /// Normalized SQL before and after (absent for added/removed sides).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The differences from one schema (`from`, e.g. production) to another
/// (`to`, e.g. the source).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SchemaDiff {
    pub changes: Vec<Change>,
}

impl SchemaDiff {
    /// True when the schemas are the same.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Changes of one kind.
    pub fn of_kind(&self, kind: ChangeKind) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }
}

fn change(kind: ChangeKind, table: Option<&str>, name: &str) -> Change {
    Change {
        kind,
        table: table.map(str::to_string),
        name: name.to_string(),
        details: Vec::new(),
        before: None,
        after: None,
    }
}

/// Compares two schemas. The order is deterministic: tables (with their
/// columns) by name, then indexes, views, triggers, then header values.
pub fn diff(from: &Schema, to: &Schema) -> SchemaDiff {
    let mut changes = Vec::new();
    let mut names: Vec<&str> = from
        .tables
        .iter()
        .chain(&to.tables)
        .map(|t| t.name.as_str())
        .collect();
    sort_names(&mut names);
    for name in names {
        match (from.table(name), to.table(name)) {
            (Some(a), None) => {
                let mut c = change(ChangeKind::TableRemoved, Some(&a.name), &a.name);
                c.before = Some(a.sql.clone());
                changes.push(c);
            }
            (None, Some(b)) => {
                let mut c = change(ChangeKind::TableAdded, Some(&b.name), &b.name);
                c.after = Some(b.sql.clone());
                changes.push(c);
            }
            (Some(a), Some(b)) => diff_table(a, b, &mut changes),
            (None, None) => {}
        }
    }

    let explicit = |s: &Schema| -> Vec<(String, String, String)> {
        s.indexes
            .iter()
            .filter(|i| i.is_explicit())
            .map(|i| {
                (
                    i.name.clone(),
                    i.table.clone(),
                    i.sql.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    diff_objects(
        &explicit(from),
        &explicit(to),
        [
            ChangeKind::IndexAdded,
            ChangeKind::IndexRemoved,
            ChangeKind::IndexChanged,
        ],
        &mut changes,
    );
    let views = |s: &Schema| -> Vec<(String, String, String)> {
        s.views
            .iter()
            .map(|v| (v.name.clone(), String::new(), v.sql.clone()))
            .collect()
    };
    diff_objects(
        &views(from),
        &views(to),
        [
            ChangeKind::ViewAdded,
            ChangeKind::ViewRemoved,
            ChangeKind::ViewChanged,
        ],
        &mut changes,
    );
    let triggers = |s: &Schema| -> Vec<(String, String, String)> {
        s.triggers
            .iter()
            .map(|t| (t.name.clone(), t.table.clone(), t.sql.clone()))
            .collect()
    };
    diff_objects(
        &triggers(from),
        &triggers(to),
        [
            ChangeKind::TriggerAdded,
            ChangeKind::TriggerRemoved,
            ChangeKind::TriggerChanged,
        ],
        &mut changes,
    );
    if from.user_version != to.user_version {
        let mut c = change(ChangeKind::UserVersionChanged, None, "user_version");
        c.details
            .push(format!("{} -> {}", from.user_version, to.user_version));
        changes.push(c);
    }
    if from.application_id != to.application_id {
        let mut c = change(ChangeKind::ApplicationIdChanged, None, "application_id");
        c.details
            .push(format!("{} -> {}", from.application_id, to.application_id));
        changes.push(c);
    }
    // File settings count only where `to` sets them: a schema that does not
    // mention them keeps whatever the other side has.
    if let Some(p) = to.page_size {
        let before = from.page_size.unwrap_or(crate::schema::DEFAULT_PAGE_SIZE);
        if before != p {
            let mut c = change(ChangeKind::PageSizeChanged, None, "page_size");
            c.details.push(format!("{before} -> {p}"));
            changes.push(c);
        }
    }
    if let Some(v) = to.auto_vacuum {
        let before = from.auto_vacuum.unwrap_or(0);
        if before != v {
            let name = |v: i64| match v {
                0 => "NONE".to_string(),
                1 => "FULL".to_string(),
                2 => "INCREMENTAL".to_string(),
                n => n.to_string(),
            };
            let mut c = change(ChangeKind::AutoVacuumChanged, None, "auto_vacuum");
            c.details.push(format!("{} -> {}", name(before), name(v)));
            changes.push(c);
        }
    }
    SchemaDiff { changes }
}

fn sort_names(names: &mut Vec<&str>) {
    names.sort_by_key(|n| n.to_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
}

/// Compares named statements: (name, table, normalized sql).
fn diff_objects(
    from: &[(String, String, String)],
    to: &[(String, String, String)],
    [added, removed, changed]: [ChangeKind; 3],
    out: &mut Vec<Change>,
) {
    let find = |list: &'_ [(String, String, String)], name: &str| {
        list.iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .cloned()
    };
    let mut names: Vec<&str> = from.iter().chain(to).map(|(n, _, _)| n.as_str()).collect();
    sort_names(&mut names);
    for name in names {
        let table = |t: &str| (!t.is_empty()).then(|| t.to_string());
        match (find(from, name), find(to, name)) {
            (Some((n, t, sql)), None) => out.push(Change {
                before: Some(sql),
                table: table(&t),
                ..change(removed, None, &n)
            }),
            (None, Some((n, t, sql))) => out.push(Change {
                after: Some(sql),
                table: table(&t),
                ..change(added, None, &n)
            }),
            (Some((_, _, a)), Some((n, t, b)))
                if sqltext::fold_case(&a) != sqltext::fold_case(&b) =>
            {
                out.push(Change {
                    before: Some(a),
                    after: Some(b),
                    table: table(&t),
                    ..change(changed, None, &n)
                })
            }
            _ => {}
        }
    }
}

fn diff_table(a: &Table, b: &Table, out: &mut Vec<Change>) {
    let mut details = Vec::new();
    if a.name != b.name {
        details.push(format!("name: {} -> {} (case only)", a.name, b.name));
    }
    let flag = |details: &mut Vec<String>, what: &str, x: bool, y: bool| {
        if x != y {
            details.push(format!("{what} {}", if y { "added" } else { "removed" }));
        }
    };
    flag(&mut details, "STRICT", a.strict, b.strict);
    flag(
        &mut details,
        "WITHOUT ROWID",
        a.without_rowid,
        b.without_rowid,
    );
    flag(
        &mut details,
        "AUTOINCREMENT",
        a.autoincrement,
        b.autoincrement,
    );
    if a.virtual_module != b.virtual_module {
        details.push(format!(
            "virtual table module: {} -> {}",
            a.virtual_module.as_deref().unwrap_or("(none)"),
            b.virtual_module.as_deref().unwrap_or("(none)")
        ));
    }
    let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    if lower(&a.primary_key) != lower(&b.primary_key) {
        details.push(format!(
            "primary key: ({}) -> ({})",
            a.primary_key.join(", "),
            b.primary_key.join(", ")
        ));
    }
    let fk_text = |t: &Table| -> Vec<String> {
        t.foreign_keys
            .iter()
            .map(|f| {
                format!(
                    "({}) REFERENCES {}({}) ON UPDATE {} ON DELETE {}",
                    f.columns.join(", "),
                    f.ref_table,
                    f.ref_columns.join(", "),
                    f.on_update,
                    f.on_delete
                )
                .to_lowercase()
            })
            .collect()
    };
    set_details(&mut details, "foreign key", &fk_text(a), &fk_text(b));
    let uniq = |t: &Table| -> Vec<String> {
        t.uniques
            .iter()
            .map(|u| format!("UNIQUE ({})", u.join(", ")).to_lowercase())
            .collect()
    };
    set_details(&mut details, "constraint", &uniq(a), &uniq(b));
    set_details(&mut details, "CHECK", &a.checks, &b.checks);

    // Columns by name (ASCII case folded, as SQLite compares them): wide
    // tables have up to 2,000 columns.
    let index = |t: &'_ Table| -> std::collections::HashMap<String, usize> {
        let mut m = std::collections::HashMap::new();
        for (i, c) in t.columns.iter().enumerate() {
            m.entry(c.name.to_ascii_lowercase()).or_insert(i);
        }
        m
    };
    let (in_a, in_b) = (index(a), index(b));
    let mut column_changes = Vec::new();
    for col in &b.columns {
        match in_a
            .get(&col.name.to_ascii_lowercase())
            .map(|&i| &a.columns[i])
        {
            None => column_changes.push(Change {
                details: vec![column_summary(col)],
                ..change(ChangeKind::ColumnAdded, Some(&b.name), &col.name)
            }),
            Some(old) => {
                let d = column_details(old, col);
                if !d.is_empty() {
                    column_changes.push(Change {
                        details: d,
                        ..change(ChangeKind::ColumnChanged, Some(&b.name), &col.name)
                    });
                }
            }
        }
    }
    for col in &a.columns {
        if !in_b.contains_key(&col.name.to_ascii_lowercase()) {
            column_changes.push(Change {
                details: vec![column_summary(col)],
                ..change(ChangeKind::ColumnRemoved, Some(&b.name), &col.name)
            });
        }
    }
    let kept = |x: &Table, other: &std::collections::HashMap<String, usize>| -> Vec<String> {
        x.columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .filter(|n| other.contains_key(n))
            .collect()
    };
    if kept(a, &in_b) != kept(b, &in_a) {
        details.push("column order changed".to_string());
    }
    let text_differs = sqltext::canonical_table(&a.sql) != sqltext::canonical_table(&b.sql);
    if details.is_empty() && column_changes.is_empty() && !text_differs {
        return;
    }
    if details.is_empty() && column_changes.is_empty() {
        details.push("definition changed".to_string());
    }
    out.push(Change {
        details,
        before: Some(a.sql.clone()),
        after: Some(b.sql.clone()),
        ..change(ChangeKind::TableChanged, Some(&b.name), &b.name)
    });
    out.extend(column_changes);
}

fn set_details(details: &mut Vec<String>, what: &str, a: &[String], b: &[String]) {
    for x in b.iter().filter(|x| !a.contains(x)) {
        details.push(format!("{what} added: {x}"));
    }
    for x in a.iter().filter(|x| !b.contains(x)) {
        details.push(format!("{what} removed: {x}"));
    }
}

fn column_summary(c: &Column) -> String {
    let mut s = if c.decl_type.is_empty() {
        "(no type)".to_string()
    } else {
        c.decl_type.clone()
    };
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(" AS ({g})"));
    }
    s
}

fn column_details(a: &Column, b: &Column) -> Vec<String> {
    let mut d = Vec::new();
    let show = |s: &str| {
        if s.is_empty() {
            "(none)".to_string()
        } else {
            s.to_string()
        }
    };
    if a.name != b.name {
        d.push(format!("name: {} -> {} (case only)", a.name, b.name));
    }
    if normalize_type(&a.decl_type) != normalize_type(&b.decl_type) {
        let aff = if a.affinity == b.affinity {
            String::new()
        } else {
            format!(" (affinity {} -> {})", a.affinity, b.affinity)
        };
        d.push(format!(
            "type: {} -> {}{aff}",
            show(&a.decl_type),
            show(&b.decl_type)
        ));
    }
    if a.not_null != b.not_null {
        d.push(format!(
            "NOT NULL {}",
            if b.not_null { "added" } else { "removed" }
        ));
    }
    if a.default != b.default {
        d.push(format!(
            "default: {} -> {}",
            a.default.as_deref().unwrap_or("(none)"),
            b.default.as_deref().unwrap_or("(none)")
        ));
    }
    if a.pk != b.pk {
        d.push(format!("primary key position: {} -> {}", a.pk, b.pk));
    }
    if !a.collation.eq_ignore_ascii_case(&b.collation) {
        d.push(format!("collation: {} -> {}", a.collation, b.collation));
    }
    if a.kind != b.kind || a.generated != b.generated {
        let g = |c: &Column| match &c.generated {
            Some(e) => format!("generated {:?} AS ({e})", c.kind).to_lowercase(),
            None => "stored value".to_string(),
        };
        d.push(format!("{} -> {}", g(a), g(b)));
    }
    d
}

fn normalize_type(t: &str) -> String {
    sqltext::normalize(t).to_uppercase()
}

impl Table {
    /// The column with this name (case-insensitive).
    pub fn column_named(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// Breaks a normalized statement into lines for a readable unified diff:
/// one table element per line, and clauses of views and triggers on their
/// own lines.
pub fn pretty(sql: &str) -> String {
    let tokens = sqltext::tokenize(sql);
    let is_table = tokens.get(1).is_some_and(|t| t.token.is_kw("TABLE"))
        || tokens.get(2).is_some_and(|t| t.token.is_kw("TABLE"));
    if is_table {
        if let Some(open) = tokens
            .iter()
            .position(|t| matches!(&t.token, Token::Punct(p) if p == "("))
        {
            let (items, close) = sqltext::split_parenthesized(&tokens, open);
            let mut out = sqltext::render(&tokens[..=open]);
            for (i, item) in items.iter().enumerate() {
                out.push_str("\n  ");
                out.push_str(&sqltext::render(item));
                if i + 1 < items.len() {
                    out.push(',');
                }
            }
            out.push_str("\n)");
            let rest = sqltext::render(tokens.get(close + 1..).unwrap_or(&[]));
            if !rest.is_empty() {
                out.push(' ');
                out.push_str(&rest);
            }
            return out;
        }
    }
    let breaks = [
        "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "JOIN", "LEFT",
        "BEGIN", "END", "INSERT", "UPDATE", "DELETE", "WHEN",
    ];
    let mut lines: Vec<String> = Vec::new();
    let mut current: Vec<sqltext::Spanned> = Vec::new();
    for t in tokens {
        let brk =
            matches!(&t.token, Token::Word(w) if breaks.iter().any(|b| b.eq_ignore_ascii_case(w)));
        if brk && !current.is_empty() && !current.last().is_some_and(|p| p.token.is_kw("LEFT")) {
            lines.push(sqltext::render(&current));
            current.clear();
        }
        current.push(t);
    }
    if !current.is_empty() {
        lines.push(sqltext::render(&current));
    }
    lines.join("\n")
}

/// Renders a diff as text grouped by object, with a unified diff of each
/// changed statement.
pub fn render_text(d: &SchemaDiff, style: Style) -> String {
    if d.is_empty() {
        return "No differences.\n".to_string();
    }
    let mut out = String::new();
    for c in &d.changes {
        let indent = matches!(
            c.kind,
            ChangeKind::ColumnAdded | ChangeKind::ColumnRemoved | ChangeKind::ColumnChanged
        );
        let object = c.kind.as_str().split('_').next().unwrap_or("");
        let sign = c.kind.sign();
        let head = match object {
            "user" | "application" | "page" | "auto" => format!("{sign} {}", c.name),
            _ => format!("{sign} {object} {}", sqltext::display_ident(&c.name)),
        };
        let head = if indent { format!("    {head}") } else { head };
        let head = match sign {
            '+' => style.green(&head),
            '-' => style.red(&head),
            _ => style.yellow(&head),
        };
        out.push_str(&head);
        let inline = indent || (c.before.is_none() || c.after.is_none()) && !c.details.is_empty();
        if inline && !c.details.is_empty() {
            out.push_str(&format!(": {}", c.details.join("; ")));
        }
        out.push('\n');
        if !inline {
            for d in &c.details {
                out.push_str(&format!("    {d}\n"));
            }
        }
        if let (Some(a), Some(b)) = (&c.before, &c.after) {
            out.push_str(&unified(&pretty(a), &pretty(b), style));
        }
    }
    out
}

fn unified(a: &str, b: &str, style: Style) -> String {
    let diff = TextDiff::from_lines(a, b);
    let mut out = String::new();
    for group in diff.grouped_ops(3) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let line = change.value().trim_end_matches('\n');
                let text = match change.tag() {
                    ChangeTag::Delete => style.red(&format!("      -{line}")),
                    ChangeTag::Insert => style.green(&format!("      +{line}")),
                    ChangeTag::Equal => style.dim(&format!("       {line}")),
                };
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn schema_of(sql: &str) -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        Schema::read(&conn, "main").unwrap()
    }

    #[test]
    fn formatting_only_is_no_change() {
        let a = schema_of(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); CREATE INDEX i ON t(name);",
        );
        let b = schema_of(
            "create table \"t\" (\n id integer primary key, -- x\n [name] text\n);\ncreate index `i` on t (name);",
        );
        assert!(diff(&a, &b).is_empty(), "{:?}", diff(&a, &b));
    }

    #[test]
    fn column_changes_are_named() {
        let a = schema_of("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT)");
        let b = schema_of(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER NOT NULL DEFAULT 0, c TEXT)",
        );
        let d = diff(&a, &b);
        let kinds: Vec<_> = d
            .changes
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ChangeKind::TableChanged, "t"),
                (ChangeKind::ColumnChanged, "a"),
                (ChangeKind::ColumnAdded, "c"),
                (ChangeKind::ColumnRemoved, "b"),
            ]
        );
        assert!(
            d.changes[1]
                .details
                .iter()
                .any(|x| x.starts_with("type: TEXT -> INTEGER"))
        );
        assert!(d.changes[1].details.contains(&"NOT NULL added".to_string()));
    }
}
