//! Detached compact JWS (RFC 7515 Appendix F) with josekit's low-level signer/verifier traits,
//! and the protected header the service emits (signatures.md §3).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use josekit::jws::{JwsSigner, JwsVerifier};
use openssl::bn::BigNum;
use openssl::ec::EcKeyRef;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{HasPublic, Private};
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

/// The protected header the service emits, in this member order:
/// `alg, typ, kid, x5c, x5t#S256, sigT, srCms, canon`.
///
/// `kid` is the base64url SHA-256 thumbprint of the leaf DER (the same value as `x5t#S256`): stable,
/// meaningful without a key registry, and accepted by verifiers that require `kid` or `x5c`.
pub fn service_header(
    leaf_der: &[u8],
    tail: &[openssl::x509::X509],
    sig_t: &str,
    purpose: &Purpose,
) -> Result<Map<String, Value>, SignError> {
    let mut x5c = vec![Value::String(b64std(leaf_der))];
    for c in tail {
        x5c.push(Value::String(b64std(&c.to_der().map_err(|e| SignError::Crypto(e.to_string()))?)));
    }
    let thumb = b64url(&openssl::sha::sha256(leaf_der));
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

/// SHA-256 of the JWS signing input `h64 "." BASE64URL(payload)`, computed without building it:
/// the payload is base64url-encoded in chunks straight into the hash (issue 7: the 165 kB Form 003
/// payload makes a 220 kB signing input; building it cost two large allocations and copies).
pub fn signing_input_sha256(h64: &str, payload: &[u8]) -> [u8; 32] {
    // 3 072 input bytes encode to exactly 4 096 characters with no padding, so the chunks' text
    // concatenates to the encoding of the whole payload
    const CHUNK: usize = 3 * 1024;
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(h64.as_bytes());
    hasher.update(b".");
    // base64-simd (SSSE3/AVX2, chosen at run time): the `base64` crate's encoder was ~7% of
    // verifying the Form 003 Bundle; both give the same RFC 4648 §5 text (tested below)
    let mut buf = [0u8; CHUNK / 3 * 4];
    for chunk in payload.chunks(CHUNK) {
        let text = base64_simd::URL_SAFE_NO_PAD.encode(chunk, base64_simd::Out::from_slice(&mut buf));
        hasher.update(text);
    }
    hasher.finish()
}

/// Detached compact ES256 JWS over `payload` with a P-256 key (RFC 7515 Appendix F, RFC 7518
/// §3.4: the signature is `R‖S`, 32 octets each). Returns the JWS and the digest it signed.
pub fn sign_es256_detached(
    header_json: &[u8],
    payload: &[u8],
    key: &EcKeyRef<Private>,
) -> Result<(String, [u8; 32]), SignError> {
    let h = b64url(header_json);
    let digest = signing_input_sha256(&h, payload);
    let sig = EcdsaSig::sign(&digest, key).map_err(|e| SignError::Crypto(format!("JWS signing failed: {e}")))?;
    let mut raw = [0u8; 64];
    let (r, s) = (sig.r().to_vec(), sig.s().to_vec());
    if r.len() > 32 || s.len() > 32 {
        return Err(SignError::Crypto("JWS signing failed: ECDSA value longer than 32 octets".into()));
    }
    raw[32 - r.len()..32].copy_from_slice(&r);
    raw[64 - s.len()..].copy_from_slice(&s);
    Ok((format!("{h}..{}", b64url(&raw)), digest))
}

/// Verifies a raw `R‖S` ES256 signature (64 octets) over a signing-input digest.
pub fn verify_es256_digest<T: HasPublic>(digest: &[u8; 32], raw: &[u8], key: &EcKeyRef<T>) -> Result<(), String> {
    if raw.len() != 64 {
        return Err(format!("an ES256 signature is 64 octets, this one is {}", raw.len()));
    }
    let sig = BigNum::from_slice(&raw[..32])
        .and_then(|r| BigNum::from_slice(&raw[32..]).and_then(|s| EcdsaSig::from_private_components(r, s)))
        .map_err(|e| e.to_string())?;
    match sig.verify(digest, key) {
        Ok(true) => Ok(()),
        Ok(false) => Err("signature verification failed".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed digest is the digest of the signing input built the plain way, for payload
    /// lengths around the 3 072-byte chunk and the SIMD blocks, and for every byte value.
    #[test]
    fn streamed_signing_input_digest_matches_the_plain_one() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let h = b64url(br#"{"alg":"ES256"}"#);
        for n in (0..70).chain(3_000..3_200).chain([6_143, 6_144, 6_145, 9_216, 10_000]) {
            let plain = format!("{h}.{}", b64url(&payload[..n]));
            let want: [u8; 32] = openssl::sha::sha256(plain.as_bytes());
            assert_eq!(signing_input_sha256(&h, &payload[..n]), want, "payload length {n}");
        }
    }
}
