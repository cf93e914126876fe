//! `cargo bench --bench hujjat` (issue 7, BENCHMARKS.md): per-document cost of compose, RFC 8785
//! canonicalization, sign, verify and compose → sign → verify, then — in the same run — the same
//! canonicalize + sign + verify pipeline in Node.js (`jose` + `canonicalize`) and Python (`jwcrypto`
//! + `rfc8785`) on the same Bundle file, reported as ratios to hujjat.
//!
//! Criterion options pass through after `--` (`--test` runs every benchmark once, `--quick` is
//! short). Environment:
//! * `HUJJAT_SHARED` — the shared folder with `spec/forms/*.example.json` (default `../shared`);
//! * `HUJJAT_BENCH_PEER_SECS` — measuring time of each peer loop (default 6 s; 0.2 s with `--test`);
//! * `HUJJAT_BENCH_REQUIRE_PEERS=1` — fail when a peer is not installed (`benches/peers/setup`)
//!   instead of skipping it.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput};
use hujjat::compose::{ComposeContext, Composer};
use hujjat::sign::canon::to_json_string;
use hujjat::sign::{
    canonical_payload, jws, sign_document, sign_document_owned, verify_bundle, SignOptions, Signer, SigningCa, Status,
    VerifyAt,
};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use serde_json::{json, Value};

/// Everything the benchmarks share: the composer, a development CA, the example inputs, the
/// composed Form 003 Bundle (also written to a file for the peers) and its signer.
struct Fixture {
    composer: Composer,
    ca: SigningCa,
    anchors: Vec<openssl::x509::X509>,
    input_003: Value,
    input_096: Value,
    bundle_003: Value,
    bundle_096: Value,
    /// the minimal Form 003 instance (12 kB composed): what does not grow with the document
    input_003_min: Value,
    bundle_003_min: Value,
    signer_003_min: Signer,
    bundle_file: PathBuf,
    signer: Signer,
    signer_096: Signer,
    opts: SignOptions,
    _dir: tempfile::TempDir,
}

