//! PostgreSQL storage of uploaded data inventories.

use tokio_postgres::Row;

use super::PgStore;
use crate::db::StoreError;
use crate::db::inventory::InventoryRow;
use crate::ids::{InventoryId, PrincipalId, TenantId};

const COLUMNS: &str = "id, tenant_id, uploaded_by, uploaded_at, scanned_at, locations, findings";

fn inventory_row(r: &Row, with_body: bool) -> InventoryRow {
    InventoryRow {
        id: InventoryId::from_db(r.get(0)),
        tenant_id: TenantId::from_db(r.get(1)),
        uploaded_by: PrincipalId::from_db(r.get(2)),
        uploaded_at: r.get(3),
        scanned_at: r.get(4),
        locations: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
        findings: u64::try_from(r.get::<_, i64>(6)).unwrap_or(0),
        body: if with_body { Some(r.get(7)) } else { None },
    }
}

impl PgStore {
    pub(in crate::db) async fn insert_inventory(&self, row: InventoryRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO inventories (id, tenant_id, uploaded_by, uploaded_at, scanned_at, locations, findings, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &row.id.as_str(),
                &row.tenant_id.as_str(),
                &row.uploaded_by.as_str(),
                &row.uploaded_at,
                &row.scanned_at,
                &i64::try_from(row.locations).unwrap_or(i64::MAX),
                &i64::try_from(row.findings).unwrap_or(i64::MAX),
                &row.body.unwrap_or_default(),
            ],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn latest_inventory(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<InventoryRow>, StoreError> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, body FROM inventories WHERE tenant_id = $1
                     ORDER BY uploaded_at DESC, id DESC LIMIT 1"
                ),
                &[&tenant.as_str()],
            )
            .await?;
        Ok(row.map(|r| inventory_row(&r, true)))
    }

    pub(in crate::db) async fn list_inventories(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<InventoryRow>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM inventories WHERE tenant_id = $1
                     ORDER BY uploaded_at DESC, id DESC LIMIT $2"
                ),
                &[&tenant.as_str(), &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(|r| inventory_row(r, false)).collect())
    }
}
