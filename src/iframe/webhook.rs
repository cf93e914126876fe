//! Webhooks to the MIS on every terminal state of a signing session (signed, cancelled, expired,
//! failed): a durable queue in the database, delivered at least once with exponential back-off,
//! signed the Standard Webhooks way:
//!
//! ```text
//! webhook-id: <delivery id>            (the same on every retry: de-duplicate on it)
//! webhook-timestamp: <Unix seconds>
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//! ```
//!
//! where `key` is the base64 part of the client's `whsec_…` secret. The body carries ids and the
//! state only; the status API (`GET /signing-sessions/{id}`) stays the authority.

use crate::error::AppError;
use crate::store::Store;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Attempts before a delivery is given up (status `failed`); with the default base of 10 s and
/// factor 3 (capped at 6 h) the last try is about two days after the first.
pub const MAX_ATTEMPTS: i64 = 12;

/// A new `whsec_…` secret (32 random bytes).
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut b[..]);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(b))
}

/// The HMAC key of a secret: the base64 after `whsec_`, else the secret's bytes as they are.
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// What a receiver does: recompute, compare in constant time, reject stale timestamps (5 min).
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &str, header: &str, now: i64) -> bool {
    if (now - timestamp).abs() > 300 {
        return false;
    }
    let want = signature(secret, id, timestamp, body);
    header.split(' ').any(|sig| crate::identity::ct_eq(sig, &want))
}

/// The queue and its worker.
#[derive(Clone)]
pub struct Webhooks {
    pub store: Store,
    pub wake: Arc<Notify>,
    pub base_delay_ms: u64,
    http: reqwest::Client,
}

impl Webhooks {
    pub fn new(store: Store, base_delay_ms: u64) -> Webhooks {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Webhooks { store, wake: Arc::new(Notify::new()), base_delay_ms: base_delay_ms.max(1), http }
    }

    /// Queue the event for the client's webhook, if it has one.
    pub async fn enqueue(&self, client_id: &str, event: &str, data: Value) -> Result<(), AppError> {
        let row = sqlx::query("SELECT webhook_url FROM clients WHERE id = $1")
            .bind(client_id)
            .fetch_optional(&self.store.pool)
            .await?;
        let Some(url) = row.and_then(|r| r.try_get::<Option<String>, _>("webhook_url").ok().flatten()) else {
            return Ok(());
        };
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let body = json!({"id": id, "type": event, "timestamp": super::store::now_text(), "data": data});
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, client_id, url, event, body, status, attempts, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)",
        )
        .bind(&id)
        .bind(client_id)
        .bind(url)
        .bind(event)
        .bind(body.to_string())
        .bind(super::store::now_secs())
        .bind(super::store::now_text())
        .execute(&self.store.pool)
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    fn delay(&self, attempts: i64) -> Duration {
        let ms = self.base_delay_ms.saturating_mul(3u64.saturating_pow((attempts - 1).clamp(0, 20) as u32));
        Duration::from_millis(ms.min(6 * 3600 * 1000))
    }

    /// Deliver what is due; returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms / 1000;
        let rows = sqlx::query(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 AND locked_until <= $1
             ORDER BY next_attempt_at LIMIT 20",
        )
        .bind(now)
        .fetch_all(&self.store.pool)
        .await?;
        let mut n = 0;
        for r in rows {
            let id: String = r.try_get("id")?;
            // claim it (several nodes may share the queue)
            let claimed = sqlx::query(
                "UPDATE webhook_deliveries SET locked_until = $2 WHERE id = $1 AND status = 'pending' AND locked_until <= $3",
            )
            .bind(&id)
            .bind(now + 60)
            .bind(now)
            .execute(&self.store.pool)
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            n += 1;
            self.deliver(&id).await?;
        }
        Ok(n)
    }

    async fn deliver(&self, id: &str) -> Result<(), AppError> {
        let r = sqlx::query(
            "SELECT d.url, d.body, d.attempts, d.client_id, c.webhook_secret FROM webhook_deliveries d
             LEFT JOIN clients c ON c.id = d.client_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_one(&self.store.pool)
        .await?;
        let url: String = r.try_get("url")?;
        let body: String = r.try_get("body")?;
        let attempts: i64 = r.try_get::<i64, _>("attempts")? + 1;
        let client: String = r.try_get("client_id")?;
        let secret: Option<String> = r.try_get("webhook_secret")?;
        let ts = chrono::Utc::now().timestamp();
        let mut rq = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "hujjat-webhooks/1")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(s) = secret.as_deref().filter(|s| !s.is_empty()) {
            rq = rq.header("webhook-signature", signature(s, id, ts, &body));
        }
        let outcome = match rq.body(body).send().await {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(format!("HTTP {}", res.status().as_u16())),
            Err(e) if e.is_timeout() => Err("timeout".to_string()),
            Err(_) => Err("connection failed".to_string()),
        };
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, delivered_at = $3, last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(attempts)
                .bind(super::store::now_text())
                .execute(&self.store.pool)
                .await?;
                tracing::info!(delivery = %id, client = %client, attempts, "webhook delivered");
            }
            Err(why) => {
                let give_up = attempts >= MAX_ATTEMPTS;
                let next = chrono::Utc::now().timestamp_millis() + self.delay(attempts).as_millis() as i64;
                // next_attempt_at in whole seconds, rounded up so a short test delay still waits
                let next_secs = (next + 999) / 1000;
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, locked_until = 0, last_error = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(if give_up { "failed" } else { "pending" })
                .bind(attempts)
                .bind(next_secs)
                .bind(&why)
                .execute(&self.store.pool)
                .await?;
                tracing::warn!(delivery = %id, client = %client, attempts, error = %why, give_up, "webhook not delivered");
            }
        }
        Ok(())
    }

    /// The worker: wakes on new deliveries and at least every second.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.run_once().await {
                    tracing::warn!(error = %e, "webhook worker: database error");
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_vector() {
        // the example of the Standard Webhooks specification
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &sig, 1614265330));
        assert!(!verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &sig, 1614265330 + 301));
        assert!(!verify(secret, "msg_other", 1614265330, body, &sig, 1614265330));
    }
}
