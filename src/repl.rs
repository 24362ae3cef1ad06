//! `sqlmorph repl`: an interactive Rhai session on SQLite files, with the
//! same engine and primitives as recipes (`engine::engine` over a detached
//! [`Run`] whose scratch directory is removed at exit), so a line that works
//! here works in a recipe.
//!
//! - Each database on the command line is bound to a variable named after
//!   its file stem (`db1`, `db2`… when the stem is not an identifier), as a
//!   `Db` value of role `file`, read-only unless `--write`.
//! - Variables persist between entries (one `Scope`); script functions stay
//!   defined (their ASTs are merged, as `rhai-repl` does).
//! - An unfinished block or expression continues on the next line.
//! - `:help`, `:tables`, `:schema`, `:diff`, `:plan`, `:load`, `:quit`.
//! - At a terminal: line editing, completion (primitives, variables, tables
//!   and columns, also inside SQL strings) and a history file
//!   (`$SQLMORPH_HISTORY`, else `$XDG_STATE_HOME/sqlmorph/history`, else
//!   `~/.local/state/sqlmorph/history`).
//! - Without a terminal (piped input): lines are read and evaluated with no
//!   prompt, colour or history, so the REPL can be scripted.
//!
//! Exit code: that of the last entry (blank lines do not count): 0 when it
//! succeeded, otherwise the code of its error as everywhere else in sqlmorph
//! (2 for a script or input error, 3 when a primitive aborted).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context as _, Result};
use rhai::{
    AST, Array, CallFnOptions, Dynamic, Engine, EvalAltResult, FuncArgs, Map, ParseError,
    ParseErrorType, Scope,
};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Editor, Helper};

use crate::config::Limits;
use crate::config::Options;
use crate::diff::{self, SchemaDiff};
use crate::error::{ExitKind, input};
use crate::pipeline::prompt::Prompter;
use crate::pipeline::session::{Db, Run};
use crate::pipeline::validate::Report;
use crate::schema::{Column, Schema, Table};
use crate::script::engine::{self, Shared};
use crate::script::reference;
use crate::script::values::PlanValue;
use crate::style::Style;

/// The source name of what is typed (in error messages).
const SOURCE: &str = "<repl>";
const PROMPT: &str = "sqlmorph> ";
const CONTINUATION: &str = "     ...> ";
/// Query results: rows shown, and the width a cell is cut to.
const MAX_ROWS: usize = 50;
const MAX_CELL: usize = 40;

/// The REPL's own commands, with their help lines.
const COMMANDS: &[(&str, &str)] = &[
    (
        ":help",
        ":help [name|types]   the primitives, one primitive, or the typed values",
    ),
    (
        ":tables",
        ":tables [db]         the tables (and columns) of the databases",
    ),
    (
        ":schema",
        ":schema <table>      the CREATE statement of a table, in every database",
    ),
    (
        ":diff",
        ":diff <a> <b>        the schema changes from database a to database b",
    ),
    (
        ":plan",
        ":plan [a b]          the migration plan from a to b (default: the first two databases)",
    ),
    (
        ":load",
        ":load <file.rhai>    run a file in this session (its variables stay)",
    ),
    (":quit", ":quit                leave (or Ctrl-D)"),
];

/// Runs `sqlmorph repl`; returns the exit code (see the module doc).
pub fn run(dbs: &[PathBuf], write: bool) -> Result<u8> {
    let scratch = Scratch::create()?;
    let mut session = Session::new(dbs, write, &scratch.0)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        session.interactive()
    } else {
        session.piped(stdin.lock())
    }
}

