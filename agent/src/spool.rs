//! The agent's durable spool on sled: unacknowledged batches, file checkpoints and the
//! agent's identity.
//!
//! Invariants:
//! - A batch and the checkpoints of the files whose lines it holds are written in one sled
//!   transaction and flushed (fsync) before the batch can be shipped. After a crash the
//!   tailer resumes from the checkpoints and every batch still in the spool is resent, so
//!   each line is either in the spool or still after a checkpoint: none is lost.
//! - A batch leaves the spool only when the aggregator acknowledged it (2xx), when it is
//!   dead-lettered (permanent 4xx), or under `when_full = "drop_oldest"` (counted).
//! - Sequence numbers are assigned here, per stream, 1, 2, 3, … and never reused: the
//!   next number is stored in the same transaction as the batch.
//! - Spool size (sum of the frames kept) is bounded by `max_bytes`; with `block` the
//!   tailer waits in [`Spool::commit`] until acknowledgements make room.
//!
//! On-disk layout (format version 1, in the `meta` tree under `format`): tree `batches`
//! maps `seq` (u64 big-endian) to the frame bytes; `checkpoints` maps a file key to
//! [`Checkpoint::encode`]; `dead_letter` maps `seq` to the frame and `dead_letter_info`
//! maps it to [`DeadLetterInfo::encode`] (why and when it was refused; written in the
//! same transaction); `meta` holds `agent_id`, `next_seq` and `format`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::config::WhenFull;
use crate::fingerprint::Fingerprint;

const FORMAT_VERSION: u8 = 1;

/// Errors from the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// sled failed.
    #[error("spool storage: {0}")]
    Storage(#[from] sled::Error),
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

/// Where a file's reading stands, as last committed with a batch. Stored under
/// [`Checkpoint::key`] (device and inode); see [`crate::fingerprint`] for how a file is
/// matched with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset of the first byte not yet in a committed batch.
    pub offset: u64,
    /// Path the file had when last read.
    pub path: PathBuf,
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// The file's first bytes when last read.
    pub fingerprint: Fingerprint,
    /// Unix milliseconds of the commit, for pruning checkpoints of files long gone.
    pub updated_ms: u64,
}

/// Checkpoint encoding version written now. Version 1 (offset and path only, written by
/// earlier agents) is still read: its device and inode come from the key and its
/// fingerprint is empty, so it matches by device and inode alone.
const CHECKPOINT_VERSION: u8 = 2;

impl Checkpoint {
    /// The sled key: device and inode, big-endian.
    pub fn key(&self) -> [u8; 16] {
        file_key(self.dev, self.ino)
    }

    /// `2 | offset | dev | ino | fingerprint len (u16) | fingerprint hash | updated_ms |
    /// path bytes`, integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let path = self.path.as_os_str().as_bytes();
        let mut v = Vec::with_capacity(43 + path.len());
        v.push(CHECKPOINT_VERSION);
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.dev.to_be_bytes());
        v.extend_from_slice(&self.ino.to_be_bytes());
        v.extend_from_slice(&self.fingerprint.len.to_be_bytes());
        v.extend_from_slice(&self.fingerprint.hash.to_be_bytes());
        v.extend_from_slice(&self.updated_ms.to_be_bytes());
        v.extend_from_slice(path);
        v
    }

    /// Inverse of [`Checkpoint::encode`] (and reader of version 1 values, which need
    /// their `key`); `None` for bytes it cannot read.
    pub fn decode(key: &[u8], b: &[u8]) -> Option<Checkpoint> {
        use std::os::unix::ffi::OsStrExt;
        let u64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
        };
        match b.first()? {
            1 => {
                let dev = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
                let ino = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
                Some(Checkpoint {
                    offset: u64_at(1)?,
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(b.get(9..)?)),
                    dev,
                    ino,
                    fingerprint: Fingerprint::of(&[]),
                    updated_ms: 0,
                })
            }
            2 => Some(Checkpoint {
                offset: u64_at(1)?,
                dev: u64_at(9)?,
                ino: u64_at(17)?,
                fingerprint: Fingerprint {
                    len: u16::from_be_bytes(b.get(25..27)?.try_into().ok()?),
                    hash: u64_at(27)?,
                },
                updated_ms: u64_at(35)?,
                path: PathBuf::from(std::ffi::OsStr::from_bytes(b.get(43..)?)),
            }),
            _ => None,
        }
    }
}

