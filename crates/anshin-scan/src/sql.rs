//! SQL dumps (`pg_dump`, `mysqldump`), read as tables: every value of an
//! `INSERT INTO t (cols) VALUES (…),(…)` (or `… SELECT v, …` of literals) or
//! of a `COPY t (cols) FROM stdin;` block is a cell of table `t`, under its
//! column's name. The column list comes from the statement, or else from the
//! table's `CREATE TABLE`.
//!
//! The dump is read as a byte stream (never whole): a small tokenizer walks
//! the statements, and each table's rows are handed to the detectors as
//! tab-separated text in chunks, the column names as its header row, so a
//! column name works as context exactly as a CSV header does. Findings carry
//! the table, the row (1-based, per table, in dump order), the field and the
//! column name, plus the line, column and byte offset of the value in the
//! dump (exact unless the value holds escape sequences before the finding).
//!
//! Strings follow the dialect: backslash escapes once the dump shows itself
//! as MySQL (a backquoted name or its header), PostgreSQL's doubled quotes
//! otherwise; `COPY` data uses COPY's own escapes. A value longer than
//! [`MAX_VALUE`] is cut (the dump ends `partial`); broken syntax makes the
//! reader skip to the next `;`, never fail.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use anshin_detect::{CsvLayout, TextEncoding};
use zeroize::Zeroizing;

use crate::container::{Ctx, Reserved, limit_reason};
use crate::{ObjectKind, ObjectReport, Status};

/// Longest value kept whole.
const MAX_VALUE: usize = 1 << 20;
/// Most tables whose `CREATE TABLE` column lists are remembered.
const MAX_TABLES: usize = 10_000;
/// Most columns remembered for one table.
const MAX_COLUMNS: usize = 4096;

/// Whether an object is read as a SQL dump: `.sql` by name, or standard
/// input whose first bytes are a dump's.
pub(crate) fn is_sql(name: &str, head: &[u8]) -> bool {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    if base.to_ascii_lowercase().ends_with(".sql") {
        return true;
    }
    name == "-"
        && [
            &b"-- PostgreSQL database dump"[..],
            b"-- MySQL dump",
            b"-- MariaDB dump",
        ]
        .iter()
        .any(|m| memchr::memmem::find(head, m).is_some())
}

/// Where a byte is in the dump.
#[derive(Debug, Clone, Copy, Default)]
struct Pos {
    offset: u64,
    line: usize,
    /// 1-based, in characters.
    column: usize,
}

#[derive(Debug)]
enum Tok {
    /// A bare word or literal (`INSERT`, `public.orders`, `42`, `NULL`).
    Word(String),
    /// A quoted name (`` `orders` ``, `"orders"`).
    Name(String),
    /// A string literal, unescaped.
    Str(Zeroizing<String>),
    /// `(`, `)`, `,`, `;`.
    Punct(u8),
    Eof,
}

/// The byte stream with its position.
struct Src<R> {
    r: R,
    pos: Pos,
    error: Option<std::io::Error>,
    mysql: bool,
    cut: bool,
    /// Bytes that are not UTF-8 were replaced.
    lossy: bool,
    /// A `-` or `/` taken while looking for a comment, and where it was.
    carry: Option<(u8, Pos)>,
}

