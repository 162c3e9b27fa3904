//! Keyed fingerprints (PCI DSS 3.5.1.1: hashes of a PAN must be keyed).
//!
//! A tenant's fingerprint key is its own, apart from its encryption keys. The same
//! card in the same tenant always has the same fingerprint, so tokenizing twice
//! returns one token and an operator can look a card up by number without
//! decrypting anything; without the key a fingerprint confirms nothing.

use std::fmt;

use aws_lc_rs::hmac;

use crate::secret::KeyBytes;

/// A per-tenant HMAC-SHA-256 key.
pub struct FingerprintKey(hmac::Key);

impl FingerprintKey {
    /// A fingerprint key over the given material.
    pub fn new(material: &KeyBytes) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, material.expose()))
    }

    /// The fingerprint of `value` in the domain `purpose` (for example `"pan"`), so
    /// the same bytes in different roles never share a fingerprint.
    pub fn fingerprint(&self, purpose: &str, value: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&u32::try_from(purpose.len()).unwrap_or(u32::MAX).to_be_bytes());
        ctx.update(purpose.as_bytes());
        ctx.update(value);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> FingerprintKey {
        FingerprintKey::new(&KeyBytes::from_slice(&[byte; 32]).expect("32 bytes"))
    }

    #[test]
    fn stable_per_key_and_purpose() {
        let a = key(1);
        assert_eq!(
            a.fingerprint("pan", b"4111111111111111"),
            a.fingerprint("pan", b"4111111111111111")
        );
        assert_ne!(
            a.fingerprint("pan", b"4111111111111111"),
            key(2).fingerprint("pan", b"4111111111111111")
        );
        assert_ne!(
            a.fingerprint("pan", b"4111111111111111"),
            a.fingerprint("email", b"4111111111111111")
        );
    }

    #[test]
    fn matches_rfc4231_hmac_sha256_when_purpose_is_empty_framed() {
        // Known answer: HMAC-SHA-256(key = 0x0b * 32, data = 0u32 ‖ "Hi There").
        let fp = FingerprintKey(hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]));
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]),
            b"\0\0\0\0Hi There",
        );
        assert_eq!(&fp.fingerprint("", b"Hi There")[..], expected.as_ref());
    }
}
