//! PDF text, page by page, read with lopdf (pure Rust).
//!
//! A PDF needs random access (its cross-reference table is at the end), so
//! it is read into memory, up to the limit of an office part. Each page's
//! text (fonts' encodings and ToUnicode maps applied by lopdf, a line per
//! text object) is scanned as text of its own; findings carry the page
//! number, and their line, column and byte offset are positions in that
//! page's extracted text, not in the file.
//!
//! Hostile files: lopdf bounds what one stream may inflate to, and is
//! lenient with broken cross-references. A file it cannot read, or on
//! which it panics (caught here; the panic message goes to standard error
//! through the panic hook and names no content), is `skipped` with the
//! reason `pdf_unreadable`; an encrypted file that does not open with the
//! empty password is `skipped` (`pdf_encrypted`); a page that fails is left
//! out and the document is `partial`. Reasons never quote the parser's
//! error, which may carry bytes of the file. The per-file time limit is
//! checked between pages.
//!
//! Files attached to the document (the `EmbeddedFiles` name tree of the
//! catalog's `/Names`, and `/FileAttachment` annotations on its pages) are
//! objects of their own, `invoice.pdf!orders.csv`, read through the
//! container dispatch like archive members (a zip attached to a PDF is
//! opened): each is inflated by lopdf up to the limit of an office part, then
//! held to the expansion ratio and the input's budget, and counts as a member
//! (`Limits::max_members`, depth). Name trees are walked to a bounded depth
//! and node count, each node once; a file attached twice is read once.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Dictionary, Document, Object, ObjectId};
use zeroize::Zeroizing;

use crate::container::{self, Bounded, Ctx, Reserved, read_limit, read_whole, stop_before_member};
use crate::text;
use crate::{ObjectKind, ObjectReport, Status};

/// Most bytes one page's content streams may inflate to.
const PAGE_CONTENT_LIMIT: usize = 64 << 20;

/// Whether the first bytes of a stream are a PDF: the header must open the
/// file (readers accept it later, but then a text file quoting `%PDF-`
/// would be taken for one).
pub(crate) fn is_pdf(head: &[u8]) -> bool {
    head.starts_with(b"%PDF-")
}

/// Reads a whole PDF, scans the text of each page and the files attached
/// (as objects of their own, handed to `emit` before the PDF's report).
pub(crate) fn scan(
    ctx: &Ctx<'_>,
    path: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(path, ObjectKind::Pdf);
    if let Some((document, _memory)) = load(ctx, reader, &mut report) {
        // The findings of its pages stay listed (and reserved) while its
        // attachments are read.
        let mut listed = ctx.reservation();
        pages(ctx, &document, &mut report, &mut listed);
        attachments(ctx, &document, &mut report, depth, emit);
    }
    emit(report);
}

/// Reads a whole PDF into a document, twice the file's size reserved for
/// its objects; `None` (the report skipped, with the reason) when it cannot
/// be read.
fn load<'c, 'd>(
    ctx: &'c Ctx<'d>,
    reader: &mut dyn Read,
    report: &mut ObjectReport,
) -> Option<(Document, Reserved<'c, 'd>)> {
    // Without its end (the cross-reference table) a PDF cannot be read.
    let (buf, mut memory) = match read_whole(ctx, reader, "PDF", &mut |n| ctx.discovery.count_bytes(n)) {
        Ok(read) => read,
        Err(reason) => {
            report.degrade(Status::Skipped, reason);
            return None;
        }
    };
    report.bytes = buf.len() as u64;
    // Within what is left: `read_limit` is a third of it.
    memory.grow(buf.len() as u64);
    let document = match catch_unwind(AssertUnwindSafe(|| Document::load_mem(&buf))) {
        Ok(Ok(d)) => d,
        Ok(Err(_)) => {
            report.degrade(
                Status::Skipped,
                "pdf_unreadable: not a readable PDF (corrupt or unsupported)",
            );
            return None;
        }
        Err(_) => {
            report.degrade(
                Status::Skipped,
                "pdf_unreadable: the PDF reader failed on this file",
            );
            return None;
        }
    };
    drop(buf);
    // lopdf removes /Encrypt once the empty user password opened the file.
    if document.trailer.has(b"Encrypt") {
        report.degrade(
            Status::Skipped,
            "pdf_encrypted: encrypted with a password; its text cannot be read",
        );
        return None;
    }
    Some((document, memory))
}

