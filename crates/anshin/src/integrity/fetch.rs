//! Fetching a payment page: over HTTP (hyper with rustls, the operating
//! system's roots) with a time limit, a size limit and at most five
//! redirects, connecting only where the [`NetworkPolicy`] permits; and, in
//! browser mode, in headless Chromium as well, to see the scripts other
//! scripts insert at run time.
//!
//! Nothing the page does can hang the monitor: every step is under the
//! run's deadline, a body longer than [`MAX_PAGE_BYTES`] is cut and noted,
//! and a failure is an error with a stable code that the caller reports.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::page::{self, Inventory, MAX_PAGE_BYTES, Script, SecurityHeaders};
use crate::browser::{Browser, BrowserOptions};
use crate::net::{GuardProxy, GuardedResolver, NetworkPolicy, denial};

/// Longest a whole fetch (redirects and body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Redirects followed.
const MAX_REDIRECTS: usize = 5;
/// External scripts whose bodies are fetched from one page (the rest are noted).
const MAX_SCRIPTS: usize = 50;
/// What a page fetch accepts.
const ACCEPT_PAGE: &str = "text/html,application/xhtml+xml";
/// What a script fetch accepts.
const ACCEPT_SCRIPT: &str = "text/javascript,application/javascript,*/*;q=0.1";
/// How long the running page may keep inserting scripts after `load`.
const SETTLE: Duration = Duration::from_millis(1_500);

/// Why a page could not be inventoried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// `page_timeout`, `page_unreachable`, `page_address_denied`,
    /// `page_status`, `page_redirects`, `page_not_html`,
    /// `browser_unavailable`, `browser_failed`.
    pub code: &'static str,
    /// What happened (no page content).
    pub detail: String,
}

impl FetchError {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// The HTTP client the monitor fetches pages with.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Empty<Bytes>>,
    policy: Arc<NetworkPolicy>,
    timeout: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("timeout", &self.timeout).finish()
    }
}

