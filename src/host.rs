//! The Rhai host: one engine builder that registers the primitives and the
//! typed values recipes see, the module resolver for `std/…` modules
//! (embedded in the binary) and modules beside the recipe, engine limits,
//! and the rendering of script errors with file, line, column and source.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Result;
use rhai::module_resolvers::{FileModuleResolver, ModuleResolversCollection};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Module, ModuleResolver, Position, Scope};
use rusqlite::types::Value;

use crate::config::Limits;
use crate::diff::SchemaDiff;
use crate::error::ExitKind;
use crate::plan::Plan;
use crate::run::{Db, Run, Validated};
use crate::schema::{Column, Schema, Table};
use crate::validate::Report;

/// The stock recipe, built into the binary.
pub const DEFAULT_RECIPE: &str = include_str!("../recipes/default.rhai");

/// Modules importable as `std/<name>`.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/checks", include_str!("../stdlib/checks.rhai")),
    ("std/steps", include_str!("../stdlib/steps.rhai")),
    ("std/default", DEFAULT_RECIPE),
];

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A plan as recipes hold it: the plan, the diff it came from and the source
/// schema it targets.
#[derive(Debug, Clone)]
pub struct PlanValue {
    pub plan: Plan,
    pub diff: SchemaDiff,
    pub source: Schema,
    pub snapshot: Db,
}

/// Shared run state, borrowed by every primitive.
pub type Shared<T> = Rc<RefCell<T>>;

/// Converts an error for Rhai, remembering its exit code for the run.
fn fail(run: &Shared<Run>, err: &anyhow::Error) -> Box<EvalAltResult> {
    run.borrow_mut().exit = Some(exit_kind(err));
    format!("{err:#}").into()
}

fn exit_kind(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|e| e.downcast_ref::<crate::error::Exit>())
        .map_or(ExitKind::Input, |e| e.kind)
}

fn to_array<T: Clone + 'static>(items: &[T]) -> Array {
    items.iter().cloned().map(Dynamic::from).collect()
}

fn strings(items: &[String]) -> Array {
    items.iter().map(|s| Dynamic::from(s.clone())).collect()
}

/// Resolves `std/<name>` to the embedded modules; a module's top-level code
/// runs when it is imported (so `import "std/default";` runs the stock
/// workflow with whatever mappings the recipe declared first).
struct StdResolver;

impl ModuleResolver for StdResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _: Option<&str>,
        path: &str,
        pos: Position,
    ) -> RhaiResult<rhai::Shared<Module>> {
        let Some((name, text)) = STDLIB.iter().find(|(n, _)| *n == path) else {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        };
        let mut ast = engine
            .compile(*text)
            .map_err(|e| EvalAltResult::ErrorInModule(path.to_string(), e.into(), pos))?;
        ast.set_source(format!("{name}.rhai"));
        // A resolver may only fail with "not found" or "in module".
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| EvalAltResult::ErrorInModule(path.to_string(), e, pos))?;
        Ok(module.into())
    }
}

/// Builds the engine for a run (`recipe_dir`: where `import "x"` looks).
pub fn engine(run: &Shared<Run>, limits: &Limits, recipe_dir: Option<&Path>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_array_size);
    engine.set_max_expr_depths(64, 64);
    engine.set_strict_variables(true);

    let mut resolvers = ModuleResolversCollection::new();
    resolvers.push(StdResolver);
    let mut files = FileModuleResolver::new_with_path(
        recipe_dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    );
    files.enable_cache(false);
    resolvers.push(files);
    engine.set_module_resolver(resolvers);

    let r = Rc::clone(run);
    engine.on_print(move |s| r.borrow_mut().log.line(s));
    let r = Rc::clone(run);
    engine.on_debug(move |s, src, pos| {
        r.borrow_mut()
            .log
            .quiet(&format!("debug {}:{pos}: {s}", src.unwrap_or("")))
    });

    register_types(&mut engine);
    register_primitives(&mut engine, run);
    engine
}

