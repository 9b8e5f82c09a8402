//! The single writer in front of the sinks, with group commit and dedup.
//!
//! Ingest requests decode and render their batch on their own, then hand the rendered
//! lines to this writer and wait. The writer thread takes every job waiting in its queue,
//! drops batches already accepted (same agent, stream and seq, earlier or in the same
//! group), writes the rest to every sink, flushes every sink once (fsync for files), records
//! the accepted batches in the dedup table, and only then answers each job. One fsync thus
//! covers many concurrent batches.
//!
//! Invariant: a job is answered `Accepted` only after its lines are durable in every sink.
//! On a write or flush error every job of the group is answered with the error, so the
//! agents retry; lines of that group that did reach a sink may then arrive twice
//! (at-least-once), which the per-sink queues of the sinks stage remove.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::dedup::Dedup;
use crate::metrics::{Metrics, SinkLabel};
use crate::sink::Sink;

/// Most jobs or bytes folded into one group commit.
const MAX_GROUP_JOBS: usize = 256;
const MAX_GROUP_BYTES: usize = 64 << 20;

/// What happened to a submitted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written and durable; this many events.
    Accepted(usize),
    /// Accepted before; nothing written.
    Duplicate,
}

/// A rendered batch waiting to be written.
#[derive(Debug)]
pub struct Job {
    /// Sending agent.
    pub agent: String,
    /// Agent stream.
    pub stream: String,
    /// Batch sequence number.
    pub seq: u64,
    /// Rendered JSON lines.
    pub lines: Vec<u8>,
    /// Number of events in `lines`.
    pub events: usize,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Outcome, String>>,
}

/// Handle for submitting jobs; dropping every handle lets the writer finish and exit.
#[derive(Debug, Clone)]
pub struct SinkWriter {
    tx: mpsc::Sender<Job>,
}

impl SinkWriter {
    /// Starts the writer thread over `sinks`.
    pub fn spawn(
        sinks: Vec<Box<dyn Sink>>,
        dedup: Dedup,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(SinkWriter, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(MAX_GROUP_JOBS);
        let handle = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || run(rx, sinks, dedup, &metrics))?;
        Ok((SinkWriter { tx }, handle))
    }

    /// Queues a job and waits for its outcome. An error means nothing is known to be
    /// durable: the caller answers 503 and the agent retries.
    pub async fn write(
        &self,
        agent: String,
        stream: String,
        seq: u64,
        lines: Vec<u8>,
        events: usize,
    ) -> Result<Outcome, String> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            agent,
            stream,
            seq,
            lines,
            events,
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| "the aggregator is shutting down".to_owned())?;
        rx.await.map_err(|_| "the sink writer stopped".to_owned())?
    }
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    mut sinks: Vec<Box<dyn Sink>>,
    mut dedup: Dedup,
    metrics: &Metrics,
) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP_JOBS);
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = first.lines.len();
        group.push(first);
        while group.len() < MAX_GROUP_JOBS && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.lines.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&mut group, &mut sinks, &mut dedup, metrics);
        group.clear();
    }
    tracing::debug!("sink writer drained; stopping");
}

fn commit(group: &mut Vec<Job>, sinks: &mut [Box<dyn Sink>], dedup: &mut Dedup, metrics: &Metrics) {
    let mut fresh: Vec<bool> = Vec::with_capacity(group.len());
    let mut in_group: HashSet<(&str, &str, u64)> = HashSet::new();
    for job in group.iter() {
        let is_new = !dedup.seen(&job.agent, &job.stream, job.seq)
            && in_group.insert((&job.agent, &job.stream, job.seq));
        fresh.push(is_new);
    }
    let mut result: Result<(), String> = Ok(());
    'sinks: for sink in sinks.iter_mut() {
        for (job, _) in group.iter().zip(&fresh).filter(|(_, f)| **f) {
            if let Err(e) = sink.write(&job.lines) {
                result = Err(format!("sink {}: {e}", sink.name()));
                metrics
                    .sink_errors
                    .get_or_create(&SinkLabel {
                        sink: sink.name().to_owned(),
                    })
                    .inc();
                break 'sinks;
            }
        }
        if let Err(e) = sink.flush() {
            result = Err(format!("sink {}: flush: {e}", sink.name()));
            metrics
                .sink_errors
                .get_or_create(&SinkLabel {
                    sink: sink.name().to_owned(),
                })
                .inc();
            break;
        }
    }
    if let Err(e) = &result {
        tracing::error!(error = %e, batches = group.len(), "sink write failed; agents will retry");
    } else {
        let events: usize = group
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(j, _)| j.events)
            .sum();
        for sink in sinks.iter() {
            metrics
                .sink_events
                .get_or_create(&SinkLabel {
                    sink: sink.name().to_owned(),
                })
                .inc_by(events as u64);
        }
        for (job, _) in group.iter().zip(&fresh).filter(|(_, f)| **f) {
            dedup.insert(&job.agent, &job.stream, job.seq);
        }
        if let Err(e) = dedup.save() {
            metrics.dedup_save_errors.inc();
            tracing::error!(error = %e, "cannot persist the accepted-batch table; a restart may accept retried batches twice");
        }
    }
    for (job, is_new) in group.drain(..).zip(fresh) {
        let answer = match &result {
            Err(e) => Err(e.clone()),
            Ok(()) if is_new => Ok(Outcome::Accepted(job.events)),
            Ok(()) => Ok(Outcome::Duplicate),
        };
        // The requester may have gone away (client disconnected); the data is durable anyway.
        let _ = job.reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records what it got and can be told to fail.
    struct Recording {
        lines: Arc<std::sync::Mutex<Vec<u8>>>,
        fail: bool,
    }

    impl Sink for Recording {
        fn name(&self) -> &str {
            "rec"
        }
        fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
            if self.fail {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.lines.lock().unwrap().extend_from_slice(lines);
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn duplicates_are_answered_but_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Recording {
            lines: lines.clone(),
            fail: false,
        };
        let (w, handle) = SinkWriter::spawn(
            vec![Box::new(sink)],
            Dedup::open(dir.path()).unwrap(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let first = w
            .write("a".into(), "s".into(), 1, b"one\n".to_vec(), 1)
            .await
            .unwrap();
        let again = w
            .write("a".into(), "s".into(), 1, b"one\n".to_vec(), 1)
            .await
            .unwrap();
        let other = w
            .write("b".into(), "s".into(), 1, b"two\n".to_vec(), 1)
            .await
            .unwrap();
        assert_eq!(first, Outcome::Accepted(1));
        assert_eq!(again, Outcome::Duplicate);
        assert_eq!(other, Outcome::Accepted(1));
        drop(w);
        handle.join().unwrap();
        assert_eq!(&*lines.lock().unwrap(), b"one\ntwo\n");
        // The table survived: a restarted writer still knows batch (a, s, 1).
        assert!(Dedup::open(dir.path()).unwrap().seen("a", "s", 1));
    }

    #[tokio::test]
    async fn a_failing_sink_fails_the_job_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Recording {
            lines: Default::default(),
            fail: true,
        };
        let (w, handle) = SinkWriter::spawn(
            vec![Box::new(sink)],
            Dedup::open(dir.path()).unwrap(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let err = w
            .write("a".into(), "s".into(), 1, b"x\n".to_vec(), 1)
            .await
            .unwrap_err();
        assert!(err.contains("disk on fire"), "{err}");
        drop(w);
        handle.join().unwrap();
        assert!(!Dedup::open(dir.path()).unwrap().seen("a", "s", 1));
    }
}
