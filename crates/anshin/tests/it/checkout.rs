//! Checkout and the payment proxy on both backends, through the HTTP API: a
//! shop's server opens sessions with its API key, the shopper's browser (a
//! request with anshin's own `Origin` and no key) submits the card, and the
//! hosted page polls the status.

use std::net::{IpAddr, SocketAddr};

use anshin::proxy::CheckoutSettings;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use anshin_processor_sim::Simulator;

use crate::harness::{Backend, TestApp, both_backends};

both_backends!(
    a_session_takes_one_card_from_anshins_own_origin,
    card_submissions_are_checked_before_anything_is_stored,
    expired_sessions_are_gone,
    sessions_are_seen_only_by_their_shop_and_audited,
    card_submissions_are_rate_limited_per_client,
    payments_go_through_the_proxy_to_the_processor_and_never_expose_the_card,
    a_processor_timeout_is_504_and_the_retry_never_charges_twice,
    concurrent_attempts_on_one_key_or_one_session_charge_once,
    tls_failures_and_hosts_off_the_allow_list_are_refused,
    a_three_d_secure_challenge_completes_through_the_return_page,
    outbound_routes_replace_tokens_at_configured_paths_only,
    no_security_code_is_left_in_any_file_after_checkouts,
    a_security_code_held_on_one_node_reaches_the_processor_from_another,
);

/// anshin's public origin in these tests.
pub(crate) const PUBLIC: &str = "https://pay.anshin.test";
/// The shop page that embeds the card page.
pub(crate) const SHOP: &str = "https://shop.example";

pub(crate) fn configure(t: &TestApp) {
    t.app.configure_checkout(CheckoutSettings {
        public_url: PUBLIC.into(),
        ..CheckoutSettings::default()
    });
}

