//! Detached compact JWS (RFC 7515 Appendix F) with josekit's low-level signer/verifier traits,
//! and the protected header the service emits (signatures.md §3).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use josekit::jws::{JwsSigner, JwsVerifier};
use openssl::hash::MessageDigest;
use openssl::x509::X509Ref;
use serde_json::{json, Map, Value};

use super::canon::CANON_DOCUMENT;
use super::{Purpose, SignError};

/// base64url without padding (JWS segments, `x5t#S256`).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard padded base64 (`x5c` entries, `Signature.data`).
pub fn b64std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `x5t#S256`: base64url SHA-256 of the certificate DER.
pub fn x5t_s256(cert: &X509Ref) -> Result<String, SignError> {
    let d = cert.digest(MessageDigest::sha256()).map_err(|e| SignError::Crypto(e.to_string()))?;
    Ok(b64url(&d))
}

/// The protected header the service emits, in this member order:
/// `alg, typ, kid, x5c, x5t#S256, sigT, srCms, canon`.
///
/// `kid` is the base64url SHA-256 thumbprint of the leaf (the same value as `x5t#S256`): stable,
/// meaningful without a key registry, and accepted by verifiers that require `kid` or `x5c`.
pub fn service_header(
    leaf: &X509Ref,
    tail: &[openssl::x509::X509],
    sig_t: &str,
    purpose: &Purpose,
) -> Result<Map<String, Value>, SignError> {
    let mut x5c = vec![Value::String(b64std(&leaf.to_der().map_err(|e| SignError::Crypto(e.to_string()))?))];
    for c in tail {
        x5c.push(Value::String(b64std(&c.to_der().map_err(|e| SignError::Crypto(e.to_string()))?)));
    }
    let thumb = x5t_s256(leaf)?;
    let mut h = Map::new();
    h.insert("alg".into(), json!("ES256"));
    h.insert("typ".into(), json!("JOSE"));
    h.insert("kid".into(), json!(thumb));
    h.insert("x5c".into(), Value::Array(x5c));
    h.insert("x5t#S256".into(), json!(thumb));
    h.insert("sigT".into(), json!(sig_t));
    h.insert(
        "srCms".into(),
        json!([{ "commId": { "id": format!("urn:oid:{}", purpose.code), "desc": purpose.display } }]),
    );
    h.insert("canon".into(), json!(CANON_DOCUMENT));
    Ok(h)
}

/// Detached compact JWS: `BASE64URL(header) ".." BASE64URL(signature)` over
/// `BASE64URL(header) "." BASE64URL(payload)`. ES signatures come out as raw `R‖S`.
pub fn sign_detached(header_json: &[u8], payload: &[u8], signer: &dyn JwsSigner) -> Result<String, SignError> {
    let h = b64url(header_json);
    let signing_input = format!("{h}.{}", b64url(payload));
    let sig =
        signer.sign(signing_input.as_bytes()).map_err(|e| SignError::Crypto(format!("JWS signing failed: {e}")))?;
    Ok(format!("{h}..{}", b64url(&sig)))
}

/// Verifies a detached compact JWS over `payload`; the header segment is used exactly as received.
/// Header rules (alg allowlist, crit, b64, x5c) are the caller's job (see `verify`).
pub fn verify_detached(jws: &str, payload: &[u8], verifier: &dyn JwsVerifier) -> Result<(), String> {
    let parts: Vec<&str> = jws.split('.').collect();
    if parts.len() != 3 || !parts[1].is_empty() {
        return Err("not a detached compact JWS".into());
    }
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| format!("signature segment is not base64url: {e}"))?;
    let signing_input = format!("{}.{}", parts[0], b64url(payload));
    verifier.verify(signing_input.as_bytes(), &sig).map_err(|e| e.to_string())
}
