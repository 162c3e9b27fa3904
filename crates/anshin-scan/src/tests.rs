//! End-to-end tests of the pipeline in memory: archives, encodings, chunks,
//! limits. Planted values are built at run time and never printed: assertions
//! compare locators, categories and masked forms only.

use std::io::Cursor;
use std::time::Duration;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use proptest::prelude::*;

use super::*;
use crate::test_support::{
    base64, docx_of, gzip_of, luhn_complete, pdf_of, pdf_with_files, pptx_of, tar_of, zip_of,
};

fn scanner() -> Scanner {
    let key = KeyBytes::from_slice(&[3u8; 32]).expect("32 bytes");
    Scanner::new(FingerprintKey::new(&key))
}

pub(crate) fn discovery(limits: Limits) -> Discovery {
    Discovery::new(scanner(), limits)
}

fn collect(d: &Discovery, name: &str, bytes: &[u8]) -> Vec<ObjectReport> {
    let mut out = Vec::new();
    d.scan_reader(name, &mut Cursor::new(bytes), &mut |r| out.push(r));
    out
}

fn object<'a>(reports: &'a [ObjectReport], path: &str) -> &'a ObjectReport {
    reports.iter().find(|r| r.path == path).unwrap_or_else(|| {
        panic!(
            "no object {path}; have {:?}",
            reports.iter().map(|r| &r.path).collect::<Vec<_>>()
        )
    })
}

fn cards(r: &ObjectReport) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.category == Category::Card)
        .collect()
}

fn orders_csv(card: &str) -> String {
    format!(
        "注文番号,氏名,電話番号,カード番号\n\
         A-1001,山田 太郎,090-1234-5678,\n\
         A-1002,佐藤 花子,080-2345-6789,{card}\n"
    )
}

#[test]
fn csv_in_zip_has_inner_path_row_and_header() {
    let card = luhn_complete("453201", 16);
    let csv = orders_csv(&card);
    let zip = zip_of(&[
        ("2024/orders.csv", csv.as_bytes()),
        ("readme.txt", b"nothing here"),
    ]);
    let reports = collect(&discovery(Limits::default()), "orders.zip", &zip);
    let inner = object(&reports, "orders.zip!2024/orders.csv");
    assert_eq!(inner.kind, ObjectKind::Csv);
    assert_eq!(inner.status, Status::Complete);
    let found = cards(inner);
    assert_eq!(found.len(), 1);
    let loc = &found[0].locator;
    assert_eq!(loc.byte_offset, csv.find(card.as_str()).expect("planted"));
    assert_eq!(loc.byte_len, 16);
    assert_eq!(loc.line, 3);
    let rec = loc.record.as_ref().expect("record");
    assert_eq!(
        (rec.row, rec.field, rec.header.as_deref()),
        (3, 4, Some("カード番号"))
    );
    assert_eq!(found[0].confidence, Confidence::High);
    assert_eq!(object(&reports, "orders.zip").kind, ObjectKind::Zip);
    assert!(object(&reports, "orders.zip!readme.txt").findings.is_empty());
}

#[test]
fn tar_gz_and_gz_name_inner_paths() {
    let card = luhn_complete("5555", 16);
    let log = format!("2026-01-01 payment card={card} ok\n");
    let tgz = gzip_of(&tar_of(&[("2024/app.log", log.as_bytes())]));
    let reports = collect(&discovery(Limits::default()), "backup.tar.gz", &tgz);
    let inner = object(&reports, "backup.tar.gz!2024/app.log");
    assert_eq!(
        cards(inner)[0].locator.byte_offset,
        log.find(card.as_str()).expect("planted")
    );
    assert_eq!(object(&reports, "backup.tar.gz").kind, ObjectKind::Tar);

    let gz = gzip_of(log.as_bytes());
    let reports = collect(&discovery(Limits::default()), "logs/app.log.gz", &gz);
    assert_eq!(cards(object(&reports, "logs/app.log.gz!app.log")).len(), 1);
}

/// The compression formats backups and rotated logs come in.
const CODECS: [(ObjectKind, &str); 5] = [
    (ObjectKind::Gzip, "gz"),
    (ObjectKind::Bzip2, "bz2"),
    (ObjectKind::Xz, "xz"),
    (ObjectKind::Zstd, "zst"),
    (ObjectKind::Lz4, "lz4"),
];

/// Every format is read by its magic bytes, whatever its name: a CSV keeps
/// its row and header, a compressed tar its members' paths, and streams
/// written one after the other (`cat a.xz b.xz c.xz`) are all read.
#[test]
fn compressed_streams_are_read_in_every_format() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    let csv = orders_csv(&card);
    let log = format!("2026-01-01 payment card={other} ok\n");
    let d = discovery(Limits::default());
    for (kind, ext) in CODECS {
        let name = format!("orders.csv.{ext}");
        let reports = collect(&d, &name, &test_support::compressed_of(kind, csv.as_bytes()));
        let outer = object(&reports, &name);
        assert_eq!((outer.kind, outer.status), (kind, Status::Complete), "{ext}");
        assert_eq!(outer.bytes, csv.len() as u64, "{ext}: expanded bytes");
        let inner = object(&reports, &format!("{name}!orders.csv"));
        let found = cards(inner);
        assert_eq!(found.len(), 1, "{ext}");
        let rec = found[0].locator.record.as_ref().expect("record");
        assert_eq!((rec.row, rec.header.as_deref()), (3, Some("カード番号")), "{ext}");

        let tar = tar_of(&[("2024/app.log", log.as_bytes())]);
        let name = format!("backup.tar.{ext}");
        let reports = collect(&d, &name, &test_support::compressed_of(kind, &tar));
        assert_eq!(object(&reports, &name).kind, ObjectKind::Tar, "{ext}");
        let member = object(&reports, &format!("{name}!2024/app.log"));
        assert_eq!(
            cards(member)[0].locator.byte_offset,
            log.find(other.as_str()).expect("planted"),
            "{ext}"
        );

        // Renamed: the magic bytes decide.
        let reports = collect(
            &d,
            "export.bin",
            &test_support::compressed_of(kind, csv.as_bytes()),
        );
        assert_eq!(object(&reports, "export.bin").kind, kind, "{ext}");
        assert_eq!(
            cards(object(&reports, "export.bin!export.bin.out")).len(),
            1,
            "{ext}"
        );

        // Three streams, the first longer than the sniffed head.
        let first = format!("{}{log}", "ご注文ありがとうございます。\n".repeat(100));
        let mut three = test_support::compressed_of(kind, first.as_bytes());
        three.extend(test_support::compressed_of(kind, log.as_bytes()));
        three.extend(test_support::compressed_of(kind, csv.as_bytes()));
        let name = format!("three.{ext}");
        let reports = collect(&d, &name, &three);
        let all = object(&reports, &format!("{name}!three"));
        assert_eq!(all.status, Status::Complete, "{ext}");
        assert_eq!(cards(all).len(), 3, "{ext}: every stream");
    }
}

/// A cut or damaged stream is `partial` with the reason, its readable start
/// still scanned; a bomb stops at the ratio limit; a zstd frame asking for
/// more than 64 MiB of window is refused before any of it is allocated.
#[test]
fn hostile_compressed_streams_are_reported_not_fatal() {
    let card = luhn_complete("4539", 16);
    let text = format!(
        "カード番号: {card}\n{}",
        "ご注文ありがとうございます。\n".repeat(4000)
    );
    let d = discovery(Limits::default());
    for (kind, ext) in CODECS {
        let mut cut = test_support::compressed_of(kind, text.as_bytes());
        cut.truncate(cut.len() * 2 / 3);
        let name = format!("cut.txt.{ext}");
        let reports = collect(&d, &name, &cut);
        match reports.iter().find(|r| r.path == format!("{name}!cut.txt")) {
            // Streams decoded as they come (gzip, zstd's and lz4's blocks).
            Some(inner) => {
                assert_eq!(inner.status, Status::Partial, "{ext}: {:?}", inner.reason);
                assert_eq!(cards(inner).len(), 1, "{ext}: the start is still read");
            }
            // One block that cannot be checked or decoded (bzip2, xz).
            None => {
                let outer = object(&reports, &name);
                assert_eq!(outer.status, Status::Skipped, "{ext}");
                let reason = outer.reason.as_deref().unwrap_or_default();
                assert!(
                    reason.starts_with(&format!("corrupt {}", kind.as_str())),
                    "{reason}"
                );
            }
        }

        // Past 1 MiB expanded, at most 100 times the compressed size.
        let zeros = vec![0u8; 8 << 20];
        let bomb = test_support::compressed_of(kind, &zeros);
        let name = format!("z.{ext}");
        let reports = collect(&d, &name, &bomb);
        let inner = object(&reports, &format!("{name}!z"));
        assert_eq!(inner.status, Status::Partial, "{ext}");
        assert!(
            inner
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("compression ratio")),
            "{ext}: {:?}",
            inner.reason
        );
    }
    // Window descriptor 17 << 3: a 128 MiB window; also after a skippable
    // frame that puts the header across the reader's 8 KiB buffer.
    let mut wide = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3];
    wide.extend_from_slice(&[0u8; 64]);
    let mut shifted = vec![0x50, 0x2a, 0x4d, 0x18];
    shifted.extend_from_slice(&8181u32.to_le_bytes());
    shifted.extend(std::iter::repeat_n(0u8, 8181));
    shifted.extend_from_slice(&wide);
    for bytes in [wide, shifted] {
        let reports = collect(&d, "wide.zst", &bytes);
        let r = object(&reports, "wide.zst");
        assert_eq!((r.kind, r.status), (ObjectKind::Zstd, Status::Skipped));
        assert!(
            r.reason.as_deref().is_some_and(|r| r.contains("64 MiB")),
            "{:?}",
            r.reason
        );
    }
    // Empty skippable frames by the thousand (once, an endless loop), then data.
    let mut skips = [0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0].repeat(10_000);
    skips.extend(test_support::compressed_of(ObjectKind::Zstd, text.as_bytes()));
    let reports = collect(&d, "skips.zst", &skips);
    let inner = object(&reports, "skips.zst!skips");
    assert_eq!((inner.status, cards(inner).len()), (Status::Complete, 1));
}

