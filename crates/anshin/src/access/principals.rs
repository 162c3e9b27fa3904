//! Principals and their API keys.
//!
//! A key is shown once, at creation, and stored only as its SHA-256 hash.
//! Authentication hashes the presented key and looks the hash up; a short-lived
//! in-memory cache keeps that lookup off the hot path. Disabling a principal
//! clears the cache on this node at once; other nodes drop their cached entry
//! within [`AUTH_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anshin_crypto::secret::SecretString;
use anshin_crypto::token;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Action, Actor, Role};
use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::PrincipalRow;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{PrincipalId, ShopId, TenantId, parse_or_404};
use crate::text;

/// How long another node may keep honouring a key after it was disabled.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
const AUTH_CACHE_MAX: usize = 10_000;

/// Cache of authenticated keys, by key hash.
///
/// The generation changes whenever a principal is disabled; a lookup that began
/// before the change does not cache its (possibly stale) answer.
#[derive(Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<[u8; 32], (Actor, Instant)>>,
    generation: AtomicU64,
}

impl AuthCache {
    fn get(&self, hash: &[u8; 32]) -> Option<Actor> {
        let map = self.entries.read().ok()?;
        let (actor, at) = map.get(hash)?;
        (at.elapsed() < AUTH_CACHE_TTL).then(|| actor.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn put(&self, hash: [u8; 32], actor: Actor, generation: u64) {
        if let Ok(mut map) = self.entries.write() {
            // Checked under the lock that `clear` also takes.
            if self.generation() != generation {
                return;
            }
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
            map.insert(hash, (actor, Instant::now()));
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            map.clear();
        }
    }
}

/// A principal to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    /// Who or what uses the key, for the audit trail.
    #[schema(example = "shop-1 order system")]
    pub name: String,
    /// The role.
    pub role: Role,
    /// Tenant; defaults to the caller's. Omit (as a global operator) for a global principal.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The shop, for role `shop` (required there, refused otherwise).
    #[serde(default)]
    pub shop_id: Option<String>,
}

/// Query of a principal listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PrincipalQuery {
    /// Only principals of this tenant.
    pub tenant_id: Option<String>,
}

/// A principal (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct Principal {
    /// Principal id.
    #[schema(value_type = String)]
    pub id: PrincipalId,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Tenant, absent for global principals.
    #[schema(value_type = Option<String>)]
    pub tenant_id: Option<TenantId>,
    /// Shop, for shop principals.
    #[schema(value_type = Option<String>)]
    pub shop_id: Option<ShopId>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was disabled (RFC 3339).
    pub disabled_at: Option<String>,
}

/// A new principal with its API key, shown this once.
#[derive(ToSchema)]
pub struct CreatedPrincipal {
    /// Principal id.
    #[schema(value_type = String)]
    pub id: PrincipalId,
    /// Role.
    pub role: Role,
    /// The API key. It is not stored and cannot be shown again.
    #[schema(value_type = String)]
    pub api_key: SecretString,
}

impl Serialize for CreatedPrincipal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("CreatedPrincipal", 3)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("role", &self.role)?;
        s.serialize_field("api_key", self.api_key.expose())?;
        s.end()
    }
}

impl From<PrincipalRow> for Principal {
    fn from(row: PrincipalRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            role: row.role,
            tenant_id: row.tenant_id,
            shop_id: row.shop_id,
            created_at: clock::rfc3339(row.created_at),
            disabled_at: row.disabled_at.map(clock::rfc3339),
        }
    }
}

impl App {
    /// Creates a principal and its API key. `actor` is `None` only for the
    /// bootstrap operator that `anshin init` creates.
    pub async fn create_principal(
        &self,
        actor: Option<&Actor>,
        input: NewPrincipal,
    ) -> Result<(Principal, SecretString)> {
        match actor {
            Some(actor) => {
                self.audited(actor, EventKind::PrincipalCreate, async |event| {
                    self.new_principal(Some(actor), input, event).await
                })
                .await
            }
            None => {
                self.new_principal(None, input, &mut Event::new(EventKind::PrincipalCreate))
                    .await
            }
        }
    }

