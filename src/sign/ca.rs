//! The signing CA and the short-lived leaf certificates it issues (signatures.md §10).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNumContext;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::PointConversionForm;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Extension, X509Name, X509NameBuilder, X509Ref, X509};

use super::{der, SignError, Signer, PINFL_SYSTEM};

/// RFC 9336 id-kp-documentSigning.
pub const OID_DOCUMENT_SIGNING: &str = "1.3.6.1.5.5.7.3.36";
/// Clock-skew allowance before the signing time (leaf `notBefore = T − 60 s`).
pub const LEAF_BACKDATE_SECS: i64 = 60;
/// Leaf lifetime after the signing time (`notAfter = T + 10 min`).
pub const LEAF_LIFETIME_SECS: i64 = 600;

/// File names of the development CA inside `<data dir>/signing-ca/`.
pub const DEV_CA_DIR: &str = "signing-ca";
/// Development CA certificate file name.
pub const DEV_CA_CERT: &str = "ca-cert.pem";
/// Development CA private key file name (PKCS#8 PEM, mode 0600).
pub const DEV_CA_KEY: &str = "ca-key.pem";

/// The signing CA: its certificate chain, its private key and the trust anchors used for
/// verification (the top of the chain plus retired CA certificates).
///
/// `Debug` never prints the key.
pub struct SigningCa {
    /// `chain[0]` issues the leaves; each next certificate issued the previous one.
    chain: Vec<X509>,
    key: PKey<Private>,
    anchors: Vec<X509>,
    /// What every leaf shares, prepared once (issue 7: building them per signature cost tens of µs).
    leaf: LeafTemplate,
}

/// The parts of a leaf that depend only on the CA.
struct LeafTemplate {
    /// `chain[0]`'s public key (the signing self-check verifies each leaf with it)
    ca_public: PKey<Public>,
    /// `chain[0]`'s validity, Unix seconds
    ca_not_before: i64,
    ca_not_after: i64,
    digest: MessageDigest,
    /// basicConstraints CA:FALSE (critical), keyUsage digitalSignature + nonRepudiation
    /// (critical), extendedKeyUsage documentSigning: in this order, before the SKI (kept for the
    /// tests' reference leaves from OpenSSL's builder)
    #[cfg_attr(not(test), allow(dead_code))]
    head_extensions: Vec<X509Extension>,
    /// authorityKeyIdentifier (keyid of `chain[0]`), after the SKI
    #[cfg_attr(not(test), allow(dead_code))]
    aki: X509Extension,
    /// The DER every leaf shares, cut out of a leaf that OpenSSL's builder issued when the CA was
    /// loaded, so these bytes are exactly what OpenSSL writes (issue 7: building each leaf with
    /// `X509Builder` cost ~0.1 ms, most of it OpenSSL's generic ASN.1 machinery; a leaf is now
    /// assembled from these pieces and its variable fields, then signed over its TBS bytes).
    der: LeafDer,
}

struct LeafDer {
    /// the TBS `signature` AlgorithmIdentifier (also the outer `signatureAlgorithm`)
    sig_alg: Vec<u8>,
    /// the issuer Name (`chain[0]`'s subject)
    issuer: Vec<u8>,
    /// the basicConstraints, keyUsage and extendedKeyUsage `Extension`s
    head_extensions: Vec<u8>,
    /// the authorityKeyIdentifier `Extension`
    aki: Vec<u8>,
}

/// OID content octets: subjectKeyIdentifier, authorityKeyIdentifier, subjectAltName.
const OID_SKI: &[u8] = &[0x55, 0x1d, 0x0e];
const OID_AKI: &[u8] = &[0x55, 0x1d, 0x23];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

