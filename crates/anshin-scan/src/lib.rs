//! anshin's personal-data discovery (`anshin scan`, issue 6): everything
//! between "a path on the command line" and "a list of masked findings with
//! precise locators".
//!
//! The detectors themselves are in [`anshin_detect`]; this crate feeds them:
//!
//! - **Inputs** ([`Discovery::scan_inputs`]): files, directories (a parallel
//!   walk with the `ignore` crate, hidden and git-ignored files included,
//!   symbolic links never followed, include/exclude globs) and standard input.
//! - **Containers** (`container`, `codec`): zip, tar, and gzip, bzip2, xz,
//!   zstd and lz4 streams (tar.gz, tar.zst, app.log.xz), recursively,
//!   sniffed by their magic bytes rather than their names, with inner paths
//!   such as `orders.zip!2024/orders.csv`. Limits on nesting depth, expansion
//!   ratio, expanded bytes per input and members per archive stop zip
//!   bombs (a nested zip over 32 MiB goes through an unnamed temporary file
//!   rather than memory); an object that hits one is
//!   reported `partial` or `skipped` with the reason, never a crash. A
//!   per-file time limit (`Limits::file_timeout`, checked between reads,
//!   chunks, members and XML events) ends a slow input `partial` with the
//!   reason `time_limit` and the scan goes on with the next.
//! - **Office documents** (`office`): inside a zip that is a Word or Excel
//!   file, the document text (docx) and the worksheet cells (xlsx, with the
//!   sheet's row, column and header; each worksheet streamed from its XML a
//!   row at a time, other parts read whole) are scanned instead of the raw XML;
//!   so are PowerPoint slides and notes (pptx, findings carry the slide);
//!   likewise OpenDocument files (odt, ods: `content.xml`, text and tables).
//! - **PDF** (`pdf`): the text of each page, read with lopdf, findings
//!   located by page; corrupt, encrypted or hostile files are `skipped` with
//!   the reason (a panic in the reader is caught), never a crash. Files
//!   attached to a PDF are objects of their own (`invoice.pdf!orders.csv`).
//! - **SQL dumps** (`sql`): `pg_dump` INSERT and COPY blocks, `mysqldump`
//!   extended INSERTs, `INSERT … SELECT` of literals, streamed statement by
//!   statement; each value is a cell
//!   of its table under its column's name, which works as a CSV header does.
//! - **pg_dump archives** (`pgdump`): `pg_dump -Fc` custom-format files,
//!   sniffed by `PGDMP`: header and table of contents parsed, each table's
//!   data blocks inflated (zlib, or stored with `-Z0`), decoded from the
//!   database's encoding and read as the COPY block of a SQL dump; large
//!   objects scanned as objects of their own. Tar- and directory-format
//!   dumps (`-Ft`, `-Fd`): each data file (`3344.dat`, `3344.dat.gz`) is
//!   read likewise with the table of contents of the `toc.dat` of its
//!   folder in the tar (data files before it held until it comes) or beside
//!   it on disk.
//! - **E-mail** (`mail`): `.eml` and `.mbox` files are MIME-decoded and each
//!   body or attachment is scanned as an object (`inbox.mbox!3!orders.csv`).
//! - **Pieces** (`text`): every text object is read and scanned 256 KiB at a
//!   time, so that a piece stays in the cache while it is validated, scanned
//!   and counted, cut at line ends (at record ends for CSV; a line may grow a
//!   piece up to [`Limits::chunk`], 8 MiB by default), so memory stays
//!   bounded whatever the input size. Plain text is scanned with whole lines
//!   around each piece as context: where pieces fall changes no finding.
//!   The encoding (UTF-8, UTF-16, Shift_JIS, EUC-JP, ISO-2022-JP) is
//!   detected on the first piece and kept for the rest; CSV/TSV files keep
//!   their header from piece to piece. Locators are rebased: byte offset in
//!   the object, line, column, CSV row and header.
//! - **Tables** ([`Discovery::table`]): rows of a database table, read by
//!   the caller (this crate does no network I/O), each cell scanned with
//!   its column name as header exactly as a CSV cell is; findings carry the
//!   row number, the column and the row's primary key, masked where it holds
//!   personal data.
//! - **Reports** ([`report`]): a human summary (worst first), JSON Lines, CSV
//!   and SARIF 2.1.0, written as objects finish.
//!
//! # Threat notes
//!
//! - Inputs are hostile: archives may be bombs, names may be anything, files
//!   may vanish or fail mid-read. Every limit turns into a status with a
//!   reason; no input can make the scan panic or loop. Memory: everything
//!   large one input holds at once, all its archive levels together
//!   (decoder dictionaries and windows as their headers ask, nested zips,
//!   held tar members, document parts read whole and the text extracted
//!   from them, PDFs and their objects, mail messages, listed findings), is
//!   reserved from [`Limits::max_memory`] first, and what does not fit takes
//!   its fallback or is reported; beside it, a thread holds the text pieces
//!   (up to [`Limits::chunk`]) and a few MiB of fixed buffers. Not counted:
//!   the zip reader's central directory (proportional to the archive's own
//!   size), lopdf's objects beyond twice the PDF's size, and, for the whole
//!   scan, the directory-format pg_dump tables of contents kept for their
//!   data files (at most `Limits::max_in_memory` together).
//! - No raw value leaves this crate: [`anshin_detect::Finding`] holds only a
//!   masked form and a keyed fingerprint. Chunk buffers are zeroized when
//!   dropped. CSV column headers are printed only when the header itself
//!   holds nothing the detectors would report (a file whose first row is data
//!   must not leak that row as "headers"). Buffers inside the decoders
//!   (`flate2`, `zip`, bzip2's, liblzma's dictionary, libzstd's window,
//!   lz4_flex's) and copies the kernel makes cannot be wiped.
//! - Path names (including names inside archives) are printed as they are:
//!   they are locators. A file *named* after a card number would be shown.

