//! Signing and verification of FHIR R5 document Bundles under the FHIR R6 signature rules as
//! pre-adopted by DHP (shared docs: `signatures.md`, `dhp-platform.md` §4).
//!
//! # Public API
//!
//! * [`SigningCa`] — the signing CA.
//!   - [`SigningCa::load_pem`]`(chain, key, extra_anchors)` — production: PEM chain with the
//!     issuing CA first (then its issuers, if any), unencrypted PKCS#8 PEM key, and retired CA
//!     certificates that stay trusted for verification. Errors ([`SignError::Ca`]) when a file is
//!     unreadable, the key does not match, the first certificate is not a CA, the chain is out of
//!     order, or a probe leaf does not validate up to the anchors (checked at load time).
//!   - [`SigningCa::load_or_create_dev`]`(data_dir)` — development: a P-256 CA generated on first
//!     use into `<data_dir>/signing-ca/{ca-cert.pem, ca-key.pem}` (key mode 0600), reused after.
//!   - [`SigningCa::anchors`] / [`SigningCa::anchors_pem`] — every trust anchor (top of the chain
//!     plus retired CAs); the PEM is what `GET /trust/ca.pem` serves.
//!     [`SigningCa::add_anchor_pems`] adds retired CAs later.
//!   - [`SigningCa::fingerprint_sha256_hex`] — to record in the database and refuse to start when
//!     the configured CA changed unexpectedly (signatures.md §10.3).
//!   - [`SigningCa::issue_leaf`] — one short-lived leaf for a caller-held public key.
//! * [`sign_document`]`(bundle, ca, signer, opts, now)` → `(signed bundle, SignatureRecord)`.
//!   Finds the signer's PractitionerRole entry (via the Practitioner carrying the PINFL; error
//!   [`SignError::Signer`] if none), generates an ephemeral P-256 key, issues the leaf
//!   (`C=UZ, CN=<name>, serialNumber=<PINFL>`, SAN URI
//!   `https://dhp.uz/fhir/core/sid/pid/uz/ni%7C<PINFL>`, valid T−60 s … T+10 min, keyUsage
//!   digitalSignature + nonRepudiation critical, CA:FALSE critical, EKU documentSigning, random
//!   159-bit serial), signs the `#document` payload as a detached compact ES256 JWS, checks
//!   the signature against the certificate's key and the certificate against the CA's key
//!   (self-check, [`SignError::SelfCheck`]), drops the key and appends the signing Provenance of
//!   signatures.md §2.5 as the last entry. The input is not modified
//!   ([`sign_document_owned`] takes the Bundle by value and saves the copy).
//! * [`canonical_payload`]`(bundle)` — the exact signed bytes (RFC 8785, `…/json#document`);
//!   [`payload_for`] for `…/json`, `#data`, `#static`; [`jcs`] for any JSON value (refuses
//!   integers beyond ±(2^53−1)); [`parse_strict`] for duplicate keys and unsafe integers.
//! * [`verify_bundle`]`(bundle, anchors, VerifyAt)` → [`VerificationReport`] (`Serialize`):
//!   `ok`, `status` (valid / invalid / indeterminate), document `problems`, and per signature
//!   every check (`{ok: true|false|null, reason}`, names as in `jws-verify`), the decoded header,
//!   canonicalization, payload SHA-256 and length, the signer certificate (PINFL, name, serial),
//!   the anchor matched and the time basis. [`verify_bundle_json`] does the same from raw bytes
//!   with strict parsing — use it for documents received from outside.
//! * [`cli_verify`]`(file, trust, at)` → exit code (0: ≥ 1 signature and all verify; 1: not;
//!   2: usage or I/O error); [`parse_at`] parses `--at` (`now`, `sigT`, RFC 3339 with zone).
//!
//! # Decisions
//!
//! * The header is `alg, typ, kid, x5c, x5t#S256, sigT, srCms, canon`; `kid` = `x5t#S256` =
//!   base64url SHA-256 of the leaf DER (issue 3 asks for `kid`; signatures.md §3 says none;
//!   `jws-verify` accepts it). `x5c` = [leaf, issuing CA, intermediates] without a self-signed
//!   root when the configured chain has one; the root is then the anchor.
//! * `agent[0].type` is `provenance-participant-type#author` only (§2.5 exactly);
//!   [`SignOptions::agent_type_astm`] adds the ASTM purpose coding. `Signature.type` is the
//!   national coding (default `biometricAuth`) plus the ASTM purpose. `meta.profile` only with
//!   [`SignOptions::claim_uz_core_profile`]; `Provenance.text` only with
//!   [`SignOptions::narrative`].
//! * Trust: with no anchors the `trust` check is *not evaluated* (`ok: null`); nothing fails,
//!   so `ok` is true (as `jws-verify` without `--trust`), but the `status` is `indeterminate`.
//!   Decide on [`Status::Valid`], and always pass anchors. The R6 worked example (self-signed,
//!   no KeyUsage) verifies at its signing time without anchors (status `indeterminate`); with
//!   itself as the anchor it is trusted but fails `keyUsage`, exactly like `jws-verify --trust`.
//! * Path validation: the chain check (each `x5c` certificate issued and signed by the next, a CA
//!   with keyCertSign) is done step by step for precise reasons; the trust check is OpenSSL's
//!   RFC 5280 validation (partial chains allowed, time excluded) to a configured anchor — a CA
//!   in `x5c` is never trusted by itself.
//! * Verification time: [`VerifyAt::Now`] evaluates the whole path at now, so a 10-minute leaf
//!   fails soon after signing; stored documents are verified with [`VerifyAt::SigT`] (the time
//!   basis is the service-claimed `sigT`, no trusted timestamp yet). The leaf must always
//!   cover `sigT`, and `sigT` may not lie more than 5 minutes after the verification time.
//! * Signer identity: every `who.identifier.value` must equal the certificate DN, a subject
//!   attribute or a SAN; a `who` reference that resolves to PractitionerRole → Practitioner must
//!   carry the certificate's PINFL; the CN is compared with `Practitioner.name` for information
//!   only (`signerName`, never failing: registries spell names differently).

