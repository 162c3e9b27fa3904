//! The wire format: request bodies parsed into typed values at the edge, and
//! the error answer.
//!
//! Parse errors name the field (`param`) but never quote the input: serde's
//! own messages can contain the offending value, which may be a card number.

use std::fmt;

use anshin_crypto::secret::SecretString;
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::money::{Currency, Money, max_amount};

/// An error answer: `{"error": {"type", "code", "message", "param"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ApiError {
    /// A 400 for a malformed request.
    pub fn invalid(code: &'static str, param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param,
        }
    }

    /// Any other error.
    pub fn new(status: u16, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }})
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// A string field that holds card data or personal data: wiped on drop, never printed.
pub struct Secret(SecretString);

impl Secret {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(SecretString::new(s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    amount: u64,
    currency: String,
    #[serde(default = "default_capture")]
    capture: bool,
    card: CardBody,
    reference: Option<String>,
    three_ds: Option<ThreeDsBody>,
}

fn default_capture() -> bool {
    true
}

/// The card in an authorization request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBody {
    pub number: Secret,
    pub exp_month: u8,
    pub exp_year: u16,
    pub cvc: Option<Secret>,
    /// Accepted as processors do, and dropped unread.
    pub holder_name: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreeDsBody {
    return_url: Option<String>,
}

/// `POST /v1/payments`.
#[derive(Debug)]
pub struct AuthorizeRequest {
    pub money: Money,
    pub capture: bool,
    pub card: CardBody,
    pub reference: Option<String>,
    pub return_url: Option<String>,
}

/// `POST /v1/payments/{id}/capture` and `…/refunds`: an optional amount.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    pub amount: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

/// `POST /_sim/fingerprint`: the values a test wants to compare with what arrived.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintRequest {
    pub card_number: Secret,
    pub cvc: Option<Secret>,
}

/// Field paths that may be named in an error. Anything else (an unknown key
/// the client sent, which could itself be card data) is not echoed.
const PARAMS: &[&str] = &[
    "amount",
    "currency",
    "capture",
    "card",
    "card.number",
    "card.exp_month",
    "card.exp_year",
    "card.cvc",
    "card.holder_name",
    "reference",
    "three_ds",
    "three_ds.return_url",
    "card_number",
    "cvc",
];

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let param = PARAMS.iter().copied().find(|p| *p == path);
        let message = match (e.inner().classify(), param) {
            (serde_json::error::Category::Data, Some(p)) => {
                format!("{p} is missing or has the wrong type or value")
            }
            (serde_json::error::Category::Data, None) => {
                "the body has a field this API does not know".to_owned()
            }
            _ => "the body is not valid JSON".to_owned(),
        };
        ApiError::invalid("invalid_request", param, message)
    })?;
    de.end()
        .map_err(|_| ApiError::invalid("invalid_request", None, "the body has data after the JSON value"))?;
    Ok(value)
}

/// Parses an authorization request.
pub fn parse_authorize(body: &[u8]) -> Result<AuthorizeRequest, ApiError> {
    let raw: AuthorizeBody = parse(body)?;
    let currency = Currency::parse(&raw.currency).ok_or_else(|| {
        ApiError::invalid(
            "currency_invalid",
            Some("currency"),
            "currency must be an upper-case ISO 4217 code with a minor unit, such as JPY",
        )
    })?;
    let money = Money::new(raw.amount, currency).ok_or_else(|| {
        ApiError::invalid(
            "amount_invalid",
            Some("amount"),
            format!(
                "amount is in minor units of {currency} ({} decimals) and must be 1 to {}",
                currency.exponent(),
                max_amount(currency)
            ),
        )
    })?;
    if let Some(reference) = &raw.reference
        && (reference.is_empty() || reference.len() > 128 || reference.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "reference_invalid",
            Some("reference"),
            "reference must be 1 to 128 bytes without control characters",
        ));
    }
    let return_url = raw.three_ds.and_then(|t| t.return_url);
    if let Some(url) = &return_url {
        return_origin(url).ok_or_else(|| {
            ApiError::invalid(
                "return_url_invalid",
                Some("three_ds.return_url"),
                "three_ds.return_url must be an absolute http or https URL without a fragment, at most 2048 bytes",
            )
        })?;
    }
    Ok(AuthorizeRequest {
        money,
        capture: raw.capture,
        card: raw.card,
        reference: raw.reference,
        return_url,
    })
}

/// Parses the body of a capture or refund (empty means "all").
pub fn parse_amount(body: &[u8]) -> Result<AmountRequest, ApiError> {
    parse(body)
}

/// Parses the body of a void or complete: empty or `{}`.
pub fn parse_empty(body: &[u8]) -> Result<(), ApiError> {
    parse::<EmptyBody>(body).map(|_| ())
}

/// Parses a fingerprint request.
pub fn parse_fingerprint(body: &[u8]) -> Result<FingerprintRequest, ApiError> {
    parse(body)
}

