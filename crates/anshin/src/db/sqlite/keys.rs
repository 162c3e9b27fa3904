//! SQLite storage of the key state.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::keys::{
    KeyOperation, KeyRequestRow, KeyVersionRow, RecordKeyRow, RetireOutcome, RootChange, RootChangeRefused,
};
use crate::db::{KeyPurpose, TenantKeyRow};
use crate::ids::{KeyRequestId, PrincipalId, TenantId};

const REQUEST_COLUMNS: &str =
    "id, tenant_id, operation, below, reason, requested_by, requested_at, expires_at,
                               decided_by, decided_at, outcome, target, executed_at";

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn version(value: i64) -> rusqlite::Result<u32> {
    u32::try_from(value)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, e.into()))
}

type RawRequest = (KeyRequestRow, String, Option<i64>, Option<String>);

fn request_row(r: &Row<'_>) -> rusqlite::Result<RawRequest> {
    let operation: String = r.get(2)?;
    let below: Option<i64> = r.get(3)?;
    Ok((
        KeyRequestRow {
            id: KeyRequestId::from_db(r.get(0)?),
            tenant_id: r.get::<_, Option<String>>(1)?.map(TenantId::from_db),
            // Replaced by the caller once the columns are checked.
            operation: KeyOperation::Rotate,
            reason: r.get(4)?,
            requested_by: PrincipalId::from_db(r.get(5)?),
            requested_at: r.get(6)?,
            expires_at: r.get(7)?,
            decided_by: r.get::<_, Option<String>>(8)?.map(PrincipalId::from_db),
            decided_at: r.get(9)?,
            outcome: r.get(10)?,
            executed_at: r.get(12)?,
        },
        operation,
        below,
        r.get(11)?,
    ))
}

fn checked((mut row, operation, below, target): RawRequest) -> Result<KeyRequestRow, StoreError> {
    row.operation = KeyOperation::from_columns(&operation, below, target.as_deref())?;
    Ok(row)
}

