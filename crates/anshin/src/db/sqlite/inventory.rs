//! SQLite storage of uploaded data inventories.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::inventory::InventoryRow;
use crate::ids::{InventoryId, PrincipalId, TenantId};

const COLUMNS: &str = "id, tenant_id, uploaded_by, uploaded_at, scanned_at, locations, findings";

fn inventory_row(r: &Row<'_>, with_body: bool) -> rusqlite::Result<InventoryRow> {
    Ok(InventoryRow {
        id: InventoryId::from_db(r.get(0)?),
        tenant_id: TenantId::from_db(r.get(1)?),
        uploaded_by: PrincipalId::from_db(r.get(2)?),
        uploaded_at: r.get(3)?,
        scanned_at: r.get(4)?,
        locations: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        findings: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        body: if with_body { Some(r.get(7)?) } else { None },
    })
}

impl SqliteStore {
    pub(in crate::db) async fn insert_inventory(&self, row: InventoryRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO inventories (id, tenant_id, uploaded_by, uploaded_at, scanned_at, locations, findings, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.id.as_str(),
                row.tenant_id.as_str(),
                row.uploaded_by.as_str(),
                row.uploaded_at,
                row.scanned_at,
                i64::try_from(row.locations).unwrap_or(i64::MAX),
                i64::try_from(row.findings).unwrap_or(i64::MAX),
                row.body.unwrap_or_default(),
            ])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn latest_inventory(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<InventoryRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, body FROM inventories WHERE tenant_id = ?1
                 ORDER BY uploaded_at DESC, id DESC LIMIT 1"
            ))?
            .query_row([tenant.as_str()], |r| inventory_row(r, true))
            .optional()
        })
    }

    pub(in crate::db) async fn list_inventories(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<InventoryRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM inventories WHERE tenant_id = ?1
                 ORDER BY uploaded_at DESC, id DESC LIMIT ?2"
            ))?
            .query_map(params![tenant.as_str(), limit], |r| inventory_row(r, false))?
            .collect()
        })
    }
}
