//! The HTTP API of issue 2: authentication, create/read/versions, If-Match, preview, forms.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn ct(r: &reqwest::Response) -> String {
    r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

#[tokio::test]
async fn healthz_and_forms() {
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let forms: Value = app.http.get(app.url("/forms")).send().await.unwrap().json().await.unwrap();
    let codes: Vec<&str> = forms["forms"].as_array().unwrap().iter().map(|f| f["form"].as_str().unwrap()).collect();
    assert_eq!(codes, ["003", "096"]);
    for f in ["003", "096"] {
        let r = app.http.get(app.url(&format!("/forms/{f}/schema"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let served: Value = r.json().await.unwrap();
        assert_eq!(served, read_json(shared().join(format!("spec/forms/form-{f}.schema.json"))));
    }
    let r = app.http.get(app.url("/forms/999/schema")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(ct(&r).starts_with("application/fhir+json"));
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
}

#[test]
fn schema_copies_do_not_drift_from_shared() {
    for f in ["003", "096"] {
        let ours = std::fs::read(project_root().join(format!("forms/form-{f}.schema.json"))).unwrap();
        let theirs = std::fs::read(shared().join(format!("spec/forms/form-{f}.schema.json"))).unwrap();
        assert!(ours == theirs, "forms/form-{f}.schema.json differs from ../shared/spec/forms/form-{f}.schema.json");
    }
}

#[tokio::test]
async fn create_read_and_history() {
    let app = TestApp::spawn().await;
    let input = example("003", "example");
    let r = app.post_form("003", &input).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(ct(&r).starts_with("application/fhir+json"));
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/documents/"));
    // the example carries a documentId: it is the document's id
    assert_eq!(loc, format!("/documents/{}", input["documentId"].as_str().unwrap()));
    let created = r.text().await.unwrap();
    let bundle: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(bundle["type"], "document");
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "Composition");

    let r = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert_eq!(r.text().await.unwrap(), created, "a read returns the stored bytes");
    let r = app.http.get(app.url(&format!("{loc}/_history/1"))).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.http.get(app.url(&format!("{loc}/_history/2"))).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // the same documentId again is a conflict, not a second document
    let r = app.post_form("003", &input).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.state.docs.store.count_documents().await.unwrap(), 1);

    // preview: a printable page with the patient and the sections
    let r = app.http.get(app.url(&format!("{loc}/preview"))).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Xolmatov Sardor"), "preview shows the patient");
    assert!(html.contains("Primary Examination"), "preview shows the sections");
}

#[tokio::test]
async fn form_096_and_minimal_instances_compose() {
    let app = TestApp::spawn().await;
    for (f, k) in [("003", "minimal"), ("096", "example"), ("096", "minimal")] {
        let r = app.post_form(f, &example(f, k)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{f} {k}: {}", r.text().await.unwrap());
    }
    // a Form 096 body on the Form 003 endpoint is refused
    let r = app.post_form("003", &example("096", "minimal")).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn authentication_basic_and_bearer() {
    let app = TestApp::spawn().await;
    let input = example("003", "minimal");
    // no credentials
    let r = app.http.post(app.url("/forms/003/documents")).json(&input).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(ct(&r).starts_with("application/fhir+json"));
    // wrong secret
    let r = app
        .http
        .post(app.url("/forms/003/documents"))
        .basic_auth("demo-mis", Some("nope"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // token endpoint
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=demo-mis&client_secret=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let tok: Value = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=demo-mis&client_secret=demo-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    let token = tok["access_token"].as_str().unwrap();
    let r = app.http.post(app.url("/forms/003/documents")).bearer_auth(token).json(&input).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r =
        app.http.post(app.url("/forms/003/documents")).bearer_auth("not-a-token").json(&input).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clients_see_only_their_documents() {
    let app = TestApp::spawn().await;
    app.state.docs.store.upsert_client("other-mis", "Other", "other-secret-123", &[], None).await.unwrap();
    let r = app.post_form("003", &example("003", "minimal")).await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = app.http.get(app.url(&loc)).basic_auth("other-mis", Some("other-secret-123")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn put(app: &TestApp, loc: &str, if_match: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .http
        .put(app.url(loc))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn if_match_semantics() {
    let app = TestApp::spawn().await;
    let mut input = example("003", "minimal");
    let r = app.post_form("003", &input).await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    input["primaryExamination"]["preliminaryDiagnosis"]["icd10"] = json!("K35.3");

    let r = put(&app, &loc, None, &input).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
    let r = put(&app, &loc, Some("W/\"7\""), &input).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = put(&app, &loc, Some("W/\"1\""), &input).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let v2 = r.text().await.unwrap();
    assert!(v2.contains("K35.3"));
    // the old version is kept
    let r = app.http.get(app.url(&format!("{loc}/_history/1"))).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    let v1 = r.text().await.unwrap();
    assert!(!v1.contains("K35.3") && v1.contains("K35.8"));
    let latest = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(latest.headers()["etag"], "W/\"2\"");
    assert_eq!(latest.text().await.unwrap(), v2);
    // stale again
    let r = put(&app, &loc, Some("W/\"1\""), &input).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // invalid new content: 422 and nothing changes
    let mut bad = input.clone();
    bad["patient"]["pinfl"] = json!("123");
    let r = put(&app, &loc, Some("W/\"2\""), &bad).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let latest = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(latest.headers()["etag"], "W/\"2\"");
}

#[tokio::test]
async fn concurrent_puts_with_the_same_if_match_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let input = example("003", "example");
    let r = app.post_form("003", &input).await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    for round in 1..=5 {
        let tag = format!("W/\"{round}\"");
        let writers = (0..4).map(|i| {
            let mut body = input.clone();
            body["administrativeInformation"]["roomNumber"] = json!(format!("{round}0{i}"));
            let (app, loc, tag) = (&app, loc.clone(), tag.clone());
            async move { put(app, &loc, Some(&tag), &body).await.status() }
        });
        let statuses = futures::future::join_all(writers).await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let stale = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
        assert_eq!((ok, stale), (1, 3), "round {round}: {statuses:?}");
    }
    let latest = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(latest.headers()["etag"], "W/\"6\"");
}

#[test]
fn production_mode_refuses_development_defaults() {
    let mut c = hujjat::config::Config::for_tests("sqlite::memory:", std::env::temp_dir());
    c.mode = hujjat::config::Mode::Production;
    c.demo_client = false;
    c.identity_provider = "dev".into();
    let err = c.check().unwrap_err().to_string();
    assert!(err.contains("development oneID"), "{err}");
    assert!(err.contains("development signing CA"), "{err}");
    c.identity_provider = "oneid".into();
    c.ca_cert = Some("ca.pem".into());
    c.ca_key = Some("ca.key".into());
    assert!(c.check().is_ok());
}

/// FHIR `Prefer: return=`: `minimal` answers with the headers only, `OperationOutcome` with an
/// outcome, `representation` (and no or an unknown preference) with the document; the stored
/// document is the same either way, and `Preference-Applied` says what was honoured.
#[tokio::test]
async fn prefer_return_chooses_the_answer_to_a_write() {
    let app = TestApp::spawn().await;
    let mut input = example("003", "minimal");
    input.as_object_mut().unwrap().remove("documentId");
    let post = |prefer: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/forms/003/documents"))
            .basic_auth(DEMO.0, Some(DEMO.1))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&input).unwrap());
        if let Some(p) = prefer {
            req = req.header("prefer", p);
        }
        req.send()
    };

    let r = post(Some("return=minimal")).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert_eq!(r.headers()["preference-applied"], "return=minimal");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let stored = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert_eq!(stored.status(), StatusCode::OK);
    assert!(stored.headers().get("preference-applied").is_none());
    assert_eq!(stored.json::<Value>().await.unwrap()["type"], "document");

    let r = post(Some("respond-async, return=\"OperationOutcome\"")).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["preference-applied"], "return=OperationOutcome");
    let loc2 = r.headers()["location"].to_str().unwrap().to_string();
    let oo: Value = r.json().await.unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(oo["issue"][0]["severity"], "information");
    let id = loc2.trim_start_matches("/documents/");
    assert_eq!(oo["issue"][0]["diagnostics"], format!("document {id} version 1 created"));

    for (prefer, applied) in
        [(None, None), (Some("return=whatever"), None), (Some("return=representation"), Some("return=representation"))]
    {
        let r = post(prefer).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers().get("preference-applied").map(|v| v.to_str().unwrap()), applied, "{prefer:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "Bundle", "{prefer:?}");
    }

    // an update honours it too
    input["primaryExamination"]["preliminaryDiagnosis"]["icd10"] = json!("K35.3");
    let r = app
        .http
        .put(app.url(&loc))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("content-type", "application/json")
        .header("if-match", "W/\"1\"")
        .header("prefer", "return=minimal")
        .body(serde_json::to_vec(&input).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let latest = app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap();
    assert!(latest.text().await.unwrap().contains("K35.3"));
}
