//! PostgreSQL connection URLs and their TLS, shared by the store, `anshin scan
//! postgres://…` and `anshin restore`.
//!
//! The URL's TLS parameters are libpq's, with libpq's meaning:
//!
//! - `sslmode`: `disable` (no TLS), `prefer` (TLS if the server offers it),
//!   `require` (TLS or no connection), `verify-ca` (and the server's certificate
//!   chains to a trusted CA), `verify-full` (and it is valid for the host name
//!   in the URL). Anything else is refused.
//! - `sslrootcert`: the trusted CAs, a PEM file, or `system` for the operating
//!   system's trust store (only with `verify-full`: public CAs sign any name,
//!   so trusting them for less proves nothing; libpq refuses it too). As in
//!   libpq, a CA file given with `prefer` or `require` is used: the chain is
//!   verified, not the name.
//! - `sslcert` and `sslkey`: a client certificate (PEM, with its chain) and its
//!   private key (PEM), for servers that authenticate clients by certificate.
//!
//! tokio-postgres reads everything else (it knows only `disable`, `prefer` and
//! `require`, and verifies nothing itself); rustls over aws-lc-rs, the
//! workspace's TLS, makes the connection, through tokio-postgres-rustls, which
//! also gives SCRAM-SHA-256-PLUS its channel binding (`tls-server-end-point`).
//!
//! **The default is not libpq's.** libpq's `prefer` falls back to clear text
//! and accepts any certificate: anyone on the path reads, or answers for, the
//! database. Card vault rows and scanned customer records must not cross a
//! network like that unless someone chose it, so without `sslmode`:
//!
//! - a server on this machine (`localhost`, 127.0.0.0/8, `::1`, a Unix socket:
//!   nothing crosses a network) gets `prefer`, so local development needs no
//!   certificates;
//! - any other gets `verify-full`: TLS, a certificate chaining to `sslrootcert`
//!   (default: the system's trust store) and valid for the host name. Clear
//!   text to a remote server takes an explicit `sslmode=disable`.
//!
//! As in libpq, Unix sockets never use TLS (`sslmode` does not apply there).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, without `allow` (clear text first, TLS if refused: no
/// use to anyone who wants TLS, and tokio-postgres has no such mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PgUrlError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return Err(PgUrlError::SslMode),
        })
    }

    /// Its name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL URL that cannot be used. Messages never repeat the URL (it
/// may hold a password).
#[derive(Debug)]
#[non_exhaustive]
pub enum PgUrlError {
    /// tokio-postgres does not read the URL.
    Malformed(tokio_postgres::Error),
    /// `sslmode` is not one of the five.
    SslMode,
    /// TLS parameters that contradict each other: what to change.
    Conflict(&'static str),
    /// A certificate or key file that cannot be used.
    File {
        /// `sslrootcert`, `sslcert` or `sslkey`.
        param: &'static str,
        /// The file as given (a path, not a secret).
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `system` trust and the operating system has no CA certificates.
    NoSystemRoots,
}

impl PgUrlError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "pg_url_invalid",
            Self::SslMode => "pg_sslmode_invalid",
            Self::Conflict(_) => "pg_ssl_options",
            Self::File { .. } | Self::NoSystemRoots => "pg_ssl_file",
        }
    }
}

impl std::fmt::Display for PgUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(e) => write!(
                f,
                "not a valid PostgreSQL URL ({}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…] / PostgreSQL の URL が不正です",
                // tokio-postgres says what is wrong in the cause ("invalid
                // value for option `port`"), never the value.
                std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
            ),
            Self::SslMode => f.write_str(
                "sslmode must be disable, prefer, require, verify-ca or verify-full / sslmode は disable, prefer, require, verify-ca, verify-full のいずれかです",
            ),
            Self::Conflict(what) => f.write_str(what),
            Self::File { param, path, reason } => write!(
                f,
                "{param}={path}: {reason}; give a readable PEM file / {param} のファイルを読めません"
            ),
            Self::NoSystemRoots => f.write_str(
                "the system's trust store has no CA certificates; give the server's CA with sslrootcert=PATH / システムの CA 証明書がありません",
            ),
        }
    }
}

impl std::error::Error for PgUrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// The TLS parameters tokio-postgres does not read, and the rest of the URL.
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

