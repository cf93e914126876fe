//! `GET /documents/{id}/$export`: a ZIP package that someone without hujjat can verify.
//!
//! | file | content |
//! |---|---|
//! | `bundle.json` | the latest version of the document, byte-for-byte as stored and signed |
//! | `report.json` | hujjat's verification report (each signature at its signing time, against the service's trust anchors) |
//! | `chain.pem` | the CA certificates: the issuing CA first, up to the trust anchor(s), retired anchors too |
//! | `signers.pem` | each signer's own certificate (also inside each signature's `x5c`) |
//! | `document.html` | the human-readable document (its narrative), printable |
//! | `manifest.json` | what was exported, when, by whom; SHA-256 of every other file |
//! | `SHA256SUMS` | `sha256sum -c SHA256SUMS` |
//! | `README.txt` | how to verify (`jws-verify --trust chain.pem --at sigT bundle.json`, openssl) |
//!
//! The ZIP is written here (stored entries, UTF-8 names, CRC-32): a few dozen lines instead of a
//! dependency.

use super::access::Principal;
use super::audit::{self, Event};
use crate::error::AppError;
use crate::sign::{self, VerifyAt};
use crate::web::AppState;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

pub struct Package {
    pub filename: String,
    pub bytes: Vec<u8>,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Build the package of a document's latest version; audited as `export`.
pub async fn package(st: &AppState, who: &Principal, id: &str) -> Result<Package, AppError> {
    let store = &st.docs.store;
    let doc = super::visible(store, who, id, Event::Export).await?;
    let v = store
        .version(id, doc.version)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("document {id} has no version {}", doc.version)))?;
    let report = sign::verify_bundle_json(v.bundle.as_bytes(), &st.docs.ca.anchors(), VerifyAt::SigT);
    let report_json = serde_json::to_vec_pretty(&report).map_err(|e| AppError::Internal(e.into()))?;

    // the CA chain: issuing CA first, then its issuers, then every anchor not yet listed
    let mut seen = std::collections::HashSet::new();
    let mut chain = String::new();
    for c in st.docs.ca.chain().iter().chain(st.docs.ca.anchors().iter()) {
        let der = c.to_der().map_err(|e| AppError::Internal(e.into()))?;
        if seen.insert(der) {
            let pem = c.to_pem().map_err(|e| AppError::Internal(e.into()))?;
            chain.push_str(&String::from_utf8_lossy(&pem));
        }
    }
    let rows = sqlx::query(
        "SELECT signer_name, signer_pinfl, signed_at, certificate_serial, leaf_pem FROM signatures WHERE document_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(&store.pool)
    .await?;
    let mut signers = String::new();
    let mut signer_lines = Vec::new();
    for r in &rows {
        let name: String = r.try_get("signer_name")?;
        let pinfl: String = r.try_get("signer_pinfl")?;
        let at: String = r.try_get("signed_at")?;
        let serial: String = r.try_get("certificate_serial")?;
        let pem: String = r.try_get("leaf_pem")?;
        signers.push_str(&format!("# {name} (PINFL {pinfl}), signed {at}, certificate serial {serial}\n{pem}"));
        if !pem.ends_with('\n') {
            signers.push('\n');
        }
        signer_lines.push(format!("  - {name}, PINFL {pinfl}, signed at {at} (certificate serial {serial})"));
    }
    let bundle: serde_json::Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
    let html = super::ui::standalone_document(&bundle, &doc)?;
    let exported_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = match report.status {
        sign::Status::Valid => "valid",
        sign::Status::Invalid => "invalid",
        sign::Status::Indeterminate => "indeterminate",
    };
    let signed = !rows.is_empty();
    let readme = format!(
        "hujjat archive package\n\
         ======================\n\n\
         Document {id}, form {form}, version {version}, state {state}.\n\
         Exported {exported_at} by {who}.\n\n\
         bundle.json    the signed FHIR R5 document Bundle, byte-for-byte as stored (SHA-256 {bsha})\n\
         report.json    hujjat's verification report: {status}\n\
         chain.pem      the certificate chain of the signing CA (issuing CA first, trust anchor last)\n\
         signers.pem    the signers' certificates (each also travels in its signature's x5c header)\n\
         document.html  the document as people read it (its narrative); open it in a browser to print\n\
         manifest.json  what this package holds\n\
         SHA256SUMS     check the files: sha256sum -c SHA256SUMS\n\n\
         Signatures:\n{sigs}\n\n\
         How to verify without hujjat\n\
         ----------------------------\n\
         The signatures are FHIR R6 detached JWS (ES256) in the Provenance entries of bundle.json; the\n\
         signed payload is the RFC 8785 canonical JSON of the Bundle without its id, meta, signature and\n\
         signing Provenance entries (canonicalization http://hl7.org/fhir/canonicalization/json#document).\n\
         The signers' certificates live for minutes, so verify at the signing time (sigT):\n\n\
         \x20   jws-verify --trust chain.pem --at sigT bundle.json\n\n\
         Any JOSE library can do the same: take x5c[0] from the JWS header, check it chains to chain.pem\n\
         (openssl verify -partial_chain -CAfile chain.pem -attime <sigT as Unix time> leaf.pem), rebuild the\n\
         payload as above and check the ES256 signature over BASE64URL(header) \".\" BASE64URL(payload).\n\
         {unsigned}",
        form = doc.form,
        version = doc.version,
        state = doc.state,
        who = who.agent.name.clone().unwrap_or_else(|| who.agent.id.clone()),
        bsha = sha256_hex(v.bundle.as_bytes()),
        sigs = if signer_lines.is_empty() {
            "  (none: this document is not signed)".into()
        } else {
            signer_lines.join("\n")
        },
        unsigned = if signed { "" } else { "\nThis document has no signature: there is nothing to verify yet.\n" },
    );
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("bundle.json", v.bundle.clone().into_bytes()),
        ("report.json", report_json),
        ("chain.pem", chain.into_bytes()),
        ("signers.pem", signers.into_bytes()),
        ("document.html", html.into_bytes()),
    ];
    let manifest = json!({
        "document": id,
        "form": doc.form,
        "version": doc.version,
        "state": doc.state,
        "bundleIdentifier": v.bundle_identifier,
        "exportedAt": exported_at,
        "exportedBy": {"type": who.agent.kind, "id": who.agent.id, "name": who.agent.name},
        "verification": status,
        "files": files.iter().map(|(n, b)| json!({"name": n, "sha256": sha256_hex(b), "bytes": b.len()})).collect::<Vec<_>>(),
    });
    files.push(("manifest.json", serde_json::to_vec_pretty(&manifest).map_err(|e| AppError::Internal(e.into()))?));
    let sums: String = files.iter().map(|(n, b)| format!("{}  {n}\n", sha256_hex(b))).collect();
    files.push(("SHA256SUMS", sums.into_bytes()));
    files.push(("README.txt", readme.into_bytes()));
    let bytes = zip(&files);
    let e = super::entry(who, Event::Export)
        .client(&doc.client_id)
        .document(id, Some(doc.version))
        .detail(json!({"bundleSha256": sha256_hex(v.bundle.as_bytes()), "verification": status, "packageSha256": sha256_hex(&bytes)}));
    audit::record(store, e).await?;
    Ok(Package { filename: format!("hujjat-{id}-v{}.zip", doc.version), bytes })
}