pub mod ca;
pub mod canon;
mod cli;
pub mod der;
pub mod jws;
pub mod verify;

use chrono::{DateTime, SubsecRound, Utc};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcGroupRef, EcKey, EcPoint, PointConversionForm};
use openssl::nid::Nid;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use ca::SigningCa;
pub use canon::{canonical_payload, jcs, parse_strict, payload_for, Canonicalization, CANON_DOCUMENT, CANON_JSON};
pub use cli::{cli_verify, parse_at};
pub use verify::{
    verify_bundle, verify_bundle_json, Check, Checks, SignatureReport, Status, VerificationReport, VerifyAt,
};

/// PINFL identifier system (Uzbek personal identification number).
pub const PINFL_SYSTEM: &str = "https://dhp.uz/fhir/core/sid/pid/uz/ni";
/// ASTM E1762-95(2013) signature type code system.
pub const ASTM_SYSTEM: &str = "urn:iso-astm:E1762-95:2013";
/// DHP national signature-type code system.
pub const SIGNATURE_TYPE_CS: &str = "https://terminology.dhp.uz/fhir/core/CodeSystem/signature-type-cs";
/// `provenance-participant-type` code system.
pub const PARTICIPANT_TYPE_CS: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/// `v3-DocumentCompletion` code system.
pub const DOCUMENT_COMPLETION_CS: &str = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion";
/// UZ Core Provenance profile canonical.
pub const UZ_CORE_PROVENANCE: &str = "https://dhp.uz/fhir/core/StructureDefinition/uz-core-provenance";
/// `Signature.targetFormat` the service emits.
pub const TARGET_FORMAT: &str =
    "application/fhir+json;canonicalization=http://hl7.org/fhir/canonicalization/json#document";
