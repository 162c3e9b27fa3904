//! End-to-end tests of the scanner over text, encodings and CSV.

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;

use super::*;

pub(crate) fn test_key() -> FingerprintKey {
    FingerprintKey::new(&KeyBytes::from_slice(&[7u8; 32]).unwrap_or_else(|_| unreachable!()))
}

fn scanner() -> Scanner {
    Scanner::new(test_key())
}

fn low_scanner() -> Scanner {
    Scanner::with_options(test_key(), ScanOptions::default().min_confidence(Confidence::Low))
}

fn cats(findings: &[Finding]) -> Vec<(Category, Confidence)> {
    findings.iter().map(|f| (f.category, f.confidence)).collect()
}

#[test]
fn card_in_japanese_text_with_label() {
    let text = "ご注文ありがとうございます。\nカード番号：4111 1111 1111 1111\n";
    let f = scanner().scan_str(text);
    assert_eq!(cats(&f), vec![(Category::Card, Confidence::High)]);
    let card = &f[0];
    assert_eq!(card.masked, "4111 11•• •••• 1111");
    assert_eq!(card.kind, Some("visa"));
    assert!(card.test_value);
    assert_eq!(card.locator.line, 2);
    assert_eq!(card.locator.column, 7);
    assert_eq!(
        &text[card.locator.byte_offset..][..card.locator.byte_len],
        "4111 1111 1111 1111"
    );
    assert_eq!(
        card.fingerprint,
        scanner().fingerprint(Category::Card, b"4111111111111111")
    );
}

#[test]
fn every_brand_and_grouping() {
    let cases = [
        ("4242424242424242", "visa"),
        ("5555-5555-5555-4444", "mastercard"),
        ("2223 0031 2200 3222", "mastercard"),
        ("3782 822463 10005", "amex"),
        ("3782 8224 6310 005", "amex"),
        ("3530 1113 3330 0000", "jcb"),
        ("3056 930902 5904", "diners"),
        ("30569309025904", "diners"),
        ("6011 1111 1111 1117", "discover"),
        ("6200000000000005", "unionpay"),
        ("４１１１－１１１１－１１１１－１１１１", "visa"),
    ];
    for (number, brand) in cases {
        let text = format!("お支払い card: {number} 以上");
        let f = scanner().scan_str(&text);
        assert_eq!(f.len(), 1, "{number}: {f:?}");
        assert_eq!(
            (f[0].category, f[0].kind, f[0].confidence),
            (Category::Card, Some(brand), Confidence::High),
            "{number}"
        );
        assert_eq!(&text[f[0].locator.byte_offset..][..f[0].locator.byte_len], number);
    }
}

#[test]
fn unlabelled_card_is_medium_and_luhn_failure_is_nothing() {
    let f = scanner().scan_str("ref 4111111111111111 end");
    assert_eq!(cats(&f), vec![(Category::Card, Confidence::Medium)]);
    assert!(low_scanner().scan_str("card 4111111111111112 end").is_empty());
    // Glued to letters: an identifier, not a card.
    assert!(low_scanner().scan_str("card id4111111111111111").is_empty());
}

#[test]
fn hard_negatives() {
    let s = low_scanner();
    // JAN barcode that is also a Luhn-valid 13-digit "Visa".
    let jan = find_luhn_valid_jan();
    assert!(
        s.scan_str(&format!("商品 {jan} 在庫あり"))
            .iter()
            .all(|f| f.category != Category::Card)
    );
    // A Luhn-valid 16-digit order number labelled as such.
    assert!(scanner().scan_str("注文番号: 4111111111111111").is_empty());
    // Tracking numbers in 4-4-4 that pass the My Number check digit.
    assert!(s.scan_str("追跡番号 6214-9832-0257").is_empty());
    // Corporate number that is Luhn-valid and starts with 4.
    let corp = find_corporate_that_looks_like_visa();
    let f = s.scan_str(&format!("法人番号 {corp}"));
    assert_eq!(cats(&f), vec![(Category::CorporateNumber, Confidence::High)]);
    // A 12-digit window inside a grouped 16-digit number is not a My Number.
    assert!(
        s.scan_str("マイナンバー 6214 9832 0257 1234")
            .iter()
            .all(|f| f.category != Category::MyNumber)
    );
}

