//! The retention window: the answer to the 2005 Rakuten Ichiba leak, where a
//! shop's staff downloaded order data and leaked it.
//!
//! A shop reads an order's shipping name, postal code, address and phone only
//! from the order's creation until a window after its completion (default 14
//! days, as Rakuten limited downloads to two weeks), and never more than 90
//! days after creation, so an order left open does not keep it readable. After that the answer is
//! 410 `retention_window_closed`, and once the legal retention period has passed
//! too, the purge job crypto-shreds the shipping data and records that it did.
//!
//! Bulk export (CSV) is the leak path itself: it returns only orders inside the
//! window, is rate-limited, records every export with its row count and all its
//! orders, and refuses (429 `export_limit`) a principal that would read more
//! than its daily threshold of orders' shipping data (default 500 in 24 hours,
//! exports and single reads counted together) unless an operator approved more.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor, Role};
use crate::app::App;
use crate::audit::{Event, EventKind, field};
use crate::clock;
use crate::db::OrderRow;
use crate::db::audit::AuditFilter;
use crate::db::credentials::TenantSettingsRow;
use crate::db::retention::{ExportApprovalRow, ShippingRow, shipping_field};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{OrderId, PrincipalId, ShopId, TenantId, parse_or_404};
use crate::vault::keys::RecordKind;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Days an order may stay open before its shipping data is out of the shop's
/// reach anyway: an order never completed must not keep the window open for
/// ever (nor escape the purge).
pub const MAX_OPEN_DAYS: i64 = 90;
const MAX_OPEN_MS: i64 = MAX_OPEN_DAYS * DAY_MS;
/// Most rows one export returns.
pub const MAX_EXPORT_ROWS: u32 = 10_000;
/// Exports one principal may start per minute.
const EXPORTS_PER_MINUTE: usize = 6;
/// Orders one purge round shreds per tenant.
const PURGE_BATCH: u32 = 1000;

/// A tenant's retention rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionPolicy {
    /// Days after completion during which the shop still reads shipping data.
    pub window_days: u32,
    /// Further days the data is kept (sealed, unreadable by shops) before it is shredded.
    pub legal_retention_days: u32,
    /// Rows one principal may export in 24 hours without an operator's approval.
    pub export_daily_rows: u32,
}

impl Default for RetentionPolicy {
    /// 14 days as Rakuten's two-week download window; 120 days of legal
    /// retention to cover card-brand dispute periods; 500 rows a day.
    fn default() -> Self {
        Self {
            window_days: 14,
            legal_retention_days: 120,
            export_daily_rows: 500,
        }
    }
}

impl RetentionPolicy {
    /// The rules a tenant's stored settings give, defaults filled in.
    pub fn of(row: &TenantSettingsRow) -> Self {
        let default = Self::default();
        Self {
            window_days: row.retention_window_days.unwrap_or(default.window_days),
            legal_retention_days: row.legal_retention_days.unwrap_or(default.legal_retention_days),
            export_daily_rows: row.export_daily_rows.unwrap_or(default.export_daily_rows),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::from(self.window_days) * DAY_MS
    }

    /// When the shop's access to this order's shipping data ends: the window
    /// after completion, and never later than [`MAX_OPEN_DAYS`] after creation.
    pub fn closes_at(&self, order: &OrderRow) -> i64 {
        let open_limit = order.created_at + MAX_OPEN_MS;
        order
            .completed_at
            .map_or(open_limit, |done| (done + self.window_ms()).min(open_limit))
    }

    /// Whether the shop may still read this order's shipping data at `now`.
    pub fn window_open(&self, order: &OrderRow, now: i64) -> bool {
        order.status != "cancelled" && now < self.closes_at(order)
    }
}

/// An order's shipping data in clear, for the shop that ships it.
#[derive(ToSchema)]
pub struct Shipping {
    /// The order.
    #[schema(value_type = String)]
    pub order_id: OrderId,
    /// Recipient's name.
    #[schema(value_type = String)]
    pub name: SecretString,
    /// Postal code.
    #[schema(value_type = Option<String>)]
    pub postal_code: Option<SecretString>,
    /// Address.
    #[schema(value_type = String)]
    pub address: SecretString,
    /// Phone number.
    #[schema(value_type = Option<String>)]
    pub phone: Option<SecretString>,
    /// Until when the shop can read it (RFC 3339): the window after completion,
    /// and at most 90 days after the order was created.
    pub readable_until: String,
}

impl Serialize for Shipping {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Shipping", 6)?;
        s.serialize_field("order_id", &self.order_id)?;
        s.serialize_field("name", self.name.expose())?;
        s.serialize_field(
            "postal_code",
            &self.postal_code.as_ref().map(SecretString::expose),
        )?;
        s.serialize_field("address", self.address.expose())?;
        s.serialize_field("phone", &self.phone.as_ref().map(SecretString::expose))?;
        s.serialize_field("readable_until", &self.readable_until)?;
        s.end()
    }
}

