//! The baseline parser over hostile bytes: never panics; whatever it accepts
//! was signed by the trusted key, and re-encoding what it accepted gives a
//! file it accepts again with the same payload.
#![no_main]

use anshin_integrity::baseline::Payload;
use anshin_integrity::key::BaselineKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let key = BaselineKey::from_seed([5; 32]);
    if let Ok(payload) = Payload::decode(input, &key.verifying_key()) {
        let again = Payload::decode(&payload.encode(&key), &key.verifying_key()).expect("re-encoded baseline verifies");
        assert_eq!(again, payload);
    }
    // A well-signed envelope around fuzzed payload text exercises the JSON side.
    let mut signed = b"anshin-integrity-baseline/1\n".to_vec();
    signed.extend(input.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    signed.push(b'\n');
    let signature = key.sign(&signed);
    signed.extend_from_slice(b"ed25519 ");
    signed.extend_from_slice(anshin_integrity::key::public_hex(&key.verifying_key()).as_bytes());
    signed.push(b' ');
    for b in signature {
        signed.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    signed.push(b'\n');
    let _ = Payload::decode(&signed, &key.verifying_key());
});
