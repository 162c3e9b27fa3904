//! Signed integrity baselines kept off the shop's host: `anshin integrity
//! baseline|approve --server URL` sends each new baseline here, and `anshin
//! integrity check|watch --server URL` fetches the newest one and checks the
//! files against it, so an attacker in control of the shop's host cannot swap
//! the local baseline unseen (a local file that differs from the stored one
//! is itself an alert there).
//!
//! Each host of a tenant has one pinned Ed25519 public key: the first
//! baseline stored pins the key that signed it, and every later one must be
//! signed by it (`409 integrity_key_mismatch` otherwise). Replacing the key
//! is an explicit, audited request that raises an alert. Every version is
//! kept with who approved it and why (the file's last history entry), the
//! principal that sent it, and whether its history continues the previous
//! version's; each stored version raises a `host_baseline_changed` alert
//! (low for a first baseline or an approval that continues the history, high
//! for a history that does not), so an approval made by an intruder with the
//! host's key is seen where every other alert is.

use anshin_integrity::baseline::{self, BaselineError, Payload};
use anshin_integrity::key::{parse_public, public_hex};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::detect::{AlertKind, Severity};
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::baselines::{BaselineRow, PinRow};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::TenantId;

/// Largest baseline file accepted (a 20,000-file shop's is about 7 MiB).
pub const MAX_BASELINE_BYTES: usize = 64 << 20;

/// The tenant of a baseline request (global keys name it; a tenant key uses its own).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// The tenant (global keys only).
    pub tenant_id: Option<String>,
}

/// What the server made of a stored baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineStored {
    /// The host the baseline is of (from the signed file).
    pub host: String,
    /// Its version (1 for the host's first).
    pub version: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The host's pinned public key (64 hex).
    pub public_key: String,
    /// True when this baseline pinned the key (the host's first).
    pub pinned: bool,
    /// Whether its history continues the previous version's.
    pub continues: bool,
    /// False when the same file was stored before (nothing was added).
    pub stored: bool,
}

/// One stored version, as the history lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineVersion {
    /// Version, 1 for the first.
    pub version: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The key that signed it.
    pub public_key: String,
    /// `baseline` (a first recording) or `approve` (accepted changes).
    pub action: String,
    /// Who approved (`--by`).
    pub approved_by: String,
    /// Why (`--reason`).
    pub reason: String,
    /// When it was approved on the host (RFC 3339).
    pub approved_at: String,
    /// Files the approval accepted as added.
    pub added: i64,
    /// Files it accepted as removed.
    pub removed: i64,
    /// Files it accepted as changed.
    pub changed: i64,
    /// Whether its history continues the previous version's.
    pub continues: bool,
    /// The principal that sent it.
    pub uploaded_by: String,
    /// When it arrived (RFC 3339).
    pub uploaded_at: String,
}

/// A host's pinned key and every stored version of its baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineHistory {
    /// The host.
    pub host: String,
    /// Its pinned public key.
    pub public_key: String,
    /// Who pinned it (a principal id).
    pub pinned_by: String,
    /// When (RFC 3339).
    pub pinned_at: String,
    /// Newest first.
    pub versions: Vec<BaselineVersion>,
}

/// A key to pin for a host in place of the current one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPin {
    /// The tenant (global keys only).
    pub tenant_id: Option<String>,
    /// The new public key, 64 hex (`anshin integrity public-key`).
    pub public_key: String,
    /// Why the key changed, 3 to 1000 characters.
    pub reason: String,
}

/// A host name as the baseline records it: 1 to 253 letters, digits, `.`, `-`, `_`.
pub fn parse_host(raw: &str) -> Result<String> {
    let valid = !raw.is_empty()
        && raw.len() <= 253
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !valid {
        return Err(Error::invalid(
            "invalid_host",
            "the host name must be 1 to 253 letters, digits, '.', '-' or '_'",
        ));
    }
    Ok(raw.to_owned())
}

fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

fn invalid_baseline(err: &BaselineError) -> Error {
    Error::invalid(
        "invalid_baseline",
        match err {
            BaselineError::Unreadable(_) => {
                "the baseline's signature verifies but its content cannot be read"
            }
            _ => {
                "the body must be a baseline file signed by `anshin integrity baseline` or `approve`, unaltered"
            }
        },
    )
}

