//! Card numbers as people type them: any text must parse to a valid `Pan` or a
//! typed error, never panic; an accepted number satisfies every invariant.
#![no_main]

use anshin_crypto::pan::{Pan, luhn_valid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(pan) = Pan::parse(input) {
        let digits = pan.expose();
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!((12..=19).contains(&digits.len()));
        assert!(luhn_valid(digits.as_bytes()));
        assert_eq!(pan.last4(), digits[digits.len() - 4..]);
        assert!(!format!("{pan:?}").contains(digits));
        // The canonical form parses to the same number.
        assert_eq!(Pan::parse(digits).map(|p| p.expose().to_owned()).ok().as_deref(), Some(digits));
    }
});
