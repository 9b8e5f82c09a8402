//! Tests of the ordered parallel pipeline: output order, damaged frames, failed writes,
//! and sink positions.

use std::time::Duration;

use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::wire::BatchBuilder;

use super::*;
use crate::sink::FileSink;

fn detector() -> Detector {
    Detector::new(crate::parse::Zone::Utc, &[], &[]).unwrap()
}

fn start(
    inbox: Arc<Inbox>,
    sinks: Vec<Box<dyn Sink>>,
    workers: usize,
    metrics: Arc<Metrics>,
    shutdown: &Shutdown,
) -> (JoinHandle<()>, Arc<Wake>) {
    let wake = Arc::new(Wake::default());
    let setup = PipelineSetup {
        inbox,
        detector: detector(),
        sinks,
        limits: DecodeLimits::default(),
        workers,
        metrics,
        wake: wake.clone(),
        rules: None,
        traffic: None,
        board: None,
        tail: None,
        search: None,
    };
    (spawn(setup, shutdown.clone()).unwrap(), wake)
}

/// A frame of `lines` lines `f<frame>-l<line>` (plain text), sealed uncompressed.
fn frame(n: usize, lines: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new("node-1", 1_795_341_600_000, 1 << 20);
    let src = b.add_source("/var/log/app.log", &[]);
    for l in 0..lines {
        b.push(src, 1_795_341_600_000, 0, format!("f{n}-l{l}").as_bytes());
    }
    let mut c = Compressor::new(Codec::None, 0).unwrap();
    b.seal("agent", "s", n as u64, &mut c).unwrap()
}

/// The messages written, in order.
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Compares line by line, naming the first difference (the lists are long).
fn assert_lines(got: &[String], want: &[String]) {
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!("line {i}: got {:?}, want {:?}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "number of lines");
}

fn expected(frames: &[(usize, usize)]) -> Vec<String> {
    frames
        .iter()
        .flat_map(|&(n, lines)| (0..lines).map(move |l| format!("f{n}-l{l}")))
        .collect()
}

/// Waits until the inbox is empty, then stops the pipeline.
fn drain_and_stop(inbox: &Inbox, handle: JoinHandle<()>, wake: &Wake, shutdown: &Shutdown) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inbox.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(inbox.is_empty(), "the pipeline did not drain the inbox");
    shutdown.trigger();
    wake.notify();
    handle.join().unwrap();
}

#[test]
fn workers_finish_out_of_order_but_sinks_see_inbox_order() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 30).unwrap());
    // Frame sizes vary a lot, so a small frame often finishes before a big one before it.
    let sizes: Vec<(usize, usize)> = (0..60)
        .map(|n| (n, if n % 3 == 0 { 3000 } else { 1 + n % 7 }))
        .collect();
    let shutdown = Shutdown::new();
    let out = dir.path().join("out.jsonl");
    let sink = FileSink::open("out", &out).unwrap();
    let (handle, wake) = start(
        inbox.clone(),
        vec![Box::new(sink)],
        4,
        Arc::new(Metrics::new()),
        &shutdown,
    );
    // Admitted while the pipeline runs, so rounds end at many different points.
    for &(n, lines) in &sizes {
        assert_eq!(
            inbox
                .admit("agent", "s", n as u64 + 1, &frame(n, lines))
                .unwrap(),
            crate::inbox::Admit::Accepted
        );
        wake.notify();
    }
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_lines(&messages(&text), &expected(&sizes));
    assert_eq!(
        inbox.position(&format!("file:{}", out.display())).unwrap(),
        Some(Position {
            generation: 1,
            offset: text.len() as u64
        })
    );
}

#[test]
fn a_body_ingest_decompressed_is_used_instead_of_the_stored_frame() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 20).unwrap());
    // The kept body says something else than the stored frame, to tell which was read.
    let kept = logferry_shared::wire::decode_frame(&frame(9, 2), &DecodeLimits::default()).unwrap();
    let decoded = crate::inbox::Decoded {
        record_count: kept.header.record_count,
        body: kept.body,
    };
    inbox
        .admit_decoded("agent", "s", 1, &frame(1, 3), Some(decoded))
        .unwrap();
    inbox.admit("agent", "s", 2, &frame(2, 1)).unwrap();
    let shutdown = Shutdown::new();
    let out = dir.path().join("out.jsonl");
    let (handle, wake) = start(
        inbox.clone(),
        vec![Box::new(FileSink::open("out", &out).unwrap())],
        2,
        Arc::new(Metrics::new()),
        &shutdown,
    );
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_lines(&messages(&text), &expected(&[(9, 2), (2, 1)]));
}

