//! The baseline signing key: an Ed25519 seed as 64 hex characters in a file
//! only its owner may read (mode 0600; a key file others can read is refused,
//! as ssh refuses one). The public half verifies baselines anywhere, so a
//! baseline copied off the host can be checked without the secret.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey};
use zeroize::Zeroizing;

/// The public half, for verifiers (re-exported so they need not name ed25519-dalek).
pub use ed25519_dalek::VerifyingKey;

/// Why a key could not be read or made.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// Not 64 hexadecimal characters (or not a valid public key).
    Malformed,
    /// Group or others may read or write the key file.
    TooOpen(u32),
    /// The system's random source failed.
    Random,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Malformed => f.write_str("the key must be 64 hexadecimal characters"),
            Self::TooOpen(mode) => write!(f, "the key file has mode {mode:04o}; run chmod 600 on it"),
            Self::Random => f.write_str("the system random source failed"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The signing key (zeroized on drop by ed25519-dalek; never printed).
pub struct BaselineKey(SigningKey);

impl std::fmt::Debug for BaselineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaselineKey(public {})", public_hex(&self.0.verifying_key()))
    }
}

impl BaselineKey {
    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// A key from a seed (tests and fuzzing).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// Reads a key file, refusing one group or others can access.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let meta = std::fs::metadata(path).map_err(KeyError::Io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen(mode));
        }
        let raw = Zeroizing::new(std::fs::read(path).map_err(KeyError::Io)?);
        let mut seed = Zeroizing::new([0u8; 32]);
        decode_32(raw.trim_ascii(), &mut seed)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Reads the key file, or makes one (mode 0600, directories created) when
    /// it does not exist. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Err(KeyError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => return other.map(|k| (k, false)),
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        anshin_crypto::token::fill_random(&mut seed[..]).map_err(|_| KeyError::Random)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(KeyError::Io)?;
        }
        let hex = Zeroizing::new(crate::hex(&seed[..]));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(KeyError::Io)?;
        file.write_all(hex.as_bytes()).map_err(KeyError::Io)?;
        file.write_all(b"\n").map_err(KeyError::Io)?;
        file.sync_all().map_err(KeyError::Io)?;
        Ok((Self(SigningKey::from_bytes(&seed)), true))
    }
}

fn decode_32(text: &[u8], out: &mut [u8; 32]) -> Result<(), KeyError> {
    if text.len() != 64 {
        return Err(KeyError::Malformed);
    }
    data_encoding::HEXLOWER_PERMISSIVE
        .decode_mut(text, &mut out[..])
        .map_err(|_| KeyError::Malformed)?;
    Ok(())
}

/// A public key as 64 hex characters.
pub fn public_hex(key: &VerifyingKey) -> String {
    crate::hex(key.as_bytes())
}

/// Parses a public key from 64 hex characters.
pub fn parse_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let mut bytes = [0u8; 32];
    decode_32(text.trim().as_bytes(), &mut bytes)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_are_0600_and_load_again() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/integrity.key");
        let (key, created) = BaselineKey::load_or_create(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = BaselineKey::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(key.verifying_key(), again.verifying_key());
        let printed = format!("{key:?}");
        let seed = std::fs::read_to_string(&path).expect("read");
        assert!(!printed.contains(seed.trim()));
    }

    #[test]
    fn open_or_malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        std::fs::write(&path, "00".repeat(32)).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(BaselineKey::load(&path), Err(KeyError::TooOpen(0o644))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(BaselineKey::load(&path).is_ok());
        std::fs::write(&path, "zz".repeat(32)).expect("write");
        assert!(matches!(BaselineKey::load(&path), Err(KeyError::Malformed)));
        assert!(parse_public("abc").is_err());
    }
}
