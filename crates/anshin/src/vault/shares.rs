//! Custodian shares of the root key: Shamir's secret sharing over GF(256)
//! (vsss-rs), one full-length share per custodian, each optionally sealed under
//! its custodian's passphrase (Argon2id, then AES-256-GCM).
//!
//! A share's text form is `anshin-share:` followed by base32 of
//!
//! ```text
//! version (1) ‖ kind (1: 0 plain, 1 passphrase) ‖ vault id (16) ‖ index (1) ‖ threshold (1)
//!   ‖ plain: share bytes (32)
//!   ‖ passphrase: memory KiB (4, big-endian) ‖ passes (1) ‖ lanes (1) ‖ salt (16) ‖ sealed share (61)
//! ‖ checksum (4: the first bytes of SHA-256 over everything before it)
//! ```
//!
//! The vault id rejects a share of another vault before anything is combined,
//! the checksum catches typos, and the passphrase seal is bound to the header
//! (vault, index, threshold, cost) through its associated data. Never the key:
//! one share alone is uniformly random.

use std::fmt;

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::{KeyBytes, SecretString, SecretVec};
use anshin_crypto::token::fill_random;
use data_encoding::{BASE32_NOPAD, HEXLOWER};
use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

const PREFIX: &str = "anshin-share:";
const VERSION: u8 = 1;
const KIND_PLAIN: u8 = 0;
const KIND_PASSPHRASE: u8 = 1;
const HEADER_LEN: usize = 1 + 1 + 16 + 1 + 1;
const SHARE_LEN: usize = 32;
const SALT_LEN: usize = 16;
const KDF_LEN: usize = 4 + 1 + 1;
const SEALED_LEN: usize = SHARE_LEN + anshin_crypto::envelope::OVERHEAD;
const CHECKSUM_LEN: usize = 4;
/// Most shares a root key is split into.
pub const MAX_SHARES: u8 = 16;

/// Argon2id cost of a custodian's passphrase: 64 MiB, 3 passes, 1 lane
/// (RFC 9106's second recommended option, single-lane). Recorded in each
/// share, so a later change leaves issued shares readable.
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes (see [`KDF_MEMORY_KIB`]).
pub const KDF_PASSES: u8 = 3;
const KDF_LANES: u8 = 1;
/// Weakest cost a share may ask for: a forged share cannot lower the work an
/// attacker with a stolen share must do per passphrase guess below this.
const MIN_KDF_MEMORY_KIB: u32 = 19 * 1024;
/// Largest cost a share may ask for, so a crafted share cannot exhaust memory.
const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;

/// Identifies one vault's root key; every share carries it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VaultId([u8; 16]);

impl VaultId {
    /// A fresh random vault id.
    pub fn generate() -> Result<Self> {
        let mut id = [0u8; 16];
        fill_random(&mut id)?;
        Ok(Self(id))
    }

    /// Parses the hex form written by [`VaultId::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = HEXLOWER.decode(text.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lowercase hex.
    pub fn to_hex(self) -> String {
        HEXLOWER.encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultId({})", self.to_hex())
    }
}

/// Argon2id cost as recorded in a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KdfCost {
    memory_kib: u32,
    passes: u8,
    lanes: u8,
}

impl KdfCost {
    const STANDARD: Self = Self {
        memory_kib: KDF_MEMORY_KIB,
        passes: KDF_PASSES,
        lanes: KDF_LANES,
    };

    fn derive(self, passphrase: &SecretString, salt: &[u8]) -> Result<AeadKey> {
        let params = argon2::Params::new(
            self.memory_kib,
            u32::from(self.passes),
            u32::from(self.lanes),
            Some(32),
        )
        .map_err(|_| share_error("share_malformed"))?;
        let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        kdf.hash_password_into(passphrase.expose().as_bytes(), salt, out.as_mut())
            .map_err(|_| share_error("share_malformed"))?;
        Ok(AeadKey::new(&KeyBytes::from_slice(out.as_ref())?)?)
    }
}

/// What a share holds besides its header.
enum Body {
    Plain(SecretVec),
    Sealed {
        cost: KdfCost,
        salt: [u8; SALT_LEN],
        sealed: Vec<u8>,
    },
}

/// One parsed custodian share: checked for form and checksum, not yet opened.
pub struct Share {
    vault: VaultId,
    index: u8,
    threshold: u8,
    body: Body,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("vault", &self.vault)
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .field("passphrase", &self.needs_passphrase())
            .field("value", &"<redacted>")
            .finish()
    }
}

/// A share's index and bytes, passphrase removed: ready to combine.
pub struct OpenShare {
    index: u8,
    value: SecretVec,
}

