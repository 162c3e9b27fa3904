//! Processor routes and generic outbound routes, per tenant.
//!
//! A route names an upstream anshin may send card data to. An operator
//! configures it (`PUT /v1/tenants/{tenant_id}/routes/{name}`), and it is
//! refused unless:
//! - the URL is `https://` and its host (and port) is on the installation's
//!   allow-list (`outbound_allowed_hosts`, set by whoever runs anshin, not by
//!   tenants: a tenant operator cannot point card data at a host of its
//!   choosing);
//! - the CA bundle, if given, parses: the route then trusts exactly those
//!   CAs, otherwise the operating system's roots; certificates are always
//!   verified (rustls over aws-lc-rs), redirects never followed;
//! - a processor route's request template parses ([`super::template`]).
//!
//! The allow-list is checked again on every send, so removing a host from it
//! stops traffic at once. Answers are read up to [`MAX_ANSWER`] bytes and
//! redacted ([`super::template::redact`]) before anything of them is kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use zeroize::Zeroize;

use super::template::{Template, redact};
use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::EventKind;
use crate::clock;
use crate::db::checkout::RouteRow;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{TenantId, parse_or_404};

/// Largest upstream answer read.
pub const MAX_ANSWER: usize = 256 * 1024;
/// Default time allowed for one upstream exchange.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A route as an operator sends it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// `processor` (payments through a request template) or `outbound` (generic forwarding).
    #[schema(example = "processor")]
    pub kind: String,
    /// The upstream: a processor's base URL, or the outbound route's full URL. `https://` only.
    #[schema(example = "https://processor.example")]
    pub url: String,
    /// CA certificates (PEM) the upstream's certificate must chain to; default the system's roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Processor routes: the authorization request body with placeholders
    /// (`{{card.number}}`, `{{card.cvc}}`, `{{amount}}` …); default the simulator's format.
    #[serde(default)]
    pub template: Option<Value>,
    /// Time allowed for one exchange, 100–60000 ms (default 10000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Processor routes: origins of the issuers' 3-D Secure pages the card page may frame
    /// (default the processor URL's origin).
    #[serde(default)]
    pub acs_origins: Option<Vec<String>>,
    /// Outbound routes: JSON paths (`$.a.b`, `$.items[0].card`) whose card tokens are
    /// replaced by card data on the way out.
    #[serde(default)]
    pub token_paths: Option<Vec<String>>,
}

/// A route as stored (and shown: the template holds placeholders only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteConfig {
    /// `processor` or `outbound`.
    pub kind: String,
    /// The upstream URL.
    pub url: String,
    /// The CA bundle, if the route has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The request template (processor routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Time allowed for one exchange (ms).
    pub timeout_ms: u64,
    /// 3-D Secure origins (processor routes).
    #[serde(default)]
    pub acs_origins: Vec<String>,
    /// Token paths (outbound routes).
    #[serde(default)]
    pub token_paths: Vec<String>,
}

/// A configured route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// Its name.
    pub name: String,
    /// Its configuration.
    #[serde(flatten)]
    pub config: RouteConfig,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

/// The simulator's (Stripe- and Adyen-like) authorization body.
pub fn default_template() -> Value {
    serde_json::json!({
        "amount": "{{amount}}",
        "currency": "{{currency}}",
        "capture": "{{capture}}",
        "reference": "{{reference}}",
        "card": {
            "number": "{{card.number}}",
            "exp_month": "{{card.exp_month}}",
            "exp_year": "{{card.exp_year}}",
            "cvc": "{{card.cvc}}",
            "holder_name": "{{card.holder_name}}"
        },
        "three_ds": {"return_url": "{{three_ds.return_url}}"}
    })
}

fn route_name(name: &str) -> Result<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::invalid(
            "route_name_invalid",
            "a route name is 1 to 64 characters of a-z, 0-9, '_' and '-'",
        ))
    }
}

/// Whether `uri`'s host and port are on the allow-list: entries are `host`
/// (any port) or `host:port`, compared case-insensitively.
pub fn host_allowed(uri: &Uri, allowed: &[String]) -> bool {
    let Some(host) = uri.host() else { return false };
    let host = host.to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(443);
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        entry == host || entry == format!("{host}:{port}")
    })
}

fn not_allowed() -> Error {
    Error::new(
        ErrorKind::Forbidden,
        "route_host_not_allowed",
        "the route's host is not on this installation's outbound allow-list (outbound_allowed_hosts)",
    )
}

fn https_url(url: &str, allowed: &[String]) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid("route_url_invalid", "url must be an https:// URL").with_param("url"))?;
    if uri.scheme_str() != Some("https")
        || uri.host().is_none_or(str::is_empty)
        || uri.authority().is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(Error::invalid(
            "route_url_invalid",
            "url must be an https:// URL without a user name or password",
        )
        .with_param("url"));
    }
    if !host_allowed(&uri, allowed) {
        return Err(not_allowed());
    }
    Ok(uri)
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client configuration trusting exactly the CAs in `pem`.
fn tls_config(pem: &str) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = || {
        Error::invalid(
            "route_ca_invalid",
            "ca_pem must hold one or more PEM certificates",
        )
        .with_param("ca_pem")
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
    }
    if roots.is_empty() {
        return Err(bad());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::internal)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn connector(ca_pem: Option<&str>) -> Result<HttpsConnector<HttpConnector>> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_pem {
        Some(pem) => builder.with_tls_config(tls_config(pem)?),
        None => builder.with_native_roots().map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "no_trust_roots",
                "the system has no CA certificates; give the route a ca_pem",
            )
            .with_cause(e)
        })?,
    };
    Ok(builder.https_only().enable_http1().build())
}

