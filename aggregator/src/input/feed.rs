//! From an input's messages to frames in the durable inbox, the same inbox agents' batches
//! go to; the pipeline cannot tell the two apart.
//!
//! Listeners cut messages into [`Chunk`]s (the messages of one socket read, or of a few
//! datagrams) and hand them to the input's one feed task through a bounded channel
//! ([`FeedSender`]). The feed packs them into a [`BatchBuilder`] with one source per
//! peer ([`Origin`]), seals the batch into a wire frame when it holds `batch_max_bytes`
//! or its oldest message has waited `batch_wait`, and admits the frame to the inbox.
//!
//! # Identity
//!
//! Frames carry agent id `input:<name>`, a stream id made once per process start (the
//! start time in milliseconds and 64 random bits, in hex) and a seq counting up from 1.
//! The inbox drops a frame whose (agent, stream, seq) it accepted before; a stream id that
//! is new at every start means a restart can never reuse a seq of an earlier run, whatever
//! the clock does, without a counter on disk. The cost is one small entry in the inbox's
//! accepted table per input and start. Seqs are drawn in order and a frame is admitted
//! (or given up) before the next one is sealed, so the stream has no gaps.
//!
//! # Back-pressure and loss
//!
//! - [`WhenFull::Block`] (TCP, TLS): when the inbox is full the feed retries the same
//!   frame until it is admitted; meanwhile the channel fills, listeners wait to send, stop
//!   reading their sockets, and the kernel's flow control slows the senders. Nothing that
//!   was read is dropped, except at shutdown if the inbox stays full (or unwritable) for
//!   [`SHUTDOWN_DRAIN`]: then the batch is dropped, counted (`shutdown`) and logged.
//! - [`WhenFull::Drop`] (UDP, which has no flow control): a frame the inbox refuses is
//!   dropped and counted (`inbox_full`, `storage`), and a chunk that finds the channel full
//!   is dropped and counted (`queue_full`), so the socket keeps being read.
//! - At shutdown the feed ends when every sender is gone (listeners stop reading and
//!   send what they hold first) and admits what it has.
//!
//! Memory is bounded by the channel ([`FeedSender::capacity`] chunks of at most one read
//! each) plus one batch of at most `batch_max_bytes` + one message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{BatchBuilder, FLAG_INVALID_UTF8};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{InputContext, LogLimiter};
use crate::inbox::{Admit, Decoded, Inbox};
use crate::metrics::{InputMetrics, Metrics};
use crate::pipeline::Wake;
use crate::render::{HOST_ATTR, SOURCE_TYPE_ATTR};

/// How long the feed keeps trying to admit what it holds after shutdown begins.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Most peers in one batch; a new one past it seals the batch.
const MAX_SOURCES: usize = 4096;
/// A batch's buffer starts this large and grows as messages come.
const INITIAL_BATCH_CAPACITY: usize = 64 << 10;
/// zstd level for stored frames: fast, and 4-10× smaller on log lines.
const ZSTD_LEVEL: i32 = 1;
/// First and longest wait between two tries to admit a frame the inbox refused.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Where messages came from: one per input and peer. Rendered as the event's `source`
/// (`type`, `path`) and `host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `source.path`, e.g. `syslog+tcp://10.0.0.5/syslog_tcp`.
    pub path: String,
    /// The event's `host`: the peer's address.
    pub host: String,
}

#[derive(Debug, Clone, Copy)]
struct ChunkRecord {
    origin: u32,
    start: usize,
    len: usize,
    flags: u8,
    observed_ms: u64,
}

/// Messages read together, on their way to the feed.
#[derive(Debug, Default)]
pub struct Chunk {
    data: Vec<u8>,
    records: Vec<ChunkRecord>,
    origins: Vec<Arc<Origin>>,
    truncated: u64,
    invalid_utf8: u64,
}

impl Chunk {
    /// Appends one message with its `FLAG_*` bits; invalid UTF-8 is flagged here.
    pub fn push(&mut self, origin: &Arc<Origin>, line: &[u8], mut flags: u8, observed_ms: u64) {
        let index = match self.origins.last() {
            Some(last) if Arc::ptr_eq(last, origin) => self.origins.len() - 1,
            _ => {
                self.origins.push(origin.clone());
                self.origins.len() - 1
            }
        };
        if std::str::from_utf8(line).is_err() {
            flags |= FLAG_INVALID_UTF8;
            self.invalid_utf8 += 1;
        }
        if flags & logferry_shared::wire::FLAG_TRUNCATED != 0 {
            self.truncated += 1;
        }
        self.records.push(ChunkRecord {
            origin: index as u32,
            start: self.data.len(),
            len: line.len(),
            flags,
            observed_ms,
        });
        self.data.extend_from_slice(line);
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of messages held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// What the feed does when the inbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Keep trying (and so stop the listeners reading).
    Block,
    /// Drop the batch, counted.
    Drop,
}

/// How one input's feed batches.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// The input's name (agent id `input:<name>`).
    pub input: String,
    /// The event's `source.type`, e.g. `syslog`.
    pub source_type: &'static str,
    /// Seal a batch once its body holds this many bytes.
    pub batch_max_bytes: usize,
    /// Seal a batch once its oldest message has waited this long.
    pub batch_wait: Duration,
    /// What to do when the inbox is full.
    pub when_full: WhenFull,
    /// Chunks the channel holds.
    pub queue_chunks: usize,
}

