//! Shared helpers of the `sign_*` integration tests: fixtures, oracles, test PKIs, JWS surgery.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};

use hujjat::sign::{Signer, SigningCa};

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/tools/<name>`; panics (test fails) when the oracle is missing.
pub fn tool(name: &str) -> PathBuf {
    let p = manifest().join("../shared/tools").join(name);
    assert!(p.exists(), "oracle {} is missing: the test cannot run without it", p.display());
    p
}

pub fn shared_fixture(rel: &str) -> PathBuf {
    let p = manifest().join("../shared/tools/fixtures").join(rel);
    assert!(p.exists(), "shared fixture {} is missing", p.display());
    p
}

pub fn load_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

pub fn form(name: &str) -> Value {
    load_json(&shared_fixture(&format!("valid/{name}")))
}

/// Output of an oracle run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("exit {}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

pub fn run_tool(name: &str, args: &[&std::ffi::OsStr]) -> Run {
    let out = Command::new(tool(name))
        .args(args)
        .current_dir(manifest())
        .output()
        .unwrap_or_else(|e| panic!("cannot run oracle {name}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `jws-verify [--summary] [--trust T] [--at A] FILES...`
pub fn jws_verify(files: &[&Path], trust: Option<&Path>, at: Option<&str>, summary: bool) -> Run {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if summary {
        args.push("--summary".into());
    }
    if let Some(t) = trust {
        args.push("--trust".into());
        args.push(t.into());
    }
    if let Some(a) = at {
        args.push("--at".into());
        args.push(a.into());
    }
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_tool("jws-verify", &refs)
}

pub fn fhir_validate(files: &[&Path]) -> Run {
    let refs: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    run_tool("fhir-validate", &refs)
}

pub fn dhp_profile_check(files: &[&Path]) -> Run {
    let refs: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    run_tool("dhp-profile-check", &refs)
}

pub fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

pub fn write_text(dir: &Path, name: &str, s: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

pub const PINFL_A: &str = "31505820250011";
pub const PINFL_B: &str = "42011907350029";

pub fn signer_a() -> Signer {
    Signer { pinfl: PINFL_A.into(), name: "Bahodir Rasulov".into(), role_display: "Medical specialist".into() }
}

pub fn signer_b() -> Signer {
    Signer { pinfl: PINFL_B.into(), name: "Malika Yusupova".into(), role_display: "Head of department".into() }
}

/// A form fixture with a second practitioner (PINFL_B) and PractitionerRole, added as a second
/// Composition author, so that two different practitioners can sign.
pub fn form_two_signers(name: &str) -> Value {
    let mut b = form(name);
    let pre = if name.contains("003") { "003" } else { "096" };
    let entries = b["entry"].as_array_mut().unwrap();
    let mut prac = entries.iter().find(|e| e["resource"]["resourceType"] == "Practitioner").unwrap().clone();
    let mut role = entries.iter().find(|e| e["resource"]["resourceType"] == "PractitionerRole").unwrap().clone();
    let pu = format!("urn:uuid:{pre}00104-0000-4000-8000-000000000000");
    let ru = format!("urn:uuid:{pre}00105-0000-4000-8000-000000000000");
    prac["fullUrl"] = json!(pu);
    prac["resource"]["id"] = json!(format!("{}-b", prac["resource"]["id"].as_str().unwrap()));
    prac["resource"]["identifier"][0]["value"] = json!(PINFL_B);
    prac["resource"]["name"] = json!([{ "use": "official", "family": "Yusupova", "given": ["Malika"] }]);
    role["fullUrl"] = json!(ru);
    role["resource"]["id"] = json!(format!("{}-b", role["resource"]["id"].as_str().unwrap()));
    role["resource"]["practitioner"]["reference"] = json!(pu);
    entries.insert(6, prac);
    entries.insert(7, role);
    entries[0]["resource"]["author"].as_array_mut().unwrap().push(json!({ "reference": ru }));
    b
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn dev_ca(dir: &Path) -> SigningCa {
    SigningCa::load_or_create_dev(dir).expect("dev CA")
}

/// Writes the CA's anchors to `<dir>/ca.pem`.
pub fn anchors_file(ca: &SigningCa, dir: &Path) -> PathBuf {
    write_text(dir, "ca.pem", &ca.anchors_pem())
}

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A P-256 CA made independently of the library (openssl directly), valid `from..to`, written
/// as `<dir>/<tag>-cert.pem` + `<dir>/<tag>-key.pem` (PKCS#8). Returns the two paths.
pub fn make_ca_files(dir: &Path, tag: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> (PathBuf, PathBuf) {
    let (cert, key) = make_ca(tag, from, to);
    let c = write_text(dir, &format!("{tag}-cert.pem"), &String::from_utf8(cert.to_pem().unwrap()).unwrap());
    let k = write_text(
        dir,
        &format!("{tag}-key.pem"),
        &String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    );
    (c, k)
}

pub fn make_ca(tag: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> (X509, PKey<Private>) {
    make_ca_pathlen(tag, from, to, 0)
}

pub fn make_ca_pathlen(tag: &str, from: DateTime<Utc>, to: DateTime<Utc>, pathlen: u32) -> (X509, PKey<Private>) {
    let key = new_p256();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "UZ").unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, &format!("test CA {tag}")).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(120, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from.timestamp()).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(to.timestamp()).unwrap()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(pathlen).build().unwrap()).unwrap();
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None)).unwrap();
    b.append_extension(ski).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}

pub fn new_p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// The signing Provenance entries of a Bundle.
pub fn signing_provenances(b: &Value) -> Vec<&Value> {
    b["entry"].as_array().unwrap().iter().filter(|e| e["resource"]["resourceType"] == "Provenance").collect()
}

/// The compact JWS of the last entry's first signature.
pub fn last_jws(b: &Value) -> String {
    let data = b["entry"].as_array().unwrap().last().unwrap()["resource"]["signature"][0]["data"].as_str().unwrap();
    String::from_utf8(STANDARD.decode(data).unwrap()).unwrap()
}

/// Replaces the last entry's first signature data with the base64 of `jws`.
pub fn set_last_jws(b: &mut Value, jws: &str) {
    let last = b["entry"].as_array_mut().unwrap().last_mut().unwrap();
    last["resource"]["signature"][0]["data"] = json!(STANDARD.encode(jws.as_bytes()));
}

pub fn decode_header(jws: &str) -> serde_json::Map<String, Value> {
    let h = jws.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub fn last_entry_mut(b: &mut Value) -> &mut Value {
    b["entry"].as_array_mut().unwrap().last_mut().unwrap()
}
