//! Issue 6: the audit trail. Every create, update, sign, verify, read, search, export, history,
//! lifecycle change and submission writes an R5 AuditEvent (who, what, when, outcome, client,
//! source address); the table is append-only (triggers); each record carries the hash of the one
//! before; `hujjat audit verify` names the first broken record after a row is changed, deleted or
//! re-hashed directly in the database; concurrent appends from two nodes form one chain.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use hujjat::archive::audit::{self, Agent, AuditEntry, Event};
use hujjat::store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;

/// `hujjat audit verify` against the test's database: (exit code, stdout).
fn audit_verify(app: &TestApp) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hujjat"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.database_url)
        .env("HUJJAT_DATA_DIR", dir.path())
        .env_remove("HUJJAT_MODE")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

async fn events(app: &TestApp, admin: &As, query: &str) -> Vec<Value> {
    let r = req(app, Method::GET, &format!("/AuditEvent?{query}"), admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["type"], "searchset");
    b["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect()
}

fn code(e: &Value) -> &str {
    e["code"]["coding"][0]["code"].as_str().unwrap()
}

#[tokio::test]
async fn every_access_leaves_a_chained_audit_event() {
    let app = TestApp::spawn().await;
    let a = Cred::demo();
    let mis = As::Client(a.clone());
    let admin_client = As::Client(client(&app, "admin-sys", &["admin"]).await);
    let input = example_003();

    // create, read, update (HTTP), sign (library, as the iframe does), verify, search, history, export
    let id = create(&app, &a, "003", &input).await;
    let loc = format!("/documents/{id}");
    assert_eq!(req(&app, Method::GET, &loc, &mis).send().await.unwrap().status(), StatusCode::OK);
    let r = req(&app, Method::PUT, &loc, &mis).header("if-match", "W/\"1\"").json(&input).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let signer = signer_for(&input, &attending(&input));
    app.state.docs.sign(&id, 2, &signer).await.unwrap();
    assert_eq!(req(&app, Method::GET, &format!("{loc}/$verify"), &mis).send().await.unwrap().status(), StatusCode::OK);
    let q = format!("type=document&composition.subject.identifier={}", input["patient"]["pinfl"].as_str().unwrap());
    assert_eq!(req(&app, Method::GET, &format!("/Bundle?{q}"), &mis).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(req(&app, Method::GET, &format!("{loc}/_history"), &mis).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(req(&app, Method::GET, &format!("{loc}/$export"), &mis).send().await.unwrap().status(), StatusCode::OK);
    // a submission, as the outbox reports it
    audit::record(
        &app.state.docs.store,
        AuditEntry::new(Event::Submit, Agent::system("outbox"))
            .client(&a.0)
            .document(&id, Some(3))
            .detail(json!({"dhp": "201"})),
    )
    .await
    .unwrap();
    // lifecycle: amend, then entered-in-error of the amendment
    let r = req(&app, Method::POST, &format!("{loc}/$amend"), &mis).json(&example_003()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let amendment = r.headers()["location"].to_str().unwrap().trim_start_matches("/documents/").to_string();
    let r = req(&app, Method::POST, &format!("/documents/{amendment}/$entered-in-error"), &admin_client)
        .json(&json!({"reason": "duplicate amendment"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // the trail of the document, newest first
    let evs = events(&app, &admin_client, &format!("entity=Bundle/{id}&_count=100")).await;
    let codes: Vec<&str> = evs.iter().map(code).collect();
    for c in ["create", "read", "update", "sign", "verify", "history", "export", "submit"] {
        assert!(codes.contains(&c), "no `{c}` event for the document: {codes:?}");
    }
    let mut seqs: Vec<i64> =
        evs.iter().map(|e| e["extension"][0]["valueInteger64"].as_str().unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    seqs.reverse();
    for e in &evs {
        assert_eq!(e["resourceType"], "AuditEvent");
        assert!(e["recorded"].as_str().unwrap().ends_with('Z'));
        assert_eq!(e["outcome"]["code"]["code"], "0");
        assert_eq!(e["entity"][0]["what"]["reference"], format!("Bundle/{id}"));
        assert!(["C", "R", "U", "E"].contains(&e["action"].as_str().unwrap()));
    }
    // who: the client for HTTP calls (with its source address), the practitioner for the signature
    let create_ev = evs.iter().find(|e| code(e) == "create").unwrap();
    assert_eq!(create_ev["agent"][0]["who"]["identifier"]["value"], a.0.as_str());
    assert_eq!(create_ev["agent"][0]["networkString"], "127.0.0.1");
    let sign_ev = evs.iter().find(|e| code(e) == "sign").unwrap();
    assert_eq!(sign_ev["agent"][0]["who"]["identifier"]["system"], "https://dhp.uz/fhir/core/sid/pid/uz/ni");
    assert_eq!(sign_ev["agent"][0]["who"]["identifier"]["value"], signer.pinfl.as_str());
    assert_eq!(sign_ev["agent"][1]["who"]["identifier"]["value"], a.0.as_str(), "the document's client");
    assert!(sign_ev.get("agent").unwrap()[0].get("networkString").is_none(), "signed outside a request");

    // the search event keeps the query; agent and date filters
    let searches = events(&app, &admin_client, "agent=demo-mis&subtype=search").await;
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0]["entity"][0]["detail"][0]["valueString"], q.as_str());
    assert!(events(&app, &admin_client, "agent=nobody").await.is_empty());
    let today = chrono::Utc::now().format("%Y").to_string();
    assert!(!events(&app, &admin_client, &format!("date=ge{today}&entity={id}")).await.is_empty());
    assert!(events(&app, &admin_client, &format!("date=lt2000-01-01&entity={id}")).await.is_empty());
    // lifecycle events are recorded for both documents
    let am = events(&app, &admin_client, &format!("entity={amendment}")).await;
    let am_codes: Vec<&str> = am.iter().map(code).collect();
    assert!(am_codes.contains(&"amend") && am_codes.contains(&"entered-in-error"), "{am_codes:?}");
    let eie = am.iter().find(|e| code(e) == "entered-in-error").unwrap();
    assert!(eie["entity"].to_string().contains("duplicate amendment"));
    // paging of /AuditEvent: no repeats
    let all = events(&app, &admin_client, "_count=1000").await;
    let mut url = "/AuditEvent?_count=7".to_string();
    let mut paged = Vec::new();
    loop {
        let b: Value = req(&app, Method::GET, &url, &admin_client).send().await.unwrap().json().await.unwrap();
        paged.extend(b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()));
        match b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(l) => {
                let u = l["url"].as_str().unwrap();
                url = u[u.find("/AuditEvent").unwrap()..].to_string();
            }
            None => break,
        }
    }
    // reading the trail is itself audited, so `all` saw fewer records than the walk may
    let all_ids: Vec<String> = all.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert!(all_ids.iter().all(|i| paged.contains(i)), "paging lost records");
    let set: std::collections::BTreeSet<&String> = paged.iter().collect();
    assert_eq!(set.len(), paged.len(), "paging repeated records");

    // the chain is intact
    let report = audit::verify_chain(&app.state.docs.store).await.unwrap();
    assert!(report.ok, "{report:?}");
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
}

async fn seed_events(app: &TestApp, n: usize) {
    for i in 0..n {
        audit::record(
            &app.state.docs.store,
            AuditEntry::new(Event::Read, Agent::system("test")).document(&format!("doc-{i}"), Some(1)),
        )
        .await
        .unwrap();
    }
}

/// Remove the append-only triggers, as only a database owner could.
async fn drop_guards(app: &TestApp) {
    let store = &app.state.docs.store;
    match store.backend {
        Backend::Sqlite => {
            for t in ["audit_events_no_update", "audit_events_no_delete"] {
                sqlx::query(&format!("DROP TRIGGER {t}")).execute(&store.pool).await.unwrap();
            }
        }
        Backend::Postgres => {
            sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER USER").execute(&store.pool).await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_table_refuses_updates_and_deletes() {
    let app = TestApp::spawn().await;
    seed_events(&app, 3).await;
    let pool = &app.state.docs.store.pool;
    assert!(sqlx::query("UPDATE audit_events SET agent_id = 'x' WHERE seq = 2").execute(pool).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(pool).await.is_err());
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 0, "{out}");
}

#[tokio::test]
async fn a_changed_row_is_found_by_audit_verify() {
    let app = TestApp::spawn().await;
    seed_events(&app, 10).await;
    drop_guards(&app).await;
    let pool = &app.state.docs.store.pool;
    let r = sqlx::query("UPDATE audit_events SET agent_id = 'someone-else' WHERE seq = 6").execute(pool).await.unwrap();
    assert_eq!(r.rows_affected(), 1);
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("seq 6") && out.contains("content does not match its hash"), "{out}");
}

#[tokio::test]
async fn a_rehashed_row_is_found_by_the_next_link() {
    let app = TestApp::spawn().await;
    seed_events(&app, 10).await;
    drop_guards(&app).await;
    let store = &app.state.docs.store;
    // change record 4 and give it a correct hash of its own: record 5's prev_hash no longer matches
    let mut rec = audit_record(&app, 4).await;
    rec.entity_id = Some("forged".into());
    rec.hash = rec.compute_hash();
    sqlx::query("UPDATE audit_events SET entity_id = $1, hash = $2 WHERE seq = 4")
        .bind(&rec.entity_id)
        .bind(&rec.hash)
        .execute(&store.pool)
        .await
        .unwrap();
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("seq 5") && out.contains("prev_hash"), "{out}");
}

async fn audit_record(app: &TestApp, seq: i64) -> audit::AuditRecord {
    let rows = sqlx::query(
        "SELECT seq, id, recorded, action, subtype, outcome, outcome_detail, agent_type, agent_id, agent_name, agent_role,
                client_id, source_address, entity_id, entity_version, query, detail, prev_hash, hash
         FROM audit_events WHERE seq = $1",
    )
    .bind(seq)
    .fetch_one(&app.state.docs.store.pool)
    .await
    .unwrap();
    use sqlx::Row;
    audit::AuditRecord {
        seq: rows.get("seq"),
        id: rows.get("id"),
        recorded: rows.get("recorded"),
        action: rows.get("action"),
        subtype: rows.get("subtype"),
        outcome: rows.get("outcome"),
        outcome_detail: rows.get("outcome_detail"),
        agent_type: rows.get("agent_type"),
        agent_id: rows.get("agent_id"),
        agent_name: rows.get("agent_name"),
        agent_role: rows.get("agent_role"),
        client_id: rows.get("client_id"),
        source_address: rows.get("source_address"),
        entity_id: rows.get("entity_id"),
        entity_version: rows.get("entity_version"),
        query: rows.get("query"),
        detail: rows.get("detail"),
        prev_hash: rows.get("prev_hash"),
        hash: rows.get("hash"),
    }
}

#[tokio::test]
async fn deleted_rows_are_found_in_the_middle_and_at_the_end() {
    let app = TestApp::spawn().await;
    seed_events(&app, 8).await;
    drop_guards(&app).await;
    let pool = &app.state.docs.store.pool;
    sqlx::query("DELETE FROM audit_events WHERE seq = 8").execute(pool).await.unwrap();
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("seq 8") && out.contains("removed"), "{out}");
    sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(pool).await.unwrap();
    let (code_, out) = audit_verify(&app);
    assert_eq!(code_, 1, "{out}");
    assert!(out.contains("seq 3") && out.contains("missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_two_nodes_form_one_chain() {
    let app = TestApp::spawn().await;
    // a second "node": its own pool on the same database
    let other = hujjat::store::Store::connect(&app.database_url).await.unwrap();
    let stores = [app.state.docs.store.clone(), other];
    let mut tasks = Vec::new();
    for i in 0..80 {
        let s = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            audit::record(
                &s,
                AuditEntry::new(Event::Read, Agent::system(&format!("node-{}", i % 2)))
                    .document(&format!("d{i}"), None),
            )
            .await
            .unwrap();
        }));
    }
    // and documents written meanwhile (their records are in the same transactions)
    let a = app.state.docs.store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap();
    for _ in 0..6 {
        let docs = app.state.docs.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            docs.create(&a, "003", example_003()).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = audit::verify_chain(&app.state.docs.store).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 86);
    assert_eq!(report.head_seq, 86);
}
