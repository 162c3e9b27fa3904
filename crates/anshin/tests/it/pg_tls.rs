//! TLS to PostgreSQL (`anshin::db::pg_connect`): libpq's `sslmode` and
//! `sslrootcert` against a real TLS peer, through `anshin scan` and the store.
//!
//! The test PostgreSQL may run with or without TLS (Debian's packages turn it
//! on with a self-signed certificate), so each test puts a proxy in front of
//! it that does what a PostgreSQL server does with `ssl = on`: it answers the
//! client's SSLRequest with 'S', completes a real TLS handshake (rustls, a
//! certificate for `localhost` only, from the processor simulator's test CA)
//! and carries the protocol on to the server in clear. A proxy without TLS
//! answers 'N', as a server with `ssl = off` does. A client that does not ask
//! for TLS is carried on in clear. The proxy counts both, so a test can tell
//! that the bytes were encrypted, not only that the connection worked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anshin_processor_sim::tls::TestCa;
use anshin_scan::test_support::luhn_complete;
use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{TestApp, postgres_available, postgres_url};
use crate::scan::{anshin_scan, card_mask, jsonl};

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[derive(Default)]
struct Counts {
    tls: AtomicUsize,
    plain: AtomicUsize,
}

struct Proxy {
    port: u16,
    counts: Arc<Counts>,
    /// The CA that signed the proxy's certificate, and another one.
    ca: PathBuf,
    other_ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// With TLS, or (`tls` false) answering every TLS request "no".
    async fn start(tls: bool) -> Self {
        let config: tokio_postgres::Config = postgres_url().parse().expect("test URL");
        let upstream = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            tokio_postgres::config::Host::Unix(_) => panic!("the TLS tests need PostgreSQL over TCP"),
        };
        let upstream = (upstream, config.get_ports().first().copied().unwrap_or(5432));
        let ca = TestCa::generate(&["localhost".to_owned()]).expect("test CA");
        let other = TestCa::generate(&["localhost".to_owned()]).expect("test CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_path, other_path) = (dir.path().join("ca.pem"), dir.path().join("other-ca.pem"));
        std::fs::write(&ca_path, ca.ca_pem()).expect("write CA");
        std::fs::write(&other_path, other.ca_pem()).expect("write CA");
        let acceptor = tls.then(|| tokio_rustls::TlsAcceptor::from(ca.server_config()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let counts = Arc::new(Counts::default());
        let seen = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream, seen) = (acceptor.clone(), upstream.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let _ = carry(client, acceptor, upstream, &seen).await;
                });
            }
        });
        Self {
            port,
            counts,
            ca: ca_path,
            other_ca: other_path,
            _dir: dir,
        }
    }

    /// The test database through the proxy, by `host`, with these parameters.
    fn url(&self, host: &str, params: &str) -> String {
        let config: tokio_postgres::Config = postgres_url().parse().expect("test URL");
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| {
                format!(
                    ":{}",
                    percent_encoding::utf8_percent_encode(
                        &String::from_utf8_lossy(p),
                        percent_encoding::NON_ALPHANUMERIC
                    )
                )
            })
            .unwrap_or_default();
        let db = config.get_dbname().unwrap_or(user);
        format!("postgres://{user}{password}@{host}:{}/{db}?{params}", self.port)
    }

    /// The URL under `sslmode` with `ca` as sslrootcert.
    fn with_ca(&self, host: &str, mode: &str, ca: &Path) -> String {
        self.url(host, &format!("sslmode={mode}&sslrootcert={}", ca.display()))
    }

    fn tls(&self) -> usize {
        self.counts.tls.load(Ordering::SeqCst)
    }

    fn plain(&self) -> usize {
        self.counts.plain.load(Ordering::SeqCst)
    }
}

