//! `anshin integrity`: tamper detection on the shop's host (issue 7). The
//! work is in the `anshin-integrity` crate; this module turns flags into its
//! calls, prints alerts, sends them to the alert webhook and decides the
//! exit code.
//!
//! Exit codes: 0 nothing at or above `--fail-on`; 1 failure; 2 usage error
//! (bad rules file, missing key); 6 alerts at or above `--fail-on`; 7 the
//! baseline's signature does not verify (altered, or signed by another key).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anshin_integrity::alert::{Alert, Context};
use anshin_integrity::baseline::{BaselineError, HistoryEntry, Payload, host_name};
use anshin_integrity::diff::{self, Change, ChangeKind};
use anshin_integrity::key::{BaselineKey, VerifyingKey, parse_public, public_hex};
use anshin_integrity::rules::Rules;
use anshin_integrity::scan::{self, Previous, Progress};
use anshin_integrity::{Severity, signatures, watch};
use axum::http::{Method, StatusCode};
use clap::{Args, Subcommand};

use super::progress::Spinner;
use super::scan_upload::{API_KEY_ENV, Failure, Upload, error_code};
use crate::audit::webhook::Webhook;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::baselines::{BASELINE_MEDIA_TYPE, KEY_HEADER, VERSION_HEADER};
use crate::integrity::baselines::{MAX_BASELINE_BYTES, parse_host};

/// Default baseline file, in the data directory.
const BASELINE_FILE: &str = "integrity/baseline";
/// Default signing key file, in the data directory.
const KEY_FILE: &str = "integrity/signing.key";

/// Where the baseline is and which key it is checked with.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// The baseline file [default: DATA_DIR/integrity/baseline]
    #[arg(long, env = "ANSHIN_INTEGRITY_BASELINE", value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// The signing key file (mode 0600) [default: DATA_DIR/integrity/signing.key]
    #[arg(long, env = "ANSHIN_INTEGRITY_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Verify with this public key (64 hex, from `anshin integrity public-key`)
    /// instead of the key file: for a baseline checked away from its host.
    #[arg(long, value_name = "HEX", conflicts_with = "key")]
    pub public_key: Option<String>,
}

/// The user's YARA rules, run beside the built-in signatures.
#[derive(Debug, Clone, Args)]
pub struct YaraArgs {
    /// YARA rules to run with the built-in signatures: a .yar file, or a
    /// directory of .yar/.yara files (needs a build with the `yara` feature).
    #[arg(long, value_name = "PATH")]
    pub yara_rules: Option<PathBuf>,
    /// Seconds the YARA rules may take on one file; a file that hits it is
    /// reported as `yara.timeout`.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub yara_timeout: u64,
}

/// How alerts are reported.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// One JSON alert per line (schema docs/schemas/integrity-alert.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Exit with 6 when an alert is at least this severe: low, high or critical.
    #[arg(long, default_value = "low", value_parser = ["low", "high", "critical"])]
    pub fail_on: String,
    /// Also POST each alert to the alert webhook (ANSHIN_ALERT_WEBHOOK_URL and
    /// ANSHIN_ALERT_WEBHOOK_SECRET, signed as the audit alerts are).
    #[arg(long)]
    pub webhook: bool,
    /// Check against the anshin server's stored copy of this host's baseline
    /// (check, watch) and send the alerts to its alert list (POST
    /// /v1/integrity/alerts), with an operator API key from ANSHIN_API_KEY.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Worker threads [default: the number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// No progress spinner (it is shown only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// `anshin integrity …`
