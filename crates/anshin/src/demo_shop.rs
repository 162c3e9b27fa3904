//! A small demo shop on its own origin, for `anshin demo` and the browser
//! test: what a shop integrating anshin's hosted card page looks like.
//!
//! Its server creates a checkout session with the shop's API key
//! (`POST /v1/checkout/sessions`), serves a page that embeds the session's
//! hosted page in an iframe, and, when the page hears `anshin:card_tokenized`,
//! charges the session (`POST /v1/payments`). It keeps a log of every request
//! it received and every answer anshin gave it, bodies included, and its
//! orders in memory: the browser test reads both to prove the shop never held
//! a card number.
//!
//! It also registers its payment webhook with anshin (as a real shop does once)
//! and checks the signature of every event it receives, keeping the payment
//! status each verified event tells in its orders (`GET /orders`). It never
//! logs the secret it is shown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anshin_crypto::secret::SecretString;
use anshin_crypto::webhook::WebhookKey;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cmd::scan_upload::exchange;
use crate::error::{Error, ErrorKind, Result};
use crate::http::checkout_page::amount_display;
use crate::proxy::webhooks::PaymentEventBody;
use crate::text::{fill, html_escape};

const PAGE: &str = include_str!("../assets/demo_shop/shop.html");
const SCRIPT: &str = include_str!("../assets/demo_shop/shop.js");
const STYLE: &str = include_str!("../assets/demo_shop/shop.css");

/// Where the shop takes anshin's payment webhooks.
const WEBHOOK_PATH: &str = "/webhooks/anshin";
/// Signatures further than this from now are refused (replays).
const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The one item of the demo shop, and its price in yen.
pub const ITEM_AMOUNT: i64 = 3_000;
const CURRENCY: &str = "JPY";

/// How the demo shop runs.
pub struct ShopConfig {
    /// Where the shop listens (port 0: any free port).
    pub listen: SocketAddr,
    /// anshin's base URL, for the API and the hosted page (`http://127.0.0.1:8080`).
    pub anshin_url: String,
    /// The shop's API key at anshin.
    pub api_key: SecretString,
    /// The shop's name, shown on its page.
    pub shop_name: String,
    /// The shop's id at anshin, for its webhook endpoint.
    pub shop_id: String,
}

/// One order of the shop: what the shop stores. Never a card number: a token,
/// the brand and the last four digits at most.
#[derive(Debug, Clone, Serialize)]
pub struct ShopOrder {
    pub order_ref: String,
    pub session_id: String,
    pub amount: i64,
    pub currency: String,
    pub card_token: Option<String>,
    pub payment_id: Option<String>,
    pub payment_status: Option<String>,
    /// The status the last verified webhook told.
    pub webhook_status: Option<String>,
}

struct Shop {
    anshin_url: String,
    anshin_origin: String,
    api_key: SecretString,
    shop_name: String,
    shop_id: String,
    origin: String,
    /// The webhook secret anshin showed, in memory only.
    webhook_key: OnceLock<WebhookKey>,
    log: Mutex<Vec<String>>,
    orders: Mutex<HashMap<String, ShopOrder>>,
    next_order: Mutex<u64>,
}

/// A running demo shop. Dropping it stops the server.
pub struct DemoShop {
    origin: String,
    shop: Arc<Shop>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DemoShop {
    /// Binds and serves in the background on the current runtime.
    pub async fn start(config: ShopConfig) -> Result<Self> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "listen_failed",
                format!(
                    "the demo shop cannot listen on {}; choose another address with --shop-listen",
                    config.listen
                ),
            )
            .with_cause(e)
        })?;
        let addr = listener.local_addr().map_err(Error::internal)?;
        let origin = format!("http://{addr}");
        let anshin_url = config.anshin_url.trim_end_matches('/').to_owned();
        let shop = Arc::new(Shop {
            anshin_origin: origin_of(&anshin_url),
            anshin_url,
            api_key: config.api_key,
            shop_name: config.shop_name,
            shop_id: config.shop_id,
            origin: origin.clone(),
            webhook_key: OnceLock::new(),
            log: Mutex::default(),
            orders: Mutex::default(),
            next_order: Mutex::new(1),
        });
        let router = Router::new()
            .route("/", get(shop_page))
            .route("/pay", post(pay))
            .route("/orders", get(list_orders))
            .route(WEBHOOK_PATH, post(webhook))
            .route(
                "/shop.js",
                get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/shop.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .layer(middleware::from_fn_with_state(shop.clone(), record_request))
            .with_state(shop.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!(error = %err, "demo shop stopped");
            }
        });
        tokio::spawn(register_webhook(shop.clone()));
        Ok(Self {
            origin,
            shop,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The shop's origin and base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.origin
    }

    /// Everything the shop's server received and every answer anshin gave it.
    pub fn log(&self) -> Vec<String> {
        self.shop.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The shop's stored orders.
    pub fn orders(&self) -> Vec<ShopOrder> {
        self.shop.orders()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoShop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `scheme://host:port` of a URL.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

impl Shop {
    fn orders(&self) -> Vec<ShopOrder> {
        self.orders
            .lock()
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default()
    }

    fn record(&self, line: String) {
        tracing::info!(target: "anshin::demo_shop", "{line}");
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    /// Calls anshin's API with the shop's key; logs the answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: &Value,
    ) -> Result<(StatusCode, Value)> {
        let mut request = axum::http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.anshin_url))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.api_key.expose()))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(Error::internal)?;
        let (status, bytes) = exchange(request).await.map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "anshin_unreachable",
                "the demo shop cannot reach anshin",
            )
        })?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let logged = if answer.get("secret").is_some() {
            // A webhook secret is kept in memory, never logged.
            let mut shown = answer.clone();
            shown["secret"] = json!("***");
            shown.to_string()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        self.record(format!(
            "anshin answered {method} {path}: {} {logged}",
            status.as_u16()
        ));
        Ok((status, answer))
    }

    fn keep_webhook_secret(&self, answer: &Value) {
        if let Some(key) = answer["secret"]
            .as_str()
            .and_then(|s| WebhookKey::new(s.as_bytes()).ok())
        {
            let _ = self.webhook_key.set(key);
            self.record("payment webhooks registered".to_owned());
        }
    }
}

