//! One `sqlmorph test` case on the script side: the recipe runs (a dry
//! run) on the recipe's thread, then its assertions run with `before` (the
//! snapshot: the fixture as it was) and `after` (the migrated database):
//! the recipe's own `fn test(before, after)` if it defines one, then the
//! test file's top-level code, which sees `before` and `after` as
//! constants. `fn test` runs alone, without the recipe's top level, so it
//! imports what it uses itself (`import "std/checks" as checks;` in its
//! body). The first error thrown fails the case, named with its
//! message and the line of the failing call in the recipe or test file.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Position, Scope};

use crate::config::{Limits, Options};
use crate::error::{Exit, ExitKind, input};
use crate::pipeline::prompt::Prompter;
use crate::pipeline::session::{Db, Run};
use crate::pipeline::testcase::Verdict;
use crate::script::engine::{self, Sources};
use crate::script::recipe::RECIPE_STACK_BYTES;

/// A Rhai file: its name in messages, its text, where it is (imports and
/// error quotes look beside it).
#[derive(Debug, Clone)]
pub struct Script {
    /// `recipe` or `test file`, for messages.
    pub kind: &'static str,
    pub name: String,
    pub text: String,
    pub path: Option<PathBuf>,
}

impl Script {
    /// Reads a file; an input error naming it when it cannot be read.
    pub fn read(path: &Path, what: &'static str) -> Result<Script> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| input(format!("{}: cannot read the {what}: {e}", path.display())))?;
        Ok(Script {
            kind: what,
            name: path.display().to_string(),
            text,
            path: Some(path.to_path_buf()),
        })
    }

    fn dir(&self) -> Option<&Path> {
        self.path
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
    }
}

/// Checks that a script compiles (an input error, with file:line, if not).
pub fn check_syntax(script: &Script) -> Result<()> {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(64, 64);
    compile(
        &engine,
        script,
        &engine::sources(&script.name, &script.text),
    )
    .map(|_| ())
}

fn compile(engine: &Engine, script: &Script, sources: &Sources) -> Result<AST> {
    compile_with(engine, &Scope::new(), script, sources)
}

/// Compiles against `scope` (the variables a test file may use).
fn compile_with(engine: &Engine, scope: &Scope, script: &Script, sources: &Sources) -> Result<AST> {
    let mut ast = engine
        .compile_with_scope(scope, &script.text)
        .map_err(|e| {
            let err: EvalAltResult = e.into();
            input(format!(
                "{} error: {}",
                script.kind,
                engine::render_error(&err, sources, &script.name)
            ))
        })?;
    ast.set_source(script.name.clone());
    Ok(ast)
}

/// Runs one case on a thread with the recipe's stack.
pub fn run_case(
    opts: Options,
    prompter: Prompter,
    limits: &Limits,
    recipe: &Script,
    tests: Option<&Script>,
) -> Result<Verdict> {
    let (limits, recipe, tests) = (limits.clone(), recipe.clone(), tests.cloned());
    std::thread::Builder::new()
        .name("recipe-test".into())
        .stack_size(RECIPE_STACK_BYTES)
        .spawn(move || run_here(opts, prompter, &limits, &recipe, tests.as_ref()))
        .context("starting the recipe's thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the recipe's thread panicked"))?
}

fn run_here(
    opts: Options,
    prompter: Prompter,
    limits: &Limits,
    recipe: &Script,
    tests: Option<&Script>,
) -> Result<Verdict> {
    let run = Rc::new(RefCell::new(Run::start(opts, prompter)?));
    let engine = engine::engine(&run, limits, recipe.dir());
    let mut sources = engine::sources(&recipe.name, &recipe.text).beside(recipe.dir());
    if let Some(t) = tests {
        sources = sources.with(&t.name, &t.text);
    }
    let ast = compile(&engine, recipe, &sources)?;
    let verdict = match engine.run_ast(&ast) {
        Err(e) if !engine::is_exit(&e) => stopped(&run, &e, &sources, &recipe.name)?,
        _ => assertions(&engine, &run, &ast, recipe, tests, &sources)?,
    };
    let mut state = run.borrow_mut();
    state.end();
    state.log().quiet(&format!(
        "finished: test {}",
        if verdict.passed { "passed" } else { "failed" }
    ));
    Ok(verdict)
}