mod codec;
mod container;
pub mod inventory;
pub mod key;
mod mail;
mod office;
mod pdf;
mod pgdump;
pub mod report;
mod sql;
mod table;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
mod text;
mod walk;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use anshin_detect::{
    Categories, Category, Confidence, Finding, Fingerprint, Locator, RecordLocator, Scanner,
};
pub use anshin_detect::{ScanOptions, TextEncoding};
pub use table::{TableColumn, TableScan, table_path};
pub use walk::{Input, WalkOptions};

/// Limits that keep hostile inputs (zip bombs, huge lines) bounded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Containers nested deeper than this are skipped (a zip in a zip is depth 2).
    pub max_depth: u32,
    /// Largest expansion ratio of a compressed stream or member (expanded ÷ compressed).
    pub max_ratio: u64,
    /// Most bytes expanded from one top-level input, all its archive members together.
    pub max_expanded: u64,
    /// Most members read from one archive.
    pub max_members: u64,
    /// Largest nested zip held in memory (a zip needs random access); larger
    /// ones are copied to an unnamed temporary file. Also the most bytes of
    /// pg_dump data files held in memory, all together, until the `toc.dat`
    /// that follows them in a tar comes; others are read as text.
    pub max_in_memory: u64,
    /// Most memory one input (a file, standard input) holds at once, all its
    /// archive levels together: decoder dictionaries and windows, nested
    /// zips and held tar members (each also within `max_in_memory`),
    /// document parts read whole and the text extracted from them, and the
    /// findings listed for the object being read. What does not fit takes
    /// its reader's fallback (a temporary file, reading as text) or ends
    /// `partial` or `skipped` with the reason. With the text pieces (up to
    /// `chunk`), a thread scanning one input holds at most about this plus
    /// `chunk` and a few MiB of fixed buffers.
    pub max_memory: u64,
    /// The longest line read whole: text is scanned in pieces of 256 KiB cut
    /// at line ends, a longer line growing a piece up to this size; a line
    /// longer still is cut, and the object is `partial`.
    pub chunk: usize,
    /// Longest time spent on one input (a file, standard input), all its
    /// archive members and document parts together; `None` for no limit.
    /// Checked between reads, chunks, members and XML events, so a slow or
    /// pathological input ends `partial` (reason `time_limit`) rather than
    /// holding a worker forever.
    pub file_timeout: Option<Duration>,
    /// Most findings listed for one object. Past it the object is `partial`
    /// and further findings are dropped, so one endless stream (standard
    /// input, a huge log) cannot grow memory without bound: listed findings
    /// take about 250 bytes each.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_ratio: 100,
            max_expanded: 16 << 30,
            max_members: 100_000,
            max_in_memory: 32 << 20,
            // `xz -9` (a 64 MiB dictionary) fits with room to spare; two
            // threads with the pieces stay under 200 MB.
            max_memory: 72 << 20,
            chunk: 8 << 20,
            file_timeout: Some(Duration::from_secs(60)),
            max_findings: 200_000,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_depth`].
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets [`Limits::max_ratio`].
    pub fn max_ratio(mut self, ratio: u64) -> Self {
        self.max_ratio = ratio.max(1);
        self
    }

    /// Sets [`Limits::max_expanded`].
    pub fn max_expanded(mut self, bytes: u64) -> Self {
        self.max_expanded = bytes;
        self
    }

    /// Sets [`Limits::max_members`].
    pub fn max_members(mut self, members: u64) -> Self {
        self.max_members = members;
        self
    }

    /// Sets [`Limits::max_memory`].
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Sets [`Limits::max_in_memory`].
    pub fn max_in_memory(mut self, bytes: u64) -> Self {
        self.max_in_memory = bytes;
        self
    }

    /// Sets [`Limits::chunk`] (at least 4 KiB).
    pub fn chunk(mut self, bytes: usize) -> Self {
        self.chunk = bytes.max(4096);
        self
    }

    /// Sets [`Limits::file_timeout`].
    pub fn file_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.file_timeout = timeout;
        self
    }

    /// Sets [`Limits::max_findings`] (at least 1).
    pub fn max_findings(mut self, findings: usize) -> Self {
        self.max_findings = findings.max(1);
        self
    }
}

/// When reading one input must stop: the per-file time limit, measured from
/// the moment the input is opened. Copied into everything read from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Option<Instant>,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now, or none.
    pub(crate) fn after(limit: Option<Duration>) -> Self {
        Self {
            at: limit.and_then(|l| clock::now().checked_add(l)),
            limit: limit.unwrap_or_default(),
        }
    }

    /// No deadline (pure parsers called outside a scan, tests).
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self::after(None)
    }

    /// The time is up. Once true it stays true (the clock is monotonic).
    pub(crate) fn passed(&self) -> bool {
        self.at.is_some_and(|at| clock::now() >= at)
    }

    /// The reason reported for an object cut short by the limit.
    pub(crate) fn reason(&self) -> String {
        format!(
            "{TIME_LIMIT}: reading stopped after the per-file limit of {} s",
            self.limit.as_secs_f64()
        )
    }
}

/// The reason code of an object cut short by [`Limits::file_timeout`].
pub const TIME_LIMIT: &str = "time_limit";

/// The clock the per-file time limit is read from. Tests move it forward
/// (per thread) so that the limit is tested without sleeping or racing.
pub(crate) mod clock {
    use std::time::Instant;

    #[cfg(not(test))]
    pub(crate) fn now() -> Instant {
        Instant::now()
    }

    #[cfg(test)]
    thread_local! {
        static SKEW: std::cell::Cell<std::time::Duration> = const { std::cell::Cell::new(std::time::Duration::ZERO) };
    }

    #[cfg(test)]
    pub(crate) fn now() -> Instant {
        Instant::now() + SKEW.with(std::cell::Cell::get)
    }

    /// Moves this thread's clock forward.
    #[cfg(test)]
    pub(crate) fn advance(by: std::time::Duration) {
        SKEW.with(|s| s.set(s.get() + by));
    }
}

/// How much of an object was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Every byte was scanned.
    Complete,
    /// Some of it was scanned; the reason says why not all.
    Partial,
    /// Nothing was scanned; the reason says why.
    Skipped,
}

impl Status {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an object was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// Text (or binary read as text).
    Text,
    /// CSV or TSV, column-aware.
    Csv,
    /// A zip archive (its members are objects of their own).
    Zip,
    /// A tar archive.
    Tar,
    /// A gzip stream (its content is an object of its own, or a tar).
    Gzip,
    /// A bzip2 stream, likewise.
    Bzip2,
    /// An xz stream, likewise.
    Xz,
    /// A zstd stream, likewise.
    Zstd,
    /// An lz4 stream (frame format), likewise.
    Lz4,
    /// The text of a Word document part (`x.docx!word/document.xml`): a line
    /// per paragraph; byte offsets refer to the extracted text.
    Docx,
    /// An Excel worksheet (`x.xlsx!xl/worksheets/sheet1.xml`): line and
    /// column are the sheet's row and column (so is the CSV row and field);
    /// byte offsets refer to the extracted cells.
    Xlsx,
    /// The text of an OpenDocument file (`x.odt!content.xml`), outside its
    /// tables: a line per paragraph; byte offsets refer to the extracted text.
    Odf,
    /// The text of a PowerPoint slide or its notes
    /// (`x.pptx!ppt/slides/slide2.xml`): a line per paragraph; findings carry
    /// the slide's number in the slide show (for notes, their slide's) as
    /// their page.
    Pptx,
    /// A table of an OpenDocument file (`x.ods!content.xml#Sheet1`): line and
    /// column are the table's row and column, as for [`ObjectKind::Xlsx`].
    OdfTable,
    /// The text of a PDF document, page by page: findings carry the page, and
    /// their line, column and byte offset are in that page's extracted text.
    Pdf,
    /// A SQL dump (`.sql`, or standard input that starts like one): findings
    /// carry the table, row, field and column name, and their place in the dump.
    Sql,
    /// A `pg_dump -Fc` custom-format archive: each table's rows are scanned
    /// as a SQL dump's are (findings carry the table, row, field and column
    /// name), but line, column and byte offset are in that table's COPY data
    /// as `pg_restore` prints it, its first row being line 1. Large objects
    /// are objects of their own (`dump.pgc!large-object-16400`). Also a data
    /// file of a tar- or directory-format dump (`shop.tar!3344.dat`,
    /// `shop.dir/3344.dat.gz`: one table's rows, located likewise) and the
    /// `toc.dat` of such a dump (no findings: it holds no data).
    PgDump,
    /// An e-mail message or mailbox (`.eml`, `.mbox`); each MIME part is an
    /// object of its own (`inbox.mbox!3!orders.csv`).
    Mail,
    /// A database table (`sqlite://shop.db!customers`): each finding's
    /// record locator has the row number, the column number and name, and
    /// the primary key; line, column and byte offset are inside the cell.
    Table,
    /// A directory entry that is not a regular file (symbolic link, device…),
    /// or an archive in a format that is not read (7z, RAR, LZH): `skipped`
    /// with the reason.
    Other,
}

