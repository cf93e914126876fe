//! What exactly is signed: the RFC 8785 (JCS) canonical form of a Bundle under the FHIR R6
//! canonicalizations, plus strict JSON parsing (duplicate keys, unsafe integers).
//!
//! Everything stays a `serde_json::Value`; numbers are never rewritten before JCS serializes
//! them the ECMAScript way (`1.50` → `1.5`, `37.0` → `37`).

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

use super::SignError;

/// `http://hl7.org/fhir/canonicalization/json`
pub const CANON_JSON: &str = "http://hl7.org/fhir/canonicalization/json";
/// `http://hl7.org/fhir/canonicalization/json#document` — the service's canonicalization.
pub const CANON_DOCUMENT: &str = "http://hl7.org/fhir/canonicalization/json#document";
/// `http://hl7.org/fhir/canonicalization/json#data`
pub const CANON_DATA: &str = "http://hl7.org/fhir/canonicalization/json#data";
/// `http://hl7.org/fhir/canonicalization/json#static`
pub const CANON_STATIC: &str = "http://hl7.org/fhir/canonicalization/json#static";

/// Largest integer that every JSON/JCS implementation represents exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// A supported FHIR JSON canonicalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Canonicalization {
    /// `…/json`: the Bundle as is (minus signing Provenances and root `signature`).
    Json,
    /// `…/json#document`: also without the root `id` and root `meta`.
    Document,
    /// `…/json#data`: every Narrative element removed.
    Data,
    /// `…/json#static`: every Narrative and every `Resource.meta` removed.
    Static,
}

impl Canonicalization {
    /// The canonicalization URI.
    pub fn uri(self) -> &'static str {
        match self {
            Canonicalization::Json => CANON_JSON,
            Canonicalization::Document => CANON_DOCUMENT,
            Canonicalization::Data => CANON_DATA,
            Canonicalization::Static => CANON_STATIC,
        }
    }

    /// Parses one of the four supported URIs.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            CANON_JSON => Some(Canonicalization::Json),
            CANON_DOCUMENT => Some(Canonicalization::Document),
            CANON_DATA => Some(Canonicalization::Data),
            CANON_STATIC => Some(Canonicalization::Static),
            _ => None,
        }
    }
}

/// RFC 8785 serialization of any JSON value. Refuses integers beyond ±(2^53 − 1): JCS
/// implementations disagree on them (ECMAScript rounds them), so they have no portable form.
pub fn jcs(value: &Value) -> Result<Vec<u8>, SignError> {
    let mut w = Jcs::with_capacity(4096);
    match w.value(value) {
        Ok(()) => Ok(w.out),
        Err(Unsafe) => Err(unsafe_integer(find_unsafe_integer(value, "$").unwrap_or_else(|| "$".into()))),
    }
}

fn unsafe_integer(path: String) -> SignError {
    SignError::Document(format!(
        "{path} holds an integer beyond ±(2^53−1); it has no portable RFC 8785 form (use a string for integer64)"
    ))
}

/// An integer beyond ±(2^53 − 1) was met; the caller finds its path (rare, so only then).
struct Unsafe;

/// The RFC 8785 writer: one output buffer, each object's members sorted by their UTF-16 code
/// units (§3.2.3), strings escaped as §3.2.2.2 says, numbers in the ECMAScript form (§3.2.2.3).
///
/// It replaced `serde_json_canonicalizer`, which buffers every object level and sorts keys
/// converted to UTF-16 in a `BTreeMap` (issue 7: ~6× slower on the 165 kB Form 003 Bundle); the
/// two are cross-checked on random values and on documents in `tests/sign_jcs.rs`.
struct Jcs<'a> {
    out: Vec<u8>,
    /// member lists for sorting, reused from object to object (one per nesting level in use)
    pool: Vec<Vec<(&'a str, &'a Value)>>,
}

impl<'a> Jcs<'a> {
    fn with_capacity(n: usize) -> Self {
        Jcs { out: Vec::with_capacity(n), pool: Vec::new() }
    }

