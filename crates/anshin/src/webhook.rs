//! Signed webhook deliveries, shared by the alert webhook
//! ([`crate::audit::webhook`]) and the shops' payment webhooks
//! ([`crate::proxy::webhooks`]).
//!
//! Each delivery is one JSON POST with `Anshin-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>` from [`anshin_crypto::webhook`]
//! (one `v1` per secret while a secret is being rotated). A 2xx answer
//! delivers it; anything else (another status, a refused connection, no answer
//! within the timeout) is retried with exponential backoff and jitter, 1 s
//! doubling to 1 h, until the configured number of attempts. The callers keep
//! the delivery state in the store, so retries survive restarts.
//!
//! Several nodes may deliver from one store. A round first takes a [`Claim`]
//! on the deliveries due: a random token written on each, with an expiry
//! (the delivery's `next_attempt_at` while it is claimed) that hides them
//! from other nodes. A delivery is sent only while its claim has time left
//! for a whole attempt, and its outcome is written only if the row still
//! carries this claim's token and the claim has not expired: a node that
//! stalled past its claim can neither overwrite the outcome of the node that
//! took the delivery over nor reschedule it.
//!
//! Where a receiver may be is a [`NetworkPolicy`]: its name is resolved by
//! [`GuardedResolver`], which refuses addresses the policy does not permit,
//! and the connection goes to the checked address, never to a second
//! resolution (DNS rebinding). A refused destination fails the attempt with
//! the stable code [`DESTINATION_REFUSED`] at the start of its error.
//!
//! Redirects are not followed (a 3xx is a failure): a receiver that moved must
//! be reconfigured, not followed wherever it points. Nothing here logs a
//! secret, a URL's path or a body.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anshin_crypto::webhook::{WebhookKey, sign_all};
use axum::http::{HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::clock;
use crate::net::{GuardedResolver, NetworkPolicy, denial, is_public};

/// Time allowed to open a connection (TCP).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the whole exchange, TLS handshake and answer included.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is hidden from other nodes: longer than one
/// attempt can take, so a node that dies mid-attempt only delays it.
pub const CLAIM_MS: i64 = 60_000;
/// First retry delay.
const BASE_DELAY_MS: i64 = 1_000;
/// Longest retry delay.
const MAX_DELAY_MS: i64 = 3_600_000;
/// Longest failure description kept.
const MAX_ERROR_LEN: usize = 200;
/// Start of the error of an attempt whose receiver is at an address the
/// network policy refuses (stable: match on it).
pub const DESTINATION_REFUSED: &str = "destination_refused";

type Body = Full<Bytes>;
type Connector = HttpConnector<GuardedResolver>;

/// One node's claim on the deliveries of a round.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Written on each claimed delivery; an outcome is recorded only where it still is.
    pub token: String,
    /// When the round started (ms): deliveries due by then are claimed.
    pub now: i64,
    /// When the claim expires (ms).
    pub until: i64,
    /// When the round started, on this process's monotonic clock.
    pub started: Instant,
}

impl Claim {
    /// A new claim for a round at `now` (ms), for [`CLAIM_MS`].
    pub fn new(now: i64) -> crate::error::Result<Self> {
        Ok(Self {
            token: anshin_crypto::token::random_token("clm")?,
            now,
            until: now.saturating_add(CLAIM_MS),
            started: Instant::now(),
        })
    }

    /// The round's clock now: its start plus the time elapsed (ms).
    pub fn at(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.now.saturating_add(elapsed)
    }

