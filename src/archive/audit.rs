//! The audit trail: one R5 `AuditEvent` per create, update, sign, verify, read, search, export,
//! submission and lifecycle change, append-only, each record carrying the hash of the one before.
//!
//! # Chain
//!
//! `audit_chain_head` is a single row (`seq`, `hash` of the last record). An append runs, inside the
//! caller's transaction: `UPDATE audit_chain_head SET seq = seq + 1` (on PostgreSQL a row lock that
//! serializes appenders of every node until commit; on SQLite the database write lock), reads the
//! head, writes the record with `prev_hash` = the head's hash, and stores the new hash in the head.
//! So records have gap-free `seq` numbers and one linear chain, whatever the concurrency.
//! The head is always the *last* row a transaction locks (no deadlocks with document rows).
//!
//! `hash` = SHA-256 (hex) of the RFC 8785 canonical JSON of every column but `hash` (see
//! [`AuditRecord::content`]). [`verify_chain`] walks the records in `seq` order and names the first
//! broken one: a changed record (its content no longer matches its hash), a replaced or re-hashed
//! record (the next record's `prev_hash` no longer matches), a missing record (a gap in `seq`) or a
//! removed tail (the head is ahead of the last record).
//!
//! # Append-only
//!
//! There is no UPDATE or DELETE of `audit_events` anywhere in the code; [`super::prepare`] also
//! installs triggers refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL). A database owner can
//! still drop the triggers: the hash chain is what detects that.
//!
//! # For other modules
//!
//! [`record`]`(&store, AuditEntry::new(Event::Submit, Agent::system("outbox")).document(id, v)…)`
//! appends in its own transaction; [`append`] appends inside a caller's transaction (preferred
//! when the audited change is a database write: both commit or neither does).

use crate::error::AppError;
use crate::store::clients::Client;
use crate::store::Store;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::net::SocketAddr;

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Code system of [`Event`] codes in `AuditEvent.code`.
pub const EVENT_SYSTEM: &str = "urn:hujjat:audit-event";
/// Identifier system of MIS clients in `AuditEvent.agent.who`.
pub const CLIENT_SYSTEM: &str = "urn:hujjat:client";

/// What happened. `code()` is the stored `subtype` and the `AuditEvent.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Create,
    Update,
    Sign,
    Verify,
    Read,
    History,
    Search,
    Export,
    Submit,
    Amend,
    Supersede,
    EnteredInError,
    AuditSearch,
    RoleGrant,
    RoleRevoke,
    Login,
    Logout,
}

impl Event {
    pub fn code(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Update => "update",
            Event::Sign => "sign",
            Event::Verify => "verify",
            Event::Read => "read",
            Event::History => "history",
            Event::Search => "search",
            Event::Export => "export",
            Event::Submit => "submit",
            Event::Amend => "amend",
            Event::Supersede => "supersede",
            Event::EnteredInError => "entered-in-error",
            Event::AuditSearch => "audit-search",
            Event::RoleGrant => "role-grant",
            Event::RoleRevoke => "role-revoke",
            Event::Login => "login",
            Event::Logout => "logout",
        }
    }

    /// `AuditEvent.action`: C create, R read, U update, D delete, E execute.
    pub fn action(self) -> &'static str {
        match self {
            Event::Create | Event::Amend | Event::RoleGrant => "C",
            Event::Read | Event::History | Event::Export => "R",
            Event::Update | Event::Sign | Event::Supersede | Event::EnteredInError => "U",
            Event::RoleRevoke => "D",
            Event::Verify | Event::Search | Event::Submit | Event::AuditSearch | Event::Login | Event::Logout => "E",
        }
    }

    /// The ISO 21089 lifecycle event, where one fits.
    fn lifecycle(self) -> Option<&'static str> {
        Some(match self {
            Event::Create => "originate",
            Event::Update | Event::Amend => "amend",
            Event::Sign => "attest",
            Event::Verify => "verify",
            Event::Read | Event::History | Event::Search => "access",
            Event::Export => "disclose",
            Event::Submit => "transmit",
            Event::Supersede => "deprecate",
            Event::EnteredInError => "cancel",
            _ => return None,
        })
    }

    pub fn parse(s: &str) -> Option<Event> {
        ALL_EVENTS.iter().copied().find(|e| e.code() == s)
    }
}

