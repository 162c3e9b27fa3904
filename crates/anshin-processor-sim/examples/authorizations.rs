//! Authorizations per second straight to the simulator over TLS, the baseline
//! the payment proxy's figures are compared with. Prints one JSON line per
//! scenario.
//!
//! `cargo run --release -p anshin-processor-sim --example authorizations [CLIENTS] [SECONDS]`
//! (defaults 32 clients, 5 seconds). Every client is a keep-alive HTTPS
//! connection that trusts only the simulator's CA; the load generator runs in
//! the same process on the same cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anshin_processor_sim::{Config, Simulator};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let sim = Simulator::start(Config::default()).await?;
    for (scenario, capture) in [("authorize", false), ("authorize_capture", true)] {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(sim.client_tls_config()?)
            .https_only()
            .enable_http1()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(clients)
            .build(connector);
        let counter = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..clients {
            let client = client.clone();
            let url = format!("{}/v1/payments", sim.url());
            let counter = Arc::clone(&counter);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let body = format!(
                        r#"{{"amount":1000,"currency":"JPY","capture":{capture},"card":{{"number":"4111111111111111","exp_month":12,"exp_year":2030,"cvc":"123"}}}}"#
                    );
                    let request = Request::post(&url)
                        .header("idempotency-key", format!("{scenario}-{worker}-{n}"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))?;
                    let t = Instant::now();
                    let response = client.request(request).await?;
                    let status = response.status();
                    response.into_body().collect().await?;
                    latencies.push(t.elapsed());
                    if !status.is_success() {
                        return Err(format!("status {status}").into());
                    }
                    n += 1;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await?.map_err(|e| e.to_string())?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{}",
            serde_json::json!({
                "scenario": scenario,
                "clients": clients,
                "seconds": elapsed,
                "requests": counter.load(Ordering::Relaxed),
                "per_second": (counter.load(Ordering::Relaxed) as f64 / elapsed).round(),
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
            })
        );
    }
    sim.shutdown().await;
    Ok(())
}
