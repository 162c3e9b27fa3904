//! One typed configuration, read once: command-line flags over `ANSHIN_*`
//! environment variables over the TOML file over defaults.
//!
//! The TOML file is `--config FILE` (or `ANSHIN_CONFIG`), else `anshin.toml` in
//! the data directory if it exists. Keys: `listen`, `database_url`, `log`.
//! Showing the configuration redacts the database password.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::app::Location;
use crate::cli::GlobalArgs;
use crate::error::{Error, ErrorKind, Result};

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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    log: Option<String>,
}

impl Config {
    /// Loads the configuration; `listen` is the serve flag, if given.
    pub fn load(args: &GlobalArgs, listen: Option<&str>) -> Result<Self> {
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
        Ok(Self {
            data_dir,
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .filter(|u| !u.is_empty()),
            listen,
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".to_owned()),
        })
    }

    /// Where the data lives.
    pub fn location(&self) -> Location {
        Location {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
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