impl<R: BufRead> Src<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            pos: Pos {
                offset: 0,
                line: 1,
                column: 1,
            },
            error: None,
            mysql: false,
            cut: false,
            lossy: false,
            carry: None,
        }
    }

    /// Dumps are UTF-8 (both tools' default); anything else is replaced
    /// and the object flagged.
    fn text(&mut self, bytes: &[u8]) -> String {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                self.lossy = true;
                String::from_utf8_lossy(bytes).into_owned()
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        match self.r.fill_buf() {
            Ok(b) => b.first().copied(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.peek(),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.r.consume(1);
        self.pos.offset += 1;
        if b == b'\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else if b & 0xC0 != 0x80 {
            self.pos.column += 1;
        }
        Some(b)
    }

    /// Skips white space and comments (`--`, `#`, `/* */`). A `-` or `/`
    /// that does not open a comment is consumed all the same (the buffer may
    /// end between two bytes) and carried into the next word.
    fn skip_blank(&mut self) {
        while self.carry.is_none() {
            match self.peek() {
                Some(b) if b.is_ascii_whitespace() => {
                    self.next();
                }
                Some(b'#') => self.skip_line(),
                Some(c @ (b'-' | b'/')) => {
                    let pos = self.pos;
                    self.next();
                    match (c, self.peek()) {
                        (b'-', Some(b'-')) => self.skip_line(),
                        (b'/', Some(b'*')) => {
                            self.next();
                            let mut star = false;
                            while let Some(b) = self.next() {
                                if star && b == b'/' {
                                    break;
                                }
                                star = b == b'*';
                            }
                        }
                        _ => self.carry = Some((c, pos)),
                    }
                }
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.next() {
            if b == b'\n' {
                break;
            }
        }
    }

    /// The next token and where it starts.
    fn token(&mut self) -> (Tok, Pos) {
        self.skip_blank();
        if let Some((c, pos)) = self.carry.take() {
            return (Tok::Word(self.word(vec![c])), pos);
        }
        let pos = self.pos;
        let Some(b) = self.peek() else {
            return (Tok::Eof, pos);
        };
        match b {
            b'(' | b')' | b',' | b';' => {
                self.next();
                (Tok::Punct(b), pos)
            }
            b'\'' => {
                self.next();
                // A value starts after its quote.
                let inside = self.pos;
                (Tok::Str(self.string(b'\'')), inside)
            }
            // MySQL's double quotes delimit strings, PostgreSQL's names.
            b'"' if self.mysql => {
                self.next();
                let inside = self.pos;
                (Tok::Str(self.string(b'"')), inside)
            }
            b'`' | b'"' => {
                self.next();
                if b == b'`' {
                    self.mysql = true;
                }
                // Names are short: they are not values, but a column list.
                let name = self.string(b);
                (Tok::Name(name.chars().take(128).collect()), pos)
            }
            _ => (Tok::Word(self.word(Vec::new())), pos),
        }
    }

    /// A bare word or literal, after the bytes already taken.
    fn word(&mut self, mut word: Vec<u8>) -> String {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b',' | b';' | b'\'' | b'`' | b'"') {
                break;
            }
            self.next();
            if word.len() < MAX_VALUE {
                word.push(b);
            }
        }
        self.text(&word)
    }

    /// A quoted string after its opening quote: doubled quotes, and
    /// backslash escapes in MySQL dumps.
    fn string(&mut self, quote: u8) -> Zeroizing<String> {
        let mut out = Zeroizing::new(Vec::new());
        let escapes = self.mysql && quote != b'`';
        loop {
            // The run up to the next quote (or backslash) is copied at once:
            // values are most of a dump's bytes.
            let run = self.run(|buf| {
                if escapes {
                    memchr::memchr2(quote, b'\\', buf)
                } else {
                    memchr::memchr(quote, buf)
                }
            });
            if run > 0 {
                let buf = self.r.fill_buf().unwrap_or_default();
                let room = MAX_VALUE.saturating_sub(out.len());
                self.cut |= room < run;
                out.extend_from_slice(&buf[..run.min(room)]);
                self.r.consume(run);
                continue;
            }
            let Some(b) = self.next() else {
                break;
            };
            let c = if b == quote {
                if self.peek() == Some(quote) {
                    self.next();
                    quote
                } else {
                    break;
                }
            } else if b == b'\\' && self.mysql && quote != b'`' {
                match self.next() {
                    Some(b'n') => b'\n',
                    Some(b't') => b'\t',
                    Some(b'r') => b'\r',
                    Some(b'0') => 0,
                    Some(b'Z') => 0x1A,
                    Some(e) => e,
                    None => break,
                }
            } else {
                b
            };
            if out.len() < MAX_VALUE {
                out.push(c);
            } else {
                self.cut = true;
            }
        }
        Zeroizing::new(self.text(&out))
    }

    /// How many bytes from here, within the buffered bytes, come before the
    /// first byte `stop` finds; the position is moved past them (the caller
    /// then consumes them). 0 at a stop byte or at the end.
    fn run(&mut self, stop: impl Fn(&[u8]) -> Option<usize>) -> usize {
        let buf = match self.r.fill_buf() {
            Ok(b) => b,
            Err(_) => return 0,
        };
        let n = stop(buf).unwrap_or(buf.len());
        let run = &buf[..n];
        let chars = |b: &[u8]| b.iter().filter(|&&c| c & 0xC0 != 0x80).count();
        self.pos.offset += n as u64;
        match memchr::memrchr(b'\n', run) {
            Some(last) => {
                self.pos.line += memchr::memchr_iter(b'\n', run).count();
                self.pos.column = 1 + chars(&run[last + 1..]);
            }
            None => self.pos.column += chars(run),
        }
        n
    }

    /// Skips to the end of the statement (a `;` outside strings).
    fn skip_statement(&mut self) {
        loop {
            match self.token().0 {
                Tok::Punct(b';') | Tok::Eof => return,
                _ => {}
            }
        }
    }
}

