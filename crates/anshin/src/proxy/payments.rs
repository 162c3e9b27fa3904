//! Payments through the processor proxy.
//!
//! `POST /v1/payments` (with an `Idempotency-Key`) takes a checkout session
//! whose card was submitted, or a card token, opens the card in the vault,
//! fills the tenant's processor route's template on the wire and sends it;
//! capture, void and refunds follow the processor's API under the
//! processor's own reference. The shop sees the status, decline code and
//! processor reference, never the card.
//!
//! Never charging twice: each request's idempotency key is claimed in the
//! database with the request's fingerprint before anything is sent, and the
//! processor gets a key derived from anshin's payment id, so a retry (after
//! a 504 `processor_timeout`, a lost answer, or on another node) sends the
//! byte-identical request under the same processor key, and the processor
//! answers it from its own idempotency record instead of authorizing again.
//! Only a final answer is stored against the key and replayed.

use aws_lc_rs::digest;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::template::{Placeholder, Values};
use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind, field};
use crate::clock;
use crate::db::checkout::{
    Idempotency, PaymentFinish, PaymentRow, PaymentStart, PaymentState, RouteRow, SessionRow, Started,
    session_status,
};
use crate::db::{CardRow, Scope};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{CardToken, CheckoutSessionId, PaymentId, parse_or_404};
use crate::orders::currency;

/// The route a payment goes through when it names none.
pub const DEFAULT_ROUTE: &str = "default";

/// A payment a shop's server asks for.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// A checkout session whose card was submitted (the amount and currency must match it).
    #[serde(default)]
    pub checkout_session_id: Option<String>,
    /// Or a card token of the caller's (no security code is sent then).
    #[serde(default)]
    pub card_token: Option<String>,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Capture at once (default false: authorize only).
    #[serde(default)]
    pub capture: bool,
    /// The tenant's processor route (default `default`).
    #[serde(default)]
    pub route: Option<String>,
}

/// Capture or refund amount (default: all).
#[derive(Deserialize, Serialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountInput {
    /// Amount in minor units; all that is capturable (or refundable) when absent.
    #[serde(default)]
    pub amount: Option<i64>,
}

/// What the shop's browser-side code must do next.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NextAction {
    /// `three_ds_challenge`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the challenge is shown.
    pub url: String,
}

/// The masked card of a payment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentCard {
    /// Token.
    pub token: String,
}

/// A payment as the shop sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// `pay_…`.
    pub id: String,
    /// `pending`, `authorized`, `captured`, `declined`, `challenge_required`, `failed`,
    /// `voided`, `partially_refunded` or `refunded`.
    pub status: String,
    /// Amount.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Captured so far.
    pub amount_captured: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    /// Why it was declined (the processor's code).
    pub decline_code: Option<String>,
    /// The processor's id for it.
    pub processor_reference: Option<String>,
    /// The session it came from.
    pub checkout_session_id: Option<String>,
    /// The card.
    pub card: PaymentCard,
    /// A 3-D Secure challenge to show.
    pub next_action: Option<NextAction>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// Payment operations after the authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Capture,
    Void,
    Refund,
    Complete,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refunds",
            Self::Complete => "complete",
        }
    }

    fn event(self) -> EventKind {
        match self {
            Self::Capture => EventKind::PaymentCapture,
            Self::Void => EventKind::PaymentVoid,
            Self::Refund => EventKind::PaymentRefund,
            Self::Complete => EventKind::PaymentComplete,
        }
    }
}

/// An answer that may be a replay of the first one.
pub struct Idempotent {
    /// The payment.
    pub body: String,
    /// True when this is the stored answer to an earlier request with the key.
    pub replayed: bool,
}

/// Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn idempotency_key(header: Option<&str>) -> Result<String> {
    let key = header.ok_or_else(|| {
        Error::new(
            ErrorKind::BadRequest,
            "idempotency_key_missing",
            "send an Idempotency-Key header (1 to 255 visible ASCII characters, unique per payment attempt)",
        )
    })?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            "idempotency_key_invalid",
            "the Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

