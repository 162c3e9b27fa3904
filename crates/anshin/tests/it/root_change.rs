//! Changing the root of trust under dual control: through the API and the
//! library on both backends (a crash at each step), and through the built
//! binary from a key file to custodian shares and into SoftHSM2.

use std::path::Path;

use anshin::app::App;
use anshin::db::keys::RootTarget;
use anshin::vault::root::{self, NewRoot, RootKey};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{Server, anshin_with, anshin_with_key, init_operator, stdout_json};
use crate::harness::{TestApp, both_backends};

both_backends!(
    a_root_change_needs_a_second_global_operator,
    a_crash_after_the_switch_is_finished_by_the_next_start_and_the_old_root_opens_nothing,
    a_staged_change_stops_servers_until_it_is_redone_or_cancelled,
);

/// `POST /v1/keys/requests` with `body` as `key`.
async fn ask(t: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    t.call(Method::POST, "/v1/keys/requests", Some(key), Some(body))
        .await
}

/// `POST /v1/keys/requests/{id}/approve` as `key`.
async fn approve(t: &TestApp, key: &str, id: &str) -> (StatusCode, Value) {
    t.call(
        Method::POST,
        &format!("/v1/keys/requests/{id}/approve"),
        Some(key),
        None,
    )
    .await
}

