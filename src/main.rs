use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sqlmorph::cli::Cli::parse();
    match sqlmorph::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(sqlmorph::error::exit_code(&err))
        }
    }
}
