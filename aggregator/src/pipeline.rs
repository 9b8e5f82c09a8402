//! The pipeline: takes accepted frames from the inbox, parses their events, runs the
//! rules over them and renders them on worker threads, writes each sink the lines routed
//! to it (every line, unless a rule routes it) in inbox order, makes the sinks durable, and then
//! removes the frames from the inbox while recording each sink's position, in one
//! transaction.
//!
//! # Shape
//!
//! One coordinator thread and [`PipelineSetup::workers`] worker threads ([`worker`]).
//! The coordinator reads frames in key order and numbers them (`seq`); workers take them
//! from one shared queue, decode, parse and render each into its own output buffer, and
//! hand the buffers back in whatever order they finish. The coordinator keeps finished
//! frames until every earlier one is written, then writes them in `seq` order. Every
//! [`FRAMES_PER_ROUND`] frames, every [`ROUND_INTERVAL`], or whenever it has caught up
//! with the inbox, it ends the round: flush (fsync) every sink, then [`Inbox::complete`]
//! the round's frames with the sinks' positions. Workers keep rendering while the
//! coordinator writes and syncs.
//!
//! # Invariants
//!
//! - Sinks receive frames in `seq` order, which is inbox key order: a frame's lines are
//!   written only after every earlier frame's lines were written, whatever order the
//!   workers finish in. Only the coordinator touches sinks and the inbox's progress.
//! - A round's frames are exactly the frames written since the previous round ended, so
//!   the position recorded with them covers those frames and nothing that is still in the
//!   inbox. At start-up each sink is rewound to its recorded position (a file is cut back
//!   to the length it had when the last round completed), so frames that were written but
//!   not completed before a crash are written again exactly once.
//! - After a failed write, flush or completion, everything in flight is discarded, the
//!   sinks are rewound to their recorded positions and reading starts again from the
//!   first frame in the inbox: the same rewind as after a crash. Nothing is dispatched or
//!   written until every sink's rewind has succeeded (a failed one is retried after
//!   [`ERROR_BACKOFF`]): a sink only partly cut back would otherwise get lines twice.
//! - A rewind may leave a sink naming the same content by another position (a file sink
//!   renumbering its generation past files it did not make); that position is recorded
//!   before anything is written.
//! - Bounded: at most [`FRAMES_IN_FLIGHT_PER_WORKER`] frames per worker are dispatched and
//!   not yet written (their output buffers included), and at most [`FRAMES_PER_ROUND`]
//!   frames are written and not yet completed.
//! - Detection memory (a source's last format) is per worker: a speed hint only.
//!
//! At shutdown the pipeline keeps going until the inbox is empty or [`SHUTDOWN_DRAIN`] has
//! passed; then it stops taking frames, writes and completes what is in flight, and
//! returns. Whatever is left is processed after the next start.

pub mod search_feed;
mod worker;

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::DecodeLimits;

use crate::inbox::Inbox;
use crate::metrics::{FormatLabel, Metrics, SinkLabel};
use crate::parse::detect::Detector;
use crate::render::RenderedLines;
use crate::rules::RuleSet;
use crate::sink::{Position, Sink, SinkBoard};
use crate::stats::SharedTraffic;
pub use worker::FrameRenderer;
use worker::{Failure, Job, Rendered};

/// Most frames written and not yet completed: one fsync per sink covers them all.
pub const FRAMES_PER_ROUND: usize = 64;
/// Longest time written frames wait for their round to end while more keep coming.
pub const ROUND_INTERVAL: Duration = Duration::from_millis(200);
/// Frames dispatched per worker and not yet written: enough to keep workers busy while
/// the coordinator writes and syncs, few enough to bound memory.
pub const FRAMES_IN_FLIGHT_PER_WORKER: usize = 4;
/// How long the pipeline keeps draining the inbox after shutdown begins.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How long to wait after a sink error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// How long the coordinator sleeps when the inbox is empty (a [`Wake`] cuts it short).
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long the coordinator waits for a worker before looking at its round again.
const RESULT_WAIT: Duration = Duration::from_millis(50);
/// An output buffer larger than this is not kept for the next frame.
const KEEP_OUTPUT_BYTES: usize = 32 << 20;

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

