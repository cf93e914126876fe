//! The one error type of the service, rendered once as a FHIR `OperationOutcome`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One problem, reported as an `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Issue {
    /// FHIR issue type (`invalid`, `required`, `value`, `structure`, `business-rule`, …).
    pub code: &'static str,
    /// FHIRPath-like location in the submitted input, e.g. `patient.pinfl` or `practitioners[1].name`.
    pub expression: Option<String>,
    /// Further locations of the same problem (e.g. each alternative of "one of these is required").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<String>,
    pub diagnostics: String,
}

impl Issue {
    pub fn new(code: &'static str, expression: impl Into<Option<String>>, diagnostics: impl Into<String>) -> Self {
        Issue { code, expression: expression.into(), more: Vec::new(), diagnostics: diagnostics.into() }
    }

    pub fn with_more(mut self, more: Vec<String>) -> Self {
        self.more = more;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("the document has {} problem(s)", .0.len())]
    Invalid(Vec<Issue>),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                AppError::Unavailable("the database is not reachable".into())
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn issues(&self) -> Vec<Issue> {
        let one = |code, text: String| vec![Issue::new(code, None, text)];
        match self {
            AppError::Invalid(issues) => issues.clone(),
            AppError::BadRequest(m) => one("structure", m.clone()),
            AppError::Unauthorized(m) => one("login", m.clone()),
            AppError::Forbidden(m) => one("forbidden", m.clone()),
            AppError::NotFound(m) => one("not-found", m.clone()),
            AppError::MethodNotAllowed => one("not-supported", "method not allowed".into()),
            AppError::Conflict(m) => one("conflict", m.clone()),
            AppError::PreconditionFailed(m) => one("invalid", m.clone()),
            AppError::PayloadTooLarge => one("too-costly", "the request body is larger than 1 MiB".into()),
            AppError::UnsupportedMediaType(m) => one("not-supported", m.clone()),
            AppError::Unavailable(m) => one("transient", m.clone()),
            // Never leak internals to the client; the log has them.
            AppError::Internal(_) => one("exception", "internal error; it has been logged".into()),
        }
    }

    pub fn outcome(&self) -> Value {
        operation_outcome(&self.issues(), "error")
    }
}

pub fn operation_outcome(issues: &[Issue], severity: &str) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({"severity": severity, "code": i.code, "diagnostics": i.diagnostics});
            if let Some(e) = &i.expression {
                let mut all = vec![e.clone()];
                all.extend(i.more.iter().cloned());
                v["expression"] = json!(all);
            }
            v
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

pub const FHIR_JSON: &str = "application/fhir+json";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = %e, "internal error");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.outcome()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        if let AppError::Unauthorized(_) = self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hujjat\", Bearer realm=\"hujjat\""),
            );
        }
        resp
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;
