//! MIS client authentication: HTTP Basic `client_id:secret` on every call, or a Bearer token from
//! `POST /oauth/token` (`grant_type=client_credentials`, RFC 6749 §4.4).

use super::AppState;
use crate::error::AppError;
use crate::store::clients::Client;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;

/// An authenticated MIS client.
pub struct MisClient(pub Client);

fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| ());
    Some(decoded.and_then(|d| String::from_utf8(d).map_err(|_| ())).and_then(|s| {
        let (id, secret) = s.split_once(':').ok_or(())?;
        Ok((id.to_string(), secret.to_string()))
    }))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string())
}

impl FromRequestParts<AppState> for MisClient {
    type Rejection = AppError;

    /// A client with the `documents` scope (the default); archive and admin clients are read-only
    /// here (`403`), see `archive::access`.
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let c = MisClient::from_client_credentials(parts, st).await?;
        if !c.0.scopes.iter().any(|s| s == "documents") {
            return Err(AppError::Forbidden("this client has no `documents` scope: it cannot use the MIS API".into()));
        }
        Ok(c)
    }
}

impl MisClient {
    /// Any client authenticated by its credentials (Basic or Bearer), whatever its scopes.
    pub async fn from_client_credentials(parts: &Parts, st: &AppState) -> Result<Self, AppError> {
        let unauthorized = || {
            AppError::Unauthorized("send HTTP Basic client_id:secret or a Bearer token from POST /oauth/token".into())
        };
        if let Some(b) = basic(&parts.headers) {
            let (id, secret) = b.map_err(|_| unauthorized())?;
            return match st.docs.store.authenticate_client(&id, &secret).await? {
                Some(c) => Ok(MisClient(c)),
                None => Err(AppError::Unauthorized("unknown client or wrong secret".into())),
            };
        }
        if let Some(tok) = bearer(&parts.headers) {
            return match st.docs.store.client_for_token(&tok).await? {
                Some(c) => Ok(MisClient(c)),
                None => Err(AppError::Unauthorized("the bearer token is unknown or expired".into())),
            };
        }
        Err(unauthorized())
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (status, Json(json!({"error": error, "error_description": description}))).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("static header"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"hujjat\"".parse().expect("static header"));
    }
    r
}

/// `POST /oauth/token`: `application/x-www-form-urlencoded` with `grant_type=client_credentials` and
/// the client's credentials in HTTP Basic or as `client_id` / `client_secret` form fields.
pub async fn token(axum::extract::State(st): axum::extract::State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return oauth_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "body too large");
    };
    let form: Vec<(String, String)> = url_decode_form(&bytes);
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone());
    match get("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            )
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
    let creds = match basic(&parts.headers) {
        Some(Ok(c)) => Some(c),
        Some(Err(())) => None,
        None => get("client_id").zip(get("client_secret")),
    };
    let Some((id, secret)) = creds else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required");
    };
    match st.docs.store.authenticate_client(&id, &secret).await {
        Ok(Some(c)) => match st.docs.store.issue_token(&c.id, st.config.token_ttl_secs).await {
            Ok(t) => {
                let mut r =
                    Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": st.config.token_ttl_secs}))
                        .into_response();
                r.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("static header"));
                r
            }
            Err(e) => e.into_response(),
        },
        Ok(None) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret"),
        Err(e) => e.into_response(),
    }
}

fn url_decode_form(b: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(b);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec =
                |x: &str| percent_encoding::percent_decode_str(&x.replace('+', " ")).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}
