//! Key rotation: KEK versions, the rewrap job, retirement, automatic rotation,
//! and dual control over the manual operations (PCI DSS 3.6.1.2, 3.7).
//!
//! A rotation adds a KEK version that new records use at once. The rewrap job
//! then moves every record's data key to the newest version, in batches, each
//! row updated only if it still holds the version it was read with; its state
//! is the data itself (each record's `kek_version`), so after a crash or a
//! restart it carries on where it stopped. A version is destroyed only by a
//! retirement, which the store refuses while any record still uses it.
//!
//! Rotations, retirements, shredding and changes of the root of trust asked
//! for by people need two operators: one requests (with a reason), another
//! approves before the request expires.
//! Automatic rotation (by age, or before a version nears the AES-GCM
//! random-nonce bound) needs no approval: it only ever adds a key.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::StoreError;
use crate::db::keys::{KeyOperation, KeyRequestRow, KeyVersionRow, RetireOutcome, RootTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyRequestId, TenantId, parse_or_404};
use crate::vault::keys::KEYS_REFRESH;

/// The tenants a rewrap pass found clean, with the version they were clean at.
#[derive(Default)]
pub struct RewrapState(std::sync::Mutex<std::collections::HashMap<TenantId, u32>>);

impl RewrapState {
    fn is_clean(&self, tenant: &TenantId, version: u32) -> bool {
        self.0.lock().is_ok_and(|map| map.get(tenant) == Some(&version))
    }

    fn mark_clean(&self, tenant: TenantId, version: u32) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(tenant, version);
        }
    }
}

/// Records re-wrapped per store transaction.
pub const REWRAP_BATCH: u32 = 2_000;
/// How long a key request waits for its approval.
pub const REQUEST_TTL_MS: i64 = 24 * 3_600_000;

/// When KEK versions are rotated without anyone asking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RotationPolicy {
    /// Age in days after which a tenant's current KEK version is replaced
    /// (its cryptoperiod); 0 turns age-based rotation off.
    #[serde(rename = "key_rotate_after_days")]
    pub after_days: u32,
    /// Encryptions after which the current version is replaced: below
    /// 2^32, the bound for random 96-bit nonces under one AES-GCM key.
    #[serde(rename = "key_rotate_after_encryptions")]
    pub after_encryptions: u64,
    /// Pause between rewrap batches, so serving goes on.
    #[serde(rename = "key_rewrap_pause_ms")]
    pub rewrap_pause_ms: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            after_days: 90,
            // Half the bound: the counts nodes report lag behind by at most
            // one flush interval, and a crash loses at most that much.
            after_encryptions: 1 << 31,
            rewrap_pause_ms: 2,
        }
    }
}

impl RotationPolicy {
    /// The pause between rewrap batches.
    pub fn pause(&self) -> Duration {
        Duration::from_millis(self.rewrap_pause_ms)
    }
}

/// Query of `/v1/keys/status`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyStatusQuery {
    /// The tenant (global keys only; a tenant key sees its own; all if unset).
    pub tenant_id: Option<String>,
}

/// One KEK version as `keys status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionStatus {
    /// The version.
    pub version: u32,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Records whose data key it wraps.
    pub records: u64,
    /// Encryptions under it the nodes have reported.
    pub encryptions: u64,
    #[serde(skip)]
    created_at_ms: i64,
}

/// A tenant's key state.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantKeyStatus {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// The version new records use.
    pub current_version: u32,
    /// Records still to re-wrap to the current version.
    pub pending_rewrap: u64,
    /// Every KEK version the tenant holds.
    pub versions: Vec<KeyVersionStatus>,
}

