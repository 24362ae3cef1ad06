//! Terminal conventions: `--color` with `NO_COLOR` and `CLICOLOR_FORCE`
//! (the log file always plain), `--quiet`, `--verbose`, shell completions,
//! the man page and `--version`.

use std::path::{Path, PathBuf};

use crate::support::tty::Tty;
use crate::support::{Workspace, assert_code, setup, stderr_of, stdout_of};

const PROD: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT);
                    INSERT INTO t(a) VALUES ('1'), ('2');";
/// A type change: the run rebuilds and copies the table with SQL.
const SOURCE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a INT NOT NULL);";

/// The names of the visible subcommands, from the binary's own clap
/// definitions.
fn subcommands() -> Vec<String> {
    let names: Vec<String> = sqlmorph::manual::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(names.len() > 10, "{names:?}");
    names
}

/// The run's `log.txt` (the workspace holds a single run).
fn run_log(ws: &Workspace) -> String {
    let runs = ws.path(".sqlmorph/runs");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    std::fs::read_to_string(dirs[0].join("log.txt")).unwrap()
}

/// `sqlmorph run --yes` on [`PROD`] -> [`SOURCE`] with extra flags and
/// environment.
fn run_with(flags: &[&str], env: &[(&str, &str)]) -> (Workspace, std::process::Output) {
    let (ws, _) = setup(PROD, SOURCE);
    let mut c = ws.cmd();
    c.args(flags)
        .args([
            "run",
            "--source",
            "schema.sql",
            "--production",
            "prod.sqlite3",
        ])
        .args(["--yes", "--allow-destructive"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (ws, out)
}

/// An environment variable the binary gets.
type Env = (&'static str, &'static str);

fn assert_no_escapes(what: &str, text: &str) {
    assert!(!text.contains('\x1b'), "{what} has escape codes: {text:?}");
}

#[test]
fn completions_for_every_shell_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = crate::support::sqlmorph()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_code(&out, 0);
        let script = stdout_of(&out);
        assert!(script.len() > 500, "{shell}: {script}");
        for name in subcommands() {
            assert!(script.contains(&name), "{shell} lacks {name}");
        }
    }
    let out = crate::support::sqlmorph()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_code(&out, 2);
}

#[test]
fn the_man_page_names_every_subcommand() {
    let out = crate::support::sqlmorph().arg("man").output().unwrap();
    assert_code(&out, 0);
    let page = stdout_of(&out);
    assert!(page.contains(".TH sqlmorph 1"), "{page}");
    for name in subcommands() {
        assert!(
            page.contains(&format!("sqlmorph\\-{name}(1)")),
            "the page does not list {name}:\n{page}"
        );
    }
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let ws = Workspace::new();
    let out = ws.cmd().args(["man", "--dir", "man1"]).output().unwrap();
    assert_code(&out, 0);
    let dir = ws.path("man1");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(read(&dir.join("sqlmorph.1")).contains(".TH sqlmorph 1"));
    for name in subcommands() {
        let page = read(&dir.join(format!("sqlmorph-{name}.1")));
        assert!(page.contains(".TH"), "no page for {name}");
    }
}

#[test]
fn version_names_the_crate_and_the_bundled_sqlite() {
    let out = crate::support::sqlmorph()
        .arg("--version")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.starts_with(&format!("sqlmorph {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("SQLite {}", rusqlite::version())) && text.contains("SQLite 3."),
        "{text}"
    );
}

#[test]
fn clicolor_force_colours_without_a_terminal_but_never_the_log() {
    let (ws, out) = run_with(&[], &[("CLICOLOR_FORCE", "1")]);
    assert_code(&out, 0);
    assert!(stdout_of(&out).contains("\x1b["), "{}", stdout_of(&out));
    assert_no_escapes("log.txt", &run_log(&ws));
    assert!(run_log(&ws).contains("Schema changes"));
    // CLICOLOR_FORCE=0 does not force.
    let (_, out) = run_with(&[], &[("CLICOLOR_FORCE", "0")]);
    assert_no_escapes("stdout", &stdout_of(&out));
}

#[test]
fn color_never_and_no_color_win_over_clicolor_force() {
    let cases: [(&[&str], &[Env]); 2] = [
        (&["--color", "never"], &[("CLICOLOR_FORCE", "1")]),
        (&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]),
    ];
    for (flags, env) in cases {
        let (ws, out) = run_with(flags, env);
        assert_code(&out, 0);
        assert!(stdout_of(&out).contains("Schema changes"));
        assert_no_escapes("stdout", &stdout_of(&out));
        assert_no_escapes("stderr", &stderr_of(&out));
        assert_no_escapes("log.txt", &run_log(&ws));
    }
    // --color always colours even without a terminal.
    let (_, out) = run_with(&["--color", "always"], &[]);
    assert!(stdout_of(&out).contains("\x1b["));
}

