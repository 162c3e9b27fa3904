//! One typed configuration, read once: command-line flags over `ANSHIN_*`
//! environment variables over the TOML file over defaults.
//!
//! The TOML file is `--config FILE` (or `ANSHIN_CONFIG`), else `anshin.toml` in
//! the data directory if it exists. Keys: `listen`, `database_url`, `log`,
//! `trusted_proxies` (a list of CIDR blocks; or `ANSHIN_TRUSTED_PROXIES`,
//! comma-separated), `public_url` (or `ANSHIN_PUBLIC_URL`: the origin shoppers'
//! browsers reach anshin at), `checkout_session_ttl_secs`, `outbound_allowed_hosts`,
//! `payment_webhook_allow_loopback`, `page_monitor_allow_networks` (CIDR blocks
//! the page monitor may reach besides public addresses; or
//! `ANSHIN_PAGE_MONITOR_ALLOW_NETWORKS`, comma-separated), and the `alert_*`
//! keys of [`AlertConfig`]. The alert webhook's URL and secret
//! also come from `ANSHIN_ALERT_WEBHOOK_URL` and `ANSHIN_ALERT_WEBHOOK_SECRET`
//! (environment only, never a flag: command lines are visible to every user).
//! Showing the configuration redacts the database password, the webhook
//! secret and the webhook URL's path (a webhook URL is often a credential).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use anshin_crypto::secret::SecretString;
use serde::{Deserialize, Serialize};

use crate::access::cidr::Cidr;
use crate::access::proxies::TrustedProxies;
use crate::app::Location;
use crate::audit::detect::DetectSettings;
use crate::cli::GlobalArgs;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::rotation::RotationPolicy;

/// Default listen address: loopback only, so a fresh install is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "anshin-data";

/// The configuration in force.
#[derive(Clone, Serialize)]
pub struct Config {
    /// Data directory (root key; SQLite database by default).
    pub data_dir: PathBuf,
    /// Database URL; `None` means SQLite in the data directory.
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<String>,
    /// Address `anshin serve` listens on.
    pub listen: SocketAddr,
    /// Log filter (tracing `EnvFilter` syntax), for example `info` or `anshin=debug`.
    pub log: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    #[serde(serialize_with = "proxies_text")]
    pub trusted_proxies: TrustedProxies,
    /// Alert detectors and the alert webhook.
    #[serde(flatten)]
    pub alerts: AlertConfig,
    /// Which root of trust `anshin init` creates, and where a PKCS#11 token is.
    #[serde(flatten)]
    pub root_of_trust: RootOfTrustConfig,
    /// Automatic KEK rotation and the rewrap job's pace.
    #[serde(flatten)]
    pub keys: RotationPolicy,
    /// The origin shoppers' browsers reach anshin at (`public_url`,
    /// `ANSHIN_PUBLIC_URL`; default `http://<listen>`).
    pub public_url: String,
    /// Life of a checkout session in seconds (`checkout_session_ttl_secs`, 60–86400).
    pub checkout_session_ttl_secs: u64,
    /// Hosts (`host` or `host:port`) processor and outbound routes may send
    /// card data to (`outbound_allowed_hosts`, or `ANSHIN_OUTBOUND_ALLOWED_HOSTS`
    /// comma-separated); empty: no route can be configured.
    pub outbound_allowed_hosts: Vec<String>,
    /// Whether shops may set payment webhook endpoints on loopback
    /// (`payment_webhook_allow_loopback`, default false: a shop could
    /// otherwise make anshin POST to services on its own host).
    pub payment_webhook_allow_loopback: bool,
    /// Networks the checkout-page monitor may connect to besides public
    /// addresses (`page_monitor_allow_networks`, or
    /// `ANSHIN_PAGE_MONITOR_ALLOW_NETWORKS` comma-separated): an intranet shop.
    /// Private, loopback, link-local and metadata addresses are refused otherwise.
    #[serde(serialize_with = "cidrs_text")]
    pub page_monitor_allow_networks: Vec<Cidr>,
}

/// The root of trust `anshin init` creates (the data directory records the
/// one in force), and the PKCS#11 token's whereabouts. The token's PIN is
/// never here: `ANSHIN_PKCS11_PIN` or a file named by `ANSHIN_PKCS11_PIN_FILE`.
#[derive(Debug, Clone, Serialize)]
pub struct RootOfTrustConfig {
    /// `file` (default), `shares` (with `anshin init --shares`) or `pkcs11`.
    pub root_of_trust: String,
    /// The PKCS#11 module (shared library).
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    pub pkcs11_token_label: Option<String>,
    /// The root key object's label.
    pub pkcs11_key_label: String,
}

