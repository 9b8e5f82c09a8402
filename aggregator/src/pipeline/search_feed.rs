//! Feeds the log search store ([`crate::search::EventStore`]) from the pipeline, off its
//! hot path: the coordinator hands each written frame's lines to a bounded channel
//! ([`SEARCH_QUEUE_FRAMES`] frames, [`SEARCH_QUEUE_BYTES`] bytes) without waiting; a
//! thread of its own reads the few keys the store indexes from each JSON line and appends
//! it, and every second flushes the open block and applies retention.
//!
//! The store is a cache of recent events (the sinks are the record): when the feed falls
//! behind, frames are dropped and counted (`logferry_search_dropped_batches_total`), never
//! the pipeline slowed. Its thread runs under `SCHED_IDLE` (Linux), on CPU time nothing
//! else wants: on a machine short of CPU, ingest, the pipeline and searches take it first
//! and the index is what falls behind; an idle machine indexes at full speed. (At `nice`
//! 10, its earlier priority, it still took a third of a core from a saturated pipeline.)
//! Where `SCHED_IDLE` is refused, it runs at the search threads' lower priority
//! ([`crate::admin::background::NICE`]). A frame written again after a failed round may
//! be indexed twice.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_shared::event::{Level, Timestamp};
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::search::{EventStore, NewEvent};

/// Frames waiting for the feed, at most.
pub const SEARCH_QUEUE_FRAMES: usize = 256;
/// Bytes of rendered lines waiting for the feed, at most (a frame larger than this is
/// taken when the queue is empty). Without it a burst that outruns the indexer held 256
/// whole frames: the aggregator's memory grew by 0.8 GiB with 1 MiB batches and by 1.7 GiB
/// with 4 MiB batches.
pub const SEARCH_QUEUE_BYTES: usize = 64 << 20;
/// How often the open block is flushed and retention applied.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The coordinator's end of the feed.
#[derive(Debug, Clone)]
pub struct SearchFeed {
    tx: SyncSender<Arc<Vec<u8>>>,
    metrics: Arc<Metrics>,
    /// Bytes offered and not yet indexed (the feed thread takes them off).
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl SearchFeed {
    /// Hands a frame's JSON lines to the feed; drops (and counts) them when it is full.
    pub fn offer(&self, lines: Arc<Vec<u8>>) {
        let n = lines.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.max_bytes {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.metrics.search_dropped_batches.inc();
            return;
        }
        match self.tx.try_send(lines) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.metrics.search_dropped_batches.inc();
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
            }
        }
    }
}

/// Starts the feed thread over `store`; it ends when every [`SearchFeed`] is dropped,
/// after flushing.
pub fn spawn(
    store: Arc<EventStore>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SearchFeed, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(SEARCH_QUEUE_FRAMES);
    let queued = Arc::new(AtomicUsize::new(0));
    let taken = queued.clone();
    let handle = std::thread::Builder::new()
        .name("search".into())
        .spawn(move || run(&store, &rx, &taken))?;
    let feed = SearchFeed {
        tx,
        metrics,
        queued,
        max_bytes: SEARCH_QUEUE_BYTES,
    };
    Ok((feed, handle))
}

fn run(store: &EventStore, rx: &Receiver<Arc<Vec<u8>>>, queued: &AtomicUsize) {
    if let Err(e) = crate::admin::background::idle_priority() {
        tracing::debug!(error = %e, "the search indexer cannot run under SCHED_IDLE");
        if let Err(e) = crate::admin::background::lower_priority() {
            tracing::debug!(error = %e, "the search indexer runs at normal priority");
        }
    }
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(frame) => {
                let keys = keys_of(&frame);
                store.append(keys.iter().map(|(k, line)| k.event(line)));
                queued.fetch_sub(frame.len(), Ordering::AcqRel);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            store.flush();
            store.expire();
            last_flush = Instant::now();
        }
    }
    store.flush();
}

/// What the store indexes of a line.
#[derive(Deserialize)]
pub struct LineKeys<'a> {
    timestamp: Timestamp,
    #[serde(default)]
    level: Option<Level>,
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    source: Option<SourceKeys<'a>>,
    #[serde(default, borrow)]
    k8s: Option<K8sKeys<'a>>,
}

#[derive(Deserialize)]
struct SourceKeys<'a> {
    #[serde(default, borrow)]
    path: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct K8sKeys<'a> {
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
}

impl LineKeys<'_> {
    /// The store event for `line`, whose keys these are.
    pub fn event<'k>(&'k self, line: &'k [u8]) -> NewEvent<'k> {
        NewEvent {
            timestamp_ms: self.timestamp.as_millis(),
            level: self.level,
            host: self.host.as_deref().unwrap_or(""),
            source: self
                .source
                .as_ref()
                .and_then(|s| s.path.as_deref())
                .unwrap_or(""),
            namespace: self.k8s.as_ref().and_then(|k| k.namespace.as_deref()),
            line,
        }
    }
}

