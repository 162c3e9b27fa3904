//! Integrity baselines kept off the shop's host: `POST /v1/integrity/baselines`
//! (pinned key per host, every version with who and why), and `anshin
//! integrity baseline|approve|check --server` through the built binary, where
//! a local baseline swapped by an intruder is caught against the server's copy.

use anshin_integrity::baseline::{HistoryEntry, Payload};
use anshin_integrity::fixture;
use anshin_integrity::key::{BaselineKey, public_hex};
use anshin_integrity::rules::DEFAULT_RULES;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends, of_kind};
use crate::integrity::{Shop, assert_each_planted_found, has, lines, server_and_key};

const MEDIA: &str = "application/vnd.anshin.integrity-baseline";

fn entry(action: &str, by: &str, reason: &str) -> HistoryEntry {
    HistoryEntry {
        at: "2026-12-06T01:00:00Z".into(),
        action: action.into(),
        by: by.into(),
        reason: reason.into(),
        added: 1,
        removed: 0,
        changed: 2,
    }
}

fn payload(history: Vec<HistoryEntry>) -> Payload {
    Payload {
        created_at: "2026-12-06T01:00:00Z".into(),
        host: "shop-1".into(),
        roots: vec!["/var/www/shop".into()],
        rules: DEFAULT_RULES.into(),
        records: Vec::new(),
        history,
    }
}