/// The run at a real terminal (tmux), with `prefix` before the binary and
/// `flags` after it; the screen with its colours, and the run's log.
fn at_a_terminal(prefix: &str, flags: &str) -> (String, String) {
    let (ws, _) = setup(PROD, SOURCE);
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "{prefix} {} {flags} run --source schema.sql --production prod.sqlite3 \
             --yes --allow-destructive",
            bin.display()
        ),
    );
    tty.wait_for("EXIT=");
    let screen = tty.screen_with_escapes();
    assert!(tty.screen().contains("EXIT=0"), "{}", tty.screen());
    (screen, run_log(&ws))
}

#[test]
fn at_a_terminal_colour_is_on_unless_turned_off_and_the_log_is_plain() {
    let (screen, log) = at_a_terminal("env -u NO_COLOR -u CLICOLOR_FORCE TERM=xterm", "");
    assert!(
        screen.contains("\x1b["),
        "no colour at a terminal: {screen:?}"
    );
    assert_no_escapes("log.txt", &log);
    for (prefix, flags) in [
        ("env -u NO_COLOR TERM=xterm", "--color never"),
        ("env NO_COLOR=1 TERM=xterm", ""),
    ] {
        let (screen, log) = at_a_terminal(prefix, flags);
        assert!(screen.contains("Schema changes"), "{screen}");
        assert_no_escapes("the terminal", &screen);
        assert_no_escapes("log.txt", &log);
    }
}

#[test]
fn quiet_prints_only_the_final_line_of_a_successful_run() {
    let (ws, out) = run_with(&["--quiet"], &[]);
    assert_code(&out, 0);
    assert_eq!(stdout_of(&out), "finished: deployed\n");
    assert_eq!(stderr_of(&out), "");
    // The log keeps everything.
    let log = run_log(&ws);
    assert!(
        log.contains("Schema changes") && log.contains("10/10"),
        "{log}"
    );
}

#[test]
fn quiet_prints_only_the_error_of_a_failing_run() {
    let (ws, _) = setup(PROD, SOURCE);
    let out = ws
        .cmd()
        .args([
            "run",
            "-q",
            "--source",
            "nosuch.sql",
            "--production",
            "prod.sqlite3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert_eq!(stdout_of(&out), "");
    let err = stderr_of(&out);
    assert!(
        err.starts_with("error: ") && err.contains("nosuch.sql"),
        "{err}"
    );
    assert!(!err.contains("0/10"), "{err}");
}

#[test]
fn verbose_shows_the_copy_sql_and_step_timings() {
    let (ws, out) = run_with(&["--verbose"], &[]);
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        text.contains(
            r#"sql: INSERT INTO main."t"("id", "a") SELECT "id", "a" FROM "snapshot"."t""#
        ),
        "{text}"
    );
    assert!(text.contains("  7/10 copy the data: 0."), "{text}");
    assert!(
        text.contains("  10/10 swap into production and restart: "),
        "{text}"
    );
    // Without it, neither reaches the console (the log has them).
    let (_, out) = run_with(&[], &[]);
    let normal = stdout_of(&out);
    assert!(!normal.contains("sql: INSERT") && !normal.contains("7/10 copy the data: "));
    assert!(run_log(&ws).contains("sql: INSERT INTO"));
}

#[test]
fn quiet_and_verbose_exclude_each_other() {
    let out = crate::support::sqlmorph()
        .args(["--quiet", "--verbose", "status"])
        .output()
        .unwrap();
    assert_code(&out, 2);
}

#[test]
fn clap_help_and_usage_errors_follow_the_color_flag() {
    let help = |flags: &[&str]| {
        let out = crate::support::sqlmorph()
            .env("CLICOLOR_FORCE", "1")
            .args(flags)
            .output()
            .unwrap();
        format!("{}{}", stdout_of(&out), stderr_of(&out))
    };
    assert!(help(&["run", "--help"]).contains('\x1b'));
    assert_no_escapes("help", &help(&["--color", "never", "run", "--help"]));
    assert_no_escapes("help", &help(&["--color=never", "run", "--help"]));
    assert_no_escapes(
        "a usage error",
        &help(&["--color", "never", "run", "--nosuch"]),
    );
}
