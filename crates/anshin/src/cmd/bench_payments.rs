//! `anshin bench` payment scenarios, in process, on one machine:
//!
//! - `processor_direct`: N keep-alive HTTPS clients authorize payments at the
//!   processor simulator (card in the body), as a shop would without anshin;
//! - `payment_authorize`: N clients authorize card-token payments through
//!   anshin's router (API key, idempotency key claimed in the store, card
//!   opened in the vault, audit entry made durable, template filled on the
//!   wire, verified TLS to the simulator, answer stored);
//! - `payment_proxy_added`: what the proxy adds, p50 and p99 latency of the
//!   second minus the first, measured in the same run;
//! - `payment_authorize_webhooks`: `payment_authorize` again with the shop's
//!   webhook endpoint configured (an HTTP receiver in this process), so each
//!   authorization also writes a payment event that is delivered, signed,
//!   while the clients run; the line says how many were delivered and how
//!   long the backlog took to drain after the clients stopped.
//!
//! anshin's background tasks run as in `anshin serve` (audit integration,
//! which also drains SQLite's outbox into the log, and webhook delivery). On
//! SQLite each line gives the writes per group commit (`jobs_per_commit`).
//! The simulator, anshin, the receiver and the load generator share the
//! machine's cores, so the figures include all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anshin_processor_sim::Simulator;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::bench::{Outcome, cpu_seconds, fresh_app_with_key, percentile, scenario_line};
use crate::app::App;
use crate::cli::BenchArgs;
use crate::config::{AlertConfig, Config};
use crate::error::{Error, Result};
use crate::proxy::CheckoutSettings;

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> Result<(StatusCode, Value)> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .map_err(Error::internal)?;
    let response = router.clone().oneshot(request).await.map_err(Error::internal)?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(Error::internal)?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn setup_error(step: &'static str, answer: &Value) -> Error {
    Error::internal(std::io::Error::other(format!(
        "bench setup failed at {step}: {answer}"
    )))
}

/// Runs `clients` loops of `op` for `seconds`; latencies of successes.
async fn drive<F, Fut>(clients: usize, seconds: f64, op: F) -> Result<Outcome>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients as u64 {
        let op = op.clone();
        tasks.spawn(async move {
            let (mut latencies, mut errors) = (Vec::with_capacity(65_536), 0u64);
            let mut i = client << 32;
            while Instant::now() < deadline {
                i += 1;
                let sent = Instant::now();
                if op(i).await {
                    latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        });
    }
    let (mut latencies_us, mut errors) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let (lat, err) = joined.map_err(Error::internal)?;
        latencies_us.extend(lat);
        errors += err;
    }
    latencies_us.sort_unstable();
    Ok(Outcome {
        elapsed: started.elapsed(),
        latencies_us,
        errors,
        server_cpu: cpu_seconds("self") - cpu_before,
        client_cpu: 0.0,
    })
}

