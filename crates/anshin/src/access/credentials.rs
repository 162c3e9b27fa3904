//! The credential lifecycle: key lifetimes per tenant, rotation with an overlap,
//! and changes to a principal's IP allow-list (PCI DSS v4.0 8.3.9, 8.6.3).
//!
//! Every key expires. A new key lives for its tenant's key lifetime (default
//! [`DEFAULT_KEY_LIFETIME_DAYS`]; global principals always use the defaults).
//! Rotating issues a new key and shortens the principal's other keys to the end
//! of an overlap (default [`DEFAULT_OVERLAP_HOURS`]), so a shop can roll its new
//! key out while the old one still works. A principal may rotate itself — that
//! is how shops rotate on their own schedule — but only with its newest key: a
//! key that was already replaced cannot mint another, so a leaked old key dies
//! at the end of its overlap instead of renewing itself.
//!
//! Shortening a tenant's lifetime applies to its existing keys at once (keys
//! older than the new lifetime expire, though not before one overlap from now,
//! so their holders can rotate); a longer lifetime applies to keys issued
//! afterwards. That is the answer Rakuten gave its shops in 2005: credentials
//! rotated on a shorter period.

use anshin_crypto::secret::SecretString;
use anshin_crypto::token;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::access::cidr::AllowList;
use crate::access::principals::Principal;
use crate::access::retention::RetentionPolicy;
use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::clock;
use crate::db::PrincipalRow;
use crate::db::credentials::{KeyRow, TenantSettingsRow};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{PrincipalId, TenantId, parse_or_404};

/// Lifetime of API keys unless the tenant sets another.
pub const DEFAULT_KEY_LIFETIME_DAYS: u32 = 90;
/// Longest key lifetime a tenant may set.
pub const MAX_KEY_LIFETIME_DAYS: u32 = 365;
/// How long a replaced key keeps working unless the tenant or the rotation says otherwise.
pub const DEFAULT_OVERLAP_HOURS: u32 = 24;
/// Longest overlap.
pub const MAX_OVERLAP_HOURS: u32 = 168;

const DAY_MS: i64 = 24 * HOUR_MS;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// The key policy in force for a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Lifetime of a new key, in days.
    pub lifetime_days: u32,
    /// Overlap of a rotation, in hours.
    pub overlap_hours: u32,
}

impl KeyPolicy {
    fn of(row: &TenantSettingsRow) -> Self {
        Self {
            lifetime_days: row.key_lifetime_days.unwrap_or(DEFAULT_KEY_LIFETIME_DAYS),
            overlap_hours: row.key_overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS),
        }
    }

    /// Lifetime in milliseconds.
    pub fn lifetime_ms(&self) -> i64 {
        i64::from(self.lifetime_days) * DAY_MS
    }
}

/// Reads a field that may be absent (leave as is), `null` (back to the
/// default) or a value.
fn patch<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A tenant's settings, as in force (defaults filled in).
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSettings {
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// Lifetime of new API keys, in days (default 90).
    pub key_lifetime_days: u32,
    /// How long a replaced key keeps working after a rotation, in hours (default 24).
    pub key_overlap_hours: u32,
    /// Days after completion the selling shop still reads an order's shipping data (default 14).
    pub retention_window_days: u32,
    /// Further days shipping data is kept, unreadable by shops, before it is shredded (default 120).
    pub legal_retention_days: u32,
    /// Rows one shop key may export in 24 hours without an operator's approval (default 500).
    pub export_daily_rows: u32,
}

/// A change to a tenant's settings: a field left out stays as it is, `null`
/// sets it back to the default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Lifetime of new API keys, 1 to 365 days. Shortening it also shortens
    /// existing keys (none expires sooner than one overlap from now).
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<i64>, example = 30)]
    pub key_lifetime_days: Option<Option<i64>>,
    /// Overlap of rotations, 0 to 168 hours.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<i64>, example = 24)]
    pub key_overlap_hours: Option<Option<i64>>,
    /// Retention window after completion, 1 to 90 days.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<i64>, example = 14)]
    pub retention_window_days: Option<Option<i64>>,
    /// Legal retention after the window, 0 to 3650 days.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<i64>, example = 120)]
    pub legal_retention_days: Option<Option<i64>>,
    /// Daily export rows per shop key without approval, 0 to 1,000,000.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<i64>, example = 500)]
    pub export_daily_rows: Option<Option<i64>>,
}

