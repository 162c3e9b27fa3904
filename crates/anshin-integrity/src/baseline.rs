//! The baseline file: the records of a tree, the rules they were taken
//! under and the history of approvals, signed with Ed25519.
//!
//! ```text
//! anshin-integrity-baseline/1
//! {"created_at":…,"host":…,"roots":[…],"rules":"…","records":[…],"history":[…]}
//! ed25519 <public key, 64 hex> <signature, 128 hex>
//! ```
//!
//! Three lines; the signature covers the first two lines with their newlines.
//! Verification uses a public key the verifier already trusts (from the key
//! file, or `--public-key`), never the one written in the file: that one only
//! says which key signed, so "signed by another key" can be told apart from
//! "altered after signing". Nothing in the payload is read before the
//! signature verifies.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::key::{BaselineKey, public_hex};
use crate::record::Record;

/// First line of every baseline of this format.
pub const MAGIC: &str = "anshin-integrity-baseline/1";

/// One line of the approval history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// `baseline` (first recording) or `approve` (a re-baseline after a change).
    pub action: String,
    /// Who approved (`--by`).
    pub by: String,
    /// Why (`--reason`).
    pub reason: String,
    /// Files added, removed and changed that this approval accepted.
    pub added: u64,
    /// See `added`.
    pub removed: u64,
    /// See `added`.
    pub changed: u64,
}

/// What a baseline holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// When the records were taken (RFC 3339, UTC).
    pub created_at: String,
    /// The host they were taken on.
    pub host: String,
    /// Absolute paths of the roots, as given.
    pub roots: Vec<String>,
    /// The rules file's text.
    pub rules: String,
    /// Every recorded entry, sorted by root and path.
    pub records: Vec<Record>,
    /// Every baseline and approval, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// Why a baseline file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineError {
    /// Not a baseline of this format (wrong first line, not three lines).
    NotABaseline,
    /// The signature line is malformed, or the signature does not verify:
    /// the file was altered after it was signed.
    Tampered,
    /// Signed correctly, but by another key (its public key is given).
    OtherKey(String),
    /// Signed by the trusted key but unreadable (a bug, or a newer version).
    Unreadable(String),
}

impl std::fmt::Display for BaselineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotABaseline => f.write_str("not an anshin integrity baseline"),
            Self::Tampered => {
                f.write_str("the baseline's signature does not verify: it was altered after signing")
            }
            Self::OtherKey(k) => write!(f, "the baseline is signed by another key ({k})"),
            Self::Unreadable(e) => write!(f, "the baseline is signed but cannot be read: {e}"),
        }
    }
}

impl std::error::Error for BaselineError {}