impl LeafTemplate {
    fn new(ca: &X509Ref, key: &PKeyRef<Private>) -> Result<LeafTemplate, SignError> {
        let e = |e: openssl::error::ErrorStack| SignError::Ca(format!("cannot prepare the leaf template: {e}"));
        let head_extensions = vec![
            BasicConstraints::new().critical().build().map_err(e)?,
            KeyUsage::new().critical().digital_signature().non_repudiation().build().map_err(e)?,
            ExtendedKeyUsage::new().other(OID_DOCUMENT_SIGNING).build().map_err(e)?,
        ];
        let b = X509::builder().map_err(e)?;
        let aki = AuthorityKeyIdentifier::new().keyid(false).build(&b.x509v3_context(Some(ca), None)).map_err(e)?;
        let digest = digest_for(key)?;
        let ca_not_before = asn1_to_unix(ca.not_before())?;
        // a probe leaf from OpenSSL's builder, within the CA's validity
        let probe_key = EcKey::generate(super::p256()?).and_then(PKey::from_ec_key).map_err(e)?;
        let probe = Signer { pinfl: "00000000000000".into(), name: "probe".into(), role_display: String::new() };
        let serial = BigNum::from_u32(1).and_then(|b| b.to_asn1_integer()).map_err(e)?;
        let probe_der = openssl_leaf(
            ca,
            key,
            digest,
            &head_extensions,
            &aki,
            &probe,
            &probe_key,
            (ca_not_before, ca_not_before),
            &serial,
        )
        .and_then(|c| c.to_der())
        .map_err(e)?;
        let der = LeafDer::cut(&probe_der)
            .ok_or_else(|| SignError::Ca("cannot prepare the leaf template: unexpected DER from OpenSSL".into()))?;
        Ok(LeafTemplate {
            ca_public: ca.public_key().map_err(e)?,
            ca_not_before,
            ca_not_after: asn1_to_unix(ca.not_after())?,
            digest,
            head_extensions,
            aki,
            der,
        })
    }
}

impl LeafDer {
    fn cut(probe: &[u8]) -> Option<LeafDer> {
        let parts = der::cert_parts(probe)?;
        let f = &parts.tbs_fields;
        // version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [3]
        if f.len() != 8 || f[0] != [0xa0, 0x03, 0x02, 0x01, 0x02] || f[7][0] != 0xa3 {
            return None;
        }
        // the probe key is P-256: its SubjectPublicKeyInfo is `der::P256_SPKI_PREFIX` ‖ point
        if parts.signature_algorithm != f[2] || der::p256_point(probe).is_none() {
            return None;
        }
        let exts = der::extension_tlvs(probe)?;
        let [bc, ku, eku, ski, aki, san] = exts[..] else { return None };
        if (bc.0, ku.0, ski.0, aki.0, san.0)
            != (der::OID_BASIC_CONSTRAINTS, der::OID_KEY_USAGE, OID_SKI, OID_AKI, OID_SAN)
        {
            return None;
        }
        Some(LeafDer {
            sig_alg: f[2].to_vec(),
            issuer: f[3].to_vec(),
            head_extensions: [bc.1, ku.1, eku.1].concat(),
            aki: aki.1.to_vec(),
        })
    }
}

/// A leaf certificate as issued: its DER and its serial number.
#[derive(Clone, Debug)]
pub struct IssuedLeaf {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The serial number, lower-case hex of its minimal big-endian octets.
    pub serial_hex: String,
}

