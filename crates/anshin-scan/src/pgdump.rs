//! `pg_dump -Fc` custom-format archives, the usual form of PostgreSQL
//! backups, read as a stream (no seeking: an archive inside a tar or a zip,
//! or on standard input, is read as one on disk is); and the tar-format
//! (`-Ft`) and directory-format (`-Fd`) dumps, whose `toc.dat` holds the same
//! header and table of contents and each table's data is a file of its own.
//!
//! The layout, as pg_dump writes it (`pg_backup_archiver.c`,
//! `pg_backup_custom.c`):
//!
//! - Integers are a sign byte then `int_size` bytes, little-endian; strings
//!   an integer length (negative: null) then that many bytes.
//! - The header: `PGDMP`, the archive version (major, minor, revision),
//!   `int_size`, `off_size`, the format (1: custom), the compression (from
//!   1.15 an algorithm byte: 0 none, 1 gzip, 2 lz4, 3 zstd; before, an
//!   integer zlib level, 0 for none), the creation time (seven integers),
//!   the database name, the server's and pg_dump's versions.
//! - The table of contents: a count, then per entry its dump id, whether it
//!   has data, its catalog ids, tag, description, section, definition, drop
//!   statement, COPY statement, namespace, tablespace, table access method,
//!   relkind (1.16), owner, "with oids", its dependencies (strings up to a
//!   null one) and where its data is (a flag byte, then `off_size` bytes;
//!   in a `toc.dat`, the name of its data file, `3344.dat`, empty for none).
//! - In a `toc.dat` (`pg_backup_tar.c`, `pg_backup_directory.c`) the format
//!   is 3 (tar: pg_dump writes it for a directory too; 5 is read as well)
//!   and nothing follows the table of contents.
//! - The data blocks, in dump order: a type byte (1: a table's data, 3:
//!   large objects), the dump id of its entry, then the data as chunks (an
//!   integer length, then that many bytes; a zero length ends the block).
//!   A compressed archive holds one zlib stream per block, cut into chunks.
//!   A large-object block holds, per object, its OID then its chunks; a zero
//!   OID ends it.
//!
//! Each table's data is read as the COPY block of a plain dump, under the
//! table and column names of its entry's COPY statement (`--inserts`
//! archives: as SQL statements), so its findings carry the same table, row,
//! field and column name; the archive is one object, as a `.sql` dump is.
//! Names, statements and data are in the database's encoding, which the
//! `ENCODING` entry names (`SET client_encoding = 'EUC_JP';`): they are
//! decoded from it ([`text_encoding`] lists those read; an archive in another
//! is read as UTF-8 and reported `partial`). Line, column and byte offset are
//! in the table's data as `pg_restore` prints it, decoded to UTF-8, its first
//! row being line 1. Each large object is an object of
//! its own (`dump.pgc!large-object-16400`) through the container dispatch
//! (a zip stored as a large object is opened). The schema (definitions,
//! comments) is not scanned, as in a plain dump.
//!
//! Tar and directory formats: a table's data file (`<dump id>.dat`, or
//! `<dump id>.dat.gz` as `pg_dump -Fd` writes it by default) is read as that
//! table's COPY data as above, from the table of contents of the `toc.dat`
//! beside it, and reported as an object of its own (`shop.dir/3344.dat.gz`,
//! `shop.tar!3344.dat`, kind `pg-dump`), line 1 its first row. In a tar
//! (`pg_dump -Ft`, also inside a gzip or a zip, read as a stream) the data
//! members of a folder are read with the `toc.dat` of that folder: pg_dump
//! writes it first, but a tarred directory-format dump has it wherever the
//! listing put it (`tar --sort=name` puts it last), so data files before it
//! are held in memory until it comes (all together within
//! `Limits::max_in_memory`; one that does not fit is read as text when it
//! comes, as are those whose `toc.dat` never comes). On disk the
//! walker reads files in parallel, in no order: each data file reads the
//! `toc.dat` beside it, the last few kept for the scan ([`TocCache`]). The
//! `toc.dat` itself is reported `complete` with no findings when it parses
//! (it holds names and the schema, not scanned, as above), `skipped` with
//! the reason when it does not. The tar's `restore.sql` is schema and
//! `COPY … FROM '$$PATH$$/3344.dat'` statements, scanned as any `.sql` file:
//! harmless, and a comment there may hold what is worth finding. What the
//! table of contents does not describe is read as any file (text, or a
//! compressed stream): a data file with no `toc.dat` beside it or one that
//! does not parse, a dump id it does not list, `blobs.toc` and the large
//! objects' `blob_<oid>.dat` files. Data files compressed with lz4 or zstd
//! (PostgreSQL 16+: `3344.dat.lz4`, `3344.dat.zst`) are decompressed as
//! gzip's are (see `codec`). A data file whose entry has no COPY statement
//! (`--inserts`) is read as INSERT statements.
//!
//! Hostile input: nothing is allocated from a length read in the file but
//! the few strings kept (names, COPY statements), each cut to a bound and
//! all together held to `Limits::max_in_memory`; inflated data goes through
//! the containers' ratio and budget limits; data blocks and large objects
//! count as members (`Limits::max_members`); the per-file time limit is
//! checked between entries, blocks and objects and by every read; a data
//! file's inflated bytes go through the same limits. A header
//! or table of contents that does not parse makes the archive `skipped`, a
//! data block that does not `partial` (reading stops there: where the next
//! block starts is not known), always with the reason; reasons name no
//! content.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anshin_detect::{DecodedText, TextEncoding};

