//! Output formats: a human summary, JSON Lines, CSV and SARIF 2.1.0.
//!
//! Every format is written from [`ObjectReport`]s as they arrive, so a scan
//! of millions of files holds at most the per-file counts of the summary.
//! Findings carry only masked values and keyed fingerprints; there is no
//! raw value here to print.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::{Category, Finding, ObjectReport, Status};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Counts per category per file, worst first, then what was not fully scanned.
    Human,
    /// One JSON object per line: each finding, then its object's status.
    Jsonl,
    /// One row per finding, with a header row.
    Csv,
    /// SARIF 2.1.0, one run.
    Sarif,
}

impl Format {
    /// Parses `human`, `jsonl`, `csv` or `sarif`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "human" | "text" => Some(Self::Human),
            "jsonl" | "json" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "sarif" => Some(Self::Sarif),
            _ => None,
        }
    }
}

/// Severity order for "worst first": what a leak of it costs the people affected.
pub fn severity(category: Category) -> u8 {
    match category {
        Category::Card => 0,
        Category::SecurityCode => 1,
        Category::MyNumber => 2,
        Category::Passport => 3,
        Category::ResidenceCard => 4,
        Category::BankAccount => 5,
        Category::Expiry => 6,
        Category::Phone => 7,
        Category::Email => 8,
        Category::Address => 9,
        Category::Name => 10,
        Category::PostalCode => 11,
        Category::CorporateNumber => 12,
        _ => 13,
    }
}

fn label_ja(category: Category) -> &'static str {
    match category {
        Category::Card => "カード番号",
        Category::SecurityCode => "セキュリティコード",
        Category::Expiry => "有効期限",
        Category::Email => "メールアドレス",
        Category::Phone => "電話番号",
        Category::PostalCode => "郵便番号",
        Category::MyNumber => "マイナンバー",
        Category::CorporateNumber => "法人番号",
        Category::Passport => "旅券番号",
        Category::ResidenceCard => "在留カード番号",
        Category::BankAccount => "口座番号",
        Category::Name => "氏名",
        Category::Address => "住所",
        _ => "その他",
    }
}

fn description(category: Category) -> &'static str {
    match category {
        Category::Card => "Payment card number (brand prefix and Luhn check)",
        Category::SecurityCode => "Card security code (CVV/CVC) next to its label: must never be stored",
        Category::Expiry => "Card expiry date near card context",
        Category::Email => "E-mail address",
        Category::Phone => "Japanese telephone number",
        Category::PostalCode => "Japanese postal code",
        Category::MyNumber => "My Number (individual number, check digit)",
        Category::CorporateNumber => "Corporate number (check digit)",
        Category::Passport => "Japanese passport number",
        Category::ResidenceCard => "Residence card number",
        Category::BankAccount => "Bank account number with bank context",
        Category::Name => "Person's name (by label or column header)",
        Category::Address => "Postal address (by label or column header)",
        _ => "Personal data",
    }
}

/// Findings of one category: all of them, and how many are public test values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every finding.
    pub all: u64,
    /// Well-known test values among them.
    pub test: u64,
}

/// What a run found, for the summary and for exit-code gating.
#[derive(Debug, Default)]
pub struct Summary {
    /// Objects reported (files, members, standard input).
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Objects partly scanned.
    pub partial: u64,
    /// Objects not scanned.
    pub skipped: u64,
    /// Findings per category.
    pub by_category: BTreeMap<Category, Counts>,
    files: Vec<(String, BTreeMap<Category, Counts>)>,
    incomplete: Vec<(String, Status, String)>,
}

