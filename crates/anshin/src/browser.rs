//! Headless Chromium, driven over WebDriver through chromedriver.
//!
//! Used where only a real browser tells the truth: the checkout-page monitor's
//! run-time script inventory (scripts that other scripts insert after load) and
//! the hosted payment page's end-to-end tests.
//!
//! [`Browser::launch`] starts Debian's `chromedriver` on a free loopback port in
//! its own process group, opens one WebDriver session on a fresh, temporary
//! profile, and returns the [`fantoccini::Client`]. Dropping the [`Browser`]
//! kills the whole process group (chromedriver and every Chromium process it
//! started) and removes the profile, so a failed test or a cancelled monitor run
//! never leaves a browser behind.
//!
//! Chromium is started with background networking, component updates, sync and
//! the first-run dialogs off: the monitor must fetch only the page it inventories
//! (on a closed network the others would fail anyway, many at a time).
//!
//! Test certificates: [`BrowserOptions::trusted_spki_sha256`] passes Chromium's
//! `--ignore-certificate-errors-spki-list`, which accepts a chain containing a
//! certificate with one of the given public keys: the key of a test CA (every
//! server certificate it signs is then accepted) or of one self-signed server
//! certificate. Chromium honours that flag only with its own `--user-data-dir`,
//! which every launch has. [`BrowserOptions::accept_insecure_certs`] accepts any
//! certificate (WebDriver's `acceptInsecureCerts`); for tests only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};

/// Where Debian installs the browser (package `chromium`).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian installs the driver (package `chromium-driver`).
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags every launch passes to Chromium (besides the profile directory).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    // Same reason as background networking: nothing but the page itself.
    "--disable-quic",
    "--disable-dev-shm-usage",
];

/// How to launch the browser.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The Chromium binary (`ANSHIN_CHROMIUM`, else `/usr/bin/chromium`).
    pub chromium: PathBuf,
    /// The chromedriver binary (`ANSHIN_CHROMEDRIVER`, else `/usr/bin/chromedriver`).
    pub chromedriver: PathBuf,
    /// SHA-256 hashes of SubjectPublicKeyInfo (DER) whose certificates are
    /// accepted in a server's chain: a test CA's or a self-signed server's.
    pub trusted_spki_sha256: Vec<[u8; 32]>,
    /// Accept every certificate (tests only).
    pub accept_insecure_certs: bool,
    /// How long chromedriver and the session may take to start.
    pub startup_timeout: Duration,
    /// Longest wait for a page's `load` event (WebDriver `pageLoad` timeout).
    pub page_load_timeout: Duration,
    /// Longest run of a script executed in the page (WebDriver `script` timeout).
    pub script_timeout: Duration,
    /// A proxy on loopback every connection of the browser goes through (the
    /// page monitor's, which refuses what its network policy refuses).
    pub proxy: Option<std::net::SocketAddr>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            chromium: std::env::var_os("ANSHIN_CHROMIUM")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM)),
            chromedriver: std::env::var_os("ANSHIN_CHROMEDRIVER")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER)),
            trusted_spki_sha256: Vec::new(),
            accept_insecure_certs: false,
            startup_timeout: Duration::from_secs(30),
            page_load_timeout: Duration::from_secs(30),
            script_timeout: Duration::from_secs(10),
            proxy: None,
        }
    }
}

impl BrowserOptions {
    /// Accepts certificates whose public key (SubjectPublicKeyInfo, DER) is
    /// `spki_der`: a test CA's, or one self-signed server certificate's.
    pub fn trust_spki_der(mut self, spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        self.trusted_spki_sha256.push(hash);
        self
    }

    /// The WebDriver capabilities for a session with these options.
    fn capabilities(&self, profile: &Path) -> serde_json::Map<String, Value> {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        if let Some(proxy) = self.proxy {
            args.push(format!("--proxy-server=http://{proxy}"));
            // Chromium sends loopback past any proxy unless told not to.
            args.push("--proxy-bypass-list=<-loopback>".to_owned());
            // WebRTC's UDP would go around an HTTP proxy.
            args.push("--force-webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned());
        }
        if !self.trusted_spki_sha256.is_empty() {
            let list: Vec<String> = self
                .trusted_spki_sha256
                .iter()
                .map(|hash| data_encoding::BASE64.encode(hash))
                .collect();
            args.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                list.join(",")
            ));
        }
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": self.accept_insecure_certs,
            "pageLoadStrategy": "normal",
            "timeouts": {
                "pageLoad": millis(self.page_load_timeout),
                "script": millis(self.script_timeout),
                "implicit": 0,
            },
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": args,
            },
        });
        match caps {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The error when Chromium or chromedriver is missing or will not start.
pub fn unavailable(detail: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "browser_unavailable",
        format!(
            "headless Chromium is not available ({detail}): install the Debian packages \
             `chromium` and `chromium-driver` (apt-get install chromium chromium-driver), or \
             set ANSHIN_CHROMIUM and ANSHIN_CHROMEDRIVER to their paths / ヘッドレス Chromium \
             が使えません。chromium と chromium-driver パッケージを入れてください"
        ),
    )
}