use crate::codec::Codec;
use crate::container::{
    self, Bounded, Counting, Ctx, LimitHit, Reserved, Timed, limit_reason, stop_before_member,
};
use crate::{ObjectKind, ObjectReport, Status};
use crate::{sql, text};

const MAGIC: &[u8] = b"PGDMP";

/// Whether the first bytes of a stream are a pg_dump archive's (custom
/// format, or the `toc.dat` of a directory- or tar-format one).
pub(crate) fn is_pgdump(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Archive minor versions read (major 1): 1.7 put the offset size in the
/// header; 1.16 is PostgreSQL 17's.
const MINOR_VERSIONS: std::ops::RangeInclusive<u8> = 7..=16;

/// The format byte of a custom-format archive (`archCustom`).
const FORMAT_CUSTOM: u8 = 1;
/// The format byte of a tar-format dump's `toc.dat` (`archTar`); pg_dump
/// writes it in a directory-format dump's too ("the directory is compatible
/// with tar"), but `archDirectory` is read there as well.
const FORMAT_TAR: u8 = 3;
const FORMAT_DIRECTORY: u8 = 5;

/// Where an archive's table data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// In data blocks after the table of contents (custom format).
    Blocks,
    /// In files of their own beside `toc.dat`, which holds the table of
    /// contents only (tar and directory formats).
    Files,
}

/// Data block types.
const BLOCK_DATA: u8 = 1;
const BLOCK_LARGE_OBJECTS: u8 = 3;

/// Data offset flags: set, not set (the archive was written to a pipe), none.
const OFFSET_FLAGS: std::ops::RangeInclusive<u8> = 1..=3;
const OFFSET_NO_DATA: u8 = 3;

/// Longest tag or namespace kept; longer ones are cut.
const MAX_NAME: usize = 1024;
/// Longest COPY statement kept (a column list of thousands of long names).
const MAX_STATEMENT: usize = 1 << 20;
/// Longest string or data chunk at all: pg_dump writes lengths as C ints.
const MAX_LENGTH: u64 = i32::MAX as u64;

/// How the archive's data blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Zlib,
}

/// The archive being read: its integer sizes and version.
struct Archive<'r> {
    r: BufReader<&'r mut dyn Read>,
    layout: Layout,
    minor: u8,
    int_size: usize,
    off_size: usize,
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The reason for an archive that could not be read on: a limit as it is,
/// truncation and corruption as such, `what` saying where it happened.
fn stop_reason(e: &io::Error, what: &str) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => format!("pg_dump archive truncated in {what}"),
        io::ErrorKind::InvalidData => format!("corrupt pg_dump archive: {e} in {what}"),
        _ => limit_reason(e),
    }
}