fn find_luhn_valid_jan() -> String {
    (0u64..)
        .map(|i| format!("49{:011}", 12_345_678_900 + i))
        .find(|d| validate::is_jan_code(d.as_bytes()) && validate::luhn_valid(d.as_bytes()))
        .unwrap_or_default()
}

fn find_corporate_that_looks_like_visa() -> String {
    (0u64..)
        // Luhn and this check digit together need a base digit sum near the
        // maximum (both sums ≡ 0 mod 90), so search down from all nines.
        .map(|i| format!("4{:012}", 999_999_999_999 - i))
        .find(|d| validate::corporate_number_valid(d.as_bytes()) && validate::luhn_valid(d.as_bytes()))
        .unwrap_or_default()
}

#[test]
fn my_number_needs_a_label() {
    let f = scanner().scan_str("個人番号：6214 9832 0257");
    assert_eq!(cats(&f), vec![(Category::MyNumber, Confidence::High)]);
    assert_eq!(f[0].masked, "•••• •••• 0257");
    assert!(scanner().scan_str("no 621498320257 ok").is_empty());
    assert_eq!(
        cats(&low_scanner().scan_str("no 621498320257 ok")),
        vec![(Category::MyNumber, Confidence::Low)]
    );
    assert!(scanner().scan_str("個人番号：6214 9832 0258").is_empty());
}

#[test]
fn corporate_and_invoice_numbers() {
    assert_eq!(
        cats(&scanner().scan_str("法人番号 7123456789012")),
        vec![(Category::CorporateNumber, Confidence::High)]
    );
    let f = scanner().scan_str("登録番号：T7123456789012");
    assert_eq!(cats(&f), vec![(Category::CorporateNumber, Confidence::High)]);
    assert_eq!(f[0].kind, Some("invoice"));
    assert_eq!(f[0].locator.byte_len, 14);
}

#[test]
fn security_code_and_expiry() {
    let text = "カード番号 3530-1113-3330-0000 有効期限 12/27 セキュリティコード 123";
    let f = scanner().scan_str(text);
    assert_eq!(
        cats(&f),
        vec![
            (Category::Card, Confidence::High),
            (Category::Expiry, Confidence::High),
            (Category::SecurityCode, Confidence::High)
        ]
    );
    assert_eq!(f[2].masked, "•••");
    assert_eq!(f[1].masked, "••/••");
    // Expiry right after a card, no label: medium. A bare date: nothing.
    let f = scanner().scan_str("4111111111111111 09/28");
    assert_eq!(
        cats(&f),
        vec![
            (Category::Card, Confidence::Medium),
            (Category::Expiry, Confidence::Medium)
        ]
    );
    assert!(low_scanner().scan_str("会議は 12/25 です").is_empty());
    assert!(low_scanner().scan_str("日付 2025/12/31").is_empty());
    // CVC needs its keyword; a price does not count.
    assert!(low_scanner().scan_str("価格 123 円").is_empty());
    assert_eq!(
        cats(&scanner().scan_str("CVV2=0123")),
        vec![(Category::SecurityCode, Confidence::High)]
    );
}

#[test]
fn expiry_as_mmyy_after_a_thru_label_is_not_missed() {
    // Embossed cards print "VALID THRU" with the date; written out without
    // the slash it is MMYY, which a label-less number would never be.
    for text in [
        "valid thru 1228",
        "VALID THRU 1228",
        "Valid Thru: 0930",
        "card 4111-1111-1111-1111 good thru 0527",
    ] {
        let f = scanner().scan_str(text);
        assert!(
            f.iter()
                .any(|f| f.category == Category::Expiry && f.confidence == Confidence::High),
            "{text}: {:?}",
            cats(&f)
        );
    }
    // Not a month, or no label: nothing.
    for text in ["valid thru 1328", "three 1228 items", "throughput 1228 rps"] {
        let f = low_scanner().scan_str(text);
        assert!(
            !f.iter().any(|f| f.category == Category::Expiry),
            "{text}: {:?}",
            cats(&f)
        );
    }
}

