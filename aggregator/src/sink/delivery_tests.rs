//! Tests of the delivery task's retry and settle logic, with an in-process service whose
//! answers are scripted (the protocol sinks have their own tests against real peers).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logferry_shared::runtime::Shutdown;

use super::delivery::{Backoff, DeliveryFamilies, DeliveryTask};
use super::queue::{QueueConfig, QueueStore, RetryConfig, SinkQueue};
use super::remote::{BatchHint, BoxFuture, Deliver, DeliverError, FailureKind, Outcome, Pending};

/// What the scripted service does with one call.
#[derive(Debug, Clone)]
enum Step {
    /// Takes every waiting event.
    Take,
    /// Takes the first `n` waiting events, then fails.
    TakeSomeThenFail(usize),
    /// Fails without taking anything.
    Fail(FailureKind),
    /// Refuses events whose line contains the text; takes the rest.
    Refuse(&'static str),
}

#[derive(Debug, Default)]
struct Service {
    script: VecDeque<Step>,
    /// Every event the service took, in order.
    got: Vec<String>,
    calls: usize,
}

#[derive(Debug, Clone)]
struct Scripted(Arc<Mutex<Service>>, usize);

impl Deliver for Scripted {
    fn hint(&self) -> BatchHint {
        BatchHint {
            max_events: self.1,
            max_bytes: 1 << 20,
        }
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a mut [Pending],
    ) -> BoxFuture<'a, Result<(), DeliverError>> {
        Box::pin(async move {
            let mut s = self.0.lock().unwrap();
            s.calls += 1;
            let step = s.script.pop_front().unwrap_or(Step::Take);
            let mut took = 0;
            for p in batch.iter_mut().filter(|p| p.is_waiting()) {
                let text = String::from_utf8(p.line.to_vec()).unwrap();
                match &step {
                    Step::Fail(kind) => return Err(DeliverError::new(*kind, "scripted")),
                    Step::TakeSomeThenFail(n) if took == *n => {
                        return Err(DeliverError::new(FailureKind::Unavailable, "scripted"))
                    }
                    Step::Refuse(bad) if text.contains(bad) => {
                        p.outcome = Outcome::Rejected(format!("contains {bad}"));
                        continue;
                    }
                    _ => {}
                }
                s.got.push(text);
                p.outcome = Outcome::Delivered;
                took += 1;
            }
            Ok(())
        })
    }
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn queue(dir: &std::path::Path) -> Arc<SinkQueue> {
    let config = QueueConfig {
        batch_wait: Duration::ZERO,
        ..QueueConfig::default()
    };
    QueueStore::open(dir).unwrap().queue("s", &config).unwrap()
}

fn fill(q: &SinkQueue, range: std::ops::Range<u32>) {
    let mut lines = Vec::new();
    for i in range.clone() {
        lines.extend_from_slice(format!("{{\"message\":\"e{i}\"}}\n").as_bytes());
    }
    q.append(&lines, range.len() as u32, 1).unwrap();
    q.commit(q.position());
}

/// Runs a delivery task until the queue is empty (deadline 10 s), then stops it.
async fn run_until_empty(q: Arc<SinkQueue>, service: Scripted) -> DeliveryFamilies {
    let families = DeliveryFamilies::default();
    let task = DeliveryTask::new(
        q.clone(),
        Box::new(service),
        fast_retry(),
        families.clone(),
        Default::default(),
    );
    let stop = Shutdown::new();
    let handle = tokio::spawn(task.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.level().events > 0 {
        assert!(
            Instant::now() < deadline,
            "queue never drained: {:?}",
            q.level()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.trigger();
    handle.await.unwrap();
    families
}

fn expected(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{{\"message\":\"e{i}\"}}")).collect()
}

#[tokio::test]
async fn failures_are_retried_until_every_event_is_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    fill(&q, 0..500);
    fill(&q, 500..1000);
    let service = Arc::new(Mutex::new(Service {
        script: VecDeque::from(vec![
            Step::Fail(FailureKind::Unavailable),
            Step::Fail(FailureKind::Throttled),
            Step::TakeSomeThenFail(37),
            Step::TakeSomeThenFail(0),
            Step::Take,
            Step::TakeSomeThenFail(100),
        ]),
        ..Service::default()
    }));
    run_until_empty(q.clone(), Scripted(service.clone(), 300)).await;
    let s = service.lock().unwrap();
    assert_eq!(
        s.got,
        expected(0..1000),
        "lost, doubled or reordered events"
    );
    assert!(s.calls >= 8, "{} calls", s.calls);
}

#[tokio::test]
async fn refused_events_are_dead_lettered_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    fill(&q, 0..100);
    let service = Arc::new(Mutex::new(Service {
        script: VecDeque::from(vec![Step::Refuse("e4")]),
        ..Service::default()
    }));
    run_until_empty(q.clone(), Scripted(service.clone(), 1000)).await;
    let s = service.lock().unwrap();
    // e4 and e40..e49 are refused.
    assert_eq!(s.got.len(), 89);
    let dead = q.dead_letters(None, 100).unwrap();
    assert_eq!(dead.len(), 11);
    assert_eq!(dead[0].1["event"]["message"], "e4");
    assert_eq!(dead[0].1["reason"], "contains e4");
}

#[tokio::test]
async fn stopping_while_the_service_fails_keeps_the_events_queued() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    fill(&q, 0..50);
    let service = Arc::new(Mutex::new(Service {
        script: std::iter::once(Step::TakeSomeThenFail(10))
            .chain(std::iter::repeat_n(
                Step::Fail(FailureKind::Unavailable),
                10_000,
            ))
            .collect(),
        ..Service::default()
    }));
    let task = DeliveryTask::new(
        q.clone(),
        Box::new(Scripted(service.clone(), 1000)),
        fast_retry(),
        DeliveryFamilies::default(),
        Default::default(),
    );
    let stop = Shutdown::new();
    let handle = tokio::spawn(task.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.lock().unwrap().calls < 5 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.trigger();
    handle.await.unwrap();
    // The ten delivered are settled; forty wait for the next start.
    assert_eq!(q.level().events, 40);
    q.commit(q.position());
    let t = q.take(100, 1 << 20).unwrap();
    assert_eq!(t.pending.len(), 40);
    assert_eq!(&t.pending[0].line[..], br#"{"message":"e10"}"#);
}

#[test]
fn backoff_grows_with_jitter_up_to_its_cap_and_honours_the_service() {
    let mut b = Backoff::new(&RetryConfig {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
    });
    let err = DeliverError::new(FailureKind::Unavailable, "x");
    let waits: Vec<Duration> = (0..8).map(|_| b.next(&err)).collect();
    assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
    assert!(waits[3] >= Duration::from_millis(400) && waits[3] <= Duration::from_millis(800));
    assert!(waits.iter().all(|w| *w <= Duration::from_secs(2)));
    assert!(waits[7] >= Duration::from_secs(1));
    let asked = DeliverError {
        retry_after: Some(Duration::from_secs(1)),
        ..err.clone()
    };
    assert_eq!(b.next(&asked), Duration::from_secs(1));
    let at_once = DeliverError {
        retry_after: Some(Duration::ZERO),
        ..err.clone()
    };
    assert_eq!(
        b.next(&at_once),
        Duration::from_millis(100),
        "never a busy loop"
    );
    let refused = DeliverError::new(FailureKind::Refused, "bad token");
    b.reset();
    assert_eq!(b.next(&refused), Duration::from_secs(2));
}
