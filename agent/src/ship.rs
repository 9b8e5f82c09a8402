//! Sending spooled batches to the aggregator and deleting them once acknowledged.
//!
//! Up to `max_in_flight` batches are sent at once over one kept-alive HTTPS connection
//! (HTTP/2 when the aggregator offers it). Each batch is retried until it gets a 2xx
//! (then deleted from the spool) or a permanent refusal (moved to the dead-letter tree):
//! network errors, timeouts, 401, 403, 408, 429 and 5xx are retried with exponential
//! backoff and jitter, honouring `Retry-After`; other 4xx are permanent. Nothing is dropped on a
//! transient error, and the aggregator's dedup makes the retries safe.
//!
//! At shutdown no new batch is started; sends in flight get a short grace period and are
//! then abandoned, staying in the spool for the next start.

use std::sync::Arc;
use std::time::Duration;

use logferry_shared::runtime::Shutdown;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::spool::{Spool, SpoolError};

/// Content type of a batch frame.
pub const FRAME_CONTENT_TYPE: &str = "application/x-logferry-batch";
/// How long sends in flight may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// Delay before retry number `attempt` (1-based): exponential, capped, with "equal
    /// jitter" (half fixed, half random) so many agents do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let half = exp / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
    }
}

/// How a send attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Acked,
    Retry(Option<Duration>, String),
    Permanent(StatusCode, String),
}

/// Where and how batches are sent. Replaced as a whole when the config is reloaded;
/// each send attempt uses the target current when it starts.
#[derive(Debug)]
pub struct Target {
    /// HTTP client (TLS configured).
    pub client: reqwest::Client,
    /// Full URL of the batch endpoint.
    pub url: String,
    /// `Bearer <token>`, if any.
    pub auth: Option<HeaderValue>,
    /// Batches in flight at most.
    pub max_in_flight: usize,
    /// Retry timing.
    pub backoff: Backoff,
}

/// The current [`Target`], shared between the shipper and whoever reloads it.
#[derive(Debug)]
pub struct TargetCell(std::sync::RwLock<Arc<Target>>);

impl TargetCell {
    /// A cell holding `t`.
    pub fn new(t: Target) -> TargetCell {
        TargetCell(std::sync::RwLock::new(Arc::new(t)))
    }

    /// The current target.
    pub fn get(&self) -> Arc<Target> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the target; sends already started finish with the old one.
    pub fn set(&self, t: Target) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
    }
}

/// Sends batches from the spool.
pub struct Shipper {
    /// Where to send.
    pub target: Arc<TargetCell>,
    /// The spool.
    pub spool: Arc<Spool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when a batch is spooled.
    pub wake: Arc<Notify>,
    /// Shutdown flag.
    pub shutdown: Shutdown,
}

