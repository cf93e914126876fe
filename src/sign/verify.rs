//! Verification of the signatures embedded in a Bundle (signatures.md §6), for the service's own
//! documents and for third-party ones (including a legacy root `Bundle.signature`).
//!
//! Every check is reported with `ok` = `true` / `false` / `null` (not evaluated) and a plain
//! reason. The check names follow the independent verifier `jws-verify`.

use std::collections::HashSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use josekit::jws::{JwsVerifier, ES256, ES384, PS256, RS256};
use once_cell::sync::Lazy;
use openssl::ec::EcKey;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509KeyUsage, X509Ref, X509StoreContext, X509VerifyResult, X509};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ca::{asn1_to_chrono, name_to_string};
use super::canon::{
    find_unsafe_integer, is_self_target, is_signing_provenance, parse_strict, payload_for, resolve_in_bundle,
    Canonicalization, CANON_DOCUMENT, CANON_JSON,
};
use super::{pinfls_of, ASTM_SYSTEM, PINFL_SYSTEM, SIG_FORMAT_JOSE};

/// Accepted `alg` values (signatures.md §7).
pub const ALLOWED_ALGS: [&str; 4] = ["ES256", "ES384", "PS256", "RS256"];
/// Header names that may appear in `crit`.
pub const UNDERSTOOD_CRIT: [&str; 3] = ["sigT", "srCms", "canon"];
const REGISTERED_HEADERS: [&str; 13] =
    ["alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc", "zip"];
/// Tolerated clock skew between a claimed signing time and the verification time.
pub const CLOCK_SKEW_SECS: i64 = 300;
/// What the time checks rest on until trusted timestamps exist.
pub const TIME_BASIS_NOTE: &str = "signer-claimed sigT; no trusted timestamp";

static ASTM_OID: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"^urn:oid:1\.2\.840\.10065\.1\.12\.1\.([1-9]|1[0-8])$").unwrap());
static INSTANT: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$").unwrap()
});
static B64URL: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[A-Za-z0-9_-]*$").unwrap());

/// When certificate validity is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VerifyAt {
    /// The current time (default of the CLI; a 10-minute leaf is soon expired).
    Now,
    /// Each signature's claimed signing time `sigT` (archives; no trusted timestamp yet).
    SigT,
    /// An explicit instant.
    At(DateTime<Utc>),
}

/// One check: `ok` is `Some(true)`, `Some(false)` or `None` (not evaluated).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Outcome; `null` = not evaluated.
    pub ok: Option<bool>,
    /// Why it failed, or a note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    fn pass() -> Check {
        Check { ok: Some(true), reason: None }
    }
    fn pass_note(r: impl Into<String>) -> Check {
        Check { ok: Some(true), reason: Some(r.into()) }
    }
    fn fail(r: impl Into<String>) -> Check {
        Check { ok: Some(false), reason: Some(r.into()) }
    }
    fn skip(r: impl Into<String>) -> Check {
        Check { ok: None, reason: Some(r.into()) }
    }
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.ok == Some(false)
    }
}

macro_rules! checks_struct {
    ($( $field:ident => $name:literal ),* $(,)?) => {
        /// Every check of one signature (absent = not applicable to this signature).
        #[derive(Clone, Debug, Default, Serialize)]
        pub struct Checks {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name, skip_serializing_if = "Option::is_none")]
                pub $field: Option<Check>,
            )*
        }
        impl Checks {
            /// `(name, check)` for every evaluated check, in report order.
            pub fn iter(&self) -> Vec<(&'static str, &Check)> {
                let mut v = Vec::new();
                $( if let Some(c) = &self.$field { v.push(($name, c)); } )*
                v
            }
        }
    };
}

checks_struct! {
    sig_format => "sigFormat",
    data => "data",
    detached => "detached",
    header => "header",
    alg => "alg",
    b64 => "b64",
    crit => "crit",
    kid_or_x5c => "kidOrX5c",
    sig_t => "sigT",
    sr_cms => "srCms",
    canonicalization => "canonicalization",
    targets => "targets",
    x5c => "x5c",
    x5t_s256 => "x5t#S256",
    payload => "payload",
    signature => "signature",
    chain => "chain",
    trust => "trust",
    validity => "validity",
    key_usage => "keyUsage",
    signing_time => "signingTime",
    signer_identity => "signerIdentity",
    signer_name => "signerName",
}

impl Checks {
    /// The failed checks.
    pub fn failed(&self) -> Vec<(&'static str, &Check)> {
        self.iter().into_iter().filter(|(_, c)| c.failed()).collect()
    }
    /// A check by its report name (e.g. `"signingTime"`).
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.iter().into_iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }
}

/// Outcome of a signature or a document (EU DSS: TOTAL-PASSED / TOTAL-FAILED / INDETERMINATE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed and the chain ends at a configured trust anchor.
    Valid,
    /// At least one check failed.
    Invalid,
    /// Nothing failed, but trust was not evaluated (no anchors given).
    Indeterminate,
}

/// The decoded protected header, summarized.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSummary {
    /// `alg`
    pub alg: Option<String>,
    /// `typ`
    pub typ: Option<String>,
    /// `kid`
    pub kid: Option<String>,
    /// Number of `x5c` certificates.
    pub x5c: usize,
    /// `x5t#S256`
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
    /// `sigT`
    pub sig_t: Option<String>,
    /// `srCms[].commId.id`
    pub sr_cms: Vec<String>,
    /// `canon`
    pub canon: Option<String>,
    /// `crit`
    pub crit: Option<Value>,
}

/// The signing (leaf) certificate, summarized.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSummary {
    /// Subject DN (short names, certificate order).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial_number: String,
    /// PINFL from the subject `serialNumber` (or the PINFL subjectAltName URI).
    pub pinfl: Option<String>,
    /// Subject CN.
    pub name: Option<String>,
    /// notBefore
    pub not_before: Option<String>,
    /// notAfter
    pub not_after: Option<String>,
    /// subjectAltName values.
    pub subject_alt_names: Vec<String>,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

/// The time the certificate checks were evaluated at.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeBasis {
    /// Instant used for path validity.
    pub verification_time: Option<String>,
    /// `now`, `sigT` or `explicit`.
    pub source: &'static str,
    /// What the signing time rests on.
    pub signing_time: &'static str,
}