fn shared() -> PathBuf {
    std::env::var_os("HUJJAT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn example(form: &str) -> Value {
    example_file(&format!("form-{form}.example.json"))
}

fn example_file(name: &str) -> Value {
    let p = shared().join(format!("spec/forms/{name}"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e} (set HUJJAT_SHARED)", p.display()));
    serde_json::from_str(&text).expect("example is JSON")
}

fn ctx() -> ComposeContext {
    ComposeContext::new(uuid::Uuid::new_v4(), Utc::now().fixed_offset())
}

/// The attending doctor of a form input, as the signer (name = family given patronymic).
fn attending(input: &Value) -> Signer {
    let pinfl = input["responsiblePersons"]["attendingDoctor"].as_str().expect("attending doctor");
    let p = input["practitioners"].as_array().expect("practitioners").iter().find(|p| p["pinfl"] == pinfl);
    let n = &p.expect("attending doctor is a practitioner")["name"];
    let name =
        [&n["family"], &n["given"], &n["patronymic"]].iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ");
    Signer { pinfl: pinfl.to_string(), name, role_display: "Attending doctor".into() }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let composer = Composer::builtin().expect("built-in forms");
        let ca = SigningCa::load_or_create_dev(dir.path()).expect("development CA");
        let anchors = ca.anchors();
        let input_003 = example("003");
        let input_096 = example("096");
        let bundle_003 = composer.get("003").expect("form 003").compose(&input_003, &ctx()).expect("compose 003");
        let bundle_096 = composer.get("096").expect("form 096").compose(&input_096, &ctx()).expect("compose 096");
        let input_003_min = example_file("form-003.minimal.json");
        let bundle_003_min =
            composer.get("003").expect("form 003").compose(&input_003_min, &ctx()).expect("compose 003 minimal");
        let signer_003_min = attending(&input_003_min);
        // the borrowed canonical view (src/sign/canon.rs) gives the same bytes as JCS of a pruned copy
        let mut copy = bundle_003.clone();
        copy.as_object_mut().expect("object").retain(|k, _| !matches!(k.as_str(), "id" | "meta" | "signature"));
        assert_eq!(canonical_payload(&bundle_003).expect("payload"), hujjat::sign::jcs(&copy).expect("jcs"));
        let bundle_file = dir.path().join("form-003.bundle.json");
        std::fs::write(&bundle_file, serde_json::to_vec(&bundle_003).expect("serialize")).expect("write bundle");
        let signer = attending(&input_003);
        let signer_096 = attending(&input_096);
        // as the service signs (app::build): the narrative on, the rest the defaults
        let opts = SignOptions { narrative: true, ..SignOptions::default() };
        Fixture {
            composer,
            ca,
            anchors,
            input_003,
            input_096,
            bundle_003,
            bundle_096,
            input_003_min,
            bundle_003_min,
            signer_003_min,
            bundle_file,
            signer,
            signer_096,
            opts,
            _dir: dir,
        }
    }

    /// `sign_document` on a borrowed Bundle (it copies the document once).
    fn sign(&self, bundle: &Value) -> Value {
        sign_document(bundle, &self.ca, &self.signer, &self.opts, Utc::now()).expect("sign").0
    }

    /// The service's path: `sign_document_owned` on a Bundle it owns (parsed from the store).
    fn sign_owned(&self, bundle: Value, signer: &Signer) -> Value {
        sign_document_owned(bundle, &self.ca, signer, &self.opts, Utc::now()).expect("sign").0
    }

    fn verify(&self, signed: &Value) {
        let r = verify_bundle(signed, &self.anchors, VerifyAt::SigT);
        assert!(r.ok && r.status == Status::Valid, "verification failed");
    }

    /// hujjat's full pipeline on one Bundle: `sign_document` (canonicalize, fresh P-256 key pair,
    /// leaf certificate from the CA, detached ES256 JWS, self-check of the signature and the
    /// certificate, Provenance) then `verify_bundle` (canonicalize, header rules, JWS, chain,
    /// trust, signer).
    fn pipeline(&self, bundle: &Value) {
        let signed = self.sign(bundle);
        self.verify(&signed);
    }

    /// [`Fixture::pipeline`] on an owned Bundle (`sign_document_owned`, the service's path);
    /// returns the signed Bundle, which is the input plus a Provenance, so that freeing the input
    /// is not timed (the peers keep their parsed input across iterations and never free it).
    fn pipeline_owned(&self, bundle: Value) -> Value {
        let signed = self.sign_owned(bundle, &self.signer);
        self.verify(&signed);
        signed
    }

    /// The peers' work done with hujjat's primitives (like for like): canonicalize, fresh key
    /// pair, detached ES256 JWS over the payload; canonicalize again and verify the JWS.
    fn primitives(&self, bundle: &Value) {
        let payload = canonical_payload(bundle).expect("payload");
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let key = EcKey::generate(&group).expect("key");
        let header = json!({"alg": "ES256", "typ": "JOSE", "sigT": hujjat::sign::format_instant(Utc::now()),
                            "canon": hujjat::sign::CANON_DOCUMENT});
        let (compact, _) =
            jws::sign_es256_detached(&serde_json::to_vec(&header).expect("header"), &payload, &key).expect("jws");
        let public = EcKey::from_public_key(&group, key.public_key()).expect("public key");
        let again = canonical_payload(bundle).expect("payload");
        let (h64, s64) = compact.split_once("..").expect("detached");
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s64).expect("b64");
        jws::verify_es256_digest(&jws::signing_input_sha256(h64, &again), &raw, &public).expect("verifies");
    }
}

