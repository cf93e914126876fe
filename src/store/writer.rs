//! SQLite: group commit of new documents and audit records (issue 7).
//!
//! SQLite has one writer at a time, and under a burst of creates that writer was the bound: a
//! create held the write turn for its own transaction — `BEGIN`, seven statements, `COMMIT` —
//! each statement a round trip between the request's task and the connection's thread, and each
//! return to the task waiting for a runtime worker busy composing other documents. The two cores
//! were never both busy (sixth session: 1.1–1.2 of 2). A read's audit record (its own
//! transaction, five round trips) waited the same way, holding the write turn meanwhile.
//!
//! Here one writer, on a thread and connection of its own, takes every create and audit record
//! queued since its last commit and writes them in one transaction, in the order they came: the
//! turn is taken once per batch, its statements return to a thread that does nothing else, and
//! the commit is shared. Each gets its own answer:
//!
//! * an id that exists (or repeats within the batch) is a `409` for that create alone — its
//!   `INSERT … ON CONFLICT DO NOTHING` writes nothing, and the rest of the batch goes on;
//! * any other failure rolls the batch back and its work is written again one transaction each,
//!   so one bad create (say, an amendment whose replaced document is gone) fails alone;
//! * the answer comes only after the transaction that holds it has committed: `201` means
//!   stored, with its audit record, and a read whose record cannot be written fails, as before.
//! * when nothing of a batch could be written, the writer takes a fresh connection from the pool,
//!   so a connection that fails every write (its SQLite thread gone) fails one batch, not all.
//!
//! Audit records keep their order in the hash chain: a batch appends them one after another. The
//! other writes (updates, signatures, the outbox, sessions) keep their own transactions and meet
//! the writer at the store's write turn ([`Store::bulk_write_turn`]). On PostgreSQL there is no
//! writer: transactions there overlap.

use super::documents::{insert_document, NewVersion};
use super::Store;
use crate::archive::audit::{AuditEntry, AuditRecord};
use crate::archive::WriteHook;
use crate::error::AppError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Jobs written in one transaction at most.
const MAX_BATCH: usize = 64;

/// The handle the store keeps: where work is sent, and what the writer has done.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    /// Transactions committed (batches, counting a batch's one-by-one retries as one each).
    commits: Arc<AtomicU64>,
}

enum Job {
    Create(Box<Create>, oneshot::Sender<Result<(), AppError>>),
    Audit(Box<AuditEntry>, oneshot::Sender<Result<AuditRecord, AppError>>),
    /// Tests: a statement run on the writer's connection, in its batch.
    #[cfg(test)]
    Sql(String, oneshot::Sender<Result<(), AppError>>),
}

/// What a job wrote.
enum Done {
    Created,
    Audited(Box<AuditRecord>),
}

impl Job {
    /// Send the job's answer; a request that has gone (client disconnected) finds its work
    /// stored all the same.
    fn answer(self, r: Result<Done, AppError>) {
        match self {
            Job::Create(_, done) => {
                let _ = done.send(r.map(|_| ()));
            }
            #[cfg(test)]
            Job::Sql(_, done) => {
                let _ = done.send(r.map(|_| ()));
            }
            Job::Audit(_, done) => {
                let _ = done.send(r.and_then(|d| match d {
                    Done::Audited(rec) => Ok(*rec),
                    Done::Created => Err(AppError::Internal(anyhow::anyhow!("an audit job answered as a create"))),
                }));
            }
        }
    }
}

/// One create, owned so that it can cross to the writer's thread.
struct Create {
    id: String,
    form: String,
    client_id: String,
    bundle_identifier: String,
    input: String,
    bundle: String,
    patient_pinfl: Option<String>,
    composition_date: Option<String>,
    organization: Option<String>,
    archive: Option<WriteHook>,
    t: String,
}

impl Create {
    fn version(&self) -> NewVersion<'_> {
        NewVersion {
            bundle_identifier: &self.bundle_identifier,
            input: &self.input,
            bundle: &self.bundle,
            patient_pinfl: self.patient_pinfl.as_deref(),
            composition_date: self.composition_date.as_deref(),
            organization: self.organization.as_deref(),
        }
    }
}

