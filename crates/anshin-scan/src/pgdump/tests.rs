//! Archives written here as pg_dump writes them (every version read, both
//! compressions, chunks cut anywhere), then read back; and hostile ones.
//! Real archives made by `pg_dump -Fc` are read in the CLI's tests.

use std::io::{Cursor, Write as _};

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use proptest::prelude::*;

use super::*;
use crate::test_support::{luhn_complete, zip_of};
use crate::tests::{SqlCard, sql_cards, sql_places};
use crate::{Category, Discovery, Limits, Scanner};

/// One entry with data.
#[derive(Clone)]
struct Table {
    id: i64,
    namespace: &'static str,
    tag: &'static str,
    /// Empty for INSERT statements; `None` for large objects.
    statement: Option<String>,
    /// The data, or the large objects (OID, bytes).
    data: Vec<u8>,
    objects: Vec<(i64, Vec<u8>)>,
}

impl Table {
    fn copy(id: i64, tag: &'static str, columns: &str, data: &str) -> Self {
        Self {
            id,
            namespace: "public",
            tag,
            statement: Some(format!("COPY public.{tag} ({columns}) FROM stdin;\n")),
            data: data.as_bytes().to_vec(),
            objects: Vec::new(),
        }
    }
}

/// Writes archives the way pg_dump does.
struct Writer {
    out: Vec<u8>,
    minor: u8,
    zlib: bool,
    /// Largest chunk of a data block.
    chunk: usize,
    /// The database's encoding: its PostgreSQL name, and the strings' bytes.
    encoding: (String, &'static encoding_rs::Encoding),
    /// The format byte: custom, or the `toc.dat` of a tar or directory.
    format: u8,
}

impl Writer {
    fn new(minor: u8, zlib: bool, chunk: usize) -> Self {
        Self {
            out: Vec::new(),
            minor,
            zlib,
            chunk: chunk.max(1),
            encoding: ("UTF8".to_owned(), encoding_rs::UTF_8),
            format: FORMAT_CUSTOM,
        }
    }

    /// Writes a `toc.dat` with this format byte instead (its entries name
    /// their data files, `<id>.dat`; no data follows).
    fn toc_dat(mut self, format: u8) -> Self {
        self.format = format;
        self
    }

    fn encoding(mut self, name: &str, encoding: &'static encoding_rs::Encoding) -> Self {
        self.encoding = (name.to_owned(), encoding);
        self
    }

    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn int(&mut self, v: i64) {
        self.byte(u8::from(v < 0));
        self.out
            .extend_from_slice(&u32::try_from(v.unsigned_abs()).expect("small").to_le_bytes());
    }

    fn string(&mut self, s: Option<&str>) {
        match s {
            None => self.int(-1),
            Some(s) => {
                let (bytes, _, errors) = self.encoding.1.encode(s);
                assert!(!errors, "test string not encodable");
                self.int(i64::try_from(bytes.len()).expect("short"));
                self.out.extend_from_slice(&bytes);
            }
        }
    }

    fn header(&mut self) {
        self.out.extend_from_slice(b"PGDMP");
        self.out.extend_from_slice(&[1, self.minor, 0, 4, 8, self.format]);
        if self.minor >= 15 {
            self.byte(u8::from(self.zlib));
        } else {
            self.int(if self.zlib { -1 } else { 0 });
        }
        for v in [5, 4, 3, 2, 11, 126, 0] {
            self.int(v);
        }
        self.string(Some("shop"));
        if self.minor >= 10 {
            self.string(Some("15.20"));
            self.string(Some("15.20"));
        }
    }

    fn entry(
        &mut self,
        id: i64,
        tag: &str,
        desc: &str,
        namespace: &str,
        statement: Option<&str>,
        data: bool,
    ) {
        self.int(id);
        self.int(i64::from(data));
        if self.minor >= 8 {
            self.string(Some("1259"));
        }
        self.string(Some("16400"));
        self.string(Some(tag));
        self.string(Some(desc));
        if self.minor >= 11 {
            self.int(if data { 3 } else { 2 });
        }
        let definition = if data {
            String::new()
        } else {
            format!("SET client_encoding = '{}';\n", self.encoding.0)
        };
        self.string(Some(&definition));
        self.string(Some(""));
        self.string(Some(statement.unwrap_or("")));
        self.string(Some(namespace));
        if self.minor >= 10 {
            self.string(Some(""));
        }
        if self.minor >= 14 {
            self.string(None);
        }
        if self.minor >= 16 {
            self.int(i64::from(b'r'));
        }
        self.string(Some("postgres"));
        if self.minor >= 9 {
            self.string(Some("false"));
        }
        self.string(Some("215"));
        self.string(None);
        if self.format == FORMAT_CUSTOM {
            self.byte(if data { 2 } else { 3 });
            self.out.extend_from_slice(&[0; 8]);
        } else if data {
            self.string(Some(&format!("{id}.dat")));
        } else {
            self.string(Some(""));
        }
    }

    /// One block's data as chunks, compressed as the archive says.
    fn chunks(&mut self, data: &[u8]) {
        let bytes = if self.zlib {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(data).expect("zlib");
            z.finish().expect("zlib")
        } else {
            data.to_vec()
        };
        for chunk in bytes.chunks(self.chunk) {
            self.int(i64::try_from(chunk.len()).expect("short"));
            self.out.extend_from_slice(chunk);
        }
        self.int(0);
    }

