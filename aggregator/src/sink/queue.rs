//! Per-sink durable queues for sinks that send to a service (see [`super::remote`]).
//!
//! # How events get from the inbox to a service
//!
//! The pipeline treats a queued sink like a file: [`QueueSink`] implements [`Sink`], so
//! the lines routed to it are *written* to its queue in inbox order, *flushed* (sled
//! flush) at the end of each round, and the queue's position (the next entry key) is
//! recorded with the inbox's progress in the same transaction that removes the round's
//! batches. After a crash the queue is cut back to the recorded position, exactly as a
//! file sink is, so every accepted line enters the queue exactly once.
//!
//! A delivery task per sink ([`super::delivery`]) takes entries from the front of the
//! queue, but only entries below the *committed* position: the one recorded in the inbox.
//! An entry written in a round that has not completed may still be cut back, so it is
//! never sent. Entries are removed once each of their events was delivered or
//! dead-lettered; the number of events already settled in the first entry is kept too
//! (the *cursor*), so after a restart delivery resumes where it left off, give or take the
//! one batch that was in flight (delivery is at least once).
//!
//! # Layout
//!
//! All queues live in one sled database (`<data_dir>/queues`): per sink a tree of entries
//! (`q/<name>`: big-endian u64 key → [`ENTRY_VERSION`], enqueue time in ms (u64 BE),
//! event count (u32 BE), then the JSON lines, each ending in `\n`), a tree of dead letters
//! (`dead/<name>`: u64 key → JSON `{"at","reason","event"}`) and the cursor (in `meta`).
//!
//! # Limits
//!
//! `max_bytes` bounds the bytes of queued entries. With `when_full = "block"`,
//! [`Sink::ready`] is false while the queue is at or over it: the pipeline stops taking
//! batches, so the inbox fills and ingest answers 429 (the round in flight still lands,
//! so the queue may exceed the bound by at most one round). With `"drop_oldest"` the
//! oldest entries not being delivered are removed (counted in
//! `logferry_sink_dropped_events_total`, logged). Dead letters are bounded by
//! `dead_letter_max_bytes`; beyond it the oldest are evicted (counted).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::remote::{Outcome, Pending};
use super::{Position, Sink};

/// `[sinks.NAME.queue]`: the sink's own durable queue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most bytes of events the queue holds (default 256 MiB).
    pub max_bytes: u64,
    /// What happens when it is full: `block` (default: the pipeline stops taking batches,
    /// so the inbox fills and ingest answers 429) or `drop_oldest` (counted, logged).
    pub when_full: WhenFull,
    /// How long delivery waits for more events to fill a batch when fewer are queued.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
    /// `/readyz` reports the sink stuck (503) when its oldest queued event has waited
    /// longer than this (default 5 minutes).
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
    /// Most bytes of dead letters kept (default 64 MiB); the oldest are evicted beyond it.
    pub dead_letter_max_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 256 << 20,
            when_full: WhenFull::Block,
            batch_wait: Duration::from_secs(1),
            stuck_after: Duration::from_secs(300),
            dead_letter_max_bytes: 64 << 20,
        }
    }
}

/// Smallest `max_bytes` (and `dead_letter_max_bytes`) accepted: one largest line must fit.
pub const MIN_QUEUE_BYTES: u64 = 1 << 20;

impl QueueConfig {
    /// Checks the limits: (the key at fault, what is wrong) when they make no sense.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, bytes) in [
            ("max_bytes", self.max_bytes),
            ("dead_letter_max_bytes", self.dead_letter_max_bytes),
        ] {
            if bytes < MIN_QUEUE_BYTES {
                return Err((
                    key,
                    format!("{bytes} is below the smallest queue, {MIN_QUEUE_BYTES} bytes (1 MiB)"),
                ));
            }
        }
        if self.stuck_after.is_zero() {
            return Err(("stuck_after", "must be more than 0".to_owned()));
        }
        if self.batch_wait >= self.stuck_after {
            return Err((
                "batch_wait",
                format!(
                    "{} is not shorter than stuck_after ({}): every waiting batch would make the sink look stuck",
                    humantime::format_duration(self.batch_wait),
                    humantime::format_duration(self.stuck_after)
                ),
            ));
        }
        Ok(())
    }
}

/// What to do when it is full (the same setting as everywhere else).
pub use logferry_shared::config::WhenFull;

