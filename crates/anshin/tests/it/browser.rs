//! Headless Chromium through chromedriver (crates/anshin/src/browser.rs): a page
//! served on loopback is loaded, a script runs in it, and dropping the browser
//! leaves no chromedriver or Chromium process behind.

use std::time::Duration;

use anshin::browser::{Browser, BrowserOptions};

/// Serves `html` at `/` on a loopback port until the test ends.
pub async fn serve_html(html: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Processes (not zombies) whose process group is `pgid`.
fn live_in_group(pgid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp …; comm may contain spaces.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_page_runs_a_script_and_is_gone_after_drop() {
    let addr = serve_html(
        "<!doctype html><title>anshin browser test</title>\
         <script>window.added = 40 + 2;</script>",
    )
    .await;
    let browser = Browser::launch(&BrowserOptions::default())
        .await
        .expect("chromium and chromium-driver are installed (.ci/run installs them)");
    let pgid = browser.driver_pid().expect("chromedriver runs");
    assert!(live_in_group(pgid) >= 2, "chromedriver and chromium run");
    let client = browser.client();
    client.goto(&format!("http://{addr}/")).await.expect("goto");
    assert_eq!(client.title().await.expect("title"), "anshin browser test");
    let added = client
        .execute("return window.added;", vec![])
        .await
        .expect("execute");
    assert_eq!(added, serde_json::json!(42));
    drop(browser);
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = live_in_group(pgid);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "no chromedriver or Chromium process survives the drop");
}