impl Summary {
    fn add(&mut self, r: &ObjectReport) {
        self.objects += 1;
        self.bytes += r.bytes;
        match r.status {
            Status::Complete => {}
            Status::Partial => self.partial += 1,
            Status::Skipped => self.skipped += 1,
        }
        if r.status != Status::Complete {
            self.incomplete
                .push((r.path.clone(), r.status, r.reason.clone().unwrap_or_default()));
        }
        if r.findings.is_empty() {
            return;
        }
        // Counted in an array: two map entries per finding were about 1 % of
        // the instructions of a scan of small dense files.
        let mut counts = [Counts::default(); Category::ALL.len()];
        for f in &r.findings {
            let c = &mut counts[f.category.index()];
            c.all += 1;
            c.test += u64::from(f.test_value);
        }
        let counts: BTreeMap<Category, Counts> = Category::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, c)| c.all > 0)
            .collect();
        for (category, c) in &counts {
            let total = self.by_category.entry(*category).or_default();
            total.all += c.all;
            total.test += c.test;
        }
        self.files.push((r.path.clone(), counts));
    }

    /// Findings of `category`, test values left out unless `with_test`.
    pub fn count(&self, category: Category, with_test: bool) -> u64 {
        self.by_category
            .get(&category)
            .map_or(0, |c| if with_test { c.all } else { c.all - c.test })
    }

    /// Total findings.
    pub fn findings(&self) -> u64 {
        self.by_category.values().map(|c| c.all).sum()
    }

    /// Objects with at least one finding.
    pub fn objects_with_findings(&self) -> usize {
        self.files.len()
    }

    fn write_human(&mut self, out: &mut dyn Write) -> io::Result<()> {
        // Worst first: the most severe category present, then the most findings.
        self.files.sort_by(|(pa, a), (pb, b)| {
            let key = |m: &BTreeMap<Category, Counts>| {
                let worst = m.keys().map(|&c| severity(c)).min().unwrap_or(u8::MAX);
                let total: u64 = m.values().map(|c| c.all).sum();
                (worst, std::cmp::Reverse(total))
            };
            key(a).cmp(&key(b)).then_with(|| pa.cmp(pb))
        });
        writeln!(
            out,
            "anshin scan: {} objects, {} read, {} with personal data / 個人データを含むもの {} 件",
            self.objects,
            human_bytes(self.bytes),
            self.files.len(),
            self.files.len()
        )?;
        if !self.files.is_empty() {
            writeln!(
                out,
                "\nFindings per file, worst first / ファイルごとの検出数(重要度順):"
            )?;
            for (path, counts) in &self.files {
                writeln!(out, "  {}", printable(path))?;
                let mut cats: Vec<_> = counts.iter().collect();
                cats.sort_by_key(|(c, _)| severity(**c));
                let parts: Vec<String> = cats.iter().map(|(c, n)| count_text(**c, **n)).collect();
                writeln!(out, "      {}", parts.join(", "))?;
            }
        }
        if !self.incomplete.is_empty() {
            writeln!(out, "\nNot fully scanned / 一部または全部を読めなかったもの:")?;
            for (path, status, reason) in &self.incomplete {
                writeln!(out, "  {status:<8} {}: {}", printable(path), printable(reason))?;
            }
        }
        writeln!(out, "\nTotals / 合計:")?;
        if self.by_category.is_empty() {
            writeln!(out, "  no findings / 検出なし")?;
        }
        let mut cats: Vec<_> = self.by_category.iter().collect();
        cats.sort_by_key(|(c, _)| severity(**c));
        for (c, n) in cats {
            writeln!(out, "  {}", count_text(*c, *n))?;
        }
        if self.partial + self.skipped > 0 {
            writeln!(
                out,
                "  partial / 一部のみ: {}, skipped / 未スキャン: {}",
                self.partial, self.skipped
            )?;
        }
        Ok(())
    }
}

/// `text` for a terminal: control characters (line ends, ESC, C1 codes),
/// which a file name may hold, written as escapes (`\u{1b}`), so a name can
/// neither forge lines of the report nor send the terminal commands.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn count_text(c: Category, n: Counts) -> String {
    if n.test > 0 {
        format!(
            "{} ({}) {} (test / テスト用 {})",
            c.as_str(),
            label_ja(c),
            n.all,
            n.test
        )
    } else {
        format!("{} ({}) {}", c.as_str(), label_ja(c), n.all)
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[derive(Serialize)]
struct FindingRow<'a> {
    path: &'a str,
    line: usize,
    column: usize,
    byte_offset: usize,
    byte_len: usize,
    row: Option<usize>,
    field: Option<usize>,
    header: Option<&'a str>,
    key: Option<&'a str>,
    category: &'static str,
    kind: Option<&'static str>,
    confidence: &'static str,
    test_value: bool,
    masked: &'a str,
    fingerprint: String,
    /// Last, so that CSV columns added with new input kinds keep the old ones in place.
    page: Option<usize>,
    table: Option<&'a str>,
}

