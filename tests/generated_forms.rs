//! Property-based composition tests: valid form instances generated from the JSON Schemas
//! (tests/common/gen.rs), plus the shared example and minimal instances, composed by the library
//! and checked by the independent oracles (one call per oracle), for determinism, and for the
//! reference structure of the Bundle (no dangling reference, every entry reachable from the
//! Composition).
//!
//! Reproduce a failure: the seed is printed (file names carry it too); `HUJJAT_GEN_SEED=<base>`
//! changes the base seed of a run, `HUJJAT_GEN_COUNT=<n>` the number of instances per form.

mod common;

use chrono::DateTime;
use common::gen::{base_seed, valid_instance, FormGen};
use hujjat::compose::{ComposeContext, Composer, FormDef};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use uuid::Uuid;

const FORMS: [&str; 2] = ["003", "096"];

fn count() -> u64 {
    std::env::var("HUJJAT_GEN_COUNT").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}

fn composer() -> Composer {
    Composer::builtin().expect("built-in forms load")
}

/// A fixed, seed-derived context: the same seed composes the same bytes.
fn ctx_for(label: &str) -> ComposeContext {
    ComposeContext {
        document_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("document/{label}").as_bytes()),
        bundle_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bundle/{label}").as_bytes()),
        timestamp: DateTime::parse_from_rfc3339("2026-06-01T12:00:00+05:00").unwrap(),
    }
}

/// (label, input): the shared example and minimal instances, then `n` generated ones.
fn inputs(form: &str, def: &FormDef, n: u64) -> Vec<(String, Value)> {
    let g = FormGen::for_form(form);
    let base = base_seed();
    eprintln!("form {form}: {n} generated instances from base seed {base} (HUJJAT_GEN_SEED={base})");
    let mut out = vec![
        (format!("form-{form}-example"), common::example(form, "example")),
        (format!("form-{form}-minimal"), common::example(form, "minimal")),
    ];
    for i in 0..n {
        let seed = base.wrapping_add(i);
        out.push((format!("form-{form}-seed-{seed}"), valid_instance(&g, def, seed)));
    }
    out
}

fn compose(def: &FormDef, label: &str, input: &Value) -> Result<Value, String> {
    def.compose(input, &ctx_for(label)).map_err(|e| match e {
        hujjat::error::AppError::Invalid(issues) => format!(
            "rejected as invalid:\n{}",
            issues.iter().map(|i| format!("    {:?}: {}", i.expression, i.diagnostics)).collect::<Vec<_>>().join("\n")
        ),
        other => format!("{other:?}"),
    })
}

