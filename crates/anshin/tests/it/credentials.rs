//! The credential lifecycle, through the HTTP API, the store and the command
//! line, on both backends: keys expire and the refusal says how to rotate;
//! rotation keeps the old key for the overlap only; shops rotate their own keys;
//! allow-lists refuse other addresses; ten failed authentications from one
//! source lock it out (PCI DSS v4.0 8.3.4); keys made before the upgrade keep
//! working.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anshin::access::principals::AUTH_CACHE_TTL;
use anshin::clock;
use anshin::db::credentials::{FailurePolicy, KeyRow, TenantSettingsRow};
use anshin::db::{PrincipalRow, Store};
use anshin::ids::PrincipalId;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends, of_kind, postgres_available, postgres_url};

both_backends!(
    an_expired_key_is_refused_and_told_how_to_rotate,
    rotation_keeps_the_old_key_for_the_overlap_only,
    rakuten_2005_shop_keys_expire_and_rotate,
    rotation_is_scoped_and_bad_input_changes_nothing,
    allow_lists_refuse_other_addresses_and_accept_their_own,
    behind_a_trusted_proxy_the_forwarded_client_is_the_origin,
    ten_failures_from_one_address_lock_it_out,
    requests_without_a_key_count_toward_the_lockout,
    tenant_settings_are_checked_audited_and_shorten_existing_keys,
    the_store_counts_failures_and_rotates_keys,
);

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// An RFC 3339 time as ms since the epoch.
fn ms(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("range")
}

fn assert_near(actual: i64, expected: i64, what: &str) {
    assert!(
        (actual - expected).abs() < 5 * 60_000,
        "{what}: {actual} is not near {expected}"
    );
}

