//! SQLite storage of checkout sessions.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, audit};
use crate::db::StoreError;
use crate::db::audit::NewAuditEntry;
use crate::db::checkout::{
    CvcHoldRow, Idempotency, PaymentFinish, PaymentRow, PaymentStart, PaymentState, RouteRow, SessionCard,
    SessionRow, Started, idempotency, session_card, session_status,
};
use crate::ids::{CardToken, CheckoutSessionId, PaymentId, PrincipalId, ShopId, TenantId};

const SESSION_COLUMNS: &str = "id, tenant_id, shop_id, created_by, amount, currency, order_ref, allowed_origin, \
                               locale, status, card_token, card_brand, card_last4, payment_id, created_at, expires_at";

type RawSession = (
    (
        String,
        String,
        Option<String>,
        String,
        i64,
        String,
        String,
        String,
    ),
    (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        i64,
    ),
);

fn raw_session(r: &Row<'_>) -> rusqlite::Result<RawSession> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ),
        (
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
            r.get(15)?,
        ),
    ))
}

fn session_row(raw: RawSession) -> Result<SessionRow, StoreError> {
    let (
        (id, tenant_id, shop_id, created_by, amount, currency, order_ref, allowed_origin),
        (locale, status, card_token, card_brand, card_last4, payment_id, created_at, expires_at),
    ) = raw;
    Ok(SessionRow {
        id: CheckoutSessionId::from_db(id),
        tenant_id: TenantId::from_db(tenant_id),
        shop_id: shop_id.map(ShopId::from_db),
        created_by: PrincipalId::from_db(created_by),
        amount,
        currency,
        order_ref,
        allowed_origin,
        locale,
        status,
        card: session_card(card_token, card_brand, card_last4)?,
        payment_id: payment_id.map(PaymentId::from_db),
        created_at,
        expires_at,
    })
}

impl SqliteStore {
    pub(in crate::db) async fn checkout_insert(&self, s: SessionRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO checkout_sessions (id, tenant_id, shop_id, created_by, amount, currency, order_ref,
                     allowed_origin, locale, status, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                s.id.as_str(),
                s.tenant_id.as_str(),
                s.shop_id.as_ref().map(ShopId::as_str),
                s.created_by.as_str(),
                s.amount,
                s.currency,
                s.order_ref,
                s.allowed_origin,
                s.locale,
                s.status,
                s.created_at,
                s.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn checkout_session(
        &self,
        id: &CheckoutSessionId,
    ) -> Result<Option<SessionRow>, StoreError> {
        let raw = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM checkout_sessions WHERE id = ?1"
            ))?
            .query_row(params![id.as_str()], raw_session)
            .optional()
        })?;
        raw.map(session_row).transpose()
    }

    pub(in crate::db) async fn checkout_attach_card(
        &self,
        id: &CheckoutSessionId,
        card: SessionCard,
        now: i64,
    ) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE checkout_sessions SET status = ?2, card_token = ?3, card_brand = ?4, card_last4 = ?5
                     WHERE id = ?1 AND status = ?6 AND expires_at > ?7",
                )?
                .execute(params![
                    id,
                    session_status::CARD_SUBMITTED,
                    card.token.as_str(),
                    card.brand,
                    card.last4,
                    session_status::OPEN,
                    now
                ])?;
            Ok(changed == 1)
        })
        .await
    }
}

const PAYMENT_COLUMNS: &str = "id, tenant_id, shop_id, created_by, session_id, card_token, route, amount, currency, \
                               capture, status, decline_code, processor_reference, three_ds_id, challenge_url, \
                               amount_captured, amount_refunded, created_at, updated_at";

fn payment_row(r: &Row<'_>) -> rusqlite::Result<PaymentRow> {
    Ok(PaymentRow {
        id: PaymentId::from_db(r.get(0)?),
        tenant_id: TenantId::from_db(r.get(1)?),
        shop_id: r.get::<_, Option<String>>(2)?.map(ShopId::from_db),
        created_by: PrincipalId::from_db(r.get(3)?),
        session_id: r.get::<_, Option<String>>(4)?.map(CheckoutSessionId::from_db),
        card_token: CardToken::from_db(r.get(5)?),
        route: r.get(6)?,
        amount: r.get(7)?,
        currency: r.get(8)?,
        capture: r.get(9)?,
        state: PaymentState {
            status: r.get(10)?,
            decline_code: r.get(11)?,
            processor_reference: r.get(12)?,
            three_ds_id: r.get(13)?,
            challenge_url: r.get(14)?,
            amount_captured: r.get(15)?,
            amount_refunded: r.get(16)?,
            updated_at: r.get(18)?,
        },
        created_at: r.get(17)?,
    })
}