/// Takes libpq's TLS parameters out of a URL's query string, where
/// tokio-postgres looks for it: after the user information (up to the first
/// `@`), the first `?`. Values are percent-decoded as tokio-postgres decodes.
fn split(url: &str) -> Split {
    let mut out = Split {
        rest: url.to_owned(),
        sslmode: None,
        sslrootcert: None,
        sslcert: None,
        sslkey: None,
    };
    let after_user = url.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[after_user..].find('?').map(|q| after_user + q) else {
        return out;
    };
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = || percent_decode_str(value).decode_utf8_lossy().into_owned();
        let slot = match percent_decode_str(key).decode_utf8_lossy().as_ref() {
            "sslmode" => &mut out.sslmode,
            "sslrootcert" => &mut out.sslrootcert,
            "sslcert" => &mut out.sslcert,
            "sslkey" => &mut out.sslkey,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(decode());
    }
    out.rest = if kept.is_empty() {
        url[..q].to_owned()
    } else {
        format!("{}?{}", &url[..q], kept.join("&"))
    };
    out
}

/// The connection parameters of `url` that tokio-postgres reads, without its
/// TLS parameters and without reading any certificate file.
pub fn driver_config(url: &str) -> Result<tokio_postgres::Config, PgUrlError> {
    split(url).rest.parse().map_err(PgUrlError::Malformed)
}

