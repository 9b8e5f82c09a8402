//! Finding and reading files, and sealing what was read into spooled batches. Runs on one
//! dedicated thread (file reads are blocking), however many files there are.
//!
//! File identity is (device, inode) for now; a file keeps its identity through a rename,
//! so rename rotation reads the old file to its end through the open descriptor, and a
//! new file at the same path starts at 0. A file whose size drops below the read offset
//! was truncated in place (copytruncate) and is read again from 0.
//!
//! Offsets: a file's checkpoint is the offset just past the last line put into a sealed
//! batch; it is written with that batch in one spool transaction. Lines read but not yet
//! sealed, and a partial last line, are not covered by a checkpoint, so a crash re-reads
//! them; nothing read is acknowledged before it is durable.
//!
//! Bounds: one read buffer (256 KiB) for all files; per file at most `max_line_bytes` of
//! a partial line; one open batch of at most `batch_max_bytes` (plus one line).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logferry_shared::codec::Compressor;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{BatchBuilder, FLAG_TRUNCATED};
use tokio::sync::Notify;

use crate::config::{AgentConfig, ReadFrom};
use crate::lines::{Line, LineSplitter};
use crate::metrics::Metrics;
use crate::spool::{Checkpoint, Spool, SpoolError};

/// The stream all of this agent's batches belong to.
pub const STREAM: &str = "default";
const READ_BUFFER: usize = 256 << 10;
/// Chunks read from one file before moving to the next, for fairness.
const CHUNKS_PER_TURN: usize = 16;
/// How long a file that no include pattern matches any more (rotated away or deleted)
/// is kept open after its last data, to catch lines written just after the rotation.
const RELEASE_AFTER_IDLE: Duration = Duration::from_secs(5);

/// (device, inode).
type FileKey = (u64, u64);

fn key_bytes(k: FileKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&k.0.to_be_bytes());
    v.extend_from_slice(&k.1.to_be_bytes());
    v
}

fn key_from_bytes(b: &[u8]) -> Option<FileKey> {
    let dev = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let ino = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
    Some((dev, ino))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Input {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    read_from: ReadFrom,
}

struct Tracked {
    path: PathBuf,
    file: File,
    /// Read position.
    offset: u64,
    splitter: LineSplitter,
    /// Matched by an include pattern at the last scan.
    matched: bool,
    last_data: Instant,
}

/// The open batch and everything needed to seal it.
struct Batcher {
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
}

struct OpenBatch {
    builder: BatchBuilder,
    started: Instant,
    /// Per file in the batch: key, source index, path, offset past its last line.
    files: Vec<(FileKey, u32, PathBuf, u64)>,
    /// Index into `files` by key; lines come in runs from one file, so the last entry
    /// used is checked first and the map is consulted only when the file changes.
    index: HashMap<FileKey, usize>,
    last: usize,
}

impl Batcher {
    fn push(
        &mut self,
        key: FileKey,
        path: &Path,
        line: Line<'_>,
        observed_ms: u64,
        end_offset: u64,
    ) {
        let open = self.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(&self.host, observed_ms, self.max_bytes + 4096),
            started: Instant::now(),
            files: Vec::new(),
            index: HashMap::new(),
            last: 0,
        });
        if open.files.get(open.last).is_none_or(|e| e.0 != key) {
            open.last = match open.index.get(&key) {
                Some(&i) => i,
                None => {
                    let source = open.builder.add_source(&path.to_string_lossy(), &[]);
                    open.files.push((key, source, path.to_owned(), 0));
                    open.index.insert(key, open.files.len() - 1);
                    open.files.len() - 1
                }
            };
        }
        let entry = &mut open.files[open.last];
        entry.3 = end_offset;
        open.builder
            .push(entry.1, observed_ms, line.flags, line.bytes);
        self.metrics.lines_read.inc();
        if line.flags & FLAG_TRUNCATED != 0 {
            self.metrics.lines_truncated.inc();
        }
    }

    fn is_full(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.builder.raw_len() >= self.max_bytes)
    }

    fn is_due(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.started.elapsed() >= self.timeout)
    }

    fn time_left(&self) -> Option<Duration> {
        self.open
            .as_ref()
            .map(|o| self.timeout.saturating_sub(o.started.elapsed()))
    }

    /// Seals the open batch into the spool. Spool write errors (e.g. a full disk) are
    /// retried every second until they succeed or shutdown; returns `Interrupted` then,
    /// leaving the lines uncheckpointed so they are read again after a restart.
    fn seal(&mut self) -> Result<(), SpoolError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let records = open.builder.record_count();
        let frame = match open
            .builder
            .seal(&self.agent_id, STREAM, self.seq, &mut self.compressor)
        {
            Ok(f) => f,
            Err(e) => {
                // Only reachable with an invalid agent id, which config validation refuses.
                tracing::error!(error = %e, "cannot encode a batch");
                return Err(SpoolError::Interrupted);
            }
        };
        let checkpoints: Vec<(Vec<u8>, Checkpoint)> = open
            .files
            .into_iter()
            .map(|(k, _, path, offset)| (key_bytes(k), Checkpoint { offset, path }))
            .collect();
        let shutdown = self.shutdown.clone();
        let stop = move || shutdown.is_triggered();
        loop {
            match self.spool.commit(self.seq, &frame, &checkpoints, &stop) {
                Ok(report) => {
                    if report.dropped_lines > 0 {
                        self.metrics
                            .spool_dropped_lines
                            .inc_by(report.dropped_lines);
                    }
                    break;
                }
                Err(SpoolError::Interrupted) => return Err(SpoolError::Interrupted),
                Err(e) => {
                    self.metrics.spool_errors.inc();
                    tracing::error!(error = %e, "cannot write a batch to the spool; reading is paused until it succeeds");
                    if wait_or_stop(&self.shutdown, Duration::from_secs(1)) {
                        return Err(SpoolError::Interrupted);
                    }
                }
            }
        }
        tracing::debug!(
            seq = self.seq,
            records,
            bytes = frame.len(),
            "batch spooled"
        );
        self.seq += 1;
        self.metrics.batches_spooled.inc();
        self.metrics.spool_bytes.set(self.spool.bytes() as i64);
        self.metrics.spool_batches.set(self.spool.len() as i64);
        self.shipper.notify_one();
        Ok(())
    }
}

