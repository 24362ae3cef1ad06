//! SQLite fidelity: every schema feature and every odd value survives the
//! stock migration. Each test builds a production database with real data,
//! a source schema that changes something next to the feature (a column
//! added or dropped in the same table, the table renamed by a recipe, an
//! unrelated table changed), runs the real binary non-interactively, and
//! checks the data, the schema (`diff` of the result against the source is
//! empty), `integrity_check` and `foreign_key_check`. A change the in-place
//! path takes runs both ways (`migrate_both`): in place, and with
//! `--rebuild` on a twin, which must end with an equal database.

use std::path::{Path, PathBuf};
use std::process::Output;

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use crate::support::{
    Workspace, assert_code, assert_sound, column, run_both_ways, run_migration as run, setup,
    sha256_file, stderr_of, stdout_of,
};

/// Runs the stock migration with `--yes` and asserts it deployed.
fn migrate(ws: &Workspace) -> Output {
    let out = run(ws, None, &["--yes"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("deployed to"),
        "{}",
        stdout_of(&out)
    );
    out
}

/// Runs the stock migration with `--yes` both ways — in place in `ws`,
/// and with `--rebuild` in a twin of it — asserts both deployed equal
/// databases, and returns the in-place run's output. For a change the
/// in-place path takes: the rebuild's copy is what the feature must
/// survive, the in-place statements what it must survive too.
fn migrate_both(ws: &Workspace) -> Output {
    let both = run_both_ways(ws, None, &["--yes"]);
    for out in both.outputs() {
        assert_code(out, 0);
        assert!(stdout_of(out).contains("deployed to"), "{}", stdout_of(out));
    }
    both.in_place
}

/// Runs a recipe that declares `lines` and then the stock workflow.
fn migrate_with(ws: &Workspace, lines: &str, extra: &[&str]) -> Output {
    ws.file(
        "recipe.rhai",
        &format!("{lines}\nimport \"std/default\";\n"),
    );
    let mut args = vec!["--yes"];
    args.extend_from_slice(extra);
    let out = run(ws, Some("recipe.rhai"), &args);
    assert_code(&out, 0);
    out
}

/// Every row of a query, every column rendered with its storage class and
/// exact bytes: text that is not UTF-8 and text with NUL bytes show as hex,
/// blobs longer than 64 bytes as their length and SHA-256.
pub(crate) fn dump(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let cells: Vec<String> = (0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(v) => format!("int {v}"),
                ValueRef::Real(v) => format!("real {v:e} ({:016x})", v.to_bits()),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) if !s.contains('\0') => format!("text {s:?}"),
                    _ => format!("text x'{}'", hex::encode(t)),
                },
                ValueRef::Blob(b) if b.len() > 64 => {
                    format!("blob {} bytes {}", b.len(), hex::encode(Sha256::digest(b)))
                }
                ValueRef::Blob(b) => format!("blob x'{}'", hex::encode(b)),
            })
            .collect();
        out.push(cells.join(" | "));
    }
    out
}

/// The stored CREATE statements of one kind of object, by name.
fn stored_sql(db: &Path, kind: &str) -> Vec<String> {
    column(
        db,
        &format!(
            "SELECT name || ': ' || sql FROM sqlite_schema WHERE type = '{kind}' AND sql IS NOT NULL ORDER BY name"
        ),
    )
}

// ---------------------------------------------------------------- views

#[test]
fn views_on_rebuilt_and_renamed_tables_and_views_on_views() {
    let (ws, prod) = setup(
        "CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT NOT NULL, born INT);
         CREATE TABLE books(id INTEGER PRIMARY KEY, author_id INT REFERENCES authors(id), title TEXT, year INT);
         CREATE VIEW author_names AS SELECT id, upper(name) AS name FROM authors;
         CREATE VIEW author_initials AS SELECT substr(name, 1, 1) AS initial, count(*) AS n FROM author_names GROUP BY 1;
         CREATE VIEW author_books AS SELECT a.name, b.title, b.year FROM authors a JOIN books b ON b.author_id = a.id;
         CREATE VIEW recent_books AS SELECT name, title FROM author_books WHERE year >= 2000;
         INSERT INTO authors VALUES (1, 'Le Guin', 1929), (2, 'Banks', 1954), (3, 'Leckie', 1966);
         INSERT INTO books VALUES (10, 1, 'The Dispossessed', 1974), (11, 2, 'Excession', 1996),
           (12, 2, 'The Hydrogen Sonata', 2012), (13, 3, 'Ancillary Justice', 2013);",
        // authors gains a column (rebuilt under unchanged views); books is
        // renamed to titles by the recipe and the views over it follow.
        "CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT NOT NULL, born INT, country TEXT);
         CREATE TABLE titles(id INTEGER PRIMARY KEY, author_id INT REFERENCES authors(id), title TEXT, year INT);
         CREATE VIEW author_names AS SELECT id, upper(name) AS name FROM authors;
         CREATE VIEW author_initials AS SELECT substr(name, 1, 1) AS initial, count(*) AS n FROM author_names GROUP BY 1;
         CREATE VIEW author_books AS SELECT a.name, t.title, t.year FROM authors a JOIN titles t ON t.author_id = a.id;
         CREATE VIEW recent_books AS SELECT name, title FROM author_books WHERE year >= 2000;",
    );
    migrate_with(&ws, r#"rename_table("books", "titles");"#, &[]);
    assert_eq!(
        dump(&prod, "SELECT * FROM author_initials ORDER BY initial"),
        vec!["text \"B\" | int 1", "text \"L\" | int 2"]
    );
    assert_eq!(
        dump(&prod, "SELECT * FROM recent_books ORDER BY title"),
        vec![
            "text \"Leckie\" | text \"Ancillary Justice\"",
            "text \"Banks\" | text \"The Hydrogen Sonata\"",
        ]
    );
    assert_eq!(
        dump(&prod, "SELECT * FROM author_books ORDER BY year"),
        vec![
            "text \"Le Guin\" | text \"The Dispossessed\" | int 1974",
            "text \"Banks\" | text \"Excession\" | int 1996",
            "text \"Banks\" | text \"The Hydrogen Sonata\" | int 2012",
            "text \"Leckie\" | text \"Ancillary Justice\" | int 2013",
        ]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'books'"
        ),
        vec!["0"]
    );
    assert_sound(&ws);
}

