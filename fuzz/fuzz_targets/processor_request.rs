//! The processor simulator's request parsers: any bytes give a typed request
//! or a stable error, and an error never quotes the card number it was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = anshin_processor_sim::api::parse_authorize(data) {
        let body = e.body().to_string();
        assert!(!body.contains("4111111111111111"));
    }
    let _ = anshin_processor_sim::api::parse_amount(data);
    let _ = anshin_processor_sim::api::parse_empty(data);
    let _ = anshin_processor_sim::api::parse_fingerprint(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = anshin_processor_sim::api::return_origin(text);
    }
});
