//! Containers: zip, tar, gzip (and so tar.gz), opened by their magic bytes,
//! recursively, within limits.
//!
//! Every byte that comes out of a decompressor goes through [`Bounded`],
//! which enforces the expansion ratio against the compressed bytes actually
//! consumed and the expanded-bytes budget of the top-level input. A limit
//! surfaces as an I/O error carrying [`LimitHit`]; the object being read
//! ends `partial` with its reason.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::Path;

use zeroize::Zeroizing;

use crate::codec::{self, Codec};
use crate::mail;
use crate::office::{self, Office};
use crate::pdf;
use crate::pgdump;
use crate::sql;
use crate::text;
use crate::{Deadline, Discovery, ObjectKind, ObjectReport, Status};

/// Expanded bytes allowed before the ratio applies (small members of highly
/// compressible text legitimately reach 100:1).
const RATIO_SLACK: u64 = 1 << 20;

/// State shared by everything read from one top-level input.
pub(crate) struct Ctx<'d> {
    pub discovery: &'d Discovery,
    /// Expanded bytes left in this input's budget.
    expanded_left: Cell<u64>,
    /// Bytes of [`crate::Limits::max_memory`] not reserved.
    memory_left: Cell<u64>,
    /// The per-file time limit of this input, started when it is opened.
    pub deadline: Deadline,
}

impl<'d> Ctx<'d> {
    pub fn new(discovery: &'d Discovery) -> Self {
        Self {
            discovery,
            expanded_left: Cell::new(discovery.limits.max_expanded),
            memory_left: Cell::new(discovery.limits.max_memory),
            deadline: Deadline::after(discovery.limits.file_timeout),
        }
    }

    /// Bytes of this input's memory budget not yet reserved.
    pub fn memory_left(&self) -> u64 {
        self.memory_left.get()
    }

    /// Reserves `bytes` of this input's memory budget until the guard is
    /// dropped; `None`, and nothing reserved, when fewer are left.
    pub fn reserve(&self, bytes: u64) -> Option<Reserved<'_, 'd>> {
        let mut r = Reserved { ctx: self, bytes: 0 };
        r.grow(bytes).then_some(r)
    }

    /// Nothing reserved yet, to [`Reserved::grow`] as a buffer grows.
    pub fn reservation(&self) -> Reserved<'_, 'd> {
        Reserved { ctx: self, bytes: 0 }
    }

    /// An I/O error carrying the time-limit reason, once the time is up.
    fn check_time(&self) -> io::Result<()> {
        if self.deadline.passed() {
            return Err(io::Error::other(LimitHit(self.deadline.reason())));
        }
        Ok(())
    }
}

/// Memory of [`crate::Limits::max_memory`] held by one buffer, decoder or
/// list of findings of an input, given back when dropped. Everything large
/// an input holds at once (decoder windows, a nested zip, held tar members,
/// a document part and what is extracted from it, listed findings) is
/// reserved first, so the input's memory stays bounded however deep its
/// archives nest; what does not fit takes the fallback its reader has (a
/// temporary file, text) or ends `partial` or `skipped` with the reason.
pub(crate) struct Reserved<'c, 'd> {
    ctx: &'c Ctx<'d>,
    bytes: u64,
}

impl Reserved<'_, '_> {
    /// Reserves `more` bytes too, if that many are left.
    pub fn grow(&mut self, more: u64) -> bool {
        let left = self.ctx.memory_left.get();
        if more > left {
            return false;
        }
        self.ctx.memory_left.set(left - more);
        self.bytes += more;
        true
    }

    /// Gives back what is reserved past `bytes`.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.ctx
                .memory_left
                .set(self.ctx.memory_left.get() + (self.bytes - bytes));
            self.bytes = bytes;
        }
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reserved<'_, '_> {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// The reason given when a buffer or decoder of `needed` bytes does not fit
/// in what is left of an input's memory budget.
pub(crate) fn memory_reason(ctx: &Ctx<'_>, what: &str, needed: u64) -> String {
    format!(
        "{what} needs {} MiB of memory, more than this input has left of its {} MiB \
         (--max-memory): raise it, or for a compressed file, decompress it into `anshin scan -`",
        needed.div_ceil(1 << 20),
        ctx.discovery.limits.max_memory >> 20
    )
}

/// The raw bytes of a top-level input, cut off by the per-file time limit:
/// every read first checks the deadline, so a slow source (a stalled pipe
/// that still trickles, a slow network mount) ends like any other limit.
pub(crate) struct Timed<'c, 'd, R> {
    pub inner: R,
    pub ctx: &'c Ctx<'d>,
}

impl<R: Read> Read for Timed<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ctx.check_time()?;
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Timed<'_, '_, R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// A limit was reached while reading; the message is the reason shown.
#[derive(Debug)]
pub(crate) struct LimitHit(pub String);

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitHit {}

/// The reason to report for a read error: the limit's message, or the I/O error.
pub(crate) fn limit_reason(e: &io::Error) -> String {
    match limit_hit(e) {
        Some(hit) => hit.0.clone(),
        None => format!("read error: {e}"),
    }
}

fn limit_hit(e: &io::Error) -> Option<&LimitHit> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<LimitHit>())
}

/// The reason for an archive that stopped reading: a limit as it is, any
/// other error as corruption.
fn archive_reason(what: &str, e: &io::Error) -> String {
    match limit_hit(e) {
        Some(hit) => hit.0.clone(),
        None => format!("corrupt {what}: read error: {e}"),
    }
}

/// Counts the compressed bytes a decompressor consumes.
pub(crate) struct Counting<'c, R> {
    inner: R,
    count: &'c Cell<u64>,
}

