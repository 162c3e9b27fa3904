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

use crate::harness::{TestApp, both_backends};

both_backends!(
    a_session_takes_one_card_from_anshins_own_origin,
    card_submissions_are_checked_before_anything_is_stored,
    expired_sessions_are_gone,
    sessions_are_seen_only_by_their_shop_and_audited,
    card_submissions_are_rate_limited_per_client,
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

/// A request as a browser sends it: optional `Origin`, no API key, from `ip`.
pub(crate) async fn browser(
    t: &TestApp,
    ip: &str,
    method: Method,
    path: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
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
    let response = anshin::http::router(t.app.clone())
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
pub(crate) async fn submit(t: &TestApp, ip: &str, session: &str, number: &str, cvc: &str) -> Value {
    let (status, headers, answer) = browser(
        t,
        ip,
        Method::POST,
        &format!("/checkout/{session}/card"),
        Some(PUBLIC),
        Some(card(number, cvc)),
    )
    .await;
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
    let (status, _, again) = browser(
        &t,
        "198.51.100.7",
        Method::POST,
        &format!("/checkout/{id}/card"),
        Some(PUBLIC),
        Some(card("5555555555554444", "123")),
    )
    .await;
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
    let cases: [(Option<&str>, Value, StatusCode, &str, Option<&str>); 9] = [
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
    let (status, _, answer) = browser(
        &t,
        "198.51.100.9",
        Method::POST,
        &format!("/checkout/{id}/card"),
        Some(PUBLIC),
        Some(card("4111111111111111", "123")),
    )
    .await;
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
