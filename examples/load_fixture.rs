//! Writes the request bodies of `scripts/load` (issue 7, BENCHMARKS.md):
//!
//! `cargo run --release --example load_fixture -- DATA_DIR FORM_INPUT.json OUT_DIR`
//!
//! * `OUT_DIR/create.json` — the form input without `documentId` (each POST creates a new document);
//! * `OUT_DIR/signed.json` — the input composed and signed by its attending doctor with the
//!   development CA in `DATA_DIR/signing-ca` (created there if missing), so the server started
//!   on the same data directory trusts it: `POST /$verify` does the whole verification.

use std::path::PathBuf;

use hujjat::compose::{ComposeContext, Composer};
use hujjat::sign::{sign_document, verify_bundle, SignOptions, Signer, SigningCa, Status, VerifyAt};
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, input, out] = args.as_slice() else {
        anyhow::bail!("usage: load_fixture DATA_DIR FORM_INPUT.json OUT_DIR");
    };
    let (data_dir, out) = (PathBuf::from(data_dir), PathBuf::from(out));
    let mut input: Value = serde_json::from_str(&std::fs::read_to_string(input)?)?;
    let form = input["form"].as_str().ok_or_else(|| anyhow::anyhow!("the input has no `form`"))?.to_string();
    let ca = SigningCa::load_or_create_dev(&data_dir)?;
    let composer = Composer::builtin()?;
    let def = composer.get(&form).ok_or_else(|| anyhow::anyhow!("no form {form}"))?;
    let ctx = ComposeContext::new(uuid::Uuid::new_v4(), chrono::Utc::now().fixed_offset());
    let bundle = def.compose(&input, &ctx).map_err(|e| anyhow::anyhow!("compose: {e:?}"))?;

    let pinfl = input["responsiblePersons"]["attendingDoctor"].as_str().unwrap_or_default().to_string();
    let p = input["practitioners"].as_array().and_then(|a| a.iter().find(|p| p["pinfl"] == pinfl.as_str()));
    let n = &p.ok_or_else(|| anyhow::anyhow!("the attending doctor is not among the practitioners"))?["name"];
    let name =
        [&n["family"], &n["given"], &n["patronymic"]].iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ");
    let signer = Signer { pinfl, name, role_display: "Attending doctor".into() };
    let opts = SignOptions { narrative: true, ..SignOptions::default() };
    let (signed, _) = sign_document(&bundle, &ca, &signer, &opts, chrono::Utc::now())?;
    let report = verify_bundle(&signed, &ca.anchors(), VerifyAt::SigT);
    anyhow::ensure!(report.ok && report.status == Status::Valid, "the signed fixture does not verify");

    if let Some(o) = input.as_object_mut() {
        o.remove("documentId");
    }
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("create.json"), serde_json::to_vec(&input)?)?;
    std::fs::write(out.join("signed.json"), serde_json::to_vec(&signed)?)?;
    Ok(())
}
