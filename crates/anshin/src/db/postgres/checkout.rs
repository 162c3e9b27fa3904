//! PostgreSQL storage of checkout sessions. Single use holds across nodes: a
//! card is attached by one conditional UPDATE, which only one node can win.

use std::sync::LazyLock;

use tokio_postgres::Row;

use super::audit::{EntryColumns, entry_ctes};
use super::{PgStore, card_query, card_row, pg};
use crate::db::audit::NewAuditEntry;
use crate::db::checkout::{
    CvcHoldRow, Idempotency, PaymentFinish, PaymentReads, PaymentRow, PaymentStart, PaymentState, RouteRow,
    SessionCard, SessionRow, Started, idempotency, session_card, session_status,
};
use crate::db::{Scope, StoreError};
use crate::ids::{CardToken, CheckoutSessionId, PaymentId, PrincipalId, ShopId, TenantId};

const SESSION_COLUMNS: &str = "id, tenant_id, shop_id, created_by, amount, currency, order_ref, allowed_origin, \
                               locale, status, card_token, card_brand, card_last4, payment_id, created_at, expires_at";

fn session_row(r: &Row) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id: CheckoutSessionId::from_db(r.get(0)),
        tenant_id: TenantId::from_db(r.get(1)),
        shop_id: r.get::<_, Option<String>>(2).map(ShopId::from_db),
        created_by: PrincipalId::from_db(r.get(3)),
        amount: r.get(4),
        currency: r.get(5),
        order_ref: r.get(6),
        allowed_origin: r.get(7),
        locale: r.get(8),
        status: r.get(9),
        card: session_card(r.get(10), r.get(11), r.get(12))?,
        payment_id: r.get::<_, Option<String>>(13).map(PaymentId::from_db),
        created_at: r.get(14),
        expires_at: r.get(15),
    })
}

