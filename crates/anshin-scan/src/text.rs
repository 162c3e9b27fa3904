//! Text objects read in bounded pieces.
//!
//! A piece ends at a line end (for CSV, at a line end outside quotes), so
//! every value that does not span lines lies wholly in one piece and lines
//! and CSV rows can be counted on. Plain text is scanned with a few whole
//! lines before and after each piece as context, so a label on the line
//! before a value counts wherever the pieces fall. A line longer than a
//! chunk ([`crate::Limits::chunk`]) is cut at a character boundary; a value
//! spanning that cut is missed and the object is reported `partial`.

use std::io::Read;

use anshin_detect::{CsvLayout, DecodedText, Finding, TextEncoding, detect_encoding};
use zeroize::Zeroizing;

use crate::container::{Ctx, limit_reason};
use crate::{ObjectKind, ObjectReport, Status};

/// How to read a text object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Text,
    /// CSV with the delimiter, or `None` to sniff it.
    Csv(Option<u8>),
}

/// The mode for an object named `name`: `.csv` and `.tsv` are column-aware.
pub(crate) fn mode_for(name: &str) -> Mode {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    let ext = base.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Mode::Csv(None),
        Some("tsv" | "tab") => Mode::Csv(Some(b'\t')),
        _ => Mode::Text,
    }
}

/// Bytes read and scanned at a time: a piece is read, validated, scanned and
/// its lines counted while it is in the core's cache (8 MiB pieces, each
/// pass streaming from memory, scanned plain text 12–20 % slower). A line
/// longer than a piece grows it up to [`crate::Limits::chunk`].
const PIECE: usize = 256 << 10;

/// Whole lines before and after a piece scanned as its context only (a label
/// on the line before a value, an expiry date on the line after a card): at
/// least the detectors' widest look either way, at most `MARGIN_MAX`, so
/// where pieces fall changes no finding. Values never span a line end.
const MARGIN_BEHIND: usize = 256;
const MARGIN_AHEAD: usize = 64;
const MARGIN_MAX: usize = 4 << 10;