impl SqliteStore {
    pub(in crate::db) async fn route_put(&self, route: RouteRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO outbound_routes (tenant_id, name, kind, config, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET kind = ?3, config = ?4, updated_at = ?5",
            )?
            .execute(params![
                route.tenant_id.as_str(),
                route.name,
                route.kind,
                route.config,
                route.updated_at
            ])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn routes(&self, tenant: &TenantId) -> Result<Vec<RouteRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT tenant_id, name, kind, config, updated_at FROM outbound_routes WHERE tenant_id = ?1 ORDER BY name",
            )?
            .query_map(params![tenant.as_str()], |r| {
                Ok(RouteRow {
                    tenant_id: TenantId::from_db(r.get(0)?),
                    name: r.get(1)?,
                    kind: r.get(2)?,
                    config: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    pub(in crate::db) async fn idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<Idempotency>, StoreError> {
        self.read(|c| idempotency_row(c, tenant.as_str(), key))?
            .map(|(hash, payment, code, response)| idempotency(hash, payment, code, response))
            .transpose()
    }

    pub(in crate::db) async fn payment_start(
        &self,
        start: PaymentStart,
        entry: NewAuditEntry,
    ) -> Result<Started, StoreError> {
        // The one writer runs this whole, so the key read here cannot change
        // before the writes below.
        let raw = self
            .write(move |c| {
                let tenant = start.tenant.as_str();
                let held = idempotency_row(c, tenant, &start.key)?;
                if let Some(raw) = held.clone() {
                    let (hash, payment, code, _) = &raw;
                    // Only a retry of the same request's unfinished attempt goes on.
                    if code.is_some() || *hash != start.request_hash || payment != start.payment.as_str() {
                        return Ok(Err(raw));
                    }
                }
                if let Some(p) = &start.new {
                    if let Some(session) = &p.session_id {
                        let bound = c
                            .prepare_cached(
                                "UPDATE checkout_sessions SET payment_id = ?2
                                 WHERE id = ?1 AND status = ?3 AND (payment_id IS NULL OR payment_id = ?2)",
                            )?
                            .execute(params![session.as_str(), p.id.as_str(), session_status::CARD_SUBMITTED])?;
                        if bound != 1 {
                            return Ok(Ok(Started::SessionUsed));
                        }
                    }
                    c.prepare_cached(
                        "INSERT INTO payments (id, tenant_id, shop_id, created_by, session_id, card_token, route, amount,
                             currency, capture, status, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) ON CONFLICT (id) DO NOTHING",
                    )?
                    .execute(params![
                        p.id.as_str(),
                        p.tenant_id.as_str(),
                        p.shop_id.as_ref().map(ShopId::as_str),
                        p.created_by.as_str(),
                        p.session_id.as_ref().map(CheckoutSessionId::as_str),
                        p.card_token.as_str(),
                        p.route,
                        p.amount,
                        p.currency,
                        p.capture,
                        p.state.status,
                        p.created_at
                    ])?;
                }
                if held.is_none() {
                    c.prepare_cached(
                        "INSERT INTO payment_idempotency (tenant_id, key, request_hash, payment_id, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![tenant, start.key, start.request_hash, start.payment.as_str(), start.now])?;
                }
                audit::insert_outbox(c, &entry)?;
                Ok(Ok(Started::Started))
            })
            .await?;
        match raw {
            Ok(started) => Ok(started),
            Err((hash, payment, code, response)) => {
                Ok(Started::Taken(idempotency(hash, payment, code, response)?))
            }
        }
    }

    pub(in crate::db) async fn payment_finish(&self, f: PaymentFinish) -> Result<(), StoreError> {
        self.write(move |c| {
            let s = &f.state;
            c.prepare_cached(
                "UPDATE payments SET status = ?2, decline_code = ?3, processor_reference = ?4, three_ds_id = ?5,
                     challenge_url = ?6, amount_captured = ?7, amount_refunded = ?8, updated_at = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                f.payment.as_str(),
                s.status,
                s.decline_code,
                s.processor_reference,
                s.three_ds_id,
                s.challenge_url,
                s.amount_captured,
                s.amount_refunded,
                s.updated_at
            ])?;
            if let Some((session, complete)) = &f.session {
                c.prepare_cached("DELETE FROM cvc_holds WHERE session_id = ?1")?
                    .execute(params![session.as_str()])?;
                if *complete {
                    c.prepare_cached("UPDATE checkout_sessions SET status = ?2 WHERE id = ?1")?
                        .execute(params![session.as_str(), session_status::COMPLETED])?;
                }
            }
            if let Some((tenant, key, response)) = &f.answer {
                c.prepare_cached(
                    "UPDATE payment_idempotency SET status_code = 200, response = ?3 WHERE tenant_id = ?1 AND key = ?2",
                )?
                .execute(params![tenant.as_str(), key, response])?;
            }
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"))?
                .query_row(params![id.as_str()], payment_row)
                .optional()
        })
    }

    pub(in crate::db) async fn payments(&self, ids: Vec<PaymentId>) -> Result<Vec<PaymentRow>, StoreError> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"))?;
            let mut rows = Vec::with_capacity(ids.len());
            for id in &ids {
                rows.extend(stmt.query_row(params![id.as_str()], payment_row).optional()?);
            }
            Ok(rows)
        })
    }
}

