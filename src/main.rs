use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sqlmorph::cli::Cli::parse();
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
