//! Fixture databases for `sqlmorph test`: found in a directory (or named
//! one by one) and made into a private SQLite file for each test, so that a
//! test never touches the fixture itself. A `.sql` fixture is executed into
//! a new database; a `.sqlite3` / `.sqlite` / `.db` fixture is copied with
//! SQLite's backup API (a WAL fixture's pages included).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::input;

const EXTENSIONS: &[&str] = &["sql", "sqlite3", "sqlite", "db"];

fn is_fixture(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// The fixtures `path` names: the file itself, or the fixture files of a
/// directory in name order. An error when there are none.
pub fn find(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        if !is_fixture(path) {
            return Err(input(format!(
                "{}: a fixture is a .sql, .sqlite3, .sqlite or .db file",
                path.display()
            )));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        input(format!(
            "{}: cannot read the fixtures: {e} (give --fixtures DIR or set [test] fixtures in sqlmorph.toml)",
            path.display()
        ))
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_fixture(p))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(input(format!(
            "{}: no fixture databases in it (.sql, .sqlite3, .sqlite or .db files)",
            path.display()
        )));
    }
    Ok(found)
}

/// Makes `fixture` into the SQLite file `dest` (which must not exist).
pub fn materialize(fixture: &Path, dest: &Path) -> Result<()> {
    let is_sql = fixture.extension().is_some_and(|e| e == "sql");
    if is_sql {
        let text = std::fs::read_to_string(fixture).map_err(|e| {
            input(format!(
                "{}: cannot read the fixture: {e}",
                fixture.display()
            ))
        })?;
        let conn = rusqlite::Connection::open(dest)?;
        conn.execute_batch(&text).map_err(|e| {
            input(format!(
                "{}: the fixture's SQL fails: {e}",
                fixture.display()
            ))
        })?;
        return Ok(());
    }
    let src = crate::db::open_readonly(fixture).map_err(|e| {
        input(format!(
            "{}: not a readable SQLite file: {e:#}",
            fixture.display()
        ))
    })?;
    let mut out = rusqlite::Connection::open(dest)?;
    let backup = rusqlite::backup::Backup::new(&src, &mut out)?;
    backup
        .run_to_completion(256, std::time::Duration::ZERO, None)
        .map_err(|e| {
            input(format!(
                "{}: cannot copy the fixture: {e}",
                fixture.display()
            ))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fixture_files_in_name_order_and_skips_others() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.sql", "a.sqlite3", "notes.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = find(dir.path()).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.sqlite3", "b.sql"]);
    }

    #[test]
    fn an_empty_directory_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = find(dir.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(format!("{err:#}").contains("no fixture databases"));
    }
}
