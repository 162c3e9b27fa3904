//! Payments and their state machine. Pure: every operation takes the current
//! time (Unix seconds) so tests can move the clock.
//!
//! ```text
//! challenge_required ─complete(3DS ok)──▶ authorized ─capture─▶ captured ─refund─▶ partially_refunded ─refund─▶ refunded
//!        │                                    │  │                   └────────────refund (all)──────────────────▶ refunded
//!        ├─complete(3DS failed)─▶ declined    │  └─void─▶ voided
//!        └─time─▶ expired                     └─time─▶ expired
//! ```
//! A capture happens once; capturing less than authorized releases the rest.
//! Refunds never exceed what was captured. `declined`, `voided`, `expired` and
//! `refunded` are final.

use std::fmt;

use anshin_crypto::pan::Brand;

use crate::money::Money;

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    ChallengeRequired,
    Authorized,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
    Expired,
    Declined,
}

impl Status {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChallengeRequired => "challenge_required",
            Self::Authorized => "authorized",
            Self::Captured => "captured",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Voided => "voided",
            Self::Expired => "expired",
            Self::Declined => "declined",
        }
    }
}

/// Why the issuer or the processor declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineCode {
    InsufficientFunds,
    DoNotHonor,
    ExpiredCard,
    IncorrectCvc,
    LostCard,
    StolenCard,
    ProcessingError,
    InvalidNumber,
    InvalidExpiry,
    InvalidCvc,
    AuthenticationFailed,
}

impl DeclineCode {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::DoNotHonor => "do_not_honor",
            Self::ExpiredCard => "expired_card",
            Self::IncorrectCvc => "incorrect_cvc",
            Self::LostCard => "lost_card",
            Self::StolenCard => "stolen_card",
            Self::ProcessingError => "processing_error",
            Self::InvalidNumber => "invalid_number",
            Self::InvalidExpiry => "invalid_expiry",
            Self::InvalidCvc => "invalid_cvc",
            Self::AuthenticationFailed => "authentication_failed",
        }
    }
}

/// What a payment shows of its card: never the number.
#[derive(Debug, Clone)]
pub struct CardSummary {
    pub brand: Brand,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

/// 3-D Secure outcome of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStatus {
    Pending,
    Succeeded,
    Failed,
}

impl AuthStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// The 3-D Secure part of a payment.
#[derive(Debug, Clone)]
pub struct ThreeDs {
    pub id: String,
    /// True for a challenge, false for frictionless authentication.
    pub challenge: bool,
    pub status: AuthStatus,
    /// Wrong one-time codes the cardholder may still enter.
    pub attempts_left: u8,
    /// Where the ACS sends the cardholder's browser afterwards.
    pub return_url: Option<String>,
}

/// A refund of (part of) a captured payment.
#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub amount: u64,
    pub created: i64,
}

/// A payment as the processor keeps it.
#[derive(Debug, Clone)]
pub struct Payment {
    pub id: String,
    pub money: Money,
    /// Capture at once when authorized.
    pub capture: bool,
    pub reference: Option<String>,
    pub card: Option<CardSummary>,
    pub status: Status,
    pub decline_code: Option<DeclineCode>,
    pub amount_captured: u64,
    pub refunds: Vec<Refund>,
    pub three_ds: Option<ThreeDs>,
    pub created: i64,
    /// When an uncaptured authorization (or an unfinished challenge) lapses.
    pub expires_at: i64,
}

/// A forbidden operation. Carries no card data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerError {
    /// The operation is not allowed in this state.
    InvalidState(Status),
    /// The authorization lapsed before the operation.
    Expired,
    /// Zero or more than what is left to capture or refund.
    AmountTooLarge,
    /// An amount of zero.
    AmountZero,
    /// The 3-D Secure challenge is not finished yet.
    AuthenticationPending,
}