/// Report of one signature.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureReport {
    /// Where the signature is, e.g. `Bundle.entry[8].resource(Provenance).signature[0]`.
    pub location: String,
    /// `fullUrl` of the carrying Provenance entry.
    pub provenance: Option<String>,
    /// In the deprecated root `Bundle.signature`.
    pub legacy_bundle_signature: bool,
    /// No check failed and the cryptographic signature holds.
    pub ok: bool,
    /// valid / invalid / indeterminate.
    pub status: Status,
    /// Every check.
    pub checks: Checks,
    /// Decoded protected header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderSummary>,
    /// Canonicalization URI used to rebuild the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonicalization: Option<String>,
    /// SHA-256 (hex) of the rebuilt payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// Length of the rebuilt payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// The leaf certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<CertificateSummary>,
    /// The trust anchor the chain ends at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    /// Verification time basis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_basis: Option<TimeBasis>,
    /// Remarks (e.g. legacy location).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Report of a whole document.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationReport {
    /// At least one signature, no document problem, and every signature `ok`.
    pub ok: bool,
    /// `valid` only when `ok` and every signature's chain ends at a configured anchor.
    pub status: Status,
    /// Document-level problems (not a Bundle, duplicate keys, unsafe integers, no signature).
    pub problems: Vec<String>,
    /// One report per signature found.
    pub signatures: Vec<SignatureReport>,
}

impl VerificationReport {
    /// Every failure as `location: check: reason` lines (problems first).
    pub fn failures(&self) -> Vec<String> {
        let mut v = self.problems.clone();
        for s in &self.signatures {
            for (n, c) in s.checks.failed() {
                v.push(format!("{}: {n}: {}", s.location, c.reason.clone().unwrap_or_default()));
            }
        }
        v
    }
}

/// Verifies raw JSON bytes: strict parsing first (duplicate keys, integers beyond ±(2^53−1), a
/// BOM are document problems), then [`verify_bundle`].
pub fn verify_bundle_json(bytes: &[u8], anchors: &[X509], at: VerifyAt) -> VerificationReport {
    match parse_strict(bytes) {
        Ok((v, problems)) => {
            let mut r = verify_bundle(&v, anchors, at);
            if !problems.is_empty() {
                let mut all = problems;
                all.extend(r.problems.into_iter().filter(|p| !p.contains("2^53")));
                r.problems = all;
                r.ok = false;
                r.status = Status::Invalid;
            }
            r
        }
        Err(e) => VerificationReport { ok: false, status: Status::Invalid, problems: vec![e], signatures: vec![] },
    }
}

/// Verifies every signature of a Bundle: signing Provenance entries (target `#/` or
/// `Bundle/<id>`) and a legacy root `Bundle.signature`. `anchors` are the configured CA
/// certificates (current and retired); with none, trust is not evaluated.
pub fn verify_bundle(bundle: &Value, anchors: &[X509], at: VerifyAt) -> VerificationReport {
    let mut problems = Vec::new();
    let mut sigs = Vec::new();
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") || !bundle.is_object() {
        return VerificationReport {
            ok: false,
            status: Status::Invalid,
            problems: vec!["not a FHIR Bundle".into()],
            signatures: vec![],
        };
    }
    if let Some(p) = find_unsafe_integer(bundle, "Bundle") {
        problems.push(format!("integer at {p} exceeds ±(2^53−1): JCS implementations disagree on it"));
    }
    let bundle_id = bundle.get("id").and_then(Value::as_str);
    let ctx = Ctx { bundle, anchors, at, payloads: Default::default() };
    let entries: &[Value] = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (i, e) in entries.iter().enumerate() {
        let res = e.get("resource");
        if !is_signing_provenance(res, bundle_id) {
            continue;
        }
        let prov = res.expect("checked");
        let full_url = e.get("fullUrl").and_then(Value::as_str).map(str::to_string);
        let jose: Vec<(usize, &Value)> = prov
            .get("signature")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .filter(|(_, s)| match s.get("sigFormat") {
                        Some(f) => f.as_str() == Some(SIG_FORMAT_JOSE),
                        None => s.get("data").is_some_and(Value::is_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if jose.is_empty() {
            let checks = Checks {
                signature: Some(Check::fail(
                    "a signing Provenance (target #/ or Bundle/<id>) must carry a JWS signature (sigFormat application/jose)",
                )),
                ..Default::default()
            };
            sigs.push(SignatureReport {
                location: format!("Bundle.entry[{i}].resource(Provenance)"),
                provenance: full_url,
                legacy_bundle_signature: false,
                ok: false,
                status: Status::Invalid,
                checks,
                header: None,
                canonicalization: None,
                payload_sha256: None,
                payload_bytes: None,
                signer: None,
                anchor: None,
                time_basis: None,
                note: None,
            });
            continue;
        }
        for (k, s) in jose {
            sigs.push(verify_signature(
                &ctx,
                s,
                Where {
                    location: format!("Bundle.entry[{i}].resource(Provenance).signature[{k}]"),
                    full_url: full_url.clone(),
                    provenance: Some(prov),
                    legacy: false,
                },
            ));
        }
    }
    if let Some(s) = bundle.get("signature").filter(|s| s.is_object()) {
        sigs.push(verify_signature(
            &ctx,
            s,
            Where { location: "Bundle.signature".into(), full_url: None, provenance: None, legacy: true },
        ));
    }
    if sigs.is_empty() {
        problems.push(
            "no signature found (no Provenance entry targeting #/ or Bundle/<id>, and no Bundle.signature)".into(),
        );
    }
    let ok = problems.is_empty() && !sigs.is_empty() && sigs.iter().all(|s| s.ok);
    let status = if !ok {
        Status::Invalid
    } else if sigs.iter().all(|s| s.status == Status::Valid) {
        Status::Valid
    } else {
        Status::Indeterminate
    };
    VerificationReport { ok, status, problems, signatures: sigs }
}

struct Ctx<'a> {
    bundle: &'a Value,
    anchors: &'a [X509],
    at: VerifyAt,
    /// payloads already built, per canonicalization: signatures over the same canonical form
    /// share one (a document signed by several practitioners is canonicalized once)
    payloads: std::cell::RefCell<Vec<(Canonicalization, Payload)>>,
}

type Payload = Result<std::rc::Rc<Vec<u8>>, String>;

impl Ctx<'_> {
    fn payload(&self, canon: Canonicalization) -> Payload {
        if let Some((_, p)) = self.payloads.borrow().iter().find(|(c, _)| *c == canon) {
            return p.clone();
        }
        let p = payload_for(self.bundle, canon).map(std::rc::Rc::new).map_err(|e| e.to_string());
        self.payloads.borrow_mut().push((canon, p.clone()));
        p
    }
}

