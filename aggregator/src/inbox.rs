//! The aggregator's durable inbox (sled): accepted batches waiting to be processed, the
//! accepted-batch table that makes retries harmless, and the sinks' progress.
//!
//! Invariants:
//! - [`Inbox::admit`] stores a frame and marks `(agent, stream, seq)` accepted in one sled
//!   transaction and flushes before returning `Accepted`; only then does the agent get its
//!   2xx. A batch marked accepted before is answered `Duplicate` and not stored again,
//!   across restarts too.
//! - Keys become visible in increasing order: a key is drawn and its frame inserted under
//!   one lock, so a reader that has seen key `k` never later finds a new key below `k`,
//!   and the pipeline can read on from the last key it took ([`Inbox::read_after`]).
//! - Frames are processed in key order and removed by [`Inbox::complete`] in the same
//!   transaction that records each sink's [`Position`] (for files: the generation of the
//!   file being written and its length after the fsync). After a crash, [`Inbox::positions`] tells how far each sink durably got, the
//!   file sink cuts off anything written past it, and processing restarts at the first
//!   frame still in the inbox: every accepted line reaches a file sink exactly once.
//! - The inbox is bounded by `max_bytes` of frames: beyond it `admit` answers `Full` and
//!   ingest answers 429 with `Retry-After`.
//! - Besides the stored frames the inbox keeps, in memory only, the decompressed body of
//!   recently admitted frames ([`Inbox::admit_decoded`], [`Inbox::take_decoded`]): ingest
//!   decompresses every frame to check it, and the pipeline takes that copy instead of
//!   decompressing the frame again. It is a cache, bounded by [`DECODED_CACHE_BYTES`]: a
//!   frame without a copy (after a restart, or when the cache was full) is decoded from
//!   its stored bytes. The stored format does not change.
//! - The accepted-batch table keeps, per stream, a floor (every seq ≤ floor accepted) and
//!   the accepted seqs above it; the set folds into the floor as gaps fill, and a stream
//!   with more than [`MAX_PENDING`] seqs above its floor gives up its oldest gap, so the
//!   table stays bounded in memory and on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::sink::Position;

/// Most out-of-order seqs remembered per stream.
pub const MAX_PENDING: usize = 65_536;
/// Most bytes of decompressed bodies held for the pipeline (see the module docs).
pub const DECODED_CACHE_BYTES: usize = 64 << 20;
const FORMAT_VERSION: u8 = 1;

/// Errors from the inbox.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// sled failed (I/O, disk full, corruption).
    #[error("inbox storage: {0}")]
    Storage(#[from] sled::Error),
    /// Written by an unknown format version.
    #[error("inbox format version {0} is not supported")]
    Format(u8),
    /// A sink's recorded position is damaged or of an unknown version.
    #[error("the recorded position of sink {0:?} is damaged or of an unknown version")]
    Position(String),
}

impl From<TransactionError<InboxError>> for InboxError {
    fn from(e: TransactionError<InboxError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => InboxError::Storage(e),
        }
    }
}

/// The answer to [`Inbox::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Stored durably.
    Accepted,
    /// Accepted before; not stored again.
    Duplicate,
    /// The inbox is over its limit; try later.
    Full,
}

/// Accepted seqs of one stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamState {
    floor: u64,
    above: BTreeSet<u64>,
}

impl StreamState {
    /// True if `seq` was accepted.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.floor || self.above.contains(&seq)
    }

    /// Marks `seq` accepted.
    pub fn insert(&mut self, seq: u64) {
        if seq <= self.floor {
            return;
        }
        self.above.insert(seq);
        self.fold();
        while self.above.len() > MAX_PENDING {
            if let Some(first) = self.above.pop_first() {
                self.floor = first;
                self.fold();
            }
        }
    }

    fn fold(&mut self) {
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }

    /// `floor (u64 BE) | n (u32 BE) | n × seq (u64 BE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + 8 * self.above.len());
        v.extend_from_slice(&self.floor.to_be_bytes());
        v.extend_from_slice(&(self.above.len() as u32).to_be_bytes());
        for s in &self.above {
            v.extend_from_slice(&s.to_be_bytes());
        }
        v
    }

    /// Inverse of [`StreamState::encode`]; `None` for bytes it cannot read.
    pub fn decode(b: &[u8]) -> Option<StreamState> {
        let floor = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let n = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?) as usize;
        let rest = b.get(12..)?;
        if rest.len() != n * 8 {
            return None;
        }
        let above = rest
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
            .collect();
        Some(StreamState { floor, above })
    }
}