/// Archives in formats that are not read are `skipped` with the reason,
/// inside a tar too: read as text they would have passed as scanned clean.
#[test]
fn unread_archive_formats_are_skipped_with_the_reason() {
    let seven = b"7z\xbc\xaf\x27\x1c\x00\x04 packed orders".to_vec();
    let rar = b"Rar!\x1a\x07\x01\x00 packed orders".to_vec();
    let tar = tar_of(&[("backup/orders.7z", &seven), ("backup/orders.rar", &rar)]);
    let reports = collect(&discovery(Limits::default()), "x.tar", &tar);
    for (path, format) in [
        ("x.tar!backup/orders.7z", "7z"),
        ("x.tar!backup/orders.rar", "RAR"),
    ] {
        let r = object(&reports, path);
        assert_eq!((r.kind, r.status), (ObjectKind::Other, Status::Skipped), "{path}");
        assert!(
            r.reason.as_deref().is_some_and(|x| x.starts_with(format)),
            "{path}"
        );
    }
    assert_eq!(object(&reports, "x.tar").status, Status::Complete);
}

#[test]
fn nested_archives_stop_at_the_depth_limit() {
    let card = luhn_complete("4539", 16);
    let text = format!("カード番号: {card}\n");
    let inner = zip_of(&[("a.txt", text.as_bytes())]);
    let middle = zip_of(&[("inner.zip", &inner)]);
    let outer = zip_of(&[("middle.zip", &middle)]);
    let reports = collect(&discovery(Limits::default()), "outer.zip", &outer);
    assert_eq!(
        cards(object(&reports, "outer.zip!middle.zip!inner.zip!a.txt")).len(),
        1
    );

    let reports = collect(&discovery(Limits::default().max_depth(2)), "outer.zip", &outer);
    let deep = object(&reports, "outer.zip!middle.zip!inner.zip");
    assert_eq!(deep.status, Status::Skipped);
    assert!(
        deep.reason
            .as_deref()
            .is_some_and(|r| r.contains("nested deeper than 2"))
    );
}

#[test]
fn nested_zips_over_the_memory_limit_go_through_a_temporary_file() {
    let card = luhn_complete("4539", 16);
    let text = format!("カード番号: {card}\n");
    // Random bytes do not compress: the nested zip is larger than the limit below.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..40_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let inner = zip_of(&[("a.txt", text.as_bytes()), ("noise.bin", &noise)]);
    assert!(inner.len() > 8192);
    let outer = zip_of(&[("inner.zip", &inner)]);
    let limits = Limits::default().max_in_memory(8192).max_ratio(10_000);
    let reports = collect(&discovery(limits), "outer.zip", &outer);
    assert_eq!(object(&reports, "outer.zip!inner.zip").status, Status::Complete);
    assert_eq!(cards(object(&reports, "outer.zip!inner.zip!a.txt")).len(), 1);
}

#[test]
fn zip_bombs_end_partial_not_exhausted() {
    let zeros = vec![b'0'; 8 << 20];
    let bomb = zip_of(&[("zeros.txt", &zeros)]);
    assert!(bomb.len() < 64 << 10, "test bomb compresses well");
    let reports = collect(&discovery(Limits::default()), "bomb.zip", &bomb);
    let member = object(&reports, "bomb.zip!zeros.txt");
    assert_eq!(member.status, Status::Partial);
    assert!(
        member
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("compression ratio"))
    );
    assert!(member.bytes < 8 << 20);

    let gz = gzip_of(&zeros);
    let reports = collect(&discovery(Limits::default()), "z.gz", &gz);
    assert_eq!(object(&reports, "z.gz!z").status, Status::Partial);

    // The expanded-size budget holds across members.
    let text = "x".repeat(600 << 10);
    let many = zip_of(&[
        ("1.txt", text.as_bytes()),
        ("2.txt", text.as_bytes()),
        ("3.txt", text.as_bytes()),
    ]);
    let limits = Limits::default().max_expanded(1 << 20).max_ratio(10_000);
    let reports = collect(&discovery(limits), "many.zip", &many);
    assert_eq!(object(&reports, "many.zip!2.txt").status, Status::Partial);
    assert_eq!(object(&reports, "many.zip").status, Status::Partial);
}

#[test]
fn corrupt_archives_are_reported_not_fatal() {
    let mut zip = zip_of(&[("a.txt", b"hello world, hello world")]);
    let cut = zip.len() / 2;
    zip.truncate(cut);
    let reports = collect(&discovery(Limits::default()), "broken.zip", &zip);
    let r = object(&reports, "broken.zip");
    assert_eq!(r.status, Status::Skipped);
    assert!(r.reason.as_deref().is_some_and(|x| x.starts_with("corrupt zip")));

    let mut gz = gzip_of(b"some text that is long enough to be cut somewhere in the middle");
    gz.truncate(gz.len() - 12);
    let reports = collect(&discovery(Limits::default()), "cut.gz", &gz);
    assert_eq!(object(&reports, "cut.gz!cut").status, Status::Partial);

    let members = zip_of(&[("1.txt", b"a"), ("2.txt", b"b"), ("3.txt", b"c")]);
    let reports = collect(&discovery(Limits::default().max_members(2)), "m.zip", &members);
    assert_eq!(object(&reports, "m.zip").status, Status::Partial);
    assert!(reports.iter().all(|r| r.path != "m.zip!3.txt"));
    // Tar stops at the same limits as zip.
    let members = tar_of(&[("1.txt", b"a"), ("2.txt", b"b"), ("3.txt", b"c")]);
    let reports = collect(&discovery(Limits::default().max_members(2)), "m.tar", &members);
    assert_eq!(object(&reports, "m.tar").status, Status::Partial);
    assert!(reports.iter().any(|r| r.path == "m.tar!2.txt"));
    assert!(reports.iter().all(|r| r.path != "m.tar!3.txt"));
}

fn encode(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
    let (bytes, _, errors) = encoding.encode(text);
    assert!(!errors);
    bytes.into_owned()
}

#[test]
fn legacy_encodings_map_back_to_raw_offsets() {
    let card = luhn_complete("3540", 16);
    let text = format!("お客様各位\nご注文ありがとうございます。\nカード番号：{card}\n");
    let cases: Vec<(Vec<u8>, TextEncoding)> = vec![
        (encode(&text, encoding_rs::SHIFT_JIS), TextEncoding::ShiftJis),
        (encode(&text, encoding_rs::EUC_JP), TextEncoding::EucJp),
        (encode(&text, encoding_rs::ISO_2022_JP), TextEncoding::Iso2022Jp),
        (
            [
                &[0xFF, 0xFE][..],
                &text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<_>>(),
            ]
            .concat(),
            TextEncoding::Utf16Le,
        ),
        (
            [
                &[0xFE, 0xFF][..],
                &text.encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<_>>(),
            ]
            .concat(),
            TextEncoding::Utf16Be,
        ),
    ];
    for (bytes, encoding) in cases {
        for chunk in [4096, 8 << 20] {
            let reports = collect(&discovery(Limits::default().chunk(chunk)), "mail.txt", &bytes);
            let r = object(&reports, "mail.txt");
            assert_eq!(r.encoding, Some(encoding));
            let found = cards(r);
            assert_eq!(found.len(), 1, "{encoding:?}");
            let loc = &found[0].locator;
            assert_eq!(loc.line, 3, "{encoding:?}");
            assert_eq!(loc.column, 7, "{encoding:?}");
            // The raw bytes at the locator decode to the planted digits.
            let raw = &bytes[loc.byte_offset..loc.byte_offset + loc.byte_len];
            let (decoded, _, _) = match encoding {
                TextEncoding::Utf16Le => encoding_rs::UTF_16LE.decode(raw),
                TextEncoding::Utf16Be => encoding_rs::UTF_16BE.decode(raw),
                TextEncoding::ShiftJis => encoding_rs::SHIFT_JIS.decode(raw),
                TextEncoding::EucJp => encoding_rs::EUC_JP.decode(raw),
                _ => encoding_rs::ISO_2022_JP.decode(raw),
            };
            assert!(
                decoded == card.as_str(),
                "{encoding:?}: locator does not point at the value"
            );
        }
    }
}