const ALL_EVENTS: &[Event] = &[
    Event::Create,
    Event::Update,
    Event::Sign,
    Event::Verify,
    Event::Read,
    Event::History,
    Event::Search,
    Event::Export,
    Event::Submit,
    Event::Amend,
    Event::Supersede,
    Event::EnteredInError,
    Event::AuditSearch,
    Event::RoleGrant,
    Event::RoleRevoke,
    Event::Login,
    Event::Logout,
];

/// `AuditEvent.outcome.code` (audit-event-outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused or failed because of the request (4xx).
    MinorFailure,
    /// Failed because of the service (5xx).
    SeriousFailure,
}

impl Outcome {
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
        }
    }
    pub fn of(e: &AppError) -> Outcome {
        if e.status().is_server_error() {
            Outcome::SeriousFailure
        } else {
            Outcome::MinorFailure
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// `client` (an MIS or archive system), `person` (by PINFL) or `system` (the service itself).
    pub kind: &'static str,
    /// Client id, PINFL, or the system component's name.
    pub id: String,
    pub name: Option<String>,
    /// The role the agent acted in (`mis`, `archivist`, `admin`, `practitioner`, …).
    pub role: Option<String>,
}

impl Agent {
    pub fn client(c: &Client) -> Agent {
        Agent { kind: "client", id: c.id.clone(), name: Some(c.name.clone()), role: Some("mis".into()) }
    }
    pub fn person(pinfl: &str, name: &str, role: &str) -> Agent {
        Agent { kind: "person", id: pinfl.into(), name: Some(name.into()), role: Some(role.into()) }
    }
    pub fn system(component: &str) -> Agent {
        Agent { kind: "system", id: component.into(), name: None, role: None }
    }
    pub fn with_role(mut self, role: &str) -> Agent {
        self.role = Some(role.into());
        self
    }
}

/// One event to append. Build with [`AuditEntry::new`] and the builder methods.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub event: Event,
    pub outcome: Outcome,
    pub outcome_detail: Option<String>,
    pub agent: Agent,
    /// The MIS client the document belongs to, or that made the request.
    pub client_id: Option<String>,
    /// Network address of the request; filled from the current request when `None`.
    pub source_address: Option<String>,
    pub entity_id: Option<String>,
    pub entity_version: Option<i64>,
    /// The query of a search (its parameters as sent).
    pub query: Option<String>,
    /// Further facts as a JSON object (never secrets).
    pub detail: Option<Value>,
}

impl AuditEntry {
    pub fn new(event: Event, agent: Agent) -> AuditEntry {
        AuditEntry {
            event,
            outcome: Outcome::Success,
            outcome_detail: None,
            client_id: if agent.kind == "client" { Some(agent.id.clone()) } else { None },
            agent,
            source_address: None,
            entity_id: None,
            entity_version: None,
            query: None,
            detail: None,
        }
    }
    pub fn document(mut self, id: &str, version: Option<i64>) -> Self {
        self.entity_id = Some(id.into());
        self.entity_version = version;
        self
    }
    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.into());
        self
    }
    pub fn query(mut self, q: &str) -> Self {
        self.query = Some(q.chars().take(4000).collect());
        self
    }
    pub fn detail(mut self, d: Value) -> Self {
        self.detail = Some(d);
        self
    }
    pub fn failed(mut self, outcome: Outcome, why: &str) -> Self {
        self.outcome = outcome;
        self.outcome_detail = Some(why.chars().take(1000).collect());
        self
    }
    pub fn failed_with(self, e: &AppError) -> Self {
        let why = e.issues().first().map(|i| i.diagnostics.clone()).unwrap_or_else(|| e.to_string());
        self.failed(Outcome::of(e), &why)
    }
}