/// Scans the text of each page.
fn pages(ctx: &Ctx<'_>, document: &Document, report: &mut ObjectReport, listed: &mut Reserved<'_, '_>) {
    let pages = document.get_pages();
    for &number in pages.keys() {
        if ctx.deadline.passed() {
            report.degrade(Status::Partial, ctx.deadline.reason());
            break;
        }
        // A page's inflated content, and its text, within the memory left.
        let limit = PAGE_CONTENT_LIMIT.min(usize::try_from(ctx.memory_left() / 2).unwrap_or(usize::MAX));
        let mut memory = ctx.reservation();
        memory.grow(limit as u64 * 2);
        let extracted = catch_unwind(AssertUnwindSafe(|| {
            document.extract_text_chunks_with_limit(&[number], limit)
        }));
        let Ok(chunks) = extracted else {
            report.degrade(
                Status::Partial,
                format!("pdf_unreadable: page {number} could not be read"),
            );
            continue;
        };
        let mut page_text = Zeroizing::new(String::new());
        let mut failed = false;
        for chunk in chunks {
            match chunk {
                Ok(t) => {
                    page_text.push_str(&t);
                    drop(Zeroizing::new(t));
                }
                Err(_) => failed = true,
            }
        }
        if failed {
            report.degrade(
                Status::Partial,
                format!("pdf_unreadable: some text of page {number} could not be decoded"),
            );
        }
        memory.shrink_to(page_text.capacity() as u64);
        let page = text::scan(
            ctx,
            report.path.clone(),
            &mut Cursor::new(page_text.as_bytes()),
            text::Mode::Text,
        );
        if page.status != Status::Complete {
            report.degrade(Status::Partial, page.reason.unwrap_or_default());
        }
        report.decode_errors |= page.decode_errors;
        report.encoding = report.encoding.or(page.encoding);
        for mut f in page.findings {
            f.locator.page = usize::try_from(number).ok();
            report.list(ctx, f, listed);
        }
    }
}

/// Most name-tree nodes visited, and how deep.
const MAX_TREE_NODES: usize = 10_000;
const MAX_TREE_DEPTH: u32 = 32;
/// Longest attachment name kept.
const MAX_NAME: usize = 255;

/// One attached file: its name and its embedded file stream.
struct Attached {
    name: String,
    stream: ObjectId,
}

/// Scans each file attached to the document as an object of its own.
fn attachments(
    ctx: &Ctx<'_>,
    document: &Document,
    report: &mut ObjectReport,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let Ok(found) = catch_unwind(AssertUnwindSafe(|| attached_files(document))) else {
        report.degrade(
            Status::Partial,
            "pdf_unreadable: its attached files could not be listed",
        );
        return;
    };
    if found.is_empty() {
        return;
    }
    let limits = &ctx.discovery.limits;
    if depth >= limits.max_depth {
        report.degrade(
            Status::Partial,
            format!(
                "attached files nested deeper than {} levels were not read",
                limits.max_depth
            ),
        );
        return;
    }
    let max = read_limit(ctx);
    for (i, file) in found.iter().enumerate() {
        if let Some(reason) = stop_before_member(ctx, i as u64 + 1) {
            report.degrade(Status::Partial, reason);
            break;
        }
        let inner = format!("{}!{}", report.path, file.name);
        let Ok(Object::Stream(stream)) = document.get_object(file.stream) else {
            continue;
        };
        let compressed = stream.content.len() as u64;
        let bytes = catch_unwind(AssertUnwindSafe(|| stream.get_plain_content_with_limit(max)));
        let bytes = match bytes {
            Ok(Ok(b)) if ctx.memory_left() >= b.capacity() as u64 => Zeroizing::new(b),
            _ => {
                emit(ObjectReport::skipped(
                    inner,
                    ObjectKind::Text,
                    format!(
                        "pdf_unreadable: the attached file could not be decoded (or is over {max} bytes)"
                    ),
                ));
                report.degrade(Status::Partial, "some attached files could not be read");
                continue;
            }
        };
        let _memory = ctx.reserve(bytes.capacity() as u64);
        let mut bounded = Bounded::known(ctx, Cursor::new(&bytes[..]), compressed);
        container::scan_stream(ctx, inner, &mut bounded, depth + 1, emit);
    }
}

