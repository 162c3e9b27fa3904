//! The hosted card page in a real browser (headless Chromium through
//! chromedriver): the demo shop on another origin embeds it, a shopper types a
//! test card (once with full-width digits) with the keyboard only and pays
//! through a 3-D Secure challenge at the processor simulator. Then: the shop's
//! server logs and storage never held the card number, the simulator received
//! it, a page of another origin cannot frame the card page nor hear from it,
//! and the page's Content-Security-Policy stops a script from elsewhere.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`
//! (`.ci/run` installs them). Without them the test is skipped with a note,
//! unless `CI` is set: then it fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anshin::browser::{Browser, BrowserOptions};
use anshin::demo_shop::{DemoShop, ShopConfig};
use anshin::http::checkout_page;
use anshin::proxy::CheckoutSettings;
use anshin_crypto::secret::SecretString;
use anshin_processor_sim::Simulator;
use axum::http::{Method, StatusCode};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp};

/// The 3-D Secure test card of the simulator, and its one-time code.
const CHALLENGE_CARD: &str = "4000000000003220";
const CHALLENGE_CARD_FULL_WIDTH: &str = "４０００ ００００ ００００ ３２２０";
const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

/// anshin on a real socket, its public URL set to where it listens.
async fn serve(t: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    t.app.configure_checkout(CheckoutSettings {
        public_url: base.clone(),
        // The simulator's host, the one place card data may go.
        allowed_hosts: vec!["127.0.0.1".into()],
        // The demo shop's webhook receiver.
        webhook_loopback: true,
        ..CheckoutSettings::default()
    });
    // Payment webhooks go out as `anshin serve` sends them.
    tokio::spawn(anshin::proxy::webhooks::PaymentWebhooks::new().run(t.app.clone()));
    let router = anshin::http::router(t.app.clone());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    base
}

/// The browser, or `None` (skip) when Chromium is not installed and CI is not set.
async fn browser() -> Option<Browser> {
    let options = BrowserOptions {
        // The simulator's certificate is from a test CA made at its start.
        accept_insecure_certs: true,
        ..BrowserOptions::default()
    };
    if !options.chromium.exists() || !options.chromedriver.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {} or {} is missing: apt-get install chromium chromium-driver",
            options.chromium.display(),
            options.chromedriver.display()
        );
        eprintln!(
            "note: Chromium or chromedriver is not installed; skipping (set CI to make this a failure)"
        );
        return None;
    }
    Some(Browser::launch(&options).await.expect("launch Chromium"))
}

