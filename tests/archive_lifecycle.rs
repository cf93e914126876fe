//! Issue 6: lifecycle per the DHP. A signed document is amended by a new document that points at
//! the one it replaces (`Composition.relatesTo replaces`) and is signed again — then the old one
//! is superseded; or a document is marked entered-in-error with a reason. Stored bytes never
//! change and nothing is deleted; search shows each document with its state.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn bundle_bytes(app: &TestApp, id: &str) -> Vec<u8> {
    let r = req(app, Method::GET, &format!("/Bundle/{id}"), &As::Client(Cred::demo())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}

async fn state_in_search(app: &TestApp, id: &str) -> String {
    let b: Value = req(app, Method::GET, &format!("/Bundle?_id={id}&_summary=true"), &As::Client(Cred::demo()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["total"], 1, "{b}");
    b["entry"][0]["extension"][0]["valueCode"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn amend_then_supersede_and_entered_in_error() {
    let app = TestApp::spawn().await;
    let mis = As::Client(Cred::demo());
    let input = example_003();
    let old = create_signed(&app, &Cred::demo(), &input).await;
    let old_bytes = bundle_bytes(&app, &old).await;
    let old_bundle: Value = serde_json::from_slice(&old_bytes).unwrap();
    let old_ident = old_bundle["entry"][0]["resource"]["identifier"][0].clone();

    // a draft cannot be amended (change it with PUT)
    let draft = create(&app, &Cred::demo(), "003", &example_003()).await;
    let r =
        req(&app, Method::POST, &format!("/documents/{draft}/$amend"), &mis).json(&example_003()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // amend: new input (a corrected diagnosis text, say) → a new draft that replaces the old one
    let mut corrected = example_003();
    corrected["patient"]["name"]["family"] = json!("Tuzatilgan");
    let r = req(&app, Method::POST, &format!("/documents/{old}/$amend"), &mis).json(&corrected).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let new = r.headers()["location"].to_str().unwrap().trim_start_matches("/documents/").to_string();
    assert_ne!(new, old);
    let b: Value = r.json().await.unwrap();
    let rel = &b["entry"][0]["resource"]["relatesTo"];
    assert_eq!(rel[0]["type"], "replaces", "{rel}");
    assert_eq!(rel[0]["resourceReference"]["identifier"], old_ident);
    assert_eq!(b["entry"][0]["resource"]["status"], "final", "the Form 003 profile fixes status = final");
    // until the amendment is signed, the old document stays as it was
    assert_eq!(state_in_search(&app, &old).await, "signed");
    assert_eq!(state_in_search(&app, &new).await, "draft");
    // one open amendment at a time
    let r = req(&app, Method::POST, &format!("/documents/{old}/$amend"), &mis).json(&corrected).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // the amendment is changed like any draft, and keeps its relation
    let r = req(&app, Method::PUT, &format!("/documents/{new}"), &mis)
        .header("if-match", "W/\"1\"")
        .json(&corrected)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["entry"][0]["resource"]["relatesTo"][0]["resourceReference"]["identifier"], old_ident);

    // signing the amendment supersedes the old document, in the same transaction
    let signed = app.state.docs.sign(&new, 2, &signer_for(&corrected, &attending(&corrected))).await.unwrap();
    assert_eq!(state_in_search(&app, &old).await, "superseded");
    assert_eq!(state_in_search(&app, &new).await, "signed");
    assert_eq!(bundle_bytes(&app, &old).await, old_bytes, "the superseded document's bytes never change");
    let found: Value = req(&app, Method::GET, "/Bundle?type=document&state=superseded&_summary=true", &mis)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
    assert!(found["entry"][0]["fullUrl"].as_str().unwrap().ends_with(&old));
    // a superseded document can be neither signed again nor amended again
    let again = app.state.docs.sign(&old, 2, &signer_for(&input, &attending(&input))).await;
    assert!(matches!(again, Err(hujjat::error::AppError::Conflict(_))), "{:?}", again.err());
    let r = req(&app, Method::POST, &format!("/documents/{old}/$amend"), &mis).json(&corrected).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let ev = hujjat::archive::lifecycle::events(&app.state.docs.store, &old).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].event.as_str(), ev[0].previous_state.as_str()), ("superseded", "signed"));
    assert_eq!(ev[0].related_id.as_deref(), Some(new.as_str()));

    // the signed amendment passes the independent checkers (relatesTo included)
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("amended.json");
    std::fs::write(&f, &signed.bundle).unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, app.state.docs.ca.anchors_pem()).unwrap();
    oracle("jws-verify", &["--summary", "--trust", pem.to_str().unwrap()], std::slice::from_ref(&f));
    oracle("fhir-validate", &[], std::slice::from_ref(&f));
    oracle("dhp-profile-check", &[], &[f]);

    // entered-in-error: a state change with a reason; the bytes stay; nothing can change it after
    let before = bundle_bytes(&app, &new).await;
    let r = req(&app, Method::POST, &format!("/documents/{new}/$entered-in-error"), &mis)
        .json(&json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "wrong patient"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["state"], "entered-in-error");
    assert_eq!(out["previousState"], "signed");
    assert_eq!(state_in_search(&app, &new).await, "entered-in-error");
    assert_eq!(bundle_bytes(&app, &new).await, before);
    let r = req(&app, Method::POST, &format!("/documents/{new}/$entered-in-error"), &mis)
        .json(&json!({"reason": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = req(&app, Method::PUT, &format!("/documents/{new}"), &mis)
        .header("if-match", "W/\"3\"")
        .json(&corrected)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let again = app.state.docs.sign(&new, 3, &signer_for(&corrected, &attending(&corrected))).await;
    assert!(matches!(again, Err(hujjat::error::AppError::Conflict(_))), "{:?}", again.err());
    let ev = hujjat::archive::lifecycle::events(&app.state.docs.store, &new).await.unwrap();
    assert_eq!(ev.last().unwrap().reason.as_deref(), Some("wrong patient"));
    // every version is still there
    let h: Value =
        req(&app, Method::GET, &format!("/documents/{new}/_history"), &mis).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 3);
    assert_eq!(h["entry"][0]["response"]["etag"], "W/\"3\"");

    // a draft can be entered in error too
    let r = req(&app, Method::POST, &format!("/documents/{draft}/$entered-in-error"), &mis)
        .json(&json!({"reason": "opened by mistake"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.state.docs.store.count_documents().await.unwrap(), 3, "nothing is ever deleted");
}