impl<'c, R> Counting<'c, R> {
    pub(crate) fn new(inner: R, count: &'c Cell<u64>) -> Self {
        Self { inner, count }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Where the compressed size of a stream comes from.
enum Compressed<'c> {
    /// Known in advance (a zip member's header; the zip reader reads no more).
    Known(u64),
    /// Counted as the decompressor consumes it.
    Counted(&'c Cell<u64>),
}

/// The expanded side of a decompressor, held to the ratio and the budget.
pub(crate) struct Bounded<'c, 'd, R> {
    inner: R,
    expanded: u64,
    compressed: Compressed<'c>,
    ctx: &'c Ctx<'d>,
}

impl<'c, 'd, R: Read> Bounded<'c, 'd, R> {
    /// Expanded bytes of a stream `compressed` bytes long.
    pub(crate) fn known(ctx: &'c Ctx<'d>, inner: R, compressed: u64) -> Self {
        Self {
            inner,
            expanded: 0,
            compressed: Compressed::Known(compressed),
            ctx,
        }
    }

    /// A decompressor whose compressed input is counted in `consumed`.
    pub(crate) fn counted(ctx: &'c Ctx<'d>, inner: R, consumed: &'c Cell<u64>) -> Self {
        Self {
            inner,
            expanded: 0,
            compressed: Compressed::Counted(consumed),
            ctx,
        }
    }

    /// Bytes expanded so far.
    pub(crate) fn expanded(&self) -> u64 {
        self.expanded
    }
}

impl<R: Read> Read for Bounded<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ctx.check_time()?;
        let n = self.inner.read(buf)?;
        let n64 = n as u64;
        self.expanded += n64;
        let left = self.ctx.expanded_left.get();
        if n64 > left {
            self.ctx.expanded_left.set(0);
            return Err(io::Error::other(LimitHit(format!(
                "expanded size over the limit of {} bytes for one input",
                self.ctx.discovery.limits.max_expanded
            ))));
        }
        self.ctx.expanded_left.set(left - n64);
        let compressed = match &self.compressed {
            Compressed::Known(c) => *c,
            Compressed::Counted(c) => c.get(),
        };
        let ratio = self.ctx.discovery.limits.max_ratio;
        if self.expanded > RATIO_SLACK && self.expanded / compressed.max(1) > ratio {
            return Err(io::Error::other(LimitHit(format!(
                "compression ratio over {ratio}:1 (a zip bomb?)"
            ))));
        }
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Zip,
    Compressed(Codec),
    /// An archive format that is not read (7z, RAR, LZH), by its name.
    Unread(&'static str),
    Tar,
    Pdf,
    PgDump,
    Sql,
    Text,
}

/// Bytes needed to tell the containers apart (a tar header's magic is at 257).
const SNIFF: usize = 512;

fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Sniffed::Zip
    } else if let Some(codec) = Codec::sniff(head) {
        Sniffed::Compressed(codec)
    } else if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Sniffed::Unread("7z")
    } else if head.starts_with(b"Rar!\x1a\x07") {
        Sniffed::Unread("RAR")
    } else if head.len() >= 7 && head[2] == b'-' && head[3..5] == *b"lh" && head[6] == b'-' {
        // LHA's level 0–2 headers: "-lh5-" at offset 2.
        Sniffed::Unread("LZH")
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Sniffed::Tar
    } else if pdf::is_pdf(head) {
        Sniffed::Pdf
    } else if pgdump::is_pgdump(head) {
        Sniffed::PgDump
    } else {
        Sniffed::Text
    }
}

/// What a stream is: its magic bytes, else (for text) its name or, on
/// standard input, the first bytes of a SQL dump.
fn classify(name: &str, head: &[u8]) -> Sniffed {
    match sniff(head) {
        Sniffed::Text if sql::is_sql(name, head) => Sniffed::Sql,
        other => other,
    }
}

/// The first bytes of a stream (wiped on drop), and the error that cut them
/// short, if any (what was read before the error is kept).
fn read_head(reader: &mut dyn Read) -> (Zeroizing<Vec<u8>>, Option<io::Error>) {
    let mut head = Zeroizing::new(Vec::with_capacity(SNIFF));
    match reader.take(SNIFF as u64).read_to_end(&mut head) {
        Ok(_) => (head, None),
        Err(e) => (head, Some(e)),
    }
}

/// A reader that fails with `error` once `head` is consumed: a stream whose
/// beginning was read before it broke is still scanned, then ends `partial`.
struct Failing(Option<io::Error>);

