//! Signing sessions and login states in the database (portable SQL, `$n` placeholders).
//! Every state change is a conditional UPDATE on the expected current state, so two nodes or two
//! clicks never both win.

use crate::error::AppError;
use crate::store::Store;
use sqlx::Row;

/// States a session can be in. `signing` is internal (a Sign click in progress; reported as
/// `authenticated`).
pub const OPEN_STATES: &[&str] = &["created", "opened", "authenticated", "signing"];

/// A used login state: what the login was for and its per-attempt secrets.
#[derive(Debug, Clone)]
pub struct LoginState {
    /// The signing session of a popup login (`purpose` = `signing`).
    pub signing_session_id: Option<String>,
    /// `signing` or `browser` (a plain browser login, `GET /login`).
    pub purpose: String,
    /// Where a browser login returns (a same-origin path).
    pub next: Option<String>,
    pub nonce: String,
    pub pkce_verifier: String,
}

#[derive(Debug, Clone)]
pub struct SigningSession {
    pub id: String,
    pub client_id: String,
    pub document_id: String,
    pub document_version: i64,
    pub payload_sha256: String,
    pub expected_pinfl: String,
    pub role: String,
    pub embed_origin: String,
    pub locale: String,
    pub status: String,
    pub launch_expires_at: i64,
    pub launched: bool,
    pub expires_at: i64,
    pub csrf_token: Option<String>,
    pub browser_binding: Option<String>,
    pub signer_pinfl: Option<String>,
    pub signer_name: Option<String>,
    pub auth_method: Option<String>,
    pub identity_provider: Option<String>,
    pub signed_version: Option<i64>,
    pub error_code: Option<String>,
    pub created_at: String,
    pub opened_at: Option<String>,
    pub authenticated_at: Option<String>,
    pub finished_at: Option<String>,
}

impl SigningSession {
    pub fn is_open(&self) -> bool {
        OPEN_STATES.contains(&self.status.as_str())
    }

    /// The state reported outside (`signing` is still `authenticated`).
    pub fn public_status(&self) -> &str {
        if self.status == "signing" {
            "authenticated"
        } else {
            &self.status
        }
    }
}

const COLS: &str = "id, client_id, document_id, document_version, payload_sha256, expected_pinfl, role, embed_origin, \
    locale, status, launch_expires_at, launched, expires_at, csrf_token, browser_binding, signer_pinfl, signer_name, \
    auth_method, identity_provider, signed_version, error_code, created_at, opened_at, authenticated_at, finished_at";

