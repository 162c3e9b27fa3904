//! The retention window on both backends: shipping data readable by the selling
//! shop only until 14 days after completion, bulk export limited and logged,
//! expired data crypto-shredded. Named after the 2005 Rakuten Ichiba leak, where
//! a shop's staff downloaded order data and leaked it.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestApp, both_backends};

both_backends!(
    rakuten_2005_shop_cannot_read_shipping_data_after_window,
    rakuten_2005_bulk_export_needs_approval,
    rakuten_2005_export_holds_only_orders_inside_the_window,
    shipping_data_is_shredded_after_legal_retention,
    retention_rules_are_set_per_tenant,
    rakuten_2005_reading_orders_one_by_one_spends_the_export_budget,
    rakuten_2005_orders_never_completed_leave_the_window_after_90_days,
);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub(crate) async fn customer(t: &TestApp, shop_key: &str) -> String {
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(shop_key),
            Some(json!({"name": "鈴木 一郎"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

pub(crate) async fn order(t: &TestApp, shop_key: &str, customer: &str, address: &str) -> String {
    let (status, order) = t
        .call(
            Method::POST,
            "/v1/orders",
            Some(shop_key),
            Some(json!({
                "customer_id": customer, "amount": 3300, "currency": "JPY",
                "shipping": {"name": "鈴木 一郎", "postal_code": "530-0001", "address": address, "phone": "06-1234-5678"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_str().expect("id").to_owned()
}

/// Completes an order and moves its completion `days` into the past.
async fn complete_days_ago(t: &TestApp, shop_key: &str, order: &str, days: i64) {
    let (status, body) = t
        .call(
            Method::POST,
            &format!("/v1/orders/{order}/complete"),
            Some(shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = anshin_now_ms() - days * DAY_MS;
    t.raw_sql(&format!(
        "UPDATE orders SET completed_at = {at} WHERE id = '{order}'"
    ))
    .await;
}

fn anshin_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

async fn export(t: &TestApp, key: &str) -> (StatusCode, String) {
    let (status, body) = t
        .raw(
            Method::GET,
            "/v1/orders/export?format=csv",
            Some(key),
            None,
            "application/json",
        )
        .await;
    (status, String::from_utf8(body).expect("utf8"))
}

async fn rakuten_2005_shop_cannot_read_shipping_data_after_window(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("window").await;
    let (_, _, other_key) = t.tenant_with_shop("other").await;
    let customer = customer(&t, &shop_key).await;
    let order = order(&t, &shop_key, &customer, "大阪府大阪市北区梅田1-1").await;

    let (status, shipping) = t
        .call(
            Method::GET,
            &format!("/v1/orders/{order}/shipping"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shipping}");
    assert_eq!(shipping["address"], "大阪府大阪市北区梅田1-1");
    assert_eq!(shipping["postal_code"], "530-0001");
    assert!(
        shipping["readable_until"].is_string(),
        "even open orders close 90 days after creation"
    );
    // Nobody else reads it: not another tenant's shop, not an operator.
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{order}/shipping"),
        Some(&other_key),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let operator = t.key("operator", &tenant, None).await;
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{order}/shipping"),
        Some(&operator),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Completed 13 days ago: still inside the 14-day window.
    complete_days_ago(&t, &shop_key, &order, 13).await;
    let (status, shipping) = t
        .call(
            Method::GET,
            &format!("/v1/orders/{order}/shipping"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shipping}");
    assert!(shipping["readable_until"].is_string());
    // 15 days ago: closed, and the attempt is in the audit log.
    t.raw_sql(&format!(
        "UPDATE orders SET completed_at = {} WHERE id = '{order}'",
        anshin_now_ms() - 15 * DAY_MS
    ))
    .await;
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{order}/shipping"),
        Some(&shop_key),
        None,
        StatusCode::GONE,
        "retention_window_closed",
    )
    .await;
    let reads = t.audit_log_of("order.shipping").await;
    let outcomes: Vec<(&str, Option<&str>)> = reads
        .iter()
        .map(|e| (e["outcome"].as_str().expect("outcome"), e["code"].as_str()))
        .collect();
    assert!(outcomes.contains(&("success", None)));
    assert!(
        outcomes.contains(&("failure", Some("retention_window_closed"))),
        "{outcomes:?}"
    );
    assert!(!serde_json::to_string(&reads).expect("json").contains("梅田"));
}

async fn rakuten_2005_bulk_export_needs_approval(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("bulk").await;
    let customer = customer(&t, &shop_key).await;
    for i in 0..130 {
        order(&t, &shop_key, &customer, &format!("東京都港区{i}-1")).await;
    }
    // 3 × 130 = 390 rows fit the 500-row daily limit; a fourth export would pass it.
    for _ in 0..3 {
        let (status, csv) = export(&t, &shop_key).await;
        assert_eq!(status, StatusCode::OK, "{csv}");
        assert_eq!(csv.lines().count(), 131, "header and 130 orders");
    }
    let (status, body) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body.contains("export_limit") && body.contains("export-approvals"),
        "{body}"
    );
    assert!(!body.contains("港区"));

    // An operator approves more for this shop key, after the fact and with a reason.
    let (status, principals) = t
        .call(
            Method::GET,
            &format!("/v1/principals?tenant_id={tenant}"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let shop_principal = principals
        .as_array()
        .expect("principals")
        .iter()
        .find(|p| p["role"] == "shop")
        .expect("shop principal")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, approval) = t
        .call(
            Method::POST,
            &format!("/v1/principals/{shop_principal}/export-approvals"),
            Some(&t.operator_key),
            Some(json!({"rows": 200, "reason": "ticket 4711: month-end shipping batch"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approval}");
    let (status, csv) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    // Every export, refused or not, is logged with its row count.
    let exports = t.audit_log_of("order.export").await;
    assert_eq!(exports.len(), 5);
    assert_eq!(exports[3]["outcome"], "failure");
    assert_eq!(exports[3]["code"], "export_limit");
    assert_eq!(exports[4]["rows"], 130);
    assert_eq!(t.audit_log_of("export.approve").await.len(), 1);
    // Shops cannot approve for themselves.
    t.expect_error(
        Method::POST,
        &format!("/v1/principals/{shop_principal}/export-approvals"),
        Some(&shop_key),
        Some(json!({"rows": 1000, "reason": "me"})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn rakuten_2005_export_holds_only_orders_inside_the_window(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("export window").await;
    let customer = customer(&t, &shop_key).await;
    let fresh = order(&t, &shop_key, &customer, "福岡県福岡市中央区天神1-1").await;
    let recent = order(&t, &shop_key, &customer, "北海道札幌市中央区北1条西2").await;
    let old = order(&t, &shop_key, &customer, "沖縄県那覇市泉崎1-2").await;
    complete_days_ago(&t, &shop_key, &recent, 3).await;
    complete_days_ago(&t, &shop_key, &old, 20).await;
    let (status, csv) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(
        csv.starts_with("order_id,created_at,status,amount,currency,card_brand,card_last4,shipping_name")
    );
    assert!(csv.contains(&fresh) && csv.contains("天神"));
    assert!(csv.contains(&recent) && csv.contains("札幌"));
    assert!(
        !csv.contains(&old) && !csv.contains("那覇"),
        "an order past its window was exported"
    );
    // Operators and processors do not export.
    let (status, _) = export(&t, &t.operator_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn shipping_data_is_shredded_after_legal_retention(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("purge").await;
    let customer = customer(&t, &shop_key).await;
    let expired = order(&t, &shop_key, &customer, "京都府京都市左京区1-1").await;
    let kept = order(&t, &shop_key, &customer, "奈良県奈良市登大路町30").await;
    complete_days_ago(&t, &shop_key, &expired, 14 + 120 + 1).await;
    complete_days_ago(&t, &shop_key, &kept, 14 + 119).await;
    let report = t.app.purge_expired_shipping().await.expect("purge");
    assert_eq!(report.purged, 1);
    let expired_id = anshin::ids::OrderId::parse(&expired).expect("id");
    let shredded = t
        .app
        .store
        .order_shipping(&expired_id)
        .await
        .expect("read")
        .expect("row");
    assert!(shredded.sealed.is_none() && shredded.purged_at.is_some());
    let kept_id = anshin::ids::OrderId::parse(&kept).expect("id");
    let sealed = t
        .app
        .store
        .order_shipping(&kept_id)
        .await
        .expect("read")
        .expect("row");
    assert!(sealed.sealed.is_some());
    // Idempotent, and recorded once with the orders it shredded.
    assert_eq!(t.app.purge_expired_shipping().await.expect("purge").purged, 0);
    let purges = t.audit_log_of("retention.purge").await;
    assert_eq!(purges.len(), 1);
    assert_eq!(purges[0]["resources"], json!([expired]));
    assert_eq!(purges[0]["rows"], 1);
}

async fn retention_rules_are_set_per_tenant(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("strict").await;
    let (status, settings) = t
        .call(
            Method::GET,
            &format!("/v1/tenants/{tenant}/settings"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        (
            &settings["retention_window_days"],
            &settings["legal_retention_days"],
            &settings["export_daily_rows"]
        ),
        (&json!(14), &json!(120), &json!(500))
    );
    let (status, settings) = t
        .call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/settings"),
            Some(&t.operator_key),
            Some(json!({"retention_window_days": 3, "export_daily_rows": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["retention_window_days"], 3);
    t.expect_error(
        Method::PUT,
        &format!("/v1/tenants/{tenant}/settings"),
        Some(&t.operator_key),
        Some(json!({"retention_window_days": 0})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_retention_window",
    )
    .await;
    let customer = customer(&t, &shop_key).await;
    let order = order(&t, &shop_key, &customer, "宮城県仙台市青葉区1-1").await;
    self::order(&t, &shop_key, &customer, "宮城県仙台市青葉区2-2").await;
    complete_days_ago(&t, &shop_key, &order, 4).await;
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{order}/shipping"),
        Some(&shop_key),
        None,
        StatusCode::GONE,
        "retention_window_closed",
    )
    .await;
    // One row a day: the export of the one open order passes, the next is refused.
    let (status, csv) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let (status, body) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Another tenant keeps the defaults.
    let (other, _, other_key) = t.tenant_with_shop("default").await;
    let other_customer = self::customer(&t, &other_key).await;
    let other_order = self::order(&t, &other_key, &other_customer, "長野県長野市1-1").await;
    complete_days_ago(&t, &other_key, &other_order, 4).await;
    let (status, _) = t
        .call(
            Method::GET,
            &format!("/v1/orders/{other_order}/shipping"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "tenant {other} has the 14-day default");
}

async fn rakuten_2005_reading_orders_one_by_one_spends_the_export_budget(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("one by one").await;
    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/settings"),
            Some(&t.operator_key),
            Some(json!({"export_daily_rows": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let customer = customer(&t, &shop_key).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        orders.push(order(&t, &shop_key, &customer, &format!("愛知県名古屋市中区{i}-1")).await);
    }
    for order in &orders[..3] {
        let (status, body) = t
            .call(
                Method::GET,
                &format!("/v1/orders/{order}/shipping"),
                Some(&shop_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{}/shipping", orders[3]),
        Some(&shop_key),
        None,
        StatusCode::TOO_MANY_REQUESTS,
        "export_limit",
    )
    .await;
    // The single reads used the budget an export would need too.
    let (status, body) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

async fn rakuten_2005_orders_never_completed_leave_the_window_after_90_days(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("never completed").await;
    let customer = customer(&t, &shop_key).await;
    let stale = order(&t, &shop_key, &customer, "静岡県静岡市葵区1-1").await;
    let ancient = order(&t, &shop_key, &customer, "山形県山形市1-1").await;
    let now = anshin_now_ms();
    t.raw_sql(&format!(
        "UPDATE orders SET created_at = {} WHERE id = '{stale}'",
        now - 91 * DAY_MS
    ))
    .await;
    t.raw_sql(&format!(
        "UPDATE orders SET created_at = {} WHERE id = '{ancient}'",
        now - (90 + 120 + 1) * DAY_MS
    ))
    .await;
    t.expect_error(
        Method::GET,
        &format!("/v1/orders/{stale}/shipping"),
        Some(&shop_key),
        None,
        StatusCode::GONE,
        "retention_window_closed",
    )
    .await;
    let (status, csv) = export(&t, &shop_key).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(
        !csv.contains(&stale) && !csv.contains("静岡"),
        "an order open for 91 days was exported"
    );
    // Past 90 days and the legal retention, it is shredded like a completed one.
    assert_eq!(t.app.purge_expired_shipping().await.expect("purge").purged, 1);
    let ancient_id = anshin::ids::OrderId::parse(&ancient).expect("id");
    let row = t
        .app
        .store
        .order_shipping(&ancient_id)
        .await
        .expect("read")
        .expect("row");
    assert!(row.sealed.is_none());
}
