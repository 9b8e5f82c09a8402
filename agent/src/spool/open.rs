//! Opening the spool: sled's lock and settings, the format version and the upgrade from
//! version 1, and the segment files found on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::segment::{self, Location, Writer};
use super::{
    frame_record_count, roll_size, seq_of, SegmentEntry, Spool, SpoolError, Table,
    MAX_SEGMENT_BYTES,
};
use crate::config::WhenFull;

/// The on-disk format this agent writes (meta `format`).
const FORMAT_VERSION: u8 = 2;
/// The format whose frames were in the `batches` tree.
const FORMAT_V1: u8 = 1;
/// The tree version 1 kept its frames in.
pub(super) const V1_BATCHES: &str = "batches";

/// sled's page cache: it holds index entries, checkpoints and metadata only.
const SLED_CACHE_BYTES: u64 = 1 << 20;
/// sled's segment (and I/O buffer) size for new spools. A spool created by an earlier
/// agent keeps the size in its `conf`, which sled refuses to change.
pub(super) const SLED_SEGMENT_BYTES: usize = 128 << 10;

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

pub(super) use logferry_shared::store::is_lock_error;

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
        Self::open_with(dir, max_bytes, when_full, roll_size(max_bytes))
    }

    /// [`Spool::open`] with segments rolled at `roll_at` bytes (tests use small ones).
    pub(super) fn open_with(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        roll_at: u64,
    ) -> Result<(Spool, Option<PathBuf>), SpoolError> {
        match Self::open_waiting_for_lock(dir, max_bytes, when_full, roll_at) {
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
                let s = Self::open_inner(dir, max_bytes, when_full, roll_at)?;
                Ok((s, Some(aside)))
            }
            Err(e) => Err(e),
        }
    }

    /// Another process (or a previous instance still exiting) may hold sled's lock; wait
    /// [`LOCK_WAIT`](logferry_shared::store::LOCK_WAIT) for it before giving up with the
    /// I/O error, which names the lock.
    fn open_waiting_for_lock(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        roll_at: u64,
    ) -> Result<Spool, SpoolError> {
        logferry_shared::store::open_waiting_for_lock(
            &dir.display(),
            logferry_shared::store::LOCK_WAIT,
            || Self::open_inner(dir, max_bytes, when_full, roll_at),
            |e| matches!(e, SpoolError::Storage(e) if is_lock_error(e)),
        )
    }

    /// Opens an existing spool for inspection (the `dead-letter` command): at most a second
    /// of waiting for the lock, no moving aside.
    pub fn open_existing(dir: &Path) -> Result<Spool, SpoolError> {
        if !dir.join("conf").exists() {
            return Err(SpoolError::Missing(dir.to_owned()));
        }
        // A moment for a holder that is just closing (sled lets its lock go shortly after
        // the database is dropped); a running agent's lock is reported as such.
        let opened = logferry_shared::store::open_waiting_for_lock(
            &dir.display(),
            std::time::Duration::from_secs(1),
            || Self::open_inner(dir, u64::MAX, WhenFull::Block, MAX_SEGMENT_BYTES),
            |e| matches!(e, SpoolError::Storage(e) if is_lock_error(e)),
        );
        match opened {
            Err(SpoolError::Storage(e)) if is_lock_error(&e) => {
                Err(SpoolError::Locked(dir.to_owned()))
            }
            other => other,
        }
    }

    fn open_inner(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        roll_at: u64,
    ) -> Result<Spool, SpoolError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .segment_size(sled_segment_size(dir))
            .flush_every_ms(Some(1000))
            .open()?;
        // sled holds the lock from here on: no other process touches the segments.
        let meta = db.open_tree("meta")?;
        match meta.get("format")? {
            Some(v) if v.as_ref() == [FORMAT_VERSION] => {}
            Some(v) if v.as_ref() != [FORMAT_V1] => {
                return Err(SpoolError::Format(v.first().copied().unwrap_or(0)));
            }
            // New, or version 1: written as version 2 before anything is moved, so an
            // older agent never reads a half-upgraded spool.
            _ => {
                meta.insert("format", &[FORMAT_VERSION][..])?;
                db.flush()?;
            }
        }
        let segments_dir = dir.join(segment::DIR);
        if !segments_dir.is_dir() {
            std::fs::create_dir_all(&segments_dir).map_err(SpoolError::Segments)?;
            segment::sync_dir(dir).map_err(SpoolError::Segments)?;
        }
        let found = segment::list(&segments_dir).map_err(SpoolError::Segments)?;
        let mut writer = Writer::new(
            segments_dir.clone(),
            roll_at,
            found.last().copied().unwrap_or(0),
        );
        let index = db.open_tree("index")?;
        if db.tree_names().iter().any(|n| n == V1_BATCHES.as_bytes()) {
            upgrade_v1(&db, &index, &mut writer)?;
        }

        let mut live: BTreeMap<u64, u64> = BTreeMap::new();
        let (mut bytes, mut batches) = (0u64, 0u64);
        for item in index.iter() {
            let (_, v) = item?;
            batches += 1;
            if let Some(loc) = Location::decode(&v) {
                bytes += u64::from(loc.len);
                *live.entry(loc.segment).or_default() += 1;
            }
        }
        let mut table = Table::default();
        let mut removed = 0usize;
        for id in segment::list(&segments_dir).map_err(SpoolError::Segments)? {
            match live.remove(&id) {
                Some(n) => {
                    let file = segment::open(&segments_dir, id).map_err(SpoolError::Segments)?;
                    table.segments.insert(
                        id,
                        SegmentEntry {
                            file: Arc::new(file),
                            live: n,
                        },
                    );
                }
                None => {
                    // Nothing indexed in it: fully acknowledged, or written by a commit
                    // that never happened.
                    std::fs::remove_file(segment::path(&segments_dir, id))
                        .map_err(SpoolError::Segments)?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            segment::sync_dir(&segments_dir).map_err(SpoolError::Segments)?;
        }
        if !live.is_empty() {
            tracing::error!(segments = ?live.keys().collect::<Vec<_>>(),
                "spooled batches point at segment files that are gone; they will be dead-lettered as damaged");
        }
        Ok(Spool {
            checkpoints: db.open_tree("checkpoints")?,
            dead: db.open_tree("dead_letter")?,
            dead_info: db.open_tree("dead_letter_info")?,
            index,
            meta,
            db,
            segments_dir,
            writer: Mutex::new(writer),
            table: Mutex::new(table),
            bytes: AtomicU64::new(bytes),
            batches: AtomicU64::new(batches),
            damaged: AtomicU64::new(0),
            max_bytes,
            when_full,
            room: (Mutex::new(()), Condvar::new()),
            blocked: AtomicBool::new(false),
            sending: Mutex::new(Default::default()),
        })
    }
}