/// `Signature.sigFormat` of a JWS.
pub const SIG_FORMAT_JOSE: &str = "application/jose";

/// Errors of signing and CA handling.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The document cannot be signed as it is (not a document Bundle, unsafe integers, …).
    #[error("document: {0}")]
    Document(String),
    /// The signer cannot be bound to the document (no PractitionerRole for the PINFL, bad PINFL).
    #[error("signer: {0}")]
    Signer(String),
    /// CA loading, generation or certificate issuance failed.
    #[error("signing CA: {0}")]
    Ca(String),
    /// Key generation or JWS signing failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The freshly signed document did not pass the verifier (a bug; nothing is returned).
    #[error("self-check failed: {0}")]
    SelfCheck(String),
}

/// The practitioner who signs, as authenticated (oneID): PINFL, full name, role/position.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signer {
    /// 14-digit PINFL.
    pub pinfl: String,
    /// Full name (certificate CN; at most 64 characters).
    pub name: String,
    /// Role or position shown to users (recorded, not put into the certificate).
    pub role_display: String,
}

impl Signer {
    /// Checks the PINFL (14 digits) and the name (non-empty, at most 64 characters).
    pub fn validate(&self) -> Result<(), SignError> {
        if self.pinfl.len() != 14 || !self.pinfl.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignError::Signer(format!("PINFL must be 14 digits (got {:?})", self.pinfl)));
        }
        let n = self.name.trim();
        if n.is_empty() || n.chars().count() > 64 {
            return Err(SignError::Signer("the signer's name must be 1 to 64 characters (X.520 commonName)".into()));
        }
        if self.name.chars().any(char::is_control) {
            return Err(SignError::Signer("the signer's name contains control characters".into()));
        }
        Ok(())
    }
}

/// A FHIR Coding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Coding {
    /// Code system URI.
    pub system: String,
    /// Code.
    pub code: String,
    /// Display (omitted from the JSON when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("system".into(), json!(self.system));
        m.insert("code".into(), json!(self.code));
        if let Some(d) = &self.display {
            m.insert("display".into(), json!(d));
        }
        Value::Object(m)
    }

    /// DHP `signature-type-cs#biometricAuth` (default national signature type).
    pub fn biometric_auth() -> Coding {
        Coding { system: SIGNATURE_TYPE_CS.into(), code: "biometricAuth".into(), display: None }
    }

    /// `provenance-participant-type#author` (default agent type).
    pub fn participant_author() -> Coding {
        Coding { system: PARTICIPANT_TYPE_CS.into(), code: "author".into(), display: None }
    }
}

/// How the signing Provenance names the Bundle in `Provenance.target`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetMode {
    /// `{"reference": "#/"}` (R6 rule 4; default).
    #[default]
    Hash,
    /// `{"reference": "Bundle/<Bundle.id>"}` (R6 rule 3, DHP examples).
    BundleId,
}

/// Purpose of the signature: an ASTM E1762-95(2013) signature type (`srCms` and `Signature.type`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Purpose {
    /// OID, e.g. `1.2.840.10065.1.12.1.1`.
    pub code: String,
    /// Display, e.g. `Author's Signature`.
    pub display: String,
}

/// The 18 ASTM E1762-95(2013) signature types (code suffix N of 1.2.840.10065.1.12.1.N, display).
pub const ASTM_TYPES: [(u8, &str); 18] = [
    (1, "Author's Signature"),
    (2, "Coauthor's Signature"),
    (3, "Co-participant's Signature"),
    (4, "Transcriptionist/Recorder Signature"),
    (5, "Verification Signature"),
    (6, "Validation Signature"),
    (7, "Consent Signature"),
    (8, "Signature Witness Signature"),
    (9, "Event Witness Signature"),
    (10, "Identity Witness Signature"),
    (11, "Consent Witness Signature"),
    (12, "Interpreter Signature"),
    (13, "Review Signature"),
    (14, "Source Signature"),
    (15, "Addendum Signature"),
    (16, "Modification Signature"),
    (17, "Administrative (Error/Edit) Signature"),
    (18, "Timestamp Signature"),
];

