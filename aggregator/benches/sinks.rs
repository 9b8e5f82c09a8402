//! Sink throughput: `cargo bench -p logferry-aggregator --bench sinks`.
//!
//! Each sink against a local peer, in one process, with the real code paths:
//!
//! - **through the pipeline**: zstd frames as an agent sends them, admitted into a real
//!   inbox, then the real pipeline (decode, parse, render; no rules) writing to the sink
//!   alone, timed until the peer holds every event. For `file` (plain, and rotating every
//!   1 MiB) the peer is the disk: done when the inbox is empty (written and fsynced). For
//!   `http` it is an HTTP/1.1 collector on 127.0.0.1 (axum; gunzips and counts lines). For
//!   `cloudwatch_logs` it is a stub of the CloudWatch Logs JSON protocol on 127.0.0.1 that
//!   answers every call OK and counts the events (moto is far too slow to measure a sink
//!   against: it stores and indexes every event in Python). For `eventhubs` it is the
//!   in-process AMQP 1.0 peer the tests use (`tests/eventhubs-peer`: SASL, CBS, batched
//!   transfers unpacked and recorded, 1 MiB links), reached over TCP on 127.0.0.1.
//! - **queue drain**: the queued sinks' own capacity: the sink's durable queue is filled
//!   first, then only the delivery task runs (take from sled, build and send requests,
//!   settle), timed until the peer has every event.
//! - **isolation**: the healthy `file` sink's throughput alone, next to a healthy `http`
//!   sink, and next to an `http` sink whose collector is stalled (accepts connections,
//!   reads requests, never answers). With `when_full = "drop_oldest"` (8 MiB queue) the
//!   stalled sink's queue fills and then drops its oldest events, counted, and the file
//!   sink goes on: this is the setting to use when the other sinks must never wait for
//!   one. With `when_full = "block"` and a queue larger than the run, the stalled sink
//!   costs the others nothing until its queue is full; with a small queue (8 MiB) the
//!   documented back-pressure applies: the pipeline stops taking batches once the queue is
//!   full, so the file sink stops too and the inbox keeps the rest (ingest would answer
//!   429) — the run reports how far the file sink got in 10 s.
//!
//! Every figure comes with the CPU time the whole process used (user + system; 200% is
//! both cores busy): the peers run in the same process, so their work is included, and
//! other programs on the machine show up as wall time the CPU figure does not explain.
//! `cargo bench` builds the AWS SDK clients at opt-level 1 (see the workspace
//! Cargo.toml), which the CloudWatch figures include.
//!
//! Environment: `LOGFERRY_BENCH_EVENTS=N` (default 200,000 per run),
//! `LOGFERRY_BENCH_WORKERS=N` (pipeline workers, default one per CPU),
//! `LOGFERRY_BENCH_ONLY=pipeline,drain,isolation` (default all three parts).

#[path = "sinks_support/peers.rs"]
mod peers;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_aggregator::inbox::{Admit, Inbox};
use logferry_aggregator::metrics::Metrics;
use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;
use logferry_aggregator::pipeline::{self, PipelineSetup, Wake};
use logferry_aggregator::sink::cloudwatch::{CloudWatchConfig, CloudWatchSink};
use logferry_aggregator::sink::delivery::{DeliveryFamilies, DeliveryTask};
use logferry_aggregator::sink::eventhubs::{EventHubsConfig, EventHubsSink};
use logferry_aggregator::sink::file::FileSinkConfig;
use logferry_aggregator::sink::http::{HttpSink, HttpSinkConfig};
use logferry_aggregator::sink::queue::{
    QueueConfig, QueueSink, QueueStore, RetryConfig, SinkQueue,
};
use logferry_aggregator::sink::remote::{Adjustments, Deliver};
use logferry_aggregator::sink::{FileSink, Sink};
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{BatchBuilder, DecodeLimits};

use peers::{Counter, Peer};

/// Process CPU time (user + system) in seconds, from `/proc/self/stat` (Linux).
fn cpu_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Where a measured stretch started.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_secs(),
        }
    }

    fn stop(&self) -> Span {
        Span {
            secs: self.wall.elapsed().as_secs_f64(),
            cpu: cpu_secs() - self.cpu,
        }
    }
}