impl PgStore {
    pub(in crate::db) async fn checkout_insert(&self, s: SessionRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO checkout_sessions (id, tenant_id, shop_id, created_by, amount, currency, order_ref,
                 allowed_origin, locale, status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &s.id.as_str(),
                &s.tenant_id.as_str(),
                &s.shop_id.as_ref().map(ShopId::as_str),
                &s.created_by.as_str(),
                &s.amount,
                &s.currency,
                &s.order_ref,
                &s.allowed_origin,
                &s.locale,
                &s.status,
                &s.created_at,
                &s.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn checkout_session(
        &self,
        id: &CheckoutSessionId,
    ) -> Result<Option<SessionRow>, StoreError> {
        self.query_opt(
            &format!("SELECT {SESSION_COLUMNS} FROM checkout_sessions WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .as_ref()
        .map(session_row)
        .transpose()
    }

    pub(in crate::db) async fn checkout_attach_card(
        &self,
        id: &CheckoutSessionId,
        card: SessionCard,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE checkout_sessions SET status = $2, card_token = $3, card_brand = $4, card_last4 = $5
                 WHERE id = $1 AND status = $6 AND expires_at > $7",
                &[
                    &id.as_str(),
                    &session_status::CARD_SUBMITTED,
                    &card.token.as_str(),
                    &card.brand,
                    &card.last4,
                    &session_status::OPEN,
                    &now,
                ],
            )
            .await?;
        Ok(changed == 1)
    }
}

const PAYMENT_COLUMNS: &str = "id, tenant_id, shop_id, created_by, session_id, card_token, route, amount, currency, \
                               capture, status, decline_code, processor_reference, three_ds_id, challenge_url, \
                               amount_captured, amount_refunded, created_at, updated_at";

fn payment_row(r: &Row) -> PaymentRow {
    PaymentRow {
        id: PaymentId::from_db(r.get(0)),
        tenant_id: TenantId::from_db(r.get(1)),
        shop_id: r.get::<_, Option<String>>(2).map(ShopId::from_db),
        created_by: PrincipalId::from_db(r.get(3)),
        session_id: r.get::<_, Option<String>>(4).map(CheckoutSessionId::from_db),
        card_token: CardToken::from_db(r.get(5)),
        route: r.get(6),
        amount: r.get(7),
        currency: r.get(8),
        capture: r.get(9),
        state: PaymentState {
            status: r.get(10),
            decline_code: r.get(11),
            processor_reference: r.get(12),
            three_ds_id: r.get(13),
            challenge_url: r.get(14),
            amount_captured: r.get(15),
            amount_refunded: r.get(16),
            updated_at: r.get(18),
        },
        created_at: r.get(17),
    }
}

impl PgStore {
    pub(in crate::db) async fn route_put(&self, route: RouteRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO outbound_routes (tenant_id, name, kind, config, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, name) DO UPDATE SET kind = $3, config = $4, updated_at = $5",
            &[
                &route.tenant_id.as_str(),
                &route.name,
                &route.kind,
                &route.config,
                &route.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn routes(&self, tenant: &TenantId) -> Result<Vec<RouteRow>, StoreError> {
        Ok(self
            .query(
                "SELECT tenant_id, name, kind, config, updated_at FROM outbound_routes WHERE tenant_id = $1 ORDER BY name",
                &[&tenant.as_str()],
            )
            .await?
            .iter()
            .map(|r| RouteRow {
                tenant_id: TenantId::from_db(r.get(0)),
                name: r.get(1),
                kind: r.get(2),
                config: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    pub(in crate::db) async fn idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<Idempotency>, StoreError> {
        self.query_opt(IDEMPOTENCY_ROW, &[&tenant.as_str(), &key])
            .await?
            .map(|r| idempotency_of(&r))
            .transpose()
    }

    pub(in crate::db) async fn payment_reads(
        &self,
        tenant: &TenantId,
        key: &str,
        route: &str,
        card: Option<(Scope<'_>, &CardToken)>,
    ) -> Result<PaymentReads, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT i.request_hash, i.payment_id, i.status_code, i.response,
                        r.tenant_id, r.name, r.kind, r.config, r.updated_at, c.*
                 FROM (SELECT 1) AS one
                 LEFT JOIN payment_idempotency i ON i.tenant_id = $1 AND i.key = $2
                 LEFT JOIN outbound_routes r ON r.tenant_id = $1 AND r.name = $3
                 LEFT JOIN LATERAL ({}) AS c ON true",
                card_query("$4", "$5", "$6")
            )
        });
        let (scope, token) = card.map_or((None, None), |(s, t)| (Some(s), Some(t.as_str())));
        let row = self
            .query_opt(
                &SQL,
                &[
                    &tenant.as_str(),
                    &key,
                    &route,
                    &token,
                    &scope.and_then(|s| s.tenant.map(TenantId::as_str)),
                    &scope.and_then(|s| s.shop.map(ShopId::as_str)),
                ],
            )
            .await?
            .ok_or(StoreError::Corrupt("a query of one row gave none"))?;
        let held = match row.get::<_, Option<Vec<u8>>>(0) {
            Some(hash) => Some(idempotency(
                hash,
                row.get(1),
                row.get::<_, Option<i32>>(2).map(i64::from),
                row.get(3),
            )?),
            None => None,
        };
        let route = row.get::<_, Option<String>>(4).map(|t| RouteRow {
            tenant_id: TenantId::from_db(t),
            name: row.get(5),
            kind: row.get(6),
            config: row.get(7),
            updated_at: row.get(8),
        });
        let card = match token {
            Some(_) => Some(match row.get::<_, Option<String>>(9) {
                Some(_) => Some(card_row(&row, 9)?),
                None => None,
            }),
            None => None,
        };
        Ok(PaymentReads { held, route, card })
    }

    pub(in crate::db) async fn payment_start(
        &self,
        start: PaymentStart,
        entry: NewAuditEntry,
    ) -> Result<Started, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                // One statement, so one transaction and one round trip. The
                // session row is locked before the key is claimed, and the
                // claim (or this request's unfinished first attempt) is what
                // every write depends on: all of it is written, or nothing.
                "WITH held AS MATERIALIZED (
                     SELECT request_hash, payment_id, status_code, response FROM payment_idempotency
                     WHERE tenant_id = $10 AND key = $11),
                 session AS MATERIALIZED (
                     SELECT id FROM checkout_sessions
                     WHERE id = $15::text AND status = $25 AND (payment_id IS NULL OR payment_id = $13)
                     FOR UPDATE),
                 payable AS MATERIALIZED (
                     SELECT 1 WHERE $15::text IS NULL OR EXISTS (SELECT 1 FROM session)),
                 claim AS (
                     INSERT INTO payment_idempotency (tenant_id, key, request_hash, payment_id, created_at)
                     SELECT $10::text, $11::text, $12::bytea, $13::text, $14::bigint FROM payable
                     ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1),
                 go AS MATERIALIZED (
                     SELECT 1 FROM claim
                     UNION ALL
                     SELECT 1 FROM held, payable
                     WHERE (held.status_code IS NULL OR held.response IS NULL)
                       AND held.request_hash = $12 AND held.payment_id = $13),
                 bind AS (
                     UPDATE checkout_sessions SET payment_id = $13
                     WHERE id = $15 AND status = $25 AND (payment_id IS NULL OR payment_id = $13)
                       AND EXISTS (SELECT 1 FROM go)),
                 payment AS (
                     INSERT INTO payments (id, tenant_id, shop_id, created_by, session_id, card_token, route, amount,
                         currency, capture, status, created_at, updated_at)
                     SELECT $13, $10, $16::text, $17::text, $15, $18::text, $19::text, $20::bigint, $21::text, $22::boolean,
                         $23::text, $24::bigint, $24
                     WHERE $26::boolean AND EXISTS (SELECT 1 FROM go)
                     ON CONFLICT (id) DO NOTHING),
                 {}
                 SELECT EXISTS (SELECT 1 FROM go), EXISTS (SELECT 1 FROM payable),
                        held.request_hash, held.payment_id, held.status_code, held.response
                 FROM (SELECT 1) AS one LEFT JOIN held ON true",
                entry_ctes("EXISTS (SELECT 1 FROM go)")
            )
        });
        let entries = EntryColumns::new(vec![entry]);
        let p = start.new.as_ref();
        let session = p
            .and_then(|p| p.session_id.as_ref())
            .map(CheckoutSessionId::as_str);
        let [e1, e2, e3, e4, e5, e6, e7, e8, e9] = entries.params();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 26] = [
            e1,
            e2,
            e3,
            e4,
            e5,
            e6,
            e7,
            e8,
            e9,
            &start.tenant.as_str(),
            &start.key,
            &start.request_hash,
            &start.payment.as_str(),
            &start.now,
            &session,
            &p.and_then(|p| p.shop_id.as_ref()).map(ShopId::as_str),
            &p.map(|p| p.created_by.as_str()),
            &p.map(|p| p.card_token.as_str()),
            &p.map(|p| p.route.as_str()),
            &p.map(|p| p.amount),
            &p.map(|p| p.currency.as_str()),
            &p.map(|p| p.capture),
            &p.map(|p| p.state.status.as_str()),
            &p.map(|p| p.created_at),
            &session_status::CARD_SUBMITTED,
            &p.is_some(),
        ];
        let client = self.client().await?;
        let stmt = client.prepare_cached(&SQL).await.map_err(pg)?;
        for attempt in 0..2 {
            let row = client.query_one(&stmt, &params).await.map_err(pg)?;
            if row.get::<_, bool>(0) {
                return Ok(Started::Started);
            }
            let payable: bool = row.get(1);
            match row.get::<_, Option<Vec<u8>>>(2) {
                Some(hash) => {
                    let held = idempotency(
                        hash,
                        row.get(3),
                        row.get::<_, Option<i32>>(4).map(i64::from),
                        row.get(5),
                    )?;
                    // Held by this request's unfinished attempt: only the session stopped it.
                    return Ok(if held.unfinished(&start.request_hash, &start.payment) {
                        Started::SessionUsed
                    } else {
                        Started::Taken(held)
                    });
                }
                // Not in this statement's snapshot: a request that claimed
                // the key while this one waited (for the session's row or the
                // key) shows in the second run, and is answered before the
                // session, as when the key is found held at once.
                None if attempt == 0 => {}
                None if !payable => return Ok(Started::SessionUsed),
                None => break,
            }
        }
        Err(StoreError::Unavailable(
            "an idempotency key changed while it was claimed; retry".into(),
        ))
    }

