//! A real schema history: one task-tracker database with data, migrated by
//! the real binary through twelve successive schema versions (tables added
//! and dropped, columns renamed by recipe, views rewritten, indexes
//! changed), with the application writing between versions. After every
//! step, every value of every kept column of every kept table is compared
//! with what production held before the step (renames followed), and the
//! result must match the source exactly and pass SQLite's checks. The
//! same history without `user_version` runs the steps the in-place path
//! takes both ways (in place, and with `--rebuild` on a twin).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use crate::fidelity::dump;
use crate::support::{Workspace, column, stdout_of};
use crate::support::{assert_code, assert_sound, run_both_ways, run_migration as run};

/// One version of the application's schema and how to get there.
struct Version {
    schema: &'static str,
    /// Recipe lines declaring renames, mappings and approved drops.
    recipe: &'static str,
    /// (old table, new table) renamed in this step.
    table_renames: &'static [(&'static str, &'static str)],
    /// (new table, old column, new column) renamed in this step.
    column_renames: &'static [(&'static str, &'static str, &'static str)],
    /// Tables whose rows this step drops on purpose (declared in the recipe).
    dropped_tables: &'static [&'static str],
    /// (table, column) dropped or rewritten on purpose (declared in the recipe).
    changed: &'static [(&'static str, &'static str)],
    /// What the application does once this version is live.
    app: &'static str,
    /// Every change of this step is one the in-place path makes (the
    /// `user_version` bump aside).
    in_place: bool,
}

const V1: &str = "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title TEXT NOT NULL, done INT NOT NULL DEFAULT 0);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
PRAGMA user_version = 1;";

const V1_DATA: &str = "
INSERT INTO users VALUES (1, 'Ann', 'ann@example.org', 1), (2, 'Björn Ø', NULL, NULL), (3, 'Chidi', 'CHIDI@example.org', 0);
INSERT INTO tasks(user_id, title, done) VALUES (1, 'write the report', 0), (1, 'call the plumber', 1),
  (2, 'buy milk', 0), (3, 'read ''Ethics''', 0), (3, '', 1);
DELETE FROM tasks WHERE id = 5;
INSERT INTO tasks(user_id, title) VALUES (2, 'tidy the shed');
INSERT INTO sessions VALUES ('tok-a', 1, '2026-01-01'), ('tok-b', 3, '2026-01-02');";

const HISTORY: &[Version] = &[
    // v2: a column and an index.
    Version {
        schema: "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title TEXT NOT NULL, done INT NOT NULL DEFAULT 0, due TEXT);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE INDEX tasks_user ON tasks(user_id);
PRAGMA user_version = 2;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO tasks(user_id, title, due) VALUES (1, 'file taxes', '2026-04-30');
              UPDATE tasks SET due = '2026-02-01' WHERE id = 1;",
        in_place: true,
    },
    // v3: a new table referenced by a new column, and a view.
    Version {
        schema: "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title TEXT NOT NULL, done INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE INDEX tasks_user ON tasks(user_id);
CREATE VIEW open_tasks AS SELECT id, title, due FROM tasks WHERE done = 0;
PRAGMA user_version = 3;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO projects VALUES (1, 'home'), (2, 'work');
              UPDATE tasks SET project_id = 2 WHERE id IN (1, 7);
              UPDATE tasks SET project_id = 1 WHERE id IN (3, 6);",
        in_place: true,
    },
    // v4: a column renamed by recipe; the view follows.
    Version {
        schema: "
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE INDEX tasks_user ON tasks(user_id);
CREATE VIEW open_tasks AS SELECT id, title, due FROM tasks WHERE completed = 0;
PRAGMA user_version = 4;",
        recipe: r#"rename_column("tasks", "done", "completed");"#,
        table_renames: &[],
        column_renames: &[("tasks", "done", "completed")],
        dropped_tables: &[],
        changed: &[],
        app: "UPDATE tasks SET completed = 1 WHERE id = 3;",
        in_place: false,
    },
    // v5: a table renamed by recipe; the foreign key and a new view follow.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE INDEX tasks_user ON tasks(user_id);
CREATE VIEW open_tasks AS SELECT id, title, due FROM tasks WHERE completed = 0;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
PRAGMA user_version = 5;",
        recipe: r#"rename_table("users", "accounts");"#,
        table_renames: &[("users", "accounts")],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO accounts(id, name, email) VALUES (4, 'Dee', 'dee@example.org');
              INSERT INTO tasks(user_id, title, due) VALUES (4, 'plan the trip', '2026-06-01');",
        in_place: false,
    },
    // v6: two tables (one WITHOUT ROWID), an index replaced by another.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, title, due FROM tasks WHERE completed = 0;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