    async fn new_principal(
        &self,
        actor: Option<&Actor>,
        input: NewPrincipal,
        event: &mut Event,
    ) -> Result<(Principal, SecretString)> {
        if let Some(actor) = actor {
            actor.require(Action::ManagePrincipals)?;
            if !actor.role.may_create(input.role, actor.tenant_id.is_none()) {
                return Err(Error::forbidden(
                    "create principals with this role (processor keys need a global operator)",
                ));
            }
        }
        let name = text::label(&input.name, 200, "invalid_name", "name")?;
        let requested_tenant = input
            .tenant_id
            .as_deref()
            .map(|t| parse_or_404(TenantId::parse, t, "tenant"))
            .transpose()?;
        let tenant = match (actor.and_then(|a| a.tenant_id.clone()), requested_tenant) {
            (Some(own), None) => Some(own),
            (Some(own), Some(req)) if own == req => Some(own),
            (Some(_), Some(_)) => return Err(Error::not_found("tenant")),
            (None, requested) => requested,
        };
        if let Some(tenant) = &tenant {
            self.store
                .tenant(tenant)
                .await?
                .ok_or_else(|| Error::not_found("tenant"))?;
        }
        let shop = match (input.role, input.shop_id.as_deref()) {
            (Role::Shop, Some(shop)) => {
                let shop_id = parse_or_404(ShopId::parse, shop, "shop")?;
                let row = self
                    .store
                    .shop(&shop_id)
                    .await?
                    .ok_or_else(|| Error::not_found("shop"))?;
                if tenant.as_ref().is_some_and(|t| *t != row.tenant_id)
                    || actor.is_some_and(|a| !a.sees_tenant(&row.tenant_id))
                {
                    return Err(Error::not_found("shop"));
                }
                Some(row)
            }
            (Role::Shop, None) => {
                return Err(Error::invalid(
                    "shop_required",
                    "a principal with role shop needs shop_id",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "shop_not_allowed",
                    "only principals with role shop take a shop_id",
                ));
            }
            (_, None) => None,
        };
        let tenant = shop.as_ref().map(|s| s.tenant_id.clone()).or(tenant);
        let (key, hash) = token::new_api_key()?;
        let row = PrincipalRow {
            id: PrincipalId::generate()?,
            name,
            role: input.role,
            tenant_id: tenant,
            shop_id: shop.map(|s| s.id),
            created_at: clock::now_ms(),
            disabled_at: None,
        };
        if let Some(tenant) = &row.tenant_id {
            event.tenant(tenant);
        }
        event.resource(&row.id);
        match actor {
            Some(actor) => self.record_now(actor, event).await?,
            None => self.record(None, None, event, None).await?,
        }
        self.store.insert_principal(row.clone(), hash).await?;
        Ok((row.into(), key))
    }

    /// Principals the actor can see, optionally of one tenant.
    pub async fn principals(&self, actor: &Actor, query: PrincipalQuery) -> Result<Vec<Principal>> {
        actor.require(Action::ReadPrincipals)?;
        let requested = query
            .tenant_id
            .as_deref()
            .map(|t| parse_or_404(TenantId::parse, t, "tenant"))
            .transpose()?;
        let tenant = match (&actor.tenant_id, requested) {
            (Some(own), None) => Some(own.clone()),
            (own, requested) => {
                if let Some(req) = &requested
                    && own.as_ref().is_some_and(|o| o != req)
                {
                    return Err(Error::not_found("tenant"));
                }
                requested
            }
        };
        Ok(self
            .store
            .principals(tenant.as_ref())
            .await?
            .into_iter()
            .map(Principal::from)
            .collect())
    }

    /// Disables a principal: its key stops working.
    pub async fn disable_principal(&self, actor: &Actor, id: &str) -> Result<Principal> {
        self.audited(actor, EventKind::PrincipalDisable, async |event| {
            actor.require(Action::ManagePrincipals)?;
            let id = parse_or_404(PrincipalId::parse, id, "principal")?;
            if id == actor.principal_id {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "cannot_disable_self",
                    "a principal cannot disable itself; use another operator key",
                ));
            }
            let row = self.store.principal(&id).await?.filter(|p| {
                p.tenant_id
                    .as_ref()
                    .map_or(actor.tenant_id.is_none(), |t| actor.sees_tenant(t))
            });
            let row = row.ok_or_else(|| Error::not_found("principal"))?;
            if let Some(tenant) = &row.tenant_id {
                event.tenant(tenant);
            }
            event.resource(&id);
            if row.disabled_at.is_none() {
                self.record_now(actor, event).await?;
                self.store.disable_principal(&id, clock::now_ms()).await?;
                self.auth.clear();
            }
            Ok(self
                .store
                .principal(&id)
                .await?
                .ok_or_else(|| Error::not_found("principal"))?
                .into())
        })
        .await
    }

    /// The actor an API key belongs to.
    pub async fn authenticate(&self, key: &str) -> Result<Actor> {
        let invalid = || {
            Error::new(
                ErrorKind::Unauthenticated,
                "invalid_api_key",
                "the API key is not valid or has been disabled",
            )
        };
        if !key.starts_with(token::API_KEY_PREFIX) || key.len() > 128 {
            return Err(invalid());
        }
        let hash = token::api_key_hash(key);
        let generation = self.auth.generation();
        if let Some(actor) = self.auth.get(&hash) {
            tracing::trace!(principal = %actor.principal_id, role = actor.role.as_str(), cached = true, "authenticated");
            return Ok(actor);
        }
        let row = self
            .store
            .principal_by_key(&hash)
            .await?
            .filter(|p| p.disabled_at.is_none());
        let row = row.ok_or_else(invalid)?;
        let actor = Actor {
            principal_id: row.id,
            role: row.role,
            tenant_id: row.tenant_id,
            shop_id: row.shop_id,
            origin: None,
            purpose: None,
        };
        tracing::trace!(principal = %actor.principal_id, role = actor.role.as_str(), cached = false, "authenticated");
        self.auth.put(hash, actor.clone(), generation);
        Ok(actor)
    }
}
