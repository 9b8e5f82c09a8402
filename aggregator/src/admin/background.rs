//! Where the admin endpoint's heavy work for operators runs: `/api/logs` searches and
//! the filtering of live tails, each on a [`Background`] pool of threads of their own at
//! a lower CPU priority ([`NICE`] steps below the process, on Linux), so that on a busy
//! machine ingest and the pipeline get the CPU first and operators take what is left; an
//! idle machine runs them at full speed.
//!
//! A pool runs a fixed number of jobs at once and queues a fixed number more; a job
//! beyond that is refused at once ([`RunError::Busy`]: a search answers 503 with
//! `Retry-After`, a tail skips the frame and says it lagged) rather than queued without
//! bound. A search's scan helpers ([`crate::search::MAX_SCAN_THREADS`]) are started by
//! its thread and share its priority. A job that panics is reported as failed and leaves
//! its thread running.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Searches running at once.
pub const SEARCH_THREADS: usize = 2;
/// Searches waiting for a thread.
pub const SEARCH_QUEUE: usize = 16;
/// Tail frames filtered at once.
pub const TAIL_THREADS: usize = 2;
/// Tail frames waiting to be filtered (two per tail).
pub const TAIL_QUEUE: usize = 2 * super::tail::MAX_TAILS;
/// How much lower the search threads' priority is than the process's own (Linux nice,
/// added to the process's value, at most 19); the search store's indexer
/// ([`crate::pipeline::search_feed`]) runs lower still, under `SCHED_IDLE`.
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job did not run to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// Every thread is busy and the queue is full.
    #[error("too much at once")]
    Busy,
    /// The job panicked, or the pool stopped.
    #[error("the job did not complete")]
    Failed,
}

/// A pool of low-priority threads and its queue.
#[derive(Debug)]
pub struct Background {
    tx: SyncSender<Job>,
}

impl Background {
    /// Starts `threads` threads named `name-N` with a queue of `queue` jobs; they end
    /// when the pool is dropped and the queue is empty.
    pub fn start(name: &str, threads: usize, queue: usize) -> std::io::Result<Background> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Background { tx })
    }

    /// Runs `f` on a thread of the pool and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RunError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic drops `done`: the caller sees Failed, the thread goes on.
            if let Ok(v) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                let _ = done.send(v);
            }
        });
        match self.tx.try_send(job) {
            Ok(()) => result.await.map_err(|_| RunError::Failed),
            Err(TrySendError::Full(_)) => Err(RunError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(RunError::Failed),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    if let Err(e) = lower_priority() {
        tracing::debug!(error = %e, "a background thread runs at normal priority");
    }
    loop {
        // One thread waits on the queue at a time; the others wait for the lock.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Lowers the calling thread's CPU priority by [`NICE`] (Linux; elsewhere nothing).
#[cfg(target_os = "linux")]
pub(crate) fn lower_priority() -> std::io::Result<()> {
    // SAFETY: gettid, getpriority and setpriority take and return plain integers, and
    // errno is this thread's own; this changes the nice value of the calling thread only
    // (Linux keeps it per thread).
    let rc = unsafe {
        let tid = libc::gettid() as libc::id_t;
        // -1 is a valid nice value: only errno tells a failure.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Relative to the process's own priority: an aggregator started under `nice`
        // still runs its background jobs below its ingest.
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + NICE).min(19))
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_priority() -> std::io::Result<()> {
    Ok(())
}

/// Puts the calling thread under `SCHED_IDLE` (Linux; elsewhere nothing): it runs only on
/// CPU time that no other thread of the machine wants. For work that may fall behind
/// without harm, such as the search store's indexer.
#[cfg(target_os = "linux")]
pub(crate) fn idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the calling
    // thread (Linux schedules threads one by one), whose policy alone changes.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn idle_priority() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_lower_priority_and_a_full_queue_refuses() {
        let runner = Background::start("test", 1, 1).unwrap();
        #[cfg(target_os = "linux")]
        {
            // SAFETY: reads the calling thread's nice value.
            let nice = runner
                .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as u32) })
                .await
                .unwrap();
            // SAFETY: as above, on this (test) thread.
            let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as u32) };
            assert_eq!(nice, (here + NICE).min(19), "the threads are niced");
        }
        // One running (held), one queued, the third refused.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let runner = Arc::new(runner);
        let r = runner.clone();
        let first = tokio::spawn(async move {
            r.run(move || {
                started_tx.send(()).unwrap();
                held.recv().unwrap();
                1
            })
            .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        // Two more: one waits in the queue, the other is refused at once.
        let more: Vec<_> = (2..4)
            .map(|n| {
                let r = runner.clone();
                tokio::spawn(async move { r.run(move || n).await })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !more.iter().any(|t| t.is_finished()) {
            assert!(std::time::Instant::now() < deadline, "none was refused");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        let mut results = Vec::new();
        for t in more {
            results.push(t.await.unwrap());
        }
        results.sort_by_key(|r| r.is_ok());
        assert!(
            results[0] == Err(RunError::Busy) && results[1].is_ok(),
            "{results:?}"
        );
        // A panic fails that search only.
        assert_eq!(
            runner.run(|| -> u8 { panic!("boom") }).await,
            Err(RunError::Failed)
        );
        assert_eq!(runner.run(|| 4).await, Ok(4));
    }
}
