//! SQLite storage of alerts and the detectors' cursor. Every change runs on
//! the one writer thread, so a compare-and-swap is a read and a write in the
//! same job.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::alerts::{
    AlertFilter, AlertPage, AlertRow, NewAlert, attempts_from, evidence_from, evidence_text, kind_from,
    severity_from,
};
use crate::db::audit::i64_from;
use crate::ids::AlertId;
use crate::webhook::{Attempt, Claim};

const COLUMNS: &str = "seq, id, kind, severity, tenant_id, principal_id, summary, evidence, dedup_key, \
                       observed_at, created_at, attempts, delivered_at, next_attempt_at, last_error";

/// Columns as read, before checking them.
type RawAlert = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn raw_alert(r: &Row<'_>) -> rusqlite::Result<RawAlert> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn alert_row(raw: RawAlert) -> Result<AlertRow, StoreError> {
    let (
        seq,
        id,
        kind,
        severity,
        tenant_id,
        principal_id,
        summary,
        evidence,
        dedup_key,
        observed_at,
        created_at,
        attempts,
        delivered_at,
        next_attempt_at,
        last_error,
    ) = raw;
    Ok(AlertRow {
        seq,
        id: AlertId::from_db(id),
        kind: kind_from(&kind)?,
        severity: severity_from(&severity)?,
        tenant_id,
        principal_id,
        summary,
        evidence: evidence_from(&evidence)?,
        dedup_key,
        observed_at,
        created_at,
        attempts: attempts_from(attempts)?,
        delivered_at,
        next_attempt_at,
        last_error,
    })
}

fn insert(c: &Connection, a: &NewAlert) -> rusqlite::Result<bool> {
    let inserted = c
        .prepare_cached(
            "INSERT INTO alerts (id, kind, severity, tenant_id, principal_id, summary, evidence, dedup_key,
                                 observed_at, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (dedup_key) DO NOTHING",
        )?
        .execute(params![
            a.id.as_str(),
            a.kind.as_str(),
            a.severity.as_str(),
            a.tenant_id,
            a.principal_id,
            a.summary,
            evidence_text(&a.evidence),
            a.dedup_key,
            a.observed_at,
            a.created_at,
            a.next_attempt_at
        ])?;
    Ok(inserted == 1)
}

impl SqliteStore {
    pub(in crate::db) async fn alert_cursor_claim(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let owner = owner.to_owned();
        let next: Option<i64> = self
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE alert_cursor SET owner = ?1, lease_until = ?2
                     WHERE id = 1 AND (owner = ?1 OR owner IS NULL OR lease_until < ?3) RETURNING next_index",
                )?
                .query_row(params![owner, now.saturating_add(lease_ms), now], |r| r.get(0))
                .optional()
            })
            .await?;
        next.map(crate::db::audit::u64_from).transpose()
    }

    pub(in crate::db) async fn alert_cursor_advance(
        &self,
        owner: &str,
        from: u64,
        to: u64,
        lease_until: i64,
        alerts: Vec<NewAlert>,
    ) -> Result<bool, StoreError> {
        let (owner, from, to) = (owner.to_owned(), i64_from(from)?, i64_from(to)?);
        self.write(move |c| {
            let moved = c
                .prepare_cached(
                    "UPDATE alert_cursor SET next_index = ?3, lease_until = ?4
                     WHERE id = 1 AND owner = ?1 AND next_index = ?2",
                )?
                .execute(params![owner, from, to, lease_until])?;
            if moved != 1 {
                return Ok(false);
            }
            for alert in &alerts {
                insert(c, alert)?;
            }
            Ok(true)
        })
        .await
    }

    pub(in crate::db) async fn alert_insert(&self, alert: NewAlert) -> Result<bool, StoreError> {
        self.write(move |c| insert(c, &alert)).await
    }

    pub(in crate::db) async fn alerts_find(&self, f: AlertFilter) -> Result<AlertPage, StoreError> {
        let after = f.after.unwrap_or(0);
        let since = f.since_ms.unwrap_or(i64::MIN);
        let kind = f.kind.map(|k| k.as_str());
        let rows: Vec<RawAlert> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alerts
                 WHERE seq > ?1 AND created_at >= ?2 AND (?3 IS NULL OR tenant_id = ?3) AND (?4 IS NULL OR kind = ?4)
                 ORDER BY seq LIMIT ?5"
            ))?
            .query_map(params![after, since, f.tenant_id, kind, f.limit], raw_alert)?
            .collect()
        })?;
        let alerts = rows.into_iter().map(alert_row).collect::<Result<Vec<_>, _>>()?;
        let next = (alerts.len() == f.limit as usize)
            .then(|| alerts.last().map(|a| a.seq))
            .flatten();
        Ok(AlertPage { alerts, next })
    }

    pub(in crate::db) async fn alerts_claim_due(
        &self,
        claim: &Claim,
        limit: u32,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let (claim, now) = (claim.clone(), claim.now);
        let rows: Vec<RawAlert> = self
            .write(move |c| {
                let rows: Vec<RawAlert> = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM alerts
                         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
                         ORDER BY next_attempt_at, seq LIMIT ?2"
                    ))?
                    .query_map(params![now, limit], raw_alert)?
                    .collect::<rusqlite::Result<_>>()?;
                let seqs: Vec<i64> = rows.iter().map(|row| row.0).collect();
                super::webhooks::claim_rows(c, "alerts", &seqs, &claim)?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(alert_row).collect()
    }

    pub(in crate::db) async fn alert_attempt(
        &self,
        id: &AlertId,
        claim: &Claim,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        let (id, claim) = (id.as_str().to_owned(), claim.clone());
        self.write(move |c| super::webhooks::record_attempt(c, "alerts", "id", &id, &claim, attempt))
            .await
    }
}