#[test]
fn views_and_triggers_that_name_main_explicitly_migrate_verbatim() {
    let objects = "CREATE VIEW adults AS SELECT id, name FROM main.users WHERE age >= 18;
         CREATE TRIGGER users_log AFTER INSERT ON users BEGIN INSERT INTO log(n) SELECT count(*) FROM main.users; END;";
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, age INT);
             CREATE TABLE log(n INT);
             INSERT INTO users VALUES (1, 'Ann', 30), (2, 'Bo', 9);
             {objects}"
        ),
        &format!(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, age INT, email TEXT);
             CREATE TABLE log(n INT);
             {objects}"
        ),
    );
    migrate_both(&ws);
    assert_eq!(
        stored_sql(&prod, "view"),
        vec!["adults: CREATE VIEW adults AS SELECT id, name FROM main.users WHERE age >= 18"]
    );
    assert_eq!(
        stored_sql(&prod, "trigger"),
        vec![
            "users_log: CREATE TRIGGER users_log AFTER INSERT ON users BEGIN INSERT INTO log(n) SELECT count(*) FROM main.users; END"
        ]
    );
    assert_eq!(column(&prod, "SELECT name FROM adults"), vec!["Ann"]);
    let conn = Connection::open(&prod).unwrap();
    conn.execute("INSERT INTO users(name, age) VALUES ('Cy', 40)", [])
        .unwrap();
    assert_eq!(column(&prod, "SELECT n FROM log"), vec!["3"]);
    assert_sound(&ws);
}

// ---------------------------------------------------------------- triggers

const TRIGGERS: &str = "
CREATE TRIGGER items_no_negative BEFORE INSERT ON items WHEN NEW.qty < 0 BEGIN SELECT RAISE(ABORT, 'negative qty'); END;
CREATE TRIGGER items_audit_insert AFTER INSERT ON items BEGIN INSERT INTO audit(item_id, what) VALUES (NEW.id, 'insert'); END;
CREATE TRIGGER items_audit_update AFTER UPDATE OF qty ON items BEGIN INSERT INTO audit(item_id, what) VALUES (NEW.id, 'qty ' || OLD.qty || '->' || NEW.qty); END;
CREATE VIEW stock AS SELECT id, name, qty FROM items;
CREATE TRIGGER stock_insert INSTEAD OF INSERT ON stock BEGIN INSERT INTO items(name, qty) VALUES (upper(NEW.name), NEW.qty); END;
CREATE TRIGGER audit_append_only BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
";

#[test]
fn triggers_before_after_instead_of_are_kept_and_never_fire_during_the_copy() {
    // A row the BEFORE trigger would refuse was stored before the trigger
    // existed: if any trigger fired during the copy, the copy would fail or
    // the audit table would grow.
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INT);
             CREATE TABLE audit(id INTEGER PRIMARY KEY, item_id INT, what TEXT);
             INSERT INTO items VALUES (1, 'bolt', -5), (2, 'nut', 10);
             INSERT INTO audit VALUES (1, 1, 'legacy');
             {TRIGGERS}"
        ),
        &format!(
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INT, location TEXT);
             CREATE TABLE audit(id INTEGER PRIMARY KEY, item_id INT, what TEXT);
             {TRIGGERS}"
        ),
    );
    migrate_both(&ws);
    assert_eq!(
        dump(&prod, "SELECT * FROM items ORDER BY id"),
        vec![
            "int 1 | text \"bolt\" | int -5 | NULL",
            "int 2 | text \"nut\" | int 10 | NULL"
        ]
    );
    assert_eq!(
        dump(&prod, "SELECT * FROM audit"),
        vec!["int 1 | int 1 | text \"legacy\""],
        "no trigger fired during the copy"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name"
        ),
        vec![
            "audit_append_only",
            "items_audit_insert",
            "items_audit_update",
            "items_no_negative",
            "stock_insert"
        ]
    );
    assert_sound(&ws);
    // And every trigger works on the migrated file.
    let conn = Connection::open(&prod).unwrap();
    conn.execute("INSERT INTO stock(name, qty) VALUES ('washer', 3)", [])
        .unwrap();
    conn.execute("UPDATE items SET qty = 11 WHERE id = 2", [])
        .unwrap();
    let err = conn
        .execute("INSERT INTO items(name, qty) VALUES ('x', -1)", [])
        .unwrap_err();
    assert!(err.to_string().contains("negative qty"), "{err}");
    let err = conn.execute("DELETE FROM audit", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    drop(conn);
    assert_eq!(
        dump(&prod, "SELECT item_id, what FROM audit ORDER BY id"),
        vec![
            "int 1 | text \"legacy\"",
            "int 3 | text \"insert\"",
            "int 2 | text \"qty 10->11\""
        ]
    );
    assert_eq!(
        column(&prod, "SELECT name FROM items WHERE id = 3"),
        vec!["WASHER"]
    );
}

// ---------------------------------------------------------------- indexes

const INDEXES: &str = "
CREATE UNIQUE INDEX users_email ON users(email);
CREATE UNIQUE INDEX users_name_live ON users(name) WHERE deleted_at IS NULL;
CREATE INDEX users_domain ON users(substr(email, instr(email, '@') + 1));
CREATE INDEX users_score_desc ON users(score DESC, id);
CREATE INDEX users_city_nocase ON users(city COLLATE NOCASE);
";

#[test]
fn indexes_unique_partial_expression_desc_and_collate_survive() {
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, deleted_at TEXT, score REAL, city TEXT);
             INSERT INTO users VALUES (1, 'ann@a.org', 'ann', NULL, 3.5, 'Oslo'),
               (2, 'old-ann@b.org', 'ann', '2025-01-01', 1.0, 'oslo'),
               (3, 'bob@a.org', 'bob', NULL, 9.25, 'Bergen');
             {INDEXES}"
        ),
        &format!(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, deleted_at TEXT, score REAL, city TEXT, phone TEXT);
             {INDEXES}"
        ),
    );
    let expected = ws.db(
        "expected.sqlite3",
        &std::fs::read_to_string(ws.path("schema.sql")).unwrap(),
    );
    migrate_both(&ws);
    assert_eq!(stored_sql(&prod, "index"), stored_sql(&expected, "index"));
    assert_eq!(
        dump(
            &prod,
            "SELECT id, email, name, deleted_at, score, city FROM users ORDER BY id"
        ),
        vec![
            "int 1 | text \"ann@a.org\" | text \"ann\" | NULL | real 3.5e0 (400c000000000000) | text \"Oslo\"",
            "int 2 | text \"old-ann@b.org\" | text \"ann\" | text \"2025-01-01\" | real 1e0 (3ff0000000000000) | text \"oslo\"",
            "int 3 | text \"bob@a.org\" | text \"bob\" | NULL | real 9.25e0 (4022800000000000) | text \"Bergen\"",
        ]
    );
    assert_sound(&ws);
    let conn = Connection::open(&prod).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        plan("SELECT id FROM users WHERE substr(email, instr(email, '@') + 1) = 'a.org'")
            .contains("users_domain")
    );
    assert!(
        plan("SELECT id FROM users WHERE city = 'OSLO' COLLATE NOCASE")
            .contains("users_city_nocase")
    );
    assert!(plan("SELECT id FROM users ORDER BY score DESC, id").contains("users_score_desc"));
    // The unique and partial indexes still enforce what they did.
    assert!(
        conn.execute(
            "INSERT INTO users(email, name) VALUES ('ann@a.org', 'zed')",
            []
        )
        .is_err()
    );
    assert!(
        conn.execute(
            "INSERT INTO users(email, name) VALUES ('c@c.org', 'bob')",
            []
        )
        .is_err(),
        "a second live 'bob'"
    );
    conn.execute(
        "INSERT INTO users(email, name, deleted_at) VALUES ('d@c.org', 'bob', '2026-01-01')",
        [],
    )
    .unwrap();
    let hits: Vec<i64> = conn
        .prepare("SELECT id FROM users WHERE city = 'OSLO' COLLATE NOCASE ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hits, vec![1, 2]);
}