fn fingerprint(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.finish().as_ref().to_vec()
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The payment state a processor's answer (the simulator's format) gives.
fn state_from(answer: &Value, before: &PaymentState) -> Option<PaymentState> {
    let status = text(answer, "status")?;
    let three_ds = answer.get("three_ds").filter(|v| v.is_object());
    Some(PaymentState {
        decline_code: text(answer, "decline_code"),
        processor_reference: text(answer, "id").or_else(|| before.processor_reference.clone()),
        three_ds_id: three_ds
            .and_then(|t| text(t, "id"))
            .or_else(|| before.three_ds_id.clone()),
        challenge_url: if status == "challenge_required" {
            three_ds.and_then(|t| text(t, "challenge_url"))
        } else {
            None
        },
        amount_captured: answer
            .get("amount_captured")
            .and_then(Value::as_i64)
            .unwrap_or(before.amount_captured),
        amount_refunded: answer
            .get("amount_refunded")
            .and_then(Value::as_i64)
            .unwrap_or(before.amount_refunded),
        updated_at: clock::now_ms(),
        status,
    })
}

/// A processor's refusal (4xx with `{"error": {"code"}}`) in anshin's words.
fn refusal(status: StatusCode, answer: &Value) -> Error {
    let code = answer
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (kind, code, message) = match code {
        "invalid_state" => (
            ErrorKind::Conflict,
            "invalid_state",
            "the payment's state does not allow this",
        ),
        "authorization_expired" => (
            ErrorKind::Conflict,
            "authorization_expired",
            "the authorization has lapsed",
        ),
        "authentication_pending" => (
            ErrorKind::Conflict,
            "authentication_pending",
            "the 3-D Secure challenge has not ended yet",
        ),
        "amount_too_large" => (
            ErrorKind::Invalid,
            "amount_too_large",
            "the amount is more than can be captured or refunded",
        ),
        "amount_invalid" => (ErrorKind::Invalid, "amount_invalid", "the amount is not valid"),
        "idempotency_key_in_use" => return in_progress(),
        _ if status.is_server_error() => (
            ErrorKind::BadGateway,
            "processor_error",
            "the processor failed; retry with the same Idempotency-Key",
        ),
        _ => (
            ErrorKind::BadGateway,
            "processor_refused",
            "the processor refused the request; check the route's configuration",
        ),
    };
    Error::new(kind, code, message)
}

/// 409 `payment_in_progress`: the first request with the key has not ended.
fn in_progress() -> Error {
    Error::new(
        ErrorKind::Conflict,
        "payment_in_progress",
        "the first attempt is still running at the processor; retry shortly with the same Idempotency-Key",
    )
}

fn session_used() -> Error {
    Error::new(
        ErrorKind::Gone,
        "session_used",
        "this checkout session has already been paid",
    )
}

/// What [`App::create_payment`] settled for [`App::authorize`]: the payment
/// the key runs, the request's fingerprint, and what was read with the key.
struct Attempt {
    id: PaymentId,
    request: Vec<u8>,
    route: Option<RouteRow>,
    /// Read when the payment names a stored card.
    card: Option<Option<CardRow>>,
}

/// What a request may do with its idempotency key.
enum Claim {
    /// Run the request for this payment.
    Run(PaymentId),
    /// Answer the first request's stored answer.
    Replay(String),
}

