//! Principals and their API keys.
//!
//! A key is shown once, at creation, and stored only as its SHA-256 hash.
//! Authentication hashes the presented key and looks the hash up; a short-lived
//! in-memory cache keeps that lookup off the hot path. The cache holds the key's
//! expiry and the principal's allow-list with the actor, so an entry never
//! outlives its key and is checked against the request's address every time.
//! Disabling a principal, rotating a key, changing an allow-list or a tenant's
//! key lifetime clears the cache on this node at once; other nodes drop their
//! cached entry within [`AUTH_CACHE_TTL`].
//!
//! A key is refused with 401 `invalid_api_key` when it is unknown, revoked or
//! its principal disabled; with 401 `api_key_expired` (saying how to rotate)
//! once it expired; with 403 `ip_not_allowed` when the principal has an
//! allow-list and the request comes from elsewhere, or from an unknown address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anshin_crypto::secret::SecretString;
use anshin_crypto::token;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use crate::access::cidr::AllowList;
use crate::access::{Action, Actor, Role};
use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::PrincipalRow;
use crate::db::credentials::KeyRow;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{PrincipalId, ShopId, TenantId, parse_or_404};
use crate::text;

/// How long another node may keep honouring a key after it was disabled.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
const AUTH_CACHE_MAX: usize = 10_000;

/// A key that was found valid: who it belongs to, until when it works and
/// where from.
#[derive(Clone)]
struct Credential {
    actor: Actor,
    expires_at: i64,
    allowed: Option<Arc<AllowList>>,
}

impl Credential {
    fn principal(&self) -> Option<Box<(PrincipalId, Option<TenantId>)>> {
        Some(Box::new((
            self.actor.principal_id.clone(),
            self.actor.tenant_id.clone(),
        )))
    }

    /// The actor, if the key still works at `now` from `origin`. The allow-list
    /// is checked first, so only an allowed address learns that a key expired.
    fn admit(&self, now: i64, origin: Option<IpAddr>) -> Result<Actor, Refusal> {
        if let Some(allowed) = &self.allowed
            && !origin.is_some_and(|ip| allowed.allows(ip))
        {
            return Err(Refusal {
                error: ip_not_allowed(),
                principal: self.principal(),
            });
        }
        if now >= self.expires_at {
            return Err(Refusal {
                error: expired(&self.actor.principal_id, self.expires_at),
                principal: self.principal(),
            });
        }
        Ok(self.actor.clone())
    }
}

/// Cache of authenticated keys, by key hash.
///
/// The generation changes whenever a principal's keys or allow-list change; a
/// lookup that began before the change does not cache its (possibly stale) answer.
#[derive(Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<[u8; 32], (Credential, Instant)>>,
    generation: AtomicU64,
}

impl AuthCache {
    fn get(&self, hash: &[u8; 32]) -> Option<Credential> {
        let map = self.entries.read().ok()?;
        let (credential, at) = map.get(hash)?;
        (at.elapsed() < AUTH_CACHE_TTL).then(|| credential.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn put(&self, hash: [u8; 32], credential: Credential, generation: u64) {
        if let Ok(mut map) = self.entries.write() {
            // Checked under the lock that `clear` also takes.
            if self.generation() != generation {
                return;
            }
            if map.len() >= AUTH_CACHE_MAX {
                map.clear();
            }
            map.insert(hash, (credential, Instant::now()));
        }
    }

    pub(crate) fn clear(&self) {
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
    /// CIDR blocks (1 to 32) its key may be used from, such as `192.0.2.0/24`;
    /// omit to allow any address.
    #[serde(default)]
    #[schema(example = json!(["192.0.2.0/24"]))]
    pub allowed_ips: Option<Vec<String>>,
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
    /// CIDR blocks its key may be used from; absent when any address may use it.
    pub allowed_ips: Option<Vec<String>>,
    /// When its newest key expires or expired (RFC 3339); absent when it has no
    /// key that is not revoked.
    pub key_expires_at: Option<String>,
    /// Its keys that work now: one, or two while a rotation's overlap runs.
    pub keys: Vec<KeyInfo>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was disabled (RFC 3339).
    pub disabled_at: Option<String>,
}

/// A working key of a principal (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// When it was issued (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
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
    /// When the key expires (RFC 3339): rotate it before then.
    pub expires_at: Option<String>,
}

impl CreatedPrincipal {
    /// The answer for a principal just created with `api_key`.
    pub fn new(principal: &Principal, api_key: SecretString) -> Self {
        Self {
            id: principal.id.clone(),
            role: principal.role,
            api_key,
            expires_at: principal.key_expires_at.clone(),
        }
    }
}

impl Serialize for CreatedPrincipal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("CreatedPrincipal", 4)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("role", &self.role)?;
        s.serialize_field("api_key", self.api_key.expose())?;
        s.serialize_field("expires_at", &self.expires_at)?;
        s.end()
    }
}

