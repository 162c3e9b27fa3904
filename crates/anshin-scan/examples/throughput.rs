//! Throughput and accuracy of discovery on generated data, one JSON line per
//! scenario:
//!
//! ```sh
//! cargo run --release -p anshin-scan --example throughput [MIB [SCENARIO…]]
//! ```
//!
//! Named scenarios run alone (for profiling one of them); none named runs all.
//!
//! - `detectors_plain_text`: anshin-detect's `Scanner::scan` over one buffer
//!   of everyday Japanese text and log lines (a planted value every few KiB).
//! - `pipeline_plain_text_1_thread`: the same bytes through `Discovery`
//!   (8 MiB chunks, encoding detection, locator rebasing), one thread.
//! - `pipeline_plain_text_2_threads`: two copies scanned at once.
//! - `pipeline_sql_dump_1_thread`: the same text as a mysqldump (a row per
//!   line, extended INSERTs), read as a table.
//! - `detectors_plain_text_card_data`, `pipeline_corpus_files_card_data_1_thread`:
//!   as without the suffix, looking for card data only (card, security code,
//!   expiry: `anshin scan --only card,cvc,expiry`), the job PANhunt does.
//! - `pipeline_corpus_files_1_thread`: `CORPUS_FILES` (default 2,000)
//!   documents of the labelled corpus (about 2.9 KB each, dense with values)
//!   written as files to a temporary directory, then walked and scanned with
//!   one worker thread and written as JSON Lines to nowhere: what `anshin
//!   scan DIR --threads 1 --format jsonl` does per file and per finding, without
//!   process start. `mb_per_cpu_s` here divides by the whole process's CPU
//!   time (the walk, the worker and the writer are separate threads).
//! - `corpus_accuracy`: the labelled corpus (text and CSV in every encoding),
//!   precision and recall per category against its keyed ground truth. It
//!   comes from anshin-detect's own generator, so it shows consistency.
//! - `independent_accuracy`: card numbers, My Numbers and phone numbers
//!   planted by `tests/independent/mod.rs`, which shares no code with the
//!   detectors, in UTF-8 and Shift_JIS; scored by byte span.
//! - `stream_memory`: `STREAM_GIB` (default 2) GiB of the plain text
//!   generated on the fly and read through `Discovery::scan_reader` (the
//!   path standard input takes), with findings counted and dropped; and
//!   `huge_line_memory`: the same amount as one line without a line end.
//!   Run them alone for a meaningful `peak_mib` (the process's whole
//!   high-water mark, generator included).
//! - `hostile_memory`: what `Limits::max_memory` bounds. Writes, to
//!   `HOSTILE_DIR` (kept) or a temporary directory, two `xz -9` tars each
//!   holding an `xz -9` log and a plain log (40 MiB each: the dictionaries
//!   grow to 64 MiB), a 64 MiB log with a finding on every line, a workbook
//!   whose shared string every cell of a row names, and one of 1.5 million
//!   shared strings; then a child process scans them with two threads as
//!   `anshin scan --threads 2 --format jsonl` does, and prints its own
//!   high-water mark and the objects partial or skipped.
//!
//! `mb_per_cpu_s` divides by the scanning thread's CPU time (Linux), which a
//! busy neighbour on a shared machine does not inflate; `mb_per_s` is wall
//! time. Peak memory is the process's high-water mark (VmHWM) after each
//! scenario.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::time::Instant;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_detect::corpus;
use anshin_scan::report::{Format, ReportWriter};
use anshin_scan::{Categories, Category, Discovery, Input, Limits, ScanOptions, Scanner, WalkOptions};

#[path = "../tests/independent/mod.rs"]
mod independent;

fn scanner() -> Scanner {
    scanner_for(Categories::ALL)
}

fn scanner_for(categories: Categories) -> Scanner {
    let key = KeyBytes::from_slice(&[9u8; 32]).expect("32 bytes");
    Scanner::with_options(
        FingerprintKey::new(&key),
        ScanOptions::default().categories(categories),
    )
}

/// What PANhunt looks for, and a little more: `--only card,cvc,expiry`.
fn card_data() -> Categories {
    [Category::Card, Category::SecurityCode, Category::Expiry]
        .into_iter()
        .collect()
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time of the calling thread in seconds (Linux schedstat; 0 elsewhere).
/// On a shared machine wall time measures the neighbours too; CPU time of a
/// single-threaded scenario measures only the scan.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()))
        .map_or(0.0, |ns| ns / 1e9)
}

