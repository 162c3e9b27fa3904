//! C2SP signed notes and transparency-log checkpoints, signed with Ed25519.
//!
//! A signed note is UTF-8 text ending in a newline, a blank line, then one or
//! more lines `— <key name> <base64(key ID ‖ signature)>`. The key ID is the
//! first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key) for Ed25519
//! (signature type 0x01). A verifier key is published as
//! `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`, the form Go's
//! `golang.org/x/mod/sumdb/note`, Tessera and the witness network read.
//!
//! A checkpoint is a note whose text is the log's origin, its tree size in
//! decimal, the base64 root hash and optional extension lines: the signed tree
//! head of the audit log ([`crate::merkle`]).
//!
//! Verification follows the spec's rules: signatures by keys the caller does not
//! know are ignored (that is how witness cosignatures and key rotation coexist);
//! a known key's signature that fails rejects the whole note; a note with no
//! verified signature by a known key is rejected.
//!
//! Threat notes: every parser here reads text an attacker may have written and
//! returns a [`NoteError`] instead of panicking; sizes are bounded
//! ([`MAX_NOTE_LEN`], [`MAX_SIGNATURES`]). The signing seed lives in a zeroized
//! [`KeyBytes`]; the expanded key lives inside `aws-lc`, which wipes it when it is
//! freed. `Debug` of a signer prints its name and key ID only.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use data_encoding::{BASE64, HEXLOWER};

use crate::merkle::{HASH_LEN, Hash};
use crate::secret::KeyBytes;

/// Signature type byte of Ed25519 note signatures.
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Largest note accepted, in bytes. Checkpoints are about 200 bytes; this leaves
/// room for many (even post-quantum) cosignatures while bounding the work an
/// attacker can cause.
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// Most signature lines accepted in one note (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

