//! The delivery task of a queued sink: takes events from the front of the sink's durable
//! queue ([`super::queue`]), hands them to the sink's [`Deliver`] implementation a batch
//! at a time, retries failures with exponential backoff and jitter (or the wait the
//! service asked for), stores events the service refused for good as dead letters, and
//! removes what is settled.
//!
//! One task per sink, on the runtime: a sink that is down or slow holds back only its own
//! queue. While a delivery keeps failing the task keeps the same batch (events a partial
//! success settled are not sent again) and retries until it succeeds or the task is
//! stopped; nothing is dropped for being old or for failing often. Refusals of the whole
//! request (credentials, permissions) are retried with the longest backoff and logged as
//! errors, so an operator can fix them without losing data.
//!
//! Stopping: the task is stopped after the pipeline has stopped (so what the pipeline
//! queued during shutdown is kept for the next start). A delivery in flight gets
//! [`STOP_GRACE`] to finish; what it settled is recorded, the rest stays queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_shared::runtime::Shutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::queue::{RetryConfig, SinkQueue};
use super::remote::{AdjustLabel, Adjustments, Deliver, DeliverError, FailureKind};
use super::SinkBoard;
use crate::metrics::SinkLabel;

/// How long a delivery in flight may go on after the task is told to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often an idle task looks at its queue even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Label of failed requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabel {
    /// The sink's name.
    pub sink: String,
    /// `throttled`, `unavailable` or `refused`.
    pub kind: &'static str,
}

/// The delivery metrics of every queued sink (`logferry_sink_*`).
#[derive(Debug, Clone)]
pub struct DeliveryFamilies {
    delivered: Family<SinkLabel, Counter>,
    failed: Family<FailureLabel, Counter>,
    retries: Family<SinkLabel, Counter>,
    dropped: Family<SinkLabel, Counter>,
    dead_lettered: Family<SinkLabel, Counter>,
    evicted: Family<SinkLabel, Counter>,
    latency: Family<SinkLabel, Histogram, fn() -> Histogram>,
    adjusted: Family<AdjustLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for DeliveryFamilies {
    fn default() -> Self {
        DeliveryFamilies {
            delivered: Family::default(),
            failed: Family::default(),
            retries: Family::default(),
            dropped: Family::default(),
            dead_lettered: Family::default(),
            evicted: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            adjusted: Family::default(),
        }
    }
}

impl DeliveryFamilies {
    /// Registers every family in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sink_delivered_events",
            "Events a queued sink delivered to its service",
            self.delivered.clone(),
        );
        registry.register(
            "sink_failed_requests",
            "Failed deliveries of a queued sink, by kind (each is retried)",
            self.failed.clone(),
        );
        registry.register(
            "sink_retries",
            "Deliveries retried after a failure",
            self.retries.clone(),
        );
        registry.register(
            "sink_dropped_events",
            "Events dropped from a full queue (when_full = \"drop_oldest\")",
            self.dropped.clone(),
        );
        registry.register(
            "sink_dead_letter_events",
            "Events the service refused for good, stored as dead letters",
            self.dead_lettered.clone(),
        );
        registry.register(
            "sink_dead_letter_evicted",
            "Dead letters evicted to stay under dead_letter_max_bytes",
            self.evicted.clone(),
        );
        registry.register(
            "sink_request_seconds",
            "Time per delivery call of a queued sink (all its requests)",
            self.latency.clone(),
        );
        registry.register(
            "sink_adjusted_events",
            "Events a sink changed or refused on its own account, by reason",
            self.adjusted.clone(),
        );
    }

    /// The adjustment counters of sink `name`.
    pub fn adjustments(&self, name: &str) -> Adjustments {
        Adjustments::new(self.adjusted.clone(), name)
    }
}