impl LedgerError {
    /// The stable error code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidState(_) => "invalid_state",
            Self::Expired => "authorization_expired",
            Self::AmountTooLarge => "amount_too_large",
            Self::AmountZero => "amount_invalid",
            Self::AuthenticationPending => "authentication_pending",
        }
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidState(s) => write!(f, "not allowed while the payment is {}", s.as_str()),
            Self::Expired => f.write_str("the authorization has expired; authorize again"),
            Self::AmountTooLarge => f.write_str("amount is more than what is left to capture or refund"),
            Self::AmountZero => f.write_str("amount must be at least 1 minor unit"),
            Self::AuthenticationPending => {
                f.write_str("the cardholder has not finished the 3-D Secure challenge")
            }
        }
    }
}

impl Payment {
    /// Total refunded so far.
    pub fn amount_refunded(&self) -> u64 {
        self.refunds.iter().map(|r| r.amount).sum()
    }

    /// What a capture may still take: the whole authorization while authorized, else nothing.
    pub fn amount_capturable(&self) -> u64 {
        if self.status == Status::Authorized {
            self.money.amount
        } else {
            0
        }
    }

    /// Lets time act: an unfinished challenge or an uncaptured authorization lapses.
    pub fn refresh(&mut self, now: i64) {
        if matches!(self.status, Status::Authorized | Status::ChallengeRequired) && now >= self.expires_at {
            self.status = Status::Expired;
        }
    }

    /// The status to reach once the issuer approves.
    pub fn approved_status(&self) -> Status {
        if self.capture {
            Status::Captured
        } else {
            Status::Authorized
        }
    }

    /// Approves: captures at once if the payment asked for it.
    pub fn approve(&mut self) {
        self.status = self.approved_status();
        if self.status == Status::Captured {
            self.amount_captured = self.money.amount;
        }
    }

    /// Captures `amount` (all if `None`) of an authorization, once.
    pub fn capture(&mut self, amount: Option<u64>, now: i64) -> Result<(), LedgerError> {
        self.refresh(now);
        self.require(&[Status::Authorized])?;
        let amount = checked_amount(amount, self.money.amount)?;
        self.amount_captured = amount;
        self.status = Status::Captured;
        Ok(())
    }

    /// Cancels an authorization before capture.
    pub fn void(&mut self, now: i64) -> Result<(), LedgerError> {
        self.refresh(now);
        self.require(&[Status::Authorized])?;
        self.status = Status::Voided;
        Ok(())
    }

    /// Refunds `amount` (all that is left if `None`) of what was captured.
    pub fn refund(&mut self, amount: Option<u64>, id: String, now: i64) -> Result<Refund, LedgerError> {
        self.require(&[Status::Captured, Status::PartiallyRefunded])?;
        let left = self.amount_captured - self.amount_refunded();
        let amount = checked_amount(amount, left)?;
        let refund = Refund {
            id,
            amount,
            created: now,
        };
        self.refunds.push(refund.clone());
        self.status = if amount == left {
            Status::Refunded
        } else {
            Status::PartiallyRefunded
        };
        Ok(refund)
    }

    /// Finishes a payment after its 3-D Secure challenge.
    pub fn complete(&mut self, now: i64) -> Result<(), LedgerError> {
        self.refresh(now);
        self.require(&[Status::ChallengeRequired])?;
        match self.three_ds.as_ref().map(|t| t.status) {
            Some(AuthStatus::Succeeded) => self.approve(),
            Some(AuthStatus::Failed) => {
                self.status = Status::Declined;
                self.decline_code = Some(DeclineCode::AuthenticationFailed);
            }
            Some(AuthStatus::Pending) | None => return Err(LedgerError::AuthenticationPending),
        }
        Ok(())
    }

    fn require(&self, allowed: &[Status]) -> Result<(), LedgerError> {
        match self.status {
            s if allowed.contains(&s) => Ok(()),
            Status::Expired => Err(LedgerError::Expired),
            s => Err(LedgerError::InvalidState(s)),
        }
    }
}