impl ObjectKind {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Csv => "csv",
            Self::Zip => "zip",
            Self::Tar => "tar",
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::Docx => "docx",
            Self::Xlsx => "xlsx",
            Self::Pptx => "pptx",
            Self::Odf => "odf",
            Self::OdfTable => "odf-table",
            Self::Pdf => "pdf",
            Self::Sql => "sql",
            Self::PgDump => "pg-dump",
            Self::Mail => "mail",
            Self::Table => "table",
            Self::Other => "other",
        }
    }
}

/// The result of scanning one object: a file, standard input, or a member of
/// an archive.
#[derive(Debug, Clone)]
pub struct ObjectReport {
    /// Where it is: the path as given or walked, then `!inner/path` for each
    /// archive level (`backup.tar.gz!2024/orders.csv`).
    pub path: String,
    /// What it was read as.
    pub kind: ObjectKind,
    /// How much of it was scanned.
    pub status: Status,
    /// Why it is partial or skipped. Never holds content.
    pub reason: Option<String>,
    /// The detected text encoding (text objects).
    pub encoding: Option<TextEncoding>,
    /// Malformed bytes were replaced while decoding.
    pub decode_errors: bool,
    /// Bytes read from the object (expanded, for archive members).
    pub bytes: u64,
    /// Findings in input order; locators are relative to this object.
    pub findings: Vec<Finding>,
}

