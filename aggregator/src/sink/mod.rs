//! Sinks: where rendered events go. A sink is one folder (or file) implementing [`Sink`],
//! registered in [`build`]; nothing else needs to change to add one.
//!
//! Contract: `write` may buffer; after `flush` returns `Ok`, everything written before it
//! is durable (for a file: on disk, fsynced). The pipeline records each sink's
//! [`Sink::position`] after a flush, together with the inbox progress, and rewinds sinks
//! to it after a crash, which makes a file sink exactly-once.

pub mod cloudwatch;
mod file;
pub mod queue;
pub mod remote;
mod stdout;
pub mod template;

use crate::config::SinkConfig;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// A destination for JSON-line events.
pub trait Sink: Send {
    /// The sink's name from the config.
    fn name(&self) -> &str;
    /// Appends complete JSON lines (each ends with `\n`).
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> std::io::Result<()>;
    /// A position that identifies how much is durable (a file's length), recorded with
    /// the inbox's progress; `None` for sinks that cannot rewind (stdout).
    fn position(&self) -> Option<u64> {
        None
    }
    /// The key the position is recorded under: what the position is a position *in*
    /// (for a file, its path), so a sink pointed at another file never applies an old
    /// position to it.
    fn position_key(&self) -> String {
        self.name().to_owned()
    }
    /// Drops whatever was written after `position` (from a crash, or a failed round).
    fn rewind_to(&mut self, _position: u64) -> std::io::Result<()> {
        Ok(())
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
    /// Events written and made durable.
    pub written: u64,
    /// Failed writes or flushes (each is retried from the inbox).
    pub failures: u64,
    /// When the last events were made durable.
    pub last_write: Option<logferry_shared::event::Timestamp>,
    /// The last failure: when and what.
    pub last_error: Option<SinkError>,
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
        SinkBoard {
            entries: sinks
                .into_iter()
                .map(|(name, kind)| SinkEntry {
                    name,
                    kind,
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
        self.entries
            .iter()
            .map(|e| {
                let last = e.last_write_ms.load(Relaxed);
                SinkState {
                    name: e.name.clone(),
                    kind: e.kind,
                    written: e.written.load(Relaxed),
                    failures: e.failures.load(Relaxed),
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

/// Builds the sink a config entry describes.
pub fn build(name: &str, config: &SinkConfig) -> std::io::Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::File { path } => Box::new(FileSink::open(name, path)?),
        SinkConfig::Stdout {} => Box::new(StdoutSink::new(name)),
    })
}
