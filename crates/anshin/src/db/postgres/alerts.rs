//! PostgreSQL storage of alerts and the detectors' cursor. Several nodes share
//! them: the cursor moves compare-and-swap under its lease, due deliveries are
//! claimed with `FOR UPDATE SKIP LOCKED` so two nodes never send the same one.

use tokio_postgres::Row;

use super::{PgStore, pg};
use crate::db::StoreError;
use crate::db::alerts::{
    AlertFilter, AlertPage, AlertRow, NewAlert, attempts_from, evidence_from, evidence_text, kind_from,
    severity_from,
};
use crate::db::audit::{i64_from, u64_from};
use crate::ids::AlertId;
use crate::webhook::{Attempt, Claim};

const COLUMNS: &str = "seq, id, kind, severity, tenant_id, principal_id, summary, evidence, dedup_key, \
                       observed_at, created_at, attempts, delivered_at, next_attempt_at, last_error";

const INSERT: &str = "INSERT INTO alerts (id, kind, severity, tenant_id, principal_id, summary, evidence, dedup_key,
                                          observed_at, created_at, next_attempt_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (dedup_key) DO NOTHING";

fn alert_row(r: &Row) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        seq: r.get(0),
        id: AlertId::from_db(r.get(1)),
        kind: kind_from(r.get(2))?,
        severity: severity_from(r.get(3))?,
        tenant_id: r.get(4),
        principal_id: r.get(5),
        summary: r.get(6),
        evidence: evidence_from(r.get(7))?,
        dedup_key: r.get(8),
        observed_at: r.get(9),
        created_at: r.get(10),
        attempts: attempts_from(i64::from(r.get::<_, i32>(11)))?,
        delivered_at: r.get(12),
        next_attempt_at: r.get(13),
        last_error: r.get(14),
    })
}

async fn insert(client: &impl deadpool_postgres::GenericClient, a: &NewAlert) -> Result<bool, StoreError> {
    let evidence = evidence_text(&a.evidence);
    let inserted = client
        .execute(
            INSERT,
            &[
                &a.id.as_str(),
                &a.kind.as_str(),
                &a.severity.as_str(),
                &a.tenant_id,
                &a.principal_id,
                &a.summary,
                &evidence,
                &a.dedup_key,
                &a.observed_at,
                &a.created_at,
                &a.next_attempt_at,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(inserted == 1)
}

impl PgStore {
    pub(in crate::db) async fn alert_cursor_claim(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let row = self
            .query_opt(
                "UPDATE alert_cursor SET owner = $1, lease_until = $2
                 WHERE id = 1 AND (owner = $1 OR owner IS NULL OR lease_until < $3) RETURNING next_index",
                &[&owner, &now.saturating_add(lease_ms), &now],
            )
            .await?;
        row.map(|r| u64_from(r.get(0))).transpose()
    }

    pub(in crate::db) async fn alert_cursor_advance(
        &self,
        owner: &str,
        from: u64,
        to: u64,
        lease_until: i64,
        alerts: Vec<NewAlert>,
    ) -> Result<bool, StoreError> {
        let (from, to) = (i64_from(from)?, i64_from(to)?);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let moved = tx
            .execute(
                "UPDATE alert_cursor SET next_index = $3, lease_until = $4
                 WHERE id = 1 AND owner = $1 AND next_index = $2",
                &[&owner, &from, &to, &lease_until],
            )
            .await
            .map_err(pg)?;
        if moved != 1 {
            return Ok(false);
        }
        for alert in &alerts {
            insert(&tx, alert).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    pub(in crate::db) async fn alert_insert(&self, alert: NewAlert) -> Result<bool, StoreError> {
        let client = self.client().await?;
        insert(&client, &alert).await
    }

    pub(in crate::db) async fn alerts_find(&self, f: AlertFilter) -> Result<AlertPage, StoreError> {
        let after = f.after.unwrap_or(0);
        let since = f.since_ms.unwrap_or(i64::MIN);
        let kind = f.kind.map(|k| k.as_str());
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM alerts
                     WHERE seq > $1 AND created_at >= $2 AND ($3::text IS NULL OR tenant_id = $3)
                       AND ($4::text IS NULL OR kind = $4)
                     ORDER BY seq LIMIT $5"
                ),
                &[&after, &since, &f.tenant_id, &kind, &i64::from(f.limit)],
            )
            .await?;
        let alerts = rows.iter().map(alert_row).collect::<Result<Vec<_>, _>>()?;
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
        // The rows as they were before the claim, as SQLite returns them.
        let rows = self
            .query(
                "WITH due AS (
                     SELECT seq, next_attempt_at AS was FROM alerts
                     WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                 UPDATE alerts a SET next_attempt_at = $2, claimed_by = $4 FROM due WHERE a.seq = due.seq
                 RETURNING a.seq, a.id, a.kind, a.severity, a.tenant_id, a.principal_id, a.summary, a.evidence,
                           a.dedup_key, a.observed_at, a.created_at, a.attempts, a.delivered_at, due.was,
                           a.last_error",
                &[&claim.now, &claim.until, &i64::from(limit), &claim.token],
            )
            .await?;
        let mut alerts = rows.iter().map(alert_row).collect::<Result<Vec<_>, _>>()?;
        alerts.sort_by_key(|a| (a.next_attempt_at, a.seq));
        Ok(alerts)
    }

    pub(in crate::db) async fn alert_attempt(
        &self,
        id: &AlertId,
        claim: &Claim,
        attempt: Attempt,
    ) -> Result<bool, StoreError> {
        super::webhooks::record_attempt(
            &self.client().await?,
            "alerts",
            "id",
            &id.as_str(),
            claim,
            attempt,
        )
        .await
    }

    pub(in crate::db) async fn audit_unsequenced(&self) -> Result<bool, StoreError> {
        // The partial index audit_pending makes this a probe, however many wait.
        Ok(self
            .query_opt("SELECT 1 FROM audit_entries WHERE idx IS NULL LIMIT 1", &[])
            .await?
            .is_some())
    }

    pub(in crate::db) async fn audit_entry_time(&self, index: u64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT time_ms FROM audit_entries WHERE idx = $1",
                &[&i64_from(index)?],
            )
            .await?
            .map(|r| r.get(0)))
    }
}
