//! `sqlmorph test`: every recipe (those named, else `migrations/*.rhai`,
//! else the stock recipe) runs as a dry run against every fixture database
//! (and, with `--production-copy`, against a fresh read-only copy of
//! production), each in a private temporary directory removed afterwards,
//! and then its assertions (see [`crate::script::testing`]). Questions are
//! answered as `run --yes` would answer them without a terminal, so a case
//! fails where the real run would stop.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::Format;
use crate::config::{Config, Options};
use crate::error::input;
use crate::pipeline::fixtures;
use crate::pipeline::prompt::Prompter;
use crate::pipeline::testcase::Case;
use crate::script::engine::DEFAULT_RECIPE;
use crate::script::testing::{self, Script};

/// The flags of `sqlmorph test`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Recipes to test (default: every migrations/*.rhai, else the stock
    /// recipe).
    pub recipes: Vec<PathBuf>,
    /// The target schema: a SQLite file or a .sql file.
    #[arg(long, value_name = "S")]
    pub source: Option<PathBuf>,
    /// A directory of fixture databases (.sql, .sqlite3, .sqlite, .db), or
    /// one such file (default: `[test] fixtures` in sqlmorph.toml).
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// Also test against a fresh copy of production (read only; production
    /// is never written).
    #[arg(long)]
    pub production_copy: bool,
    /// The production database for --production-copy.
    #[arg(long, value_name = "P")]
    pub production: Option<String>,
    /// The configuration file (default: ./sqlmorph.toml if present).
    #[arg(long, value_name = "F")]
    pub config: Option<PathBuf>,
    /// Trust an SSH host key that is not in known_hosts yet.
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// A Rhai test file run after each migration with `before` and `after`
    /// bound (default: <recipe>.test.rhai beside each recipe, if present).
    #[arg(long, value_name = "FILE")]
    pub tests: Option<PathBuf>,
    /// Accept changes that lose data, as `run --allow-destructive` would.
    #[arg(long)]
    pub allow_destructive: bool,
    /// Write the results as JUnit XML to FILE (for CI systems).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A database a case runs against.
enum Target {
    Fixture(PathBuf),
    ProductionCopy,
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::Fixture(p) => p.display().to_string(),
            Target::ProductionCopy => "production (copy)".into(),
        }
    }
}

/// Runs the tests; the exit code is 0 when every case passed, 1 otherwise.
pub fn run(args: &TestArgs) -> Result<u8> {
    let config = Config::load(args.config.as_deref())?;
    let recipes = recipes(&args.recipes)?;
    let source = args
        .source
        .clone()
        .or_else(|| config.source.clone())
        .ok_or_else(|| input("no source schema: give --source or set `source` in sqlmorph.toml"))?;
    let targets = targets(args, &config)?;
    let explicit_tests = args
        .tests
        .as_deref()
        .map(|p| Script::read(p, "test file"))
        .transpose()?;
    let mut cases = Vec::new();
    for recipe in &recipes {
        let tests = match &explicit_tests {
            Some(t) => Some(t.clone()),
            None => beside_test_file(recipe)?,
        };
        if let Some(t) = &tests {
            testing::check_syntax(t)?;
        }
        for target in &targets {
            let base = base_options(args, &config, target, &source)?;
            cases.push(run_one(
                args,
                &config,
                base,
                recipe,
                tests.as_ref(),
                target,
            )?);
        }
    }
    let text = match args.format {
        Format::Text => crate::output::test::text(&cases, crate::style::Style::stdout()),
        Format::Json => crate::output::test::json(&cases)?,
    };
    crate::cli::print(&text)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, crate::output::test::junit(&cases)).map_err(|e| {
            input(format!(
                "{}: cannot write the JUnit report: {e}",
                path.display()
            ))
        })?;
    }
    Ok(u8::from(cases.iter().any(|c| !c.passed)))
}

