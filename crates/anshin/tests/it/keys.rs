//! Key management through the HTTP API: rotation under dual control, the
//! rewrap, retirement, and crypto-shredding that holds against backups.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends};

both_backends!(
    dual_control_refuses_a_self_approval_and_a_second_decision,
    rotation_during_load_loses_no_write_and_leaves_every_record_readable,
    retire_is_refused_while_a_record_uses_an_old_version,
    a_card_deleted_after_a_backup_cannot_be_read_from_it,
    a_customer_deleted_after_a_backup_cannot_be_read_from_it,
    a_version_is_rotated_before_its_encryption_bound_and_by_age,
    a_shredded_tenant_cannot_be_read_even_from_a_backup,
    a_tenant_shredded_on_one_node_is_unreadable_on_another_at_once,
    a_card_wrapped_under_a_version_retired_on_another_node_is_refused_then_stored,
);

/// A valid Visa number that differs for each `n` (Luhn check digit computed here).
pub fn visa(n: u32) -> String {
    let body = format!("411111{n:09}");
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

async fn request(t: &TestApp, key: &str, body: Value) -> Value {
    let (status, req) = t
        .call(Method::POST, "/v1/keys/requests", Some(key), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    assert_eq!(req["status"], "pending");
    req
}

async fn decide(t: &TestApp, key: &str, id: &str, verb: &str) -> (StatusCode, Value) {
    t.call(
        Method::POST,
        &format!("/v1/keys/requests/{id}/{verb}"),
        Some(key),
        None,
    )
    .await
}

async fn key_state(t: &TestApp, tenant: &str) -> Value {
    let (status, body) = t
        .call(
            Method::GET,
            &format!("/v1/keys/status?tenant_id={tenant}"),
            Some(&t.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body[0].clone()
}

/// Asks for the key operation `body`, which `second` approves; returns its result.
async fn approved(t: &TestApp, second: &str, body: Value) -> u64 {
    let req = request(t, &t.operator_key, body).await;
    let (status, done) = decide(t, second, req["id"].as_str().expect("id"), "approve").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "approved");
    done["result"].as_u64().expect("result")
}

/// Rotates `tenant` with two operators; returns the new version.
async fn rotate(t: &TestApp, second: &str, tenant: &str) -> u64 {
    let body = json!({"operation": "rotate", "reason": "test rotation", "tenant_id": tenant});
    approved(t, second, body).await
}

/// Shreds `tenant` with two operators; returns the data keys destroyed.
async fn shred(t: &TestApp, second: &str, tenant: &str) -> u64 {
    let body = json!({"operation": "shred_tenant", "reason": "contract ended", "tenant_id": tenant});
    approved(t, second, body).await
}

async fn rewrap_everything(t: &TestApp) -> u64 {
    t.app
        .rewrap_all(std::time::Duration::ZERO, |_| {})
        .await
        .expect("rewrap")
}

async fn dual_control_refuses_a_self_approval_and_a_second_decision(t: TestApp) {
    let (tenant, _, _) = t.tenant_with_shop("dual").await;
    let second = t.global_key("operator").await;
    let req = request(
        &t,
        &t.operator_key,
        json!({"operation": "rotate", "reason": "annual cryptoperiod", "tenant_id": tenant}),
    )
    .await;
    let id = req["id"].as_str().expect("id");
    let (status, body) = decide(&t, &t.operator_key, id, "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval"))
    );
    assert_eq!(status_of_version(&t, &tenant).await, 1, "nothing rotated");
    let (status, body) = decide(&t, &second, id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["result"].as_u64(), body["decided_by"].is_string()),
        (Some(2), true)
    );
    assert_eq!(status_of_version(&t, &tenant).await, 2);
    let (status, body) = decide(&t, &second, id, "reject").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("request_closed"))
    );
    // Shops and processors may not touch keys; bad input changes nothing.
    let shop = t.key("shop", &tenant, Some(&t.shop(&tenant, "s2").await)).await;
    let (status, _) = t
        .call(
            Method::POST,
            "/v1/keys/requests",
            Some(&shop),
            Some(json!({"operation": "rotate", "reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = t
        .call(
            Method::POST,
            "/v1/keys/requests",
            Some(&t.operator_key),
            Some(json!({"operation": "retire", "reason": "x", "tenant_id": tenant})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_below"))
    );
    for kind in ["key.request", "key.approve", "key.reject"] {
        assert!(
            !t.audit_log_of(kind).await.is_empty(),
            "{kind} is in the audit log"
        );
    }
}

async fn status_of_version(t: &TestApp, tenant: &str) -> u64 {
    key_state(t, tenant).await["current_version"]
        .as_u64()
        .expect("version")
}

async fn rotation_during_load_loses_no_write_and_leaves_every_record_readable(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("load").await;
    let second = t.global_key("operator").await;
    const CARDS: u32 = 120;
    let load = async {
        let mut tokens = Vec::new();
        for n in 0..CARDS {
            let (status, card) = t.tokenize(&shop, &visa(n)).await;
            assert_eq!(status, StatusCode::CREATED, "{card}");
            tokens.push(card["token"].as_str().expect("token").to_owned());
        }
        tokens
    };
    let rotations = async {
        let mut versions = Vec::new();
        for _ in 0..3 {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            versions.push(rotate(&t, &second, &tenant).await);
            rewrap_everything(&t).await;
        }
        versions
    };
    let (tokens, versions) = tokio::join!(load, rotations);
    assert_eq!(versions, [2, 3, 4]);
    rewrap_everything(&t).await;
    let state = key_state(&t, &tenant).await;
    assert_eq!(state["pending_rewrap"], 0, "{state}");
    let versions = state["versions"].as_array().expect("versions");
    let on_current: u64 = versions
        .iter()
        .filter(|v| v["version"] == 4)
        .map(|v| v["records"].as_u64().expect("records"))
        .sum();
    assert_eq!(
        on_current,
        u64::from(CARDS),
        "every card's key is on the newest version"
    );
    let processor = t.key("processor", &tenant, None).await;
    for (n, token) in tokens.iter().enumerate() {
        let (status, card) = t.reveal(&processor, token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(card["number"] == visa(n as u32).as_str(), "card {n} reads back");
    }
}

async fn retire_is_refused_while_a_record_uses_an_old_version(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("retire").await;
    let second = t.global_key("operator").await;
    let (_, card) = t.tokenize(&shop, &visa(7)).await;
    let token = card["token"].as_str().expect("token").to_owned();
    assert_eq!(rotate(&t, &second, &tenant).await, 2);
    let retire = json!({"operation": "retire", "below": 2, "reason": "v1 replaced", "tenant_id": tenant});
    let req = request(&t, &t.operator_key, retire.clone()).await;
    let (status, body) = decide(&t, &second, req["id"].as_str().expect("id"), "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("key_version_in_use")),
        "the card still uses version 1"
    );
    assert_eq!(
        key_state(&t, &tenant).await["versions"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(rewrap_everything(&t).await, 1);
    let req = request(&t, &t.operator_key, retire).await;
    let (status, body) = decide(&t, &second, req["id"].as_str().expect("id"), "approve").await;
    assert_eq!(
        (status, body["result"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let state = key_state(&t, &tenant).await;
    assert_eq!(state["versions"].as_array().map(Vec::len), Some(1), "{state}");
    let (status, body) = t
        .call(Method::GET, &format!("/v1/cards/{token}"), Some(&shop), None)
        .await;
    assert_eq!(
        (status, body["last4"].as_str()),
        (StatusCode::OK, Some(&visa(7)[12..]))
    );
    // Never the last version.
    let req = request(
        &t,
        &t.operator_key,
        json!({"operation": "retire", "below": 9, "reason": "all", "tenant_id": tenant}),
    )
    .await;
    let (status, body) = decide(&t, &second, req["id"].as_str().expect("id"), "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("would_remove_current"))
    );
}

/// Deleting a card destroys its data key, so a copy of the data taken before
/// (the data tables, without the key state) cannot reveal it afterwards, while
/// the other cards of the same copy still decrypt with the current keys.
async fn a_card_deleted_after_a_backup_cannot_be_read_from_it(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("shred").await;
    let processor = t.key("processor", &tenant, None).await;
    let (_, kept) = t.tokenize(&shop, &visa(11)).await;
    let (_, gone) = t.tokenize(&shop, &visa(12)).await;
    let (kept, gone) = (
        kept["token"].as_str().expect("token").to_owned(),
        gone["token"].as_str().expect("token").to_owned(),
    );
    // The backup: the data tables as they are, no key state.
    t.raw_sql("CREATE TABLE cards_backup AS SELECT * FROM cards; CREATE TABLE card_shops_backup AS SELECT * FROM card_shops;")
        .await;
    let (status, _) = t
        .call(Method::DELETE, &format!("/v1/cards/{gone}"), Some(&shop), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The restore, next to the current key state.
    t.raw_sql(
        "DELETE FROM card_shops; DELETE FROM cards;
         INSERT INTO cards SELECT * FROM cards_backup; INSERT INTO card_shops SELECT * FROM card_shops_backup;",
    )
    .await;
    let (status, body) = t.reveal(&processor, &gone).await;
    assert_ne!(status, StatusCode::OK, "the deleted card stays unreadable");
    assert!(!body.to_string().contains(&visa(12)[6..]));
    let (status, body) = t.reveal(&processor, &kept).await;
    assert_eq!(
        (status, body["number"].as_str()),
        (StatusCode::OK, Some(visa(11).as_str()))
    );
}

/// The command line: `anshin keys`, `anshin backup` and `anshin restore --verify`
/// on a real server's data directory.
mod cli {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::visa;
    use crate::cli::{Server, anshin, anshin_with_key, init_operator, stdout_json};

    fn pending(data: &Path) -> u64 {
        let status = stdout_json(&anshin(data, &["keys", "status", "--json"]));
        status
            .as_array()
            .expect("tenants")
            .iter()
            .map(|t| t["pending_rewrap"].as_u64().expect("pending"))
            .sum()
    }

    /// A tenant, a shop, its key and `n` cards: (shop key, tokens).
    fn shop_with_cards(server: &Server, operator: &str, n: u32) -> (String, Vec<String>) {
        let (_, tenant) = server.request("POST", "/v1/tenants", operator, Some(r#"{"name":"b"}"#));
        let tenant = tenant["id"].as_str().expect("tenant");
        let (_, shop) = server.request(
            "POST",
            &format!("/v1/tenants/{tenant}/shops"),
            operator,
            Some(r#"{"name":"s"}"#),
        );
        let body = format!(
            r#"{{"name":"k","role":"shop","tenant_id":"{tenant}","shop_id":"{}"}}"#,
            shop["id"].as_str().expect("shop")
        );
        let (_, key) = server.request("POST", "/v1/principals", operator, Some(&body));
        let shop_key = key["api_key"].as_str().expect("key").to_owned();
        let mut tokens = Vec::new();
        for n in 0..n {
            let card = format!(
                r#"{{"number":"{}","exp_month":12,"exp_year":2031,"holder_name":"HANAKO SATO"}}"#,
                visa(100 + n)
            );
            let (status, body) = server.request("POST", "/v1/cards", &shop_key, Some(&card));
            assert_eq!(status, 201, "{body}");
            tokens.push(body["token"].as_str().expect("token").to_owned());
        }
        (shop_key, tokens)
    }

    /// PostgreSQL: a data dump made as the README says, restored into a
    /// scratch database, is verified against the live key state; the card
    /// deleted since is the one record that no longer opens.
    #[test]
    fn a_pg_dump_restored_into_a_scratch_database_is_verified_against_the_live_keys() {
        let admin = crate::harness::postgres_url();
        let psql = |db: &str, sql: &str| {
            std::process::Command::new("psql")
                .args([db, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
                .output()
        };
        if !psql(&admin, "SELECT 1").is_ok_and(|o| o.status.success()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but psql cannot reach PostgreSQL"
            );
            eprintln!("note: PostgreSQL or psql unavailable; skipping (set CI to make this a failure)");
            return;
        }
        let suffix = anshin::ids::TenantId::generate().expect("rng").as_str()[4..].to_owned();
        let (live, scratch) = (
            format!("anshin_live_{suffix}"),
            format!("anshin_restored_{suffix}"),
        );
        /// Drops the test's databases however the test ends.
        struct Dropped<'a>(&'a str, [String; 2]);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                for db in &self.1 {
                    let _ = std::process::Command::new("psql")
                        .args([
                            self.0,
                            "-q",
                            "-c",
                            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                        ])
                        .output();
                }
            }
        }
        let _dropped = Dropped(&admin, [live.clone(), scratch.clone()]);
        for db in [&live, &scratch] {
            let made = psql(&admin, &format!("CREATE DATABASE {db}")).expect("psql");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        }
        let url = |db: &str| match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db}"),
            None => panic!("a database URL"),
        };
        let (live_url, scratch_url) = (url(&live), url(&scratch));
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let env = [("ANSHIN_DATABASE_URL", live_url.as_str())];
        let operator =
            stdout_json(&crate::cli::anshin_with(&data, &["init", "--json"], &env, None))["operator_api_key"]
                .as_str()
                .expect("key")
                .to_owned();
        let server = Server::start_with(&data, Some(&live_url), &[]);
        let (shop_key, tokens) = shop_with_cards(&server, &operator, 3);

        let dump = dir.path().join("data.sql");
        let dumped = std::process::Command::new("pg_dump")
            .args([
                "--exclude-table-data=record_keys",
                "--exclude-table-data=tenant_keys",
                "-f",
            ])
            .arg(&dump)
            .arg(&live_url)
            .output()
            .expect("pg_dump");
        assert!(
            dumped.status.success(),
            "{}",
            String::from_utf8_lossy(&dumped.stderr)
        );
        let text = std::fs::read_to_string(&dump).expect("dump");
        assert!(
            !text.contains("4111111111"),
            "the dump holds no card number in clear"
        );
        let restored = std::process::Command::new("psql")
            .args([scratch_url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-f"])
            .arg(&dump)
            .output()
            .expect("psql");
        assert!(
            restored.status.success(),
            "{}",
            String::from_utf8_lossy(&restored.stderr)
        );

        let (status, _) = server.request("DELETE", &format!("/v1/cards/{}", tokens[1]), &shop_key, None);
        assert_eq!(status, 204);
        drop(server);
        let after = crate::cli::anshin_with(
            &data,
            &["restore", "--verify", &scratch_url, "--json"],
            &env,
            None,
        );
        assert_eq!(
            after.status.code(),
            Some(8),
            "{}",
            String::from_utf8_lossy(&after.stderr)
        );
        let report: Value = serde_json::from_slice(&after.stdout).expect("json");
        assert_eq!(
            (report["records"].as_u64(), report["readable"].as_u64()),
            (Some(3), Some(2)),
            "{report}"
        );
        let unreadable = report["unreadable"].as_array().expect("list");
        assert_eq!(
            (
                unreadable.len(),
                unreadable[0]["id"].as_str(),
                unreadable[0]["reason"].as_str()
            ),
            (1, Some(tokens[1].as_str()), Some("key_destroyed"))
        );
    }

    /// A data backup holds no key; after a card is deleted, `restore --verify`
    /// of the earlier backup names exactly that card as unreadable (exit 8).
    #[test]
    fn a_backup_holds_no_key_and_restore_verify_names_the_card_deleted_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let operator = init_operator(&data);
        let server = Server::start(&data);
        let (shop_key, tokens) = shop_with_cards(&server, &operator, 3);
        let out = dir.path().join("backup");
        stdout_json(&anshin(
            &data,
            &["backup", "--out", out.to_str().expect("utf8"), "--json"],
        ));
        let copy = rusqlite::Connection::open_with_flags(
            out.join("anshin.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open copy");
        let count = |sql: &str| -> i64 { copy.query_row(sql, [], |r| r.get(0)).expect("count") };
        assert_eq!(
            (
                count("SELECT count(*) FROM record_keys"),
                count("SELECT count(*) FROM tenant_keys")
            ),
            (0, 0),
            "no key in a data backup"
        );
        assert_eq!(count("SELECT count(*) FROM cards"), 3);
        drop(copy);

        let clean = stdout_json(&anshin(
            &data,
            &["restore", "--verify", out.to_str().expect("utf8"), "--json"],
        ));
        assert_eq!(
            (clean["records"].as_u64(), clean["readable"].as_u64()),
            (Some(3), Some(3))
        );

        let (status, _) = server.request("DELETE", &format!("/v1/cards/{}", tokens[1]), &shop_key, None);
        assert_eq!(status, 204);
        drop(server);
        let after = anshin(
            &data,
            &["restore", "--verify", out.to_str().expect("utf8"), "--json"],
        );
        assert_eq!(after.status.code(), Some(8));
        let report: Value = serde_json::from_slice(&after.stdout).expect("json");
        assert_eq!(report["readable"].as_u64(), Some(2));
        let unreadable = report["unreadable"].as_array().expect("list");
        assert_eq!(unreadable.len(), 1, "{report}");
        assert_eq!(
            (unreadable[0]["id"].as_str(), unreadable[0]["reason"].as_str()),
            (Some(tokens[1].as_str()), Some("key_destroyed"))
        );
        // The key state alone, for its own media.
        let keys_out = dir.path().join("keys");
        let keys = stdout_json(&anshin(
            &data,
            &[
                "backup",
                "--keys",
                "--out",
                keys_out.to_str().expect("utf8"),
                "--json",
            ],
        ));
        assert_eq!(keys["files"][0]["name"], "anshin-keys.db");
        let copy = rusqlite::Connection::open(keys_out.join("anshin-keys.db")).expect("open");
        let cards: i64 = copy
            .query_row("SELECT count(*) FROM cards", [], |r| r.get(0))
            .expect("count");
        let keys: i64 = copy
            .query_row("SELECT count(*) FROM record_keys", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            (cards, keys),
            (0, 2),
            "key state only; the deleted card's key is gone"
        );
    }

    /// Rotation from the command line needs a second operator; the rewrap the
    /// server runs in the background survives `kill -9` and finishes after a
    /// restart, and then every record decrypts.
    #[test]
    fn keys_commands_need_two_operators_and_the_rewrap_resumes_after_kill_9() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let operator = init_operator(&data);
        let demo = stdout_json(&anshin(&data, &["demo", "--json"]));
        let (tenant, second) = (
            demo["tenant_id"].as_str().expect("tenant").to_owned(),
            demo["operator_api_key"].as_str().expect("key").to_owned(),
        );
        let total = pending_after_rotation(&data, &tenant, &operator, &second);
        assert!(total > 4_000, "the demo's records wait for the rewrap: {total}");

        // Slow batches, so the server is killed in the middle of the rewrap.
        std::fs::write(data.join("anshin.toml"), "key_rewrap_pause_ms = 1500\n").expect("config");
        let mut server = Server::start(&data);
        let started = Instant::now();
        while pending(&data) == total {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the rewrap never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.child.kill().expect("kill -9");
        let _ = server.child.wait();
        let left = pending(&data);
        assert!(left > 0 && left < total, "killed mid-way: {left} of {total} left");

        std::fs::write(data.join("anshin.toml"), "key_rewrap_pause_ms = 0\n").expect("config");
        let server = Server::start(&data);
        let started = Instant::now();
        while pending(&data) > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the rewrap did not resume"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(server);
        let out = dir.path().join("backup");
        stdout_json(&anshin(
            &data,
            &["backup", "--out", out.to_str().expect("utf8"), "--json"],
        ));
        let report = stdout_json(&anshin(
            &data,
            &["restore", "--verify", out.to_str().expect("utf8"), "--json"],
        ));
        assert_eq!(report["readable"], report["records"], "{report}");
        assert!(report["unreadable"].as_array().expect("list").is_empty());

        // The tenant leaves: one operator asks, the other approves, and the
        // backup taken before holds nothing readable any more.
        let request = stdout_json(&anshin_with_key(
            &data,
            Some(&operator),
            &[
                "keys",
                "shred-tenant",
                "--tenant",
                &tenant,
                "--reason",
                "contract ended",
                "--json",
            ],
        ));
        assert_eq!(request["operation"], "shred_tenant", "{request}");
        let id = request["id"].as_str().expect("id");
        stdout_json(&anshin_with_key(
            &data,
            Some(&second),
            &["keys", "approve", id, "--json"],
        ));
        let after = anshin(
            &data,
            &["restore", "--verify", out.to_str().expect("utf8"), "--json"],
        );
        assert_eq!(after.status.code(), Some(8));
        let after: Value = serde_json::from_slice(&after.stdout).expect("json");
        let unreadable = after["unreadable"].as_array().expect("list");
        assert_eq!(
            (after["readable"].as_u64(), unreadable.len() as u64),
            (Some(0), total),
            "{}",
            after["records"]
        );
        assert!(unreadable.iter().all(|u| u["reason"] == "key_destroyed"));
    }

    /// Requests a rotation as `first`, is refused approving it as `first`,
    /// approves it as `second` without rewrap; returns the records to re-wrap.
    fn pending_after_rotation(data: &Path, tenant: &str, first: &str, second: &str) -> u64 {
        let no_key = anshin(data, &["keys", "rotate", "--tenant", tenant, "--reason", "test"]);
        assert_eq!(no_key.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&no_key.stderr).contains("ANSHIN_API_KEY"));
        let request = stdout_json(&anshin_with_key(
            data,
            Some(first),
            &[
                "keys",
                "rotate",
                "--tenant",
                tenant,
                "--reason",
                "cryptoperiod",
                "--json",
            ],
        ));
        let id = request["id"].as_str().expect("id");
        let own = anshin_with_key(data, Some(first), &["keys", "approve", id]);
        assert_eq!(own.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&own.stderr).contains("another operator"));
        let approved = stdout_json(&anshin_with_key(
            data,
            Some(second),
            &["keys", "approve", id, "--no-rewrap", "--json"],
        ));
        assert_eq!(approved["request"]["result"], 2);
        pending(data)
    }
}

/// The same for a shopper's personal data (an APPI erasure request).
async fn a_customer_deleted_after_a_backup_cannot_be_read_from_it(t: TestApp) {
    let (_, _, shop) = t.tenant_with_shop("erase").await;
    let create = |email: &'static str| {
        let (t, shop) = (&t, &shop);
        async move {
            let (status, created) = t
                .call(
                    Method::POST,
                    "/v1/customers",
                    Some(shop),
                    Some(json!({"name": "佐藤 花子", "email": email, "phone": "090-1234-5678"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["id"].as_str().expect("id").to_owned()
        }
    };
    let kept = create("kept@example.jp").await;
    let gone = create("gone@example.jp").await;
    t.raw_sql("CREATE TABLE customers_backup AS SELECT * FROM customers;")
        .await;
    let path = |id: &str| format!("/v1/customers/{id}");
    let (status, _) = t.call(Method::DELETE, &path(&gone), Some(&shop), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t.call(Method::DELETE, &path(&gone), Some(&shop), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "once");
    assert_eq!(t.audit_log_of("customer.delete").await.len(), 2);
    t.raw_sql("DELETE FROM customers; INSERT INTO customers SELECT * FROM customers_backup;")
        .await;
    let (status, body) = t.call(Method::GET, &path(&gone), Some(&shop), None).await;
    assert_ne!(
        status,
        StatusCode::OK,
        "the deleted customer stays unreadable: {body}"
    );
    let (status, body) = t.call(Method::GET, &path(&kept), Some(&shop), None).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (StatusCode::OK, Some("k***@example.jp"))
    );
}

/// The policy rotates without anyone asking: after N encryptions under one
/// version (the AES-GCM random-nonce bound, scaled down), and by age.
async fn a_version_is_rotated_before_its_encryption_bound_and_by_age(t: TestApp) {
    use anshin::vault::rotation::RotationPolicy;
    let (tenant, _, shop) = t.tenant_with_shop("policy").await;
    let policy = RotationPolicy {
        after_days: 0,
        after_encryptions: 3,
        rewrap_pause_ms: 0,
    };
    for n in 0..2 {
        t.tokenize(&shop, &visa(200 + n)).await;
    }
    let rotated = t.app.rotate_due(&policy).await.expect("policy");
    assert!(rotated.is_empty(), "2 of 3 encryptions: not yet");
    t.tokenize(&shop, &visa(202)).await;
    let rotated = t.app.rotate_due(&policy).await.expect("policy");
    assert_eq!(
        rotated
            .iter()
            .map(|(t, v)| (t.to_string(), *v))
            .collect::<Vec<_>>(),
        [(tenant.clone(), 2)]
    );
    let state = key_state(&t, &tenant).await;
    assert_eq!(state["versions"][0]["encryptions"], 3, "{state}");
    assert_eq!(t.audit_log_of("key.rotate").await.len(), 1);
    // By age: a version created a day ago is due under a one-day period.
    t.raw_sql(&format!(
        "UPDATE tenant_keys SET created_at = created_at - 86400001 WHERE tenant_id = '{tenant}' AND version = 2"
    ))
    .await;
    let by_age = RotationPolicy {
        after_days: 1,
        ..RotationPolicy::default()
    };
    let rotated = t.app.rotate_due(&by_age).await.expect("policy");
    assert_eq!(rotated.len(), 1);
    assert_eq!(key_state(&t, &tenant).await["current_version"], 3);
}

/// Shredding a whole tenant (two operators) destroys every key it has: its
/// cards and customers are unreadable, in the database and in any data
/// backup, its keys stop working, and other tenants are untouched.
async fn a_shredded_tenant_cannot_be_read_even_from_a_backup(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("leaving").await;
    let (other_tenant, _, other_shop) = t.tenant_with_shop("staying").await;
    let second = t.global_key("operator").await;
    let processor = t.key("processor", &tenant, None).await;
    let (_, card) = t.tokenize(&shop, &visa(300)).await;
    let (_, other) = t.tokenize(&other_shop, &visa(301)).await;
    let (card, other) = (
        card["token"].as_str().expect("token").to_owned(),
        other["token"].as_str().expect("token").to_owned(),
    );
    t.raw_sql("CREATE TABLE cards_backup AS SELECT * FROM cards;")
        .await;
    assert_eq!(shred(&t, &second, &tenant).await, 1);
    let (status, _) = t
        .call(Method::GET, &format!("/v1/cards/{card}"), Some(&shop), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the tenant's keys are disabled");
    t.raw_sql("DELETE FROM cards; INSERT INTO cards SELECT * FROM cards_backup;")
        .await;
    let (status, body) = t.reveal(&processor, &card).await;
    assert_ne!(status, StatusCode::OK);
    assert!(!body.to_string().contains(&visa(300)[6..]));
    let everything = t.global_key("processor").await;
    let (status, _) = t.reveal(&everything, &card).await;
    assert_ne!(status, StatusCode::OK, "not even a global key opens it");
    let (status, body) = t
        .call(
            Method::GET,
            &format!("/v1/cards/{other}"),
            Some(&other_shop),
            None,
        )
        .await;
    assert_eq!(
        (status, body["last4"].as_str()),
        (StatusCode::OK, Some(&visa(301)[12..]))
    );
    assert_eq!(key_state(&t, &other_tenant).await["current_version"], 1);
}

/// Other nodes serve a tenant from keys they unwrapped moments ago; node A
/// shreds the tenant. At once, with their key caches still fresh, they answer
/// every path that decrypts or matches a keyed hash exactly as A does: no
/// card, no personal data, no shipping data, no access log, no write, and no
/// answer that tells a number the tenant held from any other.
async fn a_tenant_shredded_on_one_node_is_unreadable_on_another_at_once(t: TestApp) {
    let (tenant, shop_id, shop) = t.tenant_with_shop("leaving").await;
    let operator = t.operator_key.clone();
    let second = t.global_key("operator").await;
    let processor = t.global_key("processor").await;
    let (number, unknown) = (visa(500), visa(501));
    let (_, card) = t.tokenize(&shop, &number).await;
    let card = card["token"].as_str().expect("token").to_owned();
    let customer = crate::retention::customer(&t, &shop).await;
    let order = crate::retention::order(&t, &shop, &customer, "大阪府大阪市北区梅田1-1").await;
    let plaintexts = [&number[6..], "鈴木", "梅田"];

    let tokenize = |n: &str| {
        let mut body = crate::harness::card(n);
        body["tenant_id"] = json!(tenant);
        (&operator, Method::POST, "/v1/cards".to_owned(), Some(body))
    };
    let reads = [
        (&processor, Method::POST, format!("/v1/cards/{card}/reveal"), None),
        (&operator, Method::GET, format!("/v1/cards/{card}"), None),
        (
            &operator,
            Method::POST,
            "/v1/cards/lookup".to_owned(),
            Some(json!({"number": number, "tenant_id": tenant})),
        ),
        (&operator, Method::GET, format!("/v1/customers/{customer}"), None),
        (
            &operator,
            Method::GET,
            format!("/v1/customers/{customer}/access-log"),
            None,
        ),
    ];
    let writes = [
        // The same number and a number the tenant never held: one answer.
        tokenize(&number),
        tokenize(&unknown),
        (
            &operator,
            Method::POST,
            "/v1/customers".to_owned(),
            Some(json!({"name": "鈴木 一郎", "tenant_id": tenant, "shop_id": shop_id})),
        ),
    ];
    let send = async |node: &std::sync::Arc<anshin::app::App>,
                      (key, method, path, body): &(&String, Method, String, Option<Value>)| {
        let headers = [("authorization", format!("Bearer {key}"))];
        let (status, _, body) =
            crate::checkout::send(node, "192.0.2.10", method.clone(), path, &headers, body.clone()).await;
        (status, body)
    };
    // A node of its own for each request (a refused write makes a node read
    // the keys again), its cache filled by a read that succeeds: the request
    // itself, or a write's node reading the card.
    let mut nodes = Vec::new();
    for warm in reads.iter().chain(std::iter::repeat_n(&reads[1], writes.len())) {
        let node = std::sync::Arc::new(anshin::app::App::open(&t.location).await.expect("node"));
        let (status, answer) = send(&node, warm).await;
        assert_eq!(status, StatusCode::OK, "{} before the shred: {answer}", warm.2);
        nodes.push(node);
    }
    // What the node's credential cache holds for the shop key, which may
    // outlive the shred there by the cache's lifetime: used directly, so no
    // timing decides whether the shipping path is reached.
    let shipping_node = anshin::app::App::open(&t.location).await.expect("node");
    let shop_actor = shipping_node.authenticate(&shop).await.expect("shop key");
    let shipping = shipping_node.order_shipping(&shop_actor, &order).await;
    assert!(shipping.is_ok(), "shipping before the shred");

    assert_eq!(shred(&t, &second, &tenant).await, 3);

    let mut differences = Vec::new();
    for (node, request) in nodes.iter().zip(reads.iter().chain(&writes)) {
        let (status, answer) = send(node, request).await;
        let text = answer.to_string();
        let (key, method, path, body) = request;
        assert!(
            plaintexts.iter().all(|p| !text.contains(p)),
            "{method} {path} shows data of the shredded tenant"
        );
        let (expected, on_a) = t.call(method.clone(), path, Some(key), body.clone()).await;
        let (b, a) = (
            (status, &answer["error"]["code"]),
            (expected, &on_a["error"]["code"]),
        );
        if b != a || status != StatusCode::NOT_FOUND {
            differences.push(format!("{method} {path}: other node {b:?}, a {a:?}"));
        }
    }
    assert_eq!(
        differences,
        Vec::<String>::new(),
        "other nodes answer as a does, at once"
    );
    // The node finds the order's data key gone, as after the retention purge
    // (which answers 410), reads the tenant's keys again and finds none: 404.
    let shipping = shipping_node.order_shipping(&shop_actor, &order).await;
    assert_eq!(shipping.err().map(|e| e.code()), Some("not_found"));
    assert_eq!(
        t.audit_log_of("key.approve").await.len(),
        1,
        "the shred is in the audit log"
    );
}

/// A node still holding a KEK version that another node has just retired
/// wraps a new card under it: the store refuses (nothing is stored under a
/// destroyed key), the node reads its keys again and says to retry, and the
/// retry stores the card under the current version.
async fn a_card_wrapped_under_a_version_retired_on_another_node_is_refused_then_stored(t: TestApp) {
    let (tenant, _, shop) = t.tenant_with_shop("retired elsewhere").await;
    let second = t.global_key("operator").await;
    let (_, card) = t.tokenize(&shop, &visa(600)).await;
    let node_b = std::sync::Arc::new(anshin::app::App::open(&t.location).await.expect("node b"));
    let on_b = async |method: Method, path: &str, body: Option<Value>| {
        let headers = [("authorization", format!("Bearer {shop}"))];
        let (status, _, body) =
            crate::checkout::send(&node_b, "192.0.2.11", method, path, &headers, body).await;
        (status, body)
    };
    let path = format!("/v1/cards/{}", card["token"].as_str().expect("token"));
    assert_eq!(
        on_b(Method::GET, &path, None).await.0,
        StatusCode::OK,
        "b caches version 1"
    );
    assert_eq!(rotate(&t, &second, &tenant).await, 2);
    assert_eq!(rewrap_everything(&t).await, 1);
    let retire = json!({"operation": "retire", "below": 2, "reason": "v1 replaced", "tenant_id": tenant});
    assert_eq!(approved(&t, &second, retire).await, 1);

    let body = crate::harness::card(&visa(601));
    let (status, refused) = on_b(Method::POST, "/v1/cards", Some(body.clone())).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("keys_changed")),
        "{refused}"
    );
    let (_, doc) = t.call(Method::GET, "/v1/openapi.json", None, None).await;
    let declared = &doc["paths"]["/v1/cards"]["post"]["responses"]["409"]["description"];
    assert!(
        declared.as_str().is_some_and(|d| d.contains("keys_changed")),
        "the OpenAPI document declares the 409: {declared}"
    );
    let (status, stored) = on_b(Method::POST, "/v1/cards", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let state = key_state(&t, &tenant).await;
    assert_eq!(state["versions"][0]["version"], 2, "{state}");
    assert_eq!(state["versions"][0]["records"], 2, "{state}");
}
