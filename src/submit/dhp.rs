//! The DHP FHIR client: OAuth2 `client_credentials` token cache, patient search by PINFL, and the
//! idempotent submission of a signed document (conditional create on `Bundle.identifier`).
//! Never logs tokens, secrets, PINFLs or document content.

use super::config::{DhpConfig, SubmitMode};
use super::metrics::METRICS;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const PINFL_SYSTEM: &str = "https://dhp.uz/fhir/core/sid/pid/uz/ni";

/// Characters percent-encoded in a query parameter value.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn query_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Try again later: `5xx`, `429`, `408`, timeouts, dropped connections, token endpoint trouble.
    Transient { status: Option<u16>, detail: String, retry_after: Option<Duration> },
    /// The DHP refused the document (`4xx` with an `OperationOutcome`): terminal until re-queued.
    Rejected { status: u16, detail: String, outcome: String },
}

impl Failure {
    fn transient(detail: impl Into<String>) -> Failure {
        Failure::Transient { status: None, detail: detail.into(), retry_after: None }
    }
}

/// What the DHP answered to a successful create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `true` when the DHP already had it (`200` to the conditional create).
    pub existing: bool,
    pub status: u16,
    pub id: Option<String>,
    pub location: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientMatch {
    Found(String),
    NotFound,
    Ambiguous(usize),
}

struct Token {
    value: String,
    expires: Instant,
}

impl Drop for Token {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

pub struct DhpClient {
    http: reqwest::Client,
    cfg: DhpConfig,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// A reqwest error, described without the URL's query (it may carry a PINFL).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else if e.is_request() {
        "the connection broke (no answer)"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

/// `Retry-After`: delta-seconds or an HTTP-date.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = t.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

fn is_outcome(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["resourceType"] == "OperationOutcome")
}

/// A short text of an OperationOutcome's issues (diagnostics and codes only).
fn outcome_summary(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let issues: Vec<String> = v["issue"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(5)
                .map(|i| {
                    let code = i["code"].as_str().unwrap_or("?");
                    let text = i["diagnostics"].as_str().or(i["details"]["text"].as_str()).unwrap_or("");
                    format!("{code}: {}", text.chars().take(200).collect::<String>())
                })
                .collect()
        })
        .unwrap_or_default();
    issues.join("; ")
}

/// How a non-2xx answer is treated (401 is handled by the caller).
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], what: &str) -> Failure {
    let s = status.as_u16();
    let retryable = status.is_server_error() || matches!(s, 408 | 409 | 425 | 429);
    if !retryable && status.is_client_error() && is_outcome(body) {
        return Failure::Rejected {
            status: s,
            detail: format!("{what}: HTTP {s}: {}", outcome_summary(body)),
            outcome: String::from_utf8_lossy(body).into_owned(),
        };
    }
    let detail = if status.is_client_error() && !retryable {
        format!("{what}: HTTP {s} without an OperationOutcome (a proxy or a wrong base URL?); retrying")
    } else if is_outcome(body) {
        format!("{what}: HTTP {s}: {}", outcome_summary(body))
    } else {
        format!("{what}: HTTP {s}")
    };
    Failure::Transient { status: Some(s), detail, retry_after: retry_after(headers) }
}

/// `[base]/Bundle/123/_history/2` → (`123`, `2`).
fn parse_location(loc: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = loc.split('?').next().unwrap_or("").trim_end_matches('/').split('/').collect();
    match parts.iter().rposition(|p| *p == "Bundle") {
        Some(i) => {
            let id = parts.get(i + 1).map(|s| s.to_string()).filter(|s| !s.is_empty());
            let ver = match (parts.get(i + 2), parts.get(i + 3)) {
                (Some(&"_history"), Some(v)) => Some(v.to_string()),
                _ => None,
            };
            (id, ver)
        }
        None => (None, None),
    }
}

fn etag_version(h: &HeaderMap) -> Option<String> {
    let v = h.get(reqwest::header::ETAG)?.to_str().ok()?.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    Some(v.trim_matches('"').to_string()).filter(|s| !s.is_empty())
}

