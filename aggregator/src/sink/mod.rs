//! Sinks: where rendered events go. A sink is one folder (or file) implementing [`Sink`],
//! registered in [`build`]; nothing else needs to change to add one.
//!
//! Contract: `write` may buffer; after `flush` returns `Ok`, everything written before it
//! is durable (for a file: on disk, fsynced, renames included). The pipeline records each
//! sink's [`Sink::position`] after a flush, together with the inbox progress, and rewinds
//! sinks to it after a crash, which makes a file sink exactly-once, across its rotations.

pub mod cloudwatch;
pub mod delivery;
pub mod eventhubs;
pub mod file;
pub mod http;
pub mod queue;
pub mod remote;
mod stdout;
pub mod template;

use crate::config::SinkConfig;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// How far a sink durably got, recorded with the inbox's progress: the generation of its
/// output (a `file` sink's rotations each start a new one; always 0 for a queue) and the
/// offset in it (a file's length, a queue's next entry key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Which output the offset is in.
    pub generation: u64,
    /// How far into it.
    pub offset: u64,
}

/// The version byte of a recorded [`Position`].
const POSITION_VERSION: u8 = 1;

impl Position {
    /// An offset in generation 0.
    pub fn at(offset: u64) -> Position {
        Position {
            generation: 0,
            offset,
        }
    }

    /// The stored form: the version byte, then generation and offset (u64 BE each).
    pub fn encode(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[0] = POSITION_VERSION;
        out[1..9].copy_from_slice(&self.generation.to_be_bytes());
        out[9..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    /// Reads [`Position::encode`]'s form, and the 8-byte offset that versions before
    /// generations recorded (generation 0); `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Position> {
        let u64_at = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
        match bytes.len() {
            8 => Some(Position::at(u64_at(bytes)?)),
            17 if bytes[0] == POSITION_VERSION => Some(Position {
                generation: u64_at(&bytes[1..9])?,
                offset: u64_at(&bytes[9..])?,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.generation, self.offset)
    }
}

/// A destination for JSON-line events.
pub trait Sink: Send + std::fmt::Debug {
    /// The sink's name from the config.
    fn name(&self) -> &str;
    /// Appends complete JSON lines (each ends with `\n`).
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> std::io::Result<()>;
    /// A position that identifies how much is durable (a file's generation and length),
    /// recorded with the inbox's progress; `None` for sinks that cannot rewind (stdout).
    fn position(&self) -> Option<Position> {
        None
    }
    /// The key the position is recorded under: what the position is a position *in*
    /// (for a file, its path), so a sink pointed at another file never applies an old
    /// position to it.
    fn position_key(&self) -> String {
        self.name().to_owned()
    }
    /// Drops whatever was written after `position` (from a crash, or a failed round).
    /// Afterwards [`Sink::position`] may name the same content differently (a file sink
    /// renumbering its generation past files it finds): the pipeline then records the new
    /// position before writing anything. An error leaves the sink unusable until a rewind
    /// succeeds: the pipeline writes nothing to any sink until then.
    fn rewind_to(&mut self, _position: Position) -> std::io::Result<()> {
        Ok(())
    }
    /// `position` is now recorded with the inbox's progress (after a round, or at start
    /// after a rewind): a queued sink may deliver what lies before it, a file sink may
    /// delete rotated files beyond `keep` that lie before it.
    fn committed(&mut self, _position: Position) {}
    /// False while the sink cannot take more (a full queue with `when_full = "block"`):
    /// the pipeline then takes no new batches, which pushes back to ingest.
    fn ready(&self) -> bool {
        true
    }
}

/// The state of each sink as the admin endpoint shows it (`GET /api/sinks`): events
/// written, failed rounds, the last error and when the last write completed. The pipeline
/// updates it; readers take a [`SinkBoard::snapshot`].
#[derive(Debug)]
pub struct SinkBoard {
    entries: Vec<SinkEntry>,
}

#[derive(Debug)]
struct SinkEntry {
    name: String,
    kind: &'static str,
    queue: Option<std::sync::Arc<queue::SinkQueue>>,
    delivered: std::sync::atomic::AtomicU64,
    written: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
    /// ms since the epoch of the last completed round with events; 0: none yet.
    last_write_ms: std::sync::atomic::AtomicU64,
    last_error: std::sync::Mutex<Option<(u64, String)>>,
}

/// One sink's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SinkState {
    /// Name from the config.
    pub name: String,
    /// `type` from the config.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Events written and made durable (for a queued sink: queued).
    pub written: u64,
    /// Failed writes, flushes or deliveries (each is retried).
    pub failures: u64,
    /// A queued sink's queue and deliveries; absent for `file` and `stdout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueState>,
    /// When the last events were made durable.
    pub last_write: Option<logferry_shared::event::Timestamp>,
    /// The last failure: when and what.
    pub last_error: Option<SinkError>,
}

/// A queued sink's queue, as `GET /api/sinks` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueState {
    /// Events delivered to the service since start.
    pub delivered: u64,
    /// Events waiting.
    pub events: u64,
    /// Bytes waiting.
    pub bytes: u64,
    /// The queue's bound.
    pub max_bytes: u64,
    /// How long the oldest waiting event has waited, in seconds.
    pub oldest_age_seconds: f64,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// Why the sink is not ready (`full`, `stuck`), if it is not.
    pub problem: Option<&'static str>,
}

impl QueueState {
    fn of(q: &queue::SinkQueue, delivered: u64, now_ms: u64) -> QueueState {
        let level = q.level();
        let age_ms = level.oldest_ms.map_or(0, |t| now_ms.saturating_sub(t));
        let problem = if q.is_full() {
            Some("full")
        } else if level.events > 0 && age_ms > q.config().stuck_after.as_millis() as u64 {
            Some("stuck")
        } else {
            None
        };
        QueueState {
            delivered,
            events: level.events,
            bytes: level.bytes,
            max_bytes: q.config().max_bytes,
            oldest_age_seconds: age_ms as f64 / 1000.0,
            dead_letters: level.dead_letters,
            problem,
        }
    }
}

/// A sink failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SinkError {
    /// When.
    pub at: logferry_shared::event::Timestamp,
    /// What.
    pub message: String,
}