/// Sleeps up to `d`, in short steps, returning true as soon as shutdown is triggered.
fn wait_or_stop(shutdown: &Shutdown, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if shutdown.is_triggered() {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The tailer: owns the tracked files and the open batch.
pub struct Tailer {
    inputs: Vec<Input>,
    files: HashMap<FileKey, Tracked>,
    checkpoints: HashMap<FileKey, Checkpoint>,
    batcher: Batcher,
    buf: Vec<u8>,
    first_scan: bool,
    scan_interval: Duration,
    poll_interval: Duration,
    max_line: usize,
    partial_timeout: Duration,
}

impl Tailer {
    /// Builds a tailer for `cfg`, resuming from the spool's checkpoints.
    pub fn new(
        cfg: &AgentConfig,
        spool: Arc<Spool>,
        metrics: Arc<Metrics>,
        shipper: Arc<Notify>,
        shutdown: Shutdown,
        agent_id: String,
    ) -> Result<Tailer, SpoolError> {
        let inputs = cfg
            .inputs
            .iter()
            .map(|i| Input {
                include: i.include.clone(),
                // Validated in AgentConfig::validate.
                exclude: i
                    .exclude
                    .iter()
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .collect(),
                read_from: i.read_from,
            })
            .collect();
        let checkpoints = spool
            .checkpoints()?
            .into_iter()
            .filter_map(|(k, cp)| key_from_bytes(&k).map(|k| (k, cp)))
            .collect();
        let compressor = Compressor::new(cfg.output.compression, cfg.compression_level())
            .map_err(|e| SpoolError::Storage(sled::Error::Io(e)))?;
        let seq = spool.next_seq()?;
        Ok(Tailer {
            inputs,
            files: HashMap::new(),
            checkpoints,
            batcher: Batcher {
                spool,
                metrics,
                shipper,
                shutdown,
                compressor,
                agent_id,
                host: cfg.host_name(),
                max_bytes: cfg.output.batch_max_bytes,
                timeout: cfg.output.batch_timeout,
                seq,
                open: None,
            },
            buf: vec![0; READ_BUFFER],
            first_scan: true,
            scan_interval: cfg.tail.scan_interval,
            poll_interval: cfg.tail.poll_interval,
            max_line: cfg.tail.max_line_bytes,
            partial_timeout: cfg.tail.partial_line_timeout,
        })
    }

    /// Runs until shutdown: scans, reads, seals. At shutdown the open batch is sealed
    /// into the spool (unless the spool is full and blocking, in which case its lines are
    /// left to be re-read after a restart).
    pub fn run(mut self) {
        let mut next_scan = Instant::now();
        loop {
            let stopping = self.batcher.shutdown.is_triggered();
            if !stopping && Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + self.scan_interval;
            }
            let read_any = !stopping && self.read_all();
            self.flush_stale_partials();
            let seal_now = self.batcher.is_due() || (stopping && self.batcher.open.is_some());
            if seal_now && self.batcher.seal().is_err() {
                break;
            }
            if stopping {
                break;
            }
            self.release_finished();
            if !read_any {
                let wait = self
                    .batcher
                    .time_left()
                    .map_or(self.poll_interval, |t| t.min(self.poll_interval));
                wait_or_stop(&self.batcher.shutdown, wait.max(Duration::from_millis(1)));
            }
        }
        if let Err(e) = self.batcher.spool.flush() {
            tracing::error!(error = %e, "final spool flush failed");
        }
        tracing::info!("tailer stopped");
    }

    /// Expands the include globs and starts tracking new files.
    fn scan(&mut self) {
        for t in self.files.values_mut() {
            t.matched = false;
        }
        for idx in 0..self.inputs.len() {
            for pattern in self.inputs[idx].include.clone() {
                let entries = match glob::glob(&pattern) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(pattern, error = %e, "bad include pattern");
                        continue;
                    }
                };
                for path in entries.flatten() {
                    if self.inputs[idx]
                        .exclude
                        .iter()
                        .any(|p| p.matches_path(&path))
                    {
                        continue;
                    }
                    self.track(&path, idx);
                }
            }
        }
        self.first_scan = false;
        self.batcher.metrics.files_open.set(self.files.len() as i64);
    }

    fn track(&mut self, path: &Path, input: usize) {
        // metadata() follows symlinks: /var/log/containers/*.log point into /var/log/pods.
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(t) = self.files.get_mut(&key) {
            t.matched = true;
            if t.path != path {
                tracing::debug!(from = %t.path.display(), to = %path.display(), "file renamed");
                t.path = path.to_owned();
            }
            return;
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open file");
                return;
            }
        };
        let size = meta.len();
        let offset = match self.checkpoints.get(&key) {
            Some(cp) if cp.offset <= size => cp.offset,
            Some(_) => 0,
            None if self.first_scan && self.inputs[input].read_from == ReadFrom::End => size,
            None => 0,
        };
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot seek");
            return;
        }
        tracing::info!(path = %path.display(), offset, "tailing file");
        self.files.insert(
            key,
            Tracked {
                path: path.to_owned(),
                file,
                offset,
                splitter: LineSplitter::new(self.max_line),
                matched: true,
                last_data: Instant::now(),
            },
        );
    }

    /// Reads new data from every file; true if anything was read.
    fn read_all(&mut self) -> bool {
        let mut read_any = false;
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        for key in keys {
            if self.batcher.shutdown.is_triggered() {
                break;
            }
            read_any |= self.read_file(key);
        }
        read_any
    }

    fn read_file(&mut self, key: FileKey) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        if let Ok(meta) = t.file.metadata() {
            if meta.len() < t.offset {
                tracing::info!(path = %t.path.display(), size = meta.len(), offset = t.offset, "file truncated; reading from the start");
                self.batcher.metrics.files_truncated.inc();
                t.offset = 0;
                t.splitter.reset();
                if t.file.seek(SeekFrom::Start(0)).is_err() {
                    return false;
                }
            }
        }
        let mut read_any = false;
        for _ in 0..CHUNKS_PER_TURN {
            let n = match t.file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    break;
                }
            };
            read_any = true;
            t.last_data = Instant::now();
            self.batcher.metrics.bytes_read.inc_by(n as u64);
            let base = t.offset;
            t.offset += n as u64;
            let observed = now_ms();
            let data = &self.buf[..n];
            let mut pos = 0;
            while let Some(line) = t.splitter.next_line(data, &mut pos) {
                self.batcher
                    .push(key, &t.path, line, observed, base + pos as u64);
                if self.batcher.is_full() && self.batcher.seal().is_err() {
                    return read_any;
                }
            }
        }
        read_any
    }

    /// Sends partial last lines that have waited longer than the timeout.
    fn flush_stale_partials(&mut self) {
        for (key, t) in self.files.iter_mut() {
            if t.splitter.pending() == 0 || t.last_data.elapsed() < self.partial_timeout {
                continue;
            }
            let end = t.offset;
            if let Some(line) = t.splitter.flush_partial() {
                self.batcher.push(*key, &t.path, line, now_ms(), end);
            }
        }
    }

    /// Closes files no pattern matches any more (rotated away, deleted) once they have
    /// been idle at their end for a while.
    fn release_finished(&mut self) {
        let done: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, t)| {
                !t.matched
                    && t.splitter.pending() == 0
                    && t.last_data.elapsed() >= RELEASE_AFTER_IDLE
            })
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            if let Some(t) = self.files.remove(&key) {
                tracing::info!(path = %t.path.display(), "released file");
            }
        }
        self.batcher.metrics.files_open.set(self.files.len() as i64);
    }
}
