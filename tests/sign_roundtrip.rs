//! Signing the valid Form 003 / Form 096 fixtures once and by two practitioners, verified by the
//! library and by the independent oracles (jws-verify, fhir-validate, dhp-profile-check).

mod sign_support;

use std::path::Path;

use chrono::{Duration, Utc};
use hujjat::sign::{
    canonical_payload, sign_document, verify_bundle, Coding, Purpose, SignError, SignOptions, Status, TargetMode,
    VerifyAt, TARGET_FORMAT,
};
use openssl::x509::X509;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sign_support::*;

const FORMS: [&str; 2] = ["form-003-minimal.json", "form-096-minimal.json"];

fn assert_oracles_pass(files: &[&Path], ca_pem: &Path, expected_sigs: usize) {
    let r = jws_verify(files, Some(ca_pem), None, true);
    assert_eq!(r.code, 0, "jws-verify refused:\n{}", r.all());
    for f in files {
        let line = r.stdout.lines().find(|l| l.starts_with(&*f.to_string_lossy())).expect("a line per file");
        assert!(
            line.contains(&format!("OK {expected_sigs} signature(s) verified")),
            "unexpected jws-verify line: {line}"
        );
    }
    let r = fhir_validate(files);
    assert_eq!(r.code, 0, "fhir-validate refused the signed documents:\n{}", r.all());
    let r = dhp_profile_check(files);
    assert_eq!(r.code, 0, "dhp-profile-check refused the signed documents:\n{}", r.all());
}