// ---------------------------------------------------------------- foreign keys

#[test]
fn foreign_keys_composite_deferred_cascade_set_null_and_self_reference() {
    let body = |extra_customer: &str, extra_region: &str| {
        format!(
            "CREATE TABLE regions(country TEXT NOT NULL, code TEXT NOT NULL, name TEXT{extra_region}, PRIMARY KEY (country, code));
             CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, region TEXT,
               referrer_id INT REFERENCES customers(id) ON DELETE SET NULL{extra_customer},
               FOREIGN KEY (country, region) REFERENCES regions(country, code) DEFERRABLE INITIALLY DEFERRED);
             CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INT NOT NULL REFERENCES customers(id) ON DELETE CASCADE, total INT);
             CREATE TABLE notes(id INTEGER PRIMARY KEY, order_id INT REFERENCES orders(id) ON DELETE SET NULL, body TEXT);"
        )
    };
    let (ws, prod) = setup(
        &format!(
            "{}
             INSERT INTO regions VALUES ('NO', '03', 'Oslo'), ('NO', '46', 'Vestland'), ('SE', 'AB', 'Stockholm');
             INSERT INTO customers VALUES (1, 'ann', 'NO', '03', NULL), (2, 'bob', 'NO', '46', 1), (3, 'cy', 'SE', 'AB', 2);
             INSERT INTO orders VALUES (10, 1, 100), (11, 1, 250), (12, 2, 75), (13, 3, 20);
             INSERT INTO notes VALUES (100, 10, 'gift'), (101, 11, 'rush'), (102, 12, NULL);",
            body("", "")
        ),
        // Both parents are rebuilt (a column each); orders and notes are not.
        &body(", email TEXT", ", population INT"),
    );
    migrate_both(&ws);
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(referrer_id, '-') FROM customers ORDER BY id"
        ),
        vec!["1:-", "2:1", "3:2"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || customer_id FROM orders ORDER BY id"
        ),
        vec!["10:1", "11:1", "12:2", "13:3"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(order_id, '-') FROM notes ORDER BY id"
        ),
        vec!["100:10", "101:11", "102:12"]
    );
    assert_eq!(column(&prod, "SELECT count(*) FROM regions"), vec!["3"]);
    assert_sound(&ws);
    // The actions still work: cascade, set null, deferred composite check.
    let conn = Connection::open(&prod).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn.execute("DELETE FROM customers WHERE id = 1", [])
        .unwrap();
    drop(conn);
    assert_eq!(
        column(&prod, "SELECT id FROM orders ORDER BY id"),
        vec!["12", "13"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(order_id, '-') FROM notes ORDER BY id"
        ),
        vec!["100:-", "101:-", "102:12"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT id || ':' || ifnull(referrer_id, '-') FROM customers ORDER BY id"
        ),
        vec!["2:-", "3:2"]
    );
    let mut conn = Connection::open(&prod).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute(
        "INSERT INTO customers(id, name, country, region) VALUES (4, 'di', 'DK', '84')",
        [],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO regions(country, code, name) VALUES ('DK', '84', 'Hovedstaden')",
        [],
    )
    .unwrap();
    tx.commit().expect("the composite key is checked at commit");
    let tx = conn.transaction().unwrap();
    tx.execute(
        "INSERT INTO customers(id, name, country, region) VALUES (5, 'ed', 'FI', '01')",
        [],
    )
    .unwrap();
    assert!(tx.commit().is_err(), "a missing parent fails at commit");
}

// ---------------------------------------------------------------- autoincrement

#[test]
fn autoincrement_counters_are_kept_and_deleted_ids_never_reused() {
    let (ws, prod) = setup(
        "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT);
         INSERT INTO events(kind) VALUES ('a'), ('b'), ('c'), ('d'), ('e');
         DELETE FROM events WHERE id >= 4;
         CREATE TABLE tickets(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT);
         INSERT INTO tickets(title) VALUES ('x'), ('y'), ('z');
         DELETE FROM tickets;",
        "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, at TEXT);
         CREATE TABLE issues(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT);",
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name || '=' || seq FROM sqlite_sequence ORDER BY name"
        ),
        vec!["events=5", "tickets=3"]
    );
    migrate_with(&ws, r#"rename_table("tickets", "issues");"#, &[]);
    assert_eq!(
        column(
            &prod,
            "SELECT name || '=' || seq FROM sqlite_sequence ORDER BY name"
        ),
        vec!["events=5", "issues=3"]
    );
    assert_eq!(
        column(&prod, "SELECT id || kind FROM events ORDER BY id"),
        vec!["1a", "2b", "3c"]
    );
    assert_sound(&ws);
    let conn = Connection::open(&prod).unwrap();
    conn.execute("INSERT INTO events(kind) VALUES ('f')", [])
        .unwrap();
    conn.execute("INSERT INTO issues(title) VALUES ('w')", [])
        .unwrap();
    drop(conn);
    assert_eq!(
        column(&prod, "SELECT id FROM events WHERE kind = 'f'"),
        vec!["6"]
    );
    assert_eq!(
        column(&prod, "SELECT id FROM issues WHERE title = 'w'"),
        vec!["4"]
    );
}

// ---------------------------------------------------------------- rowids

#[test]
fn rowid_tables_without_integer_primary_key_keep_their_rowids() {
    let (ws, prod) = setup(
        "CREATE TABLE log(at TEXT, msg TEXT);
         INSERT INTO log(rowid, at, msg) VALUES (5, 't1', 'boot'), (17, 't2', 'warn'), (9000000000, 't3', 'late');
         CREATE TABLE pairs(id INT PRIMARY KEY, v TEXT);
         INSERT INTO pairs(rowid, id, v) VALUES (100, 1, 'a'), (7, 2, 'b');
         CREATE TABLE ranked(id INTEGER PRIMARY KEY DESC, v TEXT);
         INSERT INTO ranked(rowid, id, v) VALUES (50, 1, 'x'), (60, 2, 'y');",
        // INT PRIMARY KEY and INTEGER PRIMARY KEY DESC are not rowid aliases.
        "CREATE TABLE log(at TEXT, msg TEXT, level INT);
         CREATE TABLE pairs(id INT PRIMARY KEY, v TEXT, w TEXT);
         CREATE TABLE ranked(id INTEGER PRIMARY KEY DESC, v TEXT, w TEXT);",
    );
    migrate_both(&ws);
    assert_eq!(
        column(&prod, "SELECT rowid || ':' || msg FROM log ORDER BY rowid"),
        vec!["5:boot", "17:warn", "9000000000:late"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT rowid || ':' || id || v FROM pairs ORDER BY rowid"
        ),
        vec!["7:2b", "100:1a"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT rowid || ':' || id || v FROM ranked ORDER BY rowid"
        ),
        vec!["50:1x", "60:2y"]
    );
    assert_sound(&ws);
}

