//! Renames declared in the source `.sql` file (`-- @renamed from=OLD`, see
//! [`crate::renames`]) turned into the run's [`Mappings`], checked against
//! production: a declaration already applied (production has the new name
//! only) is kept as a note; one that names nothing in production is an
//! input error naming the file and line. Also the hint printed when a
//! rename is confirmed at a terminal, so the next run does not ask.

use std::path::Path;

use anyhow::Result;

use crate::error::input;
use crate::pipeline::plan::{Mappings, RenameSuggestion};
use crate::renames::{Declared, declared_in, line_for};
use crate::schema::{Schema, Table};

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Adds the declarations of `source` to `maps`; returns the log lines.
/// Production's schema is read from `production` (a local copy), and only
/// when the source declares something.
pub fn apply(source: &Path, production: &Path, maps: &mut Mappings) -> Result<Vec<String>> {
    let mut declared = declared_in(source)?;
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let prod = &Schema::load(production)?;
    // Tables first: a column's production table follows its table's rename.
    declared.sort_by_key(|d| d.column.is_some());
    let mut notes = Vec::new();
    for d in &declared {
        let at = format!("{}:{}", source.display(), d.line);
        let note = match &d.column {
            None => table(d, prod, maps, &at)?,
            Some(col) => column(d, col, prod, maps, &at)?,
        };
        notes.push(note);
    }
    Ok(notes)
}

/// Whether the rename is still to be made: production has `old` only
/// (yes), `new` only (already made); both or neither is an input error.
/// `kind` is "table" or "column", `place` says where ("" or " in table t").
fn decide(
    at: &str,
    d: &Declared,
    new: &str,
    found: (bool, bool),
    kind: &str,
    place: &str,
) -> Result<bool> {
    let old = &d.from;
    match found {
        (true, false) => Ok(true),
        (false, true) => Ok(false),
        (true, true) => Err(input(format!(
            "{at}: `@renamed from={old}` on {kind} {new}: production has both {kind}s {old} \
             and {new}{place}; remove the declaration, or drop one of them first"
        ))),
        (false, false) => Err(input(format!(
            "{at}: `@renamed from={old}` on {kind} {new}: production has no {kind} {old}{place} \
             (nor {new}); check the old name"
        ))),
    }
}

fn table(d: &Declared, prod: &Schema, maps: &mut Mappings, at: &str) -> Result<String> {
    let found = (
        prod.table(&d.from).is_some(),
        prod.table(&d.table).is_some(),
    );
    let rename = decide(at, d, &d.table, found, "table", "")?;
    if !rename {
        return Ok(already(at, &d.from, &d.table));
    }
    if !maps
        .table_renames
        .iter()
        .any(|(o, n)| eq(o, &d.from) && eq(n, &d.table))
    {
        maps.table_renames.push((d.from.clone(), d.table.clone()));
    }
    Ok(format!(
        "  renaming table {} to {} (declared at {at})",
        d.from, d.table
    ))
}

fn column(d: &Declared, col: &str, prod: &Schema, maps: &mut Mappings, at: &str) -> Result<String> {
    let origin = production_table(prod, maps, &d.table).ok_or_else(|| {
        input(format!(
            "{at}: `@renamed from={}` on column {}.{col}: production has no table {} \
             (a new table's columns are not renamed; declare the table's rename too)",
            d.from, d.table, d.table
        ))
    })?;
    let has = |name: &str| origin.columns.iter().any(|c| eq(&c.name, name));
    let place = format!(" in table {}", origin.name);
    if !decide(at, d, col, (has(&d.from), has(col)), "column", &place)? {
        return Ok(already(at, &format!("{}.{}", d.table, d.from), col));
    }
    if !maps
        .column_renames
        .iter()
        .any(|(t, o, n)| eq(t, &d.table) && eq(o, &d.from) && eq(n, col))
    {
        maps.column_renames
            .push((d.table.clone(), d.from.clone(), col.to_string()));
    }
    Ok(format!(
        "  renaming column {}.{} to {col} (declared at {at})",
        d.table, d.from
    ))
}

fn already(at: &str, old: &str, new: &str) -> String {
    format!("  {at}: {old} is already {new} in production (the declaration can stay or go)")
}

/// The production table whose rows fill source table `table`.
fn production_table<'a>(prod: &'a Schema, maps: &Mappings, table: &str) -> Option<&'a Table> {
    match maps.table_renames.iter().find(|(_, n)| eq(n, table)) {
        Some((old, _)) => prod.table(old),
        None => prod.table(table),
    }
}

/// What to write so that a rename confirmed at the terminal is not asked
/// about again. Printed, never written: editing the user's schema file
/// could break its formatting or a comment already on that line.
pub fn hint(source: &Path, s: &RenameSuggestion) -> String {
    let column = (s.kind == "column").then_some(s.new.as_str());
    let text = std::fs::read_to_string(source).unwrap_or_default();
    let line = crate::db::is_sql_script(source)
        .then(|| line_for(&text, &s.table, column))
        .flatten();
    match line {
        Some(n) => format!(
            "  so the next run does not ask, add `-- @renamed from={}` at the end of {}:{n}\n    {}\n  (or `{}` to a recipe)",
            quote(&s.old),
            source.display(),
            text.lines().nth(n - 1).unwrap_or("").trim_end(),
            s.recipe_line
        ),
        None => format!(
            "  so the next run does not ask, add `{}` to a recipe (sqlmorph run RECIPE, or the `recipe` key of sqlmorph.toml)",
            s.recipe_line
        ),
    }
}

fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}