/// What someone asks to do.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// `rotate` (add a KEK version), `retire` (destroy versions below
    /// `below`), `shred_tenant` (destroy every key of the tenant: all its
    /// cards, customers and orders become unreadable for good, backups
    /// included) or `change_root` (replace the installation's root of trust
    /// with `target`; global operators only, carried out offline by
    /// `anshin keys change-root --request ID`).
    #[schema(example = "rotate")]
    pub operation: String,
    /// For `retire`: the lowest version kept.
    #[serde(default)]
    pub below: Option<u32>,
    /// For `change_root`: the new root of trust, `file`, `shares:K/N` (K of N
    /// custodian shares) or `pkcs11` (a new key in the configured token).
    #[serde(default)]
    #[schema(example = "shares:3/5")]
    pub target: Option<String>,
    /// Why; kept with the request.
    #[schema(example = "annual cryptoperiod")]
    pub reason: String,
    /// Tenant; only for principals not bound to a tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A key request and its decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRequest {
    /// Its id.
    #[schema(value_type = String)]
    pub id: KeyRequestId,
    /// The tenant whose keys it concerns; none for `change_root`.
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<TenantId>,
    /// `rotate`, `retire`, `shred_tenant` or `change_root`.
    pub operation: &'static str,
    /// For `retire`: the lowest version kept.
    pub below: Option<u32>,
    /// For `change_root`: the new root of trust.
    pub target: Option<String>,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// Until when it may be approved (RFC 3339).
    pub expires_at: String,
    /// `pending`, `approved`, `rejected`, `expired` or (an approved
    /// `change_root`) `executed`.
    pub status: &'static str,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When (RFC 3339).
    pub decided_at: Option<String>,
    /// What the approved operation did: the new version for `rotate`, the
    /// number of versions destroyed for `retire`, the number of data keys
    /// destroyed for `shred_tenant`.
    pub result: Option<u64>,
    /// When an approved `change_root` was carried out (RFC 3339).
    pub executed_at: Option<String>,
}

impl KeyRequest {
    fn from_row(row: KeyRequestRow, now: i64, result: Option<u64>) -> Self {
        let status = match row.outcome.as_deref() {
            Some("approved") if row.executed_at.is_some() => "executed",
            Some("approved") => "approved",
            Some(_) => "rejected",
            None if row.expires_at <= now => "expired",
            None => "pending",
        };
        let (below, target) = match row.operation {
            KeyOperation::Retire { below } => (Some(below), None),
            KeyOperation::ChangeRoot(target) => (None, Some(target.to_text())),
            KeyOperation::Rotate | KeyOperation::ShredTenant => (None, None),
        };
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            operation: row.operation.as_str(),
            below,
            target,
            reason: row.reason,
            requested_by: row.requested_by.to_string(),
            requested_at: clock::rfc3339(row.requested_at),
            expires_at: clock::rfc3339(row.expires_at),
            status,
            decided_by: row.decided_by.map(|p| p.to_string()),
            decided_at: row.decided_at.map(clock::rfc3339),
            result,
            executed_at: row.executed_at.map(clock::rfc3339),
        }
    }
}

fn status_of(tenant: TenantId, rows: Vec<KeyVersionRow>) -> TenantKeyStatus {
    let current_version = rows.iter().map(|r| r.version).max().unwrap_or(0);
    TenantKeyStatus {
        tenant_id: tenant,
        current_version,
        pending_rewrap: rows
            .iter()
            .filter(|r| r.version < current_version)
            .map(|r| r.records)
            .sum(),
        versions: rows
            .into_iter()
            .map(|r| KeyVersionStatus {
                version: r.version,
                created_at: clock::rfc3339(r.created_at),
                records: r.records,
                encryptions: r.encryptions,
                created_at_ms: r.created_at,
            })
            .collect(),
    }
}

/// Groups version rows (ordered by tenant) into one status per tenant.
fn statuses(rows: Vec<KeyVersionRow>) -> Vec<TenantKeyStatus> {
    let mut out: Vec<TenantKeyStatus> = Vec::new();
    let mut group: Vec<KeyVersionRow> = Vec::new();
    for row in rows {
        if group.first().is_some_and(|g| g.tenant_id != row.tenant_id) {
            let tenant = group[0].tenant_id.clone();
            out.push(status_of(tenant, std::mem::take(&mut group)));
        }
        group.push(row);
    }
    if let Some(first) = group.first() {
        let tenant = first.tenant_id.clone();
        out.push(status_of(tenant, group));
    }
    out
}