    fn value(&mut self, v: &'a Value) -> Result<(), Unsafe> {
        match v {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(true) => self.out.extend_from_slice(b"true"),
            Value::Bool(false) => self.out.extend_from_slice(b"false"),
            Value::Number(n) => write_number(&mut self.out, n)?,
            Value::String(s) => write_string(&mut self.out, s),
            Value::Array(items) => self.array(items.iter())?,
            Value::Object(map) => self.object(map.iter().map(|(k, v)| (k.as_str(), v)))?,
        }
        Ok(())
    }

    fn array(&mut self, items: impl Iterator<Item = &'a Value>) -> Result<(), Unsafe> {
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.value(item)?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// Members in RFC 8785 order.
    fn object(&mut self, members: impl Iterator<Item = (&'a str, &'a Value)>) -> Result<(), Unsafe> {
        self.object_with(members, None)
    }

    /// [`Jcs::object`]; with `entries`, the member `entry` is written as that list instead of its
    /// value (the signing-Provenance-free view of [`DocumentView`]).
    fn object_with(
        &mut self,
        members: impl Iterator<Item = (&'a str, &'a Value)>,
        entries: Option<&[&'a Value]>,
    ) -> Result<(), Unsafe> {
        let mut sorted = self.pool.pop().unwrap_or_default();
        sorted.extend(members);
        sorted.sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
        self.out.push(b'{');
        let mut result = Ok(());
        for (i, &(k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(&mut self.out, k);
            self.out.push(b':');
            result = match (k, entries) {
                ("entry", Some(entries)) => self.array(entries.iter().copied()),
                _ => self.value(v),
            };
            if result.is_err() {
                break;
            }
        }
        self.out.push(b'}');
        sorted.clear();
        self.pool.push(sorted);
        result
    }
}

/// Orders two strings by their UTF-16 code units (RFC 8785 §3.2.3). UTF-8 byte order is code
/// point order, which differs from UTF-16 order only between a supplementary character (lead
/// byte F0–F4) and one of U+E000–U+FFFF (lead byte EE/EF): bytes decide unless the first
/// difference involves such a lead byte.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xee && y[i] < 0xee => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// `serde_json::to_string` of a `Value`, octet for octet (members in their order, the same
/// escapes, numbers by serde_json itself), with this module's string scan: serializing the
/// composed Form 003 Bundle for the store was ~12% of composing it in the service (issue 7).
/// Cross-checked against serde_json on random values and on composed documents (`tests/sign_jcs.rs`).
pub fn to_json_string(v: &Value) -> String {
    // a Bundle: room for a Form 003 document at once (growing by doubling copied ~0.3 MB)
    let bundle = v.get("resourceType").and_then(Value::as_str) == Some("Bundle");
    let mut out = Vec::with_capacity(if bundle { 256 * 1024 } else { 16 * 1024 });
    write_json(&mut out, v);
    // every byte written is ASCII punctuation, an escape, or a whole `str`
    String::from_utf8(out).expect("JSON text of a Value is UTF-8")
}

/// Append the JSON text of `v` as [`to_json_string`] writes it.
pub fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            } else {
                // floats: exactly serde_json's own form
                let _ = serde_json::to_writer(&mut *out, n);
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(a) => write_array(out, a, write_json),
        Value::Object(m) => write_object(out, m.iter().map(|(k, x)| (k.as_str(), x)), write_json),
    }
}

/// `[…]`: each item written by `item` (shared with the composer's node tree).
pub fn write_array<'a, T: 'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = &'a T>,
    item: impl Fn(&mut Vec<u8>, &T),
) {
    out.push(b'[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

/// `{…}` with the members in the given order: each value written by `value`.
pub fn write_object<'a, T: 'a>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (&'a str, &'a T)>,
    value: impl Fn(&mut Vec<u8>, &T),
) {
    out.push(b'{');
    for (i, (k, x)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, k);
        out.push(b':');
        value(out, x);
    }
    out.push(b'}');
}