/// The checkpoint key of a file: device and inode, big-endian.
pub fn file_key(dev: u64, ino: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&dev.to_be_bytes());
    k[8..].copy_from_slice(&ino.to_be_bytes());
    k
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

/// The spool. Shared by the tailer thread (commits) and the shipper (reads, acks).
#[derive(Debug)]
pub struct Spool {
    db: sled::Db,
    batches: sled::Tree,
    checkpoints: sled::Tree,
    dead: sled::Tree,
    dead_info: sled::Tree,
    meta: sled::Tree,
    bytes: AtomicU64,
    max_bytes: u64,
    when_full: WhenFull,
    room: (Mutex<()>, Condvar),
}

/// How long [`Spool::open`] waits for another holder of the spool's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// True for errors that mean the files are damaged, as opposed to unreadable for now
/// (permissions, a lock held by another process, a full disk).
fn is_damage(e: &sled::Error) -> bool {
    match e {
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_) => true,
        sled::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        sled::Error::CollectionNotFound(_) => false,
    }
}

/// How long [`Spool::commit`] sleeps between checks of the shutdown flag while blocked.
const ROOM_WAIT: Duration = Duration::from_millis(200);

impl Spool {
    /// Opens the spool in `dir`. A spool that sled reports as damaged is moved
    /// aside to `<dir>.damaged-<unix time>` and a fresh one is created; the caller learns
    /// of it through the returned flag, and logs it loudly. Lines are then re-read from
    /// the files' beginnings (duplicates are possible; nothing is lost).
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
    ) -> Result<(Spool, Option<PathBuf>), SpoolError> {
        match Self::open_waiting_for_lock(dir, max_bytes, when_full) {
            Ok(s) => Ok((s, None)),
            Err(SpoolError::Storage(e)) if is_damage(&e) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut aside = dir.as_os_str().to_owned();
                aside.push(format!(".damaged-{stamp}"));
                let aside = PathBuf::from(aside);
                tracing::error!(spool = %dir.display(), moved_to = %aside.display(), error = %e,
                    "the spool is damaged; moving it aside and starting a fresh one (files are re-read from their starts)");
                std::fs::rename(dir, &aside).map_err(SpoolError::MoveAside)?;
                let s = Self::open_inner(dir, max_bytes, when_full)?;
                Ok((s, Some(aside)))
            }
            Err(e) => Err(e),
        }
    }

    /// Another process (or a previous instance still exiting) may hold sled's lock; wait a
    /// few seconds for it before giving up with the I/O error, which names the lock.
    fn open_waiting_for_lock(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
    ) -> Result<Spool, SpoolError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match Self::open_inner(dir, max_bytes, when_full) {
                Err(SpoolError::Storage(sled::Error::Io(e)))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Opens an existing spool for inspection (the `dead-letter` command): no waiting for
    /// the lock, no moving aside, nothing created.
    pub fn open_existing(dir: &Path) -> Result<Spool, SpoolError> {
        if !dir.join("conf").exists() {
            return Err(SpoolError::Missing(dir.to_owned()));
        }
        match Self::open_inner(dir, u64::MAX, WhenFull::Block) {
            Err(SpoolError::Storage(e)) if is_lock_error(&e) => {
                Err(SpoolError::Locked(dir.to_owned()))
            }
            other => other,
        }
    }

    fn open_inner(dir: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Spool, SpoolError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 << 20)
            .flush_every_ms(Some(1000))
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("format")? {
            Some(v) if v.as_ref() != [FORMAT_VERSION] => {
                return Err(SpoolError::Format(v.first().copied().unwrap_or(0)));
            }
            Some(_) => {}
            None => {
                meta.insert("format", &[FORMAT_VERSION][..])?;
            }
        }
        let batches = db.open_tree("batches")?;
        let mut bytes = 0u64;
        for item in batches.iter() {
            let (_, v) = item?;
            bytes += v.len() as u64;
        }
        Ok(Spool {
            checkpoints: db.open_tree("checkpoints")?,
            dead: db.open_tree("dead_letter")?,
            dead_info: db.open_tree("dead_letter_info")?,
            batches,
            meta,
            db,
            bytes: AtomicU64::new(bytes),
            max_bytes,
            when_full,
            room: (Mutex::new(()), Condvar::new()),
        })
    }

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

    /// Bytes of batches held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of batches held.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// True when no batch is held.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
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
                        return Err(SpoolError::Interrupted);
                    }
                    let guard = self.room.0.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = self.room.1.wait_timeout(guard, ROOM_WAIT);
                }
                WhenFull::DropOldest => {
                    let Some((k, v)) = self.batches.pop_min()? else {
                        break;
                    };
                    self.bytes.fetch_sub(v.len() as u64, Ordering::Relaxed);
                    report.dropped_batches += 1;
                    report.dropped_lines += u64::from(frame_record_count(&v));
                    tracing::warn!(
                        seq = seq_of(&k),
                        lines = frame_record_count(&v),
                        "spool full: dropped the oldest batch"
                    );
                }
            }
        }
        let seq_key = seq.to_be_bytes();
        let next = (seq + 1).to_be_bytes();
        (&self.batches, &self.checkpoints, &self.meta)
            .transaction(|(b, c, m)| {
                b.insert(&seq_key[..], frame)?;
                for cp in checkpoints {
                    c.insert(&cp.key()[..], cp.encode())?;
                }
                m.insert("next_seq", &next[..])?;
                Ok::<(), ConflictableTransactionError<SpoolError>>(())
            })
            .map_err(SpoolError::from)?;
        self.db.flush()?;
        self.bytes.fetch_add(need, Ordering::Relaxed);
        Ok(report)
    }

    /// The first batch with a seq above `after`.
    pub fn next_after(&self, after: u64) -> Result<Option<(u64, sled::IVec)>, SpoolError> {
        let start = after.saturating_add(1).to_be_bytes();
        match self.batches.range(start..).next() {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((seq_of(&k), v)))
            }
            None => Ok(None),
        }
    }

    /// Deletes an acknowledged batch and wakes a tailer waiting for room.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        if let Some(v) = self.batches.remove(seq.to_be_bytes())? {
            self.bytes.fetch_sub(v.len() as u64, Ordering::Relaxed);
        }
        self.room.1.notify_all();
        Ok(())
    }

    /// Moves a batch the aggregator refused for good into the dead-letter tree, with why
    /// (`status`: the HTTP status, if there was one; `reason`: the refusal, cut to
    /// [`MAX_REASON_BYTES`]) and when, in one transaction.
    pub fn dead_letter(
        &self,
        seq: u64,
        status: Option<u16>,
        reason: &str,
    ) -> Result<(), SpoolError> {
        let key = seq.to_be_bytes();
        if let Some(v) = self.batches.get(key)? {
            let info = DeadLetterInfo {
                status,
                reason: cut_at_char(reason, MAX_REASON_BYTES).to_owned(),
                time_ms: unix_ms(),
            }
            .encode();
            (&self.batches, &self.dead, &self.dead_info)
                .transaction(|(b, d, i)| {
                    b.remove(&key[..])?;
                    d.insert(&key[..], v.clone())?;
                    i.insert(&key[..], info.as_slice())?;
                    Ok::<(), ConflictableTransactionError<SpoolError>>(())
                })
                .map_err(SpoolError::from)?;
            self.db.flush()?;
            self.bytes.fetch_sub(v.len() as u64, Ordering::Relaxed);
        }
        self.room.1.notify_all();
        Ok(())
    }

    /// Number of dead-lettered batches.
    pub fn dead_letter_len(&self) -> usize {
        self.dead.len()
    }

    /// The dead-lettered batches, oldest first. Batches dead-lettered before their reason
    /// was recorded have `info: None`.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let mut out = Vec::new();
        for item in self.dead.iter() {
            let (k, v) = item?;
            let info = self
                .dead_info
                .get(&k)?
                .and_then(|i| DeadLetterInfo::decode(&i));
            out.push(DeadLetter {
                seq: seq_of(&k),
                bytes: v.len() as u64,
                records: frame_record_count(&v),
                info,
            });
        }
        Ok(out)
    }

    /// The frame of dead-lettered batch `seq`.
    pub fn dead_letter_frame(&self, seq: u64) -> Result<Option<sled::IVec>, SpoolError> {
        Ok(self.dead.get(seq.to_be_bytes())?)
    }

    /// Deletes every dead-lettered batch; returns how many there were.
    pub fn purge_dead_letters(&self) -> Result<usize, SpoolError> {
        let n = self.dead.len();
        // Frames first: an entry of `dead_letter_info` left by a crash in between is
        // never listed (listing walks the frames) and its seq is never reused.
        self.dead.clear()?;
        self.dead_info.clear()?;
        self.db.flush()?;
        Ok(n)
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

/// sled's error when another process holds the spool's lock.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn cut_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Longest refusal reason kept with a dead-lettered batch.
pub const MAX_REASON_BYTES: usize = 1024;

/// Why and when a batch was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// The HTTP status of the refusal, if there was one.
    pub status: Option<u16>,
    /// The refusal as the agent logged it.
    pub reason: String,
    /// Unix milliseconds when it was dead-lettered.
    pub time_ms: u64,
}

