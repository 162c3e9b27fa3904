//! Random tokens, ids and API keys.
//!
//! A token is a type prefix and 128 random bits in lower-case base32
//! (`card_…`, `cus_…`): unrelated to the value it stands for, so it reveals nothing
//! and cannot be reversed. API keys carry 256 random bits and are stored only as
//! their SHA-256 hash: with that much entropy a slow password hash adds nothing,
//! and a fast one keeps authentication off the hot path's critical cost.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use data_encoding::BASE32_NOPAD;

use crate::CryptoError;
use crate::secret::SecretString;

/// Fills `out` from the system's cryptographic random number generator.
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(out).map_err(|_| CryptoError::Random)
}

/// A fresh random token: `prefix_` followed by 26 base32 characters (128 bits).
pub fn random_token(prefix: &str) -> Result<String, CryptoError> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    let mut token = String::with_capacity(prefix.len() + 27);
    token.push_str(prefix);
    token.push('_');
    token.push_str(&BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
    Ok(token)
}

/// True if `value` has the shape [`random_token`] produces for `prefix`.
pub fn is_token(prefix: &str, value: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| {
            body.len() == 26
                && body
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        })
}

/// Prefix of every API key, so scanners and people recognise a leaked one.
pub const API_KEY_PREFIX: &str = "anshin_sk_";

/// A new API key (shown once) and the hash under which it is stored.
pub fn new_api_key() -> Result<(SecretString, [u8; 32]), CryptoError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    let key = format!(
        "{API_KEY_PREFIX}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    );
    zeroize::Zeroize::zeroize(&mut bytes);
    let hash = api_key_hash(&key);
    Ok((SecretString::new(key), hash))
}

/// The stored form of an API key.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_recognised() {
        let a = random_token("card").expect("rng");
        let b = random_token("card").expect("rng");
        assert_ne!(a, b);
        assert!(a.starts_with("card_") && a.len() == 31);
        assert!(is_token("card", &a));
        assert!(!is_token("cus", &a));
        assert!(!is_token("card", "card_4111111111111111"));
        assert!(!is_token("card", &a.to_uppercase()));
    }

    #[test]
    fn api_keys_hash_stably_and_differ() {
        let (key, hash) = new_api_key().expect("rng");
        assert!(key.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(api_key_hash(key.expose()), hash);
        let (other, _) = new_api_key().expect("rng");
        assert_ne!(key.expose(), other.expose());
    }
}