impl App {
    /// Stores a signed baseline for the host it names (operators).
    pub async fn store_baseline(
        &self,
        actor: &Actor,
        query: TenantQuery,
        file: &[u8],
    ) -> Result<BaselineStored> {
        self.audited(actor, EventKind::IntegrityBaselineStore, async |event| {
            actor.require(Action::StoreBaseline)?;
            let tenant = self.tenant_in_scope(actor, query.tenant_id.as_deref()).await?;
            event.tenant(&tenant);
            let signer = baseline::signer(file).map_err(|e| invalid_baseline(&e))?;
            let payload = Payload::decode(file, &signer).map_err(|e| invalid_baseline(&e))?;
            let host = parse_host(&payload.host)?;
            let signer = public_hex(&signer);
            let pin = self.store.baseline_pin(&tenant, &host).await?;
            if let Some(pin) = &pin
                && pin.public_key != signer
            {
                return Err(key_mismatch(&host, &signer, &pin.public_key));
            }
            let sha256 = sha256_hex(file);
            let previous = self.store.baseline_latest(&tenant, &host).await?;
            let first = previous.is_none();
            if let Some(previous) = &previous
                && previous.sha256 == sha256
            {
                return Ok(BaselineStored {
                    host,
                    version: previous.version,
                    sha256,
                    public_key: signer,
                    pinned: false,
                    continues: previous.continues,
                    stored: false,
                });
            }
            let continues = match &previous {
                None => true,
                Some(previous) => continues(&previous.file, &previous.public_key, &payload),
            };
            let Some(last) = payload.history.last() else {
                return Err(Error::invalid(
                    "invalid_baseline",
                    "the baseline has no history entry (who recorded or approved it)",
                ));
            };
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let row = BaselineRow {
                tenant_id: tenant.clone(),
                host: host.clone(),
                version: 0,
                sha256: sha256.clone(),
                public_key: signer,
                action: last.action.clone(),
                approved_by: last.by.clone(),
                reason: last.reason.clone(),
                approved_at: last.at.clone(),
                added: count(last.added),
                removed: count(last.removed),
                changed: count(last.changed),
                continues,
                uploaded_by: actor.principal_id.clone(),
                uploaded_at: clock::now_ms(),
                file: file.to_vec(),
            };
            self.record_now(actor, event).await?;
            if pin.is_none() {
                let pin = PinRow {
                    tenant_id: tenant.clone(),
                    host: host.clone(),
                    public_key: row.public_key.clone(),
                    pinned_by: actor.principal_id.clone(),
                    pinned_at: clock::now_ms(),
                };
                // Another request may have pinned first: then its key must be this one.
                if !self.store.baseline_pin_set(pin, false).await?
                    && let Some(won) = self.store.baseline_pin(&tenant, &host).await?
                    && won.public_key != row.public_key
                {
                    return Err(key_mismatch(&host, &row.public_key, &won.public_key));
                }
            }
            let public_key = row.public_key.clone();
            let version = self.store.baseline_insert(row).await?;
            let (severity, what) = match (first, continues) {
                (true, _) => (Severity::Low, "first baseline stored; its key is now pinned"),
                (false, true) => (Severity::Low, "baseline replaced by an approval"),
                (false, false) => (
                    Severity::High,
                    "baseline replaced by one whose history does not continue the stored one (recorded anew, or rewritten)",
                ),
            };
            self.raise(
                AlertKind::HostBaselineChanged,
                severity,
                &tenant,
                format!(
                    "host {host}: {what}: version {version}, {} by {} ({}): {} added, {} removed, {} changed",
                    last.action, last.by, last.reason, last.added, last.removed, last.changed
                ),
                format!("baseline:{tenant}:{host}:{version}"),
            )
            .await?;
            Ok(BaselineStored {
                host,
                version,
                sha256,
                public_key,
                pinned: first,
                continues,
                stored: true,
            })
        })
        .await
    }

    /// The newest stored baseline of a host and the key pinned for it (operators, auditors).
    pub async fn stored_baseline(
        &self,
        actor: &Actor,
        host: &str,
        query: TenantQuery,
    ) -> Result<(BaselineRow, PinRow)> {
        self.audited(actor, EventKind::IntegrityBaselineRead, async |event| {
            let (tenant, host) = self
                .baseline_scope(
                    actor,
                    Action::ReadBaselines,
                    event,
                    host,
                    query.tenant_id.as_deref(),
                )
                .await?;
            let (Some(row), Some(pin)) = (
                self.store.baseline_latest(&tenant, &host).await?,
                self.store.baseline_pin(&tenant, &host).await?,
            ) else {
                return Err(Error::not_found("baseline"));
            };
            Ok((row, pin))
        })
        .await
    }