/// A plain-text document of many lines with planted values, for chunking tests.
fn long_document(lines: usize) -> (String, Vec<usize>) {
    let mut s = String::new();
    let mut offsets = Vec::new();
    for i in 0..lines {
        if i % 37 == 5 {
            let card = luhn_complete(["4532", "5412", "3569"][i % 3], 16);
            s.push_str(&format!("行{i}: お支払いカード {} を登録\n", card));
            offsets.push(s.rfind(card.as_str()).expect("planted"));
        } else {
            s.push_str(&format!(
                "行{i}: 本日は晴天なり。在庫 {} 点、価格 {} 円。\n",
                i % 50,
                i * 7
            ));
        }
    }
    (s, offsets)
}

/// Lines whose values need the line before or after them: a label on its
/// own line before or after the value, an expiry date on the line after its
/// card. `kinds` picks each
/// line; the values vary with the line number.
fn cross_line_document(kinds: &[u8]) -> String {
    let mut s = String::new();
    for (i, kind) in kinds.iter().enumerate() {
        let n = i % 9000 + 1000;
        match kind % 6 {
            0 => s.push_str(&format!("セキュリティコード\n{}\n", 100 + i % 900)),
            1 => {
                let card = luhn_complete(["4532", "5412", "3569"][i % 3], 16);
                s.push_str(&format!("カード\n{card}\n{:02}/{}\n", i % 12 + 1, 27 + i % 5));
            }
            2 => s.push_str(&format!("電話番号\n090-{n}-{:04}\n", i % 10_000)),
            3 => s.push_str(&format!("user{i}@example.jp 宛に送信しました\n")),
            4 => s.push_str(&format!("080-{n}-{:04}\n上記の電話番号へ\n", i % 10_000)),
            _ => s.push_str(&format!(
                "本日は晴天なり。在庫 {} 点、価格 {} 円。\n",
                i % 50,
                i * 7
            )),
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Chunking never changes what is found or where.
    #[test]
    fn chunk_size_does_not_change_findings(chunk in 4096usize..40_000, lines in 200usize..1500) {
        let (doc, offsets) = long_document(lines);
        let whole = collect(&discovery(Limits::default()), "doc.txt", doc.as_bytes());
        let chunked = collect(&discovery(Limits::default().chunk(chunk)), "doc.txt", doc.as_bytes());
        let locs = |r: &[ObjectReport]| -> Vec<(usize, usize, usize)> {
            cards(&r[0]).iter().map(|f| (f.locator.byte_offset, f.locator.line, f.locator.column)).collect()
        };
        prop_assert_eq!(locs(&whole), locs(&chunked));
        let found: Vec<usize> = locs(&whole).into_iter().map(|l| l.0).collect();
        prop_assert_eq!(found, offsets);
    }

    /// Where pieces fall changes no finding, nor its confidence, even when
    /// its context is on the line before or after (each piece is scanned
    /// with whole lines around it): in UTF-8, Shift_JIS and UTF-16.
    #[test]
    fn pieces_do_not_change_findings_that_need_the_next_line(
        kinds in proptest::collection::vec(any::<u8>(), 150..700),
        chunk in 4096usize..12_000,
    ) {
        let doc = cross_line_document(&kinds);
        let utf16: Vec<u8> = [&[0xFF, 0xFE][..], &doc.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<_>>()].concat();
        for bytes in [doc.as_bytes().to_vec(), encode(&doc, encoding_rs::SHIFT_JIS), utf16] {
            let whole = collect(&discovery(Limits::default()), "doc.txt", &bytes);
            let pieces = collect(&discovery(Limits::default().chunk(chunk)), "doc.txt", &bytes);
            let (whole, pieces) = (object(&whole, "doc.txt"), object(&pieces, "doc.txt"));
            prop_assert!(whole.findings.iter().any(|f| f.category == Category::Expiry));
            prop_assert!(whole.findings.iter().any(|f| f.category == Category::SecurityCode));
            prop_assert_eq!(&whole.findings, &pieces.findings);
            prop_assert_eq!(pieces.status, Status::Complete);
        }
    }

    /// CSV rows and headers survive chunking, quoted line breaks included.
    #[test]
    fn csv_rows_survive_chunking(chunk in 4096usize..20_000, rows in 100usize..800) {
        let mut csv = String::from("id,note,カード番号\n");
        let mut expected = Vec::new();
        for i in 0..rows {
            let card = luhn_complete("4916", 16);
            let note = if i % 3 == 0 { "\"複数行の\nメモ\"" } else { "memo" };
            if i % 11 == 0 {
                csv.push_str(&format!("{i},{note},{card}\n"));
                expected.push(i + 2);
            } else {
                csv.push_str(&format!("{i},{note},\n"));
            }
        }
        let reports = collect(&discovery(Limits::default().chunk(chunk)), "o.csv", csv.as_bytes());
        let rows_found: Vec<usize> = cards(&reports[0])
            .iter()
            .map(|f| f.locator.record.as_ref().map_or(0, |r| r.row))
            .collect();
        prop_assert_eq!(rows_found, expected);
        prop_assert!(cards(&reports[0]).iter().all(|f| f.locator.record.as_ref().and_then(|r| r.header.as_deref()) == Some("カード番号")));
    }

    /// Arbitrary bytes, under any name, never panic and always end in reports.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), name in "[a-z]{1,8}\\.(zip|gz|csv|txt|tar|eml|mbox|docx|xlsx)") {
        let reports = collect(&discovery(Limits::default().chunk(4096)), &name, &bytes);
        prop_assert!(!reports.is_empty());
    }
}

#[test]
fn a_line_longer_than_a_chunk_is_partial_with_columns_kept() {
    let card = luhn_complete("4539", 16);
    let line = format!("{} カード番号 {card} end\n", "あ".repeat(3000));
    let reports = collect(
        &discovery(Limits::default().chunk(4096)),
        "long.txt",
        line.as_bytes(),
    );
    let r = &reports[0];
    assert_eq!(r.status, Status::Partial);
    let found = cards(r);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].locator.byte_offset,
        line.find(card.as_str()).expect("planted")
    );
    assert_eq!(found[0].locator.column, 3000 + 8);
}

#[test]
fn headers_holding_values_are_not_printed() {
    // A file without a real header: its first row is data that happens to
    // hold a header keyword. The "header" of the phone column is an e-mail
    // address here and must not reach the output.
    let csv = "taro@example.com,電話番号\nhanako@example.org,090-1234-5678\n";
    let reports = collect(&discovery(Limits::default()), "x.csv", csv.as_bytes());
    for f in &reports[0].findings {
        if let Some(rec) = &f.locator.record {
            assert!(rec.header.as_deref() != Some("taro@example.com"));
        }
    }
    assert!(reports[0].findings.iter().any(|f| f.category == Category::Phone));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever is planted and however it is written, no output format
    /// carries the raw value: only masks and fingerprints.
    #[test]
    fn no_format_carries_a_planted_value(
        seeds in proptest::collection::vec((0usize..4, 0u64..1_000_000_000, "[a-z][a-z0-9]{7,12}"), 1..8),
        csv in any::<bool>(),
    ) {
        let mut text = String::from("氏名,電話番号,email,カード番号\n");
        let mut raw: Vec<String> = Vec::new();
        for (style, n, local) in &seeds {
            let card = luhn_complete(&format!("45{:06}", n % 1_000_000), 16);
            let written = match style {
                0 => card.clone(),
                1 => format!("{} {} {} {}", &card[..4], &card[4..8], &card[8..12], &card[12..]),
                2 => format!("{}-{}-{}-{}", &card[..4], &card[4..8], &card[8..12], &card[12..]),
                _ => card.chars().map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c)).collect(),
            };
            let phone = format!("090{:08}", n % 100_000_000);
            let email = format!("{local}@example.com");
            text.push_str(&format!("山田 太郎,{phone},{email},{written}\n"));
            raw.extend([card, written, phone, local.clone()]);
        }
        let name = if csv { "orders.csv" } else { "orders.txt" };
        let d = discovery(Limits::default());
        let mut found_cards = 0;
        d.scan_reader(name, &mut Cursor::new(text.as_bytes()), &mut |r| {
            found_cards += r.findings.iter().filter(|f| f.category == Category::Card).count();
        });
        prop_assert_eq!(found_cards, seeds.len(), "every planted card is found");
        for format in [report::Format::Human, report::Format::Jsonl, report::Format::Csv, report::Format::Sarif] {
            let d = discovery(Limits::default());
            let mut out = Vec::new();
            let mut w = report::ReportWriter::new(format, &mut out).expect("writer");
            d.scan_reader(name, &mut Cursor::new(text.as_bytes()), &mut |r| w.object(&r).expect("write"));
            w.finish().expect("finish");
            let printed = String::from_utf8(out).expect("utf-8 output");
            for (i, value) in raw.iter().enumerate() {
                prop_assert!(!printed.contains(value.as_str()), "format {:?}: planted value #{} printed", format, i);
            }
        }
    }
}

/// An xlsx whose first sheet has `rows` (row number, cells as (column letter, text)).
fn xlsx_of(rows: &[(u32, &[(&str, &str)])]) -> Vec<u8> {
    let mut shared: Vec<String> = Vec::new();
    let mut sheet = String::from("<worksheet><sheetData>");
    for (r, cells) in rows {
        sheet.push_str(&format!("<row r=\"{r}\">"));
        for (col, text) in *cells {
            shared.push((*text).to_owned());
            sheet.push_str(&format!(
                "<c r=\"{col}{r}\" t=\"s\"><v>{}</v></c>",
                shared.len() - 1
            ));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let sst: String = shared.iter().map(|s| format!("<si><t>{s}</t></si>")).collect();
    let sst = format!("<sst>{sst}</sst>");
    zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ("xl/sharedStrings.xml", sst.as_bytes()),
    ])
}

