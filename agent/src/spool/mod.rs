//! The agent's durable spool: unacknowledged batches, file checkpoints and the agent's
//! identity.
//!
//! Frames live in append-only segment files (module `segment`); a small sled database holds
//! the index to them, the checkpoints, the dead-letter store and the metadata. sled only
//! ever sees entries of a few dozen bytes, so its memory and writes stay small whatever
//! the backlog.
//!
//! Invariants:
//! - A batch's frame is appended to the active segment and fdatasync'd first; then its
//!   index entry (seq → segment, offset, length, records), the checkpoints of the files
//!   whose lines it holds and the next seq are written in one sled transaction, flushed
//!   (fsync) before the batch can be shipped. That transaction is the commit point:
//!   after a crash the tailer resumes from the checkpoints and every indexed batch is
//!   resent, so each line is either in the spool or still after a checkpoint. Segment
//!   bytes without an index entry are never read, and an index entry only ever points at
//!   bytes already on disk.
//! - Every record carries its seq, length and CRC32; a batch whose bytes do not check
//!   out when read is counted ([`Spool::damaged_batches`]), logged and moved to the
//!   dead-letter store with the reason "damaged in the spool", and the next one is served.
//! - A batch leaves the spool only when the aggregator acknowledged it (2xx), when it is
//!   dead-lettered (permanent 4xx, or damaged), or under `when_full = "drop_oldest"`
//!   (counted; never a batch whose send is under way, see [`Spool::begin_send`], since
//!   it may still arrive). A segment file is deleted once no index entry points into it
//!   and it is no longer appended to, after the removals are flushed (so no entry can
//!   come back pointing at a deleted file); segments left without entries by a crash are
//!   deleted at open.
//! - Sequence numbers are assigned here, per stream, 1, 2, 3, … and never reused: the
//!   next number is stored in the same transaction as the batch.
//! - Spool size (sum of the frames indexed) is bounded by `max_bytes`; with `block` the
//!   tailer waits in [`Spool::commit`] until acknowledgements make room; with
//!   `drop_oldest` only the batches being sent (at most the shipper's window) can keep
//!   it above. On disk, acknowledged frames stay until their whole segment goes: with
//!   acknowledgements in about seq order, up to about two segment sizes ([`roll_size`])
//!   more than the spool size.
//!
//! On-disk layout (format version 2, in the `meta` tree under `format`): `segments/` holds
//! the segment files; tree `index` maps `seq` (u64 big-endian) to a segment location
//! (`segment::Location`); `checkpoints` maps a file key to [`Checkpoint::encode`];
//! `dead_letter` maps `seq` to the frame and `dead_letter_info` maps it to
//! [`DeadLetterInfo::encode`] (why and when it was refused; written in the same
//! transaction); `meta` holds `agent_id`, `next_seq` and `format`. Version 1 kept frames
//! in a `batches` tree; a version 1 spool is upgraded at open by moving those frames into
//! a segment, one transaction per batch, so a crash during the upgrade loses nothing.

mod checkpoint;
mod dead_letter;
mod open;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

pub use checkpoint::{file_key, Checkpoint};
pub use dead_letter::{DeadLetter, DeadLetterInfo, MAX_REASON_BYTES};

use crate::config::WhenFull;
use segment::{Damage, Location, Writer};

/// Largest segment file; smaller for small spools (see [`roll_size`]).
const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Smallest segment roll size.
const MIN_SEGMENT_BYTES: u64 = 256 << 10;

/// Segment roll size for a spool of `max_bytes`: a quarter of it, within 256 KiB..=64 MiB,
/// so what acknowledged frames keep on disk stays in proportion to the bound.
pub fn roll_size(max_bytes: u64) -> u64 {
    (max_bytes / 4).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
}

/// Errors from the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// sled failed.
    #[error("spool storage: {0}")]
    Storage(#[from] sled::Error),
    /// Reading or writing the segment files failed.
    #[error("spool segment files: {0}")]
    Segments(std::io::Error),
    /// The spool was written by an unknown format version.
    #[error("spool format version {0} is not supported by this agent")]
    Format(u8),
    /// Waiting for room was interrupted by shutdown.
    #[error("shutting down while waiting for room in the spool")]
    Interrupted,
    /// Moving a damaged spool aside failed.
    #[error("cannot move the damaged spool aside: {0}")]
    MoveAside(std::io::Error),
    /// [`Spool::open_existing`]: another process (a running agent) holds the spool.
    #[error("the spool at {0} is in use by a running agent")]
    Locked(PathBuf),
    /// [`Spool::open_existing`]: there is no spool.
    #[error("there is no spool at {0}")]
    Missing(PathBuf),
}

