//! Tampering and rule-breaking signatures are refused with a precise reason, by the library and
//! by the independent oracle `jws-verify`; harmless changes (root id/meta, formatting) are not.

mod sign_support;

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use hujjat::sign::jws::{service_header, sign_detached};
use hujjat::sign::{
    canonical_payload, sign_document, verify_bundle, Purpose, SignOptions, SigningCa, Status, VerifyAt,
};
use josekit::jws::ES256;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer as OsslSigner;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Map, Value};
use sign_support::*;

fn sig_t_of(b: &Value) -> String {
    last_entry_mut(&mut b.clone())["resource"]["occurredDateTime"].as_str().unwrap().to_string()
}

/// Re-signs the last signing Provenance with `key`/`leaf` and a header edited by `edit`.
fn resign(b: &mut Value, ca: &SigningCa, key: &PKey<Private>, leaf: &X509, edit: impl FnOnce(&mut Map<String, Value>)) {
    let sig_t = sig_t_of(b);
    let mut h = service_header(&leaf.to_der().unwrap(), ca.x5c_tail(), &sig_t, &Purpose::author()).unwrap();
    edit(&mut h);
    let hb = serde_json::to_vec(&h).unwrap();
    let signer = ES256.signer_from_der(key.private_key_to_pkcs8().unwrap()).unwrap();
    let jws = sign_detached(&hb, &canonical_payload(b).unwrap(), &signer).unwrap();
    set_last_jws(b, &jws);
}

fn fresh_leaf(ca: &SigningCa, b: &Value) -> (PKey<Private>, X509) {
    let key = new_p256();
    let public = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(&sig_t_of(b)).unwrap().with_timezone(&Utc);
    let leaf = ca.issue_leaf(&signer_a(), &public, t).unwrap();
    (key, leaf)
}

struct Case {
    name: &'static str,
    doc: Value,
    /// the library must fail this check, with this text in the reason
    check: &'static str,
    reason: &'static str,
    /// the cryptographic signature itself still holds (only a rule is broken)
    crypto_ok: bool,
    /// the oracle must fail the file with this check name (None: oracle not consulted)
    oracle: Option<&'static str>,
}

