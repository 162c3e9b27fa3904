//! The sealed server: a vault whose root key is split into custodian shares
//! starts sealed and holds no [`App`] until K shares have been entered.
//!
//! [`Gate`] is the whole HTTP service. Sealed, it answers health, seal status
//! and `POST /v1/sys/unseal`, and every other endpoint 503 `sealed`. When the
//! K-th valid share arrives it combines the shares, checks the result against
//! the vault's check value, opens the [`App`] and from then on hands every
//! request to the full router. `POST /v1/sys/seal` (a global operator) drops
//! the App, its keys and its background tasks, and the gate is sealed again.
//!
//! Entered shares are kept opened (passphrase removed) in zeroizing memory
//! and wiped after combining, on a wrong combination, and after
//! [`PROGRESS_TIMEOUT`] without a new share. Unseal attempts are limited to
//! [`ATTEMPTS_PER_SECOND`] per client address (and [`ATTEMPTS_PER_SECOND_IN_ALL`]
//! together), so shares and passphrases cannot be guessed online and one
//! flooding client does not lock the custodians out.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use anshin_crypto::secret::SecretString;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use super::extract::JsonBody;
use super::sys::Health;
use super::{AppState, MAX_BODY};
use crate::access::proxies::TrustedProxies;
use crate::access::{Actor, Role};
use crate::app::{App, Location};
use crate::audit::{Event, EventKind};
use crate::error::{Error, ErrorBody, ErrorKind, Result};
use crate::proxy::limit::Bucket;
use crate::vault::root::{Record, RootKey, sealed};
use crate::vault::shares::{OpenShare, Share, VaultId, share_error};

/// Shares entered are wiped after this long without another.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(600);
/// Unseal attempts accepted per second from one client address.
pub const ATTEMPTS_PER_SECOND: u32 = 10;
/// Unseal attempts accepted per second from all clients together (each may
/// cost an Argon2id derivation): a bound on the work, not on one client.
pub const ATTEMPTS_PER_SECOND_IN_ALL: u32 = 100;

/// `POST /v1/sys/unseal` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// One custodian's share (`anshin-share:…`).
    #[serde(deserialize_with = "crate::vault::secret")]
    #[schema(value_type = String)]
    pub share: SecretString,
    /// The share's passphrase, when it was sealed under one.
    #[serde(default, deserialize_with = "crate::vault::secret_opt")]
    #[schema(value_type = Option<String>)]
    pub passphrase: Option<SecretString>,
}

/// Seal status: the answer of unseal, seal and seal-status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SealStatus {
    /// Whether the vault is sealed.
    pub sealed: bool,
    /// Valid shares entered so far.
    pub progress: u8,
    /// Shares needed.
    pub threshold: u8,
}

