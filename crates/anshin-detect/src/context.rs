//! Context keywords: the labels and column headers that turn a valid check
//! digit into evidence.
//!
//! One Aho-Corasick automaton holds every keyword. In text it runs lazily,
//! only over the windows around candidates, and never over the same byte twice
//! ([`ContextIndex`]): on ordinary text, where candidates are rare, most bytes
//! are never seen by it; on number-dense text it costs one pass.

use std::collections::VecDeque;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// Keyword classes (bit flags).
pub(crate) mod class {
    pub const CARD: u32 = 1 << 0;
    pub const CVC: u32 = 1 << 1;
    pub const EXPIRY: u32 = 1 << 2;
    pub const MY_NUMBER: u32 = 1 << 3;
    pub const CORPORATE: u32 = 1 << 4;
    pub const PHONE: u32 = 1 << 5;
    pub const POSTAL: u32 = 1 << 6;
    pub const PASSPORT: u32 = 1 << 7;
    pub const RESIDENCE: u32 = 1 << 8;
    /// 口座: an account number follows.
    pub const BANK: u32 = 1 << 9;
    /// 銀行, 支店: bank context, weaker on its own.
    pub const BANK_CONTEXT: u32 = 1 << 10;
    pub const NAME: u32 = 1 << 11;
    pub const ADDRESS: u32 = 1 << 12;
    pub const EMAIL: u32 = 1 << 13;
    /// Order, invoice, slip numbers: hard negatives for every numeric detector.
    pub const ORDER: u32 = 1 << 14;
    /// Parcel tracking numbers.
    pub const TRACKING: u32 = 1 << 15;
    /// JAN/EAN barcodes, product codes.
    pub const BARCODE: u32 = 1 << 16;
    /// Words that are labels in a column header only ("name" alone is too
    /// common in text: YAML, code).
    pub const HEADER_ONLY: u32 = 1 << 17;
    /// Header words that say a name column is not a person's (商品名, shop_name).
    pub const NOT_PERSON: u32 = 1 << 18;

    pub const NEGATIVE: u32 = ORDER | TRACKING | BARCODE;
}

use class::*;

