//! The scanning engine: a block-at-a-time byte-class candidate stage, then
//! validators on the few candidate positions it stops at.

use zeroize::Zeroizing;

use crate::Scanner;
use crate::context::{Context, ContextIndex, class::*};
use crate::decode::{ceil_char_boundary, floor_char_boundary};
use crate::digits::{DigitRun, OVERLAP, Sep, digit_at, separator_at};
use crate::finding::{Category, Confidence, mask_card, mask_digits, mask_email, mask_text};
use crate::validate::{
    Brand, PhoneKind, classify_phone, corporate_number_valid, is_jan_code, is_test_pan, luhn_valid,
    my_number_valid, valid_month,
};

/// A finding before its locator is resolved: offsets are in the decoded text.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub category: Category,
    pub confidence: Confidence,
    pub kind: Option<&'static str>,
    pub test_value: bool,
    pub start: usize,
    pub end: usize,
    pub masked: String,
    pub fingerprint: [u8; 32],
    /// CSV row and field (field 0 = not yet known).
    pub record: Option<(usize, usize)>,
}

/// A span of text to scan, with what is known about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub start: usize,
    pub end: usize,
    /// Keyword classes of the CSV column header, as if a label stood right before the cell.
    pub column: u32,
}

/// Most groups in one window: 4-4-4-4-3.
const MAX_WINDOW_GROUPS: usize = 5;

/// A detector's verdict on one window of a digit run.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    a: usize,
    b: usize,
    category: Category,
    confidence: Confidence,
    kind: Option<&'static str>,
    test_value: bool,
    /// Phone written with +81: the normalised value is 0 + the digits after 81.
    plus81: bool,
    /// Extra characters of the match before/after the digit groups (T prefix, letters).
    pre: usize,
    post: usize,
}

pub(crate) struct Engine<'s, 't> {
    scanner: &'s Scanner,
    text: &'t str,
    bytes: &'t [u8],
    ctx: ContextIndex<'s>,
    run: DigitRun,
    verdicts: Vec<Verdict>,
    pub out: Vec<Candidate>,
    last_card_end: Option<usize>,
}

/// Bytes the candidate stage stops at: ASCII digits and ':' (0x30–0x3A), '@',
/// and 0xEF, the lead byte of full-width digits and the full-width colon.
#[inline(always)]
fn interesting(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 11) | (b == b'@') | (b == 0xEF)
}

/// Bytes the candidate stage looks at a time.
const BLOCK: usize = 64;

/// Bit `k` set where `pick(block[k])`. Written as a loop over a fixed array
/// that LLVM turns into vector code (SSE2 on x86-64: 16 bytes per compare,
/// no `unsafe`, no intrinsics) for a simple `pick`: a flag byte per input
/// byte, then a multiply gathers the eight high bits of each word into one
/// byte.
#[inline(always)]
fn block_mask(block: &[u8; BLOCK], pick: impl Fn(u8) -> bool) -> u64 {
    let mut flags = [0u8; BLOCK];
    for (f, &b) in flags.iter_mut().zip(block) {
        *f = if pick(b) { 0x80 } else { 0 };
    }
    let mut mask = 0;
    for (k, word) in flags.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        // Byte j's bit 7 lands on bit 56 + j; no two partial products overlap.
        mask |= (x.wrapping_mul(0x0002_0408_1020_4081) >> 56) << (8 * k);
    }
    mask
}

/// The candidate stage: the positions of interesting bytes in a region, a
/// 64-byte block at a time. The block's bit set is kept between calls, so
/// the many stops in number-dense text cost a bit scan each, not a new look
/// at the bytes.
struct Candidates {
    /// Text offset of bit 0 of `mask`.
    base: usize,
    /// `base + 64` once a block is loaded (0 before).
    limit: usize,
    /// Interesting bytes of `base..limit` before the region's end.
    mask: u64,
}

impl Candidates {
    fn new() -> Self {
        Self {
            base: 0,
            limit: 0,
            mask: 0,
        }
    }

    /// The next interesting byte at or after `i` and before `end` (or `end`).
    /// `end` must be the same for every call on one value.
    #[inline]
    fn next(&mut self, bytes: &[u8], mut i: usize, end: usize) -> usize {
        loop {
            if i >= end {
                return end;
            }
            if i < self.base || i >= self.limit {
                self.load(bytes, i, end);
            }
            let mask = self.mask & (u64::MAX << (i - self.base));
            if mask != 0 {
                return self.base + mask.trailing_zeros() as usize;
            }
            i = self.limit;
        }
    }

    fn load(&mut self, bytes: &[u8], at: usize, end: usize) {
        self.base = at;
        self.limit = at + BLOCK;
        let live = end - at;
        self.mask = mask_at(bytes, at, interesting) & if live < BLOCK { (1 << live) - 1 } else { u64::MAX };
    }
}

/// [`block_mask`] of the 64 bytes at `at`, with zeros past the end of
/// `bytes` (which `pick` must refuse).
#[inline(always)]
fn mask_at(bytes: &[u8], at: usize, pick: impl Fn(u8) -> bool) -> u64 {
    match bytes.get(at..).and_then(<[u8]>::first_chunk) {
        Some(block) => block_mask(block, pick),
        None => {
            let rest = bytes.get(at..).unwrap_or_default();
            let mut padded = [0u8; BLOCK];
            padded[..rest.len()].copy_from_slice(rest);
            block_mask(&padded, pick)
        }
    }
}

fn prev_char(text: &str, pos: usize) -> Option<char> {
    text.get(..pos)?.chars().next_back()
}

fn next_char(text: &str, pos: usize) -> Option<char> {
    text.get(pos..)?.chars().next()
}

impl<'s, 't> Engine<'s, 't> {
    pub fn new(scanner: &'s Scanner, text: &'t str) -> Self {
        Self {
            scanner,
            text,
            bytes: text.as_bytes(),
            ctx: ContextIndex::new(scanner.keywords),
            run: DigitRun::new(),
            verdicts: Vec::new(),
            out: Vec::new(),
            last_card_end: None,
        }
    }

