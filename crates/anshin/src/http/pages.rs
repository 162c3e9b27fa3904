//! `/v1/pages`: the checkout-page monitor; `/v1/csp-reports/{key}`: browsers'
//! CSP violation reports (no API key: the key in the path ties a report to
//! its page).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use super::extract::{JsonBody, QueryParams};
use crate::access::Actor;
use crate::error::{Error, ErrorBody, ErrorKind, Result};
use crate::integrity::host::{HostReport, HostReportAnswer};
use crate::integrity::{Authorisation, CheckResult, MAX_REPORT_BODY, NewPage, PageList, PageQuery, PageView};

/// Register a payment page to monitor (operators). Its first check is due at once.
#[utoipa::path(post, path = "/v1/pages", tag = "pages", request_body = NewPage,
    responses((status = 201, body = PageView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(new): JsonBody<NewPage>,
) -> Result<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(s.app.register_page(&actor, new).await?)))
}

/// Monitored pages with their last inventories (operators and auditors).
#[utoipa::path(get, path = "/v1/pages", tag = "pages", params(PageQuery),
    responses((status = 200, body = PageList), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<PageList>> {
    Ok(Json(s.app.pages(&actor, query).await?))
}

/// One monitored page, its scripts and their authorisations.
#[utoipa::path(get, path = "/v1/pages/{page_id}", tag = "pages",
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = PageView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    actor: Actor,
    Path(page_id): Path<String>,
) -> Result<Json<PageView>> {
    Ok(Json(s.app.page(&actor, &page_id).await?))
}

/// Authorise a script on the page with a justification (operators; PCI DSS 6.4.3).
#[utoipa::path(post, path = "/v1/pages/{page_id}/scripts", tag = "pages", request_body = Authorisation,
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = PageView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn authorise(
    State(s): State<AppState>,
    actor: Actor,
    Path(page_id): Path<String>,
    JsonBody(auth): JsonBody<Authorisation>,
) -> Result<Json<PageView>> {
    Ok(Json(s.app.authorise_script(&actor, &page_id, auth).await?))
}

/// Check the page now, outside its schedule (operators).
#[utoipa::path(post, path = "/v1/pages/{page_id}/check", tag = "pages",
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = CheckResult), (status = 404, body = ErrorBody)))]
pub async fn check(
    State(s): State<AppState>,
    actor: Actor,
    Path(page_id): Path<String>,
) -> Result<Json<CheckResult>> {
    Ok(Json(s.app.check_page_now(&actor, &page_id).await?))
}

/// A browser's CSP violation report (`application/csp-report` or
/// `application/reports+json`), for the page whose report key ends the path.
/// No API key; rate-limited per client and per page.
#[utoipa::path(post, path = "/v1/csp-reports/{report_key}", tag = "pages", security(()),
    params(("report_key" = String, Path, description = "The page's report key (csp_report_path)")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn csp_report(
    State(s): State<AppState>,
    Path(report_key): Path<String>,
    request: Request,
) -> Result<StatusCode> {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        s.app.proxies.client(info.0.ip(), forwarded)
    });
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), MAX_REPORT_BODY)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::PayloadTooLarge,
                "body_too_large",
                "a CSP report body is at most 64 KiB",
            )
        })?;
    s.app
        .csp_report(&report_key, client, content_type.as_deref(), &body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Store `anshin integrity check|watch --server` alerts in the alert list (operators).
#[utoipa::path(post, path = "/v1/integrity/alerts", tag = "pages", request_body = HostReport,
    responses((status = 200, body = HostReportAnswer), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn host_alerts(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(report): JsonBody<HostReport>,
) -> Result<Json<HostReportAnswer>> {
    Ok(Json(s.app.report_host_alerts(&actor, report).await?))
}
