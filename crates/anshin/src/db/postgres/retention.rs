//! PostgreSQL storage of the retention window.

use tokio_postgres::Row;

use super::{ORDER_COLUMNS, PgStore, order_view};
use crate::db::retention::{ExportApprovalRow, ShippingRow};
use crate::db::{OrderView, StoreError, sealed_from};
use crate::ids::{OrderId, PrincipalId, ShopId, TenantId};

/// Shipping columns after [`ORDER_COLUMNS`] in a joined row.
const SHIPPING_COLUMNS: &str = "k.kek_version, k.wrapped_dek, s.name_ct, s.postal_code_ct, s.address_ct, s.phone_ct, s.purged_at, s.order_id";

fn shipping_at(r: &Row, at: usize) -> Result<Option<ShippingRow>, StoreError> {
    if r.get::<_, Option<String>>(at + 7).is_none() {
        return Ok(None);
    }
    Ok(Some(ShippingRow {
        sealed: sealed_from(
            r.get::<_, Option<i32>>(at).map(i64::from),
            r.get(at + 1),
            [r.get(at + 2), r.get(at + 3), r.get(at + 4), r.get(at + 5)],
        )?,
        purged_at: r.get(at + 6),
    }))
}

impl PgStore {
    pub(in crate::db) async fn order_shipping(
        &self,
        order: &OrderId,
    ) -> Result<Option<ShippingRow>, StoreError> {
        let row = self
            .query_opt(
                &format!("SELECT {SHIPPING_COLUMNS} FROM order_shipping s LEFT JOIN record_keys k ON k.id = s.key_id WHERE s.order_id = $1"),
                &[&order.as_str()],
            )
            .await?;
        Ok(row.map(|r| shipping_at(&r, 0)).transpose()?.flatten())
    }

    pub(in crate::db) async fn purge_candidates(
        &self,
        tenant: &TenantId,
        created_before: i64,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<OrderId>, StoreError> {
        let rows = self
            .query(
                "SELECT s.order_id FROM order_shipping s JOIN orders o ON o.id = s.order_id
                 WHERE o.tenant_id = $1 AND s.purged_at IS NULL AND (o.created_at < $2 OR o.completed_at < $3)
                 ORDER BY o.created_at, o.id LIMIT $4",
                &[
                    &tenant.as_str(),
                    &created_before,
                    &completed_before,
                    &i64::from(limit),
                ],
            )
            .await?;
        Ok(rows.into_iter().map(|r| OrderId::from_db(r.get(0))).collect())
    }

    pub(in crate::db) async fn shred_shipping(
        &self,
        orders: Vec<OrderId>,
        at: i64,
    ) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<&str> = orders.iter().map(OrderId::as_str).collect();
        // Rows another node shreds at the same time are shredded once: the
        // second UPDATE finds purged_at set and skips them.
        let rows = self
            .query(
                "WITH shredded AS (
                     UPDATE order_shipping SET name_ct = NULL, postal_code_ct = NULL,
                            address_ct = NULL, phone_ct = NULL, purged_at = $2
                     WHERE order_id = ANY($1) AND purged_at IS NULL
                     RETURNING order_id, key_id
                 ), destroyed AS (
                     DELETE FROM record_keys WHERE id IN (SELECT key_id FROM shredded)
                 )
                 SELECT order_id FROM shredded",
                &[&ids, &at],
            )
            .await?;
        Ok(rows.into_iter().map(|r| OrderId::from_db(r.get(0))).collect())
    }

    pub(in crate::db) async fn export_orders(
        &self,
        shop: &ShopId,
        created_since: i64,
        completed_since: i64,
        limit: u32,
    ) -> Result<Vec<(OrderView, Option<ShippingRow>)>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {ORDER_COLUMNS}, {SHIPPING_COLUMNS}
                     FROM orders o LEFT JOIN cards c ON c.token = o.card_token LEFT JOIN order_shipping s ON s.order_id = o.id
                 LEFT JOIN record_keys k ON k.id = s.key_id
                     WHERE o.shop_id = $1 AND o.status <> 'cancelled' AND o.created_at >= $2
                       AND (o.completed_at IS NULL OR o.completed_at >= $3)
                     ORDER BY o.created_at, o.id LIMIT $4"
                ),
                &[&shop.as_str(), &created_since, &completed_since, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((order_view(r), shipping_at(r, 12)?)))
            .collect()
    }

    pub(in crate::db) async fn insert_export_approval(&self, a: ExportApprovalRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO export_approvals (id, tenant_id, principal_id, approved_by, rows_allowed, reason, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &a.id,
                &a.tenant_id.as_str(),
                &a.principal_id.as_str(),
                &a.approved_by.as_str(),
                &i64::from(a.rows_allowed),
                &a.reason,
                &a.created_at,
                &a.expires_at,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn export_approved_rows(
        &self,
        principal: &PrincipalId,
        now: i64,
    ) -> Result<u64, StoreError> {
        let row = self
            .query_opt(
                "SELECT coalesce(sum(rows_allowed), 0)::BIGINT FROM export_approvals WHERE principal_id = $1 AND expires_at > $2",
                &[&principal.as_str(), &now],
            )
            .await?;
        u64::try_from(row.map_or(0i64, |r| r.get(0)))
            .map_err(|_| StoreError::Corrupt("negative approved rows"))
    }
}