/// Moves the frames of a version 1 spool (tree `batches`) into a segment: all appended
/// and synced first, then one transaction per batch swaps the frame for its index entry.
/// A crash part-way leaves each batch in exactly one of the two trees; the next open
/// moves the rest.
fn upgrade_v1(db: &sled::Db, index: &sled::Tree, writer: &mut Writer) -> Result<(), SpoolError> {
    let legacy = db.open_tree(V1_BATCHES)?;
    let mut moved = Vec::new();
    for item in legacy.iter() {
        let (k, v) = item?;
        let a = writer
            .append(seq_of(&k), &v, frame_record_count(&v))
            .map_err(SpoolError::Segments)?;
        moved.push((k, a.location.encode()));
    }
    writer.seal().map_err(SpoolError::Segments)?;
    for (k, loc) in &moved {
        (&legacy, index)
            .transaction(|(l, i)| {
                l.remove(k)?;
                i.insert(k, &loc[..])?;
                Ok::<(), ConflictableTransactionError<SpoolError>>(())
            })
            .map_err(SpoolError::from)?;
    }
    db.flush()?;
    drop(legacy);
    db.drop_tree(V1_BATCHES)?;
    db.flush()?;
    tracing::info!(
        batches = moved.len(),
        "spool upgraded from format 1: batches moved into segment files"
    );
    Ok(())
}

/// sled's segment size for the spool in `dir`: the one its `conf` records, if it has
/// one (sled refuses to open with another), else [`SLED_SEGMENT_BYTES`].
fn sled_segment_size(dir: &Path) -> usize {
    let recorded = std::fs::read(dir.join("conf")).ok().and_then(|conf| {
        conf.split(|b| *b == b'\n')
            .find_map(|l| l.strip_prefix(b"segment_size: "))
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
    });
    recorded
        .filter(|n| n.is_power_of_two() && (256..=1 << 24).contains(n))
        .unwrap_or(SLED_SEGMENT_BYTES)
}
