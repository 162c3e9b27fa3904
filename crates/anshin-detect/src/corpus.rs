//! A labelled corpus generator, deterministic from a seed.
//!
//! It writes order e-mails, logs and CSV exports with planted values of every
//! category (every brand and grouping, full-width digits, +81 phones, all
//! encodings) and hard negatives (Luhn-valid order numbers, 12-digit numbers
//! that pass the My Number check, JAN barcodes, tracking numbers, corporate
//! numbers, timestamps). The ground truth holds only keyed fingerprints, made
//! with the same key the scanner uses, never the planted values.
//!
//! All personal data here is synthetic: reserved `example.*` domains,
//! placeholder names, random numbers.

use encoding_rs::{EUC_JP, Encoding, ISO_2022_JP, SHIFT_JIS, UTF_8};

use crate::{Category, Fingerprint, Scanner, TextEncoding, validate};

/// A small deterministic generator (SplitMix64): the corpus must be the same
/// on every machine for a seed, so no OS randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'0' + self.below(10) as u8).collect()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What kind of document a generated file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// Free text: order mails, logs. Scan with [`Scanner::scan`].
    Text,
    /// A CSV export with a header row. Scan with [`Scanner::scan_csv`].
    Csv,
}

/// One generated file.
#[derive(Clone)]
pub struct Document {
    /// A file name for reports.
    pub name: String,
    /// Text or CSV.
    pub kind: DocumentKind,
    /// The encoding the bytes are in.
    pub encoding: TextEncoding,
    /// The file contents.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("encoding", &self.encoding)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One planted value: which document, which category, and its keyed
/// fingerprint (the same one a finding carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    /// Index into [`Corpus::documents`].
    pub document: usize,
    /// The category a scanner should report.
    pub category: Category,
    /// Keyed fingerprint of the normalised value.
    pub fingerprint: Fingerprint,
}

/// A generated corpus and its ground truth.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The files.
    pub documents: Vec<Document>,
    /// Every planted value that should be reported at medium confidence or above.
    pub truth: Vec<Truth>,
    /// How many hard negatives were planted (none of them should be reported).
    pub hard_negatives: usize,
}

const SURNAMES: &[&str] = &["山田", "佐藤", "鈴木", "高橋", "田中", "試験", "見本"];
const GIVEN: &[&str] = &["太郎", "花子", "一郎", "次郎", "美咲", "翔太"];
const PLACES: &[&str] = &[
    "東京都千代田区千代田",
    "大阪府大阪市北区梅田",
    "北海道札幌市中央区北一条",
    "福岡県福岡市博多区博多駅前",
];
const DOMAINS: &[&str] = &["example.com", "example.jp", "example.co.jp", "example.ne.jp"];
const FILLER: &[&str] = &[
    "この度は当店をご利用いただき、誠にありがとうございます。",
    "商品は3営業日以内に発送いたします。",
    "合計金額 ¥12,980（税込）",
    "ご不明な点がございましたら、お気軽にお問い合わせください。",
    "Thank you for your order. Your items will ship within 2 business days.",
    "2026-01-15 10:23:45 INFO request completed in 35 ms status=200",
    "数量: 2 / 単価: 1,490円 / ポイント 120pt",
    "※本メールは送信専用です。",
    "GET /api/v1/items?page=3&limit=50 HTTP/1.1",
    "在庫状況：残り 4 点",
];

/// Encodings documents are written in, in rotation.
const ENCODINGS: &[TextEncoding] = &[
    TextEncoding::Utf8,
    TextEncoding::ShiftJis,
    TextEncoding::EucJp,
    TextEncoding::Iso2022Jp,
    TextEncoding::Utf16Le,
    TextEncoding::Utf8,
];

struct Builder<'s> {
    rng: Rng,
    scanner: &'s Scanner,
    truth: Vec<Truth>,
    document: usize,
    hard_negatives: usize,
}

fn as_text(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(d)).collect()
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32('０' as u32 + (c as u32 - '0' as u32)).unwrap_or(c),
            '-' => '－',
            _ => c,
        })
        .collect()
}