#[test]
fn tampering_and_broken_rules_are_refused_with_a_precise_reason() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let now = Utc::now();
    let (signed, _) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), now).unwrap();
    let mut cases: Vec<Case> = Vec::new();
    let mut add =
        |name, doc, check, reason, crypto_ok, oracle| cases.push(Case { name, doc, check, reason, crypto_ok, oracle });

    // content changes
    let mut d = signed.clone();
    d["entry"][1]["resource"]["name"][0]["family"] = json!("Karimov");
    add("changed-value", d, "signature", "does not verify over the rebuilt payload", false, Some("signature"));

    let mut d = signed.clone();
    let mut extra = d["entry"][7].clone();
    extra["fullUrl"] = json!("urn:uuid:00300099-0000-4000-8000-000000000000");
    extra["resource"]["id"] = json!("obs-extra");
    d["entry"].as_array_mut().unwrap().insert(8, extra);
    add("added-entry", d, "signature", "does not verify", false, Some("signature"));

    let mut d = signed.clone();
    d["entry"].as_array_mut().unwrap().remove(6);
    add("removed-entry", d, "signature", "does not verify", false, Some("signature"));

    let mut d = form("form-096-minimal.json");
    let prov = signed["entry"].as_array().unwrap().last().unwrap().clone();
    d["entry"].as_array_mut().unwrap().push(prov);
    add("moved-to-another-document", d, "signature", "belongs to another document", false, Some("signature"));

    let mut d = signed.clone();
    d["entry"][0]["resource"]["section"][0]["text"]["div"] =
        json!(d["entry"][0]["resource"]["section"][0]["text"]["div"].as_str().unwrap().replace("</div>", " </div>"));
    add("narrative-whitespace", d, "signature", "does not verify", false, Some("signature"));

    // header attacks
    let jws = last_jws(&signed);
    let payload_b64 = b64url(&canonical_payload(&signed).unwrap());
    let mut h = decode_header(&jws);
    h.insert("alg".into(), json!("none"));
    let h64 = b64url(&serde_json::to_vec(&h).unwrap());
    let mut d = signed.clone();
    set_last_jws(&mut d, &format!("{h64}.."));
    add("alg-none", d, "alg", "unsecured", false, Some("alg"));

    let mut h = decode_header(&jws);
    h.insert("alg".into(), json!("HS256"));
    let h64 = b64url(&serde_json::to_vec(&h).unwrap());
    let leaf_pub_pem = {
        let x5c0 = h["x5c"][0].as_str().unwrap();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, x5c0).unwrap();
        X509::from_der(&der).unwrap().public_key().unwrap().public_key_to_pem().unwrap()
    };
    let mac_key = PKey::hmac(&leaf_pub_pem).unwrap();
    let mut mac = OsslSigner::new(MessageDigest::sha256(), &mac_key).unwrap();
    mac.update(format!("{h64}.{payload_b64}").as_bytes()).unwrap();
    let tag = mac.sign_to_vec().unwrap();
    let mut d = signed.clone();
    set_last_jws(&mut d, &format!("{h64}..{}", b64url(&tag)));
    add("hs256-with-public-key", d, "alg", "HMAC", false, Some("alg"));

    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    resign(&mut d, &ca, &k, &leaf, |h| {
        h.insert("urn:example:policy".into(), json!("strict"));
        h.insert("crit".into(), json!(["urn:example:policy"]));
    });
    add("unknown-crit", d, "crit", "does not process: urn:example:policy", true, Some("crit"));

    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    resign(&mut d, &ca, &k, &leaf, |h| {
        h.insert("b64".into(), json!(false));
        h.insert("crit".into(), json!(["b64"]));
    });
    add("b64-false", d, "b64", "RFC 7797", true, Some("b64"));

    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    resign(&mut d, &ca, &k, &leaf, |h| {
        h.remove("kid");
        h.remove("x5c");
        h.remove("x5t#S256");
    });
    add("neither-kid-nor-x5c", d, "kidOrX5c", "kid or x5c", false, Some("kidOrX5c"));

    let mut d = signed.clone();
    let full = jws.replacen("..", &format!(".{payload_b64}."), 1);
    set_last_jws(&mut d, &full);
    add("attached-payload", d, "detached", "equals the rebuilt canonical payload", true, Some("detached"));

    let mut d = signed.clone();
    last_entry_mut(&mut d)["resource"]["signature"][0]["data"] = json!(jws.clone());
    add("bare-jws-in-data", d, "data", "bare compact JWS", false, Some("data"));

    // duplicate header member (the second alg would win in most parsers)
    let hraw = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jws.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let dup = hraw.replacen('{', r#"{"alg":"none","#, 1);
    let mut d = signed.clone();
    set_last_jws(&mut d, &format!("{}..{}", b64url(dup.as_bytes()), jws.split('.').nth(2).unwrap()));
    add("duplicate-header-member", d, "header", "duplicate key \"alg\"", false, Some("header"));

    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    resign(&mut d, &ca, &k, &leaf, |h| {
        h.insert("x5t#S256".into(), json!(b64url(&[0u8; 32])));
    });
    add("wrong-x5t", d, "x5t#S256", "not the SHA-256 thumbprint", true, Some("x5t#S256"));

    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    let (foreign, _) = make_ca("foreign", now - Duration::days(1), now + Duration::days(30));
    resign(&mut d, &ca, &k, &leaf, |h| {
        let std = &base64::engine::general_purpose::STANDARD;
        h["x5c"][1] = json!(base64::Engine::encode(std, foreign.to_der().unwrap()));
    });
    add("broken-chain", d, "chain", "x5c[0] is not issued by x5c[1]", true, Some("chain"));

    // a leaf whose CA signature does not verify (names and key identifiers all match): the chain
    // check must verify the signature itself whenever OpenSSL's path validation did not
    let mut d = signed.clone();
    let (k, leaf) = fresh_leaf(&ca, &d);
    let mut der = leaf.to_der().unwrap();
    *der.last_mut().unwrap() ^= 0x01; // the last octet of the CA's ECDSA s value
    let forged_leaf = X509::from_der(&der).unwrap();
    resign(&mut d, &ca, &k, &forged_leaf, |_| {});
    let forged = d.clone();
    add("forged-leaf-signature", d, "chain", "x5c[0] is not signed by x5c[1]", true, Some("chain"));

    // carrier cross-checks
    let mut d = signed.clone();
    let later = (now + Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    last_entry_mut(&mut d)["resource"]["occurredDateTime"] = json!(later);
    add("sigT-vs-occurredDateTime", d, "signingTime", "!= Provenance.occurredDateTime", true, Some("signingTime"));

    let mut d = signed.clone();
    let t = sig_t_of(&signed);
    let local = DateTime::parse_from_rfc3339(&t)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    last_entry_mut(&mut d)["resource"]["signature"][0]["when"] = json!(local);
    add("sigT-vs-when-same-instant", d, "signingTime", "!= Signature.when", true, Some("signingTime"));

    let mut d = signed.clone();
    last_entry_mut(&mut d)["resource"]["signature"][0]["type"][1]["code"] = json!("1.2.840.10065.1.12.1.5");
    add("srCms-vs-signature-type", d, "srCms", "differs from Signature.type", true, Some("srCms"));

    let mut d = signed.clone();
    last_entry_mut(&mut d)["resource"]["signature"][0]["targetFormat"] =
        json!("application/fhir+json;canonicalization=http://hl7.org/fhir/canonicalization/json");
    add("canon-vs-targetFormat", d, "canonicalization", "disagrees with targetFormat", false, Some("canonicalization"));

    let mut d = signed.clone();
    last_entry_mut(&mut d)["resource"]["signature"][0]["who"]["identifier"]["value"] = json!(PINFL_B);
    add(
        "who-identifier-other-pinfl",
        d,
        "signerIdentity",
        "matches neither the certificate subject",
        true,
        Some("signerIdentity"),
    );

    let mut d = form_two_signers("form-003-minimal.json");
    let (s2, _) = sign_document(&d, &ca, &signer_a(), &SignOptions::default(), now).unwrap();
    d = s2;
    let role_b = d["entry"][7]["fullUrl"].clone();
    last_entry_mut(&mut d)["resource"]["agent"][0]["who"]["reference"] = role_b;
    add(
        "who-reference-other-practitioner",
        d,
        "signerIdentity",
        "certificate was issued to PINFL 31505820250011",
        true,
        None,
    );

    let mut d = signed.clone();
    let mut img = last_entry_mut(&mut d).clone();
    img["fullUrl"] = json!("urn:uuid:0030abcd-0000-4000-8000-000000000000");
    img["resource"]["signature"] = json!([{ "type": [{ "system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1" }],
        "when": img["resource"]["occurredDateTime"], "sigFormat": "image/png", "data": "iVBORw0KGgo=" }]);
    d["entry"].as_array_mut().unwrap().push(img);
    add("image-only-provenance", d, "signature", "must carry a JWS", false, Some("signature"));

    // certificates
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let (c, k) = make_ca_files(&old, "old", utc(2019, 1, 1, 0, 0, 0), utc(2036, 1, 1, 0, 0, 0));
    let old_ca = SigningCa::load_pem(&c, &k, &[]).unwrap();
    let both = dir.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", ca.anchors_pem(), old_ca.anchors_pem())).unwrap();
    let (expired, _) = sign_document(
        &form("form-003-minimal.json"),
        &old_ca,
        &signer_a(),
        &SignOptions::default(),
        utc(2020, 1, 1, 9, 0, 0),
    )
    .unwrap();
    // (verified against both CAs below, so that only the expiry fails)
    let expired_doc = expired.clone();

    let (other, _) =
        sign_document(&form("form-003-minimal.json"), &old_ca, &signer_a(), &SignOptions::default(), now).unwrap();
    add("leaf-from-another-ca", other, "trust", "does not end at any configured trust anchor", true, Some("trust"));

    let mut d = signed.clone();
    let (ku_key, ku_leaf) = custom_leaf_from_dev_ca(dir.path(), &sig_t_of(&signed));
    let ku_ca = SigningCa::load_or_create_dev(dir.path()).unwrap();
    resign(&mut d, &ku_ca, &ku_key, &ku_leaf, |_| {});
    add("leaf-without-digitalSignature", d, "keyUsage", "lacks digitalSignature", true, Some("keyUsage"));

    // --- the library
    let anchors = ca.anchors();
    for c in &cases {
        let rep = verify_bundle(&c.doc, &anchors, VerifyAt::Now);
        assert!(!rep.ok, "{}: must be refused", c.name);
        assert_eq!(rep.status, Status::Invalid, "{}", c.name);
        let failed: Vec<String> = rep.failures();
        let hit = rep
            .signatures
            .iter()
            .flat_map(|s| s.checks.failed())
            .find(|(n, ch)| *n == c.check && ch.reason.as_deref().unwrap_or("").contains(c.reason));
        assert!(
            hit.is_some(),
            "{}: expected check {} with reason containing {:?}; failures: {failed:#?}",
            c.name,
            c.check,
            c.reason
        );
        if c.crypto_ok {
            let s = rep.signatures.iter().rev().find(|s| s.checks.get(c.check).is_some_and(|x| x.failed())).unwrap();
            assert_eq!(s.checks.get("signature").and_then(|x| x.ok), Some(true), "{}: only the rule is broken", c.name);
        }
    }
    // the forged leaf also fails path validation, and fails the chain check without anchors too
    let rep = verify_bundle(&forged, &anchors, VerifyAt::Now);
    assert!(rep.signatures[0].checks.get("trust").is_some_and(|t| t.failed()), "{:?}", rep.failures());
    let rep = verify_bundle(&forged, &[], VerifyAt::Now);
    let chain = rep.signatures[0].checks.get("chain").unwrap();
    assert!(chain.failed() && chain.reason.as_deref().unwrap().contains("is not signed by"), "{chain:?}");
    // expired leaf: fails now, verifies at sigT (archives), with both anchors configured
    let both_anchors: Vec<X509> = X509::stack_from_pem(&std::fs::read(&both).unwrap()).unwrap();
    let rep = verify_bundle(&expired_doc, &both_anchors, VerifyAt::Now);
    let v = rep.signatures[0].checks.get("validity").unwrap();
    assert!(v.failed() && v.reason.as_ref().unwrap().contains("expired"), "{v:?}");
    assert_eq!(rep.signatures[0].checks.failed().len(), 1, "{:?}", rep.failures());
    let rep = verify_bundle(&expired_doc, &both_anchors, VerifyAt::SigT);
    assert!(rep.ok && rep.status == Status::Valid, "{:?}", rep.failures());

    // --- the oracle, one call for all files
    let mut files: Vec<(PathBuf, &'static str)> = Vec::new();
    for c in cases.iter().filter(|c| c.oracle.is_some()) {
        files.push((write_json(dir.path(), &format!("{}.json", c.name), &c.doc), c.oracle.unwrap()));
    }
    let refs: Vec<&std::path::Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let r = jws_verify(&refs, Some(&ca_pem), None, true);
    assert_eq!(r.code, 1, "{}", r.all());
    for (p, check) in &files {
        let line = r.stdout.lines().find(|l| l.starts_with(&*p.to_string_lossy())).unwrap();
        assert!(line.contains(": FAIL ") && line.contains(&format!(": {check}: ")), "oracle disagrees: {line}");
    }
    let e = write_json(dir.path(), "expired.json", &expired_doc);
    let r = jws_verify(&[&e], Some(&both), None, true);
    assert!(r.code == 1 && r.stdout.contains("validity"), "{}", r.all());
    let r = jws_verify(&[&e], Some(&both), Some("sigT"), true);
    assert_eq!(r.code, 0, "{}", r.all());
}

/// A leaf from the dev CA of `dir` with keyUsage keyEncipherment only (built with openssl
/// directly, since the library never issues such a leaf).
fn custom_leaf_from_dev_ca(dir: &std::path::Path, sig_t: &str) -> (PKey<Private>, X509) {
    let ca_cert = X509::from_pem(&std::fs::read(dir.join("signing-ca/ca-cert.pem")).unwrap()).unwrap();
    let ca_key = PKey::private_key_from_pem(&std::fs::read(dir.join("signing-ca/ca-key.pem")).unwrap()).unwrap();
    let t = DateTime::parse_from_rfc3339(sig_t).unwrap().timestamp();
    let key = new_p256();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "UZ").unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "Bahodir Rasulov").unwrap();
    name.append_entry_by_nid(Nid::SERIALNUMBER, PINFL_A).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&openssl::bn::BigNum::from_u32(424242).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca_cert.subject_name()).unwrap();
    b.set_not_before(&Asn1Time::from_unix(t - 60).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(t + 600).unwrap()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap()).unwrap();
    b.append_extension(KeyUsage::new().critical().key_encipherment().build().unwrap()).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    (key, b.build())
}

