//! `anshin unseal` and `anshin seal`: a custodian enters a share into a sealed
//! server, an operator seals a running one.
//!
//! The share and its passphrase are read without echo from the terminal, or
//! line by line from standard input when it is not one (share first, then
//! the passphrase if the share needs it): never from the command line, which
//! every user of the machine can read.

use std::io::{BufRead, IsTerminal};

use anshin_crypto::secret::SecretString;
use axum::http::{Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::Full;

use super::scan_upload::{API_KEY_ENV, Failure, error_code, exchange};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::seal::SealStatus;
use crate::vault::shares::Share;

fn usage(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "unseal_usage", message)
}

/// `anshin unseal`.
pub async fn unseal(config: &Config, server: Option<&str>, json: bool) -> Result<()> {
    let endpoint = endpoint(config, server, "unseal")?;
    let (share, passphrase) = read_shares(1)?
        .pop()
        .ok_or_else(|| usage("no share on standard input / 標準入力に分割鍵がありません"))?;
    let mut body = serde_json::json!({ "share": share.expose() });
    if let Some(passphrase) = &passphrase {
        body["passphrase"] = passphrase.expose().into();
    }
    let body = SecretString::new(body.to_string());
    let status = post(&endpoint, None, body).await?;
    print_status(status, json)
}

/// `anshin seal`.
pub async fn seal(config: &Config, server: Option<&str>, json: bool) -> Result<()> {
    let endpoint = endpoint(config, server, "seal")?;
    let key = std::env::var(API_KEY_ENV)
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(|k| SecretString::new(k.trim().to_owned()))
        .ok_or_else(|| {
            usage("anshin seal needs a global operator's API key in ANSHIN_API_KEY / ANSHIN_API_KEY に運用者の API キーを設定してください")
        })?;
    let status = post(&endpoint, Some(&key), SecretString::new(String::new())).await?;
    print_status(status, json)
}

fn print_status(status: SealStatus, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&status).map_err(Error::internal)?);
    } else if status.sealed {
        println!(
            "Sealed: {} of {} shares entered / 封印中: {}/{} の分割鍵が入力済み",
            status.progress, status.threshold, status.progress, status.threshold
        );
    } else {
        println!("Unsealed: the vault is serving / 封印解除済み: 稼働中");
    }
    Ok(())
}

/// `URL/v1/sys/{action}`; the server defaults to the configured listen address.
fn endpoint(config: &Config, server: Option<&str>, action: &str) -> Result<Uri> {
    let base = server.map_or_else(|| format!("http://{}", config.listen), str::to_owned);
    let bad =
        || usage("--server must be http://HOST:PORT or https://HOST[:PORT] / --server の URL が不正です");
    let uri: Uri = base.parse().map_err(|_| bad())?;
    let (Some(scheme @ ("http" | "https")), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad());
    };
    if authority.as_str().contains('@') || uri.query().is_some() {
        return Err(bad());
    }
    let prefix = uri.path().trim_end_matches('/');
    format!("{scheme}://{authority}{prefix}/v1/sys/{action}")
        .parse()
        .map_err(|_| bad())
}

/// The share, and its passphrase when the share is sealed under one.
/// `count` custodians' shares, each with its passphrase if it needs one.
pub(super) fn read_shares(count: u8) -> Result<Vec<(SecretString, Option<SecretString>)>> {
    let unreadable = |e: std::io::Error| {
        Error::new(ErrorKind::Invalid, "unseal_usage", "cannot read the share").with_cause(e)
    };
    if std::io::stdin().is_terminal() {
        return (0..count)
            .map(|_| {
                let share = SecretString::new(
                    rpassword::prompt_password("Share (not shown) / 分割鍵（非表示）: ")
                        .map_err(unreadable)?,
                );
                let passphrase = if Share::parse(share.expose()).is_ok_and(|s| s.needs_passphrase()) {
                    Some(SecretString::new(
                        rpassword::prompt_password("Passphrase / パスフレーズ: ").map_err(unreadable)?,
                    ))
                } else {
                    None
                };
                Ok((share, passphrase))
            })
            .collect();
    }
    let mut lines = std::io::stdin().lock().lines();
    let mut next = || -> Result<Option<SecretString>> {
        Ok(lines
            .next()
            .transpose()
            .map_err(unreadable)?
            .map(SecretString::new))
    };
    (0..count)
        .map(|_| {
            let share =
                next()?.ok_or_else(|| usage("no share on standard input / 標準入力に分割鍵がありません"))?;
            let passphrase = next()?.filter(|p| !p.is_empty());
            Ok((share, passphrase))
        })
        .collect()
}

async fn post(endpoint: &Uri, key: Option<&SecretString>, body: SecretString) -> Result<SealStatus> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(endpoint.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("anshin/", env!("CARGO_PKG_VERSION")));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", key.expose()));
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.expose().as_bytes())))
        .map_err(|_| usage("cannot build the request"))?;
    let unavailable = |message: String| Error::new(ErrorKind::Unavailable, "server_unreachable", message);
    let (status, bytes) = exchange(request).await.map_err(|failure| match failure {
        Failure::NoRoots(e) => {
            unavailable("no trusted root certificates for HTTPS; install ca-certificates".into())
                .with_cause(e)
        }
        Failure::Unreachable(e) => unavailable(format!(
            "cannot reach the anshin server at {endpoint}; check --server / サーバーに接続できません"
        ))
        .with_cause(e),
        Failure::Timeout => unavailable("the anshin server did not answer in time".into()),
        Failure::Request => usage("cannot build the request"),
    })?;
    if status == StatusCode::OK {
        return serde_json::from_slice(&bytes).map_err(|_| {
            unavailable("the server's answer is not a seal status; is --server an anshin server?".into())
        });
    }
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = error_code(&answer);
    Err(Error::new(
        ErrorKind::Invalid,
        "unseal_refused",
        format!(
            "the server refused: HTTP {} {code}{}",
            status.as_u16(),
            hint(&code)
        ),
    ))
}

fn hint(code: &str) -> &'static str {
    match code {
        "share_checksum" => " (a typo in the share: enter it again)",
        "share_wrong_vault" => " (the share belongs to another vault)",
        "share_duplicate" => " (this share was already entered: the next custodian's is needed)",
        "share_passphrase_required" | "share_passphrase_wrong" => " (the share's passphrase is needed)",
        "share_combination_wrong" => " (the shares do not rebuild this vault's key: progress reset)",
        "share_malformed" => " (not an anshin share: copy it again in full)",
        "unseal_rate_limited" => " (wait a second and try again)",
        _ => "",
    }
}