#[test]
fn phones() {
    let s = scanner();
    for (text, kind, conf) in [
        ("TEL 090-1234-5678", "mobile", Confidence::High),
        ("連絡 09012345678 まで", "mobile", Confidence::Medium),
        ("電話：03-1234-5678", "fixed", Confidence::High),
        ("窓口 0466-12-3456", "fixed", Confidence::Medium),
        ("+81 90-1234-5678", "mobile", Confidence::Medium),
        ("+81-3-1234-5678", "fixed", Confidence::Medium),
        ("+819012345678", "mobile", Confidence::Medium),
        ("IP 050-1234-5678", "ip", Confidence::Medium),
        ("フリーダイヤル 0120-123-456", "toll_free", Confidence::Medium),
        ("０８０－１２３４－５６７８", "mobile", Confidence::Medium),
    ] {
        let f = s.scan_str(text);
        assert_eq!(f.len(), 1, "{text}: {f:?}");
        assert_eq!(
            (f[0].category, f[0].kind, f[0].confidence),
            (Category::Phone, Some(kind), conf),
            "{text}"
        );
    }
    let f = s.scan_str("+81 90-1234-5678");
    assert_eq!(f[0].fingerprint, s.fingerprint(Category::Phone, b"09012345678"));
    assert_eq!(f[0].locator.byte_offset, 0);
    assert_eq!(f[0].masked, "090••••5678");
    assert!(low_scanner().scan_str("03-123-45678").is_empty());
    assert!(low_scanner().scan_str("+1 212 555 0100").is_empty());
    assert!(low_scanner().scan_str("+44 20 7946 0018").is_empty());
}

#[test]
fn postal_codes_bank_passport_residence() {
    assert_eq!(
        cats(&scanner().scan_str("〒100-0001 東京都千代田区")),
        vec![(Category::PostalCode, Confidence::High)]
    );
    assert_eq!(
        cats(&scanner().scan_str("〒 1000001")),
        vec![(Category::PostalCode, Confidence::High)]
    );
    assert_eq!(
        cats(&low_scanner().scan_str("code 100-0001")),
        vec![(Category::PostalCode, Confidence::Low)]
    );
    assert_eq!(
        cats(&scanner().scan_str("みずほ銀行 渋谷支店 普通 口座番号 1234567")),
        vec![(Category::BankAccount, Confidence::High)]
    );
    assert!(low_scanner().scan_str("数量 1234567").is_empty());
    let f = scanner().scan_str("旅券番号 TK1234567");
    assert_eq!(cats(&f), vec![(Category::Passport, Confidence::High)]);
    assert_eq!(f[0].locator.byte_len, 9);
    assert_eq!(
        f[0].fingerprint,
        scanner().fingerprint(Category::Passport, b"TK1234567")
    );
    let f = scanner().scan_str("在留カード番号: AB12345678CD");
    assert_eq!(cats(&f), vec![(Category::ResidenceCard, Confidence::High)]);
    assert_eq!(f[0].locator.byte_len, 12);
    assert!(low_scanner().scan_str("XTK1234567").is_empty());
}

#[test]
fn emails() {
    let f = scanner().scan_str("連絡先: Taro.Yamada+shop@Example.co.jp まで");
    assert_eq!(cats(&f), vec![(Category::Email, Confidence::High)]);
    assert_eq!(f[0].masked, "T•••@example.co.jp");
    assert_eq!(
        f[0].fingerprint,
        scanner().fingerprint(Category::Email, b"taro.yamada+shop@example.co.jp")
    );
    assert!(scanner().scan_str("<img src=icon@2x.png>").is_empty());
    // Digits in the local part are not a phone number.
    let f = scanner().scan_str("09012345678@docomo.ne.jp");
    assert_eq!(cats(&f), vec![(Category::Email, Confidence::High)]);
}

#[test]
fn names_and_addresses_by_label() {
    let text = "氏名：山田 太郎\n住所: 東京都千代田区千代田1-1\nname: build\n";
    let f = scanner().scan_str(text);
    assert_eq!(
        cats(&f),
        vec![
            (Category::Name, Confidence::Medium),
            (Category::Address, Confidence::Medium)
        ]
    );
    assert_eq!(f[0].masked, "•••••");
    assert_eq!(
        &text[f[0].locator.byte_offset..][..f[0].locator.byte_len],
        "山田 太郎"
    );
    assert_eq!(f[1].locator.line, 2);
}