impl OpenShare {
    /// The share's index (1 to [`MAX_SHARES`]).
    pub fn index(&self) -> u8 {
        self.index
    }
}

impl fmt::Debug for OpenShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenShare({}, <redacted>)", self.index)
    }
}

/// The error for a share, by stable code. The messages name the share's
/// problem and what to do; never a byte of it.
pub fn share_error(code: &'static str) -> Error {
    let (kind, message) = match code {
        "share_malformed" => (
            ErrorKind::Invalid,
            "this is not an anshin share (anshin-share:…), or it is cut short; copy it again in full",
        ),
        "share_checksum" => (
            ErrorKind::Invalid,
            "the share's checksum does not match: it has a typo; enter it again",
        ),
        "share_wrong_vault" => (
            ErrorKind::Invalid,
            "this share belongs to another vault; use a share issued by this vault's `anshin init`",
        ),
        "share_duplicate" => (
            ErrorKind::Conflict,
            "a share with this index was already entered; the next custodian's share is needed",
        ),
        "share_passphrase_required" => (
            ErrorKind::Invalid,
            "this share is sealed under its custodian's passphrase; send it with the passphrase",
        ),
        "share_passphrase_wrong" => (
            ErrorKind::Invalid,
            "the passphrase does not open this share; its custodian must enter it",
        ),
        "share_combination_wrong" => (
            ErrorKind::Invalid,
            "these shares do not reproduce this vault's root key; progress was reset: enter the shares again",
        ),
        _ => (
            ErrorKind::Internal,
            "internal error; the server log has the details",
        ),
    };
    Error::new(kind, code, message)
}

impl Share {
    /// Parses a share's text form; whitespace and case do not matter.
    pub fn parse(text: &str) -> Result<Self> {
        let malformed = || share_error("share_malformed");
        let text = text.trim();
        let rest = text
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .and_then(|_| text.get(PREFIX.len()..))
            .ok_or_else(malformed)?;
        let compact: Zeroizing<String> = Zeroizing::new(
            rest.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = Zeroizing::new(BASE32_NOPAD.decode(compact.as_bytes()).map_err(|_| malformed())?);
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(malformed());
        }
        let (payload, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum != &digest(payload)[..CHECKSUM_LEN] {
            return Err(share_error("share_checksum"));
        }
        let (header, body) = payload.split_at(HEADER_LEN);
        let mut vault = [0u8; 16];
        vault.copy_from_slice(&header[2..18]);
        let (index, threshold) = (header[18], header[19]);
        if header[0] != VERSION
            || !(1..=MAX_SHARES).contains(&index)
            || !(2..=MAX_SHARES).contains(&threshold)
        {
            return Err(malformed());
        }
        let body = match header[1] {
            KIND_PLAIN if body.len() == SHARE_LEN => Body::Plain(SecretVec::new(body.to_vec())),
            KIND_PASSPHRASE if body.len() == KDF_LEN + SALT_LEN + SEALED_LEN => {
                let cost = KdfCost {
                    memory_kib: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    passes: body[4],
                    lanes: body[5],
                };
                if !(MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB).contains(&cost.memory_kib)
                    || !(1..=16).contains(&cost.passes)
                    || !(1..=8).contains(&cost.lanes)
                {
                    return Err(malformed());
                }
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&body[KDF_LEN..KDF_LEN + SALT_LEN]);
                Body::Sealed {
                    cost,
                    salt,
                    sealed: body[KDF_LEN + SALT_LEN..].to_vec(),
                }
            }
            _ => return Err(malformed()),
        };
        Ok(Self {
            vault: VaultId(vault),
            index,
            threshold,
            body,
        })
    }

    /// The vault the share belongs to.
    pub fn vault(&self) -> VaultId {
        self.vault
    }

    /// The share's index.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// How many shares rebuild the key.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Whether the share is sealed under a passphrase.
    pub fn needs_passphrase(&self) -> bool {
        matches!(self.body, Body::Sealed { .. })
    }

