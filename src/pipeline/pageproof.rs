//! The proof that an in-place rehearsal kept every b-tree it did not mean to
//! change, in time that follows the change: the trees the statements touch
//! are walked, the others never are.
//!
//! The snapshot passed `quick_check` as the run's backup (it is that file),
//! so each of its pages is exactly one of: a page of one b-tree, a freelist
//! page, or SQLite's lock-byte page. A b-tree is its root page and the pages
//! reachable from it. So if, comparing the two files page by page, every
//! page that differs was in the snapshot a page of a *changed* tree (one the
//! statements drop, rewrite or re-create, and `sqlite_schema`), free, or
//! past its end, then every *kept* tree, having the same root, reaches the
//! very same bytes in the rehearsal: every kept row and index entry is
//! unchanged. The rehearsal's own changed trees and freelist must then use
//! only pages the snapshot did not keep (nothing is shared), and account
//! for every page it did not keep (nothing leaks). Only changed trees are
//! walked (`dbstat` restricted by name) and only freelists read. The pages
//! that differ are found by comparing, with the snapshot's, only the pages
//! the rehearsal wrote: it is an overlay of the snapshot
//! ([`crate::overlay`]), whose other pages are read from the snapshot
//! itself. (Two plain files are compared byte for byte.)

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

use crate::pipeline::fastpath::InPlace;
use crate::sqltext::display_ident;

/// What the comparison proved.
#[derive(Debug, Default)]
pub struct Proof {
    /// Pages of the rehearsal compared with the snapshot's.
    pub pages_compared: u64,
    /// Pages that differ (page 1 and the changed trees' pages).
    pub pages_changed: u64,
    /// Trees of the rehearsal that are not the snapshot's (new, re-created,
    /// rewritten), by table: what integrity and index checks must cover.
    pub changed_tables: BTreeSet<String>,
    /// The names (lower case) of those trees: tables and indexes.
    pub changed_trees: BTreeSet<String>,
    pub problems: Vec<String>,
}

/// One b-tree of a file, from `sqlite_schema`.
#[derive(Debug, Clone)]
struct Tree {
    kind: String,
    name: String,
    table: String,
    root: i64,
}

/// The b-trees of a file, `sqlite_schema` (root 1) first.
fn trees(conn: &Connection) -> Result<Vec<Tree>> {
    let mut out = vec![Tree {
        kind: "table".into(),
        name: "sqlite_schema".into(),
        table: "sqlite_schema".into(),
        root: 1,
    }];
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, rootpage FROM sqlite_schema WHERE rootpage > 0 ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Tree {
            kind: r.get(0)?,
            name: r.get(1)?,
            table: r.get(2)?,
            root: r.get(3)?,
        })
    })?;
    out.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    Ok(out)
}

/// The pages of one tree (`dbstat` walks only the tree it is asked for).
fn pages_of(conn: &Connection, name: &str) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT pageno FROM dbstat WHERE name = ?1")?;
    let pages = stmt.query_map([name], |r| r.get(0))?;
    Ok(pages.collect::<rusqlite::Result<_>>()?)
}

/// A database's pages as SQLite reads them: a plain file, or an overlay.
enum Source {
    File(File),
    Overlay(crate::overlay::View),
}

impl Source {
    fn open(path: &Path) -> Result<Source> {
        Ok(match crate::overlay::view(path) {
            Some(view) => Source::Overlay(view),
            None => Source::File(
                File::open(path).with_context(|| format!("opening {}", path.display()))?,
            ),
        })
    }