/// A running headless Chromium with one WebDriver session.
pub struct Browser {
    client: Option<fantoccini::Client>,
    driver: Option<tokio::process::Child>,
    // Kept so the profile lives as long as the browser; removed on drop.
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver_pid", &self.driver.as_ref().and_then(|d| d.id()))
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and headless Chromium and opens a session.
    ///
    /// Fails with `browser_unavailable` when either binary is missing or the
    /// session does not start within [`BrowserOptions::startup_timeout`].
    pub async fn launch(options: &BrowserOptions) -> Result<Self, Error> {
        for (path, package) in [
            (&options.chromium, "chromium"),
            (&options.chromedriver, "chromium-driver"),
        ] {
            if !path.is_file() {
                return Err(unavailable(&format!(
                    "{} not found (package {package})",
                    path.display()
                )));
            }
        }
        let profile = tempfile::Builder::new()
            .prefix("anshin-chromium-")
            .tempdir()
            .map_err(|e| unavailable("cannot create a browser profile directory").with_cause(e))?;
        // A free port can be taken by someone else between probing and
        // chromedriver binding it; a few attempts make that race harmless.
        let mut last = None;
        for _ in 0..3 {
            match Self::start(options, profile.path()).await {
                Ok((client, driver)) => {
                    return Ok(Self {
                        client: Some(client),
                        driver: Some(driver),
                        _profile: profile,
                    });
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| unavailable("chromedriver did not start")))
    }

    async fn start(
        options: &BrowserOptions,
        profile: &Path,
    ) -> Result<(fantoccini::Client, tokio::process::Child), Error> {
        let port = free_port().map_err(|e| unavailable("no free loopback port").with_cause(e))?;
        let mut command = tokio::process::Command::new(&options.chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: drop kills chromedriver and every
            // Chromium process under it with one signal.
            .process_group(0)
            .kill_on_drop(true);
        let mut driver = command
            .spawn()
            .map_err(|e| unavailable("chromedriver would not start").with_cause(e))?;
        let url = format!("http://127.0.0.1:{port}");
        let caps = options.capabilities(profile);
        let deadline = tokio::time::Instant::now() + options.startup_timeout;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => return Ok((client, driver)),
                Err(err) => {
                    let exited = driver.try_wait().ok().flatten().is_some();
                    if exited || tokio::time::Instant::now() >= deadline {
                        kill_group(&mut driver);
                        return Err(unavailable("the WebDriver session did not start")
                            .with_cause(std::io::Error::other(err.to_string())));
                    }
                    // A refused connection means chromedriver is still starting.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The WebDriver client of the session.
    pub fn client(&self) -> &fantoccini::Client {
        // Some until `close` takes it, and `close` consumes `self`.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("the client lives until close"))
    }

    /// chromedriver's process id, which is also its process group's id.
    pub fn driver_pid(&self) -> Option<u32> {
        self.driver.as_ref().and_then(|d| d.id())
    }

    /// Ends the session politely (Chromium exits), then kills what is left.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        }
        if let Some(mut driver) = self.driver.take() {
            kill_group(&mut driver);
            let _ = tokio::time::timeout(Duration::from_secs(5), driver.wait()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.as_mut() {
            kill_group(driver);
        }
    }
}

/// SIGKILL to chromedriver's process group (chromedriver and its Chromium).
fn kill_group(driver: &mut tokio::process::Child) {
    if let Some(pid) = driver
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = driver.start_kill();
}

/// A loopback port nobody listens on right now.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_carry_the_flags_and_the_trusted_keys() {
        let options = BrowserOptions {
            chromium: PathBuf::from("/opt/chromium"),
            ..BrowserOptions::default()
        }
        .trust_spki_der(b"not really DER, only hashed");
        let caps = options.capabilities(Path::new("/tmp/profile"));
        let args: Vec<&str> = caps["goog:chromeOptions"]["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for flag in CHROMIUM_FLAGS {
            assert!(args.contains(flag), "{flag} missing");
        }
        assert!(args.contains(&"--user-data-dir=/tmp/profile"));
        let spki = args
            .iter()
            .find_map(|a| a.strip_prefix("--ignore-certificate-errors-spki-list="))
            .expect("the SPKI list");
        assert_eq!(spki.len(), 44, "one base64 SHA-256");
        assert_eq!(caps["acceptInsecureCerts"], Value::Bool(false));
        assert_eq!(caps["goog:chromeOptions"]["binary"], "/opt/chromium");
    }

    #[tokio::test]
    async fn a_missing_binary_says_what_to_install() {
        let options = BrowserOptions {
            chromedriver: PathBuf::from("/nonexistent/chromedriver"),
            ..BrowserOptions::default()
        };
        let err = Browser::launch(&options).await.expect_err("no driver");
        assert_eq!(err.code(), "browser_unavailable");
        assert!(err.message().contains("chromium-driver"));
    }
}
