//! The durable delivery queue (a sled tree): notifications wait here until a notifier
//! has delivered them, across restarts.
//!
//! Keys are a big-endian sequence number (delivery order); values are a format version
//! byte then JSON [`Pending`]. An entry is written (and flushed) before delivery is
//! tried, and removed only after the notifier succeeded or the entry expired. Bounded by
//! `max_entries`: beyond it new notifications are refused and counted.

use serde::{Deserialize, Serialize};

use crate::rules::Notification;

const FORMAT_VERSION: u8 = 1;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// sled failed.
    #[error("notification queue: {0}")]
    Storage(#[from] sled::Error),
    /// An entry cannot be encoded.
    #[error("notification queue: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// What to send.
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it was queued, ms.
    pub queued_ms: u64,
    /// Not before this time, ms.
    pub next_ms: u64,
    /// The last error, for the logs and the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The queue.
#[derive(Debug, Clone)]
pub struct DeliveryQueue {
    db: sled::Db,
    tree: sled::Tree,
    max_entries: usize,
}

impl DeliveryQueue {
    /// The queue in the `notifications` tree of `db`, holding at most `max_entries`.
    pub fn new(db: sled::Db, max_entries: usize) -> Result<DeliveryQueue, QueueError> {
        Ok(DeliveryQueue {
            tree: db.open_tree("notifications")?,
            db,
            max_entries: max_entries.max(1),
        })
    }

    /// Opens a queue in its own sled database at `dir` (the aggregator uses
    /// `<data_dir>/notifications`).
    pub fn open(dir: &std::path::Path, max_entries: usize) -> Result<DeliveryQueue, QueueError> {
        DeliveryQueue::new(
            logferry_shared::store::open(&sled::Config::new().path(dir), &dir.display())?,
            max_entries,
        )
    }

    /// Queues `n` durably; false when the queue is full.
    pub fn push(&self, n: Notification, now_ms: u64) -> Result<bool, QueueError> {
        if self.tree.len() >= self.max_entries {
            return Ok(false);
        }
        // Unique and increasing across restarts: the key order is the queue order.
        let id = self.db.generate_id()?;
        let key = id.to_be_bytes();
        let p = Pending {
            notification: n,
            attempts: 0,
            queued_ms: now_ms,
            next_ms: now_ms,
            last_error: None,
        };
        self.tree.insert(key, encode(&p)?)?;
        self.tree.flush()?;
        Ok(true)
    }

    /// Entries due at `now_ms`, oldest first, at most `limit`. Entries that cannot be read
    /// (a newer format, damage) are skipped and logged.
    pub fn due(&self, now_ms: u64, limit: usize) -> Vec<(u64, Pending)> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let Ok((k, v)) = item else { continue };
            let Some(key) = k.as_ref().try_into().ok().map(u64::from_be_bytes) else {
                continue;
            };
            match decode(&v) {
                Some(p) if p.next_ms <= now_ms => out.push((key, p)),
                Some(_) => {}
                None => tracing::error!(key, "unreadable queued notification; skipping it"),
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Removes a delivered (or abandoned) entry.
    pub fn remove(&self, key: u64) -> Result<(), QueueError> {
        self.tree.remove(key.to_be_bytes())?;
        self.tree.flush()?;
        Ok(())
    }

    /// Stores a failed attempt.
    pub fn update(&self, key: u64, p: &Pending) -> Result<(), QueueError> {
        self.tree.insert(key.to_be_bytes(), encode(p)?)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

fn encode(p: &Pending) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut v, p)?;
    Ok(v)
}

fn decode(v: &[u8]) -> Option<Pending> {
    match v.split_first() {
        Some((&FORMAT_VERSION, body)) => serde_json::from_slice(body).ok(),
        _ => None,
    }
}