struct Where<'a> {
    location: String,
    full_url: Option<String>,
    provenance: Option<&'a Value>,
    legacy: bool,
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn verify_signature(ctx: &Ctx, sig_el: &Value, w: Where) -> SignatureReport {
    let mut rep = SignatureReport {
        location: w.location.clone(),
        provenance: w.full_url.clone(),
        legacy_bundle_signature: w.legacy,
        ok: false,
        status: Status::Invalid,
        checks: Checks::default(),
        header: None,
        canonicalization: None,
        payload_sha256: None,
        payload_bytes: None,
        signer: None,
        anchor: None,
        time_basis: None,
        note: w.legacy.then(|| {
            "signature in the root Bundle.signature (deprecated in R6; accepted for the R6 worked example)".to_string()
        }),
    };
    check_signature(ctx, sig_el, &w, &mut rep);
    let c = &rep.checks;
    rep.ok = c.failed().is_empty() && c.signature.as_ref().and_then(|s| s.ok) == Some(true);
    rep.status = if !rep.ok {
        Status::Invalid
    } else if c.trust.as_ref().and_then(|t| t.ok) == Some(true) {
        Status::Valid
    } else {
        Status::Indeterminate
    };
    rep
}

fn check_signature(ctx: &Ctx, sig_el: &Value, w: &Where, rep: &mut SignatureReport) {
    let checks = &mut rep.checks;
    let bundle = ctx.bundle;
    let prov = w.provenance;

    // --- Signature element
    let sig_format = str_of(sig_el, "sigFormat");
    checks.sig_format = Some(if sig_format == Some(SIG_FORMAT_JOSE) {
        Check::pass()
    } else {
        Check::fail(format!(
            "sigFormat must be application/jose (found {})",
            sig_format.map(|s| format!("{s:?}")).unwrap_or_else(|| "none".into())
        ))
    });
    let data = match str_of(sig_el, "data") {
        Some(d) if !d.is_empty() => d,
        _ => {
            checks.data = Some(Check::fail("Signature.data is missing"));
            return;
        }
    };
    let decoded = match STANDARD.decode(data) {
        Ok(b) => b,
        Err(_) => {
            let parts: Vec<&str> = data.split('.').collect();
            let reason = if parts.len() == 3 && parts.iter().all(|p| B64URL.is_match(p)) && !parts[0].is_empty() {
                "Signature.data holds a bare compact JWS; it must be the standard base64 of the JWS (FHIR base64Binary)"
            } else if (data.contains('-') || data.contains('_')) && !data.contains('+') && !data.contains('/') {
                "Signature.data looks base64url-encoded; FHIR base64Binary is standard base64 (RFC 4648 section 4, padded)"
            } else {
                "Signature.data is not valid standard base64"
            };
            checks.data = Some(Check::fail(reason));
            return;
        }
    };
    let jws = match String::from_utf8(decoded) {
        Ok(s) if s.is_ascii() => s,
        _ => {
            checks.data = Some(Check::fail("Signature.data does not decode to an ASCII compact JWS"));
            return;
        }
    };
    let parts: Vec<&str> = jws.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| B64URL.is_match(p)) || parts[0].is_empty() {
        checks.data = Some(Check::fail(
            "Signature.data does not decode to a compact JWS (BASE64URL(header).[payload].BASE64URL(signature))",
        ));
        return;
    }
    checks.data = Some(Check::pass());
    let attached = !parts[1].is_empty();
    checks.detached = Some(if attached {
        Check::fail("the JWS payload is present; R6 requires a detached signature (header..signature)")
    } else {
        Check::pass()
    });

    // --- protected header
    let header = match URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|e| format!("not base64url ({e})"))
        .and_then(|b| parse_strict(&b))
    {
        Ok((Value::Object(h), dups)) => {
            checks.header = Some(if dups.is_empty() {
                Check::pass()
            } else {
                Check::fail(format!("protected header: {}", dups.join("; ")))
            });
            h
        }
        Ok(_) => {
            checks.header = Some(Check::fail("protected header is not a JSON object"));
            return;
        }
        Err(e) => {
            checks.header = Some(Check::fail(format!("protected header is not a JSON object ({e})")));
            return;
        }
    };
    let sr_ids: Vec<Option<&str>> = header
        .get("srCms")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.get("commId").and_then(|c| c.get("id")).and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let hs = |k: &str| header.get(k).and_then(Value::as_str).map(str::to_string);
    let x5c_arr: Option<&Vec<Value>> = header.get("x5c").and_then(Value::as_array).filter(|a| !a.is_empty());
    rep.header = Some(HeaderSummary {
        alg: hs("alg"),
        typ: hs("typ"),
        kid: hs("kid"),
        x5c: x5c_arr.map_or(0, Vec::len),
        x5t_s256: hs("x5t#S256"),
        sig_t: hs("sigT"),
        sr_cms: sr_ids.iter().map(|x| x.unwrap_or("").to_string()).collect(),
        canon: hs("canon"),
        crit: header.get("crit").cloned(),
    });
    let alg = header.get("alg").and_then(Value::as_str);
    checks.alg = Some(match alg {
        Some(a) if ALLOWED_ALGS.contains(&a) => Check::pass(),
        Some(a) if a.eq_ignore_ascii_case("none") => Check::fail(format!(
            "alg {a:?} (unsecured JWS) is always refused (allowed: {})",
            ALLOWED_ALGS.join(", ")
        )),
        Some(a) if a.starts_with("HS") => Check::fail(format!(
            "alg {a:?} (HMAC) is always refused: a MAC keyed with the certificate's public key is the algorithm-confusion attack (allowed: {})",
            ALLOWED_ALGS.join(", ")
        )),
        Some(a) => Check::fail(format!("alg {a:?} is not allowed (allowed: {})", ALLOWED_ALGS.join(", "))),
        None => Check::fail("alg is missing from the protected header"),
    });
    if let Some(b) = header.get("b64") {
        if b != &Value::Bool(true) {
            checks.b64 =
                Some(Check::fail("b64=false (RFC 7797 unencoded payload) is not part of the FHIR R6 JWS profile"));
        }
    }
    checks.crit = Some(match header.get("crit") {
        None => Check::pass(),
        Some(crit) => {
            let names: Option<Vec<&str>> = crit
                .as_array()
                .filter(|a| !a.is_empty())
                .and_then(|a| a.iter().map(|c| c.as_str().filter(|s| !s.is_empty())).collect());
            match names {
                None => Check::fail("crit must be a non-empty array of header names"),
                Some(names) => {
                    let set: HashSet<&str> = names.iter().copied().collect();
                    let unknown: Vec<&str> = names
                        .iter()
                        .copied()
                        .filter(|c| !UNDERSTOOD_CRIT.contains(c) && !REGISTERED_HEADERS.contains(c))
                        .collect();
                    let reg: Vec<&str> = names.iter().copied().filter(|c| REGISTERED_HEADERS.contains(c)).collect();
                    let absent: Vec<&str> = names.iter().copied().filter(|c| !header.contains_key(*c)).collect();
                    if set.len() != names.len() {
                        Check::fail("crit lists a name twice")
                    } else if !unknown.is_empty() {
                        Check::fail(format!(
                            "crit names header(s) this verifier does not process: {} (understood: {})",
                            unknown.join(", "),
                            UNDERSTOOD_CRIT.join(", ")
                        ))
                    } else if !reg.is_empty() {
                        Check::fail(format!("crit must not list RFC 7515/7518 header names: {}", reg.join(", ")))
                    } else if !absent.is_empty() {
                        Check::fail(format!(
                            "crit names header(s) absent from the protected header: {}",
                            absent.join(", ")
                        ))
                    } else {
                        Check::pass()
                    }
                }
            }
        }
    });
    let kid = header.get("kid").and_then(Value::as_str).filter(|s| !s.is_empty());
    checks.kid_or_x5c = Some(if x5c_arr.is_some() || kid.is_some() {
        Check::pass()
    } else {
        Check::fail("the protected header SHALL contain kid or x5c")
    });

    // --- sigT
    let sig_t_raw = header.get("sigT");
    let sig_t: Option<(String, DateTime<Utc>)> = sig_t_raw
        .and_then(Value::as_str)
        .filter(|s| INSTANT.is_match(s))
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok().map(|d| (s.to_string(), d.with_timezone(&Utc))));
    checks.sig_t = Some(match (&sig_t, sig_t_raw) {
        (Some(_), _) => Check::pass(),
        (None, None) => Check::fail(format!(
            "sigT (claimed signing time) is missing{}",
            if header.contains_key("iat") { " (iat is present, but this profile uses sigT)" } else { "" }
        )),
        (None, Some(v)) => Check::fail(format!("sigT {v} is not an instant (YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm))")),
    });

    // --- srCms
    {
        let to_uri = |c: &Value| -> Option<String> {
            let sys = str_of(c, "system")?;
            let code = str_of(c, "code")?;
            (sys == ASTM_SYSTEM).then(|| format!("urn:oid:{code}"))
        };
        let astm_of = |codings: Vec<&Value>| -> Vec<String> { codings.into_iter().filter_map(to_uri).collect() };
        let sig_types =
            astm_of(sig_el.get("type").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default());
        let agent_types = prov
            .map(|p| {
                astm_of(
                    p.get("agent")
                        .and_then(Value::as_array)
                        .map(|ags| {
                            ags.iter()
                                .flat_map(|a| {
                                    a.get("type")
                                        .and_then(|t| t.get("coding"))
                                        .and_then(Value::as_array)
                                        .map(|c| c.iter().collect::<Vec<_>>())
                                        .unwrap_or_default()
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let sr: Vec<&str> = sr_ids.iter().flatten().copied().collect();
        let same_set = |arr: &[String]| {
            let a: HashSet<&str> = arr.iter().map(String::as_str).collect();
            let b: HashSet<&str> = sr.iter().copied().collect();
            a == b
        };
        checks.sr_cms = Some(if sr_ids.is_empty() {
            Check::fail("srCms (signer commitments) is missing: required by the R6 JWS rules")
        } else if sr_ids.iter().any(Option::is_none) {
            Check::fail("every srCms entry needs commId.id")
        } else if !sr.iter().all(|x| ASTM_OID.is_match(x)) {
            Check::fail(format!(
                "srCms ids must be ASTM E1762-95(2013) signature types as urn:oid:1.2.840.10065.1.12.1.N (found {})",
                sr.join(", ")
            ))
        } else if !sig_types.is_empty() && !same_set(&sig_types) {
            Check::fail(format!("srCms [{}] differs from Signature.type [{}]", sr.join(", "), sig_types.join(", ")))
        } else if !agent_types.is_empty() && !same_set(&agent_types) {
            Check::fail(format!(
                "srCms [{}] differs from Provenance.agent.type [{}]",
                sr.join(", "),
                agent_types.join(", ")
            ))
        } else if sig_types.is_empty() && agent_types.is_empty() {
            Check::fail(format!(
                "no ASTM signature type in {}Signature.type to match srCms against",
                if prov.is_some() { "Provenance.agent.type or " } else { "" }
            ))
        } else {
            Check::pass()
        });
    }

    // --- canonicalization
    let mut canon: Option<Canonicalization> = None;
    {
        let mut reason: Option<String> = None;
        let mut notes: Vec<String> = Vec::new();
        let mut tf_canon: Option<String> = None;
        match sig_el.get("targetFormat") {
            Some(Value::String(tf)) => {
                let mut it = tf.split(';');
                let mime = it.next().unwrap_or("").trim().to_ascii_lowercase();
                for p in it {
                    if let Some((k, v)) = p.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("canonicalization") {
                            let v = v.trim();
                            let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
                            tf_canon = Some(v.to_string());
                        }
                    }
                }
                if !matches!(mime.as_str(), "application/fhir+json" | "application/json" | "json") {
                    reason = Some(format!("targetFormat {tf:?} is not FHIR JSON"));
                }
            }
            _ => notes.push("targetFormat is absent (it SHOULD state the canonicalization)".into()),
        }
        let hc = header.get("canon");
        if reason.is_none() && hc.is_some_and(|v| !v.is_string()) {
            reason = Some("canon header must be a string".into());
        }
        let hc = hc.and_then(Value::as_str);
        if reason.is_none() {
            if let (Some(h), Some(t)) = (hc, tf_canon.as_deref()) {
                if h != t {
                    reason = Some(format!("canon header {h} disagrees with targetFormat canonicalization={t}"));
                }
            }
        }
        let mut uri = hc.map(str::to_string).or(tf_canon);
        if reason.is_none() && uri.is_none() {
            let d = if str_of(bundle, "type") == Some("document") { CANON_DOCUMENT } else { CANON_JSON };
            notes.push(format!("no canonicalization stated; assumed {d}"));
            uri = Some(d.to_string());
        }
        if let Some(u) = &uri {
            rep.canonicalization = Some(u.clone());
            if reason.is_none() {
                canon = Canonicalization::from_uri(u);
                if canon.is_none() {
                    reason = Some(format!(
                        "canonicalization {u} is not supported (supported: {CANON_JSON}, {CANON_DOCUMENT}, {CANON_JSON}#data, {CANON_JSON}#static)"
                    ));
                }
            }
        }
        checks.canonicalization = Some(match reason {
            Some(r) => Check::fail(r),
            None if notes.is_empty() => Check::pass(),
            None => Check::pass_note(notes.join("; ")),
        });
    }

    // --- targets
    if let Some(p) = prov {
        let bid = str_of(bundle, "id");
        let others: Vec<String> = p
            .get("target")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter(|t| !is_self_target(t, bid))
                    .map(|t| t.get("reference").map(|r| r.to_string()).unwrap_or_else(|| "(no reference)".into()))
                    .collect()
            })
            .unwrap_or_default();
        checks.targets = Some(if others.is_empty() {
            Check::pass()
        } else {
            Check::fail(format!(
                "Provenance.target also lists {}: multi-target payloads (JSON array) are not supported (canonical form unresolved in R6)",
                others.join(", ")
            ))
        });
    }

    // --- key (x5c)
    let mut certs: Vec<X509> = Vec::new();
    if let Some(arr) = x5c_arr {
        let parsed: Result<Vec<X509>, String> = arr
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let s = c.as_str().ok_or_else(|| format!("x5c[{k}] is not a string"))?;
                let der = STANDARD
                    .decode(s)
                    .map_err(|_| format!("x5c[{k}] is not standard base64 DER (RFC 7515 section 4.1.6)"))?;
                if k > 0 {
                    if let Some(c) = cached_ca_certificate(&der) {
                        return Ok(c);
                    }
                }
                let c = X509::from_der(&der).map_err(|e| format!("x5c[{k}] is not a DER certificate ({e})"))?;
                if k > 0 {
                    remember_ca_certificate(der, &c);
                }
                Ok(c)
            })
            .collect();
        match parsed {
            Ok(c) => {
                certs = c;
                checks.x5c = Some(Check::pass());
                rep.signer = Some(summarize(&certs[0]));
                match header.get("x5t#S256") {
                    None => {}
                    Some(Value::String(t)) => {
                        let want = certs[0]
                            .digest(MessageDigest::sha256())
                            .map(|d| URL_SAFE_NO_PAD.encode(&*d))
                            .unwrap_or_default();
                        checks.x5t_s256 = Some(if *t == want {
                            Check::pass()
                        } else {
                            Check::fail("x5t#S256 is not the SHA-256 thumbprint of x5c[0]")
                        });
                    }
                    Some(_) => checks.x5t_s256 = Some(Check::fail("x5t#S256 must be a string")),
                }
            }
            Err(e) => checks.x5c = Some(Check::fail(format!("x5c: {e}"))),
        }
    }
    let key: Option<PKey<Public>> = certs.first().and_then(|c| c.public_key().ok());
    let p256 = certs.first().and_then(|c| p256_key(c));

    // --- payload + cryptographic verification
    let alg_ok = checks.alg.as_ref().is_some_and(|c| c.ok == Some(true));
    match (&key, canon) {
        (None, _) => {
            checks.signature = Some(Check::fail(if certs.is_empty() && kid.is_some() {
                "no key: the header has no usable x5c, and a kid alone cannot be resolved (no signer keys are configured; trust anchors are CA certificates)"
            } else {
                "no key: the header has no usable x5c"
            }));
        }
        (Some(_), None) => checks.signature = Some(Check::fail("not attempted (see the failed checks)")),
        (Some(_), Some(_)) if !alg_ok => checks.signature = Some(Check::fail("not attempted (see the failed checks)")),
        (Some(k), Some(cz)) => match ctx.payload(cz) {
            Err(e) => {
                checks.payload = Some(Check::fail(e));
                checks.signature = Some(Check::fail("not attempted: the payload cannot be rebuilt"));
            }
            Ok(payload) => {
                rep.payload_bytes = Some(payload.len());
                rep.payload_sha256 = Some(sha256_hex(&payload));
                if attached {
                    let same = parts[1] == URL_SAFE_NO_PAD.encode(&*payload);
                    if let Some(d) = checks.detached.as_mut() {
                        let r = d.reason.take().unwrap_or_default();
                        d.reason = Some(format!(
                            "{r}{}",
                            if same {
                                " (it equals the rebuilt canonical payload)"
                            } else {
                                " (it differs from the rebuilt canonical payload: content or canonicalization problem)"
                            }
                        ));
                    }
                }
                let alg = alg.expect("alg ok");
                checks.signature = Some(match key_fits_alg(k, p256.as_ref(), alg) {
                    Err(m) => Check::fail(m),
                    Ok(()) => match crypto_verify(k, p256.as_ref(), alg, parts[0], parts[2], &payload) {
                        Ok(()) => Check::pass(),
                        Err(e) => Check::fail(format!(
                            "signature does not verify over the rebuilt payload ({e}): the signed content was changed, or the signature belongs to another document"
                        )),
                    },
                });
            }
        },
    }

    // --- certificates
    if !certs.is_empty() {
        let verif_at: Option<DateTime<Utc>> = match ctx.at {
            VerifyAt::Now => Some(Utc::now()),
            VerifyAt::SigT => sig_t.as_ref().map(|(_, d)| *d),
            VerifyAt::At(t) => Some(t),
        };
        let source = match ctx.at {
            VerifyAt::Now => "now",
            VerifyAt::SigT => "sigT",
            VerifyAt::At(_) => "explicit",
        };
        rep.time_basis = Some(TimeBasis {
            verification_time: verif_at.map(super::format_instant),
            source,
            signing_time: TIME_BASIS_NOTE,
        });

        // trust: RFC 5280 path validation (OpenSSL) to a configured anchor; time is checked below.
        // Done before the chain check: OpenSSL verifies the signature on every link of the path it
        // builds, so the step-by-step check below does not verify those links again (two ECDSA
        // verifications of the leaf were ~7% of a verification, issue 7).
        let trust = (!ctx.anchors.is_empty()).then(|| anchor_path(&certs, ctx.anchors));
        let same = |a: &X509, b: &X509| std::ptr::eq::<X509Ref>(&**a, &**b) || a.to_der().ok() == b.to_der().ok();
        let signatures_verified = match &trust {
            // links k → k+1 of x5c that are links of the validated path
            Some(Ok(chain)) => chain.iter().zip(&certs).take_while(|(p, c)| same(p, c)).count().saturating_sub(1),
            _ => 0,
        };

        // chain: each certificate issued and signed by the next, which is a CA
        let mut chain_reason: Option<String> = None;
        for k in 0..certs.len() - 1 {
            let (sub, iss) = (&certs[k], &certs[k + 1]);
            let issued = iss.issued(sub);
            if issued != X509VerifyResult::OK {
                chain_reason = Some(format!("x5c[{k}] is not issued by x5c[{}] ({})", k + 1, issued.error_string()));
            } else if k >= signatures_verified && !iss.public_key().and_then(|pk| sub.verify(&pk)).unwrap_or(false) {
                chain_reason = Some(format!("x5c[{k}] is not signed by x5c[{}]", k + 1));
            } else if super::der::basic_constraints(&iss.to_der().unwrap_or_default()).map(|x| x.1) != Some(true) {
                chain_reason = Some(format!("x5c[{}] is not a CA certificate (basicConstraints cA)", k + 1));
            } else if iss.key_usage().is_some_and(|ku| !ku.contains(X509KeyUsage::KEY_CERT_SIGN)) {
                chain_reason = Some(format!("x5c[{}] KeyUsage lacks keyCertSign", k + 1));
            }
            if chain_reason.is_some() {
                break;
            }
        }
        checks.chain = Some(match chain_reason {
            Some(r) => Check::fail(r),
            None => Check::pass_note(format!("{} certificate(s), each signed by the next", certs.len())),
        });

        let mut path: Vec<X509> = certs.clone();
        match trust {
            None => {
                checks.trust = Some(Check::skip("no trust anchors configured: the chain was not anchored"));
            }
            Some(Ok(mut chain)) => {
                let anchor = chain.pop().expect("a validated path is not empty");
                let anchor_der = anchor.to_der().unwrap_or_default();
                let in_x5c = certs.iter().any(|c| c.to_der().ok().as_deref() == Some(&anchor_der[..]));
                let subj = name_to_string(anchor.subject_name());
                checks.trust = Some(Check::pass_note(if in_x5c {
                    format!("x5c ends with trust anchor {subj}")
                } else {
                    format!("x5c is issued by trust anchor {subj}")
                }));
                rep.anchor = Some(subj);
                if !in_x5c {
                    path.push(anchor);
                }
            }
            Some(Err(r)) => checks.trust = Some(Check::fail(r)),
        }

        // validity: every certificate of the path at the verification time, the leaf at sigT
        {
            let mut reasons: Vec<String> = Vec::new();
            let range = |c: &X509| (asn1_to_chrono(c.not_before()), asn1_to_chrono(c.not_after()));
            match verif_at {
                None => reasons.push("no usable verification time (sigT is missing or invalid)".into()),
                Some(t) => {
                    for (k, c) in path.iter().enumerate() {
                        let (nb, na) = range(c);
                        if !(nb.is_some_and(|nb| t >= nb) && na.is_some_and(|na| t <= na)) {
                            reasons.push(format!(
                                "{} ({} .. {}) is not valid at {}{}",
                                if k == 0 { "leaf".to_string() } else { format!("certificate {k}") },
                                nb.map(super::format_instant).unwrap_or_default(),
                                na.map(super::format_instant).unwrap_or_default(),
                                super::format_instant(t),
                                if k == 0 && na.is_some_and(|na| t > na) { ": expired" } else { "" }
                            ));
                        }
                    }
                    if let Some((s, st)) = &sig_t {
                        if ctx.at != VerifyAt::SigT && *st > t + Duration::seconds(CLOCK_SKEW_SECS) {
                            reasons.push(format!(
                                "the claimed signing time sigT {s} is later than the verification time {}",
                                super::format_instant(t)
                            ));
                        }
                    }
                }
            }
            if let Some((s, st)) = &sig_t {
                let (nb, na) = range(&certs[0]);
                if !(nb.is_some_and(|nb| *st >= nb) && na.is_some_and(|na| *st <= na)) {
                    reasons.push(format!("the signing time sigT {s} is outside the leaf validity"));
                }
            }
            checks.validity = Some(if reasons.is_empty() { Check::pass() } else { Check::fail(reasons.join("; ")) });
        }

        // key usage of the leaf
        checks.key_usage = Some(match certs[0].key_usage() {
            None if ctx.anchors.is_empty() => {
                Check::skip("the leaf has no KeyUsage extension (unrestricted); enforced only with trust anchors")
            }
            None => {
                Check::fail("the leaf has no KeyUsage extension; a signing certificate must assert digitalSignature")
            }
            Some(ku) => {
                let names = ku_names(ku);
                if ku.contains(X509KeyUsage::DIGITAL_SIGNATURE) {
                    Check::pass_note(format!("KeyUsage: {names}"))
                } else {
                    Check::fail(format!("leaf KeyUsage ({names}) lacks digitalSignature"))
                }
            }
        });
    }

    // --- cross-checks with the carrier
    if let Some((s, _)) = &sig_t {
        let mut reasons = Vec::new();
        if let Some(p) = prov {
            match p.get("occurredDateTime").and_then(Value::as_str) {
                None => reasons.push("Provenance.occurredDateTime is missing (it must equal sigT)".to_string()),
                Some(o) if o != s => {
                    let same_instant = DateTime::parse_from_rfc3339(o).ok().map(|d| d.with_timezone(&Utc))
                        == DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc));
                    reasons.push(format!(
                        "sigT {s} != Provenance.occurredDateTime {o}{}",
                        if same_instant {
                            " (same instant, different text: HL7 tooling compares the text)"
                        } else {
                            ""
                        }
                    ));
                }
                _ => {}
            }
        }
        if let Some(wh) = str_of(sig_el, "when") {
            if wh != s {
                reasons.push(format!("sigT {s} != Signature.when {wh}"));
            }
        }
        checks.signing_time = Some(if reasons.is_empty() { Check::pass() } else { Check::fail(reasons.join("; ")) });
    }
    if let Some(leaf) = certs.first() {
        let (identity, name) = signer_checks(bundle, sig_el, prov, leaf);
        checks.signer_identity = identity;
        checks.signer_name = name;
    }
}