/// Keywords and their classes. Matching is ASCII case-insensitive; ASCII
/// keywords must stand as words (no ASCII letter on either side).
const KEYWORDS: &[(&str, u32)] = &[
    // Cards.
    ("カード番号", CARD),
    ("クレジットカード", CARD),
    ("カード", CARD),
    ("クレジット", CARD),
    ("card", CARD),
    ("cards", CARD),
    ("credit", CARD),
    ("card number", CARD),
    ("cardnumber", CARD),
    ("card_number", CARD),
    ("card_no", CARD),
    ("cardno", CARD),
    ("cc", CARD),
    ("ccnum", CARD),
    ("cc_number", CARD),
    ("pan", CARD),
    ("visa", CARD),
    ("mastercard", CARD),
    ("amex", CARD),
    ("jcb", CARD),
    ("diners", CARD),
    ("決済", CARD),
    // Security codes.
    ("セキュリティコード", CVC),
    ("セキュリティーコード", CVC),
    ("セキュリティ番号", CVC),
    ("cvv", CVC),
    ("cvv2", CVC),
    ("cvc", CVC),
    ("cvc2", CVC),
    ("cid", CVC),
    ("csc", CVC),
    ("security code", CVC),
    ("securitycode", CVC),
    ("security_code", CVC),
    // Expiry.
    ("有効期限", EXPIRY),
    ("有効期間", EXPIRY),
    ("expiry", EXPIRY),
    ("expiration", EXPIRY),
    ("exp", EXPIRY),
    ("exp_date", EXPIRY),
    ("valid thru", EXPIRY),
    ("good thru", EXPIRY),
    // My Number.
    ("マイナンバー", MY_NUMBER),
    ("個人番号", MY_NUMBER),
    ("my number", MY_NUMBER),
    ("mynumber", MY_NUMBER),
    ("my_number", MY_NUMBER),
    // Corporate numbers.
    ("法人番号", CORPORATE),
    ("登録番号", CORPORATE),
    ("適格請求書", CORPORATE),
    ("インボイス", CORPORATE),
    ("corporate number", CORPORATE),
    ("corporate_number", CORPORATE),
    // Phones.
    ("電話番号", PHONE),
    ("電話", PHONE),
    ("携帯", PHONE),
    ("連絡先", PHONE),
    ("折り返し", PHONE),
    ("ファックス", PHONE),
    ("tel", PHONE),
    ("phone", PHONE),
    ("mobile", PHONE),
    ("fax", PHONE),
    ("phone_number", PHONE),
    // Postal codes.
    ("〒", POSTAL),
    ("郵便番号", POSTAL),
    ("zip", POSTAL),
    ("zipcode", POSTAL),
    ("zip_code", POSTAL),
    ("postal", POSTAL),
    ("postcode", POSTAL),
    ("postal_code", POSTAL),
    // Passports and residence cards.
    ("旅券", PASSPORT),
    ("旅券番号", PASSPORT),
    ("パスポート", PASSPORT),
    ("passport", PASSPORT),
    ("在留カード", RESIDENCE),
    ("在留番号", RESIDENCE),
    ("在留カード番号", RESIDENCE),
    ("residence card", RESIDENCE),
    // Bank accounts.
    ("口座番号", BANK),
    ("口座", BANK),
    ("普通預金", BANK),
    ("当座預金", BANK),
    ("account number", BANK),
    ("account_number", BANK),
    ("account no", BANK),
    ("銀行", BANK_CONTEXT),
    ("支店", BANK_CONTEXT),
    ("bank", BANK_CONTEXT),
    ("branch", BANK_CONTEXT),
    // Names.
    ("氏名", NAME),
    ("お名前", NAME),
    ("名前", NAME),
    ("ご氏名", NAME),
    ("宛名", NAME),
    ("フリガナ", NAME),
    ("ふりがな", NAME),
    ("カード名義", NAME | CARD),
    ("名義", NAME),
    ("full name", NAME),
    ("customer name", NAME),
    ("cardholder name", NAME | CARD),
    ("card holder", NAME | CARD),
    ("name", NAME | HEADER_ONLY),
    ("first_name", NAME | HEADER_ONLY),
    ("last_name", NAME | HEADER_ONLY),
    ("full_name", NAME | HEADER_ONLY),
    ("customer_name", NAME | HEADER_ONLY),
    ("姓", NAME | HEADER_ONLY),
    ("名", NAME | HEADER_ONLY),
    ("商品", NOT_PERSON),
    ("品名", NOT_PERSON),
    ("店舗", NOT_PERSON),
    ("会社", NOT_PERSON),
    ("ファイル", NOT_PERSON),
    ("product", NOT_PERSON),
    ("item", NOT_PERSON),
    ("shop", NOT_PERSON),
    ("store", NOT_PERSON),
    ("company", NOT_PERSON),
    ("file", NOT_PERSON),
    ("user", NOT_PERSON),
    // Addresses.
    ("住所", ADDRESS),
    ("ご住所", ADDRESS),
    ("お届け先", ADDRESS),
    ("届け先", ADDRESS),
    ("送付先", ADDRESS),
    ("配送先", ADDRESS),
    ("所在地", ADDRESS),
    ("shipping address", ADDRESS),
    ("billing address", ADDRESS),
    ("mailing address", ADDRESS),
    ("home address", ADDRESS),
    ("address", ADDRESS | HEADER_ONLY),
    ("address1", ADDRESS | HEADER_ONLY),
    ("address2", ADDRESS | HEADER_ONLY),
    ("都道府県", ADDRESS | HEADER_ONLY),
    ("市区町村", ADDRESS | HEADER_ONLY),
    // E-mail.
    ("メールアドレス", EMAIL),
    ("メール", EMAIL),
    ("email", EMAIL),
    ("e-mail", EMAIL),
    ("mail", EMAIL),
    // Hard negatives.
    ("注文番号", ORDER),
    ("受注番号", ORDER),
    ("注文", ORDER),
    ("伝票番号", TRACKING),
    ("問合せ番号", TRACKING),
    ("問い合わせ番号", TRACKING),
    ("お問い合わせ番号", TRACKING),
    ("追跡番号", TRACKING),
    ("追跡", TRACKING),
    ("tracking", TRACKING),
    ("order", ORDER),
    ("order_id", ORDER),
    ("order no", ORDER),
    ("invoice", ORDER),
    ("会員番号", ORDER),
    ("請求番号", ORDER),
    ("管理番号", ORDER),
    ("jan", BARCODE),
    ("ean", BARCODE),
    ("バーコード", BARCODE),
    ("商品コード", BARCODE),
    ("品番", BARCODE),
    ("sku", BARCODE),
    ("barcode", BARCODE),
];

