//! Recipes: the example recipes on real data, rename inference, recipe
//! errors, the shipped scripts compiling, and the reference staying in step
//! with the engine.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{
    Workspace, assert_code, assert_sound, column, run_migration as run, setup, sha256_file,
    stderr_of, stdout_of,
};

fn assert_ok(out: &Output) {
    assert_code(out, 0);
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A workspace with prod.sqlite3, schema.sql and the named example recipe.
fn example(recipe: &str, prod_sql: &str, source_sql: &str) -> (Workspace, PathBuf) {
    let (ws, prod) = setup(prod_sql, source_sql);
    std::fs::copy(
        root().join("recipes/examples").join(recipe),
        ws.path(recipe),
    )
    .unwrap();
    (ws, prod)
}

const PRACTICE: &str = "CREATE TABLE practice(id INTEGER PRIMARY KEY, tune TEXT NOT NULL, played TEXT, minutes INT);
INSERT INTO practice VALUES (1, 'The Kesh', '2026-03-14 18:30:00', 20), (2, 'Cooley''s', '2026-03-15 07:05:10', 15), (3, 'Blue Monk', NULL, 30);";
const PRACTICE_RENAMED: &str = "CREATE TABLE practice(id INTEGER PRIMARY KEY, tune TEXT NOT NULL, practiced TEXT, minutes INT);";

#[test]
fn example_rename_column_keeps_every_value() {
    let (ws, prod) = example("rename_column.rhai", PRACTICE, PRACTICE_RENAMED);
    let before = column(
        &prod,
        "SELECT id || ':' || ifnull(played, 'NULL') FROM practice ORDER BY id",
    );
    assert_ok(&run(&ws, Some("rename_column.rhai"), &["--yes"]));
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(practiced, 'NULL') FROM practice ORDER BY id"
        ),
        before
    );
    assert_sound(&ws);
    let history = column(
        &prod,
        "SELECT recipe || ' ' || recipe_sha256 FROM _sqlmorph_history",
    );
    assert_eq!(
        history,
        vec![format!(
            "rename_column.rhai {}",
            sha256_file(&ws.path("rename_column.rhai"))
        )]
    );
    let log = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("log.txt");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("recipe rename_column.rhai (sha256 ")
    );
}

#[test]
fn a_rename_without_a_recipe_line_stops_and_prints_the_line() {
    let (ws, prod) = example("rename_column.rhai", PRACTICE, PRACTICE_RENAMED);
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("Was column practice.played renamed to practiced?"),
        "{err}"
    );
    assert!(
        err.contains(r#"rename_column("practice", "played", "practiced");"#),
        "{err}"
    );
    assert!(
        err.contains("same type affinity (TEXT)") && err.contains("same position (3)"),
        "evidence: {err}"
    );
    assert_eq!(sha256_file(&prod), before);

    // --allow-destructive: dropped and added as the schemas say, loudly.
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_ok(&out);
    let text = stdout_of(&out);
    assert!(
        text.contains("WARNING: column played is treated as dropped")
            && text.contains(r#"rename_column("practice", "played", "practiced");"#),
        "{text}"
    );
    assert_eq!(
        column(&prod, "SELECT count(practiced) FROM practice"),
        vec!["0"]
    );
}

#[test]
fn example_split_table_keeps_every_order_linked() {
    let (ws, prod) = example(
        "split_table.rhai",
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_name TEXT, customer_email TEXT, total REAL);
         INSERT INTO orders VALUES (1, 'Ann', 'ann@x', 10.5), (2, 'Bob', 'bob@x', 3), (3, 'Ann', 'ann@x', 7.25), (4, 'Cy', 'cy@x', 1);",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL);",
    );
    let before = column(
        &prod,
        "SELECT id || ':' || customer_name || ':' || customer_email || ':' || total FROM orders ORDER BY id",
    );
    assert_ok(&run(&ws, Some("split_table.rhai"), &["--yes"]));
    let after = column(
        &prod,
        "SELECT o.id || ':' || c.name || ':' || c.email || ':' || o.total FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id",
    );
    assert_eq!(after, before, "every order linked to its customer");
    assert_eq!(column(&prod, "SELECT count(*) FROM customers"), vec!["3"]);
    assert_sound(&ws);
}

