//! Primary account numbers (card numbers), parsed at the edge.
//!
//! Accepts what people type: ASCII or full-width digits, grouped by spaces or
//! hyphens. A [`Pan`] exists only if the number has a valid length, passes the
//! Luhn check and belongs to a known brand. It never prints itself and is wiped
//! on drop; [`Pan::expose`] is the one way to the digits.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

const MAX_DIGITS: usize = 19;
const MIN_DIGITS: usize = 12;

/// Card brands anshin recognises, by the issuer identification number ranges
/// the brands publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Brand {
    /// Visa: 4, 13/16/19 digits.
    Visa,
    /// Mastercard: 51–55 and 2221–2720, 16 digits.
    Mastercard,
    /// American Express: 34, 37, 15 digits.
    Amex,
    /// JCB: 3528–3589, 16–19 digits.
    Jcb,
    /// Diners Club: 300–305, 3095, 36, 38–39, 14–19 digits.
    Diners,
    /// Discover: 6011, 622126–622925, 644–649, 65, 16–19 digits.
    Discover,
    /// UnionPay: 62 and 81, 16–19 digits.
    UnionPay,
}

impl Brand {
    /// The stable lower-case name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Jcb => "jcb",
            Self::Diners => "diners",
            Self::Discover => "discover",
            Self::UnionPay => "unionpay",
        }
    }

    /// The inverse of [`Brand::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "visa" => Self::Visa,
            "mastercard" => Self::Mastercard,
            "amex" => Self::Amex,
            "jcb" => Self::Jcb,
            "diners" => Self::Diners,
            "discover" => Self::Discover,
            "unionpay" => Self::UnionPay,
            _ => return None,
        })
    }

    /// Identifies the brand from the leading digits and the length (ASCII
    /// digits; anything else is `None`). Does not check Luhn. The one brand
    /// table of anshin: the vault and the discovery scanner both use it.
    pub fn detect(digits: &[u8]) -> Option<Self> {
        if digits.len() < MIN_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let prefix = |n: usize| -> u32 {
            digits
                .iter()
                .take(n)
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let len = digits.len();
        let (p2, p3, p4, p6) = (prefix(2), prefix(3), prefix(4), prefix(6));
        let brand = if digits[0] == b'4' {
            Self::Visa
        } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
            Self::Mastercard
        } else if p2 == 34 || p2 == 37 {
            Self::Amex
        } else if (3528..=3589).contains(&p4) {
            Self::Jcb
        } else if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 {
            Self::Diners
        } else if p4 == 6011 || (622_126..=622_925).contains(&p6) || (644..=649).contains(&p3) || p2 == 65 {
            Self::Discover
        } else if p2 == 62 || p2 == 81 {
            Self::UnionPay
        } else {
            return None;
        };
        let length_ok = match brand {
            Self::Visa => matches!(len, 13 | 16 | 19),
            Self::Mastercard => len == 16,
            Self::Amex => len == 15,
            Self::Diners => (14..=19).contains(&len),
            Self::Jcb | Self::Discover | Self::UnionPay => (16..=19).contains(&len),
        };
        length_ok.then_some(brand)
    }
}

/// Why a string is not a card number. Carries no digits of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanError {
    /// A character other than a digit, a space or a hyphen.
    InvalidCharacter,
    /// Fewer than 12 or more than 19 digits.
    Length,
    /// The Luhn check digit does not match.
    Luhn,
    /// No known brand issues numbers with this prefix and length.
    UnknownBrand,
}

impl fmt::Display for PanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidCharacter => "card number may contain only digits, spaces and hyphens",
            Self::Length => "card number must have 12 to 19 digits",
            Self::Luhn => "card number fails the Luhn check",
            Self::UnknownBrand => "card number is not from a supported brand",
        })
    }
}

impl std::error::Error for PanError {}

/// A valid card number. No `Debug` of the digits, no `Display`, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pan {
    digits: [u8; MAX_DIGITS],
    len: u8,
    #[zeroize(skip)]
    brand: Brand,
}

impl Pan {
    /// Parses a card number as a person would type it.
    pub fn parse(input: &str) -> Result<Self, PanError> {
        let mut digits = [0u8; MAX_DIGITS];
        let mut len = 0usize;
        let mut failure = None;
        for c in input.chars() {
            let digit = match c {
                '0'..='9' => c as u8,
                // Full-width digits (U+FF10–U+FF19), common in Japanese input.
                '０'..='９' => b'0' + (c as u32 - '０' as u32) as u8,
                ' ' | '\u{3000}' | '-' | '\u{FF0D}' | '\u{2010}' | '\u{2011}' | '\u{2212}' => continue,
                _ => {
                    failure = Some(PanError::InvalidCharacter);
                    break;
                }
            };
            if len == MAX_DIGITS {
                failure = Some(PanError::Length);
                break;
            }
            digits[len] = digit;
            len += 1;
        }
        let result = match failure {
            Some(err) => Err(err),
            None if len < MIN_DIGITS => Err(PanError::Length),
            None if !luhn_valid(&digits[..len]) => Err(PanError::Luhn),
            None => match Brand::detect(&digits[..len]) {
                Some(brand) => {
                    return Ok(Self {
                        digits,
                        len: len as u8,
                        brand,
                    });
                }
                None => Err(PanError::UnknownBrand),
            },
        };
        digits.zeroize();
        result
    }