#[test]
fn csv_in_chunks_keeps_headers_and_row_numbers() {
    let csv = "注文番号,氏名,電話番号,email,カード番号,住所\n\
               202601150001,山田 太郎,09012345678,taro@example.com,4111111111111111,東京都港区1-2-3\n\
               4242424242424242,佐藤 花子,0312345678,hanako@example.jp,5555555555554444,大阪府大阪市\n";
    let whole = scanner().scan_csv(csv.as_bytes(), None).findings;
    let cut = csv.find("4242").expect("second row");
    let s = scanner();
    let (first, layout) = s.scan_csv_chunk(&csv.as_bytes()[..cut], TextEncoding::Utf8, 0, None, None);
    assert!(layout.has_header());
    assert_eq!(layout.records(), 2);
    let (second, layout) =
        s.scan_csv_chunk(&csv.as_bytes()[cut..], TextEncoding::Utf8, 0, None, Some(layout));
    assert_eq!(layout.records(), 3);
    let key = |f: &Finding, base: usize| {
        let r = f.locator.record.clone().expect("record");
        (
            f.category,
            f.confidence,
            r.row,
            r.field,
            r.header,
            f.locator.byte_offset + base,
        )
    };
    let chunked: Vec<_> = first
        .findings
        .iter()
        .map(|f| key(f, 0))
        .chain(second.findings.iter().map(|f| key(f, cut)))
        .collect();
    let expected: Vec<_> = whole.iter().map(|f| key(f, 0)).collect();
    assert_eq!(chunked, expected);
    // Debug of a layout shows no header text.
    assert!(!format!("{layout:?}").contains("氏名"));
}

#[test]
fn csv_headers_raise_confidence_and_locate_cells() {
    let csv = "注文番号,氏名,電話番号,email,カード番号,住所\n\
               202601150001,山田 太郎,09012345678,taro@example.com,4111111111111111,東京都港区1-2-3\n\
               4242424242424242,佐藤 花子,0312345678,hanako@example.jp,5555555555554444,大阪府大阪市\n";
    let out = scanner().scan_csv(csv.as_bytes(), None);
    let got: Vec<(Category, Confidence, usize, usize)> = out
        .findings
        .iter()
        .map(|f| {
            let r = f.locator.record.as_ref().map_or((0, 0), |r| (r.row, r.field));
            (f.category, f.confidence, r.0, r.1)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Category::Name, Confidence::High, 2, 2),
            (Category::Phone, Confidence::High, 2, 3),
            (Category::Email, Confidence::High, 2, 4),
            (Category::Card, Confidence::High, 2, 5),
            (Category::Address, Confidence::High, 2, 6),
            (Category::Name, Confidence::High, 3, 2),
            (Category::Phone, Confidence::High, 3, 3),
            (Category::Email, Confidence::High, 3, 4),
            (Category::Card, Confidence::High, 3, 5),
            (Category::Address, Confidence::High, 3, 6),
        ],
        "{:?}",
        out.findings
    );
    let phone = &out.findings[1];
    assert_eq!(
        phone.locator.record.as_ref().and_then(|r| r.header.as_deref()),
        Some("電話番号")
    );
    assert_eq!(phone.locator.line, 2);
    // The order-number column's Luhn-valid value is a hard negative.
    assert!(
        out.findings
            .iter()
            .all(|f| !(f.category == Category::Card
                && f.locator.record.as_ref().is_some_and(|r| r.field == 1)))
    );
}

#[test]
fn tsv_without_header() {
    let out = scanner().scan_csv(b"a\tb\nTEL\t090-1234-5678\n", Some(b'\t'));
    assert_eq!(out.findings.len(), 1);
    let r = out.findings[0].locator.record.clone();
    assert_eq!(r.map(|r| (r.row, r.field, r.header)), Some((2, 2, None)));
}

