//! PostgreSQL storage of the key state.

use tokio_postgres::Row;

use super::{PgStore, pg, version_i32};
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

fn version(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt("key version out of range"))
}

fn request_row(r: &Row) -> Result<KeyRequestRow, StoreError> {
    Ok(KeyRequestRow {
        id: KeyRequestId::from_db(r.get(0)),
        tenant_id: r.get::<_, Option<String>>(1).map(TenantId::from_db),
        operation: KeyOperation::from_columns(
            r.get(2),
            r.get::<_, Option<i32>>(3).map(i64::from),
            r.get::<_, Option<&str>>(11),
        )?,
        reason: r.get(4),
        requested_by: PrincipalId::from_db(r.get(5)),
        requested_at: r.get(6),
        expires_at: r.get(7),
        decided_by: r.get::<_, Option<String>>(8).map(PrincipalId::from_db),
        decided_at: r.get(9),
        outcome: r.get(10),
        executed_at: r.get(12),
    })
}

impl PgStore {
    pub(in crate::db) async fn insert_kek_version(
        &self,
        tenant: &TenantId,
        version: u32,
        wrapped: Vec<u8>,
        created_at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped, created_at)
                 VALUES ($1, 'kek', $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&tenant.as_str(), &version_i32(version)?, &wrapped, &created_at],
            )
            .await?
            == 1)
    }

    pub(in crate::db) async fn kek_versions(
        &self,
        tenant: Option<&TenantId>,
        count_records: bool,
    ) -> Result<Vec<KeyVersionRow>, StoreError> {
        let rows = self
            .query(
                "SELECT t.tenant_id, t.version, t.created_at, t.encryptions, coalesce(n.records, 0)
                 FROM tenant_keys t LEFT JOIN (
                     SELECT tenant_id, kek_version, count(*) AS records FROM record_keys
                     WHERE $2 AND ($1::text IS NULL OR tenant_id = $1) GROUP BY tenant_id, kek_version
                 ) n ON n.tenant_id = t.tenant_id AND n.kek_version = t.version
                 WHERE t.purpose = 'kek' AND ($1::text IS NULL OR t.tenant_id = $1)
                 ORDER BY t.tenant_id, t.version",
                &[&tenant.map(TenantId::as_str), &count_records],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyVersionRow {
                    tenant_id: TenantId::from_db(r.get(0)),
                    version: version(r.get(1))?,
                    created_at: r.get(2),
                    encryptions: count(r.get(3)),
                    records: count(r.get(4)),
                })
            })
            .collect()
    }

    pub(in crate::db) async fn stale_record_keys(
        &self,
        tenant: &TenantId,
        below: u32,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RecordKeyRow>, StoreError> {
        let rows = self
            .query(
                "SELECT id, record_id, kind, kek_version, wrapped_dek FROM record_keys
                 WHERE id > $3 AND tenant_id = $1 AND kek_version < $2
                 ORDER BY id LIMIT $4",
                &[
                    &tenant.as_str(),
                    &version_i32(below)?,
                    &after.unwrap_or(0),
                    &i64::from(limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RecordKeyRow {
                    id: r.get(0),
                    record_id: r.get(1),
                    kind: r.get(2),
                    kek_version: version(r.get(3))?,
                    wrapped_dek: r.get(4),
                })
            })
            .collect()
    }

    pub(in crate::db) async fn store_rewrapped(
        &self,
        rows: Vec<(RecordKeyRow, u32, Vec<u8>)>,
    ) -> Result<u64, StoreError> {
        // One statement for the batch: arrays unnested into rows.
        let mut ids = Vec::with_capacity(rows.len());
        let mut old = Vec::with_capacity(rows.len());
        let mut new = Vec::with_capacity(rows.len());
        let mut wrapped = Vec::with_capacity(rows.len());
        for (row, version, key) in rows {
            ids.push(row.id);
            old.push(version_i32(row.kek_version)?);
            new.push(version_i32(version)?);
            wrapped.push(key);
        }
        self.execute(
            "UPDATE record_keys k SET kek_version = u.new, wrapped_dek = u.wrapped
             FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bytea[]) AS u(id, old, new, wrapped)
             WHERE k.id = u.id AND k.kek_version = u.old",
            &[&ids, &old, &new, &wrapped],
        )
        .await
    }

    pub(in crate::db) async fn retire_kek_versions(
        &self,
        tenant: &TenantId,
        below: u32,
    ) -> Result<RetireOutcome, StoreError> {
        let below = version_i32(below)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let kept: i64 = tx
            .query_one(
                "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1 AND purpose = 'kek' AND version >= $2",
                &[&tenant.as_str(), &below],
            )
            .await
            .map_err(pg)?
            .get(0);
        if kept == 0 {
            return Ok(RetireOutcome::WouldRemoveCurrent);
        }
        let in_use: i64 = tx
            .query_one(
                "SELECT count(*) FROM record_keys WHERE tenant_id = $1 AND kek_version < $2",
                &[&tenant.as_str(), &below],
            )
            .await
            .map_err(pg)?
            .get(0);
        if in_use > 0 {
            return Ok(RetireOutcome::InUse(count(in_use)));
        }
        // A record another node adds under a doomed version meanwhile makes
        // the foreign key fail this DELETE: nothing is destroyed then.
        let destroyed = tx
            .execute(
                "DELETE FROM tenant_keys WHERE tenant_id = $1 AND purpose = 'kek' AND version < $2",
                &[&tenant.as_str(), &below],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(RetireOutcome::Destroyed(destroyed))
    }

    pub(in crate::db) async fn shred_tenant(&self, tenant: &TenantId, at: i64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // A node that still holds the tenant's keys in memory then finds no
        // card by its number, as the keys' absence tells every other node.
        tx.execute(
            "UPDATE cards SET fingerprint = NULL WHERE tenant_id = $1 AND fingerprint IS NOT NULL",
            &[&tenant.as_str()],
        )
        .await
        .map_err(pg)?;
        let destroyed = tx
            .execute(
                "DELETE FROM record_keys WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "DELETE FROM tenant_keys WHERE tenant_id = $1",
            &[&tenant.as_str()],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "UPDATE principals SET disabled_at = $2 WHERE tenant_id = $1 AND disabled_at IS NULL",
            &[&tenant.as_str(), &at],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(destroyed)
    }

    pub(in crate::db) async fn add_encryptions(
        &self,
        counts: Vec<(TenantId, u32, u64)>,
    ) -> Result<(), StoreError> {
        for (tenant, version, n) in counts {
            self.execute(
                "UPDATE tenant_keys SET encryptions = encryptions + $3
                 WHERE tenant_id = $1 AND purpose = 'kek' AND version = $2",
                &[
                    &tenant.as_str(),
                    &version_i32(version)?,
                    &i64::try_from(n).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        }
        Ok(())
    }

    pub(in crate::db) async fn insert_key_request(&self, row: KeyRequestRow) -> Result<(), StoreError> {
        let below = row
            .operation
            .below()
            .map(i32::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt("key version out of range"))?;
        self.execute(
            "INSERT INTO key_requests (id, tenant_id, operation, below, target, reason, requested_by,
                                       requested_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &row.id.as_str(),
                &row.tenant_id.as_ref().map(TenantId::as_str),
                &row.operation.as_str(),
                &below,
                &row.operation.target(),
                &row.reason,
                &row.requested_by.as_str(),
                &row.requested_at,
                &row.expires_at,
            ],
        )
        .await
        .map(|_| ())
    }

    pub(in crate::db) async fn key_request(
        &self,
        id: &KeyRequestId,
    ) -> Result<Option<KeyRequestRow>, StoreError> {
        self.query_opt(
            &format!("SELECT {REQUEST_COLUMNS} FROM key_requests WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .map(|r| request_row(&r))
        .transpose()
    }

    pub(in crate::db) async fn key_requests(
        &self,
        tenant: Option<&TenantId>,
        limit: u32,
    ) -> Result<Vec<KeyRequestRow>, StoreError> {
        self.query(
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM key_requests WHERE $1::text IS NULL OR tenant_id = $1
                 ORDER BY requested_at DESC, id DESC LIMIT $2"
            ),
            &[&tenant.map(TenantId::as_str), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(request_row)
        .collect()
    }

    pub(in crate::db) async fn decide_key_request(
        &self,
        id: &KeyRequestId,
        by: &PrincipalId,
        at: i64,
        outcome: &'static str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE key_requests SET decided_by = $2, decided_at = $3, outcome = $4
                 WHERE id = $1 AND decided_at IS NULL AND expires_at > $3",
                &[&id.as_str(), &by.as_str(), &at, &outcome],
            )
            .await?
            == 1)
    }

    pub(in crate::db) async fn all_tenant_keys(&self) -> Result<Vec<(TenantId, TenantKeyRow)>, StoreError> {
        self.query(
            "SELECT tenant_id, purpose, version, wrapped, created_at FROM tenant_keys
             ORDER BY tenant_id, purpose, version",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                TenantId::from_db(r.get(0)),
                TenantKeyRow {
                    purpose: KeyPurpose::parse(r.get(1))?,
                    version: version(r.get(2))?,
                    wrapped: r.get(3),
                    created_at: r.get(4),
                },
            ))
        })
        .collect()
    }

    pub(in crate::db) async fn meta_put(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        match value {
            Some(value) => {
                self.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&key, &value],
                )
                .await
            }
            None => self.execute("DELETE FROM meta WHERE key = $1", &[&key]).await,
        }
        .map(|_| ())
    }

    pub(in crate::db) async fn apply_root_change(
        &self,
        change: RootChange,
        staged: &'static str,
        at: i64,
    ) -> Result<Result<(), RootChangeRefused>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The request row is locked first, so two runs of the same request
        // cannot both apply it; a run that returns early rolls back on drop.
        let executed = tx
            .execute(
                "UPDATE key_requests SET executed_at = $2 WHERE id = $1 AND executed_at IS NULL",
                &[&change.request.as_str(), &at],
            )
            .await
            .map_err(pg)?;
        if executed != 1 {
            return Ok(Err(RootChangeRefused::AlreadyExecuted));
        }
        // No tenant key can be added behind the change while it is counted.
        tx.execute("LOCK TABLE tenant_keys IN SHARE ROW EXCLUSIVE MODE", &[])
            .await
            .map_err(pg)?;
        let mut stored = 0;
        for k in &change.tenant_keys {
            let (tenant, purpose, v) = &k.key;
            stored += tx
                .execute(
                    "UPDATE tenant_keys SET wrapped = $5
                     WHERE tenant_id = $1 AND purpose = $2 AND version = $3 AND wrapped = $4",
                    &[
                        &tenant.as_str(),
                        &purpose.as_str(),
                        &version_i32(*v)?,
                        &k.old,
                        &k.new,
                    ],
                )
                .await
                .map_err(pg)?;
        }
        for m in &change.meta {
            stored += tx
                .execute(
                    "UPDATE meta SET value = $3 WHERE key = $1 AND value = $2",
                    &[&m.key, &m.old, &m.new],
                )
                .await
                .map_err(pg)?;
        }
        let keys: i64 = tx
            .query_one("SELECT count(*) FROM tenant_keys", &[])
            .await
            .map_err(pg)?
            .get(0);
        let expected = change.tenant_keys.len() + change.meta.len();
        if usize::try_from(stored).ok() != Some(expected)
            || usize::try_from(keys).ok() != Some(change.tenant_keys.len())
        {
            return Ok(Err(RootChangeRefused::StateChanged));
        }
        tx.execute("DELETE FROM meta WHERE key = $1", &[&staged])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Ok(()))
    }
}