impl Archive<'_> {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8];
        self.r.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// The next data block's type, or `None` at the end of the archive.
    fn block_type(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8];
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(b[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn int(&mut self) -> io::Result<i64> {
        let negative = self.byte()? != 0;
        let mut bytes = [0u8; 8];
        self.r.read_exact(&mut bytes[..self.int_size])?;
        let magnitude = i64::try_from(u64::from_le_bytes(bytes))
            .map_err(|_| corrupt("an integer out of range".to_owned()))?;
        Ok(if negative { -magnitude } else { magnitude })
    }

    /// A length: an integer from 0 to `MAX_LENGTH`.
    fn length(&mut self, what: &str) -> io::Result<u64> {
        let n = self.int()?;
        u64::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_LENGTH)
            .ok_or_else(|| corrupt(format!("{what} of {n} bytes")))
    }

    /// A string, its first `keep` bytes kept (the rest skipped); `None` for
    /// a null string. Its bytes are in the archive's encoding.
    fn string(&mut self, keep: usize) -> io::Result<Option<Vec<u8>>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = u64::try_from(len).unwrap_or(0);
        if len > MAX_LENGTH {
            return Err(corrupt(format!("a string of {len} bytes")));
        }
        let kept = len.min(keep as u64);
        let mut bytes = Vec::new();
        (&mut self.r).take(kept).read_to_end(&mut bytes)?;
        self.skip(len - kept)?;
        if (bytes.len() as u64) < kept {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(bytes))
    }

    fn skip_string(&mut self) -> io::Result<()> {
        self.string(0).map(drop)
    }

    /// Skips `n` bytes, failing if the archive ends first.
    fn skip(&mut self, n: u64) -> io::Result<()> {
        if io::copy(&mut (&mut self.r).take(n), &mut io::sink())? < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Why an archive is not read at all, when its header says so.
enum Unread {
    /// The header could not be read.
    Broken(io::Error),
    /// A version, format or compression this reader does not read.
    Unsupported(String),
}

impl From<io::Error> for Unread {
    fn from(e: io::Error) -> Self {
        Self::Broken(e)
    }
}

/// Reads the header, up to the table of contents.
fn header<'r>(reader: &'r mut dyn Read) -> Result<(Archive<'r>, Compression), Unread> {
    let mut ar = Archive {
        r: BufReader::with_capacity(64 << 10, reader),
        layout: Layout::Blocks,
        minor: 0,
        int_size: 4,
        off_size: 8,
    };
    let mut magic = [0u8; 5];
    ar.r.read_exact(&mut magic)?;
    let (major, minor) = (ar.byte()?, ar.byte()?);
    if major != 1 || !MINOR_VERSIONS.contains(&minor) {
        return Err(Unread::Unsupported(format!(
            "pg_dump archive version {major}.{minor} is not read (versions 1.{} to 1.{} are)",
            MINOR_VERSIONS.start(),
            MINOR_VERSIONS.end()
        )));
    }
    ar.minor = minor;
    let _revision = ar.byte()?;
    ar.int_size = usize::from(ar.byte()?);
    ar.off_size = usize::from(ar.byte()?);
    if !(1..=8).contains(&ar.int_size) || !(1..=8).contains(&ar.off_size) {
        return Err(Unread::Unsupported(format!(
            "pg_dump archive with {}-byte integers and {}-byte offsets is not read",
            ar.int_size, ar.off_size
        )));
    }
    ar.layout = match ar.byte()? {
        FORMAT_CUSTOM => Layout::Blocks,
        FORMAT_TAR | FORMAT_DIRECTORY => Layout::Files,
        format => {
            return Err(Unread::Unsupported(format!(
                "pg_dump archive of format {format} is not read (custom, tar and directory formats are)"
            )));
        }
    };
    let compression = if minor >= 15 {
        match ar.byte()? {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Zlib),
            2 => Err("lz4"),
            3 => Err("zstd"),
            other => return Err(corrupt(format!("compression algorithm {other}")).into()),
        }
    } else {
        match ar.int()? {
            0 => Ok(Compression::None),
            _ => Ok(Compression::Zlib),
        }
    };
    // Creation time, database name, server and pg_dump versions.
    for _ in 0..7 {
        ar.int()?;
    }
    ar.skip_string()?;
    if minor >= 10 {
        ar.skip_string()?;
        ar.skip_string()?;
    }
    match (compression, ar.layout) {
        (Ok(c), _) => Ok((ar, c)),
        // A `toc.dat` is never compressed: its data files name their compression.
        (Err(_), Layout::Files) => Ok((ar, Compression::None)),
        (Err(algorithm), Layout::Blocks) => Err(Unread::Unsupported(format!(
            "pg_dump archive compressed with {algorithm}: not read (zlib-compressed and \
             uncompressed archives are); `pg_restore -f - FILE | anshin scan -` scans its plain form"
        ))),
    }
}

