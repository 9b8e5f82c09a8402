//! Both real binaries: an agent tails files and ships them to an aggregator, which writes
//! them to its file sink. Every line written must arrive exactly once: in steady flow,
//! across an aggregator restart on the same port, and across an agent SIGKILL and restart.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use logferry_e2e::{sink, wait_until, Agent, AgentOptions, Aggregator, AggregatorOptions, TestDir};

/// How long all lines may take to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// A small deterministic generator (xorshift), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Log files being appended to, and every line written so far.
struct LogWriter {
    paths: Vec<PathBuf>,
    /// Opened (created) on the first write, so the agent discovers them by scanning.
    files: Vec<Option<File>>,
    next_seq: Vec<usize>,
    /// message → the file it was written to.
    written: HashMap<String, String>,
    rng: Rng,
    split_writes: usize,
}

impl LogWriter {
    fn create(dir: &TestDir, count: usize) -> LogWriter {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).expect("create logs dir");
        let paths: Vec<PathBuf> = (0..count)
            .map(|i| logs.join(format!("app-{i}.log")))
            .collect();
        LogWriter {
            files: paths.iter().map(|_| None).collect(),
            paths,
            next_seq: vec![0; count],
            written: HashMap::new(),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            split_writes: 0,
        }
    }

    fn include(&self, dir: &TestDir) -> Vec<String> {
        vec![format!("{}/logs/*.log", dir.path().display())]
    }

    fn line(&mut self, file: usize) -> String {
        let seq = self.next_seq[file];
        self.next_seq[file] += 1;
        let pad_len = self.rng.below(160) as usize;
        let pad: String = (0..pad_len)
            .map(|i| (b'a' + ((i * 7 + seq) % 26) as u8) as char)
            .collect();
        let extra = match seq % 5 {
            0 => " quote=\"q\" tab=\t backslash=\\ accent=é",
            1 => " level=info",
            2 => " {\"json\":true}",
            _ => "",
        };
        format!("file={file} seq={seq} pad={pad}{extra}")
    }

    /// Appends `lines_per_file` lines to every file, in chunks of random size; each chunk
    /// is written in two calls cut at a random byte, so most chunks split a line in two.
    /// With `pause`, the first chunk of each file waits that long between its halves, so
    /// the agent (polling every 100 ms) surely reads the first half on its own.
    fn write_round(&mut self, lines_per_file: usize, pause: Option<Duration>) {
        for f in 0..self.files.len() {
            let mut left = lines_per_file;
            let mut pause = pause;
            while left > 0 {
                let n = (1 + self.rng.below(400) as usize).min(left);
                left -= n;
                let mut chunk = Vec::new();
                for _ in 0..n {
                    let line = self.line(f);
                    chunk.extend_from_slice(line.as_bytes());
                    chunk.push(b'\n');
                    let path = self.paths[f].to_string_lossy().into_owned();
                    assert!(
                        self.written.insert(line, path).is_none(),
                        "generated a line twice"
                    );
                }
                let cut = self.rng.below(chunk.len() as u64) as usize;
                // Never cut inside a multi-byte character: the halves are written raw
                // anyway, but keep the first half valid for a reader that peeks.
                let cut = (0..=cut)
                    .rev()
                    .find(|i| chunk.get(*i).is_none_or(|b| (*b & 0xc0) != 0x80))
                    .unwrap_or(0);
                if cut > 0 && chunk[cut - 1] != b'\n' {
                    self.split_writes += 1;
                }
                let path = &self.paths[f];
                let file = self.files[f].get_or_insert_with(|| {
                    File::options()
                        .create(true)
                        .append(true)
                        .open(path)
                        .expect("create log file")
                });
                file.write_all(&chunk[..cut]).expect("write log");
                file.flush().expect("flush log");
                if let Some(p) = pause.take() {
                    // Scenario pacing, not synchronisation: leave a half line on disk.
                    std::thread::sleep(p);
                }
                file.write_all(&chunk[cut..]).expect("write log");
                file.flush().expect("flush log");
            }
        }
    }

    fn total(&self) -> usize {
        self.written.len()
    }
}

/// Waits until the sink holds at least `n` events; the error says how many arrived.
fn wait_for_events(agg: &Aggregator, n: usize, timeout: Duration) {
    let start = Instant::now();
    let mut last = 0;
    let waited = wait_until(timeout, &format!("{n} events in the sink"), || {
        last = sink::count_lines(&agg.sink_path).unwrap_or(0);
        last >= n
    });
    if let Err(e) = waited {
        panic!("{e}: only {last} arrived in {:?}", start.elapsed());
    }
}

/// Every written line exactly once, from the right file and host.
fn assert_exactly_once(agg: &Aggregator, w: &LogWriter) {
    let events = agg.events().expect("read the sink");
    let counts = sink::message_counts(&events);
    let dups = sink::duplicates(&counts, 10);
    assert!(
        dups.is_empty(),
        "{} events for {} lines; duplicated, e.g.: {dups:?}",
        events.len(),
        w.total()
    );
    let missing: Vec<&String> = w
        .written
        .keys()
        .filter(|m| !counts.contains_key(*m))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines never arrived, e.g.: {missing:?}",
        w.total() - counts.len().min(w.total()),
        w.total()
    );
    let unexpected: Vec<&String> = counts
        .keys()
        .filter(|m| !w.written.contains_key(*m))
        .take(10)
        .collect();
    assert!(
        unexpected.is_empty(),
        "the sink holds lines never written, e.g.: {unexpected:?}"
    );
    assert_eq!(events.len(), w.total());
    for e in &events {
        let message = e["message"].as_str().expect("message is a string");
        let expected_path = &w.written[message];
        assert_eq!(
            sink::source_path(e),
            Some(expected_path.as_str()),
            "wrong source for {e}"
        );
        assert_eq!(e["host"], "test-node", "wrong host in {e}");
        assert_eq!(e["source"]["type"], "file", "{e}");
        assert!(
            e["fields"].get("truncated").is_none(),
            "a line was flagged truncated: {e}"
        );
    }
}