impl IssuedLeaf {
    /// PEM (`CERTIFICATE`, 64-character lines, as OpenSSL writes it).
    pub fn to_pem(&self) -> String {
        let b64 = super::jws::b64std(&self.der);
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

impl std::fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa")
            .field("subject", &name_to_string(self.chain[0].subject_name()))
            .field("sha256", &self.fingerprint_sha256_hex())
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, SignError> {
    fs::read(path).map_err(|e| SignError::Ca(format!("cannot read {what} {}: {e}", path.display())))
}

fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<X509>, SignError> {
    let certs = X509::stack_from_pem(pem)
        .map_err(|e| SignError::Ca(format!("{}: not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(SignError::Ca(format!("{}: no PEM certificate found", path.display())));
    }
    Ok(certs)
}

impl SigningCa {
    /// Production: loads the CA chain (`chain_path`: PEM, the issuing CA first, then its issuers
    /// if any) and the CA private key (`key_path`: PKCS#8 PEM, unencrypted), plus retired CA
    /// certificates that stay trusted for verification (`extra_anchor_paths`, PEM files with one or
    /// more certificates each).
    ///
    /// Errors when a file is unreadable, the key does not match `chain[0]`, `chain[0]` is not a CA
    /// (basicConstraints cA, keyUsage keyCertSign when present), or the chain is not in order.
    pub fn load_pem(
        chain_path: &Path,
        key_path: &Path,
        extra_anchor_paths: &[PathBuf],
    ) -> Result<SigningCa, SignError> {
        let chain = certs_from_pem(&read(chain_path, "CA certificate chain")?, chain_path)?;
        let key_pem = zeroize::Zeroizing::new(read(key_path, "CA private key")?);
        if key_pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(SignError::Ca(format!(
                "{}: encrypted private keys are not supported (use an unencrypted PKCS#8 PEM)",
                key_path.display()
            )));
        }
        let key = PKey::private_key_from_pem(&key_pem).map_err(|e| {
            SignError::Ca(format!("{}: not a PEM private key (PKCS#8 expected): {e}", key_path.display()))
        })?;
        let mut extra = Vec::new();
        for p in extra_anchor_paths {
            extra.extend(certs_from_pem(&read(p, "trust anchor")?, p)?);
        }
        Self::from_parts(chain, key, extra)
    }

    /// Builds a CA from parsed parts (same checks as [`SigningCa::load_pem`]).
    pub fn from_parts(chain: Vec<X509>, key: PKey<Private>, extra_anchors: Vec<X509>) -> Result<SigningCa, SignError> {
        let ca = chain.first().ok_or_else(|| SignError::Ca("the CA certificate chain is empty".into()))?;
        let ca_pub = ca.public_key().map_err(|e| SignError::Ca(format!("CA public key: {e}")))?;
        if !ca_pub.public_eq(&key) {
            return Err(SignError::Ca(
                "the CA private key does not match the CA certificate (first certificate of the chain)".into(),
            ));
        }
        digest_for(&key)?;
        let ca_der = ca.to_der().map_err(|e| SignError::Ca(e.to_string()))?;
        if der::basic_constraints(&ca_der).map(|(_, ca)| ca) != Some(true) {
            return Err(SignError::Ca("the CA certificate is not a CA (basicConstraints cA is not set)".into()));
        }
        if let Some(ku) = ca.key_usage() {
            if !ku.contains(openssl::x509::X509KeyUsage::KEY_CERT_SIGN) {
                return Err(SignError::Ca("the CA certificate's keyUsage lacks keyCertSign".into()));
            }
        }
        for k in 0..chain.len().saturating_sub(1) {
            let ok = chain[k + 1].public_key().and_then(|pk| chain[k].verify(&pk)).unwrap_or(false);
            if !ok {
                return Err(SignError::Ca(format!(
                    "CA chain out of order: certificate {k} is not signed by certificate {}",
                    k + 1
                )));
            }
        }
        let mut anchors: Vec<X509> = Vec::new();
        let top = chain.last().expect("non-empty").clone();
        for c in std::iter::once(top).chain(extra_anchors) {
            let d = c.to_der().map_err(|e| SignError::Ca(e.to_string()))?;
            if !anchors.iter().any(|a| a.to_der().ok().as_deref() == Some(&d[..])) {
                anchors.push(c);
            }
        }
        let leaf = LeafTemplate::new(&chain[0], &key)?;
        let ca = SigningCa { chain, key, anchors, leaf };
        ca.self_test()?;
        Ok(ca)
    }

    /// Issues a throw-away leaf and validates it (RFC 5280, OpenSSL) up to the anchors, so that a
    /// misconfigured chain (path length, key usage, unknown critical extensions) fails at start-up
    /// rather than at the first signature.
    fn self_test(&self) -> Result<(), SignError> {
        let ca = &self.chain[0];
        let (nb, na) = (asn1_to_unix(ca.not_before())?, asn1_to_unix(ca.not_after())?);
        let t = Utc::now().timestamp().clamp(nb, na);
        let t = DateTime::from_timestamp(t, 0).expect("a certificate time is a valid timestamp");
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| SignError::Ca(e.to_string()))?;
        let key = EcKey::generate(&group)
            .and_then(PKey::from_ec_key)
            .and_then(|k| PKey::public_key_from_der(&k.public_key_to_der()?))
            .map_err(|e| SignError::Ca(e.to_string()))?;
        let probe =
            Signer { pinfl: "00000000000000".into(), name: "hujjat CA self-test".into(), role_display: String::new() };
        let leaf = self.issue_leaf(&probe, &key, t)?;
        let mut path = vec![leaf];
        path.extend(self.x5c_tail().iter().cloned());
        super::verify::anchor_path(&path, &self.anchors)
            .map(|_| ())
            .map_err(|r| SignError::Ca(format!("the CA chain does not validate: {r}")))
    }

    /// Development: uses the CA in `<dir>/signing-ca/` (`ca-cert.pem`, `ca-key.pem`), generating a
    /// fresh P-256 CA there on first use. Safe against concurrent first starts (the directory is
    /// created under a temporary name and renamed into place).
    pub fn load_or_create_dev(dir: &Path) -> Result<SigningCa, SignError> {
        let ca_dir = dir.join(DEV_CA_DIR);
        let (cert, key) = (ca_dir.join(DEV_CA_CERT), ca_dir.join(DEV_CA_KEY));
        if cert.exists() && key.exists() {
            return Self::load_pem(&cert, &key, &[]);
        }
        fs::create_dir_all(dir).map_err(|e| SignError::Ca(format!("cannot create {}: {e}", dir.display())))?;
        let (ca_cert, ca_key) = generate_dev_ca(Utc::now())?;
        let tmp = dir.join(format!(".{DEV_CA_DIR}.tmp-{}", uuid::Uuid::new_v4()));
        let write = || -> std::io::Result<()> {
            fs::create_dir(&tmp)?;
            let key_pem = zeroize::Zeroizing::new(ca_key.private_key_to_pem_pkcs8().map_err(std::io::Error::other)?);
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(tmp.join(DEV_CA_KEY))?;
            f.write_all(&key_pem)?;
            f.sync_all()?;
            fs::write(tmp.join(DEV_CA_CERT), ca_cert.to_pem().map_err(std::io::Error::other)?)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(SignError::Ca(format!("cannot write the development CA: {e}")));
        }
        if fs::rename(&tmp, &ca_dir).is_err() {
            // Another process created it first (or a partial directory exists): use what is there.
            let _ = fs::remove_dir_all(&tmp);
        }
        Self::load_pem(&cert, &key, &[])
    }

    /// Adds retired CA certificates (PEM files) as trust anchors for verification.
    pub fn add_anchor_pems(&mut self, paths: &[PathBuf]) -> Result<(), SignError> {
        for p in paths {
            for c in certs_from_pem(&read(p, "trust anchor")?, p)? {
                let d = c.to_der().map_err(|e| SignError::Ca(e.to_string()))?;
                if !self.anchors.iter().any(|a| a.to_der().ok().as_deref() == Some(&d[..])) {
                    self.anchors.push(c);
                }
            }
        }
        Ok(())
    }

    /// The issuing CA certificate (`chain[0]`).
    pub fn certificate(&self) -> &X509 {
        &self.chain[0]
    }

    /// The issuing CA's public key (of `chain[0]`).
    pub fn public_key(&self) -> &PKeyRef<Public> {
        &self.leaf.ca_public
    }

    /// The configured chain, issuing CA first.
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// Certificates placed after the leaf in `x5c`: the chain without a final self-signed root
    /// (unless the chain is only that root, as in development).
    pub fn x5c_tail(&self) -> &[X509] {
        let n = self.chain.len();
        if n > 1 && is_self_signed(&self.chain[n - 1]) {
            &self.chain[..n - 1]
        } else {
            &self.chain
        }
    }

    /// Every trust anchor: the top of the configured chain, then retired CA certificates.
    pub fn anchors(&self) -> Vec<X509> {
        self.anchors.clone()
    }

    /// PEM of every trust anchor, concatenated (served at `GET /trust/ca.pem`).
    pub fn anchors_pem(&self) -> String {
        self.anchors.iter().filter_map(|c| c.to_pem().ok()).map(|p| String::from_utf8_lossy(&p).into_owned()).collect()
    }

    /// SHA-256 fingerprint (lower-case hex) of the issuing CA certificate, to record and compare
    /// at start-up (refuse to start when the configured key/certificate changed unexpectedly).
    pub fn fingerprint_sha256_hex(&self) -> String {
        self.chain[0].digest(MessageDigest::sha256()).map(|d| hex::encode(&*d)).unwrap_or_default()
    }

    /// Issues the short-lived leaf certificate for one signature (signatures.md §10.3):
    /// subject `C=UZ, CN=<name>, serialNumber=<PINFL>`, subjectAltName URI
    /// `https://dhp.uz/fhir/core/sid/pid/uz/ni%7C<PINFL>`, validity `T − 60 s … T + 10 min`
    /// (never beyond the CA's notAfter), keyUsage digitalSignature + nonRepudiation (critical),
    /// basicConstraints CA:FALSE (critical), extendedKeyUsage documentSigning, SKI/AKI,
    /// random 159-bit serial. `point` is the signer's P-256 public key, uncompressed.
    ///
    /// The DER is assembled here from the CA's prepared pieces (see `LeafDer`, and `der::P256_SPKI_PREFIX` for the key) and is the same,
    /// octet for octet, as OpenSSL's `X509Builder` writes for the same fields (tested).
    pub fn issue_leaf_der(
        &self,
        signer: &Signer,
        point: &[u8],
        signing_time: DateTime<Utc>,
    ) -> Result<IssuedLeaf, SignError> {
        signer.validate()?;
        // OpenSSL refuses a commonName over 64 characters (X.520 ub-common-name); `validate`
        // counts the trimmed name, the certificate carries it as given
        if signer.name.chars().count() > 64 {
            return Err(SignError::Ca("cannot issue the leaf certificate: the name is over 64 characters".into()));
        }
        if point.len() != der::P256_POINT_LEN || point[0] != 0x04 {
            return Err(SignError::Ca("cannot issue the leaf certificate: not an uncompressed P-256 point".into()));
        }
        let tpl = &self.leaf;
        let t = signing_time.timestamp();
        if t < tpl.ca_not_before || t > tpl.ca_not_after {
            return Err(SignError::Ca(format!("the signing CA is not valid at the signing time {signing_time}")));
        }
        let not_before = (t - LEAF_BACKDATE_SECS).max(tpl.ca_not_before);
        let not_after = (t + LEAF_LIFETIME_SECS).min(tpl.ca_not_after);
        let e = |e: openssl::error::ErrorStack| SignError::Ca(format!("cannot issue the leaf certificate: {e}"));
        let serial = random_serial().and_then(|s| s.to_bn()).map_err(e)?.to_vec();
        let d = &tpl.der;

        let mut body = Vec::with_capacity(640);
        body.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x02]); // [0] version v3
        put_integer(&mut body, &serial);
        body.extend_from_slice(&d.sig_alg);
        body.extend_from_slice(&d.issuer);
        let mut validity = Vec::with_capacity(34);
        let at = |s: i64| DateTime::from_timestamp(s, 0).ok_or_else(|| SignError::Ca("time out of range".into()));
        der::put_time(&mut validity, at(not_before)?);
        der::put_time(&mut validity, at(not_after)?);
        der::put(&mut body, 0x30, &validity);
        body.extend_from_slice(&subject_name(signer));
        body.extend_from_slice(&der::P256_SPKI_PREFIX);
        body.extend_from_slice(point);
        let mut exts = Vec::with_capacity(256);
        exts.extend_from_slice(&d.head_extensions);
        // SKI: RFC 5280 §4.2.1.2 method (1), SHA-1 of the subjectPublicKey bits, as OpenSSL's "hash"
        let mut ski = Vec::with_capacity(22);
        der::put(&mut ski, 0x04, &openssl::sha::sha1(point));
        extension(&mut exts, OID_SKI, &ski);
        exts.extend_from_slice(&d.aki);
        let mut san = Vec::new();
        der::put(&mut san, 0x86, pinfl_uri(&signer.pinfl).as_bytes()); // uniformResourceIdentifier [6] IA5String
        let mut names = Vec::with_capacity(san.len() + 2);
        der::put(&mut names, 0x30, &san);
        extension(&mut exts, OID_SAN, &names);
        let mut seq = Vec::with_capacity(exts.len() + 4);
        der::put(&mut seq, 0x30, &exts);
        der::put(&mut body, 0xa3, &seq);
        let mut tbs = Vec::with_capacity(body.len() + 4);
        der::put(&mut tbs, 0x30, &body);

        let mut signer_ctx = openssl::sign::Signer::new(tpl.digest, &self.key).map_err(e)?;
        let sig = signer_ctx.sign_oneshot_to_vec(&tbs).map_err(e)?;
        let mut bits = Vec::with_capacity(sig.len() + 1);
        bits.push(0); // no unused bits
        bits.extend_from_slice(&sig);
        let mut content = Vec::with_capacity(tbs.len() + d.sig_alg.len() + bits.len() + 4);
        content.extend_from_slice(&tbs);
        content.extend_from_slice(&d.sig_alg);
        der::put(&mut content, 0x03, &bits);
        let mut out = Vec::with_capacity(content.len() + 4);
        der::put(&mut out, 0x30, &content);
        Ok(IssuedLeaf { der: out, serial_hex: hex::encode(&serial) })
    }

