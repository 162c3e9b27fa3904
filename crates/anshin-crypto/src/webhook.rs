//! Signatures of outgoing webhooks (security alerts), in the scheme Stripe made
//! common so receivers can reuse their code:
//!
//! ```text
//! Anshin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>
//! ```
//!
//! The timestamp is inside the MAC, so a receiver that rejects signatures older
//! than a few minutes ([`WebhookKey::verify`] with a tolerance) also rejects
//! replays of captured deliveries. Several `v1=` values may be present (a
//! sender rotating its secret signs with both); one that verifies suffices.
//!
//! Threat notes: the secret is held only inside an `aws-lc-rs` HMAC key and
//! never printed; tags are compared in constant time; errors say which check
//! failed, never what the expected tag was.

use std::fmt;

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

/// Name of the HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Anshin-Signature";

/// Shortest secret accepted, in bytes: 256 bits if the secret is random bytes,
/// and at least a 32-character hex or base64 string (`openssl rand -hex 32`).
pub const MIN_SECRET_LEN: usize = 32;

/// Length of an HMAC-SHA-256 tag.
const TAG_LEN: usize = 32;

/// Why a webhook signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    SecretTooShort,
    /// The header is not `t=<seconds>,v1=<64 hex digits>[,v1=…]`.
    Malformed,
    /// The timestamp is further from now than the tolerance allows (a replay,
    /// or clocks far apart).
    Stale,
    /// No `v1` value is the MAC of this timestamp and body under this secret.
    Mismatch,
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretTooShort => "the webhook secret is shorter than 32 bytes",
            Self::Malformed => "the signature header is not t=<seconds>,v1=<hex>",
            Self::Stale => "the signature's timestamp is outside the tolerance",
            Self::Mismatch => "the signature does not match the body",
        })
    }
}

impl std::error::Error for WebhookError {}

/// The shared secret of a webhook, as an HMAC-SHA-256 key.
pub struct WebhookKey(hmac::Key);

impl WebhookKey {
    /// A key over `secret` (the configured string's bytes), which must be at
    /// least [`MIN_SECRET_LEN`] bytes long.
    pub fn new(secret: &[u8]) -> Result<Self, WebhookError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WebhookError::SecretTooShort);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    fn tag(&self, timestamp: i64, body: &[u8]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// The header value signing `body` at `timestamp` (Unix seconds).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        sign_all(&[self], timestamp, body)
    }

    /// Checks a received header against `body`: well-formed, timestamp within
    /// `tolerance_secs` of `now` (Unix seconds), and one `v1` tag that matches.
    /// Returns the signed timestamp.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<i64, WebhookError> {
        let mut timestamp = None;
        let mut tags = Vec::new();
        for item in header.split(',') {
            let (name, value) = item.trim().split_once('=').ok_or(WebhookError::Malformed)?;
            match name {
                "t" => {
                    if timestamp.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(WebhookError::Malformed);
                    }
                    timestamp = Some(value.parse::<i64>().map_err(|_| WebhookError::Malformed)?);
                }
                "v1" => {
                    let tag = data_encoding::HEXLOWER_PERMISSIVE
                        .decode(value.as_bytes())
                        .ok()
                        .filter(|t| t.len() == TAG_LEN)
                        .ok_or(WebhookError::Malformed)?;
                    tags.push(tag);
                }
                // Other schemes (future versions) are ignored, as Stripe's are.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
        if tags.is_empty() {
            return Err(WebhookError::Malformed);
        }
        if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
            return Err(WebhookError::Stale);
        }
        let expected = self.tag(timestamp, body);
        // Every candidate is compared, so timing does not tell which one matched.
        let matched = tags
            .iter()
            .fold(subtle::Choice::from(0), |any, tag| any | expected.ct_eq(&tag[..]));
        if bool::from(matched) {
            Ok(timestamp)
        } else {
            Err(WebhookError::Mismatch)
        }
    }
}

