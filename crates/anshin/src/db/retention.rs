//! Storage of the retention window: orders' sealed shipping data, its purge,
//! and operator approvals of large exports.

use super::{OrderView, Sealed, Store, StoreError};
use crate::ids::{OrderId, PrincipalId, ShopId, TenantId};

/// Index of each sealed shipping field in [`ShippingRow::sealed`].
pub mod shipping_field {
    pub const NAME: usize = 0;
    pub const POSTAL_CODE: usize = 1;
    pub const ADDRESS: usize = 2;
    pub const PHONE: usize = 3;
    pub const NAMES: [&str; 4] = ["name", "postal_code", "address", "phone"];
}

/// An order's shipping data: sealed, or shredded since `purged_at`.
#[derive(Clone)]
pub struct ShippingRow {
    /// The sealed fields; `None` once purged.
    pub sealed: Option<Sealed<4>>,
    /// When it was crypto-shredded.
    pub purged_at: Option<i64>,
}

/// An operator's approval of a larger export for one principal.
#[derive(Debug, Clone)]
pub struct ExportApprovalRow {
    /// Approval id.
    pub id: String,
    /// Tenant of the principal.
    pub tenant_id: TenantId,
    /// The principal that may export more.
    pub principal_id: PrincipalId,
    /// The operator who approved.
    pub approved_by: PrincipalId,
    /// Extra rows allowed.
    pub rows_allowed: u32,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// When it was approved.
    pub created_at: i64,
    /// Until when it counts.
    pub expires_at: i64,
}

impl Store {
    /// An order's shipping data, if it was given any.
    pub async fn order_shipping(&self, order: &OrderId) -> Result<Option<ShippingRow>, StoreError> {
        dispatch!(self.order_shipping(order))
    }

    /// Up to `limit` orders of `tenant` whose shipping data is due for shredding:
    /// created before `created_before` or completed before `completed_before`,
    /// not shredded yet. Changes nothing: the purge records them first.
    pub async fn purge_candidates(
        &self,
        tenant: &TenantId,
        created_before: i64,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<OrderId>, StoreError> {
        dispatch!(self.purge_candidates(tenant, created_before, completed_before, limit))
    }

    /// Crypto-shreds the shipping data of `orders` (those not shredded yet)
    /// and returns the ones this call shredded.
    pub async fn shred_shipping(&self, orders: Vec<OrderId>, at: i64) -> Result<Vec<OrderId>, StoreError> {
        dispatch!(self.shred_shipping(orders, at))
    }

    /// A shop's orders still inside the window (created at or after
    /// `created_since`, and open or completed at or after `completed_since`),
    /// oldest first, with their shipping data.
    pub async fn export_orders(
        &self,
        shop: &ShopId,
        created_since: i64,
        completed_since: i64,
        limit: u32,
    ) -> Result<Vec<(OrderView, Option<ShippingRow>)>, StoreError> {
        dispatch!(self.export_orders(shop, created_since, completed_since, limit))
    }

    /// Records an export approval.
    pub async fn insert_export_approval(&self, approval: ExportApprovalRow) -> Result<(), StoreError> {
        dispatch!(self.insert_export_approval(approval))
    }

    /// Extra export rows approved for `principal` and still in force at `now`.
    pub async fn export_approved_rows(&self, principal: &PrincipalId, now: i64) -> Result<u64, StoreError> {
        dispatch!(self.export_approved_rows(principal, now))
    }
}
