//! Retention: `backups --prune` (the last deploy's backup always survives),
//! run directories pruned when a run starts, dry runs that leave no copy of
//! production behind.

use std::path::{Path, PathBuf};

use crate::support::{
    Workspace, assert_code, run_dirs, run_migration, setup, stderr_of, stdout_of,
};

const PROD: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x');";
const SOURCE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT);";

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A backup file named for `days` days ago (a copy of production).
fn old_backup(ws: &Workspace, days: i64) -> PathBuf {
    let when = chrono::Local::now() - chrono::Duration::days(days);
    let p = ws.path(&format!(
        "backups/prod_backup_{}.sqlite3",
        when.format("%Y%m%d_%H%M%S")
    ));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::copy(ws.path("prod.sqlite3"), &p).unwrap();
    p
}

#[test]
fn a_dry_run_leaves_no_database_in_its_run_directory() {
    let (ws, _) = setup(PROD, SOURCE);
    let out = run_migration(&ws, None, &["--dry-run", "--yes"]);
    assert_code(&out, 0);
    let dirs = run_dirs(&ws);
    assert_eq!(dirs.len(), 1);
    let files = files_in(&dirs[0]);
    assert!(
        !files.iter().any(|f| f.contains(".sqlite3")),
        "a dry run left {files:?}"
    );
    assert!(files.contains(&"log.txt".to_string()), "{files:?}");
    let log = std::fs::read_to_string(dirs[0].join("log.txt")).unwrap();
    assert!(log.contains("dry run: removed"), "{log}");
}

#[test]
fn a_dry_run_that_fails_after_the_copy_leaves_no_database_either() {
    let (ws, _) = setup(PROD, SOURCE);
    ws.file(
        "stop.rhai",
        "import \"std/steps\" as steps;\nlet p = steps::prepare();\nlet db = copy(p);\nthrow \"stop here\";\n",
    );
    let out = run_migration(&ws, Some("stop.rhai"), &["--dry-run"]);
    assert_code(&out, 2);
    let files = files_in(&run_dirs(&ws)[0]);
    assert!(
        !files.iter().any(|f| f.contains(".sqlite3")),
        "a failed dry run left {files:?}"
    );
}

#[test]
fn keep_files_keeps_a_dry_runs_copies() {
    let (ws, _) = setup(PROD, SOURCE);
    let out = run_migration(&ws, None, &["--dry-run", "--yes", "--keep-files"]);
    assert_code(&out, 0);
    let files = files_in(&run_dirs(&ws)[0]);
    assert!(files.contains(&"migrated.sqlite3".to_string()), "{files:?}");
    assert!(
        files.contains(&"production.sqlite3".to_string()),
        "{files:?}"
    );
}

