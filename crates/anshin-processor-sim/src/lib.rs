//! A card processor simulator for anshin's tests and demos.
//!
//! A real card network cannot run where anshin is tested, so this crate stands
//! in for the processor (the acquirer or gateway anshin forwards card data to).
//! It is faithful where a client can tell: HTTPS with a certificate from its
//! own test CA (clients trust exactly that CA and keep verification on), a
//! Stripe/Adyen-like JSON API for authorize, capture, void and refund with
//! idempotency keys, the card checks a processor makes, test card numbers with
//! fixed outcomes, and an EMV 3-D Secure 2 challenge page for the browser.
//! The API and the test cards are documented in the crate's README.
//!
//! It never logs or answers with a card number or security code. What it
//! received is kept only as keyed fingerprints ([`Simulator::received`]), so
//! a test can prove the real card number arrived here and nowhere else.
//!
//! ```no_run
//! # async fn demo() -> Result<(), anshin_processor_sim::Error> {
//! let sim = anshin_processor_sim::Simulator::start(Default::default()).await?;
//! println!("{} trusts {} bytes of CA PEM", sim.url(), sim.ca_pem().len());
//! # Ok(()) }
//! ```

pub mod acs;
pub mod api;
pub mod card;
pub mod idempotency;
pub mod ledger;
pub mod money;
pub mod processor;
mod server;
pub mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anshin_crypto::secret::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use ledger::{DeclineCode, Status};
pub use processor::Received;

use crate::processor::Processor;

/// The one-time code every simulated cardholder receives for a 3-D Secure challenge.
pub const CHALLENGE_CODE: &str = "123456";

/// How a simulator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Names the certificate is valid for (DNS names or IP addresses). The
    /// first is used in the links the simulator hands out (challenge URLs).
    pub hosts: Vec<String>,
    /// How long an uncaptured authorization (or an unfinished challenge) lives.
    pub authorization_ttl: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    /// How long the slow test card makes the client wait.
    pub slow_delay: Duration,
    /// If set, every API call must carry `Authorization: Bearer <key>`.
    pub api_key: Option<SecretString>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hosts: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            authorization_ttl: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            slow_delay: Duration::from_secs(30),
            api_key: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug)]
pub enum Error {
    /// Listening failed (address in use, no permission).
    Io(std::io::Error),
    /// The test CA or the TLS configuration could not be made.
    Tls(String),
    /// Anything else at start (no random numbers, no host names).
    Setup(String),
}

impl Error {
    pub(crate) fn tls(e: impl fmt::Display) -> Self {
        Self::Tls(e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot listen: {e}; choose another --listen address"),
            Self::Tls(e) => write!(f, "cannot set up TLS: {e}; check the --host names"),
            Self::Setup(e) => write!(f, "cannot start: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A rustls client configuration that trusts exactly the CA in `ca_pem` (as
/// written by the binary's `--ca-file`), with certificate verification on.
pub fn client_tls_config(ca_pem: &str) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(Error::tls)?)
        .map_err(Error::tls)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    url: String,
    ca_pem: String,
    processor: Arc<Processor>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Makes a test CA, binds, and serves in the background on the current runtime.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let first_host = config
            .hosts
            .first()
            .cloned()
            .ok_or_else(|| Error::Setup("at least one host name is needed".to_owned()))?;
        let ca = tls::TestCa::generate(&config.hosts)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(Error::Io)?;
        let addr = listener.local_addr().map_err(Error::Io)?;
        let host = if first_host.contains(':') {
            format!("[{first_host}]")
        } else {
            first_host
        };
        let url = format!("https://{host}:{}", addr.port());
        let processor = Arc::new(Processor::new(config, url.clone())?);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::serve(
            listener,
            ca.server_config(),
            Arc::clone(&processor),
            stopped,
        ));
        tracing::info!(%url, "processor simulator listening");
        Ok(Self {
            addr,
            url,
            ca_pem: ca.ca_pem().to_owned(),
            processor,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `https://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test CA's certificate (PEM), the one certificate clients should trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A rustls client configuration that trusts this simulator's CA and
    /// nothing else, for tests and benchmarks.
    pub fn client_tls_config(&self) -> Result<rustls::ClientConfig, Error> {
        client_tls_config(&self.ca_pem)
    }

    /// What arrived for a payment, as fingerprints.
    pub fn received(&self, payment_id: &str) -> Option<Received> {
        self.processor.received(payment_id)
    }

    /// The fingerprint [`Received::pan_fingerprint`] would show for this card number.
    pub fn pan_fingerprint(&self, number: &str) -> String {
        self.processor.pan_fingerprint(number)
    }

    /// The fingerprint [`Received::cvc_fingerprint`] would show for this security code.
    pub fn cvc_fingerprint(&self, cvc: &str) -> String {
        self.processor.cvc_fingerprint(cvc)
    }

    /// Stops accepting connections, closes open ones and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
