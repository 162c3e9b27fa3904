//! Storage of signed integrity baselines sent by `anshin integrity
//! baseline|approve --server` (src/integrity/baselines.rs): every version of
//! each host's baseline, kept with who approved it and why, and the public
//! key pinned for the host. Versions are only ever added.

use super::{Store, StoreError};
use crate::ids::{PrincipalId, TenantId};

/// The key a host's baselines must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRow {
    pub tenant_id: TenantId,
    pub host: String,
    /// Ed25519 public key, 64 hex.
    pub public_key: String,
    pub pinned_by: PrincipalId,
    pub pinned_at: i64,
}

/// One stored version of a host's baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineRow {
    pub tenant_id: TenantId,
    pub host: String,
    /// 1 for the first; set by the store on insert.
    pub version: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The key that signed it (the pinned one when it was stored).
    pub public_key: String,
    /// The last history entry of the file: `baseline` or `approve`, who
    /// approved (`--by`), why, when (RFC 3339) and how many files.
    pub action: String,
    pub approved_by: String,
    pub reason: String,
    pub approved_at: String,
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
    /// Whether its history continues the previous version's.
    pub continues: bool,
    pub uploaded_by: PrincipalId,
    pub uploaded_at: i64,
    /// The signed file; empty in listings.
    pub file: Vec<u8>,
}

impl Store {
    /// The key pinned for a host.
    pub async fn baseline_pin(&self, tenant: &TenantId, host: &str) -> Result<Option<PinRow>, StoreError> {
        dispatch!(self.baseline_pin(tenant, host))
    }

    /// Pins a key for a host: only if none is pinned yet, or in place of the
    /// pinned one with `replace`. True when it was written.
    pub async fn baseline_pin_set(&self, pin: PinRow, replace: bool) -> Result<bool, StoreError> {
        dispatch!(self.baseline_pin_set(pin, replace))
    }

    /// Stores a new version of a host's baseline; returns its version.
    pub async fn baseline_insert(&self, row: BaselineRow) -> Result<i64, StoreError> {
        dispatch!(self.baseline_insert(row))
    }

    /// A host's newest baseline, with its file.
    pub async fn baseline_latest(
        &self,
        tenant: &TenantId,
        host: &str,
    ) -> Result<Option<BaselineRow>, StoreError> {
        dispatch!(self.baseline_latest(tenant, host))
    }

    /// Every version of a host's baseline, newest first, without files.
    pub async fn baseline_history(
        &self,
        tenant: &TenantId,
        host: &str,
    ) -> Result<Vec<BaselineRow>, StoreError> {
        dispatch!(self.baseline_history(tenant, host))
    }
}
