//! `anshin scan --inventory FILE --server URL`: sends the inventory to an
//! anshin server (`POST /v1/inventory`) with the API key from
//! `ANSHIN_API_KEY` (never a flag: command lines are visible to every user of
//! the machine). HTTPS verifies the server against the system's roots, as the
//! alert webhook does; redirects are not followed.

use std::time::Duration;

use anshin_crypto::secret::SecretString;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable holding the API key.
pub const API_KEY_ENV: &str = "ANSHIN_API_KEY";

/// Time allowed for the whole exchange.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Largest answer read.
const MAX_ANSWER: usize = 64 * 1024;

fn upload_error(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Unavailable, "scan_inventory_upload", message)
}

fn usage(message: &'static str) -> Error {
    Error::new(ErrorKind::Invalid, "scan_usage", message)
}

/// Where to send, checked before the scan starts.
pub struct Upload {
    endpoint: Uri,
    /// The API key: zeroized on drop, shown by no `Debug`.
    key: SecretString,
    /// Scheme and host, for messages.
    target: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// The server URL (`https://host[:port]`, a path prefix allowed) and the
    /// key from the environment; errors are usage errors.
    pub fn new(server: &str, key: Option<String>) -> Result<Self> {
        Self::to(server, key, "/v1/inventory")
    }

    /// The same checks, for another endpoint `path` (`/v1/…`) of the server.
    pub fn to(server: &str, key: Option<String>, path: &str) -> Result<Self> {
        let key = key.filter(|k| !k.trim().is_empty()).ok_or_else(|| {
            usage("--server needs the API key in ANSHIN_API_KEY (an operator key of the tenant) / ANSHIN_API_KEY に API キーを設定してください")
        })?;
        let base: Uri = server.parse().map_err(|_| {
            usage("--server is not a URL; expected https://HOST[:PORT] / --server の URL が不正です")
        })?;
        let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
            return Err(usage(
                "--server must be https://HOST[:PORT] or http://HOST[:PORT] / --server の URL が不正です",
            ));
        };
        if !matches!(scheme, "http" | "https") || authority.as_str().contains('@') || base.query().is_some() {
            return Err(usage(
                "--server must be https://HOST[:PORT] or http://HOST[:PORT], without user or query / --server の URL が不正です",
            ));
        }
        let prefix = base.path().trim_end_matches('/');
        let endpoint: Uri = format!("{scheme}://{authority}{prefix}{path}")
            .parse()
            .map_err(|_| usage("--server is not a URL / --server の URL が不正です"))?;
        Ok(Self {
            endpoint,
            key: SecretString::new(key.trim().to_owned()),
            target: format!("{scheme}://{authority}"),
        })
    }

    /// Where it goes, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// POSTs a JSON body; returns the answer's status and JSON (or Null).
    pub(crate) async fn post(&self, body: Vec<u8>) -> Result<(StatusCode, serde_json::Value), Failure> {
        let (status, _, bytes) = self
            .request(Method::POST, "application/json", body, MAX_ANSWER)
            .await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    /// Sends `method` to the endpoint with a body of `content_type` (empty
    /// for a GET); returns the answer's status, headers and up to
    /// `max_answer` bytes of its body.
    pub(crate) async fn request(
        &self,
        method: Method,
        content_type: &str,
        body: Vec<u8>,
        max_answer: usize,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let request = Request::builder()
            .method(method)
            .uri(self.endpoint.clone())
            .header(header::CONTENT_TYPE, content_type)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key.expose()))
            .header(header::USER_AGENT, concat!("anshin/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| Failure::Request)?;
        exchange_with(request, max_answer).await
    }

    /// POSTs the inventory; returns the id the server gave it.
    pub async fn send(&self, body: Vec<u8>) -> Result<String> {
        let (status, answer) = self.post(body).await.map_err(|failure| match failure {
            Failure::Request => upload_error("cannot build the inventory request / 送信要求を作成できません"),
            Failure::NoRoots(e) => upload_error(
                "no trusted root certificates for HTTPS; install ca-certificates / HTTPS のルート証明書がありません",
            )
            .with_cause(e),
            Failure::Unreachable(e) => upload_error(format!(
                "cannot reach the anshin server {}; the inventory file is written / サーバーに接続できません",
                self.target
            ))
            .with_cause(e),
            Failure::Timeout => upload_error(
                "the anshin server did not answer within 60 s; the inventory file is written / サーバーが 60 秒以内に応答しませんでした",
            ),
        })?;
        if status == StatusCode::CREATED {
            return answer["id"].as_str().map(str::to_owned).ok_or_else(|| {
                upload_error(
                    "the anshin server's answer has no inventory id / サーバーの応答に棚卸し ID がありません",
                )
            });
        }
        let code = error_code(&answer);
        Err(upload_error(format!(
            "the anshin server {} refused the inventory: HTTP {} {code}; the inventory file is written / サーバーが棚卸しを受け付けませんでした",
            self.target,
            status.as_u16()
        )))
    }
}

/// The error code of a server's answer. It is a stable snake_case word; the
/// message is never repeated (a server that is not anshin could answer anything).
pub(crate) fn error_code(answer: &serde_json::Value) -> String {
    answer["error"]["code"]
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '_')
        .take(64)
        .collect()
}

/// Why an exchange with a server failed.
pub(crate) enum Failure {
    /// The request could not be built (a header the URL made invalid).
    Request,
    /// HTTPS without trusted root certificates.
    NoRoots(std::io::Error),
    /// The server could not be reached, or broke off.
    Unreachable(hyper_util::client::legacy::Error),
    /// No answer within [`TIMEOUT`].
    Timeout,
}

/// Sends one request to an anshin server (HTTPS against the system's roots,
/// or plain HTTP) and reads its answer, all within [`TIMEOUT`].
pub(crate) async fn exchange(request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Failure> {
    let (status, _, bytes) = exchange_with(request, MAX_ANSWER).await?;
    Ok((status, bytes))
}

/// [`exchange`], reading up to `max_answer` bytes and keeping the headers.
async fn exchange_with(
    request: Request<Full<Bytes>>,
    max_answer: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = request.uri().scheme_str() == Some("https");
    let exchange = async {
        let response = if https {
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(Failure::NoRoots)?
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .build(https)
                .request(request)
                .await
        } else {
            Client::builder(TokioExecutor::new())
                .build(http)
                .request(request)
                .await
        };
        let response = response.map_err(Failure::Unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = Limited::new(response.into_body(), max_answer)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((status, headers, bytes))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| Failure::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        let key = || Some("anshin_sk_x".to_owned());
        let up = Upload::new("https://vault.example:8443/", key()).expect("ok");
        assert_eq!(up.endpoint.to_string(), "https://vault.example:8443/v1/inventory");
        let up = Upload::new("http://127.0.0.1:8080/anshin", key()).expect("ok");
        assert_eq!(
            up.endpoint.to_string(),
            "http://127.0.0.1:8080/anshin/v1/inventory"
        );
        assert_eq!(up.target(), "http://127.0.0.1:8080");
        for bad in ["ftp://x", "vault.example", "https://u:p@x", "https://x/?a=1"] {
            assert_eq!(
                Upload::new(bad, key()).expect_err(bad).code(),
                "scan_usage",
                "{bad}"
            );
        }
        assert_eq!(
            Upload::new("https://x", None).expect_err("key").code(),
            "scan_usage"
        );
        assert!(!format!("{up:?}").contains("anshin_sk_x"));
    }
}
