//! Exported audit logs as an auditor receives them: any bytes in any file of an
//! export and any checkpoint text must give a report, never a panic, and a
//! genuine export verifies exactly as long as every file is intact.
#![no_main]

use std::collections::HashMap;
use std::convert::Infallible;

use anshin_crypto::merkle::{
    self, Hash, Tile, TileKind, decode_entry_bundle, encode_entry_bundle, leaf_hash,
};
use anshin_crypto::note::Checkpoint;
use anshin_crypto::tlog::{MAX_PROBLEMS, Report, verify_export};
use libfuzzer_sys::fuzz_target;

type Files = HashMap<String, Vec<u8>>;

/// A genuine export of `size` small entries and the checkpoint of its root.
fn export(size: u64) -> Option<(Files, Checkpoint)> {
    let entries: Vec<Vec<u8>> = (0..size).map(|i| format!("entry {i}").into_bytes()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut files = Files::new();
    for tile in Tile::all_for_size(size) {
        files.insert(
            tile.path(),
            Tile::encode_data(&tile.hashes_from_leaves(&leaves).ok()?),
        );
        if let Some(path) = tile.entries_path() {
            let range = tile.leaf_range();
            let start = usize::try_from(range.start).ok()?;
            let end = usize::try_from(range.end).ok()?;
            files.insert(path, encode_entry_bundle(entries.get(start..end)?).ok()?);
        }
    }
    let checkpoint = Checkpoint::new("anshin.example/audit", size, merkle::root(&leaves)).ok()?;
    Some((files, checkpoint))
}

fn verify(files: &Files, checkpoint: &Checkpoint, old: Option<&Checkpoint>) -> Report {
    match verify_export(checkpoint, old, |path| {
        Ok::<_, Infallible>(files.get(path).cloned())
    }) {
        Ok(report) => report,
        Err(never) => match never {},
    }
}

fuzz_target!(|input: (u16, u8, &[u8], &str)| {
    let (size, pick, bytes, text) = input;

    // The parsers on their own.
    let _ = decode_entry_bundle(bytes, None);
    if let Ok((kind, tile)) = Tile::parse_path(text) {
        let _ = tile.parse_data(bytes);
        if kind == TileKind::Entries {
            let _ = decode_entry_bundle(bytes, Some(tile.width()));
        }
    }
    let claimed = Checkpoint::parse(text);

    // One file of a small genuine export replaced by the input bytes.
    let Some((mut files, checkpoint)) = export(u64::from(size % 700)) else {
        return;
    };
    let mut paths: Vec<String> = files.keys().cloned().collect();
    paths.sort();
    let changed = match paths.get(usize::from(pick) % paths.len().max(1)) {
        Some(path) => files.insert(path.clone(), bytes.to_vec()).as_deref() != Some(bytes),
        None => false,
    };
    let report = verify(&files, &checkpoint, None);
    assert_eq!(report.is_ok(), !changed, "{report:?}");
    assert!(report.problems.len() <= MAX_PROBLEMS);
    if let Some(index) = report.first_bad_entry {
        assert!(index < checkpoint.size());
    }

    // Any checkpoint the text parses to (any size up to 2^64 - 1, any root),
    // as the one to verify and as the earlier one.
    if let Ok(claimed) = claimed {
        let report = verify(&files, &claimed, Some(&checkpoint));
        assert!(report.entries_read <= claimed.size());
        let _ = verify(&files, &checkpoint, Some(&claimed));
    }
});
