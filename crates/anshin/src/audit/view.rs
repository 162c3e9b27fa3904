//! What the API shows of the audit log: checkpoints, tiles and proofs for
//! verifiers, entry listings for auditors, and each shopper's access history.

use anshin_crypto::merkle::{Hash, Tile, TileKind};
use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Entry, EventKind, field};
use crate::access::{Action, Actor};
use crate::app::App;
use crate::db::audit::{AuditFilter, AuditPage};
use crate::error::{Error, Result};
use crate::ids::{CustomerId, PrincipalId, TenantId, parse_or_404};

/// Most entries one page returns.
const MAX_PAGE: u32 = 1000;

/// Query of an entry listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this tenant (tenant-scoped keys always see only their own).
    pub tenant_id: Option<String>,
    /// Only this principal's actions.
    pub principal_id: Option<String>,
    /// From this time on (RFC 3339).
    pub since: Option<String>,
    /// Continue after this cursor (`next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// Query of a customer's access history.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// Continue after this cursor (`next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// One logged event.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedEvent {
    /// Position in the log; absent until the entry has been sequenced.
    pub index: Option<u64>,
    /// The entry exactly as logged.
    pub entry: Entry,
}

/// A page of logged events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub events: Vec<LoggedEvent>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// An inclusion or consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct Proof {
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// The proof's hashes, base64, in RFC 9162 order.
    pub hashes: Vec<String>,
}

/// Query of an inclusion proof.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// Index of the entry.
    pub index: u64,
    /// Tree size (default: the latest checkpoint's).
    pub tree_size: Option<u64>,
}

/// Query of a consistency proof.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The earlier tree size.
    pub old_size: u64,
    /// The later tree size (default: the latest checkpoint's).
    pub tree_size: Option<u64>,
}

pub(super) fn page_limit(limit: Option<u32>) -> Result<u32> {
    let limit = limit.unwrap_or(100);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::invalid("invalid_limit", "limit must be 1 to 1000"))
    }
}

fn events(page: AuditPage) -> Result<EventPage> {
    let events = page
        .entries
        .into_iter()
        .map(|row| {
            let entry = serde_json::from_slice(&row.entry)
                .map_err(|_| Error::internal(crate::db::StoreError::Corrupt("audit entry")))?;
            Ok(LoggedEvent {
                index: row.idx,
                entry,
            })
        })
        .collect::<Result<_>>()?;
    Ok(EventPage {
        events,
        next_after: page.next,
    })
}

fn proof(tree_size: u64, hashes: Vec<Hash>) -> Proof {
    Proof {
        tree_size,
        hashes: hashes.iter().map(|h| BASE64.encode(h)).collect(),
    }
}

impl App {
    /// The latest signed checkpoint (C2SP signed note).
    pub async fn audit_checkpoint(&self, actor: &Actor) -> Result<String> {
        actor.require(Action::ReadAudit)?;
        Ok(self.audit.head(&self.store).await?.checkpoint)
    }

    /// A tlog tile or entry bundle; the whole log spans tenants, so only
    /// global auditors and operators read it, and each read is itself logged
    /// (`audit.read`), as entry listings are.
    pub async fn audit_tile(&self, actor: &Actor, path: &str) -> Result<(TileKind, Tile, Vec<u8>)> {
        self.audited(actor, EventKind::AuditRead, async |event| {
            actor.require(Action::ReadAuditLog)?;
            event.fields(&[field::AUDIT]);
            self.audit.tile(&self.store, path).await
        })
        .await
    }

    /// The inclusion proof of an entry.
    pub async fn audit_inclusion(&self, actor: &Actor, query: InclusionQuery) -> Result<Proof> {
        actor.require(Action::ReadAudit)?;
        let (size, hashes) = self
            .audit
            .inclusion_proof(&self.store, query.index, query.tree_size)
            .await?;
        Ok(proof(size, hashes))
    }