/// The origin (`scheme://host[:port]`) of an absolute http(s) URL, which the
/// ACS page needs for its Content-Security-Policy; `None` if the URL is not one.
pub fn return_origin(url: &str) -> Option<String> {
    if url.len() > 2048 || url.contains('#') {
        return None;
    }
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| *s == "https" || *s == "http")?;
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CARD: &str =
        r#""card": {"number": "4111111111111111", "exp_month": 12, "exp_year": 2030, "cvc": "123"}"#;

    fn authorize(fields: &str) -> Result<AuthorizeRequest, ApiError> {
        parse_authorize(format!("{{{fields}, {CARD}}}").as_bytes())
    }

    #[test]
    fn parses_a_full_request() {
        let req = authorize(
            r#""amount": 1000, "currency": "JPY", "capture": false, "reference": "order-1",
               "three_ds": {"return_url": "https://shop.example:8443/return?x=1"}"#,
        )
        .expect("valid");
        assert_eq!(req.money.amount, 1000);
        assert_eq!(req.money.currency.code(), "JPY");
        assert!(!req.capture);
        assert_eq!(req.card.number.expose(), "4111111111111111");
        assert_eq!(
            req.return_url.as_deref(),
            Some("https://shop.example:8443/return?x=1")
        );
        assert!(
            authorize(r#""amount": 1, "currency": "USD""#)
                .expect("minimal")
                .capture,
            "capture defaults to true"
        );
    }

    #[test]
    fn amounts_per_currency() {
        // (fields, the error code and param, or None if accepted)
        let cases = [
            (r#""amount": 1, "currency": "JPY""#, None),
            (r#""amount": 99999999, "currency": "JPY""#, None),
            (r#""amount": 100000000, "currency": "USD""#, None), // 1,000,000.00 USD
            (
                r#""amount": 0, "currency": "JPY""#,
                Some(("amount_invalid", "amount")),
            ),
            (
                r#""amount": 100000000, "currency": "JPY""#,
                Some(("amount_invalid", "amount")),
            ),
            (
                r#""amount": 10.5, "currency": "USD""#,
                Some(("invalid_request", "amount")),
            ),
            (
                r#""amount": -1, "currency": "USD""#,
                Some(("invalid_request", "amount")),
            ),
            (
                r#""amount": 100, "currency": "jpy""#,
                Some(("currency_invalid", "currency")),
            ),
            (
                r#""amount": 100, "currency": "XAU""#,
                Some(("currency_invalid", "currency")),
            ),
        ];
        for (fields, expected) in cases {
            let got = authorize(fields).err().map(|e| (e.code, e.param.unwrap_or("")));
            assert_eq!(got, expected, "{fields}");
        }
    }

    #[test]
    fn errors_never_quote_the_input() {
        let numeric = br#"{"amount": 1, "currency": "JPY", "card": {"number": 4111111111111111, "exp_month": 1, "exp_year": 2030}}"#;
        let err = parse_authorize(numeric).expect_err("number must be a string");
        assert_eq!(err.param, Some("card.number"));
        assert!(!err.body().to_string().contains("4111"), "{}", err.body());
        let unknown = br#"{"amount": 1, "currency": "JPY", "4111111111111111": 1}"#;
        let err = parse_authorize(unknown).expect_err("unknown field");
        assert_eq!(err.param, None);
        assert!(!err.body().to_string().contains("4111"));
        let truncated = br#"{"card": {"number": "4111111111111111"#;
        assert!(
            !parse_authorize(truncated)
                .expect_err("truncated")
                .body()
                .to_string()
                .contains("4111")
        );
        assert!(!format!("{:?}", authorize(r#""amount": 1, "currency": "JPY""#)).contains("4111"));
    }

    #[test]
    fn return_urls() {
        assert_eq!(
            return_origin("https://shop.example/done").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            return_origin("http://127.0.0.1:9000/r?a=b").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://x/",
            "https://u:p@x/",
            "https://x/#f",
            "data:text/html,x",
        ] {
            assert_eq!(return_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn small_bodies() {
        assert_eq!(parse_amount(b"").expect("empty"), AmountRequest { amount: None });
        assert_eq!(parse_amount(br#"{"amount": 5}"#).expect("5").amount, Some(5));
        assert!(parse_amount(br#"{"amount": 5} x"#).is_err());
        assert!(parse_empty(b" {} ").is_ok());
        assert_eq!(
            parse_empty(br#"{"x": 1}"#).err().map(|e| e.code),
            Some("invalid_request")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_authorize(&body);
            let _ = parse_amount(&body);
            let _ = parse_empty(&body);
            let _ = parse_fingerprint(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in arb_json()) {
            let body = value.to_string();
            let _ = parse_authorize(body.as_bytes());
            let _ = parse_amount(body.as_bytes());
        }

        #[test]
        fn arbitrary_authorize_shapes_never_panic(
            amount in any::<i64>(), currency in "[A-Za-z]{0,4}", month in any::<i32>(), year in any::<i32>(),
            number in "[0-9 ]{0,22}", url in "\\PC{0,40}",
        ) {
            let body = json!({"amount": amount, "currency": currency, "card": {"number": number,
                "exp_month": month, "exp_year": year}, "three_ds": {"return_url": url}});
            let _ = parse_authorize(body.to_string().as_bytes());
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::hash_map(
                    prop_oneof![
                        Just("amount".to_owned()),
                        Just("currency".to_owned()),
                        Just("card".to_owned()),
                        Just("number".to_owned()),
                        Just("three_ds".to_owned()),
                        "[a-z_]{1,10}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
