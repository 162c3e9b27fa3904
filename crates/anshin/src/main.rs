//! The `anshin` binary: parse, run, exit code. The work is in the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a served request allocates and frees
/// many small buffers across threads (request, audit entry, answer), where
/// glibc's arenas spent about a tenth of the server's CPU in the benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = anshin::cli::Cli::parse();
    anshin::cmd::run(cli)
}