fn benches(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("hujjat");
    g.throughput(Throughput::Elements(1));
    for (name, input) in [("003", &fx.input_003), ("096", &fx.input_096), ("003-minimal", &fx.input_003_min)] {
        let def = fx.composer.get(&name[..3]).expect("form");
        let cx = ctx();
        // what the service does: the input to the Bundle's JSON text, as stored and returned
        g.bench_function(format!("compose/form-{name}"), |b| {
            b.iter(|| def.compose_json(black_box(input), &cx, None).unwrap())
        });
    }
    // the Bundle's JSON text for the store and the response (`canon::to_json_string`)
    g.bench_function("serialize/form-003", |b| b.iter(|| to_json_string(black_box(&fx.bundle_003))));
    g.bench_function("canonicalize/form-003", |b| b.iter(|| canonical_payload(black_box(&fx.bundle_003)).unwrap()));
    g.bench_function("canonicalize/form-096", |b| b.iter(|| canonical_payload(black_box(&fx.bundle_096)).unwrap()));
    let mut signed = Vec::new();
    for (form, bundle, signer) in [
        ("003", &fx.bundle_003, &fx.signer),
        ("096", &fx.bundle_096, &fx.signer_096),
        ("003-minimal", &fx.bundle_003_min, &fx.signer_003_min),
    ] {
        // the service's path: the Bundle is owned (parsed from the store), nothing is copied; the
        // copy handed to each iteration is made outside the timing
        g.bench_function(format!("sign/form-{form}"), |b| {
            b.iter_batched(|| bundle.clone(), |x| fx.sign_owned(black_box(x), signer), BatchSize::SmallInput)
        });
        signed.push((form, fx.sign_owned(bundle.clone(), signer)));
    }
    for (form, s) in &signed {
        g.bench_function(format!("verify/form-{form}"), |b| b.iter(|| fx.verify(black_box(s))));
    }
    let def = fx.composer.get("003").expect("form");
    g.bench_function("compose-sign-verify/form-003", |b| {
        b.iter(|| {
            let bundle = def.compose(black_box(&fx.input_003), &ctx()).unwrap();
            fx.pipeline(&bundle)
        })
    });
    g.bench_function("pipeline/form-003", |b| {
        b.iter_batched(|| fx.bundle_003.clone(), |x| fx.pipeline_owned(black_box(x)), BatchSize::SmallInput)
    });
    g.bench_function("primitives/form-003", |b| b.iter(|| fx.primitives(black_box(&fx.bundle_003))));
    g.finish();
}

/// Per-operation time of `f`, measured the way the peers measure themselves (one protocol for all):
/// warm up for a quarter of `secs`, then batches of about 20 ms for `secs`; the median batch.
fn own_loop(secs: f64, mut f: impl FnMut()) -> f64 {
    own_loop_with(secs, || (), |()| f())
}

/// [`own_loop`] for a routine that consumes an input: each batch's inputs are made by `setup`
/// before its clock starts (criterion's `iter_batched`), and its outputs dropped after it stops.
fn own_loop_with<I, O>(secs: f64, mut setup: impl FnMut() -> I, mut f: impl FnMut(I) -> O) -> f64 {
    let warm = Instant::now();
    let mut n = 0u64;
    while warm.elapsed().as_secs_f64() < secs / 4.0 || n == 0 {
        black_box(f(setup()));
        n += 1;
    }
    let per = warm.elapsed().as_secs_f64() / n as f64;
    let batch = ((0.02 / per) as u64).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs || samples.len() < 3 {
        let inputs: Vec<I> = (0..batch).map(|_| setup()).collect();
        let mut outputs = Vec::with_capacity(inputs.len());
        let t = Instant::now();
        for input in inputs {
            outputs.push(f(input));
        }
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
        drop(black_box(outputs));
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2] * 1e6
}

/// One peer's answer: its name and per-operation microseconds.
struct PeerResult {
    name: String,
    canonicalize: f64,
    sign: f64,
    verify: f64,
    pipeline: f64,
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers")
}

/// Runs one peer (`program args… BUNDLE SECS`), which prints one JSON object.
fn run_peer(name: &str, program: &Path, script: &Path, bundle: &Path, secs: f64) -> Result<PeerResult, String> {
    let out = Command::new(program)
        .arg(script)
        .arg(bundle)
        .arg(format!("{secs}"))
        .output()
        .map_err(|e| format!("{name}: cannot start {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!("{name} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{name}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))?;
    let us = |k: &str| v["per_op_us"][k].as_f64().ok_or_else(|| format!("{name}: no per_op_us.{k} in {v}"));
    Ok(PeerResult {
        name: v["impl"].as_str().unwrap_or(name).to_string(),
        canonicalize: us("canonicalize")?,
        sign: us("sign")?,
        verify: us("verify")?,
        pipeline: us("pipeline")?,
    })
}

