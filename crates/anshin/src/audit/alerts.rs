//! Security alerts: the monitor that runs the detectors ([`super::detect`])
//! over the audit log after each integration round, stores what they raise,
//! lists it at `GET /v1/alerts`, and hands it to the webhook
//! ([`super::webhook`]).
//!
//! One round of the [`Monitor`]:
//!
//! 1. The checkpoint watcher compares the entries appended with the signed
//!    head (every node does this; the alert's dedup key makes it one alert).
//! 2. The detectors' cursor is claimed under a lease, so one node at a time
//!    examines entries. A node whose memory does not end exactly at the cursor
//!    (it just started, or another node held the lease meanwhile) first replays
//!    the 7 days of the log before the cursor without raising anything.
//! 3. Integrated entries from the cursor on are examined in log order, and the
//!    cursor moves compare-and-swap in the transaction that stores the alerts
//!    they raised: each entry is examined once, no alert is lost in between.
//!
//! [`AlertService`] runs rounds and deliveries on tasks of their own, so the
//! integration loop never waits for a detector or a receiver.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use utoipa::{IntoParams, ToSchema};

use super::detect::{AlertDraft, AlertKind, DetectSettings, Detectors, HISTORY_MS, Severity};
use super::view::{page_limit, parse_time};
use super::webhook::Webhook;
use super::{Entry, EventKind, field};
use crate::access::{Action, Actor};
use crate::app::App;
use crate::clock;
use crate::config::AlertConfig;
use crate::db::Store;
use crate::db::alerts::{AlertFilter, AlertRow, NewAlert};
use crate::error::{Error, Result};
use crate::ids::AlertId;

/// Version of the webhook body ([`AlertNotification`]).
pub const NOTIFICATION_VERSION: u32 = 1;
/// How long a monitor holds the detectors' cursor without renewing it.
const LEASE_MS: i64 = 30_000;
/// Most entries one round examines (bounds its time; the next round goes on).
const MAX_ROUND: u64 = 100_000;
/// Entries read per page.
const PAGE: u64 = 2048;
/// Entries replayed between two renewals of the lease (a few seconds' work).
const RENEW_EVERY: u64 = 500_000;
/// How often due deliveries are looked for when nothing wakes the sender.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// An alert as the API lists it and the webhook sends it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertBody {
    /// The alert's id (`alr_…`).
    pub id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The tenant concerned; null for installation-wide alerts (refused keys,
    /// the checkpoint, principals acting across tenants).
    pub tenant_id: Option<String>,
    /// The principal concerned, if one.
    pub principal_id: Option<String>,
    /// What happened, in ids, counts, event names and codes only; page
    /// monitor alerts add the page's address and the difference (script
    /// addresses, hashes, hosts, policy sources), never page content.
    pub summary: String,
    /// Indexes of the audit log entries that show it (`GET /v1/audit/events`,
    /// inclusion proofs).
    pub evidence: Vec<u64>,
    /// Identifies the condition: one alert per condition and window.
    pub dedup_key: String,
    /// When the condition was seen (RFC 3339).
    pub observed_at: String,
    /// When the alert was raised (RFC 3339).
    pub created_at: String,
}

impl From<&AlertRow> for AlertBody {
    fn from(row: &AlertRow) -> Self {
        Self {
            id: row.id.to_string(),
            kind: row.kind,
            severity: row.severity,
            tenant_id: row.tenant_id.clone(),
            principal_id: row.principal_id.clone(),
            summary: row.summary.clone(),
            evidence: row.evidence.clone(),
            dedup_key: row.dedup_key.clone(),
            observed_at: clock::rfc3339_millis(row.observed_at),
            created_at: clock::rfc3339_millis(row.created_at),
        }
    }
}

/// Where the webhook delivery of an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// No webhook was configured when the alert was raised.
    NotConfigured,
    /// Waiting for its first or next attempt.
    Pending,
    /// The receiver took it.
    Delivered,
    /// Every attempt failed; it stays listed here.
    Failed,
}

