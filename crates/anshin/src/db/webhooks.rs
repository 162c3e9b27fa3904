//! Storage of the shops' payment webhook endpoints and of the payment events
//! for them (the outbox).
//!
//! Events are never written by this code: database triggers (migration
//! `payment_webhooks`) insert one in the statement that changes a payment's
//! status or amounts, for shops with an endpoint. Here they are claimed for
//! delivery, their attempts recorded and old ones pruned.

use super::{Store, StoreError};
use crate::ids::{PaymentId, ShopId, TenantId};
use crate::webhook::{Attempt, Claim};

/// A shop's webhook endpoint as stored.
#[derive(Clone)]
pub struct EndpointRow {
    /// The shop.
    pub shop_id: ShopId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Where events are POSTed.
    pub url: String,
    /// The event types sent.
    pub events: Vec<String>,
    /// The signing secret, sealed.
    pub secret: Vec<u8>,
    /// The secret before the last rotation, sealed; it signs too until `previous_until`.
    pub previous_secret: Option<Vec<u8>>,
    /// End of the rotation's overlap (ms).
    pub previous_until: Option<i64>,
    /// When it was created (ms).
    pub created_at: i64,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// One payment event: the state a payment changed to, and its delivery.
#[derive(Debug, Clone)]
pub struct PaymentEventRow {
    /// Order of the events (per payment, the order of its changes).
    pub seq: i64,
    /// The payment.
    pub payment_id: PaymentId,
    /// Its shop, whose endpoint the event goes to.
    pub shop_id: ShopId,
    /// The status it changed to.
    pub status: String,
    /// The processor's decline code.
    pub decline_code: Option<String>,
    /// The processor's id for it.
    pub processor_reference: Option<String>,
    /// The 3-D Secure challenge page.
    pub challenge_url: Option<String>,
    /// Captured so far.
    pub amount_captured: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    /// When the change happened (ms).
    pub created_at: i64,
    /// Deliveries tried.
    pub attempts: u32,
}

pub(super) fn events_text(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn events_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("webhook event types"))
}

pub(super) fn attempts_from(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt("webhook attempts out of range"))
}

/// The last error [`Store::webhook_delete`] records on the events it gives up.
pub const ENDPOINT_REMOVED: &str = "the shop's webhook endpoint was removed";

impl Store {
    /// Stores a new endpoint; false (and nothing changed) if the shop has one.
    pub async fn webhook_insert(&self, row: EndpointRow) -> Result<bool, StoreError> {
        dispatch!(self.webhook_insert(row))
    }

    /// Changes an endpoint's URL and event types; false if the shop has none.
    pub async fn webhook_update(
        &self,
        shop: &ShopId,
        url: String,
        events: Vec<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.webhook_update(shop, url, events, now))
    }

    /// Replaces an endpoint's secret, keeping the current one as the
    /// previous until `previous_until`; false if the shop has none.
    pub async fn webhook_rotate(
        &self,
        shop: &ShopId,
        secret: Vec<u8>,
        previous: Vec<u8>,
        previous_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.webhook_rotate(shop, secret, previous, previous_until, now))
    }

    /// A shop's endpoint.
    pub async fn webhook(&self, shop: &ShopId) -> Result<Option<EndpointRow>, StoreError> {
        dispatch!(self.webhook(shop))
    }

    /// Removes a shop's endpoint and gives up its undelivered events, in one
    /// transaction; false if it had none.
    pub async fn webhook_delete(&self, shop: &ShopId) -> Result<bool, StoreError> {
        dispatch!(self.webhook_delete(shop))
    }

    /// Up to `limit` events due at the claim's start, each marked with its
    /// token and pushed back to its expiry so no other node sends it
    /// meanwhile. An event waits while an earlier event of its payment is
    /// still to be delivered, so each payment's events arrive in order.
    pub async fn payment_events_claim_due(
        &self,
        claim: &Claim,
        limit: u32,
    ) -> Result<Vec<PaymentEventRow>, StoreError> {
        dispatch!(self.payment_events_claim_due(claim, limit))
    }

    /// Records the delivery attempts of a round made under `claim` (event
    /// seq, outcome) in one commit: one commit per event would hold a round
    /// to the writer's pace. For each, whether it was written: nothing is
    /// for an event that no longer carries the claim, or once it has expired.
    pub async fn payment_event_attempts(
        &self,
        claim: &Claim,
        attempts: Vec<(i64, Attempt)>,
    ) -> Result<Vec<bool>, StoreError> {
        dispatch!(self.payment_event_attempts(claim, attempts))
    }

    /// Deletes events created before `before` (ms) that are no longer due;
    /// returns how many.
    pub async fn payment_events_prune(&self, before: i64) -> Result<u64, StoreError> {
        dispatch!(self.payment_events_prune(before))
    }
}