#[test]
fn sign_each_form_once_and_verify_with_library_and_oracles() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let mut files = Vec::new();
    for name in FORMS {
        let doc = form(name);
        let now = Utc::now();
        let (signed, rec) = sign_document(&doc, &ca, &signer_a(), &SignOptions::default(), now).unwrap();

        // the record
        let payload = canonical_payload(&doc).unwrap();
        assert_eq!(rec.payload_sha256, hex::encode(Sha256::digest(&payload)));
        assert_eq!(rec.payload_bytes, payload.len());
        assert_eq!(rec.pinfl, PINFL_A);
        assert_eq!(rec.name, "Bahodir Rasulov");
        assert_eq!(rec.role, "Medical specialist");
        assert_eq!(rec.sig_t, now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let leaf = X509::from_pem(rec.leaf_pem.as_bytes()).unwrap();
        assert_eq!(rec.certificate_serial, hex::encode(leaf.serial_number().to_bn().unwrap().to_vec()));

        // the document: input unchanged, one entry appended last
        assert_eq!(signed["entry"].as_array().unwrap().len(), doc["entry"].as_array().unwrap().len() + 1);
        assert_eq!(canonical_payload(&signed).unwrap(), payload, "the Provenance must not change the payload");

        // own verifier, at now and at sigT
        for at in [VerifyAt::Now, VerifyAt::SigT] {
            let rep = verify_bundle(&signed, &ca.anchors(), at);
            assert!(rep.ok, "{:?}", rep.failures());
            assert_eq!(rep.status, Status::Valid);
            assert_eq!(rep.signatures.len(), 1);
            let s = &rep.signatures[0];
            assert_eq!(s.payload_sha256.as_deref(), Some(rec.payload_sha256.as_str()));
            assert_eq!(s.canonicalization.as_deref(), Some("http://hl7.org/fhir/canonicalization/json#document"));
            for n in [
                "signature",
                "chain",
                "trust",
                "validity",
                "keyUsage",
                "signingTime",
                "signerIdentity",
                "srCms",
                "crit",
                "alg",
            ] {
                assert_eq!(s.checks.get(n).and_then(|c| c.ok), Some(true), "check {n}: {:?}", s.checks.get(n));
            }
            assert_eq!(s.signer.as_ref().unwrap().pinfl.as_deref(), Some(PINFL_A));
            assert_eq!(s.checks.get("signerName").and_then(|c| c.ok), Some(true));
        }
        files.push(write_json(dir.path(), &format!("signed-{name}"), &signed));
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    assert_oracles_pass(&refs, &ca_pem, 1);
}

#[test]
fn two_practitioners_sign_in_either_order() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let mut files = Vec::new();
    for name in FORMS {
        let doc = form_two_signers(name);
        let now = Utc::now();
        let opts_b = SignOptions { purpose: Purpose::coauthor(), ..SignOptions::default() };
        let (once, rec_a) = sign_document(&doc, &ca, &signer_a(), &SignOptions::default(), now).unwrap();
        let (twice, rec_b) = sign_document(&once, &ca, &signer_b(), &opts_b, now + Duration::seconds(5)).unwrap();
        assert_eq!(rec_a.payload_sha256, rec_b.payload_sha256, "co-signatures sign the same payload");
        assert_ne!(rec_a.certificate_serial, rec_b.certificate_serial);
        assert_eq!(rec_b.practitioner_role_reference, twice["entry"][7]["fullUrl"].as_str().unwrap());

        // reverse order gives the same payload
        let (rev1, rec_b2) = sign_document(&doc, &ca, &signer_b(), &opts_b, now).unwrap();
        let (rev2, rec_a2) = sign_document(&rev1, &ca, &signer_a(), &SignOptions::default(), now).unwrap();
        assert_eq!(rec_b2.payload_sha256, rec_a.payload_sha256);
        assert_eq!(rec_a2.payload_sha256, rec_a.payload_sha256);

        for d in [&twice, &rev2] {
            let rep = verify_bundle(d, &ca.anchors(), VerifyAt::Now);
            assert!(rep.ok, "{:?}", rep.failures());
            assert_eq!(rep.status, Status::Valid);
            assert_eq!(rep.signatures.len(), 2);
            let pinfls: Vec<_> =
                rep.signatures.iter().map(|s| s.signer.as_ref().unwrap().pinfl.clone().unwrap()).collect();
            assert!(pinfls.contains(&PINFL_A.to_string()) && pinfls.contains(&PINFL_B.to_string()));
        }
        // the coauthor signature carries its own purpose
        let prov_b = &twice["entry"].as_array().unwrap().last().unwrap()["resource"];
        assert_eq!(prov_b["signature"][0]["type"][1]["code"], "1.2.840.10065.1.12.1.2");
        assert_eq!(decode_header(&last_jws(&twice))["srCms"][0]["commId"]["id"], "urn:oid:1.2.840.10065.1.12.1.2");

        files.push(write_json(dir.path(), &format!("twice-{name}"), &twice));
        files.push(write_json(dir.path(), &format!("reverse-{name}"), &rev2));
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    assert_oracles_pass(&refs, &ca_pem, 2);
}

#[test]
fn provenance_entry_is_exactly_the_documented_shape() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let doc = form("form-003-minimal.json");
    let now = utc(2026, 11, 22, 10, 0, 0) + Duration::milliseconds(789);
    // the dev CA was made now; use a time it covers
    let now = if now < Utc::now() - Duration::minutes(30) { Utc::now() } else { now };
    let (signed, rec) = sign_document(&doc, &ca, &signer_a(), &SignOptions::default(), now).unwrap();
    let entry = signed["entry"].as_array().unwrap().last().unwrap();
    let full_url = entry["fullUrl"].as_str().unwrap();
    assert!(full_url.starts_with("urn:uuid:") && uuid::Uuid::parse_str(&full_url[9..]).is_ok());
    assert_eq!(rec.provenance_full_url, full_url);
    let t = rec.sig_t.clone();
    let role = "urn:uuid:00300005-0000-4000-8000-000000000000";
    let who = json!({ "reference": role, "identifier": { "system": "https://dhp.uz/fhir/core/sid/pid/uz/ni", "value": PINFL_A } });
    let expected = json!({
        "resourceType": "Provenance",
        "target": [{ "reference": "#/" }],
        "occurredDateTime": t,
        "recorded": t,
        "activity": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion", "code": "LA", "display": "legally authenticated" }] },
        "patient": { "reference": "urn:uuid:00300001-0000-4000-8000-000000000000" },
        "agent": [{
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author" }] },
            "who": who
        }],
        "signature": [{
            "type": [
                { "system": "https://terminology.dhp.uz/fhir/core/CodeSystem/signature-type-cs", "code": "biometricAuth" },
                { "system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1", "display": "Author's Signature" }
            ],
            "when": t,
            "who": who,
            "targetFormat": TARGET_FORMAT,
            "sigFormat": "application/jose",
            "data": entry["resource"]["signature"][0]["data"]
        }]
    });
    assert_eq!(entry["resource"], expected);
    // member order as in signatures.md §2.5
    let keys: Vec<&String> = entry["resource"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["resourceType", "target", "occurredDateTime", "recorded", "activity", "patient", "agent", "signature"]
    );
    assert!(t.ends_with('Z') && t.len() == 20, "whole seconds: {t}");
    // data is standard base64 of the compact detached JWS
    let jws = last_jws(&signed);
    assert_eq!(jws, rec.jws);
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(parts[1].is_empty(), "detached");
    assert_eq!(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2]).unwrap().len(),
        64,
        "ES256 raw R||S"
    );
}

