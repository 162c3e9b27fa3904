//! The matching layer: digit runs over UTF-8 text.
//!
//! A run is a sequence of digit groups joined by single separators. ASCII and
//! full-width digits (０–９) count as digits; a space, an ideographic space, a
//! hyphen or one of its look-alikes (－ ‐ ‑ ‒ – − ー ｰ) joins two groups. The
//! run keeps each group's byte span in the text, so every window of groups maps
//! straight back to a span of the text: no normalised copy of the text exists.
//! The normalised digits live in a fixed buffer that is wiped on drop.

use zeroize::Zeroize;

/// Digits kept per run; a longer run is not a number of any kind we detect.
pub(crate) const MAX_DIGITS: usize = 64;
/// Groups kept per run. A longer run is cut and continued with an overlap of
/// `OVERLAP` groups, so windows of up to `OVERLAP + 1` groups are all seen.
pub(crate) const MAX_GROUPS: usize = 16;
pub(crate) const OVERLAP: usize = 5;

/// How two groups are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sep {
    /// Start of the run.
    #[default]
    None,
    /// A space or an ideographic space.
    Space,
    /// A hyphen or look-alike.
    Dash,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Group {
    /// Byte span in the text.
    pub start: usize,
    pub end: usize,
    /// Index of the first digit in the run's digit buffer.
    pub first: usize,
    pub len: usize,
    /// The separator before this group.
    pub sep: Sep,
}

/// One run. `Debug` prints the shape only.
pub(crate) struct DigitRun {
    digits: [u8; MAX_DIGITS],
    pub groups: [Group; MAX_GROUPS],
    pub ngroups: usize,
    ndigits: usize,
    /// A group was longer than the buffer: the run is not a number we detect.
    pub overlong: bool,
    /// Any digit was full-width.
    pub full_width: bool,
    /// Text offset where tokenizing stopped.
    pub end: usize,
    /// Whether the run stopped because it was full (a continuation follows).
    pub truncated: bool,
}

impl std::fmt::Debug for DigitRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape: Vec<usize> = self.groups().iter().map(|g| g.len).collect();
        f.debug_struct("DigitRun")
            .field("shape", &shape)
            .finish_non_exhaustive()
    }
}

impl Drop for DigitRun {
    fn drop(&mut self) {
        self.digits.zeroize();
    }
}

impl DigitRun {
    pub fn new() -> Self {
        Self {
            digits: [0; MAX_DIGITS],
            groups: [Group::default(); MAX_GROUPS],
            ngroups: 0,
            ndigits: 0,
            overlong: false,
            full_width: false,
            end: 0,
            truncated: false,
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups[..self.ngroups]
    }

    /// The ASCII digits of groups `a..=b`.
    pub fn digits(&self, a: usize, b: usize) -> &[u8] {
        let (ga, gb) = (&self.groups[a], &self.groups[b]);
        // Clamped: an overlong group has fewer stored digits than its length.
        let end = (gb.first + gb.len).min(self.ndigits);
        &self.digits[ga.first.min(end)..end]
    }

    /// Starts a new run. The previous run's digits are overwritten or left
    /// in place until drop wipes the whole buffer: wiping them here, once per
    /// run, was a tenth of the scan on number-dense text.
    fn clear(&mut self) {
        self.ngroups = 0;
        self.ndigits = 0;
        self.overlong = false;
        self.full_width = false;
        self.truncated = false;
    }

    /// Tokenizes the run that starts at `start` (which must hold a digit) and
    /// stops at `limit`.
    pub fn read(&mut self, text: &[u8], start: usize, limit: usize) {
        self.clear();
        let mut i = start;
        let mut sep = Sep::None;
        'groups: loop {
            let group_start = i;
            let first = self.ndigits;
            let mut len = 0;
            // ASCII digits eight at a time while the buffer has room: the
            // word is stored whole, and the bytes after the group's digits
            // are overwritten by the next ones or wiped on drop.
            while let Some(word) = text.get(i..limit).and_then(<[u8]>::first_chunk)
                && self.ndigits + 8 <= MAX_DIGITS
            {
                let n = leading_digits(u64::from_le_bytes(*word));
                self.digits[self.ndigits..self.ndigits + 8].copy_from_slice(word);
                self.ndigits += n;
                len += n;
                i += n;
                if n < 8 {
                    break;
                }
            }
            // Then one at a time: the end of the text, a full buffer, and
            // full-width digits through `digit_at`.
            while i < limit {
                let Some(&b) = text.get(i) else {
                    break;
                };
                let (d, w) = if b.is_ascii_digit() {
                    (b, 1)
                } else if let Some(dw) = digit_at(text, i, limit) {
                    dw
                } else {
                    break;
                };
                if self.ndigits < MAX_DIGITS {
                    self.digits[self.ndigits] = d;
                    self.ndigits += 1;
                } else {
                    self.overlong = true;
                }
                self.full_width |= w > 1;
                len += 1;
                i += w;
            }
            if self.ngroups < MAX_GROUPS {
                self.groups[self.ngroups] = Group {
                    start: group_start,
                    end: i,
                    first,
                    len,
                    sep,
                };
                self.ngroups += 1;
            }
            // A single separator followed by a digit continues the run.
            if let Some((s, w)) = separator_at(text, i, limit)
                && digit_at(text, i + w, limit).is_some()
            {
                if self.ngroups == MAX_GROUPS || self.ndigits >= MAX_DIGITS - 19 {
                    self.truncated = true;
                    break 'groups;
                }
                sep = s;
                i += w;
                continue;
            }
            break;
        }
        self.end = i;
    }
}