/// Query of an export.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (the only format).
    pub format: Option<String>,
    /// The shop whose orders to export; shop keys may omit it.
    pub shop_id: Option<String>,
}

/// An operator's approval of a larger export.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExportApproval {
    /// Extra rows the principal may export, 1–100,000.
    pub rows: u32,
    /// Why (kept in the audit trail), such as the shop's ticket number.
    pub reason: String,
    /// How long the approval holds, 1–72 hours (default 24).
    #[serde(default)]
    pub hours: Option<u32>,
}

/// An approval as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportApproval {
    /// Approval id.
    pub id: String,
    /// The principal that may export more.
    pub principal_id: String,
    /// Extra rows.
    pub rows: u32,
    /// Until when (RFC 3339).
    pub expires_at: String,
}

/// What a purge round did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeReport {
    /// Orders whose shipping data was crypto-shredded.
    pub purged: u64,
}

/// A CSV export and how many orders it holds.
pub struct Export {
    /// The CSV text (UTF-8, header row first).
    pub csv: SecretString,
    /// Orders in it.
    pub rows: u64,
}

/// Per-principal limit on how often exports start.
#[derive(Default)]
pub struct ExportLimiter {
    recent: Mutex<HashMap<PrincipalId, VecDeque<Instant>>>,
}

impl ExportLimiter {
    fn allow(&self, principal: &PrincipalId) -> bool {
        let Ok(mut map) = self.recent.lock() else {
            return false;
        };
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let starts = map.entry(principal.clone()).or_default();
        while starts.front().is_some_and(|t| now.duration_since(*t) >= window) {
            starts.pop_front();
        }
        if starts.len() >= EXPORTS_PER_MINUTE {
            return false;
        }
        starts.push_back(now);
        true
    }
}

fn closed() -> Error {
    Error::new(
        ErrorKind::Gone,
        "retention_window_closed",
        "the retention window of this order has closed: its shipping data is no longer available to the shop",
    )
}

/// Guards a spreadsheet against formula injection: a cell that starts like a
/// formula is prefixed with an apostrophe (OWASP CSV injection).
fn cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

impl App {
    /// The retention rules of a tenant.
    pub async fn retention_policy(&self, tenant: &TenantId) -> Result<RetentionPolicy> {
        Ok(RetentionPolicy::of(&self.store.tenant_settings(tenant).await?))
    }

    /// An order's shipping data for the shop that sold it, inside the window.
    pub async fn order_shipping(&self, actor: &Actor, id: &str) -> Result<Shipping> {
        self.audited(actor, EventKind::OrderShipping, async |event| {
            actor.require(Action::ReadShipping)?;
            let id = parse_or_404(OrderId::parse, id, "order")?;
            event.resource(&id).fields(&[field::SHIPPING]);
            let view = self
                .store
                .order(actor.scope(), &id)
                .await?
                .ok_or_else(|| Error::not_found("order"))?;
            let order = view.order;
            event
                .tenant(&order.tenant_id)
                .subject(self.subject(&order.tenant_id, &order.customer_id).await?);
            let policy = self.retention_policy(&order.tenant_id).await?;
            let now = clock::now_ms();
            if !policy.window_open(&order, now) {
                return Err(closed());
            }
            // Reading orders one by one is an export too: it spends the same budget.
            self.spend_shipping_budget(actor, &policy, 1, now).await?;
            let row = self
                .store
                .order_shipping(&id)
                .await?
                .ok_or_else(|| Error::not_found("shipping data"))?;
            let fields = self.open_shipping(&order, &row).await?.ok_or_else(closed)?;
            let [name, postal_code, address, phone] = fields;
            Ok(Shipping {
                order_id: id,
                name: name.ok_or_else(closed)?,
                postal_code,
                address: address.ok_or_else(closed)?,
                phone,
                readable_until: clock::rfc3339(policy.closes_at(&order)),
            })
        })
        .await
    }

