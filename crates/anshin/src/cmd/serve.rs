//! `anshin serve`: initialise an empty data directory if needed, optionally load
//! the demo, then serve the HTTP API until SIGINT or SIGTERM.

use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::App;
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
    axum::serve(listener, http::router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(Error::internal)?;
    match app.store.group_commit() {
        Some((writes, commits)) => tracing::info!(writes, commits, "stopped"),
        None => tracing::info!("stopped"),
    }
    Ok(())
}

async fn shutdown_signal() {
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