// ---- a minimal ZIP writer (stored entries) ----

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC: [u32; 256] = crc_table();

pub fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in b {
        c = CRC[((c ^ x as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A ZIP archive of `files` (stored, not compressed; names UTF-8).
pub fn zip(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use chrono::{Datelike, Timelike};
    let now = chrono::Utc::now();
    let time = ((now.hour() << 11) | (now.minute() << 5) | (now.second() / 2)) as u16;
    let date = ((((now.year() - 1980).max(0) as u32) << 9) | (now.month() << 5) | now.day()) as u16;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let n = name.as_bytes();
        let header = |buf: &mut Vec<u8>, central_entry: bool| {
            buf.extend_from_slice(&(if central_entry { 0x0201_4b50u32 } else { 0x0403_4b50 }).to_le_bytes());
            if central_entry {
                buf.extend_from_slice(&(0x0314u16).to_le_bytes()); // made by: Unix, 2.0
            }
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed
            buf.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            buf.extend_from_slice(&0u16.to_le_bytes()); // stored
            buf.extend_from_slice(&time.to_le_bytes());
            buf.extend_from_slice(&date.to_le_bytes());
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(n.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central_entry {
                buf.extend_from_slice(&0u16.to_le_bytes()); // comment
                buf.extend_from_slice(&0u16.to_le_bytes()); // disk
                buf.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                buf.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // -rw-r--r--
                buf.extend_from_slice(&offset.to_le_bytes());
            }
            buf.extend_from_slice(n);
        };
        header(&mut out, false);
        out.extend_from_slice(data);
        header(&mut central, true);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