/// A table of contents entry that has data.
pub(crate) struct Entry {
    /// `schema.table` (or the tag alone), for reasons.
    name: String,
    /// `COPY … FROM stdin;`, empty for data written as INSERT statements.
    statement: String,
}

/// An entry with data as the archive holds it: in the archive's encoding.
struct RawEntry {
    id: i64,
    tag: Vec<u8>,
    namespace: Vec<u8>,
    statement: Vec<u8>,
}

/// The entries with data, by dump id, and how many there are.
pub(crate) struct Toc {
    entries: HashMap<i64, Entry>,
    /// Bytes of names and statements kept (at most `Limits::max_in_memory`).
    kept: u64,
    with_data: u64,
    /// Entries whose names were not kept (the memory bound).
    unnamed: u64,
    /// The encoding of the archive's text (names, statements, data).
    encoding: TextEncoding,
    /// The archive's encoding when it is not one read (masked, for the
    /// reason): its text is read as UTF-8.
    undecoded: Option<String>,
}

/// The text encoding of a PostgreSQL encoding name, as pg_dump writes it
/// (`SET client_encoding = 'EUC_JP';`); `None` for one not decoded.
fn text_encoding(name: &str) -> Option<TextEncoding> {
    Some(match name.to_ascii_uppercase().as_str() {
        // SQL_ASCII stores bytes as clients sent them: UTF-8 in practice
        // (other bytes are replaced and the archive noted, as before).
        "UTF8" | "SQL_ASCII" => TextEncoding::Utf8,
        // The 2004 forms add JIS X 0213 characters, which decode as
        // replacements (noted as decode errors); the rest is the same.
        "EUC_JP" | "EUC_JIS_2004" => TextEncoding::EucJp,
        // Client-side only, but `pg_dump -E SJIS` writes them.
        "SJIS" | "SHIFT_JIS_2004" => TextEncoding::ShiftJis,
        "LATIN1" | "WIN1252" => TextEncoding::Windows1252,
        _ => return None,
    })
}

/// The encoding an `ENCODING` entry's definition sets, if it reads as an
/// encoding name (it is shown in a reason).
fn client_encoding(definition: &[u8]) -> Option<&str> {
    let definition = std::str::from_utf8(definition).ok()?;
    let (_, quoted) = definition.split_once("client_encoding")?.1.split_once('\'')?;
    let (name, _) = quoted.split_once('\'')?;
    let plain = name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then_some(name)
}

/// Archive text (a name, a statement) decoded as the scanner decodes text.
fn decode(bytes: &[u8], encoding: TextEncoding) -> String {
    DecodedText::decode_as(bytes, encoding, 0).text().to_owned()
}

