//! RFC 8785 (JCS) vectors, the `#document` payload rules, strict parsing.

mod sign_support;

use hujjat::sign::canon::to_json_string;
use hujjat::sign::{canonical_payload, jcs, parse_strict, payload_for, Canonicalization};
use serde_json::{json, Value};
use sign_support::*;

#[test]
fn rfc8785_vectors_from_the_shared_fixture() {
    let v = load_json(&shared_fixture("jcs-vectors.json"));
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5, "the fixture lost vectors");
    for vec in vectors {
        let name = vec["name"].as_str().unwrap();
        let input: Value = serde_json::from_str(vec["input"].as_str().unwrap()).unwrap();
        let expected = vec["expected"].as_str().unwrap();
        let got = jcs(&input);
        if vec.get("rfc8785").and_then(Value::as_str) == Some("reject") {
            // Integers beyond 2^53: npm `canonicalize` rounds, Python `rfc8785` refuses. The
            // service refuses too (the payload would depend on the parser).
            assert!(got.is_err(), "{name}: must be refused, got {:?}", got.map(String::from_utf8));
        } else {
            let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(String::from_utf8(got).unwrap(), expected, "{name}");
        }
    }
}

#[test]
fn rfc8785_appendix_b_numbers() {
    // signatures.md §11.2, IEEE-754 bits -> canonical text
    let table: [(u64, &str); 24] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for (bits, want) in table {
        let v = json!([f64::from_bits(bits)]);
        assert_eq!(String::from_utf8(jcs(&v).unwrap()).unwrap(), format!("[{want}]"), "bits {bits:016x}");
    }
    // decimals as written in clinical data
    let v: Value =
        serde_json::from_str(r#"{"b":[1.50,1E30,0.30000000000000004,100,37.0,72.5,0.001],"a":"x"}"#).unwrap();
    assert_eq!(
        String::from_utf8(jcs(&v).unwrap()).unwrap(),
        r#"{"a":"x","b":[1.5,1e+30,0.30000000000000004,100,37,72.5,0.001]}"#
    );
}

#[test]
fn document_payload_drops_root_id_meta_signature_and_signing_provenances_only() {
    let mut b = form("form-003-minimal.json");
    let base = canonical_payload(&b).unwrap();
    let text = String::from_utf8(base.clone()).unwrap();
    assert!(text.starts_with(r#"{"entry":["#), "sorted members");
    let root: Value = serde_json::from_str(&text).unwrap();
    assert!(root.get("id").is_none() && root.get("meta").is_none(), "root id and meta removed");
    assert_eq!(root["identifier"], b["identifier"], "Bundle.identifier is signed");
    assert_eq!(root["timestamp"], b["timestamp"], "Bundle.timestamp is signed");
    assert!(text.contains(r#""div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">"#), "narrative is signed");
    assert!(text.contains(r#""id":"comp-003""#), "entry ids are signed");

    // root id, meta and signature do not matter
    b["id"] = json!("another-id");
    b["meta"] = json!({ "versionId": "7", "lastUpdated": "2030-01-01T00:00:00Z" });
    b["signature"] = json!({ "data": "AAAA" });
    assert_eq!(canonical_payload(&b).unwrap(), base);
    // ... but under plain json the root id is signed
    assert_ne!(
        payload_for(&b, Canonicalization::Json).unwrap(),
        payload_for(&form("form-003-minimal.json"), Canonicalization::Json).unwrap()
    );

    // signing Provenances (#/ or Bundle/<id>) are removed, other Provenances are content
    let prov = |target: &str| {
        json!({ "fullUrl": "urn:uuid:0030eeee-0000-4000-8000-000000000000",
        "resource": { "resourceType": "Provenance", "target": [{ "reference": target }], "recorded": "2026-01-01T00:00:00Z" } })
    };
    for t in ["#/", "Bundle/another-id"] {
        let mut c = b.clone();
        c["entry"].as_array_mut().unwrap().push(prov(t));
        assert_eq!(canonical_payload(&c).unwrap(), base, "target {t}");
    }
    for t in ["Bundle/form-003-minimal", "urn:uuid:00300000-0000-4000-8000-000000000000"] {
        let mut c = b.clone();
        c["entry"].as_array_mut().unwrap().push(prov(t));
        assert_ne!(canonical_payload(&c).unwrap(), base, "target {t} is not a signature of this Bundle");
    }
    // pretty-printing and member order do not matter
    let pretty = serde_json::to_string_pretty(&form("form-003-minimal.json")).unwrap();
    let reparsed: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(canonical_payload(&reparsed).unwrap(), base);
}

#[test]
fn data_and_static_drop_narrative() {
    let b = form("form-096-minimal.json");
    let data = String::from_utf8(payload_for(&b, Canonicalization::Data).unwrap()).unwrap();
    assert!(!data.contains("<div"), "#data removes every narrative");
    assert!(data.contains(r#""meta":"#));
    let stat = String::from_utf8(payload_for(&b, Canonicalization::Static).unwrap()).unwrap();
    assert!(!stat.contains("<div") && !stat.contains(r#""meta":"#));
}

#[test]
fn strict_parsing_reports_duplicates_unsafe_integers_and_bom() {
    let (_, p) = parse_strict(br#"{"a":1,"b":{"c":2,"c":3}}"#).unwrap();
    assert_eq!(p, vec![r#"duplicate key "c" in $.b"#.to_string()]);
    let (_, p) = parse_strict(br#"{"entry":[{"x":9007199254740993}]}"#).unwrap();
    assert!(p[0].contains("$.entry[0].x") && p[0].contains("2^53"), "{p:?}");
    let (_, p) = parse_strict(br#"{"a":[0,{"b":[1,-9007199254740993]}],"z":[{"k":1,"k":2}]}"#).unwrap();
    assert_eq!(
        p,
        vec![
            "integer -9007199254740993 at $.a[1].b[1] exceeds ±(2^53−1): JCS implementations disagree on it"
                .to_string(),
            r#"duplicate key "k" in $.z[0]"#.to_string()
        ]
    );
    let (_, p) = parse_strict(b"\xef\xbb\xbf{}").unwrap();
    assert!(p[0].contains("byte-order mark"));
    let (v, p) = parse_strict(br#"{"n":[1.50,-0,9007199254740991]}"#).unwrap();
    assert!(p.is_empty());
    assert_eq!(String::from_utf8(jcs(&v).unwrap()).unwrap(), r#"{"n":[1.5,0,9007199254740991]}"#);
    assert!(parse_strict(br#"{"s":"\ud800"}"#).is_err(), "lone surrogate");
    assert!(parse_strict(br#"{"a":1} x"#).is_err(), "trailing data");
}

/// The service's own RFC 8785 writer against `serde_json_canonicalizer` (the implementation it
/// replaced, issue 7) on random values: keys and strings from the awkward ranges (controls,
/// quotes, U+007F, U+2028, U+E000–U+FFFF against supplementary characters, which UTF-16 orders
/// differently from code points), random doubles by their bits, safe integers, nesting.
#[test]
fn own_writer_equals_the_reference_implementation_on_random_values() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8785);
    const CHARS: &[char] = &[
        'a',
        'b',
        'Z',
        '0',
        ' ',
        '"',
        '\\',
        '/',
        '\u{0}',
        '\u{1}',
        '\u{8}',
        '\u{9}',
        '\u{a}',
        '\u{b}',
        '\u{c}',
        '\u{d}',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        'é',
        'ў',
        'Ғ',
        '\u{2028}',
        '\u{2029}',
        '\u{d7ff}',
        '\u{e000}',
        '\u{ffff}',
        '\u{fffd}',
        '\u{10000}',
        '\u{1f600}',
        '\u{10ffff}',
    ];
    fn text(rng: &mut impl Rng) -> String {
        // short keys and strings, and long ones that the writer scans sixteen and eight bytes at a
        // time (mostly plain ASCII, so that clean runs and escapes at every offset both occur)
        let n = if rng.random_range(0..3) == 0 { rng.random_range(8..100) } else { rng.random_range(0..6) };
        (0..n)
            .map(|_| match rng.random_range(0..3) {
                0 => CHARS[rng.random_range(0..CHARS.len())],
                _ => char::from(rng.random_range(0x20u8..0x7f)),
            })
            .collect()
    }
    fn value(rng: &mut impl Rng, depth: u32) -> Value {
        match rng.random_range(0..if depth > 3 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.random()),
            2 => json!(rng.random_range(-9_007_199_254_740_991i64..=9_007_199_254_740_991)),
            3 => {
                let f = f64::from_bits(rng.random());
                if f.is_finite() {
                    json!(f)
                } else {
                    json!(rng.random::<f64>() * 1e6)
                }
            }
            4 => json!(rng.random_range(0u64..1000)),
            5 => Value::String(text(rng)),
            6 => Value::Array((0..rng.random_range(0..5)).map(|_| value(rng, depth + 1)).collect()),
            _ => Value::Object((0..rng.random_range(0..7)).map(|_| (text(rng), value(rng, depth + 1))).collect()),
        }
    }
    for i in 0..20_000 {
        let v = value(&mut rng, 0);
        let want = serde_json_canonicalizer::to_vec(&v).unwrap();
        let got = jcs(&v).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "case {i}: {v}");
        // and the plain (order-keeping) writer against serde_json's
        assert_eq!(to_json_string(&v), serde_json::to_string(&v).unwrap(), "case {i}: {v}");
    }
}

/// The same cross-check on whole composed documents, through the `#document` payload view.
#[test]
fn own_writer_equals_the_reference_implementation_on_documents() {
    let composer = hujjat::compose::Composer::builtin().unwrap();
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/forms");
    let mut docs: Vec<(String, Value)> =
        ["form-003-minimal.json", "form-096-minimal.json"].iter().map(|n| (n.to_string(), form(n))).collect();
    for f in ["003", "096"] {
        let input: Value =
            serde_json::from_str(&std::fs::read_to_string(shared.join(format!("form-{f}.example.json"))).unwrap())
                .unwrap();
        let cx = hujjat::compose::ComposeContext::new(uuid::Uuid::new_v4(), chrono::Utc::now().fixed_offset());
        docs.push((format!("form-{f}.example.json composed"), composer.compose_any(&input, &cx).unwrap()));
    }
    for (name, b) in docs {
        let mut copy = b.as_object().unwrap().clone();
        for k in ["id", "meta", "signature"] {
            copy.remove(k);
        }
        let want = serde_json_canonicalizer::to_vec(&Value::Object(copy)).unwrap();
        assert_eq!(canonical_payload(&b).unwrap(), want, "{name}");
        assert!(to_json_string(&b) == serde_json::to_string(&b).unwrap(), "{name}: the plain writer");
    }
}