fn operation(input: &NewKeyRequest) -> Result<KeyOperation> {
    match (input.operation.as_str(), input.below, input.target.as_deref()) {
        ("rotate", None, None) => Ok(KeyOperation::Rotate),
        ("shred_tenant", None, None) => Ok(KeyOperation::ShredTenant),
        ("retire", Some(below), None) if below >= 2 => Ok(KeyOperation::Retire { below }),
        ("retire", _, None) => Err(Error::invalid(
            "invalid_below",
            "retire needs `below`: the lowest KEK version to keep (2 or more)",
        )),
        ("change_root", None, Some(target)) => RootTarget::parse(target)
            .map(KeyOperation::ChangeRoot)
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_target",
                    "target must be `file`, `shares:K/N` (1 ≤ K ≤ N ≤ 255) or `pkcs11`",
                )
                .with_param("target")
            }),
        _ => Err(Error::invalid(
            "invalid_operation",
            "operation must be `rotate`, `retire`, `shred_tenant` or `change_root` \
             (`below` only with retire, `target` only with change_root)",
        )),
    }
}

impl App {
    /// The outcome of a write that stored new data keys made with `tenant`'s
    /// cached keys. The store refuses one under a KEK version it no longer
    /// holds ([`StoreError::KeyGone`]: retired, or the tenant shredded, on
    /// another node since this node read its keys); the keys are then read
    /// again, and the answer is what they give: 404 for a shredded tenant,
    /// else 409 `keys_changed`, to retry with the new ones.
    pub(crate) async fn keys_checked<T>(
        &self,
        tenant: &TenantId,
        outcome: std::result::Result<T, StoreError>,
    ) -> Result<T> {
        match outcome {
            Err(StoreError::KeyGone) => {
                self.keyring.reload(&self.store, tenant).await?;
                Err(Error::new(
                    ErrorKind::Conflict,
                    "keys_changed",
                    "the tenant's keys changed on another node while this was being stored; nothing was stored: retry",
                ))
            }
            outcome => Ok(outcome?),
        }
    }

    /// KEK versions and the records each wraps, for one tenant or (global
    /// principals) all.
    pub async fn key_status(&self, actor: &Actor, tenant: Option<&str>) -> Result<Vec<TenantKeyStatus>> {
        actor.require(Action::ReadKeys)?;
        let requested = TenantId::requested(tenant)?;
        let scope = match (&actor.tenant_id, requested) {
            (None, None) => None,
            (_, requested) => Some(actor.tenant_for(requested.as_ref())?),
        };
        self.key_status_of(scope.as_ref()).await
    }

    /// [`App::key_status`] without an actor, for the local command line.
    pub async fn key_status_of(&self, tenant: Option<&TenantId>) -> Result<Vec<TenantKeyStatus>> {
        Ok(statuses(self.store.kek_versions(tenant, true).await?))
    }

    /// Asks for a manual key operation; another operator must approve it.
    pub async fn request_key_operation(&self, actor: &Actor, input: NewKeyRequest) -> Result<KeyRequest> {
        self.audited(actor, EventKind::KeyRequest, async |event| {
            actor.require(Action::ManageKeys)?;
            let operation = operation(&input)?;
            let tenant = if let KeyOperation::ChangeRoot(_) = operation {
                if actor.tenant_id.is_some() || input.tenant_id.is_some() {
                    return Err(Error::new(
                        ErrorKind::Forbidden,
                        "global_operation",
                        "the root of trust belongs to the whole installation: only global operators ask to change it, without a tenant",
                    ));
                }
                None
            } else {
                let requested = TenantId::requested(input.tenant_id.as_deref())?;
                let tenant = actor.tenant_for(requested.as_ref())?;
                self.store
                    .tenant(&tenant)
                    .await?
                    .ok_or_else(|| Error::not_found("tenant"))?;
                event.tenant(&tenant);
                Some(tenant)
            };
            let reason = crate::text::label(&input.reason, 500, "invalid_reason", "reason")?;
            let now = clock::now_ms();
            let row = KeyRequestRow {
                id: KeyRequestId::generate()?,
                tenant_id: tenant,
                operation,
                reason,
                requested_by: actor.principal_id.clone(),
                requested_at: now,
                expires_at: now + REQUEST_TTL_MS,
                decided_by: None,
                decided_at: None,
                outcome: None,
                executed_at: None,
            };
            event.resource(&row.id);
            self.record_now(actor, event).await?;
            self.store.insert_key_request(row.clone()).await?;
            Ok(KeyRequest::from_row(row, now, None))
        })
        .await
    }