#[test]
fn protected_header_members() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let (signed, rec) =
        sign_document(&form("form-096-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let h = decode_header(&last_jws(&signed));
    let keys: Vec<&String> = h.keys().collect();
    assert_eq!(keys, ["alg", "typ", "kid", "x5c", "x5t#S256", "sigT", "srCms", "canon"]);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "JOSE");
    assert_eq!(h["sigT"], rec.sig_t.as_str());
    assert_eq!(h["canon"], "http://hl7.org/fhir/canonicalization/json#document");
    assert_eq!(
        h["srCms"],
        json!([{ "commId": { "id": "urn:oid:1.2.840.10065.1.12.1.1", "desc": "Author's Signature" } }])
    );
    let x5c = h["x5c"].as_array().unwrap();
    assert_eq!(x5c.len(), 2, "x5c = [leaf, CA]");
    let std = &base64::engine::general_purpose::STANDARD;
    let leaf_der = base64::Engine::decode(std, x5c[0].as_str().unwrap()).unwrap();
    let ca_der = base64::Engine::decode(std, x5c[1].as_str().unwrap()).unwrap();
    assert_eq!(leaf_der, X509::from_pem(rec.leaf_pem.as_bytes()).unwrap().to_der().unwrap());
    assert_eq!(ca_der, ca.certificate().to_der().unwrap());
    let thumb = b64url(&Sha256::digest(&leaf_der));
    assert_eq!(h["x5t#S256"], thumb.as_str());
    assert_eq!(h["kid"], thumb.as_str());
    assert!(!h.contains_key("crit") && !h.contains_key("b64") && !h.contains_key("iat"));
}

#[test]
fn leaf_certificate_profile() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let now = Utc::now();
    let (_, rec) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), now).unwrap();
    let leaf = X509::from_pem(rec.leaf_pem.as_bytes()).unwrap();
    // independent reading with the openssl command line
    let pem = write_text(dir.path(), "leaf.pem", &rec.leaf_pem);
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-nameopt", "RFC2253", "-in"])
        .arg(&pem)
        .output()
        .expect("the openssl command is needed by this test");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Subject: serialNumber=31505820250011,CN=Bahodir Rasulov,C=UZ"), "{text}");
    assert!(text.contains(&format!("Issuer: {}", ca_subject_rfc2253(&ca))), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation"), "{text}");
    assert!(text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE"), "{text}");
    assert!(text.contains("URI:https://dhp.uz/fhir/core/sid/pid/uz/ni%7C31505820250011"), "{text}");
    assert!(text.contains("1.3.6.1.5.5.7.3.36"), "documentSigning EKU: {text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("Public-Key: (256 bit)") && text.contains("NIST CURVE: P-256"), "{text}");
    assert!(text.contains("Signature Algorithm: ecdsa-with-SHA256"), "{text}");
    // validity T-60 s .. T+10 min
    let t = now.timestamp();
    let nb = openssl::asn1::Asn1Time::from_unix(t - 60).unwrap();
    let na = openssl::asn1::Asn1Time::from_unix(t + 600).unwrap();
    assert_eq!(leaf.not_before().compare(&nb).unwrap(), std::cmp::Ordering::Equal);
    assert_eq!(leaf.not_after().compare(&na).unwrap(), std::cmp::Ordering::Equal);
    // random positive serial of at most 20 octets, different each time
    let serial = leaf.serial_number().to_bn().unwrap();
    assert!(!serial.is_negative() && serial.num_bytes() <= 20 && serial.num_bits() > 64);
    let (_, rec2) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), now).unwrap();
    assert_ne!(rec.certificate_serial, rec2.certificate_serial);
    assert_ne!(rec.leaf_pem, rec2.leaf_pem, "a fresh key and certificate per signature");
}

