//! The plain browser login: a first-party session holding the logged-in person, for pages of this
//! service that need one (the archive UI). Not tied to a signing session.
//!
//! ```text
//! GET /login?next=/archive ─303─▶ the configured provider (dev oneID / oneID / OIDC)
//!   ─302─▶ GET /oneid/callback?code&state (shared with the signing popup) ─303─▶ next
//! POST /logout (csrf, next) ─▶ "you have logged out"
//! ```
//!
//! - The provider client code and the callback are those of the signing popup ([`Provider`],
//!   [`super::browser::callback`]); the `login_states` row says `purpose = 'browser'` and keeps
//!   `next` (migration 0006).
//! - `next` must be a same-origin path (`/…`, not `//…`, no backslash, no control characters);
//!   anything else is refused with a clear page (no open redirect). It is checked at the start and
//!   again at the callback.
//! - The OAuth `state` is bound to the browser by the tower-sessions session (login CSRF); the
//!   session id is cycled at login (fixation) and at logout.
//! - The session holds [`BrowserLogin`] (PINFL, name, provider, a CSRF token for state-changing
//!   requests such as logout, and when it was last used). It ends after [`IDLE_SECS`] without use
//!   (the session record's own expiry is the same, extended on use by [`current`]).
//! - Logins and logouts are audited (the archive's trail: `login` / `logout`, by PINFL).
//! - Production never offers the development oneID ([`Provider::from_config`] refuses it and its
//!   routes are not mounted); an unknown or unconfigured provider is a clear page.

use super::i18n;
use super::pages::{self, error_page, Frame};
use super::session_store::{DbSessionStore, COOKIE};
use super::Ctx;
use crate::archive::audit::{self, Agent, AuditEntry, Event};
use crate::error::AppError;
use crate::identity::{ct_eq, sha256_hex, Callback, LoginRequest};
use crate::store::Store;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;
use tower_sessions::Session;

/// The login page.
pub const LOGIN_PATH: &str = "/login";
/// The logout endpoint (POST, with the session's CSRF token).
pub const LOGOUT_PATH: &str = "/logout";
/// Where a login without `next` returns.
pub const DEFAULT_NEXT: &str = "/archive";
/// A browser login ends after this long without a request (the session layer's inactivity expiry).
pub const IDLE_SECS: i64 = 30 * 60;
/// How often use extends the session (not on every request: each extension is a write).
const TOUCH_SECS: i64 = 60;
/// Session keys: the pending OAuth state of a browser login, and the login itself.
const STATE_KEY: &str = "browser_login_state";
const LOGIN_KEY: &str = "browser_login";

/// The person logged in through a browser login.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrowserLogin {
    pub pinfl: String,
    pub name: String,
    /// `oneid`, `oidc` or `dev`.
    pub provider: String,
    /// The token state-changing requests of this session carry (logout).
    pub csrf: String,
    /// Unix seconds: logged in, last used.
    pub at: i64,
    pub seen: i64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A same-origin path to return to: `/…` but not `//…` (another host), no backslash (`/\host` is
/// `//host` to browsers), no control characters or spaces, at most 2,000 bytes.
pub fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The login URL of a page (`next` percent-encoded).
pub fn login_url(next: &str) -> String {
    format!("{LOGIN_PATH}?next={}", percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC))
}

/// The language: `?lang=`, the language the archive remembers (`hujjat_lang` cookie),
/// `Accept-Language`, Uzbek.
fn lang_of(headers: &HeaderMap, query: Option<&str>) -> &'static str {
    match query.filter(|l| !l.is_empty()).or_else(|| crate::web::read_cookie(headers, "hujjat_lang")) {
        Some(l) => i18n::normalize(l),
        None => i18n::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())),
    }
}

fn internal(lang: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "browser login");
    error_page(lang, StatusCode::SERVICE_UNAVAILABLE, "internal", None, None)
}

/// Who is logged in on this request. With the session layer (the pages of this module and the
/// archive UI), use extends the session; without it (API routes reading a session cookie), the
/// record is read from the store as it is.
pub async fn current(parts: &Parts, store: &Store) -> Result<Option<BrowserLogin>, AppError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "browser session store");
        AppError::Unavailable("the session store is not reachable".into())
    };
    if let Some(session) = parts.extensions.get::<Session>() {
        let Some(mut login) = session.get::<BrowserLogin>(LOGIN_KEY).await.map_err(|e| unavailable(&e))? else {
            return Ok(None);
        };
        let t = now();
        if t - login.seen > IDLE_SECS {
            let _ = session.remove::<BrowserLogin>(LOGIN_KEY).await;
            return Ok(None);
        }
        if t - login.seen >= TOUCH_SECS {
            login.seen = t;
            session.insert(LOGIN_KEY, &login).await.map_err(|e| unavailable(&e))?;
        }
        return Ok(Some(login));
    }
    let Some(id) = crate::web::read_cookie(&parts.headers, COOKIE).and_then(|v| v.parse::<Id>().ok()) else {
        return Ok(None);
    };
    let Some(record) = DbSessionStore::new(store.clone()).load(&id).await.map_err(|e| unavailable(&e))? else {
        return Ok(None);
    };
    let login = record.data.get(LOGIN_KEY).and_then(|v| serde_json::from_value::<BrowserLogin>(v.clone()).ok());
    Ok(login.filter(|l| now() - l.seen <= IDLE_SECS))
}

