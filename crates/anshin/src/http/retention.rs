//! Handlers of the retention window: shipping data, CSV export, approvals.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use crate::access::Actor;
use crate::access::retention::{ExportApproval, ExportQuery, NewExportApproval, Shipping};
use crate::error::{ErrorBody, Result};

/// An order's shipping data, for the selling shop inside the retention window
/// (410 `retention_window_closed` after it).
#[utoipa::path(get, path = "/v1/orders/{order_id}/shipping", tag = "orders",
    responses((status = 200, body = Shipping), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 410, body = ErrorBody)))]
pub async fn shipping(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let shipping = s.app.order_shipping(&actor, &id).await?;
    Ok(([(CACHE_CONTROL, "no-store")], Json(shipping)))
}

/// The shop's orders inside the retention window as CSV, shipping data
/// included. Limited per key (429 `rate_limited`, 429 `export_limit`).
#[utoipa::path(get, path = "/v1/orders/export", tag = "orders", params(ExportQuery),
    responses((status = 200, content_type = "text/csv"), (status = 429, body = ErrorBody)))]
pub async fn export(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<impl IntoResponse> {
    let export = s.app.export_orders(&actor, query).await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"orders.csv\""),
            (CACHE_CONTROL, "no-store"),
        ],
        export.csv.expose().to_owned(),
    ))
}

/// Approve a larger export for a shop key (operators; never one's own).
#[utoipa::path(post, path = "/v1/principals/{principal_id}/export-approvals", tag = "principals",
    request_body = NewExportApproval,
    responses((status = 201, body = ExportApproval), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn approve_export(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<NewExportApproval>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.approve_export(&actor, &id, input).await?),
    ))
}
