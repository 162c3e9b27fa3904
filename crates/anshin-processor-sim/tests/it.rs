//! The simulator over real TLS: a hyper + rustls client that trusts only the
//! simulator's generated CA, with certificate verification on.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anshin_processor_sim::{Config, Simulator};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const CVC: &str = "987";

struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// A client that trusts exactly the CA in `ca_pem`, with verification on.
fn client_trusting(ca_pem: &str, base: &str) -> Client {
    client_with(
        anshin_processor_sim::client_tls_config(ca_pem).expect("client config"),
        base,
    )
}

fn client_with(config: rustls::ClientConfig, base: &str) -> Client {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Client {
        http: HyperClient::builder(TokioExecutor::new()).build(connector),
        base: base.to_owned(),
    }
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let url = if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self.http.request(request).await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> Answer {
        let headers = [("idempotency-key", key), ("content-type", "application/json")];
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string()))
            .await
            .expect("request")
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Bytes::new())
            .await
            .expect("request")
    }

    async fn form(&self, url: &str, form: &str) -> Answer {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.send(Method::POST, url, &headers, Bytes::from(form.to_owned()))
            .await
            .expect("request")
    }
}

fn card(number: &str, cvc: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2030, "cvc": cvc, "holder_name": "YAMADA HANAKO"})
}

fn authorize_body(number: &str, amount: u64, capture: bool) -> Value {
    json!({"amount": amount, "currency": "JPY", "capture": capture, "card": card(number, CVC), "reference": "order-1"})
}

async fn start(config: Config) -> (Simulator, Client) {
    let sim = Simulator::start(config).await.expect("start");
    let client = client_with(sim.client_tls_config().expect("client config"), sim.url());
    (sim, client)
}

