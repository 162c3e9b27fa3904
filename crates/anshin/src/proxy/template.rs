//! Request templates of processor routes, and redaction of processors' answers.
//!
//! A template is the JSON body a processor expects, with placeholders where
//! the payment's values go: a string that is exactly `"{{amount}}"` becomes
//! the typed value (a JSON number for `amount`, `card.exp_month` and
//! `card.exp_year`, a boolean for `capture`, a string otherwise), and
//! placeholders inside a longer string are interpolated as text. Templates
//! are parsed and checked when the route is configured (an unknown
//! placeholder or an unterminated `{{` is refused), so sending never fails on
//! them.
//!
//! Card data is filled in only while the body is serialised onto the wire:
//! it never becomes a `serde_json::Value`, the buffer is zeroized after the
//! request, and no other copy is made.

use std::fmt::Write as _;

use anshin_crypto::secret::SecretString;
use serde_json::Value;

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The card number, digits only.
    CardNumber,
    /// The security code (absent when none is held: `null`).
    CardCvc,
    /// Expiry month, a number.
    CardExpMonth,
    /// Expiry year (four digits), a number.
    CardExpYear,
    /// Name on the card.
    CardHolderName,
    /// Amount in minor units, a number.
    Amount,
    /// Currency code.
    Currency,
    /// Capture at once, a boolean.
    Capture,
    /// anshin's payment id, as the processor's reference.
    Reference,
    /// Where the 3-D Secure challenge returns to.
    ThreeDsReturnUrl,
}

impl Placeholder {
    const ALL: [(&'static str, Self); 10] = [
        ("card.number", Self::CardNumber),
        ("card.cvc", Self::CardCvc),
        ("card.exp_month", Self::CardExpMonth),
        ("card.exp_year", Self::CardExpYear),
        ("card.holder_name", Self::CardHolderName),
        ("amount", Self::Amount),
        ("currency", Self::Currency),
        ("capture", Self::Capture),
        ("reference", Self::Reference),
        ("three_ds.return_url", Self::ThreeDsReturnUrl),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The placeholder names a template may use.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|(n, _)| *n)
    }
}

/// Why a template was refused. Messages name placeholders (configuration),
/// never request values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// Not JSON.
    NotJson,
    /// `{{` without its `}}`.
    Unterminated,
    /// A placeholder this version does not know.
    Unknown(String),
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson => f.write_str("the template is not a JSON value"),
            Self::Unterminated => f.write_str("a `{{` in the template has no closing `}}`"),
            Self::Unknown(name) => {
                let known: Vec<&str> = Placeholder::names().collect();
                write!(
                    f,
                    "unknown placeholder `{{{{{}}}}}`; known: {}",
                    name.chars().take(40).collect::<String>(),
                    known.join(", ")
                )
            }
            Self::TooDeep => write!(f, "the template nests deeper than {MAX_DEPTH} levels"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Deepest nesting a template may have.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Hole(Placeholder),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// JSON with no placeholder, serialised as it is.
    Literal(Value),
    /// A string that is exactly one placeholder: the typed value.
    Typed(Placeholder),
    /// A string with placeholders among text.
    Text(Vec<Segment>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A parsed request template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

/// The values a template is filled with.
pub struct Values<'a> {
    pub number: &'a SecretString,
    pub cvc: Option<&'a SecretString>,
    pub exp_month: u8,
    pub exp_year: u16,
    pub holder_name: &'a SecretString,
    pub amount: i64,
    pub currency: &'a str,
    pub capture: bool,
    pub reference: &'a str,
    pub return_url: Option<&'a str>,
}

fn segments(text: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Segment::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unterminated)?;
        let name = after[..end].trim();
        let placeholder = Placeholder::parse(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
        out.push(Segment::Hole(placeholder));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_owned()));
    }
    Ok(out)
}

fn compile(value: &Value, depth: usize) -> Result<Node, TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError::TooDeep);
    }
    Ok(match value {
        Value::String(text) => {
            let parts = segments(text)?;
            match parts.as_slice() {
                [Segment::Hole(p)] => Node::Typed(*p),
                _ if parts.iter().all(|s| matches!(s, Segment::Text(_))) => Node::Literal(value.clone()),
                _ => Node::Text(parts),
            }
        }
        Value::Array(items) => {
            let nodes = items
                .iter()
                .map(|v| compile(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Array(nodes)
            }
        }
        Value::Object(map) => {
            let fields = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), compile(v, depth + 1)?)))
                .collect::<Result<Vec<_>, TemplateError>>()?;
            if fields.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Object(fields)
            }
        }
        other => Node::Literal(other.clone()),
    })
}

