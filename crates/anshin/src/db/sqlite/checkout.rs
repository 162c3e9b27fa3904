//! SQLite storage of checkout sessions.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use crate::db::StoreError;
use crate::db::checkout::{SessionCard, SessionRow, session_card, session_status};
use crate::ids::{CheckoutSessionId, PaymentId, PrincipalId, ShopId, TenantId};

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

    pub(in crate::db) async fn checkout_bind_payment(
        &self,
        id: &CheckoutSessionId,
        payment: &PaymentId,
    ) -> Result<bool, StoreError> {
        let (id, payment) = (id.as_str().to_owned(), payment.as_str().to_owned());
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE checkout_sessions SET payment_id = ?2
                     WHERE id = ?1 AND status = ?3 AND (payment_id IS NULL OR payment_id = ?2)",
                )?
                .execute(params![id, payment, session_status::CARD_SUBMITTED])?;
            Ok(changed == 1)
        })
        .await
    }

    pub(in crate::db) async fn checkout_complete(&self, id: &CheckoutSessionId) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE checkout_sessions SET status = ?2 WHERE id = ?1")?
                .execute(params![id, session_status::COMPLETED])?;
            Ok(())
        })
        .await
    }
}