#[test]
fn example_date_to_epoch_converts_and_checks_every_value() {
    let source = "CREATE TABLE practice(id INTEGER PRIMARY KEY, tune TEXT NOT NULL, practiced INTEGER, minutes INT);";
    let prod_sql = PRACTICE.replace("played", "practiced");
    let (ws, prod) = example("date_to_epoch.rhai", &prod_sql, source);
    assert_ok(&run(&ws, Some("date_to_epoch.rhai"), &["--yes"]));
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(practiced, 'NULL') || ':' || typeof(practiced) FROM practice ORDER BY id"
        ),
        vec![
            "1:1773513000:integer",
            "2:1773558310:integer",
            "3:NULL:null"
        ]
    );
    assert_sound(&ws);

    // An unparsable date would become NULL: that needs approval.
    let (ws, prod) = example(
        "date_to_epoch.rhai",
        &format!("{prod_sql} INSERT INTO practice VALUES (4, 'x', 'last tuesday', 5);"),
        source,
    );
    let before = sha256_file(&prod);
    let out = run(&ws, Some("date_to_epoch.rhai"), &["--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("1 become NULL")
            && stderr_of(&out).contains("'last tuesday' -> NULL"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn example_backfill_not_null_from_another_table() {
    let (ws, prod) = example(
        "backfill_not_null.rhai",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INT NOT NULL REFERENCES users(id), total REAL);
         INSERT INTO users VALUES (1, 'ann'), (2, 'bob');
         INSERT INTO orders VALUES (10, 1, 5), (11, 2, 6), (12, 1, 7);",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INT NOT NULL REFERENCES users(id), total REAL, user_name TEXT NOT NULL);",
    );
    assert_ok(&run(&ws, Some("backfill_not_null.rhai"), &["--yes"]));
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || user_name FROM orders ORDER BY id"
        ),
        vec!["10:ann", "11:bob", "12:ann"]
    );
    assert_sound(&ws);
}

#[test]
fn example_json_to_columns_with_transform() {
    let (ws, prod) = example(
        "json_to_columns.rhai",
        r#"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, profile TEXT);
           INSERT INTO users VALUES (1, 'ann', '{"city": "Cork", "zip": "T12"}'), (2, 'bob', NULL), (3, 'cy', '{"city": "Galway", "zip": 91}');"#,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, city TEXT, zip TEXT);",
    );
    let out = run(&ws, Some("json_to_columns.rhai"), &["--yes"]);
    assert_ok(&out);
    assert!(
        stdout_of(&out).contains("transform users: 3 row(s), 2 changed (column(s): city, zip)"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || name || ':' || ifnull(city, 'NULL') || ':' || ifnull(zip, 'NULL') FROM users ORDER BY id"
        ),
        vec!["1:ann:Cork:T12", "2:bob:NULL:NULL", "3:cy:Galway:91"]
    );
    assert_sound(&ws);
}

#[test]
fn transform_rewrites_a_without_rowid_table_by_its_primary_key() {
    // A composite key and more rows than one batch (10,000).
    let (ws, prod) = setup(
        "CREATE TABLE tags(owner TEXT, n INT, label TEXT, PRIMARY KEY(owner, n)) WITHOUT ROWID;
         WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 12000)
         INSERT INTO tags SELECT CASE n % 3 WHEN 0 THEN 'ann' WHEN 1 THEN 'Bob' ELSE 'cy' END, n, 'tag ' || n FROM i;",
        "CREATE TABLE tags(owner TEXT, n INT, label TEXT, shout TEXT, PRIMARY KEY(owner, n)) WITHOUT ROWID;",
    );
    ws.file(
        "shout.rhai",
        r#"import "std/steps" as steps;
let p = steps::prepare();
let db = copy(p);
transform("tags", |row| { row.shout = row.owner + ": " + row.label.to_upper(); row });
steps::finish(p, db);
"#,
    );
    let out = run(&ws, Some("shout.rhai"), &["--yes"]);
    assert_ok(&out);
    assert!(
        stdout_of(&out).contains("transform tags: 12000 row(s), 12000 changed (column(s): shout)"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM tags WHERE shout = owner || ': TAG ' || n"
        ),
        vec!["12000"]
    );
    assert_sound(&ws);
}