/// Writes `text` as the inside of a JSON string (RFC 8259 escapes).
fn escape_into(out: &mut Vec<u8>, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let mut buf = String::new();
                let _ = write!(buf, "\\u{:04x}", c as u32);
                out.extend_from_slice(buf.as_bytes());
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

fn write_literal(out: &mut Vec<u8>, value: &Value) {
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl Template {
    /// Parses and checks a template.
    pub fn parse(json: &str) -> Result<Self, TemplateError> {
        let value: Value = serde_json::from_str(json).map_err(|_| TemplateError::NotJson)?;
        Self::from_value(&value)
    }

    /// Checks a template given as JSON.
    pub fn from_value(value: &Value) -> Result<Self, TemplateError> {
        Ok(Self {
            root: compile(value, 0)?,
        })
    }

    /// Whether the template sends the security code.
    pub fn uses(&self, wanted: Placeholder) -> bool {
        fn walk(node: &Node, wanted: Placeholder) -> bool {
            match node {
                Node::Literal(_) => false,
                Node::Typed(p) => *p == wanted,
                Node::Text(parts) => parts.contains(&Segment::Hole(wanted)),
                Node::Array(items) => items.iter().any(|n| walk(n, wanted)),
                Node::Object(fields) => fields.iter().any(|(_, n)| walk(n, wanted)),
            }
        }
        walk(&self.root, wanted)
    }

    /// Serialises the body with `values` into `out`, which the caller zeroizes
    /// after sending.
    pub fn render(&self, values: &Values<'_>, out: &mut Vec<u8>) {
        render(&self.root, values, out);
    }
}

fn text_of<'a>(p: Placeholder, v: &'a Values<'_>, scratch: &'a mut String) -> Option<&'a str> {
    Some(match p {
        Placeholder::CardNumber => v.number.expose(),
        Placeholder::CardCvc => v.cvc?.expose(),
        Placeholder::CardHolderName => v.holder_name.expose(),
        Placeholder::Currency => v.currency,
        Placeholder::Reference => v.reference,
        Placeholder::ThreeDsReturnUrl => v.return_url?,
        Placeholder::CardExpMonth => {
            let _ = write!(scratch, "{}", v.exp_month);
            scratch
        }
        Placeholder::CardExpYear => {
            let _ = write!(scratch, "{}", v.exp_year);
            scratch
        }
        Placeholder::Amount => {
            let _ = write!(scratch, "{}", v.amount);
            scratch
        }
        Placeholder::Capture => {
            if v.capture {
                "true"
            } else {
                "false"
            }
        }
    })
}

fn render(node: &Node, v: &Values<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Literal(value) => write_literal(out, value),
        Node::Typed(p) => {
            let mut scratch = String::new();
            match (p, text_of(*p, v, &mut scratch)) {
                (_, None) => out.extend_from_slice(b"null"),
                (
                    Placeholder::Amount
                    | Placeholder::CardExpMonth
                    | Placeholder::CardExpYear
                    | Placeholder::Capture,
                    Some(raw),
                ) => {
                    out.extend_from_slice(raw.as_bytes());
                }
                (_, Some(text)) => {
                    out.push(b'"');
                    escape_into(out, text);
                    out.push(b'"');
                }
            }
        }
        Node::Text(parts) => {
            out.push(b'"');
            for part in parts {
                match part {
                    Segment::Text(text) => escape_into(out, text),
                    Segment::Hole(p) => {
                        let mut scratch = String::new();
                        if let Some(text) = text_of(*p, v, &mut scratch) {
                            escape_into(out, text);
                        }
                    }
                }
            }
            out.push(b'"');
        }
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                render(item, v, out);
            }
            out.push(b']');
        }
        Node::Object(fields) => {
            out.push(b'{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                escape_into(out, key);
                out.extend_from_slice(b"\":");
                render(value, v, out);
            }
            out.push(b'}');
        }
    }
}

/// Field names whose values are card data, whatever their content.
const CARD_FIELDS: [&str; 9] = [
    "number",
    "card_number",
    "pan",
    "cvc",
    "cvv",
    "cvc2",
    "cvv2",
    "security_code",
    "account_number",
];

/// What redacted data is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Removes card data from an upstream's answer before anything of it is kept
/// or passed on: values of card-data fields, and any run of 12 to 19 digits
/// (spaces and hyphens allowed between) that passes the Luhn check.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if CARD_FIELDS.contains(&lower.as_str()) && (item.is_string() || item.is_number()) {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(clean) = redact_numbers(text) {
                *text = clean;
            }
        }
        Value::Number(n) => {
            let digits = n.to_string();
            if (12..=19).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && anshin_crypto::pan::luhn_valid(digits.as_bytes())
            {
                *value = Value::String(REDACTED.to_owned());
            }
        }
        _ => {}
    }
}