/// Encoding version of [`DeadLetterInfo`].
const DEAD_LETTER_INFO_VERSION: u8 = 1;

impl DeadLetterInfo {
    /// `1 | status (u16, 0: none) | time_ms (u64) | reason bytes`, integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(11 + self.reason.len());
        v.push(DEAD_LETTER_INFO_VERSION);
        v.extend_from_slice(&self.status.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&self.time_ms.to_be_bytes());
        v.extend_from_slice(self.reason.as_bytes());
        v
    }

    /// Inverse of [`DeadLetterInfo::encode`]; `None` for bytes it cannot read.
    pub fn decode(b: &[u8]) -> Option<DeadLetterInfo> {
        if *b.first()? != DEAD_LETTER_INFO_VERSION {
            return None;
        }
        let status = u16::from_be_bytes(b.get(1..3)?.try_into().ok()?);
        Some(DeadLetterInfo {
            status: (status != 0).then_some(status),
            time_ms: u64::from_be_bytes(b.get(3..11)?.try_into().ok()?),
            reason: String::from_utf8_lossy(b.get(11..)?).into_owned(),
        })
    }
}

/// A dead-lettered batch, as [`Spool::dead_letters`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The batch's sequence number.
    pub seq: u64,
    /// Size of its frame.
    pub bytes: u64,
    /// Records in it, from the frame header.
    pub records: u32,
    /// Why and when it was refused (`None` for batches dead-lettered by older agents).
    pub info: Option<DeadLetterInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(offset: u64) -> Checkpoint {
        Checkpoint {
            offset,
            path: PathBuf::from("/var/log/a.log"),
            dev: 7,
            ino: 1234,
            fingerprint: Fingerprint::of(b"first line"),
            updated_ms: 1_800_000_000_000,
        }
    }

    fn frame(records: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(20)];
        f[16..20].copy_from_slice(&records.to_be_bytes());
        f
    }

    #[test]
    fn commit_survives_reopen_with_checkpoints_and_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        {
            let (s, moved) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
            assert!(moved.is_none());
            assert_eq!(s.next_seq().unwrap(), 1);
            s.commit(1, &frame(3, 100), &[cp(42)], &|| false).unwrap();
            s.commit(2, &frame(2, 50), &[cp(80)], &|| false).unwrap();
            s.ack(1).unwrap();
        }
        let (s, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
        assert_eq!(s.next_seq().unwrap(), 3);
        assert_eq!(s.checkpoints().unwrap(), vec![cp(80)]);
        let (seq, v) = s.next_after(0).unwrap().unwrap();
        assert_eq!((seq, v.len()), (2, 50));
        assert!(s.next_after(2).unwrap().is_none());
        assert_eq!(s.bytes(), 50);
    }

    #[test]
    fn agent_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let id = Spool::open(&path, 1 << 20, WhenFull::Block)
            .unwrap()
            .0
            .agent_id(None)
            .unwrap();
        let again = Spool::open(&path, 1 << 20, WhenFull::Block)
            .unwrap()
            .0
            .agent_id(None)
            .unwrap();
        assert_eq!(id, again);
        assert_eq!(id.len(), 32);
    }

    #[test]
    fn drop_oldest_counts_what_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Spool::open(&dir.path().join("spool"), 250, WhenFull::DropOldest).unwrap();
        s.commit(1, &frame(10, 100), &[], &|| false).unwrap();
        s.commit(2, &frame(20, 100), &[], &|| false).unwrap();
        let r = s.commit(3, &frame(30, 100), &[], &|| false).unwrap();
        assert_eq!((r.dropped_batches, r.dropped_lines), (1, 10));
        assert_eq!(s.next_after(0).unwrap().unwrap().0, 2);
        assert_eq!(s.bytes(), 200);
    }

    #[test]
    fn block_waits_for_an_ack_and_can_be_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Spool::open(&dir.path().join("spool"), 150, WhenFull::Block).unwrap();
        s.commit(1, &frame(1, 100), &[], &|| false).unwrap();
        // Full, and stop() is already true: interrupted, nothing written.
        assert!(matches!(
            s.commit(2, &frame(1, 100), &[], &|| true),
            Err(SpoolError::Interrupted)
        ));
        assert_eq!(s.len(), 1);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| s.commit(2, &frame(1, 100), &[], &|| false));
            // The waiter cannot finish until seq 1 is acknowledged.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.len() != 1 && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
            s.ack(1).unwrap();
            waiter.join().unwrap().unwrap();
        });
        assert_eq!(s.next_after(0).unwrap().unwrap().0, 2);
    }

    #[test]
    fn dead_letter_moves_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Spool::open(&dir.path().join("spool"), 1 << 20, WhenFull::Block).unwrap();
        s.commit(1, &frame(1, 30), &[], &|| false).unwrap();
        s.dead_letter(1, Some(400), "400 Bad Request: bad body")
            .unwrap();
        assert!(s.is_empty());
        assert_eq!(s.dead_letter_len(), 1);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn dead_letters_keep_why_and_when_and_can_be_purged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let before = unix_ms();
        {
            let (s, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
            s.commit(1, &frame(7, 30), &[], &|| false).unwrap();
            s.commit(2, &frame(3, 40), &[], &|| false).unwrap();
            s.commit(3, &frame(1, 50), &[], &|| false).unwrap();
            s.dead_letter(3, None, &"é".repeat(600)).unwrap();
            s.dead_letter(1, Some(413), "413 Payload Too Large: frame")
                .unwrap();
            s.dead_letter(9, Some(400), "no such batch: nothing happens")
                .unwrap();
            // A batch dead-lettered by an agent that kept no reason.
            s.dead.insert(5u64.to_be_bytes(), frame(2, 20)).unwrap();
        }
        // Reopened for inspection: what was recorded is still there.
        let s = Spool::open_existing(&path).unwrap();
        let list = s.dead_letters().unwrap();
        let short: Vec<(u64, u64, u32)> =
            list.iter().map(|d| (d.seq, d.bytes, d.records)).collect();
        assert_eq!(short, vec![(1, 30, 7), (3, 50, 1), (5, 20, 2)]);
        let info = list[0].info.clone().unwrap();
        assert_eq!(info.status, Some(413));
        assert_eq!(info.reason, "413 Payload Too Large: frame");
        assert!(info.time_ms >= before && info.time_ms <= unix_ms());
        let long = list[1].info.clone().unwrap();
        assert_eq!((long.status, long.reason.len()), (None, MAX_REASON_BYTES));
        assert_eq!(list[2].info, None);
        assert_eq!(s.dead_letter_frame(1).unwrap().unwrap().len(), 30);
        assert!(s.dead_letter_frame(2).unwrap().is_none());
        assert_eq!(s.len(), 1, "batch 2 is still queued");
        assert_eq!(s.purge_dead_letters().unwrap(), 3);
        assert!(s.dead_letters().unwrap().is_empty());
        assert!(s.dead_info.is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn open_existing_refuses_a_missing_or_locked_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        assert!(matches!(
            Spool::open_existing(&path),
            Err(SpoolError::Missing(_))
        ));
        assert!(!path.exists(), "nothing created");
        let (held, _) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
        // sled's lock is a flock on its own open file, so a second open is refused even
        // from the same process.
        assert!(matches!(
            Spool::open_existing(&path),
            Err(SpoolError::Locked(_))
        ));
        drop(held);
        assert!(Spool::open_existing(&path).is_ok());
        let locked = sled::Error::Io(std::io::Error::other(
            "could not acquire lock on \"/x/db\": Os { code: 11 }",
        ));
        assert!(is_lock_error(&locked));
        assert!(!is_lock_error(&sled::Error::Unsupported("x".into())));
    }

    #[test]
    fn dead_letter_info_encoding() {
        let i = DeadLetterInfo {
            status: Some(400),
            reason: "bad".into(),
            time_ms: 1_800_000_000_000,
        };
        assert_eq!(DeadLetterInfo::decode(&i.encode()), Some(i));
        assert_eq!(DeadLetterInfo::decode(b""), None);
        assert_eq!(DeadLetterInfo::decode(b"\x02abcdefghijkl"), None);
        assert_eq!(DeadLetterInfo::decode(b"\x01\x00"), None);
    }

    #[test]
    fn a_damaged_spool_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        std::fs::create_dir_all(&path).unwrap();
        // sled keeps its config in `conf` and data in `db`; garbage in both.
        std::fs::write(path.join("conf"), b"\xff\xfe garbage").unwrap();
        std::fs::write(path.join("db"), vec![0xa5u8; 4096]).unwrap();
        let (s, moved) = Spool::open(&path, 1 << 20, WhenFull::Block).unwrap();
        let moved = moved.expect("damaged spool should have been moved aside");
        assert!(moved.exists());
        assert!(s.is_empty());
        s.commit(1, &frame(1, 10), &[], &|| false).unwrap();
    }

    #[test]
    fn checkpoint_encoding_round_trips() {
        let c = cp(u64::MAX - 3);
        assert_eq!(Checkpoint::decode(&c.key(), &c.encode()), Some(c));
        assert_eq!(Checkpoint::decode(&[0; 16], b"\x02abc"), None);
        assert_eq!(Checkpoint::decode(&[0; 16], b"\x09abc"), None);
    }

    #[test]
    fn version_1_checkpoints_are_still_read() {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&500u64.to_be_bytes());
        v1.extend_from_slice(b"/var/log/old.log");
        let c = Checkpoint::decode(&file_key(3, 99), &v1).unwrap();
        assert_eq!((c.offset, c.dev, c.ino), (500, 3, 99));
        assert_eq!(c.path, PathBuf::from("/var/log/old.log"));
        assert_eq!(c.fingerprint.len, 0);
    }
}