/// The keyword automaton. Built once per process (`KEYWORDS` in lib.rs).
#[derive(Debug, Clone)]
pub(crate) struct Keywords {
    dfa: DFA,
    /// Per pattern: flags, and whether its first/last byte is an ASCII letter
    /// (then it needs a word boundary there).
    meta: Vec<(u32, bool, bool)>,
    max_len: usize,
    /// Bit set over (second-to-last byte, last byte) of every name or address
    /// label, both ASCII cases: a colon with no such pair just before it
    /// cannot follow such a label, and skips the automaton.
    label_ends: Box<[u64; 1024]>,
}

impl Keywords {
    pub fn new() -> Self {
        // A DFA: the automatic choice for this many case-insensitive patterns
        // is a contiguous NFA, which profiling showed at a fifth of the scan
        // time on label and context searches. The DFA is a few hundred KiB.
        // No prefilter: keywords start with too many different bytes for one
        // to skip anything, and without it the start state is not special,
        // so the search loop below tests one state range per byte.
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(KEYWORDS.iter().map(|(k, _)| k))
            .unwrap_or_else(|_| unreachable_automaton());
        let meta = KEYWORDS
            .iter()
            .map(|(k, f)| {
                let b = k.as_bytes();
                (
                    *f,
                    b.first().is_some_and(u8::is_ascii_alphabetic),
                    b.last().is_some_and(u8::is_ascii_alphabetic),
                )
            })
            .collect();
        let max_len = KEYWORDS.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut label_ends = Box::new([0u64; 1024]);
        let cases = |b: u8| [b.to_ascii_lowercase(), b.to_ascii_uppercase()];
        for (k, f) in KEYWORDS {
            if f & (NAME | ADDRESS) == 0 || f & HEADER_ONLY != 0 {
                continue;
            }
            let b = k.as_bytes();
            if b.len() < 2 {
                // A one-byte label would need every byte: no filter.
                label_ends.fill(u64::MAX);
                break;
            }
            for x in cases(b[b.len() - 2]) {
                for y in cases(b[b.len() - 1]) {
                    let bit = usize::from(x) << 8 | usize::from(y);
                    label_ends[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        Self {
            dfa,
            meta,
            max_len,
            label_ends,
        }
    }

    /// Whether a name or address label could end within 3 bytes before
    /// `pos` (the window [`Keywords::label_before`] accepts). False means
    /// `label_before` cannot return a name or address class.
    pub fn may_end_label(&self, text: &[u8], pos: usize) -> bool {
        // The label's last two bytes end at pos, pos-1, pos-2 or pos-3.
        let before = text
            .get(pos.saturating_sub(5)..pos.min(text.len()))
            .unwrap_or_default();
        before.windows(2).any(|w| {
            let bit = usize::from(w[0]) << 8 | usize::from(w[1]);
            self.label_ends[bit / 64] & (1 << (bit % 64)) != 0
        })
    }

    /// Every keyword hit in `text[start..end]` (hits may extend up to
    /// `max_len` past `end`), each with its flags, calling `f(start, end, flags)`.
    fn for_each_hit(&self, text: &[u8], start: usize, end: usize, mut f: impl FnMut(usize, usize, u32)) {
        let stop = (end + self.max_len).min(text.len());
        let mut at = start;
        while at < stop
            && let Some((pattern, s, e)) = self.leftmost_longest(text, at, stop)
        {
            if s >= end {
                break;
            }
            at = e;
            let (flags, word_start, word_end) = self.meta[pattern];
            if word_start && s > 0 && text[s - 1].is_ascii_alphabetic() {
                continue;
            }
            if word_end && text.get(e).is_some_and(u8::is_ascii_alphabetic) {
                continue;
            }
            f(s, e, flags);
        }
    }

    /// The leftmost-longest keyword in `text[at..stop]` as (pattern, start, end):
    /// what `AhoCorasick::find_iter` yields one at a time, written out over
    /// the DFA because its per-call setup cost more than the few dozen
    /// bytes each search here walks (the loop is aho-corasick's documented
    /// one for [`Automaton`]).
    #[inline]
    fn leftmost_longest(&self, text: &[u8], at: usize, stop: usize) -> Option<(usize, usize, usize)> {
        let dfa = &self.dfa;
        let hay = text.get(..stop)?;
        let mut sid = dfa.start_state(Anchored::No).ok()?;
        // The last match state and where it was entered: two plain values,
        // which the hot path of the loop leaves alone (an `Option` of the
        // whole match there cost twice the instructions per byte).
        let (mut matched, mut matched_end) = (None, 0);
        let mut k = at;
        while let Some(&b) = hay.get(k) {
            sid = dfa.next_state(Anchored::No, sid, b);
            k += 1;
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    break;
                }
                if dfa.is_match(sid) {
                    matched = Some(sid);
                    matched_end = k;
                }
            }
        }
        let pattern = dfa.match_pattern(matched?, 0);
        Some((
            pattern.as_usize(),
            matched_end - dfa.pattern_len(pattern),
            matched_end,
        ))
    }

    /// The classes of a keyword that ends within 3 bytes (spaces) before
    /// `pos`, searching only the few bytes a label can span. Labels before a
    /// colon are checked this way, apart from [`ContextIndex`], so that the
    /// many colons of ordinary text cost a 40-byte search, not a window.
    pub fn label_before(&self, text: &[u8], pos: usize, floor: usize) -> u32 {
        let from = pos.saturating_sub(self.max_len + 3).max(floor);
        let mut flags = 0;
        self.for_each_hit(text, from, pos, |_, e, f| {
            if e <= pos && pos - e <= 3 && f & HEADER_ONLY == 0 {
                flags = f;
            }
        });
        flags & !NOT_PERSON
    }

    /// The union of the classes of every keyword in a column header.
    pub fn classify_header(&self, header: &str) -> u32 {
        let mut flags = 0;
        self.for_each_hit(header.as_bytes(), 0, header.len(), |_, _, f| flags |= f);
        if flags & NOT_PERSON != 0 {
            flags &= !NAME;
        }
        flags & !(HEADER_ONLY | NOT_PERSON)
    }
}

/// The DFA fails to build only when limits are exceeded, which the fixed
/// table above cannot reach; fall back to an automaton with no patterns
/// rather than panic.
fn unreachable_automaton() -> DFA {
    DFA::new(std::iter::empty::<&str>()).unwrap_or_else(|_| unreachable!("an empty automaton always builds"))
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    flags: u32,
}

/// What the keywords around a candidate say.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// Classes of all keywords in the window.
    pub any: u32,
    /// Classes of the nearest keyword before the candidate, and its distance
    /// in bytes from the candidate's start.
    pub nearest: u32,
    pub nearest_distance: usize,
}

impl Context {
    /// Whether the window holds a keyword of `class`.
    pub fn has(&self, class: u32) -> bool {
        self.any & class != 0
    }

