//! Personal data parsed at the edge: names, kana, postal codes, addresses,
//! Japanese phone numbers and e-mail addresses.
//!
//! Input is NFKC-normalised first, so full-width digits and letters (０９０,
//! ｔａｒｏ＠…) and half-width katakana become their standard forms. Every value
//! comes back as a [`SecretString`]; errors name the field, never the value.

use anshin_crypto::secret::SecretString;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroize;

use crate::error::{Error, Result};

fn nfkc(value: &str) -> String {
    value.nfkc().collect()
}

/// Runs `check` on the NFKC form of `value`, wiping the intermediate on failure.
fn parsed(
    value: &str,
    check: impl FnOnce(&str) -> Option<String>,
    error: impl FnOnce() -> Error,
) -> Result<SecretString> {
    let mut normal = nfkc(value);
    let result = check(normal.trim());
    normal.zeroize();
    result.map(SecretString::new).ok_or_else(error)
}

fn free_text(value: &str, max: usize) -> Option<String> {
    let count = value.chars().count();
    (count > 0 && count <= max && !value.chars().any(char::is_control)).then(|| value.to_owned())
}

/// A person's name (漢字 or Latin), 1–100 characters.
pub fn name(value: &str) -> Result<SecretString> {
    parsed(
        value,
        |v| free_text(v, 100),
        || {
            Error::invalid(
                "invalid_name",
                "name must be 1 to 100 characters without control characters",
            )
        },
    )
}

/// A name in kana (フリガナ): katakana, hiragana, the long-vowel mark, middle dot and spaces.
pub fn name_kana(value: &str) -> Result<SecretString> {
    parsed(
        value,
        |v| {
            let ok = v
                .chars()
                .all(|c| matches!(c, '\u{3041}'..='\u{309F}' | '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}'));
            (ok && !v.is_empty() && v.chars().count() <= 100).then(|| v.to_owned())
        },
        || {
            Error::invalid(
                "invalid_name_kana",
                "name_kana must be 1 to 100 kana characters (カタカナ or ひらがな)",
            )
        },
    )
}

