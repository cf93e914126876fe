//! Embedded signing (issue 4): signing sessions created by an MIS, the iframe page the MIS embeds,
//! the oneID login in a popup, the Sign click that calls [`crate::documents::Documents::sign`],
//! `postMessage` hints to the MIS page, and webhooks to the MIS backend.
//!
//! ```text
//! MIS backend  POST /documents/{id}/signing-sessions ──▶ {id, launchUrl, expiresAt}
//! MIS page     <iframe src=launchUrl>  GET /s/launch/{token} ─303─▶ GET /s/{handle}   (frame-ancestors embedOrigin)
//! iframe       window.open(/s/{handle}/login?csrf) ─303─▶ oneID ─302─▶ GET /oneid/callback?code&state
//! iframe       polls GET /s/{handle}/status; POST /s/{handle}/sign (CSRF token) → Documents::sign
//! hujjat       webhook to the MIS backend; GET /signing-sessions/{id} is the authority
//! ```
//!
//! Browser binding: the handle in the URL (≥ 256 random bits, never logged) plus a CSRF token in
//! every state-changing request works without any cookie (third-party cookies blocked). When the
//! partitioned session cookie does come back, the session is bound to it and then requires it.
//! The popup is first-party: its session cookie binds the OAuth `state` to the browser that
//! started the login (login CSRF), and its id is cycled at login.
//!
//! [`login`]: the plain browser login (`GET /login?next=…`, `POST /logout`) for first-party pages
//! such as the archive UI; same providers and callback, not tied to a signing session.

pub mod api;
pub mod browser;
pub mod cli;
pub mod config;
pub mod i18n;
pub mod login;
pub mod pages;
pub mod session_store;
pub mod store;
pub mod webhook;

use crate::config::Mode;
use crate::error::AppError;
use crate::identity::{dev, Provider};
use crate::web::{AppState, MisClient};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::time::Duration;
use store::{Sessions, SigningSession};

/// What the handlers of this module share.
#[derive(Clone)]
pub struct Ctx {
    pub app: AppState,
    /// `None` only when the configuration is invalid (then `app::build` has already failed).
    pub provider: Option<Provider>,
    pub webhooks: webhook::Webhooks,
}

impl Ctx {
    pub fn new(app: &AppState) -> Ctx {
        Ctx {
            app: app.clone(),
            provider: Provider::from_config(&app.config).ok(),
            webhooks: webhook::Webhooks::new(app.docs.store.clone(), app.config.signing.webhook_retry_base_ms),
        }
    }

    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(&self.app.docs.store)
    }

    /// The session as it is now: an open session past its deadline becomes `expired` (and the
    /// MIS is told).
    pub async fn refresh(&self, s: SigningSession) -> Result<SigningSession, AppError> {
        let now = store::now_secs();
        let due = s.is_open() && (s.expires_at <= now || (s.status == "created" && s.launch_expires_at <= now));
        if !due {
            return Ok(s);
        }
        let from: Vec<&str> = store::OPEN_STATES.to_vec();
        self.finish(&s, &from, "expired", None).await?;
        Ok(self.sessions().get(&s.id).await?.unwrap_or(s))
    }

    /// A terminal transition; the webhook is queued by whoever made it.
    pub async fn finish(
        &self,
        s: &SigningSession,
        from: &[&str],
        to: &str,
        code: Option<&str>,
    ) -> Result<bool, AppError> {
        let done = self.sessions().transition(&s.id, from, to, code).await?;
        if done {
            tracing::info!(session = %s.id, document = %s.document_id, status = to, code = code.unwrap_or(""), "signing session ended");
            self.notify(&s.id).await?;
        }
        Ok(done)
    }

    /// Queue the webhook for a session's current (terminal) state.
    pub async fn notify(&self, id: &str) -> Result<(), AppError> {
        let Some(s) = self.sessions().get(id).await? else { return Ok(()) };
        let mut data = json!({
            "sessionId": s.id, "documentId": s.document_id, "status": s.public_status(),
            "documentVersion": s.document_version,
        });
        if let Some(v) = s.signed_version {
            data["signedVersion"] = json!(v);
        }
        if let Some(c) = &s.error_code {
            data["error"] = json!({"code": c});
        }
        self.webhooks.enqueue(&s.client_id, &format!("signing_session.{}", s.public_status()), data).await
    }
}

/// The MIS client, authenticated as everywhere else ([`MisClient`]).
pub struct Mis(pub crate::store::clients::Client);

impl FromRequestParts<Ctx> for Mis {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Self::Rejection> {
        Ok(Mis(MisClient::from_request_parts(parts, &ctx.app).await?.0))
    }
}

/// The routes of this module (merged into the service's router).
pub fn routes(state: &AppState) -> Router<AppState> {
    let ctx = Ctx::new(state);
    let api = Router::new()
        .route("/documents/{id}/signing-sessions", post(api::create))
        .route("/signing-sessions/{id}", get(api::status))
        .route("/signing-sessions/{id}/cancel", post(api::cancel))
        .with_state(ctx.clone());
    let pages = Router::new()
        .route("/s/launch/{token}", get(browser::launch))
        .route("/s/{handle}", get(browser::page))
        .route("/s/{handle}/status", get(browser::status))
        .route("/s/{handle}/login", get(browser::login))
        .route("/s/{handle}/sign", post(browser::sign))
        .route("/s/{handle}/cancel", post(browser::cancel))
        .route(crate::identity::CALLBACK_PATH, get(browser::callback))
        .route(login::LOGIN_PATH, get(login::start))
        .route(login::LOGOUT_PATH, post(login::logout))
        .layer(session_store::layer(state.docs.store.clone()))
        .layer(axum::middleware::map_response(session_store::partitioned))
        .with_state(ctx);
    let assets = Router::new()
        .route(
            "/static/iframe.js",
            get(|| async { browser::asset("text/javascript", include_str!("../../static/iframe.js")) }),
        )
        .route(
            "/static/popup.js",
            get(|| async { browser::asset("text/javascript", include_str!("../../static/popup.js")) }),
        )
        .route(
            "/static/iframe.css",
            get(|| async { browser::asset("text/css", include_str!("../../static/iframe.css")) }),
        );
    let mut r = api.merge(pages).merge(assets);
    if state.config.identity_provider == "dev" && state.config.mode == Mode::Development {
        r = r.merge(dev::routes(dev::DevOneId::new(&state.config.public_url)));
    }
    r
}

/// Start-up: check the identity configuration, seed clients, and start the background work
/// (webhook deliveries, expiring sessions, deleting stale browser sessions).
pub async fn start(state: &AppState) -> anyhow::Result<()> {
    Provider::from_config(&state.config)?;
    crate::iframe::api::seed_clients(state).await?;
    let ctx = Ctx::new(state);
    ctx.webhooks.clone().spawn();
    tokio::spawn(async move {
        let sweeper = session_store::DbSessionStore::new(ctx.app.docs.store.clone());
        let mut tick = 0u64;
        loop {
            if let Ok(ids) = ctx.sessions().due_for_expiry(100).await {
                for id in ids {
                    if let Ok(Some(s)) = ctx.sessions().get(&id).await {
                        let _ = ctx.refresh(s).await;
                    }
                }
            }
            if tick.is_multiple_of(60) {
                let _ = sweeper.delete_expired().await;
            }
            tick += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(())
}