/// Default label of the root key object in a PKCS#11 token.
pub const DEFAULT_PKCS11_KEY_LABEL: &str = "anshin-root-key";

/// Default number of webhook delivery attempts: with the backoff (1 s doubling
/// to 1 h, jittered) retries go on for four to eight hours.
pub const DEFAULT_WEBHOOK_ATTEMPTS: u32 = 20;

/// Alert detectors' thresholds and the webhook alerts are sent to.
#[derive(Clone, Serialize)]
pub struct AlertConfig {
    /// Where alerts are POSTed (`https://…`, or `http://` to a loopback address).
    #[serde(rename = "alert_webhook_url", serialize_with = "redacted_webhook_url")]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA-256 secret the webhook is signed with (at least 32 bytes).
    #[serde(rename = "alert_webhook_secret", serialize_with = "redacted_secret")]
    pub webhook_secret: Option<SecretString>,
    /// Delivery attempts before an alert is given up (1–100).
    #[serde(rename = "alert_webhook_max_attempts")]
    pub webhook_max_attempts: u32,
    /// "Far above baseline": this many times a principal's hourly baseline…
    #[serde(rename = "alert_volume_factor")]
    pub volume_factor: f64,
    /// … and more than this many records in one hour.
    #[serde(rename = "alert_volume_floor")]
    pub volume_floor: u64,
    /// Offset from UTC in which hours of day are judged, in minutes.
    #[serde(rename = "alert_utc_offset", serialize_with = "offset_text")]
    pub utc_offset_minutes: i32,
    /// Days of history before a principal's hours are judged (1–6).
    #[serde(rename = "alert_min_history_days")]
    pub min_history_days: u32,
    /// Seconds the audit checkpoint may stay behind sequenced entries.
    #[serde(rename = "alert_checkpoint_stall_seconds")]
    pub checkpoint_stall_seconds: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        let d = DetectSettings::default();
        Self {
            webhook_url: None,
            webhook_secret: None,
            webhook_max_attempts: DEFAULT_WEBHOOK_ATTEMPTS,
            volume_factor: d.volume_factor,
            volume_floor: d.volume_floor,
            utc_offset_minutes: d.utc_offset_minutes,
            min_history_days: d.min_history_days,
            checkpoint_stall_seconds: u64::try_from(d.stall_ms / 1000).unwrap_or(60),
        }
    }
}

impl fmt::Debug for AlertConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertConfig")
            .field(
                "webhook_url",
                &self.webhook_url.as_deref().map(redact_webhook_url),
            )
            .field("webhook_secret", &self.webhook_secret)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("volume_factor", &self.volume_factor)
            .field("volume_floor", &self.volume_floor)
            .field("utc_offset_minutes", &self.utc_offset_minutes)
            .field("min_history_days", &self.min_history_days)
            .field("checkpoint_stall_seconds", &self.checkpoint_stall_seconds)
            .finish()
    }
}