impl Purpose {
    /// ASTM type `1.2.840.10065.1.12.1.<n>` (n in 1..=18).
    pub fn astm(n: u8) -> Option<Purpose> {
        ASTM_TYPES
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(k, d)| Purpose { code: format!("1.2.840.10065.1.12.1.{k}"), display: (*d).to_string() })
    }
    /// Author's Signature (default).
    pub fn author() -> Purpose {
        Purpose::astm(1).expect("1 is an ASTM type")
    }
    /// Coauthor's Signature (e.g. a co-signing head of department).
    pub fn coauthor() -> Purpose {
        Purpose::astm(2).expect("2 is an ASTM type")
    }
    fn coding(&self) -> Coding {
        Coding { system: ASTM_SYSTEM.into(), code: self.code.clone(), display: Some(self.display.clone()) }
    }
}

impl Default for Purpose {
    fn default() -> Self {
        Purpose::author()
    }
}

/// Options of [`sign_document`] (DHP configuration items of dhp-platform.md §7).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignOptions {
    /// `signing.bundle_target`: `#/` (default) or `Bundle/<id>`.
    pub target: TargetMode,
    /// ASTM purpose (default Author's Signature).
    pub purpose: Purpose,
    /// `dhp.signature_type_code`: national coding put first in `Signature.type`
    /// (default `signature-type-cs#biometricAuth`; `None` omits it).
    pub national_type: Option<Coding>,
    /// `dhp.provenance_agent_type`: `agent[0].type` coding (default `author`).
    pub agent_type: Coding,
    /// Also put the ASTM purpose coding into `agent[0].type` (default off: §2.5 exactly).
    pub agent_type_astm: bool,
    /// `dhp.provenance_claim_profile`: claim `meta.profile = uz-core-provenance` (default off).
    pub claim_uz_core_profile: bool,
    /// Add a generated narrative (`Provenance.text`) naming the signer, purpose and time
    /// (default off: §2.5 exactly; on silences the dom-6 "should have narrative" warning).
    pub narrative: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            target: TargetMode::Hash,
            purpose: Purpose::author(),
            national_type: Some(Coding::biometric_auth()),
            agent_type: Coding::participant_author(),
            agent_type_astm: false,
            claim_uz_core_profile: false,
            narrative: false,
        }
    }
}

/// What to persist with each signature (signatures.md §5 step 9).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignatureRecord {
    /// SHA-256 (lower-case hex) of the exact canonical payload that was signed.
    pub payload_sha256: String,
    /// Length of the canonical payload in bytes.
    pub payload_bytes: usize,
    /// Signer PINFL.
    pub pinfl: String,
    /// Signer full name (certificate CN).
    pub name: String,
    /// Signer role/position ([`Signer::role_display`]).
    pub role: String,
    /// Signing time T (whole seconds).
    pub signed_at: DateTime<Utc>,
    /// T as written in `sigT`, `occurredDateTime`, `recorded`, `Signature.when`.
    pub sig_t: String,
    /// Leaf certificate serial number (lower-case hex).
    pub certificate_serial: String,
    /// SHA-256 (lower-case hex) of the leaf certificate DER.
    pub certificate_sha256: String,
    /// The leaf certificate, PEM.
    pub leaf_pem: String,
    /// The compact detached JWS.
    pub jws: String,
    /// `fullUrl` of the appended signing Provenance entry.
    pub provenance_full_url: String,
    /// Reference to the signer's PractitionerRole entry (`agent[0].who.reference`).
    pub practitioner_role_reference: String,
    /// ASTM purpose code.
    pub purpose: String,
}