impl Fetcher {
    /// A client trusting the operating system's roots, connecting where
    /// `policy` permits; `timeout` bounds each fetch.
    pub fn new(timeout: Duration, policy: Arc<NetworkPolicy>) -> std::io::Result<Self> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(policy.clone()));
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            policy,
            timeout,
        })
    }

    /// The page's inventory from its HTML and headers, with the hash of each
    /// external script's body (fetched under the same rules and limits).
    pub async fn inventory(&self, url: &Url) -> Result<Inventory, FetchError> {
        let fetched = tokio::time::timeout(self.timeout, self.get(url, ACCEPT_PAGE))
            .await
            .map_err(|_| {
                FetchError::new(
                    "page_timeout",
                    format!(
                        "the page did not finish loading within {} s",
                        self.timeout.as_secs()
                    ),
                )
            })??;
        let mut inventory = page::inventory(
            &fetched.url,
            &fetched.body,
            security_headers(&fetched.headers),
            fetched.truncated,
        );
        self.fetch_scripts(&mut inventory).await;
        Ok(inventory)
    }

    /// Fetches the body of each external script in the inventory not fetched
    /// yet (those the HTML names, then those the browser saw inserted), all
    /// within one more timeout, and records its hash and what the skimmer
    /// signatures find in it (PCI DSS 11.6.1: a third-party script changed at
    /// the same address). A script that cannot be fetched, or is longer than a
    /// page may be, keeps its address and says why.
    pub async fn fetch_scripts(&self, inventory: &mut Inventory) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let tried = |s: &Script| s.src.is_some() && (s.sha384.is_some() || s.fetch_error.is_some());
        let mut fetched = inventory.scripts.iter().filter(|s| tried(s)).count();
        for script in &mut inventory.scripts {
            if tried(script) {
                continue;
            }
            let Some(src) = script.src.as_deref().and_then(|s| Url::parse(s).ok()) else {
                continue;
            };
            if !matches!(src.scheme(), "http" | "https") {
                continue;
            }
            if fetched == MAX_SCRIPTS {
                script.fetch_error = Some(format!("not fetched: more than {MAX_SCRIPTS} external scripts"));
                continue;
            }
            fetched += 1;
            script.fetch_error = match tokio::time::timeout_at(deadline, self.get(&src, ACCEPT_SCRIPT)).await
            {
                Err(_) => Some("no answer in time".to_owned()),
                Ok(Err(err)) => Some(format!("{}: {}", err.code, err.detail)),
                Ok(Ok(body)) if body.truncated => Some(format!("longer than {MAX_PAGE_BYTES} bytes")),
                Ok(Ok(body)) => {
                    script.record_body(&body.body);
                    None
                }
            };
        }
    }

    async fn get(&self, start: &Url, accept: &'static str) -> Result<Fetched, FetchError> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.policy
                .check_url(&url)
                .map_err(|denied| FetchError::new("page_address_denied", denied.0))?;
            let uri: Uri = url
                .as_str()
                .parse()
                .map_err(|_| FetchError::new("page_unreachable", "the URL is not a valid URI"))?;
            let request = Request::get(uri)
                .header(header::USER_AGENT, "anshin-page-monitor/1 (+PCI DSS 11.6.1)")
                .header(header::ACCEPT, accept)
                .body(Empty::new())
                .map_err(|e| FetchError::new("page_unreachable", e.to_string()))?;
            let response = self.client.request(request).await.map_err(|e| match denial(&e) {
                Some(denied) => FetchError::new("page_address_denied", denied),
                None => FetchError::new("page_unreachable", format!("cannot fetch {url}: {e}")),
            })?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        FetchError::new(
                            "page_status",
                            format!("redirect {status} without a usable Location"),
                        )
                    })?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::new("page_status", format!("{url} answered {status}")));
            }
            let headers = response.headers().clone();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            let mut truncated = false;
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| FetchError::new("page_unreachable", format!("reading {url}: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    let room = MAX_PAGE_BYTES - bytes.len();
                    if data.len() > room {
                        bytes.extend_from_slice(&data[..room]);
                        truncated = true;
                        break;
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            return Ok(Fetched {
                url,
                headers,
                body: bytes,
                truncated,
            });
        }
        Err(FetchError::new(
            "page_redirects",
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }
}

struct Fetched {
    url: Url,
    headers: HeaderMap,
    body: Vec<u8>,
    truncated: bool,
}

/// The security headers of a response (every value of repeated ones).
pub fn security_headers(headers: &HeaderMap) -> SecurityHeaders {
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .take(page::MAX_ITEMS)
            .collect()
    };
    SecurityHeaders {
        csp: all("content-security-policy"),
        csp_report_only: all("content-security-policy-report-only"),
        integrity_policy: all("integrity-policy").into_iter().next(),
        integrity_policy_report_only: all("integrity-policy-report-only").into_iter().next(),
    }
}

/// What the running page reports: `document.scripts` after load (src,
/// integrity, inline text) and the scripts its resource timing saw.
const RUNTIME_SCRIPTS: &str = r#"
const out = [];
for (const s of Array.from(document.scripts).slice(0, 2000)) {
  const type = (s.type || '').toLowerCase();
  if (type && type !== 'module' && !type.includes('javascript') && !type.includes('ecmascript')) continue;
  if (s.src) out.push({src: s.src, integrity: s.integrity || null});
  else if (s.text && s.text.trim()) out.push({text: s.text});
}
for (const e of performance.getEntriesByType('resource').slice(0, 2000)) {
  if (e.initiatorType === 'script' || e.name.endsWith('.js')) out.push({src: e.name, resource: true});
}
return out;
"#;

/// Adds to `inventory` the scripts the running page has that its HTML did
/// not name, marked `runtime`. Every connection the browser makes goes
/// through a [`GuardProxy`] under `policy`.
pub async fn add_runtime_scripts(
    inventory: &mut Inventory,
    url: &Url,
    options: &BrowserOptions,
    policy: Arc<NetworkPolicy>,
) -> Result<(), FetchError> {
    let guard = GuardProxy::start(policy).await.map_err(|e| {
        FetchError::new(
            "browser_unavailable",
            format!("cannot start the browser's proxy: {e}"),
        )
    })?;
    let options = BrowserOptions {
        proxy: Some(guard.addr()),
        ..options.clone()
    };
    let browser = Browser::launch(&options)
        .await
        .map_err(|e| FetchError::new("browser_unavailable", e.message().to_owned()))?;
    let found = tokio::time::timeout(FETCH_TIMEOUT + SETTLE, async {
        let client = browser.client();
        client
            .goto(url.as_str())
            .await
            .map_err(|e| FetchError::new("browser_failed", format!("loading the page: {e}")))?;
        tokio::time::sleep(SETTLE).await;
        client
            .execute(RUNTIME_SCRIPTS, vec![])
            .await
            .map_err(|e| FetchError::new("browser_failed", format!("reading the page's scripts: {e}")))
    })
    .await;
    browser.close().await;
    let found =
        found.map_err(|_| FetchError::new("page_timeout", "the page did not settle in the browser"))??;
    let mut keys: std::collections::BTreeSet<String> =
        inventory.scripts.iter().map(|s| s.key.clone()).collect();
    for item in found.as_array().into_iter().flatten().take(page::MAX_ITEMS) {
        let script = if let Some(src) = item.get("src").and_then(|v| v.as_str()) {
            let Ok(src) = Url::parse(src) else { continue };
            let integrity = item.get("integrity").and_then(|v| v.as_str()).map(str::to_owned);
            // A resource entry has no integrity attribute of its own: the
            // element's, if the HTML named it, is already in the inventory.
            if item.get("resource").is_some() && keys.contains(&format!("src:{src}")) {
                continue;
            }
            Script::external(&src, integrity)
        } else if let Some(text) = item.get("text").and_then(|v| v.as_str()) {
            Script::inline(text)
        } else {
            continue;
        };
        if keys.insert(script.key.clone()) {
            inventory.scripts.push(Script {
                runtime: true,
                ..script
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fetcher that may reach the tests' loopback servers.
    fn fetcher(timeout: Duration) -> Fetcher {
        let loopback = crate::access::cidr::Cidr::parse("127.0.0.0/8").expect("cidr");
        Fetcher::new(timeout, Arc::new(NetworkPolicy::new(vec![loopback]))).expect("roots")
    }

    /// A loopback server that answers every connection with `answer` (or never).
    async fn server(answer: Option<Vec<u8>>) -> Url {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    match answer {
                        Some(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                        }
                        // Holds the connection open and says nothing.
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        Url::parse(&format!("http://{addr}/checkout")).expect("url")
    }

    #[tokio::test]
    async fn a_page_that_never_answers_times_out() {
        let url = server(None).await;
        let fetcher = fetcher(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = fetcher.inventory(&url).await.expect_err("timeout");
        assert_eq!(err.code, "page_timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_huge_page_is_cut_and_noted() {
        let body = format!("<script src=/a.js></script>{}", "x".repeat(MAX_PAGE_BYTES + 1000));
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-security-policy: script-src 'self'\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body.as_bytes());
        let url = server(Some(answer)).await;
        let inventory = fetcher(Duration::from_secs(20))
            .inventory(&url)
            .await
            .expect("inventory");
        assert!(
            inventory.notes.contains(&"truncated_body".to_owned()),
            "{:?}",
            inventory.notes
        );
        assert_eq!(inventory.scripts.len(), 1);
        assert_eq!(inventory.headers.csp, vec!["script-src 'self'"]);
    }

    #[tokio::test]
    async fn private_addresses_are_refused_by_default_redirects_included() {
        let strict = Fetcher::new(Duration::from_secs(20), Arc::default()).expect("roots");
        let page = server(Some(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
        ))
        .await;
        let err = strict.inventory(&page).await.expect_err("loopback");
        assert_eq!(err.code, "page_address_denied");
        // A name that resolves to loopback is refused at connect time.
        let by_name = Url::parse(&page.as_str().replace("127.0.0.1", "localhost")).expect("url");
        let err = strict.inventory(&by_name).await.expect_err("localhost");
        assert_eq!(
            (err.code, err.detail.contains("localhost is at")),
            ("page_address_denied", true)
        );
        // A page allowed by the policy cannot redirect the monitor to the metadata service.
        let redirect = server(Some(
            b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        ))
        .await;
        let err = fetcher(Duration::from_secs(20))
            .inventory(&redirect)
            .await
            .expect_err("metadata");
        assert_eq!(err.code, "page_address_denied");
        assert!(err.detail.contains("169.254.169.254"), "{}", err.detail);
    }

    #[tokio::test]
    async fn redirect_loops_end() {
        let url = server(Some(
            b"HTTP/1.1 302 Found\r\nlocation: /checkout\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ))
        .await;
        let err = fetcher(Duration::from_secs(20))
            .inventory(&url)
            .await
            .expect_err("loop");
        assert_eq!(err.code, "page_redirects");
    }
}
