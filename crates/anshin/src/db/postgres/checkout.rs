//! PostgreSQL storage of checkout sessions. Single use holds across nodes: a
//! card is attached by one conditional UPDATE, which only one node can win.

use tokio_postgres::Row;

use super::PgStore;
use crate::db::StoreError;
use crate::db::checkout::{SessionCard, SessionRow, session_card, session_status};
use crate::ids::{CheckoutSessionId, PaymentId, PrincipalId, ShopId, TenantId};

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

    pub(in crate::db) async fn checkout_bind_payment(
        &self,
        id: &CheckoutSessionId,
        payment: &PaymentId,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE checkout_sessions SET payment_id = $2
                 WHERE id = $1 AND status = $3 AND (payment_id IS NULL OR payment_id = $2)",
                &[&id.as_str(), &payment.as_str(), &session_status::CARD_SUBMITTED],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(in crate::db) async fn checkout_complete(&self, id: &CheckoutSessionId) -> Result<(), StoreError> {
        self.execute(
            "UPDATE checkout_sessions SET status = $2 WHERE id = $1",
            &[&id.as_str(), &session_status::COMPLETED],
        )
        .await?;
        Ok(())
    }
}
