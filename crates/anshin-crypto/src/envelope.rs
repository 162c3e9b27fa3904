//! Envelope encryption with AES-256-GCM.
//!
//! Every record has its own data key; the data key is wrapped by the tenant's
//! key-encryption key (KEK), and each KEK version is wrapped by the root key. A
//! stored blob is `format (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`.
//!
//! The associated data ([`Context`]) binds a ciphertext to the place it belongs:
//! tenant, record kind, record id and field (and, for a wrapped data key, the
//! KEK version). A ciphertext copied into another record, field or tenant, or a
//! wrapped key presented under another version, fails authentication.
//!
//! Nonces are random (96 bits). NIST SP 800-38D bounds one key at 2^32 random-nonce
//! encryptions: a data key seals a handful of fields in its life, and KEK versions
//! are rotated long before that bound (see the key-management documentation).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

use crate::CryptoError;
use crate::secret::{KeyBytes, SecretVec};

/// Format byte of the current blob layout.
const FORMAT_V1: u8 = 1;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Bytes a sealed blob adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Associated data: an unambiguous, length-prefixed list of the parts that name
/// where a ciphertext belongs. Two different lists never encode to the same bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Context(Vec<u8>);

impl Context {
    /// Starts a context for one purpose, such as `"anshin.field.v1"`.
    pub fn new(purpose: &str) -> Self {
        Self(Vec::with_capacity(96)).part(purpose.as_bytes())
    }

    /// Appends one part.
    #[must_use]
    pub fn part(mut self, part: &[u8]) -> Self {
        // Parts are names and ids, never longer than a few hundred bytes; saturate
        // rather than wrap so an absurd part cannot alias a shorter one.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// Appends a number.
    #[must_use]
    pub fn number(self, value: u64) -> Self {
        self.part(&value.to_be_bytes())
    }

    /// The encoded associated data, for AEADs run elsewhere (a PKCS#11 token).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Context({} bytes)", self.0.len())
    }
}

/// An AES-256-GCM key that seals and opens blobs and wraps other keys.
///
/// The same type serves as data key, KEK and root key: what differs is what it
/// protects, and the [`Context`] says that.
pub struct AeadKey {
    key: RandomizedNonceKey,
}