fn entries(bundle: &Value) -> &[Value] {
    bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn composition(bundle: &Value) -> Option<&Value> {
    entries(bundle)
        .iter()
        .filter_map(|e| e.get("resource"))
        .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("Composition"))
}

/// Reference strings of a Reference or an array of References.
fn reference_strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|r| r.get("reference")?.as_str()).collect(),
        Some(r) => r.get("reference").and_then(Value::as_str).into_iter().collect(),
        None => Vec::new(),
    }
}

/// PINFL identifier values of a resource.
pub(crate) fn pinfls_of(resource: &Value) -> Vec<&str> {
    resource
        .get("identifier")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter(|i| i.get("system").and_then(Value::as_str) == Some(PINFL_SYSTEM))
                .filter_map(|i| i.get("value")?.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// `object[key]` by a scan of its members: for the small objects of an entry or a resource header a
/// scan touches less memory than serde_json's hashed lookup (hash table, bucket, key).
fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
}

/// Finds the `fullUrl` of the signer's PractitionerRole entry: a PractitionerRole whose
/// `practitioner` resolves to a Practitioner entry carrying the signer's PINFL. Among several,
/// prefer one that is a Composition author, then an attester party, then the first.
fn find_signer_role(bundle: &Value, pinfl: &str) -> Result<String, SignError> {
    // One pass over the entries (issue 7: the freshly parsed tree is cold, and each hashed lookup
    // costs cache misses): the fullUrl index (the first of equal fullUrls wins, as in
    // `canon::resolve_in_bundle`) and the PractitionerRoles with their `practitioner` reference.
    let all = entries(bundle);
    let mut by_url: rustc_hash::FxHashMap<&str, Option<&Value>> = rustc_hash::FxHashMap::default();
    let mut candidates: Vec<(&str, &str)> = Vec::new();
    for e in all {
        let (mut full_url, mut res) = (None, None);
        for (k, v) in e.as_object().into_iter().flatten() {
            match k.as_str() {
                "fullUrl" => full_url = v.as_str(),
                "resource" => res = Some(v),
                _ => {}
            }
        }
        let Some(u) = full_url else { continue };
        by_url.entry(u).or_insert(res);
        let Some(res) = res else { continue };
        if member(res, "resourceType").and_then(Value::as_str) == Some("PractitionerRole") {
            if let Some(pr) = member(res, "practitioner").and_then(|p| member(p, "reference")).and_then(Value::as_str) {
                candidates.push((u, pr));
            }
        }
    }
    let resolve = |reference: &str| match by_url.get(reference) {
        Some(r) => *r,
        None => canon::resolve_in_bundle(bundle, reference),
    };
    let mut roles: Vec<&str> = Vec::new();
    for (full_url, pr) in candidates {
        let Some(p) = resolve(pr) else {
            continue;
        };
        if p.get("resourceType").and_then(Value::as_str) == Some("Practitioner") && pinfls_of(p).contains(&pinfl) {
            roles.push(full_url);
        }
    }
    if roles.is_empty() {
        return Err(SignError::Signer(format!(
            "the document has no PractitionerRole entry whose Practitioner carries PINFL {pinfl} \
             (identifier system {PINFL_SYSTEM}); the signer must be a practitioner of the document"
        )));
    }
    let comp = composition(bundle);
    let authors = reference_strings(comp.and_then(|c| c.get("author")));
    let attesters: Vec<&str> = comp
        .and_then(|c| c.get("attester"))
        .and_then(Value::as_array)
        .map(|a| a.iter().flat_map(|x| reference_strings(x.get("party"))).collect())
        .unwrap_or_default();
    let pick = roles
        .iter()
        .find(|r| authors.contains(r))
        .or_else(|| roles.iter().find(|r| attesters.contains(r)))
        .unwrap_or(&roles[0]);
    Ok((*pick).to_string())
}

/// Escapes XHTML text content.
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            c => o.push(c),
        }
    }
    o
}