/// §3.2.2.2: `"` and `\` escaped, U+0008/9/A/C/D as `\b \t \n \f \r`, other controls as
/// lower-case `\u00hh`, everything else (including U+007F and U+2028) as its UTF-8 bytes.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_escape(bytes, start);
        out.extend_from_slice(&bytes[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]),
        }
    }
    out.push(b'"');
}

/// Index of the first byte at or after `i` that JSON must escape (below 0x20, `"` or `\\`; bytes
/// of multi-byte UTF-8 sequences are all ≥ 0x80 and never qualify), or `bytes.len()`.
#[inline]
fn next_escape(bytes: &[u8], mut i: usize) -> usize {
    // Sixteen bytes at a time (issue 7: the narratives are long strings; the scan was ~9% of
    // verifying the Form 003 Bundle at eight bytes at a time).
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
        // the unaligned load reads bytes[i..i + 16], inside the slice by the loop condition.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctl = _mm_set1_epi8(0x1f);
            while i + 16 <= bytes.len() {
                let x = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
                // x ≤ 0x1f (unsigned) ⇔ max(x, 0x1f) == 0x1f
                let hit = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl),
                );
                let mask = _mm_movemask_epi8(hit) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while i + 8 <= bytes.len() && !needs_escape(u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"))) {
        i += 8;
    }
    while i < bytes.len() && bytes[i] >= 0x20 && bytes[i] != b'"' && bytes[i] != b'\\' {
        i += 1;
    }
    i
}

/// Whether any of the eight bytes is below 0x20, `"` or `\\` (may say yes for a byte ≥ 0x80
/// next to one that qualifies; the byte loop then decides).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * n as u64) & !x & HIGH;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    (below(w, 0x20) | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))) != 0
}

/// §3.2.2.3: the ECMAScript `Number.prototype.toString` form. Integers within ±(2^53 − 1) are
/// exact doubles whose ECMAScript form is their decimal digits; others are refused.
fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), Unsafe> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(Unsafe);
        }
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(Unsafe);
        }
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        // serde_json holds no NaN or infinity; `-0` comes out as `0`, as in ECMAScript
        let f = n.as_f64().unwrap_or(0.0);
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    }
    Ok(())
}

/// The payload the service signs: JCS of the Bundle under `…/json#document` (root `id`, root
/// `meta`, root `signature` and every signing-Provenance entry removed).
pub fn canonical_payload(bundle: &Value) -> Result<Vec<u8>, SignError> {
    payload_for(bundle, Canonicalization::Document)
}

/// The payload of `bundle` under the given canonicalization (R6 "Signing Bundles" rule 4).
pub fn payload_for(bundle: &Value, canon: Canonicalization) -> Result<Vec<u8>, SignError> {
    let obj = bundle
        .as_object()
        .filter(|o| o.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .ok_or_else(|| SignError::Document("not a FHIR Bundle (resourceType must be Bundle)".into()))?;
    let bundle_id = obj.get("id").and_then(Value::as_str);
    match canon {
        // `…/json` and `#document` leave the resources as they are: serialize a borrowed view of the
        // Bundle instead of a deep copy (the copy was ~15% of the canonicalization time, issue 7).
        Canonicalization::Json | Canonicalization::Document => {
            let view = DocumentView {
                obj,
                skip: if canon == Canonicalization::Document { &["signature", "id", "meta"] } else { &["signature"] },
                entries: match obj.get("entry") {
                    Some(Value::Array(entries)) => {
                        Some(entries.iter().filter(|e| !is_signing_provenance(e.get("resource"), bundle_id)).collect())
                    }
                    _ => None,
                },
            };
            let mut w = Jcs::with_capacity(256 * 1024);
            match view.write(&mut w) {
                Ok(()) => Ok(w.out),
                Err(Unsafe) => Err(view.unsafe_integer_error()),
            }
        }
        Canonicalization::Data | Canonicalization::Static => {
            let mut b = obj.clone();
            b.remove("signature");
            if let Some(Value::Array(entries)) = b.get_mut("entry") {
                entries.retain(|e| !is_signing_provenance(e.get("resource"), bundle_id));
                if entries.is_empty() {
                    b.remove("entry");
                }
            }
            let mut v = Value::Object(b);
            remove_narrative(&mut v, canon == Canonicalization::Static);
            jcs(&v)
        }
    }
}

/// The Bundle as `…/json` / `#document` sign it, borrowed: the members but `skip`, and `entry`
/// without the signing Provenances (left out altogether when none remains).
struct DocumentView<'a> {
    obj: &'a Map<String, Value>,
    skip: &'static [&'static str],
    /// the kept entries when `entry` is an array
    entries: Option<Vec<&'a Value>>,
}

