//! Processor routes' request templates and outbound routes' token paths
//! (operator input): any text parses to a template or a stable error, and a
//! template that parses always renders valid JSON with the card filled in.
#![no_main]

use anshin::proxy::outbound::JsonPath;
use anshin::proxy::template::{Template, Values};
use anshin_crypto::secret::SecretString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = JsonPath::parse(text);
    if let Ok(template) = Template::parse(text) {
        let (number, cvc, holder) = (
            SecretString::new("4111111111111111".into()),
            SecretString::new("123".into()),
            SecretString::new("TARO \"\\ YAMADA\u{1}".into()),
        );
        let mut out = Vec::new();
        template.render(
            &Values {
                number: &number,
                cvc: Some(&cvc),
                exp_month: 12,
                exp_year: 2031,
                holder_name: &holder,
                amount: 1000,
                currency: "JPY",
                capture: false,
                reference: "pay_x",
                return_url: None,
            },
            &mut out,
        );
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
});
