//! Document lifecycle after signing (DHP document statuses, `dhp-platform.md` §5.8). Nothing is
//! ever physically deleted and stored bytes never change.
//!
//! - **Amend**: the owning MIS client posts new form data for a signed document
//!   (`POST /documents/{id}/$amend`). The result is a *new* draft document whose Composition has
//!   `relatesTo = [{type: replaces, resourceReference: {identifier: <old Composition identifier>}}]`;
//!   it is changed with `PUT` like any draft (the relation is kept) and must be signed again. When it
//!   gets its first signature the old document becomes `superseded`, in the same transaction. One
//!   open amendment per document at a time. The Composition keeps `status = final` (the Form
//!   003/096 profiles fix it); the amendment is expressed by `relatesTo`.
//! - **Entered in error**: the owning MIS client or an admin marks a document (any state) with a
//!   reason (`POST /documents/{id}/$entered-in-error`). Its state changes, it can no longer be
//!   changed or signed, and search shows it with that state.

use super::access::{Kind, Principal};
use super::audit::{self, Agent, AuditEntry, Event};
use super::{entry, WriteHook};
use crate::documents::{Documents, Stored};
use crate::error::{AppError, Issue};
use crate::store::clients::Client;
use crate::store::Store;
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    event: &str,
    previous: &str,
    new: &str,
    reason: Option<&str>,
    related: Option<&str>,
    agent: &Agent,
    at: &str,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO document_lifecycle (id, document_id, event, previous_state, new_state, reason, related_id, agent, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(id)
    .bind(event)
    .bind(previous)
    .bind(new)
    .bind(reason)
    .bind(related)
    .bind(format!("{}:{}", agent.kind, agent.id))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inside the transaction of a signature of `id`: when `id` is an amendment, the document it
/// replaces becomes `superseded` (unless it is already superseded or entered in error).
pub(crate) async fn supersede_replaced(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    sign: &AuditEntry,
    at: &str,
) -> Result<(), AppError> {
    let row = sqlx::query(
        "SELECT r.replaces_id, d.state FROM document_relations r JOIN documents d ON d.id = r.replaces_id WHERE r.document_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let old: String = row.try_get("replaces_id")?;
    let state: String = row.try_get("state")?;
    if state == "superseded" || state == "entered-in-error" {
        return Ok(());
    }
    let r = sqlx::query("UPDATE documents SET state = 'superseded', updated_at = $1 WHERE id = $2 AND state = $3")
        .bind(at)
        .bind(&old)
        .bind(&state)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(());
    }
    insert_event(conn, &old, "superseded", &state, "superseded", None, Some(id), &sign.agent, at).await?;
    let mut e = AuditEntry::new(Event::Supersede, sign.agent.clone())
        .document(&old, None)
        .detail(json!({"replacedBy": id, "previousState": state}));
    e.client_id = sign.client_id.clone();
    audit::append(conn, &e).await?;
    Ok(())
}

/// The business identifier of a stored document's Composition (its first identifier).
async fn composition_identifier(store: &Store, id: &str, version: i64) -> Result<Value, AppError> {
    let v = store
        .version(id, version)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("document {id} has no version {version}")))?;
    let b: Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
    Ok(b.pointer("/entry/0/resource/identifier/0")
        .cloned()
        .unwrap_or_else(|| json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}")})))
}

/// The document an amendment replaces, if `id` is one.
pub async fn replaces(store: &Store, id: &str) -> Result<Option<String>, AppError> {
    let r = sqlx::query("SELECT replaces_id FROM document_relations WHERE document_id = $1")
        .bind(id)
        .fetch_optional(&store.pool)
        .await?;
    Ok(r.map(|r| r.try_get("replaces_id")).transpose()?)
}

/// The amendments of a document (newest last).
pub async fn replaced_by(store: &Store, id: &str) -> Result<Vec<String>, AppError> {
    let rows = sqlx::query("SELECT document_id FROM document_relations WHERE replaces_id = $1 ORDER BY created_at")
        .bind(id)
        .fetch_all(&store.pool)
        .await?;
    Ok(rows.iter().map(|r| r.try_get("document_id")).collect::<Result<_, _>>()?)
}

/// For `Documents::update` of a draft: the identifier of the Composition an amendment replaces
/// (`Documents::compose` gives the recomposed Bundle its `relatesTo replaces` again), or `None`
/// when the document is no amendment.
pub async fn replaced_composition(store: &Store, id: &str) -> Result<Option<Value>, AppError> {
    let Some(old) = replaces(store, id).await? else { return Ok(None) };
    let old_doc = store.document(&old).await?.ok_or_else(|| AppError::Internal(anyhow::anyhow!("lost relation")))?;
    Ok(Some(composition_identifier(store, &old, old_doc.version).await?))
}

