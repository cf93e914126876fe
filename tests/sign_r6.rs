//! The FHIR R6 worked JWS example (signatures.md §11.1) as a cryptographic test vector.
//!
//! Trust: its certificate is self-signed, RSA 2056-bit, without KeyUsage, and expired on
//! 2026-06-20. Without anchors the library verifies it (crypto, chain, validity at sigT, signer
//! identity) with trust *not evaluated* and status `indeterminate`; with the certificate itself
//! as the anchor it is trusted but fails `keyUsage` (like `jws-verify --trust`).

mod sign_support;

use hujjat::sign::{payload_for, verify_bundle, verify_bundle_json, Canonicalization, Status, VerifyAt};
use openssl::x509::X509;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sign_support::*;

const SIG_T: &str = "2025-07-01T08:48:05Z";
const SPEC_SHA256: &str = "5b0cd136e42d565803aa3a429298af6b4229dda7d8920c770a34bf8f8ee2aef0";

fn example() -> Value {
    load_json(&shared_fixture("r6/r6-example-signed.json"))
}

fn at_sig_t() -> VerifyAt {
    VerifyAt::At(chrono::DateTime::parse_from_rfc3339(SIG_T).unwrap().with_timezone(&chrono::Utc))
}

#[test]
fn payload_is_byte_exact_and_hashes_to_the_spec_value() {
    let p = payload_for(&example(), Canonicalization::Json).unwrap();
    assert_eq!(p, std::fs::read(shared_fixture("r6/r6-example-payload.jcs")).unwrap());
    assert_eq!(p.len(), 542);
    assert_eq!(hex::encode(Sha256::digest(&p)), SPEC_SHA256);
}

#[test]
fn verifies_at_its_signing_time_without_anchors() {
    for at in [at_sig_t(), VerifyAt::SigT] {
        let rep = verify_bundle(&example(), &[], at);
        assert!(rep.ok, "{:?}", rep.failures());
        assert_eq!(rep.status, Status::Indeterminate, "no anchor: trust not evaluated");
        let s = &rep.signatures[0];
        assert!(s.legacy_bundle_signature);
        assert_eq!(s.location, "Bundle.signature");
        assert_eq!(s.canonicalization.as_deref(), Some("http://hl7.org/fhir/canonicalization/json"));
        assert_eq!(s.payload_sha256.as_deref(), Some(SPEC_SHA256));
        assert_eq!(s.header.as_ref().unwrap().alg.as_deref(), Some("RS256"));
        for n in ["signature", "chain", "validity", "signingTime", "signerIdentity", "srCms", "canonicalization"] {
            assert_eq!(s.checks.get(n).and_then(|c| c.ok), Some(true), "{n}: {:?}", s.checks.get(n));
        }
        assert_eq!(s.checks.get("trust").unwrap().ok, None);
        assert_eq!(s.checks.get("keyUsage").unwrap().ok, None);
    }
}

#[test]
fn fails_now_because_the_certificate_expired() {
    let rep = verify_bundle(&example(), &[], VerifyAt::Now);
    assert!(!rep.ok);
    let s = &rep.signatures[0];
    let v = s.checks.get("validity").unwrap();
    assert_eq!(v.ok, Some(false));
    assert!(v.reason.as_ref().unwrap().contains("expired"), "{v:?}");
    assert_eq!(s.checks.get("signature").unwrap().ok, Some(true), "the cryptography still holds");
}

#[test]
fn with_itself_as_anchor_it_is_trusted_but_lacks_key_usage() {
    let cert = X509::from_pem(&std::fs::read(shared_fixture("r6/r6-example-cert.pem")).unwrap()).unwrap();
    let rep = verify_bundle(&example(), &[cert], at_sig_t());
    let s = &rep.signatures[0];
    assert_eq!(s.checks.get("trust").unwrap().ok, Some(true), "{:?}", s.checks.get("trust"));
    let ku = s.checks.get("keyUsage").unwrap();
    assert_eq!(ku.ok, Some(false));
    assert!(ku.reason.as_ref().unwrap().contains("digitalSignature"));
    assert!(!rep.ok);
    // the oracle agrees
    let r = jws_verify(
        &[&shared_fixture("r6/r6-example-signed.json")],
        Some(&shared_fixture("r6/r6-example-cert.pem")),
        Some(SIG_T),
        true,
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("keyUsage"), "{}", r.all());
}

#[test]
fn tampered_fixture_and_every_changed_value_fail() {
    let rep = verify_bundle(&load_json(&shared_fixture("r6/r6-example-tampered.json")), &[], at_sig_t());
    assert!(!rep.ok);
    assert_eq!(rep.signatures[0].checks.get("signature").unwrap().ok, Some(false));

    // change each scalar outside Bundle.signature, one at a time
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| pointers(x, format!("{at}/{k}"), out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
            _ => out.push(at),
        }
    }
    let base = example();
    let mut ptrs = Vec::new();
    pointers(&base, String::new(), &mut ptrs);
    let ptrs: Vec<String> = ptrs.into_iter().filter(|p| !p.starts_with("/signature")).collect();
    assert!(ptrs.len() >= 12, "{ptrs:?}");
    for p in &ptrs {
        let mut t = base.clone();
        let slot = t.pointer_mut(p).unwrap();
        *slot = match slot {
            Value::String(s) => json!(format!("{s}x")),
            Value::Number(n) => json!(n.as_f64().unwrap() + 1.0),
            Value::Bool(b) => json!(!*b),
            _ => json!("x"),
        };
        let rep = verify_bundle(&t, &[], at_sig_t());
        assert!(!rep.ok, "changing {p} must break the signature");
        if p == "/resourceType" {
            assert_eq!(rep.problems, vec!["not a FHIR Bundle".to_string()]);
        } else {
            assert_eq!(rep.signatures[0].checks.get("signature").unwrap().ok, Some(false), "{p}");
        }
    }
    // JCS number normalisation: 1 -> 1.00 is the same number
    let mut t = base.clone();
    let text = serde_json::to_string(&t).unwrap().replace(r#""value":1}"#, r#""value":1.00}"#);
    t = serde_json::from_str(&text).unwrap();
    assert!(verify_bundle(&t, &[], at_sig_t()).ok);
}

#[test]
fn pretty_printed_and_reordered_still_verify() {
    let bytes = std::fs::read(shared_fixture("r6/r6-example-reordered.json")).unwrap();
    let rep = verify_bundle_json(&bytes, &[], at_sig_t());
    assert!(rep.ok, "{:?}", rep.failures());
    let pretty = serde_json::to_vec_pretty(&example()).unwrap();
    assert!(verify_bundle_json(&pretty, &[], VerifyAt::SigT).ok);
    // plain json signs the root id
    let mut t = example();
    t["id"] = json!("other");
    assert!(!verify_bundle(&t, &[], at_sig_t()).ok);
}

#[test]
fn oracle_agrees_on_the_example() {
    let r = jws_verify(
        &[&shared_fixture("r6/r6-example-signed.json"), &shared_fixture("r6/r6-example-reordered.json")],
        None,
        Some(SIG_T),
        true,
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = jws_verify(&[&shared_fixture("r6/r6-example-tampered.json")], None, Some(SIG_T), true);
    assert_eq!(r.code, 1, "{}", r.all());
}
