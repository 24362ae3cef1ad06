//! Renames declared in a `.sql` schema with sqldef's notation: a comment
//! `-- @renamed from=OLD` (or `/* @renamed from=OLD */`, or the older
//! `@rename`) on a column's line renames that column from OLD, and on the
//! `CREATE TABLE` line renames the table. OLD may be quoted (`"old name"`,
//! `` `old` ``, `[old]`). SQLite drops comments, so they are read from the
//! script text here, with the line each one is on.

use std::path::Path;

use anyhow::Result;

use crate::error::input;
use crate::sqltext::{Spanned, Token, split_parenthesized, tokenize};

/// One declaration: `column` of `table` (names as in the source schema),
/// or the table itself when `column` is `None`, was called `from` before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub table: String,
    pub column: Option<String>,
    pub from: String,
    /// The 1-based line of the comment.
    pub line: usize,
}

/// A `@renamed` comment: where it is and the old name it gives.
#[derive(Debug)]
struct Note {
    offset: usize,
    line: usize,
    from: std::result::Result<String, String>,
}

/// The declarations of a `.sql` file; none for a SQLite file. A comment
/// that says `@renamed` anywhere else than on a table's or a column's line,
/// or without a name, is an input error naming the file and line.
pub fn declared_in(path: &Path) -> Result<Vec<Declared>> {
    if !crate::db::is_sql_script(path) {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| input(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text).map_err(|(line, msg)| input(format!("{}:{line}: {msg}", path.display())))
}

/// The declarations of a script, or the line and text of the first mistake.
pub fn parse(script: &str) -> std::result::Result<Vec<Declared>, (usize, String)> {
    let notes = notes(script);
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    let tokens = tokenize(script);
    let tables = create_tables(&tokens);
    notes
        .into_iter()
        .map(|n| {
            let from = n.from.clone().map_err(|e| (n.line, e))?;
            let (table, column) = tables
                .iter()
                .find_map(|t| t.owner(&n))
                .ok_or_else(|| (n.line, misplaced()))?
                .map_err(|e| (n.line, e))?;
            Ok(Declared {
                table,
                column,
                from,
                line: n.line,
            })
        })
        .collect()
}

fn misplaced() -> String {
    "`@renamed` must be on a CREATE TABLE line (a table rename) or at the end of a \
     column's line (a column rename); sqlmorph renames tables and columns only"
        .to_string()
}

/// Every comment that declares a rename, found outside strings and quoted
/// names.
fn notes(script: &str) -> Vec<Note> {
    let bytes = script.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < bytes.len() {
        let (start, start_line) = (i, line);
        let end = match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => find(bytes, i, b"\n").unwrap_or(bytes.len()),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                find(bytes, i + 2, b"*/").unwrap_or(bytes.len())
            }
            q @ (b'\'' | b'"' | b'`') => find(bytes, i + 1, &[q]).map_or(bytes.len(), |e| e + 1),
            b'[' => find(bytes, i, b"]").map_or(bytes.len(), |e| e + 1),
            _ => i + 1,
        };
        line += bytes[i..end].iter().filter(|b| **b == b'\n').count();
        if matches!(&bytes[i..end.min(i + 2)], b"--" | b"/*") {
            let body = &script[i + 2..end];
            if let Some(from) = annotation(body) {
                out.push(Note {
                    offset: start,
                    line: start_line,
                    from,
                });
            }
        }
        i = end.max(i + 1);
    }
    out
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// `Some(Ok(old))` for `@renamed from=old` (or `@rename`), `Some(Err)` for
/// a malformed one, `None` for an ordinary comment.
fn annotation(body: &str) -> Option<std::result::Result<String, String>> {
    let at = body.find("@rename")?;
    let rest = body[at + "@rename".len()..]
        .strip_prefix('d')
        .unwrap_or(&body[at + "@rename".len()..]);
    if rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let Some(value) = rest.trim_start().strip_prefix("from=") else {
        return Some(Err(
            "expected `@renamed from=OLD_NAME` (sqldef's notation)".to_string()
        ));
    };
    Some(old_name(value.trim_end_matches("*/")))
}