/// Waits until `script` (a JavaScript expression) is true in the current frame.
async fn wait_for(client: &Client, script: &str, what: &str) {
    let started = Instant::now();
    loop {
        let value = client
            .execute(&format!("return Boolean({script});"), vec![])
            .await
            .unwrap_or(Value::Bool(false));
        if value == Value::Bool(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {}",
            client.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .expect(css)
        .text()
        .await
        .expect("text")
}

/// Every way the card number could be written down.
fn card_forms() -> Vec<String> {
    vec![
        CHALLENGE_CARD.to_owned(),
        CHALLENGE_CARD_FULL_WIDTH.to_owned(),
        CHALLENGE_CARD_FULL_WIDTH.replace(' ', ""),
        "4000 0000 0000 3220".to_owned(),
        "4000-0000-0000-3220".to_owned(),
    ]
}

struct Checkout {
    t: TestApp,
    sim: Simulator,
    shop: DemoShop,
    base: String,
    shop_key: String,
}

/// anshin, the simulator as the tenant's processor route, and the demo shop.
async fn checkout() -> Checkout {
    let t = TestApp::new(Backend::Sqlite).await.expect("sqlite");
    let (tenant, shop_id, shop_key) = t.tenant_with_shop("browser").await;
    let sim = crate::checkout::with_processor(&t, &tenant, Default::default()).await;
    let base = serve(&t).await;
    let shop = DemoShop::start(ShopConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        anshin_url: base.clone(),
        api_key: SecretString::new(shop_key.clone()),
        shop_name: "ブラウザ商店 (browser shop)".into(),
        shop_id,
    })
    .await
    .expect("demo shop");
    Checkout {
        t,
        sim,
        shop,
        base,
        shop_key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iketei_online_2025_the_card_goes_from_the_browser_to_the_processor_never_through_the_shop() {
    let Some(browser) = browser().await else {
        return;
    };
    let c = checkout().await;
    let client = browser.client();

    client
        .goto(&format!("{}/?lang=en", c.shop.url()))
        .await
        .expect("shop page");
    wait_for(
        client,
        "document.body.dataset.lastEvent",
        "anshin:ready from the frame",
    )
    .await;
    let frame = client.find(Locator::Css("#anshin-frame")).await.expect("iframe");
    frame.enter_frame().await.expect("enter the card page");

    // The keyboard only: type, Tab to the next field, Enter on the button.
    let number = client.find(Locator::Css("#card-number")).await.expect("number");
    number.click().await.expect("focus");
    number.send_keys(CHALLENGE_CARD_FULL_WIDTH).await.expect("type");
    assert_eq!(
        number.prop("value").await.expect("value").as_deref(),
        Some("4000 0000 0000 3220"),
        "full-width digits normalised and grouped"
    );
    assert_eq!(text_of(client, "#card-brand").await, "Visa");
    assert_eq!(
        number.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("false")
    );
    // From the number field: Tab, then each field in turn, Tab after each.
    for keys in [
        TAB.to_owned(),
        format!("1230{TAB}"),
        format!("123{TAB}"),
        format!("TARO YAMADA{TAB}"),
    ] {
        let focused = client.active_element().await.expect("the focused field");
        focused.send_keys(&keys).await.expect("typed");
    }
    let focused = client.active_element().await.expect("active");
    assert_eq!(focused.attr("id").await.expect("id").as_deref(), Some("pay"));
    focused.send_keys(ENTER).await.expect("pay");

    wait_for(
        client,
        "document.getElementById('card-number').disabled",
        "the card accepted",
    )
    .await;
    assert_eq!(
        number.prop("value").await.expect("value").as_deref(),
        Some("Visa \u{2022}\u{2022}\u{2022}\u{2022} 3220")
    );

    // The shop's server charges the session; the issuer's challenge appears
    // inside the card page, and the shopper answers it.
    wait_for(
        client,
        "!document.getElementById('challenge-box').hidden",
        "the 3-D Secure challenge",
    )
    .await;
    let acs = client
        .find(Locator::Css("#challenge-frame"))
        .await
        .expect("challenge frame");
    let acs_src = acs.attr("src").await.expect("src").expect("challenge url");
    assert!(acs_src.starts_with(c.sim.url()), "{acs_src}");
    acs.enter_frame().await.expect("enter the challenge");
    let code = client
        .wait()
        .for_element(Locator::Css("#code"))
        .await
        .expect("the issuer's code field");
    code.send_keys(&format!("{}{ENTER}", anshin_processor_sim::CHALLENGE_CODE))
        .await
        .expect("code");
    client.enter_parent_frame().await.expect("card page");
    wait_for(
        client,
        "document.getElementById('status').classList.contains('done')",
        "the payment complete in the card page",
    )
    .await;
    assert_eq!(
        client
            .execute(
                "return [localStorage.length, sessionStorage.length, document.cookie, location.href]",
                vec![]
            )
            .await
            .expect("storage"),
        json!([
            0,
            0,
            "",
            format!("{}/checkout/{}", c.base, session_id_of(&c.shop))
        ])
    );
    client.enter_parent_frame().await.expect("shop page");
    wait_for(
        client,
        "document.body.dataset.paymentStatus === 'captured'",
        "anshin:payment captured at the shop",
    )
    .await;
    // The page as the shop's script left it, less the hint that lists the test cards.
    let shop_page = client
        .execute(
            "document.querySelector('.hint').remove(); return document.documentElement.outerHTML;",
            vec![],
        )
        .await
        .expect("shop page");
    let shop_page = shop_page.as_str().expect("html").to_owned();
    let session_id = session_id_of(&c.shop);
    let (status, session) =
        c.t.call(
            Method::GET,
            &format!("/v1/checkout/sessions/{session_id}"),
            Some(&c.shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(
        (
            session["card"]["brand"].as_str(),
            session["card"]["last4"].as_str()
        ),
        (Some("visa"), Some("3220")),
        "{session}"
    );

    // The shop: its logs, storage and page never held the card number.
    let log = c.shop.log();
    assert!(
        log.iter().any(|l| l.starts_with("received POST /pay")),
        "{log:#?}"
    );
    let stored = serde_json::to_string(&c.shop.orders()).expect("orders");
    for form in card_forms() {
        for line in &log {
            assert!(!line.contains(&form), "the shop's log holds the card: {line}");
        }
        assert!(!stored.contains(&form), "the shop's storage holds the card");
        assert!(!shop_page.contains(&form), "the shop's page holds the card");
    }
    let order = c.shop.orders().into_iter().next().expect("order");
    assert!(
        order
            .card_token
            .as_deref()
            .is_some_and(|t| t.starts_with("card_")),
        "{order:?}"
    );
    assert_eq!(order.payment_status.as_deref(), Some("challenge_required"));
    assert!(
        log.iter()
            .any(|l| l.starts_with("anshin answered POST /v1/payments: 200")),
        "{log:#?}"
    );

    // The simulator: the real number and security code arrived there.
    let payment_id = order.payment_id.expect("payment id");
    let (status, payment) =
        c.t.call(
            Method::GET,
            &format!("/v1/payments/{payment_id}"),
            Some(&c.shop_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{payment}");
    assert_eq!(payment["status"], "captured", "{payment}");
    // The shop's server heard of it on its webhook, signature checked.
    for _ in 0..100 {
        if c.shop.orders()[0].webhook_status.as_deref() == Some("captured") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.shop.orders()[0].webhook_status.as_deref(), Some("captured"));
    let log = c.shop.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("verified webhook payment.captured")),
        "{log:#?}"
    );
    assert!(
        log.iter().all(|l| !l.contains("whsec_")),
        "the shop never logs its secret"
    );
    let reference = payment["processor_reference"].as_str().expect("reference");
    let received = c
        .sim
        .received(reference)
        .expect("the simulator received the payment");
    assert_eq!(received.pan_fingerprint, c.sim.pan_fingerprint(CHALLENGE_CARD));
    assert_eq!(received.cvc_fingerprint, Some(c.sim.cvc_fingerprint("123")));
    browser.close().await;
}

fn session_id_of(shop: &DemoShop) -> String {
    shop.orders().into_iter().next().expect("order").session_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_cannot_frame_the_card_page_and_its_policy_stops_foreign_scripts() {
    let Some(browser) = browser().await else {
        return;
    };
    let c = checkout().await;
    let client = browser.client();

    // The same shop page reached at another origin (localhost instead of
    // 127.0.0.1): the session names 127.0.0.1, so the frame is refused and
    // nothing is heard from it.
    let other = c.shop.url().replace("127.0.0.1", "localhost");
    client
        .goto(&format!("{other}/"))
        .await
        .expect("shop page at another origin");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let heard = client
        .execute("return document.body.dataset.lastEvent || null", vec![])
        .await
        .expect("events");
    assert_eq!(
        heard,
        Value::Null,
        "a page of another origin heard from the card page"
    );
    client
        .find(Locator::Css("#anshin-frame"))
        .await
        .expect("iframe")
        .enter_frame()
        .await
        .expect("enter");
    assert!(
        client.find(Locator::Css("#card-number")).await.is_err(),
        "the card page rendered inside a page of another origin"
    );
    client.enter_parent_frame().await.expect("back");

    // At the right origin: a script from elsewhere (the shop's own, which
    // would run if allowed) and an inline script are both refused, and the
    // foreign request never leaves the browser.
    client
        .goto(&format!("{}/", c.shop.url()))
        .await
        .expect("shop page");
    wait_for(client, "document.body.dataset.lastEvent", "anshin:ready").await;
    client
        .find(Locator::Css("#anshin-frame"))
        .await
        .expect("iframe")
        .enter_frame()
        .await
        .expect("enter");
    let script_requests = || {
        c.shop
            .log()
            .iter()
            .filter(|l| l.starts_with("received GET /shop.js"))
            .count()
    };
    let before = script_requests();
    let outcome = client
        .execute_async(
            r#"const [src, done] = arguments;
               const violations = [];
               document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective));
               const inline = document.createElement('script');
               inline.textContent = 'window.__inline = true;';
               document.head.appendChild(inline);
               const s = document.createElement('script');
               s.src = src;
               s.onload = () => done({ loaded: true, violations, inline: !!window.__inline });
               s.onerror = () => setTimeout(() => done({ loaded: false, violations, inline: !!window.__inline }), 200);
               document.head.appendChild(s);"#,
            vec![json!(format!("{}/shop.js", c.shop.url()))],
        )
        .await
        .expect("inject");
    assert_eq!(outcome["loaded"], false, "{outcome}");
    assert_eq!(outcome["inline"], false, "{outcome}");
    let violations = outcome["violations"].as_array().expect("violations");
    assert!(
        violations.iter().filter(|v| *v == "script-src-elem").count() >= 2,
        "{outcome}"
    );
    assert_eq!(
        script_requests(),
        before,
        "the browser fetched the foreign script"
    );
    browser.close().await;
}

/// Without a browser: the page's headers and that the integrity value it
/// carries is the hash of the script anshin serves.
#[tokio::test]
async fn the_served_script_matches_the_pages_integrity_value_and_policy() {
    let t = TestApp::new(Backend::Sqlite).await.expect("sqlite");
    let (_tenant, _shop, shop_key) = t.tenant_with_shop("sri").await;
    let (status, session) = t
        .call(
            Method::POST,
            "/v1/checkout/sessions",
            Some(&shop_key),
            Some(json!({
                "amount": 1000, "currency": "JPY", "order_ref": "sri-1",
                "allowed_origin": "https://shop.example", "locale": "en",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().expect("id");
    let (status, headers, html) = t.get_raw(&format!("/checkout/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"),
        "{csp}"
    );
    assert!(csp.ends_with("frame-ancestors https://shop.example"), "{csp}");
    let html = String::from_utf8(html).expect("utf-8");
    let tag = html
        .split("<script ")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .expect("script tag");
    let attr = |name: &str| {
        tag.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect(name)
            .to_owned()
    };
    let (src, integrity) = (attr("src"), attr("integrity"));
    let (status, headers, script) = t.get_raw(&src).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &script);
    assert_eq!(
        integrity,
        format!("sha384-{}", data_encoding::BASE64.encode(digest.as_ref()))
    );
    assert_eq!(integrity, checkout_page::SCRIPT.integrity);
    let (status, _, _) = t.get_raw("/checkout/cs_unknown0000000000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = t.get_raw("/checkout/assets/page.html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
