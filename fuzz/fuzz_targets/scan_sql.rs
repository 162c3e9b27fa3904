//! SQL dumps as `anshin scan` reads them (pg_dump INSERT and COPY blocks,
//! mysqldump extended INSERTs, CREATE TABLE column lists, both quoting
//! dialects), from hostile bytes: never panic, never hang, always one report.
//! A small chunk so that tables are flushed across chunk boundaries.
#![no_main]

use std::sync::LazyLock;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::{Discovery, Limits, Scanner};
use libfuzzer_sys::fuzz_target;

/// Built once, as anshin does (the detectors' keyword automata cost far more than a scan).
static DISCOVERY: LazyLock<Discovery> = LazyLock::new(|| {
    let key = KeyBytes::from_slice(&[2u8; 32]).expect("32 bytes");
    Discovery::new(Scanner::new(FingerprintKey::new(&key)), Limits::default().chunk(4096))
});

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&DISCOVERY), |bytes: &[u8]| {
    let discovery = &*DISCOVERY;
    let mut reports = 0;
    discovery.scan_reader("dump.sql", &mut &bytes[..], &mut |r| {
        reports += 1;
        assert!(r.reason.is_some() || r.status == anshin_scan::Status::Complete);
    });
    assert_eq!(reports, 1);
});
