//! The archive's FHIR endpoints.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /Bundle?type=document&…` | any principal | `searchset` of the documents it sees (see [`super::search`]) |
//! | `GET /Bundle/{id}` | any principal | the latest version, byte-for-byte as stored |
//! | `GET /Bundle/{id}/_history/{n}` | any principal | version `n` as stored |
//! | `GET /Bundle/{id}/_history`, `GET /documents/{id}/_history` | any principal | `history` Bundle of every version, newest first |
//! | `GET /documents/{id}/$export` | any principal | the offline-verifiable package (ZIP, [`super::export`]) |
//! | `POST /documents/{id}/$amend` | the owning MIS client | a new draft replacing the signed document ([`super::lifecycle`]) |
//! | `POST /documents/{id}/$entered-in-error` | the owning MIS client, admins | mark it, with `{"reason": …}` |
//! | `GET /AuditEvent?entity=&agent=&date=` | admins | `searchset` of audit records |
//!
//! "Any principal" = an MIS client (its own documents), an archive or admin client, or a
//! logged-in archivist or admin (see [`super::access`]). Every call is audited.

use super::access::Principal;
use super::audit::{self, Event};
use super::search::{self, decode_query, encode_query, Search};
use super::{entry, lifecycle, visible};
use crate::documents::etag;
use crate::error::{AppError, FHIR_JSON};
use crate::web::{fhir, json_body, AppState, MisClient};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sqlx::Row;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/Bundle", get(search_bundles))
        .route("/Bundle/{id}", get(read_bundle))
        .route("/Bundle/{id}/_history", get(history))
        .route("/Bundle/{id}/_history/{version}", get(read_bundle_version))
        .route("/documents/{id}/_history", get(history))
        .route("/documents/{id}/$export", get(export))
        .route("/documents/{id}/$amend", post(amend))
        .route("/documents/{id}/$entered-in-error", post(entered_in_error))
        .route("/AuditEvent", get(audit_events))
}

fn internal(e: impl Into<anyhow::Error>) -> AppError {
    AppError::Internal(e.into())
}

/// The stored bytes of a Bundle with its version ETag.
fn stored_bundle(bundle: String, version: i64) -> Response {
    let mut r = fhir(StatusCode::OK, bundle);
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Record a refused request of an authenticated principal, then return the error.
async fn refused(st: &AppState, who: &Principal, event: Event, query: Option<&str>, e: AppError) -> AppError {
    let mut a = entry(who, event).failed_with(&e);
    if let Some(q) = query {
        a = a.query(q);
    }
    audit::record_failure(&st.docs.store, a).await;
    e
}

async fn search_bundles(
    State(st): State<AppState>,
    who: Principal,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let q = q.unwrap_or_default();
    let search = match Search::parse(&decode_query(&q)) {
        Ok(s) => s,
        Err(e) => return Err(refused(&st, &who, Event::Search, Some(&q), e).await),
    };
    let page = match search::run(&st.docs.store, &search, &who.visibility, true).await {
        Ok(p) => p,
        Err(e) => return Err(refused(&st, &who, Event::Search, Some(&q), e).await),
    };
    let base = &st.config.public_url;
    let link = |cursor: Option<&str>| {
        let mut pairs = search.canonical.clone();
        if let Some(c) = cursor {
            pairs.push(("_cursor".into(), c.into()));
        }
        format!("{base}/Bundle?{}", encode_query(&pairs))
    };
    let cursor = q_cursor(&q);
    let mut links = vec![json!({"relation": "self", "url": link(cursor.as_deref())})];
    links.push(json!({"relation": "first", "url": link(None)}));
    if let Some(n) = &page.next {
        links.push(json!({"relation": "next", "url": link(Some(n))}));
    }
    let mut entries = Vec::with_capacity(page.hits.len());
    for h in &page.hits {
        let resource: Value = match &h.bundle {
            Some(b) => serde_json::from_str(b).map_err(internal)?,
            // _summary=true: a subsetted Bundle
            None => json!({
                "resourceType": "Bundle",
                "meta": {"versionId": h.version.to_string(), "lastUpdated": h.updated_at,
                         "tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]},
                "identifier": {"system": "urn:ietf:rfc:3986", "value": h.bundle_identifier},
                "type": "document",
            }),
        };
        entries.push(json!({
            "fullUrl": format!("{base}/Bundle/{}", h.id),
            "extension": [
                {"url": "urn:hujjat:archive-state", "valueCode": h.state},
                {"url": "urn:hujjat:document-version", "valueInteger": h.version},
            ],
            "resource": resource,
            "search": {"mode": "match"},
        }));
    }
    let body = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)},
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": entries,
    });
    let a = entry(&who, Event::Search)
        .query(&q)
        .detail(json!({"total": page.total, "returned": page.hits.len(), "documents": page.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()}));
    audit::record(&st.docs.store, a).await?;
    Ok(fhir(StatusCode::OK, serde_json::to_vec(&body).map_err(internal)?))
}

