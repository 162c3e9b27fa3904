//! Personal data as shops send it: every parser returns a normalised value or a
//! typed error whose message is the same whatever the input, so no input can
//! reach an error body.
#![no_main]

use anshin::vault::pii;
use anshin_crypto::secret::SecretString;
use libfuzzer_sys::fuzz_target;

type Parser = fn(&str) -> Result<SecretString, anshin::error::Error>;

fn phone(value: &str) -> Result<SecretString, anshin::error::Error> {
    pii::phone(value, "invalid_phone", "phone")
}

const PARSERS: [Parser; 6] = [pii::name, pii::name_kana, pii::postal_code, pii::address, phone, pii::email];

fuzz_target!(|input: &str| {
    for parse in PARSERS {
        match parse(input) {
            Ok(value) => {
                let _ = pii::mask_email(value.expose());
                let _ = pii::mask_phone(value.expose());
            }
            Err(err) => {
                // A control character is invalid for every parser: its error is the reference.
                let reference = parse("\u{0}").err().map(|e| (e.code(), e.message().to_owned()));
                assert_eq!(Some((err.code(), err.message().to_owned())), reference);
            }
        }
    }
});
