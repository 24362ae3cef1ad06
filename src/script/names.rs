//! Early checks of the names a recipe's mappings use: a table or column
//! that does not exist in the schema it applies to (production's for old
//! names, the source's for new ones) is an error at the recipe line that
//! names it, with the closest existing name, before anything is backed up.

use anyhow::Result;

use crate::error::input;
use crate::pipeline::plan::Mappings;
use crate::schema::{Schema, Table};

/// The two schemas a mapping's names are checked against; `None` when one
/// cannot be read yet (its own step reports that).
#[derive(Debug, Default)]
pub struct Known {
    pub production: Option<Schema>,
    pub source: Option<Schema>,
}

/// Reads both schemas (production's through the run's target, so a
/// remote one too); one that cannot be read is left unchecked, and so are
/// both when production already matches the source (a migration run again
/// after it was applied: its mappings are moot).
pub fn load(run: &mut crate::pipeline::session::Run) -> Known {
    let production = run.production();
    let known = Known {
        production: run.schema_of(&production).ok(),
        source: run.source_schema().ok(),
    };
    match (&known.production, &known.source) {
        (Some(p), Some(s)) if crate::diff::diff(p, s).is_empty() => Known::default(),
        _ => known,
    }
}

/// A schema and how an error names it.
struct Side<'a> {
    schema: &'a Schema,
    label: &'static str,
}

impl Known {
    fn production(&self) -> Option<Side<'_>> {
        self.production.as_ref().map(|schema| Side {
            schema,
            label: "production",
        })
    }

    fn source(&self) -> Option<Side<'_>> {
        self.source.as_ref().map(|schema| Side {
            schema,
            label: "the source schema",
        })
    }

    /// `rename_table(old, new)`: `old` in production, `new` in the source.
    /// False when the rename is applied already (production has `new` and
    /// not `old`): the mapping is then ignored.
    pub fn rename_table(&self, old: &str, new: &str) -> Result<bool> {
        check_table(self.source(), "rename_table", new)?;
        let Some(prod) = &self.production else {
            return Ok(true);
        };
        if prod.table(new).is_some() && prod.table(old).is_none() {
            return Ok(false);
        }
        check_table(self.production(), "rename_table", old).map(|_| true)
    }

    /// `rename_column(table, old, new)`: `table` and `new` in the source,
    /// `old` in the production table that feeds it. False when the rename
    /// is applied already (that table has `new` and not `old`).
    pub fn rename_column(&self, m: &Mappings, table: &str, old: &str, new: &str) -> Result<bool> {
        if let Some(t) = check_table(self.source(), "rename_column", table)? {
            check_column(t, "the source schema", "rename_column", new)?;
        }
        let origin = self.production.as_ref().and_then(|p| m.origin_of(p, table));
        let Some(origin) = origin else {
            return Ok(true);
        };
        if has_column(origin, new) && !has_column(origin, old) {
            return Ok(false);
        }
        check_column(origin, "production", "rename_column", old).map(|()| true)
    }

    /// `map_column` and `fill`: a column of the source schema.
    pub fn source_column(&self, primitive: &str, table: &str, column: &str) -> Result<()> {
        match check_table(self.source(), primitive, table)? {
            Some(t) => check_column(t, "the source schema", primitive, column),
            None => Ok(()),
        }
    }

    /// `drop_table`: a table of production.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        check_table(self.production(), "drop_table", table).map(|_| ())
    }

    /// `drop_column`: a column of a production table.
    pub fn drop_column(&self, table: &str, column: &str) -> Result<()> {
        match check_table(self.production(), "drop_column", table)? {
            Some(t) => check_column(t, "production", "drop_column", column),
            None => Ok(()),
        }
    }
}

/// The table `name` of `side` (`None` when that schema is unknown).
fn check_table<'a>(
    side: Option<Side<'a>>,
    primitive: &str,
    name: &str,
) -> Result<Option<&'a Table>> {
    let Some(side) = side else { return Ok(None) };
    if let Some(t) = side.schema.table(name) {
        return Ok(Some(t));
    }
    let names: Vec<&str> = side.schema.tables.iter().map(|t| t.name.as_str()).collect();
    Err(input(format!(
        "{primitive}: {} has no table `{name}`{}",
        side.label,
        hint(name, &names, "tables")
    )))
}

fn has_column(table: &Table, name: &str) -> bool {
    table
        .columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(name))
}

/// Checks that `table` (of the schema `label` names) has column `name`.
fn check_column(table: &Table, label: &str, primitive: &str, name: &str) -> Result<()> {
    if has_column(table, name) {
        return Ok(());
    }
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    Err(input(format!(
        "{primitive}: table `{}` in {label} has no column `{name}`{}",
        table.name,
        hint(name, &names, "columns")
    )))
}

/// "; did you mean `x`?" for the closest name, or the names there are.
pub fn hint(name: &str, names: &[&str], what: &str) -> String {
    match closest(name, names) {
        Some(best) => format!("; did you mean `{best}`?"),
        None if names.is_empty() => format!(" (it has no {what})"),
        None => format!(" (its {what}: {})", names.join(", ")),
    }
}

/// The name nearest to `name` by edit distance, if it is near enough to be
/// a typo (at most a third of the longer name, and at least one edit).
pub fn closest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let wanted = name.to_lowercase();
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(&wanted, &n.to_lowercase()), *n))
        .filter(|(d, n)| *d <= (wanted.len().max(n.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_a_near_typo_or_none() {
        let names = ["users", "email", "created_at"];
        assert_eq!(closest("mail", &names), Some("email"));
        assert_eq!(closest("user", &names), Some("users"));
        assert_eq!(closest("EMIAL", &names), Some("email"));
        assert_eq!(closest("zzz", &names), None);
    }

    #[test]
    fn a_hint_without_a_near_name_lists_the_names() {
        assert_eq!(hint("zzz", &["a", "b"], "columns"), " (its columns: a, b)");
        assert_eq!(hint("zzz", &[], "tables"), " (it has no tables)");
    }
}