    async fn open_shipping(
        &self,
        order: &OrderRow,
        row: &ShippingRow,
    ) -> Result<Option<[Option<SecretString>; 4]>> {
        let Some(sealed) = &row.sealed else {
            // The data key is gone: purged after the window (410), or the
            // tenant shredded, perhaps on another node since this one read
            // its keys. Reading them again tells which: 404 for a shredded
            // tenant, as on the node that shredded it.
            self.keyring.reload(&self.store, &order.tenant_id).await?;
            return Ok(None);
        };
        let keys = self
            .keyring
            .tenant_holding(&self.store, &order.tenant_id, Some(sealed.kek_version))
            .await?;
        let record = keys.open_record(RecordKind::Order, order.id.as_str(), sealed)?;
        let mut out: [Option<SecretString>; 4] = Default::default();
        for (i, blob) in sealed.fields.iter().enumerate() {
            if let Some(blob) = blob {
                out[i] = Some(
                    record
                        .open(shipping_field::NAMES[i], blob)?
                        .into_secret_string()?,
                );
            }
        }
        Ok(Some(out))
    }

    /// A CSV of the shop's orders inside the window, shipping data included.
    pub async fn export_orders(&self, actor: &Actor, query: ExportQuery) -> Result<Export> {
        self.audited(actor, EventKind::OrderExport, async |event| {
            actor.require(Action::ExportOrders)?;
            if query.format.as_deref().is_some_and(|f| f != "csv") {
                return Err(Error::invalid("invalid_format", "format must be csv"));
            }
            let shop = self.export_shop(actor, query.shop_id.as_deref()).await?;
            event
                .resource(&shop.0)
                .tenant(&shop.1)
                .fields(&[field::ORDER, field::SHIPPING]);
            if !self.exports.allow(&actor.principal_id) {
                return Err(Error::new(
                    ErrorKind::TooManyRequests,
                    "rate_limited",
                    "too many exports from this key; wait a minute",
                ));
            }
            let policy = self.retention_policy(&shop.1).await?;
            let now = clock::now_ms();
            let rows = self
                .store
                .export_orders(
                    &shop.0,
                    now - MAX_OPEN_MS,
                    now - policy.window_ms(),
                    MAX_EXPORT_ROWS,
                )
                .await?;
            event.rows(rows.len() as u64);
            self.spend_shipping_budget(actor, &policy, rows.len() as u64, now)
                .await?;
            let keys = self.keyring.tenant(&self.store, &shop.1).await?;
            let mut out = csv::Writer::from_writer(Vec::new());
            let header = [
                "order_id",
                "created_at",
                "status",
                "amount",
                "currency",
                "card_brand",
                "card_last4",
                "shipping_name",
                "shipping_postal_code",
                "shipping_address",
                "shipping_phone",
            ];
            out.write_record(header).map_err(Error::internal)?;
            for (view, shipping) in &rows {
                let order = &view.order;
                event.resource(&order.id).subject(keys.fingerprint(
                    crate::vault::customers::SUBJECT,
                    order.customer_id.as_str().as_bytes(),
                ));
                let fields = match shipping {
                    Some(row) => self.open_shipping(order, row).await?,
                    None => None,
                };
                let text = |i: usize| {
                    fields
                        .as_ref()
                        .and_then(|f| f[i].as_ref())
                        .map_or_else(String::new, |v| cell(v.expose()))
                };
                out.write_record([
                    order.id.to_string(),
                    clock::rfc3339(order.created_at),
                    order.status.clone(),
                    order.amount.to_string(),
                    order.currency.clone(),
                    view.card_brand.clone().unwrap_or_default(),
                    view.card_last4.clone().unwrap_or_default(),
                    text(shipping_field::NAME),
                    text(shipping_field::POSTAL_CODE),
                    text(shipping_field::ADDRESS),
                    text(shipping_field::PHONE),
                ])
                .map_err(Error::internal)?;
            }
            let bytes = out.into_inner().map_err(|e| Error::internal(e.into_error()))?;
            let csv = String::from_utf8(bytes).map_err(Error::internal)?;
            Ok(Export {
                csv: SecretString::new(csv),
                rows: rows.len() as u64,
            })
        })
        .await
    }

