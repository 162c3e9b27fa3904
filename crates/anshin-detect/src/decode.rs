//! Encoding detection and decoding to UTF-8, with a map back to the original
//! byte offsets.
//!
//! UTF-8 input (the common case) is borrowed as is: no copy, and offsets map
//! by adding the BOM length. Other encodings are decoded with `encoding_rs` in
//! *segments* that end at "safe" bytes (a control character or space, which no
//! multi-byte sequence of these encodings contains), each with a fresh decoder.
//! The table of segment starts is the whole offset map; an exact original
//! offset is recovered on demand from the segment's start: in a segment that
//! decoded without errors by walking the original and the decoded text side
//! by side (each character's original length follows from its first byte,
//! its decoded length or the mode escapes set), elsewhere by decoding again
//! up to the offset. That keeps the map at one entry per ~4 KiB instead of
//! one per character, and the bulk decode at `encoding_rs` speed.

use std::borrow::Cow;

use encoding_rs::{
    CoderResult, Decoder, DecoderResult, EUC_JP, Encoding, ISO_2022_JP, SHIFT_JIS, UTF_8, UTF_16BE, UTF_16LE,
    WINDOWS_1252,
};
use zeroize::{Zeroize, Zeroizing};

/// Target size of a decoding segment.
const SEGMENT: usize = 4096;

/// The text encodings the scanner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TextEncoding {
    /// UTF-8, with or without a BOM.
    Utf8,
    /// UTF-16 little-endian.
    Utf16Le,
    /// UTF-16 big-endian.
    Utf16Be,
    /// Shift_JIS (decoded as Windows-31J / CP932, a superset).
    ShiftJis,
    /// EUC-JP.
    EucJp,
    /// ISO-2022-JP (JIS, mail).
    Iso2022Jp,
    /// Windows-1252, and ISO-8859-1 (Latin-1), which it extends (as WHATWG
    /// reads Latin-1). Never detected: only where the source names its
    /// encoding (a pg_dump archive of a `LATIN1` or `WIN1252` database).
    Windows1252,
    /// Not valid in any of the above: decoded as UTF-8 with replacement
    /// characters, so ASCII digits in binary files are still found.
    Binary,
}

impl TextEncoding {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16Le => "utf-16le",
            Self::Utf16Be => "utf-16be",
            Self::ShiftJis => "shift_jis",
            Self::EucJp => "euc-jp",
            Self::Iso2022Jp => "iso-2022-jp",
            Self::Windows1252 => "windows-1252",
            Self::Binary => "binary",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Self::Utf8 | Self::Binary => UTF_8,
            Self::Utf16Le => UTF_16LE,
            Self::Utf16Be => UTF_16BE,
            Self::ShiftJis => SHIFT_JIS,
            Self::EucJp => EUC_JP,
            Self::Iso2022Jp => ISO_2022_JP,
            Self::Windows1252 => WINDOWS_1252,
        }
    }
}

/// Detects the encoding of a buffer and the length of its BOM.
///
/// Order: BOM; ISO-2022-JP when the buffer is 7-bit and holds one of its
/// escape sequences; valid UTF-8; UTF-16 without BOM when NUL bytes sit at
/// every other position; otherwise whichever of Shift_JIS and EUC-JP decodes
/// the sample without errors, ties broken by which one's kana byte pairs occur
/// more often.
pub fn detect_encoding(bytes: &[u8]) -> (TextEncoding, usize) {
    detect_with(bytes, || simdutf8::basic::from_utf8(bytes).is_ok())
}

/// [`detect_encoding`] with the (whole-buffer, costly) UTF-8 validity test
/// supplied by the caller, so that decoding validates only once.
fn detect_with(bytes: &[u8], utf8_valid: impl FnOnce() -> bool) -> (TextEncoding, usize) {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return (TextEncoding::Utf8, 3);
    }
    if bytes.starts_with(b"\xFF\xFE") {
        return (TextEncoding::Utf16Le, 2);
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return (TextEncoding::Utf16Be, 2);
    }
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    // Before the ASCII test: BOM-less UTF-16 of ASCII text is all 7-bit bytes.
    if let Some(utf16) = utf16_by_nul_pattern(sample) {
        return (utf16, 0);
    }
    let seven_bit = sample.is_ascii();
    if seven_bit && has_iso2022_escape(sample) {
        return (TextEncoding::Iso2022Jp, 0);
    }
    if seven_bit || utf8_valid() {
        return (TextEncoding::Utf8, 0);
    }
    (shift_jis_or_euc_jp(sample), 0)
}

/// Whichever of Shift_JIS and EUC-JP decodes the sample (but for a cut at
/// its end) without errors; when both do, the one whose kana byte pairs occur
/// more often, a tie going to Shift_JIS; when neither, binary.
fn shift_jis_or_euc_jp(sample: &[u8]) -> TextEncoding {
    // Both are decoded: the one a file is not in fails within a few
    // characters, cheaper than counting kana first to try only the likelier.
    let trimmed = trim_tail(sample);
    match (
        decodes_cleanly(TextEncoding::ShiftJis, trimmed),
        decodes_cleanly(TextEncoding::EucJp, trimmed),
    ) {
        (true, false) => TextEncoding::ShiftJis,
        (false, true) => TextEncoding::EucJp,
        (true, true) => {
            if kana_pairs(sample, 0xA4..=0xA5, 0xA1..=0xF6) > kana_pairs(sample, 0x82..=0x83, 0x40..=0xF1) {
                TextEncoding::EucJp
            } else {
                TextEncoding::ShiftJis
            }
        }
        (false, false) => TextEncoding::Binary,
    }
}

/// The 64 KiB sample may cut a multi-byte character: drop the bytes after
/// the final safe byte so a cut does not count as an error. Japanese text
/// often runs for a whole line without one, so the last line end may be far
/// back; what is dropped is only not looked at for detection.
fn trim_tail(sample: &[u8]) -> &[u8] {
    match sample.iter().rposition(|&b| is_safe_byte(b)) {
        Some(i) => &sample[..=i],
        None => sample,
    }
}

fn has_iso2022_escape(sample: &[u8]) -> bool {
    memchr::memchr_iter(0x1B, sample).any(|i| {
        let rest = &sample[i + 1..];
        rest.starts_with(b"$B")
            || rest.starts_with(b"$@")
            || rest.starts_with(b"(J")
            || rest.starts_with(b"(I")
    })
}

fn utf16_by_nul_pattern(sample: &[u8]) -> Option<TextEncoding> {
    // Without a NUL it is not: one vectorised search instead of two strided counts.
    if sample.len() < 16 || !sample.contains(&0) {
        return None;
    }
    let pairs = sample.len() / 2;
    let even_nul = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd_nul = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    // Mostly-ASCII UTF-16 has a NUL in (nearly) every other byte and none in the others.
    if odd_nul * 10 >= pairs * 3 && even_nul * 20 < pairs {
        Some(TextEncoding::Utf16Le)
    } else if even_nul * 10 >= pairs * 3 && odd_nul * 20 < pairs {
        Some(TextEncoding::Utf16Be)
    } else {
        None
    }
}

