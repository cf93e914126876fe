//! The archive (issue 6): search, retrieval, offline-verifiable export, lifecycle (amend,
//! entered-in-error), the archive UI, and the hash-chained audit trail of every access.
//!
//! - [`access`]: principals (MIS client, archive/admin client, archivist and admin by PINFL) and
//!   what each sees; the seam to browser logins.
//! - [`audit`]: `AuditEvent` records, the chain, `GET /AuditEvent`, `hujjat audit verify`.
//! - [`search`]: `GET /Bundle?type=document&…` on indexed columns with keyset paging.
//! - [`export`]: `GET /documents/{id}/$export` (ZIP: bundle.json as stored, report.json, chain.pem, …).
//! - [`lifecycle`]: amendments (`relatesTo replaces`, old one superseded at the new one's first
//!   signature) and entered-in-error (a state change with a reason; stored bytes never change).
//! - [`api`] and [`ui`]: the HTTP endpoints and the server-rendered pages. People log in through
//!   the identity module's browser login ([`crate::iframe::login`]).
//!
//! Writes of document versions fill the search columns (`composition_at`, `organization`) in the
//! statement that writes the row, and call [`on_write`] inside their transaction: it records
//! amendment relations, supersedes a replaced document when its amendment is first signed, and
//! appends the audit record — all or nothing.

pub mod access;
pub mod api;
pub mod audit;
pub mod cli;
pub mod export;
pub mod lifecycle;
pub mod search;
pub mod ui;

use crate::error::AppError;
use crate::store::{Backend, Store};
use crate::web::AppState;
use audit::{AuditEntry, Event};
use axum::Router;
use serde_json::Value;
use sqlx::Row;

pub use access::Principal;

/// The archive's routes (merged into the service router). The browser session layer of the
/// identity module's login lets pages (and API calls made with a session cookie) find the person
/// and extends the session on use.
pub fn routes(state: &AppState) -> Router<AppState> {
    api::routes()
        .merge(ui::routes())
        .layer(crate::iframe::session_store::layer(state.docs.store.clone()))
        .layer(axum::middleware::map_response(crate::iframe::session_store::partitioned))
}

/// What a write of a document version carries for the archive.
#[derive(Debug, Clone)]
pub struct WriteHook {
    pub audit: AuditEntry,
    /// For a new amendment: the document it replaces.
    pub replaces: Option<String>,
}

impl WriteHook {
    pub fn audit(audit: AuditEntry) -> WriteHook {
        WriteHook { audit, replaces: None }
    }
}

/// The search columns of a stored version (start-up backfill): Composition.date (UTC) and the
/// organization's tax id, read as `Documents::compose` reads them for a new version.
pub fn index_columns(bundle: &str, input: &str) -> (String, Option<String>) {
    let b: Value = serde_json::from_str(bundle).unwrap_or(Value::Null);
    let i: Value = serde_json::from_str(input).unwrap_or(Value::Null);
    let (_, org) = crate::documents::input_fields(&i);
    (search::composition_at(crate::documents::composition_date(&b).as_deref()), org)
}