#[test]
fn a_damaged_frame_is_dropped_and_counted_and_the_rest_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 20).unwrap());
    inbox.admit("agent", "s", 1, &frame(1, 3)).unwrap();
    let mut damaged = frame(2, 3);
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    inbox.admit("agent", "s", 2, &damaged).unwrap();
    inbox.admit("agent", "s", 3, &frame(3, 2)).unwrap();
    let shutdown = Shutdown::new();
    let out = dir.path().join("out.jsonl");
    let metrics = Arc::new(Metrics::new());
    let (handle, wake) = start(
        inbox.clone(),
        vec![Box::new(FileSink::open("out", &out).unwrap())],
        2,
        metrics.clone(),
        &shutdown,
    );
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_lines(&messages(&text), &expected(&[(1, 3), (3, 2)]));
    assert_eq!(metrics.inbox_corrupt_frames.get(), 1);
}

/// An in-memory sink that fails one write, to drive the pipeline's recovery.
#[derive(Debug)]
struct FlakySink {
    data: Arc<Mutex<Vec<u8>>>,
    writes: usize,
    fail_at: usize,
}

impl Sink for FlakySink {
    fn name(&self) -> &str {
        "flaky"
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.writes += 1;
        if self.writes == self.fail_at {
            // Half the lines get through before the failure, as with a full disk.
            let half = &lines[..lines.len() / 2];
            self.data.lock().unwrap().extend_from_slice(half);
            return Err(std::io::Error::other("disk full"));
        }
        self.data.lock().unwrap().extend_from_slice(lines);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn position(&self) -> Option<Position> {
        Some(Position::at(self.data.lock().unwrap().len() as u64))
    }

    fn rewind_to(&mut self, position: Position) -> std::io::Result<()> {
        self.data.lock().unwrap().truncate(position.offset as usize);
        Ok(())
    }
}

#[test]
fn a_failed_write_is_redone_and_every_line_lands_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 30).unwrap());
    let sizes: Vec<(usize, usize)> = (0..20).map(|n| (n, 50 + n * 13)).collect();
    for &(n, lines) in &sizes {
        inbox
            .admit("agent", "s", n as u64 + 1, &frame(n, lines))
            .unwrap();
    }
    let data = Arc::new(Mutex::new(Vec::new()));
    let sink = FlakySink {
        data: data.clone(),
        writes: 0,
        fail_at: 7,
    };
    let shutdown = Shutdown::new();
    let metrics = Arc::new(Metrics::new());
    let (handle, wake) = start(
        inbox.clone(),
        vec![Box::new(sink)],
        3,
        metrics.clone(),
        &shutdown,
    );
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
    assert_lines(&messages(&text), &expected(&sizes));
    assert_eq!(
        metrics
            .sink_errors
            .get_or_create(&SinkLabel {
                sink: "flaky".into()
            })
            .get(),
        1
    );
}

/// A sink whose one write fails, after which its first rewinds fail half-way, cutting
/// back only part of what they should (as a storage error in the middle of removing
/// entries would).
#[derive(Debug)]
struct HalfRewindSink {
    data: Arc<Mutex<Vec<u8>>>,
    writes: usize,
    fail_at: usize,
    failing_rewinds: usize,
    /// A rewind failed and none succeeded since.
    unrewound: bool,
    /// Writes made while `unrewound`.
    writes_unrewound: Arc<Mutex<usize>>,
}

impl Sink for HalfRewindSink {
    fn name(&self) -> &str {
        "half"
    }

    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if self.unrewound {
            *self.writes_unrewound.lock().unwrap() += 1;
        }
        self.writes += 1;
        if self.writes == self.fail_at {
            return Err(std::io::Error::other("disk full"));
        }
        self.data.lock().unwrap().extend_from_slice(lines);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn position(&self) -> Option<Position> {
        Some(Position::at(self.data.lock().unwrap().len() as u64))
    }

    fn rewind_to(&mut self, position: Position) -> std::io::Result<()> {
        let mut data = self.data.lock().unwrap();
        if self.failing_rewinds > 0 {
            self.failing_rewinds -= 1;
            let halfway = (position.offset as usize + data.len()).div_ceil(2);
            data.truncate(halfway);
            self.unrewound = true;
            return Err(std::io::Error::other("storage error half-way"));
        }
        data.truncate(position.offset as usize);
        self.unrewound = false;
        Ok(())
    }
}

