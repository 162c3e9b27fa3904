//! `/v1/inventory`: data inventories sent by `anshin scan --server`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::inventory::{InventoryList, InventoryQuery, InventorySummary};

/// Largest inventory accepted (the rest of the API takes 64 KiB).
pub const MAX_INVENTORY_BODY: usize = 4 << 20;

/// An `anshin-inventory/1` document, as `anshin scan --inventory` writes it.
#[derive(utoipa::ToSchema)]
#[schema(value_type = Object)]
// Only its schema is used (the handler takes the typed inventory).
#[allow(dead_code)]
pub struct InventoryDocument(serde_json::Value);

/// Store a data inventory for the tenant (operators). Every upload is kept.
#[utoipa::path(post, path = "/v1/inventory", tag = "inventory", params(InventoryQuery),
    request_body = InventoryDocument,
    responses((status = 201, body = InventorySummary), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<InventoryQuery>,
    JsonBody(inventory): JsonBody<anshin_scan::inventory::Inventory>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.upload_inventory(&actor, query, inventory).await?),
    ))
}

/// The tenant's latest data inventory and the upload history, newest first
/// (operators and auditors).
#[utoipa::path(get, path = "/v1/inventory", tag = "inventory", params(InventoryQuery),
    responses((status = 200, body = InventoryList), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<InventoryQuery>,
) -> Result<Json<InventoryList>> {
    Ok(Json(s.app.inventories(&actor, query).await?))
}