impl Read for Failing {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// Scans a file on disk.
pub(crate) fn scan_file(ctx: &Ctx<'_>, path: &Path, name: String, emit: &mut dyn FnMut(ObjectReport)) {
    let mut file = match File::open(path) {
        Ok(f) => Timed { inner: f, ctx },
        Err(e) => {
            emit(ObjectReport::skipped(
                name,
                ObjectKind::Text,
                format!("cannot open: {e}"),
            ));
            return;
        }
    };
    // A data file of a directory-format pg_dump: its table's rows.
    if let Some(toc) = pgdump::beside(ctx, path)
        && let Some(data) = path.file_name().and_then(|n| toc.data_file(&n.to_string_lossy()))
    {
        pgdump::scan_data_file(ctx, name, &mut file, &toc, data, emit);
        return;
    }
    let (head, error) = read_head(&mut file);
    if let Some(e) = error {
        let kind = classify(&name, &head);
        let mut reader = Cursor::new(head).chain(Failing(Some(e)));
        dispatch(ctx, name, &mut reader, kind, 0, emit);
        return;
    }
    if sniff(&head) == Sniffed::Zip {
        // In place: the zip reader seeks in the file, nothing is held in memory.
        if let Err(e) = file.rewind() {
            emit(ObjectReport::skipped(
                name,
                ObjectKind::Zip,
                format!("cannot read: {e}"),
            ));
            return;
        }
        scan_zip(ctx, name, file, 0, emit);
        return;
    }
    let kind = classify(&name, &head);
    let mut reader = Cursor::new(head).chain(file);
    dispatch(ctx, name, &mut reader, kind, 0, emit);
}

/// Scans any byte stream (standard input, an archive member).
pub(crate) fn scan_stream(
    ctx: &Ctx<'_>,
    name: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    read_stream(ctx, name, reader, depth, emit);
}

/// [`scan_stream`], returning the table of contents when the stream is the
/// `toc.dat` of a tar- or directory-format pg_dump (for the tar it is in).
fn read_stream(
    ctx: &Ctx<'_>,
    name: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) -> Option<pgdump::Toc> {
    let (head, error) = read_head(reader);
    let kind = classify(&name, &head);
    match error {
        None => dispatch(ctx, name, &mut Cursor::new(head).chain(reader), kind, depth, emit),
        Some(e) => dispatch(
            ctx,
            name,
            &mut Cursor::new(head).chain(Failing(Some(e))),
            kind,
            depth,
            emit,
        ),
    }
}

/// Reads a stream as what it was sniffed as; returns the table of contents
/// of a tar- or directory-format pg_dump's `toc.dat`.
fn dispatch(
    ctx: &Ctx<'_>,
    name: String,
    reader: &mut dyn Read,
    kind: Sniffed,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) -> Option<pgdump::Toc> {
    let limits = &ctx.discovery.limits;
    if matches!(
        kind,
        Sniffed::Zip | Sniffed::Compressed(_) | Sniffed::Tar | Sniffed::PgDump
    ) && depth >= limits.max_depth
    {
        let object_kind = match kind {
            Sniffed::Zip => ObjectKind::Zip,
            Sniffed::Compressed(codec) => codec.kind(),
            Sniffed::PgDump => ObjectKind::PgDump,
            _ => ObjectKind::Tar,
        };
        emit(ObjectReport::skipped(
            name,
            object_kind,
            format!("archive nested deeper than {} levels", limits.max_depth),
        ));
        return None;
    }
    match kind {
        Sniffed::Text if mail::is_mail(&name) => {
            if depth >= limits.max_depth {
                emit(ObjectReport::skipped(
                    name,
                    ObjectKind::Mail,
                    format!("nested deeper than {} levels", limits.max_depth),
                ));
            } else {
                mail::scan(ctx, name, reader, depth, emit);
            }
        }
        Sniffed::Text => {
            let mode = text::mode_for(&name);
            emit(text::scan(ctx, name, reader, mode));
        }
        Sniffed::Pdf => pdf::scan(ctx, name, reader, depth, emit),
        // Read as text they would pass as scanned with nothing found.
        Sniffed::Unread(format) => emit(ObjectReport::skipped(
            name,
            ObjectKind::Other,
            format!("{format} archive: not read; extract it and scan the files"),
        )),
        Sniffed::Sql => emit(sql::scan(ctx, name, reader)),
        Sniffed::PgDump => return pgdump::scan(ctx, name, reader, depth, emit),
        Sniffed::Compressed(codec) => scan_compressed(ctx, name, reader, codec, depth, emit),
        Sniffed::Tar => scan_tar(ctx, name, reader, depth, emit),
        Sniffed::Zip => {
            // A zip needs random access: small ones are held in memory (wiped
            // after), larger ones go through an unnamed temporary file, so
            // memory stays bounded. The file holds the nested zip as it is,
            // still compressed, and disappears when closed.
            let max = limits.max_in_memory.min(ctx.memory_left().saturating_sub(1));
            let mut memory = ctx.reservation();
            memory.grow(max + 1);
            let mut buf = Zeroizing::new(Vec::new());
            let mut eof = false;
            let read = usize::try_from(max + 1).unwrap_or(usize::MAX);
            if let Err(e) = text::fill(&mut buf, reader, read, &mut eof, &mut |_| {}) {
                let mut r = ObjectReport::new(name, ObjectKind::Zip);
                r.degrade(Status::Skipped, limit_reason(&e));
                emit(r);
                return None;
            }
            if eof {
                memory.shrink_to(buf.capacity() as u64);
                scan_zip(ctx, name, Cursor::new(&buf[..]), depth, emit);
                return None;
            }
            match spill(&buf, reader) {
                Ok(file) => {
                    drop(buf);
                    drop(memory);
                    scan_zip(ctx, name, file, depth, emit);
                }
                Err(e) => {
                    let mut r = ObjectReport::new(name, ObjectKind::Zip);
                    r.degrade(Status::Skipped, limit_reason(&e));
                    emit(r);
                }
            }
        }
    }
    None
}

/// Largest office part (one worksheet, the shared strings, a document body)
/// read into memory, as a multiple of [`crate::Limits::max_in_memory`].
const PART_FACTOR: u64 = 4;

/// Most bytes of a document read whole into memory (an XML part, a PDF):
/// `PART_FACTOR × max_in_memory`, and a third of what is left of the
/// input's memory budget, for what is made of it (the text extracted from
/// a part, a PDF's parsed objects).
pub(crate) fn read_limit(ctx: &Ctx<'_>) -> usize {
    let max = ctx
        .discovery
        .limits
        .max_in_memory
        .saturating_mul(PART_FACTOR)
        .min(ctx.memory_left() / 3);
    usize::try_from(max).unwrap_or(usize::MAX - 1)
}

/// Reads a whole document of at most [`read_limit`] bytes, `what` in the
/// reason when it is larger, and reserves its bytes; `Err` with the reason.
pub(crate) fn read_whole<'c, 'd>(
    ctx: &'c Ctx<'d>,
    reader: &mut dyn Read,
    what: &str,
    counted: &mut dyn FnMut(usize),
) -> Result<(Zeroizing<Vec<u8>>, Reserved<'c, 'd>), String> {
    let max = read_limit(ctx);
    let mut memory = ctx.reservation();
    // Within what is left: `read_limit` is a third of it.
    memory.grow(max as u64 + 1);
    let mut buf = Zeroizing::new(Vec::new());
    let mut eof = false;
    text::fill(&mut buf, reader, max + 1, &mut eof, counted).map_err(|e| limit_reason(&e))?;
    if !eof {
        return Err(
            if (max as u64) < ctx.discovery.limits.max_in_memory.saturating_mul(PART_FACTOR) {
                format!(
                    "{what} larger than {max} bytes, a third of what this input has left of its \
                 memory budget ({} MiB, --max-memory)",
                    ctx.discovery.limits.max_memory >> 20
                )
            } else {
                format!("{what} larger than {max} bytes")
            },
        );
    }
    memory.shrink_to(buf.capacity() as u64);
    Ok((buf, memory))
}

/// An XML part read whole ([`read_whole`]), its memory reserved.
struct Xml<'c, 'd> {
    text: Zeroizing<String>,
    _memory: Reserved<'c, 'd>,
}

/// Reads a whole XML part.
fn read_xml<'c, 'd>(ctx: &'c Ctx<'d>, reader: &mut dyn Read) -> Result<Xml<'c, 'd>, String> {
    let (mut buf, memory) = read_whole(ctx, reader, "XML part", &mut |_| {})?;
    if simdutf8::basic::from_utf8(&buf).is_err() {
        return Err("XML part is not UTF-8".to_owned());
    }
    // Validated: no copy is made (a copy would double the part's memory).
    let text = String::from_utf8(std::mem::take(&mut *buf)).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        "XML part is not UTF-8".to_owned()
    })?;
    Ok(Xml {
        text: Zeroizing::new(text),
        _memory: memory,
    })
}

