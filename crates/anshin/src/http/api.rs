//! The `/v1` handlers: thin wrappers that extract typed input, call the
//! application and shape the answer. The OpenAPI document is generated from the
//! annotations here.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::extract::{CallerKey, JsonBody, OptionalJsonBody, QueryParams};
use crate::access::credentials::{
    AllowedIpsChange, RotateRequest, RotatedKey, SettingsChange, TenantSettings,
};
use crate::access::principals::{CreatedPrincipal, NewPrincipal, Principal, PrincipalQuery};
use crate::access::{Actor, Role};
use crate::error::{ErrorBody, Result};
use crate::orders::{NewOrder, Order, OrderPage, OrderQuery};
use crate::tenancy::{NewNamed, Shop, Tenant};
use crate::vault::cards::{CardInput, CardLookup, MaskedCard, RevealedCard};
use crate::vault::customers::{MaskedCustomer, NewCustomer};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "anshin",
        description = "Card and personal-data vault: tokens and masked views for shops, full data only for processors. \
                       Errors are `{\"error\":{\"code\",\"message\"}}` with stable codes."
    ),
    paths(
        create_tenant, list_tenants, get_tenant, get_tenant_settings, put_tenant_settings,
        create_shop, list_shops,
        create_principal, list_principals, disable_principal, rotate_principal, set_allowed_ips,
        tokenize_card, lookup_card, get_card, reveal_card, delete_card,
        create_customer, get_customer, delete_customer,
        create_order, list_orders, get_order, complete_order,
        super::retention::shipping, super::retention::export, super::retention::approve_export,
        super::audit::checkpoint, super::audit::checkpoint_now, super::audit::tile,
        super::audit::inclusion, super::audit::consistency, super::audit::events, super::audit::access_log,
        super::alerts::list,
        super::checkout::create_session, super::checkout::get_session,
        super::checkout::create_payment, super::checkout::get_payment, super::checkout::capture,
        super::checkout::void, super::checkout::refund, super::checkout::put_route, super::checkout::list_routes,
        super::checkout::forward,
        super::webhooks::put, super::webhooks::get, super::webhooks::delete, super::webhooks::rotate_secret,
        super::inventory::upload, super::inventory::list,
        super::pages::register, super::pages::list, super::pages::get, super::pages::authorise,
        super::pages::check, super::pages::csp_report, super::pages::host_alerts,
        super::baselines::store, super::baselines::get, super::baselines::history, super::baselines::pin,
        super::keys::status, super::keys::request, super::keys::list, super::keys::approve, super::keys::reject,
        super::sys::healthz, super::sys::readyz,
        super::seal::seal_status, super::seal::unseal, super::seal::seal
    ),
    components(schemas(ErrorBody, Role, crate::audit::alerts::AlertNotification,
        crate::proxy::webhooks::PaymentEventBody)),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("anshin_sk_…")
                    .build(),
            ),
        );
    }
}

/// Create a tenant (global operators).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewNamed,
    responses((status = 201, body = Tenant), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_tenant(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewNamed>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_tenant(&actor, input).await?),
    ))
}

/// List the tenants this key can see.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = Vec<Tenant>)))]
pub async fn list_tenants(State(s): State<AppState>, actor: Actor) -> Result<Json<Vec<Tenant>>> {
    Ok(Json(s.app.tenants(&actor).await?))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant_id): Path<String>,
) -> Result<Json<Tenant>> {
    Ok(Json(s.app.tenant(&actor, &tenant_id).await?))
}

/// Create a shop in a tenant (operators).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/shops", tag = "tenants", request_body = NewNamed,
    responses((status = 201, body = Shop), (status = 404, body = ErrorBody)))]
pub async fn create_shop(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant_id): Path<String>,
    JsonBody(input): JsonBody<NewNamed>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_shop(&actor, &tenant_id, input).await?),
    ))
}

/// The shops of a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/shops", tag = "tenants", responses((status = 200, body = Vec<Shop>)))]
pub async fn list_shops(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<Shop>>> {
    Ok(Json(s.app.shops(&actor, &tenant_id).await?))
}

/// Create a principal; its API key is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/principals", tag = "principals", request_body = NewPrincipal,
    responses((status = 201, body = CreatedPrincipal), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_principal(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewPrincipal>,
) -> Result<impl IntoResponse> {
    let (principal, api_key) = s.app.create_principal(Some(&actor), input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPrincipal::new(&principal, api_key)),
    ))
}

/// List principals (never their keys).
#[utoipa::path(get, path = "/v1/principals", tag = "principals", params(PrincipalQuery),
    responses((status = 200, body = Vec<Principal>)))]
pub async fn list_principals(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<PrincipalQuery>,
) -> Result<Json<Vec<Principal>>> {
    Ok(Json(s.app.principals(&actor, query).await?))
}

/// Disable a principal: its key stops working.
#[utoipa::path(post, path = "/v1/principals/{principal_id}/disable", tag = "principals",
    responses((status = 200, body = Principal), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_principal(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Principal>> {
    Ok(Json(s.app.disable_principal(&actor, &id).await?))
}

/// Issue a new key for a principal; its current keys keep working for the
/// overlap. Operators rotate the principals they manage; any principal may
/// rotate itself with its newest key. The new key is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/principals/{principal_id}/rotate", tag = "principals", request_body = RotateRequest,
    responses((status = 201, body = RotatedKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_principal(
    State(s): State<AppState>,
    actor: Actor,
    CallerKey(caller): CallerKey,
    Path(id): Path<String>,
    OptionalJsonBody(input): OptionalJsonBody<RotateRequest>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.rotate_principal(&actor, &id, input, caller).await?),
    ))
}

/// Replace a principal's IP allow-list (`null` allows any address).
#[utoipa::path(put, path = "/v1/principals/{principal_id}/allowed-ips", tag = "principals", request_body = AllowedIpsChange,
    responses((status = 200, body = Principal), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn set_allowed_ips(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<AllowedIpsChange>,
) -> Result<Json<Principal>> {
    Ok(Json(s.app.set_allowed_ips(&actor, &id, input).await?))
}

/// A tenant's settings: key lifetime and rotation overlap (operators, auditors).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/settings", tag = "tenants",
    responses((status = 200, body = TenantSettings), (status = 404, body = ErrorBody)))]