/// `POST /documents/{id}/$amend`: a new draft document replacing a signed one.
pub async fn amend(docs: &Documents, client: &Client, old_id: &str, body: Value) -> Result<Stored, AppError> {
    let old = docs.owned(client, old_id).await?;
    let archived =
        super::load(&docs.store, old_id).await?.ok_or_else(|| AppError::NotFound(format!("no document {old_id}")))?;
    match archived.state.as_str() {
        "signed" | "submitted" | "rejected" => {}
        "draft" => {
            return Err(AppError::Conflict(format!(
            "document {old_id} is a draft: change it with PUT /documents/{old_id}; only signed documents are amended"
        )))
        }
        s => return Err(AppError::Conflict(format!("document {old_id} is {s}: it cannot be amended"))),
    }
    let open = sqlx::query(
        "SELECT r.document_id FROM document_relations r JOIN documents d ON d.id = r.document_id
         WHERE r.replaces_id = $1 AND d.state <> 'entered-in-error'",
    )
    .bind(old_id)
    .fetch_optional(&docs.store.pool)
    .await?;
    if let Some(r) = open {
        let a: String = r.try_get("document_id")?;
        return Err(AppError::Conflict(format!(
            "document {old_id} already has an amendment, {a}: change and sign that one (or mark it entered-in-error first)"
        )));
    }
    let input = docs.form_input(&old.form, body)?;
    let id = match input.get("documentId").and_then(Value::as_str) {
        Some(s) => Uuid::parse_str(s).map_err(|_| {
            AppError::Invalid(vec![Issue::new("value", Some("documentId".to_string()), "documentId must be a UUID")])
        })?,
        None => Uuid::new_v4(),
    };
    if id.to_string() == old_id {
        return Err(AppError::Invalid(vec![Issue::new(
            "value",
            Some("documentId".to_string()),
            "an amendment is a new document: send a new documentId or none",
        )]));
    }
    let ident = composition_identifier(&docs.store, old_id, old.version).await?;
    let c = docs.compose(&old.form, input, id, Some(&ident))?;
    let hook = WriteHook {
        audit: AuditEntry::new(Event::Amend, Agent::client(client))
            .document(&id.to_string(), Some(1))
            .detail(json!({"replaces": old_id})),
        replaces: Some(old_id.to_string()),
    };
    docs.store.create_document_audited(&id.to_string(), &old.form, &client.id, &c.version(), Some(&hook)).await?;
    tracing::info!(document = %id, replaces = %old_id, client = %client.id, "amendment created");
    Ok(Stored { id: id.to_string(), version: 1, bundle: c.text })
}

/// `POST /documents/{id}/$entered-in-error`: the owning MIS client or an admin, with a reason.
pub async fn entered_in_error(store: &Store, who: &Principal, id: &str, reason: &str) -> Result<Value, AppError> {
    if !matches!(who.kind, Kind::MisClient | Kind::Admin | Kind::AdminClient) {
        let e = AppError::Forbidden("only the document's MIS client or an admin can mark it entered-in-error".into());
        audit::record_failure(store, entry(who, Event::EnteredInError).document(id, None).failed_with(&e)).await;
        return Err(e);
    }
    let doc = super::visible(store, who, id, Event::EnteredInError).await?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::Invalid(vec![Issue::new(
            "required",
            Some("reason".to_string()),
            "give the reason (1 to 1000 characters)",
        )]));
    }
    if doc.state == "entered-in-error" {
        return Err(AppError::Conflict(format!("document {id} is already entered-in-error")));
    }
    let raw = store.document(id).await?.ok_or_else(|| AppError::NotFound(format!("no document {id}")))?;
    let at = now();
    let _turn = store.write_turn().await;
    let mut tx = store.pool.begin().await?;
    let r =
        sqlx::query("UPDATE documents SET state = 'entered-in-error', updated_at = $1 WHERE id = $2 AND state = $3")
            .bind(&at)
            .bind(id)
            .bind(&raw.state)
            .execute(&mut *tx)
            .await?;
    if r.rows_affected() == 0 {
        tx.rollback().await?;
        return Err(AppError::Conflict(format!("document {id} changed meanwhile; look at it again")));
    }
    insert_event(&mut tx, id, "entered-in-error", &doc.state, "entered-in-error", Some(reason), None, &who.agent, &at)
        .await?;
    let e = entry(who, Event::EnteredInError)
        .client(&doc.client_id)
        .document(id, Some(doc.version))
        .detail(json!({"reason": reason, "previousState": doc.state}));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    tracing::info!(document = %id, "document marked entered-in-error");
    Ok(json!({"document": id, "state": "entered-in-error", "previousState": doc.state, "reason": reason, "at": at}))
}

/// One lifecycle event, for the document view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LifecycleEvent {
    pub event: String,
    pub previous_state: String,
    pub new_state: String,
    pub reason: Option<String>,
    pub related_id: Option<String>,
    pub agent: String,
    pub at: String,
}

pub async fn events(store: &Store, id: &str) -> Result<Vec<LifecycleEvent>, AppError> {
    let rows = sqlx::query(
        "SELECT event, previous_state, new_state, reason, related_id, agent, at FROM document_lifecycle
         WHERE document_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|r| -> Result<LifecycleEvent, sqlx::Error> {
            Ok(LifecycleEvent {
                event: r.try_get("event")?,
                previous_state: r.try_get("previous_state")?,
                new_state: r.try_get("new_state")?,
                reason: r.try_get("reason")?,
                related_id: r.try_get("related_id")?,
                agent: r.try_get("agent")?,
                at: r.try_get("at")?,
            })
        })
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}
