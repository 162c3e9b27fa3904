//! (1) The vault: cards and personal data, encrypted at rest, reached through
//! tokens and masked views.
//!
//! - [`root`]: the root of trust, which wraps every tenant key.
//! - [`keys`]: the key hierarchy below it (tenant keys, record data keys).
//! - [`rotation`]: KEK rotation, rewrap, retirement, under dual control.
//! - [`root_change`]: replacing the root of trust, under dual control.
//! - [`cards`]: tokenize, masked read, reveal, look up by number, crypto-shred.
//! - [`customers`]: shoppers' personal data, sealed field by field.
//! - [`pii`]: personal data parsed and normalised at the edge; masking.

pub mod cards;
pub mod customers;
pub mod keys;
pub mod pii;
pub mod pkcs11;
pub mod root;
pub mod root_change;
pub mod rotation;
pub mod shares;

use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Deserializer};

/// Deserializes a JSON string straight into a [`SecretString`], so the value is
/// wiped when the request is dropped.
pub(crate) fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::new)
}

/// Like [`secret`], for optional fields.
pub(crate) fn secret_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(deserializer).map(|v| v.map(SecretString::new))
}