impl SinkBoard {
    /// A board for the sinks (name, type), in pipeline order.
    pub fn new(sinks: impl IntoIterator<Item = (String, &'static str)>) -> SinkBoard {
        SinkBoard::with_queues(sinks.into_iter().map(|(n, k)| (n, k, None)))
    }

    /// A board for the sinks (name, type, queue of a queued sink), in pipeline order.
    pub fn with_queues(
        sinks: impl IntoIterator<
            Item = (
                String,
                &'static str,
                Option<std::sync::Arc<queue::SinkQueue>>,
            ),
        >,
    ) -> SinkBoard {
        SinkBoard {
            entries: sinks
                .into_iter()
                .map(|(name, kind, queue)| SinkEntry {
                    name,
                    kind,
                    queue,
                    delivered: Default::default(),
                    written: Default::default(),
                    failures: Default::default(),
                    last_write_ms: Default::default(),
                    last_error: Default::default(),
                })
                .collect(),
        }
    }

    /// `n` events of sink `index` were made durable at `now_ms`.
    pub fn written(&self, index: usize, n: u64, now_ms: u64) {
        if let Some(e) = self.entries.get(index) {
            use std::sync::atomic::Ordering::Relaxed;
            e.written.fetch_add(n, Relaxed);
            if n > 0 {
                e.last_write_ms.store(now_ms, Relaxed);
            }
        }
    }

    /// `n` events of queued sink `index` were delivered at `now_ms`.
    pub fn delivered(&self, index: usize, n: u64, _now_ms: u64) {
        if let Some(e) = self.entries.get(index) {
            e.delivered
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The queue of the sink called `name`, if it is a queued sink.
    pub fn queue(&self, name: &str) -> Option<&std::sync::Arc<queue::SinkQueue>> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.queue.as_ref())
    }

    /// True when a sink of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// The queued sinks that are full or stuck: (name, problem).
    pub fn problems(&self) -> Vec<(String, &'static str)> {
        let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
        self.entries
            .iter()
            .filter_map(|e| {
                let q = e.queue.as_ref()?;
                let problem = QueueState::of(q, 0, now_ms).problem?;
                Some((e.name.clone(), problem))
            })
            .collect()
    }

    /// The sink called `name` failed at `now_ms`.
    pub fn failed(&self, name: &str, message: String, now_ms: u64) {
        if let Some(e) = self.entries.iter().find(|e| e.name == name) {
            e.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *e.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((now_ms, message));
        }
    }

    /// Every sink's state, in pipeline order.
    pub fn snapshot(&self) -> Vec<SinkState> {
        use logferry_shared::event::Timestamp;
        use std::sync::atomic::Ordering::Relaxed;
        let now_ms = Timestamp::now().as_millis().max(0) as u64;
        self.entries
            .iter()
            .map(|e| {
                let last = e.last_write_ms.load(Relaxed);
                SinkState {
                    name: e.name.clone(),
                    kind: e.kind,
                    written: e.written.load(Relaxed),
                    failures: e.failures.load(Relaxed),
                    queue: e
                        .queue
                        .as_ref()
                        .map(|q| QueueState::of(q, e.delivered.load(Relaxed), now_ms)),
                    last_write: (last > 0).then(|| Timestamp::from_millis(last)),
                    last_error: e
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|(at, m)| SinkError {
                            at: Timestamp::from_millis(*at),
                            message: m.clone(),
                        }),
                }
            })
            .collect()
    }
}