#[test]
fn without_rowid_tables_keep_their_rows() {
    let (ws, prod) = setup(
        "CREATE TABLE kv(ns TEXT NOT NULL, k TEXT COLLATE NOCASE NOT NULL, v BLOB, PRIMARY KEY (ns, k DESC)) WITHOUT ROWID;
         INSERT INTO kv VALUES ('app', 'Theme', x'01'), ('app', 'lang', 'nb'), ('user', 'theme', 42), ('user', 'z', NULL);",
        "CREATE TABLE kv(ns TEXT NOT NULL, k TEXT COLLATE NOCASE NOT NULL, v BLOB, updated TEXT, PRIMARY KEY (ns, k DESC)) WITHOUT ROWID;",
    );
    let before = dump(&prod, "SELECT ns, k, v FROM kv");
    assert_eq!(before.len(), 4);
    migrate(&ws);
    assert_eq!(dump(&prod, "SELECT ns, k, v FROM kv"), before);
    assert_eq!(
        dump(&prod, "SELECT v FROM kv WHERE ns = 'app' AND k = 'THEME'"),
        vec!["blob x'01'"]
    );
    assert_sound(&ws);
}

// ---------------------------------------------------------------- STRICT

#[test]
fn strict_tables_keep_every_value_and_its_type() {
    let (ws, prod) = setup(
        "CREATE TABLE readings(id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, value REAL, raw BLOB, extra ANY) STRICT;
         INSERT INTO readings VALUES (1, 's1', 3, x'00ff', 1), (2, 's1', 2.5, NULL, '1'),
           (3, 's2', NULL, x'', x'01'), (4, 's2', -0.5, x'7f', 1.5);",
        "CREATE TABLE readings(id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, value REAL, raw BLOB, extra ANY, unit TEXT) STRICT;",
    );
    let before = dump(
        &prod,
        "SELECT id, sensor, value, raw, extra, typeof(extra) FROM readings ORDER BY id",
    );
    assert_eq!(
        before[1],
        "int 2 | text \"s1\" | real 2.5e0 (4004000000000000) | NULL | text \"1\" | text \"text\""
    );
    migrate_both(&ws);
    assert_eq!(
        dump(
            &prod,
            "SELECT id, sensor, value, raw, extra, typeof(extra) FROM readings ORDER BY id"
        ),
        before
    );
    assert_sound(&ws);
}

#[test]
fn strict_type_change_rejecting_some_rows_is_refused_with_samples() {
    let (ws, prod) = setup(
        "CREATE TABLE measurements(id INTEGER PRIMARY KEY, qty TEXT, note TEXT);
         INSERT INTO measurements VALUES (1, '5', 'a'), (2, '12', 'b'), (3, 'n/a', 'c'), (4, 'x', 'd'), (5, NULL, 'e');",
        "CREATE TABLE measurements(id INTEGER PRIMARY KEY, qty INTEGER, note TEXT) STRICT;",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("measurements.qty: 2 value(s) cannot be stored in STRICT INTEGER column")
            && err.contains("row 3: 'n/a'")
            && err.contains("row 4: 'x'"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before, "production untouched");
}

// ---------------------------------------------------------------- generated columns

#[test]
fn generated_columns_virtual_and_stored_are_recomputed_never_copied() {
    let (ws, prod) = setup(
        "CREATE TABLE lines(id INTEGER PRIMARY KEY, price INT NOT NULL, qty INT NOT NULL,
           total INT GENERATED ALWAYS AS (price * qty) STORED,
           label TEXT AS ('#' || id || ' x' || qty) VIRTUAL);
         INSERT INTO lines(id, price, qty) VALUES (1, 100, 2), (2, 15, 4), (3, 7, 0);",
        "CREATE TABLE lines(id INTEGER PRIMARY KEY, price INT NOT NULL, qty INT NOT NULL,
           discount INT NOT NULL DEFAULT 5,
           total INT GENERATED ALWAYS AS (price * qty - discount) STORED,
           label TEXT AS ('#' || id || ' x' || qty || ' -' || discount) VIRTUAL);",
    );
    migrate(&ws);
    assert_eq!(
        dump(
            &prod,
            "SELECT id, price, qty, discount, total, label FROM lines ORDER BY id"
        ),
        vec![
            "int 1 | int 100 | int 2 | int 5 | int 195 | text \"#1 x2 -5\"",
            "int 2 | int 15 | int 4 | int 5 | int 55 | text \"#2 x4 -5\"",
            "int 3 | int 7 | int 0 | int 5 | int -5 | text \"#3 x0 -5\"",
        ]
    );
    assert_sound(&ws);
}

#[test]
fn a_plain_column_that_becomes_generated_reports_the_values_it_replaces() {
    let (ws, prod) = setup(
        "CREATE TABLE invoice(id INTEGER PRIMARY KEY, net INT, tax INT, gross INT);
         INSERT INTO invoice VALUES (1, 100, 25, 125), (2, 80, 20, 99), (3, 10, 0, NULL), (4, 50, 5, 55);",
        "CREATE TABLE invoice(id INTEGER PRIMARY KEY, net INT, tax INT, gross INT AS (net + tax) STORED);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("invoice.gross becomes a generated column: 2 stored value(s) differ from (net + tax) and are replaced"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert_eq!(
        column(&prod, "SELECT id || ':' || gross FROM invoice ORDER BY id"),
        vec!["1:125", "2:100", "3:10", "4:55"]
    );
    assert_sound(&ws);
}

// ---------------------------------------------------------------- collations

#[test]
fn column_collations_nocase_and_rtrim_keep_values_and_behaviour() {
    let (ws, prod) = setup(
        "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, code TEXT COLLATE RTRIM);
         INSERT INTO tags VALUES (1, 'Rust', 'ab  '), (2, 'sqlite', 'cd'), (3, 'Zig', 'x ');",
        "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, code TEXT COLLATE RTRIM, color TEXT);",
    );
    migrate_both(&ws);
    assert_eq!(
        dump(&prod, "SELECT id, name, code FROM tags ORDER BY id"),
        vec![
            "int 1 | text \"Rust\" | text \"ab  \"",
            "int 2 | text \"sqlite\" | text \"cd\"",
            "int 3 | text \"Zig\" | text \"x \""
        ]
    );
    assert_eq!(
        column(&prod, "SELECT name FROM tags ORDER BY name"),
        vec!["Rust", "sqlite", "Zig"],
        "NOCASE order"
    );
    assert_eq!(
        column(&prod, "SELECT id FROM tags WHERE name = 'RUST'"),
        vec!["1"]
    );
    assert_eq!(
        column(&prod, "SELECT id FROM tags WHERE code = 'ab'"),
        vec!["1"]
    );
    let conn = Connection::open(&prod).unwrap();
    assert!(
        conn.execute("INSERT INTO tags(name) VALUES ('ZIG')", [])
            .is_err(),
        "UNIQUE under NOCASE"
    );
    drop(conn);
    assert_sound(&ws);
}

