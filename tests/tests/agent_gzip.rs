//! The agent reading gzip-compressed files, as real processes: files made by the real
//! `gzip` (one member, and several as `gzip -c a b` writes them) read through three
//! SIGKILLs in the middle of them (the aggregator down, so that the agent stops there on
//! its full spool); the real `logrotate` with `compress` and
//! `delaycompress` rotating a file while it is written, with the agent killed and kept
//! down across two rotations; a corrupt file and one still being written.
//!
//! Every line carries a unique id (`line-<file>-<n>`); at the end the aggregator's file
//! sink is compared with what was written: every line exactly once, or, where the test
//! says why, an exactly explained difference.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use logferry_e2e::lines::{self, Accounting, Ledger, Reopen, Writer, WriterOptions};
use logferry_e2e::logrotate::{gunzip, gzip_files, logrotate_or_skip, run_logrotate};
use logferry_e2e::TestDir;
use logferry_e2e::{http, sink, wait_until, Agent, AgentOptions, Aggregator, AggregatorOptions};

/// How long all lines may take to arrive once writing stopped.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(180);

const CORRUPT: &str = "logferry_agent_gzip_corrupt_files_total";
const INCOMPLETE: &str = "logferry_agent_gzip_incomplete_files_total";
const COPIES: &str = "logferry_agent_gzip_copies_total";
const LINES_READ: &str = "logferry_agent_lines_read_total";
const ACKED: &str = "logferry_agent_batches_acked_total";

/// Writes `count` new lines of `tag` to the plain file `path`, recording them.
fn plain_file(
    path: &Path,
    rng: &mut fastrand::Rng,
    ledger: &mut Ledger,
    tag: &str,
    count: usize,
) -> PathBuf {
    let made = lines::make_lines(rng, tag, 0, count);
    for l in &made {
        ledger.record(l);
    }
    std::fs::write(path, lines::with_newlines(&made)).expect("write a plain file");
    path.to_owned()
}

/// The sink's event count.
fn in_sink(agg: &Aggregator) -> usize {
    sink::count_lines(&agg.sink_path).unwrap_or(0)
}

/// Waits until the agent stopped reading: its spool is full while the aggregator is down,
/// which `/readyz` reports with 503 (reading is blocked until a batch is acknowledged).
/// Returns the lines it read.
fn wait_stalled(agent: &Agent, client: &reqwest::blocking::Client) -> usize {
    wait_until(
        DELIVERY_TIMEOUT,
        "the agent to stop reading on its full spool (/readyz 503)",
        || {
            agent
                .admin_get(client, "/readyz")
                .is_ok_and(|(status, _)| status == 503)
        },
    )
    .unwrap_or_else(|e| {
        let state = agent.admin_get(client, "/readyz").map(|(_, b)| b);
        let metrics = agent.metrics(client).unwrap_or_default();
        let metrics: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && (l.contains("spool") || l.contains("lag") || l.contains("read"))
            })
            .collect();
        panic!(
            "{e}\n/readyz: {state:?}\n{}\n{}",
            metrics.join("\n"),
            agent.process.log_tail()
        )
    });
    metric(agent, client, LINES_READ) as usize
}

/// `logferry_agent_input_lag_bytes` summed over the inputs: compressed bytes not read yet.
fn input_lag(agent: &Agent, client: &reqwest::blocking::Client) -> f64 {
    let text = agent
        .metrics(client)
        .unwrap_or_else(|e| panic!("reading the metrics: {e:#}"));
    let series: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("logferry_agent_input_lag_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !series.is_empty(),
        "no input lag among the metrics:\n{text}"
    );
    series.iter().sum()
}

fn metric(agent: &Agent, client: &reqwest::blocking::Client, series: &str) -> f64 {
    agent
        .metric(client, series)
        .unwrap_or_else(|e| panic!("reading {series}: {e:#}\n{}", agent.process.log_tail()))
}

