//! Security alerts on both backends: real traffic through the router (with a
//! client address where a detector needs one), the detectors run as `anshin
//! serve` runs them after integration, alerts listed at `GET /v1/alerts` within
//! the key's tenant, and a real local receiver that gets the signed webhook,
//! fails once and gets the retry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anshin::audit::alerts::Monitor;
use anshin::audit::detect::DetectSettings;
use anshin::audit::webhook::Webhook;
use anshin::config::AlertConfig;
use anshin_crypto::secret::SecretString;
use anshin_crypto::webhook::WebhookKey;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::harness::{TestApp, both_backends};

both_backends!(
    rakuten_2005_bulk_reading_by_one_shop_raises_an_alert,
    alerts_are_shown_only_within_the_keys_tenant,
    credential_stuffing_from_one_address_raises_an_alert,
    a_stolen_processor_key_used_from_a_new_address_raises_an_alert,
    rakuten_2005_attempts_on_orders_past_the_window_raise_an_alert,
    a_stalled_checkpoint_raises_a_critical_alert,
    each_entry_is_examined_once_across_nodes_and_restarts,
    alerts_reach_the_webhook_signed_and_a_failing_receiver_gets_a_retry,
    a_receiver_that_keeps_failing_is_given_up_and_the_alert_stays_listed,
    a_stalled_node_cannot_overwrite_an_alert_delivery_another_node_took_over,
    the_alert_api_and_the_webhook_schema_are_documented,
);

pub(crate) const SECRET: &str = "test-webhook-secret-0123456789abcdef";

fn now() -> i64 {
    anshin::clock::now_ms()
}

/// Detectors with small thresholds, so tests stay short.
fn settings() -> DetectSettings {
    DetectSettings {
        volume_floor: 20,
        reveal_warmup: 3,
        ..DetectSettings::default()
    }
}

/// Integrates the log and runs one detection round, as `anshin serve` does.
async fn detect(t: &TestApp, monitor: &mut Monitor) -> anshin::audit::alerts::Round {
    t.app.audit.integrate(&t.app.store).await.expect("integrate");
    monitor.run(&t.app.store, now()).await.expect("detect")
}