impl DocumentView<'_> {
    fn members(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.obj.iter().filter(|(k, _)| !self.skip.contains(&k.as_str()))
    }

    fn write<'s>(&'s self, w: &mut Jcs<'s>) -> Result<(), Unsafe> {
        let empty = self.entries.as_ref().is_some_and(Vec::is_empty);
        let members = self.members().filter(|(k, _)| !(empty && k.as_str() == "entry")).map(|(k, v)| (k.as_str(), v));
        w.object_with(members, self.entries.as_deref())
    }

    /// [`jcs`]'s refusal of integers beyond ±(2^53 − 1), with the same paths.
    fn unsafe_integer_error(&self) -> SignError {
        for (k, v) in self.members() {
            let found = match (k.as_str(), &self.entries) {
                ("entry", Some(entries)) => {
                    entries.iter().enumerate().find_map(|(i, e)| find_unsafe_integer(e, &format!("$.entry[{i}]")))
                }
                _ => find_unsafe_integer(v, &format!("$.{k}")),
            };
            if let Some(p) = found {
                return unsafe_integer(p);
            }
        }
        unsafe_integer("$".into())
    }
}

/// `#data` / `#static`: recursively drop `Resource.text` (not of Bundle, Binary, Parameters, which
/// have none), every `section[].text`, and for `#static` every `Resource.meta`.
fn remove_narrative(node: &mut Value, also_meta: bool) {
    match node {
        Value::Array(items) => items.iter_mut().for_each(|n| remove_narrative(n, also_meta)),
        Value::Object(map) => {
            if let Some(rt) = map.get("resourceType").and_then(Value::as_str) {
                if !matches!(rt, "Bundle" | "Binary" | "Parameters") {
                    map.remove("text");
                }
                if also_meta {
                    map.remove("meta");
                }
            }
            if let Some(Value::Array(sections)) = map.get_mut("section") {
                for s in sections.iter_mut() {
                    if let Value::Object(s) = s {
                        s.remove("text");
                    }
                }
            }
            for (_, v) in map.iter_mut() {
                remove_narrative(v, also_meta);
            }
        }
        _ => {}
    }
}

/// Whether a `Provenance.target` element points at the Bundle itself (`#/` or `Bundle/<id>`).
pub fn is_self_target(target: &Value, bundle_id: Option<&str>) -> bool {
    match target.get("reference").and_then(Value::as_str) {
        Some("#/") => true,
        Some(r) => bundle_id.is_some_and(|id| r.strip_prefix("Bundle/") == Some(id)),
        None => false,
    }
}

/// Whether an entry resource is a signing Provenance (its `target` includes the Bundle itself).
pub fn is_signing_provenance(resource: Option<&Value>, bundle_id: Option<&str>) -> bool {
    let Some(res) = resource.and_then(Value::as_object) else {
        return false;
    };
    res.get("resourceType").and_then(Value::as_str) == Some("Provenance")
        && res.get("target").and_then(Value::as_array).is_some_and(|ts| ts.iter().any(|t| is_self_target(t, bundle_id)))
}

