//! A labelled corpus written without anshin's detector code: its own brand
//! table, Luhn, My Number check digit (総務省令第八十五号 第五条) and Japanese
//! numbering plan, in everyday Japanese and English order mails, forms and
//! logs, with hard negatives (order and membership numbers that pass Luhn,
//! tracking numbers that pass the My Number check, JAN codes, corporate
//! numbers, timestamps, prices, postal codes). The truth is the byte span of
//! every planted card number, My Number and phone number in the encoded
//! output, so findings are scored by where they are, not by a fingerprint the
//! detectors compute. Used by `tests/independent_accuracy.rs` and the
//! throughput example's `independent_accuracy` scenario.
//!
//! The values live in memory only; nothing here prints or writes them.

use encoding_rs::{Encoding, SHIFT_JIS, UTF_8};

/// What a planted value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Card,
    MyNumber,
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Card, Kind::MyNumber, Kind::Phone];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Card => "card",
            Kind::MyNumber => "my_number",
            Kind::Phone => "phone",
        }
    }
}

/// One planted value: its byte span in [`Corpus::bytes`].
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// The generated text, its truth and how many hard negatives it holds.
pub struct Corpus {
    pub bytes: Vec<u8>,
    pub planted: Vec<Planted>,
    pub negatives: usize,
}

/// splitmix64: small, seedable, good enough to vary test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.below(10) as u8).collect()
    }

    fn digit_from(&mut self, lo: u8) -> u8 {
        lo + self.below(usize::from(10 - lo)) as u8
    }
}

/// Luhn check digit for `body` (digit values 0–9), written for this test.
pub fn luhn_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Σ digit × weight(i), i counting from the rightmost digit (0).
fn weighted_from_right(body: &[u8], weight: impl Fn(u32) -> u32) -> u32 {
    body.iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * weight(i as u32))
        .sum()
}

/// My Number check digit: P_n the n-th digit from the right of the eleven,
/// Q_n = n + 1 for n ≤ 6 and n − 5 above; 11 − (ΣPQ mod 11), or 0 when the
/// remainder is 0 or 1.
pub fn my_number_digit(body: &[u8]) -> u8 {
    let r = weighted_from_right(body, |i| if i < 6 { i + 2 } else { i - 4 }) % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

/// EAN-13 check digit for twelve digits: weight 3 on the rightmost and every
/// second one to its left, 1 on the others.
pub fn ean_digit(body: &[u8]) -> u8 {
    let sum = weighted_from_right(body, |i| if i % 2 == 0 { 3 } else { 1 });
    ((10 - sum % 10) % 10) as u8
}

/// Corporate number check digit (the first of 13): 9 − (Σ over the twelve
/// with weights 1 and 2 from the right, mod 9).
pub fn corporate_digit(body: &[u8]) -> u8 {
    (9 - weighted_from_right(body, |i| if i % 2 == 0 { 1 } else { 2 }) % 9) as u8
}

/// Card prefixes (issuer ranges as the brands publish them), lengths and
/// how they are grouped when printed.
struct CardBrand {
    prefixes: &'static [&'static str],
    len: usize,
    groupings: &'static [&'static [usize]],
}

const FOURS_16: &[usize] = &[4, 4, 4, 4];
const CARD_BRANDS: &[CardBrand] = &[
    CardBrand {
        prefixes: &["4"],
        len: 16,
        groupings: &[&[16], FOURS_16],
    },
    CardBrand {
        prefixes: &["51", "52", "53", "54", "55", "2221", "2500", "2720"],
        len: 16,
        groupings: &[&[16], FOURS_16],
    },
    CardBrand {
        prefixes: &["34", "37"],
        len: 15,
        groupings: &[&[15], &[4, 6, 5], &[4, 4, 4, 3]],
    },
    CardBrand {
        prefixes: &["3528", "3540", "3566", "3589"],
        len: 16,
        groupings: &[&[16], FOURS_16],
    },
    CardBrand {
        prefixes: &["300", "305", "36", "38"],
        len: 14,
        groupings: &[&[14], &[4, 6, 4]],
    },
    CardBrand {
        prefixes: &["6011", "65"],
        len: 16,
        groupings: &[&[16], FOURS_16],
    },
];