/// Exponential backoff with full jitter between `initial` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at the first wait.
    pub fn new(retry: &RetryConfig) -> Backoff {
        Backoff {
            initial: retry.initial_backoff.max(Duration::from_millis(1)),
            max: retry.max_backoff.max(retry.initial_backoff),
            attempt: 0,
        }
    }

    /// The wait after one more failure: a random time between half the current step and
    /// the step (the step doubles each time up to `max`), or what the service asked for
    /// (capped at `max`); `Refused` waits `max`.
    pub fn next(&mut self, e: &DeliverError) -> Duration {
        let step = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        if let Some(asked) = e.retry_after {
            // Never less than the first wait: `Retry-After: 0` must not make a busy loop.
            return asked.max(self.initial).min(self.max);
        }
        if e.kind == FailureKind::Refused {
            return self.max;
        }
        let half = step / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
    }

    /// Back to the first wait, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One sink's delivery task, ready to run.
pub struct DeliveryTask {
    queue: Arc<SinkQueue>,
    sink: Box<dyn Deliver>,
    retry: RetryConfig,
    families: DeliveryFamilies,
    /// Events `drop_oldest` removed, counted by the pipeline's side of the queue.
    dropped: Arc<AtomicU64>,
    board: Option<(Arc<SinkBoard>, usize)>,
}

impl std::fmt::Debug for DeliveryTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryTask")
            .field("sink", &self.queue.name())
            .finish()
    }
}

fn now_ms() -> u64 {
    logferry_shared::event::Timestamp::now().as_millis().max(0) as u64
}

impl DeliveryTask {
    /// A task delivering `queue` through `sink`.
    pub fn new(
        queue: Arc<SinkQueue>,
        sink: Box<dyn Deliver>,
        retry: RetryConfig,
        families: DeliveryFamilies,
        dropped: Arc<AtomicU64>,
    ) -> DeliveryTask {
        DeliveryTask {
            queue,
            sink,
            retry,
            families,
            dropped,
            board: None,
        }
    }

    /// Reports failures and deliveries on `board` under sink index `index`.
    pub fn with_board(mut self, board: Arc<SinkBoard>, index: usize) -> DeliveryTask {
        self.board = Some((board, index));
        self
    }

