//! Submission to the DHP through the outbox (issue 5), against the fake DHP in tests/dhp-fake (a
//! real OAuth2 server, oidc-provider, and a FHIR endpoint with fault injection that validates every
//! created Bundle with ../shared/tools/fhir-validate). Every test runs on SQLite and PostgreSQL.

mod common;
mod submit_support;

use common::*;
use hujjat::submit::{DhpConfig, RequiredSignatures, SubmitMode};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use submit_support::*;

const OTHER: (&str, &str) = ("other-mis", "other-secret");
const ADMIN: (&str, &str) = ("admin-mis", "admin-secret");

async fn other_clients(app: &SubmitApp) {
    let store = &app.state.docs.store;
    store.ensure_client(OTHER.0, "Another hospital", OTHER.1, &[]).await.unwrap();
    store.ensure_client(ADMIN.0, "Operations", ADMIN.1, &[]).await.unwrap();
    sqlx::query("UPDATE clients SET scopes = 'documents admin' WHERE id = $1")
        .bind(ADMIN.0)
        .execute(&store.pool)
        .await
        .unwrap();
}

fn identifier_of(signed: &str) -> String {
    let d: Value = serde_json::from_str(signed).unwrap();
    format!("{}|{}", d["identifier"]["system"].as_str().unwrap(), d["identifier"]["value"].as_str().unwrap())
}