/// What the pipeline runs with.
pub struct PipelineSetup {
    /// Where accepted frames wait and progress is recorded.
    pub inbox: Arc<Inbox>,
    /// Parsing rules; each worker gets its own clone.
    pub detector: Detector,
    /// Where events go.
    pub sinks: Vec<Box<dyn Sink>>,
    /// Frame decoder limits.
    pub limits: DecodeLimits,
    /// Worker threads (at least one).
    pub workers: usize,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Signalled when frames are admitted.
    pub wake: Arc<Wake>,
    /// The rules every event goes through (none: every event goes to every sink). Rules
    /// route by sink index: `sinks` must be in the order the rule set was built with.
    pub rules: Option<Arc<RuleSet>>,
    /// Where kept events are counted, one part per worker.
    pub traffic: Option<Arc<SharedTraffic>>,
    /// Where each sink's writes and failures are shown (same order as `sinks`).
    pub board: Option<Arc<SinkBoard>>,
    /// Live tail: every frame's kept lines, published when someone listens (a listener
    /// that falls behind misses batches; the pipeline never waits for it).
    pub tail: Option<TailSender>,
    /// The log search store's feed: every frame's kept lines, dropped when it lags.
    pub search: Option<search_feed::SearchFeed>,
}

/// Where rendered lines are published for live tail: one message per frame, its JSON
/// lines (every kept event, whatever its route).
pub type TailSender = tokio::sync::broadcast::Sender<Arc<Vec<u8>>>;

/// Starts the pipeline: sinks are rewound to their recorded positions, then the workers
/// and the coordinator start. The handle is the coordinator's; it joins the workers
/// before it returns.
pub fn spawn(setup: PipelineSetup, shutdown: Shutdown) -> std::io::Result<JoinHandle<()>> {
    let PipelineSetup {
        inbox,
        detector,
        mut sinks,
        limits,
        workers,
        metrics,
        wake,
        rules,
        traffic,
        board,
        tail,
        search,
    } = setup;
    restore(&inbox, &mut sinks).map_err(|e| match e {
        RoundError::Sink(_, e) | RoundError::Rewind(_, e) => e,
        RoundError::Inbox(e) => std::io::Error::other(e),
    })?;
    let workers = workers.max(1);
    let max_in_flight = workers * FRAMES_IN_FLIGHT_PER_WORKER;
    let (jobs, queue) = mpsc::sync_channel::<Job>(max_in_flight);
    let queue = Arc::new(Mutex::new(queue));
    let (done_tx, done) = mpsc::channel::<Rendered>();
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let mut renderer = FrameRenderer::new(detector.clone(), limits);
        if let Some(rules) = &rules {
            renderer = renderer.with_rules(Arc::clone(rules));
        }
        if let Some(traffic) = &traffic {
            renderer = renderer.with_traffic(traffic.part(i));
        }
        let (queue, done_tx, metrics) = (queue.clone(), done_tx.clone(), metrics.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("pipeline-{i}"))
                .spawn(move || worker::run(renderer, queue, done_tx, metrics))?,
        );
    }
    drop(done_tx);
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let mut c = Coordinator {
                inbox,
                sinks,
                metrics,
                wake,
                jobs: Some(jobs),
                done,
                max_in_flight,
                next_seq: 0,
                next_write: 0,
                last_key: None,
                in_flight: 0,
                ready: BTreeMap::new(),
                round: Round::default(),
                spare: Vec::new(),
                board,
                tail,
                search,
                blocked_by: None,
                unrestored: false,
            };
            c.run(&shutdown);
            // Closing the queue ends the workers.
            c.jobs = None;
            for h in handles {
                let _ = h.join();
            }
        })
}

/// Cuts every sink back to its recorded position and records what has to be recorded
/// before anything is written: the starting position of a sink seen for the first time
/// (so a failed first round can be cut back too), and the new position of a sink whose
/// rewind renamed what it holds (a file sink renumbering its generation). Then tells each
/// sink its position is committed. Any error means some sink may still hold lines the
/// inbox does not know are done: nothing may be written until this succeeds.
fn restore(inbox: &Inbox, sinks: &mut [Box<dyn Sink>]) -> Result<(), RoundError> {
    let mut record: Vec<(String, Position)> = Vec::new();
    let mut commit: Vec<Option<Position>> = Vec::with_capacity(sinks.len());
    for sink in sinks.iter_mut() {
        let key = sink.position_key();
        let recorded = inbox.position(&key).map_err(RoundError::Inbox)?;
        if let Some(pos) = recorded {
            sink.rewind_to(pos)
                .map_err(|e| RoundError::Rewind(sink.name().to_owned(), e))?;
        }
        let now = sink.position();
        if let Some(pos) = now {
            if recorded != Some(pos) {
                record.push((key, pos));
            }
        }
        commit.push(now.or(recorded));
    }
    if !record.is_empty() {
        let named: Vec<(&str, Position)> = record.iter().map(|(k, p)| (k.as_str(), *p)).collect();
        inbox.complete(&[], &named).map_err(RoundError::Inbox)?;
    }
    for (sink, pos) in sinks.iter_mut().zip(commit) {
        if let Some(pos) = pos {
            sink.committed(pos);
        }
    }
    Ok(())
}

