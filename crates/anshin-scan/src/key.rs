//! The fingerprint key: a per-installation secret that makes findings'
//! fingerprints keyed (PCI DSS 3.5.1.1), so a leaked report confirms no value.
//!
//! Stored as 64 hexadecimal characters in a file readable by its owner only.
//! Raw 32-byte files are accepted too.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use zeroize::Zeroizing;

/// Why the fingerprint key could not be read or made.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The file is neither 64 hex characters nor 32 raw bytes.
    Malformed,
    /// The system's random source failed.
    Random,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Malformed => f.write_str("the key file must hold 64 hexadecimal characters (32 bytes)"),
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

/// Reads a key file.
pub fn load(path: &Path) -> Result<FingerprintKey, KeyError> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(KeyError::Io)?);
    parse(&raw).map(|k| FingerprintKey::new(&k))
}

/// Reads the key file, or makes one (mode 0600, in a new directory if need be)
/// when it does not exist. Returns the key and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(FingerprintKey, bool), KeyError> {
    match std::fs::read(path) {
        Ok(raw) => {
            let raw = Zeroizing::new(raw);
            Ok((FingerprintKey::new(&parse(&raw)?), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyBytes::generate().map_err(|_| KeyError::Random)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(KeyError::Io)?;
            }
            let hex = Zeroizing::new(data_hex(key.expose()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(KeyError::Io)?;
            file.write_all(hex.as_bytes()).map_err(KeyError::Io)?;
            file.write_all(b"\n").map_err(KeyError::Io)?;
            file.sync_all().map_err(KeyError::Io)?;
            Ok((FingerprintKey::new(&key), true))
        }
        Err(e) => Err(KeyError::Io(e)),
    }
}

fn parse(raw: &[u8]) -> Result<KeyBytes, KeyError> {
    let trimmed = raw.trim_ascii();
    if trimmed.len() == 64 {
        let mut bytes = Zeroizing::new([0u8; 32]);
        for (i, pair) in trimmed.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or(KeyError::Malformed)?;
            let lo = hex_val(pair[1]).ok_or(KeyError::Malformed)?;
            bytes[i] = hi << 4 | lo;
        }
        return KeyBytes::from_slice(&bytes[..]).map_err(|_| KeyError::Malformed);
    }
    if raw.len() == 32 {
        return KeyBytes::from_slice(raw).map_err(|_| KeyError::Malformed);
    }
    Err(KeyError::Malformed)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn data_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// A key for scans whose fingerprints are thrown away (checking headers).
pub(crate) fn throwaway() -> FingerprintKey {
    // 32 bytes: from_slice cannot fail; fall back to generate for form's sake.
    let key = KeyBytes::from_slice(&[0x5a; 32])
        .or_else(|_| KeyBytes::generate())
        .unwrap_or_else(|_| unreachable!("a 32-byte slice is a valid key"));
    FingerprintKey::new(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reads_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/scan.key");
        let (a, created) = load_or_create(&path).expect("create");
        assert!(created);
        let (b, created) = load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(a.fingerprint("pan", b"x"), b.fingerprint("pan", b"x"));
        let text = std::fs::read_to_string(&path).expect("read file");
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others");
        }
    }

    #[test]
    fn parses_hex_and_raw_and_rejects_the_rest() {
        assert!(parse(&[b'a'; 64]).is_ok());
        assert!(parse(format!("{}\n", "0F".repeat(32)).as_bytes()).is_ok());
        assert!(parse(&[7u8; 32]).is_ok());
        assert!(matches!(parse(b"short"), Err(KeyError::Malformed)));
        assert!(matches!(parse(&[b'g'; 64]), Err(KeyError::Malformed)));
    }
}
