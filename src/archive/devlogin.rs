//! INTERIM development login for archivists — to be replaced by the shared identity module
//! (issue 4: oneID / OIDC / dev oneID with tower-sessions).
//!
//! Only in development mode with `HUJJAT_IDENTITY_PROVIDER=dev`: `GET /archive/login` asks for a
//! PINFL and a name (what the development oneID would return), `POST /archive/login` starts a
//! session (an `HttpOnly`, `SameSite=Lax` cookie whose SHA-256 is kept in `archive_sessions`, eight
//! hours), `POST /archive/logout` ends it. Roles still come from `role_grants`: logging in gives no
//! access by itself. State-changing requests must come from this origin (`Origin` /
//! `Sec-Fetch-Site`). In any other configuration the login page says that the archive login is not
//! connected yet, and [`current`] finds no session.

use super::access::{self, SessionPerson};
use super::audit::{self, Agent, AuditEntry, Event};
use super::ui::{language, message, page, read_cookie, Tr};
use crate::config::Mode;
use crate::error::AppError;
use crate::web::AppState;
use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;

pub const COOKIE: &str = "hujjat_archive";
const TTL_SECS: i64 = 8 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new().route("/archive/login", get(login_page).post(login)).route("/archive/logout", post(logout))
}

pub fn enabled(st: &AppState) -> bool {
    st.config.mode == Mode::Development && st.config.identity_provider == "dev"
}

/// The person of this request's interim session.
pub async fn current(parts: &Parts, st: &AppState) -> Result<Option<SessionPerson>, AppError> {
    if !enabled(st) {
        return Ok(None);
    }
    match read_cookie(&parts.headers, COOKIE) {
        Some(tok) if !tok.is_empty() => access::session_for(&st.docs.store, tok).await,
        _ => Ok(None),
    }
}

#[derive(Template)]
#[template(path = "archive_login.html")]
struct LoginPage {
    t: &'static Tr,
    user: Option<String>,
    keep: String,
    next: String,
    error: Option<String>,
    pinfl: String,
    name: String,
}

/// Only local paths: no `//host`, no scheme.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/archive".into(),
    }
}

async fn login_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (t, remember) = language(&headers, q.get("lang").map(String::as_str));
    if !enabled(&st) {
        return message(t, StatusCode::SERVICE_UNAVAILABLE, t.login_unavailable);
    }
    render(t, safe_next(q.get("next")), None, String::new(), String::new(), StatusCode::OK, remember)
}

fn render(
    t: &'static Tr,
    next: String,
    error: Option<String>,
    pinfl: String,
    name: String,
    status: StatusCode,
    remember: Option<&'static str>,
) -> Response {
    let nonce = crate::store::clients::random_token(16);
    let keep = format!("{}&", super::search::encode_query(&[("next".to_string(), next.clone())]));
    let p = LoginPage { t, user: None, keep, next, error, pinfl, name };
    match p.render() {
        Ok(html) => page(status, html, &nonce, remember),
        Err(e) => AppError::Internal(e.into()).into_response(),
    }
}

/// Refuse cross-site form posts (login CSRF): `Sec-Fetch-Site` when the browser sends it, else the
/// `Origin` (a request with neither is not from a browser form).
fn same_origin(headers: &HeaderMap) -> bool {
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (h(header::ORIGIN), h(header::HOST)) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, o)| o == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

async fn login(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (t, _) = language(&parts.headers, None);
    if !enabled(&st) {
        return message(t, StatusCode::SERVICE_UNAVAILABLE, t.login_unavailable);
    }
    if !same_origin(&parts.headers) {
        return message(t, StatusCode::FORBIDDEN, "cross-site login refused");
    }
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return AppError::PayloadTooLarge.into_response();
    };
    let form: HashMap<String, String> =
        super::search::decode_query(&String::from_utf8_lossy(&bytes)).into_iter().collect();
    let pinfl = form.get("pinfl").map(|s| s.trim().to_string()).unwrap_or_default();
    let name = form.get("name").map(|s| s.trim().to_string()).unwrap_or_default();
    let next = safe_next(form.get("next"));
    if !access::valid_pinfl(&pinfl)
        || name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(char::is_control)
    {
        let msg = format!("{}: 14 · {}: 1–64", t.pinfl, t.name);
        return render(t, next, Some(msg), pinfl, name, StatusCode::UNPROCESSABLE_ENTITY, None);
    }
    let person = SessionPerson { pinfl: pinfl.clone(), name: name.clone() };
    let token = match access::new_session(&st.docs.store, &person, TTL_SECS).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let e = AuditEntry::new(Event::Login, Agent::person(&pinfl, &name, "archive-user"))
        .detail(serde_json::json!({"provider": "dev (interim archive login)"}));
    if let Err(e) = audit::record(&st.docs.store, e).await {
        return e.into_response();
    }
    let secure = if st.config.public_url.starts_with("https://") { "; Secure" } else { "" };
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) =
        HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={TTL_SECS}{secure}"))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        let (t, _) = language(&headers, None);
        return message(t, StatusCode::FORBIDDEN, "cross-site logout refused");
    }
    if let Some(tok) = read_cookie(&headers, COOKIE) {
        if let Ok(Some(p)) = access::session_for(&st.docs.store, tok).await {
            let e = AuditEntry::new(Event::Logout, Agent::person(&p.pinfl, &p.name, "archive-user"));
            audit::record_failure(&st.docs.store, e).await;
        }
        if let Err(e) = access::end_session(&st.docs.store, tok).await {
            return e.into_response();
        }
    }
    let mut r = Redirect::to("/archive/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("hujjat_archive=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    r
}
