//! Card checks as a processor makes them, and the deterministic test cards.
//!
//! Order of checks: the number (digits only, length, Luhn, brand), the expiry
//! date (a real month, not past), the security code (4 digits for American
//! Express, 3 otherwise), then the issuer's decision, which for the test cards
//! in [`TEST_CARDS`] is fixed and for every other valid number is approval.

use anshin_crypto::pan::{Brand, Pan};

use crate::DeclineCode;

/// What the simulated issuer does with a card that passed the format checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Approved.
    Approve,
    /// Declined with this code.
    Decline(DeclineCode),
    /// 3-D Secure: the issuer wants a challenge before it decides (then approves).
    Challenge,
    /// 3-D Secure: authenticated without a challenge (frictionless), approved.
    Frictionless,
    /// Approved, but the answer comes only after the configured delay, to test
    /// client timeouts.
    Slow,
    /// The processor fails with HTTP 500 and records nothing.
    ServerError,
}

/// One row of the test card table.
#[derive(Debug, Clone, Copy)]
pub struct TestCard {
    pub number: &'static str,
    pub behaviour: Behaviour,
}

/// The test cards. Every other number that passes the checks is approved.
pub const TEST_CARDS: &[TestCard] = &[
    card("4111111111111111", Behaviour::Approve),
    card("5555555555554444", Behaviour::Approve),
    card("2223003122003222", Behaviour::Approve),
    card("3530111333300000", Behaviour::Approve),
    card("378282246310005", Behaviour::Approve),
    card("30569309025904", Behaviour::Approve),
    card("4000000000000002", Behaviour::Decline(DeclineCode::DoNotHonor)),
    card(
        "4000000000009995",
        Behaviour::Decline(DeclineCode::InsufficientFunds),
    ),
    card("4000000000000069", Behaviour::Decline(DeclineCode::ExpiredCard)),
    card("4000000000000127", Behaviour::Decline(DeclineCode::IncorrectCvc)),
    card("4000000000009987", Behaviour::Decline(DeclineCode::LostCard)),
    card("4000000000009979", Behaviour::Decline(DeclineCode::StolenCard)),
    card(
        "4000000000000119",
        Behaviour::Decline(DeclineCode::ProcessingError),
    ),
    card("4000000000003220", Behaviour::Challenge),
    card("3566002020360505", Behaviour::Challenge),
    card("4000000000003063", Behaviour::Frictionless),
    card("4000000000000077", Behaviour::Slow),
    card("4000000000000507", Behaviour::ServerError),
];

const fn card(number: &'static str, behaviour: Behaviour) -> TestCard {
    TestCard { number, behaviour }
}

/// The issuer's decision for a valid card number.
pub fn behaviour(pan: &Pan) -> Behaviour {
    TEST_CARDS
        .iter()
        .find(|c| c.number == pan.expose())
        .map_or(Behaviour::Approve, |c| c.behaviour)
}

/// The card fields after the format checks.
#[derive(Debug)]
pub struct CheckedCard {
    pub pan: Pan,
    pub exp_month: u8,
    pub exp_year: u16,
}