async fn carry(
    mut client: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    upstream: (String, u16),
    counts: &Counts,
) -> std::io::Result<()> {
    let mut first = [0u8; 8];
    client.read_exact(&mut first).await?;
    let mut server = TcpStream::connect(upstream).await?;
    let asks_tls = first == SSL_REQUEST;
    if asks_tls && let Some(acceptor) = acceptor {
        client.write_all(b"S").await?;
        let mut tls = acceptor.accept(client).await?;
        counts.tls.fetch_add(1, Ordering::SeqCst);
        tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
        return Ok(());
    }
    counts.plain.fetch_add(1, Ordering::SeqCst);
    if asks_tls {
        client.write_all(b"N").await?;
    } else {
        server.write_all(&first).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// A table with one card number in a schema of its own; dropped on drop.
struct Planted {
    schema: String,
    card: String,
}

impl Planted {
    async fn new() -> Self {
        let id = anshin::ids::TenantId::generate().expect("rng");
        let schema = format!("anshin_tls_it_{}", &id.as_str()[4..]).to_lowercase();
        let card = luhn_complete("4532", 16);
        let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; CREATE TABLE {schema}.customers (id bigint PRIMARY KEY, card_number text)"
            ))
            .await
            .expect("schema");
        client
            .execute(
                &format!("INSERT INTO {schema}.customers VALUES (1, $1)"),
                &[&card],
            )
            .await
            .expect("insert");
        Self { schema, card }
    }

    fn table(&self) -> String {
        format!("{}.customers", self.schema)
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop may run inside the test's runtime: a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(anshin::db::drop_schema(&postgres_url(), &schema));
            }
        })
        .join();
    }
}