fn ku_names(ku: X509KeyUsage) -> String {
    let table = [
        (X509KeyUsage::DIGITAL_SIGNATURE, "digitalSignature"),
        (X509KeyUsage::NON_REPUDIATION, "nonRepudiation"),
        (X509KeyUsage::KEY_ENCIPHERMENT, "keyEncipherment"),
        (X509KeyUsage::DATA_ENCIPHERMENT, "dataEncipherment"),
        (X509KeyUsage::KEY_AGREEMENT, "keyAgreement"),
        (X509KeyUsage::KEY_CERT_SIGN, "keyCertSign"),
        (X509KeyUsage::CRL_SIGN, "cRLSign"),
        (X509KeyUsage::ENCIPHER_ONLY, "encipherOnly"),
        (X509KeyUsage::DECIPHER_ONLY, "decipherOnly"),
    ];
    let v: Vec<&str> = table.iter().filter(|(f, _)| ku.contains(*f)).map(|(_, n)| *n).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The certificate's key when it is a P-256 key, read from its SubjectPublicKeyInfo rather than
/// through `PKey::ec_key` (~50 µs per signature in OpenSSL 3.0; see `p256_public_key`).
fn p256_key(cert: &X509Ref) -> Option<EcKey<Public>> {
    let der = cert.to_der().ok()?;
    super::p256_public_key(super::der::p256_point(&der)?).ok()
}

fn key_fits_alg(key: &PKey<Public>, p256: Option<&EcKey<Public>>, alg: &str) -> Result<(), String> {
    if alg == "ES256" && p256.is_some() {
        return Ok(());
    }
    let curve = || key.ec_key().ok().and_then(|k| k.group().curve_name());
    match alg {
        "ES256" | "ES384" => {
            let want = if alg == "ES256" { Nid::X9_62_PRIME256V1 } else { Nid::SECP384R1 };
            if key.id() == Id::EC && curve() == Some(want) {
                Ok(())
            } else {
                Err(format!(
                    "{alg} needs a {} EC key (found {})",
                    if alg == "ES256" { "P-256" } else { "P-384" },
                    describe_key(key)
                ))
            }
        }
        "RS256" | "PS256" => {
            if key.id() != Id::RSA && key.id() != Id::RSA_PSS {
                Err(format!("{alg} needs an RSA key (found {})", describe_key(key)))
            } else if key.bits() < 2048 {
                Err(format!("{alg} needs an RSA key of at least 2048 bits (found {})", key.bits()))
            } else {
                Ok(())
            }
        }
        other => Err(format!("algorithm {other} not supported")),
    }
}

fn describe_key(key: &PKey<Public>) -> String {
    match key.id() {
        Id::EC => format!(
            "EC {}",
            key.ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .and_then(|n| n.short_name().ok())
                .unwrap_or("unknown curve")
        ),
        Id::RSA => format!("RSA {} bits", key.bits()),
        other => format!("{other:?}"),
    }
}

/// Parsed CA certificates of `x5c[1..]` by their DER: every signature of the service carries the
/// same issuing CA, and OpenSSL 3 takes ~100 µs to parse a certificate (issue 7). Only the
/// parsing is saved; every check still runs on every signature. Bounded; the oldest goes first.
static CA_CERTIFICATES: std::sync::Mutex<Vec<(Vec<u8>, X509)>> = std::sync::Mutex::new(Vec::new());
const CA_CERTIFICATES_KEPT: usize = 16;

fn cached_ca_certificate(der: &[u8]) -> Option<X509> {
    let kept = CA_CERTIFICATES.lock().unwrap_or_else(|e| e.into_inner());
    kept.iter().find(|(d, _)| d == der).map(|(_, c)| c.clone())
}

fn remember_ca_certificate(der: Vec<u8>, cert: &X509) {
    let mut kept = CA_CERTIFICATES.lock().unwrap_or_else(|e| e.into_inner());
    if !kept.iter().any(|(d, _)| *d == der) {
        if kept.len() >= CA_CERTIFICATES_KEPT {
            kept.remove(0);
        }
        kept.push((der, cert.clone()));
    }
}

fn crypto_verify(
    key: &PKey<Public>,
    p256: Option<&EcKey<Public>>,
    alg: &str,
    h64: &str,
    s64: &str,
    payload: &[u8],
) -> Result<(), String> {
    if alg == "ES256" {
        // the service's algorithm: hash the signing input as a stream and check R‖S directly
        // (no 220 kB signing-input string for the Form 003 Bundle; issue 7)
        let raw = URL_SAFE_NO_PAD.decode(s64).map_err(|e| format!("signature segment is not base64url: {e}"))?;
        let digest = super::jws::signing_input_sha256(h64, payload);
        return match p256 {
            Some(ec) => super::jws::verify_es256_digest(&digest, &raw, ec),
            None => super::jws::verify_es256_digest(&digest, &raw, &*key.ec_key().map_err(|e| e.to_string())?),
        };
    }
    let spki = key.public_key_to_der().map_err(|e| e.to_string())?;
    let verifier: Box<dyn JwsVerifier> = match alg {
        "ES256" => Box::new(ES256.verifier_from_der(&spki).map_err(|e| e.to_string())?),
        "ES384" => Box::new(ES384.verifier_from_der(&spki).map_err(|e| e.to_string())?),
        "RS256" => Box::new(RS256.verifier_from_der(&spki).map_err(|e| e.to_string())?),
        "PS256" => Box::new(PS256.verifier_from_der(&spki).map_err(|e| e.to_string())?),
        other => return Err(format!("algorithm {other} not supported")),
    };
    let jws = format!("{h64}..{s64}");
    super::jws::verify_detached(&jws, payload, verifier.as_ref())
}

/// RFC 5280 path validation with OpenSSL (time not checked here; see the validity check): the
/// leaf with `x5c[1..]` as untrusted intermediates must reach a configured anchor. Returns the
/// validated path, leaf first, the anchor last; OpenSSL has verified the signature of each of
/// its certificates with the key of the next (`internal_verify`, also below a partial-chain anchor).
pub(crate) fn anchor_path(certs: &[X509], anchors: &[X509]) -> Result<Vec<X509>, String> {
    let run = || -> Result<Result<Vec<X509>, String>, openssl::error::ErrorStack> {
        let mut sb = X509StoreBuilder::new()?;
        for a in anchors {
            sb.add_cert(a.clone())?;
        }
        sb.set_flags(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::NO_CHECK_TIME)?;
        let store = sb.build();
        let mut untrusted = Stack::new()?;
        for c in &certs[1..] {
            untrusted.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, &certs[0], &untrusted, |c| {
            if c.verify_cert()? {
                Ok(Ok(c.chain().map(|ch| ch.iter().map(|x| x.to_owned()).collect()).unwrap_or_default()))
            } else {
                let err = c.error();
                let depth = c.error_depth();
                let raw = err.as_raw();
                // 2 UNABLE_TO_GET_ISSUER_CERT, 18 DEPTH_ZERO_SELF_SIGNED_CERT,
                // 19 SELF_SIGNED_CERT_IN_CHAIN, 20 UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                // 21 UNABLE_TO_VERIFY_LEAF_SIGNATURE
                Ok(Err(if matches!(raw, 2 | 18 | 19 | 20 | 21) {
                    format!(
                        "the chain does not end at any configured trust anchor ({}); a CA is never trusted because it appears in x5c",
                        err.error_string()
                    )
                } else {
                    format!("certificate path validation failed at depth {depth}: {}", err.error_string())
                }))
            }
        })
    };
    run().map_err(|e| format!("certificate path validation error: {e}"))?
}

fn summarize(c: &X509) -> CertificateSummary {
    let subject = name_to_string(c.subject_name());
    let attr = |nid: Nid| c.subject_name().entries_by_nid(nid).next().and_then(|e| e.data().to_string().ok());
    let sans = san_values(c);
    let pinfl = attr(Nid::SERIALNUMBER)
        .filter(|s| s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()))
        .or_else(|| sans.iter().find_map(|s| pinfl_from_san(s)));
    CertificateSummary {
        subject,
        issuer: name_to_string(c.issuer_name()),
        serial_number: c.serial_number().to_bn().map(|b| hex::encode(b.to_vec())).unwrap_or_default(),
        pinfl,
        name: attr(Nid::COMMONNAME),
        not_before: asn1_to_chrono(c.not_before()).map(super::format_instant),
        not_after: asn1_to_chrono(c.not_after()).map(super::format_instant),
        subject_alt_names: sans,
        sha256: c.digest(MessageDigest::sha256()).map(|d| hex::encode(&*d)).unwrap_or_default(),
    }
}

