//! The pipeline: takes accepted frames from the inbox in order, renders their events, writes
//! them to every sink, makes the sinks durable, and then removes the frames from the inbox
//! while recording each sink's position, in one transaction.
//!
//! One thread; many frames per round, so one fsync per sink covers them all. At start-up
//! each sink is rewound to its recorded position (a file is cut back to the length it had
//! when the last round completed), so frames that were written but not yet completed
//! before a crash are written again exactly once.
//!
//! At shutdown the pipeline keeps going until the inbox is empty or
//! [`SHUTDOWN_DRAIN`] has passed; whatever is left is processed after the next start.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{self, DecodeLimits};

use crate::inbox::Inbox;
use logferry_shared::event::Timestamp;

use crate::metrics::{FormatLabel, Metrics, SinkLabel};
use crate::parse::detect::Detector;
use crate::render;
use crate::sink::Sink;

/// Frames taken per round.
const FRAMES_PER_ROUND: usize = 64;
/// How long the pipeline keeps draining the inbox after shutdown begins.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How long to wait after a sink error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Wakes the pipeline when a frame is admitted.
#[derive(Debug, Default)]
pub struct Wake {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    /// Signals new work.
    pub fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_one();
    }

    /// Waits for a signal for at most `timeout`.
    fn wait(&self, timeout: Duration) {
        let guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }
}

/// Starts the pipeline thread. Sinks are rewound to their recorded positions first.
pub fn spawn(
    inbox: Arc<Inbox>,
    mut detector: Detector,
    mut sinks: Vec<Box<dyn Sink>>,
    limits: DecodeLimits,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut first_seen = Vec::new();
    for sink in sinks.iter_mut() {
        let key = sink.position_key();
        match inbox.position(&key).map_err(std::io::Error::other)? {
            Some(pos) => sink.rewind_to(pos)?,
            // A sink seen for the first time: record where it starts, so a failed first
            // round can be cut back too.
            None => {
                if let Some(pos) = sink.position() {
                    first_seen.push((key, pos));
                }
            }
        }
    }
    if !first_seen.is_empty() {
        let named: Vec<(&str, u64)> = first_seen.iter().map(|(k, p)| (k.as_str(), *p)).collect();
        inbox.complete(&[], &named).map_err(std::io::Error::other)?;
    }
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            run(
                &inbox,
                &mut detector,
                &mut sinks,
                limits,
                &metrics,
                &wake,
                &shutdown,
            )
        })
}

fn run(
    inbox: &Inbox,
    detector: &mut Detector,
    sinks: &mut [Box<dyn Sink>],
    limits: DecodeLimits,
    metrics: &Metrics,
    wake: &Wake,
    shutdown: &Shutdown,
) {
    let mut lines = Vec::with_capacity(8 << 20);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if shutdown.is_triggered() {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_DRAIN);
            if inbox.is_empty() || Instant::now() >= deadline {
                break;
            }
        }
        let frames = match inbox.read_after(None, FRAMES_PER_ROUND) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the inbox");
                wake.wait(ERROR_BACKOFF);
                continue;
            }
        };
        if frames.is_empty() {
            wake.wait(Duration::from_millis(200));
            continue;
        }
        lines.clear();
        let mut events = 0u64;
        detector.set_now(Timestamp::now());
        for (key, frame) in &frames {
            match wire::decode_frame(frame, &limits).and_then(|f| {
                let batch = f.batch()?;
                Ok(render::render_batch(&batch, detector, &mut lines))
            }) {
                Ok(stats) => {
                    events += stats.events();
                    for (format, n) in &stats.per_format {
                        metrics
                            .parse_events
                            .get_or_create(&FormatLabel { format })
                            .inc_by(*n);
                    }
                    metrics.parse_errors.inc_by(stats.parse_errors);
                }
                Err(e) => {
                    // Frames were checked at ingest; this means the stored copy is damaged.
                    metrics.inbox_corrupt_frames.inc();
                    tracing::error!(key, error = %e, "a stored batch cannot be decoded; dropping it");
                }
            }
        }
        match write_all(sinks, &lines, metrics) {
            Ok(positions) => {
                let keys: Vec<(u64, usize)> = frames.iter().map(|(k, v)| (*k, v.len())).collect();
                let named: Vec<(&str, u64)> =
                    positions.iter().map(|(n, p)| (n.as_str(), *p)).collect();
                if let Err(e) = inbox.complete(&keys, &named) {
                    tracing::error!(error = %e, "cannot record progress in the inbox; retrying the batches");
                    // The sinks hold lines the inbox does not know are done: cut them back so
                    // the retry writes each line once.
                    rewind_all(inbox, sinks);
                    wake.wait(ERROR_BACKOFF);
                    continue;
                }
                for sink in sinks.iter() {
                    metrics
                        .sink_events
                        .get_or_create(&SinkLabel {
                            sink: sink.name().to_owned(),
                        })
                        .inc_by(events);
                }
                metrics.inbox_bytes.set(inbox.bytes() as i64);
            }
            Err((sink, e)) => {
                metrics
                    .sink_errors
                    .get_or_create(&SinkLabel { sink: sink.clone() })
                    .inc();
                tracing::error!(sink = %sink, error = %e, "sink write failed; retrying (batches stay in the inbox)");
                // Rewind every sink to its recorded position so the retry writes each line once.
                rewind_all(inbox, sinks);
                wake.wait(ERROR_BACKOFF);
            }
        }
    }
    tracing::info!(waiting = inbox.len(), "pipeline stopped");
}