fn ca_subject_rfc2253(ca: &hujjat::sign::SigningCa) -> String {
    let mut v: Vec<String> = ca
        .certificate()
        .subject_name()
        .entries()
        .map(|e| format!("{}={}", e.object().nid().short_name().unwrap(), e.data().to_string().unwrap()))
        .collect();
    v.reverse();
    v.join(",")
}

#[test]
fn options_bundle_id_target_profile_claim_and_types() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let opts = SignOptions {
        target: TargetMode::BundleId,
        claim_uz_core_profile: true,
        national_type: Some(Coding {
            system: "https://terminology.dhp.uz/fhir/core/CodeSystem/signature-type-cs".into(),
            code: "soliqAuth".into(),
            display: None,
        }),
        agent_type_astm: true,
        ..SignOptions::default()
    };
    let doc = form("form-003-minimal.json");
    let (signed, _) = sign_document(&doc, &ca, &signer_a(), &opts, Utc::now()).unwrap();
    let prov = &signed["entry"].as_array().unwrap().last().unwrap()["resource"];
    assert_eq!(prov["target"], json!([{ "reference": "Bundle/form-003-minimal" }]));
    assert_eq!(prov["meta"], json!({ "profile": ["https://dhp.uz/fhir/core/StructureDefinition/uz-core-provenance"] }));
    assert_eq!(prov["signature"][0]["type"][0]["code"], "soliqAuth");
    assert_eq!(prov["agent"][0]["type"]["coding"][1]["code"], "1.2.840.10065.1.12.1.1");
    let rep = verify_bundle(&signed, &ca.anchors(), VerifyAt::Now);
    assert!(rep.ok && rep.status == Status::Valid, "{:?}", rep.failures());
    let f = write_json(dir.path(), "bundle-id.json", &signed);
    assert_oracles_pass(&[&f], &ca_pem, 1);

    // no national type
    let opts = SignOptions { national_type: None, ..SignOptions::default() };
    let (signed, _) = sign_document(&doc, &ca, &signer_a(), &opts, Utc::now()).unwrap();
    let prov = &signed["entry"].as_array().unwrap().last().unwrap()["resource"];
    assert_eq!(prov["signature"][0]["type"].as_array().unwrap().len(), 1);
    assert!(verify_bundle(&signed, &ca.anchors(), VerifyAt::Now).ok);

    // optional narrative: escaped, valid XHTML, no dom-6 warning for the Provenance
    let opts = SignOptions { narrative: true, ..SignOptions::default() };
    let odd = hujjat::sign::Signer { name: "Bahodir <O'Rasul> & Co".into(), ..signer_a() };
    let (signed, rec) = sign_document(&doc, &ca, &odd, &opts, Utc::now()).unwrap();
    let prov = &signed["entry"].as_array().unwrap().last().unwrap()["resource"];
    let keys: Vec<&String> = prov.as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["resourceType", "text", "target"]);
    assert_eq!(
        prov["text"]["div"],
        format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Digital signature (Author's Signature) by Bahodir &lt;O'Rasul&gt; &amp; Co (PINFL {PINFL_A}), {}</p></div>",
            rec.sig_t
        )
    );
    let f = write_json(dir.path(), "narrative.json", &signed);
    let r = run_tool("fhir-validate", &["-w".as_ref(), f.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("Provenance): warning: dom-6"), "{}", r.all());
    assert!(verify_bundle(&signed, &ca.anchors(), VerifyAt::Now).ok);
}