#[test]
fn docx_text_is_scanned_by_paragraph() {
    let card = luhn_complete("4539", 16);
    let para = format!("カード番号：{card}");
    let docx = docx_of(&["ご注文ありがとうございます。", &para]);
    let reports = collect(&discovery(Limits::default()), "letter.docx", &docx);
    let part = object(&reports, "letter.docx!word/document.xml");
    assert_eq!(part.kind, ObjectKind::Docx);
    let found = cards(part);
    assert_eq!(found.len(), 1, "a card split over two runs is found whole");
    assert_eq!((found[0].locator.line, found[0].locator.column), (2, 7));
    assert_eq!(found[0].confidence, Confidence::High);
    assert_eq!(found[0].locator.byte_len, 16);
}

#[test]
fn xlsx_cells_have_sheet_rows_columns_and_headers() {
    let card = luhn_complete("3569", 16);
    let xlsx = xlsx_of(&[
        (1, &[("A", "氏名"), ("B", "電話番号"), ("D", "カード番号")]),
        (4, &[("A", "山田 太郎"), ("B", "090-1234-5678"), ("D", &card)]),
    ]);
    let reports = collect(&discovery(Limits::default()), "orders.xlsx", &xlsx);
    let sheet = object(&reports, "orders.xlsx!xl/worksheets/sheet1.xml");
    assert_eq!(sheet.kind, ObjectKind::Xlsx);
    assert!(reports.iter().all(|r| !r.path.ends_with("sharedStrings.xml")));
    let found = cards(sheet);
    assert_eq!(found.len(), 1);
    let rec = found[0].locator.record.as_ref().expect("cell");
    assert_eq!(
        (rec.row, rec.field, rec.header.as_deref()),
        (4, 4, Some("カード番号"))
    );
    assert_eq!((found[0].locator.line, found[0].locator.column), (4, 4));
    let names: Vec<_> = sheet
        .findings
        .iter()
        .filter(|f| f.category == Category::Name)
        .collect();
    assert_eq!(names.len(), 1);
    assert_eq!(
        names[0].locator.record.as_ref().map(|r| (r.row, r.field)),
        Some((4, 1))
    );
    assert!(sheet.findings.iter().any(|f| f.category == Category::Phone));
}

#[test]
fn broken_office_parts_are_reported() {
    let bad = zip_of(&[("word/document.xml", b"<w:p><w:t>unclosed</w:x>")]);
    let reports = collect(&discovery(Limits::default()), "bad.docx", &bad);
    let part = object(&reports, "bad.docx!word/document.xml");
    assert_eq!(part.status, Status::Skipped);
    assert!(
        part.reason
            .as_deref()
            .is_some_and(|r| r.contains("malformed XML"))
    );
}

/// A multipart message: a quoted-printable body and a base64 attachment.
pub(crate) fn mail_with_attachment(body: &str, filename: &str, attachment: &[u8]) -> String {
    let qp: String = body
        .bytes()
        .map(|b| {
            if b.is_ascii_graphic() && b != b'=' || b == b' ' {
                char::from(b).to_string()
            } else if b == b'\n' {
                "\r\n".into()
            } else {
                format!("={b:02X}")
            }
        })
        .collect();
    format!(
        "From: shop@example.com\r\nTo: staff@example.com\r\nSubject: orders\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n\
         --XYZ\r\nContent-Type: text/csv; name=\"{filename}\"\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--XYZ--\r\n",
        base64(attachment)
    )
}

#[test]
fn mail_bodies_and_attachments_are_decoded_and_located() {
    let card = luhn_complete("4539", 16);
    let csv = orders_csv(&card);
    let eml = mail_with_attachment(
        "担当者様\n電話番号：090-8765-4321 までご連絡ください。\n",
        "orders.csv",
        csv.as_bytes(),
    );
    let reports = collect(&discovery(Limits::default()), "inbox/order.eml", eml.as_bytes());
    assert_eq!(object(&reports, "inbox/order.eml").kind, ObjectKind::Mail);
    let body = object(&reports, "inbox/order.eml!part1.txt");
    let phones: Vec<_> = body
        .findings
        .iter()
        .filter(|f| f.category == Category::Phone)
        .collect();
    assert_eq!(phones.len(), 1, "quoted-printable body decoded");
    assert_eq!(phones[0].locator.line, 2);
    let attachment = object(&reports, "inbox/order.eml!orders.csv");
    assert_eq!(attachment.kind, ObjectKind::Csv);
    let found = cards(attachment);
    assert_eq!(found.len(), 1, "base64 attachment decoded");
    assert_eq!(
        found[0].locator.byte_offset,
        csv.find(card.as_str()).expect("planted")
    );
    let rec = found[0].locator.record.as_ref().expect("row");
    assert_eq!((rec.row, rec.header.as_deref()), (3, Some("カード番号")));
}

#[test]
fn mailboxes_number_their_messages() {
    let card = luhn_complete("5412", 16);
    let mbox = format!(
        "From a@example.com Mon Jan  5 10:00:00 2026\nSubject: hello\n\nnothing here\n\n\
         From b@example.com Mon Jan  5 11:00:00 2026\nSubject: card\n\nカード番号 {card}\n"
    );
    let reports = collect(&discovery(Limits::default()), "Inbox.mbox", mbox.as_bytes());
    assert!(cards(object(&reports, "Inbox.mbox!1!part1.txt")).is_empty());
    assert_eq!(cards(object(&reports, "Inbox.mbox!2!part1.txt")).len(), 1);
    assert_eq!(object(&reports, "Inbox.mbox").status, Status::Complete);
}

#[test]
fn deeply_nested_mime_is_not_parsed() {
    let mut eml = String::from("MIME-Version: 1.0\r\n");
    for i in 0..100 {
        eml.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    let reports = collect(&discovery(Limits::default()), "deep.eml", eml.as_bytes());
    let r = object(&reports, "deep.eml");
    assert_eq!(r.status, Status::Partial);
    assert!(r.reason.as_deref().is_some_and(|x| x.contains("MIME boundaries")));
}

fn odf_of(body: &str) -> Vec<u8> {
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><office:document-content xmlns:office=\"o\" xmlns:text=\"t\" xmlns:table=\"b\"><office:body>{body}</office:body></office:document-content>"
    );
    zip_of(&[
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", b"<manifest/>"),
        ("content.xml", content.as_bytes()),
    ])
}

#[test]
fn opendocument_text_and_tables_are_located() {
    let card = luhn_complete("3528", 16);
    let odt = odf_of(&format!(
        "<office:text><text:p>ご注文の控え</text:p><text:p>カード番号：<text:span>{}</text:span>{}</text:p></office:text>",
        &card[..8],
        &card[8..]
    ));
    let reports = collect(&discovery(Limits::default()), "letter.odt", &odt);
    let text = object(&reports, "letter.odt!content.xml");
    assert_eq!(text.kind, ObjectKind::Odf);
    let found = cards(text);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].locator.line, found[0].locator.column), (2, 7));

    let ods = odf_of(&format!(
        "<office:spreadsheet><table:table table:name=\"注文\"><table:table-row><table:table-cell><text:p>氏名</text:p></table:table-cell><table:table-cell table:number-columns-repeated=\"2\"/><table:table-cell><text:p>カード番号</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated=\"3\"><table:table-cell/></table:table-row><table:table-row><table:table-cell><text:p>鈴木 一郎</text:p></table:table-cell><table:table-cell table:number-columns-repeated=\"2\"/><table:table-cell><text:p>{card}</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>"
    ));
    let reports = collect(&discovery(Limits::default()), "book.ods", &ods);
    let sheet = object(&reports, "book.ods!content.xml#注文");
    assert_eq!(sheet.kind, ObjectKind::OdfTable);
    let found = cards(sheet);
    assert_eq!(found.len(), 1);
    let rec = found[0].locator.record.as_ref().expect("cell");
    assert_eq!(
        (rec.row, rec.field, rec.header.as_deref()),
        (5, 4, Some("カード番号"))
    );
    assert!(sheet.findings.iter().any(|f| f.category == Category::Name));
}

#[test]
fn card_numbers_in_names_are_masked() {
    use crate::mask_card_numbers as mask;
    // Built at run time so the source holds no card number either.
    let pan = format!("4111{}", "111111111111");
    assert_eq!(mask(format!("orders/{pan}.csv")), "orders/411111••••••1111.csv");
    let grouped = format!("{} {} {} {}", &pan[..4], &pan[4..8], &pan[8..12], &pan[12..]);
    assert_eq!(
        mask(format!("a.zip!{grouped}.txt")),
        "a.zip!4111 11•• •••• 1111.txt"
    );
    let wide: String = pan
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c))
        .collect();
    assert!(!mask(wide.clone()).contains(&wide[..]));
    // Not a card number: wrong check digit, too short, order numbers.
    for keep in [
        format!("4111{}", "111111111112"),
        "2024-12-04".to_owned(),
        "order-123456789".to_owned(),
    ] {
        assert_eq!(mask(keep.clone()), keep);
    }
}

#[test]
fn reports_never_name_a_card_number_from_a_file_name() {
    let pan = format!("5555{}", "555555554444");
    let reports = collect(
        &discovery(Limits::default()),
        &format!("{pan}.txt"),
        b"nothing here",
    );
    assert!(
        reports.iter().all(|r| !r.path.contains(&pan)),
        "a report named the card number"
    );
}