impl SqliteStore {
    pub(in crate::db) async fn insert_kek_version(
        &self,
        tenant: &TenantId,
        version: u32,
        wrapped: Vec<u8>,
        created_at: i64,
    ) -> Result<bool, StoreError> {
        let tenant = tenant.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped, created_at)
                 VALUES (?1, 'kek', ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![tenant.as_str(), version, wrapped, created_at])
            .map(|n| n == 1)
        })
        .await
    }

    pub(in crate::db) async fn kek_versions(
        &self,
        tenant: Option<&TenantId>,
        count_records: bool,
    ) -> Result<Vec<KeyVersionRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT t.tenant_id, t.version, t.created_at, t.encryptions, coalesce(n.records, 0)
                 FROM tenant_keys t LEFT JOIN (
                     SELECT tenant_id, kek_version, count(*) AS records FROM record_keys
                     WHERE ?2 AND (?1 IS NULL OR tenant_id = ?1) GROUP BY tenant_id, kek_version
                 ) n ON n.tenant_id = t.tenant_id AND n.kek_version = t.version
                 WHERE t.purpose = 'kek' AND (?1 IS NULL OR t.tenant_id = ?1)
                 ORDER BY t.tenant_id, t.version",
            )?
            .query_map(params![tenant.map(TenantId::as_str), count_records], |r| {
                Ok(KeyVersionRow {
                    tenant_id: TenantId::from_db(r.get(0)?),
                    version: version(r.get(1)?)?,
                    created_at: r.get(2)?,
                    encryptions: count(r.get(3)?),
                    records: count(r.get(4)?),
                })
            })?
            .collect()
        })
    }

    pub(in crate::db) async fn stale_record_keys(
        &self,
        tenant: &TenantId,
        below: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RecordKeyRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, record_id, kind, kek_version, wrapped_dek FROM record_keys
                 WHERE id > ?3 AND tenant_id = ?1 AND kek_version < ?2
                 ORDER BY id LIMIT ?4",
            )?
            .query_map(params![tenant.as_str(), below, after.unwrap_or(0), limit], |r| {
                Ok(RecordKeyRow {
                    id: r.get(0)?,
                    record_id: r.get(1)?,
                    kind: r.get(2)?,
                    kek_version: version(r.get(3)?)?,
                    wrapped_dek: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    pub(in crate::db) async fn store_rewrapped(
        &self,
        rows: Vec<(RecordKeyRow, u32, Vec<u8>)>,
    ) -> Result<u64, StoreError> {
        self.write(move |c| {
            let mut update = c.prepare_cached(
                "UPDATE record_keys SET kek_version = ?3, wrapped_dek = ?4 WHERE id = ?1 AND kek_version = ?2",
            )?;
            let mut stored = 0;
            for (old, version, wrapped) in rows {
                stored += update.execute(params![old.id, old.kek_version, version, wrapped])? as u64;
            }
            Ok(stored)
        })
        .await
    }

    pub(in crate::db) async fn retire_kek_versions(
        &self,
        tenant: &TenantId,
        below: u32,
    ) -> Result<RetireOutcome, StoreError> {
        let tenant = tenant.clone();
        self.write(move |c| {
            let t = tenant.as_str();
            let kept: i64 = c
                .prepare_cached("SELECT count(*) FROM tenant_keys WHERE tenant_id = ?1 AND purpose = 'kek' AND version >= ?2")?
                .query_row(params![t, below], |r| r.get(0))?;
            if kept == 0 {
                return Ok(RetireOutcome::WouldRemoveCurrent);
            }
            let in_use: i64 = c
                .prepare_cached("SELECT count(*) FROM record_keys WHERE tenant_id = ?1 AND kek_version < ?2")?
                .query_row(params![t, below], |r| r.get(0))?;
            if in_use > 0 {
                return Ok(RetireOutcome::InUse(count(in_use)));
            }
            // secure_delete is on: the wrapped keys' bytes are overwritten.
            let destroyed = c
                .prepare_cached("DELETE FROM tenant_keys WHERE tenant_id = ?1 AND purpose = 'kek' AND version < ?2")?
                .execute(params![t, below])?;
            Ok(RetireOutcome::Destroyed(destroyed as u64))
        })
        .await
    }

    pub(in crate::db) async fn shred_tenant(&self, tenant: &TenantId, at: i64) -> Result<u64, StoreError> {
        let tenant = tenant.clone();
        self.write(move |c| {
            let t = tenant.as_str();
            // A node that still holds the tenant's keys in memory then finds
            // no card by its number, as the keys' absence tells every other node.
            c.prepare_cached(
                "UPDATE cards SET fingerprint = NULL WHERE tenant_id = ?1 AND fingerprint IS NOT NULL",
            )?
            .execute([t])?;
            // secure_delete is on: the keys' bytes are overwritten.
            let destroyed = c
                .prepare_cached("DELETE FROM record_keys WHERE tenant_id = ?1")?
                .execute([t])?;
            c.prepare_cached("DELETE FROM tenant_keys WHERE tenant_id = ?1")?
                .execute([t])?;
            c.prepare_cached(
                "UPDATE principals SET disabled_at = ?2 WHERE tenant_id = ?1 AND disabled_at IS NULL",
            )?
            .execute(params![t, at])?;
            Ok(destroyed as u64)
        })
        .await
    }

    pub(in crate::db) async fn add_encryptions(
        &self,
        counts: Vec<(TenantId, u32, u64)>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let mut add = c.prepare_cached(
                "UPDATE tenant_keys SET encryptions = encryptions + ?3
                 WHERE tenant_id = ?1 AND purpose = 'kek' AND version = ?2",
            )?;
            for (tenant, version, n) in counts {
                add.execute(params![
                    tenant.as_str(),
                    version,
                    i64::try_from(n).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn insert_key_request(&self, row: KeyRequestRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO key_requests (id, tenant_id, operation, below, target, reason, requested_by,
                                           requested_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                row.id.as_str(),
                row.tenant_id.as_ref().map(TenantId::as_str),
                row.operation.as_str(),
                row.operation.below(),
                row.operation.target(),
                row.reason,
                row.requested_by.as_str(),
                row.requested_at,
                row.expires_at
            ])
            .map(|_| ())
        })
        .await
    }

    pub(in crate::db) async fn key_request(
        &self,
        id: &KeyRequestId,
    ) -> Result<Option<KeyRequestRow>, StoreError> {
        let raw = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM key_requests WHERE id = ?1"
            ))?
            .query_row([id.as_str()], request_row)
            .optional()
        })?;
        raw.map(checked).transpose()
    }

    pub(in crate::db) async fn key_requests(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<KeyRequestRow>, StoreError> {
        let raw: Vec<_> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {REQUEST_COLUMNS} FROM key_requests WHERE ?1 IS NULL OR tenant_id = ?1
                 ORDER BY requested_at DESC, id DESC LIMIT ?2"
            ))?
            .query_map(params![tenant.map(TenantId::as_str), limit], request_row)?
            .collect()
        })?;
        raw.into_iter().map(checked).collect()
    }

    pub(in crate::db) async fn decide_key_request(
        &self,
        id: &KeyRequestId,
        by: &PrincipalId,
        at: i64,
        outcome: &'static str,
    ) -> Result<bool, StoreError> {
        let (id, by) = (id.clone(), by.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE key_requests SET decided_by = ?2, decided_at = ?3, outcome = ?4
                 WHERE id = ?1 AND decided_at IS NULL AND expires_at > ?3",
            )?
            .execute(params![id.as_str(), by.as_str(), at, outcome])
            .map(|n| n == 1)
        })
        .await
    }

    pub(in crate::db) async fn all_tenant_keys(&self) -> Result<Vec<(TenantId, TenantKeyRow)>, StoreError> {
        let rows: Vec<(String, String, u32, Vec<u8>, i64)> = self.read(|c| {
            c.prepare_cached(
                "SELECT tenant_id, purpose, version, wrapped, created_at FROM tenant_keys
                 ORDER BY tenant_id, purpose, version",
            )?
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(tenant, purpose, version, wrapped, created_at)| {
                Ok((
                    TenantId::from_db(tenant),
                    TenantKeyRow {
                        purpose: KeyPurpose::parse(&purpose)?,
                        version,
                        wrapped,
                        created_at,
                    },
                ))
            })
            .collect()
    }

    pub(in crate::db) async fn meta_put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |c| match value {
            Some(value) => c
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )
                .map(|_| ()),
            None => c.execute("DELETE FROM meta WHERE key = ?1", [key]).map(|_| ()),
        })
        .await
    }

    pub(in crate::db) async fn apply_root_change(
        &self,
        change: RootChange,
        staged: &'static str,
        at: i64,
    ) -> Result<Result<(), RootChangeRefused>, StoreError> {
        // A failing job is rolled back to its savepoint, so every check is
        // made before the first write: the writer runs one job at a time.
        self.write(move |c| {
            let open: Option<Option<i64>> = c
                .query_row(
                    "SELECT executed_at FROM key_requests WHERE id = ?1",
                    [change.request.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if !matches!(open, Some(None)) {
                return Ok(Err(RootChangeRefused::AlreadyExecuted));
            }
            let keys: i64 = c.query_row("SELECT count(*) FROM tenant_keys", [], |r| r.get(0))?;
            let mut unchanged = usize::try_from(keys).ok() == Some(change.tenant_keys.len());
            {
                let mut key = c.prepare_cached(
                    "SELECT wrapped FROM tenant_keys WHERE tenant_id = ?1 AND purpose = ?2 AND version = ?3",
                )?;
                for k in &change.tenant_keys {
                    let (tenant, purpose, version) = &k.key;
                    let held: Option<Vec<u8>> = key
                        .query_row(params![tenant.as_str(), purpose.as_str(), version], |r| r.get(0))
                        .optional()?;
                    unchanged &= held.as_ref() == Some(&k.old);
                }
                let mut meta = c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
                for m in &change.meta {
                    let held: Option<Vec<u8>> = meta.query_row([&m.key], |r| r.get(0)).optional()?;
                    unchanged &= held.as_ref() == Some(&m.old);
                }
            }
            if !unchanged {
                return Ok(Err(RootChangeRefused::StateChanged));
            }
            c.execute(
                "UPDATE key_requests SET executed_at = ?2 WHERE id = ?1",
                params![change.request.as_str(), at],
            )?;
            let mut key = c.prepare_cached(
                "UPDATE tenant_keys SET wrapped = ?4 WHERE tenant_id = ?1 AND purpose = ?2 AND version = ?3",
            )?;
            for k in &change.tenant_keys {
                let (tenant, purpose, version) = &k.key;
                key.execute(params![tenant.as_str(), purpose.as_str(), version, k.new])?;
            }
            let mut meta = c.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?;
            for m in &change.meta {
                meta.execute(params![m.key, m.new])?;
            }
            c.execute("DELETE FROM meta WHERE key = ?1", [staged])?;
            Ok(Ok(()))
        })
        .await
    }
}
