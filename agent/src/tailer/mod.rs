//! Reading files and putting their lines into batches. Runs on one dedicated thread
//! (file reads are blocking), however many files there are.
//!
//! Files: [`discover`](crate::discover) finds paths; a file is known by device and inode
//! while the tailer tracks it, and matched with its stored checkpoint by fingerprint
//! ([`crate::fingerprint`] documents the scheme). A tracked file keeps its descriptor
//! through renames, so rename rotation reads the old file to its end; the file that
//! appears at the path is a new file, read from its start. A file whose size drops below
//! the read position was truncated in place (copytruncate) and is read again from 0.
//!
//! Letting go: a file no include glob reaches any more (renamed away) or deleted is read
//! to its end and released after `tail.rotate_wait` without new data. A deleted file
//! that cannot be read to its end (the spool is full because the aggregator is down) is
//! held at most `tail.deleted_file_hold`; the bytes left unread are then counted and
//! logged, so deleted files do not pin disk space forever.
//!
//! Bounds: one read buffer (256 KiB) for all files; per file at most `max_line_bytes` of
//! a partial line; at most `tail.max_open_files` descriptors: a file read to its end and
//! unchanged for `tail.close_idle_after` is closed (its position kept) and reopened when
//! a scan sees it grow; files over the limit wait for a descriptor, the idle ones closed
//! first. A file reopened is checked against its fingerprint, so a path now holding
//! another file is never read from the old position.
//!
//! Offsets: a file's checkpoint is the offset just past the last line put into a sealed
//! batch; it is written with that batch in one spool transaction. Lines read but not yet
//! sealed, and a partial last line, are not covered by a checkpoint, so a crash re-reads
//! them; nothing read is acknowledged before it is durable.
//!
//! Layout: this file holds the tailer's state and its rounds (scan, read, seal);
//! `track.rs` meets new files, `read.rs` reads them, `release.rs` lets them go and
//! manages descriptors.

mod copies;
mod read;
mod release;
mod source;
mod track;

use source::{Kind, Source};
use track::Tracking;

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_shared::codec::Compressor;
use logferry_shared::runtime::Shutdown;
use tokio::sync::Notify;

use crate::batcher::{now_ms, Batcher, BatcherParts, Committed, FileKey, Origin};
use crate::config::{AgentConfig, InputCompression};
use crate::container::Entry;
use crate::decode::{Decode, DecodePlan};
use crate::discover::{Discovery, Wake};
use crate::fingerprint::Fingerprint;
use crate::gzip::MemberLog;
use crate::k8s::K8sMetadata;
use crate::lines::LineSplitter;
use crate::metrics::Metrics;
use crate::spool::{file_key, Checkpoint, Spool, SpoolError};

pub use crate::batcher::STREAM;

const READ_BUFFER: usize = 256 << 10;
/// Chunks read from one file before moving to the next, for fairness.
const CHUNKS_PER_TURN: usize = 16;
/// How long a commit waits for room in a full spool before the tailer looks after its
/// files again (and then retries).
const COMMIT_WAIT: Duration = Duration::from_millis(200);
/// Checkpoints of files not seen for this long are removed (at start, and hourly while
/// positions of deleted files are kept).
const CHECKPOINT_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often expired checkpoints are looked for while running.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Compressed files decoded at once at most: each holds an inflate state and an input
/// buffer (about 100 KiB); further compressed files wait, like files over the descriptor
/// limit. One thread reads every file, so more would not read faster.
const MAX_GZIP_READERS: usize = 4;

/// Positions of deleted files displaced by a new file on the same inode, kept at most.
const MAX_DISPLACED: usize = 4096;

/// Descriptors kept for everything but tailed files: the spool, sockets, inotify, the
/// directories a scan reads.
const RESERVED_DESCRIPTORS: u64 = 64;