impl AlertConfig {
    /// The detectors' thresholds.
    pub fn detect_settings(&self) -> DetectSettings {
        DetectSettings {
            volume_factor: self.volume_factor,
            volume_floor: self.volume_floor,
            utc_offset_minutes: self.utc_offset_minutes,
            min_history_days: self.min_history_days,
            stall_ms: i64::try_from(self.checkpoint_stall_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
            ..DetectSettings::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.volume_factor.is_finite() && self.volume_factor >= 1.0) {
            return Err(config_error(
                "alert_volume_factor must be a number of at least 1, such as 10".into(),
            ));
        }
        if self.volume_floor == 0 {
            return Err(config_error("alert_volume_floor must be at least 1".into()));
        }
        if !(1..=6).contains(&self.min_history_days) {
            return Err(config_error(
                "alert_min_history_days must be 1 to 6 (history is learned over 7 days)".into(),
            ));
        }
        if self.checkpoint_stall_seconds < 5 {
            return Err(config_error(
                "alert_checkpoint_stall_seconds must be at least 5".into(),
            ));
        }
        if !(1..=100).contains(&self.webhook_max_attempts) {
            return Err(config_error("alert_webhook_max_attempts must be 1 to 100".into()));
        }
        match (&self.webhook_url, &self.webhook_secret) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(config_error(
                "alert_webhook_url is set but alert_webhook_secret is not: set ANSHIN_ALERT_WEBHOOK_SECRET \
                 to at least 32 random characters (openssl rand -hex 32)"
                    .into(),
            )),
            (None, Some(_)) => Err(config_error(
                "alert_webhook_secret is set but alert_webhook_url is not".into(),
            )),
            (Some(url), Some(secret)) => {
                check_webhook_url(url)?;
                if secret.expose().len() < anshin_crypto::webhook::MIN_SECRET_LEN {
                    return Err(config_error(
                        "alert_webhook_secret must be at least 32 characters (openssl rand -hex 32)".into(),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Accepts `https://host…`, and `http://` only to a loopback host: alerts name
/// principals and tenants, which should not cross a network in clear.
fn check_webhook_url(url: &str) -> Result<()> {
    use crate::webhook::{Receiver, UrlProblem, check_url};
    match check_url(url, Receiver::Operator) {
        Ok(_) => Ok(()),
        Err(UrlProblem::Credentials) => Err(config_error(
            "alert_webhook_url must not carry a user name or password; receivers check the signature".into(),
        )),
        Err(_) => Err(config_error(
            "alert_webhook_url must be https://HOST/PATH, or http:// to 127.0.0.1, [::1] or localhost".into(),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    log: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    alert_webhook_url: Option<String>,
    alert_webhook_secret: Option<String>,
    alert_webhook_max_attempts: Option<u32>,
    alert_volume_factor: Option<f64>,
    alert_volume_floor: Option<u64>,
    alert_utc_offset: Option<String>,
    alert_min_history_days: Option<u32>,
    alert_checkpoint_stall_seconds: Option<u64>,
    root_of_trust: Option<String>,
    pkcs11_module: Option<PathBuf>,
    pkcs11_token_label: Option<String>,
    pkcs11_key_label: Option<String>,
    key_rotate_after_days: Option<u32>,
    key_rotate_after_encryptions: Option<u64>,
    key_rewrap_pause_ms: Option<u64>,
    public_url: Option<String>,
    checkout_session_ttl_secs: Option<u64>,
    outbound_allowed_hosts: Option<Vec<String>>,
    payment_webhook_allow_loopback: Option<bool>,
    page_monitor_allow_networks: Option<Vec<String>>,
}

impl Config {
    /// Loads the configuration; `listen` is the serve flag, if given.
    pub fn load(args: &GlobalArgs, listen: Option<&str>) -> Result<Self> {
        Self::load_with_env(args, listen, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a function (for tests).
    pub fn load_with_env(
        args: &GlobalArgs,
        listen: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let file_path = args.config.clone().or_else(|| {
            let default = data_dir.join("anshin.toml");
            default.exists().then_some(default)
        });
        let file = match file_path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    config_error(format!("cannot read the configuration file {}", path.display()))
                        .with_cause(e)
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    config_error(format!(
                        "the configuration file {} is not valid: {}",
                        path.display(),
                        e.message()
                    ))
                })?
            }
            None => FileConfig::default(),
        };
        let listen_text = listen
            .map(str::to_owned)
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| {
            config_error(format!(
                "listen address `{listen_text}` is not HOST:PORT, for example 127.0.0.1:8080"
            ))
        })?;
        let defaults = AlertConfig::default();
        let utc_offset_minutes = match &file.alert_utc_offset {
            Some(text) => parse_offset(text).ok_or_else(|| {
                config_error(
                    "alert_utc_offset must be +HH:MM or -HH:MM within 14 hours, such as +09:00".into(),
                )
            })?,
            None => defaults.utc_offset_minutes,
        };
        let alerts = AlertConfig {
            webhook_url: env("ANSHIN_ALERT_WEBHOOK_URL")
                .or(file.alert_webhook_url)
                .filter(|u| !u.is_empty()),
            webhook_secret: env("ANSHIN_ALERT_WEBHOOK_SECRET")
                .or(file.alert_webhook_secret)
                .filter(|s| !s.is_empty())
                .map(SecretString::new),
            webhook_max_attempts: file
                .alert_webhook_max_attempts
                .unwrap_or(defaults.webhook_max_attempts),
            volume_factor: file.alert_volume_factor.unwrap_or(defaults.volume_factor),
            volume_floor: file.alert_volume_floor.unwrap_or(defaults.volume_floor),
            utc_offset_minutes,
            min_history_days: file.alert_min_history_days.unwrap_or(defaults.min_history_days),
            checkpoint_stall_seconds: file
                .alert_checkpoint_stall_seconds
                .unwrap_or(defaults.checkpoint_stall_seconds),
        };
        alerts.validate()?;
        let proxy_list = list(env("ANSHIN_TRUSTED_PROXIES"), file.trusted_proxies);
        let page_monitor_allow_networks = list(
            env("ANSHIN_PAGE_MONITOR_ALLOW_NETWORKS"),
            file.page_monitor_allow_networks,
        )
        .iter()
        .map(|block| {
            Cidr::parse(block).ok_or_else(|| {
                config_error(
                    "page_monitor_allow_networks entries are CIDR blocks such as 10.0.0.0/8 or 127.0.0.1/32"
                        .into(),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let trusted_proxies = TrustedProxies::parse(&proxy_list).map_err(config_error)?;
        let root_of_trust = RootOfTrustConfig {
            root_of_trust: env("ANSHIN_ROOT_OF_TRUST")
                .or(file.root_of_trust)
                .unwrap_or_else(|| "file".to_owned()),
            pkcs11_module: env("ANSHIN_PKCS11_MODULE")
                .map(PathBuf::from)
                .or(file.pkcs11_module),
            pkcs11_token_label: env("ANSHIN_PKCS11_TOKEN_LABEL").or(file.pkcs11_token_label),
            pkcs11_key_label: env("ANSHIN_PKCS11_KEY_LABEL")
                .or(file.pkcs11_key_label)
                .unwrap_or_else(|| DEFAULT_PKCS11_KEY_LABEL.to_owned()),
        };
        if !matches!(root_of_trust.root_of_trust.as_str(), "file" | "shares" | "pkcs11") {
            return Err(config_error(
                "root_of_trust must be file, shares or pkcs11".into(),
            ));
        }
        let key_defaults = RotationPolicy::default();
        let keys = RotationPolicy {
            after_days: file.key_rotate_after_days.unwrap_or(key_defaults.after_days),
            after_encryptions: file
                .key_rotate_after_encryptions
                .unwrap_or(key_defaults.after_encryptions),
            rewrap_pause_ms: file.key_rewrap_pause_ms.unwrap_or(key_defaults.rewrap_pause_ms),
        };
        if keys.after_days > 3650 {
            return Err(config_error(
                "key_rotate_after_days must be 0 (off) to 3650".into(),
            ));
        }
        if !(1..=1 << 32).contains(&keys.after_encryptions) {
            return Err(config_error(
                "key_rotate_after_encryptions must be 1 to 4294967296 (2^32, the AES-GCM random-nonce bound)"
                    .into(),
            ));
        }
        if keys.rewrap_pause_ms > 60_000 {
            return Err(config_error("key_rewrap_pause_ms must be 0 to 60000".into()));
        }
        let public_url = match env("ANSHIN_PUBLIC_URL")
            .or(file.public_url)
            .filter(|u| !u.is_empty())
        {
            Some(url) => crate::proxy::sessions::web_origin(url.trim_end_matches('/'), "public_url")
                .map_err(|_| {
                    config_error(
                        "public_url must be the origin shoppers reach anshin at: https://HOST[:PORT] \
                         (http:// only for a loopback host), without a path"
                            .into(),
                    )
                })?,
            None => format!("http://{listen}"),
        };
        let checkout_session_ttl_secs = file
            .checkout_session_ttl_secs
            .unwrap_or(crate::proxy::DEFAULT_SESSION_TTL_SECS);
        let outbound_allowed_hosts: Vec<String> = match env("ANSHIN_OUTBOUND_ALLOWED_HOSTS") {
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
            None => file
                .outbound_allowed_hosts
                .unwrap_or_default()
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        };
        if outbound_allowed_hosts
            .iter()
            .any(|h| h.is_empty() || h.contains(['/', '@', '*', ' ']))
        {
            return Err(config_error(
                "outbound_allowed_hosts entries are host or host:port, such as processor.example:443".into(),
            ));
        }
        if !(60..=86_400).contains(&checkout_session_ttl_secs) {
            return Err(config_error(
                "checkout_session_ttl_secs must be 60 to 86400".into(),
            ));
        }
        Ok(Self {
            data_dir,
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|u| !u.is_empty()),
            listen,
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".to_owned()),
            trusted_proxies,
            alerts,
            root_of_trust,
            keys,
            public_url,
            checkout_session_ttl_secs,
            outbound_allowed_hosts,
            payment_webhook_allow_loopback: file.payment_webhook_allow_loopback.unwrap_or(false),
            page_monitor_allow_networks,
        })
    }

    /// The checkout settings in force.
    pub fn checkout_settings(&self) -> crate::proxy::CheckoutSettings {
        crate::proxy::CheckoutSettings {
            public_url: self.public_url.clone(),
            session_ttl_secs: self.checkout_session_ttl_secs,
            allowed_hosts: self.outbound_allowed_hosts.clone(),
            webhook_loopback: self.payment_webhook_allow_loopback,
        }
    }

    /// Where the data lives.
    pub fn location(&self) -> Location {
        Location {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }
}

/// `+09:00` → 540.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= 14 * 60).then_some(sign * total)
}

/// A list from the environment (comma-separated) or else the file.
fn list(env: Option<String>, file: Option<Vec<String>>) -> Vec<String> {
    match env {
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.unwrap_or_default(),
    }
}

fn cidrs_text<S: serde::Serializer>(blocks: &[Cidr], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(blocks.iter().map(ToString::to_string))
}

fn proxies_text<S: serde::Serializer>(proxies: &TrustedProxies, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(proxies.to_strings())
}

fn offset_text<S: serde::Serializer>(minutes: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    let sign = if *minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    serializer.serialize_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60))
}

/// A webhook URL with its path and query hidden (they often are the credential).
pub fn redact_webhook_url(url: &str) -> String {
    match url.parse::<axum::http::Uri>() {
        Ok(uri) => format!(
            "{}://{}/***",
            uri.scheme_str().unwrap_or("?"),
            uri.authority()
                .map_or("?", |a| a.as_str().rsplit('@').next().unwrap_or("?"))
        ),
        Err(_) => "***".to_owned(),
    }
}

fn redacted_webhook_url<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&redact_webhook_url(url)),
        None => serializer.serialize_none(),
    }
}

fn redacted_secret<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("***"),
        None => serializer.serialize_none(),
    }
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Invalid, "invalid_configuration", message)
}

/// A database URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = if rest.contains('/') {
        format!("/{tail}")
    } else {
        String::new()
    };
    let tail = match tail.split_once("password=") {
        Some((before, after)) => {
            let end = after.find('&').map_or("", |i| &after[i..]);
            format!("{before}password=***{end}")
        }
        None => tail,
    };
    format!("{scheme}://{authority}{tail}")
}

fn redacted_url<S: serde::Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&redact_url(url)),
        None => serializer.serialize_none(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("listen", &self.listen)
            .field("log", &self.log)
            .field("alerts", &self.alerts)
            .field("root_of_trust", &self.root_of_trust)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/anshin"),
            "postgres://app:***@db:5432/anshin"
        );
        assert_eq!(redact_url("postgres://app@db/anshin"), "postgres://app@db/anshin");
        assert_eq!(
            redact_url("postgres://db/anshin?user=a&password=s3cret&x=1"),
            "postgres://db/anshin?user=a&password=***&x=1"
        );
        assert!(!redact_url("postgresql://u:p%40ss@h").contains("p%40ss"));
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("anshin.toml"),
            "listen = \"127.0.0.1:9999\"\nlog = \"debug\"\n",
        )
        .expect("write");
        let args = GlobalArgs {
            data_dir: Some(dir.path().to_owned()),
            ..GlobalArgs::default()
        };
        let from_file = Config::load(&args, None).expect("load");
        assert_eq!(from_file.listen.port(), 9999);
        assert_eq!(from_file.log, "debug");
        let from_flag = Config::load(&args, Some("127.0.0.1:7000")).expect("load");
        assert_eq!(from_flag.listen.port(), 7000);
    }

    fn with_env(dir: &std::path::Path, vars: &[(&str, &str)]) -> Result<Config> {
        let args = GlobalArgs {
            data_dir: Some(dir.to_owned()),
            ..GlobalArgs::default()
        };
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load_with_env(&args, None, &|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-hunter2";

    #[test]
    fn the_webhook_comes_from_the_environment_over_the_file_and_its_secret_is_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("anshin.toml"),
            "alert_webhook_url = \"https://file.example/hooks/T0/B0/tokentoken\"\n\
             alert_volume_factor = 20.0\nalert_utc_offset = \"-03:30\"\n",
        )
        .expect("write");
        let config = with_env(
            dir.path(),
            &[
                (
                    "ANSHIN_ALERT_WEBHOOK_URL",
                    "https://siem.example:8443/hooks/anshin/s3cr3tpath?token=abc",
                ),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
        )
        .expect("load");
        assert_eq!(
            config.alerts.webhook_url.as_deref(),
            Some("https://siem.example:8443/hooks/anshin/s3cr3tpath?token=abc")
        );
        assert_eq!(config.alerts.volume_factor, 20.0);
        assert_eq!(config.alerts.utc_offset_minutes, -210);
        assert_eq!(config.alerts.detect_settings().utc_offset_minutes, -210);
        let json = serde_json::to_string(&config).expect("json");
        let debug = format!("{config:?} {config:#?}");
        for shown in [&json, &debug] {
            for secret in [
                "hunter2",
                "0123456789abcdef",
                "s3cr3tpath",
                "token=abc",
                "tokentoken",
            ] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
        }
        assert!(json.contains(r#""alert_webhook_secret":"***""#), "{json}");
        assert!(
            json.contains(r#""alert_webhook_url":"https://siem.example:8443/***""#),
            "{json}"
        );
        assert!(json.contains(r#""alert_utc_offset":"-03:30""#), "{json}");
    }

    #[test]
    fn unsafe_webhook_settings_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: &[&[(&str, &str)]] = &[
            &[("ANSHIN_ALERT_WEBHOOK_URL", "https://siem.example/hook")],
            &[("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET)],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "https://siem.example/hook"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", "short"),
            ],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "http://siem.example/hook"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "http://10.0.0.5/hook"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "ftp://siem.example/hook"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "https://u:p@siem.example/"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
            &[
                ("ANSHIN_ALERT_WEBHOOK_URL", "siem.example/hook"),
                ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
            ],
        ];
        for vars in cases {
            let err = with_env(dir.path(), vars)
                .err()
                .map(|e| (e.code(), e.message().to_owned()));
            let (code, message) = err.unwrap_or_else(|| panic!("accepted {vars:?}"));
            assert_eq!(code, "invalid_configuration", "{vars:?}");
            assert!(
                !message.contains(SECRET) && !message.contains("short"),
                "{message}"
            );
        }
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/",
            "http://localhost/a",
        ] {
            let ok = with_env(
                dir.path(),
                &[
                    ("ANSHIN_ALERT_WEBHOOK_URL", url),
                    ("ANSHIN_ALERT_WEBHOOK_SECRET", SECRET),
                ],
            );
            assert!(ok.is_ok(), "{url}");
        }
    }

    #[test]
    fn trusted_proxies_come_from_the_environment_and_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = with_env(dir.path(), &[]).expect("default");
        assert!(config.trusted_proxies.to_strings().is_empty(), "none by default");
        let config = with_env(
            dir.path(),
            &[("ANSHIN_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/48,")],
        )
        .expect("proxies");
        assert_eq!(
            config.trusted_proxies.to_strings(),
            ["10.0.0.0/8", "2001:db8::/48"]
        );
        let json = serde_json::to_string(&config).expect("json");
        assert!(
            json.contains(r#""trusted_proxies":["10.0.0.0/8","2001:db8::/48"]"#),
            "{json}"
        );
        let err =
            with_env(dir.path(), &[("ANSHIN_TRUSTED_PROXIES", "10.0.0.1/8")]).expect_err("host bits set");
        assert_eq!(err.code(), "invalid_configuration");
    }

    #[test]
    fn detector_thresholds_are_checked() {
        for (key, value) in [
            ("alert_volume_factor", "0.5"),
            ("alert_volume_floor", "0"),
            ("alert_min_history_days", "7"),
            ("alert_checkpoint_stall_seconds", "1"),
            ("alert_webhook_max_attempts", "0"),
            ("alert_utc_offset", "\"+15:00\""),
            ("alert_utc_offset", "\"09:00\""),
            ("alert_utc_offset", "\"+9:00\""),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("anshin.toml"), format!("{key} = {value}\n")).expect("write");
            assert_eq!(
                with_env(dir.path(), &[]).err().map(|e| e.code()),
                Some("invalid_configuration"),
                "{key} = {value}"
            );
        }
        assert_eq!(parse_offset("+09:00"), Some(540));
        assert_eq!(parse_offset("-00:30"), Some(-30));
        assert_eq!(parse_offset("+14:00"), Some(840));
        assert_eq!(parse_offset("+09:60"), None);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("anshin.toml"), "lisen = \"x\"\n").expect("write");
        let args = GlobalArgs {
            data_dir: Some(dir.path().to_owned()),
            ..GlobalArgs::default()
        };
        assert_eq!(
            Config::load(&args, None).err().map(|e| e.code()),
            Some("invalid_configuration")
        );
    }
}