/// A reader that moves the (test) clock forward by `step` at every read and
/// hands out at most `per_read` bytes: a slow source, without sleeping.
struct SlowReader<'a> {
    data: &'a [u8],
    per_read: usize,
    step: Duration,
}

impl std::io::Read for SlowReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        clock::advance(self.step);
        let n = buf.len().min(self.per_read).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn time_limited(r: &ObjectReport) -> bool {
    r.status == Status::Partial
        && r.reason
            .as_deref()
            .is_some_and(|x| x.starts_with(TIME_LIMIT) && x.contains("60 s"))
}

#[test]
fn a_slow_input_stops_at_the_time_limit_with_what_was_read() {
    // 40 lines of 100 bytes per 4 KiB: a card on line 2 and on line 300.
    let early = luhn_complete("4539", 16);
    let late = luhn_complete("5412", 16);
    let mut text = String::new();
    for i in 1..=400 {
        let line = match i {
            2 => format!("カード番号 {early}"),
            300 => format!("カード番号 {late}"),
            _ => format!("行{i}: 本日は晴天なり"),
        };
        text.push_str(&format!("{line:<99}\n"));
    }
    let limits = Limits::default()
        .chunk(4096)
        .file_timeout(Some(Duration::from_secs(60)));
    let d = discovery(limits);
    let mut reports = Vec::new();
    // Each read takes "25 s": the third read (into the second chunk) is the
    // last one before the time is up.
    let mut slow = SlowReader {
        data: text.as_bytes(),
        per_read: 4096,
        step: Duration::from_secs(25),
    };
    d.scan_reader("slow.txt", &mut slow, &mut |r| reports.push(r));
    let r = object(&reports, "slow.txt");
    assert!(time_limited(r), "{:?} {:?}", r.status, r.reason);
    assert!(r.bytes > 4096 && r.bytes < 3 * 4096, "{}", r.bytes);
    let found = cards(r);
    assert_eq!(found.len(), 1, "only the card read before the limit");
    assert_eq!(found[0].locator.line, 2);

    // The next input has its own limit and is read whole.
    let reports = collect(&d, "next.txt", text.as_bytes());
    assert_eq!(object(&reports, "next.txt").status, Status::Complete);
    assert_eq!(cards(object(&reports, "next.txt")).len(), 2);

    // No limit: the same slow reader is read to its end.
    let d = discovery(Limits::default().chunk(4096).file_timeout(None));
    let mut slow = SlowReader {
        data: text.as_bytes(),
        per_read: 4096,
        step: Duration::from_secs(3600),
    };
    let mut reports = Vec::new();
    d.scan_reader("slow.txt", &mut slow, &mut |r| reports.push(r));
    assert_eq!(object(&reports, "slow.txt").status, Status::Complete);
    assert_eq!(cards(object(&reports, "slow.txt")).len(), 2);
}

#[test]
fn archive_members_after_the_time_limit_are_not_read() {
    let card = luhn_complete("4539", 16);
    let text = format!("カード番号 {card}\n");
    let zip = zip_of(&[
        ("1.txt", text.as_bytes()),
        ("2.txt", text.as_bytes()),
        ("3.txt", text.as_bytes()),
    ]);
    let tar = tar_of(&[("1.txt", text.as_bytes()), ("2.txt", text.as_bytes())]);
    let d = discovery(Limits::default().file_timeout(Some(Duration::from_secs(60))));
    for (name, bytes) in [("a.zip", &zip), ("a.tar", &tar)] {
        let mut reports = Vec::new();
        // The first member takes "61 s".
        d.scan_reader(name, &mut Cursor::new(bytes), &mut |r| {
            if r.path.ends_with("!1.txt") {
                clock::advance(Duration::from_secs(61));
            }
            reports.push(r);
        });
        assert_eq!(
            object(&reports, &format!("{name}!1.txt")).status,
            Status::Complete
        );
        assert_eq!(cards(object(&reports, &format!("{name}!1.txt"))).len(), 1);
        assert!(reports.iter().all(|r| !r.path.ends_with("!2.txt")), "{name}");
        let archive = object(&reports, name);
        assert!(time_limited(archive), "{name}: {:?}", archive.reason);
    }
}

#[test]
fn xml_parsers_return_early_once_the_time_is_up() {
    let xml = "<w:p><w:t>a</w:t></w:p>".repeat(10_000);
    let up = Deadline::after(Some(Duration::ZERO));
    assert!(
        office::paragraph_text(&xml, &up, usize::MAX)
            .expect("parse")
            .is_empty()
    );
    assert_eq!(
        office::paragraph_text(&xml, &Deadline::none(), usize::MAX)
            .expect("parse")
            .len(),
        20_000
    );
    let ods = "<table:table table:name=\"t\"><table:table-row><table:table-cell><text:p>x</text:p></table:table-cell></table:table-row></table:table>";
    assert!(
        office::odf_content(ods, &up, usize::MAX)
            .expect("parse")
            .tables
            .is_empty()
    );
    let shared = office::SharedStrings::default();
    let mut sheet = office::SheetReader::new(
        &b"<row r=\"1\"><c><v>1</v></c></row>"[..],
        &shared,
        &up,
        usize::MAX,
    );
    let mut tsv = String::new();
    std::io::Read::read_to_string(&mut sheet, &mut tsv).expect("parse");
    assert!(tsv.is_empty());
}

#[test]
fn pdf_text_is_located_by_page() {
    let card = luhn_complete("4539", 16);
    let line = format!("Card number: {card}");
    let pdf = pdf_of(&[
        &["Order confirmation", "Thank you for your order."],
        &["Payment", &line, "Tel 090-1234-5678"],
    ]);
    let zip = zip_of(&[("2024/receipt.pdf", &pdf)]);
    for (name, bytes, path) in [
        ("receipt.pdf", &pdf, "receipt.pdf"),
        ("docs.zip", &zip, "docs.zip!2024/receipt.pdf"),
    ] {
        let reports = collect(&discovery(Limits::default()), name, bytes);
        let r = object(&reports, path);
        assert_eq!(r.kind, ObjectKind::Pdf);
        assert_eq!(r.status, Status::Complete, "{:?}", r.reason);
        assert_eq!(r.bytes, pdf.len() as u64);
        let found = cards(r);
        assert_eq!(found.len(), 1);
        let loc = &found[0].locator;
        assert_eq!(loc.page, Some(2));
        assert_eq!((loc.line, loc.column), (2, 14));
        // Page 2's text is "Payment\n" then the line.
        assert_eq!((loc.byte_offset, loc.byte_len), (8 + 13, 16));
        let phones: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.category == Category::Phone)
            .collect();
        assert_eq!(phones.len(), 1);
        assert_eq!((phones[0].locator.page, phones[0].locator.line), (Some(2), 3));
    }
}

#[test]
fn files_attached_to_pdfs_are_objects_of_their_own() {
    let card = luhn_complete("4539", 16);
    let csv = orders_csv(&card);
    let zip = zip_of(&[("2024/orders.csv", csv.as_bytes())]);
    let note = format!("カード番号 {card}");
    let pdf = pdf_with_files(
        &[&["Invoice"]],
        &[("orders.csv", csv.as_bytes()), ("メモ.txt", note.as_bytes())],
        &[("more.zip", &zip)],
    );
    let reports = collect(&discovery(Limits::default()), "invoice.pdf", &pdf);
    let r = object(&reports, "invoice.pdf");
    assert_eq!(
        (r.kind, r.status),
        (ObjectKind::Pdf, Status::Complete),
        "{:?}",
        r.reason
    );
    assert!(cards(r).is_empty(), "the page holds no card");
    for path in ["invoice.pdf!orders.csv", "invoice.pdf!more.zip!2024/orders.csv"] {
        let csv = object(&reports, path);
        assert_eq!((csv.kind, csv.status), (ObjectKind::Csv, Status::Complete));
        let found = cards(csv);
        assert_eq!(found.len(), 1, "{path}");
        let rec = found[0].locator.record.as_ref().expect("record");
        assert_eq!(
            (rec.row, rec.header.as_deref()),
            (3, Some("カード番号")),
            "{path}"
        );
    }
    let memo = object(&reports, "invoice.pdf!メモ.txt");
    assert_eq!(cards(memo)[0].locator.column, 7);
    // The PDF's report comes after its attachments'.
    assert_eq!(reports.last().map(|r| r.path.as_str()), Some("invoice.pdf"));

    // Past the depth limit the attachments are not read, and the PDF says so.
    let in_zip = zip_of(&[("invoice.pdf", &pdf)]);
    let reports = collect(&discovery(Limits::default().max_depth(1)), "docs.zip", &in_zip);
    let r = object(&reports, "docs.zip!invoice.pdf");
    assert_eq!(r.status, Status::Partial);
    assert!(r.reason.as_deref().unwrap_or("").contains("deeper than 1 levels"));
    assert!(
        !reports
            .iter()
            .any(|r| r.path.starts_with("docs.zip!invoice.pdf!"))
    );
    // The member limit counts attached files.
    let reports = collect(&discovery(Limits::default().max_members(1)), "invoice.pdf", &pdf);
    let r = object(&reports, "invoice.pdf");
    assert_eq!(r.status, Status::Partial);
    assert_eq!(reports.len(), 2, "one attachment, then the PDF");
}

