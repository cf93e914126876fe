//! The signing CA: development CA generated once and reused, production PEM loading with its
//! error cases, rotation (retired anchors), an intermediate-CA layout.

mod sign_support;

use std::path::Path;

use chrono::{Duration, Utc};
use hujjat::sign::{sign_document, verify_bundle, SignError, SignOptions, SigningCa, Status, VerifyAt};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509NameBuilder, X509};
use sign_support::*;

#[test]
fn dev_ca_is_created_once_and_reused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let ca1 = SigningCa::load_or_create_dev(&data).unwrap();
    let cert_path = data.join("signing-ca/ca-cert.pem");
    let key_path = data.join("signing-ca/ca-key.pem");
    assert!(cert_path.exists() && key_path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    let ca2 = SigningCa::load_or_create_dev(&data).unwrap();
    assert_eq!(ca1.fingerprint_sha256_hex(), ca2.fingerprint_sha256_hex());
    assert_eq!(ca1.anchors_pem(), std::fs::read_to_string(&cert_path).unwrap());
    assert_eq!(ca1.anchors().len(), 1);
    assert!(!format!("{ca1:?}").contains("PRIVATE"), "Debug never shows the key");

    // the CA certificate profile, read independently
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert_path)
        .output()
        .expect("the openssl command is needed by this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"), "{text}");

    // a document signed with the first instance verifies with the reloaded one
    let (signed, _) =
        sign_document(&form("form-003-minimal.json"), &ca1, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    assert_eq!(verify_bundle(&signed, &ca2.anchors(), VerifyAt::Now).status, Status::Valid);
}