#[test]
fn compressed_files_read_through_three_kills_arrive_exactly_once() {
    let seed = lines::seed("compressed_files_three_kills");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let (src, logs) = (dir.join("src"), dir.join("logs"));
    std::fs::create_dir_all(&src).expect("create src");
    std::fs::create_dir_all(&logs).expect("create logs");
    let mut ledger = Ledger::new();
    let big = plain_file(&src.join("big"), &mut rng, &mut ledger, "big", 150_000);
    gzip_files(&[&big], &logs.join("big.log.gz"));
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| {
            let tag = format!("multi{i}");
            plain_file(&src.join(&tag), &mut rng, &mut ledger, &tag, 40_000)
        })
        .collect();
    let parts: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    gzip_files(&parts, &logs.join("multi.log.gz"));
    let total = ledger.len();

    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    // A small spool that blocks: with the aggregator down, the agent reads until the spool
    // is full and stops in the middle of the files; it is killed there.
    let options = AgentOptions::new(agg.ingest_url(), &[format!("{}/*.gz", logs.display())])
        .compression("gzip")
        .batch_max_bytes(64 << 10)
        .spool(256 << 10, "block")
        .retry_max("300ms");
    let client = http::client(&dir, false).expect("client");
    let mut agent = Agent::start(&dir, options.clone()).expect("start the agent");
    for kill in 1..=3 {
        // Progress before each outage, so the kills fall all through the files: this
        // agent has read 40,000 lines (of 270,000) and a batch of it is acknowledged.
        // Asked of the agent's metrics, not by counting the sink's lines: counting 100,000
        // lines of the sink in this debug build takes long enough for the agent to send the
        // rest of the files meanwhile, and then it never stalls in the middle of them.
        wait_until(DELIVERY_TIMEOUT, "progress before the outage", || {
            agent
                .metric(&client, LINES_READ)
                .is_ok_and(|n| n >= 40_000.0)
                && agent.metric(&client, ACKED).is_ok_and(|n| n > 0.0)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.process.log_tail()));
        agg.stop().expect("the aggregator exits 0 on SIGTERM");
        let read = wait_stalled(&agent, &client);
        let arrived = in_sink(&agg);
        let lag = input_lag(&agent, &client);
        assert!(
            lag > 0.0,
            "kill {kill}: the agent read the files to their end before it stalled ({arrived} \
             in the sink, {read} read by this agent)"
        );
        agent.kill9().expect("SIGKILL the agent");
        eprintln!(
            "kill {kill}: {arrived} of {total} lines in the sink, {read} read by the agent, \
             {lag} compressed bytes not read yet"
        );
        agg = Aggregator::restart(&dir, agg.restart_options()).expect("restart the aggregator");
        agent = Agent::start(&dir, options.clone())
            .unwrap_or_else(|e| panic!("restart {kill} of the agent: {e:#}"));
    }
    lines::assert_delivered_exactly_once(
        "compressed files, three kills",
        &mut agg,
        &mut agent,
        &ledger,
        DELIVERY_TIMEOUT,
    );
}

/// The ids of the lines in `app.log`, `app.log.1` and each compressed `app.log.N.gz`, by
/// file name (each id must be on disk once).
fn ids_on_disk(logs: &Path) -> (BTreeMap<String, usize>, HashSet<String>) {
    let mut files = BTreeMap::new();
    let mut all = HashSet::new();
    for entry in std::fs::read_dir(logs).expect("list logs").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("app.log") {
            continue;
        }
        let bytes = if name.ends_with(".gz") {
            gunzip(&entry.path())
        } else {
            std::fs::read(entry.path()).expect("read a log file")
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut n = 0;
        for id in text.lines().filter_map(lines::line_id) {
            assert!(all.insert(id.to_owned()), "{id} is on disk twice");
            n += 1;
        }
        files.insert(name, n);
    }
    (files, all)
}