fn kana_pairs(
    sample: &[u8],
    lead: std::ops::RangeInclusive<u8>,
    trail: std::ops::RangeInclusive<u8>,
) -> usize {
    sample
        .windows(2)
        .filter(|w| lead.contains(&w[0]) && trail.contains(&w[1]))
        .count()
}

/// Whether `encoding` decodes `bytes` without a malformed sequence; the
/// decoder stops at the first one. The text goes to a small buffer that is
/// wiped, as it holds whatever values the input holds; UTF-16, one unit per
/// character of these encodings, takes fewer instructions than UTF-8.
fn decodes_cleanly(encoding: TextEncoding, mut bytes: &[u8]) -> bool {
    let mut decoder = encoding.encoding().new_decoder_without_bom_handling();
    let mut buf = [0u16; 512];
    loop {
        let (result, read, written) = decoder.decode_to_utf16_without_replacement(bytes, &mut buf, true);
        buf[..written].zeroize();
        bytes = &bytes[read..];
        match result {
            DecoderResult::InputEmpty => return true,
            DecoderResult::Malformed(..) => return false,
            DecoderResult::OutputFull => {}
        }
    }
}

/// A byte that is never part of a multi-byte sequence in Shift_JIS, EUC-JP or
/// ISO-2022-JP (JIS X 0208 pairs are 0x21–0x7E), nor inside an escape: after it
/// a fresh decoder is in the same state as a running one.
fn is_safe_byte(b: u8) -> bool {
    b < 0x21 && b != 0x1B
}

/// A decoded buffer: UTF-8 text plus what is needed to map offsets back.
///
/// The decoded copy of a non-UTF-8 input is wiped on drop: it holds every
/// value the input holds.
pub struct DecodedText<'a> {
    text: Cow<'a, str>,
    source: &'a [u8],
    encoding: TextEncoding,
    bom: usize,
    had_errors: bool,
    /// Each segment's start; empty for UTF-8.
    segments: Vec<Segment>,
}

/// Where a segment starts in the original and in the decoded text, and
/// whether it decoded without errors.
#[derive(Debug, Clone, Copy)]
struct Segment {
    orig: usize,
    decoded: usize,
    clean: bool,
}

impl std::fmt::Debug for DecodedText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedText")
            .field("encoding", &self.encoding)
            .field("decoded_len", &self.text.len())
            .field("had_errors", &self.had_errors)
            .finish_non_exhaustive()
    }
}

impl Drop for DecodedText<'_> {
    fn drop(&mut self) {
        if let Cow::Owned(text) = &mut self.text {
            text.zeroize();
        }
    }
}

impl<'a> DecodedText<'a> {
    /// Detects the encoding and decodes.
    pub fn decode(source: &'a [u8]) -> Self {
        let mut utf8: Option<&'a str> = None;
        let (encoding, bom) = detect_with(source, || {
            utf8 = simdutf8::basic::from_utf8(source).ok();
            utf8.is_some()
        });
        match utf8 {
            // Already validated: borrow without a second pass.
            Some(text) if encoding == TextEncoding::Utf8 && bom == 0 => Self {
                text: Cow::Borrowed(text),
                source,
                encoding,
                bom,
                had_errors: false,
                segments: Vec::new(),
            },
            _ => Self::decode_as(source, encoding, bom),
        }
    }

    /// Decodes with a known encoding, skipping `bom` leading bytes.
    pub fn decode_as(source: &'a [u8], encoding: TextEncoding, bom: usize) -> Self {
        let bom = bom.min(source.len());
        if encoding == TextEncoding::Utf8
            && let Ok(text) = simdutf8::basic::from_utf8(&source[bom..])
        {
            return Self {
                text: Cow::Borrowed(text),
                source,
                encoding,
                bom,
                had_errors: false,
                segments: Vec::new(),
            };
        }
        let encoding = if encoding == TextEncoding::Utf8 {
            TextEncoding::Binary
        } else {
            encoding
        };
        let body = &source[bom..];
        let mut text = String::with_capacity(body.len() + body.len() / 2);
        let mut segments = Vec::with_capacity(body.len() / SEGMENT + 1);
        let mut had_errors = false;
        let mut start = 0;
        while start < body.len() {
            let end = segment_end(body, start, SEGMENT, encoding);
            let at = text.len();
            let mut decoder = encoding.encoding().new_decoder_without_bom_handling();
            let seg = &body[start..end];
            let needed = decoder
                .max_utf8_buffer_length(seg.len())
                .unwrap_or(seg.len() * 3 + 16);
            text.reserve(needed);
            let (_, _, errors) = decoder.decode_to_string(seg, &mut text, true);
            segments.push(Segment {
                orig: bom + start,
                decoded: at,
                clean: !errors,
            });
            had_errors |= errors;
            start = end;
        }
        Self {
            text: Cow::Owned(text),
            source,
            encoding,
            bom,
            had_errors,
            segments,
        }
    }

    /// The decoded text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The detected encoding.
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// Whether decoding replaced malformed bytes with U+FFFD.
    pub fn had_errors(&self) -> bool {
        self.had_errors
    }

    /// A cursor that maps increasing decoded offsets to original offsets in
    /// amortised linear time.
    pub fn offset_mapper(&self) -> OffsetMapper<'_, 'a> {
        OffsetMapper {
            text: self,
            state: None,
            walk: None,
            shortcuts: true,
        }
    }

    /// The original byte offset of a decoded offset (a char boundary). For
    /// many lookups use [`DecodedText::offset_mapper`].
    pub fn original_offset(&self, decoded: usize) -> usize {
        self.offset_mapper().map(decoded)
    }
}

/// Where the next segment starts: the first safe point at or after
/// `start + len`, or the end. `start` must be a safe point itself: a fresh
/// decoder there is in the state a running one is in, whatever came before.
/// In ISO-2022-JP that is after a control byte or space in ASCII mode; in
/// UTF-16 after any unit but a high surrogate; in the others after an ASCII
/// byte, which is never a lead byte: it ends the character it is the trail
/// byte of, or a decoder waiting for another kind of trail byte reads it as
/// an error and then as itself.
fn segment_end(body: &[u8], start: usize, len: usize, encoding: TextEncoding) -> usize {
    let min = start + len;
    if min >= body.len() {
        return body.len();
    }
    match encoding {
        TextEncoding::Utf16Le | TextEncoding::Utf16Be => {
            let mut i = min & !1;
            while i + 1 < body.len() {
                let unit = if encoding == TextEncoding::Utf16Le {
                    u16::from_le_bytes([body[i], body[i + 1]])
                } else {
                    u16::from_be_bytes([body[i], body[i + 1]])
                };
                if !(0xD800..0xDC00).contains(&unit) {
                    return i + 2;
                }
                i += 2;
            }
            body.len()
        }
        TextEncoding::Iso2022Jp => {
            // Split only where the decoder is back in ASCII mode, so a fresh
            // decoder is exactly equivalent: track the last escape sequence.
            // The decoder is in ASCII mode at `start`, a safe point.
            let mut ascii_mode = last_escape_is_ascii(&body[start..min]);
            let mut i = min;
            while i < body.len() {
                let b = body[i];
                if b == 0x1B {
                    ascii_mode = body[i + 1..].starts_with(b"(B");
                } else if ascii_mode && is_safe_byte(b) {
                    return i + 1;
                }
                i += 1;
            }
            body.len()
        }
        _ => body[min..]
            .iter()
            .position(|&b| b < 0x80 || encoding == TextEncoding::Windows1252)
            .map_or(body.len(), |p| min + p + 1),
    }
}

