//! Which tables' foreign keys the rebuild's checksums already prove.
//!
//! Validation reports only *new* `foreign_key_check` violations. A foreign
//! key cannot gain one when the result holds the same child rows with the
//! same values in its columns, the parent the same rows with the same
//! values in its key, and the key is the one production had, matched the
//! same way (same declared types and collations, the parent's primary key
//! on both sides): every child finds its parent in the result exactly when
//! it found it in the snapshot. Validation proves the rows and values by
//! their counts and checksums (a run whose checksums differ fails anyway),
//! so such a table's `foreign_key_check` is left out; every other table
//! with a foreign key is checked.

use std::collections::HashMap;

use crate::pipeline::plan::{ColumnSource, Fill, Plan};
use crate::schema::{Schema, Table};

/// The tables of `after` whose foreign keys must be checked: those with a
/// foreign key that [`proven`] does not cover.
pub fn to_check(
    plan: &Plan,
    before: &Schema,
    after: &Schema,
    transformed: &[(String, String)],
) -> Vec<String> {
    after
        .tables
        .iter()
        .filter(|t| t.virtual_module.is_none() && !t.foreign_keys.is_empty())
        .filter(|t| !proven(plan, before, after, transformed, t))
        .map(|t| t.name.clone())
        .collect()
}

/// True when every foreign key of `child` (a table of `after`) is carried
/// over as the module docs say.
fn proven(
    plan: &Plan,
    before: &Schema,
    after: &Schema,
    transformed: &[(String, String)],
    child: &Table,
) -> bool {
    let Some(c) = Carried::of(plan, before, transformed, child) else {
        return false;
    };
    child.foreign_keys.iter().all(|f| {
        let Some(parent) = after.table(&f.ref_table) else {
            return false;
        };
        let Some(p) = Carried::of(plan, before, transformed, parent) else {
            return false;
        };
        let keys = if f.ref_columns.is_empty() {
            parent.primary_key.clone()
        } else {
            f.ref_columns.clone()
        };
        let (Some(cols), Some(refs)) = (c.origins(&f.columns), p.origins(&keys)) else {
            return false;
        };
        let same_key = !keys.is_empty()
            && lower(&parent.primary_key) == lower(&keys)
            && lower(&p.origin.primary_key) == lower(&refs);
        same_key
            && c.origin.foreign_keys.iter().any(|g| {
                g.ref_table.eq_ignore_ascii_case(&p.origin.name)
                    && lower(&g.columns) == lower(&cols)
                    && (lower(&g.ref_columns) == lower(&refs)
                        || (g.ref_columns.is_empty()
                            && lower(&p.origin.primary_key) == lower(&refs)))
            })
    })
}

fn lower(names: &[String]) -> Vec<String> {
    names.iter().map(|n| n.to_lowercase()).collect()
}

/// A table of the result whose rows are production's, checksummed by
/// validation, with the columns copied as they were.
struct Carried<'a> {
    origin: &'a Table,
    /// Result column (lower case) -> its production column, for the
    /// columns copied unchanged with the same type and collation.
    copied: HashMap<String, String>,
}