/// A frame's decompressed body, as ingest checked it.
#[derive(Debug)]
pub struct Decoded {
    /// Records in the body (from the frame header).
    pub record_count: u32,
    /// The body, ready for [`logferry_shared::wire::parse_body`].
    pub body: Vec<u8>,
}

/// Decompressed bodies by frame key, bounded in bytes.
#[derive(Debug, Default)]
struct DecodedCache {
    bodies: BTreeMap<u64, Decoded>,
    bytes: usize,
}

impl DecodedCache {
    fn insert(&mut self, key: u64, d: Decoded) {
        if self.bytes + d.body.len() <= DECODED_CACHE_BYTES {
            self.bytes += d.body.len();
            self.bodies.insert(key, d);
        }
    }

    fn remove(&mut self, key: u64) -> Option<Decoded> {
        let d = self.bodies.remove(&key)?;
        self.bytes -= d.body.len();
        Some(d)
    }
}

fn stream_key(agent: &str, stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(agent.len() + stream.len() + 1);
    k.extend_from_slice(agent.as_bytes());
    k.push(0);
    k.extend_from_slice(stream.as_bytes());
    k
}

/// The inbox. Shared by ingest handlers (admit) and the pipeline thread (read, complete).
#[derive(Debug)]
pub struct Inbox {
    db: sled::Db,
    frames: sled::Tree,
    accepted: sled::Tree,
    positions: sled::Tree,
    bytes: AtomicU64,
    max_bytes: u64,
    /// Held while a key is drawn and its frame inserted (not while flushing), so keys
    /// become visible in increasing order.
    order: Mutex<()>,
    decoded: Mutex<DecodedCache>,
}