/// End every browser login of a person (their archive role was revoked). Matches the stored
/// session JSON (`"pinfl":"…"` of [`BrowserLogin`]); only for a well-formed PINFL.
pub async fn end_sessions_of(conn: &mut sqlx::AnyConnection, pinfl: &str) -> Result<u64, sqlx::Error> {
    if !crate::identity::is_pinfl(pinfl) {
        return Ok(0);
    }
    let r = sqlx::query("DELETE FROM tower_sessions WHERE data LIKE $1")
        .bind(format!("%\"{LOGIN_KEY}\":{{\"pinfl\":\"{pinfl}\"%"))
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
    provider: Option<String>,
}

/// `GET /login?next=/archive[&lang][&provider]`: to the configured identity provider.
pub async fn start(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let next = match q.next.as_deref().filter(|n| !n.is_empty()) {
        None => DEFAULT_NEXT,
        Some(n) if safe_next(n) => n,
        Some(_) => {
            tracing::warn!("browser login with an off-site `next` refused");
            return error_page(lang, StatusCode::BAD_REQUEST, "unsafe_next", None, None);
        }
    };
    let Some(provider) = &ctx.provider else {
        return error_page(lang, StatusCode::SERVICE_UNAVAILABLE, "login_unavailable", None, None);
    };
    if let Some(p) = q.provider.as_deref().filter(|p| !p.is_empty()) {
        if p != provider.name() {
            return error_page(lang, StatusCode::BAD_REQUEST, "unknown_provider", None, None);
        }
    }
    let req = LoginRequest::new(lang);
    let states = ctx.sessions();
    if let Err(e) =
        states.insert_browser_login_state(&sha256_hex(&req.state), next, &req.nonce, &req.pkce_verifier, 600).await
    {
        return internal(lang, e);
    }
    if let Err(e) = session.insert(STATE_KEY, &req.state).await {
        return internal(lang, e);
    }
    match provider.authorize_url(&req).await {
        Ok(url) => {
            let mut r = Redirect::to(&url).into_response();
            pages::secure_headers(&mut r, &pages::nonce(), &Frame::Deny);
            r
        }
        Err(e) => {
            tracing::warn!(code = e.code(), "browser login could not start");
            error_page(lang, StatusCode::BAD_GATEWAY, e.code(), None, None)
        }
    }
}

/// Is this callback the answer to a browser login? (Then [`callback`] handles it; else it is the
/// signing popup's.) The login state says so; without a known state, the session does.
pub async fn owns_callback(ctx: &Ctx, session: &Session, cb: &Callback) -> bool {
    if let Some(state) = cb.state.as_deref().filter(|s| !s.is_empty()) {
        if let Ok(Some((purpose, _))) = ctx.sessions().peek_login_state(&sha256_hex(state)).await {
            return purpose == "browser";
        }
    }
    let mine: Option<String> = session.get(STATE_KEY).await.ok().flatten();
    let popup: Option<String> = session.get("login_state").await.ok().flatten();
    mine.is_some() && popup.is_none()
}

