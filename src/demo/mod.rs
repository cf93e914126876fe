//! The demo hospital system (development only): a second listener, by default on
//! `http://localhost:8081` — another site than hujjat's `http://127.0.0.1:8080`, so the real
//! cross-site iframe rules apply. Its page composes the example Form 003 through hujjat's API,
//! opens a signing session, embeds the launch URL, logs the `postMessage` events it receives
//! (accepting only hujjat's origin and the iframe's window), and once signed shows the signed
//! Bundle that its backend fetched through the status API, with hujjat's verification report.
//! Its backend also receives hujjat's webhooks and verifies their signatures.

use crate::app::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use crate::config::Mode;
use crate::iframe::pages::{self, Frame};
use crate::iframe::webhook;
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub const WEBHOOK_PATH: &str = "/webhooks/hujjat";
/// The demo client's webhook secret (development default, like `demo-secret`).
pub const WEBHOOK_SECRET: &str = "whsec_ZGVtby1taXMtd2ViaG9vay1zZWNyZXQtZm9yLWRldg==";

const EXAMPLE: &str = include_str!("form-003.example.json");

#[derive(Clone)]
pub struct Demo {
    hujjat: String,
    origin: String,
    http: reqwest::Client,
    webhooks: Arc<Mutex<Vec<Value>>>,
}

/// Start the demo MIS in development mode (no-op in production).
pub async fn spawn(state: &AppState) -> anyhow::Result<()> {
    if state.config.mode != Mode::Development || !state.config.demo_client {
        return Ok(());
    }
    let addr = state.config.signing.demo_listen;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("  demo MIS:       not started: {addr} is not free ({e})");
            return Ok(());
        }
    };
    println!(
        "  demo MIS:       {}/   (open this: compose, embed the signing iframe, sign with the dev oneID)",
        state.config.signing.demo_origin
    );
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "demo MIS stopped");
        }
    });
    Ok(())
}

pub fn router(state: &AppState) -> Router {
    let demo = Demo {
        hujjat: state.config.public_url.clone(),
        origin: state.config.signing.demo_origin.clone(),
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap_or_default(),
        webhooks: Arc::new(Mutex::new(Vec::new())),
    };
    Router::new()
        .route("/", get(index))
        .route(
            "/demo.js",
            get(|| async { crate::iframe::browser::asset("text/javascript", include_str!("../../static/demo.js")) }),
        )
        .route(
            "/demo.css",
            get(|| async { crate::iframe::browser::asset("text/css", include_str!("../../static/demo.css")) }),
        )
        .route("/api/sessions", post(start_session))
        .route("/api/sessions/{id}/result", get(result))
        .route("/api/webhooks", get(webhooks))
        .route(WEBHOOK_PATH, post(receive_webhook))
        .with_state(demo)
}

#[derive(Template)]
#[template(path = "demo.html")]
struct Page<'a> {
    nonce: &'a str,
    hujjat: &'a str,
}

async fn index(State(d): State<Demo>) -> Response {
    let nonce = pages::nonce();
    let mut r = pages::html(Page { nonce: &nonce, hujjat: &d.hujjat }.render(), &nonce, Frame::Deny);
    // the demo page itself embeds hujjat: frame-src names it
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; connect-src 'self'; frame-src {}; \
         form-action 'self' {}; base-uri 'none'; frame-ancestors 'none'",
        d.hujjat, d.hujjat
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

/// The demo page's own POSTs must come from the demo page (Fetch Metadata / Origin): CSRF.
fn same_origin(d: &Demo, h: &HeaderMap) -> bool {
    match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin",
        None => h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(d.origin.as_str()),
    }
}

async fn call(d: &Demo, rq: reqwest::RequestBuilder) -> Result<(u16, Value), Response> {
    call_loc(d, rq).await.map(|(s, v, _)| (s, v))
}

/// The MIS backend calls hujjat with its client credentials: status, JSON, `Location`.
async fn call_loc(d: &Demo, rq: reqwest::RequestBuilder) -> Result<(u16, Value, String), Response> {
    let res = rq
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .send()
        .await
        .map_err(|_| fail(StatusCode::BAD_GATEWAY, format!("hujjat at {} is not reachable", d.hujjat)))?;
    let status = res.status().as_u16();
    let loc = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let v = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v, loc))
}

