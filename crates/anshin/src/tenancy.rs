//! Tenants and their shops.
//!
//! A tenant is one customer of anshin (a marketplace, a payment provider, or one
//! shop's operator) with its own keys; shops live inside it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::clock;
use crate::db::{ShopRow, TenantRow};
use crate::error::{Error, Result};
use crate::ids::{ShopId, TenantId, parse_or_404};
use crate::text;

/// A new tenant or shop.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNamed {
    /// Display name, 1–200 characters.
    #[schema(example = "あんしんマーケット")]
    pub name: String,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    /// Tenant id.
    #[schema(value_type = String)]
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A shop.
#[derive(Debug, Serialize, ToSchema)]
pub struct Shop {
    /// Shop id.
    #[schema(value_type = String)]
    pub id: ShopId,
    /// Its tenant.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// Name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: clock::rfc3339(row.created_at),
        }
    }
}

impl From<ShopRow> for Shop {
    fn from(row: ShopRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            created_at: clock::rfc3339(row.created_at),
        }
    }
}

impl App {
    /// Creates a tenant with fresh keys. Global operators only.
    pub async fn create_tenant(&self, actor: &Actor, input: NewNamed) -> Result<Tenant> {
        self.audited(actor, EventKind::TenantCreate, async |event| {
            actor.require(Action::CreateTenant)?;
            if actor.tenant_id.is_some() {
                return Err(Error::forbidden(
                    "create tenants (a global operator key is needed)",
                ));
            }
            let name = text::label(&input.name, 200, "invalid_name", "name")?;
            let now = clock::now_ms();
            let id = TenantId::generate()?;
            let keys = self.keyring.new_tenant_keys(&id, now)?;
            let row = TenantRow {
                id,
                name,
                created_at: now,
            };
            event.tenant(&row.id).resource(&row.id);
            self.record_now(actor, event).await?;
            self.store.insert_tenant(row.clone(), keys).await?;
            Ok(row.into())
        })
        .await
    }

    /// The tenants the actor can see.
    pub async fn tenants(&self, actor: &Actor) -> Result<Vec<Tenant>> {
        actor.require(Action::ReadTenants)?;
        let rows = match &actor.tenant_id {
            None => self.store.tenants().await?,
            Some(own) => self.store.tenant(own).await?.into_iter().collect(),
        };
        Ok(rows.into_iter().map(Tenant::from).collect())
    }

    /// A tenant the actor can see.
    pub async fn tenant(&self, actor: &Actor, id: &str) -> Result<Tenant> {
        actor.require(Action::ReadTenants)?;
        let id = self.visible_tenant(actor, id)?;
        Ok(self
            .store
            .tenant(&id)
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?
            .into())
    }

    fn visible_tenant(&self, actor: &Actor, id: &str) -> Result<TenantId> {
        let id = parse_or_404(TenantId::parse, id, "tenant")?;
        if actor.sees_tenant(&id) {
            Ok(id)
        } else {
            Err(Error::not_found("tenant"))
        }
    }

    /// Creates a shop in a tenant.
    pub async fn create_shop(&self, actor: &Actor, tenant: &str, input: NewNamed) -> Result<Shop> {
        self.audited(actor, EventKind::ShopCreate, async |event| {
            actor.require(Action::ManageShops)?;
            let tenant = self.visible_tenant(actor, tenant)?;
            self.store
                .tenant(&tenant)
                .await?
                .ok_or_else(|| Error::not_found("tenant"))?;
            let name = text::label(&input.name, 200, "invalid_name", "name")?;
            let row = ShopRow {
                id: ShopId::generate()?,
                tenant_id: tenant,
                name,
                created_at: clock::now_ms(),
            };
            event.tenant(&row.tenant_id).resource(&row.id);
            self.record_now(actor, event).await?;
            self.store.insert_shop(row.clone()).await?;
            Ok(row.into())
        })
        .await
    }

    /// The shops of a tenant.
    pub async fn shops(&self, actor: &Actor, tenant: &str) -> Result<Vec<Shop>> {
        actor.require(Action::ReadTenants)?;
        let tenant = self.visible_tenant(actor, tenant)?;
        Ok(self
            .store
            .shops(&tenant)
            .await?
            .into_iter()
            .map(Shop::from)
            .collect())
    }
}