    /// Runs until `stop` is triggered (see the module docs).
    pub async fn run(mut self, stop: Shutdown) {
        let label = SinkLabel {
            sink: self.queue.name().to_owned(),
        };
        let mut backoff = Backoff::new(&self.retry);
        let hint = self.sink.hint();
        let batch_wait = self.queue.config().batch_wait;
        let mut failing_since: Option<Instant> = None;
        'run: loop {
            self.count_dropped(&label);
            if stop.is_triggered() {
                break;
            }
            let mut taken = match self.queue.take(hint.max_events, hint.max_bytes) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(sink = %self.queue.name(), error = %e, "cannot read the sink queue");
                    wait_or_stop(&stop, IDLE_POLL).await;
                    continue;
                }
            };
            if taken.is_empty() {
                tokio::select! {
                    _ = self.queue.wake.notified() => {}
                    _ = stop.wait() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            // A small batch waits for more, up to `batch_wait` after its oldest event was
            // queued.
            let small = taken.pending.len() < hint.max_events && taken.bytes < hint.max_bytes / 2;
            if small {
                let (now, oldest) = (now_ms(), taken.oldest_ms.unwrap_or(0));
                // An enqueue time ahead of the clock (it was set back) counts as old.
                let age = if oldest > now {
                    batch_wait
                } else {
                    Duration::from_millis(now - oldest)
                };
                if age < batch_wait {
                    tokio::select! {
                        _ = tokio::time::sleep(batch_wait - age) => {}
                        _ = stop.wait() => {}
                    }
                    if !stop.is_triggered() {
                        continue;
                    }
                }
            }
            loop {
                let started = Instant::now();
                let result = {
                    // A delivery under way when the stop comes gets STOP_GRACE to finish:
                    // the service may already have its request.
                    let mut delivery = self.sink.deliver(&mut taken.pending);
                    let stopped = || {
                        Err(DeliverError::new(
                            FailureKind::Unavailable,
                            "stopped while delivering",
                        ))
                    };
                    if stop.is_triggered() {
                        tokio::time::timeout(STOP_GRACE, delivery)
                            .await
                            .unwrap_or_else(|_| stopped())
                    } else {
                        tokio::select! {
                            r = &mut delivery => r,
                            _ = stop.wait() => {
                                tokio::time::timeout(STOP_GRACE, delivery)
                                    .await
                                    .unwrap_or_else(|_| stopped())
                            }
                        }
                    }
                };
                self.families
                    .latency
                    .get_or_create(&label)
                    .observe(started.elapsed().as_secs_f64());
                match result {
                    Ok(()) => {
                        if let Some(since) = failing_since.take() {
                            tracing::info!(sink = %self.queue.name(), after = ?since.elapsed(), "sink delivers again");
                        }
                        backoff.reset();
                        self.settle(&taken, &label);
                        // Durable before the next batch: a crash resends at most one.
                        if let Err(e) = self.queue.flush_async().await {
                            tracing::error!(sink = %self.queue.name(), error = %e, "cannot make delivered events durable in the sink queue; they may be sent again after a crash");
                        }
                        continue 'run;
                    }
                    Err(e) => {
                        self.families
                            .failed
                            .get_or_create(&FailureLabel {
                                sink: label.sink.clone(),
                                kind: e.kind.as_str(),
                            })
                            .inc();
                        if let Some((board, _)) = &self.board {
                            board.failed(self.queue.name(), e.to_string(), now_ms());
                        }
                        if failing_since.is_none() || e.kind == FailureKind::Refused {
                            tracing::error!(sink = %self.queue.name(), error = %e, events = taken.pending.len(), "delivery failed; retrying (events stay queued)");
                        } else {
                            tracing::debug!(sink = %self.queue.name(), error = %e, "delivery failed again");
                        }
                        failing_since.get_or_insert_with(Instant::now);
                        // The same batch is delivered again: events it settled keep
                        // their outcome and are not sent twice.
                        let wait = backoff.next(&e);
                        if stop.is_triggered() || !wait_or_stop(&stop, wait).await {
                            // What this batch settled is recorded; the rest stays queued.
                            self.settle(&taken, &label);
                            break 'run;
                        }
                        self.families.retries.get_or_create(&label).inc();
                    }
                }
            }
        }
        self.count_dropped(&label);
        self.sink.close().await;
        tracing::info!(sink = %self.queue.name(), queued = self.queue.level().events, "sink delivery stopped");
    }

    /// Records a delivery's outcome in the queue and the metrics.
    fn settle(&self, taken: &super::queue::Taken, label: &SinkLabel) {
        match self.queue.settle(taken, now_ms()) {
            Ok(s) => {
                self.families
                    .delivered
                    .get_or_create(label)
                    .inc_by(s.delivered);
                if s.dead_lettered > 0 {
                    self.families
                        .dead_lettered
                        .get_or_create(label)
                        .inc_by(s.dead_lettered);
                    tracing::warn!(sink = %self.queue.name(), events = s.dead_lettered, "the service refused events for good; stored as dead letters");
                }
                if s.evicted > 0 {
                    self.families.evicted.get_or_create(label).inc_by(s.evicted);
                    tracing::warn!(sink = %self.queue.name(), events = s.evicted, "dead letters over their bound: evicted the oldest");
                }
                if let Some((board, index)) = &self.board {
                    board.delivered(*index, s.delivered, now_ms());
                }
            }
            Err(e) => {
                tracing::error!(sink = %self.queue.name(), error = %e, "cannot record delivered events in the sink queue; they will be sent again");
            }
        }
    }

    fn count_dropped(&self, label: &SinkLabel) {
        let n = self.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.families.dropped.get_or_create(label).inc_by(n);
        }
    }
}

/// Waits `wait`; false when `stop` came first.
async fn wait_or_stop(stop: &Shutdown, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => !stop.is_triggered(),
        _ = stop.wait() => false,
    }
}