fn grouped(digits: &[u8], lens: &[usize], sep: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    for (k, &l) in lens.iter().enumerate() {
        if k > 0 {
            out.push_str(sep);
        }
        out.push_str(&as_text(&digits[i..(i + l).min(digits.len())]));
        i += l;
    }
    out
}

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

impl Builder<'_> {
    fn plant(&mut self, category: Category, value: &[u8]) {
        let fingerprint = self.scanner.fingerprint(category, value);
        self.truth.push(Truth {
            document: self.document,
            category,
            fingerprint,
        });
    }

    /// A random card of a random brand, written in one of its groupings.
    fn card(&mut self) -> String {
        let (prefix, len): (String, usize) = match self.rng.below(9) {
            0 => ("4".into(), 16),
            1 => (format!("{}", 51 + self.rng.below(5)), 16),
            2 => (format!("{}", 2221 + self.rng.below(500)), 16),
            3 => (self.rng.pick(&["34", "37"]).to_string(), 15),
            4 => (format!("{}", 3528 + self.rng.below(62)), 16),
            5 => (
                self.rng
                    .pick(&["300", "305", "3095", "36", "38", "39"])
                    .to_string(),
                14,
            ),
            6 => ("6011".into(), 16),
            7 => (format!("{}", 644 + self.rng.below(6)), 16),
            _ => ("62".into(), 16),
        };
        let mut body = prefix.into_bytes();
        let fill = self.rng.digits(len - 1 - body.len());
        body.extend_from_slice(&fill);
        let digits = complete_luhn(body);
        if validate::is_test_pan(&digits) {
            return self.card();
        }
        self.plant(Category::Card, &digits);
        let lens: Vec<usize> = match (len, self.rng.below(3)) {
            (_, 0) => vec![len],
            (15, 1) => vec![4, 6, 5],
            (15, _) => vec![4, 4, 4, 3],
            (14, 1) => vec![4, 6, 4],
            (14, _) => vec![4, 4, 4, 2],
            _ => vec![4, 4, 4, 4],
        };
        let sep: &str = self.rng.pick(&[" ", "-"]);
        let written = grouped(&digits, &lens, sep);
        if self.rng.chance(15) {
            full_width(&written)
        } else {
            written
        }
    }

    fn phone(&mut self) -> String {
        let (national, lens): (Vec<u8>, Vec<usize>) = match self.rng.below(4) {
            0 | 1 => {
                let mut d = self.rng.pick(&[&b"090"[..], b"080", b"070"]).to_vec();
                d.push(b'1' + self.rng.below(9) as u8);
                d.extend(self.rng.digits(7));
                (d, vec![3, 4, 4])
            }
            2 => {
                let mut d = b"050".to_vec();
                d.push(b'1' + self.rng.below(9) as u8);
                d.extend(self.rng.digits(7));
                (d, vec![3, 4, 4])
            }
            _ => {
                let mut d = b"03".to_vec();
                d.push(b'2' + self.rng.below(8) as u8);
                d.extend(self.rng.digits(7));
                (d, vec![2, 4, 4])
            }
        };
        self.plant(Category::Phone, &national);
        match self.rng.below(5) {
            0 => as_text(&national),
            1 => format!(
                "+81 {}",
                grouped(&national[1..], &[lens[0] - 1, lens[1], lens[2]], "-")
            ),
            2 => full_width(&grouped(&national, &lens, "-")),
            _ => grouped(&national, &lens, "-"),
        }
    }

    fn my_number(&mut self) -> String {
        let mut d = self.rng.digits(11);
        d.push(b'0');
        for c in b'0'..=b'9' {
            d[11] = c;
            if validate::my_number_valid(&d) {
                break;
            }
        }
        self.plant(Category::MyNumber, &d);
        if self.rng.chance(50) {
            grouped(&d, &[4, 4, 4], " ")
        } else {
            as_text(&d)
        }
    }

    /// 12 digits that pass the My Number check but are order or tracking numbers.
    fn my_number_lookalike(&mut self) -> String {
        loop {
            let d = self.rng.digits(12);
            if validate::my_number_valid(&d) {
                self.hard_negatives += 1;
                return if self.rng.chance(50) {
                    grouped(&d, &[4, 4, 4], "-")
                } else {
                    as_text(&d)
                };
            }
        }
    }

    /// A Luhn-valid number with a card prefix that is an order number.
    fn card_lookalike(&mut self) -> String {
        let mut body = b"4".to_vec();
        body.extend(self.rng.digits(14));
        self.hard_negatives += 1;
        as_text(&complete_luhn(body))
    }

    fn jan(&mut self) -> String {
        let mut d = self.rng.pick(&[&b"45"[..], b"49"]).to_vec();
        d.extend(self.rng.digits(10));
        d.push(b'0');
        for c in b'0'..=b'9' {
            d[12] = c;
            if validate::ean13_valid(&d) {
                break;
            }
        }
        self.hard_negatives += 1;
        as_text(&d)
    }

    fn corporate(&mut self) -> String {
        let mut d = vec![b'0'];
        d.extend(self.rng.digits(12));
        for c in b'1'..=b'9' {
            d[0] = c;
            if validate::corporate_number_valid(&d) {
                break;
            }
        }
        self.plant(Category::CorporateNumber, &d);
        as_text(&d)
    }

    fn name(&mut self) -> String {
        let name = format!("{} {}", self.rng.pick(SURNAMES), self.rng.pick(GIVEN));
        self.plant(Category::Name, name.as_bytes());
        name
    }

    fn address(&mut self, with_postal: bool) -> String {
        let mut address = format!(
            "{}{}-{}-{}",
            self.rng.pick(PLACES),
            1 + self.rng.below(9),
            1 + self.rng.below(20),
            1 + self.rng.below(30)
        );
        if with_postal {
            let postal = self.postal();
            address = format!("〒{postal} {address}");
        }
        self.plant(Category::Address, address.as_bytes());
        address
    }

    fn postal(&mut self) -> String {
        let d = self.rng.digits(7);
        self.plant(Category::PostalCode, &d);
        grouped(&d, &[3, 4], "-")
    }

    fn email(&mut self) -> String {
        let local = format!(
            "{}.{}{}",
            self.rng.pick(&["taro", "hanako", "user", "shop"]),
            self.rng.below(1000),
            "x"
        );
        let e = format!("{local}@{}", self.rng.pick(DOMAINS));
        self.plant(Category::Email, e.as_bytes());
        e
    }

    fn expiry(&mut self) -> String {
        let mm = 1 + self.rng.below(12);
        let yy = 26 + self.rng.below(8);
        self.plant(Category::Expiry, format!("{mm:02}{yy:02}").as_bytes());
        format!("{mm:02}/{yy:02}")
    }

    fn cvc(&mut self) -> String {
        let d = self.rng.digits(3);
        self.plant(Category::SecurityCode, &d);
        as_text(&d)
    }

    fn filler(&mut self, out: &mut String) {
        let line: &str = self.rng.pick(FILLER);
        out.push_str(line);
        out.push('\n');
    }

    /// An order confirmation e-mail with labelled values.
    fn order_mail(&mut self, out: &mut String) {
        self.filler(out);
        let order = self.card_lookalike();
        out.push_str(&format!("注文番号：{order}\n"));
        let name = self.name();
        out.push_str(&format!("氏名：{name} 様\n").replace(" 様", "\n"));
        let address = self.address(true);
        out.push_str(&format!("お届け先：{address}\n"));
        let phone = self.phone();
        out.push_str(&format!("電話番号：{phone}\n"));
        let email = self.email();
        out.push_str(&format!("メールアドレス：{email}\n"));
        let card = self.card();
        let expiry = self.expiry();
        out.push_str(&format!("カード番号：{card}\n有効期限：{expiry}\n"));
        if self.rng.chance(30) {
            let cvc = self.cvc();
            out.push_str(&format!("セキュリティコード：{cvc}\n"));
        }
        let jan = self.jan();
        out.push_str(&format!("商品コード(JAN)：{jan}\n"));
        let tracking = self.my_number_lookalike();
        out.push_str(&format!("お問い合わせ番号：{tracking}\n"));
        self.filler(out);
        out.push('\n');
    }

    /// Forms and logs: My Number, corporate numbers, unlabelled cards and phones.
    fn misc(&mut self, out: &mut String) {
        match self.rng.below(4) {
            0 => {
                let n = self.my_number();
                out.push_str(&format!("個人番号（マイナンバー）: {n}\n"));
            }
            1 => {
                let c = self.corporate();
                out.push_str(&format!("法人番号 {c} の登録を確認しました\n"));
            }
            2 => {
                let card = self.card();
                let email = self.email();
                out.push_str(&format!(
                    "2026-01-15T10:23:45Z WARN payment retry ref {card} user={email} latency=120ms\n"
                ));
            }
            _ => {
                let phone = self.phone();
                out.push_str(&format!("お客様からの折り返し先 {phone} まで\n"));
                let ts = format!(
                    "2026{:02}{:02}{:06}",
                    1 + self.rng.below(12),
                    1 + self.rng.below(28),
                    self.rng.below(240_000)
                );
                out.push_str(&format!("処理ID {ts} 完了\n"));
            }
        }
    }

    fn csv(&mut self, rows: usize) -> String {
        let mut out = String::from(
            "注文番号,氏名,電話番号,メールアドレス,郵便番号,住所,カード番号,有効期限,商品コード\n",
        );
        for _ in 0..rows {
            let order = if self.rng.chance(50) {
                self.card_lookalike()
            } else {
                self.my_number_lookalike()
            };
            let name = self.name();
            let phone = self.phone();
            let email = self.email();
            let postal = self.postal();
            let address = self.address(false);
            let card = self.card();
            let expiry = self.expiry();
            let jan = self.jan();
            out.push_str(&format!(
                "{order},{name},{phone},{email},{postal},\"{address}\",{card},{expiry},{jan}\n"
            ));
        }
        out
    }
}