#[test]
fn unreadable_and_encrypted_pdfs_are_skipped_with_a_reason() {
    let reason = |bytes: &[u8]| {
        let reports = collect(&discovery(Limits::default()), "x.pdf", bytes);
        let r = object(&reports, "x.pdf");
        (r.status, r.reason.clone().unwrap_or_default())
    };
    let (status, why) = reason(b"%PDF-1.7\nnothing of a PDF here\n");
    assert_eq!(status, Status::Skipped);
    assert!(why.starts_with("pdf_unreadable"), "{why}");

    // An /Encrypt dictionary whose empty user password does not check out.
    let enc = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n\
3 0 obj\n<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 \
/O <00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff> \
/U <ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100> >>\nendobj\n\
trailer\n<< /Root 1 0 R /Encrypt 3 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\n%%EOF\n";
    let (status, why) = reason(enc);
    assert_eq!(status, Status::Skipped);
    assert!(why.starts_with("pdf_encrypted"), "{why}");

    let limits = Limits::default().max_in_memory(1024);
    let lines = ["x"; 10];
    let pages: Vec<&[&str]> = vec![&lines[..]; 100];
    let big = pdf_of(&pages);
    assert!(big.len() > 4096);
    let reports = collect(&discovery(limits), "big.pdf", &big);
    assert_eq!(object(&reports, "big.pdf").status, Status::Skipped);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A damaged PDF (bytes flipped, cut short) never panics the scan and is
    /// always reported, with a reason whenever it is not complete.
    #[test]
    fn damaged_pdfs_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16),
        cut in any::<usize>(),
    ) {
        let card = luhn_complete("4539", 16);
        let mut pdf = pdf_of(&[&["Order", &format!("Card number: {card}")], &["Tel 090-1234-5678"]]);
        for (at, byte) in flips {
            let i = at % pdf.len();
            pdf[i] = byte;
        }
        let keep = 5 + cut % pdf.len().saturating_sub(4);
        pdf.truncate(keep);
        let reports = collect(&discovery(Limits::default()), "x.pdf", &pdf);
        prop_assert_eq!(reports.len(), 1);
        prop_assert!(reports[0].status == Status::Complete || reports[0].reason.is_some());
    }
}

#[test]
fn a_hand_written_pdf_is_read_too() {
    // The fuzz seed: an uncompressed PDF written by hand, not by lopdf, with
    // a public test card number on its only page.
    let seed = include_bytes!("../../../fuzz/corpus/scan_containers/pdf");
    let reports = collect(&discovery(Limits::default()), "seed.pdf", &seed[1..]);
    let r = object(&reports, "seed.pdf");
    assert_eq!((r.kind, r.status), (ObjectKind::Pdf, Status::Complete));
    let found = cards(r);
    assert_eq!(found.len(), 1);
    assert!(found[0].test_value);
    assert_eq!(found[0].masked, "4111 11•• •••• 1111");
    assert_eq!(
        (
            found[0].locator.page,
            found[0].locator.line,
            found[0].locator.column
        ),
        (Some(1), 2, 14)
    );
}

#[test]
fn pptx_slides_are_located_by_their_place_in_the_show() {
    let card = luhn_complete("3528", 16);
    let line = format!("カード番号：{card}");
    let pptx = pptx_of(&[
        &["ご注文ありがとうございます"],
        &["お支払い情報", &line],
        &["以上"],
    ]);
    let reports = collect(&discovery(Limits::default()), "deck.pptx", &pptx);
    // Show slide 2 of 3 is stored as slide2.xml (parts numbered backwards).
    let slide = object(&reports, "deck.pptx!ppt/slides/slide2.xml");
    assert_eq!(slide.kind, ObjectKind::Pptx);
    assert_eq!(slide.status, Status::Complete);
    let found = cards(slide);
    assert_eq!(found.len(), 1, "a card split over two runs is found whole");
    let loc = &found[0].locator;
    assert_eq!((loc.page, loc.line, loc.column), (Some(2), 2, 7));
    assert_eq!(found[0].confidence, Confidence::High);
    assert_eq!(object(&reports, "deck.pptx").status, Status::Complete);

    // Show slide 1 is slide3.xml: a finding there is on page 1.
    let phone = "090-1234-5678";
    let pptx = pptx_of(&[&[&format!("電話番号 {phone}")], &["-"], &["-"]]);
    let reports = collect(&discovery(Limits::default()), "deck.pptx", &pptx);
    let first = object(&reports, "deck.pptx!ppt/slides/slide3.xml");
    let pages: Vec<_> = first.findings.iter().map(|f| f.locator.page).collect();
    assert_eq!(pages, vec![Some(1)]);

    // Without a readable slide list, the part's number stands in.
    let mut broken = pptx_of(&[&[&line]]);
    let reports = collect(&discovery(Limits::default()), "deck.pptx", &broken);
    assert_eq!(
        cards(object(&reports, "deck.pptx!ppt/slides/slide1.xml"))[0]
            .locator
            .page,
        Some(1)
    );
    broken = zip_of(&[
        (
            "ppt/presentation.xml",
            b"<p:presentation><unclosed></p:presentation>",
        ),
        ("ppt/_rels/presentation.xml.rels", b"<Relationships/>"),
        (
            "ppt/slides/slide4.xml",
            format!("<a:p><a:t>{line}</a:t></a:p>").as_bytes(),
        ),
    ]);
    let reports = collect(&discovery(Limits::default()), "deck.pptx", &broken);
    assert_eq!(
        cards(object(&reports, "deck.pptx!ppt/slides/slide4.xml"))[0]
            .locator
            .page,
        Some(4)
    );
    assert_eq!(object(&reports, "deck.pptx").status, Status::Partial);
}

/// Line (1-based) and column (1-based, characters) of `needle` in `text`.
fn line_column(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).expect("planted");
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (
        text[..at].matches('\n').count() + 1,
        text[line_start..at].chars().count() + 1,
    )
}

/// A card found in a dump: table, row, field, column name, line, column, byte offset.
/// (table, row, field, header, line, column, byte offset) of each card finding.
pub(crate) type SqlCard = (String, usize, usize, Option<String>, usize, usize, usize);

pub(crate) fn sql_cards(r: &ObjectReport) -> Vec<SqlCard> {
    sql_places(r, Category::Card)
}

/// Where each finding of `category` is: table, row, field, header, line,
/// column, byte offset.
pub(crate) fn sql_places(r: &ObjectReport, category: Category) -> Vec<SqlCard> {
    r.findings
        .iter()
        .filter(|f| f.category == category)
        .map(|f| {
            let rec = f.locator.record.as_ref().expect("record");
            (
                rec.table.clone().unwrap_or_default(),
                rec.row,
                rec.field,
                rec.header.clone(),
                f.locator.line,
                f.locator.column,
                f.locator.byte_offset,
            )
        })
        .collect()
}

#[test]
fn insert_select_rows_of_literals_are_read_and_selects_from_tables_are_not() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    let third = luhn_complete("5412", 16);
    let dump = format!(
        "INSERT INTO public.cards (id, card_number) SELECT 1, '{card}' AS c UNION ALL SELECT 2, NULL;\n\
         INSERT INTO public.cards (id, card_number) SELECT id, '{other}' FROM staging WHERE x = 1;\n\
         INSERT INTO public.cards (id, card_number) SELECT DISTINCT 3, '{third}'::text\n  \
         WHERE NOT EXISTS (SELECT 1 FROM public.cards WHERE id = 3) ON CONFLICT DO NOTHING;\n\
         INSERT INTO public.cards (id, card_number) (SELECT 4, '{other}');\n"
    );
    let reports = collect(&discovery(Limits::default()), "seed.sql", dump.as_bytes());
    let r = object(&reports, "seed.sql");
    assert_eq!(r.status, Status::Complete);
    let at = |needle: &str| {
        let (line, column) = line_column(&dump, needle);
        let header = Some("card_number".to_owned());
        (line, column, dump.find(needle).expect("planted"), header)
    };
    let ((l1, c1, o1, h1), (l3, c3, o3, h3)) = (at(&card), at(&third));
    assert_eq!(
        sql_cards(r),
        vec![
            ("public.cards".to_owned(), 1, 2, h1, l1, c1, o1),
            ("public.cards".to_owned(), 3, 2, h3, l3, c3, o3),
        ],
        "the row read from a table and the parenthesized select are not rows of values"
    );
}