/// The recipes named, else `migrations/*.rhai` (test files excluded), else
/// the stock recipe; each checked for syntax first (exit 2).
fn recipes(named: &[PathBuf]) -> Result<Vec<Script>> {
    let paths = if named.is_empty() {
        discover(Path::new("migrations"))
    } else {
        named.to_vec()
    };
    let scripts = if paths.is_empty() {
        vec![Script {
            kind: "recipe",
            name: "default".into(),
            text: DEFAULT_RECIPE.into(),
            path: None,
        }]
    } else {
        paths
            .iter()
            .map(|p| Script::read(p, "recipe"))
            .collect::<Result<Vec<_>>>()?
    };
    for s in &scripts {
        testing::check_syntax(s)?;
    }
    Ok(scripts)
}

/// `dir/*.rhai` in name order, without the `*.test.rhai` files.
fn discover(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.ends_with(".rhai") && !name.ends_with(".test.rhai") && p.is_file()
    });
    found.sort();
    found
}

/// `<stem>.test.rhai` beside a recipe file, when there is one.
fn beside_test_file(recipe: &Script) -> Result<Option<Script>> {
    let Some(path) = &recipe.path else {
        return Ok(None);
    };
    let candidate = path.with_extension("test.rhai");
    if candidate.is_file() {
        return Script::read(&candidate, "test file").map(Some);
    }
    Ok(None)
}

/// The fixtures (flag, else `[test] fixtures`) and the production copy.
fn targets(args: &TestArgs, config: &Config) -> Result<Vec<Target>> {
    let mut out: Vec<Target> = match args.fixtures.as_ref().or(config.test.fixtures.as_ref()) {
        Some(dir) => fixtures::find(dir)?
            .into_iter()
            .map(Target::Fixture)
            .collect(),
        None => Vec::new(),
    };
    if args.production_copy {
        out.push(Target::ProductionCopy);
    }
    if out.is_empty() {
        return Err(input(
            "nothing to test against: give --fixtures DIR (or set [test] fixtures in \
             sqlmorph.toml), or --production-copy",
        ));
    }
    Ok(out)
}

/// The options of a case before its scratch directory is known: production
/// from the flags or config for the production copy, a fixture otherwise.
fn base_options(
    args: &TestArgs,
    config: &Config,
    target: &Target,
    source: &Path,
) -> Result<Options> {
    let mut opts = match target {
        Target::ProductionCopy => crate::cli::resolve_paths(
            config,
            &crate::cli::Target {
                source: None,
                production: args.production.clone(),
                config: args.config.clone(),
                accept_new_host_key: args.accept_new_host_key,
            },
            None,
            None,
        )?,
        Target::Fixture(_) => Options::default(),
    };
    opts.source = source.to_path_buf();
    opts.dry_run = true;
    opts.keep_files = true;
    opts.yes = true;
    opts.allow_destructive = args.allow_destructive;
    // The runs' logs go to standard error; the results to standard output.
    opts.json = true;
    opts.keep_runs = Some(0);
    Ok(opts)
}

/// One recipe against one target, in a scratch directory removed after.
fn run_one(
    args: &TestArgs,
    config: &Config,
    mut opts: Options,
    recipe: &Script,
    tests: Option<&Script>,
    target: &Target,
) -> Result<Case> {
    let started = std::time::Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("sqlmorph-test-")
        .tempdir()?;
    if let Target::Fixture(path) = target {
        let db = scratch.path().join("fixture.sqlite3");
        fixtures::materialize(path, &db)?;
        opts.production = db;
    }
    opts.work_dir = scratch.path().join("work");
    opts.backup_dir = scratch.path().join("backups");
    opts.recipe_name = recipe.name.clone();
    opts.recipe_hash = crate::cli::sha256_hex(recipe.text.as_bytes());
    let prompter = Prompter {
        interactive: false,
        yes: true,
        allow_destructive: args.allow_destructive,
        dry_run: false,
        needs: std::sync::Arc::default(),
    };
    let verdict = testing::run_case(opts, prompter, &config.limits, recipe, tests)?;
    Ok(Case {
        recipe: recipe.name.clone(),
        fixture: target.name(),
        passed: verdict.passed,
        message: verdict.message,
        location: verdict.location,
        detail: verdict.detail,
        test_bodies: verdict.test_bodies,
        seconds: started.elapsed().as_secs_f64(),
    })
}