/// Checks number, expiry and security code, in that order. `today` is
/// (year, month) in UTC. On failure returns the decline code and, when the
/// number itself was valid, the card so the answer can name brand and last4.
pub fn check(
    number: &str,
    exp_month: u8,
    exp_year: u16,
    cvc: Option<&str>,
    today: (u16, u8),
) -> Result<CheckedCard, (DeclineCode, Option<CheckedCard>)> {
    // A processor's API takes plain digits; grouping is the payment page's business.
    let all_digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    let pan = all_digits
        .then(|| Pan::parse(number).ok())
        .flatten()
        .ok_or((DeclineCode::InvalidNumber, None))?;
    let checked = CheckedCard {
        pan,
        exp_month,
        exp_year,
    };
    if !(1..=12).contains(&exp_month) || !(2000..=2099).contains(&exp_year) {
        return Err((DeclineCode::InvalidExpiry, Some(checked)));
    }
    // A card is valid through the last day of its expiry month.
    if (exp_year, exp_month) < today {
        return Err((DeclineCode::ExpiredCard, Some(checked)));
    }
    if let Some(cvc) = cvc {
        let wanted = if checked.pan.brand() == Brand::Amex { 4 } else { 3 };
        if cvc.len() != wanted || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err((DeclineCode::InvalidCvc, Some(checked)));
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (u16, u8) = (2026, 12);

    fn ok(number: &str, cvc: &str) -> CheckedCard {
        check(number, 12, 2030, Some(cvc), TODAY).expect(number)
    }

    fn code(number: &str, month: u8, year: u16, cvc: Option<&str>) -> DeclineCode {
        match check(number, month, year, cvc, TODAY) {
            Ok(_) => panic!("{number} passed"),
            Err((code, _)) => code,
        }
    }

    #[test]
    fn every_test_card_is_a_valid_number_of_a_known_brand() {
        for card in TEST_CARDS {
            let pan = Pan::parse(card.number).expect(card.number);
            assert_eq!(behaviour(&pan), card.behaviour, "{}", card.number);
        }
        let numbers: std::collections::HashSet<_> = TEST_CARDS.iter().map(|c| c.number).collect();
        assert_eq!(numbers.len(), TEST_CARDS.len(), "a number appears twice");
    }

    #[test]
    fn brands_from_the_prefix_table() {
        let brand = |n: &str, cvc: &str| ok(n, cvc).pan.brand();
        assert_eq!(brand("4111111111111111", "123"), Brand::Visa);
        assert_eq!(brand("5555555555554444", "123"), Brand::Mastercard);
        assert_eq!(brand("2223003122003222", "123"), Brand::Mastercard);
        assert_eq!(brand("3530111333300000", "123"), Brand::Jcb);
        assert_eq!(brand("378282246310005", "1234"), Brand::Amex);
        assert_eq!(brand("30569309025904", "123"), Brand::Diners);
    }

    #[test]
    fn number_must_be_plain_digits_luhn_valid_and_of_a_brand() {
        assert_eq!(
            code("4111111111111112", 12, 2030, None),
            DeclineCode::InvalidNumber
        );
        assert_eq!(
            code("4111 1111 1111 1111", 12, 2030, None),
            DeclineCode::InvalidNumber
        );
        assert_eq!(code("", 12, 2030, None), DeclineCode::InvalidNumber);
        assert_eq!(
            code("9000000000000001", 12, 2030, None),
            DeclineCode::InvalidNumber
        );
        // Luhn-valid 15 digits starting 51: Mastercard numbers have 16.
        assert_eq!(
            code("510000000000003", 12, 2030, None),
            DeclineCode::InvalidNumber
        );
    }

    #[test]
    fn expiry_is_valid_through_its_month() {
        assert!(check("4111111111111111", 12, 2026, None, TODAY).is_ok());
        assert_eq!(code("4111111111111111", 11, 2026, None), DeclineCode::ExpiredCard);
        assert_eq!(code("4111111111111111", 1, 2020, None), DeclineCode::ExpiredCard);
        assert_eq!(
            code("4111111111111111", 13, 2030, None),
            DeclineCode::InvalidExpiry
        );
        assert_eq!(
            code("4111111111111111", 0, 2030, None),
            DeclineCode::InvalidExpiry
        );
        assert_eq!(code("4111111111111111", 12, 30, None), DeclineCode::InvalidExpiry);
        // A failed expiry still tells which card it was.
        let Err((_, Some(card))) = check("4111111111111111", 1, 2020, None, TODAY) else {
            panic!("expected the card back");
        };
        assert_eq!(card.pan.last4(), "1111");
    }

    #[test]
    fn cvc_length_per_brand() {
        assert_eq!(
            code("378282246310005", 12, 2030, Some("123")),
            DeclineCode::InvalidCvc
        );
        assert_eq!(
            code("4111111111111111", 12, 2030, Some("1234")),
            DeclineCode::InvalidCvc
        );
        assert_eq!(
            code("4111111111111111", 12, 2030, Some("12a")),
            DeclineCode::InvalidCvc
        );
        assert_eq!(
            code("3530111333300000", 12, 2030, Some("")),
            DeclineCode::InvalidCvc
        );
        assert!(
            check("4111111111111111", 12, 2030, None, TODAY).is_ok(),
            "CVC is optional"
        );
    }

    #[test]
    fn unknown_valid_numbers_are_approved() {
        assert_eq!(behaviour(&ok("4242424242424242", "123").pan), Behaviour::Approve);
    }
}