    fn archive(mut self, tables: &[Table]) -> Vec<u8> {
        self.header();
        self.int(i64::try_from(tables.len()).expect("few") + 1);
        self.entry(1, "ENCODING", "ENCODING", "", None, false);
        for t in tables {
            let desc = if t.statement.is_some() {
                "TABLE DATA"
            } else {
                "BLOBS"
            };
            self.entry(t.id, t.tag, desc, t.namespace, t.statement.as_deref(), true);
        }
        if self.format != FORMAT_CUSTOM {
            return self.out;
        }
        for t in tables {
            if t.statement.is_some() {
                self.byte(BLOCK_DATA);
                self.int(t.id);
                self.chunks(&t.data);
            } else {
                self.byte(BLOCK_LARGE_OBJECTS);
                self.int(t.id);
                for (oid, bytes) in &t.objects {
                    self.int(*oid);
                    self.chunks(bytes);
                }
                self.int(0);
            }
        }
        self.out
    }
}

fn discovery(limits: Limits) -> Discovery {
    let key = KeyBytes::from_slice(&[4u8; 32]).expect("32 bytes");
    Discovery::new(Scanner::new(FingerprintKey::new(&key)), limits)
}

fn scan_bytes(d: &Discovery, bytes: &[u8]) -> Vec<ObjectReport> {
    let mut out = Vec::new();
    d.scan_reader("dump.pgc", &mut Cursor::new(bytes), &mut |r| out.push(r));
    out
}

/// The archive's own report (emitted last).
fn archive_report(reports: &[ObjectReport]) -> &ObjectReport {
    let r = reports.last().expect("a report");
    assert_eq!((r.path.as_str(), r.kind), ("dump.pgc", ObjectKind::PgDump));
    r
}

/// A table of one row holding `card` for each id.
fn card_tables(card: &str, ids: std::ops::RangeInclusive<i64>) -> Vec<Table> {
    ids.map(|i| Table::copy(i, "t", "card_number", &format!("{card}\n")))
        .collect()
}

#[test]
fn tables_of_every_version_and_compression_are_located_by_table_row_and_column() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    let orders = format!("1\tfirst\\tline\t\\N\n2\tsecond\t{card}\n\\.\n\n\n");
    let customers = format!("7\t{other}\n");
    // Line and column are in the table's data, as is the offset.
    let place = |table: &str, row, field, header: &str, column, at| -> SqlCard {
        (
            table.to_owned(),
            row,
            field,
            Some(header.to_owned()),
            row,
            column,
            at,
        )
    };
    let expected = vec![
        place(
            "public.orders",
            2,
            3,
            "card_number",
            10,
            orders.find(&card).expect("planted"),
        ),
        place("public.customers", 1, 2, "カード番号", 3, 2),
    ];
    for minor in [7, 10, 12, 14, 15, 16] {
        for zlib in [false, true] {
            let bytes = Writer::new(minor, zlib, 5).archive(&[
                Table::copy(3341, "orders", "id, note, card_number", &orders),
                Table::copy(3342, "customers", "id, \"カード番号\"", &customers),
            ]);
            let reports = scan_bytes(&discovery(Limits::default()), &bytes);
            assert_eq!(reports.len(), 1, "1.{minor} zlib {zlib}");
            let r = archive_report(&reports);
            assert_eq!(
                r.status,
                Status::Complete,
                "1.{minor} zlib {zlib}: {:?}",
                r.reason
            );
            assert_eq!(sql_cards(r), expected, "1.{minor} zlib {zlib}");
            assert_eq!(r.bytes, (orders.len() + customers.len()) as u64);
        }
    }
}

/// Regression: an archive of a database in another encoding than UTF-8
/// (EUC_JP, made with `ENCODING 'EUC_JP'`) was read as UTF-8, its Japanese
/// table and column names and values replaced, so names and addresses
/// labelled 氏名 and 住所 were missed. Names, statements and data are decoded
/// from the archive's encoding; positions are in the data decoded to UTF-8.
#[test]
fn archives_in_a_database_encoding_are_decoded_from_it() {
    let card = luhn_complete("3569", 16);
    // ソ and 表 end in 0x5C, a backslash, in Shift_JIS: COPY's escape
    // character must not be looked for before decoding.
    let data = format!("1\t山田 太郎\t東京都千代田区千代田1-1\t{card}\tソ表\n\\.\n");
    let table = Table {
        id: 5,
        namespace: "public",
        tag: "顧客",
        statement: Some(
            "COPY public.\"顧客\" (id, \"氏名\", \"住所\", card_number, \"備考\") FROM stdin;\n".to_owned(),
        ),
        data: Vec::new(),
        objects: Vec::new(),
    };
    let at = |field, header: &str, needle: &str| -> SqlCard {
        let offset = data.find(needle).expect("planted");
        let column = data[..offset].chars().count() + 1;
        (
            "public.顧客".to_owned(),
            1,
            field,
            Some(header.to_owned()),
            1,
            column,
            offset,
        )
    };
    for (name, encoding, read_as) in [
        ("EUC_JP", encoding_rs::EUC_JP, TextEncoding::EucJp),
        ("EUC_JIS_2004", encoding_rs::EUC_JP, TextEncoding::EucJp),
        ("SJIS", encoding_rs::SHIFT_JIS, TextEncoding::ShiftJis),
        ("UTF8", encoding_rs::UTF_8, TextEncoding::Utf8),
    ] {
        let (bytes, _, errors) = encoding.encode(&data);
        assert!(!errors);
        // Chunks of 7 bytes cut characters, and zlib streams cut them anywhere.
        for (zlib, chunk) in [(false, 7), (true, 1000)] {
            let archive = Writer::new(14, zlib, chunk)
                .encoding(name, encoding)
                .archive(&[Table {
                    data: bytes.to_vec(),
                    ..table.clone()
                }]);
            let reports = scan_bytes(&discovery(Limits::default()), &archive);
            let r = archive_report(&reports);
            assert_eq!(r.status, Status::Complete, "{name}: {:?}", r.reason);
            assert_eq!((r.encoding, r.decode_errors), (Some(read_as), false), "{name}");
            assert_eq!(
                sql_places(r, Category::Card),
                [at(4, "card_number", &card)],
                "{name}"
            );
            assert_eq!(sql_places(r, Category::Name), [at(2, "氏名", "山田")], "{name}");
            assert_eq!(
                sql_places(r, Category::Address),
                [at(3, "住所", "東京都")],
                "{name}"
            );
        }
    }
}

