//! HTTP wiring. [`router`] builds the whole application so tests can drive it
//! in-process; `anshin serve` binds it to a socket.
//!
//! Logging and metrics record the method, the route *template* and the status,
//! never the raw path or query: a client that puts a card number in a URL must
//! not get it into a log line.

mod alerts;
mod api;
mod audit;
pub mod baselines;
mod checkout;
pub mod checkout_page;
mod extract;
mod inventory;
mod keys;
mod pages;
mod retention;
pub mod seal;
pub mod sys;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;

pub use api::ApiDoc;

use crate::app::App;
use crate::error::{Error, ErrorKind};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
}

/// The whole HTTP application.
pub fn router(app: Arc<App>) -> Router {
    sys::metrics_handle();
    let v1 = Router::new()
        .route("/tenants", post(api::create_tenant).get(api::list_tenants))
        .route("/tenants/{tenant_id}", get(api::get_tenant))
        .route(
            "/tenants/{tenant_id}/settings",
            get(api::get_tenant_settings).put(api::put_tenant_settings),
        )
        .route(
            "/tenants/{tenant_id}/shops",
            post(api::create_shop).get(api::list_shops),
        )
        .route(
            "/principals",
            post(api::create_principal).get(api::list_principals),
        )
        .route("/principals/{principal_id}/disable", post(api::disable_principal))
        .route("/principals/{principal_id}/rotate", post(api::rotate_principal))
        .route(
            "/principals/{principal_id}/allowed-ips",
            put(api::set_allowed_ips),
        )
        .route("/cards", post(api::tokenize_card))
        .route("/cards/lookup", post(api::lookup_card))
        .route("/cards/{token}", get(api::get_card).delete(api::delete_card))
        .route("/cards/{token}/reveal", post(api::reveal_card))
        .route("/customers", post(api::create_customer))
        .route(
            "/customers/{customer_id}",
            get(api::get_customer).delete(api::delete_customer),
        )
        .route("/orders", post(api::create_order).get(api::list_orders))
        .route("/orders/export", get(retention::export))
        .route("/orders/{order_id}", get(api::get_order))
        .route("/orders/{order_id}/shipping", get(retention::shipping))
        .route(
            "/principals/{principal_id}/export-approvals",
            post(retention::approve_export),
        )
        .route("/orders/{order_id}/complete", post(api::complete_order))
        .route("/customers/{customer_id}/access-log", get(audit::access_log))
        .route(
            "/audit/checkpoint",
            get(audit::checkpoint).post(audit::checkpoint_now),
        )
        .route("/audit/tile/{*path}", get(audit::tile))
        .route("/audit/proof/inclusion", get(audit::inclusion))
        .route("/audit/proof/consistency", get(audit::consistency))
        .route("/audit/events", get(audit::events))
        .route("/alerts", get(alerts::list))
        .route(
            "/inventory",
            // Inventories of large estates outgrow the API's 64 KiB; the
            // innermost body limit is the one that applies.
            post(inventory::upload)
                .get(inventory::list)
                .layer(DefaultBodyLimit::max(inventory::MAX_INVENTORY_BODY)),
        )
        .route("/pages", post(pages::register).get(pages::list))
        .route("/pages/{page_id}", get(pages::get))
        .route("/pages/{page_id}/scripts", post(pages::authorise))
        .route("/pages/{page_id}/check", post(pages::check))
        .route("/csp-reports/{report_key}", post(pages::csp_report))
        .route(
            "/integrity/alerts",
            // A watch of a large tree can report many alerts at once.
            post(pages::host_alerts).layer(DefaultBodyLimit::max(inventory::MAX_INVENTORY_BODY)),
        )
        .route(
            "/integrity/baselines",
            post(baselines::store).layer(DefaultBodyLimit::max(
                crate::integrity::baselines::MAX_BASELINE_BYTES,
            )),
        )
        .route("/integrity/baselines/{host}", get(baselines::get))
        .route("/integrity/baselines/{host}/history", get(baselines::history))
        .route("/integrity/hosts/{host}/key", put(baselines::pin))
        .route("/keys/status", get(keys::status))
        .route("/keys/requests", post(keys::request).get(keys::list))
        .route("/keys/requests/{request_id}/approve", post(keys::approve))
        .route("/keys/requests/{request_id}/reject", post(keys::reject))
        .route("/checkout/sessions", post(checkout::create_session))
        .route("/checkout/sessions/{session_id}", get(checkout::get_session))
        .route("/payments", post(checkout::create_payment))
        .route("/payments/{payment_id}", get(checkout::get_payment))
        .route("/payments/{payment_id}/capture", post(checkout::capture))
        .route("/payments/{payment_id}/void", post(checkout::void))
        .route("/payments/{payment_id}/refunds", post(checkout::refund))
        .route("/tenants/{tenant_id}/routes", get(checkout::list_routes))
        .route("/tenants/{tenant_id}/routes/{name}", put(checkout::put_route))
        .route("/proxy/{route}", post(checkout::forward))
        .route(
            "/shops/{shop_id}/webhook",
            put(webhooks::put).get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/shops/{shop_id}/webhook/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/openapi.json", get(sys::openapi));
    let shopper = Router::new()
        .route("/{session_id}/card", post(checkout::submit_card))
        .route("/{session_id}/status", get(checkout::status))
        .route("/{session_id}/3ds-return", get(checkout::three_ds_return))
        .route("/{session_id}", get(checkout_page::page))
        .route("/assets/{file}", get(checkout_page::serve_asset));
    Router::new()
        .nest("/v1", v1)
        .nest("/checkout", shopper)
        .route("/healthz", get(sys::healthz))
        .route("/readyz", get(sys::readyz))
        .route("/metrics", get(sys::metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // After routing, so the route template (MatchedPath) is known.
        .route_layer(middleware::from_fn(observe))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            // The panic payload is not echoed: it could describe the request.
            Error::new(
                ErrorKind::Internal,
                "internal",
                "internal error; the server log has the details",
            )
            .into_response()
        }))
        .with_state(AppState { app })
}

async fn no_route() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "no_route",
        "no such endpoint; see /v1/openapi.json",
    )
}

async fn wrong_method() -> Error {
    Error::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        "this endpoint does not take this HTTP method",
    )
}

/// Request metrics and a debug log line per request, by route template.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::histogram!("anshin_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!("anshin_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    tracing::debug!(%method, route, status, micros = elapsed.as_micros() as u64, "request");
    response
}
