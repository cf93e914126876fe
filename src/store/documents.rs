//! Documents and their versions. A version's Bundle is stored as the exact bytes served and signed.

use super::Store;
use crate::error::AppError;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: String,
    pub form: String,
    pub client_id: String,
    pub version: i64,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub document_id: String,
    pub version: i64,
    pub bundle_identifier: String,
    pub bundle: String,
    pub input: String,
    pub created_at: String,
}

pub struct NewVersion<'a> {
    pub bundle_identifier: &'a str,
    pub input: &'a str,
    pub bundle: &'a str,
    pub patient_pinfl: Option<&'a str>,
    pub composition_date: Option<&'a str>,
    /// the organization's tax id (`organization.taxId` of the form input), an archive search column
    pub organization: Option<&'a str>,
}

impl NewVersion<'_> {
    /// The archive's search column for `Composition.date`, written with the row in the same
    /// statement.
    pub fn composition_at(&self) -> String {
        crate::archive::search::composition_at(self.composition_date)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Store version 1 of a new document. `Err(Conflict)` when the id exists.
    pub async fn create_document(
        &self,
        id: &str,
        form: &str,
        client_id: &str,
        v: &NewVersion<'_>,
    ) -> Result<(), AppError> {
        self.create_document_audited(id, form, client_id, v, None).await
    }

    /// [`Store::create_document`] with the archive's search columns, relation and audit record
    /// written in the same transaction (`crate::archive::on_write`).
    pub async fn create_document_audited(
        &self,
        id: &str,
        form: &str,
        client_id: &str,
        v: &NewVersion<'_>,
        archive: Option<&crate::archive::WriteHook>,
    ) -> Result<(), AppError> {
        let t = now();
        if let Some(writer) = &self.writer {
            // SQLite: the group commit of `store::writer`
            return writer.create(id, form, client_id, v, archive, t).await;
        }
        let _turn = self.bulk_write_turn().await;
        let mut tx = self.pool.begin().await?;
        insert_document(&mut tx, id, form, client_id, v, &t).await?;
        let _commit = self.commit_turn().await;
        crate::archive::on_write(&mut tx, id, archive).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a new version if the current one is `expected`; `Ok(None)` when it is not (stale).
    pub async fn update_document(&self, id: &str, expected: i64, v: &NewVersion<'_>) -> Result<Option<i64>, AppError> {
        self.update_document_audited(id, expected, v, None).await
    }

    /// [`Store::update_document`] with the archive's columns and audit record in the same transaction.
    pub async fn update_document_audited(
        &self,
        id: &str,
        expected: i64,
        v: &NewVersion<'_>,
        archive: Option<&crate::archive::WriteHook>,
    ) -> Result<Option<i64>, AppError> {
        let t = now();
        let _turn = self.bulk_write_turn().await;
        let mut tx = self.pool.begin().await?;
        // The conditional UPDATE is the lock: of two writers with the same If-Match exactly one
        // changes a row; the other sees 0 rows and gets 412.
        let r = sqlx::query(
            "UPDATE documents SET version = version + 1, updated_at = $1, patient_pinfl = $2, composition_date = $3,
                                  composition_at = $4, organization = $5
             WHERE id = $6 AND version = $7 AND state = 'draft'",
        )
        .bind(&t)
        .bind(v.patient_pinfl)
        .bind(v.composition_date)
        .bind(v.composition_at())
        .bind(v.organization)
        .bind(id)
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let next = expected + 1;
        insert_version(&mut tx, id, next, v, &t).await?;
        let _commit = self.commit_turn().await;
        crate::archive::on_write(&mut tx, id, archive).await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    pub async fn document(&self, id: &str) -> Result<Option<DocumentRow>, AppError> {
        let row = sqlx::query("SELECT id, form, client_id, version, state FROM documents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| -> Result<DocumentRow, sqlx::Error> {
                Ok(DocumentRow {
                    id: r.try_get("id")?,
                    form: r.try_get("form")?,
                    client_id: r.try_get("client_id")?,
                    version: r.try_get("version")?,
                    state: r.try_get("state")?,
                })
            })
            .transpose()?)
    }

    pub async fn version(&self, id: &str, version: i64) -> Result<Option<VersionRow>, AppError> {
        let row = sqlx::query(
            "SELECT document_id, version, bundle_identifier, bundle, input, created_at FROM document_versions
             WHERE document_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| -> Result<VersionRow, sqlx::Error> {
                Ok(VersionRow {
                    document_id: r.try_get("document_id")?,
                    version: r.try_get("version")?,
                    bundle_identifier: r.try_get("bundle_identifier")?,
                    bundle: r.try_get("bundle")?,
                    input: r.try_get("input")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .transpose()?)
    }

    pub async fn count_documents(&self) -> Result<i64, AppError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM documents").fetch_one(&self.pool).await?;
        Ok(r.try_get("n")?)
    }
}

/// The rows of version 1 of a new document; `Err(Conflict)`, with nothing written, when the id
/// exists.
pub(super) async fn insert_document(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    form: &str,
    client_id: &str,
    v: &NewVersion<'_>,
    t: &str,
) -> Result<(), AppError> {
    // DO NOTHING rather than a unique violation: in a group commit (`store::writer`) a failed
    // statement would abort the whole transaction on PostgreSQL
    let r = sqlx::query(
        "INSERT INTO documents (id, form, client_id, version, state, patient_pinfl, composition_date, created_at, updated_at,
                                composition_at, organization)
         VALUES ($1, $2, $3, 1, 'draft', $4, $5, $6, $6, $7, $8)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(form)
    .bind(client_id)
    .bind(v.patient_pinfl)
    .bind(v.composition_date)
    .bind(t)
    .bind(v.composition_at())
    .bind(v.organization)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "document {id} exists already; change it with PUT /documents/{id} and If-Match"
        )));
    }
    insert_version(conn, id, 1, v, t).await
}