/// Reads `reader` to its end (or a limit) and scans it.
///
/// Each scan is of a *window*: `lead` bytes already reported (context),
/// the piece whose findings are reported (to `core_end`), and whole lines
/// after it as context, which the next window reports.
pub(crate) fn scan(ctx: &Ctx<'_>, path: String, reader: &mut dyn Read, mode: Mode) -> ObjectReport {
    let discovery = ctx.discovery;
    let chunk = discovery.limits.chunk;
    let kind = if matches!(mode, Mode::Csv(_)) {
        ObjectKind::Csv
    } else {
        ObjectKind::Text
    };
    let csv = matches!(mode, Mode::Csv(_));
    let mut report = ObjectReport::new(path, kind);
    let mut listed = ctx.reservation();
    let mut buf = Zeroizing::new(Vec::new());
    // File offset, lines before, and characters already seen on its line
    // (after a cut inside a line) of the buffer's first byte.
    let mut base = 0u64;
    let mut lines_before = 0usize;
    let mut column_carry = 0usize;
    // Bytes at the buffer's start already reported (context for this window).
    let mut lead = 0usize;
    let mut target = PIECE.min(chunk);
    let mut encoding: Option<(TextEncoding, usize)> = None;
    let mut layout: Option<CsvLayout> = None;
    let mut header_ok: Vec<(String, bool)> = Vec::new();
    let mut eof = false;
    loop {
        // In-memory text (document parts) is not read through a timed
        // reader: the per-file limit is checked here, between pieces.
        if ctx.deadline.passed() {
            report.degrade(Status::Partial, ctx.deadline.reason());
            break;
        }
        let mut read = 0u64;
        let filled = if eof {
            Ok(())
        } else {
            fill(&mut buf, reader, lead + target, &mut eof, &mut |n| {
                discovery.count_bytes(n);
                read += n as u64;
            })
        };
        report.bytes += read;
        if let Err(e) = filled {
            eof = true;
            report.degrade(Status::Partial, limit_reason(&e));
        }
        if buf.len() <= lead {
            break;
        }
        let (enc, bom) = *encoding.get_or_insert_with(|| detect_first(&buf, eof));
        let (cut, at_line_end) = if eof {
            (buf.len() - lead, true)
        } else {
            cut_point(&buf[lead..], enc, mode)
        };
        if !at_line_end && target < chunk {
            // No line end yet: read more of the line before cutting it.
            target = (target * 2).min(chunk);
            continue;
        }
        // The rest of a line cut at the chunk is read a chunk at a time.
        target = if at_line_end { PIECE.min(chunk) } else { chunk };
        let window_end = lead + cut;
        let core_end = if eof || !at_line_end || csv {
            window_end
        } else {
            margin_end(&buf[..window_end], lead, enc)
        };
        let window = &buf[..window_end];
        let bom = if base == 0 { bom } else { 0 };
        let (out, next_layout) = match mode {
            Mode::Text => (discovery.scanner.scan_as(window, enc, bom), None),
            Mode::Csv(delim) => {
                let (out, l) = discovery
                    .scanner
                    .scan_csv_chunk(window, enc, bom, delim, layout.take());
                (out, Some(l))
            }
        };
        if base == 0 && report.encoding.is_none() {
            report.encoding = Some(out.encoding);
        }
        report.decode_errors |= out.decode_errors;
        for mut f in out.findings {
            // The margins' findings are another window's.
            if !(lead..core_end).contains(&f.locator.byte_offset) {
                continue;
            }
            rebase(&mut f, base, lines_before, column_carry);
            if let Some(rec) = f.locator.record.as_mut()
                && let Some(h) = rec.header.take()
            {
                rec.header = clean_header(ctx, &mut header_ok, h);
            }
            report.list(ctx, f, &mut listed);
        }
        layout = next_layout;
        if !at_line_end {
            report.degrade(
                Status::Partial,
                format!(
                    "a line is longer than the {} MiB chunk: values across the cut are missed",
                    chunk >> 20
                ),
            );
        }
        // The next window starts with whole lines before `core_end` as context.
        let next = if at_line_end && !csv {
            margin_start(&buf[..core_end], enc)
        } else {
            core_end
        };
        let passed = &buf[..next];
        let newlines = count_newlines(passed, enc);
        lines_before += newlines;
        let carried = if newlines == 0 { column_carry } else { 0 };
        column_carry = carried + count_chars(&passed[last_newline_end(passed, enc)..], enc);
        base += next as u64;
        lead = core_end - next;
        buf.drain(..next);
        if eof && buf.len() <= lead {
            break;
        }
    }
    report
}

/// Where the findings of a window that ends at a line end stop: at the last
/// line start with at least `MARGIN_AHEAD` bytes of whole lines after it (and
/// at most `MARGIN_MAX`) and after `lead`; at the window's end if there is
/// none.
fn margin_end(window: &[u8], lead: usize, enc: TextEncoding) -> usize {
    let end = window.len();
    let Some(want) = end.checked_sub(MARGIN_AHEAD) else {
        return end;
    };
    match line_start_at_or_before(window, want, enc) {
        e if e > lead && end - e <= MARGIN_MAX => e,
        _ => end,
    }
}

/// Where the window after `reported` (which ends at a line end) starts: at
/// the last line start at least `MARGIN_BEHIND` bytes before its end, or,
/// when that is more than `MARGIN_MAX` back, the first line start after
/// that (the end itself at worst).
fn margin_start(reported: &[u8], enc: TextEncoding) -> usize {
    let end = reported.len();
    let want = end.saturating_sub(MARGIN_BEHIND);
    match line_start_at_or_before(reported, want, enc) {
        s if s + MARGIN_MAX >= end => s,
        _ => line_start_after(reported, want, enc).unwrap_or(end),
    }
}

/// The last line start at or before `at`: the position after a line end,
/// or 0 (where the buffer, and the window it held, starts).
fn line_start_at_or_before(bytes: &[u8], at: usize, enc: TextEncoding) -> usize {
    let at = if is_utf16(enc).is_some() { at & !1 } else { at };
    last_newline_end(&bytes[..at.min(bytes.len())], enc)
}

/// The first line start after `after`.
fn line_start_after(bytes: &[u8], after: usize, enc: TextEncoding) -> Option<usize> {
    let from = after.min(bytes.len());
    match is_utf16(enc) {
        Some(le) => {
            let from = from & !1;
            bytes[from..]
                .chunks_exact(2)
                .position(|u| is_newline_unit(u, le))
                .map(|k| from + k * 2 + 2)
        }
        None => memchr::memchr(b'\n', &bytes[from..]).map(|i| from + i + 1),
    }
}