/// What a rotation asks for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the principal's current keys keep working, 0 to 168 hours
    /// (default: the tenant's overlap, 24 hours unless set).
    #[serde(default)]
    #[schema(example = 24)]
    pub overlap_hours: Option<i64>,
}

/// A new key from a rotation, shown this once.
#[derive(ToSchema)]
pub struct RotatedKey {
    /// Principal id.
    #[schema(value_type = String)]
    pub id: PrincipalId,
    /// The new API key. It is not stored and cannot be shown again.
    #[schema(value_type = String)]
    pub api_key: SecretString,
    /// When the new key expires (RFC 3339).
    pub expires_at: String,
    /// When the keys it replaces stop working (RFC 3339); absent when the
    /// principal had no working key.
    pub previous_key_expires_at: Option<String>,
}

impl Serialize for RotatedKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RotatedKey", 4)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("api_key", self.api_key.expose())?;
        s.serialize_field("expires_at", &self.expires_at)?;
        s.serialize_field("previous_key_expires_at", &self.previous_key_expires_at)?;
        s.end()
    }
}

/// A new allow-list for a principal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowedIpsChange {
    /// CIDR blocks (1 to 32) such as `192.0.2.0/24`, or `null` to allow any address.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["192.0.2.0/24"]))]
    pub allowed_ips: Option<Option<Vec<String>>>,
}

fn setting(value: Option<i64>, max: u32, min: u32, code: &'static str, what: &str) -> Result<Option<u32>> {
    value
        .map(|v| {
            u32::try_from(v)
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| Error::invalid(code, format!("{what} must be {min} to {max}")))
        })
        .transpose()
}

/// The overlap a rotation asked for, checked.
fn overlap_hours(value: i64) -> Result<u32> {
    setting(
        Some(value),
        MAX_OVERLAP_HOURS,
        0,
        "invalid_overlap",
        "overlap_hours",
    )
    .map(|v| v.unwrap_or(DEFAULT_OVERLAP_HOURS))
}

/// The settings in force, defaults filled in.
fn settings_view(tenant: TenantId, row: &TenantSettingsRow) -> TenantSettings {
    let keys = KeyPolicy::of(row);
    let retention = RetentionPolicy::of(row);
    TenantSettings {
        tenant_id: tenant,
        key_lifetime_days: keys.lifetime_days,
        key_overlap_hours: keys.overlap_hours,
        retention_window_days: retention.window_days,
        legal_retention_days: retention.legal_retention_days,
        export_daily_rows: retention.export_daily_rows,
    }
}

impl App {
    /// The key policy for principals of `tenant` (the defaults for global ones).
    pub async fn key_policy(&self, tenant: Option<&TenantId>) -> Result<KeyPolicy> {
        Ok(match tenant {
            Some(tenant) => KeyPolicy::of(&self.store.tenant_settings(tenant).await?),
            None => KeyPolicy::of(&TenantSettingsRow::default()),
        })
    }

    /// A tenant's settings (operators and auditors of the tenant).
    pub async fn tenant_settings(&self, actor: &Actor, tenant: &str) -> Result<TenantSettings> {
        actor.require(Action::ReadTenants)?;
        let tenant = self.visible_existing_tenant(actor, tenant).await?;
        let row = self.store.tenant_settings(&tenant).await?;
        Ok(settings_view(tenant, &row))
    }

    /// Changes a tenant's settings (operators of the tenant). A policy change is
    /// recorded in the audit log before it is made.
    pub async fn change_tenant_settings(
        &self,
        actor: &Actor,
        tenant: &str,
        change: SettingsChange,
    ) -> Result<TenantSettings> {
        self.audited(actor, EventKind::TenantSettings, async |event| {
            actor.require(Action::ManageTenantSettings)?;
            let tenant = self.visible_existing_tenant(actor, tenant).await?;
            event.tenant(&tenant).resource(&tenant);
            let lifetime = change
                .key_lifetime_days
                .map(|v| {
                    setting(
                        v,
                        MAX_KEY_LIFETIME_DAYS,
                        1,
                        "invalid_key_lifetime",
                        "key_lifetime_days",
                    )
                })
                .transpose()?;
            let overlap = change
                .key_overlap_hours
                .map(|v| setting(v, MAX_OVERLAP_HOURS, 0, "invalid_overlap", "key_overlap_hours"))
                .transpose()?;
            let window = change
                .retention_window_days
                .map(|v| setting(v, 90, 1, "invalid_retention_window", "retention_window_days"))
                .transpose()?;
            let legal = change
                .legal_retention_days
                .map(|v| setting(v, 3650, 0, "invalid_legal_retention", "legal_retention_days"))
                .transpose()?;
            let export = change
                .export_daily_rows
                .map(|v| setting(v, 1_000_000, 0, "invalid_export_rows", "export_daily_rows"))
                .transpose()?;
            let mut row = self.store.tenant_settings(&tenant).await?;
            if let Some(lifetime) = lifetime {
                row.key_lifetime_days = lifetime;
            }
            if let Some(overlap) = overlap {
                row.key_overlap_hours = overlap;
            }
            if let Some(window) = window {
                row.retention_window_days = window;
            }
            if let Some(legal) = legal {
                row.legal_retention_days = legal;
            }
            if let Some(export) = export {
                row.export_daily_rows = export;
            }
            let policy = KeyPolicy::of(&row);
            self.record_now(actor, event).await?;
            let floor = clock::now_ms() + i64::from(policy.overlap_hours) * HOUR_MS;
            self.store
                .put_tenant_settings(&tenant, row.clone(), policy.lifetime_ms(), floor)
                .await?;
            self.auth.clear();
            Ok(settings_view(tenant, &row))
        })
        .await
    }