impl<'a> Carried<'a> {
    fn of(
        plan: &Plan,
        before: &'a Schema,
        transformed: &[(String, String)],
        table: &'a Table,
    ) -> Option<Carried<'a>> {
        let tp = plan.table(&table.name)?;
        let origin = before.table(tp.from.as_deref()?)?;
        // Rows copied with a key on both sides: counted and checksummed.
        if tp.fill != Fill::Rows || tp.key.is_empty() {
            return None;
        }
        let rewritten = |c: &str| {
            transformed
                .iter()
                .any(|(t, col)| t.eq_ignore_ascii_case(&table.name) && col.eq_ignore_ascii_case(c))
        };
        let copied = tp
            .columns
            .iter()
            .filter_map(|c| match (&c.source, &c.select) {
                (ColumnSource::Copy { from }, Some(_)) if !rewritten(&c.name) => {
                    let new = table.column_named(&c.name)?;
                    let old = origin.column_named(from)?;
                    let same = new.decl_type.eq_ignore_ascii_case(&old.decl_type)
                        && new.collation.eq_ignore_ascii_case(&old.collation);
                    same.then(|| (c.name.to_lowercase(), old.name.clone()))
                }
                _ => None,
            })
            .collect();
        Some(Carried { origin, copied })
    }

    /// The production names of `columns`, when each is copied unchanged.
    fn origins(&self, columns: &[String]) -> Option<Vec<String>> {
        columns
            .iter()
            .map(|c| self.copied.get(&c.to_lowercase()).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::{self, Mappings};
    use rusqlite::Connection;

    const PROD: &str = "PRAGMA foreign_keys = OFF;
        CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), body TEXT);
        CREATE TABLE tags(id INTEGER PRIMARY KEY, post_id INT REFERENCES posts(id), tag TEXT);
        CREATE TABLE notes(id INTEGER PRIMARY KEY, post_id INT);
        CREATE TABLE scores(id INTEGER PRIMARY KEY, user_id TEXT REFERENCES users(id));
        INSERT INTO users VALUES (1, 'a');
        INSERT INTO posts VALUES (1, 1, 'x');
        INSERT INTO tags VALUES (1, 1, 't'), (2, 99, 'an old orphan');
        INSERT INTO notes VALUES (1, 1);
        INSERT INTO scores VALUES (1, '1');";

    /// The tables `to_check` keeps for a migration from [`PROD`] to `source`.
    fn checked(source: &str, transformed: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let (prod, src) = (dir.path().join("prod.db"), dir.path().join("src.db"));
        Connection::open(&prod)
            .unwrap()
            .execute_batch(PROD)
            .unwrap();
        Connection::open(&src)
            .unwrap()
            .execute_batch(source)
            .unwrap();
        let source = Schema::load(&src).unwrap();
        let (before, _, plan) = plan::from_copy(&prod, &source, &Mappings::default()).unwrap();
        let transformed: Vec<(String, String)> = transformed
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect();
        let mut tables = to_check(&plan, &before, &source, &transformed);
        tables.sort();
        tables
    }

    const SAME: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, tz TEXT);
        CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), body TEXT);
        CREATE TABLE tags(id INTEGER PRIMARY KEY, post_id INT REFERENCES posts(id), tag TEXT);
        CREATE TABLE notes(id INTEGER PRIMARY KEY, post_id INT);
        CREATE TABLE scores(id INTEGER PRIMARY KEY, user_id TEXT REFERENCES users(id));";

    #[test]
    fn keys_copied_as_they_were_are_proven_an_old_orphan_included() {
        assert_eq!(checked(SAME, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_new_key_a_converted_column_or_a_transformed_one_is_checked() {
        let new_key = SAME.replace(
            "notes(id INTEGER PRIMARY KEY, post_id INT)",
            "notes(id INTEGER PRIMARY KEY, post_id INT REFERENCES posts(id))",
        );
        assert_eq!(checked(&new_key, &[]), ["notes"]);
        let converted = SAME.replace(
            "scores(id INTEGER PRIMARY KEY, user_id TEXT REFERENCES",
            "scores(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES",
        );
        assert_eq!(checked(&converted, &[]), ["scores"]);
        assert_eq!(checked(SAME, &[("posts", "user_id")]), ["posts"]);
        // The parent's key transformed: its children are checked (its own
        // key to users is still carried).
        assert_eq!(checked(SAME, &[("posts", "id")]), ["tags"]);
    }

    #[test]
    fn a_key_pointed_elsewhere_or_matched_another_way_is_checked() {
        let elsewhere = SAME.replace(
            "tags(id INTEGER PRIMARY KEY, post_id INT REFERENCES posts(id)",
            "tags(id INTEGER PRIMARY KEY, post_id INT REFERENCES users(id)",
        );
        assert_eq!(checked(&elsewhere, &[]), ["tags"]);
        let collated = SAME
            .replace(
                "users(id INTEGER PRIMARY KEY, name TEXT, tz TEXT)",
                "users(id INTEGER PRIMARY KEY, name TEXT, tz TEXT, code TEXT)",
            )
            .replace(
                "scores(id INTEGER PRIMARY KEY, user_id TEXT REFERENCES users(id))",
                "scores(id INTEGER PRIMARY KEY, user_id TEXT COLLATE NOCASE REFERENCES users(id))",
            );
        assert_eq!(checked(&collated, &[]), ["scores"]);
        // A new parent table: nothing to compare its rows with.
        let new_parent = SAME.replace(
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, post_id INT);",
            "CREATE TABLE books(id INTEGER PRIMARY KEY);
             CREATE TABLE notes(id INTEGER PRIMARY KEY, post_id INT REFERENCES books(id));",
        );
        assert_eq!(checked(&new_parent, &[]), ["notes"]);
    }
}
