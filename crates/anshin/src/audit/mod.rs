//! (4) The tamper-evident audit trail.
//!
//! Every request that touches sensitive data or its controls appends one entry
//! to the audit log before its answer is sent: who (principal and role), what
//! (event type), when, success or failure (with the error code), from where (IP),
//! which resources (tokens, order ids), which customers (as per-tenant keyed
//! hashes, never ids or personal data), which field classes, and the purpose
//! where the caller gave one (PCI DSS v4.0 10.2.2).
//!
//! - [`Event`] is what a request fills in; [`Entry`] is the JSON the log stores
//!   and hashes. The JSON carries no card number or personal data by
//!   construction: it is built only from ids, codes and fixed field-class names.
//! - [`log::AuditLog`] appends (batched, durable), sequences and integrates the
//!   entries into an RFC 9162 Merkle tree, signs C2SP checkpoints with Ed25519,
//!   and serves tiles and proofs.
//! - Reads are recorded after the data is fetched and before it is returned;
//!   changes are recorded before they are made ([`App::record_now`]). If the log
//!   cannot take the entry, the request fails with 503 `audit_unavailable` and
//!   nothing is revealed or changed (fail closed).

pub mod alerts;
pub mod detect;
pub mod log;
pub mod view;
pub mod webhook;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::access::Actor;
use crate::app::App;
use crate::clock;
use crate::db::audit::{EntryFor, NewAuditEntry};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{CustomerId, TenantId, TypedId};

/// Version of the entry format.
pub const ENTRY_VERSION: u8 = 1;

/// What happened. The names are stable: they are in the signed log forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A tenant was created.
    TenantCreate,
    /// A shop was created.
    ShopCreate,
    /// A principal (API key) was created.
    PrincipalCreate,
    /// A principal was disabled.
    PrincipalDisable,
    /// A principal was issued a new key (rotation).
    PrincipalRotate,
    /// A principal's IP allow-list was changed.
    PrincipalUpdate,
    /// A tenant's settings (key lifetime, rotation overlap) were changed.
    TenantSettings,
    /// An API key was refused.
    AuthFailure,
    /// A source was locked out after repeated failed authentications.
    AuthLockout,
    /// A card was tokenized.
    CardTokenize,
    /// A card's masked view was read.
    CardRead,
    /// A card's full data was revealed.
    CardReveal,
    /// A card was looked up by number.
    CardLookup,
    /// A card was released or crypto-shredded.
    CardDelete,
    /// A customer's personal data was stored.
    CustomerCreate,
    /// A customer's masked view was read.
    CustomerRead,
    /// A customer's access history was read.
    CustomerAccessLog,
    /// A customer's personal data was crypto-shredded.
    CustomerDelete,
    /// An order was created.
    OrderCreate,
    /// An order was read.
    OrderRead,
    /// A page of orders was listed.
    OrderList,
    /// An order was completed.
    OrderComplete,
    /// Audit entries were listed.
    AuditRead,
    /// An order's shipping data was read.
    OrderShipping,
    /// Orders were exported (CSV).
    OrderExport,
    /// An operator approved a larger export.
    ExportApprove,
    /// Shipping data past its retention was crypto-shredded.
    RetentionPurge,
    /// Security alerts were listed.
    AlertRead,
    /// A data inventory was uploaded (`anshin scan --server`).
    InventoryUpload,
    /// Data inventories were read.
    InventoryRead,
    /// A manual key operation was requested.
    KeyRequest,
    /// A key request was approved (and carried out).
    KeyApprove,
    /// A key request was rejected.
    KeyReject,
    /// A KEK version was added by the rotation policy.
    KeyRotate,
    /// An approved change of the root of trust was carried out.
    RootChange,
    /// A staged change of the root of trust was cancelled.
    RootChangeCancel,
    /// Custodians' shares reached the threshold and the vault opened.
    VaultUnseal,
    /// An operator sealed the vault (its keys left memory).
    VaultSeal,
    /// A checkout session was opened by a shop's server.
    CheckoutCreate,
    /// A checkout session was read by a shop's server.
    CheckoutRead,
    /// A shopper's browser submitted a card to a checkout session.
    CheckoutCard,
    /// A processor route was configured.
    RouteWrite,
    /// Processor routes were listed.
    RouteRead,
    /// A payment was authorized (or declined) through the processor proxy.
    PaymentCreate,
    /// A payment was read.
    PaymentRead,
    /// A payment was captured.
    PaymentCapture,
    /// A payment was voided.
    PaymentVoid,
    /// A payment was refunded.
    PaymentRefund,
    /// A payment was completed after 3-D Secure.
    PaymentComplete,
    /// A request was forwarded through a generic outbound route.
    ProxyForward,
    /// A payment page was registered with the page monitor.
    PageRegister,
    /// Monitored pages and their inventories were read.
    PageRead,
    /// A payment page was checked on request.
    PageCheck,
    /// A script was authorised on a payment page.
    PageScriptAuthorise,
    /// `anshin integrity --server` reported the host tool's alerts.
    IntegrityReport,
    /// A shop's payment webhook endpoint was created or changed.
    WebhookWrite,
    /// A shop's payment webhook endpoint was read.
    WebhookRead,
    /// A shop's payment webhook secret was rotated.
    WebhookRotate,
    /// A shop's payment webhook endpoint was removed.
    WebhookDelete,
    /// A host's signed integrity baseline was stored (`--server`).
    IntegrityBaselineStore,
    /// A stored integrity baseline or its history was read.
    IntegrityBaselineRead,
    /// A host's baseline key was pinned in place of another.
    IntegrityKeyPin,
}