/// Whether every server `config` names is on this machine: its bytes cross
/// no network. A `hostaddr` is where the bytes go, whatever the host's name.
fn local_only(config: &tokio_postgres::Config) -> bool {
    let (hosts, addrs) = (config.get_hosts(), config.get_hostaddrs());
    (0..hosts.len().max(addrs.len())).all(|i| match (addrs.get(i), hosts.get(i)) {
        (Some(addr), _) => addr.is_loopback(),
        (None, Some(Host::Unix(_))) => true,
        (None, Some(Host::Tcp(name))) => {
            name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        (None, None) => false,
    })
}

/// Whether `config` reaches its servers by Unix sockets only.
fn unix_only(config: &tokio_postgres::Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty() && config.get_hostaddrs().is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
}

/// Whom the server's certificate must satisfy.
#[derive(Debug)]
enum Trust {
    /// Nobody: the connection is encrypted, not authenticated (`prefer`,
    /// `require` without a CA file, as libpq).
    Anyone,
    /// Chains to one of these CAs (`verify-ca`, a CA file with `prefer` or
    /// `require`).
    Chain(RootCertStore),
    /// Chains to one of these CAs and is valid for the host name (`verify-full`).
    ChainAndName(RootCertStore),
}

/// A parsed PostgreSQL URL with its TLS: what every PostgreSQL connection of
/// anshin is made from.
#[derive(Clone)]
pub struct PgConnect {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
}

impl std::fmt::Debug for PgConnect {
    // No configuration: it may hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnect")
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The connection task of a [`PgConnect::connect`].
pub type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

impl PgConnect {
    /// Reads `url` (`postgres://…` or `postgresql://…`) and its TLS
    /// parameters, and loads the certificates they name.
    pub fn parse(url: &str) -> Result<Self, PgUrlError> {
        let split = split(url);
        let mut config: tokio_postgres::Config = split.rest.parse().map_err(PgUrlError::Malformed)?;
        let explicit = split.sslmode.as_deref().map(SslMode::parse).transpose()?;
        let system = split.sslrootcert.as_deref() == Some("system");
        let mode = explicit.unwrap_or(if system || !local_only(&config) {
            SslMode::VerifyFull
        } else {
            SslMode::Prefer
        });
        let ca_file = split.sslrootcert.as_deref().filter(|_| !system);
        let trust = match (mode, ca_file) {
            _ if system && mode != SslMode::VerifyFull => {
                return Err(PgUrlError::Conflict(
                    "sslrootcert=system needs sslmode=verify-full: public CAs sign any name, so they prove nothing without it / sslrootcert=system には sslmode=verify-full が必要です",
                ));
            }
            (SslMode::Disable, _) => Trust::Anyone,
            (SslMode::VerifyFull, None) => Trust::ChainAndName(system_roots()?),
            (SslMode::VerifyFull, Some(path)) => Trust::ChainAndName(file_roots(path)?),
            (SslMode::VerifyCa, None) => {
                return Err(PgUrlError::Conflict(
                    "sslmode=verify-ca needs sslrootcert=PATH, the CA that signed the server's certificate (or use verify-full) / verify-ca には sslrootcert が必要です",
                ));
            }
            (_, Some(path)) => Trust::Chain(file_roots(path)?),
            (SslMode::Prefer | SslMode::Require, None) => Trust::Anyone,
        };
        let client_cert = match (&split.sslcert, &split.sslkey) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((client_chain(cert)?, client_key(key)?)),
            _ => {
                return Err(PgUrlError::Conflict(
                    "sslcert and sslkey go together: the client certificate and its private key / sslcert と sslkey は両方必要です",
                ));
            }
        };
        config.ssl_mode(match mode {
            // As libpq: no TLS over Unix sockets.
            _ if unix_only(&config) => DriverSslMode::Disable,
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        let tls = MakeRustlsConnect::new(client_config(trust, client_cert)?);
        Ok(Self { config, tls, mode })
    }

    /// The connection parameters (the host names, the database, the user…).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The `sslmode` in force: the URL's, or the default for its hosts.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The TLS connector, for a connection pool.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// Connects; the caller spawns the connection task.
    pub async fn connect(&self) -> Result<(Client, PgConnection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

/// Why a connection failed at TLS, in words that say what to do (English /
/// Japanese); `None` when it failed otherwise.
pub fn tls_failure(err: &tokio_postgres::Error) -> Option<&'static str> {
    use rustls::CertificateError as C;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        // tokio-rustls hands rustls's error over inside an io::Error, whose
        // own source() skips it.
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Some(match tls {
                rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                    "the server's certificate is not valid for the host name in the URL (sslmode=verify-full); connect by a name the certificate holds / サーバー証明書がホスト名と一致しません"
                }
                rustls::Error::InvalidCertificate(
                    C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
                ) => {
                    "the server's certificate has expired or is not yet valid / サーバー証明書が有効期間外です"
                }
                rustls::Error::InvalidCertificate(_) => {
                    "the server's certificate is not signed by a trusted CA; give the CA that signed it with sslrootcert=PATH / サーバー証明書を信頼できる CA で検証できません"
                }
                _ => {
                    "the TLS handshake with the server failed / サーバーとの TLS ハンドシェイクに失敗しました"
                }
            });
        }
        // tokio-postgres's own words when the server answers the TLS request "no".
        if e.to_string() == "server does not support TLS" {
            return Some(
                "the server does not offer TLS and sslmode requires it; turn ssl on in the server (sslmode=disable only on a network you trust) / サーバーが TLS に対応していません",
            );
        }
        source = e.source();
    }
    None
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(
    trust: Trust,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, PgUrlError> {
    let provider = provider();
    let verifier = Arc::new(Verifier {
        trust,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // aws-lc-rs supports the default versions: not reachable.
        .map_err(|_| PgUrlError::Conflict("TLS is not available in this build"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|_| PgUrlError::Conflict(
                "sslkey is not the private key of sslcert's certificate, or its algorithm is not supported / sslkey が sslcert の鍵ではありません",
            )),
    }
}

fn read(param: &'static str, path: &str) -> Result<Vec<u8>, PgUrlError> {
    std::fs::read(Path::new(path)).map_err(|_| PgUrlError::File {
        param,
        path: path.to_owned(),
        reason: "cannot be read",
    })
}

fn certificates(param: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, PgUrlError> {
    let bad = || PgUrlError::File {
        param,
        path: path.to_owned(),
        reason: "holds no PEM certificate",
    };
    let certs = CertificateDer::pem_slice_iter(&read(param, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    if certs.is_empty() {
        return Err(bad());
    }
    Ok(certs)
}

fn file_roots(path: &str) -> Result<RootCertStore, PgUrlError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("sslrootcert", path)? {
        roots.add(cert).map_err(|_| PgUrlError::File {
            param: "sslrootcert",
            path: path.to_owned(),
            reason: "holds a certificate that is not a usable CA",
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, PgUrlError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(PgUrlError::NoSystemRoots);
    }
    Ok(roots)
}

fn client_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, PgUrlError> {
    certificates("sslcert", path)
}

fn client_key(path: &str) -> Result<PrivateKeyDer<'static>, PgUrlError> {
    PrivateKeyDer::from_pem_slice(&read("sslkey", path)?).map_err(|_| PgUrlError::File {
        param: "sslkey",
        path: path.to_owned(),
        reason: "holds no PEM private key",
    })
}

/// The server certificate check of every mode: rustls's own chain and name
/// verification, applied as the mode asks. Handshake signatures are always
/// verified (they bind the session to the certificate).
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, name) = match &self.trust {
            Trust::Anyone => return Ok(ServerCertVerified::assertion()),
            Trust::Chain(roots) => (roots, false),
            Trust::ChainAndName(roots) => (roots, true),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        if name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<SslMode, String> {
        PgConnect::parse(url)
            .map(|c| c.mode())
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn tls_parameters_leave_the_rest_of_the_url_to_the_driver() {
        let s = split(
            "postgres://u:p%3Fw@h:5/db?sslmode=verify-full&options=-c%20x%3Dy&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(s.rest, "postgres://u:p%3Fw@h:5/db?options=-c%20x%3Dy");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let s = split("postgres://h/db?sslmode=disable");
        assert_eq!(s.rest, "postgres://h/db");
        // A '?' in the password is not the query.
        let s = split("postgres://u:a?sslmode=x@h/db");
        assert_eq!(s.rest, "postgres://u:a?sslmode=x@h/db");
        assert_eq!(s.sslmode, None);
        let config = driver_config("postgres://u@h/db?sslmode=verify-ca&sslcert=c&sslkey=k").expect("config");
        assert_eq!(config.get_dbname(), Some("db"));
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics_and_keeps_every_other_parameter(url in "postgres://[a-z:@%?&=/.0-9]{0,48}") {
            let s = split(&url);
            proptest::prop_assert!(s.rest.len() <= url.len());
            if !percent_decode_str(&url).decode_utf8_lossy().contains("ssl") {
                proptest::prop_assert_eq!(s.rest, url);
            }
        }
    }

    #[test]
    fn the_default_verifies_unless_the_server_is_on_this_machine() {
        assert_eq!(mode("postgres://u@127.0.0.1:5432/db"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://u@localhost/db"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://u@[::1]:5432/db"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://u@%2Frun%2Fpostgresql/db"), Ok(SslMode::Prefer));
        assert_eq!(
            mode("postgres://u@db.example/db?hostaddr=127.0.0.1"),
            Ok(SslMode::Prefer)
        );
        assert!(mode("postgres://u@localhost/db?hostaddr=10.0.0.5") != Ok(SslMode::Prefer));
        assert!(mode("postgres:///db?hostaddr=10.0.0.5") != Ok(SslMode::Prefer));
        // Remote: verify-full against the system's CAs (an empty store is an error).
        let remote = mode("postgres://u@db.example/db");
        assert!(
            remote == Ok(SslMode::VerifyFull) || remote == Err("pg_ssl_file".into()),
            "{remote:?}"
        );
        assert!(mode("postgres://u@127.0.0.1,db.example/db") != Ok(SslMode::Prefer));
        assert_eq!(
            mode("postgres://u@db.example/db?sslmode=disable"),
            Ok(SslMode::Disable)
        );
        assert_eq!(
            mode("postgres://u@db.example/db?sslmode=require"),
            Ok(SslMode::Require)
        );
    }

    #[test]
    fn bad_tls_parameters_are_refused_with_a_code() {
        for bad in ["verify_full", "allow", "VERIFY-FULL", ""] {
            let url = format!("postgres://u:s3cret@h/db?sslmode={bad}");
            let err = PgConnect::parse(&url).expect_err(bad);
            assert_eq!(err.code(), "pg_sslmode_invalid");
            assert!(!err.to_string().contains("s3cret"));
        }
        for (url, code) in [
            ("postgres://u@h/db?sslmode=verify-ca", "pg_ssl_options"),
            (
                "postgres://u@h/db?sslmode=verify-ca&sslrootcert=system",
                "pg_ssl_options",
            ),
            (
                "postgres://u@h/db?sslmode=require&sslrootcert=system",
                "pg_ssl_options",
            ),
            (
                "postgres://u@h/db?sslmode=require&sslcert=/c.pem",
                "pg_ssl_options",
            ),
            (
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
                "pg_ssl_file",
            ),
            ("postgres://u@h:x/db", "pg_url_invalid"),
        ] {
            assert_eq!(mode(url), Err(code.to_owned()), "{url}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let url = format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
            junk.display()
        );
        assert_eq!(mode(&url), Err("pg_ssl_file".to_owned()));
    }
}
