//! SQLite storage of the retention window.

use rusqlite::{OptionalExtension, Row, params};

use super::{ORDER_COLUMNS, SqliteStore, order_view};
use crate::db::retention::{ExportApprovalRow, ShippingRow};
use crate::db::{OrderView, StoreError, sealed_from};
use crate::ids::{OrderId, PrincipalId, ShopId, TenantId};

/// Shipping columns after [`ORDER_COLUMNS`] in a joined row.
const SHIPPING_COLUMNS: &str = "k.kek_version, k.wrapped_dek, s.name_ct, s.postal_code_ct, s.address_ct, s.phone_ct, s.purged_at, s.order_id";

/// Shipping columns as read: key version, wrapped key, fields, purge time.
type RawShipping = (Option<i64>, Option<Vec<u8>>, [Option<Vec<u8>>; 4], Option<i64>);

fn shipping_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Option<RawShipping>> {
    let present: Option<String> = r.get(at + 7)?;
    if present.is_none() {
        return Ok(None);
    }
    Ok(Some((
        r.get(at)?,
        r.get(at + 1)?,
        [r.get(at + 2)?, r.get(at + 3)?, r.get(at + 4)?, r.get(at + 5)?],
        r.get(at + 6)?,
    )))
}

fn shipping_row(raw: RawShipping) -> Result<ShippingRow, StoreError> {
    let (kek_version, wrapped_dek, fields, purged_at) = raw;
    Ok(ShippingRow {
        sealed: sealed_from(kek_version, wrapped_dek, fields)?,
        purged_at,
    })
}

impl SqliteStore {
    pub(in crate::db) async fn order_shipping(
        &self,
        order: &OrderId,
    ) -> Result<Option<ShippingRow>, StoreError> {
        let raw = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SHIPPING_COLUMNS} FROM order_shipping s LEFT JOIN record_keys k ON k.id = s.key_id WHERE s.order_id = ?1"
            ))?
            .query_row([order.as_str()], |r| shipping_at(r, 0))
            .optional()
        })?;
        raw.flatten().map(shipping_row).transpose()
    }

    pub(in crate::db) async fn purge_candidates(
        &self,
        tenant: &TenantId,
        created_before: i64,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<String> = self.read(|c| {
            c.prepare_cached(
                "SELECT s.order_id FROM order_shipping s JOIN orders o ON o.id = s.order_id
                 WHERE o.tenant_id = ?1 AND s.purged_at IS NULL AND (o.created_at < ?2 OR o.completed_at < ?3)
                 ORDER BY o.created_at, o.id LIMIT ?4",
            )?
            .query_map(
                params![tenant.as_str(), created_before, completed_before, limit],
                |r| r.get(0),
            )?
            .collect()
        })?;
        Ok(ids.into_iter().map(OrderId::from_db).collect())
    }

    pub(in crate::db) async fn shred_shipping(
        &self,
        orders: Vec<OrderId>,
        at: i64,
    ) -> Result<Vec<OrderId>, StoreError> {
        self.write(move |c| {
            // secure_delete is on: the old pages are overwritten, not just unlinked.
            let shred = "UPDATE order_shipping SET name_ct = NULL, postal_code_ct = NULL,
                                address_ct = NULL, phone_ct = NULL, purged_at = ?2
                         WHERE order_id = ?1 AND purged_at IS NULL RETURNING key_id";
            let mut shredded = Vec::with_capacity(orders.len());
            for id in orders {
                if super::shred_row(c, shred, params![id.as_str(), at])? {
                    shredded.push(id);
                }
            }
            Ok(shredded)
        })
        .await
    }

    pub(in crate::db) async fn export_orders(
        &self,
        shop: &ShopId,
        created_since: i64,
        completed_since: i64,
        limit: u32,
    ) -> Result<Vec<(OrderView, Option<ShippingRow>)>, StoreError> {
        let rows: Vec<(OrderView, Option<RawShipping>)> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS}, {SHIPPING_COLUMNS}
                 FROM orders o LEFT JOIN cards c ON c.token = o.card_token LEFT JOIN order_shipping s ON s.order_id = o.id
                 LEFT JOIN record_keys k ON k.id = s.key_id
                 WHERE o.shop_id = ?1 AND o.status <> 'cancelled' AND o.created_at >= ?2
                   AND (o.completed_at IS NULL OR o.completed_at >= ?3)
                 ORDER BY o.created_at, o.id LIMIT ?4"
            ))?
            .query_map(params![shop.as_str(), created_since, completed_since, limit], |r| {
                Ok((order_view(r)?, shipping_at(r, 12)?))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(view, raw)| Ok((view, raw.map(shipping_row).transpose()?)))
            .collect()
    }

    pub(in crate::db) async fn insert_export_approval(&self, a: ExportApprovalRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO export_approvals (id, tenant_id, principal_id, approved_by, rows_allowed, reason, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                a.id,
                a.tenant_id.as_str(),
                a.principal_id.as_str(),
                a.approved_by.as_str(),
                a.rows_allowed,
                a.reason,
                a.created_at,
                a.expires_at
            ])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn export_approved_rows(
        &self,
        principal: &PrincipalId,
        now: i64,
    ) -> Result<u64, StoreError> {
        let rows: i64 = self.read(|c| {
            c.prepare_cached(
                "SELECT coalesce(sum(rows_allowed), 0) FROM export_approvals WHERE principal_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![principal.as_str(), now], |r| r.get(0))
        })?;
        u64::try_from(rows).map_err(|_| StoreError::Corrupt("negative approved rows"))
    }
}