#[test]
fn harmless_changes_still_verify() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let ca_pem = anchors_file(&ca, dir.path());
    let (signed, _) =
        sign_document(&form("form-096-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let mut variants = Vec::new();
    let mut d = signed.clone();
    d["id"] = json!("copied-to-another-server");
    variants.push(("root-id", d));
    let mut d = signed.clone();
    d["meta"] = json!({ "versionId": "3", "lastUpdated": "2031-05-05T05:05:05Z", "source": "https://fhir.dhp.uz" });
    variants.push(("root-meta", d));
    let mut d = signed.clone();
    d.as_object_mut().unwrap().remove("id");
    variants.push(("root-id-removed", d));
    // reordered members
    let mut d = signed.clone();
    fn reverse(v: &mut Value) {
        match v {
            Value::Object(m) => {
                let mut items: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                items.reverse();
                for (k, mut x) in items {
                    reverse(&mut x);
                    m.insert(k, x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(reverse),
            _ => {}
        }
    }
    reverse(&mut d);
    variants.push(("reordered", d));
    let mut files = Vec::new();
    for (name, d) in &variants {
        let rep = verify_bundle(d, &ca.anchors(), VerifyAt::Now);
        assert!(rep.ok && rep.status == Status::Valid, "{name}: {:?}", rep.failures());
        files.push(write_json(dir.path(), &format!("{name}.json"), d));
    }
    // compact (not pretty) text too
    let compact = dir.path().join("compact.json");
    std::fs::write(&compact, serde_json::to_vec(&signed).unwrap()).unwrap();
    files.push(compact);
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let r = jws_verify(&refs, Some(&ca_pem), None, true);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn no_signature_and_unanchored_documents() {
    let dir = tempdir();
    let ca = dev_ca(dir.path());
    let rep = verify_bundle(&form("form-003-minimal.json"), &ca.anchors(), VerifyAt::Now);
    assert!(!rep.ok && rep.signatures.is_empty());
    assert!(rep.problems[0].contains("no signature found"));
    let (signed, _) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    // no anchors: nothing fails, but the document is only indeterminate
    let rep = verify_bundle(&signed, &[], VerifyAt::Now);
    assert!(rep.ok);
    assert_eq!(rep.status, Status::Indeterminate);
    assert_eq!(rep.signatures[0].checks.get("trust").unwrap().ok, None);
    // a duplicate key anywhere makes the document invalid
    let text = serde_json::to_string(&signed).unwrap().replacen(
        r#""status":"final""#,
        r#""status":"final","status":"preliminary""#,
        1,
    );
    let rep = hujjat::sign::verify_bundle_json(text.as_bytes(), &ca.anchors(), VerifyAt::Now);
    assert!(!rep.ok && rep.problems.iter().any(|p| p.contains("duplicate key \"status\"")), "{:?}", rep.problems);
}
