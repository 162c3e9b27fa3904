//! Payment webhooks: anshin tells a shop's server of its payments' events.
//!
//! - Each shop has at most one endpoint (`PUT /v1/shops/{id}/webhook`, by an
//!   operator of its tenant or the shop itself): an HTTPS URL and the event
//!   types it wants. anshin generates the signing secret, shows it once (on
//!   creation and on each rotation), and keeps it sealed under an
//!   installation key wrapped by the root key. A rotation keeps signing with
//!   the previous secret too for [`ROTATION_OVERLAP_MS`], so the shop can
//!   switch without losing a delivery.
//! - Events come from the outbox `payment_events`, which database triggers
//!   fill in the statement that changes a payment (see the migration), so an
//!   event is as durable as the change itself and the payment path writes
//!   nothing more. Each event carries the payment's view (as
//!   `GET /v1/payments/{id}` shows it) at that change.
//! - Delivery ([`PaymentWebhooks`], in every `anshin serve`) signs, retries
//!   and claims as [`crate::webhook`] describes: at least once, each payment's
//!   events in order. The body holds no card data beyond the view's token.
//! - The shop chooses the URL, so where it points is checked twice: its form
//!   when it is set ([`check_url`]: HTTPS, no internal address literal), and
//!   at each attempt the addresses its name resolves to, connecting only to
//!   a public one (loopback too where `payment_webhook_allow_loopback` is
//!   set). A refused address fails the attempt with `destination_refused`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::SecretString;
use anshin_crypto::webhook::WebhookKey;
use aws_lc_rs::digest;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use utoipa::ToSchema;

use super::payments::PaymentView;
use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::ShopRow;
use crate::db::checkout::{PaymentRow, PaymentState};
use crate::db::webhooks::{ENDPOINT_REMOVED, EndpointRow, PaymentEventRow};
use crate::error::{Error, Result};
use crate::ids::{PaymentId, ShopId, parse_or_404};
use crate::net::NetworkPolicy;
use crate::webhook::{
    Attempt, CLAIM_MS, CONNECT_TIMEOUT, Claim, Deliveries, RESPONSE_TIMEOUT, Receiver, Sender, UrlProblem,
    check_url, settle,
};

/// Version of the event body ([`PaymentEventBody`]).
pub const EVENT_VERSION: u32 = 1;
/// How long the previous secret keeps signing after a rotation (24 h).
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;
/// Delivery attempts per event: with the backoff (1 s doubling to 1 h) about
/// a day of retries (see the test below).
pub const MAX_ATTEMPTS: u32 = 40;
/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Events claimed per round. A round costs two commits (the claim, then the
/// outcomes) whatever its size: with 32 a round, delivery fell behind the
/// payments under load (620–900 events/s against 2,900–4,600
/// authorizations/s on SQLite, `anshin bench --payments-only --clients 128`).
const BATCH: u32 = 128;
/// Sends in flight at once within a round: what a shop's receiver sees.
const SENDS_IN_FLIGHT: usize = 64;
// A round, every send timing out, ends well within its claim: no other node
// sends its events meanwhile.
const _: () = assert!(
    (BATCH as u64).div_ceil(SENDS_IN_FLIGHT as u64)
        * (CONNECT_TIMEOUT.as_millis() + RESPONSE_TIMEOUT.as_millis()) as u64
        <= CLAIM_MS as u64 / 2
);
/// How often due events are looked for.
const POLL: Duration = Duration::from_secs(1);
/// How long events are kept once delivered or given up (30 days).
const KEEP_MS: i64 = 30 * 24 * 3_600_000;
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Name of the installation key that seals endpoint secrets.
pub(crate) const SEALING_KEY: &str = "payment_webhook_secrets";

/// A payment event's type. The names are stable: shops switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEventType {
    /// Authorized (after 3-D Secure, too).
    Authorized,
    /// Declined by the issuer or the processor.
    Declined,
    /// A 3-D Secure challenge must be shown to the shopper.
    ChallengeRequired,
    /// The processor refused the request itself.
    Failed,
    /// Captured (all or part; also an authorization captured at once).
    Captured,
    /// Voided.
    Voided,
    /// Refunded (all or part; one event per refund).
    Refunded,
}

