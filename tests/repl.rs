//! `sqlmorph repl`: scripted through piped standard input, and at a real
//! pseudo-terminal (tmux) for completion and history.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{Workspace, column, sha256_file, stderr_of, stdout_of};

const APP: &str = "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
CREATE INDEX users_name ON users(name);
CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), body TEXT);
INSERT INTO users(name, email) VALUES ('alice', 'alice@example.com'), ('bob', NULL);
";

const NEXT: &str = "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                   timezone TEXT NOT NULL DEFAULT 'UTC');
CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INT REFERENCES users(id), body TEXT);
";

/// Runs `sqlmorph repl ARGS` with `input` piped in (history kept in the
/// workspace, never in the user's home).
fn repl(ws: &Workspace, args: &[&Path], input: &str) -> Output {
    let out = ws
        .cmd()
        .arg("repl")
        .args(args)
        .env("SQLMORPH_HISTORY", ws.path("history"))
        .write_stdin(input)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
    out
}

fn app(ws: &Workspace) -> PathBuf {
    ws.db("app.sqlite3", APP)
}

#[test]
fn variables_persist_and_blocks_go_on() {
    let ws = Workspace::new();
    let db = app(&ws);
    let out = repl(
        &ws,
        &[&db],
        "let x = 20\nx + 1\nfn f(x) {\n  x * 2\n}\nf(21)\nlet s = schema(app);\ns.tables.len()\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "21\n42\n2\n");
    assert_eq!(stderr_of(&out), "");
    assert!(
        !ws.path("history").exists(),
        "no history without a terminal"
    );
}

#[test]
fn an_error_does_not_end_the_session() {
    let ws = Workspace::new();
    let db = app(&ws);
    let out = repl(&ws, &[&db], "let y = 2\nnosuch(y)\ny * 50\n");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "the last line succeeded: {err}");
    assert!(err.contains("error: Function not found: nosuch"), "{err}");
    assert!(err.contains("--> <repl>:1:1"), "{err}");
    assert_eq!(stdout_of(&out), "100\n");

    // The exit code is the last entry's.
    let out = repl(&ws, &[&db], "1 + 1\nlet z = ;\n");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout_of(&out), "2\n");
    assert!(
        stderr_of(&out).contains("Syntax error"),
        "{}",
        stderr_of(&out)
    );

    // Input that ends inside a block is an error, not silence.
    let out = repl(&ws, &[&db], "fn g() {\n  1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("error:"), "{}", stderr_of(&out));
}