/// Cuts every sink back to its recorded position (recorded at start-up at the latest).
fn rewind_all(inbox: &Inbox, sinks: &mut [Box<dyn Sink>]) {
    for s in sinks.iter_mut() {
        if let Ok(Some(pos)) = inbox.position(&s.position_key()) {
            if let Err(e) = s.rewind_to(pos) {
                tracing::error!(sink = %s.name(), error = %e, "cannot rewind sink");
            }
        }
    }
}

/// Writes `lines` to every sink and makes them durable; returns each sink's position.
fn write_all(
    sinks: &mut [Box<dyn Sink>],
    lines: &[u8],
    _metrics: &Metrics,
) -> Result<Vec<(String, u64)>, (String, std::io::Error)> {
    let mut positions = Vec::with_capacity(sinks.len());
    for sink in sinks.iter_mut() {
        let name = sink.name().to_owned();
        if !lines.is_empty() {
            sink.write(lines).map_err(|e| (name.clone(), e))?;
        }
        sink.flush().map_err(|e| (name.clone(), e))?;
        if let Some(pos) = sink.position() {
            positions.push((sink.position_key(), pos));
        }
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FileSink;

    fn start(inbox: Arc<Inbox>, sink: FileSink, shutdown: &Shutdown) -> JoinHandle<()> {
        let detector = Detector::new(crate::parse::Zone::Utc, &[], &[]).unwrap();
        spawn(
            inbox,
            detector,
            vec![Box::new(sink)],
            DecodeLimits::default(),
            Arc::new(Metrics::new()),
            Arc::new(Wake::default()),
            shutdown.clone(),
        )
        .unwrap()
    }

    #[test]
    fn a_sink_is_cut_back_only_in_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 20).unwrap());
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(&a, vec![b'x'; 100]).unwrap();
        std::fs::write(&b, vec![b'y'; 100]).unwrap();
        // A crash left 40 unrecorded bytes in a.jsonl: its recorded length is 60.
        inbox
            .complete(&[], &[(&format!("file:{}", a.display()), 60)])
            .unwrap();

        // The same sink name pointed at b.jsonl: b is never cut back.
        let shutdown = Shutdown::new();
        shutdown.trigger();
        start(inbox.clone(), FileSink::open("out", &b).unwrap(), &shutdown)
            .join()
            .unwrap();
        assert_eq!(std::fs::metadata(&b).unwrap().len(), 100);
        assert_eq!(
            inbox.position(&format!("file:{}", b.display())).unwrap(),
            Some(100)
        );

        // Pointed back at a.jsonl: cut back to its recorded 60 bytes.
        start(inbox.clone(), FileSink::open("out", &a).unwrap(), &shutdown)
            .join()
            .unwrap();
        assert_eq!(std::fs::metadata(&a).unwrap().len(), 60);
    }
}
