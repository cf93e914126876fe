//! Stored signed documents (tests/fixtures/sign/):
//!
//! * `hujjat/` — documents signed by this library (a co-signed Form 003, a Form 096) with the CA
//!   that signed them and the records returned at signing time. They must keep verifying at their
//!   signing time after any future change of the code (archive compatibility).
//! * `python/` — documents signed by the independent reference signer
//!   `../shared/tools/lib/sign_bundle.py` (Python jwcrypto + rfc8785, openssl-made PKI) with
//!   ES256, ES384, RS256, PS256, a `Bundle/<id>` target and a counter-signature: the library's
//!   verifier must accept another implementation's signatures, not only its own.

mod sign_support;

use hujjat::sign::{verify_bundle, Status, VerifyAt};
use openssl::x509::X509;
use serde_json::{json, Value};
use sign_support::*;

fn fixture_dir(sub: &str) -> std::path::PathBuf {
    manifest().join("tests/fixtures/sign").join(sub)
}

fn anchors(sub: &str) -> Vec<X509> {
    X509::stack_from_pem(&std::fs::read(fixture_dir(sub).join("ca.pem")).unwrap()).unwrap()
}

#[test]
fn documents_signed_by_earlier_builds_still_verify_at_their_signing_time() {
    let records = load_json(&fixture_dir("hujjat").join("records.json"));
    let anchors = anchors("hujjat");
    let mut files = Vec::new();
    for (file, recs) in records.as_object().unwrap() {
        let path = fixture_dir("hujjat").join(file);
        let doc = load_json(&path);
        let rep = verify_bundle(&doc, &anchors, VerifyAt::SigT);
        assert_eq!(rep.status, Status::Valid, "{file}: {:?}", rep.failures());
        let recs = recs.as_array().unwrap();
        assert_eq!(rep.signatures.len(), recs.len());
        for (s, r) in rep.signatures.iter().zip(recs) {
            assert_eq!(s.payload_sha256.as_deref(), r["payload_sha256"].as_str(), "{file}");
            assert_eq!(s.signer.as_ref().unwrap().pinfl.as_deref(), r["pinfl"].as_str());
            assert_eq!(s.signer.as_ref().unwrap().serial_number.as_str(), r["certificate_serial"].as_str().unwrap());
        }
        // the 10-minute leaves are long expired: "now" must say so
        let leaf_end = s_not_after(&rep.signatures[0]);
        if chrono::Utc::now() > leaf_end {
            let now = verify_bundle(&doc, &anchors, VerifyAt::Now);
            assert!(!now.ok);
            assert!(now.signatures[0].checks.get("validity").unwrap().failed());
        }
        files.push(path);
    }
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let r = jws_verify(&refs, Some(&fixture_dir("hujjat").join("ca.pem")), Some("sigT"), true);
    assert_eq!(r.code, 0, "{}", r.all());
}

fn s_not_after(s: &hujjat::sign::SignatureReport) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s.signer.as_ref().unwrap().not_after.as_ref().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn signatures_of_the_independent_python_signer_verify() {
    let anchors = anchors("python");
    let cases: [(&str, &[&str]); 6] = [
        ("py-es256.json", &["ES256"]),
        ("py-es384.json", &["ES384"]),
        ("py-rs256.json", &["RS256"]),
        ("py-ps256.json", &["PS256"]),
        ("py-bundle-id.json", &["ES256"]),
        ("py-countersigned.json", &["ES256", "ES256"]),
    ];
    for (file, algs) in cases {
        let doc = load_json(&fixture_dir("python").join(file));
        let rep = verify_bundle(&doc, &anchors, VerifyAt::SigT);
        assert_eq!(rep.status, Status::Valid, "{file}: {:?}", rep.failures());
        let got: Vec<String> = rep.signatures.iter().map(|s| s.header.as_ref().unwrap().alg.clone().unwrap()).collect();
        assert_eq!(got, algs, "{file}");
        for s in &rep.signatures {
            // the reference signer puts only a reference in agent.who: matched through the
            // PractitionerRole -> Practitioner PINFL
            let id = s.checks.get("signerIdentity").unwrap();
            assert_eq!(id.ok, Some(true), "{file}: {id:?}");
        }
        // one changed value breaks every signature
        let mut t = doc.clone();
        t["entry"][1]["resource"]["gender"] =
            json!(if doc["entry"][1]["resource"]["gender"] == "male" { "female" } else { "male" });
        let rep = verify_bundle(&t, &anchors, VerifyAt::SigT);
        assert!(!rep.ok, "{file}");
        assert!(rep.signatures.iter().all(|s| s.checks.get("signature").unwrap().failed()), "{file}");
    }
    // the co-signer's Provenance points at the other practitioner: a swapped reference is caught
    let mut t: Value = load_json(&fixture_dir("python").join("py-countersigned.json"));
    let n = t["entry"].as_array().unwrap().len();
    t["entry"][n - 1]["resource"]["agent"][0]["who"]["reference"] =
        json!("urn:uuid:00300005-0000-4000-8000-000000000000");
    let rep = verify_bundle(&t, &anchors, VerifyAt::SigT);
    let id = rep.signatures[1].checks.get("signerIdentity").unwrap();
    assert!(id.failed() && id.reason.as_ref().unwrap().contains("PINFL 31505820250011"), "{id:?}");
}
