//! The processor: payments, 3-D Secure transactions, idempotency keys and the
//! record of received card data, behind one lock. Every operation returns the
//! HTTP status and JSON body of its answer; the server only moves bytes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_crypto::token::random_token;
use data_encoding::HEXLOWER;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::api::{ApiError, AuthorizeRequest};
use crate::card::{self, Behaviour};
use crate::idempotency::{self, Answer, Begin};
use crate::ledger::{AuthStatus, CardSummary, DeclineCode, LedgerError, Payment, Status, ThreeDs};
use crate::money::credit_limit;
use crate::{Config, Error};

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status,
            body: e.body(),
        }
    }
}

/// What the simulator received for one payment, as keyed fingerprints: enough
/// for a test to prove which card number and security code arrived, never the
/// values themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub payment_id: String,
    /// Brand and last four digits, when the number was a valid card number.
    pub brand: Option<&'static str>,
    pub last4: Option<String>,
    /// [`crate::Simulator::pan_fingerprint`] of the number exactly as received.
    pub pan_fingerprint: String,
    /// [`crate::Simulator::cvc_fingerprint`] of the security code, if one came.
    pub cvc_fingerprint: Option<String>,
}

impl Received {
    pub fn to_json(&self) -> Value {
        json!({
            "object": "received",
            "payment_id": self.payment_id,
            "brand": self.brand,
            "last4": self.last4,
            "pan_fingerprint": self.pan_fingerprint,
            "cvc_fingerprint": self.cvc_fingerprint,
        })
    }
}

/// The issuer's decision for an authorization request, made before any state changes.
#[derive(Debug)]
pub struct Decision {
    pub(crate) behaviour: Behaviour,
    card: Option<CardSummary>,
    received: (String, Option<String>),
}

impl Decision {
    /// Whether the answer must wait for the configured delay.
    pub fn is_slow(&self) -> bool {
        self.behaviour == Behaviour::Slow
    }
}

struct State {
    payments: HashMap<String, Payment>,
    /// 3-D Secure transaction id → payment id.
    three_ds: HashMap<String, String>,
    idempotency: idempotency::Store,
    received: HashMap<String, Received>,
}

