//! Sending alerts to the configured webhook.
//!
//! Each alert is POSTed as JSON ([`super::alerts::AlertNotification`], schema
//! version 1) with `Anshin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret,
//! "<t>.<body>")>` from [`anshin_crypto::webhook`]. A 2xx answer delivers it;
//! anything else (another status, a refused connection, no answer within the
//! timeout) is retried with exponential backoff and jitter, 1 s doubling to
//! 1 h, until the configured number of attempts. Delivery state lives in the
//! store, so retries survive restarts, and each due alert is claimed before it
//! is sent, so two nodes never send the same attempt.
//!
//! Redirects are not followed (a 3xx is a failure): a receiver that moved must
//! be reconfigured, not followed wherever it points. Nothing here logs the
//! secret, the URL's path or the body; the body holds no personal data anyway.

use std::time::Duration;

use anshin_crypto::webhook::WebhookKey;
use axum::http::{HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::alerts::AlertNotification;
use crate::clock;
use crate::config::AlertConfig;
use crate::db::Store;
use crate::db::alerts::{AlertAttempt, AlertRow};
use crate::error::{Error, ErrorKind, Result};

/// Time allowed to open a connection (TCP).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the whole exchange, TLS handshake and answer included.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay.
const BASE_DELAY_MS: i64 = 1_000;
/// Longest retry delay.
const MAX_DELAY_MS: i64 = 3_600_000;
/// How long a claimed delivery is hidden from other nodes: longer than one
/// attempt can take, so a node that dies mid-attempt only delays it.
const CLAIM_MS: i64 = 60_000;
/// Alerts claimed per round.
const BATCH: u32 = 16;
/// Longest failure description kept.
const MAX_ERROR_LEN: usize = 200;

type Body = Full<Bytes>;

enum Transport {
    Plain(Client<HttpConnector, Body>),
    Tls(Client<HttpsConnector<HttpConnector>, Body>),
}

/// The configured webhook.
pub struct Webhook {
    transport: Transport,
    url: Uri,
    /// Scheme and authority only, for logs.
    target: String,
    key: WebhookKey,
    max_attempts: u32,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("target", &self.target)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Alerts the receiver took.
    pub delivered: u32,
    /// Attempts that failed and will be retried.
    pub retrying: u32,
    /// Alerts given up after their last attempt.
    pub given_up: u32,
}

fn webhook_error(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "invalid_configuration", message)
}

impl Webhook {
    /// The webhook of `config`, or `None` if none is configured. HTTPS loads
    /// the operating system's trusted roots now, so a machine without any
    /// fails at start rather than at the first alert.
    pub fn from_config(config: &AlertConfig) -> Result<Option<Self>> {
        let (Some(url), Some(secret)) = (&config.webhook_url, &config.webhook_secret) else {
            return Ok(None);
        };
        let url: Uri = url
            .parse()
            .map_err(|_| webhook_error("alert_webhook_url is not a URL"))?;
        let key = WebhookKey::new(secret.expose().as_bytes())
            .map_err(|_| webhook_error("alert_webhook_secret must be at least 32 characters"))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let transport = match url.scheme_str() {
            Some("https") => {
                http.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Invalid,
                            "invalid_configuration",
                            "no trusted root certificates found for the alert webhook's HTTPS; install the \
                             system's CA certificates (ca-certificates)",
                        )
                        .with_cause(e)
                    })?
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http);
                Transport::Tls(Client::builder(TokioExecutor::new()).build(https))
            }
            Some("http") => Transport::Plain(Client::builder(TokioExecutor::new()).build(http)),
            _ => return Err(webhook_error("alert_webhook_url must be https:// or http://")),
        };
        Ok(Some(Self {
            target: crate::config::redact_webhook_url(&url.to_string()),
            transport,
            url,
            key,
            max_attempts: config.webhook_max_attempts,
        }))
    }

    /// Scheme and host of the receiver (for logs; no path, no query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sends every alert due at `now` (ms) once, and records each outcome.
    pub async fn deliver_due(&self, store: &Store, now: i64) -> Result<Deliveries> {
        let mut done = Deliveries::default();
        let due = store.alerts_claim_due(now, now + CLAIM_MS, BATCH).await?;
        for alert in due {
            let attempt = alert.attempts.saturating_add(1);
            let outcome = self.send(&alert).await;
            let record = match outcome {
                Ok(()) => {
                    done.delivered += 1;
                    metrics::counter!("anshin_alert_webhook_deliveries_total", "outcome" => "delivered")
                        .increment(1);
                    tracing::info!(alert = %alert.id, kind = alert.kind.as_str(), attempt, "alert delivered to the webhook");
                    AlertAttempt::Delivered { at: clock::now_ms() }
                }
                Err(error) if attempt < self.max_attempts => {
                    done.retrying += 1;
                    metrics::counter!("anshin_alert_webhook_deliveries_total", "outcome" => "retrying")
                        .increment(1);
                    let delay = backoff_ms(attempt, random_u64());
                    tracing::warn!(alert = %alert.id, attempt, retry_in_ms = delay, receiver = %self.target, %error,
                        "alert webhook delivery failed; will retry");
                    AlertAttempt::Failed {
                        retry_at: Some(now + delay),
                        error,
                    }
                }
                Err(error) => {
                    done.given_up += 1;
                    metrics::counter!("anshin_alert_webhook_deliveries_total", "outcome" => "given_up")
                        .increment(1);
                    tracing::error!(alert = %alert.id, attempt, receiver = %self.target, %error,
                        "alert webhook delivery failed for the last time; the alert stays listed at GET /v1/alerts");
                    AlertAttempt::Failed {
                        retry_at: None,
                        error,
                    }
                }
            };
            store.alert_attempt(&alert.id, record).await?;
        }
        Ok(done)
    }

    /// One POST of an audit alert.
    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), String> {
        let body = serde_json::to_vec(&AlertNotification::from(alert)).map_err(|e| e.to_string())?;
        self.post(body).await
    }

    /// One signed POST of a JSON body (also `anshin integrity`'s alerts);
    /// `Err` describes the failure in our words (never the receiver's body,
    /// which could echo anything).
    pub async fn post(&self, body: Vec<u8>) -> std::result::Result<(), String> {
        let signature = self.key.sign(clock::now_ms().div_euclid(1000), &body);
        let signature = HeaderValue::from_str(&signature).map_err(|e| e.to_string())?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("anshin/", env!("CARGO_PKG_VERSION")))
            .header("anshin-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = match &self.transport {
                Transport::Plain(client) => client.request(request).await,
                Transport::Tls(client) => client.request(request).await,
            };
            response.map(|r| r.status())
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
            Err(_) => Err(format!("no answer within {} s", RESPONSE_TIMEOUT.as_secs())),
            Ok(Err(err)) => Err(describe(&err)),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the receiver answered HTTP {}", status.as_u16())),
        }
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
    if text.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
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
}
