//! Containers for secrets. None of them prints its contents, all are zeroized on
//! drop, and the bytes are reached only through an explicit `expose*` call.
//!
//! Wiping cannot reach copies the compiler or the allocator made before (moves,
//! reallocations, registers); the types keep such copies rare by never growing
//! in place after construction.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

/// 32 bytes of key material (AES-256 or HMAC-SHA-256 keys).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyBytes([u8; 32]);

impl KeyBytes {
    /// Fresh key material from the system's cryptographic random number generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Self([0; 32]);
        crate::token::fill_random(&mut key.0)?;
        Ok(key)
    }

    /// Takes key material from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(array))
    }

    /// The raw key bytes. Callers must not copy them into anything that outlives the call.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes(<redacted>)")
    }
}

/// A string that holds personal data or a secret (a name, an address, an API key).
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a string; from here on it is wiped on drop.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value. Every call site is a place where a secret is used in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (safe to ask: reveals nothing but emptiness).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Decrypted bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// Wraps bytes; from here on they are wiped on drop.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens the buffer, wiping the bytes cut off.
    pub(crate) fn truncate_wiping(&mut self, len: usize) {
        if len < self.0.len() {
            self.0[len..].zeroize();
            self.0.truncate(len);
        }
    }

    /// The bytes as UTF-8 text, for fields that were sealed from text.
    pub fn into_secret_string(mut self) -> Result<SecretString, CryptoError> {
        let bytes = std::mem::take(&mut self.0);
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SecretString(text)),
            Err(err) => {
                let mut bytes = err.into_bytes();
                bytes.zeroize();
                Err(CryptoError::Malformed)
            }
        }
    }
}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretVec(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let key = KeyBytes::from_slice(&[0xAB; 32]).expect("32 bytes");
        let name = SecretString::new("山田太郎".to_owned());
        let bytes = SecretVec::new(b"4111111111111111".to_vec());
        let printed = format!("{key:?} {name:?} {bytes:?}");
        assert!(!printed.contains("ab") && !printed.contains("AB") && !printed.contains("171"));
        assert!(!printed.contains("山田") && !printed.contains("4111"));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn key_length_is_checked() {
        assert_eq!(KeyBytes::from_slice(&[0; 31]).err(), Some(CryptoError::KeyLength));
        assert!(KeyBytes::from_slice(&[0; 32]).is_ok());
    }

    #[test]
    fn non_utf8_is_malformed() {
        let bytes = SecretVec::new(vec![0xff, 0xfe]);
        assert_eq!(bytes.into_secret_string().err(), Some(CryptoError::Malformed));
    }
}
