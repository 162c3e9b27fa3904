//! PostgreSQL storage of keys, allow-lists, tenant settings and failure
//! counters, shared by every node. A rotation locks the principal's row, so it
//! cannot interleave with a concurrent disable or rotation; a lockout is started
//! by a conditional upsert, so exactly one node records its start.

use super::{PgStore, insert_key, pg};
use crate::access::cidr::AllowList;
use crate::db::StoreError;
use crate::db::credentials::{
    AuthFailure, FailurePolicy, KeyRow, TenantSettingsRow, count_u32, hash_array, u32_setting,
};
use crate::ids::{PrincipalId, TenantId};

impl PgStore {
    pub(in crate::db) async fn principal_keys(
        &self,
        tenant: Option<&TenantId>,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<KeyRow>, StoreError> {
        self.query(
            "SELECT k.key_hash, k.principal_id, k.created_at, k.expires_at, k.revoked_at
             FROM principal_keys k JOIN principals p ON p.id = k.principal_id
             WHERE ($1::text IS NULL OR p.tenant_id = $1) AND ($2::text IS NULL OR k.principal_id = $2)
               AND k.revoked_at IS NULL
             ORDER BY k.created_at, k.key_hash",
            &[&tenant.map(TenantId::as_str), &principal.map(PrincipalId::as_str)],
        )
        .await?
        .into_iter()
        .map(|r| {
            Ok(KeyRow {
                key_hash: hash_array(r.get(0))?,
                principal_id: PrincipalId::from_db(r.get(1)),
                created_at: r.get(2),
                expires_at: r.get(3),
                revoked_at: r.get(4),
            })
        })
        .collect()
    }

    pub(in crate::db) async fn rotate_key(
        &self,
        key: KeyRow,
        previous_until: i64,
    ) -> Result<Option<Option<i64>>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let id = key.principal_id.as_str();
        let active = tx
            .query_opt(
                "SELECT 1 FROM principals WHERE id = $1 AND disabled_at IS NULL FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg)?
            .is_some();
        if !active {
            return Ok(None);
        }
        let previous: Option<i64> = tx
            .query_one(
                "SELECT max(least(expires_at, $2)) FROM principal_keys
                 WHERE principal_id = $1 AND revoked_at IS NULL AND expires_at > $3",
                &[&id, &previous_until, &key.created_at],
            )
            .await
            .map_err(pg)?
            .get(0);
        tx.execute(
            "UPDATE principal_keys SET expires_at = $2
             WHERE principal_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            &[&id, &previous_until],
        )
        .await
        .map_err(pg)?;
        insert_key(&tx, &key).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Some(previous))
    }