fn pinfl_from_san(s: &str) -> Option<String> {
    let rest = s.strip_prefix(PINFL_SYSTEM)?;
    let v = rest.strip_prefix("%7C").or_else(|| rest.strip_prefix("%7c")).or_else(|| rest.strip_prefix('|'))?;
    (v.len() == 14 && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.to_string())
}

fn san_values(c: &X509) -> Vec<String> {
    c.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|g| {
                    g.uri()
                        .or_else(|| g.email())
                        .or_else(|| g.dnsname())
                        .map(str::to_string)
                        .or_else(|| g.directory_name().map(name_to_string))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `TYPE=value` pairs of a DN written RFC 2253/1779 style (`CN=x,O=y`) or with newlines;
/// types upper-cased; sorted.
fn dn_attributes(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | ';' | '\n' | '+' => {
                out.push(std::mem::take(&mut cur));
            }
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    let mut v: Vec<String> = out
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()),
            None => s,
        })
        .collect();
    v.sort();
    v
}

fn cert_dn_attributes(c: &X509) -> Vec<(String, String)> {
    c.subject_name()
        .entries()
        .map(|e| {
            (
                e.object().nid().short_name().unwrap_or("?").to_ascii_uppercase(),
                e.data().to_string().unwrap_or_default(),
            )
        })
        .collect()
}