/// Path of the first integer beyond ±(2^53 − 1) in `v`, if any.
pub fn find_unsafe_integer(v: &Value, path: &str) -> Option<String> {
    // the paths are only built on the way to an offending integer (issue 7: building one string
    // per node was ~11% of the canonicalization time)
    if !has_unsafe_integer(v) {
        return None;
    }
    match v {
        Value::Number(n) => {
            let bad = if let Some(u) = n.as_u64() {
                u > MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() > MAX_SAFE_INTEGER
            } else {
                false
            };
            bad.then(|| path.to_string())
        }
        Value::Array(a) => a.iter().enumerate().find_map(|(k, x)| find_unsafe_integer(x, &format!("{path}[{k}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| find_unsafe_integer(x, &format!("{path}.{k}"))),
        _ => None,
    }
}

fn has_unsafe_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u > MAX_SAFE_INTEGER,
            (None, Some(i)) => i.unsigned_abs() > MAX_SAFE_INTEGER,
            _ => false,
        },
        Value::Array(a) => a.iter().any(has_unsafe_integer),
        Value::Object(m) => m.values().any(has_unsafe_integer),
        _ => false,
    }
}

/// Strict JSON parsing for signed documents and JWS headers (signatures.md §6 step 1).
///
/// Returns the value and a list of problems that make the canonical form parser-dependent:
/// duplicate object keys (serde_json would silently keep the last one), integers beyond
/// ±(2^53 − 1), a byte-order mark. Syntax errors (including lone surrogates, NaN, Infinity,
/// which serde_json refuses) are an `Err`.
pub fn parse_strict(bytes: &[u8]) -> Result<(Value, Vec<String>), String> {
    let mut problems = Vec::new();
    let mut text = bytes;
    if text.starts_with(&[0xef, 0xbb, 0xbf]) {
        problems.push("the document starts with a UTF-8 byte-order mark".to_string());
        text = &text[3..];
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let mut state = StrictState { path: Vec::new(), problems };
    let value = Strict { st: &mut state }.deserialize(&mut de).map_err(|e| format!("invalid JSON: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    Ok((value, state.problems))
}

/// Where the strict parser is (`$`, `.key`, `[k]`), kept as segments: the text is only built for
/// a problem (building it for every node was most of the parsing time, issue 7).
struct StrictState {
    path: Vec<Seg>,
    problems: Vec<String>,
}

enum Seg {
    Key(String),
    Index(usize),
}

impl StrictState {
    fn path_text(&self) -> String {
        let mut s = String::from("$");
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    fn integer_problem(&mut self, v: impl fmt::Display) {
        let p = format!("integer {v} at {} exceeds ±(2^53−1): JCS implementations disagree on it", self.path_text());
        self.problems.push(p);
    }
}

struct Strict<'p> {
    st: &'p mut StrictState,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            self.st.integer_problem(v);
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        if v > MAX_SAFE_INTEGER {
            self.st.integer_problem(v);
        }
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("NaN or Infinity is not JSON"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let st = self.st;
        let mut out = Vec::new();
        loop {
            st.path.push(Seg::Index(out.len()));
            let next = seq.next_element_seed(Strict { st: &mut *st });
            st.path.pop();
            match next? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let st = self.st;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let p = format!("duplicate key {key:?} in {}", st.path_text());
                st.problems.push(p);
            }
            st.path.push(Seg::Key(key));
            let v = map.next_value_seed(Strict { st: &mut *st });
            let Some(Seg::Key(key)) = st.path.pop() else { unreachable!("the key pushed above") };
            out.insert(key, v?);
        }
        Ok(Value::Object(out))
    }
}

/// Resolves a reference inside a Bundle: an exact `fullUrl` match, else `Type/id` against the
/// entries' resource type and id. Returns the entry's resource.
pub fn resolve_in_bundle<'a>(bundle: &'a Value, reference: &str) -> Option<&'a Value> {
    let entries = bundle.get("entry")?.as_array()?;
    if let Some(e) = entries.iter().find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference)) {
        return e.get("resource");
    }
    let (rt, id) = reference.rsplit_once('/')?;
    let rt = rt.rsplit('/').next()?;
    entries.iter().filter_map(|e| e.get("resource")).find(|r| {
        r.get("resourceType").and_then(Value::as_str) == Some(rt) && r.get("id").and_then(Value::as_str) == Some(id)
    })
}
