//! Wiring: configuration → store → services → router; and the server with graceful shutdown.

use crate::compose::Composer;
use crate::config::{Config, Mode};
use crate::documents::Documents;
use crate::sign::{SignOptions, SigningCa, TargetMode};
use crate::store::Store;
use crate::web::{router, AppState};
use std::sync::Arc;

pub const DEMO_CLIENT_ID: &str = "demo-mis";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
pub const DEMO_EMBED_ORIGIN: &str = "http://localhost:8081";

pub async fn build(config: Config) -> anyhow::Result<(axum::Router, AppState)> {
    config.check()?;
    let store = Store::connect(&config.database_url).await?;
    let store = Store { required_signatures: Arc::new(config.dhp.required_signatures.clone()), ..store };
    crate::archive::prepare(&store).await?;
    // signed documents that never reached the outbox (signed before it existed) are queued now
    crate::submit::outbox::backfill(&store).await.map_err(|e| anyhow::anyhow!("queueing signed documents: {e}"))?;
    if config.demo_client && config.mode == Mode::Development {
        store
            .ensure_client(DEMO_CLIENT_ID, "Demo hospital MIS", DEMO_CLIENT_SECRET, &[DEMO_EMBED_ORIGIN.to_string()])
            .await
            .map_err(|e| anyhow::anyhow!("creating the demo client: {e}"))?;
    }
    let composer = Arc::new(Composer::builtin()?);
    let ca = match (&config.ca_cert, &config.ca_key) {
        (Some(cert), Some(key)) => SigningCa::load_pem(cert, key, &config.ca_extra_anchors)?,
        _ => SigningCa::load_or_create_dev(&config.data_dir)?,
    };
    let sign_options = SignOptions {
        target: if config.signature_target_bundle_id { TargetMode::BundleId } else { TargetMode::Hash },
        claim_uz_core_profile: config.provenance_claim_profile,
        narrative: true,
        ..SignOptions::default()
    };
    let docs = Documents { store, composer, ca: Arc::new(ca), sign_options: Arc::new(sign_options) };
    let state = AppState { config: Arc::new(config), docs };
    crate::iframe::start(&state).await?;
    Ok((router(state.clone()), state))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let (app, state) = build(config).await?;
    let dhp_worker = crate::submit::start(state.docs.store.clone(), state.config.dhp.clone())?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let u = &state.config.public_url;
    println!(
        "hujjat is listening on {u} ({} mode, database: {})",
        mode_name(state.config.mode),
        db_name(&state.config.database_url)
    );
    println!("  forms:          {u}/forms");
    println!("  compose:        curl -u {DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET} -H 'Content-Type: application/json' --data @form.json {u}/forms/003/documents");
    println!("  health:         {u}/healthz");
    println!("  archive:        {u}/archive   (archivists: hujjat users grant PINFL archivist)");
    crate::demo::spawn(&state).await?; // development only: the demo MIS (prints its URL)
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    if let Some(w) = dhp_worker {
        w.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Development => "development",
        Mode::Production => "production",
    }
}

/// The database URL without credentials (for the start-up line).
fn db_name(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit('@').next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
        None => url.to_string(),
    }
}

/// SIGTERM or Ctrl-C: stop accepting, finish the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}