#[test]
fn a_failed_rewind_holds_every_write_back_until_a_rewind_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 30).unwrap());
    let sizes: Vec<(usize, usize)> = (0..20).map(|n| (n, 40 + n * 7)).collect();
    for &(n, lines) in &sizes {
        inbox
            .admit("agent", "s", n as u64 + 1, &frame(n, lines))
            .unwrap();
    }
    let data = Arc::new(Mutex::new(Vec::new()));
    let writes_unrewound = Arc::new(Mutex::new(0));
    let sink = HalfRewindSink {
        data: data.clone(),
        writes: 0,
        fail_at: 9,
        failing_rewinds: 2,
        unrewound: false,
        writes_unrewound: writes_unrewound.clone(),
    };
    // A file sink next to it must not get anything twice either.
    let out = dir.path().join("out.jsonl");
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(sink),
        Box::new(FileSink::open("out", &out).unwrap()),
    ];
    let shutdown = Shutdown::new();
    let metrics = Arc::new(Metrics::new());
    let (handle, wake) = start(inbox.clone(), sinks, 3, metrics.clone(), &shutdown);
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    assert_eq!(
        *writes_unrewound.lock().unwrap(),
        0,
        "written while not cut back"
    );
    let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
    assert_lines(&messages(&text), &expected(&sizes));
    let file = std::fs::read_to_string(&out).unwrap();
    assert_lines(&messages(&file), &expected(&sizes));
    // The failed write and the two failed rewinds.
    assert_eq!(
        metrics
            .sink_errors
            .get_or_create(&SinkLabel {
                sink: "half".into()
            })
            .get(),
        3
    );
}

#[test]
fn a_sink_is_cut_back_only_in_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 20).unwrap());
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(&a, vec![b'x'; 100]).unwrap();
    std::fs::write(&b, vec![b'y'; 100]).unwrap();
    // A crash left 40 unrecorded bytes in a.jsonl: its recorded length is 60.
    inbox
        .complete(&[], &[(&format!("file:{}", a.display()), Position::at(60))])
        .unwrap();

    // The same sink name pointed at b.jsonl: b is never cut back.
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let metrics = Arc::new(Metrics::new());
    let sink = FileSink::open("out", &b).unwrap();
    let (handle, _) = start(
        inbox.clone(),
        vec![Box::new(sink)],
        2,
        metrics.clone(),
        &shutdown,
    );
    handle.join().unwrap();
    assert_eq!(std::fs::metadata(&b).unwrap().len(), 100);
    assert_eq!(
        inbox.position(&format!("file:{}", b.display())).unwrap(),
        Some(Position {
            generation: 1,
            offset: 100
        })
    );

    // Pointed back at a.jsonl: cut back to its recorded 60 bytes.
    let sink = FileSink::open("out", &a).unwrap();
    let (handle, _) = start(inbox.clone(), vec![Box::new(sink)], 2, metrics, &shutdown);
    handle.join().unwrap();
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 60);
}

/// A full queued sink holds the pipeline back: nothing new leaves the inbox (so ingest
/// pushes back) until the queue has room again; then every line arrives once, in order,
/// in both the queue and the file sink next to it.
#[test]
fn a_full_sink_queue_holds_batches_in_the_inbox_until_it_drains() {
    use crate::sink::queue::{QueueConfig, QueueSink, QueueStore};
    let dir = tempfile::tempdir().unwrap();
    let inbox = Arc::new(Inbox::open(&dir.path().join("inbox"), 1 << 30).unwrap());
    let store = QueueStore::open(&dir.path().join("queues")).unwrap();
    let config = QueueConfig {
        max_bytes: 1,
        ..QueueConfig::default()
    };
    let queue = store.queue("q", &config).unwrap();
    let out = dir.path().join("out.jsonl");
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(FileSink::open("out", &out).unwrap()),
        Box::new(QueueSink::new(queue.clone(), Default::default())),
    ];
    let shutdown = Shutdown::new();
    let (handle, wake) = start(inbox.clone(), sinks, 2, Arc::new(Metrics::new()), &shutdown);
    inbox.admit("agent", "s", 1, &frame(0, 5)).unwrap();
    wake.notify();
    // The first frame fills the queue (its bound is one byte).
    let deadline = Instant::now() + Duration::from_secs(20);
    while queue.level().events < 5 {
        assert!(
            Instant::now() < deadline,
            "the first frame never reached the queue"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(queue.is_full());
    for n in 1..4 {
        inbox
            .admit("agent", "s", n as u64 + 1, &frame(n, 5))
            .unwrap();
        wake.notify();
    }
    // Held back: the three frames stay in the inbox while the queue is full.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        assert_eq!(
            inbox.len(),
            3,
            "a frame left the inbox while the queue was full"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Deliver what is queued: the pipeline takes the rest.
    let drain = || {
        let mut t = queue.take(1000, 1 << 20).unwrap();
        for p in &mut t.pending {
            p.outcome = crate::sink::remote::Outcome::Delivered;
        }
        queue.settle(&t, 1).unwrap();
        t.pending
            .iter()
            .map(|p| {
                let v: serde_json::Value = serde_json::from_slice(&p.line).unwrap();
                v["message"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<String>>()
    };
    let mut delivered = drain();
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered.len() < 20 {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not resume: {delivered:?}"
        );
        delivered.extend(drain());
        std::thread::sleep(Duration::from_millis(5));
    }
    drain_and_stop(&inbox, handle, &wake, &shutdown);
    let want = expected(&[(0, 5), (1, 5), (2, 5), (3, 5)]);
    assert_lines(&delivered, &want);
    assert_lines(&messages(&std::fs::read_to_string(&out).unwrap()), &want);
}
