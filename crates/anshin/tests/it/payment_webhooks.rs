//! Payment webhooks on both backends: a real HTTP receiver on loopback takes
//! the shop's events, checks every signature with the secret the API showed
//! once, and answers what each test needs (500 then 200, …). Delivery rounds
//! run as `anshin serve` runs them (`PaymentWebhooks::deliver_due`), on one
//! node or two over the same store.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anshin::clock;
use anshin::proxy::CheckoutSettings;
use anshin::proxy::webhooks::PaymentWebhooks;
use anshin::webhook::Deliveries;
use anshin_crypto::webhook::WebhookKey;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::checkout::{PUBLIC, pay, with_processor};
use crate::harness::{Backend, TestApp, both_backends};

both_backends!(
    events_reach_the_shop_signed_in_order_with_the_payment_view,
    a_failed_delivery_is_retried_until_the_receiver_takes_it,
    two_nodes_never_send_the_same_event_and_a_restart_loses_none,
    bad_webhook_input_is_refused_with_stable_codes_and_changes_nothing,
    the_secret_is_shown_once_sealed_at_rest_and_rotated_with_overlap,
    only_subscribed_events_are_sent_and_removal_stops_delivery,
    a_payment_stored_in_its_final_state_at_once_is_an_event_too,
    a_stalled_node_cannot_overwrite_the_outcome_of_the_node_that_took_its_event_over,
    every_outcome_of_one_round_is_recorded_together,
);

/// What the receiver got: the signature header and the body, per request.
type Received = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

/// A shop's webhook receiver on loopback.
struct Receiver {
    url: String,
    received: Received,
    /// Statuses to answer, in order; 200 once empty.
    statuses: Arc<Mutex<VecDeque<StatusCode>>>,
    /// When set, the next request waits for it before it is answered.
    hold: Hold,
    task: tokio::task::JoinHandle<()>,
}

type Hold = Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>;