/// Frames written to the sinks and not yet completed.
#[derive(Default)]
struct Round {
    /// (inbox key, stored length) of each frame, in write order.
    keys: Vec<(u64, usize)>,
    /// Events written, per sink (by index).
    events: Vec<u64>,
    /// When the first frame of the round was written.
    since: Option<Instant>,
}

impl Round {
    fn clear(&mut self) {
        self.keys.clear();
        self.events.iter_mut().for_each(|n| *n = 0);
        self.since = None;
    }
}

/// How far [`Coordinator::dispatch`] got.
enum Dispatched {
    /// Every frame in the inbox is dispatched.
    CaughtUp,
    /// The in-flight bound is reached; more frames may wait.
    Bounded,
    /// No worker is left to take a frame.
    NoWorkers,
}

/// What went wrong in a round; everything in flight is then redone.
enum RoundError {
    /// A sink failed to write or flush.
    Sink(String, std::io::Error),
    /// A sink could not be cut back to its recorded position.
    Rewind(String, std::io::Error),
    /// The inbox could not record progress.
    Inbox(crate::inbox::InboxError),
}

/// The coordinator's state. See the module docs for the invariants it keeps.
struct Coordinator {
    inbox: Arc<Inbox>,
    sinks: Vec<Box<dyn Sink>>,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    /// The workers' queue; `None` closes it.
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Rendered>,
    max_in_flight: usize,
    /// `seq` of the next frame dispatched.
    next_seq: u64,
    /// `seq` of the next frame to write.
    next_write: u64,
    /// Key of the last frame dispatched; `None` reads from the start of the inbox.
    last_key: Option<u64>,
    /// Frames dispatched and not yet handed back by a worker.
    in_flight: usize,
    /// Frames handed back, waiting for earlier ones to be written.
    ready: BTreeMap<u64, Rendered>,
    round: Round,
    /// Output buffers to hand out with the next jobs.
    spare: Vec<RenderedLines>,
    board: Option<Arc<SinkBoard>>,
    tail: Option<TailSender>,
    search: Option<search_feed::SearchFeed>,
    /// The sink whose full queue holds the pipeline back, if any.
    blocked_by: Option<String>,
    /// A failed round left sinks that are not yet cut back to their recorded positions:
    /// nothing is dispatched or written until [`restore`] succeeds.
    unrestored: bool,
}