impl Shipper {
    /// Runs until shutdown.
    pub async fn run(self) {
        let this = Arc::new(self);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut cursor = 0u64;
        loop {
            while in_flight.len() < this.target.get().max_in_flight {
                let next = with_spool(&this.spool, move |s| s.next_after(cursor)).await;
                this.count_damaged();
                match next {
                    Ok(Some((seq, frame))) => {
                        cursor = seq;
                        let me = this.clone();
                        in_flight.spawn(async move { me.deliver(seq, frame).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the spool");
                        break;
                    }
                }
            }
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = this.wake.notified() => {}
                _ = this.shutdown.wait() => break,
                // A spool error above leaves nothing to wake us; look again shortly.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::info!(
                batches = in_flight.len(),
                "unsent batches stay in the spool for the next start"
            );
            in_flight.abort_all();
        }
    }

    /// Brings the damaged-batch counter up to what the spool has found (the spool finds
    /// them while this loop reads it).
    fn count_damaged(&self) {
        let found = self.spool.damaged_batches();
        let counted = self.metrics.spool_damaged_batches.get();
        if found > counted {
            self.metrics.spool_damaged_batches.inc_by(found - counted);
        }
    }

    /// Sends one batch until it is acknowledged, refused for good, or shutdown.
    async fn deliver(&self, seq: u64, frame: bytes::Bytes) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Claimed for the attempt, so that a full `drop_oldest` spool does not drop
            // (and count as lost) a batch that may still arrive; one dropped while it
            // waited is not sent.
            match self.spool.begin_send(seq) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(seq, "batch dropped from the full spool; not sent");
                    return;
                }
                Err(e) => tracing::warn!(seq, error = %e, "cannot read the spool; sending anyway"),
            }
            self.metrics.batches_sent.inc();
            let target = self.target.get();
            match send(&target, frame.clone()).await {
                Verdict::Acked => {
                    if let Err(e) = with_spool(&self.spool, move |s| s.ack(seq)).await {
                        tracing::error!(seq, error = %e, "cannot delete an acknowledged batch; it will be resent and deduplicated");
                    }
                    self.metrics.batches_acked.inc();
                    self.metrics.spool_bytes.set(self.spool.bytes() as i64);
                    self.metrics.spool_batches.set(self.spool.len() as i64);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    self.metrics.last_ack_timestamp.set(now);
                    return;
                }
                Verdict::Permanent(status, why) => {
                    tracing::error!(seq, reason = %why, "the aggregator refused a batch for good; moved to the dead-letter store");
                    let status = status.as_u16();
                    if let Err(e) =
                        with_spool(&self.spool, move |s| s.dead_letter(seq, Some(status), &why))
                            .await
                    {
                        tracing::error!(seq, error = %e, "cannot dead-letter a batch");
                    }
                    self.metrics.batches_dead_lettered.inc();
                    return;
                }
                Verdict::Retry(after, why) => {
                    self.spool.end_send(seq);
                    self.metrics.batches_retried.inc();
                    let backoff = target.backoff;
                    let delay =
                        after.map_or_else(|| backoff.delay(attempt), |d| d.min(backoff.max));
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        tracing::warn!(seq, attempt, reason = %why, retry_in = ?delay, "send failed; will retry");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.wait() => return,
                    }
                }
            }
        }
    }
}

async fn send(target: &Target, frame: bytes::Bytes) -> Verdict {
    let mut req = target
        .client
        .post(&target.url)
        .header(CONTENT_TYPE, FRAME_CONTENT_TYPE)
        .body(frame);
    if let Some(auth) = &target.auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Verdict::Retry(None, error_chain(&e)),
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if status.is_success() {
        return Verdict::Acked;
    }
    let body = resp.text().await.unwrap_or_default();
    let why = format!("{status}: {}", body.chars().take(300).collect::<String>());
    classify(status, retry_after, why)
}

/// 401 and 403 are retried, not dead-lettered: they mean the agent's credentials are
/// wrong (fixed by a config change), not that the batch is.
fn classify(status: StatusCode, retry_after: Option<Duration>, why: String) -> Verdict {
    let credentials = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    if status.is_client_error()
        && !credentials
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        Verdict::Permanent(status, why)
    } else {
        // 5xx, 408, 429, 401/403, and 1xx/3xx (not an acknowledgement): try again.
        Verdict::Retry(retry_after, why)
    }
}

/// Runs a spool operation on the blocking pool: it reads, writes and syncs files.
async fn with_spool<T, F>(spool: &Arc<Spool>, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Spool) -> Result<T, SpoolError> + Send + 'static,
{
    let spool = spool.clone();
    match tokio::task::spawn_blocking(move || f(&spool)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        for attempt in 1..40 {
            let d = b.delay(attempt);
            let cap = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(Duration::from_secs(5));
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(8)).collect();
        assert!(samples.len() > 1, "no jitter");
    }

    #[test]
    fn statuses_are_classified() {
        let retry = |s: u16| {
            matches!(
                classify(StatusCode::from_u16(s).unwrap(), None, String::new()),
                Verdict::Retry(..)
            )
        };
        for s in [401, 403, 408, 429, 500, 502, 503, 504] {
            assert!(retry(s), "{s} should be retried");
        }
        for s in [400, 404, 405, 413, 415] {
            assert!(!retry(s), "{s} should be permanent");
        }
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(7)),
                "x".into()
            ),
            Verdict::Retry(Some(Duration::from_secs(7)), "x".into())
        );
    }
}
