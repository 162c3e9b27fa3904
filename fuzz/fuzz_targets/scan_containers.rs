//! Archives and text objects as `anshin scan` reads them (zip, tar, gzip,
//! bzip2, xz, zstd and lz4 streams (sniffed by their magic bytes), nested, Word and Excel parts inside zips, PDF pages (sniffed by `%PDF-`
//! whatever the name; the seed in the corpus is a small hand-written PDF),
//! e-mail and mailboxes, CSV,
//! every encoding), from hostile bytes under any name: never panic, never
//! hang, always report the object. Small limits so the fuzzer reaches the
//! limit paths (depth, ratio, budget, members, long lines).
#![no_main]

use std::sync::LazyLock;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::{Discovery, Limits, Scanner};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 9] = [
    "a.zip", "b.tar", "c.gz", "d.csv", "e.tsv", "f.txt", "g.eml", "h.mbox", "i.pdf",
];

/// Built once, as anshin does (the detectors' keyword automata cost far more
/// than a scan); limits apply to each input on its own.
static DISCOVERY: LazyLock<Discovery> = LazyLock::new(|| {
    let key = KeyBytes::from_slice(&[2u8; 32]).expect("32 bytes");
    let limits = Limits::default()
        .max_depth(3)
        .max_ratio(20)
        .max_expanded(4 << 20)
        .max_members(64)
        .max_in_memory(1 << 20)
        .chunk(4096);
    Discovery::new(Scanner::new(FingerprintKey::new(&key)), limits)
});

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&DISCOVERY), |input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let discovery = &*DISCOVERY;
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let mut reports = 0;
    discovery.scan_reader(name, &mut &bytes[..], &mut |r| {
        reports += 1;
        assert!(r.reason.is_some() || r.status == anshin_scan::Status::Complete);
    });
    assert!(reports >= 1);
});
