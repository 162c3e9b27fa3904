//! SQLite storage of the payment webhook endpoints and events. Every change
//! runs on the one writer thread, so a claim is a read and a write in the
//! same job.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::webhooks::{
    ENDPOINT_REMOVED, EndpointRow, PaymentEventRow, attempts_from, events_from, events_text,
};
use crate::ids::{PaymentId, ShopId, TenantId};
use crate::webhook::{Attempt, Claim};

const EVENT_COLUMNS: &str = "seq, payment_id, shop_id, status, decline_code, processor_reference, challenge_url, \
                             amount_captured, amount_refunded, created_at, attempts";

fn event_row(r: &Row<'_>) -> rusqlite::Result<(PaymentEventRow, i64)> {
    Ok((
        PaymentEventRow {
            seq: r.get(0)?,
            payment_id: PaymentId::from_db(r.get(1)?),
            shop_id: ShopId::from_db(r.get(2)?),
            status: r.get(3)?,
            decline_code: r.get(4)?,
            processor_reference: r.get(5)?,
            challenge_url: r.get(6)?,
            amount_captured: r.get(7)?,
            amount_refunded: r.get(8)?,
            created_at: r.get(9)?,
            attempts: 0,
        },
        r.get(10)?,
    ))
}

fn endpoint(c: &Connection, shop: &str) -> rusqlite::Result<Option<(EndpointRow, String)>> {
    c.prepare_cached(
        "SELECT shop_id, tenant_id, url, events, secret, previous_secret, previous_until, created_at, updated_at
         FROM webhook_endpoints WHERE shop_id = ?1",
    )?
    .query_row(params![shop], |r| {
        Ok((
            EndpointRow {
                shop_id: ShopId::from_db(r.get(0)?),
                tenant_id: TenantId::from_db(r.get(1)?),
                url: r.get(2)?,
                events: Vec::new(),
                secret: r.get(4)?,
                previous_secret: r.get(5)?,
                previous_until: r.get(6)?,
                created_at: r.get(7)?,
                updated_at: r.get(8)?,
            },
            r.get::<_, String>(3)?,
        ))
    })
    .optional()
}

/// Marks the rows of `table` whose `seq` is in `seqs` as claimed by `claim`
/// (alerts and payment events keep their delivery state alike): its token,
/// and its expiry as their next attempt.
pub(super) fn claim_rows(c: &Connection, table: &str, seqs: &[i64], claim: &Claim) -> rusqlite::Result<()> {
    let mut mark = c.prepare_cached(&format!(
        "UPDATE {table} SET next_attempt_at = ?2, claimed_by = ?3 WHERE seq = ?1"
    ))?;
    for seq in seqs {
        mark.execute(params![seq, claim.until, claim.token])?;
    }
    Ok(())
}

/// Records a delivery attempt on the row of `table` whose `key_column` is
/// `key`, if it still carries `claim` unexpired; true if written.
pub(super) fn record_attempt(
    c: &Connection,
    table: &str,
    key_column: &str,
    key: &dyn rusqlite::ToSql,
    claim: &Claim,
    attempt: Attempt,
) -> rusqlite::Result<bool> {
    let (delivered_at, next_attempt_at, error) = match attempt {
        Attempt::Delivered { at } => (Some(at), None, None),
        Attempt::Failed { retry_at, error } => (None, retry_at, Some(error)),
    };
    let written = c
        .prepare_cached(&format!(
            "UPDATE {table} SET attempts = attempts + 1, delivered_at = ?2, next_attempt_at = ?3,
                                last_error = ?4, claimed_by = NULL
             WHERE {key_column} = ?1 AND claimed_by = ?5 AND next_attempt_at > ?6"
        ))?
        .execute(params![
            key,
            delivered_at,
            next_attempt_at,
            error,
            claim.token,
            claim.at()
        ])?;
    Ok(written == 1)
}