impl EventKind {
    /// The stable name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreate => "tenant.create",
            Self::ShopCreate => "shop.create",
            Self::PrincipalCreate => "principal.create",
            Self::PrincipalDisable => "principal.disable",
            Self::PrincipalRotate => "principal.rotate",
            Self::PrincipalUpdate => "principal.update",
            Self::TenantSettings => "tenant.settings",
            Self::AuthFailure => "auth.failure",
            Self::AuthLockout => "auth.lockout",
            Self::CardTokenize => "card.tokenize",
            Self::CardRead => "card.read",
            Self::CardReveal => "card.reveal",
            Self::CardLookup => "card.lookup",
            Self::CardDelete => "card.delete",
            Self::CustomerCreate => "customer.create",
            Self::CustomerRead => "customer.read",
            Self::CustomerAccessLog => "customer.access_log",
            Self::CustomerDelete => "customer.delete",
            Self::OrderCreate => "order.create",
            Self::OrderRead => "order.read",
            Self::OrderList => "order.list",
            Self::OrderComplete => "order.complete",
            Self::AuditRead => "audit.read",
            Self::OrderShipping => "order.shipping",
            Self::OrderExport => "order.export",
            Self::ExportApprove => "export.approve",
            Self::RetentionPurge => "retention.purge",
            Self::AlertRead => "alert.read",
            Self::InventoryUpload => "inventory.upload",
            Self::InventoryRead => "inventory.read",
            Self::KeyRequest => "key.request",
            Self::KeyApprove => "key.approve",
            Self::KeyReject => "key.reject",
            Self::KeyRotate => "key.rotate",
            Self::RootChange => "key.change_root",
            Self::RootChangeCancel => "key.change_root_cancel",
            Self::VaultUnseal => "vault.unseal",
            Self::VaultSeal => "vault.seal",
            Self::CheckoutCreate => "checkout.create",
            Self::CheckoutRead => "checkout.read",
            Self::CheckoutCard => "checkout.card",
            Self::RouteWrite => "route.write",
            Self::RouteRead => "route.read",
            Self::PaymentCreate => "payment.create",
            Self::PaymentRead => "payment.read",
            Self::PaymentCapture => "payment.capture",
            Self::PaymentVoid => "payment.void",
            Self::PaymentRefund => "payment.refund",
            Self::PaymentComplete => "payment.complete",
            Self::ProxyForward => "proxy.forward",
            Self::PageRegister => "page.register",
            Self::PageRead => "page.read",
            Self::PageCheck => "page.check",
            Self::PageScriptAuthorise => "page.script_authorise",
            Self::IntegrityReport => "integrity.report",
            Self::WebhookWrite => "webhook.write",
            Self::WebhookRead => "webhook.read",
            Self::WebhookRotate => "webhook.rotate",
            Self::WebhookDelete => "webhook.delete",
            Self::IntegrityBaselineStore => "integrity.baseline_store",
            Self::IntegrityBaselineRead => "integrity.baseline_read",
            Self::IntegrityKeyPin => "integrity.key_pin",
        }
    }
}

