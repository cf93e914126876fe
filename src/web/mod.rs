//! HTTP: routing, authentication, request decoding and response encoding. No business rules here.

pub mod auth;
pub mod preview;

use crate::compose::questionnaire;
use crate::config::Config;
use crate::documents::{etag, parse_etag, Documents};
use crate::error::{AppError, FHIR_JSON};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use auth::MisClient;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub docs: Documents,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/oauth/token", post(auth::token))
        .route("/forms", get(forms))
        .route("/forms/{form}/schema", get(form_schema))
        .route("/forms/{form}/Questionnaire", get(form_questionnaire))
        .route("/forms/{form}/documents", post(create_document))
        .route("/documents/{id}", get(read_document).put(update_document))
        .route("/documents/{id}/_history/{version}", get(read_version))
        .route("/documents/{id}/preview", get(preview_document))
        .route("/static/preview.css", get(preview_css))
        .route("/trust/ca.pem", get(trust_anchors))
        .route("/$verify", post(verify_any))
        .route("/documents/{id}/$verify", get(verify_document))
        .route("/documents/{id}/signatures", get(document_signatures))
        .merge(crate::submit::routes())
        .merge(crate::iframe::routes(&state))
        .merge(crate::archive::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // the request's source address for audit records written anywhere while serving it
        .layer(axum::middleware::from_fn(crate::archive::audit::request_context))
        .layer(axum::middleware::from_fn(close_after_rejected_body))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(
            // One line per request: method, path (ids only, never bodies), status, latency.
            TraceLayer::new_for_http()
                .make_span_with(
                    |req: &Request| tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
                )
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), ms = latency.as_millis() as u64, "response");
                }),
        )
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

async fn index(State(st): State<AppState>) -> Html<String> {
    let u = &st.config.public_url;
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>hujjat</title><h1>hujjat</h1><ul>\
         <li><a href=\"{u}/forms\">{u}/forms</a> — the forms</li>\
         <li><a href=\"{u}/healthz\">{u}/healthz</a></li></ul>"
    ))
}

async fn healthz(State(st): State<AppState>) -> Result<Response, AppError> {
    st.docs.store.healthy().await?;
    Ok(Json(json!({"status": "ok"})).into_response())
}

/// The value of cookie `name` in the request's `Cookie` headers (the iframe and archive pages'
/// language and login cookies).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn fhir(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

async fn forms(State(st): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = st
        .docs
        .composer
        .forms()
        .iter()
        .map(|f| {
            json!({
                "form": f.form,
                "title": f.title,
                "schema": format!("/forms/{}/schema", f.form),
                "questionnaire": format!("/forms/{}/Questionnaire", f.form),
                "documents": format!("/forms/{}/documents", f.form),
            })
        })
        .collect();
    Json(json!({"forms": list}))
}

fn form_def<'a>(st: &'a AppState, form: &str) -> Result<&'a crate::compose::FormDef, AppError> {
    st.docs.composer.get(form).ok_or_else(|| AppError::NotFound(format!("no form `{form}`; see /forms")))
}

async fn form_schema(State(st): State<AppState>, Path(form): Path<String>) -> Result<Response, AppError> {
    let def = form_def(&st, &form)?;
    let mut r = Json(def.schema.clone()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/schema+json"));
    Ok(r)
}

async fn form_questionnaire(State(st): State<AppState>, Path(form): Path<String>) -> Result<Response, AppError> {
    let def = form_def(&st, &form)?;
    let q = questionnaire::questionnaire(def, &st.config.public_url);
    Ok(fhir(StatusCode::OK, serde_json::to_vec(&q).map_err(|e| AppError::Internal(e.into()))?))
}

/// 415 unless the body is JSON (`application/json` or `application/fhir+json`).
fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && mime != "application/fhir+json" {
        return Err(AppError::UnsupportedMediaType(format!(
            "send Content-Type: application/json (form data) or application/fhir+json (FHIR resources), not `{ct}`"
        )));
    }
    Ok(())
}

/// The body's bytes; 413 over 1 MiB (by Content-Length at once, else while reading).
async fn body_bytes(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, AppError> {
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return Err(AppError::PayloadTooLarge);
        }
    }
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| AppError::PayloadTooLarge)
}

/// Read a JSON object body: 415 unless JSON, 413 over 1 MiB, 400 if malformed.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, AppError> {
    require_json(headers)?;
    let bytes = body_bytes(headers, body).await?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| AppError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(AppError::BadRequest("the body must be a JSON object".into()));
    }
    Ok(v)
}

/// What a create, update or `$amend` answers with: FHIR's `Prefer: return=` (RESTful API,
/// "Managing Return Content"; RFC 7240). The default is the document itself; `minimal` answers
/// with the headers only (`Location`, `ETag`), `OperationOutcome` with a short outcome: an MIS
/// that only needs the id saves the 165 kB Bundle of a Form 003 on every write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnPref {
    Representation,
    Minimal,
    OperationOutcome,
}

impl ReturnPref {
    /// The `return` preference of the request's `Prefer` headers; an unknown or missing value is
    /// the default (RFC 7240 §2: a preference the server does not understand is ignored).
    pub fn of(headers: &HeaderMap) -> (ReturnPref, bool) {
        for v in headers.get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            for token in v.split([',', ';']) {
                let Some((k, val)) = token.split_once('=') else { continue };
                if !k.trim().eq_ignore_ascii_case("return") {
                    continue;
                }
                let val = val.trim().trim_matches('"');
                let pref = match val {
                    _ if val.eq_ignore_ascii_case("minimal") => ReturnPref::Minimal,
                    _ if val.eq_ignore_ascii_case("representation") => ReturnPref::Representation,
                    _ if val.eq_ignore_ascii_case("OperationOutcome") => ReturnPref::OperationOutcome,
                    _ => continue,
                };
                return (pref, true);
            }
        }
        (ReturnPref::Representation, false)
    }

    fn token(self) -> &'static str {
        match self {
            ReturnPref::Representation => "return=representation",
            ReturnPref::Minimal => "return=minimal",
            ReturnPref::OperationOutcome => "return=OperationOutcome",
        }
    }
}

