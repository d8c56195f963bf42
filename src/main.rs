//! The `leakcheck` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = leakcheck::cli::Cli::parse();
    match leakcheck::app::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            eprintln!("leakcheck: {err:#}");
            ExitCode::from(2)
        }
    }
}