/// The name after `from=`: quoted with `"`, `` ` `` or `[…]`, or a bare word.
fn old_name(value: &str) -> std::result::Result<String, String> {
    let name = match value.chars().next() {
        Some(q @ ('"' | '`')) => value[1..]
            .split(q)
            .next()
            .filter(|_| value[1..].contains(q))
            .map(str::to_string),
        Some('[') => value[1..]
            .split(']')
            .next()
            .filter(|_| value.contains(']'))
            .map(str::to_string),
        _ => value.split_whitespace().next().map(str::to_string),
    };
    name.filter(|n| !n.is_empty()).ok_or_else(|| {
        "`@renamed from=` needs the old name (quote it if it has spaces)".to_string()
    })
}

/// A `CREATE TABLE name (…)` statement's layout in the token stream.
struct CreateTable<'a> {
    name: String,
    start: usize,
    open: &'a Spanned,
    close: Option<&'a Spanned>,
    items: Vec<&'a [Spanned]>,
}

type Owner = std::result::Result<(String, Option<String>), String>;

impl CreateTable<'_> {
    /// What a note on this statement renames, if the note is on it.
    fn owner(&self, n: &Note) -> Option<Owner> {
        let end = self.close.map_or(usize::MAX, |c| c.end);
        let close_line = self.close.map_or(usize::MAX, |c| c.line);
        if n.offset < self.start || (n.offset > end && n.line != close_line) {
            return None;
        }
        let first = self.items.first().map_or(end, |i| i[0].start);
        if n.offset < self.open.start || (n.line == self.open.line && n.offset < first) {
            return Some(Ok((self.name.clone(), None)));
        }
        if n.offset > end && self.open.line == close_line {
            return Some(Ok((self.name.clone(), None)));
        }
        let item = self.items.iter().enumerate().find(|(k, item)| {
            let last = &item[item.len() - 1];
            let next = self.items.get(k + 1).map_or(usize::MAX, |i| i[0].start);
            n.line == last.line && n.offset > last.start && n.offset < next
        });
        let Some((_, item)) = item else {
            return Some(Err(misplaced()));
        };
        let is_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|kw| item[0].token.is_kw(kw));
        match item[0].token.ident() {
            Some(col) if !is_constraint => Some(Ok((self.name.clone(), Some(col.to_string())))),
            _ => Some(Err(
                "`@renamed` is on a table constraint, not a column".to_string()
            )),
        }
    }
}

/// Every `CREATE [TEMP] TABLE [IF NOT EXISTS] [schema.]name (…)`.
fn create_tables(tokens: &[Spanned]) -> Vec<CreateTable<'_>> {
    let mut out = Vec::new();
    let mut at_start = true;
    for (i, t) in tokens.iter().enumerate() {
        let was_start = at_start;
        at_start = matches!(&t.token, Token::Punct(p) if p == ";");
        if !was_start || !t.token.is_kw("CREATE") {
            continue;
        }
        let Some(k) = (i + 1..(i + 3).min(tokens.len())).find(|&k| tokens[k].token.is_kw("TABLE"))
        else {
            continue;
        };
        let mut k = k + 1;
        if tokens.get(k).is_some_and(|t| t.token.is_kw("IF")) {
            k += 3;
        }
        if matches!(tokens.get(k + 1).map(|t| &t.token), Some(Token::Punct(p)) if p == ".") {
            k += 2;
        }
        let (Some(name), Some(open)) = (
            tokens.get(k).and_then(|t| t.token.ident()),
            tokens.get(k + 1),
        ) else {
            continue;
        };
        if !matches!(&open.token, Token::Punct(p) if p == "(") {
            continue;
        }
        let (items, close) = split_parenthesized(tokens, k + 1);
        out.push(CreateTable {
            name: name.to_string(),
            start: t.start,
            open,
            close: tokens.get(close),
            items,
        });
    }
    out
}