    /// Checks the share belongs to `vault` with `threshold`, and removes its
    /// passphrase seal (Argon2id: deliberately slow, call it off the async threads).
    pub fn open(self, vault: VaultId, threshold: u8, passphrase: Option<&SecretString>) -> Result<OpenShare> {
        if self.vault != vault || self.threshold != threshold {
            return Err(share_error("share_wrong_vault"));
        }
        let value = match &self.body {
            Body::Plain(value) => SecretVec::new(value.expose().to_vec()),
            Body::Sealed { cost, salt, sealed } => {
                let passphrase = passphrase
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| share_error("share_passphrase_required"))?;
                let key = cost.derive(passphrase, salt)?;
                key.open(&self.seal_context(), sealed)
                    .map_err(|_| share_error("share_passphrase_wrong"))?
            }
        };
        Ok(OpenShare {
            index: self.index,
            value,
        })
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[0] = VERSION;
        header[1] = if self.needs_passphrase() {
            KIND_PASSPHRASE
        } else {
            KIND_PLAIN
        };
        header[2..18].copy_from_slice(&self.vault.0);
        header[18] = self.index;
        header[19] = self.threshold;
        header
    }

    /// The seal is bound to the header, the cost and the salt: a sealed share
    /// moved under another index, vault or cost no longer opens.
    fn seal_context(&self) -> Context {
        let context = Context::new("anshin.share.v1").part(&self.header());
        match &self.body {
            Body::Sealed { cost, salt, .. } => context
                .number(u64::from(cost.memory_kib))
                .number(u64::from(cost.passes))
                .number(u64::from(cost.lanes))
                .part(salt),
            Body::Plain(_) => context,
        }
    }

    /// The text form (`anshin-share:…`).
    pub fn to_text(&self) -> SecretString {
        let mut bytes = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + KDF_LEN + SALT_LEN + SEALED_LEN + CHECKSUM_LEN,
        ));
        bytes.extend_from_slice(&self.header());
        match &self.body {
            Body::Plain(value) => bytes.extend_from_slice(value.expose()),
            Body::Sealed { cost, salt, sealed } => {
                bytes.extend_from_slice(&cost.memory_kib.to_be_bytes());
                bytes.extend_from_slice(&[cost.passes, cost.lanes]);
                bytes.extend_from_slice(salt);
                bytes.extend_from_slice(sealed);
            }
        }
        let checksum = digest(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
        SecretString::new(format!("{PREFIX}{}", BASE32_NOPAD.encode(&bytes)))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Splits `root` into one share per entry of `passphrases` (sealed under it
/// when given), any `threshold` of which rebuild it.
pub fn split(
    root: &KeyBytes,
    vault: VaultId,
    threshold: u8,
    passphrases: &[Option<SecretString>],
) -> Result<Vec<Share>> {
    let count = u8::try_from(passphrases.len())
        .ok()
        .filter(|n| (2..=MAX_SHARES).contains(n) && (2..=*n).contains(&threshold))
        .ok_or_else(|| {
            Error::invalid(
                "share_parameters",
                format!("shares must be 2 to {MAX_SHARES} and the threshold 2 to the number of shares"),
            )
        })?;
    let ids = (1..=count).map(|i| IdentifierGf256(Gf256(i)));
    let raw = Gf256::split_bytes_with_participant_ids_iter(
        usize::from(threshold),
        usize::from(count),
        root.expose(),
        rng(),
        ids,
    )
    .map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "share_split_failed",
            "cannot split the root key",
        )
    })?;
    let raw: Vec<Zeroizing<Vec<u8>>> = raw.into_iter().map(Zeroizing::new).collect();
    raw.iter()
        .zip(passphrases)
        .map(|(share, passphrase)| {
            let mut built = Share {
                vault,
                index: share[0],
                threshold,
                body: Body::Plain(SecretVec::new(share[1..].to_vec())),
            };
            if let Some(passphrase) = passphrase {
                let mut salt = [0u8; SALT_LEN];
                fill_random(&mut salt)?;
                let cost = KdfCost::STANDARD;
                let key = cost.derive(passphrase, &salt)?;
                built.body = Body::Sealed {
                    cost,
                    salt,
                    sealed: Vec::new(),
                };
                let sealed = key.seal(&built.seal_context(), &share[1..])?;
                if let Body::Sealed { sealed: slot, .. } = &mut built.body {
                    *slot = sealed;
                }
            }
            Ok(built)
        })
        .collect()
}

