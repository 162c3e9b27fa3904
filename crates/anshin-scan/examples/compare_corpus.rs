//! The files and the scoring of `scripts/compare-discovery.sh` (anshin scan
//! against PANhunt and ripgrep on the same generated files). Not run by CI.
//!
//! ```sh
//! compare_corpus write DIR MIB
//! compare_corpus score DIR/labelled|DIR/plain anshin|panhunt REPORT SECONDS
//! ```
//!
//! `write` puts anshin-detect's labelled corpus (order mails, logs and CSV
//! exports in every encoding, see `anshin_detect::corpus::generate`) of about
//! MIB MiB into `DIR/labelled/files/` and the planted card numbers into
//! `DIR/labelled/truth.tsv` as file name, keyed fingerprint and PANhunt's
//! masked form (first six and last four digits, the rest `*`); the same
//! amount of `corpus::plain_text` (the throughput example's input) in 4 MiB
//! files into `DIR/plain/files/` (no truth: speed and counts only); and the
//! fingerprint key into `DIR/key.hex`.
//! The generator's truth holds fingerprints only, so the masked forms are
//! recovered here: every Luhn-valid 13–19 digit run (single spaces or hyphens
//! between digits, full-width digits folded) whose fingerprint is a planted
//! one. The raw digits stay in memory; nothing written or printed holds them.
//!
//! `score` matches a report against the truth as a multiset per file: anshin's
//! JSON Lines by file and fingerprint (category `card`), PANhunt's JSON report
//! by file and masked form. It prints one JSON line with bytes, seconds, MB/s,
//! recall and precision; counts and rates only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anshin_crypto::fingerprint::FingerprintKey;
use anshin_crypto::secret::KeyBytes;
use anshin_detect::corpus;
use anshin_scan::{Category, Scanner};
use encoding_rs::{EUC_JP, ISO_2022_JP, SHIFT_JIS, UTF_8, UTF_16LE};

const KEY: [u8; 32] = [9; 32];
const SEED: u64 = 2026;

fn scanner() -> Scanner {
    let key = KeyBytes::from_slice(&KEY).expect("32 bytes");
    Scanner::new(FingerprintKey::new(&key))
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn masked(digits: &[u8]) -> String {
    let n = digits.len();
    let mut out = String::from_utf8_lossy(&digits[..6]).into_owned();
    out.extend(std::iter::repeat_n('*', n - 10));
    out.push_str(&String::from_utf8_lossy(&digits[n - 4..]));
    out
}

fn decode(doc: &corpus::Document) -> String {
    use anshin_scan::TextEncoding as E;
    let enc = match doc.encoding {
        E::ShiftJis => SHIFT_JIS,
        E::EucJp => EUC_JP,
        E::Iso2022Jp => ISO_2022_JP,
        E::Utf16Le => UTF_16LE,
        _ => UTF_8,
    };
    enc.decode(&doc.bytes).0.into_owned()
}

/// Runs of digits with at most one space or hyphen between two digits.
fn digit_runs(text: &str) -> Vec<Vec<u8>> {
    let mut runs = Vec::new();
    let mut run: Vec<u8> = Vec::new();
    let mut sep = false;
    for c in text.chars() {
        let c = match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '－' => '-',
            _ => c,
        };
        match c {
            '0'..='9' => {
                run.push(c as u8);
                sep = false;
            }
            ' ' | '-' if !run.is_empty() && !sep => sep = true,
            _ => {
                if run.len() >= 13 {
                    runs.push(std::mem::take(&mut run));
                }
                run.clear();
                sep = false;
            }
        }
    }
    if run.len() >= 13 {
        runs.push(run);
    }
    runs
}