fn last_escape_is_ascii(before: &[u8]) -> bool {
    match memchr::memrchr(0x1B, before) {
        Some(i) => before[i + 1..].starts_with(b"(B"),
        None => true,
    }
}

/// Maps decoded offsets back to original offsets; see [`DecodedText::offset_mapper`].
pub struct OffsetMapper<'t, 'a> {
    text: &'t DecodedText<'a>,
    state: Option<MapState>,
    walk: Option<Walk>,
    /// Walk clean segments, decode whole runs and pass over bytes that
    /// decode to themselves (false only in the tests: the reference feeds
    /// every byte of a segment to one decoder).
    shortcuts: bool,
}

/// A walk through a segment that decoded without errors: there each
/// character's original length follows from its first byte (in
/// ISO-2022-JP, from the mode the escapes before it set; in UTF-16, from
/// its decoded length), so the original and the decoded text are walked
/// side by side, a few instructions a character, with no decoder call.
struct Walk {
    segment: usize,
    in_pos: usize,
    out_pos: usize,
    /// ISO-2022-JP in a JIS X 0208 mode (two bytes a character).
    double: bool,
    /// `(in_pos, out_pos, double)` where the last call started: a finding
    /// that starts inside the one before it (whose end was mapped last)
    /// goes back there, not to the segment's start.
    back: (usize, usize, bool),
}

impl std::fmt::Debug for OffsetMapper<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OffsetMapper")
    }
}

struct MapState {
    segment: usize,
    decoder: Decoder,
    /// Next original byte to feed.
    in_pos: usize,
    /// Decoded bytes produced so far (absolute).
    out_pos: usize,
    /// Original offset of the first byte of the character being assembled.
    pending: Option<usize>,
    /// Last produced chunk: decoded [start, end) came from original offset `orig`.
    last: (usize, usize, usize),
    /// `in_pos` is a safe point with nothing fed since: a fresh decoder may
    /// take over there, and the run after it may be decoded whole.
    at_safe_point: bool,
    /// The safe point ending the run being fed byte by byte.
    run_end: usize,
    /// The decoder's last output was one byte, or it is fresh. In
    /// ISO-2022-JP it is then in ASCII or JIS X 0201 Roman mode, with no
    /// escape since that output (an escape right after another one is an
    /// error, so the decoder remembers whether anything came between).
    ascii_output: bool,
    /// What the decoder writes, thrown away (and wiped on drop): zeroing a
    /// buffer for each call cost more than the shorter calls.
    scratch: Zeroizing<[u8; 256]>,
}

/// Whether an ASCII byte between characters decodes to itself and leaves the
/// decoder in its initial state (a safe point after it): true of the
/// encodings whose multi-byte characters never hold an ASCII lead byte.
fn ascii_is_stateless(encoding: TextEncoding) -> bool {
    matches!(
        encoding,
        TextEncoding::ShiftJis
            | TextEncoding::EucJp
            | TextEncoding::Windows1252
            | TextEncoding::Binary
            | TextEncoding::Utf8
    )
}

impl MapState {
    /// How many bytes of `source[i..end]` (`i` a character boundary, nothing
    /// pending) decode to themselves. In the stateless encodings an ASCII
    /// byte between characters is itself. ISO-2022-JP is the same after a
    /// one-byte output, but for the bytes that shift or escape, and those
    /// Roman mode reads as ¥ and ‾.
    fn identity_run(&self, source: &[u8], i: usize, end: usize, encoding: TextEncoding) -> usize {
        let bytes = &source[i..end.max(i)];
        if ascii_is_stateless(encoding) {
            bytes.iter().take_while(|&&b| b < 0x80).count()
        } else if encoding == TextEncoding::Iso2022Jp && self.ascii_output {
            bytes
                .iter()
                .take_while(|&&b| b < 0x80 && !matches!(b, 0x0E | 0x0F | 0x1B | b'\\' | b'~'))
                .count()
        } else {
            0
        }
    }
}

/// Original bytes the mapper decodes at a time, at least, when no offset it
/// is asked for falls in them: a decoder call costs about 270 instructions
/// however short its input, so fewer, longer runs cost less to pass over
/// but more to feed byte by byte up to an offset inside one.
const RUN: usize = 8;

