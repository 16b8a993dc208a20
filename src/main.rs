//! The `stampede` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stampede::cli::Cli::parse();
    stampede::cli::run(cli).into()
}