/// The text extracted from an XML part may take up to twice the part and
/// 1 MiB (quoted fields, shared strings resolved), within what is left of
/// the input's memory budget; reserved until dropped.
fn extract_budget<'c, 'd>(ctx: &'c Ctx<'d>, xml: &str) -> (usize, Reserved<'c, 'd>) {
    let max = (xml.len() as u64 * 2 + (1 << 20)).min(ctx.memory_left());
    let mut memory = ctx.reservation();
    memory.grow(max);
    (usize::try_from(max).unwrap_or(usize::MAX), memory)
}

/// Reads one named part of a zip, if it is there.
fn read_part<'c, 'd, R: Read + Seek>(
    ctx: &'c Ctx<'d>,
    archive: &mut zip::ZipArchive<R>,
    name: &str,
) -> Result<Option<Xml<'c, 'd>>, String> {
    let member = match archive.by_name(name) {
        Ok(m) => m,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read member: {e}")),
    };
    let compressed = member.compressed_size();
    let mut bounded = Bounded::known(ctx, member, compressed);
    read_xml(ctx, &mut bounded).map(Some)
}

/// What the parts of one office file share: the workbook's string table,
/// the presentation's slide order. Read before the parts that use it.
struct Shared<'c, 'd> {
    strings: office::SharedStrings,
    /// The strings' memory, reserved.
    memory: Reserved<'c, 'd>,
    slides: Vec<String>,
    /// Speaker-notes part → the slide part it belongs to.
    notes: Vec<(String, String)>,
    /// Why what is shared could not be read: each sheet is then partial
    /// (its text cells are not in its text).
    unread: Option<String>,
}

/// Most speaker-notes relationship parts read to place notes on slides.
const MAX_NOTES: usize = 10_000;

impl<'c, 'd> Shared<'c, 'd> {
    /// Reads what this kind of document shares; a part that cannot be read
    /// leaves the document `partial` (cells show indexes, slides their part
    /// number) rather than unread.
    fn read<R: Read + Seek>(
        ctx: &'c Ctx<'d>,
        archive: &mut zip::ZipArchive<R>,
        office: Option<Office>,
        report: &mut ObjectReport,
    ) -> Self {
        // Each notes part names its slide in its own relationships.
        let notes_rels: Vec<String> = match office {
            Some(Office::Pptx) => archive
                .file_names()
                .filter_map(Result::ok)
                .filter(|n| n.starts_with("ppt/notesSlides/_rels/") && n.ends_with(".xml.rels"))
                .take(MAX_NOTES)
                .map(|n| n.to_string())
                .collect(),
            _ => Vec::new(),
        };
        let mut part = |name: &str, what: &str| match read_part(ctx, archive, name) {
            Ok(xml) => xml,
            Err(reason) => {
                report.degrade(Status::Partial, format!("{what}: {reason}"));
                None
            }
        };
        let mut shared = Self {
            strings: office::SharedStrings::default(),
            memory: ctx.reservation(),
            slides: Vec::new(),
            notes: Vec::new(),
            unread: None,
        };
        let parsed = match office {
            // Streamed from their XML into one buffer and an offset each,
            // within half of what is left.
            Some(Office::Xlsx) => match archive.by_name("xl/sharedStrings.xml") {
                Ok(member) => {
                    let max = ctx.memory_left() / 2;
                    shared.memory.grow(max);
                    let compressed = member.compressed_size();
                    let tokens = XmlTokens {
                        inner: Bounded::known(ctx, member, compressed),
                        since_open: 0,
                    };
                    let parsed = office::shared_strings(
                        io::BufReader::new(tokens),
                        &ctx.deadline,
                        usize::try_from(max).unwrap_or(usize::MAX),
                    );
                    let kept = parsed.as_ref().map_or(0, office::SharedStrings::memory);
                    shared.memory.shrink_to(kept);
                    Some(parsed.map(|strings| shared.strings = strings))
                }
                Err(zip::result::ZipError::FileNotFound) => None,
                Err(e) => Some(Err(office::XmlError(format!(
                    "shared strings: cannot read member: {e}"
                )))),
            },
            Some(Office::Pptx) => {
                for rels in &notes_rels {
                    let Some(notes) = rels
                        .strip_prefix("ppt/notesSlides/_rels/")
                        .and_then(|n| n.strip_suffix(".rels"))
                        .map(|n| format!("ppt/notesSlides/{n}"))
                    else {
                        continue;
                    };
                    let Some(xml) = part(rels, "notes") else {
                        continue;
                    };
                    if let Ok(targets) = office::relationships(&xml.text, &notes, &ctx.deadline)
                        && let Some((_, slide)) =
                            targets.into_iter().find(|(_, t)| t.starts_with("ppt/slides/"))
                    {
                        shared.notes.push((notes, slide));
                    }
                }
                let presentation = part("ppt/presentation.xml", "slide list");
                let rels = part("ppt/_rels/presentation.xml.rels", "slide list");
                presentation.zip(rels).map(|(p, r)| {
                    office::slide_order(&p.text, &r.text, &ctx.deadline).map(|s| shared.slides = s)
                })
            }
            _ => None,
        };
        if let Some(Err(e)) = parsed {
            report.degrade(Status::Partial, format!("shared part: {}", e.0));
        }
        if report.status != Status::Complete {
            shared.unread = report.reason.clone();
        }
        shared
    }

