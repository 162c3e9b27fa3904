//! `anshin bench`: starts `anshin serve` on a fresh data directory (SQLite) or a
//! fresh schema (PostgreSQL), drives it over HTTP with N concurrent keep-alive
//! clients, and prints one JSON line per scenario: operations per second, p50 and
//! p99 latency, errors, and the server's peak resident memory.
//!
//! The load generator runs in this process, on the same machine: the figures
//! include its cost, as the targets ask.
//!
//! `rewrap` then rotates the tenant's KEK (two operators) and re-wraps every
//! card's data key in this process, on the server's store, while the clients
//! keep reading masked cards: data keys re-wrapped per second, and the reads'
//! rate and errors meanwhile.
//!
//! Two audit scenarios follow, in process: `audit_append` (durable appends per
//! second through the log's batcher) and, on SQLite, `audit_verify` (a log of
//! `--audit-entries` entries exported as tiles and verified offline). Last,
//! `unseal` (SQLite, in process): a vault split into 5 shares, threshold 3,
//! each share under a passphrase, unsealed from K shares to a serving App.
//! The payment scenarios (`processor_direct`, `payment_authorize`,
//! `payment_proxy_added`) are in [`super::bench_payments`].

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anshin_crypto::pan::luhn_check_digit;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::app::{App, Location};
use crate::audit::{ENTRY_VERSION, Entry, EntryActor, EventKind};
use crate::cli::{BenchArgs, BenchBackend};
use crate::config::Config;
use crate::demo::Sequence;
use crate::error::{Error, ErrorKind, Result};

/// Cards tokenized before the read scenarios, read at random.
const PREFILL: usize = 2_000;

pub async fn run(args: BenchArgs, config: &Config) -> Result<()> {
    let backends: &[&str] = match args.backend {
        BenchBackend::Sqlite => &["sqlite"],
        BenchBackend::Postgres => &["postgres"],
        BenchBackend::All => &["sqlite", "postgres"],
    };
    if args.payments_only {
        for backend in backends {
            super::bench_payments::run(backend, &args, config).await?;
        }
        return Ok(());
    }
    for backend in backends {
        let server = Server::start(backend, &args.postgres_url).await?;
        let result = scenarios(&server, backend, &args).await;
        server.stop().await;
        result?;
        audit_append(backend, &args).await?;
        super::bench_payments::run(backend, &args, config).await?;
    }
    if args.audit_entries > 0 && backends.contains(&"sqlite") {
        audit_verify(args.audit_entries).await?;
    }
    if backends.contains(&"sqlite") {
        unseal().await?;
    }
    Ok(())
}

/// Unseal rounds timed by the `unseal` scenario.
const UNSEAL_ROUNDS: usize = 5;

/// Times unsealing: K passphrase-sealed shares entered, each through
/// Argon2id, combined, checked, and the App opened; then sealed again.
async fn unseal() -> Result<()> {
    use crate::http::seal::{Gate, Running, UnsealRequest};
    use crate::vault::root::{NewRoot, Record};
    use anshin_crypto::secret::SecretString;

    let dir = tempfile::tempdir().map_err(Error::internal)?;
    let location = Location {
        data_dir: dir.path().join("data"),
        database_url: None,
    };
    let passphrases: Vec<Option<SecretString>> = (1..=5)
        .map(|i| Some(SecretString::new(format!("custodian {i} passphrase"))))
        .collect();
    let (app, _, shares) = App::init_with(
        &location,
        NewRoot::Shares {
            threshold: 3,
            passphrases: passphrases.clone(),
        },
    )
    .await?;
    drop(app);
    let record = Record::read(&location.data_dir)?.ok_or_else(|| bench_error("no root-of-trust record"))?;
    let gate = Gate::new(
        location,
        record,
        Default::default(),
        Box::new(|app| {
            Ok(Running {
                app: Arc::new(app),
                tasks: Vec::new(),
            })
        }),
    )?;
    let mut times = Vec::with_capacity(UNSEAL_ROUNDS);
    for round in 0..UNSEAL_ROUNDS {
        let started = Instant::now();
        let mut status = gate.status().await;
        for i in 0..3 {
            // A different K of the N each round.
            let pick = (round + i) % shares.len();
            status = gate
                .unseal(
                    None,
                    UnsealRequest {
                        share: shares[pick].clone(),
                        passphrase: passphrases[pick].clone(),
                    },
                )
                .await?;
        }
        times.push(started.elapsed().as_secs_f64());
        if status.sealed {
            return Err(bench_error("the unseal scenario did not unseal"));
        }
        gate.seal(None).await;
        // Untimed: the next round starts in a fresh window of the unseal rate limit.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    times.sort_by(f64::total_cmp);
    let round = |s: f64| (s * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "scenario": "unseal",
            "backend": "sqlite",
            "shares": 5,
            "threshold": 3,
            "argon2id": {
                "memory_kib": crate::vault::shares::KDF_MEMORY_KIB,
                "passes": crate::vault::shares::KDF_PASSES,
                "lanes": 1,
            },
            "rounds": UNSEAL_ROUNDS,
            "median_seconds": round(times[UNSEAL_ROUNDS / 2]),
            "max_seconds": round(times[UNSEAL_ROUNDS - 1]),
        })
    );
    Ok(())
}