    /// [`issue_leaf_der`](Self::issue_leaf_der) for a caller-held public key, parsed by OpenSSL.
    pub fn issue_leaf(
        &self,
        signer: &Signer,
        public_key: &PKeyRef<Public>,
        signing_time: DateTime<Utc>,
    ) -> Result<X509, SignError> {
        let e = |e: openssl::error::ErrorStack| SignError::Ca(format!("cannot issue the leaf certificate: {e}"));
        let ec = public_key
            .ec_key()
            .map_err(|_| SignError::Ca("cannot issue the leaf certificate: the key is not an EC key".into()))?;
        if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
            return Err(SignError::Ca("cannot issue the leaf certificate: the key is not a P-256 key".into()));
        }
        let mut ctx = BigNumContext::new().map_err(e)?;
        let point = ec.public_key().to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx).map_err(e)?;
        X509::from_der(&self.issue_leaf_der(signer, &point, signing_time)?.der).map_err(e)
    }

    /// Whether `leaf_der` carries a valid signature of this CA (`chain[0]`) over its TBS bytes,
    /// with the algorithm this CA signs with in both of its AlgorithmIdentifier fields (what
    /// OpenSSL's `X509_verify` checks).
    pub fn signed_leaf(&self, leaf_der: &[u8]) -> bool {
        let Some(parts) = der::cert_parts(leaf_der) else { return false };
        if parts.signature_algorithm != self.leaf.der.sig_alg.as_slice()
            || parts.tbs_fields.get(2).copied() != Some(parts.signature_algorithm)
        {
            return false;
        }
        openssl::sign::Verifier::new(self.leaf.digest, &self.leaf.ca_public)
            .and_then(|mut v| v.verify_oneshot(parts.signature, parts.tbs))
            .unwrap_or(false)
    }
}