fn toc(ctx: &Ctx<'_>, ar: &mut Archive<'_>) -> io::Result<Toc> {
    let count = ar.int()?;
    if count < 0 {
        return Err(corrupt(format!("{count} entries")));
    }
    let mut toc = Toc {
        entries: HashMap::new(),
        kept: 0,
        with_data: 0,
        unnamed: 0,
        encoding: TextEncoding::Utf8,
        undecoded: None,
    };
    // Names and statements are decoded once the encoding is known (its
    // entry comes first in pg_dump's archives, but need not).
    let mut named: Vec<RawEntry> = Vec::new();
    let mut encoding: Option<String> = None;
    for _ in 0..count {
        if ctx.deadline.passed() {
            return Err(io::Error::other(LimitHit(ctx.deadline.reason())));
        }
        let id = ar.int()?;
        let _had_dumper = ar.int()?;
        if ar.minor >= 8 {
            ar.skip_string()?; // table oid
        }
        ar.skip_string()?; // oid
        let tag = ar.string(MAX_NAME)?.unwrap_or_default();
        let description = ar.string(MAX_NAME)?.unwrap_or_default();
        if ar.minor >= 11 {
            ar.int()?; // section
        }
        if description == b"ENCODING" {
            let definition = ar.string(MAX_NAME)?.unwrap_or_default();
            encoding = Some(client_encoding(&definition).unwrap_or("(unreadable)").to_owned());
        } else {
            ar.skip_string()?; // definition
        }
        ar.skip_string()?; // drop statement
        let statement = ar.string(MAX_STATEMENT)?.unwrap_or_default();
        let namespace = ar.string(MAX_NAME)?.unwrap_or_default();
        if ar.minor >= 10 {
            ar.skip_string()?; // tablespace
        }
        if ar.minor >= 14 {
            ar.skip_string()?; // table access method
        }
        if ar.minor >= 16 {
            ar.int()?; // relkind
        }
        ar.skip_string()?; // owner
        if ar.minor >= 9 {
            ar.skip_string()?; // with oids
        }
        while ar.string(0)?.is_some() {} // dependencies
        let has_data = match ar.layout {
            Layout::Blocks => {
                let flag = ar.byte()?;
                if !OFFSET_FLAGS.contains(&flag) {
                    return Err(corrupt(format!("data offset flag {flag}")));
                }
                ar.skip(ar.off_size as u64)?;
                flag != OFFSET_NO_DATA
            }
            // The data file's name (`3344.dat`), empty for an entry without data.
            Layout::Files => ar.string(MAX_NAME)?.is_some_and(|file| !file.is_empty()),
        };
        if !has_data {
            continue;
        }
        toc.with_data += 1;
        let size = (tag.len() + namespace.len() + statement.len()) as u64;
        if toc.kept + size > ctx.discovery.limits.max_in_memory {
            toc.unnamed += 1;
            continue;
        }
        toc.kept += size;
        named.push(RawEntry {
            id,
            tag,
            namespace,
            statement,
        });
    }
    if let Some(name) = encoding {
        match text_encoding(&name) {
            Some(e) => toc.encoding = e,
            None => toc.undecoded = Some(crate::mask_card_numbers(name)),
        }
    }
    for RawEntry {
        id,
        tag,
        namespace,
        statement,
    } in named
    {
        let (tag, namespace) = (decode(&tag, toc.encoding), decode(&namespace, toc.encoding));
        let name = if namespace.is_empty() {
            tag
        } else {
            format!("{namespace}.{tag}")
        };
        let name = crate::mask_card_numbers(name.chars().take(128).collect());
        let statement = decode(&statement, toc.encoding);
        toc.entries.insert(id, Entry { name, statement });
    }
    Ok(toc)
}

/// Reads an archive: its tables' data into one report, its large objects
/// as objects of their own. The `toc.dat` of a tar- or directory-format dump
/// is reported complete with no findings (it holds no data) and its table of
/// contents returned, for its data files.
pub(crate) fn scan(
    ctx: &Ctx<'_>,
    path: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) -> Option<Toc> {
    let mut report = ObjectReport::new(path, ObjectKind::PgDump);
    let (mut ar, compression) = match header(reader) {
        Ok(h) => h,
        Err(Unread::Broken(e)) => {
            report.degrade(Status::Skipped, stop_reason(&e, "its header"));
            emit(report);
            return None;
        }
        Err(Unread::Unsupported(reason)) => {
            report.degrade(Status::Skipped, reason);
            emit(report);
            return None;
        }
    };
    let mut contents = match toc(ctx, &mut ar) {
        Ok(t) => t,
        Err(e) => {
            report.degrade(Status::Skipped, stop_reason(&e, "its table of contents"));
            emit(report);
            return None;
        }
    };
    report.encoding = Some(contents.encoding);
    note_encoding(&contents, &mut report);
    if contents.unnamed > 0 {
        report.degrade(
            Status::Partial,
            format!(
                "table of contents over {} bytes: {} tables scanned without their names",
                ctx.discovery.limits.max_in_memory, contents.unnamed
            ),
        );
    }
    if ar.layout == Layout::Files {
        emit(report);
        return Some(contents);
    }
    let mut blocks = Blocks {
        ctx,
        compression,
        depth,
        members: 0,
        seen: 0,
    };
    if let Err(reason) = blocks.read_all(&mut ar, &mut contents, &mut report, emit) {
        report.degrade(Status::Partial, reason);
    } else if blocks.seen < contents.with_data {
        report.degrade(
            Status::Partial,
            format!(
                "pg_dump archive truncated: no data block for {} of its {} entries with data",
                contents.with_data - blocks.seen,
                contents.with_data
            ),
        );
    }
    emit(report);
    None
}