/// One simulated processor.
pub struct Processor {
    config: Config,
    fingerprints: FingerprintKey,
    base_url: String,
    state: Mutex<State>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

pub(crate) fn new_id(prefix: &str) -> String {
    // The system RNG failing is not something a test fixture can recover from.
    random_token(prefix).unwrap_or_else(|e| panic!("system random number generator failed: {e}"))
}

impl Processor {
    /// A processor whose links (challenge URLs) start with `base_url`.
    pub fn new(config: Config, base_url: String) -> Result<Self, Error> {
        let key = KeyBytes::generate().map_err(|e| Error::Setup(e.to_string()))?;
        let idempotency = idempotency::Store::new(seconds(config.idempotency_ttl));
        Ok(Self {
            config,
            fingerprints: FingerprintKey::new(&key),
            base_url,
            state: Mutex::new(State {
                payments: HashMap::new(),
                three_ds: HashMap::new(),
                idempotency,
                received: HashMap::new(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-updated in a way that
        // matters more than stopping every later test with a poison error.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keyed fingerprint of a card number as the simulator received it.
    pub fn pan_fingerprint(&self, number: &str) -> String {
        hex(&self.fingerprints.fingerprint("pan", number.as_bytes()))
    }

    /// Keyed fingerprint of a security code as the simulator received it.
    pub fn cvc_fingerprint(&self, cvc: &str) -> String {
        hex(&self.fingerprints.fingerprint("cvc", cvc.as_bytes()))
    }

    /// Keyed fingerprint of a request, for idempotency.
    pub fn request_fingerprint(&self, method: &str, path: &str, body: &[u8]) -> [u8; 32] {
        let mut message = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
        message.extend_from_slice(method.as_bytes());
        message.push(b' ');
        message.extend_from_slice(path.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(body);
        let fp = self.fingerprints.fingerprint("request", &message);
        zeroize::Zeroize::zeroize(&mut message);
        fp
    }

    /// Whether a presented API key is the configured one (always, if none is configured).
    pub fn api_key_ok(&self, presented: Option<&str>) -> bool {
        match &self.config.api_key {
            None => true,
            Some(key) => presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(key.expose().as_bytes()))),
        }
    }

    /// Reserves an idempotency key.
    pub fn begin(&self, key: &str, request: [u8; 32], now: i64) -> Begin {
        self.lock().idempotency.begin(key, request, now)
    }

    /// Stores the answer for a key, or releases the key after a server error
    /// so that a retry is processed again.
    pub fn finish(&self, key: &str, answer: Answer) {
        let mut state = self.lock();
        if answer.status >= 500 {
            state.idempotency.release(key);
        } else {
            state.idempotency.finish(key, answer);
        }
    }

    /// Checks the card and asks the (simulated) issuer. Changes nothing.
    pub fn decide(&self, req: &AuthorizeRequest, now: i64) -> Decision {
        let number = req.card.number.expose();
        let received = (
            self.pan_fingerprint(number),
            req.card.cvc.as_ref().map(|c| self.cvc_fingerprint(c.expose())),
        );
        let today = time::OffsetDateTime::from_unix_timestamp(now).map_or((2000, 1), |t| {
            (u16::try_from(t.year()).unwrap_or(u16::MAX), u8::from(t.month()))
        });
        let checked = card::check(
            number,
            req.card.exp_month,
            req.card.exp_year,
            req.card.cvc.as_ref().map(|c| c.expose()),
            today,
        );
        let summary = |c: &card::CheckedCard| CardSummary {
            brand: c.pan.brand(),
            last4: c.pan.last4(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
        };
        let (behaviour, card) = match checked {
            Ok(c) => {
                let behaviour = match card::behaviour(&c.pan) {
                    // The issuer's limit applies to cards it would otherwise approve.
                    Behaviour::Approve | Behaviour::Frictionless
                        if req.money.amount >= credit_limit(req.money.currency) =>
                    {
                        Behaviour::Decline(DeclineCode::InsufficientFunds)
                    }
                    b => b,
                };
                (behaviour, Some(summary(&c)))
            }
            Err((code, c)) => (Behaviour::Decline(code), c.as_ref().map(summary)),
        };
        Decision {
            behaviour,
            card,
            received,
        }
    }

    /// Carries out an authorization decided by [`Processor::decide`].
    pub fn authorize(&self, req: AuthorizeRequest, decision: Decision, now: i64) -> Reply {
        let id = new_id("pay");
        let mut payment = Payment {
            id: id.clone(),
            money: req.money,
            capture: req.capture,
            reference: req.reference,
            card: decision.card,
            status: Status::Declined,
            decline_code: None,
            amount_captured: 0,
            refunds: Vec::new(),
            three_ds: None,
            created: now,
            expires_at: now.saturating_add(seconds(self.config.authorization_ttl)),
        };
        match decision.behaviour {
            Behaviour::ServerError => return processor_failed(),
            Behaviour::Decline(code) => payment.decline_code = Some(code),
            Behaviour::Challenge => {
                payment.status = Status::ChallengeRequired;
                payment.three_ds = Some(ThreeDs {
                    id: new_id("3ds"),
                    challenge: true,
                    status: AuthStatus::Pending,
                    attempts_left: 3,
                    return_url: req.return_url,
                });
            }
            Behaviour::Frictionless => {
                payment.approve();
                payment.three_ds = Some(ThreeDs {
                    id: new_id("3ds"),
                    challenge: false,
                    status: AuthStatus::Succeeded,
                    attempts_left: 0,
                    return_url: None,
                });
            }
            Behaviour::Approve | Behaviour::Slow => payment.approve(),
        }
        let (pan_fingerprint, cvc_fingerprint) = decision.received;
        let received = Received {
            payment_id: id.clone(),
            brand: payment.card.as_ref().map(|c| c.brand.as_str()),
            last4: payment.card.as_ref().map(|c| c.last4.clone()),
            pan_fingerprint,
            cvc_fingerprint,
        };
        tracing::info!(
            payment = %id,
            status = payment.status.as_str(),
            decline_code = payment.decline_code.map(DeclineCode::as_str),
            brand = received.brand,
            "authorization"
        );
        let reply = self.payment_reply(&payment);
        let mut state = self.lock();
        if let Some(t) = &payment.three_ds {
            state.three_ds.insert(t.id.clone(), id.clone());
        }
        state.received.insert(id.clone(), received);
        state.payments.insert(id, payment);
        reply
    }

    /// Applies `op` to a payment and answers with the payment (or the error).
    pub fn update(&self, id: &str, op: impl FnOnce(&mut Payment) -> Result<(), LedgerError>) -> Reply {
        let mut state = self.lock();
        let Some(payment) = state.payments.get_mut(id) else {
            return not_found("payment");
        };
        let before = payment.status;
        match op(payment) {
            Ok(()) => {
                tracing::info!(payment = %id, from = before.as_str(), to = payment.status.as_str(), "transition");
                self.payment_reply(payment)
            }
            Err(e) => {
                let status = match e {
                    LedgerError::AmountTooLarge | LedgerError::AmountZero => 422,
                    _ => 409,
                };
                ApiError::new(status, "state_error", e.code(), e.to_string()).into()
            }
        }
    }

    /// The current state of a payment.
    pub fn get(&self, id: &str, now: i64) -> Reply {
        let mut state = self.lock();
        match state.payments.get_mut(id) {
            Some(p) => {
                p.refresh(now);
                self.payment_reply(p)
            }
            None => not_found("payment"),
        }
    }

    /// The 3-D Secure transaction, for polling.
    pub fn three_ds(&self, id: &str) -> Reply {
        let state = self.lock();
        let found = state
            .three_ds
            .get(id)
            .and_then(|p| state.payments.get(p))
            .and_then(|p| {
                p.three_ds
                    .as_ref()
                    .map(|t| three_ds_json(t, &p.id, &self.base_url))
            });
        match found {
            Some(body) => Reply { status: 200, body },
            None => not_found("3-D Secure transaction"),
        }
    }

    /// Runs `f` on the payment behind a 3-D Secure transaction (for the ACS pages).
    pub fn with_challenge<T>(
        &self,
        three_ds_id: &str,
        now: i64,
        f: impl FnOnce(&mut Payment) -> T,
    ) -> Option<T> {
        let mut state = self.lock();
        let payment_id = state.three_ds.get(three_ds_id)?.clone();
        let payment = state.payments.get_mut(&payment_id)?;
        payment.refresh(now);
        Some(f(payment))
    }

    /// What arrived for a payment.
    pub fn received(&self, payment_id: &str) -> Option<Received> {
        self.lock().received.get(payment_id).cloned()
    }

    fn payment_reply(&self, p: &Payment) -> Reply {
        Reply {
            status: if p.status == Status::Declined { 402 } else { 200 },
            body: payment_json(p, &self.base_url),
        }
    }
}

/// The answer of a processor that failed (HTTP 500): the client may retry.
pub fn processor_failed() -> Reply {
    ApiError::new(
        500,
        "api_error",
        "processor_error",
        "the processor failed; retry later",
    )
    .into()
}

fn not_found(what: &str) -> Reply {
    ApiError::new(
        404,
        "invalid_request_error",
        "not_found",
        format!("no such {what}"),
    )
    .into()
}

fn three_ds_json(t: &ThreeDs, payment_id: &str, base_url: &str) -> Value {
    json!({
        "object": "three_ds",
        "id": t.id,
        "payment_id": payment_id,
        "version": "2.2.0",
        "flow": if t.challenge { "challenge" } else { "frictionless" },
        "status": t.status.as_str(),
        // ECI 05 (Visa, JCB, Amex) / 02 (Mastercard) mean "fully authenticated";
        // the simulator reports the Visa value for every brand.
        "eci": (t.status == AuthStatus::Succeeded).then_some("05"),
        "challenge_url": (t.challenge && t.status == AuthStatus::Pending)
            .then(|| format!("{base_url}/acs/{}", t.id)),
    })
}

/// The payment object on the wire.
pub fn payment_json(p: &Payment, base_url: &str) -> Value {
    json!({
        "object": "payment",
        "id": p.id,
        "status": p.status.as_str(),
        "amount": p.money.amount,
        "currency": p.money.currency.code(),
        "capture": p.capture,
        "amount_capturable": p.amount_capturable(),
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded(),
        "decline_code": p.decline_code.map(DeclineCode::as_str),
        "reference": p.reference,
        "card": p.card.as_ref().map(|c| json!({
            "brand": c.brand.as_str(),
            "last4": c.last4,
            "exp_month": c.exp_month,
            "exp_year": c.exp_year,
        })),
        "three_ds": p.three_ds.as_ref().map(|t| three_ds_json(t, &p.id, base_url)),
        "refunds": p.refunds.iter().map(|r| json!({
            "id": r.id, "amount": r.amount, "created": r.created,
        })).collect::<Vec<_>>(),
        "created": p.created,
        "authorization_expires_at": matches!(p.status, Status::Authorized | Status::ChallengeRequired)
            .then_some(p.expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_authorize;
    use crate::card::TEST_CARDS;
    use anshin_crypto::secret::SecretString;

    const NOW: i64 = 1_800_000_000; // 2027-01-15

    fn processor() -> Processor {
        Processor::new(Config::default(), "https://127.0.0.1:1".into()).expect("processor")
    }

    fn request(number: &str, amount: u64, currency: &str, capture: bool) -> AuthorizeRequest {
        let cvc = if number.starts_with("37") { "1234" } else { "123" };
        let body = json!({"amount": amount, "currency": currency, "capture": capture,
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": cvc}});
        parse_authorize(body.to_string().as_bytes()).expect("valid request")
    }

    fn pay(p: &Processor, number: &str, amount: u64, capture: bool) -> Reply {
        let req = request(number, amount, "JPY", capture);
        let decision = p.decide(&req, NOW);
        p.authorize(req, decision, NOW)
    }

    #[test]
    fn each_test_card_has_its_outcome() {
        let p = processor();
        for card in TEST_CARDS {
            let reply = pay(&p, card.number, 1000, false);
            let (status, code, http) = match card.behaviour {
                Behaviour::Approve | Behaviour::Slow => ("authorized", None, 200),
                Behaviour::Frictionless => ("authorized", None, 200),
                Behaviour::Challenge => ("challenge_required", None, 200),
                Behaviour::Decline(c) => ("declined", Some(c.as_str()), 402),
                Behaviour::ServerError => {
                    assert_eq!(reply.status, 500, "{}", card.number);
                    assert_eq!(reply.body["error"]["code"], "processor_error");
                    continue;
                }
            };
            assert_eq!(reply.status, http, "{}", card.number);
            assert_eq!(reply.body["status"], status, "{}", card.number);
            assert_eq!(reply.body["decline_code"].as_str(), code, "{}", card.number);
            assert_eq!(reply.body["card"]["last4"], card.number[card.number.len() - 4..]);
            let id = reply.body["id"].as_str().expect("id");
            let received = p.received(id).expect("recorded");
            assert_eq!(received.pan_fingerprint, p.pan_fingerprint(card.number));
            assert!(
                !reply.body.to_string().contains(card.number),
                "the answer never carries the number"
            );
        }
    }

    #[test]
    fn three_ds_shapes() {
        let p = processor();
        let challenge = pay(&p, "4000000000003220", 1000, true);
        let t = &challenge.body["three_ds"];
        assert_eq!(
            (t["flow"].as_str(), t["status"].as_str()),
            (Some("challenge"), Some("pending"))
        );
        let url = t["challenge_url"].as_str().expect("challenge url");
        assert!(url.starts_with("https://127.0.0.1:1/acs/3ds_"), "{url}");
        assert_eq!(
            challenge.body["amount_capturable"], 0,
            "nothing to capture before authentication"
        );
        let frictionless = pay(&p, "4000000000003063", 1000, true);
        assert_eq!(frictionless.body["status"], "captured");
        assert_eq!(frictionless.body["three_ds"]["flow"], "frictionless");
        assert_eq!(frictionless.body["three_ds"]["eci"], "05");
        assert!(frictionless.body["three_ds"]["challenge_url"].is_null());
    }

    #[test]
    fn amount_above_the_credit_limit_is_declined() {
        let p = processor();
        assert_eq!(
            pay(&p, "4111111111111111", 999_999, false).body["status"],
            "authorized"
        );
        let over = pay(&p, "4111111111111111", 1_000_000, false);
        assert_eq!(
            (over.status, over.body["decline_code"].as_str()),
            (402, Some("insufficient_funds"))
        );
        let req = request("4111111111111111", 99_999_999, "USD", false);
        let decision = p.decide(&req, NOW);
        assert_eq!(
            p.authorize(req, decision, NOW).body["status"],
            "authorized",
            "999,999.99 USD is under the limit"
        );
    }

    #[test]
    fn format_failures_decline_without_a_capturable_authorization() {
        let p = processor();
        let body = json!({"amount": 100, "currency": "JPY", "capture": false,
            "card": {"number": "4111111111111112", "exp_month": 12, "exp_year": 2030}});
        let req = parse_authorize(body.to_string().as_bytes()).expect("parses");
        let decision = p.decide(&req, NOW);
        let reply = p.authorize(req, decision, NOW);
        assert_eq!(
            (reply.status, reply.body["decline_code"].as_str()),
            (402, Some("invalid_number"))
        );
        assert!(reply.body["card"].is_null());
        let id = reply.body["id"].as_str().expect("id").to_owned();
        let capture = p.update(&id, |pay| pay.capture(None, NOW));
        assert_eq!(
            (capture.status, capture.body["error"]["code"].as_str()),
            (409, Some("invalid_state"))
        );
        let expired = json!({"amount": 100, "currency": "JPY",
            "card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2026}});
        let req = parse_authorize(expired.to_string().as_bytes()).expect("parses");
        let decision = p.decide(&req, NOW);
        assert_eq!(
            p.authorize(req, decision, NOW).body["decline_code"],
            "expired_card"
        );
    }

    #[test]
    fn api_key_is_checked_when_configured() {
        assert!(processor().api_key_ok(None));
        let config = Config {
            api_key: Some(SecretString::new("sk_test".into())),
            ..Config::default()
        };
        let p = Processor::new(config, "https://x".into()).expect("processor");
        assert!(p.api_key_ok(Some("sk_test")));
        assert!(!p.api_key_ok(Some("sk_tes")));
        assert!(!p.api_key_ok(None));
    }
}