    async fn export_shop(&self, actor: &Actor, requested: Option<&str>) -> Result<(ShopId, TenantId)> {
        match (actor.scope().shop, requested) {
            (Some(own), None) => Ok((own.clone(), actor.tenant_for(None)?)),
            (Some(own), Some(req)) if own.as_str() == req => Ok((own.clone(), actor.tenant_for(None)?)),
            _ => Err(Error::not_found("shop")),
        }
    }

    /// Refuses with 429 `export_limit` if reading `rows` more orders' shipping
    /// data would take this key past its tenant's daily rows (plus what an
    /// operator approved). Exports and single reads count alike; the count
    /// comes from the audit log, so it holds across nodes and restarts.
    async fn spend_shipping_budget(
        &self,
        actor: &Actor,
        policy: &RetentionPolicy,
        rows: u64,
        now: i64,
    ) -> Result<()> {
        let allowed = u64::from(policy.export_daily_rows)
            + self.store.export_approved_rows(&actor.principal_id, now).await?;
        let since = now - DAY_MS;
        let read = self.rows_exported_since(actor, since).await?
            + self
                .store
                .audit_count(
                    actor.principal_id.as_str(),
                    EventKind::OrderShipping.as_str(),
                    since,
                )
                .await?;
        if read + rows > allowed {
            return Err(Error::new(
                ErrorKind::TooManyRequests,
                "export_limit",
                format!(
                    "this would pass the limit of {allowed} orders' shipping data in 24 hours for this key \
                     ({read} already read or exported); an operator can approve more with \
                     POST /v1/principals/{}/export-approvals",
                    actor.principal_id
                ),
            ));
        }
        Ok(())
    }