/// Where a key held as `held` leaves the request `request` (its
/// fingerprint): a new key runs it for `new`, a key whose first request
/// ended replays that answer, a key of a request that did not end runs it
/// again for the same payment (the processor dedups), and a key used for
/// another request is 409.
fn claim(held: Option<Idempotency>, request: &[u8], new: PaymentId) -> Result<Claim> {
    let (request_hash, claim) = match held {
        None => return Ok(Claim::Run(new)),
        Some(Idempotency::Pending {
            request_hash,
            payment_id,
        }) => (request_hash, Claim::Run(payment_id)),
        Some(Idempotency::Done {
            request_hash,
            response,
            ..
        }) => (request_hash, Claim::Replay(response)),
    };
    if request_hash != request {
        return Err(Error::new(
            ErrorKind::Conflict,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key for a new payment",
        ));
    }
    Ok(claim)
}

impl App {
    /// Claims the request's idempotency key and, in the same commit, stores
    /// what it starts (see [`Store::payment_start`]) with the event's entry:
    /// durable before anything is sent. `Some`: the answer to replay instead
    /// (the key's first request ended meanwhile).
    ///
    /// [`Store::payment_start`]: crate::db::Store::payment_start
    async fn payment_start(
        &self,
        actor: &Actor,
        event: &mut Event,
        start: PaymentStart,
    ) -> Result<Option<String>> {
        let entry = self.entry_now(actor, event)?;
        let (request, payment) = (start.request_hash.clone(), start.payment.clone());
        match self.store.payment_start(start, entry).await? {
            Started::Started => {
                event.recorded_with_write();
                Ok(None)
            }
            Started::SessionUsed => Err(session_used()),
            // Another attempt with the key is running for another payment id.
            Started::Taken(held) => match claim(Some(held), &request, payment)? {
                Claim::Replay(body) => Ok(Some(body)),
                Claim::Run(_) => Err(in_progress()),
            },
        }
    }

    /// Records `row`'s new state, with the end of its checkout `session` and
    /// the answer stored against the request's idempotency `key`, in one
    /// commit, and gives that answer.
    async fn payment_finish(
        &self,
        row: &PaymentRow,
        session: Option<(CheckoutSessionId, bool)>,
        key: &str,
    ) -> Result<Idempotent> {
        let body = serde_json::to_string(&self.payment_view(row)).map_err(Error::internal)?;
        self.store
            .payment_finish(PaymentFinish {
                payment: row.id.clone(),
                state: row.state.clone(),
                session,
                answer: Some((row.tenant_id.clone(), key.to_owned(), body.clone())),
            })
            .await?;
        Ok(Idempotent {
            body,
            replayed: false,
        })
    }

    /// Authorizes (and optionally captures) a payment.
    pub async fn create_payment(&self, actor: &Actor, key: &str, input: NewPayment) -> Result<Idempotent> {
        self.audited(actor, EventKind::PaymentCreate, async |event| {
            actor.require(Action::Pay)?;
            let tenant = actor.tenant_for(None)?;
            event.tenant(&tenant);
            let request = fingerprint(&[b"create", &serde_json::to_vec(&input).map_err(Error::internal)?]);
            // The key, the route and a stored card are read together; a
            // session's card is read once the session names it.
            let token = match (&input.checkout_session_id, &input.card_token) {
                (None, Some(token)) => CardToken::parse(token),
                _ => None,
            };
            let scope = Scope {
                tenant: Some(&tenant),
                shop: actor.scope().shop,
            };
            let reads = self
                .store
                .payment_reads(
                    &tenant,
                    key,
                    input.route.as_deref().unwrap_or(DEFAULT_ROUTE),
                    token.as_ref().map(|t| (scope, t)),
                )
                .await?;
            match claim(reads.held, &request, PaymentId::generate()?)? {
                Claim::Replay(body) => Ok(Idempotent { body, replayed: true }),
                Claim::Run(id) => {
                    let attempt = Attempt {
                        id,
                        request,
                        route: reads.route,
                        card: reads.card,
                    };
                    self.authorize(actor, key, input, attempt, event).await
                }
            }
        })
        .await
    }

