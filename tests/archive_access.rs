//! Issue 6: the access-control matrix — every role against every archive endpoint (and the MIS
//! endpoints they must not reach), allowed and denied; MIS A cannot read, search or count MIS B's
//! documents; no credentials → 401, wrong role → 403, someone else's document → 404.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ORG: &str = "201234567"; // organization.taxId of the Form 003 example

struct Who {
    name: &'static str,
    who: As,
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let app = TestApp::spawn().await;
    let a = Cred::demo();
    let b = client(&app, "mis-b", &["documents"]).await;
    let archive = client(&app, "archive-sys", &["archive"]).await;
    let admin_client = client(&app, "admin-sys", &["admin"]).await;
    grant(&app, "30000000000001", "archivist", &[]).await;
    grant(&app, "30000000000002", "archivist", &["999999999"]).await;
    grant(&app, "30000000000003", "archivist", &[ORG]).await;
    grant(&app, "30000000000004", "admin", &[]).await;
    let archivist = login(&app, "30000000000001", "Arxivchi Birinchi").await;
    let archivist_other_org = login(&app, "30000000000002", "Arxivchi Boshqa").await;
    let archivist_same_org = login(&app, "30000000000003", "Arxivchi Shu").await;
    let admin = login(&app, "30000000000004", "Admin Odam").await;
    let no_role = login(&app, "30000000000005", "Rolsiz Odam").await;

    // A's signed document, and three of B's (A must not count them)
    let doc = create_signed(&app, &a, &example_003()).await;
    for _ in 0..3 {
        create(&app, &b, "003", &example_003()).await;
    }

    let whos = [
        Who { name: "nobody", who: As::Nobody },
        Who { name: "bad credentials", who: As::BadCredentials },
        Who { name: "MIS A", who: As::Client(a.clone()) },
        Who { name: "MIS B", who: As::Client(b.clone()) },
        Who { name: "archive client", who: As::Client(archive.clone()) },
        Who { name: "admin client", who: As::Client(admin_client.clone()) },
        Who { name: "archivist", who: As::Session(archivist.clone()) },
        Who { name: "archivist (other org)", who: As::Session(archivist_other_org.clone()) },
        Who { name: "archivist (same org)", who: As::Session(archivist_same_org.clone()) },
        Who { name: "admin", who: As::Session(admin.clone()) },
        Who { name: "no role", who: As::Session(no_role.clone()) },
    ];
    // expected status per principal, in the order of `whos`
    use StatusCode as S;
    const U: S = S::UNAUTHORIZED;
    const F: S = S::FORBIDDEN;
    const N: S = S::NOT_FOUND;
    const O: S = S::OK;
    const R: S = S::SEE_OTHER;
    let read_like = [U, U, O, N, O, O, O, N, O, O, F];
    let matrix: Vec<(Method, String, [S; 11])> = vec![
        (Method::GET, "/Bundle?type=document".into(), [U, U, O, O, O, O, O, O, O, O, F]),
        (Method::GET, format!("/Bundle/{doc}"), read_like),
        (Method::GET, format!("/Bundle/{doc}/_history/1"), read_like),
        (Method::GET, format!("/Bundle/{doc}/_history"), read_like),
        (Method::GET, format!("/documents/{doc}/_history"), read_like),
        (Method::GET, format!("/documents/{doc}/$export"), read_like),
        (Method::GET, "/AuditEvent".into(), [U, U, F, F, F, O, F, F, F, O, F]),
        // the MIS API: sessions are no credentials there; archive and admin clients are read-only
        (Method::GET, format!("/documents/{doc}"), [U, U, O, N, F, F, U, U, U, U, U]),
        (Method::GET, format!("/documents/{doc}/$verify"), [U, U, O, N, F, F, U, U, U, U, U]),
        // the archive UI: people only; without a session, the login page
        (Method::GET, "/archive?go=1".into(), [R, R, R, R, R, R, O, O, O, O, F]),
        (Method::GET, format!("/archive/documents/{doc}"), [R, R, R, R, R, R, O, N, O, O, F]),
        (Method::GET, format!("/archive/documents/{doc}/export"), [R, R, R, R, R, R, O, N, O, O, F]),
    ];
    let mut failures = Vec::new();
    for (method, path, expected) in &matrix {
        for (w, exp) in whos.iter().zip(expected) {
            let r = req(&app, method.clone(), path, &w.who).send().await.unwrap();
            let got = r.status();
            if got != *exp {
                failures.push(format!("{method} {path} as {}: expected {exp}, got {got}", w.name));
                continue;
            }
            if got == S::SEE_OTHER {
                let loc = r.headers()["location"].to_str().unwrap();
                assert!(loc.starts_with("/login?next="), "{loc}");
            }
            if got.is_client_error() {
                let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                if ct.contains("json") {
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(body["resourceType"], "OperationOutcome", "{method} {path} as {}", w.name);
                }
            }
        }
    }

