//! Threads for composing, off the async runtime and below it in priority (issue 7).
//!
//! Composing the Form 003 example is about a millisecond of CPU with no point to yield at. On the
//! runtime's workers, every step of every other request — a read's query, its audit record, the
//! next bytes of a response — waited behind the composes queued there: under a burst of creates
//! a `GET /documents/{id}` took 50 ms (four to five such waits). Here composes run on one thread
//! per core, in the order they came, at a lower scheduling priority (`nice` +10 for these
//! threads only): the runtime's threads, the store's writer and SQLite's threads take a core
//! when they have work, and the composes use the rest. A burst of creates then still fills the
//! CPU, and reads beside it keep their latency (BENCHMARKS.md, seventh session).

use crate::error::AppError;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// How much lower the compose threads' priority is than the process's (`nice`; 19 is the lowest).
pub const NICE: i32 = 10;

static QUEUE: LazyLock<Mutex<Sender<Job>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads() {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("hujjat-compose-{i}")).spawn(move || {
            lower_priority();
            loop {
                // the lock is held only while waiting for the next job
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "a compose thread could not start");
        }
    }
    Mutex::new(tx)
});

/// One per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Linux: `setpriority` on a thread id sets that thread's nice value alone. Elsewhere the threads
/// keep the process's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread, no memory is handed over
        let r = unsafe {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + NICE).min(19))
        };
        if r != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "compose threads keep the normal priority");
        }
    }
}

/// Run `f` on a compose thread and await its result. A panic in `f` is an internal error of this
/// request alone; the thread goes on.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let (done, answer) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    QUEUE
        .lock()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("the compose queue is poisoned")))?
        .send(job)
        .map_err(|_| AppError::Unavailable("no compose thread is running".into()))?;
    match answer.await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(_)) => Err(AppError::Internal(anyhow::anyhow!("composing the document failed unexpectedly"))),
        Err(_) => Err(AppError::Unavailable("no compose thread is running".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Jobs run on the compose threads, below the process's priority.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn jobs_run_on_the_compose_threads_at_a_lower_priority() {
        let (name, nice) = run(|| {
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            (std::thread::current().name().map(str::to_string), nice)
        })
        .await
        .unwrap();
        assert!(name.as_deref().is_some_and(|n| n.starts_with("hujjat-compose-")), "{name:?}");
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_eq!(nice, (here + NICE).min(19), "the thread's nice value");
    }

    /// At most one job per core at a time, all of them done; a panicking job fails alone.
    #[tokio::test]
    async fn one_job_per_core_at_a_time_and_a_panic_fails_only_its_job() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4 * threads())
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    running.fetch_sub(1, Ordering::SeqCst);
                    if i == 3 {
                        panic!("job 3");
                    }
                    i
                }))
            })
            .collect();
        for (i, j) in jobs.into_iter().enumerate() {
            let r = j.await.unwrap();
            if i == 3 {
                assert!(matches!(r, Err(AppError::Internal(_))), "{r:?}");
            } else {
                assert_eq!(r.unwrap(), i);
            }
        }
        assert!(most.load(Ordering::SeqCst) <= threads(), "{} jobs at once", most.load(Ordering::SeqCst));
        assert_eq!(run(|| 7).await.unwrap(), 7, "the pool goes on after a panic");
    }
}
