//! `anshin-processor-sim`: runs the card processor simulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anshin_crypto::secret::SecretString;
use anshin_processor_sim::{Config, Simulator};
use clap::Parser;

/// A card processor simulator for anshin's tests and demos (HTTPS with its own test CA).
///
/// Serves a processor API (authorize, capture, void, refund, 3-D Secure) on
/// HTTPS with a certificate from a CA made at start. The CA certificate is
/// written to --ca-file: clients trust exactly that file and keep certificate
/// verification on. Test cards and the API: crates/anshin-processor-sim/README.md.
///
/// Exit codes: 0 stopped by Ctrl-C or SIGTERM; 1 could not start (the message
/// says why); 2 bad arguments.
#[derive(Debug, Parser)]
#[command(
    name = "anshin-processor-sim",
    version,
    after_help = "Examples:\n  \
anshin-processor-sim --listen 127.0.0.1:8443 --ca-file /tmp/processor-ca.pem\n  \
anshin-processor-sim --json --ca-file ca.pem --slow-delay-ms 5000 --api-key-file key.txt\n  \
curl --cacert /tmp/processor-ca.pem -H 'Idempotency-Key: k1' \\\n    \
-d '{\"amount\":1000,\"currency\":\"JPY\",\"card\":{\"number\":\"4111111111111111\",\"exp_month\":12,\"exp_year\":2030,\"cvc\":\"123\"}}' \\\n    \
https://127.0.0.1:8443/v1/payments"
)]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen URL is printed).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Host name or IP address for the certificate (repeatable; the first is used in links).
    #[arg(long = "host", default_values = ["127.0.0.1", "localhost"])]
    hosts: Vec<String>,
    /// Where to write the test CA's certificate (PEM).
    #[arg(long, default_value = "processor-sim-ca.pem")]
    ca_file: PathBuf,
    /// Seconds an uncaptured authorization lives.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    authorization_ttl: u64,
    /// Seconds an idempotency key is remembered.
    #[arg(long, default_value_t = 24 * 3600)]
    idempotency_ttl: u64,
    /// Milliseconds the slow test card (4000000000000077) delays its answer.
    #[arg(long, default_value_t = 30_000)]
    slow_delay_ms: u64,
    /// File holding the API key clients must send as `Authorization: Bearer …` (none: no key needed).
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Print the start-up line as JSON: {"url": …, "ca_file": …}.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let api_key = match &args.api_key_file {
        Some(path) => {
            let key = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --api-key-file {}: {e}", path.display()))?;
            let key = key.trim().to_owned();
            if key.is_empty() {
                return Err(format!(
                    "--api-key-file {} is empty; put the key in it",
                    path.display()
                ));
            }
            Some(SecretString::new(key))
        }
        None => None,
    };
    let config = Config {
        listen: args.listen,
        hosts: args.hosts,
        authorization_ttl: Duration::from_secs(args.authorization_ttl),
        idempotency_ttl: Duration::from_secs(args.idempotency_ttl),
        slow_delay: Duration::from_millis(args.slow_delay_ms),
        api_key,
    };
    let sim = Simulator::start(config).await.map_err(|e| e.to_string())?;
    std::fs::write(&args.ca_file, sim.ca_pem()).map_err(|e| {
        format!(
            "cannot write --ca-file {}: {e}; choose a writable path",
            args.ca_file.display()
        )
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"url": sim.url(), "ca_file": args.ca_file.display().to_string()})
        );
    } else {
        println!(
            "anshin-processor-sim listening on {} (trust the CA in {})",
            sim.url(),
            args.ca_file.display()
        );
    }
    wait_for_stop().await;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
