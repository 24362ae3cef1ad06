//! SQL text handling: a small SQLite tokenizer, the normalization that makes
//! formatting differences disappear, identifier quoting, and splitting a
//! `.sql` file into statements with their line numbers.
//!
//! Normalization never re-renders a statement from metadata (that is how other
//! tools lose partial-index `WHERE` clauses and `COLLATE`s); it keeps every
//! token of the original text and changes only what SQLite itself ignores:
//! whitespace, comments, keyword case and the quoting style of identifiers.

/// One lexical token of SQLite's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word: a keyword or an unquoted identifier.
    Word(String),
    /// An identifier written with `"…"`, `` `…` `` or `[…]`, unquoted.
    Quoted(String),
    /// A string literal, kept exactly as written (with its quotes).
    Str(String),
    /// A number, blob literal or parameter, kept as written.
    Literal(String),
    /// Punctuation and operators (`(`, `,`, `||`, `<=`, …).
    Punct(String),
}

impl Token {
    /// True for a bare word equal (case-insensitively) to `kw`.
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The identifier this token names, if it can name one.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            Token::Str(s) => Some(s.trim_matches('\'')),
            _ => None,
        }
    }
}

/// A token with the 1-based line it starts on.
#[derive(Debug, Clone)]
pub struct Spanned {
    pub token: Token,
    pub line: usize,
    pub start: usize,
    pub end: usize,
}

/// Tokenizes SQL text. Comments and whitespace are dropped. Unterminated
/// quotes or comments run to the end of the input (SQLite reports those as
/// errors when the statement is executed; this tokenizer never fails).
pub fn tokenize(sql: &str) -> Vec<Spanned> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let start_line = line;
        let token = match c {
            b'\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
                continue;
            }
            b'\'' => {
                i = scan_quoted(bytes, i, b'\'', &mut line);
                Token::Str(sql[start..i].to_string())
            }
            b'"' | b'`' => {
                i = scan_quoted(bytes, i, c, &mut line);
                let inner = &sql[start + 1..i.saturating_sub(1).max(start + 1)];
                let q = c as char;
                Token::Quoted(inner.replace(&format!("{q}{q}"), &q.to_string()))
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                Token::Quoted(sql[start + 1..i.saturating_sub(1).max(start + 1)].to_string())
            }
            b'x' | b'X' if bytes.get(i + 1) == Some(&b'\'') => {
                i = scan_quoted(bytes, i + 1, b'\'', &mut line);
                Token::Literal(sql[start..i].to_ascii_uppercase())
            }
            c if c.is_ascii_digit()
                || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                i = scan_number(bytes, i);
                Token::Literal(sql[start..i].to_string())
            }
            b'?' | b':' | b'@' | b'$' if i + 1 < bytes.len() && is_ident_byte(bytes[i + 1]) => {
                i += 1;
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                Token::Literal(sql[start..i].to_string())
            }
            c if is_ident_start(c) => {
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                Token::Word(sql[start..i].to_string())
            }
            _ => {
                let two = sql.get(i..i + 2).unwrap_or("");
                let len = match two {
                    "||" | "<=" | ">=" | "==" | "!=" | "<>" | "<<" | ">>" | "->" => {
                        if sql.get(i..i + 3) == Some("->>") {
                            3
                        } else {
                            2
                        }
                    }
                    _ => sql[i..].chars().next().map_or(1, char::len_utf8),
                };
                i += len;
                Token::Punct(sql[start..i].to_string())
            }
        };
        out.push(Spanned {
            token,
            line: start_line,
            start,
            end: i,
        });
    }
    out
}

fn scan_quoted(bytes: &[u8], mut i: usize, quote: u8, line: &mut usize) -> usize {
    i += 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if bytes[i] == b'\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

fn scan_number(bytes: &[u8], mut i: usize) -> usize {
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'_') {
            i += 1;
        }
        return i;
    }
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_') {
        i += 1;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// SQLite's keywords (sqlite.org/lang_keywords.html).
