//! Running a recipe, on its own thread with a stack deep enough for the
//! call limit: start the run, build the engine, compile (a syntax error
//! names file:line:column), evaluate, and turn the outcome into the run's
//! summary or an error with the right exit code (the one a primitive
//! recorded, only for the error it raised).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use rhai::EvalAltResult;

use crate::config::Limits;
use crate::config::Options;
use crate::error::{Exit, ExitKind, input};
use crate::pipeline::prompt::Prompter;
use crate::pipeline::session::{Run, Summary};
use crate::script::engine;

/// The stack a recipe runs on. Rhai evaluates on the native stack, a few
/// tens of KiB per call level (most in a debug build), so the deepest
/// recursion [`Limits`] allows (`MAX_CALL_LEVELS`) must fit here: a recipe
/// that recurses too deep gets a "call depth" error, never a crash.
pub const RECIPE_STACK_BYTES: usize = 512 << 20;

/// Runs a recipe to the end, on a thread with [`RECIPE_STACK_BYTES`] of
/// stack.
pub fn run(
    opts: Options,
    prompter: Prompter,
    limits: &Limits,
    name: &str,
    text: &str,
    path: Option<&Path>,
) -> Result<Summary> {
    let (limits, name, text) = (limits.clone(), name.to_string(), text.to_string());
    let path = path.map(Path::to_path_buf);
    std::thread::Builder::new()
        .name("recipe".into())
        .stack_size(RECIPE_STACK_BYTES)
        .spawn(move || run_here(opts, prompter, &limits, &name, &text, path.as_deref()))
        .context("starting the recipe's thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the recipe's thread panicked"))?
}

/// Runs a recipe to the end on the current thread.
fn run_here(
    opts: Options,
    prompter: Prompter,
    limits: &Limits,
    name: &str,
    text: &str,
    path: Option<&Path>,
) -> Result<Summary> {
    let run = Rc::new(RefCell::new(Run::start(opts, prompter)?));
    let dir = path
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty());
    let engine = engine::engine(&run, limits, dir);
    let sources = engine::sources(name, text).beside(dir);
    let mut ast = engine.compile(text).map_err(|e| {
        let err: EvalAltResult = e.into();
        input(format!(
            "recipe error: {}",
            engine::render_error(&err, &sources, name)
        ))
    })?;
    ast.set_source(name.to_string());
    let outcome = engine.run_ast(&ast);
    let mut state = run.borrow_mut();
    match outcome {
        Ok(()) => {}
        Err(e) if engine::is_exit(&e) => {}
        Err(e) => {
            state.end();
            let raised = engine::raised_message(&e);
            let plain = state.is_plain(raised.as_deref());
            let kind = state
                .take_exit(raised.as_deref())
                .unwrap_or(ExitKind::Input);
            if matches!(kind, ExitKind::Interrupted | ExitKind::Terminated) {
                let message = state.interrupted(kind);
                let dir = state.dir().display().to_string();
                return Err(anyhow::Error::new(Exit { kind, message }))
                    .with_context(|| format!("run {dir}"));
            }
            let message = match (plain, raised) {
                (true, Some(raised)) => raised,
                _ => recipe_error(kind, engine::render_error(&e, &sources, name)),
            };
            state.log().quiet(&format!("error: {message}"));
            let dir = state.dir().display().to_string();
            return Err(anyhow::Error::new(Exit { kind, message }))
                .with_context(|| format!("run {dir}"));
        }
    }
    state.end();
    let summary = state.summary();
    if let Err(stop) = crate::pipeline::gate::verdict(state.needs()) {
        state.log().quiet(&format!("error: {stop}"));
        let dir = state.dir().display().to_string();
        return Err(stop).with_context(|| format!("run {dir}"));
    }
    state.log().last(&format!("finished: {}", summary.outcome));
    Ok(summary)
}

/// An error in the recipe's own code, with its pointer; "recipe error:"
/// first when it is bad input.
fn recipe_error(kind: ExitKind, rendered: String) -> String {
    match kind {
        ExitKind::Input => format!("recipe error: {rendered}"),
        _ => rendered,
    }
}

/// The recipe template written by `init` (and `new`).
pub const TEMPLATE: &str = r#"// A per-migration recipe: declare what the stock workflow cannot guess,
// then run the stock workflow. See the README's "Writing a recipe".
//
//   rename_column("practice", "played", "practiced");   // keep the values
//   map_column("practice", "tempo", "CAST(tempo AS INTEGER)");
//   fill("users", "timezone", "'UTC'");                 // a new NOT NULL column
//   drop_column("users", "legacy");                    // approve the loss

import "std/default";
"#;

/// `sqlmorph init`: a commented sqlmorph.toml and a recipe template.
pub fn init(dir: &Path) -> Result<()> {
    for (name, text) in [
        (crate::config::FILE_NAME, crate::config::TEMPLATE),
        ("recipe.rhai", TEMPLATE),
    ] {
        let path = dir.join(name);
        if path.exists() {
            println!("kept {} (it exists)", path.display());
            continue;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `sqlmorph new NAME`: `migrations/<YYYYMMDD>_<name>.rhai` from the template.
pub fn new_migration(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim_matches('_').is_empty() {
        return Err(input(format!(
            "{name:?} is not a usable migration name (use letters, digits, _ or -)"
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!(
        "{}_{clean}.rhai",
        chrono::Local::now().format("%Y%m%d")
    ));
    if path.exists() {
        return Err(input(format!("{} exists already", path.display())));
    }
    std::fs::write(&path, format!("// Migration: {name}\n{TEMPLATE}"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
