//! `anshin serve`: initialise an empty data directory if needed, optionally load
//! the demo, then serve the HTTP API until SIGINT or SIGTERM.

use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::access::credentials::DEFAULT_KEY_LIFETIME_DAYS;
use crate::access::lockout;
use crate::app::App;
use crate::audit::alerts::AlertService;
use crate::audit::log::INTEGRATE_INTERVAL;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::seal::{Gate, Running};
use crate::vault::root::Record;
use crate::{demo, http};

pub async fn run(config: &Config, with_demo: bool) -> Result<()> {
    let location = config.location();
    if let Some(record @ Record::Shares { .. }) = Record::read(&location.data_dir)? {
        if with_demo {
            return Err(Error::new(
                ErrorKind::Invalid,
                "sealed",
                "a vault split into shares starts sealed: unseal it first, then load the demo with `anshin demo`",
            ));
        }
        return serve_sealed(config, record).await;
    }
    let (app, bootstrap_key) = if location.is_initialised() {
        (App::open(&location).await?, None)
    } else {
        let (app, key) = App::init(&location).await?;
        (app, Some(key))
    };
    let mut app = app;
    app.trust_proxies(config.trusted_proxies.clone());
    app.configure_checkout(config.checkout_settings());
    app.allow_page_networks(config.page_monitor_allow_networks.clone());
    let app = Arc::new(app);
    let (listener, base) = bind(config).await?;
    if let Some(key) = bootstrap_key {
        println!("Initialised {}.", config.data_dir.display());
        println!("Operator API key (shown once; store it now) / 運用者APIキー（一度だけ表示）:");
        println!("  {}", key.expose());
        println!(
            "It expires in {DEFAULT_KEY_LIFETIME_DAYS} days: rotate it with `anshin principal rotate <id>` \
             or POST /v1/principals/<id>/rotate."
        );
    }
    if with_demo {
        let access = demo::load(app.clone()).await?;
        super::demo::print_guide(&access, &base);
    }
    // Scripts (and `anshin bench`) wait for this line.
    println!(
        "anshin listening on {base} (store: {})",
        app.store.backend().as_str()
    );
    serve_app(config, app, listener).await
}

/// Serves an open application on a bound listener until SIGINT or SIGTERM,
/// with its background tasks; at the stop, signs a last audit checkpoint.
pub(super) async fn serve_app(config: &Config, app: Arc<App>, listener: TcpListener) -> Result<()> {
    tracing::info!(backend = app.store.backend().as_str(), "serving");
    let running = start_tasks(config, app.clone())?;
    serve_until_signal(listener, http::router(app.clone())).await?;
    for task in running.tasks {
        task.abort();
    }
    // Sign a final checkpoint over everything appended before the stop.
    if let Err(err) = app.audit.integrate(&app.store).await {
        tracing::warn!(error = ?err, "could not integrate the audit log at shutdown");
    }
    match app.store.group_commit() {
        Some((writes, commits)) => tracing::info!(writes, commits, "stopped"),
        None => tracing::info!("stopped"),
    }
    Ok(())
}

/// Serves a vault whose root key is split into shares: sealed until K
/// custodians have entered theirs (see [`http::seal`]).
async fn serve_sealed(config: &Config, record: Record) -> Result<()> {
    let task_config = config.clone();
    let gate = Gate::new(
        config.location(),
        record,
        config.trusted_proxies.clone(),
        Box::new(move |mut app: App| {
            app.trust_proxies(task_config.trusted_proxies.clone());
            app.configure_checkout(task_config.checkout_settings());
            app.allow_page_networks(task_config.page_monitor_allow_networks.clone());
            start_tasks(&task_config, Arc::new(app))
        }),
    )?;
    let (listener, base) = bind(config).await?;
    let status = gate.status().await;
    println!(
        "anshin listening on {base} (sealed: enter {} shares with `anshin unseal --server {base}`)",
        status.threshold
    );
    tracing::info!("serving sealed");
    let expiry = tokio::spawn({
        let gate = gate.clone();
        async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                ticker.tick().await;
                gate.expire_progress().await;
            }
        }
    });
    serve_until_signal(listener, gate.service()).await?;
    expiry.abort();
    gate.seal(None).await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds the listen address; returns the listener and its base URL.
pub(super) async fn bind(config: &Config) -> Result<(TcpListener, String)> {
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            "listen_failed",
            format!(
                "cannot listen on {}; choose another address with --listen",
                config.listen
            ),
        )
        .with_cause(e)
    })?;
    let addr = listener.local_addr().map_err(Error::internal)?;
    Ok((listener, format!("http://{addr}")))
}

