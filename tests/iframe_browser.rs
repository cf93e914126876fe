//! The signing iframe in a real browser (headless Debian Chromium via playwright-core): the demo
//! MIS on one origin embeds hujjat from another, the practitioner logs in through the popup
//! (dev oneID, and standard OIDC against npm `oidc-provider` on loopback), signs, the parent page
//! receives `hujjat:signed`, the MIS backend fetches the signed Bundle and the independent
//! verifier accepts it; then the refusals. Screenshots: `artifacts/browser/<db>-<mode>/`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (scripts/test installs both), so the
//! tests are `#[ignore]`d in the plain suites and scripts/test runs them with `--run-ignored only`
//! on both databases.

mod common;
mod iframe_support;

use iframe_support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Chromium and the node packages must be there (scripts/test installs them).
fn require_browser() {
    let browser = common::project_root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or tests/browser/node_modules is missing: run scripts/test (or apt-get install chromium; npm ci --prefix tests/browser)"
    );
}

fn artifacts(mode: &str) -> PathBuf {
    let db = if std::env::var("HUJJAT_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "postgres"
    } else {
        "sqlite"
    };
    let dir = common::project_root().join("artifacts/browser").join(format!("{db}-{mode}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run e2e.mjs; the JSON summary it prints last.
fn run_e2e(app: &IframeApp, mode: &str, phases: &str) -> Value {
    let out_dir = artifacts(mode);
    let out = Command::new("node")
        .arg("e2e.mjs")
        .current_dir(common::project_root().join("tests/browser"))
        .env("HUJJAT_URL", &app.base)
        .env("DEMO_URL", &app.demo)
        .env("IDP_MODE", mode)
        .env("PHASES", phases)
        .env("ARTIFACTS", &out_dir)
        .env("FORM_EXAMPLE", common::shared().join("spec/forms/form-003.example.json"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let summary: Value = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    assert!(out.status.success(), "browser run failed ({mode}): {summary:#}\nstderr: {}", common::tail(&stderr, 40));
    summary
}

/// The signed Bundle the MIS backend fetched passes `jws-verify --trust <hujjat's anchors>`, and
/// the status API agrees.
async fn verify_signed(app: &IframeApp, summary: &Value) {
    let sid = summary["sessionId"].as_str().expect("session id");
    let st = app.status(sid).await;
    assert_eq!(st["status"], "signed");
    let pem = app.http.get(app.url("/trust/ca.pem")).send().await.unwrap().text().await.unwrap();
    let ca = app.dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let bundle = PathBuf::from(summary["bundle"].as_str().unwrap());
    let out = common::oracle("jws-verify", &["--summary", "--trust", ca.to_str().unwrap()], &[bundle]);
    assert!(out.contains("1 signature"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: scripts/test runs it with --run-ignored"]
async fn browser_dev_oneid_flow_and_refusals() {
    require_browser();
    let app = spawn().await;
    let summary = tokio::task::block_in_place(|| run_e2e(&app, "dev", "flow,refusals"));
    assert_eq!(summary["cookie"]["secure"], true, "{summary:#}");
    assert!(summary["consoleErrors"].as_array().unwrap().is_empty(), "console errors: {summary:#}");
    verify_signed(&app, &summary).await;
}

/// The loopback provider ends with the test, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: scripts/test runs it with --run-ignored"]
async fn browser_oidc_flow() {
    require_browser();
    // the loopback OpenID Provider needs hujjat's callback URL before hujjat starts: reserve a port
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let op = Command::new("node")
        .arg("op.mjs")
        .current_dir(common::project_root().join("tests/browser"))
        .env("PORT", "0")
        .env("REDIRECT_URI", format!("http://127.0.0.1:{port}/oneid/callback"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node op.mjs");
    let mut op = KillOnDrop(op);
    let mut line = String::new();
    let mut out = BufReader::new(op.0.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // keep draining its output (a closed pipe would kill it on the next write)
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let issuer = line.trim().strip_prefix("listening ").expect("op.mjs prints its issuer").to_string();
    let app = spawn_on(port, |c| {
        c.identity_provider = "oidc".into();
        c.signing.oidc_issuer = Some(issuer.clone());
        c.signing.oidc_client_id = Some("signing-iframe".into());
        c.signing.oidc_client_secret = Some(hujjat::identity::oneid::Secret("test-secret".into()));
    })
    .await;
    let summary = tokio::task::block_in_place(|| run_e2e(&app, "oidc", "flow"));
    drop(op);
    verify_signed(&app, &summary).await;
    let st = app.status(summary["sessionId"].as_str().unwrap()).await;
    assert_eq!(st["signer"]["identityProvider"], "oidc");
    assert_eq!(st["signer"]["name"], "RASULOV BEKZOD BAXODIROVICH");
}