/// Webhook delivery of an alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertDelivery {
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the receiver took it (RFC 3339).
    pub delivered_at: Option<String>,
    /// When the next attempt is due (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// An alert with its delivery state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    /// The alert.
    #[serde(flatten)]
    pub alert: AlertBody,
    /// Its webhook delivery.
    pub delivery: AlertDelivery,
}

impl From<&AlertRow> for Alert {
    fn from(row: &AlertRow) -> Self {
        let state = match (row.delivered_at, row.next_attempt_at) {
            (Some(_), _) => DeliveryState::Delivered,
            (None, Some(_)) => DeliveryState::Pending,
            (None, None) if row.attempts > 0 => DeliveryState::Failed,
            (None, None) => DeliveryState::NotConfigured,
        };
        Self {
            alert: AlertBody::from(row),
            delivery: AlertDelivery {
                state,
                attempts: row.attempts,
                delivered_at: row.delivered_at.map(clock::rfc3339_millis),
                next_attempt_at: row.next_attempt_at.map(clock::rfc3339_millis),
                last_error: row.last_error.clone(),
            },
        }
    }
}

/// The body POSTed to the alert webhook, signed in `Anshin-Signature`.
/// Version 1; fields are only ever added within a version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertNotification {
    /// Always `anshin.alert`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Schema version, 1.
    pub version: u32,
    /// The alert. Receivers should deduplicate on `alert.id`: a delivery whose
    /// answer was lost is sent again.
    pub alert: AlertBody,
}

impl From<&AlertRow> for AlertNotification {
    fn from(row: &AlertRow) -> Self {
        Self {
            kind: "anshin.alert".to_owned(),
            version: NOTIFICATION_VERSION,
            alert: AlertBody::from(row),
        }
    }
}

/// Query of the alert listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Alerts raised at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only this kind, such as `volume_above_baseline`.
    pub kind: Option<String>,
    /// Continue after this cursor (`next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// A page of alerts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// The alerts.
    pub alerts: Vec<Alert>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

impl App {
    /// Alerts of the actor's tenant (every alert for global keys), oldest first.
    pub async fn alerts(&self, actor: &Actor, query: AlertQuery) -> Result<AlertList> {
        self.audited(actor, EventKind::AlertRead, async |event| {
            actor.require(Action::ReadAlerts)?;
            event.fields(&[field::AUDIT]);
            if let Some(tenant) = &actor.tenant_id {
                event.tenant(tenant);
            }
            let kind = query
                .kind
                .as_deref()
                .map(|k| {
                    AlertKind::parse(k).ok_or_else(|| {
                        let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                        Error::invalid(
                            "invalid_kind",
                            format!("kind must be one of {}", kinds.join(", ")),
                        )
                    })
                })
                .transpose()?;
            let since_ms = query.since.as_deref().map(parse_time).transpose()?;
            let page = self
                .store
                .alerts_find(AlertFilter {
                    tenant_id: actor.tenant_id.as_ref().map(ToString::to_string),
                    kind,
                    since_ms,
                    after: query.after,
                    limit: page_limit(query.limit)?,
                })
                .await?;
            event.rows(page.alerts.len() as u64);
            Ok(AlertList {
                alerts: page.alerts.iter().map(Alert::from).collect(),
                next_after: page.next,
            })
        })
        .await
    }
}

/// What one monitor round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Entries examined.
    pub examined: u64,
    /// Entries replayed to rebuild the detectors' memory.
    pub replayed: u64,
    /// Alerts raised (before storage drops repeats of a dedup key).
    pub raised: u64,
    /// False when another node holds the detectors' cursor.
    pub holds_cursor: bool,
}

/// Runs the detectors over the log; one per process.
pub struct Monitor {
    owner: String,
    detectors: Detectors,
    /// The log index up to which `detectors` has learned, when that is exactly
    /// the stored cursor's position; `None` when its memory must be rebuilt.
    seen_until: Option<u64>,
    /// Until when this monitor holds the cursor, as far as it knows (ms).
    lease_until: i64,
    /// Whether alerts are queued for a webhook.
    queue: bool,
}