async fn serve_until_signal(listener: TcpListener, router: axum::Router) -> Result<()> {
    // Responses go out in one write; Nagle would only hold them back.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(Error::internal)
}

/// The background tasks of an open App: audit integration and alerts,
/// retention purge, lockout refresh, key rotation and rewrap, the
/// checkout-page monitor and the payment webhooks.
pub(super) fn start_tasks(config: &Config, app: Arc<App>) -> Result<Running> {
    let alerts = AlertService::start(&app, &config.alerts)?;
    Ok(Running {
        tasks: vec![
            tokio::spawn(integrate_periodically(app.clone(), alerts)),
            tokio::spawn(purge_periodically(app.clone())),
            tokio::spawn(refresh_lockouts_periodically(app.clone())),
            tokio::spawn(maintain_keys_periodically(app.clone(), config.keys)),
            tokio::spawn(maintain_cvc_holds_periodically(app.clone())),
            tokio::spawn(check_pages_periodically(app.clone())),
            tokio::spawn(crate::proxy::webhooks::PaymentWebhooks::new().run(app.clone())),
        ],
        app,
    })
}

/// Integrates the audit log and signs a checkpoint every
/// [`INTEGRATE_INTERVAL`]; with several nodes on PostgreSQL each round is
/// serialised by an advisory lock, so the head moves once per round. After
/// each round the alert detectors look at what was integrated.
async fn integrate_periodically(app: Arc<App>, alerts: AlertService) {
    let mut ticker = tokio::time::interval(INTEGRATE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = app.audit.integrate(&app.store).await {
            tracing::warn!(error = ?err, "audit integration failed; will retry");
        }
        alerts.integrated();
    }
}

/// How often the page monitor looks for pages due (each page has its own
/// interval, at least a minute).
const PAGE_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// Fetches and compares the monitored payment pages that are due.
async fn check_pages_periodically(app: Arc<App>) {
    let mut ticker = tokio::time::interval(PAGE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match app.check_due_pages().await {
            Ok(0) => {}
            Ok(checked) => tracing::debug!(checked, "payment pages checked"),
            Err(err) => tracing::warn!(error = ?err, "page monitor round failed; will retry"),
        }
    }
}

/// How often expired shipping data is crypto-shredded.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Shreds shipping data past its retention every [`PURGE_INTERVAL`] (and
/// once at start); each round is in the audit log.
async fn purge_periodically(app: Arc<App>) {
    let mut ticker = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticker.tick().await;
        match app.purge_expired_shipping().await {
            Ok(report) if report.purged > 0 => tracing::info!(orders = report.purged, "shipping data purged"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "retention purge failed; will retry"),
        }
    }
}

/// How often encryption counts are reported and rotation and rewrap looked at.
const KEY_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Rotates KEK versions the policy says are due and re-wraps data keys still
/// on older versions, every [`KEY_MAINTENANCE_INTERVAL`]. Several nodes may
/// run it at once: each re-wrapped row is written only if it still holds the
/// version it was read with.
async fn maintain_keys_periodically(app: Arc<App>, policy: crate::vault::rotation::RotationPolicy) {
    let mut ticker = tokio::time::interval(KEY_MAINTENANCE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = app.rotate_due(&policy).await {
            tracing::warn!(error = ?err, "automatic key rotation failed; will retry");
        }
        match app.rewrap_all(policy.pause(), |_| {}).await {
            Ok(0) => {}
            Ok(records) => tracing::info!(records, "data keys re-wrapped to the current KEK versions"),
            Err(err) => tracing::warn!(error = ?err, "rewrap failed; will resume"),
        }
    }
}

/// Reloads the lockouts other nodes started every [`lockout::REFRESH`], so a
/// locked-out source is refused by every node; now and then forgets failures
/// that left the counting window.
/// Held security codes: this node's epoch keys published and shared, expired
/// holds and keys deleted (see `proxy::cvc`). Every second, so another node
/// that must open a code held here finds its key copy at once.
async fn maintain_cvc_holds_periodically(app: Arc<App>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(err) = app.cvc_maintain().await {
            tracing::warn!(error = ?err, "security-code hold maintenance failed; will retry");
        }
    }
}

async fn refresh_lockouts_periodically(app: Arc<App>) {
    const PRUNE_EVERY: u32 = 30;
    let mut ticker = tokio::time::interval(lockout::REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        ticker.tick().await;
        if let Err(err) = app.refresh_lockouts().await {
            tracing::warn!(error = ?err, "could not reload lockouts; will retry");
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(PRUNE_EVERY)
            && let Err(err) = app.prune_auth_failures().await
        {
            tracing::warn!(error = ?err, "could not prune failed-authentication counts; will retry");
        }
    }
}

pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = interrupt => {}
        () = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