    /// Whether the nearest preceding keyword is of `class` and within `max` bytes.
    pub fn labelled(&self, class: u32, max: usize) -> bool {
        self.nearest & class != 0 && self.nearest_distance <= max
    }

    /// Whether the nearest preceding keyword says "not this": an order,
    /// tracking or barcode label, unless it is also a label of `class`.
    pub fn negated(&self, class: u32) -> bool {
        self.nearest & NEGATIVE != 0 && self.nearest & class == 0 && self.nearest_distance <= 48
    }
}

/// Keyword hits over one text, computed lazily and in order.
pub(crate) struct ContextIndex<'k> {
    keywords: &'k Keywords,
    /// Hits with start < `frontier` are all known.
    frontier: usize,
    hits: VecDeque<Hit>,
    /// Flags that are not counted in text (header-only words).
    text_mask: u32,
}

/// Bytes before a candidate searched for keywords.
pub(crate) const LOOK_BEHIND: usize = 128;
/// Bytes after a candidate searched for keywords.
pub(crate) const LOOK_AHEAD: usize = 32;

impl<'k> ContextIndex<'k> {
    pub fn new(keywords: &'k Keywords) -> Self {
        Self {
            keywords,
            frontier: 0,
            hits: VecDeque::new(),
            text_mask: !(HEADER_ONLY | NOT_PERSON),
        }
    }

