//! Browser sessions: tower-sessions over the service's own database (`tower_sessions` table,
//! migration 0003). `tower-sessions-sqlx-store` takes a `SqlitePool` or a `PgPool`, not the
//! `AnyPool` the service runs on, so this is a small store of our own with portable SQL.
//!
//! The cookie: `__Host-hujjat-session`, `Path=/`, `Secure`, `HttpOnly`, `SameSite=None`,
//! `Partitioned` (CHIPS: tower-sessions has no setter, so [`partitioned`] appends it), expiring
//! after 30 minutes of inactivity.

use crate::store::Store;
use async_trait::async_trait;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use sqlx::Row;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};

pub const COOKIE: &str = "__Host-hujjat-session";

#[derive(Clone)]
pub struct DbSessionStore {
    store: Store,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessionStore")
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        DbSessionStore { store }
    }

    /// Remove expired records (called by the background sweeper).
    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let r = sqlx::query("DELETE FROM tower_sessions WHERE expires_at < $1")
            .bind(time::OffsetDateTime::now_utc().unix_timestamp())
            .execute(&self.store.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // a fresh id on the (astronomically unlikely) collision
        for _ in 0..4 {
            let r = sqlx::query("INSERT INTO tower_sessions (id, data, expires_at) VALUES ($1, $2, $3)")
                .bind(record.id.to_string())
                .bind(&data)
                .bind(record.expiry_date.unix_timestamp())
                .execute(&self.store.pool)
                .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if crate::store::is_unique_violation(&e) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(backend("could not find a free session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO tower_sessions (id, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET data = $2, expires_at = $3",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(record.expiry_date.unix_timestamp())
        .execute(&self.store.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row = sqlx::query("SELECT data, expires_at FROM tower_sessions WHERE id = $1 AND expires_at > $2")
            .bind(id.to_string())
            .bind(time::OffsetDateTime::now_utc().unix_timestamp())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.try_get("data").map_err(backend)?;
        let exp: i64 = row.try_get("expires_at").map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: time::OffsetDateTime::from_unix_timestamp(exp).map_err(backend)?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM tower_sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.store.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The session layer of the signing pages.
pub fn layer(store: Store) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(DbSessionStore::new(store))
        .with_name(COOKIE)
        .with_path("/")
        .with_secure(true)
        .with_http_only(true)
        .with_same_site(tower_sessions::cookie::SameSite::None)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
}

/// Append `Partitioned` to our session cookie (CHIPS), which tower-sessions cannot set.
pub async fn partitioned(mut res: Response) -> Response {
    let cookies: Vec<HeaderValue> = res.headers().get_all(header::SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return res;
    }
    res.headers_mut().remove(header::SET_COOKIE);
    for c in cookies {
        let s = c.to_str().unwrap_or("");
        let v = if s.starts_with(&format!("{COOKIE}=")) && !s.to_ascii_lowercase().contains("partitioned") {
            HeaderValue::from_str(&format!("{s}; Partitioned")).unwrap_or(c)
        } else {
            c
        };
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