/// Rebuilds a key from shares with distinct indexes (at least the threshold
/// of them; fewer give a wrong key, which the root check then refuses).
pub fn combine(shares: &[OpenShare]) -> Result<KeyBytes> {
    let raw: Vec<Vec<u8>> = shares
        .iter()
        .map(|s| {
            let mut v = Vec::with_capacity(1 + SHARE_LEN);
            v.push(s.index);
            v.extend_from_slice(s.value.expose());
            v
        })
        .collect();
    let raw = Zeroizing::new(raw);
    let key = Zeroizing::new(
        Gf256::combine_bytes(raw.as_slice()).map_err(|_| share_error("share_combination_wrong"))?,
    );
    KeyBytes::from_slice(&key).map_err(|_| share_error("share_combination_wrong"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn open_all(shares: Vec<Share>, vault: VaultId, k: u8) -> Vec<OpenShare> {
        shares
            .into_iter()
            .map(|s| s.open(vault, k, None).expect("open"))
            .collect()
    }

    #[test]
    fn text_round_trips_and_typos_are_caught() {
        let root = KeyBytes::generate().expect("rng");
        let vault = VaultId::generate().expect("rng");
        let shares = split(&root, vault, 2, &[None, None, None]).expect("split");
        let text = shares[1].to_text();
        let parsed = Share::parse(text.expose()).expect("parse");
        assert_eq!(
            (parsed.index(), parsed.threshold(), parsed.vault()),
            (2, 2, vault)
        );
        // Lowercase and spaces are accepted.
        let relaxed = format!("  {} ", text.expose().to_lowercase());
        assert!(Share::parse(&relaxed).is_ok());
        let mut typo = text.expose().to_owned().into_bytes();
        let at = PREFIX.len() + 30;
        typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).expect("ascii");
        assert_eq!(
            Share::parse(&typo).err().map(|e| e.code()),
            Some("share_checksum")
        );
        assert_eq!(
            Share::parse("anshin-share:").err().map(|e| e.code()),
            Some("share_malformed")
        );
    }

    #[test]
    fn passphrase_sealed_shares_need_their_passphrase() {
        let root = KeyBytes::generate().expect("rng");
        let vault = VaultId::generate().expect("rng");
        let right = SecretString::new("correct horse battery staple".into());
        let shares = split(&root, vault, 2, &[Some(right.clone()), None]).expect("split");
        let text = shares[0].to_text();
        let parse = || Share::parse(text.expose()).expect("parse");
        assert!(parse().needs_passphrase());
        assert_eq!(
            parse().open(vault, 2, None).err().map(|e| e.code()),
            Some("share_passphrase_required")
        );
        let wrong = SecretString::new("wrong".into());
        assert_eq!(
            parse().open(vault, 2, Some(&wrong)).err().map(|e| e.code()),
            Some("share_passphrase_wrong")
        );
        let other = VaultId::generate().expect("rng");
        assert_eq!(
            parse().open(other, 2, Some(&right)).err().map(|e| e.code()),
            Some("share_wrong_vault")
        );
        let first = parse().open(vault, 2, Some(&right)).expect("open");
        let second = Share::parse(shares[1].to_text().expose())
            .expect("parse")
            .open(vault, 2, None)
            .expect("open");
        assert_eq!(
            combine(&[first, second]).expect("combine").expose(),
            root.expose()
        );
    }

    #[test]
    fn debug_never_shows_share_bytes() {
        let root = KeyBytes::from_slice(&[0xAB; 32]).expect("key");
        let vault = VaultId::generate().expect("rng");
        let shares = split(&root, vault, 2, &[None, None]).expect("split");
        let text = shares[0].to_text();
        let body = &text.expose()[PREFIX.len() + 40..PREFIX.len() + 60];
        let opened = Share::parse(text.expose())
            .expect("parse")
            .open(vault, 2, None)
            .expect("open");
        for shown in [
            format!("{:?}", shares[0]),
            format!("{opened:?}"),
            format!("{text:?}"),
        ] {
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.contains(body), "{shown}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_k_of_n_rebuild_the_key(n in 2u8..=MAX_SHARES, k_seed in 0u8..16, pick in any::<u64>()) {
            let k = 2 + k_seed % (n - 1);
            let root = KeyBytes::generate().expect("rng");
            let vault = VaultId::generate().expect("rng");
            let shares = split(&root, vault, k, &vec![None; usize::from(n)]).expect("split");
            let mut opened = open_all(shares, vault, k);
            // A pseudo-random choice of k of them, in a shuffled order.
            let len = opened.len();
            let mut state = pick;
            for i in (1..len).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                opened.swap(i, usize::try_from(state >> 33).unwrap_or(0) % (i + 1));
            }
            opened.truncate(usize::from(k));
            let rebuilt = combine(&opened).expect("combine");
            prop_assert_eq!(rebuilt.expose(), root.expose());
            // One fewer never gives the key.
            opened.pop();
            if opened.len() >= 2 {
                let short = combine(&opened).expect("combine");
                prop_assert_ne!(short.expose(), root.expose());
            }
        }

        #[test]
        fn parser_never_panics(text in ".{0,300}") {
            let _ = Share::parse(&text);
            let _ = Share::parse(&format!("{PREFIX}{text}"));
        }

        #[test]
        fn parser_never_panics_on_base32(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Share::parse(&format!("{PREFIX}{}", BASE32_NOPAD.encode(&bytes)));
        }
    }
}
