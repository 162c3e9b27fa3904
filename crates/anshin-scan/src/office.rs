//! Office documents inside their zip: the text of Word documents (docx) and
//! PowerPoint slides (pptx), and the cells of Excel workbooks (xlsx), read
//! with quick-xml.
//!
//! A docx part or a slide becomes plain text (a line per paragraph, tabs and
//! breaks kept), so a value split over formatting runs is seen whole: Word's
//! `w:p`/`w:t` and DrawingML's `a:p`/`a:t` share their local names, so one
//! reader serves both. A slide's number is its place in the presentation's
//! slide list, not the number in its part name. A worksheet
//! becomes tab-separated text with one record per row and one field per
//! column (shared strings resolved, phonetic readings left out), scanned in
//! CSV mode so that the first row works as a header; findings are then
//! given the sheet's own row and column. Byte offsets of findings in these
//! parts refer to the extracted text, not to the XML.

use std::io::{BufRead, Read};

use quick_xml::Reader;
use quick_xml::events::Event;
use zeroize::Zeroizing;

use crate::Deadline;
use crate::container::LimitHit;

/// Which kind of office document a zip is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Office {
    Docx,
    Xlsx,
    Pptx,
    /// OpenDocument (odt, ods, …): everything is in `content.xml`.
    Odf,
}

/// Recognises a document by its parts' names.
pub(crate) fn kind<S: AsRef<str>>(names: impl Iterator<Item = S>) -> Option<Office> {
    let (mut content, mut manifest) = (false, false);
    for n in names {
        match n.as_ref() {
            "word/document.xml" => return Some(Office::Docx),
            "xl/workbook.xml" => return Some(Office::Xlsx),
            "ppt/presentation.xml" => return Some(Office::Pptx),
            "content.xml" => content = true,
            "META-INF/manifest.xml" => manifest = true,
            _ => {}
        }
    }
    (content && manifest).then_some(Office::Odf)
}