    /// Whether a whole attempt still fits before the claim expires: past
    /// that, another node may take the delivery over, so this one must not
    /// send it.
    pub fn can_send(&self) -> bool {
        let attempt_ms = i64::try_from(RESPONSE_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
        self.at().saturating_add(attempt_ms) < self.until
    }
}

/// The HTTP clients deliveries go through, connecting only where their
/// policy permits: plain HTTP (loopback receivers only; the URL checks see
/// to that) and HTTPS with the operating system's trusted roots.
pub struct Sender {
    policy: Arc<NetworkPolicy>,
    plain: Client<Connector, Body>,
    /// `None` when the system has no trusted roots: HTTPS deliveries then fail.
    tls: Option<Client<HttpsConnector<Connector>, Body>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("https", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Clients with the connection timeout that connect only where `policy`
    /// permits; HTTPS only if the operating system's trusted roots load.
    pub fn new(policy: Arc<NetworkPolicy>) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(policy.clone()));
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new()).build(http.clone());
        http.enforce_http(false);
        let tls = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(builder) => Some(
                Client::builder(TokioExecutor::new())
                    .build(builder.https_only().enable_http1().wrap_connector(http)),
            ),
            Err(err) => {
                tracing::warn!(error = %err, "no trusted root certificates: webhooks over HTTPS cannot be sent");
                None
            }
        };
        Self { policy, plain, tls }
    }

    /// Whether HTTPS receivers can be reached.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// One POST of a JSON body to `url`, signed with each of `keys`; `Err`
    /// describes the failure in our words (never the receiver's body, which
    /// could echo anything), starting with [`DESTINATION_REFUSED`] when the
    /// policy refused the receiver's address.
    pub async fn post(&self, url: &Uri, keys: &[&WebhookKey], body: Vec<u8>) -> Result<(), String> {
        // Names are checked as they are resolved; an address in the URL is not resolved.
        self.policy
            .check_host(url.host().unwrap_or_default())
            .map_err(|denied| refused(&denied))?;
        let signature = sign_all(keys, clock::now_ms().div_euclid(1000), &body);
        let signature = HeaderValue::from_str(&signature).map_err(|e| e.to_string())?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("anshin/", env!("CARGO_PKG_VERSION")))
            .header("anshin-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = match (url.scheme_str(), &self.tls) {
                (Some("https"), Some(client)) => client.request(request).await,
                (Some("https"), None) => {
                    return Err("no trusted root certificates for HTTPS (install ca-certificates)".to_owned());
                }
                _ => self.plain.request(request).await,
            };
            response.map(|r| r.status()).map_err(|e| match denial(&e) {
                Some(denied) => refused(&denied),
                None => describe(&e),
            })
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
            Err(_) => Err(format!("no answer within {} s", RESPONSE_TIMEOUT.as_secs())),
            Ok(Err(err)) => Err(err),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the receiver answered HTTP {}", status.as_u16())),
        }
    }
}

/// The error of an attempt the policy refused.
fn refused(denied: &dyn std::fmt::Display) -> String {
    let mut text = format!("{DESTINATION_REFUSED}: {denied}");
    truncate(&mut text);
    text
}

/// Why a receiver's URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// Not an absolute `http(s)://host/…` URL.
    Malformed,
    /// It carries a user name or password (receivers check the signature).
    Credentials,
    /// Plain HTTP to a host that is not loopback, or loopback where it is not allowed.
    NotHttps,
    /// An address of a private, link-local or otherwise internal network.
    Internal,
}

/// Whose receiver a URL names, which decides what it may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// The operator's own (the alert webhook, from the configuration): any
    /// HTTPS host, or plain HTTP to loopback.
    Operator,
    /// A shop's (set through the API): HTTPS to a host that is not an
    /// internal address literal; loopback (HTTP or HTTPS) only when
    /// `loopback` (tests, the demo).
    Shop { loopback: bool },
}

/// Checks a receiver's URL for `receiver`: never credentials in it, HTTPS
/// unless to loopback. (A name is not resolved here: the [`Sender`]'s
/// policy checks where it points at each attempt.)
pub fn check_url(url: &str, receiver: Receiver) -> Result<Uri, UrlProblem> {
    let uri: Uri = url.parse().map_err(|_| UrlProblem::Malformed)?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(UrlProblem::Malformed)?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(UrlProblem::Credentials);
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().ok();
    let is_loopback = bare.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(UrlProblem::Malformed),
    };
    match receiver {
        Receiver::Operator if scheme_ok || is_loopback => Ok(uri),
        Receiver::Shop { loopback: true } if is_loopback => Ok(uri),
        Receiver::Shop { .. } if is_loopback => Err(UrlProblem::NotHttps),
        Receiver::Shop { .. } if ip.is_some_and(|ip| !is_public(ip)) => Err(UrlProblem::Internal),
        Receiver::Shop { .. } if scheme_ok => Ok(uri),
        _ => Err(UrlProblem::NotHttps),
    }
}

/// The outcome of one delivery attempt, as stored.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The receiver answered 2xx at this time (ms).
    Delivered { at: i64 },
    /// It failed; try again at `retry_at` (ms), or never when `None`.
    Failed { retry_at: Option<i64>, error: String },
}