#[test]
fn pg_dump_inserts_and_copy_blocks_are_located_by_table_row_and_column() {
    let card = luhn_complete("4539", 16);
    let other = luhn_complete("3569", 16);
    let dump = format!(
        "--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n\n\
         CREATE TABLE public.customers (\n    id integer NOT NULL,\n    name text,\n    email text,\n    card_number text\n);\n\n\
         INSERT INTO public.customers (id, name, email, card_number) VALUES (1, 'O''Brien; (x)', 'taro@example.com', NULL);\n\
         INSERT INTO public.customers VALUES (2, '山田 太郎', 'hanako@example.org', '{card}');\n\n\
         COPY public.orders (id, note, tel, card_no) FROM stdin;\n\
         1\tfirst\\tline\t090-1234-5678\t\\N\n\
         2\tsecond\t\\N\t{other}\n\
         \\.\n\n\
         ALTER TABLE ONLY public.customers ADD CONSTRAINT customers_pkey PRIMARY KEY (id);\n"
    );
    let reports = collect(&discovery(Limits::default()), "backup/shop.sql", dump.as_bytes());
    let r = object(&reports, "backup/shop.sql");
    assert_eq!((r.kind, r.status), (ObjectKind::Sql, Status::Complete));
    let (line, column) = line_column(&dump, &card);
    let (line2, column2) = line_column(&dump, &other);
    assert_eq!(
        sql_cards(r),
        vec![
            (
                "public.customers".to_owned(),
                2,
                4,
                Some("card_number".to_owned()),
                line,
                column,
                dump.find(&card).expect("planted"),
            ),
            (
                "public.orders".to_owned(),
                2,
                4,
                Some("card_no".to_owned()),
                line2,
                column2,
                dump.find(&other).expect("planted"),
            ),
        ]
    );
    // Column names are context, as CSV headers are: a name column reports its cells.
    let names: Vec<(usize, Option<&str>)> = r
        .findings
        .iter()
        .filter(|f| f.category == Category::Name)
        .map(|f| {
            let rec = f.locator.record.as_ref().expect("record");
            (rec.row, rec.header.as_deref())
        })
        .collect();
    assert_eq!(names, vec![(1, Some("name")), (2, Some("name"))]);
    let phone = r
        .findings
        .iter()
        .find(|f| f.category == Category::Phone)
        .expect("phone in COPY");
    let rec = phone.locator.record.as_ref().expect("record");
    assert_eq!((rec.row, rec.field, rec.header.as_deref()), (1, 3, Some("tel")));
    assert_eq!(
        phone.locator.byte_offset,
        dump.find("090-1234-5678").expect("planted")
    );
    assert!(cards(r).iter().all(|f| f.confidence == Confidence::High));
}

#[test]
fn mysqldump_extended_inserts_take_columns_from_create_table() {
    let card = luhn_complete("5412", 16);
    let dump = format!(
        "-- MySQL dump 10.13  Distrib 8.0.36\n/*!40101 SET NAMES utf8mb4 */;\n\
         DROP TABLE IF EXISTS `orders`;\n\
         CREATE TABLE `orders` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `memo` varchar(255) DEFAULT NULL,\n  `card_number` varchar(32) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `idx` (`memo`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
         LOCK TABLES `orders` WRITE;\n\
         INSERT INTO `orders` VALUES (1,'it\\'s, \\\\ (fine)','x'),(2,'second\\nline',NULL),(3,'',\"{card}\");\n\
         UNLOCK TABLES;\n"
    );
    for chunk in [4096, 8 << 20] {
        let reports = collect(
            &discovery(Limits::default().chunk(chunk)),
            "shop.sql",
            dump.as_bytes(),
        );
        let r = object(&reports, "shop.sql");
        assert_eq!(r.status, Status::Complete);
        let (line, column) = line_column(&dump, &card);
        assert_eq!(
            sql_cards(r),
            vec![(
                "orders".to_owned(),
                3,
                3,
                Some("card_number".to_owned()),
                line,
                column,
                dump.find(&card).expect("planted")
            )]
        );
    }
}

#[test]
fn dump_rows_are_numbered_across_chunks_and_read_from_stdin() {
    let mut dump = String::from("-- PostgreSQL database dump\nCOPY t (id, card) FROM stdin;\n");
    let mut expected = Vec::new();
    for i in 1..=600 {
        if i % 50 == 0 {
            let card = luhn_complete(&format!("45{:04}", i), 16);
            dump.push_str(&format!("{i}\t{card}\n"));
            expected.push(i);
        } else {
            dump.push_str(&format!("{i}\tnone\n"));
        }
    }
    dump.push_str("\\.\n");
    let reports = collect(&discovery(Limits::default().chunk(4096)), "-", dump.as_bytes());
    let r = object(&reports, "-");
    assert_eq!(r.kind, ObjectKind::Sql, "standard input that starts like a dump");
    let rows: Vec<usize> = sql_cards(r).iter().map(|c| c.1).collect();
    assert_eq!(rows, expected);
    // The same bytes under a name that is not .sql are plain text.
    let reports = collect(&discovery(Limits::default()), "notes.txt", dump.as_bytes());
    assert_eq!(object(&reports, "notes.txt").kind, ObjectKind::Text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the other values hold (quotes, commas, parentheses,
    /// backslashes, semicolons, line breaks), planted cards are found in
    /// their rows, in both dialects.
    #[test]
    fn dump_values_with_any_quoting_keep_rows(
        notes in proptest::collection::vec("[a-z ',;()\\\\\"\n]{0,12}", 1..30),
        mysql in any::<bool>(),
    ) {
        let quote = |s: &str| {
            if mysql {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n"))
            } else {
                format!("'{}'", s.replace('\'', "''"))
            }
        };
        let mut dump = String::from(if mysql { "CREATE TABLE `t` (`note` text, `card_number` text);\nINSERT INTO `t` VALUES " } else { "INSERT INTO t (note, card_number) VALUES " });
        let mut expected = Vec::new();
        for (i, note) in notes.iter().enumerate() {
            if i > 0 {
                dump.push(',');
            }
            let card = if i % 3 == 0 {
                expected.push(i + 1);
                quote(&luhn_complete("4916", 16))
            } else {
                "NULL".to_owned()
            };
            dump.push_str(&format!("({},{card})", quote(note)));
        }
        dump.push_str(";\n");
        let reports = collect(&discovery(Limits::default()), "d.sql", dump.as_bytes());
        let rows: Vec<usize> = sql_cards(&reports[0]).iter().map(|c| c.1).collect();
        prop_assert_eq!(rows, expected);
    }

    /// Arbitrary bytes as a dump never panic or hang.
    #[test]
    fn arbitrary_dumps_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let reports = collect(&discovery(Limits::default().chunk(4096)), "x.sql", &bytes);
        prop_assert_eq!(reports.len(), 1);
    }
}

#[test]
fn table_names_holding_card_numbers_are_masked() {
    let pan = format!("4111{}", "111111111111");
    let card = luhn_complete("4539", 16);
    let dump = format!("INSERT INTO \"orders_{pan}\" (card_number) VALUES ('{card}');\n");
    let reports = collect(&discovery(Limits::default()), "x.sql", dump.as_bytes());
    let found = sql_cards(&reports[0]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "orders_411111••••••1111");
}

#[test]
fn speaker_notes_are_located_on_their_slide() {
    let card = luhn_complete("3528", 16);
    let notes = format!(
        "<p:notes xmlns:p=\"p\" xmlns:a=\"a\"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>電話でカード番号 {card} を確認</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>"
    );
    // Show order: slide2.xml, then slide1.xml; the notes belong to slide1.xml.
    let pptx = zip_of(&[
        ("ppt/presentation.xml", b"<p:presentation xmlns:p=\"p\" xmlns:r=\"r\"><p:sldIdLst><p:sldId id=\"256\" r:id=\"rId2\"/><p:sldId id=\"257\" r:id=\"rId1\"/></p:sldIdLst></p:presentation>"),
        ("ppt/_rels/presentation.xml.rels", b"<Relationships><Relationship Id=\"rId1\" Target=\"slides/slide1.xml\"/><Relationship Id=\"rId2\" Target=\"slides/slide2.xml\"/></Relationships>"),
        ("ppt/slides/slide1.xml", b"<p:sld/>"),
        ("ppt/slides/slide2.xml", b"<p:sld/>"),
        ("ppt/notesSlides/notesSlide1.xml", notes.as_bytes()),
        ("ppt/notesSlides/_rels/notesSlide1.xml.rels", b"<Relationships><Relationship Id=\"rId1\" Target=\"../notesMasters/notesMaster1.xml\"/><Relationship Id=\"rId2\" Target=\"../slides/slide1.xml\"/></Relationships>"),
    ]);
    let reports = collect(&discovery(Limits::default()), "deck.pptx", &pptx);
    let part = object(&reports, "deck.pptx!ppt/notesSlides/notesSlide1.xml");
    assert_eq!(part.kind, ObjectKind::Pptx);
    let found = cards(part);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (
            found[0].locator.page,
            found[0].locator.line,
            found[0].locator.column
        ),
        (Some(2), 1, 10)
    );
}

#[test]
fn inventory_places_dump_tables_and_pdf_pages_apart() {
    let card = luhn_complete("4539", 16);
    let dump = format!(
        "INSERT INTO a (card_number) VALUES ('{card}');\nINSERT INTO b (card_number) VALUES ('{card}'),('{card}');\n"
    );
    let line = format!("Card number: {card}");
    let pdf = pdf_of(&[&[&line], &[&line]]);
    let mut builder = inventory::InventoryBuilder::default();
    let d = discovery(Limits::default());
    for (name, bytes) in [("x.sql", dump.as_bytes()), ("y.pdf", &pdf[..])] {
        d.scan_reader(name, &mut Cursor::new(bytes), &mut |r| builder.add(&r));
    }
    let json = String::from_utf8(
        builder
            .finish(
                "2026-01-01T00:00:00Z".to_owned(),
                inventory::Parameters::default(),
                None,
            )
            .to_json(),
    )
    .expect("utf-8");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let locations: Vec<(String, Option<String>, u64)> = v["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap_or_default().to_owned(),
                l["column"].as_str().map(str::to_owned),
                l["records"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        locations,
        vec![
            ("x.sql!a".to_owned(), Some("card_number".to_owned()), 1),
            ("x.sql!b".to_owned(), Some("card_number".to_owned()), 2),
            ("y.pdf".to_owned(), None, 2),
        ]
    );
}

#[test]
fn findings_past_the_limit_make_the_object_partial_not_larger() {
    let card = luhn_complete("453201", 16);
    let text = format!("カード番号：{card}\n").repeat(50);
    // Small chunks: the cap holds across chunks, not only within one.
    let d = discovery(Limits::default().max_findings(20).chunk(4096));
    let reports = collect(&d, "many.txt", text.repeat(10).as_bytes());
    let r = object(&reports, "many.txt");
    assert_eq!(r.findings.len(), 20);
    assert_eq!(r.status, Status::Partial);
    assert!(
        r.reason
            .as_deref()
            .is_some_and(|m| m.contains("more than 20 findings"))
    );
    let all = collect(&discovery(Limits::default()), "many.txt", text.as_bytes());
    assert_eq!(object(&all, "many.txt").findings.len(), 50);
    assert_eq!(object(&all, "many.txt").status, Status::Complete);
}

/// A few bytes of XML that stand for far more text must not exhaust memory:
/// every cell of a sheet naming one long shared string, and cells in the
/// last column, each padded with 16,383 tabs. Both crashed `anshin scan`
/// (a 21 MB workbook took more than 6 GB) before the text was bounded. A
/// worksheet is now streamed, a row at a time: a row over the limit ends it
/// partial, and tab-padded rows are read as they come; an OpenDocument
/// table, read whole, is skipped once its text passes twice the part.
#[test]
fn office_text_amplification_is_bounded_not_out_of_memory() {
    let d = discovery(Limits::default().max_ratio(100_000));
    let card = luhn_complete("4539", 16);
    let long = "x".repeat(30_000);
    let row = "<c t=\"s\"><v>0</v></c>".repeat(1_200);
    let sheet = format!(
        "<worksheet><sheetData><row r=\"1\"><c t=\"inlineStr\"><is><t>{card}</t></is></c></row><row r=\"2\">{row}</row></sheetData></worksheet>"
    );
    let sst = format!("<sst><si><t>{long}</t></si></sst>");
    let xlsx = zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ("xl/sharedStrings.xml", sst.as_bytes()),
    ]);
    let reports = collect(&d, "bomb.xlsx", &xlsx);
    let part = object(&reports, "bomb.xlsx!xl/worksheets/sheet1.xml");
    assert_eq!(part.status, Status::Partial);
    assert!(
        part.reason
            .as_deref()
            .is_some_and(|r| r.contains("a row of this sheet is larger")),
        "{:?}",
        part.reason
    );
    assert_eq!(cards(part).len(), 1, "the rows before it are read");

    let mut tabs = String::from("<worksheet><sheetData>");
    for r in 1..=300 {
        let text = if r == 300 { card.as_str() } else { "x" };
        tabs.push_str(&format!(
            "<row r=\"{r}\"><c r=\"XFD{r}\" t=\"inlineStr\"><is><t>{text}</t></is></c></row>"
        ));
    }
    tabs.push_str("</sheetData></worksheet>");
    let xlsx = zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/worksheets/sheet1.xml", tabs.as_bytes()),
    ]);
    let reports = collect(&d, "tabs.xlsx", &xlsx);
    let part = object(&reports, "tabs.xlsx!xl/worksheets/sheet1.xml");
    assert_eq!(part.status, Status::Complete);
    let found = cards(part);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].locator.line, found[0].locator.column), (300, 16_384));

    let row = "<table:table-row><table:table-cell table:number-columns-repeated=\"16000\"/><table:table-cell><text:p>x</text:p></table:table-cell></table:table-row>";
    let ods = odf_of(&format!(
        "<office:spreadsheet><table:table table:name=\"t\">{}</table:table></office:spreadsheet>",
        row.repeat(2_000)
    ));
    let reports = collect(&d, "tabs.ods", &ods);
    let part = object(&reports, "tabs.ods!content.xml");
    assert_eq!(part.status, Status::Skipped);
    assert!(
        part.reason.as_deref().is_some_and(|r| r.contains("--max-memory")),
        "{:?}",
        part.reason
    );
}