async fn store(t: &TestApp, key: &str, file: &[u8]) -> (StatusCode, Value) {
    let text = String::from_utf8(file.to_vec()).expect("a baseline is text");
    let (status, body) = t
        .raw(
            Method::POST,
            "/v1/integrity/baselines",
            Some(key),
            Some(text),
            MEDIA,
        )
        .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn baseline_alerts(t: &TestApp, key: &str) -> Vec<Value> {
    let (status, list) = t
        .call(
            Method::GET,
            "/v1/alerts?kind=host_baseline_changed",
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["alerts"].as_array().cloned().unwrap_or_default()
}

async fn stored_baselines_are_pinned_versioned_and_kept_with_who_and_why(t: TestApp) {
    let (tenant, _, _) = t.tenant_with_shop("baselines").await;
    let operator = t.key("operator", &tenant, None).await;
    let auditor = t.key("auditor", &tenant, None).await;
    let (other, _, _) = t.tenant_with_shop("other").await;
    let outsider = t.key("operator", &other, None).await;
    let host_key = BaselineKey::from_seed([7; 32]);
    let intruder = BaselineKey::from_seed([9; 32]);

    let first = payload(vec![entry("baseline", "tanaka", "initial baseline")]);
    let (status, answer) = store(&t, &operator, &first.encode(&host_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        (&answer["host"], &answer["version"], &answer["pinned"]),
        (&json!("shop-1"), &json!(1), &json!(true))
    );
    assert_eq!(answer["public_key"], public_hex(&host_key.verifying_key()));
    // The same file again (a retry): nothing new.
    let (status, again) = store(&t, &operator, &first.encode(&host_key)).await;
    assert_eq!(
        (status, &again["version"], &again["stored"]),
        (StatusCode::OK, &json!(1), &json!(false))
    );

    let mut approved = first.clone();
    approved
        .history
        .push(entry("approve", "suzuki", "EC-CUBE 4.3.1, ticket #812"));
    let approved_file = approved.encode(&host_key);
    let (status, answer) = store(&t, &operator, &approved_file).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        (&answer["version"], &answer["continues"]),
        (&json!(2), &json!(true))
    );

    // Signed with another key (an intruder's, or the host's after its key was replaced): refused.
    let mut forged = approved.clone();
    forged
        .history
        .push(entry("approve", "suzuki", "looks legitimate"));
    let (status, err) = store(&t, &operator, &forged.encode(&intruder)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "integrity_key_mismatch");
    // Altered after signing, or not a baseline: refused, nothing stored.
    let mut altered = approved_file.clone();
    let at = altered.iter().position(|&b| b == b'#').expect("reason");
    altered[at] = b'$';
    for bad in [altered, b"{\"records\":[]}".to_vec()] {
        let (status, err) = store(&t, &operator, &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["code"], "invalid_baseline");
    }

    // The newest file as it was signed, for operators and auditors of the tenant only.
    let (status, body) = t
        .raw(
            Method::GET,
            "/v1/integrity/baselines/shop-1",
            Some(&auditor),
            None,
            MEDIA,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, approved_file);
    let (status, _) = t
        .call(
            Method::GET,
            "/v1/integrity/baselines/shop-1",
            Some(&outsider),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = store(&t, &auditor, &approved_file).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, history) = t
        .call(
            Method::GET,
            "/v1/integrity/baselines/shop-1/history",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let versions = history["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            &versions[0]["version"],
            &versions[0]["approved_by"],
            &versions[0]["reason"]
        ),
        (&json!(2), &json!("suzuki"), &json!("EC-CUBE 4.3.1, ticket #812"))
    );
    assert_eq!(versions[1]["action"], "baseline");

    // A baseline recorded anew (its history does not continue the stored one) is kept, and alerted high.
    let anew = payload(vec![entry("baseline", "root", "initial baseline")]);
    let (status, answer) = store(&t, &operator, &anew.encode(&host_key)).await;
    assert_eq!(
        (status, &answer["continues"]),
        (StatusCode::CREATED, &json!(false))
    );
    let alerts = baseline_alerts(&t, &operator).await;
    let severities: Vec<&str> = alerts
        .iter()
        .map(|a| a["severity"].as_str().expect("severity"))
        .collect();
    assert_eq!(
        severities.iter().filter(|s| **s == "low").count(),
        2,
        "{alerts:?}"
    );
    assert_eq!(
        severities.iter().filter(|s| **s == "high").count(),
        1,
        "{alerts:?}"
    );

    // A new key is pinned only on an explicit, audited request, which raises a high alert.
    let body =
        json!({"public_key": public_hex(&intruder.verifying_key()), "reason": "key rotated, ticket #900"});
    let (status, pinned) = t
        .call(
            Method::PUT,
            "/v1/integrity/hosts/shop-1/key",
            Some(&operator),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pinned}");
    assert_eq!(pinned["public_key"], public_hex(&intruder.verifying_key()));
    let (status, _) = store(&t, &operator, &forged.encode(&intruder)).await;
    assert_eq!(status, StatusCode::CREATED);
    let alerts = baseline_alerts(&t, &operator).await;
    assert!(
        alerts.iter().any(
            |a| a["severity"] == "high" && a["summary"].as_str().is_some_and(|s| s.contains("re-pinned"))
        ),
        "{alerts:?}"
    );

    let log = t.audit_log().await;
    assert_eq!(of_kind(&log, "integrity.baseline_store").len(), 9);
    assert_eq!(of_kind(&log, "integrity.key_pin").len(), 1);
    assert!(!of_kind(&log, "integrity.baseline_read").is_empty());
}

both_backends!(stored_baselines_are_pinned_versioned_and_kept_with_who_and_why);

/// Runs `anshin integrity ARGS --server URL` with the API key.
fn run(shop: &Shop, url: &str, key: &str, args: &[&str]) -> std::process::Output {
    shop.command(args)
        .args(["--server", url])
        .env("ANSHIN_API_KEY", key)
        .output()
        .expect("run")
}

fn history(server: &crate::cli::Server, key: &str) -> Value {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let (status, history) = server.request(
        "GET",
        &format!("/v1/integrity/baselines/{}/history", host.trim()),
        key,
        None,
    );
    assert_eq!(status, 200, "{history}");
    history
}

/// The breach this closes: in seeds 001 and 003 the intruders had the shop's
/// host for years. With the key and the baseline on that host, they could
/// re-baseline after planting a skimmer and a local check would stay clean;
/// the server's copy does not move, so `check --server` still sees both.
#[test]
fn a_baseline_swapped_on_the_host_is_caught_against_the_servers_copy() {
    let shop = Shop::new();
    let (server, key, url, _) = server_and_key(&shop);
    let root = shop.root();
    let rules = shop.path("rules.toml");
    let record = [
        "baseline",
        root.to_str().expect("utf-8"),
        "--rules",
        rules.to_str().expect("utf-8"),
    ];
    let out = run(&shop, &url, &key, &record);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("as version 1 of host"), "{stderr}");
    assert!(!stderr.contains(&key));
    let out = run(&shop, &url, &key, &["check", "--json"]);
    assert_eq!(
        (out.status.code(), lines(&out.stdout).len()),
        (Some(0), 0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The intruder plants the skimmers and re-baselines with the host's own key.
    let planted = fixture::plant_all(&root);
    let baseline = shop.path("data/integrity/baseline");
    std::fs::remove_file(&baseline).expect("rm");
    shop.baseline();
    let (code, alerts, _) = shop.check();
    assert_eq!((code, alerts.len()), (Some(0), 0), "locally all looks clean");
    let out = run(&shop, &url, &key, &["check", "--json"]);
    let alerts = lines(&out.stdout);
    assert_eq!(out.status.code(), Some(6));
    let file = anshin_integrity::path_key(&baseline);
    assert!(
        has(&alerts, &file, "baseline_mismatch", "critical"),
        "{alerts:#?}"
    );
    // Every planted tampering, found against the server's copy.
    assert_each_planted_found(&alerts, &planted);
    // Its alerts reached the server's list.
    let (_, list) = server.request("GET", "/v1/alerts?kind=host_integrity&limit=1000", &key, None);
    assert!(
        list["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["summary"]
                .as_str()
                .is_some_and(|s| s.contains("baseline differs"))),
        "{list}"
    );

    // An intruder with a key of their own is refused by the server and seen by check.
    std::fs::remove_file(shop.path("data/integrity/signing.key")).expect("rm key");
    std::fs::remove_file(&baseline).expect("rm");
    let out = run(&shop, &url, &key, &record);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("integrity_key_mismatch"), "{stderr}");
    let out = run(&shop, &url, &key, &["check", "--json"]);
    let alerts = lines(&out.stdout);
    assert!(
        alerts.iter().any(|a| a["kind"] == "baseline_mismatch"
            && a["details"][0]
                .as_str()
                .is_some_and(|d| d.starts_with("pinned on the server"))),
        "{alerts:#?}"
    );
    // Only the first, legitimate baseline is stored.
    assert_eq!(
        history(&server, &key)["versions"]
            .as_array()
            .expect("versions")
            .len(),
        1
    );
}

/// A legitimate deploy approved with `--server`: the approval starts from the
/// server's copy, is stored there with who and why, and the next check is clean.
#[test]
fn an_approval_with_server_is_stored_with_who_and_why() {
    let shop = Shop::new();
    let (server, key, url, _) = server_and_key(&shop);
    shop.baseline();
    // No copy on the server yet: the local file is used, with an alert saying so.
    let out = run(&shop, &url, &key, &["check", "--json"]);
    assert!(
        lines(&out.stdout)
            .iter()
            .any(|a| a["kind"] == "baseline_not_stored" && a["severity"] == "high"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fixture::clean_deploy(&shop.root());
    let out = run(
        &shop,
        &url,
        &key,
        &["approve", "--by", "tanaka", "--reason", "EC-CUBE 4.3.1, #812"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the server now pins this signing key"),
        "{stderr}"
    );
    let out = run(&shop, &url, &key, &["check", "--json"]);
    assert_eq!(
        (out.status.code(), lines(&out.stdout).len()),
        (Some(0), 0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history = history(&server, &key);
    let versions = history["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (
            &versions[0]["action"],
            &versions[0]["approved_by"],
            &versions[0]["reason"]
        ),
        (&json!("approve"), &json!("tanaka"), &json!("EC-CUBE 4.3.1, #812"))
    );
    assert_eq!(versions[0]["added"], 1);
}