/// CPU time (user and system) of the whole process in seconds (Linux; 0
/// elsewhere), for scenarios that run on threads of their own.
fn process_cpu() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
        let rest = s.rsplit_once(')')?.1;
        let mut f = rest.split_whitespace().skip(11);
        Some(f.next()?.parse::<f64>().ok()? + f.next()?.parse::<f64>().ok()?)
    });
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    ticks.map_or(0.0, |t| t / 100.0)
}

/// Best wall time and best CPU time (`cpu`: this thread's or the process's) of `runs` runs.
fn best_of_with<F: FnMut() -> usize>(runs: usize, cpu_time: fn() -> f64, mut f: F) -> (f64, f64, usize) {
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    let mut findings = 0;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_time());
        findings = f();
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_time() - c);
    }
    (wall, cpu, findings)
}

/// Best wall time and best CPU time of the calling thread of `runs` runs.
fn best_of<F: FnMut() -> usize>(runs: usize, f: F) -> (f64, f64, usize) {
    best_of_with(runs, thread_cpu, f)
}

fn line(scenario: &str, bytes: usize, (wall, cpu, findings): (f64, f64, usize)) {
    let per_cpu = if cpu > 0.0 {
        format!(",\"mb_per_cpu_s\":{:.1}", bytes as f64 / cpu / 1e6)
    } else {
        String::new()
    };
    println!(
        "{{\"scenario\":\"{scenario}\",\"bytes\":{bytes},\"seconds\":{wall:.4},\"mb_per_s\":{:.1}{per_cpu},\"findings\":{findings},\"peak_mib\":{:.1}}}",
        bytes as f64 / wall / 1e6,
        peak_mib()
    );
}

/// `text` as a MySQL dump: a row per line, 100 rows per INSERT.
fn sql_dump(text: &str) -> String {
    let mut out = String::from(
        "-- MySQL dump 10.13\nCREATE TABLE `notes` (\n  `id` int NOT NULL,\n  `note` text,\n  PRIMARY KEY (`id`)\n);\n",
    );
    for (i, line) in text.lines().enumerate() {
        out.push_str(if i % 100 == 0 {
            "INSERT INTO `notes` VALUES "
        } else {
            ","
        });
        let escaped = line.replace('\\', "\\\\").replace('\'', "\\'");
        out.push_str(&format!("({i},'{escaped}')"));
        if i % 100 == 99 {
            out.push_str(";\n");
        }
    }
    out.push_str(";\n");
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dir] = args.as_slice()
        && flag == "--scan-hostile"
    {
        return scan_hostile(std::path::Path::new(dir));
    }
    if args.get(1..).unwrap_or_default() == ["hostile_memory"] {
        return hostile_memory();
    }
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(64);
    let named = args.get(1..).unwrap_or_default();
    let wanted = |scenario: &str| named.is_empty() || named.iter().any(|n| n == scenario);
    let s = scanner();
    let discovery = Discovery::new(scanner(), Limits::default().file_timeout(None));
    if named.iter().all(|n| n.ends_with("_memory")) && !named.is_empty() {
        // Only the memory scenarios: no large text held in memory.
        let block = corpus::plain_text(1, 1 << 20, &s);
        stream_memory(
            &discovery,
            &block,
            wanted("stream_memory"),
            wanted("huge_line_memory"),
        );
        return;
    }
    let text = corpus::plain_text(1, mib << 20, &s);
    let bytes = text.as_bytes();

    if wanted("detectors_plain_text") {
        line(
            "detectors_plain_text",
            bytes.len(),
            best_of(5, || s.scan(bytes).findings.len()),
        );
    }

    if wanted("detectors_plain_text_card_data") {
        let cards = scanner_for(card_data());
        line(
            "detectors_plain_text_card_data",
            bytes.len(),
            best_of(5, || cards.scan(bytes).findings.len()),
        );
    }

    if wanted("pipeline_plain_text_1_thread") {
        let one = best_of(5, || {
            let mut n = 0;
            discovery.scan_reader("plain.txt", &mut Cursor::new(bytes), &mut |r| {
                n += r.findings.len()
            });
            n
        });
        line("pipeline_plain_text_1_thread", bytes.len(), one);
    }

    if wanted("pipeline_plain_text_2_threads") {
        // Wall time only: the CPU time of the spawned threads is not the caller's.
        let (wall, _, n) = best_of(3, || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut n = 0;
                            discovery.scan_reader("plain.txt", &mut Cursor::new(bytes), &mut |r| {
                                n += r.findings.len()
                            });
                            n
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            })
        });
        line("pipeline_plain_text_2_threads", 2 * bytes.len(), (wall, 0.0, n));
    }

    if wanted("pipeline_sql_dump_1_thread") {
        // The same text as a mysqldump: extended INSERTs of 100 rows, one line of
        // the text per `note` value, streamed through the SQL reader (tokenizer,
        // per-table CSV chunks, locator mapping), one thread.
        let dump = sql_dump(&text);
        let sql = best_of(3, || {
            let mut n = 0;
            discovery.scan_reader("dump.sql", &mut Cursor::new(dump.as_bytes()), &mut |r| {
                n += r.findings.len()
            });
            n
        });
        line("pipeline_sql_dump_1_thread", dump.len(), sql);
    }

    if wanted("pipeline_corpus_files_1_thread") {
        corpus_files("pipeline_corpus_files_1_thread", &discovery);
    }
    if wanted("pipeline_corpus_files_card_data_1_thread") {
        let cards = Discovery::new(scanner_for(card_data()), Limits::default().file_timeout(None));
        corpus_files("pipeline_corpus_files_card_data_1_thread", &cards);
    }

    if wanted("corpus_accuracy") {
        corpus_accuracy(&discovery);
    }
    if wanted("independent_accuracy") {
        independent_accuracy(&discovery);
    }
    let mut end = text.len().min(1 << 20);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let block = &text[..end];
    stream_memory(
        &discovery,
        block,
        wanted("stream_memory"),
        wanted("huge_line_memory"),
    );
}