fn put_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    // a positive INTEGER: minimal octets, with a leading 0 when the high bit is set
    if magnitude.first().is_none_or(|b| *b >= 0x80) {
        let mut c = Vec::with_capacity(magnitude.len() + 1);
        c.push(0);
        c.extend_from_slice(magnitude);
        der::put(out, 0x02, &c);
    } else {
        der::put(out, 0x02, magnitude);
    }
}

/// `Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }` (not critical).
fn extension(out: &mut Vec<u8>, oid: &[u8], value: &[u8]) {
    let mut c = Vec::with_capacity(oid.len() + value.len() + 8);
    der::put(&mut c, 0x06, oid);
    der::put(&mut c, 0x04, value);
    der::put(out, 0x30, &c);
}

/// The leaf's subject `C=UZ, CN=<name>, serialNumber=<PINFL>` with the string types OpenSSL
/// chooses for them: PrintableString for countryName and serialNumber (their types are fixed),
/// UTF8String for commonName (OpenSSL's default string mask, `utf8only`).
fn subject_name(signer: &Signer) -> Vec<u8> {
    let mut rdns = Vec::with_capacity(64 + signer.name.len());
    for (oid, tag, value) in [
        ([0x55, 0x04, 0x06], 0x13, "UZ"),
        ([0x55, 0x04, 0x03], 0x0c, signer.name.as_str()),
        ([0x55, 0x04, 0x05], 0x13, signer.pinfl.as_str()),
    ] {
        let mut atv = Vec::with_capacity(value.len() + 8);
        der::put(&mut atv, 0x06, &oid);
        der::put(&mut atv, tag, value.as_bytes());
        let mut seq = Vec::with_capacity(atv.len() + 4);
        der::put(&mut seq, 0x30, &atv);
        der::put(&mut rdns, 0x31, &seq);
    }
    let mut out = Vec::with_capacity(rdns.len() + 4);
    der::put(&mut out, 0x30, &rdns);
    out
}