/// The line where a declaration for `table` (or its `column`) goes: the
/// end of the column's definition, or the `CREATE TABLE` line. None for a
/// column of a one-line `CREATE TABLE` (there it would rename the table).
pub fn line_for(script: &str, table: &str, column: Option<&str>) -> Option<usize> {
    let tokens = tokenize(script);
    let t = create_tables(&tokens)
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(table))?;
    let Some(column) = column else {
        return Some(t.open.line);
    };
    // On a one-line CREATE TABLE a comment at the end renames the table.
    if t.close.is_some_and(|c| c.line == t.open.line) {
        return None;
    }
    t.items
        .iter()
        .find(|item| {
            item[0]
                .token
                .ident()
                .is_some_and(|c| c.eq_ignore_ascii_case(column))
        })
        .map(|item| item[item.len() - 1].line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> (String, Option<String>, String) {
        let v = parse(sql).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        (v[0].table.clone(), v[0].column.clone(), v[0].from.clone())
    }

    #[test]
    fn column_and_table_lines() {
        let sql = "CREATE TABLE users ( -- @renamed from=accounts\n  id INTEGER PRIMARY KEY,\n  full_name TEXT, -- @renamed from=name\n  age INT /* @rename from=\"the age\" */\n);\n";
        let v = parse(sql).unwrap();
        let got: Vec<_> = v
            .iter()
            .map(|d| {
                (
                    d.table.as_str(),
                    d.column.as_deref(),
                    d.from.as_str(),
                    d.line,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("users", None, "accounts", 1),
                ("users", Some("full_name"), "name", 3),
                ("users", Some("age"), "the age", 4),
            ]
        );
    }

    #[test]
    fn block_comment_before_the_parenthesis_and_quoted_names() {
        assert_eq!(
            one("CREATE TABLE \"user list\" /* @renamed from=[old list] */ (id INT);"),
            ("user list".into(), None, "old list".into())
        );
        assert_eq!(
            one("CREATE TABLE t(id INT); -- @renamed from=`old t`"),
            ("t".into(), None, "old t".into())
        );
        assert_eq!(
            one("CREATE TABLE t(\n a INT,\n \"b c\" TEXT -- @renamed from=b\n);"),
            ("t".into(), Some("b c".into()), "b".into())
        );
    }

    #[test]
    fn where_a_declaration_goes() {
        let sql = "CREATE TABLE t(\n  id INT,\n  b TEXT\n    NOT NULL,\n  c INT\n);";
        assert_eq!(line_for(sql, "T", Some("b")), Some(4));
        assert_eq!(line_for(sql, "t", None), Some(1));
        assert_eq!(line_for(sql, "t", Some("zz")), None);
        let one_line = "CREATE TABLE t(id INT, b TEXT);";
        assert_eq!(line_for(one_line, "t", Some("b")), None);
        assert_eq!(line_for(one_line, "t", None), Some(1));
    }

    #[test]
    fn strings_and_ordinary_comments_are_not_declarations() {
        let sql =
            "-- a comment about @renamer\nCREATE TABLE t(a TEXT DEFAULT '-- @renamed from=x');";
        assert!(parse(sql).unwrap().is_empty());
    }

    #[test]
    fn misplaced_or_malformed_declarations_name_the_line() {
        let (line, msg) = parse("CREATE TABLE t(a INT);\n-- @renamed from=x\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("CREATE TABLE line"), "{msg}");
        let (line, msg) = parse("CREATE TABLE t(\n a INT -- @renamed\n);").unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("from=OLD_NAME"), "{msg}");
        let (_, msg) =
            parse("CREATE TABLE t(\n a INT,\n PRIMARY KEY (a) -- @renamed from=k\n);").unwrap_err();
        assert!(msg.contains("constraint"), "{msg}");
        let (line, _) =
            parse("CREATE TABLE t(a INT);\nCREATE INDEX i ON t(a); -- @renamed from=j\n")
                .unwrap_err();
        assert_eq!(line, 2);
    }
}