impl Principal {
    /// The listing of `row`, with its keys among `keys` (keys of other
    /// principals are skipped; revoked keys are never passed in).
    fn new(row: PrincipalRow, keys: &[KeyRow], now: i64) -> Self {
        let own: Vec<&KeyRow> = keys.iter().filter(|k| k.principal_id == row.id).collect();
        let newest = own.iter().max_by_key(|k| k.created_at);
        Self {
            key_expires_at: newest.map(|k| clock::rfc3339(k.expires_at)),
            keys: own
                .iter()
                .filter(|k| k.is_live(now))
                .map(|k| KeyInfo {
                    created_at: clock::rfc3339(k.created_at),
                    expires_at: clock::rfc3339(k.expires_at),
                })
                .collect(),
            id: row.id,
            name: row.name,
            role: row.role,
            tenant_id: row.tenant_id,
            shop_id: row.shop_id,
            allowed_ips: row.allowed_ips.map(|a| a.to_strings()),
            created_at: clock::rfc3339(row.created_at),
            disabled_at: row.disabled_at.map(clock::rfc3339),
        }
    }
}

/// A refused API key: the error for the client and, when the key belonged to a
/// principal, which one — for the audit log only, never for the client.
#[derive(Debug)]
pub struct Refusal {
    /// The answer.
    pub error: Error,
    principal: Option<Box<(PrincipalId, Option<TenantId>)>>,
}

impl Refusal {
    fn invalid(principal: Option<Box<(PrincipalId, Option<TenantId>)>>) -> Self {
        Self {
            error: Error::new(
                ErrorKind::Unauthenticated,
                "invalid_api_key",
                "the API key is not valid or has been disabled",
            ),
            principal,
        }
    }

    /// The principal the refused key belonged to, if any.
    pub fn principal(&self) -> Option<&PrincipalId> {
        self.principal.as_ref().map(|p| &p.0)
    }

    /// True if the refusal is a failed authentication (it counts towards a
    /// lockout); false for a storage failure.
    pub fn is_failed_authentication(&self) -> bool {
        matches!(
            self.error.kind(),
            ErrorKind::Unauthenticated | ErrorKind::Forbidden
        )
    }
}

/// 401 `api_key_expired`, saying how to get a new key.
fn expired(id: &PrincipalId, at: i64) -> Error {
    Error::new(
        ErrorKind::Unauthenticated,
        "api_key_expired",
        format!(
            "this API key expired at {}; rotate it: `anshin principal rotate {id}` on the server, \
             or `POST /v1/principals/{id}/rotate` with another operator key",
            clock::rfc3339(at)
        ),
    )
}

