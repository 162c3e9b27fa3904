//! Check digits and numbering-plan rules.
//!
//! Every function takes ASCII digits (`b'0'..=b'9'`) as the tokenizer produces
//! them and returns `false`/`None` for anything else, so no input can make them
//! panic. None of them allocates or copies the digits.

/// The value of an ASCII digit, or `None`.
fn digit(d: u8) -> Option<u32> {
    d.is_ascii_digit().then(|| u32::from(d - b'0'))
}

fn all_digits(digits: &[u8]) -> bool {
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

// Card brands and the Luhn check live in the security kernel, one table for the
// vault and the scanner alike.
pub use anshin_crypto::pan::{Brand, luhn_valid};

/// Published test card numbers (brand sandboxes, ISO examples). A hit on one
/// of these is still reported, marked `test`, so that an inventory can tell a
/// developer fixture from a customer's card.
const TEST_PANS: &[&[u8]] = &[
    b"4111111111111111",
    b"4242424242424242",
    b"4012888888881881",
    b"4222222222222",
    b"4000056655665556",
    b"4000000000000002",
    b"4000000000003220",
    b"4988438843884305",
    b"5555555555554444",
    b"5105105105105100",
    b"5200828282828210",
    b"2223003122003222",
    b"2223000048400011",
    b"378282246310005",
    b"371449635398431",
    b"378734493671000",
    b"3530111333300000",
    b"3566002020360505",
    b"3566111111111113",
    b"30569309025904",
    b"38520000023237",
    b"36227206271667",
    b"6011111111111117",
    b"6011000990139424",
    b"6200000000000005",
    b"6250941006528599",
];

/// Whether `digits` is a well-known public test card number.
pub fn is_test_pan(digits: &[u8]) -> bool {
    TEST_PANS.contains(&digits)
}

/// My Number (個人番号) check digit, 総務省令第八十五号 第五条: with Pₙ the n-th
/// digit of the 11-digit base counted from the lowest position and
/// Qₙ = n + 1 (n ≤ 6) or n − 5 (n ≥ 7), the check digit is 11 − (Σ Pₙ·Qₙ mod 11),
/// or 0 when the remainder is 0 or 1.
pub fn my_number_valid(digits: &[u8]) -> bool {
    if digits.len() != 12 || !all_digits(digits) {
        return false;
    }
    let mut sum = 0u32;
    for n in 1..=11usize {
        let p = digit(digits[11 - n]).unwrap_or(0);
        let q = if n <= 6 { n as u32 + 1 } else { n as u32 - 5 };
        sum += p * q;
    }
    let rem = sum % 11;
    let check = if rem <= 1 { 0 } else { 11 - rem };
    digit(digits[11]) == Some(check)
}

/// Corporate number (法人番号) check digit, which comes *first*
/// (財務省令第七十号 第二条): with Pₙ the n-th digit of the 12-digit base counted
/// from the lowest position and Qₙ = 1 for odd n, 2 for even n, the check digit
/// is 9 − (Σ Pₙ·Qₙ mod 9), so it is never 0.
pub fn corporate_number_valid(digits: &[u8]) -> bool {
    if digits.len() != 13 || !all_digits(digits) {
        return false;
    }
    let mut sum = 0u32;
    for n in 1..=12usize {
        let p = digit(digits[13 - n]).unwrap_or(0);
        sum += p * if n % 2 == 1 { 1 } else { 2 };
    }
    digit(digits[0]) == Some(9 - sum % 9)
}

/// EAN-13 / JAN check digit (weights 1, 3 from the left). Used only to
/// recognise barcodes as hard negatives.
pub fn ean13_valid(digits: &[u8]) -> bool {
    if digits.len() != 13 || !all_digits(digits) {
        return false;
    }
    let sum: u32 = digits[..12]
        .iter()
        .enumerate()
        .map(|(i, &d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    digit(digits[12]) == Some((10 - sum % 10) % 10)
}

/// Japanese barcodes: EAN-13 with the GS1 Japan prefixes 45 and 49.
pub fn is_jan_code(digits: &[u8]) -> bool {
    (digits.starts_with(b"45") || digits.starts_with(b"49")) && ean13_valid(digits)
}

/// Kinds of Japanese telephone numbers (電気通信番号規則).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PhoneKind {
    /// 070/080/090 + 8 digits.
    Mobile,
    /// 050 + 8 digits.
    Ip,
    /// Fixed line: 10 digits, area code 0 + 1–4 digits.
    Fixed,
    /// 0120 (10 digits), 0800 (11 digits): free dial, usually a business.
    TollFree,
    /// 0570 (10 digits): shared-cost navi dial, usually a business.
    SharedCost,
}

impl PhoneKind {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Ip => "ip",
            Self::Fixed => "fixed",
            Self::TollFree => "toll_free",
            Self::SharedCost => "shared_cost",
        }
    }
}