/// The migration itself stopped: the case fails with the reason and the
/// exit code the real run would give.
/// A signal stops the whole test run instead (exit 130/143).
fn stopped(
    run: &Rc<RefCell<Run>>,
    e: &EvalAltResult,
    sources: &Sources,
    name: &str,
) -> Result<Verdict> {
    let raised = engine::raised_message(e);
    let kind = run
        .borrow_mut()
        .take_exit(raised.as_deref())
        .unwrap_or(ExitKind::Input);
    if matches!(kind, ExitKind::Interrupted | ExitKind::Terminated) {
        let mut state = run.borrow_mut();
        state.end();
        let message = state.interrupted(kind);
        return Err(anyhow::Error::new(Exit { kind, message }));
    }
    let detail = engine::render_error(e, sources, name);
    let first = detail.lines().next().unwrap_or_default();
    Ok(Verdict::failed(
        format!(
            "the migration stopped (a real run would exit {}): {first}",
            kind as u8
        ),
        location(e, name),
        detail,
    ))
}

/// The recipe's `fn test(before, after)`, then the test file.
fn assertions(
    engine: &Engine,
    run: &Rc<RefCell<Run>>,
    ast: &AST,
    recipe: &Script,
    tests: Option<&Script>,
    sources: &Sources,
) -> Result<Verdict> {
    let pair = run.borrow().before_after();
    let Some((before, after)) = pair else {
        return Ok(Verdict::failed(
            "the recipe took no snapshot, so there is nothing to test: call snapshot() (the stock steps do)".into(),
            None,
            String::new(),
        ));
    };
    let mut bodies = 0;
    if ast
        .iter_functions()
        .any(|f| f.name == "test" && f.params.len() == 2)
    {
        bodies += 1;
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let args = (before.clone(), after.clone());
        let called =
            engine.call_fn_with_options::<Dynamic>(options, &mut Scope::new(), ast, "test", args);
        if let Err(e) = called {
            return Ok(failure(&e, sources, &recipe.name, bodies));
        }
    }
    if let Some(t) = tests {
        bodies += 1;
        if let Err(e) = run_test_file(engine, t, sources, before, after)? {
            return Ok(failure(&e, sources, &t.name, bodies));
        }
    }
    Ok(Verdict {
        passed: true,
        test_bodies: bodies,
        ..Verdict::default()
    })
}

/// The test file's top level, with `before` and `after` bound. The outer
/// `Result` is for a file that does not compile (an input error).
fn run_test_file(
    engine: &Engine,
    t: &Script,
    sources: &Sources,
    before: Db,
    after: Db,
) -> Result<Result<(), Box<EvalAltResult>>> {
    let mut scope = Scope::new();
    scope.push_constant("before", before);
    scope.push_constant("after", after);
    let ast = compile_with(engine, &scope, t, sources)?;
    Ok(engine.run_ast_with_scope(&mut scope, &ast))
}

fn failure(e: &EvalAltResult, sources: &Sources, name: &str, bodies: usize) -> Verdict {
    let detail = engine::render_error(e, sources, name);
    let message = detail.lines().next().unwrap_or_default().to_string();
    Verdict {
        test_bodies: bodies,
        ..Verdict::failed(message, location(e, name), detail)
    }
}

/// Where the failing call is in `main` (the recipe or test file): the
/// outermost call with a position, else the error's own position.
fn location(err: &EvalAltResult, main: &str) -> Option<String> {
    let mut current = err;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(_, _, _, pos)
            | EvalAltResult::ErrorInModule(_, _, pos)
                if !pos.is_none() =>
            {
                return at(main, *pos);
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) => current = inner,
            other => return at(main, other.position()),
        }
    }
}

fn at(main: &str, pos: Position) -> Option<String> {
    let line = pos.line()?;
    Some(match pos.position() {
        Some(col) => format!("{main}:{line}:{col}"),
        None => format!("{main}:{line}"),
    })
}
