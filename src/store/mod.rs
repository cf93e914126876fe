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
        Ok(Store { pool, backend, required_signatures: Default::default(), write_lock })
    }

    /// Taken before a write transaction begins and held until it ends (see `write_lock`).
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_lock {
            Some(m) => Some(m.clone().lock_owned().await),
            None => None,
        }
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
