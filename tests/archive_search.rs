//! Issue 6: search is correct on 1,000+ documents of both forms (many patients, dates, signers,
//! states, two MIS clients): every filter and several combinations compared with a brute-force
//! answer computed here from what was stored; keyset paging neither skips nor repeats, also while
//! documents are added during the walk.

mod archive_support;
mod common;

use archive_support::*;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use common::gen::{valid_instance, FormGen};
use common::*;
use futures::StreamExt;
use hujjat::compose::Composer;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

const N: usize = 1000;

#[derive(Debug, Clone)]
struct Truth {
    id: String,
    client: String,
    form: String,
    patient: String,
    at: DateTime<Utc>,
    signers: BTreeSet<String>,
    state: String,
}

fn pinfl(prefix: u64, i: u64) -> String {
    format!("{:014}", prefix * 1_000_000 + i)
}

/// Replace every practitioner PINFL of a generated instance by distinct ones from the pool.
fn remap_practitioners(input: &Value, pool: &[String], rng: &mut impl Rng) -> Value {
    let mut text = serde_json::to_string(input).unwrap();
    let olds: Vec<String> =
        input["practitioners"].as_array().unwrap().iter().map(|p| p["pinfl"].as_str().unwrap().to_string()).collect();
    let news: Vec<&String> = pool.choose_multiple(rng, olds.len()).collect();
    assert_eq!(news.len(), olds.len(), "the practitioner pool is too small");
    // two passes through placeholders, so that a new PINFL never collides with an old one
    for (i, o) in olds.iter().enumerate() {
        text = text.replace(&format!("\"{o}\""), &format!("\"@@{i}@@\""));
    }
    for (i, n) in news.iter().enumerate() {
        text = text.replace(&format!("\"@@{i}@@\""), &format!("\"{n}\""));
    }
    serde_json::from_str(&text).unwrap()
}

/// FHIR date semantics, written independently of the service: the value's precision is a range;
/// a date without a zone is Tashkent time.
fn range(v: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = FixedOffset::east_opt(5 * 3600).unwrap();
    let day = |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).unwrap().with_timezone(&Utc);
    match v.len() {
        4 => {
            let y: i32 = v.parse().unwrap();
            (day(NaiveDate::from_ymd_opt(y, 1, 1).unwrap()), day(NaiveDate::from_ymd_opt(y + 1, 1, 1).unwrap()))
        }
        7 => {
            let y: i32 = v[..4].parse().unwrap();
            let m: u32 = v[5..].parse().unwrap();
            let s = NaiveDate::from_ymd_opt(y, m, 1).unwrap();
            let e = if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { NaiveDate::from_ymd_opt(y, m + 1, 1) };
            (day(s), day(e.unwrap()))
        }
        10 => {
            let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").unwrap();
            (day(d), day(d.succ_opt().unwrap()))
        }
        _ => {
            let t = DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc);
            (t, t + chrono::Duration::seconds(1))
        }
    }
}

fn date_matches(at: DateTime<Utc>, prefix: &str, v: &str) -> bool {
    let (lo, hi) = range(v);
    match prefix {
        "eq" => at >= lo && at < hi,
        "ne" => at < lo || at >= hi,
        "gt" => at >= hi,
        "ge" => at >= lo,
        "lt" => at < lo,
        "le" => at < hi,
        _ => unreachable!(),
    }
}

/// The path and query of a link (links carry the configured public URL).
fn path_of(u: &str) -> String {
    u[u.find("/Bundle").expect("a Bundle link")..].to_string()
}

