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
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope};

use crate::config::Limits;
use crate::pipeline::session::Run;

/// The stock recipe, built into the binary.
pub const DEFAULT_RECIPE: &str = include_str!("../../recipes/default.rhai");

/// Modules importable as `std/<name>`.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/checks", include_str!("../../stdlib/checks.rhai")),
    ("std/steps", include_str!("../../stdlib/steps.rhai")),
    ("std/default", DEFAULT_RECIPE),
];

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Shared run state, borrowed by every primitive.
pub type Shared<T> = Rc<RefCell<T>>;

/// Converts an error for Rhai, remembering its exit code for the run.
pub(super) fn fail(run: &Shared<Run>, err: &anyhow::Error) -> Box<EvalAltResult> {
    let message = format!("{err:#}");
    run.borrow_mut().set_exit(
        crate::error::exit_kind(err),
        &message,
        crate::error::is_plain(err),
    );
    message.into()
}

/// The error a script ended with, under the calls and imports it went
/// through.
pub fn innermost(mut err: &EvalAltResult) -> &EvalAltResult {
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = err
    {
        err = inner;
    }
    err
}

/// The message of a raised (or thrown) error, which [`fail`] recorded with
/// its exit code; `None` for Rhai's own errors.
pub fn raised_message(err: &EvalAltResult) -> Option<String> {
    match innermost(err) {
        EvalAltResult::ErrorRuntime(value, _) => Some(value.to_string()),
        _ => None,
    }
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
    engine.on_print(move |s| r.borrow_mut().log().line(s));
    let r = Rc::clone(run);
    engine.on_debug(move |s, src, pos| {
        r.borrow_mut()
            .log()
            .quiet(&format!("debug {}:{pos}: {s}", src.unwrap_or("")))
    });

    super::values::register_types(&mut engine);
    super::primitives::register_primitives(&mut engine, run);
    super::sqlfile::register(&mut engine, run, recipe_dir);
    engine
}

/// The names of every function the engine registers (primitives, getters
/// and methods), for the reference check.
pub fn registered_functions() -> Vec<String> {
    let scratch = std::env::temp_dir();
    let run = Rc::new(RefCell::new(Run::detached(
        crate::config::Options::default(),
        crate::pipeline::prompt::Prompter::new(false, false, false),
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

/// A script error, rendered like a compiler diagnostic: the innermost
/// error's file, line and source line, then each call that led to it, at
/// its own file and line.
pub fn render_error(err: &EvalAltResult, sources: &Sources, main_source: &str) -> String {
    // Walk to the innermost error, keeping the call chain.
    let mut chain = Vec::new();
    let mut current = err;
    let mut source = main_source.to_string();
    loop {
        match current {
            // `pos` is the call in the caller's file (`source`); `src` is
            // the file the called function is written in.
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                chain.push(format!(
                    "in call to `{name}` at {source}:{}",
                    line_col(*pos)
                ));
                if !src.is_empty() {
                    source = file_name(src, main_source);
                }
                current = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                chain.push(format!(
                    "in module `{name}` imported at {source}:{}",
                    line_col(*pos)
                ));
                source = file_name(name, main_source);
                current = inner;
            }
            _ => break,
        }
    }
    let pos = current.position();
    let message = match current {
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorStackOverflow(_) => {
            "the recipe's function calls nested deeper than the call depth limit (endless recursion?); [limits] max_call_levels in sqlmorph.toml sets it".to_string()
        }
        EvalAltResult::ErrorTooManyOperations(_) => {
            "the recipe ran too many operations and was stopped (an endless loop?); raise [limits] max_operations in sqlmorph.toml if it is really that big".to_string()
        }
        other => {
            let text = other.to_string();
            text.split(" (line ").next().unwrap_or(&text).to_string()
        }
    };
    let mut out = format!("{message}\n --> {source}:{}", line_col(pos));
    if let (Some(line), Some(text)) = (pos.line(), sources.text(&source)) {
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

/// The file a module or function source names: a module imported as
/// `"helpers"` (or `"std/checks"`) is the file `helpers.rhai`.
fn file_name(src: &str, main_source: &str) -> String {
    if src == main_source || src.ends_with(".rhai") {
        src.to_string()
    } else {
        format!("{src}.rhai")
    }
}

/// Every source an error may quote: the recipe, the stdlib, and the modules
/// beside the recipe (read when an error needs them).
#[derive(Debug, Default)]
pub struct Sources {
    texts: BTreeMap<String, String>,
    dir: Option<PathBuf>,
}

impl Sources {
    /// Modules beside the recipe are looked up in `dir` (the current
    /// directory when `None`, as the module resolver does).
    pub fn beside(mut self, dir: Option<&Path>) -> Sources {
        self.dir = Some(dir.unwrap_or(Path::new(".")).to_path_buf());
        self
    }

    /// Adds a file errors may quote (a test file).
    pub fn with(mut self, name: &str, text: &str) -> Sources {
        self.texts.insert(name.to_string(), text.to_string());
        self
    }

    fn text(&self, name: &str) -> Option<String> {
        if let Some(t) = self.texts.get(name) {
            return Some(t.clone());
        }
        std::fs::read_to_string(self.dir.as_ref()?.join(name)).ok()
    }
}

/// The sources of a recipe (or REPL entry) named `recipe_name`.
pub fn sources(recipe_name: &str, recipe_text: &str) -> Sources {
    let mut texts: BTreeMap<String, String> = STDLIB
        .iter()
        .map(|(n, t)| (format!("{n}.rhai"), (*t).to_string()))
        .collect();
    texts.insert(recipe_name.to_string(), recipe_text.to_string());
    Sources { texts, dir: None }
}
