//! Checkout handlers: the shop server's `/v1/checkout/sessions` (API key) and
//! the shopper-facing `/checkout/{id}/…` routes (no API key: the session id is
//! the capability; rate-limited per client address). Shopper-facing answers
//! are never cached. Also the payments (`/v1/payments`), the routes
//! (`/v1/tenants/{id}/routes`, `/v1/proxy/{route}`) and the 3-D Secure return.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::checkout_page::{Lang, three_ds_return_response};
use super::extract::{ClientIp, JsonBody, OptionalJsonBody, QueryParams};
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::proxy::payments::{AmountInput, Idempotent, NewPayment, Operation, PaymentView, idempotency_key};
use crate::proxy::routes::{RouteInput, RouteView};
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

/// An answer that may replay an earlier one (`Idempotent-Replayed: true`).
fn idempotent(answer: Idempotent) -> Response {
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn key_of(headers: &HeaderMap) -> Result<String> {
    idempotency_key(headers.get("idempotency-key").and_then(|v| v.to_str().ok()))
}

/// Authorize (and optionally capture) a payment through the tenant's processor route.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", request_body = NewPayment,
    params(("Idempotency-Key" = String, Header, description = "1–255 visible ASCII characters, one per payment attempt")),
    responses((status = 200, body = PaymentView), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 502, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn create_payment(
    State(s): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    JsonBody(input): JsonBody<NewPayment>,
) -> Result<Response> {
    let key = key_of(&headers)?;
    Ok(idempotent(s.app.create_payment(&actor, &key, input).await?))
}

/// A payment.
#[utoipa::path(get, path = "/v1/payments/{payment_id}", tag = "payments",
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody)))]
pub async fn get_payment(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>> {
    Ok(Json(s.app.payment(&actor, &id).await?))
}

async fn operation(
    s: AppState,
    actor: Actor,
    headers: HeaderMap,
    id: String,
    op: Operation,
    input: AmountInput,
) -> Result<Response> {
    let key = key_of(&headers)?;
    Ok(idempotent(
        s.app.payment_operation(&actor, &key, &id, op, input).await?,
    ))
}

/// Capture an authorized payment (all, or `amount`).
#[utoipa::path(post, path = "/v1/payments/{payment_id}/capture", tag = "payments", request_body = AmountInput,
    responses((status = 200, body = PaymentView), (status = 409, body = ErrorBody)))]
pub async fn capture(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJsonBody(input): OptionalJsonBody<AmountInput>,
) -> Result<Response> {
    operation(s, actor, headers, id, Operation::Capture, input).await
}

/// Void an authorized payment.
#[utoipa::path(post, path = "/v1/payments/{payment_id}/void", tag = "payments",
    responses((status = 200, body = PaymentView), (status = 409, body = ErrorBody)))]
pub async fn void(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    operation(s, actor, headers, id, Operation::Void, AmountInput::default()).await
}

/// Refund a captured payment (all that is left, or `amount`).
#[utoipa::path(post, path = "/v1/payments/{payment_id}/refunds", tag = "payments", request_body = AmountInput,
    responses((status = 200, body = PaymentView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refund(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJsonBody(input): OptionalJsonBody<AmountInput>,
) -> Result<Response> {
    operation(s, actor, headers, id, Operation::Refund, input).await
}

/// Create or replace a processor or outbound route (operators only).
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/routes/{name}", tag = "routes", request_body = RouteInput,
    responses((status = 200, body = RouteView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_route(
    State(s): State<AppState>,
    actor: Actor,
    Path((tenant, name)): Path<(String, String)>,
    JsonBody(input): JsonBody<RouteInput>,
) -> Result<Json<RouteView>> {
    Ok(Json(s.app.put_route(&actor, &tenant, &name, input).await?))
}

/// A tenant's routes.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/routes", tag = "routes",
    responses((status = 200, body = [RouteView])))]
pub async fn list_routes(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<RouteView>>> {
    Ok(Json(s.app.routes(&actor, &tenant).await?))
}

/// Forward a JSON request through an outbound route, card tokens at the
/// route's paths replaced by card numbers; the answer comes back redacted.
#[utoipa::path(post, path = "/v1/proxy/{route}", tag = "routes",
    responses((status = 200, description = "the upstream's answer, redacted"), (status = 422, body = ErrorBody)))]
pub async fn forward(
    State(s): State<AppState>,
    actor: Actor,
    Path(route): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response> {
    let (status, answer) = s.app.forward(&actor, &route, body).await?;
    Ok((status, Json(answer)).into_response())
}

/// Where the issuer's 3-D Secure page sends the browser back.
#[derive(serde::Deserialize)]
pub struct ThreeDsReturn {
    payment_id: String,
    #[allow(
        dead_code,
        reason = "sent by the processor; the outcome is asked of the processor, never taken from the URL"
    )]
    three_ds_id: Option<String>,
    #[allow(
        dead_code,
        reason = "sent by the processor; the outcome is asked of the processor, never taken from the URL"
    )]
    three_ds_status: Option<String>,
}

/// The 3-D Secure challenge ended (in the ACS iframe): complete the payment
/// at the processor and tell the parent card page, through a same-origin
/// script, to read the status again.
pub async fn three_ds_return(
    State(s): State<AppState>,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<ThreeDsReturn>,
) -> Response {
    let checkout = s.app.checkout();
    let result = async {
        checkout.allow_request(client)?;
        s.app.complete_challenge(&id, &query.payment_id, client).await
    }
    .await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(err) => err.kind().status(),
    };
    // The hosted page's own return page: framed by the card page, whose
    // ancestor is the shop's page, so both are allowed ancestors.
    let mut response = match checkout.page_view(&id).await {
        Ok(view) => three_ds_return_response(Lang::from_tag(&view.locale), &view.allowed_origin),
        Err(err) => return err.into_response(),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
