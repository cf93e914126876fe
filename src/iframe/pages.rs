//! Rendering and the security headers of every browser page of this module.
//!
//! Every page gets a strict CSP with a per-response script nonce (no inline handlers, no inline
//! scripts without the nonce, `connect-src`/`form-action` `'self'`, `base-uri 'none'`),
//! `Referrer-Policy: no-referrer` (handles are in URLs), `Cache-Control: no-store` and `nosniff`.
//! Framing: the signing pages send `frame-ancestors <that session's embedOrigin>` and no
//! `X-Frame-Options`; every other page sends `frame-ancestors 'none'` and `X-Frame-Options: DENY`.

use super::i18n::{self, T};
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Who may frame a page.
pub enum Frame {
    Deny,
    /// exactly this origin (a signing session's `embedOrigin`)
    Allow(String),
}

pub fn nonce() -> String {
    crate::store::clients::random_token(18)
}

pub fn csp(nonce: &str, frame: &Frame) -> String {
    let fa = match frame {
        Frame::Deny => "'none'".to_string(),
        Frame::Allow(o) => o.clone(),
    };
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors {fa}"
    )
}

pub fn secure_headers(r: &mut Response, nonce: &str, frame: &Frame) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(nonce, frame)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Frame::Deny = frame {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    } else {
        h.remove(header::X_FRAME_OPTIONS);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // the login popup must keep its opener (COOP would sever window.opener)
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("unsafe-none"));
}

/// An askama render result as an HTML response with the security headers (500 page on failure).
pub fn html(rendered: askama::Result<String>, nonce: &str, frame: Frame) -> Response {
    html_status(StatusCode::OK, rendered, nonce, frame)
}

pub fn html_status(status: StatusCode, rendered: askama::Result<String>, nonce: &str, frame: Frame) -> Response {
    match rendered {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            secure_headers(&mut r, nonce, &frame);
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            let mut r = (StatusCode::INTERNAL_SERVER_ERROR, "internal error; it has been logged").into_response();
            secure_headers(&mut r, nonce, &Frame::Deny);
            r
        }
    }
}

#[derive(Template)]
#[template(path = "iframe_error.html")]
struct ErrorPage<'a> {
    t: &'static T,
    nonce: &'a str,
    heading: &'static str,
    message: &'static str,
    detail: Option<&'a str>,
    code: &'a str,
    event: &'static str,
    embed_origin: &'a str,
    session_id: &'a str,
}

/// A clear, localized refusal page. With an embed origin (the session is known), the page may be
/// framed by that origin and tells the parent (`hujjat:error` / `hujjat:expired`).
pub fn error_page(
    locale: &str,
    status: StatusCode,
    code: &str,
    detail: Option<&str>,
    embed: Option<(&str, &str)>,
) -> Response {
    let t = i18n::texts(locale);
    let expired = matches!(code, "launch_expired" | "session_expired");
    let heading = match code {
        _ if expired => t.expired_title,
        "signer_mismatch"
        | "identity_incomplete"
        | "auth_method_not_allowed"
        | "idp_unavailable"
        | "idp_rejected"
        | "login_cancelled" => t.login_failed_title,
        _ => t.refused_title,
    };
    let nonce = nonce();
    let (origin, sid) = embed.unwrap_or(("", ""));
    let page = ErrorPage {
        t,
        nonce: &nonce,
        heading,
        message: i18n::error_message(locale, code),
        detail,
        code,
        event: if expired { "hujjat:expired" } else { "hujjat:error" },
        embed_origin: origin,
        session_id: sid,
    };
    let frame = if origin.is_empty() { Frame::Deny } else { Frame::Allow(origin.to_string()) };
    html_status(status, page.render(), &nonce, frame)
}