/// Asks for `change_root` to `target` as `requester` and approves it as
/// `approver`: the request's id.
async fn approved(t: &TestApp, requester: &str, approver: &str, target: &str) -> String {
    let (status, req) = ask(
        t,
        requester,
        json!({"operation": "change_root", "target": target, "reason": "custodian left"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    assert_eq!(
        (req["tenant_id"].clone(), req["target"].as_str()),
        (Value::Null, Some(target))
    );
    let id = req["id"].as_str().expect("id").to_owned();
    let (status, decided) = approve(t, approver, &id).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "approved", "{decided}");
    assert_eq!(
        decided["result"],
        Value::Null,
        "carried out offline, not by the approval"
    );
    id
}

async fn a_root_change_needs_a_second_global_operator(t: TestApp) {
    let (tenant, _, _) = t.tenant_with_shop("Root").await;
    let tenant_operator = t.key("operator", &tenant, None).await;
    let body = json!({"operation": "change_root", "target": "shares:2/3", "reason": "r"});
    let (status, refused) = ask(&t, &tenant_operator, body.clone()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("global_operation"))
    );
    for bad in [json!("hsm"), json!("shares:4/3"), Value::Null] {
        let mut body = body.clone();
        body["target"] = bad.clone();
        let (status, refused) = ask(&t, &t.operator_key, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {refused}");
    }
    let (_, req) = ask(&t, &t.operator_key, body).await;
    let id = req["id"].as_str().expect("id");
    let (status, own) = approve(&t, &t.operator_key, id).await;
    assert_eq!(
        (status, own["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval"))
    );
    // A tenant's operator does not see an installation's request.
    let (status, _) = approve(&t, &tenant_operator, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Carrying out needs the approval, and exactly the approved target.
    let actor = t.app.authenticate(&t.operator_key).await.expect("actor");
    let shares = RootTarget::Shares {
        threshold: 2,
        shares: 3,
    };
    let early = t
        .app
        .approved_root_change(&actor, id, shares)
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(early, Some("request_not_approved"));
    let second = t.global_key("operator").await;
    let id = approved(&t, &t.operator_key, &second, "file").await;
    let wrong = t
        .app
        .approved_root_change(&actor, &id, shares)
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(wrong, Some("target_mismatch"));
    assert!(
        t.app
            .approved_root_change(&actor, &id, RootTarget::File)
            .await
            .is_ok()
    );
}

async fn a_crash_after_the_switch_is_finished_by_the_next_start_and_the_old_root_opens_nothing(t: TestApp) {
    let (tenant, _, shop_key) = t.tenant_with_shop("Root").await;
    let (status, card) = t.tokenize(&shop_key, "4111111111111111").await;
    assert_eq!(status, StatusCode::CREATED, "{card}");
    let token = card["token"].as_str().expect("token").to_owned();
    let processor_key = t.key("processor", &tenant, None).await;
    let second = t.global_key("operator").await;
    let id = approved(&t, &t.operator_key, &second, "file").await;

    // Installation keys (here the one sealing shops' webhook secrets) move too.
    let sealing = "payment_webhook_secrets";
    let installation = t
        .app
        .keyring
        .installation_key(&t.app.store, sealing)
        .await
        .expect("key");
    let data = t.data_dir();
    let old_root = keep_copy(&data.join(root::ROOT_KEY_FILE));
    let actor = t.app.authenticate(&t.operator_key).await.expect("actor");
    let request = t
        .app
        .approved_root_change(&actor, &id, RootTarget::File)
        .await
        .expect("approved");
    let next = NewRoot::KeyFile.stage(&data).expect("stage");
    let change = t
        .app
        .stage_root_change(&request, &next.root)
        .await
        .expect("staged");
    assert!(change.tenant_keys.len() >= 2, "every tenant key is re-wrapped");
    root::commit_staged(&data).expect("switch");
    // The process dies here: the database still holds the old wraps.

    let reopened = App::open(&t.location)
        .await
        .expect("the new root finishes the change");
    let tenant_id = anshin::ids::TenantId::parse(&tenant).expect("tenant");
    reopened
        .keyring
        .tenant(&reopened.store, &tenant_id)
        .await
        .expect("tenant keys open under the new root");
    let moved = reopened
        .keyring
        .installation_key(&reopened.store, sealing)
        .await
        .expect("key");
    assert!(
        moved.expose() == installation.expose(),
        "the same installation key, re-wrapped"
    );
    let requests = reopened.key_requests(&actor).await.expect("requests");
    let done = requests.iter().find(|r| r.id.to_string() == id).expect("request");
    assert_eq!(done.status, "executed");
    assert!(done.executed_at.is_some());
    drop(reopened);
    assert_eq!(t.audit_log_of("key.change_root").await.len(), 1);

    // Whoever kept the old root key file opens nothing with it.
    let old = App::open_with_root(&t.location, RootKey::load(&old_root).expect("old key")).await;
    assert_eq!(old.err().map(|e| e.code()), Some("root_key_mismatch"));
    // And the request is single-use.
    let again = App::open(&t.location).await.expect("open");
    let used = again
        .approved_root_change(&actor, &id, RootTarget::File)
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(used, Some("request_closed"));
    // The card still decrypts, under the new root.
    let processor = again.authenticate(&processor_key).await.expect("processor");
    let revealed = again.reveal_card(&processor, &token).await.expect("reveal");
    let revealed = serde_json::to_value(&revealed).expect("json");
    assert!(revealed["number"] == "4111111111111111", "the number comes back");
}

async fn a_staged_change_stops_servers_until_it_is_redone_or_cancelled(t: TestApp) {
    t.tenant_with_shop("Root").await;
    let second = t.global_key("operator").await;
    let id = approved(&t, &t.operator_key, &second, "file").await;
    let data = t.data_dir();
    let actor = t.app.authenticate(&t.operator_key).await.expect("actor");
    let request = t
        .app
        .approved_root_change(&actor, &id, RootTarget::File)
        .await
        .expect("approved");
    let next = NewRoot::KeyFile.stage(&data).expect("stage");
    t.app
        .stage_root_change(&request, &next.root)
        .await
        .expect("staged");
    // The process dies before the switch: the old root is still in force.
    let refused = App::open(&t.location).await.err().map(|e| e.code());
    assert_eq!(refused, Some("root_change_pending"));

    let current = root::load(&data).expect("current root");
    let app = App::open_for_root_change(&t.location, current)
        .await
        .expect("open to cancel");
    assert_eq!(
        app.cancel_root_change(&actor)
            .await
            .expect("cancel")
            .map(|r| r.to_string()),
        Some(id.clone())
    );
    root::discard_staged(&data).expect("discard");
    assert!(!data.join("root.key.next").exists());
    drop(app);
    let app = App::open(&t.location).await.expect("servers start again");
    assert_eq!(t.audit_log_of("key.change_root_cancel").await.len(), 1);
    // The approval still stands: the change can be carried out afterwards.
    assert!(
        app.approved_root_change(&actor, &id, RootTarget::File)
            .await
            .is_ok()
    );
}

/// A copy of a key file (mode 0600) beside it, as a careless backup would be.
fn keep_copy(path: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = path.with_extension("kept");
    std::fs::copy(path, &copy).expect("copy");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    copy
}

/// JSON lines of a command's standard output.
fn json_lines(output: &std::process::Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn stderr_of_failure(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {stderr}");
    stderr.to_string()
}

/// From a key file to custodian shares, then (with SoftHSM2) into a token,
/// every step through `anshin` as operators would run it.
#[test]
fn the_root_moves_from_a_key_file_to_custodian_shares_and_into_softhsm2_under_dual_control() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = init_operator(&data);
    let server = Server::start(&data);
    let (status, created) = server.request(
        "POST",
        "/v1/principals",
        &first,
        Some(r#"{"name": "second operator", "role": "operator"}"#),
    );
    assert_eq!(status, 201, "{created}");
    let second = created["api_key"].as_str().expect("key").to_owned();
    let (shop_key, token) = crate::root_of_trust::tokenize(&server, &first);
    drop(server);

    let shares_args = ["--shares", "3", "--threshold", "2"];
    let mut ask = vec!["keys", "change-root", "--reason", "custodian scheme", "--json"];
    ask.extend_from_slice(&shares_args);
    let request = stdout_json(&anshin_with_key(&data, Some(&first), &ask));
    assert_eq!(
        (request["operation"].as_str(), request["target"].as_str()),
        (Some("change_root"), Some("shares:2/3"))
    );
    let id = request["id"].as_str().expect("id").to_owned();
    let mut carry_out = vec!["keys", "change-root", "--request", &id, "--json"];
    carry_out.extend_from_slice(&shares_args);
    assert!(
        stderr_of_failure(&anshin_with_key(&data, Some(&first), &carry_out))
            .contains("waits for a second operator")
    );
    assert!(
        stderr_of_failure(&anshin_with_key(&data, Some(&first), &["keys", "approve", &id]))
            .contains("another operator")
    );
    stdout_json(&anshin_with_key(
        &data,
        Some(&second),
        &["keys", "approve", &id, "--json"],
    ));
    let wrong = [
        "keys",
        "change-root",
        "--request",
        &id,
        "--shares",
        "3",
        "--threshold",
        "3",
    ];
    assert!(
        stderr_of_failure(&anshin_with_key(&data, Some(&first), &wrong))
            .contains("the request approved `shares:2/3`")
    );

    let old_key = std::fs::read(data.join("root.key")).expect("old key");
    let lines = json_lines(&anshin_with_key(&data, Some(&first), &carry_out));
    let shares: Vec<String> = lines[0]["shares"]
        .as_array()
        .expect("shares first")
        .iter()
        .map(|s| s.as_str().expect("share").to_owned())
        .collect();
    assert_eq!(shares.len(), 3);
    assert_eq!(lines[1]["target"], "shares:2/3", "{}", lines[1]);
    assert!(lines[1]["tenant_keys"].as_u64() >= Some(2));
    assert!(!data.join("root.key").exists(), "the key file is gone");
    assert!(!data.join("root-of-trust.json.next").exists());
    // Single use (the vault now takes two custodians' shares to open).
    let two = format!("{}\n\n{}\n\n", shares[0], shares[1]);
    let again = anshin_with(&data, &carry_out, &[("ANSHIN_API_KEY", &first)], Some(&two));
    assert!(stderr_of_failure(&again).contains("carried out already"));

    // The server now starts sealed and opens with two of the new shares.
    let server = Server::start(&data);
    for share in &shares[1..] {
        let body = json!({"share": share}).to_string();
        let (status, answer) = server.request("POST", "/v1/sys/unseal", "", Some(&body));
        assert_eq!(status, 200, "{answer}");
    }
    crate::root_of_trust::read_card(&server, &shop_key, &token);
    drop(server);

    // The old key file, put back, opens nothing.
    std::fs::rename(data.join("root-of-trust.json"), dir.path().join("record")).expect("move");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(data.join("root.key"))
            .expect("write");
        std::io::Write::write_all(&mut file, &old_key).expect("write");
    }
    assert!(
        stderr_of_failure(&anshin_with_key(&data, None, &["keys", "status"]))
            .contains("does not belong to this database")
    );
    std::fs::remove_file(data.join("root.key")).expect("remove");
    std::fs::rename(dir.path().join("record"), data.join("root-of-trust.json")).expect("move back");

    // Into SoftHSM2: the custodians give two shares on standard input.
    let Some((env, _)) = crate::root_of_trust::softhsm(dir.path()) else {
        return;
    };
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("ANSHIN_PKCS11_KEY_LABEL", "anshin-root-2027"));
    let with_key = |key: &str, args: &[&str], stdin: Option<&str>| {
        let mut env = env.clone();
        env.push(("ANSHIN_API_KEY", key));
        anshin_with(&data, args, &env, stdin)
    };
    // A sealed vault is asked and approved through the unsealed server.
    let server = Server::start_with(&data, None, &env);
    for share in [&shares[0], &shares[2]] {
        let body = json!({"share": share}).to_string();
        assert_eq!(server.request("POST", "/v1/sys/unseal", "", Some(&body)).0, 200);
    }
    let body = json!({"operation": "change_root", "target": "pkcs11", "reason": "into the HSM"});
    let (status, request) = server.request("POST", "/v1/keys/requests", &second, Some(&body.to_string()));
    assert_eq!(status, 201, "{request}");
    let id = request["id"].as_str().expect("id").to_owned();
    let (status, decided) = server.request("POST", &format!("/v1/keys/requests/{id}/approve"), &first, None);
    assert_eq!(status, 200, "{decided}");
    drop(server);
    let stdin = format!("{}\n\n{}\n\n", shares[0], shares[2]);
    let lines = json_lines(&with_key(
        &second,
        &["keys", "change-root", "--request", &id, "--pkcs11", "--json"],
        Some(&stdin),
    ));
    assert_eq!(lines.last().expect("result")["target"], "pkcs11");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("root-of-trust.json")).expect("record"))
            .expect("json");
    assert_eq!(
        (record["kind"].as_str(), record["key_label"].as_str()),
        (Some("pkcs11"), Some("anshin-root-2027"))
    );
    let server = Server::start_with(&data, None, &env);
    crate::root_of_trust::read_card(&server, &shop_key, &token);
}