/// The listeners' end of a feed. Cloned into every connection; the feed ends once every
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct FeedSender {
    tx: mpsc::Sender<Chunk>,
    metrics: InputMetrics,
}

/// The feed is gone (only after a bug or at the very end of shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the input's feed has stopped")]
pub struct FeedClosed;

impl FeedSender {
    fn count(&self, chunk: &Chunk) {
        self.metrics.messages.inc_by(chunk.len() as u64);
        self.metrics.truncated.inc_by(chunk.truncated);
        self.metrics.invalid_utf8.inc_by(chunk.invalid_utf8);
    }

    /// Sends a chunk, waiting while the channel is full (back-pressure).
    pub async fn send(&self, chunk: Chunk) -> Result<(), FeedClosed> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.count(&chunk);
        let n = chunk.len() as u64;
        self.tx.send(chunk).await.map_err(|_| {
            self.metrics.dropped("shutdown", n);
            FeedClosed
        })
    }

    /// Sends a chunk if the channel has room, else drops it (counted `queue_full`) and
    /// returns false.
    pub fn try_send(&self, chunk: Chunk) -> Result<bool, FeedClosed> {
        if chunk.is_empty() {
            return Ok(true);
        }
        self.count(&chunk);
        let n = chunk.len() as u64;
        match self.tx.try_send(chunk) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped("queue_full", n);
                Ok(false)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.dropped("shutdown", n);
                Err(FeedClosed)
            }
        }
    }

    /// Chunks the channel holds at most.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// The input's metrics.
    pub fn metrics(&self) -> &InputMetrics {
        &self.metrics
    }
}

/// A stream id new at every start: start time (ms) and 64 random bits, in hex.
pub(crate) fn new_stream_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{ms:x}-{:016x}", fastrand::u64(..))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts an input's feed task.
pub fn spawn(settings: FeedSettings, ctx: &InputContext) -> (FeedSender, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_chunks.max(1));
    let metrics = ctx.metrics.input(&settings.input);
    let feed = Feed {
        agent_id: format!("input:{}", settings.input),
        stream: new_stream_id(),
        seq: 0,
        settings,
        inbox: ctx.inbox.clone(),
        wake: ctx.wake.clone(),
        all_metrics: ctx.metrics.clone(),
        metrics: metrics.clone(),
        shutdown: ctx.shutdown.clone(),
        compressor: None,
        pending: None,
        give_up_at: None,
        log: LogLimiter::default(),
    };
    tracing::debug!(input = %feed.settings.input, agent = %feed.agent_id, stream = %feed.stream, "input feed started");
    let handle = tokio::spawn(feed.run(rx));
    (FeedSender { tx, metrics }, handle)
}

/// A batch being filled.
struct Pending {
    builder: BatchBuilder,
    /// Source index in the builder, by origin.
    sources: HashMap<Arc<Origin>, u32>,
    since: Instant,
}

struct Feed {
    settings: FeedSettings,
    agent_id: String,
    stream: String,
    seq: u64,
    inbox: Arc<Inbox>,
    wake: Arc<Wake>,
    all_metrics: Arc<Metrics>,
    metrics: InputMetrics,
    shutdown: Shutdown,
    /// Taken while a batch is sealed on a blocking thread.
    compressor: Option<Compressor>,
    pending: Option<Pending>,
    /// After shutdown began: when to stop waiting for a full or failing inbox. One
    /// deadline for the whole feed, so the drain is bounded however much is queued.
    give_up_at: Option<Instant>,
    log: LogLimiter,
}

