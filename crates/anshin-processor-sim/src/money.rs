//! Amounts in integer minor units of an ISO 4217 currency.
//!
//! Like the processors it stands in for, the simulator never sees decimals:
//! 1,000 yen is `amount: 1000, currency: "JPY"` (JPY has no minor unit) and
//! $10.00 is `amount: 1000, currency: "USD"`.

use std::fmt;

/// The largest amount a single payment may carry: 99,999,999 major units
/// (so 99,999,999 JPY or 99,999,999.99 USD), in minor units.
pub fn max_amount(currency: Currency) -> u64 {
    10u64.pow(8 + u32::from(currency.exponent)) - 1
}

/// The credit limit of every simulated card: 1,000,000 major units. An
/// authorization above it is declined with `insufficient_funds`.
pub fn credit_limit(currency: Currency) -> u64 {
    10u64.pow(6 + u32::from(currency.exponent))
}

/// An ISO 4217 currency that has a defined minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: iso_currency::Currency,
    exponent: u8,
}

impl Currency {
    /// Parses an upper-case ISO 4217 code. Codes without a minor unit (such as
    /// gold, `XAU`, or the testing code `XTS`) cannot be charged.
    pub fn parse(code: &str) -> Option<Self> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let currency = iso_currency::Currency::from_code(code)?;
        let exponent = u8::try_from(currency.exponent()?).ok()?;
        Some(Self {
            code: currency,
            exponent,
        })
    }

    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.code.code()
    }

    /// Decimal places of the minor unit (0 for JPY, 2 for USD, 3 for KWD).
    pub fn exponent(self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A positive amount within [`max_amount`] for its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub amount: u64,
    pub currency: Currency,
}

impl Money {
    /// Checks the amount against the currency's rules.
    pub fn new(amount: u64, currency: Currency) -> Option<Self> {
        (1..=max_amount(currency))
            .contains(&amount)
            .then_some(Self { amount, currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_per_currency() {
        let exp = |c: &str| Currency::parse(c).map(Currency::exponent);
        assert_eq!(exp("JPY"), Some(0));
        assert_eq!(exp("USD"), Some(2));
        assert_eq!(exp("EUR"), Some(2));
        assert_eq!(exp("KWD"), Some(3));
        assert_eq!(exp("XAU"), None, "gold has no minor unit");
        assert_eq!(exp("jpy"), None, "codes are upper case");
        assert_eq!(exp("ZZZ"), None);
        assert_eq!(exp("JPYY"), None);
    }

    #[test]
    fn amount_limits_follow_the_minor_unit() {
        let jpy = Currency::parse("JPY").expect("JPY");
        let usd = Currency::parse("USD").expect("USD");
        let kwd = Currency::parse("KWD").expect("KWD");
        assert!(Money::new(0, jpy).is_none());
        assert!(Money::new(1, jpy).is_some());
        assert!(Money::new(99_999_999, jpy).is_some());
        assert!(Money::new(100_000_000, jpy).is_none());
        assert!(Money::new(9_999_999_999, usd).is_some());
        assert!(Money::new(10_000_000_000, usd).is_none());
        assert_eq!(max_amount(kwd), 99_999_999_999);
        assert_eq!(credit_limit(jpy), 1_000_000);
        assert_eq!(credit_limit(usd), 100_000_000);
    }
}