impl PaymentEventType {
    /// Every type, in documentation order.
    pub const ALL: [Self; 7] = [
        Self::Authorized,
        Self::Declined,
        Self::ChallengeRequired,
        Self::Failed,
        Self::Captured,
        Self::Voided,
        Self::Refunded,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "payment.authorized",
            Self::Declined => "payment.declined",
            Self::ChallengeRequired => "payment.challenge_required",
            Self::Failed => "payment.failed",
            Self::Captured => "payment.captured",
            Self::Voided => "payment.voided",
            Self::Refunded => "payment.refunded",
        }
    }

    /// The inverse of [`PaymentEventType::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The event a payment's change to `status` is.
    pub fn of_status(status: &str) -> Option<Self> {
        Some(match status {
            "authorized" => Self::Authorized,
            "declined" => Self::Declined,
            "challenge_required" => Self::ChallengeRequired,
            "failed" => Self::Failed,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "partially_refunded" | "refunded" => Self::Refunded,
            _ => return None,
        })
    }
}

/// A shop's webhook endpoint as set through the API.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where events are POSTed: `https://…` (plain HTTP only to loopback,
    /// where the configuration allows it).
    pub url: String,
    /// The event types to send (default: all).
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// A shop's webhook endpoint. The secret is in the answer only when it was
/// just generated (creation, rotation): store it then.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// The shop.
    pub shop_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types sent.
    pub events: Vec<String>,
    /// The signing secret (`whsec_…`), shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<WebhookSecret>,
    /// Until when the previous secret also signs (RFC 3339), after a rotation.
    pub previous_secret_expires_at: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// A freshly generated signing secret: serialised into the one answer that
/// shows it, never printed by `Debug`.
pub struct WebhookSecret(SecretString);

impl Serialize for WebhookSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The body POSTed for a payment event, signed in `Anshin-Signature`.
/// Version 1; fields are only ever added within a version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentEventBody {
    /// The event's id (`pev_…`), the same on every delivery of it: deduplicate on it.
    pub id: String,
    /// `payment.authorized`, `payment.declined`, `payment.challenge_required`,
    /// `payment.failed`, `payment.captured`, `payment.voided` or `payment.refunded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the payment changed (RFC 3339, milliseconds).
    pub created: String,
    /// Schema version, 1.
    pub version: u32,
    /// What changed.
    pub data: PaymentEventData,
}

/// The payment of an event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentEventData {
    /// The payment as it was right after the change.
    pub payment: PaymentView,
}

/// The endpoint secrets' sealing key, unwrapped once per process.
#[derive(Default)]
pub struct WebhookState {
    sealing: OnceCell<AeadKey>,
}

fn secret_context(shop: &ShopId) -> Context {
    Context::new("anshin.payment-webhook-secret.v1").part(shop.as_str().as_bytes())
}

/// A new signing secret: `whsec_` and 256 random bits.
fn new_secret() -> Result<SecretString> {
    let key = anshin_crypto::secret::KeyBytes::generate()?;
    Ok(SecretString::new(format!(
        "whsec_{}",
        data_encoding::BASE32_NOPAD
            .encode(key.expose())
            .to_ascii_lowercase()
    )))
}

/// The stable id of the event at `seq` of `payment`: derived, so every node
/// and every retry sends the same one.
fn event_id(event: &PaymentEventRow) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"anshin.payment-event.v1\0");
    ctx.update(event.payment_id.as_str().as_bytes());
    ctx.update(&event.seq.to_be_bytes());
    let hash = ctx.finish();
    format!(
        "pev_{}",
        data_encoding::BASE32_NOPAD
            .encode(&hash.as_ref()[..16])
            .to_ascii_lowercase()
    )
}

