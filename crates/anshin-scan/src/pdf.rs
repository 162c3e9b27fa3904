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

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use zeroize::Zeroizing;

use crate::container::{Ctx, limit_reason, read_limit};
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

/// Reads a whole PDF and scans the text of each page.
pub(crate) fn scan(ctx: &Ctx<'_>, path: String, reader: &mut dyn Read) -> ObjectReport {
    let mut report = ObjectReport::new(path, ObjectKind::Pdf);
    let max = read_limit(ctx);
    let mut buf = Zeroizing::new(Vec::new());
    let mut eof = false;
    let filled = text::fill(&mut buf, reader, max + 1, &mut eof, &mut |n| {
        ctx.discovery.count_bytes(n);
    });
    report.bytes = buf.len() as u64;
    if let Err(e) = filled {
        // Without its end (the cross-reference table) a PDF cannot be read.
        report.degrade(Status::Skipped, limit_reason(&e));
        return report;
    }
    if !eof {
        report.degrade(Status::Skipped, format!("PDF larger than {max} bytes"));
        return report;
    }
    let document = match catch_unwind(AssertUnwindSafe(|| lopdf::Document::load_mem(&buf))) {
        Ok(Ok(d)) => d,
        Ok(Err(_)) => {
            report.degrade(
                Status::Skipped,
                "pdf_unreadable: not a readable PDF (corrupt or unsupported)",
            );
            return report;
        }
        Err(_) => {
            report.degrade(
                Status::Skipped,
                "pdf_unreadable: the PDF reader failed on this file",
            );
            return report;
        }
    };
    drop(buf);
    // lopdf removes /Encrypt once the empty user password opened the file.
    if document.trailer.has(b"Encrypt") {
        report.degrade(
            Status::Skipped,
            "pdf_encrypted: encrypted with a password; its text cannot be read",
        );
        return report;
    }
    let pages = document.get_pages();
    for &number in pages.keys() {
        if ctx.deadline.passed() {
            report.degrade(Status::Partial, ctx.deadline.reason());
            break;
        }
        let extracted = catch_unwind(AssertUnwindSafe(|| {
            document.extract_text_chunks_with_limit(&[number], PAGE_CONTENT_LIMIT)
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
        report.findings.extend(page.findings.into_iter().map(|mut f| {
            f.locator.page = usize::try_from(number).ok();
            f
        }));
    }
    report
}