/// Classes of data an event touched, by name; never the data.
pub mod field {
    /// Brand, last four and expiry.
    pub const CARD_MASKED: &str = "card.masked";
    /// The full card number.
    pub const CARD_NUMBER: &str = "card.number";
    /// Expiry date.
    pub const CARD_EXPIRY: &str = "card.expiry";
    /// Card holder's name.
    pub const CARD_HOLDER: &str = "card.holder";
    /// The card security code (held briefly for one authorization, never stored in clear).
    pub const CARD_CVC: &str = "card.cvc";
    /// Payment metadata (amount, status, processor reference).
    pub const PAYMENT: &str = "payment";
    /// Personal data sealed in the vault (written, not read).
    pub const PII_SEALED: &str = "pii.sealed";
    /// Masked e-mail address.
    pub const EMAIL_MASKED: &str = "pii.email.masked";
    /// Masked phone number.
    pub const PHONE_MASKED: &str = "pii.phone.masked";
    /// Order metadata (amount, status, masked card).
    pub const ORDER: &str = "order";
    /// Shipping data sealed in the vault (written, not read).
    pub const SHIPPING_SEALED: &str = "shipping.sealed";
    /// Shipping name, postal code, address and phone, in clear.
    pub const SHIPPING: &str = "shipping";
    /// Audit metadata.
    pub const AUDIT: &str = "audit";
}

/// What a request did, filled in as it learns it.
#[derive(Debug, Clone)]
pub struct Event {
    kind: EventKind,
    tenant: Option<TenantId>,
    resources: Vec<String>,
    subjects: Vec<[u8; 32]>,
    fields: Vec<&'static str>,
    rows: Option<u64>,
    recorded: bool,
}

impl Event {
    /// An event of `kind` with nothing known yet.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            tenant: None,
            resources: Vec::new(),
            subjects: Vec::new(),
            fields: Vec::new(),
            rows: None,
            recorded: false,
        }
    }

    /// The tenant the event concerns.
    pub fn tenant(&mut self, tenant: &TenantId) -> &mut Self {
        self.tenant = Some(tenant.clone());
        self
    }

    /// A resource id (token, order id, principal id …): typed ids only, never
    /// request text. Never a customer id: customers go through [`Event::subject`].
    pub fn resource(&mut self, id: &impl TypedId) -> &mut Self {
        self.resources.push(id.id_str().to_owned());
        self
    }

    /// A customer, as its keyed hash.
    pub fn subject(&mut self, subject: [u8; 32]) -> &mut Self {
        if !self.subjects.contains(&subject) {
            self.subjects.push(subject);
        }
        self
    }

    /// Field classes touched.
    pub fn fields(&mut self, fields: &[&'static str]) -> &mut Self {
        self.fields.extend_from_slice(fields);
        self
    }

    /// Marks the event recorded by a write that appended its entry itself
    /// ([`App::entry_for`]).
    pub(crate) fn recorded_with_write(&mut self) -> &mut Self {
        self.recorded = true;
        self
    }

    /// Number of rows (listings, exports).
    pub fn rows(&mut self, rows: u64) -> &mut Self {
        self.rows = Some(rows);
        self
    }
}

/// The actor as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryActor {
    /// Principal id.
    pub principal: String,
    /// Role.
    pub role: String,
    /// The shop, for shop principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
}

/// One audit log entry, as stored, hashed and exported: canonical JSON with the
/// fields in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// Entry format version.
    pub v: u8,
    /// The entry's own random id (`evt_…`).
    pub id: String,
    /// When (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Event type.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The error code of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Who; absent when no valid API key was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<EntryActor>,
    /// The tenant concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Resource ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Customers touched, as hex keyed hashes (per tenant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Field classes touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Purpose the caller gave (`Anshin-Purpose` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Rows returned (listings, exports); on the first part only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Which part of an event this entry is (1-based), when its resources or
    /// customers did not fit one entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    /// How many parts the event has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

/// Most resource ids (and customers) one entry names, so an entry always fits
/// a tile bundle (64 KiB); an event that names more is split into parts, all
/// appended before the answer, so the signed log names every one.
const MAX_RESOURCES: usize = 400;

/// The `part`-th run of at most [`MAX_RESOURCES`] items (empty past the end).
fn chunk<T>(items: &[T], part: usize) -> &[T] {
    let start = (part * MAX_RESOURCES).min(items.len());
    &items[start..(start + MAX_RESOURCES).min(items.len())]
}

/// Parts an event needs.
fn parts_of(event: &Event) -> usize {
    event
        .resources
        .len()
        .div_ceil(MAX_RESOURCES)
        .max(event.subjects.len().div_ceil(MAX_RESOURCES))
        .max(1)
}