/// A fresh application in this process, on a temporary SQLite data directory
/// or a fresh PostgreSQL schema (dropped by the caller).
async fn fresh_app(backend: &str, postgres_url: &str) -> Result<(App, tempfile::TempDir, Option<String>)> {
    let (app, dir, schema, _) = fresh_app_with_key(backend, postgres_url).await?;
    Ok((app, dir, schema))
}

/// [`fresh_app`], with its bootstrap operator key.
pub(super) async fn fresh_app_with_key(
    backend: &str,
    postgres_url: &str,
) -> Result<(App, tempfile::TempDir, Option<String>, String)> {
    let dir = tempfile::tempdir().map_err(Error::internal)?;
    let (database_url, schema) = if backend == "postgres" {
        let schema = format!("anshin_bench_audit_{}", std::process::id());
        (
            Some(crate::db::schema_url(postgres_url, &schema).await?),
            Some(schema),
        )
    } else {
        (None, None)
    };
    let location = Location {
        data_dir: dir.path().join("data"),
        database_url,
    };
    let (app, key) = App::init(&location).await?;
    Ok((app, dir, schema, key.expose().to_owned()))
}

/// A realistic entry: a shop's masked read of one card, one customer.
fn sample_entry(i: u64) -> Entry {
    Entry {
        v: ENTRY_VERSION,
        id: format!("evt_{i:026}"),
        time: crate::clock::rfc3339_millis(crate::clock::now_ms()),
        event: EventKind::CardRead.as_str().to_owned(),
        outcome: "success".to_owned(),
        code: None,
        actor: Some(EntryActor {
            principal: "prn_benchbenchbenchbenchbenchbe".to_owned(),
            role: "shop".to_owned(),
            shop: Some("shop_benchbenchbenchbenchbenchbe".to_owned()),
        }),
        tenant: Some("ten_benchbenchbenchbenchbenchbe".to_owned()),
        origin: Some("192.0.2.10".to_owned()),
        resources: vec![format!("card_{i:026}")],
        subjects: vec![format!("{i:064x}")],
        fields: vec!["card.masked".to_owned()],
        purpose: Some("shipping".to_owned()),
        rows: None,
        part: None,
        parts: None,
    }
}

