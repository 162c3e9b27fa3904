//! anshin's personal-data detectors: find card numbers and Japanese personal
//! data in untrusted bytes, and report *where* they are without ever
//! reporting *what* they are.
//!
//! This crate is the pure core of `anshin scan` (issue 6). It does no I/O:
//! callers hand it byte buffers (file contents, archive members, database
//! cells) and get back [`Finding`]s.
//!
//! # Pipeline
//!
//! 1. **Decode** ([`decode`]): the encoding is detected per buffer (BOM,
//!    ISO-2022-JP escapes, UTF-8 validity, UTF-16 NUL pattern, then Shift_JIS
//!    vs EUC-JP by which decodes cleanly and whose kana pairs are more common).
//!    UTF-8 is borrowed, not copied. Other encodings are decoded with
//!    `encoding_rs` in segments cut at bytes no multi-byte sequence contains,
//!    which makes the segment table an exact map back to original offsets.
//! 2. **Skip** ([`scan`](Scanner::scan)): the interesting bytes of each
//!    64-byte block (ASCII digits, `:`, `@` and 0xEF, the lead byte of
//!    full-width digits and the full-width colon) are found as a bit set by
//!    vectorised code without `unsafe`, and the scan stops only at them. On
//!    ordinary text most bytes never get further than this. A digit run that
//!    is one short ASCII group no detector accepts alone (a count, a price,
//!    a time of day) is passed over without being read.
//! 3. **Tokenize** ([`digits`]): at a digit, a run of digit groups is read
//!    with full-width digits folded to ASCII and single spaces/hyphens (and
//!    their look-alikes) as group separators. Every window of up to five
//!    whole groups is a candidate, so `4111 1111 1111 1111`, `3782 822463
//!    10005`, `3782 8224 6310 005` and `090-1234-5678` are all one window,
//!    and a 12-digit window inside a longer number of the same grouping is
//!    never a candidate (the Presidio My Number false positive).
//! 4. **Validate** ([`validate`]): brand table + length + Luhn, the My Number
//!    and corporate-number check digits, the Japanese numbering plan, e-mail
//!    syntax, month ranges.
//! 5. **Context** (`context`): an Aho-Corasick automaton of labels (カード番号,
//!    セキュリティコード, マイナンバー, 電話, 〒, 口座, 氏名, 注文番号, 追跡番号,
//!    JAN…) runs lazily over the ±128/32-byte window around a candidate, and
//!    never twice over the same byte. A check digit passes one random string
//!    in ten, so numeric detectors reach [`Confidence::High`] only with a
//!    label or CSV column header, and an order/tracking/barcode label right
//!    before a number suppresses it (hard negatives).
//! 6. **Report**: each finding gets a masked form, a keyed HMAC-SHA-256
//!    fingerprint ([`anshin_crypto::fingerprint::FingerprintKey`]) and a
//!    locator (original byte offset and length, line, column, CSV row/field).
//!
//! # Threat notes
//!
//! - The input is hostile. Nothing indexes past a bound, the tokenizer holds
//!   fixed-size buffers, runs are cut at 16 groups / 64 digits, context
//!   windows are bounded, and every loop advances: time is linear in the
//!   input. Property tests feed arbitrary bytes.
//! - Findings never hold a raw value: [`Finding`] has the masked form (at
//!   most first 6 + last 4 of a card, PCI DSS 3.4.1; last 4 or fewer of other
//!   numbers; bullets for names and addresses) and a *keyed* fingerprint, so
//!   a leaked report confirms no value without the tenant's key. `Debug` and
//!   `Display` of every type print only those.
//! - Matched digits are copied only into fixed buffers that are zeroized on
//!   drop ([`zeroize`]); a decoded copy of non-UTF-8 input is wiped on drop.
//!   Copies the compiler makes (registers, moves) cannot be wiped; the input
//!   buffer itself belongs to the caller.
//! - Cards use the fingerprint purpose `"pan"`, the vault's, so a discovered
//!   card can be matched to a vaulted one with the tenant's key; anyone
//!   holding that key can also test guesses against a report, so the key
//!   must stay in the vault.
//! - Not covered: numbers broken across lines, phone numbers with
//!   parentheses (`(03)1234-5678`), postal codes checked against Japan Post's
//!   list, driver's licences, names without a label or header.

mod context;
pub mod corpus;
mod csv;
pub mod decode;
pub mod digits;
mod finding;
mod scan;
pub mod validate;

use anshin_crypto::fingerprint::FingerprintKey;

pub use csv::CsvLayout;
pub use decode::{DecodedText, TextEncoding, detect_encoding};
pub use finding::{Categories, Category, Confidence, Finding, Fingerprint, Locator, RecordLocator};

