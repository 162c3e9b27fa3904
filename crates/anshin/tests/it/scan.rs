//! `anshin scan` through the built binary: values planted in every supported
//! kind of input and encoding are found at their exact locators, and no
//! output format ever contains a planted raw value. Assertions never print a
//! raw value: failures show paths, categories and masked forms only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anshin_scan::test_support::{base64, docx_of, gzip_of, luhn_complete, pdf_of, pptx_of, tar_of, zip_of};
use serde_json::Value;

use crate::scan_support::{
    EUC_JP_ADDRESS, EUC_JP_NAME, assert_no_raw_values, euc_jp_customers, objects_by_path, pg_dump,
    scratch_database,
};

pub(crate) fn anshin_scan(data_dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .arg("scan")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ANSHIN_DATABASE_URL")
        .env_remove("ANSHIN_SCAN_FINGERPRINT_KEY")
        .env("ANSHIN_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run anshin scan");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

fn encode(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
    let (bytes, _, errors) = encoding.encode(text);
    assert!(!errors, "test text not encodable");
    bytes.into_owned()
}

/// One planted value: where it must be reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expect {
    path: String,
    category: &'static str,
    byte_offset: u64,
    line: u64,
    column: u64,
    row: Option<u64>,
    header: Option<&'static str>,
}

impl Expect {
    /// A value outside any table: no row, no header.
    fn at(path: String, category: &'static str, byte_offset: u64, line: u64, column: u64) -> Self {
        Self {
            path,
            category,
            byte_offset,
            line,
            column,
            row: None,
            header: None,
        }
    }
}

/// Raw values planted in the tree, for the leak check (never printed).
struct Planted {
    raw: Vec<String>,
    expected: Vec<Expect>,
}

/// 1-based column, in characters, of `needle` in `line`.
fn column_of(line: &str, needle: &str) -> u64 {
    line[..line.find(needle).expect("in line")].chars().count() as u64 + 1
}

fn plant(root: &Path) -> Planted {
    let mut raw = Vec::new();
    let mut expected = Vec::new();
    let rel = |name: &str| format!("{}/{name}", root.display());

    // Plain UTF-8 text with a label: a card written in 4-digit groups.
    let card = luhn_complete("453201", 16);
    let grouped = format!("{} {} {} {}", &card[..4], &card[4..8], &card[8..12], &card[12..]);
    let text = format!("ご注文の控え\nお支払い: カード番号 {grouped}\n");
    std::fs::write(root.join("note.txt"), &text).expect("write");
    expected.push(Expect::at(
        rel("note.txt"),
        "card",
        text.find(&grouped).expect("planted") as u64,
        2,
        13,
    ));
    raw.push(card.clone());
    raw.push(grouped);

    // Full-width digits and a My Number with its label.
    let my_number = "621498320257";
    let fw: String = my_number
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).expect("full-width"))
        .collect();
    let text = format!("マイナンバー：{fw}\n");
    std::fs::write(root.join("mynumber.txt"), &text).expect("write");
    expected.push(Expect::at(
        rel("mynumber.txt"),
        "my_number",
        text.find(&fw).expect("planted") as u64,
        1,
        8,
    ));
    raw.push(my_number.to_owned());
    raw.push(fw);

    // Legacy encodings and UTF-16, each with its own card.
    type Encoder = fn(&str) -> Vec<u8>;
    let encodings: [(&str, &str, Encoder); 4] = [
        ("sjis.txt", "3540", |t| encode(t, encoding_rs::SHIFT_JIS)),
        ("eucjp.txt", "3569", |t| encode(t, encoding_rs::EUC_JP)),
        ("jis.txt", "5412", |t| encode(t, encoding_rs::ISO_2022_JP)),
        ("utf16.txt", "2221", |t| {
            [
                &[0xFF, 0xFE][..],
                &t.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>(),
            ]
            .concat()
        }),
    ];
    for (name, prefix, enc) in encodings {
        let card = luhn_complete(prefix, 16);
        let text = format!("お客様各位\nカード番号：{card}\n");
        let bytes = enc(&text);
        // The card's raw offset: encode the text before it.
        let before = enc(&text[..text.find(&card).expect("planted")]);
        // ISO-2022-JP: the encoded prefix ends with the switch back to ASCII
        // (ESC ( B), as the full text does right before the digits.
        let offset = before.len();
        expected.push(Expect::at(rel(name), "card", offset as u64, 2, 7));
        std::fs::write(root.join(name), bytes).expect("write");
        raw.push(card);
    }

    // CSV with a header: the row and the column header locate the cell.
    let card = luhn_complete("5555", 16);
    let csv = format!(
        "注文番号,氏名,電話番号,email,カード番号\nA-1,山田 太郎,090-1234-5678,taro.yamada@example.com,\nA-2,佐藤 花子,080-2345-6789,hanako.sato@example.org,{card}\n"
    );
    std::fs::write(root.join("orders.csv"), &csv).expect("write");
    expected.push(Expect {
        path: rel("orders.csv"),
        category: "card",
        byte_offset: csv.find(&card).expect("planted") as u64,
        line: 3,
        column: column_of(csv.lines().nth(2).expect("line"), &card),
        row: Some(3),
        header: Some("カード番号"),
    });
    expected.push(Expect {
        path: rel("orders.csv"),
        category: "phone",
        byte_offset: csv.find("090-1234-5678").expect("planted") as u64,
        line: 2,
        column: column_of(csv.lines().nth(1).expect("line"), "090-1234-5678"),
        row: Some(2),
        header: Some("電話番号"),
    });
    raw.extend([
        card.clone(),
        "09012345678".into(),
        "090-1234-5678".into(),
        "taro.yamada".into(),
        "山田 太郎".into(),
        "佐藤 花子".into(),
    ]);

    // A Word document (the card split over two runs) and an Excel sheet.
    let card = luhn_complete("3566", 16);
    let docx = docx_of(&["ご注文ありがとうございます。", &format!("カード番号：{card}")]);
    std::fs::write(root.join("letter.docx"), docx).expect("write");
    let extracted = format!("ご注文ありがとうございます。\nカード番号：{card}\n");
    expected.push(Expect::at(
        rel("letter.docx!word/document.xml"),
        "card",
        extracted.find(&card).expect("planted") as u64,
        2,
        7,
    ));
    raw.push(card);

    let card = luhn_complete("5412", 16);
    let sheet = format!(
        "<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"C1\" t=\"s\"><v>1</v></c></row><row r=\"7\"><c r=\"A7\" t=\"s\"><v>2</v></c><c r=\"C7\" t=\"inlineStr\"><is><t>{card}</t></is></c></row></sheetData></worksheet>"
    );
    let sst = "<sst><si><t>氏名</t></si><si><t>カード番号</t></si><si><t>鈴木 一郎</t></si></sst>";
    std::fs::write(
        root.join("orders.xlsx"),
        zip_of(&[
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
            ("xl/sharedStrings.xml", sst.as_bytes()),
        ]),
    )
    .expect("write");
    // The sheet as the scanner reads it: rows 2–6 are empty records.
    let tsv = format!("氏名\t\tカード番号\n\n\n\n\n\n鈴木 一郎\t\t{card}\n");
    expected.push(Expect {
        path: rel("orders.xlsx!xl/worksheets/sheet1.xml"),
        category: "card",
        byte_offset: tsv.find(&card).expect("planted") as u64,
        line: 7,
        column: 3,
        row: Some(7),
        header: Some("カード番号"),
    });
    raw.extend([card, "鈴木 一郎".to_owned()]);

    // A PDF: the card on page 2; line, column and offset in that page's text.
    let card = luhn_complete("4485", 16);
    let line = format!("Card number: {card}");
    let pdf = pdf_of(&[&["Order confirmation"], &["Payment", &line]]);
    std::fs::write(root.join("receipt.pdf"), pdf).expect("write");
    expected.push(Expect::at(
        rel("receipt.pdf"),
        "card",
        ("Payment\n".len() + line.find(&card).expect("planted")) as u64,
        2,
        14,
    ));
    raw.push(card);

    // A presentation: the card on show slide 2, stored as slide1.xml.
    let card = luhn_complete("3530", 16);
    let pptx = pptx_of(&[&["ご注文の控え"], &["お支払い", &format!("カード番号：{card}")]]);
    std::fs::write(root.join("deck.pptx"), pptx).expect("write");
    let extracted = format!("お支払い\nカード番号：{card}\n");
    expected.push(Expect::at(
        rel("deck.pptx!ppt/slides/slide1.xml"),
        "card",
        extracted.find(&card).expect("planted") as u64,
        2,
        7,
    ));
    raw.push(card);

    // A pg_dump with the card in a COPY block: table, row and column name.
    let card = luhn_complete("3541", 16);
    let dump = format!(
        "-- PostgreSQL database dump\nCREATE TABLE public.payments (\n    id integer,\n    card_number text\n);\n\
         COPY public.payments (id, card_number) FROM stdin;\n1\t\\N\n2\t{card}\n\\.\n"
    );
    std::fs::write(root.join("dump.sql"), &dump).expect("write");
    expected.push(Expect {
        path: rel("dump.sql"),
        category: "card",
        byte_offset: dump.find(&card).expect("planted") as u64,
        line: 8,
        column: 3,
        row: Some(2),
        header: Some("card_number"),
    });
    raw.push(card);

    // The same CSV inside a zip, a tar.gz and a gz.
    let zip = zip_of(&[("2024/orders.csv", csv.as_bytes())]);
    std::fs::write(root.join("orders.zip"), zip).expect("write");
    let tgz = gzip_of(&tar_of(&[("export/orders.csv", csv.as_bytes())]));
    std::fs::write(root.join("backup.tar.gz"), tgz).expect("write");
    std::fs::write(root.join("orders.csv.gz"), gzip_of(csv.as_bytes())).expect("write");
    let csv_card = expected
        .iter()
        .find(|e| e.path == rel("orders.csv") && e.category == "card")
        .cloned()
        .expect("csv card");
    // An OpenDocument spreadsheet: the table's row and column.
    let card = luhn_complete("3589", 16);
    let content = format!(
        "<office:document-content><office:body><office:spreadsheet><table:table table:name=\"Sheet1\"><table:table-row><table:table-cell><text:p>カード番号</text:p></table:table-cell></table:table-row><table:table-row table:number-rows-repeated=\"2\"><table:table-cell/></table:table-row><table:table-row><table:table-cell><text:p>{card}</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"
    );
    std::fs::write(
        root.join("book.ods"),
        zip_of(&[
            ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"),
            ("META-INF/manifest.xml", b"<manifest/>"),
            ("content.xml", content.as_bytes()),
        ]),
    )
    .expect("write");
    let tsv = format!("カード番号\n{card}\n");
    expected.push(Expect {
        path: rel("book.ods!content.xml#Sheet1"),
        category: "card",
        byte_offset: tsv.find(&card).expect("planted") as u64,
        line: 4,
        column: 1,
        row: Some(4),
        header: Some("カード番号"),
    });
    raw.push(card);

    // And as a base64 attachment of an e-mail.
    let eml = format!(
        "From: shop@example.com\r\nSubject: orders\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n\
         --B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"orders.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        base64(csv.as_bytes())
    );
    std::fs::write(root.join("order.eml"), eml).expect("write");
    for inner in [
        "orders.zip!2024/orders.csv",
        "backup.tar.gz!export/orders.csv",
        "orders.csv.gz!orders.csv",
        "order.eml!orders.csv",
    ] {
        expected.push(Expect {
            path: rel(inner),
            ..csv_card.clone()
        });
    }
    expected.sort();
    Planted { raw, expected }
}