    pub fn keywords(&self) -> &'s crate::context::Keywords {
        self.scanner.keywords
    }

    pub fn scan_region(&mut self, region: Region) {
        let mut candidates = Candidates::new();
        self.scan_region_with(region, |bytes, i, end| candidates.next(bytes, i, end));
    }

    /// [`Engine::scan_region`] with the candidate stage given: the tests run
    /// it with a byte-by-byte walk as the reference.
    #[inline(always)]
    fn scan_region_with(&mut self, region: Region, mut skip: impl FnMut(&[u8], usize, usize) -> usize) {
        let bytes = self.bytes;
        let end = region.end.min(bytes.len());
        let wanted = self.scanner.options.categories;
        // Labels only ever make names and addresses (`on_label` moves nothing on).
        let labels = wanted.contains(Category::Name) || wanted.contains(Category::Address);
        let mut i = region.start;
        while i < end {
            i = skip(bytes, i, end);
            if i >= end {
                break;
            }
            if digit_at(bytes, i, end).is_some() {
                i = self.on_digits(i, &region);
                // A colon right after digits ("10:23:45") ends no label
                // (see `on_label`): step over it rather than stop at it.
                if i < end && bytes[i] == b':' && bytes[i - 1].is_ascii_digit() {
                    i += 1;
                }
                continue;
            }
            match bytes[i] {
                // Read even when e-mail is not asked for: the digits of an
                // address's domain are not a phone number either way.
                b'@' => i = self.on_at(i, &region),
                b':' if labels => {
                    self.on_label(i, 1, &region);
                    i += 1;
                }
                // U+FF1A full-width colon.
                0xEF if labels && bytes.get(i + 1..i + 3) == Some(&[0xBC, 0x9A][..]) => {
                    self.on_label(i, 3, &region);
                    i += 3;
                }
                _ => i += 1,
            }
        }
    }

    fn context(&mut self, start: usize, end: usize, region: &Region) -> Context {
        let mut ctx = self.ctx.around(self.bytes, start, end, region.start, region.end);
        if region.column != 0 {
            ctx.any |= region.column;
            if ctx.nearest == 0 {
                ctx.nearest = region.column;
                ctx.nearest_distance = 0;
            }
        }
        ctx
    }

    /// Whether a finding of `category` ending at `end` is reported (the
    /// options' minimum confidence and test values). Asked before the
    /// fingerprint and the masked form are made, which are thrown away
    /// otherwise. A card counts for the expiry date after it either way.
    fn admits(&mut self, category: Category, confidence: Confidence, test_value: bool, end: usize) -> bool {
        if category == Category::Card {
            self.last_card_end = Some(end);
        }
        let opts = &self.scanner.options;
        opts.categories.contains(category)
            && confidence >= opts.min_confidence
            && (!test_value || opts.include_test_values)
    }

    fn fingerprint(&self, category: Category, value: &[u8]) -> [u8; 32] {
        self.scanner
            .key
            .fingerprint(category.fingerprint_purpose(), value)
    }

    // ---------------------------------------------------------------- digits

    fn on_digits(&mut self, i: usize, region: &Region) -> usize {
        match self.lone_group_end(i, region) {
            Some(next) => next,
            None => self.on_run(i, region),
        }
    }

    /// Most digit runs in text are one short group of ASCII digits (a count,
    /// a price, a time of day). When the run at `i` is such a group, cannot
    /// start an expiry date and has a length no detector accepts alone, or
    /// is a run [`Engine::plain_groups_end`] dismisses, its end:
    /// [`Engine::on_run`] would find nothing in it. `None` means "read the
    /// run".
    #[inline(always)]
    fn lone_group_end(&self, i: usize, region: &Region) -> Option<usize> {
        let bytes = self.bytes;
        let end = region.end.min(bytes.len());
        let mut j = i;
        while j < end && bytes[j].is_ascii_digit() {
            j += 1;
        }
        // The run goes on (a full-width digit, or a separator and a digit),
        // or an expiry date may start: '/' or '／' after the group, and not
        // '/' or an ASCII letter or digit before it (see `expiry_after`;
        // "v1/items"). Most groups end at a byte that can do neither (a
        // letter, a line end, most Japanese characters): one test on that
        // byte decides.
        let goes_on = matches!(bytes.get(j), Some(b' ' | b'-' | b'/' | 0xE2 | 0xE3 | 0xEF))
            && (digit_at(bytes, j, end).is_some()
                || separator_at(bytes, j, end).is_some_and(|(_, w)| digit_at(bytes, j + w, end).is_some())
                || ((bytes.get(j) == Some(&b'/') || bytes.get(j..j + 3) == Some("／".as_bytes()))
                    && !(i > 0 && (bytes[i - 1] == b'/' || bytes[i - 1].is_ascii_alphanumeric()))));
        if j == i {
            return None;
        }
        if goes_on {
            return self.plain_groups_end(i, j, region);
        }
        let alone = match j - i {
            1 | 2 | 5 | 6 | 20.. => true,
            // Only security codes and expiry dates, when asked for: they
            // need no letter glued to them ("120pt", see `clean_boundaries`)
            // and a label or column.
            3 | 4 => {
                !self.scanner.options.categories.contains(Category::SecurityCode)
                    && !self.scanner.options.categories.contains(Category::Expiry)
                    || bytes
                        .get(j)
                        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'@')
                    || (i > 0 && bytes[i - 1].is_ascii_alphabetic())
                    || (region.column & (CVC | EXPIRY) == 0 && !may_follow_cvc_or_expiry_label(bytes, i))
            }
            // Phone numbers start with 0 or 81.
            9..=11 => bytes[i] != b'0' && !bytes[i..].starts_with(b"81"),
            _ => false,
        };
        alone.then_some(j)
    }

    /// Runs of a few short groups of ASCII digits joined by single spaces or
    /// hyphens in which no window has a length a detector accepts (the dates
    /// and times of log lines: "2026-01-15 10"), from the first group
    /// `i..j`: their end, where [`Engine::on_run`] would go on having found
    /// nothing. `None` means "read the run", as for anything else
    /// (full-width forms, other separators, a '/' after the run, groups of
    /// more than eight digits, more than eight groups).
    fn plain_groups_end(&self, i: usize, mut j: usize, region: &Region) -> Option<usize> {
        const MAX_GROUPS: usize = 8;
        let bytes = self.bytes;
        let end = region.end.min(bytes.len());
        // Each group's length and first digit.
        let mut groups = [(0usize, 0u8); MAX_GROUPS];
        let mut n = 0;
        let mut start = i;
        loop {
            if n == MAX_GROUPS || j - start > 8 {
                return None;
            }
            groups[n] = (j - start, bytes[start]);
            n += 1;
            match bytes.get(j) {
                Some(b' ' | b'-') if digit_at(bytes, j + 1, end).is_some() => {
                    if !bytes[j + 1].is_ascii_digit() {
                        return None;
                    }
                    start = j + 1;
                    j = start;
                    while j < end && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                // A separator or digit of several bytes, or a date after the run.
                Some(b'/' | 0xE2 | 0xE3 | 0xEF) => return None,
                _ => break,
            }
        }
        // A single group is `lone_group_end`'s to judge.
        if n < 2 {
            return None;
        }
        // The windows `evaluate_run` judges are among these, and
        // `may_match` refuses them all: 3, 4 and 8 digits count only as a
        // run's single group, 9 to 11 only from a 0 (or 81 at the start).
        for a in 0..n {
            let phone_start = groups[a].1 == b'0' || (a == 0 && groups[0].1 == b'8');
            let mut total = 0;
            for &(len, _) in &groups[a..n.min(a + MAX_WINDOW_GROUPS)] {
                total += len;
                match total {
                    7 | 12..=19 => return None,
                    9..=11 if phone_start => return None,
                    20.. => break,
                    _ => {}
                }
            }
        }
        Some(j)
    }

    /// Reads the digit run at `i`, judges its windows and returns where to go on.
    fn on_run(&mut self, i: usize, region: &Region) -> usize {
        let end = region.end.min(self.bytes.len());
        let mut start = i;
        let mut skip_before = 0;
        loop {
            self.run.read(self.bytes, start, end);
            if self.run.overlong {
                return self.run.end.max(i + 1);
            }
            if skip_before == 0
                && self.run.ngroups == 1
                && let Some(next) = self.try_expiry(0, region)
            {
                return next;
            }
            self.evaluate_run(region, skip_before);
            if !self.run.truncated {
                // "4111 1111 1111 1111 09/28": the month ends the card's run.
                let last = self.run.ngroups - 1;
                if last > 0
                    && let Some(next) = self.try_expiry(last, region)
                {
                    return next;
                }
                return self.run.end.max(i + 1);
            }
            // Continue with an overlap so windows across the cut are still seen.
            // A run cut after its only group (45 digits or more, too long for
            // any window) goes on with the group after the separator.
            let n = self.run.ngroups;
            let k = n.saturating_sub(OVERLAP).max(1);
            start = match self.run.groups().get(k) {
                Some(group) => group.start,
                None => self.run.end + separator_at(self.bytes, self.run.end, end).map_or(0, |(_, w)| w),
            };
            skip_before = n - k;
        }
    }

    /// Checks the boundaries of a digit window: no ASCII letter glued to it, not
    /// the fraction of a decimal, not the local part of an e-mail address.
    fn clean_boundaries(&self, start: usize, end: usize) -> bool {
        let before = prev_char(self.text, start);
        let after = next_char(self.text, end);
        if before.is_some_and(|c| c.is_ascii_alphabetic())
            || after.is_some_and(|c| c.is_ascii_alphabetic() || c == '@')
        {
            return false;
        }
        let decimal_before =
            before == Some('.') && prev_char(self.text, start - 1).is_some_and(|c| c.is_ascii_digit());
        let decimal_after =
            after == Some('.') && next_char(self.text, end + 1).is_some_and(|c| c.is_ascii_digit());
        !decimal_before && !decimal_after
    }

    fn evaluate_run(&mut self, region: &Region, skip_before: usize) {
        self.verdicts.clear();
        let n = self.run.ngroups;
        let plus = prev_char(self.text, self.run.groups[0].start).is_some_and(|c| c == '+' || c == '＋');
        for a in 0..n {
            let mut total = 0;
            for b in a..n.min(a + MAX_WINDOW_GROUPS) {
                let g = self.run.groups[b];
                if g.len > 19 {
                    break;
                }
                total += g.len;
                if total > 19 {
                    break;
                }
                if b < skip_before {
                    continue;
                }
                // One separator kind inside the window; after "+81" the country
                // code may be joined differently ("+81 90-1234-5678").
                let sep_from = if a == 0 && plus && b > 1 { 2 } else { a + 1 };
                let sep = if b >= sep_from {
                    self.run.groups[sep_from].sep
                } else {
                    Sep::None
                };
                if b >= sep_from && self.run.groups[b].sep != sep {
                    break;
                }
                if !self.may_match(a, b, total) {
                    continue;
                }
                // The window must not be part of a larger group of the same shape.
                let left = if a > 0 { self.run.groups[a].sep } else { Sep::None };
                let right = if b + 1 < n {
                    self.run.groups[b + 1].sep
                } else {
                    Sep::None
                };
                let glued = if a == b {
                    left == Sep::Dash || right == Sep::Dash
                } else {
                    (left != Sep::None && left == sep) || (right != Sep::None && right == sep)
                };
                if glued {
                    continue;
                }
                self.judge_window(a, b, total, region);
            }
        }
        self.resolve();
    }

    /// Most windows in text (counts, prices, dates, times) have a length
    /// or first digit no detector accepts: they are dismissed here, before
    /// any boundary work. Three, four or eight digits count only as a run's
    /// single group (a security code, an expiry date, a letter-prefixed
    /// identifier), nine to eleven only as a phone number, and one, two,
    /// five, six or more than nineteen never.
    #[inline(always)]
    fn may_match(&self, a: usize, b: usize, total: usize) -> bool {
        match total {
            3 | 4 | 8 => a == 0 && b == 0 && self.run.ngroups == 1,
            7 | 12..=19 => true,
            9..=11 => {
                let d = self.run.digits(a, b);
                d.first() == Some(&b'0') || (a == 0 && d.starts_with(b"81"))
            }
            _ => false,
        }
    }

    /// Judges a window that [`Engine::may_match`] lets through.
    fn judge_window(&mut self, a: usize, b: usize, total: usize, region: &Region) {
        let (start, end) = (self.run.groups[a].start, self.run.groups[b].end);
        let mut lens = [0u8; MAX_WINDOW_GROUPS];
        for (k, g) in self.run.groups[a..=b].iter().enumerate() {
            lens[k] = g.len as u8;
        }
        let lens = &lens[..=b - a];
        let single_run = a == 0 && b + 1 == self.run.ngroups;
        let base = Verdict {
            a,
            b,
            category: Category::Card,
            confidence: Confidence::Low,
            kind: None,
            test_value: false,
            plus81: false,
            pre: 0,
            post: 0,
        };
        let single = single_run && lens.len() == 1;
        let clean = self.clean_boundaries(start, end);

        // Letter-prefixed identifiers first: they need letters the generic check refuses.
        if single_run
            && (total == 7 || total == 8)
            && lens.len() == 1
            && let Some(v) = self.letter_ids(base, start, end, total, region)
        {
            self.verdicts.push(v);
            return;
        }
        if total == 13
            && (lens == [13] || lens == [1, 4, 4, 4])
            && let Some(v) = self.corporate(base, start, end, clean, region)
        {
            self.verdicts.push(v);
        }
        if !clean {
            return;
        }
        let digits = Zeroizing::new(self.window_digits(a, b));
        let d = &digits[..total];
        // Context costs a keyword search; ask for it only when a validator or a
        // cheap byte test says it could matter. Most digit runs in text (dates,
        // prices, times, counters) stop here.
        let card_ok =
            (13..=19).contains(&total) && card_shape(lens) && luhn_valid(d) && Brand::detect(d).is_some();
        let my_number_ok = total == 12 && (lens == [12] || lens == [4, 4, 4]) && my_number_valid(d);
        let phone_ok = (9..=13).contains(&total) && (d[0] == b'0' || (a == 0 && d.starts_with(b"81")));
        let short = single && (total == 3 || total == 4);
        let short_ok = short
            && (region.column & (CVC | EXPIRY) != 0 || may_follow_cvc_or_expiry_label(self.bytes, start));
        if !(card_ok || my_number_ok || phone_ok || total == 7 || short_ok) {
            return;
        }
        let ctx = self.context(start, end, region);

        if card_ok && let Some(v) = card(base, d, &ctx) {
            self.verdicts.push(v);
        }
        if my_number_ok && !ctx.negated(MY_NUMBER) {
            let confidence = if ctx.has(MY_NUMBER) {
                Confidence::High
            } else {
                Confidence::Low
            };
            self.verdicts.push(Verdict {
                category: Category::MyNumber,
                confidence,
                ..base
            });
        }
        if phone_ok && let Some(v) = self.phone(base, d, lens, start, &ctx) {
            self.verdicts.push(v);
        }
        if total == 7
            && let Some(v) = self.postal_or_bank(base, lens, start, &ctx)
        {
            self.verdicts.push(v);
        }
        if short_ok {
            let cvc_label = ctx.labelled(CVC, 24) || (region.column & CVC != 0);
            let exp_label = ctx.labelled(EXPIRY, 24) || (region.column & EXPIRY != 0);
            if cvc_label && !(exp_label && ctx.nearest & EXPIRY != 0) {
                self.verdicts.push(Verdict {
                    category: Category::SecurityCode,
                    confidence: Confidence::High,
                    ..base
                });
            } else if exp_label && total == 4 && valid_month(&d[..2]) {
                self.verdicts.push(Verdict {
                    category: Category::Expiry,
                    confidence: Confidence::High,
                    ..base
                });
            }
        }
    }

    fn window_digits(&self, a: usize, b: usize) -> [u8; 24] {
        let mut out = [0u8; 24];
        let d = self.run.digits(a, b);
        let n = d.len().min(24);
        out[..n].copy_from_slice(&d[..n]);
        out
    }

    /// Corporate numbers: 13 digits, check digit first; a `T` prefix makes it an
    /// invoice registration number.
    fn corporate(
        &mut self,
        base: Verdict,
        start: usize,
        end: usize,
        clean: bool,
        region: &Region,
    ) -> Option<Verdict> {
        let digits = Zeroizing::new(self.window_digits(base.a, base.b));
        if !corporate_number_valid(&digits[..13]) {
            return None;
        }
        let t_prefix = base.a == 0
            && prev_char(self.text, start) == Some('T')
            && !prev_char(self.text, start - 1).is_some_and(|c| c.is_ascii_alphanumeric())
            && !next_char(self.text, end).is_some_and(|c| c.is_ascii_alphanumeric());
        if !clean && !t_prefix {
            return None;
        }
        let ctx = self.context(start, end, region);
        if ctx.negated(CORPORATE) {
            return None;
        }
        let (confidence, kind, pre) = if t_prefix {
            (Confidence::High, Some("invoice"), 1)
        } else if ctx.has(CORPORATE) {
            (Confidence::High, None, 0)
        } else {
            (Confidence::Low, None, 0)
        };
        Some(Verdict {
            category: Category::CorporateNumber,
            confidence,
            kind,
            pre,
            ..base
        })
    }

    /// Passport (2 letters + 7 digits) and residence card (2 letters + 8 digits
    /// + 2 letters) numbers.
    fn letter_ids(
        &mut self,
        base: Verdict,
        start: usize,
        end: usize,
        total: usize,
        region: &Region,
    ) -> Option<Verdict> {
        let bytes = self.bytes;
        let upper = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_uppercase);
        if start < 2 || !upper(start - 1) || !upper(start - 2) {
            return None;
        }
        if start > 2 && bytes[start - 3].is_ascii_alphanumeric() {
            return None;
        }
        let (category, class, post) = if total == 7 {
            (Category::Passport, PASSPORT, 0)
        } else {
            if !(upper(end) && upper(end + 1)) {
                return None;
            }
            (Category::ResidenceCard, RESIDENCE, 2)
        };
        if bytes.get(end + post).is_some_and(u8::is_ascii_alphanumeric) {
            return None;
        }
        let ctx = self.context(start - 2, end + post, region);
        let confidence = match (ctx.has(class), category) {
            (true, _) => Confidence::High,
            (false, Category::ResidenceCard) => Confidence::Medium,
            _ => Confidence::Low,
        };
        Some(Verdict {
            category,
            confidence,
            pre: 2,
            post,
            ..base
        })
    }

    fn phone(&self, base: Verdict, d: &[u8], lens: &[u8], start: usize, ctx: &Context) -> Option<Verdict> {
        let plus = base.a == 0 && prev_char(self.text, start).is_some_and(|c| c == '+' || c == '＋');
        let mut national = Zeroizing::new([0u8; 24]);
        let mut nlens = [0u8; MAX_WINDOW_GROUPS];
        let (n, ng) = if plus {
            if !d.starts_with(b"81") || d.get(2) == Some(&b'0') {
                return None;
            }
            national[0] = b'0';
            national[1..d.len() - 1].copy_from_slice(&d[2..]);
            let rest: &[u8] = if lens[0] == 2 { &lens[1..] } else { lens };
            let mut ng = 0;
            for (k, &l) in rest.iter().enumerate() {
                nlens[k] = if k == 0 {
                    if lens[0] == 2 { l + 1 } else { l - 1 }
                } else {
                    l
                };
                ng += 1;
            }
            (d.len() - 1, ng)
        } else {
            if d.first() != Some(&b'0') {
                return None;
            }
            national[..d.len()].copy_from_slice(d);
            nlens[..lens.len()].copy_from_slice(lens);
            (d.len(), lens.len())
        };
        let kind = classify_phone(&national[..n], &nlens[..ng])?;
        if ctx.negated(PHONE) {
            return None;
        }
        let business = matches!(kind, PhoneKind::TollFree | PhoneKind::SharedCost);
        let confidence = if ctx.has(PHONE) && !business {
            Confidence::High
        } else if plus || ng > 1 || matches!(kind, PhoneKind::Mobile | PhoneKind::Ip) {
            Confidence::Medium
        } else {
            Confidence::Low
        };
        let pre = if plus {
            prev_char(self.text, start).map_or(0, char::len_utf8)
        } else {
            0
        };
        Some(Verdict {
            category: Category::Phone,
            confidence,
            kind: Some(kind.as_str()),
            plus81: plus,
            pre,
            ..base
        })
    }

    fn postal_or_bank(&self, base: Verdict, lens: &[u8], start: usize, ctx: &Context) -> Option<Verdict> {
        // 〒 right before, with at most one space between.
        let before = self.text.get(..start).unwrap_or("");
        let before = before.strip_suffix([' ', '\u{3000}']).unwrap_or(before);
        let mark = before.ends_with('〒');
        if lens == [3, 4] || (lens == [7] && (mark || ctx.labelled(POSTAL, 16))) {
            if ctx.negated(POSTAL) && !mark {
                return None;
            }
            let confidence = if mark || ctx.has(POSTAL) {
                Confidence::High
            } else {
                Confidence::Low
            };
            return Some(Verdict {
                category: Category::PostalCode,
                confidence,
                ..base
            });
        }
        if lens == [7] && ctx.has(BANK) && !ctx.negated(BANK) {
            let confidence = if ctx.labelled(BANK, 32) || ctx.has(BANK_CONTEXT) {
                Confidence::High
            } else {
                Confidence::Medium
            };
            return Some(Verdict {
                category: Category::BankAccount,
                confidence,
                ..base
            });
        }
        None
    }

    /// Keeps the strongest verdicts that do not overlap, and emits them.
    fn resolve(&mut self) {
        if self.verdicts.is_empty() {
            return;
        }
        let mut verdicts = std::mem::take(&mut self.verdicts);
        verdicts.sort_by(|x, y| {
            y.confidence
                .cmp(&x.confidence)
                .then((y.b - y.a).cmp(&(x.b - x.a)))
                .then(x.a.cmp(&y.a))
        });
        let mut taken = 0u32;
        for v in &verdicts {
            let mask = (((1u64 << (v.b - v.a + 1)) - 1) << v.a) as u32;
            if taken & mask != 0 {
                continue;
            }
            taken |= mask;
            self.emit_verdict(v);
        }
        verdicts.clear();
        self.verdicts = verdicts;
    }

    fn emit_verdict(&mut self, v: &Verdict) {
        let (start, end) = (
            self.run.groups[v.a].start - v.pre,
            self.run.groups[v.b].end + v.post,
        );
        if !self.admits(v.category, v.confidence, v.test_value, end) {
            return;
        }
        let digits = Zeroizing::new(self.window_digits(v.a, v.b));
        let total: usize = self.run.groups[v.a..=v.b].iter().map(|g| g.len).sum();
        let d = &digits[..total.min(24)];
        let mut value = Zeroizing::new([0u8; 32]);
        let (masked, n) = match v.category {
            Category::Card => (mask_card(d), copy(&mut value[..], d)),
            Category::Phone if v.plus81 => {
                value[0] = b'0';
                let n = 1 + copy(&mut value[1..], &d[2..]);
                (mask_digits(&value[..n], 3, 4, &[], '-'), n)
            }
            Category::Phone => (mask_digits(d, 3, 4, &[], '-'), copy(&mut value[..], d)),
            Category::PostalCode => (mask_digits(d, 3, 0, &[3, 4], '-'), copy(&mut value[..], d)),
            Category::SecurityCode => (mask_digits(d, 0, 0, &[], ' '), copy(&mut value[..], d)),
            Category::Expiry => (mask_digits(d, 0, 0, &[2, 2], '/'), copy(&mut value[..], d)),
            Category::BankAccount => (mask_digits(d, 0, 2, &[], ' '), copy(&mut value[..], d)),
            Category::Passport | Category::ResidenceCard => {
                // The letters are part of the number: fingerprint them too.
                let full = self.bytes.get(start..end).unwrap_or(&[]);
                let n = copy(&mut value[..], full);
                (mask_digits(d, 0, 2, &[], ' '), n)
            }
            Category::MyNumber => (mask_digits(d, 0, 4, &[4, 4, 4], ' '), copy(&mut value[..], d)),
            _ => (mask_digits(d, 0, 4, &[1, 4, 4, 4], '-'), copy(&mut value[..], d)),
        };
        let fingerprint = self.fingerprint(v.category, &value[..n]);
        self.out.push(Candidate {
            category: v.category,
            confidence: v.confidence,
            kind: v.kind,
            test_value: v.test_value,
            start,
            end,
            masked,
            fingerprint,
            record: None,
        });
    }

    /// `MM/YY`, `MM/YYYY` (and `YYYY/MM` with an expiry label) starting with
    /// the single-group run just read.
    #[inline]
    fn try_expiry(&mut self, g: usize, region: &Region) -> Option<usize> {
        // Most runs are not followed by a slash: decide that here, inline.
        match self.bytes.get(self.run.groups[g].end) {
            Some(b'/' | 0xEF) => self.expiry_after(g, region),
            _ => None,
        }
    }

    fn expiry_after(&mut self, g: usize, region: &Region) -> Option<usize> {
        let first = self.run.groups[g];
        let bytes = self.bytes;
        let end = region.end.min(bytes.len());
        let slash = match bytes.get(first.end) {
            Some(b'/') => 1,
            Some(0xEF) if bytes.get(first.end + 1..first.end + 3) == Some(&[0xBC, 0x8F][..]) => 3, // ／
            _ => return None,
        };
        if prev_char(self.text, first.start).is_some_and(|c| c == '/' || c.is_ascii_alphanumeric()) {
            return None;
        }
        let mut j = first.end + slash;
        let mut second = [0u8; 4];
        let mut n2 = 0;
        while let Some((d, w)) = digit_at(bytes, j, end) {
            if n2 == 4 {
                return None;
            }
            second[n2] = d;
            n2 += 1;
            j += w;
        }
        if next_char(self.text, j).is_some_and(|c| c == '/' || c.is_ascii_alphanumeric() || c == '／') {
            return None;
        }
        let d1 = Zeroizing::new(self.window_digits(g, g));
        let (mm, yy): (&[u8], &[u8]) = match (first.len, n2) {
            (1 | 2, 2 | 4) => (&d1[..first.len], &second[..n2]),
            (4, 1 | 2) => (&second[..n2], &d1[2..4]),
            _ => return None,
        };
        if !valid_month(mm) {
            return None;
        }
        let ctx = self.context(first.start, j, region);
        let confidence = if ctx.has(EXPIRY) {
            Confidence::High
        } else if first.len <= 2
            && self
                .last_card_end
                .is_some_and(|e| e <= first.start && first.start - e <= 80)
        {
            Confidence::Medium
        } else {
            return None;
        };
        if first.len == 4 && confidence != Confidence::High {
            return None;
        }
        if !self.admits(Category::Expiry, confidence, false, j) {
            return Some(j);
        }
        let mut value = Zeroizing::new([b'0'; 4]);
        value[2 - mm.len()..2].copy_from_slice(mm);
        value[2..].copy_from_slice(&yy[yy.len() - 2..]);
        second.iter_mut().for_each(|b| *b = 0);
        let fingerprint = self.fingerprint(Category::Expiry, &value[..]);
        self.out.push(Candidate {
            category: Category::Expiry,
            confidence,
            kind: None,
            test_value: false,
            start: first.start,
            end: j,
            masked: "••/••".to_owned(),
            fingerprint,
            record: None,
        });
        Some(j)
    }

    // ---------------------------------------------------------------- e-mail

    fn on_at(&mut self, at: usize, region: &Region) -> usize {
        let bytes = self.bytes;
        let end = region.end.min(bytes.len());
        let local_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
        let mut ls = at;
        while ls > region.start && at - ls < 64 && local_ok(bytes[ls - 1]) {
            ls -= 1;
        }
        let domain_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        let mut de = at + 1;
        while de < end && de - at <= 253 && domain_ok(bytes[de]) {
            de += 1;
        }
        while de > at + 1 && matches!(bytes[de - 1], b'.' | b'-') {
            de -= 1;
        }
        while ls < at && matches!(bytes[ls], b'.') {
            ls += 1;
        }
        let local = &bytes[ls..at];
        let domain = &bytes[at + 1..de];
        if !valid_email(local, domain) {
            return at + 1;
        }
        if !self.admits(Category::Email, Confidence::High, false, de) {
            return de;
        }
        let domain_str = self.text.get(at + 1..de).unwrap_or("");
        let mut value = Zeroizing::new(self.bytes[ls..de].to_ascii_lowercase());
        let fingerprint = self.fingerprint(Category::Email, &value);
        value.clear();
        let masked = mask_email(char::from(local[0]), &domain_str.to_ascii_lowercase());
        self.out.push(Candidate {
            category: Category::Email,
            confidence: Confidence::High,
            kind: None,
            test_value: false,
            start: ls,
            end: de,
            masked,
            fingerprint,
            record: None,
        });
        de
    }

    // ---------------------------------------------------------------- labels

    /// A label such as 氏名 or お届け先 right before a colon: the rest of the
    /// line is a name or an address.
    fn on_label(&mut self, colon: usize, width: usize, region: &Region) {
        // Labels end in a letter or a Japanese character; "10:23:45" and "https:"
        // style colons are dismissed before any keyword search, most of them
        // on the byte before the colon alone.
        match colon.checked_sub(1).map(|k| self.bytes[k]) {
            Some(b) if b.is_ascii_alphabetic() || b == b' ' || !b.is_ascii() => {}
            _ => return,
        }
        // Four table look-ups: most colons after words ("数量:") end here.
        if !self.scanner.keywords.may_end_label(self.bytes, colon) {
            return;
        }
        let before = self
            .text
            .get(..colon)
            .unwrap_or("")
            .trim_end_matches([' ', '\u{3000}']);
        match before.chars().next_back() {
            Some(c) if c.is_ascii_alphabetic() || !c.is_ascii() => {}
            _ => return,
        }
        if before.ends_with("http") || before.ends_with("https") {
            return;
        }
        let label = self
            .scanner
            .keywords
            .label_before(self.bytes, colon, region.start);
        if label & (NAME | ADDRESS) == 0 {
            return;
        }
        let category = if label & NAME != 0 {
            Category::Name
        } else {
            Category::Address
        };
        let end = region.end.min(self.bytes.len());
        let mut s = colon + width;
        let text = self.text;
        while let Some(c) = next_char(text, s).filter(|c| *c == ' ' || *c == '\u{3000}') {
            s += c.len_utf8();
        }
        let stop: &[u8] = if category == Category::Name {
            b"\r\n\t,\"<"
        } else {
            b"\r\n\t\"<"
        };
        let limit = ceil_char_boundary(text, (s + 180).min(end));
        let mut e = s;
        while e < limit && !stop.contains(&self.bytes[e]) {
            e += 1;
        }
        let e = floor_char_boundary(text, e);
        let value = text.get(s..e).unwrap_or("").trim_end_matches([' ', '\u{3000}']);
        let chars = value.chars().count();
        let plausible = match category {
            Category::Name => {
                (1..=30).contains(&chars)
                    && !value.contains('@')
                    && !value.starts_with(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation())
            }
            _ => chars >= 4,
        };
        if !plausible || !self.admits(category, Confidence::Medium, false, s + value.len()) {
            return;
        }
        let fingerprint = self.fingerprint(category, value.as_bytes());
        let masked = mask_text(value);
        self.out.push(Candidate {
            category,
            confidence: Confidence::Medium,
            kind: None,
            test_value: false,
            start: s,
            end: s + value.len(),
            masked,
            fingerprint,
            record: None,
        });
    }

    /// A whole CSV cell in a name or address column.
    pub fn cell_value(&mut self, category: Category, start: usize, end: usize) {
        let raw = self.text.get(start..end).unwrap_or("");
        let value = raw.trim_matches([' ', '\u{3000}']);
        if value.is_empty() || value.contains('@') || value.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return;
        }
        let offset = start + (raw.len() - raw.trim_start_matches([' ', '\u{3000}']).len());
        if !self.admits(category, Confidence::High, false, offset + value.len()) {
            return;
        }
        let fingerprint = self.fingerprint(category, value.as_bytes());
        self.out.push(Candidate {
            category,
            confidence: Confidence::High,
            kind: None,
            test_value: false,
            start: offset,
            end: offset + value.len(),
            masked: mask_text(value),
            fingerprint,
            record: None,
        });
    }
}

fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    n
}

/// Whether the bytes before `start` could hold a security-code or expiry
/// label: an ASCII bigram that starts one (`cv`, `ci`, `cs`, `cu` as in
/// security, `ex`), or the UTF-8 of セ or 有 (セキュリティコード, 有効期限). A
/// cheap test that lets most 3- and 4-digit numbers skip the keyword search.
fn may_follow_cvc_or_expiry_label(bytes: &[u8], start: usize) -> bool {
    // A label counts when it ends within 24 bytes; the longest is 30 bytes.
    let lo = start.saturating_sub(56);
    // One byte of each pattern as a bit set of the window, the rarest one in
    // text where there is a choice: the c of the c bigrams, the x of ex ('e'
    // is the commonest letter in English), the r of hr ("valid thru"), the
    // last bytes of セ and 有.
    let pick = |b: u8| matches!(b | 0x20, b'c' | b'x' | b'r') || b == 0xBB || b == 0x89;
    let mut hits = mask_at(bytes, lo, pick) & ((1 << (start - lo)) - 1);
    while hits != 0 {
        let p = lo + hits.trailing_zeros() as usize;
        hits &= hits - 1;
        let found = match bytes[p] | 0x20 {
            b'c' => p + 1 < start && matches!(bytes[p + 1] | 0x20, b'v' | b'i' | b's' | b'u'),
            b'x' => p > lo && bytes[p - 1] | 0x20 == b'e',
            b'r' => p > lo && bytes[p - 1] | 0x20 == b'h',
            _ => {
                p >= lo + 2 && (&bytes[p - 2..=p] == "セ".as_bytes() || &bytes[p - 2..=p] == "有".as_bytes())
            }
        };
        if found {
            return true;
        }
    }
    false
}