impl Inbox {
    /// Opens (creating) the inbox in `dir`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Inbox, InboxError> {
        let db = logferry_shared::store::open(
            &sled::Config::new()
                .path(dir)
                .cache_capacity(16 << 20)
                .flush_every_ms(Some(1000)),
            &dir.display(),
        )?;
        match db.get("format")? {
            Some(v) if v.as_ref() != [FORMAT_VERSION] => {
                return Err(InboxError::Format(v.first().copied().unwrap_or(0)));
            }
            Some(_) => {}
            None => {
                db.insert("format", &[FORMAT_VERSION][..])?;
            }
        }
        let frames = db.open_tree("frames")?;
        let mut bytes = 0u64;
        for item in frames.iter() {
            let (_, v) = item?;
            bytes += v.len() as u64;
        }
        Ok(Inbox {
            accepted: db.open_tree("accepted")?,
            positions: db.open_tree("positions")?,
            frames,
            db,
            bytes: AtomicU64::new(bytes),
            max_bytes,
            order: Mutex::new(()),
            decoded: Mutex::new(DecodedCache::default()),
        })
    }

    /// Bytes of frames waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Stores `frame` for `(agent, stream, seq)` durably, unless it was accepted before or
    /// the inbox is full.
    pub fn admit(
        &self,
        agent: &str,
        stream: &str,
        seq: u64,
        frame: &[u8],
    ) -> Result<Admit, InboxError> {
        self.admit_decoded(agent, stream, seq, frame, None)
    }

    /// [`Inbox::admit`], also keeping `decoded` (the frame's body, decompressed) in memory
    /// for the pipeline when the frame is accepted and the cache has room.
    pub fn admit_decoded(
        &self,
        agent: &str,
        stream: &str,
        seq: u64,
        frame: &[u8],
        decoded: Option<Decoded>,
    ) -> Result<Admit, InboxError> {
        let skey = stream_key(agent, stream);
        // A cheap pre-check, so retries of accepted batches never count against the limit.
        if let Some(v) = self.accepted.get(&skey)? {
            if StreamState::decode(&v).is_some_and(|s| s.contains(seq)) {
                return Ok(Admit::Duplicate);
            }
        }
        if self.bytes() > 0 && self.bytes() + frame.len() as u64 > self.max_bytes {
            return Ok(Admit::Full);
        }
        let ordered = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.db.generate_id()?;
        let fkey = id.to_be_bytes();
        // In the cache before the frame is visible, so the pipeline never misses it.
        let cached = decoded.is_some();
        if let Some(d) = decoded {
            self.decoded_cache().insert(id, d);
        }
        let outcome = (&self.frames, &self.accepted)
            .transaction(|(f, a)| {
                let mut state = match a.get(&skey)? {
                    Some(v) => StreamState::decode(&v).unwrap_or_default(),
                    None => StreamState::default(),
                };
                if state.contains(seq) {
                    return Ok(Admit::Duplicate);
                }
                state.insert(seq);
                a.insert(skey.as_slice(), state.encode())?;
                f.insert(&fkey[..], frame)?;
                Ok::<Admit, ConflictableTransactionError<InboxError>>(Admit::Accepted)
            })
            .map_err(InboxError::from);
        if cached && !matches!(outcome, Ok(Admit::Accepted)) {
            self.decoded_cache().remove(id);
        }
        let outcome = outcome?;
        drop(ordered);
        if outcome == Admit::Accepted {
            self.db.flush()?;
            self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    fn decoded_cache(&self) -> std::sync::MutexGuard<'_, DecodedCache> {
        self.decoded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decompressed body of frame `key`, if it is still held; it is forgotten, and so
    /// is every body of an older frame (keys are taken in order, so those are not wanted).
    pub fn take_decoded(&self, key: u64) -> Option<Decoded> {
        let mut cache = self.decoded_cache();
        while let Some((&first, _)) = cache.bodies.first_key_value() {
            if first >= key {
                break;
            }
            cache.remove(first);
        }
        cache.remove(key)
    }

    /// Up to `max` frames with keys above `after`, in key order.
    pub fn read_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, InboxError> {
        let start = after.map_or(0, |a| a.saturating_add(1)).to_be_bytes();
        let mut out = Vec::new();
        for item in self.frames.range(start..).take(max) {
            let (k, v) = item?;
            let key = k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            out.push((key, v));
        }
        Ok(out)
    }

    /// Removes processed frames and records each sink's durable position, in one
    /// transaction, flushed.
    pub fn complete(
        &self,
        keys: &[(u64, usize)],
        positions: &[(&str, Position)],
    ) -> Result<(), InboxError> {
        (&self.frames, &self.positions)
            .transaction(|(f, p)| {
                for (k, _) in keys {
                    f.remove(&k.to_be_bytes()[..])?;
                }
                for (sink, pos) in positions {
                    p.insert(sink.as_bytes(), &pos.encode()[..])?;
                }
                Ok::<(), ConflictableTransactionError<InboxError>>(())
            })
            .map_err(InboxError::from)?;
        self.db.flush()?;
        let freed: u64 = keys.iter().map(|(_, len)| *len as u64).sum();
        self.bytes
            .fetch_sub(freed.min(self.bytes()), Ordering::Relaxed);
        Ok(())
    }

    /// The last recorded position of `sink`, if any (a value this version cannot read is
    /// reported as damaged storage rather than ignored: ignoring it would rewind nothing).
    pub fn position(&self, sink: &str) -> Result<Option<Position>, InboxError> {
        match self.positions.get(sink.as_bytes())? {
            None => Ok(None),
            Some(v) => Position::decode(&v)
                .map(Some)
                .ok_or_else(|| InboxError::Position(sink.to_owned())),
        }
    }

    /// Flushes to disk.
    pub fn flush(&self) -> Result<(), InboxError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_state_folds_and_round_trips() {
        let mut s = StreamState::default();
        for seq in [2, 4, 1, 3, 7] {
            assert!(!s.contains(seq));
            s.insert(seq);
        }
        assert!(s.contains(4) && s.contains(7) && !s.contains(5));
        assert_eq!(s.floor, 4);
        assert_eq!(StreamState::decode(&s.encode()), Some(s));
        assert_eq!(StreamState::decode(b"short"), None);
    }

    #[test]
    fn a_permanent_gap_stays_bounded() {
        let mut s = StreamState::default();
        for seq in 2..(MAX_PENDING as u64 + 10) {
            s.insert(seq);
        }
        assert!(s.above.len() <= MAX_PENDING);
    }

    #[test]
    fn admit_dedups_across_reopen_and_complete_records_positions() {
        let dir = tempfile::tempdir().unwrap();
        {
            let inbox = Inbox::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(inbox.admit("a", "s", 1, b"one").unwrap(), Admit::Accepted);
            assert_eq!(inbox.admit("a", "s", 1, b"one").unwrap(), Admit::Duplicate);
            assert_eq!(inbox.admit("a", "s", 2, b"two").unwrap(), Admit::Accepted);
            assert_eq!(inbox.admit("b", "s", 1, b"other").unwrap(), Admit::Accepted);
            let frames = inbox.read_after(None, 10).unwrap();
            assert_eq!(frames.len(), 3);
            assert_eq!(&*frames[0].1, b"one");
            inbox
                .complete(&[(frames[0].0, 3)], &[("file", Position::at(123))])
                .unwrap();
            assert_eq!(inbox.bytes(), 8);
        }
        let inbox = Inbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(inbox.admit("a", "s", 1, b"one").unwrap(), Admit::Duplicate);
        assert_eq!(inbox.admit("a", "s", 2, b"two").unwrap(), Admit::Duplicate);
        assert_eq!(inbox.position("file").unwrap(), Some(Position::at(123)));
        assert_eq!(inbox.len(), 2);
        assert_eq!(inbox.bytes(), 8);
    }

    #[test]
    fn full_inbox_refuses_but_still_answers_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), 10).unwrap();
        assert_eq!(
            inbox.admit("a", "s", 1, b"12345678").unwrap(),
            Admit::Accepted
        );
        assert_eq!(inbox.admit("a", "s", 2, b"12345678").unwrap(), Admit::Full);
        assert_eq!(
            inbox.admit("a", "s", 1, b"12345678").unwrap(),
            Admit::Duplicate
        );
        let frames = inbox.read_after(None, 10).unwrap();
        inbox.complete(&[(frames[0].0, 8)], &[]).unwrap();
        assert_eq!(
            inbox.admit("a", "s", 2, b"12345678").unwrap(),
            Admit::Accepted
        );
    }

    fn decoded(n: usize) -> Option<Decoded> {
        Some(Decoded {
            record_count: 1,
            body: vec![7; n],
        })
    }

    #[test]
    fn decoded_bodies_are_kept_for_accepted_frames_only_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            inbox
                .admit_decoded("a", "s", 1, b"f1", decoded(10))
                .unwrap(),
            Admit::Accepted
        );
        assert_eq!(
            inbox
                .admit_decoded("a", "s", 1, b"f1", decoded(10))
                .unwrap(),
            Admit::Duplicate
        );
        inbox
            .admit_decoded("a", "s", 2, b"f2", decoded(20))
            .unwrap();
        inbox
            .admit_decoded("a", "s", 3, b"f3", decoded(30))
            .unwrap();
        let keys: Vec<u64> = inbox
            .read_after(None, 10)
            .unwrap()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(keys.len(), 3);
        // Taking the second forgets the first: the pipeline has moved past it.
        assert_eq!(inbox.take_decoded(keys[1]).unwrap().body.len(), 20);
        assert!(inbox.take_decoded(keys[0]).is_none());
        assert!(inbox.take_decoded(keys[1]).is_none());
        assert_eq!(inbox.take_decoded(keys[2]).unwrap().body.len(), 30);
        assert_eq!(inbox.decoded_cache().bytes, 0);
        // Past the bound nothing more is kept; the frame itself is stored as ever.
        inbox
            .admit_decoded("a", "s", 4, b"f4", decoded(DECODED_CACHE_BYTES + 1))
            .unwrap();
        let last = inbox.read_after(Some(keys[2]), 10).unwrap();
        assert_eq!(&*last[0].1, b"f4");
        assert!(inbox.take_decoded(last[0].0).is_none());
    }

    #[test]
    fn concurrent_copies_are_admitted_once() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), 1 << 20).unwrap();
        let results: Vec<Admit> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| inbox.admit("a", "s", 9, b"x").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| **r == Admit::Accepted).count(), 1);
        assert_eq!(inbox.len(), 1);
    }
}