    /// A host's pinned key and every stored version (operators, auditors).
    pub async fn baseline_history(
        &self,
        actor: &Actor,
        host: &str,
        query: TenantQuery,
    ) -> Result<BaselineHistory> {
        self.audited(actor, EventKind::IntegrityBaselineRead, async |event| {
            let (tenant, host) = self
                .baseline_scope(
                    actor,
                    Action::ReadBaselines,
                    event,
                    host,
                    query.tenant_id.as_deref(),
                )
                .await?;
            let history = self.history_view(&tenant, host).await?;
            event.rows(history.versions.len() as u64);
            Ok(history)
        })
        .await
    }

    async fn history_view(&self, tenant: &TenantId, host: String) -> Result<BaselineHistory> {
        let pin = self
            .store
            .baseline_pin(tenant, &host)
            .await?
            .ok_or_else(|| Error::not_found("baseline"))?;
        let rows = self.store.baseline_history(tenant, &host).await?;
        Ok(BaselineHistory {
            host,
            public_key: pin.public_key,
            pinned_by: pin.pinned_by.to_string(),
            pinned_at: clock::rfc3339_millis(pin.pinned_at),
            versions: rows
                .into_iter()
                .map(|r| BaselineVersion {
                    version: r.version,
                    sha256: r.sha256,
                    public_key: r.public_key,
                    action: r.action,
                    approved_by: r.approved_by,
                    reason: r.reason,
                    approved_at: r.approved_at,
                    added: r.added,
                    removed: r.removed,
                    changed: r.changed,
                    continues: r.continues,
                    uploaded_by: r.uploaded_by.to_string(),
                    uploaded_at: clock::rfc3339_millis(r.uploaded_at),
                })
                .collect(),
        })
    }

    /// Pins a new key for a host in place of the current one (operators);
    /// raises a high alert, since an intruder would want exactly this.
    pub async fn pin_baseline_key(&self, actor: &Actor, host: &str, new: NewPin) -> Result<BaselineHistory> {
        self.audited(actor, EventKind::IntegrityKeyPin, async |event| {
            let (tenant, host) = self
                .baseline_scope(
                    actor,
                    Action::StoreBaseline,
                    event,
                    host,
                    new.tenant_id.as_deref(),
                )
                .await?;
            let key = parse_public(&new.public_key).map_err(|_| {
                Error::invalid(
                    "invalid_public_key",
                    "public_key must be 64 hexadecimal characters",
                )
            })?;
            let reason = new.reason.trim();
            if !(3..=1000).contains(&reason.chars().count()) {
                return Err(Error::invalid(
                    "invalid_reason",
                    "reason must be 3 to 1000 characters",
                ));
            }
            let before = self.store.baseline_pin(&tenant, &host).await?;
            self.record_now(actor, event).await?;
            let key = public_hex(&key);
            self.store
                .baseline_pin_set(
                    PinRow {
                        tenant_id: tenant.clone(),
                        host: host.clone(),
                        public_key: key.clone(),
                        pinned_by: actor.principal_id.clone(),
                        pinned_at: clock::now_ms(),
                    },
                    true,
                )
                .await?;
            let old = before.map_or_else(|| "none".to_owned(), |p| p.public_key);
            self.raise(
                AlertKind::HostBaselineChanged,
                Severity::High,
                &tenant,
                format!(
                    "host {host}: baseline key re-pinned by {} ({reason})\n- {old}\n+ {key}",
                    actor.principal_id
                ),
                format!("baseline-key:{tenant}:{host}:{key}"),
            )
            .await?;
            self.history_view(&tenant, host).await
        })
        .await
    }

    /// Checks the actor may do `action`, and resolves the tenant and host a
    /// request names (a malformed host is as unknown as a missing one).
    async fn baseline_scope(
        &self,
        actor: &Actor,
        action: Action,
        event: &mut Event,
        host: &str,
        tenant: Option<&str>,
    ) -> Result<(TenantId, String)> {
        actor.require(action)?;
        let host = parse_host(host).map_err(|_| Error::not_found("baseline"))?;
        let tenant = self.tenant_in_scope(actor, tenant).await?;
        event.tenant(&tenant);
        Ok((tenant, host))
    }
}

fn key_mismatch(host: &str, signer: &str, pinned: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        "integrity_key_mismatch",
        format!(
            "the baseline of {host} is signed by key {signer}, but the key pinned for the host is {pinned}; \
             if the host's key was replaced on purpose, pin the new one (PUT /v1/integrity/hosts/{host}/key)"
        ),
    )
}

/// Whether `payload`'s history starts with the history of the stored `file`.
fn continues(file: &[u8], public_key: &str, payload: &Payload) -> bool {
    let Ok(key) = parse_public(public_key) else {
        return false;
    };
    Payload::decode(file, &key).is_ok_and(|previous| payload.history.starts_with(&previous.history))
}