/// What an unsealed vault runs: the App and its background tasks.
pub struct Running {
    /// The application.
    pub app: Arc<App>,
    /// Background tasks, aborted when the vault is sealed.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Readies an opened App and starts its background tasks (see `anshin serve`).
pub type Starter = dyn Fn(App) -> Result<Running> + Send + Sync;

/// Shares entered so far.
struct Pending {
    shares: Vec<OpenShare>,
    last: Instant,
}

impl Pending {
    fn empty() -> Self {
        Self {
            shares: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Forgets shares left waiting too long.
    fn expire(&mut self, now: Instant) {
        if now.duration_since(self.last) >= PROGRESS_TIMEOUT {
            self.shares.clear();
        }
    }
}

/// The sealed-or-unsealed HTTP service of a vault with custodian shares.
pub struct Gate {
    location: Location,
    record: Record,
    vault: VaultId,
    threshold: u8,
    start: Box<Starter>,
    /// Serialises unseal and seal (opening the App takes a while).
    pending: tokio::sync::Mutex<Pending>,
    running: RwLock<Option<(Router, Running)>>,
    /// Per client address, so one flooding client does not lock the
    /// custodians out; and for all together.
    per_client: Bucket,
    in_all: Bucket,
    proxies: TrustedProxies,
    sealed_routes: Router,
    me: Weak<Gate>,
}

impl Gate {
    /// A sealed gate over the vault at `location`, whose record is `record`
    /// (shares kind); `start` runs once per unseal.
    /// Client addresses behind `proxies` are read from `X-Forwarded-For`.
    pub fn new(
        location: Location,
        record: Record,
        proxies: TrustedProxies,
        start: Box<Starter>,
    ) -> Result<Arc<Self>> {
        let Record::Shares { threshold, .. } = record else {
            return Err(Error::new(
                ErrorKind::Internal,
                "not_sealable",
                "only a vault whose root key is split into shares starts sealed",
            ));
        };
        let vault = record.vault_id()?;
        Ok(Arc::new_cyclic(|gate: &Weak<Self>| Self {
            location,
            record,
            vault,
            threshold,
            start,
            pending: tokio::sync::Mutex::new(Pending::empty()),
            running: RwLock::new(None),
            per_client: Bucket::new(ATTEMPTS_PER_SECOND, f64::from(ATTEMPTS_PER_SECOND)),
            in_all: Bucket::new(ATTEMPTS_PER_SECOND_IN_ALL, f64::from(ATTEMPTS_PER_SECOND_IN_ALL)),
            proxies,
            sealed_routes: sealed_router(gate.clone()),
            me: gate.clone(),
        }))
    }

    /// The service to serve: every request goes to the router of the state
    /// the vault is in when it arrives.
    pub fn service(self: &Arc<Self>) -> Router {
        let gate = self.clone();
        Router::new().fallback_service(tower::service_fn(move |request: Request| {
            let gate = gate.clone();
            async move { Ok::<Response, Infallible>(gate.dispatch(request).await) }
        }))
    }

    async fn dispatch(&self, request: Request) -> Response {
        let router = self
            .running
            .read()
            .ok()
            .and_then(|r| r.as_ref().map(|(router, _)| router.clone()))
            .unwrap_or_else(|| self.sealed_routes.clone());
        match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The App, while unsealed.
    pub fn app(&self) -> Option<Arc<App>> {
        self.running
            .read()
            .ok()
            .and_then(|r| r.as_ref().map(|(_, running)| running.app.clone()))
    }

    /// The current seal status.
    pub async fn status(&self) -> SealStatus {
        let mut pending = self.pending.lock().await;
        pending.expire(Instant::now());
        self.status_of(&pending)
    }

    fn status_of(&self, pending: &Pending) -> SealStatus {
        let sealed = self.app().is_none();
        SealStatus {
            sealed,
            progress: if sealed {
                u8::try_from(pending.shares.len()).unwrap_or(u8::MAX)
            } else {
                0
            },
            threshold: self.threshold,
        }
    }

    /// Wipes shares left waiting past [`PROGRESS_TIMEOUT`] (called
    /// periodically, so they do not stay in memory when no one comes back).
    pub async fn expire_progress(&self) {
        self.pending.lock().await.expire(Instant::now());
    }

    fn admit(&self, client: Option<IpAddr>) -> Result<()> {
        let now = Instant::now();
        self.per_client
            .take(client, now)
            .and_then(|()| self.in_all.take(None, now))
            .map_err(|refused| {
                Error::new(
                    ErrorKind::TooManyRequests,
                    "unseal_rate_limited",
                    "too many unseal attempts; wait a second and send the share again",
                )
                .with_retry_after(refused.retry_after().unwrap_or(1))
            })
    }

    /// The client address of a connection from `peer` with these
    /// `X-Forwarded-For` values.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        self.proxies.client(peer, forwarded_for)
    }

    /// Takes one custodian's share from `client`; at the threshold, unseals.
    pub async fn unseal(&self, client: Option<IpAddr>, request: UnsealRequest) -> Result<SealStatus> {
        self.admit(client)?;
        let mut pending = self.pending.lock().await;
        if self.app().is_some() {
            return Ok(self.status_of(&pending));
        }
        pending.expire(Instant::now());
        let share = Share::parse(request.share.expose())?;
        if share.vault() != self.vault {
            return Err(share_error("share_wrong_vault"));
        }
        if pending.shares.iter().any(|s| s.index() == share.index()) {
            return Err(share_error("share_duplicate"));
        }
        let (vault, threshold) = (self.vault, self.threshold);
        // Argon2id takes a fraction of a second: off the async threads.
        let opened =
            tokio::task::spawn_blocking(move || share.open(vault, threshold, request.passphrase.as_ref()))
                .await
                .map_err(Error::internal)??;
        pending.shares.push(opened);
        pending.last = Instant::now();
        if pending.shares.len() < usize::from(self.threshold) {
            return Ok(self.status_of(&pending));
        }
        let shares = std::mem::take(&mut pending.shares);
        let root = RootKey::from_shares(&self.record, &shares);
        drop(shares);
        let root = root?;
        let app = App::open_with_root(&self.location, root).await?;
        // Custodians are anonymous (a share names no one): the entry says when
        // the vault opened; it is durable before any request is served.
        app.record(None, None, &Event::new(EventKind::VaultUnseal), None)
            .await?;
        let running = (self.start)(app)?;
        let app = running.app.clone();
        let router = super::router(app.clone()).merge(unsealed_router(app, self.me.clone()));
        if let Ok(mut slot) = self.running.write() {
            *slot = Some((router, running));
        }
        tracing::info!("vault unsealed");
        Ok(self.status_of(&pending))
    }

    /// Seals: drops the App (and with it every key in memory) and stops its
    /// background tasks. `by` is the operator who asked, recorded in the log;
    /// a stopping server seals without an entry (its stop is in its own log).
    pub async fn seal(&self, by: Option<&Actor>) -> SealStatus {
        let mut pending = self.pending.lock().await;
        pending.shares.clear();
        let running = self.running.write().ok().and_then(|mut slot| slot.take());
        if let Some((_, running)) = running {
            for task in &running.tasks {
                task.abort();
            }
            if let Some(actor) = by {
                let event = Event::new(EventKind::VaultSeal);
                if let Err(err) = running.app.record(Some(actor), actor.origin, &event, None).await {
                    tracing::warn!(error = ?err, "could not record the seal in the audit log");
                }
            }
            if let Err(err) = running.app.audit.integrate(&running.app.store).await {
                tracing::warn!(error = ?err, "could not integrate the audit log before sealing");
            }
            tracing::info!("vault sealed");
        }
        self.status_of(&pending)
    }
}

fn sealed_router(gate: Weak<Gate>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "sealed" }) }))
        .route("/readyz", get(|| async { sealed() }))
        .route("/v1/sys/seal-status", get(seal_status))
        .route("/v1/sys/unseal", post(unseal))
        .route("/v1/sys/seal", post(seal_status))
        .fallback(|| async { sealed() })
        .layer(Extension(gate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Routes an unsealed vault adds to the full router.
fn unsealed_router(app: Arc<App>, gate: Weak<Gate>) -> Router {
    Router::new()
        .route("/v1/sys/seal-status", get(seal_status))
        .route("/v1/sys/unseal", post(seal_status))
        .route("/v1/sys/seal", post(seal))
        .layer(Extension(gate))
        .with_state(AppState { app })
}

fn gate_of(gate: &Weak<Gate>) -> Result<Arc<Gate>> {
    gate.upgrade().ok_or_else(sealed)
}

/// Whether the vault is sealed, and how many shares have been entered.
#[utoipa::path(get, path = "/v1/sys/seal-status", tag = "operations", security(()),
    responses((status = 200, body = SealStatus)))]
