//! The audit trail through the HTTP API, on both backends: every access is
//! logged with who, what, where and whose data; the log fails closed; its
//! checkpoints are signed and its proofs and tiles verify with the RFC 9162
//! algorithms alone.

use anshin_crypto::merkle::{self, Tile};
use anshin_crypto::note::{Checkpoint, NoteVerifier};
use axum::http::{Method, StatusCode};
use data_encoding::BASE64;
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, both_backends, of_kind};

const NUMBER: &str = "4111111111111111";

both_backends!(
    every_sensitive_access_is_logged_with_who_what_and_outcome,
    rakuten_2005_shopper_sees_which_shop_read_their_data,
    reveal_is_refused_when_the_audit_log_cannot_record_it,
    checkpoints_are_signed_and_proofs_verify,
    tiles_hash_to_the_signed_root,
    tenant_keys_see_only_their_tenant_and_no_tiles,
    refused_keys_are_logged_with_their_origin_code,
    only_global_keys_force_a_checkpoint_and_tile_reads_are_logged,
);

async fn customer(t: &TestApp, shop_key: &str) -> String {
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/customers",
            Some(shop_key),
            Some(json!({"name": "佐藤 花子", "email": "hanako@example.jp", "phone": "090-1234-5678", "address": "東京都千代田区1-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

async fn every_sensitive_access_is_logged_with_who_what_and_outcome(t: TestApp) {
    let (tenant, shop, shop_key) = t.tenant_with_shop("audited").await;
    let processor = t.global_key("processor").await;
    let (_, card) = t.tokenize(&shop_key, NUMBER).await;
    let token = card["token"].as_str().expect("token").to_owned();
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&shop_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, revealed) = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revealed["number"], NUMBER);
    // A shop that tries to reveal is refused, and the attempt is logged too.
    t.expect_error(
        Method::POST,
        &format!("/v1/cards/{token}/reveal"),
        Some(&shop_key),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let entries = t.audit_log().await;
    let tokenized = of_kind(&entries, "card.tokenize");
    assert_eq!(tokenized.len(), 1);
    assert_eq!(tokenized[0]["tenant"], tenant.as_str());
    assert_eq!(tokenized[0]["actor"]["role"], "shop");
    assert_eq!(tokenized[0]["actor"]["shop"], shop.as_str());
    assert_eq!(tokenized[0]["resources"], json!([token]));
    let reveals = of_kind(&entries, "card.reveal");
    assert_eq!(reveals.len(), 2, "{reveals:?}");
    assert_eq!(reveals[0]["outcome"], "success");
    assert_eq!(reveals[0]["actor"]["role"], "processor");
    assert_eq!(
        reveals[0]["fields"],
        json!(["card.number", "card.expiry", "card.holder"])
    );
    assert_eq!(reveals[1]["outcome"], "failure");
    assert_eq!(reveals[1]["code"], "forbidden");
    assert_eq!(of_kind(&entries, "card.read").len(), 1);
    for entry in &entries {
        assert_eq!(entry["v"], 1);
        assert!(
            entry["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{entry}"
        );
    }
    // The card number is nowhere in the log, in any form.
    let text = serde_json::to_string(&entries).expect("json");
    for form in [NUMBER, "1111 1111", "411111"] {
        assert!(!text.contains(form), "the log holds {form}");
    }
}

async fn rakuten_2005_shopper_sees_which_shop_read_their_data(t: TestApp) {
    let (tenant, shop, shop_key) = t.tenant_with_shop("marketplace").await;
    let customer = customer(&t, &shop_key).await;
    let (status, _) = t
        .call(
            Method::GET,
            &format!("/v1/customers/{customer}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, order) = t
        .call(
            Method::POST,
            "/v1/orders",
            Some(&shop_key),
            Some(json!({"customer_id": customer, "amount": 4980, "currency": "JPY"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_str().expect("id");
    let (status, _) = t
        .call(
            Method::GET,
            &format!("/v1/orders/{order_id}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Another customer's accesses do not show up in this one's history.
    let other = self::customer(&t, &shop_key).await;
    let (status, _) = t
        .call(
            Method::GET,
            &format!("/v1/customers/{other}"),
            Some(&shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let operator = t.key("operator", &tenant, None).await;
    let (status, history) = t
        .call(
            Method::GET,
            &format!("/v1/customers/{customer}/access-log"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let events: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["entry"]["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        events,
        ["customer.create", "customer.read", "order.create", "order.read"]
    );
    for event in history["events"].as_array().expect("events") {
        assert_eq!(event["entry"]["actor"]["shop"], shop.as_str(), "{event}");
    }
    assert_eq!(
        history["events"][1]["entry"]["fields"],
        json!(["pii.email.masked", "pii.phone.masked"])
    );
    // Customers are named only by keyed hashes: no customer id and no personal
    // data anywhere in the log.
    let text = serde_json::to_string(&t.audit_log().await).expect("json");
    for secret in [customer.as_str(), other.as_str(), "hanako", "佐藤", "090-1234"] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
    // A shop cannot read the history (it is the shopper's and the operator's).
    t.expect_error(
        Method::GET,
        &format!("/v1/customers/{customer}/access-log"),
        Some(&shop_key),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn reveal_is_refused_when_the_audit_log_cannot_record_it(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("fail closed").await;
    let processor = t.global_key("processor").await;
    let (_, card) = t.tokenize(&shop_key, NUMBER).await;
    let token = card["token"].as_str().expect("token").to_owned();
    // The log's storage fails from here on: on SQLite both the log's file and
    // the outbox where writes leave their entries in the vault's.
    match t.backend {
        Backend::Sqlite => {
            t.raw_audit_sql(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk failed'); END;",
            )
            .await;
            t.raw_sql(
                "CREATE TRIGGER outbox_down BEFORE INSERT ON audit_outbox BEGIN SELECT RAISE(ABORT, 'disk failed'); END;",
            )
            .await;
        }
        Backend::Postgres => {
            t.raw_sql(
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk failed'; END $$;
                 CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_down();",
            )
            .await;
        }
    }
    let (status, body) = t
        .raw(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8(body).expect("utf8");
    assert!(body.contains("audit_unavailable"), "{body}");
    assert!(!body.contains(NUMBER), "revealed without a log entry");
    // Changes are refused before they are made: the card survives its deletion…
    t.expect_error(
        Method::DELETE,
        &format!("/v1/cards/{token}"),
        Some(&t.operator_key),
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    )
    .await;
    // … and a new card is not stored.
    t.expect_error(
        Method::POST,
        "/v1/cards",
        Some(&shop_key),
        Some(crate::harness::card("5555555555554444")),
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
    )
    .await;
    match t.backend {
        Backend::Sqlite => {
            t.raw_audit_sql("DROP TRIGGER audit_down;").await;
            t.raw_sql("DROP TRIGGER outbox_down;").await;
        }
        Backend::Postgres => t.raw_sql("DROP TRIGGER audit_down ON audit_entries;").await,
    }
    let (status, revealed) = t
        .call(
            Method::POST,
            &format!("/v1/cards/{token}/reveal"),
            Some(&processor),
            None,
        )
        .await;
    assert_eq!(
        (status, revealed["number"].as_str()),
        (StatusCode::OK, Some(NUMBER))
    );
    let (status, lookup) = t
        .call(
            Method::POST,
            "/v1/cards/lookup",
            Some(&t.operator_key),
            Some(json!({"number": "5555555555554444", "tenant_id": tenant})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused card was stored: {lookup}"
    );
}

async fn checkpoint_text(t: &TestApp, method: Method) -> String {
    let (status, body) = t
        .raw(
            method,
            "/v1/audit/checkpoint",
            Some(&t.operator_key),
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body).expect("utf8")
}

fn verifier(t: &TestApp) -> NoteVerifier {
    NoteVerifier::parse(&t.app.audit.verifier_key()).expect("vkey")
}

fn proof_hashes(proof: &Value) -> Vec<merkle::Hash> {
    proof["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            BASE64
                .decode(h.as_str().expect("b64").as_bytes())
                .expect("base64")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

async fn checkpoints_are_signed_and_proofs_verify(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("proofs").await;
    for number in ["4111111111111111", "5555555555554444"] {
        t.tokenize(&shop_key, number).await;
    }
    let old = Checkpoint::open(
        checkpoint_text(&t, Method::POST).await.as_bytes(),
        t.app.audit.origin(),
        &[verifier(&t)],
    )
    .expect("signed checkpoint");
    for number in ["378282246310005", "3530111333300000", "6011111111111117"] {
        t.tokenize(&shop_key, number).await;
    }
    let signed = checkpoint_text(&t, Method::POST).await;
    let new = Checkpoint::open(signed.as_bytes(), t.app.audit.origin(), &[verifier(&t)])
        .expect("signed checkpoint");
    assert!(new.size() > old.size() && old.size() > 0);
    // GET serves the latest signed checkpoint as it is.
    assert_eq!(checkpoint_text(&t, Method::GET).await, signed);

    let entries = t.app.store.audit_entries(0, new.size()).await.expect("entries");
    for (index, entry) in entries.iter().enumerate() {
        let (status, proof) = t
            .call(
                Method::GET,
                &format!("/v1/audit/proof/inclusion?index={index}&tree_size={}", new.size()),
                Some(&t.operator_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{proof}");
        merkle::verify_inclusion(
            &merkle::leaf_hash(entry),
            index as u64,
            new.size(),
            &proof_hashes(&proof),
            new.root_hash(),
        )
        .expect("inclusion proof verifies");
    }
    let (status, proof) = t
        .call(
            Method::GET,
            &format!(
                "/v1/audit/proof/consistency?old_size={}&tree_size={}",
                old.size(),
                new.size()
            ),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    merkle::verify_consistency(
        old.size(),
        new.size(),
        old.root_hash(),
        new.root_hash(),
        &proof_hashes(&proof),
    )
    .expect("consistency proof verifies");
    t.expect_error(
        Method::GET,
        &format!(
            "/v1/audit/proof/inclusion?index=0&tree_size={}",
            new.size() + 1000
        ),
        Some(&t.operator_key),
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "size_out_of_range",
    )
    .await;
}

async fn tiles_hash_to_the_signed_root(t: TestApp) {
    let (_, _, shop_key) = t.tenant_with_shop("tiles").await;
    let customer = customer(&t, &shop_key).await;
    // Enough entries for a full level-0 tile and a partial one after it.
    for _ in 0..140 {
        let (status, _) = t
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}"),
                Some(&shop_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = t
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}"),
                Some(&shop_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let checkpoint = Checkpoint::open(
        checkpoint_text(&t, Method::POST).await.as_bytes(),
        t.app.audit.origin(),
        &[verifier(&t)],
    )
    .expect("signed");
    assert!(checkpoint.size() > 256, "{}", checkpoint.size());
    let mut leaves = Vec::new();
    for tile in Tile::all_for_size(checkpoint.size()).filter(|tile| tile.level() == 0) {
        let path = tile.entries_path().expect("level 0");
        let (status, bundle) = t
            .raw(
                Method::GET,
                &format!("/v1/audit/{path}"),
                Some(&t.operator_key),
                None,
                "application/json",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let entries = merkle::decode_entry_bundle(&bundle, Some(tile.width())).expect("bundle");
        let hashes: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let (status, data) = t
            .raw(
                Method::GET,
                &format!("/v1/audit/{}", tile.path()),
                Some(&t.operator_key),
                None,
                "application/json",
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tile.parse_data(&data).expect("tile"), hashes);
        leaves.extend(hashes);
    }
    assert_eq!(&merkle::root(&leaves), checkpoint.root_hash());
    t.expect_error(
        Method::GET,
        "/v1/audit/tile/0/x999/000",
        Some(&t.operator_key),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn tenant_keys_see_only_their_tenant_and_no_tiles(t: TestApp) {
    let (tenant_a, _, shop_a) = t.tenant_with_shop("a").await;
    let (_, _, shop_b) = t.tenant_with_shop("b").await;
    t.tokenize(&shop_a, NUMBER).await;
    t.tokenize(&shop_b, NUMBER).await;
    let auditor = t.key("auditor", &tenant_a, None).await;
    let (status, page) = t
        .call(Method::GET, "/v1/audit/events", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["events"].as_array().expect("events");
    assert!(!events.is_empty());
    for event in events {
        assert_eq!(event["entry"]["tenant"], tenant_a.as_str(), "{event}");
    }
    t.expect_error(
        Method::GET,
        "/v1/audit/tile/entries/000.p/1",
        Some(&auditor),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    t.expect_error(
        Method::GET,
        "/v1/audit/events",
        Some(&shop_a),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

async fn refused_keys_are_logged_with_their_origin_code(t: TestApp) {
    let (status, _) = t
        .call(Method::GET, "/v1/tenants", Some("anshin_sk_not_a_real_key"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let failures: Vec<Value> = t
        .audit_log()
        .await
        .into_iter()
        .filter(|e| e["event"] == "auth.failure")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["outcome"], "failure");
    assert_eq!(failures[0]["code"], "invalid_api_key");
    assert!(failures[0].get("actor").is_none());
    // The refused key itself is never logged.
    assert!(!failures[0].to_string().contains("not_a_real_key"));
}

async fn only_global_keys_force_a_checkpoint_and_tile_reads_are_logged(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("checkpoints").await;
    t.tokenize(&shop_key, NUMBER).await;
    // Forcing an integration takes the log's lock: not for tenant auditors.
    let scoped = t.key("auditor", &tenant, None).await;
    t.expect_error(
        Method::POST,
        "/v1/audit/checkpoint",
        Some(&scoped),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (status, created) = t
        .call(
            Method::POST,
            "/v1/principals",
            Some(&t.operator_key),
            Some(json!({"name": "global auditor", "role": "auditor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let global = created["api_key"].as_str().expect("key").to_owned();
    let principal = created["id"].as_str().expect("id").to_owned();
    let (status, note) = t
        .raw(
            Method::POST,
            "/v1/audit/checkpoint",
            Some(&global),
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let checkpoint = Checkpoint::open(&note, t.app.audit.origin(), &[verifier(&t)]).expect("signed");

    // Each tile or bundle read is itself an audit.read entry of its reader.
    let tile = Tile::all_for_size(checkpoint.size())
        .find(|tile| tile.level() == 0)
        .expect("a level-0 tile");
    let paths = [tile.entries_path().expect("level 0"), tile.path()];
    for path in &paths {
        let (status, _) = t
            .raw(
                Method::GET,
                &format!("/v1/audit/{path}"),
                Some(&global),
                None,
                "application/json",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let entries = t.audit_log().await;
    let reads: Vec<&Value> = of_kind(&entries, "audit.read")
        .into_iter()
        .filter(|e| e["actor"]["principal"] == principal.as_str())
        .collect();
    assert_eq!(reads.len(), paths.len(), "{reads:?}");
    for read in reads {
        assert_eq!(read["outcome"], "success", "{read}");
        assert_eq!(read["fields"], json!(["audit"]), "{read}");
        assert!(read.get("resources").is_none(), "{read}");
    }
}

/// PostgreSQL numbers entries after they commit, so listings must page by
/// that number and see entries the integrator has not reached yet.
mod postgres_only {
    use super::*;

    /// Every page of /v1/audit/events after `after`: (index, entry).
    async fn events_after(t: &TestApp, mut after: Option<i64>) -> (Vec<(i64, Value)>, Option<i64>) {
        let mut out = Vec::new();
        loop {
            let path = match after {
                Some(a) => format!("/v1/audit/events?limit=7&after={a}"),
                None => "/v1/audit/events?limit=7".to_owned(),
            };
            let (status, page) = t.call(Method::GET, &path, Some(&t.operator_key), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for event in page["events"].as_array().expect("events") {
                let index = event["index"].as_i64().expect("every listed entry has its index");
                out.push((index, event["entry"].clone()));
            }
            match page["next_after"].as_i64() {
                Some(a) => after = Some(a),
                None => {
                    let last = out.last().map(|(i, _)| *i).or(after);
                    return (out, last);
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_not_yet_integrated_are_listed_in_order_with_their_index() {
        let Some(t) = TestApp::new(Backend::Postgres).await else {
            return;
        };
        let (_, _, shop_key) = t.tenant_with_shop("pending").await;
        let customer = customer(&t, &shop_key).await;
        for _ in 0..3 {
            let (status, _) = t
                .call(
                    Method::GET,
                    &format!("/v1/customers/{customer}"),
                    Some(&shop_key),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        // Nothing was integrated: the access history still has every entry, in
        // log order, with its index.
        let (status, page) = t
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}/access-log"),
                Some(&t.operator_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let history = page["events"].as_array().expect("events");
        let kinds: Vec<&str> = history
            .iter()
            .map(|e| e["entry"]["event"].as_str().expect("event"))
            .collect();
        assert_eq!(
            kinds,
            [
                "customer.create",
                "customer.read",
                "customer.read",
                "customer.read"
            ]
        );
        let indexes: Vec<i64> = history
            .iter()
            .map(|e| e["index"].as_i64().expect("index"))
            .collect();
        assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");

        // The whole listing is the log in order: indexes 0, 1, 2 … with no gap.
        let (listed, cursor) = events_after(&t, None).await;
        let indexes: Vec<i64> = listed.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, (0..indexes.len() as i64).collect::<Vec<_>>());

        // An entry that commits late, after a reader paged past the entries
        // appended after it, is still listed on the next page.
        let url = t.location.database_url.clone().expect("url");
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let tx = client.transaction().await.expect("begin");
        let late: String = tx
            .query_one(
                "INSERT INTO audit_entries (time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry)
                 SELECT time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry
                 FROM audit_entries WHERE kind = 'customer.read' ORDER BY id LIMIT 1
                 RETURNING convert_from(entry, 'UTF8')",
                &[],
            )
            .await
            .expect("insert")
            .get(0);
        let late: Value = serde_json::from_str(&late).expect("entry");
        let (status, _) = t
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}"),
                Some(&shop_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, cursor) = events_after(&t, cursor).await;
        tx.commit().await.expect("commit");
        let (after, _) = events_after(&t, cursor).await;
        assert!(
            after.iter().any(|(_, entry)| *entry == late),
            "the late entry is listed after the cursor: {after:?}"
        );
    }
}