impl Attempt {
    /// `delivered`, `retrying` or `given_up` (metrics label).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::Failed {
                retry_at: Some(_), ..
            } => "retrying",
            Self::Failed { retry_at: None, .. } => "given_up",
        }
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Deliveries the receiver took.
    pub delivered: u32,
    /// Attempts that failed and will be retried.
    pub retrying: u32,
    /// Deliveries given up after their last attempt.
    pub given_up: u32,
    /// Outcomes not recorded because the claim had expired or passed to
    /// another node, which decides the delivery now.
    pub claims_lost: u32,
}

impl Deliveries {
    /// Counts an outcome, `recorded` false when the claim was lost; returns
    /// its metrics label (an [`Attempt::outcome`], or `claim_lost`).
    pub fn count(&mut self, attempt: &Attempt, recorded: bool) -> &'static str {
        let (counter, label) = match attempt.outcome() {
            _ if !recorded => (&mut self.claims_lost, "claim_lost"),
            "delivered" => (&mut self.delivered, "delivered"),
            "retrying" => (&mut self.retrying, "retrying"),
            label => (&mut self.given_up, label),
        };
        *counter += 1;
        label
    }
}

/// What to store for the result of attempt number `attempt` (1 = the first)
/// made at `now` (ms): delivered, retry after the backoff, or give up after
/// `max_attempts`.
pub fn settle(result: Result<(), String>, attempt: u32, max_attempts: u32, now: i64) -> Attempt {
    match result {
        Ok(()) => Attempt::Delivered { at: clock::now_ms() },
        Err(error) if attempt < max_attempts => Attempt::Failed {
            retry_at: Some(now + backoff_ms(attempt, random_u64())),
            error,
        },
        Err(error) => Attempt::Failed {
            retry_at: None,
            error,
        },
    }
}

/// An error and its causes, bounded in length.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    truncate(&mut text);
    text
}