/// Smallest buffer. Most files are a few KB: the buffer is zeroed before
/// reading and wiped when dropped, so a larger first buffer cost more than
/// the scan of such a file. Larger inputs double it up to the chunk.
const FIRST_BUFFER: usize = 4 << 10;

/// Reads into `buf` until it holds `chunk` bytes or the reader ends. The
/// buffer grows by doubling into a fresh allocation, so no copy of the
/// content is ever freed without being wiped; each allocation is zeroed once
/// (the reader needs initialised bytes), not before every read.
pub(crate) fn fill(
    buf: &mut Zeroizing<Vec<u8>>,
    reader: &mut dyn Read,
    chunk: usize,
    eof: &mut bool,
    counted: &mut dyn FnMut(usize),
) -> std::io::Result<()> {
    // While reading, the vector's length is its capacity (zeros past `filled`).
    let mut filled = buf.len();
    let result = loop {
        if filled >= chunk {
            break Ok(());
        }
        if filled == buf.capacity() {
            let cap = (buf.capacity() * 2).clamp(FIRST_BUFFER.min(chunk), chunk);
            let mut bigger = Zeroizing::new(Vec::with_capacity(cap));
            bigger.extend_from_slice(&buf[..filled]);
            *buf = bigger;
        }
        let room = buf.capacity().min(chunk);
        if buf.len() < room {
            buf.resize(room, 0);
        }
        match reader.read(&mut buf[filled..room]) {
            Ok(0) => {
                *eof = true;
                break Ok(());
            }
            Ok(n) => {
                filled += n;
                counted(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.truncate(filled);
    result
}

/// Text in a known encoding read as UTF-8, for readers that take UTF-8 (the
/// SQL reader, for a pg_dump archive's data in its database's encoding).
/// Decoded a piece at a time by the scanner's own decoding
/// ([`DecodedText::decode_as`]), each piece cut as text objects are chunked:
/// at a line end, or in a longer line at a byte no multi-byte character
/// holds. Both copies are wiped.
pub(crate) struct Utf8Reader<'r> {
    inner: &'r mut dyn Read,
    encoding: TextEncoding,
    chunk: usize,
    raw: Zeroizing<Vec<u8>>,
    eof: bool,
    /// Why reading `inner` failed, returned once the bytes before it are read.
    failed: Option<std::io::Error>,
    text: Zeroizing<String>,
    /// Bytes of `text` already read.
    at: usize,
    decode_errors: bool,
}

impl<'r> Utf8Reader<'r> {
    pub(crate) fn new(ctx: &Ctx<'_>, inner: &'r mut dyn Read, encoding: TextEncoding) -> Self {
        Self {
            inner,
            encoding,
            chunk: ctx.discovery.limits.chunk,
            raw: Zeroizing::new(Vec::new()),
            eof: false,
            failed: None,
            text: Zeroizing::new(String::new()),
            at: 0,
            decode_errors: false,
        }
    }

    /// Whether bytes that do not decode were replaced (U+FFFD).
    pub(crate) fn decode_errors(&self) -> bool {
        self.decode_errors
    }
}

impl Read for Utf8Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.text.len() {
            if !self.eof
                && let Err(e) = fill(&mut self.raw, self.inner, self.chunk, &mut self.eof, &mut |_| {})
            {
                self.eof = true;
                self.failed = Some(e);
            }
            if self.raw.is_empty() {
                return self.failed.take().map_or(Ok(0), Err);
            }
            let cut = if self.eof {
                self.raw.len()
            } else {
                cut_point(&self.raw, self.encoding, Mode::Text).0
            };
            {
                let decoded = DecodedText::decode_as(&self.raw[..cut], self.encoding, 0);
                self.decode_errors |= decoded.had_errors();
                // The old text is wiped as it is dropped.
                self.text = Zeroizing::new(decoded.text().to_owned());
            }
            self.at = 0;
            self.raw.drain(..cut);
        }
        let n = buf.len().min(self.text.len() - self.at);
        buf[..n].copy_from_slice(&self.text.as_bytes()[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn rebase(f: &mut Finding, base: u64, lines_before: usize, column_carry: usize) {
    let loc = &mut f.locator;
    if loc.line == 1 {
        loc.column += column_carry;
    }
    loc.line += lines_before;
    loc.byte_offset += usize::try_from(base).unwrap_or(usize::MAX);
}

fn clean_header(ctx: &Ctx<'_>, cache: &mut Vec<(String, bool)>, header: String) -> Option<String> {
    if let Some((_, ok)) = cache.iter().find(|(h, _)| *h == header) {
        return ok.then_some(header);
    }
    let ok = ctx.discovery.header_is_clean(&header);
    if cache.len() < 256 {
        cache.push((header.clone(), ok));
    }
    ok.then_some(header)
}

/// Detects the encoding on the first chunk, ignoring a character cut at its end.
fn detect_first(buf: &[u8], eof: bool) -> (TextEncoding, usize) {
    if !eof
        && let Err(e) = simdutf8::compat::from_utf8(buf)
        && e.error_len().is_none()
        && e.valid_up_to() > 0
    {
        // Valid UTF-8 up to a character the chunk end cut in two.
        return detect_encoding(&buf[..e.valid_up_to()]);
    }
    let (enc, bom) = detect_encoding(buf);
    if eof
        || !matches!(
            enc,
            TextEncoding::Binary | TextEncoding::ShiftJis | TextEncoding::EucJp
        )
    {
        return (enc, bom);
    }
    // A legacy multi-byte character cut at the end: look again without the
    // unfinished last line.
    match memchr::memrchr(b'\n', buf) {
        Some(i) if i > 0 => detect_encoding(&buf[..=i]),
        _ => (enc, bom),
    }
}

fn is_utf16(enc: TextEncoding) -> Option<bool> {
    match enc {
        TextEncoding::Utf16Le => Some(true),
        TextEncoding::Utf16Be => Some(false),
        _ => None,
    }
}

/// Where to end this chunk, and whether that is a line end.
fn cut_point(buf: &[u8], enc: TextEncoding, mode: Mode) -> (usize, bool) {
    let csv = matches!(mode, Mode::Csv(_));
    if let Some(le) = is_utf16(enc) {
        let unit = |i: usize| -> u16 {
            let (a, b) = (buf[i], buf[i + 1]);
            if le {
                u16::from_le_bytes([a, b])
            } else {
                u16::from_be_bytes([a, b])
            }
        };
        let mut quotes_even = true;
        let mut best = None;
        let mut i = 0;
        while i + 1 < buf.len() {
            match unit(i) {
                0x22 if csv => quotes_even = !quotes_even,
                0x0A if quotes_even => best = Some(i + 2),
                _ => {}
            }
            i += 2;
        }
        return match best {
            Some(c) => (c, true),
            None => ((buf.len() & !1).max(2).min(buf.len()), false),
        };
    }
    if csv {
        let mut quotes_even = true;
        let mut best = None;
        for i in memchr::memchr2_iter(b'"', b'\n', buf) {
            if buf[i] == b'"' {
                quotes_even = !quotes_even;
            } else if quotes_even {
                best = Some(i + 1);
            }
        }
        if let Some(c) = best {
            return (c, true);
        }
    } else if let Some(i) = memchr::memrchr(b'\n', buf) {
        return (i + 1, true);
    }
    // No usable line end in a whole chunk: cut at a character boundary.
    let cut = match enc {
        TextEncoding::Utf8 | TextEncoding::Binary => buf
            .iter()
            .rposition(|&b| !(0x80..0xC0).contains(&b))
            .filter(|&i| i > 0),
        _ => buf
            .iter()
            .rposition(|&b| b < 0x21 && b != 0x1B)
            .map(|i| i + 1)
            .filter(|&i| i < buf.len()),
    };
    (cut.unwrap_or(buf.len()), false)
}

/// Whether a UTF-16 code unit (its two bytes, little-endian if `le`) is a line feed.
fn is_newline_unit(unit: &[u8], le: bool) -> bool {
    unit == if le { b"\n\0" } else { b"\0\n" }
}

fn count_newlines(piece: &[u8], enc: TextEncoding) -> usize {
    match is_utf16(enc) {
        Some(le) => piece.chunks_exact(2).filter(|u| is_newline_unit(u, le)).count(),
        None => memchr::memchr_iter(b'\n', piece).count(),
    }
}

fn last_newline_end(piece: &[u8], enc: TextEncoding) -> usize {
    match is_utf16(enc) {
        Some(le) => piece
            .chunks_exact(2)
            .rposition(|u| is_newline_unit(u, le))
            .map_or(0, |k| k * 2 + 2),
        None => memchr::memrchr(b'\n', piece).map_or(0, |i| i + 1),
    }
}

/// Characters in a piece of a line (exact for UTF-8 and UTF-16; one per
/// byte for the legacy encodings, an upper bound).
fn count_chars(bytes: &[u8], enc: TextEncoding) -> usize {
    match enc {
        TextEncoding::Utf8 | TextEncoding::Binary => {
            bytes.iter().filter(|&&b| !(0x80..0xC0).contains(&b)).count()
        }
        TextEncoding::Utf16Le => bytes
            .chunks_exact(2)
            .filter(|u| !(0xDC00..0xE000).contains(&u16::from_le_bytes([u[0], u[1]])))
            .count(),
        TextEncoding::Utf16Be => bytes
            .chunks_exact(2)
            .filter(|u| !(0xDC00..0xE000).contains(&u16::from_be_bytes([u[0], u[1]])))
            .count(),
        _ => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Text read through [`Utf8Reader`] is the text, however its
        /// pieces fall (several chunks of the smallest size), as long as no
        /// run without a line end, tab or space is longer than a chunk.
        #[test]
        fn utf8_reader_decodes_whatever_the_chunk(
            words in proptest::collection::vec(("[a-z0-9あ-んア-ン漢字表ソ]{0,8}", "[ \t\n]"), 0..1500),
        ) {
            let text: String = words.iter().flat_map(|(w, gap)| [w.as_str(), gap.as_str()]).collect();
            let d = crate::tests::discovery(crate::Limits::default().chunk(4096));
            let ctx = Ctx::new(&d);
            for (encoding, read_as) in [
                (encoding_rs::EUC_JP, TextEncoding::EucJp),
                (encoding_rs::SHIFT_JIS, TextEncoding::ShiftJis),
            ] {
                let bytes = encoding.encode(&text).0;
                let mut reader: &[u8] = &bytes;
                let mut utf8 = Utf8Reader::new(&ctx, &mut reader, read_as);
                let mut out = String::new();
                utf8.read_to_string(&mut out).expect("read");
                prop_assert_eq!(&out, &text);
                prop_assert!(!utf8.decode_errors());
            }
        }
    }

    #[test]
    fn modes_follow_the_extension() {
        assert_eq!(mode_for("a/b/orders.CSV"), Mode::Csv(None));
        assert_eq!(mode_for("x.zip!dir/list.tsv"), Mode::Csv(Some(b'\t')));
        assert_eq!(mode_for("notes.txt"), Mode::Text);
        assert_eq!(mode_for("csv"), Mode::Text);
    }

    #[test]
    fn cuts_at_line_ends_outside_quotes() {
        let buf = b"a,\"x\ny\"\nb,c\nunfinished";
        assert_eq!(cut_point(buf, TextEncoding::Utf8, Mode::Csv(None)), (12, true));
        assert_eq!(cut_point(buf, TextEncoding::Utf8, Mode::Text), (12, true));
        let open_quote = b"a,\"x\nb\nc";
        assert_eq!(cut_point(open_quote, TextEncoding::Utf8, Mode::Text), (7, true));
        assert!(
            !cut_point(open_quote, TextEncoding::Utf8, Mode::Csv(None)).1,
            "no line end outside quotes"
        );
    }

    #[test]
    fn cuts_utf16_on_units() {
        let le: Vec<u8> = "ab\ncd".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(cut_point(&le, TextEncoding::Utf16Le, Mode::Text), (6, true));
        assert_eq!(count_newlines(&le, TextEncoding::Utf16Le), 1);
        let be: Vec<u8> = "ab\ncd".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(cut_point(&be, TextEncoding::Utf16Be, Mode::Text), (6, true));
        assert_eq!(last_newline_end(&be, TextEncoding::Utf16Be), 6);
    }

    #[test]
    fn long_lines_cut_at_character_boundaries() {
        let s = "ああああ".as_bytes();
        let (cut, line_end) = cut_point(s, TextEncoding::Utf8, Mode::Text);
        assert!(!line_end);
        assert!(std::str::from_utf8(&s[..cut]).is_ok());
        assert_eq!(count_chars(&s[..cut], TextEncoding::Utf8), cut / 3);
    }
}