/// Notes an archive whose encoding is not decoded: its text is read as UTF-8.
fn note_encoding(toc: &Toc, report: &mut ObjectReport) {
    if let Some(name) = &toc.undecoded {
        report.degrade(
            Status::Partial,
            format!(
                "pg_dump archive in the encoding {name}, which is not decoded (UTF8, SQL_ASCII, EUC_JP, \
                 EUC_JIS_2004, SJIS, SHIFT_JIS_2004, LATIN1 and WIN1252 are): its text was read as \
                 UTF-8 and values in other characters may be missed"
            ),
        );
    }
}

/// A table's data file in a tar- or directory-format dump.
pub(crate) struct DataFile<'t> {
    entry: &'t Entry,
    /// `3344.dat.gz` as the directory format writes it by default;
    /// `3344.dat.lz4` and `3344.dat.zst` with `--compress=lz4|zstd`.
    codec: Option<Codec>,
}

/// The dump id of a data file's name (`3344.dat`, `3344.dat.gz`: the last
/// path component), and how it is compressed.
fn data_file_id(name: &str) -> Option<(i64, Option<Codec>)> {
    let base = name.rsplit(['/', '\\']).next()?;
    let (stem, codec) = match Codec::strip_suffix(base) {
        Some((codec, stem)) => (stem, Some(codec)),
        None => (base, None),
    };
    let id = stem.strip_suffix(".dat")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, codec))
}

/// Whether `name` is a data file's name (`3344.dat`, `3344.dat.gz`,
/// `3344.dat.zst`…), so that it may be one of a tar- or directory-format
/// dump.
pub(crate) fn is_data_file_name(name: &str) -> bool {
    data_file_id(name).is_some()
}

impl Toc {
    /// The data file `name` of this dump, if its table of contents lists it.
    pub(crate) fn data_file(&self, name: &str) -> Option<DataFile<'_>> {
        let (id, codec) = data_file_id(name)?;
        let entry = self.entries.get(&id)?;
        Some(DataFile { entry, codec })
    }
}

/// The table of contents of the directory-format dump a file on disk may be
/// a data file of: the `toc.dat` beside it; `None` when the name is not a
/// data file's, or the `toc.dat` is missing or does not parse (the file is
/// then read as any other).
pub(crate) fn beside(ctx: &Ctx<'_>, path: &Path) -> Option<Arc<Toc>> {
    data_file_id(path.file_name()?.to_str()?)?;
    let toc_path = path.with_file_name("toc.dat");
    let file = File::open(&toc_path).ok()?;
    let meta = file.metadata().ok()?;
    let stamp = (meta.len(), meta.modified().ok());
    let cache = &ctx.discovery.tocs;
    if let Some(toc) = cache.get(&toc_path, stamp) {
        return toc;
    }
    // A `toc.dat` that is not one is kept too: it is not read again for
    // every data file beside it.
    let toc = read_toc_dat(ctx, file).map(Arc::new);
    cache.put(ctx, toc_path, stamp, toc.clone());
    toc
}

/// The table of contents of a tar- or directory-format `toc.dat`.
fn read_toc_dat(ctx: &Ctx<'_>, file: File) -> Option<Toc> {
    let mut timed = Timed { inner: file, ctx };
    let (mut ar, _) = header(&mut timed).ok()?;
    if ar.layout != Layout::Files {
        return None;
    }
    toc(ctx, &mut ar).ok()
}

/// The tables of contents of the directory-format dumps read last, shared
/// by the threads of a scan, so that each data file does not read its
/// `toc.dat` again: a dump of 2,000 tables has a `toc.dat` of 1.4 MB, which
/// read for each data file made its scan 200 times slower (80 s instead of
/// 0.4 s, debug build). Together they hold at most `Limits::max_in_memory`.
#[derive(Default)]
pub(crate) struct TocCache(Mutex<Vec<Cached>>);

/// A `toc.dat`'s path and what tells a changed file (size, modification
/// time), and its table of contents (`None`: it does not parse).
type Stamp = (u64, Option<SystemTime>);
struct Cached {
    path: PathBuf,
    stamp: Stamp,
    toc: Option<Arc<Toc>>,
}

/// Most tables of contents cached (a walk's threads are in a few folders at a time).
const CACHED_TOCS: usize = 8;

