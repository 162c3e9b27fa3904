//! `anshin scan`: personal-data discovery over files, directories, archives,
//! standard input and databases (issue 6). The work is in the `anshin-scan`
//! crate (databases are read in [`super::scan_db`]); this module turns flags
//! into its options, draws the progress bar, writes the report and decides
//! the exit code.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anshin_scan::inventory::{Inventory, InventoryBuilder, Parameters};
use anshin_scan::report::{Format, ReportWriter, Summary};
use anshin_scan::{
    Categories, Category, Confidence, Discovery, Input, Limits, ScanOptions, Scanner, WalkOptions,
};

use super::progress::Spinner;
use super::scan_db::{Database, DbOptions};
use crate::cli::ScanArgs;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// File name of the installation's scan fingerprint key in the data directory.
pub const KEY_FILE: &str = "scan-fingerprint.key";

fn usage(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Invalid, "scan_usage", message)
}

/// The categories named by `flag` (`--fail-on`, `--only`): the names of
/// [`Category::as_str`], a few synonyms, or `any`.
fn categories(flag: &str, names: &[String]) -> Result<Vec<Category>> {
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
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {}
            None => {
                return Err(usage(format!(
                    "unknown category in {flag}; use card, cvc, expiry, email, phone, postal_code, my_number, corporate_number, passport, residence_card, bank_account, name, address or any / {flag} のカテゴリ名が不明です"
                )));
            }
        }
    }
    Ok(out)
}

pub async fn run(config: &Config, args: ScanArgs) -> Result<()> {
    let format = if args.json {
        Format::Jsonl
    } else {
        Format::parse(&args.format)
            .ok_or_else(|| usage("unknown --format; use human, jsonl, csv or sarif"))?
    };
    let fail_on = categories("--fail-on", &args.fail_on)?;
    let only: Categories = match categories("--only", &args.only)? {
        named if named.is_empty() => Categories::ALL,
        named => named.into_iter().collect(),
    };
    if fail_on.iter().any(|&c| !only.contains(c)) {
        return Err(usage(
            "--fail-on names a category that --only leaves out: it could never be found / --fail-on のカテゴリが --only に含まれていません",
        ));
    }
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
        .include_test_values(!args.no_test_values)
        .categories(only);
    let limits = Limits::default()
        .max_depth(args.max_depth)
        .max_ratio(args.max_ratio)
        .max_expanded(args.max_expanded)
        .max_memory(args.max_memory)
        .file_timeout((args.file_timeout > 0).then(|| Duration::from_secs(args.file_timeout)));
    let discovery = Arc::new(Discovery::new(Scanner::with_options(key, options), limits));
    let mut walk = WalkOptions::default()
        .include(args.include.clone())
        .exclude(args.exclude.clone());
    if let Some(threads) = args.threads {
        walk = walk.threads(threads);
    }
    // Each argument parsed once: a database (its URL read, its TLS files
    // loaded) or a path; `shown` is how the inventory names it.
    let mut inputs: Vec<Input> = Vec::new();
    let mut databases: Vec<Database> = Vec::new();
    let mut shown: Vec<String> = Vec::with_capacity(args.paths.len());
    for arg in &args.paths {
        match Database::parse(arg)? {
            Some(db) => {
                shown.push(db.display().to_owned());
                databases.push(db);
            }
            None => {
                let input = Input::parse(arg);
                // A path named here that does not exist is an error, not a
                // `skipped` line: a mistyped path must not pass a CI gate.
                if let Input::Path(path) = &input
                    && let Err(e) = std::fs::metadata(path)
                {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "scan_input_unreadable",
                        format!(
                            "cannot read {}: {e}; check the path / パスを読めません",
                            anshin_scan::mask_name(arg)
                        ),
                    ));
                }
                shown.push(anshin_scan::mask_name(arg));
                inputs.push(input);
            }
        }
    }
    if databases.is_empty() && (!args.table.is_empty() || args.row_limit.is_some()) {
        return Err(usage(
            "--table and --row-limit apply to database inputs (postgres://…, sqlite://…) only / --table と --row-limit はデータベースにのみ使えます",
        ));
    }
    // An earlier inventory is read before anything is scanned: a FILE that is
    // not one is refused now, not overwritten after a long scan.
    let previous = match &args.inventory {
        Some(path) => read_inventory(path)?,
        None => None,
    };
    let parameters = Parameters {
        inputs: shown,
        tables: args.table.clone(),
        row_limit: args.row_limit,
        min_confidence: min_confidence.as_str().to_owned(),
        include_test_values: !args.no_test_values,
        categories: if only.is_all() {
            Vec::new()
        } else {
            only.iter().map(|c| c.as_str().to_owned()).collect()
        },
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    // Checked before the scan too: a bad URL or a missing key is a usage error now.
    let upload = args
        .server
        .as_deref()
        .map(|server| {
            super::scan_upload::Upload::new(server, std::env::var(super::scan_upload::API_KEY_ENV).ok())
        })
        .transpose()?;
    let mut inventory = args.inventory.as_ref().map(|_| InventoryBuilder::default());
    let db_options = DbOptions {
        tables: args.table.clone(),
        row_limit: args.row_limit,
    };

    // Send: the scanning threads write their own reports.
    let out: Box<dyn Write + Send> = match &args.output {
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
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
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

    // One progress bar over databases and files; the guard stops it however
    // the run ends.
    let objects = Arc::new(AtomicU64::new(0));
    let progress_bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let (d, o) = (discovery.clone(), objects.clone());
        Spinner::start(
            "{spinner} {bytes} scanned ({bytes_per_sec}), {msg} [{elapsed}]",
            move |bar| {
                bar.set_position(d.bytes_scanned());
                bar.set_message(format!("{} objects", o.load(Ordering::Relaxed)));
            },
        )
    });

    // Databases first: a bad URL, an unreachable server or an unknown table
    // stops the run before the (longer) file scan.
    let mut write_failure: Option<std::io::Error> = None;
    let mut emit = |report: anshin_scan::ObjectReport| {
        objects.fetch_add(1, Ordering::Relaxed);
        if let Some(inventory) = &mut inventory {
            inventory.add(&report);
        }
        if write_failure.is_none()
            && let Err(e) = writer.object(&report)
        {
            write_failure = Some(e);
        }
    };
    for db in &databases {
        super::scan_db::scan(db, &db_options, &discovery, &mut emit).await?;
    }
    let walk_result = if inputs.is_empty() {
        Ok(())
    } else {
        discovery.scan_inputs(&inputs, &walk, &mut emit)
    };
    drop(progress_bar);
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
    if let (Some(path), Some(builder)) = (&args.inventory, inventory) {
        let scanned_at = crate::clock::rfc3339(crate::clock::now_ms());
        let inventory = builder.finish(scanned_at, parameters, previous.as_ref());
        write_inventory(path, &inventory)?;
        if let Some(changes) = &inventory.changes {
            eprint!("{}", anshin_scan::inventory::describe_changes(changes));
        }
        if let Some(upload) = &upload {
            let id = upload.send(inventory.to_json()).await?;
            eprintln!(
                "note: inventory sent to {} as {id} / 棚卸しをサーバーに送信しました",
                upload.target()
            );
        }
    }
    gate(&summary, &fail_on)
}

