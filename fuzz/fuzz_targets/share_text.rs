//! Custodian shares typed or pasted into `anshin unseal` (or POSTed to
//! /v1/sys/unseal by anyone who reaches a sealed server): parsing any text
//! must end in a share or a typed error, never a panic, and a parsed share
//! prints back to text that parses to the same header.
#![no_main]

use anshin::vault::shares::Share;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for candidate in [text.to_owned(), format!("anshin-share:{text}")] {
        if let Ok(share) = Share::parse(&candidate) {
            let again = Share::parse(share.to_text().expose()).expect("a printed share parses");
            assert_eq!(
                (again.vault(), again.index(), again.threshold(), again.needs_passphrase()),
                (share.vault(), share.index(), share.threshold(), share.needs_passphrase())
            );
        }
    }
});
