//! The open batch: lines from any number of files, sealed into a frame and committed to
//! the spool together with the checkpoints of those files.
//!
//! Invariants:
//! - A file's checkpoint in a commit is the offset just past the last line of that file
//!   in the batch; lines the tailer still holds (partial, or waiting to be joined) come
//!   after it, so a crash re-reads them and never skips them.
//! - At most one batch is open and at most one sealed batch waits for the spool
//!   ([`Batcher::has_pending`]); while one waits, the tailer reads nothing, so a full
//!   spool (`when_full = "block"`) or a failing disk stops reading rather than growing
//!   memory. The waiting frame keeps its sequence number and is committed as it is.
//! - Bounds: the open batch holds at most `batch_max_bytes` plus one line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logferry_shared::codec::Compressor;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{BatchBuilder, FLAG_TRUNCATED};
use tokio::sync::Notify;

use crate::container::Entry;
use crate::fingerprint::Fingerprint;
use crate::gzip::{MemberLog, MemberStart};
use crate::metrics::Metrics;
use crate::spool::{Checkpoint, Spool, SpoolError};

/// The stream all of this agent's batches belong to.
pub const STREAM: &str = "default";

/// (device, inode): how the tailer knows a file while it has it open.
pub type FileKey = (u64, u64);

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The file a line comes from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Device and inode.
    pub key: FileKey,
    /// Path the file is read under.
    pub path: &'a Path,
    /// The file's current fingerprint.
    pub fingerprint: Fingerprint,
    /// Source attributes sent with the file's lines (Kubernetes metadata).
    pub attrs: &'a [(&'static str, String)],
    /// For a file read decompressed: its member starts, so that a checkpoint says where
    /// decoding resumes.
    pub gzip: Option<&'a MemberLog>,
}

/// Where a sealed batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// In the spool (or nothing was open).
    Done,
    /// Still waiting: the spool is full (`block`) or could not be written.
    Waiting,
    /// Shutdown came while waiting; the batch was not written and its lines will be read
    /// again after a restart.
    Abandoned,
}

/// Builds batches and commits them to the spool.
pub struct Batcher {
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    shipper: Arc<Notify>,
    shutdown: Shutdown,
    compressor: Compressor,
    agent_id: String,
    host: String,
    max_bytes: usize,
    timeout: Duration,
    seq: u64,
    open: Option<OpenBatch>,
    pending: Option<Sealed>,
    /// The body buffer of the last sealed batch, reused by the next one.
    spare_body: Vec<u8>,
    /// When a failed spool write was last logged (at most one error a minute).
    last_error_log: Option<Instant>,
}

struct OpenBatch {
    builder: BatchBuilder,
    started: Instant,
    files: Vec<FileEntry>,
    /// Index into `files` by key; lines come in runs from one file, so the last entry
    /// used is checked first and the map is consulted only when the file changes.
    index: HashMap<FileKey, usize>,
    last: usize,
}

struct FileEntry {
    key: FileKey,
    /// The frame's source for the file's lines; `None` while it has none (a position
    /// noted with [`Batcher::note_position`]).
    source: Option<u32>,
    path: PathBuf,
    fingerprint: Fingerprint,
    end_offset: u64,
    gzip: Option<MemberStart>,
}

impl OpenBatch {
    /// Makes `origin`'s entry the current one (`last`), adding it if the batch has none.
    fn select(&mut self, origin: &Origin<'_>) {
        if self
            .files
            .get(self.last)
            .is_some_and(|e| e.key == origin.key)
        {
            return;
        }
        self.last = match self.index.get(&origin.key) {
            Some(&i) => i,
            None => {
                self.files.push(FileEntry {
                    key: origin.key,
                    source: None,
                    path: origin.path.to_owned(),
                    fingerprint: origin.fingerprint,
                    end_offset: 0,
                    gzip: None,
                });
                self.index.insert(origin.key, self.files.len() - 1);
                self.files.len() - 1
            }
        };
    }
}