/// A Latin-1 database's archive: its accented letters decode (no decode
/// errors), and a card beside them is at its column.
#[test]
fn latin1_archives_are_decoded_as_windows_1252() {
    let card = luhn_complete("4539", 16);
    let data = format!("Zoë Müller\t{card}\n");
    let (bytes, _, errors) = encoding_rs::WINDOWS_1252.encode(&data);
    assert!(!errors);
    for name in ["LATIN1", "WIN1252"] {
        let archive = Writer::new(16, true, 100)
            .encoding(name, encoding_rs::WINDOWS_1252)
            .archive(&[Table {
                data: bytes.to_vec(),
                ..Table::copy(8, "clients", "nom, carte", "")
            }]);
        let reports = scan_bytes(&discovery(Limits::default()), &archive);
        let r = archive_report(&reports);
        assert_eq!(r.status, Status::Complete, "{name}: {:?}", r.reason);
        assert_eq!(
            (r.encoding, r.decode_errors),
            (Some(TextEncoding::Windows1252), false)
        );
        let card_at = data.find(&card).expect("planted");
        assert_eq!(
            sql_places(r, Category::Card),
            [(
                "public.clients".to_owned(),
                1,
                2,
                Some("carte".to_owned()),
                1,
                12,
                card_at
            )]
        );
    }
}

/// An encoding not decoded: the archive is read as UTF-8 as before (ASCII
/// values still found) and reported partial, the reason naming it.
#[test]
fn an_archive_in_an_encoding_not_decoded_is_partial_with_the_reason() {
    let card = luhn_complete("4539", 16);
    let masked = format!("{}••••••{}", &card[..6], &card[12..]);
    for (name, shown) in [
        ("KOI8R", "KOI8R"),
        (card.as_str(), masked.as_str()),
        ("EUC JP", "(unreadable)"),
    ] {
        let archive = Writer::new(14, false, 100)
            .encoding(name, encoding_rs::UTF_8)
            .archive(&card_tables(&card, 3..=3));
        let reports = scan_bytes(&discovery(Limits::default()), &archive);
        let r = archive_report(&reports);
        assert_eq!(r.status, Status::Partial);
        let reason = r.reason.clone().unwrap_or_default();
        assert!(reason.contains(&format!("encoding {shown},")), "{reason}");
        assert!(!reason.contains(&card[4..]), "{reason}");
        assert_eq!(sql_cards(r).len(), 1);
    }
}

#[test]
fn insert_statements_and_large_objects_are_read() {
    let card = luhn_complete("5412", 16);
    let inserts = Table {
        id: 10,
        namespace: "crm",
        tag: "contacts",
        statement: Some(String::new()),
        data: format!("INSERT INTO crm.contacts (id, card) VALUES (1, '{card}');\n").into_bytes(),
        objects: Vec::new(),
    };
    let csv = format!("name,card\nA,{card}\n");
    let blobs = Table {
        id: 11,
        namespace: "",
        tag: "BLOBS",
        statement: None,
        data: Vec::new(),
        objects: vec![
            (16401, format!("カード番号 {card}").into_bytes()),
            (16402, zip_of(&[("orders.csv", csv.as_bytes())])),
        ],
    };
    for zlib in [false, true] {
        let bytes = Writer::new(14, zlib, 100).archive(&[inserts.clone(), blobs.clone()]);
        let reports = scan_bytes(&discovery(Limits::default()), &bytes);
        let r = archive_report(&reports);
        assert_eq!(r.status, Status::Complete, "{:?}", r.reason);
        let places = sql_cards(r);
        assert_eq!(places.len(), 1);
        assert_eq!(
            (places[0].0.as_str(), places[0].1, places[0].2),
            ("crm.contacts", 1, 2)
        );
        let paths: Vec<_> = reports
            .iter()
            .filter(|r| r.findings.iter().any(|f| f.category == Category::Card))
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "dump.pgc!large-object-16401",
                "dump.pgc!large-object-16402!orders.csv",
                "dump.pgc"
            ]
        );
    }
}