fn register_types(engine: &mut Engine) {
    engine
        .register_type_with_name::<Schema>("Schema")
        .register_get("tables", |s: &mut Schema| to_array(&s.tables))
        .register_get("views", |s: &mut Schema| {
            strings(&s.views.iter().map(|v| v.name.clone()).collect::<Vec<_>>())
        })
        .register_get("triggers", |s: &mut Schema| {
            strings(
                &s.triggers
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_get("indexes", |s: &mut Schema| {
            strings(
                &s.indexes
                    .iter()
                    .filter(|i| i.is_explicit())
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_get("user_version", |s: &mut Schema| s.user_version)
        .register_get("hash", |s: &mut Schema| s.hash())
        .register_fn("table", |s: &mut Schema, name: &str| {
            s.table(name).cloned().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("to_sql", |s: &mut Schema| s.to_sql())
        .register_fn("to_string", |s: &mut Schema| {
            format!(
                "schema: {} table(s), {} index(es), {} view(s), {} trigger(s), user_version {}",
                s.tables.len(),
                s.indexes.iter().filter(|i| i.is_explicit()).count(),
                s.views.len(),
                s.triggers.len(),
                s.user_version
            )
        });
    engine
        .register_type_with_name::<Table>("Table")
        .register_get("name", |t: &mut Table| t.name.clone())
        .register_get("columns", |t: &mut Table| to_array(&t.columns))
        .register_get("sql", |t: &mut Table| t.sql.clone())
        .register_get("primary_key", |t: &mut Table| strings(&t.primary_key))
        .register_get("strict", |t: &mut Table| t.strict)
        .register_get("without_rowid", |t: &mut Table| t.without_rowid)
        .register_fn("column", |t: &mut Table, name: &str| {
            t.column_named(name)
                .cloned()
                .map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("to_string", |t: &mut Table| crate::diff::pretty(&t.sql));
    engine
        .register_type_with_name::<Column>("Column")
        .register_get("name", |c: &mut Column| c.name.clone())
        .register_get("type", |c: &mut Column| c.decl_type.clone())
        .register_get("affinity", |c: &mut Column| c.affinity.clone())
        .register_get("not_null", |c: &mut Column| c.not_null)
        .register_get("default", |c: &mut Column| {
            c.default.clone().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_get("pk", |c: &mut Column| i64::from(c.pk))
        .register_get("collation", |c: &mut Column| c.collation.clone())
        .register_fn("to_string", |c: &mut Column| {
            format!("{} {}", c.name, c.decl_type).trim().to_string()
        });
    engine
        .register_type_with_name::<SchemaDiff>("Diff")
        .register_fn("is_empty", |d: &mut SchemaDiff| d.is_empty())
        .register_get("len", |d: &mut SchemaDiff| {
            i64::try_from(d.changes.len()).unwrap_or(i64::MAX)
        })
        .register_get("changes", |d: &mut SchemaDiff| {
            d.changes
                .iter()
                .map(|c| {
                    let mut m = Map::new();
                    m.insert("kind".into(), c.kind.as_str().into());
                    m.insert("name".into(), c.name.clone().into());
                    m.insert(
                        "table".into(),
                        c.table.clone().map_or(Dynamic::UNIT, Dynamic::from),
                    );
                    m.insert("details".into(), strings(&c.details).into());
                    Dynamic::from_map(m)
                })
                .collect::<Array>()
        })
        .register_fn("to_string", |d: &mut SchemaDiff| {
            crate::diff::render_text(d, crate::style::Style::PLAIN)
        });
    engine
        .register_type_with_name::<PlanValue>("Plan")
        .register_get("diff", |p: &mut PlanValue| p.diff.clone())
        .register_get("refusals", |p: &mut PlanValue| strings(&p.plan.refusals))
        .register_get("data_loss", |p: &mut PlanValue| strings(&p.plan.data_loss))
        .register_get("notes", |p: &mut PlanValue| strings(&p.plan.notes))
        .register_get("tables", |p: &mut PlanValue| {
            strings(
                &p.plan
                    .tables
                    .iter()
                    .map(|t| t.table.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .register_fn("rows", |p: &mut PlanValue, table: &str| {
            p.plan.table(table).map_or(0, |t| t.rows)
        })
        .register_fn("to_string", |p: &mut PlanValue| {
            crate::run::render_review(&p.plan, &p.diff, crate::style::Style::PLAIN)
        });
    engine
        .register_type_with_name::<Report>("Report")
        .register_get("ok", |r: &mut Report| r.ok)
        .register_get("problems", |r: &mut Report| strings(&r.problems))
        .register_fn("to_string", |r: &mut Report| r.render());
    engine
        .register_type_with_name::<Db>("Db")
        .register_get("path", |d: &mut Db| d.path.display().to_string())
        .register_get("role", |d: &mut Db| d.role.name().to_string())
        .register_fn("to_string", |d: &mut Db| {
            format!("{} database {}", d.role.name(), d.path.display())
        });
    engine
        .register_type_with_name::<Validated>("Validated")
        .register_get("path", |v: &mut Validated| v.path().display().to_string())
        .register_fn("to_string", |v: &mut Validated| {
            format!("validated database {}", v.path().display())
        });
}

/// A Rhai value as an SQL value.
pub fn sql_value(v: &Dynamic) -> Value {
    if v.is_unit() {
        Value::Null
    } else if let Some(i) = v.clone().try_cast::<i64>() {
        Value::Integer(i)
    } else if let Some(f) = v.clone().try_cast::<f64>() {
        Value::Real(f)
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        Value::Integer(i64::from(b))
    } else if let Some(b) = v.clone().try_cast::<rhai::Blob>() {
        Value::Blob(b)
    } else {
        Value::Text(v.to_string())
    }
}

/// An SQL value as a Rhai value.
pub fn rhai_value(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(t) => t.into(),
        Value::Blob(b) => Dynamic::from_blob(b),
    }
}

/// `sql` on a handle: a write that the handle's role refuses names the rule.
fn exec_on(run: &Run, db: &Db, sql: &str, params: &Array) -> Result<i64> {
    exec_sql(&run.connect(db)?, sql, params).map_err(|e| {
        let read_only = e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::ReadOnly);
        if read_only {
            crate::error::input(format!(
                "sql: {}: attempt to write a readonly database: {}",
                db.path.display(),
                run.read_only_reason(db)
            ))
        } else {
            e
        }
    })
}

/// Runs one statement with bound parameters; returns the rows changed.
fn exec_sql(conn: &rusqlite::Connection, sql: &str, params: &Array) -> Result<i64> {
    let values: Vec<Value> = params.iter().map(sql_value).collect();
    if values.is_empty() {
        conn.execute_batch(sql)?;
        return Ok(i64::try_from(conn.changes()).unwrap_or(0));
    }
    Ok(i64::try_from(conn.execute(sql, rusqlite::params_from_iter(values))?).unwrap_or(0))
}

/// Runs a query; every row is a map from column name to value.
fn query_sql(conn: &rusqlite::Connection, sql: &str, params: &Array) -> Result<Array> {
    let values: Vec<Value> = params.iter().map(sql_value).collect();
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(n.as_str().into(), rhai_value(r.get(i)?));
        }
        Ok(Dynamic::from_map(m))
    })?;
    Ok(rows.collect::<rusqlite::Result<Array>>()?)
}

fn register_primitives(engine: &mut Engine, run: &Shared<Run>) {
    macro_rules! prim {
        ($name:expr, |$r:ident $(, $arg:ident : $ty:ty)*| $body:expr) => {{
            let shared = Rc::clone(run);
            engine.register_fn($name, move |$($arg: $ty),*| -> RhaiResult<_> {
                let $r = &shared;
                #[allow(clippy::redundant_closure_call)]
                let result: Result<_> = (|| $body)();
                result.map_err(|e| fail(&shared, &e))
            });
        }};
    }

    prim!("step", |r, name: &str| {
        r.borrow_mut().step(name);
        Ok(())
    });
    prim!("production", |r| Ok(r.borrow().production()));
    prim!("source", |r| r.borrow().source_schema());
    prim!("open", |r, path: &str| r
        .borrow()
        .open_file(Path::new(path)));
    prim!("backup", |r| Ok(r
        .borrow_mut()
        .backup()?
        .map_or(String::new(), |p| p.display().to_string())));
    prim!("snapshot", |r| r.borrow_mut().snapshot());
    prim!("schema", |r, db: Db| r.borrow_mut().schema_of(&db));
    prim!("schema", |_run, path: &str| Schema::load(Path::new(path)));
    prim!("diff", |_run, a: Schema, b: Schema| Ok(crate::diff::diff(
        &a, &b
    )));
    prim!("plan", |r, snapshot: Db, source: Schema| {
        let (plan, diff) = r.borrow_mut().plan(&snapshot, &source)?;
        Ok(PlanValue {
            plan,
            diff,
            source,
            snapshot,
        })
    });
    prim!("review", |r, p: PlanValue| Ok(r
        .borrow()
        .review(&p.plan, &p.diff)));
    prim!("approve", |r, p: PlanValue| r.borrow_mut().approve(&p.plan));
    prim!("confirm", |r, question: &str| r
        .borrow()
        .prompter
        .confirm(question));
    prim!("copy", |r, p: PlanValue| r.borrow_mut().copy(
        &p.plan,
        &p.snapshot,
        &p.source
    ));
    prim!("validate", |r, p: PlanValue, db: Db| r
        .borrow_mut()
        .validate(&p.plan, &p.snapshot, &db, &p.source));
    prim!("require", |r, report: Report| r
        .borrow_mut()
        .require(&report));
    prim!("confirm_deploy", |r| r.borrow_mut().confirm_deploy());
    prim!("deploy", |r, v: Validated| r.borrow_mut().deploy(&v));
    prim!("deploy", |_run, db: Db| {
        Err::<(), _>(crate::error::aborted(format!(
            "deploy takes only the validated database that `require(report)` returns, not the {} database {}",
            db.role.name(),
            db.path.display()
        )))
    });
    prim!("restart", |r| r.borrow_mut().restart());
    prim!("sql", |r, db: Db, sql: &str| exec_on(
        &r.borrow(),
        &db,
        sql,
        &Array::new()
    ));
    prim!("sql", |r, db: Db, sql: &str, params: Array| exec_on(
        &r.borrow(),
        &db,
        sql,
        &params
    ));
    prim!("query", |r, db: Db, sql: &str| query_sql(
        &r.borrow().connect(&db)?,
        sql,
        &Array::new()
    ));
    prim!("query", |r, db: Db, sql: &str, params: Array| query_sql(
        &r.borrow().connect(&db)?,
        sql,
        &params
    ));
    prim!("dry_run", |r| Ok(r.borrow().opts.dry_run));
    prim!("finish", |r, outcome: &str| {
        r.borrow_mut().summary.outcome = outcome.to_string();
        Ok(())
    });

    let shared = Rc::clone(run);
    engine.register_fn(
        "transform",
        move |ctx: rhai::NativeCallContext, table: &str, f: rhai::FnPtr| -> RhaiResult<i64> {
            let result = Run::transform(&shared, table, |row| {
                let out: Dynamic = f.call_within_context(&ctx, (row,)).map_err(|e| {
                    anyhow::anyhow!("{}", render_error(&e, &BTreeMap::new(), "transform"))
                })?;
                out.try_cast::<Map>().ok_or_else(|| {
                    anyhow::anyhow!("the transform closure must return the row (a map)")
                })
            });
            result.map(|(rows, _)| rows).map_err(|e| fail(&shared, &e))
        },
    );

    // Mappings, declared before `plan`.
    prim!("rename_table", |r, old: &str, new: &str| {
        r.borrow_mut()
            .mappings
            .table_renames
            .push((old.into(), new.into()));
        Ok(())
    });
    prim!("rename_column", |r, table: &str, old: &str, new: &str| {
        r.borrow_mut()
            .mappings
            .column_renames
            .push((table.into(), old.into(), new.into()));
        Ok(())
    });
    prim!("map_column", |r, table: &str, column: &str, expr: &str| {
        r.borrow_mut()
            .mappings
            .expressions
            .push((table.into(), column.into(), expr.into()));
        Ok(())
    });
    prim!("fill", |r, table: &str, column: &str, expr: &str| {
        r.borrow_mut()
            .mappings
            .fills
            .push((table.into(), column.into(), expr.into()));
        Ok(())
    });
    prim!("fill", |r, table: &str, column: &str, value: i64| {
        r.borrow_mut()
            .mappings
            .fills
            .push((table.into(), column.into(), value.to_string()));
        Ok(())
    });
    prim!("fill", |r, table: &str, column: &str, value: f64| {
        r.borrow_mut()
            .mappings
            .fills
            .push((table.into(), column.into(), format!("{value:?}")));
        Ok(())
    });
    prim!("drop_table", |r, table: &str| {
        r.borrow_mut().mappings.drop_tables.push(table.into());
        Ok(())
    });
    prim!("drop_column", |r, table: &str, column: &str| {
        r.borrow_mut()
            .mappings
            .drop_columns
            .push((table.into(), column.into()));
        Ok(())
    });
    prim!("quote_ident", |_run, name: &str| Ok(
        crate::sqltext::quote_ident(name)
    ));
}

/// The names of every function the engine registers (primitives, getters
/// and methods), for the reference check.
pub fn registered_functions() -> Vec<String> {
    let scratch = std::env::temp_dir();
    let run = Rc::new(RefCell::new(Run::detached(
        crate::run::Options::default(),
        crate::prompt::Prompter::new(false, false, false),
        scratch,
        true,
    )));
    let engine = engine(&run, &Limits::default(), None);
    let mut names: Vec<String> = engine
        .gen_fn_signatures(false)
        .iter()
        .filter_map(|s| s.split('(').next())
        .map(|n| n.trim_start_matches("get$").to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// True when the script ended with `exit()` (possibly inside a module).
pub fn is_exit(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::Exit(..) => true,
        EvalAltResult::ErrorInModule(_, inner, _)
        | EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => is_exit(inner),
        _ => false,
    }
}

/// A script error, rendered like a compiler diagnostic.
pub fn render_error(
    err: &EvalAltResult,
    sources: &BTreeMap<String, String>,
    main_source: &str,
) -> String {
    // Walk to the innermost error, keeping the call chain.
    let mut chain = Vec::new();
    let mut current = err;
    let mut source = main_source.to_string();
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                chain.push(format!(
                    "in call to `{name}` at {}:{}",
                    if src.is_empty() { &source } else { src },
                    line_col(*pos)
                ));
                if !src.is_empty() {
                    source = src.clone();
                }
                current = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                chain.push(format!(
                    "in module `{name}` imported at {source}:{}",
                    line_col(*pos)
                ));
                source = if name.ends_with(".rhai") {
                    name.clone()
                } else {
                    format!("{name}.rhai")
                };
                current = inner;
            }
            _ => break,
        }
    }
    let pos = current.position();
    let message = match current {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => {
            "the recipe ran too many operations and was stopped (an endless loop?); raise [limits] max_operations in sqlmorph.toml if it is really that big".to_string()
        }
        other => {
            let text = other.to_string();
            text.split(" (line ").next().unwrap_or(&text).to_string()
        }
    };
    let mut out = format!("{message}\n --> {source}:{}", line_col(pos));
    if let (Some(line), Some(text)) = (pos.line(), sources.get(&source)) {
        if let Some(src_line) = text.lines().nth(line - 1) {
            let col = pos.position().unwrap_or(1);
            let width = line.to_string().len();
            out.push_str(&format!(
                "\n {:width$} |\n {line} | {src_line}\n {:width$} | {}^",
                "",
                "",
                " ".repeat(col.saturating_sub(1))
            ));
        }
    }
    for c in chain.iter().rev() {
        out.push_str(&format!("\n  = {c}"));
    }
    out
}

fn line_col(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => format!("{l}"),
        _ => "?".into(),
    }
}

/// Every source a recipe may show in an error: the recipe and the stdlib.
pub fn sources(recipe_name: &str, recipe_text: &str) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = STDLIB
        .iter()
        .map(|(n, t)| (format!("{n}.rhai"), (*t).to_string()))
        .collect();
    map.insert(recipe_name.to_string(), recipe_text.to_string());
    map
}