/// `GET /oneid/callback` of a browser login: identity → a fresh session → `next`.
pub async fn callback(ctx: &Ctx, session: &Session, headers: &HeaderMap, cb: &Callback) -> Response {
    let lang = lang_of(headers, None);
    let mine: Option<String> = session.get(STATE_KEY).await.ok().flatten();
    let _ = session.remove::<String>(STATE_KEY).await;
    let Some(state) = cb.state.clone().filter(|s| !s.is_empty()) else {
        let code = if cb.error.is_some() { "login_cancelled" } else { "state_mismatch" };
        return error_page(lang, StatusCode::BAD_REQUEST, code, None, None);
    };
    // the state must belong to this browser (login CSRF)
    match mine {
        Some(m) if ct_eq(&m, &state) => {}
        Some(_) => return error_page(lang, StatusCode::BAD_REQUEST, "state_mismatch", None, None),
        None => {
            let used = matches!(ctx.sessions().peek_login_state(&sha256_hex(&state)).await, Ok(Some((_, true))));
            let code = if used { "state_mismatch" } else { "cookies_required" };
            return error_page(lang, StatusCode::BAD_REQUEST, code, None, None);
        }
    }
    let ls = match ctx.sessions().take_login_state(&sha256_hex(&state)).await {
        Ok(Some(ls)) if ls.purpose == "browser" && ls.signing_session_id.is_none() => ls,
        Ok(_) => return error_page(lang, StatusCode::BAD_REQUEST, "state_mismatch", None, None),
        Err(e) => return internal(lang, e),
    };
    let next = ls.next.filter(|n| safe_next(n)).unwrap_or_else(|| DEFAULT_NEXT.to_string());
    let Some(provider) = &ctx.provider else {
        return error_page(lang, StatusCode::SERVICE_UNAVAILABLE, "login_unavailable", None, None);
    };
    let req = LoginRequest { state, nonce: ls.nonce, pkce_verifier: ls.pkce_verifier, locale: lang.to_string() };
    let who = match provider.complete(cb, &req).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(code = e.code(), "browser login failed");
            let status = if e.code() == "idp_unavailable" { StatusCode::BAD_GATEWAY } else { StatusCode::FORBIDDEN };
            return error_page(lang, status, e.code(), None, None);
        }
    };
    // an access that leaves no trace is refused: the audit record first
    let entry = AuditEntry::new(Event::Login, Agent::person(&who.pinfl, &who.name, "user"))
        .detail(serde_json::json!({"provider": who.provider}));
    if let Err(e) = audit::record(&ctx.app.docs.store, entry).await {
        return internal(lang, e);
    }
    // a new session id at login (session fixation), then the person
    if let Err(e) = session.cycle_id().await {
        return internal(lang, e);
    }
    let t = now();
    let login = BrowserLogin {
        pinfl: who.pinfl,
        name: who.name,
        provider: who.provider,
        csrf: crate::store::clients::random_token(32),
        at: t,
        seen: t,
    };
    if let Err(e) = session.insert(LOGIN_KEY, &login).await {
        return internal(lang, e);
    }
    tracing::info!(provider = %login.provider, "browser login");
    let mut r = Redirect::to(&next).into_response();
    pages::secure_headers(&mut r, &pages::nonce(), &Frame::Deny);
    r
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOut {
    t: &'static i18n::T,
    heading: &'static str,
    again: &'static str,
    login_url: String,
}

/// `POST /logout` (form: `csrf`, optional `next` for the next login): ends the browser login.
pub async fn logout(State(ctx): State<Ctx>, session: Session, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let lang = lang_of(&headers, None);
    let (mut csrf, mut next) = (String::new(), DEFAULT_NEXT.to_string());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "next" if safe_next(&v) => next = v.into_owned(),
            _ => {}
        }
    }
    let login: Option<BrowserLogin> = session.get(LOGIN_KEY).await.ok().flatten();
    if let Some(l) = &login {
        if !ct_eq(&l.csrf, &csrf) {
            tracing::warn!("logout without the right CSRF token refused");
            return error_page(lang, StatusCode::FORBIDDEN, "csrf", None, None);
        }
        if let Err(e) = session.remove::<BrowserLogin>(LOGIN_KEY).await {
            return internal(lang, e);
        }
        // the rest of the session (signing-session bindings) lives on under a new id; an empty one
        // is deleted with its cookie
        if let Err(e) = session.cycle_id().await {
            return internal(lang, e);
        }
        let e = AuditEntry::new(Event::Logout, Agent::person(&l.pinfl, &l.name, "user"));
        audit::record_failure(&ctx.app.docs.store, e).await;
    }
    let (heading, again) = match lang {
        "ru" => ("Вы вышли из системы", "Войти снова"),
        "en" => ("You have logged out", "Log in again"),
        _ => ("Siz tizimdan chiqdingiz", "Qayta kirish"),
    };
    let nonce = pages::nonce();
    let p = LoggedOut { t: i18n::texts(lang), heading, again, login_url: login_url(&next) };
    pages::html(p.render(), &nonce, Frame::Deny)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths() {
        for ok in ["/archive", "/archive?pinfl=1&go=1", "/archive/documents/a-b", "/"] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "javascript:alert(1)",
            "/archive\r\nSet-Cookie: x",
            "/a b",
            "",
        ] {
            assert!(!safe_next(bad), "{bad:?}");
        }
        assert_eq!(login_url("/archive?go=1"), "/login?next=%2Farchive%3Fgo%3D1");
    }
}