/// `[sinks.NAME.retry]`: backoff between failed deliveries (exponential, with jitter).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// The first wait.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl RetryConfig {
    /// Checks the waits: (the key at fault, what is wrong) when they make no sense.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.initial_backoff.is_zero() {
            return Err(("initial_backoff", "must be more than 0".to_owned()));
        }
        if self.max_backoff.is_zero() {
            return Err(("max_backoff", "must be more than 0".to_owned()));
        }
        if self.initial_backoff > self.max_backoff {
            return Err((
                "initial_backoff",
                format!(
                    "{} is longer than max_backoff ({})",
                    humantime::format_duration(self.initial_backoff),
                    humantime::format_duration(self.max_backoff)
                ),
            ));
        }
        Ok(())
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The version byte that starts every entry.
pub const ENTRY_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 4;
/// Lines are gathered into entries of about this size (a round may hold several).
const ENTRY_BYTES: usize = 1 << 20;

/// Errors from a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// sled failed (I/O, disk full, corruption).
    #[error("sink queue storage: {0}")]
    Storage(#[from] sled::Error),
    /// An entry written by an unknown format version, or damaged.
    #[error("sink queue entry {0} is damaged or of an unknown version")]
    Damaged(u64),
}

impl From<sled::transaction::TransactionError<QueueError>> for QueueError {
    fn from(e: sled::transaction::TransactionError<QueueError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => QueueError::Storage(e),
        }
    }
}

/// The database that holds every sink's queue (`<data_dir>/queues`).
#[derive(Debug, Clone)]
pub struct QueueStore {
    db: sled::Db,
}