    pub(in crate::db) async fn set_allowed_ips(
        &self,
        principal: &PrincipalId,
        allowed: Option<AllowList>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE principals SET allowed_ips = $2 WHERE id = $1",
                &[&principal.as_str(), &allowed.as_ref().map(AllowList::to_db)],
            )
            .await?
            == 1)
    }

    pub(in crate::db) async fn tenant_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<TenantSettingsRow, StoreError> {
        let row = self
            .query_opt(
                "SELECT key_lifetime_days, key_overlap_hours, retention_window_days, legal_retention_days,
                        export_daily_rows
                 FROM tenant_settings WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )
            .await?;
        let column = |i: usize| {
            row.as_ref()
                .and_then(|r| r.get::<_, Option<i32>>(i))
                .map(i64::from)
        };
        Ok(TenantSettingsRow {
            key_lifetime_days: u32_setting(column(0))?,
            key_overlap_hours: u32_setting(column(1))?,
            retention_window_days: u32_setting(column(2))?,
            legal_retention_days: u32_setting(column(3))?,
            export_daily_rows: u32_setting(column(4))?,
        })
    }

    pub(in crate::db) async fn put_tenant_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettingsRow,
        lifetime_ms: i64,
        floor: i64,
    ) -> Result<(), StoreError> {
        let setting = |v: Option<u32>| {
            v.map(|v| i32::try_from(v).map_err(|_| StoreError::Corrupt("tenant setting out of range")))
                .transpose()
        };
        let (lifetime, overlap, window, legal, export) = (
            setting(settings.key_lifetime_days)?,
            setting(settings.key_overlap_hours)?,
            setting(settings.retention_window_days)?,
            setting(settings.legal_retention_days)?,
            setting(settings.export_daily_rows)?,
        );
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO tenant_settings (tenant_id, key_lifetime_days, key_overlap_hours, retention_window_days,
                                          legal_retention_days, export_daily_rows)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id) DO UPDATE
             SET key_lifetime_days = excluded.key_lifetime_days, key_overlap_hours = excluded.key_overlap_hours,
                 retention_window_days = excluded.retention_window_days,
                 legal_retention_days = excluded.legal_retention_days, export_daily_rows = excluded.export_daily_rows",
            &[&tenant.as_str(), &lifetime, &overlap, &window, &legal, &export],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "UPDATE principal_keys SET expires_at = greatest(created_at + $2, $3)
             WHERE revoked_at IS NULL AND expires_at > greatest(created_at + $2, $3)
               AND principal_id IN (SELECT id FROM principals WHERE tenant_id = $1)",
            &[&tenant.as_str(), &lifetime_ms, &floor],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    pub(in crate::db) async fn record_auth_failure(
        &self,
        source: &str,
        policy: FailurePolicy,
    ) -> Result<AuthFailure, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let locked: Option<i64> = tx
            .query_opt(
                "SELECT locked_until FROM auth_lockouts WHERE source = $1 AND locked_until > $2",
                &[&source, &policy.now],
            )
            .await
            .map_err(pg)?
            .map(|r| r.get(0));
        if locked.is_some() {
            return Ok(AuthFailure {
                failures: 0,
                locked_until: locked,
                started: false,
            });
        }
        tx.execute(
            "DELETE FROM auth_failures WHERE source = $1 AND at <= $2",
            &[&source, &policy.window_start],
        )
        .await
        .map_err(pg)?;
        // The CTE's insert is not visible to the count in the same statement.
        let failures: i64 = tx
            .query_one(
                "WITH ins AS (INSERT INTO auth_failures (source, at) VALUES ($1, $2))
                 SELECT count(*) + 1 FROM auth_failures WHERE source = $1",
                &[&source, &policy.now],
            )
            .await
            .map_err(pg)?
            .get(0);
        let failures = count_u32(failures);
        if failures < policy.threshold {
            tx.commit().await.map_err(pg)?;
            return Ok(AuthFailure {
                failures,
                locked_until: None,
                started: false,
            });
        }
        // Only a lockout that is not already running is (re)started: of two
        // nodes reaching the threshold at once, one sees the row.
        let started = tx
            .query_opt(
                "INSERT INTO auth_lockouts (source, locked_at, locked_until) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET locked_at = excluded.locked_at, locked_until = excluded.locked_until
                 WHERE auth_lockouts.locked_until <= excluded.locked_at
                 RETURNING locked_until",
                &[&source, &policy.now, &policy.lock_until],
            )
            .await
            .map_err(pg)?
            .is_some();
        // The next lockout needs a fresh run of failures.
        tx.execute("DELETE FROM auth_failures WHERE source = $1", &[&source])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(AuthFailure {
            failures,
            locked_until: Some(policy.lock_until),
            started,
        })
    }

    pub(in crate::db) async fn auth_lockouts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .query(
                "SELECT source, locked_until FROM auth_lockouts WHERE locked_until > $1",
                &[&now],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(in crate::db) async fn prune_auth_failures(
        &self,
        window_start: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute("DELETE FROM auth_failures WHERE at <= $1", &[&window_start])
            .await?;
        self.execute("DELETE FROM auth_lockouts WHERE locked_until <= $1", &[&now])
            .await?;
        Ok(())
    }
}