/// A table name: `orders`, `public.orders`, `"public"."orders"`.
fn table_name(tok: Tok) -> Option<String> {
    match tok {
        Tok::Word(w) => Some(w.replace('"', "")),
        Tok::Name(n) => Some(n),
        _ => None,
    }
}

/// Column-definition lines of a CREATE TABLE that are not columns.
const NOT_COLUMNS: [&str; 9] = [
    "PRIMARY",
    "KEY",
    "UNIQUE",
    "CONSTRAINT",
    "INDEX",
    "FOREIGN",
    "CHECK",
    "FULLTEXT",
    "SPATIAL",
];

/// One value and where it starts in the dump.
struct Cell {
    value: Zeroizing<String>,
    pos: Pos,
}

/// Where a cell landed in the tab-separated text of a chunk.
#[derive(Clone, Copy)]
struct Placed {
    pos: Pos,
    tsv_start: usize,
}

/// The rows of the table being read, turned into tab-separated text and
/// scanned a chunk at a time.
struct Table<'c, 'd> {
    ctx: &'c Ctx<'d>,
    /// What the findings listed take.
    listed: Reserved<'c, 'd>,
    name: String,
    columns: Vec<String>,
    /// Column names that may be printed (the header check of CSV).
    printable: Vec<bool>,
    tsv: Zeroizing<String>,
    /// Per record of the chunk, where each cell is.
    placed: Vec<Vec<Placed>>,
    layout: Option<CsvLayout>,
    /// Records (header included) scanned before this chunk.
    records_before: usize,
    /// Where the statement that started the table is (for its header row).
    start: Pos,
}

impl<'c, 'd> Table<'c, 'd> {
    fn new(ctx: &'c Ctx<'d>) -> Self {
        Self {
            ctx,
            listed: ctx.reservation(),
            name: String::new(),
            columns: Vec::new(),
            printable: Vec::new(),
            tsv: Zeroizing::new(String::new()),
            placed: Vec::new(),
            layout: None,
            records_before: 0,
            start: Pos::default(),
        }
    }

    /// Rows of `name` under `columns` follow; a different table (or column
    /// list) ends the one before.
    fn start(&mut self, name: String, columns: Vec<String>, start: Pos, report: &mut ObjectReport) {
        // Printed in every finding: cut, and masked as file names are.
        let name = crate::mask_card_numbers(name.chars().take(128).collect());
        if name == self.name && columns == self.columns {
            return;
        }
        self.flush(report);
        self.printable = columns
            .iter()
            .map(|c| self.ctx.discovery.header_is_clean(c))
            .collect();
        self.name = name;
        self.columns = columns;
        self.layout = None;
        self.records_before = 0;
        self.start = start;
    }