#[test]
fn unsupported_archives_are_skipped_with_the_reason() {
    let d = discovery(Limits::default());
    let reason = |bytes: &[u8]| {
        let reports = scan_bytes(&d, bytes);
        let r = archive_report(&reports);
        assert_eq!(r.status, Status::Skipped);
        r.reason.clone().expect("reason")
    };
    let mut lz4 = Writer::new(15, false, 10).archive(&[]);
    lz4[11] = 2;
    assert!(reason(&lz4).contains("compressed with lz4"));
    let mut future = Writer::new(16, false, 10).archive(&[]);
    future[6] = 17;
    assert!(reason(&future).contains("version 1.17 is not read"));
    let mut unknown = Writer::new(14, false, 10).archive(&[]);
    unknown[10] = 2;
    assert!(reason(&unknown).contains("format 2 is not read"));
    assert!(reason(b"PGDMP\x01\x0e").contains("truncated in its header"));
}

#[test]
fn broken_data_ends_partial_and_later_blocks_still_count() {
    let card = luhn_complete("4539", 16);
    let tables = [
        Table::copy(5, "a", "card_number", &format!("{card}\n")),
        Table::copy(6, "b", "card_number", &format!("{card}\n")),
    ];
    let good = Writer::new(14, true, 1000).archive(&tables);
    let d = discovery(Limits::default());
    let tables_found = |bytes: &[u8]| {
        let reports = scan_bytes(&d, bytes);
        let r = archive_report(&reports);
        let found: Vec<String> = sql_cards(r).into_iter().map(|p| p.0).collect();
        (r.status, r.reason.clone().unwrap_or_default(), found)
    };
    // Cut inside the second block's first chunk length.
    let second = find_block(&good, 6);
    let (status, reason, found) = tables_found(&good[..second - 3]);
    assert_eq!((status, found), (Status::Partial, vec!["public.a".to_owned()]));
    assert!(reason.contains("truncated in a data block"), "{reason}");
    // Cut at the second block's start: its data is missing.
    let (status, reason, found) = tables_found(&good[..second - 5 - 6]);
    assert_eq!((status, found), (Status::Partial, vec!["public.a".to_owned()]));
    assert!(
        reason.contains("no data block for 1 of its 2 entries"),
        "{reason}"
    );
    // A corrupt zlib stream in the first block: that table is partial, the second one read.
    let mut bad = good.clone();
    let first = find_block(&bad, 5);
    bad[first + 2] ^= 0xff;
    let (status, reason, found) = tables_found(&bad);
    assert_eq!(status, Status::Partial);
    assert!(reason.starts_with("public.a: "), "{reason}");
    assert!(
        found.contains(&"public.b".to_owned()),
        "the second table is still read"
    );
}

/// Where the first chunk's bytes of block `id` start.
fn find_block(bytes: &[u8], id: u8) -> usize {
    let header = [BLOCK_DATA, 0, id, 0, 0, 0];
    let at = bytes
        .windows(header.len())
        .rposition(|w| w == header)
        .expect("block");
    at + header.len() + 5
}

#[test]
fn limits_stop_the_data_with_a_reason() {
    let card = luhn_complete("4539", 16);
    let bytes = Writer::new(14, false, 1000).archive(&card_tables(&card, 11..=15));
    let reports = scan_bytes(&discovery(Limits::default().max_members(2)), &bytes);
    let r = archive_report(&reports);
    assert_eq!(r.status, Status::Partial);
    assert!(r.reason.as_deref().unwrap_or("").contains("more than 2 members"));
    assert_eq!(sql_cards(r).len(), 2);
    // A bomb: 8 MiB of short lines of zeros expand past the ratio.
    let zeros = b"0000000\n".repeat(1 << 20);
    let bomb = Writer::new(14, true, 1 << 20).archive(&[Table {
        id: 2,
        namespace: "public",
        tag: "t",
        statement: Some("COPY public.t (x) FROM stdin;\n".to_owned()),
        data: zeros,
        objects: Vec::new(),
    }]);
    let reports = scan_bytes(&discovery(Limits::default().max_ratio(10)), &bomb);
    let r = archive_report(&reports);
    assert_eq!(r.status, Status::Partial);
    assert!(
        r.reason.as_deref().unwrap_or("").contains("compression ratio"),
        "{:?}",
        r.reason
    );
}

