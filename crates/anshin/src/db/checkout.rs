//! Storage of checkout sessions (and, with the processor proxy, payments and
//! held security codes). Rows name cards by token only.

use super::{Store, StoreError};
use crate::ids::{CardToken, CheckoutSessionId, PaymentId, PrincipalId, ShopId, TenantId};

/// A checkout session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: CheckoutSessionId,
    pub tenant_id: TenantId,
    pub shop_id: Option<ShopId>,
    /// The principal (a shop's server) that opened it.
    pub created_by: PrincipalId,
    pub amount: i64,
    pub currency: String,
    pub order_ref: String,
    pub allowed_origin: String,
    pub locale: String,
    /// `open`, `card_submitted` or `completed` (expiry is judged on read).
    pub status: String,
    pub card: Option<SessionCard>,
    pub payment_id: Option<PaymentId>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The card a shopper submitted to a session: token and masked view only.
#[derive(Debug, Clone)]
pub struct SessionCard {
    pub token: CardToken,
    pub brand: String,
    pub last4: String,
}

/// Session states as stored.
pub mod session_status {
    pub const OPEN: &str = "open";
    pub const CARD_SUBMITTED: &str = "card_submitted";
    pub const COMPLETED: &str = "completed";
}

pub(super) fn session_card(
    token: Option<String>,
    brand: Option<String>,
    last4: Option<String>,
) -> Result<Option<SessionCard>, StoreError> {
    match (token, brand, last4) {
        (None, _, _) => Ok(None),
        (Some(token), Some(brand), Some(last4)) => Ok(Some(SessionCard {
            token: CardToken::from_db(token),
            brand,
            last4,
        })),
        _ => Err(StoreError::Corrupt(
            "checkout session card without brand or last4",
        )),
    }
}

impl Store {
    /// Stores a new session.
    pub async fn checkout_insert(&self, session: SessionRow) -> Result<(), StoreError> {
        dispatch!(self.checkout_insert(session))
    }

    /// A session by id.
    pub async fn checkout_session(&self, id: &CheckoutSessionId) -> Result<Option<SessionRow>, StoreError> {
        dispatch!(self.checkout_session(id))
    }

    /// Attaches the submitted card to a session that is still open and not
    /// expired at `now`; false (and nothing changed) otherwise. This is what
    /// makes a session single-use: two submissions race on one row.
    pub async fn checkout_attach_card(
        &self,
        id: &CheckoutSessionId,
        card: SessionCard,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self.checkout_attach_card(id, card, now))
    }

    /// Binds a payment to a session whose card was submitted and which has no
    /// payment yet; false otherwise.
    pub async fn checkout_bind_payment(
        &self,
        id: &CheckoutSessionId,
        payment: &PaymentId,
    ) -> Result<bool, StoreError> {
        dispatch!(self.checkout_bind_payment(id, payment))
    }

    /// Marks a session completed (its payment reached a final answer).
    pub async fn checkout_complete(&self, id: &CheckoutSessionId) -> Result<(), StoreError> {
        dispatch!(self.checkout_complete(id))
    }
}
