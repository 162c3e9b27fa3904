//! One module per subcommand; [`run`] dispatches and turns errors into exit codes.

mod audit;
mod backup;
mod bench;
mod bench_payments;
mod demo;
mod init;
pub(crate) mod integrity;
mod keys;
mod principal;
mod progress;
mod restore;
mod scan;
mod scan_db;
pub(crate) mod scan_upload;
mod serve;
mod unseal;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::CommandFactory;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    forbid_core_dumps();
    let listen = match &cli.command {
        Command::Serve { listen, .. } | Command::Demo { listen, .. } => listen.as_deref(),
        _ => None,
    };
    let bench = matches!(cli.command, Command::Bench(_));
    let result = Config::load(&cli.global, listen).and_then(|config| {
        init_logging(&config.log, bench);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, "runtime", "cannot start the async runtime").with_cause(e)
            })?;
        runtime.block_on(dispatch(cli.command, config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", err.message());
            if let Some(cause) = std::error::Error::source(&err) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit_code(&err))
        }
    }
}

async fn dispatch(command: Command, config: Config) -> Result<()> {
    match command {
        Command::Init { json, root } => init::run(&config, json, &root).await,
        Command::Unseal { server, json } => unseal::unseal(&config, server.as_deref(), json).await,
        Command::Seal { server, json } => unseal::seal(&config, server.as_deref(), json).await,
        Command::Serve { demo, .. } => serve::run(&config, demo).await,
        Command::Principal(command) => principal::run(&config, command).await,
        Command::Audit(command) => audit::run(&config, command).await,
        Command::Keys(command) => keys::run(&config, command).await,
        Command::Backup { out, keys, json } => backup::run(&config, &out, keys, json).await,
        Command::Restore {
            verify: _,
            source,
            json,
        } => restore::run(&config, &source, json).await,
        Command::Demo {
            json, shop_listen, ..
        } => demo::run(&config, json, shop_listen).await,
        Command::Bench(args) => bench::run(args, &config).await,
        Command::Scan(args) => scan::run(&config, args).await,
        Command::Integrity(command) => integrity::run(&config, command).await,
        Command::Config { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&config).map_err(Error::internal)?
                );
            } else {
                println!("{config:#?}");
            }
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "anshin", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// The documented exit code for an error (see `anshin --help`).
fn exit_code(err: &Error) -> u8 {
    match err.code() {
        "already_initialised" | "root_key_unreadable" | "not_initialised" => 3,
        "storage_unavailable" | "scan_db_unreachable" | "scan_db_tls" | "scan_input_unreadable" => 4,
        "audit_verification_failed" => 5,
        "scan_findings" | "integrity_findings" => 6,
        "integrity_baseline_tampered" => 7,
        "backup_unreadable_records" => 8,
        "scan_usage"
        | "scan_db_url"
        | "database_url_invalid"
        | "pg_url_invalid"
        | "pg_sslmode_invalid"
        | "pg_ssl_options"
        | "pg_ssl_file"
        | "scan_db_unknown_table"
        | "scan_inventory_file"
        | "unseal_usage"
        | "init_usage"
        | "integrity_usage"
        | "integrity_rules"
        | "integrity_yara_invalid"
        | "integrity_yara_unreadable"
        | "integrity_yara_unavailable"
        | "integrity_archive"
        | "integrity_baseline_exists" => 2,
        _ => 1,
    }
}

/// The log filter for a user's `--log` spec. tokio-postgres is held at info
/// whatever the spec: its debug lines print every statement's parameters, which
/// would copy ciphertexts, wrapped keys and fingerprints into the log.
pub fn log_filter(spec: &str) -> EnvFilter {
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    match "tokio_postgres=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    }
}

fn init_logging(spec: &str, bench: bool) {
    let mut filter = log_filter(spec);
    // In `anshin bench` the processor simulator is part of the load, not of
    // what is measured: its line per request would be counted as anshin's cost.
    if bench && let Ok(cap) = "anshin_processor_sim=warn".parse() {
        filter = filter.add_directive(cap);
    }
    // Fails only if a subscriber is already set (never in the binary). Also
    // routes the `log` records of dependencies through the same filter.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Every command may hold the root key, tenant keys or card data in memory:
/// a core dump (or another process of the same user reading its memory)
/// would write them to disk in clear. The core size limit goes to zero, hard
/// limit too, and the process becomes non-dumpable, which also stops
/// same-user ptrace and /proc/PID/mem reads. A failure is reported, not
/// fatal: some sandboxes forbid the calls.
fn forbid_core_dumps() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(err) = setrlimit(Resource::Core, none) {
        eprintln!("warning: cannot disable core dumps (setrlimit: {err}) / コアダンプを無効にできません");
    }
    if let Err(err) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        eprintln!(
            "warning: cannot mark the process non-dumpable (prctl: {err}) / プロセスをダンプ不可にできません"
        );
    }
}
