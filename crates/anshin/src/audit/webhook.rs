//! Sending alerts to the configured webhook.
//!
//! Each alert is POSTed as JSON ([`super::alerts::AlertNotification`], schema
//! version 1), signed, retried and claimed as [`crate::webhook`] describes.
//! The receiver is the operator's own, from the configuration, and may be on
//! an internal network (a SIEM): its address is not restricted.
//! Nothing here logs the secret, the URL's path or the body; the body holds no
//! personal data anyway.

use std::sync::Arc;

use anshin_crypto::webhook::WebhookKey;
use axum::http::Uri;

use super::alerts::AlertNotification;
use crate::config::AlertConfig;
use crate::db::Store;
use crate::db::alerts::AlertRow;
use crate::error::{Error, ErrorKind, Result};
use crate::net::NetworkPolicy;
use crate::webhook::{Attempt, Claim, Deliveries, Sender, settle};

/// Alerts claimed per round.
const BATCH: u32 = 16;

/// The configured webhook.
pub struct Webhook {
    sender: Sender,
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
        let sender = Sender::new(Arc::new(NetworkPolicy::unrestricted()));
        match url.scheme_str() {
            Some("https") if !sender.has_tls() => {
                return Err(webhook_error(
                    "no trusted root certificates found for the alert webhook's HTTPS; install the \
                     system's CA certificates (ca-certificates)",
                ));
            }
            Some("https" | "http") => {}
            _ => return Err(webhook_error("alert_webhook_url must be https:// or http://")),
        }
        Ok(Some(Self {
            target: crate::config::redact_webhook_url(&url.to_string()),
            sender,
            url,
            key,
            max_attempts: config.webhook_max_attempts,
        }))
    }

    /// Scheme and host of the receiver (for logs; no path, no query).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sends every alert due at `now` (ms) once, one after the other while
    /// the round's claim leaves time for an attempt (the rest wait for its
    /// expiry), and records each outcome the claim still covers.
    pub async fn deliver_due(&self, store: &Store, now: i64) -> Result<Deliveries> {
        let mut done = Deliveries::default();
        let claim = Claim::new(now)?;
        let due = store.alerts_claim_due(&claim, BATCH).await?;
        for alert in due {
            if !claim.can_send() {
                break;
            }
            let attempt = alert.attempts.saturating_add(1);
            let outcome = self.send(&alert).await;
            let record = settle(outcome, attempt, self.max_attempts, now);
            match &record {
                Attempt::Delivered { .. } => {
                    tracing::info!(alert = %alert.id, kind = alert.kind.as_str(), attempt, "alert delivered to the webhook");
                }
                Attempt::Failed {
                    retry_at: Some(at),
                    error,
                } => {
                    tracing::warn!(alert = %alert.id, attempt, retry_in_ms = at - now, receiver = %self.target, %error,
                        "alert webhook delivery failed; will retry");
                }
                Attempt::Failed {
                    retry_at: None,
                    error,
                } => {
                    tracing::error!(alert = %alert.id, attempt, receiver = %self.target, %error,
                        "alert webhook delivery failed for the last time; the alert stays listed at GET /v1/alerts");
                }
            }
            let recorded = store.alert_attempt(&alert.id, &claim, record.clone()).await?;
            if !recorded {
                tracing::warn!(alert = %alert.id, attempt,
                    "the claim on this alert's delivery was lost: its outcome is not recorded");
            }
            metrics::counter!("anshin_alert_webhook_deliveries_total", "outcome" => done.count(&record, recorded))
                .increment(1);
        }
        Ok(done)
    }

    /// One POST of an audit alert.
    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), String> {
        let body = serde_json::to_vec(&AlertNotification::from(alert)).map_err(|e| e.to_string())?;
        self.post(body).await
    }

    /// One signed POST of a JSON body (also `anshin integrity`'s alerts);
    /// `Err` describes the failure in our words.
    pub async fn post(&self, body: Vec<u8>) -> std::result::Result<(), String> {
        self.sender.post(&self.url, &[&self.key], body).await
    }
}