#[test]
fn a_collation_change_that_violates_a_unique_index_is_refused() {
    // Through a UNIQUE index (created after the copy) ...
    let (ws, prod) = setup(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, login TEXT);
         CREATE UNIQUE INDEX accounts_login ON accounts(login);
         INSERT INTO accounts VALUES (1, 'Ann'), (2, 'bob'), (3, 'ann');",
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, login TEXT COLLATE NOCASE);
         CREATE UNIQUE INDEX accounts_login ON accounts(login);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("creating index accounts_login failed: UNIQUE constraint failed")
            && err.contains("duplicate keys: ('Ann') x2"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
    // ... and through a UNIQUE constraint (checked while copying).
    let (ws, prod) = setup(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, login TEXT UNIQUE);
         INSERT INTO accounts VALUES (1, 'Ann'), (2, 'bob'), (3, 'ann');",
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, login TEXT COLLATE NOCASE UNIQUE);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("copying table accounts failed")
            && err.contains("rowid 3: UNIQUE constraint failed: accounts.login"),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
}

// ---------------------------------------------------------------- FTS5

const DOCS: &str = "INSERT INTO docs(rowid, title, body) VALUES
  (3, 'SQLite', 'an embedded database engine'),
  (10, 'Rust', 'a language empowering everyone'),
  (42, 'Migrations', 'moving a sqlite database to a new schema');";

#[test]
fn fts5_contents_and_rowids_kept_shadow_tables_ignored_and_match_works() {
    let (ws, prod) = setup(
        &format!(
            "CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = 'porter');
             CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT);
             INSERT INTO notes VALUES (1, 'n');
             {DOCS}"
        ),
        // A column added to the FTS table and an unrelated table changed.
        "CREATE VIRTUAL TABLE docs USING fts5(title, body, tags, tokenize = 'porter');
         CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT, pinned INT);",
    );
    let out = migrate(&ws);
    let stdout = stdout_of(&out);
    assert!(
        !stdout.contains("docs_data") && !stdout.contains("docs_idx"),
        "{stdout}"
    );
    assert_eq!(
        column(
            &prod,
            "SELECT rowid FROM docs WHERE docs MATCH 'databases' ORDER BY rowid"
        ),
        vec!["3", "42"],
        "porter stemming still applies"
    );
    assert_eq!(
        dump(
            &prod,
            "SELECT rowid, title, body, tags FROM docs ORDER BY rowid"
        ),
        vec![
            "int 3 | text \"SQLite\" | text \"an embedded database engine\" | NULL",
            "int 10 | text \"Rust\" | text \"a language empowering everyone\" | NULL",
            "int 42 | text \"Migrations\" | text \"moving a sqlite database to a new schema\" | NULL",
        ]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE name LIKE 'docs%' ORDER BY name"
        ),
        vec![
            "docs",
            "docs_config",
            "docs_content",
            "docs_data",
            "docs_docsize",
            "docs_idx"
        ]
    );
    let conn = Connection::open(&prod).unwrap();
    conn.execute("INSERT INTO docs(docs) VALUES ('integrity-check')", [])
        .unwrap();
    drop(conn);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&ws).join("plan.json")).unwrap())
            .unwrap();
    let tables: Vec<&str> = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        tables,
        vec!["docs", "notes"],
        "no shadow table is a user table"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&ws).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["tables"][0]["table"], "docs");
    assert_eq!(
        report["tables"][0]["columns_checked"],
        serde_json::json!(["title", "body"]),
        "the FTS contents were compared"
    );
    assert_sound(&ws);
}

#[test]
fn fts5_external_content_is_rebuilt_from_its_copied_table() {
    let schema = |extra: &str| {
        format!(
            "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL{extra});
             CREATE VIRTUAL TABLE notes_fts USING fts5(body, content = 'notes', content_rowid = 'id');
             CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
               INSERT INTO notes_fts(rowid, body) VALUES (new.id, new.body);
             END;
             CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
               INSERT INTO notes_fts(notes_fts, rowid, body) VALUES ('delete', old.id, old.body);
             END;"
        )
    };
    let (ws, prod) = setup(
        &format!(
            "{}
             INSERT INTO notes VALUES (4, 'buy milk'), (8, 'call the bank'), (15, 'milk the cow');",
            schema("")
        ),
        &schema(", pinned INT NOT NULL DEFAULT 0"),
    );
    migrate(&ws);
    assert_eq!(
        column(
            &prod,
            "SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'milk' ORDER BY rowid"
        ),
        vec!["4", "15"]
    );
    assert_eq!(
        column(&prod, "SELECT id || body || pinned FROM notes ORDER BY id"),
        vec!["4buy milk0", "8call the bank0", "15milk the cow0"]
    );
    let conn = Connection::open(&prod).unwrap();
    conn.execute(
        "INSERT INTO notes_fts(notes_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO notes(id, body) VALUES (16, 'oat milk')", [])
        .unwrap();
    conn.execute("DELETE FROM notes WHERE id = 4", []).unwrap();
    conn.execute(
        "INSERT INTO notes_fts(notes_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        column(
            &prod,
            "SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'milk' ORDER BY rowid"
        ),
        vec!["15", "16"]
    );
    assert_sound(&ws);
    // An external-content index that is new in the source is built from the
    // rows copied into its content table.
    let (ws, prod) = setup(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes VALUES (4, 'buy milk'), (8, 'call the bank'), (15, 'milk the cow');",
        &schema(""),
    );
    migrate(&ws);
    assert_eq!(
        column(
            &prod,
            "SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'milk' ORDER BY rowid"
        ),
        vec!["4", "15"]
    );
    assert_sound(&ws);
}