async fn metrics(app: &SubmitApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    r.text().await.unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

#[tokio::test]
async fn signed_documents_reach_the_dhp_once_byte_for_byte() {
    let fake = DhpFake::start(&[]);
    // the fake validates synchronously here, as the DHP does on create: give it time
    fake.settings(json!({"validate": "sync"})).await;
    let cfg = DhpConfig { timeout: Duration::from_secs(20), lease: Duration::from_secs(120), ..fake.config() };
    let app = SubmitApp::spawn(cfg).await;
    other_clients(&app).await;
    let input = example("003", "example");
    let pinfl = input["patient"]["pinfl"].as_str().unwrap().to_string();
    fake.patients(&[(&pinfl, "dhp-patient-1")]).await;

    let id = app.create("003", &input).await;
    let r = app.submission(&id, DEMO).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["state"].as_str(), v["signatures"].as_u64(), v["requiredSignatures"].as_u64()),
        (Some("not-queued"), Some(0), Some(1))
    );

    let signed = app.sign(&id, 1, &input, &attending(&input)).await;
    let v = app.settled(&id, Duration::from_secs(60)).await;
    assert_eq!(v["state"], "submitted", "{v:#}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["attempts"], 1);
    let dhp_id = v["dhp"]["id"].as_str().unwrap().to_string();
    assert!(v["dhp"]["location"].as_str().unwrap().ends_with(&format!("/Bundle/{dhp_id}/_history/1")), "{v:#}");
    assert_eq!(v["dhp"]["versionId"], "1");
    assert_eq!(v["patient"], json!({"match": "matched", "dhpPatientId": "dhp-patient-1"}));
    assert_eq!(v["attemptLog"][0]["result"], "submitted");
    assert_eq!(v["attemptLog"][0]["httpStatus"], 201);
    // the DHP got the signed bytes exactly, and the stored document was not changed
    assert_eq!(fake.stored(&dhp_id).await, signed);
    let (_, stored) = app
        .state
        .docs
        .read(&app.state.docs.store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap(), &id, None)
        .await
        .unwrap();
    assert_eq!(stored.bundle, signed);
    // the submission is in the audit trail, with its outcome
    let row = sqlx::query(
        "SELECT outcome, agent_id, entity_version FROM audit_events WHERE subtype = 'submit' AND entity_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.state.docs.store.pool)
    .await
    .unwrap();
    use sqlx::Row;
    assert_eq!(row.get::<String, _>("outcome"), "0", "a successful submission is audited");
    assert_eq!(row.get::<String, _>("agent_id"), "dhp-outbox");
    assert_eq!(row.get::<i64, _>("entity_version"), 2);

    // a second document, other form: the token is reused
    let input2 = example("096", "example");
    let id2 = app.create("096", &input2).await;
    let signed2 = app.sign(&id2, 1, &input2, &attending(&input2)).await;
    let v2 = app.settled(&id2, Duration::from_secs(60)).await;
    assert_eq!(v2["state"], "submitted", "{v2:#}");
    assert_eq!(v2["patient"]["match"], "not-found");

    let st = fake.state().await;
    assert_eq!(st["tokenRequests"], 1, "the access token is cached: {st:#}");
    assert_eq!(st["headerProblems"], json!([]), "Content-Type and Accept are application/fhir+json");
    assert_eq!(st["authFailures"], 0);
    for s in [&signed, &signed2] {
        let e = &st["identifiers"][identifier_of(s)];
        assert_eq!(e["creates"], 1, "{st:#}");
        assert_eq!(e["sha256"][0], sha256_hex(s.as_bytes()));
    }
    assert_eq!(fake.validate_all().await, 2);

    // who may look: the owner and an admin; another client gets 404; bad input is an OperationOutcome
    assert_eq!(app.submission(&id, OTHER).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.submission(&id, ADMIN).await.status(), StatusCode::OK);
    let r = app.submission("no-such-document", DEMO).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
    let r = app.http.get(app.url(&format!("/documents/{id}/submission"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .http
        .post(app.url(&format!("/documents/{id}/submission/retry")))
        .basic_auth(DEMO.0, Some(DEMO.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "a submitted document cannot be re-queued");
    assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");

    let m = metrics(&app).await;
    assert_eq!(metric(&m, "hujjat_submission_documents{state=\"submitted\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "hujjat_submission_queue_depth{state=\"queued\"}"), 0.0);
    assert_eq!(metric(&m, "hujjat_submission_oldest_age_seconds"), 0.0);
    assert!(metric(&m, "hujjat_submission_attempts_total{result=\"submitted\"}") >= 2.0, "{m}");
    assert!(m.contains("hujjat_dhp_requests_total{request=\"submit\",status=\"201\"}"), "{m}");
}

#[tokio::test]
async fn queued_in_the_transaction_of_the_last_required_signature() {
    // the worker is off: what is queued stays queued
    let cfg = DhpConfig { required_signatures: RequiredSignatures::parse("003=2").unwrap(), ..DhpConfig::default() };
    let app = SubmitApp::spawn(cfg).await;
    assert!(app.worker.is_none());
    let input = example("003", "example");
    let id = app.create("003", &input).await;
    app.sign(&id, 1, &input, &attending(&input)).await;
    let v: Value = app.submission(&id, DEMO).await.json().await.unwrap();
    assert_eq!(
        (v["state"].as_str(), v["signatures"].as_u64(), v["requiredSignatures"].as_u64()),
        (Some("not-queued"), Some(1), Some(2))
    );
    let head = input["responsiblePersons"]["headOfDepartment"].as_str().unwrap().to_string();
    app.sign(&id, 2, &input, &head).await;
    let v: Value = app.submission(&id, DEMO).await.json().await.unwrap();
    assert_eq!(
        (v["state"].as_str(), v["version"].as_i64(), v["attempts"].as_i64()),
        (Some("queued"), Some(3), Some(0)),
        "{v:#}"
    );

    // Form 096 needs the default one signature
    let input2 = example("096", "example");
    let id2 = app.create("096", &input2).await;
    app.sign(&id2, 1, &input2, &attending(&input2)).await;
    let v: Value = app.submission(&id2, DEMO).await.json().await.unwrap();
    assert_eq!((v["state"].as_str(), v["version"].as_i64()), (Some("queued"), Some(2)));
    // a later signature while no attempt has started: the DHP will get the most-signed version
    if let Some(p) = second(&input2) {
        app.sign(&id2, 2, &input2, &p).await;
        let v: Value = app.submission(&id2, DEMO).await.json().await.unwrap();
        assert_eq!(v["version"], 3);
    }
    let m = metrics(&app).await;
    assert_eq!(metric(&m, "hujjat_submission_queue_depth{state=\"queued\"}"), 2.0, "{m}");
    assert!(metric(&m, "hujjat_submission_oldest_age_seconds") > 0.0, "{m}");

    // Same transaction: when queueing fails, the signature is not stored either.
    let store = &app.state.docs.store;
    sqlx::query("DROP TABLE submissions").execute(&store.pool).await.unwrap();
    let input3 = example("096", "minimal");
    let id3 = app.create("096", &input3).await;
    let r = app.state.docs.sign(&id3, 1, &signer_for(&input3, &attending(&input3))).await;
    assert!(r.is_err(), "signing must fail when the document cannot be queued");
    let doc = store.document(&id3).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.state.as_str()), (1, "draft"), "the signature was rolled back with the queueing");
    assert!(store.signatures(&id3).await.unwrap().is_empty());
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_dhp_has_it_once() {
    let fake = DhpFake::start(&[]);
    let app = SubmitApp::spawn(fake.config()).await;
    // 500, 429 with Retry-After 1 s, a timeout after the DHP stored it, the connection dropped after
    // the body arrived (stored), 503, the connection dropped before anything was stored
    fake.faults(json!({"queue": [
        {"fault": "500", "on": "submit"},
        {"fault": "429", "on": "submit", "retryAfter": 1},
        {"fault": "timeout", "on": "submit"},
        {"fault": "drop", "on": "submit"},
        {"fault": "503", "on": "submit"},
        {"fault": "drop", "on": "submit", "store": false},
        {"fault": "500", "on": "patient"},
    ]}))
    .await;
    let input = example("003", "example");
    let id = app.create("003", &input).await;
    let signed = app.sign(&id, 1, &input, &attending(&input)).await;
    let t0 = Instant::now();
    let v = app.settled(&id, Duration::from_secs(60)).await;
    assert_eq!(v["state"], "submitted", "{v:#}");
    let log = v["attemptLog"].as_array().unwrap();
    let results: Vec<&str> = log.iter().map(|a| a["result"].as_str().unwrap()).collect();
    let statuses: Vec<Option<i64>> = log.iter().map(|a| a["httpStatus"].as_i64()).collect();
    // attempt 1: the patient search fails (500); then the six submit faults; then the DHP answers
    // 200 with the copy it stored during the timeout: not a second copy
    assert_eq!(results, ["retry", "retry", "retry", "retry", "retry", "retry", "retry", "existing"], "{v:#}");
    assert_eq!(statuses, [Some(500), Some(500), Some(429), None, None, Some(503), None, Some(200)], "{v:#}");
    assert!(log[3]["detail"].as_str().unwrap().contains("timed out"), "{v:#}");
    assert!(log
        .iter()
        .all(|a| a["detail"].as_str().is_some_and(|d| !d.contains(input["patient"]["pinfl"].as_str().unwrap()))));
    // Retry-After honoured: the attempt after the 429 started at least 1 s after it ended
    let at = |i: usize, k: &str| chrono::DateTime::parse_from_rfc3339(log[i][k].as_str().unwrap()).unwrap();
    assert!((at(3, "startedAt") - at(2, "finishedAt")).num_milliseconds() >= 990, "{v:#}");
    // backoff grows: the wait before attempt 8 is longer than the one before attempt 2
    assert!(at(7, "startedAt") - at(6, "finishedAt") > at(1, "startedAt") - at(0, "finishedAt"), "{v:#}");
    assert!(t0.elapsed() < Duration::from_secs(60));

    let st = fake.state().await;
    let e = &st["identifiers"][identifier_of(&signed)];
    assert_eq!(e["creates"], 1, "exactly one copy at the DHP: {st:#}");
    assert_eq!(e["posts"], 7);
    assert_eq!(e["sendsAfterDelivered"], 0);
    assert_eq!(e["sha256"][0], sha256_hex(signed.as_bytes()));
    assert_eq!(v["dhp"]["id"], e["ids"][0]);
    assert_eq!(fake.validate_all().await, 1);
    let m = metrics(&app).await;
    assert!(metric(&m, "hujjat_submission_attempts_total{result=\"retry\"}") >= 7.0, "{m}");
    assert!(m.contains("hujjat_dhp_requests_total{request=\"submit\",status=\"429\"}"), "{m}");
    assert!(m.contains("hujjat_dhp_requests_total{request=\"submit\",status=\"error\"}"), "{m}");
}

#[tokio::test]
async fn a_rejection_keeps_the_outcome_and_can_be_requeued() {
    let fake = DhpFake::start(&[]);
    let app = SubmitApp::spawn(fake.config()).await;
    other_clients(&app).await;
    fake.faults(json!({"queue": [
        {"fault": "400", "on": "submit", "code": "invariant", "diagnostics": "Composition.type: code not in CompositionTypeVS", "expression": "Bundle.entry[0].resource.type"},
        {"fault": "422", "on": "submit"},
    ]}))
    .await;
    let input = example("003", "example");
    let id = app.create("003", &input).await;
    let signed = app.sign(&id, 1, &input, &attending(&input)).await;
    let v = app.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(v["state"], "rejected", "{v:#}");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["outcome"]["resourceType"], "OperationOutcome");
    assert_eq!(v["outcome"]["issue"][0]["diagnostics"], "Composition.type: code not in CompositionTypeVS");
    assert_eq!(v["outcome"]["issue"][0]["expression"][0], "Bundle.entry[0].resource.type");
    assert_eq!(v["attemptLog"][0]["httpStatus"], 400);
    assert_eq!(v["attemptLog"][0]["outcome"]["resourceType"], "OperationOutcome");
    // rejected is terminal: nothing more is sent
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.state().await["identifiers"][identifier_of(&signed)]["posts"], 1);
    let m = metrics(&app).await;
    assert_eq!(metric(&m, "hujjat_submission_documents{state=\"rejected\"}"), 1.0, "{m}");
    assert!(metric(&m, "hujjat_submission_attempts_total{result=\"rejected\"}") >= 1.0);

    let retry = |auth: (&'static str, &'static str), id: String| {
        let http = app.http.clone();
        let url = app.url(&format!("/documents/{id}/submission/retry"));
        async move { http.post(url).basic_auth(auth.0, Some(auth.1)).send().await.unwrap() }
    };
    assert_eq!(retry(OTHER, id.clone()).await.status(), StatusCode::NOT_FOUND, "only the owner or an admin");
    let r = retry(DEMO, id.clone()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v = app.settled(&id, Duration::from_secs(30)).await;
    // the second try meets the queued 422 and is rejected again; an admin re-queues it
    assert_eq!(v["state"], "rejected", "{v:#}");
    assert_eq!(v["attempts"], 2);
    assert_eq!(retry(ADMIN, id.clone()).await.status(), StatusCode::ACCEPTED);
    let v = app.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(v["state"], "submitted", "{v:#}");
    assert!(v.get("outcome").is_none());
    let results: Vec<&str> =
        v["attemptLog"].as_array().unwrap().iter().map(|a| a["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["rejected", "rejected", "submitted"]);
    assert_eq!(fake.state().await["identifiers"][identifier_of(&signed)]["creates"], 1);
    assert_eq!(retry(ADMIN, id.clone()).await.status(), StatusCode::CONFLICT);
    fake.validate_all().await;
}

#[tokio::test]
async fn tokens_are_refreshed_on_401_and_before_they_expire() {
    let fake = DhpFake::start(&[("TOKEN_TTL", "5")]);
    let app = SubmitApp::spawn(fake.config()).await;
    // the token endpoint fails once (invalid_client), then the DHP revokes the token once (401)
    fake.faults(
        json!({"token": [{"fault": "401", "error": "invalid_client"}], "queue": [{"fault": "401", "on": "submit"}]}),
    )
    .await;
    let input = example("003", "example");
    let id = app.create("003", &input).await;
    let signed = app.sign(&id, 1, &input, &attending(&input)).await;
    let v = app.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(v["state"], "submitted", "{v:#}");
    let log = v["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{v:#}");
    assert_eq!(log[0]["result"], "retry");
    assert_eq!(log[0]["detail"], "token endpoint: HTTP 401 invalid_client");
    // the 401 was answered by one refresh and one retry inside the same attempt
    assert_eq!(log[1]["result"], "submitted");
    let st = fake.state().await;
    assert_eq!(st["tokenRequests"], 3, "failed, first, refreshed after the 401: {st:#}");
    assert_eq!(st["faultsInjected"]["401"], 1);
    assert_eq!(st["identifiers"][identifier_of(&signed)]["creates"], 1);

    // after the token's lifetime a new one is fetched before use: no request is refused for it
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let input2 = example("096", "example");
    let id2 = app.create("096", &input2).await;
    app.sign(&id2, 1, &input2, &attending(&input2)).await;
    assert_eq!(app.settled(&id2, Duration::from_secs(30)).await["state"], "submitted");
    let st = fake.state().await;
    assert_eq!(st["tokenRequests"], 4, "{st:#}");
    assert_eq!(st["authFailures"], 0, "{st:#}");
    let m = metrics(&app).await;
    assert!(metric(&m, "hujjat_dhp_token_requests_total") >= 3.0, "{m}");
}

#[tokio::test]
async fn transaction_mode_and_patient_matching_off() {
    let fake = DhpFake::start(&[]);
    let cfg = DhpConfig { submit_mode: SubmitMode::Transaction, patient_matching: false, ..fake.config() };
    let app = SubmitApp::spawn(cfg).await;
    let input = example("096", "example");
    fake.patients(&[(input["patient"]["pinfl"].as_str().unwrap(), "p-1")]).await;
    // the first transaction is stored but the answer is lost; the retry's conditional create finds it
    fake.faults(json!({"queue": [{"fault": "drop", "on": "submit"}]})).await;
    let id = app.create("096", &input).await;
    let signed = app.sign(&id, 1, &input, &attending(&input)).await;
    let v = app.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(v["state"], "submitted", "{v:#}");
    assert!(v.get("patient").is_none(), "no patient search when matching is off: {v:#}");
    let results: Vec<&str> =
        v["attemptLog"].as_array().unwrap().iter().map(|a| a["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["retry", "existing"]);
    let dhp_id = v["dhp"]["id"].as_str().unwrap();
    assert_eq!(v["dhp"]["versionId"], "1");
    assert_eq!(fake.stored(dhp_id).await, signed, "the document inside the transaction is the signed bytes");
    let st = fake.state().await;
    assert!(st["byKind"]["patient"].is_null(), "{st:#}");
    assert_eq!(st["identifiers"][identifier_of(&signed)]["creates"], 1);
    fake.validate_all().await;
}

/// A node dies (SIGKILL) holding leases; another node leaves them alone until the lease runs out,
/// then takes them over. Both nodes are the real binary on the test database.
#[tokio::test]
async fn another_node_takes_over_after_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(dir.path()).await;
    let docs = seed_signed(&url, dir.path(), 6).await;
    let fake = DhpFake::start(&[]);
    // every submission hangs (the fake stores it, the answer never comes)
    fake.faults(json!({"random": {"rate": 1.0, "kinds": ["timeout"], "on": "submit", "params": {"holdMs": 60000}}}))
        .await;
    let mut env = fake.env();
    env.push(("HUJJAT_DHP_CONCURRENCY".into(), "8".into()));
    let db = pool(&url).await;
    let mut b = Node::start(&url, dir.path(), &env, "node-b");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let started: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM submission_attempts WHERE result = 'in-progress'")
            .fetch_one(&db)
            .await
            .unwrap();
        // leased, attempts recorded, and every POST has reached the DHP (which stores it and hangs)
        let posted = fake.state().await["byKind"]["submit"].as_u64().unwrap_or(0);
        if states(&db).await.get("sending") == Some(&6) && started == 6 && posted == 6 {
            break;
        }
        assert!(Instant::now() < end, "node B did not lease the documents: {}", b.log_tail());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.kill9();
    let owner_b: String = sqlx::query_scalar("SELECT MIN(lease_owner) FROM submissions").fetch_one(&db).await.unwrap();
    let lease_until: i64 = sqlx::query_scalar("SELECT MIN(lease_until) FROM submissions").fetch_one(&db).await.unwrap();
    fake.faults(json!({"random": null})).await;
    let a = Node::start(&url, dir.path(), &fake.env(), "node-a");
    // node A leaves B's leased items alone until the leases run out
    while chrono::Utc::now().timestamp_millis() < lease_until - 500 {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM submissions WHERE state = 'sending' AND lease_owner = $1")
                .bind(&owner_b)
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(n, 6, "node A took items before B's lease ran out: {}", a.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = Instant::now() + Duration::from_secs(30);
    while states(&db).await.get("submitted") != Some(&6) {
        assert!(Instant::now() < end, "node A did not take over: {:?}\n{}", states(&db).await, a.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = fake.state().await;
    for d in &docs {
        let e = &st["identifiers"][&d.identifier];
        assert_eq!(e["creates"], 1, "{st:#}");
        assert_eq!(e["sha256"][0], d.sha256.as_str());
    }
    // B's attempts are marked abandoned; A's found the copy B's request had left at the DHP
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT node, result FROM submission_attempts ORDER BY document_id, attempt")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 12, "{rows:?}");
    for pair in rows.chunks(2) {
        assert_eq!((pair[0].0.as_str(), pair[0].1.as_str()), (owner_b.as_str(), "abandoned"), "{rows:?}");
        assert_ne!(pair[1].0, owner_b);
        assert_eq!(pair[1].1, "existing", "{rows:?}");
    }
    fake.validate_all().await;
}

/// Signed documents with no submission (signed before the outbox existed, migration 0004) are
/// queued at start-up, at their current version; drafts, documents entered in error and documents
/// short of their required signatures are not; a second run queues nothing more.
#[tokio::test]
async fn signed_documents_without_a_submission_are_queued_at_start_up() {
    let app = SubmitApp::spawn(DhpConfig::default()).await;
    assert!(app.worker.is_none());
    let store = &app.state.docs.store;
    let input = example("096", "example");
    let signed = app.create("096", &input).await;
    app.sign(&signed, 1, &input, &attending(&input)).await;
    let withdrawn = app.create("096", &input).await;
    app.sign(&withdrawn, 1, &input, &attending(&input)).await;
    let draft = app.create("096", &input).await;
    // as before migration 0004: no submissions rows
    sqlx::query("DELETE FROM submissions").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE documents SET state = 'entered-in-error' WHERE id = $1")
        .bind(&withdrawn)
        .execute(&store.pool)
        .await
        .unwrap();
    let row = |id: String| {
        let pool = store.pool.clone();
        async move {
            sqlx::query("SELECT state, version, bundle_identifier FROM submissions WHERE document_id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .map(|r| {
                    use sqlx::Row;
                    (r.get::<String, _>("state"), r.get::<i64, _>("version"), r.get::<String, _>("bundle_identifier"))
                })
        }
    };

    assert_eq!(hujjat::submit::outbox::backfill(store).await.unwrap(), 1);
    let (state, version, ident) = row(signed.clone()).await.expect("queued");
    assert_eq!((state.as_str(), version), ("queued", 2));
    let want: String =
        sqlx::query_scalar("SELECT bundle_identifier FROM document_versions WHERE document_id = $1 AND version = 2")
            .bind(&signed)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(ident, want);
    assert!(row(withdrawn.clone()).await.is_none(), "entered in error");
    assert!(row(draft.clone()).await.is_none(), "draft");
    assert_eq!(hujjat::submit::outbox::backfill(store).await.unwrap(), 0, "idempotent");

    // a form that now needs two signatures: one is not enough
    sqlx::query("DELETE FROM submissions").execute(&store.pool).await.unwrap();
    let mut strict = hujjat::config::Config::for_tests(&app.database_url, app.dir.path().to_path_buf());
    strict.dhp.required_signatures = RequiredSignatures::parse("096=2").unwrap();
    let (_r, st) = hujjat::app::build(strict).await.unwrap();
    assert!(row(signed.clone()).await.is_none());
    drop(st);

    // and the service queues them when it starts
    let config = hujjat::config::Config::for_tests(&app.database_url, app.dir.path().to_path_buf());
    let (_router, _state) = hujjat::app::build(config).await.unwrap();
    assert_eq!(row(signed).await.map(|r| (r.0, r.1)), Some(("queued".to_string(), 2)));
}
