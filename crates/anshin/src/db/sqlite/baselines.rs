//! SQLite storage of integrity baselines kept off the shop's host.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::baselines::{BaselineRow, PinRow};
use crate::ids::{PrincipalId, TenantId};

const COLUMNS: &str = "tenant_id, host, version, sha256, public_key, action, approved_by, reason, approved_at, \
                       added, removed, changed, continues, uploaded_by, uploaded_at";

fn baseline_row(r: &Row<'_>, with_file: bool) -> rusqlite::Result<BaselineRow> {
    Ok(BaselineRow {
        tenant_id: TenantId::from_db(r.get(0)?),
        host: r.get(1)?,
        version: r.get(2)?,
        sha256: r.get(3)?,
        public_key: r.get(4)?,
        action: r.get(5)?,
        approved_by: r.get(6)?,
        reason: r.get(7)?,
        approved_at: r.get(8)?,
        added: r.get(9)?,
        removed: r.get(10)?,
        changed: r.get(11)?,
        continues: r.get(12)?,
        uploaded_by: PrincipalId::from_db(r.get(13)?),
        uploaded_at: r.get(14)?,
        file: if with_file { r.get(15)? } else { Vec::new() },
    })
}

impl SqliteStore {
    pub(in crate::db) async fn baseline_pin(
        &self,
        tenant: &TenantId,
        host: &str,
    ) -> Result<Option<PinRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT tenant_id, host, public_key, pinned_by, pinned_at FROM integrity_hosts
                 WHERE tenant_id = ?1 AND host = ?2",
            )?
            .query_row(params![tenant.as_str(), host], |r| {
                Ok(PinRow {
                    tenant_id: TenantId::from_db(r.get(0)?),
                    host: r.get(1)?,
                    public_key: r.get(2)?,
                    pinned_by: PrincipalId::from_db(r.get(3)?),
                    pinned_at: r.get(4)?,
                })
            })
            .optional()
        })
    }

    pub(in crate::db) async fn baseline_pin_set(
        &self,
        pin: PinRow,
        replace: bool,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO integrity_hosts (tenant_id, host, public_key, pinned_by, pinned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, host) DO UPDATE SET public_key = excluded.public_key,
                     pinned_by = excluded.pinned_by, pinned_at = excluded.pinned_at
                 WHERE ?6",
            )?
            .execute(params![
                pin.tenant_id.as_str(),
                pin.host,
                pin.public_key,
                pin.pinned_by.as_str(),
                pin.pinned_at,
                replace,
            ])
            .map(|n| n == 1)
        })
        .await
    }

    pub(in crate::db) async fn baseline_insert(&self, row: BaselineRow) -> Result<i64, StoreError> {
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO integrity_baselines ({COLUMNS}, file)
                 SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                        ?13, ?14, ?15
                 FROM integrity_baselines WHERE tenant_id = ?1 AND host = ?2
                 RETURNING version"
            ))?
            .query_row(
                params![
                    row.tenant_id.as_str(),
                    row.host,
                    row.sha256,
                    row.public_key,
                    row.action,
                    row.approved_by,
                    row.reason,
                    row.approved_at,
                    row.added,
                    row.removed,
                    row.changed,
                    row.continues,
                    row.uploaded_by.as_str(),
                    row.uploaded_at,
                    row.file,
                ],
                |r| r.get(0),
            )
        })
        .await
    }

    pub(in crate::db) async fn baseline_latest(
        &self,
        tenant: &TenantId,
        host: &str,
    ) -> Result<Option<BaselineRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, file FROM integrity_baselines WHERE tenant_id = ?1 AND host = ?2
                 ORDER BY version DESC LIMIT 1"
            ))?
            .query_row(params![tenant.as_str(), host], |r| baseline_row(r, true))
            .optional()
        })
    }

    pub(in crate::db) async fn baseline_history(
        &self,
        tenant: &TenantId,
        host: &str,
    ) -> Result<Vec<BaselineRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM integrity_baselines WHERE tenant_id = ?1 AND host = ?2
                 ORDER BY version DESC"
            ))?
            .query_map(params![tenant.as_str(), host], |r| baseline_row(r, false))?
            .collect()
        })
    }
}
