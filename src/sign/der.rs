//! A minimal DER reader for the X.509 extension fields that the `openssl` crate does not expose
//! (basicConstraints `cA`, the `critical` flag of any extension). Bounds-checked; returns `None`
//! on anything malformed.

/// One DER TLV: tag byte, content range.
#[derive(Clone, Copy, Debug)]
struct Tlv {
    tag: u8,
    /// where the tag octet is
    at: usize,
    start: usize,
    end: usize,
}

fn item(buf: &[u8], off: usize) -> Option<Tlv> {
    let tag = *buf.get(off)?;
    let first = *buf.get(off + 1)? as usize;
    let (len, hdr) = if first & 0x80 == 0 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | *buf.get(off + 2 + k)? as usize;
        }
        (len, 2 + n)
    };
    let start = off.checked_add(hdr)?;
    let end = start.checked_add(len)?;
    if end > buf.len() {
        return None;
    }
    Some(Tlv { tag, at: off, start, end })
}

fn children(buf: &[u8], parent: Tlv) -> Option<Vec<Tlv>> {
    let mut out = Vec::new();
    let mut off = parent.start;
    while off < parent.end {
        let c = item(buf, off)?;
        if c.end > parent.end {
            return None;
        }
        out.push(c);
        off = c.end;
    }
    Some(out)
}

/// An X.509 v3 extension as found in the certificate.
#[derive(Clone, Debug)]
pub struct RawExtension {
    /// DER content bytes of the OBJECT IDENTIFIER (e.g. `[0x55, 0x1d, 0x13]` for 2.5.29.19).
    pub oid: Vec<u8>,
    /// The `critical` flag.
    pub critical: bool,
    /// The DER bytes inside the extnValue OCTET STRING.
    pub value: Vec<u8>,
}

/// The `Extension` TLVs of a DER certificate (empty without `[3] extensions`).
fn extension_list(cert_der: &[u8]) -> Option<Vec<Tlv>> {
    let cert = item(cert_der, 0)?;
    let tbs = *children(cert_der, cert)?.first()?;
    let Some(wrap) = children(cert_der, tbs)?.into_iter().find(|c| c.tag == 0xa3) else {
        return Some(Vec::new());
    };
    let seq = *children(cert_der, wrap)?.first()?;
    children(cert_der, seq)
}

/// All extensions of a DER certificate, or `None` when the structure cannot be read.
pub fn extensions(cert_der: &[u8]) -> Option<Vec<RawExtension>> {
    let mut out = Vec::new();
    for ext in extension_list(cert_der)? {
        let parts = children(cert_der, ext)?;
        if parts.len() < 2 || parts[0].tag != 0x06 {
            return None;
        }
        let oid = cert_der[parts[0].start..parts[0].end].to_vec();
        let mut critical = false;
        let mut value_part = parts[1];
        if parts[1].tag == 0x01 {
            critical = cert_der.get(parts[1].start).copied().unwrap_or(0) != 0;
            value_part = *parts.get(2)?;
        }
        if value_part.tag != 0x04 {
            return None;
        }
        out.push(RawExtension { oid, critical, value: cert_der[value_part.start..value_part.end].to_vec() });
    }
    Some(out)
}

/// OID content bytes of basicConstraints (2.5.29.19).
pub const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
/// OID content bytes of keyUsage (2.5.29.15).
pub const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];

/// basicConstraints of a DER certificate: `Some((critical, cA))`, `None` when absent or unreadable.
pub fn basic_constraints(cert_der: &[u8]) -> Option<(bool, bool)> {
    let ext = extensions(cert_der)?.into_iter().find(|e| e.oid == OID_BASIC_CONSTRAINTS)?;
    let seq = item(&ext.value, 0)?;
    if seq.tag != 0x30 {
        return None;
    }
    let parts = children(&ext.value, seq)?;
    let ca = match parts.first() {
        Some(p) if p.tag == 0x01 => ext.value.get(p.start).copied().unwrap_or(0) != 0,
        _ => false,
    };
    Some((ext.critical, ca))
}

/// Whether the keyUsage extension is marked critical (`None` when absent or unreadable).
pub fn key_usage_critical(cert_der: &[u8]) -> Option<bool> {
    extensions(cert_der)?.into_iter().find(|e| e.oid == OID_KEY_USAGE).map(|e| e.critical)
}