/// The session's scratch directory (plans and copies write there), removed
/// when the REPL ends.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Scratch> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let mut n = 0;
        loop {
            let dir = base.join(format!("sqlmorph-repl-{}-{nanos}-{n}", std::process::id()));
            match builder.create(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", dir.display()));
                }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What feeding one line did.
enum Step {
    /// A blank line: nothing happened.
    Blank,
    /// The entry is unfinished: read another line.
    More,
    /// An entry ran: 0, or the exit code of its error.
    Done(u8),
    /// `:quit`.
    Quit(u8),
}

struct Session {
    engine: Engine,
    scope: Scope<'static>,
    /// The script functions defined so far (statements are dropped after
    /// each entry).
    functions: AST,
    run: Shared<Run>,
    /// Variable names of the databases given on the command line, in order.
    opened: Vec<String>,
    write: bool,
    /// The last `query` of the current entry, for the column order of its
    /// table (a Rhai map sorts its keys).
    last_query: Shared<Option<(Db, String)>>,
    out: Style,
    err: Style,
}

impl Session {
    fn new(paths: &[PathBuf], write: bool, scratch: &Path) -> Result<Session> {
        let opts = Options {
            source: PathBuf::new(),
            production: PathBuf::new(),
            backup_dir: PathBuf::from("backups"),
            work_dir: PathBuf::from(".sqlmorph"),
            dry_run: false,
            yes: false,
            allow_destructive: false,
            json: false,
            stop: None,
            restart: None,
            health_check: None,
            recipe_name: SOURCE.to_string(),
            recipe_hash: String::new(),
            ..Options::default()
        };
        let prompter = Prompter::new(false, false, false);
        let run = Rc::new(RefCell::new(Run::detached(
            opts,
            prompter,
            scratch.to_path_buf(),
            !write,
        )));
        let limits = Limits::default();
        let mut engine = engine::engine(&run, &limits, None);
        let last_query = Rc::new(RefCell::new(None));
        explain_read_only(&mut engine, &run, &limits, !write, &last_query);

        let mut scope = Scope::new();
        let mut opened: Vec<String> = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            if crate::db::is_sql_script(path) {
                if !path.is_file() {
                    return Err(input(format!("{}: no such file", path.display())));
                }
            } else {
                crate::db::check_sqlite_file(path)?;
            }
            let name = variable_name(&engine, path, i, &opened);
            scope.push(
                name.clone(),
                Db {
                    path: path.clone(),
                    role: crate::pipeline::session::Role::File { writable: write },
                },
            );
            opened.push(name);
        }
        let mut functions = AST::empty();
        functions.set_source(SOURCE);
        Ok(Session {
            engine,
            scope,
            functions,
            run,
            opened,
            write,
            last_query,
            out: Style::stdout(),
            err: Style::stderr(),
        })
    }

    /// At a terminal: rustyline with completion and history.
    fn interactive(&mut self) -> Result<u8> {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .history_ignore_dups(true)?
            .history_ignore_space(true)
            .max_history_size(1000)?
            .completion_type(CompletionType::List)
            .build();
        let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(ReplHelper {
            names: self.names(),
            files: FilenameCompleter::new(),
        }));
        let history = history_path();
        if let Some(path) = &history {
            match editor.load_history(path) {
                Ok(()) => {}
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("warning: cannot read the history {}: {e}", path.display()),
            }
        }
        self.banner();

        let mut buffer = String::new();
        let mut status = 0;
        let outcome = loop {
            let prompt = if buffer.is_empty() {
                PROMPT
            } else {
                CONTINUATION
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    match self.feed(&mut buffer, &line) {
                        Step::Blank | Step::More => continue,
                        Step::Done(code) => status = code,
                        Step::Quit(code) => {
                            status = code;
                            break Ok(());
                        }
                    }
                    if let Some(helper) = editor.helper_mut() {
                        helper.names = self.names();
                    }
                }
                // Ctrl-C: drop the line (and an unfinished entry).
                Err(ReadlineError::Interrupted) => buffer.clear(),
                // Ctrl-D on an empty line.
                Err(ReadlineError::Eof) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Some(path) = &history {
            let saved = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(ReadlineError::from)
                .and_then(|()| editor.append_history(path));
            if let Err(e) = saved {
                eprintln!("warning: cannot save the history {}: {e}", path.display());
            }
        }
        outcome?;
        Ok(status)
    }

    /// Without a terminal: every line is evaluated, nothing is asked.
    fn piped(&mut self, mut input: impl BufRead) -> Result<u8> {
        let mut buffer = String::new();
        let mut status = 0;
        loop {
            let mut bytes = Vec::new();
            if input
                .read_until(b'\n', &mut bytes)
                .context("reading standard input")?
                == 0
            {
                break;
            }
            let text = String::from_utf8_lossy(&bytes);
            let line = text.trim_end_matches(['\n', '\r']);
            match self.feed(&mut buffer, line) {
                Step::Blank | Step::More => {}
                Step::Done(code) => status = code,
                Step::Quit(code) => return Ok(code),
            }
        }
        if !buffer.is_empty() {
            // The input ended inside a block: report it as the error it is.
            let text = std::mem::take(&mut buffer);
            let compiled = self.engine.compile_with_scope(&self.scope, &text);
            match self.eval(compiled, &text, SOURCE) {
                Step::Done(code) | Step::Quit(code) => status = code,
                Step::Blank | Step::More => {}
            }
        }
        Ok(status)
    }

    fn banner(&self) {
        let mode = if self.write {
            "read-write"
        } else {
            "read-only"
        };
        let mut text = format!("sqlmorph repl {}", env!("CARGO_PKG_VERSION"));
        for name in &self.opened {
            if let Some(db) = self.scope.get_value::<Db>(name) {
                text.push_str(&format!("\n  {name} = {} ({mode})", db.path.display()));
            }
        }
        text.push_str("\n:help lists the primitives and commands; Ctrl-D quits.\n");
        let _ = crate::cli::print(&self.out.dim(&text));
    }

    /// Adds a line to the entry being typed and runs the entry when it is
    /// complete.
    fn feed(&mut self, buffer: &mut String, line: &str) -> Step {
        if buffer.is_empty() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                return Step::Blank;
            }
            if trimmed.starts_with(':') {
                return self.command(trimmed);
            }
        }
        buffer.push_str(line);
        buffer.push('\n');
        let compiled = self.engine.compile_with_scope(&self.scope, buffer.as_str());
        if unfinished(buffer, compiled.as_ref().err()) {
            return Step::More;
        }
        let text = std::mem::take(buffer);
        self.eval(compiled, &text, SOURCE)
    }

    /// Runs a compiled entry and prints its value or its error.
    fn eval(&mut self, compiled: Result<AST, ParseError>, text: &str, source: &str) -> Step {
        let sources = engine::sources(source, text);
        let ast = match compiled {
            Ok(ast) => ast,
            Err(e) => {
                let err: EvalAltResult = e.into();
                self.report(&engine::render_error(&err, &sources, source));
                return Step::Done(ExitKind::Input as u8);
            }
        };
        *self.last_query.borrow_mut() = None;
        self.run.borrow_mut().clear_exit();
        self.functions += ast;
        self.functions.set_source(source);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.functions);
        self.functions.clear_statements();
        self.functions.set_source(SOURCE);
        match result {
            Ok(value) => {
                if let Some(text) = self.render(&value) {
                    let _ = crate::cli::print(&format!("{}\n", text.trim_end_matches('\n')));
                }
                Step::Done(0)
            }
            Err(e) => {
                let raised = engine::raised_message(&e);
                let kind = self
                    .run
                    .borrow_mut()
                    .take_exit(raised.as_deref())
                    .unwrap_or(ExitKind::Input);
                self.report(&engine::render_error(&e, &sources, source));
                Step::Done(kind as u8)
            }
        }
    }

    fn report(&self, message: &str) {
        eprintln!("{} {message}", self.err.red("error:"));
    }

    /// A `:command` line.
    fn command(&mut self, line: &str) -> Step {
        let (cmd, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(c, r)| (c, r.trim()));
        let args: Vec<&str> = rest.split_whitespace().collect();
        let result = match cmd {
            ":help" | ":h" | ":?" => Ok(help(args.first().copied())),
            ":tables" | ":t" => self.tables(&args),
            ":schema" | ":s" => self.schema(&args),
            ":diff" | ":d" => self.diff(&args),
            ":plan" | ":p" => self.plan(&args),
            ":load" | ":l" => return self.load(rest),
            ":quit" | ":q" | ":exit" => return Step::Quit(0),
            _ => Err(input(format!(
                "unknown command {cmd}; :help lists the commands"
            ))),
        };
        match result {
            Ok(text) => {
                let _ = crate::cli::print(&text);
                Step::Done(0)
            }
            Err(e) => {
                self.report(&format!("{e:#}"));
                Step::Done(crate::error::exit_code(&e))
            }
        }
    }

    /// `:load <file>`: runs a file in this scope.
    fn load(&mut self, path: &str) -> Step {
        if path.is_empty() {
            self.report("usage: :load <file.rhai>");
            return Step::Done(ExitKind::Input as u8);
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.report(&format!("{path}: cannot read: {e}"));
                return Step::Done(ExitKind::Input as u8);
            }
        };
        let compiled = self.engine.compile_with_scope(&self.scope, &text);
        self.eval(compiled, &text, path)
    }

    /// The variables holding a `Db`, oldest first (the latest value of a
    /// shadowed name).
    fn databases(&self) -> Vec<(String, Db)> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<(String, Db)> = self
            .scope
            .iter_raw()
            .filter(|(name, _, _)| seen.insert(name.to_string()))
            .filter_map(|(name, _, v)| v.read_lock::<Db>().map(|d| (name.to_string(), d.clone())))
            .collect();
        out.reverse();
        out
    }

    /// A database variable by name.
    fn database(&self, name: &str) -> Result<Db> {
        match self.scope.get(name) {
            Some(v) => v.read_lock::<Db>().map(|d| d.clone()).ok_or_else(|| {
                input(format!(
                    "`{name}` is a {}, not a database",
                    self.engine.map_type_name(v.type_name())
                ))
            }),
            None => Err(input(format!(
                "no variable `{name}`; the databases are: {}",
                self.database_names()
            ))),
        }
    }

    fn database_names(&self) -> String {
        let names: Vec<String> = self.databases().into_iter().map(|(n, _)| n).collect();
        if names.is_empty() {
            "(none: give files to `sqlmorph repl`, or `let db = open(\"file\")`)".into()
        } else {
            names.join(", ")
        }
    }

    /// A schema by variable name: a `Db`'s schema, or a `Schema` value.
    fn schema_named(&self, name: &str) -> Result<Schema> {
        if let Some(s) = self
            .scope
            .get(name)
            .and_then(|v| v.read_lock::<Schema>().map(|s| s.clone()))
        {
            return Ok(s);
        }
        let db = self.database(name)?;
        Schema::load(&db.path)
    }

    /// `:tables [db]`
    fn tables(&self, args: &[&str]) -> Result<String> {
        let dbs = match args {
            [] => self.databases(),
            [name] => vec![(name.to_string(), self.database(name)?)],
            _ => return Err(input("usage: :tables [db]")),
        };
        if dbs.is_empty() {
            return Err(input(format!("no databases {}", self.database_names())));
        }
        let mut out = String::new();
        for (name, db) in dbs {
            let schema = Schema::load(&db.path)?;
            out.push_str(&self.out.bold(&format!("{name} ({})", db.path.display())));
            out.push('\n');
            if schema.tables.is_empty() && schema.views.is_empty() {
                out.push_str("  (no tables)\n");
            }
            for t in &schema.tables {
                let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                out.push_str(&format!("  {} ({})\n", t.name, cols.join(", ")));
            }
            for v in &schema.views {
                out.push_str(&format!("  {} (view)\n", v.name));
            }
        }
        Ok(out)
    }

    /// `:schema <table>`: searched in every database.
    fn schema(&self, args: &[&str]) -> Result<String> {
        let [table] = args else {
            return Err(input("usage: :schema <table>"));
        };
        let mut out = String::new();
        let mut paths = BTreeSet::new();
        for (name, db) in self.databases() {
            if !paths.insert(db.path.clone()) {
                continue;
            }
            let schema = Schema::load(&db.path)?;
            let mut text = String::new();
            if let Some(t) = schema.table(table) {
                text.push_str(&format!("{};\n", diff::pretty(&t.sql)));
                for index in schema.indexes_of(&t.name) {
                    if let Some(sql) = &index.sql {
                        text.push_str(&format!("{sql};\n"));
                    }
                }
                for trigger in schema
                    .triggers
                    .iter()
                    .filter(|tr| tr.table.eq_ignore_ascii_case(&t.name))
                {
                    text.push_str(&format!("{};\n", diff::pretty(&trigger.sql)));
                }
            } else if let Some(v) = schema.view(table) {
                text.push_str(&format!("{};\n", diff::pretty(&v.sql)));
            } else {
                continue;
            }
            out.push_str(&self.out.dim(&format!("-- {name} ({})", db.path.display())));
            out.push('\n');
            out.push_str(&text);
        }
        if out.is_empty() {
            return Err(input(format!(
                "no table or view `{table}` in {}",
                self.database_names()
            )));
        }
        Ok(out)
    }

    /// `:diff a b`
    fn diff(&self, args: &[&str]) -> Result<String> {
        let [a, b] = args else {
            return Err(input("usage: :diff <a> <b> (two database variables)"));
        };
        let d = diff::diff(&self.schema_named(a)?, &self.schema_named(b)?);
        Ok(diff::render_text(&d, self.out))
    }

    /// `:plan [a b]`: from the first database to the second; nothing is
    /// written (the plan is measured on `a` opened read-only).
    fn plan(&self, args: &[&str]) -> Result<String> {
        let (a, b) = match args {
            [a, b] => ((*a).to_string(), (*b).to_string()),
            [] => match self.opened.as_slice() {
                [a, b, ..] => (a.clone(), b.clone()),
                _ => {
                    return Err(input(
                        "usage: :plan [a b]; without arguments it needs two databases on the command line (production first, then the source)",
                    ));
                }
            },
            _ => return Err(input("usage: :plan [a b]")),
        };
        let from = self.database(&a)?;
        let source = self.schema_named(&b)?;
        let (_, d, plan) =
            crate::pipeline::plan::from_copy(&from.path, &source, self.run.borrow().mappings())?;
        if d.is_empty() {
            return Ok(format!("No migration needed: {a} already matches {b}.\n"));
        }
        Ok(crate::pipeline::review::render_review(&plan, &d, self.out))
    }

    /// What completion offers: variables, script functions, databases and
    /// their tables and columns.
    fn names(&self) -> Names {
        let mut names = Names::default();
        let mut vars = BTreeSet::new();
        for (name, _, _) in self.scope.iter_raw() {
            vars.insert(name.to_string());
        }
        for f in self.functions.iter_functions() {
            vars.insert(f.name.to_string());
        }
        names.vars = vars.into_iter().collect();
        let mut tables = BTreeSet::new();
        let mut columns = BTreeSet::new();
        for (name, db) in self.databases() {
            names.dbs.push(name);
            if let Ok(schema) = Schema::load(&db.path) {
                for t in &schema.tables {
                    tables.insert(t.name.clone());
                    columns.extend(t.columns.iter().map(|c| c.name.clone()));
                }
                tables.extend(schema.views.iter().map(|v| v.name.clone()));
            }
        }
        names.tables = tables.into_iter().collect();
        names.columns = columns.into_iter().collect();
        names
    }

    /// How a value prints: nothing for `()`, a table for query rows, the
    /// value's `to_string` otherwise.
    fn render(&self, value: &Dynamic) -> Option<String> {
        if value.is_unit() {
            return None;
        }
        if let Some(rows) = value.read_lock::<Array>() {
            if !rows.is_empty() && rows.iter().all(Dynamic::is_map) {
                return Some(render_rows(
                    &rows,
                    self.query_columns().as_deref(),
                    self.out,
                ));
            }
            if !rows.is_empty() && rows.iter().all(is_host_value) {
                let items: Vec<String> = rows.iter().map(|v| self.to_string(v)).collect();
                return Some(items.join("\n"));
            }
        }
        Some(self.to_string(value))
    }

    /// A value's `to_string`, as `print` in a recipe shows it.
    fn to_string(&self, value: &Dynamic) -> String {
        if value.is_string() {
            return value.to_string();
        }
        self.engine
            .call_fn_with_options::<String>(
                CallFnOptions::new().eval_ast(false).in_all_namespaces(true),
                &mut Scope::new(),
                &self.functions,
                "to_string",
                (value.clone(),),
            )
            .unwrap_or_else(|_| value.to_string())
    }

    /// The column names of the entry's last `query`, in SELECT order.
    fn query_columns(&self) -> Option<Vec<String>> {
        let (db, sql) = self.last_query.borrow().clone()?;
        let conn = self.run.borrow().connect(&db, "complete").ok()?;
        let stmt = conn.prepare(&sql).ok()?;
        Some(stmt.column_names().map(str::to_string).collect())
    }
}

