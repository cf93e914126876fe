//! The outbox tables: enqueue (inside the signing transaction), claim with a lease, record results.
//! Every update after a claim is fenced by the claim's lease token: a node whose lease ran out and
//! was taken over cannot overwrite what the new holder records.

use super::config::RequiredSignatures;
use crate::error::AppError;
use crate::store::{Backend, Store};
use serde_json::{json, Value};
use sqlx::Row;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Called inside the transaction that stores a signature (`Store::add_signature`): when the
/// document now has the signatures its form requires, queue the signed version. A signature added
/// later updates the queued version only while no attempt has started (the DHP then gets the
/// most-signed version); after that, the version already on its way stays the one submitted.
pub async fn enqueue_if_complete(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    required: &RequiredSignatures,
    id: &str,
    version: i64,
    bundle_identifier: &str,
    t: &str,
) -> Result<(), AppError> {
    let row = sqlx::query(
        "SELECT d.form, d.client_id, (SELECT COUNT(*) FROM signatures s WHERE s.document_id = d.id) AS n
         FROM documents d WHERE d.id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let form: String = row.try_get("form")?;
    let client_id: String = row.try_get("client_id")?;
    let n: i64 = row.try_get("n")?;
    if n < required.for_form(&form) {
        return Ok(());
    }
    let ms = now_ms();
    let r = sqlx::query(
        "INSERT INTO submissions (document_id, version, bundle_identifier, client_id, form, state, attempts, queued_ms,
             next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6, $7, $7)
         ON CONFLICT (document_id) DO NOTHING",
    )
    .bind(id)
    .bind(version)
    .bind(bundle_identifier)
    .bind(&client_id)
    .bind(&form)
    .bind(ms)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 0 {
        sqlx::query(
            "UPDATE submissions SET version = $1, bundle_identifier = $2, updated_at = $3
             WHERE document_id = $4 AND state = 'queued' AND attempts = 0",
        )
        .bind(version)
        .bind(bundle_identifier)
        .bind(t)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    } else {
        tracing::info!(document = %id, version, "queued for the DHP");
    }
    Ok(())
}

/// Queues the signed documents that have their form's required signatures but no submission:
/// documents signed before the outbox existed (migration 0004), or whose form's required count
/// was lowered since. Run at start-up, idempotent, safe with several nodes starting at once (each
/// insert re-checks everything in one statement and skips a document that is queued meanwhile).
/// Superseded, entered-in-error, draft and already submitted documents are never queued by it.
/// Returns how many documents it queued.
pub async fn backfill(store: &Store) -> Result<u64, AppError> {
    let candidates = sqlx::query(
        "SELECT d.id, d.form FROM documents d
         WHERE d.state = 'signed' AND NOT EXISTS (SELECT 1 FROM submissions s WHERE s.document_id = d.id)",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut queued = 0;
    for row in candidates {
        let id: String = row.try_get("id")?;
        let form: String = row.try_get("form")?;
        let (ms, t) = (now_ms(), now_text());
        let _turn = store.write_turn().await;
        // the version queued is the document's current one (the last signed version), read in
        // the same statement that inserts, so a signature stored meanwhile is not undone
        let r = sqlx::query(
            "INSERT INTO submissions (document_id, version, bundle_identifier, client_id, form, state, attempts,
                 queued_ms, next_attempt_at, created_at, updated_at)
             SELECT d.id, d.version, v.bundle_identifier, d.client_id, d.form, 'queued', 0, $2, $2, $3, $3
             FROM documents d JOIN document_versions v ON v.document_id = d.id AND v.version = d.version
             WHERE d.id = $1 AND d.state = 'signed'
               AND (SELECT COUNT(*) FROM signatures s WHERE s.document_id = d.id) >= $4
             ON CONFLICT (document_id) DO NOTHING",
        )
        .bind(&id)
        .bind(ms)
        .bind(&t)
        .bind(store.required_signatures.for_form(&form))
        .execute(&store.pool)
        .await?;
        if r.rows_affected() > 0 {
            tracing::info!(document = %id, "queued for the DHP (signed with no submission: backfill)");
            queued += 1;
        }
    }
    if queued > 0 {
        tracing::info!(queued, "signed documents without a submission were queued for the DHP");
    }
    Ok(queued)
}

/// One claimed item.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub document_id: String,
    pub version: i64,
    pub attempt: i64,
    pub lease_token: String,
    pub patient_match: Option<String>,
    pub dhp_patient_id: Option<String>,
}