/// Durable audit appends per second through the log's batcher, in process:
/// `clients` tasks each appending and waiting for durability in a loop.
async fn audit_append(backend: &str, args: &BenchArgs) -> Result<()> {
    let (app, _dir, schema) = fresh_app(backend, &args.postgres_url).await?;
    let app = Arc::new(app);
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.clients as u64 {
        let app = app.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(65_536);
            let mut errors = 0u64;
            let mut i = client << 32;
            while Instant::now() < deadline {
                i += 1;
                let entry = sample_entry(i);
                let sent = Instant::now();
                match app
                    .audit
                    .append(crate::clock::now_ms(), EventKind::CardRead, &entry, vec![[7; 32]])
                    .await
                {
                    Ok(()) => latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (lat, err) = joined.map_err(Error::internal)?;
        latencies_us.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds("self") - cpu_before;
    latencies_us.sort_unstable();
    let outcome = Outcome {
        elapsed,
        latencies_us,
        errors,
        server_cpu: cpu,
        client_cpu: 0.0,
    };
    println!("{}", scenario_line("audit_append", backend, args, &outcome, 0.0));
    if let Some(schema) = schema {
        let _ = crate::db::drop_schema(&args.postgres_url, &schema).await;
    }
    Ok(())
}

/// Fills a SQLite log with `entries` entries, integrates, exports it as tiles
/// and verifies the export offline, timing each step.
async fn audit_verify(entries: u64) -> Result<()> {
    let (app, dir, _) = fresh_app("sqlite", "").await?;
    let started = Instant::now();
    let mut i = 0u64;
    while i < entries {
        let batch: Vec<_> = (i..entries.min(i + 10_000))
            .map(|n| {
                let bytes = serde_json::to_vec(&sample_entry(n)).unwrap_or_default();
                crate::db::audit::NewAuditEntry {
                    time_ms: crate::clock::now_ms(),
                    tenant_id: None,
                    principal_id: None,
                    kind: EventKind::CardRead.as_str(),
                    outcome: "success",
                    leaf_hash: anshin_crypto::merkle::leaf_hash(&bytes),
                    entry: bytes,
                    subjects: Vec::new(),
                }
            })
            .collect();
        i += batch.len() as u64;
        app.store.audit_append(batch).await?;
    }
    let filled = started.elapsed();
    let started = Instant::now();
    let out = dir.path().join("export");
    let (head, tiles) = super::audit::write_export(&app, &out, indicatif::ProgressBar::hidden()).await?;
    let exported = started.elapsed();
    let started = Instant::now();
    let checkpoint = anshin_crypto::note::Checkpoint::open(
        head.checkpoint.as_bytes(),
        app.audit.origin(),
        std::slice::from_ref(app.audit.verifier()),
    )
    .map_err(Error::internal)?;
    let report = super::audit::verify_dir(&out, &checkpoint, None)?;
    let verified = started.elapsed();
    let round = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "scenario": "audit_verify",
            "backend": "sqlite",
            "entries": head.size,
            "tiles": tiles,
            "ok": report.is_ok(),
            "fill_seconds": round(filled),
            "integrate_and_export_seconds": round(exported),
            "verify_seconds": round(verified),
            "verify_entries_per_sec": (head.size as f64 / verified.as_secs_f64()).round(),
        })
    );
    Ok(())
}

