//! CSV/TSV mode: a header row turns every cell of a column into labelled
//! context, and findings carry row and field numbers.
//!
//! The parser is a small RFC 4180 reader (quoted fields, doubled quotes,
//! line breaks inside quotes, CRLF). It never fails: malformed quoting just
//! runs to the end of the input, which is still scanned.

use crate::context::class::{ADDRESS, NAME};
use crate::finding::Category;
use crate::scan::{Engine, Region};

/// Classes that make a column something other than a name or address column
/// (お届け先電話番号 is a phone column).
const NOT_TEXT_COLUMN: u32 = !(NAME | ADDRESS | crate::context::class::CARD);

/// Picks the delimiter from the first line: the most frequent of `,` `\t` `;` `|`.
pub(crate) fn sniff_delimiter(text: &[u8]) -> u8 {
    let line = &text[..memchr::memchr(b'\n', text).unwrap_or(text.len())];
    [b',', b'\t', b';', b'|']
        .into_iter()
        .map(|d| (memchr::memchr_iter(d, line).count(), d))
        .max_by_key(|&(n, d)| (n, d == b','))
        .map_or(b',', |(_, d)| d)
}

/// Reads one record starting at `pos`; fills `cells` with content spans
/// (without quotes) and returns where the next record starts.
pub(crate) fn next_record(text: &[u8], mut pos: usize, delim: u8, cells: &mut Vec<(usize, usize)>) -> usize {
    cells.clear();
    let len = text.len();
    loop {
        if text.get(pos) == Some(&b'"') {
            let start = pos + 1;
            let mut j = start;
            let end = loop {
                match memchr::memchr(b'"', &text[j.min(len)..]) {
                    None => {
                        j = len;
                        break len;
                    }
                    Some(k) => {
                        let q = j + k;
                        if text.get(q + 1) == Some(&b'"') {
                            j = q + 2;
                            continue;
                        }
                        j = q + 1;
                        break q;
                    }
                }
            };
            cells.push((start, end));
            pos = j;
            while pos < len && text[pos] != delim && text[pos] != b'\n' {
                pos += 1;
            }
        } else {
            let start = pos;
            pos = memchr::memchr2(delim, b'\n', &text[pos.min(len)..]).map_or(len, |k| pos + k);
            let end = if pos > start && text[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            cells.push((start, end));
        }
        if pos >= len {
            return len;
        }
        if text[pos] == delim {
            pos += 1;
            continue;
        }
        return pos + 1;
    }
}

/// What CSV mode learnt from the first chunk of a file: the delimiter, the
/// column classes and headers, and how many records it has seen. Carried from
/// chunk to chunk so that a large file can be scanned in pieces.
#[derive(Clone)]
pub struct CsvLayout {
    pub(crate) delimiter: u8,
    pub(crate) columns: Vec<u32>,
    pub(crate) headers: Vec<String>,
    /// Records (rows, header included) read so far.
    pub(crate) records: usize,
}

impl std::fmt::Debug for CsvLayout {
    // Headers are column names, but a file without a real header row could put
    // a value there: print only their count.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvLayout")
            .field("delimiter", &char::from(self.delimiter))
            .field("columns", &self.columns.len())
            .field("records", &self.records)
            .finish()
    }
}

impl CsvLayout {
    /// Records (rows, header included) read so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Whether the first row was recognised as a header.
    pub fn has_header(&self) -> bool {
        !self.headers.is_empty()
    }

    pub(crate) fn headers(&self) -> &[String] {
        &self.headers
    }
}