/// `configured`, lowered to what the process's open-file limit leaves after
/// [`RESERVED_DESCRIPTORS`] (the binary raises its soft limit to the hard one at start).
fn open_file_budget(configured: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return configured;
    }
    let room = lim.rlim_cur.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let budget = configured.min(usize::try_from(room).unwrap_or(usize::MAX));
    if budget < configured {
        tracing::warn!(
            configured,
            budget,
            limit = lim.rlim_cur,
            "tail.max_open_files is above what the open-file limit allows; using less"
        );
    }
    budget
}

/// True when some input may read compressed files.
fn reads_gzip(cfg: &AgentConfig) -> bool {
    cfg.inputs
        .iter()
        .any(|i| i.compression != InputCompression::None)
}

fn decode_plans(cfg: &AgentConfig) -> Vec<DecodePlan> {
    cfg.inputs
        .iter()
        .map(|i| DecodePlan::new(i, cfg.tail.max_line_bytes, cfg.tail.partial_line_timeout))
        .collect()
}

/// A config waiting to be applied by the tailer thread at its next round.
#[derive(Debug, Default)]
pub struct ReloadSlot(std::sync::Mutex<Option<AgentConfig>>);

impl ReloadSlot {
    /// Hands `cfg` to the tailer (replacing one not yet applied).
    pub fn put(&self, cfg: AgentConfig) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cfg);
    }

    fn take(&self) -> Option<AgentConfig> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Timing and limits of the tailer, from `[tail]`.
#[derive(Debug, Clone)]
struct Limits {
    scan_interval: Duration,
    poll_interval: Duration,
    max_line: usize,
    partial_timeout: Duration,
    max_open_files: usize,
    close_idle_after: Duration,
    deleted_file_hold: Duration,
    rotate_wait: Duration,
    gzip_incomplete_timeout: Duration,
}

impl Limits {
    fn of(cfg: &AgentConfig) -> Limits {
        let t = &cfg.tail;
        Limits {
            scan_interval: t.scan_interval,
            poll_interval: t.poll_interval,
            max_line: t.max_line_bytes,
            partial_timeout: t.partial_line_timeout,
            max_open_files: open_file_budget(t.max_open_files),
            close_idle_after: t.close_idle_after,
            deleted_file_hold: t.deleted_file_hold,
            rotate_wait: t.rotate_wait,
            gzip_incomplete_timeout: t.gzip_incomplete_timeout,
        }
    }
}