async fn scenarios(server: &Server, backend: &str, args: &BenchArgs) -> Result<()> {
    let setup = Client::connect(server.addr.clone()).await?;
    let tenant = setup
        .call(
            Method::POST,
            "/v1/tenants",
            &server.operator_key,
            Some(json!({"name": "bench"})),
        )
        .await?;
    let tenant_id = tenant["id"].as_str().unwrap_or_default().to_owned();
    let shop = setup
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant_id}/shops"),
            &server.operator_key,
            Some(json!({"name": "bench shop"})),
        )
        .await?;
    let principal = |role: &str| json!({"name": format!("bench {role}"), "role": role, "tenant_id": tenant_id, "shop_id": if role == "shop" { shop["id"].clone() } else { Value::Null }});
    let shop_key = setup
        .call(
            Method::POST,
            "/v1/principals",
            &server.operator_key,
            Some(principal("shop")),
        )
        .await?["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let processor_key = setup
        .call(
            Method::POST,
            "/v1/principals",
            &server.operator_key,
            Some(principal("processor")),
        )
        .await?["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let shop_key: Arc<str> = shop_key.into();
    let processor_key: Arc<str> = processor_key.into();
    let duration = Duration::from_secs_f64(args.seconds);

    let tokenize = drive(server, args.clients, duration, {
        let key = shop_key.clone();
        move |seq: &mut Sequence| {
            (
                Method::POST,
                "/v1/cards".to_owned(),
                key.clone(),
                Some(card_body(seq)),
            )
        }
    })
    .await?;
    report("tokenize", backend, args, &tokenize, server);

    // Tokens to read: tokenize a fixed set.
    let mut tokens = Vec::with_capacity(PREFILL);
    let mut seq = Sequence(7);
    for _ in 0..PREFILL {
        let card = setup
            .call(Method::POST, "/v1/cards", &shop_key, Some(card_body(&mut seq)))
            .await?;
        tokens.push(card["token"].as_str().unwrap_or_default().to_owned());
    }
    let tokens: Arc<Vec<String>> = Arc::new(tokens);

    let reads = drive(server, args.clients, duration, {
        let (key, tokens) = (shop_key.clone(), tokens.clone());
        move |seq: &mut Sequence| {
            (
                Method::GET,
                format!("/v1/cards/{}", tokens[seq.below(tokens.len())]),
                key.clone(),
                None,
            )
        }
    })
    .await?;
    report("masked_read", backend, args, &reads, server);

    let reveals = drive(server, args.clients, duration, {
        let (key, tokens) = (processor_key.clone(), tokens.clone());
        move |seq: &mut Sequence| {
            (
                Method::POST,
                format!("/v1/cards/{}/reveal", tokens[seq.below(tokens.len())]),
                key.clone(),
                None,
            )
        }
    })
    .await?;
    report("reveal", backend, args, &reveals, server);

    rewrap(server, backend, args, &setup, &tenant_id, {
        let (key, tokens) = (shop_key.clone(), tokens.clone());
        move |seq: &mut Sequence| {
            (
                Method::GET,
                format!("/v1/cards/{}", tokens[seq.below(tokens.len())]),
                key.clone(),
                None,
            )
        }
    })
    .await
}

/// Rotates the tenant's KEK through the API (request, then a second operator
/// approves) and re-wraps all its data keys in process while `reads` run.
async fn rewrap<F>(
    server: &Server,
    backend: &str,
    args: &BenchArgs,
    setup: &Client,
    tenant: &str,
    reads: F,
) -> Result<()>
where
    F: Fn(&mut Sequence) -> Plan + Clone + Send + 'static,
{
    let second = setup
        .call(
            Method::POST,
            "/v1/principals",
            &server.operator_key,
            Some(json!({"name": "bench second operator", "role": "operator"})),
        )
        .await?["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let request = setup
        .call(
            Method::POST,
            "/v1/keys/requests",
            &server.operator_key,
            Some(json!({"operation": "rotate", "reason": "bench", "tenant_id": tenant})),
        )
        .await?;
    let id = request["id"].as_str().unwrap_or_default();
    setup
        .call(
            Method::POST,
            &format!("/v1/keys/requests/{id}/approve"),
            &second,
            None,
        )
        .await?;
    let app = App::open(&server.location).await?;
    let duration = Duration::from_secs_f64(args.seconds);
    let reading = tokio::spawn(drive_owned(
        server.addr.clone(),
        server.child.id(),
        args.clients,
        duration,
        reads,
    ));
    let started = Instant::now();
    let records = app.rewrap_all(Duration::ZERO, |_| {}).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let reads = reading.await.map_err(Error::internal)??;
    println!(
        "{}",
        json!({
            "scenario": "rewrap",
            "backend": backend,
            "records": records,
            "seconds": (elapsed * 1000.0).round() / 1000.0,
            "per_second": (records as f64 / elapsed).round(),
            "reads_meanwhile_per_second": (reads.latencies_us.len() as f64 / reads.elapsed.as_secs_f64()).round(),
            "read_errors": reads.errors,
            "clients": args.clients,
        })
    );
    Ok(())
}

/// A random Luhn-valid 16-digit Visa-range number.
fn card_body(seq: &mut Sequence) -> Value {
    let mut digits = format!("4{:014}", seq.next() % 100_000_000_000_000).into_bytes();
    digits.push(luhn_check_digit(&digits));
    let number = String::from_utf8(digits).unwrap_or_default();
    json!({"number": number, "exp_month": 12, "exp_year": 2030, "holder_name": "BENCH HOLDER"})
}

pub(super) struct Outcome {
    pub(super) elapsed: Duration,
    pub(super) latencies_us: Vec<u32>,
    pub(super) errors: u64,
    /// CPU seconds (user + system) the server and this load generator spent.
    pub(super) server_cpu: f64,
    pub(super) client_cpu: f64,
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
pub(super) fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / CLOCK_TICKS_PER_SECOND
}

/// Linux reports CPU time in USER_HZ ticks, 100 per second on every mainstream architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

type Plan = (Method, String, Arc<str>, Option<Value>);

/// Runs `clients` connections for `duration`, each issuing the next request of
/// `plan` as soon as the previous one is answered.
async fn drive<F>(server: &Server, clients: usize, duration: Duration, plan: F) -> Result<Outcome>
where
    F: Fn(&mut Sequence) -> Plan + Clone + Send + 'static,
{
    drive_owned(server.addr.clone(), server.child.id(), clients, duration, plan).await
}

/// [`drive`] on owned values, so it can run in a task of its own.
async fn drive_owned<F>(
    addr: String,
    server_pid: Option<u32>,
    clients: usize,
    duration: Duration,
    plan: F,
) -> Result<Outcome>
where
    F: Fn(&mut Sequence) -> Plan + Clone + Send + 'static,
{
    let server_pid = server_pid.map(|p| p.to_string()).unwrap_or_default();
    let (server_before, client_before) = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for client_index in 0..clients {
        let client = Client::connect(addr.clone()).await?;
        let plan = plan.clone();
        tasks.spawn(async move {
            let mut seq = Sequence(client_index as u64 * 7919 + 1);
            let mut latencies = Vec::with_capacity(4096);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let (method, path, key, body) = plan(&mut seq);
                let sent = Instant::now();
                match client.send(method, &path, &key, body).await {
                    Ok((status, _)) if status.is_success() => {
                        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (lat, err) = joined.map_err(Error::internal)?;
        latencies_us.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    let (server_cpu, client_cpu) = (
        cpu_seconds(&server_pid) - server_before,
        cpu_seconds("self") - client_before,
    );
    latencies_us.sort_unstable();
    Ok(Outcome {
        elapsed,
        latencies_us,
        errors,
        server_cpu,
        client_cpu,
    })
}

fn report(scenario: &str, backend: &str, args: &BenchArgs, outcome: &Outcome, server: &Server) {
    println!(
        "{}",
        scenario_line(scenario, backend, args, outcome, server.peak_rss_mb())
    );
}

/// One scenario's JSON line. For in-process scenarios the "server" CPU is this
/// process's, and its peak memory is not measured (0).
pub(super) fn scenario_line(
    scenario: &str,
    backend: &str,
    args: &BenchArgs,
    outcome: &Outcome,
    peak_rss_mb: f64,
) -> Value {
    let percentile = |p| percentile(&outcome.latencies_us, p);
    json!({
        "scenario": scenario,
        "backend": backend,
        "clients": args.clients,
        "seconds": (outcome.elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "requests": outcome.latencies_us.len(),
        "errors": outcome.errors,
        "ops_per_sec": (outcome.latencies_us.len() as f64 / outcome.elapsed.as_secs_f64()).round(),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "server_peak_rss_mb": peak_rss_mb,
        "server_cpu_us_per_op": per_op(outcome.server_cpu, outcome.latencies_us.len()),
        "client_cpu_us_per_op": per_op(outcome.client_cpu, outcome.latencies_us.len()),
    })
}

/// The `p` quantile (0 to 1) of sorted latencies in µs, in ms.
pub(super) fn percentile(latencies_us: &[u32], p: f64) -> f64 {
    if latencies_us.is_empty() {
        return 0.0;
    }
    let index = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(latencies_us[index]) / 1000.0
}

fn per_op(cpu_seconds: f64, ops: usize) -> f64 {
    if ops == 0 {
        0.0
    } else {
        (cpu_seconds * 1e6 / ops as f64).round()
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Client {
    sender: tokio::sync::Mutex<http1::SendRequest<Full<Bytes>>>,
    addr: String,
}

impl Client {
    async fn connect(addr: String) -> Result<Self> {
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| bench_error("cannot connect to the server").with_cause(e))?;
        stream.set_nodelay(true).map_err(Error::internal)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bench_error("HTTP handshake failed").with_cause(e))?;
        tokio::spawn(connection);
        Ok(Self {
            sender: tokio::sync::Mutex::new(sender),
            addr,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.as_str())
            .header("authorization", format!("Bearer {key}"));
        let payload = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&body).map_err(Error::internal)?)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload)).map_err(Error::internal)?;
        let mut sender = self.sender.lock().await;
        sender
            .ready()
            .await
            .map_err(|e| bench_error("connection closed").with_cause(e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| bench_error("request failed").with_cause(e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| bench_error("body failed").with_cause(e))?
            .to_bytes();
        Ok((status, body))
    }

    /// A setup call that must succeed; returns the JSON answer.
    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Result<Value> {
        let (status, bytes) = self.send(method, path, key, body).await?;
        if !status.is_success() {
            return Err(bench_error("a setup request was refused")
                .with_cause(std::io::Error::other(format!("{path}: {status}"))));
        }
        serde_json::from_slice(&bytes).map_err(Error::internal)
    }
}

fn bench_error(message: &'static str) -> Error {
    Error::new(ErrorKind::Unavailable, "bench_failed", message)
}

/// An `anshin serve` child process on a fresh store.
struct Server {
    child: Child,
    addr: String,
    operator_key: String,
    /// Where its data lives, for in-process work on the same store.
    location: Location,
    _data_dir: tempfile::TempDir,
    pg_schema: Option<(String, String)>,
}

impl Server {
    async fn start(backend: &str, postgres_url: &str) -> Result<Self> {
        let data_dir = tempfile::tempdir().map_err(Error::internal)?;
        let exe = std::env::current_exe().map_err(Error::internal)?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env("ANSHIN_LOG", "warn")
            .env_remove("ANSHIN_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut location = Location {
            data_dir: data_dir.path().to_owned(),
            database_url: None,
        };
        let pg_schema = if backend == "postgres" {
            let schema = format!("anshin_bench_{}", std::process::id());
            let url = crate::db::schema_url(postgres_url, &schema)
                .await
                .map_err(Error::from)?;
            command.env("ANSHIN_DATABASE_URL", &url);
            location.database_url = Some(url);
            Some((postgres_url.to_owned(), schema))
        } else {
            command.env_remove("ANSHIN_DATABASE_URL");
            None
        };
        let mut child = command
            .spawn()
            .map_err(|e| bench_error("cannot start anshin serve").with_cause(e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| bench_error("no server output"))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut key, mut addr) = (None, None);
        while let Some(line) = lines.next_line().await.map_err(Error::internal)? {
            if let Some(found) = line.trim().strip_prefix("anshin_sk_") {
                key = Some(format!("anshin_sk_{found}"));
            }
            if let Some(rest) = line.strip_prefix("anshin listening on http://") {
                addr = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        let (Some(operator_key), Some(addr)) = (key, addr) else {
            return Err(bench_error(
                "anshin serve did not start; run it by hand to see why",
            ));
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addr,
            operator_key,
            location,
            _data_dir: data_dir,
            pg_schema,
        })
    }

    fn peak_rss_mb(&self) -> f64 {
        let Some(pid) = self.child.id() else { return 0.0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        (kb / 1024.0 * 10.0).round() / 10.0
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some((url, schema)) = self.pg_schema.take() {
            let _ = crate::db::drop_schema(&url, &schema).await;
        }
    }
}
