//! Identity providers: the oneID client against recorded answers of oneID (both user-info field
//! spellings, its failures) and against the dev oneID's rules; configuration refusals; the
//! client registry (CLI, seed file); the pages in three languages.

mod common;
mod iframe_support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hujjat::identity::oneid::{OneIdClient, Secret};
use iframe_support::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A recorded oneID answer per grant: (grant, HTTP status, body).
type Script = Vec<(&'static str, u16, &'static str)>;

type Seen = Arc<Mutex<Vec<(String, String, String)>>>; // (query, content-type, body)

/// A recorded oneID: answers each grant with (status, body) from `script`.
async fn recorded_oneid(script: Vec<(&'static str, u16, &'static str)>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let script = Arc::new(script);
    let app = axum::Router::new()
        .route(
            "/sso/oauth/Authorization.do",
            axum::routing::post(
                |State((seen, script)): State<(Seen, Arc<Script>)>, uri: Uri, h: HeaderMap, body: String| async move {
                    let ct = h.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                    seen.lock().unwrap().push((uri.query().unwrap_or("").to_string(), ct, body.clone()));
                    let grant = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "grant_type")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let (_, st, b) = script.iter().find(|(g, _, _)| *g == grant).copied().unwrap_or(("", 400, "{}"));
                    (StatusCode::from_u16(st).unwrap(), [("content-type", "application/json")], b)
                },
            ),
        )
        .with_state((seen.clone(), script));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/sso/oauth/Authorization.do", l.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

fn client(endpoint: &str, allowed: &[&str]) -> OneIdClient {
    OneIdClient {
        endpoint: endpoint.into(),
        client_id: "myportal".into(),
        client_secret: Secret("s3cret".into()),
        scope: "myportal".into(),
        redirect_uri: "https://hujjat.example.uz/oneid/callback".into(),
        allowed_auth_methods: allowed.iter().map(|s| s.to_string()).collect(),
        provider: "oneid",
        http: hujjat::identity::http_client(),
    }
}

const TOKEN: &str = r#"{"access_token":"0f4d8a52-3b1e-4c4f-9d39-6a2f1e0c7b11","refresh_token":"a1","token_type":"Bearer","expires_in":3600,"scope":"myportal"}"#;
// recorded user-info answers (personal values replaced), the old and the new field spellings
const OLD: &str = r#"{"valid":"true","validation_method":["PKCS"],"pin":"31211831270024","user_id":"b.rasulov","full_name":"RASULOV BEKZOD BAXODIROVICH","pport_no":"AA1234567","birth_date":"1983-11-12","sur_name":"RASULOV","first_name":"BEKZOD","mid_name":"BAXODIROVICH","user_type":"I","sess_id":"0f4d8a52-3b1e-4c4f-9d39-6a2f1e0c7b11","ret_cd":"0","auth_method":"PKCSMETHOD","pkcs_legal_tin":null,"legal_info":null}"#;
const NEW: &str = r#"{"valid":true,"valid_methods":[],"pin":"30504721260051","user_id":"a.qodirov","firstname":"ANVAR","surname":"QODIROV","lastname":"AKMALOVICH","pspNumb":"AB7654321","phone":"998907654321","address":"TOSHKENT","birth_place_id":1726,"nationality_id":44,"citizenship_id":182,"user_type":"I","sess_id":"s2","ret_cd":"0","auth_method":"MOBILEMETHOD","legal_info":[{"is_basic":true,"tin":"301234567","acron_UZ":"KLINIKA","le_tin":"301234567","le_name":"KLINIKA"}]}"#;

