//! Data inventories on the server: `anshin scan --inventory FILE --server URL`
//! POSTs the inventory (format `anshin-inventory/1`, see
//! `anshin_scan::inventory`) to `/v1/inventory`; every upload is kept per
//! tenant, and `GET /v1/inventory` answers the latest with the history.
//!
//! Who: operators upload (the inventory is the tenant's own statement of
//! where its personal data lives, like its settings and principals), operators
//! and auditors read (an inventory is metadata: locations and counts, never a
//! value). Both are audited (`inventory.upload`, `inventory.read`).
//!
//! The body is parsed into the typed inventory at the edge and stored as
//! re-serialised from it, every path and column name passed through the card
//! masking again: a modified client cannot put a card number in the database
//! by naming a file after it.

use anshin_scan::inventory::{FORMAT, Inventory};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::clock;
use crate::db::inventory::InventoryRow;
use crate::error::{Error, Result};
use crate::ids::{InventoryId, TenantId};

/// Most locations one inventory may hold (the body limit bounds it too).
pub const MAX_LOCATIONS: usize = 20_000;

/// Query of `/v1/inventory`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// The tenant (global keys only; a tenant key acts in its own).
    pub tenant_id: Option<String>,
    /// History entries listed by GET, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// An uploaded inventory, without its body.
#[derive(Debug, Serialize, ToSchema)]
pub struct InventorySummary {
    /// Its id.
    pub id: String,
    /// The tenant it describes.
    pub tenant_id: String,
    /// The principal that sent it.
    pub uploaded_by: String,
    /// When it arrived (RFC 3339).
    pub uploaded_at: String,
    /// When the scan ended, as the inventory says (RFC 3339).
    pub scanned_at: String,
    /// Locations holding personal data.
    pub locations: u64,
    /// Findings.
    pub findings: u64,
}

impl From<&InventoryRow> for InventorySummary {
    fn from(row: &InventoryRow) -> Self {
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            uploaded_by: row.uploaded_by.to_string(),
            uploaded_at: clock::rfc3339(row.uploaded_at),
            scanned_at: row.scanned_at.clone(),
            locations: row.locations,
            findings: row.findings,
        }
    }
}

/// The latest inventory of a tenant and the history of uploads.
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryList {
    /// The newest inventory, as stored (`anshin-inventory/1`), or `null`.
    #[schema(value_type = Option<Object>)]
    pub latest: Option<serde_json::Value>,
    /// Uploads, newest first.
    pub history: Vec<InventorySummary>,
}

fn invalid(message: &'static str) -> Error {
    Error::invalid("invalid_inventory", message)
}

/// Checks an uploaded inventory and masks card numbers in every name it holds.
fn sanitize(mut inventory: Inventory) -> Result<Inventory> {
    if inventory.format != FORMAT {
        return Err(invalid("format must be anshin-inventory/1"));
    }
    if clock::parse_rfc3339_ms(&inventory.scanned_at).is_none() {
        return Err(invalid("scanned_at must be an RFC 3339 time"));
    }
    if inventory.locations.len() > MAX_LOCATIONS {
        return Err(invalid("an inventory holds at most 20000 locations"));
    }
    inventory.mask_names();
    Ok(inventory)
}

impl App {
    /// Stores an inventory for the actor's tenant (operators).
    pub async fn upload_inventory(
        &self,
        actor: &Actor,
        query: InventoryQuery,
        inventory: Inventory,
    ) -> Result<InventorySummary> {
        self.audited(actor, EventKind::InventoryUpload, async |event| {
            actor.require(Action::UploadInventory)?;
            let tenant = self.tenant_in_scope(actor, query.tenant_id.as_deref()).await?;
            event.tenant(&tenant);
            let inventory = sanitize(inventory)?;
            let id = InventoryId::generate()?;
            event.resource(&id).rows(inventory.locations.len() as u64);
            let body = String::from_utf8(inventory.to_json()).map_err(Error::internal)?;
            let row = InventoryRow {
                id,
                tenant_id: tenant,
                uploaded_by: actor.principal_id.clone(),
                uploaded_at: clock::now_ms(),
                scanned_at: inventory.scanned_at.clone(),
                locations: inventory.locations.len() as u64,
                findings: inventory.totals.findings,
                body: Some(body),
            };
            let summary = InventorySummary::from(&row);
            // Recorded before it is stored: nothing lands unrecorded.
            self.record_now(actor, event).await?;
            self.store.insert_inventory(row).await?;
            Ok(summary)
        })
        .await
    }

    /// The latest inventory of the actor's tenant and the upload history
    /// (operators and auditors).
    pub async fn inventories(&self, actor: &Actor, query: InventoryQuery) -> Result<InventoryList> {
        self.audited(actor, EventKind::InventoryRead, async |event| {
            actor.require(Action::ReadInventory)?;
            let limit = query.limit.unwrap_or(20);
            if !(1..=100).contains(&limit) {
                return Err(Error::invalid("invalid_limit", "limit must be 1 to 100"));
            }
            let tenant = self.tenant_in_scope(actor, query.tenant_id.as_deref()).await?;
            event.tenant(&tenant);
            let latest = self.store.latest_inventory(&tenant).await?;
            let history = self.store.list_inventories(&tenant, limit).await?;
            event.rows(history.len() as u64);
            let latest = latest
                .and_then(|row| row.body)
                .map(|body| serde_json::from_str(&body))
                .transpose()
                .map_err(Error::internal)?;
            Ok(InventoryList {
                latest,
                history: history.iter().map(InventorySummary::from).collect(),
            })
        })
        .await
    }

    /// The tenant a request (an inventory's, a page's) acts in: the key's own, or for a
    /// global key the existing tenant it names (404 otherwise).
    pub(crate) async fn tenant_in_scope(&self, actor: &Actor, requested: Option<&str>) -> Result<TenantId> {
        let requested = TenantId::requested(requested)?;
        let tenant = actor.tenant_for(requested.as_ref())?;
        if self.store.tenant(&tenant).await?.is_none() {
            return Err(Error::not_found("tenant"));
        }
        Ok(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        let json = r#"{"format":"anshin-inventory/1","scanned_at":"2026-12-05T10:00:00Z",
            "tool":{"name":"anshin-scan","version":"0.1.0"},
            "locations":[{"path":"exports/4532015112830366.csv","column":null,"kind":"csv",
                          "findings":1,"records":1,"categories":{"card":{"findings":1,"records":1}}}]}"#;
        Inventory::parse(json.as_bytes()).expect("inventory")
    }

    #[test]
    fn names_are_masked_and_bad_inventories_refused() {
        let clean = sanitize(inventory()).expect("valid");
        assert_eq!(clean.locations[0].path, "exports/453201••••••0366.csv");
        let mut bad = inventory();
        bad.scanned_at = "yesterday".into();
        assert_eq!(sanitize(bad).expect_err("time").code(), "invalid_inventory");
        let mut bad = inventory();
        bad.format = "anshin-inventory/2".into();
        assert_eq!(sanitize(bad).expect_err("format").code(), "invalid_inventory");
    }
}