impl DhpClient {
    pub fn new(cfg: DhpConfig) -> anyhow::Result<DhpClient> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hujjat/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(DhpClient { http, cfg, token: tokio::sync::Mutex::new(None) })
    }

    pub fn config(&self) -> &DhpConfig {
        &self.cfg
    }

    /// A valid access token: the cached one until shortly before it expires, else a new one.
    async fn token(&self) -> Result<String, Failure> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.expires {
                return Ok(t.value.clone());
            }
        }
        METRICS.token_requests.inc();
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            query_value(&self.cfg.client_id),
            query_value(&self.cfg.client_secret.0)
        );
        let r = self
            .http
            .post(&self.cfg.token_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| Failure::transient(format!("token endpoint: {}", describe(&e))))?;
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.map_err(|e| Failure::transient(format!("token endpoint: {}", describe(&e))))?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let err = v["error"].as_str().unwrap_or("");
            // a credentials problem is the operator's to fix, not the document's: keep retrying
            return Err(Failure::Transient {
                status: Some(status.as_u16()),
                detail: format!("token endpoint: HTTP {} {err}", status.as_u16()).trim_end().to_string(),
                retry_after: retry_after(&headers),
            });
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|_| Failure::transient("token endpoint: the answer is not JSON"))?;
        let Some(value) = v["access_token"].as_str().filter(|s| !s.is_empty()) else {
            return Err(Failure::transient("token endpoint: no access_token in the answer"));
        };
        let ttl = v["expires_in"].as_u64().unwrap_or(300);
        // refresh a little before it expires: a fifth of its life, at most 60 s
        let margin = (ttl / 5).min(60);
        let t = Token { value: value.to_string(), expires: Instant::now() + Duration::from_secs(ttl - margin) };
        *slot = Some(t);
        Ok(value.to_string())
    }

    /// Forget `used` (after a `401`), unless another task already replaced it.
    async fn invalidate(&self, used: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == used) {
            *slot = None;
        }
    }

    /// Send a request built by `build` with a bearer token; on `401` refresh the token once and retry.
    async fn send_authorized<F>(
        &self,
        what: &str,
        build: F,
    ) -> Result<(StatusCode, HeaderMap, axum::body::Bytes), Failure>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let r = build(&token).send().await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    METRICS.request(what, "error");
                    return Err(Failure::transient(format!("{what}: {}", describe(&e))));
                }
            };
            let status = r.status();
            METRICS.request(what, &status.as_u16().to_string());
            let headers = r.headers().clone();
            let body = r.bytes().await.map_err(|e| Failure::transient(format!("{what}: {}", describe(&e))))?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(request = what, "the DHP refused the access token; fetching a new one");
                self.invalidate(&token).await;
                refreshed = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(Failure::Transient {
                    status: Some(401),
                    detail: format!("{what}: HTTP 401 with a fresh token (check the DHP client's permissions)"),
                    retry_after: retry_after(&headers),
                });
            }
            return Ok((status, headers, body));
        }
    }

    /// `GET [base]/Patient?identifier=<PINFL system>|<pinfl>`.
    pub async fn find_patient(&self, pinfl: &str) -> Result<PatientMatch, Failure> {
        let url =
            format!("{}/Patient?identifier={}", self.cfg.fhir_base, query_value(&format!("{PINFL_SYSTEM}|{pinfl}")));
        let (status, headers, body) = self
            .send_authorized("patient search", |tok| {
                self.http.get(&url).header(AUTHORIZATION, format!("Bearer {tok}")).header(ACCEPT, FHIR_JSON)
            })
            .await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body, "patient search"));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|_| Failure::transient("patient search: the answer is not JSON"))?;
        let ids: Vec<String> = v["entry"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["resource"]["resourceType"] == "Patient")
                    .filter(|e| e["search"]["mode"].as_str().is_none_or(|m| m == "match"))
                    .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(match ids.len() {
            0 => PatientMatch::NotFound,
            1 => PatientMatch::Found(ids[0].clone()),
            n => PatientMatch::Ambiguous(n),
        })
    }

    /// Submit the signed document `bundle` (sent byte for byte) idempotently.
    pub async fn submit(&self, bundle: &str) -> Result<Created, Failure> {
        let doc: Value = serde_json::from_str(bundle)
            .map_err(|_| Failure::transient("the stored document is not JSON (internal error)"))?;
        let system = doc["identifier"]["system"].as_str().unwrap_or("");
        let value = doc["identifier"]["value"].as_str().unwrap_or("");
        if value.is_empty() {
            return Err(Failure::transient("the stored document has no Bundle.identifier (internal error)"));
        }
        let search = if system.is_empty() {
            format!("identifier={}", query_value(value))
        } else {
            format!("identifier={}", query_value(&format!("{system}|{value}")))
        };
        match self.cfg.submit_mode {
            SubmitMode::Bundle => {
                let url = format!("{}/Bundle", self.cfg.fhir_base);
                let body = bundle.to_string();
                let (status, headers, resp) = self
                    .send_authorized("submit", |tok| {
                        self.http
                            .post(&url)
                            .header(AUTHORIZATION, format!("Bearer {tok}"))
                            .header(CONTENT_TYPE, FHIR_JSON)
                            .header(ACCEPT, FHIR_JSON)
                            .header("If-None-Exist", &search)
                            .body(body.clone())
                    })
                    .await?;
                if !status.is_success() {
                    return Err(classify(status, &headers, &resp, "submit"));
                }
                let v: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
                let location = headers
                    .get(LOCATION)
                    .or_else(|| headers.get("content-location"))
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string);
                let (lid, lver) = location.as_deref().map(parse_location).unwrap_or((None, None));
                let id = lid.or_else(|| v["id"].as_str().map(str::to_string));
                let version =
                    etag_version(&headers).or(lver).or_else(|| v["meta"]["versionId"].as_str().map(str::to_string));
                Ok(Created { existing: status == StatusCode::OK, status: status.as_u16(), id, location, version })
            }
            SubmitMode::Transaction => {
                // The document goes in as the raw signed bytes: the envelope is built around them.
                let full_url = match doc["id"].as_str() {
                    Some(id) => format!("urn:uuid:{id}"),
                    None => value.to_string(),
                };
                let request = serde_json::json!({"method": "POST", "url": "Bundle", "ifNoneExist": search});
                let body = format!(
                    "{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{{\"fullUrl\":{},\"resource\":{},\"request\":{}}}]}}",
                    Value::String(full_url),
                    bundle,
                    request
                );
                let url = self.cfg.fhir_base.clone();
                let (status, headers, resp) = self
                    .send_authorized("submit", |tok| {
                        self.http
                            .post(&url)
                            .header(AUTHORIZATION, format!("Bearer {tok}"))
                            .header(CONTENT_TYPE, FHIR_JSON)
                            .header(ACCEPT, FHIR_JSON)
                            .body(body.clone())
                    })
                    .await?;
                if !status.is_success() {
                    return Err(classify(status, &headers, &resp, "submit (transaction)"));
                }
                let v: Value = serde_json::from_slice(&resp)
                    .map_err(|_| Failure::transient("submit (transaction): the answer is not JSON"))?;
                let r = &v["entry"][0]["response"];
                let st = r["status"].as_str().unwrap_or("");
                let code: u16 = st.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
                if !(200..300).contains(&code) {
                    if !r["outcome"].is_null() {
                        return Err(Failure::Rejected {
                            status: code,
                            detail: format!("submit (transaction): entry status {st}"),
                            outcome: r["outcome"].to_string(),
                        });
                    }
                    return Err(Failure::transient(format!("submit (transaction): entry status `{st}`")));
                }
                let location = r["location"].as_str().map(str::to_string);
                let (lid, lver) = location.as_deref().map(parse_location).unwrap_or((None, None));
                let version = r["etag"]
                    .as_str()
                    .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .or(lver);
                Ok(Created { existing: code == 200, status: code, id: lid, location, version })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(parse_location("http://x/fhir/Bundle/abc/_history/3"), (Some("abc".into()), Some("3".into())));
        assert_eq!(parse_location("Bundle/abc"), (Some("abc".into()), None));
        assert_eq!(parse_location("http://x/other"), (None, None));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn classification() {
        let h = HeaderMap::new();
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invariant","diagnostics":"bad"}]}"#;
        assert!(matches!(classify(StatusCode::BAD_REQUEST, &h, oo, "x"), Failure::Rejected { status: 400, .. }));
        assert!(matches!(classify(StatusCode::UNPROCESSABLE_ENTITY, &h, oo, "x"), Failure::Rejected { .. }));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, &h, oo, "x"), Failure::Transient { .. }));
        assert!(matches!(classify(StatusCode::INTERNAL_SERVER_ERROR, &h, oo, "x"), Failure::Transient { .. }));
        assert!(matches!(classify(StatusCode::NOT_FOUND, &h, b"<html>", "x"), Failure::Transient { .. }));
        assert_eq!(query_value("https://a/b|1"), "https%3A%2F%2Fa%2Fb%7C1");
    }
}