/// The P-256 group, built once: constructing it took about 25 µs of every signature (issue 7).
pub(super) fn p256() -> Result<&'static EcGroupRef, SignError> {
    static GROUP: std::sync::OnceLock<EcGroup> = std::sync::OnceLock::new();
    if let Some(g) = GROUP.get() {
        return Ok(g);
    }
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| SignError::Crypto(e.to_string()))?;
    Ok(GROUP.get_or_init(|| g))
}

/// A P-256 public key from its uncompressed point (checked to be on the curve), without OpenSSL
/// 3.0's EVP_PKEY → EC_KEY conversion, which encodes and decodes the key again (issue 7).
pub(super) fn p256_public_key(point: &[u8]) -> Result<EcKey<openssl::pkey::Public>, SignError> {
    let group = p256()?;
    BigNumContext::new()
        .and_then(|mut cx| EcPoint::from_bytes(group, point, &mut cx))
        .and_then(|p| EcKey::from_public_key(group, &p))
        .map_err(|e| SignError::Crypto(e.to_string()))
}

/// The signing self-check (see [`sign_document_owned`], step 7), on the certificate's DER as it
/// is published in `x5c`.
fn self_check(compact: &str, digest: &[u8; 32], leaf_der: &[u8], ca: &SigningCa) -> Result<(), SignError> {
    let fail = |m: String| SignError::SelfCheck(m);
    let raw = compact
        .rsplit_once("..")
        .and_then(|(_, s)| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).ok())
        .ok_or_else(|| fail("the JWS is not a detached compact serialization".into()))?;
    let point = der::p256_point(leaf_der)
        .ok_or_else(|| fail("leaf key: the certificate has no readable P-256 subjectPublicKeyInfo".into()))?;
    let leaf_key = p256_public_key(point).map_err(|e| fail(format!("leaf key: {e}")))?;
    jws::verify_es256_digest(digest, &raw, &leaf_key)
        .map_err(|e| fail(format!("signature: the JWS does not verify with the certificate's key: {e}")))?;
    if ca.signed_leaf(leaf_der) {
        Ok(())
    } else {
        Err(fail("chain: the leaf certificate does not verify with the CA certificate's key".into()))
    }
}