fn compare_with_peers(fx: &Fixture, test_mode: bool) {
    let secs = std::env::var("HUJJAT_BENCH_PEER_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(if test_mode { 0.2 } else { 6.0 });
    let require = std::env::var("HUJJAT_BENCH_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    println!("\n== peers: canonicalize + sign + verify on the same Form 003 Bundle ({})", fx.bundle_file.display());
    println!("   payload: {} bytes of RFC 8785 JSON", canonical_payload(&fx.bundle_003).expect("payload").len());

    let b = &fx.bundle_003;
    let hujjat_canon = own_loop(secs, || {
        black_box(canonical_payload(black_box(b)).unwrap());
    });
    // the service signs a Bundle it owns (parsed from the store) and the peers sign the object they
    // parsed: hujjat's copy for each iteration is made before the clock starts
    let signed = fx.sign(b);
    let hujjat_sign = own_loop_with(secs, || b.clone(), |x| fx.sign_owned(black_box(x), &fx.signer));
    let hujjat_verify = own_loop(secs, || fx.verify(black_box(&signed)));
    let hujjat_pipeline = own_loop_with(secs, || b.clone(), |x| fx.pipeline_owned(black_box(x)));
    let hujjat_primitives = own_loop(secs, || fx.primitives(black_box(b)));

    let dir = peers_dir();
    let mut peers = Vec::new();
    let node_ready = dir.join("node_modules/jose").exists() && dir.join("node_modules/canonicalize").exists();
    let py = dir.join(".venv/bin/python");
    for (name, ready, program, script) in [
        ("node", node_ready, PathBuf::from("node"), dir.join("pipeline.mjs")),
        ("python", py.exists(), py.clone(), dir.join("pipeline.py")),
    ] {
        if !ready {
            let msg = format!("peer {name} is not installed: run benches/peers/setup");
            assert!(!require, "{msg}");
            println!("   SKIPPED: {msg}");
            continue;
        }
        match run_peer(name, &program, &script, &fx.bundle_file, secs) {
            Ok(r) => peers.push(r),
            Err(e) => {
                assert!(!require, "{e}");
                println!("   FAILED: {e}");
            }
        }
    }

    println!();
    println!(
        "| {:<52} | {:>13} | {:>10} | {:>10} | {:>12} | {:>9} | {:>10} |",
        "implementation (µs per operation, median)", "canonicalize", "sign", "verify", "pipeline", "ops/s", "× hujjat"
    );
    println!("|{:-<54}|{:->15}|{:->12}|{:->12}|{:->14}|{:->11}|{:->12}|", "", "", "", "", "", "", "");
    let row = |name: &str, c: f64, s: f64, v: f64, p: f64, base: f64| {
        println!(
            "| {name:<52} | {c:>13.1} | {s:>10.1} | {v:>10.1} | {p:>12.1} | {:>9.0} | {:>10.2} |",
            1e6 / p,
            p / base
        );
    };
    row(
        "hujjat full (sign_document + verify_bundle)",
        hujjat_canon,
        hujjat_sign,
        hujjat_verify,
        hujjat_pipeline,
        hujjat_pipeline,
    );
    println!(
        "| {:<52} | {:>13} | {:>10} | {:>10} | {:>12.1} | {:>9.0} | {:>10.2} |",
        "hujjat primitives (the peers' work)",
        "",
        "",
        "",
        hujjat_primitives,
        1e6 / hujjat_primitives,
        hujjat_primitives / hujjat_pipeline
    );
    for p in &peers {
        row(&p.name, p.canonicalize, p.sign, p.verify, p.pipeline, hujjat_pipeline);
    }
    println!();
    for p in &peers {
        println!(
            "   {}: {:.2}× hujjat's full pipeline, {:.2}× hujjat doing the same work (primitives)",
            p.name,
            p.pipeline / hujjat_pipeline,
            p.pipeline / hujjat_primitives
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let fx = Fixture::new();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &fx);
    c.final_summary();
    if std::env::var("HUJJAT_BENCH_NO_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    compare_with_peers(&fx, test_mode);
}