#[tokio::test]
async fn oneid_client_against_recorded_answers() {
    // both spellings; the calls are form bodies on one endpoint, the secret never in the URL
    let (url, seen) = recorded_oneid(vec![
        ("one_authorization_code", 200, TOKEN),
        ("one_access_token_identify", 200, OLD),
        ("one_log_out", 200, "{}"),
    ])
    .await;
    let who = client(&url, &[]).complete("code-1").await.unwrap();
    assert_eq!((who.pinfl.as_str(), who.name.as_str()), ("31211831270024", "RASULOV BEKZOD BAXODIROVICH"));
    assert_eq!(who.auth_method.as_deref(), Some("PKCSMETHOD"));
    assert_eq!(who.session_hash.as_deref().map(str::len), Some(64), "only a hash of sess_id is kept");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // one_log_out runs in the background
    let calls = seen.lock().unwrap().clone();
    let grants: Vec<String> = calls
        .iter()
        .map(|(_, _, b)| {
            url::form_urlencoded::parse(b.as_bytes()).find(|(k, _)| k == "grant_type").unwrap().1.into_owned()
        })
        .collect();
    assert_eq!(grants, ["one_authorization_code", "one_access_token_identify", "one_log_out"]);
    for (q, ct, b) in &calls {
        assert!(q.is_empty(), "nothing in the query string");
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert!(b.contains("client_secret=s3cret"));
    }
    assert!(calls[0].2.contains("redirect_uri=https%3A%2F%2Fhujjat.example.uz%2Foneid%2Fcallback"));

    let (url, _) =
        recorded_oneid(vec![("one_authorization_code", 200, TOKEN), ("one_access_token_identify", 200, NEW)]).await;
    let who = client(&url, &[]).complete("c").await.unwrap();
    assert_eq!(who.name, "QODIROV ANVAR AKMALOVICH", "lastname holds the patronymic");
    // an auth-method allowlist
    let e = client(&url, &["PKCSMETHOD", "LEPKCSMETHOD"]).complete("c").await.unwrap_err();
    assert_eq!(e.code(), "auth_method_not_allowed");

    // failures, as the session error codes of the design
    let cases: Vec<(Script, &str)> = vec![
        (vec![("one_authorization_code", 400, r#"{"error":"invalid_grant"}"#)], "idp_rejected"),
        (vec![("one_authorization_code", 500, "oops")], "idp_unavailable"),
        (vec![("one_authorization_code", 200, "<html>maintenance</html>")], "idp_rejected"),
        (vec![("one_authorization_code", 200, r#"{"token_type":"Bearer"}"#)], "idp_rejected"),
        (
            vec![
                ("one_authorization_code", 200, TOKEN),
                ("one_access_token_identify", 200, r#"{"ret_cd":"1","pin":""}"#),
            ],
            "identity_incomplete",
        ),
        (
            vec![
                ("one_authorization_code", 200, TOKEN),
                ("one_access_token_identify", 200, r#"{"ret_cd":"0","pin":"3121183127","sur_name":"X"}"#),
            ],
            "identity_incomplete",
        ),
        (
            vec![
                ("one_authorization_code", 200, TOKEN),
                ("one_access_token_identify", 200, r#"{"ret_cd":"0","pin":"31211831270024"}"#),
            ],
            "identity_incomplete",
        ),
        (
            vec![
                ("one_authorization_code", 200, TOKEN),
                ("one_access_token_identify", 401, r#"{"error":"invalid_token"}"#),
            ],
            "idp_rejected",
        ),
    ];
    for (script, code) in cases {
        let (url, _) = recorded_oneid(script).await;
        assert_eq!(client(&url, &[]).complete("c").await.unwrap_err().code(), code, "{url}");
    }
    // not reachable at all
    let e = client("http://127.0.0.1:9/sso/oauth/Authorization.do", &[]).complete("c").await.unwrap_err();
    assert_eq!(e.code(), "idp_unavailable");
    // the authorize URL
    let req = hujjat::identity::LoginRequest::new("ru");
    let u = client(&url_for_authorize(), &[]).authorize_url(&req);
    assert!(u.starts_with(
        "https://sso.egov.uz/sso/oauth/Authorization.do?response_type=one_code&client_id=myportal&redirect_uri="
    ));
    assert!(u.contains(&format!("&state={}", req.state)) && u.contains("&scope=myportal"));
    assert!(!u.contains("lang="), "only the dev oneID gets a language");
}

fn url_for_authorize() -> String {
    "https://sso.egov.uz/sso/oauth/Authorization.do".into()
}

#[tokio::test]
async fn the_dev_oneid_enforces_the_protocol() {
    let app = spawn().await;
    let ep = app.url(hujjat::identity::dev::PATH);
    let cb = app.url("/oneid/callback");
    // wrong redirect_uri or client: an error page, no redirect
    let r = app.http.get(format!("{ep}?response_type=one_code&client_id=hujjat-dev&redirect_uri=https%3A%2F%2Fevil.example%2F&scope=x&state=s")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .get(format!("{ep}?response_type=code&client_id=hujjat-dev&redirect_uri={cb}&state=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // the picker in three languages
    for (lang, text) in [("uz", "Boshqa shaxs"), ("ru", "Другой человек"), ("en", "Another person")] {
        let r = app.http.get(format!("{ep}?response_type=one_code&client_id=hujjat-dev&redirect_uri={cb}&scope=hujjat-dev&state=s&lang={lang}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-frame-options"], "DENY", "an identity provider is never framed");
        assert!(r.text().await.unwrap().contains(text), "{lang}");
    }
    // a scripted login: code, then the grants with the right and wrong secrets, single use
    let r = app.http.get(format!("{ep}?response_type=one_code&client_id=hujjat-dev&redirect_uri={cb}&scope=hujjat-dev&state=st&dev_user=qodirov")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = location(r.headers());
    assert!(loc.starts_with(&format!("{cb}?code=")) && loc.ends_with("&state=st"), "{loc}");
    let code = loc.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let grant = |form: Vec<(&str, String)>| app.http.post(&ep).form(&form).send();
    let bad = grant(vec![
        ("grant_type", "one_authorization_code".into()),
        ("client_id", "hujjat-dev".into()),
        ("client_secret", "nope".into()),
        ("code", code.clone()),
        ("redirect_uri", cb.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(bad.status(), 401);
    let wrong_uri = grant(vec![
        ("grant_type", "one_authorization_code".into()),
        ("client_id", "hujjat-dev".into()),
        ("client_secret", "dev-oneid-secret".into()),
        ("code", code.clone()),
        ("redirect_uri", "https://x".into()),
    ])
    .await
    .unwrap();
    assert_eq!(wrong_uri.status(), 400, "a wrong redirect_uri burns the code");
    let again = grant(vec![
        ("grant_type", "one_authorization_code".into()),
        ("client_id", "hujjat-dev".into()),
        ("client_secret", "dev-oneid-secret".into()),
        ("code", code),
        ("redirect_uri", cb.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(again.status(), 400, "codes are single use");
    // the full path through the real client (the dev provider of this app)
    let r = app.http.get(format!("{ep}?response_type=one_code&client_id=hujjat-dev&redirect_uri={cb}&scope=hujjat-dev&state=st&dev_user=yusupova")).send().await.unwrap();
    let code = location(r.headers()).split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let hujjat::identity::Provider::OneId(c) = hujjat::identity::Provider::from_config(&app.state.config).unwrap()
    else {
        panic!("dev is oneID")
    };
    let who = c.complete(&code).await.unwrap();
    assert_eq!((who.pinfl.as_str(), who.auth_method.as_deref()), ("41909751260087", Some("LEPKCSMETHOD")));
    assert_eq!(who.provider, "dev");
}

#[test]
fn production_refuses_the_dev_oneid_and_needs_credentials() {
    let mut c = hujjat::config::Config::for_tests("sqlite::memory:", std::env::temp_dir());
    c.mode = hujjat::config::Mode::Production;
    assert!(hujjat::identity::Provider::from_config(&c).is_err(), "dev in production");
    c.identity_provider = "oneid".into();
    let e = hujjat::identity::Provider::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("HUJJAT_ONEID_CLIENT_SECRET"), "{e}");
    c.signing.oneid_client_id = Some("myportal".into());
    c.signing.oneid_client_secret = Some(Secret("x".into()));
    assert!(hujjat::identity::Provider::from_config(&c).is_ok());
    assert!(!format!("{c:?}").contains("\"x\""), "secrets do not print");
    c.identity_provider = "oidc".into();
    assert!(hujjat::identity::Provider::from_config(&c).unwrap_err().to_string().contains("HUJJAT_OIDC_ISSUER"));
    assert!(c.check().is_err(), "production refuses the development CA etc.");
}

#[tokio::test]
async fn the_page_speaks_three_languages() {
    let app = spawn().await;
    let doc = app.compose().await;
    for (lang, sign_in, sign) in [
        ("uz", "OneID orqali kirish", "Imzolash"),
        ("ru", "Войти через OneID", "Подписать"),
        ("en", "Sign in with oneID", "Sign"),
    ] {
        let s = app.session(&doc, json!({"locale": lang})).await;
        let (handle, _) = app.launch(s["launchUrl"].as_str().unwrap()).await;
        let page = app.http.get(app.url(&format!("/s/{handle}"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{lang}");
        assert!(page.contains(sign_in) && page.contains(sign), "{lang}");
        // and the refusal pages
        let again = app.http.get(s["launchUrl"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
        assert!(again.contains(hujjat::iframe::i18n::error_message(lang, "launch_used")), "{lang}");
    }
}

#[tokio::test]
async fn clients_cli_and_seed_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::fresh_database(dir.path()).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hujjat"))
            .arg("clients")
            .args(args)
            .env("DATABASE_URL", &db)
            .env("HUJJAT_DATA_DIR", dir.path())
            .env_remove("HUJJAT_MODE")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let field = |out: &str, k: &str| {
        out.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    let (code, out, err) = run(&[
        "add",
        "city-1",
        "--name",
        "City hospital",
        "--origin",
        "https://mis.city.uz",
        "--webhook-url",
        "https://mis.city.uz/hooks/hujjat",
    ]);
    assert_eq!(code, 0, "{err}");
    let secret = field(&out, "client_secret:");
    assert!(field(&out, "webhook_secret:").starts_with("whsec_"));
    let seed_hash = field(&out, "secretHash:");
    let (code, _, err) = run(&["add", "bad", "--origin", "https://mis.city.uz/path"]);
    assert_eq!(code, 2, "an origin with a path is refused");
    assert!(err.contains("not an origin"), "{err}");
    let (code, _, _) = run(&["add", "city-1"]);
    assert_eq!(code, 1, "exists");
    let (_, out, _) = run(&["list"]);
    assert!(
        out.contains("city-1\tCity hospital\torigins: https://mis.city.uz\twebhook: https://mis.city.uz/hooks/hujjat"),
        "{out}"
    );
    assert!(!out.contains(&secret), "list never shows secrets");

    let store = hujjat::store::Store::connect(&db).await.unwrap();
    assert!(store.authenticate_client("city-1", &secret).await.unwrap().is_some());
    let (code, out, _) = run(&["rotate-secret", "city-1"]);
    assert_eq!(code, 0);
    let new = field(&out, "client_secret:");
    assert!(store.authenticate_client("city-1", &secret).await.unwrap().is_none(), "the old secret stops working");
    assert!(store.authenticate_client("city-1", &new).await.unwrap().is_some());
    let (code, _, _) = run(&["remove", "city-1"]);
    assert_eq!(code, 0);
    assert!(store.authenticate_client("city-1", &new).await.unwrap().is_none());
    let (code, _, _) = run(&["remove", "city-1"]);
    assert_eq!(code, 1);

    // the seed file creates the client with the hash printed by `clients add` (never the secret)
    let seed = dir.path().join("clients.json");
    let spec = json!([{"id": "seeded", "name": "Seeded MIS", "secretHash": seed_hash, "embedOrigins": ["https://mis.seed.uz"],
        "webhookUrl": "https://mis.seed.uz/hook", "webhookSecret": "whsec_c2VlZA=="}]);
    std::fs::write(&seed, spec.to_string()).unwrap();
    let app = spawn_with(|c| c.signing.clients_file = Some(seed.clone())).await;
    let c = app.state.docs.store.authenticate_client("seeded", &secret).await.unwrap().expect("seeded client");
    assert_eq!(c.embed_origins, ["https://mis.seed.uz"]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&seed).unwrap()).unwrap();
    assert!(!v.to_string().contains(&secret));
}
