//! Signing through the service (issue 3): stored signatures, frozen content, verification endpoints,
//! and 100 signed documents of both forms checked by the independent verifier.

mod common;

use common::gen::{valid_instance, FormGen};
use common::*;
use hujjat::compose::{ComposeContext, Composer};
use hujjat::sign::Signer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;

fn signer_for(input: &Value, pinfl: &str) -> Signer {
    let p = input["practitioners"].as_array().unwrap().iter().find(|p| p["pinfl"] == pinfl).unwrap();
    let n = &p["name"];
    // as the identity module makes it from oneID's name parts: white space folded, at most 64 characters
    let name =
        hujjat::identity::signing_name(n["family"].as_str(), n["given"].as_str(), n["patronymic"].as_str(), None)
            .expect("a practitioner has a name");
    Signer { pinfl: pinfl.to_string(), name, role_display: p["positionText"].as_str().unwrap_or("").to_string() }
}

fn attending(input: &Value) -> String {
    input["responsiblePersons"]["attendingDoctor"].as_str().unwrap().to_string()
}

/// Another practitioner of the document than the attending doctor, if any.
fn second(input: &Value) -> Option<String> {
    let a = attending(input);
    input["practitioners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pinfl"].as_str())
        .find(|p| *p != a)
        .map(str::to_string)
}

#[tokio::test]
async fn sign_freeze_countersign_and_verify() {
    let app = TestApp::spawn().await;
    let input = example("003", "example");
    let r = app.post_form("003", &input).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = loc.trim_start_matches("/documents/").to_string();
    let docs = &app.state.docs;

    // a practitioner who is not in the document cannot sign it
    let stranger = Signer { pinfl: "12345678901234".into(), name: "Begona Shaxs".into(), role_display: String::new() };
    assert!(matches!(docs.sign(&id, 1, &stranger).await, Err(hujjat::error::AppError::Forbidden(_))));
    // a stale version cannot be signed
    let doctor = signer_for(&input, &attending(&input));
    assert!(matches!(docs.sign(&id, 7, &doctor).await, Err(hujjat::error::AppError::PreconditionFailed(_))));

    let s1 = docs.sign(&id, 1, &doctor).await.unwrap();
    assert_eq!(s1.version, 2);
    let signed: Value = serde_json::from_str(&s1.bundle).unwrap();
    let last = signed["entry"].as_array().unwrap().last().unwrap();
    assert_eq!(last["resource"]["resourceType"], "Provenance");

    // the content is frozen: PUT is a conflict
    let r = app
        .http
        .put(app.url(&loc))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .header("if-match", "W/\"2\"")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");

    // head of department counter-signs the same payload
    let head = signer_for(&input, input["responsiblePersons"]["headOfDepartment"].as_str().unwrap());
    let s2 = docs.sign(&id, 2, &head).await.unwrap();
    assert_eq!(s2.version, 3);

    let sigs: Value = app
        .http
        .get(app.url(&format!("{loc}/signatures")))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sigs = sigs["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0]["payload_sha256"], sigs[1]["payload_sha256"], "both signatures cover the same payload");
    assert_eq!(sigs[0]["signer_pinfl"], doctor.pinfl.as_str());

    // the stored document verifies
    let report: Value = app
        .http
        .get(app.url(&format!("{loc}/$verify")))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    let latest =
        app.http.get(app.url(&loc)).basic_auth(DEMO.0, Some(DEMO.1)).send().await.unwrap().text().await.unwrap();
    // any Bundle can be verified, also pretty-printed; a tampered one is refused
    let mut pretty: Value = serde_json::from_str(&latest).unwrap();
    let r: Value = app.http.post(app.url("/$verify")).json(&pretty).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["ok"], true, "{r:#}");
    pretty["entry"][1]["resource"]["birthDate"] = json!("1992-03-18");
    let r: Value = app.http.post(app.url("/$verify")).json(&pretty).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["ok"], false);
    let r = app.http.post(app.url("/$verify")).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // the independent verifier agrees, with the published trust anchors
    let pem = app.http.get(app.url("/trust/ca.pem")).send().await.unwrap().text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pem).unwrap();
    let f = dir.path().join("signed.json");
    std::fs::write(&f, &latest).unwrap();
    let out = oracle(
        "jws-verify",
        &["--summary", "--trust", dir.path().join("ca.pem").to_str().unwrap()],
        std::slice::from_ref(&f),
    );
    assert!(out.contains("2 signature"), "{out}");
    // and so does `hujjat verify`
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .args(["verify", f.to_str().unwrap(), "--trust", dir.path().join("ca.pem").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stdout));
}

#[tokio::test]
async fn hundred_signed_documents_pass_the_independent_checkers() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(dir.path()).await;
    let config = hujjat::config::Config::for_tests(&url, dir.path().to_path_buf());
    let (_router, state) = hujjat::app::build(config).await.unwrap();
    let composer = Composer::builtin().unwrap();
    let client = state.docs.store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap();
    let out = dir.path().join("signed");
    std::fs::create_dir_all(&out).unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut twice = 0;
    for form in ["003", "096"] {
        let g = FormGen::for_form(form);
        let def = composer.get(form).unwrap();
        for i in 0..50u64 {
            let mut input = valid_instance(&g, def, 0x5167_0000 + i);
            input.as_object_mut().unwrap().remove("documentId");
            let body = input.clone();
            let created = state.docs.create(&client, form, body).await.unwrap();
            let mut doc = state.docs.sign(&created.id, 1, &signer_for(&input, &attending(&input))).await.unwrap();
            if i % 3 == 0 {
                if let Some(p) = second(&input) {
                    doc = state.docs.sign(&created.id, 2, &signer_for(&input, &p)).await.unwrap();
                    twice += 1;
                }
            }
            let f = out.join(format!("{form}-{i}.json"));
            std::fs::write(&f, &doc.bundle).unwrap();
            files.push(f);
        }
    }
    assert!(twice >= 20, "some documents are signed twice ({twice})");
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, state.docs.ca.anchors_pem()).unwrap();
    let summary = oracle("jws-verify", &["--summary", "--trust", pem.to_str().unwrap()], &files);
    assert_eq!(summary.lines().filter(|l| l.contains("OK")).count(), 100, "{summary}");
    oracle("fhir-validate", &[], &files);
    oracle("dhp-profile-check", &[], &files);
    // unsigned composition of the same inputs is byte-identical to what was signed (determinism)
    let ctx = ComposeContext::new(uuid::Uuid::nil(), chrono::Utc::now().fixed_offset());
    let a = composer.get("003").unwrap().compose(&example("003", "example"), &ctx).unwrap();
    let b = composer.get("003").unwrap().compose(&example("003", "example"), &ctx).unwrap();
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}