/// The `_cursor` of the request, to repeat in the `self` link.
fn q_cursor(q: &str) -> Option<String> {
    decode_query(q).into_iter().find(|(k, _)| k == "_cursor").map(|(_, v)| v)
}

async fn read_bundle(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> Result<Response, AppError> {
    read_at(&st, &who, &id, None).await
}

async fn read_bundle_version(
    State(st): State<AppState>,
    who: Principal,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let n: i64 = version.parse().map_err(|_| AppError::NotFound(format!("no version `{version}`")))?;
    read_at(&st, &who, &id, Some(n)).await
}

async fn read_at(st: &AppState, who: &Principal, id: &str, version: Option<i64>) -> Result<Response, AppError> {
    let store = &st.docs.store;
    let doc = visible(store, who, id, Event::Read).await?;
    let n = version.unwrap_or(doc.version);
    let Some(v) = store.version(id, n).await? else {
        return Err(AppError::NotFound(format!("document {id} has no version {n}")));
    };
    audit::record(store, entry(who, Event::Read).client(&doc.client_id).document(id, Some(n))).await?;
    Ok(stored_bundle(v.bundle, n))
}

async fn history(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> Result<Response, AppError> {
    let store = &st.docs.store;
    let doc = visible(store, &who, &id, Event::History).await?;
    let rows = sqlx::query(
        "SELECT version, bundle, created_at FROM document_versions WHERE document_id = $1 ORDER BY version DESC",
    )
    .bind(&id)
    .fetch_all(&store.pool)
    .await?;
    let base = &st.config.public_url;
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        let n: i64 = r.try_get("version")?;
        let bundle: String = r.try_get("bundle")?;
        let at: String = r.try_get("created_at")?;
        entries.push(json!({
            "fullUrl": format!("{base}/Bundle/{id}"),
            "resource": serde_json::from_str::<Value>(&bundle).map_err(internal)?,
            "request": {"method": if n == 1 { "POST" } else { "PUT" }, "url": if n == 1 { "Bundle".to_string() } else { format!("Bundle/{id}") }},
            "response": {"status": if n == 1 { "201 Created" } else { "200 OK" }, "etag": etag(n), "lastModified": at},
        }));
    }
    let body = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "history",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{base}/documents/{id}/_history")}],
        "entry": entries,
    });
    audit::record(store, entry(&who, Event::History).client(&doc.client_id).document(&id, Some(doc.version))).await?;
    Ok(fhir(StatusCode::OK, serde_json::to_vec(&body).map_err(internal)?))
}