fn inventory_error(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "scan_inventory_file", message)
}

/// The inventory FILE already holds: `None` when it does not exist.
fn read_inventory(path: &std::path::Path) -> Result<Option<Inventory>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                inventory_error("cannot read the --inventory file / 棚卸しファイルを読めません")
                    .with_cause(e),
            );
        }
    };
    Inventory::parse(&bytes).map(Some).map_err(|e| {
        inventory_error(
            "the --inventory file exists and is not an anshin inventory; it is left alone: choose another file / 棚卸しファイルではないため上書きしません",
        )
        .with_cause(e)
    })
}

/// Writes the inventory through a temporary file in the same directory and a
/// rename, so an interrupted run leaves the earlier inventory whole.
fn write_inventory(path: &std::path::Path, inventory: &Inventory) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let failed = |e: std::io::Error| {
        Error::new(
            ErrorKind::Internal,
            "scan_output",
            "cannot write the --inventory file / 棚卸しファイルを書き込めません",
        )
        .with_cause(e)
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.write_all(&inventory.to_json()).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names() {
        let names = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            categories("--fail-on", &names("card,cvc")).expect("ok"),
            vec![Category::Card, Category::SecurityCode]
        );
        assert_eq!(
            categories("--only", &names("any")).expect("ok").len(),
            Category::ALL.len()
        );
        assert_eq!(
            categories("--only", &names("cvv,pan,card")).expect("ok"),
            vec![Category::SecurityCode, Category::Card]
        );
        let err = categories("--only", &names("cards")).expect_err("unknown");
        assert!(err.to_string().contains("--only"), "{err}");
        assert!(categories("--fail-on", &[]).expect("ok").is_empty());
    }
}