    async fn authorize(
        &self,
        actor: &Actor,
        key: &str,
        input: NewPayment,
        attempt: Attempt,
        event: &mut Event,
    ) -> Result<Idempotent> {
        let Attempt {
            id,
            request,
            route: route_row,
            card: card_read,
        } = attempt;
        let tenant = actor.tenant_for(None)?;
        event.resource(&id);
        if !(1..=crate::orders::MAX_AMOUNT).contains(&input.amount) {
            return Err(Error::invalid(
                "amount_invalid",
                "amount must be a positive whole number of minor units",
            )
            .with_param("amount"));
        }
        let currency = currency(&input.currency).map_err(|e| e.with_param("currency"))?;
        let route = input.route.as_deref().unwrap_or(DEFAULT_ROUTE);
        let client = self.route_client_read(route_row, "processor")?;
        let settings = self.checkout.settings();
        let (session, token) = match (&input.checkout_session_id, &input.card_token) {
            (Some(session), None) => {
                let row = self
                    .payable_session(actor, session, &input, &currency, &id)
                    .await?;
                let token = row.card.as_ref().map(|c| c.token.to_string()).unwrap_or_default();
                (Some(row), token)
            }
            (None, Some(token)) => (None, token.clone()),
            _ => {
                return Err(Error::invalid(
                    "payment_source_invalid",
                    "give exactly one of checkout_session_id and card_token",
                ));
            }
        };
        let scope = Scope {
            tenant: Some(&tenant),
            shop: actor.scope().shop,
        };
        let (card, card_row) = match card_read {
            Some(row) => self.open_card_read(row).await?,
            None => self.open_card(scope, &token).await?,
        };
        event.resource(&card_row.token);
        if let Some(row) = &session {
            event.resource(&row.id);
        }
        let cvc = match &session {
            Some(s) => self.cvc_peek(&s.id).await?,
            None => None,
        };
        let now = clock::now_ms();
        let payment = PaymentRow {
            id: id.clone(),
            tenant_id: tenant.clone(),
            shop_id: session
                .as_ref()
                .map_or(actor.shop_id.clone(), |s| s.shop_id.clone()),
            created_by: actor.principal_id.clone(),
            session_id: session.as_ref().map(|s| s.id.clone()),
            card_token: card_row.token.clone(),
            route: route.to_owned(),
            amount: input.amount,
            currency: currency.clone(),
            capture: input.capture,
            state: PaymentState {
                status: "pending".into(),
                updated_at: now,
                ..PaymentState::default()
            },
            created_at: now,
        };
        let template = client.template.as_ref().ok_or_else(|| {
            Error::internal(crate::db::StoreError::Corrupt("processor route without template"))
        })?;
        event.fields(&[
            field::CARD_NUMBER,
            field::CARD_EXPIRY,
            field::CARD_HOLDER,
            field::PAYMENT,
        ]);
        if cvc.is_some() && template.uses(Placeholder::CardCvc) {
            event.fields(&[field::CARD_CVC]);
        }
        // The card leaves anshin only after the entry saying so is durable.
        let start = PaymentStart {
            tenant: tenant.clone(),
            key: key.to_owned(),
            request_hash: request,
            payment: id.clone(),
            new: Some(payment.clone()),
            now,
        };
        if let Some(body) = self.payment_start(actor, event, start).await? {
            return Ok(Idempotent { body, replayed: true });
        }
        let return_url = session
            .as_ref()
            .map(|s| format!("{}/checkout/{}/3ds-return", settings.public_url, s.id));
        let mut body = Vec::with_capacity(1024);
        template.render(
            &Values {
                number: &card.number,
                cvc: cvc.as_ref(),
                exp_month: card.exp_month,
                exp_year: card.exp_year,
                holder_name: &card.holder_name,
                amount: input.amount,
                currency: &currency,
                capture: input.capture,
                reference: id.as_str(),
                return_url: return_url.as_deref(),
            },
            &mut body,
        );
        drop(card);
        let answer = client
            .send(
                &settings.allowed_hosts,
                Method::POST,
                "/v1/payments",
                Some(id.as_str()),
                body,
            )
            .await?;
        let state = if answer.status.is_success() || answer.status == StatusCode::PAYMENT_REQUIRED {
            state_from(&answer.body, &payment.state).ok_or_else(|| {
                Error::new(
                    ErrorKind::BadGateway,
                    "processor_bad_answer",
                    "the processor's answer has no status",
                )
            })?
        } else if answer.status.is_client_error()
            && answer.status != StatusCode::CONFLICT
            && answer.status != StatusCode::TOO_MANY_REQUESTS
        {
            // The processor refused the request itself (a misconfigured
            // template, say): a final answer, the payment failed.
            PaymentState {
                status: "failed".into(),
                decline_code: answer
                    .body
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                updated_at: clock::now_ms(),
                ..PaymentState::default()
            }
        } else {
            return Err(refusal(answer.status, &answer.body));
        };
        // The security code served its one authorization; the session ends
        // unless its challenge is still to come.
        let session = session.map(|row| (row.id, state.status != "challenge_required"));
        self.payment_finish(&PaymentRow { state, ..payment }, session, key)
            .await
    }

