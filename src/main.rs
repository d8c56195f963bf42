//! The `leakcheck` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = leakcheck::cli::Cli::parse();
    match leakcheck::app::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // Output piped into `head` and closed early is not an error worth a message.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("leakcheck: {err:#}");
            ExitCode::from(2)
        }
    }
}