    /// The slide number of a slide part, or of the slide a notes part
    /// belongs to: its place in the slide list, else the number in its name;
    /// none for other parts.
    fn slide(&self, part: &str) -> Option<usize> {
        let part = if part.starts_with("ppt/notesSlides/") {
            self.notes
                .iter()
                .find(|(n, _)| n == part)
                .map(|(_, s)| s.as_str())?
        } else {
            part
        };
        let stem = part.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?;
        match self.slides.iter().position(|s| s == part) {
            Some(i) => Some(i + 1),
            None => stem.parse().ok(),
        }
    }
}

/// Scans extracted document text; findings get `page` (a slide number).
fn scan_text(
    ctx: &Ctx<'_>,
    path: String,
    kind: ObjectKind,
    bytes: u64,
    text: &str,
    page: Option<usize>,
) -> ObjectReport {
    let mut r = text::scan(ctx, path, &mut Cursor::new(text.as_bytes()), text::Mode::Text);
    r.kind = kind;
    r.bytes = bytes;
    for f in &mut r.findings {
        f.locator.page = page;
    }
    r
}

/// Scans a document part as its text, or a worksheet as its cells.
fn scan_office_part(
    ctx: &Ctx<'_>,
    path: String,
    part: &str,
    kind: Office,
    reader: &mut dyn Read,
    shared: &Shared<'_, '_>,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let object_kind = match kind {
        Office::Docx => ObjectKind::Docx,
        Office::Xlsx => ObjectKind::Xlsx,
        Office::Pptx => ObjectKind::Pptx,
        Office::Odf => ObjectKind::Odf,
    };
    if kind == Office::Xlsx {
        return emit(scan_worksheet(ctx, path, reader, shared));
    }
    let xml = match read_xml(ctx, reader) {
        Ok(x) => x,
        Err(reason) => return emit(ObjectReport::skipped(path, object_kind, reason)),
    };
    let bytes = xml.text.len() as u64;
    // The text is extracted, the part dropped, then the text scanned.
    let (max_out, mut extracted) = extract_budget(ctx, &xml.text);
    // (Worksheets returned above: docx and pptx are paragraphs, ODF its content.)
    if kind != Office::Odf {
        let text = office::paragraph_text(&xml.text, &ctx.deadline, max_out);
        drop(xml);
        match text {
            Ok(text) => {
                extracted.shrink_to(text.capacity() as u64);
                emit(scan_text(
                    ctx,
                    path,
                    object_kind,
                    bytes,
                    &text,
                    shared.slide(part),
                ));
            }
            Err(e) => emit(ObjectReport::skipped(path, object_kind, e.0)),
        }
    } else {
        let content = office::odf_content(&xml.text, &ctx.deadline, max_out);
        drop(xml);
        match content {
            Ok(content) => {
                extracted.shrink_to(
                    content
                        .tables
                        .iter()
                        .map(|t| (t.tsv.capacity() + t.rows.capacity() * 4) as u64)
                        .sum::<u64>()
                        + content.text.capacity() as u64,
                );
                emit(scan_text(
                    ctx,
                    path.clone(),
                    object_kind,
                    bytes,
                    &content.text,
                    None,
                ));
                for (i, table) in content.tables.iter().enumerate() {
                    let name = if table.name.is_empty() {
                        format!("table{}", i + 1)
                    } else {
                        table.name.replace('!', "_")
                    };
                    let mut r = scan_sheet(ctx, format!("{path}#{name}"), &table.tsv, &table.rows);
                    r.kind = ObjectKind::OdfTable;
                    emit(r);
                }
            }
            Err(e) => emit(ObjectReport::skipped(path, object_kind, e.0)),
        }
    }
}

/// Longest XML text or tag a worksheet may hold (a cell holds at most
/// 32,767 characters): the XML reader holds one whole.
const MAX_XML_TOKEN: u64 = 1 << 20;

/// Most bytes of one row of a worksheet.
const MAX_SHEET_ROW: u64 = 32 << 20;