fn encode(text: &str, encoding: TextEncoding) -> Option<Vec<u8>> {
    let enc: &'static Encoding = match encoding {
        TextEncoding::ShiftJis => SHIFT_JIS,
        TextEncoding::EucJp => EUC_JP,
        TextEncoding::Iso2022Jp => ISO_2022_JP,
        TextEncoding::Utf16Le => {
            let mut out = vec![0xFF, 0xFE];
            out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            return Some(out);
        }
        _ => UTF_8,
    };
    let (bytes, _, errors) = enc.encode(text);
    (!errors).then(|| bytes.into_owned())
}

/// Generates `documents` files (text and CSV alternating) with the ground
/// truth fingerprinted by `scanner`'s key.
pub fn generate(seed: u64, documents: usize, scanner: &Scanner) -> Corpus {
    let mut b = Builder {
        rng: Rng::new(seed),
        scanner,
        truth: Vec::new(),
        document: 0,
        hard_negatives: 0,
    };
    let mut docs = Vec::with_capacity(documents);
    for i in 0..documents {
        b.document = i;
        let (kind, text) = if i % 3 == 2 {
            (DocumentKind::Csv, b.csv(20))
        } else {
            let mut text = String::new();
            for _ in 0..5 {
                b.order_mail(&mut text);
                b.misc(&mut text);
            }
            (DocumentKind::Text, text)
        };
        let wanted = ENCODINGS[i % ENCODINGS.len()];
        let (encoding, bytes) = match encode(&text, wanted) {
            Some(bytes) => (wanted, bytes),
            None => (TextEncoding::Utf8, text.into_bytes()),
        };
        let ext = if kind == DocumentKind::Csv { "csv" } else { "txt" };
        docs.push(Document {
            name: format!("doc{i:04}.{}.{ext}", encoding.as_str()),
            kind,
            encoding,
            bytes,
        });
    }
    Corpus {
        documents: docs,
        truth: b.truth,
        hard_negatives: b.hard_negatives,
    }
}