impl<'a> FindingRow<'a> {
    fn new(path: &'a str, f: &'a Finding) -> Self {
        let rec = f.locator.record.as_ref();
        Self {
            path,
            line: f.locator.line,
            column: f.locator.column,
            byte_offset: f.locator.byte_offset,
            byte_len: f.locator.byte_len,
            row: rec.map(|r| r.row),
            field: rec.map(|r| r.field),
            header: rec.and_then(|r| r.header.as_deref()),
            key: rec.and_then(|r| r.key.as_deref()),
            category: f.category.as_str(),
            kind: f.kind,
            confidence: f.confidence.as_str(),
            test_value: f.test_value,
            masked: &f.masked,
            fingerprint: f.fingerprint.to_hex(),
            page: f.locator.page,
            table: rec.and_then(|r| r.table.as_deref()),
        }
    }
}

/// Appends one finding as a JSON line: `"type":"finding"`, then the fields
/// of [`FindingRow`] in its order, byte for byte as serde_json writes that
/// struct (`json_rows_are_serde_rows` checks). Written by hand because
/// serde_json writes every key, quote and value as a separate small write:
/// on dense files (75 findings in 3 KB) that was a third of the CLI's
/// instructions, on the thread that also feeds the workers' results out.
/// `path` is the object's path as a JSON string, made once per object.
fn push_json_finding(out: &mut Vec<u8>, path: &[u8], f: &Finding) -> io::Result<()> {
    let loc = &f.locator;
    let rec = loc.record.as_ref();
    out.extend_from_slice(b"{\"type\":\"finding\",\"path\":");
    out.extend_from_slice(path);
    push_json_number(out, b",\"line\":", Some(loc.line));
    push_json_number(out, b",\"column\":", Some(loc.column));
    push_json_number(out, b",\"byte_offset\":", Some(loc.byte_offset));
    push_json_number(out, b",\"byte_len\":", Some(loc.byte_len));
    push_json_number(out, b",\"row\":", rec.map(|r| r.row));
    push_json_number(out, b",\"field\":", rec.map(|r| r.field));
    out.extend_from_slice(b",\"header\":");
    push_json_opt_str(out, rec.and_then(|r| r.header.as_deref()))?;
    out.extend_from_slice(b",\"key\":");
    push_json_opt_str(out, rec.and_then(|r| r.key.as_deref()))?;
    out.extend_from_slice(b",\"category\":");
    push_json_str(out, f.category.as_str())?;
    out.extend_from_slice(b",\"kind\":");
    push_json_opt_str(out, f.kind)?;
    out.extend_from_slice(b",\"confidence\":");
    push_json_str(out, f.confidence.as_str())?;
    out.extend_from_slice(if f.test_value {
        b",\"test_value\":true,\"masked\":"
    } else {
        b",\"test_value\":false,\"masked\":"
    });
    push_json_str(out, &f.masked)?;
    out.extend_from_slice(b",\"fingerprint\":\"");
    out.extend_from_slice(&f.fingerprint.hex());
    out.push(b'"');
    push_json_number(out, b",\"page\":", loc.page);
    out.extend_from_slice(b",\"table\":");
    push_json_opt_str(out, rec.and_then(|r| r.table.as_deref()))?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// `key` then the number, or `null`.
fn push_json_number(out: &mut Vec<u8>, key: &[u8], n: Option<usize>) {
    out.extend_from_slice(key);
    match n {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_json_opt_str(out: &mut Vec<u8>, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => push_json_str(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// usual case), else escaped by serde_json.
fn push_json_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s).map_err(json_err)
    }
}

#[derive(Serialize)]
struct JsonObject<'a> {
    r#type: &'static str,
    path: &'a str,
    kind: &'static str,
    status: &'static str,
    reason: Option<&'a str>,
    encoding: Option<&'static str>,
    decode_errors: bool,
    bytes: u64,
    findings: usize,
}

/// Writes reports in one format as they arrive.
pub struct ReportWriter<W: Write> {
    format: Format,
    out: W,
    summary: Summary,
    csv_started: bool,
    sarif_results: usize,
    /// JSON Lines not yet handed to `out` (masked values only).
    lines: Vec<u8>,
    /// The current object's path as a JSON string.
    path: Vec<u8>,
}

/// JSON Lines are handed to the writer once this many bytes are ready, so the
/// buffer stays small however many findings one object has.
const LINES_BUFFER: usize = 64 << 10;

impl<W: Write> std::fmt::Debug for ReportWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWriter")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::other(e)
}