impl Feed {
    async fn run(mut self, mut rx: mpsc::Receiver<Chunk>) {
        loop {
            let deadline = self
                .pending
                .as_ref()
                .map(|p| tokio::time::Instant::from_std(p.since + self.settings.batch_wait));
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => self.add(chunk).await,
                    None => break,
                },
                () = sleep_until(deadline) => self.flush().await,
            }
        }
        self.flush().await;
    }

    async fn add(&mut self, chunk: Chunk) {
        // The batch's source index of each of the chunk's origins, looked up once.
        let mut local: Vec<Option<u32>> = vec![None; chunk.origins.len()];
        for rec in &chunk.records {
            let i = rec.origin as usize;
            let (Some(origin), Some(slot)) = (chunk.origins.get(i), local.get_mut(i)) else {
                continue;
            };
            let full = {
                let pending = self.pending.get_or_insert_with(|| Pending {
                    builder: BatchBuilder::new(
                        "",
                        rec.observed_ms,
                        self.settings.batch_max_bytes.min(INITIAL_BATCH_CAPACITY),
                    ),
                    sources: HashMap::new(),
                    since: Instant::now(),
                });
                let source = match slot.or_else(|| pending.sources.get(origin).copied()) {
                    Some(s) => s,
                    None => {
                        let s = pending.builder.add_source(
                            &origin.path,
                            &[
                                (SOURCE_TYPE_ATTR, self.settings.source_type),
                                (HOST_ATTR, &origin.host),
                            ],
                        );
                        pending.sources.insert(origin.clone(), s);
                        s
                    }
                };
                *slot = Some(source);
                let line = &chunk.data[rec.start..rec.start + rec.len];
                pending
                    .builder
                    .push(source, rec.observed_ms, rec.flags, line);
                pending.builder.raw_len() >= self.settings.batch_max_bytes
                    || pending.sources.len() >= MAX_SOURCES
            };
            if full {
                self.flush().await;
                local.fill(None);
            }
        }
    }

    /// Seals the pending batch and admits it (see the module docs for what happens when
    /// the inbox refuses it).
    async fn flush(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let messages = u64::from(pending.builder.record_count());
        self.seq += 1;
        let (agent, stream, seq) = (self.agent_id.clone(), self.stream.clone(), self.seq);
        let compressor = self.compressor.take();
        let sealed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut c = match compressor {
                Some(c) => c,
                None => Compressor::new(Codec::Zstd, ZSTD_LEVEL)?,
            };
            let sealed = pending.builder.seal_with_body(&agent, &stream, seq, &mut c);
            sealed.map(|s| (s, c))
        })
        .await;
        let (frame, body) = match sealed {
            Ok(Ok(((frame, mut body), c))) => {
                self.compressor = Some(c);
                // The inbox's cache of decoded bodies counts their length, not their
                // capacity: do not hand it a mostly empty buffer.
                if body.capacity() > 2 * body.len() {
                    body.shrink_to_fit();
                }
                (Arc::new(frame), body)
            }
            Ok(Err(e)) => {
                tracing::error!(input = %self.settings.input, error = %e, messages, "cannot encode a batch; dropped");
                self.metrics.dropped("failed", messages);
                return;
            }
            Err(e) => {
                tracing::error!(input = %self.settings.input, error = %e, messages, "batch encoder task failed; dropped");
                self.metrics.dropped("failed", messages);
                return;
            }
        };
        let mut decoded = Some(Decoded {
            record_count: messages as u32,
            body,
        });
        let mut wait = RETRY_FIRST;
        loop {
            let (inbox, frame2, d) = (self.inbox.clone(), frame.clone(), decoded.take());
            let (agent, stream) = (self.agent_id.clone(), self.stream.clone());
            let admitted = tokio::task::spawn_blocking(move || {
                inbox.admit_decoded(&agent, &stream, seq, &frame2, d)
            })
            .await;
            let reason = match admitted {
                Ok(Ok(Admit::Accepted)) => {
                    self.wake.notify();
                    self.all_metrics.inbox_bytes.set(self.inbox.bytes() as i64);
                    return;
                }
                Ok(Ok(Admit::Duplicate)) => {
                    // Cannot happen: the stream id is new at every start.
                    tracing::error!(input = %self.settings.input, seq, "the inbox took an input batch for a duplicate; dropped");
                    self.metrics.dropped("duplicate", messages);
                    return;
                }
                Ok(Ok(Admit::Full)) => "inbox_full",
                Ok(Err(e)) => {
                    if self.log.allow() {
                        tracing::error!(input = %self.settings.input, error = %e, "cannot store an input batch in the inbox");
                    }
                    "storage"
                }
                Err(e) => {
                    tracing::error!(input = %self.settings.input, error = %e, messages, "inbox task failed; batch dropped");
                    self.metrics.dropped("failed", messages);
                    return;
                }
            };
            if self.settings.when_full == WhenFull::Drop {
                if self.log.allow() {
                    tracing::warn!(input = %self.settings.input, messages, reason, "inbox refused a batch; dropped");
                }
                self.metrics.dropped(reason, messages);
                return;
            }
            if self.shutdown.is_triggered() {
                let at = *self
                    .give_up_at
                    .get_or_insert_with(|| Instant::now() + SHUTDOWN_DRAIN);
                if Instant::now() >= at {
                    tracing::error!(input = %self.settings.input, messages, reason, "shutting down and the inbox still refuses a batch; dropped");
                    self.metrics.dropped("shutdown", messages);
                    return;
                }
            } else if self.log.allow() {
                tracing::warn!(input = %self.settings.input, reason, "inbox refuses input batches; reading is paused");
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.wait(), if self.give_up_at.is_none() => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