/// Wall and CPU seconds of a measured stretch.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    secs: f64,
    cpu: f64,
}

impl Span {
    /// "N events/s, wall s, CPU %, CPU-µs per event" for `events` in this span.
    fn report(&self, events: u64) -> String {
        format!(
            "{:>9.0} events/s  {:>5.2} s  CPU {:>4.0}%  {:>5.2} CPU-µs/event",
            events as f64 / self.secs,
            self.secs,
            100.0 * self.cpu / self.secs,
            1e6 * self.cpu / events.max(1) as f64
        )
    }
}

/// One application log line in JSON, about 200 bytes, with a unique `seq`.
fn line(seq: usize) -> String {
    const LEVELS: [&str; 4] = ["info", "info", "warn", "error"];
    const MSGS: [&str; 3] = [
        "request completed",
        "cache miss for key",
        "retrying upstream call after timeout",
    ];
    format!(
        "{{\"ts\":\"2026-11-22T10:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"logger\":\"app.http\",\"msg\":\"{}\",\"trace_id\":\"{:032x}\",\"user_id\":{},\"duration_ms\":{}.{:02},\"seq\":{seq}}}",
        (seq / 60_000) % 60,
        (seq / 1000) % 60,
        seq % 1000,
        LEVELS[seq % 4],
        MSGS[seq % 3],
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        seq % 100_000,
        seq % 900,
        seq % 100
    )
}

/// `events` lines as zstd frames of about 1 MiB of lines each, over four sources.
fn frames(events: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut compressor = Compressor::new(Codec::Zstd, 1).expect("compressor");
    let new_batch = || {
        let mut b = BatchBuilder::new("node-1", 1_795_341_600_000, 1 << 20);
        let sources: Vec<u32> = (0..4)
            .map(|i| b.add_source(&format!("/var/log/app-{i}.log"), &[]))
            .collect();
        (b, sources)
    };
    let mut batch = new_batch();
    for seq in 0..events {
        let observed = 1_795_341_600_000 + seq as u64 / 1000;
        batch
            .0
            .push(batch.1[seq % 4], observed, 0, line(seq).as_bytes());
        if batch.0.raw_len() >= 1 << 20 || seq + 1 == events {
            let (full, _) = std::mem::replace(&mut batch, new_batch());
            let n = out.len() as u64 + 1;
            out.push(full.seal("bench", "s", n, &mut compressor).expect("seal"));
        }
    }
    out
}

/// A queued sink under test: its queue, and the delivery task to run.
struct Queued {
    queue: Arc<SinkQueue>,
    task: DeliveryTask,
}

