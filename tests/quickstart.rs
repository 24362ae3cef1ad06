//! The README's quickstart, run exactly as written: its commands are read
//! from the README's block, in an empty directory with only the binary (on
//! `PATH`), a `schema.sql` and a tiny production.

use std::path::Path;

use crate::support::tty::Tty;
use crate::support::{Workspace, column};

const PRODUCTION: &str = "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n\
    INSERT INTO notes(body) VALUES ('hello'), ('world');";
const SCHEMA: &str =
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created TEXT);\n";

/// The lines of the ```sh block under `### Quickstart` in README.md.
fn quickstart_block() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("### Quickstart\n")
        .expect("README.md has a `### Quickstart` section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the quickstart has a ```sh block")
        .0;
    block.lines().map(str::to_string).collect()
}

/// A command line without its trailing `# comment`.
fn command_of(line: &str) -> &str {
    line.split_once('#').map_or(line, |(cmd, _)| cmd).trim()
}

/// The `key = "value"` pairs of the block's `# edit sqlmorph.toml:` line.
fn edits(lines: &[String]) -> Vec<(String, String)> {
    let edit = lines
        .iter()
        .find_map(|l| l.strip_prefix("# edit sqlmorph.toml:"))
        .expect("the quickstart says what to edit in sqlmorph.toml");
    edit.split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("key = \"value\"");
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

/// Sets each key's line of the configuration, as a user would in an editor.
fn apply_edits(config: &Path, edits: &[(String, String)]) {
    let mut text = std::fs::read_to_string(config).unwrap();
    for (key, value) in edits {
        let old = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("sqlmorph init wrote no `{key}` line:\n{text}"))
            .to_string();
        text = text.replace(&old, &format!("{key} = {value}"));
    }
    std::fs::write(config, text).unwrap();
}

/// `PATH` with the directory of the binary under test first.
fn path_with_binary() -> String {
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let dir = bin.parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

/// Runs a README command line (no terminal), as the shell would split it.
fn run_line(ws: &Workspace, line: &str) -> std::process::Output {
    let words: Vec<&str> = line.split_whitespace().collect();
    std::process::Command::new(words[0])
        .args(&words[1..])
        .current_dir(ws.dir.path())
        .env("PATH", path_with_binary())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn the_readme_quickstart_works_as_written() {
    let lines = quickstart_block();
    let commands: Vec<&str> = lines
        .iter()
        .map(|l| command_of(l))
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(commands, ["sqlmorph init", "sqlmorph plan", "sqlmorph run"]);

    let ws = Workspace::new();
    ws.file("schema.sql", SCHEMA);
    let prod = ws.db("app.sqlite3", PRODUCTION);

    let init = run_line(&ws, commands[0]);
    assert!(init.status.success(), "{init:?}");
    assert!(ws.path("recipe.rhai").is_file());
    apply_edits(&ws.path("sqlmorph.toml"), &edits(&lines));

    // `plan`: the review, nothing written, and the gate the README describes.
    let before = ws.snapshot();
    let plan = run_line(&ws, commands[1]);
    let review = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(3), "{plan:?}");
    assert!(review.contains("+ column created: TEXT"), "{review}");
    assert!(review.contains("--yes (Build"), "{review}");
    assert_eq!(ws.snapshot(), before, "plan wrote nothing");

    // `run` at a terminal: one question, `y`, deployed.
    let tty = Tty::start(
        ws.dir.path(),
        &format!("PATH='{}' NO_COLOR=1 {}", path_with_binary(), commands[2]),
    );
    tty.wait_for("[y/N]");
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("finished: deployed"), "{screen}");
    assert!(screen.contains("backups/app_backup_"), "{screen}");
    assert_eq!(
        column(
            &prod,
            "SELECT group_concat(name) FROM pragma_table_info('notes')"
        ),
        ["id,body,created"]
    );
    assert_eq!(
        column(&prod, "SELECT group_concat(body) FROM notes"),
        ["hello,world"]
    );
}