    /// Rows this principal exported since `since` (from the audit log, so the
    /// count holds across nodes and restarts).
    async fn rows_exported_since(&self, actor: &Actor, since: i64) -> Result<u64> {
        // Listings see sequenced entries only: number the exports just made.
        self.audit.sequence(&self.store).await?;
        let mut total = 0u64;
        let mut after = None;
        loop {
            let page = self
                .store
                .audit_find(AuditFilter {
                    principal_id: Some(actor.principal_id.to_string()),
                    kind: Some(EventKind::OrderExport.as_str()),
                    since_ms: Some(since),
                    after,
                    limit: 1000,
                    ..AuditFilter::default()
                })
                .await?;
            for row in &page.entries {
                let entry: crate::audit::Entry = serde_json::from_slice(&row.entry)
                    .map_err(|_| Error::internal(crate::db::StoreError::Corrupt("audit entry")))?;
                if entry.outcome == "success" {
                    total += entry.rows.unwrap_or(0);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// An operator approves a larger export for one principal of its tenant.
    /// Dual control: nobody approves their own exports.
    pub async fn approve_export(
        &self,
        actor: &Actor,
        principal: &str,
        input: NewExportApproval,
    ) -> Result<ExportApproval> {
        self.audited(actor, EventKind::ExportApprove, async |event| {
            actor.require(Action::ManagePrincipals)?;
            let principal = parse_or_404(PrincipalId::parse, principal, "principal")?;
            event.resource(&principal);
            let row = self
                .store
                .principal(&principal)
                .await?
                .filter(|p| p.tenant_id.as_ref().is_some_and(|t| actor.sees_tenant(t)))
                .ok_or_else(|| Error::not_found("principal"))?;
            let tenant = row
                .tenant_id
                .clone()
                .ok_or_else(|| Error::not_found("principal"))?;
            event.tenant(&tenant).rows(u64::from(input.rows));
            if principal == actor.principal_id {
                return Err(Error::forbidden(
                    "approve its own exports (another operator must)",
                ));
            }
            if row.role != Role::Shop {
                return Err(Error::invalid("not_a_shop", "export approvals are for shop keys"));
            }
            if !(1..=100_000).contains(&input.rows) {
                return Err(Error::invalid("invalid_rows", "rows must be 1 to 100000"));
            }
            let hours = input.hours.unwrap_or(24);
            if !(1..=72).contains(&hours) {
                return Err(Error::invalid("invalid_hours", "hours must be 1 to 72"));
            }
            let reason = crate::text::label(&input.reason, 500, "invalid_reason", "reason")?;
            let now = clock::now_ms();
            let approval = ExportApprovalRow {
                id: anshin_crypto::token::random_token("expa")?,
                tenant_id: tenant,
                principal_id: principal,
                approved_by: actor.principal_id.clone(),
                rows_allowed: input.rows,
                reason,
                created_at: now,
                expires_at: now + i64::from(hours) * 3_600_000,
            };
            self.record_now(actor, event).await?;
            self.store.insert_export_approval(approval.clone()).await?;
            Ok(ExportApproval {
                id: approval.id,
                principal_id: approval.principal_id.to_string(),
                rows: approval.rows_allowed,
                expires_at: clock::rfc3339(approval.expires_at),
            })
        })
        .await
    }

    /// Crypto-shreds the shipping data of every order past its tenant's window
    /// and legal retention. Each round records the orders it is about to shred
    /// and only then shreds them, so nothing is destroyed unrecorded. Runs
    /// periodically in `anshin serve`; nodes sharing PostgreSQL never shred the
    /// same order twice (one may record an order the other shreds).
    pub async fn purge_expired_shipping(&self) -> Result<PurgeReport> {
        let mut purged = 0u64;
        for tenant in self.store.tenants().await? {
            let policy = self.retention_policy(&tenant.id).await?;
            let legal_ms = i64::from(policy.legal_retention_days) * DAY_MS;
            loop {
                let now = clock::now_ms();
                let due = self
                    .store
                    .purge_candidates(
                        &tenant.id,
                        now - legal_ms - MAX_OPEN_MS,
                        now - legal_ms - policy.window_ms(),
                        PURGE_BATCH,
                    )
                    .await?;
                if due.is_empty() {
                    break;
                }
                let mut event = Event::new(EventKind::RetentionPurge);
                event
                    .tenant(&tenant.id)
                    .fields(&[field::SHIPPING])
                    .rows(due.len() as u64);
                for id in &due {
                    event.resource(id);
                }
                self.record(None, None, &event, None).await?;
                let full = due.len() == PURGE_BATCH as usize;
                purged += self.store.shred_shipping(due, now).await?.len() as u64;
                if !full {
                    break;
                }
            }
        }
        Ok(PurgeReport { purged })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CustomerId;

    fn order(completed_at: Option<i64>, status: &str) -> OrderRow {
        OrderRow {
            id: OrderId::generate().expect("id"),
            tenant_id: TenantId::generate().expect("id"),
            shop_id: ShopId::generate().expect("id"),
            customer_id: CustomerId::generate().expect("id"),
            card_token: None,
            amount: 100,
            currency: "JPY".into(),
            status: status.into(),
            created_at: 0,
            completed_at,
        }
    }

    #[test]
    fn the_window_closes_fourteen_days_after_completion() {
        let policy = RetentionPolicy::default();
        let done = 10 * DAY_MS;
        assert!(
            policy.window_open(&order(None, "created"), 89 * DAY_MS),
            "open orders stay readable"
        );
        assert!(
            !policy.window_open(&order(None, "created"), 90 * DAY_MS),
            "but not past 90 days: a shop cannot keep the window open by never completing"
        );
        assert!(policy.window_open(&order(Some(done), "completed"), done + 14 * DAY_MS - 1));
        assert!(!policy.window_open(&order(Some(done), "completed"), done + 14 * DAY_MS));
        assert_eq!(
            policy.closes_at(&order(Some(85 * DAY_MS), "completed")),
            90 * DAY_MS
        );
        assert!(!policy.window_open(&order(None, "cancelled"), done));
    }

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+81 90"), "'+81 90");
        assert_eq!(cell("東京都"), "東京都");
    }

    #[test]
    fn exports_are_rate_limited_per_key() {
        let limiter = ExportLimiter::default();
        let a = PrincipalId::generate().expect("id");
        let b = PrincipalId::generate().expect("id");
        for _ in 0..EXPORTS_PER_MINUTE {
            assert!(limiter.allow(&a));
        }
        assert!(!limiter.allow(&a));
        assert!(limiter.allow(&b));
    }
}