fn url_error(problem: UrlProblem) -> Error {
    let message = match problem {
        UrlProblem::Malformed => "url must be an absolute https:// URL",
        UrlProblem::Credentials => "url must not carry a user name or password; check the signature instead",
        UrlProblem::NotHttps => {
            "url must be https:// (plain http:// only to loopback where the configuration allows it)"
        }
        UrlProblem::Internal => "url must not be an address of a private or internal network",
    };
    Error::invalid("webhook_url_invalid", message).with_param("url")
}

/// The event types asked for: known names, at least one, sorted and unique.
fn event_types(events: Option<Vec<String>>) -> Result<Vec<String>> {
    let Some(events) = events else {
        return Ok(PaymentEventType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect());
    };
    let bad = || {
        let names: Vec<&str> = PaymentEventType::ALL.iter().map(|t| t.as_str()).collect();
        Error::invalid(
            "webhook_events_invalid",
            format!("events must be a non-empty list of {}", names.join(", ")),
        )
        .with_param("events")
    };
    if events.is_empty() || events.iter().any(|e| PaymentEventType::parse(e).is_none()) {
        return Err(bad());
    }
    let mut events = events;
    events.sort();
    events.dedup();
    Ok(events)
}

impl App {
    async fn webhook_sealing(&self) -> Result<&AeadKey> {
        self.checkout
            .webhooks
            .sealing
            .get_or_try_init(|| async {
                let material = self.keyring.installation_key(&self.store, SEALING_KEY).await?;
                Ok(AeadKey::new(&material)?)
            })
            .await
    }

    /// The shop `id` if the actor may manage its webhook (else 404 or 403).
    async fn webhook_shop(&self, actor: &Actor, id: &str, event: &mut Event) -> Result<ShopRow> {
        actor.require(Action::ManageWebhooks)?;
        let id = parse_or_404(ShopId::parse, id, "shop")?;
        let scope = actor.scope();
        let shop = self
            .store
            .shop(&id)
            .await?
            .filter(|s| actor.sees_tenant(&s.tenant_id) && scope.shop.is_none_or(|own| own == &s.id))
            .ok_or_else(|| Error::not_found("shop"))?;
        event.tenant(&shop.tenant_id).resource(&shop.id);
        Ok(shop)
    }

    async fn endpoint_of(&self, shop: &ShopId) -> Result<EndpointRow> {
        self.store
            .webhook(shop)
            .await?
            .ok_or_else(|| Error::not_found("webhook"))
    }

    fn webhook_view(&self, row: &EndpointRow, secret: Option<SecretString>) -> WebhookView {
        WebhookView {
            shop_id: row.shop_id.to_string(),
            url: row.url.clone(),
            events: row.events.clone(),
            secret: secret.map(WebhookSecret),
            previous_secret_expires_at: row
                .previous_until
                .filter(|until| *until > clock::now_ms())
                .map(clock::rfc3339),
            created_at: clock::rfc3339(row.created_at),
            updated_at: clock::rfc3339(row.updated_at),
        }
    }