    async fn visible_existing_tenant(&self, actor: &Actor, tenant: &str) -> Result<TenantId> {
        let tenant = parse_or_404(TenantId::parse, tenant, "tenant")?;
        if !actor.sees_tenant(&tenant) {
            return Err(Error::not_found("tenant"));
        }
        self.store
            .tenant(&tenant)
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?;
        Ok(tenant)
    }

    /// A principal another principal manages: operators with the right to
    /// manage principals, in their scope, and only of roles they could create
    /// (a tenant operator must not obtain a processor key by rotating one).
    async fn managed_principal(
        &self,
        actor: &Actor,
        id: &PrincipalId,
        verb: &'static str,
    ) -> Result<PrincipalRow> {
        actor.require(Action::ManagePrincipals)?;
        let row = self.store.principal(id).await?.filter(|p| {
            p.tenant_id
                .as_ref()
                .map_or(actor.tenant_id.is_none(), |t| actor.sees_tenant(t))
        });
        let row = row.ok_or_else(|| Error::not_found("principal"))?;
        if !actor.role.may_create(row.role, actor.tenant_id.is_none()) {
            return Err(Error::forbidden(verb));
        }
        Ok(row)
    }

    /// Issues a new key for a principal; its other keys keep working for the
    /// overlap. `caller_key` is the hash of the key the request came with (none
    /// from the command line): a principal rotating itself must use its newest key.
    pub async fn rotate_principal(
        &self,
        actor: &Actor,
        id: &str,
        request: RotateRequest,
        caller_key: Option<[u8; 32]>,
    ) -> Result<RotatedKey> {
        self.audited(actor, EventKind::PrincipalRotate, async |event| {
            let id = parse_or_404(PrincipalId::parse, id, "principal")?;
            let now = clock::now_ms();
            let row = if id == actor.principal_id {
                let row = self
                    .store
                    .principal(&id)
                    .await?
                    .ok_or_else(|| Error::not_found("principal"))?;
                if let Some(caller) = caller_key {
                    let keys = self.store.principal_keys(None, Some(&id)).await?;
                    let newest = keys
                        .iter()
                        .filter(|k| k.is_live(now))
                        .max_by_key(|k| k.created_at);
                    if newest.is_some_and(|k| k.key_hash != caller) {
                        return Err(Error::new(
                            ErrorKind::Forbidden,
                            "key_superseded",
                            "this API key was already replaced by a newer one; rotate with the newest key",
                        ));
                    }
                }
                row
            } else {
                self.managed_principal(
                    actor,
                    &id,
                    "rotate keys of principals with this role (processor keys need a global operator)",
                )
                .await?
            };
            if let Some(tenant) = &row.tenant_id {
                event.tenant(tenant);
            }
            event.resource(&id);
            let policy = self.key_policy(row.tenant_id.as_ref()).await?;
            let overlap = match request.overlap_hours {
                Some(hours) => overlap_hours(hours)?,
                None => policy.overlap_hours,
            };
            if row.disabled_at.is_some() {
                return Err(principal_disabled());
            }
            let (api_key, hash) = token::new_api_key()?;
            let key = KeyRow {
                key_hash: hash,
                principal_id: id.clone(),
                created_at: now,
                expires_at: now + policy.lifetime_ms(),
                revoked_at: None,
            };
            let expires_at = key.expires_at;
            self.record_now(actor, event).await?;
            let previous = self
                .store
                .rotate_key(key, now + i64::from(overlap) * HOUR_MS)
                .await?
                .ok_or_else(principal_disabled)?;
            self.auth.clear();
            Ok(RotatedKey {
                id,
                api_key,
                expires_at: clock::rfc3339(expires_at),
                previous_key_expires_at: previous.map(clock::rfc3339),
            })
        })
        .await
    }