/// Creates a principal as the bootstrap operator: (id, key, answer).
async fn create(t: &TestApp, body: Value) -> (String, String, Value) {
    let (status, created) = t
        .call(Method::POST, "/v1/principals", Some(&t.operator_key), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let key = created["api_key"].as_str().expect("key").to_owned();
    (id, key, created)
}

/// A principal as the bootstrap operator lists it.
async fn listed(t: &TestApp, id: &str) -> Value {
    let (status, list) = t
        .call(Method::GET, "/v1/principals", Some(&t.operator_key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array()
        .expect("array")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .expect("listed")
}

/// Rotates `id` with `key`.
async fn rotate(t: &TestApp, id: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
    t.call(
        Method::POST,
        &format!("/v1/principals/{id}/rotate"),
        Some(key),
        body,
    )
    .await
}

/// Ends every key of `id` that expires before `before` (ms), as time would;
/// then waits out the authentication cache, which is how long another node may
/// take to see such a change.
async fn expire_keys(t: &TestApp, id: &str, before: i64) {
    let past = clock::now_ms() - 60_000;
    t.raw_sql(&format!(
        "UPDATE principal_keys SET expires_at = {past} WHERE principal_id = '{id}' AND expires_at < {before}"
    ))
    .await;
    tokio::time::sleep(AUTH_CACHE_TTL + Duration::from_millis(200)).await;
}

async fn an_expired_key_is_refused_and_told_how_to_rotate(t: TestApp) {
    let (tenant, shop, _) = t.tenant_with_shop("expiry").await;
    let (id, key, created) = create(
        &t,
        json!({"name": "shop 1 orders", "role": "shop", "shop_id": shop}),
    )
    .await;
    assert_near(
        ms(&created["expires_at"]),
        clock::now_ms() + 90 * DAY_MS,
        "new keys live 90 days",
    );
    let (status, _) = t.tokenize(&key, "4111111111111111").await;
    assert_eq!(status, StatusCode::CREATED);

    expire_keys(&t, &id, i64::MAX).await;
    let (status, answer) = t.tokenize(&key, "4111111111111111").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "api_key_expired");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("anshin principal rotate {id}"))
            && message.contains(&format!("POST /v1/principals/{id}/rotate")),
        "the refusal says how to rotate: {message}"
    );
    assert!(!message.contains(&key) && !message.contains("4111"));
    // A key that never existed is still just invalid.
    t.expect_error(
        Method::GET,
        "/v1/orders",
        Some("anshin_sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        None,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;

    let principal = listed(&t, &id).await;
    assert!(ms(&principal["key_expires_at"]) < clock::now_ms());
    assert_eq!(principal["keys"], json!([]), "no working key");

    // The audit log names the principal whose expired key was tried, never the key.
    let log = t.audit_log().await;
    let refused: Vec<_> = of_kind(&log, "auth.failure")
        .into_iter()
        .filter(|e| e["code"] == "api_key_expired")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["resources"], json!([id]));
    assert_eq!(refused[0]["tenant"], tenant.as_str());
    assert!(refused[0].get("actor").is_none());
    assert!(!serde_json::to_string(&log).expect("json").contains(&key));

    // Another operator key rotates it, and the shop is back.
    let (status, rotated) = rotate(&t, &id, &t.operator_key, None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert!(
        rotated["previous_key_expires_at"].is_null(),
        "no working key was replaced"
    );
    let new_key = rotated["api_key"].as_str().expect("key");
    let (status, _) = t.tokenize(new_key, "4111111111111111").await;
    assert_eq!(status, StatusCode::OK);
}

async fn rotation_keeps_the_old_key_for_the_overlap_only(t: TestApp) {
    let (tenant, _, _) = t.tenant_with_shop("overlap").await;
    let (id, old_key, _) = create(
        &t,
        json!({"name": "reporting", "role": "auditor", "tenant_id": tenant}),
    )
    .await;
    let before = clock::now_ms();
    let (status, rotated) = rotate(&t, &id, &t.operator_key, Some(json!({"overlap_hours": 2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["id"], id.as_str());
    let new_key = rotated["api_key"].as_str().expect("key").to_owned();
    assert_ne!(new_key, old_key);
    assert_near(ms(&rotated["expires_at"]), before + 90 * DAY_MS, "new key");
    assert_near(
        ms(&rotated["previous_key_expires_at"]),
        before + 2 * HOUR_MS,
        "the old key works for the overlap",
    );

    for key in [&old_key, &new_key] {
        let (status, _) = t.call(Method::GET, "/v1/tenants", Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "both keys work during the overlap");
    }
    let principal = listed(&t, &id).await;
    assert_eq!(principal["keys"].as_array().map(Vec::len), Some(2));
    assert_eq!(principal["key_expires_at"], rotated["expires_at"]);
    assert!(!principal.to_string().contains(&new_key) && !principal.to_string().contains(&old_key));

    // The overlap ends.
    expire_keys(&t, &id, before + 30 * DAY_MS).await;
    t.expect_error(
        Method::GET,
        "/v1/tenants",
        Some(&old_key),
        None,
        StatusCode::UNAUTHORIZED,
        "api_key_expired",
    )
    .await;
    let (status, _) = t.call(Method::GET, "/v1/tenants", Some(&new_key), None).await;
    assert_eq!(status, StatusCode::OK, "the new key still works");
    assert_eq!(listed(&t, &id).await["keys"].as_array().map(Vec::len), Some(1));

    let log = t.audit_log().await;
    let rotations = of_kind(&log, "principal.rotate");
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0]["outcome"], "success");
    assert_eq!(rotations[0]["resources"], json!([id]));
    assert_eq!(rotations[0]["tenant"], tenant.as_str());
    assert_eq!(rotations[0]["actor"]["role"], "operator");
}

async fn rakuten_2005_shop_keys_expire_and_rotate(t: TestApp) {
    // After the 2005 leak by a shop's staff, Rakuten moved shops to credentials
    // rotated on a shorter period. Here: a 30-day lifetime, a 1-hour overlap,
    // and shops that rotate their own keys.
    let (tenant, shop, _) = t.tenant_with_shop("楽天市場").await;
    let (status, settings) = t
        .call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/settings"),
            Some(&t.operator_key),
            Some(json!({"key_lifetime_days": 30, "key_overlap_hours": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (id, first, created) = create(
        &t,
        json!({"name": "shop order system", "role": "shop", "shop_id": shop}),
    )
    .await;
    assert_near(
        ms(&created["expires_at"]),
        clock::now_ms() + 30 * DAY_MS,
        "30 days",
    );

    // The shop's own system rotates its key, with no body at all.
    let (status, rotated) = rotate(&t, &id, &first, None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let second = rotated["api_key"].as_str().expect("key").to_owned();
    assert_near(
        ms(&rotated["expires_at"]),
        clock::now_ms() + 30 * DAY_MS,
        "30 days",
    );
    assert_near(
        ms(&rotated["previous_key_expires_at"]),
        clock::now_ms() + HOUR_MS,
        "1-hour overlap",
    );
    for key in [&first, &second] {
        let (status, body) = t.tokenize(key, "5555555555554444").await;
        assert!(status.is_success(), "{body}");
    }
    // A replaced key cannot mint another: a leaked old key dies with its overlap.
    let (status, answer) = rotate(&t, &id, &first, None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_superseded"))
    );
    // A shop rotates itself only.
    let (operator_id, _, _) = create(
        &t,
        json!({"name": "tenant ops", "role": "operator", "tenant_id": tenant}),
    )
    .await;
    let (status, _) = rotate(&t, &operator_id, &second, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // After the overlap only the newest key works.
    expire_keys(&t, &id, clock::now_ms() + 2 * DAY_MS).await;
    let (status, answer) = t.tokenize(&first, "5555555555554444").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("api_key_expired"))
    );
    let (status, _) = t.tokenize(&second, "5555555555554444").await;
    assert_eq!(status, StatusCode::OK);

    // A suspected leak: rotate with no overlap, and the old key stops at once.
    let (status, rotated) = rotate(&t, &id, &second, Some(json!({"overlap_hours": 0}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let third = rotated["api_key"].as_str().expect("key").to_owned();
    let (status, _) = t.tokenize(&second, "5555555555554444").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no overlap");
    let (status, _) = t.tokenize(&third, "5555555555554444").await;
    assert_eq!(status, StatusCode::OK);

    let log = t.audit_log().await;
    let by_shop: Vec<_> = of_kind(&log, "principal.rotate")
        .into_iter()
        .filter(|e| e["actor"]["role"] == "shop")
        .collect();
    assert_eq!(by_shop.len(), 4, "every rotation is logged, refused ones too");
    assert_eq!(by_shop.iter().filter(|e| e["outcome"] == "success").count(), 2);
    assert!(by_shop.iter().all(|e| e["actor"]["shop"] == shop.as_str()));
    assert_eq!(of_kind(&log, "tenant.settings").len(), 1);
}

async fn rotation_is_scoped_and_bad_input_changes_nothing(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("scoped").await;
    let (other_tenant, _, _) = t.tenant_with_shop("other").await;
    let (_, tenant_op, _) = create(
        &t,
        json!({"name": "tenant ops", "role": "operator", "tenant_id": tenant}),
    )
    .await;
    let (processor, processor_key, _) = create(
        &t,
        json!({"name": "acquirer", "role": "processor", "tenant_id": tenant}),
    )
    .await;
    let (auditor, auditor_key, _) = create(
        &t,
        json!({"name": "reports", "role": "auditor", "tenant_id": tenant}),
    )
    .await;
    let (foreign, _, _) = create(
        &t,
        json!({"name": "foreign", "role": "auditor", "tenant_id": other_tenant}),
    )
    .await;
    let path = |id: &str| format!("/v1/principals/{id}/rotate");

    // A tenant operator may not obtain a processor key by rotating one.
    t.expect_error(
        Method::POST,
        &path(&processor),
        Some(&tenant_op),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    t.expect_error(
        Method::POST,
        &path(&foreign),
        Some(&tenant_op),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        Method::POST,
        &path(&auditor),
        Some(&shop_key),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let unknown = PrincipalId::generate().expect("rng").to_string();
    t.expect_error(
        Method::POST,
        &path(&unknown),
        Some(&t.operator_key),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        Method::POST,
        &path("4111111111111111"),
        Some(&t.operator_key),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Bad input is 422 with a stable code and changes nothing.
    for (body, code) in [
        (json!({"overlap_hours": 169}), "invalid_overlap"),
        (json!({"overlap_hours": -1}), "invalid_overlap"),
        (json!({"overlap_hours": "soon"}), "invalid_request"),
        (json!({"overlap": 1}), "invalid_request"),
    ] {
        t.expect_error(
            Method::POST,
            &path(&auditor),
            Some(&tenant_op),
            Some(body),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    assert_eq!(
        listed(&t, &auditor).await["keys"].as_array().map(Vec::len),
        Some(1)
    );
    let (status, _) = t.call(Method::GET, "/v1/tenants", Some(&auditor_key), None).await;
    assert_eq!(status, StatusCode::OK);

    // The allowed rotations.
    let (status, _) = rotate(&t, &auditor, &tenant_op, Some(json!({"overlap_hours": 168}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = rotate(&t, &processor, &t.operator_key, None).await;
    assert_eq!(status, StatusCode::CREATED, "a global operator may");
    let (status, _) = rotate(&t, &processor, &processor_key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "its old key was replaced");

    // A disabled principal gets no new key.
    let (status, _) = t
        .call(
            Method::POST,
            &format!("/v1/principals/{auditor}/disable"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.expect_error(
        Method::POST,
        &path(&auditor),
        Some(&t.operator_key),
        None,
        StatusCode::CONFLICT,
        "principal_disabled",
    )
    .await;
    let disabled = listed(&t, &auditor).await;
    assert_eq!(disabled["keys"], json!([]), "disabling revokes every key");
    assert!(disabled["key_expires_at"].is_null());
}

/// Behind a reverse proxy every connection comes from the proxy: allow-lists,
/// lock-outs and the audit log must see the client it forwards for, and only
/// when the proxy is trusted (a client cannot name its own origin).
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_origin(mut t: TestApp) {
    std::sync::Arc::get_mut(&mut t.app)
        .expect("the test holds the only reference")
        .trust_proxies(anshin::access::proxies::TrustedProxies::parse(&["10.0.0.0/8"]).expect("blocks"));
    let (tenant, _, _) = t.tenant_with_shop("proxy").await;
    let (_, key, _) = create(
        &t,
        json!({"name": "batch", "role": "auditor", "tenant_id": tenant,
               "allowed_ips": ["198.51.100.0/24"]}),
    )
    .await;
    // (peer, X-Forwarded-For, path, expected error). Reading the audit log is
    // itself audited, so the first, admitted call leaves an entry.
    let cases = [
        // Through the proxy, for an allowed client; a forged left-most entry is ignored.
        (
            "10.0.0.2",
            "192.0.2.66, 198.51.100.7",
            "/v1/audit/events?limit=1",
            None,
        ),
        // Through the proxy, for a client outside the list.
        (
            "10.0.0.2",
            "198.51.100.7, 192.0.2.66",
            "/v1/tenants",
            Some("ip_not_allowed"),
        ),
        // Straight from an untrusted address, the header is not believed.
        (
            "192.0.2.66",
            "198.51.100.7",
            "/v1/tenants",
            Some("ip_not_allowed"),
        ),
    ];
    for (peer, forwarded, path, refused) in cases {
        let (status, body) = t
            .call_with_headers(
                peer,
                &[("x-forwarded-for", forwarded)],
                Method::GET,
                path,
                Some(&key),
            )
            .await;
        match refused {
            None => assert_eq!(status, StatusCode::OK, "{peer} {forwarded}: {body}"),
            Some(code) => assert_eq!(
                (status, body["error"]["code"].as_str()),
                (StatusCode::FORBIDDEN, Some(code)),
                "{peer} {forwarded}"
            ),
        }
    }
    // The audit log names the forwarded client as the origin.
    let (status, page) = t
        .call(
            Method::GET,
            "/v1/audit/events?limit=1000",
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let origins: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["entry"]["origin"].as_str())
        .collect();
    assert!(origins.contains(&"198.51.100.7"), "{origins:?}");
    assert!(origins.contains(&"192.0.2.66"), "{origins:?}");
    assert!(
        !origins.contains(&"10.0.0.2"),
        "the proxy is never the origin: {origins:?}"
    );
}

async fn allow_lists_refuse_other_addresses_and_accept_their_own(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("allow").await;
    let (id, key, _) = create(
        &t,
        json!({"name": "batch", "role": "auditor", "tenant_id": tenant,
               "allowed_ips": ["192.0.2.0/24", "2001:db8::/48"]}),
    )
    .await;
    assert_eq!(
        listed(&t, &id).await["allowed_ips"],
        json!(["192.0.2.0/24", "2001:db8::/48"])
    );
    for ip in ["192.0.2.10", "2001:db8:0:1::5", "::ffff:192.0.2.11"] {
        let (status, body) = t
            .call_from(ip, Method::GET, "/v1/tenants", Some(&key), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{ip}: {body}");
    }
    let (status, answer) = t
        .call_from("198.51.100.7", Method::GET, "/v1/tenants", Some(&key), None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("ip_not_allowed"))
    );
    assert!(
        !answer.to_string().contains("198.51.100.7"),
        "the address is not echoed"
    );
    // Without a client address the allow-list cannot be checked: refused.
    t.expect_error(
        Method::GET,
        "/v1/tenants",
        Some(&key),
        None,
        StatusCode::FORBIDDEN,
        "ip_not_allowed",
    )
    .await;

    // Bad blocks are 422 and create nothing.
    let count = |list: &Value| list.as_array().map_or(0, Vec::len);
    let (_, before) = t
        .call(Method::GET, "/v1/principals", Some(&t.operator_key), None)
        .await;
    for bad in [
        json!(["192.0.2.7/24"]),
        json!(["4111111111111111"]),
        json!([]),
        Value::Array(vec![json!("10.0.0.0/8"); 33]),
    ] {
        let (status, answer) = t
            .call(
                Method::POST,
                "/v1/principals",
                Some(&t.operator_key),
                Some(json!({"name": "x", "role": "auditor", "tenant_id": tenant, "allowed_ips": bad})),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_allowed_ips")),
            "{bad}"
        );
        assert!(!answer.to_string().contains("4111"));
    }
    let (_, after) = t
        .call(Method::GET, "/v1/principals", Some(&t.operator_key), None)
        .await;
    assert_eq!(count(&before), count(&after));

    // A change applies at once, though the key was just cached.
    let path = format!("/v1/principals/{id}/allowed-ips");
    let (status, changed) = t
        .call(
            Method::PUT,
            &path,
            Some(&t.operator_key),
            Some(json!({"allowed_ips": ["198.51.100.0/24"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["allowed_ips"], json!(["198.51.100.0/24"]));
    let (status, _) = t
        .call_from("198.51.100.7", Method::GET, "/v1/tenants", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .call_from("192.0.2.10", Method::GET, "/v1/tenants", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    t.expect_error(
        Method::PUT,
        &path,
        Some(&t.operator_key),
        Some(json!({})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_allowed_ips",
    )
    .await;
    t.expect_error(
        Method::PUT,
        &path,
        Some(&shop_key),
        Some(json!({"allowed_ips": null})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (status, changed) = t
        .call(
            Method::PUT,
            &path,
            Some(&t.operator_key),
            Some(json!({"allowed_ips": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(changed["allowed_ips"].is_null());
    let (status, _) = t.call(Method::GET, "/v1/tenants", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "any address again");

    let log = t.audit_log().await;
    let refused: Vec<_> = of_kind(&log, "auth.failure")
        .into_iter()
        .filter(|e| e["code"] == "ip_not_allowed")
        .collect();
    assert!(
        refused
            .iter()
            .any(|e| e["origin"] == "198.51.100.7" && e["resources"] == json!([id])),
        "{refused:?}"
    );
    let updates = of_kind(&log, "principal.update");
    assert_eq!(updates.iter().filter(|e| e["outcome"] == "success").count(), 2);
}

async fn ten_failures_from_one_address_lock_it_out(t: TestApp) {
    let bad = "anshin_sk_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let op = t.operator_key.clone();
    // Nine failures leave the address alone.
    for _ in 0..9 {
        let (status, _) = t
            .call_from("203.0.113.7", Method::GET, "/v1/tenants", Some(bad), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = t
        .call_from("203.0.113.7", Method::GET, "/v1/tenants", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "nine failures do not lock out");
    // The tenth does.
    let (status, _) = t
        .call_from("203.0.113.7", Method::GET, "/v1/tenants", Some(bad), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, answer) = t
        .request_from(
            Some("203.0.113.7".parse().expect("ip")),
            Method::GET,
            "/v1/tenants",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_failures")),
        "even a valid key is refused"
    );
    let retry: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1_700..=1_800).contains(&retry), "{retry}");
    let (status, _) = t
        .call_from("203.0.113.7", Method::GET, "/v1/tenants", None, None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "with no key too");
    let (status, _) = t
        .call_from("203.0.113.8", Method::GET, "/v1/tenants", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "another address still works");
    let (status, _) = t.call(Method::GET, "/v1/tenants", Some(&op), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "requests without an address are not counted"
    );

    // IPv6 is counted per /64: ten addresses of one /64 lock all of it.
    for i in 1..=10 {
        let ip = format!("2001:db8:1:2::{i:x}");
        let (status, _) = t
            .call_from(&ip, Method::GET, "/v1/tenants", Some(bad), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ip}");
    }
    let (status, _) = t
        .call_from("2001:db8:1:2::ffff", Method::GET, "/v1/tenants", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = t
        .call_from("2001:db8:1:3::1", Method::GET, "/v1/tenants", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another node on the same database refuses the address too.
    let node2 = anshin::app::App::open(&t.location).await.expect("second node");
    assert!(
        node2
            .check_lockout(Some("203.0.113.7".parse().expect("ip")))
            .is_ok(),
        "not loaded yet"
    );
    node2.refresh_lockouts().await.expect("refresh");
    let err = node2
        .check_lockout(Some("203.0.113.7".parse().expect("ip")))
        .expect_err("locked out on node 2");
    assert_eq!(err.code(), "too_many_failures");
    assert!(
        node2
            .check_lockout(Some("203.0.113.8".parse().expect("ip")))
            .is_ok()
    );

    let log = t.audit_log().await;
    let lockouts = of_kind(&log, "auth.lockout");
    assert_eq!(lockouts.len(), 2, "{lockouts:?}");
    assert_eq!(lockouts[0]["origin"], "203.0.113.7");
    assert_eq!(lockouts[0]["code"], "too_many_failures");
    assert_eq!(lockouts[1]["origin"], "2001:db8:1:2::a");
    let failures = of_kind(&log, "auth.failure")
        .into_iter()
        .filter(|e| e["origin"] == "203.0.113.7")
        .count();
    assert_eq!(failures, 10, "each failure is logged; the 429s are not");
}

async fn tenant_settings_are_checked_audited_and_shorten_existing_keys(t: TestApp) {
    let (tenant, shop, shop_key) = t.tenant_with_shop("settings").await;
    let (other, _, _) = t.tenant_with_shop("other").await;
    let path = format!("/v1/tenants/{tenant}/settings");
    let op = Some(t.operator_key.as_str());
    let (status, settings) = t.call(Method::GET, &path, op, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings,
        json!({
            "tenant_id": tenant, "key_lifetime_days": 90, "key_overlap_hours": 24,
            "retention_window_days": 14, "legal_retention_days": 120, "export_daily_rows": 500
        })
    );
    for (body, code) in [
        (json!({"key_lifetime_days": 0}), "invalid_key_lifetime"),
        (json!({"key_lifetime_days": 366}), "invalid_key_lifetime"),
        (json!({"key_overlap_hours": 169}), "invalid_overlap"),
        (json!({"key_overlap_hours": -1}), "invalid_overlap"),
        (json!({"key_lifetime_days": "30"}), "invalid_request"),
        (json!({"retention_days": 14}), "invalid_request"),
    ] {
        t.expect_error(
            Method::PUT,
            &path,
            op,
            Some(body),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    assert_eq!(
        t.call(Method::GET, &path, op, None).await.1,
        settings,
        "unchanged"
    );

    let (_, auditor, _) = create(&t, json!({"name": "a", "role": "auditor", "tenant_id": tenant})).await;
    let (_, other_op, _) = create(&t, json!({"name": "o", "role": "operator", "tenant_id": other})).await;
    let (status, _) = t.call(Method::GET, &path, Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "auditors read the policy");
    let change = Some(json!({"key_lifetime_days": 30}));
    t.expect_error(
        Method::PUT,
        &path,
        Some(&auditor),
        change.clone(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    t.expect_error(
        Method::PUT,
        &path,
        Some(&shop_key),
        change.clone(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    t.expect_error(
        Method::PUT,
        &path,
        Some(&other_op),
        change.clone(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        Method::GET,
        &path,
        Some(&other_op),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A key issued 40 days ago, then the lifetime shortened to 30 days: it
    // expires, but not before one overlap from now, so its holder can rotate.
    let (old_id, old_key, _) = create(&t, json!({"name": "old", "role": "shop", "shop_id": shop})).await;
    let issued = clock::now_ms() - 40 * DAY_MS;
    t.raw_sql(&format!(
        "UPDATE principal_keys SET created_at = {issued}, expires_at = {} WHERE principal_id = '{old_id}'",
        issued + 90 * DAY_MS
    ))
    .await;
    let (fresh_id, _, _) = create(&t, json!({"name": "fresh", "role": "shop", "shop_id": shop})).await;
    let (status, changed) = t.call(Method::PUT, &path, op, change.clone()).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed,
        json!({
            "tenant_id": tenant, "key_lifetime_days": 30, "key_overlap_hours": 24,
            "retention_window_days": 14, "legal_retention_days": 120, "export_daily_rows": 500
        })
    );
    let now = clock::now_ms();
    assert_near(
        ms(&listed(&t, &old_id).await["key_expires_at"]),
        now + 24 * HOUR_MS,
        "old key: one overlap",
    );
    assert_near(
        ms(&listed(&t, &fresh_id).await["key_expires_at"]),
        now + 30 * DAY_MS,
        "fresh key: 30 days",
    );
    let (status, _) = t.tokenize(&old_key, "4111111111111111").await;
    assert_eq!(status, StatusCode::CREATED, "still inside its last overlap");
    let (_, _, created) = create(&t, json!({"name": "new", "role": "shop", "shop_id": shop})).await;
    assert_near(ms(&created["expires_at"]), now + 30 * DAY_MS, "new keys: 30 days");

    // Lengthening applies to new keys only; null restores the default.
    let (status, changed) = t
        .call(
            Method::PUT,
            &path,
            op,
            Some(json!({"key_lifetime_days": null, "key_overlap_hours": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["key_lifetime_days"], 90);
    assert_eq!(changed["key_overlap_hours"], 2);
    assert_near(
        ms(&listed(&t, &fresh_id).await["key_expires_at"]),
        now + 30 * DAY_MS,
        "not lengthened",
    );

    let log = t.audit_log().await;
    let changes = of_kind(&log, "tenant.settings");
    let done: Vec<_> = changes.iter().filter(|e| e["outcome"] == "success").collect();
    assert_eq!(done.len(), 2);
    assert!(
        done.iter()
            .all(|e| e["tenant"] == tenant.as_str() && e["resources"] == json!([tenant]))
    );
    assert!(
        changes
            .iter()
            .any(|e| e["outcome"] == "failure" && e["code"] == "invalid_key_lifetime"),
        "refused changes are logged too"
    );
}

async fn the_store_counts_failures_and_rotates_keys(t: TestApp) {
    let store = &t.app.store;
    let policy = |now: i64| FailurePolicy {
        now,
        window_start: now - 15 * 60_000,
        threshold: 3,
        lock_until: now + 30 * 60_000,
    };
    let source = "192.0.2.1";
    let first = store
        .record_auth_failure(source, policy(1_000_000))
        .await
        .expect("count");
    assert_eq!(
        (first.failures, first.locked_until, first.started),
        (1, None, false)
    );
    // Failures that left the window no longer count.
    let later = 1_000_000 + 16 * 60_000;
    assert_eq!(
        store
            .record_auth_failure(source, policy(later))
            .await
            .expect("count")
            .failures,
        1
    );
    assert_eq!(
        store
            .record_auth_failure(source, policy(later + 1))
            .await
            .expect("count")
            .failures,
        2
    );
    let third = store
        .record_auth_failure(source, policy(later + 2))
        .await
        .expect("count");
    assert_eq!((third.failures, third.started), (3, true));
    assert_eq!(third.locked_until, Some(later + 2 + 30 * 60_000));
    let during = store
        .record_auth_failure(source, policy(later + 3))
        .await
        .expect("count");
    assert_eq!(
        (during.failures, during.started),
        (0, false),
        "a locked-out source is not counted"
    );
    assert_eq!(during.locked_until, third.locked_until);
    assert_eq!(
        store.auth_lockouts(later + 3).await.expect("lockouts"),
        vec![(source.to_owned(), later + 2 + 30 * 60_000)]
    );
    // Once it ends, a new run of failures starts from zero.
    let after = later + 2 + 30 * 60_000;
    assert!(store.auth_lockouts(after).await.expect("lockouts").is_empty());
    assert_eq!(
        store
            .record_auth_failure(source, policy(after))
            .await
            .expect("count")
            .failures,
        1
    );
    store
        .prune_auth_failures(after + 1, after + 1)
        .await
        .expect("prune");
    assert_eq!(
        store
            .record_auth_failure(source, policy(after + 2))
            .await
            .expect("count")
            .failures,
        1,
        "pruned"
    );

    // Rotation shortens the live keys, reports their end, and refuses a disabled principal.
    let row = PrincipalRow {
        id: PrincipalId::generate().expect("rng"),
        name: "p".into(),
        role: anshin::access::Role::Auditor,
        tenant_id: None,
        shop_id: None,
        allowed_ips: None,
        created_at: 10,
        disabled_at: None,
    };
    let key = |hash: u8, created_at: i64, expires_at: i64| KeyRow {
        key_hash: [hash; 32],
        principal_id: row.id.clone(),
        created_at,
        expires_at,
        revoked_at: None,
    };
    store
        .insert_principal(row.clone(), key(1, 10, 5_000))
        .await
        .expect("insert");
    let previous = store.rotate_key(key(2, 100, 9_000), 400).await.expect("rotate");
    assert_eq!(previous, Some(Some(400)));
    let keys = store.principal_keys(None, Some(&row.id)).await.expect("keys");
    assert_eq!(keys, vec![key(1, 10, 400), key(2, 100, 9_000)]);
    // An overlap longer than the old key's life does not lengthen it.
    let previous = store
        .rotate_key(key(3, 200, 9_500), 100_000)
        .await
        .expect("rotate");
    assert_eq!(
        previous,
        Some(Some(9_000)),
        "an overlap longer than a key's life lengthens nothing"
    );
    assert!(store.disable_principal(&row.id, 300).await.expect("disable"));
    assert_eq!(
        store.rotate_key(key(4, 400, 9_900), 500).await.expect("rotate"),
        None
    );
    assert!(
        store.credential(&[4; 32]).await.expect("read").is_none(),
        "nothing written"
    );
    assert!(
        store
            .principal_keys(None, Some(&row.id))
            .await
            .expect("keys")
            .is_empty()
    );

    // Settings round-trip, with NULL meaning the default.
    let (tenant, _, _) = t.tenant_with_shop("stored").await;
    let tenant = anshin::ids::TenantId::parse(&tenant).expect("id");
    assert_eq!(
        store.tenant_settings(&tenant).await.expect("read"),
        TenantSettingsRow::default()
    );
    let set = TenantSettingsRow {
        key_lifetime_days: Some(7),
        key_overlap_hours: None,
        retention_window_days: Some(3),
        legal_retention_days: Some(0),
        export_daily_rows: None,
    };
    store
        .put_tenant_settings(&tenant, set.clone(), 7 * DAY_MS, 0)
        .await
        .expect("put");
    assert_eq!(store.tenant_settings(&tenant).await.expect("read"), set);
}

/// Builds a database at schema version 2 (before this migration) with an
/// active and a disabled principal, then opens it with this build.
async fn upgrade_from_version_2(url: &str, run: impl AsyncFnOnce(&str) -> ()) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let mut sql = String::new();
    for file in ["0001_vault.sql", "0002_audit.sql"] {
        sql.push_str(&std::fs::read_to_string(dir.join(backend).join(file)).expect("migration"));
    }
    let hash = |b: u8| format!("{:02x}", b).repeat(32);
    let (blob_active, blob_disabled) = match backend {
        "postgres" => (format!("'\\x{}'", hash(1)), format!("'\\x{}'", hash(2))),
        _ => (format!("X'{}'", hash(1)), format!("X'{}'", hash(2))),
    };
    sql.push_str(&format!(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 'vault', 0), (2, 'audit', 0);
         INSERT INTO tenants (id, name, created_at) VALUES ('ten_aaaaaaaaaaaaaaaaaaaaaaaaaa', 't', 1);
         INSERT INTO principals (id, name, role, tenant_id, shop_id, key_hash, created_at, disabled_at) VALUES
           ('prn_aaaaaaaaaaaaaaaaaaaaaaaaaa', 'old operator', 'operator', NULL, NULL, {blob_active}, 1000, NULL),
           ('prn_bbbbbbbbbbbbbbbbbbbbbbbbbb', 'gone', 'auditor', 'ten_aaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, {blob_disabled}, 2000, 3000);"
    ));
    run(&sql).await;
    let store = Store::open(url).await.expect("migrates");
    let now = clock::now_ms();
    let (active, key) = store.credential(&[1; 32]).await.expect("read").expect("kept");
    assert_eq!(
        (active.name.as_str(), active.allowed_ips.clone()),
        ("old operator", None)
    );
    assert_eq!(key.created_at, 1000);
    assert_near(key.expires_at, now + 90 * DAY_MS, "90 days from the upgrade");
    assert!(key.is_live(now));
    let (gone, key) = store.credential(&[2; 32]).await.expect("read").expect("kept");
    assert_eq!(gone.disabled_at, Some(3000));
    assert_eq!(
        key.revoked_at,
        Some(3000),
        "a disabled principal's key is revoked"
    );
    assert_eq!(store.principals(None).await.expect("list").len(), 2);
    // The key hashes left the principals table, and keys stay unique.
    let dup = PrincipalRow {
        id: PrincipalId::generate().expect("rng"),
        ..active
    };
    let clash = KeyRow {
        key_hash: [1; 32],
        principal_id: dup.id.clone(),
        created_at: now,
        expires_at: now + 1,
        revoked_at: None,
    };
    assert!(store.insert_principal(dup, clash).await.is_err());
}

#[tokio::test]
async fn keys_made_before_the_upgrade_keep_working_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    upgrade_from_version_2(&url, async |sql| {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(sql).expect("version 2");
    })
    .await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('principals')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("columns");
    assert!(!columns.contains(&"key_hash".to_owned()) && columns.contains(&"allowed_ips".to_owned()));
    let dangling: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("check");
    assert!(dangling.is_empty(), "{dangling:?}");
}

#[tokio::test]
async fn keys_made_before_the_upgrade_keep_working_on_postgres() {
    if !postgres_available().await {
        return;
    }
    let schema = format!(
        "anshin_it_up_{}",
        &anshin::ids::TenantId::generate().expect("rng").as_str()[4..]
    );
    let url = anshin::db::schema_url(&postgres_url(), &schema)
        .await
        .expect("schema");
    let connect_url = url.clone();
    upgrade_from_version_2(&url, async move |sql| {
        let (client, connection) = tokio_postgres::connect(&connect_url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect("version 2");
    })
    .await;
    anshin::db::drop_schema(&postgres_url(), &schema)
        .await
        .expect("drop");
}

fn anshin(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ANSHIN_DATABASE_URL")
        .env("ANSHIN_LOG", "warn")
        .output()
        .expect("run anshin")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn principal_rotate_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    stdout_json(&anshin(&data, &["init", "--json"]));
    let created = stdout_json(&anshin(
        &data,
        &[
            "principal",
            "create",
            "--name",
            "nightly batch",
            "--role",
            "auditor",
            "--allowed-ip",
            "192.0.2.0/24",
            "--allowed-ip",
            "2001:db8::/48",
            "--json",
        ],
    ));
    let id = created["id"].as_str().expect("id").to_owned();
    let old_key = created["api_key"].as_str().expect("key").to_owned();
    assert_near(
        ms(&created["expires_at"]),
        clock::now_ms() + 90 * DAY_MS,
        "expiry shown",
    );

    let rotated = stdout_json(&anshin(
        &data,
        &["principal", "rotate", &id, "--overlap-hours", "0", "--json"],
    ));
    assert_eq!(rotated["id"], id.as_str());
    let new_key = rotated["api_key"].as_str().expect("key").to_owned();
    assert!(new_key.starts_with("anshin_sk_") && new_key != old_key);
    assert_near(
        ms(&rotated["expires_at"]),
        clock::now_ms() + 90 * DAY_MS,
        "new key",
    );
    assert_near(
        ms(&rotated["previous_key_expires_at"]),
        clock::now_ms(),
        "no overlap",
    );

    let text = anshin(&data, &["principal", "rotate", &id]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.status.success() && out.contains("shown once") && out.contains("works until"),
        "{out}"
    );

    for (overlap, message) in [("169", "overlap_hours"), ("-1", "overlap_hours")] {
        let bad = anshin(&data, &["principal", "rotate", &id, "--overlap-hours", overlap]);
        assert_eq!(bad.status.code(), Some(1), "{overlap}");
        assert!(String::from_utf8_lossy(&bad.stderr).contains(message));
    }
    let unknown = anshin(&data, &["principal", "rotate", "prn_zzzzzzzzzzzzzzzzzzzzzzzzzz"]);
    assert_eq!(unknown.status.code(), Some(1));
    let bad_ip = anshin(
        &data,
        &[
            "principal",
            "create",
            "--name",
            "x",
            "--role",
            "auditor",
            "--allowed-ip",
            "203.0.113.9/16",
        ],
    );
    assert_eq!(bad_ip.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad_ip.stderr);
    assert!(
        stderr.contains("allowed_ips entry 0") && !stderr.contains("203.0.113.9"),
        "{stderr}"
    );

    let list = stdout_json(&anshin(&data, &["principal", "list", "--json"]));
    let listed = list
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == id.as_str())
        .expect("listed");
    assert_eq!(listed["allowed_ips"], json!(["192.0.2.0/24", "2001:db8::/48"]));
    assert_eq!(
        listed["keys"].as_array().map(Vec::len),
        Some(2),
        "the last rotation's overlap runs"
    );
    assert!(
        !list.to_string().contains("anshin_sk_"),
        "listings never show keys"
    );
    let table = anshin(&data, &["principal", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("KEY EXPIRES"));
    let help = anshin(&data, &["principal", "rotate", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Example"));

    // The keys as the server sees them.
    let app = anshin::app::App::open(&anshin::app::Location {
        data_dir: data.clone(),
        database_url: None,
    })
    .await
    .expect("open");
    let inside = Some("192.0.2.1".parse().expect("ip"));
    let code = |r: Result<anshin::access::Actor, anshin::access::principals::Refusal>| {
        r.err().map_or("ok", |r| r.error.code())
    };
    assert_eq!(
        code(app.authenticate_from(&old_key, inside).await),
        "api_key_expired"
    );
    assert_eq!(
        code(app.authenticate_from(&new_key, inside).await),
        "ok",
        "in the overlap"
    );
    assert_eq!(
        code(
            app.authenticate_from(&new_key, Some("198.51.100.1".parse().expect("ip")))
                .await
        ),
        "ip_not_allowed"
    );
}

async fn requests_without_a_key_count_toward_the_lockout(t: TestApp) {
    for _ in 0..10 {
        let (status, answer) = t
            .call_from("203.0.113.9", Method::GET, "/v1/tenants", None, None)
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("missing_api_key"))
        );
    }
    // The eleventh and later are refused before anything is logged.
    for _ in 0..5 {
        let (status, answer) = t
            .call_from("203.0.113.9", Method::GET, "/v1/tenants", None, None)
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("too_many_failures"))
        );
    }
    let (status, _) = t
        .call_from(
            "203.0.113.9",
            Method::GET,
            "/v1/tenants",
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even a valid key");
    let (status, _) = t
        .call_from("203.0.113.10", Method::GET, "/v1/tenants", None, None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another address is not locked out"
    );

    let log = t.audit_log().await;
    let from = |kind| {
        of_kind(&log, kind)
            .into_iter()
            .filter(|e| e["origin"] == "203.0.113.9")
            .count()
    };
    assert_eq!(
        from("auth.failure"),
        10,
        "each keyless request is logged; the 429s are not"
    );
    assert_eq!(from("auth.lockout"), 1);
}