pub(crate) fn jsonl(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn found(lines: &[Value], category: &str) -> Vec<Expect> {
    lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["category"] == category)
        .map(|v| Expect {
            path: v["path"].as_str().unwrap_or_default().to_owned(),
            category: if category == "card" { "card" } else { "phone" },
            byte_offset: v["byte_offset"].as_u64().unwrap_or(u64::MAX),
            line: v["line"].as_u64().unwrap_or(0),
            column: v["column"].as_u64().unwrap_or(0),
            row: v["row"].as_u64(),
            header: match v["header"].as_str() {
                Some("カード番号") => Some("カード番号"),
                Some("電話番号") => Some("電話番号"),
                Some("card_number") => Some("card_number"),
                Some(_) => Some("?"),
                None => None,
            },
        })
        .collect()
}

#[test]
fn planted_values_are_found_at_their_exact_locators_in_every_kind_and_encoding() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let planted = plant(tree.path());
    let root = tree.path().to_str().expect("utf-8 path");
    let out = anshin_scan(data.path(), &[root, "--format", "jsonl", "--threads", "2"], None);
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = jsonl(&out);

    let mut cards = found(&lines, "card");
    cards.sort();
    let mut phones = found(&lines, "phone");
    phones.retain(|p| p.path == format!("{root}/orders.csv") && p.line == 2);
    let mut expected_cards: Vec<Expect> = planted
        .expected
        .iter()
        .filter(|e| e.category == "card")
        .cloned()
        .collect();
    expected_cards.sort();
    assert_eq!(cards, expected_cards);
    let expected_phone: Vec<Expect> = planted
        .expected
        .iter()
        .filter(|e| e.category == "phone")
        .cloned()
        .collect();
    assert_eq!(phones, expected_phone);

    let my_numbers: Vec<&Value> = lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["category"] == "my_number")
        .collect();
    assert_eq!(my_numbers.len(), 1);
    let expect_mn = planted
        .expected
        .iter()
        .find(|e| e.category == "my_number")
        .expect("my number");
    assert_eq!(my_numbers[0]["byte_offset"].as_u64(), Some(expect_mn.byte_offset));
    assert_eq!(my_numbers[0]["column"].as_u64(), Some(expect_mn.column));
    assert_eq!(my_numbers[0]["confidence"], "high");

    // Every object is reported once with its encoding and status.
    let objects: BTreeMap<String, &Value> = lines
        .iter()
        .filter(|v| v["type"] == "object")
        .map(|v| (v["path"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    let enc = |name: &str| {
        objects[&format!("{root}/{name}")]["encoding"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(enc("sjis.txt").as_deref(), Some("shift_jis"));
    assert_eq!(enc("eucjp.txt").as_deref(), Some("euc-jp"));
    assert_eq!(enc("jis.txt").as_deref(), Some("iso-2022-jp"));
    assert_eq!(enc("utf16.txt").as_deref(), Some("utf-16le"));
    assert_eq!(objects[&format!("{root}/orders.zip")]["kind"], "zip");
    assert_eq!(
        objects[&format!("{root}/letter.docx!word/document.xml")]["kind"],
        "docx"
    );
    assert_eq!(
        objects[&format!("{root}/orders.xlsx!xl/worksheets/sheet1.xml")]["kind"],
        "xlsx"
    );
    assert_eq!(objects[&format!("{root}/order.eml")]["kind"], "mail");
    assert_eq!(objects[&format!("{root}/receipt.pdf")]["kind"], "pdf");
    assert_eq!(objects[&format!("{root}/dump.sql")]["kind"], "sql");
    // Only the dump's findings have a table.
    for v in lines.iter().filter(|v| v["type"] == "finding") {
        let in_dump = v["path"].as_str().is_some_and(|p| p.ends_with("dump.sql"));
        assert_eq!(
            v["table"].as_str(),
            in_dump.then_some("public.payments"),
            "{}",
            v["path"]
        );
    }
    assert_eq!(
        objects[&format!("{root}/deck.pptx!ppt/slides/slide1.xml")]["kind"],
        "pptx"
    );
    // Only the PDF's and the slide's findings have a page (slide 2 of the show).
    for v in lines.iter().filter(|v| v["type"] == "finding") {
        let paged = v["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("receipt.pdf") || p.ends_with("deck.pptx!ppt/slides/slide1.xml"));
        assert_eq!(v["page"].as_u64(), paged.then_some(2), "{}", v["path"]);
    }
    assert!(objects.values().all(|o| o["status"] == "complete"));
}

#[test]
fn no_output_format_ever_contains_a_planted_raw_value() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let planted = plant(tree.path());
    let root = tree.path().to_str().expect("utf-8 path");
    assert_no_raw_values(data.path(), &[root], &planted.raw);
    // The same through standard input and an output file.
    let csv = std::fs::read(tree.path().join("orders.csv")).expect("read");
    let report = data.path().join("report.sarif");
    let out = anshin_scan(
        data.path(),
        &["-", "--format", "sarif", "-o", report.to_str().expect("path")],
        Some(&csv),
    );
    assert!(out.status.success());
    let written = std::fs::read_to_string(&report).expect("report");
    for value in &planted.raw {
        assert!(
            !written.contains(value.as_str()),
            "a planted value appears in the SARIF file"
        );
    }
}

#[test]
fn sarif_is_a_2_1_0_log_with_locations() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    plant(tree.path());
    let root = tree.path().to_str().expect("utf-8 path");
    let out = anshin_scan(data.path(), &[root, "--format", "sarif"], None);
    assert!(out.status.success());
    let log: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "anshin-scan");
    assert_eq!(run["columnKind"], "unicodeCodePoints");
    let results = run["results"].as_array().expect("results");
    let zipped = results
        .iter()
        .find(|r| {
            r["ruleId"] == "card"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("orders.zip!2024/orders.csv"))
        })
        .expect("card in the zip");
    let region = &zipped["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 3);
    assert_eq!(zipped["level"], "error");
    assert_eq!(
        zipped["partialFingerprints"]["anshinFingerprint/v1"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert_eq!(zipped["properties"]["row"], 3);
    let in_pdf = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .is_some_and(|u| u.ends_with("receipt.pdf"))
        })
        .expect("card in the PDF");
    assert_eq!(in_pdf["ruleId"], "card");
    assert_eq!(in_pdf["properties"]["page"], 2);
    assert_eq!(
        in_pdf["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
}

#[test]
fn fail_on_gates_the_exit_code_and_ignores_test_numbers() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tree.path().join("sandbox.txt"),
        "テスト用カード番号: 4111 1111 1111 1111\n",
    )
    .expect("write");
    let root = tree.path().to_str().expect("path");
    let out = anshin_scan(data.path(), &[root, "--fail-on", "card,cvc"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a public test number does not fail the gate"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test / テスト用 1"));

    let card = luhn_complete("4532", 16);
    std::fs::write(tree.path().join("leak.log"), format!("card={card} cvc=123\n")).expect("write");
    let out = anshin_scan(data.path(), &[root, "--fail-on", "card,cvc"], None);
    assert_eq!(out.status.code(), Some(6));
    let out = anshin_scan(data.path(), &[root, "--fail-on", "email"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = anshin_scan(data.path(), &[root], None);
    assert_eq!(out.status.code(), Some(0), "no gate, no failure");
    let out = anshin_scan(data.path(), &[root, "--fail-on", "cards"], None);
    assert_eq!(out.status.code(), Some(2), "unknown category is a usage error");
}

/// A path named on the command line that does not exist fails the run (4)
/// before anything is scanned or written: a mistyped path must not pass a
/// gate as a clean scan of nothing. The path is masked in the message like
/// any report path.
#[test]
fn a_missing_path_fails_the_run_before_anything_is_scanned() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let card = luhn_complete("4532", 16);
    std::fs::write(tree.path().join("leak.log"), format!("card={card}\n")).expect("write");
    let missing = tree.path().join(format!("uploads-{card}"));
    let report = data.path().join("report.jsonl");
    let args = [
        tree.path().to_str().expect("path"),
        missing.to_str().expect("path"),
        "--fail-on",
        "card",
        "-o",
        report.to_str().expect("path"),
    ];
    let out = anshin_scan(data.path(), &args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("cannot read") && stderr.contains("uploads-4532"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&card),
        "the card number in the path is masked: {stderr}"
    );
    assert!(!report.exists(), "nothing is written");
    // Named alone, the existing tree is scanned and trips the gate.
    let out = anshin_scan(data.path(), &[args[0], "--fail-on", "card"], None);
    assert_eq!(out.status.code(), Some(6));
}

/// `--only`: a card-data scope scan reports card data and nothing else, in
/// every format and in the inventory, and refuses a gate it could never trip.
#[test]
fn only_reports_the_categories_asked_for() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let card = luhn_complete("4532", 16);
    std::fs::write(
        tree.path().join("orders.txt"),
        format!("氏名：山田太郎\nメール taro@example.com\nTEL 090-1234-5678\nカード番号 {card} セキュリティコード 123\n"),
    )
    .expect("write");
    let root = tree.path().to_str().expect("path");
    let categories = |args: &[&str]| {
        let out = anshin_scan(data.path(), args, None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "finding")
            .map(|v| v["category"].as_str().unwrap_or_default().to_owned())
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        categories(&[root, "--json"]),
        ["card", "cvc", "email", "name", "phone"]
    );
    assert_eq!(
        categories(&[root, "--json", "--only", "card,cvv"]),
        ["card", "cvc"]
    );
    assert_eq!(categories(&[root, "--json", "--only", "name"]), ["name"]);

    let inventory = tree.path().join("inventory.json");
    let inv = inventory.to_str().expect("path");
    let out = anshin_scan(
        data.path(),
        &[
            root,
            "--exclude",
            "inventory.json",
            "--only",
            "card",
            "--inventory",
            inv,
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written: Value =
        serde_json::from_slice(&std::fs::read(&inventory).expect("inventory")).expect("json");
    assert_eq!(written["parameters"]["categories"], serde_json::json!(["card"]));
    assert_eq!(
        written["totals"]["categories"].as_object().map(|c| c.len()),
        Some(1)
    );

    let out = anshin_scan(data.path(), &[root, "--only", "card", "--fail-on", "email"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a gate --only leaves out is a usage error"
    );
    let out = anshin_scan(data.path(), &[root, "--only", "cards"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--only"));
}

#[test]
fn human_summary_lists_worst_files_first() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    std::fs::write(tree.path().join("a-mail.txt"), "連絡先 taro@example.com\n").expect("write");
    let card = luhn_complete("3569", 16);
    std::fs::write(tree.path().join("z-cards.txt"), format!("カード番号 {card}\n")).expect("write");
    let out = anshin_scan(data.path(), &[tree.path().to_str().expect("path")], None);
    let text = String::from_utf8_lossy(&out.stdout);
    let cards_at = text.find("z-cards.txt").expect("cards file listed");
    let mail_at = text.find("a-mail.txt").expect("mail file listed");
    assert!(cards_at < mail_at, "the file with a card number comes first");
    assert!(text.contains("card (カード番号) 1"));
    assert!(text.contains("Totals / 合計"));
}

#[test]
fn symbolic_links_are_not_followed_and_globs_filter() {
    let data = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let card = luhn_complete("4532", 16);
    std::fs::write(outside.path().join("secret.txt"), format!("カード番号 {card}\n")).expect("write");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), tree.path().join("link.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), tree.path().join("linkdir")).expect("symlink");
    std::fs::create_dir(tree.path().join("keep")).expect("mkdir");
    std::fs::write(tree.path().join("keep/x.csv"), format!("カード番号\n{card}\n")).expect("write");
    std::fs::write(tree.path().join("keep/x.txt"), format!("カード番号 {card}\n")).expect("write");
    let root = tree.path().to_str().expect("path");

    let out = anshin_scan(data.path(), &[root, "--format", "jsonl"], None);
    let lines = jsonl(&out);
    let link = lines
        .iter()
        .find(|v| v["type"] == "object" && v["path"].as_str().is_some_and(|p| p.ends_with("link.txt")))
        .expect("link reported");
    assert_eq!(link["status"], "skipped");
    assert!(
        link["reason"]
            .as_str()
            .is_some_and(|r| r.contains("symbolic link"))
    );
    let card_paths: Vec<&str> = lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["category"] == "card")
        .filter_map(|v| v["path"].as_str())
        .collect();
    assert_eq!(card_paths.len(), 2, "only the two files inside the tree");
    assert!(card_paths.iter().all(|p| p.contains("/keep/")));

    let out = anshin_scan(
        data.path(),
        &[root, "--format", "jsonl", "--include", "*.csv"],
        None,
    );
    let lines = jsonl(&out);
    let paths: Vec<&str> = lines
        .iter()
        .filter(|v| v["type"] == "object")
        .filter_map(|v| v["path"].as_str())
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("keep/x.csv"));

    let out = anshin_scan(
        data.path(),
        &[root, "--format", "jsonl", "--exclude", "keep/**"],
        None,
    );
    let lines = jsonl(&out);
    assert!(lines.iter().all(|v| v["type"] != "finding"));
}

#[test]
fn hostile_archives_are_reported_not_fatal() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let zeros = vec![b'0'; 16 << 20];
    std::fs::write(tree.path().join("bomb.zip"), zip_of(&[("zeros.txt", &zeros)])).expect("write");
    std::fs::write(tree.path().join("broken.zip"), b"PK\x03\x04 not really a zip").expect("write");
    let mut gz = gzip_of(b"truncated gzip stream with some text in it");
    gz.truncate(gz.len() - 10);
    std::fs::write(tree.path().join("cut.gz"), gz).expect("write");
    let out = anshin_scan(
        data.path(),
        &[tree.path().to_str().expect("path"), "--format", "jsonl"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let status = |suffix: &str| {
        lines
            .iter()
            .find(|v| v["type"] == "object" && v["path"].as_str().is_some_and(|p| p.ends_with(suffix)))
            .map(|v| {
                (
                    v["status"].as_str().unwrap_or("").to_owned(),
                    v["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .unwrap_or_else(|| panic!("{suffix} not reported"))
    };
    let (s, reason) = status("bomb.zip!zeros.txt");
    assert_eq!(s, "partial");
    assert!(reason.contains("compression ratio"));
    assert_eq!(status("broken.zip").0, "skipped");
    assert_eq!(status("cut.gz!cut").0, "partial");
    assert!(String::from_utf8_lossy(&out.stderr).contains("partial"));
}

#[test]
fn a_slow_input_ends_partial_at_the_file_time_limit() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anshin"))
        .args([
            "scan",
            "-",
            "--format",
            "jsonl",
            "--file-timeout",
            "1",
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("ANSHIN_DATABASE_URL")
        .env_remove("ANSHIN_SCAN_FINGERPRINT_KEY")
        .env("ANSHIN_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run anshin scan");
    let mut input = child.stdin.take().expect("stdin");
    // A source that keeps trickling for far longer than the limit: the scan
    // must end on its own, which closes the pipe under the writer.
    let writer = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(60) {
            if input.write_all(b"nothing here\n").is_err() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    });
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(writer.join().expect("writer"), "the scan outlived its time limit");
    let lines = jsonl(&out);
    let stdin = lines
        .iter()
        .find(|v| v["type"] == "object" && v["path"] == "-")
        .expect("standard input reported");
    assert_eq!(stdin["status"], "partial");
    assert!(
        stdin["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("time_limit")),
        "{:?}",
        stdin["reason"]
    );
    assert!(stdin["bytes"].as_u64().is_some_and(|b| b > 0));
}

// ---------------------------------------------------------------- databases

/// A finding as the database tests compare it: every locator field and the
/// masked value (never a raw one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DbFinding {
    path: String,
    row: u64,
    field: u64,
    header: Option<String>,
    key: Option<String>,
    category: String,
    masked: String,
    byte_offset: u64,
    line: u64,
    column: u64,
}

fn db_findings(lines: &[Value]) -> Vec<DbFinding> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let mut out: Vec<DbFinding> = lines
        .iter()
        .filter(|v| v["type"] == "finding")
        .map(|v| DbFinding {
            path: text(&v["path"]).unwrap_or_default(),
            row: v["row"].as_u64().unwrap_or(0),
            field: v["field"].as_u64().unwrap_or(0),
            header: text(&v["header"]),
            key: text(&v["key"]),
            category: text(&v["category"]).unwrap_or_default(),
            masked: text(&v["masked"]).unwrap_or_default(),
            byte_offset: v["byte_offset"].as_u64().unwrap_or(u64::MAX),
            line: v["line"].as_u64().unwrap_or(0),
            column: v["column"].as_u64().unwrap_or(0),
        })
        .collect();
    out.sort();
    out
}

#[allow(clippy::too_many_arguments)]
fn db_finding(
    path: &str,
    row: u64,
    field: u64,
    header: &str,
    key: Option<&str>,
    category: &str,
    masked: &str,
    byte_offset: u64,
    column: u64,
) -> DbFinding {
    DbFinding {
        path: path.to_owned(),
        row,
        field,
        header: Some(header.to_owned()),
        key: key.map(str::to_owned),
        category: category.to_owned(),
        masked: masked.to_owned(),
        byte_offset,
        line: 1,
        column,
    }
}

/// `4532 01•• •••• 1234` for a 16-digit card.
pub(crate) fn card_mask(card: &str) -> String {
    format!("{} {}•• •••• {}", &card[..4], &card[4..6], &card[12..])
}

#[test]
fn sqlite_tables_are_scanned_with_table_column_and_row_key() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("shop.db");
    let (card1, card2) = (luhn_complete("4532", 16), luhn_complete("5412", 16));
    let my_number = "621498320257";
    {
        let conn = rusqlite::Connection::open(&file).expect("create");
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, 氏名 TEXT, email TEXT, 電話番号 TEXT,
                                     card_number INTEGER, memo BLOB, score REAL);
             CREATE TABLE members (email TEXT PRIMARY KEY, mobile TEXT) WITHOUT ROWID;
             CREATE TABLE log (line TEXT);
             CREATE VIEW v AS SELECT * FROM log;",
        )
        .expect("schema");
        // id 12 first: rows are numbered in primary-key order.
        conn.execute(
            "INSERT INTO customers VALUES (12, NULL, NULL, NULL, NULL, ?1, 1.5)",
            [format!("カード番号 {card2}").into_bytes()],
        )
        .expect("insert");
        let card1_int: i64 = card1.parse().expect("digits");
        conn.execute(
            "INSERT INTO customers VALUES (7, '山田 太郎', 'taro.yamada@example.com', '090-1234-5678', ?1, NULL, 0)",
            [card1_int],
        )
        .expect("insert");
        conn.execute_batch(
            "INSERT INTO members VALUES ('hanako.sato@example.org', '080-2345-6789');
             INSERT INTO log VALUES ('started');",
        )
        .expect("insert");
        conn.execute(
            "INSERT INTO log VALUES (?1)",
            [format!("マイナンバー {my_number}")],
        )
        .expect("insert");
    }
    let url = format!("sqlite://{}", file.display());
    let out = anshin_scan(data.path(), &[&url, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let customers = format!("{url}!customers");
    let members = format!("{url}!members");
    let log = format!("{url}!log");
    let hanako = Some("email=h•••@example.org");
    let mut expected = vec![
        db_finding(&customers, 1, 2, "氏名", Some("id=7"), "name", "•••••", 0, 1),
        db_finding(
            &customers,
            1,
            3,
            "email",
            Some("id=7"),
            "email",
            "t•••@example.com",
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            4,
            "電話番号",
            Some("id=7"),
            "phone",
            "090••••5678",
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            5,
            "card_number",
            Some("id=7"),
            "card",
            &card_mask(&card1),
            0,
            1,
        ),
        db_finding(
            &customers,
            2,
            6,
            "memo",
            Some("id=12"),
            "card",
            &card_mask(&card2),
            "カード番号 ".len() as u64,
            7,
        ),
        db_finding(&members, 1, 1, "email", hanako, "email", "h•••@example.org", 0, 1),
        db_finding(&members, 1, 2, "mobile", hanako, "phone", "080••••6789", 0, 1),
        db_finding(
            &log,
            2,
            1,
            "line",
            None,
            "my_number",
            "•••• •••• 0257",
            "マイナンバー ".len() as u64,
            8,
        ),
    ];
    expected.sort();
    assert_eq!(db_findings(&lines), expected);
    let objects = objects_by_path(&lines);
    assert_eq!(
        objects.keys().cloned().collect::<Vec<_>>(),
        vec![customers.clone(), log.clone(), members.clone()],
        "every table, no view"
    );
    assert!(
        objects
            .values()
            .all(|o| o["kind"] == "table" && o["status"] == "complete")
    );

    // The same locator in SARIF (properties) and CSV (columns).
    let out = anshin_scan(data.path(), &[&url, "--format", "sarif"], None);
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("SARIF");
    let card = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["ruleId"] == "card" && r["properties"]["header"] == "card_number")
        .expect("the card_number card");
    assert_eq!(card["properties"]["key"], "id=7");
    assert_eq!(card["properties"]["row"], 1);
    assert_eq!(card["properties"]["field"], 5);
    assert!(
        card["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("shop.db!customers"))
    );
    let out = anshin_scan(data.path(), &[&url, "--format", "csv"], None);
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let headers = reader.headers().expect("header").clone();
    let at = |name: &str| headers.iter().position(|h| h == name).expect("column");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let card_row = rows
        .iter()
        .find(|r| &r[at("category")] == "card" && &r[at("header")] == "card_number")
        .expect("card row");
    assert_eq!((&card_row[at("row")], &card_row[at("key")]), ("1", "id=7"));
    assert!(card_row[at("path")].ends_with("shop.db!customers"));

    // Selected tables and a row limit: a table cut short is partial.
    let out = anshin_scan(
        data.path(),
        &[
            &url,
            "--table",
            "LOG",
            "--table",
            "customers",
            "--row-limit",
            "1",
            "--format",
            "jsonl",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let objects = objects_by_path(&lines);
    assert_eq!(
        objects.keys().cloned().collect::<Vec<_>>(),
        vec![customers.clone(), log.clone()]
    );
    assert_eq!(objects[&log]["status"], "partial");
    assert!(
        objects[&log]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--row-limit"))
    );
    let found = db_findings(&lines);
    assert_eq!(found.len(), 4, "row 1 of customers only: {found:?}");
    assert!(found.iter().all(|f| f.path == customers && f.row == 1));

    // Bad input: unknown table (2), missing file (4), malformed URL (2).
    let out = anshin_scan(data.path(), &[&url, "--table", "nosuch"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("テーブル"));
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    let out = anshin_scan(data.path(), &[&missing], None);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("missing.db").exists(), "never created");
    std::fs::write(dir.path().join("junk.db"), b"not a database at all, really not").expect("write");
    let junk = format!("sqlite://{}", dir.path().join("junk.db").display());
    assert_eq!(anshin_scan(data.path(), &[&junk], None).status.code(), Some(4));
    assert_eq!(
        anshin_scan(data.path(), &["sqlite://"], None).status.code(),
        Some(2)
    );
    let out = anshin_scan(
        data.path(),
        &[dir.path().to_str().expect("path"), "--table", "x"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "--table without a database");

    let raw = vec![
        card1.clone(),
        card2.clone(),
        my_number.to_owned(),
        "taro.yamada".to_owned(),
        "hanako.sato".to_owned(),
        "090-1234-5678".to_owned(),
        "080-2345-6789".to_owned(),
        "山田 太郎".to_owned(),
    ];
    assert_no_raw_values(data.path(), &[&url], &raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_are_scanned_with_schema_table_column_and_row_key() {
    if !crate::harness::postgres_available().await {
        return;
    }
    let db = scratch_database().await;
    let (client, name) = (&db.client, &db.name);

    let (card1, card2, card3) = (
        luhn_complete("4532", 16),
        luhn_complete("5412", 16),
        luhn_complete("3569", 16),
    );
    let my_number = "621498320257";
    client
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE public.customers (id bigint PRIMARY KEY, full_name text, email varchar(200),
                 phone text, card_number bigint, my_number char(12), note text, created date, doc bytea,
                 score float8);
             CREATE TABLE crm.contacts (email text PRIMARY KEY, mobile text);
             CREATE TABLE public.events (payload jsonb);
             CREATE VIEW public.v AS SELECT * FROM public.events;",
        )
        .await
        .expect("schema");
    let card1_int: i64 = card1.parse().expect("digits");
    let note = format!("カード番号 {card2}");
    client
        .execute(
            "INSERT INTO public.customers (id, note, created) VALUES (12, $1, '2024-01-01')",
            &[&note],
        )
        .await
        .expect("insert");
    client
        .execute(
            "INSERT INTO public.customers VALUES (7, '山田 太郎', 'taro.yamada@example.com', '090-1234-5678',
                 $1, $2, NULL, '2024-01-02', convert_to('電話 03-1234-5678', 'UTF8'), 4.5)",
            &[&card1_int, &my_number],
        )
        .await
        .expect("insert");
    client
        .batch_execute(
            "INSERT INTO crm.contacts VALUES ('hanako.sato@example.org', '080-2345-6789');
             INSERT INTO public.events VALUES ('{\"a\": 1}');",
        )
        .await
        .expect("insert");
    let payload = format!("{{\"card\": \"{card3}\"}}");
    client
        .execute("INSERT INTO public.events VALUES ($1::text::jsonb)", &[&payload])
        .await
        .expect("insert");

    // Report paths name the database without the role that read it.
    let (shown, url) = (&db.shown, &db.url);
    let data = tempfile::tempdir().expect("tempdir");
    let out = anshin_scan(data.path(), &[url, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let customers = format!("{shown}!public.customers");
    let contacts = format!("{shown}!crm.contacts");
    let events = format!("{shown}!public.events");
    let hanako = Some("email=h•••@example.org");
    let mut expected = vec![
        db_finding(&customers, 1, 2, "full_name", Some("id=7"), "name", "•••••", 0, 1),
        db_finding(
            &customers,
            1,
            3,
            "email",
            Some("id=7"),
            "email",
            "t•••@example.com",
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            4,
            "phone",
            Some("id=7"),
            "phone",
            "090••••5678",
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            5,
            "card_number",
            Some("id=7"),
            "card",
            &card_mask(&card1),
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            6,
            "my_number",
            Some("id=7"),
            "my_number",
            "•••• •••• 0257",
            0,
            1,
        ),
        db_finding(
            &customers,
            1,
            9,
            "doc",
            Some("id=7"),
            "phone",
            "031•••5678",
            "電話 ".len() as u64,
            4,
        ),
        db_finding(
            &customers,
            2,
            7,
            "note",
            Some("id=12"),
            "card",
            &card_mask(&card2),
            "カード番号 ".len() as u64,
            7,
        ),
        db_finding(
            &contacts,
            1,
            1,
            "email",
            hanako,
            "email",
            "h•••@example.org",
            0,
            1,
        ),
        db_finding(&contacts, 1, 2, "mobile", hanako, "phone", "080••••6789", 0, 1),
        db_finding(
            &events,
            2,
            1,
            "payload",
            None,
            "card",
            &card_mask(&card3),
            "{\"card\": \"".len() as u64,
            11,
        ),
    ];
    expected.sort();
    assert_eq!(db_findings(&lines), expected);
    let objects = objects_by_path(&lines);
    assert_eq!(
        objects.keys().cloned().collect::<Vec<_>>(),
        vec![contacts.clone(), customers.clone(), events.clone()],
        "every user table of every schema, no view"
    );
    assert!(
        objects
            .values()
            .all(|o| o["kind"] == "table" && o["status"] == "complete")
    );

    // Selected (schema-qualified or on the search path) with a row limit.
    let out = anshin_scan(
        data.path(),
        &[
            url,
            "--table",
            "events",
            "--table",
            "crm.contacts",
            "--row-limit",
            "1",
            "--format",
            "jsonl",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let objects = objects_by_path(&lines);
    assert_eq!(
        objects.keys().cloned().collect::<Vec<_>>(),
        vec![contacts.clone(), events.clone()]
    );
    assert_eq!(objects[&events]["status"], "partial");
    assert_eq!(
        objects[&contacts]["status"], "complete",
        "one row: the limit cut nothing"
    );
    assert_eq!(db_findings(&lines).len(), 2, "the events card is in row 2");

    // Bad input: unknown table (2); unreachable server (4), password never shown.
    let out = anshin_scan(data.path(), &[url, "--table", "crm.nosuch"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = anshin_scan(
        data.path(),
        &["postgres://scanner:hunter2-secret@127.0.0.1:1/shop"],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("postgres://scanner@127.0.0.1:1/shop"), "{stderr}");
    assert!(!stderr.contains("hunter2"));
    let out = anshin_scan(data.path(), &["postgres://scanner:hunter2-secret@h:port/x"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));

    // Streamed past one fetch (512 rows): the card in row 1300 is found with
    // its number and key; a row limit short of it finds nothing and says so.
    let card4 = luhn_complete("2221", 16);
    client
        .batch_execute(
            "CREATE TABLE public.big (n int PRIMARY KEY, memo text);
             INSERT INTO public.big SELECT g, 'row ' || g FROM generate_series(1, 1500) AS g;",
        )
        .await
        .expect("big table");
    client
        .execute(
            "UPDATE public.big SET memo = $1 WHERE n = 1300",
            &[&format!("カード番号 {card4}")],
        )
        .await
        .expect("update");
    let big = format!("{shown}!public.big");
    let out = anshin_scan(
        data.path(),
        &[url, "--table", "public.big", "--format", "jsonl"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    assert_eq!(
        db_findings(&lines),
        vec![db_finding(
            &big,
            1300,
            2,
            "memo",
            Some("n=1300"),
            "card",
            &card_mask(&card4),
            "カード番号 ".len() as u64,
            7,
        )]
    );
    assert_eq!(objects_by_path(&lines)[&big]["status"], "complete");
    let out = anshin_scan(
        data.path(),
        &[
            url,
            "--table",
            "public.big",
            "--row-limit",
            "1299",
            "--format",
            "jsonl",
        ],
        None,
    );
    let lines = jsonl(&out);
    assert!(db_findings(&lines).is_empty());
    assert_eq!(objects_by_path(&lines)[&big]["status"], "partial");

    // A role that may read one table: the others are reported skipped, not fatal.
    let reader = format!("{name}_reader");
    client
        .batch_execute(&format!(
            "CREATE ROLE \"{reader}\" LOGIN; GRANT CONNECT ON DATABASE \"{name}\" TO \"{reader}\";
             GRANT USAGE ON SCHEMA crm TO \"{reader}\"; GRANT SELECT ON crm.contacts TO \"{reader}\";"
        ))
        .await
        .expect("reader role");
    let reader_url = format!("postgres://{reader}@{}/{name}", db.address);
    let out = anshin_scan(data.path(), &[&reader_url, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let objects = objects_by_path(&lines);
    // The same paths whichever role reads.
    let as_reader = |table: &str| format!("{shown}!{table}");
    assert_eq!(objects[&as_reader("crm.contacts")]["status"], "complete");
    for table in ["public.customers", "public.events", "public.big"] {
        let o = &objects[&as_reader(table)];
        assert_eq!(o["status"], "skipped", "{table}");
        assert_eq!(o["reason"], "no SELECT privilege on the table");
    }
    assert_eq!(db_findings(&lines).len(), 2, "the two contacts cells only");

    let raw = vec![
        card1.clone(),
        card2.clone(),
        card3.clone(),
        card4.clone(),
        my_number.to_owned(),
        "taro.yamada".to_owned(),
        "hanako.sato".to_owned(),
        "090-1234-5678".to_owned(),
        "080-2345-6789".to_owned(),
        "03-1234-5678".to_owned(),
        "山田 太郎".to_owned(),
    ];
    assert_no_raw_values(data.path(), &[url], &raw);
}

#[test]
fn inventory_records_locations_and_what_changed_since() {
    let data = tempfile::tempdir().expect("tempdir");
    let tree = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let card = luhn_complete("4532", 16);
    let csv = format!("氏名,電話番号,カード番号\n山田 太郎,090-1234-5678,{card}\n佐藤 花子,080-2345-6789,\n");
    std::fs::write(tree.path().join("orders.csv"), &csv).expect("write");
    std::fs::write(tree.path().join("note.txt"), "連絡先 taro@example.com\n").expect("write");
    let db = work.path().join("shop.db");
    {
        let conn = rusqlite::Connection::open(&db).expect("create");
        conn.execute_batch(
            "CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT);
             INSERT INTO members VALUES (1, 'hanako.sato@example.org'), (2, 'jiro@example.net');",
        )
        .expect("db");
    }
    let root = tree.path().to_str().expect("path");
    let url = format!("sqlite://{}", db.display());
    let inventory = work.path().join("inventory.json");
    let inv = inventory.to_str().expect("path");
    let out = anshin_scan(
        data.path(),
        &[root, &url, "--inventory", inv, "--format", "jsonl"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value = serde_json::from_slice(&std::fs::read(&inventory).expect("written")).expect("JSON");
    assert_eq!(first["format"], "anshin-inventory/1");
    assert!(first["changes"].is_null(), "no earlier inventory");
    assert!(first["scanned_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(first["parameters"]["inputs"], serde_json::json!([root, url]));
    let locations = |inv: &Value| -> Vec<(String, Option<String>, u64, u64)> {
        inv["locations"]
            .as_array()
            .expect("locations")
            .iter()
            .map(|l| {
                (
                    l["path"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(root, "ROOT")
                        .replace(&url, "DB"),
                    l["column"].as_str().map(str::to_owned),
                    l["findings"].as_u64().unwrap_or(0),
                    l["records"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let col = |s: &str| Some(s.to_owned());
    assert_eq!(
        locations(&first),
        // Sorted by path (the /tmp tree before sqlite://), then column.
        vec![
            ("ROOT/note.txt".to_owned(), None, 1, 1),
            ("ROOT/orders.csv".to_owned(), col("カード番号"), 1, 1),
            ("ROOT/orders.csv".to_owned(), col("氏名"), 2, 2),
            ("ROOT/orders.csv".to_owned(), col("電話番号"), 2, 2),
            ("DB!members".to_owned(), col("email"), 2, 2),
        ]
    );
    assert_eq!(first["totals"]["categories"]["card"]["findings"], 1);
    assert_eq!(first["locations"][1]["categories"]["card"]["records"], 1);

    // Later: the card column emptied, a row gone from the table, a new file.
    std::fs::write(
        tree.path().join("orders.csv"),
        "氏名,電話番号,カード番号\n山田 太郎,090-1234-5678,\n佐藤 花子,080-2345-6789,\n",
    )
    .expect("write");
    std::fs::write(tree.path().join("new.txt"), "マイナンバー 621498320257\n").expect("write");
    rusqlite::Connection::open(&db)
        .expect("open")
        .execute("DELETE FROM members WHERE id = 2", [])
        .expect("delete");
    let out = anshin_scan(data.path(), &[root, &url, "--inventory", inv], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 new / 新規, 1 gone / 消滅, 1 changed / 増減"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gone       ") && stderr.contains("orders.csv [カード番号]"),
        "{stderr}"
    );
    assert!(stderr.contains("members [email]: email 2 → 1"), "{stderr}");
    let second: Value = serde_json::from_slice(&std::fs::read(&inventory).expect("written")).expect("JSON");
    let changes = &second["changes"];
    assert_eq!(changes["previous_scanned_at"], first["scanned_at"]);
    assert_eq!(changes["same_parameters"], true);
    assert_eq!(changes["new"][0]["path"], format!("{root}/new.txt"));
    assert_eq!(changes["gone"][0]["column"], "カード番号");
    assert_eq!(changes["changed"][0]["before"]["email"]["records"], 2);
    assert_eq!(changes["changed"][0]["after"]["email"]["records"], 1);

    // No value in the inventory or the messages.
    let written = std::fs::read_to_string(&inventory).expect("read");
    for raw in [
        card.as_str(),
        "621498320257",
        "090-1234-5678",
        "hanako.sato",
        "taro@",
        "山田 太郎",
    ] {
        assert!(
            !written.contains(raw) && !stderr.contains(raw),
            "a planted value is in the inventory"
        );
    }

    // A file that is not an inventory is left alone (exit 2).
    let other = work.path().join("notes.json");
    std::fs::write(&other, "{\"mine\": true}").expect("write");
    let out = anshin_scan(
        data.path(),
        &[root, "--inventory", other.to_str().expect("path")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&other).expect("read"), "{\"mine\": true}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_custom_archives_are_scanned_by_table_column_and_row() {
    if !crate::harness::postgres_available().await {
        return;
    }
    let db = scratch_database().await;
    let (card1, card2, card3) = (
        luhn_complete("4532", 16),
        luhn_complete("5412", 16),
        luhn_complete("3569", 16),
    );
    db.client
        .batch_execute(
            "CREATE SCHEMA crm;
             CREATE TABLE public.orders (id integer PRIMARY KEY, note text, card_number text);
             CREATE TABLE crm.contacts (email text, mobile text, \"カード番号\" text);",
        )
        .await
        .expect("schema");
    db.client
        .execute(
            "INSERT INTO public.orders VALUES (1, 'first', NULL), (2, E'tab\\there', $1), (3, 'x', NULL)",
            &[&card1],
        )
        .await
        .expect("insert");
    db.client
        .execute(
            "INSERT INTO crm.contacts VALUES ('taro@example.com', '090-1234-5678', $1)",
            &[&card2],
        )
        .await
        .expect("insert");
    let note = format!("カード番号 {card3}");
    let oid: u32 = db
        .client
        .query_one("SELECT lo_from_bytea(0, convert_to($1, 'UTF8'))", &[&note])
        .await
        .expect("large object")
        .get(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    // Compressed (zlib, the default) and stored (-Z0), as PostgreSQL's own client writes them.
    let mut dumps = Vec::new();
    for (file, extra) in [("shop.dump", None), ("shop-z0.pgc", Some("-Z0"))] {
        dumps.push(pg_dump(&db.url, &dir.path().join(file), "-Fc", extra));
    }
    let out = anshin_scan(data.path(), &[&dumps[0], &dumps[1], "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    // Line, column and offset are in the table's COPY data, as pg_restore prints it.
    let orders = format!("1\tfirst\t\\N\n2\ttab\\there\t{card1}\n");
    let contacts = format!("taro@example.com\t090-1234-5678\t{card2}\n");
    let mut expected = Vec::new();
    for dump in &dumps {
        let at = |text: &str, card: &str| text.find(card).expect("planted") as u64;
        expected.extend([
            Expect {
                row: Some(2),
                header: Some("card_number"),
                ..Expect::at(dump.clone(), "card", at(&orders, &card1), 2, 13)
            },
            Expect {
                row: Some(1),
                header: Some("カード番号"),
                ..Expect::at(
                    dump.clone(),
                    "card",
                    at(&contacts, &card2),
                    1,
                    column_of(&contacts, &card2),
                )
            },
            Expect::at(
                format!("{dump}!large-object-{oid}"),
                "card",
                at(&note, &card3),
                1,
                column_of(&note, &card3),
            ),
        ]);
    }
    expected.sort();
    let mut got = found(&lines, "card");
    got.sort();
    assert_eq!(got, expected);
    let tables: Vec<_> = lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["category"] == "card" && !v["table"].is_null())
        .map(|v| v["table"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        tables.iter().filter(|t| *t == "public.orders").count(),
        2,
        "{tables:?}"
    );
    assert_eq!(tables.iter().filter(|t| *t == "crm.contacts").count(), 2);
    let objects = objects_by_path(&lines);
    for dump in &dumps {
        assert_eq!(objects[dump]["kind"], "pg-dump");
        assert_eq!(objects[dump]["status"], "complete", "{}", objects[dump]);
    }
    assert_no_raw_values(
        data.path(),
        &[&dumps[0], &dumps[1]],
        &[card1, card2, card3, "taro@example.com".to_owned()],
    );

    // Cut short: reported partial with the reason, what was read still found.
    let whole = std::fs::read(&dumps[1]).expect("read");
    let cut = dir.path().join("cut.pgc");
    std::fs::write(&cut, &whole[..whole.len() - 40]).expect("write");
    let cut = cut.to_str().expect("path").to_owned();
    let out = anshin_scan(data.path(), &[&cut, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let objects = objects_by_path(&jsonl(&out));
    assert_eq!(objects[&cut]["status"], "partial", "{}", objects[&cut]);
    assert!(
        objects[&cut]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("truncated"),
        "{}",
        objects[&cut]
    );
}

/// Regression: a `pg_dump -Fc` archive of a database in EUC_JP was read as
/// UTF-8, so its Japanese column names (the labels 氏名 and 住所) and values
/// turned into replacement characters and the name and address were missed.
/// A real EUC_JP database, dumped by pg_dump: the card, the name and the
/// address are found at their table, column and row, and no raw value is
/// printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_archives_of_an_euc_jp_database_are_decoded_from_it() {
    if !crate::harness::postgres_available().await {
        return;
    }
    let (db, card) = euc_jp_customers().await;
    let (name, address) = (EUC_JP_NAME, EUC_JP_ADDRESS);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let dump = pg_dump(&db.url, &dir.path().join("shop-eucjp.dump"), "-Fc", None);
    let bytes = std::fs::read(&dump).expect("read");
    assert!(holds_euc_jp(&bytes, "氏名"), "the archive is in EUC-JP");

    let out = anshin_scan(data.path(), &[&dump, "--format", "jsonl"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&out);
    let objects = objects_by_path(&lines);
    assert_eq!(objects[&dump]["status"], "complete", "{}", objects[&dump]);
    assert_eq!(objects[&dump]["encoding"], "euc-jp", "{}", objects[&dump]);
    // The second row's COPY data line, as pg_restore prints it (in UTF-8).
    let rows = format!("1\t\\N\t\\N\t\\N\n2\t{name}\t{address}\t{card}\n");
    let second = rows.find("2\t").expect("row");
    let place = |category: &str, header: &str, needle: &str| {
        let offset = rows.find(needle).expect("planted");
        (
            category.to_owned(),
            "public.顧客".to_owned(),
            2,
            header.to_owned(),
            2,
            rows[second..offset].chars().count() as u64 + 1,
            offset as u64,
        )
    };
    let mut got: Vec<_> = lines
        .iter()
        .filter(|v| v["type"] == "finding" && v["path"] == dump.as_str())
        .map(|v| {
            (
                v["category"].as_str().unwrap_or_default().to_owned(),
                v["table"].as_str().unwrap_or_default().to_owned(),
                v["row"].as_u64().unwrap_or(0),
                v["header"].as_str().unwrap_or_default().to_owned(),
                v["line"].as_u64().unwrap_or(0),
                v["column"].as_u64().unwrap_or(0),
                v["byte_offset"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    got.sort();
    let mut expected = vec![
        place("card", "card_number", &card),
        place("name", "氏名", name),
        place("address", "住所", address),
    ];
    expected.sort();
    assert_eq!(got, expected);
    assert_no_raw_values(
        data.path(),
        &[&dump],
        &[card, name.to_owned(), address.to_owned()],
    );
}

/// Whether `bytes` hold `text` encoded in EUC-JP.
fn holds_euc_jp(bytes: &[u8], text: &str) -> bool {
    let euc = encode(text, encoding_rs::EUC_JP);
    bytes.windows(euc.len()).any(|w| w == euc.as_slice())
}
