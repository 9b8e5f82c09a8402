//! [`EventStore`]: appends, sealing, retention and queries over the open block and the
//! segment files. The module docs of [`super`] give the invariants.

use std::cmp::Reverse;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::{info, warn};

use super::block::{NewEvent, OpenBlock, Sealer};
use super::config::{SearchConfig, StoreSettings};
use super::query::{Page, Query, QueryError};
use super::scan::{scan_blocks, scan_memory, Filter, ScanCounts, Scratch, StoredBlock, TopK};
use super::segment::Segments;
use crate::rules::{Clock, SystemClock};

/// Most sealed blocks indexed; beyond it the oldest segments go, as for size. It bounds
/// the summaries' memory (about 380 bytes a block, so 12 MiB), also when many small blocks
/// are sealed by [`EventStore::flush`]. Full blocks of ~300-byte lines reach it at about
/// 1.3 GiB on disk (27 million events), so with the default `max_bytes` (1 GiB) size
/// binds first; lines that compress better than ~8x can reach it before `max_bytes`.
pub const MAX_BLOCKS: usize = 32_768;
/// Most threads one query reads sealed blocks with.
pub const MAX_SCAN_THREADS: usize = 4;
/// Events [`EventStore::append`] copies in under one hold of the write lock.
const EVENTS_PER_LOCK: usize = 256;

/// What the store holds and has done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Events held (sealed and open, including those not yet removed past `max_age`).
    pub events: u64,
    /// Sealed blocks indexed.
    pub blocks: usize,
    /// Segment files.
    pub segments: usize,
    /// Bytes of segment files.
    pub bytes: u64,
    /// Bytes of the sealed blocks' text filters (part of `bytes`).
    pub text_filter_bytes: u64,
    /// Events appended since start.
    pub appended_total: u64,
    /// Events not stored because a line or name was too long.
    pub skipped_total: u64,
    /// Events lost because their block could not be written.
    pub lost_total: u64,
    /// Blocks found damaged by queries.
    pub damaged_blocks_total: u64,
    /// Blocks that text queries skipped by their text filter, without reading them.
    pub text_skipped_blocks_total: u64,
    /// Segment files deleted by retention.
    pub removed_segments_total: u64,
}

#[derive(Debug, Default)]
struct Counters {
    appended: AtomicU64,
    skipped: AtomicU64,
    lost: AtomicU64,
    scans: ScanCounts,
    removed_segments: AtomicU64,
}

/// What queries read: the index of sealed blocks and the blocks still in memory.
#[derive(Debug)]
struct State {
    /// Sealed blocks on disk, in append order. Shared with running queries, which hold a
    /// snapshot; changes copy the list when a query still holds the old one.
    blocks: Arc<Vec<Arc<StoredBlock>>>,
    /// The block being filled.
    open: OpenBlock,
    /// A block taken from `open` and being written, visible to queries until it is indexed.
    sealing: Option<Arc<OpenBlock>>,
}

/// What only the appending side touches.
#[derive(Debug)]
struct Writer {
    segments: Segments,
    sealer: Sealer,
    /// The last block write failed (warnings are logged when this changes).
    failing: bool,
    /// The last sealed block, emptied, to be the next open block (its buffers are sized
    /// and paged in already).
    spare: Option<OpenBlock>,
}

/// The bounded store of recent events behind `GET /api/logs`. Shared as `Arc<EventStore>`:
/// the pipeline appends from one thread, queries run on any number of others.
#[derive(Debug)]
pub struct EventStore {
    dir: PathBuf,
    settings: StoreSettings,
    clock: Arc<dyn Clock>,
    state: RwLock<State>,
    writer: Mutex<Writer>,
    counters: Counters,
    /// Threads a long query reads blocks with: the CPUs, at most [`MAX_SCAN_THREADS`].
    scan_threads: usize,
}

impl EventStore {
    /// Opens the store in `<data_dir>/search` as configured, or `None` when disabled. An
    /// error means the directory cannot be used: the caller should log it and run without
    /// search.
    pub fn from_config(config: &SearchConfig, data_dir: &Path) -> io::Result<Option<EventStore>> {
        if !config.enabled {
            return Ok(None);
        }
        EventStore::open(
            &SearchConfig::dir(data_dir),
            config.settings(),
            Arc::new(SystemClock),
        )
        .map(Some)
    }