#[derive(Debug, Subcommand)]
pub enum IntegrityCommand {
    /// Record every file under the directories in a new signed baseline.
    #[command(after_help = "Examples:
  anshin integrity baseline /var/www/eccube --rules eccube.toml
  anshin integrity baseline /var/www/shop /etc/nginx --out /mnt/offhost/shop.baseline --key /root/integrity.key
  ANSHIN_API_KEY=… anshin integrity baseline /var/www/eccube --server https://anshin.example   # kept off the host too

Records path, type, size, mode, owner, mtime, ctime, inode, BLAKE3 and SHA-256 of
every entry the rules watch (symbolic links as links, never followed; fifos, sockets
and devices by type, never opened), and the external scripts and CSP of pages and
server configuration. The rules file's text is kept in the signed baseline. The key
file is created (mode 0600) if it does not exist. An existing baseline is never
replaced: use `approve` to accept changes, with who and why. With --server the
file is also stored on the anshin server, which pins the signing key for this host
on its first baseline and keeps every version.

Exit codes: 0 written; 1 failure; 2 bad rules file or usage.")]
    Baseline {
        /// Directories to record.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Rules file (TOML) [default: the built-in rules]
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Where to write the baseline [default: DATA_DIR/integrity/baseline]
        #[arg(long, env = "ANSHIN_INTEGRITY_BASELINE", value_name = "FILE")]
        out: Option<PathBuf>,
        /// The signing key file (created with mode 0600 if missing) [default: DATA_DIR/integrity/signing.key]
        #[arg(long, env = "ANSHIN_INTEGRITY_KEY", value_name = "FILE")]
        key: Option<PathBuf>,
        /// Who records it (kept in the history) [default: $USER]
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Worker threads [default: the number of CPUs]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        /// No progress spinner.
        #[arg(long)]
        no_progress: bool,
        /// Also store the signed baseline on an anshin server (POST
        /// /v1/integrity/baselines) with an operator API key from
        /// ANSHIN_API_KEY; the host's first baseline pins its key there.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Compare the files with the baseline: added, removed and changed, with severity.
    #[command(after_help = "Examples:
  anshin integrity check                          # from cron: prints only what changed
  anshin integrity check --json --fail-on critical
  anshin integrity check --baseline /mnt/offhost/shop.baseline --public-key 3b6a…
  anshin integrity check --webhook                # also POST each alert, signed
  ANSHIN_API_KEY=… anshin integrity check --server https://anshin.example   # stored baseline, alerts to the server

With --server, the files are checked against the server's newest copy of this host's
baseline, verified with the key the server pins for the host; a local baseline file
that differs from it, is missing, or a local key other than the pinned one is itself
an alert (baseline_mismatch), and the alerts go to the server's alert list.
The baseline's signature is verified first: a baseline that was altered or signed
by another key is refused (exit 7), never used. A file whose inode, size, mtime and
ctime are as recorded is trusted without being read (writing a file always moves
its ctime); --full reads every file. Added and changed files are also run through
the skimmer signatures.

Exit codes: 0 no alert at or above --fail-on; 1 failure; 2 usage (no key);
6 alerts at or above --fail-on; 7 the baseline does not verify.")]
    Check {
        #[command(flatten)]
        baseline: BaselineArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        yara: YaraArgs,
        /// Read and hash every file, trusting no metadata.
        #[arg(long)]
        full: bool,
    },
    /// Watch the files (inotify) and report changes within seconds, until stopped.
    #[command(after_help = "Examples:
  anshin integrity watch --json >> /var/log/anshin-integrity.jsonl
  anshin integrity watch --webhook --rescan-minutes 30

Events are checked a tenth of a second after they stop arriving; a full rescan runs
at start, every --rescan-minutes, when the kernel's event queue overflows and when a
directory appears or goes. Each situation is reported once. Stops on SIGINT or SIGTERM.

Exit codes: 0 stopped by a signal; 1 failure; 2 usage; 7 the baseline does not verify.")]
    Watch {
        #[command(flatten)]
        baseline: BaselineArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        yara: YaraArgs,
        /// Minutes between full rescans.
        #[arg(long, default_value_t = 60, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        rescan_minutes: u64,
    },
    /// Accept the current files as the new baseline, recording who approved and why.
    #[command(after_help = "Examples:
  anshin integrity approve --by tanaka --reason \"EC-CUBE 4.3.1 update, ticket #812\"
  anshin integrity approve --by tanaka --reason \"new payment module\" --rules eccube.toml

Lists what it accepts. Refuses (exit 6) when the skimmer signatures find something in
an added or changed file, unless --accept-findings is given. Who, why, when and how
many files were accepted are kept in the signed baseline's history. With --server the
approval starts from the server's copy of the baseline and the new one is stored there
(the server keeps every version, with who and why, and raises a low alert for it).

Exit codes: 0 approved; 1 failure; 2 usage; 6 signature findings in the changes;
7 the current baseline does not verify.")]
    Approve {
        #[command(flatten)]
        baseline: BaselineArgs,
        /// Who approves.
        #[arg(long, value_name = "NAME")]
        by: String,
        /// Why (a ticket, a release).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// New rules file for the new baseline [default: the baseline's rules]
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Approve even though the signatures found something in the changes.
        #[arg(long)]
        accept_findings: bool,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        /// Approve against the anshin server's copy of the baseline and store
        /// the new one there (API key from ANSHIN_API_KEY).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Compare an installed application with its vendor's release archive (zip, tar.gz).
    #[command(
        name = "compare-release",
        after_help = "Examples:
  anshin integrity compare-release /var/www/eccube eccube-4.3.0.tar.gz --rules eccube.toml
  anshin integrity compare-release /var/www/wordpress wordpress-6.7.zip --json

Every file that differs from the release, is not in it, or is missing from the
installation is reported, except paths the rules ignore and those listed under
[customisations]. The archive's single top-level directory is stripped; nothing is
extracted. Differing and added files are also run through the skimmer signatures.

Exit codes: 0 no alert at or above --fail-on; 1 failure; 2 usage or unreadable
archive; 6 alerts at or above --fail-on."
    )]
    CompareRelease {
        /// The installed application.
        dir: PathBuf,
        /// The vendor's release archive.
        archive: PathBuf,
        /// Rules file (TOML) [default: the built-in rules]
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        yara: YaraArgs,
    },
    /// Run the skimmer and web-shell signatures over files and directories.
    #[command(after_help = "Examples:
  anshin integrity scan /var/www/eccube/html
  anshin integrity scan app/template html/upload --json --rules eccube.toml

Rules: skimmer.card-exfiltration, skimmer.fake-payment-form, skimmer.card-input-unexpected,
obfuscation.eval-decoded, obfuscation.encoded-strings, php.request-exfiltration,
php.webshell, image.embedded-php. Files whose SHA-256 is in the rules' allow_sha256 are
skipped. Findings name the rule and line, never the matched text.

Exit codes: 0 no finding at or above --fail-on; 1 failure; 2 usage; 6 findings.")]
    Scan {
        /// Files and directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Rules file (TOML) [default: the built-in rules]
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        yara: YaraArgs,
    },
    /// Print the public key that verifies baselines (for --public-key elsewhere).
    #[command(
        name = "public-key",
        after_help = "Example:\n  anshin integrity public-key > integrity.pub"
    )]
    PublicKey {
        /// The signing key file [default: DATA_DIR/integrity/signing.key]
        #[arg(long, env = "ANSHIN_INTEGRITY_KEY", value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

fn usage(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Invalid, "integrity_usage", message)
}

fn failure(code: &'static str, message: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(ErrorKind::Internal, code, message).with_cause(e)
}

