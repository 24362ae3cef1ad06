//! The in-place path's rehearsal and its validation (see
//! [`crate::pipeline::fastpath`] for which changes take it): the statements
//! applied over the snapshot (a copy-on-write overlay of it), and the proof
//! that the result is right, in time that follows the change.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::pipeline::check;
use crate::pipeline::fastpath::InPlace;
use crate::pipeline::indexcheck;
use crate::pipeline::pageproof;
use crate::pipeline::plan::Plan;
use crate::pipeline::validate::{Report, schema_differences};
use crate::schema::{Schema, Table};
use crate::sqltext::{display_ident, quote_ident};

/// The snapshot with `statements` applied in one transaction, at `dest`:
/// an overlay of the snapshot ([`crate::overlay`]), so only the pages the
/// statements write are written (to `dest`), and every other page this
/// process reads there is the snapshot's own. The snapshot itself is
/// opened read-only and never written.
pub fn rehearse(snapshot: &Path, dest: &Path, statements: &[String]) -> Result<()> {
    crate::overlay::remove(dest);
    crate::overlay::create(snapshot, dest)
        .with_context(|| format!("making {} for the rehearsal", dest.display()))?;
    let conn = Connection::open(dest)?;
    // A scratch file, validated and never deployed (production gets the
    // statements): its journal stays in memory and nothing is synced.
    conn.query_row("PRAGMA journal_mode = MEMORY", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA threads = 2")?;
    let tx = conn.unchecked_transaction()?;
    for s in statements {
        tx.execute_batch(s)
            .with_context(|| format!("rehearsing {s}"))?;
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

fn open_ro(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))
    .and_then(|conn| {
        crate::pipeline::checksum::register(&conn)?;
        Ok(conn)
    })
}

/// Validates a rehearsal against the snapshot it was made from (see the
/// module docs): the page proof ([`crate::pipeline::pageproof`]) for every
/// tree the statements keep; for the trees they change, `quick_check` and
/// the index verification of their tables, and for a table whose rows
/// `DROP COLUMN` rewrote, the rebuild's row count and column checksums;
/// foreign keys of every table whose definition or parent changed; the
/// schema against the source. Nothing is read in proportion to the
/// untouched tables but one byte comparison of the two files.
pub fn validate(
    snapshot: &Path,
    rehearsal: &Path,
    source: &Schema,
    plan: &Plan,
    fast: &InPlace,
) -> Result<Report> {
    let start = Instant::now();
    let (snap, reh) = (open_ro(snapshot)?, open_ro(rehearsal)?);
    let (before, schema) = (Schema::read(&snap, "main")?, Schema::read(&reh, "main")?);
    let proof = pageproof::prove(snapshot, rehearsal, &snap, &reh, fast)?;
    let mut problems = proof.problems.clone();
    let (tables, rows_problems) = rewritten_rows(snapshot, rehearsal, plan, fast)?;
    problems.extend(rows_problems);
    let (integrity, indexes_checked) = changed_structure(&reh, rehearsal, &schema, &proof)?;
    // The same exact matching as the rebuild's validation (an old orphan
    // without a rowid never hides a new one), under the new table names.
    // A table that only gained an index keeps its rows and its keys.
    let rebuilt: std::collections::BTreeSet<String> = proof
        .changed_tables
        .iter()
        .filter(|t| proof.changed_trees.contains(&t.to_lowercase()))
        .cloned()
        .collect();
    let touched = touched_tables(&before, &schema, fast, &rebuilt);
    let new_violations = crate::pipeline::validate::not_in_snapshot(
        snapshot,
        check::foreign_key_violations_in(&reh, &touched)?,
        &|t: &str| {
            fast.name_after(t)
                .unwrap_or_else(|| t.to_string())
                .to_lowercase()
        },
    )?;
    problems.extend(new_tables_empty(&before, &schema, &reh, fast)?);
    let foreign_key = match new_violations.len() {
        0 => Vec::new(),
        n => vec![format!("foreign key: {n} new violation(s)")],
    };
    Ok(Report {
        ok: false,
        tables,
        integrity,
        indexes_checked,
        new_foreign_key_violations: new_violations,
        foreign_key_tables: touched,
        schema_differences: schema_differences(&schema, source),
        problems,
        seconds: 0.0,
        pages_compared: Some(proof.pages_compared),
    }
    .assemble(foreign_key, start))
}

/// The structure of what the statements built: a table whose own tree
/// changed gets `quick_check` and the verification of all its indexes; a
/// kept table (its tree the snapshot's, which passed `quick_check` as the
/// backup) only the verification of its new indexes against it. Returns
/// (problems, indexes verified).
fn changed_structure(
    conn: &Connection,
    path: &Path,
    schema: &Schema,
    proof: &pageproof::Proof,
) -> Result<(Vec<String>, usize)> {
    let mut problems = Vec::new();
    let rebuilt = |table: &str| proof.changed_trees.contains(&table.to_lowercase());
    for t in proof.changed_tables.iter().filter(|t| rebuilt(t)) {
        problems.extend(check::quick_check_of(conn, t)?);
    }
    let changed = |t: &str| {
        proof
            .changed_tables
            .iter()
            .any(|n| n.eq_ignore_ascii_case(t))
    };
    let only = Schema {
        tables: schema
            .tables
            .iter()
            .filter(|t| changed(&t.name))
            .cloned()
            .collect(),
        indexes: schema
            .indexes
            .iter()
            .filter(|i| {
                changed(&i.table)
                    && (rebuilt(&i.table) || proof.changed_trees.contains(&i.name.to_lowercase()))
            })
            .cloned()
            .collect(),
        ..schema.clone()
    };
    problems.extend(indexcheck::verify_beside(conn, path, &only)?);
    Ok((problems, only.indexes.len()))
}

fn touched_tables(
    before: &Schema,
    after: &Schema,
    fast: &InPlace,
    changed: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let lower = |s: &str| s.to_lowercase();
    let mut touched: HashSet<String> = changed.iter().map(|t| lower(t)).collect();
    let renamed = |p: &str| fast.name_after(p).unwrap_or_else(|| p.to_string());
    for t in &after.tables {
        let pre_image = before.tables.iter().find(|b| {
            fast.name_after(&b.name)
                .is_some_and(|n| n.eq_ignore_ascii_case(&t.name))
        });
        let same = pre_image
            .is_some_and(|b| key_signature(b, &renamed) == key_signature(t, &|p| p.to_string()));
        if !same {
            touched.insert(lower(&t.name));
        }
    }
    let mut parents = touched.clone();
    parents.extend(fast.dropped.iter().map(|t| lower(t)));
    parents.extend(
        fast.renamed
            .iter()
            .flat_map(|(old, new)| [lower(old), lower(new)]),
    );
    for t in &after.tables {
        if t.foreign_keys
            .iter()
            .any(|f| parents.contains(&lower(&f.ref_table)))
        {
            touched.insert(lower(&t.name));
        }
    }
    after
        .tables
        .iter()
        .filter(|t| t.virtual_module.is_none() && touched.contains(&lower(&t.name)))
        .map(|t| t.name.clone())
        .collect()
}

/// A table's foreign keys as comparable text, each parent named by `parent`.
fn key_signature(t: &Table, parent: &dyn Fn(&str) -> String) -> std::collections::BTreeSet<String> {
    t.foreign_keys
        .iter()
        .map(|f| {
            format!(
                "{:?}>{}{:?}",
                f.columns
                    .iter()
                    .map(|c| c.to_lowercase())
                    .collect::<Vec<_>>(),
                parent(&f.ref_table).to_lowercase(),
                f.ref_columns
                    .iter()
                    .map(|c| c.to_lowercase())
                    .collect::<Vec<_>>()
            )
        })
        .collect()
}

/// The rebuild's row counts and column checksums, for the tables whose rows
/// were rewritten (none: nothing read).
fn rewritten_rows(
    snapshot: &Path,
    rehearsal: &Path,
    plan: &Plan,
    fast: &InPlace,
) -> Result<(Vec<crate::pipeline::validate::TableCheck>, Vec<String>)> {
    let tables: Vec<_> = plan
        .tables
        .iter()
        .filter(|t| fast.rewrites(&t.table))
        .cloned()
        .collect();
    if tables.len() != fast.rewritten.len() {
        anyhow::bail!("the plan does not have every table whose rows were rewritten");
    }
    if tables.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let only = Plan {
        tables,
        ..plan.clone()
    };
    crate::pipeline::validate::compare_rows(&only, snapshot, rehearsal)
}

/// Tables the rehearsal added must be empty (nothing fills them in place).
fn new_tables_empty(
    before: &Schema,
    after: &Schema,
    conn: &Connection,
    fast: &InPlace,
) -> Result<Vec<String>> {
    let old: HashSet<String> = before
        .tables
        .iter()
        .filter_map(|t| fast.name_after(&t.name))
        .map(|t| t.to_lowercase())
        .collect();
    let mut problems = Vec::new();
    for t in after
        .tables
        .iter()
        .filter(|t| t.virtual_module.is_none() && !old.contains(&t.name.to_lowercase()))
    {
        let rows: i64 = conn.query_row(
            &format!("SELECT count(*) FROM main.{}", quote_ident(&t.name)),
            [],
            |r| r.get(0),
        )?;
        if rows > 0 {
            problems.push(format!(
                "new table {} has {rows} row(s)",
                display_ident(&t.name)
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// The validation of a rehearsal of plain statements (no plan, nothing
    /// renamed or dropped) against the snapshot.
    fn validated(snap: &Path, reh: &Path) -> Report {
        validate(
            snap,
            reh,
            &Schema::load(reh).unwrap(),
            &Plan::default(),
            &InPlace::default(),
        )
        .unwrap()
    }

    /// A snapshot with enough rows for several table pages, and its
    /// rehearsal with a view and a column added.
    fn rehearsed() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.db");
        Connection::open(&snap)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT i, printf('value %d', i) FROM n;",
            )
            .unwrap();
        let reh = dir.path().join("reh.db");
        let statements = [
            "CREATE VIEW w AS SELECT v FROM t".to_string(),
            "ALTER TABLE t ADD COLUMN note TEXT".to_string(),
        ];
        rehearse(&snap, &reh, &statements).unwrap();
        (dir, snap, reh)
    }

    #[test]
    fn an_untouched_rehearsal_has_the_snapshots_pages() {
        let (_dir, snap, reh) = rehearsed();
        let report = validated(&snap, &reh);
        assert!(report.ok, "{:?}", report.problems);
        // Only the pages the statements wrote were compared, the snapshot
        // itself was not written, and the rehearsal is the snapshot's size.
        let pages = std::fs::metadata(&snap).unwrap().len() / 4096;
        let compared = report.pages_compared.unwrap();
        assert!(
            compared >= 1 && compared < pages / 2,
            "{compared} of {pages}"
        );
        assert!(crate::overlay::is_overlay(&reh));
        assert_eq!(std::fs::metadata(&reh).unwrap().len(), pages * 4096);
        // Only the schema changed: nothing but sqlite_schema was walked.
        assert_eq!(report.indexes_checked, 0);
    }

    #[test]
    fn an_updated_value_fails_the_page_proof() {
        let (_dir, snap, reh) = rehearsed();
        Connection::open(&reh)
            .unwrap()
            .execute("UPDATE t SET v = 'planted' WHERE id = 1000", [])
            .unwrap();
        let report = validated(&snap, &reh);
        assert!(
            report.problems.iter().any(|p| p.contains("table t")),
            "{:?}",
            report.problems
        );
        assert!(!report.ok);
    }

    #[test]
    fn an_old_orphan_without_rowid_does_not_hide_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.db");
        let reh = dir.path().join("reh.db");
        Connection::open(&snap)
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 CREATE TABLE p(id INTEGER PRIMARY KEY);
                 CREATE TABLE c(k TEXT PRIMARY KEY, p INT REFERENCES p(id)) WITHOUT ROWID;
                 INSERT INTO c VALUES ('old orphan', 9);",
            )
            .unwrap();
        std::fs::copy(&snap, &reh).unwrap();
        Connection::open(&reh)
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF; INSERT INTO c VALUES ('new orphan', 8);
                 ALTER TABLE c ADD COLUMN q INT REFERENCES p(id);",
            )
            .unwrap();
        let report = validated(&snap, &reh);
        assert_eq!(
            report.new_foreign_key_violations.len(),
            1,
            "{:?}",
            report.problems
        );
        assert!(
            report.problems.iter().any(|p| p.starts_with("foreign key")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_new_reference_is_checked_and_a_plain_new_column_is_not_a_reason_to() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.db");
        Connection::open(&snap)
            .unwrap()
            .execute_batch(
                "CREATE TABLE p(id INTEGER PRIMARY KEY);
                 CREATE TABLE c(id INTEGER PRIMARY KEY, note TEXT);
                 INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 'a'), (2, 'b');",
            )
            .unwrap();
        let rehearse_with = |sql: &str| {
            let reh = dir.path().join("reh.db");
            std::fs::copy(&snap, &reh).unwrap();
            Connection::open(&reh)
                .unwrap()
                .execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
                .unwrap();
            let report = validated(&snap, &reh);
            let (before, after) = (Schema::load(&snap).unwrap(), Schema::load(&reh).unwrap());
            let touched = touched_tables(&before, &after, &InPlace::default(), &Default::default());
            (report, touched)
        };
        let (report, touched) = rehearse_with("ALTER TABLE c ADD COLUMN extra TEXT;");
        assert!(report.ok, "{:?}", report.problems);
        assert!(touched.is_empty(), "{touched:?}");
        // Every row now points at a parent that does not exist.
        let (report, touched) =
            rehearse_with("ALTER TABLE c ADD COLUMN p_id INT REFERENCES p(id) DEFAULT 9;");
        assert_eq!(touched, vec!["c".to_string()]);
        assert_eq!(report.new_foreign_key_violations.len(), 2, "{report:?}");
        assert!(!report.ok);
    }

    #[test]
    fn a_new_index_that_disagrees_with_its_table_fails_validation() {
        // Only the new index of a kept table is verified: it must be.
        let (_dir, snap, reh) = rehearsed();
        Connection::open(&reh)
            .unwrap()
            .execute_batch("CREATE INDEX tv ON t(v)")
            .unwrap();
        let report = validated(&snap, &reh);
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.indexes_checked, 1);
        // Its entries hold v; make its definition say upper(v).
        Connection::open(&reh)
            .unwrap()
            .execute_batch(
                "PRAGMA writable_schema = ON;
                 UPDATE sqlite_schema SET sql = 'CREATE INDEX tv ON t(upper(v))' WHERE name = 'tv';
                 PRAGMA writable_schema = RESET;",
            )
            .unwrap();
        let report = validated(&snap, &reh);
        assert!(
            report.problems.iter().any(|p| p.contains("index tv")),
            "{:?}",
            report.problems
        );
        assert!(!report.ok);
    }

    /// Flips one bit near the end of the last page of table `t`, in the
    /// rehearsal as an overlay or, `materialized`, as a plain file.
    fn flip_a_byte_of_t(reh: &Path, materialized: bool) {
        let conn = open_ro(reh).unwrap();
        let page: i64 = conn
            .query_row("SELECT max(pageno) FROM dbstat WHERE name = 't'", [], |r| {
                r.get(0)
            })
            .unwrap();
        drop(conn);
        let at = page as u64 * 4096 - 10;
        let mut byte = [0u8; 1];
        if materialized {
            assert!(crate::overlay::materialize(reh).unwrap());
            let file = std::fs::OpenOptions::new()
                .write(true)
                .read(true)
                .open(reh)
                .unwrap();
            file.read_exact_at(&mut byte, at).unwrap();
            byte[0] ^= 0x20;
            file.write_all_at(&byte, at).unwrap();
        } else {
            let view = crate::overlay::view(reh).unwrap();
            view.read_exact_at(&mut byte, at).unwrap();
            byte[0] ^= 0x20;
            view.write_at(&byte, at).unwrap();
        }
    }

    #[test]
    fn a_flipped_byte_in_a_table_page_fails_the_page_proof() {
        for materialized in [false, true] {
            let (_dir, snap, reh) = rehearsed();
            flip_a_byte_of_t(&reh, materialized);
            let report = validated(&snap, &reh);
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.contains("differs from the snapshot") && p.contains("table t")),
                "materialized {materialized}: {:?}",
                report.problems
            );
            assert!(!report.ok, "{:?}", report.problems);
        }
    }
}
