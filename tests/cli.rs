//! `hujjat compose FILE` works offline and reports problems like the API does.

mod common;

use common::*;
use std::process::Command;

#[test]
fn compose_prints_a_bundle_offline() {
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .args(["compose"])
        .arg(shared().join("spec/forms/form-096.example.json"))
        .env("DATABASE_URL", "postgres://nowhere.invalid/none") // no database is touched
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "document");
}

#[test]
fn compose_reports_problems_with_paths_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = example("003", "minimal");
    input["patient"]["pinfl"] = serde_json::json!("12");
    input["responsiblePersons"]["attendingDoctor"] = serde_json::json!("99999999999999");
    let f = dir.path().join("bad.json");
    std::fs::write(&f, serde_json::to_vec(&input).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat")).arg("compose").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let oo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let exprs: Vec<String> =
        oo["issue"].as_array().unwrap().iter().filter_map(|i| i["expression"][0].as_str().map(String::from)).collect();
    assert!(exprs.contains(&"patient.pinfl".to_string()), "{exprs:?}");
    assert!(exprs.contains(&"responsiblePersons.attendingDoctor".to_string()), "{exprs:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .arg("compose")
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn verify(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .arg("verify")
        .args(args)
        .env("HUJJAT_DATA_DIR", dir.path()) // no development CA here
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_r6_worked_example_verifies_at_its_signing_time_and_fails_when_changed() {
    let r6 = shared().join("tools/fixtures/r6");
    let signed = r6.join("r6-example-signed.json");
    let at = "2025-07-01T08:48:05Z";
    let (code, report) = verify(&[signed.to_str().unwrap(), "--no-trust", "--at", at]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("5b0cd136"), "the report names the payload hash: {report}");
    let (code, _) = verify(&[r6.join("r6-example-reordered.json").to_str().unwrap(), "--no-trust", "--at", at]);
    assert_eq!(code, 0, "pretty-printed and re-ordered still verifies");
    let (code, _) = verify(&[r6.join("r6-example-tampered.json").to_str().unwrap(), "--no-trust", "--at", at]);
    assert_eq!(code, 1);
    // any changed value fails
    let doc: serde_json::Value = read_json(&signed);
    let dir = tempfile::tempdir().unwrap();
    let mut changed = 0;
    fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| leaves(x, format!("{path}/{k}"), out)),
            serde_json::Value::Array(a) => {
                a.iter().enumerate().for_each(|(i, x)| leaves(x, format!("{path}/{i}"), out))
            }
            _ => out.push(path),
        }
    }
    let mut paths = Vec::new();
    leaves(&doc, String::new(), &mut paths);
    for p in paths.iter().filter(|p| !p.starts_with("/signature") && !p.starts_with("/id") && !p.starts_with("/meta")) {
        let mut d = doc.clone();
        let v = d.pointer_mut(p).unwrap();
        *v = match v {
            serde_json::Value::String(s) => serde_json::json!(format!("{s}x")),
            serde_json::Value::Number(n) => serde_json::json!(n.as_f64().unwrap_or(0.0) + 1.0),
            serde_json::Value::Bool(b) => serde_json::json!(!*b),
            _ => serde_json::json!("x"),
        };
        let f = dir.path().join(format!("c{changed}.json"));
        std::fs::write(&f, serde_json::to_vec(&d).unwrap()).unwrap();
        let (code, _) = verify(&[f.to_str().unwrap(), "--no-trust", "--at", at]);
        assert_eq!(code, 1, "changing {p} must break the signature");
        changed += 1;
    }
    assert!(changed > 5);
    // without anchors and without --no-trust: a usage error, never a silent pass
    let (code, _) = verify(&[signed.to_str().unwrap(), "--at", at]);
    assert_eq!(code, 2);
}
