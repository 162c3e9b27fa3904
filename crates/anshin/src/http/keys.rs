//! `/v1/keys`: the key state, and key operations under dual control.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::vault::rotation::{KeyRequest, KeyStatusQuery, NewKeyRequest, TenantKeyStatus};

/// KEK versions per tenant with the records each wraps and what is left to
/// re-wrap (operators and auditors).
#[utoipa::path(get, path = "/v1/keys/status", tag = "keys", params(KeyStatusQuery),
    responses((status = 200, body = [TenantKeyStatus]), (status = 403, body = ErrorBody)))]
pub async fn status(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<KeyStatusQuery>,
) -> Result<Json<Vec<TenantKeyStatus>>> {
    Ok(Json(s.app.key_status(&actor, query.tenant_id.as_deref()).await?))
}

/// Ask for a KEK rotation or retirement; another operator must approve it
/// within 24 hours.
#[utoipa::path(post, path = "/v1/keys/requests", tag = "keys", request_body = NewKeyRequest,
    responses((status = 201, body = KeyRequest), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn request(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewKeyRequest>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.request_key_operation(&actor, input).await?),
    ))
}

/// Key requests, newest first (operators and auditors).
#[utoipa::path(get, path = "/v1/keys/requests", tag = "keys",
    responses((status = 200, body = [KeyRequest]), (status = 403, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<KeyRequest>>> {
    Ok(Json(s.app.key_requests(&actor).await?))
}

/// Approve a key request and carry it out (another operator than the
/// requester: 403 `self_approval`; 409 `request_closed` once decided or
/// expired; 409 `key_version_in_use` for a retirement records still need).
#[utoipa::path(post, path = "/v1/keys/requests/{request_id}/approve", tag = "keys",
    responses((status = 200, body = KeyRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<KeyRequest>> {
    Ok(Json(s.app.decide_key_request(&actor, &id, true).await?))
}

/// Reject a key request (another operator than the requester).
#[utoipa::path(post, path = "/v1/keys/requests/{request_id}/reject", tag = "keys",
    responses((status = 200, body = KeyRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn reject(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<KeyRequest>> {
    Ok(Json(s.app.decide_key_request(&actor, &id, false).await?))
}