/// A leaf from OpenSSL's `X509Builder` (the template's probe, and the reference in the tests).
#[allow(clippy::too_many_arguments)]
fn openssl_leaf(
    ca: &X509Ref,
    ca_key: &PKeyRef<Private>,
    digest: MessageDigest,
    head_extensions: &[X509Extension],
    aki: &X509Extension,
    signer: &Signer,
    public_key: &PKeyRef<impl HasPublic>,
    (not_before, not_after): (i64, i64),
    serial: &openssl::asn1::Asn1IntegerRef,
) -> Result<X509, openssl::error::ErrorStack> {
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(serial)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COUNTRYNAME, "UZ")?;
    name.append_entry_by_nid(Nid::COMMONNAME, &signer.name)?;
    name.append_entry_by_nid(Nid::SERIALNUMBER, &signer.pinfl)?;
    let name = name.build();
    b.set_subject_name(&name)?;
    b.set_issuer_name(ca.subject_name())?;
    let (nb, na) = (Asn1Time::from_unix(not_before)?, Asn1Time::from_unix(not_after)?);
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    b.set_pubkey(public_key)?;
    for ext in head_extensions {
        b.append_extension2(ext)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(ski)?;
    b.append_extension2(aki)?;
    let san = SubjectAlternativeName::new().uri(&pinfl_uri(&signer.pinfl)).build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(san)?;
    b.sign(ca_key, digest)?;
    Ok(b.build())
}