struct Tracked {
    path: PathBuf,
    input: usize,
    /// `None` while closed (idle, waiting for a descriptor, or failed).
    reader: Option<Source>,
    /// Read position, as a content offset (decompressed bytes for a compressed file).
    offset: u64,
    /// Bytes of the file read (compressed bytes for a compressed file; `offset` for a
    /// plain one).
    read_pos: u64,
    /// Size at the last stat.
    size: u64,
    /// Modification time (ns) at the last stat of the open file.
    mtime_ns: i64,
    /// Of the file's first bytes as they are on disk (compressed, for a compressed file).
    fingerprint: Fingerprint,
    /// How the file is read.
    kind: Kind,
    /// For a compressed file: its member starts and reports.
    gzip: Option<GzipState>,
    /// A compressed file that does not decode: not read any more.
    failed: bool,
    /// The position is not in any checkpoint yet (a compressed copy started past the
    /// plain file's lines, or a compressed file skipped to its end): stored once known.
    unsaved: bool,
    splitter: LineSplitter,
    /// Container decoding and multi-line joining.
    decode: Decode,
    /// End offset of the last event put into a batch: where reading resumes when a
    /// sealed batch must wait and what is held is dropped to be read again.
    last_event_end: u64,
    /// A path of an include glob pointed at this file at the last scan.
    matched: bool,
    /// When data was last read (or the file was first seen).
    last_data: Instant,
    /// When the file was seen deleted (link count 0).
    deleted_since: Option<Instant>,
    attrs: Vec<(&'static str, String)>,
}

/// What the tailer keeps for a compressed file.
struct GzipState {
    /// Member starts a resume may need.
    members: MemberLog,
    /// Reported as ending inside a member (cut short, or still being written).
    reported_incomplete: bool,
}

/// The tailer: owns the tracked files and the batcher.
pub struct Tailer {
    discovery: Discovery,
    files: HashMap<FileKey, Tracked>,
    /// Stored checkpoints not yet matched with a tracked file.
    checkpoints: HashMap<FileKey, Checkpoint>,
    /// Checkpoints to delete once the open batch (which may hold their file's last lines)
    /// is committed.
    forget_after_seal: Vec<FileKey>,
    /// Files skipped as copies of a file being read (kept while they exist).
    duplicates: HashSet<FileKey>,
    batcher: Batcher,
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    wake: Arc<Wake>,
    buf: Vec<u8>,
    next_scan: Instant,
    reload: Arc<ReloadSlot>,
    /// Per input: how its files' lines are decoded.
    plans: Vec<DecodePlan>,
    limits: Limits,
    open_files: usize,
    /// Compressed files open (at most [`MAX_GZIP_READERS`]).
    gzip_open: usize,
    /// Some input reads compressed files: positions of deleted plain files are kept (until
    /// they expire), so that a compressed copy met later is known as read.
    keep_deleted_positions: bool,
    /// Positions of deleted plain files whose device and inode a new file took, kept (in
    /// memory, at most [`MAX_DISPLACED`]) for recognising a compressed copy of them.
    displaced: VecDeque<Checkpoint>,
    /// Files the current scan found, and where (a stored position of one of them may
    /// belong to a file about to be tracked, not to a file gone).
    present: HashMap<FileKey, PathBuf>,
    /// When stored positions are next checked for expiry.
    next_prune: Instant,
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
        let wake = Arc::new(Wake::default());
        let mut checkpoints = HashMap::new();
        let oldest = now_ms().saturating_sub(CHECKPOINT_TTL.as_millis() as u64);
        for cp in spool.checkpoints()? {
            // Version-1 checkpoints have no time; they are kept.
            if cp.updated_ms != 0 && cp.updated_ms < oldest {
                spool.forget(&cp.key())?;
                continue;
            }
            checkpoints.insert((cp.dev, cp.ino), cp);
        }
        let compressor = Compressor::new(cfg.output.compression, cfg.compression_level())
            .map_err(|e| SpoolError::Storage(sled::Error::Io(e)))?;
        let batcher = Batcher::new(BatcherParts {
            spool: spool.clone(),
            metrics: metrics.clone(),
            shipper,
            shutdown: shutdown.clone(),
            compressor,
            agent_id,
            host: cfg.host_name(),
            max_bytes: cfg.output.batch_max_bytes,
            timeout: cfg.output.batch_timeout,
        })?;
        Ok(Tailer {
            discovery: Discovery::new(cfg, wake.clone()),
            files: HashMap::new(),
            checkpoints,
            forget_after_seal: Vec::new(),
            duplicates: HashSet::new(),
            batcher,
            spool,
            metrics,
            shutdown,
            wake,
            buf: vec![0; READ_BUFFER],
            next_scan: Instant::now(),
            reload: Arc::new(ReloadSlot::default()),
            plans: decode_plans(cfg),
            limits: Limits::of(cfg),
            open_files: 0,
            gzip_open: 0,
            keep_deleted_positions: reads_gzip(cfg),
            displaced: VecDeque::new(),
            present: HashMap::new(),
            next_prune: Instant::now() + PRUNE_INTERVAL,
        })
    }

    /// Where a reloaded config is handed to the running tailer.
    pub fn reload_slot(&self) -> Arc<ReloadSlot> {
        self.reload.clone()
    }