/// Endless copies of `block` (line ends turned to spaces for one huge line),
/// `len` bytes in all.
struct Repeat<'a> {
    block: &'a [u8],
    at: usize,
    left: u64,
}

impl Read for Repeat<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len() - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at = (self.at + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn stream_memory(discovery: &Discovery, block: &str, stream: bool, huge_line: bool) {
    let gib: u64 = std::env::var("STREAM_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let one_line = block.replace('\n', " ");
    for (scenario, wanted, block) in [
        ("stream_memory", stream, block),
        ("huge_line_memory", huge_line, one_line.as_str()),
    ] {
        if !wanted {
            continue;
        }
        let mut reader = Repeat {
            block: block.as_bytes(),
            at: 0,
            left: gib << 30,
        };
        let t = Instant::now();
        let c = thread_cpu();
        let mut n = 0;
        let mut status = String::new();
        discovery.scan_reader("-", &mut reader, &mut |r| {
            n += r.findings.len();
            status = format!("{:?}", r.status).to_lowercase();
        });
        let (wall, cpu) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
        let bytes = gib << 30;
        println!(
            "{{\"scenario\":\"{scenario}\",\"bytes\":{bytes},\"seconds\":{wall:.2},\"mb_per_s\":{:.1},\"mb_per_cpu_s\":{:.1},\"findings\":{n},\"status\":\"{status}\",\"peak_mib\":{:.1}}}",
            bytes as f64 / wall / 1e6,
            bytes as f64 / cpu / 1e6,
            peak_mib()
        );
    }
}

fn independent_accuracy(discovery: &Discovery) {
    for (name, output) in [
        ("utf8", independent::Output::Utf8),
        ("shift_jis", independent::Output::ShiftJis),
    ] {
        let corpus = independent::generate(0x1DE9, 20_000, output);
        let mut findings = Vec::new();
        let t = Instant::now();
        discovery.scan_reader("independent.txt", &mut Cursor::new(&corpus.bytes), &mut |r| {
            for f in r.findings {
                let kind = match f.category {
                    Category::Card => independent::Kind::Card,
                    Category::MyNumber => independent::Kind::MyNumber,
                    Category::Phone => independent::Kind::Phone,
                    _ => continue,
                };
                findings.push((kind, f.locator.byte_offset, f.locator.byte_len));
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let per_kind: Vec<String> = independent::score(&corpus, &findings)
            .into_iter()
            .map(|(kind, planted, reported, tp)| {
                format!(
                    "\"{}\":{{\"planted\":{planted},\"reported\":{reported},\"precision\":{:.4},\"recall\":{:.4}}}",
                    kind.name(),
                    if reported == 0 { 1.0 } else { tp as f64 / reported as f64 },
                    tp as f64 / planted as f64
                )
            })
            .collect();
        println!(
            "{{\"scenario\":\"independent_accuracy\",\"encoding\":\"{name}\",\"bytes\":{},\"mb_per_s\":{:.1},\"hard_negatives\":{},\"categories\":{{{}}}}}",
            corpus.bytes.len(),
            corpus.bytes.len() as f64 / secs / 1e6,
            corpus.negatives,
            per_kind.join(",")
        );
    }
}

fn corpus_files(scenario: &str, discovery: &Discovery) {
    let files: usize = std::env::var("CORPUS_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let c = corpus::generate(42, files, discovery.scanner());
    let dir = std::env::temp_dir().join(format!("anshin-throughput-{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        c.documents
            .iter()
            .try_for_each(|doc| std::fs::write(dir.join(&doc.name), &doc.bytes))
    });
    if let Err(e) = written {
        eprintln!("throughput: cannot write the corpus files: {e}");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let bytes = c.documents.iter().map(|d| d.bytes.len()).sum();
    let inputs = [Input::Path(dir.clone())];
    let walk = WalkOptions::default().threads(1);
    let measured = best_of_with(3, process_cpu, || {
        let mut findings = 0;
        let mut writer = ReportWriter::new(Format::Jsonl, std::io::sink()).expect("a sink takes anything");
        let scanned = discovery.scan_inputs(&inputs, &walk, |r| {
            findings += r.findings.len();
            writer.object(&r).expect("a sink takes anything");
        });
        scanned.expect("no globs to parse");
        writer.finish().expect("a sink takes anything");
        findings
    });
    let _ = std::fs::remove_dir_all(&dir);
    line(scenario, bytes, measured);
}

/// Writes the hostile inputs of `hostile_memory` and scans them in a child
/// process (so that the writing, xz -9's encoder above all, is not in its
/// high-water mark).
fn hostile_memory() {
    use std::io::Write;
    let keep = std::env::var_os("HOSTILE_DIR").map(std::path::PathBuf::from);
    let dir = keep
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("anshin-hostile-{}", std::process::id())));
    let xz9 = |data: &[u8]| {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 9);
        e.write_all(data).expect("xz");
        e.finish().expect("xz")
    };
    // A phone number on every line, each line different.
    let log = |mib: usize, seed: u64| {
        let mut text = String::with_capacity(mib << 20);
        let mut i = seed;
        while text.len() < mib << 20 {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(&format!(
                "order {} shipped, tel 090-{:04}-{:04}\n",
                i >> 20,
                (i >> 8) % 10_000,
                (i >> 40) % 10_000
            ));
        }
        text
    };
    let tar_of = |members: &[(&str, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("tar");
        }
        b.into_inner().expect("tar")
    };
    let zip_of = |members: &[(&str, &[u8])]| {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("zip");
            z.write_all(data).expect("zip");
        }
        z.finish().expect("zip").into_inner()
    };
    let t = Instant::now();
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        for (name, seed) in [("a.tar.xz", 1), ("b.tar.xz", 2)] {
            let inner = xz9(log(40, seed).as_bytes());
            let tar = tar_of(&[
                ("inner.log.xz", &inner),
                ("plain.log", log(40, seed + 10).as_bytes()),
            ]);
            std::fs::write(dir.join(name), xz9(&tar))?;
        }
        std::fs::write(dir.join("c.log"), log(64, 3))?;
        let types: &[u8] = b"<Types/>";
        let workbook: &[u8] = b"<workbook/>";
        let long = format!("<sst><si><t>{}</t></si></sst>", "x".repeat(30_000));
        let row = "<c t=\"s\"><v>0</v></c>".repeat(2_000);
        let sheet = format!("<worksheet><sheetData><row r=\"1\">{row}</row></sheetData></worksheet>");
        std::fs::write(
            dir.join("bomb.xlsx"),
            zip_of(&[
                ("[Content_Types].xml", types),
                ("xl/workbook.xml", workbook),
                ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
                ("xl/sharedStrings.xml", long.as_bytes()),
            ]),
        )?;
        let sst: String = (0..1_500_000u64)
            .map(|i| {
                format!(
                    "<si><t>s{i}x{}</t></si>",
                    i.wrapping_mul(2654435761) % 1_000_000_000
                )
            })
            .collect();
        let rows: String = (1..750_000u64)
            .map(|r| {
                format!(
                    "<row r=\"{r}\"><c t=\"s\"><v>{}</v></c><c t=\"s\"><v>{}</v></c></row>",
                    2 * r,
                    2 * r + 1
                )
            })
            .collect();
        std::fs::write(
            dir.join("big.xlsx"),
            zip_of(&[
                ("[Content_Types].xml", types),
                ("xl/workbook.xml", workbook),
                (
                    "xl/worksheets/sheet1.xml",
                    format!("<worksheet><sheetData>{rows}</sheetData></worksheet>").as_bytes(),
                ),
                ("xl/sharedStrings.xml", format!("<sst>{sst}</sst>").as_bytes()),
            ]),
        )
    });
    if let Err(e) = written {
        eprintln!("throughput: cannot write the hostile inputs: {e}");
        return;
    }
    eprintln!(
        "throughput: hostile inputs written in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("--scan-hostile")
        .arg(&dir)
        .status();
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("throughput: the hostile scan failed");
    }
}

/// The child of `hostile_memory`: scans `dir` with two threads.
fn scan_hostile(dir: &std::path::Path) {
    let discovery = Discovery::new(scanner(), Limits::default());
    let bytes: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let (mut findings, mut partial, mut skipped) = (0, 0, 0);
    let mut writer = ReportWriter::new(Format::Jsonl, std::io::sink()).expect("a sink takes anything");
    let t = Instant::now();
    let scanned = discovery.scan_inputs(
        &[Input::Path(dir.to_owned())],
        &WalkOptions::default().threads(2),
        |r| {
            findings += r.findings.len();
            partial += usize::from(r.status == anshin_scan::Status::Partial);
            skipped += usize::from(r.status == anshin_scan::Status::Skipped);
            writer.object(&r).expect("a sink takes anything");
        },
    );
    scanned.expect("no globs to parse");
    writer.finish().expect("a sink takes anything");
    println!(
        "{{\"scenario\":\"hostile_memory\",\"bytes\":{bytes},\"seconds\":{:.2},\"findings\":{findings},\"partial\":{partial},\"skipped\":{skipped},\"max_memory_mib\":{},\"peak_mib\":{:.1}}}",
        t.elapsed().as_secs_f64(),
        Limits::default().max_memory >> 20,
        peak_mib()
    );
}

fn corpus_accuracy(discovery: &Discovery) {
    // Accuracy: every document of the labelled corpus through the pipeline,
    // findings matched to the truth by (document, category, fingerprint).
    let c = corpus::generate(42, 600, discovery.scanner());
    let mut truth: BTreeMap<Category, Vec<(usize, [u8; 32])>> = BTreeMap::new();
    for t in &c.truth {
        truth
            .entry(t.category)
            .or_default()
            .push((t.document, t.fingerprint.0));
    }
    let mut found: BTreeMap<Category, Vec<(usize, [u8; 32])>> = BTreeMap::new();
    let mut total = 0;
    let t = Instant::now();
    for (i, doc) in c.documents.iter().enumerate() {
        total += doc.bytes.len();
        discovery.scan_reader(&doc.name, &mut Cursor::new(&doc.bytes), &mut |r| {
            for f in r.findings {
                found.entry(f.category).or_default().push((i, f.fingerprint.0));
            }
        });
    }
    let secs = t.elapsed().as_secs_f64();
    let mut per_category = Vec::new();
    for category in Category::ALL {
        let mut expected = truth.remove(&category).unwrap_or_default();
        let mut got = found.remove(&category).unwrap_or_default();
        if expected.is_empty() && got.is_empty() {
            continue;
        }
        expected.sort();
        got.sort();
        // Multiset intersection.
        let (mut i, mut j, mut hit) = (0, 0, 0usize);
        while i < expected.len() && j < got.len() {
            match expected[i].cmp(&got[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    hit += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        let precision = if got.is_empty() {
            1.0
        } else {
            hit as f64 / got.len() as f64
        };
        let recall = if expected.is_empty() {
            1.0
        } else {
            hit as f64 / expected.len() as f64
        };
        per_category.push(format!(
            "\"{}\":{{\"planted\":{},\"reported\":{},\"precision\":{precision:.4},\"recall\":{recall:.4}}}",
            category.as_str(),
            expected.len(),
            got.len()
        ));
    }
    println!(
        "{{\"scenario\":\"corpus_accuracy\",\"documents\":{},\"bytes\":{total},\"mb_per_s\":{:.1},\"hard_negatives\":{},\"categories\":{{{}}},\"peak_mib\":{:.1}}}",
        c.documents.len(),
        total as f64 / secs / 1e6,
        c.hard_negatives,
        per_category.join(","),
        peak_mib()
    );
}