impl QueueStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<QueueStore, QueueError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(16 << 20)
            .flush_every_ms(Some(500));
        Ok(QueueStore {
            db: logferry_shared::store::open(&config, &dir.display())?,
        })
    }

    /// Names of the sinks that have a queue tree here, configured or not.
    pub fn names(&self) -> Vec<String> {
        self.db
            .tree_names()
            .iter()
            .filter_map(|n| {
                std::str::from_utf8(n)
                    .ok()?
                    .strip_prefix("q/")
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Events waiting in the queue of `name` without opening it as a sink's (for queues
    /// whose sink is no longer configured).
    pub fn waiting(&self, name: &str) -> Result<u64, QueueError> {
        let tree = self.db.open_tree(format!("q/{name}"))?;
        let mut events = 0;
        for item in tree.iter() {
            let (k, v) = item?;
            events += u64::from(parse_entry(key_of(&k), &v)?.1);
        }
        Ok(events)
    }

    /// The queue of sink `name`, reading back what it holds.
    pub fn queue(&self, name: &str, config: &QueueConfig) -> Result<Arc<SinkQueue>, QueueError> {
        SinkQueue::open(self, name, config).map(Arc::new)
    }
}

/// Sizes of what a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueLevel {
    /// Events queued.
    pub events: u64,
    /// Bytes of queued entries.
    pub bytes: u64,
    /// When the oldest queued entry was written (ms since the epoch); `None` when empty.
    pub oldest_ms: Option<u64>,
    /// Dead letters kept.
    pub dead_letters: u64,
}

#[derive(Debug, Default)]
struct QState {
    next_key: u64,
    bytes: u64,
    events: u64,
    /// Enqueue time of the first entry.
    oldest_ms: Option<u64>,
    /// Entries below this key are being delivered: `drop_oldest` leaves them alone.
    delivering_until: u64,
    dead_next: u64,
    dead_bytes: u64,
    dead_count: u64,
}

/// One sink's durable queue. See the module docs.
#[derive(Debug)]
pub struct SinkQueue {
    name: String,
    config: QueueConfig,
    db: sled::Db,
    entries: sled::Tree,
    dead: sled::Tree,
    meta: sled::Tree,
    cursor_key: Vec<u8>,
    dead_next_key: Vec<u8>,
    state: Mutex<QState>,
    /// Entries below this key may be delivered.
    committed: AtomicU64,
    /// Signalled when `committed` moves.
    pub(crate) wake: tokio::sync::Notify,
}

/// Events taken from a queue for one delivery: where each came from, so that
/// [`SinkQueue::settle`] can remove what is done.
#[derive(Debug, Default)]
pub struct Taken {
    /// The events, in queue order.
    pub pending: Vec<Pending>,
    /// Per entry touched: (key, index of its first line taken, lines taken, lines in it).
    spans: Vec<(u64, usize, usize, usize)>,
    /// Enqueue time of the first entry taken.
    pub oldest_ms: Option<u64>,
    /// Bytes of lines taken.
    pub bytes: usize,
}

impl Taken {
    /// True when nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What [`SinkQueue::settle`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Events delivered.
    pub delivered: u64,
    /// Events stored as dead letters.
    pub dead_lettered: u64,
    /// Older dead letters evicted to stay under the bound.
    pub evicted: u64,
}

fn be(key: u64) -> [u8; 8] {
    key.to_be_bytes()
}

fn key_of(bytes: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    let n = bytes.len().min(8);
    k[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(k)
}

/// (enqueue ms, events, lines) of an entry.
fn parse_entry(key: u64, v: &[u8]) -> Result<(u64, u32, &[u8]), QueueError> {
    if v.len() < HEADER_LEN || v[0] != ENTRY_VERSION {
        return Err(QueueError::Damaged(key));
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&v[1..9]);
    let mut n = [0u8; 4];
    n.copy_from_slice(&v[9..13]);
    Ok((
        u64::from_be_bytes(ms),
        u32::from_be_bytes(n),
        &v[HEADER_LEN..],
    ))
}

impl SinkQueue {
    fn open(store: &QueueStore, name: &str, config: &QueueConfig) -> Result<SinkQueue, QueueError> {
        let entries = store.db.open_tree(format!("q/{name}"))?;
        let dead = store.db.open_tree(format!("dead/{name}"))?;
        let meta = store.db.open_tree("meta")?;
        let mut st = QState::default();
        for item in entries.iter() {
            let (k, v) = item?;
            let key = key_of(&k);
            match parse_entry(key, &v) {
                Ok((ms, n, _)) => {
                    st.oldest_ms.get_or_insert(ms);
                    st.events += u64::from(n);
                    st.bytes += v.len() as u64;
                }
                Err(e) => {
                    tracing::error!(sink = name, error = %e, "removing a damaged queue entry");
                    entries.remove(k)?;
                    continue;
                }
            }
            st.next_key = key + 1;
        }
        for item in dead.iter() {
            let (k, v) = item?;
            st.dead_next = key_of(&k) + 1;
            st.dead_bytes += v.len() as u64;
            st.dead_count += 1;
        }
        let cursor_key = format!("cursor/{name}").into_bytes();
        // Dead-letter ids never go back, even when every dead letter was purged.
        if let Some(v) = meta.get(format!("deadnext/{name}"))? {
            st.dead_next = st.dead_next.max(key_of(&v));
        }
        // Events the cursor says are settled in the first entry are not waiting.
        if let (Some(v), Some(first)) = (
            meta.get(&cursor_key)?,
            entries.first()?.map(|(k, _)| key_of(&k)),
        ) {
            if v.len() == 16 && key_of(&v[..8]) == first {
                st.events = st.events.saturating_sub(key_of(&v[8..]));
            }
        }
        Ok(SinkQueue {
            name: name.to_owned(),
            config: config.clone(),
            db: store.db.clone(),
            entries,
            dead,
            meta,
            cursor_key,
            dead_next_key: format!("deadnext/{name}").into_bytes(),
            state: Mutex::new(st),
            // Nothing may be delivered until the pipeline has cut the queue back to its
            // recorded position and committed it (pipeline::rewind_at_start): entries of
            // a round that never completed must not be sent.
            committed: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// How much it holds.
    pub fn level(&self) -> QueueLevel {
        let st = self.state();
        QueueLevel {
            events: st.events,
            bytes: st.bytes,
            oldest_ms: st.oldest_ms,
            dead_letters: st.dead_count,
        }
    }

    /// True when `when_full = "block"` and the queue is at or over `max_bytes`.
    pub fn is_full(&self) -> bool {
        let bytes = self.state().bytes;
        self.config.when_full == WhenFull::Block && bytes > 0 && bytes >= self.config.max_bytes
    }

    /// Appends one entry of `events` JSON lines; returns how many events `drop_oldest`
    /// removed to make room.
    pub fn append(&self, lines: &[u8], events: u32, now_ms: u64) -> Result<u64, QueueError> {
        let mut value = Vec::with_capacity(HEADER_LEN + lines.len());
        value.push(ENTRY_VERSION);
        value.extend_from_slice(&now_ms.to_be_bytes());
        value.extend_from_slice(&events.to_be_bytes());
        value.extend_from_slice(lines);
        let mut st = self.state();
        let key = st.next_key;
        self.entries.insert(be(key), value.as_slice())?;
        st.next_key = key + 1;
        st.bytes += value.len() as u64;
        st.events += u64::from(events);
        st.oldest_ms.get_or_insert(now_ms);
        let mut dropped = 0;
        if self.config.when_full == WhenFull::DropOldest {
            while st.bytes > self.config.max_bytes {
                let from = be(st.delivering_until);
                let Some((k, v)) = self.entries.range(from..be(key)).next().transpose()? else {
                    break;
                };
                let entry = key_of(&k);
                let n = parse_entry(entry, &v).map_or(0, |(_, n, _)| u64::from(n));
                // Events of it the cursor says were delivered are neither waiting nor dropped.
                let n = n.saturating_sub(self.cursor(entry)? as u64);
                self.entries.remove(&k)?;
                st.bytes = st.bytes.saturating_sub(v.len() as u64);
                st.events = st.events.saturating_sub(n);
                dropped += n;
            }
            if dropped > 0 {
                st.oldest_ms = self.first_entry_ms()?;
                tracing::warn!(sink = %self.name, events = dropped, "sink queue full: dropped its oldest events");
            }
        }
        Ok(dropped)
    }

    fn first_entry_ms(&self) -> Result<Option<u64>, QueueError> {
        Ok(match self.entries.first()? {
            Some((k, v)) => Some(parse_entry(key_of(&k), &v)?.0),
            None => None,
        })
    }

    /// Makes everything written so far durable without blocking a thread (after
    /// [`SinkQueue::settle`], so a crash resends at most the batch in flight).
    pub async fn flush_async(&self) -> Result<(), QueueError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Makes every append durable.
    pub fn flush(&self) -> Result<(), QueueError> {
        self.db.flush()?;
        Ok(())
    }

    /// The next entry key: what the pipeline records as the queue's position.
    pub fn position(&self) -> u64 {
        self.state().next_key
    }

    /// Removes every entry at or after `position` (never committed, so never delivered)
    /// and makes `position` the committed one. The entries go in one atomic batch: an
    /// error removes none of them and changes nothing here, and the pipeline writes
    /// nothing until a later rewind succeeds.
    pub fn rewind_to(&self, position: u64) -> Result<(), QueueError> {
        let mut st = self.state();
        let mut batch = sled::Batch::default();
        let (mut removed, mut bytes, mut events) = (0u64, 0u64, 0u64);
        for item in self.entries.range(be(position)..) {
            let (k, v) = item?;
            let n = parse_entry(key_of(&k), &v).map_or(0, |(_, n, _)| n);
            batch.remove(k);
            bytes += v.len() as u64;
            events += u64::from(n);
            removed += 1;
        }
        if removed > 0 {
            self.entries.apply_batch(batch)?;
            st.bytes = st.bytes.saturating_sub(bytes);
            st.events = st.events.saturating_sub(events);
            st.oldest_ms = self.first_entry_ms()?;
            tracing::info!(sink = %self.name, entries = removed, "cut the sink queue back to its recorded position");
        }
        // Every key below `position` was assigned before it was recorded; keys at or
        // after it were never committed, so they are free again.
        st.next_key = position;
        drop(st);
        self.commit(position);
        Ok(())
    }

    /// Entries below `position` were recorded with the inbox's progress: they may be
    /// delivered.
    pub fn commit(&self, position: u64) {
        self.committed.store(position, Ordering::Release);
        self.wake.notify_one();
    }

    /// The committed position.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Events settled in the first entry, if the cursor points at it.
    fn cursor(&self, first_key: u64) -> Result<usize, QueueError> {
        Ok(match self.meta.get(&self.cursor_key)? {
            Some(v) if v.len() == 16 => {
                let (k, n) = (key_of(&v[..8]), key_of(&v[8..]));
                if k == first_key {
                    n as usize
                } else {
                    0
                }
            }
            _ => 0,
        })
    }

    /// Takes up to `max_events` events and about `max_bytes` bytes (at least one event)
    /// from the front of the committed part of the queue, without removing them.
    pub fn take(&self, max_events: usize, max_bytes: usize) -> Result<Taken, QueueError> {
        let committed = self.committed();
        // Until this take knows how far it reads, drop_oldest leaves every committed
        // entry alone.
        self.state().delivering_until = committed;
        let mut taken = Taken::default();
        let mut first = true;
        let mut until = 0;
        for item in self.entries.range(..be(committed)) {
            if taken.pending.len() >= max_events
                || (!taken.pending.is_empty() && taken.bytes >= max_bytes)
            {
                break;
            }
            let (k, v) = item?;
            let key = key_of(&k);
            let (ms, _, lines) = match parse_entry(key, &v) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Never hold the sink back for one damaged entry.
                    tracing::error!(sink = %self.name, error = %e, "removing a damaged queue entry");
                    self.entries.remove(&k)?;
                    let mut st = self.state();
                    st.bytes = st.bytes.saturating_sub(v.len() as u64);
                    continue;
                }
            };
            let skip = if first { self.cursor(key)? } else { 0 };
            first = false;
            taken.oldest_ms.get_or_insert(ms);
            let all: Vec<&[u8]> = lines
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let mut n = 0;
            for line in all.iter().skip(skip) {
                let full = taken.pending.len() >= max_events
                    || (!taken.pending.is_empty() && taken.bytes + line.len() > max_bytes);
                if full {
                    break;
                }
                taken.bytes += line.len();
                // One copy per event: entries are read from sled per delivery.
                taken
                    .pending
                    .push(Pending::new(bytes::Bytes::copy_from_slice(line)));
                n += 1;
            }
            if n == 0 && skip < all.len() {
                break;
            }
            taken.spans.push((key, skip, n, all.len()));
            until = key + 1;
            if skip + n < all.len() {
                break;
            }
        }
        self.state().delivering_until = until;
        Ok(taken)
    }

    /// Records the outcome of a delivery: the settled events at the front of `taken` are
    /// done (delivered, or stored as dead letters with their reasons); entries with every
    /// event done are removed and the cursor moves past the rest, in one transaction.
    /// Events after the first one still waiting stay queued (they are taken again).
    pub fn settle(&self, taken: &Taken, now_ms: u64) -> Result<Settled, QueueError> {
        let mut out = Settled::default();
        let mut st = self.state();
        let mut remove = Vec::new();
        let mut cursor: Option<(u64, u64)> = None;
        let mut dead = Vec::new();
        let mut i = 0;
        let mut bytes_removed = 0u64;
        let mut events_removed = 0u64;
        'spans: for &(key, skip, n, total) in &taken.spans {
            let mut done = 0;
            for p in &taken.pending[i..i + n] {
                match &p.outcome {
                    Outcome::Waiting => break,
                    Outcome::Delivered => out.delivered += 1,
                    Outcome::Rejected(reason) => {
                        out.dead_lettered += 1;
                        dead.push(dead_letter(now_ms, reason, &p.line));
                    }
                }
                done += 1;
            }
            i += n;
            events_removed += done as u64;
            if skip + done == total {
                remove.push(key);
            } else {
                cursor = Some((key, (skip + done) as u64));
                break 'spans;
            }
        }
        for key in &remove {
            if let Some(v) = self.entries.get(be(*key))? {
                bytes_removed += v.len() as u64;
            }
        }
        let dead_first = st.dead_next;
        (&self.entries, &self.dead, &self.meta)
            .transaction(|(e, d, m)| {
                for key in &remove {
                    e.remove(&be(*key))?;
                }
                for (j, rec) in dead.iter().enumerate() {
                    d.insert(&be(dead_first + j as u64), rec.as_slice())?;
                }
                if !dead.is_empty() {
                    m.insert(
                        self.dead_next_key.as_slice(),
                        &be(dead_first + dead.len() as u64)[..],
                    )?;
                }
                match cursor {
                    Some((k, n)) => {
                        let mut v = [0u8; 16];
                        v[..8].copy_from_slice(&be(k));
                        v[8..].copy_from_slice(&be(n));
                        m.insert(self.cursor_key.as_slice(), &v[..])?;
                    }
                    None => {
                        m.remove(self.cursor_key.as_slice())?;
                    }
                }
                Ok::<(), ConflictableTransactionError<QueueError>>(())
            })
            .map_err(QueueError::from)?;
        st.dead_next = dead_first + dead.len() as u64;
        st.dead_bytes += dead.iter().map(|d| d.len() as u64).sum::<u64>();
        st.dead_count += dead.len() as u64;
        while st.dead_bytes > self.config.dead_letter_max_bytes {
            let Some((k, v)) = self.dead.pop_min()? else {
                break;
            };
            let _ = k;
            st.dead_bytes = st.dead_bytes.saturating_sub(v.len() as u64);
            st.dead_count = st.dead_count.saturating_sub(1);
            out.evicted += 1;
        }
        st.bytes = st.bytes.saturating_sub(bytes_removed);
        st.events = st.events.saturating_sub(events_removed);
        st.delivering_until = 0;
        if !remove.is_empty() {
            st.oldest_ms = self.first_entry_ms()?;
        }
        Ok(out)
    }

    /// Dead letters, oldest first: at most `limit` after key `after`, each with its key.
    pub fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, serde_json::Value)>, QueueError> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        for item in self.dead.range(be(start)..).take(limit) {
            let (k, v) = item?;
            let value = serde_json::from_slice(&v)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&v).into()));
            out.push((key_of(&k), value));
        }
        Ok(out)
    }

    /// Removes every dead letter; returns how many there were.
    pub fn purge_dead_letters(&self) -> Result<u64, QueueError> {
        let mut st = self.state();
        let n = st.dead_count;
        self.dead.clear()?;
        st.dead_count = 0;
        st.dead_bytes = 0;
        Ok(n)
    }
}

