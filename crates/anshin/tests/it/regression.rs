//! Regression tests named after the breaches they prevent (see docs/breach-lessons.md).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp, both_backends, card};

both_backends!(
    rakuten_2005_shop_never_receives_a_card_number,
    rakuten_2005_database_copy_holds_no_card_or_personal_data_in_clear,
    ciphertext_copied_to_another_record_or_field_fails_to_decrypt,
);

const PAN: &str = "4111111111111111";

async fn rakuten_2005_shop_never_receives_a_card_number(t: TestApp) {
    // The 2005 leak: shop staff downloaded order data with card numbers. Every
    // answer a shop key can get must be free of the number.
    let (_, _, shop) = t.tenant_with_shop("楽天市場").await;
    let (_, masked) = t
        .call(Method::POST, "/v1/cards", Some(&shop), Some(card(PAN)))
        .await;
    let token = masked["token"].as_str().expect("token");
    let (_, customer) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&shop),
            Some(json!({"name": "X", "email": "buyer@example.jp"})),
        )
        .await;
    let order =
        json!({"customer_id": customer["id"], "card_token": token, "amount": 3000, "currency": "JPY"});
    let (_, order) = t.call(Method::POST, "/v1/orders", Some(&shop), Some(order)).await;
    let order_id = order["id"].as_str().expect("id");
    let mut seen = String::new();
    for (method, path) in [
        (Method::GET, format!("/v1/cards/{token}")),
        (Method::GET, format!("/v1/orders/{order_id}")),
        (Method::GET, "/v1/orders".to_owned()),
        (
            Method::GET,
            format!("/v1/customers/{}", customer["id"].as_str().expect("id")),
        ),
        (Method::POST, format!("/v1/cards/{token}/reveal")),
    ] {
        let (_, bytes) = t.raw(method, &path, Some(&shop), None, "").await;
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(
        !seen.contains(PAN) && !seen.contains("411111"),
        "a shop saw the number: {seen}"
    );
    assert!(
        !seen.contains("buyer@example.jp"),
        "a shop saw the e-mail address: {seen}"
    );
    assert!(
        seen.contains("\"last4\":\"1111\""),
        "shops do get the masked view"
    );
}

/// All stored bytes of the backend, as text, as a thief with the database would see them.
async fn stored_bytes(t: &TestApp) -> Vec<u8> {
    match t.backend {
        Backend::Sqlite => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(t.data_dir()).expect("dir") {
                let path = entry.expect("entry").path();
                if path.file_name().is_some_and(|n| n != "root.key") {
                    all.extend(std::fs::read(&path).expect("read"));
                }
            }
            all
        }
        Backend::Postgres => {
            let url = t.location.database_url.clone().expect("url");
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            let mut all = Vec::new();
            for table in [
                "cards",
                "customers",
                "orders",
                "principals",
                "tenants",
                "shops",
                "tenant_keys",
                "meta",
                "card_shops",
            ] {
                for row in client
                    .query(&format!("SELECT t::text FROM {table} t"), &[])
                    .await
                    .expect("select")
                {
                    let text: String = row.get(0);
                    all.extend(text.into_bytes());
                }
            }
            all
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn rakuten_2005_database_copy_holds_no_card_or_personal_data_in_clear(t: TestApp) {
    let (_, _, shop) = t.tenant_with_shop("t").await;
    let body = json!({"number": PAN, "exp_month": 12, "exp_year": 2031, "holder_name": "KANAKO TESTHOLDER"});
    let (status, _) = t.call(Method::POST, "/v1/cards", Some(&shop), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let customer = json!({"name": "試験 花子", "name_kana": "シケン ハナコ", "postal_code": "100-0001",
        "address": "東京都千代田区試験町9-9", "phone": "090-9876-5432", "email": "hanako.test@example.jp"});
    let (status, _) = t
        .call(Method::POST, "/v1/customers", Some(&shop), Some(customer))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let bytes = stored_bytes(&t).await;
    assert!(!bytes.is_empty());
    for secret in [
        PAN,
        "KANAKO TESTHOLDER",
        "試験 花子",
        "シケン ハナコ",
        "試験町",
        "09098765432",
        "hanako.test@example.jp",
        "100-0001",
        "12/2031",
        &shop,
    ] {
        assert!(!contains(&bytes, secret), "stored in clear: {secret}");
    }
}

async fn ciphertext_copied_to_another_record_or_field_fails_to_decrypt(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("t").await;
    let processor = t.key("processor", &tenant, None).await;
    let (_, a) = t.tokenize(&shop, "4242424242424242").await;
    let (_, b) = t.tokenize(&shop, "5555555555554444").await;
    let (a, b) = (a["token"].as_str().expect("a"), b["token"].as_str().expect("b"));

    // 1. A's whole sealed record (data key and fields) copied into B.
    t.raw_sql(&format!(
        "UPDATE record_keys SET wrapped_dek = (SELECT wrapped_dek FROM record_keys WHERE record_id = '{a}')
         WHERE record_id = '{b}';
         UPDATE cards SET number_ct = (SELECT number_ct FROM cards WHERE token = '{a}'),
                          expiry_ct = (SELECT expiry_ct FROM cards WHERE token = '{a}'),
                          holder_ct = (SELECT holder_ct FROM cards WHERE token = '{a}')
         WHERE token = '{b}'"
    ))
    .await;
    let (status, body) = t.reveal(&processor, b).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("internal"))
    );
    assert!(!body.to_string().contains("4242"));

    // 2. Inside A: the number's ciphertext moved into the holder field.
    t.raw_sql(&format!(
        "UPDATE cards SET holder_ct = number_ct WHERE token = '{a}'"
    ))
    .await;
    let (status, _) = t.reveal(&processor, a).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{a}"), Some(&shop), None)
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "masked reads open the holder too"
    );
}
