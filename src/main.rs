use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    let args_os: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // (Non-UTF-8 arguments, such as file names, are parsed as they are.)
    let args: Vec<String> = args_os
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let parsed = sqlmorph::manual::command_for(&args)
        .try_get_matches_from(&args_os)
        .and_then(|m| sqlmorph::cli::Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to standard output with exit 0; a usage
            // error exits 2, with the JSON error object when asked for.
            if e.use_stderr() {
                if let Some(json) = sqlmorph::output::json::usage_error(&args, &e.to_string()) {
                    let _ = sqlmorph::cli::print(&json);
                }
            }
            e.exit()
        }
    };
    cli.apply_conventions();
    let json = cli.json_command();
    match sqlmorph::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(command) = json {
                let _ = sqlmorph::cli::print(&sqlmorph::output::json::error(command, &err));
            }
            ExitCode::from(sqlmorph::error::exit_code(&err))
        }
    }
}
