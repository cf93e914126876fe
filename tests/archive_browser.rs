//! Issue 6: a headless Chromium (Debian's, through playwright-core) logs in as an archivist
//! through the identity module's browser login (archive → `/login` → the development oneID, where
//! the archivist's test user is picked → back to `/archive`), searches by PINFL, opens a document,
//! sees its signature panel and logs out. Screenshots: `artifacts/browser/<db>-archive/`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (scripts/test installs both). Runs
//! when `HUJJAT_BROWSER_TESTS=1` (as the signing-iframe browser test); otherwise it says so and
//! passes, so a plain `cargo test` on a machine without a browser still works.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use serde_json::Value;
use std::process::Command;

/// The development oneID's test user who is the archivist (E-IMZO of a legal entity).
const ARCHIVIST_KEY: &str = "yusupova";

fn enabled() -> bool {
    if std::env::var("HUJJAT_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        let browser = project_root().join("tests/browser");
        assert!(
            browser.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
            "HUJJAT_BROWSER_TESTS=1 but Chromium or tests/browser/node_modules is missing: run scripts/test (or apt-get install chromium; npm ci --prefix tests/browser)"
        );
        true
    } else {
        eprintln!("browser tests skipped: set HUJJAT_BROWSER_TESTS=1 (scripts/test does)");
        false
    }
}

#[tokio::test]
async fn archivist_finds_a_document_and_sees_its_signature_panel() {
    if !enabled() {
        return;
    }
    let app = TestApp::spawn().await;
    let input = example_003();
    let id = create_signed(&app, &Cred::demo(), &input).await;
    // another patient's document, which the search must not show
    let mut other = example_003();
    other["patient"]["pinfl"] = serde_json::json!("31703920270099");
    create_signed(&app, &Cred::demo(), &other).await;
    // the archivist: a test user of the development oneID's picker
    let archivist = hujjat::identity::dev::fixture(ARCHIVIST_KEY).unwrap();
    let archivist_pinfl = archivist["pin"].as_str().unwrap().to_string();
    grant(&app, &archivist_pinfl, "archivist", &[]).await;

    let db = if std::env::var("HUJJAT_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "postgres"
    } else {
        "sqlite"
    };
    let out_dir = project_root().join("artifacts/browser").join(format!("{db}-archive"));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let signer = signer_for(&input, &attending(&input));
    let out = tokio::task::spawn_blocking({
        let (base, out_dir, id, signer) = (app.base.clone(), out_dir.clone(), id.clone(), signer.name.clone());
        let patient = input["patient"]["pinfl"].as_str().unwrap().to_string();
        move || {
            Command::new("node")
                .arg("archive.mjs")
                .current_dir(project_root().join("tests/browser"))
                .env("HUJJAT_URL", base)
                .env("ARTIFACTS", out_dir)
                .env("ARCHIVIST_KEY", ARCHIVIST_KEY)
                .env("ARCHIVIST_NAME", "YUSUPOVA NILUFAR NODIROVNA")
                .env("PATIENT_PINFL", patient)
                .env("DOCUMENT_ID", id)
                .env("SIGNER_NAME", signer)
                .output()
                .expect("node")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let summary: Value = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    assert!(
        out.status.success() && summary["ok"] == true,
        "browser run failed: {summary:#}\nstderr: {}",
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
    assert!(out_dir.join("signature-panel.png").exists(), "the screenshot of the signature panel is saved");
    // the browser's visit left its trace: login, search, read, verify, logout
    let codes: Vec<String> = sqlx::query("SELECT subtype FROM audit_events WHERE agent_id = $1 ORDER BY seq")
        .bind(&archivist_pinfl)
        .fetch_all(&app.state.docs.store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| sqlx::Row::get::<String, _>(r, "subtype"))
        .collect();
    for c in ["login", "search", "read", "verify", "logout"] {
        assert!(codes.iter().any(|x| x == c), "no `{c}` in {codes:?}");
    }
}
