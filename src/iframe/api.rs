//! The MIS side: create a signing session, read its state (the authority), cancel it; and the
//! client registry helpers behind `hujjat clients …` and the seed file.

use super::store::{NewSession, SigningSession};
use super::{i18n, Ctx, Mis};
use crate::config::Mode;
use crate::error::{AppError, Issue};
use crate::identity::{is_pinfl, sha256_hex};
use crate::web::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sqlx::Row;

/// Lifetime of a launch URL (and the most a client may ask for).
pub const LAUNCH_TTL_SECS: i64 = 300;

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The session as the MIS sees it.
pub fn view(ctx: &Ctx, s: &SigningSession) -> Value {
    let mut v = json!({
        "id": s.id,
        "status": s.public_status(),
        "documentId": s.document_id,
        "documentVersion": s.document_version,
        "payloadSha256": s.payload_sha256,
        "expectedSigner": {"pinfl": s.expected_pinfl},
        "role": s.role,
        "embedOrigin": s.embed_origin,
        "locale": s.locale,
        "createdAt": s.created_at,
        "launchExpiresAt": rfc3339(s.launch_expires_at),
        "expiresAt": rfc3339(s.expires_at),
    });
    for (k, x) in [("openedAt", &s.opened_at), ("authenticatedAt", &s.authenticated_at), ("finishedAt", &s.finished_at)]
    {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    }
    if let (Some(p), Some(n)) = (&s.signer_pinfl, &s.signer_name) {
        v["signer"] =
            json!({"pinfl": p, "name": n, "authMethod": s.auth_method, "identityProvider": s.identity_provider});
    }
    if let Some(c) = &s.error_code {
        v["error"] = json!({"code": c, "message": i18n::error_message("en", c)});
    }
    if let Some(n) = s.signed_version {
        v["signedVersion"] = json!(n);
        v["signedDocument"] = json!(format!("{}/documents/{}/_history/{n}", ctx.app.config.public_url, s.document_id));
    }
    v
}

fn invalid(expr: &str, msg: impl Into<String>) -> Issue {
    Issue::new("value", Some(expr.to_string()), msg)
}

/// Does the Bundle name this PINFL on one of its Practitioners?
fn has_practitioner(bundle: &Value, pinfl: &str) -> bool {
    bundle.get("entry").and_then(Value::as_array).into_iter().flatten().any(|e| {
        let r = &e["resource"];
        r["resourceType"] == "Practitioner"
            && r["identifier"].as_array().into_iter().flatten().any(|i| i["value"].as_str() == Some(pinfl))
    })
}

/// `POST /documents/{id}/signing-sessions`
pub async fn create(
    State(ctx): State<Ctx>,
    Mis(client): Mis,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let (doc, version) = ctx.app.docs.read(&client, &id, None).await?;
    let input = crate::web::json_body(&parts.headers, body).await?;
    let idem =
        parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    if idem.is_some_and(|k| k.len() > 200) {
        return Err(AppError::BadRequest("Idempotency-Key is longer than 200 characters".into()));
    }

    let mut issues = Vec::new();
    let pinfl = input.pointer("/expectedSigner/pinfl").and_then(Value::as_str).unwrap_or("").to_string();
    if !is_pinfl(&pinfl) {
        issues.push(invalid("expectedSigner.pinfl", "expectedSigner.pinfl must be the signer's PINFL: 14 digits"));
    }
    let role = match input.get("role") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) if r.chars().count() <= 200 && !r.chars().any(char::is_control) => r.trim().to_string(),
        Some(_) => {
            issues.push(invalid("role", "role must be a text of at most 200 characters"));
            String::new()
        }
    };
    let origin = input.get("embedOrigin").and_then(Value::as_str).unwrap_or("").to_string();
    if origin.is_empty() {
        issues.push(Issue::new(
            "required",
            Some("embedOrigin".into()),
            "embedOrigin is required: the origin of the MIS page that embeds the iframe",
        ));
    } else if !client.embed_origins.iter().any(|o| o == &origin) {
        issues.push(invalid(
            "embedOrigin",
            format!(
                "embedOrigin `{origin}` is not registered for client {}; registered: {}",
                client.id,
                client.embed_origins.join(", ")
            ),
        ));
    }
    let locale = match input.get("locale") {
        None | Some(Value::Null) => "uz".to_string(),
        Some(Value::String(l)) if i18n::supported(l) => i18n::normalize(l).to_string(),
        Some(_) => {
            issues.push(invalid("locale", "locale must be uz, ru or en"));
            "uz".into()
        }
    };
    let int = |k: &str, lo: i64, hi: i64, default: i64, issues: &mut Vec<Issue>| match input.get(k) {
        None | Some(Value::Null) => default,
        Some(v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => n,
            _ => {
                issues.push(invalid(k, format!("{k} must be a whole number from {lo} to {hi}")));
                default
            }
        },
    };
    let launch_ttl = int("launchTtlSeconds", 1, LAUNCH_TTL_SECS, LAUNCH_TTL_SECS, &mut issues);
    let ttl = int("ttlSeconds", 60, 86_400, ctx.app.config.signing.session_ttl_secs, &mut issues);
    let bundle: Value = serde_json::from_str(&version.bundle).map_err(|e| AppError::Internal(e.into()))?;
    if issues.is_empty() && !has_practitioner(&bundle, &pinfl) {
        issues.push(invalid(
            "expectedSigner.pinfl",
            "this PINFL is not a practitioner of the document: only its practitioners can sign it",
        ));
    }
    if !issues.is_empty() {
        return Err(AppError::Invalid(issues));
    }

    let token = crate::store::clients::random_token(32);
    let now = super::store::now_secs();
    let launch_expires = now + launch_ttl.min(ttl);
    if let Some(key) = idem {
        if let Some(s) = ctx.sessions().by_idempotency(&client.id, key).await? {
            return replay(&ctx, s, &doc.id, &pinfl, &origin, &token, launch_expires).await;
        }
    }
    let sid = uuid::Uuid::new_v4().to_string();
    let new = NewSession {
        id: &sid,
        client_id: &client.id,
        document_id: &doc.id,
        document_version: version.version,
        payload_sha256: &sha256_hex(&version.bundle),
        expected_pinfl: &pinfl,
        role: &role,
        embed_origin: &origin,
        locale: &locale,
        launch_hash: &sha256_hex(&token),
        launch_expires_at: launch_expires,
        expires_at: now + ttl,
        idempotency_key: idem,
    };
    if let Err(e) = ctx.sessions().insert(&new).await {
        if crate::store::is_unique_violation(&e) {
            if let Some(s) = ctx.sessions().by_idempotency(&client.id, idem.unwrap_or("")).await? {
                return replay(&ctx, s, &doc.id, &pinfl, &origin, &token, launch_expires).await;
            }
        }
        return Err(e.into());
    }
    tracing::info!(session = %sid, document = %doc.id, version = version.version, client = %client.id, "signing session created");
    let s = ctx.sessions().get(&sid).await?.ok_or_else(|| AppError::Internal(anyhow::anyhow!("session vanished")))?;
    Ok(created(&ctx, &s, &token))
}

