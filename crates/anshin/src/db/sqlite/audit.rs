//! SQLite storage of the audit log. The writer thread is the only writer, so an
//! entry's place in the log is `max(idx) + 1` at the moment it is written, inside
//! the same group commit: numbers are consecutive, and a rolled-back batch takes
//! its numbers with it.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::audit::{
    AuditEntryRow, AuditFilter, AuditHead, AuditIntegration, AuditPage, NewAuditEntry, frontier_from,
    hash_from, i64_from, u64_from,
};
use anshin_crypto::merkle::Hash;

/// Appends entries inside the writer's current transaction. The writer is the
/// only writer, so the next place is read once per call.
pub(in crate::db) fn insert_entries(c: &Connection, entries: Vec<NewAuditEntry>) -> rusqlite::Result<()> {
    let next: i64 = c
        .prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")?
        .query_row([], |r| r.get(0))?;
    let mut insert = c.prepare_cached(
        "INSERT INTO audit_entries (idx, time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut subject =
        c.prepare_cached("INSERT OR IGNORE INTO audit_subjects (subject, idx) VALUES (?1, ?2)")?;
    for (idx, e) in (next..).zip(entries) {
        insert.execute(params![
            idx,
            e.time_ms,
            e.tenant_id,
            e.principal_id,
            e.kind,
            e.outcome,
            &e.leaf_hash[..],
            e.entry
        ])?;
        for s in &e.subjects {
            subject.execute(params![&s[..], idx])?;
        }
    }
    Ok(())
}

impl SqliteStore {
    pub(in crate::db) async fn audit_append(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        self.write(move |c| insert_entries(c, entries)).await
    }

    pub(in crate::db) async fn audit_sequence(&self, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }

    pub(in crate::db) async fn audit_sequenced(&self) -> Result<u64, StoreError> {
        let next: i64 = self.read(|c| {
            c.prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")?
                .query_row([], |r| r.get(0))
        })?;
        u64_from(next)
    }

    pub(in crate::db) async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        let row: Option<(i64, Vec<u8>, String, i64)> = self.read(|c| {
            c.prepare_cached("SELECT size, frontier, checkpoint, updated_at FROM audit_head WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })?;
        row.map(|(size, frontier, checkpoint, updated_at)| {
            Ok(AuditHead {
                size: u64_from(size)?,
                frontier: frontier_from(&frontier)?,
                checkpoint,
                updated_at,
            })
        })
        .transpose()
    }

    pub(in crate::db) async fn audit_integrate(&self, m: AuditIntegration) -> Result<bool, StoreError> {
        let old = i64_from(m.old_size)?;
        let size = i64_from(m.head.size)?;
        let nodes = m
            .nodes
            .iter()
            .map(|(level, idx, hash)| Ok((*level, i64_from(*idx)?, *hash)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |c| {
            let current: Option<i64> = c
                .prepare_cached("SELECT size FROM audit_head WHERE id = 1")?
                .query_row([], |r| r.get(0))
                .optional()?;
            if current.unwrap_or(0) != old {
                return Ok(false);
            }
            let mut insert = c.prepare_cached("INSERT OR IGNORE INTO audit_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
            for (level, idx, hash) in &nodes {
                insert.execute(params![level, idx, &hash[..]])?;
            }
            c.prepare_cached(
                "INSERT INTO audit_head (id, size, frontier, checkpoint, updated_at) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET size = ?1, frontier = ?2, checkpoint = ?3, updated_at = ?4",
            )?
            .execute(params![size, m.head.frontier.concat(), m.head.checkpoint, m.head.updated_at])?;
            if m.archive {
                c.prepare_cached(
                    "INSERT OR IGNORE INTO audit_checkpoints (size, note, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![size, m.head.checkpoint, m.head.updated_at])?;
            }
            Ok(true)
        })
        .await
    }

    pub(in crate::db) async fn audit_hashes(
        &self,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let (lo, hi) = (i64_from(start)?, i64_from(end)?);
        let rows: Vec<Vec<u8>> = self.read(|c| {
            let mut stmt = if level == 0 {
                c.prepare_cached(
                    "SELECT leaf_hash FROM audit_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                )?
            } else {
                c.prepare_cached(
                    "SELECT hash FROM audit_nodes WHERE level = ?3 AND idx >= ?1 AND idx < ?2 ORDER BY idx",
                )?
            };
            if level == 0 {
                stmt.query_map(params![lo, hi], |r| r.get(0))?.collect()
            } else {
                stmt.query_map(params![lo, hi, level], |r| r.get(0))?.collect()
            }
        })?;
        if rows.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt("audit hashes missing"));
        }
        rows.into_iter().map(hash_from).collect()
    }

    pub(in crate::db) async fn audit_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (lo, hi) = (i64_from(start)?, i64_from(end)?);
        let rows: Vec<Vec<u8>> = self.read(|c| {
            c.prepare_cached("SELECT entry FROM audit_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?
                .query_map(params![lo, hi], |r| r.get(0))?
                .collect()
        })?;
        if rows.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt("audit entries missing"));
        }
        Ok(rows)
    }

    pub(in crate::db) async fn audit_find(&self, f: AuditFilter) -> Result<AuditPage, StoreError> {
        let after = f.after.unwrap_or(-1);
        let since = f.since_ms.unwrap_or(i64::MIN);
        let rows: Vec<(i64, Vec<u8>)> = self.read(|c| match &f.subject {
            Some(subject) => c
                .prepare_cached(
                    "SELECT e.idx, e.entry FROM audit_subjects s JOIN audit_entries e ON e.idx = s.idx
                     WHERE s.subject = ?1 AND s.idx > ?2 AND e.time_ms >= ?3
                       AND (?4 IS NULL OR e.tenant_id = ?4) AND (?5 IS NULL OR e.principal_id = ?5)
                       AND (?7 IS NULL OR e.kind = ?7)
                     ORDER BY s.idx LIMIT ?6",
                )?
                .query_map(
                    params![
                        &subject[..],
                        after,
                        since,
                        f.tenant_id,
                        f.principal_id,
                        f.limit,
                        f.kind
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect(),
            None => c
                .prepare_cached(
                    "SELECT idx, entry FROM audit_entries
                     WHERE idx > ?1 AND time_ms >= ?2
                       AND (?3 IS NULL OR tenant_id = ?3) AND (?4 IS NULL OR principal_id = ?4)
                       AND (?6 IS NULL OR kind = ?6)
                     ORDER BY idx LIMIT ?5",
                )?
                .query_map(
                    params![after, since, f.tenant_id, f.principal_id, f.limit, f.kind],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect(),
        })?;
        let next = (rows.len() == f.limit as usize)
            .then(|| rows.last().map(|r| r.0))
            .flatten();
        let entries = rows
            .into_iter()
            .map(|(idx, entry)| {
                Ok(AuditEntryRow {
                    idx: Some(u64_from(idx)?),
                    entry,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(AuditPage { entries, next })
    }

    pub(in crate::db) async fn audit_count(
        &self,
        principal: &str,
        kind: &str,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        let count: i64 = self.read(|c| {
            c.prepare_cached(
                "SELECT count(*) FROM audit_entries
                 WHERE principal_id = ?1 AND time_ms >= ?3 AND kind = ?2 AND outcome = 'success'",
            )?
            .query_row(params![principal, kind, since_ms], |r| r.get(0))
        })?;
        u64_from(count)
    }

    pub(in crate::db) async fn audit_checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        let size = i64_from(size)?;
        self.read(|c| {
            c.prepare_cached("SELECT note FROM audit_checkpoints WHERE size = ?1")?
                .query_row([size], |r| r.get(0))
                .optional()
        })
    }
}