#[test]
fn fts5_contentless_index_is_kept_when_unchanged_and_explained_when_not() {
    let prod_sql = "CREATE VIRTUAL TABLE idx USING fts5(body, content = '');
         CREATE TABLE pages(id INTEGER PRIMARY KEY, url TEXT);
         INSERT INTO pages VALUES (1, '/a'), (2, '/b');
         INSERT INTO idx(rowid, body) VALUES (1, 'alpha beta'), (2, 'beta gamma');";
    // Unchanged: its index is carried over as it is.
    let (ws, prod) = setup(
        prod_sql,
        "CREATE VIRTUAL TABLE idx USING fts5(body, content = '');
         CREATE TABLE pages(id INTEGER PRIMARY KEY, url TEXT, title TEXT);",
    );
    let out = migrate(&ws);
    assert!(
        stdout_of(&out).contains("idx is a contentless FTS5 table"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        column(
            &prod,
            "SELECT rowid FROM idx WHERE idx MATCH 'beta' ORDER BY rowid"
        ),
        vec!["1", "2"]
    );
    assert_eq!(
        column(&prod, "SELECT rowid FROM idx WHERE idx MATCH 'gamma'"),
        vec!["2"]
    );
    assert_sound(&ws);
    // Changed: SQLite cannot give the text back, so the review says so and
    // the loss needs approval.
    let (ws, prod) = setup(
        prod_sql,
        "CREATE VIRTUAL TABLE idx USING fts5(body, extra, content = '');
         CREATE TABLE pages(id INTEGER PRIMARY KEY, url TEXT, title TEXT);",
    );
    let before = sha256_file(&prod);
    let out = run(&ws, None, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "idx is a contentless FTS5 table (content=''): SQLite keeps only its index, not the text, \
             so its 2 row(s) cannot be read back into the changed table; it starts empty"
        ),
        "{err}"
    );
    assert_eq!(sha256_file(&prod), before);
    let out = run(&ws, None, &["--yes", "--allow-destructive"]);
    assert_code(&out, 0);
    assert!(
        stdout_of(&out).contains("idx                      0 row(s) copied"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(column(&prod, "SELECT count(*) FROM idx"), vec!["0"]);
    assert_eq!(column(&prod, "SELECT count(*) FROM pages"), vec!["2"]);
    assert_sound(&ws);
}

fn run_dir(ws: &Workspace) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ws.path(".sqlmorph/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

// ---------------------------------------------------------------- identifiers

#[test]
fn identifiers_with_spaces_quotes_brackets_keywords_and_unicode() {
    let objects = "
        CREATE INDEX \"idx \"\"q\"\" [x]\" ON \"order items\"(\"select\", \"日本\");
        CREATE VIEW \"view with space\" AS SELECT \"item id\", \"select\", [qty] FROM \"order items\";
        CREATE TRIGGER \"trg \"\"x\"\"\" AFTER DELETE ON \"order items\" BEGIN DELETE FROM [group] WHERE \"from\" = old.\"item id\"; END;";
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE \"order items\"(\"item id\" INTEGER PRIMARY KEY, \"unit \"\"price\"\"\" REAL, [qty] INT, \"select\" TEXT, \"naïve café\" TEXT, \"日本\" TEXT, `table` TEXT);
             CREATE TABLE [group](\"from\" INT, [to] INT);
             INSERT INTO \"order items\" VALUES (1, 9.5, 2, 'sel', 'crème', '東京', 't1'), (2, NULL, 0, NULL, '', '大阪', NULL);
             INSERT INTO [group] VALUES (1, 2);
             {objects}"
        ),
        &format!(
            "CREATE TABLE \"order items\"(\"item id\" INTEGER PRIMARY KEY, \"unit \"\"price\"\"\" REAL, [qty] INT, \"select\" TEXT, \"naïve café\" TEXT, \"日本\" TEXT, `table` TEXT, \"new ]col[\" TEXT);
             CREATE TABLE [group](\"from\" INT, [to] INT, \"WHERE\" TEXT);
             {objects}"
        ),
    );
    let before = dump(
        &prod,
        "SELECT \"item id\", \"unit \"\"price\"\"\", qty, \"select\", \"naïve café\", \"日本\", \"table\" FROM \"order items\" ORDER BY 1",
    );
    migrate_both(&ws);
    assert_eq!(
        dump(
            &prod,
            "SELECT \"item id\", \"unit \"\"price\"\"\", qty, \"select\", \"naïve café\", \"日本\", \"table\" FROM \"order items\" ORDER BY 1"
        ),
        before
    );
    assert_eq!(
        dump(&prod, "SELECT * FROM \"view with space\" ORDER BY 1"),
        vec!["int 1 | text \"sel\" | int 2", "int 2 | NULL | int 0"]
    );
    assert_eq!(
        column(&prod, "SELECT \"from\" || [to] FROM [group]"),
        vec!["12"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE type != 'table' ORDER BY name"
        ),
        vec!["idx \"q\" [x]", "trg \"x\"", "view with space"]
    );
    assert_sound(&ws);
}

#[test]
fn a_case_only_table_rename_works() {
    // `User` and `user` are the same table to SQLite.
    let prod_sql = "CREATE TABLE User(id INTEGER PRIMARY KEY, Name TEXT);
         CREATE TABLE post(id INTEGER PRIMARY KEY, user_id INT REFERENCES User(id));
         INSERT INTO User VALUES (1, 'ann'), (2, 'bob');
         INSERT INTO post VALUES (7, 2);";
    let source = "CREATE TABLE user(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
         CREATE TABLE post(id INTEGER PRIMARY KEY, user_id INT REFERENCES user(id));";
    // By the stock migration ...
    let (ws, prod) = setup(prod_sql, source);
    migrate(&ws);
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        ),
        vec!["_sqlmorph_history", "post", "user"]
    );
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM pragma_table_info('user') ORDER BY cid"
        ),
        vec!["id", "name", "email"]
    );
    assert_eq!(
        column(&prod, "SELECT id || name FROM user ORDER BY id"),
        vec!["1ann", "2bob"]
    );
    assert_sound(&ws);
    // ... and declared in a recipe.
    let (ws, prod) = setup(prod_sql, source);
    migrate_with(&ws, r#"rename_table("User", "user");"#, &[]);
    assert_eq!(
        column(
            &prod,
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        ),
        vec!["_sqlmorph_history", "post", "user"]
    );
    assert_eq!(
        column(&prod, "SELECT id || name FROM user ORDER BY id"),
        vec!["1ann", "2bob"]
    );
    assert_sound(&ws);
}

// ---------------------------------------------------------------- values

#[test]
fn values_nulls_empty_strings_integer_bounds_and_real_extremes() {
    let (ws, prod) = setup(
        "CREATE TABLE v(id INTEGER PRIMARY KEY, t TEXT, i INTEGER, r REAL, a ANY_TYPE, n);
         INSERT INTO v VALUES
           (1, NULL, -9223372036854775808, 1.7976931348623157e308, NULL, NULL),
           (2, '', 9223372036854775807, -1.7976931348623157e308, '', x''),
           (3, ' ', 0, 4.9406564584124654e-324, 0, 0.0),
           (4, 'NULL', -1, 2.2250738585072014e-308, 'null', -0.0),
           (5, 'x', 1, 9e999, -9e999, 1e-300),
           (6, '0', NULL, -4.9406564584124654e-324, 0.1, 123456789.123456789);",
        "CREATE TABLE v(id INTEGER PRIMARY KEY, t TEXT, i INTEGER, r REAL, a ANY_TYPE, n, added TEXT DEFAULT '');",
    );
    let sql = "SELECT id, t, i, r, a, n, typeof(t), typeof(a), typeof(n) FROM v ORDER BY id";
    let before = dump(&prod, sql);
    assert!(
        before[1].starts_with("int 2 | text \"\" | int 9223372036854775807"),
        "{}",
        before[1]
    );
    assert!(before[0].contains("int -9223372036854775808"));
    assert!(before[4].contains("real inf"), "{}", before[4]);
    migrate_both(&ws);
    assert_eq!(dump(&prod, sql), before);
    assert_eq!(
        column(&prod, "SELECT count(*) FROM v WHERE t IS NULL"),
        vec!["1"],
        "NULL stays NULL, '' stays ''"
    );
    assert_eq!(
        column(&prod, "SELECT count(*) FROM v WHERE t = ''"),
        vec!["1"]
    );
    assert_sound(&ws);
}