    fn push_row(&mut self, cells: &[Cell], report: &mut ObjectReport) {
        if self.layout.is_none() && self.tsv.is_empty() {
            // The header row: column names as a CSV header.
            let mut row = Vec::new();
            for (i, c) in self.columns.iter().enumerate() {
                if i > 0 {
                    self.tsv.push('\t');
                }
                row.push(Placed {
                    pos: self.start,
                    tsv_start: self.tsv.len(),
                });
                crate::office::push_field(&mut self.tsv, c);
            }
            self.tsv.push('\n');
            self.placed.push(row);
        }
        let mut row = Vec::with_capacity(cells.len());
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.tsv.push('\t');
            }
            let quoted = c.value.contains(['\t', '\n', '\r', '"']);
            row.push(Placed {
                pos: c.pos,
                tsv_start: self.tsv.len() + usize::from(quoted),
            });
            crate::office::push_field(&mut self.tsv, &c.value);
        }
        self.tsv.push('\n');
        self.placed.push(row);
        if self.tsv.len() >= self.ctx.discovery.limits.chunk {
            self.flush(report);
        }
    }

    /// Scans the rows held and gives each finding its table, row, column
    /// name and place in the dump.
    fn flush(&mut self, report: &mut ObjectReport) {
        if self.tsv.is_empty() {
            return;
        }
        let (out, layout) = self.ctx.discovery.scanner().scan_csv_chunk(
            self.tsv.as_bytes(),
            TextEncoding::Utf8,
            0,
            Some(b'\t'),
            self.layout.take(),
        );
        for mut f in out.findings {
            let Some(rec) = f.locator.record.as_mut() else {
                continue;
            };
            let record = rec.row;
            let placed = record
                .checked_sub(self.records_before + 1)
                .and_then(|i| self.placed.get(i))
                .and_then(|row| row.get(rec.field.saturating_sub(1)).or(row.first()))
                .copied()
                .unwrap_or(Placed {
                    pos: self.start,
                    tsv_start: f.locator.byte_offset,
                });
            let inner = self
                .tsv
                .get(placed.tsv_start.min(f.locator.byte_offset)..f.locator.byte_offset)
                .unwrap_or("");
            let newlines = inner.matches('\n').count();
            f.locator.byte_offset = usize::try_from(placed.pos.offset).unwrap_or(usize::MAX) + inner.len();
            f.locator.line = placed.pos.line + newlines;
            f.locator.column = match inner.rfind('\n') {
                Some(i) => inner[i + 1..].chars().count() + 1,
                None => placed.pos.column + inner.chars().count(),
            };
            // Data rows count from 1; the header row is row 0.
            rec.row = record.saturating_sub(1);
            let column = rec.field.checked_sub(1);
            rec.header = column
                .filter(|&i| self.printable.get(i).copied().unwrap_or(false))
                .and_then(|i| self.columns.get(i))
                .map(|c| c.chars().take(64).collect());
            rec.table = Some(self.name.clone());
            report.list(self.ctx, f, &mut self.listed);
        }
        self.records_before = layout.records();
        self.layout = Some(layout);
        self.tsv = Zeroizing::new(String::new());
        self.placed.clear();
    }
}

/// Reads a dump and scans every table's values.
pub(crate) fn scan(ctx: &Ctx<'_>, path: String, reader: &mut dyn Read) -> ObjectReport {
    read(ctx, path, reader, None)
}

/// Reads the data of one `COPY … FROM stdin` statement (a table of a
/// `pg_dump` archive, or its data file): data lines up to `\.` or the end, scanned as the
/// table and columns the statement names. Positions (line, column, byte
/// offset) are in the data, its first line being line 1. The report has no
/// path: it is a part of the archive's.
pub(crate) fn scan_copy(ctx: &Ctx<'_>, statement: &str, data: &mut dyn Read) -> ObjectReport {
    read(ctx, String::new(), data, Some(statement))
}

/// A dump's statements, or with `copy` the data lines of that COPY statement.
fn read(ctx: &Ctx<'_>, path: String, reader: &mut dyn Read, copy: Option<&str>) -> ObjectReport {
    let mut report = ObjectReport::new(path, ObjectKind::Sql);
    report.encoding = Some(TextEncoding::Utf8);
    let counted = Counted {
        inner: reader,
        ctx,
        bytes: 0,
    };
    let mut src = Src::new(BufReader::with_capacity(64 << 10, counted));
    let mut table = Table::new(ctx);
    match copy {
        None => statements(&mut src, &mut table, &mut report, ctx),
        Some(statement) => {
            let mut head = Src::new(statement.as_bytes());
            let parsed = match head.token().0 {
                Tok::Word(w) if w.eq_ignore_ascii_case("COPY") => copy_statement(&mut head),
                _ => None,
            };
            match parsed {
                Some((name, columns)) => {
                    let start = src.pos;
                    copy_rows(&mut src, &mut table, name, columns, start, &mut report, ctx);
                }
                None => report.degrade(
                    Status::Partial,
                    "not a COPY … FROM stdin statement: its data was not read",
                ),
            }
            if ctx.deadline.passed() {
                report.degrade(Status::Partial, ctx.deadline.reason());
            }
        }
    }
    table.flush(&mut report);
    report.bytes = src.r.get_ref().bytes;
    report.decode_errors |= src.lossy;
    if let Some(e) = src.error {
        report.degrade(Status::Partial, limit_reason(&e));
    }
    if src.cut {
        report.degrade(
            Status::Partial,
            format!("a value longer than {MAX_VALUE} bytes was cut"),
        );
    }
    report
}

/// The statements of a dump, one after the other.
fn statements<R: BufRead>(
    src: &mut Src<R>,
    table: &mut Table<'_, '_>,
    report: &mut ObjectReport,
    ctx: &Ctx<'_>,
) {
    let mut created: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        if ctx.deadline.passed() {
            report.degrade(Status::Partial, ctx.deadline.reason());
            break;
        }
        let (tok, pos) = src.token();
        let Tok::Word(word) = tok else {
            match tok {
                Tok::Eof => break,
                Tok::Punct(b';') => continue,
                _ => {
                    src.skip_statement();
                    continue;
                }
            }
        };
        match word.to_ascii_uppercase().as_str() {
            "INSERT" | "REPLACE" => insert(src, &created, table, pos, report, ctx),
            "COPY" => copy(src, table, pos, report, ctx),
            "CREATE" => create(src, &mut created),
            _ => src.skip_statement(),
        }
    }
}