    /// Applies a reloaded config: inputs (files no input reaches any more are read to
    /// their end and let go, as after a rotation), `[tail]` settings, and the batch
    /// settings of `[output]` (from the next batch on). Nothing read is lost.
    fn reconfigure(&mut self, cfg: &AgentConfig) {
        let old = std::mem::replace(&mut self.discovery, Discovery::new(cfg, self.wake.clone()));
        for input in &mut self.discovery.inputs {
            // An input that was there before keeps its start position rule spent.
            if old
                .inputs
                .iter()
                .any(|o| o.include == input.include && !o.fresh)
            {
                input.fresh = false;
            }
        }
        self.limits = Limits::of(cfg);
        self.keep_deleted_positions = reads_gzip(cfg);
        // Files keep the decoder they started with; new files get the new plan.
        self.plans = decode_plans(cfg);
        match Compressor::new(cfg.output.compression, cfg.compression_level()) {
            Ok(c) => self.batcher.reconfigure(
                c,
                cfg.host_name(),
                cfg.output.batch_max_bytes,
                cfg.output.batch_timeout,
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the new compression; keeping the old")
            }
        }
        self.next_scan = Instant::now();
        tracing::info!(inputs = self.discovery.inputs.len(), "tailer reconfigured");
    }

    /// Runs until shutdown: scans, reads, seals. At shutdown the open batch is sealed
    /// into the spool (unless the spool is full and blocking, in which case its lines are
    /// left to be read again after a restart).
    pub fn run(mut self) {
        loop {
            if self.shutdown.is_triggered() {
                self.batcher.seal(Duration::ZERO);
                break;
            }
            let read_any = self.tick();
            if !read_any {
                let wait = self
                    .batcher
                    .time_left()
                    .map_or(self.limits.poll_interval, |t| {
                        t.min(self.limits.poll_interval)
                    })
                    .max(Duration::from_millis(1));
                if self.wake.wait(wait) {
                    self.next_scan = Instant::now();
                }
            }
        }
        if let Err(e) = self.spool.flush() {
            tracing::error!(error = %e, "final spool flush failed");
        }
        tracing::info!("tailer stopped");
    }

    /// One round: commit a waiting batch, scan when due, read, seal when due, let go of
    /// finished files. Returns true if anything was read.
    pub fn tick(&mut self) -> bool {
        if let Some(cfg) = self.reload.take() {
            self.reconfigure(&cfg);
        }
        if self.batcher.has_pending() && self.batcher.commit_pending(COMMIT_WAIT) != Committed::Done
        {
            // The spool is full or failing: read nothing; keep deleted files bounded.
            self.housekeeping();
            return false;
        }
        if Instant::now() >= self.next_scan {
            self.scan();
            self.next_scan = Instant::now() + self.limits.scan_interval;
        }
        let read_any = self.read_all();
        self.flush_stale_partials();
        if self.batcher.is_due() {
            self.seal();
        }
        self.housekeeping();
        read_any
    }

    /// Seals the open batch now (for tests and shutdown) and returns where it went.
    pub fn seal(&mut self) -> Committed {
        let c = self.batcher.seal(COMMIT_WAIT);
        if c == Committed::Done {
            for key in std::mem::take(&mut self.forget_after_seal) {
                if !self.files.contains_key(&key) {
                    let _ = self.spool.forget(&file_key(key.0, key.1));
                }
            }
        }
        c
    }

    /// Removes stored positions older than [`CHECKPOINT_TTL`] that no file claimed.
    fn prune_checkpoints(&mut self) {
        self.next_prune = Instant::now() + PRUNE_INTERVAL;
        let oldest = now_ms().saturating_sub(CHECKPOINT_TTL.as_millis() as u64);
        let spool = &self.spool;
        self.checkpoints.retain(|_, cp| {
            let keep = cp.updated_ms == 0 || cp.updated_ms >= oldest;
            if !keep {
                let _ = spool.forget(&cp.key());
            }
            keep
        });
        self.displaced.retain(|cp| cp.updated_ms >= oldest);
    }

