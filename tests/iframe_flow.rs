//! Signing sessions end to end over HTTP, without a browser and without cookies in the iframe
//! (the cookie-free mode): API validation, launch once, the dev oneID through the real oneID
//! client, the Sign post with its CSRF token, refusals, expiry, webhooks, and the signed Bundle
//! checked by the independent verifier.

mod common;
mod iframe_support;

use axum::http::HeaderMap;
use iframe_support::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A webhook receiver: records (headers, body); answers the statuses in `script`, then 204.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let g = got.clone();
    let script = Arc::new(Mutex::new(script));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: String| {
            let g = g.clone();
            let script = script.clone();
            async move {
                g.lock().unwrap().push((h, body));
                let code = {
                    let mut s = script.lock().unwrap();
                    if s.is_empty() {
                        204
                    } else {
                        s.remove(0)
                    }
                };
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", l.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

async fn set_webhook(app: &IframeApp, url: &str, secret: &str) {
    sqlx::query("UPDATE clients SET webhook_url = $1, webhook_secret = $2 WHERE id = 'demo-mis'")
        .bind(url)
        .bind(secret)
        .execute(&app.state.docs.store.pool)
        .await
        .unwrap();
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn sign_in_the_iframe_without_cookies() {
    let app = spawn().await;
    let secret = hujjat::iframe::webhook::new_secret();
    let (hook, got) = receiver(vec![]).await;
    set_webhook(&app, &hook, &secret).await;
    let doc = app.compose().await;
    let s = app.session(&doc, json!({})).await;
    let sid = s["id"].as_str().unwrap().to_string();
    let launch = s["launchUrl"].as_str().unwrap().to_string();
    assert!(launch.starts_with(&format!("{}/s/launch/", app.base)), "{launch}");
    assert!(launch.len() > app.base.len() + 40, "the launch token is long: {launch}");
    assert_eq!(s["status"], "created");
    let exp = chrono::DateTime::parse_from_rfc3339(s["expiresAt"].as_str().unwrap()).unwrap();
    let left = exp.timestamp() - chrono::Utc::now().timestamp();
    assert!((290..=301).contains(&left), "the launch URL lives 5 minutes, not {left} s");

    // the iframe opens it: 303 to the page, framed only by the embed origin
    let r = app.http.get(&launch).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let handle = location(r.headers()).trim_start_matches("/s/").to_string();
    assert!(handle.len() >= 43, "the handle carries ≥ 256 bits");
    let page = app.http.get(app.url(&format!("/s/{handle}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains(&format!("frame-ancestors {}", app.demo)), "{csp}");
    assert!(csp.contains("script-src 'nonce-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.headers().get("x-frame-options").is_none(), "no X-Frame-Options on the signing page");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with oneID"), "English page");
    let v1 = app.state.docs.store.version(&doc, 1).await.unwrap().unwrap();
    assert!(html.contains(&hujjat::identity::sha256_hex(&v1.bundle)), "the page shows the hash of the exact version");
    assert!(!html.contains(" onclick="), "no inline handlers");
    assert_eq!(app.status(&sid).await["status"], "opened");

    // the launch URL works once
    let again = app.http.get(&launch).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("already been used"));

    // Sign before login, and a post without the CSRF token, are refused
    let csrf = app.csrf(&handle).await;
    let sign = |body: String| {
        app.http
            .post(app.url(&format!("/s/{handle}/sign")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
    };
    let r = sign("consent=on".into()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "csrf");
    let form = format!("csrf={csrf}&version=1&sha256={}&consent=on", hujjat::identity::sha256_hex(&v1.bundle));
    let r = sign(form.clone()).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_authenticated");

    // the popup: oneID (dev) → callback → authenticated
    let r = app.login(&handle, &csrf, "rasulov").await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("RASULOV BEKZOD BAXODIROVICH"), "{body}");
    let st: Value = app.http.get(app.url(&format!("/s/{handle}/status"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(st["status"], "authenticated");
    assert_eq!(st["signer"]["pinfl"], ATTENDING);

    // without consent, with a stale hash: refused; then signed
    let r = sign(format!("csrf={csrf}&version=1&sha256={}", hujjat::identity::sha256_hex(&v1.bundle))).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "consent_required");
    let r = sign(format!("csrf={csrf}&version=1&sha256={}&consent=on", "0".repeat(64))).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "document_changed");
    let r = sign(form.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["status"], "signed");
    assert_eq!(j["signedVersion"], 2);
    // a second click does nothing
    let r = sign(form).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "session_closed");

    // the authority
    let st = app.status(&sid).await;
    assert_eq!(st["status"], "signed");
    assert_eq!(st["signedVersion"], 2);
    assert_eq!(st["signer"]["pinfl"], ATTENDING);
    assert_eq!(st["signer"]["identityProvider"], "dev");
    let bundle = app
        .http
        .get(st["signedDocument"].as_str().unwrap())
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pem = app.http.get(app.url("/trust/ca.pem")).send().await.unwrap().text().await.unwrap();
    std::fs::write(app.dir.path().join("ca.pem"), pem).unwrap();
    let f = app.dir.path().join("signed.json");
    std::fs::write(&f, &bundle).unwrap();
    let ca = app.dir.path().join("ca.pem");
    common::oracle("jws-verify", &["--summary", "--trust", ca.to_str().unwrap()], &[f]);

    // the webhook: signed, verifiable
    wait_for("the webhook", || !got.lock().unwrap().is_empty()).await;
    let (h, body) = got.lock().unwrap()[0].clone();
    let hv = |k: &str| h[k].to_str().unwrap().to_string();
    assert!(hujjat::iframe::webhook::verify(
        &secret,
        &hv("webhook-id"),
        hv("webhook-timestamp").parse().unwrap(),
        &body,
        &hv("webhook-signature"),
        chrono::Utc::now().timestamp()
    ));
    let ev: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ev["type"], "signing_session.signed");
    assert_eq!(ev["data"]["sessionId"], sid.as_str());
    assert_eq!(ev["data"]["signedVersion"], 2);
}

#[tokio::test]
async fn api_validation() {
    let app = spawn().await;
    let doc = app.compose().await;
    let bad = |b: Value| app.create_session(&doc, b);
    let r =
        bad(json!({"expectedSigner": {"pinfl": "123"}, "embedOrigin": "https://evil.example", "locale": "de"})).await;
    assert_eq!(r.status(), 422);
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs: Vec<&str> =
        oo["issue"].as_array().unwrap().iter().map(|i| i["expression"][0].as_str().unwrap()).collect();
    assert_eq!(exprs, ["expectedSigner.pinfl", "embedOrigin", "locale"]);
    // a PINFL that is not a practitioner of the document
    let r = bad(json!({"expectedSigner": {"pinfl": "12345678901234"}, "embedOrigin": app.demo})).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not a practitioner"));
    let r =
        bad(json!({"expectedSigner": {"pinfl": ATTENDING}, "embedOrigin": app.demo, "launchTtlSeconds": 301})).await;
    assert_eq!(r.status(), 422);
    // not JSON, no credentials, another client's document
    let r = app
        .http
        .post(app.url(&format!("/documents/{doc}/signing-sessions")))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r =
        app.http.post(app.url(&format!("/documents/{doc}/signing-sessions"))).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.state
        .docs
        .store
        .upsert_client("other", "Other", "other-secret", std::slice::from_ref(&app.demo), None)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url(&format!("/documents/{doc}/signing-sessions")))
        .basic_auth("other", Some("other-secret"))
        .json(&json!({"expectedSigner": {"pinfl": ATTENDING}, "embedOrigin": app.demo}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let s = app.session(&doc, json!({})).await;
    let r = app
        .http
        .get(app.url(&format!("/signing-sessions/{}", s["id"].as_str().unwrap())))
        .basic_auth("other", Some("other-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another client's session is not confirmed");
    let r = app.http.get(app.url("/signing-sessions/nope")).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");

    // Idempotency-Key: the same session, a fresh launch URL (the old one no longer works)
    let body = json!({"expectedSigner": {"pinfl": ATTENDING}, "embedOrigin": app.demo});
    let post = || {
        app.http
            .post(app.url(&format!("/documents/{doc}/signing-sessions")))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .header("idempotency-key", "k-1")
            .json(&body)
            .send()
    };
    let a: Value = post().await.unwrap().json().await.unwrap();
    let b: Value = post().await.unwrap().json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    assert_eq!(app.http.get(a["launchUrl"].as_str().unwrap()).send().await.unwrap().status(), 404);
    assert_eq!(app.http.get(b["launchUrl"].as_str().unwrap()).send().await.unwrap().status(), 303);
    assert_eq!(post().await.unwrap().status(), 409, "opened: a retry cannot mint another URL");
    // the MIS cancels
    let c = app.session(&doc, json!({})).await;
    let r = app
        .http
        .post(app.url(&format!("/signing-sessions/{}/cancel", c["id"].as_str().unwrap())))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    let r = app.http.get(c["launchUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 410);
}

#[tokio::test]
async fn refusals_mismatch_expiry_and_wrong_browser() {
    let app = spawn().await;
    let secret = hujjat::iframe::webhook::new_secret();
    let (hook, got) = receiver(vec![]).await;
    set_webhook(&app, &hook, &secret).await;
    let doc = app.compose().await;

    // another practitioner logs in: refused, the session fails, the MIS is told
    let s = app.session(&doc, json!({"locale": "ru"})).await;
    let (handle, _) = app.launch(s["launchUrl"].as_str().unwrap()).await;
    let csrf = app.csrf(&handle).await;
    let r = app.login(&handle, &csrf, "stranger").await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("Вы вошли как другой человек"), "Russian refusal: {page}");
    assert!(page.contains("signer_mismatch"));
    let st = app.status(s["id"].as_str().unwrap()).await;
    assert_eq!(st["status"], "failed");
    assert_eq!(st["error"]["code"], "signer_mismatch");

    // oneID says ret_cd 1: the session stays open, the error is shown
    let s = app.session(&doc, json!({"locale": "uz"})).await;
    let (handle, _) = app.launch(s["launchUrl"].as_str().unwrap()).await;
    let csrf = app.csrf(&handle).await;
    let r = app.login(&handle, &csrf, "failed").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("identity_incomplete"));
    let st = app.status(s["id"].as_str().unwrap()).await;
    assert_eq!(st["status"], "opened");
    assert_eq!(st["error"]["code"], "identity_incomplete");
    // a callback replayed, or from another browser, or without the popup's cookie
    let r = app.http.get(app.url("/oneid/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("cookies_required"));

    // expiry: the launch URL after its deadline
    let s = app.session(&doc, json!({"launchTtlSeconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.http.get(s["launchUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 410);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains(&format!("frame-ancestors {}", app.demo)), "the refusal may be shown in the MIS iframe");
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(app.status(s["id"].as_str().unwrap()).await["status"], "expired");

    // an open session past its deadline: the page's status and the API say expired
    let s = app.session(&doc, json!({})).await;
    let (handle, _) = app.launch(s["launchUrl"].as_str().unwrap()).await;
    sqlx::query("UPDATE signing_sessions SET expires_at = 0 WHERE id = $1")
        .bind(s["id"].as_str().unwrap())
        .execute(&app.state.docs.store.pool)
        .await
        .unwrap();
    let st: Value = app.http.get(app.url(&format!("/s/{handle}/status"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(st["status"], "expired");

    // with the cookie back, the session is bound to it: the handle alone no longer works
    let s = app.session(&doc, json!({})).await;
    let (handle, cookie) = app.launch(s["launchUrl"].as_str().unwrap()).await;
    let cookie = cookie.expect("a session cookie is offered at launch");
    let r = app.http.get(app.url(&format!("/s/{handle}"))).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url(&format!("/s/{handle}"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another browser"));
    // unknown handles and tokens: a clear page, never framed
    let r = app.http.get(app.url("/s/launch/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-frame-options"], "DENY");

    // webhooks: failed (mismatch) and expired ×2
    wait_for("three webhooks", || got.lock().unwrap().len() >= 3).await;
    let types: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"signing_session.failed".to_string()), "{types:?}");
    assert!(types.contains(&"signing_session.expired".to_string()), "{types:?}");
}

#[tokio::test]
async fn webhooks_are_retried_with_backoff() {
    let app = spawn().await;
    let (hook, got) = receiver(vec![500, 503]).await;
    set_webhook(&app, &hook, "whsec_c2VjcmV0").await;
    let doc = app.compose().await;
    let s = app.session(&doc, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let r = app
        .http
        .post(app.url(&format!("/signing-sessions/{id}/cancel")))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("three attempts", || got.lock().unwrap().len() >= 3).await;
    let g = got.lock().unwrap().clone();
    let ids: Vec<&str> = g.iter().map(|(h, _)| h["webhook-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "the same webhook-id on every retry");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let row: (String, i64) = sqlx::query_as("SELECT status, attempts FROM webhook_deliveries")
        .fetch_one(&app.state.docs.store.pool)
        .await
        .unwrap();
    assert_eq!(row, ("delivered".to_string(), 3));
}