    /// Replaces a principal's IP allow-list (`None`: any address). Takes effect
    /// at once on this node and within [`super::principals::AUTH_CACHE_TTL`] on others.
    pub async fn set_allowed_ips(
        &self,
        actor: &Actor,
        id: &str,
        change: AllowedIpsChange,
    ) -> Result<Principal> {
        self.audited(actor, EventKind::PrincipalUpdate, async |event| {
            let id = parse_or_404(PrincipalId::parse, id, "principal")?;
            let row = self
                .managed_principal(
                    actor,
                    &id,
                    "change principals with this role (processor keys need a global operator)",
                )
                .await?;
            if let Some(tenant) = &row.tenant_id {
                event.tenant(tenant);
            }
            event.resource(&id);
            let allowed = match change.allowed_ips {
                None => {
                    return Err(Error::invalid(
                        "invalid_allowed_ips",
                        "give allowed_ips: a list of CIDR blocks, or null to allow any address",
                    ));
                }
                Some(None) => None,
                Some(Some(list)) => Some(AllowList::parse(&list)?),
            };
            self.record_now(actor, event).await?;
            if !self.store.set_allowed_ips(&id, allowed).await? {
                return Err(Error::not_found("principal"));
            }
            self.auth.clear();
            self.principal_view(&id).await
        })
        .await
    }
}

fn principal_disabled() -> Error {
    Error::new(
        ErrorKind::Conflict,
        "principal_disabled",
        "this principal is disabled; create a new principal instead",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_without_echoing() {
        assert_eq!(
            setting(Some(30), MAX_KEY_LIFETIME_DAYS, 1, "c", "x").expect("ok"),
            Some(30)
        );
        assert_eq!(
            setting(None, MAX_KEY_LIFETIME_DAYS, 1, "c", "x").expect("ok"),
            None
        );
        for bad in [0, -1, 366, i64::MAX, 4_111_111_111_111_111] {
            let err = setting(
                Some(bad),
                MAX_KEY_LIFETIME_DAYS,
                1,
                "invalid_key_lifetime",
                "key_lifetime_days",
            )
            .expect_err("out of range");
            assert_eq!(err.code(), "invalid_key_lifetime");
            assert_eq!(
                err.message(),
                "key_lifetime_days must be 1 to 365",
                "never repeats the value"
            );
        }
        assert_eq!(overlap_hours(0).expect("zero"), 0);
        assert_eq!(overlap_hours(168).expect("week"), 168);
        assert_eq!(overlap_hours(169).expect_err("long").code(), "invalid_overlap");
        assert_eq!(overlap_hours(-1).expect_err("negative").code(), "invalid_overlap");
    }

    #[test]
    fn policy_defaults_fill_in() {
        let policy = KeyPolicy::of(&TenantSettingsRow::default());
        assert_eq!((policy.lifetime_days, policy.overlap_hours), (90, 24));
        assert_eq!(policy.lifetime_ms(), 90 * 86_400_000);
        let set = KeyPolicy::of(&TenantSettingsRow {
            key_lifetime_days: Some(7),
            ..TenantSettingsRow::default()
        });
        assert_eq!((set.lifetime_days, set.overlap_hours), (7, 24));
    }

    #[test]
    fn changes_tell_absent_from_null() {
        let change: SettingsChange = serde_json::from_str(r#"{"key_lifetime_days": null}"#).expect("json");
        assert_eq!(change.key_lifetime_days, Some(None));
        assert_eq!(change.key_overlap_hours, None);
        let change: SettingsChange = serde_json::from_str(r#"{"key_overlap_hours": 2}"#).expect("json");
        assert_eq!(change.key_overlap_hours, Some(Some(2)));
        let ips: AllowedIpsChange = serde_json::from_str("{}").expect("json");
        assert!(ips.allowed_ips.is_none());
        let ips: AllowedIpsChange = serde_json::from_str(r#"{"allowed_ips": null}"#).expect("json");
        assert_eq!(ips.allowed_ips, Some(None));
    }
}