#[test]
fn transform_refuses_to_change_a_without_rowid_key() {
    let (ws, prod) = setup(
        "CREATE TABLE tags(owner TEXT PRIMARY KEY, label TEXT) WITHOUT ROWID; INSERT INTO tags VALUES ('ann', 'x');",
        "CREATE TABLE tags(owner TEXT PRIMARY KEY, label TEXT, n INT) WITHOUT ROWID;",
    );
    let before = sha256_file(&prod);
    ws.file(
        "rekey.rhai",
        r#"import "std/steps" as steps;
let p = steps::prepare();
let db = copy(p);
transform("tags", |row| { row.owner = "bob"; row });
steps::finish(p, db);
"#,
    );
    let out = run(&ws, Some("rekey.rhai"), &["--yes"]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out)
            .contains("transform of tags, key ('ann'): owner is part of the primary key"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn a_runtime_error_inside_transform_names_the_line_and_changes_nothing() {
    let (ws, prod) = example(
        "json_to_columns.rhai",
        r#"CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, profile TEXT);
           INSERT INTO users VALUES (1, 'ann', 'not json');"#,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, city TEXT, zip TEXT);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, Some("json_to_columns.rhai"), &["--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("rowid 1") && err.contains("json_to_columns.rhai:"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn new_creates_a_dated_migration_from_the_template() {
    let ws = Workspace::new();
    let out = ws.cmd().args(["new", "rename practiced"]).output().unwrap();
    assert_ok(&out);
    let dir: Vec<PathBuf> = std::fs::read_dir(ws.path("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dir.len(), 1);
    let name = dir[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with("_rename_practiced.rhai")
            && name.len() == "20260101_rename_practiced.rhai".len(),
        "{name}"
    );
    assert!(
        std::fs::read_to_string(&dir[0])
            .unwrap()
            .contains("import \"std/default\";")
    );
    assert_eq!(
        ws.cmd()
            .args(["new", "rename practiced"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2),
        "no overwrite"
    );
}

#[test]
fn every_shipped_script_compiles() {
    // A recipe that only compiles each file: `rhai` parse errors would name it.
    for dir in ["recipes", "recipes/examples", "stdlib"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rhai") {
                let text = std::fs::read_to_string(&p).unwrap();
                let engine = rhai::Engine::new();
                engine
                    .compile(&text)
                    .unwrap_or_else(|err| panic!("{}: {err}", p.display()));
            }
        }
    }
}

#[test]
fn the_readme_reference_matches_the_engine() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let reference = sqlmorph::script::reference::markdown();
    assert!(
        readme.contains(&reference),
        "README.md must contain the generated reference:\n{reference}"
    );
    // Every documented primitive is registered, and every registered
    // function is documented (as a primitive or a type member).
    let names = sqlmorph::script::engine::registered_functions();
    let documented: Vec<&str> = sqlmorph::script::reference::PRIMITIVES
        .iter()
        .map(|p| p.name)
        .collect();
    for d in &documented {
        assert!(
            names.iter().any(|n| n == d),
            "{d} is documented but not registered"
        );
    }
    let members: Vec<&str> = sqlmorph::script::reference::TYPES
        .iter()
        .map(|(_, m, _)| *m)
        .collect();
    for n in &names {
        assert!(
            documented.contains(&n.as_str()) || members.contains(&n.as_str()) || n == "to_string",
            "{n} is registered but not documented"
        );
    }
}

#[test]
fn at_a_terminal_a_rename_is_suggested_and_applied() {
    use crate::support::tty::Tty;
    let (ws, prod) = example("rename_column.rhai", PRACTICE, PRACTICE_RENAMED);
    let before = column(
        &prod,
        "SELECT id || ':' || ifnull(played, 'NULL') FROM practice ORDER BY id",
    );
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3",
            bin.display()
        ),
    );
    let screen = tty.wait_for("renamed to practiced?");
    assert!(
        screen.contains("name similarity") && screen.contains("[y/n/s]"),
        "{screen}"
    );
    tty.line("y");
    tty.wait_for("Build, validate and deploy the migrated database to prod.sqlite3? [y/N]");
    tty.line("y");
    let screen = tty.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(r#"applying rename_column("practice", "played", "practiced");"#),
        "{screen}"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(practiced, 'NULL') FROM practice ORDER BY id"
        ),
        before
    );
}

#[test]
fn at_a_terminal_n_drops_and_adds_after_approval() {
    use crate::support::tty::Tty;
    let (ws, prod) = example("rename_column.rhai", PRACTICE, PRACTICE_RENAMED);
    let bin = assert_cmd::cargo::cargo_bin("sqlmorph");
    let tty = Tty::start(
        ws.dir.path(),
        &format!(
            "NO_COLOR=1 {} run --source schema.sql --production prod.sqlite3",
            bin.display()
        ),
    );
    tty.wait_for("renamed to practiced?");
    tty.line("n");
    tty.wait_for("Type 'yes' to accept, or 'no' to stop:");
    tty.line("no");
    let screen = tty.wait_for("EXIT=");
    assert!(
        screen.contains("EXIT=3") && screen.contains("data loss declined"),
        "{screen}"
    );
    assert_eq!(
        column(&prod, "SELECT count(played) FROM practice"),
        vec!["2"],
        "unchanged"
    );
}

#[test]
fn a_recipe_imports_a_module_beside_it() {
    let (ws, prod) = example("rename_column.rhai", PRACTICE, PRACTICE_RENAMED);
    ws.file(
        "lib/renames.rhai",
        "fn declare() { rename_column(\"practice\", \"played\", \"practiced\"); }\n",
    );
    ws.file(
        "main.rhai",
        "import \"lib/renames\" as r;\nr::declare();\nimport \"std/default\";\n",
    );
    assert_ok(&run(&ws, Some("main.rhai"), &["--yes"]));
    assert_eq!(
        column(&prod, "SELECT count(practiced) FROM practice"),
        vec!["2"]
    );
}

#[test]
fn an_error_in_an_imported_module_names_each_file_and_line() {
    let (ws, prod) = setup(PRACTICE, PRACTICE_RENAMED);
    ws.file(
        "helpers.rhai",
        "// helpers\n\nfn inner(x) {\n    frobnicate(x);\n}\n\nfn outer() {\n    let y = 2;\n    inner(y);\n}\n",
    );
    ws.file(
        "main.rhai",
        "import \"helpers\" as h;\nlet n = 1;\n\nh::outer();\n",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, Some("main.rhai"), &["--yes"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    let expected = [
        "Function not found: frobnicate (i64)",
        " --> helpers.rhai:4:5",
        "   |",
        " 4 |     frobnicate(x);",
        "   |     ^",
        "  = in call to `inner` at helpers.rhai:9:5",
        "  = in call to `outer` at main.rhai:4:4",
    ]
    .join("\n");
    assert!(err.contains(&expected), "{err}");
    assert_eq!(sha256_file(&prod), before);
}

#[test]
fn an_error_inside_std_checks_shows_its_line_and_the_recipe_call() {
    let (ws, _) = setup(ODD, ODD_WITH_TZ);
    ws.file(
        "failing.rhai",
        &checks_recipe(r#"checks::rows(db, "odd\"name", 5);"#),
    );
    let out = run(&ws, Some("failing.rhai"), &["--yes"]);
    assert_code(&out, 2);
    let err = stderr_of(&out);
    let expected = [
        r#"odd"name: expected 5 row(s), found 2"#,
        " --> std/checks.rhai:17:9",
        "    |",
        r#" 17 |         throw `${table}: expected ${expected} row(s), found ${n}`;"#,
        "    |         ^",
        "  = in call to `rows` at failing.rhai:5:9",
    ]
    .join("\n");
    assert!(err.contains(&expected), "{err}");
}

const ODD: &str = r#"CREATE TABLE "odd""name"(id INTEGER PRIMARY KEY, "it's ""col""" TEXT);
INSERT INTO "odd""name" VALUES (1, 'a'), (2, NULL);"#;
const ODD_WITH_TZ: &str = r#"CREATE TABLE "odd""name"(id INTEGER PRIMARY KEY, "it's ""col""" TEXT, tz TEXT NOT NULL DEFAULT 'UTC');"#;

/// A recipe that runs `checks` (std/checks calls) on the migrated database.
fn checks_recipe(checks: &str) -> String {
    format!(
        "import \"std/steps\" as steps;\nimport \"std/checks\" as checks;\n\
         let p = steps::prepare();\nlet db = copy(p);\n{checks}\nsteps::finish(p, db);\n"
    )
}

#[test]
fn std_checks_quote_table_and_column_names() {
    let (ws, prod) = setup(ODD, ODD_WITH_TZ);
    ws.file(
        "failing.rhai",
        &checks_recipe(r#"checks::no_nulls(db, "odd\"name", "it's \"col\"");"#),
    );
    let before = sha256_file(&prod);
    let out = run(&ws, Some("failing.rhai"), &["--yes"]);
    assert_code(&out, 2);
    assert!(
        stderr_of(&out).contains(r#"odd"name.it's "col": 1 NULL value(s)"#),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sha256_file(&prod), before, "a failed check deploys nothing");

    ws.file(
        "passing.rhai",
        &checks_recipe(
            r#"checks::rows(db, "odd\"name", 2); checks::no_nulls(db, "odd\"name", "tz");"#,
        ),
    );
    assert_ok(&run(&ws, Some("passing.rhai"), &["--yes"]));
    assert_eq!(
        column(&prod, r#"SELECT id || tz FROM "odd""name" ORDER BY id"#),
        vec!["1UTC", "2UTC"]
    );
}