/// A stored record (a row of `audit_events`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub recorded: String,
    pub action: String,
    pub subtype: String,
    pub outcome: String,
    pub outcome_detail: Option<String>,
    pub agent_type: String,
    pub agent_id: String,
    pub agent_name: Option<String>,
    pub agent_role: Option<String>,
    pub client_id: Option<String>,
    pub source_address: Option<String>,
    pub entity_id: Option<String>,
    pub entity_version: Option<i64>,
    pub query: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// What the hash covers: every column but `hash`, as RFC 8785 JSON.
    pub fn content(&self) -> Value {
        json!({
            "seq": self.seq,
            "id": self.id,
            "recorded": self.recorded,
            "action": self.action,
            "subtype": self.subtype,
            "outcome": self.outcome,
            "outcome_detail": self.outcome_detail,
            "agent_type": self.agent_type,
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "agent_role": self.agent_role,
            "client_id": self.client_id,
            "source_address": self.source_address,
            "entity_id": self.entity_id,
            "entity_version": self.entity_version,
            "query": self.query,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        })
    }

    pub fn compute_hash(&self) -> String {
        let bytes = crate::sign::jcs(&self.content()).unwrap_or_else(|_| self.content().to_string().into_bytes());
        hex::encode(Sha256::digest(&bytes))
    }

    /// The record as an R5 `AuditEvent`.
    pub fn to_fhir(&self, base: &str) -> Value {
        let event = Event::parse(&self.subtype);
        let mut codings = vec![json!({"system": EVENT_SYSTEM, "code": self.subtype})];
        if let Some(l) = event.and_then(Event::lifecycle) {
            codings.push(json!({"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "code": l}));
        }
        let who = match self.agent_type.as_str() {
            "person" => json!({"identifier": {"system": crate::sign::PINFL_SYSTEM, "value": self.agent_id}}),
            "client" => json!({"identifier": {"system": CLIENT_SYSTEM, "value": self.agent_id}}),
            _ => json!({"identifier": {"system": "urn:hujjat:system", "value": self.agent_id}}),
        };
        let mut who = who;
        if let Some(n) = &self.agent_name {
            who["display"] = json!(n);
        }
        let mut agent = json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": if self.agent_type == "system" { "dataprocessor" } else { "humanuser" }}]},
            "who": who,
            "requestor": self.agent_type != "system",
        });
        if let Some(r) = &self.agent_role {
            agent["role"] = json!([{"text": r}]);
        }
        if let Some(a) = &self.source_address {
            agent["networkString"] = json!(a);
        }
        let mut agents = vec![agent];
        if let Some(c) = self.client_id.as_ref().filter(|c| !(self.agent_type == "client" && **c == self.agent_id)) {
            agents.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "datacollector"}]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": c}},
                "requestor": false,
            }));
        }
        let mut outcome = json!({"code": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-outcome", "code": self.outcome}});
        if let Some(d) = &self.outcome_detail {
            outcome["detail"] = json!([{"text": d}]);
        }
        let mut entities = Vec::new();
        if let Some(id) = &self.entity_id {
            let mut e = json!({"what": {"reference": format!("Bundle/{id}")}});
            if let Some(v) = self.entity_version {
                e["detail"] = json!([{"type": {"text": "version"}, "valueInteger": v}]);
            }
            entities.push(e);
        }
        if let Some(q) = &self.query {
            use base64::Engine;
            entities.push(json!({
                "query": base64::engine::general_purpose::STANDARD.encode(q.as_bytes()),
                "detail": [{"type": {"text": "query"}, "valueString": q}],
            }));
        }
        if let Some(d) = &self.detail {
            entities.push(json!({"detail": [{"type": {"text": "detail"}, "valueString": d}]}));
        }
        let mut ev = json!({
            "resourceType": "AuditEvent",
            "id": self.id,
            "extension": [
                {"url": "urn:hujjat:audit-seq", "valueInteger64": self.seq.to_string()},
                {"url": "urn:hujjat:audit-prev-hash", "valueString": self.prev_hash},
                {"url": "urn:hujjat:audit-hash", "valueString": self.hash},
            ],
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}]}],
            "code": {"coding": codings},
            "action": self.action,
            "recorded": self.recorded,
            "outcome": outcome,
            "agent": agents,
            "source": {"observer": {"display": format!("hujjat {base}")}},
        });
        if !entities.is_empty() {
            ev["entity"] = Value::Array(entities);
        }
        ev
    }
}