/// Values of the host's types (printed one per line in an array).
fn is_host_value(v: &Dynamic) -> bool {
    v.is::<Schema>()
        || v.is::<Table>()
        || v.is::<Column>()
        || v.is::<SchemaDiff>()
        || v.is::<PlanValue>()
        || v.is::<Report>()
        || v.is::<Db>()
}

/// Replaces `sql` and `query` with wrappers that call the host's own
/// primitives (through a second engine over the same run, so the behaviour
/// is the recipe's) and explain a write refused by a read-only database. The
/// wrapper of `query` also remembers the statement, for the column order.
fn explain_read_only(
    engine: &mut Engine,
    run: &Shared<Run>,
    limits: &Limits,
    read_only: bool,
    last_query: &Shared<Option<(Db, String)>>,
) {
    let inner = Rc::new(engine::engine(run, limits, None));
    let call =
        move |name: &str, db: &Db, args: Vec<Dynamic>| -> Result<Dynamic, Box<EvalAltResult>> {
            delegate(&inner, read_only, name, db, args)
        };
    let call = Rc::new(call);

    let c = Rc::clone(&call);
    engine.register_fn(
        "sql",
        move |db: Db, sql: &str| -> Result<i64, Box<EvalAltResult>> {
            let args = vec![Dynamic::from(db.clone()), sql.into()];
            Ok(c("sql", &db, args)?.as_int().unwrap_or(0))
        },
    );
    let c = Rc::clone(&call);
    engine.register_fn(
        "sql",
        move |db: Db, sql: &str, params: Array| -> Result<i64, Box<EvalAltResult>> {
            let args = vec![Dynamic::from(db.clone()), sql.into(), params.into()];
            Ok(c("sql", &db, args)?.as_int().unwrap_or(0))
        },
    );
    let c = Rc::clone(&call);
    let last = Rc::clone(last_query);
    engine.register_fn(
        "query",
        move |db: Db, sql: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            *last.borrow_mut() = Some((db.clone(), sql.to_string()));
            c("query", &db, vec![Dynamic::from(db.clone()), sql.into()])
        },
    );
    let c = Rc::clone(&call);
    let last = Rc::clone(last_query);
    engine.register_fn(
        "query",
        move |db: Db, sql: &str, params: Array| -> Result<Dynamic, Box<EvalAltResult>> {
            *last.borrow_mut() = Some((db.clone(), sql.to_string()));
            c(
                "query",
                &db,
                vec![Dynamic::from(db.clone()), sql.into(), params.into()],
            )
        },
    );
}

