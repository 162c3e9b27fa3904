//! Checkout handlers: the shop server's `/v1/checkout/sessions` (API key) and
//! the shopper-facing `/checkout/{id}/…` routes (no API key: the session id is
//! the capability; rate-limited per client address). Shopper-facing answers
//! are never cached.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::{ClientIp, JsonBody};
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::proxy::sessions::{CardSubmission, NewSession, OpenedSession, SessionView};

/// Open a checkout session.
#[utoipa::path(post, path = "/v1/checkout/sessions", tag = "checkout", request_body = NewSession,
    responses((status = 201, body = OpenedSession), (status = 422, body = ErrorBody)))]
pub async fn create_session(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewSession>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_checkout_session(&actor, input).await?),
    ))
}

/// A checkout session.
#[utoipa::path(get, path = "/v1/checkout/sessions/{session_id}", tag = "checkout",
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<SessionView>> {
    Ok(Json(s.app.checkout_session(&actor, &id).await?))
}

/// `Cache-Control: no-store` on a shopper-facing answer (or error).
pub fn no_store(result: Result<impl IntoResponse>) -> Response {
    let mut response = match result {
        Ok(ok) => ok.into_response(),
        Err(err) => err.into_response(),
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The hosted page submits the card (same origin as anshin only).
pub async fn submit_card(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<JsonBody<CardSubmission>, crate::error::Error>,
) -> Response {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let result = async {
        let JsonBody(input) = body?;
        s.app.checkout().submit_card(&id, origin, client, input).await
    }
    .await;
    no_store(result.map(Json))
}

/// The hosted page polls the session's status.
pub async fn status(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
) -> Response {
    let checkout = s.app.checkout();
    let result = async {
        checkout.allow_request(client)?;
        checkout.status(&id).await
    }
    .await;
    no_store(result.map(Json))
}