/// The parts read as document text rather than as raw XML.
pub(crate) fn is_text_part(office: Office, name: &str) -> bool {
    match office {
        Office::Docx => {
            let Some(rest) = name.strip_prefix("word/") else {
                return false;
            };
            !rest.contains('/')
                && rest.ends_with(".xml")
                && [
                    "document",
                    "header",
                    "footer",
                    "footnotes",
                    "endnotes",
                    "comments",
                ]
                .iter()
                .any(|p| rest.starts_with(p))
        }
        Office::Xlsx => name.starts_with("xl/worksheets/") && name.ends_with(".xml"),
        Office::Pptx => {
            let leaf = |dir: &str, stem: &str| {
                name.strip_prefix(dir)
                    .and_then(|rest| rest.strip_prefix(stem))
                    .and_then(|rest| rest.strip_suffix(".xml"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            leaf("ppt/slides/", "slide") || leaf("ppt/notesSlides/", "notesSlide")
        }
        Office::Odf => name == "content.xml",
    }
}

/// Checks the per-file deadline every few thousand XML events (reading the
/// clock at every event would cost more than the parsing), the first event
/// included. A parser stopped by it returns early with what it has; the
/// text scan that follows sees the deadline passed and reports the part
/// `partial` with the `time_limit` reason.
struct Pacer<'a> {
    deadline: &'a Deadline,
    events: u32,
}

impl<'a> Pacer<'a> {
    fn new(deadline: &'a Deadline) -> Self {
        Self { deadline, events: 0 }
    }

    fn stop(&mut self) -> bool {
        self.events = self.events.wrapping_add(1);
        self.events % 4096 == 1 && self.deadline.passed()
    }
}

/// Why a part could not be read.
#[derive(Debug)]
pub(crate) struct XmlError(pub String);

fn xml_err(e: impl std::fmt::Display) -> XmlError {
    XmlError(format!("malformed XML: {e}"))
}

/// Memory a cell held for its row takes besides its text: its slot in the
/// row (a column and a `String`) and the allocation's own.
const CELL_OVERHEAD: usize = 64;

/// `Err` once a part has yielded more than `max` bytes of text: a few
/// bytes of XML can stand for many more (a shared string in every cell, a
/// cell in the last column padded with 16,383 tabs), and the text is held
/// in memory. Checked before each XML event, so the text stays within
/// `max` plus what one event adds.
fn check_yield(produced: usize, max: usize) -> Result<(), XmlError> {
    if produced > max {
        return Err(XmlError(format!(
            "the text of this part is larger than {} MiB (twice the part and 1 MiB, or what this \
             input had left of its memory budget, --max-memory)",
            max >> 20
        )));
    }
    Ok(())
}

/// Pushes the character an entity reference stands for.
fn push_ref(out: &mut String, name: &str) {
    let c = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => quick_xml::events::BytesRef::new(name)
            .resolve_char_ref()
            .ok()
            .flatten(),
    };
    if let Some(c) = c {
        out.push(c);
    }
}

/// The text of a Word part or a slide: `t` contents, a line per paragraph.
/// `tab` elements inside a tab-stop list (Word's `w:tabs`, DrawingML's
/// `a:tabLst`) are stop positions, not characters, and add nothing.
pub(crate) fn paragraph_text(
    xml: &str,
    deadline: &Deadline,
    max_out: usize,
) -> Result<Zeroizing<String>, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut pacer = Pacer::new(deadline);
    let mut out = Zeroizing::new(String::new());
    let mut in_text = false;
    let mut tab_stops = 0u32;
    loop {
        check_yield(out.len(), max_out)?;
        if pacer.stop() {
            break;
        }
        match reader.read_event().map_err(xml_err)? {
            Event::Start(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "tabs" | "tabLst" => tab_stops += 1,
                "tab" if tab_stops == 0 => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" if tab_stops == 0 => out.push('\t'),
                "br" | "cr" | "p" => out.push('\n'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "tabs" | "tabLst" => tab_stops = tab_stops.saturating_sub(1),
                "p" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()),
            Event::CData(t) if in_text => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => push_ref(&mut out, &r),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The slide parts of a presentation in slide-show order, from the slide
/// list of `ppt/presentation.xml` (`p:sldId r:id`) and the targets of those
/// relationships in `ppt/_rels/presentation.xml.rels`. Slide N is the N-th
/// name returned.
pub(crate) fn slide_order(
    presentation: &str,
    rels: &str,
    deadline: &Deadline,
) -> Result<Vec<String>, XmlError> {
    let mut ids = Vec::new();
    let mut reader = Reader::from_str(presentation);
    let mut pacer = Pacer::new(deadline);
    loop {
        if pacer.stop() {
            break;
        }
        match reader.read_event().map_err(xml_err)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sldId" => {
                // r:id (the relationship), not the bare id (a slide number).
                let id = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == "id" && a.key.prefix().is_some());
                if let Some(a) = id {
                    ids.push(a.value.into_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let targets = relationships(rels, "ppt/presentation.xml", deadline)?;
    Ok(ids
        .iter()
        .filter_map(|id| targets.iter().find(|(i, _)| i == id).map(|(_, t)| t.clone()))
        .collect())
}

/// The relationships of a part (from its `_rels/*.rels`): id and target
/// part, the target resolved against the source part's folder.
pub(crate) fn relationships(
    rels: &str,
    source: &str,
    deadline: &Deadline,
) -> Result<Vec<(String, String)>, XmlError> {
    let folder = source.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut out = Vec::new();
    let mut reader = Reader::from_str(rels);
    let mut pacer = Pacer::new(deadline);
    loop {
        if pacer.stop() {
            break;
        }
        match reader.read_event().map_err(xml_err)? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned())
                };
                if let (Some(id), Some(target)) = (attr("Id"), attr("Target")) {
                    out.push((id, resolve_part(folder, &target)));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// A relationship target as a part name: absolute (`/ppt/x.xml`) or
/// relative to `folder`, `..` segments applied.
fn resolve_part(folder: &str, target: &str) -> String {
    let mut parts: Vec<&str> = match target.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => folder.split('/').filter(|p| !p.is_empty()).collect(),
    };
    for seg in target.trim_start_matches('/').split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// The shared-string table of a workbook: the strings one after another in
/// one buffer and where each ends, so a table of many short strings takes
/// no more memory than its XML (a `String` each would take 40 bytes more).
#[derive(Default)]
pub(crate) struct SharedStrings {
    text: Zeroizing<String>,
    ends: Vec<u32>,
    /// Most bytes held.
    max: usize,
}

impl SharedStrings {
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j] as usize);
        self.text.get(start..end)
    }

    /// Bytes held.
    pub(crate) fn memory(&self) -> u64 {
        (self.text.capacity() + self.ends.capacity() * 4) as u64
    }

    fn push(&mut self, s: &str) -> Result<(), XmlError> {
        let needed = self.text.len() + s.len();
        if needed + (self.ends.len() + 1) * 4 > self.max {
            return Err(XmlError(format!(
                "shared strings larger than {} MiB (half of what this input had left of its memory \
                 budget, --max-memory)",
                self.max >> 20
            )));
        }
        if needed > self.text.capacity() {
            // A fresh buffer, the old one wiped: growing in place would
            // leave an unwiped copy behind.
            let mut bigger = Zeroizing::new(String::with_capacity(
                needed.max(self.text.capacity() * 2).max(4096),
            ));
            bigger.push_str(&self.text);
            self.text = bigger;
        }
        self.text.push_str(s);
        let end = u32::try_from(self.text.len())
            .map_err(|_| XmlError("shared strings larger than 4 GiB".to_owned()))?;
        self.ends.push(end);
        Ok(())
    }
}

/// The shared-string table of a workbook (`xl/sharedStrings.xml`), phonetic
/// readings (`rPh`) left out.
/// read from its XML as a stream, holding at most `max` bytes.
pub(crate) fn shared_strings(
    xml: impl BufRead,
    deadline: &Deadline,
    max: usize,
) -> Result<SharedStrings, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut event = Zeroizing::new(Vec::new());
    let mut pacer = Pacer::new(deadline);
    let mut out = SharedStrings {
        text: Zeroizing::new(String::new()),
        ends: Vec::new(),
        max,
    };
    let mut current = Zeroizing::new(String::new());
    let (mut in_si, mut in_t, mut phonetic) = (false, false, 0u32);
    loop {
        if pacer.stop() {
            break;
        }
        event.clear();
        match reader.read_event_into(&mut event).map_err(xml_err)? {
            Event::Start(e) => match e.local_name().as_ref() {
                "si" => {
                    in_si = true;
                    current.clear();
                }
                "t" => in_t = true,
                "rPh" => phonetic += 1,
                _ => {}
            },
            Event::Empty(e) if e.local_name().as_ref() == "si" => out.push("")?,
            Event::End(e) => match e.local_name().as_ref() {
                "si" => {
                    in_si = false;
                    out.push(&current)?;
                    current.clear();
                }
                "t" => in_t = false,
                "rPh" => phonetic = phonetic.saturating_sub(1),
                _ => {}
            },
            Event::Text(t) if in_si && in_t && phonetic == 0 => current.push_str(&t.xml10_content()),
            Event::CData(t) if in_si && in_t && phonetic == 0 => current.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_si && in_t && phonetic == 0 => push_ref(&mut current, &r),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Most columns a sheet row is laid out to (Excel's own limit).
const MAX_COLUMNS: u32 = 16_384;

/// `B12` → (12, 2): row and 1-based column.
fn cell_ref(r: &str) -> Option<(u32, u32)> {
    let split = r.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = r.split_at(split);
    if letters.is_empty() || letters.len() > 3 {
        return None;
    }
    let mut col = 0u32;
    for b in letters.bytes() {
        if !b.is_ascii_uppercase() {
            return None;
        }
        col = col * 26 + u32::from(b - b'A' + 1);
    }
    Some((digits.parse().ok()?, col))
}

pub(crate) fn push_field(out: &mut String, value: &str) {
    if value.contains(['\t', '\n', '\r', '"']) {
        out.push('"');
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// Most rows a sheet has (Excel's own limit): rows skipped before one are
/// written as empty records, so that record N is the sheet's row
/// `first_row + N - 1`; a row number past this (or not after the row
/// before) is taken as the next row.
const MAX_ROWS: u32 = 1 << 20;

/// A worksheet read from its XML as a stream of tab-separated text, a
/// record per row and a field per column: the XML is never held whole, so
/// a sheet of any size is read (an order export of a million rows), within
/// the per-file time limit. The sheet's row `first_row() + N - 1` is
/// record N. One row at a time is held, at most `max_row` bytes of it.
pub(crate) struct SheetReader<'a, R: BufRead> {
    xml: Reader<R>,
    /// The XML of the event being read (cell values among it).
    event: Zeroizing<Vec<u8>>,
    shared: &'a SharedStrings,
    pacer: Pacer<'a>,
    max_row: usize,
    /// The rows made and not yet read, and how much of them is read.
    out: Zeroizing<String>,
    at: usize,
    /// The row being read: its number and cells (column, text), and their
    /// bytes once written.
    row: u32,
    cells: Vec<(u32, Zeroizing<String>)>,
    pending: usize,
    col: u32,
    cell_type: String,
    value: Zeroizing<String>,
    in_v: bool,
    in_t: bool,
    in_cell: bool,
    phonetic: u32,
    /// The first row written, and the last.
    first: Option<u32>,
    last: u32,
    done: bool,
}

impl<'a, R: BufRead> SheetReader<'a, R> {
    pub(crate) fn new(xml: R, shared: &'a SharedStrings, deadline: &'a Deadline, max_row: usize) -> Self {
        Self {
            xml: Reader::from_reader(xml),
            event: Zeroizing::new(Vec::with_capacity(64 << 10)),
            shared,
            pacer: Pacer::new(deadline),
            max_row,
            out: Zeroizing::new(String::with_capacity(64 << 10)),
            at: 0,
            row: 0,
            cells: Vec::new(),
            pending: 0,
            col: 0,
            cell_type: String::new(),
            value: Zeroizing::new(String::new()),
            in_v: false,
            in_t: false,
            in_cell: false,
            phonetic: 0,
            first: None,
            last: 0,
            done: false,
        }
    }

    /// The sheet row of record 1 (1 before any row is read).
    pub(crate) fn first_row(&self) -> u32 {
        self.first.unwrap_or(1)
    }

    /// Reads XML events until a row is written to `out` or the sheet ends.
    fn step(&mut self) -> Result<(), XmlError> {
        while self.out.is_empty() && !self.done {
            if self.pending + self.value.len() > self.max_row {
                return Err(XmlError(format!(
                    "a row of this sheet is larger than {} MiB (half of what this input had left \
                     of its memory budget, --max-memory, at most 32 MiB)",
                    self.max_row >> 20
                )));
            }
            if self.pacer.stop() {
                self.done = true;
                break;
            }
            self.event.clear();
            let reading = (self.in_v || self.in_t) && self.phonetic == 0;
            match self.xml.read_event_into(&mut self.event).map_err(xml_err)? {
                Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "row" => {
                    let r = e
                        .try_get_attribute("r")
                        .ok()
                        .flatten()
                        .and_then(|a| a.value.parse::<u32>().ok());
                    self.row = match r {
                        Some(r) if r > self.row && r <= MAX_ROWS => r,
                        _ => self.row.saturating_add(1),
                    };
                    self.col = 0;
                    self.cells.clear();
                    self.pending = 0;
                }
                Event::Start(e) if e.local_name().as_ref() == "c" => {
                    let r = e.try_get_attribute("r").ok().flatten();
                    self.col = r
                        .and_then(|a| cell_ref(&a.value))
                        .map_or(self.col + 1, |(_, c)| c);
                    self.cell_type = e
                        .try_get_attribute("t")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned())
                        .unwrap_or_default();
                    self.value.clear();
                    self.in_cell = true;
                }
                Event::Empty(e) if e.local_name().as_ref() == "c" => {
                    let r = e.try_get_attribute("r").ok().flatten();
                    self.col = r
                        .and_then(|a| cell_ref(&a.value))
                        .map_or(self.col + 1, |(_, c)| c);
                }
                Event::Start(e) => match e.local_name().as_ref() {
                    "v" if self.in_cell => self.in_v = true,
                    "t" if self.in_cell => self.in_t = true,
                    "rPh" => self.phonetic += 1,
                    _ => {}
                },
                Event::End(e) => match e.local_name().as_ref() {
                    "v" => self.in_v = false,
                    "t" => self.in_t = false,
                    "rPh" => self.phonetic = self.phonetic.saturating_sub(1),
                    "c" => self.end_cell(),
                    "row" => self.end_row(),
                    _ => {}
                },
                // A cell's value, not a phonetic reading.
                Event::Text(t) if reading => self.value.push_str(&t.xml10_content()),
                Event::CData(t) if reading => self.value.push_str(&t.xml10_content()),
                Event::GeneralRef(r) if reading => push_ref(&mut self.value, &r),
                Event::Eof => self.done = true,
                _ => {}
            }
        }
        Ok(())
    }

    fn end_cell(&mut self) {
        self.in_cell = false;
        let resolved = if self.cell_type == "s" {
            self.value
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|i| self.shared.get(i))
                .map(|s| Zeroizing::new(s.to_owned()))
                .unwrap_or_default()
        } else {
            std::mem::take(&mut self.value)
        };
        if (1..=MAX_COLUMNS).contains(&self.col) && !resolved.is_empty() {
            // The field, quoted at worst, the tabs before it, and the
            // cell's own slot and allocation.
            self.pending += resolved.len() * 2 + 2 + self.col as usize + CELL_OVERHEAD;
            self.cells.push((self.col, resolved));
        }
        self.value = Zeroizing::new(String::new());
    }

    /// Writes the row's cells (with empty records for the rows skipped
    /// since the last one written).
    fn end_row(&mut self) {
        if self.cells.is_empty() {
            return;
        }
        let skipped = match self.first {
            None => {
                self.first = Some(self.row);
                0
            }
            Some(_) => self.row.saturating_sub(self.last).saturating_sub(1) as usize,
        };
        self.last = self.row;
        let needed = skipped + self.pending;
        if self.out.capacity() < needed {
            // A fresh buffer: growing would leave an unwiped copy behind.
            self.out = Zeroizing::new(String::with_capacity(needed));
        }
        self.out.extend(std::iter::repeat_n('\n', skipped));
        self.cells.sort_by_key(|(c, _)| *c);
        let mut next = 1;
        for (c, v) in &self.cells {
            while next < *c {
                self.out.push('\t');
                next += 1;
            }
            push_field(&mut self.out, v);
        }
        self.out.push('\n');
        self.cells.clear();
        self.pending = 0;
    }
}

impl<R: BufRead> Read for SheetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            self.step().map_err(|e| std::io::Error::other(LimitHit(e.0)))?;
        }
        let rest = &self.out.as_bytes()[self.at..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// What an OpenDocument `content.xml` holds: the text of its paragraphs
/// outside tables, and each table (spreadsheet sheet) as tab-separated text
/// with the sheet row of each record.
#[derive(Default)]
pub(crate) struct OdfContent {
    pub text: Zeroizing<String>,
    pub tables: Vec<OdfTable>,
}

/// One table of an OpenDocument file.
#[derive(Default)]
pub(crate) struct OdfTable {
    pub name: String,
    pub tsv: Zeroizing<String>,
    pub rows: Vec<u32>,
}

/// Most rows or columns one repeat attribute may skip (ODF writes the empty
/// rest of a sheet as one repeated row).
const MAX_REPEAT: u32 = 1 << 20;

fn repeat(e: &quick_xml::events::BytesStart<'_>, attr: &str) -> u32 {
    e.try_get_attribute(attr)
        .ok()
        .flatten()
        .and_then(|a| a.value.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_REPEAT)
}

/// Where text goes: the current cell, or the document text.
fn sink<'a>(in_cell: bool, cell: &'a mut String, text: &'a mut String) -> &'a mut String {
    if in_cell { cell } else { text }
}

/// Parses `content.xml` of an odt, ods or odp file.
pub(crate) fn odf_content(xml: &str, deadline: &Deadline, max_out: usize) -> Result<OdfContent, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut pacer = Pacer::new(deadline);
    let mut out = OdfContent::default();
    let mut table: Option<OdfTable> = None;
    let mut cells: Vec<(u32, Zeroizing<String>)> = Vec::new();
    // Bytes of the finished tables, and of `cells` with the tabs before them.
    let (mut done, mut pending) = (0usize, 0usize);
    let (mut row, mut col) = (0u32, 0u32);
    let (mut row_repeat, mut col_repeat) = (1u32, 1u32);
    let mut cell = Zeroizing::new(String::new());
    let mut in_cell = false;
    // Depth of text:p / text:h elements we are inside.
    let mut para = 0u32;
    loop {
        let current = table.as_ref().map_or(0, |t| t.tsv.len() + t.rows.len() * 4);
        check_yield(out.text.len() + done + current + pending + cell.len(), max_out)?;
        if pacer.stop() {
            // Keep the rows of a table cut short by the deadline.
            if let Some(t) = table.take() {
                out.tables.push(t);
            }
            break;
        }
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::Start(e) => match e.name().as_ref() {
                "table:table" => {
                    let name = e
                        .try_get_attribute("table:name")
                        .ok()
                        .flatten()
                        .map(|a| a.value.chars().filter(|c| !c.is_control()).take(64).collect())
                        .unwrap_or_default();
                    table = Some(OdfTable {
                        name,
                        ..OdfTable::default()
                    });
                    row = 0;
                }
                "table:table-row" => {
                    row_repeat = repeat(&e, "table:number-rows-repeated");
                    row = row.saturating_add(1);
                    col = 0;
                    cells.clear();
                    pending = 0;
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    col_repeat = repeat(&e, "table:number-columns-repeated");
                    col = col.saturating_add(1);
                    cell.clear();
                    in_cell = true;
                }
                "text:p" | "text:h" => {
                    if para > 0 || (in_cell && !cell.is_empty()) {
                        sink(in_cell, &mut cell, &mut out.text).push('\n');
                    }
                    para += 1;
                }
                "text:span" | "text:a" => {}
                _ => {}
            },
            Event::Empty(e) => match e.name().as_ref() {
                "table:table-row" => row = row.saturating_add(repeat(&e, "table:number-rows-repeated")),
                "table:table-cell" | "table:covered-table-cell" => {
                    col = col.saturating_add(repeat(&e, "table:number-columns-repeated"))
                }
                "text:s" if para > 0 => {
                    let n = repeat(&e, "text:c").min(64);
                    sink(in_cell, &mut cell, &mut out.text).extend(std::iter::repeat_n(' ', n as usize));
                }
                "text:tab" if para > 0 => sink(in_cell, &mut cell, &mut out.text).push('\t'),
                "text:line-break" if para > 0 => sink(in_cell, &mut cell, &mut out.text).push('\n'),
                _ => {}
            },
            Event::End(e) => match e.name().as_ref() {
                "text:p" | "text:h" => {
                    para = para.saturating_sub(1);
                    if para == 0 && !in_cell {
                        out.text.push('\n');
                    }
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    in_cell = false;
                    if !cell.is_empty() && col <= MAX_COLUMNS {
                        pending += cell.len() * 2 + 2 + col as usize + CELL_OVERHEAD;
                        cells.push((col, std::mem::take(&mut cell)));
                    }
                    cell = Zeroizing::new(String::new());
                    col = col.saturating_add(col_repeat - 1);
                }
                "table:table-row" => {
                    if let Some(t) = table.as_mut()
                        && !cells.is_empty()
                    {
                        let mut next = 1;
                        for (c, v) in &cells {
                            while next < *c {
                                t.tsv.push('\t');
                                next += 1;
                            }
                            push_field(&mut t.tsv, v);
                        }
                        t.tsv.push('\n');
                        t.rows.push(row);
                    }
                    cells.clear();
                    pending = 0;
                    row = row.saturating_add(row_repeat - 1);
                }
                "table:table" => {
                    if let Some(t) = table.take() {
                        done += t.tsv.len() + t.rows.len() * 4;
                        out.tables.push(t);
                    }
                }
                _ => {}
            },
            Event::Text(t) if para > 0 => {
                sink(in_cell, &mut cell, &mut out.text).push_str(&t.xml10_content())
            }
            Event::CData(t) if para > 0 => {
                sink(in_cell, &mut cell, &mut out.text).push_str(&t.xml10_content())
            }
            Event::GeneralRef(r) if para > 0 => push_ref(sink(in_cell, &mut cell, &mut out.text), &r),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docx_paragraphs_join_runs() {
        let xml = r#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>カード番号：</w:t></w:r><w:r><w:t>4111 1111</w:t></w:r><w:r><w:t xml:space="preserve"> 1111 1111</w:t></w:r></w:p><w:p><w:r><w:t>A&amp;B</w:t><w:tab/><w:t>x</w:t></w:r></w:p></w:body></w:document>"#;
        let text = paragraph_text(xml, &Deadline::none(), usize::MAX).expect("parse");
        assert_eq!(text.as_str(), "カード番号：4111 1111 1111 1111\nA&B\tx\n");
    }

    #[test]
    fn slides_and_tab_stops() {
        // DrawingML: tab stops in a:tabLst are not text; a:br breaks the line.
        let slide = r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:pPr><a:tabLst><a:tab pos="914400" algn="l"/></a:tabLst></a:pPr><a:r><a:t>カード番号：</a:t></a:r><a:r><a:t>4111</a:t></a:r><a:br><a:rPr/></a:br><a:r><a:t>next</a:t></a:r></a:p><a:p><a:r><a:t>x</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#;
        let text = paragraph_text(slide, &Deadline::none(), usize::MAX).expect("parse");
        assert_eq!(text.as_str(), "カード番号：4111\nnext\nx\n");
        // Word's tab stops (w:tabs) likewise.
        let doc = r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>a</w:t><w:tab/><w:t>b</w:t></w:r></w:p>"#;
        assert_eq!(
            paragraph_text(doc, &Deadline::none(), usize::MAX)
                .expect("parse")
                .as_str(),
            "a\tb\n"
        );

        let presentation = r#"<p:presentation xmlns:p="p" xmlns:r="r"><p:sldIdLst><p:sldId id="257" r:id="rId3"/><p:sldId id="256" r:id="rId2"/></p:sldIdLst></p:presentation>"#;
        let rels = r#"<Relationships><Relationship Id="rId1" Type="t/slideMaster" Target="slideMasters/slideMaster1.xml"/><Relationship Id="rId2" Type="t/slide" Target="slides/slide1.xml"/><Relationship Id="rId3" Type="t/slide" Target="/ppt/slides/slide2.xml"/></Relationships>"#;
        assert_eq!(
            slide_order(presentation, rels, &Deadline::none()).expect("parse"),
            vec!["ppt/slides/slide2.xml", "ppt/slides/slide1.xml"]
        );
        assert_eq!(
            resolve_part("ppt/notesSlides", "../slides/slide3.xml"),
            "ppt/slides/slide3.xml"
        );
        assert_eq!(
            resolve_part("ppt", "/ppt/slides/slide1.xml"),
            "ppt/slides/slide1.xml"
        );
        assert_eq!(resolve_part("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert!(is_text_part(Office::Pptx, "ppt/slides/slide12.xml"));
        assert!(is_text_part(Office::Pptx, "ppt/notesSlides/notesSlide1.xml"));
        assert!(!is_text_part(Office::Pptx, "ppt/slides/_rels/slide1.xml.rels"));
        assert!(!is_text_part(Office::Pptx, "ppt/slideLayouts/slideLayout1.xml"));
        assert_eq!(kind(["ppt/presentation.xml"].into_iter()), Some(Office::Pptx));
    }

    #[test]
    fn sheets_resolve_shared_strings_and_keep_columns() {
        let sst = r#"<sst><si><t>氏名</t></si><si><r><t>山田</t></r><r><t> 太郎</t></r><rPh><t>ヤマダタロウ</t></rPh></si><si><t>カード番号</t></si></sst>"#;
        let shared = shared_strings(sst.as_bytes(), &Deadline::none(), usize::MAX).expect("parse");
        // Held within `max`: text and an offset each.
        assert!(shared_strings(sst.as_bytes(), &Deadline::none(), 40).is_err());
        assert!(shared.memory() >= 4 * 3);
        assert_eq!(shared.get(2), Some("カード番号"));
        assert_eq!(shared.get(1), Some("山田 太郎"));
        assert_eq!(shared.get(3), None);
        let sheet = r#"<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="s"><v>2</v></c></row><row r="5"><c r="A5" t="s"><v>1</v></c><c r="C5" t="inlineStr"><is><t>4111-1111</t></is></c><c r="D5"><v>12</v></c></row></sheetData></worksheet>"#;
        // Rows 2–4 are empty records: record N is row N.
        let (tsv, first) = sheet_text(sheet, &shared, usize::MAX).expect("parse");
        assert_eq!(tsv, "氏名\t\tカード番号\n\n\n\n山田 太郎\t\t4111-1111\t12\n");
        assert_eq!(first, 1);
        // A sheet that starts at row 3: record 1 is row 3. A row number
        // not after the one before, or past Excel's last row, is the next
        // (4, 5, then 6 follows).
        let late = r#"<sheetData><row r="3"><c r="B3"><v>1</v></c></row><row r="2"><c><v>2</v></c></row><row r="9999999"><c><v>3</v></c></row><row r="6"><c><v>4</v></c></row></sheetData>"#;
        assert_eq!(
            sheet_text(late, &shared, usize::MAX).expect("parse"),
            ("\t1\n2\n3\n4\n".to_owned(), 3)
        );
        // A row larger than the limit is an error, not memory.
        let wide = format!("<row>{}</row>", r#"<c t="s"><v>1</v></c>"#.repeat(100));
        assert!(sheet_text(&wide, &shared, 4096).is_err());
        assert!(sheet_text(&wide, &shared, 1 << 20).is_ok());
    }

    /// A worksheet read through [`SheetReader`], and its first row.
    fn sheet_text(xml: &str, shared: &SharedStrings, max_row: usize) -> std::io::Result<(String, u32)> {
        let deadline = Deadline::none();
        let mut reader = SheetReader::new(xml.as_bytes(), shared, &deadline, max_row);
        let mut out = String::new();
        reader.read_to_string(&mut out)?;
        Ok((out, reader.first_row()))
    }

    #[test]
    fn odf_text_and_tables() {
        let xml = r#"<office:document-content><office:body><office:text><text:p>氏名：<text:span>山田</text:span><text:s/>太郎</text:p><text:h>見出し</text:h></office:text><office:spreadsheet><table:table table:name="注文"><table:table-row><table:table-cell><text:p>氏名</text:p></table:table-cell><table:table-cell table:number-columns-repeated="2"/><table:table-cell><text:p>カード番号</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="1024"/></table:table-row><table:table-row><table:table-cell><text:p>鈴木</text:p><text:p>一郎</text:p></table:table-cell><table:table-cell table:number-columns-repeated="2"/><table:table-cell office:value-type="string"><text:p>4111 1111</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#;
        let c = odf_content(xml, &Deadline::none(), usize::MAX).expect("parse");
        assert_eq!(c.text.as_str(), "氏名：山田 太郎\n見出し\n");
        assert_eq!(c.tables.len(), 1);
        assert_eq!(c.tables[0].name, "注文");
        assert_eq!(
            c.tables[0].tsv.as_str(),
            "氏名\t\t\tカード番号\n\"鈴木\n一郎\"\t\t\t4111 1111\n"
        );
        assert_eq!(c.tables[0].rows, vec![1, 5]);
    }

    #[test]
    fn cell_refs_parse() {
        assert_eq!(cell_ref("A1"), Some((1, 1)));
        assert_eq!(cell_ref("AB12"), Some((12, 28)));
        assert_eq!(cell_ref("XFD1048576"), Some((1_048_576, 16_384)));
        assert_eq!(cell_ref("1A"), None);
        assert_eq!(cell_ref("a1"), None);
    }

    #[test]
    fn parts_and_kinds() {
        assert_eq!(
            kind(["[Content_Types].xml", "word/document.xml"].into_iter()),
            Some(Office::Docx)
        );
        assert_eq!(kind(["xl/workbook.xml"].into_iter()), Some(Office::Xlsx));
        assert_eq!(kind(["a.txt"].into_iter()), None);
        assert_eq!(
            kind(["mimetype", "content.xml", "META-INF/manifest.xml"].into_iter()),
            Some(Office::Odf)
        );
        assert_eq!(kind(["content.xml"].into_iter()), None);
        assert!(is_text_part(Office::Docx, "word/header1.xml"));
        assert!(!is_text_part(Office::Docx, "word/styles.xml"));
        assert!(is_text_part(Office::Xlsx, "xl/worksheets/sheet1.xml"));
        assert!(!is_text_part(Office::Xlsx, "xl/styles.xml"));
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        assert!(paragraph_text("<w:p><w:t>unclosed</w:x>", &Deadline::none(), usize::MAX).is_err());
        let sheet = sheet_text(
            "<row r=\"x\"><c r=\"??\"><v>1</v></c></row>",
            &SharedStrings::default(),
            usize::MAX,
        );
        assert_eq!(sheet.expect("lenient"), ("1\n".to_owned(), 1));
        assert!(sheet_text("<row><c><v>1</v></x>", &SharedStrings::default(), usize::MAX).is_err());
    }
}
