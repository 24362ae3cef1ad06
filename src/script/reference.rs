//! The reference of everything a recipe (or the REPL) can call: one source
//! for the README's Rhai reference, the REPL's `:help`, and the test that
//! keeps both in step with the engine.

/// A primitive: a global function of the recipe language.
pub struct Primitive {
    pub name: &'static str,
    pub usage: &'static str,
    pub doc: &'static str,
}

const fn p(name: &'static str, usage: &'static str, doc: &'static str) -> Primitive {
    Primitive { name, usage, doc }
}

/// Every primitive, in workflow order.
pub const PRIMITIVES: &[Primitive] = &[
    p(
        "step",
        r#"step("1/10 back up production")"#,
        "Logs the start of a step, timestamped.",
    ),
    p(
        "source",
        "let target = source();",
        "The source schema (`--source`).",
    ),
    p(
        "production",
        "let prod = production();",
        "A handle on production: recipes read it only through `snapshot()` or `schema(production())`; only `deploy` writes it.",
    ),
    p(
        "open",
        r#"let db = open("other.sqlite3");"#,
        "A handle on another database file (read-only in a dry run, in the REPL without --write, for production's own file and for backups).",
    ),
    p(
        "backup",
        "backup();",
        "Timestamped backup of production (a consistent copy, mode 0600, synced and `quick_check`ed on the other core; the run's snapshot is linked from it); skipped in a dry run.",
    ),
    p(
        "snapshot",
        "let snap = snapshot();",
        "Consistent copy of production in the run directory (read-only), with the compare-and-swap baseline.",
    ),
    p(
        "schema",
        "let s = schema(snap);",
        "The schema of a database handle or of a path (SQLite file or .sql).",
    ),
    p(
        "diff",
        "let d = diff(schema(snap), target);",
        "The semantic difference between two schemas.",
    ),
    p(
        "plan",
        "let p = plan(snap, target);",
        "What happens to every table and column, measured on the snapshot (uses the mappings declared so far).",
    ),
    p(
        "review",
        "print(review(p));",
        "The review text: schema changes and data impact per table.",
    ),
    p(
        "approve",
        "approve(p);",
        "Stops on refusals; at a terminal asks the one question for the whole run (build, validate, deploy): `[y/N]`, or `yes` typed in full when data is lost. Without a terminal: `--allow-destructive` for losses, `--yes` for the build.",
    ),
    p(
        "confirm",
        r#"confirm("Go on?");"#,
        "A yes/no question; declining (or no terminal without --yes) stops the run with exit 3.",
    ),
    p(
        "copy",
        "let migrated = copy(p);",
        "Builds a fresh database from the source schema and copies the data in.",
    ),
    p(
        "transform",
        r#"transform("users", |row| { row.name = row.name.to_upper(); row })"#,
        "Rewrites every row of a migrated table with a Rhai closure (the slow path); call after copy.",
    ),
    p(
        "validate",
        "let report = validate(p, migrated);",
        "Row counts, checksums, integrity (quick_check + every index against its table), foreign keys and schema of the result; writes report.json.",
    ),
    p(
        "require",
        "let ok = require(report);",
        "Stops the run (exit 3) unless the report passed; returns the validated database, the only thing deploy takes. The migrated file is read-only from validation on.",
    ),
    p(
        "confirm_deploy",
        "confirm_deploy();",
        "The deployment question, `[y/N]`, unless `approve` already asked it at the terminal (--yes answers it).",
    ),
    p(
        "deploy",
        "deploy(ok);",
        "Writes the validated database into production through SQLite (compare-and-swap under production's write lock), history row, restart and health check; skipped in a dry run.",
    ),
    p(
        "restart",
        "restart();",
        "Runs the configured restart command where production lives (on every host over SSH); nothing in a dry run.",
    ),
    p(
        "sql",
        r#"sql(migrated, "UPDATE t SET a = ?1 WHERE id = ?2", [1, 2]);"#,
        "Runs SQL with bound parameters; on the migrated database the snapshot is attached as `snapshot`.",
    ),
    p(
        "sql_file",
        r#"sql_file(migrated, "sql_scripts/fix.sql");"#,
        "Runs a `.sql` script (path relative to the recipe) on a writable handle, as `sql` does, one statement at a time as SQLite's parser splits it (a trigger body stays whole); an error names `file:line` of its statement.",
    ),
    p(
        "query",
        r#"let rows = query(snap, "SELECT id, name FROM users");"#,
        "Runs a query; returns an array of maps (column name -> value).",
    ),
    p(
        "quote_ident",
        r#"let sql = "SELECT count(*) FROM " + quote_ident(table);"#,
        r#"A table or column name quoted for SQL text (`odd"name` becomes `"odd""name"`)."#,
    ),
    p(
        "dry_run",
        "if dry_run() { … }",
        "True when the run was started with --dry-run.",
    ),
    p(
        "finish",
        r#"finish("no_migration_needed");"#,
        "Sets the outcome reported in the JSON summary.",
    ),
    p(
        "rename_table",
        r#"rename_table("members", "users");"#,
        "Declares that production table `old` is source table `new` (its rows move). Checked when called: `old` must be in production, `new` in the source.",
    ),
    p(
        "rename_column",
        r#"rename_column("practice", "played", "practiced");"#,
        "Declares that a column was renamed (its values move). Checked when called: the table and the new column in the source, the old column in the production table that feeds it.",
    ),
    p(
        "map_column",
        r#"map_column("practice", "practiced", "CAST(strftime('%s', practiced) AS INTEGER)");"#,
        "Fills a column with an SQL expression over the old row; every value is checked. The table and column must be in the source.",
    ),
    p(
        "fill",
        r#"fill("users", "timezone", "'UTC'");"#,
        "The value (or SQL expression over the old row) of a new NOT NULL column. The table and column must be in the source.",
    ),
    p(
        "drop_table",
        r#"drop_table("legacy_log");"#,
        "Approves dropping a production table and its rows. The table must be in production.",
    ),
    p(
        "drop_column",
        r#"drop_column("users", "legacy");"#,
        "Approves dropping a production column and its values. The table and column must be in production.",
    ),
];

