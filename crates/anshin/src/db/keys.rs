//! Storage of the key state: KEK versions, record data keys, and the requests
//! and approvals of manual key operations (dual control).

use super::KeyPurpose;
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

/// What a new root of trust is to be, as a `change_root` request names it
/// (and its approver approves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTarget {
    /// A key file in the data directory.
    File,
    /// Custodian shares: `threshold` of `shares` rebuild the key.
    Shares {
        /// Shares needed.
        threshold: u8,
        /// Shares issued.
        shares: u8,
    },
    /// A new non-extractable key in the configured PKCS#11 token.
    Pkcs11,
}

impl RootTarget {
    /// `file`, `shares:K/N` or `pkcs11`.
    pub fn to_text(self) -> String {
        match self {
            Self::File => "file".into(),
            Self::Shares { threshold, shares } => format!("shares:{threshold}/{shares}"),
            Self::Pkcs11 => "pkcs11".into(),
        }
    }

    /// Parses [`RootTarget::to_text`]; `None` if it is not one (or K is not
    /// between 1 and N).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "file" => Some(Self::File),
            "pkcs11" => Some(Self::Pkcs11),
            _ => {
                let (threshold, shares) = text.strip_prefix("shares:")?.split_once('/')?;
                let (threshold, shares) = (threshold.parse().ok()?, shares.parse().ok()?);
                (1..=shares)
                    .contains(&threshold)
                    .then_some(Self::Shares { threshold, shares })
            }
        }
    }
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
    /// Replace the installation's root of trust (no tenant).
    ChangeRoot(RootTarget),
}

impl KeyOperation {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Retire { .. } => "retire",
            Self::ShredTenant => "shred_tenant",
            Self::ChangeRoot(_) => "change_root",
        }
    }

    pub(super) fn from_columns(
        name: &str,
        below: Option<i64>,
        target: Option<&str>,
    ) -> Result<Self, StoreError> {
        match (name, below.map(u32::try_from), target) {
            ("rotate", None, None) => Ok(Self::Rotate),
            ("retire", Some(Ok(below)), None) => Ok(Self::Retire { below }),
            ("shred_tenant", None, None) => Ok(Self::ShredTenant),
            ("change_root", None, Some(target)) => RootTarget::parse(target)
                .map(Self::ChangeRoot)
                .ok_or(StoreError::Corrupt("key request target")),
            _ => Err(StoreError::Corrupt("key request operation")),
        }
    }

    pub(super) fn below(self) -> Option<i64> {
        match self {
            Self::Retire { below } => Some(i64::from(below)),
            Self::Rotate | Self::ShredTenant | Self::ChangeRoot(_) => None,
        }
    }

    pub(super) fn target(self) -> Option<String> {
        match self {
            Self::ChangeRoot(target) => Some(target.to_text()),
            Self::Rotate | Self::Retire { .. } | Self::ShredTenant => None,
        }
    }
}

/// A request for a manual key operation and, once decided, its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequestRow {
    pub id: KeyRequestId,
    /// `None` for an operation on the whole installation (`change_root`).
    pub tenant_id: Option<TenantId>,
    pub operation: KeyOperation,
    pub reason: String,
    pub requested_by: PrincipalId,
    pub requested_at: i64,
    pub expires_at: i64,
    pub decided_by: Option<PrincipalId>,
    pub decided_at: Option<i64>,
    /// `approved` or `rejected`.
    pub outcome: Option<String>,
    /// When an approved `change_root` was carried out (it is single-use).
    pub executed_at: Option<i64>,
}

/// One root-wrapped value re-wrapped under a new root key: stored only if the
/// row still holds `old`.
#[derive(Clone)]
pub struct Rewrapped<K> {
    /// Which value.
    pub key: K,
    /// The value wrapped under the old root.
    pub old: Vec<u8>,
    /// The value wrapped under the new root.
    pub new: Vec<u8>,
}

/// Everything a root key wraps, re-wrapped under the next one, with the
/// request that carries it out.
#[derive(Clone)]
pub struct RootChange {
    /// The approved `change_root` request.
    pub request: KeyRequestId,
    /// Every tenant key (tenant, purpose, version).
    pub tenant_keys: Vec<Rewrapped<(TenantId, KeyPurpose, u32)>>,
    /// `meta` values wrapped by the root (the root check, installation keys).
    pub meta: Vec<Rewrapped<String>>,
}

/// Why a [`RootChange`] was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootChangeRefused {
    /// A value no longer holds what was re-wrapped, or a tenant key was added.
    StateChanged,
    /// The request was carried out already.
    AlreadyExecuted,
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
    /// its cards' fingerprints, and disables its principals, in one
    /// transaction. Returns the data keys destroyed.
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

    /// Every tenant key of every tenant, with its tenant.
    pub async fn all_tenant_keys(&self) -> Result<Vec<(TenantId, super::TenantKeyRow)>, StoreError> {
        dispatch!(self.all_tenant_keys())
    }

    /// Sets (`Some`) or removes (`None`) a `meta` value.
    pub async fn meta_put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        dispatch!(self.meta_put(key, value))
    }

    /// In one transaction: stores every re-wrapped value of `change`, each only
    /// if it still holds its old value; checks that no tenant key is left
    /// unchanged; marks the request executed at `at`; removes the `meta`
    /// value `staged`. Nothing is written if any check fails.
    pub async fn apply_root_change(
        &self,
        change: RootChange,
        staged: &'static str,
        at: i64,
    ) -> Result<Result<(), RootChangeRefused>, StoreError> {
        dispatch!(self.apply_root_change(change, staged, at))
    }
}