    /// The session a payment draws on: the caller's, with a submitted card,
    /// not expired, for this amount and currency, and not paid by another
    /// payment (it is bound to `payment` when the payment starts).
    async fn payable_session(
        &self,
        actor: &Actor,
        id: &str,
        input: &NewPayment,
        currency: &str,
        payment: &PaymentId,
    ) -> Result<SessionRow> {
        let row = self.visible_session(actor, id).await?;
        if row.payment_id.as_ref().is_some_and(|p| p != payment) || row.status == session_status::COMPLETED {
            return Err(session_used());
        }
        if clock::now_ms() >= row.expires_at {
            return Err(Error::new(
                ErrorKind::Gone,
                "session_expired",
                "this checkout session has expired",
            ));
        }
        if row.card.is_none() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "card_not_submitted",
                "the shopper has not submitted a card to this session yet",
            ));
        }
        if row.amount != input.amount {
            return Err(
                Error::invalid("amount_mismatch", "amount differs from the checkout session's")
                    .with_param("amount"),
            );
        }
        if row.currency != currency {
            return Err(Error::invalid(
                "currency_mismatch",
                "currency differs from the checkout session's",
            )
            .with_param("currency"));
        }
        Ok(row)
    }

    pub(crate) fn payment_view(&self, row: &PaymentRow) -> PaymentView {
        // The issuer's challenge page. With a checkout session the hosted
        // card page shows it by itself (it polls the session's status); a
        // shop paying with a card token shows it to the shopper.
        let next_action = (row.state.status == "challenge_required").then(|| NextAction {
            kind: "three_ds_challenge".into(),
            url: row.state.challenge_url.clone().unwrap_or_default(),
        });
        PaymentView {
            id: row.id.to_string(),
            status: row.state.status.clone(),
            amount: row.amount,
            currency: row.currency.clone(),
            amount_captured: row.state.amount_captured,
            amount_refunded: row.state.amount_refunded,
            decline_code: row.state.decline_code.clone(),
            processor_reference: row.state.processor_reference.clone(),
            checkout_session_id: row.session_id.as_ref().map(ToString::to_string),
            card: PaymentCard {
                token: row.card_token.to_string(),
            },
            next_action,
            created_at: clock::rfc3339(row.created_at),
        }
    }

    /// A payment inside the actor's scope.
    async fn visible_payment(&self, actor: &Actor, id: &str) -> Result<PaymentRow> {
        let id = parse_or_404(PaymentId::parse, id, "payment")?;
        let scope = actor.scope();
        self.store
            .payment(&id)
            .await?
            .filter(|p| {
                actor.sees_tenant(&p.tenant_id)
                    && scope.shop.is_none_or(|shop| p.shop_id.as_ref() == Some(shop))
            })
            .ok_or_else(|| Error::not_found("payment"))
    }

    /// A payment.
    pub async fn payment(&self, actor: &Actor, id: &str) -> Result<PaymentView> {
        self.audited(actor, EventKind::PaymentRead, async |event| {
            actor.require(Action::Pay)?;
            let row = self.visible_payment(actor, id).await?;
            event
                .tenant(&row.tenant_id)
                .resource(&row.id)
                .fields(&[field::PAYMENT]);
            Ok(self.payment_view(&row))
        })
        .await
    }

    /// Captures, voids or refunds a payment at its processor.
    pub async fn payment_operation(
        &self,
        actor: &Actor,
        key: &str,
        id: &str,
        operation: Operation,
        input: AmountInput,
    ) -> Result<Idempotent> {
        self.audited(actor, operation.event(), async |event| {
            actor.require(Action::Pay)?;
            let row = self.visible_payment(actor, id).await?;
            event
                .tenant(&row.tenant_id)
                .resource(&row.id)
                .fields(&[field::PAYMENT]);
            let request = fingerprint(&[
                operation.path().as_bytes(),
                row.id.as_str().as_bytes(),
                &serde_json::to_vec(&input).map_err(Error::internal)?,
            ]);
            let held = self.store.idempotency(&row.tenant_id, key).await?;
            if let Claim::Replay(body) = claim(held, &request, row.id.clone())? {
                return Ok(Idempotent { body, replayed: true });
            }
            let processor_key = format!(
                "{}:{}:{}",
                row.id,
                operation.path(),
                data_encoding::HEXLOWER.encode(&request[..12])
            );
            let start = PaymentStart {
                tenant: row.tenant_id.clone(),
                key: key.to_owned(),
                request_hash: request,
                payment: row.id.clone(),
                new: None,
                now: clock::now_ms(),
            };
            if let Some(body) = self.payment_start(actor, event, start).await? {
                return Ok(Idempotent { body, replayed: true });
            }
            let state = self.at_processor(&row, operation, &input, &processor_key).await?;
            self.payment_finish(&PaymentRow { state, ..row }, None, key).await
        })
        .await
    }

    /// Sends an operation on `row` to its processor: the payment's new state.
    async fn at_processor(
        &self,
        row: &PaymentRow,
        operation: Operation,
        input: &AmountInput,
        processor_key: &str,
    ) -> Result<PaymentState> {
        let reference = row.state.processor_reference.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::Conflict,
                "invalid_state",
                "the payment has not reached the processor yet; retry its creation with the same Idempotency-Key",
            )
        })?;
        let client = self.route_client(&row.tenant_id, &row.route, "processor").await?;
        let body = match (operation, input.amount) {
            (Operation::Capture | Operation::Refund, Some(amount)) => json!({"amount": amount}),
            _ => json!({}),
        };
        let allowed = self.checkout.settings().allowed_hosts.clone();
        let answer = client
            .send(
                &allowed,
                Method::POST,
                &format!("/v1/payments/{reference}/{}", operation.path()),
                Some(processor_key),
                serde_json::to_vec(&body).map_err(Error::internal)?,
            )
            .await?;
        if !(answer.status.is_success() || answer.status == StatusCode::PAYMENT_REQUIRED) {
            return Err(refusal(answer.status, &answer.body));
        }
        state_from(&answer.body, &row.state).ok_or_else(|| {
            Error::new(
                ErrorKind::BadGateway,
                "processor_bad_answer",
                "the processor's answer has no status",
            )
        })
    }

    /// Finishes a payment after its 3-D Secure challenge (the browser came
    /// back to `/checkout/{session}/3ds-return` with the processor's payment
    /// id): completes it at the processor and closes the session. Answers
    /// the payment's status. Completing is idempotent at the processor, and a
    /// payment no longer waiting for its challenge is left as it is.
    pub async fn complete_challenge(
        &self,
        session: &str,
        processor_payment: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<String> {
        let mut event = Event::new(EventKind::PaymentComplete);
        let result = async {
            let session_id = parse_or_404(CheckoutSessionId::parse, session, "checkout session")?;
            let bound = self
                .store
                .checkout_session(&session_id)
                .await?
                .and_then(|s| s.payment_id)
                .ok_or_else(|| Error::not_found("payment"))?;
            // The processor names its own payment id; it must be the session's.
            let row = self
                .store
                .payment(&bound)
                .await?
                .filter(|p| p.state.processor_reference.as_deref() == Some(processor_payment))
                .ok_or_else(|| Error::not_found("payment"))?;
            event
                .tenant(&row.tenant_id)
                .resource(&row.id)
                .resource(&session_id)
                .fields(&[field::PAYMENT]);
            if row.state.status != "challenge_required" {
                return Ok(row.state.status);
            }
            let key = format!("{}:complete", row.id);
            let state = self
                .at_processor(&row, Operation::Complete, &AmountInput::default(), &key)
                .await?;
            let status = state.status.clone();
            let done = status != "challenge_required";
            self.store
                .payment_finish(PaymentFinish {
                    payment: row.id,
                    state,
                    session: Some((session_id, done)),
                    answer: None,
                })
                .await?;
            Ok(status)
        }
        .await;
        let failure = result.as_ref().err();
        if let Err(log_err) = self.record(None, client, &event, failure).await {
            tracing::warn!(error = ?log_err, "could not record a 3-D Secure completion");
            if failure.is_none() {
                return Err(log_err);
            }
        }
        result
    }

    /// The payment of a session as its hosted page shows it.
    pub(crate) async fn status_payment(
        &self,
        session: &SessionRow,
    ) -> Result<Option<super::sessions::StatusPayment>> {
        let Some(id) = &session.payment_id else {
            return Ok(None);
        };
        Ok(self
            .store
            .payment(id)
            .await?
            .map(|p| super::sessions::StatusPayment {
                id: p.id.to_string(),
                status: p.state.status,
                decline_code: p.state.decline_code,
                challenge_url: p.state.challenge_url,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_checked() {
        assert_eq!(
            idempotency_key(None).err().map(|e| e.code()),
            Some("idempotency_key_missing")
        );
        for bad in ["", "has space", "日本", &"k".repeat(256)] {
            assert_eq!(
                idempotency_key(Some(bad)).err().map(|e| e.code()),
                Some("idempotency_key_invalid")
            );
        }
        assert_eq!(
            idempotency_key(Some("order-1:attempt-2")).expect("ok"),
            "order-1:attempt-2"
        );
    }

    #[test]
    fn processor_answers_become_states() {
        let before = PaymentState::default();
        let answer = json!({"id": "pay_sim", "status": "challenge_required", "decline_code": null,
            "amount_captured": 0, "amount_refunded": 0,
            "three_ds": {"id": "3ds_1", "challenge_url": "https://acs.example/acs/3ds_1"}});
        let state = state_from(&answer, &before).expect("state");
        assert_eq!(state.status, "challenge_required");
        assert_eq!(state.processor_reference.as_deref(), Some("pay_sim"));
        assert_eq!(
            state.challenge_url.as_deref(),
            Some("https://acs.example/acs/3ds_1")
        );
        let done = state_from(&json!({"id": "pay_sim", "status": "authorized"}), &state).expect("state");
        assert_eq!(done.challenge_url, None);
        assert_eq!(done.three_ds_id.as_deref(), Some("3ds_1"));
        assert!(state_from(&json!({"error": {}}), &before).is_none());
        assert_eq!(
            refusal(
                StatusCode::CONFLICT,
                &json!({"error": {"code": "idempotency_key_in_use"}})
            )
            .code(),
            "payment_in_progress"
        );
        assert_eq!(
            refusal(StatusCode::INTERNAL_SERVER_ERROR, &json!({})).code(),
            "processor_error"
        );
    }
}