fn delegate(
    inner: &Engine,
    read_only: bool,
    name: &str,
    db: &Db,
    args: impl FuncArgs,
) -> Result<Dynamic, Box<EvalAltResult>> {
    inner
        .call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(false).in_all_namespaces(true),
            &mut Scope::new(),
            &AST::empty(),
            name,
            args,
        )
        .map_err(|err| {
            let message = match &*err {
                EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
                other => other.to_string(),
            };
            if read_only && message.contains("attempt to write a readonly database") {
                format!(
                    "{}: attempt to write a readonly database: the REPL opened it read-only; open the REPL with --write to change it",
                    db.path.display()
                )
                .into()
            } else {
                err
            }
        })
}

/// The variable a database is bound to: its file stem made an identifier,
/// else `db<n>` (n: its position on the command line).
fn variable_name(engine: &Engine, path: &Path, index: usize, taken: &[String]) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sanitized: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let usable = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && !taken.iter().any(|t| t == name)
            && engine.compile(format!("let {name} = 0; {name}")).is_ok()
    };
    if usable(&sanitized) {
        return sanitized;
    }
    let mut n = index + 1;
    loop {
        let name = format!("db{n}");
        if usable(&name) {
            return name;
        }
        n += 1;
    }
}

/// True when the entry goes on on the next line: a block comment or a
/// backtick string is open, or it does not compile because the parser hit
/// the end or a bracket is open.
fn unfinished(text: &str, err: Option<&ParseError>) -> bool {
    let (depth, open) = scan(text);
    open || err.is_some_and(|e| depth > 0 || matches!(e.err_type(), ParseErrorType::UnexpectedEOF))
}