    /// The digits, ASCII. Every call site is a place where the full number is used.
    pub fn expose(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The brand.
    pub fn brand(&self) -> Brand {
        self.brand
    }

    /// The last four digits, which PCI DSS 3.4.1 allows to be shown.
    pub fn last4(&self) -> String {
        let len = usize::from(self.len);
        String::from_utf8_lossy(&self.digits[len - 4..len]).into_owned()
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a `Pan` has at least 12 digits.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({}, <redacted>)", self.brand.as_str())
    }
}

/// True if `digits` are ASCII digits that pass the Luhn (mod 10) check.
pub fn luhn_valid(digits: &[u8]) -> bool {
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && luhn_sum(digits, false).is_multiple_of(10)
}

/// The digit that, appended to `payload`, makes a Luhn-valid number.
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    b'0' + ((10 - luhn_sum(payload, true) % 10) % 10) as u8
}

/// Luhn sum; `double_last` is true when the check digit is still to be appended.
fn luhn_sum(digits: &[u8], double_last: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if (i % 2 == 1) != double_last {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn brands_from_published_test_numbers() {
        let cases = [
            ("4111111111111111", Brand::Visa),
            ("4222222222222", Brand::Visa),
            ("5555555555554444", Brand::Mastercard),
            ("2223003122003222", Brand::Mastercard),
            ("378282246310005", Brand::Amex),
            ("3530111333300000", Brand::Jcb),
            ("3566002020360505", Brand::Jcb),
            ("30569309025904", Brand::Diners),
            ("36227206271667", Brand::Diners),
            ("6011111111111117", Brand::Discover),
            ("6200000000000005", Brand::UnionPay),
            ("8171999927660000", Brand::UnionPay),
        ];
        for (number, brand) in cases {
            let pan = Pan::parse(number).expect(number);
            assert_eq!(pan.brand(), brand, "{number}");
            assert_eq!(pan.expose(), number);
        }
    }

    #[test]
    fn accepts_full_width_digits_and_grouping() {
        let pan = Pan::parse("４１１１ １１１１-１１１１　1111").expect("full-width");
        assert_eq!(pan.expose(), "4111111111111111");
        assert_eq!(pan.last4(), "1111");
        assert_eq!(
            Pan::parse("3782 822463 10005").expect("amex 4-6-5").brand(),
            Brand::Amex
        );
    }

    #[test]
    fn rejects_with_reason() {
        assert_eq!(Pan::parse("4111111111111112").err(), Some(PanError::Luhn));
        assert_eq!(Pan::parse("41111111111").err(), Some(PanError::Length));
        assert_eq!(Pan::parse("41111111111111111111").err(), Some(PanError::Length));
        assert_eq!(
            Pan::parse("4111x11111111111").err(),
            Some(PanError::InvalidCharacter)
        );
        assert_eq!(Pan::parse("").err(), Some(PanError::Length));
        // Luhn-valid, but 9 is no brand's prefix.
        let mut payload = b"900000000000000".to_vec();
        payload.push(luhn_check_digit(&payload));
        let unknown = String::from_utf8(payload).expect("ascii");
        assert_eq!(Pan::parse(&unknown).err(), Some(PanError::UnknownBrand));
        // Mastercard has exactly 16 digits.
        let mut payload = b"55555555555544".to_vec();
        payload.push(luhn_check_digit(&payload));
        assert_eq!(
            Pan::parse(std::str::from_utf8(&payload).expect("ascii")).err(),
            Some(PanError::UnknownBrand)
        );
    }

    #[test]
    fn debug_never_prints_digits() {
        let pan = Pan::parse("4111111111111111").expect("valid");
        let printed = format!("{pan:?}");
        assert!(!printed.contains("4111") && !printed.contains("1111"));
    }

    proptest! {
        #[test]
        fn completed_numbers_pass_and_any_single_digit_change_fails(
            body in proptest::collection::vec(0u8..10, 11..18), pos in 0usize..19, delta in 1u8..10,
        ) {
            let mut digits: Vec<u8> = body.iter().map(|d| b'0' + d).collect();
            digits.push(luhn_check_digit(&digits));
            prop_assert!(luhn_valid(&digits));
            let pos = pos % digits.len();
            digits[pos] = b'0' + (digits[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn_valid(&digits));
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,40}") {
            let _ = Pan::parse(&input);
        }
    }
}