/// Counts bytes for the report and the progress bar.
struct Counted<'r, 'c, 'd> {
    inner: &'r mut dyn Read,
    ctx: &'c Ctx<'d>,
    bytes: u64,
}

impl Read for Counted<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.ctx.discovery.count_bytes(n);
        Ok(n)
    }
}

/// `( a, b, … )` after its `(`: the names.
fn name_list<R: BufRead>(src: &mut Src<R>) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match src.token().0 {
            Tok::Word(w) if names.len() < MAX_COLUMNS => names.push(w),
            Tok::Name(n) if names.len() < MAX_COLUMNS => names.push(n),
            Tok::Punct(b')') | Tok::Punct(b';') | Tok::Eof => return names,
            _ => {}
        }
    }
}

/// `CREATE TABLE [IF NOT EXISTS] name ( col type …, … )`: remembers the columns.
fn create<R: BufRead>(src: &mut Src<R>, created: &mut HashMap<String, Vec<String>>) {
    let mut name = None;
    let mut table = false;
    loop {
        match src.token().0 {
            Tok::Word(w) if w.eq_ignore_ascii_case("TABLE") && !table => table = true,
            Tok::Word(w)
                if [
                    "IF",
                    "NOT",
                    "EXISTS",
                    "TEMPORARY",
                    "TEMP",
                    "UNLOGGED",
                    "GLOBAL",
                    "LOCAL",
                ]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)) => {}
            Tok::Punct(b'(') if name.is_some() => break,
            t @ (Tok::Word(_) | Tok::Name(_)) if table && name.is_none() => name = table_name(t),
            Tok::Punct(b';') | Tok::Eof => return,
            _ => {
                // CREATE INDEX, VIEW, FUNCTION…, CREATE TABLE … AS SELECT: no column list.
                src.skip_statement();
                return;
            }
        }
    }
    let mut columns = Vec::new();
    let mut depth = 1u32;
    let mut item_start = true;
    while depth > 0 {
        let tok = src.token().0;
        match tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => depth -= 1,
            Tok::Punct(b',') if depth == 1 => {
                item_start = true;
                continue;
            }
            Tok::Punct(b';') | Tok::Eof => break,
            Tok::Word(w)
                if item_start
                    && depth == 1
                    && columns.len() < MAX_COLUMNS
                    && !NOT_COLUMNS.iter().any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                columns.push(w);
            }
            Tok::Name(n) if item_start && depth == 1 && columns.len() < MAX_COLUMNS => columns.push(n),
            _ => {}
        }
        item_start = false;
    }
    src.skip_statement();
    if let Some(name) = name
        && (created.len() < MAX_TABLES || created.contains_key(&name))
    {
        created.insert(name, columns);
    }
}

