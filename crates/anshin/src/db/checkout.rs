//! Storage of checkout sessions (and, with the processor proxy, payments and
//! held security codes). Rows name cards by token only.

use super::audit::NewAuditEntry;
use super::{CardRow, Scope, Store, StoreError};
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
}

/// A configured route (processor or generic outbound), as stored.
#[derive(Debug, Clone)]
pub struct RouteRow {
    pub tenant_id: TenantId,
    pub name: String,
    /// `processor` or `outbound`.
    pub kind: String,
    /// The validated configuration, JSON (placeholders, never card data).
    pub config: String,
    pub updated_at: i64,
}

/// A payment through the processor proxy.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: PaymentId,
    pub tenant_id: TenantId,
    pub shop_id: Option<ShopId>,
    pub created_by: PrincipalId,
    pub session_id: Option<CheckoutSessionId>,
    pub card_token: CardToken,
    pub route: String,
    pub amount: i64,
    pub currency: String,
    pub capture: bool,
    pub state: PaymentState,
    pub created_at: i64,
}

/// What the processor last said about a payment.
#[derive(Debug, Clone, Default)]
pub struct PaymentState {
    /// `pending` (sent, no answer yet), `authorized`, `captured`, `declined`,
    /// `challenge_required`, `failed`, `voided`, `partially_refunded`, `refunded`.
    pub status: String,
    pub decline_code: Option<String>,
    pub processor_reference: Option<String>,
    pub three_ds_id: Option<String>,
    pub challenge_url: Option<String>,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub updated_at: i64,
}

/// Where an idempotency key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// A request with this key started and has no final answer (it may have
    /// timed out at the processor): a retry continues it.
    Pending {
        request_hash: Vec<u8>,
        payment_id: PaymentId,
    },
    /// The first request ended with this answer.
    Done {
        request_hash: Vec<u8>,
        status_code: u16,
        response: String,
    },
}

impl Idempotency {
    /// Whether this is the unfinished first attempt of the request `request_hash` for `payment`.
    pub(super) fn unfinished(&self, request_hash: &[u8], payment: &PaymentId) -> bool {
        matches!(self, Self::Pending { request_hash: h, payment_id } if h == request_hash && payment_id == payment)
    }
}

pub(super) fn idempotency(
    request_hash: Vec<u8>,
    payment_id: String,
    status_code: Option<i64>,
    response: Option<String>,
) -> Result<Idempotency, StoreError> {
    Ok(match (status_code, response) {
        (Some(code), Some(response)) => Idempotency::Done {
            request_hash,
            status_code: u16::try_from(code).map_err(|_| StoreError::Corrupt("idempotent status code"))?,
            response,
        },
        _ => Idempotency::Pending {
            request_hash,
            payment_id: PaymentId::from_db(payment_id),
        },
    })
}

/// What [`Store::payment_reads`] found.
pub struct PaymentReads {
    pub held: Option<Idempotency>,
    /// The tenant's route of the name asked for.
    pub route: Option<RouteRow>,
    /// Read when a card was asked for: the card, if it is in scope.
    pub card: Option<Option<CardRow>>,
}

/// A payment request about to send to the processor ([`Store::payment_start`]).
#[derive(Debug, Clone)]
pub struct PaymentStart {
    pub tenant: TenantId,
    pub key: String,
    /// The request's fingerprint: the same key with another request is refused.
    pub request_hash: Vec<u8>,
    /// The payment the request is about.
    pub payment: PaymentId,
    /// A new payment's row, stored pending (kept as it is if it exists: a
    /// retry); its session, if any, is bound to it.
    pub new: Option<PaymentRow>,
    pub now: i64,
}

/// What [`Store::payment_start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// All of it: the request may send.
    Started,
    /// The key is held by another request, or its request has ended.
    Taken(Idempotency),
    /// The checkout session was paid by another payment, or completed.
    SessionUsed,
}

/// A processor's final answer to record ([`Store::payment_finish`]).
#[derive(Debug, Clone)]
pub struct PaymentFinish {
    pub payment: PaymentId,
    pub state: PaymentState,
    /// The payment's checkout session: its held security code served its
    /// one authorization; `true` completes the session too.
    pub session: Option<(CheckoutSessionId, bool)>,
    /// The idempotency key (tenant, key) and the answer (status 200) replayed to it.
    pub answer: Option<(TenantId, String, String)>,
}

impl Store {
    /// Creates or replaces a route.
    pub async fn route_put(&self, route: RouteRow) -> Result<(), StoreError> {
        dispatch!(self.route_put(route))
    }

    /// A tenant's routes, by name.
    pub async fn routes(&self, tenant: &TenantId) -> Result<Vec<RouteRow>, StoreError> {
        dispatch!(self.routes(tenant))
    }