#[test]
fn values_text_with_nul_bytes_and_invalid_utf8_survive_byte_for_byte() {
    let (ws, prod) = setup(
        "CREATE TABLE raw(id INTEGER PRIMARY KEY, t TEXT, k TEXT UNIQUE);
         INSERT INTO raw VALUES
           (1, CAST(x'61006200' AS TEXT), CAST(x'ff' AS TEXT)),
           (2, CAST(x'c328fffe41' AS TEXT), CAST(x'c0af' AS TEXT)),
           (3, CAST(x'00' AS TEXT), CAST(x'eda080' AS TEXT)),
           (4, 'plain', 'p');",
        "CREATE TABLE raw(id INTEGER PRIMARY KEY, t TEXT, k TEXT UNIQUE, extra TEXT);",
    );
    let sql = "SELECT id, typeof(t), hex(t), typeof(k), hex(k), length(CAST(t AS BLOB)) FROM raw ORDER BY id";
    let before = dump(&prod, sql);
    assert_eq!(
        before[0],
        "int 1 | text \"text\" | text \"61006200\" | text \"text\" | text \"FF\" | int 4"
    );
    migrate_both(&ws);
    assert_eq!(dump(&prod, sql), before);
    assert_eq!(
        dump(&prod, "SELECT t, k FROM raw ORDER BY id"),
        vec![
            "text x'61006200' | text x'ff'",
            "text x'c328fffe41' | text x'c0af'",
            "text x'00' | text x'eda080'",
            "text \"plain\" | text \"p\""
        ]
    );
    assert_sound(&ws);
    // Rows named in a refusal may have such keys too: they are shown, not
    // choked on.
    let (ws, _) = setup(
        "CREATE TABLE k(name TEXT PRIMARY KEY, n INT) WITHOUT ROWID;
         INSERT INTO k VALUES (CAST(x'ff61' AS TEXT), -1), ('b', 2);",
        "CREATE TABLE k(name TEXT PRIMARY KEY, n INT CHECK (n >= 0)) WITHOUT ROWID;",
    );
    let out = run(&ws, None, &["--yes"]);
    assert_code(&out, 3);
    let err = stderr_of(&out);
    assert!(
        err.contains("key '\u{fffd}a': CHECK constraint failed"),
        "{err}"
    );
}

#[test]
fn values_a_50_mb_blob_survives() {
    let (ws, prod) = setup(
        "CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT, data BLOB);
         INSERT INTO files VALUES (1, 'big', randomblob(50 * 1024 * 1024)), (2, 'small', x'cafe');",
        "CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT, data BLOB, mime TEXT);",
    );
    let sql = "SELECT id, name, data FROM files ORDER BY id";
    let before = dump(&prod, sql);
    assert!(
        before[0].starts_with("int 1 | text \"big\" | blob 52428800 bytes"),
        "{}",
        before[0]
    );
    migrate_both(&ws);
    assert_eq!(dump(&prod, sql), before);
    assert_sound(&ws);
}