/// `INSERT [IGNORE] INTO name [(cols)] VALUES (…), (…);`, or `… SELECT …`
/// with literal values.
fn insert<R: BufRead>(
    src: &mut Src<R>,
    created: &HashMap<String, Vec<String>>,
    table: &mut Table<'_, '_>,
    start: Pos,
    report: &mut ObjectReport,
    ctx: &Ctx<'_>,
) {
    let mut name = None;
    let mut columns = None;
    let select = loop {
        match src.token().0 {
            Tok::Word(w) if w.eq_ignore_ascii_case("VALUES") || w.eq_ignore_ascii_case("VALUE") => {
                break false;
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("SELECT") && name.is_some() => break true,
            Tok::Word(w) if w.eq_ignore_ascii_case("INTO") && name.is_none() => {
                name = src_table(src);
            }
            Tok::Punct(b'(') if name.is_some() && columns.is_none() => columns = Some(name_list(src)),
            Tok::Punct(b';') | Tok::Eof => return,
            Tok::Punct(b'(') => {
                // INSERT … (SELECT …) or something else: not rows of values.
                src.skip_statement();
                return;
            }
            _ => {}
        }
    };
    let Some(name) = name else {
        src.skip_statement();
        return;
    };
    let columns = columns
        .or_else(|| created.get(&name).cloned())
        .unwrap_or_default();
    table.start(name, columns, start, report);
    if select {
        return select_rows(src, table, report, ctx);
    }
    loop {
        if ctx.deadline.passed() {
            return;
        }
        match src.token().0 {
            Tok::Punct(b'(') => {
                let cells = row_values(src);
                table.push_row(&cells, report);
            }
            Tok::Punct(b',') => {}
            Tok::Punct(b';') | Tok::Eof => return,
            _ => {
                // ON DUPLICATE KEY UPDATE, RETURNING…
                src.skip_statement();
                return;
            }
        }
    }
}

/// Words that end a select list (the clauses after it).
const AFTER_SELECT_LIST: [&str; 9] = [
    "WHERE",
    "GROUP",
    "HAVING",
    "WINDOW",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "ON",
    "RETURNING",
];

/// The rows of `SELECT v, … [UNION [ALL] SELECT v, …]…` after the first
/// `SELECT`, to the end of the statement: each select list is a row of
/// literal values, unless it reads a table (`FROM`), when it is left out.
/// Clauses after a list (`WHERE NOT EXISTS (…)`, `ON CONFLICT`…) are skipped.
fn select_rows<R: BufRead>(
    src: &mut Src<R>,
    table: &mut Table<'_, '_>,
    report: &mut ObjectReport,
    ctx: &Ctx<'_>,
) {
    let mut cells = Vec::new();
    let mut current: Option<Cell> = None;
    let mut depth = 0u32;
    // Before the list (`ALL`, `DISTINCT`, `SELECT` after a `UNION`), after it,
    // after `AS` (an alias follows), and whether it reads a table.
    let (mut before, mut after, mut alias, mut from) = (true, false, false, false);
    loop {
        let (tok, pos) = src.token();
        let word = match &tok {
            Tok::Word(w) if depth == 0 => Some(w.to_ascii_uppercase()),
            _ => None,
        };
        match (tok, word.as_deref()) {
            (Tok::Punct(b';') | Tok::Eof, _) | (_, Some("UNION" | "INTERSECT" | "EXCEPT")) => {
                if !from {
                    cells.push(current.take().unwrap_or_else(|| empty(pos)));
                    table.push_row(&cells, report);
                }
                if src.peek().is_none() || ctx.deadline.passed() || word.is_none() {
                    return;
                }
                cells.clear();
                current = None;
                (before, after, alias, from) = (true, false, false, false);
                continue;
            }
            (_, Some("ALL" | "DISTINCT" | "SELECT")) if before => continue,
            (_, Some("FROM")) => from = true,
            (_, Some(w)) if AFTER_SELECT_LIST.contains(&w) => after = true,
            (_, Some("AS")) => alias = true,
            (Tok::Punct(b'('), _) => depth += 1,
            (Tok::Punct(b')'), _) => depth = depth.saturating_sub(1),
            _ if after || from => {}
            _ if alias => alias = false,
            (Tok::Punct(b','), _) if depth == 0 => {
                cells.push(current.take().unwrap_or_else(|| empty(pos)));
                if cells.len() > MAX_COLUMNS {
                    src.cut = true;
                    after = true;
                }
            }
            (Tok::Punct(_), _) => {}
            (Tok::Word(w), _) if w.eq_ignore_ascii_case("NULL") => {}
            (Tok::Str(s), _) => append(&mut current, &s, pos),
            (Tok::Name(n) | Tok::Word(n), _) => append(&mut current, &n, pos),
        }
        before = false;
    }
}

/// The table name after INTO (or COPY), schema included.
fn src_table<R: BufRead>(src: &mut Src<R>) -> Option<String> {
    let (tok, _) = src.token();
    let mut name = table_name(tok)?;
    loop {
        match src.peek() {
            // "public"."orders": a quoted schema, then `.` read as a word, then the name.
            Some(b'.') => {
                src.next();
                if let Some(part) = table_name(src.token().0) {
                    name = format!("{name}.{part}");
                }
            }
            // public."顧客" (pg_dump quotes any name but lower-case ASCII):
            // the word took the `.`, the quoted name follows.
            Some(b'"' | b'`') if name.ends_with('.') => match table_name(src.token().0) {
                Some(part) => name.push_str(&part),
                None => break,
            },
            _ => break,
        }
    }
    Some(name)
}

/// The values of one row after its `(`, up to the matching `)`.
fn row_values<R: BufRead>(src: &mut Src<R>) -> Vec<Cell> {
    let mut cells = Vec::new();
    let mut current: Option<Cell> = None;
    let mut depth = 0u32;
    loop {
        let (tok, pos) = src.token();
        match tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') if depth > 0 => depth -= 1,
            Tok::Punct(b')') | Tok::Eof | Tok::Punct(b';') => {
                cells.push(current.take().unwrap_or_else(|| empty(pos)));
                return cells;
            }
            Tok::Punct(b',') if depth == 0 => {
                cells.push(current.take().unwrap_or_else(|| empty(pos)));
                if cells.len() > MAX_COLUMNS {
                    src.cut = true;
                }
            }
            Tok::Punct(_) => {}
            Tok::Str(s) => append(&mut current, &s, pos),
            Tok::Name(n) => append(&mut current, &n, pos),
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => {}
            Tok::Word(w) => append(&mut current, &w, pos),
        }
    }
}