fn row(r: &sqlx::any::AnyRow) -> Result<SigningSession, sqlx::Error> {
    Ok(SigningSession {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        document_id: r.try_get("document_id")?,
        document_version: r.try_get("document_version")?,
        payload_sha256: r.try_get("payload_sha256")?,
        expected_pinfl: r.try_get("expected_pinfl")?,
        role: r.try_get("role")?,
        embed_origin: r.try_get("embed_origin")?,
        locale: r.try_get("locale")?,
        status: r.try_get("status")?,
        launch_expires_at: r.try_get("launch_expires_at")?,
        launched: r.try_get::<i64, _>("launched")? != 0,
        expires_at: r.try_get("expires_at")?,
        csrf_token: r.try_get("csrf_token")?,
        browser_binding: r.try_get("browser_binding")?,
        signer_pinfl: r.try_get("signer_pinfl")?,
        signer_name: r.try_get("signer_name")?,
        auth_method: r.try_get("auth_method")?,
        identity_provider: r.try_get("identity_provider")?,
        signed_version: r.try_get("signed_version")?,
        error_code: r.try_get("error_code")?,
        created_at: r.try_get("created_at")?,
        opened_at: r.try_get("opened_at")?,
        authenticated_at: r.try_get("authenticated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub struct NewSession<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub document_id: &'a str,
    pub document_version: i64,
    pub payload_sha256: &'a str,
    pub expected_pinfl: &'a str,
    pub role: &'a str,
    pub embed_origin: &'a str,
    pub locale: &'a str,
    pub launch_hash: &'a str,
    pub launch_expires_at: i64,
    pub expires_at: i64,
    pub idempotency_key: Option<&'a str>,
}

/// What happened to a launch token.
pub enum Launch {
    /// consumed now: the session, opened
    Opened(SigningSession),
    /// known, but used before / expired / the session ended
    Used(SigningSession),
    Expired(SigningSession),
    Closed(SigningSession),
    Unknown,
}

pub struct Sessions<'a>(pub &'a Store);

impl Sessions<'_> {
    pub async fn insert(&self, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO signing_sessions (id, client_id, document_id, document_version, payload_sha256, expected_pinfl,
               role, embed_origin, locale, status, launch_hash, launch_expires_at, launched, expires_at, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'created', $10, $11, 0, $12, $13, $14)",
        )
        .bind(s.id)
        .bind(s.client_id)
        .bind(s.document_id)
        .bind(s.document_version)
        .bind(s.payload_sha256)
        .bind(s.expected_pinfl)
        .bind(s.role)
        .bind(s.embed_origin)
        .bind(s.locale)
        .bind(s.launch_hash)
        .bind(s.launch_expires_at)
        .bind(s.expires_at)
        .bind(s.idempotency_key)
        .bind(now_text())
        .execute(&self.0.pool)
        .await?;
        Ok(())
    }

    async fn one(&self, col: &str, v: &str) -> Result<Option<SigningSession>, AppError> {
        let r = sqlx::query(&format!("SELECT {COLS} FROM signing_sessions WHERE {col} = $1"))
            .bind(v)
            .fetch_optional(&self.0.pool)
            .await?;
        Ok(r.map(|r| row(&r)).transpose()?)
    }

    pub async fn get(&self, id: &str) -> Result<Option<SigningSession>, AppError> {
        self.one("id", id).await
    }

    pub async fn by_handle_hash(&self, h: &str) -> Result<Option<SigningSession>, AppError> {
        self.one("handle_hash", h).await
    }

    pub async fn by_idempotency(&self, client: &str, key: &str) -> Result<Option<SigningSession>, AppError> {
        let r =
            sqlx::query(&format!("SELECT {COLS} FROM signing_sessions WHERE client_id = $1 AND idempotency_key = $2"))
                .bind(client)
                .bind(key)
                .fetch_optional(&self.0.pool)
                .await?;
        Ok(r.map(|r| row(&r)).transpose()?)
    }

    /// Consume a launch token atomically: exactly one request opens the session.
    pub async fn launch(&self, launch_hash: &str, handle_hash: &str, csrf: &str) -> Result<Launch, AppError> {
        let now = now_secs();
        let r = sqlx::query(
            "UPDATE signing_sessions SET launched = 1, status = 'opened', handle_hash = $2, csrf_token = $3, opened_at = $4
             WHERE launch_hash = $1 AND launched = 0 AND status = 'created' AND launch_expires_at > $5 AND expires_at > $5",
        )
        .bind(launch_hash)
        .bind(handle_hash)
        .bind(csrf)
        .bind(now_text())
        .bind(now)
        .execute(&self.0.pool)
        .await?;
        let Some(s) = self.one("launch_hash", launch_hash).await? else {
            return Ok(Launch::Unknown);
        };
        if r.rows_affected() == 1 {
            return Ok(Launch::Opened(s));
        }
        Ok(if s.launched {
            Launch::Used(s)
        } else if s.status == "created" || s.status == "expired" {
            Launch::Expired(s)
        } else {
            Launch::Closed(s)
        })
    }

    /// Record the browser binding once (the first request that came back with the cookie).
    pub async fn bind_browser(&self, id: &str, binding_hash: &str) -> Result<bool, AppError> {
        let r =
            sqlx::query("UPDATE signing_sessions SET browser_binding = $2 WHERE id = $1 AND browser_binding IS NULL")
                .bind(id)
                .bind(binding_hash)
                .execute(&self.0.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Move from one of `from` to `to`, setting the finishing fields; true when this call did it.
    pub async fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        error_code: Option<&str>,
    ) -> Result<bool, AppError> {
        let list = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let terminal = matches!(to, "signed" | "cancelled" | "expired" | "failed");
        let sql = format!(
            "UPDATE signing_sessions SET status = $2, error_code = COALESCE($3, error_code), \
             finished_at = CASE WHEN $4 = 1 THEN $5 ELSE finished_at END WHERE id = $1 AND status IN ({list})"
        );
        let r = sqlx::query(&sql)
            .bind(id)
            .bind(to)
            .bind(error_code)
            .bind(terminal as i64)
            .bind(now_text())
            .execute(&self.0.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_error(&self, id: &str, code: &str) -> Result<(), AppError> {
        sqlx::query("UPDATE signing_sessions SET error_code = $2 WHERE id = $1")
            .bind(id)
            .bind(code)
            .execute(&self.0.pool)
            .await?;
        Ok(())
    }

    pub async fn authenticated(&self, id: &str, who: &crate::identity::Identity) -> Result<bool, AppError> {
        let r = sqlx::query(
            "UPDATE signing_sessions SET status = 'authenticated', signer_pinfl = $2, signer_name = $3, auth_method = $4,
               identity_provider = $5, idp_session_hash = $6, authenticated_at = $7, error_code = NULL
             WHERE id = $1 AND status IN ('opened', 'authenticated') AND expires_at > $8",
        )
        .bind(id)
        .bind(&who.pinfl)
        .bind(&who.name)
        .bind(&who.auth_method)
        .bind(&who.provider)
        .bind(&who.session_hash)
        .bind(now_text())
        .bind(now_secs())
        .execute(&self.0.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The signer who was refused (another PINFL): recorded for the audit, the session fails.
    pub async fn mismatch(&self, id: &str, who: &crate::identity::Identity) -> Result<bool, AppError> {
        let r = sqlx::query(
            "UPDATE signing_sessions SET status = 'failed', error_code = 'signer_mismatch', signer_pinfl = $2, signer_name = $3,
               auth_method = $4, identity_provider = $5, idp_session_hash = $6, finished_at = $7
             WHERE id = $1 AND status IN ('opened', 'authenticated')",
        )
        .bind(id)
        .bind(&who.pinfl)
        .bind(&who.name)
        .bind(&who.auth_method)
        .bind(&who.provider)
        .bind(&who.session_hash)
        .bind(now_text())
        .execute(&self.0.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn signed(&self, id: &str, version: i64) -> Result<bool, AppError> {
        let r = sqlx::query(
            "UPDATE signing_sessions SET status = 'signed', signed_version = $2, finished_at = $3 WHERE id = $1 AND status = 'signing'",
        )
        .bind(id)
        .bind(version)
        .bind(now_text())
        .execute(&self.0.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Open sessions past their deadline (or never launched past the launch deadline).
    pub async fn due_for_expiry(&self, limit: i64) -> Result<Vec<String>, AppError> {
        let now = now_secs();
        let rows = sqlx::query(
            "SELECT id FROM signing_sessions WHERE (status IN ('created', 'opened', 'authenticated', 'signing') AND expires_at <= $1)
               OR (status = 'created' AND launch_expires_at <= $1) ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.0.pool)
        .await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<String, _>("id").ok()).collect())
    }

    pub async fn insert_login_state(
        &self,
        state_hash: &str,
        sid: &str,
        nonce: &str,
        verifier: &str,
        ttl: i64,
    ) -> Result<(), AppError> {
        self.insert_state(state_hash, Some(sid), "signing", None, nonce, verifier, ttl).await
    }

    /// A login state of a plain browser login (`GET /login`): no signing session; `next` is the
    /// same-origin path to return to (checked by the caller).
    pub async fn insert_browser_login_state(
        &self,
        state_hash: &str,
        next: &str,
        nonce: &str,
        verifier: &str,
        ttl: i64,
    ) -> Result<(), AppError> {
        self.insert_state(state_hash, None, "browser", Some(next), nonce, verifier, ttl).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_state(
        &self,
        state_hash: &str,
        signing_session_id: Option<&str>,
        purpose: &str,
        next: Option<&str>,
        nonce: &str,
        verifier: &str,
        ttl: i64,
    ) -> Result<(), AppError> {
        sqlx::query("DELETE FROM login_states WHERE expires_at < $1").bind(now_secs()).execute(&self.0.pool).await?;
        sqlx::query(
            "INSERT INTO login_states (state_hash, signing_session_id, purpose, next_path, nonce, pkce_verifier, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(signing_session_id)
        .bind(purpose)
        .bind(next)
        .bind(nonce)
        .bind(verifier)
        .bind(now_secs() + ttl)
        .execute(&self.0.pool)
        .await?;
        Ok(())
    }

    /// What a login state is for and whether it was used, without using it (which callback
    /// answers it); None if unknown.
    pub async fn peek_login_state(&self, state_hash: &str) -> Result<Option<(String, bool)>, AppError> {
        let row = sqlx::query("SELECT purpose, used FROM login_states WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(&self.0.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("purpose")?, r.try_get::<i64, _>("used")? != 0)),
            None => None,
        })
    }

    /// Use a login state once, or None if unknown/used/expired.
    pub async fn take_login_state(&self, state_hash: &str) -> Result<Option<LoginState>, AppError> {
        let r = sqlx::query("UPDATE login_states SET used = 1 WHERE state_hash = $1 AND used = 0 AND expires_at > $2")
            .bind(state_hash)
            .bind(now_secs())
            .execute(&self.0.pool)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT signing_session_id, purpose, next_path, nonce, pkce_verifier FROM login_states WHERE state_hash = $1",
        )
        .bind(state_hash)
        .fetch_one(&self.0.pool)
        .await?;
        Ok(Some(LoginState {
            signing_session_id: row.try_get("signing_session_id")?,
            purpose: row.try_get("purpose")?,
            next: row.try_get("next_path")?,
            nonce: row.try_get("nonce")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
        }))
    }
}
