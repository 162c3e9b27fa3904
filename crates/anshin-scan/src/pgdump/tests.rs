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
}

impl Writer {
    fn new(minor: u8, zlib: bool, chunk: usize) -> Self {
        Self {
            out: Vec::new(),
            minor,
            zlib,
            chunk: chunk.max(1),
            encoding: ("UTF8".to_owned(), encoding_rs::UTF_8),
        }
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
        self.out.extend_from_slice(&[1, self.minor, 0, 4, 8, 1]);
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
        self.byte(if data { 2 } else { 3 });
        self.out.extend_from_slice(&[0; 8]);
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
    let mut directory = Writer::new(14, false, 10).archive(&[]);
    directory[10] = 5;
    assert!(reason(&directory).contains("directory-format"));
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