/// What [`build`] needs besides the sink's config.
#[derive(Debug)]
pub struct BuildContext<'a> {
    /// Where queued sinks keep their queues (`None` when no sink is queued).
    pub queues: Option<&'a queue::QueueStore>,
    /// The queued sinks' delivery metrics.
    pub families: &'a delivery::DeliveryFamilies,
}

/// A built sink: what the pipeline writes to and, for a queued sink, its queue and the
/// delivery task to run.
pub struct Built {
    /// What the pipeline writes to.
    pub sink: Box<dyn Sink>,
    /// The queue of a queued sink.
    pub queue: Option<std::sync::Arc<queue::SinkQueue>>,
    /// The delivery task of a queued sink, to be run on the runtime.
    pub delivery: Option<delivery::DeliveryTask>,
}

/// Builds the sink a config entry describes.
pub fn build(name: &str, config: &SinkConfig, ctx: &BuildContext<'_>) -> anyhow::Result<Built> {
    use anyhow::Context;
    let deliver: Box<dyn remote::Deliver> = match config {
        SinkConfig::File(c) => {
            return Ok(Built {
                sink: Box::new(FileSink::new(name, c)?),
                queue: None,
                delivery: None,
            })
        }
        SinkConfig::Stdout {} => {
            return Ok(Built {
                sink: Box::new(StdoutSink::new(name)),
                queue: None,
                delivery: None,
            })
        }
        SinkConfig::Http(c) => Box::new(http::HttpSink::new(c)?),
        SinkConfig::CloudwatchLogs(c) => Box::new(cloudwatch::CloudWatchSink::new(
            name,
            c,
            ctx.families.adjustments(name),
        )?),
        SinkConfig::Eventhubs(c) => Box::new(eventhubs::EventHubsSink::new(
            name,
            c,
            ctx.families.adjustments(name),
        )?),
    };
    let (qc, retry) = config
        .queued()
        .context("a sink that sends to a service has queue settings")?;
    let store = ctx.queues.context("the sink queue store is not open")?;
    let queue = store
        .queue(name, qc)
        .with_context(|| format!("opening the queue of sink {name}"))?;
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let level = queue.level();
    if level.events > 0 {
        tracing::info!(
            sink = name,
            events = level.events,
            bytes = level.bytes,
            "events waiting in the sink queue from before"
        );
    }
    Ok(Built {
        sink: Box::new(queue::QueueSink::new(queue.clone(), dropped.clone())),
        delivery: Some(delivery::DeliveryTask::new(
            queue.clone(),
            deliver,
            retry.clone(),
            ctx.families.clone(),
            dropped,
        )),
        queue: Some(queue),
    })
}

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod queue_tests;
