//! The plain browser login of the identity module (`GET /login?next=…` → the configured provider
//! → the shared callback → a first-party session → `next`; `POST /logout` with CSRF), as the
//! archive UI uses it: no open redirect, login CSRF (the state is bound to the browser, single
//! use), session id cycled at login, idle expiry, clear pages for an unknown provider, and no
//! development oneID in production.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    get_at(&app.base, path, cookie).await
}

async fn get_at(base: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut b = http().get(format!("{base}{path}")).header("accept-language", "en");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.send().await.unwrap()
}

/// A refusal page of the identity module: status, the error code shown, no redirect.
async fn refusal(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status);
    assert!(r.headers().get("location").is_none(), "a refusal is a page, never a redirect");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("<code id=\"code\">{code}</code>")), "{code}: {html}");
    html
}

#[tokio::test]
async fn login_returns_to_next_and_never_off_site() {
    let app = TestApp::spawn().await;
    grant(&app, "30000000000001", "archivist", &[]).await;

    // an archive page without a session → /login?next=that page → the development oneID
    let r = get(&app, "/archive?pinfl=1&go=1", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Farchive%3Fpinfl%3D1%26go%3D1");
    let (cookie, authorize) = start_login(&app, "/archive?pinfl=1&go=1").await;
    assert!(authorize.starts_with(&app.url("/dev/oneid/sso/oauth/Authorization.do?response_type=one_code")));
    assert!(authorize.contains(&format!("redirect_uri={}", urlencode(&app.url("/oneid/callback")))));
    // the login state: a browser login, no signing session, `next` kept on the server
    let row = sqlx::query("SELECT purpose, signing_session_id, next_path FROM login_states")
        .fetch_one(&app.state.docs.store.pool)
        .await
        .unwrap();
    use sqlx::Row;
    assert_eq!(row.get::<String, _>("purpose"), "browser");
    assert_eq!(row.get::<Option<String>, _>("signing_session_id"), None);
    assert_eq!(row.get::<String, _>("next_path"), "/archive?pinfl=1&go=1");

    let callback = dev_oneid_pick(&authorize, "30000000000001", "Arxivchi Birinchi").await;
    assert!(callback.starts_with(&app.url("/oneid/callback?code=")));
    // the answer in another browser (no cookie, or another session) is refused: login CSRF
    let other = start_login(&app, "/archive").await.0;
    refusal(get(&app, callback.trim_start_matches(&app.base), Some(&other)).await, S::BAD_REQUEST, "state_mismatch")
        .await;
    let r = http().get(&callback).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/archive?pinfl=1&go=1", "back to where one was going");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["__Host-hujjat-session=", "Secure", "HttpOnly", "Path=/", "Partitioned", "Max-Age=1800"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    let session = session_cookie(&r).unwrap();
    assert_ne!(session, cookie, "the session id is cycled at login");
    let r = get(&app, "/archive?pinfl=1&go=1", Some(&session)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("ARXIVCHI BIRINCHI (archivist)"));
    // the pre-login session id is no key to the login (fixation)
    assert_eq!(get(&app, "/archive", Some(&cookie)).await.status(), StatusCode::SEE_OTHER);
    // the answer is single use
    refusal(http().get(&callback).header("cookie", &session).send().await.unwrap(), S::BAD_REQUEST, "state_mismatch")
        .await;

    // off-site `next`: refused with a clear page, nothing stored, no redirect anywhere
    for bad in [
        "//evil.example/archive",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/archive\r\nLocation: https://evil.example",
    ] {
        let html =
            refusal(get(&app, &hujjat::iframe::login::login_url(bad), None).await, S::BAD_REQUEST, "unsafe_next").await;
        assert!(html.contains("you can only return to a page of this site"), "{bad}");
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_states WHERE next_path LIKE '%evil%'")
        .fetch_one(&app.state.docs.store.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // a cancelled login: a clear page
    let (cookie, authorize) = start_login(&app, "/archive").await;
    let state = authorize.split("state=").nth(1).unwrap().split('&').next().unwrap();
    refusal(
        get(&app, &format!("/oneid/callback?error=access_denied&state={state}"), Some(&cookie)).await,
        S::FORBIDDEN,
        "login_cancelled",
    )
    .await;

    // the dev oneID's scripted shortcut (`dev_user=`) with a test practitioner: same flow
    let (cookie, authorize) = start_login(&app, "/archive").await;
    let r = http().get(format!("{authorize}&dev_user=yusupova")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = http().get(r.headers()["location"].to_str().unwrap()).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let yusupova = session_cookie(&r).unwrap();
    let r = get(&app, "/archive?lang=en", Some(&yusupova)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "logged in, but no archive role");
    assert!(r.text().await.unwrap().contains("YUSUPOVA NILUFAR NODIROVNA"));
}

type S = StatusCode;

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_sessions_expire_when_idle() {
    let app = TestApp::spawn().await;
    grant(&app, "30000000000001", "archivist", &[]).await;
    let cookie = login(&app, "30000000000001", "Arxivchi Birinchi").await;
    let html = get(&app, "/archive", Some(&cookie)).await.text().await.unwrap();
    let csrf = logout_csrf(&html);
    assert!(csrf.len() >= 32);

    // logout without the token, with a wrong one, cross-site: refused, the session lives on
    for body in [vec![], vec![("csrf", "x".repeat(43))], vec![("csrf", String::new())]] {
        let r = http()
            .post(app.url("/logout"))
            .header("cookie", &cookie)
            .header("origin", "https://evil.example")
            .form(&body)
            .send()
            .await
            .unwrap();
        refusal(r, S::FORBIDDEN, "csrf").await;
        assert_eq!(get(&app, "/archive", Some(&cookie)).await.status(), StatusCode::OK);
    }
    assert_eq!(
        req(&app, Method::GET, "/logout", &As::Session(cookie.clone())).send().await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "logout is a POST"
    );
    // with it: the session ends, the cookie is removed, a page offers to log in again
    let r = http()
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("accept-language", "ru")
        .form(&[("csrf", csrf.as_str()), ("next", "/archive")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Вы вышли из системы") && html.contains("href=\"/login?next=%2Farchive\""));
    assert_eq!(get(&app, "/archive", Some(&cookie)).await.status(), StatusCode::SEE_OTHER);
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions").fetch_one(&app.state.docs.store.pool).await.unwrap();
    assert_eq!(n, 0, "the session record is gone");
    // login and logout are in the audit trail
    let subtypes: Vec<String> =
        sqlx::query_scalar("SELECT subtype FROM audit_events WHERE agent_id = '30000000000001' ORDER BY seq")
            .fetch_all(&app.state.docs.store.pool)
            .await
            .unwrap();
    assert!(subtypes.contains(&"login".to_string()) && subtypes.contains(&"logout".to_string()), "{subtypes:?}");

    // idle expiry: a session not used for more than 30 minutes is over, even if its record lingers
    let cookie = login(&app, "30000000000001", "Arxivchi Birinchi").await;
    assert_eq!(get(&app, "/archive", Some(&cookie)).await.status(), StatusCode::OK);
    let id = cookie.split_once('=').unwrap().1.to_string();
    let data: String = sqlx::query_scalar("SELECT data FROM tower_sessions WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.state.docs.store.pool)
        .await
        .unwrap();
    let mut v: Value = serde_json::from_str(&data).unwrap();
    let seen = v["browser_login"]["seen"].as_i64().unwrap();
    v["browser_login"]["seen"] = (seen - 31 * 60).into();
    sqlx::query("UPDATE tower_sessions SET data = $1 WHERE id = $2")
        .bind(v.to_string())
        .bind(&id)
        .execute(&app.state.docs.store.pool)
        .await
        .unwrap();
    assert_eq!(get(&app, "/archive", Some(&cookie)).await.status(), StatusCode::SEE_OTHER);
    // the API does not take it either
    let r = req(&app, Method::GET, "/Bundle?type=document", &As::Session(cookie)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_provider_and_production_refuse_clearly() {
    let app = TestApp::spawn().await;
    // naming a provider that is not the configured one: a clear page
    let html =
        refusal(get(&app, "/login?next=%2Farchive&provider=google", None).await, S::BAD_REQUEST, "unknown_provider")
            .await;
    assert!(html.contains("That identity provider is not configured"));
    let r = get(&app, "/login?next=%2Farchive&provider=dev", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the configured one is fine");

    // production refuses the development oneID: the service does not start with it…
    let dir = tempfile::tempdir().unwrap();
    let mut config = hujjat::config::Config::for_tests(&app.database_url, dir.path().to_path_buf());
    config.mode = hujjat::config::Mode::Production;
    assert!(hujjat::identity::Provider::from_config(&config).is_err());
    let err = hujjat::app::build(config.clone()).await.err().expect("production with the dev oneID does not start");
    assert!(format!("{err:#}").contains("development oneID"), "{err:#}");
    // …and a router on such a configuration never sends a browser to it
    let state = hujjat::web::AppState { config: std::sync::Arc::new(config), docs: app.state.docs.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = hujjat::web::router(state);
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    refusal(get_at(&base, "/login?next=%2Farchive", None).await, S::SERVICE_UNAVAILABLE, "login_unavailable").await;
    let r = get_at(&base, "/dev/oneid/sso/oauth/Authorization.do?response_type=one_code", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no development oneID in production");
    // an unknown provider name in the configuration: no provider either, the same clear page
    let mut c = (*app.state.config).clone();
    c.identity_provider = "facebook".into();
    assert!(hujjat::identity::Provider::from_config(&c).is_err());
}