fn retry() -> RetryConfig {
    RetryConfig {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}

fn queued(store: &QueueStore, name: &str, config: &QueueConfig, sink: Box<dyn Deliver>) -> Queued {
    let queue = store.queue(name, config).expect("queue");
    let task = DeliveryTask::new(
        queue.clone(),
        sink,
        retry(),
        DeliveryFamilies::default(),
        Arc::new(AtomicU64::new(0)),
    );
    Queued { queue, task }
}

fn http_sink(url: &str) -> Box<dyn Deliver> {
    let config: HttpSinkConfig =
        toml::from_str(&format!("url = \"{url}\"\ntimeout = \"60s\"")).expect("http config");
    Box::new(HttpSink::new(&config).expect("http sink"))
}

fn cloudwatch_sink(endpoint: &str) -> Box<dyn Deliver> {
    let config: CloudWatchConfig = toml::from_str(&format!(
        "group = \"/bench/{{host}}\"\nstream = \"{{source.path}}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\n"
    ))
    .expect("cloudwatch config");
    Box::new(
        CloudWatchSink::new("cloudwatch", &config, Adjustments::default())
            .expect("cloudwatch sink")
            .with_static_credentials("AKIDBENCH", "secret"),
    )
}

fn eventhubs_sink(endpoint: &str) -> Box<dyn Deliver> {
    let config: EventHubsConfig = toml::from_str(&format!(
        "connection_string = \"Endpoint=sb://bench.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0\"\n\
         event_hub = \"logs\"\nendpoint = \"{endpoint}\"\ntimeout = \"60s\"\npartition_key = \"{{source.path}}\"\n"
    ))
    .expect("eventhubs config");
    Box::new(
        EventHubsSink::new("eventhubs", &config, Adjustments::default()).expect("eventhubs sink"),
    )
}

/// The sinks with a durable queue of their own, each measured against its peer.
const QUEUED_KINDS: [&str; 3] = ["http", "cloudwatch_logs", "eventhubs"];

/// A queued sink's peer: the HTTP collector and the CloudWatch stub count into a
/// [`Counter`]; the AMQP peer records what it accepts.
enum SinkPeer {
    /// The server is held only to keep it running: dropping it stops it.
    Http {
        _server: Peer,
        counter: Counter,
    },
    Amqp(logferry_eventhubs_peer::Peer),
}

impl SinkPeer {
    /// Starts the peer of `kind` and the sink that sends to it.
    fn start(rt: &tokio::runtime::Runtime, kind: &str) -> (SinkPeer, Box<dyn Deliver>) {
        if kind == "eventhubs" {
            let peer = rt
                .block_on(logferry_eventhubs_peer::Peer::start(Default::default()))
                .expect("event hubs peer");
            let sink = eventhubs_sink(&peer.endpoint());
            return (SinkPeer::Amqp(peer), sink);
        }
        let counter = Counter::default();
        let peer = rt.block_on(Peer::start(kind, counter.clone()));
        let sink = match kind {
            "http" => http_sink(&peer.url()),
            _ => cloudwatch_sink(&peer.url()),
        };
        (
            SinkPeer::Http {
                _server: peer,
                counter,
            },
            sink,
        )
    }

    /// Events the peer has accepted.
    fn events(&self) -> u64 {
        match self {
            SinkPeer::Http { counter, .. } => counter.events(),
            SinkPeer::Amqp(p) => p.event_count() as u64,
        }
    }

    /// Requests (AMQP: batched transfers) the peer has accepted.
    fn requests(&self) -> u64 {
        match self {
            SinkPeer::Http { counter, .. } => counter.requests(),
            SinkPeer::Amqp(p) => p.batches().len() as u64,
        }
    }
}

/// What a pipeline run reached.
struct Reached {
    /// From the pipeline's start until `done` (or the limit).
    span: Span,
    /// Events in the file sink then, if there is one.
    file_events: u64,
    /// Frames still in the inbox at the end.
    waiting_frames: usize,
}

/// Admits `frames` into a fresh inbox in `dir`, runs the pipeline over `sinks` and the
/// delivery tasks of `queued`, and stops when `done` says so or after `limit`.
fn run_pipeline(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    frames: &[Vec<u8>],
    sinks: Vec<Box<dyn Sink>>,
    queued: Vec<Queued>,
    limit: Duration,
    done: &dyn Fn(&Inbox) -> bool,
) -> Reached {
    let inbox = Arc::new(Inbox::open(&dir.join("inbox"), 1 << 40).expect("inbox"));
    for (i, f) in frames.iter().enumerate() {
        let admitted = inbox.admit("bench", "s", i as u64 + 1, f).expect("admit");
        assert_eq!(admitted, Admit::Accepted);
    }
    let workers = std::env::var("LOGFERRY_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let shutdown = Shutdown::new();
    let wake = Arc::new(Wake::default());
    let setup = PipelineSetup {
        inbox: inbox.clone(),
        detector: Detector::new(Zone::Utc, &[], &[]).expect("detector"),
        sinks,
        limits: DecodeLimits::default(),
        workers,
        metrics: Arc::new(Metrics::new()),
        wake: wake.clone(),
        rules: None,
        traffic: None,
        board: None,
        tail: None,
        search: None,
    };
    let clock = Clock::start();
    let pipeline = pipeline::spawn(setup, shutdown.clone()).expect("pipeline");
    // As in the aggregator: delivery starts once the pipeline has committed the queues.
    let stop = Shutdown::new();
    let tasks: Vec<_> = queued
        .into_iter()
        .map(|q| rt.spawn(q.task.run(stop.clone())))
        .collect();
    let deadline = Instant::now() + limit;
    while !done(&inbox) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let span = clock.stop();
    let file_events = peers::count_lines(&dir.join("out.jsonl"));
    let waiting_frames = inbox.len();
    // Not measured: a delivery in flight to a stalled peer gets its grace at stop.
    shutdown.trigger();
    wake.notify();
    pipeline.join().expect("pipeline thread");
    stop.trigger();
    for t in tasks {
        let _ = rt.block_on(t);
    }
    Reached {
        span,
        file_events,
        waiting_frames,
    }
}

fn file_sink(dir: &Path, max_bytes: Option<u64>) -> Box<dyn Sink> {
    let config = FileSinkConfig {
        max_bytes,
        ..FileSinkConfig::plain(dir.join("out.jsonl"))
    };
    Box::new(FileSink::new("file", &config).expect("file sink"))
}

fn queue_config(max_bytes: u64, when_full: &str) -> QueueConfig {
    toml::from_str(&format!(
        "max_bytes = {max_bytes}\nwhen_full = \"{when_full}\"\nbatch_wait = \"20ms\""
    ))
    .expect("queue config")
}

fn through_the_pipeline(rt: &tokio::runtime::Runtime, frames: &[Vec<u8>], events: u64) {
    println!("through the pipeline (inbox -> decode, parse, render -> sink -> peer):");
    for (name, max_bytes) in [
        ("file", None),
        ("file, rotating every 1 MiB", Some(1 << 20)),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let sinks = vec![file_sink(dir.path(), max_bytes)];
        let r = run_pipeline(
            rt,
            dir.path(),
            frames,
            sinks,
            vec![],
            Duration::from_secs(600),
            &|i| i.is_empty(),
        );
        assert_eq!(r.file_events, events, "{name}: every event in the file");
        println!("  {name:<28} {}", r.span.report(events));
    }
    for kind in QUEUED_KINDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = QueueStore::open(&dir.path().join("queues")).expect("queues");
        let (peer, deliver) = SinkPeer::start(rt, kind);
        let q = queued(&store, kind, &queue_config(1 << 30, "block"), deliver);
        let sinks: Vec<Box<dyn Sink>> = vec![Box::new(QueueSink::new(
            q.queue.clone(),
            Default::default(),
        ))];
        let r = run_pipeline(
            rt,
            dir.path(),
            frames,
            sinks,
            vec![q],
            Duration::from_secs(600),
            &|_| peer.events() >= events,
        );
        assert_eq!(
            peer.events(),
            events,
            "{kind}: every event at the peer once"
        );
        println!(
            "  {kind:<28} {}  ({} requests)",
            r.span.report(events),
            peer.requests()
        );
    }
}

/// Output-shaped JSON lines, as the pipeline renders them.
fn rendered(events: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(events * 400);
    for seq in 0..events {
        out.extend_from_slice(
            format!(
                "{{\"timestamp\":\"2026-11-22T10:00:00.123Z\",\"observed_timestamp\":\"2026-11-22T10:00:00.130Z\",\"level\":\"info\",\"message\":\"request completed seq={seq}\",\"host\":\"node-1\",\"format\":\"json\",\"source\":{{\"type\":\"file\",\"path\":\"/var/log/app-{}.log\"}},\"fields\":{{\"user_id\":{seq},\"trace_id\":\"{:032x}\",\"duration_ms\":12.5}}}}\n",
                seq % 4,
                seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )
            .as_bytes(),
        );
    }
    out
}

fn queue_drain(rt: &tokio::runtime::Runtime, events: u64) {
    println!("queue drain (filled queue -> delivery task -> peer):");
    let lines = rendered(events as usize);
    for kind in QUEUED_KINDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = QueueStore::open(&dir.path().join("queues")).expect("queues");
        let (peer, deliver) = SinkPeer::start(rt, kind);
        let q = queued(&store, kind, &queue_config(1 << 30, "block"), deliver);
        // Entries of about 1 MiB, as the pipeline appends them.
        let mut rest = &lines[..];
        while !rest.is_empty() {
            let cut = rest.len().min(1 << 20);
            let cut = memchr::memrchr(b'\n', &rest[..cut]).map_or(rest.len(), |i| i + 1);
            let n = memchr::memchr_iter(b'\n', &rest[..cut]).count() as u32;
            q.queue.append(&rest[..cut], n, 1).expect("append");
            rest = &rest[cut..];
        }
        q.queue.flush().expect("flush");
        q.queue.commit(q.queue.position());
        let stop = Shutdown::new();
        let clock = Clock::start();
        let task = rt.spawn(q.task.run(stop.clone()));
        while peer.events() < events {
            std::thread::sleep(Duration::from_millis(1));
        }
        let report = clock.stop().report(events);
        stop.trigger();
        let _ = rt.block_on(task);
        assert_eq!(peer.events(), events, "{kind}: every event once");
        println!("  {kind:<28} {report}  ({} requests)", peer.requests());
    }
}

