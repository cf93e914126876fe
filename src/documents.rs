//! The document service: compose + store, with versioning rules. Handlers call this; it holds the
//! business rules (who may see what, If-Match, what a version is).

use crate::compose::{questionnaire, ComposeContext, Composer};
use crate::error::{AppError, Issue};
use crate::sign::{self, SignError, SignOptions, Signer, SigningCa, VerificationReport, VerifyAt};
use crate::store::clients::Client;
use crate::store::documents::{DocumentRow, NewVersion, VersionRow};
use crate::store::Store;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone)]
pub struct Documents {
    pub store: Store,
    pub composer: Arc<Composer>,
    pub ca: Arc<SigningCa>,
    pub sign_options: Arc<SignOptions>,
}

pub struct Stored {
    pub id: String,
    pub version: i64,
    /// the exact bytes of the Bundle as stored
    pub bundle: String,
}

/// A composed version as it is stored: texts and search columns (see [`Documents::compose`]).
pub(crate) struct Composed {
    pub bundle_identifier: String,
    /// the exact bytes of the Bundle
    pub text: String,
    pub input_text: String,
    pub pinfl: Option<String>,
    pub date: Option<String>,
    pub org: Option<String>,
}

impl Composed {
    pub fn version(&self) -> NewVersion<'_> {
        NewVersion {
            bundle_identifier: &self.bundle_identifier,
            input: &self.input_text,
            bundle: &self.text,
            patient_pinfl: self.pinfl.as_deref(),
            composition_date: self.date.as_deref(),
            organization: self.org.as_deref(),
        }
    }
}