impl From<TransactionError<SpoolError>> for SpoolError {
    fn from(e: TransactionError<SpoolError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => SpoolError::Storage(e),
        }
    }
}

/// What happened when a batch was committed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    /// The batch's sequence number.
    pub seq: u64,
    /// Batches deleted to make room (`drop_oldest`).
    pub dropped_batches: u64,
    /// Lines in the deleted batches.
    pub dropped_lines: u64,
}

/// A segment file with indexed batches in it (or the active one).
#[derive(Debug)]
struct SegmentEntry {
    file: Arc<File>,
    /// Index entries pointing into it, plus commits under way.
    live: u64,
}

/// The segment files in use.
#[derive(Debug, Default)]
struct Table {
    segments: BTreeMap<u64, SegmentEntry>,
    /// The segment being appended to, never deleted while it is.
    active: Option<u64>,
}

impl Table {
    /// One entry fewer in `segment`; returns it when it is to be deleted.
    fn unref(&mut self, segment: u64) -> Option<u64> {
        let e = self.segments.get_mut(&segment)?;
        e.live = e.live.saturating_sub(1);
        if e.live == 0 && self.active != Some(segment) {
            self.segments.remove(&segment);
            return Some(segment);
        }
        None
    }
}

/// The spool. Shared by the tailer thread (commits) and the shipper (reads, acks).
#[derive(Debug)]
pub struct Spool {
    db: sled::Db,
    index: sled::Tree,
    checkpoints: sled::Tree,
    dead: sled::Tree,
    dead_info: sled::Tree,
    meta: sled::Tree,
    segments_dir: PathBuf,
    /// Held through a whole commit: one commit at a time.
    writer: Mutex<Writer>,
    table: Mutex<Table>,
    bytes: AtomicU64,
    batches: AtomicU64,
    damaged: AtomicU64,
    max_bytes: u64,
    when_full: WhenFull,
    room: (Mutex<()>, Condvar),
    /// A commit is waiting for room (`when_full = "block"`): reading has stopped.
    blocked: AtomicBool,
    /// Batches with a send under way ([`Spool::begin_send`]).
    sending: Mutex<BTreeSet<u64>>,
}