/// `POST /api/sessions {locale}`: compose the example Form 003, open a signing session for its
/// attending doctor.
async fn start_session(State(d): State<Demo>, headers: HeaderMap, body: String) -> Response {
    if !same_origin(&d, &headers) {
        return fail(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(json!({}));
    let locale = req.get("locale").and_then(Value::as_str).unwrap_or("uz").to_string();
    let mut form: Value = match serde_json::from_str(EXAMPLE) {
        Ok(v) => v,
        Err(_) => return fail(StatusCode::INTERNAL_SERVER_ERROR, "example form unreadable"),
    };
    if let Some(o) = form.as_object_mut() {
        o.remove("documentId"); // a new document each time
        o.insert("language".into(), json!(locale));
    }
    let attending =
        form.pointer("/responsiblePersons/attendingDoctor").and_then(Value::as_str).unwrap_or("").to_string();
    let role = form["practitioners"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pinfl"] == attending.as_str()))
        .and_then(|p| p["positionText"].as_str())
        .unwrap_or("")
        .to_string();
    let (st, doc, loc) = match call_loc(&d, d.http.post(format!("{}/forms/003/documents", d.hujjat)).json(&form)).await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    if st != 201 {
        return fail(StatusCode::BAD_GATEWAY, format!("composing failed: HTTP {st}: {doc}"));
    }
    let doc_id = loc.trim_start_matches("/documents/").to_string();
    let body = json!({"expectedSigner": {"pinfl": attending}, "role": role, "embedOrigin": d.origin, "locale": locale});
    let (st, s) =
        match call(&d, d.http.post(format!("{}/documents/{doc_id}/signing-sessions", d.hujjat)).json(&body)).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    if st != 201 {
        return fail(StatusCode::BAD_GATEWAY, format!("opening a signing session failed: HTTP {st}: {s}"));
    }
    Json(json!({"documentId": doc_id, "sessionId": s["id"], "launchUrl": s["launchUrl"], "expiresAt": s["expiresAt"],
        "expectedSigner": attending, "hujjatOrigin": d.hujjat}))
    .into_response()
}

/// `GET /api/sessions/{id}/result`: the backend asks the authority (status API), then fetches
/// the signed Bundle and hujjat's verification of it.
async fn result(State(d): State<Demo>, Path(id): Path<String>) -> Response {
    if uuid::Uuid::parse_str(&id).is_err() {
        return fail(StatusCode::BAD_REQUEST, "not a session id");
    }
    let (st, s) = match call(&d, d.http.get(format!("{}/signing-sessions/{id}", d.hujjat))).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if st != 200 {
        return fail(StatusCode::BAD_GATEWAY, format!("status API: HTTP {st}"));
    }
    let mut out = json!({"session": s});
    if s["status"] == "signed" {
        let doc = s["documentId"].as_str().unwrap_or("");
        let v = s["signedVersion"].as_i64().unwrap_or(0);
        let (_, bundle) = match call(&d, d.http.get(format!("{}/documents/{doc}/_history/{v}", d.hujjat))).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let (_, report) = match call(&d, d.http.get(format!("{}/documents/{doc}/$verify", d.hujjat))).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        out["bundle"] = bundle;
        out["verification"] = report;
    }
    Json(out).into_response()
}

async fn webhooks(State(d): State<Demo>) -> Response {
    let list = d.webhooks.lock().map(|l| l.clone()).unwrap_or_default();
    Json(json!({"webhooks": list})).into_response()
}

/// hujjat's webhook: verify (Standard Webhooks), record, answer 204.
async fn receive_webhook(State(d): State<Demo>, headers: HeaderMap, body: String) -> Response {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let ok = webhook::verify(
        WEBHOOK_SECRET,
        &h("webhook-id"),
        ts,
        &body,
        &h("webhook-signature"),
        chrono::Utc::now().timestamp(),
    );
    if !ok {
        return fail(StatusCode::UNAUTHORIZED, "bad webhook signature");
    }
    let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Ok(mut l) = d.webhooks.lock() {
        if !l.iter().any(|e| e["id"] == event["id"]) {
            l.push(json!({"id": event["id"], "type": event["type"], "data": event["data"], "verified": true}));
        }
        let n = l.len();
        if n > 50 {
            l.drain(..n - 50);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
