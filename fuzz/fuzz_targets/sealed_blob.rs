//! Stored ciphertext read back from a database an attacker may have edited:
//! opening arbitrary bytes must fail cleanly; a sealed blob with any change fails.
#![no_main]

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::KeyBytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(material) = KeyBytes::from_slice(&[7; 32]) else { return };
    let Ok(key) = AeadKey::new(&material) else { return };
    let context = Context::new("anshin.field.v1").part(b"ten_x").part(b"card").part(b"card_x").part(b"number");
    // Arbitrary bytes are never accepted (forging a tag is the only way).
    assert!(key.open(&context, data).is_err());
    assert!(key.unwrap_key(&context, data).is_err());
    // A genuine blob with the input XORed over it opens only if nothing changed.
    let Ok(mut sealed) = key.seal(&context, b"4111111111111111") else { return };
    let mut changed = false;
    for (byte, flip) in sealed.iter_mut().zip(data) {
        changed |= *flip != 0;
        *byte ^= flip;
    }
    assert_eq!(key.open(&context, &sealed).is_ok(), !changed);
});