pub async fn run(config: &Config, command: IntegrityCommand) -> Result<()> {
    match command {
        IntegrityCommand::Baseline {
            dirs,
            rules,
            out,
            key,
            by,
            threads,
            json,
            no_progress,
            server,
        } => {
            let out = out.unwrap_or_else(|| config.data_dir.join(BASELINE_FILE));
            let key = key.unwrap_or_else(|| config.data_dir.join(KEY_FILE));
            let store = server.as_deref().map(baseline_store).transpose()?;
            let written = out.clone();
            tokio::task::spawn_blocking(move || {
                baseline(
                    &dirs,
                    rules.as_deref(),
                    &out,
                    &key,
                    by,
                    threads,
                    json,
                    no_progress,
                )
            })
            .await
            .map_err(Error::internal)??;
            match store {
                Some(store) => store_on_server(&store, &written).await,
                None => Ok(()),
            }
        }
        IntegrityCommand::Check {
            baseline,
            output,
            yara,
            full,
        } => {
            let sinks = sinks(config, &output)?;
            let (mut loaded, mut alerts) = load_checked(config, &baseline, output.server.as_deref()).await?;
            loaded.rules = with_yara(loaded.rules, &yara)?;
            let fail_on = severity(&output.fail_on);
            let json = output.json;
            let (found, entries) = tokio::task::spawn_blocking(move || check(&loaded, &output, full))
                .await
                .map_err(Error::internal)??;
            alerts.extend(found);
            print_alerts(json, &alerts)?;
            if alerts.is_empty() && !json {
                eprintln!("clean: {entries} entries match the baseline / ベースラインと一致しました");
            }
            deliver(&sinks, &alerts).await?;
            gate(&alerts, fail_on)
        }
        IntegrityCommand::Watch {
            baseline,
            output,
            yara,
            rescan_minutes,
        } => {
            let sinks = sinks(config, &output)?;
            let (mut loaded, alerts) = load_checked(config, &baseline, output.server.as_deref()).await?;
            loaded.rules = with_yara(loaded.rules, &yara)?;
            print_alerts(output.json, &alerts)?;
            deliver(&sinks, &alerts).await?;
            watch_loop(loaded, output, rescan_minutes, sinks).await
        }
        IntegrityCommand::Approve {
            baseline,
            by,
            reason,
            rules,
            accept_findings,
            json,
            server,
        } => {
            let key_path = baseline
                .key
                .clone()
                .unwrap_or_else(|| config.data_dir.join(KEY_FILE));
            if baseline.public_key.is_some() {
                return Err(usage(
                    "approve signs a new baseline: it needs the key file (--key), not --public-key / approve には署名鍵ファイル（--key）が必要です",
                ));
            }
            let store = server.as_deref().map(baseline_store).transpose()?;
            let (loaded, alerts) = load_checked(config, &baseline, server.as_deref()).await?;
            for alert in &alerts {
                eprintln!("{}", alert.human());
            }
            let written = loaded.path.clone();
            tokio::task::spawn_blocking(move || {
                approve(
                    loaded,
                    &key_path,
                    &by,
                    &reason,
                    rules.as_deref(),
                    accept_findings,
                    json,
                )
            })
            .await
            .map_err(Error::internal)??;
            match store {
                Some(store) => store_on_server(&store, &written).await,
                None => Ok(()),
            }
        }
        IntegrityCommand::CompareRelease {
            dir,
            archive,
            rules,
            output,
            yara,
        } => {
            let rules = with_yara(read_rules(rules.as_deref())?, &yara)?;
            let fail_on = severity(&output.fail_on);
            let sinks = sinks(config, &output)?;
            let threads = thread_count(output.threads);
            let alerts =
                tokio::task::spawn_blocking(move || compare_release(&rules, &dir, &archive, threads))
                    .await
                    .map_err(Error::internal)??;
            print_alerts(output.json, &alerts)?;
            deliver(&sinks, &alerts).await?;
            gate(&alerts, fail_on)
        }
        IntegrityCommand::Scan {
            paths,
            rules,
            output,
            yara,
        } => {
            let rules = with_yara(read_rules(rules.as_deref())?, &yara)?;
            let fail_on = severity(&output.fail_on);
            let sinks = sinks(config, &output)?;
            let threads = thread_count(output.threads);
            let alerts = tokio::task::spawn_blocking(move || scan_signatures(&rules, &paths, threads))
                .await
                .map_err(Error::internal)??;
            print_alerts(output.json, &alerts)?;
            deliver(&sinks, &alerts).await?;
            gate(&alerts, fail_on)
        }
        IntegrityCommand::PublicKey { key } => {
            let key = key.unwrap_or_else(|| config.data_dir.join(KEY_FILE));
            let key = BaselineKey::load(&key).map_err(key_error)?;
            println!("{}", public_hex(&key.verifying_key()));
            Ok(())
        }
    }
}

fn severity(name: &str) -> Severity {
    Severity::parse(name).unwrap_or(Severity::Low)
}

fn thread_count(threads: Option<u16>) -> usize {
    threads.map_or_else(|| scan::Options::default().threads, usize::from)
}

fn read_rules(path: Option<&Path>) -> Result<Rules> {
    let Some(path) = path else {
        return Ok(Rules::builtin());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            "integrity_rules",
            "cannot read the --rules file / ルールファイルを読めません",
        )
        .with_cause(e)
    })?;
    Rules::parse(&text).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            "integrity_rules",
            format!("the --rules file is not valid: {e} / ルールファイルが不正です"),
        )
    })
}

/// The rules with the user's YARA rules added, compiled once for the whole run.
fn with_yara(rules: Rules, args: &YaraArgs) -> Result<Rules> {
    let Some(path) = &args.yara_rules else {
        return Ok(rules);
    };
    let timeout = Duration::from_secs(args.yara_timeout);
    let yara = anshin_integrity::yara::YaraRules::load(path, timeout).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            e.code,
            format!("{e} / YARA ルールを読み込めません"),
        )
    })?;
    Ok(rules.with_yara(yara))
}