impl SqliteStore {
    pub(in crate::db) async fn webhook_insert(&self, e: EndpointRow) -> Result<bool, StoreError> {
        self.write(move |c| {
            let inserted = c
                .prepare_cached(
                    "INSERT INTO webhook_endpoints (shop_id, tenant_id, url, events, secret, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (shop_id) DO NOTHING",
                )?
                .execute(params![
                    e.shop_id.as_str(),
                    e.tenant_id.as_str(),
                    e.url,
                    events_text(&e.events),
                    e.secret,
                    e.created_at
                ])?;
            Ok(inserted == 1)
        })
        .await
    }

    pub(in crate::db) async fn webhook_update(
        &self,
        shop: &ShopId,
        url: String,
        events: Vec<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let shop = shop.as_str().to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE webhook_endpoints SET url = ?2, events = ?3, updated_at = ?4 WHERE shop_id = ?1",
                )?
                .execute(params![shop, url, events_text(&events), now])?;
            Ok(changed == 1)
        })
        .await
    }

    pub(in crate::db) async fn webhook_rotate(
        &self,
        shop: &ShopId,
        secret: Vec<u8>,
        previous: Vec<u8>,
        previous_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let shop = shop.as_str().to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE webhook_endpoints SET secret = ?2, previous_secret = ?3, previous_until = ?4,
                                                  updated_at = ?5
                     WHERE shop_id = ?1",
                )?
                .execute(params![shop, secret, previous, previous_until, now])?;
            Ok(changed == 1)
        })
        .await
    }

    pub(in crate::db) async fn webhook(&self, shop: &ShopId) -> Result<Option<EndpointRow>, StoreError> {
        let Some((mut row, events)) = self.read(|c| endpoint(c, shop.as_str()))? else {
            return Ok(None);
        };
        row.events = events_from(&events)?;
        Ok(Some(row))
    }

    pub(in crate::db) async fn webhook_delete(&self, shop: &ShopId) -> Result<bool, StoreError> {
        let shop = shop.as_str().to_owned();
        self.write(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM webhook_endpoints WHERE shop_id = ?1")?
                .execute(params![shop])?;
            c.prepare_cached(
                "UPDATE payment_events SET next_attempt_at = NULL, last_error = ?2
                 WHERE shop_id = ?1 AND next_attempt_at IS NOT NULL",
            )?
            .execute(params![shop, ENDPOINT_REMOVED])?;
            Ok(deleted == 1)
        })
        .await
    }

    pub(in crate::db) async fn payment_events_claim_due(
        &self,
        claim: &Claim,
        limit: u32,
    ) -> Result<Vec<PaymentEventRow>, StoreError> {
        let (claim, now) = (claim.clone(), claim.now);
        let rows = self
            .write(move |c| {
                let rows: Vec<(PaymentEventRow, i64)> = c
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM payment_events e
                         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
                           AND NOT EXISTS (SELECT 1 FROM payment_events p
                                           WHERE p.payment_id = e.payment_id AND p.seq < e.seq
                                             AND p.next_attempt_at IS NOT NULL)
                         ORDER BY next_attempt_at, seq LIMIT ?2"
                    ))?
                    .query_map(params![now, limit], event_row)?
                    .collect::<rusqlite::Result<_>>()?;
                let seqs: Vec<i64> = rows.iter().map(|(row, _)| row.seq).collect();
                claim_rows(c, "payment_events", &seqs, &claim)?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(row, attempts)| {
                Ok(PaymentEventRow {
                    attempts: attempts_from(attempts)?,
                    ..row
                })
            })
            .collect()
    }

    pub(in crate::db) async fn payment_event_attempts(
        &self,
        claim: &Claim,
        attempts: Vec<(i64, Attempt)>,
    ) -> Result<Vec<bool>, StoreError> {
        let claim = claim.clone();
        self.write(move |c| {
            attempts
                .into_iter()
                .map(|(seq, attempt)| record_attempt(c, "payment_events", "seq", &seq, &claim, attempt))
                .collect()
        })
        .await
    }

    pub(in crate::db) async fn payment_events_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            let deleted = c
                .prepare_cached(
                    "DELETE FROM payment_events WHERE created_at < ?1 AND next_attempt_at IS NULL",
                )?
                .execute(params![before])?;
            Ok(deleted as u64)
        })
        .await
    }
}