fn id(answer: &Answer) -> String {
    answer.json()["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn authorize_capture_refund_over_verified_tls() {
    let (sim, c) = start(Config::default()).await;
    let auth = c
        .post("/v1/payments", "a1", &authorize_body(VISA, 5000, false))
        .await;
    assert_eq!(auth.status, 200, "{}", auth.text);
    let body = auth.json();
    assert_eq!(body["status"], "authorized");
    assert_eq!(
        (body["card"]["brand"].as_str(), body["card"]["last4"].as_str()),
        (Some("visa"), Some("1111"))
    );
    assert_eq!(body["amount_capturable"], 5000);
    let pay = id(&auth);

    let capture = c
        .post(
            &format!("/v1/payments/{pay}/capture"),
            "c1",
            &json!({"amount": 3000}),
        )
        .await;
    assert_eq!(capture.status, 200, "{}", capture.text);
    assert_eq!(
        (
            capture.json()["amount_captured"].as_u64(),
            capture.json()["amount_capturable"].as_u64()
        ),
        (Some(3000), Some(0))
    );
    let again = c
        .post(
            &format!("/v1/payments/{pay}/capture"),
            "c2",
            &json!({"amount": 2000}),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let void = c
        .post(&format!("/v1/payments/{pay}/void"), "v1", &json!({}))
        .await;
    assert_eq!(void.status, 409, "a captured payment cannot be voided");

    let refund = c
        .post(
            &format!("/v1/payments/{pay}/refunds"),
            "r1",
            &json!({"amount": 1000}),
        )
        .await;
    assert_eq!(refund.json()["status"], "partially_refunded");
    let too_much = c
        .post(
            &format!("/v1/payments/{pay}/refunds"),
            "r2",
            &json!({"amount": 2001}),
        )
        .await;
    assert_eq!(
        (too_much.status, too_much.json()["error"]["code"].as_str()),
        (422, Some("amount_too_large"))
    );
    let rest = c
        .post(&format!("/v1/payments/{pay}/refunds"), "r3", &json!({}))
        .await;
    assert_eq!(
        (
            rest.json()["status"].as_str(),
            rest.json()["amount_refunded"].as_u64()
        ),
        (Some("refunded"), Some(3000))
    );
    assert_eq!(
        c.get(&format!("/v1/payments/{pay}")).await.json()["refunds"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let voidable = id(&c
        .post("/v1/payments", "a2", &authorize_body(VISA, 100, false))
        .await);
    assert_eq!(
        c.post(&format!("/v1/payments/{voidable}/void"), "v2", &json!({}))
            .await
            .json()["status"],
        "voided"
    );
    let dead = c
        .post(&format!("/v1/payments/{voidable}/capture"), "c3", &json!({}))
        .await;
    assert_eq!(dead.status, 409, "a voided authorization cannot be captured");
    assert_eq!(c.get("/v1/payments/pay_nope").await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let (sim, _) = start(Config::default()).await;
    let other = Simulator::start(Config::default()).await.expect("other");
    let stranger = client_trusting(other.ca_pem(), sim.url());
    let err = stranger
        .send(Method::GET, "/v1/health", &[], Bytes::new())
        .await
        .err()
        .expect("verification must fail");
    assert!(err.contains("InvalidCertificate"), "{err}");
}

#[tokio::test]
async fn idempotency_keys_over_http() {
    let (sim, c) = start(Config::default()).await;
    let body = authorize_body(VISA, 1200, true);
    let first = c.post("/v1/payments", "same", &body).await;
    let second = c.post("/v1/payments", "same", &body).await;
    assert_eq!(first.text, second.text, "same key, same body: same answer");
    assert_eq!(
        second.headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let changed = c
        .post("/v1/payments", "same", &authorize_body(VISA, 1300, true))
        .await;
    assert_eq!(
        (changed.status, changed.json()["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    // Declines replay too: a retry never turns a decline into an approval.
    let declined = c
        .post(
            "/v1/payments",
            "d",
            &authorize_body("4000000000009995", 100, true),
        )
        .await;
    assert_eq!(declined.status, 402);
    assert_eq!(
        c.post(
            "/v1/payments",
            "d",
            &authorize_body("4000000000009995", 100, true)
        )
        .await
        .text,
        declined.text
    );
    let missing = c
        .send(Method::POST, "/v1/payments", &[], Bytes::from(body.to_string()))
        .await
        .expect("request");
    assert_eq!(
        (missing.status, missing.json()["error"]["code"].as_str()),
        (400, Some("idempotency_key_missing"))
    );
    let pay = id(&first);
    let same_key_other_path = c
        .post(&format!("/v1/payments/{pay}/refunds"), "same", &json!({}))
        .await;
    assert_eq!(same_key_other_path.status, 409, "a key belongs to one request");
    sim.shutdown().await;
}

#[tokio::test]
async fn idempotency_keys_lapse() {
    let config = Config {
        idempotency_ttl: Duration::from_secs(1),
        ..Config::default()
    };
    let (sim, c) = start(config).await;
    let first = c
        .post("/v1/payments", "k", &authorize_body(VISA, 100, true))
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = c
        .post("/v1/payments", "k", &authorize_body(VISA, 200, true))
        .await;
    assert_eq!(
        later.status, 200,
        "a lapsed key may be used again: {}",
        later.text
    );
    assert_ne!(id(&first), id(&later));
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_stable_codes_and_no_echo() {
    let (sim, c) = start(Config::default()).await;
    let numeric = json!({"amount": 100, "currency": "JPY", "card": {"number": 4111111111111111u64, "exp_month": 1, "exp_year": 2030}});
    let bad = c.post("/v1/payments", "m1", &numeric).await;
    assert_eq!(
        (bad.status, bad.json()["error"]["param"].as_str()),
        (400, Some("card.number"))
    );
    assert!(!bad.text.contains("4111"), "{}", bad.text);
    let yen_fraction = json!({"amount": 10.5, "currency": "JPY", "card": card(VISA, CVC)});
    assert_eq!(
        c.post("/v1/payments", "m2", &yen_fraction).await.json()["error"]["param"],
        "amount"
    );
    let huge = Bytes::from(vec![b' '; 20_000]);
    let too_big = c
        .send(Method::POST, "/v1/payments", &[("idempotency-key", "m3")], huge)
        .await
        .expect("request");
    assert_eq!(too_big.status, 413);
    assert_eq!(c.get("/nowhere").await.json()["error"]["code"], "not_found");
    sim.shutdown().await;
}

#[tokio::test]
async fn api_key_when_configured() {
    let config = Config {
        api_key: Some(anshin_crypto::secret::SecretString::new("sk_sim_test".into())),
        ..Config::default()
    };
    let (sim, c) = start(config).await;
    let body = authorize_body(VISA, 100, true).to_string();
    let without = c
        .send(
            Method::POST,
            "/v1/payments",
            &[("idempotency-key", "x")],
            Bytes::from(body.clone()),
        )
        .await
        .expect("request");
    assert_eq!(
        (without.status, without.json()["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let with = c
        .send(
            Method::POST,
            "/v1/payments",
            &[("idempotency-key", "x"), ("authorization", "Bearer sk_sim_test")],
            Bytes::from(body),
        )
        .await
        .expect("request");
    assert_eq!(with.status, 200, "{}", with.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn three_ds_challenge_with_form_posts_and_return_url() {
    let (sim, c) = start(Config::default()).await;
    let mut body = authorize_body("4000000000003220", 2500, false);
    body["three_ds"] = json!({"return_url": "https://shop.example:8443/checkout/return?order=1"});
    let auth = c.post("/v1/payments", "3ds1", &body).await;
    let auth_body = auth.json();
    assert_eq!(
        (auth.status, auth_body["status"].as_str()),
        (200, Some("challenge_required"))
    );
    let pay = id(&auth);
    let three_ds_id = auth_body["three_ds"]["id"].as_str().expect("3ds id").to_owned();
    let challenge_url = auth_body["three_ds"]["challenge_url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(challenge_url.starts_with(sim.url()));

    let early = c
        .post(&format!("/v1/payments/{pay}/complete"), "cm0", &json!({}))
        .await;
    assert_eq!(
        (early.status, early.json()["error"]["code"].as_str()),
        (409, Some("authentication_pending"))
    );
    let capture_early = c
        .post(&format!("/v1/payments/{pay}/capture"), "cp0", &json!({}))
        .await;
    assert_eq!(
        capture_early.status, 409,
        "nothing to capture before authentication"
    );

    let page = c.get(&challenge_url).await;
    assert_eq!(page.status, 200);
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self' https://shop.example:8443"),
        "{csp}"
    );
    assert!(
        !csp.contains("frame-ancestors"),
        "the challenge may be shown in an iframe: {csp}"
    );
    assert!(
        page.text.contains(r#"<label for="code">"#) && page.text.contains("VISA •••• 3220"),
        "{}",
        page.text
    );
    assert!(page.text.contains("2,500 JPY"));
    assert!(!page.text.contains("<script"), "no script on the ACS page");
    let css = c.get(&format!("{}/acs/style.css", sim.url())).await;
    assert_eq!(
        css.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/css; charset=utf-8"[..])
    );

    let wrong = c.form(&challenge_url, "code=000000&action=submit").await;
    assert_eq!(wrong.status, 200);
    assert!(
        wrong.text.contains(r#"role="alert""#) && wrong.text.contains("2 attempt(s) left"),
        "{}",
        wrong.text
    );
    assert_eq!(
        c.get(&format!("/v1/3ds/{three_ds_id}")).await.json()["status"],
        "pending"
    );

    let right = c.form(&challenge_url, "code=123456&action=submit").await;
    assert_eq!(right.status, 303);
    let location = right
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    assert_eq!(
        location,
        format!(
            "https://shop.example:8443/checkout/return?order=1&payment_id={pay}&three_ds_id={three_ds_id}&three_ds_status=succeeded"
        )
    );
    let polled = c.get(&format!("/v1/3ds/{three_ds_id}")).await.json();
    assert_eq!(
        (polled["status"].as_str(), polled["eci"].as_str()),
        (Some("succeeded"), Some("05"))
    );
    assert!(polled["challenge_url"].is_null());

    let done = c
        .post(&format!("/v1/payments/{pay}/complete"), "cm1", &json!({}))
        .await;
    assert_eq!(
        (done.status, done.json()["status"].as_str()),
        (200, Some("authorized"))
    );
    assert_eq!(
        c.post(&format!("/v1/payments/{pay}/capture"), "cp1", &json!({}))
            .await
            .json()["status"],
        "captured"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn three_ds_cancel_and_too_many_wrong_codes_decline() {
    let (sim, c) = start(Config::default()).await;
    // JCB challenge card, no return_url: the ACS ends on its own page and the client polls.
    let auth = c
        .post(
            "/v1/payments",
            "j1",
            &authorize_body("3566002020360505", 800, true),
        )
        .await;
    let url = auth.json()["three_ds"]["challenge_url"]
        .as_str()
        .expect("url")
        .to_owned();
    let csp = c
        .get(&url)
        .await
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(
        csp.is_some_and(|c| c.contains("form-action 'self'; ")),
        "only the ACS itself without a return_url"
    );
    let cancelled = c.form(&url, "code=&action=cancel").await;
    assert_eq!(cancelled.status, 200);
    assert!(cancelled.text.contains("Authentication failed"));
    let pay = id(&auth);
    let done = c
        .post(&format!("/v1/payments/{pay}/complete"), "j2", &json!({}))
        .await;
    assert_eq!(
        (done.status, done.json()["decline_code"].as_str()),
        (402, Some("authentication_failed"))
    );

    let auth = c
        .post(
            "/v1/payments",
            "j3",
            &authorize_body("4000000000003220", 800, true),
        )
        .await;
    let url = auth.json()["three_ds"]["challenge_url"]
        .as_str()
        .expect("url")
        .to_owned();
    for _ in 0..3 {
        c.form(&url, "code=111111&action=submit").await;
    }
    let late = c.form(&url, "code=123456&action=submit").await;
    assert!(
        late.text.contains("Authentication failed"),
        "the right code after three wrong ones is too late"
    );
    let three_ds = auth.json()["three_ds"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        c.get(&format!("/v1/3ds/{three_ds}")).await.json()["status"],
        "failed"
    );
    assert_eq!(c.get(&format!("{}/acs/3ds_unknown", sim.url())).await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_answers_keep_the_key_and_never_charge_twice() {
    let config = Config {
        slow_delay: Duration::from_millis(1500),
        ..Config::default()
    };
    let (sim, c) = start(config).await;
    let body = authorize_body("4000000000000077", 700, true);
    // The client gives up first, as a proxy with a short timeout would.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(300), c.post("/v1/payments", "slow", &body)).await;
    assert!(
        gave_up.is_err(),
        "the answer must be slower than the client's timeout"
    );
    let busy = c.post("/v1/payments", "slow", &body).await;
    assert_eq!(
        (busy.status, busy.json()["error"]["code"].as_str()),
        (409, Some("idempotency_key_in_use"))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let replay = c.post("/v1/payments", "slow", &body).await;
    assert_eq!(
        (replay.status, replay.json()["status"].as_str()),
        (200, Some("captured"))
    );
    assert_eq!(
        replay.headers.get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );

    let failing = authorize_body("4000000000000507", 700, true);
    let first = c.post("/v1/payments", "fail", &failing).await;
    assert_eq!(
        (first.status, first.json()["error"]["code"].as_str()),
        (500, Some("processor_error"))
    );
    let retry = c.post("/v1/payments", "fail", &failing).await;
    assert_eq!(
        retry.status, 500,
        "a 5xx is not stored: the retry is processed again"
    );
    assert!(retry.headers.get("idempotent-replayed").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn uncaptured_authorizations_expire() {
    let config = Config {
        authorization_ttl: Duration::from_secs(1),
        ..Config::default()
    };
    let (sim, c) = start(config).await;
    let pay = id(&c
        .post("/v1/payments", "e1", &authorize_body(VISA, 100, false))
        .await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        c.get(&format!("/v1/payments/{pay}")).await.json()["status"],
        "expired"
    );
    let capture = c
        .post(&format!("/v1/payments/{pay}/capture"), "e2", &json!({}))
        .await;
    assert_eq!(
        (capture.status, capture.json()["error"]["code"].as_str()),
        (409, Some("authorization_expired"))
    );
    sim.shutdown().await;
}

/// A writer the log subscriber appends to, for searching afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The card number and security code arrive (the record proves it), but no
/// log line, answer or page carries them.
#[tokio::test(flavor = "current_thread")]
async fn card_data_is_fingerprinted_never_logged_or_echoed() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (sim, c) = start(Config::default()).await;
    let mut answers = String::new();
    let auth = c
        .post("/v1/payments", "l1", &authorize_body(VISA, 900, false))
        .await;
    answers.push_str(&auth.text);
    let pay = id(&auth);
    answers.push_str(
        &c.post(&format!("/v1/payments/{pay}/capture"), "l2", &json!({}))
            .await
            .text,
    );
    answers.push_str(
        &c.post(
            &format!("/v1/payments/{pay}/refunds"),
            "l3",
            &json!({"amount": 1}),
        )
        .await
        .text,
    );
    let challenge = c
        .post(
            "/v1/payments",
            "l4",
            &authorize_body("4000000000003220", 900, true),
        )
        .await;
    answers.push_str(&challenge.text);
    let url = challenge.json()["three_ds"]["challenge_url"]
        .as_str()
        .expect("url")
        .to_owned();
    answers.push_str(&c.get(&url).await.text);
    answers.push_str(&c.form(&url, "code=123456&action=submit").await.text);
    answers.push_str(
        &c.post(
            "/v1/payments",
            "l5",
            &authorize_body("4000000000000002", 900, false),
        )
        .await
        .text,
    );
    let mut invalid = authorize_body("4111111111111112", 900, false);
    invalid["card"]["cvc"] = json!("12");
    answers.push_str(&c.post("/v1/payments", "l6", &invalid).await.text);

    // What arrived, as fingerprints: from the library and from the test API.
    let received = sim.received(&pay).expect("received");
    assert_eq!(received.pan_fingerprint, sim.pan_fingerprint(VISA));
    assert_eq!(received.cvc_fingerprint, Some(sim.cvc_fingerprint(CVC)));
    assert_ne!(received.pan_fingerprint, sim.pan_fingerprint("4000000000000002"));
    let over_http = c.get(&format!("/_sim/received/{pay}")).await.json();
    assert_eq!(
        over_http["pan_fingerprint"].as_str(),
        Some(received.pan_fingerprint.as_str())
    );
    assert_eq!(
        (over_http["brand"].as_str(), over_http["last4"].as_str()),
        (Some("visa"), Some("1111"))
    );
    let computed = c
        .post(
            "/_sim/fingerprint",
            "-",
            &json!({"card_number": VISA, "cvc": CVC}),
        )
        .await
        .json();
    assert_eq!(computed["pan_fingerprint"], over_http["pan_fingerprint"]);
    assert_eq!(computed["cvc_fingerprint"], over_http["cvc_fingerprint"]);
    sim.shutdown().await;

    let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
    assert!(
        logs.contains("authorization") && logs.contains("transition"),
        "the simulator does log: {logs}"
    );
    for secret in [
        VISA,
        "4111111111111112",
        "4000000000003220",
        "4000000000000002",
        "YAMADA",
    ] {
        assert!(!logs.contains(secret), "a log line carries {secret}");
        assert!(!answers.contains(secret), "an answer carries {secret}");
    }
    assert!(!holds_number(&logs, CVC), "a log line carries the security code");
    assert!(
        !holds_number(&answers, CVC),
        "an answer carries the security code"
    );
}

/// Whether `text` holds `digits` as a number of its own, with no digit just
/// before or after it. Ports, timestamps and durations hold any three digits
/// now and then (a log line's time, 22:30:56.987953, failed this test); a
/// leaked security code stands alone.
fn holds_number(text: &str, digits: &str) -> bool {
    text.match_indices(digits).any(|(at, _)| {
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        !digit(text[..at].chars().next_back()) && !digit(text[at + digits.len()..].chars().next())
    })
}

#[test]
fn a_number_of_its_own_is_told_from_digits_inside_a_longer_one() {
    assert!(holds_number("cvc=987 ok", "987"));
    assert!(holds_number("\"987\"", "987"));
    assert!(holds_number("987", "987"));
    assert!(!holds_number("127.0.0.1:39871", "987"));
    assert!(!holds_number("22:30:56.987953Z", "987"));
    assert!(!holds_number("9870", "987"));
}

/// The binary: starts on a free port, writes its CA, answers over TLS.
#[tokio::test]
async fn binary_writes_its_ca_and_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anshin-processor-sim"))
        .args(["--listen", "127.0.0.1:0", "--json", "--ca-file"])
        .arg(&ca_file)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("first line");
    let started: Value = serde_json::from_str(&line).expect("JSON start line");
    let url = started["url"].as_str().expect("url");
    assert_eq!(started["ca_file"].as_str(), ca_file.to_str());
    let ca = std::fs::read_to_string(&ca_file).expect("CA file");
    let c = client_trusting(&ca, url);
    let health = c.get("/v1/health").await;
    let auth = c
        .post("/v1/payments", "bin", &authorize_body(VISA, 100, true))
        .await;
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(auth.json()["status"], "captured");
}

#[test]
fn binary_help_has_examples() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anshin-processor-sim"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Examples:") && text.contains("--ca-file") && text.contains("Exit codes"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_anshin-processor-sim"))
        .arg("--listen=nonsense")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
}