async fn export(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> Result<Response, AppError> {
    let p = super::export::package(&st, &who, &id).await?;
    Ok(zip_response(p))
}

pub(crate) fn zip_response(p: super::export::Package) -> Response {
    let mut r = (StatusCode::OK, p.bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", p.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn amend(
    State(st): State<AppState>,
    client: MisClient,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let input = json_body(&parts.headers, body).await?;
    let s = lifecycle::amend(&st.docs, &client.0, &id, input).await?;
    Ok(crate::web::document_response(StatusCode::CREATED, &s.id, s.version, s.bundle, true, &parts.headers))
}

async fn entered_in_error(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let body = json_body(&parts.headers, body).await?;
    // {"reason": "..."} or a FHIR Parameters resource with a `reason` parameter
    let reason = body.get("reason").and_then(Value::as_str).map(str::to_string).or_else(|| {
        body.get("parameter")
            .and_then(Value::as_array)
            .and_then(|ps| ps.iter().find(|p| p.get("name").and_then(Value::as_str) == Some("reason")))
            .and_then(|p| p.get("valueString"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let out = lifecycle::entered_in_error(&st.docs.store, &who, &id, reason.as_deref().unwrap_or("")).await?;
    Ok(axum::Json(out).into_response())
}

/// `GET /AuditEvent`: `entity` (`Bundle/{id}` or an id), `agent` (`[system|]value`: a PINFL or a
/// client id), `date` (prefixes as in document search, on `recorded`), `subtype` (event codes),
/// `_count` (≤ 1000, default 100), `_cursor`; newest first.
async fn audit_events(State(st): State<AppState>, who: Principal, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let q = q.unwrap_or_default();
    if let Err(e) = who.require_admin() {
        return Err(refused(&st, &who, Event::AuditSearch, Some(&q), e).await);
    }
    let (sql, binds, count) = match audit_query(&q) {
        Ok(x) => x,
        Err(e) => return Err(refused(&st, &who, Event::AuditSearch, Some(&q), e).await),
    };
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query.fetch_all(&st.docs.store.pool).await?;
    let mut recs = rows.iter().map(audit::row_to_record).collect::<Result<Vec<_>, _>>()?;
    let more = recs.len() as i64 > count;
    recs.truncate(count as usize);
    let base = &st.config.public_url;
    let mut links = vec![json!({"relation": "self", "url": format!("{base}/AuditEvent?{q}")})];
    if more {
        if let Some(last) = recs.last() {
            let mut pairs: Vec<(String, String)> =
                decode_query(&q).into_iter().filter(|(k, _)| k != "_cursor").collect();
            pairs.push(("_cursor".into(), last.seq.to_string()));
            links.push(json!({"relation": "next", "url": format!("{base}/AuditEvent?{}", encode_query(&pairs))}));
        }
    }
    let entries: Vec<Value> = recs
        .iter()
        .map(|r| {
            json!({"fullUrl": format!("{base}/AuditEvent/{}", r.id), "resource": r.to_fhir(base), "search": {"mode": "match"}})
        })
        .collect();
    let body = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    audit::record(&st.docs.store, entry(&who, Event::AuditSearch).query(&q).detail(json!({"returned": recs.len()})))
        .await?;
    let mut r = fhir(StatusCode::OK, serde_json::to_vec(&body).map_err(internal)?);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(r)
}

/// SQL for `GET /AuditEvent`; text binds only.
fn audit_query(q: &str) -> Result<(String, Vec<String>, i64), AppError> {
    let mut conds: Vec<String> = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    let mut count = 100i64;
    let p = |binds: &mut Vec<String>, v: String| {
        binds.push(v);
        format!("${}", binds.len())
    };
    for (k, v) in decode_query(q) {
        let values: Vec<String> = v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect();
        match k.as_str() {
            "entity" | "entity.id" => {
                let ps: Vec<String> = values
                    .iter()
                    .map(|x| x.strip_prefix("Bundle/").unwrap_or(x).to_string())
                    .map(|x| p(&mut binds, x))
                    .collect();
                conds.push(if ps.is_empty() { "1 = 0".into() } else { format!("entity_id IN ({})", ps.join(", ")) });
            }
            "agent" | "agent.identifier" => {
                let mut alts = Vec::new();
                for x in &values {
                    let val = x.rsplit_once('|').map(|(_, v)| v).unwrap_or(x).to_string();
                    let a = p(&mut binds, val.clone());
                    let b = p(&mut binds, val);
                    alts.push(format!("agent_id = {a} OR client_id = {b}"));
                }
                conds.push(if alts.is_empty() { "1 = 0".into() } else { format!("({})", alts.join(" OR ")) });
            }
            "subtype" | "code" => {
                let ps: Vec<String> = values.iter().map(|x| p(&mut binds, x.clone())).collect();
                conds.push(if ps.is_empty() { "1 = 0".into() } else { format!("subtype IN ({})", ps.join(", ")) });
            }
            "date" => {
                let v = v.trim();
                let (prefix, value) = match v.get(..2) {
                    Some(x @ ("eq" | "ne" | "gt" | "ge" | "lt" | "le")) => (x, &v[2..]),
                    _ => ("eq", v),
                };
                let (lo, hi) = search::parse_range(value)
                    .ok_or_else(|| AppError::BadRequest(format!("date `{v}` is not a date or date-time")))?;
                let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let lo = p(&mut binds, fmt(lo));
                let hi = p(&mut binds, fmt(hi));
                conds.push(match prefix {
                    "eq" => format!("(recorded >= {lo} AND recorded < {hi})"),
                    "ne" => format!("(recorded < {lo} OR recorded >= {hi})"),
                    "gt" => format!("recorded >= {hi}"),
                    "ge" => format!("recorded >= {lo}"),
                    "lt" => format!("recorded < {lo}"),
                    _ => format!("recorded < {hi}"),
                });
            }
            "_count" => {
                count = v
                    .parse::<i64>()
                    .map_err(|_| AppError::BadRequest(format!("_count `{v}` is not a number")))?
                    .clamp(1, 1000)
            }
            "_cursor" => {
                let seq: i64 = v.parse().map_err(|_| AppError::BadRequest("_cursor is not from a next link".into()))?;
                conds.push(format!("seq < {seq}"));
            }
            "_sort" if v == "-date" => {}
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown AuditEvent search parameter `{other}`; supported: entity, agent, date, subtype, _count"
                )))
            }
        }
    }
    let wh = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let sql = format!("SELECT {} FROM audit_events{wh} ORDER BY seq DESC LIMIT {}", audit::COLUMNS, count + 1);
    Ok((sql, binds, count))
}