PRAGMA user_version = 6;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO tags VALUES (1, 'Urgent'), (2, 'errand');
              INSERT INTO task_tags VALUES (1, 1), (3, 2), (6, 2), (8, 1);",
        in_place: true,
    },
    // v7: a NOT NULL column with a default, an audit table and a trigger.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INT, created TEXT);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, title, due FROM tasks WHERE completed = 0;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
PRAGMA user_version = 7;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "UPDATE tasks SET completed = 1 WHERE id = 6;
              UPDATE tasks SET priority = 2 WHERE id IN (1, 8);",
        in_place: true,
    },
    // v8: a table dropped by recipe; a view rewritten.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, title, due, priority FROM tasks WHERE completed = 0 ORDER BY priority DESC, id;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
PRAGMA user_version = 8;",
        recipe: r#"drop_table("sessions");"#,
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &["sessions"],
        changed: &[],
        app: "INSERT INTO tasks(user_id, title, priority) VALUES (3, 'return the book', 1);",
        in_place: false,
    },
    // v9: a collation change and a partial UNIQUE index on it.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT COLLATE NOCASE, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, title, due, priority FROM tasks WHERE completed = 0 ORDER BY priority DESC, id;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
PRAGMA user_version = 9;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO accounts(id, name, email) VALUES (5, 'Eve', NULL);",
        in_place: false,
    },
    // v10: full-text search over tasks (external content, kept in sync by
    // triggers).
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT COLLATE NOCASE, legacy_flag INT);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE VIRTUAL TABLE tasks_fts USING fts5(title, content = 'tasks', content_rowid = 'id');
CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, title, due, priority FROM tasks WHERE completed = 0 ORDER BY priority DESC, id;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
END;
CREATE TRIGGER tasks_fts_au AFTER UPDATE OF title ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
PRAGMA user_version = 10;",
        recipe: "",
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[],
        app: "INSERT INTO tasks(user_id, title, due) VALUES (5, 'book the plumber again', '2026-05-05');
              UPDATE tasks SET title = 'write the annual report' WHERE id = 1;",
        in_place: false,
    },
    // v11: a column dropped by recipe, a generated column added.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT COLLATE NOCASE);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due TEXT,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  label TEXT AS (title || ' (p' || priority || ')') VIRTUAL);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE VIRTUAL TABLE tasks_fts USING fts5(title, content = 'tasks', content_rowid = 'id');
CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
CREATE INDEX tasks_user_due ON tasks(user_id, due DESC);
CREATE VIEW open_tasks AS SELECT id, label, due, priority FROM tasks WHERE completed = 0 ORDER BY priority DESC, id;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
END;
CREATE TRIGGER tasks_fts_au AFTER UPDATE OF title ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
PRAGMA user_version = 11;",
        recipe: r#"drop_column("accounts", "legacy_flag");"#,
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[("accounts", "legacy_flag")],
        app: "DELETE FROM tasks WHERE id = 4;",
        in_place: false,
    },
    // v12: a TEXT date becomes an INTEGER epoch under a new name (map_column),
    // and the index and view over it follow.
    Version {
        schema: "
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT COLLATE NOCASE);
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE tasks(id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  title TEXT NOT NULL, completed INT NOT NULL DEFAULT 0, due_at INTEGER,
  project_id INT REFERENCES projects(id) ON DELETE SET NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  label TEXT AS (title || ' (p' || priority || ')') VIRTUAL);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE UNIQUE);
CREATE TABLE task_tags(task_id INT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  tag_id INT NOT NULL REFERENCES tags(id), PRIMARY KEY (task_id, tag_id)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT NOT NULL);
CREATE VIRTUAL TABLE tasks_fts USING fts5(title, content = 'tasks', content_rowid = 'id');
CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
CREATE INDEX tasks_user_due ON tasks(user_id, due_at DESC);
CREATE VIEW open_tasks AS SELECT id, label, date(due_at, 'unixepoch') AS due, priority FROM tasks WHERE completed = 0 ORDER BY priority DESC, id;
CREATE VIEW account_load AS SELECT a.name, count(t.id) AS open
  FROM accounts a LEFT JOIN open_tasks o ON 1 LEFT JOIN tasks t ON t.id = o.id AND t.user_id = a.id GROUP BY a.id;
