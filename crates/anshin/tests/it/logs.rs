//! Nothing sensitive reaches a log line at any level: the whole API surface,
//! errors included, runs with every target at TRACE while a subscriber captures
//! the output; then no card number, personal data or API key may appear in it.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use axum::http::Method;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::harness::{Backend, TestApp};

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

#[derive(Clone, Copy)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

fn capture_everything() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // The server's own filter at its most verbose, with the `log` bridge that
        // carries dependencies' records (tokio-postgres logs through `log`).
        tracing_subscriber::fmt()
            .with_env_filter(anshin::cmd::log_filter("trace"))
            .with_writer(Capture)
            .with_ansi(false)
            .try_init()
            .expect("the only global subscriber in this test binary");
    });
}

const PAN: &str = "4111111111111111";
const PAN_GROUPED: &str = "4111 1111 1111 1111";
const SECRETS: [&str; 9] = [
    PAN,
    "411111111111",
    "LOGTEST HOLDER",
    "ログ 試験太郎",
    "ログシケン",
    "ろぐ試験町",
    "08011223344",
    "log.test.person@example.jp",
    "999-0009",
];

async fn exercise(t: &TestApp) -> Vec<String> {
    let (tenant, shop_id, shop) = t.tenant_with_shop("logs").await;
    let processor = t.key("processor", &tenant, None).await;
    let card =
        json!({"number": PAN_GROUPED, "exp_month": 12, "exp_year": 2031, "holder_name": "LOGTEST HOLDER"});
    let (_, masked) = t
        .call(Method::POST, "/v1/cards", Some(&shop), Some(card.clone()))
        .await;
    let token = masked["token"].as_str().expect("token").to_owned();
    let _ = t.call(Method::POST, "/v1/cards", Some(&shop), Some(card)).await;
    let _ = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&shop), None)
        .await;
    let _ = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
        )
        .await;
    let _ = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&shop),
            None,
        )
        .await;
    let _ = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&t.operator_key),
            Some(json!({"number": PAN, "tenant_id": tenant})),
        )
        .await;
    // Bad input carrying sensitive values, in every place a client might put them.
    let _ = t.call(Method::POST, "/v1/cards", Some(&shop), Some(json!({"number": "4111111111111112", "exp_month": 1, "exp_year": 2031, "holder_name": "LOGTEST HOLDER"}))).await;
    let _ = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&shop),
            Some(json!({"number": PAN, "exp_month": PAN, "exp_year": 2031, "holder_name": "x"})),
        )
        .await;
    let _ = t
        .raw(
            Method::POST,
            "/v1/cards",
            Some(&shop),
            Some(format!("{{\"number\": \"{PAN}\"")),
            "application/json",
        )
        .await;
    let _ = t
        .call(Method::GET, &format!("/v1/cards/{PAN}"), Some(&shop), None)
        .await;
    let _ = t
        .call(
            Method::GET,
            &format!("/v1/orders?shop_id={PAN}"),
            Some(&shop),
            None,
        )
        .await;
    let _ = t
        .call(Method::GET, &format!("/v1/{PAN}"), Some(&shop), None)
        .await;
    let _ = t.call(Method::GET, "/v1/tenants", Some(PAN), None).await;
    let customer = json!({"name": "ログ 試験太郎", "name_kana": "ログシケン", "postal_code": "999-0009", "address": "ろぐ試験町1-2",
        "phone": "080-1122-3344", "email": "log.test.person@example.jp"});
    let (_, created) = t
        .call(Method::POST, "/v1/customers", Some(&shop), Some(customer))
        .await;
    let _ = t
        .call(
            Method::GET,
            &format!("/v1/customers/{}", created["id"].as_str().expect("id")),
            Some(&shop),
            None,
        )
        .await;
    let _ = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&shop),
            Some(json!({"name": "ログ 試験太郎", "email": "log.test.person@"})),
        )
        .await;
    let order = json!({"customer_id": created["id"], "card_token": token, "amount": 100, "currency": "JPY"});
    let (_, order) = t.call(Method::POST, "/v1/orders", Some(&shop), Some(order)).await;
    let _ = t
        .call(
            Method::GET,
            &format!("/v1/orders/{}", order["id"].as_str().expect("id")),
            Some(&shop),
            None,
        )
        .await;
    let _ = t
        .call(Method::DELETE, &format!("/v1/cards/{token}"), Some(&shop), None)
        .await;
    let webhook_secrets = webhook(t, &shop, &shop_id).await;
    let mut keys = vec![shop, processor, t.operator_key.clone()];
    keys.extend(webhook_secrets);
    keys
}

/// A payment webhook endpoint created and rotated, and a delivery round that
/// fails (nothing listens): the secrets it showed.
async fn webhook(t: &TestApp, shop: &str, shop_id: &str) -> Vec<String> {
    t.app.configure_checkout(anshin::proxy::CheckoutSettings {
        webhook_loopback: true,
        ..Default::default()
    });
    let path = format!("/v1/shops/{shop_id}/webhook");
    let (_, created) = t
        .call(
            Method::PUT,
            &path,
            Some(shop),
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    let (_, rotated) = t
        .call(Method::POST, &format!("{path}/rotate-secret"), Some(shop), None)
        .await;
    let _ = anshin::proxy::webhooks::PaymentWebhooks::new()
        .deliver_due(&t.app, anshin::clock::now_ms())
        .await;
    [created, rotated]
        .iter()
        .map(|answer| answer["secret"].as_str().expect("secret").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_card_or_personal_data_in_logs_at_trace() {
    capture_everything();
    let mut keys = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(t) = TestApp::new(backend).await {
            keys.extend(exercise(&t).await);
        }
    }
    let captured = String::from_utf8_lossy(&CAPTURED.lock().expect("lock")).into_owned();
    assert!(
        captured.contains("TRACE") && captured.contains("authenticated") && captured.contains("request"),
        "trace-level logging was captured"
    );
    assert!(
        !captured.contains("executing statement"),
        "statement parameters must not be logged"
    );
    for secret in SECRETS.iter().copied().chain(keys.iter().map(String::as_str)) {
        let head: String = secret.chars().take(4).collect();
        assert!(
            !captured.contains(secret),
            "a log line contains a secret value (starting {head})"
        );
    }
}
