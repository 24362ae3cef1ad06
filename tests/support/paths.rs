//! Both paths: a migration the in-place path can take is run the default
//! way in its workspace and with `--rebuild` in a twin of it (the same
//! files, copied before the run), and both runs must end alike: the same
//! exit code, validation passed (or failed) on both, and equal databases —
//! `sqlmorph diff` finds nothing between them, every row of every table
//! is the same value for value, and the header values and history rows
//! are equal. Each run must have taken its path, so a test fails if the
//! in-place path silently stops being taken.

use std::path::Path;
use std::process::Output;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::{Workspace, assert_code, column, run_migration, stderr_of, stdout_of};

/// The two runs of one migration.
pub struct BothWays {
    /// The default run, in the test's workspace (the in-place path).
    pub in_place: Output,
    /// The `--rebuild` run, in the twin.
    pub rebuild: Output,
    /// The twin workspace the rebuild ran in.
    pub twin: Workspace,
}

impl BothWays {
    /// Both outputs, to assert the same thing of each.
    pub fn outputs(&self) -> [&Output; 2] {
        [&self.in_place, &self.rebuild]
    }
}

/// Which path a run took, from its `path:` line (on standard output, or
/// standard error with `--format json`): "in place", "rebuild" or "none".
pub fn path_taken(out: &Output) -> &'static str {
    let text = format!("{}{}", stdout_of(out), stderr_of(out));
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("path: ")).collect();
    if lines.iter().any(|l| l.contains("path: rebuild")) {
        "rebuild"
    } else if lines.iter().any(|l| l.contains("path: in place")) {
        "in place"
    } else {
        "none"
    }
}