/// Scans a worksheet streamed from its XML ([`office::SheetReader`]) as
/// tab-separated text; findings get the sheet's row and column (also as
/// line and column).
fn scan_worksheet(
    ctx: &Ctx<'_>,
    path: String,
    reader: &mut dyn Read,
    shared: &Shared<'_, '_>,
) -> ObjectReport {
    let max_row = MAX_SHEET_ROW.min(ctx.memory_left() / 2);
    let mut memory = ctx.reservation();
    // The row, the XML reader's token, and the buffers around them.
    memory.grow(max_row + MAX_XML_TOKEN + (256 << 10));
    let consumed = Cell::new(0u64);
    let tokens = XmlTokens {
        inner: Counting::new(reader, &consumed),
        since_open: 0,
    };
    let mut sheet = office::SheetReader::new(
        io::BufReader::new(tokens),
        &shared.strings,
        &ctx.deadline,
        usize::try_from(max_row).unwrap_or(usize::MAX),
    );
    let mut r = text::scan(ctx, path, &mut sheet, text::Mode::Csv(Some(b'\t')));
    let first = sheet.first_row() as usize;
    for f in &mut r.findings {
        if let Some(rec) = f.locator.record.as_mut() {
            rec.row += first - 1;
            f.locator.line = rec.row;
            f.locator.column = rec.field;
        }
    }
    r.kind = ObjectKind::Xlsx;
    r.bytes = consumed.get();
    if let Some(reason) = &shared.unread {
        r.degrade(Status::Partial, reason.clone());
    }
    r
}

/// XML read on the condition that no text or tag is longer than
/// [`MAX_XML_TOKEN`] (no more than that between two `<`), so the XML
/// reader, which holds one whole, stays bounded.
struct XmlTokens<R> {
    inner: R,
    since_open: u64,
}

impl<R: Read> Read for XmlTokens<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.since_open = match memchr::memrchr(b'<', &buf[..n]) {
            Some(i) => (n - i - 1) as u64,
            None => self.since_open + n as u64,
        };
        if self.since_open > MAX_XML_TOKEN {
            return Err(io::Error::other(LimitHit(format!(
                "a text or tag in the XML is longer than {} MiB",
                MAX_XML_TOKEN >> 20
            ))));
        }
        Ok(n)
    }
}

/// Scans a sheet's cells as tab-separated text, then gives each finding the
/// sheet's own row and column (also as line and column).
fn scan_sheet(ctx: &Ctx<'_>, path: String, tsv: &str, rows: &[u32]) -> ObjectReport {
    let mut r = text::scan(
        ctx,
        path,
        &mut Cursor::new(tsv.as_bytes()),
        text::Mode::Csv(Some(b'\t')),
    );
    for f in &mut r.findings {
        if let Some(rec) = f.locator.record.as_mut() {
            rec.row = rec
                .row
                .checked_sub(1)
                .and_then(|i| rows.get(i))
                .map_or(rec.row, |&r| r as usize);
            f.locator.line = rec.row;
            f.locator.column = rec.field;
        }
    }
    r
}

/// Copies a stream (its first bytes already read into `head`) to an unnamed
/// temporary file and rewinds it.
fn spill(head: &[u8], rest: &mut dyn Read) -> io::Result<File> {
    let mut file = tempfile::tempfile()?;
    io::Write::write_all(&mut file, head)?;
    io::copy(rest, &mut file)?;
    file.rewind()?;
    Ok(file)
}

fn scan_zip<R: Read + Seek>(
    ctx: &Ctx<'_>,
    name: String,
    reader: R,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(name, ObjectKind::Zip);
    let mut archive = match zip::ZipArchive::new(reader) {
        Ok(a) => a,
        Err(zip::result::ZipError::Io(e)) if limit_hit(&e).is_some() => {
            report.degrade(Status::Skipped, limit_reason(&e));
            emit(report);
            return;
        }
        Err(e) => {
            report.degrade(Status::Skipped, format!("corrupt zip: {e}"));
            emit(report);
            return;
        }
    };
    let office = office::kind(archive.file_names().filter_map(Result::ok));
    let shared = Shared::read(ctx, &mut archive, office, &mut report);
    for index in 0..archive.len() {
        if let Some(reason) = stop_before_member(ctx, index as u64 + 1) {
            report.degrade(Status::Partial, reason);
            break;
        }
        let listed_name = match archive.name_for_index(index) {
            Some(Ok(n)) => n.into_owned(),
            _ => format!("#{index}"),
        };
        let member = match archive.by_index(index) {
            Ok(m) => m,
            Err(e) => {
                // Encrypted or an unsupported method: this member only.
                let inner = listed_name;
                emit(ObjectReport::skipped(
                    format!("{}!{inner}", report.path),
                    ObjectKind::Text,
                    format!("cannot read member: {e}"),
                ));
                report.degrade(Status::Partial, "some members could not be read");
                continue;
            }
        };
        if member.is_dir() {
            continue;
        }
        // UTF-8 names as they are (many tools set no flag), else the zip's own decoding.
        let member_name = match std::str::from_utf8(member.name_raw()) {
            Ok(n) => n.to_owned(),
            Err(_) => member.name().map_or_else(
                |_| String::from_utf8_lossy(member.name_raw()).into_owned(),
                |n| n.into_owned(),
            ),
        };
        let inner = format!("{}!{member_name}", report.path);
        let compressed = member.compressed_size();
        let mut bounded = Bounded::known(ctx, member, compressed);
        match office {
            // Read through the cells that use it.
            Some(Office::Xlsx) if member_name == "xl/sharedStrings.xml" => {}
            Some(kind) if office::is_text_part(kind, &member_name) => {
                scan_office_part(ctx, inner, &member_name, kind, &mut bounded, &shared, emit);
            }
            _ => scan_stream(ctx, inner, &mut bounded, depth + 1, emit),
        }
        report.bytes += bounded.expanded();
    }
    emit(report);
}

