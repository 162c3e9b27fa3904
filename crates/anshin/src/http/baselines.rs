//! `/v1/integrity/baselines` and `/v1/integrity/hosts`: signed integrity
//! baselines kept off the shop's host (see `crate::integrity::baselines`).
//! The file travels as it is on disk (`application/vnd.anshin.integrity-baseline`),
//! not inside JSON: it is signed byte for byte and can be megabytes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use crate::access::Actor;
use crate::error::{ErrorBody, Result};
use crate::integrity::baselines::{BaselineHistory, BaselineStored, NewPin, TenantQuery};

/// Media type of a baseline file.
pub const BASELINE_MEDIA_TYPE: &str = "application/vnd.anshin.integrity-baseline";
/// Answer header: the newest version's number.
pub const VERSION_HEADER: &str = "anshin-baseline-version";
/// Answer header: the public key pinned for the host (64 hex).
pub const KEY_HEADER: &str = "anshin-baseline-public-key";

/// Store a host's signed baseline (operators). The host is the one the file
/// names; its first baseline pins the signing key, later ones must be signed
/// by it. 201 when stored, 200 when the same file was stored before.
#[utoipa::path(post, path = "/v1/integrity/baselines", tag = "integrity", params(TenantQuery),
    request_body(content = Vec<u8>, content_type = "application/vnd.anshin.integrity-baseline"),
    responses((status = 201, body = BaselineStored), (status = 200, body = BaselineStored),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn store(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<TenantQuery>,
    file: Bytes,
) -> Result<impl IntoResponse> {
    let stored = s.app.store_baseline(&actor, query, &file).await?;
    let status = if stored.stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored)))
}

/// A host's newest stored baseline, as signed (operators and auditors); the
/// host's pinned key and the version are in the answer's headers.
#[utoipa::path(get, path = "/v1/integrity/baselines/{host}", tag = "integrity", params(TenantQuery,
        ("host" = String, Path, description = "The host name the baseline records")),
    responses((status = 200, content_type = "application/vnd.anshin.integrity-baseline", body = Vec<u8>,
               headers(("anshin-baseline-version" = i64, description = "The version"),
                       ("anshin-baseline-public-key" = String, description = "The host's pinned key"))),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    actor: Actor,
    Path(host): Path<String>,
    QueryParams(query): QueryParams<TenantQuery>,
) -> Result<Response> {
    let (row, pin) = s.app.stored_baseline(&actor, &host, query).await?;
    let mut response = row.file.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(BASELINE_MEDIA_TYPE),
    );
    headers.insert(VERSION_HEADER, HeaderValue::from(row.version));
    if let Ok(key) = HeaderValue::from_str(&pin.public_key) {
        headers.insert(KEY_HEADER, key);
    }
    Ok(response)
}

/// A host's pinned key and every stored version with who approved it and why
/// (operators and auditors), newest first.
#[utoipa::path(get, path = "/v1/integrity/baselines/{host}/history", tag = "integrity", params(TenantQuery,
        ("host" = String, Path, description = "The host name the baseline records")),
    responses((status = 200, body = BaselineHistory), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(s): State<AppState>,
    actor: Actor,
    Path(host): Path<String>,
    QueryParams(query): QueryParams<TenantQuery>,
) -> Result<Json<BaselineHistory>> {
    Ok(Json(s.app.baseline_history(&actor, &host, query).await?))
}

/// Pin a new baseline key for a host in place of the current one (operators);
/// raises a high `host_baseline_changed` alert.
#[utoipa::path(put, path = "/v1/integrity/hosts/{host}/key", tag = "integrity", request_body = NewPin,
    params(("host" = String, Path, description = "The host name the baseline records")),
    responses((status = 200, body = BaselineHistory), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn pin(
    State(s): State<AppState>,
    actor: Actor,
    Path(host): Path<String>,
    JsonBody(new): JsonBody<NewPin>,
) -> Result<Json<BaselineHistory>> {
    Ok(Json(s.app.pin_baseline_key(&actor, &host, new).await?))
}
