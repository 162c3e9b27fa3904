use std::fmt;

/// Why a cryptographic operation failed. Never carries key bytes or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The stored blob is not in a format this version understands (too short,
    /// unknown format byte). Nothing was decrypted.
    Malformed,
    /// Authentication failed: wrong key, wrong associated data, or tampered bytes.
    Authentication,
    /// Key material had the wrong length.
    KeyLength,
    /// The operating system's random number generator failed.
    Random,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "ciphertext is malformed",
            Self::Authentication => "ciphertext failed authentication (wrong key, wrong context or tampered)",
            Self::KeyLength => "key material has the wrong length",
            Self::Random => "the system random number generator failed",
        })
    }
}

impl std::error::Error for CryptoError {}