#[test]
fn concurrent_first_start_yields_one_ca() {
    let dir = tempdir();
    let data = dir.path().join("race");
    let fps: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| SigningCa::load_or_create_dev(&data).unwrap().fingerprint_sha256_hex()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(fps.iter().all(|f| f == &fps[0]), "{fps:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("signing-ca")]);
}

fn expect_ca_err(r: Result<SigningCa, SignError>, needle: &str) {
    match r {
        Err(SignError::Ca(m)) => assert!(m.contains(needle), "{m:?} should mention {needle:?}"),
        Err(e) => panic!("wrong error kind {e:?}"),
        Ok(_) => panic!("expected an error mentioning {needle:?}"),
    }
}

#[test]
fn production_pem_loading_and_its_errors() {
    let dir = tempdir();
    let d = dir.path();
    let (c1, k1) = make_ca_files(d, "one", Utc::now() - Duration::days(1), Utc::now() + Duration::days(365));
    let (c2, k2) = make_ca_files(d, "two", Utc::now() - Duration::days(1), Utc::now() + Duration::days(365));
    let ca = SigningCa::load_pem(&c1, &k1, &[]).unwrap();
    assert_eq!(ca.anchors().len(), 1);
    // mismatched key
    expect_ca_err(SigningCa::load_pem(&c1, &k2, &[]), "does not match");
    // unreadable files
    expect_ca_err(SigningCa::load_pem(&d.join("nope.pem"), &k1, &[]), "cannot read");
    expect_ca_err(SigningCa::load_pem(&c1, &d.join("nope.key"), &[]), "cannot read");
    expect_ca_err(SigningCa::load_pem(&c1, &k1, &[d.join("nope-anchor.pem")]), "cannot read");
    // not PEM
    let junk = write_text(d, "junk.pem", "hello");
    expect_ca_err(SigningCa::load_pem(&junk, &k1, &[]), "certificate");
    expect_ca_err(SigningCa::load_pem(&c1, &junk, &[]), "private key");
    // encrypted key
    let enc =
        write_text(d, "enc.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n");
    expect_ca_err(SigningCa::load_pem(&c1, &enc, &[]), "encrypted");
    // a non-CA certificate cannot issue leaves
    let dev = dev_ca(&d.join("dev"));
    let (_, rec) =
        sign_document(&form("form-003-minimal.json"), &dev, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let leaf = write_text(d, "leaf.pem", &rec.leaf_pem);
    expect_ca_err(SigningCa::load_pem(&leaf, &k1, &[]), "does not match");
    let _ = c2;
}

#[test]
fn rotation_keeps_retired_anchors_trusted() {
    let dir = tempdir();
    let d = dir.path();
    let (old_c, old_k) = make_ca_files(d, "old", Utc::now() - Duration::days(30), Utc::now() + Duration::days(365));
    let (new_c, new_k) = make_ca_files(d, "new", Utc::now() - Duration::days(1), Utc::now() + Duration::days(365));
    let old = SigningCa::load_pem(&old_c, &old_k, &[]).unwrap();
    let (old_doc, _) =
        sign_document(&form("form-096-minimal.json"), &old, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();

    let new_only = SigningCa::load_pem(&new_c, &new_k, &[]).unwrap();
    assert!(!verify_bundle(&old_doc, &new_only.anchors(), VerifyAt::Now).ok, "the old CA is not trusted by default");

    let new = SigningCa::load_pem(&new_c, &new_k, std::slice::from_ref(&old_c)).unwrap();
    assert_eq!(new.anchors().len(), 2);
    assert_eq!(new.anchors_pem().matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(verify_bundle(&old_doc, &new.anchors(), VerifyAt::Now).status, Status::Valid);
    let (new_doc, _) =
        sign_document(&form("form-096-minimal.json"), &new, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    assert_eq!(verify_bundle(&new_doc, &new.anchors(), VerifyAt::Now).status, Status::Valid);
    // the new signature names the new CA in x5c
    let x5c1 = decode_header(&last_jws(&new_doc))["x5c"][1].as_str().unwrap().to_string();
    let new_cert = X509::from_pem(&std::fs::read(&new_c).unwrap()).unwrap();
    assert_eq!(x5c1, base64::Engine::encode(&base64::engine::general_purpose::STANDARD, new_cert.to_der().unwrap()));

    // served anchors work with the oracle for both documents
    let pem = write_text(d, "served.pem", &new.anchors_pem());
    let f1 = write_json(d, "old-doc.json", &old_doc);
    let f2 = write_json(d, "new-doc.json", &new_doc);
    let r = jws_verify(&[&f1, &f2], Some(&pem), None, true);
    assert_eq!(r.code, 0, "{}", r.all());
    // add_anchor_pems does the same at run time
    let mut late = SigningCa::load_pem(&new_c, &new_k, &[]).unwrap();
    late.add_anchor_pems(&[old_c]).unwrap();
    assert_eq!(late.anchors().len(), 2);
}

#[test]
fn intermediate_ca_layout_chains_to_the_offline_root() {
    let dir = tempdir();
    let d = dir.path();
    // a root with pathlen 0 cannot have an intermediate: refused when the CA is loaded
    let (root0, root0_key) = make_ca("root0", Utc::now() - Duration::days(10), Utc::now() + Duration::days(3650));
    let (inter0, ikey0) = intermediate(&root0, &root0_key);
    let chain0 = write_text(d, "chain0.pem", &format!("{}{}", pem(&inter0), pem(&root0)));
    let key0 = write_text(d, "inter0-key.pem", &String::from_utf8(ikey0.private_key_to_pem_pkcs8().unwrap()).unwrap());
    expect_ca_err(SigningCa::load_pem(&chain0, &key0, &[]), "path length constraint exceeded");

    let (root, root_key) =
        make_ca_pathlen("root", Utc::now() - Duration::days(10), Utc::now() + Duration::days(3650), 1);
    let (inter, ikey) = intermediate(&root, &root_key);
    let chain = write_text(d, "chain.pem", &format!("{}{}", pem(&inter), pem(&root)));
    let key = write_text(d, "inter-key.pem", &String::from_utf8(ikey.private_key_to_pem_pkcs8().unwrap()).unwrap());
    let ca = SigningCa::load_pem(&chain, &key, &[]).unwrap();
    assert_eq!(ca.anchors().len(), 1);
    assert_eq!(ca.anchors()[0].to_der().unwrap(), root.to_der().unwrap(), "the root is the anchor");
    let (signed, _) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let h = decode_header(&last_jws(&signed));
    assert_eq!(h["x5c"].as_array().unwrap().len(), 2, "x5c = [leaf, intermediate]; the root is not sent");
    let rep = verify_bundle(&signed, &ca.anchors(), VerifyAt::Now);
    assert_eq!(rep.status, Status::Valid, "{:?}", rep.failures());
    assert!(rep.signatures[0].checks.get("trust").unwrap().reason.as_ref().unwrap().contains("issued by trust anchor"));
    let pem_file = write_text(d, "root.pem", &ca.anchors_pem());
    let f = write_json(d, "signed.json", &signed);
    let r = jws_verify(&[&f], Some(&pem_file), None, true);
    assert_eq!(r.code, 0, "{}", r.all());
    // chain out of order is refused
    let stranger =
        std::fs::read_to_string(make_ca_files(d, "stranger", Utc::now(), Utc::now() + Duration::days(9)).0).unwrap();
    let bad = write_text(d, "bad-chain.pem", &format!("{}{stranger}", pem(&inter)));
    expect_ca_err(SigningCa::load_pem(&bad, &key, &[]), "out of order");
}

fn pem(c: &X509) -> String {
    String::from_utf8(c.to_pem().unwrap()).unwrap()
}

/// An issuing CA (pathlen 0) certified by `root`.
fn intermediate(root: &X509, root_key: &PKey<Private>) -> (X509, PKey<Private>) {
    let ikey = new_p256();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "UZ").unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "test issuing CA").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&openssl::bn::BigNum::from_u32(77).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(root.subject_name()).unwrap();
    b.set_not_before(&Asn1Time::from_unix((Utc::now() - Duration::days(5)).timestamp()).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix((Utc::now() + Duration::days(365)).timestamp()).unwrap()).unwrap();
    b.set_pubkey(&ikey).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build().unwrap()).unwrap();
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(root), None)).unwrap();
    b.append_extension(ski).unwrap();
    let aki = AuthorityKeyIdentifier::new().keyid(true).build(&b.x509v3_context(Some(root), None)).unwrap();
    b.append_extension(aki).unwrap();
    b.sign(root_key, MessageDigest::sha256()).unwrap();
    (b.build(), ikey)
}

#[test]
fn leaf_never_outlives_the_ca_and_an_expired_ca_does_not_sign() {
    let dir = tempdir();
    let d: &Path = dir.path();
    let ca_end = Utc::now() + Duration::minutes(3);
    let (c, k) = make_ca_files(d, "short", Utc::now() - Duration::days(1), ca_end);
    let ca = SigningCa::load_pem(&c, &k, &[]).unwrap();
    let (_, rec) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let leaf = X509::from_pem(rec.leaf_pem.as_bytes()).unwrap();
    assert_eq!(leaf.not_after().compare(ca.certificate().not_after()).unwrap(), std::cmp::Ordering::Equal);
    match sign_document(
        &form("form-003-minimal.json"),
        &ca,
        &signer_a(),
        &SignOptions::default(),
        Utc::now() + Duration::hours(1),
    ) {
        Err(SignError::Ca(m)) => assert!(m.contains("not valid at the signing time"), "{m}"),
        other => panic!("expected a CA error, got {other:?}"),
    }
}
