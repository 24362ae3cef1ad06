//! The command line: clap definitions (their doc comments are the help text)
//! and the dispatch to the library. Nothing here touches a database directly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::config::Options;
use crate::diff;
use crate::error::input;
use crate::pipeline::prompt::Prompter;
use crate::schema::Schema;
use crate::script::engine;
use crate::script::recipe;
use crate::style::Style;
use crate::term::{ColorWhen, Verbosity};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Expands a leading `~/` to the home directory.
fn expand_home(p: &std::path::Path) -> PathBuf {
    match (p.strip_prefix("~"), home::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => p.to_path_buf(),
    }
}

/// Paths of a run from flags, then the configuration, then the defaults.
pub(crate) fn resolve_paths(
    config: &Config,
    target: &Target,
    backup_dir: Option<PathBuf>,
    work_dir: Option<PathBuf>,
) -> Result<Options> {
    let targets: Vec<String> = match &target.production {
        Some(p) => vec![p.clone()],
        None => config
            .production
            .as_ref()
            .map(crate::config::Production::targets)
            .unwrap_or_default(),
    };
    let first = targets.first().cloned().ok_or_else(|| {
        input("no production database: give --production or set `production` in sqlmorph.toml")
    })?;
    let remote = targets.iter().filter(|t| t.starts_with("ssh://")).count();
    let remotes = if remote == 0 {
        if targets.len() > 1 {
            return Err(input(
                "`production` lists several local paths; a fleet is a list of ssh:// targets",
            ));
        }
        Vec::new()
    } else if remote == targets.len() {
        targets
            .iter()
            .map(|t| {
                t.parse::<crate::target::ssh::SshUrl>()
                    .map_err(|e| input(format!("{}: {e:#}", crate::sshconf::redact(t))))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        return Err(input("`production` mixes local paths and ssh:// targets"));
    };
    let mut ssh = crate::target::ssh::SshOptions::default();
    let env_path = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(id) = env_path("SQLMORPH_SSH_IDENTITY").or_else(|| config.ssh.identity.clone()) {
        ssh.identity = Some(expand_home(&id));
    }
    if let Some(kh) =
        env_path("SQLMORPH_SSH_KNOWN_HOSTS").or_else(|| config.ssh.known_hosts.clone())
    {
        ssh.known_hosts = expand_home(&kh);
    }
    ssh.passphrase = std::env::var("SQLMORPH_SSH_PASSPHRASE").ok();
    ssh.accept_new_host_key = target.accept_new_host_key;
    Ok(Options {
        source: target
            .source
            .clone()
            .or_else(|| config.source.clone())
            .unwrap_or_default(),
        production: PathBuf::from(first),
        backup_dir: backup_dir
            .or_else(|| config.backup_dir.clone())
            .unwrap_or_else(|| PathBuf::from("backups")),
        work_dir: work_dir
            .or_else(|| config.work_dir.clone())
            .unwrap_or_else(|| PathBuf::from(".sqlmorph")),
        stop: config.stop.clone(),
        restart: config.restart.clone(),
        health_check: config.health_check.clone(),
        keep_runs: config.retention.keep_runs,
        config_file: config.file.clone(),
        remotes,
        ssh,
        ..Options::default()
    })
}

fn resolve(
    config: &Config,
    target: &Target,
    backup_dir: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    set: impl FnOnce(&mut Options),
) -> Result<Options> {
    let mut opts = resolve_paths(config, target, backup_dir, work_dir)?;
    if opts.source.as_os_str().is_empty() {
        return Err(input(
            "no source schema: give --source or set `source` in sqlmorph.toml",
        ));
    }
    set(&mut opts);
    Ok(opts)
}

/// Database-first SQLite migrations, scripted in Rhai.
///
/// Change your schema in a schema database (or a .sql file); sqlmorph takes
/// production from where it is to that schema: backup, snapshot, diff, review,
/// build a fresh file, copy the data, validate, then swap it in atomically.
///
/// Exit codes: 0 success (for `diff`: no difference), 1 `diff` found
/// differences or `check` found problems, 2 usage or input error, 3 aborted
/// (declined, not allowed, validation failed, production changed meanwhile),
/// 4 deploy failed and was rolled back.
#[derive(Debug, Parser)]
#[command(name = "sqlmorph", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Colour: auto (at a terminal, unless NO_COLOR is set or
    /// CLICOLOR_FORCE asks for it), always or never. Log files are always
    /// plain text.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Print only errors and the final line (the log file keeps
    /// everything); no progress bars.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print the SQL the copy runs and the time of each step.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

impl Cli {
    /// Applies --color, --quiet and --verbose to the whole process.
    pub fn apply_conventions(&self) {
        let verbosity = match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        };
        crate::term::set(self.color, verbosity);
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate production to the source schema by running a recipe.
    ///
    /// Without RECIPE the built-in stock recipe runs (recipes/default.rhai):
    /// backup, snapshot, diff, review, build, copy, validate, confirm, swap.
    /// Every step before the swap works on copies in the run directory
    /// (<work_dir>/runs/<YYYYMMDD_HHMMSS>/).
    ///
    /// With no terminal and no --yes, the first confirmation stops the run
    /// (exit 3). Changes that lose data also need --allow-destructive.
    Run {
        /// A Rhai recipe; when omitted, the `recipe` of sqlmorph.toml, else
        /// the stock recipe.
        recipe: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// Where timestamped backups go (default: backups).
        #[arg(long, value_name = "D", env = "SQLMORPH_BACKUP_DIR")]
        backup_dir: Option<PathBuf>,
        /// Where run directories go (default: .sqlmorph).
        #[arg(long, value_name = "W", env = "SQLMORPH_WORK_DIR")]
        work_dir: Option<PathBuf>,
        /// Run every step on copies and print the report; production and the
        /// backup directory are not touched.
        #[arg(long)]
        dry_run: bool,
        /// Keep a dry run's snapshot and migrated file in its run directory
        /// (by default a dry run leaves no copy of production behind).
        #[arg(long)]
        keep_files: bool,
        /// Rebuild the whole database even when every change could be made
        /// in place (new tables, indexes, views, triggers, added columns).
        #[arg(long)]
        rebuild: bool,
        /// Answer yes to confirmations that lose no data.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Also accept changes that drop or change data (with --yes, or at a
        /// terminal).
        #[arg(long)]
        allow_destructive: bool,
        /// Accept a source schema with no tables (it drops every table of
        /// production); without it such a source is refused (exit 2).
        #[arg(long)]
        allow_empty_source: bool,
        /// text: the log on standard output; json: the log on standard error
        /// and a summary object on standard output.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what a migration would do (schema changes and data impact)
    /// without writing anything, and whether `run` with the same flags
    /// would complete.
    ///
    /// Exit 0 when it would complete (with --exit-code: 1 when it would
    /// change something), 3 when it would stop, with what it would need
    /// (a flag, a recipe line) or the refusal.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Accept a source schema with no tables (it drops every table).
        #[arg(long)]
        allow_empty_source: bool,
        /// Judge the run as `run --yes` (the confirmations answered).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Judge the run as `run --allow-destructive` (losses accepted).
        #[arg(long)]
        allow_destructive: bool,
        /// Exit 1 when changes are pending (and the run would complete):
        /// a drift check for CI.
        #[arg(long)]
        exit_code: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Test recipes: each runs as a dry run against fixture databases (and
    /// a copy of production with --production-copy), then its assertions.
    ///
    /// Assertions are Rhai: the recipe's `fn test(before, after)` and the
    /// test file (<recipe>.test.rhai beside it, or --tests FILE), with
    /// `before` the database as it was and `after` the migrated one.
    /// Exit 0 when every case passes, 1 when one fails, 2 on input errors.
    Test(crate::test_cmd::TestArgs),
    /// List the backups of production, newest first; with --prune, remove
    /// the old ones.
    ///
    /// --prune keeps the newest --keep N and every backup younger than
    /// --keep-days D (flags replace `[retention] keep_backups`/`keep_days`;
    /// default: 30 days), and never the backup of the last deploy recorded
    /// in production's _sqlmorph_history, nor any newer one.
    Backups {
        #[command(flatten)]
        prune: crate::prune::PruneArgs,
        /// The backup directory (default: from sqlmorph.toml, else backups).
        #[arg(long, value_name = "D", env = "SQLMORPH_BACKUP_DIR")]
        backup_dir: Option<PathBuf>,
        /// The configuration file (default: the nearest sqlmorph.toml).
        #[arg(long, value_name = "F", env = "SQLMORPH_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Production at a glance: its schema against the source (in sync or
    /// drift, with the changes), the deploys recorded in its
    /// `_sqlmorph_history` (the last 5) and the backups on hand.
    ///
    /// Production is only read. Exit 0 (with --exit-code: 1 on drift).
    Status {
        #[command(flatten)]
        target: Target,
        /// The backup directory (default: from sqlmorph.toml, else backups).
        #[arg(long, value_name = "D")]
        backup_dir: Option<PathBuf>,
        /// Exit 1 when production's schema differs from the source.
        #[arg(long)]
        exit_code: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Every deploy recorded in production's `_sqlmorph_history`, oldest
    /// first: when, by whom, the recipe and its hash, the schema before and
    /// after, the backup taken before it.
    History {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Restore production from a backup (the newest unless --backup), with
    /// the same atomic swap, after backing up the current production.
    Rollback {
        #[arg(long, value_name = "P", env = "SQLMORPH_PRODUCTION", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        production: Option<String>,
        /// Trust an SSH host key that is not in known_hosts yet.
        #[arg(long)]
        accept_new_host_key: bool,
        /// The backup file to restore.
        #[arg(long, value_name = "FILE")]
        backup: Option<PathBuf>,
        /// Where backups are (and where the current production is backed up
        /// first).
        #[arg(long, value_name = "D", env = "SQLMORPH_BACKUP_DIR")]
        backup_dir: Option<PathBuf>,
        /// The configuration file (default: the nearest sqlmorph.toml).
        #[arg(long, value_name = "F", env = "SQLMORPH_CONFIG")]
        config: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Write a commented sqlmorph.toml and a recipe template here.
    Init,
    /// Create migrations/<YYYYMMDD>_<NAME>.rhai from the recipe template.
    New {
        /// A short name for the migration, e.g. rename_practiced.
        name: String,
    },
    /// Print the normalized schema of a database or .sql file.
    ///
    /// The SQL form is deterministic and re-executable into an empty database.
    Schema {
        /// A SQLite file or a .sql file of DDL.
        db: PathBuf,
        #[arg(long, value_enum, default_value_t = SchemaFormat::Sql)]
        format: SchemaFormat,
    },
    /// Compare two schemas: what changes from FROM to TO.
    ///
    /// Formatting (whitespace, comments, quoting, keyword case) is not a
    /// change. Exit 0 when identical, 1 when different, 2 on error.
    Diff {
        /// The current schema (e.g. production): a SQLite file or .sql file.
        from: PathBuf,
        /// The desired schema: a SQLite file or .sql file.
        to: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run SQLite's integrity_check and foreign_key_check on a database.
    ///
    /// Exit 0 when clean, 1 when problems were found, 2 on error.
    Check {
        /// The SQLite file to check (opened read-only).
        db: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// An interactive Rhai session on SQLite files, with the recipe
    /// primitives.
    ///
    /// Each DB is bound to a variable named after its file (`app.sqlite3` ->
    /// `app`; `db1`, `db2`… when that is not an identifier), opened read-only
    /// unless --write. `:help` lists the primitives and the commands
    /// (`:tables`, `:schema`, `:diff`, `:plan`, `:load`, `:quit`).
    ///
    /// With standard input not a terminal, the lines are evaluated without
    /// prompts; the exit code is that of the last entry (0, or 2 when it
    /// failed). History: $SQLMORPH_HISTORY, else
    /// $XDG_STATE_HOME/sqlmorph/history (~/.local/state/sqlmorph/history).
    Repl {
        /// SQLite files (or .sql schemas) to open.
        dbs: Vec<PathBuf>,
        /// Open the databases for writing, so `sql(db, …)` can change them.
        #[arg(long)]
        write: bool,
    },
    /// Serve one production on this host for a sqlmorph run over SSH:
    /// newline-delimited JSON requests on standard input, answers on
    /// standard output (started by sqlmorph itself; see target::agent).
    #[command(hide = true)]
    Agent,
    /// Print the shell completion script for SHELL.
    ///
    /// Generated from the same definitions as this help, e.g.
    /// `sqlmorph completions bash > ~/.local/share/bash-completion/completions/sqlmorph`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write every command's page into a
    /// directory.
    ///
    /// With --dir: sqlmorph.1, sqlmorph-run.1, … (`man -l DIR/sqlmorph.1`).
    Man {
        /// Write the pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where the schemas and production are (flags override the environment,
/// which overrides sqlmorph.toml).
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The target schema: a SQLite file or a .sql file.
    #[arg(long, value_name = "S", env = "SQLMORPH_SOURCE")]
    pub source: Option<PathBuf>,
    /// The production database: a local path or
    /// ssh://user@host[:port]/absolute/path.sqlite3.
    #[arg(long, value_name = "P", env = "SQLMORPH_PRODUCTION", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub production: Option<String>,
    /// The configuration file (default: the nearest sqlmorph.toml, in this
    /// directory or a parent).
    #[arg(long, value_name = "F", env = "SQLMORPH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Trust an SSH host key that is not in known_hosts yet, and add it
    /// (a changed key is never accepted).
    #[arg(long)]
    pub accept_new_host_key: bool,
}

/// Output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Output format of `schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormat {
    Sql,
    Json,
}

impl Cli {
    /// The command's name when it prints JSON (`--format json`), so that an
    /// error prints the JSON error object too (see `output::json`).
    pub fn json_command(&self) -> Option<&'static str> {
        let (name, format) = match &self.command {
            Command::Run { format, .. } => ("run", format),
            Command::Plan { format, .. } => ("plan", format),
            Command::Backups { format, .. } => ("backups", format),
            Command::Diff { format, .. } => ("diff", format),
            Command::Check { format, .. } => ("check", format),
            Command::Status { format, .. } => ("status", format),
            Command::History { format, .. } => ("history", format),
            Command::Test(args) => ("test", &args.format),
            _ => return None,
        };
        (*format == Format::Json).then_some(name)
    }
}

/// Runs a parsed command line. `Ok` carries the exit code of a command that
/// completed (0, or 1 for "differences/problems found").
pub fn run(cli: Cli) -> Result<u8> {
    // Commands that read production stop at a safe point on Ctrl-C or
    // SIGTERM (exit 130 / 143) instead of dying mid-step.
    if matches!(
        cli.command,
        Command::Run { .. }
            | Command::Plan { .. }
            | Command::Rollback { .. }
            | Command::Status { .. }
            | Command::History { .. }
            | Command::Test(_)
    ) {
        crate::interrupt::install()?;
    }
    match cli.command {
        Command::Schema { db, format } => {
            let schema = Schema::load(&db)?;
            let text = match format {
                SchemaFormat::Sql => schema.to_sql(),
                SchemaFormat::Json => serde_json::to_string_pretty(&schema)? + "\n",
            };
            print(&text)?;
            Ok(0)
        }
        Command::Diff { from, to, format } => {
            let a = Schema::load(&from)?;
            let b = Schema::load(&to)?;
            let d = diff::diff(&a, &b);
            let text = match format {
                Format::Text => diff::render_text(&d, Style::stdout()),
                Format::Json => crate::output::json::success(
                    "diff",
                    &serde_json::json!({
                        "from": from,
                        "to": to,
                        "identical": d.is_empty(),
                        "changes": d.changes,
                    }),
                )?,
            };
            print(&text)?;
            Ok(u8::from(!d.is_empty()))
        }
        Command::Run {
            recipe,
            target,
            backup_dir,
            work_dir,
            dry_run,
            keep_files,
            rebuild,
            yes,
            allow_destructive,
            allow_empty_source,
            format,
        } => {
            let config = Config::load(target.config.as_deref())?;
            let recipe_from_config = recipe.is_none() && config.recipe.is_some();
            let recipe = recipe.or_else(|| config.recipe.clone());
            let (recipe_name, recipe_text) = match &recipe {
                Some(path) => (
                    path.display().to_string(),
                    std::fs::read_to_string(path).map_err(|e| {
                        input(format!("{}: cannot read the recipe: {e}", path.display()))
                    })?,
                ),
                None => ("default".to_string(), engine::DEFAULT_RECIPE.to_string()),
            };
            let opts = resolve(&config, &target, backup_dir, work_dir, |o| {
                o.dry_run = dry_run;
                o.keep_files = keep_files;
                o.rebuild = rebuild;
                o.yes = yes;
                o.allow_destructive = allow_destructive;
                o.allow_empty_source = allow_empty_source;
                o.json = format == Format::Json;
                o.recipe_hash = sha256_hex(recipe_text.as_bytes());
                o.recipe_name = recipe_name.clone();
                o.recipe_from_config = recipe_from_config;
            })?;
            let prompter = Prompter::new(yes, allow_destructive, dry_run);
            let summary = recipe::run(
                opts,
                prompter,
                &config.limits,
                &recipe_name,
                &recipe_text,
                recipe.as_deref(),
            )?;
            if format == Format::Json {
                print(&crate::output::json::success("run", &summary)?)?;
            }
            Ok(0)
        }
        Command::Plan {
            target,
            allow_empty_source,
            yes,
            allow_destructive,
            exit_code,
            format,
        } => {
            let config = Config::load(target.config.as_deref())?;
            if let Some(file) = &config.file {
                eprintln!("configuration: {}", file.display());
            }
            let opts = resolve(&config, &target, None, None, |o| {
                o.allow_empty_source = allow_empty_source;
            })?;
            let flags = crate::pipeline::gate::Flags {
                yes,
                allow_destructive,
                interactive: std::io::IsTerminal::is_terminal(&std::io::stdin()),
            };
            let preview = crate::pipeline::preview::preview(&opts, flags)?;
            let json = format == Format::Json;
            print(&crate::output::plan::render(&preview, json)?)?;
            crate::output::plan::verdict(&preview, json, exit_code)
        }
        Command::Backups {
            prune,
            backup_dir,
            config,
            format,
        } if prune.prune => {
            let file = Config::load(config.as_deref())?;
            let target = prune.target(config);
            let opts = resolve_paths(&file, &target, backup_dir, None).context(
                "backups --prune reads production's _sqlmorph_history to spare the last deploy's backup",
            )?;
            let text = crate::prune::run(&opts, &file.retention, &prune, format == Format::Json)?;
            print(&text)?;
            Ok(0)
        }
        Command::Backups {
            backup_dir,
            config,
            format,
            ..
        } => {
            let config = Config::load(config.as_deref())?;
            let dir = backup_dir
                .or(config.backup_dir)
                .unwrap_or_else(|| PathBuf::from("backups"));
            let list = crate::pipeline::backup::list(&dir)?;
            let text = match format {
                Format::Json => crate::output::json::success(
                    "backups",
                    &serde_json::json!({ "backup_dir": dir, "backups": list }),
                )?,
                Format::Text if list.is_empty() => format!("No backups in {}\n", dir.display()),
                Format::Text => list
                    .iter()
                    .map(|b| {
                        format!(
                            "{}  {:>12} bytes  schema {}  {}\n",
                            b.time,
                            b.bytes,
                            b.schema_hash.as_deref().unwrap_or("(unreadable)"),
                            b.path.display()
                        )
                    })
                    .collect(),
            };
            print(&text)?;
            Ok(0)
        }
        Command::Status {
            target,
            backup_dir,
            exit_code,
            format,
        } => {
            let config = Config::load(target.config.as_deref())?;
            let opts = resolve_paths(&config, &target, backup_dir, None)?;
            let status = crate::pipeline::status::status(&opts)?;
            print(&match format {
                Format::Text => crate::output::status::text(&status),
                Format::Json => crate::output::json::success("status", &status)?,
            })?;
            Ok(u8::from(exit_code && status.state == "drift"))
        }
        Command::History { target, format } => {
            let config = Config::load(target.config.as_deref())?;
            let opts = resolve_paths(&config, &target, None, None)?;
            let (_, deploys) = crate::pipeline::status::read_production(&opts)?;
            print(&match format {
                Format::Text => crate::output::status::deploys(&deploys, None),
                Format::Json => crate::output::json::success(
                    "history",
                    &serde_json::json!({ "deploys": deploys }),
                )?,
            })?;
            Ok(0)
        }
        Command::Rollback {
            production,
            accept_new_host_key,
            backup,
            backup_dir,
            config,
            yes,
        } => {
            let config_file = Config::load(config.as_deref())?;
            let target = Target {
                source: None,
                production,
                config,
                accept_new_host_key,
            };
            let opts = resolve_paths(&config_file, &target, backup_dir, None)?;
            crate::pipeline::rollback::rollback(
                &opts,
                backup.as_deref(),
                Prompter::new(yes, false, false),
            )?;
            Ok(0)
        }
        Command::New { name } => {
            let path =
                crate::script::recipe::new_migration(std::path::Path::new("migrations"), &name)?;
            print(&format!("wrote {}\n", path.display()))?;
            Ok(0)
        }
        Command::Init => {
            crate::script::recipe::init(std::path::Path::new("."))?;
            Ok(0)
        }
        Command::Check { db, format } => {
            let conn = crate::db::open_readonly(&db)?;
            let health =
                crate::pipeline::check::health(&conn, false).map_err(|e| match e
                    .downcast_ref::<rusqlite::Error>()
                {
                    Some(sqlite) => crate::db::corrupt(&db, sqlite),
                    None => e,
                })?;
            let text = match format {
                Format::Text => format!("{}\n{}", db.display(), health.render()),
                Format::Json => crate::output::json::success(
                    "check",
                    &serde_json::json!({
                        "db": db,
                        "clean": health.is_clean(),
                        "integrity": health.integrity,
                        "foreign_keys": health.foreign_keys,
                    }),
                )?,
            };
            print(&text)?;
            Ok(u8::from(!health.is_clean()))
        }
        Command::Test(args) => crate::test_cmd::run(&args),
        Command::Repl { dbs, write } => crate::repl::run(&dbs, write),
        Command::Completions { shell } => crate::manual::completions(shell),
        Command::Man { dir } => crate::manual::man(dir.as_deref()),
        Command::Agent => {
            crate::target::agent::serve(std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(0)
        }
    }
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
