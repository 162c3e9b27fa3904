//! PostgreSQL storage of the audit log. Any node appends entries without a
//! place (idx NULL) in a single statement; the sequencer numbers committed
//! entries under an advisory lock, so several nodes give one total order with no
//! gap (an identity column alone would leave gaps on rollback) and no duplicate
//! (idx is unique).

use std::sync::LazyLock;

use anshin_crypto::merkle::Hash;

use super::{PgStore, pg};
use crate::db::StoreError;
use crate::db::audit::{
    AuditEntryRow, AuditFilter, AuditHead, AuditIntegration, AuditPage, NewAuditEntry, frontier_from,
    hash_from, i64_from, u64_from,
};

/// Advisory lock that serialises sequencing and integration across nodes
/// ("audit" in ASCII).
const AUDIT_LOCK: i64 = 0x61_7564_6974;

/// Entries to append, as the nine array parameters `$1`–`$9` of the
/// statements [`entry_ctes`] makes.
pub(in crate::db) struct EntryColumns {
    time: Vec<i64>,
    tenant: Vec<Option<String>>,
    principal: Vec<Option<String>>,
    kind: Vec<&'static str>,
    outcome: Vec<&'static str>,
    leaf: Vec<Vec<u8>>,
    entry: Vec<Vec<u8>>,
    subject_leaf: Vec<Vec<u8>>,
    subject: Vec<Vec<u8>>,
}

impl EntryColumns {
    pub(in crate::db) fn new(entries: Vec<NewAuditEntry>) -> Self {
        let n = entries.len();
        let mut c = Self {
            time: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            principal: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            leaf: Vec::with_capacity(n),
            entry: Vec::with_capacity(n),
            subject_leaf: Vec::new(),
            subject: Vec::new(),
        };
        for e in entries {
            for s in &e.subjects {
                c.subject_leaf.push(e.leaf_hash.to_vec());
                c.subject.push(s.to_vec());
            }
            c.time.push(e.time_ms);
            c.tenant.push(e.tenant_id);
            c.principal.push(e.principal_id);
            c.kind.push(e.kind);
            c.outcome.push(e.outcome);
            c.leaf.push(e.leaf_hash.to_vec());
            c.entry.push(e.entry);
        }
        c
    }

    /// `$1`–`$9`.
    pub(in crate::db) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.time,
            &self.tenant,
            &self.principal,
            &self.kind,
            &self.outcome,
            &self.leaf,
            &self.entry,
            &self.subject_leaf,
            &self.subject,
        ]
    }
}

/// Two data-modifying CTEs, `entries` and `subjects`, that append the entries
/// of `$1`–`$9` ([`EntryColumns`]) if the condition `when` holds, so a write
/// can append its entry in its own statement. Subjects find their entry by
/// leaf hash: identical entries have identical subjects, so a duplicate hash
/// links each copy to the same customers, which is right.
pub(in crate::db) fn entry_ctes(when: &str) -> String {
    format!(
        "entries AS (
             INSERT INTO audit_entries (time_ms, tenant_id, principal_id, kind, outcome, leaf_hash, entry)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[])
             WHERE {when}
             RETURNING id, leaf_hash),
         subjects AS (
             INSERT INTO audit_subjects (subject, entry_id)
             SELECT DISTINCT s.subject, entries.id FROM entries JOIN unnest($8::bytea[], $9::bytea[]) AS s (leaf_hash, subject)
               ON s.leaf_hash = entries.leaf_hash
             ON CONFLICT DO NOTHING)"
    )
}

/// Appends entries with one statement on `client` (a pooled connection, or a
/// transaction the entries must commit with).
pub(in crate::db) async fn insert_entries(
    client: &impl deadpool_postgres::GenericClient,
    entries: Vec<NewAuditEntry>,
) -> Result<(), StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("WITH {} SELECT 1", entry_ctes("true")));
    let columns = EntryColumns::new(entries);
    let stmt = client.prepare_cached(&SQL).await.map_err(pg)?;
    client
        .execute(&stmt, &columns.params())
        .await
        .map_err(pg)
        .map(|_| ())
}

impl PgStore {
    pub(in crate::db) async fn audit_append(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        // One statement, so one transaction of its own.
        insert_entries(&self.client().await?, entries).await
    }

