//! PostgreSQL storage of the payment webhook endpoints and events. Several
//! nodes share them: due events are claimed with `FOR UPDATE SKIP LOCKED`
//! under the claim's token, so two nodes never claim the same attempt, and an
//! outcome is written only under the claim it was sent under.

use tokio_postgres::Row;

use super::{PgStore, pg};
use crate::db::StoreError;
use crate::db::webhooks::{
    ENDPOINT_REMOVED, EndpointRow, PaymentEventRow, attempts_from, events_from, events_text,
};
use crate::ids::{PaymentId, ShopId, TenantId};
use crate::webhook::{Attempt, Claim};

fn event_row(r: &Row) -> Result<PaymentEventRow, StoreError> {
    Ok(PaymentEventRow {
        seq: r.get(0),
        payment_id: PaymentId::from_db(r.get(1)),
        shop_id: ShopId::from_db(r.get(2)),
        status: r.get(3),
        decline_code: r.get(4),
        processor_reference: r.get(5),
        challenge_url: r.get(6),
        amount_captured: r.get(7),
        amount_refunded: r.get(8),
        created_at: r.get(9),
        attempts: attempts_from(i64::from(r.get::<_, i32>(10)))?,
    })
}

impl PgStore {
    pub(in crate::db) async fn webhook_insert(&self, e: EndpointRow) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                "INSERT INTO webhook_endpoints (shop_id, tenant_id, url, events, secret, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (shop_id) DO NOTHING",
                &[
                    &e.shop_id.as_str(),
                    &e.tenant_id.as_str(),
                    &e.url,
                    &events_text(&e.events),
                    &e.secret,
                    &e.created_at,
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    pub(in crate::db) async fn webhook_update(
        &self,
        shop: &ShopId,
        url: String,
        events: Vec<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE webhook_endpoints SET url = $2, events = $3, updated_at = $4 WHERE shop_id = $1",
                &[&shop.as_str(), &url, &events_text(&events), &now],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(in crate::db) async fn webhook_rotate(
        &self,
        shop: &ShopId,
        secret: Vec<u8>,
        previous: Vec<u8>,
        previous_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_until = $4, updated_at = $5
                 WHERE shop_id = $1",
                &[&shop.as_str(), &secret, &previous, &previous_until, &now],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(in crate::db) async fn webhook(&self, shop: &ShopId) -> Result<Option<EndpointRow>, StoreError> {
        self.query_opt(
            "SELECT shop_id, tenant_id, url, events, secret, previous_secret, previous_until, created_at, updated_at
             FROM webhook_endpoints WHERE shop_id = $1",
            &[&shop.as_str()],
        )
        .await?
        .map(|r| {
            Ok(EndpointRow {
                shop_id: ShopId::from_db(r.get(0)),
                tenant_id: TenantId::from_db(r.get(1)),
                url: r.get(2),
                events: events_from(r.get(3))?,
                secret: r.get(4),
                previous_secret: r.get(5),
                previous_until: r.get(6),
                created_at: r.get(7),
                updated_at: r.get(8),
            })
        })
        .transpose()
    }

    pub(in crate::db) async fn webhook_delete(&self, shop: &ShopId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let deleted = tx
            .execute(
                "DELETE FROM webhook_endpoints WHERE shop_id = $1",
                &[&shop.as_str()],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "UPDATE payment_events SET next_attempt_at = NULL, last_error = $2
             WHERE shop_id = $1 AND next_attempt_at IS NOT NULL",
            &[&shop.as_str(), &ENDPOINT_REMOVED],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(deleted == 1)
    }

    pub(in crate::db) async fn payment_events_claim_due(
        &self,
        claim: &Claim,
        limit: u32,
    ) -> Result<Vec<PaymentEventRow>, StoreError> {
        let rows = self
            .query(
                "WITH due AS (
                     SELECT seq, next_attempt_at AS was FROM payment_events e
                     WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
                       AND NOT EXISTS (SELECT 1 FROM payment_events p
                                       WHERE p.payment_id = e.payment_id AND p.seq < e.seq
                                         AND p.next_attempt_at IS NOT NULL)
                     ORDER BY next_attempt_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                 UPDATE payment_events a SET next_attempt_at = $2, claimed_by = $4 FROM due WHERE a.seq = due.seq
                 RETURNING a.seq, a.payment_id, a.shop_id, a.status, a.decline_code, a.processor_reference,
                           a.challenge_url, a.amount_captured, a.amount_refunded, a.created_at, a.attempts, due.was",
                &[&claim.now, &claim.until, &i64::from(limit), &claim.token],
            )
            .await?;
        let mut due = rows
            .iter()
            .map(|r| Ok((r.get::<_, i64>(11), event_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        due.sort_by_key(|(was, e)| (*was, e.seq));
        Ok(due.into_iter().map(|(_, e)| e).collect())
    }

    pub(in crate::db) async fn payment_event_attempts(
        &self,
        claim: &Claim,
        attempts: Vec<(i64, Attempt)>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let mut written = Vec::with_capacity(attempts.len());
        for (seq, attempt) in attempts {
            written.push(record_attempt(&tx, "payment_events", "seq", &seq, claim, attempt).await?);
        }
        tx.commit().await.map_err(pg)?;
        Ok(written)
    }

    pub(in crate::db) async fn payment_events_prune(&self, before: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM payment_events WHERE created_at < $1 AND next_attempt_at IS NULL",
            &[&before],
        )
        .await
    }
}

/// Records a delivery attempt on the row of `table` whose `key_column` is
/// `key` (alerts and payment events keep their delivery state alike), on
/// `client` (a pooled connection, or a transaction it commits with), if the
/// row still carries `claim` unexpired; true if written.
pub(super) async fn record_attempt(
    client: &impl deadpool_postgres::GenericClient,
    table: &str,
    key_column: &str,
    key: &(dyn tokio_postgres::types::ToSql + Sync),
    claim: &Claim,
    attempt: Attempt,
) -> Result<bool, StoreError> {
    let (delivered_at, next_attempt_at, error) = match attempt {
        Attempt::Delivered { at } => (Some(at), None, None),
        Attempt::Failed { retry_at, error } => (None, retry_at, Some(error)),
    };
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE {table} SET attempts = attempts + 1, delivered_at = $2, next_attempt_at = $3,
                                last_error = $4, claimed_by = NULL
             WHERE {key_column} = $1 AND claimed_by = $5 AND next_attempt_at > $6"
        ))
        .await
        .map_err(pg)?;
    let written = client
        .execute(
            &stmt,
            &[
                key,
                &delivered_at,
                &next_attempt_at,
                &error,
                &claim.token,
                &claim.at(),
            ],
        )
        .await
        .map_err(pg)?;
    Ok(written == 1)
}