fn checked_amount(amount: Option<u64>, left: u64) -> Result<u64, LedgerError> {
    match amount {
        None => Ok(left),
        Some(0) => Err(LedgerError::AmountZero),
        Some(a) if a > left => Err(LedgerError::AmountTooLarge),
        Some(a) => Ok(a),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::money::Currency;

    const ALL: [Status; 8] = [
        Status::ChallengeRequired,
        Status::Authorized,
        Status::Captured,
        Status::PartiallyRefunded,
        Status::Refunded,
        Status::Voided,
        Status::Expired,
        Status::Declined,
    ];

    fn payment(status: Status, three_ds: Option<AuthStatus>) -> Payment {
        let captured = matches!(
            status,
            Status::Captured | Status::PartiallyRefunded | Status::Refunded
        );
        Payment {
            id: "pay_test".into(),
            money: Money::new(1000, Currency::parse("JPY").expect("JPY")).expect("amount"),
            capture: false,
            reference: None,
            card: None,
            status,
            decline_code: None,
            amount_captured: if captured { 1000 } else { 0 },
            refunds: match status {
                Status::PartiallyRefunded => vec![Refund {
                    id: "re_1".into(),
                    amount: 100,
                    created: 0,
                }],
                Status::Refunded => vec![Refund {
                    id: "re_1".into(),
                    amount: 1000,
                    created: 0,
                }],
                _ => Vec::new(),
            },
            three_ds: three_ds.map(|status| ThreeDs {
                id: "3ds_test".into(),
                challenge: true,
                status,
                attempts_left: 3,
                return_url: None,
            }),
            created: 0,
            expires_at: 100,
        }
    }

    /// Every operation from every state: the resulting state or the error.
    #[test]
    fn every_transition() {
        use Status::*;
        type Op = fn(&mut Payment) -> Result<(), LedgerError>;
        let ops: [(&str, Op); 4] = [
            ("capture", |p| p.capture(None, 10)),
            ("void", |p| p.void(10)),
            ("refund", |p| p.refund(None, "re_x".into(), 10).map(|_| ())),
            ("complete", |p| p.complete(10)),
        ];
        let allowed: &[(Status, &str, Status)] = &[
            (Authorized, "capture", Captured),
            (Authorized, "void", Voided),
            (Captured, "refund", Refunded),
            (PartiallyRefunded, "refund", Refunded),
            (ChallengeRequired, "complete", Authorized),
        ];
        for from in ALL {
            for (name, op) in ops {
                let mut p = payment(from, Some(AuthStatus::Succeeded));
                let result = op(&mut p);
                match allowed.iter().find(|(f, n, _)| *f == from && *n == name) {
                    Some((_, _, to)) => {
                        assert_eq!(result, Ok(()), "{name} from {from:?}");
                        assert_eq!(p.status, *to, "{name} from {from:?}");
                    }
                    None => {
                        let expected = if from == Expired {
                            LedgerError::Expired
                        } else {
                            LedgerError::InvalidState(from)
                        };
                        assert_eq!(result, Err(expected), "{name} from {from:?} must be refused");
                        assert_eq!(p.status, from, "a refused {name} changes nothing");
                    }
                }
            }
        }
    }

    #[test]
    fn partial_capture_releases_the_rest_and_happens_once() {
        let mut p = payment(Status::Authorized, None);
        assert_eq!(p.amount_capturable(), 1000);
        assert_eq!(p.capture(Some(0), 1), Err(LedgerError::AmountZero));
        assert_eq!(p.capture(Some(1001), 1), Err(LedgerError::AmountTooLarge));
        assert_eq!(p.capture(Some(600), 1), Ok(()));
        assert_eq!((p.amount_captured, p.amount_capturable()), (600, 0));
        assert_eq!(
            p.capture(Some(400), 2),
            Err(LedgerError::InvalidState(Status::Captured))
        );
        assert_eq!(p.void(2), Err(LedgerError::InvalidState(Status::Captured)));
    }

    #[test]
    fn refunds_stop_at_the_captured_amount() {
        let mut p = payment(Status::Authorized, None);
        p.capture(Some(700), 1).expect("capture");
        assert_eq!(
            p.refund(Some(701), "re_1".into(), 2).err(),
            Some(LedgerError::AmountTooLarge)
        );
        assert_eq!(p.refund(Some(300), "re_1".into(), 2).map(|r| r.amount), Ok(300));
        assert_eq!(p.status, Status::PartiallyRefunded);
        assert_eq!(
            p.refund(Some(401), "re_2".into(), 3).err(),
            Some(LedgerError::AmountTooLarge)
        );
        assert_eq!(
            p.refund(None, "re_2".into(), 3).map(|r| r.amount),
            Ok(400),
            "None refunds what is left"
        );
        assert_eq!((p.status, p.amount_refunded()), (Status::Refunded, 700));
        assert_eq!(
            p.refund(Some(1), "re_3".into(), 4).err(),
            Some(LedgerError::InvalidState(Status::Refunded))
        );
    }

    #[test]
    fn authorizations_and_challenges_expire() {
        let mut p = payment(Status::Authorized, None);
        assert_eq!(p.capture(None, 100), Err(LedgerError::Expired));
        assert_eq!(p.status, Status::Expired);
        let mut p = payment(Status::Authorized, None);
        assert_eq!(p.void(99), Ok(()), "one second before expiry");
        let mut p = payment(Status::ChallengeRequired, Some(AuthStatus::Succeeded));
        assert_eq!(p.complete(100), Err(LedgerError::Expired));
        // Captured money does not expire.
        let mut p = payment(Status::Captured, None);
        p.refresh(1_000_000);
        assert_eq!(p.status, Status::Captured);
    }

    #[test]
    fn completion_follows_the_challenge() {
        let mut p = payment(Status::ChallengeRequired, Some(AuthStatus::Pending));
        assert_eq!(p.complete(1), Err(LedgerError::AuthenticationPending));
        assert_eq!(p.status, Status::ChallengeRequired);
        let mut p = payment(Status::ChallengeRequired, Some(AuthStatus::Failed));
        assert_eq!(p.complete(1), Ok(()));
        assert_eq!(
            (p.status, p.decline_code),
            (Status::Declined, Some(DeclineCode::AuthenticationFailed))
        );
        assert_eq!(
            p.capture(None, 2),
            Err(LedgerError::InvalidState(Status::Declined)),
            "a decline is never capturable"
        );
        let mut p = payment(Status::ChallengeRequired, Some(AuthStatus::Succeeded));
        p.capture = true;
        assert_eq!(p.complete(1), Ok(()));
        assert_eq!(
            (p.status, p.amount_captured),
            (Status::Captured, 1000),
            "capture: true captures on completion"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Capture(Option<u64>),
        Void,
        Refund(Option<u64>),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let amount = prop_oneof![Just(None), (0u64..1500).prop_map(Some)];
        prop_oneof![
            amount.clone().prop_map(Op::Capture),
            Just(Op::Void),
            amount.prop_map(Op::Refund),
            (0i64..60).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Under any sequence of operations refunds never exceed captures,
        /// captures never exceed the authorization, and a capture happens once.
        #[test]
        fn money_is_conserved(ops in proptest::collection::vec(op(), 0..30)) {
            let mut p = payment(Status::Authorized, None);
            let mut now = 0;
            let mut captures = 0;
            for op in ops {
                let before = p.amount_captured;
                match op {
                    Op::Capture(a) => { let _ = p.capture(a, now); }
                    Op::Void => { let _ = p.void(now); }
                    Op::Refund(a) => { let _ = p.refund(a, "re".into(), now); }
                    Op::Wait(s) => { now += s; p.refresh(now); }
                }
                if p.amount_captured != before { captures += 1; }
                prop_assert!(p.amount_refunded() <= p.amount_captured);
                prop_assert!(p.amount_captured <= p.money.amount);
                prop_assert!(captures <= 1);
                prop_assert!(p.refunds.iter().all(|r| r.amount > 0));
            }
        }
    }
}
