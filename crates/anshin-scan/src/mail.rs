//! E-mail: `.eml` messages and `.mbox` mailboxes, MIME-decoded with
//! mailparse. Each leaf part (body or attachment) is transfer-decoded
//! (base64, quoted-printable) and scanned as an object of its own, so an
//! order CSV or a zip attached to a mail is read like any other file:
//! `inbox.mbox!3!orders.csv`, `mail.eml!part1.txt`.
//!
//! A mailbox is read one message at a time; a message is held in memory up
//! to a limit. Nesting is bounded before parsing: a message declaring more
//! multipart boundaries than `MAX_BOUNDARIES` is not parsed (mailparse
//! recurses once per level).

use std::io::{BufRead, BufReader, Cursor, Read};

use zeroize::Zeroizing;

use crate::container::{Ctx, limit_reason, scan_stream};
use crate::{ObjectKind, ObjectReport, Status};

/// Most `boundary=` parameters in one message.
const MAX_BOUNDARIES: usize = 64;

/// Whether an object is read as mail, by its name.
pub(crate) fn is_mail(name: &str) -> bool {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    lower.ends_with(".eml") || lower.ends_with(".mbox") || lower == "mbox"
}

fn is_mbox(name: &str) -> bool {
    let base = name
        .rsplit(['/', '\\', '!'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    base.ends_with(".mbox") || base == "mbox"
}

/// Scans a message or a mailbox.
pub(crate) fn scan(
    ctx: &Ctx<'_>,
    path: String,
    reader: &mut dyn Read,
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
) {
    let mut report = ObjectReport::new(path, ObjectKind::Mail);
    // A message is held whole, with one decoded part at a time: a third of
    // what is left of the input's memory budget each.
    let max = usize::try_from(
        ctx.discovery
            .limits
            .max_in_memory
            .saturating_mul(4)
            .min(ctx.memory_left() / 3),
    )
    .unwrap_or(usize::MAX);
    let mbox = is_mbox(&report.path);
    let mut lines = BufReader::new(reader);
    let mut message = Zeroizing::new(Vec::new());
    let mut line = Zeroizing::new(Vec::new());
    let mut number = 0usize;
    let mut too_big = false;
    loop {
        if ctx.deadline.passed() {
            report.degrade(Status::Partial, ctx.deadline.reason());
            break;
        }
        line.clear();
        // A line is read no further than the message may grow: one without
        // a line end cannot fill memory before it is found too large.
        let room = max.saturating_sub(message.len()).saturating_add(1) as u64;
        let n = match (&mut lines).take(room).read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                report.degrade(Status::Partial, limit_reason(&e));
                0
            }
        };
        report.bytes += n as u64;
        let starts_message = mbox && line.starts_with(b"From ");
        if (n == 0 || starts_message) && (!message.is_empty() || too_big) {
            number += 1;
            let name = if mbox {
                format!("{}!{number}", report.path)
            } else {
                report.path.clone()
            };
            if too_big {
                emit(ObjectReport::skipped(
                    name,
                    ObjectKind::Mail,
                    format!("message larger than {max} bytes"),
                ));
                report.degrade(Status::Partial, "a message was too large to read");
            } else {
                // Fits: the buffer holds at most twice `max` (it doubles).
                let _memory = ctx.reserve((message.capacity() + message.len()) as u64);
                scan_message(ctx, &name, &message, depth, emit, &mut report);
            }
            message.clear();
            too_big = false;
        }
        if n == 0 {
            break;
        }
        if message.len() + line.len() > max {
            too_big = true;
            message.clear();
        } else if !too_big {
            message.extend_from_slice(&line);
        }
    }
    emit(report);
}

fn scan_message(
    ctx: &Ctx<'_>,
    name: &str,
    raw: &[u8],
    depth: u32,
    emit: &mut dyn FnMut(ObjectReport),
    report: &mut ObjectReport,
) {
    let boundaries = memchr::memmem::find_iter(raw, b"boundary=").count();
    if boundaries > MAX_BOUNDARIES {
        report.degrade(
            Status::Partial,
            format!("a message declares more than {MAX_BOUNDARIES} MIME boundaries: not parsed"),
        );
        return;
    }
    let parsed = match mailparse::parse_mail(raw) {
        Ok(p) => p,
        Err(e) => {
            report.degrade(Status::Partial, format!("a message could not be parsed: {e}"));
            return;
        }
    };
    let mut leaf = 0usize;
    let mut stack = vec![&parsed];
    // Depth-first in document order.
    while let Some(part) = stack.pop() {
        if !part.subparts.is_empty() {
            stack.extend(part.subparts.iter().rev());
            continue;
        }
        leaf += 1;
        let filename = part
            .get_content_disposition()
            .params
            .get("filename")
            .or_else(|| part.ctype.params.get("name"))
            .map(|f| f.replace(['/', '\\', '!'], "_"));
        let part_name = filename.unwrap_or_else(|| {
            let ext = match part.ctype.mimetype.as_str() {
                "text/html" => "html",
                "text/csv" => "csv",
                _ => "txt",
            };
            format!("part{leaf}.{ext}")
        });
        let path = format!("{name}!{part_name}");
        match part.get_body_raw() {
            Ok(body) => {
                let body = Zeroizing::new(body);
                scan_stream(ctx, path, &mut Cursor::new(&body[..]), depth + 1, emit);
            }
            Err(e) => emit(ObjectReport::skipped(
                path,
                ObjectKind::Text,
                format!("cannot decode: {e}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_names() {
        assert!(is_mail("a/b/order.EML"));
        assert!(is_mail("x.zip!inbox.mbox"));
        assert!(is_mail("mbox"));
        assert!(!is_mail("mail.txt"));
        assert!(is_mbox("x/Inbox.mbox") && !is_mbox("a.eml"));
    }
}