fn created(ctx: &Ctx, s: &SigningSession, token: &str) -> Response {
    let mut v = view(ctx, s);
    v["launchUrl"] = json!(format!("{}/s/launch/{token}", ctx.app.config.public_url));
    v["expiresAt"] = json!(rfc3339(s.launch_expires_at));
    v["sessionExpiresAt"] = json!(rfc3339(s.expires_at));
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    if let Ok(l) = HeaderValue::from_str(&format!("/signing-sessions/{}", s.id)) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A retried create with the same Idempotency-Key: the same session, with a fresh launch URL as
/// long as it was never opened (the first URL, which the client never received, stops working).
async fn replay(
    ctx: &Ctx,
    s: SigningSession,
    doc: &str,
    pinfl: &str,
    origin: &str,
    token: &str,
    launch_expires: i64,
) -> Result<Response, AppError> {
    if s.document_id != doc || s.expected_pinfl != pinfl || s.embed_origin != origin {
        return Err(AppError::Conflict("this Idempotency-Key was used for a different signing session".into()));
    }
    let r = sqlx::query(
        "UPDATE signing_sessions SET launch_hash = $2, launch_expires_at = $3 WHERE id = $1 AND launched = 0 AND status = 'created'",
    )
    .bind(&s.id)
    .bind(sha256_hex(token))
    .bind(launch_expires.min(s.expires_at))
    .execute(&ctx.app.docs.store.pool)
    .await?;
    if r.rows_affected() != 1 {
        return Err(AppError::Conflict(format!("signing session {} was already opened; create a new one", s.id)));
    }
    let s = ctx.sessions().get(&s.id).await?.unwrap_or(s);
    Ok(created(ctx, &s, token))
}

async fn owned(ctx: &Ctx, client: &crate::store::clients::Client, id: &str) -> Result<SigningSession, AppError> {
    match ctx.sessions().get(id).await? {
        Some(s) if s.client_id == client.id => ctx.refresh(s).await,
        _ => Err(AppError::NotFound(format!("no signing session {id}"))),
    }
}

/// `GET /signing-sessions/{id}`: the authoritative state.
pub async fn status(State(ctx): State<Ctx>, Mis(client): Mis, Path(id): Path<String>) -> Result<Response, AppError> {
    let s = owned(&ctx, &client, &id).await?;
    let mut r = Json(view(&ctx, &s)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `POST /signing-sessions/{id}/cancel`: the MIS withdraws the request.
pub async fn cancel(State(ctx): State<Ctx>, Mis(client): Mis, Path(id): Path<String>) -> Result<Response, AppError> {
    let s = owned(&ctx, &client, &id).await?;
    if !ctx.finish(&s, &["created", "opened", "authenticated"], "cancelled", None).await? {
        let now = ctx.sessions().get(&id).await?.unwrap_or(s);
        return Err(AppError::Conflict(format!(
            "signing session {id} is {}: it can no longer be cancelled",
            now.public_status()
        )));
    }
    let s = ctx.sessions().get(&id).await?.ok_or_else(|| AppError::NotFound(format!("no signing session {id}")))?;
    Ok(Json(view(&ctx, &s)).into_response())
}

// ---- client registry (CLI and seed file) ----

/// `scheme://host[:port]`, exactly as browsers serialise an origin; `https` unless loopback in
/// development.
pub fn check_origin(o: &str, mode: Mode) -> Result<(), String> {
    let u = url::Url::parse(o).map_err(|_| format!("`{o}` is not an origin like https://mis.example.uz"))?;
    let canonical = u.origin().ascii_serialization();
    if canonical != o {
        return Err(format!("`{o}` is not an origin: write it exactly as `{canonical}` (no path, no trailing slash)"));
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if u.scheme() != "https" && !(u.scheme() == "http" && loopback && mode == Mode::Development) {
        return Err(format!("`{o}` must use https (http only for loopback in development)"));
    }
    Ok(())
}

pub fn check_webhook_url(w: &str, mode: Mode) -> Result<(), String> {
    let u = url::Url::parse(w).map_err(|_| format!("`{w}` is not a URL"))?;
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if u.scheme() != "https" && !(u.scheme() == "http" && (mode == Mode::Development || loopback)) {
        return Err(format!("the webhook URL `{w}` must use https"));
    }
    Ok(())
}

/// One client as the seed file and `clients add` describe it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSpec {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `<salt>:<sha256 hex>` as `hujjat clients add` prints it (the secret itself is never in the file)
    pub secret_hash: String,
    #[serde(default)]
    pub embed_origins: Vec<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

pub async fn set_client_extras(
    store: &crate::store::Store,
    id: &str,
    webhook_secret: Option<&str>,
) -> Result<(), AppError> {
    sqlx::query("UPDATE clients SET webhook_secret = $2 WHERE id = $1")
        .bind(id)
        .bind(webhook_secret)
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Seed clients from `HUJJAT_CLIENTS_FILE` (JSON array of [`ClientSpec`]): clients missing from
/// the database are created; existing ones are left to `hujjat clients …`. In development the
/// demo client gets the demo MIS's webhook.
pub async fn seed_clients(state: &AppState) -> anyhow::Result<()> {
    let store = &state.docs.store;
    let mode = state.config.mode;
    if let Some(path) = &state.config.signing.clients_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("HUJJAT_CLIENTS_FILE {}: {e}", path.display()))?;
        let specs: Vec<ClientSpec> =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("HUJJAT_CLIENTS_FILE {}: {e}", path.display()))?;
        for c in specs {
            for o in &c.embed_origins {
                check_origin(o, mode).map_err(|e| anyhow::anyhow!("client {}: {e}", c.id))?;
            }
            if let Some(w) = &c.webhook_url {
                check_webhook_url(w, mode).map_err(|e| anyhow::anyhow!("client {}: {e}", c.id))?;
            }
            let (salt, hash) = c
                .secret_hash
                .split_once(':')
                .filter(|(s, h)| !s.is_empty() && h.len() == 64)
                .ok_or_else(|| anyhow::anyhow!("client {}: secretHash must be `<salt>:<sha256 hex>`", c.id))?;
            let exists =
                sqlx::query("SELECT id FROM clients WHERE id = $1").bind(&c.id).fetch_optional(&store.pool).await?;
            if exists.is_some() {
                continue;
            }
            sqlx::query(
                "INSERT INTO clients (id, name, secret_salt, secret_hash, embed_origins, webhook_url, webhook_secret, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&c.id)
            .bind(c.name.as_deref().unwrap_or(&c.id))
            .bind(salt)
            .bind(hash)
            .bind(serde_json::to_string(&c.embed_origins)?)
            .bind(&c.webhook_url)
            .bind(&c.webhook_secret)
            .bind(super::store::now_text())
            .execute(&store.pool)
            .await?;
            tracing::info!(client = %c.id, "client created from the seed file");
        }
    }
    if mode == Mode::Development && state.config.demo_client {
        let origin = state.config.signing.demo_origin.clone();
        let hook = format!("{origin}{}", crate::demo::WEBHOOK_PATH);
        let row = sqlx::query("SELECT webhook_url, embed_origins FROM clients WHERE id = $1")
            .bind(crate::app::DEMO_CLIENT_ID)
            .fetch_optional(&store.pool)
            .await?;
        if let Some(r) = row {
            let url: Option<String> = r.try_get("webhook_url")?;
            if url.is_none() {
                sqlx::query(
                    "UPDATE clients SET webhook_url = $2, webhook_secret = $3, embed_origins = $4 WHERE id = $1",
                )
                .bind(crate::app::DEMO_CLIENT_ID)
                .bind(hook)
                .bind(crate::demo::WEBHOOK_SECRET)
                .bind(serde_json::to_string(&[origin])?)
                .execute(&store.pool)
                .await?;
            }
        }
    }
    Ok(())
}