fn stopped() -> AppError {
    AppError::Unavailable("the document writer has stopped".into())
}

/// The request's address is task-local: take it on the request's task, not the writer's thread.
fn with_source(mut e: AuditEntry) -> AuditEntry {
    if e.source_address.is_none() {
        e.source_address = crate::archive::audit::current_source();
    }
    e
}

impl Writer {
    /// Start the writer on its own thread with `conn` (a connection taken out of the pool) and
    /// `store` (for its write turn). It ends when the last [`Writer`] handle is dropped.
    pub(super) fn start(conn: sqlx::AnyConnection, store: Store) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let count = commits.clone();
        // A thread of its own rather than a task: the writer's every statement wakes it, and a
        // task would wait each time for a runtime worker to finish the compose it is running.
        std::thread::Builder::new().name("hujjat-writer".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run(conn, store, rx, count)),
                // the receiver drops: every job answers 503 (`stopped`)
                Err(e) => tracing::error!(error = %e, "the document writer could not start"),
            }
        })?;
        Ok(Writer { jobs, commits })
    }

    /// Write version 1 of a new document in the next group commit; returns once it is committed.
    pub(super) async fn create(
        &self,
        id: &str,
        form: &str,
        client_id: &str,
        v: &NewVersion<'_>,
        archive: Option<&WriteHook>,
        t: String,
    ) -> Result<(), AppError> {
        let archive = archive.map(|h| WriteHook { audit: with_source(h.audit.clone()), replaces: h.replaces.clone() });
        let create = Create {
            id: id.to_string(),
            form: form.to_string(),
            client_id: client_id.to_string(),
            bundle_identifier: v.bundle_identifier.to_string(),
            input: v.input.to_string(),
            bundle: v.bundle.to_string(),
            patient_pinfl: v.patient_pinfl.map(str::to_string),
            composition_date: v.composition_date.map(str::to_string),
            organization: v.organization.map(str::to_string),
            archive,
            t,
        };
        let (done, answer) = oneshot::channel();
        self.jobs.send(Job::Create(Box::new(create), done)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Append an audit record in the next group commit; returns once it is committed.
    pub async fn audit(&self, e: AuditEntry) -> Result<AuditRecord, AppError> {
        let (done, answer) = oneshot::channel();
        self.jobs.send(Job::Audit(Box::new(with_source(e)), done)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Transactions the writer has committed.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

async fn run(
    mut conn: sqlx::AnyConnection,
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Job>,
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let waited = std::time::Instant::now();
        let turn = store.bulk_write_turn().await;
        let began = std::time::Instant::now();
        // work that queued while the turn was busy joins this batch
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers = match write(&mut conn, &batch).await {
            Ok(answers) => {
                commits.fetch_add(1, Ordering::Relaxed);
                answers
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, jobs = batch.len(), "a group commit failed; writing its jobs one by one");
                let mut answers = Vec::with_capacity(batch.len());
                for job in &batch {
                    answers.push(match write(&mut conn, std::slice::from_ref(job)).await {
                        Ok(mut one) => {
                            commits.fetch_add(1, Ordering::Relaxed);
                            one.pop().unwrap_or_else(|| Err(stopped()))
                        }
                        Err(e) => Err(e),
                    });
                }
                answers
            }
            Err(e) => vec![Err(e)],
        };
        drop(turn);
        if answers.iter().all(|a| matches!(a, Err(e) if !matches!(e, AppError::Conflict(_)))) {
            // Nothing could be written: the connection itself may be what fails (its SQLite
            // thread gone). A fresh one costs nothing when the cause is elsewhere (a full disk).
            match store.pool.acquire().await {
                Ok(fresh) => conn = fresh.detach(),
                Err(e) => tracing::warn!(error = %e, "the document writer could not renew its connection"),
            }
        }
        tracing::debug!(
            jobs = batch.len(),
            turn_wait_us = (began - waited).as_micros() as u64,
            held_us = began.elapsed().as_micros() as u64,
            "group commit"
        );
        for (job, answer) in batch.drain(..).zip(answers) {
            job.answer(answer);
        }
    }
}

/// One transaction for `jobs`: per job what it wrote, or `Err(Conflict)` for a create whose id
/// exists (nothing written for it); `Err` when the transaction failed and nothing was written.
async fn write(conn: &mut sqlx::AnyConnection, jobs: &[Job]) -> Result<Vec<Result<Done, AppError>>, AppError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Job::Create(c, _) => {
                match insert_document(&mut tx, &c.id, &c.form, &c.client_id, &c.version(), &c.t).await {
                    // nothing of this create was written: the others go on
                    Err(AppError::Conflict(m)) => {
                        answers.push(Err(AppError::Conflict(m)));
                        continue;
                    }
                    Err(e) => return Err(rolled_back(tx, e).await),
                    Ok(()) => {}
                }
                if let Err(e) = crate::archive::on_write(&mut tx, &c.id, c.archive.as_ref()).await {
                    return Err(rolled_back(tx, e).await);
                }
                answers.push(Ok(Done::Created));
            }
            Job::Audit(e, _) => match crate::archive::audit::append(&mut tx, e).await {
                Ok(rec) => answers.push(Ok(Done::Audited(Box::new(rec)))),
                Err(e) => return Err(rolled_back(tx, e).await),
            },
            #[cfg(test)]
            Job::Sql(sql, _) => match sqlx::query(sql).execute(&mut *tx).await {
                Ok(_) => answers.push(Ok(Done::Created)),
                Err(e) => return Err(rolled_back(tx, e.into()).await),
            },
        }
    }
    tx.commit().await?;
    Ok(answers)
}

