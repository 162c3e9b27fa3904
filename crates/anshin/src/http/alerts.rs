//! `GET /v1/alerts`: the security alerts raised by the detectors over the
//! audit log.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::QueryParams;
use crate::access::Actor;
use crate::audit::alerts::{AlertList, AlertQuery};
use crate::error::{ErrorBody, Result};

/// Security alerts of the key's tenant (every alert for global keys), oldest
/// first. Operators and auditors. The same alerts are POSTed to the configured
/// webhook, signed in `Anshin-Signature` (body: `AlertNotification`).
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<AlertQuery>,
) -> Result<Json<AlertList>> {
    Ok(Json(s.app.alerts(&actor, query).await?))
}
