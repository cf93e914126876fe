//! The development oneID: served by hujjat itself in development mode, on one path, speaking the
//! oneID dialect exactly as the client in [`super::oneid`] expects it (so that client runs end to
//! end): `GET ?response_type=one_code…` shows a picker of test practitioners (or, for scripts,
//! `&dev_user=<key>` skips it), then `302 redirect_uri?code&state`; `POST grant_type=…`
//! answers `one_authorization_code`, `one_access_token_identify` and `one_log_out`. It enforces the
//! client id and secret, an exact `redirect_uri`, single-use codes (600 s) and tokens (3600 s), so
//! the error paths of the client are real. State lives in memory: this exists only in development.

use super::oneid::Secret;
use crate::iframe::i18n::{self, T};
use crate::iframe::pages;
use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const PATH: &str = "/dev/oneid/sso/oauth/Authorization.do";
pub const CLIENT_ID: &str = "hujjat-dev";
pub const CLIENT_SECRET: &str = "dev-oneid-secret";

/// A test practitioner: key, label, and the user-info answer oneID would give.
pub struct Fixture {
    pub key: &'static str,
    pub label: &'static str,
    pub info: fn() -> Value,
}

/// Test practitioners: those of the example Form 003 (the demo's signers) in both field spellings
/// and with the variants public integrations show, plus one who is not in the document and one
/// answer oneID marks as failed.
pub const FIXTURES: &[Fixture] = &[
    Fixture {
        key: "rasulov",
        label: "RASULOV BEKZOD BAXODIROVICH · 31211831270024 · E-IMZO (old field names)",
        info: || {
            json!({"pin": "31211831270024", "user_id": "b.rasulov", "user_type": "I", "valid": "true",
                "auth_method": "PKCSMETHOD", "sur_name": "RASULOV", "first_name": "BEKZOD", "mid_name": "BAXODIROVICH",
                "full_name": "RASULOV BEKZOD BAXODIROVICH", "birth_date": "1983-11-12", "gd": "1", "natn": "UZBEK",
                "ctzn": "UZBEKISTAN", "pport_no": "AA1234567", "mob_phone_no": "998901234567", "email": "",
                "legal_info": [], "ret_cd": "0"})
        },
    },
    Fixture {
        key: "qodirov",
        label: "QODIROV ANVAR AKMALOVICH · 30504721260051 · Mobile-ID (new field names)",
        info: || {
            json!({"pin": "30504721260051", "user_id": "a.qodirov", "user_type": "I", "valid": true,
                "valid_methods": [], "auth_method": "MOBILEMETHOD", "surname": "QODIROV", "firstname": "ANVAR",
                "lastname": "AKMALOVICH", "pspNumb": "AB7654321", "phone": "998907654321", "address": "TOSHKENT",
                "birth_place_id": 1726, "nationality_id": 44, "citizenship_id": 182, "legal_info": null, "ret_cd": "0"})
        },
    },
    Fixture {
        key: "yusupova",
        label: "YUSUPOVA NILUFAR NODIROVNA · 41909751260087 · E-IMZO of a legal entity",
        info: || {
            json!({"pin": "41909751260087", "user_id": "n.yusupova", "user_type": "I", "valid": "true",
                "auth_method": "LEPKCSMETHOD", "pkcs_legal_tin": "301234567", "sur_name": "YUSUPOVA",
                "first_name": "NILUFAR", "mid_name": "NODIROVNA",
                "legal_info": [{"is_basic": true, "tin": "301234567", "acron_UZ": "KLINIKA", "le_tin": "301234567", "le_name": "1-SON SHAHAR KLINIK SHIFOXONASI"}],
                "ret_cd": "0"})
        },
    },
    Fixture {
        key: "ergashev",
        label: "ERGASHEV JAHONGIR OLIMOVICH · 32801871270013 · password, not validated",
        info: || {
            json!({"pin": "32801871270013", "user_type": "I", "valid": "false", "auth_method": "LOGINPASSMETHOD",
                "sur_name": "ERGASHEV", "first_name": "JAHONGIR", "mid_name": "OLIMOVICH", "legal_info": null, "ret_cd": "0"})
        },
    },
    Fixture {
        key: "karimova",
        label: "KARIMOVA GULNOZA RUSTAMOVNA · 40306961270106 · full_name only",
        info: || json!({"pin": "40306961270106", "full_name": "KARIMOVA GULNOZA RUSTAMOVNA", "auth_method": "QR", "ret_cd": "0"}),
    },
    Fixture {
        key: "stranger",
        label: "BEGONA SHAXS · 12345678901234 · not in the demo document",
        info: || {
            json!({"pin": "12345678901234", "sur_name": "BEGONA", "first_name": "SHAXS", "auth_method": "PKCSMETHOD",
                "valid": "true", "ret_cd": "0"})
        },
    },
    Fixture {
        key: "failed",
        label: "ret_cd 1 · oneID reports a failure",
        info: || json!({"ret_cd": "1", "pin": "", "sur_name": ""}),
    },
];

