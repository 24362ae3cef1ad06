//! `sql_file(db, path)`: runs a `.sql` script on a writable handle, one
//! statement at a time as SQLite's own parser splits it (a trigger body's
//! `;` stays inside its statement), with errors naming the file and the
//! line of the failing statement. The path is relative to the recipe.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Result;
use rhai::{Engine, EvalAltResult};
use rusqlite::fallible_iterator::FallibleIterator;

use super::engine::{Shared, fail};
use crate::error::input;
use crate::pipeline::session::{Db, Run};

/// Registers `sql_file`, resolving paths against `recipe_dir`.
pub fn register(engine: &mut Engine, run: &Shared<Run>, recipe_dir: Option<&Path>) {
    let (run, dir) = (Rc::clone(run), recipe_dir.map(Path::to_path_buf));
    engine.register_fn(
        "sql_file",
        move |db: Db, path: &str| -> Result<i64, Box<EvalAltResult>> {
            let file = dir
                .as_ref()
                .map_or_else(|| PathBuf::from(path), |d| d.join(path));
            let result = run_file(&run.borrow(), &db, &file);
            result.map_err(|e| fail(&run, &e))
        },
    );
}

/// Reads and runs the script; returns how many statements ran.
fn run_file(run: &Run, db: &Db, file: &PathBuf) -> Result<i64> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| input(format!("sql_file: reading {}: {e}", file.display())))?;
    let conn = run.connect(db, "sql_file")?;
    run_statements(&conn, &text).map_err(|(line, e)| {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            return input(format!(
                "sql_file: {}: attempt to write a readonly database: {}",
                db.path.display(),
                run.read_only_reason(db)
            ));
        }
        input(format!("sql_file: {}:{line}: {e}", file.display()))
    })
}

/// Runs each statement of `text` in order; an error comes with the line
/// its statement starts on.
fn run_statements(
    conn: &rusqlite::Connection,
    text: &str,
) -> Result<i64, (usize, rusqlite::Error)> {
    let mut batch = rusqlite::Batch::new(conn, text);
    let (mut end, mut count) = (0, 0);
    loop {
        let line_here = |end: usize| line_of(text, start_of_next(text, end));
        let mut stmt = match batch.next() {
            Ok(Some(stmt)) => stmt,
            Ok(None) => return Ok(count),
            Err(e) => return Err((line_here(end), e)),
        };
        let sql = stmt.expanded_sql().unwrap_or_default();
        let start = text[end..].find(&sql).map_or(end, |i| end + i);
        end = start + sql.len();
        let mut rows = stmt.raw_query();
        loop {
            match rows.next() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err((line_here(start), e)),
            }
        }
        count += 1;
    }
}

/// Where the next statement after byte `from` starts: past whitespace,
/// comments and empty statements.
fn start_of_next(text: &str, mut from: usize) -> usize {
    loop {
        let rest = &text[from..];
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        from += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            from += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            from += trimmed.find("*/").map_or(trimmed.len(), |i| i + 2);
        } else {
            return from;
        }
    }
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> rusqlite::Connection {
        rusqlite::Connection::open_in_memory().unwrap()
    }

    #[test]
    fn a_trigger_body_stays_one_statement() {
        let c = conn();
        let text = "CREATE TABLE t(a);\nCREATE TABLE log(x);\n\
                    CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (1);\n  INSERT INTO log VALUES (2);\nEND;\n\
                    INSERT INTO t VALUES ('a;b');\nSELECT 1;\n";
        assert_eq!(run_statements(&c, text).unwrap(), 5);
        let n: i64 = c
            .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn errors_name_the_line_of_their_statement() {
        let c = conn();
        let text = "CREATE TABLE t(a UNIQUE);\n-- a comment\n\nINSERT INTO t VALUES (1);\n\n  INSERT INTO t VALUES (1);\n";
        assert_eq!(run_statements(&c, text).unwrap_err().0, 6);
        let text = "CREATE TABLE u(a);\n;\n/* note */\nINSERT INTO nosuch VALUES (1);\n";
        assert_eq!(run_statements(&c, text).unwrap_err().0, 4);
    }
}