/// Why an archive stops before its `count`-th member (1-based), if it does:
/// the member limit, the expanded-size budget of the input, the per-file
/// time limit. Shared by every archive format, so each stops alike.
pub(crate) fn stop_before_member(ctx: &Ctx<'_>, count: u64) -> Option<String> {
    let limits = &ctx.discovery.limits;
    if count > limits.max_members {
        Some(format!(
            "more than {} members: the rest were not read",
            limits.max_members
        ))
    } else if ctx.expanded_left.get() == 0 {
        Some("expanded-size budget used up".to_owned())
    } else if ctx.deadline.passed() {
        Some(ctx.deadline.reason())
    } else {
        None
    }
}

fn scan_tar(
    ctx: &Ctx<'_>,
    name: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(name, ObjectKind::Tar);
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            report.degrade(Status::Skipped, archive_reason("tar", &e));
            emit(report);
            return;
        }
    };
    let mut count = 0u64;
    // The table of contents of a pg_dump in this tar (`pg_dump -Ft` writes
    // `toc.dat` first), and the folder it is in: its data files are read as
    // its tables' rows.
    let mut dump: Option<(String, pgdump::Toc)> = None;
    // Data files met before their folder's `toc.dat`, held until it comes:
    // a tarred directory-format dump has `toc.dat` wherever the directory
    // listing put it (`tar --sort=name` puts `3344.dat.gz` first), and a
    // tar is read once, as a stream.
    let mut held = Held::new(ctx);
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                report.degrade(Status::Partial, archive_reason("tar", &e));
                break;
            }
        };
        count += 1;
        if let Some(reason) = stop_before_member(ctx, count) {
            report.degrade(Status::Partial, reason);
            break;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let inner_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let inner = format!("{}!{inner_name}", report.path);
        report.bytes += entry.size();
        let (folder, file) = inner_name.rsplit_once('/').unwrap_or(("", &inner_name));
        let data = dump
            .as_ref()
            .filter(|(at, _)| at == folder)
            .and_then(|(_, toc)| Some((toc, toc.data_file(file)?)));
        if let Some((toc, data)) = data {
            pgdump::scan_data_file(ctx, inner, &mut entry, toc, data, emit);
        } else if file == "toc.dat" {
            let folder = folder.to_owned();
            if let Some(toc) = read_stream(ctx, inner, &mut entry, depth + 1, emit) {
                for member in held.take(&folder) {
                    member.scan(ctx, Some(&toc), depth, emit);
                }
                dump = Some((folder, toc));
            }
        } else if pgdump::is_data_file_name(file)
            && dump.as_ref().is_none_or(|(at, _)| at != folder)
            && held.room(ctx)
                >= entry
                    .size()
                    .saturating_add(HeldMember::names_len(&inner, folder, file))
        {
            let size = entry.size();
            held.hold(inner, folder, file, size, &mut entry);
        } else {
            scan_stream(ctx, inner, &mut entry, depth + 1, emit);
        }
    }
    // No `toc.dat` came for these (or it did not parse): text, as any file.
    for member in std::mem::take(&mut held.members) {
        member.scan(ctx, None, depth, emit);
    }
    emit(report);
}

/// Tar members held in memory (see `scan_tar`), wiped when dropped.
struct Held<'c, 'd> {
    members: Vec<HeldMember>,
    /// Their bytes and names together, reserved from the input's budget.
    memory: Reserved<'c, 'd>,
}

struct HeldMember {
    /// The report's path (`shop.tar!dump/3344.dat.gz`).
    inner: String,
    folder: String,
    file: String,
    bytes: Zeroizing<Vec<u8>>,
    /// The read error that cut the member short, reported when it is scanned.
    error: Option<io::Error>,
}

impl<'c, 'd> Held<'c, 'd> {
    fn new(ctx: &'c Ctx<'d>) -> Self {
        Self {
            members: Vec::new(),
            memory: ctx.reservation(),
        }
    }

    /// Bytes that may still be held: all members together stay within
    /// [`crate::Limits::max_in_memory`] and the input's memory budget.
    fn room(&self, ctx: &Ctx<'_>) -> u64 {
        ctx.discovery
            .limits
            .max_in_memory
            .saturating_sub(self.memory.bytes())
            .min(ctx.memory_left())
    }

    /// Reads `member`, of `size` bytes as its header says (the tar reader
    /// reads no more), into one buffer: grown, a buffer would leave copies
    /// behind that are not wiped.
    fn hold(&mut self, inner: String, folder: &str, file: &str, size: u64, member: &mut dyn Read) {
        let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
        let error = member.read_to_end(&mut bytes).err();
        // Within `room`, which the caller checked: the tar reader gives no
        // more than the header's size.
        let _ = self
            .memory
            .grow(bytes.capacity() as u64 + HeldMember::names_len(&inner, folder, file));
        // (HeldMember::memory counts the same.)
        self.members.push(HeldMember {
            inner,
            folder: folder.to_owned(),
            file: file.to_owned(),
            bytes,
            error,
        });
    }

    /// The members held for `folder`, in tar order.
    fn take(&mut self, folder: &str) -> Vec<HeldMember> {
        let (taken, kept): (Vec<HeldMember>, _) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| m.folder == folder);
        self.members = kept;
        // Given back now: the caller scans them and drops them.
        let bytes: u64 = taken.iter().map(HeldMember::memory).sum();
        self.memory.shrink_to(self.memory.bytes().saturating_sub(bytes));
        taken
    }
}

impl HeldMember {
    /// The bytes of the names kept with a member: tar names can be long.
    fn names_len(inner: &str, folder: &str, file: &str) -> u64 {
        (inner.len() + folder.len() + file.len()) as u64
    }