#[test]
fn signer_must_be_a_practitioner_of_the_document() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let doc = form("form-003-minimal.json");
    let stranger = hujjat::sign::Signer { pinfl: PINFL_B.into(), ..signer_a() };
    match sign_document(&doc, &ca, &stranger, &SignOptions::default(), Utc::now()) {
        Err(SignError::Signer(m)) => assert!(m.contains(PINFL_B), "{m}"),
        other => panic!("expected a signer error, got {other:?}"),
    }
    let bad = hujjat::sign::Signer { pinfl: "123".into(), ..signer_a() };
    assert!(matches!(sign_document(&doc, &ca, &bad, &SignOptions::default(), Utc::now()), Err(SignError::Signer(_))));
    let mut not_doc = doc.clone();
    not_doc["type"] = json!("collection");
    assert!(matches!(
        sign_document(&not_doc, &ca, &signer_a(), &SignOptions::default(), Utc::now()),
        Err(SignError::Document(_))
    ));
    let mut big = doc.clone();
    big["entry"][7]["resource"]["valueInteger"] = json!(9_007_199_254_740_993u64);
    assert!(matches!(
        sign_document(&big, &ca, &signer_a(), &SignOptions::default(), Utc::now()),
        Err(SignError::Document(_))
    ));
}

#[test]
fn signed_document_unchanged_input_and_payload_excludes_only_signing_provenances() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let doc = form("form-003-minimal.json");
    let before = doc.clone();
    let (signed, _) = sign_document(&doc, &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    assert_eq!(doc, before);
    // a Provenance that targets the Composition is content, not a signature
    let mut other = signed.clone();
    let last = other["entry"].as_array().unwrap().last().unwrap().clone();
    let mut content_prov = last.clone();
    content_prov["fullUrl"] = json!("urn:uuid:0030ffff-0000-4000-8000-000000000000");
    content_prov["resource"]["target"] = json!([{ "reference": "urn:uuid:00300000-0000-4000-8000-000000000000" }]);
    content_prov["resource"]["signature"] = Value::Null;
    content_prov["resource"].as_object_mut().unwrap().remove("signature");
    other["entry"].as_array_mut().unwrap().insert(7, content_prov);
    assert_ne!(canonical_payload(&other).unwrap(), canonical_payload(&signed).unwrap());
    assert!(!verify_bundle(&other, &ca.anchors(), VerifyAt::Now).ok);
}

#[test]
fn non_ascii_names_roundtrip_through_the_certificate() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let mut files = Vec::new();
    for name in ["Раҳимова Гулноза Ўткир қизи", "Oʻtkir Gʻulomov"] {
        let signer = hujjat::sign::Signer { name: name.into(), ..signer_a() };
        let (signed, _) =
            sign_document(&form("form-003-minimal.json"), &ca, &signer, &SignOptions::default(), Utc::now()).unwrap();
        let rep = verify_bundle(&signed, &ca.anchors(), VerifyAt::Now);
        assert_eq!(rep.status, Status::Valid, "{:?}", rep.failures());
        assert_eq!(rep.signatures[0].signer.as_ref().unwrap().name.as_deref(), Some(name));
        // the practitioner's name in the document differs: informational only
        assert_eq!(rep.signatures[0].checks.get("signerName").unwrap().ok, None);
        files.push(write_json(dir.path(), &format!("{}.json", files.len()), &signed));
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let r = jws_verify(&refs, Some(&ca_pem), None, true);
    assert_eq!(r.code, 0, "{}", r.all());
    let long = hujjat::sign::Signer { name: "x".repeat(65), ..signer_a() };
    assert!(matches!(
        sign_document(&form("form-003-minimal.json"), &ca, &long, &SignOptions::default(), Utc::now()),
        Err(SignError::Signer(_))
    ));
}
