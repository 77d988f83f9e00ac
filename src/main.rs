//! The s3tally binary: parse the command line, run it, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use s3tally::cli::{self, Cli, UsageError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