fn same_dn(value: &str, c: &X509) -> bool {
    let mut mine: Vec<String> = cert_dn_attributes(c).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    mine.sort();
    let theirs = dn_attributes(value);
    !mine.is_empty() && mine == theirs
}

/// Practitioner-like resources a `who` reference leads to (the PractitionerRole and its
/// Practitioner, or a Practitioner directly).
fn who_resources<'a>(bundle: &'a Value, who: &Value) -> Vec<&'a Value> {
    let mut out = Vec::new();
    if let Some(r) = who.get("reference").and_then(Value::as_str).and_then(|r| resolve_in_bundle(bundle, r)) {
        out.push(r);
        if str_of(r, "resourceType") == Some("PractitionerRole") {
            if let Some(p) = r
                .get("practitioner")
                .and_then(|p| p.get("reference"))
                .and_then(Value::as_str)
                .and_then(|p| resolve_in_bundle(bundle, p))
            {
                out.push(p);
            }
        }
    }
    out
}

fn signer_checks(bundle: &Value, sig_el: &Value, prov: Option<&Value>, leaf: &X509) -> (Option<Check>, Option<Check>) {
    let mut whos: Vec<(String, &Value)> = Vec::new();
    if let Some(w) = sig_el.get("who") {
        whos.push(("Signature.who".into(), w));
    }
    if let Some(agents) = prov.and_then(|p| p.get("agent")).and_then(Value::as_array) {
        for (k, a) in agents.iter().enumerate() {
            if let Some(w) = a.get("who") {
                whos.push((format!("Provenance.agent[{k}].who"), w));
            }
        }
    }
    if whos.is_empty() {
        return (None, None);
    }
    let summary = summarize(leaf);
    let cert_pinfl = summary.pinfl.clone();
    let mut values: Vec<String> = cert_dn_attributes(leaf).into_iter().map(|(_, v)| v).collect();
    values.extend(summary.subject_alt_names.iter().cloned());
    values.extend(cert_pinfl.iter().cloned());

    let mut bad: Vec<String> = Vec::new();
    let mut matched_by_identifier = false;
    let mut have_identifier = false;
    for (n, w) in &whos {
        if let Some(v) = w.get("identifier").and_then(|i| i.get("value")).and_then(Value::as_str) {
            have_identifier = true;
            if same_dn(v, leaf) || values.iter().any(|x| x == v) {
                matched_by_identifier = true;
            } else {
                bad.push(format!(
                    "{n}.identifier.value {v:?} matches neither the certificate subject ({}) nor a subjectAltName",
                    summary.subject
                ));
            }
        }
    }
    // PINFL of the referenced PractitionerRole → Practitioner must be the certificate's.
    let mut referenced_ids: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (n, w) in &whos {
        let res = who_resources(bundle, w);
        let mut pinfls: Vec<&str> = Vec::new();
        for r in &res {
            pinfls.extend(pinfls_of(r));
            if let Some(ids) = r.get("identifier").and_then(Value::as_array) {
                referenced_ids.extend(ids.iter().filter_map(|i| str_of(i, "value")).map(str::to_string));
            }
            if str_of(r, "resourceType") == Some("Practitioner") {
                names.extend(human_names(r));
            }
        }
        if let (Some(cp), false) = (&cert_pinfl, pinfls.is_empty()) {
            if !pinfls.contains(&cp.as_str()) {
                bad.push(format!(
                    "{n} references a practitioner with PINFL {}, but the certificate was issued to PINFL {cp}",
                    pinfls.join(", ")
                ));
            }
        }
    }
    let identity = if !bad.is_empty() {
        Check::fail(bad.join("; "))
    } else if have_identifier && matched_by_identifier {
        Check::pass_note(match &cert_pinfl {
            Some(p) => format!("who.identifier matches the certificate (PINFL {p})"),
            None => "who.identifier matches the certificate".to_string(),
        })
    } else if let Some(hit) = referenced_ids.iter().find(|v| values.contains(v)) {
        Check::pass_note(format!("certificate carries identifier {hit} of the referenced signer"))
    } else {
        Check::skip(
            "who is a reference only and no identifier of the referenced signer appears in the certificate (not enforced)",
        )
    };

    let name = match (&summary.name, names.is_empty()) {
        (Some(cn), false) => {
            let tok = |s: &str| -> Vec<String> {
                let mut v: Vec<String> = s
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
                    .filter(|t| !t.is_empty())
                    .map(|t| t.to_lowercase())
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let cn_t = tok(cn);
            let hit = names.iter().find(|n| {
                let nt = tok(n);
                !nt.is_empty() && (nt.iter().all(|t| cn_t.contains(t)) || cn_t.iter().all(|t| nt.contains(t)))
            });
            Some(match hit {
                Some(n) => Check::pass_note(format!("certificate name {cn:?} matches Practitioner.name {n:?}")),
                None => Check::skip(format!(
                    "certificate name {cn:?} differs from Practitioner.name {} (informational: names come from different registries; the PINFL decides)",
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                )),
            })
        }
        _ => None,
    };
    (Some(identity), name)
}

fn human_names(r: &Value) -> Vec<String> {
    r.get("name")
        .and_then(Value::as_array)
        .map(|ns| {
            ns.iter()
                .filter_map(|n| {
                    if let Some(t) = str_of(n, "text") {
                        return Some(t.to_string());
                    }
                    let mut parts: Vec<String> = Vec::new();
                    if let Some(f) = str_of(n, "family") {
                        parts.push(f.to_string());
                    }
                    if let Some(g) = n.get("given").and_then(Value::as_array) {
                        parts.extend(g.iter().filter_map(Value::as_str).map(str::to_string));
                    }
                    (!parts.is_empty()).then(|| parts.join(" "))
                })
                .collect()
        })
        .unwrap_or_default()
}
