//! Storage of the key state: KEK versions, record data keys, and the requests
//! and approvals of manual key operations (dual control).

use super::{Store, StoreError};
use crate::ids::{KeyRequestId, PrincipalId, TenantId};

/// One KEK version of a tenant, with the records that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The version.
    pub version: u32,
    /// When it was created (and so became the version new writes use), ms.
    pub created_at: i64,
    /// Records whose data key it wraps.
    pub records: u64,
    /// Encryptions made under it, as the nodes have reported them.
    pub encryptions: u64,
}

/// One record's wrapped data key, as the rewrap job reads and writes it.
#[derive(Clone)]
pub struct RecordKeyRow {
    /// The key's own id, which the record's data row names it by.
    pub id: i64,
    /// The record's id (card token, customer id, order id), bound into the wrap.
    pub record_id: String,
    /// `card`, `customer` or `order`.
    pub kind: String,
    /// The KEK version that wraps it.
    pub kek_version: u32,
    /// The wrapped data key.
    pub wrapped_dek: Vec<u8>,
}

/// A manual key operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOperation {
    /// A new KEK version for a tenant.
    Rotate,
    /// Destroy a tenant's KEK versions below `below`.
    Retire {
        /// The lowest version kept.
        below: u32,
    },
    /// Destroy every key of a tenant: all its data becomes unreadable for good.
    ShredTenant,
}

impl KeyOperation {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Retire { .. } => "retire",
            Self::ShredTenant => "shred_tenant",
        }
    }

    pub(super) fn from_columns(name: &str, below: Option<i64>) -> Result<Self, StoreError> {
        match (name, below.map(u32::try_from)) {
            ("rotate", None) => Ok(Self::Rotate),
            ("retire", Some(Ok(below))) => Ok(Self::Retire { below }),
            ("shred_tenant", None) => Ok(Self::ShredTenant),
            _ => Err(StoreError::Corrupt("key request operation")),
        }
    }

    pub(super) fn below(self) -> Option<i64> {
        match self {
            Self::Rotate | Self::ShredTenant => None,
            Self::Retire { below } => Some(i64::from(below)),
        }
    }
}

/// A request for a manual key operation and, once decided, its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequestRow {
    pub id: KeyRequestId,
    pub tenant_id: TenantId,
    pub operation: KeyOperation,
    pub reason: String,
    pub requested_by: PrincipalId,
    pub requested_at: i64,
    pub expires_at: i64,
    pub decided_by: Option<PrincipalId>,
    pub decided_at: Option<i64>,
    /// `approved` or `rejected`.
    pub outcome: Option<String>,
}

/// Why KEK versions could not be destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireOutcome {
    /// These many versions were destroyed.
    Destroyed(u64),
    /// Records still use versions below the bound.
    InUse(u64),
    /// The bound would leave the tenant without a KEK.
    WouldRemoveCurrent,
}

impl Store {
    /// Adds KEK version `version` to `tenant`. `Ok(false)` if the version
    /// exists already (another node rotated at the same moment).
    pub async fn insert_kek_version(
        &self,
        tenant: &TenantId,
        version: u32,
        wrapped: Vec<u8>,
        created_at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.insert_kek_version(tenant, version, wrapped, created_at))
    }

    /// KEK versions, with their record counts if `count_records` (one pass
    /// over the key state); all tenants if `tenant` is `None`.
    pub async fn kek_versions(
        &self,
        tenant: Option<&TenantId>,
        count_records: bool,
    ) -> Result<Vec<KeyVersionRow>, StoreError> {
        dispatch!(self.kek_versions(tenant, count_records))
    }

    /// Up to `limit` record keys of `tenant` wrapped by a version below
    /// `below`, in key id order, after key id `after` if given.
    pub async fn stale_record_keys(
        &self,
        tenant: &TenantId,
        below: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RecordKeyRow>, StoreError> {
        dispatch!(self.stale_record_keys(tenant, below, after, limit))
    }

    /// Stores re-wrapped data keys, each only if the row still holds the
    /// version it was read with (a record shredded or re-wrapped meanwhile is
    /// left alone). Returns how many were stored.
    pub async fn store_rewrapped(&self, rows: Vec<(RecordKeyRow, u32, Vec<u8>)>) -> Result<u64, StoreError> {
        dispatch!(self.store_rewrapped(rows))
    }

    /// Destroys `tenant`'s KEK versions below `below`, unless a record still
    /// uses one or none would remain.
    pub async fn retire_kek_versions(
        &self,
        tenant: &TenantId,
        below: u32,
    ) -> Result<RetireOutcome, StoreError> {
        dispatch!(self.retire_kek_versions(tenant, below))
    }

    /// Destroys every key of `tenant` (data keys, KEKs, fingerprint keys) and
    /// disables its principals, in one transaction. Returns the data keys destroyed.
    pub async fn shred_tenant(&self, tenant: &TenantId, at: i64) -> Result<u64, StoreError> {
        dispatch!(self.shred_tenant(tenant, at))
    }

    /// Adds encryption counts to KEK versions.
    pub async fn add_encryptions(&self, counts: Vec<(TenantId, u32, u64)>) -> Result<(), StoreError> {
        dispatch!(self.add_encryptions(counts))
    }

    /// Stores a new key request.
    pub async fn insert_key_request(&self, row: KeyRequestRow) -> Result<(), StoreError> {
        dispatch!(self.insert_key_request(row))
    }

    /// One key request.
    pub async fn key_request(&self, id: &KeyRequestId) -> Result<Option<KeyRequestRow>, StoreError> {
        dispatch!(self.key_request(id))
    }

    /// Key requests of `tenant` (all if `None`), newest first.
    pub async fn key_requests(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<KeyRequestRow>, StoreError> {
        dispatch!(self.key_requests(tenant, limit))
    }

    /// Records a decision on an undecided, unexpired request; `Ok(false)` if
    /// it was decided already or has expired.
    pub async fn decide_key_request(
        &self,
        id: &KeyRequestId,
        by: &PrincipalId,
        at: i64,
        outcome: &'static str,
    ) -> Result<bool, StoreError> {
        dispatch!(self.decide_key_request(id, by, at, outcome))
    }
}
