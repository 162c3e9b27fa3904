//! Checkout and the payment proxy (issue 5): the shopper's card goes from the
//! browser straight to anshin and from anshin straight to the processor, so
//! the shop never touches it.
//!
//! - [`sessions`]: checkout sessions (opened by the shop's server, used once
//!   by the shopper's browser), the card submission and the status the hosted
//!   page polls.
//! - [`cvc`]: the security code, held briefly for one authorization.
//! - [`limit`]: per-client rate limits of the shopper-facing routes.
//! - [`routes`]: per-tenant processor and outbound routes (allow-listed
//!   HTTPS upstreams, verified TLS), with [`template`] for processors'
//!   request bodies and the redaction of their answers.
//! - [`payments`]: payments through the processor proxy, idempotent.
//! - [`outbound`]: generic outbound routes (tokens replaced at JSON paths).
//! - [`webhooks`]: shops' payment webhooks (signed, retried, from an outbox).
//!
//! The settings ([`CheckoutSettings`]) come from the configuration
//! (`public_url`, `checkout_session_ttl_secs`, `outbound_allowed_hosts`,
//! `payment_webhook_allow_loopback`).

pub mod cvc;
pub mod limit;
pub mod outbound;
pub mod payments;
pub mod routes;
pub mod sessions;
pub mod template;
pub mod webhooks;

use std::sync::{Arc, RwLock};

use crate::app::App;

/// Default life of a checkout session.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 15 * 60;

/// The checkout settings in force.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    /// The origin shoppers' browsers reach anshin at (`scheme://host[:port]`,
    /// no path): the checkout URLs are built on it, and card submissions must
    /// come from a page of this origin.
    pub public_url: String,
    /// How long a checkout session stays usable.
    pub session_ttl_secs: u64,
    /// Hosts (`host` or `host:port`) routes may send card data to.
    pub allowed_hosts: Vec<String>,
    /// Whether shops' webhook endpoints may be on loopback (tests, the demo).
    pub webhook_loopback: bool,
}

impl Default for CheckoutSettings {
    fn default() -> Self {
        Self {
            public_url: format!("http://{}", crate::config::DEFAULT_LISTEN),
            session_ttl_secs: DEFAULT_SESSION_TTL_SECS,
            allowed_hosts: Vec::new(),
            webhook_loopback: false,
        }
    }
}

/// The checkout's state in the running application.
#[derive(Default)]
pub struct CheckoutState {
    settings: RwLock<Arc<CheckoutSettings>>,
    pub(crate) limits: limit::Limits,
    pub(crate) cvc: cvc::CvcHolds,
    pub(crate) routes: routes::RouteClients,
    pub(crate) webhooks: webhooks::WebhookState,
}

impl CheckoutState {
    /// The settings in force.
    pub fn settings(&self) -> Arc<CheckoutSettings> {
        self.settings
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl App {
    /// Puts checkout settings in force (at start, from the configuration).
    pub fn configure_checkout(&self, settings: CheckoutSettings) {
        let mut slot = self
            .checkout
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Arc::new(settings);
    }

    /// The checkout, for the shopper-facing pages.
    pub fn checkout(&self) -> sessions::Checkout<'_> {
        sessions::Checkout { app: self }
    }
}
