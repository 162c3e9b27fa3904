//! Builders of test inputs (archives, office files, PDFs, mail bodies, card numbers), shared
//! by this crate's tests and the CLI's (`features = ["test-support"]`), so
//! that the fixtures are made in test code, at run time, the same way
//! everywhere. Not part of the scanning API.

use std::io::{Cursor, Write as _};

/// A Luhn-valid number with the given prefix and length: filler digits from
/// a fixed sequence, so not one of the well-known test numbers.
pub fn luhn_complete(prefix: &str, len: usize) -> String {
    let mut digits: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut x = 7u32;
    while digits.len() < len - 1 {
        x = (x * 31 + 11) % 97;
        digits.push(x % 10);
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from(b'0' + *d as u8)).collect()
}

/// A zip of these members, deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, options).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// A gzip stream of `data`.
pub fn gzip_of(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gz");
    e.finish().expect("gz")
}

/// `data` as a stream of `kind` (gzip, bzip2, xz, zstd or lz4), written by
/// those formats' encoders (not anshin's decoders).
pub fn compressed_of(kind: crate::ObjectKind, data: &[u8]) -> Vec<u8> {
    use crate::ObjectKind;
    match kind {
        ObjectKind::Gzip => gzip_of(data),
        ObjectKind::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(data).expect("bzip2");
            e.finish().expect("bzip2")
        }
        ObjectKind::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).expect("xz");
            e.finish().expect("xz")
        }
        ObjectKind::Zstd => zstd::stream::encode_all(data, 3).expect("zstd"),
        ObjectKind::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).expect("lz4");
            e.finish().expect("lz4")
        }
        other => panic!("{} is not a compressed stream", other.as_str()),
    }
}

/// A tar of these members (regular files).
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// Base64 with CRLF line breaks, as mail attachments are written.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(T[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PDF whose pages hold these lines of text (Courier, one text object per
/// line), written with lopdf; content streams compressed as most PDFs are.
pub fn pdf_of(pages: &[&[&str]]) -> Vec<u8> {
    pdf_with_files(pages, &[], &[])
}

/// A PDF as [`pdf_of`] makes, with files attached: `embedded` in the
/// catalog's `EmbeddedFiles` name tree (split over two leaves under a root
/// of kids, as long lists are), `annotated` as `/FileAttachment`
/// annotations on the first page. Streams compressed.
pub fn pdf_with_files(pages: &[&[&str]], embedded: &[(&str, &[u8])], annotated: &[(&str, &[u8])]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Object, Stream, dictionary};
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Courier",
    });
    let resources_id = doc.add_object(dictionary! {"Font" => dictionary! {"F1" => font_id}});
    let file_spec = |doc: &mut lopdf::Document, name: &str, data: &[u8]| {
        let stream = doc.add_object(Stream::new(dictionary! {"Type" => "EmbeddedFile"}, data.to_vec()));
        doc.add_object(dictionary! {
            "Type" => "Filespec",
            "F" => Object::string_literal(name),
            "UF" => lopdf::text_string(name),
            "EF" => dictionary! {"F" => stream},
        })
    };
    let mut annotations = Vec::new();
    for (name, data) in annotated {
        let spec = file_spec(&mut doc, name, data);
        annotations.push(Object::Reference(doc.add_object(dictionary! {
            "Type" => "Annot",
            "Subtype" => "FileAttachment",
            "Rect" => vec![10.into(), 10.into(), 30.into(), 30.into()],
            "FS" => spec,
        })));
    }
    let mut kids = Vec::new();
    for (k, lines) in pages.iter().enumerate() {
        let mut operations = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let y = 800 - 20 * i64::try_from(i).expect("few lines");
            operations.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 10.into()]),
                Operation::new("Td", vec![40.into(), y.into()]),
                Operation::new("Tj", vec![Object::string_literal(*line)]),
                Operation::new("ET", vec![]),
            ]);
        }
        let content = Content { operations }.encode().expect("content");
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        };
        if k == 0 && !annotations.is_empty() {
            page.set("Annots", annotations.clone());
        }
        kids.push(doc.add_object(page).into());
    }
    let count = i64::try_from(kids.len()).expect("few pages");
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let mut catalog = dictionary! {"Type" => "Catalog", "Pages" => pages_id};
    if !embedded.is_empty() {
        let mut leaves = Vec::new();
        for half in embedded.chunks(embedded.len().div_ceil(2)) {
            let mut names = Vec::new();
            for (name, data) in half {
                names.push(lopdf::text_string(name));
                names.push(Object::Reference(file_spec(&mut doc, name, data)));
            }
            leaves.push(Object::Reference(doc.add_object(dictionary! {"Names" => names})));
        }
        catalog.set(
            "Names",
            dictionary! {"EmbeddedFiles" => dictionary! {"Kids" => leaves}},
        );
    }
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// A paragraph cut in two at its middle character: the two formatting runs
/// Word and PowerPoint leave after an edit, so that a value is split too.
fn halves(p: &str) -> (&str, &str) {
    let cut = p.char_indices().nth(p.chars().count() / 2).map_or(0, |(i, _)| i);
    p.split_at(cut)
}

/// A Word file whose body holds these paragraphs, each split over two runs.
pub fn docx_of(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| {
            let (a, b) = halves(p);
            format!("<w:p><w:r><w:t>{a}</w:t></w:r><w:r><w:t xml:space=\"preserve\">{b}</w:t></w:r></w:p>")
        })
        .collect();
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    zip_of(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", doc.as_bytes()),
    ])
}

/// A PowerPoint file whose slides, in slide-show order, hold these
/// paragraphs (each split over two runs, as after an edit). The parts are
/// numbered backwards (show slide 1 is `ppt/slides/slide{n}.xml`), as in a
/// deck whose slides were reordered: the slide number must come from the
/// slide list, not from the part name.
pub fn pptx_of(slides: &[&[&str]]) -> Vec<u8> {
    let n = slides.len();
    let mut parts: Vec<(String, String)> = Vec::new();
    let mut ids = String::new();
    let mut rels = String::from("<Relationships>");
    for (k, paragraphs) in slides.iter().enumerate() {
        let file = n - k;
        let body: String = paragraphs
            .iter()
            .map(|p| {
                let (a, b) = halves(p);
                format!(
                    "<a:p><a:r><a:rPr lang=\"ja-JP\"/><a:t>{a}</a:t></a:r><a:r><a:t>{b}</a:t></a:r></a:p>"
                )
            })
            .collect();
        parts.push((
            format!("ppt/slides/slide{file}.xml"),
            format!(
                "<p:sld xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"><p:cSld><p:spTree><p:sp><p:txBody><a:bodyPr/>{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
            ),
        ));
        ids.push_str(&format!("<p:sldId id=\"{}\" r:id=\"rId{}\"/>", 256 + k, 10 + k));
        rels.push_str(&format!(
            "<Relationship Id=\"rId{}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide\" Target=\"slides/slide{file}.xml\"/>",
            10 + k
        ));
    }
    rels.push_str("</Relationships>");
    let presentation = format!(
        "<p:presentation xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"
    );
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", b"<Types/>"),
        ("ppt/presentation.xml", presentation.as_bytes()),
        ("ppt/_rels/presentation.xml.rels", rels.as_bytes()),
    ];
    for (name, xml) in &parts {
        entries.push((name, xml.as_bytes()));
    }
    zip_of(&entries)
}
