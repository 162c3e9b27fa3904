//! Generic outbound routes (VGS-style): `POST /v1/proxy/{route}` forwards a
//! shop's JSON request to the route's allow-listed upstream after replacing
//! the card tokens found at the route's configured JSON paths with the card
//! numbers, for processors anshin has no template for. The upstream's answer
//! comes back redacted ([`super::template::redact`]).
//!
//! Only the configured paths are replaced, and only by cards the caller may
//! see: a shop cannot make anshin send a card of another shop, nor put a card
//! number anywhere the operator did not configure.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use zeroize::Zeroize;

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{EventKind, field};
use crate::error::{Error, Result};
use crate::ids::CardToken;

/// Deepest path accepted.
const MAX_SEGMENTS: usize = 16;

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Field(String),
    /// `[index]`
    Index(usize),
}

/// A JSON path of the simple form `$.a.b[0].c`: fields and array indexes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Step>);

impl JsonPath {
    /// Parses a path; 422 `token_path_invalid` otherwise.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "token_path_invalid",
                "token_paths are like $.card.number or $.items[0].card: fields of a-z, A-Z, 0-9, '_' and '-', and indexes",
            )
            .with_param("token_paths")
        };
        let mut rest = text.strip_prefix('$').ok_or_else(bad)?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(after.len());
                if end == 0 {
                    return Err(bad());
                }
                steps.push(Step::Field(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(bad)?;
                let index = after[..end]
                    .parse::<usize>()
                    .ok()
                    .filter(|_| end > 0 && end <= 6 && after[..end].bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(bad)?;
                steps.push(Step::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(bad());
            }
            if steps.len() > MAX_SEGMENTS {
                return Err(bad());
            }
        }
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(Self(steps))
    }

    /// The value at this path, if present.
    pub fn find_mut<'a>(&self, mut value: &'a mut Value) -> Option<&'a mut Value> {
        for step in &self.0 {
            value = match step {
                Step::Field(name) => value.as_object_mut()?.get_mut(name)?,
                Step::Index(i) => value.as_array_mut()?.get_mut(*i)?,
            };
        }
        Some(value)
    }
}

impl App {
    /// Forwards `body` through the tenant's outbound route `route`, card
    /// tokens at the route's paths replaced by card numbers.
    pub async fn forward(&self, actor: &Actor, route: &str, mut body: Value) -> Result<(StatusCode, Value)> {
        self.audited(actor, EventKind::ProxyForward, async |event| {
            actor.require(Action::Forward)?;
            let tenant = actor.tenant_for(None)?;
            event.tenant(&tenant);
            let client = self.route_client(&tenant, route, "outbound").await?;
            let mut replaced = 0u64;
            for path in &client.config.token_paths {
                let path = JsonPath::parse(path)?;
                let Some(slot) = path.find_mut(&mut body) else {
                    continue;
                };
                let token = slot.as_str().and_then(CardToken::parse).ok_or_else(|| {
                    Error::invalid(
                        "card_token_invalid",
                        "a token path holds something other than a card token",
                    )
                })?;
                let (card, _) = self.open_card(actor.scope(), token.as_str()).await?;
                event.resource(&token);
                *slot = Value::String(card.number.expose().to_owned());
                replaced += 1;
            }
            event.fields(&[field::CARD_NUMBER]).rows(replaced);
            self.record_now(actor, event).await?;
            let mut wire = serde_json::to_vec(&body).map_err(Error::internal)?;
            // The card numbers in the parsed body are wiped too.
            wipe_strings(&mut body);
            let allowed = self.checkout.settings().allowed_hosts.clone();
            let result = client
                .send(&allowed, Method::POST, "", None, std::mem::take(&mut wire))
                .await;
            wire.zeroize();
            let answer = result?;
            Ok((answer.status, answer.body))
        })
        .await
    }
}

/// Overwrites every string in `value` before it is dropped.
fn wipe_strings(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        Value::Object(map) => map.values_mut().for_each(wipe_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_parse_and_find() {
        let path = JsonPath::parse("$.payment.items[1].card").expect("path");
        assert_eq!(
            path.0,
            vec![
                Step::Field("payment".into()),
                Step::Field("items".into()),
                Step::Index(1),
                Step::Field("card".into())
            ]
        );
        let mut value = json!({"payment": {"items": [{}, {"card": "card_x"}]}});
        assert_eq!(path.find_mut(&mut value), Some(&mut json!("card_x")));
        assert!(
            JsonPath::parse("$.missing")
                .expect("p")
                .find_mut(&mut value)
                .is_none()
        );
        for bad in ["", "$", "a.b", "$.", "$..a", "$[x]", "$[]", "$.a b", "$[1234567]"] {
            assert_eq!(
                JsonPath::parse(bad).err().map(|e| e.code()),
                Some("token_path_invalid"),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,60}") {
            let _ = JsonPath::parse(&text);
        }
    }
}