#[test]
fn the_time_limit_ends_the_archive_partial() {
    let card = luhn_complete("4539", 16);
    let bytes = Writer::new(14, true, 1000).archive(&card_tables(&card, 11..=13));
    let d = discovery(Limits::default().file_timeout(Some(std::time::Duration::from_secs(5))));
    let mut out = Vec::new();
    let mut reader = Cursor::new(&bytes);
    let ctx = Ctx::new(&d);
    crate::clock::advance(std::time::Duration::from_secs(6));
    scan(&ctx, "dump.pgc".to_owned(), &mut reader, 0, &mut |r| out.push(r));
    let r = archive_report(&out);
    assert_ne!(r.status, Status::Complete);
    assert!(
        r.reason.as_deref().unwrap_or("").starts_with(crate::TIME_LIMIT),
        "{:?}",
        r.reason
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A generated archive read back: the planted card is found at its
    /// table, row and column whatever the version, compression and chunking.
    #[test]
    fn generated_archives_round_trip(
        minor in 7u8..=16,
        zlib in any::<bool>(),
        chunk in 1usize..64,
        rows in proptest::collection::vec(proptest::collection::vec("[a-z ]{0,8}", 3), 1..6),
        at in (0usize..6, 0usize..3),
    ) {
        let card = luhn_complete("4539", 16);
        let row = at.0 % rows.len();
        let mut data = String::new();
        for (i, cells) in rows.iter().enumerate() {
            let mut cells = cells.clone();
            if i == row {
                cells[at.1] = card.clone();
            }
            data.push_str(&cells.join("\t"));
            data.push('\n');
        }
        data.push_str("\\.\n");
        let bytes = Writer::new(minor, zlib, chunk).archive(&[Table::copy(9, "t", "a, b, c", &data)]);
        let reports = scan_bytes(&discovery(Limits::default()), &bytes);
        let r = archive_report(&reports);
        prop_assert_eq!(r.status, Status::Complete);
        let places = sql_cards(r);
        prop_assert_eq!(places.len(), 1);
        prop_assert_eq!((places[0].0.as_str(), places[0].1, places[0].2), ("public.t", row + 1, at.1 + 1));
        prop_assert_eq!(places[0].4, row + 1);
    }

    /// Any cut or changed byte: a report with a reason, never a panic.
    #[test]
    fn damaged_archives_are_reported_not_fatal(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
        let card = luhn_complete("4539", 16);
        let mut bytes = Writer::new(14, true, 7)
            .archive(&[Table::copy(3, "t", "a", &format!("{card}\n"))]);
        if flip < bytes.len() {
            bytes[flip] ^= 1 << bit;
        }
        bytes.truncate(cut.max(5));
        let reports = scan_bytes(&discovery(Limits::default()), &bytes);
        for r in &reports {
            prop_assert!(r.status == Status::Complete || r.reason.is_some());
        }
    }
}

/// A `pg_dump -Ft` archive as pg_dump writes it: `toc.dat` first, then each
/// table's data file (gzip-compressed for the ids in `gzip`, as a tarred
/// directory-format dump holds them), then `restore.sql`.
fn dump_tar(toc: Writer, tables: &[Table], gzip: &[i64]) -> Vec<u8> {
    let toc = toc.archive(tables);
    let files: Vec<(String, Vec<u8>)> = tables
        .iter()
        .map(|t| {
            if gzip.contains(&t.id) {
                (format!("{}.dat.gz", t.id), crate::test_support::gzip_of(&t.data))
            } else {
                (format!("{}.dat", t.id), t.data.clone())
            }
        })
        .collect();
    let mut members: Vec<(&str, &[u8])> = vec![("toc.dat", &toc)];
    members.extend(files.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    members.push((
        "restore.sql",
        b"-- PostgreSQL database dump\nCOPY public.t (a) FROM '$$PATH$$/5.dat';\n",
    ));
    crate::test_support::tar_of(&members)
}

fn report<'r>(reports: &'r [ObjectReport], path: &str) -> &'r ObjectReport {
    reports
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no report for {path}"))
}

#[test]
fn data_file_names_give_their_dump_id() {
    assert_eq!(data_file_id("3344.dat"), Some((3344, None)));
    assert_eq!(data_file_id("dump/3344.dat.gz"), Some((3344, Some(Codec::Gzip))));
    assert_eq!(data_file_id("3344.dat.lz4"), Some((3344, Some(Codec::Lz4))));
    assert_eq!(data_file_id("3344.dat.zst"), Some((3344, Some(Codec::Zstd))));
    assert_eq!(data_file_id("a\\7.dat"), Some((7, None)));
    for name in [
        "toc.dat",
        ".dat",
        "blobs.toc",
        "3344.dat.lz",
        "-1.dat",
        "3344.dat.gz.gz",
        "x3344.dat",
        "99999999999999999999.dat",
    ] {
        assert_eq!(data_file_id(name), None, "{name}");
    }
}

/// The data members of a `pg_dump -Ft` archive are read as the COPY data
/// of the table their `toc.dat` entry names (plain or gzip-compressed, every
/// archive version): findings carry table, row, field and column name.
#[test]
fn tar_format_data_is_located_by_table_row_and_column() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    let orders = format!("1\tfirst\t\\N\n2\tsecond\t{card}\n\\.\n\n");
    let customers = format!("7\t{other}\n\\.\n\n");
    let tables = [
        Table::copy(5, "orders", "id, note, card_number", &orders),
        Table::copy(6, "customers", "id, \"カード番号\"", &customers),
    ];
    let d = discovery(Limits::default());
    for minor in [12, 14, 15, 16] {
        for format in [FORMAT_TAR, FORMAT_DIRECTORY] {
            let bytes = dump_tar(Writer::new(minor, false, 1).toc_dat(format), &tables, &[6]);
            let mut reports = Vec::new();
            d.scan_reader("shop.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
            let toc = report(&reports, "shop.tar!toc.dat");
            assert_eq!(
                (toc.kind, toc.status, toc.findings.len()),
                (ObjectKind::PgDump, Status::Complete, 0)
            );
            let orders_file = report(&reports, "shop.tar!5.dat");
            assert_eq!(
                (orders_file.kind, orders_file.status),
                (ObjectKind::PgDump, Status::Complete),
                "1.{minor}"
            );
            let at = orders.find(&card).expect("planted");
            assert_eq!(
                sql_cards(orders_file),
                vec![(
                    "public.orders".to_owned(),
                    2,
                    3,
                    Some("card_number".to_owned()),
                    2,
                    10,
                    at
                )],
                "1.{minor} format {format}"
            );
            assert_eq!(orders_file.bytes, orders.len() as u64);
            let customers_file = report(&reports, "shop.tar!6.dat.gz");
            assert_eq!(
                sql_cards(customers_file),
                vec![(
                    "public.customers".to_owned(),
                    1,
                    2,
                    Some("カード番号".to_owned()),
                    1,
                    3,
                    2
                )]
            );
            assert_eq!(customers_file.bytes, customers.len() as u64);
            assert_eq!(report(&reports, "shop.tar!restore.sql").kind, ObjectKind::Sql);
            assert_eq!(report(&reports, "shop.tar").status, Status::Complete);
        }
    }
}

