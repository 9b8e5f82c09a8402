//! The dispatcher: moves notifications from the rules' outbox through the throttle into
//! the durable queue, and delivers what is due, with retries.
//!
//! It runs on its own thread with a single-threaded tokio runtime, so the sled writes
//! (each flushed) and the network waits never touch the ingest or pipeline threads.
//! Each round: drain the outbox, throttle, queue (flushed), deliver due entries one by
//! one; a failure is retried after `retry_initial`, doubling up to `retry_max`; an entry
//! refused for good, or failing for longer than `give_up_after`, is dropped and logged at
//! `error`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;

use super::config::AlertsConfig;
use super::queue::{DeliveryQueue, Pending};
use super::throttle::{Throttle, ThrottleSettings};
use super::Notifier;
use crate::rules::{Clock, Outbox};

/// Time between rounds.
pub const POLL: Duration = Duration::from_millis(250);
/// Entries delivered per round at most.
const PER_ROUND: usize = 100;

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Notifications delivered.
    pub delivered: AtomicU64,
    /// Failed attempts (each retry counts).
    pub failed_attempts: AtomicU64,
    /// Notifications dropped: refused for good, too old, unknown notifier, queue full.
    pub dropped: AtomicU64,
    /// Duplicates the throttle dropped.
    pub duplicates: AtomicU64,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Notifications put in the durable queue.
    pub queued: usize,
    /// Delivered.
    pub delivered: usize,
    /// Failed, to be retried.
    pub retried: usize,
    /// Dropped.
    pub dropped: usize,
}

/// Delivers notifications.
pub struct Dispatcher {
    outbox: Arc<Outbox>,
    throttle: Throttle,
    queue: DeliveryQueue,
    notifiers: HashMap<String, Box<dyn Notifier>>,
    settings: AlertsConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<DeliveryStats>,
}

impl Dispatcher {
    /// A dispatcher over `outbox` and `queue`, with the named notifiers.
    pub fn new(
        outbox: Arc<Outbox>,
        queue: DeliveryQueue,
        notifiers: Vec<Box<dyn Notifier>>,
        settings: AlertsConfig,
        clock: Arc<dyn Clock>,
    ) -> Dispatcher {
        let throttle = Throttle::new(ThrottleSettings {
            per_rule_limit: settings.per_rule_limit,
            per_rule_window_ms: settings.per_rule_window.as_millis() as u64,
            dedup_window_ms: settings.dedup_window.as_millis() as u64,
        });
        Dispatcher {
            outbox,
            throttle,
            queue,
            notifiers: notifiers
                .into_iter()
                .map(|n| (n.name().to_owned(), n))
                .collect(),
            settings,
            clock,
            stats: Arc::new(DeliveryStats::default()),
        }
    }

    /// The dispatcher the config describes: every `[notifiers.NAME]` built (secrets read
    /// now), the durable queue in `<data_dir>/notifications`, `[alerts]` settings.
    pub fn from_config(
        cfg: &crate::config::AggregatorConfig,
        outbox: Arc<Outbox>,
        clock: Arc<dyn Clock>,
    ) -> Result<Dispatcher, String> {
        let mut notifiers = Vec::new();
        for (name, n) in &cfg.notifiers {
            notifiers.push(super::build(name, n).map_err(|e| format!("notifiers.{name}: {e}"))?);
        }
        let queue = DeliveryQueue::open(&cfg.data_dir.join("notifications"), cfg.alerts.queue_max)
            .map_err(|e| e.to_string())?;
        Ok(Dispatcher::new(
            outbox,
            queue,
            notifiers,
            cfg.alerts.clone(),
            clock,
        ))
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.stats)
    }

    /// The durable queue.
    pub fn queue(&self) -> &DeliveryQueue {
        &self.queue
    }

    /// One round at the clock's time.
    pub async fn round(&mut self) -> Round {
        let now = self.clock.now_ms();
        let mut r = Round::default();
        let mut ready = Vec::new();
        for n in self.outbox.drain() {
            ready.extend(self.throttle.offer(n, now));
        }
        ready.extend(self.throttle.flush(now));
        self.stats
            .duplicates
            .store(self.throttle.duplicates(), Ordering::Relaxed);
        for n in ready {
            match self.queue.push(n, now) {
                Ok(true) => r.queued += 1,
                Ok(false) => {
                    r.dropped += 1;
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("notification queue full; notification dropped");
                }
                Err(e) => {
                    r.dropped += 1;
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot queue a notification; dropped");
                }
            }
        }
        for (key, p) in self.queue.due(now, PER_ROUND) {
            self.deliver(key, p, now, &mut r).await;
        }
        r
    }

    async fn deliver(&mut self, key: u64, mut p: Pending, now: u64, r: &mut Round) {
        let n = &p.notification;
        let Some(notifier) = self.notifiers.get(&n.notifier) else {
            tracing::error!(notifier = %n.notifier, rule = %n.rule, "notifier no longer configured; notification dropped");
            self.drop_entry(key, r);
            return;
        };
        match notifier.send(n).await {
            Ok(()) => {
                r.delivered += 1;
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.queue.remove(key) {
                    tracing::error!(error = %e, "cannot remove a delivered notification; it may be sent again");
                }
            }
            Err(e) => {
                self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let too_old = now.saturating_sub(p.queued_ms)
                    >= self.settings.give_up_after.as_millis() as u64;
                if !e.retryable || too_old {
                    tracing::error!(notifier = %n.notifier, rule = %n.rule, attempts = p.attempts + 1, error = %e, "notification not delivered; dropped");
                    self.drop_entry(key, r);
                    return;
                }
                p.attempts += 1;
                p.next_ms = now + backoff(&self.settings, p.attempts);
                p.last_error = Some(e.message.clone());
                tracing::warn!(notifier = %n.notifier, rule = %n.rule, attempts = p.attempts, error = %e, "notification delivery failed; will retry");
                r.retried += 1;
                if let Err(e) = self.queue.update(key, &p) {
                    tracing::error!(error = %e, "cannot record a failed attempt");
                }
            }
        }
    }

    fn drop_entry(&self, key: u64, r: &mut Round) {
        r.dropped += 1;
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.queue.remove(key) {
            tracing::error!(error = %e, "cannot remove a dropped notification");
        }
    }

    /// Runs rounds every [`POLL`] on a thread of its own until `shutdown`; `each_round`
    /// runs first in every round (the aggregator passes the rules engine's `tick`, so
    /// digests and alert recoveries come out even when no event arrives).
    pub fn spawn(
        mut self,
        shutdown: Shutdown,
        mut each_round: impl FnMut() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the notification runtime; notifications will not be sent");
                        return;
                    }
                };
                rt.block_on(async move {
                    while !shutdown.is_triggered() {
                        each_round();
                        self.round().await;
                        tokio::time::sleep(POLL).await;
                    }
                });
            })
    }
}

/// The delay before attempt `attempts + 1`: `retry_initial` doubled per failed attempt,
/// at most `retry_max`, in ms.
pub fn backoff(s: &AlertsConfig, attempts: u32) -> u64 {
    let base = s.retry_initial.as_millis() as u64;
    let max = s.retry_max.as_millis() as u64;
    base.saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(max)
}