/// `anshin scan URL --table …`: exit code, standard error, and the masked
/// card numbers found.
fn scan(url: &str, planted: &Planted) -> (Option<i32>, String, Vec<String>) {
    let data = tempfile::tempdir().expect("tempdir");
    let out = anshin_scan(
        data.path(),
        &[url, "--table", &planted.table(), "--format", "jsonl"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let cards = if out.status.success() {
        jsonl(&out)
            .iter()
            .filter(|v| v["type"] == "finding" && v["category"] == "card")
            .filter_map(|v| v["masked"].as_str().map(str::to_owned))
            .collect()
    } else {
        Vec::new()
    };
    (out.status.code(), stderr, cards)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_over_verified_tls_finds_the_planted_card() {
    if !postgres_available().await {
        return;
    }
    let proxy = Proxy::start(true).await;
    let planted = Planted::new().await;
    let url = proxy.with_ca("localhost", "verify-full", &proxy.ca);
    let (code, stderr, cards) = scan(&url, &planted);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(cards, vec![card_mask(&planted.card)]);
    assert!(proxy.tls() >= 1, "the scan went through TLS");
    assert_eq!(proxy.plain(), 0, "nothing in clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_refuses_an_untrusted_ca_and_a_wrong_name_but_verify_ca_takes_the_name() {
    if !postgres_available().await {
        return;
    }
    let proxy = Proxy::start(true).await;
    let planted = Planted::new().await;

    // Signed by a CA the client was not told to trust.
    let url = proxy.with_ca("localhost", "verify-full", &proxy.other_ca);
    let (code, stderr, _) = scan(&url, &planted);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("not signed by a trusted CA"), "{stderr}");
    // sslmode=require with a CA file verifies the chain too (libpq).
    let url = proxy.with_ca("localhost", "require", &proxy.other_ca);
    assert_eq!(scan(&url, &planted).0, Some(4));

    // The certificate names localhost, not 127.0.0.1.
    let url = proxy.with_ca("127.0.0.1", "verify-full", &proxy.ca);
    let (code, stderr, _) = scan(&url, &planted);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("not valid for the host name"), "{stderr}");

    // verify-ca checks the chain, not the name.
    let url = proxy.with_ca("127.0.0.1", "verify-ca", &proxy.ca);
    let (code, stderr, cards) = scan(&url, &planted);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(cards, vec![card_mask(&planted.card)]);
    assert_eq!(proxy.plain(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_requiring_tls_refuses_a_server_without_it_and_disable_never_asks() {
    if !postgres_available().await {
        return;
    }
    let planted = Planted::new().await;
    let no_tls = Proxy::start(false).await;
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = no_tls.with_ca("localhost", mode, &no_tls.ca);
        let (code, stderr, _) = scan(&url, &planted);
        assert_eq!(code, Some(4), "{mode}: {stderr}");
        assert!(stderr.contains("does not offer TLS"), "{mode}: {stderr}");
    }
    // prefer takes clear text when that is all the server offers.
    let (code, stderr, cards) = scan(&no_tls.url("localhost", "sslmode=prefer"), &planted);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(cards, vec![card_mask(&planted.card)]);
    assert_eq!((no_tls.tls(), no_tls.plain()), (0, 4));

    // disable never asks for TLS, even where it is offered.
    let proxy = Proxy::start(true).await;
    let (code, stderr, cards) = scan(&proxy.url("localhost", "sslmode=disable"), &planted);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(cards.len(), 1);
    assert_eq!((proxy.tls(), proxy.plain()), (0, 1));
    // And the default for a server on this machine is libpq's prefer: TLS when
    // offered, the certificate unchecked.
    let (code, stderr, _) = scan(&proxy.url("127.0.0.1", ""), &planted);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!((proxy.tls(), proxy.plain()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_refuses_unknown_tls_parameters_as_usage_errors() {
    if !postgres_available().await {
        return;
    }
    let planted = Planted::new().await;
    let proxy = Proxy::start(true).await;
    for (params, words) in [
        ("sslmode=verify_full", "sslmode must be"),
        ("sslmode=allow", "sslmode must be"),
        ("sslmode=verify-ca", "needs sslrootcert"),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "cannot be read",
        ),
    ] {
        let (code, stderr, _) = scan(&proxy.url("localhost", params), &planted);
        assert_eq!(code, Some(2), "{params}: {stderr}");
        assert!(stderr.contains(words), "{params}: {stderr}");
    }
    assert_eq!(proxy.tls() + proxy.plain(), 0, "refused before connecting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_cards_on_a_postgresql_reached_over_verified_tls() {
    if !postgres_available().await {
        return;
    }
    let proxy = Proxy::start(true).await;
    let url = proxy.with_ca("localhost", "verify-full", &proxy.ca);
    let app = TestApp::on_postgres(&url).await;
    let (tenant, _, key) = app.tenant_with_shop("tls").await;
    let number = luhn_complete("4111", 16);
    let (status, card) = app.tokenize(&key, &number).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = card["token"].as_str().expect("token");
    let processor = app.key("processor", &tenant, None).await;
    let (status, card) = app.reveal(&processor, token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(card["number"] == number.as_str(), "the card reads back");
    assert!(proxy.tls() >= 1);
    assert_eq!(proxy.plain(), 0, "no connection of the store in clear");

    // A server whose certificate the store cannot verify is not used.
    let wrong = proxy.with_ca("localhost", "verify-full", &proxy.other_ca);
    let err = anshin::db::Store::open(&wrong).await.err().expect("refused");
    assert!(matches!(err, anshin::db::StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("not signed by a trusted CA"), "{err}");
    let wrong = proxy.with_ca("127.0.0.1", "verify-full", &proxy.ca);
    let err = anshin::db::Store::open(&wrong).await.err().expect("refused");
    assert!(err.to_string().contains("not valid for the host name"), "{err}");
    let err = anshin::db::Store::open(&proxy.url("localhost", "sslmode=verify_full"))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            anshin::db::StoreError::BadUrl {
                code: "pg_sslmode_invalid",
                ..
            }
        ),
        "{err}"
    );
}

/// The store's own URL (`ANSHIN_DATABASE_URL`, `--database-url`) that
/// cannot be used is a configuration error the message explains, exit 2 as
/// for a scan URL, never `internal`, never with the password; `init` (and
/// `serve`, which initialises an absent directory) leaves neither a root key
/// nor the directory behind. Refused before connecting: no server needed.
#[test]
fn a_store_url_that_cannot_be_used_is_a_configuration_error_without_the_password() {
    let password = "s3cret-Pw";
    let base = format!("postgres://anshin:{password}@127.0.0.1:5432/anshin");
    for (url, words) in [
        (format!("{base}?sslmode=verify_full"), "sslmode must be"),
        (
            format!("postgres://anshin:{password}@127.0.0.1:notaport/anshin"),
            "not a valid PostgreSQL URL",
        ),
        (format!("{base}?sslmode=verify-ca"), "needs sslrootcert"),
        (
            format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            "cannot be read",
        ),
        (
            format!("{base}?sslmode=require&sslcert=/c.pem"),
            "sslcert and sslkey go together",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let by_env = crate::cli::anshin_with(
            &data,
            &["init", "--json"],
            &[("ANSHIN_DATABASE_URL", url.as_str())],
            None,
        );
        let by_flag = crate::cli::anshin(&data, &["serve", "--database-url", &url]);
        for (command, out) in [("init", by_env), ("serve", by_flag)] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let shown = stderr.replace(password, "<password>");
            assert_eq!(out.status.code(), Some(2), "{command} {words}: {shown}");
            assert!(
                stderr.contains("ANSHIN_DATABASE_URL") && stderr.contains(words),
                "{command} {words}: {shown}"
            );
            assert!(!stderr.contains("internal"), "{command}: {shown}");
            assert!(!stderr.contains(password), "{command}: {shown}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains(password));
        }
        assert!(!data.exists(), "no stray root key or data directory");
    }
}
