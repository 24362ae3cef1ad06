//! The values whose conversion by a column's type is known without asking
//! SQLite for each of them.
//!
//! The review measures a conversion by handing every value to a temporary
//! column of the new type, so that SQLite's own affinity rules decide
//! ([`crate::pipeline::plan`]). That costs a trigger per row. Most values
//! of a real conversion are plain: NULL, an integer, or the text of a
//! decimal integer (`'120'`). What a column does with those is learned
//! once, by storing two probes in a column of the same declared type, and
//! then applied here; every other value still goes through SQLite.

use anyhow::Result;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::sqltext::quote_ident;

/// What a column stores for a probe value: its storage class.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stored {
    Integer,
    Real,
    Text,
    Other,
}

impl Stored {
    fn of(type_name: &str) -> Stored {
        match type_name {
            "integer" => Stored::Integer,
            "real" => Stored::Real,
            "text" => Stored::Text,
            _ => Stored::Other,
        }
    }
}

/// How a column of one declared type stores plain values.
#[derive(Debug, Clone, Copy)]
pub struct Plain {
    /// What it stores for the text `'12'`.
    text_integer: Stored,
    /// What it stores for the integer `12`.
    integer: Stored,
}

/// The largest integer every value up to which a double holds exactly.
const EXACT_IN_DOUBLE: u64 = 1 << 53;

impl Plain {
    /// Learns it from SQLite: the probes go into a temporary column of the
    /// declared type `decl` (empty: no type) on `conn`.
    pub fn probe(conn: &Connection, decl: &str) -> Result<Plain> {
        let table = quote_ident("sqlmorph_probe");
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.{table};
             CREATE TEMP TABLE {table}(v {decl});
             INSERT INTO temp.{table}(rowid, v) VALUES (1, '12'), (2, 12);"
        ))?;
        let stored = |rowid: i64| -> Result<Stored> {
            let name: String = conn.query_row(
                &format!("SELECT typeof(v) FROM temp.{table} WHERE rowid = ?1"),
                [rowid],
                |r| r.get(0),
            )?;
            Ok(Stored::of(&name))
        };
        let plain = Plain {
            text_integer: stored(1)?,
            integer: stored(2)?,
        };
        conn.execute_batch(&format!("DROP TABLE temp.{table}"))?;
        Ok(plain)
    }

    /// The value the column stores for `v`, when `v` is plain (NULL, an
    /// integer, or a decimal integer's text of at most 18 digits, without
    /// sign `+`, spaces or leading zeros); `None` when SQLite must decide.
    pub fn stored<'a>(&self, v: ValueRef<'a>) -> Option<ValueRef<'a>> {
        match v {
            ValueRef::Null => Some(ValueRef::Null),
            ValueRef::Integer(n) => self.number(self.integer, n, v),
            ValueRef::Text(t) => self.number(self.text_integer, decimal(t)?, v),
            ValueRef::Real(_) | ValueRef::Blob(_) => None,
        }
    }

    fn number<'a>(&self, stored: Stored, n: i64, v: ValueRef<'a>) -> Option<ValueRef<'a>> {
        match stored {
            Stored::Integer => Some(ValueRef::Integer(n)),
            Stored::Real if n.unsigned_abs() <= EXACT_IN_DOUBLE => Some(ValueRef::Real(n as f64)),
            // A text stays as it is (TEXT or no affinity); an integer
            // would become its text, which SQLite writes.
            Stored::Text if matches!(v, ValueRef::Text(_)) => Some(v),
            _ => None,
        }
    }
}

/// The integer a text spells in plain decimal: `0`, or an optional `-`
/// and 1 to 18 digits not starting with `0`.
fn decimal(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let plain = match digits {
        [b'0'] => digits.len() == text.len(),
        [b'1'..=b'9', rest @ ..] => rest.len() < 18 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !plain {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    /// What SQLite itself stores for `v` in a column declared `decl`.
    fn sqlite_stores(conn: &Connection, decl: &str, v: &Value) -> Value {
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.t; CREATE TEMP TABLE t(v {decl});"
        ))
        .unwrap();
        conn.execute("INSERT INTO temp.t VALUES (?1)", [v]).unwrap();
        conn.query_row("SELECT v FROM temp.t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_plain_value_is_stored_as_sqlite_stores_it_and_the_rest_is_left_to_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        let decls = [
            "",
            "INTEGER",
            "INT",
            "BIGINT",
            "NUMERIC",
            "DECIMAL(5,2)",
            "BOOLEAN",
            "DATE",
            "REAL",
            "FLOAT",
            "DOUBLE",
            "TEXT",
            "VARCHAR(10)",
            "CLOB",
            "BLOB",
            "ANY",
        ];
        let text = |s: &str| Value::Text(s.to_string());
        let mut values = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(-5),
            Value::Integer(120),
            Value::Integer(EXACT_IN_DOUBLE as i64 + 1),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Real(1.5),
            Value::Real(2.0),
            Value::Blob(vec![1, 2]),
        ];
        for t in [
            "0",
            "7",
            "-7",
            "120",
            "999999999999999999",
            "-999999999999999999",
            "9007199254740993",
            "1000000000000000000",
            "007",
            "-0",
            "+5",
            " 12",
            "12 ",
            "1e3",
            "1.0",
            "1.5",
            "0x10",
            "abc",
            "",
            "-",
            "١٢",
        ] {
            values.push(text(t));
        }
        let mut settled = 0;
        for decl in decls {
            let plain = Plain::probe(&conn, decl).unwrap();
            for v in &values {
                let Some(ours) = plain.stored(ValueRef::from(v)) else {
                    continue;
                };
                settled += 1;
                let theirs = sqlite_stores(&conn, decl, v);
                let ours = match ours {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Integer(n),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).unwrap()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                };
                assert_eq!(ours, theirs, "{v:?} in a column declared {decl:?}");
            }
            // The probe leaves nothing behind.
            let left: i64 = conn
                .query_row(
                    "SELECT count(*) FROM temp.sqlite_schema WHERE name = 'sqlmorph_probe'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(left, 0);
        }
        assert!(settled > 100, "{settled} values settled without SQLite");
    }

    #[test]
    fn only_plain_decimal_text_is_read_as_an_integer() {
        assert_eq!(decimal(b"120"), Some(120));
        assert_eq!(decimal(b"-120"), Some(-120));
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(
            decimal(b"999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for t in [
            &b"-0"[..],
            b"007",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"1e2",
            b"",
            b"-",
            b"1000000000000000000",
        ] {
            assert_eq!(decimal(t), None, "{:?}", String::from_utf8_lossy(t));
        }
    }
}