/// How digits are written: separator between groups, full-width or not.
#[derive(Clone, Copy)]
enum Style {
    Plain,
    Space,
    Hyphen,
    FullWidth,
}

fn render(digits: &[u8], groups: &[usize], style: Style) -> String {
    let (sep, wide) = match style {
        Style::Plain => ("", false),
        Style::Space => (" ", false),
        Style::Hyphen => ("-", false),
        Style::FullWidth => ("－", true),
    };
    let groups: &[usize] = if matches!(style, Style::Plain) {
        &[]
    } else {
        groups
    };
    let mut out = String::new();
    let mut k = 0;
    let mut bounds = Vec::new();
    for g in groups {
        k += g;
        bounds.push(k);
    }
    for (i, &d) in digits.iter().enumerate() {
        if i > 0 && bounds.contains(&i) {
            out.push_str(sep);
        }
        let c = if wide {
            char::from_u32('０' as u32 + u32::from(d)).unwrap_or('０')
        } else {
            char::from(b'0' + d)
        };
        out.push(c);
    }
    out
}

const FILLER: &[&str] = &[
    "いつも当店をご利用いただき、誠にありがとうございます。\n",
    "ご注文の商品は2営業日以内に発送いたします。\n",
    "Thank you for shopping with us. We will let you know when your order ships.\n",
    "合計金額 ¥8,640（税込）、送料無料\n",
    "2026-04-02 14:05:33 INFO GET /api/v2/orders?page=4 200 18ms\n",
    "数量: 3 / 単価: 2,880円\n",
    "本メールは送信専用のアドレスからお送りしています。\n",
    "受付日時：2026年4月2日 14時05分\n",
    "Please keep this message for your records.\n",
    "ポイント残高 1,250pt（有効期限 2027年3月31日）\n",
    "client 192.168.10.24 connected, session 8842 established\n",
];

const CARD_LINES: &[&str] = &[
    "カード番号：{}\n",
    "お支払い方法：クレジットカード（{}）\n",
    "Card number: {}\n",
    "ご登録のカード {} の有効期限が近づいています。\n",
    "2026-04-02 14:05:34 WARN payment declined pan={} code=05\n",
    "決済に利用されたカード番号 {} を確認しました。\n",
    "VISA {} にてお支払い済みです。\n",
];

const MY_NUMBER_LINES: &[&str] = &[
    "個人番号（マイナンバー）：{}\n",
    "マイナンバー {} の提出を確認しました。\n",
    "My Number: {}\n",
    "扶養親族の個人番号 {}\n",
];

const PHONE_LINES: &[&str] = &[
    "電話番号：{}\n",
    "TEL {}\n",
    "携帯電話 {} までご連絡ください。\n",
    "Phone: {}\n",
    "緊急連絡先：{}\n",
    "お客様からの折り返し先 {} まで\n",
    "FAX {}\n",
];

/// Area codes with the lengths of the two groups after them (ten digits in all).
const AREAS: &[(&str, usize, usize)] = &[
    ("03", 4, 4),
    ("06", 4, 4),
    ("045", 3, 4),
    ("052", 3, 4),
    ("011", 3, 4),
    ("092", 3, 4),
    ("0466", 2, 4),
    ("0166", 2, 4),
];

struct Builder {
    rng: Rng,
    text: String,
    spans: Vec<(Kind, usize, usize)>,
    negatives: usize,
}

impl Builder {
    fn line(&mut self, template: &str, kind: Option<Kind>, value: &str) {
        let (before, after) = template.split_once("{}").unwrap_or((template, ""));
        self.text.push_str(before);
        let start = self.text.len();
        self.text.push_str(value);
        if let Some(kind) = kind {
            self.spans.push((kind, start, self.text.len()));
        } else {
            self.negatives += 1;
        }
        self.text.push_str(after);
    }