/// What an attempt ended in.
#[derive(Debug, Clone)]
pub enum Outcome {
    Submitted { existing: bool, status: u16, id: Option<String>, location: Option<String>, version: Option<String> },
    Retry { status: Option<u16>, detail: String, next_ms: i64 },
    Rejected { status: u16, detail: String, outcome: String },
}

impl Outcome {
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Submitted { existing: false, .. } => "submitted",
            Outcome::Submitted { existing: true, .. } => "existing",
            Outcome::Retry { .. } => "retry",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

const DUE: &str =
    "((state IN ('queued', 'retrying') AND next_attempt_at <= $4) OR (state = 'sending' AND lease_until < $4))";

impl Store {
    /// Lease up to `limit` due items (queued, retrying and due, or sending with an expired lease).
    /// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so nodes never wait for or take each other's rows; the
    /// outer condition is re-checked on the locked row. SQLite has one writer at a time.
    pub async fn claim_submissions(&self, node: &str, lease_ms: i64, limit: i64) -> Result<Vec<Claimed>, AppError> {
        let now = now_ms();
        let token = uuid::Uuid::new_v4().to_string();
        let lock = if self.backend == Backend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE submissions SET state = 'sending', lease_owner = $1, lease_token = $2, lease_until = $3,
                 attempts = attempts + 1, updated_at = $5
             WHERE document_id IN (SELECT document_id FROM submissions WHERE {DUE} ORDER BY next_attempt_at LIMIT $6 {lock})
               AND {DUE}
             RETURNING document_id, version, attempts, patient_match, dhp_patient_id"
        );
        let rows = sqlx::query(&sql)
            .bind(node)
            .bind(&token)
            .bind(now + lease_ms)
            .bind(now)
            .bind(now_text())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let c = Claimed {
                document_id: r.try_get("document_id")?,
                version: r.try_get("version")?,
                attempt: r.try_get("attempts")?,
                lease_token: token.clone(),
                patient_match: r.try_get("patient_match")?,
                dhp_patient_id: r.try_get("dhp_patient_id")?,
            };
            // earlier attempts that never finished: their node died or lost the lease
            sqlx::query(
                "UPDATE submission_attempts SET result = 'abandoned', detail = 'the node working on it stopped or its lease ran out'
                 WHERE document_id = $1 AND result = 'in-progress' AND attempt < $2",
            )
            .bind(&c.document_id)
            .bind(c.attempt)
            .execute(&self.pool)
            .await?;
            sqlx::query(
                "INSERT INTO submission_attempts (document_id, attempt, node, started_at, result)
                 VALUES ($1, $2, $3, $4, 'in-progress') ON CONFLICT (document_id, attempt) DO NOTHING",
            )
            .bind(&c.document_id)
            .bind(c.attempt)
            .bind(node)
            .bind(now_text())
            .execute(&self.pool)
            .await?;
            out.push(c);
        }
        Ok(out)
    }

    /// The bytes to send (exactly as stored and signed) and the patient's PINFL (for matching).
    pub async fn submission_payload(&self, id: &str, version: i64) -> Result<(String, Option<String>), AppError> {
        let r = sqlx::query(
            "SELECT v.bundle, d.patient_pinfl FROM document_versions v JOIN documents d ON d.id = v.document_id
             WHERE v.document_id = $1 AND v.version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("bundle")?, r.try_get("patient_pinfl")?))
    }

    /// Record the patient match (fenced); later attempts do not search again.
    pub async fn record_patient_match(
        &self,
        c: &Claimed,
        result: &str,
        patient_id: Option<&str>,
    ) -> Result<bool, AppError> {
        let r = sqlx::query(
            "UPDATE submissions SET patient_match = $1, dhp_patient_id = $2, updated_at = $3
             WHERE document_id = $4 AND lease_token = $5",
        )
        .bind(result)
        .bind(patient_id)
        .bind(now_text())
        .bind(&c.document_id)
        .bind(&c.lease_token)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Record an attempt's end (fenced). `false` when the lease was lost meanwhile.
    pub async fn finish_attempt(&self, c: &Claimed, outcome: &Outcome, started_ms: i64) -> Result<bool, AppError> {
        let t = now_text();
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let r =
            match outcome {
                Outcome::Submitted { id, location, version, .. } => {
                    sqlx::query(
                        "UPDATE submissions SET state = 'submitted', dhp_id = $1, dhp_location = $2, dhp_version = $3,
                         submitted_at = $4, updated_at = $4, lease_owner = NULL, lease_token = NULL, lease_until = NULL,
                         last_error = NULL, outcome = NULL
                     WHERE document_id = $5 AND lease_token = $6",
                    )
                    .bind(id.as_deref())
                    .bind(location.as_deref())
                    .bind(version.as_deref())
                    .bind(&t)
                    .bind(&c.document_id)
                    .bind(&c.lease_token)
                    .execute(&mut *tx)
                    .await?
                }
                Outcome::Retry { detail, next_ms, .. } => sqlx::query(
                    "UPDATE submissions SET state = 'retrying', next_attempt_at = $1, last_error = $2, updated_at = $3,
                         lease_owner = NULL, lease_token = NULL, lease_until = NULL
                     WHERE document_id = $4 AND lease_token = $5",
                )
                .bind(*next_ms)
                .bind(detail)
                .bind(&t)
                .bind(&c.document_id)
                .bind(&c.lease_token)
                .execute(&mut *tx)
                .await?,
                Outcome::Rejected { detail, outcome, .. } => {
                    sqlx::query(
                        "UPDATE submissions SET state = 'rejected', outcome = $1, last_error = $2, updated_at = $3,
                         lease_owner = NULL, lease_token = NULL, lease_until = NULL
                     WHERE document_id = $4 AND lease_token = $5",
                    )
                    .bind(outcome)
                    .bind(detail)
                    .bind(&t)
                    .bind(&c.document_id)
                    .bind(&c.lease_token)
                    .execute(&mut *tx)
                    .await?
                }
            };
        let owned = r.rows_affected() == 1;
        let (status, detail, oo, retry_at): (Option<i64>, Option<String>, Option<&str>, Option<String>) = match outcome
        {
            Outcome::Submitted { status, location, id, .. } => {
                (Some(*status as i64), Some(location.clone().or_else(|| id.clone()).unwrap_or_default()), None, None)
            }
            Outcome::Retry { status, detail, next_ms } => {
                (status.map(|s| s as i64), Some(detail.clone()), None, Some(ms_text(*next_ms)))
            }
            Outcome::Rejected { status, detail, outcome } => {
                (Some(*status as i64), Some(detail.clone()), Some(outcome.as_str()), None)
            }
        };
        let result = if owned { outcome.result() } else { "abandoned" };
        let detail = if owned {
            detail
        } else {
            Some(format!("finished after the lease ran out ({}): {}", outcome.result(), detail.unwrap_or_default()))
        };
        sqlx::query(
            "UPDATE submission_attempts SET finished_at = $1, duration_ms = $2, result = $3, http_status = $4, detail = $5,
                 outcome = $6, retry_at = $7
             WHERE document_id = $8 AND attempt = $9",
        )
        .bind(&t)
        .bind(now_ms() - started_ms)
        .bind(result)
        .bind(status)
        .bind(detail)
        .bind(oo)
        .bind(retry_at)
        .bind(&c.document_id)
        .bind(c.attempt)
        .execute(&mut *tx)
        .await?;
        if owned {
            // every submission attempt that counted leaves a trace in the audit chain (issue 6),
            // in the same transaction as its result; the chain head is the last write
            use crate::archive::audit::{self, Agent, AuditEntry, Event};
            let mut e = AuditEntry::new(Event::Submit, Agent::system("dhp-outbox"))
                .document(&c.document_id, Some(c.version))
                .detail(json!({"attempt": c.attempt, "result": outcome.result(), "httpStatus": status}));
            match outcome {
                Outcome::Submitted { .. } => {}
                Outcome::Retry { .. } => {
                    e = e.failed(audit::Outcome::SeriousFailure, "the DHP did not accept it yet; retrying")
                }
                Outcome::Rejected { .. } => e = e.failed(audit::Outcome::MinorFailure, "the DHP rejected the document"),
            }
            audit::append(&mut tx, &e).await?;
        }
        tx.commit().await?;
        Ok(owned)
    }

    /// The submission of a document with every attempt, as JSON; `None` when it is not queued.
    pub async fn submission_view(&self, id: &str) -> Result<Option<Value>, AppError> {
        let Some(r) = sqlx::query(
            "SELECT document_id, version, bundle_identifier, state, attempts, queued_ms, next_attempt_at, lease_owner,
                    lease_until, patient_match, dhp_patient_id, dhp_id, dhp_location, dhp_version, outcome, last_error,
                    created_at, updated_at, submitted_at
             FROM submissions WHERE document_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let state: String = r.try_get("state")?;
        let text = |k: &str| -> Result<Option<String>, sqlx::Error> { r.try_get::<Option<String>, _>(k) };
        let outcome: Option<Value> = text("outcome")?.and_then(|s| serde_json::from_str(&s).ok());
        let mut v = json!({
            "document": r.try_get::<String, _>("document_id")?,
            "version": r.try_get::<i64, _>("version")?,
            "bundleIdentifier": r.try_get::<String, _>("bundle_identifier")?,
            "state": state,
            "attempts": r.try_get::<i64, _>("attempts")?,
            "queuedAt": text("created_at")?,
            "updatedAt": text("updated_at")?,
        });
        let o = v.as_object_mut().expect("object");
        match state.as_str() {
            "retrying" | "queued" => {
                o.insert("nextAttemptAt".into(), json!(ms_text(r.try_get("next_attempt_at")?)));
            }
            "sending" => {
                o.insert("node".into(), json!(text("lease_owner")?));
                o.insert("leaseUntil".into(), json!(r.try_get::<Option<i64>, _>("lease_until")?.map(ms_text)));
            }
            "submitted" => {
                o.insert("submittedAt".into(), json!(text("submitted_at")?));
                o.insert(
                    "dhp".into(),
                    json!({"id": text("dhp_id")?, "location": text("dhp_location")?, "versionId": text("dhp_version")?}),
                );
            }
            _ => {}
        }
        if let Some(e) = text("last_error")? {
            o.insert("lastError".into(), json!(e));
        }
        if let Some(oo) = outcome {
            o.insert("outcome".into(), oo);
        }
        if let Some(m) = text("patient_match")? {
            o.insert("patient".into(), json!({"match": m, "dhpPatientId": text("dhp_patient_id")?}));
        }
        let rows = sqlx::query(
            "SELECT attempt, node, started_at, finished_at, duration_ms, result, http_status, detail, outcome, retry_at
             FROM submission_attempts WHERE document_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut list = Vec::with_capacity(rows.len());
        for a in rows {
            let mut x = json!({
                "attempt": a.try_get::<i64, _>("attempt")?,
                "node": a.try_get::<String, _>("node")?,
                "startedAt": a.try_get::<String, _>("started_at")?,
                "result": a.try_get::<String, _>("result")?,
            });
            let xo = x.as_object_mut().expect("object");
            for (k, col) in [("finishedAt", "finished_at"), ("detail", "detail"), ("retryAt", "retry_at")] {
                if let Some(s) = a.try_get::<Option<String>, _>(col)? {
                    xo.insert(k.into(), json!(s));
                }
            }
            for (k, col) in [("durationMs", "duration_ms"), ("httpStatus", "http_status")] {
                if let Some(n) = a.try_get::<Option<i64>, _>(col)? {
                    xo.insert(k.into(), json!(n));
                }
            }
            if let Some(s) = a.try_get::<Option<String>, _>("outcome")? {
                xo.insert("outcome".into(), serde_json::from_str(&s).unwrap_or(Value::String(s)));
            }
            list.push(x);
        }
        o.insert("attemptLog".into(), Value::Array(list));
        Ok(Some(v))
    }

    /// Re-queue a rejected document, or make a retrying one due now. `Ok(false)` in other states.
    pub async fn requeue_submission(&self, id: &str) -> Result<bool, AppError> {
        let r = sqlx::query(
            "UPDATE submissions SET state = 'queued', next_attempt_at = $1, outcome = NULL, updated_at = $2
             WHERE document_id = $3 AND state IN ('rejected', 'retrying')",
        )
        .bind(now_ms())
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// (state, count, oldest queued_ms) for every state present.
    pub async fn submission_stats(&self) -> Result<Vec<(String, i64, i64)>, AppError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, MIN(queued_ms) AS oldest FROM submissions GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?, r.try_get::<Option<i64>, _>("oldest")?.unwrap_or(0))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The soonest `next_attempt_at` of a waiting item, so an idle worker can sleep until then.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, AppError> {
        let r = sqlx::query(
            "SELECT MIN(CASE WHEN state = 'sending' THEN lease_until ELSE next_attempt_at END) AS t
             FROM submissions WHERE state IN ('queued', 'retrying', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get::<Option<i64>, _>("t")?)
    }
}