/// A dead letter's stored JSON: when, why, and the event itself (the event's JSON, or a
/// string when it is not valid JSON).
fn dead_letter(now_ms: u64, reason: &str, line: &[u8]) -> Vec<u8> {
    let at = logferry_shared::event::Timestamp::from_millis(now_ms);
    let reason = serde_json::Value::String(reason.to_owned());
    let event = match serde_json::from_slice::<&serde_json::value::RawValue>(line) {
        Ok(raw) => raw.get().to_owned(),
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(line).into()).to_string(),
    };
    format!(r#"{{"at":"{at}","reason":{reason},"event":{event}}}"#).into_bytes()
}

/// The pipeline's side of a queued sink: [`Sink::write`] gathers lines, [`Sink::flush`]
/// appends them as entries and makes them durable, positions are entry keys.
#[derive(Debug)]
pub struct QueueSink {
    queue: Arc<SinkQueue>,
    buf: Vec<u8>,
    events: u32,
    /// Events `drop_oldest` removed, reported to the metrics by the delivery side.
    dropped: Arc<AtomicU64>,
}

impl QueueSink {
    /// The pipeline side of `queue`; `dropped` counts what `drop_oldest` removes.
    pub fn new(queue: Arc<SinkQueue>, dropped: Arc<AtomicU64>) -> QueueSink {
        QueueSink {
            queue,
            buf: Vec::new(),
            events: 0,
            dropped,
        }
    }