impl Payload {
    /// Signs and encodes.
    pub fn encode(&self, key: &BaselineKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.records.len() * 300);
        out.extend_from_slice(MAGIC.as_bytes());
        out.push(b'\n');
        // serde_json writes no raw newline inside a value, so the payload is one line.
        serde_json::to_writer(&mut out, self).expect("a payload always serialises");
        out.push(b'\n');
        let signature = key.sign(&out);
        out.extend_from_slice(b"ed25519 ");
        out.extend_from_slice(public_hex(&key.verifying_key()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(crate::hex(&signature).as_bytes());
        out.push(b'\n');
        out
    }

    /// Verifies `bytes` against `trusted` and decodes the payload.
    pub fn decode(bytes: &[u8], trusted: &VerifyingKey) -> Result<Self, BaselineError> {
        let (signed, signer, signature) = split(bytes)?;
        let claimed = VerifyingKey::from_bytes(&signer).map_err(|_| BaselineError::Tampered)?;
        if claimed != *trusted {
            return Err(if claimed.verify_strict(signed, &signature).is_ok() {
                BaselineError::OtherKey(public_hex(&claimed))
            } else {
                BaselineError::Tampered
            });
        }
        if trusted.verify_strict(signed, &signature).is_err() {
            return Err(BaselineError::Tampered);
        }
        let payload = &signed[MAGIC.len() + 1..signed.len() - 1];
        serde_json::from_slice(payload).map_err(|e| BaselineError::Unreadable(e.to_string()))
    }
}

/// The key a baseline's signature line names, once the signature verifies
/// under it. Only for a verifier that pins keys itself (the anshin server
/// pins one per host): it says who signed, not whom to trust.
pub fn signer(bytes: &[u8]) -> Result<VerifyingKey, BaselineError> {
    let (signed, signer, signature) = split(bytes)?;
    let key = VerifyingKey::from_bytes(&signer).map_err(|_| BaselineError::Tampered)?;
    key.verify_strict(signed, &signature)
        .map_err(|_| BaselineError::Tampered)?;
    Ok(key)
}

/// Splits a file into the signed part, the signer's key and the signature.
fn split(bytes: &[u8]) -> Result<(&[u8], [u8; 32], Signature), BaselineError> {
    let first = memchr::memchr(b'\n', bytes).ok_or(BaselineError::NotABaseline)?;
    if &bytes[..first] != MAGIC.as_bytes() {
        return Err(BaselineError::NotABaseline);
    }
    let body = bytes.strip_suffix(b"\n").ok_or(BaselineError::NotABaseline)?;
    let last = memchr::memrchr(b'\n', body).ok_or(BaselineError::NotABaseline)?;
    if last <= first {
        return Err(BaselineError::NotABaseline);
    }
    let signed = &bytes[..=last];
    if memchr::memchr(b'\n', &signed[first + 1..last]).is_some() {
        return Err(BaselineError::NotABaseline);
    }
    let line = std::str::from_utf8(&body[last + 1..]).map_err(|_| BaselineError::Tampered)?;
    let mut parts = line.split(' ');
    let (Some("ed25519"), Some(public), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BaselineError::Tampered);
    };
    let mut signer = [0u8; 32];
    let mut signature = [0u8; 64];
    if public.len() != 64 || sig.len() != 128 {
        return Err(BaselineError::Tampered);
    }
    data_encoding::HEXLOWER
        .decode_mut(public.as_bytes(), &mut signer)
        .map_err(|_| BaselineError::Tampered)?;
    data_encoding::HEXLOWER
        .decode_mut(sig.as_bytes(), &mut signature)
        .map_err(|_| BaselineError::Tampered)?;
    Ok((signed, signer, Signature::from_bytes(&signature)))
}

/// The host's name (for the baseline and alerts).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FileKind;

    fn payload() -> Payload {
        Payload {
            created_at: "2026-12-05T21:00:00Z".into(),
            host: "shop-1".into(),
            roots: vec!["/var/www/shop".into()],
            rules: crate::rules::DEFAULT_RULES.into(),
            records: vec![Record {
                root: 0,
                path: "html/index.php".into(),
                kind: FileKind::File,
                size: 3,
                mode: 0o644,
                uid: 33,
                gid: 33,
                mtime_ns: 1,
                ctime_ns: 2,
                dev: 3,
                ino: 4,
                blake3: Some("ab".repeat(32)),
                sha256: Some("cd".repeat(32)),
                link_target: None,
                facts: None,
            }],
            history: vec![],
        }
    }

    #[test]
    fn a_signed_baseline_round_trips() {
        let key = BaselineKey::from_seed([7; 32]);
        let bytes = payload().encode(&key);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 3);
        assert_eq!(Payload::decode(&bytes, &key.verifying_key()), Ok(payload()));
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let key = BaselineKey::from_seed([7; 32]);
        let bytes = payload().encode(&key);
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            assert!(
                Payload::decode(&altered, &key.verifying_key()).is_err(),
                "a change at byte {i} was accepted"
            );
        }
    }

    #[test]
    fn a_baseline_re_signed_by_an_attacker_is_refused() {
        let key = BaselineKey::from_seed([7; 32]);
        let attacker = BaselineKey::from_seed([9; 32]);
        let mut forged = payload();
        forged.records[0].sha256 = Some("ee".repeat(32));
        let bytes = forged.encode(&attacker);
        assert_eq!(
            Payload::decode(&bytes, &key.verifying_key()),
            Err(BaselineError::OtherKey(public_hex(&attacker.verifying_key())))
        );
        assert_eq!(signer(&bytes), Ok(attacker.verifying_key()));
        let mut altered = bytes.clone();
        altered[40] ^= 1;
        assert_eq!(signer(&altered), Err(BaselineError::Tampered));
        assert_eq!(
            Payload::decode(b"{\"records\":[]}", &key.verifying_key()),
            Err(BaselineError::NotABaseline)
        );
    }
}