CREATE TRIGGER tasks_done AFTER UPDATE OF completed ON tasks WHEN NEW.completed = 1 BEGIN
  INSERT INTO audit(what) VALUES ('done ' || NEW.id);
END;
CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
END;
CREATE TRIGGER tasks_fts_au AFTER UPDATE OF title ON tasks BEGIN
  INSERT INTO tasks_fts(tasks_fts, rowid, title) VALUES ('delete', OLD.id, OLD.title);
  INSERT INTO tasks_fts(rowid, title) VALUES (NEW.id, NEW.title);
END;
PRAGMA user_version = 12;",
        recipe: r#"map_column("tasks", "due_at", "CAST(strftime('%s', due) AS INTEGER)");
drop_column("tasks", "due");"#,
        table_renames: &[],
        column_renames: &[],
        dropped_tables: &[],
        changed: &[("tasks", "due")],
        app: "INSERT INTO tasks(user_id, title, due_at) VALUES (1, 'renew passport', 1790000000);",
        in_place: false,
    },
];

/// The user tables of a database with their columns (generated columns
/// left out: SQLite computes them) and whether they have a rowid.
fn tables(db: &Path) -> BTreeMap<String, (Vec<String>, bool)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual')
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_sqlmorph_%' ESCAPE '\\'",
        )
        .unwrap();
    let list: Vec<(String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    list.into_iter()
        .map(|(name, without_rowid)| {
            let cols = column(
                db,
                &format!("SELECT name FROM pragma_table_info('{name}') ORDER BY cid"),
            );
            (name, (cols, !without_rowid))
        })
        .collect()
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every row of the given columns, with the rowid where there is one.
fn rows(db: &Path, table: &str, cols: &[String], rowid: bool) -> Vec<String> {
    let mut select: Vec<String> = cols.iter().map(|c| quote(c)).collect();
    if rowid {
        select.insert(0, "rowid".into());
    }
    let order = (1..=select.len())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    dump(
        db,
        &format!(
            "SELECT {} FROM {} ORDER BY {order}",
            select.join(", "),
            quote(table)
        ),
    )
}

#[test]
fn twelve_schema_versions_of_one_app_lose_no_kept_value() {
    replay(true);
}

/// The same history without `user_version` (a change of it alone makes the
/// run rebuild): the steps the in-place path takes run both ways — in
/// place, and with `--rebuild` on a twin that must end equal.
#[test]
fn the_history_without_user_version_runs_its_in_place_steps_both_ways() {
    replay(false);
}

/// `sql` without its `PRAGMA user_version` lines unless `versioned`.
fn versioned_sql(sql: &str, versioned: bool) -> String {
    if versioned {
        return sql.to_string();
    }
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("PRAGMA user_version"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Migrates one database through every version, checking every kept
/// value after each step; with `versioned` false, the schemas leave
/// `user_version` at 0 and the in-place steps run both ways.
fn replay(versioned: bool) {
    let ws = Workspace::new();
    let prod = ws.db(
        "prod.sqlite3",
        &format!("{}{V1_DATA}", versioned_sql(V1, versioned)),
    );
    for (step, v) in HISTORY.iter().enumerate() {
        let version = step + 2;
        // What production holds before the step, per kept column.
        let before = tables(&prod);
        let mut expected = Vec::new();
        for (table, (cols, rowid)) in &before {
            if v.dropped_tables.contains(&table.as_str()) {
                continue;
            }
            let new_table = v
                .table_renames
                .iter()
                .find(|(old, _)| old == table)
                .map_or(table.as_str(), |(_, new)| new);
            let mut old_cols = Vec::new();
            let mut new_cols = Vec::new();
            for c in cols {
                if v.changed.contains(&(new_table, c.as_str())) {
                    continue;
                }
                let new = v
                    .column_renames
                    .iter()
                    .find(|(t, old, _)| *t == new_table && old == c)
                    .map_or(c.as_str(), |(_, _, new)| new);
                old_cols.push(c.clone());
                new_cols.push(new.to_string());
            }
            let data = rows(&prod, table, &old_cols, *rowid);
            assert!(
                !data.is_empty() || table == "audit",
                "v{version}: {table} has rows"
            );
            expected.push((new_table.to_string(), new_cols, *rowid, data));
        }

        ws.file("schema.sql", &versioned_sql(v.schema, versioned));
        let out = if v.in_place && !versioned {
            assert!(v.recipe.is_empty());
            let both = run_both_ways(&ws, None, &["--yes"]);
            assert_code(&both.rebuild, 0);
            both.in_place
        } else if v.recipe.is_empty() {
            run(&ws, None, &["--yes"])
        } else {
            ws.file(
                "step.rhai",
                &format!("{}\nimport \"std/default\";\n", v.recipe),
            );
            run(&ws, Some("step.rhai"), &["--yes"])
        };
        assert_code(&out, 0);
        assert!(
            stdout_of(&out).contains("deployed to"),
            "v{version}: {}",
            stdout_of(&out)
        );

        let after = tables(&prod);
        for (table, cols, rowid, data) in &expected {
            let (now, _) = after
                .get(table)
                .unwrap_or_else(|| panic!("v{version}: table {table} is gone"));
            for c in cols {
                assert!(now.contains(c), "v{version}: {table}.{c} is gone");
            }
            assert_eq!(
                &rows(&prod, table, cols, *rowid),
                data,
                "v{version}: values of {table} changed"
            );
        }
        for dropped in v.dropped_tables {
            assert!(!after.contains_key(*dropped), "v{version}: {dropped} kept");
        }
        assert_eq!(
            column(&prod, "PRAGMA user_version"),
            vec![if versioned {
                version.to_string()
            } else {
                "0".into()
            }]
        );
        assert_sound(&ws);
        check_version(&prod, version);

        let conn = Connection::open(&prod).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        conn.execute_batch(v.app)
            .unwrap_or_else(|e| panic!("v{version}: the application's writes fail: {e}"));
        drop(conn);
    }
    assert_eq!(
        column(&prod, "SELECT count(*) FROM _sqlmorph_history"),
        vec![HISTORY.len().to_string()],
        "one history row per deploy, kept across migrations"
    );
}

/// What each version's application relies on, beyond the copied values.
fn check_version(prod: &Path, version: usize) {
    match version {
        5 => assert_eq!(
            column(
                prod,
                "SELECT name || ':' || open FROM account_load ORDER BY name"
            ),
            vec!["Ann:2", "Björn Ø:1", "Chidi:1"]
        ),
        7 => assert_eq!(
            column(prod, "SELECT count(*) FROM audit"),
            vec!["0"],
            "no trigger fired during the copy"
        ),
        8 => assert_eq!(
            column(prod, "SELECT what FROM audit"),
            vec!["done 6"],
            "the trigger's row is kept"
        ),
        10 => assert_eq!(
            column(
                prod,
                "SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH 'the' ORDER BY rowid"
            ),
            vec!["1", "2", "6", "8", "9"],
            "the index was built from the copied tasks"
        ),
        11 => {
            assert_eq!(
                column(
                    prod,
                    "SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH 'plumber' ORDER BY rowid"
                ),
                vec!["2", "10"]
            );
            assert_eq!(
                column(prod, "SELECT label FROM tasks WHERE id = 8"),
                vec!["plan the trip (p2)"]
            );
        }
        12 => {
            assert_eq!(
                column(
                    prod,
                    "SELECT id || ':' || ifnull(due_at, '-') FROM tasks WHERE id IN (1, 3, 7, 8) ORDER BY id"
                ),
                vec!["1:1769904000", "3:-", "7:1777507200", "8:1780272000"]
            );
            assert_eq!(
                column(
                    prod,
                    "SELECT id || ' ' || due FROM open_tasks WHERE due IS NOT NULL"
                ),
                vec![
                    "1 2026-02-01",
                    "8 2026-06-01",
                    "7 2026-04-30",
                    "10 2026-05-05"
                ]
            );
            assert_eq!(
                column(prod, "SELECT seq FROM sqlite_sequence WHERE name = 'tasks'"),
                vec!["10"],
                "the AUTOINCREMENT counter survived every rebuild"
            );
        }
        _ => {}
    }
}