fn truncate(text: &mut String) {
    if text.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// The delay (ms) after failed attempt number `attempt` (1 = the first):
/// 1 s doubling up to 1 h, of which the upper half is random ("equal jitter"),
/// so receivers that come back are not hit by every sender at once while
/// retries never come sooner than half the nominal delay.
pub fn backoff_ms(attempt: u32, random: u64) -> i64 {
    let doublings = attempt.saturating_sub(1).min(32);
    let nominal = BASE_DELAY_MS.saturating_mul(1i64 << doublings).min(MAX_DELAY_MS);
    let half = nominal / 2;
    let spread = u64::try_from(half).unwrap_or(0) + 1;
    half + i64::try_from(random % spread).unwrap_or(0)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // The system RNG failing only removes the jitter.
    let _ = anshin_crypto::token::fill_random(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_one_hour_with_jitter() {
        assert_eq!(backoff_ms(1, 0), 500);
        assert_eq!(backoff_ms(1, 500), 1000);
        assert_eq!(backoff_ms(2, 0), 1000);
        assert_eq!(backoff_ms(3, 0), 2000);
        assert_eq!(backoff_ms(12, 0), 1_024_000);
        assert_eq!(backoff_ms(13, 0), 1_800_000);
        assert_eq!(backoff_ms(40, 0), 1_800_000);
        for attempt in 1..60 {
            for random in [0, 1, 12_345, u64::MAX] {
                let delay = backoff_ms(attempt, random);
                let nominal = (1000i64 << (attempt - 1).min(32)).min(3_600_000);
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "{attempt} {random} {delay}"
                );
            }
        }
    }

    #[test]
    fn the_default_attempts_retry_for_four_to_eight_hours() {
        let attempts = 1..crate::config::DEFAULT_WEBHOOK_ATTEMPTS;
        let shortest: i64 = attempts.clone().map(|a| backoff_ms(a, 0)).sum();
        let longest: i64 = attempts
            .map(|a| {
                let nominal = (1000i64 << (a - 1).min(32)).min(3_600_000);
                backoff_ms(a, u64::try_from(nominal / 2).unwrap_or(0))
            })
            .sum();
        assert!(shortest >= 4 * 3_600_000, "{shortest}");
        assert!(longest <= 9 * 3_600_000, "{longest}");
    }

    #[test]
    fn error_descriptions_are_bounded() {
        let long = std::io::Error::other("x".repeat(1000));
        assert_eq!(describe(&long).len(), MAX_ERROR_LEN);
    }

    #[test]
    fn settling_retries_until_the_last_attempt() {
        let mut done = Deliveries::default();
        let delivered = settle(Ok(()), 1, 3, 0);
        assert_eq!(delivered.outcome(), "delivered");
        done.count(&delivered, true);
        let retry = settle(Err("HTTP 500".into()), 2, 3, 1_000);
        assert!(matches!(retry, Attempt::Failed { retry_at: Some(at), .. } if (2_000..=3_000).contains(&at)));
        done.count(&retry, true);
        let last = settle(Err("HTTP 500".into()), 3, 3, 0);
        assert_eq!(last.outcome(), "given_up");
        done.count(&last, true);
        done.count(&last, false);
        assert_eq!(
            done,
            Deliveries {
                delivered: 1,
                retrying: 1,
                given_up: 1,
                claims_lost: 1,
            }
        );
    }

    #[test]
    fn a_claim_without_time_for_a_whole_attempt_sends_nothing() {
        let fresh = Claim::new(1_000_000).expect("rng");
        assert_eq!(fresh.until, 1_000_000 + CLAIM_MS);
        assert!(fresh.can_send());
        assert_ne!(fresh.token, Claim::new(1_000_000).expect("rng").token);
        let late = Claim {
            until: fresh.now + i64::try_from(RESPONSE_TIMEOUT.as_millis()).expect("ms"),
            ..fresh
        };
        assert!(!late.can_send());
    }

    #[test]
    fn receiver_urls_are_https_or_allowed_loopback() {
        let shop = Receiver::Shop { loopback: false };
        let test_shop = Receiver::Shop { loopback: true };
        assert!(check_url("https://shop.example/hooks/anshin", shop).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", test_shop).is_ok());
        assert!(check_url("http://[::1]:9000/hook", test_shop).is_ok());
        assert!(check_url("http://localhost/hook", test_shop).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", Receiver::Operator).is_ok());
        assert!(check_url("https://10.0.0.8/siem", Receiver::Operator).is_ok());
        assert_eq!(
            check_url("http://127.0.0.1:9000/hook", shop),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            check_url("https://127.0.0.1:9000/hook", shop),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            check_url("http://shop.example/hook", test_shop),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            check_url("http://shop.example/hook", Receiver::Operator),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            check_url("ftp://shop.example/hook", shop),
            Err(UrlProblem::Malformed)
        );
        assert_eq!(check_url("/hook", shop), Err(UrlProblem::Malformed));
        assert_eq!(check_url("not a url", shop), Err(UrlProblem::Malformed));
        assert_eq!(
            check_url("https://user:pw@shop.example/hook", shop),
            Err(UrlProblem::Credentials)
        );
        for internal in [
            "https://10.0.0.8/hook",
            "https://192.168.1.1/hook",
            "https://172.16.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/hook",
            "https://0.0.0.0/hook",
            "https://[fd00::1]/hook",
            "https://[fe80::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
        ] {
            assert_eq!(
                check_url(internal, test_shop),
                Err(UrlProblem::Internal),
                "{internal}"
            );
        }
    }

    /// A loopback server answering each request `204` after reading its
    /// head: how many requests came, and its port.
    async fn answering() -> (Arc<std::sync::atomic::AtomicUsize>, u16) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        (count, port)
    }

    #[tokio::test]
    async fn a_webhook_host_resolving_to_an_internal_address_is_refused_before_connecting() {
        let (count, port) = answering().await;
        let key = WebhookKey::new(b"a-webhook-secret-long-enough-0123456789").expect("key");
        let public_only = Sender::new(Arc::new(NetworkPolicy::public_and_loopback(false)));
        // A name (resolved, then refused) and address literals (never resolved).
        for url in [
            format!("http://localhost:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        ] {
            let uri: Uri = url.parse().expect("uri");
            let error = public_only
                .post(&uri, &[&key], b"{}".to_vec())
                .await
                .expect_err("refused");
            assert!(error.starts_with("destination_refused: "), "{url}: {error}");
            assert!(
                error.contains("127.0.0.1") || error.contains("::1"),
                "{url}: {error}"
            );
        }
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no connection was made"
        );
        // Where the configuration allows loopback, the same name is delivered to.
        let with_loopback = Sender::new(Arc::new(NetworkPolicy::public_and_loopback(true)));
        let uri: Uri = format!("http://localhost:{port}/hook").parse().expect("uri");
        with_loopback
            .post(&uri, &[&key], b"{}".to_vec())
            .await
            .expect("delivered");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
