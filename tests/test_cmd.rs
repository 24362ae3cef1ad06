//! `sqlmorph test`: recipes run dry against fixtures (and a production
//! copy), then their assertions; per-fixture results, exit 0/1/2, JSON and
//! JUnit XML; nothing left behind.

use crate::support::{Workspace, assert_code, sha256_file, stderr_of, stdout_of};

const SOURCE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT NOT NULL);";
const RECIPE: &str = "fill(\"t\", \"b\", \"'filled'\");\nimport \"std/default\";\n";
const TESTS: &str = r#"import "std/checks" as checks;
checks::same_rows(before, after, "t");
checks::has_column(after, "t", "b");
checks::rows(after, "t", 2);
checks::constraints(after);
"#;

/// A project: schema.sql, one migration with its test file, fixtures with
/// 2 rows (a .sql and a .sqlite3) and with 3 rows (fails `rows(…, 2)`).
fn project() -> Workspace {
    let ws = Workspace::new();
    ws.file("schema.sql", SOURCE);
    ws.file("migrations/20260101_fill_b.rhai", RECIPE);
    ws.file("migrations/20260101_fill_b.test.rhai", TESTS);
    ws.file(
        "fixtures/a_two.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
    );
    ws.db(
        "fixtures/b_two.sqlite3",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
    );
    ws.file(
        "fixtures/c_three.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');",
    );
    ws
}

fn test_cmd(ws: &Workspace, extra: &[&str]) -> std::process::Output {
    ws.cmd()
        .args(["test", "--source", "schema.sql", "--fixtures", "fixtures"])
        .args(extra)
        .output()
        .unwrap()
}

fn line_of<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn each_fixture_passes_or_fails_with_the_assertion_and_its_line() {
    let ws = project();
    let before = ws.snapshot();
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 1);
    let text = stdout_of(&out);
    assert!(line_of(&text, "a_two.sql").starts_with("PASS"), "{text}");
    assert!(
        line_of(&text, "b_two.sqlite3").starts_with("PASS"),
        "{text}"
    );
    assert!(line_of(&text, "c_three.sql").starts_with("FAIL"), "{text}");
    assert!(text.contains("t: expected 2 row(s), found 3"), "{text}");
    assert!(
        text.contains("failing call: migrations/20260101_fill_b.test.rhai:4:9"),
        "{text}"
    );
    assert!(text.contains("2 passed, 1 failed"), "{text}");
    // A dry run per case, each in a scratch directory: nothing is left in
    // the project (no .sqlmorph, no backups, fixtures untouched).
    assert_eq!(ws.snapshot(), before);
}

#[test]
fn all_passing_exits_zero() {
    let ws = project();
    std::fs::remove_file(ws.path("fixtures/c_three.sql")).unwrap();
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("2 passed, 0 failed"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn the_recipes_test_function_gets_before_and_after() {
    let ws = project();
    std::fs::remove_file(ws.path("migrations/20260101_fill_b.test.rhai")).unwrap();
    std::fs::remove_file(ws.path("fixtures/c_three.sql")).unwrap();
    let recipe = |expected: &str| {
        format!(
            "{RECIPE}\nfn test(before, after) {{\n    import \"std/checks\" as checks;\n    \
             checks::equal(before.role, \"snapshot\", \"before\");\n    \
             checks::value(after, \"SELECT b FROM t WHERE id = 1\", \"{expected}\");\n}}\n"
        )
    };
    ws.file("migrations/20260101_fill_b.rhai", &recipe("filled"));
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 0);
    ws.file("migrations/20260101_fill_b.rhai", &recipe("other"));
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 1);
    let text = stdout_of(&out);
    assert!(text.contains("expected other, found filled"), "{text}");
    assert!(text.contains("20260101_fill_b.rhai:7"), "{text}");
}

#[test]
fn junit_xml_is_well_formed_and_names_the_failure() {
    let ws = project();
    let out = test_cmd(&ws, &["--junit", "report.xml"]);
    assert_code(&out, 1);
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
cases = root.findall("testsuite/testcase")
failures = root.findall("testsuite/testcase/failure")
print(len(suites), len(cases), len(failures), root.get("failures"))
print(failures[0].get("message"))
print(cases[2].get("name"))
"#;
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(ws.path("report.xml"))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got = String::from_utf8_lossy(&py.stdout).into_owned();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "1 3 1 1", "{got}");
    assert!(lines[1].contains("expected 2 row(s), found 3"), "{got}");
    assert!(lines[1].contains(".test.rhai:4"), "{got}");
    assert!(lines[2].ends_with("c_three.sql"), "{got}");
}