/// PostgreSQL 16's `pg_dump -Fd --compress=lz4` and `--compress=zstd`
/// write `3344.dat.lz4` and `3344.dat.zst`: read by table as `.dat.gz` is.
#[test]
fn lz4_and_zstd_data_files_are_read_by_table() {
    let card = luhn_complete("4539", 16);
    let rows = format!("1\t{card}\n\\.\n\n");
    let tables = [
        Table::copy(5, "orders", "id, card_number", &rows),
        Table::copy(6, "payments", "id, card_number", &rows),
    ];
    let toc = Writer::new(16, false, 1).toc_dat(FORMAT_TAR).archive(&tables);
    let lz4 = crate::test_support::compressed_of(ObjectKind::Lz4, rows.as_bytes());
    let zst = crate::test_support::compressed_of(ObjectKind::Zstd, rows.as_bytes());
    let bytes = crate::test_support::tar_of(&[("toc.dat", &toc), ("5.dat.lz4", &lz4), ("6.dat.zst", &zst)]);
    let mut reports = Vec::new();
    discovery(Limits::default()).scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
    for (path, table) in [
        ("x.tar!5.dat.lz4", "public.orders"),
        ("x.tar!6.dat.zst", "public.payments"),
    ] {
        let r = report(&reports, path);
        assert_eq!(
            (r.kind, r.status, r.bytes),
            (ObjectKind::PgDump, Status::Complete, rows.len() as u64)
        );
        let at = rows.find(&card).expect("planted");
        assert_eq!(
            sql_cards(r),
            vec![(table.to_owned(), 1, 2, Some("card_number".to_owned()), 1, 3, at)],
            "{path}"
        );
    }
}

/// What the table of contents does not describe is read as before: a data
/// file of an id it does not list, a data file in another folder of the
/// tar, and every data file when the `toc.dat` does not parse (it is then
/// skipped with the reason). An entry without a COPY statement (`--inserts`)
/// is read as INSERT statements.
#[test]
fn tar_members_the_toc_does_not_describe_are_read_as_text() {
    let card = luhn_complete("4539", 16);
    let rows = format!("1\t{card}\n\\.\n");
    let table = Table::copy(5, "orders", "id, card_number", &rows);
    let inserts = Table {
        statement: Some(String::new()),
        data: format!("INSERT INTO public.notes (id, card_number) VALUES (1, '{card}');\n").into_bytes(),
        ..Table::copy(6, "notes", "", "")
    };
    let toc = Writer::new(14, false, 1)
        .toc_dat(FORMAT_TAR)
        .archive(&[table, inserts.clone()]);
    let bytes = crate::test_support::tar_of(&[
        ("other/5.dat", rows.as_bytes()),
        ("toc.dat", &toc),
        ("6.dat", &inserts.data),
        ("9.dat", rows.as_bytes()),
    ]);
    let d = discovery(Limits::default());
    let mut reports = Vec::new();
    d.scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
    for path in ["x.tar!9.dat", "x.tar!other/5.dat"] {
        let r = report(&reports, path);
        assert_eq!(r.kind, ObjectKind::Text, "{path}");
        assert_eq!(r.findings.len(), 1, "{path}: still found");
        assert!(r.findings[0].locator.record.is_none(), "{path}");
    }
    let inserted = report(&reports, "x.tar!6.dat");
    assert_eq!(inserted.kind, ObjectKind::PgDump);
    assert_eq!(
        sql_cards(inserted)
            .into_iter()
            .map(|p| (p.0, p.1, p.2, p.3))
            .collect::<Vec<_>>(),
        vec![("public.notes".to_owned(), 1, 2, Some("card_number".to_owned()))]
    );

    // A table of contents that does not parse: skipped, its data read as
    // text, whether it came before (held, then let go) or after.
    let mut broken = toc.clone();
    broken.truncate(broken.len() - 3);
    let bytes = crate::test_support::tar_of(&[
        ("4.dat", rows.as_bytes()),
        ("toc.dat", &broken),
        ("5.dat", rows.as_bytes()),
    ]);
    let mut reports = Vec::new();
    d.scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
    let toc = report(&reports, "x.tar!toc.dat");
    assert_eq!(toc.status, Status::Skipped);
    assert!(
        toc.reason
            .as_deref()
            .unwrap_or_default()
            .contains("truncated in its table of contents")
    );
    for path in ["x.tar!4.dat", "x.tar!5.dat"] {
        let r = report(&reports, path);
        assert_eq!((r.kind, r.findings.len()), (ObjectKind::Text, 1), "{path}");
    }
}