/// A route ready to send on: its checked configuration and an HTTPS client
/// with its trust roots. Built once per configuration change.
pub struct RouteClient {
    pub(crate) config: RouteConfig,
    pub(crate) template: Option<Template>,
    base: String,
    http: HttpsClient,
}

/// An upstream's answer, redacted.
#[derive(Debug)]
pub struct Answer {
    /// Its HTTP status.
    pub status: StatusCode,
    /// Its JSON body (`Null` if it was not JSON).
    pub body: Value,
}

impl RouteClient {
    fn build(config: RouteConfig, allowed: &[String]) -> Result<Self> {
        https_url(&config.url, allowed)?;
        let template = match (&config.kind[..], &config.template) {
            ("processor", Some(t)) => Some(Template::from_value(t).map_err(|e| {
                Error::invalid(
                    "template_invalid",
                    format!("the request template is not valid: {e}"),
                )
                .with_param("template")
            })?),
            _ => None,
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector(config.ca_pem.as_deref())?);
        Ok(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            config,
            template,
            http,
        })
    }

    /// Sends `body` (already serialised; zeroized here afterwards, since it
    /// may hold card data) to `path` under the route's URL, with an
    /// idempotency key, and reads the answer.
    pub async fn send(
        &self,
        allowed: &[String],
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().map_err(Error::internal)?;
        if !host_allowed(&uri, allowed) {
            return Err(not_allowed());
        }
        let body = Bytes::from(body);
        let kept = body.clone();
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request.body(Full::new(body)).map_err(Error::internal)?;
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let exchange = async {
            let response = self.http.request(request).await.map_err(|err| {
                Error::new(
                    ErrorKind::BadGateway,
                    "processor_unreachable",
                    "the processor could not be reached over verified TLS; nothing was charged by this attempt",
                )
                .with_cause(err)
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::BadGateway,
                        "processor_bad_answer",
                        "the processor's answer could not be read",
                    )
                })?
                .to_bytes();
            let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            redact(&mut body);
            Ok(Answer { status, body })
        };
        let result = tokio::time::timeout(timeout, exchange).await;
        // The request body held card data; the HTTP stack has let go of it.
        if let Ok(mut owned) = kept.try_into_mut() {
            owned.zeroize();
        }
        match result {
            Ok(answer) => answer,
            Err(_) => Err(Error::new(
                ErrorKind::GatewayTimeout,
                "processor_timeout",
                "the processor did not answer in time; retry with the same Idempotency-Key, which never charges twice",
            )),
        }
    }
}

/// Routes' clients, by tenant and name, rebuilt when the route changes.
#[derive(Default)]
pub struct RouteClients(Mutex<HashMap<RouteKey, (i64, Arc<RouteClient>)>>);

/// A route's tenant and name.
type RouteKey = (TenantId, String);

fn parse_config(row: &RouteRow) -> Result<RouteConfig> {
    serde_json::from_str(&row.config)
        .map_err(|_| Error::internal(crate::db::StoreError::Corrupt("route config")))
}

impl App {
    /// Creates or replaces a tenant's route.
    pub async fn put_route(
        &self,
        actor: &Actor,
        tenant: &str,
        name: &str,
        input: RouteInput,
    ) -> Result<RouteView> {
        self.audited(actor, EventKind::RouteWrite, async |event| {
            actor.require(Action::ManageRoutes)?;
            let tenant = parse_or_404(TenantId::parse, tenant, "tenant")?;
            let tenant = actor.tenant_for(Some(&tenant))?;
            self.store
                .tenant(&tenant)
                .await?
                .ok_or_else(|| Error::not_found("tenant"))?;
            event.tenant(&tenant);
            let name = route_name(name)?;
            let allowed = self.checkout.settings().allowed_hosts.clone();
            let uri = https_url(&input.url, &allowed)?;
            let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if !(100..=60_000).contains(&timeout_ms) {
                return Err(
                    Error::invalid("timeout_invalid", "timeout_ms must be 100 to 60000")
                        .with_param("timeout_ms"),
                );
            }
            let config = match input.kind.as_str() {
                "processor" => {
                    let own_origin = format!(
                        "https://{}",
                        uri.authority()
                            .map(|a| a.as_str().to_ascii_lowercase())
                            .unwrap_or_default()
                    );
                    let acs_origins = match input.acs_origins {
                        Some(list) => list
                            .iter()
                            .map(|o| super::sessions::web_origin(o, "acs_origins"))
                            .collect::<Result<Vec<_>>>()?,
                        None => vec![super::sessions::web_origin(&own_origin, "url")?],
                    };
                    RouteConfig {
                        kind: input.kind,
                        url: input.url,
                        ca_pem: input.ca_pem,
                        template: Some(input.template.unwrap_or_else(default_template)),
                        timeout_ms,
                        acs_origins,
                        token_paths: Vec::new(),
                    }
                }
                "outbound" => {
                    let paths = input.token_paths.unwrap_or_default();
                    for path in &paths {
                        super::outbound::JsonPath::parse(path)?;
                    }
                    RouteConfig {
                        kind: input.kind,
                        url: input.url,
                        ca_pem: input.ca_pem,
                        template: None,
                        timeout_ms,
                        acs_origins: Vec::new(),
                        token_paths: paths,
                    }
                }
                _ => {
                    return Err(
                        Error::invalid("route_kind_invalid", "kind must be processor or outbound")
                            .with_param("kind"),
                    );
                }
            };
            // Builds the client now, so a bad template or CA bundle is refused here.
            RouteClient::build(config.clone(), &allowed)?;
            let row = RouteRow {
                tenant_id: tenant.clone(),
                name: name.clone(),
                kind: config.kind.clone(),
                config: serde_json::to_string(&config).map_err(Error::internal)?,
                updated_at: clock::now_ms(),
            };
            self.record_now(actor, event).await?;
            self.store.route_put(row.clone()).await?;
            Ok(RouteView {
                name,
                config,
                updated_at: clock::rfc3339(row.updated_at),
            })
        })
        .await
    }

