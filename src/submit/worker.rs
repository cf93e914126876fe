//! The submission worker: leases due outbox items, sends each to the DHP, records the result.

use super::config::DhpConfig;
use super::dhp::{DhpClient, Failure, PatientMatch};
use super::metrics::METRICS;
use super::outbox::{now_ms, Claimed, Outcome};
use crate::store::Store;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Exponential backoff with equal jitter: `[d/2, d]` where `d = base · 2^(attempt-1)` capped at
/// `max`; never sooner than the server's `Retry-After` (itself capped at `max`).
pub fn backoff(attempt: i64, base: Duration, max: Duration, retry_after: Option<Duration>) -> Duration {
    let exp = attempt.clamp(1, 32) - 1;
    let d = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let half = d / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    let wait = half + Duration::from_millis(jitter);
    match retry_after {
        Some(ra) => wait.max(ra.min(max)),
        None => wait,
    }
}

/// A running worker; `shutdown` lets attempts in flight finish (bounded by the timeout).
pub struct Worker {
    pub node: String,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Worker {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// This node's name in leases and attempts: host, process id and a random suffix.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "node".into());
    format!("{host}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Start the worker when submission is enabled (`None` otherwise: documents stay queued).
pub fn start(store: Store, cfg: DhpConfig) -> anyhow::Result<Option<Worker>> {
    if !cfg.enabled {
        tracing::info!("DHP submission is off: signed documents are queued but not sent (HUJJAT_DHP_SUBMIT)");
        return Ok(None);
    }
    let client = Arc::new(DhpClient::new(cfg)?);
    let node = node_name();
    let (stop, rx) = watch::channel(false);
    tracing::info!(node = %node, base = %client.config().fhir_base, "DHP submission worker started");
    let handle = tokio::spawn(run(store, client, node.clone(), rx));
    Ok(Some(Worker { node, stop, handle }))
}

async fn run(store: Store, client: Arc<DhpClient>, node: String, mut stop: watch::Receiver<bool>) {
    let cfg = client.config().clone();
    let lease_ms = cfg.lease.as_millis() as i64;
    let mut set: JoinSet<()> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let free = cfg.concurrency.saturating_sub(set.len());
        let mut claimed = 0;
        if free > 0 {
            match store.claim_submissions(&node, lease_ms, free as i64).await {
                Ok(items) => {
                    claimed = items.len();
                    for c in items {
                        set.spawn(process(store.clone(), client.clone(), c));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "DHP worker: cannot read the outbox"),
            }
        }
        if claimed > 0 && claimed == free {
            // there may be more due: take the next ones as soon as a slot frees up
            tokio::select! {
                Some(_) = set.join_next() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        tokio::select! {
            Some(_) = set.join_next(), if !set.is_empty() => {}
            _ = tokio::time::sleep(cfg.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    // let attempts in flight finish; their leases expire otherwise
    let grace = cfg.timeout * 2;
    let _ = tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
    set.abort_all();
    tracing::info!(node = %node, "DHP submission worker stopped");
}

async fn process(store: Store, client: Arc<DhpClient>, c: Claimed) {
    let cfg = client.config();
    let started = now_ms();
    // the attempt must end well inside the lease, so no other node can be working on it meanwhile
    let deadline = cfg.lease.mul_f64(0.8);
    let result = match tokio::time::timeout(deadline, attempt(&store, &client, &c)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Transient {
            status: None,
            detail: "the attempt did not finish in time (outcome unknown; the retry is idempotent)".into(),
            retry_after: None,
        }),
    };
    let outcome = match result {
        Ok(created) => Outcome::Submitted {
            existing: created.existing,
            status: created.status,
            id: created.id,
            location: created.location,
            version: created.version,
        },
        Err(Failure::Transient { status, detail, retry_after }) => {
            let wait = backoff(c.attempt, cfg.backoff_base, cfg.backoff_max, retry_after);
            Outcome::Retry { status, detail, next_ms: now_ms() + wait.as_millis() as i64 }
        }
        Err(Failure::Rejected { status, detail, outcome }) => Outcome::Rejected { status, detail, outcome },
    };
    let status = match &outcome {
        Outcome::Submitted { status, .. } | Outcome::Rejected { status, .. } => Some(*status),
        Outcome::Retry { status, .. } => *status,
    };
    match store.finish_attempt(&c, &outcome, started).await {
        Ok(true) => {
            METRICS.attempt(outcome.result());
            match &outcome {
                Outcome::Rejected { .. } => {
                    tracing::warn!(document = %c.document_id, attempt = c.attempt, status, "the DHP rejected the document")
                }
                _ => {
                    tracing::info!(document = %c.document_id, attempt = c.attempt, result = outcome.result(), status, "DHP submission attempt")
                }
            }
        }
        Ok(false) => {
            METRICS.attempt("abandoned");
            tracing::warn!(document = %c.document_id, attempt = c.attempt, "DHP attempt finished after its lease ran out; another node has the item");
        }
        Err(e) => {
            // the lease runs out and the item is attempted again (idempotent at the DHP)
            tracing::warn!(document = %c.document_id, attempt = c.attempt, error = %e, "cannot record the DHP attempt");
        }
    }
}

async fn attempt(store: &Store, client: &DhpClient, c: &Claimed) -> Result<super::dhp::Created, Failure> {
    let db = |e: crate::error::AppError| Failure::Transient {
        status: None,
        detail: format!("database: {e}"),
        retry_after: None,
    };
    let (bundle, pinfl) = store.submission_payload(&c.document_id, c.version).await.map_err(db)?;
    if client.config().patient_matching && c.patient_match.is_none() {
        let (result, id) = match pinfl.as_deref().filter(|p| !p.is_empty()) {
            None => ("no-pinfl", None),
            Some(p) => match client.find_patient(p).await {
                Ok(PatientMatch::Found(id)) => ("matched", Some(id)),
                Ok(PatientMatch::NotFound) => ("not-found", None),
                Ok(PatientMatch::Ambiguous(_)) => ("ambiguous", None),
                // the search itself is refused: matching is metadata, the document still goes
                Err(Failure::Rejected { .. }) => ("search-refused", None),
                Err(transient) => return Err(transient),
            },
        };
        store.record_patient_match(c, result, id.as_deref()).await.map_err(db)?;
    }
    client.submit(&bundle).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..50 {
            let d1 = backoff(1, b, m, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= b, "{d1:?}");
            let d4 = backoff(4, b, m, None);
            assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800), "{d4:?}");
            assert!(backoff(60, b, m, None) <= m);
            assert!(backoff(1, b, m, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
            assert!(backoff(1, b, m, Some(Duration::from_secs(3600))) <= m);
        }
    }
}