pub async fn get_tenant_settings(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantSettings>> {
    Ok(Json(s.app.tenant_settings(&actor, &tenant_id).await?))
}

/// Change a tenant's settings (operators). Fields left out stay; `null` restores
/// the default. A shorter key lifetime also shortens existing keys.
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/settings", tag = "tenants", request_body = SettingsChange,
    responses((status = 200, body = TenantSettings), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_tenant_settings(
    State(s): State<AppState>,
    actor: Actor,
    Path(tenant_id): Path<String>,
    JsonBody(input): JsonBody<SettingsChange>,
) -> Result<Json<TenantSettings>> {
    Ok(Json(
        s.app.change_tenant_settings(&actor, &tenant_id, input).await?,
    ))
}

/// Tokenize a card. 201 for a new card, 200 when the tenant already holds this
/// number (same token; expiry and holder updated).
#[utoipa::path(post, path = "/v1/cards", tag = "cards", request_body = CardInput,
    responses((status = 201, body = MaskedCard), (status = 200, body = MaskedCard),
        (status = 409, description = "`card_busy` (the card was being deleted meanwhile), \
            `keys_changed` (the tenant's keys changed on another node): nothing stored, retry", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn tokenize_card(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<CardInput>,
) -> Result<impl IntoResponse> {
    let (card, created) = s.app.tokenize(&actor, input).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(card),
    ))
}

/// Find a card by number through its keyed fingerprint (operators).
#[utoipa::path(post, path = "/v1/cards/lookup", tag = "cards", request_body = CardLookup,
    responses((status = 200, body = MaskedCard), (status = 404, body = ErrorBody)))]
pub async fn lookup_card(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<CardLookup>,
) -> Result<Json<MaskedCard>> {
    Ok(Json(s.app.lookup_card(&actor, input).await?))
}

/// A card, masked.
#[utoipa::path(get, path = "/v1/cards/{token}", tag = "cards",
    responses((status = 200, body = MaskedCard), (status = 404, body = ErrorBody)))]
pub async fn get_card(
    State(s): State<AppState>,
    actor: Actor,
    Path(token): Path<String>,
) -> Result<Json<MaskedCard>> {
    Ok(Json(s.app.card(&actor, &token).await?))
}

/// Full card data (processors only).
#[utoipa::path(post, path = "/v1/cards/{token}/reveal", tag = "cards",
    responses((status = 200, body = RevealedCard), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reveal_card(
    State(s): State<AppState>,
    actor: Actor,
    Path(token): Path<String>,
) -> Result<Json<RevealedCard>> {
    Ok(Json(s.app.reveal_card(&actor, &token).await?))
}

/// Delete a card: its data key is destroyed (crypto-shredding).
#[utoipa::path(delete, path = "/v1/cards/{token}", tag = "cards",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_card(
    State(s): State<AppState>,
    actor: Actor,
    Path(token): Path<String>,
) -> Result<StatusCode> {
    s.app.delete_card(&actor, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Store a customer's personal data.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = NewCustomer,
    responses((status = 201, body = MaskedCustomer),
        (status = 409, description = "`keys_changed` (the tenant's keys changed on another node): nothing stored, retry", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_customer(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewCustomer>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_customer(&actor, input).await?),
    ))
}

/// A customer, masked.
#[utoipa::path(get, path = "/v1/customers/{customer_id}", tag = "customers",
    responses((status = 200, body = MaskedCustomer), (status = 404, body = ErrorBody)))]
pub async fn get_customer(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<MaskedCustomer>> {
    Ok(Json(s.app.customer(&actor, &id).await?))
}

/// Delete a customer's personal data: its data key is destroyed
/// (crypto-shredding), so no copy, backups included, can be read again.
#[utoipa::path(delete, path = "/v1/customers/{customer_id}", tag = "customers",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_customer(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.app.delete_customer(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an order.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = NewOrder,
    responses((status = 201, body = Order), (status = 404, body = ErrorBody),
        (status = 409, description = "`keys_changed` (the tenant's keys changed on another node): nothing stored, retry", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_order(
    State(s): State<AppState>,
    actor: Actor,
    JsonBody(input): JsonBody<NewOrder>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_order(&actor, input).await?),
    ))
}

/// A shop's orders, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrderQuery), responses((status = 200, body = OrderPage)))]
pub async fn list_orders(
    State(s): State<AppState>,
    actor: Actor,
    QueryParams(query): QueryParams<OrderQuery>,
) -> Result<Json<OrderPage>> {
    Ok(Json(s.app.orders(&actor, query).await?))
}

/// An order.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders",
    responses((status = 200, body = Order), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Order>> {
    Ok(Json(s.app.order(&actor, &id).await?))
}

/// Mark an order completed.
#[utoipa::path(post, path = "/v1/orders/{order_id}/complete", tag = "orders",
    responses((status = 200, body = Order), (status = 409, body = ErrorBody)))]
pub async fn complete_order(
    State(s): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Order>> {
    Ok(Json(s.app.complete_order(&actor, &id).await?))
}
