//! `sqlmorph.toml`: every option of a run, overridden by command-line flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::input;

/// The configuration file, as written by the user. Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub production: Option<Production>,
    /// The recipe `run` runs when none is named (else the stock recipe).
    pub recipe: Option<PathBuf>,
    pub backup_dir: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    /// Run on the production host before the swap.
    pub stop: Option<String>,
    /// Run after the swap (locally for a local path).
    pub restart: Option<String>,
    /// Run after the restart; a non-zero exit means failure.
    pub health_check: Option<String>,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub test: TestConfig,
    /// The file this was read from (none: defaults only).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// `[retention]`: how many backups and run directories are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// `backups --prune` keeps at least this many newest backups.
    pub keep_backups: Option<usize>,
    /// `backups --prune` keeps every backup younger than this many days
    /// (30 when neither key nor flag is given).
    pub keep_days: Option<u64>,
    /// Run directories kept in `<work_dir>/runs` ([`DEFAULT_KEEP_RUNS`]).
    pub keep_runs: Option<usize>,
}

/// The run directories a run keeps when `[retention] keep_runs` is unset.
pub const DEFAULT_KEEP_RUNS: usize = 10;

/// `[test]`: what `sqlmorph test` runs against.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// A directory of fixture databases (`.sql`, `.sqlite3`, `.db`).
    pub fixtures: Option<PathBuf>,
}

/// One production target or a fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Production {
    One(String),
    Fleet(Vec<String>),
}

impl Production {
    /// The targets, in order.
    pub fn targets(&self) -> Vec<String> {
        match self {
            Production::One(p) => vec![p.clone()],
            Production::Fleet(v) => v.clone(),
        }
    }
}

/// `[ssh]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

/// `[limits]`: how far a recipe may go before it is stopped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
}

/// The deepest `max_call_levels` allowed: what the recipe's stack
/// (`script::recipe::RECIPE_STACK_BYTES`) holds with room to spare.
pub const MAX_CALL_LEVELS: usize = 1000;

impl Limits {
    /// Refuses limits a recipe could crash the process with.
    pub fn check(&self) -> Result<()> {
        if self.max_call_levels > MAX_CALL_LEVELS {
            return Err(input(format!(
                "[limits] max_call_levels = {} is too high: it may be at most {MAX_CALL_LEVELS} \
                 (deeper recursion would overflow the recipe's stack)",
                self.max_call_levels
            )));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_string_size: 16 << 20,
            max_array_size: 1_000_000,
        }
    }
}

/// The file name looked for in the current directory.
pub const FILE_NAME: &str = "sqlmorph.toml";

impl Config {
    /// Loads `--config FILE` (or `SQLMORPH_CONFIG`), or the nearest
    /// `sqlmorph.toml` in the current directory or its parents, or the
    /// defaults; relative paths in it are relative to its directory.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let Some(path) = crate::config_file::locate(explicit, &cwd)? else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            input(format!(
                "{}: cannot read the configuration: {e}",
                path.display()
            ))
        })?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| input(format!("{}: {e}", path.display())))
            .with_context(|| "reading the configuration".to_string())?;
        config
            .limits
            .check()
            .with_context(|| format!("reading {}", path.display()))?;
        crate::config_file::resolve_relative(&mut config, &path);
        config.file = Some(path);
        Ok(config)
    }
}

/// A commented configuration file, written by `sqlmorph init`.
pub const TEMPLATE: &str = r#"# sqlmorph configuration. Command-line flags override every key, and the
# environment (SQLMORPH_SOURCE, SQLMORPH_PRODUCTION, SQLMORPH_BACKUP_DIR,
# SQLMORPH_WORK_DIR) overrides this file. Relative paths are relative to the
# directory of this file; sqlmorph finds it from any subdirectory.

# The target schema: a SQLite "schema database" or a .sql file of DDL.
source = "schema.sqlite3"

# The live database: a local path, or "ssh://user@host:22/srv/app/app.sqlite3",
# or a list of them (a fleet).
production = "prod.sqlite3"

# The recipe `sqlmorph run` runs when none is named (without this key: the
# stock recipe).
recipe = "recipe.rhai"

# Timestamped backups of production (<stem>_backup_<YYYYMMDD_HHMMSS>.sqlite3).
backup_dir = "backups"

# Run directories (<work_dir>/runs/<YYYYMMDD_HHMMSS>/): log, diff, plan, report.
work_dir = ".sqlmorph"

# Commands run on the production host (locally for a local path).
stop = ""            # before the swap, optional
restart = ""         # after the swap, e.g. "systemctl restart myapp"
health_check = ""    # after the restart; a non-zero exit rolls the deploy back

[ssh]
# identity = "~/.ssh/id_ed25519"
# known_hosts = "~/.ssh/known_hosts"

[limits]
# How much a recipe may do before it is stopped (Rhai operations).
# max_operations = 50000000
# max_call_levels = 64   # at most 1000

[retention]
# `sqlmorph backups --prune` keeps the newest keep_backups backups and every
# backup younger than keep_days days (default: 30 days); the backup of the
# last deploy, and any newer, is never removed.
# keep_backups = 10
# keep_days = 30
# Run directories kept in <work_dir>/runs (older ones go when a run starts).
# keep_runs = 10

[test]
# Fixture databases for `sqlmorph test` (.sql or .sqlite3 files).
# fixtures = "tests/fixtures"
"#;

/// Everything a run needs to know, resolved from flags and `sqlmorph.toml`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub source: PathBuf,
    pub production: PathBuf,
    pub backup_dir: PathBuf,
    pub work_dir: PathBuf,
    pub dry_run: bool,
    /// `--keep-files`: a dry run keeps its snapshot and migrated file.
    pub keep_files: bool,
    /// Run directories kept in `<work_dir>/runs` besides the new one
    /// (`None`: [`DEFAULT_KEEP_RUNS`]).
    pub keep_runs: Option<usize>,
    /// `--rebuild`: never migrate in place.
    pub rebuild: bool,
    pub yes: bool,
    pub allow_destructive: bool,
    /// A source with no tables is accepted (it drops every table).
    pub allow_empty_source: bool,
    pub json: bool,
    pub stop: Option<String>,
    pub restart: Option<String>,
    pub health_check: Option<String>,
    /// The recipe's name (file path, or `default` for the built-in one).
    pub recipe_name: String,
    /// The configuration file the options came from, if any.
    pub config_file: Option<PathBuf>,
    /// The recipe is the configuration's `recipe` key (no RECIPE given).
    pub recipe_from_config: bool,
    pub recipe_hash: String,
    /// Production over SSH: one host, or a fleet of replicas (then
    /// `production` only names the first for messages).
    pub remotes: Vec<crate::sshconf::SshUrl>,
    pub ssh: crate::sshconf::SshOptions,
}

impl Options {
    /// The commands run around the swap.
    pub fn commands(&self) -> Commands {
        Commands {
            stop: self.stop.clone(),
            restart: self.restart.clone(),
            health_check: self.health_check.clone(),
        }
    }

    /// True when production is reached over SSH.
    pub fn is_remote(&self) -> bool {
        !self.remotes.is_empty()
    }
}

/// Commands run around the swap (from `sqlmorph.toml` or the recipe).
#[derive(Debug, Clone, Default)]
pub struct Commands {
    pub stop: Option<String>,
    pub restart: Option<String>,
    pub health_check: Option<String>,
}