/// Columns of `audit_events`, in one place.
pub(crate) const COLUMNS: &str = "seq, id, recorded, action, subtype, outcome, outcome_detail, agent_type, agent_id, \
     agent_name, agent_role, client_id, source_address, entity_id, entity_version, query, detail, prev_hash, hash";

pub(crate) fn row_to_record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        recorded: r.try_get("recorded")?,
        action: r.try_get("action")?,
        subtype: r.try_get("subtype")?,
        outcome: r.try_get("outcome")?,
        outcome_detail: r.try_get("outcome_detail")?,
        agent_type: r.try_get("agent_type")?,
        agent_id: r.try_get("agent_id")?,
        agent_name: r.try_get("agent_name")?,
        agent_role: r.try_get("agent_role")?,
        client_id: r.try_get("client_id")?,
        source_address: r.try_get("source_address")?,
        entity_id: r.try_get("entity_id")?,
        entity_version: r.try_get("entity_version")?,
        query: r.try_get("query")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Append one record inside the caller's transaction (see the module docs for the locking).
/// Call it as the last write of the transaction.
pub async fn append(conn: &mut sqlx::AnyConnection, e: &AuditEntry) -> Result<AuditRecord, AppError> {
    // one statement takes the next number and locks the head until the transaction ends
    let head = sqlx::query("UPDATE audit_chain_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the audit chain head is missing")))?;
    let mut rec = AuditRecord {
        seq: head.try_get("seq")?,
        id: uuid::Uuid::new_v4().to_string(),
        recorded: now(),
        action: e.event.action().into(),
        subtype: e.event.code().into(),
        outcome: e.outcome.code().into(),
        outcome_detail: e.outcome_detail.clone(),
        agent_type: e.agent.kind.into(),
        agent_id: e.agent.id.clone(),
        agent_name: e.agent.name.clone(),
        agent_role: e.agent.role.clone(),
        client_id: e.client_id.clone(),
        source_address: e.source_address.clone().or_else(current_source),
        entity_id: e.entity_id.clone(),
        entity_version: e.entity_version,
        query: e.query.clone(),
        detail: e.detail.as_ref().map(|d| d.to_string()),
        prev_hash: head.try_get("hash")?,
        hash: String::new(),
    };
    rec.hash = rec.compute_hash();
    sqlx::query(&format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(rec.seq)
    .bind(&rec.id)
    .bind(&rec.recorded)
    .bind(&rec.action)
    .bind(&rec.subtype)
    .bind(&rec.outcome)
    .bind(&rec.outcome_detail)
    .bind(&rec.agent_type)
    .bind(&rec.agent_id)
    .bind(&rec.agent_name)
    .bind(&rec.agent_role)
    .bind(&rec.client_id)
    .bind(&rec.source_address)
    .bind(&rec.entity_id)
    .bind(rec.entity_version)
    .bind(&rec.query)
    .bind(&rec.detail)
    .bind(&rec.prev_hash)
    .bind(&rec.hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_chain_head SET hash = $1 WHERE id = 1").bind(&rec.hash).execute(&mut *conn).await?;
    Ok(rec)
}

/// Append one record in its own transaction. Fails (and the caller must fail the request) when
/// the record cannot be written: an access that leaves no trace is refused.
pub async fn record(store: &Store, e: AuditEntry) -> Result<AuditRecord, AppError> {
    if let Some(writer) = &store.writer {
        // SQLite: in the writer's next group commit
        return writer.audit(e).await;
    }
    let _turn = store.write_turn().await;
    let mut tx = store.pool.begin().await?;
    let rec = append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(rec)
}

/// Best effort, for failures that are already being reported to the caller: a failing audit write
/// is logged (without patient data) and does not replace the original error.
pub async fn record_failure(store: &Store, e: AuditEntry) {
    let event = e.event.code();
    if let Err(err) = record(store, e).await {
        tracing::error!(event, error = %err, "could not write the audit record of a refused request");
    }
}

/// The result of [`verify_chain`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainReport {
    pub ok: bool,
    pub records: i64,
    pub head_seq: i64,
    /// The first broken record: `seq`, `id` (when the record exists) and what is wrong.
    pub first_broken: Option<Broken>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Broken {
    pub seq: i64,
    pub id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "audit record seq {} (id {id}): {}", self.seq, self.reason),
            None => write!(f, "audit record seq {}: {}", self.seq, self.reason),
        }
    }
}

