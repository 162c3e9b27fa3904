//! SQLite storage of keys, allow-lists, tenant settings and failure counters.
//! Each write is one job of the writer thread, so its statements are atomic and
//! no two writes interleave.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, insert_key};
use crate::access::cidr::AllowList;
use crate::db::StoreError;
use crate::db::credentials::{
    AuthFailure, FailurePolicy, KeyRow, TenantSettingsRow, count_u32, hash_array, u32_setting,
};
use crate::ids::{PrincipalId, TenantId};

type RawKey = (Vec<u8>, String, i64, i64, Option<i64>);

impl SqliteStore {
    pub(in crate::db) async fn principal_keys(
        &self,
        tenant: Option<&TenantId>,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<KeyRow>, StoreError> {
        let rows: Vec<RawKey> = self.read(|c| {
            c.prepare_cached(
                "SELECT k.key_hash, k.principal_id, k.created_at, k.expires_at, k.revoked_at
                 FROM principal_keys k JOIN principals p ON p.id = k.principal_id
                 WHERE (?1 IS NULL OR p.tenant_id = ?1) AND (?2 IS NULL OR k.principal_id = ?2)
                   AND k.revoked_at IS NULL
                 ORDER BY k.created_at, k.key_hash",
            )?
            .query_map(
                params![tenant.map(TenantId::as_str), principal.map(PrincipalId::as_str)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?
            .collect()
        })?;
        rows.into_iter()
            .map(|(hash, principal, created_at, expires_at, revoked_at)| {
                Ok(KeyRow {
                    key_hash: hash_array(hash)?,
                    principal_id: PrincipalId::from_db(principal),
                    created_at,
                    expires_at,
                    revoked_at,
                })
            })
            .collect()
    }

    pub(in crate::db) async fn rotate_key(
        &self,
        key: KeyRow,
        previous_until: i64,
    ) -> Result<Option<Option<i64>>, StoreError> {
        self.write(move |c| {
            let id = key.principal_id.as_str();
            let active = c
                .prepare_cached("SELECT 1 FROM principals WHERE id = ?1 AND disabled_at IS NULL")?
                .query_row([id], |_| Ok(()))
                .optional()?
                .is_some();
            if !active {
                return Ok(None);
            }
            let previous: Option<i64> = c
                .prepare_cached(
                    "SELECT max(min(expires_at, ?2)) FROM principal_keys
                     WHERE principal_id = ?1 AND revoked_at IS NULL AND expires_at > ?3",
                )?
                .query_row(params![id, previous_until, key.created_at], |r| r.get(0))?;
            c.prepare_cached(
                "UPDATE principal_keys SET expires_at = ?2
                 WHERE principal_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
            )?
            .execute(params![id, previous_until])?;
            insert_key(c, &key)?;
            Ok(Some(previous))
        })
        .await
    }

    pub(in crate::db) async fn set_allowed_ips(
        &self,
        principal: &PrincipalId,
        allowed: Option<AllowList>,
    ) -> Result<bool, StoreError> {
        let id = principal.clone();
        self.write(move |c| {
            c.prepare_cached("UPDATE principals SET allowed_ips = ?2 WHERE id = ?1")?
                .execute(params![id.as_str(), allowed.as_ref().map(AllowList::to_db)])
                .map(|n| n == 1)
        })
        .await
    }

    pub(in crate::db) async fn tenant_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<TenantSettingsRow, StoreError> {
        let row: Option<[Option<i64>; 5]> = self.read(|c| {
            c.prepare_cached(
                "SELECT key_lifetime_days, key_overlap_hours, retention_window_days, legal_retention_days,
                        export_daily_rows
                 FROM tenant_settings WHERE tenant_id = ?1",
            )?
            .query_row([tenant.as_str()], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
            })
            .optional()
        })?;
        let [lifetime, overlap, window, legal, export] = row.unwrap_or_default();
        Ok(TenantSettingsRow {
            key_lifetime_days: u32_setting(lifetime)?,
            key_overlap_hours: u32_setting(overlap)?,
            retention_window_days: u32_setting(window)?,
            legal_retention_days: u32_setting(legal)?,
            export_daily_rows: u32_setting(export)?,
        })
    }

    pub(in crate::db) async fn put_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettingsRow,
        lifetime_ms: i64,
        floor: i64,
    ) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO tenant_settings (tenant_id, key_lifetime_days, key_overlap_hours, retention_window_days,
                                              legal_retention_days, export_daily_rows)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant_id) DO UPDATE
                 SET key_lifetime_days = excluded.key_lifetime_days, key_overlap_hours = excluded.key_overlap_hours,
                     retention_window_days = excluded.retention_window_days,
                     legal_retention_days = excluded.legal_retention_days, export_daily_rows = excluded.export_daily_rows",
            )?
            .execute(params![
                tenant.as_str(),
                settings.key_lifetime_days,
                settings.key_overlap_hours,
                settings.retention_window_days,
                settings.legal_retention_days,
                settings.export_daily_rows
            ])?;
            c.prepare_cached(
                "UPDATE principal_keys SET expires_at = max(created_at + ?2, ?3)
                 WHERE revoked_at IS NULL AND expires_at > max(created_at + ?2, ?3)
                   AND principal_id IN (SELECT id FROM principals WHERE tenant_id = ?1)",
            )?
            .execute(params![tenant.as_str(), lifetime_ms, floor])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn record_auth_failure(
        &self,
        source: &str,
        policy: FailurePolicy,
    ) -> Result<AuthFailure, StoreError> {
        let source = source.to_owned();
        self.write(move |c| {
            let locked: Option<i64> = c
                .prepare_cached("SELECT locked_until FROM auth_lockouts WHERE source = ?1 AND locked_until > ?2")?
                .query_row(params![source, policy.now], |r| r.get(0))
                .optional()?;
            if locked.is_some() {
                return Ok(AuthFailure {
                    failures: 0,
                    locked_until: locked,
                    started: false,
                });
            }
            c.prepare_cached("DELETE FROM auth_failures WHERE source = ?1 AND at <= ?2")?
                .execute(params![source, policy.window_start])?;
            c.prepare_cached("INSERT INTO auth_failures (source, at) VALUES (?1, ?2)")?
                .execute(params![source, policy.now])?;
            let failures: i64 = c
                .prepare_cached("SELECT count(*) FROM auth_failures WHERE source = ?1")?
                .query_row([&source], |r| r.get(0))?;
            let failures = count_u32(failures);
            if failures < policy.threshold {
                return Ok(AuthFailure {
                    failures,
                    locked_until: None,
                    started: false,
                });
            }
            c.prepare_cached(
                "INSERT INTO auth_lockouts (source, locked_at, locked_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET locked_at = excluded.locked_at, locked_until = excluded.locked_until",
            )?
            .execute(params![source, policy.now, policy.lock_until])?;
            // The next lockout needs a fresh run of failures.
            c.prepare_cached("DELETE FROM auth_failures WHERE source = ?1")?
                .execute([&source])?;
            Ok(AuthFailure {
                failures,
                locked_until: Some(policy.lock_until),
                started: true,
            })
        })
        .await
    }

    pub(in crate::db) async fn auth_lockouts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT source, locked_until FROM auth_lockouts WHERE locked_until > ?1")?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    pub(in crate::db) async fn prune_auth_failures(
        &self,
        window_start: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM auth_failures WHERE at <= ?1")?
                .execute([window_start])?;
            c.prepare_cached("DELETE FROM auth_lockouts WHERE locked_until <= ?1")?
                .execute([now])?;
            Ok(())
        })
        .await
    }
}