fn key_error(err: anshin_integrity::key::KeyError) -> Error {
    use anshin_integrity::key::KeyError;
    match err {
        KeyError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => usage(
            "no signing key file: run `anshin integrity baseline` first, or give --key FILE or --public-key HEX / 署名鍵ファイルがありません",
        ),
        KeyError::TooOpen(mode) => usage(format!(
            "the signing key file has mode {mode:04o}; others may read it: chmod 600 it (and consider it leaked if others did) / 署名鍵ファイルの権限が広すぎます（chmod 600）"
        )),
        KeyError::Malformed => usage("the key is not 64 hexadecimal characters / 鍵の形式が不正です"),
        other => Error::new(
            ErrorKind::Internal,
            "integrity_key",
            "cannot read or create the signing key / 署名鍵を読めません",
        )
        .with_cause(other),
    }
}

/// A verified baseline with what it takes to check against it.
struct Loaded {
    path: PathBuf,
    payload: Payload,
    rules: Rules,
    roots: Vec<PathBuf>,
    threads: usize,
    progress: bool,
}

fn baseline_path(config: &Config, args: &BaselineArgs) -> PathBuf {
    args.baseline
        .clone()
        .unwrap_or_else(|| config.data_dir.join(BASELINE_FILE))
}

/// The public key the local baseline is checked with: `--public-key`, or the key file's.
fn trusted_key(config: &Config, args: &BaselineArgs) -> Result<VerifyingKey> {
    match &args.public_key {
        Some(hex) => parse_public(hex)
            .map_err(|_| usage("--public-key must be 64 hexadecimal characters / 公開鍵の形式が不正です")),
        None => {
            let key = args.key.clone().unwrap_or_else(|| config.data_dir.join(KEY_FILE));
            Ok(BaselineKey::load(&key).map_err(key_error)?.verifying_key())
        }
    }
}

fn load(config: &Config, args: &BaselineArgs) -> Result<Loaded> {
    let path = baseline_path(config, args);
    let trusted = trusted_key(config, args)?;
    let bytes = std::fs::read(&path).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "no baseline: run `anshin integrity baseline DIR…` first, or give --baseline FILE / ベースラインがありません"
        } else {
            "cannot read the baseline file / ベースラインを読めません"
        };
        Error::new(ErrorKind::Internal, "integrity_baseline_unreadable", message).with_cause(e)
    })?;
    loaded(path, decode(&bytes, &trusted)?)
}

/// Verifies a baseline file against `trusted` and decodes it.
fn decode(bytes: &[u8], trusted: &VerifyingKey) -> Result<Payload> {
    Payload::decode(bytes, trusted).map_err(|e| match e {
        BaselineError::NotABaseline => Error::new(
            ErrorKind::Conflict,
            "integrity_baseline_tampered",
            "the baseline file is not an anshin baseline (replaced or corrupted); restore it from the off-host copy / ベースラインが改ざんまたは破損しています",
        ),
        BaselineError::Tampered => Error::new(
            ErrorKind::Conflict,
            "integrity_baseline_tampered",
            "the baseline's signature does not verify: it was altered after signing. Treat the host as compromised and check against the off-host copy / ベースラインの署名が一致しません（改ざん）",
        ),
        BaselineError::OtherKey(key) => Error::new(
            ErrorKind::Conflict,
            "integrity_baseline_tampered",
            format!("the baseline is signed by another key ({key}), not the trusted one / ベースラインは別の鍵で署名されています"),
        ),
        BaselineError::Unreadable(_) => Error::new(
            ErrorKind::Internal,
            "integrity_baseline_invalid",
            "the baseline verifies but cannot be read; it may come from a newer anshin / ベースラインを読み取れません",
        ),
    })
}

/// A verified baseline, with its rules parsed and its roots checked.
fn loaded(path: PathBuf, payload: Payload) -> Result<Loaded> {
    let rules = Rules::parse(&payload.rules).map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "integrity_baseline_invalid",
            "the baseline's rules do not parse / ベースラインのルールが不正です",
        )
    })?;
    let roots: Vec<PathBuf> = payload
        .roots
        .iter()
        .map(|r| PathBuf::from(diff::unescape(r)))
        .collect();
    for root in &roots {
        if !root.is_dir() {
            return Err(Error::new(
                ErrorKind::Internal,
                "integrity_root_missing",
                format!(
                    "the baseline's directory {} is missing or not a directory / 監視対象のディレクトリがありません",
                    root.display()
                ),
            ));
        }
    }
    Ok(Loaded {
        path,
        payload,
        rules,
        roots,
        threads: scan::Options::default().threads,
        progress: std::io::stderr().is_terminal(),
    })
}

