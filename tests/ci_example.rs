//! The example pipeline of `examples/ci/`: `migrate.sh` end to end, with no
//! terminal, against a real sshd on 127.0.0.1 (secrets passed as CI systems
//! do, in the environment), and the GitHub Actions workflow's structure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::sshd::Sshd;
use crate::support::{Workspace, assert_code, column, sha256_file, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO users VALUES (1, 'ann'), (2, 'bob');";
const SOURCE: &str = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, tz TEXT NOT NULL DEFAULT 'UTC');";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name)
}

/// `sh migrate.sh MODE` in `ws`, stdin closed, secrets from `sshd` in the
/// environment (the known_hosts text given), temporary files under `tmp/`.
fn migrate(ws: &Workspace, sshd: &Sshd, remote: &Path, mode: &str, known_hosts: &str) -> Output {
    std::fs::create_dir_all(ws.path("tmp")).unwrap();
    let mut c = Command::new("sh");
    c.arg(example("migrate.sh"))
        .arg(mode)
        .current_dir(ws.dir.path())
        .stdin(Stdio::null())
        .env("SQLMORPH_BIN", assert_cmd::cargo::cargo_bin("sqlmorph"))
        .env("SQLMORPH_PRODUCTION", sshd.url(remote))
        .env(
            "SQLMORPH_SSH_KEY",
            std::fs::read_to_string(&sshd.client_key).unwrap(),
        )
        .env("SQLMORPH_KNOWN_HOSTS", known_hosts)
        .env("TMPDIR", ws.path("tmp"))
        .env("NO_COLOR", "1");
    for var in ["SQLMORPH_SOURCE", "SQLMORPH_CONFIG", "SQLMORPH_WORK_DIR"] {
        c.env_remove(var);
    }
    c.output().unwrap()
}

fn setup() -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path("remote")).unwrap();
    let remote = ws.db("remote/prod.sqlite3", PROD);
    ws.file("schema.sql", SOURCE);
    // The repository's file: no production, no keys (they come from CI);
    // a fixture for `sqlmorph test`.
    ws.file(
        "sqlmorph.toml",
        "source = \"schema.sql\"\n[test]\nfixtures = \"fixtures\"\n",
    );
    std::fs::create_dir(ws.path("fixtures")).unwrap();
    ws.file("fixtures/prod.sql", PROD);
    (ws, remote)
}

fn tmp_is_empty(ws: &Workspace) -> bool {
    std::fs::read_dir(ws.path("tmp")).unwrap().next().is_none()
}

#[test]
fn the_shell_pipeline_gates_then_deploys_over_ssh_with_no_terminal() {
    let sshd = Sshd::start();
    let (ws, remote) = setup();
    let known = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    let before = sha256_file(&remote);

    let gate = migrate(&ws, &sshd, &remote, "gate", &known);
    assert_code(&gate, 0);
    let out = stdout_of(&gate);
    assert!(out.contains("== sqlmorph plan --yes --exit-code"), "{out}");
    assert!(
        out.contains("== sqlmorph test")
            && out.contains("PASS")
            && out.contains("fixtures/prod.sql"),
        "the migration tests ran on the fixture: {out}"
    );
    assert!(out.contains("tz"), "the plan shows the change: {out}");
    assert!(out.contains("== sqlmorph run --dry-run --yes"), "{out}");
    assert_eq!(sha256_file(&remote), before, "the gate changes nothing");
    assert!(tmp_is_empty(&ws), "the key file is removed");

    let deploy = migrate(&ws, &sshd, &remote, "deploy", &known);
    assert_code(&deploy, 0);
    assert!(stdout_of(&deploy).contains("== sqlmorph run --yes"));
    assert_eq!(
        column(
            &remote,
            "SELECT id || ':' || name || ':' || tz FROM users ORDER BY id"
        ),
        vec!["1:ann:UTC", "2:bob:UTC"]
    );
    assert!(tmp_is_empty(&ws), "the key file is removed");
}