async fn insert_version(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    v: &NewVersion<'_>,
    t: &str,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO document_versions (document_id, version, bundle_identifier, input, bundle, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(version)
    .bind(v.bundle_identifier)
    .bind(v.input)
    .bind(v.bundle)
    .bind(t)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What the store keeps of one signature.
pub struct NewSignature<'a> {
    pub signed_content_version: i64,
    pub record: &'a crate::sign::SignatureRecord,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureRow {
    pub version: i64,
    pub signed_content_version: i64,
    pub signer_pinfl: String,
    pub signer_name: String,
    pub signer_role: String,
    pub purpose: String,
    pub signed_at: String,
    pub certificate_serial: String,
    pub payload_sha256: String,
}

impl Store {
    /// Store a signed version if the current one is `expected`; `Ok(None)` when it is not.
    /// The document is frozen from here on (state `signed`): only further signatures are accepted.
    pub async fn add_signature(
        &self,
        id: &str,
        expected: i64,
        bundle_identifier: &str,
        input: &str,
        bundle: &str,
        sig: &NewSignature<'_>,
    ) -> Result<Option<i64>, AppError> {
        self.add_signature_audited(id, expected, bundle_identifier, input, bundle, sig, None).await
    }

    /// [`Store::add_signature`] with the archive's lifecycle step (an amendment's first signature
    /// supersedes the document it replaces) and audit record in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_signature_audited(
        &self,
        id: &str,
        expected: i64,
        bundle_identifier: &str,
        input: &str,
        bundle: &str,
        sig: &NewSignature<'_>,
        archive: Option<&crate::archive::WriteHook>,
    ) -> Result<Option<i64>, AppError> {
        let t = now();
        let _turn = self.bulk_write_turn().await;
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE documents SET version = version + 1, updated_at = $1, state = 'signed'
             WHERE id = $2 AND version = $3 AND state IN ('draft', 'signed')",
        )
        .bind(&t)
        .bind(id)
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let next = expected + 1;
        let v = NewVersion {
            bundle_identifier,
            input,
            bundle,
            patient_pinfl: None,
            composition_date: None,
            organization: None,
        };
        insert_version(&mut tx, id, next, &v, &t).await?;
        let rec = sig.record;
        sqlx::query(
            "INSERT INTO signatures (document_id, version, signed_content_version, signer_pinfl, signer_name, signer_role,
                purpose, signed_at, certificate_serial, certificate_sha256, leaf_pem, payload_sha256, provenance_full_url, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(id)
        .bind(next)
        .bind(sig.signed_content_version)
        .bind(&rec.pinfl)
        .bind(&rec.name)
        .bind(&rec.role)
        .bind(&rec.purpose)
        .bind(&rec.sig_t)
        .bind(&rec.certificate_serial)
        .bind(&rec.certificate_sha256)
        .bind(&rec.leaf_pem)
        .bind(&rec.payload_sha256)
        .bind(&rec.provenance_full_url)
        .bind(&t)
        .execute(&mut *tx)
        .await?;
        // queued for the DHP in this same transaction once the form's signatures are complete
        crate::submit::outbox::enqueue_if_complete(&mut tx, &self.required_signatures, id, next, bundle_identifier, &t)
            .await?;
        let _commit = self.commit_turn().await;
        crate::archive::on_write(&mut tx, id, archive).await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    pub async fn signatures(&self, id: &str) -> Result<Vec<SignatureRow>, AppError> {
        let rows = sqlx::query(
            "SELECT version, signed_content_version, signer_pinfl, signer_name, signer_role, purpose, signed_at,
                    certificate_serial, payload_sha256
             FROM signatures WHERE document_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| -> Result<SignatureRow, sqlx::Error> {
                Ok(SignatureRow {
                    version: r.try_get("version")?,
                    signed_content_version: r.try_get("signed_content_version")?,
                    signer_pinfl: r.try_get("signer_pinfl")?,
                    signer_name: r.try_get("signer_name")?,
                    signer_role: r.try_get("signer_role")?,
                    purpose: r.try_get("purpose")?,
                    signed_at: r.try_get("signed_at")?,
                    certificate_serial: r.try_get("certificate_serial")?,
                    payload_sha256: r.try_get("payload_sha256")?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }
}