impl FileEntry {
    /// The file's checkpoint becomes `offset` (with the member start decoding resumes
    /// from, for a compressed file).
    fn set_position(&mut self, origin: &Origin<'_>, offset: u64) {
        self.end_offset = offset;
        self.fingerprint = origin.fingerprint;
        self.gzip = origin.gzip.map(|m| m.at(offset));
    }
}

struct Sealed {
    frame: Vec<u8>,
    checkpoints: Vec<Checkpoint>,
    records: u32,
}

/// What a [`Batcher`] is built from.
pub struct BatcherParts {
    /// The spool batches are committed to.
    pub spool: Arc<Spool>,
    /// Metrics to count in.
    pub metrics: Arc<Metrics>,
    /// Woken after each commit.
    pub shipper: Arc<Notify>,
    /// The agent's shutdown flag.
    pub shutdown: Shutdown,
    /// Body compression.
    pub compressor: Compressor,
    /// Agent id put in frames.
    pub agent_id: String,
    /// Host name put in batches.
    pub host: String,
    /// Seal when the raw batch reaches this many bytes.
    pub max_bytes: usize,
    /// Seal this long after the first line.
    pub timeout: Duration,
}

impl Batcher {
    /// A batcher continuing at the spool's next sequence number.
    pub fn new(p: BatcherParts) -> Result<Batcher, SpoolError> {
        let seq = p.spool.next_seq()?;
        Ok(Batcher {
            spool: p.spool,
            metrics: p.metrics,
            shipper: p.shipper,
            shutdown: p.shutdown,
            compressor: p.compressor,
            agent_id: p.agent_id,
            host: p.host,
            max_bytes: p.max_bytes,
            timeout: p.timeout,
            seq,
            open: None,
            pending: None,
            spare_body: Vec::new(),
            last_error_log: None,
        })
    }

    /// Takes new settings for the batches sealed from now on (the open batch keeps its
    /// host and is sealed by the new size and age).
    pub fn reconfigure(
        &mut self,
        compressor: Compressor,
        host: String,
        max_bytes: usize,
        timeout: Duration,
    ) {
        self.compressor = compressor;
        self.host = host;
        self.max_bytes = max_bytes;
        self.timeout = timeout;
    }

