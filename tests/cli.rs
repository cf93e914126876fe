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
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat")).arg("compose").arg(dir.path().join("missing.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
