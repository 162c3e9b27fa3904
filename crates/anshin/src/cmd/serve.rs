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
use crate::{demo, http};

pub async fn run(config: &Config, with_demo: bool) -> Result<()> {
    let location = config.location();
    let (app, bootstrap_key) = if location.is_initialised() {
        (App::open(&location).await?, None)
    } else {
        let (app, key) = App::init(&location).await?;
        (app, Some(key))
    };
    let mut app = app;
    app.trust_proxies(config.trusted_proxies.clone());
    let app = Arc::new(app);
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
    let base = format!("http://{addr}");
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
    tracing::info!(%addr, backend = app.store.backend().as_str(), "serving");
    // Responses go out in one write; Nagle would only hold them back.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let alerts = AlertService::start(app.store.clone(), &config.alerts)?;
    let integrator = tokio::spawn(integrate_periodically(app.clone(), alerts));
    let purger = tokio::spawn(purge_periodically(app.clone()));
    let lockouts = tokio::spawn(refresh_lockouts_periodically(app.clone()));
    let service = http::router(app.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(Error::internal)?;
    integrator.abort();
    purger.abort();
    lockouts.abort();
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

/// Reloads the lockouts other nodes started every [`lockout::REFRESH`], so a
/// locked-out source is refused by every node; now and then forgets failures
/// that left the counting window.
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