impl TocCache {
    /// The cached reading of a `toc.dat`, if there is one.
    fn get(&self, path: &Path, stamp: Stamp) -> Option<Option<Arc<Toc>>> {
        let cached = self.0.lock().ok()?;
        let hit = cached.iter().find(|c| c.path == path && c.stamp == stamp)?;
        Some(hit.toc.clone())
    }

    /// Keeps `toc`, dropping the oldest ones past the count or the memory bound.
    fn put(&self, ctx: &Ctx<'_>, path: PathBuf, stamp: Stamp, toc: Option<Arc<Toc>>) {
        let Ok(mut cached) = self.0.lock() else {
            return;
        };
        cached.retain(|c| c.path != path);
        cached.push(Cached { path, stamp, toc });
        let max = ctx.discovery.limits.max_in_memory;
        let kept = |c: &Cached| c.toc.as_ref().map_or(0, |t| t.kept);
        while cached.len() > CACHED_TOCS || cached.iter().map(kept).sum::<u64>() > max {
            cached.remove(0);
        }
    }
}

impl std::fmt::Debug for TocCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.0.lock().map_or(0, |c| c.len());
        write!(f, "TocCache({cached} cached)")
    }
}

/// Scans a data file of a tar- or directory-format dump as its table's data.
pub(crate) fn scan_data_file(
    ctx: &Ctx<'_>,
    path: String,
    reader: &mut dyn Read,
    toc: &Toc,
    file: DataFile<'_>,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(path, ObjectKind::PgDump);
    report.encoding = Some(toc.encoding);
    note_encoding(toc, &mut report);
    let consumed = Cell::new(0u64);
    let mut counting = Counting::new(reader, &consumed);
    let mut listed = ctx.reservation();
    report.bytes = match file.codec {
        Some(codec) => match container::open_decoder(ctx, codec, &mut counting) {
            Ok(decoder) => {
                let mut inflated = Bounded::counted(ctx, decoder, &consumed);
                scan_table(
                    ctx,
                    file.entry,
                    toc.encoding,
                    &mut inflated,
                    &mut report,
                    &mut listed,
                );
                inflated.expanded()
            }
            Err(e) => {
                report.degrade(Status::Skipped, limit_reason(&e));
                0
            }
        },
        None => {
            scan_table(
                ctx,
                file.entry,
                toc.encoding,
                &mut counting,
                &mut report,
                &mut listed,
            );
            consumed.get()
        }
    };
    emit(report);
}

/// Scans a table's data (COPY rows, or INSERT statements for an entry with
/// no COPY statement) under its entry's names, decoded from the archive's
/// encoding, into `report`.
fn scan_table(
    ctx: &Ctx<'_>,
    entry: &Entry,
    encoding: TextEncoding,
    reader: &mut dyn Read,
    report: &mut ObjectReport,
    listed: &mut Reserved<'_, '_>,
) {
    let table = |reader: &mut dyn Read| {
        if entry.statement.is_empty() {
            sql::scan(ctx, String::new(), reader)
        } else {
            sql::scan_copy(ctx, &entry.statement, reader)
        }
    };
    // The SQL reader reads UTF-8: other encodings are decoded first.
    let part = if encoding == TextEncoding::Utf8 {
        table(reader)
    } else {
        let mut utf8 = text::Utf8Reader::new(ctx, reader, encoding);
        let mut part = table(&mut utf8);
        part.decode_errors |= utf8.decode_errors();
        part
    };
    merge(ctx, report, part, &entry.name, listed);
}

/// The data section being read.
struct Blocks<'c, 'd> {
    ctx: &'c Ctx<'d>,
    compression: Compression,
    depth: u32,
    /// Data blocks and large objects so far.
    members: u64,
    /// Blocks of entries in the table of contents.
    seen: u64,
}

