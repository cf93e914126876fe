//! Test harness: a fresh database per test — a SQLite file in a temp dir, or, when
//! `HUJJAT_TEST_DATABASE_URL=postgres://…` (scripts/test runs every suite both ways), a fresh
//! PostgreSQL schema — and the service on a random loopback port.
#![allow(dead_code)]

pub mod gen;

use hujjat::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: hujjat::web::AppState,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub const DEMO: (&str, &str) = ("demo-mis", "demo-secret");

/// A database URL for one test: a fresh SQLite file, or a fresh schema on PostgreSQL.
pub async fn fresh_database(dir: &Path) -> String {
    match std::env::var("HUJJAT_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            sqlx::any::install_default_drivers();
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create schema");
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-c%20search_path%3D{schema}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = fresh_database(dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::for_tests(&url, dir.path().to_path_buf());
        // the real address: the development oneID redirects the browser login back to it
        config.listen = addr;
        config.public_url = format!("http://{addr}");
        let (router, state) = hujjat::app::build(config).await.expect("build app");
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .expect("serve");
        });
        TestApp { base: format!("http://{addr}"), http: reqwest::Client::new(), state, database_url: url, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST form JSON as the demo client.
    pub async fn post_form(&self, form: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/forms/{form}/documents")))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .expect("request")
    }
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared() -> PathBuf {
    project_root().join("../shared")
}

pub fn read_json(p: impl AsRef<Path>) -> serde_json::Value {
    let p = p.as_ref();
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn example(form: &str, kind: &str) -> serde_json::Value {
    read_json(shared().join(format!("spec/forms/form-{form}.{kind}.json")))
}

/// Run one of the independent checkers in ../shared/tools on files; panics (fails the test) when
/// the tool is missing or reports errors. Returns its output.
pub fn oracle(tool: &str, args: &[&str], files: &[PathBuf]) -> String {
    let path = shared().join("tools").join(tool);
    assert!(path.exists(), "oracle {} is missing: the test cannot pass without it", path.display());
    let out = Command::new(&path)
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{tool} failed (exit {:?}):\n{}", out.status.code(), tail(&text, 60));
    text
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
