//! The `/v1/audit` handlers and the customer access history. Tiles and the
//! checkpoint are served exactly as C2SP tlog-tiles clients expect them, so
//! standard transparency-log tools can read and verify the log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

use super::AppState;
use super::extract::QueryParams;
use crate::access::Actor;
use crate::audit::view::{AccessLogQuery, ConsistencyQuery, EventPage, EventQuery, InclusionQuery, Proof};
use crate::error::{ErrorBody, Result};

const NOTE: &str = "text/plain; charset=utf-8";

/// The latest signed checkpoint of the audit log (C2SP signed note).
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 403, body = ErrorBody)))]
pub async fn checkpoint(State(s): State<AppState>, actor: Actor) -> Result<impl IntoResponse> {
    let note = s.app.audit_checkpoint(&actor).await?;
    Ok(([(CONTENT_TYPE, NOTE), (CACHE_CONTROL, "no-cache")], note))
}

/// Integrate what was appended and sign a checkpoint now. Global auditors and
/// operators only.
#[utoipa::path(post, path = "/v1/audit/checkpoint", tag = "audit",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 403, body = ErrorBody)))]
pub async fn checkpoint_now(State(s): State<AppState>, actor: Actor) -> Result<impl IntoResponse> {
    let note = s.app.audit_checkpoint_now(&actor).await?;
    Ok(([(CONTENT_TYPE, NOTE), (CACHE_CONTROL, "no-cache")], note))
}

/// A tlog-tiles hash tile (`tile/<L>/<N>[.p/<W>]`) or entry bundle
/// (`tile/entries/<N>[.p/<W>]`). Global auditors and operators only; each
/// read is recorded in the log (`audit.read`).
#[utoipa::path(get, path = "/v1/audit/tile/{path}", tag = "audit",
    params(("path" = String, Path, description = "the rest of the tile path, such as 0/x001/234 or entries/000.p/7")),
    responses((status = 200, content_type = "application/octet-stream"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tile(
    State(s): State<AppState>,
    actor: Actor,
    Path(rest): Path<String>,
) -> Result<impl IntoResponse> {
    let (_, tile, bytes) = s.app.audit_tile(&actor, &format!("tile/{rest}")).await?;
    // A full tile never changes; a partial one is replaced by a wider one.
    let cache = if tile.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [(CONTENT_TYPE, "application/octet-stream"), (CACHE_CONTROL, cache)],
        bytes,
    ))
}

/// Inclusion proof of an entry (RFC 9162 §2.1.3).
#[utoipa::path(get, path = "/v1/audit/proof/inclusion", tag = "audit", params(InclusionQuery),
    responses((status = 200, body = Proof), (status = 422, body = ErrorBody)))]
pub async fn inclusion(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<InclusionQuery>,
) -> Result<Json<Proof>> {
    Ok(Json(s.app.audit_inclusion(&actor, query).await?))
}

/// Consistency proof between two tree sizes (RFC 9162 §2.1.4).
#[utoipa::path(get, path = "/v1/audit/proof/consistency", tag = "audit", params(ConsistencyQuery),
    responses((status = 200, body = Proof), (status = 422, body = ErrorBody)))]
pub async fn consistency(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<ConsistencyQuery>,
) -> Result<Json<Proof>> {
    Ok(Json(s.app.audit_consistency(&actor, query).await?))
}

/// Logged events of the key's tenant (every tenant for global keys), oldest first.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 403, body = ErrorBody)))]
pub async fn events(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<EventQuery>,
) -> Result<Json<EventPage>> {
    Ok(Json(s.app.audit_events(&actor, query).await?))
}

/// Every recorded access to one customer's data: who, when, what, why.
#[utoipa::path(get, path = "/v1/customers/{customer_id}/access-log", tag = "customers", params(AccessLogQuery),
    responses((status = 200, body = EventPage), (status = 404, body = ErrorBody)))]
pub async fn access_log(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<AccessLogQuery>,
) -> Result<Json<EventPage>> {
    Ok(Json(s.app.customer_access_log(&actor, &id, query).await?))
}
