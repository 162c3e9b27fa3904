//! Storage of the credential lifecycle: API keys with their expiry (a principal
//! holds several during a rotation's overlap), principals' IP allow-lists, the
//! per-tenant key policy, and the failed-authentication counters and lockouts
//! that every node shares.
//!
//! Keys are rows of `principal_keys`, found by the SHA-256 hash of the key; the
//! key itself is never stored. Expired and revoked keys stay, so that using one
//! can be told apart from using a key that never existed.

use super::{Store, StoreError};
use crate::access::cidr::AllowList;
use crate::ids::{PrincipalId, TenantId};

/// One API key of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// SHA-256 of the key.
    pub key_hash: [u8; 32],
    /// Its principal.
    pub principal_id: PrincipalId,
    /// When it was issued (ms since the epoch).
    pub created_at: i64,
    /// When it stops working: the tenant's key lifetime after issue, or the end
    /// of the overlap once a newer key replaced it.
    pub expires_at: i64,
    /// When it was withdrawn outright (its principal was disabled).
    pub revoked_at: Option<i64>,
}

impl KeyRow {
    /// True if the key may still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A tenant's settings as stored: `None` means the default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettingsRow {
    /// Lifetime of new API keys, in days.
    pub key_lifetime_days: Option<u32>,
    /// How long a replaced key keeps working after a rotation, in hours.
    pub key_overlap_hours: Option<u32>,
    /// Days after completion the selling shop still reads shipping data.
    pub retention_window_days: Option<u32>,
    /// Further days shipping data is kept before it is shredded.
    pub legal_retention_days: Option<u32>,
    /// Rows one key may export in 24 hours without an approval.
    pub export_daily_rows: Option<u32>,
}

/// What recording one failed authentication led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailure {
    /// Failures from the source inside the window, this one included (0 when
    /// the source was already locked out and nothing was counted).
    pub failures: u32,
    /// Until when the source is locked out, if it is.
    pub locked_until: Option<i64>,
    /// True if this failure started the lockout (exactly one node sees this).
    pub started: bool,
}

/// How failures are counted: at `now`, failures after `window_start` count,
/// and reaching `threshold` locks the source out until `lock_until`.
#[derive(Debug, Clone, Copy)]
pub struct FailurePolicy {
    pub now: i64,
    pub window_start: i64,
    pub threshold: u32,
    pub lock_until: i64,
}

pub(super) fn hash_array(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("key hash length"))
}

pub(super) fn allow_list(text: Option<String>) -> Result<Option<AllowList>, StoreError> {
    text.as_deref().map(AllowList::from_db).transpose()
}

pub(super) fn u32_setting(value: Option<i64>) -> Result<Option<u32>, StoreError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("tenant setting out of range")))
        .transpose()
}

pub(super) fn count_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Store {
    /// Keys of one principal, or of every principal of a tenant (`None`, `None`:
    /// of all), that are not revoked, oldest first. Expired keys are included.
    pub async fn principal_keys(
        &self,
        tenant: Option<&TenantId>,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<KeyRow>, StoreError> {
        dispatch!(self.principal_keys(tenant, principal))
    }

    /// Issues `key` to its principal and shortens the principal's other live
    /// keys to expire by `previous_until`, in one transaction. `None` if the
    /// principal does not exist or is disabled (nothing written); otherwise the
    /// latest expiry among the previous live keys (`Some(None)` if there were none).
    pub async fn rotate_key(
        &self,
        key: KeyRow,
        previous_until: i64,
    ) -> Result<Option<Option<i64>>, StoreError> {
        dispatch!(self.rotate_key(key, previous_until))
    }

    /// Replaces a principal's allow-list; false if the principal is unknown.
    pub async fn set_allowed_ips(
        &self,
        principal: &PrincipalId,
        allowed: Option<AllowList>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.set_allowed_ips(principal, allowed))
    }

    /// A tenant's stored settings (all `None` if it never changed them).
    pub async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettingsRow, StoreError> {
        dispatch!(self.tenant_settings(tenant))
    }

    /// Stores a tenant's key settings and, in the same transaction, brings the
    /// tenant's live keys under the lifetime: a key expires no later than
    /// `created_at + lifetime_ms`, but not before `floor` (so its holder has
    /// time to rotate).
    pub async fn put_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettingsRow,
        lifetime_ms: i64,
        floor: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self.put_tenant_settings(tenant, settings, lifetime_ms, floor))
    }

    /// Counts a failed authentication from `source` and locks the source out
    /// when the count inside the window reaches the threshold. A source already
    /// locked out is not counted.
    pub async fn record_auth_failure(
        &self,
        source: &str,
        policy: FailurePolicy,
    ) -> Result<AuthFailure, StoreError> {
        dispatch!(self.record_auth_failure(source, policy))
    }

    /// Sources locked out at `now`, with the end of each lockout.
    pub async fn auth_lockouts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self.auth_lockouts(now))
    }

    /// Forgets failures at or before `window_start` and lockouts over by `now`.
    pub async fn prune_auth_failures(&self, window_start: i64, now: i64) -> Result<(), StoreError> {
        dispatch!(self.prune_auth_failures(window_start, now))
    }
}