/// The baseline to check against. With `--server`, the server's newest copy
/// of this host's baseline, verified with the key the server pins for the
/// host: the local file is then only compared with it, and a local file that
/// differs or is missing, or a local key other than the pinned one, is an
/// alert. Without a stored copy the local file is used, with an alert.
async fn load_checked(
    config: &Config,
    args: &BaselineArgs,
    server: Option<&str>,
) -> Result<(Loaded, Vec<Alert>)> {
    let Some(server) = server else {
        return Ok((load(config, args)?, Vec::new()));
    };
    let path = baseline_path(config, args);
    let host = host_name();
    let ctx = context(Vec::new());
    let file = anshin_integrity::path_key(&path);
    let Some(stored) = fetch_stored(server, &host).await? else {
        let alert = Alert::baseline(
            &ctx,
            "baseline_not_stored",
            Severity::High,
            &file,
            vec![format!("server {server}")],
            (
                format!(
                    "the server keeps no baseline for host {host}: checked against the local file only; store it with `anshin integrity approve --server`"
                ),
                format!(
                    "サーバーにホスト {host} のベースラインがありません（ローカルのファイルだけで検査しました）"
                ),
            ),
        );
        return Ok((load(config, args)?, vec![alert]));
    };
    let payload = decode(&stored.file, &stored.key)?;
    let mut alerts = Vec::new();
    let stored_line = format!(
        "server's version {}: sha256 {}",
        stored.version,
        sha256_hex(&stored.file)
    );
    match std::fs::read(&path) {
        Ok(local) if local == stored.file => {}
        Ok(local) => alerts.push(Alert::baseline(
            &ctx,
            "baseline_mismatch",
            Severity::Critical,
            &file,
            vec![stored_line, format!("local file: sha256 {}", sha256_hex(&local))],
            (
                "the local baseline differs from the server's copy: it was replaced or altered on this host; the server's copy was used".to_owned(),
                "ローカルのベースラインがサーバーの控えと異なります（このホストで置き換えられたか改ざんされました）。サーバーの控えで検査しました".to_owned(),
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => alerts.push(Alert::baseline(
            &ctx,
            "baseline_mismatch",
            Severity::High,
            &file,
            vec![stored_line],
            (
                "the local baseline is missing; the server's copy was used".to_owned(),
                "ローカルのベースラインがありません。サーバーの控えで検査しました".to_owned(),
            ),
        )),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Internal,
                "integrity_baseline_unreadable",
                "cannot read the baseline file / ベースラインを読めません",
            )
            .with_cause(e));
        }
    }
    // Without a local key the server's pin alone is trusted (checked off the host).
    if let Ok(local) = trusted_key(config, args)
        && local != stored.key
    {
        alerts.push(Alert::baseline(
            &ctx,
            "baseline_mismatch",
            Severity::Critical,
            &file,
            vec![
                format!("pinned on the server: {}", public_hex(&stored.key)),
                format!("local key: {}", public_hex(&local)),
            ],
            (
                "the local signing key is not the one the server pins for this host: baselines signed here are not accepted there".to_owned(),
                "ローカルの署名鍵がサーバーに登録された鍵と異なります".to_owned(),
            ),
        ));
    }
    Ok((loaded(path, payload)?, alerts))
}

fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// A host's newest baseline on the server, with the key pinned for the host.
struct Stored {
    file: Vec<u8>,
    key: VerifyingKey,
    version: String,
}

fn server_error(server: &Upload, failure: Failure, what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "integrity_server",
        format!(
            "{what}: {}: {} / サーバーとの通信に失敗しました",
            server.target(),
            match failure {
                Failure::NoRoots(_) => "no trusted root certificates for HTTPS",
                Failure::Unreachable(_) => "unreachable",
                Failure::Timeout => "no answer in time",
                Failure::Request => "bad request",
            }
        ),
    )
}

fn refused(server: &Upload, what: &str, status: StatusCode, answer: &[u8]) -> Error {
    let answer: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    Error::new(
        ErrorKind::Unavailable,
        "integrity_server",
        format!(
            "the anshin server {} refused {what}: HTTP {} {} / サーバーが要求を受け付けませんでした",
            server.target(),
            status.as_u16(),
            error_code(&answer)
        ),
    )
}

/// Fetches this host's newest stored baseline; `None` when the server keeps none.
async fn fetch_stored(server: &str, host: &str) -> Result<Option<Stored>> {
    let host = parse_host(host).map_err(|_| {
        usage("this host's name cannot name a stored baseline (letters, digits, '.', '-', '_') / ホスト名が不正です")
    })?;
    let endpoint = Upload::to(
        server,
        std::env::var(API_KEY_ENV).ok(),
        &format!("/v1/integrity/baselines/{host}"),
    )?;
    let (status, headers, body) = endpoint
        .request(Method::GET, BASELINE_MEDIA_TYPE, Vec::new(), MAX_BASELINE_BYTES)
        .await
        .map_err(|f| server_error(&endpoint, f, "the stored baseline could not be fetched"))?;
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(refused(&endpoint, "to give the stored baseline", status, &body));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header(KEY_HEADER)
        .and_then(|k| parse_public(k).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "integrity_server",
                "the server's answer names no pinned key / サーバーの応答に公開鍵がありません",
            )
        })?;
    Ok(Some(Stored {
        file: body.to_vec(),
        key,
        version: header(VERSION_HEADER).unwrap_or("?").to_owned(),
    }))
}

/// Where `--server` stores baselines, checked before any work.
fn baseline_store(server: &str) -> Result<Upload> {
    Upload::to(server, std::env::var(API_KEY_ENV).ok(), "/v1/integrity/baselines")
}