/// Maps decoded offsets back to original offsets; see [`DecodedText::offset_mapper`].
impl OffsetMapper<'_, '_> {
    /// The original offset of `decoded`. Offsets past the end map to the end.
    pub fn map(&mut self, decoded: usize) -> usize {
        let t = self.text;
        if t.segments.is_empty() {
            return (decoded + t.bom).min(t.source.len());
        }
        if decoded >= t.text.len() {
            return t.source.len();
        }
        let encoding = t.encoding;
        let seg = t
            .segments
            .partition_point(|s| s.decoded <= decoded)
            .saturating_sub(1);
        if t.segments[seg].clean && self.shortcuts {
            return self.walk(seg, decoded);
        }
        let reuse = matches!(&self.state, Some(s) if s.segment == seg && s.last.0 <= decoded);
        if !reuse {
            let Segment {
                orig, decoded: dec, ..
            } = t.segments[seg];
            self.state = Some(MapState {
                segment: seg,
                decoder: encoding.encoding().new_decoder_without_bom_handling(),
                in_pos: orig,
                out_pos: dec,
                pending: None,
                last: (dec, dec, orig),
                at_safe_point: true,
                run_end: orig,
                ascii_output: true,
                scratch: Zeroizing::new([0; 256]),
            });
        }
        let seg_end = t.segments.get(seg + 1).map_or(t.source.len(), |s| s.orig);
        let Some(state) = self.state.as_mut() else {
            return t.source.len();
        };
        if decoded < state.last.1 {
            return state.last.2;
        }
        let body = &t.source[..seg_end];
        let stateless = ascii_is_stateless(encoding);
        // From a safe point, the run up to the next one is decoded in one
        // call when `decoded` lies past it (see `RUN`); the run holding
        // `decoded` is fed byte by byte by a fresh decoder. Between
        // characters, bytes that decode to themselves (ASCII, mostly a
        // finding's digits) are passed over without a call: the decoder does
        // not see them, which leaves it in the state they would, as
        // `pending` is none only after output (no character or escape in
        // progress), and see `MapState::identity_run`.
        while state.in_pos < seg_end {
            let i = state.in_pos;
            state.at_safe_point &= self.shortcuts;
            // In UTF-16 and ISO-2022-JP a fresh decoder takes the run a safe
            // point starts; in the stateless encodings ASCII may come first,
            // and the byte after it is a safe point again.
            if state.at_safe_point && !stateless {
                state.decoder = encoding.encoding().new_decoder_without_bom_handling();
                state.ascii_output = true;
                state.run_end = segment_end(body, i, RUN, encoding);
            }
            let identity = if self.shortcuts && state.pending.is_none() {
                state.identity_run(body, i, if stateless { seg_end } else { state.run_end }, encoding)
            } else {
                0
            };
            if identity > 0 {
                let k = identity.min(decoded.saturating_sub(state.out_pos));
                if k < identity {
                    // `decoded` is on the byte `k` into the run.
                    state.last = (state.out_pos + k, state.out_pos + k + 1, i + k);
                    state.in_pos = i + k + 1;
                    state.out_pos += k + 1;
                } else {
                    state.in_pos += identity;
                    state.out_pos += identity;
                    state.last = (state.out_pos - 1, state.out_pos, state.in_pos - 1);
                }
                // After ASCII a stateless decoder is in its initial state.
                state.at_safe_point = stateless || state.in_pos == state.run_end;
                if k < identity {
                    return i + k;
                }
                continue;
            }
            if state.at_safe_point {
                if stateless {
                    state.decoder = encoding.encoding().new_decoder_without_bom_handling();
                    state.run_end = segment_end(body, i, RUN, encoding);
                }
                let run = &body[i..state.run_end];
                let last = state.run_end == seg_end;
                let written = decoded_len(&mut state.decoder, run, last, &mut state.scratch[..]);
                if state.out_pos + written <= decoded {
                    state.in_pos = state.run_end;
                    state.out_pos += written;
                    state.last = (state.out_pos, state.out_pos, state.in_pos);
                    continue;
                }
                state.decoder = encoding.encoding().new_decoder_without_bom_handling();
                state.ascii_output = true;
                state.at_safe_point = false;
            }
            let last = i + 1 == seg_end;
            let buf = &mut state.scratch[..];
            let (result, read, written, _) = state.decoder.decode_to_utf8(&body[i..=i], buf, last);
            debug_assert!(result == CoderResult::InputEmpty && read == 1);
            state.in_pos += read.max(1);
            let start = *state.pending.get_or_insert(i);
            if written > 0 {
                let orig = if encoding == TextEncoding::Iso2022Jp {
                    // The escape sequence before a character produces no output; point at
                    // the character's own bytes: one in single-byte modes, two in JIS X 0208.
                    let out = &buf[..written];
                    let single = out[0] < 0x80
                        || out.starts_with("¥".as_bytes())
                        || out.starts_with("‾".as_bytes())
                        || is_halfwidth_kana(out);
                    (i + 1).saturating_sub(if single { 1 } else { 2 }).max(start)
                } else {
                    start
                };
                state.last = (state.out_pos, state.out_pos + written, orig);
                state.out_pos += written;
                state.ascii_output = written == 1;
                state.pending = held_after_output(t, i);
            }
            // The run fed byte by byte is over: decode whole runs again.
            state.at_safe_point = state.in_pos == state.run_end && state.pending.is_none();
            if written > 0 && decoded < state.out_pos {
                return state.last.2;
            }
        }
        seg_end
    }

    /// [`OffsetMapper::map`] in a clean segment.
    fn walk(&mut self, seg: usize, decoded: usize) -> usize {
        let t = self.text;
        let (source, text) = (t.source, t.text.as_bytes());
        let decoded = floor_char_boundary(&t.text, decoded);
        let w = match &mut self.walk {
            Some(w) if w.segment == seg && w.back.1 <= decoded => {
                if decoded < w.out_pos {
                    (w.in_pos, w.out_pos, w.double) = w.back;
                }
                w
            }
            walk => {
                let Segment {
                    orig, decoded: dec, ..
                } = t.segments[seg];
                walk.insert(Walk {
                    segment: seg,
                    in_pos: orig,
                    out_pos: dec,
                    double: false,
                    back: (orig, dec, false),
                })
            }
        };
        w.back = (w.in_pos, w.out_pos, w.double);
        loop {
            if t.encoding == TextEncoding::Iso2022Jp {
                // Escapes make no output; the character's own bytes follow.
                // A clean segment holds only the five three-byte escapes.
                while source.get(w.in_pos) == Some(&0x1B) {
                    w.double = source.get(w.in_pos + 1) == Some(&b'$');
                    w.in_pos += 3;
                }
            }
            let Some(&lead) = text.get(w.out_pos).filter(|_| w.out_pos < decoded) else {
                // A length rule that drifted would run into the next segment.
                debug_assert!(w.in_pos <= t.segments.get(seg + 1).map_or(source.len(), |s| s.orig));
                return w.in_pos.min(source.len());
            };
            let out_len = match lead {
                ..0x80 => 1,
                0x80..0xE0 => 2,
                0xE0..0xF0 => 3,
                _ => 4,
            };
            let b = source.get(w.in_pos).copied().unwrap_or(0);
            w.in_pos += match t.encoding {
                TextEncoding::ShiftJis if b <= 0x80 || (0xA1..=0xDF).contains(&b) => 1,
                TextEncoding::ShiftJis => 2,
                TextEncoding::EucJp if b < 0x80 => 1,
                TextEncoding::EucJp if b == 0x8F => 3,
                TextEncoding::EucJp => 2,
                TextEncoding::Iso2022Jp if w.double => 2,
                TextEncoding::Iso2022Jp | TextEncoding::Windows1252 => 1,
                TextEncoding::Utf16Le | TextEncoding::Utf16Be if out_len == 4 => 4,
                TextEncoding::Utf16Le | TextEncoding::Utf16Be => 2,
                TextEncoding::Utf8 | TextEncoding::Binary => out_len,
            };
            w.out_pos += out_len;
        }
    }
}

/// Where a character starts that the decoder still holds after an output
/// at byte `i`: UTF-8 reads a lead byte that cuts the sequence before it
/// short as an error and then again as a lead, and UTF-16 a high surrogate
/// after a lone one. Shift_JIS and EUC-JP read again only an ASCII byte.
fn held_after_output(t: &DecodedText<'_>, i: usize) -> Option<usize> {
    let b = t.source[i];
    match t.encoding {
        TextEncoding::Utf8 | TextEncoding::Binary => (0xC2..=0xF4).contains(&b).then_some(i),
        TextEncoding::Utf16Le | TextEncoding::Utf16Be if (i - t.bom) % 2 == 1 => {
            let high = if t.encoding == TextEncoding::Utf16Le {
                b
            } else {
                t.source[i - 1]
            };
            (0xD8..0xDC).contains(&high).then_some(i - 1)
        }
        _ => None,
    }
}