/// 403 `ip_not_allowed`.
fn ip_not_allowed() -> Error {
    Error::new(
        ErrorKind::Forbidden,
        "ip_not_allowed",
        "this API key may only be used from the addresses on its principal's allow-list; \
         ask an operator to add this address (PUT /v1/principals/{id}/allowed-ips)",
    )
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
        let requested_tenant = TenantId::requested(input.tenant_id.as_deref())?;
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
        let allowed_ips = input.allowed_ips.as_deref().map(AllowList::parse).transpose()?;
        let policy = self.key_policy(tenant.as_ref()).await?;
        let (key, hash) = token::new_api_key()?;
        let now = clock::now_ms();
        let row = PrincipalRow {
            id: PrincipalId::generate()?,
            name,
            role: input.role,
            tenant_id: tenant,
            shop_id: shop.map(|s| s.id),
            allowed_ips,
            created_at: now,
            disabled_at: None,
        };
        let key_row = KeyRow {
            key_hash: hash,
            principal_id: row.id.clone(),
            created_at: now,
            expires_at: now + policy.lifetime_ms(),
            revoked_at: None,
        };
        if let Some(tenant) = &row.tenant_id {
            event.tenant(tenant);
        }
        event.resource(&row.id);
        match actor {
            Some(actor) => self.record_now(actor, event).await?,
            None => self.record(None, None, event, None).await?,
        }
        self.store.insert_principal(row.clone(), key_row.clone()).await?;
        Ok((Principal::new(row, &[key_row], now), key))
    }

    /// Principals the actor can see, optionally of one tenant.
    pub async fn principals(&self, actor: &Actor, query: PrincipalQuery) -> Result<Vec<Principal>> {
        actor.require(Action::ReadPrincipals)?;
        let requested = TenantId::requested(query.tenant_id.as_deref())?;
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
        let rows = self.store.principals(tenant.as_ref()).await?;
        let keys = self.store.principal_keys(tenant.as_ref(), None).await?;
        let now = clock::now_ms();
        Ok(rows
            .into_iter()
            .map(|row| Principal::new(row, &keys, now))
            .collect())
    }

    /// One principal as listings show it.
    pub(crate) async fn principal_view(&self, id: &PrincipalId) -> Result<Principal> {
        let row = self
            .store
            .principal(id)
            .await?
            .ok_or_else(|| Error::not_found("principal"))?;
        let keys = self.store.principal_keys(None, Some(id)).await?;
        Ok(Principal::new(row, &keys, clock::now_ms()))
    }

    /// Disables a principal: its keys stop working.
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
            self.principal_view(&id).await
        })
        .await
    }

    /// The actor an API key belongs to, for a caller without a client address.
    pub async fn authenticate(&self, key: &str) -> Result<Actor> {
        self.authenticate_from(key, None).await.map_err(|r| r.error)
    }

    /// The actor an API key belongs to, for a request from `origin`: the key
    /// must exist, be neither revoked nor expired, and its principal be enabled
    /// and allow `origin` (a principal with an allow-list refuses an unknown
    /// origin). Answered from the cache when it can be, without the database.
    pub async fn authenticate_from(&self, key: &str, origin: Option<IpAddr>) -> Result<Actor, Refusal> {
        if !key.starts_with(token::API_KEY_PREFIX) || key.len() > 128 {
            return Err(Refusal::invalid(None));
        }
        let hash = token::api_key_hash(key);
        let now = clock::now_ms();
        let generation = self.auth.generation();
        if let Some(credential) = self.auth.get(&hash) {
            let actor = credential.admit(now, origin)?;
            tracing::trace!(principal = %actor.principal_id, role = actor.role.as_str(), cached = true, "authenticated");
            return Ok(actor);
        }
        let found = self.store.credential(&hash).await.map_err(|err| Refusal {
            error: err.into(),
            principal: None,
        })?;
        let (row, key_row) = found.ok_or_else(|| Refusal::invalid(None))?;
        if row.disabled_at.is_some() || key_row.revoked_at.is_some() {
            return Err(Refusal::invalid(Some(Box::new((row.id, row.tenant_id)))));
        }
        let credential = Credential {
            actor: Actor {
                principal_id: row.id,
                role: row.role,
                tenant_id: row.tenant_id,
                shop_id: row.shop_id,
                origin: None,
                purpose: None,
            },
            expires_at: key_row.expires_at,
            allowed: row.allowed_ips.map(Arc::new),
        };
        let admitted = credential.admit(now, origin);
        if now < credential.expires_at {
            self.auth.put(hash, credential, generation);
        }
        let actor = admitted?;
        tracing::trace!(principal = %actor.principal_id, role = actor.role.as_str(), cached = false, "authenticated");
        Ok(actor)
    }

    /// Records a refused API key in the audit log — with the principal it
    /// belonged to, when there was one — and counts it towards a lockout of its
    /// source. The answer is an error either way, so a log failure is only
    /// reported.
    pub async fn refused(&self, origin: Option<IpAddr>, refusal: &Refusal) {
        let mut event = Event::new(EventKind::AuthFailure);
        if let Some(who) = &refusal.principal {
            let (principal, tenant) = &**who;
            event.resource(principal);
            if let Some(tenant) = tenant {
                event.tenant(tenant);
            }
        }
        if let Err(log_err) = self.record(None, origin, &event, Some(&refusal.error)).await {
            tracing::warn!(error = ?log_err, "could not record a refused API key");
        }
        if let Some(ip) = origin
            && refusal.is_failed_authentication()
        {
            self.count_auth_failure(ip).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(expires_at: i64, allowed: Option<&str>) -> Credential {
        Credential {
            actor: Actor {
                principal_id: PrincipalId::generate().expect("rng"),
                role: Role::Shop,
                tenant_id: None,
                shop_id: None,
                origin: None,
                purpose: None,
            },
            expires_at,
            allowed: allowed.map(|a| Arc::new(AllowList::parse(&[a.to_owned()]).expect("list"))),
        }
    }

    fn code(result: Result<Actor, Refusal>) -> &'static str {
        result.err().map_or("ok", |r| r.error.code())
    }

    #[test]
    fn expiry_is_checked_on_every_use() {
        let c = credential(1_000, None);
        assert_eq!(code(c.admit(999, None)), "ok");
        assert_eq!(code(c.admit(1_000, None)), "api_key_expired");
        let refusal = c.admit(5_000, None).expect_err("expired");
        let id = c.actor.principal_id.to_string();
        let message = refusal.error.message();
        assert!(
            message.contains(&format!("anshin principal rotate {id}"))
                && message.contains(&format!("POST /v1/principals/{id}/rotate")),
            "{message}"
        );
        assert_eq!(refusal.principal(), Some(&c.actor.principal_id));
        assert!(refusal.is_failed_authentication());
    }

    #[test]
    fn allow_lists_refuse_other_and_unknown_origins_first() {
        let c = credential(1_000, Some("192.0.2.0/24"));
        assert_eq!(code(c.admit(0, Some("192.0.2.9".parse().expect("ip")))), "ok");
        assert_eq!(
            code(c.admit(0, Some("198.51.100.1".parse().expect("ip")))),
            "ip_not_allowed"
        );
        assert_eq!(code(c.admit(0, None)), "ip_not_allowed", "fails closed");
        assert_eq!(
            code(c.admit(2_000, Some("198.51.100.1".parse().expect("ip")))),
            "ip_not_allowed",
            "an outside address does not learn that the key expired"
        );
        assert_eq!(
            credential(1_000, None).admit(0, None).map(|a| a.role).ok(),
            Some(Role::Shop)
        );
    }
}