/// Sends the baseline file at `path` to the server.
async fn store_on_server(store: &Upload, path: &Path) -> Result<()> {
    let file = std::fs::read(path).map_err(failure(
        "integrity_output",
        "cannot read the baseline file back / ベースラインを読めません",
    ))?;
    let (status, _, body) = store
        .request(Method::POST, BASELINE_MEDIA_TYPE, file, 64 << 10)
        .await
        .map_err(|f| {
            server_error(
                store,
                f,
                "the baseline (written locally) could not be stored on the server",
            )
        })?;
    if !status.is_success() {
        return Err(refused(store, "the baseline (written locally)", status, &body));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    eprintln!(
        "baseline stored on {} as version {} of host {}{} / サーバーに保存しました",
        store.target(),
        answer["version"],
        answer["host"].as_str().unwrap_or("?"),
        if answer["pinned"] == true {
            "; the server now pins this signing key for the host"
        } else {
            ""
        }
    );
    Ok(())
}

fn context(roots: Vec<String>) -> Context {
    Context {
        host: host_name(),
        roots,
        detected_at: anshin_integrity::now_rfc3339(),
    }
}

fn spinner(show: bool, progress: &Arc<Progress>) -> Option<Spinner> {
    show.then(|| {
        let p = progress.clone();
        Spinner::start("{spinner} {msg} [{elapsed}]", move |bar| {
            bar.set_message(format!(
                "{} entries, {} MiB hashed",
                p.entries.load(Ordering::Relaxed),
                p.bytes_hashed.load(Ordering::Relaxed) >> 20
            ));
        })
    })
}

fn walk(
    roots: &[PathBuf],
    rules: &Rules,
    previous: &[anshin_integrity::record::Record],
    options: scan::Options,
    show: bool,
) -> scan::Scan {
    let progress = Arc::new(Progress::default());
    let _spinner = spinner(show, &progress);
    scan::scan(roots, rules, &Previous::new(previous), options, &progress)
}

fn note_unscanned(unscanned: &[diff::Unscanned]) {
    for u in unscanned {
        let why = match &u.reason {
            signatures::SkipReason::TooLarge => "larger than the signatures read".to_owned(),
            signatures::SkipReason::Unreadable(e) => e.to_string(),
        };
        eprintln!(
            "note: {} not run through the signatures ({why}) / シグネチャ検査できませんでした",
            u.path
        );
    }
}

fn check(loaded: &Loaded, output: &OutputArgs, full: bool) -> Result<(Vec<Alert>, usize)> {
    let options = scan::Options {
        threads: output.threads.map_or(loaded.threads, usize::from),
        full,
    };
    let found = walk(
        &loaded.roots,
        &loaded.rules,
        &loaded.payload.records,
        options,
        loaded.progress && !output.no_progress,
    );
    let mut changes = diff::compare(&loaded.rules, &loaded.payload.records, &found);
    note_unscanned(&diff::attach_findings(&mut changes, &loaded.roots, &loaded.rules));
    let ctx = context(loaded.payload.roots.clone());
    Ok((alerts_of(&changes, &ctx, "file"), found.records.len()))
}

fn alerts_of(changes: &[Change], ctx: &Context, prefix: &str) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = changes
        .iter()
        .flat_map(|c| Alert::from_change(c, ctx, prefix))
        .collect();
    // Worst first, then by place, so a long report starts with what matters.
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| (&a.root, &a.path).cmp(&(&b.root, &b.path)))
    });
    alerts
}

fn print_alerts(json: bool, alerts: &[Alert]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written: std::io::Result<()> = (|| {
        for alert in alerts {
            if json {
                serde_json::to_writer(&mut out, alert)?;
                out.write_all(b"\n")?;
            } else {
                writeln!(out, "{}", alert.human())?;
            }
        }
        if !json && !alerts.is_empty() {
            let count = |s: Severity| alerts.iter().filter(|a| a.severity == s).count();
            writeln!(
                out,
                "{} alerts: {} critical, {} high, {} low / アラート {} 件",
                alerts.len(),
                count(Severity::Critical),
                count(Severity::High),
                count(Severity::Low),
                alerts.len()
            )?;
        }
        out.flush()
    })();
    written.map_err(failure(
        "integrity_output",
        "cannot write the report / レポートを書き込めません",
    ))
}

/// Where alerts go besides standard output.
struct Sinks {
    webhook: Option<Webhook>,
    /// An anshin server's alert list (`--server`).
    server: Option<Upload>,
}

fn sinks(config: &Config, output: &OutputArgs) -> Result<Sinks> {
    let webhook = if output.webhook {
        Some(Webhook::from_config(&config.alerts)?.ok_or_else(|| {
            usage("--webhook needs ANSHIN_ALERT_WEBHOOK_URL and ANSHIN_ALERT_WEBHOOK_SECRET (or alert_webhook_url and alert_webhook_secret in the configuration) / Webhook の設定がありません")
        })?)
    } else {
        None
    };
    let server = output
        .server
        .as_deref()
        .map(|server| Upload::to(server, std::env::var(API_KEY_ENV).ok(), "/v1/integrity/alerts"))
        .transpose()?;
    Ok(Sinks { webhook, server })
}

/// Sends the alerts to the server's alert list, in batches of 500.
async fn send_to_server(server: &Upload, alerts: &[Alert]) -> Result<()> {
    let mut raised = 0;
    for batch in alerts.chunks(500) {
        let body = serde_json::to_vec(&serde_json::json!({ "alerts": batch })).map_err(Error::internal)?;
        let (status, answer) = server
            .post(body)
            .await
            .map_err(|f| server_error(server, f, "the alerts (printed) could not be sent"))?;
        if !status.is_success() {
            let answer = serde_json::to_vec(&answer).unwrap_or_default();
            return Err(refused(server, "the alerts", status, &answer));
        }
        raised += answer["raised"].as_u64().unwrap_or(0);
    }
    eprintln!(
        "{} alerts sent to {} ({raised} new) / アラートをサーバーに送信しました",
        alerts.len(),
        server.target()
    );
    Ok(())
}

/// POSTs every alert to the webhook, retrying each a few times (1 s, then
/// 2 s), and sends them to the server; an alert that still fails makes the
/// command fail after the others were tried.
async fn deliver(sinks: &Sinks, alerts: &[Alert]) -> Result<()> {
    if let Some(server) = &sinks.server
        && !alerts.is_empty()
    {
        send_to_server(server, alerts).await?;
    }
    let Some(webhook) = &sinks.webhook else {
        return Ok(());
    };
    let mut failed = 0usize;
    for alert in alerts {
        let body = serde_json::to_vec(alert).map_err(Error::internal)?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match webhook.post(body.clone()).await {
                Ok(()) => break,
                Err(error) if attempt < 3 => {
                    tracing::warn!(receiver = %webhook.target(), attempt, %error, "integrity alert delivery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
                Err(error) => {
                    eprintln!(
                        "warning: alert {} not delivered to {}: {error} / Webhook への送信に失敗しました",
                        alert.id,
                        webhook.target()
                    );
                    failed += 1;
                    break;
                }
            }
        }
    }
    if failed > 0 {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "integrity_webhook",
            "some alerts could not be delivered to the webhook (they were printed) / 一部のアラートを Webhook に送信できませんでした",
        ));
    }
    Ok(())
}

