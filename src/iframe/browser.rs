//! The browser side: launch, the signing page, its status, the login popup and its callback, the
//! Sign and Cancel posts. Every refusal is a clear localized page (or, for the page's own
//! `fetch` calls, JSON with the same code and message), never a bare error.

use super::i18n::{self, T};
use super::pages::{self, error_page, Frame};
use super::store::{Launch, SigningSession};
use super::Ctx;
use crate::error::AppError;
use crate::identity::{ct_eq, sha256_hex, Callback, LoginRequest};
use crate::sign::Signer;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use tower_sessions::Session;

pub fn asset(ct: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

fn lang_of(headers: &HeaderMap) -> &'static str {
    i18n::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"))
}

/// A refusal as JSON (for `fetch`) or as a page (for navigations).
fn refuse(headers: &HeaderMap, s: Option<&SigningSession>, status: StatusCode, code: &str) -> Response {
    let locale = s.map(|s| s.locale.as_str()).unwrap_or_else(|| lang_of(headers));
    if wants_json(headers) {
        let mut r = (status, Json(json!({"error": {"code": code, "message": i18n::error_message(locale, code)}})))
            .into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    error_page(locale, status, code, None, s.map(|s| (s.embed_origin.as_str(), s.id.as_str())))
}

fn internal(headers: &HeaderMap, s: Option<&SigningSession>, e: AppError) -> Response {
    match e {
        AppError::Unavailable(_) => refuse(headers, s, StatusCode::SERVICE_UNAVAILABLE, "internal"),
        e => {
            tracing::error!(error = %e, "signing page");
            refuse(headers, s, StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

fn binding_key(sid: &str) -> String {
    format!("b:{sid}")
}

/// `GET /s/launch/{token}`: consume the one-time token, bind the browser, go to the page.
pub async fn launch(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let handle = crate::store::clients::random_token(32);
    let csrf = crate::store::clients::random_token(32);
    let outcome = match ctx.sessions().launch(&sha256_hex(&token), &sha256_hex(&handle), &csrf).await {
        Ok(o) => o,
        Err(e) => return internal(&headers, None, e),
    };
    match outcome {
        Launch::Opened(s) => {
            // offer a cookie binding; cookie-free browsers continue with the handle + CSRF token
            let binding = crate::store::clients::random_token(24);
            if session.insert(&binding_key(&s.id), &binding).await.is_err() {
                tracing::warn!(session = %s.id, "browser session store unavailable; continuing cookie-free");
            }
            tracing::info!(session = %s.id, "signing session opened");
            let mut r = Redirect::to(&format!("/s/{handle}")).into_response();
            pages::secure_headers(&mut r, &pages::nonce(), &Frame::Allow(s.embed_origin.clone()));
            r
        }
        Launch::Used(s) => error_page(&s.locale, StatusCode::GONE, "launch_used", None, Some((&s.embed_origin, &s.id))),
        Launch::Expired(s) => {
            let _ = ctx.refresh(s.clone()).await;
            error_page(&s.locale, StatusCode::GONE, "launch_expired", None, Some((&s.embed_origin, &s.id)))
        }
        Launch::Closed(s) => {
            let code = if s.status == "expired" { "session_expired" } else { "session_closed" };
            error_page(&s.locale, StatusCode::GONE, code, None, Some((&s.embed_origin, &s.id)))
        }
        Launch::Unknown => error_page(lang_of(&headers), StatusCode::NOT_FOUND, "not_found", None, None),
    }
}

/// The session behind a handle, checked against the browser binding; refreshed (expiry).
async fn by_handle(
    ctx: &Ctx,
    session: &Session,
    headers: &HeaderMap,
    handle: &str,
) -> Result<SigningSession, Response> {
    let s = match ctx.sessions().by_handle_hash(&sha256_hex(handle)).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(refuse(headers, None, StatusCode::NOT_FOUND, "not_found")),
        Err(e) => return Err(internal(headers, None, e)),
    };
    let cookie: Option<String> = session.get(&binding_key(&s.id)).await.ok().flatten();
    match (&s.browser_binding, cookie) {
        (None, Some(b)) => {
            // the cookie came back: from now on this session requires it
            if let Err(e) = ctx.sessions().bind_browser(&s.id, &sha256_hex(&b)).await {
                return Err(internal(headers, Some(&s), e));
            }
        }
        (Some(bound), Some(b)) if ct_eq(bound, &sha256_hex(&b)) => {}
        (Some(_), _) => return Err(refuse(headers, Some(&s), StatusCode::FORBIDDEN, "wrong_browser")),
        (None, None) => {} // cookie-free: the handle and the CSRF token carry the session
    }
    ctx.refresh(s).await.map_err(|e| internal(headers, None, e))
}

#[derive(Template)]
#[template(path = "iframe.html")]
struct SignPage<'a> {
    t: &'static T,
    nonce: &'a str,
    s: &'a SigningSession,
    status: &'a str,
    handle: &'a str,
    csrf: &'a str,
    title: String,
    article: String,
    hash_groups: String,
    errors: Vec<(&'static str, &'static str)>,
    signer_name: &'a str,
    signer_pinfl: &'a str,
    masked_expected: String,
}

pub fn mask(pinfl: &str) -> String {
    let n = pinfl.len();
    format!("{}{}", "•".repeat(n.saturating_sub(4)), &pinfl[n.saturating_sub(4)..])
}

/// `GET /s/{handle}`: the signing page (every state; the script shows the current one).
pub async fn page(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Response {
    let s = match by_handle(&ctx, &session, &headers, &handle).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let v = match ctx.app.docs.store.version(&s.document_id, s.document_version).await {
        Ok(Some(v)) => v,
        Ok(None) => return refuse(&headers, Some(&s), StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return internal(&headers, Some(&s), e),
    };
    let bundle: Value = serde_json::from_str(&v.bundle).unwrap_or(Value::Null);
    let preview = match crate::web::preview::render(&bundle, s.document_version) {
        Ok(p) => p,
        Err(e) => return internal(&headers, Some(&s), e),
    };
    // the preview's <article> (the Bundle's own narratives, escaped by the composer)
    let article = match (preview.find("<article"), preview.rfind("</article>")) {
        (Some(a), Some(b)) if b > a => preview[a..b + "</article>".len()].to_string(),
        _ => String::new(),
    };
    let title = bundle.pointer("/entry/0/resource/title").and_then(Value::as_str).unwrap_or("").to_string();
    let hash_groups = s
        .payload_sha256
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let t = i18n::texts(&s.locale);
    let nonce = pages::nonce();
    let errors = i18n::ERROR_CODES.iter().map(|c| (*c, i18n::error_message(&s.locale, c))).collect();
    let p = SignPage {
        t,
        nonce: &nonce,
        s: &s,
        status: s.public_status(),
        handle: &handle,
        csrf: s.csrf_token.as_deref().unwrap_or(""),
        title,
        article,
        hash_groups,
        errors,
        signer_name: s.signer_name.as_deref().unwrap_or(""),
        signer_pinfl: s.signer_pinfl.as_deref().unwrap_or(""),
        masked_expected: mask(&s.expected_pinfl),
    };
    pages::html(p.render(), &nonce, Frame::Allow(s.embed_origin.clone()))
}

fn status_json(s: &SigningSession) -> Value {
    let mut v = json!({"status": s.public_status(), "sessionId": s.id, "documentId": s.document_id, "version": s.document_version});
    if s.status == "authenticated" || s.status == "signing" || s.status == "signed" {
        v["signer"] = json!({"name": s.signer_name, "pinfl": s.signer_pinfl});
    }
    if let Some(c) = &s.error_code {
        v["error"] = json!({"code": c, "message": i18n::error_message(&s.locale, c)});
    }
    if let Some(n) = s.signed_version {
        v["signedVersion"] = json!(n);
    }
    v
}

/// `GET /s/{handle}/status`: what the page polls.
pub async fn status(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Response {
    let s = match by_handle(&ctx, &session, &headers, &handle).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if s.status == "authenticated" {
        // the login happened (in the popup): a new browser-session id for the iframe too
        let k = format!("a:{}", s.id);
        let bound = session.get::<String>(&binding_key(&s.id)).await.ok().flatten().is_some();
        if bound && session.get::<bool>(&k).await.ok().flatten().is_none() {
            let _ = session.cycle_id().await;
            let _ = session.insert(&k, true).await;
        }
    }
    let mut r = Json(status_json(&s)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /s/{handle}/login?csrf=…`: opened by the page in a popup (top level, first party).
pub async fn login(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = match ctx.sessions().by_handle_hash(&sha256_hex(&handle)).await {
        Ok(Some(s)) => s,
        Ok(None) => return error_page(lang_of(&headers), StatusCode::NOT_FOUND, "not_found", None, None),
        Err(e) => return internal(&headers, None, e),
    };
    let token = q.get("csrf").map(String::as_str).unwrap_or("");
    if !s.csrf_token.as_deref().is_some_and(|c| ct_eq(c, token)) {
        return error_page(&s.locale, StatusCode::FORBIDDEN, "csrf", None, None);
    }
    let s = match ctx.refresh(s).await {
        Ok(s) => s,
        Err(e) => return internal(&headers, None, e),
    };
    match s.status.as_str() {
        "opened" | "authenticated" => {}
        "expired" => return error_page(&s.locale, StatusCode::GONE, "session_expired", None, None),
        _ => return error_page(&s.locale, StatusCode::GONE, "session_closed", None, None),
    }
    let Some(provider) = &ctx.provider else {
        return error_page(&s.locale, StatusCode::SERVICE_UNAVAILABLE, "idp_unavailable", None, None);
    };
    let req = LoginRequest::new(&s.locale);
    if let Err(e) =
        ctx.sessions().insert_login_state(&sha256_hex(&req.state), &s.id, &req.nonce, &req.pkce_verifier, 600).await
    {
        return internal(&headers, None, e);
    }
    if session.insert("login_state", &req.state).await.is_err() {
        return error_page(&s.locale, StatusCode::SERVICE_UNAVAILABLE, "internal", None, None);
    }
    match provider.authorize_url(&req).await {
        Ok(url) => {
            let mut r = Redirect::to(&url).into_response();
            pages::secure_headers(&mut r, &pages::nonce(), &Frame::Deny);
            r
        }
        Err(e) => {
            tracing::warn!(session = %s.id, code = e.code(), "login could not start");
            error_page(&s.locale, StatusCode::BAD_GATEWAY, e.code(), None, None)
        }
    }
}

#[derive(Template)]
#[template(path = "oneid_popup.html")]
struct PopupPage<'a> {
    t: &'static T,
    nonce: &'a str,
    ok: bool,
    heading: &'a str,
    message: &'a str,
    detail: &'a str,
    code: &'a str,
}

fn popup(locale: &str, status: StatusCode, ok: bool, code: &str, detail: &str) -> Response {
    let t = i18n::texts(locale);
    let nonce = pages::nonce();
    let (heading, message) = if ok {
        (t.login_done_title, t.login_done_text)
    } else {
        (t.login_failed_title, i18n::error_message(locale, code))
    };
    let p = PopupPage { t, nonce: &nonce, ok, heading, message, detail, code };
    pages::html_status(status, p.render(), &nonce, Frame::Deny)
}

/// `GET /oneid/callback?code&state[&iss]` (or `?error=…`): in the popup.
pub async fn callback(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    // a plain browser login (`GET /login`) shares this callback; its state is kept apart
    if super::login::owns_callback(&ctx, &session, &cb).await {
        return super::login::callback(&ctx, &session, &headers, &cb).await;
    }
    let lang = lang_of(&headers);
    let Some(state) = cb.state.clone().filter(|s| !s.is_empty()) else {
        let code = if cb.error.is_some() { "login_cancelled" } else { "state_mismatch" };
        return popup(lang, StatusCode::BAD_REQUEST, false, code, "");
    };
    // the state must belong to this browser (the popup's first-party session): login CSRF
    let mine: Option<String> = session.get("login_state").await.ok().flatten();
    match mine {
        Some(m) if ct_eq(&m, &state) => {}
        Some(_) => return popup(lang, StatusCode::BAD_REQUEST, false, "state_mismatch", ""),
        None => return popup(lang, StatusCode::BAD_REQUEST, false, "cookies_required", ""),
    }
    let _ = session.remove::<String>("login_state").await;
    let (sid, nonce, verifier) = match ctx.sessions().take_login_state(&sha256_hex(&state)).await {
        Ok(Some(l)) if l.purpose == "signing" && l.signing_session_id.is_some() => {
            (l.signing_session_id.unwrap_or_default(), l.nonce, l.pkce_verifier)
        }
        Ok(_) => return popup(lang, StatusCode::BAD_REQUEST, false, "state_mismatch", ""),
        Err(e) => return internal(&headers, None, e),
    };
    let s = match ctx.sessions().get(&sid).await {
        Ok(Some(s)) => s,
        _ => return popup(lang, StatusCode::NOT_FOUND, false, "not_found", ""),
    };
    let s = match ctx.refresh(s).await {
        Ok(s) => s,
        Err(e) => return internal(&headers, None, e),
    };
    let locale = s.locale.clone();
    if s.status == "expired" {
        return popup(&locale, StatusCode::GONE, false, "session_expired", "");
    }
    if s.status != "opened" && s.status != "authenticated" {
        return popup(&locale, StatusCode::GONE, false, "session_closed", "");
    }
    let Some(provider) = &ctx.provider else {
        return popup(&locale, StatusCode::SERVICE_UNAVAILABLE, false, "idp_unavailable", "");
    };
    let req = LoginRequest { state, nonce, pkce_verifier: verifier, locale: locale.clone() };
    let who = match provider.complete(&cb, &req).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(session = %s.id, code = e.code(), "login failed");
            let _ = ctx.sessions().set_error(&s.id, e.code()).await;
            let status = if e.code() == "idp_unavailable" { StatusCode::BAD_GATEWAY } else { StatusCode::FORBIDDEN };
            return popup(&locale, status, false, e.code(), "");
        }
    };
    if who.pinfl != s.expected_pinfl {
        tracing::warn!(session = %s.id, "signer mismatch: the practitioner who logged in is not the expected signer");
        if let Ok(true) = ctx.sessions().mismatch(&s.id, &who).await {
            let _ = ctx.notify(&s.id).await;
        }
        let t = i18n::texts(&locale);
        let detail = format!("{}: {} · {}: {}", t.pinfl, who.pinfl, t.expected_signer, mask(&s.expected_pinfl));
        return popup(&locale, StatusCode::FORBIDDEN, false, "signer_mismatch", &detail);
    }
    match ctx.sessions().authenticated(&s.id, &who).await {
        Ok(true) => {}
        Ok(false) => return popup(&locale, StatusCode::GONE, false, "session_closed", ""),
        Err(e) => return internal(&headers, None, e),
    }
    // a new browser-session id at login (session fixation)
    let _ = session.cycle_id().await;
    tracing::info!(session = %s.id, provider = %who.provider, "practitioner authenticated");
    popup(&locale, StatusCode::OK, true, "", &who.name)
}

/// The fields of the page's forms (`application/x-www-form-urlencoded`; anything else is empty).
#[derive(Default)]
pub struct SignForm {
    csrf: String,
    version: Option<String>,
    sha256: Option<String>,
    consent: Option<String>,
}

impl SignForm {
    fn parse(body: &[u8]) -> SignForm {
        let mut f = SignForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = v.into_owned(),
                "version" => f.version = Some(v.into_owned()),
                "sha256" => f.sha256 = Some(v.into_owned()),
                "consent" => f.consent = Some(v.into_owned()),
                _ => {}
            }
        }
        f
    }
}

async fn checked(
    ctx: &Ctx,
    session: &Session,
    headers: &HeaderMap,
    handle: &str,
    csrf: &str,
) -> Result<SigningSession, Response> {
    // CSRF first: a cross-site post learns nothing about the session
    let s = match ctx.sessions().by_handle_hash(&sha256_hex(handle)).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(refuse(headers, None, StatusCode::NOT_FOUND, "not_found")),
        Err(e) => return Err(internal(headers, None, e)),
    };
    if !s.csrf_token.as_deref().is_some_and(|c| ct_eq(c, csrf)) {
        tracing::warn!(session = %s.id, "state-changing request without the right CSRF token refused");
        return Err(refuse(headers, None, StatusCode::FORBIDDEN, "csrf"));
    }
    by_handle(ctx, session, headers, handle).await
}

fn done(headers: &HeaderMap, handle: &str, s: &SigningSession) -> Response {
    if wants_json(headers) {
        let mut r = Json(status_json(s)).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let mut r = Redirect::to(&format!("/s/{handle}")).into_response();
    pages::secure_headers(&mut r, &pages::nonce(), &Frame::Allow(s.embed_origin.clone()));
    r
}

/// `POST /s/{handle}/sign`: sign the version shown, as the authenticated practitioner.
pub async fn sign(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let f = SignForm::parse(&body);
    let s = match checked(&ctx, &session, &headers, &handle, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match s.status.as_str() {
        "authenticated" => {}
        "opened" => return refuse(&headers, Some(&s), StatusCode::CONFLICT, "not_authenticated"),
        "expired" => return refuse(&headers, Some(&s), StatusCode::GONE, "session_expired"),
        _ => return refuse(&headers, Some(&s), StatusCode::CONFLICT, "session_closed"),
    }
    if !matches!(f.consent.as_deref(), Some("on" | "yes" | "true" | "1")) {
        return refuse(&headers, Some(&s), StatusCode::BAD_REQUEST, "consent_required");
    }
    let version_ok = f.version.as_deref().and_then(|v| v.parse::<i64>().ok()) == Some(s.document_version);
    let hash_ok =
        f.sha256.as_deref().is_some_and(|h| ct_eq(&h.replace(' ', "").to_ascii_lowercase(), &s.payload_sha256));
    if !version_ok || !hash_ok {
        return refuse(&headers, Some(&s), StatusCode::CONFLICT, "document_changed");
    }
    let (Some(pinfl), Some(name)) = (s.signer_pinfl.clone(), s.signer_name.clone()) else {
        return refuse(&headers, Some(&s), StatusCode::CONFLICT, "not_authenticated");
    };
    if pinfl != s.expected_pinfl {
        return refuse(&headers, Some(&s), StatusCode::FORBIDDEN, "signer_mismatch");
    }
    // claim the session: of two clicks (or two nodes) exactly one signs
    match ctx.sessions().transition(&s.id, &["authenticated"], "signing", None).await {
        Ok(true) => {}
        Ok(false) => return refuse(&headers, Some(&s), StatusCode::CONFLICT, "session_closed"),
        Err(e) => return internal(&headers, Some(&s), e),
    }
    let signer = Signer { pinfl, name, role_display: s.role.clone() };
    match ctx.app.docs.sign(&s.document_id, s.document_version, &signer).await {
        Ok(stored) => {
            if let Err(e) = ctx.sessions().signed(&s.id, stored.version).await {
                return internal(&headers, Some(&s), e);
            }
            tracing::info!(session = %s.id, document = %s.document_id, version = stored.version, "signed in the iframe");
            let _ = ctx.notify(&s.id).await;
            let now = ctx.sessions().get(&s.id).await.ok().flatten().unwrap_or(s);
            done(&headers, &handle, &now)
        }
        Err(e) => {
            let code = match &e {
                AppError::PreconditionFailed(_) => Some("document_changed"),
                AppError::Forbidden(_) | AppError::Conflict(_) => Some("not_signable"),
                _ => None,
            };
            match code {
                Some(code) => {
                    tracing::warn!(session = %s.id, code, "signing refused");
                    let _ = ctx.finish(&s, &["signing"], "failed", Some(code)).await;
                    let status = if code == "not_signable" { StatusCode::FORBIDDEN } else { StatusCode::CONFLICT };
                    refuse(&headers, Some(&s), status, code)
                }
                None => {
                    // transient: let the practitioner try again
                    let _ = ctx.sessions().transition(&s.id, &["signing"], "authenticated", None).await;
                    internal(&headers, Some(&s), e)
                }
            }
        }
    }
}

/// `POST /s/{handle}/cancel`: the practitioner declines.
pub async fn cancel(
    State(ctx): State<Ctx>,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let f = SignForm::parse(&body);
    let s = match checked(&ctx, &session, &headers, &handle, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ctx.finish(&s, &["opened", "authenticated"], "cancelled", None).await {
        Ok(true) => {}
        Ok(false) => return refuse(&headers, Some(&s), StatusCode::CONFLICT, "session_closed"),
        Err(e) => return internal(&headers, Some(&s), e),
    }
    let now = ctx.sessions().get(&s.id).await.ok().flatten().unwrap_or(s);
    done(&headers, &handle, &now)
}