/// The length of `bytes` decoded; the text goes to `scratch`.
fn decoded_len(decoder: &mut Decoder, mut bytes: &[u8], last: bool, scratch: &mut [u8]) -> usize {
    let mut total = 0;
    loop {
        let (result, read, written, _) = decoder.decode_to_utf8(bytes, scratch, last);
        total += written;
        bytes = &bytes[read..];
        if result == CoderResult::InputEmpty {
            return total;
        }
    }
}

fn is_halfwidth_kana(utf8: &[u8]) -> bool {
    // U+FF61–U+FF9F encode as EF BD A1–EF BD BF and EF BE 80–EF BE 9F.
    matches!(
        utf8,
        [0xEF, 0xBD, 0xA1..=0xBF, ..] | [0xEF, 0xBE, 0x80..=0x9F, ..]
    )
}

/// Line and column (both 1-based; column in characters) of increasing
/// decoded offsets, in amortised linear time.
#[derive(Debug)]
pub struct LineCounter<'t> {
    text: &'t str,
    pos: usize,
    line: usize,
    line_start: usize,
    col_pos: usize,
    col: usize,
}

impl<'t> LineCounter<'t> {
    /// A counter at the start of `text`.
    pub fn new(text: &'t str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
            line_start: 0,
            col_pos: 0,
            col: 1,
        }
    }

    /// (line, column) of `offset`. Offsets must not decrease between calls
    /// for linear time; a smaller one restarts from the top.
    pub fn locate(&mut self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        if offset < self.pos {
            *self = Self::new(self.text);
        }
        let bytes = self.text.as_bytes();
        // Counted in one vectorised pass, not stopping at every line end.
        let gap = &bytes[self.pos..offset];
        if let Some(last) = memchr::memrchr(b'\n', gap) {
            self.line += memchr::memchr_iter(b'\n', gap).count();
            self.line_start = self.pos + last + 1;
        }
        self.pos = offset;
        if self.col_pos < self.line_start {
            self.col_pos = self.line_start;
            self.col = 1;
        }
        self.col += self.text[self.col_pos..offset].chars().count();
        self.col_pos = offset;
        (self.line, self.col)
    }
}