/// How long [`Spool::commit`] sleeps between checks of the shutdown flag while blocked.
const ROOM_WAIT: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// The agent id: `configured` if given, else the one stored, else a new random one
    /// (stored durably).
    pub fn agent_id(&self, configured: Option<&str>) -> Result<String, SpoolError> {
        if let Some(id) = configured {
            return Ok(id.to_owned());
        }
        if let Some(v) = self.meta.get("agent_id")? {
            if let Ok(s) = std::str::from_utf8(&v) {
                return Ok(s.to_owned());
            }
        }
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.meta.insert("agent_id", id.as_bytes())?;
        self.db.flush()?;
        Ok(id)
    }

    /// The next sequence number a commit will use.
    pub fn next_seq(&self) -> Result<u64, SpoolError> {
        Ok(self
            .meta
            .get("next_seq")?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1))
    }

    /// Every stored checkpoint (unreadable entries are skipped).
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, SpoolError> {
        let mut out = Vec::new();
        for item in self.checkpoints.iter() {
            let (k, v) = item?;
            if let Some(cp) = Checkpoint::decode(&k, &v) {
                out.push(cp);
            }
        }
        Ok(out)
    }

    /// Removes the checkpoint stored under `key` (a file that is gone, or one now known
    /// under another device and inode). Not flushed: losing it in a crash only leaves a
    /// stale checkpoint, which fingerprints keep from matching another file.
    pub fn forget(&self, key: &[u8]) -> Result<(), SpoolError> {
        self.checkpoints.remove(key)?;
        Ok(())
    }

    /// Stores `cp` on its own, durably: the position of a file none of whose lines are in
    /// a batch (see `Batcher::note_position`).
    pub fn save_checkpoint(&self, cp: &Checkpoint) -> Result<(), SpoolError> {
        self.checkpoints.insert(&cp.key()[..], cp.encode())?;
        self.db.flush()?;
        Ok(())
    }

    /// Bytes of batches held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether a commit is waiting for room under `when_full = "block"`, so reading has
    /// stopped until a batch is acknowledged. (The spool can be blocked below
    /// `max_bytes`: the next batch does not fit.)
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Number of batches held.
    pub fn len(&self) -> usize {
        self.batches.load(Ordering::Relaxed) as usize
    }

    /// True when no batch is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batches found damaged since the spool was opened (dead-lettered, not served).
    pub fn damaged_batches(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Stores `frame` as batch `seq` with the checkpoints of its files, durably, making
    /// room first as `when_full` says. `seq` must be [`Spool::next_seq`]. With `block`,
    /// waits for room until `stop()` returns true.
    pub fn commit(
        &self,
        seq: u64,
        frame: &[u8],
        checkpoints: &[Checkpoint],
        stop: &dyn Fn() -> bool,
    ) -> Result<CommitReport, SpoolError> {
        let mut report = CommitReport {
            seq,
            ..Default::default()
        };
        let need = frame.len() as u64;
        // A batch larger than the whole spool is still accepted into an empty spool,
        // otherwise it could never be sent.
        while self.bytes() > 0 && self.bytes() + need > self.max_bytes {
            match self.when_full {
                WhenFull::Block => {
                    if stop() {
                        self.blocked.store(false, Ordering::Relaxed);
                        return Err(SpoolError::Interrupted);
                    }
                    self.blocked.store(true, Ordering::Relaxed);
                    let guard = lock(&self.room.0);
                    let _ = self.room.1.wait_timeout(guard, ROOM_WAIT);
                }
                WhenFull::DropOldest => {
                    if !self.drop_oldest(&mut report)? {
                        break;
                    }
                }
            }
        }

        self.blocked.store(false, Ordering::Relaxed);
        let mut writer = lock(&self.writer);
        let appended = writer
            .append(seq, frame, frame_record_count(frame))
            .map_err(SpoolError::Segments)?;
        let loc = appended.location;
        let sealed = {
            let mut t = lock(&self.table);
            if let Some(file) = appended.new_segment {
                t.segments
                    .insert(loc.segment, SegmentEntry { file, live: 0 });
            }
            if let Some(e) = t.segments.get_mut(&loc.segment) {
                e.live += 1;
            }
            // The segment appended to until now takes no more records: it goes as soon
            // as nothing points into it.
            match t.active.replace(loc.segment) {
                Some(p) if p != loc.segment => {
                    let empty = t.segments.get(&p).is_some_and(|e| e.live == 0);
                    empty.then(|| t.segments.remove(&p).map(|_| p)).flatten()
                }
                _ => None,
            }
        };
        if let Err(e) = writer.sync() {
            // Not known to be on disk, so never indexed: dead bytes.
            let doomed = lock(&self.table).unref(loc.segment);
            drop(writer);
            self.delete_segments(sealed.into_iter().chain(doomed));
            return Err(SpoolError::Segments(e));
        }

        let key = seq.to_be_bytes();
        let next = (seq + 1).to_be_bytes();
        let value = loc.encode();
        // Counted before the entry is visible, so that an ack racing with this commit
        // never takes the counts below zero.
        self.bytes.fetch_add(need, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let committed = (&self.index, &self.checkpoints, &self.meta).transaction(|(i, c, m)| {
            let old = i.insert(&key[..], &value[..])?;
            for cp in checkpoints {
                c.insert(&cp.key()[..], cp.encode())?;
            }
            m.insert("next_seq", &next[..])?;
            Ok::<_, ConflictableTransactionError<SpoolError>>(old)
        });
        let replaced = match committed {
            Ok(old) => old,
            Err(e) => {
                self.bytes.fetch_sub(need, Ordering::Relaxed);
                self.batches.fetch_sub(1, Ordering::Relaxed);
                // The record stays in the segment, unindexed: dead bytes.
                let doomed = lock(&self.table).unref(loc.segment);
                drop(writer);
                self.delete_segments(sealed.into_iter().chain(doomed));
                return Err(e.into());
            }
        };
        // A commit retried after a failed flush replaces its own earlier entry.
        let doomed = replaced.and_then(|old| self.forget_entry(&old));
        let flushed = self.db.flush();
        drop(writer);
        if flushed.is_ok() {
            self.delete_segments(sealed.into_iter().chain(doomed));
        }
        flushed?;
        Ok(report)
    }

    /// Deletes the oldest batch (`drop_oldest`), counting it in `report`; false when
    /// there is none.
    fn drop_oldest(&self, report: &mut CommitReport) -> Result<bool, SpoolError> {
        // The oldest batch not being sent right now: one whose send is under way may
        // still arrive, and must not be counted as lost. Claims are held (and checked
        // by [`Spool::begin_send`]) under this lock, so a batch is either dropped or sent.
        let sending = lock(&self.sending);
        let mut victim = None;
        for item in self.index.iter() {
            let (k, v) = item?;
            if !sending.contains(&seq_of(&k)) {
                victim = Some((k, v));
                break;
            }
        }
        let Some((k, v)) = victim else {
            return Ok(false);
        };
        if self.index.remove(&k)?.is_none() {
            return Ok(true);
        }
        drop(sending);
        let lines = Location::decode(&v).map_or(0, |l| l.records);
        report.dropped_batches += 1;
        report.dropped_lines += u64::from(lines);
        tracing::warn!(
            seq = seq_of(&k),
            lines,
            "spool full: dropped the oldest batch"
        );
        let doomed = self.forget_entry(&v);
        self.delete_segments(doomed);
        Ok(true)
    }

    /// Marks batch `seq` as being sent, so that `drop_oldest` leaves it alone until
    /// [`Spool::end_send`] (or its ack or dead-lettering). False when the batch is no
    /// longer in the spool (dropped): it must not be sent, its lines are counted lost.
    pub fn begin_send(&self, seq: u64) -> Result<bool, SpoolError> {
        let mut sending = lock(&self.sending);
        if !self.index.contains_key(seq.to_be_bytes())? {
            return Ok(false);
        }
        sending.insert(seq);
        Ok(true)
    }

    /// Ends what [`Spool::begin_send`] began (a failed attempt, before the retry waits).
    pub fn end_send(&self, seq: u64) {
        lock(&self.sending).remove(&seq);
    }

    /// Accounts for an index entry that is gone (its value `v`); returns the segment to
    /// delete, if it emptied one.
    fn forget_entry(&self, v: &[u8]) -> Option<u64> {
        self.batches.fetch_sub(1, Ordering::Relaxed);
        let loc = Location::decode(v)?;
        self.bytes.fetch_sub(u64::from(loc.len), Ordering::Relaxed);
        lock(&self.table).unref(loc.segment)
    }

    /// Deletes segment files nothing points into any more. The removals of their index
    /// entries are flushed first, so that none can reappear after a crash pointing at a
    /// deleted file. A failure leaves the file for the next open to delete.
    fn delete_segments(&self, ids: impl IntoIterator<Item = u64>) {
        let mut ids = ids.into_iter().peekable();
        if ids.peek().is_none() {
            return;
        }
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "cannot flush the spool; emptied segment files are deleted at the next start");
            return;
        }
        for id in ids {
            let path = segment::path(&self.segments_dir, id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete an emptied spool segment; it is deleted at the next start");
                }
            }
        }
    }

    /// The first batch with a seq above `after`. Batches found damaged on the way are
    /// moved to the dead-letter store, counted and skipped.
    pub fn next_after(&self, after: u64) -> Result<Option<(u64, Bytes)>, SpoolError> {
        let mut after = after;
        loop {
            let start = after.saturating_add(1).to_be_bytes();
            let Some(item) = self.index.range(start..).next() else {
                return Ok(None);
            };
            let (k, v) = item?;
            let seq = seq_of(&k);
            match self.load(seq, &v) {
                Ok(frame) => return Ok(Some((seq, Bytes::from(frame)))),
                // Acknowledged or dropped while being read: its segment may be gone.
                Err(_) if self.index.get(k)?.as_deref() != Some(&v[..]) => {}
                Err(damage) => self.set_aside_damaged(seq, &v, &damage)?,
            }
            after = seq;
        }
    }

    /// Reads and checks the frame an index entry points at.
    fn load(&self, seq: u64, v: &[u8]) -> Result<Vec<u8>, Damage> {
        let loc = Location::decode(v).ok_or(Damage::Index)?;
        let file = self.segment_file(loc.segment)?;
        segment::read(&file, seq, &loc)
    }

    fn segment_file(&self, id: u64) -> Result<Arc<File>, Damage> {
        lock(&self.table)
            .segments
            .get(&id)
            .map(|e| e.file.clone())
            .ok_or(Damage::Missing(id))
    }

    /// Deletes an acknowledged batch and wakes a tailer waiting for room. Not flushed: an
    /// acknowledgement lost in a crash only means the batch is sent again (and dropped by
    /// the aggregator as a duplicate).
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        if let Some(v) = self.index.remove(seq.to_be_bytes())? {
            let doomed = self.forget_entry(&v);
            self.delete_segments(doomed);
        }
        self.end_send(seq);
        self.room.1.notify_all();
        Ok(())
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), SpoolError> {
        self.db.flush()?;
        Ok(())
    }
}

fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Record count from a frame header (bytes 16..20), 0 if the frame is too short.
fn frame_record_count(frame: &[u8]) -> u32 {
    frame
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}