type RawIdempotency = (Vec<u8>, String, Option<i64>, Option<String>);

fn idempotency_row(c: &Connection, tenant: &str, key: &str) -> rusqlite::Result<Option<RawIdempotency>> {
    c.prepare_cached(
        "SELECT request_hash, payment_id, status_code, response FROM payment_idempotency
         WHERE tenant_id = ?1 AND key = ?2",
    )?
    .query_row(params![tenant, key], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .optional()
}

impl SqliteStore {
    pub(in crate::db) async fn cvc_hold_put(&self, h: CvcHoldRow) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO cvc_holds (session_id, epoch, creator, sealed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (session_id) DO UPDATE SET epoch = ?2, creator = ?3, sealed = ?4, expires_at = ?5",
            )?
            .execute(params![h.session_id.as_str(), h.epoch, h.creator, h.sealed, h.expires_at])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn cvc_hold(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<Option<CvcHoldRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT epoch, creator, sealed, expires_at FROM cvc_holds WHERE session_id = ?1",
            )?
            .query_row(params![session.as_str()], |r| {
                Ok(CvcHoldRow {
                    session_id: session.clone(),
                    epoch: r.get(0)?,
                    creator: r.get(1)?,
                    sealed: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()
        })
    }

    pub(in crate::db) async fn cvc_hold_delete(&self, session: &CheckoutSessionId) -> Result<(), StoreError> {
        let session = session.as_str().to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM cvc_holds WHERE session_id = ?1")?
                .execute(params![session])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn cvc_node_put(
        &self,
        node: &str,
        epoch: i64,
        public_key: Vec<u8>,
        now: i64,
    ) -> Result<(), StoreError> {
        let node = node.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO cvc_nodes (node_id, epoch, public_key, seen_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (node_id, epoch) DO UPDATE SET seen_at = ?4",
            )?
            .execute(params![node, epoch, public_key, now])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn cvc_nodes(
        &self,
        epoch: i64,
        since: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT node_id, public_key FROM cvc_nodes WHERE epoch = ?1 AND seen_at >= ?2")?
                .query_map(params![epoch, since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    pub(in crate::db) async fn cvc_key_holders(
        &self,
        epoch: i64,
        creator: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT node_id FROM cvc_epoch_keys WHERE epoch = ?1 AND creator = ?2")?
                .query_map(params![epoch, creator], |r| r.get(0))?
                .collect()
        })
    }

    pub(in crate::db) async fn cvc_key_put(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (creator, node) = (creator.to_owned(), node.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO cvc_epoch_keys (epoch, creator, node_id, sealed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (epoch, creator, node_id) DO NOTHING",
            )?
            .execute(params![epoch, creator, node, sealed])?;
            Ok(())
        })
        .await
    }

    pub(in crate::db) async fn cvc_key(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT sealed FROM cvc_epoch_keys WHERE epoch = ?1 AND creator = ?2 AND node_id = ?3",
            )?
            .query_row(params![epoch, creator, node], |r| r.get(0))
            .optional()
        })
    }

    pub(in crate::db) async fn cvc_expire(
        &self,
        now: i64,
        first_live_epoch: i64,
        stale_before: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM cvc_holds WHERE expires_at <= ?1")?
                .execute(params![now])?;
            c.prepare_cached("DELETE FROM cvc_epoch_keys WHERE epoch < ?1")?
                .execute(params![first_live_epoch])?;
            c.prepare_cached("DELETE FROM cvc_nodes WHERE epoch < ?1 OR seen_at < ?2")?
                .execute(params![first_live_epoch, stale_before])?;
            Ok(())
        })
        .await
    }
}