async fn rolled_back(tx: sqlx::Transaction<'_, sqlx::Any>, e: AppError) -> AppError {
    if let Err(r) = tx.rollback().await {
        tracing::warn!(error = %r, "rolling back a group commit failed");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::audit::{self, Agent, AuditEntry, Event};
    use std::time::Duration;

    fn hook(id: &str, replaces: Option<&str>) -> WriteHook {
        let audit = AuditEntry::new(Event::Create, Agent::system("test")).document(id, Some(1));
        WriteHook { audit, replaces: replaces.map(str::to_string) }
    }

    fn version(id: &str) -> (String, String) {
        (format!("urn:uuid:{id}"), format!("{{\"resourceType\":\"Bundle\",\"id\":\"{id}\"}}"))
    }

    async fn create(store: &Store, id: &str, replaces: Option<&str>) -> Result<(), AppError> {
        let (ident, bundle) = version(id);
        let v = NewVersion {
            bundle_identifier: &ident,
            input: "{}",
            bundle: &bundle,
            patient_pinfl: Some("12345678901234"),
            composition_date: Some("2026-12-02"),
            organization: None,
        };
        store.create_document_audited(id, "003", "mis", &v, Some(&hook(id, replaces))).await
    }

    /// Creates — `(id, replaces)` — and, for an id starting with `read-`, the audit record of a
    /// read of that id, spawned one after another while the write turn is held elsewhere.
    async fn queued(store: &Store, work: Vec<(String, Option<String>)>) -> Vec<Result<(), AppError>> {
        let turn = store.bulk_write_turn().await;
        let mut tasks = Vec::new();
        for (id, replaces) in work {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                if id.starts_with("read-") {
                    let e = AuditEntry::new(Event::Read, Agent::system("test")).document(&id, Some(1));
                    audit::record(&s, e).await.map(|rec| assert_eq!(rec.entity_id.as_deref(), Some(id.as_str())))
                } else {
                    create(&s, &id, replaces.as_deref()).await
                }
            }));
            // queued in this order
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(turn);
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    }

    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db?mode=rwc", dir.path().display())).await.unwrap();
        (dir, store)
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&store.pool).await.unwrap()
    }

    /// Creates and audit records that queue while the store is busy are committed in one
    /// transaction, each create with its rows, and every audit record in chain order; a repeated id
    /// is a conflict for that create alone.
    #[tokio::test]
    async fn queued_work_shares_one_commit_and_keeps_its_own_answers() {
        let (_dir, store) = temp_store().await;
        let writer = store.writer.clone().unwrap();
        create(&store, "doc-0", None).await.unwrap();
        let before = writer.commits();
        let mut creates: Vec<_> = (1..=20).map(|i| (format!("doc-{i}"), None)).collect();
        creates.insert(5, ("doc-0".to_string(), None)); // exists already
        creates.insert(12, ("doc-3".to_string(), None)); // repeats one of the batch
        creates.insert(8, ("read-doc-2".to_string(), None));
        creates.insert(17, ("read-doc-0".to_string(), None));
        let answers = queued(&store, creates).await;
        assert_eq!(writer.commits() - before, 1, "the work was not committed together");
        for (i, a) in answers.iter().enumerate() {
            match i {
                5 | 13 => assert!(matches!(a, Err(AppError::Conflict(_))), "{i}: {a:?}"),
                _ => assert!(a.is_ok(), "{i}: {a:?}"),
            }
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM documents").await, 21);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM document_versions").await, 21);
        let report = audit::verify_chain(&store).await.unwrap();
        assert!(report.ok && report.records == 23, "{report:?}");
        // the audit records are in the order the work was queued
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT entity_id FROM audit_events ORDER BY seq").fetch_all(&store.pool).await.unwrap();
        let mut expected: Vec<String> = (0..=20).map(|i| format!("doc-{i}")).collect();
        expected.insert(8, "read-doc-2".into()); // after doc-0 (before the batch) and doc-1…doc-7
        expected.insert(16, "read-doc-0".into()); // after doc-14
        assert_eq!(ids, expected);
    }

    /// A create that fails for another reason than its id (here, an amendment of a document that
    /// does not exist) rolls its batch back; the batch is written again one create at a time, and
    /// only that create fails.
    #[tokio::test]
    async fn a_failing_create_fails_alone() {
        let (_dir, store) = temp_store().await;
        let writer = store.writer.clone().unwrap();
        let creates = vec![
            ("a".to_string(), None),
            ("b".to_string(), Some("no-such-document".to_string())),
            ("c".to_string(), None),
            ("d".to_string(), Some("a".to_string())),
        ];
        let answers = queued(&store, creates).await;
        assert!(answers[0].is_ok() && answers[2].is_ok() && answers[3].is_ok(), "{answers:?}");
        assert!(matches!(answers[1], Err(AppError::Internal(_))), "{answers:?}");
        // the failed batch, then a, c and d alone
        assert_eq!(writer.commits(), 3);
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM documents ORDER BY id").fetch_all(&store.pool).await.unwrap();
        assert_eq!(ids, ["a", "c", "d"]);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM document_relations").await, 1);
        let report = audit::verify_chain(&store).await.unwrap();
        assert!(report.ok && report.records == 3, "{report:?}");
    }

    /// When nothing of a batch could be written, the writer takes a fresh connection: a
    /// connection that fails every write (here, one made read-only) does not fail every create
    /// after it.
    #[tokio::test]
    async fn a_connection_that_fails_every_write_is_replaced() {
        let (_dir, store) = temp_store().await;
        let writer = store.writer.clone().unwrap();
        let (done, answer) = oneshot::channel();
        writer.jobs.send(Job::Sql("PRAGMA query_only = ON".into(), done)).ok().unwrap();
        answer.await.unwrap().unwrap();
        assert!(matches!(create(&store, "a", None).await, Err(AppError::Internal(_))));
        create(&store, "b", None).await.unwrap();
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM documents").fetch_all(&store.pool).await.unwrap();
        assert_eq!(ids, ["b"]);
    }

    /// The writer's thread ends with the store, closing its connection.
    #[tokio::test]
    async fn the_writer_ends_with_its_store() {
        let (_dir, store) = temp_store().await;
        create(&store, "x", None).await.unwrap();
        // the thread holds the other count of `commits` until it returns
        let commits = store.writer.as_ref().unwrap().commits.clone();
        assert_eq!(Arc::strong_count(&commits), 3);
        drop(store);
        let ended = async {
            while Arc::strong_count(&commits) > 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), ended).await.expect("the writer did not end");
    }
}