/// The answer to a write of a document version (`location`: a new document).
pub fn document_response(
    status: StatusCode,
    id: &str,
    version: i64,
    bundle: String,
    location: bool,
    headers: &HeaderMap,
) -> Response {
    let (pref, asked) = ReturnPref::of(headers);
    let mut r = match pref {
        ReturnPref::Representation => fhir(status, bundle),
        ReturnPref::Minimal => (status, Body::empty()).into_response(),
        ReturnPref::OperationOutcome => {
            let what = if location { "created" } else { "updated" };
            let oo = json!({
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": format!("document {id} version {version} {what}"),
                }]
            });
            fhir(status, oo.to_string())
        }
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        h.insert(header::ETAG, v);
    }
    if location {
        if let Ok(v) = HeaderValue::from_str(&format!("/documents/{id}")) {
            h.insert(header::LOCATION, v);
        }
    }
    if asked {
        h.insert("preference-applied", HeaderValue::from_static(pref.token()));
    }
    r
}

async fn create_document(
    State(st): State<AppState>,
    client: MisClient,
    Path(form): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    form_def(&st, &form)?;
    let (parts, body) = req.into_parts();
    let input = json_body(&parts.headers, body).await?;
    let s = st.docs.create(&client.0, &form, input).await?;
    Ok(document_response(StatusCode::CREATED, &s.id, s.version, s.bundle, true, &parts.headers))
}

async fn update_document(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let if_match = parts.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    // Check ownership and the precondition before reading the body: a stale writer learns it at once.
    let doc = st.docs.owned(&client.0, &id).await?;
    match if_match.as_deref().map(parse_etag) {
        None => return Err(AppError::PreconditionFailed("If-Match is required to change a document".into())),
        Some(None) => return Err(AppError::PreconditionFailed("If-Match must be a version ETag like W/\"1\"".into())),
        Some(Some(v)) if v != doc.version && doc.state == "draft" => {
            return Err(AppError::PreconditionFailed("Version is mismatch".into()))
        }
        _ => {}
    }
    let input = json_body(&parts.headers, body).await?;
    let s = st.docs.update(&client.0, &id, if_match.as_deref(), input).await?;
    Ok(document_response(StatusCode::OK, &s.id, s.version, s.bundle, false, &parts.headers))
}

async fn read_document(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (doc, v) = st.docs.read(&client.0, &id, None).await?;
    Ok(document_response(StatusCode::OK, &doc.id, v.version, v.bundle, false, &HeaderMap::new()))
}

async fn read_version(
    State(st): State<AppState>,
    client: MisClient,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let n: i64 = version.parse().map_err(|_| AppError::NotFound(format!("no version `{version}`")))?;
    let (doc, v) = st.docs.read(&client.0, &id, Some(n)).await?;
    Ok(document_response(StatusCode::OK, &doc.id, v.version, v.bundle, false, &HeaderMap::new()))
}

async fn preview_document(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let (_doc, v) = st.docs.read(&client.0, &id, None).await?;
    let bundle: Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
    let html = preview::render(&bundle, v.version)?;
    Ok(Html(html).into_response())
}

async fn preview_css() -> Response {
    let mut r = include_str!("../../static/preview.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

async fn trust_anchors(State(st): State<AppState>) -> Response {
    let mut r = st.docs.ca.anchors_pem().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    r
}

#[derive(serde::Deserialize)]
struct VerifyQuery {
    /// `sigT` (default: each signature at its claimed signing time), `now`, or an instant
    at: Option<String>,
}

/// `POST /$verify`: any Bundle (also third-party, also a legacy root `Bundle.signature`) → report.
async fn verify_any(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<VerifyQuery>,
    req: Request,
) -> Result<Response, AppError> {
    let at = crate::sign::parse_at(Some(q.at.as_deref().unwrap_or("sigT")))
        .map_err(|e| AppError::BadRequest(format!("at: {e}")))?;
    let (parts, body) = req.into_parts();
    require_json(&parts.headers)?;
    // the verifier parses the bytes itself, strictly (duplicate keys, unsafe integers)
    let bytes = body_bytes(&parts.headers, body).await?;
    let report = st.docs.verify_bytes(&bytes, at);
    Ok(Json(report).into_response())
}

async fn verify_document(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let report = st.docs.verify_stored(&client.0, &id).await?;
    Ok(Json(report).into_response())
}

async fn document_signatures(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    st.docs.owned(&client.0, &id).await?;
    let sigs = st.docs.store.signatures(&id).await?;
    Ok(Json(json!({"document": id, "signatures": sigs})).into_response())
}

/// An error answered before the request body was read (401, 404, 413, 415, …) leaves the rest of
/// the body unread; hyper then closes the connection. Say so (`Connection: close`) so a keep-alive
/// client does not send its next request into a closing connection.
async fn close_after_rejected_body(req: Request, next: axum::middleware::Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut res = next.run(req).await;
    if has_body && (res.status().is_client_error() || res.status().is_server_error()) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
