//! What a run leaves on disk and on the terminal: private modes whatever the
//! umask, no secret in any output, and recipes that cannot crash the
//! process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Workspace, assert_code, setup, sha256_file, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x');";
const SOURCE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT DEFAULT 0);";

/// `sqlmorph ARGS` in the workspace under `umask`, through `sh -c`.
fn under_umask(ws: &Workspace, umask: &str, args: &[&str]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(bin)
        .args(args)
        .current_dir(ws.dir.path())
        .output()
        .unwrap()
}

/// Every entry below `dir` (itself included) with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(dir.to_path_buf(), mode(dir))];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(modes(&p));
        } else {
            out.push((p.clone(), mode(&p)));
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn assert_private(dir: &Path) {
    for (p, m) in modes(dir) {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m, want, "{} is {m:o}", p.display());
    }
}

const RUN: &[&str] = &[
    "run",
    "--source",
    "schema.sql",
    "--production",
    "prod.sqlite3",
];

#[test]
fn a_dry_run_leaves_only_private_files_whatever_the_umask() {
    for umask in ["022", "000"] {
        let (ws, _) = setup(PROD, SOURCE);
        let out = under_umask(
            &ws,
            umask,
            &[RUN, &["--dry-run", "--yes", "--allow-destructive"]].concat(),
        );
        assert_code(&out, 0);
        let run = single_run_dir(&ws);
        for f in ["log.txt", "source.sql", "production.sql", "schema.diff"] {
            assert!(run.join(f).exists(), "{f}");
        }
        for f in [
            "plan.json",
            "report.json",
            "production.sqlite3",
            "migrated.sqlite3",
        ] {
            assert!(run.join(f).exists(), "{f}");
        }
        assert_private(&ws.path(".sqlmorph/runs"));
    }
}

#[test]
fn a_deploy_leaves_only_private_files_and_backups_whatever_the_umask() {
    for umask in ["022", "000"] {
        let (ws, _) = setup(PROD, SOURCE);
        let out = under_umask(&ws, umask, &[RUN, &["--yes"]].concat());
        assert_code(&out, 0);
        assert_private(&ws.path(".sqlmorph/runs"));
        assert_private(&ws.path("backups"));
    }
}

fn single_run_dir(ws: &Workspace) -> PathBuf {
    let runs: Vec<_> = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

const PASSWORD: &str = "hunter2-s3cret";

/// Every byte a command left: its outputs and every file in the workspace.
fn everything(ws: &Workspace, out: &Output) -> String {
    let mut all = stdout_of(out);
    all.push_str(&stderr_of(out));
    for p in crate::support::tree_hashes(ws.dir.path()).keys() {
        let full = ws.dir.path().join(p);
        if full.is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&full).unwrap()));
        }
    }
    all
}