impl Coordinator {
    fn run(&mut self, shutdown: &Shutdown) {
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let mut taking = true;
            if shutdown.is_triggered() {
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_DRAIN);
                taking = Instant::now() < deadline;
                if self.is_idle() && (!taking || self.inbox.is_empty()) {
                    break;
                }
            }
            if self.unrestored {
                match restore(&self.inbox, &mut self.sinks) {
                    Ok(()) => {
                        self.unrestored = false;
                        tracing::info!(
                            "sinks are back at their recorded positions; taking batches again"
                        );
                    }
                    Err(e) => {
                        self.report(e, "cannot cut the sinks back to their recorded positions; taking no batches until that works");
                        self.wake.wait(ERROR_BACKOFF);
                        continue;
                    }
                }
            }
            let mut caught_up = false;
            if taking && !self.sinks_ready() {
                // A full queue (when_full = "block"): take nothing new until it drains,
                // so the inbox fills and ingest pushes back.
                caught_up = true;
            } else if taking {
                match self.dispatch() {
                    Ok(Dispatched::CaughtUp) => caught_up = true,
                    Ok(Dispatched::Bounded) => {}
                    Ok(Dispatched::NoWorkers) => {
                        tracing::error!("pipeline workers are gone; stopping");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the inbox");
                        self.wake.wait(ERROR_BACKOFF);
                        continue;
                    }
                }
            }
            if self.in_flight > 0 && !self.collect() {
                tracing::error!("pipeline workers are gone; stopping");
                break;
            }
            if let Err(e) = self.write_ready().and_then(|()| self.end_round_if_due()) {
                self.recover(e);
                continue;
            }
            if caught_up && self.is_idle() {
                self.wake.wait(IDLE_WAIT);
            }
        }
        tracing::info!(waiting = self.inbox.len(), "pipeline stopped");
    }

    /// True when every sink can take more; logs when that changes.
    fn sinks_ready(&mut self) -> bool {
        let blocked = self
            .sinks
            .iter()
            .find(|s| !s.ready())
            .map(|s| s.name().to_owned());
        if blocked != self.blocked_by {
            match &blocked {
                Some(sink) => {
                    tracing::warn!(sink = %sink, "sink queue full: taking no new batches until it drains")
                }
                None => tracing::info!("sink queues have room again: taking batches"),
            }
            self.blocked_by = blocked;
        }
        self.blocked_by.is_none()
    }

    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.ready.is_empty() && self.round.keys.is_empty()
    }

    /// Hands frames that follow the last one dispatched to the workers, up to the bound.
    fn dispatch(&mut self) -> Result<Dispatched, crate::inbox::InboxError> {
        while self.in_flight < self.max_in_flight {
            let want = self.max_in_flight - self.in_flight;
            let frames = self.inbox.read_after(self.last_key, want)?;
            let got = frames.len();
            for (key, frame) in frames {
                let job = Job {
                    seq: self.next_seq,
                    key,
                    frame,
                    decoded: self.inbox.take_decoded(key),
                    out: self.spare.pop().unwrap_or_default(),
                };
                // The queue holds `max_in_flight` jobs, so this never blocks; it fails
                // only when every worker is gone.
                let sent = self
                    .jobs
                    .as_ref()
                    .is_some_and(|jobs| jobs.send(job).is_ok());
                if !sent {
                    return Ok(Dispatched::NoWorkers);
                }
                self.next_seq += 1;
                self.in_flight += 1;
                self.last_key = Some(key);
            }
            if got < want {
                return Ok(Dispatched::CaughtUp);
            }
        }
        Ok(Dispatched::Bounded)
    }

    /// Waits a little for one worker result, then takes every result already there. False
    /// when no worker is left.
    fn collect(&mut self) -> bool {
        let waiting = Instant::now();
        let first = self.done.recv_timeout(RESULT_WAIT);
        self.metrics.pipeline_time("wait", waiting);
        match first {
            Ok(r) => self.accept(r),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        while let Ok(r) = self.done.try_recv() {
            self.accept(r);
        }
        true
    }

    fn accept(&mut self, r: Rendered) {
        self.in_flight -= 1;
        let Rendered {
            seq,
            key,
            frame_len,
            out,
            result,
        } = r;
        let result = match result {
            // A parser bug: stop the pipeline as a panic on this thread would.
            Err(Failure::Panicked(panic)) => std::panic::resume_unwind(panic),
            other => other,
        };
        let r = Rendered {
            seq,
            key,
            frame_len,
            out,
            result,
        };
        self.ready.insert(seq, r);
    }

    /// Writes every frame whose predecessors are all written, in order.
    fn write_ready(&mut self) -> Result<(), RoundError> {
        let writing = Instant::now();
        let written = self.write_in_order();
        self.metrics.pipeline_time("write", writing);
        written
    }

    fn write_in_order(&mut self) -> Result<(), RoundError> {
        while let Some(r) = self.ready.remove(&self.next_write) {
            self.next_write += 1;
            match &r.result {
                Ok(stats) => {
                    if !r.out.is_empty() {
                        self.round.events.resize(self.sinks.len(), 0);
                        for (i, sink) in self.sinks.iter_mut().enumerate() {
                            let (parts, lines) = r.out.for_sink(i);
                            for part in parts {
                                sink.write(part)
                                    .map_err(|e| RoundError::Sink(sink.name().to_owned(), e))?;
                            }
                            self.round.events[i] += lines;
                        }
                    }
                    self.metrics.rules_dropped_events.inc_by(stats.dropped);
                    self.publish(&r.out);
                    for (format, n) in &stats.per_format {
                        self.metrics
                            .parse_events
                            .get_or_create(&FormatLabel { format })
                            .inc_by(*n);
                    }
                    self.metrics.parse_errors.inc_by(stats.parse_errors);
                }
                Err(Failure::Decode(e)) => {
                    // Frames were checked at ingest; this means the stored copy is damaged.
                    self.metrics.inbox_corrupt_frames.inc();
                    tracing::error!(key = r.key, error = %e, "a stored batch cannot be decoded; dropping it");
                }
                Err(Failure::Panicked(_)) => {}
            }
            self.round.keys.push((r.key, r.frame_len));
            self.round.since.get_or_insert_with(Instant::now);
            self.recycle(r.out);
        }
        Ok(())
    }

    /// Hands the frame's lines to live tail (when someone listens) and to the search
    /// store; neither is waited for.
    fn publish(&self, out: &RenderedLines) {
        if out.is_empty() {
            return;
        }
        let listening = self.tail.as_ref().filter(|t| t.receiver_count() > 0);
        if listening.is_none() && self.search.is_none() {
            return;
        }
        let lines = Arc::new(out.bytes.clone());
        if let Some(tail) = listening {
            // A full channel drops its oldest frame for a listener that lags.
            let _ = tail.send(lines.clone());
        }
        if let Some(search) = &self.search {
            search.offer(lines);
        }
    }

    fn recycle(&mut self, mut out: RenderedLines) {
        if out.capacity() <= KEEP_OUTPUT_BYTES && self.spare.len() < self.max_in_flight {
            out.clear();
            self.spare.push(out);
        }
    }

    /// Ends the round when it is full, old enough, or the pipeline has caught up.
    fn end_round_if_due(&mut self) -> Result<(), RoundError> {
        let due = match self.round.since {
            None => false,
            Some(since) => {
                self.round.keys.len() >= FRAMES_PER_ROUND
                    || since.elapsed() >= ROUND_INTERVAL
                    || (self.in_flight == 0 && self.ready.is_empty())
            }
        };
        if due {
            let syncing = Instant::now();
            let ended = self.end_round();
            self.metrics.pipeline_time("sync", syncing);
            ended?;
        }
        Ok(())
    }

    /// Makes the sinks durable, then completes the round's frames with their positions.
    fn end_round(&mut self) -> Result<(), RoundError> {
        let mut positions = Vec::with_capacity(self.sinks.len());
        for sink in self.sinks.iter_mut() {
            sink.flush()
                .map_err(|e| RoundError::Sink(sink.name().to_owned(), e))?;
            if let Some(pos) = sink.position() {
                positions.push((sink.position_key(), pos));
            }
        }
        let named: Vec<(&str, Position)> =
            positions.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        self.inbox
            .complete(&self.round.keys, &named)
            .map_err(RoundError::Inbox)?;
        for sink in self.sinks.iter_mut() {
            if let Some(pos) = sink.position() {
                sink.committed(pos);
            }
        }
        let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
        for (i, (sink, n)) in self.sinks.iter().zip(&self.round.events).enumerate() {
            if let Some(b) = &self.board {
                b.written(i, *n, now_ms);
            }
            self.metrics
                .sink_events
                .get_or_create(&SinkLabel {
                    sink: sink.name().to_owned(),
                })
                .inc_by(*n);
        }
        self.metrics.inbox_bytes.set(self.inbox.bytes() as i64);
        self.round.clear();
        Ok(())
    }

    /// Shows a failure on the board and in the metrics, and logs it.
    fn report(&self, e: RoundError, what: &str) {
        let (sink, e) = match e {
            RoundError::Sink(sink, e) | RoundError::Rewind(sink, e) => (sink, e),
            RoundError::Inbox(e) => {
                tracing::error!(error = %e, "{what}: the inbox cannot record progress");
                return;
            }
        };
        if let Some(b) = &self.board {
            let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
            b.failed(&sink, e.to_string(), now_ms);
        }
        self.metrics
            .sink_errors
            .get_or_create(&SinkLabel { sink: sink.clone() })
            .inc();
        tracing::error!(sink = %sink, error = %e, "{what}");
    }

    /// After a failed round: drop everything in flight, cut the sinks back to their
    /// recorded positions, and start again from the first frame in the inbox.
    fn recover(&mut self, e: RoundError) {
        self.report(e, "sink round failed; retrying (batches stay in the inbox)");
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(r) => {
                    self.in_flight -= 1;
                    self.recycle(r.out);
                }
                Err(_) => break,
            }
        }
        let ready = std::mem::take(&mut self.ready);
        for (_, r) in ready {
            self.recycle(r.out);
        }
        self.round.clear();
        self.next_write = self.next_seq;
        self.last_key = None;
        // The sinks may hold lines the inbox does not know are done: they are cut back
        // before anything else is written, so the retry writes each line once.
        self.unrestored = true;
        self.wake.wait(ERROR_BACKOFF);
    }
}

#[cfg(test)]
mod tests;