/// Classifies a national-form number (leading 0, digits only). `groups` are
/// the lengths of the digit groups as written (empty or one entry when not
/// grouped); a grouped number must be grouped the way the plan groups it.
pub fn classify_phone(national: &[u8], groups: &[u8]) -> Option<PhoneKind> {
    if !all_digits(national) || national.first() != Some(&b'0') || national.len() < 10 {
        return None;
    }
    let len = national.len();
    let grouped = groups.len() > 1;
    let kind = match (&national[..3], len) {
        (b"070" | b"080" | b"090", 11) if national[3] != b'0' => PhoneKind::Mobile,
        (b"050", 11) if national[3] != b'0' => PhoneKind::Ip,
        _ if national.starts_with(b"0120") && len == 10 => PhoneKind::TollFree,
        _ if national.starts_with(b"0800") && len == 11 => PhoneKind::TollFree,
        _ if national.starts_with(b"0570") && len == 10 => PhoneKind::SharedCost,
        // Fixed lines: 0 then a non-zero digit; 0A0 prefixes are non-geographic.
        (_, 10) if national[1] != b'0' && national[2] != b'0' => PhoneKind::Fixed,
        _ => return None,
    };
    if grouped {
        let ok = match kind {
            PhoneKind::Mobile | PhoneKind::Ip => groups == [3, 4, 4],
            PhoneKind::TollFree if len == 10 => groups == [4, 3, 3] || groups == [4, 6],
            PhoneKind::TollFree => groups == [4, 3, 4],
            PhoneKind::SharedCost => groups == [4, 3, 3] || groups == [4, 2, 4],
            // Area code (2–5 digits with the 0) + exchange make 6 digits; 4-digit subscriber.
            PhoneKind::Fixed => {
                groups.len() == 3
                    && (2..=5).contains(&groups[0])
                    && groups[0] + groups[1] == 6
                    && groups[2] == 4
            }
        };
        if !ok {
            return None;
        }
    }
    Some(kind)
}

