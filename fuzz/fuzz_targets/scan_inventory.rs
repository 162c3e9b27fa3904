//! The earlier `anshin-inventory/1` file that `anshin scan --inventory FILE`
//! reads before writing the new one (whoever can write the file chose its
//! bytes), then the change computation against it and its human description.
//! Never panics; a rejected file's error never quotes it; an accepted one
//! comes back the same through the writer; compared with itself nothing
//! changed; compared with a scan's inventory, either way round, every
//! location is accounted for exactly once and a `changed` entry differs.
#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::inventory::{Changes, Inventory, InventoryBuilder, Parameters, describe_changes};
use anshin_scan::{Discovery, Limits, ObjectReport, Scanner, TableColumn};
use libfuzzer_sys::fuzz_target;

/// The inventory of a run now, made as anshin makes it: a table with two
/// columns, a text file and a table that could not be read (so absence
/// beneath it is unverified, not gone). The seeds in
/// fuzz/corpus/scan_inventory hold the same names.
static NOW: LazyLock<Inventory> = LazyLock::new(|| {
    let key = KeyBytes::from_slice(&[4u8; 32]).expect("32 bytes");
    let discovery = Discovery::new(Scanner::new(FingerprintKey::new(&key)), Limits::default());
    let mut builder = InventoryBuilder::default();
    let mut table = discovery.table(
        "db!customers",
        &[TableColumn::new("email"), TableColumn::new("電話")],
    );
    table.row(&[Some("a@example.com"), Some("090-1234-5678")]);
    table.row(&[Some("b@example.com"), None]);
    builder.add(&table.finish());
    let text = "連絡先 c@example.com と d@example.com と e@example.com\n";
    discovery.scan_reader("notes.txt", &mut text.as_bytes(), &mut |r| builder.add(&r));
    builder.add(&ObjectReport::skipped_table(
        "db!orders".into(),
        "no SELECT privilege",
    ));
    builder.finish("2026-12-06T00:00:00Z".into(), Parameters::default(), None)
});

type Key = (String, Option<String>);

fn keys<'a>(places: impl IntoIterator<Item = (&'a String, &'a Option<String>)>) -> Vec<Key> {
    places.into_iter().map(|(p, c)| (p.clone(), c.clone())).collect()
}

/// Each key once: a list holding one twice fails.
fn set(list: Vec<Key>) -> BTreeSet<Key> {
    let n = list.len();
    let set: BTreeSet<Key> = list.into_iter().collect();
    assert_eq!(set.len(), n, "a location listed twice");
    set
}

/// `changes` is `now.diff(before)`: every location of `now` is new, changed
/// or the same; every one of `before` missing now is gone or unverified.
fn accounted(now: &Inventory, before: &Inventory, changes: &Changes) {
    let now_keys: BTreeSet<Key> = keys(now.locations.iter().map(|l| (&l.path, &l.column)))
        .into_iter()
        .collect();
    let before_keys: BTreeSet<Key> = keys(before.locations.iter().map(|l| (&l.path, &l.column)))
        .into_iter()
        .collect();
    let new = set(keys(changes.new.iter().map(|l| (&l.path, &l.column))));
    assert_eq!(new, &now_keys - &before_keys);
    let changed = set(keys(changes.changed.iter().map(|c| (&c.path, &c.column))));
    assert!(changed.is_subset(&(&now_keys & &before_keys)));
    let mut missing = keys(changes.gone.iter().map(|p| (&p.path, &p.column)));
    missing.extend(keys(changes.unverified.iter().map(|p| (&p.path, &p.column))));
    assert_eq!(set(missing), &before_keys - &now_keys);
    for c in &changes.changed {
        assert!(
            c.before.keys().eq(c.after.keys()),
            "before and after name the same categories"
        );
        assert_ne!(c.before, c.after, "a changed location whose counts are the same");
    }
    assert_eq!(changes.same_parameters, now.parameters == before.parameters);
    assert!(describe_changes(changes).starts_with("Inventory changes since "));
}

// Built before the first input, so no input is timed with it.
fuzz_target!(init: LazyLock::force(&NOW), |input: &[u8]| {
    let previous = match Inventory::parse(input) {
        Ok(inventory) => inventory,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("not an anshin inventory (JSON error at line ") || message == "not an anshin-inventory/1 file");
            return;
        }
    };
    assert_eq!(Inventory::parse(&previous.to_json()).expect("its own output parses"), previous);
    let itself = previous.diff(&previous);
    assert!(itself.is_empty() && itself.same_parameters, "compared with itself: {itself:?}");
    // As `anshin scan` does: the run now against the earlier file.
    accounted(&NOW, &previous, &NOW.diff(&previous));
    // The other way round, so the file's own `incomplete` list decides what is unverified.
    accounted(&previous, &NOW, &previous.diff(&NOW));
});
