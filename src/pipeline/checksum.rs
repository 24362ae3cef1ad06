//! Order-independent checksums of table contents, computed inside SQLite by a
//! native aggregate so that rows are hashed while they stream.
//!
//! `sqlmorph_colsums(nkey, k1, …, kn, v1, …, vm)` hashes, for every row and
//! every value column, the pair (key values, value with its storage class) and adds the 64-bit hashes per column with wrapping arithmetic. The
//! sums do not depend on row order, so the snapshot and the migrated file can
//! be scanned independently (and in parallel) and compared column by column.

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::functions::{Aggregate, Context as FnContext, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The name of the SQL aggregate.
pub const FUNCTION: &str = "sqlmorph_colsums";

struct ColSums;

// Seeds that keep the storage classes apart (7 and '7' hash differently).
const NULL: u64 = 0x243f_6a88_85a3_08d3;
const INTEGER: u64 = 0x1319_8a2e_0370_7344;
const REAL: u64 = 0xa409_3822_299f_31d0;
const TEXT: u64 = 0x082e_fa98_ec4e_6c89;
const BLOB: u64 = 0x4528_21e6_38d0_1377;

/// XXH3 of a value with its storage class, seeded by `seed`.
fn value_hash(seed: u64, v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Null => xxh3_64_with_seed(&[], seed ^ NULL),
        ValueRef::Integer(i) => xxh3_64_with_seed(&i.to_le_bytes(), seed ^ INTEGER),
        ValueRef::Real(f) => xxh3_64_with_seed(&f.to_bits().to_le_bytes(), seed ^ REAL),
        ValueRef::Text(t) => xxh3_64_with_seed(t, seed ^ TEXT),
        ValueRef::Blob(b) => xxh3_64_with_seed(b, seed ^ BLOB),
    }
}

/// The hash of a row key (the values that identify a row).
pub fn key_hash<'a>(keys: impl IntoIterator<Item = ValueRef<'a>>) -> u64 {
    keys.into_iter().fold(0, value_hash)
}

/// The hash of one cell: its row key and its value. Column sums add these.
pub fn cell_hash(key: u64, value: ValueRef<'_>) -> u64 {
    value_hash(key, value)
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

/// Value columns per call of the aggregate: SQLite caps the number of
/// arguments of a function (SQLITE_MAX_FUNCTION_ARG, 127 in older builds),
/// so a wide table is summed by several calls in the same scan.
pub const GROUP: usize = 100;

/// The one `SELECT` of [`table_sums`]: the count, the sums, then `extra`.
pub fn sums_sql(from: &str, keys: &[String], values: &[String], extra: &[String]) -> String {
    let mut select = vec!["count(*)".to_string()];
    for group in values.chunks(GROUP) {
        let mut args = vec![keys.len().to_string()];
        args.extend(keys.iter().cloned());
        args.extend(group.iter().cloned());
        select.push(format!("{FUNCTION}({})", args.join(", ")));
    }
    select.extend(extra.iter().cloned());
    format!("SELECT {} FROM {from}", select.join(", "))
}

/// What one scan of a table found.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSums {
    pub rows: i64,
    /// One checksum per value expression.
    pub sums: Vec<u64>,
    /// The values of the extra aggregates computed in the same scan.
    pub extra: Vec<Value>,
}

/// Row count and one checksum per value expression for `FROM {from}`:
/// `keys` identify a row (e.g. `rowid`), `values` are SQL expressions;
/// `extra` are more aggregates for the same scan (index verification's).
/// One scan of the table, however many columns it has.
pub fn table_sums(
    conn: &Connection,
    from: &str,
    keys: &[String],
    values: &[String],
    extra: &[String],
) -> Result<TableSums> {
    let sql = sums_sql(from, keys, values, extra);
    let groups: Vec<&[String]> = values.chunks(GROUP).collect();
    conn.query_row(&sql, [], |r| {
        let rows: i64 = r.get(0)?;
        let mut sums: Vec<u64> = Vec::with_capacity(values.len());
        for (g, group) in groups.iter().enumerate() {
            let blob: Option<Vec<u8>> = r.get(g + 1)?;
            let mut part: Vec<u64> = blob
                .unwrap_or_default()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            part.resize(group.len(), 0);
            sums.extend(part);
        }
        let extra = (0..extra.len())
            .map(|i| r.get(1 + groups.len() + i))
            .collect::<rusqlite::Result<_>>()?;
        Ok(TableSums { rows, sums, extra })
    })
    .with_context(|| format!("checksumming {from}"))
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
        let a = table_sums(&conn, "a", &keys, &vals, &[]).unwrap();
        let b = table_sums(&conn, "b", &keys, &vals, &[]).unwrap();
        let c = table_sums(&conn, "c", &keys, &vals, &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rows, 3);
        assert_ne!(a.sums, c.sums, "2 and '2' differ");
    }

    #[test]
    fn wide_tables_are_summed_in_groups_in_one_scan_with_extra_aggregates() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let cols: Vec<String> = (0..250).map(|i| format!("c{i}")).collect();
        conn.execute_batch(&format!(
            "CREATE TABLE w(k INTEGER PRIMARY KEY, {}); INSERT INTO w(k, c0, c120, c249) VALUES (1, 'a', 2, x'03');",
            cols.join(", ")
        ))
        .unwrap();
        let keys = vec!["k".to_string()];
        let extra = ["max(c120)".to_string(), "count(c0)".to_string()];
        let wide = table_sums(&conn, "w", &keys, &cols, &extra).unwrap();
        assert_eq!(wide.rows, 1);
        assert_eq!(wide.sums.len(), 250);
        assert_eq!(wide.extra, vec![Value::Integer(2), Value::Integer(1)]);
        for (i, c) in [(0, "c0"), (120, "c120"), (249, "c249"), (7, "c7")] {
            let one = table_sums(&conn, "w", &keys, &[c.to_string()], &[]).unwrap();
            assert_eq!(wide.sums[i], one.sums[0], "{c}");
        }
        assert_ne!(wide.sums[0], wide.sums[7]);
    }
}