/// `text` with card-number-like runs replaced, or `None` if it has none.
fn redact_numbers(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // The longest run of digits with single spaces or hyphens between.
        let start = i;
        let mut digits = Vec::with_capacity(19);
        let mut end = i;
        let mut j = i;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                digits.push(bytes[j]);
                j += 1;
                end = j;
            } else if matches!(bytes[j], b' ' | b'-') && j + 1 < bytes.len() && bytes[j + 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        if (12..=19).contains(&digits.len()) && anshin_crypto::pan::luhn_valid(&digits) {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
            changed = true;
        }
        zeroize::Zeroize::zeroize(&mut digits);
        i = end.max(i + 1);
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn values<'a>(
        number: &'a SecretString,
        cvc: Option<&'a SecretString>,
        holder: &'a SecretString,
    ) -> Values<'a> {
        Values {
            number,
            cvc,
            exp_month: 7,
            exp_year: 2031,
            holder_name: holder,
            amount: 3980,
            currency: "JPY",
            capture: false,
            reference: "pay_x",
            return_url: Some("https://pay.example/checkout/cs_1/3ds-return"),
        }
    }

    #[test]
    fn placeholders_are_filled_typed_and_escaped() {
        let template = Template::from_value(&json!({
            "amount": "{{amount}}", "currency": "{{ currency }}", "capture": "{{capture}}",
            "card": {"number": "{{card.number}}", "cvc": "{{card.cvc}}", "exp": "{{card.exp_month}}/{{card.exp_year}}",
                     "exp_month": "{{card.exp_month}}", "holder_name": "{{card.holder_name}}"},
            "fixed": {"a": [1, "b"]}, "list": ["{{reference}}", 2],
            "three_ds": {"return_url": "{{three_ds.return_url}}"}
        }))
        .expect("template");
        assert!(template.uses(Placeholder::CardCvc));
        let (number, cvc, holder) = (
            SecretString::new("4111111111111111".into()),
            SecretString::new("123".into()),
            SecretString::new("TARO \"T\" YAMADA\n".into()),
        );
        let mut out = Vec::new();
        template.render(&values(&number, Some(&cvc), &holder), &mut out);
        let back: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            back,
            json!({
                "amount": 3980, "currency": "JPY", "capture": false,
                "card": {"number": "4111111111111111", "cvc": "123", "exp": "7/2031", "exp_month": 7,
                         "holder_name": "TARO \"T\" YAMADA\n"},
                "fixed": {"a": [1, "b"]}, "list": ["pay_x", 2],
                "three_ds": {"return_url": "https://pay.example/checkout/cs_1/3ds-return"}
            })
        );
        let mut without = Vec::new();
        template.render(&values(&number, None, &holder), &mut without);
        let back: Value = serde_json::from_slice(&without).expect("valid JSON");
        assert_eq!(back["card"]["cvc"], Value::Null);
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(Template::parse("{"), Err(TemplateError::NotJson));
        assert_eq!(
            Template::parse(r#"{"a": "{{card.number"}"#),
            Err(TemplateError::Unterminated)
        );
        assert_eq!(
            Template::parse(r#"{"a": "{{card.track2}}"}"#),
            Err(TemplateError::Unknown("card.track2".into()))
        );
        let mut deep = json!("{{amount}}");
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(Template::from_value(&deep), Err(TemplateError::TooDeep));
    }

    #[test]
    fn answers_are_redacted() {
        let mut answer = json!({
            "card": {"number": "4111111111111111", "cvc": "123", "brand": "visa", "last4": "1111"},
            "message": "card 4111 1111 1111 1111 was approved", "raw": 4111111111111111u64,
            "id": "pay_123", "amount": 1000, "ref": "order 1234567890123"
        });
        redact(&mut answer);
        assert_eq!(answer["card"]["number"], REDACTED);
        assert_eq!(answer["card"]["cvc"], REDACTED);
        assert_eq!(answer["card"]["last4"], "1111");
        assert_eq!(answer["message"], "card [redacted] was approved");
        assert_eq!(answer["raw"], REDACTED);
        assert_eq!(answer["amount"], 1000);
        assert_eq!(answer["ref"], "order 1234567890123", "not a Luhn-valid number");
    }

    proptest! {
        #[test]
        fn rendering_always_gives_valid_json(text in "\\PC{0,40}", holder in "\\PC{0,40}") {
            let value = json!({"a": format!("{text}{{{{card.holder_name}}}}{text}"), "b": text});
            let template = Template::from_value(&value).expect("template");
            let (number, holder) = (SecretString::new("4111111111111111".into()), SecretString::new(holder.clone()));
            let mut out = Vec::new();
            template.render(&values(&number, None, &holder), &mut out);
            let back: Value = serde_json::from_slice(&out).expect("valid JSON");
            prop_assert_eq!(back["a"].as_str().map(str::to_owned), Some(format!("{text}{}{text}", holder.expose())));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}") {
            let _ = Template::parse(&text);
            let _ = segments(&text);
        }
    }
}