/// How many of the bytes of `word` (little-endian), from the first, are
/// ASCII digits: 8 if all are.
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Digits become 0–9; a byte is not a digit if that is 10 or more, which
    // adding 0x76 to its low seven bits carries into bit 7 (never further).
    let t = word ^ 0x3030_3030_3030_3030;
    let non_digit = (((t & LOW7) + 0x7676_7676_7676_7676) | t) & HIGH;
    (non_digit.trailing_zeros() / 8) as usize
}

/// The ASCII digit at `i` and its byte width (1, or 3 for ０–９).
#[inline]
pub(crate) fn digit_at(text: &[u8], i: usize, limit: usize) -> Option<(u8, usize)> {
    let b = *text.get(i).filter(|_| i < limit)?;
    if b.is_ascii_digit() {
        return Some((b, 1));
    }
    // U+FF10–U+FF19 are EF BC 90–99.
    if b == 0xEF && i + 2 < limit && text[i + 1] == 0xBC && (0x90..=0x99).contains(&text[i + 2]) {
        return Some((b'0' + (text[i + 2] - 0x90), 3));
    }
    None
}

/// A group separator at `i` and its byte width.
#[inline(always)]
pub(crate) fn separator_at(text: &[u8], i: usize, limit: usize) -> Option<(Sep, usize)> {
    let b = *text.get(i).filter(|_| i < limit)?;
    match b {
        b' ' => Some((Sep::Space, 1)),
        b'-' => Some((Sep::Dash, 1)),
        0xE2 | 0xE3 | 0xEF if i + 2 < limit => match [b, text[i + 1], text[i + 2]] {
            [0xE3, 0x80, 0x80] => Some((Sep::Space, 3)), // U+3000 ideographic space
            [0xEF, 0xBC, 0x8D]          // U+FF0D full-width hyphen-minus
            | [0xE2, 0x80, 0x90..=0x93] // U+2010–2013 hyphen, non-breaking hyphen, figure dash, en dash
            | [0xE2, 0x88, 0x92]        // U+2212 minus sign
            | [0xE3, 0x83, 0xBC]        // U+30FC katakana long vowel mark, typed for a dash
            | [0xEF, 0xBD, 0xB0] => Some((Sep::Dash, 3)), // U+FF70 half-width long vowel mark
            _ => None,
        },
        _ => None,
    }
}