impl Entry {
    /// Part `part` (0-based) of `parts` of an event's entry.
    fn build(
        time_ms: i64,
        event: &Event,
        actor: Option<&Actor>,
        origin: Option<IpAddr>,
        failure: Option<&Error>,
        (part, parts): (usize, usize),
    ) -> Result<Self> {
        let split = parts > 1;
        Ok(Self {
            v: ENTRY_VERSION,
            id: crate::ids::EventId::generate()?.to_string(),
            time: clock::rfc3339_millis(time_ms),
            event: event.kind.as_str().to_owned(),
            outcome: if failure.is_some() { "failure" } else { "success" }.to_owned(),
            code: failure.map(|e| e.code().to_owned()),
            actor: actor.map(|a| EntryActor {
                principal: a.principal_id.to_string(),
                role: a.role.as_str().to_owned(),
                shop: a.shop_id.as_ref().map(ToString::to_string),
            }),
            tenant: event
                .tenant
                .as_ref()
                .or(actor.and_then(|a| a.tenant_id.as_ref()))
                .map(ToString::to_string),
            origin: origin.map(|ip| ip.to_string()),
            resources: chunk(&event.resources, part).to_vec(),
            subjects: chunk(&event.subjects, part)
                .iter()
                .map(|s| data_encoding::HEXLOWER.encode(s))
                .collect(),
            fields: event.fields.iter().map(|f| (*f).to_owned()).collect(),
            purpose: actor.and_then(|a| a.purpose.clone()),
            rows: event.rows.filter(|_| part == 0),
            part: split.then(|| u32::try_from(part + 1).unwrap_or(u32::MAX)),
            parts: split.then(|| u32::try_from(parts).unwrap_or(u32::MAX)),
        })
    }
}

/// The single entry recording a write's `event` at this moment.
fn write_entry(actor: &Actor, event: &Event) -> std::result::Result<NewAuditEntry, String> {
    let time_ms = clock::now_ms();
    let entry = Entry::build(time_ms, event, Some(actor), actor.origin, None, (0, 1))
        .map_err(|e| e.code().to_owned())?;
    log::new_entry(time_ms, event.kind, &entry, event.subjects.clone())
}

/// 503 `audit_unavailable`: the entry could not be made durable.
pub fn unavailable() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "audit_unavailable",
        "the audit log cannot record this access right now, so it was not performed; retry later",
    )
}

impl App {
    /// The keyed hash under which the log names a customer of `tenant`.
    pub async fn subject(&self, tenant: &TenantId, customer: &CustomerId) -> Result<[u8; 32]> {
        let keys = self.keyring.tenant(&self.store, tenant).await?;
        Ok(keys.fingerprint(crate::vault::customers::SUBJECT, customer.as_str().as_bytes()))
    }

    /// Runs `op` and records its event: on success before the value is
    /// returned (fail closed: if the entry cannot be made durable the value is
    /// dropped and the answer is 503), on failure with the error's code. An
    /// operation that changes data calls [`App::record_now`] before the change.
    pub(crate) async fn audited<T>(
        &self,
        actor: &Actor,
        kind: EventKind,
        op: impl AsyncFnOnce(&mut Event) -> Result<T>,
    ) -> Result<T> {
        let mut event = Event::new(kind);
        let result = op(&mut event).await;
        match &result {
            Ok(_) if event.recorded => {}
            Ok(_) => self.record(Some(actor), actor.origin, &event, None).await?,
            Err(err) => {
                if let Err(log_err) = self.record(Some(actor), actor.origin, &event, Some(err)).await {
                    tracing::warn!(event = kind.as_str(), error = ?log_err, "could not record a failed request");
                }
            }
        }
        result
    }