/// The header value signing `body` at `timestamp` (Unix seconds) with each of
/// `keys`, one `v1=` per key: a sender rotating its secret signs with the new
/// and the old one, so a receiver verifies with whichever it has.
pub fn sign_all(keys: &[&WebhookKey], timestamp: i64, body: &[u8]) -> String {
    let mut out = String::with_capacity(16 + keys.len() * (4 + 2 * TAG_LEN));
    out.push_str("t=");
    out.push_str(&timestamp.to_string());
    for key in keys {
        out.push_str(",v1=");
        out.push_str(&data_encoding::HEXLOWER.encode(&key.tag(timestamp, body)));
    }
    out
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"anshin-test-webhook-secret-0123456789";
    const BODY: &[u8] = br#"{"type":"anshin.alert"}"#;

    fn key() -> WebhookKey {
        WebhookKey::new(SECRET).expect("long enough")
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA-256(SECRET, "1700000000." ‖ BODY), computed independently
        // with Python's hmac module and `openssl dgst -sha256 -hmac`.
        assert_eq!(
            key().sign(1_700_000_000, BODY),
            "t=1700000000,v1=d1746e1b15f934653cbe9e7b95b5436bdcc856db1e12655aba6e64b067ec2768"
        );
    }

    #[test]
    fn the_mac_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2 through the same primitive.
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn own_signatures_verify() {
        let header = key().sign(1_700_000_000, BODY);
        assert_eq!(key().verify(&header, BODY, 1_700_000_100, 300), Ok(1_700_000_000));
        // Spaces after commas and upper-case hex are tolerated.
        let loose = format!("t=1700000000, v1={}", header[16..].to_uppercase());
        assert_eq!(key().verify(&loose, BODY, 1_700_000_000, 300), Ok(1_700_000_000));
    }

    #[test]
    fn tampering_replays_and_other_secrets_are_refused() {
        let header = key().sign(1_700_000_000, BODY);
        assert_eq!(
            key().verify(&header, br#"{"type":"anshin.alerT"}"#, 1_700_000_000, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            key().verify(&header, BODY, 1_700_000_301, 300),
            Err(WebhookError::Stale)
        );
        // A new timestamp on an old tag does not verify.
        let moved = header.replace("t=1700000000", "t=1700000500");
        assert_eq!(
            key().verify(&moved, BODY, 1_700_000_500, 300),
            Err(WebhookError::Mismatch)
        );
        let other = WebhookKey::new(b"another-secret-of-at-least-32-bytes!").expect("key");
        assert_eq!(
            other.verify(&header, BODY, 1_700_000_000, 300),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn rotation_signatures_any_of_which_verifies() {
        let old = WebhookKey::new(b"the-old-secret-of-at-least-32-bytes!").expect("key");
        let new = key();
        let header = sign_all(&[&new, &old], 1_700_000_000, BODY);
        assert_eq!(
            header,
            format!(
                "{},v1={}",
                new.sign(1_700_000_000, BODY),
                &old.sign(1_700_000_000, BODY)[16..]
            )
        );
        assert!(key().verify(&header, BODY, 1_700_000_000, 300).is_ok());
        assert!(old.verify(&header, BODY, 1_700_000_000, 300).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let tag = "0".repeat(64);
        for header in [
            "",
            "t=1700000000",
            &format!("v1={tag}"),
            &format!("t=,v1={tag}"),
            &format!("t=-5,v1={tag}"),
            &format!("t=17e8,v1={tag}"),
            &format!("t=1,t=1,v1={tag}"),
            "t=1700000000,v1=abc",
            &format!("t=1700000000,v1={}", "zz".repeat(32)),
            &format!("t=1700000000;v1={tag}"),
        ] {
            assert_eq!(
                key().verify(header, BODY, 1_700_000_000, 300),
                Err(WebhookError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn short_secrets_and_debug_are_safe() {
        assert_eq!(
            WebhookKey::new(&SECRET[..31]).err(),
            Some(WebhookError::SecretTooShort)
        );
        let printed = format!("{:?}", key());
        assert!(!printed.contains("anshin-test") && printed.contains("redacted"));
    }
}