    /// Creates or changes a shop's webhook endpoint; the answer carries the
    /// new secret when it was created (`true`).
    pub async fn put_webhook(
        &self,
        actor: &Actor,
        shop: &str,
        input: WebhookInput,
    ) -> Result<(WebhookView, bool)> {
        self.audited(actor, EventKind::WebhookWrite, async |event| {
            let shop = self.webhook_shop(actor, shop, event).await?;
            if input.url.len() > MAX_URL_LEN {
                return Err(Error::invalid(
                    "webhook_url_invalid",
                    format!("url must be at most {MAX_URL_LEN} bytes"),
                )
                .with_param("url"));
            }
            let loopback = self.checkout.settings().webhook_loopback;
            check_url(&input.url, Receiver::Shop { loopback }).map_err(url_error)?;
            let events = event_types(input.events)?;
            let sealing = self.webhook_sealing().await?;
            self.record_now(actor, event).await?;
            let now = clock::now_ms();
            if !self
                .store
                .webhook_update(&shop.id, input.url.clone(), events.clone(), now)
                .await?
            {
                let secret = new_secret()?;
                let row = EndpointRow {
                    shop_id: shop.id.clone(),
                    tenant_id: shop.tenant_id.clone(),
                    url: input.url,
                    events,
                    secret: sealing.seal(&secret_context(&shop.id), secret.expose().as_bytes())?,
                    previous_secret: None,
                    previous_until: None,
                    created_at: now,
                    updated_at: now,
                };
                if self.store.webhook_insert(row.clone()).await? {
                    return Ok((self.webhook_view(&row, Some(secret)), true));
                }
                // Created by a concurrent request meanwhile: this one changes it.
                self.store
                    .webhook_update(&shop.id, row.url, row.events, now)
                    .await?;
            }
            let row = self.endpoint_of(&shop.id).await?;
            Ok((self.webhook_view(&row, None), false))
        })
        .await
    }

    /// A shop's webhook endpoint (never its secret).
    pub async fn webhook(&self, actor: &Actor, shop: &str) -> Result<WebhookView> {
        self.audited(actor, EventKind::WebhookRead, async |event| {
            let shop = self.webhook_shop(actor, shop, event).await?;
            let row = self.endpoint_of(&shop.id).await?;
            Ok(self.webhook_view(&row, None))
        })
        .await
    }

    /// Removes a shop's webhook endpoint; its undelivered events are given up.
    pub async fn delete_webhook(&self, actor: &Actor, shop: &str) -> Result<()> {
        self.audited(actor, EventKind::WebhookDelete, async |event| {
            let shop = self.webhook_shop(actor, shop, event).await?;
            self.record_now(actor, event).await?;
            if self.store.webhook_delete(&shop.id).await? {
                Ok(())
            } else {
                Err(Error::not_found("webhook"))
            }
        })
        .await
    }

    /// Gives a shop's endpoint a new secret (in the answer, once); the
    /// current one keeps signing too for [`ROTATION_OVERLAP_MS`].
    pub async fn rotate_webhook_secret(&self, actor: &Actor, shop: &str) -> Result<WebhookView> {
        self.audited(actor, EventKind::WebhookRotate, async |event| {
            let shop = self.webhook_shop(actor, shop, event).await?;
            let row = self.endpoint_of(&shop.id).await?;
            let sealing = self.webhook_sealing().await?;
            let secret = new_secret()?;
            let sealed = sealing.seal(&secret_context(&shop.id), secret.expose().as_bytes())?;
            self.record_now(actor, event).await?;
            let now = clock::now_ms();
            let until = now + ROTATION_OVERLAP_MS;
            if !self
                .store
                .webhook_rotate(&shop.id, sealed.clone(), row.secret.clone(), until, now)
                .await?
            {
                return Err(Error::not_found("webhook"));
            }
            let rotated = EndpointRow {
                secret: sealed,
                previous_secret: Some(row.secret.clone()),
                previous_until: Some(until),
                updated_at: now,
                ..row
            };
            Ok(self.webhook_view(&rotated, Some(secret)))
        })
        .await
    }
}

/// An endpoint ready to send to.
struct Target {
    url: Uri,
    /// Scheme and authority only, for logs.
    receiver: String,
    events: Vec<String>,
    /// The current secret, and the previous one during a rotation.
    keys: Arc<Vec<WebhookKey>>,
}

/// What to do with one claimed event.
enum Plan {
    Send {
        target: Arc<Target>,
        body: Vec<u8>,
    },
    /// Not sent: recorded as given up with this reason.
    Drop(String),
}

/// The payment webhook sender of a process.
#[derive(Default)]
pub struct PaymentWebhooks {
    /// The sender for the loopback setting it was built for (rebuilt when
    /// the setting changes: its policy decides where connections go).
    sender: Mutex<Option<(bool, Arc<Sender>)>>,
}