pub async fn seal_status(Extension(gate): Extension<Weak<Gate>>) -> Result<Json<SealStatus>> {
    Ok(Json(gate_of(&gate)?.status().await))
}

/// Enter one custodian's share into a sealed vault (10 attempts a second per
/// client address, 100 in all). At the threshold the vault unseals; an
/// unsealed vault answers its status.
#[utoipa::path(post, path = "/v1/sys/unseal", tag = "operations", security(()), request_body = UnsealRequest,
    responses((status = 200, body = SealStatus),
        (status = 409, description = "`share_duplicate`", body = ErrorBody),
        (status = 422, description = "`share_malformed`, `share_checksum`, `share_wrong_vault`, \
            `share_passphrase_required`, `share_passphrase_wrong`, `share_combination_wrong` (progress reset)", body = ErrorBody),
        (status = 429, description = "`unseal_rate_limited`", body = ErrorBody)))]
pub async fn unseal(
    Extension(gate): Extension<Weak<Gate>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UnsealRequest>,
) -> Result<Json<SealStatus>> {
    let gate = gate_of(&gate)?;
    let client = connection.map(|Extension(ConnectInfo(peer))| {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        gate.client(peer.ip(), forwarded)
    });
    Ok(Json(gate.unseal(client, request).await?))
}

/// Seal the vault: drop the application and every key in memory (global operators).
#[utoipa::path(post, path = "/v1/sys/seal", tag = "operations",
    responses((status = 200, body = SealStatus), (status = 403, body = ErrorBody)))]
pub async fn seal(actor: Actor, Extension(gate): Extension<Weak<Gate>>) -> Result<Json<SealStatus>> {
    if actor.role != Role::Operator || actor.tenant_id.is_some() {
        return Err(Error::forbidden(
            "seal the vault (a global operator's key is needed)",
        ));
    }
    let gate = gate_of(&gate)?;
    // Sealing waits for nothing in flight: requests holding the App finish
    // with it, and then it is dropped.
    Ok(Json(gate.seal(Some(&actor)).await))
}

#[cfg(test)]
mod tests {
    use anshin_crypto::secret::KeyBytes;

    use super::*;

    #[test]
    fn shares_left_waiting_are_wiped() {
        let vault = VaultId::generate().expect("rng");
        let key = KeyBytes::generate().expect("rng");
        let split = crate::vault::shares::split(&key, vault, 2, &[None, None]).expect("split");
        let mut pending = Pending::empty();
        pending.shares = split
            .into_iter()
            .map(|s| s.open(vault, 2, None).expect("open"))
            .collect();
        let start = pending.last;
        pending.expire(start + PROGRESS_TIMEOUT - Duration::from_secs(1));
        assert_eq!(pending.shares.len(), 2, "kept while custodians are coming");
        pending.expire(start + PROGRESS_TIMEOUT);
        assert!(pending.shares.is_empty(), "wiped after the timeout");
    }
}
