//! `/v1/shops/{shop_id}/webhook`: a shop's payment webhook endpoint (see
//! `proxy::webhooks`). Answers that carry a freshly generated secret are
//! never cached.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::JsonBody;
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::proxy::webhooks::{WebhookInput, WebhookView};

/// An answer showing a secret: not stored by any cache on the way.
fn with_secret(status: StatusCode, view: WebhookView) -> Response {
    let mut response = (status, Json(view)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Create (201, with the signing secret, shown this once) or change (200) a
/// shop's payment webhook endpoint. Operators of its tenant, or the shop.
/// Events are POSTed signed in `Anshin-Signature` (body: `PaymentEventBody`).
#[utoipa::path(put, path = "/v1/shops/{shop_id}/webhook", tag = "payments", request_body = WebhookInput,
    responses((status = 201, body = WebhookView), (status = 200, body = WebhookView),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(s): State<AppState>,
    actor: Actor,
    Path(shop): Path<String>,
    JsonBody(input): JsonBody<WebhookInput>,
) -> Result<Response> {
    let (view, created) = s.app.put_webhook(&actor, &shop, input).await?;
    Ok(if created {
        with_secret(StatusCode::CREATED, view)
    } else {
        Json(view).into_response()
    })
}

/// A shop's payment webhook endpoint (never its secret).
#[utoipa::path(get, path = "/v1/shops/{shop_id}/webhook", tag = "payments",
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    actor: Actor,
    Path(shop): Path<String>,
) -> Result<Json<WebhookView>> {
    Ok(Json(s.app.webhook(&actor, &shop).await?))
}

/// Remove a shop's payment webhook endpoint; undelivered events are given up.
#[utoipa::path(delete, path = "/v1/shops/{shop_id}/webhook", tag = "payments",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, actor: Actor, Path(shop): Path<String>) -> Result<StatusCode> {
    s.app.delete_webhook(&actor, &shop).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give the endpoint a new signing secret (in the answer, shown this once);
/// the previous one keeps signing too for 24 hours.
#[utoipa::path(post, path = "/v1/shops/{shop_id}/webhook/rotate-secret", tag = "payments",
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    actor: Actor,
    Path(shop): Path<String>,
) -> Result<Response> {
    let view = s.app.rotate_webhook_secret(&actor, &shop).await?;
    Ok(with_secret(StatusCode::OK, view))
}