impl Blocks<'_, '_> {
    /// Reads data blocks to the end of the archive; `Err` with the reason
    /// when reading cannot go on.
    fn read_all(
        &mut self,
        ar: &mut Archive<'_>,
        toc: &mut Toc,
        report: &mut ObjectReport,
        emit: &mut dyn FnMut(ObjectReport),
    ) -> Result<(), String> {
        let at = |e: io::Error| stop_reason(&e, "a data block");
        let encoding = toc.encoding;
        let ctx = self.ctx;
        let mut listed = ctx.reservation();
        while let Some(kind) = ar.block_type().map_err(at)? {
            self.member()?;
            let id = ar.int().map_err(at)?;
            let entry = toc.entries.remove(&id);
            self.seen += u64::from(entry.is_some());
            match kind {
                BLOCK_DATA => {
                    let name = format!("{}!#{id}", report.path);
                    self.data(ar, report, &mut |ctx, reader, report| match &entry {
                        Some(e) => scan_table(ctx, e, encoding, reader, report, &mut listed),
                        // Data of no entry: read as any stream.
                        None => container::scan_stream(ctx, name.clone(), reader, self.depth + 1, emit),
                    })?;
                }
                BLOCK_LARGE_OBJECTS => loop {
                    let oid = ar.int().map_err(at)?;
                    if oid == 0 {
                        break;
                    }
                    self.member()?;
                    let name = format!("{}!large-object-{oid}", report.path);
                    self.data(ar, report, &mut |ctx, reader, _| {
                        container::scan_stream(ctx, name.clone(), reader, self.depth + 1, emit);
                    })?;
                },
                other => return Err(format!("corrupt pg_dump archive: data block type {other}")),
            }
        }
        Ok(())
    }

    /// Counts a data block or large object against the member limit, the
    /// budget and the time limit.
    fn member(&mut self) -> Result<(), String> {
        self.members += 1;
        match stop_before_member(self.ctx, self.members) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Hands one block's data (its chunks, inflated) to `read`, then skips
    /// what `read` left of it.
    fn data(
        &self,
        ar: &mut Archive<'_>,
        report: &mut ObjectReport,
        read: &mut dyn FnMut(&Ctx<'_>, &mut dyn Read, &mut ObjectReport),
    ) -> Result<(), String> {
        let consumed = Cell::new(0u64);
        let mut chunks = Chunks {
            ar,
            left: 0,
            end: false,
            failed: None,
            consumed: &consumed,
        };
        let expanded = match self.compression {
            Compression::Zlib => {
                let mut inflated =
                    Bounded::counted(self.ctx, flate2::read::ZlibDecoder::new(&mut chunks), &consumed);
                read(self.ctx, &mut inflated, report);
                inflated.expanded()
            }
            Compression::None => {
                read(self.ctx, &mut chunks, report);
                consumed.get()
            }
        };
        report.bytes += expanded;
        chunks.finish()
    }
}

/// Adds a table's findings and status to the archive's report.
fn merge(
    ctx: &Ctx<'_>,
    report: &mut ObjectReport,
    part: ObjectReport,
    table: &str,
    listed: &mut Reserved<'_, '_>,
) {
    report.encoding = report.encoding.or(part.encoding);
    report.decode_errors |= part.decode_errors;
    if part.status != Status::Complete {
        report.degrade(
            Status::Partial,
            format!("{table}: {}", part.reason.unwrap_or_default()),
        );
    }
    for f in part.findings {
        report.list(ctx, f, listed);
    }
}

/// One data block's bytes: its chunks, up to the zero length that ends it.
struct Chunks<'a, 'r> {
    ar: &'a mut Archive<'r>,
    /// Bytes left in the current chunk.
    left: u64,
    end: bool,
    /// Why the chunks could not be read on.
    failed: Option<String>,
    consumed: &'a Cell<u64>,
}

impl Chunks<'_, '_> {
    fn next(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let len = self.ar.length("a data chunk")?;
            if len == 0 {
                self.end = true;
                return Ok(0);
            }
            self.left = len;
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.ar.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }

    /// Skips the rest of the block, so the next one can be read.
    fn finish(&mut self) -> Result<(), String> {
        let mut sink = [0u8; 8192];
        while !self.end {
            if let Err(e) = self.read(&mut sink) {
                return Err(limit_reason(&e));
            }
        }
        Ok(())
    }
}

impl Read for Chunks<'_, '_> {
    /// An error is kept: every later read fails with its reason.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.is_none() && !self.end && !buf.is_empty() {
            match self.next(buf) {
                Ok(n) => return Ok(n),
                Err(e) => self.failed = Some(stop_reason(&e, "a data block")),
            }
        }
        match &self.failed {
            Some(reason) => Err(io::Error::other(LimitHit(reason.clone()))),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests;