/// A finished run directory named `stamp`.
fn fake_run(ws: &Workspace, stamp: &str, pid: u32, ended: bool) -> PathBuf {
    let dir = ws.path(&format!(".sqlmorph/runs/{stamp}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = format!("2026-01-01 00:00:00 sqlmorph 0.1 run pid {pid}: recipe default\n");
    if ended {
        log.push_str("2026-01-01 00:00:01 finished: dry run\n");
    }
    std::fs::write(dir.join("log.txt"), log).unwrap();
    dir
}

#[test]
fn a_run_keeps_the_newest_run_directories_and_live_ones() {
    let (ws, _) = setup(PROD, SOURCE);
    ws.file("sqlmorph.toml", "[retention]\nkeep_runs = 2\n");
    let old: Vec<PathBuf> = (1..=5)
        .map(|i| fake_run(&ws, &format!("2020010{i}_000000"), 1, true))
        .collect();
    // An older run still going (this test's own process is alive).
    let live = fake_run(&ws, "20190101_000000", std::process::id(), false);
    let out = run_migration(&ws, None, &["--dry-run", "--yes"]);
    assert_code(&out, 0);
    let left = run_dirs(&ws);
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(live.exists(), "a run in progress was pruned");
    assert!(old[4].exists() && old[3].exists(), "{left:?}");
    assert!(!old[2].exists() && !old[0].exists(), "{left:?}");
    assert!(
        stdout_of(&out).contains("removed 3 old run directories"),
        "{}",
        stdout_of(&out)
    );
}

/// Deploys once (a backup and a history row), then adds backups around it.
fn deployed(ws: &Workspace) -> PathBuf {
    let before = files_in(&ws.path("backups"));
    let out = run_migration(ws, None, &["--yes"]);
    assert_code(&out, 0);
    let new: Vec<String> = files_in(&ws.path("backups"))
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    ws.path("backups").join(&new[0])
}

#[test]
fn prune_keep_zero_spares_the_last_deploys_backup() {
    let (ws, _) = setup(PROD, SOURCE);
    let older = old_backup(&ws, 400);
    let deploy_backup = deployed(&ws);
    let out = ws
        .cmd()
        .args([
            "backups",
            "--prune",
            "--keep",
            "0",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(
        deploy_backup.exists(),
        "the last deploy's backup was removed"
    );
    assert!(!older.exists(), "an expired backup survived");
    let text = stdout_of(&out);
    assert!(text.contains("the last deploy's backup"), "{text}");
    assert!(text.contains("Removed 1 backup(s), kept 1"), "{text}");
}

#[test]
fn prune_keeps_backups_newer_than_the_last_deploys() {
    let (ws, _) = setup(PROD, SOURCE);
    let deploy_backup = deployed(&ws);
    // A backup named after the deploy's (a rollback's safety copy, say).
    let newer = ws.path("backups/prod_backup_29991231_000000.sqlite3");
    std::fs::copy(&deploy_backup, &newer).unwrap();
    let out = ws
        .cmd()
        .args(["backups", "--prune", "--keep", "0", "--keep-days", "0"])
        .args(["--production", "prod.sqlite3", "--format", "json"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(newer.exists() && deploy_backup.exists());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["command"], "backups");
    assert_eq!(v["verdicts"][0]["action"], "keep");
    assert_eq!(v["verdicts"][1]["action"], "keep");
    assert_eq!(v["verdicts"][1]["reason"], "the last deploy's backup");
}

#[test]
fn prune_by_default_keeps_thirty_days() {
    let (ws, _) = setup(PROD, SOURCE);
    let recent = old_backup(&ws, 29);
    let expired = old_backup(&ws, 31);
    let out = ws
        .cmd()
        .args(["backups", "--prune", "--production", "prod.sqlite3"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(recent.exists(), "a 29-day-old backup was removed");
    assert!(!expired.exists(), "a 31-day-old backup survived");
}

#[test]
fn prune_config_keys_apply_when_no_flag_is_given() {
    let (ws, _) = setup(PROD, SOURCE);
    ws.file(
        "sqlmorph.toml",
        "production = \"prod.sqlite3\"\n[retention]\nkeep_backups = 1\nkeep_days = 0\n",
    );
    let newest = old_backup(&ws, 100);
    let older = old_backup(&ws, 200);
    let out = ws.cmd().args(["backups", "--prune"]).output().unwrap();
    assert_code(&out, 0);
    assert!(newest.exists() && !older.exists());
}

#[test]
fn prune_dry_run_lists_and_removes_nothing() {
    let (ws, _) = setup(PROD, SOURCE);
    let expired = old_backup(&ws, 90);
    let before = ws.snapshot();
    let out = ws
        .cmd()
        .args([
            "backups",
            "--prune",
            "--dry-run",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(ws.snapshot(), before);
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!(
            "would remove  {}",
            Path::new("backups")
                .join(expired.file_name().unwrap())
                .display()
        )),
        "{text}"
    );
}

#[test]
fn prune_without_production_is_an_input_error() {
    let (ws, _) = setup(PROD, SOURCE);
    let b = old_backup(&ws, 90);
    let out = ws.cmd().args(["backups", "--prune"]).output().unwrap();
    assert_code(&out, 2);
    assert!(b.exists());
    let err = stderr_of(&out);
    assert!(
        err.contains("_sqlmorph_history") && err.contains("--production"),
        "{err}"
    );
}

#[test]
fn keep_without_prune_is_a_usage_error() {
    let ws = Workspace::new();
    let out = ws.cmd().args(["backups", "--keep", "1"]).output().unwrap();
    assert_code(&out, 2);
}