#[test]
fn values_a_table_with_2000_columns() {
    // SQLite's limit is 2,000 columns. `wide` has them all and loses its
    // last (empty) one; `full` keeps all 2,000 and its own rowids, so its
    // copy needs 2,001 values per row, one more than a SELECT may return.
    let cols = |n: usize| {
        (1..=n)
            .map(|i| format!("c{i} INT"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names = (1..=2000)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = |row: i64| {
        (1..=2000)
            .map(|i| {
                if i == 2000 && row < 100 {
                    "NULL".to_string()
                } else {
                    (row * 10_000 + i64::from(i)).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (ws, prod) = setup(
        &format!(
            "CREATE TABLE wide({cols});
             INSERT INTO wide(rowid, {names}) VALUES (5, {});
             INSERT INTO wide(rowid, {names}) VALUES (6, {});
             INSERT INTO wide(rowid, {names}) VALUES (9, {});
             CREATE TABLE full({cols});
             INSERT INTO full(rowid, {names}) VALUES (70, {});
             INSERT INTO full(rowid, {names}) VALUES (80, {});
             CREATE TABLE other(id INTEGER PRIMARY KEY);",
            values(1),
            values(2),
            values(3),
            values(700),
            values(800),
            cols = cols(2000)
        ),
        &format!(
            "CREATE TABLE wide({});
             CREATE TABLE full({});
             CREATE TABLE other(id INTEGER PRIMARY KEY, x TEXT);",
            cols(1999),
            cols(2000)
        ),
    );
    let sql = "SELECT rowid, c1, c100, c101, c1000, c1999 FROM wide ORDER BY rowid";
    let before = dump(&prod, sql);
    assert_eq!(
        before[2],
        "int 9 | int 30001 | int 30100 | int 30101 | int 31000 | int 31999"
    );
    let full_sql = "SELECT rowid, c1, c1000, c1001, c2000 FROM full ORDER BY rowid";
    let full_before = dump(&prod, full_sql);
    assert_eq!(
        full_before,
        vec![
            "int 70 | int 7000001 | int 7001000 | int 7001001 | int 7002000",
            "int 80 | int 8000001 | int 8001000 | int 8001001 | int 8002000"
        ]
    );
    let sum = "SELECT sum(c1 + c57 + c500 + c1234 + c1998) FROM wide";
    let total = column(&prod, sum);
    let full_sum = "SELECT sum(c2 + c999 + c1500 + c1999) FROM full";
    let full_total = column(&prod, full_sum);
    // The rebuild: it copies and checksums every one of the 2,000 columns
    // (in place, DROP COLUMN would rewrite only `wide`).
    assert_code(&run(&ws, None, &["--yes", "--rebuild"]), 0);
    assert_eq!(dump(&prod, sql), before);
    assert_eq!(column(&prod, sum), total);
    assert_eq!(dump(&prod, full_sql), full_before);
    assert_eq!(column(&prod, full_sum), full_total);
    assert_eq!(
        column(&prod, "SELECT count(*) FROM pragma_table_info('wide')"),
        vec!["1999"]
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&ws).join("report.json")).unwrap())
            .unwrap();
    let checked = |name: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()["columns_checked"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(checked("wide"), 1999);
    assert_eq!(checked("full"), 2000);
    assert_sound(&ws);
}

#[test]
fn values_an_empty_table() {
    let (ws, prod) = setup(
        "CREATE TABLE empty(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE full(id INTEGER PRIMARY KEY); INSERT INTO full VALUES (1), (2);",
        // A NOT NULL column without a default is fine on an empty table.
        "CREATE TABLE empty(id INTEGER PRIMARY KEY, v TEXT NOT NULL, w TEXT NOT NULL);
         CREATE TABLE full(id INTEGER PRIMARY KEY);",
    );
    migrate(&ws);
    assert_eq!(column(&prod, "SELECT count(*) FROM empty"), vec!["0"]);
    assert_eq!(
        column(&prod, "SELECT group_concat(id) FROM full"),
        vec!["1,2"]
    );
    assert_sound(&ws);
}

// ---------------------------------------------------------------- file header

#[test]
fn user_version_and_application_id_come_from_the_source() {
    let (ws, prod) = setup(
        "CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);
         PRAGMA user_version = 7; PRAGMA application_id = 1234;",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT);
         PRAGMA user_version = 8; PRAGMA application_id = 1234;",
    );
    migrate(&ws);
    assert_eq!(column(&prod, "PRAGMA user_version"), vec!["8"]);
    assert_eq!(column(&prod, "PRAGMA application_id"), vec!["1234"]);
    assert_eq!(column(&prod, "SELECT id FROM t"), vec!["1"]);
    assert_sound(&ws);
    // Only a header value changes: that is a migration too.
    std::fs::write(
        ws.path("schema.sql"),
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT);
         PRAGMA user_version = 9; PRAGMA application_id = 1235;",
    )
    .unwrap();
    migrate(&ws);
    assert_eq!(column(&prod, "PRAGMA user_version"), vec!["9"]);
    assert_eq!(column(&prod, "PRAGMA application_id"), vec!["1235"]);
    assert_sound(&ws);
}

#[test]
fn a_utf16_database_keeps_its_encoding_and_text_both_ways() {
    // SQLite attaches only a database of the main one's encoding: the
    // rebuilt file must take production's before the snapshot is attached.
    let (ws, prod) = setup(
        "PRAGMA encoding = 'UTF-16le';
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, k TEXT COLLATE NOCASE UNIQUE);
         INSERT INTO t VALUES (1, 'crème brûlée', 'Å'), (2, '東京', 'b'), (3, '', NULL);
         CREATE INDEX t_v ON t(v);",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, k TEXT COLLATE NOCASE UNIQUE, w TEXT);
         CREATE INDEX t_v ON t(v);",
    );
    let sql = "SELECT id, v, k, hex(v) FROM t ORDER BY id";
    let before = dump(&prod, sql);
    migrate_both(&ws);
    assert_eq!(column(&prod, "PRAGMA encoding"), vec!["UTF-16le"]);
    assert_eq!(dump(&prod, sql), before);
    assert_sound(&ws);
}

#[test]
fn page_size_and_auto_vacuum_are_kept_from_production() {
    let (ws, prod) = setup(
        "PRAGMA page_size = 8192; PRAGMA auto_vacuum = INCREMENTAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
    );
    assert_eq!(column(&prod, "PRAGMA page_size"), vec!["8192"]);
    assert_eq!(column(&prod, "PRAGMA auto_vacuum"), vec!["2"]);
    migrate(&ws);
    assert_eq!(column(&prod, "PRAGMA page_size"), vec!["8192"]);
    assert_eq!(column(&prod, "PRAGMA auto_vacuum"), vec!["2"]);
    assert_eq!(column(&prod, "SELECT v FROM t"), vec!["a"]);
    assert_sound(&ws);
}

#[test]
fn page_size_and_auto_vacuum_set_by_the_source_win() {
    // In a .sql source ...
    let (ws, prod) = setup(
        "PRAGMA page_size = 8192; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
        "PRAGMA page_size = 16384; PRAGMA auto_vacuum = FULL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
    );
    migrate(&ws);
    assert_eq!(column(&prod, "PRAGMA page_size"), vec!["16384"]);
    assert_eq!(column(&prod, "PRAGMA auto_vacuum"), vec!["1"]);
    assert_eq!(column(&prod, "SELECT v FROM t"), vec!["a"]);
    assert_sound(&ws);
    // A source that changes only the page size is a migration, not
    // "no migration needed".
    std::fs::write(
        ws.path("schema.sql"),
        "PRAGMA page_size = 4096; PRAGMA auto_vacuum = 1;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
    )
    .unwrap();
    let out = migrate(&ws);
    assert!(
        stdout_of(&out).contains("~ page_size: 16384 -> 4096"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(column(&prod, "PRAGMA page_size"), vec!["4096"]);
    assert_eq!(column(&prod, "PRAGMA auto_vacuum"), vec!["1"]);
    assert_eq!(column(&prod, "SELECT v FROM t"), vec!["a"]);
    assert_sound(&ws);
    // ... and in a SQLite schema file (its own non-default settings).
    let ws = Workspace::new();
    let prod = ws.db(
        "prod.sqlite3",
        "PRAGMA page_size = 8192; PRAGMA auto_vacuum = FULL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
    );
    ws.db(
        "schema.sqlite3",
        "PRAGMA page_size = 2048; PRAGMA auto_vacuum = INCREMENTAL;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w TEXT);",
    );
    let out = ws
        .cmd()
        .args([
            "run",
            "--source",
            "schema.sqlite3",
            "--production",
            "prod.sqlite3",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(column(&prod, "PRAGMA page_size"), vec!["2048"]);
    assert_eq!(column(&prod, "PRAGMA auto_vacuum"), vec!["2"]);
    assert_eq!(column(&prod, "SELECT v FROM t"), vec!["a"]);
}

#[test]
fn the_migrated_file_is_compact() {
    let (ws, prod) = setup(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
         INSERT INTO t SELECT i, printf('%.200c', 'x') FROM n;
         CREATE INDEX t_v ON t(v);
         DELETE FROM t WHERE id % 4 != 0;",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, w INT);
         CREATE INDEX t_v ON t(v);
         CREATE UNIQUE INDEX t_id_v ON t(id, v);",
    );
    let free_before: i64 = column(&prod, "PRAGMA freelist_count")[0].parse().unwrap();
    assert!(
        free_before > 100,
        "production has free pages: {free_before}"
    );
    let size_before = std::fs::metadata(&prod).unwrap().len();
    // Compaction is the rebuild's: an added column alone is made in place.
    let out = run(&ws, None, &["--yes", "--rebuild"]);
    assert_code(&out, 0);
    assert_eq!(column(&prod, "PRAGMA freelist_count"), vec!["0"]);
    assert_eq!(column(&prod, "SELECT count(*) FROM t"), vec!["1000"]);
    assert!(std::fs::metadata(&prod).unwrap().len() < size_before);
    assert_sound(&ws);
}