/// Unlabelled everyday text of about `len` bytes with a planted value every
/// few kilobytes: the benchmark's input.
pub fn plain_text(seed: u64, len: usize, scanner: &Scanner) -> String {
    let mut b = Builder {
        rng: Rng::new(seed),
        scanner,
        truth: Vec::new(),
        document: 0,
        hard_negatives: 0,
    };
    let mut out = String::with_capacity(len + 1024);
    let mut n = 0usize;
    while out.len() < len {
        b.filler(&mut out);
        n += 1;
        if n.is_multiple_of(40) {
            b.misc(&mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tests::test_key;
    use crate::{Confidence, Finding};

    #[test]
    fn generation_is_deterministic() {
        let s = Scanner::new(test_key());
        let a = generate(42, 6, &s);
        let b = generate(42, 6, &s);
        assert_eq!(
            a.documents.iter().map(|d| &d.bytes).collect::<Vec<_>>(),
            b.documents.iter().map(|d| &d.bytes).collect::<Vec<_>>()
        );
        assert_eq!(a.truth, b.truth);
        assert_ne!(generate(43, 6, &s).truth, a.truth);
        let encodings: Vec<TextEncoding> = a.documents.iter().map(|d| d.encoding).collect();
        assert!(encodings.contains(&TextEncoding::ShiftJis) && encodings.contains(&TextEncoding::Iso2022Jp));
    }

    /// Precision and recall per category over a generated corpus, scoring each
    /// finding against the fingerprinted ground truth as a multiset per document.
    #[test]
    fn precision_and_recall_on_generated_corpus() {
        let scanner = Scanner::new(test_key());
        let corpus = generate(2026, 60, &scanner);
        let mut expected: HashMap<(usize, Category, Fingerprint), usize> = HashMap::new();
        for t in &corpus.truth {
            *expected
                .entry((t.document, t.category, t.fingerprint))
                .or_default() += 1;
        }
        let mut tp: HashMap<Category, usize> = HashMap::new();
        let mut fp: HashMap<Category, usize> = HashMap::new();
        for (i, doc) in corpus.documents.iter().enumerate() {
            let out = match doc.kind {
                DocumentKind::Text => scanner.scan(&doc.bytes),
                DocumentKind::Csv => scanner.scan_csv(&doc.bytes, None),
            };
            assert_eq!(out.encoding, doc.encoding, "{}", doc.name);
            for f in &out.findings {
                check_locator(doc, f);
                match expected.get_mut(&(i, f.category, f.fingerprint)) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        *tp.entry(f.category).or_default() += 1;
                    }
                    _ => *fp.entry(f.category).or_default() += 1,
                }
            }
        }
        let mut r#fn: HashMap<Category, usize> = HashMap::new();
        for ((_, c, _), n) in expected {
            *r#fn.entry(c).or_default() += n;
        }
        for c in Category::ALL {
            let (t, p, n) = (
                tp.get(&c).copied().unwrap_or(0),
                fp.get(&c).copied().unwrap_or(0),
                r#fn.get(&c).copied().unwrap_or(0),
            );
            if t + p + n == 0 {
                continue;
            }
            let recall = t as f64 / (t + n).max(1) as f64;
            let precision = t as f64 / (t + p).max(1) as f64;
            eprintln!(
                "{:<16} tp {t:>5} fp {p:>3} fn {n:>3} precision {precision:.4} recall {recall:.4}",
                c.as_str()
            );
            let (min_p, min_r) = match c {
                Category::Card | Category::MyNumber | Category::Phone => (0.99, 0.999),
                _ => (0.95, 0.95),
            };
            assert!(
                precision >= min_p && recall >= min_r,
                "{c}: precision {precision} recall {recall}"
            );
        }
        assert!(corpus.hard_negatives > 500);
    }

    /// The locator must point at bytes that decode to something of the right shape.
    fn check_locator(doc: &Document, f: &Finding) {
        let l = &f.locator;
        assert!(l.byte_offset + l.byte_len <= doc.bytes.len(), "{}", doc.name);
        assert!(l.line >= 1 && l.column >= 1);
        if doc.kind == DocumentKind::Csv && f.confidence == Confidence::High {
            assert!(
                l.record.as_ref().is_some_and(|r| r.row >= 2 && r.field >= 1),
                "{f:?}"
            );
        }
    }
}