/// logrotate with `compress` and `delaycompress` rotates `app.log` six times while a
/// writer appends to it, and the agent tails `app.log*` with `compression = "auto"`: each
/// `app.log.1`, read under its own fingerprint, becomes `app.log.2.gz` a rotation later.
/// The agent is killed before the third rotation and started again after the fourth, so
/// one file it had only partly read is rotated and compressed while it is down.
#[test]
fn logrotate_compress_delaycompress_sends_every_line_once() {
    const ROTATIONS: usize = 6;
    let test = "logrotate_compress_delaycompress";
    let Some(bin) = logrotate_or_skip(test) else {
        return;
    };
    let seed = lines::seed(test);
    let dir = TestDir::new().expect("test dir");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create logs");
    let app = logs.join("app.log");
    let conf = dir
        .write(
            "logrotate.conf",
            &format!(
                "{} {{\n    rotate 50\n    create 0644\n    compress\n    delaycompress\n    missingok\n}}\n",
                app.display()
            ),
        )
        .expect("write the logrotate config");
    let state = dir.join("logrotate.state");
    let client = http::client(&dir, false).expect("client");

    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &[format!("{}*", app.display())])
        .compression("auto")
        .retry_max("300ms");
    let mut agent = Agent::start(&dir, options.clone()).expect("start the agent");
    let mut writer_options = WriterOptions::new(vec![app], 4, Duration::from_millis(2), seed);
    writer_options.prefix = "app".to_owned();
    writer_options.reopen = Reopen::WhenReplaced;
    let writer = Writer::start(writer_options);
    for rotation in 0..ROTATIONS {
        writer
            .wait_written(1_500 * (rotation + 1), Duration::from_secs(30))
            .expect("writing between rotations");
        if rotation == 2 {
            agent.kill9().expect("SIGKILL the agent");
            eprintln!("killed the agent at {} lines written", writer.written());
        }
        run_logrotate(&bin, &state, &conf);
        if rotation == 3 {
            agent = Agent::start(&dir, options.clone()).expect("restart the agent");
        }
    }
    writer
        .wait_written(1_500 * (ROTATIONS + 1), Duration::from_secs(30))
        .expect("writing after the rotations");
    let ledger = writer.finish();
    // The scenario on disk: every line written is in app.log, app.log.1 or a compressed
    // copy, once; and there is a compressed copy for each rotation but the last.
    let (files, on_disk) = ids_on_disk(&logs);
    assert_eq!(
        on_disk.len(),
        ledger.len(),
        "lines on disk vs written: {files:?}"
    );
    let compressed = files.keys().filter(|n| n.ends_with(".gz")).count();
    assert_eq!(compressed, ROTATIONS - 1, "compressed copies: {files:?}");
    eprintln!("on disk: {files:?}");

    let acc = lines::wait_for_ledger(&agg, &ledger, DELIVERY_TIMEOUT);
    assert!(acc.missing.is_empty(), "lines missing: {acc}");
    // The restarted agent met the copies compressed while it was down, and those made
    // after: each is recognised as a file already read.
    // The two copies compressed while it was down, the two made after the restart, and
    // the first copy too when the agent was killed before it took it up. (A copy is taken
    // up once its plain file is let go, `rotate_wait` after that was deleted: wait for it,
    // so that a copy read again would show in the sink below.)
    wait_until(
        Duration::from_secs(60),
        "four compressed copies recognised",
        || agent.metric(&client, COPIES).unwrap_or(0.0) >= 4.0,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {} recognised\n{}",
            metric(&agent, &client, COPIES),
            agent.process.log_tail()
        )
    });
    lines::assert_delivered_exactly_once(
        "logrotate compress delaycompress",
        &mut agg,
        &mut agent,
        &ledger,
        DELIVERY_TIMEOUT,
    );
}