#[test]
fn every_encoding_locates_in_original_bytes() {
    let text = "お客様各位\r\nカード番号：４１１１ 1111 1111 1111\r\n携帯 090-1234-5678\r\n";
    let encodings = [
        encoding_rs::SHIFT_JIS,
        encoding_rs::EUC_JP,
        encoding_rs::ISO_2022_JP,
        encoding_rs::UTF_8,
    ];
    for enc in encodings {
        let (bytes, _, _) = enc.encode(text);
        check_encoded(&bytes, enc.name(), |s| enc.encode(s).0.into_owned());
    }
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    check_encoded(&le, "utf-16le", |s| {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    });
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    check_encoded(&be, "utf-16be", |s| {
        s.encode_utf16().flat_map(u16::to_be_bytes).collect()
    });
}

fn check_encoded(bytes: &[u8], name: &str, encode: impl Fn(&str) -> Vec<u8>) {
    let out = scanner().scan(bytes);
    assert_eq!(
        cats(&out.findings),
        vec![
            (Category::Card, Confidence::High),
            (Category::Phone, Confidence::High)
        ],
        "{name}"
    );
    let card = &out.findings[0].locator;
    let expect = encode("４１１１ 1111 1111 1111");
    let found = &bytes[card.byte_offset..card.byte_offset + card.byte_len];
    if name == "ISO-2022-JP" {
        // The span starts at the first full-width digit's own JIS bytes, after
        // the escape that switched to JIS X 0208: decode it in that mode.
        let mut primed = b"\x1b$B".to_vec();
        primed.extend_from_slice(found);
        let (decoded, _) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&primed);
        assert_eq!(decoded, "４１１１ 1111 1111 1111", "{name}");
    } else {
        assert_eq!(found, expect.as_slice(), "{name}");
    }
    assert_eq!((card.line, card.column), (2, 7), "{name}");
    let phone = &out.findings[1].locator;
    assert_eq!(
        &bytes[phone.byte_offset..phone.byte_offset + phone.byte_len],
        encode("090-1234-5678").as_slice(),
        "{name}"
    );
}

#[test]
fn no_output_contains_a_raw_value() {
    let text = "カード番号 4111111111111111 CVV 987 個人番号 621498320257 TEL 09012345678 mail taro@example.com 氏名：山田太郎";
    let f = scanner().scan_str(text);
    assert_eq!(f.len(), 6, "{f:?}");
    let printed = format!(
        "{f:?} {}",
        f.iter()
            .map(|x| format!("{} {} {}", x.category, x.confidence, x.fingerprint))
            .collect::<String>()
    );
    for raw in [
        "4111111111111111",
        "987",
        "621498320257",
        "09012345678",
        "taro@",
        "山田太郎",
        "111111",
    ] {
        assert!(!printed.contains(raw), "{raw} leaked");
    }
}

/// A digit run cut after its only group (45 to 64 digits, then a separator
/// and more digits) went on from a stale group and never ended; it goes on
/// with the next group, where the card number is.
#[test]
fn a_run_cut_after_one_long_group_ends() {
    let text = format!("{} 4111 1111 1111 1111", "1".repeat(50));
    let f = scanner().scan_str(&text);
    assert_eq!(cats(&f), vec![(Category::Card, Confidence::Medium)]);
    assert_eq!(f[0].locator.byte_offset, 51);
}

#[test]
fn test_values_can_be_excluded() {
    let s = Scanner::with_options(test_key(), ScanOptions::default().include_test_values(false));
    assert!(s.scan_str("card 4111111111111111").is_empty());
    assert!(s.scan_str("card 3530 1113 3330 0000").is_empty());
    // A Luhn-valid Visa number that is not on the public test list.
    let other = (0u64..)
        .map(|i| format!("45395787{:08}", 63_621_400 + i))
        .find(|d| validate::luhn_valid(d.as_bytes()))
        .unwrap_or_default();
    assert!(!validate::is_test_pan(other.as_bytes()));
    assert_eq!(s.scan_str(&format!("card {other}")).len(), 1);
}