impl<W: Write> ReportWriter<W> {
    /// A writer; SARIF writes its opening here.
    pub fn new(format: Format, mut out: W) -> io::Result<Self> {
        if format == Format::Sarif {
            let rules: Vec<serde_json::Value> = Category::ALL
                .iter()
                .map(|&c| {
                    serde_json::json!({
                        "id": c.as_str(),
                        "name": c.as_str(),
                        "shortDescription": {"text": description(c)},
                        "fullDescription": {"text": format!("{} / {}", description(c), label_ja(c))},
                        "defaultConfiguration": {"level": sarif_level(c)},
                    })
                })
                .collect();
            let driver = serde_json::json!({
                "name": "anshin-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/anshin",
                "rules": rules,
            });
            write!(
                out,
                "{{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\",\"runs\":[{{\"tool\":{{\"driver\":{}}},\"columnKind\":\"unicodeCodePoints\",\"results\":[",
                serde_json::to_string(&driver).map_err(json_err)?
            )?;
        }
        Ok(Self {
            format,
            out,
            summary: Summary::default(),
            csv_started: false,
            sarif_results: 0,
            lines: Vec::new(),
            path: Vec::new(),
        })
    }

    /// Writes one object's findings (and, for JSON Lines, its status).
    pub fn object(&mut self, r: &ObjectReport) -> io::Result<()> {
        self.summary.add(r);
        match self.format {
            Format::Human => {}
            Format::Jsonl => {
                // Lines are put together in a buffer of our own and written in
                // large pieces, not a call through the caller's writer (a
                // `dyn Write` in the CLI) per line.
                let lines = &mut self.lines;
                lines.clear();
                self.path.clear();
                push_json_str(&mut self.path, &r.path)?;
                for f in &r.findings {
                    push_json_finding(lines, &self.path, f)?;
                    if lines.len() >= LINES_BUFFER {
                        self.out.write_all(lines)?;
                        lines.clear();
                    }
                }
                let obj = JsonObject {
                    r#type: "object",
                    path: &r.path,
                    kind: r.kind.as_str(),
                    status: r.status.as_str(),
                    reason: r.reason.as_deref(),
                    encoding: r.encoding.map(|e| e.as_str()),
                    decode_errors: r.decode_errors,
                    bytes: r.bytes,
                    findings: r.findings.len(),
                };
                serde_json::to_writer(&mut *lines, &obj).map_err(json_err)?;
                lines.push(b'\n');
                self.out.write_all(lines)?;
            }
            Format::Csv => {
                if r.findings.is_empty() {
                    return Ok(());
                }
                let mut w = csv::WriterBuilder::new()
                    .has_headers(!self.csv_started)
                    .from_writer(&mut self.out);
                for f in &r.findings {
                    w.serialize(FindingRow::new(&r.path, f))
                        .map_err(io::Error::other)?;
                }
                w.flush()?;
                self.csv_started = true;
            }
            Format::Sarif => {
                for f in &r.findings {
                    if self.sarif_results > 0 {
                        self.out.write_all(b",")?;
                    }
                    self.sarif_results += 1;
                    serde_json::to_writer(&mut self.out, &sarif_result(&r.path, f)).map_err(json_err)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the output (the human summary is written here) and returns the summary.
    pub fn finish(mut self) -> io::Result<Summary> {
        match self.format {
            Format::Human => self.summary.write_human(&mut self.out)?,
            Format::Jsonl => {}
            Format::Csv => {
                if !self.csv_started {
                    let mut w = csv::Writer::from_writer(&mut self.out);
                    w.write_record(CSV_HEADER)?;
                    w.flush()?;
                }
            }
            Format::Sarif => {
                let notes: Vec<serde_json::Value> = self
                    .summary
                    .incomplete
                    .iter()
                    .map(|(path, status, reason)| {
                        serde_json::json!({
                            "level": if *status == Status::Skipped { "warning" } else { "note" },
                            "message": {"text": format!("{status}: {reason}")},
                            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(path)}}}],
                        })
                    })
                    .collect();
                let invocation = serde_json::json!({
                    "executionSuccessful": true,
                    "toolExecutionNotifications": notes,
                });
                write!(
                    self.out,
                    "],\"invocations\":[{}]}}]}}",
                    serde_json::to_string(&invocation).map_err(json_err)?
                )?;
                self.out.write_all(b"\n")?;
            }
        }
        self.out.flush()?;
        Ok(self.summary)
    }
}

