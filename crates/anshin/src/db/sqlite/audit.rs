//! SQLite storage of the audit log, in its own database file (see
//! [`SqliteStore`]). The log's writer thread is its only writer, so an entry's
//! place in the log is `max(idx) + 1` at the moment it is written, inside the
//! same group commit: numbers are consecutive, and a rolled-back batch takes
//! its numbers with it. Entries that must commit with a vault write wait in the
//! vault's `audit_outbox` until [`SqliteStore::audit_sequence`] moves them.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::db::StoreError;
use crate::db::audit::{
    AuditEntryRow, AuditFilter, AuditHead, AuditIntegration, AuditPage, NewAuditEntry, frontier_from,
    hash_from, i64_from, u64_from,
};
use anshin_crypto::merkle::Hash;

/// One entry to write, borrowed from a [`NewAuditEntry`] or an outbox row.
struct LogRow<'a> {
    time_ms: i64,
    tenant_id: Option<&'a str>,
    principal_id: Option<&'a str>,
    kind: &'a str,
    outcome: &'a str,
    leaf_hash: &'a [u8],
    entry: &'a [u8],
    /// Keyed customer hashes, 32 bytes each.
    subjects: &'a [u8],
}

impl<'a> From<&'a NewAuditEntry> for LogRow<'a> {
    fn from(e: &'a NewAuditEntry) -> Self {
        Self {
            time_ms: e.time_ms,
            tenant_id: e.tenant_id.as_deref(),
            principal_id: e.principal_id.as_deref(),
            kind: e.kind,
            outcome: e.outcome,
            leaf_hash: &e.leaf_hash,
            entry: &e.entry,
            subjects: e.subjects.as_flattened(),
        }
    }
}

/// An entry waiting in the vault's outbox.
struct OutboxRow {
    id: i64,
    time_ms: i64,
    tenant_id: Option<String>,
    principal_id: Option<String>,
    kind: String,
    outcome: String,
    leaf_hash: Vec<u8>,
    entry: Vec<u8>,
    subjects: Vec<u8>,
}

impl OutboxRow {
    fn as_log_row(&self) -> LogRow<'_> {
        LogRow {
            time_ms: self.time_ms,
            tenant_id: self.tenant_id.as_deref(),
            principal_id: self.principal_id.as_deref(),
            kind: &self.kind,
            outcome: &self.outcome,
            leaf_hash: &self.leaf_hash,
            entry: &self.entry,
            subjects: &self.subjects,
        }
    }
}

/// Appends entries inside the log writer's current transaction. The writer is
/// the only writer, so the next place is read once per call.
fn insert_entries<'a>(c: &Connection, entries: impl IntoIterator<Item = LogRow<'a>>) -> rusqlite::Result<()> {
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
            e.leaf_hash,
            e.entry
        ])?;
        for s in e.subjects.chunks_exact(32) {
            subject.execute(params![s, idx])?;
        }
    }
    Ok(())
}

/// Puts an entry in the vault's outbox, inside the vault writer's transaction
/// that makes the write it records.
pub(in crate::db) fn insert_outbox(c: &Connection, e: &NewAuditEntry) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO audit_outbox (time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry, subjects)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.time_ms,
        e.tenant_id,
        e.principal_id,
        e.kind,
        e.outcome,
        &e.leaf_hash[..],
        e.entry,
        e.subjects.as_flattened()
    ])?;
    Ok(())
}

/// The audit tables an older install kept in the vault's file, oldest first
/// so that a copy interrupted half-way is finished by the next open.
const LEGACY_TABLES: [&str; 5] = [
    "audit_entries",
    "audit_subjects",
    "audit_nodes",
    "audit_head",
    "audit_checkpoints",
];