async fn alerts(t: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let (status, page) = t
        .call(Method::GET, &format!("/v1/alerts{query}"), Some(key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["alerts"].as_array().expect("alerts").clone()
}

/// A request from the client address `from`, as a real connection would carry it.
async fn call_from(t: &TestApp, from: &str, method: Method, path: &str, key: &str) -> StatusCode {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .expect("request");
    let addr: SocketAddr = from.parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(addr));
    anshin::http::router(t.app.clone())
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

async fn customer(t: &TestApp, shop_key: &str) -> String {
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(shop_key),
            Some(json!({"name": "佐藤 花子", "email": "hanako@example.jp", "phone": "090-1234-5678"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

/// The shop bulk-reads: 25 customer reads and 30 orders listed, weight 55.
async fn bulk_read(t: &TestApp, shop_key: &str) -> String {
    let customer = customer(t, shop_key).await;
    for _ in 0..30 {
        let (status, order) = t
            .call(
                Method::POST,
                "/v1/orders",
                Some(shop_key),
                Some(json!({"customer_id": customer, "amount": 4980, "currency": "JPY"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
    }
    for _ in 0..25 {
        let (status, _) = t
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}"),
                Some(shop_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/orders?limit=10&after={a}"),
            None => "/v1/orders?limit=10".to_owned(),
        };
        let (status, page) = t.call(Method::GET, &path, Some(shop_key), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    customer
}

async fn entry_at(t: &TestApp, index: u64) -> Value {
    let bytes = t.app.store.audit_entries(index, index + 1).await.expect("entry");
    serde_json::from_slice(&bytes[0]).expect("json")
}

fn assert_no_personal_data(alerts: &[Value], secrets: &[&str]) {
    let text = serde_json::to_string(alerts).expect("json");
    for secret in secrets {
        assert!(!text.contains(secret), "an alert holds {secret}: {text}");
    }
}

async fn rakuten_2005_bulk_reading_by_one_shop_raises_an_alert(t: TestApp) {
    let (tenant, shop, shop_key) = t.tenant_with_shop("marketplace").await;
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    assert_eq!(
        detect(&t, &mut monitor).await.raised,
        0,
        "setting up raises nothing"
    );
    let customer = bulk_read(&t, &shop_key).await;
    let round = detect(&t, &mut monitor).await;
    assert!(round.holds_cursor && round.examined > 55, "{round:?}");
    assert_eq!(round.raised, 1, "{round:?}");

    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let alert = &listed[0];
    assert_eq!(alert["kind"], "volume_above_baseline");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["tenant_id"], tenant.as_str());
    assert!(alert["id"].as_str().is_some_and(|id| id.starts_with("alr_")));
    assert_eq!(alert["delivery"]["state"], "not_configured");
    // The evidence is the shop's own reads, in the signed log.
    let evidence = alert["evidence"].as_array().expect("evidence");
    assert!(!evidence.is_empty());
    for index in evidence {
        let entry = entry_at(&t, index.as_u64().expect("index")).await;
        assert_eq!(entry["actor"]["shop"], shop.as_str(), "{entry}");
        assert_eq!(entry["actor"]["principal"], alert["principal_id"], "{entry}");
    }
    assert_no_personal_data(&listed, &[customer.as_str(), "佐藤", "hanako", "090-1234"]);
    // Filters: by kind and by time.
    assert_eq!(
        alerts(&t, &t.operator_key, "?kind=volume_above_baseline")
            .await
            .len(),
        1
    );
    assert!(alerts(&t, &t.operator_key, "?kind=unusual_hour").await.is_empty());
    assert!(
        alerts(&t, &t.operator_key, "?since=2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );
    // The next round examines only what came since, and the same hour's
    // condition is not raised again.
    let again = detect(&t, &mut monitor).await;
    assert_eq!(again.raised, 0, "{again:?}");
    assert!(again.examined < 10, "{again:?}");
}

async fn alerts_are_shown_only_within_the_keys_tenant(t: TestApp) {
    let (tenant_a, _, shop_a) = t.tenant_with_shop("a").await;
    let (tenant_b, _, _) = t.tenant_with_shop("b").await;
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    bulk_read(&t, &shop_a).await;
    // An installation-wide alert too: refused keys from one address.
    for _ in 0..10 {
        call_from(
            &t,
            "198.51.100.7:40000",
            Method::GET,
            "/v1/tenants",
            "anshin_sk_guess",
        )
        .await;
    }
    detect(&t, &mut monitor).await;
    assert_eq!(alerts(&t, &t.operator_key, "").await.len(), 2);

    let auditor_a = t.key("auditor", &tenant_a, None).await;
    let seen_by_a = alerts(&t, &auditor_a, "").await;
    assert_eq!(seen_by_a.len(), 1, "{seen_by_a:?}");
    assert_eq!(seen_by_a[0]["tenant_id"], tenant_a.as_str());
    let operator_b = t.key("operator", &tenant_b, None).await;
    assert!(alerts(&t, &operator_b, "").await.is_empty());
    // Shops and processors do not read alerts.
    t.expect_error(
        Method::GET,
        "/v1/alerts",
        Some(&shop_a),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let processor = &t.global_key("processor").await;
    t.expect_error(
        Method::GET,
        "/v1/alerts",
        Some(processor),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Bad input gets stable codes.
    for (query, code) in [
        ("?kind=everything", "invalid_kind"),
        ("?since=yesterday", "invalid_time"),
        ("?limit=0", "invalid_limit"),
        ("?tenant=x", "invalid_query"),
    ] {
        t.expect_error(
            Method::GET,
            &format!("/v1/alerts{query}"),
            Some(&t.operator_key),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    // Reading alerts is itself in the audit log.
    let (status, page) = t
        .call(Method::GET, "/v1/audit/events?limit=1000", Some(&auditor_a), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let reads = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["entry"]["event"] == "alert.read")
        .count();
    assert!(reads >= 1, "{page}");
    // Paging.
    let (status, first) = t
        .call(Method::GET, "/v1/alerts?limit=1", Some(&t.operator_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = first["next_after"].as_i64().expect("next page");
    let rest = alerts(&t, &t.operator_key, &format!("?after={after}")).await;
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0]["id"], first["alerts"][0]["id"]);
}

async fn credential_stuffing_from_one_address_raises_an_alert(t: TestApp) {
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    // Nine refused keys from one address and many from others: not yet.
    for i in 0..9 {
        let status = call_from(
            &t,
            "198.51.100.7:40000",
            Method::GET,
            "/v1/tenants",
            "anshin_sk_guess",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        call_from(
            &t,
            &format!("203.0.113.{i}:1234"),
            Method::GET,
            "/v1/tenants",
            "anshin_sk_typo",
        )
        .await;
    }
    assert_eq!(detect(&t, &mut monitor).await.raised, 0);
    // The tenth from the same address (PCI DSS 8.3.4's limit) is an attack.
    call_from(
        &t,
        "198.51.100.7:40001",
        Method::GET,
        "/v1/tenants",
        "anshin_sk_guess",
    )
    .await;
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kind"], "repeated_auth_failures");
    assert_eq!(listed[0]["tenant_id"], Value::Null);
    assert_eq!(listed[0]["evidence"].as_array().map(Vec::len), Some(10));
    // The address is in the signed evidence, not in the alert.
    let first = entry_at(&t, listed[0]["evidence"][0].as_u64().expect("index")).await;
    assert_eq!(first["origin"], "198.51.100.7");
    assert_no_personal_data(&listed, &["198.51.100", "anshin_sk_guess"]);
    // More of the same within the window raises nothing new.
    for _ in 0..5 {
        call_from(
            &t,
            "198.51.100.7:40002",
            Method::GET,
            "/v1/tenants",
            "anshin_sk_guess",
        )
        .await;
    }
    assert_eq!(detect(&t, &mut monitor).await.raised, 0);
}

async fn a_stolen_processor_key_used_from_a_new_address_raises_an_alert(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("shop").await;
    let (_, card) = t.tokenize(&shop_key, "4111111111111111").await;
    let token = card["token"].as_str().expect("token").to_owned();
    let processor = t.global_key("processor").await;
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    let reveal = format!("/v1/cards/{token}/reveal");
    // The acquirer's two servers, through the warm-up and after.
    for i in 0..6 {
        let from = if i % 2 == 0 {
            "192.0.2.10:5000"
        } else {
            "192.0.2.11:5000"
        };
        assert_eq!(
            call_from(&t, from, Method::POST, &reveal, &processor).await,
            StatusCode::OK
        );
    }
    assert_eq!(detect(&t, &mut monitor).await.raised, 0);
    // The key, stolen, used from elsewhere.
    assert_eq!(
        call_from(&t, "203.0.113.66:6000", Method::POST, &reveal, &processor).await,
        StatusCode::OK
    );
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed[0]["kind"], "reveal_from_new_origin");
    assert_eq!(listed[0]["severity"], "high");
    assert_no_personal_data(&listed, &["203.0.113", "192.0.2", "4111", &token]);
}

async fn rakuten_2005_attempts_on_orders_past_the_window_raise_an_alert(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("window").await;
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    let (status, customer) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&shop_key),
            Some(serde_json::json!({"name": "高橋 健"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let (status, order) = t
        .call(
            Method::POST,
            "/v1/orders",
            Some(&shop_key),
            Some(serde_json::json!({
                "customer_id": customer["id"], "amount": 1200, "currency": "JPY",
                "shipping": {"name": "高橋 健", "address": "広島県広島市中区1-1"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order = order["id"].as_str().expect("id").to_owned();
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/v1/orders/{order}/complete"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Completed 20 days ago: the shop keeps trying to read the address.
    t.raw_sql(&format!(
        "UPDATE orders SET completed_at = {} WHERE id = '{order}'",
        now() - 20 * 24 * 3_600_000
    ))
    .await;
    for _ in 0..3 {
        t.expect_error(
            Method::GET,
            &format!("/v1/orders/{order}/shipping"),
            Some(&shop_key),
            None,
            StatusCode::GONE,
            "retention_window_closed",
        )
        .await;
    }
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let auditor = t.key("auditor", &tenant, None).await;
    let listed = alerts(&t, &auditor, "?kind=past_window_attempt").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0]["principal_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("prn_"))
    );
    assert_eq!(listed[0]["severity"], "medium");
    assert_no_personal_data(&listed, &["高橋", "広島"]);
}

async fn a_stalled_checkpoint_raises_a_critical_alert(t: TestApp) {
    let mut monitor = Monitor::new(settings(), false).expect("monitor");
    t.tenant_with_shop("stall").await;
    t.app.audit.integrate(&t.app.store).await.expect("integrate");
    let start = now();
    assert_eq!(monitor.run(&t.app.store, start).await.expect("run").raised, 0);
    // Entries keep coming but the integrator is stuck: on SQLite they have
    // their places already, on PostgreSQL they wait for the sequencer too.
    t.tenant_with_shop("more").await;
    assert_eq!(
        monitor
            .run(&t.app.store, start + 1_000)
            .await
            .expect("run")
            .raised,
        0
    );
    assert_eq!(
        monitor
            .run(&t.app.store, start + 30_000)
            .await
            .expect("run")
            .raised,
        0
    );
    assert_eq!(
        monitor
            .run(&t.app.store, start + 62_000)
            .await
            .expect("run")
            .raised,
        1
    );
    // A second node watching the same stall adds nothing.
    let mut other = Monitor::new(settings(), false).expect("monitor");
    other.run(&t.app.store, start + 1_000).await.expect("run");
    other.run(&t.app.store, start + 62_000).await.expect("run");
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "checkpoint_stalled");
    assert_eq!(listed[0]["severity"], "critical");
    assert_eq!(listed[0]["tenant_id"], Value::Null);
    // Tenant keys do not see installation-wide alerts.
    let (tenant, _, _) = t.tenant_with_shop("tenant").await;
    let auditor = t.key("auditor", &tenant, None).await;
    assert!(alerts(&t, &auditor, "").await.is_empty());
}

async fn each_entry_is_examined_once_across_nodes_and_restarts(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("nodes").await;
    let mut node_a = Monitor::new(settings(), false).expect("monitor");
    let mut node_b = Monitor::new(settings(), false).expect("monitor");
    let first = detect(&t, &mut node_a).await;
    assert!(first.holds_cursor && first.examined > 0, "{first:?}");
    // While node A holds the cursor, node B only watches the checkpoint.
    bulk_read(&t, &shop_key).await;
    let b = detect(&t, &mut node_b).await;
    assert!(!b.holds_cursor && b.examined == 0, "{b:?}");
    let a = detect(&t, &mut node_a).await;
    assert_eq!(a.raised, 1, "{a:?}");
    // Node A stops; after its lease runs out, a restarted node C takes over:
    // it first replays the log it did not see (raising nothing), then examines
    // only new entries.
    let mut node_c = Monitor::new(settings(), false).expect("monitor");
    for _ in 0..3 {
        let (status, _) = t
            .call(Method::GET, "/v1/audit/events", Some(&t.operator_key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    t.app.audit.integrate(&t.app.store).await.expect("integrate");
    let c = node_c.run(&t.app.store, now() + 31_000).await.expect("run");
    assert!(c.holds_cursor && c.examined >= 3, "{c:?}");
    assert!(c.replayed > 55, "{c:?}");
    assert_eq!(c.raised, 0, "{c:?}");
    assert_eq!(alerts(&t, &t.operator_key, "").await.len(), 1);
    // Node A wakes from a pause with entries waiting: it lost the cursor, and
    // must not examine anything.
    let (status, _) = t
        .call(Method::GET, "/v1/audit/events", Some(&t.operator_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    t.app.audit.integrate(&t.app.store).await.expect("integrate");
    let back = node_a.run(&t.app.store, now() + 31_000).await.expect("run");
    assert!(!back.holds_cursor && back.examined == 0, "{back:?}");
}

/// What the test receiver got, and how it should answer.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    failures_left: Arc<Mutex<u32>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().expect("lock").push((headers, body));
    let mut left = r.failures_left.lock().expect("lock");
    if *left > 0 {
        *left -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A receiver on 127.0.0.1 that fails its first `failures` requests.
pub(crate) async fn receiver(failures: u32) -> (Receiver, String) {
    let state = Receiver {
        got: Arc::default(),
        failures_left: Arc::new(Mutex::new(failures)),
    };
    let app = axum::Router::new()
        .route("/hooks/anshin", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, format!("http://{addr}/hooks/anshin"))
}

fn webhook(url: &str, max_attempts: u32) -> Webhook {
    let config = AlertConfig {
        webhook_url: Some(url.to_owned()),
        webhook_secret: Some(SecretString::new(SECRET.to_owned())),
        webhook_max_attempts: max_attempts,
        ..AlertConfig::default()
    };
    Webhook::from_config(&config)
        .expect("webhook")
        .expect("configured")
}

async fn alerts_reach_the_webhook_signed_and_a_failing_receiver_gets_a_retry(t: TestApp) {
    let (receiver, url) = receiver(1).await;
    let hook = webhook(&url, 5);
    let (_, _, shop_key) = t.tenant_with_shop("hooked").await;
    let mut monitor = Monitor::new(settings(), true).expect("monitor");
    bulk_read(&t, &shop_key).await;
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed[0]["delivery"]["state"], "pending");

    // Two nodes send at once: the alert is claimed, so it goes out once.
    let start = now();
    let (one, two) = tokio::join!(
        hook.deliver_due(&t.app.store, start),
        hook.deliver_due(&t.app.store, start)
    );
    let (one, two) = (one.expect("deliver"), two.expect("deliver"));
    assert_eq!(one.retrying + two.retrying, 1, "{one:?} {two:?}");
    assert_eq!(receiver.got.lock().expect("lock").len(), 1);
    let listed = alerts(&t, &t.operator_key, "").await;
    let delivery = &listed[0]["delivery"];
    assert_eq!(delivery["state"], "pending", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_error"], "the receiver answered HTTP 500");
    // Not before its backoff (at least half a second)…
    let early = hook
        .deliver_due(&t.app.store, start + 100)
        .await
        .expect("deliver");
    assert_eq!(early.delivered + early.retrying, 0);
    // … and then delivered.
    let retry = hook
        .deliver_due(&t.app.store, start + 1_500)
        .await
        .expect("deliver");
    assert_eq!(retry.delivered, 1, "{retry:?}");
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed[0]["delivery"]["state"], "delivered");
    assert_eq!(listed[0]["delivery"]["attempts"], 2);
    assert_eq!(listed[0]["delivery"]["last_error"], Value::Null);
    assert_eq!(
        hook.deliver_due(&t.app.store, start + 3_600_000)
            .await
            .expect("deliver"),
        Default::default(),
        "delivered alerts are not sent again"
    );

    // What the receiver got: signed JSON of schema version 1 that verifies
    // with the shared secret and nothing else.
    let got = receiver.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    let key = WebhookKey::new(SECRET.as_bytes()).expect("key");
    for (headers, body) in &got {
        assert_eq!(headers["content-type"], "application/json");
        let signature = headers["anshin-signature"].to_str().expect("ascii");
        let t_signed = key
            .verify(signature, body, now() / 1000, 300)
            .expect("the signature verifies");
        assert!(signature.starts_with(&format!("t={t_signed},v1=")));
        let wrong = WebhookKey::new(b"not-the-secret-but-long-enough-0123").expect("key");
        assert!(wrong.verify(signature, body, now() / 1000, 300).is_err());
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(key.verify(signature, &tampered, now() / 1000, 300).is_err());
        let notification: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(notification["type"], "anshin.alert");
        assert_eq!(notification["version"], 1);
        assert_eq!(notification["alert"]["id"], listed[0]["id"]);
        assert_eq!(notification["alert"]["kind"], "volume_above_baseline");
        assert!(notification["alert"].get("delivery").is_none());
        let text = String::from_utf8_lossy(body);
        for secret in [SECRET, "佐藤", "hanako", "090-1234"] {
            assert!(!text.contains(secret), "the body holds {secret}");
        }
    }
    // Both attempts carried the same body: receivers can deduplicate on the id.
    assert_eq!(got[0].1, got[1].1);
}

/// Two nodes on one store: the first claims the alert's delivery and stalls
/// past its claim; the second takes it over. Whatever the first then
/// records is refused, as is an outcome recorded after its claim expired.
async fn a_stalled_node_cannot_overwrite_an_alert_delivery_another_node_took_over(t: TestApp) {
    use anshin::webhook::{Attempt, CLAIM_MS, Claim};
    let (_, _, shop_key) = t.tenant_with_shop("stalled").await;
    let mut monitor = Monitor::new(settings(), true).expect("monitor");
    bulk_read(&t, &shop_key).await;
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let node_a = anshin::app::App::open(&t.location).await.expect("node a");
    let node_b = anshin::app::App::open(&t.location).await.expect("node b");
    let claim = async |node: &anshin::app::App, claim: &Claim| {
        node.store.alerts_claim_due(claim, 16).await.expect("claim")
    };
    let start = now();

    let stalled = Claim::new(start).expect("claim");
    let claimed = claim(&node_a, &stalled).await;
    assert_eq!(claimed.len(), 1);
    let id = claimed[0].id.clone();
    let record = async |node: &anshin::app::App, claim: &Claim, attempt: Attempt| {
        node.store
            .alert_attempt(&id, claim, attempt)
            .await
            .expect("record")
    };
    let meanwhile = Claim::new(start + 1_000).expect("claim");
    assert!(
        claim(&node_b, &meanwhile).await.is_empty(),
        "claimed deliveries are hidden from other nodes"
    );
    let took_over = Claim::new(start + CLAIM_MS + 1).expect("claim");
    assert_eq!(claim(&node_b, &took_over).await.len(), 1);

    let delivered = Attempt::Delivered { at: start };
    assert!(
        !record(&node_a, &stalled, delivered.clone()).await,
        "the stalled node's outcome is refused"
    );
    let retry_at = start + CLAIM_MS + 1_000;
    let failed = Attempt::Failed {
        retry_at: Some(retry_at),
        error: "the receiver answered HTTP 500".into(),
    };
    assert!(record(&node_b, &took_over, failed).await);
    assert!(
        !record(&node_a, &stalled, delivered.clone()).await,
        "nor after the new claimant recorded"
    );
    let listed = alerts(&t, &t.operator_key, "").await;
    let delivery = &listed[0]["delivery"];
    assert_eq!(delivery["state"], "pending", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["last_error"], "the receiver answered HTTP 500");

    // A claim whose holder outlived it records nothing, even unchallenged.
    let expired = Claim {
        started: std::time::Instant::now() - std::time::Duration::from_millis(CLAIM_MS as u64 + 1),
        ..Claim::new(retry_at).expect("claim")
    };
    assert_eq!(claim(&node_a, &expired).await.len(), 1);
    assert!(!record(&node_a, &expired, delivered).await);
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed[0]["delivery"]["attempts"], 1);
    assert_eq!(listed[0]["delivery"]["state"], "pending");
}

async fn a_receiver_that_keeps_failing_is_given_up_and_the_alert_stays_listed(t: TestApp) {
    let (receiver, url) = receiver(u32::MAX).await;
    let hook = webhook(&url, 2);
    // Nothing listens on this one.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", listener.local_addr().expect("addr"))
    };
    let unreachable = webhook(&closed, 1);
    let (_, _, shop_key) = t.tenant_with_shop("down").await;
    let mut monitor = Monitor::new(settings(), true).expect("monitor");
    bulk_read(&t, &shop_key).await;
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    let start = now();
    assert_eq!(
        hook.deliver_due(&t.app.store, start)
            .await
            .expect("deliver")
            .retrying,
        1
    );
    let last = hook
        .deliver_due(&t.app.store, start + 1_500)
        .await
        .expect("deliver");
    assert_eq!(last.given_up, 1, "{last:?}");
    assert_eq!(receiver.got.lock().expect("lock").len(), 2);
    let listed = alerts(&t, &t.operator_key, "").await;
    assert_eq!(listed[0]["delivery"]["state"], "failed");
    assert_eq!(listed[0]["delivery"]["attempts"], 2);
    assert_eq!(listed[0]["delivery"]["next_attempt_at"], Value::Null);
    assert_eq!(
        hook.deliver_due(&t.app.store, start + 86_400_000)
            .await
            .expect("deliver"),
        Default::default()
    );

    // A refused connection is a failure described in our words.
    let before = alerts(&t, &t.operator_key, "").await.len();
    let (_, _, other_shop) = t.tenant_with_shop("other").await;
    bulk_read(&t, &other_shop).await;
    assert_eq!(detect(&t, &mut monitor).await.raised, 1);
    assert_eq!(alerts(&t, &t.operator_key, "").await.len(), before + 1);
    let done = unreachable
        .deliver_due(&t.app.store, now())
        .await
        .expect("deliver");
    assert_eq!(done.given_up, 1, "{done:?}");
    let listed = alerts(&t, &t.operator_key, "").await;
    let error = listed[before]["delivery"]["last_error"].as_str().expect("error");
    assert!(!error.is_empty() && !error.contains(SECRET), "{error}");
}

async fn the_alert_api_and_the_webhook_schema_are_documented(t: TestApp) {
    let (status, doc) = t.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let list = &doc["paths"]["/v1/alerts"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["since", "kind", "after", "limit"]);
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "AlertList",
        "Alert",
        "AlertBody",
        "AlertDelivery",
        "AlertKind",
        "Severity",
        "AlertNotification",
    ] {
        assert!(schemas.get(schema).is_some(), "OpenAPI lacks {schema}");
    }
    let kinds = schemas["AlertKind"]["enum"].as_array().expect("enum");
    let names: Vec<&str> = anshin::audit::detect::AlertKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(kinds, &names, "every alert kind is documented, in order");
    assert!(names.contains(&"page_script_added") && names.contains(&"csp_new_destination"));
}