const KEYWORDS: &[&str] = &[
    "ABORT",
    "ACTION",
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ALWAYS",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "ATTACH",
    "AUTOINCREMENT",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DATABASE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DESC",
    "DETACH",
    "DISTINCT",
    "DO",
    "DROP",
    "EACH",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXCLUDE",
    "EXCLUSIVE",
    "EXISTS",
    "EXPLAIN",
    "FAIL",
    "FILTER",
    "FIRST",
    "FOLLOWING",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "GENERATED",
    "GLOB",
    "GROUP",
    "GROUPS",
    "HAVING",
    "IF",
    "IGNORE",
    "IMMEDIATE",
    "IN",
    "INDEX",
    "INDEXED",
    "INITIALLY",
    "INNER",
    "INSERT",
    "INSTEAD",
    "INTERSECT",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "KEY",
    "LAST",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MATCH",
    "MATERIALIZED",
    "NATURAL",
    "NO",
    "NOT",
    "NOTHING",
    "NOTNULL",
    "NULL",
    "NULLS",
    "OF",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OTHERS",
    "OUTER",
    "OVER",
    "PARTITION",
    "PLAN",
    "PRAGMA",
    "PRECEDING",
    "PRIMARY",
    "QUERY",
    "RAISE",
    "RANGE",
    "RECURSIVE",
    "REFERENCES",
    "REGEXP",
    "REINDEX",
    "RELEASE",
    "RENAME",
    "REPLACE",
    "RESTRICT",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWS",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "STORED",
    "STRICT",
    "TABLE",
    "TEMP",
    "TEMPORARY",
    "THEN",
    "TIES",
    "TO",
    "TRANSACTION",
    "TRIGGER",
    "UNBOUNDED",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VACUUM",
    "VALUES",
    "VIEW",
    "VIRTUAL",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHOUT",
    "ROWID",
];

/// True if `word` is one of SQLite's keywords (any case).
pub fn is_keyword(word: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    // Keywords are short and ASCII: longer words need no lookup.
    if word.len() > 20 || !word.is_ascii() {
        return false;
    }
    SET.get_or_init(|| KEYWORDS.iter().copied().collect())
        .contains(word.to_ascii_uppercase().as_str())
}

/// Quotes an identifier for SQL text: always with double quotes, embedded
/// quotes doubled. Use this when building statements.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Renders an identifier the way normalized SQL shows it: bare when that is
/// unambiguous, double-quoted otherwise.
pub fn display_ident(name: &str) -> String {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !is_keyword(name);
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// Quotes a string literal.
pub fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The normalized form of one statement: comments and redundant whitespace
/// dropped, keywords upper-case, identifiers in one quoting style (case kept),
/// no trailing semicolon.
pub fn normalize(sql: &str) -> String {
    render(&tokenize(sql))
}

/// Renders tokens as normalized SQL.
pub fn render(tokens: &[Spanned]) -> String {
    let mut out = String::with_capacity(tokens.len() * 6);
    let mut prev: Option<&Token> = None;
    for t in tokens {
        let text = match &t.token {
            Token::Word(w) if is_keyword(w) => w.to_ascii_uppercase(),
            Token::Word(w) | Token::Quoted(w) => display_ident(w),
            Token::Str(s) | Token::Literal(s) | Token::Punct(s) => s.clone(),
        };
        if let Some(p) = prev {
            let glue = matches!(&t.token, Token::Punct(s) if s == "," || s == ")" || s == "." || s == ";")
                || matches!(p, Token::Punct(s) if s == "(" || s == ".")
                || (matches!(&t.token, Token::Punct(s) if s == "(")
                    && (matches!(p, Token::Word(w) if !is_keyword(w))
                        || matches!(p, Token::Quoted(_))));
            if !glue {
                out.push(' ');
            }
        }
        out.push_str(&text);
        prev = Some(&t.token);
    }
    while out.ends_with(';') {
        out.pop();
        while out.ends_with(' ') {
            out.pop();
        }
    }
    out
}

/// Normalized SQL with identifier and type-name case folded: the form two
/// statements are compared in, since SQLite ignores that case. String
/// literals keep their case.
pub fn fold_case(sql: &str) -> String {
    let tokens: Vec<Spanned> = tokenize(sql)
        .into_iter()
        .map(|mut t| {
            if let Token::Word(w) | Token::Quoted(w) = &mut t.token {
                *w = w.to_lowercase();
            }
            t
        })
        .collect();
    render(&tokens)
}

/// A CREATE TABLE in the form that compares equal exactly when SQLite
/// builds the same table: [`fold_case`], and a generated column's optional
/// words spelled out the same way: `AS (e)`, `GENERATED ALWAYS AS (e)` and
/// `AS (e) VIRTUAL` (SQLite's default) all become `AS (e) VIRTUAL`, while
/// `STORED` stays. Only an `AS (` inside the column list, at the depth of
/// the column definitions, starts a generated column.
pub fn canonical_table(sql: &str) -> String {
    let tokens = tokenize(&fold_case(sql));
    let is = |i: usize, w: &str| matches!(tokens.get(i), Some(Spanned { token: Token::Word(x), .. }) if x.eq_ignore_ascii_case(w));
    let punct = |i: usize, p: &str| matches!(tokens.get(i), Some(Spanned { token: Token::Punct(x), .. }) if x == p);
    let mut out: Vec<Spanned> = Vec::with_capacity(tokens.len());
    let mut depth = 0usize;
    let mut generated_at: Option<usize> = None; // depth of an open `AS (`
    for (i, t) in tokens.iter().enumerate() {
        if depth == 1 && is(i, "generated") && is(i + 1, "always") && is(i + 2, "as") {
            continue;
        }
        if depth == 1 && is(i, "always") && i > 0 && is(i - 1, "generated") && is(i + 1, "as") {
            continue;
        }
        if depth == 1 && is(i, "as") && punct(i + 1, "(") {
            generated_at = Some(depth + 1);
        }
        if punct(i, "(") {
            depth += 1;
        }
        let closing = punct(i, ")") && generated_at == Some(depth);
        if punct(i, ")") {
            depth = depth.saturating_sub(1);
        }
        out.push(t.clone());
        if closing {
            generated_at = None;
            if !is(i + 1, "stored") && !is(i + 1, "virtual") {
                out.push(Spanned {
                    token: Token::Word("VIRTUAL".into()),
                    ..t.clone()
                });
            }
        }
    }
    render(&out)
}

/// Splits the tokens between a pair of parentheses at top-level commas.
/// `tokens[open]` must be `(`; returns the items and the index of the `)`.
pub fn split_parenthesized(tokens: &[Spanned], open: usize) -> (Vec<&[Spanned]>, usize) {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut item_start = open + 1;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match &t.token {
            Token::Punct(p) if p == "(" => depth += 1,
            Token::Punct(p) if p == ")" => {
                depth -= 1;
                if depth == 0 {
                    if item_start < i {
                        items.push(&tokens[item_start..i]);
                    }
                    return (items, i);
                }
            }
            Token::Punct(p) if p == "," && depth == 1 => {
                items.push(&tokens[item_start..i]);
                item_start = i + 1;
            }
            _ => {}
        }
    }
    if item_start < tokens.len() {
        items.push(&tokens[item_start..]);
    }
    (items, tokens.len())
}

