//! The HTTP API contract, error codes and access rules, on both backends.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends, card};

both_backends!(
    tenants_shops_and_principals,
    tokenize_read_reveal_delete,
    same_card_same_token_and_latest_details,
    invalid_card_numbers_are_422_and_never_echoed,
    expired_card_is_refused,
    malformed_json_is_400,
    wrong_types_are_422_without_values,
    body_over_64_kib_is_413,
    non_json_is_415,
    missing_or_wrong_key_is_401,
    role_without_permission_is_403,
    other_tenants_ids_are_the_same_404_as_missing_ones,
    shops_see_only_their_own,
    a_shared_card_is_protected_from_the_other_shops,
    customers_are_stored_and_shown_masked,
    customer_validation_codes,
    orders_create_read_list_complete,
    operator_looks_a_card_up_by_number,
    disabled_key_stops_working,
    concurrent_tokenizations_all_commit,
    concurrent_duplicates_share_one_token,
    operational_endpoints,
);

async fn tenants_shops_and_principals(t: TestApp) {
    let op = Some(t.operator_key.as_str());
    let (status, tenant) = t
        .call(Method::POST, "/v1/tenants", op, Some(json!({"name": "楽天市場"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(tenant["name"], "楽天市場");
    let tenant_id = tenant["id"].as_str().expect("id");
    assert!(tenant_id.starts_with("ten_"));

    let (status, shop) = t
        .call(
            Method::POST,
            &format!("/v1/tenants/{tenant_id}/shops"),
            op,
            Some(json!({"name": "shop 1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let shop_id = shop["id"].as_str().expect("id");
    assert!(shop_id.starts_with("shop_"));

    let (status, shops) = t
        .call(Method::GET, &format!("/v1/tenants/{tenant_id}/shops"), op, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shops.as_array().map(Vec::len), Some(1));

    let body = json!({"name": "shop key", "role": "shop", "shop_id": shop_id});
    let (status, created) = t.call(Method::POST, "/v1/principals", op, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["role"], "shop");
    assert!(
        created["api_key"]
            .as_str()
            .expect("key")
            .starts_with("anshin_sk_")
    );

    let (status, list) = t
        .call(
            Method::GET,
            &format!("/v1/principals?tenant_id={tenant_id}"),
            op,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed = list.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["tenant_id"], tenant_id);
    assert_eq!(listed[0]["shop_id"], shop_id);
    assert!(listed[0].get("api_key").is_none(), "keys are never listed");

    // A tenant-scoped operator sees its own tenant only and cannot create tenants.
    let scoped = t.key("operator", tenant_id, None).await;
    let (status, tenants) = t.call(Method::GET, "/v1/tenants", Some(&scoped), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenants.as_array().map(Vec::len), Some(1));
    t.expect_error(
        Method::POST,
        "/v1/tenants",
        Some(&scoped),
        Some(json!({"name": "x"})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // A tenant operator cannot mint itself reveal rights through a processor key.
    t.expect_error(
        Method::POST,
        "/v1/principals",
        Some(&scoped),
        Some(json!({"name": "x", "role": "processor"})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (status, _) = t
        .call(
            Method::POST,
            "/v1/principals",
            Some(&scoped),
            Some(json!({"name": "x", "role": "auditor"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "tenant operators may create auditors"
    );

    // Shop principals need a shop; other roles refuse one.
    t.expect_error(
        Method::POST,
        "/v1/principals",
        op,
        Some(json!({"name": "x", "role": "shop", "tenant_id": tenant_id})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "shop_required",
    )
    .await;
    t.expect_error(
        Method::POST,
        "/v1/principals",
        op,
        Some(json!({"name": "x", "role": "auditor", "shop_id": shop_id})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "shop_not_allowed",
    )
    .await;
}

async fn tokenize_read_reveal_delete(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("t").await;
    let processor = t.key("processor", &tenant, None).await;
    let (status, masked) = t.tokenize(&shop_key, "4111 1111 1111 1111").await;
    assert_eq!(status, StatusCode::CREATED, "{masked}");
    let token = masked["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("card_") && token.len() == 31);
    assert_eq!(masked["brand"], "visa");
    assert_eq!(masked["last4"], "1111");
    assert_eq!(
        (masked["exp_month"].as_u64(), masked["exp_year"].as_u64()),
        (Some(12), Some(2031))
    );
    assert!(
        !masked.to_string().contains("411111"),
        "no number in a masked view"
    );

    let (status, read) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&shop_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["last4"], "1111");
    assert!(read.get("number").is_none() && read.get("holder_name").is_none());

    let (status, revealed) = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        revealed,
        json!({"number": "4111111111111111", "exp_month": 12, "exp_year": 2031, "holder_name": "HANAKO SATO"})
    );

    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/v1/cards/{token}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (method, path, key) in [
        (Method::GET, format!("/v1/cards/{token}"), &shop_key),
        (Method::POST, format!("/v1/cards/{token}/reveal"), &processor),
        (Method::DELETE, format!("/v1/cards/{token}"), &shop_key),
    ] {
        let (status, body) = t.call(method, &path, Some(key), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    // The number is no longer known: tokenizing it again makes a new card.
    let (status, again) = t.tokenize(&shop_key, "4111111111111111").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(again["token"], token.as_str());
}

async fn same_card_same_token_and_latest_details(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("t").await;
    let processor = t.key("processor", &tenant, None).await;
    let (_, first) = t.tokenize(&shop_key, "5555555555554444").await;
    let renewed = json!({"number": "5555-5555-5555-4444", "exp_month": 3, "exp_year": 2033, "holder_name": "HANAKO SUZUKI"});
    let (status, second) = t
        .call(Method::POST, "/v1/cards", Some(&shop_key), Some(renewed))
        .await;
    assert_eq!(status, StatusCode::OK, "a known card answers 200");
    assert_eq!(first["token"], second["token"]);
    assert_eq!(
        (second["exp_month"].as_u64(), second["exp_year"].as_u64()),
        (Some(3), Some(2033))
    );
    let token = second["token"].as_str().expect("token");
    let (_, revealed) = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
        )
        .await;
    assert_eq!(revealed["holder_name"], "HANAKO SUZUKI");
    // Another tenant holding the same number gets its own, unrelated token.
    let (_, _, other_key) = t.tenant_with_shop("other").await;
    let (status, other) = t.tokenize(&other_key, "5555555555554444").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["token"], first["token"]);
}

async fn invalid_card_numbers_are_422_and_never_echoed(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    for number in [
        "4111111111111112",
        "41111111111",
        "4111-1111-1111-111X",
        "9111111111111119",
        "",
        "５５５５５５５５５５５５４４４５",
    ] {
        let (status, bytes) = t
            .raw(
                Method::POST,
                "/v1/cards",
                Some(&shop_key),
                Some(card(number).to_string()),
                "application/json",
            )
            .await;
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{number}");
        assert_eq!(body["error"]["code"], "invalid_card_number", "{number}");
        let text = String::from_utf8_lossy(&bytes);
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        assert!(digits.len() < 6 || !text.contains(&digits[..6]), "echoed: {text}");
    }
}

async fn expired_card_is_refused(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    let body = json!({"number": "4111111111111111", "exp_month": 1, "exp_year": 2020, "holder_name": "X"});
    t.expect_error(
        Method::POST,
        "/v1/cards",
        Some(&shop_key),
        Some(body),
        StatusCode::UNPROCESSABLE_ENTITY,
        "card_expired",
    )
    .await;
    let body = json!({"number": "4111111111111111", "exp_month": 13, "exp_year": 2030, "holder_name": "X"});
    t.expect_error(
        Method::POST,
        "/v1/cards",
        Some(&shop_key),
        Some(body),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_expiry",
    )
    .await;
}

async fn malformed_json_is_400(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    let (status, bytes) = t
        .raw(
            Method::POST,
            "/v1/cards",
            Some(&shop_key),
            Some(r#"{"number": "4111111111111111", "#.into()),
            "application/json",
        )
        .await;
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    assert!(!String::from_utf8_lossy(&bytes).contains("4111"));
}

async fn wrong_types_are_422_without_values(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    let body = json!({"number": "4111111111111111", "exp_month": "4111111111111111", "exp_year": 2030, "holder_name": "X"});
    let (status, bytes) = t
        .raw(
            Method::POST,
            "/v1/cards",
            Some(&shop_key),
            Some(body.to_string()),
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("invalid_request") && text.contains("exp_month"),
        "{text}"
    );
    assert!(!text.contains("4111"), "{text}");
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&shop_key),
            Some(json!({"number": "4111111111111111"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("exp_month")
    );
}

async fn body_over_64_kib_is_413(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    let huge = json!({"number": "4111111111111111", "exp_month": 1, "exp_year": 2030, "holder_name": "x".repeat(70_000)});
    t.expect_error(
        Method::POST,
        "/v1/cards",
        Some(&shop_key),
        Some(huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

async fn non_json_is_415(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("t").await;
    let (status, bytes) = t
        .raw(
            Method::POST,
            "/v1/cards",
            Some(&shop_key),
            Some("number=4111111111111111".into()),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&bytes).contains("unsupported_media_type"));
}

async fn missing_or_wrong_key_is_401(t: TestApp) {
    t.expect_error(
        Method::GET,
        "/v1/tenants",
        None,
        None,
        StatusCode::UNAUTHORIZED,
        "missing_api_key",
    )
    .await;
    for key in [
        "anshin_sk_notarealkey",
        "garbage",
        &t.operator_key[..t.operator_key.len() - 1],
    ] {
        t.expect_error(
            Method::GET,
            "/v1/tenants",
            Some(key),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        )
        .await;
    }
}

async fn role_without_permission_is_403(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("t").await;
    let auditor = t.key("auditor", &tenant, None).await;
    let processor = t.key("processor", &tenant, None).await;
    let (_, masked) = t.tokenize(&shop_key, "4111111111111111").await;
    let token = masked["token"].as_str().expect("token");
    let cases: [(Method, String, &str, Option<Value>); 6] = [
        (Method::POST, format!("/v1/cards/{token}/reveal"), &shop_key, None),
        (Method::GET, format!("/v1/cards/{token}"), &auditor, None),
        (
            Method::POST,
            "/v1/cards".into(),
            &processor,
            Some(card("4111111111111111")),
        ),
        (
            Method::POST,
            "/v1/cards".into(),
            &auditor,
            Some(card("4111111111111111")),
        ),
        (
            Method::POST,
            "/v1/principals".into(),
            &shop_key,
            Some(json!({"name": "x", "role": "operator"})),
        ),
        (
            Method::POST,
            format!("/v1/tenants/{tenant}/shops"),
            &shop_key,
            Some(json!({"name": "x"})),
        ),
    ];
    for (method, path, key, body) in cases {
        let (status, body) = t.call(method.clone(), &path, Some(key), body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
}

async fn other_tenants_ids_are_the_same_404_as_missing_ones(t: TestApp) {
    let (tenant_a, shop_a, key_a) = t.tenant_with_shop("a").await;
    let (tenant_b, _, key_b) = t.tenant_with_shop("b").await;
    let processor_b = t.key("processor", &tenant_b, None).await;
    let operator_b = t.key("operator", &tenant_b, None).await;
    let (_, masked) = t.tokenize(&key_a, "4111111111111111").await;
    let token = masked["token"].as_str().expect("token");
    let (_, customer) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&key_a),
            Some(json!({"name": "山田 太郎"})),
        )
        .await;
    let customer_id = customer["id"].as_str().expect("id");
    let (_, order) = t
        .call(
            Method::POST,
            "/v1/orders",
            Some(&key_a),
            Some(json!({"customer_id": customer_id, "card_token": token, "amount": 1000, "currency": "JPY"})),
        )
        .await;
    let order_id = order["id"].as_str().expect("id");
    let missing_token = "card_aaaaaaaaaaaaaaaaaaaaaaaaaa";

    let pairs = [
        (
            Method::GET,
            format!("/v1/cards/{token}"),
            format!("/v1/cards/{missing_token}"),
            &key_b,
        ),
        (
            Method::POST,
            format!("/v1/cards/{token}/reveal"),
            format!("/v1/cards/{missing_token}/reveal"),
            &processor_b,
        ),
        (
            Method::DELETE,
            format!("/v1/cards/{token}"),
            format!("/v1/cards/{missing_token}"),
            &operator_b,
        ),
        (
            Method::GET,
            format!("/v1/customers/{customer_id}"),
            "/v1/customers/cus_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &key_b,
        ),
        (
            Method::GET,
            format!("/v1/orders/{order_id}"),
            "/v1/orders/ord_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &key_b,
        ),
        (
            Method::GET,
            format!("/v1/orders?shop_id={shop_a}"),
            "/v1/orders?shop_id=shop_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &operator_b,
        ),
        (
            Method::GET,
            format!("/v1/tenants/{tenant_a}"),
            "/v1/tenants/ten_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &operator_b,
        ),
        (
            Method::GET,
            format!("/v1/orders?after={order_id}"),
            "/v1/orders?after=ord_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &key_b,
        ),
        (
            Method::GET,
            format!("/v1/cards/{token}"),
            "/v1/cards/not-even-a-token".into(),
            &key_b,
        ),
    ];
    for (method, foreign, missing, key) in pairs {
        let (status_f, body_f) = t.raw(method.clone(), &foreign, Some(key), None, "").await;
        let (status_m, body_m) = t.raw(method.clone(), &missing, Some(key), None, "").await;
        assert_eq!(status_f, StatusCode::NOT_FOUND, "{method} {foreign}");
        assert_eq!(
            (status_f, body_f),
            (status_m, body_m),
            "{method} {foreign} must look exactly like {missing}"
        );
    }
    // Using another tenant's card or customer in an order is the same 404.
    let (_, customer_b) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&key_b),
            Some(json!({"name": "B"})),
        )
        .await;
    t.expect_error(
        Method::POST,
        "/v1/orders",
        Some(&key_b),
        Some(json!({"customer_id": customer_b["id"], "card_token": token, "amount": 1, "currency": "JPY"})),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn shops_see_only_their_own(t: TestApp) {
    let (tenant, shop_1, key_1) = t.tenant_with_shop("t").await;
    let shop_2 = t.shop(&tenant, "second").await;
    let key_2 = t.key("shop", &tenant, Some(&shop_2)).await;
    let (_, masked) = t.tokenize(&key_1, "4242424242424242").await;
    let token = masked["token"].as_str().expect("token");
    let (_, customer) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&key_1),
            Some(json!({"name": "X"})),
        )
        .await;
    let order = json!({"customer_id": customer["id"], "card_token": token, "amount": 500, "currency": "JPY"});
    let (status, order) = t
        .call(Method::POST, "/v1/orders", Some(&key_1), Some(order))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_str().expect("id");

    for path in [
        format!("/v1/cards/{token}"),
        format!("/v1/customers/{}", customer["id"].as_str().expect("id")),
        format!("/v1/orders/{order_id}"),
        format!("/v1/orders?shop_id={shop_1}"),
    ] {
        let (status, _) = t.call(Method::GET, &path, Some(&key_2), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "shop 2 must not see {path}");
    }
    let (status, page) = t.call(Method::GET, "/v1/orders", Some(&key_2), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(0));
    let (_, page) = t.call(Method::GET, "/v1/orders", Some(&key_1), None).await;
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(1));
    // Once shop 2 tokenizes the same card itself, it may see it (same tenant
    // token), and it is answered exactly as for a card new to the tenant.
    let (status, again) = t.tokenize(&key_2, "4242424242424242").await;
    assert_eq!(
        (status, again["token"].as_str()),
        (StatusCode::CREATED, Some(token))
    );
    assert!(
        again.get("created_at").is_none(),
        "no timestamp tells when another shop first saw the card"
    );
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&key_2), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_shared_card_is_protected_from_the_other_shops(t: TestApp) {
    let (tenant, _, key_1) = t.tenant_with_shop("t").await;
    let shop_2 = t.shop(&tenant, "second").await;
    let key_2 = t.key("shop", &tenant, Some(&shop_2)).await;
    let processor = t.key("processor", &tenant, None).await;
    let body = |exp_year: u16, holder: &str| json!({"number": "4012888888881881", "exp_month": 6, "exp_year": exp_year, "holder_name": holder});
    let (_, first) = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&key_1),
            Some(body(2032, "REAL HOLDER")),
        )
        .await;
    let token = first["token"].as_str().expect("token").to_owned();
    let reveal_path = format!("/v1/cards/{token}/reveal");
    let reveal = || t.call(Method::POST, &reveal_path, Some(&processor), None);

    // Shop 2 cannot rewrite the holder or roll the expiry back; a renewal (later expiry) counts.
    let (status, shown) = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&key_2),
            Some(body(2031, "MALLORY")),
        )
        .await;
    assert_eq!(
        (status, shown["exp_year"].as_u64()),
        (StatusCode::CREATED, Some(2032))
    );
    let (_, same) = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&key_2),
            Some(body(2032, "MALLORY")),
        )
        .await;
    assert_eq!(same["token"].as_str(), Some(token.as_str()));
    assert_eq!(reveal().await.1["holder_name"], "REAL HOLDER");
    let (status, renewed) = t
        .call(
            Method::POST,
            "/v1/cards",
            Some(&key_1),
            Some(body(2034, "REAL HOLDER")),
        )
        .await;
    assert_eq!(
        (status, renewed["exp_year"].as_u64()),
        (StatusCode::OK, Some(2034))
    );

    // Shop 2 deleting gives up only its own access; shop 1 keeps the card.
    let (status, _) = t
        .call(Method::DELETE, &format!("/v1/cards/{token}"), Some(&key_2), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&key_2), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&key_1), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reveal().await.0, StatusCode::OK);
    // When the last shop lets go, the card is shredded.
    let (status, _) = t
        .call(Method::DELETE, &format!("/v1/cards/{token}"), Some(&key_1), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(reveal().await.0, StatusCode::NOT_FOUND);
}

async fn customers_are_stored_and_shown_masked(t: TestApp) {
    let (_, shop, key) = t.tenant_with_shop("t").await;
    let body = json!({
        "name": "山田 太郎", "name_kana": "ヤマダ タロウ", "postal_code": "〒１００－０００１",
        "address": "東京都千代田区千代田1-1", "phone": "０９０-１２３４-５６７８", "email": "taro.yamada@Example.JP", "fax": "03-1234-5678"
    });
    let (status, created) = t
        .call(Method::POST, "/v1/customers", Some(&key), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["email"], "t***@example.jp");
    assert_eq!(created["phone"], "090******78");
    assert_eq!(created["shop_id"], shop.as_str());
    let id = created["id"].as_str().expect("id");
    let (status, read) = t
        .call(Method::GET, &format!("/v1/customers/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["email"], created["email"]);
    let text = read.to_string();
    for secret in ["山田", "taro.yamada", "12345678", "千代田", "100-0001"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

async fn customer_validation_codes(t: TestApp) {
    let (_, _, key) = t.tenant_with_shop("t").await;
    let cases = [
        (json!({"name": ""}), "invalid_name"),
        (json!({"name": "x", "email": "not-an-email"}), "invalid_email"),
        (json!({"name": "x", "phone": "12"}), "invalid_phone"),
        (json!({"name": "x", "fax": "abc"}), "invalid_fax"),
        (
            json!({"name": "x", "postal_code": "12-34"}),
            "invalid_postal_code",
        ),
        (json!({"name": "x", "name_kana": "Yamada"}), "invalid_name_kana"),
        (json!({"name": "x", "unknown": 1}), "invalid_request"),
    ];
    for (body, code) in cases {
        t.expect_error(
            Method::POST,
            "/v1/customers",
            Some(&key),
            Some(body.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
}

async fn orders_create_read_list_complete(t: TestApp) {
    let (_, shop, key) = t.tenant_with_shop("t").await;
    let (_, masked) = t.tokenize(&key, "3530111333300000").await;
    let (_, customer) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(&key),
            Some(json!({"name": "X"})),
        )
        .await;
    let mut ids = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        let body = json!({"customer_id": customer["id"], "card_token": masked["token"], "amount": amount, "currency": "jpy"});
        let (status, order) = t.call(Method::POST, "/v1/orders", Some(&key), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["currency"], "JPY");
        assert_eq!(order["status"], "created");
        assert_eq!(order["card"]["brand"], "jcb");
        assert_eq!(order["card"]["last4"], "0000");
        assert_eq!(order["shop_id"], shop.as_str());
        ids.push(order["id"].as_str().expect("id").to_owned());
    }
    let (_, page1) = t
        .call(
            Method::GET,
            &format!("/v1/orders?shop_id={shop}&limit=3"),
            Some(&key),
            None,
        )
        .await;
    let after = page1["next_after"].as_str().expect("a next page");
    let (_, page2) = t
        .call(
            Method::GET,
            &format!("/v1/orders?limit=3&after={after}"),
            Some(&key),
            None,
        )
        .await;
    let listed: Vec<&str> = page1["orders"]
        .as_array()
        .into_iter()
        .chain(page2["orders"].as_array())
        .flatten()
        .filter_map(|o| o["id"].as_str())
        .collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    let mut got = listed.clone();
    got.sort_unstable();
    assert_eq!(got, expected, "every order listed exactly once across pages");
    assert!(page2["next_after"].is_null());

    let (status, done) = t
        .call(
            Method::POST,
            &format!("/v1/orders/{}/complete", ids[0]),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    let (status, body) = t
        .call(
            Method::POST,
            &format!("/v1/orders/{}/complete", ids[0]),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("order_not_open"))
    );

    for (body, code) in [
        (
            json!({"customer_id": customer["id"], "amount": 0, "currency": "JPY"}),
            "invalid_amount",
        ),
        (
            json!({"customer_id": customer["id"], "amount": 1, "currency": "YEN"}),
            "invalid_currency",
        ),
        (
            json!({"customer_id": customer["id"], "amount": 1, "currency": "JPY", "limit": 1}),
            "invalid_request",
        ),
    ] {
        t.expect_error(
            Method::POST,
            "/v1/orders",
            Some(&key),
            Some(body),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    t.expect_error(
        Method::GET,
        "/v1/orders?limit=9999",
        Some(&key),
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_limit",
    )
    .await;
    t.expect_error(
        Method::GET,
        "/v1/orders?bogus=1",
        Some(&key),
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    )
    .await;
}

async fn operator_looks_a_card_up_by_number(t: TestApp) {
    let (tenant, _, key) = t.tenant_with_shop("t").await;
    let (_, masked) = t.tokenize(&key, "378282246310005").await;
    let operator = t.key("operator", &tenant, None).await;
    let (status, found) = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&operator),
            Some(json!({"number": "3782 822463 10005"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["token"], masked["token"]);
    let (status, _) = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&operator),
            Some(json!({"number": "371449635398431"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&key),
            Some(json!({"number": "378282246310005"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "shops cannot probe numbers");
    // The global operator names the tenant.
    let body = json!({"number": "378282246310005", "tenant_id": tenant});
    let (status, found) = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&t.operator_key),
            Some(body),
        )
        .await;
    assert_eq!((status, &found["token"]), (StatusCode::OK, &masked["token"]));
}

async fn disabled_key_stops_working(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("t").await;
    let (_, list) = t
        .call(
            Method::GET,
            &format!("/v1/principals?tenant_id={tenant}"),
            Some(&t.operator_key),
            None,
        )
        .await;
    let id = list[0]["id"].as_str().expect("id");
    let (status, _) = t.call(Method::GET, "/v1/orders", Some(&shop_key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, disabled) = t
        .call(
            Method::POST,
            &format!("/v1/principals/{id}/disable"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(disabled["disabled_at"].is_string());
    t.expect_error(
        Method::GET,
        "/v1/orders",
        Some(&shop_key),
        None,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    // No principal can lock itself out.
    let (_, all) = t
        .call(Method::GET, "/v1/principals", Some(&t.operator_key), None)
        .await;
    let own = all
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["tenant_id"].is_null())
        .expect("bootstrap");
    let (status, body) = t
        .call(
            Method::POST,
            &format!("/v1/principals/{}/disable", own["id"].as_str().expect("id")),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_disable_self"))
    );
}

async fn concurrent_tokenizations_all_commit(t: TestApp) {
    let (tenant, _, key) = t.tenant_with_shop("t").await;
    let processor = t.key("processor", &tenant, None).await;
    let t = std::sync::Arc::new(t);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (t, key) = (t.clone(), key.clone());
        tasks.spawn(async move {
            let mut digits = format!("4{:014}", i * 7_919 + 13).into_bytes();
            digits.push(anshin_crypto::pan::luhn_check_digit(&digits));
            let number = String::from_utf8(digits).expect("ascii");
            let (status, masked) = t.tokenize(&key, &number).await;
            assert_eq!(status, StatusCode::CREATED, "{masked}");
            (number, masked["token"].as_str().expect("token").to_owned())
        });
    }
    let mut cards = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        cards.push(joined.expect("task"));
    }
    for (number, token) in cards {
        let (status, revealed) = t
            .call(
                Method::POST,
                &format!("/v1/cards/{token}/reveal"),
                Some(&processor),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(revealed["number"], number.as_str());
    }
}

async fn concurrent_duplicates_share_one_token(t: TestApp) {
    let (_, _, key) = t.tenant_with_shop("t").await;
    let t = std::sync::Arc::new(t);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (t, key) = (t.clone(), key.clone());
        tasks.spawn(async move {
            let (status, masked) = t.tokenize(&key, "6011111111111117").await;
            assert!(
                status == StatusCode::CREATED || status == StatusCode::OK,
                "{status} {masked}"
            );
            (status, masked["token"].as_str().expect("token").to_owned())
        });
    }
    let mut tokens = std::collections::HashSet::new();
    let mut created = 0;
    while let Some(joined) = tasks.join_next().await {
        let (status, token) = joined.expect("task");
        created += usize::from(status == StatusCode::CREATED);
        tokens.insert(token);
    }
    assert_eq!(tokens.len(), 1, "one card, one token");
    assert_eq!(created, 1, "exactly one request created it");
}

async fn operational_endpoints(t: TestApp) {
    let (status, body) = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, body) = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let (status, doc) = t.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/tenants",
        "/v1/tenants/{tenant_id}/shops",
        "/v1/principals",
        "/v1/cards",
        "/v1/cards/{token}",
        "/v1/cards/{token}/reveal",
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/inventory",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    let _ = t
        .call(Method::GET, "/v1/tenants", Some(&t.operator_key), None)
        .await;
    let (status, bytes) = t.raw(Method::GET, "/metrics", None, None, "").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("anshin_http_requests_total") && text.contains("route=\"/v1/tenants\""),
        "{text}"
    );
    t.expect_error(
        Method::GET,
        "/v1/nothing",
        None,
        None,
        StatusCode::NOT_FOUND,
        "no_route",
    )
    .await;
    t.expect_error(
        Method::PUT,
        "/v1/cards",
        Some(&t.operator_key),
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}