/// A scan for some categories reports exactly what a full scan reports in
/// them: leaving detectors out never changes another category's verdicts.
#[test]
fn a_scan_for_some_categories_is_the_full_scan_filtered() {
    let full = Scanner::with_options(test_key(), ScanOptions::default().min_confidence(Confidence::Low));
    let corpus = corpus::generate(11, 30, &full);
    // The corpus plants neither passports, residence cards nor bank accounts.
    let text = corpus::plain_text(12, 200_000, &full)
        + "\nみずほ銀行 渋谷支店 普通 口座番号 1234567 旅券番号 TK1234567 在留カード番号: AB12345678CD\n";
    let scan = |s: &Scanner, doc: &corpus::Document| match doc.kind {
        corpus::DocumentKind::Csv => s.scan_csv(&doc.bytes, None).findings,
        corpus::DocumentKind::Text => s.scan(&doc.bytes).findings,
    };
    let key = |f: &Finding| {
        (
            f.category,
            f.confidence,
            f.locator.byte_offset,
            f.fingerprint.to_string(),
        )
    };
    let mut subsets: Vec<Categories> = Category::ALL.iter().map(|&c| [c].into_iter().collect()).collect();
    subsets.push(
        [Category::Card, Category::SecurityCode, Category::Expiry]
            .into_iter()
            .collect(),
    );
    subsets.push([Category::Name, Category::Phone].into_iter().collect());
    subsets.push(Categories::NONE);
    for wanted in subsets {
        let some = Scanner::with_options(
            test_key(),
            ScanOptions::default()
                .min_confidence(Confidence::Low)
                .categories(wanted),
        );
        let filtered = |f: Vec<Finding>| {
            f.iter()
                .filter(|f| wanted.contains(f.category))
                .map(key)
                .collect::<Vec<_>>()
        };
        let mut seen = 0;
        for doc in &corpus.documents {
            let expected = filtered(scan(&full, doc));
            seen += expected.len();
            assert_eq!(
                scan(&some, doc).iter().map(key).collect::<Vec<_>>(),
                expected,
                "{wanted:?} in {}",
                doc.name
            );
        }
        let expected = filtered(full.scan_str(&text));
        seen += expected.len();
        assert_eq!(
            some.scan_str(&text).iter().map(key).collect::<Vec<_>>(),
            expected,
            "{wanted:?}"
        );
        assert_eq!(
            seen == 0,
            wanted == Categories::NONE,
            "{wanted:?} found nothing to compare"
        );
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn complete_luhn(mut body: Vec<u8>) -> Vec<u8> {
        body.push(b'0');
        let last = body.len() - 1;
        for c in b'0'..=b'9' {
            body[last] = c;
            if validate::luhn_valid(&body) {
                break;
            }
        }
        body
    }

    fn brand_prefix() -> impl Strategy<Value = (String, usize)> {
        prop_oneof![
            (Just("4".to_owned()), Just(16)),
            (51u32..=55).prop_map(|p| (p.to_string(), 16)),
            (2221u32..=2720).prop_map(|p| (p.to_string(), 16)),
            prop_oneof![Just(34u32), Just(37)].prop_map(|p| (p.to_string(), 15)),
            (3528u32..=3589).prop_map(|p| (p.to_string(), 16)),
            (300u32..=305).prop_map(|p| (p.to_string(), 14)),
            prop_oneof![Just(36u32), Just(38), Just(39)].prop_map(|p| (p.to_string(), 14)),
            Just(("6011".to_owned(), 16)),
            (644u32..=649).prop_map(|p| (p.to_string(), 16)),
            Just(("62".to_owned(), 16)),
        ]
    }

    fn group(digits: &[u8], lens: &[usize], sep: &str) -> String {
        let mut out = String::new();
        let mut i = 0;
        for (k, l) in lens.iter().enumerate() {
            if k > 0 {
                out.push_str(sep);
            }
            out.push_str(std::str::from_utf8(&digits[i..i + l]).unwrap_or(""));
            i += l;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn every_luhn_valid_card_in_a_brand_range_is_found(
            (prefix, len) in brand_prefix(),
            fill in proptest::collection::vec(b'0'..=b'9', 19),
            style in 0usize..4,
            labelled in any::<bool>(),
        ) {
            let mut body = prefix.into_bytes();
            body.extend_from_slice(&fill[..len - 1 - body.len()]);
            let digits = complete_luhn(body);
            let lens: Vec<usize> = match (len, style) {
                (_, 0) => vec![len],
                (15, 1) => vec![4, 6, 5],
                (15, _) => vec![4, 4, 4, 3],
                (14, 1) => vec![4, 6, 4],
                (14, _) => vec![4, 4, 4, 2],
                _ => vec![4, 4, 4, 4],
            };
            let sep = if style == 3 { "-" } else { " " };
            let number = group(&digits, &lens, sep);
            let text = format!("{} {number} です", if labelled { "カード番号" } else { "お問い合わせ" });
            let s = Scanner::new(test_key());
            let f = s.scan_str(&text);
            prop_assert_eq!(f.len(), 1, "{} {:?}", text, f);
            prop_assert_eq!(f[0].category, Category::Card);
            prop_assert_eq!(f[0].confidence, if labelled { Confidence::High } else { Confidence::Medium });
            prop_assert_eq!(&text[f[0].locator.byte_offset..][..f[0].locator.byte_len], number.as_str());
            prop_assert_eq!(f[0].fingerprint, s.fingerprint(Category::Card, &digits));
        }

        #[test]
        fn scanner_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = Scanner::with_options(test_key(), ScanOptions::default().min_confidence(Confidence::Low));
            for f in s.scan(&bytes).findings.iter().chain(s.scan_csv(&bytes, None).findings.iter()) {
                prop_assert!(f.locator.byte_offset + f.locator.byte_len <= bytes.len());
            }
        }

        #[test]
        fn scanner_never_panics_on_number_soup(s in "[0-9０-９ \\-－:：@.+/〒TKAB a-z\n,\"]{0,300}") {
            let sc = Scanner::with_options(test_key(), ScanOptions::default().min_confidence(Confidence::Low));
            for f in sc.scan_str(&s).iter().chain(sc.scan_csv(s.as_bytes(), None).findings.iter()) {
                prop_assert!(s.is_char_boundary(f.locator.byte_offset));
                prop_assert!(f.locator.byte_offset + f.locator.byte_len <= s.len());
            }
        }
    }
}

#[test]
fn a_table_cell_is_scanned_as_the_same_cell_of_a_csv_column() {
    let s = scanner();
    let csv = "氏名,マイナンバー,電話\n山田 太郎,621498320257,090-1234-5678\n";
    let from_csv = s.scan_csv(csv.as_bytes(), None).findings;
    let mut from_cells = Vec::new();
    for (field, (header, cell)) in [
        ("氏名", "山田 太郎"),
        ("マイナンバー", "621498320257"),
        ("電話", "090-1234-5678"),
    ]
    .into_iter()
    .enumerate()
    {
        let found = s.scan_cell(cell, s.column(header), 2, field + 1, Some(header));
        for f in &found {
            // Locators are inside the cell.
            assert_eq!(f.locator.byte_offset, 0);
            assert_eq!((f.locator.line, f.locator.column), (1, 1));
            let record = f.locator.record.as_ref().expect("record");
            assert_eq!((record.row, record.field), (2, field + 1));
            assert_eq!(record.header.as_deref(), Some(header));
            assert_eq!(record.key, None);
        }
        from_cells.extend(found);
    }
    let summary = |f: &[Finding]| -> Vec<(Category, Confidence, String, Fingerprint)> {
        f.iter()
            .map(|f| (f.category, f.confidence, f.masked.clone(), f.fingerprint))
            .collect()
    };
    assert_eq!(summary(&from_cells), summary(&from_csv));
    assert_eq!(
        cats(&from_cells),
        vec![
            (Category::Name, Confidence::High),
            (Category::MyNumber, Confidence::High),
            (Category::Phone, Confidence::High),
        ]
    );
    // Without a telling header a My Number is only a check digit: not reported.
    assert!(
        s.scan_cell("621498320257", s.column("memo"), 1, 1, Some("memo"))
            .is_empty()
    );
    assert!(!s.column("memo").is_labelled() && s.column("email").is_labelled());
    // Multi-line text: line and column inside the cell.
    let f = s.scan_cell("備考\nカード番号 4532015112830366", s.column("memo"), 1, 1, None);
    assert_eq!(cats(&f), vec![(Category::Card, Confidence::High)]);
    assert_eq!((f[0].locator.line, f[0].locator.column), (2, 7));
}