/// The http sink next to the file sink in an isolation run.
struct OtherSink {
    when_full: &'static str,
    max_bytes: u64,
    stalled: bool,
}

fn isolation(rt: &tokio::runtime::Runtime, frames: &[Vec<u8>], events: u64) {
    println!("isolation (the file sink's throughput, next to an http sink):");
    let http = |when_full, max_bytes, stalled| {
        Some(OtherSink {
            when_full,
            max_bytes,
            stalled,
        })
    };
    let cases = [
        ("file alone", None),
        ("+ http, healthy", http("block", 1 << 30, false)),
        (
            "+ http stalled, drop_oldest 8 MiB",
            http("drop_oldest", 8 << 20, true),
        ),
        ("+ http stalled, block 1 GiB", http("block", 1 << 30, true)),
        ("+ http stalled, block 8 MiB", http("block", 8 << 20, true)),
    ];
    for (name, http) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = QueueStore::open(&dir.path().join("queues")).expect("queues");
        let mut sinks = vec![file_sink(dir.path(), None)];
        let mut queued_sinks = Vec::new();
        let mut queue = None;
        let mut _peer = None;
        if let Some(OtherSink {
            when_full,
            max_bytes,
            stalled,
        }) = &http
        {
            let (when_full, max_bytes, stalled) = (*when_full, *max_bytes, *stalled);
            let counter = Counter::default();
            let peer = if stalled {
                rt.block_on(Peer::stalled())
            } else {
                rt.block_on(Peer::start("http", counter))
            };
            let q = queued(
                &store,
                "http",
                &queue_config(max_bytes, when_full),
                http_sink(&peer.url()),
            );
            sinks.push(Box::new(QueueSink::new(
                q.queue.clone(),
                Default::default(),
            )));
            queue = Some(q.queue.clone());
            queued_sinks.push(q);
            _peer = Some(peer);
        }
        // A run the stalled queue holds back is given 10 s.
        let held = http
            .as_ref()
            .is_some_and(|h| h.stalled && h.when_full == "block" && h.max_bytes < 1 << 30);
        let limit = Duration::from_secs(if held { 10 } else { 600 });
        let r = run_pipeline(rt, dir.path(), frames, sinks, queued_sinks, limit, &|i| {
            i.is_empty()
        });
        let report = r.span.report(r.file_events);
        let dropping = http.as_ref().is_some_and(|h| h.when_full == "drop_oldest");
        let queued_now = queue.map_or(String::new(), |q| {
            let level = q.level();
            let dropped = if dropping {
                format!(", {} dropped", r.file_events.saturating_sub(level.events))
            } else {
                String::new()
            };
            format!(
                "; http queue at the end: {} events, {} MiB{dropped}",
                level.events,
                level.bytes >> 20
            )
        });
        if r.file_events == events {
            println!("  {name:<36} {report}{queued_now}");
        } else {
            println!(
                "  {name:<36} held back after {} of {events} events in {:.1} s ({} batches waiting in the inbox){queued_now}",
                r.file_events,
                r.span.secs,
                r.waiting_frames
            );
        }
    }
}

fn main() {
    let events: usize = std::env::var("LOGFERRY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only.split(',').any(|o| o == part);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let frames = frames(events);
    let events = events as u64;
    println!(
        "sinks: {events} events of about 200 bytes per run, {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if wanted("pipeline") {
        through_the_pipeline(&rt, &frames, events);
    }
    if wanted("drain") {
        queue_drain(&rt, events);
    }
    if wanted("isolation") {
        isolation(&rt, &frames, events);
    }
}
