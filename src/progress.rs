//! Progress bars on standard error, only when it is a terminal and the run
//! is not `--quiet`; with the rate and the time left.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(rows).unwrap_or(0)),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix:24} [{bar:30}] {pos:>10}/{len} rows {per_sec} {elapsed} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(table.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    RowsBar { bar, ops: 0 }
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
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
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
