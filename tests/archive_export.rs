//! Issue 6: `GET /documents/{id}/$export` — a ZIP with the signed Bundle byte-for-byte as stored,
//! the verification report and the certificate chain; it verifies offline with the independent
//! `../shared/tools/jws-verify` using only the chain inside it (and not with another CA).

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn unzip(zip: &Path, dir: &Path) {
    // Python's zipfile checks every CRC-32 while extracting
    let out = Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2])"])
        .arg(zip)
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn exported_package_verifies_offline_with_only_its_chain() {
    let app = TestApp::spawn().await;
    let a = Cred::demo();
    let input = example_003();
    let id = create(&app, &a, "003", &input).await;
    let doctor = signer_for(&input, &attending(&input));
    app.state.docs.sign(&id, 1, &doctor).await.unwrap();
    let head = signer_for(&input, input["responsiblePersons"]["headOfDepartment"].as_str().unwrap());
    app.state.docs.sign(&id, 2, &head).await.unwrap();

    // an archive system exports it
    let archive = As::Client(client(&app, "archive-sys", &["archive"]).await);
    let r = req(&app, Method::GET, &format!("/documents/{id}/$export"), &archive).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains(&format!("hujjat-{id}-v3.zip")));
    let zip = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("package.zip");
    std::fs::write(&zpath, &zip).unwrap();
    let x = dir.path().join("x");
    unzip(&zpath, &x);
    for f in [
        "bundle.json",
        "report.json",
        "chain.pem",
        "signers.pem",
        "document.html",
        "manifest.json",
        "SHA256SUMS",
        "README.txt",
    ] {
        assert!(x.join(f).exists(), "{f} is in the package");
    }

    // bundle.json is byte-for-byte the stored version (and what GET /Bundle/{id} serves)
    let bundle = std::fs::read(x.join("bundle.json")).unwrap();
    let stored = app.state.docs.store.version(&id, 3).await.unwrap().unwrap();
    assert_eq!(bundle, stored.bundle.as_bytes());
    let served =
        req(&app, Method::GET, &format!("/Bundle/{id}"), &archive).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bundle, served.as_ref());
    // SHA256SUMS covers every other file
    let sums = std::fs::read_to_string(x.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 6);
    for line in sums.lines() {
        let (h, name) = line.split_once("  ").unwrap();
        assert_eq!(hex::encode(Sha256::digest(std::fs::read(x.join(name)).unwrap())), h, "{name}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(x.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["status"], "valid");
    assert_eq!(report["signatures"].as_array().unwrap().len(), 2);
    let manifest: Value = serde_json::from_slice(&std::fs::read(x.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["document"], id.as_str());
    assert_eq!(manifest["verification"], "valid");
    assert_eq!(manifest["exportedBy"]["id"], "archive-sys");
    let readme = std::fs::read_to_string(x.join("README.txt")).unwrap();
    assert!(readme.contains("jws-verify --trust chain.pem --at sigT bundle.json"));
    assert!(readme.contains(&doctor.pinfl) && readme.contains(&head.pinfl));
    let html = std::fs::read_to_string(x.join("document.html")).unwrap();
    assert!(html.contains("<article class=\"document\">") && !html.contains("<script"));
    assert_eq!(std::fs::read_to_string(x.join("signers.pem")).unwrap().matches("BEGIN CERTIFICATE").count(), 2);

    // the independent verifier, with nothing but the package (run where the package was unpacked)
    let chain = x.join("chain.pem");
    let out = oracle(
        "jws-verify",
        &["--summary", "--trust", chain.to_str().unwrap(), "--at", "sigT"],
        &[x.join("bundle.json")],
    );
    assert!(out.contains("2 signature"), "{out}");
    // `hujjat verify` agrees
    let st = Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .args(["verify", x.join("bundle.json").to_str().unwrap(), "--trust", chain.to_str().unwrap(), "--at", "sigT"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stdout));

    // ...and trust is really evaluated: another CA's chain does not verify it
    let other_dir = tempfile::tempdir().unwrap();
    let other = hujjat::sign::SigningCa::load_or_create_dev(other_dir.path()).unwrap();
    let other_pem = other_dir.path().join("other.pem");
    std::fs::write(&other_pem, other.anchors_pem()).unwrap();
    let st = Command::new(shared().join("tools/jws-verify"))
        .args(["--summary", "--trust", other_pem.to_str().unwrap(), "--at", "sigT"])
        .arg(x.join("bundle.json"))
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1), "a foreign CA must not verify: {}", String::from_utf8_lossy(&st.stdout));

    // the export is audited with the digest of what left the archive
    let admin = As::Client(client(&app, "admin-sys", &["admin"]).await);
    let evs: Value = req(&app, Method::GET, &format!("/AuditEvent?entity={id}&subtype=export"), &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ev = &evs["entry"][0]["resource"];
    let detail: Value = serde_json::from_str(ev["entity"][1]["detail"][0]["valueString"].as_str().unwrap_or("{}"))
        .unwrap_or(Value::Null);
    assert_eq!(detail["bundleSha256"], hex::encode(Sha256::digest(&bundle)), "{ev:#}");
    assert_eq!(detail["packageSha256"], hex::encode(Sha256::digest(&zip)));
}

#[tokio::test]
async fn an_unsigned_document_exports_and_says_so() {
    let app = TestApp::spawn().await;
    let id = create(&app, &Cred::demo(), "003", &example_003()).await;
    let r =
        req(&app, Method::GET, &format!("/documents/{id}/$export"), &As::Client(Cred::demo())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("p.zip");
    std::fs::write(&zpath, r.bytes().await.unwrap()).unwrap();
    unzip(&zpath, dir.path());
    let readme = std::fs::read_to_string(dir.path().join("README.txt")).unwrap();
    assert!(readme.contains("no signature"), "{readme}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["ok"], false);
}
