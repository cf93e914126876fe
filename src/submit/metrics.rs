//! Prometheus text for `GET /metrics`: queue gauges read from the database (the whole cluster's
//! outbox), counters of this process (attempts, outcomes, DHP requests, token fetches).

use crate::error::AppError;
use crate::store::Store;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Metrics {
    pub token_requests: Counter,
    /// attempts by result (submitted, existing, retry, rejected, abandoned)
    attempts: Mutex<BTreeMap<String, u64>>,
    /// DHP requests by (request, status or `error`)
    requests: Mutex<BTreeMap<(String, String), u64>>,
}

pub static METRICS: Metrics = Metrics {
    token_requests: Counter(AtomicU64::new(0)),
    attempts: Mutex::new(BTreeMap::new()),
    requests: Mutex::new(BTreeMap::new()),
};

impl Metrics {
    pub fn attempt(&self, result: &str) {
        if let Ok(mut m) = self.attempts.lock() {
            *m.entry(result.to_string()).or_default() += 1;
        }
    }

    pub fn request(&self, request: &str, status: &str) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((request.to_string(), status.to_string())).or_default() += 1;
        }
    }
}

const STATES: [&str; 5] = ["queued", "sending", "retrying", "submitted", "rejected"];

pub async fn render(store: &Store) -> Result<String, AppError> {
    let stats = store.submission_stats().await?;
    let now = super::outbox::now_ms();
    let mut s = String::new();
    let count = |state: &str| stats.iter().find(|(st, ..)| st == state).map(|(_, n, _)| *n).unwrap_or(0);
    let _ =
        writeln!(s, "# HELP hujjat_submission_queue_depth Documents waiting to reach the DHP (all nodes), by state.");
    let _ = writeln!(s, "# TYPE hujjat_submission_queue_depth gauge");
    for st in ["queued", "sending", "retrying"] {
        let _ = writeln!(s, "hujjat_submission_queue_depth{{state=\"{st}\"}} {}", count(st));
    }
    let _ = writeln!(s, "# HELP hujjat_submission_documents Documents in the outbox (all nodes), by state.");
    let _ = writeln!(s, "# TYPE hujjat_submission_documents gauge");
    for st in STATES {
        let _ = writeln!(s, "hujjat_submission_documents{{state=\"{st}\"}} {}", count(st));
    }
    let oldest = stats
        .iter()
        .filter(|(st, ..)| matches!(st.as_str(), "queued" | "sending" | "retrying"))
        .map(|(_, _, q)| *q)
        .min()
        .map(|q| ((now - q).max(0) as f64) / 1000.0)
        .unwrap_or(0.0);
    let _ = writeln!(
        s,
        "# HELP hujjat_submission_oldest_age_seconds Age of the oldest document not yet at the DHP (0 when none)."
    );
    let _ = writeln!(s, "# TYPE hujjat_submission_oldest_age_seconds gauge");
    let _ = writeln!(s, "hujjat_submission_oldest_age_seconds {oldest:.3}");
    let _ =
        writeln!(s, "# HELP hujjat_submission_attempts_total Submission attempts finished by this process, by result.");
    let _ = writeln!(s, "# TYPE hujjat_submission_attempts_total counter");
    let attempts = METRICS.attempts.lock().map(|m| m.clone()).unwrap_or_default();
    for r in ["submitted", "existing", "retry", "rejected", "abandoned"] {
        let _ =
            writeln!(s, "hujjat_submission_attempts_total{{result=\"{r}\"}} {}", attempts.get(r).copied().unwrap_or(0));
    }
    let _ = writeln!(
        s,
        "# HELP hujjat_dhp_requests_total Requests this process made to the DHP FHIR API, by request and HTTP status."
    );
    let _ = writeln!(s, "# TYPE hujjat_dhp_requests_total counter");
    let requests = METRICS.requests.lock().map(|m| m.clone()).unwrap_or_default();
    for ((req, status), n) in &requests {
        let _ = writeln!(s, "hujjat_dhp_requests_total{{request=\"{req}\",status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        s,
        "# HELP hujjat_dhp_token_requests_total Access tokens this process fetched from the DHP token endpoint."
    );
    let _ = writeln!(s, "# TYPE hujjat_dhp_token_requests_total counter");
    let _ = writeln!(s, "hujjat_dhp_token_requests_total {}", METRICS.token_requests.get());
    Ok(s)
}