/// What a scan reports and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScanOptions {
    /// Findings below this confidence are dropped. Default
    /// [`Confidence::Medium`]: `Low` means "check digit only" and is one
    /// random number in ten.
    pub min_confidence: Confidence,
    /// Report well-known public test card numbers (marked `test_value`).
    pub include_test_values: bool,
    /// The categories reported (default all). The detectors of the others
    /// do not run: a scan for cards alone does not look for labels or e-mail.
    /// A value is still judged against every detector, so a card number is
    /// never reported as a phone number because cards are not asked for.
    pub categories: Categories,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            min_confidence: Confidence::Medium,
            include_test_values: true,
            categories: Categories::ALL,
        }
    }
}

impl ScanOptions {
    /// Sets [`ScanOptions::min_confidence`].
    pub fn min_confidence(mut self, confidence: Confidence) -> Self {
        self.min_confidence = confidence;
        self
    }

    /// Sets [`ScanOptions::include_test_values`].
    pub fn include_test_values(mut self, include: bool) -> Self {
        self.include_test_values = include;
        self
    }

    /// Sets [`ScanOptions::categories`].
    pub fn categories(mut self, categories: Categories) -> Self {
        self.categories = categories;
        self
    }
}

/// The result of scanning one buffer.
#[derive(Debug, Clone)]
pub struct ScanOutput {
    /// The detected encoding.
    pub encoding: TextEncoding,
    /// Malformed bytes were replaced while decoding (a `partial` hint).
    pub decode_errors: bool,
    /// Findings in input order.
    pub findings: Vec<Finding>,
}

/// The detectors, with the tenant's fingerprint key. Build once and share:
/// scanning takes `&self`, so one scanner serves many threads.
#[derive(Debug)]
pub struct Scanner {
    key: FingerprintKey,
    keywords: &'static context::Keywords,
    options: ScanOptions,
}

/// The keyword automaton, built once per process: it is the same for every
/// scanner, and each build (a DFA of a few hundred KiB) cost about 2.5 ms of
/// CPU, a fifth of what `anshin scan` spends on a one-line file; the scan's
/// scanner and the CSV header check's each built one.
static KEYWORDS: std::sync::LazyLock<context::Keywords> = std::sync::LazyLock::new(context::Keywords::new);

impl Scanner {
    /// A scanner with default options.
    pub fn new(key: FingerprintKey) -> Self {
        Self::with_options(key, ScanOptions::default())
    }