/// Groupings cards are printed in: unbroken, fours (last group shorter),
/// 4-6-5 (Amex) and 4-6-4 (Diners).
fn card_shape(lens: &[u8]) -> bool {
    match lens {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn card(base: Verdict, d: &[u8], ctx: &Context) -> Option<Verdict> {
    let brand = Brand::detect(d)?;
    if !luhn_valid(d) || ctx.negated(CARD) {
        return None;
    }
    let labelled = ctx.has(CARD | CVC | EXPIRY);
    if !labelled {
        // Hard negatives: barcodes and corporate numbers are 13 digits too.
        if d.len() == 13 && (is_jan_code(d) || ctx.has(BARCODE | CORPORATE) || corporate_number_valid(d)) {
            return None;
        }
        if ctx.labelled(CORPORATE | MY_NUMBER | PHONE | BANK, 48) {
            return None;
        }
    }
    let confidence = if labelled {
        Confidence::High
    } else if d.len() == 13 {
        Confidence::Low
    } else {
        Confidence::Medium
    };
    Some(Verdict {
        category: Category::Card,
        confidence,
        kind: Some(brand.as_str()),
        test_value: is_test_pan(d),
        ..base
    })
}

fn valid_email(local: &[u8], domain: &[u8]) -> bool {
    if local.is_empty() || local.len() > 64 || domain.len() < 4 {
        return false;
    }
    if local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return false;
    }
    let mut labels = 0;
    let mut tld: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        labels += 1;
        tld = label;
    }
    if labels < 2 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    // Retina image names (icon@2x.png) and similar asset paths.
    const ASSETS: &[&[u8]] = &[
        b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"js", b"css", b"ico", b"map",
    ];
    !ASSETS.iter().any(|a| tld.eq_ignore_ascii_case(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidate stage's definition: the next interesting byte, one at a time.
    fn skip_reference(bytes: &[u8], from: usize, end: usize) -> usize {
        (from..end).find(|&k| interesting(bytes[k])).unwrap_or(end)
    }

    #[test]
    fn candidates_find_each_interesting_byte_in_long_text() {
        let mut text = "あいうえお abc ".repeat(20).into_bytes();
        for (pos, b) in [(150usize, b'7'), (151, b'@'), (152, b':')] {
            text[pos] = b;
        }
        let mut c = Candidates::new();
        assert_eq!(c.next(&text, 0, text.len()), 150);
        assert_eq!(c.next(&text, 151, text.len()), 151);
        assert_eq!(c.next(&text, 153, text.len()), text.len());
    }

    proptest::proptest! {
        /// The block-at-a-time candidate stage agrees with a byte-by-byte
        /// walk on any bytes, for any region end, from any sequence of
        /// starts (forward steps and jumps, as the engine makes them;
        /// lookalikes such as ';' '?' and 0x30–0x3F neighbours included).
        #[test]
        fn candidates_match_the_byte_walk(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(vec![b'0', b'9', b':', b';', b'?', b'@', b'A', 0xEF, 0xEE, 0x2F, 0x40, 0]),
                ],
                0..400,
            ),
            cut in 0usize..400,
            steps in proptest::collection::vec(0usize..90, 1..40),
        ) {
            let end = cut.min(bytes.len());
            let mut c = Candidates::new();
            let mut from = 0;
            for step in steps {
                let expected = skip_reference(&bytes, from, end);
                proptest::prop_assert_eq!(c.next(&bytes, from, end), expected);
                from = (expected + step).min(end + 1);
            }
        }
    }

    /// Luhn check digit, written here rather than taken from `validate`.
    fn luhn_digit(body: &[u8]) -> u8 {
        let sum: u32 = body
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d - b'0');
                let x = if i % 2 == 0 { d * 2 } else { d };
                if x > 9 { x - 9 } else { x }
            })
            .sum();
        b'0' + ((10 - sum % 10) % 10) as u8
    }

    /// (category, start, end) of every finding, with the given candidate stage.
    fn findings_with(
        text: &str,
        skip: impl FnMut(&[u8], usize, usize) -> usize,
    ) -> Vec<(Category, usize, usize)> {
        let scanner = Scanner::new(crate::tests::test_key());
        let mut engine = Engine::new(&scanner, text);
        engine.scan_region_with(
            Region {
                start: 0,
                end: text.len(),
                column: 0,
            },
            skip,
        );
        let mut out: Vec<_> = engine.out.iter().map(|c| (c.category, c.start, c.end)).collect();
        out.sort_by_key(|&(c, s, e)| (s, e, c.as_str()));
        out
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Random text of the fragments the detectors care about (digits,
        /// full-width digits, separators, colons, labels, '@', '/', kana),
        /// with labelled card numbers planted: the engine with its block
        /// candidate stage finds exactly what it finds walking byte by byte, and every
        /// planted card is among them.
        #[test]
        fn engine_matches_the_byte_walk_on_planted_text(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "1", "23", "090", "-", " ", "　", "：", ":", "@", "/", "０", "９", "－",
                        "〒", "+81 ", "cvv ", "有効期限 ", "電話 ", "マイナンバー ", "あ", "カ", "x.example.jp",
                        "\n", "2026-01-15 10:23:45", "¥1,490", "注文番号 ",
                    ]).prop_map(|s| (s.to_owned(), false)),
                    (proptest::collection::vec(0u8..10, 14), 0usize..3).prop_map(|(body, sep)| {
                        let mut d: Vec<u8> = std::iter::once(b'4').chain(body.iter().map(|x| b'0' + x)).collect();
                        d.push(luhn_digit(&d));
                        let mut card = String::new();
                        for (k, &c) in d.iter().enumerate() {
                            if k > 0 && k % 4 == 0 {
                                card.push_str(["", " ", "-"][sep]);
                            }
                            card.push(char::from(c));
                        }
                        (format!("\nカード番号：{card}\n"), true)
                    }),
                ],
                0..60,
            ),
        ) {
            let mut text = String::new();
            let mut planted = Vec::new();
            for (part, card) in &parts {
                if *card {
                    let at = text.len() + part.find('：').unwrap_or(0) + '：'.len_utf8();
                    planted.push((at, text.len() + part.len() - 1));
                }
                text.push_str(part);
            }
            let mut candidates = Candidates::new();
            let fast = findings_with(&text, |b, i, e| candidates.next(b, i, e));
            proptest::prop_assert_eq!(&fast, &findings_with(&text, skip_reference));
            for (s, e) in planted {
                proptest::prop_assert!(
                    fast.contains(&(Category::Card, s, e)),
                    "planted card at {}..{} not found", s, e
                );
            }
        }
    }

    proptest::proptest! {
        /// Wherever the lone-group shortcut skips a digit run, reading and
        /// judging the run finds nothing in it and goes on at the same place
        /// (in text of numbers of every length, separators, slashes,
        /// full-width forms and labels, with and without a column header).
        #[test]
        fn lone_groups_skipped_hold_nothing(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "1", "23", "456", "7890", "0", "81", "12345", "4111111111111111", "090", "12/28", "5/2030",
                    "〒123-4567", "090-1234-5678", "+81 90-1234-5678", "03 1234 5678", "4111 1111 1111 1111", " ", "-", "/", "／",
                    "０", "－", "ｰ", "ー", "‐", "（", "：", "　", ":", "+", "〒", "T", "AB", "v", "cvv ", "有効期限 ", "セ", "電話 ", ".", "@", "あ", "円", "\n",
                ]),
                0..40,
            ),
            column in proptest::sample::select(vec![0, CVC, EXPIRY, PHONE]),
        ) {
            let text = parts.concat();
            let scanner = Scanner::new(crate::tests::test_key());
            let region = Region { start: 0, end: text.len(), column };
            for i in (0..text.len()).filter(|&i| text.as_bytes()[i].is_ascii_digit()) {
                let Some(next) = Engine::new(&scanner, &text).lone_group_end(i, &region) else {
                    continue;
                };
                let mut engine = Engine::new(&scanner, &text);
                proptest::prop_assert_eq!(engine.on_run(i, &region), next);
                proptest::prop_assert!(engine.out.is_empty(), "skipped run at {} holds {:?}", i, engine.out);
            }
        }
    }

    /// The original two-pass definition, kept as the oracle.
    fn may_follow_reference(bytes: &[u8], start: usize) -> bool {
        let window = &bytes[start.saturating_sub(56)..start];
        window.windows(2).any(|w| {
            let (a, b) = (w[0] | 0x20, w[1] | 0x20);
            (a == b'c' && matches!(b, b'v' | b'i' | b's' | b'u'))
                || (a == b'e' && b == b'x')
                || (a == b'h' && b == b'r')
        }) || window
            .windows(3)
            .any(|w| w == "セ".as_bytes() || w == "有".as_bytes())
    }

    proptest::proptest! {
        #[test]
        fn cvc_label_prefilter_matches_its_definition(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "セ", "有", "c", "C", "v", "V", "i", "s", "u", "x", "X", "e", "E", "h", "H", "r", "R", "効", "ー", " ", "1", "あ", "\u{2bb}", "\u{249}",
            ]), 0..60),
        ) {
            let text = parts.concat();
            let bytes = text.as_bytes();
            for start in 0..=bytes.len() {
                proptest::prop_assert_eq!(may_follow_cvc_or_expiry_label(bytes, start), may_follow_reference(bytes, start));
            }
        }
    }

    #[test]
    fn card_shapes() {
        assert!(
            card_shape(&[16])
                && card_shape(&[4, 4, 4, 4])
                && card_shape(&[4, 6, 5])
                && card_shape(&[4, 4, 4, 3])
        );
        assert!(card_shape(&[4, 4, 4, 4, 3]) && card_shape(&[4, 6, 4]));
        assert!(!card_shape(&[3, 4, 4, 5]) && !card_shape(&[8, 8]));
    }

    #[test]
    fn email_syntax() {
        assert!(valid_email(b"taro.yamada", b"example.co.jp"));
        assert!(!valid_email(b"icon", b"2x.png"));
        assert!(!valid_email(b"a..b", b"example.com"));
        assert!(!valid_email(b"a", b"localhost"));
        assert!(!valid_email(b"a", b"-x.com"));
    }
}