fn gate(alerts: &[Alert], fail_on: Severity) -> Result<()> {
    if alerts.iter().any(|a| a.severity >= fail_on) {
        return Err(Error::new(
            ErrorKind::Conflict,
            "integrity_findings",
            format!("alerts at or above {fail_on} / {fail_on} 以上のアラートがあります"),
        ));
    }
    Ok(())
}

fn write_baseline(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = failure(
        "integrity_output",
        "cannot write the baseline file / ベースラインを書き込めません",
    );
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(failure(
        "integrity_output",
        "cannot create the baseline's directory / ディレクトリを作成できません",
    ))?;
    let mut file = match tempfile::NamedTempFile::new_in(dir) {
        Ok(f) => f,
        Err(e) => return Err(failed(e)),
    };
    let written = file.write_all(bytes).and_then(|()| file.as_file().sync_all());
    if let Err(e) = written {
        return Err(failure(
            "integrity_output",
            "cannot write the baseline file / ベースラインを書き込めません",
        )(e));
    }
    file.persist(path).map_err(|e| {
        failure(
            "integrity_output",
            "cannot write the baseline file / ベースラインを書き込めません",
        )(e.error)
    })?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn baseline(
    dirs: &[PathBuf],
    rules: Option<&Path>,
    out: &Path,
    key: &Path,
    by: Option<String>,
    threads: Option<u16>,
    json: bool,
    no_progress: bool,
) -> Result<()> {
    let rules = read_rules(rules)?;
    let mut roots = Vec::new();
    for dir in dirs {
        roots.push(directory(dir)?);
    }
    if out.exists() {
        return Err(Error::new(
            ErrorKind::Invalid,
            "integrity_baseline_exists",
            format!(
                "{} already exists: accept changes with `anshin integrity approve --by … --reason …`, or choose another --out / ベースラインは既にあります（approve を使ってください）",
                out.display()
            ),
        ));
    }
    let (signing, created) = BaselineKey::load_or_create(key).map_err(key_error)?;
    if created {
        eprintln!(
            "note: created the signing key {} (mode 0600); public key {} / 署名鍵を作成しました",
            key.display(),
            public_hex(&signing.verifying_key())
        );
    }
    let started = std::time::Instant::now();
    let options = scan::Options {
        threads: thread_count(threads),
        full: true,
    };
    let found = walk(
        &roots,
        &rules,
        &[],
        options,
        !no_progress && std::io::stderr().is_terminal(),
    );
    for problem in &found.problems {
        eprintln!(
            "warning: {}: {} / 記録できませんでした",
            problem.path,
            describe_problem(&problem.kind)
        );
    }
    let who = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let payload = Payload {
        created_at: anshin_integrity::now_rfc3339(),
        host: host_name(),
        roots: roots.iter().map(|r| anshin_integrity::path_key(r)).collect(),
        rules: rules.source().to_owned(),
        history: vec![HistoryEntry {
            at: anshin_integrity::now_rfc3339(),
            action: "baseline".to_owned(),
            by: who,
            reason: "initial baseline".to_owned(),
            added: found.records.len() as u64,
            removed: 0,
            changed: 0,
        }],
        records: found.records,
    };
    write_baseline(out, &payload.encode(&signing))?;
    let files = payload.records.iter().filter(|r| r.sha256.is_some()).count();
    summary(
        json,
        &serde_json::json!({
            "baseline": out.display().to_string(),
            "entries": payload.records.len(),
            "files": files,
            "problems": found.problems.len(),
            "public_key": public_hex(&signing.verifying_key()),
            "seconds": started.elapsed().as_secs_f64(),
        }),
        &format!(
            "baseline written to {}: {} entries ({} files hashed) in {:.2} s; public key {} / ベースラインを作成しました",
            out.display(),
            payload.records.len(),
            files,
            started.elapsed().as_secs_f64(),
            public_hex(&signing.verifying_key())
        ),
    );
    Ok(())
}

/// The absolute path of a directory argument.
fn directory(dir: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(dir)
        .ok()
        .filter(|r| r.is_dir())
        .ok_or_else(|| {
            usage(format!(
                "{} is not a directory / ディレクトリではありません",
                dir.display()
            ))
        })
}

fn describe_problem(kind: &scan::ProblemKind) -> String {
    match kind {
        scan::ProblemKind::Unreadable(reason) => format!("unreadable ({reason})"),
        scan::ProblemKind::ChangedDuringScan => "changed while it was read".to_owned(),
    }
}

fn summary(json: bool, value: &serde_json::Value, human: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{human}");
    }
}