    /// Adds an event of `origin`; its `end_offset` becomes the file's checkpoint when the
    /// batch is committed.
    pub fn push(&mut self, origin: &Origin<'_>, event: Entry<'_>, observed_ms: u64) {
        let open = self.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::with_buffer(
                std::mem::take(&mut self.spare_body),
                &self.host,
                observed_ms,
                self.max_bytes + 4096,
            ),
            started: Instant::now(),
            files: Vec::new(),
            index: HashMap::new(),
            last: 0,
        });
        open.select(origin);
        let entry = &mut open.files[open.last];
        let source = match entry.source {
            Some(s) => s,
            None => {
                let attrs: Vec<(&str, &str)> =
                    origin.attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let s = open
                    .builder
                    .add_source(&origin.path.to_string_lossy(), &attrs);
                entry.source = Some(s);
                s
            }
        };
        entry.set_position(origin, event.end_offset);
        open.builder
            .push(source, observed_ms, event.flags, event.bytes);
        self.metrics.lines_read.inc();
        if event.flags & FLAG_TRUNCATED != 0 {
            self.metrics.lines_truncated.inc();
        }
    }

    /// Puts `offset` as the checkpoint of `origin` into the open batch without a line of
    /// it (a file whose start is known to be read already: a compressed copy of a file
    /// read, or a file skipped to its end), so the position becomes durable with the
    /// lines before it. False when no batch is open: then nothing read waits for the
    /// spool, and the caller stores the position itself.
    pub fn note_position(&mut self, origin: &Origin<'_>, offset: u64) -> bool {
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        open.select(origin);
        let entry = &mut open.files[open.last];
        if offset >= entry.end_offset {
            entry.set_position(origin, offset);
        }
        true
    }

    /// True when the open batch reached its size.
    pub fn is_full(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.builder.raw_len() >= self.max_bytes)
    }

    /// True when the open batch reached its age.
    pub fn is_due(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.started.elapsed() >= self.timeout)
    }

    /// True when a batch is open.
    pub fn has_open(&self) -> bool {
        self.open.is_some()
    }

    /// True when a sealed batch waits for the spool.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// True when the open batch holds lines of `key` (its checkpoint is yet to come).
    pub fn holds(&self, key: FileKey) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.index.contains_key(&key))
    }

    /// Time until the open batch is due.
    pub fn time_left(&self) -> Option<Duration> {
        self.open
            .as_ref()
            .map(|o| self.timeout.saturating_sub(o.started.elapsed()))
    }

    /// Seals the open batch and commits it, waiting up to `wait` for room.
    pub fn seal(&mut self, wait: Duration) -> Committed {
        if self.pending.is_none() {
            if let Some(open) = self.open.take() {
                let records = open.builder.record_count();
                let sealed = open.builder.seal_with_body(
                    &self.agent_id,
                    STREAM,
                    self.seq,
                    &mut self.compressor,
                );
                let frame = match sealed {
                    Ok((frame, body)) => {
                        // A body grown far past the batch size by one long line is
                        // not kept.
                        if body.capacity() <= 2 * (self.max_bytes + 4096) {
                            self.spare_body = body;
                        }
                        frame
                    }
                    Err(e) => {
                        // Only reachable with an invalid agent id, which config
                        // validation refuses; the lines are read again after a restart.
                        tracing::error!(error = %e, "cannot encode a batch");
                        return Committed::Abandoned;
                    }
                };
                let updated_ms = now_ms();
                let checkpoints = open
                    .files
                    .into_iter()
                    .map(|f| Checkpoint {
                        offset: f.end_offset,
                        path: f.path,
                        dev: f.key.0,
                        ino: f.key.1,
                        fingerprint: f.fingerprint,
                        updated_ms,
                        gzip: f.gzip,
                    })
                    .collect();
                self.pending = Some(Sealed {
                    frame,
                    checkpoints,
                    records,
                });
            }
        }
        self.commit_pending(wait)
    }

    /// Commits the sealed batch waiting for the spool, if any, waiting up to `wait`.
    pub fn commit_pending(&mut self, wait: Duration) -> Committed {
        let Some(sealed) = &self.pending else {
            return Committed::Done;
        };
        let deadline = Instant::now() + wait;
        let shutdown = self.shutdown.clone();
        let stop = move || shutdown.is_triggered() || Instant::now() >= deadline;
        match self
            .spool
            .commit(self.seq, &sealed.frame, &sealed.checkpoints, &stop)
        {
            Ok(report) => {
                if report.dropped_lines > 0 {
                    self.metrics
                        .spool_dropped_lines
                        .inc_by(report.dropped_lines);
                }
            }
            Err(SpoolError::Interrupted) if self.shutdown.is_triggered() => {
                self.pending = None;
                return Committed::Abandoned;
            }
            Err(SpoolError::Interrupted) => return Committed::Waiting,
            Err(e) => {
                self.metrics.spool_errors.inc();
                if self
                    .last_error_log
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_error_log = Some(Instant::now());
                    tracing::error!(error = %e, "cannot write a batch to the spool; reading is paused until it succeeds");
                }
                if self.shutdown.is_triggered() {
                    self.pending = None;
                    return Committed::Abandoned;
                }
                // Do not spin on a failing disk.
                std::thread::sleep(wait.min(Duration::from_millis(500)));
                return Committed::Waiting;
            }
        }
        if self.last_error_log.take().is_some() {
            tracing::info!("spool writes succeed again");
        }
        let sealed = self.pending.take();
        tracing::debug!(
            seq = self.seq,
            records = sealed.as_ref().map_or(0, |s| s.records),
            "batch spooled"
        );
        self.seq += 1;
        self.metrics.batches_spooled.inc();
        self.metrics.spool_bytes.set(self.spool.bytes() as i64);
        self.metrics.spool_batches.set(self.spool.len() as i64);
        self.shipper.notify_one();
        Committed::Done
    }
}