#[cfg(test)]
mod tests {

    #[test]
    fn canonical_table_spells_generated_columns_one_way() {
        let c = canonical_table;
        let base = c("CREATE TABLE g(a INT, b INT AS (a * 2))");
        assert!(base.ends_with("AS (a * 2) VIRTUAL)"), "{base}");
        assert_eq!(c("CREATE TABLE g(a INT, b INT AS (a * 2) virtual)"), base);
        assert_eq!(
            c("create table G(A int, B int generated always as (A * 2))"),
            base
        );
        assert_ne!(c("CREATE TABLE g(a INT, b INT AS (a * 2) STORED)"), base);
        // CAST(… AS …) inside an expression is not a generated column.
        let cast = c("CREATE TABLE g(a INT CHECK (CAST(a AS TEXT) <> ''), b AS (CAST(a AS TEXT)))");
        assert_eq!(cast.matches("VIRTUAL").count(), 1, "{cast}");
        assert!(cast.ends_with("b AS (CAST (a AS text)) VIRTUAL)"), "{cast}");
    }

    use super::*;

    #[test]
    fn formatting_does_not_matter() {
        let a = "CREATE TABLE \"users\" (\n  id integer PRIMARY KEY, -- the id\n  [name] text /* c */ NOT NULL\n);";
        let b = "create table users(id INTEGER primary key,`name` TEXT not null)";
        assert_eq!(fold_case(&normalize(a)), fold_case(&normalize(b)));
        assert_eq!(
            normalize(b),
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        );
    }

    #[test]
    fn real_changes_stay_visible() {
        assert_ne!(
            normalize("CREATE TABLE t(a TEXT DEFAULT 'x')"),
            normalize("CREATE TABLE t(a TEXT DEFAULT 'X')")
        );
        assert_ne!(
            normalize("CREATE TABLE t(\"a b\" INT)"),
            normalize("CREATE TABLE t(a_b INT)")
        );
        assert_ne!(
            normalize("CREATE INDEX i ON t(a DESC)"),
            normalize("CREATE INDEX i ON t(a)")
        );
    }

    #[test]
    fn identifiers_that_need_quotes_keep_them() {
        assert_eq!(display_ident("order"), "\"order\"");
        assert_eq!(display_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(display_ident("Users"), "Users");
    }
}
