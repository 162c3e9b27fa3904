//! Database rows as `anshin scan-db` feeds them to the detectors: column
//! names and cells come from a database anyone may have written to. The
//! input's first line is the column names (tab-separated; the first column is
//! the primary key), each further line a row (`\N` is NULL). Never panics,
//! every finding lies inside its cell, and a key that is a card number alone
//! is never printed whole.
#![no_main]

use std::sync::LazyLock;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::pan::Pan;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::{Discovery, Limits, Scanner, TableColumn};
use libfuzzer_sys::fuzz_target;

/// Built once, as anshin does (the detectors' keyword automata cost far more than a scan).
static DISCOVERY: LazyLock<Discovery> = LazyLock::new(|| {
    let key = KeyBytes::from_slice(&[3u8; 32]).expect("32 bytes");
    Discovery::new(Scanner::new(FingerprintKey::new(&key)), Limits::default())
});

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&DISCOVERY), |input: &str| {
    let mut lines = input.split('\n');
    let columns: Vec<TableColumn> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .enumerate()
        .map(|(i, name)| TableColumn::new(name).key(i == 0))
        .collect();
    let mut table = DISCOVERY.table("postgres://db/shop!public.t", &columns);
    let mut rows = Vec::new();
    for line in lines {
        let cells: Vec<Option<&str>> = line.split('\t').map(|c| (c != "\\N").then_some(c)).collect();
        table.row(&cells);
        rows.push(cells);
    }
    let report = table.finish();
    for f in &report.findings {
        let record = f.locator.record.as_ref().expect("a table finding has a record");
        let cell = rows[record.row - 1][record.field - 1].expect("a finding is in a cell");
        assert!(f.locator.byte_offset + f.locator.byte_len <= cell.len());
        let first = rows[record.row - 1][0];
        if let (Some(key), Some(first)) = (&record.key, first)
            && Pan::parse(first).is_ok_and(|pan| pan.expose() == first)
        {
            assert!(!key.contains(first), "a card number printed whole as a key");
        }
    }
});