/// The files attached to a document, each once: the `EmbeddedFiles` name
/// tree first, then `/FileAttachment` annotations page by page.
fn attached_files(document: &Document) -> Vec<Attached> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let tree = document
        .catalog()
        .ok()
        .and_then(|c| c.get_deref(b"Names", document).ok())
        .and_then(|n| n.as_dict().ok())
        .and_then(|n| n.get_deref(b"EmbeddedFiles", document).ok());
    if let Some(root) = tree {
        let mut visited = HashSet::new();
        name_tree(document, root, 0, &mut visited, &mut |key, spec| {
            if let Some(file) = file_spec(document, spec, key) {
                push_once(&mut files, &mut seen, file);
            }
        });
    }
    for page in document.get_pages().into_values() {
        for annotation in document.get_page_annotations(page).unwrap_or_default() {
            let is_attachment = annotation
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|s| s == b"FileAttachment");
            if let (true, Ok(spec)) = (is_attachment, annotation.get(b"FS")) {
                let fallback = format!("attachment{}", files.len() + 1);
                if let Some(file) = file_spec(document, spec, &fallback) {
                    push_once(&mut files, &mut seen, file);
                }
            }
        }
    }
    files
}

fn push_once(files: &mut Vec<Attached>, seen: &mut HashSet<ObjectId>, file: Attached) {
    if seen.insert(file.stream) {
        files.push(file);
    }
}

/// Walks a name tree (`/Names [key value …]`, `/Kids [node …]`), each node
/// once, within the depth and node bounds.
fn name_tree(
    document: &Document,
    node: &Object,
    level: u32,
    visited: &mut HashSet<ObjectId>,
    found: &mut dyn FnMut(&str, &Object),
) {
    let Ok((id, node)) = document.dereference(node) else {
        return;
    };
    if level > MAX_TREE_DEPTH || visited.len() >= MAX_TREE_NODES || id.is_some_and(|id| !visited.insert(id)) {
        return;
    }
    let Ok(node) = node.as_dict() else {
        return;
    };
    if let Ok(names) = node.get_deref(b"Names", document).and_then(Object::as_array) {
        for pair in names.chunks_exact(2) {
            let key = lopdf::decode_text_string(&pair[0]).unwrap_or_default();
            found(&key, &pair[1]);
        }
    }
    if let Ok(kids) = node.get_deref(b"Kids", document).and_then(Object::as_array) {
        for kid in kids {
            name_tree(document, kid, level + 1, visited, found);
        }
    }
}

/// A file specification's name (`/UF`, `/F`, else `fallback`) and embedded
/// file stream (`/EF` `/UF` or `/F`); `None` when it embeds no file.
fn file_spec(document: &Document, spec: &Object, fallback: &str) -> Option<Attached> {
    let spec: &Dictionary = document.dereference(spec).ok()?.1.as_dict().ok()?;
    let embedded = spec.get_deref(b"EF", document).ok()?.as_dict().ok()?;
    let stream = [&b"UF"[..], b"F"]
        .iter()
        .find_map(|k| embedded.get(k).ok()?.as_reference().ok())?;
    let name = [&b"UF"[..], b"F"]
        .iter()
        .find_map(|k| lopdf::decode_text_string(spec.get_deref(k, document).ok()?).ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    Some(Attached {
        name: name.chars().take(MAX_NAME).collect(),
        stream,
    })
}
