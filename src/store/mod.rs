//! Storage: one `sqlx::AnyPool` over SQLite (embedded default) or PostgreSQL (`DATABASE_URL=postgres://…`).
//! Every query here is portable SQL with `$n` placeholders (SQLite reads `$1` as parameter 1), and
//! every test suite runs on both backends.

pub mod clients;
pub mod documents;
mod writer;

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
    /// SQLite: the group commit of new documents and of reads' audit records ([`writer`]).
    /// `None` on PostgreSQL.
    pub writer: Option<writer::Writer>,
}

/// A write turn: see [`Store::write_turn`], [`Store::bulk_write_turn`] and [`Store::commit_turn`].
pub struct WriteTurn {
    _write: Option<tokio::sync::OwnedMutexGuard<()>>,
    _bulk: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Store {
    /// Open the database, migrate it, and on SQLite start the WAL [`checkpointer`].
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let store = Store::open(url).await?;
        if store.backend == Backend::Sqlite {
            tokio::spawn(checkpointer(store.clone()));
        }
        Ok(store)
    }

    /// [`Store::connect`] without the checkpointer (its tests drive it by hand).
    async fn open(url: &str) -> anyhow::Result<Store> {
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
                    // wal_autocheckpoint=0: checkpoints run in the background (`checkpointer`),
                    // not inside the commit of whichever write crossed 1,000 WAL pages
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; \
                         PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;",
                    )
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
        let mut store = Store {
            pool,
            backend,
            required_signatures: Default::default(),
            write_lock,
            bulk_lock: Default::default(),
            writer: None,
        };
        if backend == Backend::Sqlite {
            // the writer's connection leaves the pool (which may open another in its place); its
            // store has no writer, so the writer ends with the last handle of this one
            let conn = store.pool.acquire().await?.detach();
            store.writer = Some(writer::Writer::start(conn, store.clone())?);
        }
        Ok(store)
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

/// Log frames (4 KiB pages) after which the checkpointer lets the log start over: 16 MiB.
const WAL_RESTART_FRAMES: i64 = 4_096;

/// SQLite: moves the write-ahead log into the database file off the write path (issue 7).
///
/// With SQLite's automatic checkpoint, the commit that takes the log past 1,000 pages copies them
/// into the database and fsyncs it while it holds the one write lock: a quarter of the time the
/// SQLite thread spent per create under load, during which every other write waited. Here a
/// `PASSIVE` checkpoint runs every 100 ms on a connection of its own; it takes no write lock, so
/// writers carry on while it copies (<https://sqlite.org/c3ref/wal_checkpoint_v2.html>).
///
/// A log starts over only when a write transaction begins after the whole log is in the database
/// (<https://sqlite.org/wal.html#avoiding_excessively_large_wal_files>), which never happens while
/// creates follow each other during a checkpoint: the log grew past 1 GB in a load run. So once
/// it holds [`WAL_RESTART_FRAMES`], the checkpointer takes a write turn and checkpoints what was
/// written since its last pass (a few hundred pages, not the thousands the automatic checkpoint
/// copied under the lock); the next write then starts the log over. Every pass is `PASSIVE`: it
/// never waits for readers. While a long read (an archive export) holds an old snapshot, the log
/// grows, as it would with SQLite's own checkpoint, and starts over at the first pass after the
/// read ends; a `TRUNCATE` that waited for the reader would stop every write meanwhile (up to
/// `busy_timeout`, 10 s). `journal_size_limit` then cuts the file back to 64 MiB.
///
/// Durability is unchanged: with `synchronous=NORMAL` a commit is in the log, and the log is
/// synced before a checkpoint copies it (<https://sqlite.org/pragma.html#pragma_synchronous>).
/// The last connection to close checkpoints the rest, as SQLite always does. The task ends when
/// the pool is closed or the runtime stops.
async fn checkpointer(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if store.pool.is_closed() {
            return;
        }
        let result = store.checkpoint().await;
        // once per run of failures (a full disk would otherwise log ten times a second)
        match (&result, failing) {
            (Err(e), false) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying every 100 ms"),
            (Ok(_), true) => tracing::info!("WAL checkpoint works again"),
            _ => {}
        }
        failing = result.is_err();
    }
}

/// A checkpoint's result: frames in the log, and how many of them are in the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub log: i64,
    pub done: i64,
}

impl Store {
    /// One pass of [`checkpointer`]. On PostgreSQL, nothing (`0, 0`).
    pub async fn checkpoint(&self) -> Result<Checkpoint, AppError> {
        if self.backend != Backend::Sqlite {
            return Ok(Checkpoint { log: 0, done: 0 });
        }
        let c = self.passive_checkpoint().await?;
        if c.log < WAL_RESTART_FRAMES {
            return Ok(c);
        }
        let _turn = self.write_turn().await;
        self.passive_checkpoint().await
    }

