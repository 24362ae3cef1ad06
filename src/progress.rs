//! Progress bars on standard error, only when it is a terminal and the run
//! is not `--quiet`; with the rate and the time left. A bar is cleared when
//! done, or dropped (an error), so the log lines stay readable.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{
    HumanCount, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle,
};
use rusqlite::Connection;

/// True when progress bars should be drawn.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && crate::term::verbosity() > crate::term::Verbosity::Quiet
}

/// A per-table bar for a copy whose progress is estimated from SQLite's
/// virtual-machine steps (the progress handler) and the table's row count.
#[derive(Clone)]
pub struct RowsBar {
    bar: Option<ProgressBar>,
    ops: u64,
}

/// A bar for copying `rows` rows of `table`; hidden when `show` is false.
pub fn rows_bar(show: bool, table: &str, rows: i64) -> RowsBar {
    let bar = show.then(|| {
        let bar = ProgressBar::hidden().with_finish(ProgressFinish::AndClear);
        bar.set_length(u64::try_from(rows).unwrap_or(0));
        show_rows(&bar, table);
        bar
    });
    RowsBar { bar, ops: 0 }
}

/// Draws `bar` (counting rows, perhaps hidden so far) on standard error
/// with `label`; its rate and time left are measured from now.
pub fn show_rows(bar: &ProgressBar, label: &str) {
    bar.set_style(
        ProgressStyle::with_template(
            "  {prefix:24} [{bar:30}] {pos:>10}/{len} rows {rate} {elapsed} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        // Whole rows a second (`per_sec` shows four decimals).
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", HumanCount(s.per_sec() as u64));
        })
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.reset_eta();
    bar.reset_elapsed();
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(200));
}

/// The virtual-machine steps a statement of `conn` takes per row: the
/// length of every loop of its program (`EXPLAIN`), summed (a `CREATE
/// INDEX` has two: the table scan and the sorted insert). At least 1.
pub fn ops_per_row(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare(&format!("EXPLAIN {sql}"))?;
    let mut rows = stmt.query([])?;
    let mut ops = 0;
    while let Some(r) = rows.next()? {
        let (addr, opcode, jump): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(3)?);
        if matches!(opcode.as_str(), "Next" | "Prev" | "SorterNext" | "VNext") && jump <= addr {
            ops += (addr - jump + 1) as u64;
        }
    }
    Ok(ops.max(1))
}

/// The rows one statement has gone through, estimated from the steps
/// SQLite's progress handler reports, added to a bar that other statements
/// (on other threads) may share. Clones share the count.
#[derive(Clone)]
pub struct StatementRows {
    bar: ProgressBar,
    rows: u64,
    ops_per_row: u64,
    ops: Arc<AtomicU64>,
    credited: Arc<AtomicU64>,
}

impl StatementRows {
    /// A statement over `rows` rows at `ops_per_row` steps a row.
    pub fn new(bar: &ProgressBar, rows: u64, ops_per_row: u64) -> StatementRows {
        StatementRows {
            bar: bar.clone(),
            rows,
            ops_per_row: ops_per_row.max(1),
            ops: Arc::new(AtomicU64::new(0)),
            credited: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records `ops` more steps (never more than `rows` rows).
    pub fn tick_ops(&self, ops: u64) {
        let ops = self.ops.fetch_add(ops, Ordering::Relaxed) + ops;
        let rows = (ops / self.ops_per_row).min(self.rows);
        let before = self.credited.fetch_max(rows, Ordering::Relaxed);
        if rows > before {
            self.bar.inc(rows - before);
        }
    }

    /// The statement is done: all its rows are counted.
    pub fn finish(&self) {
        let before = self.credited.swap(self.rows, Ordering::Relaxed);
        self.bar.inc(self.rows.saturating_sub(before));
    }
}

impl RowsBar {
    /// Records `ops` more VM steps, at about `ops_per_row` steps a row.
    pub fn tick_ops(&mut self, ops: u64, ops_per_row: u64) {
        if let Some(bar) = &self.bar {
            self.ops += ops;
            let rows = self.ops / ops_per_row.max(1);
            let len = bar.length().unwrap_or(0);
            bar.set_position(rows.min(len));
        }
    }

    /// Completes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            if let Some(len) = bar.length() {
                bar.set_position(len);
            }
            bar.finish_and_clear();
        }
    }
}

/// A bar for a transfer of `bytes` bytes (backups, snapshots, uploads).
pub fn bytes_bar(show: bool, label: &str, bytes: u64) -> Option<ProgressBar> {
    show.then(|| {
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr())
            .with_finish(ProgressFinish::AndClear);
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps SQLite really takes for `sql`, counted one by one.
    fn steps(conn: &mut Connection, sql: &str) -> u64 {
        let counted = Arc::new(AtomicU64::new(0));
        let c = counted.clone();
        conn.progress_handler(
            1,
            Some(move || {
                c.fetch_add(1, Ordering::Relaxed);
                false
            }),
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
        conn.progress_handler(1, None::<fn() -> bool>).unwrap();
        counted.load(Ordering::Relaxed)
    }

    #[test]
    fn the_steps_per_row_of_an_index_build_and_a_scan_predict_their_work() {
        let mut conn = Connection::open_in_memory().unwrap();
        let rows = 20_000;
        conn.execute_batch(&format!(
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b, c);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT i, i % 97, 'x' || i FROM n;"
        ))
        .unwrap();
        for sql in [
            "CREATE INDEX i1 ON t(b)",
            "CREATE UNIQUE INDEX i2 ON t(c, b)",
            "SELECT count(*), sum(length(c)), max(b) FROM t",
        ] {
            let predicted = rows * ops_per_row(&conn, sql).unwrap();
            let taken = steps(&mut conn, sql);
            let ratio = taken as f64 / predicted as f64;
            assert!(
                (0.95..1.05).contains(&ratio),
                "{sql}: {taken} steps taken, {predicted} predicted"
            );
        }
    }

    #[test]
    fn statements_on_two_threads_add_their_rows_to_one_bar_and_never_more() {
        let bar = ProgressBar::hidden();
        bar.set_length(3_000);
        let (a, b) = (
            StatementRows::new(&bar, 1_000, 10),
            StatementRows::new(&bar, 2_000, 5),
        );
        std::thread::scope(|s| {
            s.spawn(|| (0..50).for_each(|_| a.tick_ops(1000)));
            s.spawn(|| (0..5).for_each(|_| b.tick_ops(1000)));
        });
        // a's estimate (5,000 rows) is capped at its 1,000; b is at 1,000 of 2,000.
        assert_eq!(bar.position(), 2_000);
        b.finish();
        a.finish();
        assert_eq!(bar.position(), 3_000);
    }
}
