mod sign_support;
use sign_support::*;
use hujjat::sign::*;
#[test]
fn scratch() {
    let out = std::path::Path::new("/tmp/sg");
    let ca = SigningCa::load_or_create_dev(&out.join("data")).unwrap();
    std::fs::write(out.join("ca.pem"), ca.anchors_pem()).unwrap();
    let doc = form_two_signers("form-003-minimal.json");
    let (s, rec) = sign_document(&doc, &ca, &signer_a(), &SignOptions::default(), chrono::Utc::now()).unwrap();
    let (s, _) = sign_document(&s, &ca, &signer_b(), &SignOptions::default(), chrono::Utc::now()).unwrap();
    write_json(out, "signed.json", &s);
    println!("{}", serde_json::to_string_pretty(&rec).unwrap());
    println!("{}", serde_json::to_string_pretty(&verify_bundle(&s, &ca.anchors(), VerifyAt::Now)).unwrap());
}