#[test]
fn the_gate_fails_on_an_unknown_host_key_and_touches_nothing() {
    let sshd = Sshd::start();
    let (ws, remote) = setup();
    let before = sha256_file(&remote);
    let wrong = std::fs::read_to_string(sshd.known_hosts_wrong_key()).unwrap();
    for mode in ["gate", "deploy"] {
        let out = migrate(&ws, &sshd, &remote, mode, &wrong);
        assert_ne!(out.status.code(), Some(0), "{mode}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).to_lowercase().contains("host key"),
            "{mode}: {}",
            stderr_of(&out)
        );
        assert!(tmp_is_empty(&ws));
    }
    assert_eq!(sha256_file(&remote), before);
}

#[test]
fn the_gate_fails_where_the_deploy_would_stop() {
    let sshd = Sshd::start();
    let (ws, remote) = setup();
    // A dropped column: the deploy's `run --yes` would stop (exit 3) for
    // want of --allow-destructive, so the gate must fail the same way.
    ws.file("schema.sql", "CREATE TABLE users(id INTEGER PRIMARY KEY);");
    let known = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    let before = sha256_file(&remote);
    let gate = migrate(&ws, &sshd, &remote, "gate", &known);
    assert_code(&gate, 3);
    let err = stderr_of(&gate);
    assert!(
        err.contains("the deploy would not go through (exit 3)"),
        "{err}"
    );
    assert!(
        format!("{}{err}", stdout_of(&gate)).contains("--allow-destructive"),
        "the gate says what the run would need"
    );
    let deploy = migrate(&ws, &sshd, &remote, "deploy", &known);
    assert_code(&deploy, 3);
    assert_eq!(sha256_file(&remote), before);
}

#[test]
fn the_shell_pipeline_refuses_an_unknown_mode() {
    let ws = Workspace::new();
    let out = Command::new("sh")
        .arg(example("migrate.sh"))
        .arg("deploy-now")
        .current_dir(ws.dir.path())
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(stderr_of(&out).contains("usage:"));
}

/// The workflow parses as YAML and has the jobs the README describes.
#[test]
fn the_github_workflow_gates_pull_requests_and_deploys_main() {
    let path = example("github-actions.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\t'), "YAML forbids tabs for indentation");
    let check = r#"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
on = d.get("on", d.get(True))
assert "pull_request" in on, on
assert on["push"]["branches"] == ["main"], on
gate, deploy = d["jobs"]["gate"], d["jobs"]["deploy"]
runs = lambda job: [s.get("run", "") for s in job["steps"]]
assert "pull_request" in gate["if"]
assert any(r.startswith("sqlmorph test") for r in runs(gate)), runs(gate)
assert any(r.startswith("sqlmorph plan --yes --exit-code") for r in runs(gate)), runs(gate)
assert "sqlmorph run --dry-run --yes" in runs(gate)
assert "refs/heads/main" in deploy["if"]
assert "sqlmorph run --yes" in runs(deploy)
for job in (gate, deploy):
    env = [s.get("env", {}) for s in job["steps"]]
    assert any("secrets.SQLMORPH_SSH_KEY" in e.get("SQLMORPH_SSH_KEY", "") for e in env)
    assert any("secrets.SQLMORPH_KNOWN_HOSTS" in e.get("SQLMORPH_KNOWN_HOSTS", "") for e in env)
print("ok")
"#;
    match Command::new("python3").args(["-c", "import yaml"]).status() {
        Ok(s) if s.success() => {
            let out = Command::new("python3")
                .args(["-c", check])
                .arg(&path)
                .output()
                .unwrap();
            assert_code(&out, 0);
        }
        // No PyYAML here: the structure, line by line.
        _ => {
            for needle in [
                "\non:\n  pull_request:\n  push:\n    branches: [main]\n",
                "\n        run: sqlmorph test\n",
                "\n        run: sqlmorph run --dry-run --yes\n",
                "\n        run: sqlmorph run --yes\n",
                "secrets.SQLMORPH_SSH_KEY",
                "secrets.SQLMORPH_KNOWN_HOSTS",
            ] {
                assert!(text.contains(needle), "missing {needle:?}");
            }
        }
    }
}