    /// Expands the include globs; tracks new files, notices renamed and grown ones.
    fn scan(&mut self) {
        let (found, complete) = self.discovery.scan();
        if complete {
            for t in self.files.values_mut() {
                t.matched = false;
            }
        } else {
            tracing::warn!(
                "a scan could not read every directory; no file is let go on its account"
            );
        }
        let mut lag: Vec<u64> = vec![0; self.discovery.inputs.len()];
        let mut duplicates = HashSet::new();
        self.present = found
            .iter()
            .map(|f| ((f.meta.dev(), f.meta.ino()), f.path.clone()))
            .collect();
        if self.keep_deleted_positions && self.next_prune <= Instant::now() {
            self.prune_checkpoints();
        }
        for f in found {
            let key = (f.meta.dev(), f.meta.ino());
            if self.duplicates.contains(&key) {
                duplicates.insert(key);
                continue;
            }
            if let Some(t) = self.files.get_mut(&key) {
                t.matched = true;
                t.input = f.input;
                t.size = f.meta.len();
                if t.path != f.path {
                    tracing::debug!(from = %t.path.display(), to = %f.path.display(), "file renamed");
                    t.path = f.path;
                }
                continue;
            }
            if self.track(f) == Tracking::Duplicate {
                duplicates.insert(key);
            }
        }
        self.duplicates = duplicates;
        for t in self.files.values() {
            if let Some(l) = lag.get_mut(t.input) {
                *l += t.size.saturating_sub(t.read_pos);
            }
        }
        for (i, input) in self.discovery.inputs.iter().enumerate() {
            self.metrics
                .input_lag_bytes
                .get_or_create(&vec![("input", input.name.clone())])
                .set(lag[i] as i64);
        }
        for input in &mut self.discovery.inputs {
            input.fresh = false;
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        self.metrics.files_open.set(self.open_files as i64);
        self.metrics.files_watched.set(self.files.len() as i64);
    }

    /// Files tracked now (for tests).
    pub fn tracked_files(&self) -> usize {
        self.files.len()
    }

    /// Descriptors open now (for tests).
    pub fn open_files(&self) -> usize {
        self.open_files
    }
}

impl Tracked {
    /// Closed, still at a matched path, readable, and grown or shrunk since.
    fn wants_open(&self) -> bool {
        self.reader.is_none() && self.matched && !self.failed && self.size != self.read_pos
    }

    /// Everything on disk is read and put into batches (or the file failed).
    fn at_end(&self) -> bool {
        self.failed
            || (self.splitter.pending() == 0
                && !self.decode.is_holding()
                && self.read_pos >= self.size
                && !self.reader.as_ref().is_some_and(Source::is_skipping))
    }

    /// Puts what was read but is still held (a partial last line, what the decoders
    /// wait on) into `batcher` as it is: the file is being let go or stops here.
    fn flush_held(&mut self, key: FileKey, batcher: &mut Batcher) {
        let origin = Origin {
            key,
            path: &self.path,
            fingerprint: self.fingerprint,
            attrs: &self.attrs,
            gzip: self.gzip.as_ref().map(|g| &g.members),
        };
        let last_end = &mut self.last_event_end;
        let observed = now_ms();
        let mut out = |e: Entry<'_>| {
            *last_end = e.end_offset;
            batcher.push(&origin, e, observed);
        };
        if let Some(line) = self.splitter.flush_partial() {
            self.decode
                .push(line, self.offset, Instant::now(), &mut out);
        }
        self.decode.take_pending(&mut out);
    }

    /// The file's position after its last line put into a batch, as stored.
    fn checkpoint(&self, key: FileKey) -> Checkpoint {
        Checkpoint {
            offset: self.last_event_end,
            path: self.path.clone(),
            dev: key.0,
            ino: key.1,
            fingerprint: self.fingerprint,
            updated_ms: now_ms(),
            gzip: self
                .gzip
                .as_ref()
                .map(|g| g.members.at(self.last_event_end)),
        }
    }
}

/// Source attributes for a path: Kubernetes metadata where the path has the layout of
/// the kubelet's log directories (resolved through a symlink too).
fn source_attrs(path: &Path) -> Vec<(&'static str, String)> {
    K8sMetadata::from_path(path)
        .or_else(|| {
            std::fs::canonicalize(path)
                .ok()
                .and_then(|p| K8sMetadata::from_path(&p))
        })
        .map(|m| m.attrs())
        .unwrap_or_default()
}