/// `W/"3"`, `"3"` → 3
pub fn parse_etag(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').parse().ok()
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

impl Documents {
    /// Form JSON, or a QuestionnaireResponse answering the form's Questionnaire → form JSON.
    pub(crate) fn form_input(&self, form: &str, body: Value) -> Result<Value, AppError> {
        let def = self.composer.get(form).ok_or_else(|| AppError::NotFound(format!("no form `{form}`")))?;
        let mut input = if body.get("resourceType").and_then(Value::as_str) == Some("QuestionnaireResponse") {
            questionnaire::response_to_input(def, &body)?
        } else {
            body
        };
        crate::compose::normalize(&mut input);
        match input.get("form") {
            Some(Value::String(f)) if f == &def.form => Ok(input),
            Some(Value::String(f)) => Err(AppError::Invalid(vec![Issue::new(
                "value",
                Some("form".to_string()),
                format!("this endpoint takes form {}, the body says `{f}`", def.form),
            )])),
            _ => Ok(input), // schema validation reports the missing or wrong `form`
        }
    }

    /// Composes a version ready to store. `replaces`: the identifier of the Composition an
    /// amendment replaces (`relatesTo replaces`, archive lifecycle). The input tree is gone when
    /// this returns — it is about ten times the size of its text, and a caller would otherwise hold
    /// it while its write waits its turn (issue 7: peak memory under load).
    pub(crate) fn compose(
        &self,
        form: &str,
        input: Value,
        document_id: Uuid,
        replaces: Option<&Value>,
    ) -> Result<Composed, AppError> {
        let def = self.composer.get(form).ok_or_else(|| AppError::NotFound(format!("no form `{form}`")))?;
        let ctx = ComposeContext::new(document_id, chrono::Local::now().fixed_offset());
        let out = def.compose_json(&input, &ctx, replaces)?;
        let (pinfl, org) = input_fields(&input);
        Ok(Composed {
            bundle_identifier: format!("urn:uuid:{}", ctx.bundle_id),
            date: out.date,
            text: out.json,
            input_text: crate::sign::canon::to_json_string(&input),
            pinfl,
            org,
        })
    }

    /// [`Documents::compose`] on the compose threads (`compose::workers`: off the runtime's
    /// workers, one per core, at a lower priority).
    async fn compose_off_runtime(
        &self,
        form: &str,
        input: Value,
        document_id: Uuid,
        replaces: Option<Value>,
    ) -> Result<Composed, AppError> {
        let (docs, form) = (self.clone(), form.to_string());
        crate::compose::workers::run(move || docs.compose(&form, input, document_id, replaces.as_ref())).await?
    }

    pub async fn create(&self, client: &Client, form: &str, body: Value) -> Result<Stored, AppError> {
        let input = self.form_input(form, body)?;
        // an invalid documentId is reported together with every other problem by the validation
        let id = input
            .get("documentId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(Uuid::new_v4);
        let c = self.compose_off_runtime(form, input, id, None).await?;
        let def_form = self.composer.get(form).map(|d| d.form.clone()).unwrap_or_default();
        let audit = crate::archive::audit::AuditEntry::new(
            crate::archive::audit::Event::Create,
            crate::archive::audit::Agent::client(client),
        )
        .document(&id.to_string(), Some(1));
        self.store
            .create_document_audited(
                &id.to_string(),
                &def_form,
                &client.id,
                &c.version(),
                Some(&crate::archive::WriteHook::audit(audit)),
            )
            .await?;
        tracing::info!(document = %id, form = %def_form, client = %client.id, "document created");
        Ok(Stored { id: id.to_string(), version: 1, bundle: c.text })
    }

    pub async fn update(
        &self,
        client: &Client,
        id: &str,
        if_match: Option<&str>,
        body: Value,
    ) -> Result<Stored, AppError> {
        let doc = self.owned(client, id).await?;
        let expected = if_match.ok_or_else(|| {
            AppError::PreconditionFailed("If-Match is required to change a document (send the ETag you read)".into())
        })?;
        let expected = parse_etag(expected).ok_or_else(|| {
            AppError::PreconditionFailed(format!("If-Match `{expected}` is not a version ETag like W/\"1\""))
        })?;
        if doc.state != "draft" {
            return Err(AppError::Conflict(format!(
                "document {id} is {}: its content is frozen; only further signatures may be added",
                doc.state
            )));
        }
        if expected != doc.version {
            return Err(AppError::PreconditionFailed("Version is mismatch".into()));
        }
        let input = self.form_input(&doc.form, body)?;
        if let Some(d) = input.get("documentId").and_then(Value::as_str) {
            if d != doc.id {
                return Err(AppError::Invalid(vec![Issue::new(
                    "value",
                    Some("documentId".to_string()),
                    format!("documentId `{d}` is not this document ({})", doc.id),
                )]));
            }
        }
        let uuid = Uuid::parse_str(&doc.id).map_err(|e| AppError::Internal(e.into()))?;
        // an amendment keeps its `relatesTo replaces` (archive lifecycle)
        let replaced = crate::archive::lifecycle::replaced_composition(&self.store, id).await?;
        let c = self.compose_off_runtime(&doc.form, input, uuid, replaced).await?;
        let audit = crate::archive::audit::AuditEntry::new(
            crate::archive::audit::Event::Update,
            crate::archive::audit::Agent::client(client),
        )
        .document(id, Some(expected + 1));
        let v = self
            .store
            .update_document_audited(id, expected, &c.version(), Some(&crate::archive::WriteHook::audit(audit)))
            .await?;
        match v {
            Some(version) => {
                tracing::info!(document = %id, version, "document updated");
                Ok(Stored { id: id.to_string(), version, bundle: c.text })
            }
            None => {
                // Lost the race, or the document was frozen meanwhile.
                let now = self.owned(client, id).await?;
                if now.state != "draft" {
                    Err(AppError::Conflict(format!("document {id} is {}: its content is frozen", now.state)))
                } else {
                    Err(AppError::PreconditionFailed("Version is mismatch".into()))
                }
            }
        }
    }

    /// The document if this client owns it; 404 otherwise (other clients' ids are not confirmed).
    pub async fn owned(&self, client: &Client, id: &str) -> Result<DocumentRow, AppError> {
        match self.store.document(id).await? {
            Some(d) if d.client_id == client.id => Ok(d),
            _ => Err(AppError::NotFound(format!("no document {id}"))),
        }
    }

    pub async fn read(
        &self,
        client: &Client,
        id: &str,
        version: Option<i64>,
    ) -> Result<(DocumentRow, VersionRow), AppError> {
        let doc = self.owned(client, id).await?;
        let n = version.unwrap_or(doc.version);
        let v = self
            .store
            .version(id, n)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("document {id} has no version {n}")))?;
        // every read of a medical record leaves a trace (refused if it cannot)
        crate::archive::audit::record(
            &self.store,
            crate::archive::audit::AuditEntry::new(
                crate::archive::audit::Event::Read,
                crate::archive::audit::Agent::client(client),
            )
            .document(id, Some(n)),
        )
        .await?;
        Ok((doc, v))
    }
}