/// A shop's webhook receiver: answers 200 to every POST and counts them.
async fn webhook_receiver() -> Result<(String, Arc<AtomicU64>)> {
    let received = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::internal)?;
    let url = format!(
        "http://{}/hooks/anshin",
        listener.local_addr().map_err(Error::internal)?
    );
    let counter = received.clone();
    let receiver = axum::Router::new().route(
        "/hooks/anshin",
        axum::routing::post(move |_body: Bytes| async move {
            counter.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    Ok((url, received))
}

/// Writes per group commit since `before` (SQLite), and the count now.
fn jobs_per_commit(app: &App, before: Option<(u64, u64)>) -> (Value, Option<(u64, u64)>) {
    let now = app.store.group_commit();
    let ratio = match (before, now) {
        (Some((jobs0, commits0)), Some((jobs, commits))) if commits > commits0 => {
            json!(((jobs - jobs0) as f64 / (commits - commits0) as f64 * 10.0).round() / 10.0)
        }
        _ => Value::Null,
    };
    (ratio, now)
}

/// How long the webhook backlog may take to drain after the clients stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

pub(super) async fn run(backend: &str, args: &BenchArgs, config: &Config) -> Result<()> {
    let sim = Simulator::start(Default::default())
        .await
        .map_err(Error::internal)?;
    let (app, _dir, schema, operator) = fresh_app_with_key(backend, &args.postgres_url).await?;
    app.configure_checkout(CheckoutSettings {
        allowed_hosts: vec!["127.0.0.1".into()],
        webhook_loopback: true,
        ..CheckoutSettings::default()
    });
    // The alerts concern the bench's throwaway data: never to the operator's alert webhook.
    let config = Config {
        alerts: AlertConfig::default(),
        ..config.clone()
    };
    let running = super::serve::start_tasks(&config, Arc::new(app))?;
    let app = running.app.clone();
    let router = crate::http::router(app.clone());
    let (status, tenant) = call(
        &router,
        Method::POST,
        "/v1/tenants",
        &operator,
        json!({"name": "bench"}),
    )
    .await?;
    let tenant = tenant["id"]
        .as_str()
        .filter(|_| status == StatusCode::CREATED)
        .ok_or_else(|| setup_error("tenant", &tenant))?
        .to_owned();
    let (_, shop) = call(
        &router,
        Method::POST,
        &format!("/v1/tenants/{tenant}/shops"),
        &operator,
        json!({"name": "bench shop"}),
    )
    .await?;
    let shop = shop["id"]
        .as_str()
        .ok_or_else(|| setup_error("shop", &shop))?
        .to_owned();
    let (_, principal) = call(
        &router,
        Method::POST,
        "/v1/principals",
        &operator,
        json!({"name": "bench shop", "role": "shop", "tenant_id": tenant, "shop_id": shop}),
    )
    .await?;
    let shop_key = principal["api_key"]
        .as_str()
        .ok_or_else(|| setup_error("principal", &principal))?
        .to_owned();
    let (status, route) = call(
        &router,
        Method::PUT,
        &format!("/v1/tenants/{tenant}/routes/default"),
        &operator,
        json!({"kind": "processor", "url": sim.url(), "ca_pem": sim.ca_pem()}),
    )
    .await?;
    if status != StatusCode::OK {
        return Err(setup_error("route", &route));
    }
    let (_, card) = call(
        &router,
        Method::POST,
        "/v1/cards",
        &shop_key,
        json!({"number": "4111111111111111", "exp_month": 12, "exp_year": 2031, "holder_name": "BENCH"}),
    )
    .await?;
    let token = card["token"]
        .as_str()
        .ok_or_else(|| setup_error("card", &card))?
        .to_owned();

    // The simulator called directly, as a shop would without anshin.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(sim.client_tls_config().map_err(Error::internal)?)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let url = format!("{}/v1/payments", sim.url());
    let direct = drive(args.clients, args.seconds, move |i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json!({"amount": 1000, "currency": "JPY", "capture": false,
                "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2031}});
            let Ok(request) = Request::builder()
                .method(Method::POST)
                .uri(url)
                .header("content-type", "application/json")
                .header("idempotency-key", format!("direct-{i}"))
                .body(Full::new(Bytes::from(body.to_string())))
            else {
                return false;
            };
            match client.request(request).await {
                Ok(response) => {
                    response.status() == StatusCode::OK && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            }
        }
    })
    .await?;
    println!(
        "{}",
        scenario_line("processor_direct", backend, args, &direct, 0.0)
    );

    // Each scenario uses its own idempotency keys: a key seen before would
    // be answered from its stored answer, not authorized.
    let authorize = |scenario: &'static str| {
        let (router, key, token) = (router.clone(), shop_key.clone(), token.clone());
        move |i: u64| {
            let (router, key, token) = (router.clone(), key.clone(), token.clone());
            async move {
                let body = json!({"card_token": token, "amount": 1000, "currency": "JPY"});
                let Ok(request) = Request::builder()
                    .method(Method::POST)
                    .uri("/v1/payments")
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("{scenario}-{i}"))
                    .body(Body::from(body.to_string()))
                else {
                    return false;
                };
                match router.oneshot(request).await {
                    Ok(response) => {
                        response.status() == StatusCode::OK && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                }
            }
        }
    };
    let (_, commits) = jobs_per_commit(&app, None);
    let proxied = drive(args.clients, args.seconds, authorize("plain")).await?;
    let mut line = scenario_line("payment_authorize", backend, args, &proxied, 0.0);
    let (ratio, commits) = jobs_per_commit(&app, commits);
    line["jobs_per_commit"] = ratio;
    println!("{line}");
    let added = |p| {
        ((percentile(&proxied.latencies_us, p) - percentile(&direct.latencies_us, p)) * 1000.0).round()
            / 1000.0
    };
    println!(
        "{}",
        json!({"scenario": "payment_proxy_added", "backend": backend, "clients": args.clients,
               "p50_added_ms": added(0.50), "p99_added_ms": added(0.99),
               "throughput_ratio": ((proxied.latencies_us.len() as f64 / direct.latencies_us.len().max(1) as f64) * 1000.0).round() / 1000.0})
    );

    // The same with the shop's webhook endpoint: one event per authorization.
    let (url, received) = webhook_receiver().await?;
    let (status, hook) = call(
        &router,
        Method::PUT,
        &format!("/v1/shops/{shop}/webhook"),
        &operator,
        json!({"url": url, "events": ["payment.authorized"]}),
    )
    .await?;
    if !status.is_success() {
        return Err(setup_error("webhook", &hook));
    }
    let with_webhooks = drive(args.clients, args.seconds, authorize("webhooks")).await?;
    let delivered_while_running = received.load(Ordering::Relaxed);
    let (ratio, _) = jobs_per_commit(&app, commits);
    let sent = with_webhooks.latencies_us.len() as u64;
    let stopped = Instant::now();
    while received.load(Ordering::Relaxed) < sent && stopped.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut line = scenario_line("payment_authorize_webhooks", backend, args, &with_webhooks, 0.0);
    line["jobs_per_commit"] = ratio;
    line["webhooks_delivered_while_running"] = json!(delivered_while_running);
    line["webhooks_delivered"] = json!(received.load(Ordering::Relaxed));
    line["webhook_drain_s"] = json!((stopped.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    println!("{line}");

    for task in &running.tasks {
        task.abort();
    }
    sim.shutdown().await;
    if let Some(schema) = schema {
        let _ = crate::db::drop_schema(&args.postgres_url, &schema).await;
    }
    Ok(())
}