/// A directory-format dump tarred as tar lists it (`tar --sort=name`
/// puts `3344.dat.gz` before `toc.dat`): the data files before the
/// `toc.dat` of their folder are held in memory until it comes, then read
/// by table, row and column; ones too large to hold within
/// `Limits::max_in_memory` are read as text when they come (their values
/// still found, without the table's names).
#[test]
fn tarred_directory_dumps_are_read_by_table_whatever_the_member_order() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    // Orders large enough not to fit where the customers do (below).
    let notes = "ありがとうございました".repeat(150);
    let orders = format!("1\t{notes}\t\\N\n2\tsecond\t{card}\n\\.\n\n");
    let customers = format!("7\t{other}\n\\.\n\n");
    let tables = [
        Table::copy(5, "orders", "id, note, card_number", &orders),
        Table::copy(6, "customers", "id, card_number", &customers),
    ];
    let toc = Writer::new(14, false, 1).toc_dat(FORMAT_TAR).archive(&tables);
    let gz = crate::test_support::gzip_of(customers.as_bytes());
    let other_dump = Writer::new(14, false, 1)
        .toc_dat(FORMAT_TAR)
        .archive(&[Table::copy(5, "staff", "id, card_number", &customers)]);
    // Two dumps in one tar, each as `tar --sort=name` writes it.
    let bytes = crate::test_support::tar_of(&[
        ("b/5.dat", customers.as_bytes()),
        ("dump/5.dat", orders.as_bytes()),
        ("dump/6.dat.gz", &gz),
        (
            "dump/restore.sql",
            b"COPY public.orders (id) FROM '$$PATH$$/5.dat';\n",
        ),
        ("dump/toc.dat", &toc),
        ("b/toc.dat", &other_dump),
    ]);
    let d = discovery(Limits::default());
    let mut reports = Vec::new();
    d.scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
    let at = orders.find(&card).expect("planted");
    let r = report(&reports, "x.tar!dump/5.dat");
    assert_eq!((r.kind, r.status), (ObjectKind::PgDump, Status::Complete));
    assert_eq!(r.bytes, orders.len() as u64);
    assert_eq!(
        sql_cards(r),
        vec![(
            "public.orders".to_owned(),
            2,
            3,
            Some("card_number".to_owned()),
            2,
            10,
            at
        )],
    );
    let located = |path: &str| {
        sql_cards(report(&reports, path))
            .into_iter()
            .map(|p| (p.0, p.3))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        located("x.tar!dump/6.dat.gz"),
        vec![("public.customers".to_owned(), Some("card_number".to_owned()))]
    );
    assert_eq!(
        located("x.tar!b/5.dat"),
        vec![("public.staff".to_owned(), Some("card_number".to_owned()))]
    );
    assert_eq!(report(&reports, "x.tar").status, Status::Complete);

    // Room for the small files (and the tables of contents' names), not for
    // the orders: they are read as text when they come, the others still by
    // table.
    assert!(orders.len() > 4096 && customers.len() + gz.len() < 4096);
    let d = discovery(Limits::default().max_in_memory(4096));
    let mut reports = Vec::new();
    d.scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
    let text = report(&reports, "x.tar!dump/5.dat");
    assert_eq!((text.kind, text.findings.len()), (ObjectKind::Text, 1));
    assert!(text.findings[0].locator.record.is_none());
    for path in ["x.tar!b/5.dat", "x.tar!dump/6.dat.gz"] {
        assert_eq!(report(&reports, path).kind, ObjectKind::PgDump, "{path}");
    }
}