#[test]
fn hundred_thousand_lines_arrive_exactly_once() {
    let dir = TestDir::new().expect("test dir");
    let mut writer = LogWriter::create(&dir, 5);
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let mut agent = Agent::start(
        &dir,
        AgentOptions::new(agg.ingest_url(), &writer.include(&dir)),
    )
    .expect("start agent");

    // A first round, and wait until lines flow, so the rest is written while the agent
    // is busy reading and shipping.
    writer.write_round(1_000, Some(Duration::from_millis(300)));
    wait_for_events(&agg, 1, Duration::from_secs(30));
    for _ in 0..19 {
        writer.write_round(1_000, None);
    }
    assert_eq!(writer.total(), 100_000);
    assert!(
        writer.split_writes > 100,
        "only {} lines were split across writes",
        writer.split_writes
    );

    wait_for_events(&agg, writer.total(), DELIVERY_TIMEOUT);
    agent.stop().expect("agent exits 0 on SIGTERM");
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    // Read after both stopped, so late duplicates would show.
    assert_exactly_once(&agg, &writer);
}

#[test]
fn aggregator_restart_loses_and_duplicates_nothing() {
    let dir = TestDir::new().expect("test dir");
    let mut writer = LogWriter::create(&dir, 5);
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &writer.include(&dir)).retry_max("500ms");
    let mut agent = Agent::start(&dir, options).expect("start agent");

    for _ in 0..4 {
        writer.write_round(1_000, None);
    }
    wait_for_events(&agg, 1, Duration::from_secs(30));

    // Stop the aggregator while the agent is mid-stream, and keep writing during the
    // outage (a fixed-length outage is the scenario here, not a synchronisation).
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    let before_restart = sink::count_lines(&agg.sink_path).expect("count");
    let outage = Instant::now();
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(3) && rounds < 40 {
        rounds += 1;
        writer.write_round(100, None);
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        agent.is_running(),
        "the agent died while the aggregator was down"
    );
    assert_eq!(
        sink::count_lines(&agg.sink_path).expect("count"),
        before_restart,
        "the sink grew while the aggregator was down"
    );

    let mut agg = Aggregator::restart(&dir, agg.restart_options())
        .expect("restart the aggregator on the same port");
    let target: usize = 10_000 * 5;
    let per_file_left = target.saturating_sub(writer.total()) / 5;
    writer.write_round(per_file_left, Some(Duration::from_millis(300)));
    assert_eq!(writer.total(), target, "line plan");

    wait_for_events(&agg, writer.total(), DELIVERY_TIMEOUT);
    agent.stop().expect("agent exits 0 on SIGTERM");
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    assert_exactly_once(&agg, &writer);
}

/// Beyond the agent's contract in the brief, but what its spool promises: after a
/// SIGKILL, the restarted agent resends what it had spooled (same seqs, so the
/// aggregator drops what it already has) and resumes each file at its checkpoint.
#[test]
fn agent_crash_loses_and_duplicates_nothing() {
    let dir = TestDir::new().expect("test dir");
    let mut writer = LogWriter::create(&dir, 5);
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &writer.include(&dir)).retry_max("500ms");
    let mut agent = Agent::start(&dir, options.clone()).expect("start agent");

    for _ in 0..4 {
        writer.write_round(1_000, None);
    }
    wait_for_events(&agg, 1, Duration::from_secs(30));
    agent.kill9().expect("SIGKILL the agent");
    // Lines written while no agent runs are read after the restart, from the checkpoints.
    for _ in 0..2 {
        writer.write_round(1_000, None);
    }
    let mut agent = Agent::start(&dir, options).expect("restart the agent on its spool");
    for _ in 0..4 {
        writer.write_round(1_000, None);
    }
    assert_eq!(writer.total(), 50_000);

    wait_for_events(&agg, writer.total(), DELIVERY_TIMEOUT);
    agent.stop().expect("agent exits 0 on SIGTERM");
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    assert_exactly_once(&agg, &writer);
}

/// The aggregator's inbox promise: a batch answered 2xx survives a SIGKILL, and the file
/// sink is cut back to its recorded length and refilled, so after three kills under load
/// every line is in the sink exactly once.
#[test]
fn aggregator_kill9_loses_and_duplicates_nothing() {
    let dir = TestDir::new().expect("test dir");
    let mut writer = LogWriter::create(&dir, 5);
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &writer.include(&dir)).retry_max("300ms");
    let mut agent = Agent::start(&dir, options).expect("start agent");

    for kill in 0..3 {
        for _ in 0..3 {
            writer.write_round(1_000, None);
        }
        // Kill while batches flow: wait until this round's lines start arriving.
        let arrived = sink::count_lines(&agg.sink_path).unwrap_or(0);
        wait_for_events(&agg, arrived + 1, Duration::from_secs(30));
        agg.kill9().expect("SIGKILL the aggregator");
        writer.write_round(500, None);
        agg = Aggregator::restart(&dir, agg.restart_options())
            .unwrap_or_else(|e| panic!("restart {kill} of the aggregator: {e}"));
    }
    wait_for_events(&agg, writer.total(), DELIVERY_TIMEOUT);
    agent.stop().expect("agent exits 0 on SIGTERM");
    agg.stop().expect("aggregator exits 0 on SIGTERM");
    assert_exactly_once(&agg, &writer);
}
