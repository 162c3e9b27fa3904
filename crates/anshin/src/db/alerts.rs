//! Storage of security alerts: the alerts themselves with their webhook
//! delivery state, and the detectors' cursor in the audit log.
//!
//! The cursor is held by one node at a time under a lease
//! ([`Store::alert_cursor_claim`]) and moved compare-and-swap in the same
//! transaction that stores the alerts the examined entries raised
//! ([`Store::alert_cursor_advance`]): each entry is examined once, and an alert
//! is never lost between its detection and its storage. Alerts are unique by
//! their dedup key, so a condition seen twice (two nodes watching the
//! checkpoint) is stored once.

use super::{Store, StoreError};
use crate::audit::detect::{AlertKind, Severity};
use crate::ids::AlertId;
use crate::webhook::{Attempt, Claim};

/// An alert to store.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Its id.
    pub id: AlertId,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The tenant concerned.
    pub tenant_id: Option<String>,
    /// The principal concerned.
    pub principal_id: Option<String>,
    /// Ids, counts and codes only.
    pub summary: String,
    /// Audit entry indexes.
    pub evidence: Vec<u64>,
    /// One condition, one key.
    pub dedup_key: String,
    /// When the condition was seen (ms).
    pub observed_at: i64,
    /// When the alert was stored (ms).
    pub created_at: i64,
    /// When to send it first; `None` when no webhook is configured.
    pub next_attempt_at: Option<i64>,
}

/// A stored alert.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// Listing order (the `after` cursor).
    pub seq: i64,
    /// Its id.
    pub id: AlertId,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The tenant concerned.
    pub tenant_id: Option<String>,
    /// The principal concerned.
    pub principal_id: Option<String>,
    /// Ids, counts and codes only.
    pub summary: String,
    /// Audit entry indexes.
    pub evidence: Vec<u64>,
    /// One condition, one key.
    pub dedup_key: String,
    /// When the condition was seen (ms).
    pub observed_at: i64,
    /// When the alert was stored (ms).
    pub created_at: i64,
    /// Webhook deliveries tried.
    pub attempts: u32,
    /// When the webhook took it.
    pub delivered_at: Option<i64>,
    /// When the next delivery is due; `None` once delivered or given up, or
    /// when no webhook was configured.
    pub next_attempt_at: Option<i64>,
    /// Why the last delivery failed (our words, never the receiver's body).
    pub last_error: Option<String>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this tenant's (tenant-scoped keys); `None`: every alert.
    pub tenant_id: Option<String>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Created at or after (ms).
    pub since_ms: Option<i64>,
    /// After this cursor (exclusive), from [`AlertPage::next`].
    pub after: Option<i64>,
    /// Most alerts to return.
    pub limit: u32,
}

/// A page of alerts, oldest first.
#[derive(Debug, Clone)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertRow>,
    /// Cursor for the next page, when the page was full.
    pub next: Option<i64>,
}

/// Evidence as stored: a JSON array of indexes.
pub(super) fn evidence_text(evidence: &[u64]) -> String {
    serde_json::to_string(evidence).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn evidence_from(text: &str) -> Result<Vec<u64>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("alert evidence"))
}

pub(super) fn kind_from(text: &str) -> Result<AlertKind, StoreError> {
    AlertKind::parse(text).ok_or(StoreError::Corrupt("unknown alert kind"))
}

pub(super) fn severity_from(text: &str) -> Result<Severity, StoreError> {
    Severity::parse(text).ok_or(StoreError::Corrupt("unknown alert severity"))
}

pub(super) fn attempts_from(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt("alert attempts out of range"))
}

impl Store {
    /// Takes or renews the detectors' lease for `owner` until `now + lease_ms`
    /// and returns the cursor, or `None` while another owner's lease runs.
    pub async fn alert_cursor_claim(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        dispatch!(self.alert_cursor_claim(owner, now, lease_ms))
    }

    /// Moves the cursor from `from` to `to` and stores `alerts` (those whose
    /// dedup key is new), in one transaction; false, and nothing stored, unless
    /// `owner` still holds the lease at `from`.
    pub async fn alert_cursor_advance(
        &self,
        owner: &str,
        from: u64,
        to: u64,
        lease_until: i64,
        alerts: Vec<NewAlert>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.alert_cursor_advance(owner, from, to, lease_until, alerts))
    }

    /// Stores one alert unless its dedup key is taken; true if stored.
    pub async fn alert_insert(&self, alert: NewAlert) -> Result<bool, StoreError> {
        dispatch!(self.alert_insert(alert))
    }

    /// A page of alerts matching `filter`, oldest first.
    pub async fn alerts_find(&self, filter: AlertFilter) -> Result<AlertPage, StoreError> {
        dispatch!(self.alerts_find(filter))
    }

    /// Up to `limit` alerts whose delivery is due at the claim's start, each
    /// marked with its token and pushed back to its expiry so no other node
    /// sends it meanwhile.
    pub async fn alerts_claim_due(&self, claim: &Claim, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        dispatch!(self.alerts_claim_due(claim, limit))
    }

    /// Records a delivery attempt made under `claim`; false, and nothing
    /// written, when the alert no longer carries the claim or it has expired.
    pub async fn alert_attempt(
        &self,
        id: &AlertId,
        claim: &Claim,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        dispatch!(self.alert_attempt(id, claim, attempt))
    }

    /// Whether committed entries still wait for their place in the log
    /// (PostgreSQL; SQLite places entries as it writes them).
    pub async fn audit_unsequenced(&self) -> Result<bool, StoreError> {
        dispatch!(self.audit_unsequenced())
    }

    /// The time (ms) of the entry at `index`, if it exists.
    pub async fn audit_entry_time(&self, index: u64) -> Result<Option<i64>, StoreError> {
        dispatch!(self.audit_entry_time(index))
    }

    /// The first index below `end` whose entry is at or after `time_ms`
    /// (`end` if none): where a replay of the log since a time starts. A binary
    /// search over point reads by index, which relies on entry times rising
    /// with the index; nodes' clocks may disagree by a little, which only
    /// moves the start by as much.
    pub async fn audit_index_at(&self, time_ms: i64, end: u64) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (0u64, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.audit_entry_time(mid).await? {
                Some(t) if t < time_ms => lo = mid + 1,
                Some(_) => hi = mid,
                None => return Err(StoreError::Corrupt("audit entries missing")),
            }
        }
        Ok(lo)
    }
}
