//! The `anshin` binary: parse, run, exit code. The work is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = anshin::cli::Cli::parse();
    anshin::cmd::run(cli)
}
