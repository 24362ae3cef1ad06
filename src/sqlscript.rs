//! Runs a `.sql` script statement by statement. SQLite's own parser splits
//! it (rusqlite's [`Batch`]), so trigger bodies, `CASE … END` and `;` inside
//! strings or comments are never guessed at. A failing statement is reported
//! with the file, its line and its first line of text.

use anyhow::Result;
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection};

use crate::error::input;
use crate::sqltext::{Token, tokenize};

/// Executes every statement of `text` (the contents of the file `shown`)
/// on `conn`, in order; stops at the first that fails.
pub fn execute(conn: &Connection, text: &str, shown: &str) -> Result<()> {
    let mut batch = Batch::new(conn, text);
    let mut end = 0usize;
    for n in 1.. {
        // Where SQLite starts parsing the next statement: empty statements
        // (a lone `;`) are skipped by the batch.
        let start = after_empty_statements(text, end);
        let mut stmt = match batch.next() {
            Ok(Some(stmt)) => stmt,
            Ok(None) => break,
            Err(e) => return Err(failure(text, start, n, &e, shown)),
        };
        if stmt.parameter_count() > 0 {
            let at = Failure::at(text, start);
            return Err(input(format!(
                "{shown}:{}: statement {n} has a parameter (`?` or `:name`), which a .sql file cannot bind\n  {}",
                at.line, at.first
            )));
        }
        let len = stmt.expanded_sql().map_or(0, |sql| sql.len());
        if let Err(e) = run(&mut stmt) {
            return Err(failure(text, start, n, &e, shown));
        }
        end = (start + len).min(text.len());
    }
    Ok(())
}

/// Steps a statement to its end (some statements, like `SELECT` or
/// `PRAGMA`, return rows; they are read and dropped).
fn run(stmt: &mut rusqlite::Statement<'_>) -> rusqlite::Result<()> {
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    Ok(())
}

/// The offset just past the `;` of any empty statements at `from`.
fn after_empty_statements(text: &str, from: usize) -> usize {
    tokenize(&text[from..])
        .iter()
        .take_while(|t| matches!(&t.token, Token::Punct(p) if p == ";"))
        .last()
        .map_or(from, |t| from + t.end)
}

/// The error for statement `n`, which SQLite started parsing at `start`.
fn failure(text: &str, start: usize, n: usize, e: &rusqlite::Error, shown: &str) -> anyhow::Error {
    let at = Failure::at(text, start);
    let (line, msg) = match e {
        rusqlite::Error::SqlInputError { msg, offset, .. } if *offset >= 0 => {
            let off = usize::try_from(*offset).unwrap_or(0);
            (line_at(text, (start + off).min(text.len())), msg.clone())
        }
        other => (at.line, other.to_string()),
    };
    input(format!(
        "{shown}:{line}: statement {n} failed: {msg}\n  {}",
        at.first
    ))
}

/// A statement's line and first line of text, past leading comments.
struct Failure<'a> {
    line: usize,
    first: &'a str,
}

impl<'a> Failure<'a> {
    fn at(text: &'a str, start: usize) -> Failure<'a> {
        let begin = tokenize(&text[start..])
            .first()
            .map_or(start, |t| start + t.start);
        Failure {
            line: line_at(text, begin),
            first: text[begin..].lines().next().unwrap_or("").trim(),
        }
    }
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let conn = Connection::open_in_memory().unwrap();
        execute(&conn, text, "f.sql").unwrap_err().to_string()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn trigger_bodies_strings_and_a_last_statement_without_semicolon() {
        let conn = Connection::open_in_memory().unwrap();
        let text = "CREATE TABLE a(x);;\n-- c;\nCREATE TABLE log(m);\n\
            CREATE TRIGGER t AFTER INSERT ON a BEGIN\n\
            \x20 INSERT INTO log VALUES(CASE WHEN new.x > 1 THEN 'big; END' ELSE 'small' END);\n\
            \x20 INSERT INTO log VALUES('BEGIN; END;');\n\
            END;\n\
            INSERT INTO a VALUES(2)";
        execute(&conn, text, "f.sql").unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM a"), 1);
        let log: Vec<String> = conn
            .prepare("SELECT m FROM log ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(log, ["big; END", "BEGIN; END;"]);
    }

    #[test]
    fn a_syntax_error_names_the_line_and_the_statement() {
        let text =
            "CREATE TABLE a(x);\n;\n-- next\nCREATE TABLE b(\n  y INT,\n  z TEXT NOT NUL\n);\n";
        let e = error_of(text);
        assert!(e.starts_with("f.sql:6: statement 2 failed"), "{e}");
        assert!(e.ends_with("\n  CREATE TABLE b("), "{e}");
    }

    #[test]
    fn a_failing_step_names_the_statement_line() {
        let e = error_of(
            "CREATE TABLE a(x UNIQUE);\nINSERT INTO a VALUES(1);\n\nINSERT INTO a VALUES(1);",
        );
        assert!(e.starts_with("f.sql:4: statement 3 failed"), "{e}");
        assert!(e.contains("UNIQUE"), "{e}");
    }

    #[test]
    fn parameters_are_refused() {
        let e = error_of("CREATE TABLE a(x);\nINSERT INTO a VALUES(?);");
        assert!(e.starts_with("f.sql:2: statement 2 has a parameter"), "{e}");
    }

    #[test]
    fn an_empty_script_does_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        execute(&conn, "  -- nothing\n;\n", "f.sql").unwrap();
    }
}