/// Compose every input and write the Bundles to `dir`; panics listing every input that failed.
fn compose_all(form: &str, def: &FormDef, dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for (label, input) in inputs(form, def, count()) {
        match compose(def, &label, &input) {
            Ok(bundle) => {
                let p = dir.join(format!("{label}.json"));
                std::fs::write(&p, serde_json::to_string(&bundle).unwrap()).unwrap();
                files.push(p);
            }
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    assert!(failures.is_empty(), "valid form {form} inputs the composer did not compose:\n{}", failures.join("\n"));
    files
}

fn oracles_pass(form: &str) {
    let c = composer();
    let def = c.get(form).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = compose_all(form, def, dir.path());
    let t = std::time::Instant::now();
    let out = common::oracle("fhir-validate", &[], &files);
    eprintln!("{}", common::tail(&out, 1));
    let out = common::oracle("dhp-profile-check", &[], &files);
    eprintln!("{} ({} files, oracles {:?})", common::tail(&out, 1), files.len(), t.elapsed());
}

#[test]
fn generated_form_003_documents_pass_the_oracles() {
    oracles_pass("003");
}

#[test]
fn generated_form_096_documents_pass_the_oracles() {
    oracles_pass("096");
}

#[test]
fn every_generated_instance_is_valid_for_the_library() {
    // valid_instance asserts FormDef::validate == [] (schema + checks) and prints the seed if not
    let c = composer();
    for form in FORMS {
        let def = c.get(form).unwrap();
        let g = FormGen::for_form(form);
        let base = base_seed();
        for i in 0..count() {
            valid_instance(&g, def, base.wrapping_add(i));
        }
        // the generator is itself deterministic
        assert_eq!(g.instance(base), g.instance(base), "FormGen::instance must be a function of the seed");
    }
}

// ------------------------------------------------------------------------------------------------
// Determinism

#[test]
fn composition_is_deterministic_and_ids_follow_the_bundle_id() {
    let c = composer();
    for form in FORMS {
        let def = c.get(form).unwrap();
        for (label, input) in inputs(form, def, 25) {
            let ctx = ctx_for(&label);
            let a =
                serde_json::to_string(&def.compose(&input, &ctx).unwrap_or_else(|e| panic!("{label}: {e:?}"))).unwrap();
            let b = serde_json::to_string(&def.compose(&input, &ctx).unwrap()).unwrap();
            assert!(a == b, "{label}: composing twice with the same context gave different bytes");

            let mut other = ctx.clone();
            other.bundle_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("other/{label}").as_bytes());
            let x: Value = serde_json::from_str(&a).unwrap();
            let y = def.compose(&input, &other).unwrap();
            assert_ne!(x["id"], y["id"], "{label}: Bundle.id must follow bundle_id");
            assert_ne!(x["identifier"], y["identifier"], "{label}: Bundle.identifier must follow bundle_id");
            let urls = |b: &Value| -> HashSet<String> {
                b["entry"].as_array().unwrap().iter().map(|e| e["fullUrl"].as_str().unwrap().to_string()).collect()
            };
            let shared: Vec<_> = urls(&x).intersection(&urls(&y)).cloned().collect();
            assert!(
                shared.is_empty(),
                "{label}: a different bundle_id must give different entry ids; shared: {shared:?}"
            );
            // the document identity stays
            let comp_ident = |b: &Value| b["entry"][0]["resource"]["identifier"][0].clone();
            assert_eq!(
                comp_ident(&x),
                comp_ident(&y),
                "{label}: Composition.identifier[0] is the document id, not the version"
            );
            // and apart from ids the two versions say the same
            let kinds = |b: &Value| -> Vec<String> {
                b["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(kinds(&x), kinds(&y), "{label}: the entries must not depend on bundle_id");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Reference structure, independent of the oracles

/// Every `reference` string inside `v`.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                }
                references(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Problems with the Bundle's reference graph: dangling references, duplicate or malformed
/// fullUrls, entries the Composition does not reach.
fn reference_problems(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let mut by_url: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let url = e["fullUrl"].as_str().unwrap_or("").to_string();
        let id = e["resource"]["id"].as_str().unwrap_or("");
        if url != format!("urn:uuid:{id}") {
            problems.push(format!("entry[{i}]: fullUrl {url:?} is not urn:uuid:<resource.id> ({id})"));
        }
        if Uuid::parse_str(id).is_err() {
            problems.push(format!("entry[{i}]: resource.id {id:?} is not a uuid"));
        }
        if by_url.insert(url.clone(), i).is_some() {
            problems.push(format!("entry[{i}]: duplicate fullUrl {url}"));
        }
    }
    if entries.first().map(|e| e["resource"]["resourceType"] != "Composition").unwrap_or(true) {
        problems.push("entry[0] is not the Composition".into());
        return problems;
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let mut refs = Vec::new();
        references(&e["resource"], &mut refs);
        let contained: HashSet<String> = e["resource"]["contained"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(|id| format!("#{id}")))
            .collect();
        for r in refs {
            if r.starts_with('#') {
                if !contained.contains(&r) {
                    problems.push(format!("entry[{i}]: local reference {r:?} names no contained resource"));
                }
                continue;
            }
            match by_url.get(&r) {
                Some(j) => edges[i].push(*j),
                None => problems.push(format!(
                    "entry[{i}] ({}): reference {r:?} does not resolve to an entry",
                    e["resource"]["resourceType"].as_str().unwrap_or("?")
                )),
            }
        }
    }
    let mut seen = vec![false; entries.len()];
    let mut queue = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(i) = queue.pop_front() {
        for &j in &edges[i] {
            if !seen[j] {
                seen[j] = true;
                queue.push_back(j);
            }
        }
    }
    for (i, s) in seen.iter().enumerate() {
        if !s {
            problems.push(format!(
                "entry[{i}] ({} {}) is not reachable from the Composition",
                entries[i]["resource"]["resourceType"].as_str().unwrap_or("?"),
                entries[i]["fullUrl"].as_str().unwrap_or("?")
            ));
        }
    }
    problems
}

#[test]
fn references_resolve_and_every_entry_is_reachable_from_the_composition() {
    let c = composer();
    let mut failures = Vec::new();
    for form in FORMS {
        let def = c.get(form).unwrap();
        for (label, input) in inputs(form, def, count()) {
            match compose(def, &label, &input) {
                Ok(bundle) => {
                    let p = reference_problems(&bundle);
                    if !p.is_empty() {
                        failures.push(format!("{label}:\n    {}", p.join("\n    ")));
                    }
                }
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "reference structure problems:\n{}", failures.join("\n"));
}

#[test]
fn the_reference_checker_catches_dangling_and_orphan_entries() {
    // the checker itself: a dangling reference and an orphan entry are both reported
    let c = composer();
    let def = c.get("003").unwrap();
    let mut b = def.compose(&common::example("003", "minimal"), &ctx_for("self-test")).unwrap();
    assert!(reference_problems(&b).is_empty(), "{:?}", reference_problems(&b));
    b["entry"].as_array_mut().unwrap().push(serde_json::json!({
        "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
        "resource": {"resourceType": "Basic", "id": "00000000-0000-4000-8000-000000000001",
                     "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}}
    }));
    let p = reference_problems(&b);
    assert!(p.iter().any(|x| x.contains("does not resolve")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("not reachable")), "{p:?}");
}

/// `HUJJAT_GEN_PRINT=<form>:<seed> cargo test --test generated_forms print_instance -- --nocapture`
/// prints one generated instance (and its composed Bundle) to reproduce a failure; a no-op otherwise.
#[test]
fn print_instance() {
    let Ok(spec) = std::env::var("HUJJAT_GEN_PRINT") else { return };
    let (form, seed) = spec.split_once(':').expect("HUJJAT_GEN_PRINT=<form>:<seed>");
    let seed: u64 = seed.parse().expect("seed");
    let c = composer();
    let def = c.get(form).unwrap();
    let v = FormGen::for_form(form).instance(seed);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    match compose(def, &format!("form-{form}-seed-{seed}"), &v) {
        Ok(b) if std::env::var("HUJJAT_GEN_PRINT_BUNDLE").is_ok() => {
            println!("{}", serde_json::to_string_pretty(&b).unwrap())
        }
        Ok(_) => {}
        Err(e) => println!("compose: {e}"),
    }
}

/// Regressions: inputs the schema and the definition accepted but that composed into documents the
/// oracles rejected (found by these suites; fixed in 82970be "Input hygiene"). Each file in
/// tests/data/repro listed here must either be rejected (422, any issue) or compose into a Bundle that
/// passes fhir-validate and dhp-profile-check.
/// - form-003-anaesthesia-end-before-start: Procedure.occurrencePeriod per-1 (start > end); Form 003
///   had no check that anaesthesia.end ≥ start.
/// - form-003-sick-leave-closed-before-opened: CarePlan.period per-1; Form 096 checked closedOn ≥
///   openedOn for its sick-leave certificates, Form 003 did not for temporaryDisability.sickLeaves.
/// - form-003-control-character-in-text: U+0001 / U+000B / U+FFFE in free text ended up raw in the
///   narrative XHTML, which was then not well-formed XML (they cannot be escaped in XML 1.0).
/// - form-003-whitespace-in-code: `ucumUnit` and `specialtyCode` are free strings (1..40) in the schema
///   but become FHIR `code`s (no leading/trailing/double white space): " g", "394585009 ".
/// - form-003-year-0000: `format: date` accepts year 0000, FHIR `date` does not.
#[test]
fn repro_inputs_are_rejected_or_compose_to_valid_documents() {
    const REPROS: [&str; 5] = [
        "form-003-anaesthesia-end-before-start.json",
        "form-003-sick-leave-closed-before-opened.json",
        "form-003-control-character-in-text.json",
        "form-003-whitespace-in-code.json",
        "form-003-year-0000.json",
    ];
    let c = composer();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in REPROS {
        let input = common::read_json(common::project_root().join("tests/data/repro").join(name));
        let form = input["form"].as_str().unwrap().to_string();
        match c.get(&form).unwrap().compose(&input, &ctx_for(name)) {
            Err(hujjat::error::AppError::Invalid(issues)) if !issues.is_empty() => {}
            Err(e) => panic!("{name}: neither rejected as invalid nor composed: {e:?}"),
            Ok(bundle) => {
                let p = dir.path().join(name);
                std::fs::write(&p, serde_json::to_string(&bundle).unwrap()).unwrap();
                files.push(p);
            }
        }
    }
    if !files.is_empty() {
        eprintln!(
            "these tests/data/repro inputs were accepted, so their documents must pass the oracles: {:?}",
            files.iter().map(|f| f.file_name().unwrap().to_string_lossy().to_string()).collect::<Vec<_>>()
        );
        common::oracle("fhir-validate", &[], &files);
        common::oracle("dhp-profile-check", &[], &files);
    }
}
