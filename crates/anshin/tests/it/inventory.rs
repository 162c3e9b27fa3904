//! Data inventories on the server, on both backends: an operator uploads
//! (`POST /v1/inventory`), operators and auditors read the latest and the
//! history (`GET /v1/inventory`), per tenant, every upload and read audited.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends};

both_backends!(
    inventories_are_kept_per_tenant_with_history_and_audited,
    inventories_are_checked_and_masked_at_the_edge,
);

fn inventory(scanned_at: &str, path: &str, findings: u64) -> Value {
    json!({
        "format": "anshin-inventory/1",
        "scanned_at": scanned_at,
        "tool": {"name": "anshin-scan", "version": "0.1.0"},
        "parameters": {"inputs": ["./exports"], "tables": [], "row_limit": null,
                       "min_confidence": "medium", "include_test_values": true,
                       "include": [], "exclude": []},
        "totals": {"objects": 1, "partial": 0, "skipped": 0, "locations": 1, "findings": findings,
                   "categories": {"card": {"findings": findings, "locations": 1}}},
        "locations": [{"path": path, "column": "card_number", "kind": "table",
                       "findings": findings, "records": findings,
                       "categories": {"card": {"findings": findings, "records": findings, "test_values": 0}}}],
        "incomplete": [],
        "changes": null
    })
}

async fn operator_of_new_tenant(t: &TestApp, name: &str) -> (String, String) {
    let (tenant, _, _) = t.tenant_with_shop(name).await;
    let key = t.key("operator", &tenant, None).await;
    (tenant, key)
}

async fn inventories_are_kept_per_tenant_with_history_and_audited(t: TestApp) {
    let (tenant, operator) = operator_of_new_tenant(&t, "inventory shop").await;
    let auditor = t.key("auditor", &tenant, None).await;
    let (other_tenant, other_operator) = operator_of_new_tenant(&t, "other shop").await;

    // Nothing yet.
    let (status, list) = t.call(Method::GET, "/v1/inventory", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list, json!({"latest": null, "history": []}));

    let first = inventory("2026-12-01T09:00:00Z", "pg!public.customers", 3);
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/inventory",
            Some(&operator),
            Some(first.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tenant_id"], tenant.as_str());
    assert_eq!(
        (created["locations"].as_u64(), created["findings"].as_u64()),
        (Some(1), Some(3))
    );
    let first_id = created["id"].as_str().expect("id").to_owned();
    assert!(first_id.starts_with("inv_"));

    let second = inventory("2026-12-05T09:00:00Z", "pg!public.customers", 5);
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/inventory",
            Some(&operator),
            Some(second.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second_id = created["id"].as_str().expect("id").to_owned();

    // Auditors read the latest, whole, and the history newest first.
    let (status, list) = t.call(Method::GET, "/v1/inventory", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["latest"], second);
    let history: Vec<&str> = list["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(history, vec![second_id.as_str(), first_id.as_str()]);
    assert_eq!(list["history"][1]["scanned_at"], "2026-12-01T09:00:00Z");
    let (_, page) = t
        .call(Method::GET, "/v1/inventory?limit=1", Some(&operator), None)
        .await;
    assert_eq!(page["history"].as_array().map(Vec::len), Some(1));

    // Per tenant: the other tenant sees none of it, and cannot name this one.
    let (_, theirs) = t
        .call(Method::GET, "/v1/inventory", Some(&other_operator), None)
        .await;
    assert_eq!(theirs, json!({"latest": null, "history": []}));
    t.expect_error(
        Method::GET,
        &format!("/v1/inventory?tenant_id={tenant}"),
        Some(&other_operator),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A global key names the tenant.
    let (status, global) = t
        .call(
            Method::GET,
            &format!("/v1/inventory?tenant_id={tenant}"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(global["history"].as_array().map(Vec::len), Some(2));
    t.expect_error(
        Method::POST,
        "/v1/inventory",
        Some(&t.operator_key),
        Some(first.clone()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "tenant_required",
    )
    .await;

    // Roles: auditors and shops do not upload; shops do not read.
    t.expect_error(
        Method::POST,
        "/v1/inventory",
        Some(&auditor),
        Some(first.clone()),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (_, _, shop) = t.tenant_with_shop("third shop").await;
    t.expect_error(
        Method::GET,
        "/v1/inventory",
        Some(&shop),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Every upload and read is in the audit log, with the tenant and the inventory id.
    let uploads = t.audit_log_of("inventory.upload").await;
    let ok: Vec<&Value> = uploads.iter().filter(|e| e["outcome"] == "success").collect();
    assert_eq!(ok.len(), 2, "{uploads:?}");
    assert!(ok.iter().all(|e| e["tenant"] == tenant.as_str()));
    assert_eq!(ok[0]["resources"], json!([first_id]));
    assert_eq!(ok[1]["resources"], json!([second_id]));
    assert_eq!(ok[0]["actor"]["role"], "operator");
    let refused: Vec<&Value> = uploads.iter().filter(|e| e["outcome"] == "failure").collect();
    assert!(
        refused
            .iter()
            .any(|e| e["code"] == "forbidden" && e["actor"]["role"] == "auditor"),
        "the refused upload is recorded too: {refused:?}"
    );
    let reads = t.audit_log_of("inventory.read").await;
    assert!(reads.iter().any(|e| e["tenant"] == other_tenant.as_str()));
    assert!(reads.len() >= 5, "{}", reads.len());
}

async fn inventories_are_checked_and_masked_at_the_edge(t: TestApp) {
    let (_, operator) = operator_of_new_tenant(&t, "edge shop").await;
    let cases = [
        ("format", json!("something/9"), "invalid_inventory"),
        ("scanned_at", json!("yesterday"), "invalid_inventory"),
        ("locations", json!("many"), "invalid_request"),
    ];
    for (field, value, code) in cases {
        let mut bad = inventory("2026-12-01T09:00:00Z", "x", 1);
        bad[field] = value;
        t.expect_error(
            Method::POST,
            "/v1/inventory",
            Some(&operator),
            Some(bad),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }

    // A name holding a card number is stored masked.
    let card = "4532015112830366";
    let named = inventory("2026-12-01T09:00:00Z", &format!("exports/{card}.csv"), 1);
    let (status, created) = t
        .call(Method::POST, "/v1/inventory", Some(&operator), Some(named))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, list) = t.call(Method::GET, "/v1/inventory", Some(&operator), None).await;
    assert_eq!(
        list["latest"]["locations"][0]["path"],
        "exports/453201••••••0366.csv"
    );
    assert!(!list.to_string().contains(card));

    // Larger than the API's 64 KiB, within the inventory limit.
    let mut big = inventory("2026-12-01T09:00:00Z", "x", 1);
    let location = big["locations"][0].clone();
    big["locations"] = Value::Array(
        (0..2000)
            .map(|i| {
                let mut l = location.clone();
                l["path"] = json!(format!("exports/file-{i:05}.csv"));
                l
            })
            .collect(),
    );
    assert!(big.to_string().len() > 64 * 1024);
    let (status, created) = t
        .call(Method::POST, "/v1/inventory", Some(&operator), Some(big))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["locations"], 2000);
}
