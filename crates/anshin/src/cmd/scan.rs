//! `anshin scan`: personal-data discovery over files, directories, archives
//! and standard input (issue 6). The work is in the `anshin-scan` crate;
//! this module turns flags into its options, draws the progress bar, writes
//! the report and decides the exit code.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anshin_scan::report::{Format, ReportWriter, Summary};
use anshin_scan::{Category, Confidence, Discovery, Input, Limits, ScanOptions, Scanner, WalkOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ScanArgs;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// File name of the installation's scan fingerprint key in the data directory.
pub const KEY_FILE: &str = "scan-fingerprint.key";

fn usage(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "scan_usage", message)
}

/// The categories `--fail-on` gates on.
fn gated(names: &[String]) -> Result<Vec<Category>> {
    let mut out = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name == "any" || name == "all" {
            return Ok(Category::ALL.to_vec());
        }
        let category = match name {
            "cvv" | "security_code" => Some(Category::SecurityCode),
            "pan" => Some(Category::Card),
            other => Category::from_name(other),
        };
        match category {
            Some(c) => out.push(c),
            None => {
                return Err(usage(
                    "unknown category in --fail-on; use card, cvc, expiry, email, phone, postal_code, my_number, corporate_number, passport, residence_card, bank_account, name, address or any / --fail-on のカテゴリ名が不明です",
                ));
            }
        }
    }
    Ok(out)
}

pub fn run(config: &Config, args: ScanArgs) -> Result<()> {
    let format = if args.json {
        Format::Jsonl
    } else {
        Format::parse(&args.format)
            .ok_or_else(|| usage("unknown --format; use human, jsonl, csv or sarif"))?
    };
    let fail_on = gated(&args.fail_on)?;
    let min_confidence = match args.min_confidence.as_str() {
        "low" => Confidence::Low,
        "high" => Confidence::High,
        _ => Confidence::Medium,
    };
    let key_path = args
        .fingerprint_key
        .clone()
        .unwrap_or_else(|| config.data_dir.join(KEY_FILE));
    let key = if args.fingerprint_key.is_some() {
        anshin_scan::key::load(&key_path)
    } else {
        anshin_scan::key::load_or_create(&key_path).map(|(key, created)| {
            if created {
                eprintln!(
                    "note: created the scan fingerprint key {} / 指紋キーを作成しました (keep it: fingerprints from later scans match only with the same key)",
                    key_path.display()
                );
            }
            key
        })
    }
    .map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            "scan_key_unreadable",
            "cannot read or create the scan fingerprint key; check --fingerprint-key / 指紋キーを読めません",
        )
        .with_cause(e)
    })?;
    let options = ScanOptions::default()
        .min_confidence(min_confidence)
        .include_test_values(!args.no_test_values);
    let limits = Limits::default()
        .max_depth(args.max_depth)
        .max_ratio(args.max_ratio)
        .max_expanded(args.max_expanded)
        .file_timeout((args.file_timeout > 0).then(|| Duration::from_secs(args.file_timeout)));
    let discovery = Discovery::new(Scanner::with_options(key, options), limits);
    let mut walk = WalkOptions::default()
        .include(args.include.clone())
        .exclude(args.exclude.clone());
    if let Some(threads) = args.threads {
        walk = walk.threads(threads);
    }
    let inputs: Vec<Input> = args.paths.iter().map(|p| Input::parse(p)).collect();

    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).map_err(
            |e| {
                Error::new(
                    ErrorKind::Internal,
                    "scan_output",
                    "cannot create the output file / 出力ファイルを作成できません",
                )
                .with_cause(e)
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let write_error = |e: std::io::Error| {
        Error::new(
            ErrorKind::Internal,
            "scan_output",
            "cannot write the report / レポートを書き込めません",
        )
        .with_cause(e)
    };
    let mut writer = ReportWriter::new(format, out).map_err(write_error)?;

    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let objects = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let mut write_failure: Option<std::io::Error> = None;
    let walk_result = std::thread::scope(|scope| {
        if show_progress {
            let (discovery, objects, done) = (&discovery, &objects, &done);
            scope.spawn(move || progress(discovery, objects, done));
        }
        let result = discovery.scan_inputs(&inputs, &walk, |report| {
            objects.fetch_add(1, Ordering::Relaxed);
            if write_failure.is_none()
                && let Err(e) = writer.object(&report)
            {
                write_failure = Some(e);
            }
        });
        done.store(true, Ordering::Relaxed);
        result
    });
    walk_result.map_err(|e| usage("invalid --include or --exclude glob / グロブが不正です").with_cause(e))?;
    if let Some(e) = write_failure {
        return Err(write_error(e));
    }
    let summary = writer.finish().map_err(write_error)?;
    if format != Format::Human && summary.partial + summary.skipped > 0 {
        eprintln!(
            "note: {} objects partial, {} skipped (see the report) / 一部のみ {} 件、未スキャン {} 件",
            summary.partial, summary.skipped, summary.partial, summary.skipped
        );
    }
    gate(&summary, &fail_on)
}

fn gate(summary: &Summary, fail_on: &[Category]) -> Result<()> {
    let hits: u64 = fail_on.iter().map(|&c| summary.count(c, false)).sum();
    if hits > 0 {
        return Err(Error::new(
            ErrorKind::Conflict,
            "scan_findings",
            "findings in a --fail-on category / --fail-on で指定した個人データが見つかりました",
        ));
    }
    Ok(())
}

fn progress(discovery: &Discovery, objects: &AtomicU64, done: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes} scanned ({bytes_per_sec}), {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    while !done.load(Ordering::Relaxed) {
        bar.set_position(discovery.bytes_scanned());
        bar.set_message(format!("{} objects", objects.load(Ordering::Relaxed)));
        bar.tick();
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_names() {
        let names = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            gated(&names("card,cvc")).expect("ok"),
            vec![Category::Card, Category::SecurityCode]
        );
        assert_eq!(gated(&names("any")).expect("ok").len(), Category::ALL.len());
        assert_eq!(gated(&names("cvv")).expect("ok"), vec![Category::SecurityCode]);
        assert!(gated(&names("cards")).is_err());
        assert!(gated(&[]).expect("ok").is_empty());
    }
}
