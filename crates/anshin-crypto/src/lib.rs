//! anshin's security kernel: the code an outside reviewer audits first.
//!
//! It holds every use of a cryptographic primitive in anshin and nothing else:
//! no I/O, no async, no database. Primitives come from `aws-lc-rs`; nothing here
//! implements a cipher or a hash itself.
//!
//! - [`envelope`]: AES-256-GCM sealing with associated data that binds a
//!   ciphertext to its place, and key wrapping for envelope encryption
//!   (record data key → tenant key-encryption key → root key).
//! - [`pan`]: card numbers parsed at the edge (Luhn, length, brand), masked views.
//! - [`fingerprint`]: keyed HMAC-SHA-256 fingerprints (PCI DSS 3.5.1.1).
//! - [`token`]: random, typed tokens and API keys, stored only as hashes.
//! - [`merkle`]: the RFC 9162 Merkle tree of the audit log, its proofs and the tlog-tiles layout.
//! - [`note`]: C2SP signed notes and checkpoints, signed with Ed25519.
//! - [`tlog`]: offline verification of an exported log against a signed checkpoint.
//! - [`webhook`]: HMAC-SHA-256 signatures of outgoing alert webhooks (`Anshin-Signature`).
//! - [`secret`]: containers for key material and personal data that are zeroized
//!   on drop and never print their contents.
//!
//! Threat notes: a value is reachable only through an explicit `expose*` call;
//! `Debug` of every secret type prints a redaction marker; errors never carry key
//! bytes, card numbers or personal data.

pub mod envelope;
pub mod error;
pub mod fingerprint;
pub mod merkle;
pub mod note;
pub mod pan;
pub mod secret;
pub mod tlog;
pub mod token;
pub mod webhook;

pub use error::CryptoError;
