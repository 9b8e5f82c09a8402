//! What a sink that sends events to a service implements: [`Deliver`].
//!
//! Such a sink does not write from the pipeline itself. The pipeline appends the lines
//! routed to it to the sink's own durable queue ([`super::queue`]), and a delivery task
//! per sink takes events from that queue in order, hands them to [`Deliver::deliver`] a
//! batch at a time, and removes them from the queue once each is delivered or rejected.
//! Retries (exponential backoff with jitter, `Retry-After`), the dead-letter store and the
//! per-sink metrics belong to the delivery task, so an implementation only has to:
//!
//! - split the batch into requests the service accepts (its size and count limits),
//! - send them, marking each event [`Outcome::Delivered`] as soon as its request
//!   succeeded, or [`Outcome::Rejected`] when the service refused *that event* for good
//!   (too old, too large, malformed): rejected events go to the dead-letter store,
//! - return `Err` when a request failed in a way worth retrying (throttling, 5xx, network,
//!   credentials not yet valid). Events still [`Outcome::Waiting`] are then handed over
//!   again after a backoff; events already marked stay as marked, so a retry never sends
//!   an event twice within one run of the process.
//!
//! Delivery is at least once: after a crash, the batch that was being delivered is
//! delivered again (the queue removes events only after their batch returned).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// A boxed future, so that [`Deliver`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One queued event on its way to a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The event as one JSON object in the output shape (README, "Output"), without the
    /// trailing newline.
    pub line: bytes::Bytes,
    /// What became of it so far.
    pub outcome: Outcome,
}

impl Pending {
    /// An event not yet sent.
    pub fn new(line: impl Into<bytes::Bytes>) -> Pending {
        Pending {
            line: line.into(),
            outcome: Outcome::Waiting,
        }
    }

    /// True while the event still has to be sent.
    pub fn is_waiting(&self) -> bool {
        self.outcome == Outcome::Waiting
    }
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not sent yet, or its request failed and is worth retrying.
    Waiting,
    /// The service has it.
    Delivered,
    /// The service will never take it, for the reason given: it goes to the dead-letter
    /// store.
    Rejected(String),
}

/// How much the delivery task hands over at once. The sink may split a batch further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHint {
    /// Most events per call.
    pub max_events: usize,
    /// Most bytes of JSON lines per call.
    pub max_bytes: usize,
}

impl Default for BatchHint {
    fn default() -> Self {
        BatchHint {
            max_events: 10_000,
            max_bytes: 1 << 20,
        }
    }
}

/// Why a delivery failed (it is retried: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct DeliverError {
    /// What kind of failure, for metrics and logs.
    pub kind: FailureKind,
    /// What the service or the network said.
    pub message: String,
    /// How long the service asked us to wait, if it said.
    pub retry_after: Option<Duration>,
}

impl DeliverError {
    /// A failure of `kind` with `message` and no wait asked for.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> DeliverError {
        DeliverError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The kinds of delivery failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The service asked us to slow down (throttling, server busy, 429).
    Throttled,
    /// The service or the network failed (5xx, connection refused or reset, timeout).
    Unavailable,
    /// The service refused the request as a whole for a reason that retrying alone will
    /// not fix (credentials, permissions, configuration). Retried with the longest backoff
    /// and logged as an error, never dropped: an operator can fix it without losing data.
    Refused,
}

impl FailureKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Throttled => "throttled",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Refused => "refused",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sink that sends events to a service. See the module docs for the contract.
pub trait Deliver: Send + 'static {
    /// How many events and bytes to hand over per call.
    fn hint(&self) -> BatchHint {
        BatchHint::default()
    }

    /// Sends every [`Outcome::Waiting`] event of `batch` (events already marked are
    /// skipped) and marks each one it settles. `Ok` means none is left waiting.
    fn deliver<'a>(
        &'a mut self,
        batch: &'a mut [Pending],
    ) -> BoxFuture<'a, Result<(), DeliverError>>;

    /// Closes connections cleanly; called once at shutdown, after the last delivery.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Counts of events a sink changed or refused on its own account (truncated, split,
/// clamped, too old...), exported as `logferry_sink_adjusted_events_total{sink,reason}`.
#[derive(Debug, Clone, Default)]
pub struct Adjustments {
    family: Family<AdjustLabel, Counter>,
    sink: String,
}

/// Labels of [`Adjustments`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct AdjustLabel {
    /// The sink's name.
    pub sink: String,
    /// What was done, e.g. `truncated`, `split`, `too_old`.
    pub reason: &'static str,
}

impl Adjustments {
    /// Counts into `family` under the sink's name.
    pub fn new(family: Family<AdjustLabel, Counter>, sink: &str) -> Adjustments {
        Adjustments {
            family,
            sink: sink.to_owned(),
        }
    }

    /// Counts `n` events for `reason`.
    pub fn count(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.family
                .get_or_create(&AdjustLabel {
                    sink: self.sink.clone(),
                    reason,
                })
                .inc_by(n);
        }
    }

    /// The count so far for `reason` (tests, and the admin endpoint).
    pub fn get(&self, reason: &'static str) -> u64 {
        self.family
            .get_or_create(&AdjustLabel {
                sink: self.sink.clone(),
                reason,
            })
            .get()
    }
}