#[test]
fn tables_and_schema_commands() {
    let ws = Workspace::new();
    let db = app(&ws);
    let out = repl(&ws, &[&db], ":tables\n:schema users\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains("app (") && text.contains("app.sqlite3)"),
        "{text}"
    );
    assert!(text.contains("  users (id, name, email)\n"), "{text}");
    assert!(text.contains("  posts (id, user_id, body)\n"), "{text}");
    assert!(
        text.contains(
            "CREATE TABLE users(\n  id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL,\n  email TEXT\n);\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("CREATE INDEX users_name ON users(name);"),
        "{text}"
    );

    let out = repl(&ws, &[&db], ":schema nothing_like_it\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("no table or view `nothing_like_it`"));
}

#[test]
fn diff_and_plan_between_two_databases() {
    let ws = Workspace::new();
    let db = app(&ws);
    let next = ws.db("next.sqlite3", NEXT);
    let out = repl(&ws, &[&db, &next], ":diff app next\n:plan\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.contains("~ table users"), "{text}");
    assert!(
        text.contains("+ column timezone: TEXT NOT NULL DEFAULT 'UTC'"),
        "{text}"
    );
    assert!(text.contains("- index users_name"), "{text}");
    assert!(
        text.contains("2 row(s) copied; + timezone (DEFAULT 'UTC')"),
        "{text}"
    );

    let out = repl(&ws, &[&db, &next], ":diff app nope\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("no variable `nope`"));
}

#[test]
fn query_results_print_as_an_aligned_table() {
    let ws = Workspace::new();
    let db = app(&ws);
    let out = repl(
        &ws,
        &[&db],
        "query(app, \"SELECT name, id, email FROM users ORDER BY id\")\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        stdout_of(&out),
        "name   id  email\n\
         -----  --  -----------------\n\
         alice   1  alice@example.com\n\
         bob     2  NULL\n\
         (2 rows)\n"
    );

    // Wide cells are cut, long results are cut after 50 rows.
    let out = repl(
        &ws,
        &[&db],
        "query(app, \"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60) SELECT i, printf('%.60c', 'x') AS wide FROM n\")\n",
    );
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 50 + 1, "{text}");
    assert_eq!(lines[2], format!(" 1  {}…", "x".repeat(39)));
    assert_eq!(lines[52], "… 10 more rows");
}

#[test]
fn writes_need_write() {
    let ws = Workspace::new();
    let db = app(&ws);
    let before = sha256_file(&db);
    let out = repl(
        &ws,
        &[&db],
        "sql(app, \"INSERT INTO users(name) VALUES ('carol')\")\n",
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("app.sqlite3: attempt to write a readonly database"),
        "{err}"
    );
    assert!(err.contains("open the REPL with --write"), "{err}");
    assert_eq!(sha256_file(&db), before, "the file must be unchanged");

    let out = ws
        .cmd()
        .args(["repl", "--write"])
        .arg(&db)
        .env("SQLMORPH_HISTORY", ws.path("history"))
        .write_stdin("sql(app, \"INSERT INTO users(name) VALUES (?1)\", [\"carol\"])\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "1\n");
    assert_eq!(
        column(&db, "SELECT name FROM users ORDER BY id"),
        ["alice", "bob", "carol"]
    );
}

#[test]
fn variable_names_from_file_names() {
    let ws = Workspace::new();
    let a = ws.db("2024.sqlite3", APP);
    let b = ws.db("my-app.db", APP);
    let c = ws.db("let.db", APP);
    let out = repl(&ws, &[&a, &b, &c], "db1.role\nmy_app.role\ndb3.role\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "file\nfile\nfile\n");

    let out = repl(&ws, &[&ws.path("missing.sqlite3")], "1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("missing.sqlite3: no such file"));
}

#[test]
fn load_runs_a_file_in_the_session() {
    let ws = Workspace::new();
    let db = app(&ws);
    let file = ws.file("more.rhai", "let loaded = 5;\nfn triple(x) { x * 3 }\n");
    let out = repl(
        &ws,
        &[&db],
        &format!(
            ":load {}\ntriple(loaded)\n:help\n:quit\n1\n",
            file.display()
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.starts_with("15\n"), "{text}");
    assert!(text.contains("query           Runs a query;"), "{text}");
    assert!(text.contains(":schema <table>"), "{text}");
    assert!(!text.ends_with("1\n"), ":quit ends the session: {text}");
}

/// A REPL running at a pseudo-terminal in its own tmux server; the server is
/// killed when the value is dropped, whatever happened.
struct Tmux {
    /// The server's socket, in the workspace (removed with it).
    socket: PathBuf,
}

impl Tmux {
    /// Panics when tmux is not installed: `scripts/test` installs it, and a
    /// skipped test would hide a broken feature.
    fn start(ws: &Workspace, db: &Path, history: &Path) -> Option<Tmux> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            panic!("tmux is not installed: run the suite with scripts/test, which installs it");
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = ws.path(&format!("tmux-{n}.sock"));
        let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
        let command = format!(
            "env NO_COLOR=1 SQLMORPH_HISTORY={} {} repl {}",
            quote(history),
            quote(&bin),
            quote(db)
        );
        let tmux = Tmux { socket };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "repl",
            "-x",
            "200",
            "-y",
            "50",
            "-c",
            ws.dir.path().to_str().unwrap(),
            &command,
        ]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        stdout_of(&self.run(&["capture-pane", "-p", "-t", "repl"]))
    }

    /// Polls the screen until `ok` holds (10 s at most).
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the `n`th prompt (capture-pane drops trailing blanks, so
    /// an empty prompt shows as `sqlmorph>`).
    fn prompt(&self, n: usize) {
        self.wait_for(&format!("prompt {n}"), |s| {
            s.lines().filter(|l| l.starts_with("sqlmorph>")).count() >= n
        });
    }

    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "repl", "-l", text]);
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "repl", key]);
    }

    /// Waits for the REPL to exit (the session ends with it).
    fn wait_exit(&self) {
        let start = Instant::now();
        while self.run(&["has-session", "-t", "repl"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the REPL did not exit; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn tab_completes_a_table_name_inside_sql() {
    let ws = Workspace::new();
    let db = app(&ws);
    let Some(tmux) = Tmux::start(&ws, &db, &ws.path("history")) else {
        return;
    };
    tmux.prompt(1);
    tmux.type_text(r#"query(app, "SELECT * FROM us"#);
    tmux.wait_for("the typed line", |s| s.contains("FROM us"));
    tmux.key("Tab");
    tmux.wait_for("the completed table name", |s| {
        s.contains(r#"sqlmorph> query(app, "SELECT * FROM users"#)
    });
    tmux.type_text(r#"")"#);
    tmux.key("Enter");
    let screen = tmux.wait_for("the query's table", |s| s.contains("(2 rows)"));
    assert!(screen.contains("alice"), "{screen}");
    tmux.prompt(2);
    tmux.key("C-d");
    tmux.wait_exit();
}

#[test]
fn history_is_recalled_in_a_new_session() {
    let ws = Workspace::new();
    let db = app(&ws);
    let history = ws.path("state/history");
    {
        let Some(tmux) = Tmux::start(&ws, &db, &history) else {
            return;
        };
        tmux.prompt(1);
        tmux.type_text("let remembered = 6 * 7");
        tmux.key("Enter");
        tmux.prompt(2);
        tmux.key("C-d");
        tmux.wait_exit();
    }
    assert!(history.exists(), "the history file is written at exit");

    let Some(tmux) = Tmux::start(&ws, &db, &history) else {
        return;
    };
    tmux.prompt(1);
    tmux.key("Up");
    tmux.wait_for("the recalled line", |s| {
        s.contains("sqlmorph> let remembered = 6 * 7")
    });
    tmux.key("C-c");
    tmux.prompt(2);
    tmux.key("C-d");
    tmux.wait_exit();
}

/// Without `$SQLMORPH_HISTORY` or `$XDG_STATE_HOME`, the history is kept
/// under the home directory: `$HOME/.local/state/sqlmorph/history`.
#[test]
fn history_defaults_to_the_home_directory() {
    let ws = Workspace::new();
    let db = app(&ws);
    let home = ws.path("home");
    std::fs::create_dir(&home).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = crate::support::tty::Tty::start(
        ws.dir.path(),
        &format!(
            "env -u SQLMORPH_HISTORY -u XDG_STATE_HOME NO_COLOR=1 HOME={} {} repl {}",
            quote(&home),
            quote(&bin),
            quote(&db)
        ),
    );
    tty.wait_for("sqlmorph>");
    tty.line("let kept_at_home = 1");
    // Ctrl-D only once the next prompt is up (the line editor in raw mode
    // again): sent earlier, the terminal may drop it.
    let start = std::time::Instant::now();
    while tty.screen().matches("sqlmorph>").count() < 2 {
        assert!(
            start.elapsed().as_secs() < 30,
            "no second prompt:
{}",
            tty.screen()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tty.keys(&["C-d"]);
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let history = home.join(".local/state/sqlmorph/history");
    let text = std::fs::read_to_string(&history)
        .unwrap_or_else(|e| panic!("{}: {e}\n{screen}", history.display()));
    assert!(text.contains("let kept_at_home = 1"), "{text}");
}