    /// The entry that records a write once the store knows the resource it
    /// touched; the store appends it in the write's own transaction. The event
    /// counts as recorded once the write has committed.
    pub(crate) fn entry_for<T: TypedId + 'static>(&self, actor: &Actor, event: &Event) -> EntryFor<T> {
        let (actor, event) = (actor.clone(), event.clone());
        Box::new(move |id: &T| {
            let mut event = event.clone();
            event.resource(id);
            write_entry(&actor, &event)
        })
    }

    /// The entry recording `event`, for a write that appends it in its own
    /// transaction; mark the event [`Event::recorded_with_write`] once the
    /// write has committed.
    pub(crate) fn entry_now(&self, actor: &Actor, event: &Event) -> Result<NewAuditEntry> {
        Ok(write_entry(actor, event).map_err(crate::db::StoreError::Audit)?)
    }

    /// Records `event` now, before the change it describes is made.
    pub(crate) async fn record_now(&self, actor: &Actor, event: &mut Event) -> Result<()> {
        self.record(Some(actor), actor.origin, event, None).await?;
        event.recorded = true;
        Ok(())
    }

    /// Records a request that came without an API key and counts it towards a
    /// lockout of its source, like a refused key: otherwise keyless requests
    /// could append to the log without limit. The answer is a 401 either way,
    /// so a log failure is only reported.
    pub async fn record_refused_key(&self, origin: Option<IpAddr>, err: &Error) {
        if let Err(log_err) = self
            .record(None, origin, &Event::new(EventKind::AuthFailure), Some(err))
            .await
        {
            tracing::warn!(error = ?log_err, "could not record a request without an API key");
        }
        if let Some(ip) = origin {
            self.count_auth_failure(ip).await;
        }
    }

    /// Appends the event's entry (its parts, if it names more than one entry
    /// holds) and waits until it is durable.
    pub(crate) async fn record(
        &self,
        actor: Option<&Actor>,
        origin: Option<IpAddr>,
        event: &Event,
        failure: Option<&Error>,
    ) -> Result<()> {
        let time_ms = clock::now_ms();
        let parts = parts_of(event);
        let entries = (0..parts)
            .map(|part| Entry::build(time_ms, event, actor, origin, failure, (part, parts)))
            .collect::<Result<Vec<_>>>()?;
        let batch = entries
            .iter()
            .enumerate()
            .map(|(part, entry)| (entry, chunk(&event.subjects, part).to_vec()))
            .collect();
        self.audit
            .append_all(time_ms, event.kind, batch)
            .await
            .map_err(|err| unavailable().with_cause(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;
    use crate::ids::PrincipalId;

    #[test]
    fn entries_are_canonical_json_without_empty_fields() {
        let actor = Actor {
            principal_id: PrincipalId::parse("prn_aaaaaaaaaaaaaaaaaaaaaaaaaa").expect("id"),
            role: Role::Processor,
            tenant_id: None,
            shop_id: None,
            origin: Some("192.0.2.7".parse().expect("ip")),
            purpose: Some("authorization".into()),
        };
        let mut event = Event::new(EventKind::CardReveal);
        event
            .resource(&crate::ids::CardToken::parse("card_bbbbbbbbbbbbbbbbbbbbbbbbbb").expect("token"))
            .fields(&[field::CARD_NUMBER])
            .subject([7; 32]);
        let mut entry = Entry::build(
            1_700_000_000_123,
            &event,
            Some(&actor),
            actor.origin,
            None,
            (0, 1),
        )
        .expect("entry");
        assert!(crate::ids::EventId::parse(&entry.id).is_some());
        entry.id = "evt_cccccccccccccccccccccccccc".into();
        let json = serde_json::to_string(&entry).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"v":1,"id":"evt_cccccccccccccccccccccccccc","time":"2023-11-14T22:13:20.123Z","event":"card.reveal","outcome":"success","actor":{{"principal":"prn_aaaaaaaaaaaaaaaaaaaaaaaaaa","role":"processor"}},"origin":"192.0.2.7","resources":["card_bbbbbbbbbbbbbbbbbbbbbbbbbb"],"subjects":["{}"],"fields":["card.number"],"purpose":"authorization"}}"#,
                "07".repeat(32)
            )
        );
        let back: Entry = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, entry);
    }

    #[test]
    fn events_naming_more_than_an_entry_holds_are_split_into_parts() {
        let mut event = Event::new(EventKind::OrderExport);
        for _ in 0..(2 * MAX_RESOURCES + 5) {
            event.resource(&crate::ids::OrderId::generate().expect("id"));
        }
        event.rows(805);
        let parts = parts_of(&event);
        assert_eq!(parts, 3);
        let entries: Vec<Entry> = (0..parts)
            .map(|p| Entry::build(0, &event, None, None, None, (p, parts)).expect("entry"))
            .collect();
        let named: Vec<&String> = entries.iter().flat_map(|e| &e.resources).collect();
        assert_eq!(named.len(), 2 * MAX_RESOURCES + 5, "every resource in some part");
        assert_eq!(entries[0].rows, Some(805));
        assert!(
            entries[1].rows.is_none() && entries[2].rows.is_none(),
            "rows counted once"
        );
        assert_eq!((entries[2].part, entries[2].parts), (Some(3), Some(3)));
        for entry in &entries {
            assert!(serde_json::to_vec(entry).expect("json").len() < anshin_crypto::merkle::MAX_ENTRY_LEN);
        }
        assert_eq!(parts_of(&Event::new(EventKind::CardRead)), 1);
    }

    #[test]
    fn failures_carry_the_code_only() {
        let err = Error::not_found("card");
        let entry = Entry::build(
            0,
            &Event::new(EventKind::CardRead),
            None,
            None,
            Some(&err),
            (0, 1),
        )
        .expect("entry");
        assert_eq!(entry.outcome, "failure");
        assert_eq!(entry.code.as_deref(), Some("not_found"));
        assert!(entry.actor.is_none());
    }
}