fn empty(pos: Pos) -> Cell {
    Cell {
        value: Zeroizing::new(String::new()),
        pos,
    }
}

fn append(current: &mut Option<Cell>, text: &str, pos: Pos) {
    match current {
        Some(c) => {
            if c.value.len() < MAX_VALUE {
                c.value.push(' ');
                c.value.push_str(text);
            }
        }
        None => {
            *current = Some(Cell {
                value: Zeroizing::new(text.to_owned()),
                pos,
            });
        }
    }
}

/// `COPY name (cols) FROM stdin;` and its data lines, up to `\.`.
fn copy<R: BufRead>(
    src: &mut Src<R>,
    table: &mut Table<'_, '_>,
    start: Pos,
    report: &mut ObjectReport,
    ctx: &Ctx<'_>,
) {
    let Some((name, columns)) = copy_statement(src) else {
        return;
    };
    // The data starts on the next line.
    while let Some(b) = src.next() {
        if b == b'\n' {
            break;
        }
    }
    copy_rows(src, table, name, columns, start, report, ctx);
}

/// The table and columns of a `COPY name (cols) FROM stdin;` after its
/// `COPY`, up to its `;`; `None` for another COPY (to a file, a program…).
fn copy_statement<R: BufRead>(src: &mut Src<R>) -> Option<(String, Vec<String>)> {
    let Some(name) = src_table(src) else {
        src.skip_statement();
        return None;
    };
    let mut columns = Vec::new();
    let mut from_stdin = false;
    loop {
        match src.token().0 {
            Tok::Punct(b'(') => columns = name_list(src),
            Tok::Word(w) if w.eq_ignore_ascii_case("STDIN") => from_stdin = true,
            Tok::Punct(b';') | Tok::Eof => break,
            _ => {}
        }
    }
    from_stdin.then_some((name, columns))
}

/// COPY data lines as rows of `name`, up to the end marker `\.` or the end.
fn copy_rows<R: BufRead>(
    src: &mut Src<R>,
    table: &mut Table<'_, '_>,
    name: String,
    columns: Vec<String>,
    start: Pos,
    report: &mut ObjectReport,
    ctx: &Ctx<'_>,
) {
    table.start(name, columns, start, report);
    loop {
        if ctx.deadline.passed() || src.peek().is_none() {
            return;
        }
        match copy_line(src) {
            Some(cells) => table.push_row(&cells, report),
            None => return,
        }
    }
}