/// Scans `text` as CSV. With `layout` `None` the first record decides the
/// layout (delimiter, header); otherwise `text` continues a file whose layout
/// is known and row numbers go on from it. Returns the layout after `text`.
pub(crate) fn scan(
    engine: &mut Engine<'_, '_>,
    text: &str,
    delimiter: Option<u8>,
    layout: Option<CsvLayout>,
) -> CsvLayout {
    let bytes = text.as_bytes();
    let mut cells = Vec::new();
    let (mut layout, mut pos) = match layout {
        Some(layout) => (layout, 0),
        None => {
            let delim = delimiter.unwrap_or_else(|| sniff_delimiter(bytes));
            let pos = next_record(bytes, 0, delim, &mut cells);
            let keywords = engine.keywords();
            let columns: Vec<u32> = cells
                .iter()
                .map(|&(s, e)| keywords.classify_header(text.get(s..e).unwrap_or("")))
                .collect();
            let has_header = columns.iter().any(|&c| c != 0);
            let headers: Vec<String> = if has_header {
                cells
                    .iter()
                    .map(|&(s, e)| text.get(s..e).unwrap_or("").chars().take(64).collect())
                    .collect()
            } else {
                Vec::new()
            };
            if !has_header && !bytes.is_empty() {
                scan_record(engine, &cells, &[], 1, 0, pos);
            }
            let records = usize::from(!bytes.is_empty());
            (
                CsvLayout {
                    delimiter: delim,
                    columns,
                    headers,
                    records,
                },
                pos,
            )
        }
    };
    while pos < bytes.len() {
        let start = pos;
        pos = next_record(bytes, pos, layout.delimiter, &mut cells);
        layout.records += 1;
        scan_record(engine, &cells, &layout.columns, layout.records, start, pos);
    }
    layout
}

/// One cell under a column whose header has the keyword classes `column`:
/// the header acts as a label right before the cell, and a name or address
/// column reports the whole non-empty cell. Shared by CSV records and
/// database cells ([`crate::Scanner::scan_cell`]).
pub(crate) fn scan_cell(engine: &mut Engine<'_, '_>, start: usize, end: usize, column: u32) {
    engine.scan_region(Region { start, end, column });
    if column & NOT_TEXT_COLUMN == 0 && column & (NAME | ADDRESS) != 0 {
        let category = if column & NAME != 0 {
            Category::Name
        } else {
            Category::Address
        };
        engine.cell_value(category, start, end);
    }
}

fn scan_record(
    engine: &mut Engine<'_, '_>,
    cells: &[(usize, usize)],
    columns: &[u32],
    row: usize,
    start: usize,
    end: usize,
) {
    let before = engine.out.len();
    if columns.is_empty() {
        // No header: the whole record is context for each value, like text.
        engine.scan_region(Region {
            start,
            end,
            column: 0,
        });
    } else {
        for (i, &(s, e)) in cells.iter().enumerate() {
            scan_cell(engine, s, e, columns.get(i).copied().unwrap_or(0));
        }
    }
    for c in &mut engine.out[before..] {
        let field = cells
            .iter()
            .position(|&(s, e)| c.start >= s && c.start <= e)
            .map_or(0, |k| k + 1);
        c.record = Some((row, field));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_and_crlf() {
        let text = b"a,\"b,\"\"c\"\"\",d\r\n\"multi\nline\",x\n";
        let mut cells = Vec::new();
        let next = next_record(text, 0, b',', &mut cells);
        let got: Vec<&[u8]> = cells.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, vec![&b"a"[..], b"b,\"\"c\"\"", b"d"]);
        let end = next_record(text, next, b',', &mut cells);
        let got: Vec<&[u8]> = cells.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, vec![&b"multi\nline"[..], b"x"]);
        assert_eq!(end, text.len());
    }

    #[test]
    fn sniffs_delimiters() {
        assert_eq!(sniff_delimiter(b"a\tb\tc\n1,2"), b'\t');
        assert_eq!(sniff_delimiter(b"a,b;c"), b',');
        assert_eq!(sniff_delimiter(b"plain"), b',');
    }

    #[test]
    fn unterminated_quote_runs_to_end() {
        let text = b"\"never closed, 4111";
        let mut cells = Vec::new();
        assert_eq!(next_record(text, 0, b',', &mut cells), text.len());
        assert_eq!(cells, vec![(1, text.len())]);
    }
}