/// A Japanese postal code, `〒` optional, stored as `NNN-NNNN`.
pub fn postal_code(value: &str) -> Result<SecretString> {
    parsed(
        value,
        |v| {
            let v = v.trim_start_matches('〒').trim();
            let digits: String = v.chars().filter(|c| *c != '-').collect();
            let shape_ok = v.chars().all(|c| c.is_ascii_digit() || c == '-') && v.matches('-').count() <= 1;
            (shape_ok && digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{}-{}", &digits[..3], &digits[3..]))
        },
        || {
            Error::invalid(
                "invalid_postal_code",
                "postal_code must be a Japanese postal code such as 100-0001",
            )
        },
    )
}

/// A postal address, 1–300 characters.
pub fn address(value: &str) -> Result<SecretString> {
    parsed(
        value,
        |v| free_text(v, 300),
        || {
            Error::invalid(
                "invalid_address",
                "address must be 1 to 300 characters without control characters",
            )
        },
    )
}

/// A Japanese phone number (fixed line, mobile, 050, toll-free, or +81),
/// stored as its digits in domestic form.
pub fn phone(value: &str, code: &'static str, field: &'static str) -> Result<SecretString> {
    parsed(
        value,
        |v| {
            let mut digits = String::with_capacity(16);
            let rest = if let Some(rest) = v.strip_prefix("+81") {
                digits.push('0');
                rest.trim_start_matches([' ', '-', '(']).trim_start_matches('0')
            } else {
                v
            };
            for c in rest.chars() {
                match c {
                    '0'..='9' => digits.push(c),
                    ' ' | '-' | '(' | ')' => {}
                    _ => return None,
                }
            }
            let ok = digits.starts_with('0') && (10..=11).contains(&digits.len());
            ok.then_some(digits)
        },
        || {
            Error::invalid(
                code,
                format!("{field} must be a Japanese phone number such as 03-1234-5678 or 090-1234-5678"),
            )
        },
    )
}

/// An e-mail address: one `@`, a non-empty local part, a domain with a dot; the
/// domain is lower-cased.
pub fn email(value: &str) -> Result<SecretString> {
    parsed(
        value,
        |v| {
            let (local, domain) = v.rsplit_once('@')?;
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && local.bytes().all(|b| {
                    b.is_ascii_graphic()
                        && !matches!(b, b'@' | b'<' | b'>' | b'(' | b')' | b',' | b';' | b'"' | b'\\')
                });
            let domain = domain.to_ascii_lowercase();
            let domain_ok = domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            (local_ok && domain_ok && v.len() <= 254).then(|| format!("{local}@{domain}"))
        },
        || {
            Error::invalid(
                "invalid_email",
                "email must be an address such as name@example.jp",
            )
        },
    )
}

/// Masked e-mail: first character of the local part and the domain (`t***@example.jp`).
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Masked phone: the first three and last two digits (`090******78`).
pub fn mask_phone(phone: &str) -> String {
    let len = phone.len();
    if len < 6 || !phone.is_ascii() {
        return "*".repeat(len.max(4));
    }
    format!("{}{}{}", &phone[..3], "*".repeat(len - 5), &phone[len - 2..])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn postal_codes_normalise() {
        assert_eq!(
            postal_code("〒１００－０００１").expect("full-width").expose(),
            "100-0001"
        );
        assert_eq!(postal_code("1000001").expect("bare").expose(), "100-0001");
        assert_eq!(
            postal_code("100-00011").err().map(|e| e.code()),
            Some("invalid_postal_code")
        );
        assert!(postal_code("10-00001-").is_err());
    }

    #[test]
    fn phones_normalise() {
        assert_eq!(
            phone("０９０-１２３４-５６７８", "invalid_phone", "phone")
                .expect("mobile")
                .expose(),
            "09012345678"
        );
        assert_eq!(
            phone("+81 90 1234 5678", "invalid_phone", "phone")
                .expect("intl")
                .expose(),
            "09012345678"
        );
        assert_eq!(
            phone("03(1234)5678", "invalid_phone", "phone")
                .expect("tokyo")
                .expose(),
            "0312345678"
        );
        assert_eq!(
            phone("0120-123-456", "invalid_phone", "phone")
                .expect("toll free")
                .expose(),
            "0120123456"
        );
        assert!(phone("12345", "invalid_phone", "phone").is_err());
        assert!(phone("090-1234-567a", "invalid_phone", "phone").is_err());
    }

    #[test]
    fn emails_parse_and_mask() {
        let e = email("Ｔａｒｏ@Example.JP").expect("full-width");
        assert_eq!(e.expose(), "Taro@example.jp");
        assert_eq!(mask_email(e.expose()), "T***@example.jp");
        for bad in [
            "no-at",
            "@example.jp",
            "a@b",
            "a b@example.jp",
            "a@-x.jp",
            "a@x..jp",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kana_accepts_half_width_through_nfkc() {
        assert_eq!(
            name_kana("ﾔﾏﾀﾞ ﾀﾛｳ").expect("half-width").expose(),
            "ヤマダ タロウ"
        );
        assert!(name_kana("山田").is_err());
    }

    #[test]
    fn phone_mask_keeps_only_ends() {
        assert_eq!(mask_phone("09012345678"), "090******78");
        assert_eq!(mask_phone("0312345678"), "031*****78");
    }

    #[test]
    fn errors_never_echo_input() {
        let err = email("secret-value-xyz").expect_err("invalid");
        assert!(!err.message().contains("secret-value-xyz"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(input in "\\PC{0,80}") {
            let _ = name(&input);
            let _ = name_kana(&input);
            let _ = postal_code(&input);
            let _ = address(&input);
            let _ = phone(&input, "invalid_phone", "phone");
            let _ = email(&input);
        }

        #[test]
        fn valid_mobile_numbers_round_trip(prefix in prop::sample::select(vec!["070", "080", "090"]), rest in "[0-9]{8}") {
            let formatted = format!("{prefix}-{}-{}", &rest[..4], &rest[4..]);
            let parsed = phone(&formatted, "invalid_phone", "phone").expect("valid");
            prop_assert_eq!(parsed.expose(), format!("{prefix}{rest}"));
        }
    }
}
