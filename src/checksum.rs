//! Order-independent checksums of table contents, computed inside SQLite by a
//! native aggregate so that rows are hashed while they stream.
//!
//! `sqlmorph_colsums(nkey, k1, …, kn, v1, …, vm)` hashes, for every row and
//! every value column, the pair (key values, value with its storage class) and adds the 64-bit hashes per column with wrapping arithmetic. The
//! sums do not depend on row order, so the snapshot and the migrated file can
//! be scanned independently (and in parallel) and compared column by column.

use std::hash::{DefaultHasher, Hasher};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::functions::{Aggregate, Context as FnContext, FunctionFlags};
use rusqlite::types::ValueRef;

/// The name of the SQL aggregate.
pub const FUNCTION: &str = "sqlmorph_colsums";

struct ColSums;

/// The hash of a row key (the values that identify a row).
pub fn key_hash<'a>(keys: impl IntoIterator<Item = ValueRef<'a>>) -> u64 {
    let mut h = DefaultHasher::new();
    for k in keys {
        hash_value(&mut h, k);
    }
    h.finish()
}

/// The hash of one cell: its row key and its value. Column sums add these.
pub fn cell_hash(key: u64, value: ValueRef<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u64(key);
    hash_value(&mut h, value);
    h.finish()
}

fn hash_value(h: &mut DefaultHasher, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => h.write_u8(0),
        ValueRef::Integer(i) => {
            h.write_u8(1);
            h.write_i64(i);
        }
        ValueRef::Real(f) => {
            h.write_u8(2);
            h.write_u64(f.to_bits());
        }
        ValueRef::Text(t) => {
            h.write_u8(3);
            h.write_usize(t.len());
            h.write(t);
        }
        ValueRef::Blob(b) => {
            h.write_u8(4);
            h.write_usize(b.len());
            h.write(b);
        }
    }
}

impl Aggregate<Vec<u64>, Vec<u8>> for ColSums {
    fn init(&self, ctx: &mut FnContext<'_>) -> rusqlite::Result<Vec<u64>> {
        let nkey = usize::try_from(ctx.get::<i64>(0)?).unwrap_or(0);
        Ok(vec![0; ctx.len().saturating_sub(1 + nkey)])
    }

    fn step(&self, ctx: &mut FnContext<'_>, sums: &mut Vec<u64>) -> rusqlite::Result<()> {
        let nkey = usize::try_from(ctx.get::<i64>(0)?).unwrap_or(0);
        let key = key_hash((1..=nkey).map(|k| ctx.get_raw(k)));
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum = sum.wrapping_add(cell_hash(key, ctx.get_raw(1 + nkey + i)));
        }
        Ok(())
    }

    fn finalize(&self, _: &mut FnContext<'_>, sums: Option<Vec<u64>>) -> rusqlite::Result<Vec<u8>> {
        Ok(sums
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect())
    }
}

/// Registers the aggregate on a connection.
pub fn register(conn: &Connection) -> Result<()> {
    conn.create_aggregate_function(
        FUNCTION,
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        ColSums,
    )?;
    Ok(())
}

/// Row count and one checksum per value expression for `FROM {from}`:
/// `keys` identify a row (e.g. `rowid`), `values` are SQL expressions.
pub fn table_sums(
    conn: &Connection,
    from: &str,
    keys: &[String],
    values: &[String],
) -> Result<(i64, Vec<u64>)> {
    let mut args = vec![keys.len().to_string()];
    args.extend(keys.iter().cloned());
    args.extend(values.iter().cloned());
    let sql = format!(
        "SELECT count(*), {FUNCTION}({}) FROM {from}",
        args.join(", ")
    );
    let (count, blob): (i64, Option<Vec<u8>>) = conn
        .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .with_context(|| format!("checksumming {from}"))?;
    let blob = blob.unwrap_or_default();
    let mut sums: Vec<u64> = blob
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    sums.resize(values.len(), 0);
    Ok((count, sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_ignore_order_but_see_every_value() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE a(k INTEGER PRIMARY KEY, v); INSERT INTO a VALUES (1, 'x'), (2, 2), (3, NULL);
             CREATE TABLE b(k INTEGER PRIMARY KEY, v); INSERT INTO b VALUES (3, NULL), (1, 'x'), (2, 2);
             CREATE TABLE c(k INTEGER PRIMARY KEY, v); INSERT INTO c VALUES (1, 'x'), (2, '2'), (3, NULL);",
        )
        .unwrap();
        let keys = vec!["k".to_string()];
        let vals = vec!["v".to_string()];
        let a = table_sums(&conn, "a", &keys, &vals).unwrap();
        let b = table_sums(&conn, "b", &keys, &vals).unwrap();
        let c = table_sums(&conn, "c", &keys, &vals).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, 3);
        assert_ne!(a.1, c.1, "2 and '2' differ");
    }
}