impl PaymentWebhooks {
    /// A sender over the system's trusted roots, to public addresses (and
    /// loopback where the checkout settings allow it).
    pub fn new() -> Self {
        Self::default()
    }

    fn sender(&self, loopback: bool) -> Arc<Sender> {
        let mut slot = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*slot {
            Some((built_for, sender)) if *built_for == loopback => sender.clone(),
            _ => {
                let policy = NetworkPolicy::public_and_loopback(loopback);
                let sender = Arc::new(Sender::new(Arc::new(policy)));
                *slot = Some((loopback, sender.clone()));
                sender
            }
        }
    }

    /// Sends every event due at `now` (ms) once, concurrently, and records
    /// each outcome. Events not to be sent (a type the endpoint does not
    /// take, an endpoint removed meanwhile) count as given up. An event
    /// behind an earlier one of its payment waits for the next round; one
    /// the round's claim no longer leaves time for waits for its expiry.
    pub async fn deliver_due(&self, app: &App, now: i64) -> Result<Deliveries> {
        let mut done = Deliveries::default();
        let claim = Arc::new(Claim::new(now)?);
        let due = app.store.payment_events_claim_due(&claim, BATCH).await?;
        let ids: BTreeSet<PaymentId> = due.iter().map(|e| e.payment_id.clone()).collect();
        let payments: HashMap<PaymentId, PaymentRow> = if ids.is_empty() {
            HashMap::new()
        } else {
            app.store
                .payments(ids.into_iter().collect())
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect()
        };
        let sender = self.sender(app.checkout.settings().webhook_loopback);
        let mut targets: HashMap<ShopId, Option<Arc<Target>>> = HashMap::new();
        let mut sends = JoinSet::new();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(SENDS_IN_FLIGHT));
        let mut dropped = Vec::new();
        for event in due {
            let target = match targets.get(&event.shop_id) {
                Some(target) => target.clone(),
                None => {
                    let target = self.target(app, &event.shop_id).await?.map(Arc::new);
                    targets.insert(event.shop_id.clone(), target.clone());
                    target
                }
            };
            match self.plan(app, &event, target, &payments).await? {
                Plan::Send { target, body } => {
                    let (sender, claim, in_flight) = (sender.clone(), claim.clone(), in_flight.clone());
                    sends.spawn(async move {
                        let _permit = in_flight.acquire_owned().await;
                        // Checked once the send may start: waiting for a slot takes time.
                        if !claim.can_send() {
                            return (event, target, None);
                        }
                        let keys: Vec<&WebhookKey> = target.keys.iter().collect();
                        let result = sender.post(&target.url, &keys, body).await;
                        (event, target, Some(result))
                    });
                }
                Plan::Drop(reason) => dropped.push((event, reason)),
            }
        }
        let mut attempts = Vec::with_capacity(dropped.len() + sends.len());
        for (event, reason) in dropped {
            tracing::debug!(payment = %event.payment_id, reason, "payment event not sent");
            attempts.push((
                event.seq,
                Attempt::Failed {
                    retry_at: None,
                    error: reason,
                },
            ));
        }
        while let Some(joined) = sends.join_next().await {
            let (event, target, result) = joined.map_err(Error::internal)?;
            let Some(result) = result else {
                tracing::debug!(payment = %event.payment_id, "payment event left for after its claim expires");
                continue;
            };
            let attempt = event.attempts.saturating_add(1);
            let record = settle(result, attempt, MAX_ATTEMPTS, now);
            match &record {
                Attempt::Delivered { .. } => {
                    tracing::debug!(payment = %event.payment_id, shop = %event.shop_id, attempt, "payment event delivered");
                }
                Attempt::Failed {
                    retry_at: Some(at),
                    error,
                } => {
                    tracing::info!(payment = %event.payment_id, shop = %event.shop_id, attempt, retry_in_ms = at - now,
                        receiver = %target.receiver, %error, "payment webhook delivery failed; will retry");
                }
                Attempt::Failed {
                    retry_at: None,
                    error,
                } => {
                    tracing::warn!(payment = %event.payment_id, shop = %event.shop_id, attempt,
                        receiver = %target.receiver, %error, "payment webhook delivery failed for the last time");
                }
            }
            attempts.push((event.seq, record));
        }
        // Until this commits the events stay claimed (for CLAIM_MS), so a
        // failure here means they are sent again: at least once.
        let recorded = app.store.payment_event_attempts(&claim, attempts.clone()).await?;
        for ((seq, record), recorded) in attempts.iter().zip(recorded) {
            if !recorded {
                tracing::warn!(
                    seq,
                    "the claim on this payment event was lost: its outcome is not recorded"
                );
            }
            metrics::counter!("anshin_payment_webhook_deliveries_total", "outcome" => done.count(record, recorded))
                .increment(1);
        }
        Ok(done)
    }

    /// The shop's endpoint with its secrets opened, if it has one.
    async fn target(&self, app: &App, shop: &ShopId) -> Result<Option<Target>> {
        let Some(row) = app.store.webhook(shop).await? else {
            return Ok(None);
        };
        let sealing = app.webhook_sealing().await?;
        let context = secret_context(shop);
        let mut keys = Vec::with_capacity(2);
        let previous = row
            .previous_secret
            .as_ref()
            .filter(|_| row.previous_until.is_some_and(|until| until > clock::now_ms()));
        for sealed in std::iter::once(&row.secret).chain(previous) {
            let secret = sealing.open(&context, sealed)?;
            keys.push(WebhookKey::new(secret.expose()).map_err(Error::internal)?);
        }
        Ok(Some(Target {
            url: row.url.parse().map_err(Error::internal)?,
            receiver: crate::config::redact_webhook_url(&row.url),
            events: row.events,
            keys: Arc::new(keys),
        }))
    }

    /// What to do with `event`, given its shop's endpoint and the round's
    /// payments (read together: one read per event held a round up behind
    /// the clients' queries for the connection pool).
    async fn plan(
        &self,
        app: &App,
        event: &PaymentEventRow,
        target: Option<Arc<Target>>,
        payments: &HashMap<PaymentId, PaymentRow>,
    ) -> Result<Plan> {
        let Some(target) = target else {
            return Ok(Plan::Drop(ENDPOINT_REMOVED.to_owned()));
        };
        let Some(kind) = PaymentEventType::of_status(&event.status) else {
            return Ok(Plan::Drop(format!("no event for status {}", event.status)));
        };
        if !target.events.iter().any(|e| e == kind.as_str()) {
            return Ok(Plan::Drop(format!(
                "the endpoint does not take {}",
                kind.as_str()
            )));
        }
        let loopback = app.checkout.settings().webhook_loopback;
        if let Err(problem) = check_url(&target.url.to_string(), Receiver::Shop { loopback }) {
            return Ok(Plan::Drop(url_error(problem).message().to_owned()));
        }
        let Some(payment) = payments.get(&event.payment_id).cloned() else {
            return Ok(Plan::Drop("the payment no longer exists".to_owned()));
        };
        let at_event = PaymentRow {
            state: PaymentState {
                status: event.status.clone(),
                decline_code: event.decline_code.clone(),
                processor_reference: event.processor_reference.clone(),
                challenge_url: event.challenge_url.clone(),
                amount_captured: event.amount_captured,
                amount_refunded: event.amount_refunded,
                updated_at: event.created_at,
                ..payment.state.clone()
            },
            ..payment
        };
        let body = PaymentEventBody {
            id: event_id(event),
            kind: kind.as_str().to_owned(),
            created: clock::rfc3339_millis(event.created_at),
            version: EVENT_VERSION,
            data: PaymentEventData {
                payment: app.payment_view(&at_event),
            },
        };
        Ok(Plan::Send {
            target,
            body: serde_json::to_vec(&body).map_err(Error::internal)?,
        })
    }

    /// Delivers due events every second (round after round while there are
    /// any, so a payment's later events follow at once) and prunes old ones
    /// every hour, as long as the process runs (`anshin serve`; every node may).
    pub async fn run(self, app: Arc<App>) {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned = tokio::time::Instant::now();
        loop {
            ticker.tick().await;
            loop {
                match self.deliver_due(&app, clock::now_ms()).await {
                    Ok(round) if round == Deliveries::default() => break,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = ?err, "payment webhook delivery round failed; will retry");
                        break;
                    }
                }
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = tokio::time::Instant::now();
                match app.store.payment_events_prune(clock::now_ms() - KEEP_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(events = n, "old payment events pruned"),
                    Err(err) => tracing::warn!(error = ?err, "payment event pruning failed; will retry"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::backoff_ms;

    #[test]
    fn every_status_but_pending_is_an_event() {
        for (status, kind) in [
            ("authorized", "payment.authorized"),
            ("declined", "payment.declined"),
            ("challenge_required", "payment.challenge_required"),
            ("failed", "payment.failed"),
            ("captured", "payment.captured"),
            ("voided", "payment.voided"),
            ("partially_refunded", "payment.refunded"),
            ("refunded", "payment.refunded"),
        ] {
            assert_eq!(
                PaymentEventType::of_status(status).map(|t| t.as_str()),
                Some(kind)
            );
            assert_eq!(PaymentEventType::parse(kind).map(|t| t.as_str()), Some(kind));
        }
        assert_eq!(PaymentEventType::of_status("pending"), None);
        assert_eq!(PaymentEventType::parse("payment.pending"), None);
    }

    #[test]
    fn event_types_are_checked_and_canonical() {
        assert_eq!(event_types(None).expect("all").len(), 7);
        assert_eq!(
            event_types(Some(vec![
                "payment.refunded".into(),
                "payment.captured".into(),
                "payment.refunded".into()
            ]))
            .expect("ok"),
            vec!["payment.captured", "payment.refunded"]
        );
        for bad in [
            vec![],
            vec!["payment.settled".to_owned()],
            vec!["PAYMENT.CAPTURED".to_owned()],
        ] {
            assert_eq!(
                event_types(Some(bad)).err().map(|e| e.code()),
                Some("webhook_events_invalid")
            );
        }
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let event = |seq| PaymentEventRow {
            seq,
            payment_id: PaymentId::parse("pay_aaaaaaaaaaaaaaaaaaaaaaaaaa").expect("id"),
            shop_id: ShopId::parse("shop_bbbbbbbbbbbbbbbbbbbbbbbbbb").expect("id"),
            status: "authorized".into(),
            decline_code: None,
            processor_reference: None,
            challenge_url: None,
            amount_captured: 0,
            amount_refunded: 0,
            created_at: 0,
            attempts: 0,
        };
        assert_eq!(event_id(&event(1)), event_id(&event(1)));
        assert_ne!(event_id(&event(1)), event_id(&event(2)));
        assert!(anshin_crypto::token::is_token("pev", &event_id(&event(1))));
    }

    #[test]
    fn deliveries_are_retried_for_about_a_day() {
        let attempts = 1..MAX_ATTEMPTS;
        let shortest: i64 = attempts.clone().map(|a| backoff_ms(a, 0)).sum();
        let longest: i64 = attempts
            .map(|a| (1000i64 << (a - 1).min(32)).min(3_600_000))
            .sum();
        assert!(shortest >= 12 * 3_600_000, "{shortest}");
        assert!(longest <= 30 * 3_600_000, "{longest}");
    }

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        let secret = new_secret().expect("rng");
        assert!(secret.expose().starts_with("whsec_"));
        assert!(secret.expose().len() >= anshin_crypto::webhook::MIN_SECRET_LEN);
        let shown = WebhookSecret(secret);
        assert!(!format!("{shown:?}").contains("whsec_"));
    }
}