impl Workspace {
    /// A new workspace holding a copy of this one's files: production and
    /// its WAL (not its `-shm`, which SQLite rebuilds), the source, recipes
    /// and configuration; not the run directories (`.sqlmorph`) nor
    /// `backups`. Made while no connection writes.
    pub fn twin(&self) -> Workspace {
        let twin = Workspace::new();
        copy_tree(self.dir.path(), twin.dir.path());
        twin
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".sqlmorph" || name == "backups" || name.ends_with("-shm") {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            std::fs::create_dir(&dst).unwrap();
            copy_tree(&src, &dst);
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs `run` (given the extra arguments to add) in `ws` as it is, where it
/// must take the in-place path, and with `--rebuild` in a twin of `ws`;
/// asserts that both end alike and leave equal databases
/// (`prod.sqlite3`). Returns both outputs and the twin.
pub fn both_ways(ws: &Workspace, run: impl Fn(&Workspace, &[&str]) -> Output) -> BothWays {
    let twin = ws.twin();
    let in_place = run(ws, &[]);
    let rebuild = run(&twin, &["--rebuild"]);
    assert_eq!(
        path_taken(&in_place),
        "in place",
        "the default run did not take the in-place path:\n{}{}",
        stdout_of(&in_place),
        stderr_of(&in_place)
    );
    assert_eq!(
        path_taken(&rebuild),
        "rebuild",
        "{}{}",
        stdout_of(&rebuild),
        stderr_of(&rebuild)
    );
    assert_code(&rebuild, in_place.status.code().unwrap_or(-1));
    for marker in ["Validation passed", "validation failed", "deployed to"] {
        let says = |o: &Output| format!("{}{}", stdout_of(o), stderr_of(o)).contains(marker);
        assert_eq!(
            says(&in_place),
            says(&rebuild),
            "only one run says {marker:?}:\n--- in place:\n{}{}\n--- rebuild:\n{}{}",
            stdout_of(&in_place),
            stderr_of(&in_place),
            stdout_of(&rebuild),
            stderr_of(&rebuild)
        );
    }
    assert_same_database(ws, &ws.path("prod.sqlite3"), &twin.path("prod.sqlite3"));
    BothWays {
        in_place,
        rebuild,
        twin,
    }
}

/// [`both_ways`] for `sqlmorph run [recipe] --source schema.sql
/// --production prod.sqlite3 extra…`.
pub fn run_both_ways(ws: &Workspace, recipe: Option<&str>, extra: &[&str]) -> BothWays {
    both_ways(ws, |w, more| {
        let mut args = extra.to_vec();
        args.extend_from_slice(more);
        run_migration(w, recipe, &args)
    })
}

/// Two files hold the same database: no schema difference (`sqlmorph
/// diff`), the same objects, every row of every table (shadow tables
/// aside: their layout is SQLite's), the same header values, and the
/// same history rows (their time and backup file aside).
pub fn assert_same_database(ws: &Workspace, a: &Path, b: &Path) {
    let out = ws.cmd().arg("diff").arg(a).arg(b).output().unwrap();
    assert_code(&out, 0);
    for sql in [
        "SELECT type || ' ' || name || ' on ' || tbl_name FROM sqlite_schema ORDER BY type, name",
        "PRAGMA user_version",
        "PRAGMA application_id",
        "PRAGMA page_size",
        "PRAGMA encoding",
        "PRAGMA journal_mode",
    ] {
        assert_eq!(column(a, sql), column(b, sql), "{sql}");
    }
    assert_eq!(rows_of(a), rows_of(b), "the data differ");
    let history = "SELECT quote(id) || ' ' || tool_version || ' ' || recipe || ' ' || recipe_sha256 \
                   || ' ' || schema_before || ' ' || schema_after || ' ' || row_counts \
                   FROM _sqlmorph_history ORDER BY id";
    let has_history = |db: &Path| {
        column(
            db,
            "SELECT count(*) FROM sqlite_schema WHERE name = '_sqlmorph_history'",
        ) == ["1"]
    };
    assert_eq!(has_history(a), has_history(b), "history table");
    if has_history(a) {
        assert_eq!(column(a, history), column(b, history), "history rows");
    }
    assert_eq!(column(b, "PRAGMA integrity_check"), vec!["ok"]);
}

/// Every row of every table but the shadow, statistics and history
/// tables, by table in name order, in rowid (or key) order, each value
/// with its storage class and exact bytes.
pub fn rows_of(db: &Path) -> Vec<String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<(String, bool)> = conn
        .prepare(
            "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' \
             AND type IN ('table', 'virtual') AND name NOT IN ('sqlite_schema', '_sqlmorph_history') \
             AND name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for (name, without_rowid) in tables {
        out.push(format!("table {name}"));
        let q = format!("\"{}\"", name.replace('"', "\"\""));
        let by_rowid = format!("SELECT rowid, * FROM {q} ORDER BY rowid");
        let mut stmt = match conn.prepare(&by_rowid) {
            Ok(s) if !without_rowid => s,
            _ => {
                let n = conn
                    .prepare(&format!("SELECT * FROM {q}"))
                    .unwrap()
                    .column_count();
                let order = (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
                conn.prepare(&format!("SELECT * FROM {q} ORDER BY {}", order.join(", ")))
                    .unwrap()
            }
        };
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n).map(|i| render(r.get_ref(i).unwrap())).collect();
            out.push(format!("  {}", cells.join(" | ")));
        }
    }
    out
}

fn render(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("int {i}"),
        ValueRef::Real(f) => format!("real {:016x}", f.to_bits()),
        ValueRef::Text(t) if t.len() > 256 => {
            format!("text {} bytes {}", t.len(), hex::encode(Sha256::digest(t)))
        }
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => format!("text {s:?}"),
            _ => format!("text x'{}'", hex::encode(t)),
        },
        ValueRef::Blob(b) if b.len() > 256 => {
            format!("blob {} bytes {}", b.len(), hex::encode(Sha256::digest(b)))
        }
        ValueRef::Blob(b) => format!("blob x'{}'", hex::encode(b)),
    }
}