impl ObjectReport {
    pub(crate) fn new(path: String, kind: ObjectKind) -> Self {
        Self {
            path: mask_card_numbers(path),
            kind,
            status: Status::Complete,
            reason: None,
            encoding: None,
            decode_errors: false,
            bytes: 0,
            findings: Vec::new(),
        }
    }

    pub(crate) fn skipped(path: String, kind: ObjectKind, reason: impl Into<String>) -> Self {
        let mut r = Self::new(path, kind);
        r.status = Status::Skipped;
        r.reason = Some(reason.into());
        r
    }

    /// A database table that could not be read at all; `reason` holds no content.
    pub fn skipped_table(path: String, reason: impl Into<String>) -> Self {
        Self::skipped(path, ObjectKind::Table, reason)
    }

    /// Marks the object partial (or keeps it skipped) with a reason; the first reason wins.
    /// Lists a finding unless [`Limits::max_findings`] are listed already,
    /// or its memory (and the list's, as it grows) does not fit in what is
    /// left of the input's memory budget; `memory` holds what the listed
    /// findings take.
    pub(crate) fn list(
        &mut self,
        ctx: &container::Ctx<'_>,
        finding: Finding,
        memory: &mut container::Reserved<'_, '_>,
    ) {
        let max = ctx.discovery.limits.max_findings;
        let full = if self.findings.len() >= max {
            Some(format!(
                "more than {max} findings in one object: the rest are not listed"
            ))
        } else {
            let len = self.findings.len();
            if len == self.findings.capacity() {
                // Doubled while small, then grown once as far as the budget
                // and the limit allow: unwritten, those pages take no
                // memory, so each finding is reserved as it is listed.
                // Doubling all the way left freed copies of up to half the
                // list behind, which the allocator gives back late.
                let room = if len < 1 << 16 {
                    (len * 2).max(64)
                } else {
                    usize::try_from(ctx.memory_left() / (size_of::<Finding>() as u64 + 32))
                        .unwrap_or(usize::MAX)
                };
                self.findings.reserve_exact(room.min(max).saturating_sub(len));
            }
            let heap = finding.masked.capacity()
                + finding.locator.record.as_ref().map_or(0, |r| {
                    [&r.header, &r.key, &r.table]
                        .iter()
                        .map(|s| s.as_ref().map_or(0, String::capacity))
                        .sum()
                });
            if len < self.findings.capacity() && memory.grow((size_of::<Finding>() + heap) as u64) {
                self.findings.push(finding);
                None
            } else {
                Some(format!(
                    "the findings listed take what this input has left of its memory budget \
                     ({} MiB, --max-memory): the rest are not listed",
                    ctx.discovery.limits.max_memory >> 20
                ))
            }
        };
        if let Some(reason) = full
            && (self.status < Status::Partial || self.reason.is_none())
        {
            self.degrade(Status::Partial, reason);
        }
    }