/// One COPY data line: tab-separated fields with COPY's escapes, `\N` null;
/// `None` for the end marker `\.`.
fn copy_line<R: BufRead>(src: &mut Src<R>) -> Option<Vec<Cell>> {
    let mut cells = Vec::new();
    let mut pos = src.pos;
    let mut value = Zeroizing::new(Vec::new());
    let line_start = src.pos.offset;
    // The line so far is `\.`: alone on its line (CRLF allowed) it ends the data.
    let mut end_marker = false;
    loop {
        let at_start = src.pos.offset == line_start;
        // Plain bytes up to the next tab, line end or escape, at once (not
        // while a marker may be ending: its CR is looked at byte by byte).
        let run = if end_marker {
            0
        } else {
            src.run(|buf| memchr::memchr3(b'\t', b'\n', b'\\', buf))
        };
        if run > 0 {
            let buf = src.r.fill_buf().unwrap_or_default();
            let room = MAX_VALUE.saturating_sub(value.len());
            src.cut |= room < run;
            value.extend_from_slice(&buf[..run.min(room)]);
            src.r.consume(run);
            continue;
        }
        let b = src.next();
        match b {
            None | Some(b'\n') if end_marker => return None,
            Some(b'\r') if end_marker => {}
            None | Some(b'\n') | Some(b'\t') => {
                if value.as_slice() == b"\\N" {
                    value.clear();
                }
                cells.push(Cell {
                    value: Zeroizing::new(src.text(&value)),
                    pos,
                });
                value.clear();
                pos = src.pos;
                if b != Some(b'\t') {
                    return Some(cells);
                }
            }
            Some(b'\\') => {
                let escaped = src.next();
                end_marker = at_start && escaped == Some(b'.');
                let c = match escaped {
                    Some(b'n') => b'\n',
                    Some(b't') => b'\t',
                    Some(b'r') => b'\r',
                    Some(b'N') => {
                        // Kept as \N: a null when it is the whole field.
                        value.push(b'\\');
                        b'N'
                    }
                    Some(e) => e,
                    None => continue,
                };
                if value.len() < MAX_VALUE {
                    value.push(c);
                } else {
                    src.cut = true;
                }
            }
            Some(c) => {
                end_marker = false;
                if value.len() < MAX_VALUE {
                    value.push(c);
                } else {
                    src.cut = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_by_name_or_by_their_first_bytes_on_stdin() {
        assert!(is_sql("backup/Shop.SQL", b""));
        assert!(is_sql("x.zip!dump.sql", b""));
        assert!(is_sql("-", b"--\n-- PostgreSQL database dump\n"));
        assert!(is_sql("-", b"-- MySQL dump 10.13  Distrib 8.0"));
        assert!(!is_sql("-", b"INSERT INTO t VALUES (1);"));
        assert!(!is_sql("notes.txt", b"-- MySQL dump"));
    }

    fn tokens(dump: &[u8]) -> Vec<String> {
        let mut src = Src::new(dump);
        let mut out = Vec::new();
        loop {
            match src.token().0 {
                Tok::Eof => return out,
                Tok::Word(w) => out.push(format!("w:{w}")),
                Tok::Name(n) => out.push(format!("n:{n}")),
                Tok::Str(s) => out.push(format!("s:{}", s.as_str())),
                Tok::Punct(p) => out.push(format!("p:{}", char::from(p))),
            }
        }
    }

    #[test]
    fn comments_signs_and_quotes_tokenize() {
        assert_eq!(
            tokens(b"-- c\n/* x; */ INSERT INTO \"T\" VALUES (-1, 'a''b', 0.5); # c\n"),
            [
                "w:INSERT", "w:INTO", "n:T", "w:VALUES", "p:(", "w:-1", "p:,", "s:a'b", "p:,", "w:0.5",
                "p:)", "p:;"
            ]
        );
        // Backslashes are escapes once the dump shows itself as MySQL.
        assert_eq!(tokens(b"`t` 'a\\'b\\n' \"q\""), ["n:t", "s:a'b\n", "s:q"]);
        assert_eq!(tokens(b"'a\\' \"q\""), ["s:a\\", "n:q"]);
        assert_eq!(tokens(b"1-2 /x - 3"), ["w:1-2", "w:/x", "w:-", "w:3"]);
    }

    /// Regression: `public."顧客"` (a bare schema, a quoted table, as
    /// pg_dump writes a name that is not lower-case ASCII) was the table
    /// `public.`.
    #[test]
    fn table_names_join_bare_and_quoted_parts() {
        for (text, name) in [
            ("public.\"顧客\" (", "public.顧客"),
            ("\"public\".\"Orders\" (", "public.Orders"),
            ("\"crm\".contacts (", "crm.contacts"),
            ("public.orders (", "public.orders"),
        ] {
            assert_eq!(
                src_table(&mut Src::new(text.as_bytes())).as_deref(),
                Some(name),
                "{text}"
            );
        }
    }

    #[test]
    fn copy_data_ends_only_at_its_marker() {
        let rows = |data: &[u8]| {
            let mut src = Src::new(BufReader::with_capacity(1, data));
            let mut out = Vec::new();
            while let Some(cells) = copy_line(&mut src) {
                out.push(
                    cells
                        .iter()
                        .map(|c| c.value.as_str().to_owned())
                        .collect::<Vec<_>>()
                        .join("|"),
                );
                if src.peek().is_none() {
                    break;
                }
            }
            (out, src.pos.offset)
        };
        let (got, end) = rows(b"1\\.x\t\\N\n\\x\n\\.\r\nINSERT");
        assert_eq!(got, ["1.x|", "x"]);
        assert_eq!(end, 15, "stops right after the marker line");
        assert_eq!(rows(b"a\tb\n\\.").0, ["a|b"]);
    }
}