fn approve(
    loaded: Loaded,
    key_path: &Path,
    by: &str,
    reason: &str,
    rules: Option<&Path>,
    accept_findings: bool,
    json: bool,
) -> Result<()> {
    if by.trim().is_empty() || reason.trim().is_empty() {
        return Err(usage(
            "--by and --reason must not be empty / --by と --reason を指定してください",
        ));
    }
    let signing = BaselineKey::load(key_path).map_err(key_error)?;
    let rules = match rules {
        Some(path) => read_rules(Some(path))?,
        None => loaded.rules,
    };
    let options = scan::Options {
        threads: loaded.threads,
        full: false,
    };
    let found = walk(
        &loaded.roots,
        &rules,
        &loaded.payload.records,
        options,
        loaded.progress,
    );
    if !found.problems.is_empty() {
        for problem in &found.problems {
            eprintln!(
                "error: {}: {} / 記録できません",
                problem.path,
                describe_problem(&problem.kind)
            );
        }
        return Err(Error::new(
            ErrorKind::Conflict,
            "integrity_approve_incomplete",
            "files could not be read or changed during the scan; approve again when the deploy has finished / 読めない・変更中のファイルがあるため承認できません",
        ));
    }
    let mut changes = diff::compare(&rules, &loaded.payload.records, &found);
    note_unscanned(&diff::attach_findings(&mut changes, &loaded.roots, &rules));
    let ctx = context(loaded.payload.roots.clone());
    let alerts = alerts_of(&changes, &ctx, "file");
    for alert in &alerts {
        eprintln!("{}", alert.human());
    }
    if !accept_findings && alerts.iter().any(|a| a.kind == "signature") {
        return Err(Error::new(
            ErrorKind::Conflict,
            "integrity_findings",
            "the skimmer signatures found something in the changes (listed above); nothing was approved. Remove it, or add --accept-findings if you are sure / 変更内容にシグネチャ検出があるため承認しませんでした",
        ));
    }
    let count = |kind: ChangeKind| changes.iter().filter(|c| c.kind == kind).count() as u64;
    let entry = HistoryEntry {
        at: anshin_integrity::now_rfc3339(),
        action: "approve".to_owned(),
        by: by.trim().to_owned(),
        reason: reason.trim().to_owned(),
        added: count(ChangeKind::Added),
        removed: count(ChangeKind::Removed),
        changed: count(ChangeKind::Changed),
    };
    let mut history = loaded.payload.history.clone();
    history.push(entry.clone());
    let payload = Payload {
        created_at: anshin_integrity::now_rfc3339(),
        host: host_name(),
        roots: loaded.payload.roots.clone(),
        rules: rules.source().to_owned(),
        records: found.records,
        history,
    };
    write_baseline(&loaded.path, &payload.encode(&signing))?;
    summary(
        json,
        &serde_json::to_value(&entry).map_err(Error::internal)?,
        &format!(
            "approved by {}: {} added, {} removed, {} changed ({}) / 承認しました",
            entry.by, entry.added, entry.removed, entry.changed, entry.reason
        ),
    );
    Ok(())
}

fn compare_release(rules: &Rules, dir: &Path, archive: &Path, threads: usize) -> Result<Vec<Alert>> {
    let root = directory(dir)?;
    let (mut changes, _) = anshin_integrity::release::compare_release(rules, &root, archive, threads)
        .map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                "integrity_archive",
                format!("cannot read the release archive: {e} / リリースアーカイブを読めません"),
            )
        })?;
    let roots = vec![root];
    note_unscanned(&diff::attach_findings(&mut changes, &roots, rules));
    let ctx = context(roots.iter().map(|r| anshin_integrity::path_key(r)).collect());
    Ok(alerts_of(&changes, &ctx, "release"))
}

fn scan_signatures(rules: &Rules, paths: &[PathBuf], threads: usize) -> Result<Vec<Alert>> {
    let report = signatures::scan_tree(paths, rules, threads);
    for (path, reason) in &report.unscanned {
        let why = match reason {
            signatures::SkipReason::TooLarge => "larger than the signatures read".to_owned(),
            signatures::SkipReason::Unreadable(e) => e.to_string(),
        };
        eprintln!("note: {path} not scanned ({why}) / 検査できませんでした");
    }
    let ctx = context(paths.iter().map(|p| anshin_integrity::path_key(p)).collect());
    let mut alerts = Vec::new();
    for hit in &report.hits {
        let root = ctx.roots.get(hit.root).cloned().unwrap_or_default();
        for finding in &hit.findings {
            alerts.push(Alert::signature(
                &ctx,
                &root,
                &hit.path,
                finding,
                Some(&hit.sha256),
            ));
        }
    }
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| (&a.root, &a.path, a.line).cmp(&(&b.root, &b.path, b.line)))
    });
    Ok(alerts)
}

async fn watch_loop(loaded: Loaded, output: OutputArgs, rescan_minutes: u64, sinks: Sinks) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<watch::Report>();
    let options = watch::Options {
        rescan_every: Duration::from_secs(rescan_minutes * 60),
        threads: output.threads.map_or(loaded.threads, usize::from),
        ..watch::Options::default()
    };
    let roots = loaded.roots.clone();
    let ctx_roots = loaded.payload.roots.clone();
    let flag = stop.clone();
    eprintln!(
        "watching {} (baseline of {}); stop with Ctrl-C / 監視を開始しました",
        ctx_roots.join(", "),
        loaded.payload.created_at
    );
    let worker = tokio::task::spawn_blocking(move || {
        watch::run(
            &roots,
            &loaded.rules,
            &loaded.payload.records,
            options,
            &flag,
            |report| {
                let _ = tx.send(report);
            },
        )
    });
    let signal = super::serve::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            report = rx.recv() => match report {
                Some(watch::Report::Changes(changes)) => {
                    let alerts = alerts_of(&changes, &context(ctx_roots.clone()), "file");
                    print_alerts(output.json, &alerts)?;
                    if let Err(err) = deliver(&sinks, &alerts).await {
                        eprintln!("warning: {} ", err.message());
                    }
                }
                Some(watch::Report::Rescanned(reason)) => {
                    tracing::info!(reason, "integrity watch: full rescan done");
                }
                Some(watch::Report::Warning(text)) => eprintln!("warning: {text}"),
                None => break,
            },
            () = &mut signal => {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    worker.await.map_err(Error::internal)?.map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            "integrity_watch",
            "cannot watch the files (inotify) / ファイルを監視できません",
        )
        .with_cause(e)
    })
}