/// The bracket depth at the end of `text`, and whether it ends inside a
/// block comment or a backtick string.
fn scan(text: &str) -> (i64, bool) {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                // A string or character ends on its line.
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => break,
                        _ if d == c => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                let closed = chars.by_ref().any(|d| d == '`');
                if !closed {
                    return (depth, true);
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                chars.by_ref().take_while(|d| *d != '\n').for_each(drop);
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut nested = 1;
                let mut prev = ' ';
                for d in chars.by_ref() {
                    match (prev, d) {
                        ('/', '*') => {
                            nested += 1;
                            prev = ' ';
                            continue;
                        }
                        ('*', '/') => {
                            nested -= 1;
                            prev = ' ';
                            if nested == 0 {
                                break;
                            }
                            continue;
                        }
                        _ => {}
                    }
                    prev = d;
                }
                if nested > 0 {
                    return (depth, true);
                }
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    (depth, false)
}

/// Query rows as an aligned table: at most [`MAX_ROWS`] rows, cells cut to
/// [`MAX_CELL`] characters, numbers right-aligned. `order`: the SELECT's
/// column order, used when it names exactly the rows' keys.
fn render_rows(rows: &[Dynamic], order: Option<&[String]>, style: Style) -> String {
    let maps: Vec<Map> = rows
        .iter()
        .filter_map(|r| r.read_lock::<Map>().map(|m| m.clone()))
        .collect();
    let mut keys: Vec<String> = Vec::new();
    for m in &maps {
        for k in m.keys() {
            if !keys.iter().any(|x| x == k.as_str()) {
                keys.push(k.to_string());
            }
        }
    }
    if let Some(order) = order {
        let wanted: BTreeSet<&str> = order.iter().map(String::as_str).collect();
        let have: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        if wanted == have && order.len() == keys.len() {
            keys = order.to_vec();
        }
    }
    let shown = &maps[..maps.len().min(MAX_ROWS)];
    let cells: Vec<Vec<(String, bool)>> = shown
        .iter()
        .map(|m| {
            keys.iter()
                .map(|k| match m.get(k.as_str()) {
                    Some(v) => (cell(v), v.is_int() || v.is_float()),
                    None => (String::new(), false),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            cells
                .iter()
                .map(|row| row[i].0.chars().count())
                .chain(std::iter::once(truncate(k).chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..keys.len())
        .map(|i| {
            cells.iter().any(|row| row[i].1)
                && cells.iter().all(|row| row[i].1 || row[i].0 == "NULL")
        })
        .collect();
    let pad = |text: &str, i: usize| {
        let fill = " ".repeat(widths[i].saturating_sub(text.chars().count()));
        if numeric[i] {
            format!("{fill}{text}")
        } else {
            format!("{text}{fill}")
        }
    };
    let line = |parts: Vec<String>| parts.join("  ").trim_end().to_string() + "\n";
    let mut out = String::new();
    let header: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| pad(&truncate(k), i))
        .collect();
    out.push_str(&style.bold(line(header).trim_end()));
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in &cells {
        out.push_str(&line(
            row.iter()
                .enumerate()
                .map(|(i, (c, _))| pad(c, i))
                .collect(),
        ));
    }
    let note = if maps.len() > MAX_ROWS {
        format!("… {} more rows", maps.len() - MAX_ROWS)
    } else if maps.len() == 1 {
        "(1 row)".to_string()
    } else {
        format!("({} rows)", maps.len())
    };
    out.push_str(&style.dim(&note));
    out.push('\n');
    out
}

/// One cell of a query table.
fn cell(v: &Dynamic) -> String {
    let text = if v.is_unit() {
        "NULL".to_string()
    } else if let Some(b) = v.read_lock::<rhai::Blob>() {
        format!("x'{}'", hex::encode(&*b))
    } else {
        v.to_string()
    };
    truncate(&text)
}

/// Control characters made visible, and the text cut to [`MAX_CELL`].
fn truncate(text: &str) -> String {
    let visible: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect();
    if visible.chars().count() > MAX_CELL {
        visible.chars().take(MAX_CELL - 1).collect::<String>() + "…"
    } else {
        visible
    }
}

/// `:help`, `:help <primitive>`, `:help types`.
fn help(topic: Option<&str>) -> String {
    let mut out = String::new();
    match topic {
        Some("types") => {
            let mut last = "";
            for (ty, member, doc) in reference::TYPES {
                if *ty != last {
                    out.push_str(&format!("{ty}\n"));
                    last = ty;
                }
                out.push_str(&format!("  .{member:<14} {doc}\n"));
            }
        }
        Some(name) => match reference::PRIMITIVES.iter().find(|p| p.name == name) {
            Some(p) => out.push_str(&format!("{} — {}\n  {}\n", p.name, p.doc, p.usage)),
            None => match COMMANDS
                .iter()
                .find(|(c, _)| c.trim_start_matches(':') == name.trim_start_matches(':'))
            {
                Some((_, line)) => out.push_str(&format!("{line}\n")),
                None => out.push_str(&format!(
                    "no primitive or command `{name}`; :help lists them\n"
                )),
            },
        },
        None => {
            out.push_str("Rhai, with the primitives of recipes. An unfinished block goes on on the next line.\n\nPrimitives:\n");
            let width = reference::PRIMITIVES
                .iter()
                .map(|p| p.name.len())
                .max()
                .unwrap_or(0);
            for p in reference::PRIMITIVES {
                out.push_str(&format!("  {:<width$}  {}\n", p.name, p.doc));
            }
            out.push_str("\nCommands:\n");
            for (_, line) in COMMANDS {
                out.push_str(&format!("  {line}\n"));
            }
            out.push_str("\n:help <primitive> shows an example; :help types lists the members of the typed values.\n");
        }
    }
    out
}

/// Where the history is kept: `$SQLMORPH_HISTORY`, else
/// `$XDG_STATE_HOME/sqlmorph/history`, else `~/.local/state/sqlmorph/history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SQLMORPH_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home::home_dir().map(|h| h.join(".local").join("state")))?;
    Some(state.join("sqlmorph").join("history"))
}

/// Completion candidates, refreshed after every entry.
#[derive(Debug, Default, Clone)]
struct Names {
    vars: Vec<String>,
    dbs: Vec<String>,
    tables: Vec<String>,
    columns: Vec<String>,
}

struct ReplHelper {
    names: Names,
    files: FilenameCompleter,
}

/// SQL keywords after which only a table name makes sense.
const BEFORE_TABLE: &[&str] = &["FROM", "JOIN", "INTO", "UPDATE", "TABLE"];

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
            .last()
            .map_or(before.len(), |(i, _)| i);
        let word = &before[start..];
        let trimmed = before.trim_start();

        if trimmed.starts_with(':') {
            let Some((cmd, _)) = trimmed.split_once(char::is_whitespace) else {
                let offset = before.len() - trimmed.len();
                let commands = COMMANDS.iter().map(|(c, _)| (*c).to_string());
                let mut candidates = matching(commands, trimmed, false);
                for c in &mut candidates {
                    c.replacement.push(' ');
                }
                return Ok((offset, candidates));
            };
            let pool: Vec<String> = match cmd {
                ":load" | ":l" => return self.files.complete(line, pos, ctx),
                ":schema" | ":s" => self.names.tables.clone(),
                ":tables" | ":t" | ":diff" | ":d" | ":plan" | ":p" => self.names.dbs.clone(),
                ":help" | ":h" | ":?" => reference::PRIMITIVES
                    .iter()
                    .map(|p| p.name.to_string())
                    .chain(std::iter::once("types".to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let mut candidates = matching(pool.into_iter(), word, false);
            for c in &mut candidates {
                c.replacement.push(' ');
            }
            return Ok((start, candidates));
        }

        if in_string(&before[..start]) {
            let previous = before[..start]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .rev()
                .find(|w| !w.is_empty())
                .unwrap_or("");
            let tables_only = BEFORE_TABLE
                .iter()
                .any(|k| k.eq_ignore_ascii_case(previous));
            let pool = self.names.tables.iter().cloned();
            let candidates = if tables_only {
                matching(pool, word, true)
            } else {
                matching(pool.chain(self.names.columns.iter().cloned()), word, true)
            };
            return Ok((start, candidates));
        }

        if before[..start].ends_with('.') {
            let members = reference::TYPES.iter().map(|(_, m, _)| (*m).to_string());
            return Ok((start, matching(members, word, false)));
        }
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let pool = reference::PRIMITIVES
            .iter()
            .map(|p| p.name.to_string())
            .chain(self.names.vars.iter().cloned())
            .chain(
                [
                    "print", "let", "const", "fn", "for", "while", "if", "else", "return",
                ]
                .map(String::from),
            );
        Ok((start, matching(pool, word, false)))
    }
}

/// The sorted, de-duplicated names that start with `prefix`.
fn matching(pool: impl Iterator<Item = String>, prefix: &str, ignore_case: bool) -> Vec<Pair> {
    let names: BTreeSet<String> = pool
        .filter(|n| {
            if ignore_case {
                n.len() >= prefix.len()
                    && n.get(..prefix.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            } else {
                n.starts_with(prefix)
            }
        })
        .collect();
    names
        .into_iter()
        .map(|n| Pair {
            display: n.clone(),
            replacement: n,
        })
        .collect()
}

/// True when the text ends inside a double-quoted string.
fn in_string(text: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\\' if inside && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => inside = !inside,
            _ => {}
        }
        escaped = false;
    }
    inside
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn goes_on(text: &str) -> bool {
        unfinished(text, Engine::new().compile(text).err().as_ref())
    }

    #[test]
    fn unfinished_entries_continue() {
        for text in [
            "fn f(x) {\n",
            "let a = [1,\n",
            "foo(1,\n",
            "let s = `abc\n",
            "/* a\n",
            "/* a /* b */\n",
            "let x = 1 +\n",
            "if true { \"}\"\n",
        ] {
            assert!(goes_on(text), "{text:?}");
        }
        for text in [
            "let x = ;\n",
            "fn f( { }}\n",
            "let s = \"{\";\n x +* 2\n",
            "1 // {\n",
            "/* { */ 2\n",
            "f(1))\n",
        ] {
            assert!(!goes_on(text), "{text:?}");
        }
    }

    #[test]
    fn strings_are_detected() {
        assert!(in_string(r#"query(a, "SELECT * FROM "#));
        assert!(!in_string(r#"query(a, "SELECT 1") + "#));
        assert!(in_string(r#"x("a \" b "#));
    }

    #[test]
    fn cells_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(truncate(&long).chars().count(), MAX_CELL);
        assert_eq!(truncate("a\nb"), "a b");
    }
}