    fn style(&mut self, full_width_ok: bool) -> Style {
        match self.rng.below(if full_width_ok { 4 } else { 3 }) {
            0 => Style::Plain,
            1 => Style::Space,
            2 => Style::Hyphen,
            _ => Style::FullWidth,
        }
    }

    fn card(&mut self) -> String {
        let brand = &CARD_BRANDS[self.rng.below(CARD_BRANDS.len())];
        let prefix = self.rng.pick(brand.prefixes);
        let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        let rest = self.rng.digits(brand.len - 1 - d.len());
        d.extend(rest);
        d.push(luhn_digit(&d));
        let groups = brand.groupings[self.rng.below(brand.groupings.len())];
        let style = if groups.len() == 1 {
            Style::Plain
        } else {
            self.style(true)
        };
        render(&d, groups, style)
    }

    fn my_number(&mut self) -> String {
        let mut d = self.rng.digits(11);
        d.push(my_number_digit(&d));
        let style = self.style(true);
        render(&d, &[4, 4, 4], style)
    }

    /// A personal number: mobile, IP (050) or fixed line. Toll-free and
    /// shared-cost numbers (0120, 0800, 0570) are companies', not personal
    /// data, so they are not planted.
    fn phone(&mut self) -> String {
        // Subscriber numbers never start with 0 or 1.
        let tail = |n: usize, rng: &mut Rng| {
            let mut d = vec![rng.digit_from(2)];
            d.extend(rng.digits(n - 1));
            d
        };
        let (mut d, groups): (Vec<u8>, Vec<usize>) = match self.rng.below(6) {
            0 | 1 => {
                let prefix = self.rng.pick(&["090", "080", "070"]);
                let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
                d.push(self.rng.digit_from(1));
                d.extend(self.rng.digits(7));
                (d, vec![3, 4, 4])
            }
            2 => {
                let mut d = vec![0, 5, 0];
                d.push(self.rng.digit_from(1));
                d.extend(self.rng.digits(7));
                (d, vec![3, 4, 4])
            }
            _ => {
                let (area, a, b) = AREAS[self.rng.below(AREAS.len())];
                let mut d: Vec<u8> = area.bytes().map(|b| b - b'0').collect();
                d.extend(tail(a + b, &mut self.rng));
                (d, vec![area.len(), a, b])
            }
        };
        if self.rng.below(6) == 0 {
            // International form: +81, the leading 0 dropped.
            d.remove(0);
            let mut groups = groups;
            groups[0] -= 1;
            let sep = if self.rng.below(2) == 0 { "-" } else { " " };
            let body = render(&d, &groups, Style::Hyphen).replace('-', sep);
            return format!("+81{sep}{body}");
        }
        let style = self.style(true);
        render(&d, &groups, style)
    }

    fn negative(&mut self) {
        match self.rng.below(6) {
            0 => {
                // An order number that passes Luhn and starts like a Visa.
                let mut d = vec![4];
                d.extend(self.rng.digits(14));
                d.push(luhn_digit(&d));
                let v = render(&d, &[], Style::Plain);
                self.line("注文番号：{}\n", None, &v);
            }
            1 => {
                let mut d = vec![self.rng.digit_from(1)];
                d.extend(self.rng.digits(14));
                d.push(luhn_digit(&d));
                let v = render(&d, &[], Style::Plain);
                self.line("会員番号 {} でログインしました。\n", None, &v);
            }
            2 => {
                // A tracking number that passes the My Number check.
                let mut d = self.rng.digits(11);
                d.push(my_number_digit(&d));
                let v = render(&d, &[4, 4, 4], Style::Hyphen);
                self.line("お問い合わせ伝票番号：{}\n", None, &v);
            }
            3 => {
                let mut d = vec![4, 9];
                d.extend(self.rng.digits(10));
                d.push(ean_digit(&d));
                let v = render(&d, &[], Style::Plain);
                self.line("JANコード {}\n", None, &v);
            }
            4 => {
                let body = self.rng.digits(12);
                let mut d = vec![corporate_digit(&body)];
                d.extend(body);
                let v = render(&d, &[], Style::Plain);
                self.line("法人番号 {} の事業者です。\n", None, &v);
            }
            _ => {
                let v = format!("{:03}-{:04}", self.rng.below(1000), self.rng.below(10_000));
                self.line("〒{} 東京都渋谷区神南1-2-3\n", None, &v);
            }
        }
    }
}