    /// The consistency proof between two tree sizes.
    pub async fn audit_consistency(&self, actor: &Actor, query: ConsistencyQuery) -> Result<Proof> {
        actor.require(Action::ReadAudit)?;
        let (size, hashes) = self
            .audit
            .consistency_proof(&self.store, query.old_size, query.tree_size)
            .await?;
        Ok(proof(size, hashes))
    }

    /// Integrates pending entries and signs a checkpoint now. This takes the
    /// log's advisory lock and signs, so only global principals may force it;
    /// tenant auditors read the checkpoint `anshin serve` keeps current.
    pub async fn audit_checkpoint_now(&self, actor: &Actor) -> Result<String> {
        actor.require(Action::ReadAuditLog)?;
        Ok(self.audit.integrate(&self.store).await?.checkpoint)
    }

    /// Entries of the actor's tenant (every tenant for global principals).
    pub async fn audit_events(&self, actor: &Actor, query: EventQuery) -> Result<EventPage> {
        self.audited(actor, EventKind::AuditRead, async |event| {
            actor.require(Action::ReadAudit)?;
            event.fields(&[field::AUDIT]);
            let requested = TenantId::requested(query.tenant_id.as_deref())?;
            let tenant = match (&actor.tenant_id, requested) {
                (Some(own), None) => Some(own.clone()),
                (Some(own), Some(req)) if *own == req => Some(req),
                (Some(_), Some(_)) => return Err(Error::not_found("tenant")),
                (None, requested) => requested,
            };
            let principal = query
                .principal_id
                .as_deref()
                .map(|p| parse_or_404(PrincipalId::parse, p, "principal"))
                .transpose()?;
            let since_ms = query.since.as_deref().map(parse_time).transpose()?;
            if let Some(t) = &tenant {
                event.tenant(t);
            }
            self.audit.sequence(&self.store).await?;
            let page = self
                .store
                .audit_find(AuditFilter {
                    tenant_id: tenant.map(|t| t.to_string()),
                    principal_id: principal.map(|p| p.to_string()),
                    kind: None,
                    subject: None,
                    since_ms,
                    after: query.after,
                    limit: page_limit(query.limit)?,
                })
                .await?;
            event.rows(page.entries.len() as u64);
            events(page)
        })
        .await
    }

    /// Every recorded access to one customer's data: who (principal, role,
    /// shop), when, which field classes, for what purpose.
    pub async fn customer_access_log(
        &self,
        actor: &Actor,
        id: &str,
        query: AccessLogQuery,
    ) -> Result<EventPage> {
        self.audited(actor, EventKind::CustomerAccessLog, async |event| {
            actor.require(Action::ReadAudit)?;
            event.fields(&[field::AUDIT]);
            let id = parse_or_404(CustomerId::parse, id, "customer")?;
            let row = self.customer_row(actor.scope(), id.as_str()).await?;
            // The keyed hash finds entries by itself, with nothing the store
            // could refuse: so from keys read now, never a shredded tenant's
            // cached on this node.
            let keys = self.keyring.reload(&self.store, &row.tenant_id).await?;
            let subject = keys.fingerprint(crate::vault::customers::SUBJECT, row.id.as_str().as_bytes());
            event.tenant(&row.tenant_id).subject(subject);
            self.audit.sequence(&self.store).await?;
            let page = self
                .store
                .audit_find(AuditFilter {
                    tenant_id: Some(row.tenant_id.to_string()),
                    principal_id: None,
                    kind: None,
                    subject: Some(subject),
                    since_ms: None,
                    after: query.after,
                    limit: page_limit(query.limit)?,
                })
                .await?;
            event.rows(page.entries.len() as u64);
            events(page)
        })
        .await
    }
}

pub(super) fn parse_time(text: &str) -> Result<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
            Error::invalid(
                "invalid_time",
                "since must be an RFC 3339 time such as 2026-12-01T00:00:00Z",
            )
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| Error::invalid("invalid_time", "since is out of range"))
}