impl From<SignError> for AppError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Signer(m) => AppError::Forbidden(format!("this practitioner cannot sign this document: {m}")),
            SignError::Document(m) => AppError::Conflict(format!("the document cannot be signed: {m}")),
            other => AppError::Internal(anyhow::anyhow!(other)),
        }
    }
}

impl Documents {
    /// Sign version `version` of a document for an authenticated practitioner. This is the only
    /// way to sign: the iframe flow calls it after a fresh oneID login; there is no HTTP endpoint
    /// that signs without one. The signed Bundle becomes the next version; the content is frozen.
    pub async fn sign(&self, id: &str, version: i64, signer: &Signer) -> Result<Stored, AppError> {
        let doc = self.store.document(id).await?.ok_or_else(|| AppError::NotFound(format!("no document {id}")))?;
        if doc.state == "entered-in-error" || doc.state == "superseded" {
            return Err(AppError::Conflict(format!("document {id} is {}: it cannot be signed", doc.state)));
        }
        if doc.version != version {
            return Err(AppError::PreconditionFailed(format!(
                "the document changed since version {version} was shown (now {}); show it again before signing",
                doc.version
            )));
        }
        let v = self
            .store
            .version(id, version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no version {version}")))?;
        let bundle: Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
        let (signed, record) =
            sign::sign_document_owned(bundle, &self.ca, signer, &self.sign_options, chrono::Utc::now())?;
        let text = crate::sign::canon::to_json_string(&signed);
        drop(signed); // not held while the write waits (see `create`)
        let sig = crate::store::documents::NewSignature { signed_content_version: version, record: &record };
        let audit = crate::archive::audit::AuditEntry::new(
            crate::archive::audit::Event::Sign,
            crate::archive::audit::Agent::person(&signer.pinfl, &signer.name, "practitioner"),
        )
        .client(&doc.client_id)
        .document(id, Some(version + 1))
        .detail(serde_json::json!({"certificateSerial": record.certificate_serial, "signedContentVersion": version}));
        let hook = crate::archive::WriteHook::audit(audit);
        match self
            .store
            .add_signature_audited(id, version, &v.bundle_identifier, &v.input, &text, &sig, Some(&hook))
            .await?
        {
            Some(n) => {
                tracing::info!(document = %id, version = n, certificate = %record.certificate_serial, "document signed");
                Ok(Stored { id: id.to_string(), version: n, bundle: text })
            }
            None => Err(AppError::PreconditionFailed(
                "the document changed while it was being signed; show it again".into(),
            )),
        }
    }

    /// Verify the latest stored version of a client's document, at each signature's sigT
    /// (short-lived certificates have expired by the time an archive looks).
    pub async fn verify_stored(&self, client: &Client, id: &str) -> Result<VerificationReport, AppError> {
        let (_doc, v) = self.read(client, id, None).await?;
        let report = sign::verify_bundle_json(v.bundle.as_bytes(), &self.ca.anchors(), VerifyAt::SigT);
        crate::archive::audit::record(
            &self.store,
            crate::archive::audit::AuditEntry::new(
                crate::archive::audit::Event::Verify,
                crate::archive::audit::Agent::client(client),
            )
            .document(id, Some(v.version))
            .detail(serde_json::json!({"ok": report.ok})),
        )
        .await?;
        Ok(report)
    }

    /// Verify any Bundle (also third-party ones) against the configured trust anchors.
    pub fn verify_bytes(&self, bytes: &[u8], at: VerifyAt) -> VerificationReport {
        sign::verify_bundle_json(bytes, &self.ca.anchors(), at)
    }
}

/// The search columns of a version from its input: the patient's PINFL and the organization's tax
/// id. The Composition's date comes from composing (`compose::Output::date`); only the start-up
/// backfill reads it from stored text ([`composition_date`]).
pub(crate) fn input_fields(input: &Value) -> (Option<String>, Option<String>) {
    let pinfl = input.get("patient").and_then(|p| p.get("pinfl")).and_then(Value::as_str).map(str::to_string);
    let org = input.get("organization").and_then(|o| o.get("taxId")).and_then(Value::as_str).map(str::to_string);
    (pinfl, org)
}

/// `Composition.date` of a stored Bundle (its first entry).
pub(crate) fn composition_date(bundle: &Value) -> Option<String> {
    let comp = bundle.get("entry").and_then(|e| e.get(0)).and_then(|e| e.get("resource"));
    comp.and_then(|c| c.get("date")).and_then(Value::as_str).map(str::to_string)
}