/// Moves the log of an install from before the log had its own file: copies
/// its tables into the log's file in one transaction, then drops them from the
/// vault's. Each step is idempotent, so a crash between them is repaired by
/// the next open. A fresh install passes through here once too, with the empty
/// tables its first migration created.
fn adopt_legacy_log(vault: &Path, log: &Path) -> rusqlite::Result<()> {
    let mut conn = Connection::open(log)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute("ATTACH DATABASE ?1 AS vault", [vault.to_string_lossy()])?;
    let legacy: bool = conn
        .prepare("SELECT EXISTS (SELECT 1 FROM vault.sqlite_schema WHERE type = 'table' AND name = 'audit_entries')")?
        .query_row([], |r| r.get(0))?;
    if !legacy {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for table in LEGACY_TABLES {
        tx.execute_batch(&format!(
            "INSERT OR IGNORE INTO main.{table} SELECT * FROM vault.{table}"
        ))?;
    }
    tx.commit()?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for table in LEGACY_TABLES.iter().rev() {
        tx.execute_batch(&format!("DROP TABLE vault.{table}"))?;
    }
    tx.commit()
}

impl SqliteStore {
    /// See [`adopt_legacy_log`]; runs once per open, before any write.
    pub(super) async fn adopt_legacy_log(&self) -> Result<(), StoreError> {
        let (vault, log) = (self.vault.path.clone(), self.log.path.clone());
        tokio::task::spawn_blocking(move || adopt_legacy_log(&vault, &log).map_err(backend))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    pub(in crate::db) async fn audit_append(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        self.log
            .write(move |c| insert_entries(c, entries.iter().map(LogRow::from)))
            .await
    }

    /// Moves up to `limit` entries from the vault's outbox into the log: the
    /// log takes them (skipping any an interrupted move already took) and
    /// records the highest id taken in the same commit; then the outbox lets
    /// them go.
    pub(in crate::db) async fn audit_sequence(&self, limit: u32) -> Result<u64, StoreError> {
        let rows: Vec<OutboxRow> = self.read(|c| {
            c.prepare_cached(
                "SELECT id, time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry, subjects
                 FROM audit_outbox ORDER BY id LIMIT ?1",
            )?
            .query_map([limit], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    tenant_id: r.get(2)?,
                    principal_id: r.get(3)?,
                    kind: r.get(4)?,
                    outcome: r.get(5)?,
                    leaf_hash: r.get(6)?,
                    entry: r.get(7)?,
                    subjects: r.get(8)?,
                })
            })?
            .collect()
        })?;
        let Some(upto) = rows.last().map(|r| r.id) else {
            return Ok(0);
        };
        let taken = rows.len() as u64;
        self.log
            .write(move |c| {
                let before: i64 = c
                    .prepare_cached("SELECT coalesce(max(upto), -1) FROM audit_outbox_taken")?
                    .query_row([], |r| r.get(0))?;
                insert_entries(
                    c,
                    rows.iter().filter(|r| r.id > before).map(OutboxRow::as_log_row),
                )?;
                c.prepare_cached(
                    "INSERT INTO audit_outbox_taken (id, upto) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET upto = max(upto, ?1)",
                )?
                .execute([upto])?;
                Ok(())
            })
            .await?;
        self.write(move |c| {
            c.prepare_cached("DELETE FROM audit_outbox WHERE id <= ?1")?
                .execute([upto])
                .map(|_| ())
        })
        .await?;
        Ok(taken)
    }

    /// Whether entries wait in the outbox for their place in the log.
    pub(in crate::db) async fn audit_unsequenced(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM audit_outbox)")?
                .query_row([], |r| r.get(0))
        })
    }

    pub(in crate::db) async fn audit_entry_time(&self, index: u64) -> Result<Option<i64>, StoreError> {
        let idx = i64_from(index)?;
        self.log.read(|c| {
            c.prepare_cached("SELECT time_ms FROM audit_entries WHERE idx = ?1")?
                .query_row([idx], |r| r.get(0))
                .optional()
        })
    }

    pub(in crate::db) async fn audit_sequenced(&self) -> Result<u64, StoreError> {
        let next: i64 = self.log.read(|c| {
            c.prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")?
                .query_row([], |r| r.get(0))
        })?;
        u64_from(next)
    }

    pub(in crate::db) async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        let row: Option<(i64, Vec<u8>, String, i64)> = self.log.read(|c| {
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
        self.log.write(move |c| {
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
        let rows: Vec<Vec<u8>> = self.log.read(|c| {
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
        let rows: Vec<Vec<u8>> = self.log.read(|c| {
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
        let rows: Vec<(i64, Vec<u8>)> = self.log.read(|c| match &f.subject {
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
        let count: i64 = self.log.read(|c| {
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
        self.log.read(|c| {
            c.prepare_cached("SELECT note FROM audit_checkpoints WHERE size = ?1")?
                .query_row([size], |r| r.get(0))
                .optional()
        })
    }
}