fn write(top: &Path, mib: usize) -> std::io::Result<()> {
    let s = scanner();
    let mut hex = String::new();
    for b in KEY {
        let _ = write!(hex, "{b:02x}");
    }
    std::fs::write(top.join("key.hex"), hex + "\n")?;
    // Plain text in 4 MiB files: throughput only (its truth is not kept).
    let plain = top.join("plain").join("files");
    std::fs::create_dir_all(&plain)?;
    for i in 0..mib.div_ceil(4) {
        let text = corpus::plain_text(SEED + i as u64, 4 << 20, &s);
        std::fs::write(plain.join(format!("plain{i:03}.txt")), text)?;
    }
    let dir = &top.join("labelled");
    let sample = corpus::generate(SEED, 30, &s);
    let avg = sample.documents.iter().map(|d| d.bytes.len()).sum::<usize>() / 30;
    let n = ((mib << 20) / avg.max(1)).max(1);
    let c = corpus::generate(SEED, n, &s);
    let files = dir.join("files");
    std::fs::create_dir_all(&files)?;
    let mut wanted: HashMap<(usize, [u8; 32]), usize> = HashMap::new();
    let mut planted = 0usize;
    for t in c.truth.iter().filter(|t| t.category == Category::Card) {
        *wanted.entry((t.document, t.fingerprint.0)).or_default() += 1;
        planted += 1;
    }
    let mut truth = String::new();
    let (mut bytes, mut recovered) = (0usize, 0usize);
    for (i, doc) in c.documents.iter().enumerate() {
        std::fs::write(files.join(&doc.name), &doc.bytes)?;
        bytes += doc.bytes.len();
        for run in digit_runs(&decode(doc)) {
            for start in 0..run.len() {
                for len in 13..=19 {
                    let Some(d) = run.get(start..start + len) else {
                        break;
                    };
                    if !luhn(d) {
                        continue;
                    }
                    let fp = s.fingerprint(Category::Card, d);
                    if let Some(left) = wanted.get_mut(&(i, fp.0)).filter(|n| **n > 0) {
                        *left -= 1;
                        recovered += 1;
                        let _ = writeln!(truth, "{}\t{}\t{}", doc.name, fp.to_hex(), masked(d));
                    }
                }
            }
        }
    }
    std::fs::write(dir.join("truth.tsv"), truth)?;
    println!(
        "{{\"files\":{},\"bytes\":{bytes},\"cards_planted\":{planted},\"cards_with_masked_form\":{recovered},\"hard_negatives\":{}}}",
        c.documents.len(),
        c.hard_negatives
    );
    Ok(())
}

fn base(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn score(dir: &Path, tool: &str, report: &Path, seconds: f64) -> Result<(), String> {
    // No truth file (the plain text): throughput and finding counts only.
    let scored = dir.join("truth.tsv").exists();
    let truth = if scored {
        std::fs::read_to_string(dir.join("truth.tsv")).map_err(|e| e.to_string())?
    } else {
        String::new()
    };
    let by_masked = tool == "panhunt";
    let mut wanted: HashMap<(String, String), usize> = HashMap::new();
    let mut planted = 0usize;
    for l in truth.lines() {
        let mut f = l.split('\t');
        let (Some(file), Some(fp), Some(m)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let k = if by_masked { m } else { fp };
        *wanted.entry((file.to_string(), k.to_string())).or_default() += 1;
        planted += 1;
    }
    let text = std::fs::read_to_string(report).map_err(|e| e.to_string())?;
    let mut found: Vec<(String, String)> = Vec::new();
    if by_masked {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if let Some(files) = v.get("pans_found_results").and_then(|r| r.as_object()) {
            for (path, pans) in files {
                for p in pans.as_array().into_iter().flatten() {
                    let p = p.as_str().unwrap_or_default();
                    let m = p.rsplit(':').next().unwrap_or_default();
                    found.push((base(path), m.to_string()));
                }
            }
        }
    } else {
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
            if v.get("category").and_then(|c| c.as_str()) != Some("card") {
                continue;
            }
            let path = v.get("path").and_then(|p| p.as_str()).unwrap_or_default();
            let fp = v.get("fingerprint").and_then(|p| p.as_str()).unwrap_or_default();
            found.push((base(path), fp.to_string()));
        }
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    for k in &found {
        match wanted.get_mut(k) {
            Some(n) if *n > 0 => {
                *n -= 1;
                tp += 1;
            }
            _ => fp += 1,
        }
    }
    let bytes: u64 = std::fs::read_dir(dir.join("files"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let corpus = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let accuracy = if scored {
        format!(
            ",\"cards_planted\":{planted},\"true_positives\":{tp},\"false_positives\":{fp},\"recall\":{:.4},\"precision\":{:.4}",
            ratio(tp, planted),
            ratio(tp, found.len())
        )
    } else {
        String::new()
    };
    println!(
        "{{\"tool\":\"{tool}\",\"corpus\":\"{corpus}\",\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mb_per_s\":{:.3},\"card_findings\":{}{accuracy}}}",
        bytes as f64 / seconds.max(1e-9) / 1e6,
        found.len(),
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("write") if args.len() == 4 => {
            let mib = args[3].parse().unwrap_or(20);
            write(Path::new(&args[2]), mib).map_err(|e| e.to_string())
        }
        Some("score") if args.len() == 6 => score(
            Path::new(&args[2]),
            &args[3],
            Path::new(&args[4]),
            args[5].parse().unwrap_or(0.0),
        ),
        _ => Err("usage: compare_corpus write DIR MIB | score DIR anshin|panhunt REPORT SECONDS".into()),
    };
    if let Err(e) = result {
        eprintln!("compare_corpus: {e}");
        std::process::exit(1);
    }
}