    pub(in crate::db) async fn payment_finish(&self, f: PaymentFinish) -> Result<(), StoreError> {
        // One statement, so one transaction; the parts for an absent session
        // or key match no row.
        let s = &f.state;
        let (session, complete) = f
            .session
            .as_ref()
            .map_or((None, false), |(id, complete)| (Some(id.as_str()), *complete));
        let (tenant, key, response) = f.answer.as_ref().map_or((None, None, None), |(t, k, r)| {
            (Some(t.as_str()), Some(k.as_str()), Some(r.as_str()))
        });
        self.execute(
            "WITH payment AS (
                 UPDATE payments SET status = $2, decline_code = $3, processor_reference = $4, three_ds_id = $5,
                     challenge_url = $6, amount_captured = $7, amount_refunded = $8, updated_at = $9
                 WHERE id = $1),
             cvc AS (DELETE FROM cvc_holds WHERE session_id = $10),
             session AS (UPDATE checkout_sessions SET status = $12 WHERE id = $10 AND $11),
             answer AS (UPDATE payment_idempotency SET status_code = 200, response = $15
                        WHERE tenant_id = $13 AND key = $14)
             SELECT 1",
            &[
                &f.payment.as_str(),
                &s.status,
                &s.decline_code,
                &s.processor_reference,
                &s.three_ds_id,
                &s.challenge_url,
                &s.amount_captured,
                &s.amount_refunded,
                &s.updated_at,
                &session,
                &complete,
                &session_status::COMPLETED,
                &tenant,
                &key,
                &response,
            ],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentRow>, StoreError> {
        Ok(self
            .query_opt(
                &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"),
                &[&id.as_str()],
            )
            .await?
            .as_ref()
            .map(payment_row))
    }

    pub(in crate::db) async fn payments(&self, ids: Vec<PaymentId>) -> Result<Vec<PaymentRow>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(PaymentId::as_str).collect();
        Ok(self
            .query(
                &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ANY($1)"),
                &[&ids],
            )
            .await?
            .iter()
            .map(payment_row)
            .collect())
    }
}

