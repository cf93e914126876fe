//! A minimal DER reader for the X.509 extension fields that the `openssl` crate does not expose
//! (basicConstraints `cA`, the `critical` flag of any extension). Bounds-checked; returns `None`
//! on anything malformed.

/// One DER TLV: tag byte, content range.
#[derive(Clone, Copy, Debug)]
struct Tlv {
    tag: u8,
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
    Some(Tlv { tag, start, end })
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

/// All extensions of a DER certificate, or `None` when the structure cannot be read.
pub fn extensions(cert_der: &[u8]) -> Option<Vec<RawExtension>> {
    let cert = item(cert_der, 0)?;
    let tbs = *children(cert_der, cert)?.first()?;
    let wrap = match children(cert_der, tbs)?.into_iter().find(|c| c.tag == 0xa3) {
        Some(w) => w,
        None => return Some(Vec::new()),
    };
    let seq = *children(cert_der, wrap)?.first()?;
    let mut out = Vec::new();
    for ext in children(cert_der, seq)? {
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