    pub(crate) fn degrade(&mut self, status: Status, reason: impl Into<String>) {
        if status > self.status {
            self.status = status;
        }
        if self.reason.is_none() {
            self.reason = Some(reason.into());
        }
    }
}

/// The scanner with its limits: build once, share between threads.
#[derive(Debug)]
pub struct Discovery {
    scanner: Scanner,
    /// Checks CSV headers for values before they are printed.
    header_check: Scanner,
    /// Masks table keys: what would be a finding at the default confidence,
    /// whatever `--min-confidence` says (a card number used as a key stays
    /// masked under `high`), without masking every 12-digit id that happens
    /// to pass the My Number check digit (one in ten do).
    pub(crate) key_check: Scanner,
    limits: Limits,
    bytes: AtomicU64,
    /// Directory-format pg_dump tables of contents, for their data files.
    pub(crate) tocs: pgdump::TocCache,
}

impl Discovery {
    /// A discovery run with these detectors and limits.
    pub fn new(scanner: Scanner, limits: Limits) -> Self {
        let header_check = Scanner::with_options(
            key::throwaway(),
            ScanOptions::default().min_confidence(Confidence::Low),
        );
        Self {
            scanner,
            header_check,
            key_check: Scanner::with_options(key::throwaway(), ScanOptions::default()),
            limits,
            bytes: AtomicU64::new(0),
            tocs: pgdump::TocCache::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The detectors.
    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    /// Bytes read so far, from every thread (for a progress bar).
    pub fn bytes_scanned(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Scans one byte stream as an object named `name` (archives are opened,
    /// text is decoded), handing each object's report to `emit` as it is done.
    pub fn scan_reader(
        &self,
        name: &str,
        reader: &mut dyn std::io::Read,
        emit: &mut dyn FnMut(ObjectReport),
    ) {
        let ctx = container::Ctx::new(self);
        let mut timed = container::Timed {
            inner: reader,
            ctx: &ctx,
        };
        container::scan_stream(&ctx, name.to_owned(), &mut timed, 0, emit);
    }

    /// Scans one file on disk (a zip is read in place, not into memory).
    pub fn scan_file(&self, path: &std::path::Path, name: &str, emit: &mut dyn FnMut(ObjectReport)) {
        let ctx = container::Ctx::new(self);
        container::scan_file(&ctx, path, name.to_owned(), emit);
    }

    /// Scans files, directories and standard input with `options.threads`
    /// threads; reports are handed to `emit` in the order objects finish,
    /// one at a time, on the thread that scanned the object (which waits
    /// for it: reports never queue up in memory).
    pub fn scan_inputs(
        &self,
        inputs: &[Input],
        options: &WalkOptions,
        emit: impl FnMut(ObjectReport) + Send,
    ) -> Result<(), ScanError> {
        walk::run(self, inputs, options, emit)
    }

    /// A CSV header is printed only when the detectors find nothing in it.
    pub(crate) fn header_is_clean(&self, header: &str) -> bool {
        self.header_check.scan_str(header).is_empty()
    }
}

/// Why a scan could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScanError {
    /// An include or exclude glob does not parse.
    Glob {
        /// The glob as given.
        glob: String,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Glob { glob, message } => write!(f, "invalid glob {glob:?}: {message}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// A name (a path as given, say) with every card number in it masked, as
/// report paths are.
pub fn mask_name(name: &str) -> String {
    mask_card_numbers(name.to_owned())
}

/// Masks every card number in a name, as findings are masked (first six and
/// last four digits kept): a file or archive member named after a card number
/// must not put it in a report. A card number is a run of 13 to 19 digits,
/// ASCII or full-width, single spaces or hyphens allowed between them, with a
/// known brand prefix and a valid Luhn check digit.
pub(crate) fn mask_card_numbers(name: String) -> String {
    fn digit(c: char) -> Option<u8> {
        match c {
            '0'..='9' => Some(c as u8),
            '\u{FF10}'..='\u{FF19}' => u8::try_from(c as u32 - 0xFF10).ok().map(|d| b'0' + d),
            _ => None,
        }
    }
    let chars: Vec<char> = name.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if digit(chars[i]).is_none() {
            i += 1;
            continue;
        }
        // The run: digits, with single separators between two digits.
        let start = i;
        let mut end = i;
        let mut positions = Vec::new();
        while end < chars.len() {
            if digit(chars[end]).is_some() {
                positions.push(end);
                end += 1;
            } else if matches!(chars[end], ' ' | '-')
                && end + 1 < chars.len()
                && digit(chars[end + 1]).is_some()
                && end > start
            {
                end += 1;
            } else {
                break;
            }
        }
        let digits: Vec<u8> = positions.iter().filter_map(|&p| digit(chars[p])).collect();
        if (13..=19).contains(&digits.len())
            && anshin_crypto::pan::luhn_valid(&digits)
            && anshin_crypto::pan::Brand::detect(&digits).is_some()
        {
            for &p in &positions[6..positions.len() - 4] {
                out[p] = '•';
            }
        }
        i = end.max(i + 1);
    }
    if out == chars {
        name
    } else {
        out.into_iter().collect()
    }
}

/// Builds paths for messages: the path as the user wrote it.
pub(crate) fn display_path(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests;