/// Nested decoders share the input's memory budget: each reserves what
/// its header says it needs, so an xz inside an xz is read when both fit
/// and skipped with the reason when they do not; the outer one is read.
/// (Before, each level could hold a 64 MiB dictionary whatever the others
/// held.)
#[test]
fn nested_decoders_share_the_memory_budget() {
    let card = luhn_complete("4539", 16);
    let inner = test_support::compressed_of(ObjectKind::Xz, orders_csv(&card).as_bytes());
    let tar = tar_of(&[
        ("orders.csv.xz", &inner),
        ("plain.csv", orders_csv(&card).as_bytes()),
    ]);
    let outer = test_support::compressed_of(ObjectKind::Xz, &tar);
    // A small stream's dictionary stays small: 1.25 MiB each here.
    let roomy = collect(
        &discovery(Limits::default().max_memory(4 << 20)),
        "b.tar.xz",
        &outer,
    );
    assert_eq!(
        cards(object(&roomy, "b.tar.xz!orders.csv.xz!orders.csv")).len(),
        1
    );
    let tight = collect(
        &discovery(Limits::default().max_memory(2 << 20)),
        "b.tar.xz",
        &outer,
    );
    let skipped = object(&tight, "b.tar.xz!orders.csv.xz");
    assert_eq!(skipped.status, Status::Skipped);
    let reason = skipped.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("xz decoder needs 2 MiB") && reason.contains("--max-memory"),
        "{reason}"
    );
    assert_eq!(cards(object(&tight, "b.tar.xz!plain.csv")).len(), 1);
    assert_eq!(object(&tight, "b.tar.xz").status, Status::Complete);

    // A large one grows its dictionary with its output, each step
    // reserved: past the budget the rest is not read, and what came
    // before is scanned.
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 5 << 19 {
        i += 1;
        // Letters only, hard to compress: nothing to find, and a real
        // dictionary to grow.
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let word: String = (0..12)
            .map(|k| char::from(b'a' + ((h >> (5 * k)) & 15) as u8))
            .collect();
        text.push_str(&word);
        text.push('\n');
    }
    text.push_str(&format!("カード番号：{card}\n"));
    text.insert_str(0, &format!("カード番号：{card}\n"));
    let big = test_support::compressed_of(ObjectKind::Xz, text.as_bytes());
    let d = discovery(Limits::default().max_memory(4 << 20));
    let cut = object(&collect(&d, "big.log.xz", &big), "big.log.xz!big.log").clone();
    assert_eq!(cut.status, Status::Partial);
    assert!(
        cut.reason
            .as_deref()
            .is_some_and(|r| r.contains("xz decoder needs") && r.contains("--max-memory")),
        "{:?}",
        cut.reason
    );
    assert_eq!(cards(&cut).len(), 1, "the card before the cut is found");
    let whole = collect(
        &discovery(Limits::default().max_memory(8 << 20)),
        "big.log.xz",
        &big,
    );
    assert_eq!(cards(object(&whole, "big.log.xz!big.log")).len(), 2);
}

/// The findings listed for one object count toward the input's memory:
/// past it the object is partial with the reason, and the ones listed are
/// kept.
#[test]
fn listed_findings_stay_within_the_memory_budget() {
    let card = luhn_complete("4539", 16);
    let text: String = (0..20_000).map(|i| format!("{i} カード番号：{card}\n")).collect();
    let all = collect(&discovery(Limits::default()), "many.txt", text.as_bytes());
    assert_eq!(cards(object(&all, "many.txt")).len(), 20_000);
    let few = collect(
        &discovery(Limits::default().max_memory(1 << 20)),
        "many.txt",
        text.as_bytes(),
    );
    let r = object(&few, "many.txt");
    assert_eq!(r.status, Status::Partial);
    assert!(r.reason.as_deref().is_some_and(|x| x.contains("--max-memory")));
    let listed = cards(r).len();
    assert!(listed > 1_000 && listed < 20_000, "{listed}");
}

/// A workbook whose shared strings do not fit leaves each sheet partial:
/// its text cells are not in its text.
#[test]
fn sheets_without_their_shared_strings_are_partial() {
    let sst: String = (0..40_000).map(|i| format!("<si><t>name{i}</t></si>")).collect();
    let sst = format!("<sst>{sst}</sst>");
    let sheet = "<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\"><v>7</v></c></row></sheetData></worksheet>";
    let xlsx = zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("xl/workbook.xml", b"<workbook/>"),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ("xl/sharedStrings.xml", sst.as_bytes()),
    ]);
    // 360 KB of text and 160 KB of offsets; half of 512 KiB is held.
    let d = discovery(Limits::default().max_memory(512 << 10));
    let reports = collect(&d, "big.xlsx", &xlsx);
    let part = object(&reports, "big.xlsx!xl/worksheets/sheet1.xml");
    assert_eq!(part.status, Status::Partial);
    assert!(
        part.reason
            .as_deref()
            .is_some_and(|r| r.contains("shared strings")),
        "{:?}",
        part.reason
    );
    let whole = collect(&discovery(Limits::default()), "big.xlsx", &xlsx);
    assert_eq!(
        object(&whole, "big.xlsx!xl/worksheets/sheet1.xml").status,
        Status::Complete
    );
}
