//! The detectors over hostile bytes, as text and as CSV, in every encoding
//! the input may claim: never panic, and every locator lies inside the input.
#![no_main]

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use std::sync::LazyLock;

use anshin_detect::{Confidence, ScanOptions, Scanner, TextEncoding};
use libfuzzer_sys::fuzz_target;

/// Built once, as anshin does (its keyword automata cost far more than a scan).
static SCANNER: LazyLock<Scanner> = LazyLock::new(|| {
    let key = KeyBytes::from_slice(&[1u8; 32]).expect("32 bytes");
    Scanner::with_options(
        FingerprintKey::new(&key),
        ScanOptions::default().min_confidence(Confidence::Low),
    )
});

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&SCANNER), |input: &[u8]| {
    let scanner = &*SCANNER;
    let mut outputs = vec![scanner.scan(input), scanner.scan_csv(input, None)];
    for encoding in [TextEncoding::ShiftJis, TextEncoding::Utf16Le, TextEncoding::Iso2022Jp] {
        outputs.push(scanner.scan_as(input, encoding, 0));
        // Two chunks with the layout carried over, as anshin-scan reads big CSV files.
        let mid = input.len() / 2;
        let (_, layout) = scanner.scan_csv_chunk(&input[..mid], encoding, 0, None, None);
        outputs.push(scanner.scan_csv_chunk(&input[mid..], encoding, 0, None, Some(layout)).0);
    }
    for out in outputs {
        for f in &out.findings {
            assert!(f.locator.byte_offset + f.locator.byte_len <= input.len());
            assert!(f.locator.line >= 1 && f.locator.column >= 1);
            assert!(!f.masked.is_empty());
        }
    }
});
