//! Per-sink durable queues for sinks that send to a service (see [`super::remote`]).

use std::time::Duration;

use serde::Deserialize;

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
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 256 << 20,
            when_full: WhenFull::Block,
            batch_wait: Duration::from_secs(1),
        }
    }
}

/// The policy of a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Back-pressure: stop taking batches until there is room.
    #[default]
    Block,
    /// Make room by dropping the oldest queued events (counted and logged).
    DropOldest,
}

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

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        }
    }
}