/// A month 01–12.
pub fn valid_month(mm: &[u8]) -> bool {
    match mm {
        [d] => (b'1'..=b'9').contains(d),
        [b'0', d] => (b'1'..=b'9').contains(d),
        [b'1', d] => (b'0'..=b'2').contains(d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"3530111333300000"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"41111a1111111111"));
    }

    #[test]
    fn brands_from_test_numbers() {
        let cases: &[(&[u8], Brand)] = &[
            (b"4111111111111111", Brand::Visa),
            (b"4222222222222", Brand::Visa),
            (b"5555555555554444", Brand::Mastercard),
            (b"2223003122003222", Brand::Mastercard),
            (b"378282246310005", Brand::Amex),
            (b"3530111333300000", Brand::Jcb),
            (b"3589000000000003", Brand::Jcb),
            (b"30569309025904", Brand::Diners),
            (b"36227206271667", Brand::Diners),
            (b"6011111111111117", Brand::Discover),
            (b"6200000000000005", Brand::UnionPay),
        ];
        for (digits, brand) in cases {
            assert_eq!(Brand::detect(digits), Some(*brand));
        }
        // Just outside the ranges.
        assert_eq!(Brand::detect(b"2220990000000000"), None);
        assert_eq!(Brand::detect(b"2721000000000000"), None);
        assert_eq!(Brand::detect(b"3527000000000000"), None);
        assert_eq!(Brand::detect(b"3590000000000000"), None);
        // Wrong lengths for the brand.
        assert_eq!(Brand::detect(b"37828224631000"), None);
        assert_eq!(Brand::detect(b"55555555555544441"), None);
    }

    #[test]
    fn my_number_known_value() {
        // The example valid number used by python-stdnum's documentation.
        assert!(my_number_valid(b"621498320257"));
        assert!(!my_number_valid(b"621498320258"));
        assert!(!my_number_valid(b"62149832025"));
    }

    #[test]
    fn corporate_number_known_values() {
        // Worked example from the ordinance commentary and python-stdnum's example.
        assert!(corporate_number_valid(b"7123456789012"));
        assert!(corporate_number_valid(b"5835678256246"));
        assert!(!corporate_number_valid(b"6123456789012"));
    }

    #[test]
    fn jan_codes() {
        assert!(is_jan_code(b"4901234567894"));
        assert!(!is_jan_code(b"4901234567895"));
        assert!(!is_jan_code(b"3901234567890"));
    }

    #[test]
    fn phone_plan() {
        assert_eq!(
            classify_phone(b"09012345678", &[3, 4, 4]),
            Some(PhoneKind::Mobile)
        );
        assert_eq!(classify_phone(b"09012345678", &[]), Some(PhoneKind::Mobile));
        assert_eq!(classify_phone(b"09002345678", &[]), None);
        assert_eq!(classify_phone(b"05012345678", &[3, 4, 4]), Some(PhoneKind::Ip));
        assert_eq!(classify_phone(b"0312345678", &[2, 4, 4]), Some(PhoneKind::Fixed));
        assert_eq!(classify_phone(b"0466123456", &[4, 2, 4]), Some(PhoneKind::Fixed));
        assert_eq!(classify_phone(b"0312345678", &[3, 4, 3]), None);
        assert_eq!(classify_phone(b"0312345678", &[2, 5, 3]), None);
        assert_eq!(
            classify_phone(b"0120123456", &[4, 3, 3]),
            Some(PhoneKind::TollFree)
        );
        assert_eq!(
            classify_phone(b"08001234567", &[4, 3, 4]),
            Some(PhoneKind::TollFree)
        );
        assert_eq!(classify_phone(b"0570064556", &[]), Some(PhoneKind::SharedCost));
        assert_eq!(classify_phone(b"0012345678", &[]), None);
        assert_eq!(classify_phone(b"1234567890", &[]), None);
    }

    #[test]
    fn months() {
        assert!(valid_month(b"01") && valid_month(b"12") && valid_month(b"9"));
        assert!(!valid_month(b"00") && !valid_month(b"13") && !valid_month(b"0"));
    }

    /// Completes an 11-digit base with its My Number check digit.
    pub(crate) fn with_my_number_check(base: &[u8; 11]) -> [u8; 12] {
        let mut out = [b'0'; 12];
        out[..11].copy_from_slice(base);
        for c in b'0'..=b'9' {
            out[11] = c;
            if my_number_valid(&out) {
                break;
            }
        }
        out
    }

    /// Σ Pₙ·Qₙ mod 11 of a 12-digit My Number's base.
    fn my_number_remainder(d: &[u8; 12]) -> u32 {
        (1..=11usize)
            .map(|n| u32::from(d[11 - n] - b'0') * if n <= 6 { n as u32 + 1 } else { n as u32 - 5 })
            .sum::<u32>()
            % 11
    }

    proptest! {
        /// Every single-digit change is caught except one the statute builds in:
        /// remainders 0 and 1 both give check digit 0, so a change that moves the
        /// remainder between 0 and 1 keeps the number valid. The test pins that
        /// down as the only exception.
        #[test]
        fn any_single_digit_change_breaks_my_number(base in proptest::array::uniform11(b'0'..=b'9'),
                                                      pos in 0usize..12, delta in 1u8..10) {
            let good = with_my_number_check(&base);
            prop_assert!(my_number_valid(&good));
            let mut bad = good;
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            let (r1, r2) = (my_number_remainder(&good), my_number_remainder(&bad));
            let invisible = pos < 11 && r1 <= 1 && r2 <= 1;
            prop_assert_eq!(my_number_valid(&bad), invisible);
        }

        #[test]
        fn any_single_digit_change_breaks_luhn(body in proptest::collection::vec(b'0'..=b'9', 15),
                                               pos in 0usize..16, delta in 1u8..10) {
            let mut good = body.clone();
            good.push(b'0');
            for c in b'0'..=b'9' {
                good[15] = c;
                if luhn_valid(&good) { break; }
            }
            prop_assert!(luhn_valid(&good));
            let mut bad = good.clone();
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn_valid(&bad));
        }

        #[test]
        fn any_single_digit_change_breaks_corporate_number(base in proptest::array::uniform12(b'0'..=b'9'),
                                                           pos in 0usize..13, delta in 1u8..10) {
            let mut good = [b'0'; 13];
            good[1..].copy_from_slice(&base);
            for c in b'1'..=b'9' {
                good[0] = c;
                if corporate_number_valid(&good) { break; }
            }
            prop_assert!(corporate_number_valid(&good));
            let mut bad = good;
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            // Weights 1 and 2 mod 9: only a 0↔9 change in the base is invisible.
            let invisible = pos > 0 && (good[pos] - b'0').abs_diff(bad[pos] - b'0') == 9;
            prop_assert_eq!(corporate_number_valid(&bad), invisible);
        }

        #[test]
        fn validators_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = luhn_valid(&bytes);
            let _ = Brand::detect(&bytes);
            let _ = my_number_valid(&bytes);
            let _ = corporate_number_valid(&bytes);
            let _ = ean13_valid(&bytes);
            let _ = classify_phone(&bytes, &[]);
            prop_assert!(true);
        }
    }
}