    /// Key requests of the actor's tenant (all for global principals), newest first.
    pub async fn key_requests(&self, actor: &Actor) -> Result<Vec<KeyRequest>> {
        actor.require(Action::ReadKeys)?;
        let now = clock::now_ms();
        Ok(self
            .store
            .key_requests(actor.tenant_id.as_ref(), 200)
            .await?
            .into_iter()
            .map(|row| KeyRequest::from_row(row, now, None))
            .collect())
    }

    /// Approves (and carries out) or rejects a key request. The approver must
    /// be another principal than the requester (dual control).
    pub async fn decide_key_request(&self, actor: &Actor, id: &str, approve: bool) -> Result<KeyRequest> {
        let kind = if approve {
            EventKind::KeyApprove
        } else {
            EventKind::KeyReject
        };
        self.audited(actor, kind, async |event| {
            actor.require(Action::ManageKeys)?;
            let id = parse_or_404(KeyRequestId::parse, id, "key request")?;
            event.resource(&id);
            let row = self
                .store
                .key_request(&id)
                .await?
                .filter(|r| {
                    r.tenant_id
                        .as_ref()
                        .map_or(actor.tenant_id.is_none(), |t| actor.sees_tenant(t))
                })
                .ok_or_else(|| Error::not_found("key request"))?;
            if let Some(tenant) = &row.tenant_id {
                event.tenant(tenant);
            }
            if row.requested_by == actor.principal_id {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    "self_approval",
                    "a key request must be decided by another operator than the one who made it (dual control)",
                ));
            }
            let now = clock::now_ms();
            self.record_now(actor, event).await?;
            let outcome = if approve { "approved" } else { "rejected" };
            if !self.store.decide_key_request(&id, &actor.principal_id, now, outcome).await? {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "request_closed",
                    "this key request was decided already or has expired; make a new one",
                ));
            }
            let result = match (approve, &row.tenant_id) {
                (true, Some(tenant)) => Some(self.carry_out(tenant, row.operation, now).await?),
                // A root change is carried out offline, by `anshin keys change-root`.
                _ => None,
            };
            let decided = self.store.key_request(&id).await?.ok_or_else(|| Error::not_found("key request"))?;
            Ok(KeyRequest::from_row(decided, now, result))
        })
        .await
    }

    async fn carry_out(&self, tenant: &TenantId, operation: KeyOperation, now: i64) -> Result<u64> {
        match operation {
            KeyOperation::ChangeRoot(_) => Err(Error::internal(StoreError::Corrupt(
                "a root change names a tenant",
            ))),
            KeyOperation::ShredTenant => {
                let destroyed = self.store.shred_tenant(tenant, now).await?;
                self.keyring.forget(tenant);
                // Its principals' keys must stop working at once on this node
                // (other nodes re-read credentials on their own schedule).
                self.auth.clear();
                Ok(destroyed)
            }
            KeyOperation::Rotate => Ok(u64::from(self.keyring.rotate(&self.store, tenant, now).await?)),
            KeyOperation::Retire { below } => {
                let outcome = self.store.retire_kek_versions(tenant, below).await?;
                self.keyring.forget(tenant);
                match outcome {
                    RetireOutcome::Destroyed(n) => Ok(n),
                    RetireOutcome::InUse(records) => Err(Error::new(
                        ErrorKind::Conflict,
                        "key_version_in_use",
                        format!(
                            "{records} records still use a KEK version below {below}: wait for the rewrap to finish (`anshin keys status`)"
                        ),
                    )),
                    RetireOutcome::WouldRemoveCurrent => Err(Error::new(
                        ErrorKind::Conflict,
                        "would_remove_current",
                        "retiring every version below that would leave the tenant without a KEK; rotate first",
                    )),
                }
            }
        }
    }

    /// Re-wraps `tenant`'s data keys to its current KEK version in one pass
    /// through the key state in key id order, in batches: while one batch is
    /// written, the next is read and re-wrapped. `progress` hears each stored
    /// batch.
    async fn rewrap_pass(
        &self,
        tenant: &TenantId,
        pause: Duration,
        progress: &mut impl FnMut(u64),
    ) -> Result<u64> {
        let mut total = 0;
        let mut after: Option<i64> = None;
        let mut writing: Option<tokio::task::JoinHandle<std::result::Result<u64, StoreError>>> = None;
        loop {
            let keys = self.keyring.tenant(&self.store, tenant).await?;
            let stale = self
                .store
                .stale_record_keys(tenant, keys.current_version(), after, REWRAP_BATCH)
                .await?;
            let Some(last) = stale.last() else { break };
            after = Some(last.id);
            let mut rewrapped = Vec::with_capacity(stale.len());
            for row in stale {
                let keys = if keys.holds(row.kek_version) {
                    keys.clone()
                } else {
                    self.keyring
                        .tenant_holding(&self.store, tenant, Some(row.kek_version))
                        .await?
                };
                let wrapped = keys.rewrap(&row)?;
                rewrapped.push((row, keys.current_version(), wrapped));
            }
            if let Some(previous) = writing.take() {
                let stored = previous.await.map_err(Error::internal)??;
                total += stored;
                progress(stored);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            let store = self.store.clone();
            writing = Some(tokio::spawn(
                async move { store.store_rewrapped(rewrapped).await },
            ));
        }
        if let Some(last) = writing {
            let stored = last.await.map_err(Error::internal)??;
            total += stored;
            progress(stored);
        }
        Ok(total)
    }

    /// Re-wraps every tenant's data keys until none is left on an old version,
    /// pausing between batches; `progress` hears each batch. A pass that
    /// re-wraps something is followed by another (a node that had not yet seen
    /// the rotation may have written behind it). A tenant found clean once its
    /// current version is older than twice [`KEYS_REFRESH`] (so every node
    /// writes with it) is not read again until its version changes.
    pub async fn rewrap_all(&self, pause: Duration, mut progress: impl FnMut(u64)) -> Result<u64> {
        let mut total = 0;
        let now = clock::now_ms();
        let settled_ms = i64::try_from(KEYS_REFRESH.as_millis() * 2).unwrap_or(i64::MAX);
        for status in statuses(self.store.kek_versions(None, false).await?) {
            let tenant = status.tenant_id;
            if self.rewrapped.is_clean(&tenant, status.current_version) {
                continue;
            }
            let created = status
                .versions
                .iter()
                .find(|v| v.version == status.current_version)
                .map_or(now, |v| v.created_at_ms);
            loop {
                let n = self.rewrap_pass(&tenant, pause, &mut progress).await?;
                total += n;
                if n == 0 {
                    break;
                }
            }
            if now - created >= settled_ms {
                self.rewrapped.mark_clean(tenant, status.current_version);
            }
        }
        Ok(total)
    }

    /// Rotates every tenant whose current KEK version is older than the
    /// policy allows or nears its encryption bound, after adding this node's
    /// encryption counts. Returns the tenants rotated, with their new version.
    pub async fn rotate_due(&self, policy: &RotationPolicy) -> Result<Vec<(TenantId, u32)>> {
        let counts = self.keyring.take_encryption_counts();
        if !counts.is_empty() {
            self.store.add_encryptions(counts).await?;
        }
        let now = clock::now_ms();
        let max_age_ms = i64::from(policy.after_days) * 86_400_000;
        let mut rotated = Vec::new();
        for status in self.key_status_of(None).await? {
            let Some(current) = status
                .versions
                .iter()
                .find(|v| v.version == status.current_version)
            else {
                continue;
            };
            let too_old = policy.after_days > 0 && now - current.created_at_ms >= max_age_ms;
            let too_used = current.encryptions >= policy.after_encryptions;
            if too_old || too_used {
                let mut event = Event::new(EventKind::KeyRotate);
                event.tenant(&status.tenant_id);
                self.record(None, None, &event, None).await?;
                let version = self.keyring.rotate(&self.store, &status.tenant_id, now).await?;
                tracing::info!(tenant = %status.tenant_id, version, too_old, too_used, "KEK rotated by policy");
                rotated.push((status.tenant_id, version));
            }
        }
        Ok(rotated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    fn row(tenant: &TenantId, version: u32, records: u64) -> KeyVersionRow {
        KeyVersionRow {
            tenant_id: tenant.clone(),
            version,
            created_at: 0,
            records,
            encryptions: 0,
        }
    }

    #[test]
    fn statuses_group_by_tenant_and_count_what_is_left_to_rewrap() {
        let (a, b) = (
            TenantId::generate().expect("rng"),
            TenantId::generate().expect("rng"),
        );
        let all = statuses(vec![row(&a, 1, 5), row(&a, 2, 7), row(&a, 3, 1), row(&b, 1, 4)]);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].current_version, all[0].pending_rewrap), (3, 12));
        assert_eq!((all[1].current_version, all[1].pending_rewrap), (1, 0));
    }

    #[test]
    fn requests_are_parsed_strictly() {
        let with_target = |op: &str, below, target: Option<&str>| NewKeyRequest {
            operation: op.into(),
            below,
            target: target.map(str::to_owned),
            reason: "r".into(),
            tenant_id: None,
        };
        let input = |op: &str, below| with_target(op, below, None);
        assert_eq!(operation(&input("rotate", None)).ok(), Some(KeyOperation::Rotate));
        assert_eq!(
            operation(&input("retire", Some(3))).ok(),
            Some(KeyOperation::Retire { below: 3 })
        );
        assert_eq!(
            operation(&input("retire", None)).err().map(|e| e.code()),
            Some("invalid_below")
        );
        assert_eq!(
            operation(&input("retire", Some(1))).err().map(|e| e.code()),
            Some("invalid_below")
        );
        assert_eq!(
            operation(&input("rotate", Some(2))).err().map(|e| e.code()),
            Some("invalid_operation")
        );
        assert_eq!(
            operation(&input("destroy", None)).err().map(|e| e.code()),
            Some("invalid_operation")
        );
        assert_eq!(
            operation(&with_target("change_root", None, Some("shares:3/5"))).ok(),
            Some(KeyOperation::ChangeRoot(RootTarget::Shares {
                threshold: 3,
                shares: 5
            }))
        );
        assert_eq!(
            operation(&with_target("change_root", None, Some("pkcs11"))).ok(),
            Some(KeyOperation::ChangeRoot(RootTarget::Pkcs11))
        );
        for bad in ["shares:6/5", "shares:0/5", "shares:3", "hsm", "", "file "] {
            assert_eq!(
                operation(&with_target("change_root", None, Some(bad)))
                    .err()
                    .map(|e| e.code()),
                Some("invalid_target"),
                "{bad}"
            );
        }
        assert_eq!(
            operation(&input("change_root", None)).err().map(|e| e.code()),
            Some("invalid_operation")
        );
        assert_eq!(
            operation(&with_target("rotate", None, Some("file")))
                .err()
                .map(|e| e.code()),
            Some("invalid_operation")
        );
    }
}