    /// A scanner with the given options.
    pub fn with_options(key: FingerprintKey, options: ScanOptions) -> Self {
        Self {
            key,
            keywords: &KEYWORDS,
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// The fingerprint a finding of `category` with the normalised `value`
    /// would carry: ASCII digits for numbers (a phone in national form with
    /// its leading 0; expiry as MMYY), the lower-cased address for e-mail,
    /// the trimmed text for names and addresses, letters and digits for
    /// passport and residence card numbers. For allow-lists and ground truth.
    pub fn fingerprint(&self, category: Category, value: &[u8]) -> Fingerprint {
        Fingerprint(self.key.fingerprint(category.fingerprint_purpose(), value))
    }

    /// Scans a buffer as text in whatever encoding it is in.
    pub fn scan(&self, input: &[u8]) -> ScanOutput {
        self.scan_decoded(&DecodedText::decode(input))
    }

    /// Scans a buffer in a known encoding, skipping `bom` leading bytes: the
    /// second and later pieces of a file read in chunks, whose encoding was
    /// detected on the first ([`detect_encoding`]).
    pub fn scan_as(&self, input: &[u8], encoding: TextEncoding, bom: usize) -> ScanOutput {
        self.scan_decoded(&DecodedText::decode_as(input, encoding, bom))
    }

    fn scan_decoded(&self, decoded: &DecodedText<'_>) -> ScanOutput {
        let mut engine = scan::Engine::new(self, decoded.text());
        engine.scan_region(scan::Region {
            start: 0,
            end: decoded.text().len(),
            column: 0,
        });
        let findings = resolve(decoded, engine.out, &[]);
        ScanOutput {
            encoding: decoded.encoding(),
            decode_errors: decoded.had_errors(),
            findings,
        }
    }

    /// Scans a buffer as CSV/TSV. `delimiter` `None` picks the most frequent
    /// of `,` `\t` `;` `|` in the first line. When the first row holds a
    /// recognised header (氏名, 電話番号, email, カード番号…), each column's
    /// header is the context of its cells and name/address columns report
    /// every non-empty cell.
    pub fn scan_csv(&self, input: &[u8], delimiter: Option<u8>) -> ScanOutput {
        let decoded = DecodedText::decode(input);
        self.scan_csv_decoded(&decoded, delimiter, None).0
    }

    /// Scans one piece of a CSV/TSV file read in chunks, each piece ending at
    /// a record boundary. Pass `layout` `None` with the first piece (its first
    /// row decides delimiter and header) and the returned layout with each
    /// following one: headers keep applying and row numbers go on.
    pub fn scan_csv_chunk(
        &self,
        input: &[u8],
        encoding: TextEncoding,
        bom: usize,
        delimiter: Option<u8>,
        layout: Option<CsvLayout>,
    ) -> (ScanOutput, CsvLayout) {
        let decoded = DecodedText::decode_as(input, encoding, bom);
        self.scan_csv_decoded(&decoded, delimiter, layout)
    }

    fn scan_csv_decoded(
        &self,
        decoded: &DecodedText<'_>,
        delimiter: Option<u8>,
        layout: Option<CsvLayout>,
    ) -> (ScanOutput, CsvLayout) {
        let mut engine = scan::Engine::new(self, decoded.text());
        let layout = csv::scan(&mut engine, decoded.text(), delimiter, layout);
        let findings = resolve(decoded, engine.out, layout.headers());
        let out = ScanOutput {
            encoding: decoded.encoding(),
            decode_errors: decoded.had_errors(),
            findings,
        };
        (out, layout)
    }

    /// What a column header says about the column's cells (its keyword
    /// classes: カード番号, 氏名, email…), computed once per column and passed
    /// to [`Scanner::scan_cell`] with each of its cells.
    pub fn column(&self, header: &str) -> ColumnContext {
        ColumnContext(self.keywords.classify_header(header))
    }

    /// Scans one cell of a table (a database value) exactly as a cell of a
    /// CSV column with that header is scanned: the header is a label right
    /// before the cell, and name and address columns report every non-empty
    /// cell. Each finding's record locator gets `row`, `field` and `header`;
    /// byte offset, line and column are inside the cell.
    pub fn scan_cell(
        &self,
        cell: &str,
        column: ColumnContext,
        row: usize,
        field: usize,
        header: Option<&str>,
    ) -> Vec<Finding> {
        // A &str is UTF-8 whatever escape bytes it holds: no detection.
        let decoded = DecodedText::decode_as(cell.as_bytes(), TextEncoding::Utf8, 0);
        let mut engine = scan::Engine::new(self, decoded.text());
        csv::scan_cell(&mut engine, 0, decoded.text().len(), column.0);
        for c in &mut engine.out {
            c.record = Some((row, field));
        }
        let mut findings = resolve(&decoded, engine.out, &[]);
        for f in &mut findings {
            if let Some(record) = &mut f.locator.record {
                record.header = header.map(str::to_owned);
            }
        }
        findings
    }

    /// Scans text that is already UTF-8. Offsets are offsets into `text`.
    pub fn scan_str(&self, text: &str) -> Vec<Finding> {
        self.scan(text.as_bytes()).findings
    }
}

/// The keyword classes of a column header ([`Scanner::column`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnContext(u32);

impl ColumnContext {
    /// Whether the header names a kind of personal data (the column's cells
    /// get the header as their label).
    pub fn is_labelled(self) -> bool {
        self.0 != 0
    }
}

/// Sorts candidates and turns decoded offsets into locators.
fn resolve(decoded: &DecodedText<'_>, mut out: Vec<scan::Candidate>, headers: &[String]) -> Vec<Finding> {
    out.sort_by_key(|c| (c.start, c.end));
    let mut mapper = decoded.offset_mapper();
    let mut lines = decode::LineCounter::new(decoded.text());
    let mut findings = Vec::with_capacity(out.len());
    for c in out {
        let (line, column) = lines.locate(c.start);
        let byte_offset = mapper.map(c.start);
        let byte_end = mapper.map(c.end);
        let record = c.record.map(|(row, field)| RecordLocator {
            row,
            field,
            header: field.checked_sub(1).and_then(|i| headers.get(i)).cloned(),
            key: None,
            table: None,
        });
        findings.push(Finding {
            category: c.category,
            confidence: c.confidence,
            kind: c.kind,
            test_value: c.test_value,
            masked: c.masked,
            fingerprint: Fingerprint(c.fingerprint),
            locator: Locator {
                byte_offset,
                byte_len: byte_end.saturating_sub(byte_offset),
                line,
                column,
                record,
                page: None,
            },
        });
    }
    findings
}

#[cfg(test)]
mod tests;