/// Each line of the frame with its keys. A line that does not read as an event (only a
/// bug in the renderer would make one) is kept with the time it was indexed and no keys.
pub fn keys_of(frame: &[u8]) -> Vec<(LineKeys<'_>, &[u8])> {
    frame
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let keys = serde_json::from_slice::<LineKeys<'_>>(line).unwrap_or(LineKeys {
                timestamp: Timestamp::now(),
                level: None,
                host: None,
                source: None,
                k8s: None,
            });
            (keys, line)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_store_events_with_their_keys() {
        let frame = concat!(
            r#"{"timestamp":"2026-11-22T10:00:00.500Z","observed_timestamp":"2026-11-22T10:00:01.000Z","level":"error","message":"m \"q\"","host":"node-\"1\"","format":"json","source":{"type":"file","path":"/var/log/pods/shop_a_u/c/0.log"},"k8s":{"namespace":"shop","pod":"a"},"fields":{"x":1},"tags":["t"]}"#,
            "\n",
            r#"{"timestamp":"2026-11-22T10:00:02.000Z","observed_timestamp":"2026-11-22T10:00:02.000Z","message":"plain","format":"plain","source":{"type":"file","path":"/var/log/a.log"},"fields":{}}"#,
            "\n"
        );
        let keys = keys_of(frame.as_bytes());
        let events: Vec<NewEvent<'_>> = keys.iter().map(|(k, l)| k.event(l)).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].timestamp_ms, 1_795_341_600_500);
        assert_eq!(events[0].level, Some(Level::Error));
        assert_eq!(events[0].host, "node-\"1\"", "escaped values are read too");
        assert_eq!(events[0].source, "/var/log/pods/shop_a_u/c/0.log");
        assert_eq!(events[0].namespace, Some("shop"));
        assert!(events[0].line.ends_with(br#""tags":["t"]}"#));
        assert_eq!(events[1].level, None);
        assert_eq!(events[1].host, "");
        assert_eq!(events[1].namespace, None);
    }

    /// A store with the default settings in a directory of its own (kept while the
    /// returned guard lives).
    fn temp_store() -> (tempfile::TempDir, Arc<EventStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::from_config(&crate::search::SearchConfig::default(), dir.path())
            .unwrap()
            .unwrap();
        (dir, Arc::new(store))
    }

    #[test]
    fn the_feed_appends_flushes_and_counts_what_it_drops() {
        let (_dir, store) = temp_store();
        let metrics = Arc::new(Metrics::new());
        let (feed, handle) = spawn(store.clone(), metrics.clone()).unwrap();
        let line = r#"{"timestamp":"2026-11-22T10:00:00.000Z","observed_timestamp":"2026-11-22T10:00:00.000Z","level":"info","message":"hello","host":"h","format":"plain","source":{"type":"file","path":"/p"},"fields":{}}"#;
        feed.offer(Arc::new(format!("{line}\n{line}\n").into_bytes()));
        drop(feed);
        handle.join().unwrap();
        let page = store
            .search(&crate::search::Query {
                text: Some("hello".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.lines.len(), 2);
        // A feed whose thread is busy: the queue fills and further frames are counted.
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let stalled = SearchFeed {
            tx,
            metrics: metrics.clone(),
            queued: Arc::new(AtomicUsize::new(0)),
            max_bytes: SEARCH_QUEUE_BYTES,
        };
        for _ in 0..3 {
            stalled.offer(Arc::new(Vec::new()));
        }
        assert_eq!(metrics.search_dropped_batches.get(), 2);
    }

    /// The scheduling policies of this process's threads named `search` (the feed's).
    #[cfg(target_os = "linux")]
    fn search_threads_policy() -> Vec<i32> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| {
                let t = t.ok()?;
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                let tid: libc::pid_t = t.file_name().to_str()?.parse().ok()?;
                // SAFETY: reads the policy of a thread of this process.
                (comm.trim_end() == "search").then(|| unsafe { libc::sched_getscheduler(tid) })
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_indexer_runs_only_on_idle_cpu_time() {
        let (_dir, store) = temp_store();
        // SAFETY: reads the calling (test) thread's policy.
        let here = unsafe { libc::sched_getscheduler(0) };
        assert_ne!(here, libc::SCHED_IDLE, "the test thread itself");
        let (feed, handle) = spawn(store, Arc::new(Metrics::new())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = search_threads_policy();
        while !seen.contains(&libc::SCHED_IDLE) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = search_threads_policy();
        }
        drop(feed);
        handle.join().unwrap();
        assert!(
            seen.contains(&libc::SCHED_IDLE),
            "a `search` thread under SCHED_IDLE ({}); policies seen {seen:?}",
            libc::SCHED_IDLE
        );
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = std::sync::mpsc::sync_channel(SEARCH_QUEUE_FRAMES);
        let queued = Arc::new(AtomicUsize::new(0));
        let feed = SearchFeed {
            tx,
            metrics: metrics.clone(),
            queued: queued.clone(),
            max_bytes: 100,
        };
        // A frame over the limit is taken when nothing waits...
        feed.offer(Arc::new(vec![b'x'; 150]));
        // ...but nothing more until the feed has taken it off.
        feed.offer(Arc::new(vec![b'x'; 10]));
        assert_eq!(metrics.search_dropped_batches.get(), 1);
        assert_eq!(queued.load(Ordering::Acquire), 150);
        let first = rx.try_recv().unwrap();
        queued.fetch_sub(first.len(), Ordering::AcqRel);
        for _ in 0..5 {
            feed.offer(Arc::new(vec![b'x'; 30]));
        }
        // 30 + 30 + 30 fit in 100; the fourth and fifth do not.
        assert_eq!(metrics.search_dropped_batches.get(), 3);
        assert_eq!(queued.load(Ordering::Acquire), 90);
        assert_eq!(rx.try_iter().count(), 3);
    }
}