const IDEMPOTENCY_ROW: &str =
    "SELECT request_hash, payment_id, status_code, response FROM payment_idempotency
                               WHERE tenant_id = $1 AND key = $2";

fn idempotency_of(r: &Row) -> Result<Idempotency, StoreError> {
    idempotency(
        r.get(0),
        r.get(1),
        r.get::<_, Option<i32>>(2).map(i64::from),
        r.get(3),
    )
}

impl PgStore {
    pub(in crate::db) async fn cvc_hold_put(&self, h: CvcHoldRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO cvc_holds (session_id, epoch, creator, sealed, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id) DO UPDATE SET epoch = $2, creator = $3, sealed = $4, expires_at = $5",
            &[&h.session_id.as_str(), &h.epoch, &h.creator, &h.sealed, &h.expires_at],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn cvc_hold(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<Option<CvcHoldRow>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT epoch, creator, sealed, expires_at FROM cvc_holds WHERE session_id = $1",
                &[&session.as_str()],
            )
            .await?
            .map(|r| CvcHoldRow {
                session_id: session.clone(),
                epoch: r.get(0),
                creator: r.get(1),
                sealed: r.get(2),
                expires_at: r.get(3),
            }))
    }

    pub(in crate::db) async fn cvc_hold_delete(&self, session: &CheckoutSessionId) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM cvc_holds WHERE session_id = $1",
            &[&session.as_str()],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn cvc_node_put(
        &self,
        node: &str,
        epoch: i64,
        public_key: Vec<u8>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO cvc_nodes (node_id, epoch, public_key, seen_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node_id, epoch) DO UPDATE SET seen_at = $4",
            &[&node, &epoch, &public_key, &now],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn cvc_nodes(
        &self,
        epoch: i64,
        since: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .query(
                "SELECT node_id, public_key FROM cvc_nodes WHERE epoch = $1 AND seen_at >= $2",
                &[&epoch, &since],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub(in crate::db) async fn cvc_key_holders(
        &self,
        epoch: i64,
        creator: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query(
                "SELECT node_id FROM cvc_epoch_keys WHERE epoch = $1 AND creator = $2",
                &[&epoch, &creator],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(in crate::db) async fn cvc_key_put(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO cvc_epoch_keys (epoch, creator, node_id, sealed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (epoch, creator, node_id) DO NOTHING",
            &[&epoch, &creator, &node, &sealed],
        )
        .await?;
        Ok(())
    }

    pub(in crate::db) async fn cvc_key(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT sealed FROM cvc_epoch_keys WHERE epoch = $1 AND creator = $2 AND node_id = $3",
                &[&epoch, &creator, &node],
            )
            .await?
            .map(|r| r.get(0)))
    }

    pub(in crate::db) async fn cvc_expire(
        &self,
        now: i64,
        first_live_epoch: i64,
        stale_before: i64,
    ) -> Result<(), StoreError> {
        self.execute("DELETE FROM cvc_holds WHERE expires_at <= $1", &[&now])
            .await?;
        self.execute(
            "DELETE FROM cvc_epoch_keys WHERE epoch < $1",
            &[&first_live_epoch],
        )
        .await?;
        self.execute(
            "DELETE FROM cvc_nodes WHERE epoch < $1 OR seen_at < $2",
            &[&first_live_epoch, &stale_before],
        )
        .await?;
        Ok(())
    }
}
