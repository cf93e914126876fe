//! `cli_verify` (wired to `hujjat verify FILE [--trust CA.pem ...] [--at ...]`): exit codes.

mod sign_support;

use chrono::Utc;
use hujjat::sign::{cli_verify, sign_document, SignOptions};
use serde_json::json;
use sign_support::*;

#[test]
fn exit_codes() {
    let dir = tempdir();
    let d = dir.path();
    let ca = dev_ca(d);
    let ca_pem = anchors_file(&ca, d);
    let trust = vec![ca_pem];
    let (signed, _) =
        sign_document(&form("form-003-minimal.json"), &ca, &signer_a(), &SignOptions::default(), Utc::now()).unwrap();
    let good = write_json(d, "good.json", &signed);
    let mut t = signed.clone();
    t["entry"][1]["resource"]["gender"] = json!("male");
    let bad = write_json(d, "bad.json", &t);
    let unsigned = write_json(d, "unsigned.json", &form("form-003-minimal.json"));
    let not_json = write_text(d, "not.json", "{ nope");

    assert_eq!(cli_verify(&good, &trust, None), 0);
    assert_eq!(cli_verify(&good, &trust, Some("now".into())), 0);
    assert_eq!(cli_verify(&good, &trust, Some("sigT".into())), 0);
    assert_eq!(cli_verify(&good, &[], None), 0, "without --trust: nothing fails (indeterminate)");
    assert_eq!(cli_verify(&bad, &trust, None), 1);
    assert_eq!(cli_verify(&unsigned, &trust, None), 1);
    assert_eq!(cli_verify(&not_json, &trust, None), 1);
    assert_eq!(cli_verify(&good, &trust, Some("2000-01-01T00:00:00Z".into())), 1);

    // usage / IO errors
    assert_eq!(cli_verify(&d.join("missing.json"), &trust, None), 2);
    assert_eq!(cli_verify(&good, &[d.join("missing.pem")], None), 2);
    assert_eq!(cli_verify(&good, std::slice::from_ref(&not_json), None), 2, "a trust file without certificates");
    assert_eq!(cli_verify(&good, &trust, Some("yesterday".into())), 2);
    assert_eq!(cli_verify(&good, &trust, Some("2026-01-01T00:00:00".into())), 2, "a zone is required");

    // the R6 worked example: valid at its signing time, expired now
    let r6 = shared_fixture("r6/r6-example-signed.json");
    assert_eq!(cli_verify(&r6, &[], Some("sigT".into())), 0);
    assert_eq!(cli_verify(&r6, &[], Some("2025-07-01T08:48:05Z".into())), 0);
    assert_eq!(cli_verify(&r6, &[], None), 1);
}
