//! Storage: one `sqlx::AnyPool` over SQLite (embedded default) or PostgreSQL (`DATABASE_URL=postgres://…`).
//! Every query here is portable SQL with `$n` placeholders (SQLite reads `$1` as parameter 1), and
//! every test suite runs on both backends.

pub mod clients;
pub mod documents;

use crate::error::AppError;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Signatures a document needs before it is queued for the DHP (`HUJJAT_DHP_REQUIRED_SIGNATURES`).
    pub required_signatures: std::sync::Arc<crate::submit::RequiredSignatures>,
    /// SQLite allows one writer at a time: write transactions of this process queue here instead
    /// of meeting SQLITE_BUSY, whose busy handler sleeps in steps of up to 100 ms (issue 7: the
    /// p99 of POST /forms/003/documents under load). `None` on PostgreSQL.
    pub write_lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// Writers of document versions (165 kB Bundles: a create, an update, a signature) queue here
    /// first, so at most one of them waits for `write_lock` at a time. A short write — the audit
    /// record of a read, an outbox update, a role change — then waits for at most two version
    /// writes instead of every one queued (tokio's mutex is FIFO): under a burst of creates, a
    /// `GET /documents/{id}` (whose audit record is a write) is not held up by all of them. On
    /// PostgreSQL the same lock is [`Store::commit_turn`].
    pub bulk_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A write turn: see [`Store::write_turn`], [`Store::bulk_write_turn`] and [`Store::commit_turn`].
pub struct WriteTurn {
    _write: Option<tokio::sync::OwnedMutexGuard<()>>,
    _bulk: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Store {
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:");
        };
        if backend == Backend::Sqlite {
            // create the data directory of a file database
            if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
                let path = path.split('?').next().unwrap_or("");
                if !path.is_empty() && path != ":memory:" {
                    if let Some(dir) = std::path::Path::new(path).parent() {
                        if !dir.as_os_str().is_empty() {
                            std::fs::create_dir_all(dir)?;
                        }
                    }
                }
            }
        }
        let opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10));
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts.connect(url).await?;
        MIGRATOR.run(&pool).await?;
        let write_lock = (backend == Backend::Sqlite).then(Default::default);
        Ok(Store { pool, backend, required_signatures: Default::default(), write_lock, bulk_lock: Default::default() })
    }

    /// Taken before a short write transaction begins and held until it ends (see `write_lock`).
    pub async fn write_turn(&self) -> WriteTurn {
        let write = match &self.write_lock {
            Some(m) => Some(m.clone().lock_owned().await),
            None => None,
        };
        WriteTurn { _write: write, _bulk: None }
    }

    /// [`Store::write_turn`] for a transaction that writes a document version (see `bulk_lock`).
    /// On PostgreSQL, nothing: such a transaction takes [`Store::commit_turn`] before its audit
    /// record instead.
    pub async fn bulk_write_turn(&self) -> WriteTurn {
        if self.backend != Backend::Sqlite {
            return WriteTurn { _write: None, _bulk: None };
        }
        let bulk = self.bulk_lock.clone().lock_owned().await;
        WriteTurn { _bulk: Some(bulk), ..self.write_turn().await }
    }

    /// PostgreSQL: taken by a document-version transaction of this node just before it appends its
    /// audit record, held until it commits. Every audit record locks the chain head row
    /// (`audit::append`) until its transaction ends, and PostgreSQL queues waiters for a row in
    /// order; without this turn, a read's audit record waited behind every create of the node
    /// (mixed load: `GET` p50 60 ms). The inserts of the 165 kB versions still overlap.
    /// On SQLite, nothing: [`Store::bulk_write_turn`] already holds the whole transaction.
    pub async fn commit_turn(&self) -> WriteTurn {
        if self.backend != Backend::Postgres {
            return WriteTurn { _write: None, _bulk: None };
        }
        WriteTurn { _write: None, _bulk: Some(self.bulk_lock.clone().lock_owned().await) }
    }

    pub async fn healthy(&self) -> Result<(), AppError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Is this error a unique-constraint violation (both backends)?
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A short write waits for at most one document-version write besides the one in progress,
    /// however many are queued (all in one FIFO queue, it would come after every one of them).
    #[tokio::test]
    async fn a_short_write_does_not_wait_for_every_queued_version_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = store.bulk_write_turn().await;
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (store, order) = (store.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = store.bulk_write_turn().await;
                order.lock().unwrap().push(format!("version {i}"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }));
            // queue them in this order
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (s, o) = (store.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _turn = s.write_turn().await;
            o.lock().unwrap().push("short".to_string());
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 6, "{order:?}");
        let short = order.iter().position(|s| s == "short").unwrap();
        assert!(short <= 1, "the short write came after {short} version writes: {order:?}");
        // the version writes keep their order
        let versions: Vec<_> = order.iter().filter(|s| *s != "short").cloned().collect();
        assert_eq!(versions, (0..5).map(|i| format!("version {i}")).collect::<Vec<_>>());
    }
}