impl AeadKey {
    /// A key over the given material (the material is not kept: aws-lc holds the
    /// expanded key and wipes it when the key is dropped).
    pub fn new(material: &KeyBytes) -> Result<Self, CryptoError> {
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, material.expose()).map_err(|_| CryptoError::KeyLength)?;
        Ok(Self { key })
    }

    /// Encrypts `plaintext`, bound to `context`.
    pub fn seal(&self, context: &Context, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut blob = Vec::with_capacity(plaintext.len() + OVERHEAD);
        blob.push(FORMAT_V1);
        blob.extend_from_slice(&[0; NONCE_LEN]);
        blob.extend_from_slice(plaintext);
        let (nonce, tag) = self
            .key
            .seal_in_place_separate_tag(Aad::from(context.as_bytes()), &mut blob[HEADER_LEN..])
            .map_err(|_| CryptoError::Random)?;
        blob[1..HEADER_LEN].copy_from_slice(nonce.as_ref());
        blob.extend_from_slice(tag.as_ref());
        Ok(blob)
    }

    /// Decrypts a blob made by [`AeadKey::seal`] under the same key and context.
    pub fn open(&self, context: &Context, blob: &[u8]) -> Result<SecretVec, CryptoError> {
        if blob.len() < OVERHEAD || blob[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&blob[1..HEADER_LEN]).map_err(|_| CryptoError::Malformed)?;
        let mut buffer = SecretVec::new(blob[HEADER_LEN..].to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), buffer.expose_mut())
            .map_err(|_| CryptoError::Authentication)?
            .len();
        buffer.truncate_wiping(plain_len);
        Ok(buffer)
    }

    /// Wraps key material (a data key under a KEK, a KEK under the root key).
    pub fn wrap(&self, context: &Context, key: &KeyBytes) -> Result<Vec<u8>, CryptoError> {
        self.seal(context, key.expose())
    }

    /// Unwraps key material wrapped by [`AeadKey::wrap`].
    pub fn unwrap_key(&self, context: &Context, blob: &[u8]) -> Result<KeyBytes, CryptoError> {
        let plain = self.open(context, blob)?;
        KeyBytes::from_slice(plain.expose()).map_err(|_| CryptoError::Malformed)
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(byte: u8) -> AeadKey {
        AeadKey::new(&KeyBytes::from_slice(&[byte; 32]).expect("32 bytes")).expect("valid key")
    }

    fn field(record: &str, name: &str) -> Context {
        Context::new("anshin.field.v1")
            .part(b"ten_a")
            .part(record.as_bytes())
            .part(name.as_bytes())
    }

    #[test]
    fn round_trip_and_overhead() {
        let k = key(1);
        let blob = k
            .seal(&field("card_1", "number"), b"4111111111111111")
            .expect("seal");
        assert_eq!(blob.len(), 16 + OVERHEAD);
        let plain = k.open(&field("card_1", "number"), &blob).expect("open");
        assert_eq!(plain.expose(), b"4111111111111111");
    }

    #[test]
    fn ciphertext_moved_to_another_record_or_field_fails() {
        let k = key(1);
        let blob = k
            .seal(&field("card_1", "number"), b"4111111111111111")
            .expect("seal");
        assert_eq!(
            k.open(&field("card_2", "number"), &blob).err(),
            Some(CryptoError::Authentication)
        );
        assert_eq!(
            k.open(&field("card_1", "holder"), &blob).err(),
            Some(CryptoError::Authentication)
        );
        assert_eq!(
            key(2).open(&field("card_1", "number"), &blob).err(),
            Some(CryptoError::Authentication)
        );
    }

    #[test]
    fn context_encoding_is_unambiguous() {
        let a = Context::new("p").part(b"ab").part(b"c");
        let b = Context::new("p").part(b"a").part(b"bc");
        assert_ne!(a, b);
    }

    #[test]
    fn wrapped_key_is_bound_to_its_version() {
        let kek = key(7);
        let data_key = KeyBytes::generate().expect("rng");
        let v1 = Context::new("anshin.dek.v1").number(1);
        let wrapped = kek.wrap(&v1, &data_key).expect("wrap");
        assert_eq!(
            kek.unwrap_key(&v1, &wrapped).expect("unwrap").expose(),
            data_key.expose()
        );
        let v2 = Context::new("anshin.dek.v1").number(2);
        assert_eq!(
            kek.unwrap_key(&v2, &wrapped).err(),
            Some(CryptoError::Authentication)
        );
    }

    #[test]
    fn short_or_unknown_format_is_malformed() {
        let k = key(1);
        let ctx = field("r", "f");
        assert_eq!(k.open(&ctx, &[]).err(), Some(CryptoError::Malformed));
        assert_eq!(
            k.open(&ctx, &[1; OVERHEAD - 1]).err(),
            Some(CryptoError::Malformed)
        );
        let mut blob = k.seal(&ctx, b"x").expect("seal");
        blob[0] = 9;
        assert_eq!(k.open(&ctx, &blob).err(), Some(CryptoError::Malformed));
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let k = key(1);
        let ctx = field("r", "f");
        assert_ne!(
            k.seal(&ctx, b"same").expect("seal"),
            k.seal(&ctx, b"same").expect("seal")
        );
    }

    proptest! {
        #[test]
        fn any_plaintext_round_trips(plain in proptest::collection::vec(any::<u8>(), 0..512)) {
            let k = key(3);
            let ctx = field("r", "f");
            let blob = k.seal(&ctx, &plain).expect("seal");
            let opened = k.open(&ctx, &blob).expect("open");
            prop_assert_eq!(opened.expose(), &plain[..]);
        }

        #[test]
        fn any_flipped_bit_is_rejected(plain in proptest::collection::vec(any::<u8>(), 0..64), bit in 0usize..4096) {
            let k = key(3);
            let ctx = field("r", "f");
            let mut blob = k.seal(&ctx, &plain).expect("seal");
            let bit = bit % (blob.len() * 8);
            blob[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(k.open(&ctx, &blob).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(blob in proptest::collection::vec(any::<u8>(), 0..128)) {
            prop_assert!(key(3).open(&field("r", "f"), &blob).is_err());
        }
    }
}