    fn append_buffered(&mut self) -> std::io::Result<()> {
        if self.events == 0 {
            return Ok(());
        }
        let now_ms = logferry_shared::event::Timestamp::now().as_millis().max(0) as u64;
        let dropped = self
            .queue
            .append(&self.buf, self.events, now_ms)
            .map_err(std::io::Error::other)?;
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.buf.clear();
        self.events = 0;
        Ok(())
    }
}

impl Sink for QueueSink {
    fn name(&self) -> &str {
        self.queue.name()
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(lines);
        let n = memchr::memchr_iter(b'\n', lines).count();
        self.events = self.events.saturating_add(n as u32);
        if self.buf.len() >= ENTRY_BYTES {
            self.append_buffered()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.append_buffered()?;
        self.queue.flush().map_err(std::io::Error::other)
    }

    fn position(&self) -> Option<Position> {
        Some(Position::at(self.queue.position()))
    }

    fn position_key(&self) -> String {
        format!("queue/{}", self.queue.name())
    }

    fn rewind_to(&mut self, position: Position) -> std::io::Result<()> {
        self.buf.clear();
        self.events = 0;
        self.queue
            .rewind_to(position.offset)
            .map_err(std::io::Error::other)
    }

    fn committed(&mut self, position: Position) {
        self.queue.commit(position.offset);
    }

    fn ready(&self) -> bool {
        !self.queue.is_full()
    }
}