pub fn format_instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Signs a document Bundle for one practitioner and returns the new Bundle (the input plus the
/// signing Provenance as the last entry) and the record to persist.
///
/// The signer must appear in the Bundle: a PractitionerRole entry whose Practitioner carries the
/// signer's PINFL. Earlier signing Provenances are left in place and do not change the payload,
/// so several practitioners can sign in any order. `now` is truncated to whole seconds.
pub fn sign_document(
    bundle: &Value,
    ca: &SigningCa,
    signer: &Signer,
    opts: &SignOptions,
    now: DateTime<Utc>,
) -> Result<(Value, SignatureRecord), SignError> {
    sign_document_owned(bundle.clone(), ca, signer, opts, now)
}

/// [`sign_document`] taking the Bundle by value (no copy of the document; the service's path).
pub fn sign_document_owned(
    mut bundle: Value,
    ca: &SigningCa,
    signer: &Signer,
    opts: &SignOptions,
    now: DateTime<Utc>,
) -> Result<(Value, SignatureRecord), SignError> {
    signer.validate()?;
    let obj = bundle
        .as_object()
        .filter(|o| o.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .ok_or_else(|| SignError::Document("not a FHIR Bundle".into()))?;
    if obj.get("type").and_then(Value::as_str) != Some("document") {
        return Err(SignError::Document("only a Bundle of type document is signed".into()));
    }
    if opts
        .purpose
        .code
        .strip_prefix("1.2.840.10065.1.12.1.")
        .and_then(|n| n.parse::<u8>().ok())
        .and_then(Purpose::astm)
        .is_none()
    {
        return Err(SignError::Document(format!(
            "purpose {} is not an ASTM E1762-95(2013) signature type",
            opts.purpose.code
        )));
    }
    let target_ref = match opts.target {
        TargetMode::Hash => "#/".to_string(),
        TargetMode::BundleId => match obj.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => format!("Bundle/{id}"),
            _ => return Err(SignError::Document("target mode Bundle/<id> needs a Bundle.id".into())),
        },
    };
    let role_ref = find_signer_role(&bundle, &signer.pinfl)?;
    let patient = composition(&bundle).and_then(|c| reference_strings(c.get("subject")).first().map(|s| s.to_string()));

    // 1. time, 2. payload
    let t = now.trunc_subsecs(0);
    let sig_t = format_instant(t);
    let payload = canonical_payload(&bundle)?;
    let payload_sha256 = hex::encode(openssl::sha::sha256(&payload));

    // 3. ephemeral key and leaf certificate
    let crypto = |e: openssl::error::ErrorStack| SignError::Crypto(e.to_string());
    let group = p256()?;
    let key = EcKey::generate(group).map_err(crypto)?;
    let point = BigNumContext::new()
        .and_then(|mut cx| key.public_key().to_bytes(group, PointConversionForm::UNCOMPRESSED, &mut cx))
        .map_err(crypto)?;
    let leaf = ca.issue_leaf_der(signer, &point, t)?;

    // 4. header, 5. sign, 6. destroy the key (OpenSSL clears the private scalar when it frees it)
    let header = jws::service_header(&leaf.der, ca.x5c_tail(), &sig_t, &opts.purpose)?;
    let header_json = serde_json::to_vec(&header).map_err(|e| SignError::Crypto(e.to_string()))?;
    let (compact, digest) = jws::sign_es256_detached(&header_json, &payload, &key)?;
    drop(key);

    // 7. Provenance entry
    let who = json!({
        "reference": role_ref,
        "identifier": { "system": PINFL_SYSTEM, "value": signer.pinfl }
    });
    let mut agent_codings = vec![opts.agent_type.to_json()];
    if opts.agent_type_astm {
        agent_codings.push(opts.purpose.coding().to_json());
    }
    let mut sig_types = Vec::new();
    if let Some(n) = &opts.national_type {
        sig_types.push(n.to_json());
    }
    sig_types.push(opts.purpose.coding().to_json());
    let mut prov = Map::new();
    prov.insert("resourceType".into(), json!("Provenance"));
    if opts.claim_uz_core_profile {
        prov.insert("meta".into(), json!({ "profile": [UZ_CORE_PROVENANCE] }));
    }
    if opts.narrative {
        let div = format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Digital signature ({}) by {} (PINFL {}), {}</p></div>",
            xml_escape(&opts.purpose.display),
            xml_escape(signer.name.trim()),
            signer.pinfl,
            sig_t
        );
        prov.insert("text".into(), json!({ "status": "generated", "div": div }));
    }
    prov.insert("target".into(), json!([{ "reference": target_ref }]));
    prov.insert("occurredDateTime".into(), json!(sig_t));
    prov.insert("recorded".into(), json!(sig_t));
    prov.insert(
        "activity".into(),
        json!({ "coding": [{ "system": DOCUMENT_COMPLETION_CS, "code": "LA", "display": "legally authenticated" }] }),
    );
    if let Some(p) = &patient {
        prov.insert("patient".into(), json!({ "reference": p }));
    }
    prov.insert("agent".into(), json!([{ "type": { "coding": agent_codings }, "who": who.clone() }]));
    prov.insert(
        "signature".into(),
        json!([{
            "type": sig_types,
            "when": sig_t,
            "who": who,
            "targetFormat": TARGET_FORMAT,
            "sigFormat": SIG_FORMAT_JOSE,
            "data": jws::b64std(compact.as_bytes()),
        }]),
    );
    // 7. self-check before anything leaves: the signature verifies with the key the certificate
    // certifies, and the certificate with the CA's key (a fault, a key/certificate mix-up or a
    // CA key that does not match its certificate fails here). The rules the full verifier checks
    // besides (header, canonicalization, identity) hold by construction and are proven by the
    // tests with `verify_bundle` and the independent `jws-verify`; re-running the verifier here
    // re-canonicalized the whole document (issue 7).
    self_check(&compact, &digest, &leaf.der, ca)?;

    let full_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let entry = json!({ "fullUrl": full_url, "resource": Value::Object(prov) });
    match bundle.get_mut("entry") {
        Some(Value::Array(a)) => a.push(entry),
        _ => {
            bundle.as_object_mut().expect("checked object").insert("entry".into(), json!([entry]));
        }
    }
    let out = bundle;

    let record = SignatureRecord {
        payload_sha256,
        payload_bytes: payload.len(),
        pinfl: signer.pinfl.clone(),
        name: signer.name.clone(),
        role: signer.role_display.clone(),
        signed_at: t,
        sig_t,
        certificate_sha256: hex::encode(openssl::sha::sha256(&leaf.der)),
        leaf_pem: leaf.to_pem(),
        certificate_serial: leaf.serial_hex,
        jws: compact,
        provenance_full_url: full_url,
        practitioner_role_reference: role_ref,
        purpose: opts.purpose.code.clone(),
    };
    Ok((out, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;

    /// The self-check refuses a signature over other bytes, a signature by another key, and a
    /// leaf that another CA issued.
    #[test]
    fn self_check_refuses_what_does_not_verify() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ca, other_ca) =
            (SigningCa::load_or_create_dev(d1.path()).unwrap(), SigningCa::load_or_create_dev(d2.path()).unwrap());
        let signer =
            Signer { pinfl: "31507851230012".into(), name: "Karimov Aziz".into(), role_display: "Doctor".into() };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let new_key = || EcKey::generate(&group).unwrap();
        let key = new_key();
        let public = PKey::from_ec_key(EcKey::from_public_key(&group, key.public_key()).unwrap()).unwrap();
        let t = Utc::now().trunc_subsecs(0);
        let leaf = ca.issue_leaf(&signer, &public, t).unwrap().to_der().unwrap();
        let (compact, digest) = jws::sign_es256_detached(b"{\"alg\":\"ES256\"}", b"{\"a\":1}", &key).unwrap();
        self_check(&compact, &digest, &leaf, &ca).unwrap();

        let mut other_digest = digest;
        other_digest[0] ^= 1;
        let e = self_check(&compact, &other_digest, &leaf, &ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("signature:")), "{e}");

        let (by_other_key, d) = jws::sign_es256_detached(b"{\"alg\":\"ES256\"}", b"{\"a\":1}", &new_key()).unwrap();
        let e = self_check(&by_other_key, &d, &leaf, &ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("signature:")), "{e}");

        let e = self_check(&compact, &digest, &leaf, &other_ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("chain:")), "{e}");

        // the CA's signature altered, or a TBS octet (the last of the SAN's PINFL digits)
        let n = leaf.len();
        let mut bad_sig = leaf.clone();
        bad_sig[n - 3] ^= 1;
        let e = self_check(&compact, &digest, &bad_sig, &ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("chain:")), "{e}");
        let mut bad_tbs = leaf.clone();
        let pinfl_at = leaf.windows(14).rposition(|w| w == b"31507851230012").unwrap();
        bad_tbs[pinfl_at + 13] = b'3';
        let e = self_check(&compact, &digest, &bad_tbs, &ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("chain:")), "{e}");
        let e = self_check(&compact, &digest, &leaf[..n - 1], &ca).unwrap_err();
        assert!(matches!(&e, SignError::SelfCheck(m) if m.starts_with("leaf key:")), "{e}");
    }
}