const CSV_HEADER: [&str; 17] = [
    "path",
    "line",
    "column",
    "byte_offset",
    "byte_len",
    "row",
    "field",
    "header",
    "key",
    "category",
    "kind",
    "confidence",
    "test_value",
    "masked",
    "fingerprint",
    "page",
    "table",
];

fn sarif_level(c: Category) -> &'static str {
    match severity(c) {
        0..=5 => "error",
        6..=11 => "warning",
        _ => "note",
    }
}

fn sarif_result(path: &str, f: &Finding) -> serde_json::Value {
    let loc = &f.locator;
    let rec = loc.record.as_ref();
    let kind = f.kind.map(|k| format!(" {k}")).unwrap_or_default();
    let test = if f.test_value { ", test value" } else { "" };
    serde_json::json!({
        "ruleId": f.category.as_str(),
        "level": sarif_level(f.category),
        "message": {"text": format!(
            "{}{kind} ({} confidence{test}): {}",
            f.category.as_str(),
            f.confidence.as_str(),
            f.masked
        )},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": uri(path)},
            "region": {
                "startLine": loc.line,
                "startColumn": loc.column,
                "byteOffset": loc.byte_offset,
                "byteLength": loc.byte_len,
            },
        }}],
        "partialFingerprints": {"anshinFingerprint/v1": f.fingerprint.to_hex()},
        "properties": {
            "confidence": f.confidence.as_str(),
            "kind": f.kind,
            "testValue": f.test_value,
            "masked": f.masked,
            "row": rec.map(|r| r.row),
            "field": rec.map(|r| r.field),
            "header": rec.and_then(|r| r.header.as_deref()),
            "key": rec.and_then(|r| r.key.as_deref()),
            "page": loc.page,
            "table": rec.and_then(|r| r.table.as_deref()),
        },
    })
}