/// A directory-format dump on disk: each data file is read with the
/// `toc.dat` beside it, decoded from the dump's encoding; without a
/// `toc.dat` that lists it, as text.
#[test]
fn directory_format_data_files_are_read_with_the_toc_beside_them() {
    let card = luhn_complete("3569", 16);
    let rows = format!("1\t山田 太郎\t{card}\n\\.\n\n");
    let table = Table {
        statement: Some("COPY public.\"顧客\" (id, \"氏名\", card_number) FROM stdin;\n".to_owned()),
        ..Table::copy(3344, "顧客", "", "")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let toc = Writer::new(14, true, 1)
        .encoding("EUC_JP", encoding_rs::EUC_JP)
        .toc_dat(FORMAT_TAR)
        .archive(&[table]);
    std::fs::write(dir.path().join("toc.dat"), &toc).expect("write");
    let (euc, _, _) = encoding_rs::EUC_JP.encode(&rows);
    let data = dir.path().join("3344.dat.gz");
    std::fs::write(&data, crate::test_support::gzip_of(&euc)).expect("write");
    std::fs::write(dir.path().join("3345.dat"), rows.as_bytes()).expect("write");
    let d = discovery(Limits::default());
    let scan = |path: &Path| {
        let mut reports = Vec::new();
        d.scan_file(path, "f", &mut |r| reports.push(r));
        reports
    };
    let reports = scan(&data);
    let r = report(&reports, "f");
    assert_eq!(
        (r.kind, r.status, r.encoding),
        (ObjectKind::PgDump, Status::Complete, Some(TextEncoding::EucJp))
    );
    let at = rows.find(&card).expect("planted");
    let column = rows[..at].chars().count() + 1;
    assert_eq!(
        sql_cards(r),
        vec![(
            "public.顧客".to_owned(),
            1,
            3,
            Some("card_number".to_owned()),
            1,
            column,
            at
        )]
    );
    assert_eq!(
        sql_places(r, Category::Name)
            .into_iter()
            .map(|p| p.3)
            .collect::<Vec<_>>(),
        vec![Some("氏名".to_owned())]
    );
    let toc_report = scan(&dir.path().join("toc.dat"));
    assert_eq!(
        (
            toc_report[0].kind,
            toc_report[0].status,
            toc_report[0].findings.len()
        ),
        (ObjectKind::PgDump, Status::Complete, 0)
    );
    // Not in the table of contents: read as text, the card still found.
    let unlisted = scan(&dir.path().join("3345.dat"));
    assert_eq!(
        (unlisted[0].kind, unlisted[0].findings.len()),
        (ObjectKind::Text, 1)
    );
    // No table of contents beside it, or one that does not parse: likewise.
    std::fs::write(dir.path().join("toc.dat"), &toc[..toc.len() / 2]).expect("write");
    let reports = scan(&data);
    assert_eq!(reports.last().map(|r| r.kind), Some(ObjectKind::Gzip));
    assert!(reports.iter().all(|r| r.kind != ObjectKind::PgDump));
    std::fs::remove_file(dir.path().join("toc.dat")).expect("remove");
    assert!(scan(&data).iter().all(|r| r.kind != ObjectKind::PgDump));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A damaged `toc.dat` in a tar, or damaged data after it: every object
    /// reported, with a reason when not complete, never a panic.
    #[test]
    fn damaged_tar_format_dumps_are_reported_not_fatal(
        cut in 0usize..600,
        flip in 0usize..600,
        bit in 0u8..8,
        gzip in any::<bool>(),
    ) {
        let card = luhn_complete("4539", 16);
        let tables = [Table::copy(3, "t", "a", &format!("{card}\n"))];
        let mut toc = Writer::new(14, false, 1).toc_dat(FORMAT_TAR).archive(&tables);
        if flip < toc.len() {
            toc[flip] ^= 1 << bit;
        }
        toc.truncate(cut.max(5));
        let data = if gzip {
            let mut gz = crate::test_support::gzip_of(&tables[0].data);
            let at = flip % gz.len();
            gz[at] ^= 1 << bit;
            ("3.dat.gz", gz)
        } else {
            ("3.dat", tables[0].data.clone())
        };
        let bytes = crate::test_support::tar_of(&[("toc.dat", &toc), (data.0, &data.1)]);
        let mut reports = Vec::new();
        discovery(Limits::default()).scan_reader("x.tar", &mut Cursor::new(&bytes), &mut |r| reports.push(r));
        prop_assert_eq!(reports.last().map(|r| r.path.as_str()), Some("x.tar"));
        prop_assert!(reports.iter().any(|r| r.path == "x.tar!toc.dat"));
        for r in &reports {
            prop_assert!(r.status == Status::Complete || r.reason.is_some());
        }
    }
}

/// Each data file of a directory-format dump reads the `toc.dat` beside it
/// once per scan: the last ones are kept, at most `CACHED_TOCS` of them and
/// `Limits::max_in_memory` bytes of names together; a changed `toc.dat` is
/// read again.
#[test]
fn directory_tables_of_contents_are_cached_within_the_memory_bound() {
    let root = tempfile::tempdir().expect("tempdir");
    let statement = "COPY public.t (card_number) FROM stdin;\n";
    let table = |id| Table::copy(id, "t", "card_number", "\\.\n");
    let toc = |id| {
        Writer::new(14, false, 1)
            .toc_dat(FORMAT_TAR)
            .archive(&[table(id)])
    };
    let dumps: Vec<PathBuf> = (1..=CACHED_TOCS as i64 + 2)
        .map(|id| {
            let dir = root.path().join(format!("dump{id}"));
            std::fs::create_dir(&dir).expect("mkdir");
            std::fs::write(dir.join("toc.dat"), toc(id)).expect("write");
            std::fs::write(dir.join(format!("{id}.dat")), "\\.\n").expect("write");
            dir.join(format!("{id}.dat"))
        })
        .collect();
    let cached = |d: &Discovery| -> Vec<PathBuf> {
        d.tocs
            .0
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.path.clone())
            .collect()
    };
    let scan = |d: &Discovery, path: &Path| {
        let mut kinds = Vec::new();
        d.scan_file(path, "f", &mut |r| kinds.push(r.kind));
        kinds
    };
    // Room for every one: the last CACHED_TOCS kept.
    let d = discovery(Limits::default());
    for data in &dumps {
        assert_eq!(scan(&d, data), vec![ObjectKind::PgDump]);
    }
    let expected: Vec<_> = dumps[2..].iter().map(|p| p.with_file_name("toc.dat")).collect();
    assert_eq!(cached(&d), expected);
    // Room for two tables of contents' names only: two kept.
    let size = (1 + "public".len() + statement.len()) as u64;
    let d = discovery(Limits::default().max_in_memory(2 * size));
    for data in &dumps {
        assert_eq!(scan(&d, data), vec![ObjectKind::PgDump]);
    }
    assert_eq!(cached(&d), expected[expected.len() - 2..].to_vec());
    // A changed table of contents (another size) is read again: this one
    // no longer lists the data file, which is read as text.
    let last = dumps.last().expect("dumps");
    let other = Writer::new(14, false, 1)
        .toc_dat(FORMAT_TAR)
        .archive(&[table(99), table(98)]);
    std::fs::write(last.with_file_name("toc.dat"), other).expect("write");
    assert_eq!(scan(&d, last), vec![ObjectKind::Text]);
}
