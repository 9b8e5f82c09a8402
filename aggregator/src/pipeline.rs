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
    for sink in sinks.iter_mut() {
        let recorded = inbox.position(sink.name()).map_err(std::io::Error::other)?;
        if let Some(pos) = recorded {
            sink.rewind_to(pos)?;
        }
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
                    tracing::error!(error = %e, "cannot record progress in the inbox; the batches will be written again after a restart");
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
                for s in sinks.iter_mut() {
                    if let Ok(Some(pos)) = inbox.position(s.name()) {
                        if let Err(e) = s.rewind_to(pos) {
                            tracing::error!(sink = %s.name(), error = %e, "cannot rewind sink");
                        }
                    }
                }
                wake.wait(ERROR_BACKOFF);
            }
        }
    }
    tracing::info!(waiting = inbox.len(), "pipeline stopped");
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
            positions.push((name, pos));
        }
    }
    Ok(positions)
}
