//! What rules hand to the notifiers: [`Notification`]s in a bounded [`Outbox`], and the
//! [`Clock`] that stateful actions (rate limits, digests, alert windows) read, injected so
//! tests control time.
//!
//! The outbox never blocks the event path: when it is full the newest notification is
//! refused and counted. Notify actions coalesce matches into digests before they get
//! here, so a storm of matching events makes one notification per rule and interval.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use logferry_shared::event::{Level, Timestamp};
use serde::{Deserialize, Serialize};

use super::event::RuleEvent;

/// A source of "now", in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        Timestamp::now().as_millis().max(0) as u64
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Sets the clock.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a notification was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A notify action matched (the first match of an interval).
    Match,
    /// Further matches of a notify action during the interval, counted.
    Digest,
    /// A threshold alert went above its threshold.
    Firing,
    /// A threshold alert fell back to or below its threshold.
    Recovered,
}

/// A short copy of the event that caused a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSample {
    /// Level, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The message, cut to [`SAMPLE_MESSAGE_BYTES`].
    pub message: String,
    /// Host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// Source file.
    pub source: String,
}

/// Longest message kept in an [`EventSample`].
pub const SAMPLE_MESSAGE_BYTES: usize = 1024;

impl EventSample {
    /// Copies what a person needs from `ev` (after the rule's earlier actions, so
    /// redaction applies).
    pub fn of(ev: &RuleEvent<'_>) -> EventSample {
        let m: &str = &ev.parsed.message;
        let mut cut = m.len().min(SAMPLE_MESSAGE_BYTES);
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        EventSample {
            level: ev.parsed.level,
            message: m[..cut].to_owned(),
            host: ev.host.to_owned(),
            source: ev.source_path.to_owned(),
        }
    }
}

/// One message for a notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The rule that made it.
    pub rule: String,
    /// The notifier that should send it.
    pub notifier: String,
    /// Why.
    pub kind: NotificationKind,
    /// When, milliseconds since the epoch.
    pub at_ms: u64,
    /// One line for people, e.g. `[FIRING] high-traffic: 1500 events in 2m (threshold 1200)`.
    pub summary: String,
    /// The alert group (value of `group_by`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Matching events: 1 for a match, the count for a notify digest, the window count for
    /// alerts; for a digest made by the notifiers' per-rule limit, the notifications held back.
    pub count: u64,
    /// Alert threshold (events in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    /// Alert window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// How long the alert fired, seconds (recovered only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// The (first) event behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<EventSample>,
}

/// A bounded queue of notifications between the rules and the notifier task.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<VecDeque<Notification>>,
    ready: Condvar,
    capacity: usize,
    refused: AtomicU64,
}

impl Outbox {
    /// An outbox holding at most `capacity` notifications.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            refused: AtomicU64::new(0),
        }
    }

    /// Queues `n`; when full it is refused, counted and `false` is returned.
    pub fn push(&self, n: Notification) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= self.capacity {
            drop(q);
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(rule = %n.rule, notifier = %n.notifier, "notification outbox full; notification dropped");
            return false;
        }
        q.push_back(n);
        drop(q);
        self.ready.notify_one();
        true
    }

    /// Takes everything queued.
    pub fn drain(&self) -> Vec<Notification> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// Waits up to `timeout` for something to be queued, then takes everything queued.
    pub fn wait_drain(&self, timeout: Duration) -> Vec<Notification> {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| q.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// Notifications waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notifications refused because the outbox was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Formats a duration as people read it: `2m`, `1h 5m`, `45s`.
pub fn human_duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}