    // writes: POST a document (MIS API), $entered-in-error, $amend — allowed ones on fresh documents
    let create_expected = [U, U, S::CREATED, S::CREATED, F, F, U, U, U, U, U];
    for (w, exp) in whos.iter().zip(create_expected) {
        let r = req(&app, Method::POST, "/forms/003/documents", &w.who).json(&example_003()).send().await.unwrap();
        if r.status() != exp {
            failures.push(format!("POST /forms/003/documents as {}: expected {exp}, got {}", w.name, r.status()));
        }
    }
    let eie_expected = [U, U, O, N, F, O, F, F, F, O, F];
    for (w, exp) in whos.iter().zip(eie_expected) {
        let target = if exp == O { create_signed(&app, &a, &example_003()).await } else { doc.clone() };
        let r = req(&app, Method::POST, &format!("/documents/{target}/$entered-in-error"), &w.who)
            .json(&json!({"reason": "wrong patient"}))
            .send()
            .await
            .unwrap();
        if r.status() != exp {
            failures.push(format!("POST $entered-in-error as {}: expected {exp}, got {}", w.name, r.status()));
        }
    }
    let amend_expected = [U, U, S::CREATED, N, F, F, U, U, U, U, U];
    for (w, exp) in whos.iter().zip(amend_expected) {
        let target = if exp == S::CREATED { create_signed(&app, &a, &example_003()).await } else { doc.clone() };
        let r = req(&app, Method::POST, &format!("/documents/{target}/$amend"), &w.who)
            .json(&example_003())
            .send()
            .await
            .unwrap();
        if r.status() != exp {
            failures.push(format!("POST $amend as {}: expected {exp}, got {}", w.name, r.status()));
        }
    }
    assert!(failures.is_empty(), "access matrix violations:\n{}", failures.join("\n"));

    // the denied writes changed nothing
    let d = hujjat::archive::load(&app.state.docs.store, &doc).await.unwrap().unwrap();
    assert_eq!(d.state, "signed");

    // counts: A sees only its own documents (search, _count=0 total), B its own, the archive all
    let total = |who: As| {
        let app = &app;
        async move {
            let r = req(app, Method::GET, "/Bundle?type=document&_count=0", &who).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let b: Value = r.json().await.unwrap();
            assert!(b.get("entry").and_then(Value::as_array).is_none_or(|e| e.is_empty()));
            b["total"].as_i64().unwrap()
        }
    };
    let all = app.state.docs.store.count_documents().await.unwrap();
    let a_total = total(As::Client(a.clone())).await;
    let b_total = total(As::Client(b.clone())).await;
    assert_eq!(b_total, 4, "B created 4 documents");
    assert_eq!(a_total + b_total, all);
    assert_eq!(total(As::Client(archive.clone())).await, all);
    assert_eq!(total(As::Session(archivist_other_org.clone())).await, 0);
    assert_eq!(total(As::Session(archivist_same_org.clone())).await, all, "every test document is of ORG");
    // B searching by A's document id, patient or signer finds nothing
    let input = example_003();
    for q in [
        format!("_id={doc}"),
        format!("composition.subject.identifier={}", input["patient"]["pinfl"].as_str().unwrap()),
        format!("signer={}", attending(&input)),
    ] {
        let r: Value = req(&app, Method::GET, &format!("/Bundle?type=document&{q}"), &As::Client(b.clone()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = r["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap().rsplit('/').next().unwrap())
            .collect();
        assert!(!ids.contains(&doc.as_str()), "B found A's document with {q}");
        if q.starts_with("signer") || q.starts_with("_id") {
            assert_eq!(r["total"], 0, "{q}: {r}");
        }
    }

    // bearer tokens work like Basic; an unknown bearer is 401
    let tok: Value = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&archive.0, Some(&archive.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .get(app.url(&format!("/Bundle/{doc}")))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.http.get(app.url("/Bundle?type=document")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // a refused look at someone else's document leaves a trace with a failure outcome
    let r: Value =
        req(&app, Method::GET, &format!("/AuditEvent?entity=Bundle/{doc}&agent=mis-b"), &As::Session(admin.clone()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let outcomes: Vec<&str> = r["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["outcome"]["code"]["code"].as_str().unwrap())
        .collect();
    assert!(!outcomes.is_empty() && outcomes.iter().all(|o| *o == "4"), "{outcomes:?}");

    // revoking a role ends access at once
    let n = hujjat::archive::access::revoke(
        &app.state.docs.store,
        "30000000000001",
        Some("archivist"),
        &hujjat::archive::audit::Agent::system("test"),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let r = req(&app, Method::GET, "/Bundle?type=document", &As::Session(archivist)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the revoked person's session is gone");
}

#[tokio::test]
async fn bad_input_is_an_operation_outcome_never_a_500() {
    let app = TestApp::spawn().await;
    let a = As::Client(Cred::demo());
    grant(&app, "30000000000004", "admin", &[]).await;
    let admin = As::Session(login(&app, "30000000000004", "Admin Odam").await);
    for (who, path) in [
        (&a, "/Bundle?type=document&composition.date=ge20x4"),
        (&a, "/Bundle?type=document&foo=bar"),
        (&a, "/Bundle?type=document&_count=-1"),
        (&a, "/Bundle?type=document&_count=abc"),
        (&a, "/Bundle?type=document&_sort=patient"),
        (&a, "/Bundle?type=document&_cursor=%%%"),
        (&a, "/Bundle?type=document&_cursor=WyJ4Il0"),
        (&a, "/Bundle?type=document&state=deleted"),
        (&a, "/Bundle?composition.date:missing=true"),
        (&admin, "/AuditEvent?date=yesterday"),
        (&admin, "/AuditEvent?who=x"),
        (&admin, "/AuditEvent?_cursor=x"),
    ] {
        let r = req(&app, Method::GET, path, who).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["resourceType"], "OperationOutcome", "{path}");
    }
    for path in ["/Bundle/nope", "/Bundle/nope/_history/x", "/documents/nope/_history", "/documents/nope/$export"] {
        let r = req(&app, Method::GET, path, &a).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // entered-in-error needs a JSON body with a reason
    let doc = create_signed(&app, &Cred::demo(), &example_003()).await;
    let p = format!("/documents/{doc}/$entered-in-error");
    let r = req(&app, Method::POST, &p, &a).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = req(&app, Method::POST, &p, &a).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = req(&app, Method::POST, &p, &a).json(&json!({"reason": "  "})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
