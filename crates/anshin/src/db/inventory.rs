//! Storage of data inventories uploaded by `anshin scan --server`: every
//! upload kept per tenant, newest first.

use super::{Store, StoreError};
use crate::ids::{InventoryId, PrincipalId, TenantId};

/// One uploaded inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    /// Its id.
    pub id: InventoryId,
    /// The tenant it describes.
    pub tenant_id: TenantId,
    /// Who sent it.
    pub uploaded_by: PrincipalId,
    /// When it arrived (ms).
    pub uploaded_at: i64,
    /// When the scan ended, as the inventory says (RFC 3339).
    pub scanned_at: String,
    /// Locations holding personal data.
    pub locations: u64,
    /// Findings.
    pub findings: u64,
    /// The inventory JSON (`anshin-inventory/1`); `None` in listings.
    pub body: Option<String>,
}

impl Store {
    /// Stores an uploaded inventory.
    pub async fn insert_inventory(&self, row: InventoryRow) -> Result<(), StoreError> {
        dispatch!(self.insert_inventory(row))
    }

    /// The newest inventory of `tenant`, with its body.
    pub async fn latest_inventory(&self, tenant: &TenantId) -> Result<Option<InventoryRow>, StoreError> {
        dispatch!(self.latest_inventory(tenant))
    }

    /// Up to `limit` inventories of `tenant`, newest first, without bodies.
    pub async fn list_inventories(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<InventoryRow>, StoreError> {
        dispatch!(self.list_inventories(tenant, limit))
    }
}