/// Which encoding to write.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    Utf8,
    ShiftJis,
}

/// A corpus with about `per_kind` values of each kind (and as many hard
/// negatives), from `seed`.
pub fn generate(seed: u64, per_kind: usize, output: Output) -> Corpus {
    let mut b = Builder {
        rng: Rng(seed),
        text: String::new(),
        spans: Vec::new(),
        negatives: 0,
    };
    for _ in 0..per_kind * 3 {
        for _ in 0..1 + b.rng.below(3) {
            let f = b.rng.pick(FILLER);
            b.text.push_str(f);
        }
        match b.rng.below(4) {
            0 => {
                let v = b.card();
                let t = b.rng.pick(CARD_LINES);
                b.line(t, Some(Kind::Card), &v);
            }
            1 => {
                let v = b.my_number();
                let t = b.rng.pick(MY_NUMBER_LINES);
                b.line(t, Some(Kind::MyNumber), &v);
            }
            2 => {
                let v = b.phone();
                let t = b.rng.pick(PHONE_LINES);
                b.line(t, Some(Kind::Phone), &v);
            }
            _ => b.negative(),
        }
    }
    let encoding: &'static Encoding = match output {
        Output::Utf8 => UTF_8,
        Output::ShiftJis => SHIFT_JIS,
    };
    // Encode piece by piece so every span maps to its encoded bytes (both
    // encodings are stateless, so pieces concatenate exactly).
    let mut bytes = Vec::with_capacity(b.text.len());
    let mut planted = Vec::with_capacity(b.spans.len());
    let mut at = 0;
    for &(kind, start, end) in &b.spans {
        bytes.extend_from_slice(&encoding.encode(&b.text[at..start]).0);
        let s = bytes.len();
        bytes.extend_from_slice(&encoding.encode(&b.text[start..end]).0);
        planted.push(Planted {
            kind,
            start: s,
            end: bytes.len(),
        });
        at = end;
    }
    bytes.extend_from_slice(&encoding.encode(&b.text[at..]).0);
    Corpus {
        bytes,
        planted,
        negatives: b.negatives,
    }
}

/// Per kind: (planted, reported, true positives).
pub type Score = Vec<(Kind, usize, usize, usize)>;

/// Scores findings given as (kind, byte offset, byte length): a finding is a
/// hit when it overlaps a planted value of its kind not already hit.
pub fn score(corpus: &Corpus, findings: &[(Kind, usize, usize)]) -> Score {
    let mut hit = vec![false; corpus.planted.len()];
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let planted = corpus.planted.iter().filter(|p| p.kind == kind).count();
        let mut reported = 0;
        let mut tp = 0;
        for &(k, off, len) in findings.iter().filter(|f| f.0 == kind) {
            reported += 1;
            let end = off + len.max(1);
            // Planted spans are in order: find the first that ends after `off`.
            let i = corpus.planted.partition_point(|p| p.end <= off);
            if let Some(j) = (i..corpus.planted.len())
                .take_while(|&j| corpus.planted[j].start < end)
                .find(|&j| corpus.planted[j].kind == k && !hit[j])
            {
                hit[j] = true;
                tp += 1;
            }
        }
        out.push((kind, planted, reported, tp));
    }
    out
}