const ED25519_PUBLIC_KEY_LEN: usize = 32;
const ED25519_SIGNATURE_LEN: usize = 64;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note, key or checkpoint was refused. Carries no key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_LEN`] or has more than
    /// [`MAX_SIGNATURES`] signature lines.
    TooLarge,
    /// The bytes are not valid UTF-8.
    NotUtf8,
    /// The text contains an ASCII control character other than newline.
    ControlCharacter,
    /// The text (or the whole note) does not end in a newline.
    MissingFinalNewline,
    /// There is no blank line followed by at least one signature line.
    NoSignatures,
    /// A signature line is not `— <name> <base64>` with at least five bytes of
    /// signature data.
    MalformedSignatureLine,
    /// A key name is empty or contains a space or a plus sign.
    InvalidKeyName,
    /// A verifier key string is not `<name>+<8 hex digits>+<base64>`.
    MalformedVerifierKey,
    /// A key uses a signature type other than Ed25519.
    UnsupportedAlgorithm,
    /// A public key or seed has the wrong length or is not a valid Ed25519 key.
    InvalidKey,
    /// A verifier key's key ID is not the one its name and public key produce.
    KeyIdMismatch,
    /// Two verifiers share a name and key ID but not a key, so a signature
    /// could not be attributed.
    AmbiguousVerifiers,
    /// A signature by a known key does not verify: the text or the signature
    /// was changed.
    BadSignature,
    /// No signature by any of the given keys is on the note.
    UnknownSigner,
    /// Checkpoint text does not have an origin, a size and a root hash line, or
    /// has an empty line.
    CheckpointLines,
    /// The checkpoint tree size is not a decimal number without leading zeros
    /// that fits in 64 bits.
    CheckpointSize,
    /// The checkpoint root hash is not the canonical base64 of 32 bytes.
    CheckpointRootHash,
    /// The checkpoint's origin is not the one the caller expects.
    WrongOrigin,
    /// The system random number generator failed.
    Random,
    /// The signing operation failed inside the crypto library.
    Signing,
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "note is too large or has too many signatures",
            Self::NotUtf8 => "note is not valid UTF-8",
            Self::ControlCharacter => "note contains a control character",
            Self::MissingFinalNewline => "note text does not end in a newline",
            Self::NoSignatures => "note has no signature lines after a blank line",
            Self::MalformedSignatureLine => "note has a malformed signature line",
            Self::InvalidKeyName => "key name is empty or contains a space or '+'",
            Self::MalformedVerifierKey => "verifier key is not in the form name+hash+key",
            Self::UnsupportedAlgorithm => "key type is not Ed25519",
            Self::InvalidKey => "key has the wrong length or is not a valid Ed25519 key",
            Self::KeyIdMismatch => "verifier key ID does not match its name and key",
            Self::AmbiguousVerifiers => "two verifier keys share a name and key ID",
            Self::BadSignature => "a signature by a known key does not verify",
            Self::UnknownSigner => "note is not signed by any known key",
            Self::CheckpointLines => "checkpoint needs origin, size and root hash lines, none empty",
            Self::CheckpointSize => "checkpoint tree size is not a canonical decimal number",
            Self::CheckpointRootHash => "checkpoint root hash is not base64 of 32 bytes",
            Self::WrongOrigin => "checkpoint origin is not the expected log",
            Self::Random => "the system random number generator failed",
            Self::Signing => "signing failed",
        })
    }
}

impl std::error::Error for NoteError {}

/// Checks a key name: non-empty, no Unicode space, no `+` (which separates the
/// parts of a verifier key), no control character.
fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(NoteError::InvalidKeyName);
    }
    Ok(())
}

/// Rejects ASCII control characters other than newline (signed-note format).
fn check_controls(text: &str) -> Result<(), NoteError> {
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    Ok(())
}

/// The key ID: SHA-256(name ‖ 0x0A ‖ type ‖ public key), first four bytes, big endian.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(&[b'\n', sig_type]);
    ctx.update(public_key);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    u32::from_be_bytes(id)
}

/// A public Ed25519 note key with its name: what a verifier is configured with.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl NoteVerifier {
    /// A verifier for `name` and a raw 32-byte Ed25519 public key.
    pub fn new(name: &str, public_key: &[u8]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let public_key: [u8; ED25519_PUBLIC_KEY_LEN] =
            public_key.try_into().map_err(|_| NoteError::InvalidKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, SIG_TYPE_ED25519, &public_key),
            public_key,
        })
    }

    /// Parses a verifier key `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`.
    /// The key ID must be eight lower-case hex digits and must match the name
    /// and key, so a typo cannot silently point at another key.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        // The name cannot hold '+', the base64 key can: split on the first two.
        let (name, rest) = vkey.split_once('+').ok_or(NoteError::MalformedVerifierKey)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(NoteError::MalformedVerifierKey)?;
        check_key_name(name)?;
        if id_hex.len() != 8 {
            return Err(NoteError::MalformedVerifierKey);
        }
        let id_bytes = HEXLOWER
            .decode(id_hex.as_bytes())
            .map_err(|_| NoteError::MalformedVerifierKey)?;
        let key = BASE64
            .decode(key_b64.as_bytes())
            .map_err(|_| NoteError::MalformedVerifierKey)?;
        let (&sig_type, public_key) = key.split_first().ok_or(NoteError::MalformedVerifierKey)?;
        if sig_type != SIG_TYPE_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm);
        }
        let verifier = Self::new(name, public_key)?;
        let claimed = u32::from_be_bytes(id_bytes.try_into().map_err(|_| NoteError::MalformedVerifierKey)?);
        if claimed != verifier.key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The verifier key string, as [`NoteVerifier::parse`] reads it.
    pub fn to_vkey(&self) -> String {
        let mut key = Vec::with_capacity(1 + ED25519_PUBLIC_KEY_LEN);
        key.push(SIG_TYPE_ED25519);
        key.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(&key))
    }

    fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        signature.len() == ED25519_SIGNATURE_LEN
            && UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(text, signature)
                .is_ok()
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({})", self.to_vkey())
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An Ed25519 note signing key with its name: the audit log's checkpoint key.
pub struct NoteSigner {
    name: String,
    seed: KeyBytes,
    pair: Ed25519KeyPair,
    verifier: NoteVerifier,
}

impl NoteSigner {
    /// A fresh key from the system's random number generator.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let seed = KeyBytes::generate().map_err(|_| NoteError::Random)?;
        Self::from_seed(name, &seed)
    }

    /// The key with the given 32-byte RFC 8032 seed (its private key), as stored
    /// by whoever keeps the log's key (sealed, never in clear at rest).
    pub fn from_seed(name: &str, seed: &KeyBytes) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose()).map_err(|_| NoteError::InvalidKey)?;
        let verifier = NoteVerifier::new(name, pair.public_key().as_ref())?;
        Ok(Self {
            name: name.to_owned(),
            seed: seed.clone(),
            pair,
            verifier,
        })
    }

    /// The seed, to be sealed for storage. Every call site handles the private key.
    pub fn expose_seed(&self) -> &KeyBytes {
        &self.seed
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.verifier.key_id
    }

    /// The public half, for verifying this signer's notes.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The verifier key string to publish (`anshin audit public-key`).
    pub fn verifier_key(&self) -> String {
        self.verifier.to_vkey()
    }

    /// Signs `text` and returns the signed note: the text, a blank line and this
    /// key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let mut note = Note::new(text)?;
        note.sign(self)?;
        Ok(note.to_string())
    }

    fn signature(&self, text: &str) -> Result<NoteSignature, NoteError> {
        let sig = self
            .pair
            .try_sign(text.as_bytes())
            .map_err(|_| NoteError::Signing)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.verifier.key_id,
            signature: sig.as_ref().to_vec(),
        })
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NoteSigner({}+{:08x}, <redacted>)",
            self.name, self.verifier.key_id
        )
    }
}

/// One signature line of a note, as written: not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// The key name on the line.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID on the line.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    fn parse(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::MalformedSignatureLine)?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::MalformedSignatureLine)?;
        check_key_name(name).map_err(|_| NoteError::MalformedSignatureLine)?;
        let bytes = BASE64
            .decode(b64.as_bytes())
            .map_err(|_| NoteError::MalformedSignatureLine)?;
        if bytes.len() < 5 {
            return Err(NoteError::MalformedSignatureLine);
        }
        let (id, signature) = bytes.split_at(4);
        let mut id_bytes = [0u8; 4];
        id_bytes.copy_from_slice(id);
        Ok(Self {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(id_bytes),
            signature: signature.to_vec(),
        })
    }
}

impl fmt::Display for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        write!(f, "{SIGNATURE_PREFIX}{} {}", self.name, BASE64.encode(&bytes))
    }
}

/// A note: its text and signature lines. Parsing does not verify; only
/// [`Note::verify`] (or [`open`]) says whether the text may be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note over `text`, which must end in a newline and hold no
    /// control characters other than newlines.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        if text.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge);
        }
        check_controls(text)?;
        if !text.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note without verifying it.
    pub fn parse(input: &[u8]) -> Result<Self, NoteError> {
        if input.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLarge);
        }
        let input = std::str::from_utf8(input).map_err(|_| NoteError::NotUtf8)?;
        check_controls(input)?;
        if !input.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        // The text ends at the last blank line; it may contain blank lines itself.
        let split = input.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let (text, sig_block) = (&input[..=split], &input[split + 2..]);
        if sig_block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let lines: Vec<&str> = sig_block[..sig_block.len() - 1].split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(NoteError::TooLarge);
        }
        let signatures = lines
            .into_iter()
            .map(NoteSignature::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, final newline included. Untrusted until verified.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, known keys or not (witness cosignatures among them).
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds `signer`'s signature (a log signing, or a witness cosigning).
    pub fn sign(&mut self, signer: &NoteSigner) -> Result<(), NoteError> {
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooLarge);
        }
        let signature = signer.signature(&self.text)?;
        self.signatures.push(signature);
        Ok(())
    }

    /// Verifies the note against `verifiers`: signatures of unknown keys are
    /// ignored, any failing signature of a known key rejects the note, and at
    /// least one known key must have signed. Returns the verifiers that signed.
    pub fn verify<'v>(&self, verifiers: &'v [NoteVerifier]) -> Result<Vec<&'v NoteVerifier>, NoteError> {
        for (i, a) in verifiers.iter().enumerate() {
            if verifiers[..i]
                .iter()
                .any(|b| a.name == b.name && a.key_id == b.key_id && a.public_key != b.public_key)
            {
                return Err(NoteError::AmbiguousVerifiers);
            }
        }
        let mut signed_by: Vec<&NoteVerifier> = Vec::new();
        for sig in &self.signatures {
            let Some(verifier) = verifiers
                .iter()
                .find(|v| v.name == sig.name && v.key_id == sig.key_id)
            else {
                continue;
            };
            if !verifier.verifies(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::BadSignature);
            }
            if !signed_by.iter().any(|v| std::ptr::eq(*v, verifier)) {
                signed_by.push(verifier);
            }
        }
        if signed_by.is_empty() {
            return Err(NoteError::UnknownSigner);
        }
        Ok(signed_by)
    }
}

impl fmt::Display for Note {
    /// The note as it is published: text, blank line, one signature per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for sig in &self.signatures {
            writeln!(f, "{sig}")?;
        }
        Ok(())
    }
}

/// Parses and verifies a signed note (see [`Note::verify`]) and returns it.
pub fn open(input: &[u8], verifiers: &[NoteVerifier]) -> Result<Note, NoteError> {
    let note = Note::parse(input)?;
    note.verify(verifiers)?;
    Ok(note)
}

/// A transparency-log checkpoint: the signed statement "the log named `origin`
/// has `size` entries and this root hash".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root_hash: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines (the spec advises against them).
    /// The origin must be one non-empty line without control characters.
    pub fn new(origin: &str, size: u64, root_hash: Hash) -> Result<Self, NoteError> {
        Self::with_extensions(origin, size, root_hash, Vec::new())
    }

    /// A checkpoint with extension lines, each non-empty and free of control
    /// characters.
    pub fn with_extensions(
        origin: &str,
        size: u64,
        root_hash: Hash,
        extensions: Vec<String>,
    ) -> Result<Self, NoteError> {
        for line in std::iter::once(origin).chain(extensions.iter().map(String::as_str)) {
            if line.is_empty() || line.contains('\n') {
                return Err(NoteError::CheckpointLines);
            }
            check_controls(line)?;
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root_hash,
            extensions,
        })
    }

    /// Parses checkpoint text (a verified note's text).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        check_controls(text)?;
        let body = text.strip_suffix('\n').ok_or(NoteError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(NoteError::CheckpointLines);
        };
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if origin.is_empty() || extensions.iter().any(String::is_empty) {
            return Err(NoteError::CheckpointLines);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size: parse_size(size)?,
            root_hash: parse_root(root)?,
            extensions,
        })
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree of [`Checkpoint::size`] entries.
    pub fn root_hash(&self) -> &Hash {
        &self.root_hash
    }

    /// The extension lines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The checkpoint text, ready to sign.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Signs the checkpoint and returns the signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign(&self.to_text())
    }

    /// Verifies a signed checkpoint from the log `origin` against `verifiers`
    /// and parses it.
    pub fn open(input: &[u8], origin: &str, verifiers: &[NoteVerifier]) -> Result<Self, NoteError> {
        let note = open(input, verifiers)?;
        let checkpoint = Self::parse(note.text())?;
        if checkpoint.origin != origin {
            return Err(NoteError::WrongOrigin);
        }
        Ok(checkpoint)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.origin)?;
        writeln!(f, "{}", self.size)?;
        writeln!(f, "{}", BASE64.encode(&self.root_hash))?;
        for line in &self.extensions {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// A tree size: ASCII digits, no sign, no leading zero except for `0` itself.
fn parse_size(text: &str) -> Result<u64, NoteError> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(NoteError::CheckpointSize);
    }
    text.parse().map_err(|_| NoteError::CheckpointSize)
}

/// A root hash: standard padded base64 of exactly 32 bytes. `data-encoding`
/// rejects non-zero trailing bits, so each hash has one spelling.
fn parse_root(text: &str) -> Result<Hash, NoteError> {
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|_| NoteError::CheckpointRootHash)?;
    let hash: [u8; HASH_LEN] = bytes.try_into().map_err(|_| NoteError::CheckpointRootHash)?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::merkle;

    // The example key and note of Go's golang.org/x/mod/sumdb/note tests: a
    // byte-for-byte match means Go tooling (and Tessera, witnesses) reads ours.
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    // A real checkpoint of the Go checksum database, signed by sum.golang.org,
    // with its published verifier key (the GOSUMDB default).
    const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    const SUMDB_NOTE: &str = "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n\n\
                              \u{2014} sum.golang.org Az3grligJmgX7KGyGPKybykNTh3VgsbLvUuvOwrM5zLVlulmFp2wdvbxOw74/gcNxURShXEpb7RXcs3+BYflYN+w0gQ=\n";

    fn go_signer() -> NoteSigner {
        let skey = BASE64.decode(GO_SKEY_B64.as_bytes()).expect("base64");
        assert_eq!(skey[0], SIG_TYPE_ED25519);
        let seed = KeyBytes::from_slice(&skey[1..]).expect("32 bytes");
        NoteSigner::from_seed("PeterNeumann", &seed).expect("signer")
    }

    fn go_note() -> String {
        format!("{GO_TEXT}\n{GO_SIG}")
    }

    #[test]
    fn signing_reproduces_the_go_reference_note() {
        let signer = go_signer();
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.sign(GO_TEXT).expect("sign"), go_note());
        let verifier = NoteVerifier::parse(GO_VKEY).expect("vkey");
        assert_eq!(&verifier, signer.verifier());
        assert_eq!(verifier.to_string(), GO_VKEY);
        let note = open(go_note().as_bytes(), &[verifier]).expect("verifies");
        assert_eq!(note.text(), GO_TEXT);
        assert_eq!(note.to_string(), go_note());
    }

    #[test]
    fn a_real_sumdb_checkpoint_verifies() {
        let verifier: NoteVerifier = SUMDB_VKEY.parse().expect("vkey");
        assert_eq!(verifier.key_id(), 0x033de0ae);
        assert_eq!(verifier.to_vkey(), SUMDB_VKEY);
        let cp = Checkpoint::open(
            SUMDB_NOTE.as_bytes(),
            "go.sum database tree",
            std::slice::from_ref(&verifier),
        )
        .expect("opens");
        assert_eq!(cp.size(), 65_664_258);
        assert_eq!(
            BASE64.encode(cp.root_hash()),
            "WVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg="
        );
        assert!(cp.extensions().is_empty());
        assert_eq!(
            Checkpoint::open(SUMDB_NOTE.as_bytes(), "other", std::slice::from_ref(&verifier)),
            Err(NoteError::WrongOrigin)
        );
        let bent = SUMDB_NOTE.replace("65664258", "65664259");
        assert_eq!(open(bent.as_bytes(), &[verifier]), Err(NoteError::BadSignature));
    }

    #[test]
    fn unknown_keys_are_ignored_and_no_known_key_is_rejected() {
        let go = NoteVerifier::parse(GO_VKEY).expect("vkey");
        let other = NoteSigner::generate("anshin.example/audit").expect("rng");
        // Another key under the same name: different key ID, so it is unknown.
        let impostor = NoteSigner::generate("PeterNeumann").expect("rng");
        let note = go_note();
        assert_eq!(
            open(note.as_bytes(), &[other.verifier().clone()]),
            Err(NoteError::UnknownSigner)
        );
        assert_eq!(
            open(note.as_bytes(), &[impostor.verifier().clone()]),
            Err(NoteError::UnknownSigner)
        );
        assert_eq!(open(note.as_bytes(), &[]), Err(NoteError::UnknownSigner));

        // Cosigned: the unknown signature is ignored, the known one counts.
        let mut cosigned = Note::parse(note.as_bytes()).expect("parse");
        cosigned.sign(&other).expect("cosign");
        let text = cosigned.to_string();
        let verified = open(text.as_bytes(), std::slice::from_ref(&go)).expect("known key signed");
        assert_eq!(verified.signatures().len(), 2);
        let both = Note::parse(text.as_bytes())
            .expect("parse")
            .verify(&[go.clone(), other.verifier().clone()])
            .map(|v| v.len());
        assert_eq!(both, Ok(2));

        // A changed key ID makes the line a stranger's: ignored, not a failure.
        let wrong_id = text.replacen("x08go", "x08gp", 1);
        assert!(open(wrong_id.as_bytes(), &[go.clone(), other.verifier().clone()]).is_ok());
        assert_eq!(
            open(wrong_id.as_bytes(), std::slice::from_ref(&go)),
            Err(NoteError::UnknownSigner)
        );

        // A known key's signature that fails rejects the whole note, even when
        // another known key's signature verifies.
        let mut bad = Note::parse(text.as_bytes()).expect("parse");
        bad.signatures[1].signature[0] ^= 1;
        assert_eq!(
            bad.verify(&[go.clone(), other.verifier().clone()]),
            Err(NoteError::BadSignature)
        );
        // A known signature of the wrong length fails too.
        bad.signatures[1].signature.truncate(10);
        assert_eq!(
            bad.verify(&[go.clone(), other.verifier().clone()]),
            Err(NoteError::BadSignature)
        );
    }

    #[test]
    fn ambiguous_verifiers_are_refused() {
        let go = NoteVerifier::parse(GO_VKEY).expect("vkey");
        let twin = NoteVerifier {
            public_key: [9; 32],
            ..go.clone()
        };
        assert_eq!(
            Note::parse(go_note().as_bytes())
                .expect("parse")
                .verify(&[go.clone(), twin]),
            Err(NoteError::AmbiguousVerifiers)
        );
        assert!(
            Note::parse(go_note().as_bytes())
                .expect("parse")
                .verify(&[go.clone(), go])
                .is_ok()
        );
    }

    #[test]
    fn malformed_notes_get_typed_errors() {
        let go = [NoteVerifier::parse(GO_VKEY).expect("vkey")];
        let note = go_note();
        let cases: Vec<(Vec<u8>, NoteError)> = vec![
            (
                note.trim_end_matches('\n').as_bytes().to_vec(),
                NoteError::MissingFinalNewline,
            ),
            (b"\xff\xfe\n\n".to_vec(), NoteError::NotUtf8),
            (
                note.replace("If", "If\t").into_bytes(),
                NoteError::ControlCharacter,
            ),
            (
                note.replace("\n\n", "\r\n\n").into_bytes(),
                NoteError::ControlCharacter,
            ),
            (GO_TEXT.as_bytes().to_vec(), NoteError::NoSignatures),
            (format!("{GO_TEXT}\n").into_bytes(), NoteError::NoSignatures),
            (format!("{note}\n").into_bytes(), NoteError::NoSignatures),
            (
                note.replace('\u{2014}', "-").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            (
                note.replace("\u{2014} ", "\u{2014}").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            (
                note.replace("Neumann x08", "Neumann  x08").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            (
                note.replace("AM=", "AM").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            (
                note.replace("AM=", "AN=").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            (
                format!("{GO_TEXT}\n\u{2014} PeterNeumann AAAA\n").into_bytes(),
                NoteError::MalformedSignatureLine,
            ),
            // A blank line among signatures moves the text boundary: the text changed.
            (
                format!("{note}{GO_SIG}\n{GO_SIG}").into_bytes(),
                NoteError::BadSignature,
            ),
            (vec![b'\n'; MAX_NOTE_LEN + 1], NoteError::TooLarge),
            (
                format!("{GO_TEXT}\n{}", GO_SIG.repeat(MAX_SIGNATURES + 1)).into_bytes(),
                NoteError::TooLarge,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                open(&input, &go),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
        // Sixteen signatures (the spec's minimum) are accepted.
        let sixteen = format!("{GO_TEXT}\n{}", GO_SIG.repeat(16));
        assert!(open(sixteen.as_bytes(), &go).is_ok());
        // The text may contain blank lines; the last one separates the signatures.
        let signer = go_signer();
        let text = "a\n\nb\n\n";
        let signed = signer.sign(text).expect("sign");
        assert_eq!(
            open(signed.as_bytes(), &go).map(|n| n.text().to_owned()),
            Ok(text.to_owned())
        );
        // Signing refuses text the format cannot carry.
        assert_eq!(signer.sign("no newline"), Err(NoteError::MissingFinalNewline));
        assert_eq!(signer.sign(""), Err(NoteError::MissingFinalNewline));
        assert_eq!(signer.sign("bell\u{7}\n"), Err(NoteError::ControlCharacter));
    }

    #[test]
    fn verifier_keys_reject_every_mangling() {
        assert!(NoteVerifier::parse(GO_VKEY).is_ok());
        let b = GO_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let part = std::str::from_utf8(&b[i..j]).expect("ascii");
                    assert!(NoteVerifier::parse(part).is_err(), "{part}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(NoteVerifier::parse(s).is_err(), "{s}");
            }
        }
        assert_eq!(
            NoteVerifier::parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::MalformedVerifierKey)
        );
        assert_eq!(
            NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::KeyIdMismatch)
        );
        assert_eq!(
            NoteVerifier::parse("PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::UnsupportedAlgorithm)
        );
        assert_eq!(
            NoteVerifier::parse("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::InvalidKeyName)
        );
        assert_eq!(
            NoteVerifier::parse("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
            Err(NoteError::InvalidKeyName)
        );
        assert!(
            NoteVerifier::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
                .is_err()
        );
        let long_key = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==";
        let long_id = key_id(
            "PeterNeumann",
            SIG_TYPE_ED25519,
            &BASE64.decode(long_key.as_bytes()).expect("b64")[1..],
        );
        assert_eq!(
            NoteVerifier::parse(&format!("PeterNeumann+{long_id:08x}+{long_key}")),
            Err(NoteError::InvalidKey)
        );
        assert_eq!(NoteVerifier::new("a+b", &[0; 32]), Err(NoteError::InvalidKeyName));
        assert_eq!(
            NoteVerifier::new("a\u{3000}b", &[0; 32]),
            Err(NoteError::InvalidKeyName)
        );
        assert_eq!(NoteVerifier::new("ab", &[0; 31]), Err(NoteError::InvalidKey));
    }

    #[test]
    fn signer_debug_is_redacted_and_seed_round_trips() {
        let signer = go_signer();
        let printed = format!("{signer:?}");
        assert!(printed.contains("PeterNeumann") && printed.contains("redacted"));
        let seed_hex = HEXLOWER.encode(signer.expose_seed().expose());
        assert!(!printed.to_lowercase().contains(&seed_hex[..8]));
        let again = NoteSigner::from_seed("PeterNeumann", signer.expose_seed()).expect("signer");
        assert_eq!(again.verifier(), signer.verifier());
        let fresh = NoteSigner::generate("anshin.example/audit").expect("rng");
        assert_ne!(fresh.verifier().public_key(), signer.verifier().public_key());
        assert_eq!(
            NoteSigner::generate("bad name").err(),
            Some(NoteError::InvalidKeyName)
        );
    }

    #[test]
    fn checkpoints_round_trip_and_reject_malformed_text() {
        let example = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let cp = Checkpoint::parse(example).expect("spec example parses");
        assert_eq!(
            (cp.origin(), cp.size()),
            ("example.com/behind-the-sofa", 20_852_163)
        );
        assert_eq!(cp.to_text(), example);
        let ext = Checkpoint::parse(&format!("{example}ext one\n")).expect("extension");
        assert_eq!(ext.extensions(), &["ext one".to_owned()]);
        assert_eq!(ext.to_text(), format!("{example}ext one\n"));

        let empty = Checkpoint::new("anshin.example/audit", 0, merkle::EMPTY_ROOT).expect("checkpoint");
        assert_eq!(
            empty.to_text(),
            "anshin.example/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        for (bad, err) in [
            (format!("o\n1\n{root}"), NoteError::MissingFinalNewline),
            ("o\n1\n".to_owned(), NoteError::CheckpointLines),
            (format!("\n1\n{root}\n"), NoteError::CheckpointLines),
            (format!("o\n1\n{root}\n\n"), NoteError::CheckpointLines),
            (format!("o\n1\n{root}\n\next\n"), NoteError::CheckpointLines),
            (format!("o\n01\n{root}\n"), NoteError::CheckpointSize),
            (format!("o\n+1\n{root}\n"), NoteError::CheckpointSize),
            (format!("o\n-1\n{root}\n"), NoteError::CheckpointSize),
            (format!("o\n\n{root}\n"), NoteError::CheckpointSize),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                NoteError::CheckpointSize,
            ),
            ("o\n1\nAAAA\n".to_owned(), NoteError::CheckpointRootHash),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
                NoteError::CheckpointRootHash,
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
                NoteError::CheckpointRootHash,
            ),
            (format!("o\n1\n{root}\x00\n"), NoteError::ControlCharacter),
        ] {
            assert_eq!(Checkpoint::parse(&bad), Err(err), "{bad:?}");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n")).map(|c| c.size()),
            Ok(u64::MAX)
        );
        assert_eq!(Checkpoint::new("", 1, [0; 32]), Err(NoteError::CheckpointLines));
        assert_eq!(
            Checkpoint::new("a\nb", 1, [0; 32]),
            Err(NoteError::CheckpointLines)
        );
        assert_eq!(
            Checkpoint::with_extensions("a", 1, [0; 32], vec![String::new()]),
            Err(NoteError::CheckpointLines)
        );
    }

    #[test]
    fn signed_checkpoints_of_a_merkle_root_open() {
        let signer = NoteSigner::generate("anshin.example/audit").expect("rng");
        let leaves: Vec<Hash> = (0u8..10).map(|i| merkle::leaf_hash(&[i])).collect();
        let cp = Checkpoint::new("anshin.example/audit", 10, merkle::root(&leaves)).expect("checkpoint");
        let signed = cp.sign(&signer).expect("sign");
        let opened = Checkpoint::open(
            signed.as_bytes(),
            "anshin.example/audit",
            &[signer.verifier().clone()],
        );
        assert_eq!(opened, Ok(cp));
        let go = NoteVerifier::parse(GO_VKEY).expect("vkey");
        assert_eq!(
            Checkpoint::open(signed.as_bytes(), "anshin.example/audit", &[go]),
            Err(NoteError::UnknownSigner)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), text in "\\PC{0,80}") {
            let go = [NoteVerifier::parse(GO_VKEY).expect("vkey")];
            prop_assert!(open(&bytes, &go).is_err());
            let _ = Note::parse(&bytes);
            let _ = NoteVerifier::parse(&text);
            let _ = NoteVerifier::parse(&String::from_utf8_lossy(&bytes));
            let _ = Checkpoint::parse(&text);
            let _ = Checkpoint::parse(&String::from_utf8_lossy(&bytes));
            let note_like = format!("{text}\n\n\u{2014} {text}\n");
            let _ = open(note_like.as_bytes(), &go);
        }

        #[test]
        fn any_changed_byte_is_rejected(pos in any::<usize>(), xor in 1u8..=255) {
            let go = [NoteVerifier::parse(GO_VKEY).expect("vkey")];
            let mut bytes = go_note().into_bytes();
            let pos = pos % bytes.len();
            bytes[pos] ^= xor;
            prop_assert!(open(&bytes, &go).is_err());
        }

        #[test]
        fn signed_text_round_trips(lines in proptest::collection::vec("[^\\p{Cc}]{0,40}", 1..6)) {
            let signer = go_signer();
            let text = lines.join("\n") + "\n";
            let signed = signer.sign(&text).expect("sign");
            let note = open(signed.as_bytes(), &[signer.verifier().clone()]).expect("verifies");
            prop_assert_eq!(note.text(), text.as_str());
        }

        #[test]
        fn checkpoints_round_trip(origin in "[^\\p{Cc}]{1,40}", size in any::<u64>(), root in any::<[u8; 32]>()) {
            let cp = Checkpoint::new(&origin, size, root).expect("checkpoint");
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()), Ok(cp));
        }
    }
}