    fn len(&self) -> Result<u64> {
        Ok(match self {
            Source::File(f) => f.metadata()?.len(),
            Source::Overlay(v) => v.bytes(),
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        match self {
            Source::File(f) => Ok(f.read_exact_at(buf, at)?),
            Source::Overlay(v) => v.read_exact_at(buf, at),
        }
    }
}

/// The freelist of a file (trunk and leaf pages), read from its header.
fn freelist(file: &Source, page_size: u64) -> Result<BTreeSet<i64>> {
    let mut head = [0u8; 8];
    file.read_exact_at(&mut head, 32)?;
    let mut trunk = u32::from_be_bytes(head[0..4].try_into()?) as u64;
    let total = u32::from_be_bytes(head[4..8].try_into()?) as usize;
    let mut pages = BTreeSet::new();
    let mut page = vec![0u8; page_size as usize];
    while trunk != 0 {
        if !pages.insert(trunk as i64) || pages.len() > total {
            bail!("the freelist is not a chain of {total} page(s)");
        }
        file.read_exact_at(&mut page, (trunk - 1) * page_size)?;
        let leaves = u32::from_be_bytes(page[4..8].try_into()?) as usize;
        if 8 + 4 * leaves > page.len() {
            bail!("freelist trunk page {trunk} lists {leaves} leaves");
        }
        for i in 0..leaves {
            let at = 8 + 4 * i;
            pages.insert(u32::from_be_bytes(page[at..at + 4].try_into()?) as i64);
        }
        trunk = u32::from_be_bytes(page[0..4].try_into()?) as u64;
    }
    if pages.len() != total {
        bail!(
            "the freelist holds {} page(s), its header says {total}",
            pages.len()
        );
    }
    Ok(pages)
}

/// The pages whose bytes differ between the snapshot and the rehearsal
/// (pages past the shorter one's end count as differing), and how many
/// were compared: only the pages an overlay wrote (its others are the
/// snapshot's own pages), or every page of two plain files.
fn differing_pages(
    snapshot: &Path,
    rehearsal: &Source,
    page_size: u64,
) -> Result<(u64, BTreeSet<i64>)> {
    let Source::Overlay(view) = rehearsal else {
        return differing_files(snapshot, rehearsal, page_size);
    };
    let snap = File::open(snapshot)?;
    let old_pages = snap.metadata()?.len() / page_size;
    let (mut a, mut b) = (vec![0u8; page_size as usize], vec![0u8; page_size as usize]);
    let mut differ = BTreeSet::new();
    let written = view.written();
    for &p in &written {
        let at = (p - 1) * page_size;
        if p > old_pages || at + page_size > view.bytes() {
            differ.insert(p as i64);
            continue;
        }
        snap.read_exact_at(&mut a, at)?;
        view.read_exact_at(&mut b, at)?;
        if a != b {
            differ.insert(p as i64);
        }
    }
    // Pages the rehearsal cut off its end.
    differ.extend((view.bytes() / page_size + 1..=old_pages).map(|p| p as i64));
    Ok((written.len() as u64, differ))
}

/// [`differing_pages`] of two plain files, read sequentially in 4 MiB pieces.
fn differing_files(a: &Path, b: &Source, page_size: u64) -> Result<(u64, BTreeSet<i64>)> {
    let Source::File(b) = b else {
        bail!("not a plain file");
    };
    let (mut fa, mut fb) = (File::open(a)?, b.try_clone()?);
    let chunk = (4 << 20) / page_size as usize * page_size as usize;
    let (mut ba, mut bb) = (vec![0u8; chunk], vec![0u8; chunk]);
    let (mut page, mut differ) = (1i64, BTreeSet::new());
    let size = fa.metadata()?.len().max(fb.metadata()?.len());
    let bar = crate::progress::bytes_bar(crate::progress::enabled(), "page comparison", size);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na == 0 && nb == 0 {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(((page - 1) as u64, differ));
        }
        let n = na.max(nb);
        for (i, at) in (0..n).step_by(page_size as usize).enumerate() {
            let end = at + page_size as usize;
            if end > na || end > nb || ba[at..end] != bb[at..end] {
                differ.insert(page + i as i64);
            }
        }
        page += (n / page_size as usize) as i64;
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The pages of `trees` in one file, and the problems found: a page in two
/// trees.
fn walk(
    conn: &Connection,
    trees: &[&Tree],
    owner: &mut HashMap<i64, String>,
    problems: &mut Vec<String>,
) -> Result<()> {
    for t in trees {
        for p in pages_of(conn, &t.name).with_context(|| format!("walking {}", t.name))? {
            if let Some(other) = owner.insert(p, t.name.clone()) {
                problems.push(format!(
                    "page {p} belongs to both {} and {}",
                    display_ident(&other),
                    display_ident(&t.name)
                ));
            }
        }
    }
    Ok(())
}

/// True when a tree of the snapshot is one the statements keep: same kind,
/// same root, in the rehearsal, under its name after them, and not a table
/// whose rows were rewritten (nor an index of one). Statistics never are
/// (`DROP INDEX` and `ANALYZE` rewrite them).
fn kept(t: &Tree, fast: &InPlace, after: &HashMap<String, &Tree>) -> bool {
    if t.root == 1 || t.name.to_ascii_lowercase().starts_with("sqlite_stat") {
        return false;
    }
    let Some(table) = fast.name_after(&t.table).filter(|n| !fast.rewrites(n)) else {
        return false;
    };
    let name = if t.kind == "table" {
        table
    } else {
        t.name.clone()
    };
    after
        .get(&name.to_lowercase())
        .is_some_and(|r| r.kind == t.kind && r.root == t.root)
}

/// Proves the rehearsal's kept trees are the snapshot's (see the module
/// docs). `snap` and `reh` are read-only connections to the two files.
pub fn prove(
    snapshot: &Path,
    rehearsal: &Path,
    snap: &Connection,
    reh: &Connection,
    fast: &InPlace,
) -> Result<Proof> {
    let page_size = snap.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let lock_byte = (1u64 << 30) / page_size + 1;
    let (before, after) = (trees(snap)?, trees(reh)?);
    let by_name: HashMap<String, &Tree> =
        after.iter().map(|t| (t.name.to_lowercase(), t)).collect();
    let kept_roots: BTreeSet<i64> = before
        .iter()
        .filter(|t| kept(t, fast, &by_name))
        .map(|t| t.root)
        .collect();
    let mut proof = Proof::default();
    for t in before.iter().filter(|t| t.kind == "table" && t.root != 1) {
        let gone = fast.name_after(&t.table).is_none() || t.name.starts_with("sqlite_stat");
        let rewritten = fast.name_after(&t.table).is_some_and(|n| fast.rewrites(&n));
        if !gone && !rewritten && !kept_roots.contains(&t.root) {
            proof.problems.push(format!(
                "table {}: its root page moved (its rows were rewritten)",
                display_ident(&t.name)
            ));
        }
    }
    let changed = |trees: &[Tree]| -> Vec<Tree> {
        trees
            .iter()
            .filter(|t| !kept_roots.contains(&t.root))
            .cloned()
            .collect()
    };
    let (changed_before, changed_after) = (changed(&before), changed(&after));
    proof.changed_tables = changed_after
        .iter()
        .filter(|t| t.root != 1 && !t.name.starts_with("sqlite_stat"))
        .map(|t| t.table.clone())
        .collect();
    proof.changed_trees = changed_after
        .iter()
        .filter(|t| t.root != 1)
        .map(|t| t.name.to_lowercase())
        .collect();

    let (mut old_owner, mut new_owner) = (HashMap::new(), HashMap::new());
    walk(
        snap,
        &changed_before.iter().collect::<Vec<_>>(),
        &mut old_owner,
        &mut proof.problems,
    )?;
    walk(
        reh,
        &changed_after.iter().collect::<Vec<_>>(),
        &mut new_owner,
        &mut proof.problems,
    )?;
    let rehearsed = Source::open(rehearsal)?;
    let old_free =
        freelist(&Source::open(snapshot)?, page_size).context("the snapshot's freelist")?;
    let new_free = freelist(&rehearsed, page_size).context("the rehearsal's freelist")?;
    let old_pages = std::fs::metadata(snapshot)?.len() / page_size;
    let (compared, differ) = differing_pages(snapshot, &rehearsed, page_size)?;
    proof.pages_compared = compared;
    proof.pages_changed = differ.len() as u64;

    // Not kept in the snapshot: a changed tree's page, free, or past its end.
    let released =
        |p: i64| old_owner.contains_key(&p) || old_free.contains(&p) || p as u64 > old_pages;
    for &p in differ.iter().filter(|&&p| p as u64 != lock_byte) {
        if !released(p) {
            proof.problems.push(format!(
                "page {p} differs from the snapshot, and it belongs to a tree the statements keep{}",
                kept_owner(snap, &before, &kept_roots, p)?
            ));
            break;
        }
    }
    for (&p, tree) in &new_owner {
        if new_free.contains(&p) {
            proof.problems.push(format!(
                "page {p} is both free and in {}",
                display_ident(tree)
            ));
        } else if !released(p) && !differ.contains(&p) {
            proof.problems.push(format!(
                "page {p} of {} is a page a kept tree still uses",
                display_ident(tree)
            ));
        }
    }
    let new_pages = rehearsed.len()? / page_size;
    let accounted = |p: i64| new_owner.contains_key(&p) || new_free.contains(&p);
    let unaccounted = (1..=new_pages as i64)
        .filter(|&p| p as u64 != lock_byte)
        .filter(|&p| {
            (old_owner.contains_key(&p) || old_free.contains(&p) || p as u64 > old_pages)
                && !accounted(p)
        })
        .count();
    if unaccounted > 0 {
        proof.problems.push(format!(
            "{unaccounted} page(s) the statements released are neither in a tree nor free (lost pages)"
        ));
    }
    Ok(proof)
}

/// ": table X" for the kept tree that owns page `p` (walked only to name
/// it in the message, when the proof already failed).
fn kept_owner(snap: &Connection, trees: &[Tree], kept: &BTreeSet<i64>, p: i64) -> Result<String> {
    for t in trees.iter().filter(|t| kept.contains(&t.root)) {
        if pages_of(snap, &t.name)?.contains(&p) {
            return Ok(format!(
                ": {} {} (a kept row or entry changed)",
                t.kind,
                display_ident(&t.name)
            ));
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with a table and an index of many pages, and a rehearsal
    /// of `statements` on a copy of it.
    fn pair(statements: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap.db");
        Connection::open(&snap)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
                 INSERT INTO t SELECT i, printf('value %d', i), hex(randomblob(20)) FROM n;
                 CREATE INDEX tv ON t(v);
                 CREATE TABLE u(id INTEGER PRIMARY KEY, x);
                 INSERT INTO u VALUES (1, 'kept');",
            )
            .unwrap();
        let reh = dir.path().join("reh.db");
        std::fs::copy(&snap, &reh).unwrap();
        Connection::open(&reh)
            .unwrap()
            .execute_batch(&format!("BEGIN; {statements} COMMIT;"))
            .unwrap();
        (dir, snap, reh)
    }

    fn proof(snap: &Path, reh: &Path) -> Proof {
        let open = |p: &Path| crate::db::open_readonly(p).unwrap();
        prove(snap, reh, &open(snap), &open(reh), &InPlace::default()).unwrap()
    }

    #[test]
    fn a_dropped_index_and_a_new_one_reusing_its_pages_pass() {
        let (_dir, snap, reh) = pair("DROP INDEX tv; CREATE INDEX tw ON t(w);");
        let p = proof(&snap, &reh);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.pages_changed > 5, "{p:?}");
        assert_eq!(p.changed_tables, BTreeSet::from(["t".to_string()]));
    }

    #[test]
    fn a_view_changes_only_the_schema() {
        let (_dir, snap, reh) = pair("CREATE VIEW vv AS SELECT v FROM t;");
        let p = proof(&snap, &reh);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.changed_tables.is_empty(), "{p:?}");
        assert!(p.pages_changed <= 2, "{p:?}");
    }

    #[test]
    fn a_changed_entry_of_a_kept_index_fails() {
        // The index of a kept table changed behind the statements' back.
        let (_dir, snap, reh) = pair("CREATE VIEW vv AS SELECT v FROM t;");
        Connection::open(&reh)
            .unwrap()
            .execute_batch("UPDATE t SET v = 'planted' WHERE id = 1500;")
            .unwrap();
        let p = proof(&snap, &reh);
        assert!(
            p.problems
                .iter()
                .any(|m| m.contains("differs from the snapshot") && m.contains("kept")),
            "{:?}",
            p.problems
        );
    }

    #[test]
    fn a_page_the_statements_released_but_nothing_holds_fails() {
        let (_dir, snap, reh) = pair("DROP INDEX tv;");
        assert!(proof(&snap, &reh).problems.is_empty());
        // Take the last leaf off the freelist: that page is now lost.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&reh)
            .unwrap();
        let mut head = [0u8; 8];
        f.read_exact_at(&mut head, 32).unwrap();
        let trunk = u32::from_be_bytes(head[0..4].try_into().unwrap()) as u64;
        let total = u32::from_be_bytes(head[4..8].try_into().unwrap());
        let mut count = [0u8; 4];
        f.read_exact_at(&mut count, (trunk - 1) * 4096 + 4).unwrap();
        let leaves = u32::from_be_bytes(count);
        f.write_all_at(&(leaves - 1).to_be_bytes(), (trunk - 1) * 4096 + 4)
            .unwrap();
        f.write_all_at(&(total - 1).to_be_bytes(), 36).unwrap();
        drop(f);
        let p = proof(&snap, &reh);
        assert!(
            p.problems.iter().any(|m| m.contains("lost pages")),
            "{:?}",
            p.problems
        );
    }
}