/// The subjectAltName URI that carries the PINFL: the FHIR token `system|value` with the `|`
/// percent-encoded (RFC 3986 has no bare `|`).
pub fn pinfl_uri(pinfl: &str) -> String {
    format!("{PINFL_SYSTEM}%7C{pinfl}")
}

fn random_serial() -> Result<Asn1Integer, openssl::error::ErrorStack> {
    // 159 random bits: positive and at most 20 octets (RFC 5280 §4.1.2.2); never zero in practice.
    let mut bn = BigNum::new()?;
    loop {
        bn.rand(159, MsbOption::MAYBE_ZERO, false)?;
        if bn.num_bits() > 64 {
            break;
        }
    }
    bn.to_asn1_integer()
}

fn digest_for(key: &PKeyRef<Private>) -> Result<MessageDigest, SignError> {
    match key.id() {
        Id::EC => {
            let ec = key.ec_key().map_err(|e| SignError::Ca(e.to_string()))?;
            match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Ok(MessageDigest::sha256()),
                Some(Nid::SECP384R1) => Ok(MessageDigest::sha384()),
                Some(Nid::SECP521R1) => Ok(MessageDigest::sha512()),
                other => Err(SignError::Ca(format!("unsupported CA curve {other:?}"))),
            }
        }
        Id::RSA => Ok(MessageDigest::sha256()),
        other => Err(SignError::Ca(format!("unsupported CA key type {other:?}"))),
    }
}

fn is_self_signed(c: &X509Ref) -> bool {
    c.issued(c) == openssl::x509::X509VerifyResult::OK && c.public_key().and_then(|k| c.verify(&k)).unwrap_or(false)
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub fn asn1_to_unix(t: &openssl::asn1::Asn1TimeRef) -> Result<i64, SignError> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| SignError::Ca(e.to_string()))?;
    let d = epoch.diff(t).map_err(|e| SignError::Ca(e.to_string()))?;
    Ok(d.days as i64 * 86_400 + d.secs as i64)
}

/// An ASN.1 time as a UTC date-time.
pub fn asn1_to_chrono(t: &openssl::asn1::Asn1TimeRef) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(asn1_to_unix(t).ok()?, 0)
}