    /// Its bytes and names, as reserved when it was held.
    fn memory(&self) -> u64 {
        self.bytes.capacity() as u64 + Self::names_len(&self.inner, &self.folder, &self.file)
    }

    /// Scans the member as a data file of `toc` when it lists it, else as
    /// any member.
    fn scan(self, ctx: &Ctx<'_>, toc: Option<&pgdump::Toc>, depth: u32, emit: &mut dyn FnMut(ObjectReport)) {
        let mut reader = Cursor::new(&self.bytes[..]).chain(Failing(self.error));
        match toc.and_then(|toc| Some((toc, toc.data_file(&self.file)?))) {
            Some((toc, data)) => pgdump::scan_data_file(ctx, self.inner, &mut reader, toc, data, emit),
            None => scan_stream(ctx, self.inner, &mut reader, depth + 1, emit),
        }
    }
}

/// A decoder of `codec` over `reader` whose memory ([`Codec::plan`]) is
/// reserved from the input's budget before each read, as it grows; a read
/// it does not fit in fails with the reason (a limit).
pub(crate) fn open_decoder<'a>(
    ctx: &'a Ctx<'_>,
    codec: Codec,
    mut reader: impl Read + 'a,
) -> io::Result<Box<dyn Read + 'a>> {
    // The first block or frame header says what the decoder needs.
    let mut head = Zeroizing::new(Vec::with_capacity(64));
    (&mut reader).take(64).read_to_end(&mut head)?;
    let plan = codec.plan(&head);
    let decoder = codec.decoder(Cursor::new(head).chain(reader), plan.window)?;
    Ok(Box::new(Charged {
        inner: decoder,
        what: codec.kind().as_str(),
        plan,
        out: 0,
        memory: ctx.reservation(),
    }))
}

/// A decoder and the memory reserved for it.
struct Charged<'c, 'd, R> {
    inner: R,
    what: &'static str,
    plan: codec::Plan,
    /// Bytes that came out so far.
    out: u64,
    memory: Reserved<'c, 'd>,
}

impl<R: Read> Read for Charged<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // At most this much more comes out of one read (and so the
        // dictionary grows at most to hold it).
        let len = buf.len().min(256 << 10);
        let buf = &mut buf[..len];
        let needed = self.plan.memory(self.out + buf.len() as u64);
        if needed > self.memory.bytes() && !self.memory.grow(needed - self.memory.bytes()) {
            let what = format!("its {} decoder", self.what);
            return Err(io::Error::other(LimitHit(memory_reason(
                self.memory.ctx,
                &what,
                needed,
            ))));
        }
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        Ok(n)
    }
}

/// A compressed stream: its content is an object of its own
/// (`app.log.xz!app.log`), or, for a compressed tar, the tar's members are
/// (`backup.tar.zst!2024/orders.csv`).
fn scan_compressed(
    ctx: &Ctx<'_>,
    name: String,
    reader: &mut dyn Read,
    codec: Codec,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(name, codec.kind());
    let consumed = Cell::new(0u64);
    let counting = Counting {
        inner: reader,
        count: &consumed,
    };
    let decoder = match open_decoder(ctx, codec, counting) {
        Ok(d) => d,
        Err(e) => {
            report.degrade(Status::Skipped, archive_reason(codec.kind().as_str(), &e));
            emit(report);
            return;
        }
    };
    let mut bounded = Bounded::counted(ctx, decoder, &consumed);
    let (head, error) = read_head(&mut bounded);
    if head.is_empty()
        && let Some(e) = error
    {
        report.degrade(Status::Skipped, archive_reason(codec.kind().as_str(), &e));
        emit(report);
        return;
    }
    let inner = format!("{}!{}", report.path, codec.inner_name(&report.path));
    let kind = classify(&inner, &head);
    let mut failing = Failing(error);
    let broken = failing.0.is_some();
    {
        let rest: &mut dyn Read = if broken { &mut failing } else { &mut bounded };
        let mut chained = Cursor::new(head).chain(rest);
        if kind == Sniffed::Tar {
            // backup.tar.gz!2024/orders.csv, not backup.tar.gz!backup.tar!2024/orders.csv.
            let mut tar_report = Vec::new();
            scan_tar(ctx, report.path.clone(), &mut chained, depth, &mut |r| {
                if r.kind == ObjectKind::Tar && r.path == report.path {
                    tar_report.push(r);
                } else {
                    emit(r);
                }
            });
            for r in tar_report {
                report.kind = ObjectKind::Tar;
                if r.status != Status::Complete {
                    report.degrade(r.status, r.reason.unwrap_or_default());
                }
            }
        } else {
            dispatch(ctx, inner, &mut chained, kind, depth + 1, emit);
        }
    }
    report.bytes = bounded.expanded();
    emit(report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Sniffed::Zip);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Sniffed::Compressed(Codec::Gzip));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Sniffed::Tar);
        assert_eq!(sniff(b"hello"), Sniffed::Text);
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Pdf);
        assert_eq!(sniff(b"see %PDF-1.7"), Sniffed::Text);
        assert_eq!(sniff(b"PGDMP\x01\x0e\x00"), Sniffed::PgDump);
        assert_eq!(sniff(b"7z\xbc\xaf\x27\x1c\x00\x04"), Sniffed::Unread("7z"));
        assert_eq!(sniff(b"Rar!\x1a\x07\x01\x00"), Sniffed::Unread("RAR"));
        assert_eq!(sniff(b"\x2a\x5d-lh5-\x10\x00"), Sniffed::Unread("LZH"));
        assert_eq!(sniff(b"a;-lh5-x"), Sniffed::Unread("LZH"));
        assert_eq!(sniff(b"a;-lhx x"), Sniffed::Text);
    }
}