struct Pending {
    redirect_uri: String,
    state: String,
    lang: String,
    expires: Instant,
}

struct Code {
    user: Value,
    redirect_uri: String,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, (Value, Instant)>,
}

/// The development oneID of one service instance.
#[derive(Clone)]
pub struct DevOneId {
    redirect_uri: String,
    secret: Secret,
    inner: Arc<Mutex<Inner>>,
}

impl DevOneId {
    pub fn new(public_url: &str) -> DevOneId {
        DevOneId {
            redirect_uri: format!("{public_url}{}", super::CALLBACK_PATH),
            secret: Secret(CLIENT_SECRET.into()),
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        g.pending.retain(|_, p| p.expires > now);
        g.codes.retain(|_, c| c.expires > now);
        g.tokens.retain(|_, t| t.1 > now);
        g
    }

    fn issue_code(&self, user: Value, redirect_uri: &str) -> String {
        let code = uuid::Uuid::new_v4().to_string();
        self.lock().codes.insert(
            code.clone(),
            Code { user, redirect_uri: redirect_uri.into(), expires: Instant::now() + Duration::from_secs(600) },
        );
        code
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>(dev: DevOneId) -> Router<S> {
    Router::new().route(PATH, get(authorize).post(grant)).with_state(dev)
}

#[derive(Template)]
#[template(path = "oneid_dev.html")]
struct Picker<'a> {
    t: &'static T,
    request: &'a str,
    users: Vec<(&'static str, &'static str)>,
}

fn form_pairs(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

fn redirect_with(uri: &str, code: &str, state: &str) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut r = Redirect::to(&format!("{uri}{sep}code={}&state={}", enc(code), enc(state))).into_response();
    *r.status_mut() = StatusCode::FOUND;
    r
}

/// `GET …Authorization.do?response_type=one_code&client_id&redirect_uri&scope&state`
async fn authorize(State(dev): State<DevOneId>, Query(q): Query<HashMap<String, String>>) -> Response {
    let lang = i18n::normalize(q.get("lang").map(String::as_str).unwrap_or("uz"));
    let refuse = |msg: &str| pages::error_page(lang, StatusCode::BAD_REQUEST, "bad_request", Some(msg), None);
    if q.get("response_type").map(String::as_str) != Some("one_code") {
        return refuse("response_type must be one_code");
    }
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return refuse("unknown client_id");
    }
    // never redirect to an unregistered URI: show the error here instead
    if q.get("redirect_uri") != Some(&dev.redirect_uri) {
        return refuse("redirect_uri is not the registered one");
    }
    let state = q.get("state").cloned().unwrap_or_default();
    if let Some(key) = q.get("dev_user") {
        // scripted login (tests): no picker
        return match FIXTURES.iter().find(|f| f.key == key) {
            Some(f) => {
                let code = dev.issue_code((f.info)(), &dev.redirect_uri);
                redirect_with(&dev.redirect_uri, &code, &state)
            }
            None => refuse("unknown dev_user"),
        };
    }
    let request = crate::store::clients::random_token(24);
    dev.lock().pending.insert(
        request.clone(),
        Pending {
            redirect_uri: dev.redirect_uri.clone(),
            state,
            lang: lang.into(),
            expires: Instant::now() + Duration::from_secs(600),
        },
    );
    let nonce = pages::nonce();
    let page =
        Picker { t: i18n::texts(lang), request: &request, users: FIXTURES.iter().map(|f| (f.key, f.label)).collect() };
    pages::html(page.render(), &nonce, pages::Frame::Deny)
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error, "ret_cd": "1"}))).into_response()
}