/// Registers the shop's webhook endpoint with anshin. anshin may not be
/// listening yet (`anshin demo` starts it after the shop): tried again for a
/// minute. An endpoint left by an earlier run gets a new secret, since a
/// secret is shown only once.
async fn register_webhook(shop: Arc<Shop>) {
    let path = format!("/v1/shops/{}/webhook", shop.shop_id);
    let body = json!({"url": format!("{}{WEBHOOK_PATH}", shop.origin)});
    for _ in 0..120 {
        match shop.call(Method::PUT, &path, None, &body).await {
            Ok((StatusCode::CREATED, answer)) => return shop.keep_webhook_secret(&answer),
            Ok((StatusCode::OK, _)) => {
                if let Ok((StatusCode::OK, answer)) = shop
                    .call(Method::POST, &format!("{path}/rotate-secret"), None, &json!({}))
                    .await
                {
                    shop.keep_webhook_secret(&answer);
                }
                return;
            }
            Ok((status, _)) => {
                return shop.record(format!(
                    "payment webhooks are off: anshin answered {}",
                    status.as_u16()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A payment event from anshin: taken only with a valid, fresh signature.
async fn webhook(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(key) = shop.webhook_key.get() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let signature = headers
        .get("anshin-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = crate::clock::now_ms().div_euclid(1000);
    if key.verify(signature, &body, now, WEBHOOK_TOLERANCE_SECS).is_err() {
        shop.record("refused a webhook whose signature does not verify".to_owned());
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<PaymentEventBody>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let payment = event.data.payment;
    if let (Ok(mut orders), Some(session)) = (shop.orders.lock(), payment.checkout_session_id.as_ref())
        && let Some(order) = orders.get_mut(session)
    {
        order.payment_id.get_or_insert_with(|| payment.id.clone());
        order.webhook_status = Some(payment.status.clone());
    }
    shop.record(format!(
        "verified webhook {} {}: payment {} is {}",
        event.kind, event.id, payment.id, payment.status
    ));
    StatusCode::OK
}

/// Logs every request the shop's server receives, body included.
async fn record_request(State(shop): State<Arc<Shop>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    shop.record(format!(
        "received {} {} {}",
        parts.method,
        parts.uri,
        String::from_utf8_lossy(&bytes)
    ));
    next.run(Request::from_parts(parts, bytes.into())).await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

/// The checkout page: a new session, embedded.
async fn shop_page(State(shop): State<Arc<Shop>>, Query(query): Query<PageQuery>) -> Response {
    let en = query.lang.as_deref() == Some("en");
    let order_ref = {
        let mut next = shop.next_order.lock().unwrap_or_else(|p| p.into_inner());
        let n = *next;
        *next += 1;
        format!("demo-{n:05}")
    };
    let request = json!({
        "amount": ITEM_AMOUNT,
        "currency": CURRENCY,
        "order_ref": order_ref,
        "allowed_origin": shop.origin,
        "locale": if en { "en" } else { "ja" },
    });
    let session = match shop
        .call(Method::POST, "/v1/checkout/sessions", None, &request)
        .await
    {
        Ok((status, session)) if status.is_success() => session,
        Ok((status, answer)) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!(
                    "anshin refused the checkout session ({}): {}",
                    status.as_u16(),
                    answer["error"]["code"].as_str().unwrap_or("unknown")
                ),
            )
                .into_response();
        }
        Err(err) => return err.into_response(),
    };
    let (Some(session_id), Some(url)) = (session["id"].as_str(), session["url"].as_str()) else {
        return (StatusCode::BAD_GATEWAY, "anshin's answer had no session").into_response();
    };
    if let Ok(mut orders) = shop.orders.lock() {
        orders.insert(
            session_id.to_owned(),
            ShopOrder {
                order_ref: order_ref.clone(),
                session_id: session_id.to_owned(),
                amount: ITEM_AMOUNT,
                currency: CURRENCY.to_owned(),
                card_token: None,
                payment_id: None,
                payment_status: None,
                webhook_status: None,
            },
        );
    }
    let html = page_html(
        &shop.shop_name,
        &shop.anshin_origin,
        session_id,
        url,
        &order_ref,
        en,
    );
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-src {}; base-uri 'none'; object-src 'none'",
        shop.anshin_origin
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    (StatusCode::OK, headers, html).into_response()
}

/// The shop's checkout page for one session.
fn page_html(
    shop_name: &str,
    anshin_origin: &str,
    session_id: &str,
    url: &str,
    order_ref: &str,
    en: bool,
) -> String {
    let t = |ja: &str, en_text: &str| html_escape(if en { en_text } else { ja });
    let values = [
        ("lang", (if en { "en" } else { "ja" }).to_owned()),
        ("other_lang", (if en { "ja" } else { "en" }).to_owned()),
        ("shop_name", html_escape(shop_name)),
        ("anshin_origin", html_escape(anshin_origin)),
        ("session_id", html_escape(session_id)),
        ("checkout_url", html_escape(url)),
        ("order_ref", html_escape(order_ref)),
        (
            "amount_display",
            html_escape(&amount_display(ITEM_AMOUNT, CURRENCY)),
        ),
        (
            "t_banner",
            t(
                "これは anshin のデモショップです。実際の請求は行われません。",
                "This is anshin's demo shop. Nobody is charged.",
            ),
        ),
        ("t_cart", t("ご注文内容", "Your order")),
        ("t_item", t("抹茶セット", "Matcha set")),
        ("t_order", t("注文番号", "order")),
        ("t_payment", t("お支払い", "Payment")),
        (
            "t_cards",
            t(
                "テスト用カード: 4111 1111 1111 1111（承認）、4000 0000 0000 3220（本人認証あり、コード 123456）、4000 0000 0000 0002（拒否）。有効期限は未来の月、セキュリティコードは任意の3桁。",
                "Test cards: 4111 1111 1111 1111 (approved), 4000 0000 0000 3220 (3-D Secure, code 123456), 4000 0000 0000 0002 (declined). Any future expiry, any 3-digit security code.",
            ),
        ),
        (
            "t_frame",
            t("カード情報の入力（anshin）", "Card details (anshin)"),
        ),
        ("t_events", t("anshin からのメッセージ", "Messages from anshin")),
        ("t_other_lang", t("English", "日本語")),
    ];
    fill(PAGE, &values)
}

#[derive(Deserialize)]
struct PayRequest {
    session_id: String,
    card_token: Option<String>,
}

/// Charges a session the shop created, for the amount the shop decided.
async fn pay(State(shop): State<Arc<Shop>>, axum::Json(request): axum::Json<PayRequest>) -> Response {
    let order = shop
        .orders
        .lock()
        .ok()
        .and_then(|o| o.get(&request.session_id).cloned());
    let Some(order) = order else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": "no_such_order"})),
        )
            .into_response();
    };
    let body = json!({
        "checkout_session_id": order.session_id,
        "amount": order.amount,
        "currency": order.currency,
        "capture": true,
    });
    // One key per order: a retried request never charges twice.
    let key = format!("order-{}", order.order_ref);
    let (status, payment) = match shop.call(Method::POST, "/v1/payments", Some(&key), &body).await {
        Ok(answer) => answer,
        Err(err) => return err.into_response(),
    };
    let payment_status = payment["status"].as_str().map(str::to_owned);
    if let Ok(mut orders) = shop.orders.lock()
        && let Some(stored) = orders.get_mut(&request.session_id)
    {
        stored.card_token = request.card_token.clone();
        stored.payment_id = payment["id"].as_str().map(str::to_owned);
        stored.payment_status = payment_status.clone();
    }
    let answer = json!({
        "payment_id": payment["id"],
        "status": payment_status,
        "code": payment["error"]["code"],
    });
    (
        if status.is_success() {
            StatusCode::OK
        } else {
            StatusCode::BAD_GATEWAY
        },
        axum::Json(answer),
    )
        .into_response()
}

async fn list_orders(State(shop): State<Arc<Shop>>) -> Response {
    axum::Json(shop.orders()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_urls() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("https://pay.example/base/"), "https://pay.example");
    }

    #[test]
    fn the_page_embeds_the_session_and_fills_every_placeholder() {
        for en in [false, true] {
            let html = page_html(
                "<Shop>",
                "http://127.0.0.1:8080",
                "cs_1",
                "http://127.0.0.1:8080/checkout/cs_1",
                "demo-00001",
                en,
            );
            assert!(!html.contains("{{"), "{html}");
            assert!(html.contains("<iframe id=\"anshin-frame\" src=\"http://127.0.0.1:8080/checkout/cs_1\""));
            assert!(
                html.contains("&lt;Shop&gt;")
                    && html.contains("data-anshin-origin=\"http://127.0.0.1:8080\"")
            );
        }
    }
}