/// A relative URI reference for a path: `/` kept, `\` turned into `/`,
/// everything outside the unreserved set (and `!`) percent-encoded.
pub fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'!' => {
                out.push(char::from(b));
            }
            b'\\' => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fingerprint;

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(uri("a b/注文.csv"), "a%20b/%E6%B3%A8%E6%96%87.csv");
        assert_eq!(uri("x.zip!2024/o.csv"), "x.zip!2024/o.csv");
        assert_eq!(uri("c:\\d"), "c%3A/d");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("sarif"), Some(Format::Sarif));
        assert_eq!(Format::parse("jsonl"), Some(Format::Jsonl));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn severity_puts_cards_first() {
        let mut all = Category::ALL.to_vec();
        all.sort_by_key(|&c| severity(c));
        assert_eq!(all[0], Category::Card);
        assert_eq!(all[1], Category::SecurityCode);
        assert_eq!(sarif_level(Category::Card), "error");
        assert_eq!(sarif_level(Category::CorporateNumber), "note");
    }

    /// A card finding in a PDF, on page 3.
    fn card_on_page_3() -> Finding {
        Finding {
            category: Category::Card,
            confidence: crate::Confidence::High,
            kind: Some("visa"),
            test_value: false,
            masked: "4539 01•• •••• 1234".to_owned(),
            fingerprint: Fingerprint([7; 32]),
            locator: crate::Locator {
                byte_offset: 21,
                byte_len: 16,
                line: 2,
                column: 14,
                record: None,
                page: Some(3),
            },
        }
    }

    #[test]
    fn pages_are_in_every_format() {
        let finding = card_on_page_3();
        let mut r = ObjectReport::new("a.pdf".to_owned(), crate::ObjectKind::Pdf);
        r.findings.push(finding);
        let write = |format| {
            let mut out = Vec::new();
            let mut w = ReportWriter::new(format, &mut out).expect("writer");
            w.object(&r).expect("object");
            w.finish().expect("finish");
            String::from_utf8(out).expect("utf-8")
        };
        let csv = write(Format::Csv);
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = rows
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, CSV_HEADER);
        let row = rows.records().next().expect("row").expect("record");
        assert_eq!(&row[CSV_HEADER.len() - 2], "3");
        let json: serde_json::Value =
            serde_json::from_str(write(Format::Jsonl).lines().next().expect("line")).expect("json");
        assert_eq!(json["page"], 3);
        let sarif: serde_json::Value = serde_json::from_str(&write(Format::Sarif)).expect("sarif");
        assert_eq!(sarif["runs"][0]["results"][0]["properties"]["page"], 3);
        assert!(write(Format::Human).contains("a.pdf"));
    }

    /// A file named to rewrite the terminal or forge a report line is shown
    /// with its control characters escaped.
    #[test]
    fn control_characters_in_names_are_escaped_in_the_summary() {
        let mut summary = Summary::default();
        let mut r = ObjectReport::new("a\u{1b}[2Jb\nFAKE".into(), crate::ObjectKind::Text);
        r.findings.push(card_on_page_3());
        r.degrade(Status::Partial, "cut\r");
        summary.add(&r);
        let mut out = Vec::new();
        summary.write_human(&mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            !text.contains('\u{1b}') && !text.contains("\nFAKE") && !text.contains('\r'),
            "{text}"
        );
        assert!(
            text.contains("a\\u{1b}[2Jb\\nFAKE") && text.contains("cut\\r"),
            "{text}"
        );
        assert_eq!(printable("注文.csv"), "注文.csv");
    }

    #[test]
    fn json_rows_are_serde_rows() {
        // The serde form the hand-written rows stand for: "type" first, then FindingRow.
        #[derive(Serialize)]
        struct JsonFinding<'a> {
            r#type: &'static str,
            #[serde(flatten)]
            row: FindingRow<'a>,
        }
        let mut plain = card_on_page_3();
        plain.test_value = true;
        let mut awkward = plain.clone();
        awkward.kind = None;
        awkward.test_value = false;
        awkward.masked = "a\"b\\c\n\u{1}\u{7f}•".to_owned();
        awkward.locator.page = None;
        awkward.locator.record = Some(crate::RecordLocator {
            row: 7,
            field: 0,
            header: Some("カード\t番号".to_owned()),
            key: Some("id=\"9\"".to_owned()),
            table: Some("orders".to_owned()),
        });
        let mut all_none = awkward.clone();
        if let Some(rec) = all_none.locator.record.as_mut() {
            rec.header = None;
            rec.key = None;
            rec.table = None;
        }
        for (path, f) in [("a.pdf", &plain), ("dir/\"x\"\r.csv", &awkward), ("t", &all_none)] {
            let (mut ours, mut path_json) = (Vec::new(), Vec::new());
            push_json_str(&mut path_json, path).expect("into memory");
            push_json_finding(&mut ours, &path_json, f).expect("into memory");
            let mut theirs = serde_json::to_vec(&JsonFinding {
                r#type: "finding",
                row: FindingRow::new(path, f),
            })
            .expect("serde");
            theirs.push(b'\n');
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