/// Walk the chain from the first record and name the first broken one.
pub async fn verify_chain(store: &Store) -> Result<ChainReport, AppError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_chain_head WHERE id = 1").fetch_optional(&store.pool).await?;
    let Some(head) = head else {
        return Ok(ChainReport {
            ok: false,
            records: 0,
            head_seq: 0,
            first_broken: Some(Broken { seq: 0, id: None, reason: "the chain head row is missing".into() }),
        });
    };
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS.to_string();
    let mut count = 0i64;
    let broken = |seq, id: Option<String>, reason: String, count| {
        Ok(ChainReport { ok: false, records: count, head_seq, first_broken: Some(Broken { seq, id, reason }) })
    };
    loop {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT 1000"))
            .bind(expected_seq)
            .fetch_all(&store.pool)
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let rec = row_to_record(r)?;
            count += 1;
            if rec.seq != expected_seq {
                return broken(
                    expected_seq,
                    None,
                    format!(
                        "missing: the chain goes from seq {} to seq {} (records were deleted)",
                        expected_seq - 1,
                        rec.seq
                    ),
                    count,
                );
            }
            if rec.prev_hash != prev_hash {
                return broken(
                    rec.seq,
                    Some(rec.id),
                    format!(
                        "its prev_hash does not match the hash of the record before it (seq {}): that record was changed, replaced or re-hashed",
                        rec.seq - 1
                    ),
                    count,
                );
            }
            if rec.compute_hash() != rec.hash {
                return broken(
                    rec.seq,
                    Some(rec.id),
                    "its content does not match its hash: it was changed after it was written".into(),
                    count,
                );
            }
            prev_hash = rec.hash;
            expected_seq += 1;
        }
    }
    let last = expected_seq - 1;
    if last != head_seq || prev_hash != head_hash {
        return broken(
            last + 1,
            None,
            format!("the chain head says the last record is seq {head_seq} but the last record found is seq {last}: records at the end were removed or the head was changed"),
            count,
        );
    }
    Ok(ChainReport { ok: true, records: count, head_seq, first_broken: None })
}

// ---- the current request's source address, for records written deep inside services ----

/// What the audit needs to know about the request being served.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The peer address, and the `X-Forwarded-For` it sent (recorded as told, not trusted).
    pub source: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// Middleware: makes the request's source address available to every audit record written while
/// the request is served (also by services that do not see the request, e.g. `Documents::sign`).
pub async fn request_context(req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let fwd = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect::<String>());
    let source = match (peer, fwd) {
        (Some(p), Some(f)) => Some(format!("{p} (X-Forwarded-For: {f})")),
        (Some(p), None) => Some(p),
        (None, Some(f)) => Some(format!("unknown (X-Forwarded-For: {f})")),
        (None, None) => None,
    };
    REQUEST.scope(RequestInfo { source }, next.run(req)).await
}

/// The source address of the request being served, if any.
pub fn current_source() -> Option<String> {
    REQUEST.try_with(|r| r.source.clone()).ok().flatten()
}