impl Monitor {
    /// A monitor with nothing learned; `queue` marks new alerts for the webhook.
    pub fn new(settings: DetectSettings, queue: bool) -> Result<Self> {
        Ok(Self {
            owner: AlertId::generate()?.to_string().replacen("alr_", "mon_", 1),
            detectors: Detectors::new(settings),
            seen_until: None,
            lease_until: 0,
            queue,
        })
    }

    /// One round at `now` (ms): watch the checkpoint, then examine the
    /// integrated entries past the cursor if this monitor holds it.
    pub async fn run(&mut self, store: &Store, now: i64) -> Result<Round> {
        let mut round = Round::default();
        // Read before the head, so an integration in between cannot look like a stall.
        let appended = store.audit_sequenced().await? + u64::from(store.audit_unsequenced().await?);
        let head = store.audit_head().await?;
        if let Some(draft) =
            self.detectors
                .check_head(now, appended, head.as_ref().map(|h| (h.size, h.updated_at)))
        {
            let alert = self.new_alert(draft, now)?;
            if store.alert_insert(alert.clone()).await? {
                round.raised += 1;
                report(&alert);
            }
        }
        let Some(size) = head.map(|h| h.size) else {
            return Ok(round);
        };
        // Nothing new and the lease far from its end: no write for an idle log.
        if self.seen_until.is_some_and(|seen| size <= seen) && now < self.lease_until - LEASE_MS / 2 {
            round.holds_cursor = true;
            return Ok(round);
        }
        let Some(cursor) = store.alert_cursor_claim(&self.owner, now, LEASE_MS).await? else {
            // Another node examines entries; this memory goes stale.
            self.seen_until = None;
            self.lease_until = 0;
            return Ok(round);
        };
        self.lease_until = now + LEASE_MS;
        round.holds_cursor = true;
        if self.seen_until != Some(cursor) {
            round.replayed = self.rebuild(store, cursor, now).await?;
            if self.seen_until != Some(cursor) {
                // The lease was lost during the replay.
                self.lease_until = 0;
                round.holds_cursor = false;
                return Ok(round);
            }
        }
        let end = size.min(cursor.saturating_add(MAX_ROUND));
        if end <= cursor {
            return Ok(round);
        }
        // Until the cursor has moved, this memory is ahead of it.
        self.seen_until = None;
        let mut drafts = Vec::new();
        self.each_entry(store, cursor, end, |detectors, index, entry| {
            detectors.observe(index, entry, &mut drafts);
        })
        .await?;
        let alerts = drafts
            .into_iter()
            .map(|d| self.new_alert(d, now))
            .collect::<Result<Vec<_>>>()?;
        let raised = alerts.len() as u64;
        let snapshot: Vec<NewAlert> = alerts.clone();
        if store
            .alert_cursor_advance(&self.owner, cursor, end, now + LEASE_MS, alerts)
            .await?
        {
            self.seen_until = Some(end);
            round.examined = end - cursor;
            round.raised += raised;
            snapshot.iter().for_each(report);
            metrics::counter!("anshin_alert_entries_examined_total").increment(end - cursor);
        } else {
            self.detectors.reset();
            self.lease_until = 0;
            round.holds_cursor = false;
        }
        let (principals, origins) = self.detectors.tracked();
        metrics::gauge!("anshin_alert_principals_tracked").set(principals as f64);
        metrics::gauge!("anshin_alert_origins_tracked").set(origins as f64);
        Ok(round)
    }

    /// Forgets everything and learns again from the 7 days of the log before
    /// `cursor`, raising nothing. Returns the entries replayed.
    async fn rebuild(&mut self, store: &Store, cursor: u64, now: i64) -> Result<u64> {
        self.detectors.reset();
        self.seen_until = None;
        if cursor == 0 {
            self.seen_until = Some(0);
            return Ok(0);
        }
        let last = store.audit_entry_time(cursor - 1).await?.unwrap_or(now);
        let start = store.audit_index_at(last.min(now) - HISTORY_MS, cursor).await?;
        let started = std::time::Instant::now();
        let mut from = start;
        while from < cursor {
            let to = cursor.min(from.saturating_add(RENEW_EVERY));
            self.each_entry(store, from, to, |detectors, index, entry| {
                detectors.learn(index, entry);
            })
            .await?;
            from = to;
            // A long replay keeps its lease, so another node does not take
            // over (and replay too) meanwhile.
            let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            if from < cursor
                && store
                    .alert_cursor_claim(&self.owner, now.saturating_add(elapsed), LEASE_MS)
                    .await?
                    .is_none()
            {
                self.detectors.reset();
                return Ok(from - start);
            }
        }
        self.seen_until = Some(cursor);
        tracing::debug!(from = start, to = cursor, "alert detectors rebuilt from the log");
        Ok(cursor - start)
    }