/// Sends a request to `app`'s router from `ip` with `headers`: status,
/// headers and JSON (or Null).
pub(crate) async fn send(
    app: &std::sync::Arc<anshin::app::App>,
    ip: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let mut request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let addr: IpAddr = ip.parse().expect("ip");
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(addr, 50_000)));
    let response = anshin::http::router(app.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A request as a browser sends it: optional `Origin`, no API key, from `ip`.
pub(crate) async fn browser(
    t: &TestApp,
    ip: &str,
    method: Method,
    path: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let headers: Vec<(&str, String)> = origin.map(|o| ("origin", o.to_owned())).into_iter().collect();
    send(&t.app, ip, method, path, &headers, body).await
}

/// Opens a session for `amount` JPY with the shop's key: its id.
pub(crate) async fn open_session(t: &TestApp, key: &str, amount: i64) -> String {
    let (status, session) = t
        .call(
            Method::POST,
            "/v1/checkout/sessions",
            Some(key),
            Some(
                json!({"amount": amount, "currency": "JPY", "order_ref": "order-1",
                        "allowed_origin": SHOP, "locale": "ja"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    session["id"].as_str().expect("id").to_owned()
}

pub(crate) fn card(number: &str, cvc: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2031, "holder_name": "TARO YAMADA", "cvc": cvc})
}

/// Submits a card as the hosted page does; asserts success and returns the answer.
/// The card page posting a card to `session` from anshin's own origin.
async fn post_card(
    t: &TestApp,
    ip: &str,
    session: &str,
    number: &str,
    cvc: &str,
) -> (StatusCode, HeaderMap, Value) {
    browser(
        t,
        ip,
        Method::POST,
        &format!("/checkout/{session}/card"),
        Some(PUBLIC),
        Some(card(number, cvc)),
    )
    .await
}

pub(crate) async fn submit(t: &TestApp, ip: &str, session: &str, number: &str, cvc: &str) -> Value {
    let (status, headers, answer) = post_card(t, ip, session, number, cvc).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(headers["cache-control"], "no-store");
    answer
}

async fn a_session_takes_one_card_from_anshins_own_origin(t: TestApp) {
    configure(&t);
    let (_, _, shop_key) = t.tenant_with_shop("checkout").await;
    let (status, opened) = t
        .call(
            Method::POST,
            "/v1/checkout/sessions",
            Some(&shop_key),
            Some(
                json!({"amount": 3980, "currency": "jpy", "order_ref": "order-2026-0001",
                        "allowed_origin": "https://Shop.Example:443", "locale": "en"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let id = opened["id"].as_str().expect("id");
    assert!(id.starts_with("cs_"), "{id}");
    assert_eq!(opened["url"], format!("{PUBLIC}/checkout/{id}"));
    assert_eq!(opened["status"], "open");
    let expires =
        anshin::clock::parse_rfc3339_ms(opened["expires_at"].as_str().expect("time")).expect("rfc3339");
    let ttl = expires - anshin::clock::now_ms();
    assert!((14 * 60_000..=15 * 60_000).contains(&ttl), "{ttl}");

    let view = t.app.checkout().page_view(id).await.expect("page view");
    assert_eq!(
        (
            view.allowed_origin.as_str(),
            view.locale.as_str(),
            view.amount,
            view.currency.as_str(),
            view.status.as_str()
        ),
        ("https://shop.example", "en", 3980, "JPY", "open")
    );

    let (_, _, status_before) = browser(
        &t,
        "198.51.100.7",
        Method::GET,
        &format!("/checkout/{id}/status"),
        None,
        None,
    )
    .await;
    assert_eq!(
        status_before,
        json!({"status": "open", "card": null, "payment": null})
    );

    let answer = submit(
        &t,
        "198.51.100.7",
        id,
        "４１１１ １１１１ １１１１ １１１１",
        "１２３",
    )
    .await;
    assert_eq!(answer["brand"], "visa");
    assert_eq!(answer["last4"], "1111");
    assert_eq!(
        (answer["exp_month"].as_u64(), answer["exp_year"].as_u64()),
        (Some(12), Some(2031))
    );
    let token = answer["card_token"].as_str().expect("token");
    assert!(token.starts_with("card_"));
    assert!(!answer.to_string().contains("4111111111111111"));

    let (status, _, polled) = browser(
        &t,
        "198.51.100.7",
        Method::GET,
        &format!("/checkout/{id}/status"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        polled,
        json!({"status": "card_submitted", "card": {"brand": "visa", "last4": "1111"}, "payment": null})
    );

    // The shop's server sees the token, never the number.
    let (status, session) = t
        .call(
            Method::GET,
            &format!("/v1/checkout/sessions/{id}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "card_submitted");
    assert_eq!(session["card"]["token"], token);
    assert_eq!(session["order_ref"], "order-2026-0001");
    assert_eq!(session["payment_id"], Value::Null);
    let (status, masked) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&shop_key), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the card is in the session's tenant and shop: {masked}"
    );

    // Single use.
    let (status, _, again) = post_card(&t, "198.51.100.7", id, "5555555555554444", "123").await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (StatusCode::GONE, Some("session_used"))
    );
    assert_eq!(
        t.app.checkout().page_view(id).await.expect("view").status,
        "card_submitted"
    );
}

async fn card_submissions_are_checked_before_anything_is_stored(t: TestApp) {
    configure(&t);
    let (_, _, shop_key) = t.tenant_with_shop("checks").await;
    let id = open_session(&t, &shop_key, 1000).await;
    let path = format!("/checkout/{id}/card");
    // (Origin, body, status, code, param)
    type Case<'a> = (Option<&'a str>, Value, StatusCode, &'a str, Option<&'a str>);
    let cases: [Case<'_>; 9] = [
        (
            Some(SHOP),
            card("4111111111111111", "123"),
            StatusCode::FORBIDDEN,
            "origin_mismatch",
            None,
        ),
        (
            None,
            card("4111111111111111", "123"),
            StatusCode::FORBIDDEN,
            "origin_mismatch",
            None,
        ),
        (
            Some("https://pay.anshin.test.evil.example"),
            card("4111111111111111", "123"),
            StatusCode::FORBIDDEN,
            "origin_mismatch",
            None,
        ),
        (
            Some(PUBLIC),
            card("4111111111111112", "123"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card_invalid",
            Some("number"),
        ),
        (
            Some(PUBLIC),
            card("4111111111111111", "12"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cvc_invalid",
            Some("cvc"),
        ),
        (
            Some(PUBLIC),
            card("378282246310005", "123"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cvc_invalid",
            Some("cvc"),
        ),
        (
            Some(PUBLIC),
            json!({"number": "4111111111111111", "exp_month": 1, "exp_year": 2020, "holder_name": "TARO", "cvc": "123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card_expired",
            Some("exp_year"),
        ),
        (
            Some(PUBLIC),
            json!({"number": "4111111111111111", "exp_month": 12, "exp_year": 2031, "holder_name": " ", "cvc": "123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "holder_name_invalid",
            Some("holder_name"),
        ),
        (
            Some(PUBLIC),
            json!({"number": "4111111111111111", "exp_month": 13, "exp_year": 2031, "holder_name": "TARO", "cvc": "123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "card_invalid",
            Some("exp_month"),
        ),
    ];
    for (origin, body, status, code, param) in cases {
        let (got, _, answer) = browser(&t, "198.51.100.8", Method::POST, &path, origin, Some(body)).await;
        assert_eq!(
            (
                got,
                answer["error"]["code"].as_str(),
                answer["error"]["param"].as_str()
            ),
            (status, Some(code), param),
            "{answer}"
        );
        for secret in ["4111111111111111", "4111111111111112", "378282246310005"] {
            assert!(!answer.to_string().contains(secret), "{answer}");
        }
    }
    // Nothing was taken: the session is still open and takes a good card.
    assert_eq!(
        t.app.checkout().page_view(&id).await.expect("view").status,
        "open"
    );
    submit(&t, "198.51.100.8", &id, "378282246310005", "1234").await;

    let (status, _, answer) = browser(
        &t,
        "198.51.100.8",
        Method::GET,
        "/checkout/cs_aaaaaaaaaaaaaaaaaaaaaaaaaa/status",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(
        t.app
            .checkout()
            .page_view("4111111111111111")
            .await
            .err()
            .map(|e| e.code()),
        Some("not_found")
    );

    // Bad sessions are refused with the field named.
    for (body, code, param) in [
        (
            json!({"amount": 0, "currency": "JPY", "order_ref": "o", "allowed_origin": SHOP}),
            "amount_invalid",
            "amount",
        ),
        (
            json!({"amount": 1, "currency": "XXY", "order_ref": "o", "allowed_origin": SHOP}),
            "invalid_currency",
            "currency",
        ),
        (
            json!({"amount": 1, "currency": "JPY", "order_ref": "山田 太郎", "allowed_origin": SHOP}),
            "order_ref_invalid",
            "order_ref",
        ),
        (
            json!({"amount": 1, "currency": "JPY", "order_ref": "o", "allowed_origin": "https://shop.example/pay"}),
            "origin_invalid",
            "allowed_origin",
        ),
        (
            json!({"amount": 1, "currency": "JPY", "order_ref": "o", "allowed_origin": "http://shop.example"}),
            "origin_invalid",
            "allowed_origin",
        ),
        (
            json!({"amount": 1, "currency": "JPY", "order_ref": "o", "allowed_origin": SHOP, "locale": "fr"}),
            "locale_invalid",
            "locale",
        ),
    ] {
        let (status, answer) = t
            .call(Method::POST, "/v1/checkout/sessions", Some(&shop_key), Some(body))
            .await;
        assert_eq!(
            (
                status,
                answer["error"]["code"].as_str(),
                answer["error"]["param"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some(param)),
            "{answer}"
        );
    }
}

async fn expired_sessions_are_gone(t: TestApp) {
    configure(&t);
    let (_, _, shop_key) = t.tenant_with_shop("expiry").await;
    let id = open_session(&t, &shop_key, 1000).await;
    t.raw_sql(&format!(
        "UPDATE checkout_sessions SET expires_at = {} WHERE id = '{id}'",
        anshin::clock::now_ms() - 1
    ))
    .await;
    let (status, _, answer) = post_card(&t, "198.51.100.9", &id, "4111111111111111", "123").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::GONE, Some("session_expired"))
    );
    assert_eq!(
        t.app.checkout().page_view(&id).await.expect("view").status,
        "expired"
    );
    let (_, session) = t
        .call(
            Method::GET,
            &format!("/v1/checkout/sessions/{id}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(session["status"], "expired");
    assert_eq!(session["card"], Value::Null);
}

async fn sessions_are_seen_only_by_their_shop_and_audited(t: TestApp) {
    configure(&t);
    let (tenant, _, shop_key) = t.tenant_with_shop("mine").await;
    let (_, _, other_key) = t.tenant_with_shop("theirs").await;
    let other_shop = t.shop(&tenant, "sister shop").await;
    let sister_key = t.key("shop", &tenant, Some(&other_shop)).await;
    let id = open_session(&t, &shop_key, 500).await;
    for key in [&other_key, &sister_key] {
        t.expect_error(
            Method::GET,
            &format!("/v1/checkout/sessions/{id}"),
            Some(key),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let auditor = t.key("auditor", &tenant, None).await;
    t.expect_error(
        Method::POST,
        "/v1/checkout/sessions",
        Some(&auditor),
        Some(json!({"amount": 1, "currency": "JPY", "order_ref": "o", "allowed_origin": SHOP})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    submit(&t, "203.0.113.5", &id, "5555555555554444", "321").await;
    browser(
        &t,
        "203.0.113.5",
        Method::POST,
        &format!("/checkout/{id}/card"),
        Some(SHOP),
        Some(card("4111111111111111", "123")),
    )
    .await;

    let log = t.audit_log().await;
    let text = serde_json::to_string(&log).expect("json");
    for secret in ["5555555555554444", "4111111111111111", "\"321\"", "TARO"] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
    let of = |event: &str| {
        log.iter()
            .filter(|e| e["event"] == event)
            .cloned()
            .collect::<Vec<_>>()
    };
    let created = of("checkout.create");
    assert_eq!(created.len(), 2, "the auditor's refused attempt too");
    assert_eq!(created[0]["resources"][0], id.as_str());
    assert_eq!(
        (created[1]["outcome"].as_str(), created[1]["code"].as_str()),
        (Some("failure"), Some("forbidden"))
    );
    let cards = of("checkout.card");
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert_eq!(cards[0]["outcome"], "success");
    assert_eq!(cards[0]["origin"], "203.0.113.5");
    assert_eq!(cards[0]["tenant"], tenant.as_str());
    assert!(
        cards[0]["fields"]
            .as_array()
            .expect("fields")
            .contains(&json!("card.cvc"))
    );
    assert_eq!(
        (cards[1]["outcome"].as_str(), cards[1]["code"].as_str()),
        (Some("failure"), Some("origin_mismatch"))
    );
    let tokenized = of("card.tokenize");
    assert_eq!(tokenized.len(), 1);
    assert_eq!(tokenized[0]["purpose"], "checkout");
    assert_eq!(of("checkout.read").len(), 2, "the refused reads are recorded too");
}

async fn card_submissions_are_rate_limited_per_client(t: TestApp) {
    configure(&t);
    let (_, _, shop_key) = t.tenant_with_shop("limits").await;
    let id = open_session(&t, &shop_key, 500).await;
    let path = format!("/checkout/{id}/card");
    // Card testing: one address trying number after number.
    let mut refused = None;
    for i in 0..12 {
        let (status, headers, answer) = browser(
            &t,
            "192.0.2.66",
            Method::POST,
            &path,
            Some(PUBLIC),
            Some(card("4111111111111112", "123")),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer["error"]["code"], "rate_limited");
            assert!(headers.contains_key("retry-after"));
            refused = Some(i);
            break;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(refused, Some(10), "ten tries, then 429");
    // Another shopper is not held up.
    submit(&t, "192.0.2.67", &id, "4111111111111111", "123").await;
}

/// A simulator, and anshin configured to reach it: allow-listed host, the
/// tenant's `default` processor route trusting the simulator's test CA.
pub(crate) async fn with_processor(
    t: &TestApp,
    tenant: &str,
    sim_config: anshin_processor_sim::Config,
) -> Simulator {
    let sim = Simulator::start(sim_config).await.expect("simulator");
    t.app.configure_checkout(CheckoutSettings {
        public_url: PUBLIC.into(),
        allowed_hosts: vec!["127.0.0.1".into()],
        ..CheckoutSettings::default()
    });
    route(
        t,
        tenant,
        "default",
        json!({"kind": "processor", "url": sim.url(), "ca_pem": sim.ca_pem(), "timeout_ms": 5000}),
    )
    .await;
    sim
}

pub(crate) async fn route(t: &TestApp, tenant: &str, name: &str, body: Value) -> Value {
    let (status, answer) = t
        .call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/routes/{name}"),
            Some(&t.operator_key),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// POST with an Idempotency-Key as a shop's server sends it.
pub(crate) async fn pay(
    t: &TestApp,
    key: &str,
    idem: &str,
    path: &str,
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    let headers = [
        ("authorization", format!("Bearer {key}")),
        ("idempotency-key", idem.to_owned()),
    ];
    send(&t.app, "192.0.2.200", Method::POST, path, &headers, Some(body)).await
}

async fn payments_go_through_the_proxy_to_the_processor_and_never_expose_the_card(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("payments").await;
    let sim = with_processor(&t, &tenant, Default::default()).await;
    let session = open_session(&t, &shop_key, 3980).await;
    let view = t.app.checkout().page_view(&session).await.expect("view");
    assert_eq!(view.acs_origins, vec![sim.url().to_owned()]);
    submit(&t, "198.51.100.20", &session, "4111111111111111", "737").await;

    let body = json!({"checkout_session_id": session, "amount": 3980, "currency": "JPY", "capture": false});
    let (status, _, paid) = pay(&t, &shop_key, "order-1-attempt-1", "/v1/payments", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "authorized");
    assert_eq!(paid["next_action"], Value::Null);
    let payment = paid["id"].as_str().expect("id").to_owned();
    assert!(payment.starts_with("pay_"));
    assert!(!paid.to_string().contains("4111111111111111"));
    // The real number and security code arrived at the processor.
    let reference = paid["processor_reference"].as_str().expect("reference");
    let seen = sim.received(reference).expect("received");
    assert_eq!(seen.pan_fingerprint, sim.pan_fingerprint("4111111111111111"));
    assert_eq!(seen.cvc_fingerprint, Some(sim.cvc_fingerprint("737")));

    // The same key and request: the stored answer, not a second charge.
    let (status, headers, again) =
        pay(&t, &shop_key, "order-1-attempt-1", "/v1/payments", body.clone()).await;
    assert_eq!((status, &again), (StatusCode::OK, &paid));
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, reused) = pay(
        &t,
        &shop_key,
        "order-1-attempt-1",
        "/v1/payments",
        json!({"checkout_session_id": session, "amount": 3981, "currency": "JPY"}),
    )
    .await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused"))
    );
    // A new key on the paid session: it is used.
    let (status, _, used) = pay(&t, &shop_key, "order-1-attempt-2", "/v1/payments", body).await;
    assert_eq!(
        (status, used["error"]["code"].as_str()),
        (StatusCode::GONE, Some("session_used"))
    );

    let (_, _, polled) = browser(
        &t,
        "198.51.100.20",
        Method::GET,
        &format!("/checkout/{session}/status"),
        None,
        None,
    )
    .await;
    assert_eq!(polled["status"], "completed");
    assert_eq!(
        polled["payment"],
        json!({"id": payment, "status": "authorized", "decline_code": null, "challenge_url": null})
    );

    // Capture, refunds and a void the processor refuses, in order.
    for (idem, op, body, status, want) in [
        (
            "cap-1",
            "capture",
            json!({}),
            StatusCode::OK,
            json!({"status": "captured", "amount_captured": 3980}),
        ),
        (
            "ref-1",
            "refunds",
            json!({"amount": 980}),
            StatusCode::OK,
            json!({"status": "partially_refunded", "amount_refunded": 980}),
        ),
        (
            "ref-2",
            "refunds",
            json!({"amount": 5000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": {"code": "amount_too_large"}}),
        ),
        (
            "void-1",
            "void",
            json!({}),
            StatusCode::CONFLICT,
            json!({"error": {"code": "invalid_state"}}),
        ),
    ] {
        let (got, _, answer) = pay(&t, &shop_key, idem, &format!("/v1/payments/{payment}/{op}"), body).await;
        assert_eq!(got, status, "{op}: {answer}");
        assert_includes(&answer, &want);
    }
    let (status, read) = t
        .call(
            Method::GET,
            &format!("/v1/payments/{payment}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(
        (status, read["status"].as_str(), read["amount_refunded"].as_i64()),
        (StatusCode::OK, Some("partially_refunded"), Some(980))
    );
    let (_, _, other_key) = t.tenant_with_shop("other").await;
    t.expect_error(
        Method::GET,
        &format!("/v1/payments/{payment}"),
        Some(&other_key),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Amount and currency must match the session.
    let second = open_session(&t, &shop_key, 1200).await;
    submit(&t, "198.51.100.21", &second, "5555555555554444", "123").await;
    for (body, code, param) in [
        (
            json!({"checkout_session_id": second, "amount": 1, "currency": "JPY"}),
            "amount_mismatch",
            "amount",
        ),
        (
            json!({"checkout_session_id": second, "amount": 1200, "currency": "USD"}),
            "currency_mismatch",
            "currency",
        ),
    ] {
        let (status, _, answer) = pay(&t, &shop_key, &format!("mismatch-{code}"), "/v1/payments", body).await;
        assert_eq!(
            (
                status,
                answer["error"]["code"].as_str(),
                answer["error"]["param"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some(param))
        );
    }
    let (status, _, missing) = send(
        &t.app,
        "192.0.2.200",
        Method::POST,
        "/v1/payments",
        &[("authorization", format!("Bearer {shop_key}"))],
        Some(json!({"card_token": "card_x", "amount": 1, "currency": "JPY"})),
    )
    .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_missing"))
    );

    // A stored card (no security code) and a decline.
    let (_, stored) = t.tokenize(&shop_key, "4000000000000002").await;
    let token = stored["token"].as_str().expect("token");
    let (status, _, declined) = pay(
        &t,
        &shop_key,
        "token-1",
        "/v1/payments",
        json!({"card_token": token, "amount": 500, "currency": "JPY"}),
    )
    .await;
    assert_eq!(
        (
            status,
            declined["status"].as_str(),
            declined["decline_code"].as_str()
        ),
        (StatusCode::OK, Some("declined"), Some("do_not_honor")),
        "{declined}"
    );
    let seen = sim
        .received(declined["processor_reference"].as_str().expect("reference"))
        .expect("received");
    assert_eq!(seen.cvc_fingerprint, None);

    let log = t.audit_log().await;
    let text = serde_json::to_string(&log).expect("json");
    for secret in ["4111111111111111", "5555555555554444", "\"737\""] {
        assert!(!text.contains(secret));
    }
    let created: Vec<&Value> = log
        .iter()
        .filter(|e| e["event"] == "payment.create" && e["outcome"] == "success")
        .collect();
    assert!(created.iter().any(|e| {
        e["resources"][0] == payment.as_str()
            && e["fields"]
                .as_array()
                .expect("fields")
                .contains(&json!("card.cvc"))
    }));
    for event in ["payment.capture", "payment.refund", "payment.read", "route.write"] {
        assert!(log.iter().any(|e| e["event"] == event), "{event}");
    }
}

async fn a_processor_timeout_is_504_and_the_retry_never_charges_twice(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("timeouts").await;
    let sim = with_processor(
        &t,
        &tenant,
        anshin_processor_sim::Config {
            slow_delay: std::time::Duration::from_millis(2500),
            ..Default::default()
        },
    )
    .await;
    route(
        &t,
        &tenant,
        "default",
        json!({"kind": "processor", "url": sim.url(), "ca_pem": sim.ca_pem(), "timeout_ms": 400}),
    )
    .await;
    let (_, stored) = t.tokenize(&shop_key, "4000000000000077").await;
    let body = json!({"card_token": stored["token"], "amount": 700, "currency": "JPY", "capture": true});
    let (status, _, first) = pay(&t, &shop_key, "slow-1", "/v1/payments", body.clone()).await;
    assert_eq!(
        (status, first["error"]["code"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("processor_timeout")),
        "{first}"
    );
    // While the first attempt still runs at the processor, the retry reaches
    // it with the same processor key and byte-identical body: the processor
    // says so (a different key or body would have been a second charge).
    let (status, _, during) = pay(&t, &shop_key, "slow-1", "/v1/payments", body.clone()).await;
    assert_eq!(
        (status, during["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("payment_in_progress")),
        "{during}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let (status, _, after) = pay(&t, &shop_key, "slow-1", "/v1/payments", body.clone()).await;
    assert_eq!(
        (status, after["status"].as_str()),
        (StatusCode::OK, Some("captured")),
        "{after}"
    );
    let (status, headers, replay) = pay(&t, &shop_key, "slow-1", "/v1/payments", body).await;
    assert_eq!((status, &replay), (StatusCode::OK, &after));
    assert_eq!(headers["idempotent-replayed"], "true");
    assert!(
        sim.received(after["processor_reference"].as_str().expect("reference"))
            .is_some()
    );
}

/// The key's claim, the payment row and the session's binding commit
/// together, so first attempts racing on one key, or payments racing on one
/// session, make one payment; a request that lost the race for a session
/// leaves its key unclaimed.
async fn concurrent_attempts_on_one_key_or_one_session_charge_once(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("races").await;
    let _sim = with_processor(&t, &tenant, Default::default()).await;
    let (_, stored) = t.tokenize(&shop_key, "4111111111111111").await;
    let body = json!({"card_token": stored["token"], "amount": 1500, "currency": "JPY"});
    let answers = pay_at_once(&t, &shop_key, vec![("race-1".to_owned(), body.clone()); 6]).await;
    let paid: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, answer)| answer)
        .collect();
    assert!(!paid.is_empty(), "{answers:?}");
    for (status, answer) in &answers {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::CONFLICT && answer["error"]["code"] == "payment_in_progress"),
            "{status} {answer}"
        );
    }
    for answer in &paid {
        assert_eq!(
            (&answer["id"], &answer["processor_reference"], &answer["status"]),
            (
                &paid[0]["id"],
                &paid[0]["processor_reference"],
                &json!("authorized")
            )
        );
    }
    let (status, headers, replay) = pay(&t, &shop_key, "race-1", "/v1/payments", body).await;
    assert_eq!((status, &replay["id"]), (StatusCode::OK, &paid[0]["id"]));
    assert_eq!(headers["idempotent-replayed"], "true");

    let session = open_session(&t, &shop_key, 2400).await;
    submit(&t, "198.51.100.30", &session, "4111111111111111", "737").await;
    let on_session = json!({"checkout_session_id": session, "amount": 2400, "currency": "JPY"});
    let answers = pay_at_once(
        &t,
        &shop_key,
        (0..4)
            .map(|i| (format!("session-race-{i}"), on_session.clone()))
            .collect(),
    )
    .await;
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].0 == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (i, (status, answer)) in answers.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(
                (*status, answer["error"]["code"].as_str()),
                (StatusCode::GONE, Some("session_used")),
                "{answer}"
            );
        }
    }
    // A losing key was never claimed: it serves another payment.
    let loser = (0..answers.len()).find(|&i| i != winners[0]).expect("a loser");
    let (status, _, other) = pay(
        &t,
        &shop_key,
        &format!("session-race-{loser}"),
        "/v1/payments",
        json!({"card_token": stored["token"], "amount": 900, "currency": "JPY"}),
    )
    .await;
    assert_eq!(
        (status, other["status"].as_str()),
        (StatusCode::OK, Some("authorized")),
        "{other}"
    );
}

/// Sends the payments (Idempotency-Key, body) at once: the answers, in order.
async fn pay_at_once(t: &TestApp, key: &str, payments: Vec<(String, Value)>) -> Vec<(StatusCode, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (idem, body)) in payments.into_iter().enumerate() {
        let (app, key) = (t.app.clone(), key.to_owned());
        tasks.spawn(async move {
            let headers = [
                ("authorization", format!("Bearer {key}")),
                ("idempotency-key", idem),
            ];
            let (status, _, answer) = send(
                &app,
                "192.0.2.200",
                Method::POST,
                "/v1/payments",
                &headers,
                Some(body),
            )
            .await;
            (i, status, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.expect("task"));
    }
    answers.sort_by_key(|(i, _, _)| *i);
    answers
        .into_iter()
        .map(|(_, status, answer)| (status, answer))
        .collect()
}

async fn tls_failures_and_hosts_off_the_allow_list_are_refused(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("tls").await;
    let sim = with_processor(&t, &tenant, Default::default()).await;
    let stranger = Simulator::start(Default::default())
        .await
        .expect("second simulator");
    // Trusting another CA than the processor's: the handshake fails.
    route(
        &t,
        &tenant,
        "default",
        json!({"kind": "processor", "url": sim.url(), "ca_pem": stranger.ca_pem()}),
    )
    .await;
    let (_, stored) = t.tokenize(&shop_key, "4111111111111111").await;
    let body = json!({"card_token": stored["token"], "amount": 100, "currency": "JPY"});
    let (status, _, answer) = pay(&t, &shop_key, "tls-1", "/v1/payments", body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("processor_unreachable")),
        "{answer}"
    );

    for (body, status, code) in [
        (
            json!({"kind": "processor", "url": "https://processor.evil.example"}),
            StatusCode::FORBIDDEN,
            "route_host_not_allowed",
        ),
        (
            json!({"kind": "processor", "url": sim.url().replace("https", "http")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "route_url_invalid",
        ),
        (
            json!({"kind": "processor", "url": sim.url(), "ca_pem": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "route_ca_invalid",
        ),
        (
            json!({"kind": "processor", "url": sim.url(), "template": {"n": "{{card.track2}}"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_invalid",
        ),
        (
            json!({"kind": "outbound", "url": sim.url(), "token_paths": ["card"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "token_path_invalid",
        ),
    ] {
        let (got, answer) = t
            .call(
                Method::PUT,
                &format!("/v1/tenants/{tenant}/routes/other"),
                Some(&t.operator_key),
                Some(body),
            )
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    t.expect_error(
        Method::PUT,
        &format!("/v1/tenants/{tenant}/routes/default"),
        Some(&shop_key),
        Some(json!({"kind": "processor", "url": sim.url()})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Taking the host off the allow-list stops traffic on existing routes.
    route(
        &t,
        &tenant,
        "default",
        json!({"kind": "processor", "url": sim.url(), "ca_pem": sim.ca_pem()}),
    )
    .await;
    configure(&t);
    let (_, stored) = t.tokenize(&shop_key, "5555555555554444").await;
    let (status, _, answer) = pay(
        &t,
        &shop_key,
        "tls-2",
        "/v1/payments",
        json!({"card_token": stored["token"], "amount": 100, "currency": "JPY"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("route_host_not_allowed")),
        "{answer}"
    );
}

async fn a_three_d_secure_challenge_completes_through_the_return_page(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("3ds").await;
    let sim = with_processor(&t, &tenant, Default::default()).await;
    let session = open_session(&t, &shop_key, 5000).await;
    submit(&t, "198.51.100.30", &session, "4000000000003220", "123").await;
    let (status, _, paid) = pay(
        &t,
        &shop_key,
        "3ds-1",
        "/v1/payments",
        json!({"checkout_session_id": session, "amount": 5000, "currency": "JPY"}),
    )
    .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (StatusCode::OK, Some("challenge_required")),
        "{paid}"
    );
    assert_eq!(paid["next_action"]["type"], "three_ds_challenge");
    let payment = paid["id"].as_str().expect("id");
    let (_, _, polled) = browser(
        &t,
        "198.51.100.30",
        Method::GET,
        &format!("/checkout/{session}/status"),
        None,
        None,
    )
    .await;
    assert_eq!(polled["status"], "card_submitted");
    let challenge = polled["payment"]["challenge_url"]
        .as_str()
        .expect("challenge url")
        .to_owned();
    assert!(challenge.starts_with(sim.url()), "{challenge}");
    assert_eq!(
        paid["next_action"]["url"],
        challenge.as_str(),
        "the issuer's page, for shops paying by token"
    );

    // The shopper answers the issuer's page (as the ACS iframe would).
    let config = sim.client_tls_config().expect("tls");
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let request = Request::builder()
        .method(Method::POST)
        .uri(&challenge)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"code=123456&action=submit",
        )))
        .expect("request");
    let response = client.request(request).await.expect("acs");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let path = location.strip_prefix(PUBLIC).expect("returns to anshin");
    assert!(
        path.starts_with(&format!("/checkout/{session}/3ds-return?")),
        "{path}"
    );

    let (status, headers, _) = browser(&t, "198.51.100.30", Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    // Framed by the card page, itself framed by the shop's page: both are
    // allowed ancestors, and nothing else.
    assert!(
        csp.contains("default-src 'self'") && csp.ends_with("frame-ancestors 'self' https://shop.example"),
        "{csp}"
    );
    let (_, _, polled) = browser(
        &t,
        "198.51.100.30",
        Method::GET,
        &format!("/checkout/{session}/status"),
        None,
        None,
    )
    .await;
    assert_eq!(polled["status"], "completed");
    assert_eq!(polled["payment"]["status"], "authorized");
    assert_eq!(polled["payment"]["challenge_url"], Value::Null);
    let (_, read) = t
        .call(
            Method::GET,
            &format!("/v1/payments/{payment}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(read["status"], "authorized");
    // Coming back again changes nothing.
    let (status, _, _) = browser(&t, "198.51.100.30", Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        t.audit_log()
            .await
            .iter()
            .any(|e| e["event"] == "payment.complete" && e["outcome"] == "success")
    );
}

async fn outbound_routes_replace_tokens_at_configured_paths_only(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("outbound").await;
    let sim = with_processor(&t, &tenant, Default::default()).await;
    route(
        &t,
        &tenant,
        "legacy",
        json!({"kind": "outbound", "url": format!("{}/v1/payments", sim.url()),
        "ca_pem": sim.ca_pem(), "token_paths": ["$.card.number"]}),
    )
    .await;
    let (_, stored) = t.tokenize(&shop_key, "3530111333300000").await;
    let token = stored["token"].as_str().expect("token");
    // The shop's own request format; the processor gets the number, the shop
    // gets the answer with card data redacted. (No Idempotency-Key: the
    // simulator refuses, which shows the upstream's error comes back as is.)
    let (status, answer) = t
        .call(
            Method::POST,
            "/v1/proxy/legacy",
            Some(&shop_key),
            Some(json!({
            "amount": 1500, "currency": "JPY", "capture": false,
            "card": {"number": token, "exp_month": 12, "exp_year": 2031}})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key_missing")),
        "{answer}"
    );
    let (status, answer) = t
        .call(
            Method::POST,
            "/v1/proxy/legacy",
            Some(&shop_key),
            Some(json!({"card": {"number": "not-a-token"}})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("card_token_invalid"))
    );
    let (_, _, other_key) = t.tenant_with_shop("someone else").await;
    let (status, answer) = t
        .call(
            Method::POST,
            "/v1/proxy/legacy",
            Some(&other_key),
            Some(json!({"card": {"number": token}})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("route_not_found")),
        "{answer}"
    );
    let log = t.audit_log().await;
    assert!(
        log.iter()
            .any(|e| e["event"] == "proxy.forward" && e["resources"][0] == token)
    );
}

/// Every file under `dir` (recursively) that holds `needle` bounded by
/// non-digits; files that cannot be read are listed apart.
/// Files under `dir` written at or after `since` that hold one of `needles`
/// bounded by non-digits.
/// Every file under `dir` with its modification time.
fn modified_times(dir: &std::path::Path, into: &mut Unchanged) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            modified_times(&path, into);
        } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
            into.insert(path, modified);
        }
    }
}

type Unchanged = std::collections::HashMap<std::path::PathBuf, std::time::SystemTime>;

/// Files under `dir` modified since `since`, except those still as they were
/// in `unchanged`, that hold one of `needles` bounded by non-digits.
fn files_holding(
    dir: &std::path::Path,
    since: std::time::SystemTime,
    unchanged: &Unchanged,
    needles: &[&str],
    found: &mut Vec<String>,
    unreadable: &mut u64,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        *unreadable += 1;
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_holding(&path, since, unchanged, needles, found, unreadable);
            continue;
        }
        if entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m < since || unchanged.get(&path) == Some(&m))
        {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            *unreadable += 1;
            continue;
        };
        for needle in needles {
            let n = needle.as_bytes();
            let hit = bytes
                .windows(n.len() + 2)
                .any(|w| &w[1..=n.len()] == n && !w[0].is_ascii_digit() && !w[n.len() + 1].is_ascii_digit());
            if hit {
                found.push(format!("{} holds {needle}", path.display()));
            }
        }
    }
}

async fn no_security_code_is_left_in_any_file_after_checkouts(t: TestApp) {
    // Only files written since the codes existed can hold them: the
    // PostgreSQL cluster is shared with every other test and its older
    // files (WAL, other schemas) hold arbitrary digits.
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let (tenant, _, shop_key) = t.tenant_with_shop("cvc search").await;
    let _sim = with_processor(&t, &tenant, Default::default()).await;
    // Nor can the data directory's files not written since (the root key's
    // 64 random hex digits held 9180 once, inside the two seconds above).
    let mut unchanged = Unchanged::new();
    modified_times(&t.data_dir(), &mut unchanged);
    // Distinctive codes (digits 8, 9, 0 and 1 never appear in ids, which are
    // base32), searched for bounded by non-digits.
    let codes = ["9180", "8019", "9081"];
    for (i, code) in codes.iter().enumerate() {
        let session = open_session(&t, &shop_key, 2000).await;
        submit(
            &t,
            &format!("198.51.100.{}", 40 + i),
            &session,
            "378282246310005",
            code,
        )
        .await;
        if i < 2 {
            let (status, _, paid) = pay(
                &t,
                &shop_key,
                &format!("cvc-{i}"),
                "/v1/payments",
                json!({"checkout_session_id": session, "amount": 2000, "currency": "JPY"}),
            )
            .await;
            assert_eq!(paid["status"], "authorized", "{status} {paid}");
        }
    }
    // Backups: SQLite's online backup (data and key state), pg_dump of the schema.
    let backup = t.data_dir().join("backup");
    std::fs::create_dir(&backup).expect("backup dir");
    match t.backend {
        Backend::Sqlite => {
            for part in [anshin::db::BackupPart::Data, anshin::db::BackupPart::Keys] {
                let dir = backup.join(format!("{part:?}"));
                std::fs::create_dir(&dir).expect("dir");
                t.app.store.backup(&dir, part).await.expect("backup");
            }
        }
        Backend::Postgres => {
            let url = t.location.database_url.clone().expect("url");
            let schema = url.rsplit("search_path%3D").next().expect("schema");
            let dump = std::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(url.split('?').next().expect("url"))
                .arg("--schema")
                .arg(schema)
                .arg("--file")
                .arg(backup.join("dump.sql"))
                .status();
            match dump {
                Ok(status) => assert!(status.success(), "pg_dump failed"),
                Err(_) => eprintln!("note: pg_dump is not installed; the PostgreSQL dump was not searched"),
            }
        }
    }
    // The search finds a code where one is.
    let control = tempfile::tempdir().expect("tempdir");
    std::fs::write(control.path().join("leak"), b"\x00cvc=9180;").expect("write");
    let (mut found, mut unreadable) = (Vec::new(), 0);
    files_holding(
        control.path(),
        since,
        &Unchanged::new(),
        &codes,
        &mut found,
        &mut unreadable,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let mut found = Vec::new();
    files_holding(
        &t.data_dir(),
        since,
        &unchanged,
        &codes,
        &mut found,
        &mut unreadable,
    );
    assert!(found.is_empty(), "{found:?}");
    if t.backend == Backend::Postgres {
        let url = crate::harness::postgres_url();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client.batch_execute("CHECKPOINT").await.expect("checkpoint");
        let dir: String = client
            .query_one("SHOW data_directory", &[])
            .await
            .expect("show")
            .get(0);
        let mut found = Vec::new();
        files_holding(
            std::path::Path::new(&dir),
            since,
            &Unchanged::new(),
            &codes,
            &mut found,
            &mut unreadable,
        );
        assert!(found.is_empty(), "{found:?}");
    }
    if unreadable > 0 {
        eprintln!("note: {unreadable} files or directories could not be read and were not searched");
    }
}

async fn a_security_code_held_on_one_node_reaches_the_processor_from_another(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("nodes").await;
    let sim = with_processor(&t, &tenant, Default::default()).await;
    // Node A serves the card page; its maintenance runs as `anshin serve` runs it.
    let node_a = t.app.clone();
    node_a.cvc_maintain().await.expect("maintain");
    let ticker = tokio::spawn({
        let node_a = node_a.clone();
        async move {
            loop {
                node_a.cvc_maintain().await.expect("maintain");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    });
    let session = open_session(&t, &shop_key, 2500).await;
    submit(&t, "198.51.100.50", &session, "378282246310005", "8091").await;

    // Node B starts after the code was held: it has never seen the epoch key.
    let node_b = std::sync::Arc::new(anshin::app::App::open(&t.location).await.expect("second node"));
    node_b.configure_checkout(CheckoutSettings {
        public_url: PUBLIC.into(),
        allowed_hosts: vec!["127.0.0.1".into()],
        ..CheckoutSettings::default()
    });
    let headers = [
        ("authorization", format!("Bearer {shop_key}")),
        ("idempotency-key", "node-b-1".to_owned()),
    ];
    let body = json!({"checkout_session_id": session, "amount": 2500, "currency": "JPY"});
    let (status, _, paid) = send(
        &node_b,
        "192.0.2.201",
        Method::POST,
        "/v1/payments",
        &headers,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paid["status"], "authorized", "{paid}");
    let seen = sim
        .received(paid["processor_reference"].as_str().expect("reference"))
        .expect("received");
    assert_eq!(
        seen.cvc_fingerprint,
        Some(sim.cvc_fingerprint("8091")),
        "the code crossed nodes sealed"
    );
    ticker.abort();
}

/// Asserts that `answer` has every field of `want` with the same value.
fn assert_includes(answer: &Value, want: &Value) {
    match want {
        Value::Object(fields) => {
            for (name, value) in fields {
                assert_includes(&answer[name], value);
            }
        }
        _ => assert_eq!(answer, want),
    }
}

/// Another node's uncommitted claim of the same key (and, with a session,
/// its hold on the session's row): this node's start waits for it, sees the
/// claim once it commits although its statement began before, and answers
/// from it; nothing of its own is written or sent.
mod postgres_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_claimed_by_another_node_while_a_payment_waits_is_answered_from_that_claim() {
        let Some(t) = TestApp::new(Backend::Postgres).await else {
            return;
        };
        let (tenant, _, shop_key) = t.tenant_with_shop("waits").await;
        let sim = with_processor(&t, &tenant, Default::default()).await;
        let (_, stored) = t.tokenize(&shop_key, "4111111111111111").await;
        let session = open_session(&t, &shop_key, 2400).await;
        submit(&t, "198.51.100.31", &session, "4111111111111111", "737").await;
        let url = t.location.database_url.clone().expect("url");
        let (other, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let payments = [
            (
                json!({"checkout_session_id": session, "amount": 2400, "currency": "JPY"}),
                format!("UPDATE checkout_sessions SET payment_id = 'pay_other' WHERE id = '{session}';"),
            ),
            (
                json!({"card_token": stored["token"], "amount": 900, "currency": "JPY"}),
                String::new(),
            ),
        ];
        for (i, (body, hold)) in payments.into_iter().enumerate() {
            let key = format!("shared-{i}");
            other
                .batch_execute(&format!(
                    "BEGIN;
                     INSERT INTO payment_idempotency (tenant_id, key, request_hash, payment_id, created_at)
                     VALUES ('{tenant}', '{key}', '\\x00', 'pay_other', 0);
                     {hold}"
                ))
                .await
                .expect("the other node's claim");
            let ((status, _, answer), ()) =
                tokio::join!(pay(&t, &shop_key, &key, "/v1/payments", body), async {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    other.batch_execute("COMMIT").await.expect("commit");
                });
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (StatusCode::CONFLICT, Some("idempotency_key_reused")),
                "{answer}"
            );
        }
        let mut payments = Vec::new();
        for entry in t.audit_log_of("payment.create").await {
            payments.extend(entry["resources"].as_array().expect("resources").clone());
        }
        for payment in payments
            .iter()
            .filter_map(Value::as_str)
            .filter(|r| r.starts_with("pay_"))
        {
            assert!(sim.received(payment).is_none(), "{payment} reached the processor");
        }
    }
}