/// `C=UZ, CN=…, serialNumber=…` style rendering (short names, certificate order).
pub fn name_to_string(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            let val = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn generate_dev_ca(now: DateTime<Utc>) -> Result<(X509, PKey<Private>), SignError> {
    (|| -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COUNTRYNAME, "UZ")?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "hujjat (development)")?;
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        name.append_entry_by_nid(Nid::COMMONNAME, &format!("hujjat development signing CA {tag}"))?;
        let name: X509Name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = random_serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        let nb = Asn1Time::from_unix((now - Duration::hours(1)).timestamp())?;
        let na = Asn1Time::from_unix((now + Duration::days(3650)).timestamp())?;
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.set_pubkey(&key)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok((b.build(), key))
    })()
    .map_err(|e| SignError::Ca(format!("cannot generate the development CA: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (tempfile::TempDir, SigningCa) {
        let d = tempfile::tempdir().unwrap();
        let ca = SigningCa::load_or_create_dev(d.path()).unwrap();
        (d, ca)
    }

    /// The assembled leaf is OpenSSL's leaf for the same fields, octet for octet up to the CA's
    /// signature (ECDSA signatures are randomized): Latin, Cyrillic and Uzbek Latin names and a
    /// name of exactly 64 characters (the UTCTime/GeneralizedTime switch: `der::tests`).
    #[test]
    fn assembled_leaves_match_openssls_builder() {
        let (_d, ca) = ca();
        let key = EcKey::generate(crate::sign::p256().unwrap()).unwrap();
        let public =
            PKey::from_ec_key(EcKey::from_public_key(crate::sign::p256().unwrap(), key.public_key()).unwrap()).unwrap();
        let mut cx = BigNumContext::new().unwrap();
        let point = key
            .public_key()
            .to_bytes(crate::sign::p256().unwrap(), PointConversionForm::UNCOMPRESSED, &mut cx)
            .unwrap();
        let names = ["Karimov Aziz", "Каримов Азиз Баходирович", "Oʻzbekova Gʻulora", &"Я".repeat(64)];
        let tpl = &ca.leaf;
        for (i, name) in names.iter().enumerate() {
            let signer =
                Signer { pinfl: format!("3150785123001{i}"), name: name.to_string(), role_display: String::new() };
            let t = DateTime::from_timestamp(tpl.ca_not_before + 3600 * i as i64, 0).unwrap();
            let ours = ca.issue_leaf_der(&signer, &point, t).unwrap();
            let serial =
                BigNum::from_slice(&hex::decode(&ours.serial_hex).unwrap()).unwrap().to_asn1_integer().unwrap();
            let (nb, na) =
                ((t.timestamp() - LEAF_BACKDATE_SECS).max(tpl.ca_not_before), t.timestamp() + LEAF_LIFETIME_SECS);
            let theirs = openssl_leaf(
                ca.certificate(),
                &ca.key,
                tpl.digest,
                &tpl.head_extensions,
                &tpl.aki,
                &signer,
                &public,
                (nb, na),
                &serial,
            )
            .unwrap()
            .to_der()
            .unwrap();
            let (a, b) = (der::cert_parts(&ours.der).unwrap(), der::cert_parts(&theirs).unwrap());
            assert_eq!(hex::encode(a.tbs), hex::encode(b.tbs), "TBS for {name:?}");
            assert_eq!(a.signature_algorithm, b.signature_algorithm);
            assert!(ca.signed_leaf(&ours.der) && ca.signed_leaf(&theirs));
            // and OpenSSL reads ours back with the same fields
            let x = X509::from_der(&ours.der).unwrap();
            assert_eq!(hex::encode(x.serial_number().to_bn().unwrap().to_vec()), ours.serial_hex);
            assert_eq!(x.to_pem().unwrap(), ours.to_pem().as_bytes());
        }
    }

    /// What OpenSSL's builder refuses, the assembler refuses: a name over 64 characters (after
    /// the trimmed name passed `validate`), a point that is not an uncompressed P-256 point, a
    /// signing time outside the CA's validity.
    #[test]
    fn the_assembler_refuses_what_openssl_would() {
        let (_d, ca) = ca();
        let key = EcKey::generate(crate::sign::p256().unwrap()).unwrap();
        let mut cx = BigNumContext::new().unwrap();
        let group = crate::sign::p256().unwrap();
        let point = key.public_key().to_bytes(group, PointConversionForm::UNCOMPRESSED, &mut cx).unwrap();
        let compressed = key.public_key().to_bytes(group, PointConversionForm::COMPRESSED, &mut cx).unwrap();
        let t = Utc::now();
        let padded = Signer {
            pinfl: "31507851230012".into(),
            name: format!(" {} ", "a".repeat(64)),
            role_display: String::new(),
        };
        assert!(padded.validate().is_ok());
        assert!(ca.issue_leaf_der(&padded, &point, t).is_err());
        let ok = Signer { pinfl: "31507851230012".into(), name: "Karimov Aziz".into(), role_display: String::new() };
        assert!(ca.issue_leaf_der(&ok, &compressed, t).is_err());
        assert!(ca.issue_leaf_der(&ok, &point[..64], t).is_err());
        let after = DateTime::from_timestamp(ca.leaf.ca_not_after + 1, 0).unwrap();
        assert!(ca.issue_leaf_der(&ok, &point, after).is_err());
        assert!(ca.issue_leaf_der(&ok, &point, t).is_ok());
    }
}