/// Members of the typed values, per type: (type, member, what it is).
pub const TYPES: &[(&str, &str, &str)] = &[
    ("Schema", "tables", "array of Table"),
    ("Schema", "views", "array of view names"),
    (
        "Schema",
        "indexes",
        "array of index names (CREATE INDEX only)",
    ),
    ("Schema", "triggers", "array of trigger names"),
    ("Schema", "user_version", "PRAGMA user_version"),
    ("Schema", "hash", "SHA-256 of the normalized schema"),
    ("Schema", "table", "s.table(\"users\"): a Table or ()"),
    ("Schema", "to_sql", "the normalized schema as SQL"),
    ("Table", "name", "the table's name"),
    ("Table", "columns", "array of Column"),
    ("Table", "sql", "the normalized CREATE TABLE"),
    ("Table", "primary_key", "array of column names"),
    ("Table", "strict", "STRICT table"),
    ("Table", "without_rowid", "WITHOUT ROWID table"),
    ("Table", "column", "t.column(\"id\"): a Column or ()"),
    ("Column", "name", "the column's name"),
    ("Column", "type", "declared type"),
    ("Column", "affinity", "INTEGER, TEXT, BLOB, REAL or NUMERIC"),
    ("Column", "not_null", "NOT NULL"),
    ("Column", "default", "the DEFAULT expression or ()"),
    ("Column", "pk", "position in the primary key (0: none)"),
    ("Column", "collation", "collating sequence"),
    ("Diff", "is_empty", "d.is_empty(): no difference"),
    ("Diff", "len", "number of changes"),
    (
        "Diff",
        "changes",
        "array of maps: kind, name, table, details",
    ),
    ("Plan", "diff", "the Diff the plan came from"),
    ("Plan", "tables", "names of the target tables"),
    ("Plan", "rows", "p.rows(\"users\"): rows to copy"),
    ("Plan", "refusals", "problems that stop the copy"),
    ("Plan", "data_loss", "losses that need approval"),
    ("Plan", "notes", "facts worth knowing"),
    ("Report", "ok", "validation passed"),
    ("Report", "problems", "what failed"),
    ("Db", "path", "the file"),
    ("Db", "role", "snapshot, migrated, production or file"),
];

/// The README's reference section, generated from the tables above.
pub fn markdown() -> String {
    let mut out = String::from("| primitive | example | what it does |\n|---|---|---|\n");
    for p in PRIMITIVES {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            p.name,
            p.usage.replace('|', "\\|"),
            p.doc
        ));
    }
    out.push_str("\n| type | member | what it is |\n|---|---|---|\n");
    for (ty, member, doc) in TYPES {
        out.push_str(&format!("| {ty} | `{member}` | {doc} |\n"));
    }
    out
}