    pub(in crate::db) async fn audit_sequence(&self, limit: u32) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(pg)?;
        let numbered = tx
            .execute(
                "WITH base AS (SELECT coalesce(max(idx) + 1, 0) AS next FROM audit_entries),
                      pending AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
                                  FROM audit_entries WHERE idx IS NULL ORDER BY id LIMIT $1)
                 UPDATE audit_entries e SET idx = base.next + pending.n
                 FROM pending, base WHERE e.id = pending.id",
                &[&i64::from(limit)],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(numbered)
    }

    pub(in crate::db) async fn audit_sequenced(&self) -> Result<u64, StoreError> {
        let row = self
            .query_opt("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries", &[])
            .await?;
        u64_from(row.map_or(0, |r| r.get(0)))
    }

    pub(in crate::db) async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        let row = self
            .query_opt(
                "SELECT size, frontier, checkpoint, updated_at FROM audit_head WHERE id = 1",
                &[],
            )
            .await?;
        row.map(|r| {
            Ok(AuditHead {
                size: u64_from(r.get(0))?,
                frontier: frontier_from(r.get::<_, &[u8]>(1))?,
                checkpoint: r.get(2),
                updated_at: r.get(3),
            })
        })
        .transpose()
    }

    pub(in crate::db) async fn audit_integrate(&self, m: AuditIntegration) -> Result<bool, StoreError> {
        let old = i64_from(m.old_size)?;
        let size = i64_from(m.head.size)?;
        let mut levels = Vec::with_capacity(m.nodes.len());
        let mut idxs = Vec::with_capacity(m.nodes.len());
        let mut hashes = Vec::with_capacity(m.nodes.len());
        for (level, idx, hash) in &m.nodes {
            levels.push(i32::from(*level));
            idxs.push(i64_from(*idx)?);
            hashes.push(hash.to_vec());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(pg)?;
        let current: i64 = tx
            .query_opt("SELECT size FROM audit_head WHERE id = 1 FOR UPDATE", &[])
            .await
            .map_err(pg)?
            .map_or(0, |r| r.get(0));
        if current != old {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO audit_nodes (level, idx, hash)
             SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[]) ON CONFLICT DO NOTHING",
            &[&levels, &idxs, &hashes],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO audit_head (id, size, frontier, checkpoint, updated_at) VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET size = $1, frontier = $2, checkpoint = $3, updated_at = $4",
            &[
                &size,
                &m.head.frontier.concat(),
                &m.head.checkpoint,
                &m.head.updated_at,
            ],
        )
        .await
        .map_err(pg)?;
        if m.archive {
            tx.execute(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&size, &m.head.checkpoint, &m.head.updated_at],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    pub(in crate::db) async fn audit_hashes(
        &self,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let (lo, hi) = (i64_from(start)?, i64_from(end)?);
        let rows = if level == 0 {
            self.query(
                "SELECT leaf_hash FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&lo, &hi],
            )
            .await?
        } else {
            self.query(
                "SELECT hash FROM audit_nodes WHERE level = $3 AND idx >= $1 AND idx < $2 ORDER BY idx",
                &[&lo, &hi, &i32::from(level)],
            )
            .await?
        };
        if rows.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt("audit hashes missing"));
        }
        rows.into_iter().map(|r| hash_from(r.get(0))).collect()
    }

    pub(in crate::db) async fn audit_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (lo, hi) = (i64_from(start)?, i64_from(end)?);
        let rows = self
            .query(
                "SELECT entry FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&lo, &hi],
            )
            .await?;
        if rows.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt("audit entries missing"));
        }
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Pages by `idx`, never by the identity `id`: ids are taken at insert and
    /// commit in any order, so a reader past an id could miss an entry that
    /// commits later with a smaller one. Indexes are given after commit, in
    /// order, under the advisory lock: an entry sequenced later always gets a
    /// larger index than any a reader has seen. Unsequenced entries are not
    /// listed ([`crate::audit::log::AuditLog::sequence`] numbers them first).
    pub(in crate::db) async fn audit_find(&self, f: AuditFilter) -> Result<AuditPage, StoreError> {
        let after = f.after.unwrap_or(-1);
        let since = f.since_ms.unwrap_or(i64::MIN);
        let limit = i64::from(f.limit);
        let rows = match &f.subject {
            Some(subject) => {
                self.query(
                    "SELECT e.idx, e.entry FROM audit_subjects s JOIN audit_entries e ON e.id = s.entry_id
                     WHERE s.subject = $1 AND e.idx IS NOT NULL AND e.idx > $2 AND e.time_ms >= $3
                       AND ($4::text IS NULL OR e.tenant_id = $4) AND ($5::text IS NULL OR e.principal_id = $5)
                       AND ($7::text IS NULL OR e.kind = $7)
                     ORDER BY e.idx LIMIT $6",
                    &[&subject.to_vec(), &after, &since, &f.tenant_id, &f.principal_id, &limit, &f.kind],
                )
                .await?
            }
            None => {
                self.query(
                    "SELECT idx, entry FROM audit_entries
                     WHERE idx IS NOT NULL AND idx > $1 AND time_ms >= $2
                       AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR principal_id = $4)
                       AND ($6::text IS NULL OR kind = $6)
                     ORDER BY idx LIMIT $5",
                    &[&after, &since, &f.tenant_id, &f.principal_id, &limit, &f.kind],
                )
                .await?
            }
        };
        let next = (rows.len() == f.limit as usize)
            .then(|| rows.last().map(|r| r.get::<_, i64>(0)))
            .flatten();
        let entries = rows
            .into_iter()
            .map(|r| {
                Ok(AuditEntryRow {
                    idx: Some(u64_from(r.get::<_, i64>(0))?),
                    entry: r.get(1),
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
        let row = self
            .query_opt(
                "SELECT count(*) FROM audit_entries
                 WHERE principal_id = $1 AND time_ms >= $3 AND kind = $2 AND outcome = 'success'",
                &[&principal, &kind, &since_ms],
            )
            .await?;
        u64_from(row.map_or(0, |r| r.get(0)))
    }

    pub(in crate::db) async fn audit_checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT note FROM audit_checkpoints WHERE size = $1",
                &[&i64_from(size)?],
            )
            .await?
            .map(|r| r.get(0)))
    }
}
