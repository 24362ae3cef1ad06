//! `sqlmorph rollback`: put a backup back into production with the same
//! compare-and-swap as a deploy, after backing up the current production.
//!
//! Unless a backup is named, the one restored is the backup recorded with
//! the last deploy in production's `_sqlmorph_history`: the state before
//! that deploy, whatever runs were declined or failed since.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rusqlite::Connection;

use crate::config::Options;
use crate::error::input;
use crate::log::Log;
use crate::pipeline::backup;
use crate::pipeline::prompt::Prompter;
use crate::pipeline::session::stamp_now;
use crate::target::{Access, Production};

/// Restores `chosen` (or the backup taken before the last deploy) into
/// production.
pub fn rollback(opts: &Options, chosen: Option<&Path>, prompter: Prompter) -> Result<PathBuf> {
    let mut log = Log::console(false);
    let mut prod = Production::new(opts, Access::Swap);
    let (source, why) = match chosen {
        Some(p) => (p.to_path_buf(), "named with --backup".to_string()),
        None => match prod.last_deploy(&mut log)? {
            Some((at, path)) => (path, format!("taken before the deploy of {at}")),
            None => {
                return Err(input(format!(
                    "{} records no deploy with a backup (_sqlmorph_history); name the backup to \
                     restore with --backup FILE (`sqlmorph backups` lists them)",
                    prod.name()
                )));
            }
        },
    };
    check_backup(&source)?;
    let now = prod.with_reader(&mut log, summary)?;
    let missing = {
        let in_backup = litestream_tables(&crate::db::open_readonly(&source)?)?;
        prod.with_reader(&mut log, litestream_tables)?
            .into_iter()
            .filter(|(name, _)| !in_backup.iter().any(|(b, _)| b.eq_ignore_ascii_case(name)))
            .collect::<Vec<_>>()
    };
    let then = summary(&crate::db::open_readonly(&source)?)?;
    prompter.confirm_typed(&format!(
        "Restore {} from {} ({why})?\n  production now: {now}\n  the backup:     {then}\n\
         Everything written to production since that backup is replaced \
         (production's current content is backed up first).",
        prod.name(),
        source.display()
    ))?;
    let name = opts
        .remotes
        .first()
        .map_or_else(|| opts.production.clone(), |u| PathBuf::from(&u.path));
    crate::private::create_dir_all(&opts.backup_dir)?;
    let current = backup::backup_path(&name, &opts.backup_dir, &stamp_now());
    let token = prod.copy_to(&current, &mut log)?;
    log.line(&format!(
        "backed up the current production to {}",
        current.display()
    ));
    // A backup from before Litestream replicated production lacks its
    // tables: the file swapped in is a copy of the backup with them added,
    // so that a running Litestream checkpoints on.
    let with_tables = if missing.is_empty() {
        None
    } else {
        let copy = with_litestream_tables(&source, &missing, &opts.backup_dir)?;
        log.line(&format!(
            "kept Litestream's table(s) {}, which the backup lacks (the backup file is unchanged)",
            missing
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Some(copy)
    };
    let swapped = with_tables.as_ref().map_or(source.as_path(), |t| t.path());
    let note = prod.swap(swapped, &token, &current, &opts.commands(), &mut log)?;
    log.line(&format!(
        "restored {} from {}{note}",
        prod.name(),
        source.display()
    ));
    Ok(source)
}

/// Litestream's tables in a database, `(name, sql)`.
fn litestream_tables(conn: &Connection) -> Result<Vec<(String, String)>> {
    let tables = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' \
             AND lower(substr(name, 1, 12)) = '_litestream_' AND sql IS NOT NULL ORDER BY rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(tables)
}

/// A private copy of `backup` (in `dir`, removed when dropped) with the
/// `tables` created empty: Litestream fills `_litestream_seq` itself and
/// never commits a row to `_litestream_lock`.
fn with_litestream_tables(
    backup: &Path,
    tables: &[(String, String)],
    dir: &Path,
) -> Result<tempfile::NamedTempFile> {
    let copy = crate::private::temp_file_in(dir, ".sqlmorph-rollback-", ".sqlite3")?;
    crate::target::files::backup_api_copy(&crate::db::open_readonly(backup)?, backup, copy.path())?;
    let conn = Connection::open(copy.path())?;
    conn.execute_batch("BEGIN")?;
    for (_, sql) in tables {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch("COMMIT")?;
    drop(conn);
    Ok(copy)
}

/// A backup worth restoring: a non-empty SQLite file that passes
/// `quick_check` and has at least one table.
fn check_backup(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| input(format!("{shown}: {e}")))?;
    if meta.len() == 0 {
        return Err(input(format!(
            "{shown} is empty (0 bytes): it is not a backup; production was not changed"
        )));
    }
    backup::quick_check(path).map_err(|e| input(format!("{e:#}; production was not changed")))?;
    let conn = crate::db::open_readonly(path)?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        return Err(input(format!(
            "{shown} has no tables: restoring it would empty production; production was not changed"
        )));
    }
    Ok(())
}

/// "N table(s), M row(s), schema <hash>" of a database, for the question.
fn summary(conn: &Connection) -> Result<String> {
    let schema = crate::schema::Schema::read(conn, "main")?;
    let mut rows = 0i64;
    for t in &schema.tables {
        rows += conn.query_row(
            &format!(
                "SELECT count(*) FROM main.{}",
                crate::sqltext::quote_ident(&t.name)
            ),
            [],
            |r| r.get::<_, i64>(0),
        )?;
    }
    Ok(format!(
        "{} table(s), {rows} row(s), schema {}",
        schema.tables.len(),
        &schema.hash()[..12]
    ))
}