/// The parts of a DER certificate, as raw bytes.
pub struct CertParts<'a> {
    /// The whole `tbsCertificate` TLV (what the issuer signed).
    pub tbs: &'a [u8],
    /// The TLVs inside `tbsCertificate`, in order (version, serialNumber, signature, issuer,
    /// validity, subject, subjectPublicKeyInfo, then the optional tagged fields).
    pub tbs_fields: Vec<&'a [u8]>,
    /// The outer `signatureAlgorithm` TLV.
    pub signature_algorithm: &'a [u8],
    /// The `signatureValue` BIT STRING's bits (the unused-bits octet must be 0 and is left out).
    pub signature: &'a [u8],
}

/// Splits a DER certificate into [`CertParts`]; `None` when it is not `SEQUENCE { SEQUENCE,
/// SEQUENCE, BIT STRING }` exactly covering the input.
pub fn cert_parts(der: &[u8]) -> Option<CertParts<'_>> {
    let cert = item(der, 0)?;
    if cert.tag != 0x30 || cert.end != der.len() {
        return None;
    }
    let top = children(der, cert)?;
    let [tbs, alg, sig] = top[..] else { return None };
    if tbs.tag != 0x30 || alg.tag != 0x30 || sig.tag != 0x03 || der.get(sig.start) != Some(&0) {
        return None;
    }
    let raw = |t: Tlv| &der[t.at..t.end];
    let tbs_fields = children(der, tbs)?.into_iter().map(raw).collect();
    Some(CertParts {
        tbs: raw(tbs),
        tbs_fields,
        signature_algorithm: raw(alg),
        signature: &der[sig.start + 1..sig.end],
    })
}

/// Each extension of a DER certificate as (OID content bytes, the whole `Extension` TLV).
pub fn extension_tlvs(cert_der: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    for ext in extension_list(cert_der)? {
        let oid = *children(cert_der, ext)?.first()?;
        if oid.tag != 0x06 {
            return None;
        }
        out.push((&cert_der[oid.start..oid.end], &cert_der[ext.at..ext.end]));
    }
    Some(out)
}

/// A P-256 point, uncompressed (`04 ‖ X ‖ Y`).
pub const P256_POINT_LEN: usize = 65;

/// A P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, namedCurve prime256v1) up to its 65-octet
/// uncompressed point.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point of a P-256 certificate's key, `None` for any other key or encoding.
pub fn p256_point(cert_der: &[u8]) -> Option<&[u8]> {
    let spki = *cert_parts(cert_der)?.tbs_fields.get(6)?;
    let point = spki.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == P256_POINT_LEN && point[0] == 0x04).then_some(point)
}

/// Appends one DER TLV with a definite, minimal length.
pub fn put(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// DER of a certificate time (RFC 5280 §4.1.2.5): UTCTime `YYMMDDHHMMSSZ` for 1950–2049,
/// GeneralizedTime `YYYYMMDDHHMMSSZ` otherwise.
pub fn put_time(out: &mut Vec<u8>, t: chrono::DateTime<chrono::Utc>) {
    use chrono::Datelike;
    if (1950..2050).contains(&t.year()) {
        put(out, 0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes());
    } else {
        put(out, 0x18, t.format("%Y%m%d%H%M%SZ").to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_minimal_and_read_back() {
        for n in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0x12_3456] {
            let content = vec![0x5a; n];
            let mut out = Vec::new();
            put(&mut out, 0x04, &content);
            let hdr = match n {
                0..=0x7f => 2,
                0x80..=0xff => 3,
                0x100..=0xffff => 4,
                _ => 5,
            };
            assert_eq!(out.len(), hdr + n, "length {n}");
            let t = item(&out, 0).unwrap();
            assert_eq!((t.tag, t.start, t.end), (0x04, hdr, hdr + n));
            assert_eq!(t.at, 0);
        }
    }

    #[test]
    fn times_switch_to_generalized_in_2050() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let mut out = Vec::new();
        put_time(&mut out, at("2049-12-31T23:59:59Z"));
        assert_eq!(out, b"\x17\x0d491231235959Z");
        out.clear();
        put_time(&mut out, at("2050-01-01T00:00:00Z"));
        assert_eq!(out, b"\x18\x0f20500101000000Z");
    }
}
