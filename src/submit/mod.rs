//! Submission of signed documents to the DHP through a durable outbox (issue 5).
//!
//! - `outbox`: the tables. A document is queued in the transaction that stores its last required
//!   signature (`Store::add_signature`); nodes lease due items (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL) and every later write is fenced by the lease token.
//! - `dhp`: the DHP client (token cache, patient search, conditional create with `If-None-Exist`).
//! - `worker`: leases, sends, backs off with jitter, records every attempt.
//! - `metrics`: `GET /metrics` (Prometheus text).
//!
//! Routes: `GET /documents/{id}/submission`, `POST /documents/{id}/submission/retry`, `GET /metrics`.

pub mod config;
pub mod dhp;
pub mod metrics;
pub mod outbox;
pub mod worker;

pub use config::{DhpConfig, RequiredSignatures, SubmitMode};
pub use worker::{start, Worker};

use crate::error::AppError;
use crate::store::clients::Client;
use crate::web::{AppState, MisClient};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

/// The scope that lets a client see and re-queue every client's submissions.
pub const ADMIN_SCOPE: &str = "admin";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/documents/{id}/submission", get(submission))
        .route("/documents/{id}/submission/retry", post(retry))
        .route("/metrics", get(metrics_text))
}

fn is_admin(c: &Client) -> bool {
    c.scopes.iter().any(|s| s == ADMIN_SCOPE)
}

/// The document if this client owns it or is an admin; 404 otherwise.
async fn visible(st: &AppState, client: &Client, id: &str) -> Result<crate::store::documents::DocumentRow, AppError> {
    match st.docs.store.document(id).await? {
        Some(d) if d.client_id == client.id || is_admin(client) => Ok(d),
        _ => Err(AppError::NotFound(format!("no document {id}"))),
    }
}

async fn submission(
    State(st): State<AppState>,
    MisClient(client): MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let doc = visible(&st, &client, &id).await?;
    if let Some(v) = st.docs.store.submission_view(&id).await? {
        return Ok(Json(v).into_response());
    }
    let signatures = st.docs.store.signatures(&id).await?.len();
    let required = st.docs.store.required_signatures.for_form(&doc.form);
    Ok(Json(json!({
        "document": id,
        "state": "not-queued",
        "signatures": signatures,
        "requiredSignatures": required,
        "detail": format!("a document is queued for the DHP when it has {required} signature(s); it has {signatures}"),
    }))
    .into_response())
}

async fn retry(
    State(st): State<AppState>,
    MisClient(client): MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    visible(&st, &client, &id).await?;
    if !st.docs.store.requeue_submission(&id).await? {
        let state = st
            .docs
            .store
            .submission_view(&id)
            .await?
            .and_then(|v| v["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "not queued".into());
        return Err(AppError::Conflict(format!(
            "the submission of document {id} is {state}: only a rejected or retrying submission can be re-queued"
        )));
    }
    tracing::info!(document = %id, client = %client.id, "DHP submission re-queued");
    let v = st.docs.store.submission_view(&id).await?.unwrap_or_default();
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

async fn metrics_text(State(st): State<AppState>) -> Result<Response, AppError> {
    let body = metrics::render(&st.docs.store).await?;
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(r)
}