/// `POST …Authorization.do`: the picker's answer, or one of the three grants (form body or query).
async fn grant(State(dev): State<DevOneId>, RawQuery(query): RawQuery, headers: HeaderMap, body: String) -> Response {
    let mut p = form_pairs(query.as_deref().unwrap_or(""));
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/x-www-form-urlencoded") {
        p.extend(form_pairs(&body));
    }
    let Some(grant) = p.get("grant_type").cloned() else {
        return picked(&dev, &p);
    };
    let client_ok = p.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && bool::from(
            p.get("client_secret").map(String::as_str).unwrap_or("").as_bytes().ct_eq(dev.secret.0.as_bytes()),
        );
    if !client_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match grant.as_str() {
        "one_authorization_code" => {
            let code = p.get("code").cloned().unwrap_or_default();
            let Some(c) = dev.lock().codes.remove(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if p.get("redirect_uri") != Some(&c.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let token = uuid::Uuid::new_v4().to_string();
            let mut user = c.user;
            if let Some(o) = user.as_object_mut() {
                o.insert("sess_id".into(), json!(token)); // "It is same with access token"
            }
            dev.lock().tokens.insert(token.clone(), (user, Instant::now() + Duration::from_secs(3600)));
            Json(json!({"access_token": token, "refresh_token": uuid::Uuid::new_v4().to_string(),
                "token_type": "Bearer", "expires_in": 3600, "scope": CLIENT_ID}))
            .into_response()
        }
        "one_access_token_identify" => {
            let tok = p.get("access_token").cloned().unwrap_or_default();
            match dev.lock().tokens.get(&tok) {
                Some((user, _)) => Json(user.clone()).into_response(),
                None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token"),
            }
        }
        "one_log_out" => {
            let tok = p.get("access_token").cloned().unwrap_or_default();
            dev.lock().tokens.remove(&tok);
            Json(json!({"ret_cd": "0"})).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// The picker form: a fixture (`user`) or a person typed in (`pinfl`, names).
fn picked(dev: &DevOneId, p: &HashMap<String, String>) -> Response {
    let request = p.get("request").cloned().unwrap_or_default();
    // the request id is the form's CSRF token: unguessable, bound to one authorization request
    let Some(pending) = dev.lock().pending.remove(&request) else {
        return pages::error_page("uz", StatusCode::BAD_REQUEST, "state_mismatch", None, None);
    };
    let user = match p.get("user").map(String::as_str) {
        Some("custom") | None => {
            let f = |k: &str| p.get(k).map(|s| s.trim().to_uppercase()).unwrap_or_default();
            json!({"pin": p.get("pinfl").map(|s| s.trim()).unwrap_or(""), "sur_name": f("surname"),
                "first_name": f("given"), "mid_name": f("patronymic"), "auth_method": "PKCSMETHOD",
                "valid": "true", "ret_cd": "0"})
        }
        Some(key) => match FIXTURES.iter().find(|f| f.key == key) {
            Some(f) => (f.info)(),
            None => return pages::error_page(&pending.lang, StatusCode::BAD_REQUEST, "bad_request", None, None),
        },
    };
    let code = dev.issue_code(user, &pending.redirect_uri);
    redirect_with(&pending.redirect_uri, &code, &pending.state)
}

/// Convenience for tests and pages: the picker's `Page` wrapper is not needed elsewhere.
pub fn fixture(key: &str) -> Option<Value> {
    FIXTURES.iter().find(|f| f.key == key).map(|f| (f.info)())
}