    /// Opens (creating) a store in `dir`, recovering what earlier runs wrote (damaged
    /// segment tails are cut off with a warning) and applying retention. Errors only when
    /// `dir` cannot be created or listed, or zstd cannot allocate its context.
    pub fn open(
        dir: &Path,
        settings: StoreSettings,
        clock: Arc<dyn Clock>,
    ) -> io::Result<EventStore> {
        let (segments, found) = Segments::open(dir)?;
        let next_seq = found
            .iter()
            .map(|(s, _)| s.first_seq + u64::from(s.count))
            .max()
            .unwrap_or(0);
        let blocks: Vec<Arc<StoredBlock>> = found
            .into_iter()
            .map(|(summary, location)| {
                Arc::new(StoredBlock {
                    summary,
                    location,
                    damaged: Default::default(),
                })
            })
            .collect();
        let sealer = Sealer::new(settings.compression_level)?;
        let store = EventStore {
            dir: dir.to_owned(),
            settings,
            clock,
            state: RwLock::new(State {
                blocks: Arc::new(blocks),
                open: OpenBlock::new(next_seq),
                sealing: None,
            }),
            writer: Mutex::new(Writer {
                segments,
                sealer,
                failing: false,
                spare: None,
            }),
            counters: Counters::default(),
            scan_threads: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(MAX_SCAN_THREADS),
        };
        store.expire();
        let stats = store.stats();
        info!(
            dir = %dir.display(),
            events = stats.events,
            segments = stats.segments,
            bytes = stats.bytes,
            "search store opened"
        );
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a batch of events, in order. Events are copied into the open block under
    /// the store's write lock, [`EVENTS_PER_LOCK`] at a time (the iterator mostly runs
    /// under it too, so it should only hand out prepared events); each time the block fills up it is sealed — compressed and
    /// written to the newest segment — on this thread, while queries keep reading it from
    /// memory. Never fails: a block that cannot be written is dropped with a warning
    /// (counted in [`StoreStats::lost_total`]), as the sinks hold the record.
    pub fn append<'a>(&self, events: impl IntoIterator<Item = NewEvent<'a>>) {
        let mut w = self.lock_writer();
        let mut events = events.into_iter().peekable();
        let (max_events, max_bytes) = (self.settings.block_events(), self.settings.block_bytes);
        loop {
            let (mut appended, mut skipped, mut full) = (0, 0, false);
            {
                // A few events at a time: the indexer runs on idle CPU time and may be
                // preempted for long, and queries wait for this lock meanwhile.
                let mut st = self.write_state();
                for e in events.by_ref().take(EVENTS_PER_LOCK) {
                    if st.open.push(&e) {
                        appended += 1;
                    } else {
                        skipped += 1;
                    }
                    if st.open.is_full(max_events, max_bytes) {
                        full = true;
                        break;
                    }
                }
            }
            self.counters
                .appended
                .fetch_add(appended, Ordering::Relaxed);
            self.counters.skipped.fetch_add(skipped, Ordering::Relaxed);
            if full {
                self.seal(&mut w);
            } else if events.peek().is_none() {
                return;
            }
        }
    }

    /// Seals the open block now, however few events it holds, so they survive a crash.
    /// Called at shutdown (and by `Drop`); calling it often makes many small blocks.
    pub fn flush(&self) {
        let mut w = self.lock_writer();
        self.seal(&mut w);
    }

    /// Applies retention now: deletes the oldest segments while the store is over
    /// `max_bytes` or [`MAX_BLOCKS`], and those whose newest block is older than
    /// `max_age`. Sealing does this too; calling it now and then (say every minute) frees
    /// expired segments while no events arrive. Queries never return expired blocks.
    pub fn expire(&self) {
        let mut w = self.lock_writer();
        self.enforce_retention(&mut w, self.clock.now_ms());
    }

    fn max_age_ms(&self) -> u64 {
        u64::try_from(self.settings.max_age.as_millis()).unwrap_or(u64::MAX)
    }