/// Called by the store inside the transaction that writes a document version or a signature (see
/// module docs). The search columns are written by the store's own INSERT / UPDATE of the row.
pub async fn on_write(conn: &mut sqlx::AnyConnection, id: &str, hook: Option<&WriteHook>) -> Result<(), AppError> {
    let Some(hook) = hook else { return Ok(()) };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Some(old) = &hook.replaces {
        sqlx::query("INSERT INTO document_relations (document_id, replaces_id, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(old)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
    }
    if hook.audit.event == Event::Sign {
        lifecycle::supersede_replaced(conn, id, &hook.audit, &now).await?;
    }
    // last: the audit chain head is the last row the transaction locks
    audit::append(conn, &hook.audit).await?;
    Ok(())
}

/// Start-up: append-only triggers on the audit table, and search columns of rows written before
/// this version (or by a node without it).
pub async fn prepare(store: &Store) -> anyhow::Result<()> {
    install_triggers(store).await?;
    backfill(store).await?;
    Ok(())
}

async fn install_triggers(store: &Store) -> anyhow::Result<()> {
    match store.backend {
        Backend::Sqlite => {
            for (name, op) in [("audit_events_no_update", "UPDATE"), ("audit_events_no_delete", "DELETE")] {
                sqlx::query(&format!(
                    "CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
                ))
                .execute(&store.pool)
                .await?;
            }
        }
        Backend::Postgres => {
            let exists = sqlx::query(
                "SELECT 1 AS x FROM pg_trigger WHERE tgname = 'audit_events_append_only' AND tgrelid = 'audit_events'::regclass",
            )
            .fetch_optional(&store.pool)
            .await?;
            if exists.is_none() {
                let r = async {
                    sqlx::query(
                        "CREATE OR REPLACE FUNCTION hujjat_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS \
                         $$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
                    )
                    .execute(&store.pool)
                    .await?;
                    sqlx::query(
                        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                         FOR EACH ROW EXECUTE FUNCTION hujjat_audit_append_only()",
                    )
                    .execute(&store.pool)
                    .await?;
                    sqlx::query(
                        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events \
                         FOR EACH STATEMENT EXECUTE FUNCTION hujjat_audit_append_only()",
                    )
                    .execute(&store.pool)
                    .await
                }
                .await;
                if let Err(e) = r {
                    // another node may be installing them at the same moment
                    tracing::warn!(error = %e, "installing the audit append-only triggers");
                }
            }
        }
    }
    Ok(())
}

async fn backfill(store: &Store) -> anyhow::Result<()> {
    loop {
        let rows = sqlx::query(
            "SELECT d.id, v.bundle, v.input FROM documents d
             JOIN document_versions v ON v.document_id = d.id AND v.version = d.version
             WHERE d.composition_at IS NULL LIMIT 200",
        )
        .fetch_all(&store.pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for r in &rows {
            let id: String = r.try_get("id")?;
            let (at, org) = index_columns(&r.try_get::<String, _>("bundle")?, &r.try_get::<String, _>("input")?);
            sqlx::query("UPDATE documents SET composition_at = $1, organization = $2 WHERE id = $3")
                .bind(at)
                .bind(org)
                .bind(&id)
                .execute(&store.pool)
                .await?;
        }
    }
}

/// A document as the archive shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchivedDocument {
    pub id: String,
    pub form: String,
    pub client_id: String,
    pub version: i64,
    /// draft, signed, submitted, rejected, superseded, entered-in-error
    pub state: String,
    pub patient_pinfl: Option<String>,
    pub composition_at: String,
    pub organization: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub async fn load(store: &Store, id: &str) -> Result<Option<ArchivedDocument>, AppError> {
    let r = sqlx::query(&format!(
        "SELECT d.id, d.form, d.client_id, d.version, d.patient_pinfl, d.composition_at, d.organization, d.created_at,
                d.updated_at, {} AS archive_state
         FROM documents d LEFT JOIN submissions s ON s.document_id = d.id WHERE d.id = $1",
        search::ARCHIVE_STATE
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await?;
    let Some(r) = r else { return Ok(None) };
    Ok(Some(ArchivedDocument {
        id: r.try_get("id")?,
        form: r.try_get("form")?,
        client_id: r.try_get("client_id")?,
        version: r.try_get("version")?,
        state: r.try_get("archive_state")?,
        patient_pinfl: r.try_get("patient_pinfl")?,
        composition_at: r.try_get::<Option<String>, _>("composition_at")?.unwrap_or_default(),
        organization: r.try_get("organization")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    }))
}

/// The document if the principal may see it; `404` otherwise (a refused attempt is audited).
pub async fn visible(store: &Store, who: &Principal, id: &str, event: Event) -> Result<ArchivedDocument, AppError> {
    match load(store, id).await? {
        Some(d) if who.sees(&d.client_id, d.organization.as_deref()) => Ok(d),
        found => {
            let e = AppError::NotFound(format!("no document {id}"));
            if found.is_some() {
                // someone asked for a document they may not see: worth a trace
                audit::record_failure(store, entry(who, event).document(id, None).failed_with(&e)).await;
            }
            Err(e)
        }
    }
}

/// An audit entry for this principal.
pub fn entry(who: &Principal, event: Event) -> AuditEntry {
    let mut e = AuditEntry::new(event, who.agent.clone());
    if let Some(c) = &who.client {
        e.client_id = Some(c.id.clone());
    }
    e
}