    /// The context of the candidate `text[start..end]`, looking no further
    /// back than `floor` nor further ahead than `ceil` (a CSV cell's bounds).
    pub fn around(&mut self, text: &[u8], start: usize, end: usize, floor: usize, ceil: usize) -> Context {
        let lo = start.saturating_sub(LOOK_BEHIND).max(floor);
        let hi = (end + LOOK_AHEAD).min(ceil).min(text.len());
        if hi > self.frontier {
            let from = self.frontier.max(lo);
            let hits = &mut self.hits;
            let mask = self.text_mask;
            self.keywords.for_each_hit(text, from, hi, |s, e, f| {
                let flags = if f & HEADER_ONLY != 0 { 0 } else { f & mask };
                if flags != 0 {
                    hits.push_back(Hit {
                        start: s,
                        end: e,
                        flags,
                    });
                }
            });
            self.frontier = hi;
        }
        while self.hits.front().is_some_and(|h| h.end + LOOK_BEHIND * 2 < lo) {
            self.hits.pop_front();
        }
        let mut ctx = Context {
            nearest_distance: usize::MAX,
            ..Context::default()
        };
        for h in &self.hits {
            if h.start >= hi {
                break;
            }
            if h.start < lo || h.end > ceil.min(text.len()) {
                continue;
            }
            if h.end <= start {
                ctx.any |= h.flags;
                let d = start - h.end;
                if d <= ctx.nearest_distance {
                    ctx.nearest = h.flags;
                    ctx.nearest_distance = d;
                }
            } else if h.start >= end {
                ctx.any |= h.flags;
            }
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy as _;

    use super::*;

    #[test]
    fn ascii_keywords_need_word_boundaries() {
        let kw = Keywords::new();
        let text = "hotel room, tel: ".as_bytes();
        let mut idx = ContextIndex::new(&kw);
        let ctx = idx.around(text, text.len(), text.len(), 0, text.len());
        assert!(ctx.has(PHONE));
        assert_eq!(ctx.nearest_distance, 2);
        let text = b"hotel ";
        let mut idx = ContextIndex::new(&kw);
        assert!(!idx.around(text, 6, 6, 0, 6).has(PHONE));
    }

    #[test]
    fn nearest_label_wins() {
        let kw = Keywords::new();
        let text = "カード番号 1234 注文番号: X".as_bytes();
        let mut idx = ContextIndex::new(&kw);
        let at = text.len() - 1;
        let ctx = idx.around(text, at, text.len(), 0, text.len());
        assert!(ctx.has(CARD) && ctx.has(ORDER));
        assert!(ctx.negated(CARD));
        assert!(!ctx.labelled(CARD, 100));
    }

    #[test]
    fn label_end_filter_is_a_superset_of_label_before() {
        let kw = Keywords::new();
        for text in [
            "氏名:",
            "お名前 :",
            "ご住所　:",
            "NAME:",
            "Address:",
            "お届け先:",
            "dummy",
            "時刻:",
            "status:",
        ] {
            let pos = text.rfind(':').unwrap_or(text.len());
            let label = kw.label_before(text.as_bytes(), pos, 0);
            if label & (NAME | ADDRESS) != 0 {
                assert!(kw.may_end_label(text.as_bytes(), pos), "filter drops a label");
            }
        }
        assert!(!kw.may_end_label("時刻:".as_bytes(), "時刻".len()));
        assert!(!kw.may_end_label(b"x", 0));
    }

    proptest::proptest! {
        /// The hand-written DFA walk finds exactly the keywords
        /// aho-corasick's own leftmost-longest iterator finds, from any start
        /// and end (text of keywords, their prefixes and suffixes, letters,
        /// digits and look-alike bytes).
        #[test]
        fn dfa_walk_matches_find_iter(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(KEYWORDS.iter().map(|(k, _)| *k).collect::<Vec<_>>()).prop_map(str::to_owned),
                    proptest::sample::select(KEYWORDS.iter().map(|(k, _)| *k).collect::<Vec<_>>())
                        .prop_flat_map(|k| (proptest::strategy::Just(k), 0..=k.len()))
                        .prop_map(|(k, cut)| String::from_utf8_lossy(&k.as_bytes()[..cut]).into_owned()),
                    proptest::sample::select(vec!["a", "Z", " ", "_", "1", ":", "番号", "カ", "ー", "\u{3000}", "CARD", "Tel", "x"]).prop_map(str::to_owned),
                ],
                0..30,
            ),
            from in 0usize..400,
            to in 0usize..400,
        ) {
            let text = parts.concat();
            let bytes = text.as_bytes();
            let kw = Keywords::new();
            let (start, end) = (from.min(bytes.len()), to.min(bytes.len()));
            let mut walked = Vec::new();
            kw.for_each_hit(bytes, start, end, |s, e, f| walked.push((s, e, f)));
            let reference = aho_corasick::AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(KEYWORDS.iter().map(|(k, _)| k))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let stop = (end + kw.max_len).min(bytes.len());
            let mut expected = Vec::new();
            if start < stop {
                for m in reference.find_iter(aho_corasick::Input::new(bytes).span(start..stop)) {
                    if m.start() >= end {
                        break;
                    }
                    let (flags, word_start, word_end) = kw.meta[m.pattern().as_usize()];
                    if word_start && m.start() > 0 && bytes[m.start() - 1].is_ascii_alphabetic() {
                        continue;
                    }
                    if word_end && bytes.get(m.end()).is_some_and(u8::is_ascii_alphabetic) {
                        continue;
                    }
                    expected.push((m.start(), m.end(), flags));
                }
            }
            proptest::prop_assert_eq!(walked, expected);
        }
    }

    #[test]
    fn headers_classify() {
        let kw = Keywords::new();
        assert_eq!(kw.classify_header("カード番号"), CARD);
        assert_eq!(kw.classify_header("Customer_Name"), NAME);
        assert_eq!(kw.classify_header("product_name"), 0);
        assert_eq!(kw.classify_header("電話番号"), PHONE);
        assert_eq!(kw.classify_header("注文番号"), ORDER);
        assert_eq!(kw.classify_header("username"), 0);
    }

    #[test]
    fn header_only_words_do_not_count_in_text() {
        let kw = Keywords::new();
        let text = b"name: build";
        let mut idx = ContextIndex::new(&kw);
        assert!(!idx.around(text, 6, 11, 0, text.len()).has(NAME));
    }
}
