//! The signing CA and the short-lived leaf certificates it issues (signatures.md §10).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
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
    /// (critical), extendedKeyUsage documentSigning: in this order, before the SKI
    head_extensions: Vec<X509Extension>,
    /// authorityKeyIdentifier (keyid of `chain[0]`), after the SKI
    aki: X509Extension,
}

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
        Ok(LeafTemplate {
            ca_public: ca.public_key().map_err(e)?,
            ca_not_before: asn1_to_unix(ca.not_before())?,
            ca_not_after: asn1_to_unix(ca.not_after())?,
            digest: digest_for(key)?,
            head_extensions,
            aki,
        })
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
    /// random 159-bit serial.
    pub fn issue_leaf(
        &self,
        signer: &Signer,
        public_key: &PKeyRef<Public>,
        signing_time: DateTime<Utc>,
    ) -> Result<X509, SignError> {
        signer.validate()?;
        let (ca, tpl) = (&self.chain[0], &self.leaf);
        let t = signing_time.timestamp();
        if t < tpl.ca_not_before || t > tpl.ca_not_after {
            return Err(SignError::Ca(format!("the signing CA is not valid at the signing time {signing_time}")));
        }
        let not_before = (t - LEAF_BACKDATE_SECS).max(tpl.ca_not_before);
        let not_after = (t + LEAF_LIFETIME_SECS).min(tpl.ca_not_after);

        let cert = (|| -> Result<X509, openssl::error::ErrorStack> {
            let mut b = X509::builder()?;
            b.set_version(2)?;
            let serial = random_serial()?;
            b.set_serial_number(&serial)?;
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
            for ext in &tpl.head_extensions {
                b.append_extension2(ext)?;
            }
            let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca), None))?;
            b.append_extension(ski)?;
            b.append_extension2(&tpl.aki)?;
            let san = SubjectAlternativeName::new()
                .uri(&pinfl_uri(&signer.pinfl))
                .build(&b.x509v3_context(Some(ca), None))?;
            b.append_extension(san)?;
            b.sign(&self.key, tpl.digest)?;
            Ok(b.build())
        })()
        .map_err(|e| SignError::Ca(format!("cannot issue the leaf certificate: {e}")))?;
        Ok(cert)
    }
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