#[test]
fn a_password_in_an_ssh_url_is_refused_and_never_shown() {
    let (ws, _) = setup(PROD, SOURCE);
    for url in [
        format!("ssh://alice:{PASSWORD}@127.0.0.1:1/srv/prod.sqlite3"),
        format!("ssh://alice:{PASSWORD}@127.0.0.1:1"),
        format!("ssh://alice:{PASSWORD}@[::1/srv/p.sqlite3"),
    ] {
        for args in [
            &[
                "run",
                "--source",
                "schema.sql",
                "--yes",
                "--production",
                &url,
            ][..],
            &[
                "run",
                "--format",
                "json",
                "--source",
                "schema.sql",
                "--production",
                &url,
            ],
            &["plan", "--source", "schema.sql", "--production", &url],
            &["rollback", "--yes", "--production", &url],
        ] {
            let out = ws.cmd().args(args).output().unwrap();
            assert_code(&out, 2);
            let err = stderr_of(&out);
            assert!(err.contains("password"), "{args:?}: {err}");
            assert!(!everything(&ws, &out).contains(PASSWORD), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_zero_byte_production_is_refused_and_left_alone() {
    let ws = Workspace::new();
    ws.file("schema.sql", SOURCE);
    let prod = ws.file("prod.sqlite3", "");
    for extra in [
        &["--yes"][..],
        &["--dry-run"],
        &["--yes", "--allow-destructive"],
    ] {
        let out = ws.cmd().args(RUN).args(extra).output().unwrap();
        assert_code(&out, 2);
        let err = stderr_of(&out);
        assert!(err.contains("is empty (0 bytes)"), "{err}");
        assert_eq!(std::fs::metadata(&prod).unwrap().len(), 0);
    }
    let out = ws
        .cmd()
        .args([
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(!ws.path("backups").exists());
}

#[test]
fn an_empty_source_is_refused_unless_allowed() {
    for text in ["", "-- nothing here yet\n/* still nothing */\n"] {
        let (ws, prod) = setup(PROD, text);
        let before = sha256_file(&prod);
        let plan = [
            "plan",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ];
        for cmd in [[RUN, &["--yes"]].concat(), plan.to_vec()] {
            let out = ws.cmd().args(&cmd).output().unwrap();
            assert_code(&out, 2);
            let err = stderr_of(&out);
            assert!(
                err.contains("has no tables") && err.contains("--allow-empty-source"),
                "{err}"
            );
            assert_eq!(sha256_file(&prod), before);
        }
        let out = ws
            .cmd()
            .args(RUN)
            .args(["--yes", "--allow-destructive", "--allow-empty-source"])
            .output()
            .unwrap();
        assert_code(&out, 0);
        assert_eq!(
            crate::support::column(&prod, "SELECT count(*) FROM sqlite_schema WHERE name = 't'"),
            ["0"]
        );
    }
}

const RECURSE: &str = "fn f(n) { f(n + 1) }\nf(0);\n";

fn recurse_with(config: &str) -> Output {
    let (ws, prod) = setup(PROD, SOURCE);
    ws.file("deep.rhai", RECURSE);
    ws.file("sqlmorph.toml", config);
    let before = sha256_file(&prod);
    let out = ws
        .cmd()
        .args([
            "run",
            "deep.rhai",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_eq!(sha256_file(&prod), before);
    out
}

#[test]
fn endless_recursion_stops_with_a_call_depth_error() {
    for config in ["", "[limits]\nmax_call_levels = 1000\n"] {
        let out = recurse_with(config);
        assert_code(&out, 2);
        let err = stderr_of(&out);
        assert!(
            err.contains("recipe error:") && err.contains("call depth"),
            "{config}: {err}"
        );
    }
}

#[test]
fn a_call_limit_above_the_maximum_is_refused() {
    let out = recurse_with("[limits]\nmax_call_levels = 2000\n");
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("max_call_levels") && err.contains("at most 1000"),
        "{err}"
    );
}

#[test]
fn a_caught_refusal_does_not_decide_a_later_error() {
    let (ws, _) = setup(PROD, SOURCE);
    ws.file(
        "r.rhai",
        "try { confirm(\"Go on?\"); } catch {}\nthrow \"x\";\n",
    );
    let out = ws
        .cmd()
        .args([
            "run",
            "r.rhai",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("recipe error: x"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn the_key_passphrase_is_never_shown() {
    let (ws, _) = setup(PROD, SOURCE);
    ws.file("sqlmorph.toml", "[ssh]\nidentity = \"no-such-key\"\n");
    let url = "ssh://alice@127.0.0.1:1/srv/prod.sqlite3";
    for format in ["text", "json"] {
        let out = ws
            .cmd()
            .env("SQLMORPH_SSH_PASSPHRASE", PASSWORD)
            .args(["run", "--yes", "--format", format, "--source", "schema.sql"])
            .args(["--production", url])
            .output()
            .unwrap();
        assert_code(&out, 2);
        assert!(
            !everything(&ws, &out).contains(PASSWORD),
            "{}",
            stderr_of(&out)
        );
    }
}