/// The ASCII digits of a string with full-width digits folded and separators
/// dropped, or `None` if it holds anything else. The result is wiped on drop.
pub fn normalize_digits(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let bytes = text.as_bytes();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        if let Some((d, w)) = digit_at(bytes, i, bytes.len()) {
            out.push(d);
            i += w;
        } else if let Some((_, w)) = separator_at(bytes, i, bytes.len()) {
            i += w;
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shape(run: &DigitRun) -> Vec<usize> {
        run.groups().iter().map(|g| g.len).collect()
    }

    #[test]
    fn reads_groups_and_full_width() {
        let text = "番号:４１１１ 1111－1111　1111です";
        let start = text.find('４').expect("present");
        let mut run = DigitRun::new();
        run.read(text.as_bytes(), start, text.len());
        assert_eq!(shape(&run), vec![4, 4, 4, 4]);
        assert!(run.full_width);
        assert_eq!(run.digits(0, 3), b"4111111111111111");
        assert_eq!(
            &text[run.groups[0].start..run.groups[3].end],
            "４１１１ 1111－1111　1111"
        );
        assert_eq!(run.groups[1].sep, Sep::Space);
        assert_eq!(run.groups[2].sep, Sep::Dash);
        assert_eq!(run.groups[3].sep, Sep::Space);
    }

    #[test]
    fn double_separators_end_a_run() {
        let text = b"4111  1111 -- 12";
        let mut run = DigitRun::new();
        run.read(text, 0, text.len());
        assert_eq!(shape(&run), vec![4]);
        assert_eq!(run.end, 4);
    }

    #[test]
    fn long_runs_are_cut_with_truncated_flag() {
        let text = "1 ".repeat(40);
        let mut run = DigitRun::new();
        run.read(text.as_bytes(), 0, text.len());
        assert_eq!(run.ngroups, MAX_GROUPS);
        assert!(run.truncated);
        let long = "9".repeat(100);
        run.read(long.as_bytes(), 0, long.len());
        assert!(run.overlong);
        assert_eq!(run.end, 100);
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize_digits("４１１１-1111 1111ー1111")
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"4111111111111111"[..])
        );
        assert!(normalize_digits("41x1").is_none());
        assert_eq!(format!("{:?}", DigitRun::new()), "DigitRun { shape: [], .. }");
    }

    proptest! {
        #[test]
        fn leading_digits_counts_ascii_digits(word in any::<[u8; 8]>(), digits in 0usize..9) {
            let mut word = word;
            for b in &mut word[..digits] {
                *b = b'0' + *b % 10;
            }
            let expected = word.iter().take_while(|b| b.is_ascii_digit()).count();
            prop_assert_eq!(leading_digits(u64::from_le_bytes(word)), expected);
        }

        #[test]
        fn group_spans_reproduce_the_digits(groups in proptest::collection::vec((1usize..20, any::<bool>(), 0u8..3), 1..6)) {
            // Runs are cut once they hold 45 digits: stay below.
            prop_assume!(groups.iter().map(|g| g.0).sum::<usize>() <= 45);
            // Build "d..d<sep>d..d" with a random mix of ASCII and full-width digits.
            let mut text = String::from("x");
            let mut expect = Vec::new();
            for (gi, (len, wide, sep)) in groups.iter().enumerate() {
                if gi > 0 {
                    text.push_str(match sep { 0 => " ", 1 => "-", _ => "－" });
                }
                for k in 0..*len {
                    let d = (gi + k) % 10;
                    expect.push(b'0' + d as u8);
                    if *wide { text.push(char::from_u32('０' as u32 + d as u32).unwrap_or('0')); } else { text.push(char::from(b'0' + d as u8)); }
                }
            }
            text.push('x');
            let mut run = DigitRun::new();
            run.read(text.as_bytes(), 1, text.len());
            prop_assert_eq!(run.ngroups, groups.len());
            prop_assert_eq!(run.digits(0, run.ngroups - 1), expect.as_slice());
            let span = &text[run.groups[0].start..run.groups[run.ngroups - 1].end];
            let normalized = normalize_digits(span);
            prop_assert_eq!(normalized.as_deref().map(Vec::as_slice), Some(expect.as_slice()));
        }
    }
}
