//! The s3tally binary: parse the command line, run it, turn the result into the exit code.

use std::process::ExitCode;

use clap::Parser;
use s3tally::cli::{self, Cli};

fn main() -> ExitCode {
    let result = cli::run(Cli::parse());
    ExitCode::from(s3tally::exit::code(&result))
}
