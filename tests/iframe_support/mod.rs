//! Harness of the iframe suites: hujjat on 127.0.0.1:<port> with its real public URL (the dev
//! oneID is called over HTTP by the oneID client), the demo MIS on another port reached as
//! `http://localhost:<port>` (another site), a fresh database (SQLite or PostgreSQL) per test.
#![allow(dead_code)]

use crate::common::fresh_database;
use hujjat::config::Config;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

pub struct IframeApp {
    pub base: String,
    pub demo: String,
    pub state: hujjat::web::AppState,
    /// no redirects followed, no cookies kept: every step is explicit
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub const DEMO: (&str, &str) = ("demo-mis", "demo-secret");
pub const ATTENDING: &str = "31211831270024";

pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> IframeApp {
    spawn_on(0, f).await
}

/// On a given port (0: any), for providers that must know the callback URL first.
pub async fn spawn_on(port: u16, f: impl FnOnce(&mut Config)) -> IframeApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database(dir.path()).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let demo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind demo");
    let demo_port = demo_listener.local_addr().expect("addr").port();
    let mut config = Config::for_tests(&url, dir.path().to_path_buf());
    config.listen = addr;
    config.public_url = format!("http://{addr}");
    config.signing.demo_origin = format!("http://localhost:{demo_port}");
    f(&mut config);
    let (router, state) = hujjat::app::build(config).await.expect("build app");
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
            .expect("serve");
    });
    let demo = hujjat::demo::router(&state);
    tokio::spawn(async move {
        axum::serve(demo_listener, demo).await.expect("serve demo");
    });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    IframeApp { base: format!("http://{addr}"), demo: format!("http://localhost:{demo_port}"), state, http, dir }
}

pub async fn spawn() -> IframeApp {
    spawn_with(|_| {}).await
}

/// `name=value` of our session cookie in a response, if set.
pub fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-hujjat-session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

pub fn location(h: &HeaderMap) -> String {
    h.get(LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

impl IframeApp {
    pub fn url(&self, p: &str) -> String {
        if p.starts_with("http") {
            p.to_string()
        } else {
            format!("{}{}", self.base, p)
        }
    }

    /// Compose the example Form 003 as the demo client; the document id.
    pub async fn compose(&self) -> String {
        let mut input = crate::common::example("003", "example");
        input.as_object_mut().unwrap().remove("documentId");
        let r = self
            .http
            .post(self.url("/forms/003/documents"))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .json(&input)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        location(r.headers()).trim_start_matches("/documents/").to_string()
    }

    pub async fn create_session(&self, doc: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/documents/{doc}/signing-sessions")))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A session for the attending doctor, embedded by the demo origin: the 201 body.
    pub async fn session(&self, doc: &str, extra: Value) -> Value {
        let mut body = json!({"expectedSigner": {"pinfl": ATTENDING}, "role": "Shifokor-jarroh", "embedOrigin": self.demo, "locale": "en"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.create_session(doc, body).await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    pub async fn status(&self, id: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/signing-sessions/{id}")))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Open the launch URL like the iframe does (optionally with a cookie): the handle.
    pub async fn launch(&self, launch_url: &str) -> (String, Option<String>) {
        let r = self.http.get(launch_url).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let cookie = session_cookie(r.headers());
        let loc = location(r.headers());
        (loc.trim_start_matches("/s/").to_string(), cookie)
    }

    /// The CSRF token the page carries.
    pub async fn csrf(&self, handle: &str) -> String {
        let page = self.http.get(self.url(&format!("/s/{handle}"))).send().await.unwrap().text().await.unwrap();
        let i = page.find("data-csrf=\"").expect("csrf in page") + "data-csrf=\"".len();
        page[i..i + page[i..].find('"').unwrap()].to_string()
    }

    /// The popup's login with the dev oneID's scripted user: the final popup response.
    pub async fn login(&self, handle: &str, csrf: &str, user: &str) -> reqwest::Response {
        let r = self.http.get(self.url(&format!("/s/{handle}/login?csrf={csrf}"))).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let cookie = session_cookie(r.headers()).expect("the popup gets its session cookie");
        let idp = location(r.headers());
        assert!(idp.contains("response_type=one_code"), "{idp}");
        let r = self.http.get(format!("{idp}&dev_user={user}")).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let cb = location(r.headers());
        self.http.get(cb).header("cookie", cookie).send().await.unwrap()
    }
}