/// Every page of a search, following `next` links; ids in order, and the reported total.
async fn walk(app: &TestApp, who: &As, query: &str, count: usize) -> (Vec<String>, i64) {
    let summary = if query.contains("_summary=") { "" } else { "&_summary=true" };
    let mut url = format!("/Bundle?{query}&_count={count}{summary}");
    let mut ids = Vec::new();
    let mut total = None;
    for _ in 0..10_000 {
        let r = req(app, Method::GET, &url, who).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["type"], "searchset");
        let t = b["total"].as_i64().unwrap();
        assert!(total.is_none_or(|x| x == t), "the total changed between pages of {query}");
        total = Some(t);
        let entries = b["entry"].as_array().unwrap();
        assert!(entries.len() <= count);
        for e in entries {
            assert_eq!(e["search"]["mode"], "match");
            assert_eq!(e["resource"]["resourceType"], "Bundle");
            ids.push(e["fullUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        match b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(l) => url = path_of(l["url"].as_str().unwrap()),
            None => return (ids, t),
        }
    }
    panic!("paging does not end");
}

#[tokio::test]
async fn search_matches_brute_force_on_a_thousand_documents() {
    let t0 = Instant::now();
    let app = TestApp::spawn().await;
    let store = &app.state.docs.store;
    let a = store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap();
    let bc = client(&app, "mis-b", &["documents"]).await;
    let b = store.authenticate_client(&bc.0, &bc.1).await.unwrap().unwrap();
    let archive = As::Client(client(&app, "archive-sys", &["archive"]).await);
    let composer = Composer::builtin().unwrap();
    let gens = [FormGen::for_form("003"), FormGen::for_form("096")];
    let patients: Vec<String> = (0..60).map(|i| pinfl(41, i)).collect();
    let doctors: Vec<String> = (0..40).map(|i| pinfl(52, i)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::gen::base_seed() ^ 0xA5C4);

    // generate the inputs (deterministic), then create and sign them with a few tasks at once
    let mut plans = Vec::with_capacity(N);
    for i in 0..N {
        let fi = i % 2;
        let form = ["003", "096"][fi];
        let mut input = valid_instance(&gens[fi], composer.get(form).unwrap(), 0xA2C0_0000 + i as u64);
        input.as_object_mut().unwrap().remove("documentId");
        let mut input = remap_practitioners(&input, &doctors, &mut rng);
        input["patient"]["pinfl"] = Value::String(patients.choose(&mut rng).unwrap().clone());
        let client = if i % 3 == 0 { b.clone() } else { a.clone() };
        let signs = rng.random_range(0..10); // 0-4: draft, 5-8: one signature, 9: two
        plans.push((form, input, client, signs));
    }
    let t_gen = t0.elapsed();
    // seed through the library; on PostgreSQL without waiting for each commit's fsync (test speed only)
    let mut docs = app.state.docs.clone();
    if app.database_url.contains("options=") {
        let fast = app.database_url.replacen("options=", "options=-c%20synchronous_commit%3Doff%20", 1);
        docs.store = hujjat::store::Store {
            required_signatures: store.required_signatures.clone(),
            ..hujjat::store::Store::connect(&fast).await.unwrap()
        };
    }
    let created: Vec<Truth> = futures::stream::iter(plans.into_iter().map(|(form, input, client, signs)| {
        let docs = docs.clone();
        async move {
            let s = docs.create(&client, form, input.clone()).await.unwrap();
            let mut signers = BTreeSet::new();
            let practitioners: Vec<String> = input["practitioners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pinfl"].as_str().unwrap().to_string())
                .collect();
            let mut version = 1;
            if signs >= 5 {
                let first = attending(&input);
                version = docs.sign(&s.id, version, &signer_for(&input, &first)).await.unwrap().version;
                signers.insert(first.clone());
                if signs == 9 {
                    if let Some(p) = practitioners.iter().find(|p| **p != first) {
                        docs.sign(&s.id, version, &signer_for(&input, p)).await.unwrap();
                        signers.insert(p.clone());
                    }
                }
            }
            let bundle: Value = serde_json::from_str(&s.bundle).unwrap();
            let at = DateTime::parse_from_rfc3339(bundle["entry"][0]["resource"]["date"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            Truth {
                id: s.id,
                client: client.id.clone(),
                form: form.to_string(),
                patient: input["patient"]["pinfl"].as_str().unwrap().to_string(),
                at,
                state: if signers.is_empty() { "draft".into() } else { "signed".into() },
                signers,
            }
        }
    }))
    .buffer_unordered(4)
    .collect()
    .await;
    let mut truth: Vec<Truth> = created;
    let t_seed = t0.elapsed();

    // later states: some signed documents were submitted or rejected by the DHP, some entered in error
    for (i, t) in truth.iter_mut().enumerate() {
        let new = match (t.state.as_str(), i % 7) {
            ("signed", 0) => "submitted",
            ("signed", 1) => "rejected",
            (_, 2) if i % 4 == 0 => "entered-in-error",
            _ => continue,
        };
        if new == "entered-in-error" {
            sqlx::query("UPDATE documents SET state = 'entered-in-error' WHERE id = $1")
                .bind(&t.id)
                .execute(&store.pool)
                .await
                .unwrap();
        } else {
            let r = sqlx::query("UPDATE submissions SET state = $1 WHERE document_id = $2")
                .bind(new)
                .bind(&t.id)
                .execute(&store.pool)
                .await
                .unwrap();
            if r.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO submissions (document_id, version, bundle_identifier, client_id, form, state, queued_ms,
                        next_attempt_at, created_at, updated_at) VALUES ($1, 2, 'urn:x', $2, $3, $4, 0, 0, 'x', 'x')",
                )
                .bind(&t.id)
                .bind(&t.client)
                .bind(&t.form)
                .bind(new)
                .execute(&store.pool)
                .await
                .unwrap();
            }
        }
        t.state = new.into();
    }
    let states: BTreeSet<&str> = truth.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(states.len(), 5, "{states:?}");

    // sorted newest first, ties by id descending: the service's default order
    let order = |v: &mut Vec<&Truth>| v.sort_by(|x, y| (y.at, &y.id).cmp(&(x.at, &x.id)));
    let expect = |pred: &dyn Fn(&Truth) -> bool| -> Vec<String> {
        let mut v: Vec<&Truth> = truth.iter().filter(|t| pred(t)).collect();
        order(&mut v);
        v.into_iter().map(|t| t.id.clone()).collect()
    };
    // pick filter values that exist
    let p1 = truth[3].patient.clone();
    // another patient: `truth` is in completion order (creates run four at a time), so a fixed
    // index could land on p1's patient (about one run in sixty did, failing the AND case below)
    let p2 = truth.iter().skip(10).map(|t| t.patient.clone()).find(|p| *p != p1).unwrap();
    let signer = truth.iter().find(|t| !t.signers.is_empty()).unwrap().signers.iter().next().unwrap().clone();
    let signer2 = doctors.iter().find(|d| **d != signer).unwrap().clone();
    let year = truth[5].at.with_timezone(&FixedOffset::east_opt(5 * 3600).unwrap()).format("%Y").to_string();
    let month = truth[7].at.with_timezone(&FixedOffset::east_opt(5 * 3600).unwrap()).format("%Y-%m").to_string();
    let day = truth[9].at.with_timezone(&FixedOffset::east_opt(5 * 3600).unwrap()).format("%Y-%m-%d").to_string();
    let instant = truth[11].at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cat = "https://terminology.dhp.uz/fhir/integrations/CodeSystem/document-category-cs";
    let pid = "https://dhp.uz/fhir/core/sid/pid/uz/ni";

    type Pred = Box<dyn Fn(&Truth) -> bool>;
    let cases: Vec<(String, Pred)> = vec![
        ("type=document".into(), Box::new(|_| true)),
        (format!("type=document&composition.category={cat}|form-003"), Box::new(|t| t.form == "003")),
        ("type=document&composition.category=form-096".into(), Box::new(|t| t.form == "096")),
        ("type=document&composition.category=form-003,form-096".into(), Box::new(|_| true)),
        ("type=document&composition.category=form-011".into(), Box::new(|_| false)),
        ("type=document&composition.category=http://other|form-003".to_string(), Box::new(|_| false)),
        (format!("type=document&composition.subject.identifier={pid}|{p1}"), { let p = p1.clone(); Box::new(move |t| t.patient == p) }),
        (format!("type=document&composition.subject.identifier={p1},{p2}"), { let (x, y) = (p1.clone(), p2.clone()); Box::new(move |t| t.patient == x || t.patient == y) }),
        (format!("type=document&composition.subject.identifier={p1}&composition.subject.identifier={p2}"), Box::new(|_| false)),
        (format!("type=document&signer={signer}"), { let s = signer.clone(); Box::new(move |t| t.signers.contains(&s)) }),
        (format!("type=document&signer={pid}|{signer},{signer2}"), { let (s, s2) = (signer.clone(), signer2.clone()); Box::new(move |t| t.signers.contains(&s) || t.signers.contains(&s2)) }),
        (format!("type=document&signer={signer}&signer={signer2}"), { let (s, s2) = (signer.clone(), signer2.clone()); Box::new(move |t| t.signers.contains(&s) && t.signers.contains(&s2)) }),
        ("type=document&state=draft".into(), Box::new(|t| t.state == "draft")),
        ("type=document&state=signed".into(), Box::new(|t| t.state == "signed")),
        ("type=document&state=submitted".into(), Box::new(|t| t.state == "submitted")),
        ("type=document&state=rejected".into(), Box::new(|t| t.state == "rejected")),
        ("type=document&state=entered-in-error".into(), Box::new(|t| t.state == "entered-in-error")),
        ("type=document&state=submitted,rejected".into(), Box::new(|t| t.state == "submitted" || t.state == "rejected")),
        (format!("type=document&composition.date={year}"), { let y = year.clone(); Box::new(move |t| date_matches(t.at, "eq", &y)) }),
        (format!("type=document&composition.date=eq{month}"), { let m = month.clone(); Box::new(move |t| date_matches(t.at, "eq", &m)) }),
        (format!("type=document&composition.date={day}"), { let d = day.clone(); Box::new(move |t| date_matches(t.at, "eq", &d)) }),
        (format!("type=document&composition.date=ne{year}"), { let y = year.clone(); Box::new(move |t| date_matches(t.at, "ne", &y)) }),
        (format!("type=document&composition.date=ge{month}"), { let m = month.clone(); Box::new(move |t| date_matches(t.at, "ge", &m)) }),
        (format!("type=document&composition.date=le{month}"), { let m = month.clone(); Box::new(move |t| date_matches(t.at, "le", &m)) }),
        (format!("type=document&composition.date=gt{day}"), { let d = day.clone(); Box::new(move |t| date_matches(t.at, "gt", &d)) }),
        (format!("type=document&composition.date=lt{day}"), { let d = day.clone(); Box::new(move |t| date_matches(t.at, "lt", &d)) }),
        (format!("type=document&composition.date={instant}"), { let i = instant.clone(); Box::new(move |t| date_matches(t.at, "eq", &i)) }),
        ("type=document&composition.date=ge2021-03-01&composition.date=le2023-06-30".to_string(), Box::new(|t| date_matches(t.at, "ge", "2021-03-01") && date_matches(t.at, "le", "2023-06-30"))),
        // combinations
        (format!("type=document&composition.category=form-003&composition.subject.identifier={p1}&composition.date=ge2020"), { let p = p1.clone(); Box::new(move |t| t.form == "003" && t.patient == p && date_matches(t.at, "ge", "2020")) }),
        (format!("type=document&signer={signer}&state=signed,submitted&composition.date=le2025-12-31"), { let s = signer.clone(); Box::new(move |t| t.signers.contains(&s) && (t.state == "signed" || t.state == "submitted") && date_matches(t.at, "le", "2025-12-31")) }),
        (format!("type=document&composition.category=form-096&state=draft&composition.date=gt{year}"), { let y = year.clone(); Box::new(move |t| t.form == "096" && t.state == "draft" && date_matches(t.at, "gt", &y)) }),
        (format!("type=document&_id={},{},nope", truth[0].id, truth[1].id), { let (x, y) = (truth[0].id.clone(), truth[1].id.clone()); Box::new(move |t| t.id == x || t.id == y) }),
        ("type=collection".into(), Box::new(|_| false)),
    ];
    let mut nonempty = 0;
    for (q, pred) in &cases {
        let want = expect(pred.as_ref());
        if !want.is_empty() {
            nonempty += 1;
        }
        let (got, total) = walk(&app, &archive, q, 100).await;
        assert_eq!(total as usize, want.len(), "total of {q}");
        assert_eq!(got, want, "results of {q}");
        // MIS A: the same query, only its own documents, and a total that counts only those
        let want_a: Vec<String> =
            want.iter().filter(|id| truth.iter().any(|t| &t.id == *id && t.client == a.id)).cloned().collect();
        let (got_a, total_a) = walk(&app, &As::Client(Cred::demo()), q, 100).await;
        assert_eq!((got_a, total_a as usize), (want_a.clone(), want_a.len()), "MIS A: {q}");
    }
    assert!(nonempty >= 25, "most cases match something ({nonempty})");

    // sorts, each walked in small pages: no skips, no repeats, the right order
    let mut by_date_asc: Vec<&Truth> = truth.iter().collect();
    by_date_asc.sort_by(|x, y| (x.at, &x.id).cmp(&(y.at, &y.id)));
    let asc: Vec<String> = by_date_asc.iter().map(|t| t.id.clone()).collect();
    let (got, _) = walk(&app, &archive, "type=document&_sort=date", 37).await;
    assert_eq!(got, asc);
    let (got, _) = walk(&app, &archive, "type=document", 41).await;
    assert_eq!(got, expect(&|_| true));
    let (got, total) = walk(&app, &archive, "type=document&_sort=-_lastUpdated", 53).await;
    assert_eq!(total as usize, got.len());
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len(), "no repeats");
    let (got, _) = walk(&app, &archive, "type=document&_sort=_lastUpdated", 1000).await;
    assert_eq!(got.len(), truth.len());

    // paging while documents are added: the ones that existed are seen exactly once, in order
    let before = expect(&|_| true);
    let mut url = "/Bundle?type=document&_count=50&_summary=true".to_string();
    let mut seen = Vec::new();
    let g = &gens[0];
    let mut k = 0u64;
    loop {
        let bnd: Value = req(&app, Method::GET, &url, &archive).send().await.unwrap().json().await.unwrap();
        for e in bnd["entry"].as_array().unwrap() {
            seen.push(e["fullUrl"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        // two new documents between pages (dates anywhere in 2019-2026)
        for _ in 0..2 {
            let mut input = valid_instance(g, composer.get("003").unwrap(), 0xA2D0_0000 + k);
            input.as_object_mut().unwrap().remove("documentId");
            k += 1;
            app.state.docs.create(&a, "003", input).await.unwrap();
        }
        match bnd["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(l) => url = path_of(l["url"].as_str().unwrap()),
            None => break,
        }
    }
    let set: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(set.len(), seen.len(), "a document was repeated while paging");
    let old_seen: Vec<String> = seen.iter().filter(|id| before.contains(id)).cloned().collect();
    assert_eq!(old_seen, before, "a document that existed was skipped or out of order");

    // full entries: each resource is the stored Bundle
    let (ids, _) =
        walk(&app, &archive, &format!("type=document&composition.subject.identifier={p2}&_summary=false"), 5).await;
    assert!(!ids.is_empty());
    let b: Value = req(
        &app,
        Method::GET,
        &format!("/Bundle?type=document&composition.subject.identifier={p2}&_count=5"),
        &archive,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for e in b["entry"].as_array().unwrap() {
        let id = e["fullUrl"].as_str().unwrap().rsplit('/').next().unwrap();
        let doc = store.document(id).await.unwrap().unwrap();
        let stored: Value =
            serde_json::from_str(&store.version(id, doc.version).await.unwrap().unwrap().bundle).unwrap();
        assert_eq!(e["resource"], stored);
        assert_eq!(e["extension"][1]["valueInteger"], doc.version);
    }

    // the archive UI finds the same as the API (archivist session; total on the page)
    grant(&app, "30000000000001", "archivist", &[]).await;
    let cookie = login(&app, "30000000000001", "Arxivchi").await;
    let html = req(&app, Method::GET, &format!("/archive?pinfl={p1}&form=003&go=1"), &As::Session(cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = expect(&|t: &Truth| t.patient == p1 && t.form == "003");
    assert!(html.contains(&format!("<strong>{}</strong>", want.len())), "UI total");
    for id in want.iter().take(20) {
        assert!(html.contains(&format!("/archive/documents/{id}")), "UI lists {id}");
    }

    let per_client: HashMap<&str, usize> = truth.iter().fold(HashMap::new(), |mut m, t| {
        *m.entry(t.client.as_str()).or_default() += 1;
        m
    });
    eprintln!(
        "archive search: {} documents ({per_client:?}), states {states:?}; generate {:.1?}, seed {:.1?}, all {:.1?}",
        truth.len(),
        t_gen,
        t_seed - t_gen,
        t0.elapsed()
    );
}

/// The start-up backfill (rows written before the search columns existed) fills `composition_at`
/// and `organization` exactly as a create does: both read the same fields, one from the composed
/// trees, the other from the stored text.
#[tokio::test]
async fn backfill_fills_the_search_columns_as_a_create_does() {
    use sqlx::Row;
    let app = TestApp::spawn().await;
    let id = create(&app, &Cred::demo(), "003", &example_003()).await;
    let store = &app.state.docs.store;
    let columns = || async {
        let r = sqlx::query("SELECT composition_at, organization FROM documents WHERE id = $1")
            .bind(&id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        (r.get::<Option<String>, _>("composition_at"), r.get::<Option<String>, _>("organization"))
    };
    let written = columns().await;
    assert!(written.0.as_deref().is_some_and(|d| d.ends_with('Z')), "{written:?}");
    assert_eq!(written.1.as_deref(), Some("201234567"), "organization.taxId of the example");

    sqlx::query("UPDATE documents SET composition_at = NULL, organization = NULL WHERE id = $1")
        .bind(&id)
        .execute(&store.pool)
        .await
        .unwrap();
    hujjat::archive::prepare(store).await.unwrap();
    assert_eq!(columns().await, written);
}

/// A new version of a draft rewrites the search columns with the row (`PUT /documents/{id}`):
/// search by the new organization and date finds the document, by the old ones it does not.
#[tokio::test]
async fn an_update_rewrites_the_search_columns() {
    let app = TestApp::spawn().await;
    let cred = Cred::demo();
    let who = As::Client(cred.clone());
    let mut input = example_003();
    let id = create(&app, &cred, "003", &input).await;
    let found = |query: String| {
        let app = &app;
        let who = &who;
        async move {
            let r = req(app, Method::GET, &format!("/Bundle?type=document&{query}"), who).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let b: Value = r.json().await.unwrap();
            b["entry"].as_array().map(Vec::len).unwrap_or(0)
        }
    };
    let (old_org, old_day) = ("201234567", "2026-03-02");
    assert_eq!(input["organization"]["taxId"], old_org);
    assert!(input["primaryExamination"]["examinationDateTime"].as_str().unwrap().starts_with(old_day));
    assert_eq!(found(format!("organization={old_org}&composition.date={old_day}")).await, 1);

    input["organization"]["taxId"] = "209876543".into();
    input["primaryExamination"]["examinationDateTime"] = "2026-04-15T09:30:00+05:00".into();
    input["documentId"] = id.clone().into();
    let r = req(&app, Method::PUT, &format!("/documents/{id}"), &who)
        .header("if-match", "W/\"1\"")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    assert_eq!(found(format!("organization={old_org}")).await, 0);
    assert_eq!(found(format!("composition.date={old_day}")).await, 0);
    assert_eq!(found("organization=209876543&composition.date=2026-04-15".into()).await, 1);
    // 09:30 in Tashkent is 04:30 UTC
    assert_eq!(
        found("composition.date=ge2026-04-15T04:30:00Z&composition.date=le2026-04-15T04:30:00Z".into()).await,
        1
    );
}