    async fn passive_checkpoint(&self) -> Result<Checkpoint, AppError> {
        use sqlx::Row;
        let r = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.pool).await?;
        Ok(Checkpoint { log: r.try_get(1)?, done: r.try_get(2)? })
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

    /// A SQLite file with a `scratch` table; `background`: with the checkpointer of
    /// [`Store::connect`], else without (the test runs the passes).
    async fn scratch_store(background: bool) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = if background { Store::connect(&url).await } else { Store::open(&url).await }.unwrap();
        sqlx::query("CREATE TABLE scratch (b TEXT)").execute(&store.pool).await.unwrap();
        (dir, store)
    }

    async fn write_rows(store: &Store, rows: usize, pause: Duration) {
        let filler = "x".repeat(100_000);
        for _ in 0..rows {
            let turn = store.write_turn().await;
            sqlx::query("INSERT INTO scratch (b) VALUES ($1)").bind(&filler).execute(&store.pool).await.unwrap();
            drop(turn);
            tokio::time::sleep(pause).await;
        }
    }

    fn wal_bytes(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db-wal")).map(|m| m.len()).unwrap_or(0)
    }

    /// Commits never checkpoint (`wal_autocheckpoint=0`, off the write lock); one pass of
    /// [`Store::checkpoint`] copies the whole log once it is past [`WAL_RESTART_FRAMES`], and the
    /// next write starts the log over.
    #[tokio::test]
    async fn commits_leave_the_checkpoint_to_the_checkpointer_whose_pass_restarts_a_long_log() {
        let (dir, store) = scratch_store(false).await;
        // 170 rows of 100 kB: about 4,300 frames of 4 KiB
        write_rows(&store, 170, Duration::ZERO).await;
        let frames = WAL_RESTART_FRAMES as u64;
        assert!(wal_bytes(dir.path()) > frames * 4096, "a commit checkpointed: {} bytes", wal_bytes(dir.path()));
        let c = store.checkpoint().await.unwrap();
        assert!(c.log >= WAL_RESTART_FRAMES && c.done == c.log, "{c:?}");
        write_rows(&store, 1, Duration::ZERO).await;
        let c = store.checkpoint().await.unwrap();
        assert!(c.log < 100, "the log did not start over: {c:?}");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch").fetch_one(&store.pool).await.unwrap();
        assert_eq!(n, 171);
    }

    /// Under writes that never pause for long, the background checkpointer of [`Store::connect`]
    /// keeps the log from holding everything written (without it: 40 MB here; with `PASSIVE`
    /// passes alone, no write-turn pass: 1 GB in a 60-second load run).
    #[tokio::test]
    async fn the_checkpointer_keeps_the_log_bounded_under_continuous_writes() {
        let (dir, store) = scratch_store(true).await;
        // 400 rows of 100 kB, 40 MB in at least 0.8 s: eight ticks of the checkpointer
        write_rows(&store, 400, Duration::from_millis(2)).await;
        let wal = wal_bytes(dir.path());
        assert!(wal < 30_000_000, "the log grew to {wal} bytes");
        let c = store.checkpoint().await.unwrap();
        assert!(c.log < 3 * WAL_RESTART_FRAMES, "{c:?}");
    }

    /// A read that holds an old snapshot keeps the log from starting over but never stops writes:
    /// the checkpointer's pass does not wait for it, and the log starts over once it ends.
    #[tokio::test]
    async fn a_long_read_holds_the_log_back_without_stopping_writes() {
        let (_dir, store) = scratch_store(false).await;
        write_rows(&store, 1, Duration::ZERO).await;
        let mut reader = store.pool.begin().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch").fetch_one(&mut *reader).await.unwrap();
        assert_eq!(n, 1);
        write_rows(&store, 170, Duration::ZERO).await;
        // a pass that waited for the reader (`TRUNCATE`, `RESTART`) would hold the write turn for
        // `busy_timeout` (10 s) and then give up; a `PASSIVE` pass returns in milliseconds
        let c =
            tokio::time::timeout(Duration::from_secs(5), store.checkpoint()).await.expect("the pass waited").unwrap();
        assert!(c.log >= WAL_RESTART_FRAMES && c.done < c.log, "{c:?}");
        write_rows(&store, 1, Duration::ZERO).await;
        reader.commit().await.unwrap();
        let c = store.checkpoint().await.unwrap();
        assert_eq!(c.done, c.log, "{c:?}");
        write_rows(&store, 1, Duration::ZERO).await;
        assert!(store.checkpoint().await.unwrap().log < 100, "the log did not start over");
    }
}