    /// A tenant's routes.
    pub async fn routes(&self, actor: &Actor, tenant: &str) -> Result<Vec<RouteView>> {
        self.audited(actor, EventKind::RouteRead, async |event| {
            actor.require(Action::ManageRoutes)?;
            let tenant = parse_or_404(TenantId::parse, tenant, "tenant")?;
            let tenant = actor.tenant_for(Some(&tenant))?;
            event.tenant(&tenant);
            let rows = self.store.routes(&tenant).await?;
            rows.iter()
                .map(|row| {
                    Ok(RouteView {
                        name: row.name.clone(),
                        config: parse_config(row)?,
                        updated_at: clock::rfc3339(row.updated_at),
                    })
                })
                .collect()
        })
        .await
    }

    /// Origins of the 3-D Secure pages of a tenant's processor routes.
    pub(crate) async fn acs_origins(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let mut origins = Vec::new();
        for row in self.store.routes(tenant).await? {
            if row.kind == "processor" {
                for origin in parse_config(&row)?.acs_origins {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        Ok(origins)
    }

    /// The client of a tenant's route of `kind`, built on first use and
    /// whenever the route changed.
    pub(crate) async fn route_client(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: &str,
    ) -> Result<Arc<RouteClient>> {
        let row = self
            .store
            .routes(tenant)
            .await?
            .into_iter()
            .find(|r| r.name == name);
        self.route_client_read(row, kind)
    }

    /// [`App::route_client`] for a route already read (`None`: the tenant
    /// has none of that name), so the read can share a round trip with others.
    pub(crate) fn route_client_read(&self, row: Option<RouteRow>, kind: &str) -> Result<Arc<RouteClient>> {
        let row = row.filter(|r| r.kind == kind).ok_or_else(|| {
            Error::invalid(
                "route_not_found",
                "this tenant has no such route; an operator configures it with PUT /v1/tenants/{tenant_id}/routes/{name}",
            )
            .with_param("route")
        })?;
        let key = (row.tenant_id.clone(), row.name.clone());
        {
            let cache = self.checkout.routes.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, client)) = cache.get(&key)
                && *at == row.updated_at
            {
                return Ok(client.clone());
            }
        }
        let allowed = self.checkout.settings().allowed_hosts.clone();
        let client = Arc::new(RouteClient::build(parse_config(&row)?, &allowed)?);
        let mut cache = self.checkout.routes.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, (row.updated_at, client.clone()));
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_https_hosts_are_routes() {
        let allowed = vec!["processor.example".to_owned(), "127.0.0.1:8443".to_owned()];
        assert!(https_url("https://processor.example/api", &allowed).is_ok());
        assert!(https_url("https://PROCESSOR.example:9443", &allowed).is_ok());
        assert!(https_url("https://127.0.0.1:8443", &allowed).is_ok());
        assert_eq!(
            https_url("https://127.0.0.1:9443", &allowed)
                .err()
                .map(|e| e.code()),
            Some("route_host_not_allowed")
        );
        assert_eq!(
            https_url("https://evil.example", &allowed)
                .err()
                .map(|e| e.code()),
            Some("route_host_not_allowed")
        );
        for bad in [
            "http://processor.example",
            "https://u:p@processor.example",
            "processor.example",
        ] {
            assert_eq!(
                https_url(bad, &allowed).err().map(|e| e.code()),
                Some("route_url_invalid"),
                "{bad}"
            );
        }
    }

    #[test]
    fn ca_bundles_must_hold_certificates() {
        assert_eq!(
            tls_config("not a pem").err().map(|e| e.code()),
            Some("route_ca_invalid")
        );
    }
}