impl Receiver {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let statuses: Arc<Mutex<VecDeque<StatusCode>>> = Arc::default();
        let hold: Hold = Arc::default();
        let app = axum::Router::new().route(
            "/hooks/anshin",
            axum::routing::post({
                let (received, statuses, hold) = (received.clone(), statuses.clone(), hold.clone());
                move |headers: HeaderMap, body: Bytes| async move {
                    let signature = headers
                        .get("anshin-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    received.lock().expect("lock").push((signature, body));
                    let held = hold.lock().expect("lock").take();
                    if let Some(release) = held {
                        let _ = release.await;
                    }
                    statuses
                        .lock()
                        .expect("lock")
                        .pop_front()
                        .unwrap_or(StatusCode::OK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            url: format!("http://127.0.0.1:{}/hooks/anshin", addr.port()),
            received,
            statuses,
            hold,
            task,
        }
    }

    /// Makes the next request wait until the returned sender fires.
    fn hold_next(&self) -> tokio::sync::oneshot::Sender<()> {
        let (release, held) = tokio::sync::oneshot::channel();
        *self.hold.lock().expect("lock") = Some(held);
        release
    }

    /// Waits until `n` requests arrived.
    async fn wait_for(&self, n: usize) {
        for _ in 0..500 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{n} requests did not arrive");
    }

    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// Every request so far, its signature checked with `secret`: the bodies.
    fn verified(&self, secret: &str) -> Vec<Value> {
        let key = WebhookKey::new(secret.as_bytes()).expect("key");
        let now = clock::now_ms() / 1000;
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|(signature, body)| {
                let signature = signature.as_deref().expect("signed");
                key.verify(signature, body, now, 300).expect("signature verifies");
                serde_json::from_slice(body).expect("json")
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A shop with the simulator as its processor, and loopback webhooks allowed.
async fn shop_with_processor(
    t: &TestApp,
    name: &str,
) -> (String, String, String, anshin_processor_sim::Simulator) {
    let (tenant, shop, key) = t.tenant_with_shop(name).await;
    let sim = with_processor(t, &tenant, Default::default()).await;
    allow_loopback(&t.app);
    (tenant, shop, key, sim)
}

fn allow_loopback(app: &anshin::app::App) {
    app.configure_checkout(CheckoutSettings {
        public_url: PUBLIC.into(),
        allowed_hosts: vec!["127.0.0.1".into()],
        webhook_loopback: true,
        ..CheckoutSettings::default()
    });
}

async fn put_webhook(t: &TestApp, key: &str, shop: &str, body: Value) -> (StatusCode, Value) {
    t.call(
        Method::PUT,
        &format!("/v1/shops/{shop}/webhook"),
        Some(key),
        Some(body),
    )
    .await
}

/// Creates the shop's endpoint to `url`: its secret.
async fn endpoint(t: &TestApp, key: &str, shop: &str, url: &str) -> String {
    let (status, created) = put_webhook(t, key, shop, json!({"url": url})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret shown on creation");
    assert!(secret.starts_with("whsec_"), "{created}");
    secret.to_owned()
}

/// Pays `amount` JPY with a new token of `number`: the payment's answer.
async fn pay_with(t: &TestApp, key: &str, number: &str, amount: i64, idem: &str) -> Value {
    let (status, card) = t.tokenize(key, number).await;
    assert!(status.is_success(), "{card}");
    let body = json!({"card_token": card["token"], "amount": amount, "currency": "JPY"});
    let (status, _, paid) = pay(t, key, idem, "/v1/payments", body).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    paid
}

async fn operation(t: &TestApp, key: &str, payment: &str, op: &str, body: Value, idem: &str) -> Value {
    let (status, _, answer) = pay(t, key, idem, &format!("/v1/payments/{payment}/{op}"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn get_payment(t: &TestApp, key: &str, payment: &str) -> Value {
    let (status, view) = t
        .call(Method::GET, &format!("/v1/payments/{payment}"), Some(key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

/// One delivery round at `now` on `app`.
async fn deliver_at(app: &anshin::app::App, now: i64) -> Deliveries {
    PaymentWebhooks::new()
        .deliver_due(app, now)
        .await
        .expect("delivery round")
}

/// Rounds at `now` until one does nothing (a payment's later events wait
/// for its earlier ones): their sum.
async fn deliver_all(app: &anshin::app::App, now: i64) -> Deliveries {
    let mut total = Deliveries::default();
    loop {
        let round = deliver_at(app, now).await;
        if round == Deliveries::default() {
            return total;
        }
        total.delivered += round.delivered;
        total.retrying += round.retrying;
        total.given_up += round.given_up;
    }
}

async fn events_reach_the_shop_signed_in_order_with_the_payment_view(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "hooks").await;
    let receiver = Receiver::start().await;
    let secret = endpoint(&t, &key, &shop, &receiver.url).await;

    let paid = pay_with(&t, &key, "4111111111111111", 3980, "hook-pay-1").await;
    let payment = paid["id"].as_str().expect("id").to_owned();
    let authorized_view = get_payment(&t, &key, &payment).await;
    operation(&t, &key, &payment, "capture", json!({}), "hook-cap-1").await;
    let captured_view = get_payment(&t, &key, &payment).await;
    operation(
        &t,
        &key,
        &payment,
        "refunds",
        json!({"amount": 980}),
        "hook-ref-1",
    )
    .await;
    let refunded_view = get_payment(&t, &key, &payment).await;
    let declined = pay_with(&t, &key, "4000000000000002", 1200, "hook-pay-2").await;
    assert_eq!(declined["status"], "declined");
    // A retried request with the same key changes nothing: no event.
    operation(&t, &key, &payment, "capture", json!({}), "hook-cap-1").await;

    let round = deliver_all(&t.app, clock::now_ms()).await;
    assert_eq!(round.delivered, 4, "{round:?}");
    let events = receiver.verified(&secret);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    let of_first: Vec<&str> = events
        .iter()
        .filter(|e| e["data"]["payment"]["id"] == payment.as_str())
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        of_first,
        ["payment.authorized", "payment.captured", "payment.refunded"],
        "{kinds:?}"
    );
    // Each event carries the payment as GET /v1/payments/{id} showed it right after that change.
    for (event, view) in events
        .iter()
        .filter(|e| e["data"]["payment"]["id"] == payment.as_str())
        .zip([&authorized_view, &captured_view, &refunded_view])
    {
        assert_eq!(&event["data"]["payment"], view, "{event}");
        assert_eq!(event["version"], 1);
        assert!(event["id"].as_str().expect("id").starts_with("pev_"));
        assert!(event["created"].as_str().expect("created").ends_with('Z'));
    }
    let decline = events
        .iter()
        .find(|e| e["type"] == "payment.declined")
        .expect("decline event");
    assert_eq!(decline["data"]["payment"]["id"], declined["id"]);
    assert_eq!(decline["data"]["payment"]["decline_code"], "do_not_honor");
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 4, "event ids are distinct");
    let raw: Vec<String> = events.iter().map(Value::to_string).collect();
    assert!(
        raw.iter()
            .all(|b| !b.contains("4111111111111111") && !b.contains("4000000000000002"))
    );

    // Delivered events are not sent again.
    assert_eq!(
        deliver_at(&t.app, clock::now_ms() + 3_600_000).await,
        Deliveries::default()
    );
    assert_eq!(receiver.count(), 4);
    let written = t.audit_log_of("webhook.write").await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["resources"][0], shop.as_str());
}

async fn a_failed_delivery_is_retried_until_the_receiver_takes_it(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "retries").await;
    let receiver = Receiver::start().await;
    let secret = endpoint(&t, &key, &shop, &receiver.url).await;
    receiver
        .statuses
        .lock()
        .expect("lock")
        .extend([StatusCode::INTERNAL_SERVER_ERROR, StatusCode::FOUND]);
    pay_with(&t, &key, "4111111111111111", 500, "retry-pay-1").await;

    let now = clock::now_ms();
    let first = deliver_at(&t.app, now).await;
    assert_eq!((first.delivered, first.retrying), (0, 1), "{first:?}");
    // Not due again before the backoff (at least half a second).
    assert_eq!(deliver_at(&t.app, now + 400).await, Deliveries::default());
    // A redirect is a failure too, never followed.
    let second = deliver_at(&t.app, now + 1_100).await;
    assert_eq!(second.retrying, 1, "{second:?}");
    assert_eq!(deliver_at(&t.app, now + 1_500).await, Deliveries::default());
    let third = deliver_at(&t.app, now + 3_200).await;
    assert_eq!(third.delivered, 1, "{third:?}");
    let events = receiver.verified(&secret);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e == &events[0]), "the same event each time");
    assert_eq!(events[0]["type"], "payment.authorized");
    assert_eq!(deliver_at(&t.app, now + 3_600_000).await, Deliveries::default());
}

async fn two_nodes_never_send_the_same_event_and_a_restart_loses_none(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "nodes").await;
    let receiver = Receiver::start().await;
    let secret = endpoint(&t, &key, &shop, &receiver.url).await;
    for n in 0..6 {
        let paid = pay_with(&t, &key, "4111111111111111", 100 + n, &format!("nodes-pay-{n}")).await;
        let id = paid["id"].as_str().expect("id");
        operation(&t, &key, id, "capture", json!({}), &format!("nodes-cap-{n}")).await;
    }
    // The node that made the payments stops before sending anything; two
    // others on the same store deliver, rounds racing each other.
    let location = t.location.clone();
    let node_a = Arc::new(anshin::app::App::open(&location).await.expect("node a"));
    let node_b = Arc::new(anshin::app::App::open(&location).await.expect("node b"));
    allow_loopback(&node_a);
    allow_loopback(&node_b);
    let mut total = Deliveries::default();
    for round in 0..20 {
        let now = clock::now_ms() + round * 2_000;
        let (a, b) = tokio::join!(deliver_at(&node_a, now), deliver_at(&node_b, now));
        total.delivered += a.delivered + b.delivered;
        total.retrying += a.retrying + b.retrying;
        if receiver.count() >= 12 && a == Deliveries::default() && b == Deliveries::default() {
            break;
        }
    }
    assert_eq!(total.delivered, 12, "{total:?}");
    let events = receiver.verified(&secret);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in &events {
        *seen
            .entry(event["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 12, "every event arrived");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");
    // Per payment, authorized before captured.
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for event in &events {
        order
            .entry(event["data"]["payment"]["id"].as_str().expect("id").to_owned())
            .or_default()
            .push(event["type"].as_str().expect("type").to_owned());
    }
    assert!(
        order
            .values()
            .all(|kinds| kinds == &["payment.authorized", "payment.captured"]),
        "{order:?}"
    );
}

async fn bad_webhook_input_is_refused_with_stable_codes_and_changes_nothing(t: TestApp) {
    let (tenant, shop, key) = t.tenant_with_shop("bad-input").await;
    let path = format!("/v1/shops/{shop}/webhook");
    for (body, code) in [
        (json!({"url": "http://shop.example/hooks"}), "webhook_url_invalid"),
        // Loopback is refused unless the configuration allows it.
        (json!({"url": "http://127.0.0.1:9/hooks"}), "webhook_url_invalid"),
        (json!({"url": "https://10.1.2.3/hooks"}), "webhook_url_invalid"),
        (
            json!({"url": "https://169.254.169.254/latest"}),
            "webhook_url_invalid",
        ),
        (
            json!({"url": "https://user:pass@shop.example/hooks"}),
            "webhook_url_invalid",
        ),
        (json!({"url": "shop.example/hooks"}), "webhook_url_invalid"),
        (
            json!({"url": format!("https://shop.example/{}", "a".repeat(2100))}),
            "webhook_url_invalid",
        ),
        (
            json!({"url": "https://shop.example/hooks", "events": ["payment.settled"]}),
            "webhook_events_invalid",
        ),
        (
            json!({"url": "https://shop.example/hooks", "events": []}),
            "webhook_events_invalid",
        ),
    ] {
        let (status, answer) = put_webhook(&t, &key, &shop, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} {answer}");
    }
    let (status, answer) = put_webhook(
        &t,
        &key,
        &shop,
        json!({"url": "https://shop.example/h", "secret": "mine"}),
    )
    .await;
    assert!(status.is_client_error(), "{answer}");
    let (status, _) = t.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    // Another shop's key, another tenant's operator: as if it did not exist.
    let other_shop = t.shop(&tenant, "other shop").await;
    let other_key = t.key("shop", &tenant, Some(&other_shop)).await;
    let (status, answer) = put_webhook(&t, &other_key, &shop, json!({"url": "https://shop.example/h"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (other_tenant, _, _) = t.tenant_with_shop("elsewhere").await;
    let outsider = t.key("operator", &other_tenant, None).await;
    let (status, _) = put_webhook(&t, &outsider, &shop, json!({"url": "https://shop.example/h"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let auditor = t.key("auditor", &tenant, None).await;
    let (status, answer) = put_webhook(&t, &auditor, &shop, json!({"url": "https://shop.example/h"})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = put_webhook(
        &t,
        &key,
        "shop_nonexistent",
        json!({"url": "https://shop.example/h"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The tenant's operator may set it; the shop then changes it (200, no secret).
    let operator = t.key("operator", &tenant, None).await;
    let (status, created) = put_webhook(&t, &operator, &shop, json!({"url": "https://shop.example/h"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, changed) = put_webhook(
        &t,
        &key,
        &shop,
        json!({"url": "https://shop.example/v2", "events": ["payment.refunded", "payment.captured"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["secret"], Value::Null);
    assert_eq!(changed["events"], json!(["payment.captured", "payment.refunded"]));
    assert_eq!(changed["url"], "https://shop.example/v2");
}

async fn the_secret_is_shown_once_sealed_at_rest_and_rotated_with_overlap(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "secrets").await;
    let receiver = Receiver::start().await;
    let (status, headers, created) = crate::checkout::send(
        &t.app,
        "192.0.2.1",
        Method::PUT,
        &format!("/v1/shops/{shop}/webhook"),
        &[("authorization", format!("Bearer {key}"))],
        Some(json!({"url": receiver.url})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    let old = created["secret"].as_str().expect("secret").to_owned();

    let path = format!("/v1/shops/{shop}/webhook");
    let (status, read) = t.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!read.to_string().contains(&old), "{read}");
    assert_eq!(read["secret"], Value::Null);

    let (status, rotated) = t
        .call(Method::POST, &format!("{path}/rotate-secret"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");

    // During the overlap each delivery verifies with either secret.
    pay_with(&t, &key, "4111111111111111", 700, "secret-pay-1").await;
    assert_eq!(deliver_at(&t.app, clock::now_ms()).await.delivered, 1);
    assert_eq!(receiver.verified(&new).len(), 1);
    assert_eq!(receiver.verified(&old).len(), 1);

    // Neither secret is anywhere an answer, the audit log or the store shows it.
    let audit = t.audit_log().await;
    let mut shown = serde_json::to_string(&audit).expect("json");
    shown.push_str(&t.call(Method::GET, &path, Some(&key), None).await.1.to_string());
    let (_, error) = put_webhook(
        &t,
        &key,
        &shop,
        json!({"url": format!("http://shop.example/{new}")}),
    )
    .await;
    shown.push_str(&error.to_string());
    for secret in [&old, &new] {
        assert!(!shown.contains(secret.as_str()), "a secret was shown again");
    }
    match t.backend {
        Backend::Sqlite => {
            for entry in walk(&t.data_dir()) {
                let bytes = std::fs::read(&entry).expect("read");
                for secret in [&old, &new] {
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{} holds a secret in clear",
                        entry.display()
                    );
                }
            }
        }
        Backend::Postgres => {
            let stored = t
                .app
                .store
                .webhook(&anshin::ids::ShopId::parse(&shop).expect("id"))
                .await;
            let row = stored.expect("read").expect("row");
            for sealed in [Some(&row.secret), row.previous_secret.as_ref()]
                .into_iter()
                .flatten()
            {
                for secret in [&old, &new] {
                    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
                }
            }
        }
    }
    assert_eq!(t.audit_log_of("webhook.rotate").await.len(), 1);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn only_subscribed_events_are_sent_and_removal_stops_delivery(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "subscribed").await;
    let receiver = Receiver::start().await;
    let (status, created) = put_webhook(
        &t,
        &key,
        &shop,
        json!({"url": receiver.url, "events": ["payment.captured"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let paid = pay_with(&t, &key, "4111111111111111", 900, "sub-pay-1").await;
    let id = paid["id"].as_str().expect("id").to_owned();
    operation(&t, &key, &id, "capture", json!({}), "sub-cap-1").await;
    let round = deliver_all(&t.app, clock::now_ms()).await;
    assert_eq!((round.delivered, round.given_up), (1, 1), "{round:?}");
    let events = receiver.verified(&secret);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "payment.captured");

    // Removed: what is pending is given up, nothing more is sent.
    operation(&t, &key, &id, "refunds", json!({"amount": 100}), "sub-ref-1").await;
    let (status, _) = put_webhook(&t, &key, &shop, json!({"url": receiver.url})).await;
    assert_eq!(status, StatusCode::OK);
    operation(&t, &key, &id, "refunds", json!({"amount": 1}), "sub-ref-2").await;
    let path = format!("/v1/shops/{shop}/webhook");
    let (status, _) = t.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let pay2 = pay_with(&t, &key, "4111111111111111", 901, "sub-pay-2").await;
    assert_eq!(pay2["status"], "authorized");
    assert_eq!(
        deliver_all(&t.app, clock::now_ms() + 3_600_000).await,
        Deliveries::default()
    );
    assert_eq!(receiver.count(), 1);
    let (status, _) = t.call(Method::GET, &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(t.audit_log_of("webhook.delete").await.len(), 1);
}

/// The outbox does not depend on how the payment path writes: a payment row
/// inserted already authorized or captured (one write instead of an insert
/// and an update) is an event as well.
async fn a_payment_stored_in_its_final_state_at_once_is_an_event_too(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "one-write").await;
    let receiver = Receiver::start().await;
    let secret = endpoint(&t, &key, &shop, &receiver.url).await;
    let paid = pay_with(&t, &key, "4111111111111111", 800, "one-write-1").await;
    assert_eq!(deliver_all(&t.app, clock::now_ms()).await.delivered, 1);
    let copy = anshin::ids::PaymentId::generate().expect("id");
    t.raw_sql(&format!(
        "INSERT INTO payments (id, tenant_id, shop_id, created_by, card_token, route, amount, currency, capture,
                               status, amount_captured, created_at, updated_at)
         SELECT '{copy}', tenant_id, shop_id, created_by, card_token, route, amount, currency, capture,
                'captured', amount, created_at, updated_at
         FROM payments WHERE id = '{}'",
        paid["id"].as_str().expect("id")
    ))
    .await;
    assert_eq!(deliver_all(&t.app, clock::now_ms()).await.delivered, 1);
    let events = receiver.verified(&secret);
    assert_eq!(events[1]["type"], "payment.captured");
    assert_eq!(events[1]["data"]["payment"]["id"], copy.as_str());
    assert_eq!(events[1]["data"]["payment"]["amount_captured"], 800);
}

/// A round's attempts are recorded in one commit at its end: each outcome
/// of the round (delivered, to retry, given up) is kept all the same.
async fn every_outcome_of_one_round_is_recorded_together(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "one-round").await;
    let receiver = Receiver::start().await;
    let (status, created) = put_webhook(
        &t,
        &key,
        &shop,
        json!({"url": receiver.url, "events": ["payment.authorized"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    receiver
        .statuses
        .lock()
        .expect("lock")
        .push_back(StatusCode::INTERNAL_SERVER_ERROR);
    pay_with(&t, &key, "4111111111111111", 700, "round-pay-1").await;
    pay_with(&t, &key, "4111111111111111", 701, "round-pay-2").await;
    let declined = pay_with(&t, &key, "4000000000000002", 702, "round-pay-3").await;
    assert_eq!(declined["status"], "declined");

    let now = clock::now_ms();
    let round = deliver_at(&t.app, now).await;
    assert_eq!(
        (round.delivered, round.retrying, round.given_up),
        (1, 1, 1),
        "{round:?}"
    );
    // Only the refused one is due again, after its backoff, and once.
    assert_eq!(deliver_at(&t.app, now + 400).await, Deliveries::default());
    let retried = deliver_at(&t.app, now + 1_100).await;
    assert_eq!(
        (retried.delivered, retried.retrying, retried.given_up),
        (1, 0, 0),
        "{retried:?}"
    );
    assert_eq!(deliver_all(&t.app, now + 3_600_000).await, Deliveries::default());
    let events = receiver.verified(&secret);
    assert_eq!(events.len(), 3);
    let mut amounts: Vec<i64> = events
        .iter()
        .map(|e| e["data"]["payment"]["amount"].as_i64().expect("amount"))
        .collect();
    // The refused event was sent twice, the same each time; the declined never.
    amounts.sort_unstable();
    amounts.dedup();
    assert_eq!(amounts, [700, 701]);
}

/// Two nodes on one store: the first sends an event and stalls (its receiver
/// does not answer) past its claim; the second takes the event over and gets
/// a 500. The first node's late 200 must not mark the event delivered over
/// the second's retry: the retry still happens.
async fn a_stalled_node_cannot_overwrite_the_outcome_of_the_node_that_took_its_event_over(t: TestApp) {
    let (_, shop, key, _sim) = shop_with_processor(&t, "stalled").await;
    let receiver = Receiver::start().await;
    let secret = endpoint(&t, &key, &shop, &receiver.url).await;
    pay_with(&t, &key, "4111111111111111", 500, "stalled-pay").await;
    let node_a = Arc::new(anshin::app::App::open(&t.location).await.expect("node a"));
    let node_b = anshin::app::App::open(&t.location).await.expect("node b");
    allow_loopback(&node_a);
    allow_loopback(&node_b);

    let release = receiver.hold_next();
    let start = clock::now_ms();
    let stalled = tokio::spawn({
        let node_a = node_a.clone();
        async move { deliver_at(&node_a, start).await }
    });
    receiver.wait_for(1).await;
    receiver
        .statuses
        .lock()
        .expect("lock")
        .push_back(StatusCode::INTERNAL_SERVER_ERROR);
    let took_over_at = start + anshin::webhook::CLAIM_MS + 1;
    let took_over = deliver_at(&node_b, took_over_at).await;
    assert_eq!(
        took_over,
        Deliveries {
            retrying: 1,
            ..Deliveries::default()
        }
    );
    release.send(()).expect("release");
    let stalled = stalled.await.expect("stalled node");
    assert_eq!(
        stalled,
        Deliveries {
            claims_lost: 1,
            ..Deliveries::default()
        },
        "the stalled node's 200 is not recorded"
    );
    let retried = deliver_all(&node_b, took_over_at + 3_600_000).await;
    assert_eq!(
        retried.delivered, 1,
        "the second node's retry stands: {retried:?}"
    );
    let events = receiver.verified(&secret);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["id"] == events[0]["id"]), "one event");
    assert_eq!(
        deliver_all(&node_b, took_over_at + 86_400_000).await,
        Deliveries::default()
    );
}
