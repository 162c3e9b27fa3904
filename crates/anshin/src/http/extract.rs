//! Request extractors that turn outside input into typed values or a clean error.
//!
//! - [`Actor`] from `Authorization: Bearer <api key>`, with the client's address
//!   and the `Anshin-Purpose` header; a missing or refused key is recorded in
//!   the audit log and counted towards a lockout of its source, and a
//!   locked-out source is answered 429 before its key is looked at (and
//!   without an audit entry).
//! - [`ClientIp`]: the client's address, for routes without an API key.
//! - [`CallerKey`]: the hash of the key a request came with (rotation checks
//!   that a principal rotates itself with its newest key).
//! - [`JsonBody`]: JSON bodies with error messages that never repeat a value
//!   (serde's own messages can quote the input, which may be a card number),
//!   and the raw body buffer wiped after parsing.
//! - [`OptionalJsonBody`]: like [`JsonBody`], but an empty body is the default.
//! - [`QueryParams`]: query strings, likewise.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use zeroize::Zeroize;

use super::AppState;
use crate::access::Actor;
use crate::error::{Error, ErrorKind};

impl FromRequestParts<AppState> for Actor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let origin = client_ip(parts, state);
        // A locked-out source gets no further: not even its key is checked.
        state.app.check_lockout(origin)?;
        let purpose = purpose(parts)?;
        let Some(key) = bearer(parts) else {
            let err = Error::new(
                ErrorKind::Unauthenticated,
                "missing_api_key",
                "send the API key as `Authorization: Bearer <api key>`",
            );
            state.app.record_refused_key(origin, &err).await;
            return Err(err);
        };
        match state.app.authenticate_from(key, origin).await {
            Ok(actor) => Ok(Actor {
                origin,
                purpose,
                ..actor
            }),
            Err(refusal) => {
                state.app.refused(origin, &refusal).await;
                Err(refusal.error)
            }
        }
    }
}

/// The client's address: the peer, or what a trusted reverse proxy's
/// `X-Forwarded-For` names; `None` for in-process calls.
fn client_ip(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        state.app.proxies.client(info.0.ip(), forwarded)
    })
}

/// The client's address, for requests without an API key (the checkout's
/// shopper-facing routes).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Ok(Self(client_ip(parts, state)))
    }
}

/// The key of `Authorization: Bearer <key>`.
fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The SHA-256 hash of the API key the request came with, if any. Extract it
/// after [`Actor`], which has checked the key.
pub struct CallerKey(pub Option<[u8; 32]>);

impl<S: Send + Sync> FromRequestParts<S> for CallerKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        Ok(Self(bearer(parts).map(anshin_crypto::token::api_key_hash)))
    }
}

/// Longest purpose label accepted.
const MAX_PURPOSE: usize = 64;

/// The `Anshin-Purpose` header: why the caller accesses the data (shipping,
/// authorization, support …), recorded in the audit log. A short label of
/// lower-case letters, digits, `.`, `_` and `-`, so it cannot carry personal data.
fn purpose(parts: &Parts) -> Result<Option<String>, Error> {
    let Some(value) = parts.headers.get("anshin-purpose") else {
        return Ok(None);
    };
    let valid = value.to_str().ok().filter(|v| {
        !v.is_empty()
            && v.len() <= MAX_PURPOSE
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    });
    valid.map(|v| Some(v.to_owned())).ok_or_else(|| {
        Error::new(
            ErrorKind::BadRequest,
            "invalid_purpose",
            "Anshin-Purpose must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-', such as `shipping`",
        )
    })
}

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(
                    ErrorKind::PayloadTooLarge,
                    "payload_too_large",
                    "the request body is larger than this endpoint accepts (64 KiB; 4 MiB for /v1/inventory)",
                )
            } else {
                Error::new(
                    ErrorKind::BadRequest,
                    "unreadable_body",
                    "the request body could not be read",
                )
            }
        })?;
        let parsed = parse_json(&bytes);
        // The buffer may hold a card number; wipe it if no one else holds it.
        if let Ok(mut owned) = bytes.try_into_mut() {
            owned.zeroize();
        }
        parsed.map(JsonBody)
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return Error::new(
                ErrorKind::BadRequest,
                "malformed_json",
                "the request body is not valid JSON",
            );
        }
        let text = inner.to_string();
        // Only serde's "missing field `x`" names nothing but the schema's own words.
        let message = if let Some(missing) = text.strip_prefix("missing field ") {
            let field = missing.split(" at line").next().unwrap_or(missing);
            format!("the request body lacks the required field {field}")
        } else if text.starts_with("unknown field") {
            "the request body has a field this endpoint does not take".to_owned()
        } else if path == "." {
            "the request body does not have the expected shape (a JSON object)".to_owned()
        } else {
            format!("field `{path}` has the wrong type or an out-of-range value")
        };
        Error::invalid("invalid_request", message)
    })
}

/// A JSON request body of type `T`, or `T::default()` when the body is empty.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        use axum::body::HttpBody;
        let empty = req.body().is_end_stream() && !req.headers().contains_key(CONTENT_TYPE);
        if empty {
            return Ok(Self(T::default()));
        }
        JsonBody::<T>::from_request(req, state)
            .await
            .map(|JsonBody(value)| Self(value))
    }
}

/// Query parameters of type `T`.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|_| {
                Error::invalid(
                    "invalid_query",
                    "the query string has an unknown parameter or a value of the wrong type",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Card {
        number: String,
        exp_month: u8,
    }

    #[test]
    fn json_errors_never_quote_values() {
        let cases = [
            (
                r#"{"number": "4111111111111111", "exp_month": "4111111111111111"}"#,
                "invalid_request",
            ),
            (r#"{"number": 4111111111111111}"#, "invalid_request"),
            (r#"{"number": "4111111111111111""#, "malformed_json"),
            (
                r#"{"number": "x", "exp_month": 1, "4111111111111111": 1}"#,
                "invalid_request",
            ),
            (r#""4111111111111111""#, "invalid_request"),
        ];
        for (body, code) in cases {
            let err = parse_json::<Card>(body.as_bytes()).expect_err(body);
            assert_eq!(err.code(), code, "{body}");
            assert!(!err.message().contains("4111"), "{}", err.message());
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_json::<Card>(br#"{"number": "x"}"#).expect_err("missing");
        assert!(err.message().contains("exp_month"), "{}", err.message());
    }
}