#[test]
fn json_has_a_version_and_a_case_per_fixture() {
    let ws = project();
    let out = test_cmd(&ws, &["--format", "json"]);
    assert_code(&out, 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["passed"], false);
    assert_eq!(v["failed"], 1);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0]["outcome"], "passed");
    assert_eq!(cases[2]["outcome"], "failed");
    assert_eq!(cases[2]["test_bodies"], 1);
    assert!(
        cases[2]["location"]
            .as_str()
            .unwrap()
            .ends_with("20260101_fill_b.test.rhai:4:9"),
        "{v}"
    );
}

#[test]
fn a_migration_that_would_stop_fails_its_case() {
    let ws = project();
    // The source drops column `a`: a real `run --yes` stops (exit 3).
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, b TEXT NOT NULL);",
    );
    std::fs::remove_file(ws.path("fixtures/c_three.sql")).unwrap();
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 1);
    let text = stdout_of(&out);
    assert!(text.contains("a real run would exit 3"), "{text}");
    assert!(text.contains("--allow-destructive"), "{text}");
    let out = test_cmd(&ws, &["--allow-destructive"]);
    assert_code(&out, 0);
}

#[test]
fn a_copy_of_production_is_tested_and_production_is_not_written() {
    let ws = project();
    let prod = ws.db(
        "prod.sqlite3",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
    );
    std::fs::remove_dir_all(ws.path("fixtures")).unwrap();
    let hash = sha256_file(&prod);
    let out = ws
        .cmd()
        .args(["test", "--source", "schema.sql", "--production-copy"])
        .args(["--production", "prod.sqlite3"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(
        line_of(&stdout_of(&out), "production (copy)").starts_with("PASS"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(sha256_file(&prod), hash);
    assert!(!ws.path("backups").exists() && !ws.path(".sqlmorph").exists());
}

#[test]
fn the_stock_recipe_and_config_fixtures_are_used_by_default() {
    let ws = Workspace::new();
    ws.file(
        "schema.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, c TEXT);",
    );
    ws.file(
        "fx/one.sql",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x');",
    );
    ws.file(
        "sqlmorph.toml",
        "source = \"schema.sql\"\n[test]\nfixtures = \"fx\"\n",
    );
    let out = ws.cmd().arg("test").output().unwrap();
    assert_code(&out, 0);
    let text = stdout_of(&out);
    assert!(
        line_of(&text, "fx/one.sql").starts_with("PASS  default"),
        "{text}"
    );
    assert!(text.contains("no assertions"), "{text}");
}

#[test]
fn input_errors_exit_two_and_say_what_to_do() {
    let ws = project();
    let out = ws
        .cmd()
        .args(["test", "--source", "schema.sql"])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("--fixtures"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .cmd()
        .args(["test", "--source", "schema.sql", "--fixtures", "nowhere"])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(stderr_of(&out).contains("nowhere"), "{}", stderr_of(&out));

    ws.file("fixtures/d_bad.sql", "CREATE TABLE oops(");
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 2);
    assert!(stderr_of(&out).contains("d_bad.sql"), "{}", stderr_of(&out));
    std::fs::remove_file(ws.path("fixtures/d_bad.sql")).unwrap();

    ws.file("migrations/20260101_fill_b.test.rhai", "checks::rows(\n");
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    assert!(
        err.contains("test file error") && err.contains("fill_b.test.rhai:"),
        "{err}"
    );

    ws.file("migrations/20260102_broken.rhai", "let x = ;\n");
    let out = test_cmd(&ws, &[]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains("20260102_broken.rhai:1"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_explicit_test_file_replaces_the_one_beside_the_recipe() {
    let ws = project();
    std::fs::remove_file(ws.path("fixtures/c_three.sql")).unwrap();
    ws.file(
        "other.rhai",
        "import \"std/checks\" as checks;\nchecks::rows(after, \"t\", 7);\n",
    );
    let out = test_cmd(&ws, &["--tests", "other.rhai"]);
    assert_code(&out, 1);
    let text = stdout_of(&out);
    assert!(text.contains("failing call: other.rhai:2:9"), "{text}");
    assert!(text.contains("0 passed, 2 failed"), "{text}");
}
