//! `hujjat verify FILE [--trust CA.pem ...] [--at now|sigT|ISO-TIME]`

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use openssl::x509::X509;

use super::verify::{verify_bundle_json, VerifyAt};

/// Parses `--at`: `None`/`now` → now, `sigT` → each signature's claimed time, else an RFC 3339
/// date-time with a zone.
pub fn parse_at(at: Option<&str>) -> Result<VerifyAt, String> {
    match at {
        None | Some("now") => Ok(VerifyAt::Now),
        Some("sigT") | Some("sigt") => Ok(VerifyAt::SigT),
        Some(s) => DateTime::parse_from_rfc3339(s).map(|d| VerifyAt::At(d.with_timezone(&Utc))).map_err(|_| {
            format!(
                "--at needs an ISO date-time with a zone (e.g. 2025-07-01T08:48:05Z), \"sigT\" or \"now\" (got {s:?})"
            )
        }),
    }
}

/// Verifies `file` and prints the report as pretty JSON on stdout.
///
/// Exit code: 0 when the document has at least one signature and every signature verifies
/// (without `--trust` the chain is not anchored and the report says `indeterminate`), 1 otherwise,
/// 2 on a usage or I/O error (bad `--at`, unreadable file or trust file, no certificate in it).
pub fn cli_verify(file: &Path, trust: &[PathBuf], at: Option<String>) -> i32 {
    let at = match parse_at(at.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hujjat verify: {e}");
            return 2;
        }
    };
    let mut anchors: Vec<X509> = Vec::new();
    for t in trust {
        let pem = match std::fs::read(t) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("hujjat verify: cannot read {}: {e}", t.display());
                return 2;
            }
        };
        match X509::stack_from_pem(&pem) {
            Ok(c) if !c.is_empty() => anchors.extend(c),
            _ => {
                eprintln!("hujjat verify: {}: no PEM certificate found", t.display());
                return 2;
            }
        }
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hujjat verify: cannot read {}: {e}", file.display());
            return 2;
        }
    };
    let report = verify_bundle_json(&bytes, &anchors, at);
    match serde_json::to_string_pretty(&report) {
        Ok(s) => println!("{s}"),
        Err(e) => {
            eprintln!("hujjat verify: cannot print the report: {e}");
            return 2;
        }
    }
    if report.ok {
        0
    } else {
        1
    }
}