    /// Where an idempotency key of `tenant` stands (None: unused).
    pub async fn idempotency(&self, tenant: &TenantId, key: &str) -> Result<Option<Idempotency>, StoreError> {
        dispatch!(self.idempotency(tenant, key))
    }

    /// What a payment request reads before it starts, together: where its
    /// idempotency key of `tenant` stands, the tenant's route `route`, and the
    /// card `card` if one is asked for (inside its scope). One round trip
    /// on PostgreSQL; SQLite reads in process.
    pub async fn payment_reads(
        &self,
        tenant: &TenantId,
        key: &str,
        route: &str,
        card: Option<(Scope<'_>, &CardToken)>,
    ) -> Result<PaymentReads, StoreError> {
        match self {
            Store::Postgres(s) => s.payment_reads(tenant, key, route, card).await,
            Store::Sqlite(_) => Ok(PaymentReads {
                held: self.idempotency(tenant, key).await?,
                route: self.routes(tenant).await?.into_iter().find(|r| r.name == route),
                card: match card {
                    Some((scope, token)) => Some(self.card(scope, token).await?),
                    None => None,
                },
            }),
        }
    }

    /// Starts a payment request in one transaction: claims its idempotency
    /// key (or finds it held by this same request's unfinished first
    /// attempt), stores a new payment's pending row, binds its checkout
    /// session, and appends `entry`, the audit entry saying the card leaves.
    /// Nothing is written unless the answer is [`Started::Started`].
    pub async fn payment_start(
        &self,
        start: PaymentStart,
        entry: NewAuditEntry,
    ) -> Result<Started, StoreError> {
        dispatch!(self.payment_start(start, entry))
    }

    /// Records a processor's final answer in one transaction: the payment's
    /// state, its session's held security code deleted (and the session
    /// completed), and the answer stored against the idempotency key.
    pub async fn payment_finish(&self, finish: PaymentFinish) -> Result<(), StoreError> {
        dispatch!(self.payment_finish(finish))
    }

    /// A payment by id.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentRow>, StoreError> {
        dispatch!(self.payment(id))
    }

    /// The payments of `ids` that exist, in one read (a webhook round's).
    pub async fn payments(&self, ids: Vec<PaymentId>) -> Result<Vec<PaymentRow>, StoreError> {
        dispatch!(self.payments(ids))
    }
}

/// A held security code: ciphertext under the epoch key `(epoch, creator)`.
#[derive(Clone)]
pub struct CvcHoldRow {
    pub session_id: CheckoutSessionId,
    pub epoch: i64,
    pub creator: String,
    pub sealed: Vec<u8>,
    pub expires_at: i64,
}

impl Store {
    /// Stores (or replaces) a session's held security code.
    pub async fn cvc_hold_put(&self, hold: CvcHoldRow) -> Result<(), StoreError> {
        dispatch!(self.cvc_hold_put(hold))
    }

    /// A session's held security code, if any.
    pub async fn cvc_hold(&self, session: &CheckoutSessionId) -> Result<Option<CvcHoldRow>, StoreError> {
        dispatch!(self.cvc_hold(session))
    }

    /// Deletes a session's held security code.
    pub async fn cvc_hold_delete(&self, session: &CheckoutSessionId) -> Result<(), StoreError> {
        dispatch!(self.cvc_hold_delete(session))
    }

    /// Publishes (or refreshes) a node's public key for an epoch.
    pub async fn cvc_node_put(
        &self,
        node: &str,
        epoch: i64,
        public_key: Vec<u8>,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self.cvc_node_put(node, epoch, public_key, now))
    }

    /// Nodes seen since `since` with a key for `epoch`: (node, public key).
    pub async fn cvc_nodes(&self, epoch: i64, since: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self.cvc_nodes(epoch, since))
    }

    /// Nodes that hold a copy of the epoch key `(epoch, creator)`.
    pub async fn cvc_key_holders(&self, epoch: i64, creator: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self.cvc_key_holders(epoch, creator))
    }

    /// Stores a copy of an epoch key sealed to `node` (kept if one exists).
    pub async fn cvc_key_put(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        dispatch!(self.cvc_key_put(epoch, creator, node, sealed))
    }

    /// The copy of an epoch key sealed to `node`.
    pub async fn cvc_key(
        &self,
        epoch: i64,
        creator: &str,
        node: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.cvc_key(epoch, creator, node))
    }

    /// Deletes holds expired at `now`, and epoch keys and node keys of
    /// epochs before `first_live_epoch` (and nodes unseen since `stale_before`).
    pub async fn cvc_expire(
        &self,
        now: i64,
        first_live_epoch: i64,
        stale_before: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self.cvc_expire(now, first_live_epoch, stale_before))
    }
}