    fn seal(&self, w: &mut Writer) {
        let now = self.clock.now_ms();
        let block = {
            let mut st = self.write_state();
            if st.open.is_empty() {
                return;
            }
            let seq = st.open.next_seq();
            let next = match w.spare.take() {
                Some(mut b) => {
                    b.reset(seq);
                    b
                }
                None => OpenBlock::new(seq),
            };
            let block = Arc::new(std::mem::replace(&mut st.open, next));
            st.sealing = Some(block.clone());
            block
        };
        let segment_bytes = self.settings.segment_bytes();
        let written = w.sealer.seal(&block, now).and_then(|sealed| {
            let location = w.segments.append(&sealed, segment_bytes)?;
            Ok((sealed.summary, location))
        });
        let failed = {
            let mut st = self.write_state();
            st.sealing = None;
            match written {
                Ok((summary, location)) => {
                    Arc::make_mut(&mut st.blocks).push(Arc::new(StoredBlock {
                        summary,
                        location,
                        damaged: Default::default(),
                    }));
                    None
                }
                Err(e) => Some(e),
            }
        };
        let lost = block.len();
        // Queries only look at the sealing block under the lock: it is ours again.
        w.spare = Arc::try_unwrap(block).ok();
        match failed {
            Some(e) => {
                self.counters.lost.fetch_add(lost as u64, Ordering::Relaxed);
                if !w.failing {
                    warn!(dir = %self.dir.display(), error = %e, events = lost, "cannot write search block; dropping it (search misses these events until writes succeed)");
                }
                w.failing = true;
            }
            None if w.failing => {
                info!(dir = %self.dir.display(), "search blocks are written again");
                w.failing = false;
            }
            None => {}
        }
        self.enforce_retention(w, now);
    }

    fn enforce_retention(&self, w: &mut Writer, now: u64) {
        let max_age = self.max_age_ms();
        loop {
            let Some(oldest) = w.segments.oldest() else {
                return;
            };
            let over_size = w.segments.bytes() > self.settings.max_bytes;
            let expired = oldest.newest_sealed_ms.saturating_add(max_age) < now;
            let over_blocks = self.read_state().blocks.len() > MAX_BLOCKS;
            if !(over_size || expired || over_blocks) {
                return;
            }
            let id = oldest.file.id;
            {
                let mut st = self.write_state();
                let blocks = Arc::make_mut(&mut st.blocks);
                let gone = blocks
                    .iter()
                    .take_while(|b| b.location.segment.id == id)
                    .count();
                blocks.drain(..gone);
            }
            w.segments.remove_oldest();
            self.counters
                .removed_segments
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs a query; see [`Query`] for what each filter matches and the module docs of
    /// `query.rs` for the order and the cursor. Reads the open block under the read lock (it is bounded,
    /// so appends wait at most for one block's scan), then the sealed blocks from a
    /// snapshot of the index without any lock. A block found damaged is skipped with a
    /// warning. Errors only for an invalid cursor.
    pub fn search(&self, q: &Query) -> Result<Page, QueryError> {
        let filter = Filter::new(q)?;
        let mut top = TopK::new(filter.limit + 1);
        let mut scratch = Scratch::default();
        let blocks = {
            let st = self.read_state();
            scan_memory(&filter, &st.open, &mut top, &mut scratch);
            if let Some(b) = &st.sealing {
                scan_memory(&filter, b, &mut top, &mut scratch);
            }
            st.blocks.clone()
        };
        let kept_since = self.clock.now_ms().saturating_sub(self.max_age_ms());
        let mut order: Vec<&StoredBlock> = blocks
            .iter()
            .map(|b| &**b)
            .filter(|b| b.summary.sealed_ms >= kept_since && !filter.skips_summary(&b.summary))
            .collect();
        order.sort_unstable_by_key(|b| Reverse((b.summary.max_ts, b.summary.first_seq)));
        scan_blocks(
            &filter,
            &order,
            &mut top,
            self.scan_threads,
            &self.counters.scans,
        );
        Ok(top.into_page(filter.limit))
    }

    /// What the store holds and has done.
    pub fn stats(&self) -> StoreStats {
        let (events, blocks, text_filter_bytes) = {
            let st = self.read_state();
            let sealed: u64 = st.blocks.iter().map(|b| u64::from(b.summary.count)).sum();
            let filters = st.blocks.iter().map(|b| u64::from(b.summary.filter_len));
            let in_memory = st.open.len() + st.sealing.as_ref().map_or(0, |b| b.len());
            (sealed + in_memory as u64, st.blocks.len(), filters.sum())
        };
        let (segments, bytes) = {
            let w = self.lock_writer();
            (w.segments.count(), w.segments.bytes())
        };
        let c = &self.counters;
        StoreStats {
            events,
            blocks,
            segments,
            bytes,
            text_filter_bytes,
            appended_total: c.appended.load(Ordering::Relaxed),
            skipped_total: c.skipped.load(Ordering::Relaxed),
            lost_total: c.lost.load(Ordering::Relaxed),
            damaged_blocks_total: c.scans.damaged.load(Ordering::Relaxed),
            text_skipped_blocks_total: c.scans.text_skipped.load(Ordering::Relaxed),
            removed_segments_total: c.removed_segments.load(Ordering::Relaxed),
        }
    }
}

impl Drop for EventStore {
    /// Seals the open block so a restart finds its events.
    fn drop(&mut self) {
        self.flush();
    }
}