/// A corrupt compressed file is reported (counted, logged with its path) and skipped
/// after the lines before the damage; one whose writer is slow is waited for, reported
/// when it stops growing, and read on when it grows again; the good file beside them is
/// read whole. The agent never stops.
#[test]
fn corrupt_and_unfinished_compressed_files_are_reported_and_the_rest_arrives() {
    let seed = lines::seed("corrupt_and_unfinished_compressed_files");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let (src, logs) = (dir.join("src"), dir.join("logs"));
    std::fs::create_dir_all(&src).expect("create src");
    std::fs::create_dir_all(&logs).expect("create logs");
    let client = http::client(&dir, false).expect("client");

    let mut good = Ledger::new();
    let p = plain_file(&src.join("good"), &mut rng, &mut good, "good", 20_000);
    gzip_files(&[&p], &logs.join("good.log.gz"));
    let mut bad = Ledger::new();
    let p = plain_file(&src.join("bad"), &mut rng, &mut bad, "bad", 40_000);
    gzip_files(&[&p], &src.join("bad.gz"));
    let mut bytes = std::fs::read(src.join("bad.gz")).expect("read bad.gz");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b = !*b;
    }
    std::fs::write(logs.join("bad.log.gz"), &bytes).expect("write the corrupt file");
    let mut slow = Ledger::new();
    let p = plain_file(&src.join("slow"), &mut rng, &mut slow, "slow", 20_000);
    gzip_files(&[&p], &src.join("slow.gz"));
    let slow_bytes = std::fs::read(src.join("slow.gz")).expect("read slow.gz");
    let cut = slow_bytes.len() * 3 / 5;
    std::fs::write(logs.join("slow.log.gz"), &slow_bytes[..cut]).expect("write half");

    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &[format!("{}/*.gz", logs.display())])
        .compression("auto")
        .gzip_incomplete_timeout("2s")
        // The unfinished file's last partial line waits for its rest, which this test
        // writes after the report (a cut-short file's partial line is otherwise sent
        // alone once partial_line_timeout passes after the report).
        .partial_line_timeout("1h");
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let acc = lines::wait_for_ledger(&agg, &good, DELIVERY_TIMEOUT);
    assert!(acc.missing.is_empty(), "the good file: {acc}");
    wait_until(
        Duration::from_secs(60),
        "the corrupt and the unfinished file reported",
        || {
            agent.metric(&client, CORRUPT).unwrap_or(0.0) == 1.0
                && agent.metric(&client, INCOMPLETE).unwrap_or(0.0) == 1.0
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.process.log_tail()));
    let log = agent.process.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("does not decode") && l.contains("bad.log.gz")),
        "no error naming the corrupt file in the agent's log:\n{}",
        agent.process.log_tail()
    );
    assert!(
        log.lines()
            .any(|l| l.contains("inside a gzip member") && l.contains("slow.log.gz")),
        "no warning naming the unfinished file:\n{}",
        agent.process.log_tail()
    );
    // The rest of the unfinished file is written: it is read on, from where it stood.
    lines::append(&logs.join("slow.log.gz"), &slow_bytes[cut..]);
    let acc = lines::wait_for_ledger(&agg, &slow, DELIVERY_TIMEOUT);
    assert!(
        acc.missing.is_empty(),
        "the unfinished file, completed: {acc}"
    );
    assert!(agent.is_running(), "the agent died");
    assert_eq!(metric(&agent, &client, CORRUPT), 1.0, "reported once");
    agent.stop().expect("the agent exits 0 on SIGTERM");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");

    let events = agg.events().expect("read the sink");
    let mut expected = good.clone();
    expected.extend(&slow);
    let acc = Accounting::of(&events, &expected);
    assert!(
        acc.missing.is_empty() && acc.duplicated.is_empty(),
        "good and completed files: {acc}"
    );
    // Of the corrupt file: its lines up to about the damage, each once; garbage decoded
    // at the damage (deflate has no checksum before a member's end) may follow.
    let bad_acc = Accounting::of(&events, &bad);
    let bad_ids: Vec<String> = (0..40_000).map(|n| format!("line-bad-{n}")).collect();
    let before = bad_ids
        .iter()
        .take_while(|id| bad_acc.delivered.get(*id) == Some(&1))
        .count();
    assert!(
        before > 10_000 && before < 40_000,
        "{before} lines of the corrupt file arrived in order before the damage"
    );
    let mut all = expected.clone();
    all.extend(&bad);
    // The garbage is the rest of the damaged member decoded wrongly until its checksum
    // fails at the member's end: it stands in for the lines after the damage, about one
    // event per line (a few more where garbled bytes hold newlines), never more.
    let garbage = Accounting::of(&events, &all).unexpected.len();
    let after = 40_000 - before;
    assert!(
        garbage <= after + after / 20,
        "{garbage} events are no line written, for {after} lines after the damage: \
         more garbage than the damaged member's rest makes"
    );
    eprintln!("corrupt file: {before} lines before the damage, {garbage} garbled events");
}