    async fn each_entry(
        &mut self,
        store: &Store,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut Detectors, u64, &Entry),
    ) -> Result<()> {
        let mut from = start;
        while from < end {
            let to = end.min(from + PAGE);
            let entries = store.audit_entries(from, to).await?;
            for (index, bytes) in (from..).zip(&entries) {
                match serde_json::from_slice::<Entry>(bytes) {
                    Ok(entry) => f(&mut self.detectors, index, &entry),
                    Err(_) => {
                        metrics::counter!("anshin_alert_unreadable_entries_total").increment(1);
                        tracing::warn!(index, "an audit entry could not be read by the alert detectors");
                    }
                }
            }
            from = to;
        }
        Ok(())
    }

    fn new_alert(&self, draft: AlertDraft, now: i64) -> Result<NewAlert> {
        Ok(NewAlert {
            id: AlertId::generate()?,
            kind: draft.kind,
            severity: draft.severity,
            tenant_id: draft.tenant,
            principal_id: draft.principal,
            summary: draft.summary,
            evidence: draft.evidence,
            dedup_key: draft.dedup_key,
            observed_at: draft.observed_ms,
            created_at: now,
            next_attempt_at: self.queue.then_some(now),
        })
    }
}

/// Logs and counts a raised alert: kind, severity, ids; the summary is for the
/// API and the webhook.
pub(crate) fn report(alert: &NewAlert) {
    metrics::counter!("anshin_alerts_raised_total", "kind" => alert.kind.as_str()).increment(1);
    tracing::warn!(
        alert = %alert.id,
        kind = alert.kind.as_str(),
        severity = alert.severity.as_str(),
        tenant = alert.tenant_id.as_deref().unwrap_or("-"),
        principal = alert.principal_id.as_deref().unwrap_or("-"),
        "security alert raised"
    );
}

/// The alert monitor and the webhook sender of `anshin serve`, each on a task
/// of its own. Dropping it stops both.
pub struct AlertService {
    wake: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl AlertService {
    /// Starts the monitor over the app's store, and the sender if a webhook
    /// is configured; alerts the app raises itself (the page monitor) are
    /// then queued for the webhook too.
    pub fn start(app: &App, config: &AlertConfig) -> Result<Self> {
        let store = app.store.clone();
        let webhook = Webhook::from_config(config)?;
        app.queue_alerts_for_webhook(webhook.is_some());
        let mut monitor = Monitor::new(config.detect_settings(), webhook.is_some())?;
        let wake = Arc::new(Notify::new());
        let send = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        if let Some(webhook) = webhook {
            tracing::info!(receiver = webhook.target(), "alerts are sent to the webhook");
            let (store, send) = (store.clone(), send.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = send.notified() => {}
                        () = tokio::time::sleep(DELIVERY_POLL) => {}
                    }
                    if let Err(err) = webhook.deliver_due(&store, clock::now_ms()).await {
                        tracing::warn!(error = ?err, "alert delivery round failed; will retry");
                    }
                }
            }));
        }
        let rounds = wake.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                rounds.notified().await;
                match monitor.run(&store, clock::now_ms()).await {
                    Ok(round) if round.raised > 0 => send.notify_one(),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = ?err, "alert detection round failed; will retry"),
                }
            }
        }));
        Ok(Self { wake, tasks })
    }

    /// Tells the monitor an integration round ended (whether or not it
    /// succeeded: a failing integrator is what the checkpoint watcher is for).
    pub fn integrated(&self) {
        self.wake.notify_one();
    }
}

impl Drop for AlertService {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