pub(crate) fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub(crate) fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(text: &str, enc: &'static Encoding) -> Vec<u8> {
        let (bytes, _, errors) = enc.encode(text);
        assert!(!errors);
        bytes.into_owned()
    }

    /// `text` in `enc`: Windows-1252 and binary get its UTF-8 bytes.
    fn encode_as(text: &str, enc: TextEncoding) -> Vec<u8> {
        match enc {
            TextEncoding::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            TextEncoding::Utf16Be => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            TextEncoding::Utf8 | TextEncoding::Windows1252 | TextEncoding::Binary => text.as_bytes().to_vec(),
            _ => encode(text, enc.encoding()),
        }
    }

    /// Every encoding a decoded text can have segments in.
    const SEGMENTED: [TextEncoding; 7] = [
        TextEncoding::ShiftJis,
        TextEncoding::EucJp,
        TextEncoding::Iso2022Jp,
        TextEncoding::Utf16Le,
        TextEncoding::Utf16Be,
        TextEncoding::Windows1252,
        TextEncoding::Binary,
    ];

    const SAMPLE: &str =
        "ご注文ありがとうございます。カード番号：４１１１ 1111 1111 1111\n電話 090-1234-5678\n";

    #[test]
    fn detects_each_encoding() {
        assert_eq!(detect_encoding(SAMPLE.as_bytes()), (TextEncoding::Utf8, 0));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(SAMPLE.as_bytes());
        assert_eq!(detect_encoding(&bom), (TextEncoding::Utf8, 3));
        assert_eq!(
            detect_encoding(&encode(SAMPLE, SHIFT_JIS)).0,
            TextEncoding::ShiftJis
        );
        assert_eq!(detect_encoding(&encode(SAMPLE, EUC_JP)).0, TextEncoding::EucJp);
        assert_eq!(
            detect_encoding(&encode(SAMPLE, ISO_2022_JP)).0,
            TextEncoding::Iso2022Jp
        );
        let mut le = vec![0xFF, 0xFE];
        le.extend(SAMPLE.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(detect_encoding(&le), (TextEncoding::Utf16Le, 2));
        let mut be = vec![0xFE, 0xFF];
        be.extend(SAMPLE.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(detect_encoding(&be), (TextEncoding::Utf16Be, 2));
        let bomless: Vec<u8> = "order 4111111111111111 ok"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(detect_encoding(&bomless).0, TextEncoding::Utf16Le);
        assert_eq!(
            detect_encoding(b"\x00\xff\xfe\x80\x81 plain").0,
            TextEncoding::Binary
        );
    }

    /// The Shift_JIS / EUC-JP rule as first written, the reference
    /// [`shift_jis_or_euc_jp`] must agree with: each encoding decoded by
    /// `encoding_rs` into a string of its own.
    fn reference_shift_jis_or_euc_jp(sample: &[u8]) -> TextEncoding {
        let decodes = |enc: &'static Encoding| {
            enc.decode_without_bom_handling_and_without_replacement(trim_tail(sample))
                .is_some()
        };
        match (decodes(SHIFT_JIS), decodes(EUC_JP)) {
            (true, false) => TextEncoding::ShiftJis,
            (false, true) => TextEncoding::EucJp,
            (true, true) => {
                if kana_pairs(sample, 0xA4..=0xA5, 0xA1..=0xF6) > kana_pairs(sample, 0x82..=0x83, 0x40..=0xF1)
                {
                    TextEncoding::EucJp
                } else {
                    TextEncoding::ShiftJis
                }
            }
            (false, false) => TextEncoding::Binary,
        }
    }

    /// Every branch of the rule, each input built to reach it: which of the
    /// two decode (the cut tail aside) and which kana pairs are more frequent.
    #[test]
    fn shift_jis_or_euc_jp_branches() {
        use TextEncoding::{Binary, EucJp, ShiftJis};
        let cases: [(&[u8], bool, bool, TextEncoding); 6] = [
            // EUC-JP あい, also valid Shift_JIS (half-width katakana): kana decide.
            (b"\xA4\xA2\xA4\xA4\n", true, true, EucJp),
            // EUC-JP 漢 (ｴﾁ in Shift_JIS): no kana either way, the tie goes to Shift_JIS.
            (b"\xB4\xC1\n", true, true, ShiftJis),
            // Both decode; Shift_JIS あ only in the cut tail, yet counted.
            (b"\xB4\xC1\n\x82\xA0", true, true, ShiftJis),
            // EUC-JP kana, but EUC-JP fails on 0x80: Shift_JIS alone.
            (b"\xA4\xA2\x80\n", true, false, ShiftJis),
            // Shift_JIS kana in the tail, but Shift_JIS fails on 0xFA 0x0A: EUC-JP 字 alone.
            (b"\xBB\xFA\n\x82\xA0", false, true, EucJp),
            // Both fail (0xFF).
            (b"\xA4\xA2\xFF\n", false, false, Binary),
        ];
        for (bytes, sjis_ok, euc_ok, expected) in cases {
            assert_eq!(
                decodes_cleanly(ShiftJis, trim_tail(bytes)),
                sjis_ok,
                "{bytes:02X?}"
            );
            assert_eq!(decodes_cleanly(EucJp, trim_tail(bytes)), euc_ok, "{bytes:02X?}");
            assert_eq!(shift_jis_or_euc_jp(bytes), expected, "{bytes:02X?}");
            assert_eq!(reference_shift_jis_or_euc_jp(bytes), expected, "{bytes:02X?}");
        }
    }

    /// The decoder's output buffer fills many times over: an error after a
    /// refill still counts, and so does a character cut at the very end.
    #[test]
    fn decodes_cleanly_across_buffer_refills() {
        let long = encode(&"お届け先".repeat(500), SHIFT_JIS);
        assert!(decodes_cleanly(TextEncoding::ShiftJis, &long));
        assert!(!decodes_cleanly(
            TextEncoding::ShiftJis,
            &[&long[..], b"\xFF"].concat()
        ));
        assert!(!decodes_cleanly(TextEncoding::ShiftJis, &long[..long.len() - 1]));
        assert!(!decodes_cleanly(TextEncoding::EucJp, &long));
    }

    /// Every Shift_JIS and EUC-JP document of the labelled corpus is detected
    /// as what it is, as the reference rule detects it.
    #[test]
    fn corpus_documents_detected_as_by_the_reference() {
        let scanner = crate::Scanner::new(crate::tests::test_key());
        let corpus = crate::corpus::generate(7, 60, &scanner);
        let mut checked = 0;
        for doc in &corpus.documents {
            if matches!(doc.encoding, TextEncoding::ShiftJis | TextEncoding::EucJp) {
                assert_eq!(detect_encoding(&doc.bytes), (doc.encoding, 0), "{}", doc.name);
                assert_eq!(
                    reference_shift_jis_or_euc_jp(&doc.bytes),
                    doc.encoding,
                    "{}",
                    doc.name
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 20);
    }

    /// Everyday generated text in Shift_JIS and in EUC-JP, for slices of it.
    fn japanese_in_both() -> &'static [Vec<u8>; 2] {
        static TEXT: std::sync::OnceLock<[Vec<u8>; 2]> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let scanner = crate::Scanner::new(crate::tests::test_key());
            let text = crate::corpus::plain_text(3, 64 * 1024, &scanner);
            [encode(&text, SHIFT_JIS), encode(&text, EUC_JP)]
        })
    }

    #[test]
    fn decodes_and_maps_offsets_in_every_encoding() {
        let needle = "090-1234-5678";
        let decoded_at = SAMPLE.find(needle).expect("planted");
        for enc in [SHIFT_JIS, EUC_JP, ISO_2022_JP] {
            let bytes = encode(SAMPLE, enc);
            let d = DecodedText::decode(&bytes);
            assert_eq!(d.text(), SAMPLE, "{}", enc.name());
            assert!(!d.had_errors());
            let orig = d.original_offset(decoded_at);
            assert_eq!(
                &bytes[orig..orig + needle.len()],
                needle.as_bytes(),
                "{}",
                enc.name()
            );
        }
        let mut le = vec![0xFF, 0xFE];
        le.extend(SAMPLE.encode_utf16().flat_map(u16::to_le_bytes));
        let d = DecodedText::decode(&le);
        assert_eq!(d.text(), SAMPLE);
        let orig = d.original_offset(decoded_at);
        let units_before = SAMPLE[..decoded_at].encode_utf16().count();
        assert_eq!(orig, 2 + units_before * 2);
    }

    #[test]
    fn sjis_detected_when_the_sample_cuts_a_long_line() {
        // Lines of 40 two-byte characters: wherever the 64 KiB sample ends,
        // the last line end is more than 16 bytes back.
        let line = format!("{}\n", "カード番号お届け先".repeat(5));
        for pad in 0..4 {
            let text = format!("{}{}", "a".repeat(pad), line.repeat(1000));
            let (sjis, _, _) = SHIFT_JIS.encode(&text);
            assert_eq!(detect_encoding(&sjis).0, TextEncoding::ShiftJis, "pad {pad}");
        }
    }

    /// UTF-8 reads a lead byte after a cut-short sequence as an error and
    /// then as the start of the next character; UTF-16 the same for a high
    /// surrogate after a lone one. The character maps to its own bytes.
    #[test]
    fn a_character_started_by_the_byte_after_an_error_maps_to_its_own_bytes() {
        // Bytes, encoding, where the second character and the last one start.
        for (bytes, enc, at, last) in [
            (&b"\xC2\xC2\xA9 1"[..], TextEncoding::Binary, 1, 4),
            (&b"\x3D\xD8\x3D\xD8\x00\xDE1\0"[..], TextEncoding::Utf16Le, 2, 6),
            (&b"\xD8\x3D\xD8\x3D\xDE\x00\x001"[..], TextEncoding::Utf16Be, 2, 6),
        ] {
            let d = DecodedText::decode_as(bytes, enc, 0);
            let (second, _) = d.text().char_indices().nth(1).expect("two characters");
            assert_eq!(d.text().chars().next(), Some('\u{FFFD}'));
            for shortcuts in [true, false] {
                let mut mapper = d.offset_mapper();
                mapper.shortcuts = shortcuts;
                assert_eq!(mapper.map(second), at, "{}", enc.as_str());
                // And what follows it is where it is.
                assert_eq!(mapper.map(d.text().len() - 1), last, "{}", enc.as_str());
            }
        }
    }

    #[test]
    fn long_sjis_input_maps_across_segments() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("行{i} お客様 電話 090-0000-{i:04}\n"));
        }
        let bytes = encode(&text, SHIFT_JIS);
        let d = DecodedText::decode(&bytes);
        assert_eq!(d.text(), text);
        assert!(d.segments.len() > 2);
        let mut mapper = d.offset_mapper();
        for (decoded_at, m) in text.match_indices("090-0000-") {
            let orig = mapper.map(decoded_at);
            assert_eq!(&bytes[orig..orig + m.len()], m.as_bytes());
        }
    }

    #[test]
    fn utf8_is_borrowed_and_identity_mapped() {
        let d = DecodedText::decode(SAMPLE.as_bytes());
        assert!(matches!(d.text, Cow::Borrowed(_)));
        assert_eq!(d.original_offset(10), 10);
    }

    #[test]
    fn line_counter_counts_chars() {
        let text = "ab\nカード 41\nx";
        let mut lc = LineCounter::new(text);
        assert_eq!(lc.locate(0), (1, 1));
        assert_eq!(lc.locate(text.find("41").expect("present")), (2, 5));
        assert_eq!(lc.locate(text.len() - 1), (3, 1));
        assert_eq!(lc.locate(1), (1, 2));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_maps_in_range(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let d = DecodedText::decode(&bytes);
            let mut mapper = d.offset_mapper();
            let mut prev = 0;
            for (i, _) in d.text().char_indices() {
                let o = mapper.map(i);
                prop_assert!(o <= bytes.len());
                prop_assert!(o >= prev || d.encoding() == TextEncoding::Iso2022Jp);
                prev = o;
            }
        }

        #[test]
        fn detection_matches_the_reference_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert_eq!(shift_jis_or_euc_jp(&bytes), reference_shift_jis_or_euc_jp(&bytes));
        }

        /// Text in one encoding with up to three characters of the other, or
        /// bytes, put anywhere (even inside a character): inputs that decode
        /// in one, both or neither, failing anywhere.
        #[test]
        fn detection_matches_the_reference_on_mixed_encodings(
            text in "[あ-んア-ン漢字ｱ-ﾝ０-９a-z \n]{0,80}",
            euc in any::<bool>(),
            inserts in proptest::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    prop_oneof![
                        "[あ-んア-ン漢字ｱ-ﾝ]".prop_map(|c| encode(&c, SHIFT_JIS)),
                        "[あ-んア-ン漢字ｱ-ﾝ]".prop_map(|c| encode(&c, EUC_JP)),
                        any::<u8>().prop_map(|b| vec![b]),
                    ],
                ),
                0..4,
            ),
        ) {
            let mut bytes = encode(&text, if euc { EUC_JP } else { SHIFT_JIS });
            for (at, insert) in inserts {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, insert);
            }
            prop_assert_eq!(shift_jis_or_euc_jp(&bytes), reference_shift_jis_or_euc_jp(&bytes));
        }

        /// Slices of generated text (cut anywhere, even inside a character),
        /// as they are or with one byte changed.
        #[test]
        fn detection_matches_the_reference_on_generated_text(
            euc in any::<bool>(),
            start in any::<prop::sample::Index>(),
            len in 0usize..8192,
            change in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            let text = &japanese_in_both()[usize::from(euc)];
            let start = start.index(text.len());
            let mut bytes = text[start..text.len().min(start + len)].to_vec();
            if let Some((at, b)) = change && !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = b;
            }
            prop_assert_eq!(shift_jis_or_euc_jp(&bytes), reference_shift_jis_or_euc_jp(&bytes));
        }

        /// Offsets asked for sparsely (the mapper skips whole runs between
        /// them) land on each character's own bytes, in every multi-byte
        /// encoding and across segments.
        #[test]
        fn sparse_offsets_map_to_each_chars_bytes(
            s in "[a-z0-9０-９あ-んア-ン漢字 \n:-]{0,1500}",
            step in 1usize..80,
        ) {
            for enc in [SHIFT_JIS, EUC_JP, ISO_2022_JP] {
                let bytes = encode(&s, enc);
                let d = DecodedText::decode(&bytes);
                if d.text() != s {
                    // Too little to detect the encoding by: nothing to map.
                    continue;
                }
                let mut mapper = d.offset_mapper();
                for (i, c) in s.char_indices().step_by(step) {
                    let o = mapper.map(i);
                    if enc == ISO_2022_JP {
                        // Its characters' bytes depend on the mode: check ASCII ones.
                        if c.is_ascii() {
                            prop_assert_eq!(bytes[o], c as u8, "{} at {}", enc.name(), i);
                        }
                        continue;
                    }
                    let mut one = [0u8; 4];
                    let expect = encode(c.encode_utf8(&mut one), enc);
                    prop_assert_eq!(&bytes[o..o + expect.len()], expect.as_slice(), "{} at {}", enc.name(), i);
                }
            }
        }

        /// Mapping offsets one after another (whole runs decoded in one
        /// call, ASCII passed over) gives what a fresh mapper feeding every
        /// byte to one decoder gives for each offset alone, in every
        /// encoding, on any bytes: malformed sequences included.
        #[test]
        fn mapping_in_order_matches_a_fresh_byte_by_byte_mapper(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            text in "[a-z0-9０-９あ-んア-ン漢字 \n:-]{0,120}",
            step in 1usize..9,
        ) {
            for enc in SEGMENTED {
                let bytes = [encode_as(&text, enc), raw.clone()].concat();
                let d = DecodedText::decode_as(&bytes, enc, 0);
                let mut mapper = d.offset_mapper();
                for (i, _) in d.text().char_indices().step_by(step) {
                    let mut fresh = d.offset_mapper();
                    fresh.shortcuts = false;
                    prop_assert_eq!(mapper.map(i), fresh.map(i), "{} at {}", enc.as_str(), i);
                }
            }
        }

        /// A fresh decoder at each safe point decodes what one decoder over
        /// the whole input does, in every encoding, on any bytes: malformed
        /// sequences, lone surrogates and every ISO-2022-JP escape included.
        #[test]
        fn fresh_decoders_at_safe_points_decode_as_one_decoder(
            tokens in proptest::collection::vec(
                prop_oneof![
                    "[a-z0-9０-９あ-んア-ン漢字 \n:-]{0,8}".prop_map(|t| t.into_bytes()),
                    Just(b"\x1b(B".to_vec()),
                    Just(b"\x1b$B".to_vec()),
                    Just(b"\x1b(J".to_vec()),
                    Just(b"\x1b(I".to_vec()),
                    // Surrogates, in both byte orders.
                    Just(vec![0xD8, 0x3D]),
                    Just(vec![0xDE, 0x00]),
                    Just(vec![0x3D, 0xD8]),
                    Just(vec![0x00, 0xDE]),
                    proptest::collection::vec(any::<u8>(), 1..4),
                ],
                0..60,
            ),
            japanese in "[0-9０-９あ-んア-ン漢字 \n]{0,40}",
            len in 1usize..8,
        ) {
            let raw = tokens.concat();
            for enc in SEGMENTED {
                // Valid text of the encoding, then anything.
                let body = [encode_as(&japanese, enc), raw.clone()].concat();
                let mut pieces = String::new();
                let mut start = 0;
                while start < body.len() {
                    let end = segment_end(&body, start, len, enc);
                    prop_assert!(end > start);
                    let mut decoder = enc.encoding().new_decoder_without_bom_handling();
                    let mut piece = String::with_capacity(decoder.max_utf8_buffer_length(end - start).unwrap_or(0));
                    let (result, _, _) = decoder.decode_to_string(&body[start..end], &mut piece, true);
                    prop_assert_eq!(result, CoderResult::InputEmpty);
                    pieces.push_str(&piece);
                    start = end;
                }
                let (whole, _) = enc.encoding().decode_without_bom_handling(&body);
                prop_assert_eq!(pieces.as_str(), &*whole, "{}", enc.as_str());
            }
        }

        /// Where a segment decoded without errors the mapper walks the
        /// original and the decoded text side by side, with no decoder: it
        /// maps every offset as a fresh mapper feeding every byte to one
        /// decoder does, in every encoding, across segments (the text is
        /// repeated past a segment's 4 KiB), with a BOM or not, with
        /// half-width katakana, level-2 and IBM-extension kanji, characters
        /// outside the BMP in UTF-16, JIS X 0212 in EUC-JP, every mode
        /// ISO-2022-JP's escapes select, offsets inside characters and out of
        /// order, and with a damaged byte somewhere, which leaves its segment
        /// to the decoder between clean ones.
        #[test]
        fn walking_clean_segments_matches_a_fresh_byte_by_byte_mapper(
            jis in "[a-z0-9０-９あ-んア-ン｡-ﾟ漢字弌漾堯¥‾ \\n:-]{1,200}",
            wide in "[𠮷é€a ]{0,20}",
            modes in proptest::collection::vec(
                // Each from ASCII mode back to it, then a space: two escapes
                // in a row are an error.
                prop_oneof![
                    "[ -~]{1,6}".prop_map(|t| [&b"\x1b(B"[..], t.as_bytes(), b" "].concat()),
                    "[!-~]{1,6}".prop_map(|t| [&b"\x1b(J"[..], t.as_bytes(), b"\x1b(B "].concat()),
                    "[!-_]{1,6}".prop_map(|t| [&b"\x1b(I"[..], t.as_bytes(), b"\x1b(B "].concat()),
                    "[あ-ん漢字]{1,6}".prop_map(|t| [encode(&t, ISO_2022_JP), b" ".to_vec()].concat()),
                    // JIS X 0208-1978, which the encoder never selects.
                    "[あ-ん漢字]{1,6}".prop_map(|t| {
                        let mut e = encode(&t, ISO_2022_JP);
                        e[2] = b'@';
                        [e, b" ".to_vec()].concat()
                    }),
                ],
                0..12,
            ),
            repeat in 1usize..40,
            bom in any::<bool>(),
            damage in proptest::option::of(any::<proptest::sample::Index>()),
            spans in proptest::collection::vec(
                (any::<proptest::sample::Index>(), any::<proptest::sample::Index>()),
                1..16,
            ),
        ) {
            for enc in SEGMENTED {
                let text = match enc {
                    TextEncoding::ShiftJis | TextEncoding::EucJp | TextEncoding::Iso2022Jp => jis.clone(),
                    _ => format!("{jis}{wide}"),
                };
                let mut one = encode_as(&text, enc);
                // What the encoders never write: U+0080 as one byte and an
                // IBM extension (髙, lead 0xFB) in Shift_JIS, a three-byte JIS
                // X 0212 character in EUC-JP.
                match enc {
                    TextEncoding::ShiftJis => one.extend_from_slice(b"\x80\xfb\xfc "),
                    TextEncoding::EucJp => one.extend_from_slice(b"\x8f\xb0\xa1 "),
                    TextEncoding::Iso2022Jp => {
                        one.push(b' ');
                        one.extend(modes.concat());
                    }
                    _ => {}
                }
                let mut bytes = one.repeat(repeat);
                // A byte no decoder of these reads cleanly (a lone surrogate
                // in UTF-16), where a character starts; not in Windows-1252,
                // which has none.
                let damaged = damage.filter(|_| enc != TextEncoding::Windows1252).map(|at| {
                    let at = at.index(bytes.len()) & !1;
                    let bad: &[u8] = match enc {
                        TextEncoding::Utf16Le => b"\x00\xd8",
                        TextEncoding::Utf16Be => b"\xd8\x00",
                        TextEncoding::Iso2022Jp => b"\x1b(Z",
                        _ => b"\xa0\xff",
                    };
                    bytes.splice(at..at, bad.iter().copied());
                });
                let bom = match enc {
                    TextEncoding::Utf16Le if bom => b"\xff\xfe".as_slice(),
                    TextEncoding::Utf16Be if bom => b"\xfe\xff".as_slice(),
                    _ => b"",
                };
                let bytes = [bom, &bytes].concat();
                let d = DecodedText::decode_as(&bytes, enc, bom.len());
                prop_assert_eq!(d.had_errors(), damaged.is_some(), "{}", enc.as_str());
                // Asked for as `resolve` asks: the start and end of findings
                // in the order of their starts, which may nest or overlap.
                let offsets: Vec<usize> = d.text().char_indices().map(|(i, _)| i).collect();
                let mut spans: Vec<(usize, usize)> = spans
                    .iter()
                    .map(|(a, b)| {
                        let a = a.index(offsets.len());
                        (offsets[a], offsets[a + b.index(offsets.len() - a)])
                    })
                    .collect();
                spans.sort_unstable();
                let in_order = spans.iter().flat_map(|&(a, b)| [a, b]);
                // Then backwards, and inside characters.
                let backwards = spans.iter().rev().flat_map(|&(a, b)| [b + 1, a]);
                let mut mapper = d.offset_mapper();
                for i in in_order.chain(backwards) {
                    let mut fresh = d.offset_mapper();
                    fresh.shortcuts = false;
                    prop_assert_eq!(mapper.map(i), fresh.map(i), "{} at {}", enc.as_str(), i);
                }
                if damaged.is_none() {
                    // The walk did it all: no decoder was started.
                    prop_assert!(mapper.state.is_none(), "{}", enc.as_str());
                }
            }
        }

        /// The same for ISO-2022-JP, which has modes and reads two escapes in
        /// a row as an error: built from escapes to every mode, shifts, lone
        /// escapes, JIS X 0208 pairs, digits, spaces and any byte.
        #[test]
        fn iso_2022_jp_mapping_in_order_matches_a_byte_by_byte_mapper(
            tokens in proptest::collection::vec(
                prop_oneof![
                    Just(b"\x1b(B".to_vec()),
                    Just(b"\x1b(J".to_vec()),
                    Just(b"\x1b$B".to_vec()),
                    Just(b"\x1b$@".to_vec()),
                    Just(b"\x1b(I".to_vec()),
                    Just(vec![0x1B]),
                    Just(vec![0x0E]),
                    Just(vec![0x0F]),
                    Just(b"$\"".to_vec()),
                    Just(b"0123456789".to_vec()),
                    Just(b" \n".to_vec()),
                    any::<u8>().prop_map(|b| vec![b]),
                ],
                0..200,
            ),
            step in 1usize..5,
        ) {
            let bytes = tokens.concat();
            let d = DecodedText::decode_as(&bytes, TextEncoding::Iso2022Jp, 0);
            let mut mapper = d.offset_mapper();
            for (i, _) in d.text().char_indices().step_by(step) {
                let mut fresh = d.offset_mapper();
                fresh.shortcuts = false;
                prop_assert_eq!(mapper.map(i), fresh.map(i), "at {}", i);
            }
        }

        #[test]
        fn sjis_round_trip_maps_every_char(s in "[a-z0-9０-９あ-んア-ン漢字 \n-]{0,200}") {
            let bytes = encode(&s, SHIFT_JIS);
            let d = DecodedText::decode_as(&bytes, TextEncoding::ShiftJis, 0);
            prop_assert_eq!(d.text(), s.as_str());
            let mut mapper = d.offset_mapper();
            for (i, c) in s.char_indices() {
                let o = mapper.map(i);
                let mut one = [0u8; 4];
                let expect = encode(c.encode_utf8(&mut one), SHIFT_JIS);
                prop_assert_eq!(&bytes[o..o + expect.len()], expect.as_slice());
            }
        }
    }
}
