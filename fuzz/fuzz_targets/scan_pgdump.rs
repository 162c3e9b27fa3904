//! `pg_dump -Fc` custom-format archives as `anshin scan` reads them (header,
//! table of contents, zlib-compressed or stored data blocks, large objects
//! read as objects of their own), from hostile bytes: never panic, never
//! hang, always report the archive with a reason when it is not complete.
//! The same bytes are also read as a `pg_dump -Ft` archive: a tar whose
//! `toc.dat` is the input up to a cut the first two bytes give, followed by
//! the rest as a table's data file (`<id>.dat`, `.dat.gz` when the third
//! byte is odd; the id in bytes four and five), so the tar- and
//! directory-format table of contents and the data files it names are
//! reached too. Small limits so the fuzzer reaches the member, ratio and
//! budget stops. The seeds in the corpus are archives of a small table made
//! by pg_dump 15 (`-Fc`, `-Fc -Z0`, and `-Ft` as the target cuts it).
#![no_main]

use std::sync::LazyLock;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_scan::test_support::tar_of;
use anshin_scan::{Discovery, Limits, Scanner, Status};
use libfuzzer_sys::fuzz_target;

/// Built once, as anshin does (the detectors' keyword automata cost far more
/// than a scan: built for every input, they held the target to about 12 exec/s).
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
fuzz_target!(init: LazyLock::force(&DISCOVERY), |bytes: &[u8]| {
    let mut archive = 0;
    DISCOVERY.scan_reader("dump.pgc", &mut &bytes[..], &mut |r| {
        archive += usize::from(r.path == "dump.pgc");
        assert!(r.reason.is_some() || r.status == Status::Complete);
    });
    assert_eq!(archive, 1);

    let [cut_hi, cut_lo, gzip, id_hi, id_lo, rest @ ..] = bytes else {
        return;
    };
    let (toc, data) = rest.split_at(usize::from(u16::from_be_bytes([*cut_hi, *cut_lo])).min(rest.len()));
    let id = u16::from_be_bytes([*id_hi, *id_lo]);
    let name = if gzip % 2 == 1 { format!("{id}.dat.gz") } else { format!("{id}.dat") };
    let tar = tar_of(&[("toc.dat", toc), (&name, data)]);
    let mut tars = 0;
    DISCOVERY.scan_reader("dump.tar", &mut &tar[..], &mut |r| {
        tars += usize::from(r.path == "dump.tar");
        assert!(r.reason.is_some() || r.status == Status::Complete);
    });
    assert_eq!(tars, 1);
});
