//! The agent under faults, as real processes: SIGKILL at random moments under load, a
//! 30-second aggregator outage, a full spool (`block` and `drop_oldest`), and the real
//! `logrotate` rotating a file while it is written (`create` and `copytruncate`).
//!
//! Every line carries a unique id (`line-<file>-<n>`); at the end the aggregator's file
//! sink is compared with what was written: every line exactly once, or, where the test
//! says why, an exactly explained difference. Random choices print their seed
//! (`LOGFERRY_E2E_SEED` repeats a run). Edge cases of the input itself (huge lines, binary
//! data, deleted files, thousands of files) are in `agent_input_faults.rs`, container
//! formats and multiline joining in `agent_container_formats.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logferry_e2e::http;
use logferry_e2e::lines::{
    self, wait_for_ledger, Accounting, Ledger, Reopen, Writer, WriterOptions,
};
use logferry_e2e::logrotate::{logrotate_or_skip, run_logrotate};
use logferry_e2e::{sink, wait_until, Agent, AgentOptions, Aggregator, AggregatorOptions, TestDir};

/// How long all lines may take to arrive once writing stopped.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a condition observed through metrics may take.
const METRIC_TIMEOUT: Duration = Duration::from_secs(60);

const SPOOL_BATCHES: &str = "logferry_agent_spool_batches";
const SPOOL_BYTES: &str = "logferry_agent_spool_bytes";
const LINES_READ: &str = "logferry_agent_lines_read_total";
const DROPPED_LINES: &str = "logferry_agent_spool_dropped_lines_total";

/// `count` log files `logs/app-<i>.log` (not created yet).
fn log_paths(dir: &TestDir, count: usize) -> Vec<PathBuf> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create the logs dir");
    (0..count)
        .map(|i| logs.join(format!("app-{i}.log")))
        .collect()
}

fn include(dir: &TestDir) -> Vec<String> {
    vec![format!("{}/logs/*.log", dir.path().display())]
}

/// A metric of the agent; panics (with the agent's log) when it cannot be read.
fn agent_metric(agent: &Agent, client: &reqwest::blocking::Client, series: &str) -> f64 {
    agent
        .metric(client, series)
        .unwrap_or_else(|e| panic!("reading {series}: {e:#}\n{}", agent.process.log_tail()))
}

/// Every line exactly once (after both processes stopped), from a file under `logs/`.
fn assert_delivered_exactly_once(
    what: &str,
    agg: &mut Aggregator,
    agent: &mut Agent,
    ledger: &Ledger,
) {
    let events = lines::assert_delivered_exactly_once(what, agg, agent, ledger, DELIVERY_TIMEOUT);
    for e in &events {
        assert!(
            sink::source_path(e).is_some_and(|p| p.contains("/logs/")),
            "{what}: wrong source in {e}"
        );
    }
}

/// Waits until the agent's spool is empty (every batch acknowledged).
fn wait_spool_drained(agent: &Agent, client: &reqwest::blocking::Client) {
    let mut last = (f64::NAN, f64::NAN);
    let drained = wait_until(METRIC_TIMEOUT, "the agent's spool to drain", || {
        let batches = agent.metric(client, SPOOL_BATCHES).unwrap_or(f64::NAN);
        let bytes = agent.metric(client, SPOOL_BYTES).unwrap_or(f64::NAN);
        last = (batches, bytes);
        batches == 0.0 && bytes == 0.0
    });
    if let Err(e) = drained {
        panic!(
            "{e}: the spool still holds {} batches, {} bytes\n{}",
            last.0,
            last.1,
            agent.process.log_tail()
        );
    }
}

#[test]
fn agent_killed_ten_times_under_load_loses_and_duplicates_nothing() {
    let seed = lines::seed("agent_killed_ten_times_under_load");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir)).retry_max("300ms");
    let mut agent = Agent::start(&dir, options.clone()).expect("start the agent");

    // About 2,500 lines a second over three files, for the whole test.
    let writer = Writer::start(WriterOptions::new(
        log_paths(&dir, 3),
        5,
        Duration::from_millis(2),
        seed,
    ));
    agg.wait_for_events(1, Duration::from_secs(30))
        .expect("lines flow before the first kill");
    for kill in 0..10 {
        // Scenario timing: the kill lands at a random moment of reading, sealing,
        // spooling or shipping.
        std::thread::sleep(Duration::from_millis(rng.u64(100..=800)));
        assert!(
            agent.is_running(),
            "the agent died on its own before kill {kill}\n{}",
            agent.process.log_tail()
        );
        agent.kill9().expect("SIGKILL the agent");
        eprintln!(
            "kill {kill}: {} lines written, {} events in the sink",
            writer.written(),
            sink::count_lines(&agg.sink_path).unwrap_or(0)
        );
        agent = Agent::start(&dir, options.clone())
            .unwrap_or_else(|e| panic!("restart {kill} of the agent on its spool: {e:#}"));
    }
    let ledger = writer.finish();
    eprintln!("{} lines written", ledger.len());
    assert_delivered_exactly_once("ten kills", &mut agg, &mut agent, &ledger);
}

#[test]
fn aggregator_down_30s_under_load_loses_and_duplicates_nothing() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let seed = lines::seed("aggregator_down_30s_under_load");
    let dir = TestDir::new().expect("test dir");
    let client = http::client(&dir, false).expect("client");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir)).retry_max("1s");
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    // About 800 lines a second over three files.
    let writer = Writer::start(WriterOptions::new(
        log_paths(&dir, 3),
        4,
        Duration::from_millis(5),
        seed,
    ));
    agg.wait_for_events(1, Duration::from_secs(30))
        .expect("lines flow before the outage");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");
    let outage = Instant::now();
    let in_sink = sink::count_lines(&agg.sink_path).expect("count the sink");
    let written_before = writer.written();

    // The agent keeps reading into its spool; look at it once a second for the length of
    // the outage (scenario timing), and check it stays up and serves its metrics.
    let mut most_spooled = 0.0f64;
    while outage.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            agent.is_running(),
            "the agent died during the outage\n{}",
            agent.process.log_tail()
        );
        most_spooled = most_spooled.max(agent_metric(&agent, &client, SPOOL_BATCHES));
    }
    let written_during = writer.written() - written_before;
    assert!(
        most_spooled > 0.0,
        "the agent spooled nothing while the aggregator was down"
    );
    assert_eq!(
        sink::count_lines(&agg.sink_path).expect("count the sink"),
        in_sink,
        "the sink grew while the aggregator was down"
    );
    eprintln!("outage: {written_during} lines written, up to {most_spooled} batches spooled");

    let mut agg = Aggregator::restart(&dir, agg.restart_options())
        .expect("restart the aggregator on the same port");
    // Keep writing a little after it is back, then stop.
    writer
        .wait_written(writer.written() + 2_000, Duration::from_secs(30))
        .expect("writing after the outage");
    let ledger = writer.finish();
    let acc = wait_for_ledger(&agg, &ledger, DELIVERY_TIMEOUT);
    assert!(
        acc.missing.is_empty(),
        "lines missing after the outage: {acc}"
    );
    wait_spool_drained(&agent, &client);
    assert_delivered_exactly_once("a 30 s outage", &mut agg, &mut agent, &ledger);
}

/// The spool-full scenario, as [`fill_the_spool`] leaves it: the aggregator was down from
/// the start (restart it on its port to end the outage), and the agent's spool (64 KiB,
/// 4 KiB batches) is far smaller than the ~3 MB written.
struct SpoolFull {
    dir: TestDir,
    agg: Aggregator,
    agent: Agent,
    ledger: Ledger,
    client: reqwest::blocking::Client,
}

const SMALL_SPOOL: u64 = 64 << 10;
const SMALL_BATCH: usize = 4096;

fn fill_the_spool(test: &str, when_full: &str) -> SpoolFull {
    let seed = lines::seed(test);
    let dir = TestDir::new().expect("test dir");
    let client = http::client(&dir, false).expect("client");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir))
        .retry_max("500ms")
        .batch_max_bytes(SMALL_BATCH)
        .spool(SMALL_SPOOL, when_full);
    let agent = Agent::start(&dir, options).expect("start the agent");
    let mut writer_options = WriterOptions::new(log_paths(&dir, 2), 50, Duration::ZERO, seed);
    writer_options.padding = 100..200;
    let writer = Writer::start(writer_options);
    writer
        .wait_written(20_000, Duration::from_secs(60))
        .expect("write 20,000 lines");
    let ledger = writer.finish();
    SpoolFull {
        dir,
        agg,
        agent,
        ledger,
        client,
    }
}

#[test]
fn full_spool_with_block_loses_nothing_once_the_aggregator_returns() {
    let SpoolFull {
        dir,
        agg,
        mut agent,
        ledger,
        client,
    } = fill_the_spool("full_spool_with_block", "block");

    // The spool fills up to its bound and stays within it; reading stops there, so the
    // files keep the rest.
    let mut spooled = 0.0;
    let full = wait_until(METRIC_TIMEOUT, "the spool to fill", || {
        spooled = agent.metric(&client, SPOOL_BYTES).unwrap_or(0.0);
        spooled > (SMALL_SPOOL - 2 * SMALL_BATCH as u64) as f64
    });
    if let Err(e) = full {
        panic!(
            "{e}: {spooled} bytes spooled of {SMALL_SPOOL}\n{}",
            agent.process.log_tail()
        );
    }
    assert!(
        spooled <= SMALL_SPOOL as f64,
        "the spool holds {spooled} bytes, over its max_bytes {SMALL_SPOOL}"
    );
    let read = agent_metric(&agent, &client, LINES_READ);
    assert!(
        read < (ledger.len() / 2) as f64,
        "with a full spool and when_full = \"block\" the agent should stop reading, \
         but it read {read} of {} lines",
        ledger.len()
    );
    assert_eq!(agent_metric(&agent, &client, DROPPED_LINES), 0.0);
    eprintln!("spool full: {spooled} bytes, {read} lines read");

    let mut agg = Aggregator::restart(&dir, agg.restart_options())
        .expect("start the aggregator on the agent's port");
    let acc = wait_for_ledger(&agg, &ledger, DELIVERY_TIMEOUT);
    assert!(acc.missing.is_empty(), "lines missing: {acc}");
    wait_spool_drained(&agent, &client);
    assert_delivered_exactly_once("a full spool (block)", &mut agg, &mut agent, &ledger);
}

#[test]
fn full_spool_with_drop_oldest_loses_exactly_the_counted_lines() {
    let SpoolFull {
        dir,
        agg,
        mut agent,
        ledger,
        client,
    } = fill_the_spool("full_spool_with_drop_oldest", "drop_oldest");

    // Nothing blocks: the agent reads every line, dropping old batches to make room.
    let mut read = 0.0;
    let all_read = wait_until(METRIC_TIMEOUT, "the agent to read every line", || {
        read = agent.metric(&client, LINES_READ).unwrap_or(0.0);
        read >= ledger.len() as f64
    });
    if let Err(e) = all_read {
        panic!(
            "{e}: {read} of {} lines read\n{}",
            ledger.len(),
            agent.process.log_tail()
        );
    }
    let spooled = agent_metric(&agent, &client, SPOOL_BYTES);
    assert!(
        spooled <= SMALL_SPOOL as f64,
        "the spool holds {spooled} bytes, over its max_bytes {SMALL_SPOOL}"
    );

    let mut agg = Aggregator::restart(&dir, agg.restart_options())
        .expect("start the aggregator on the agent's port");
    // Every line is now either acknowledged or dropped; once the spool is empty and the
    // sink holds what was not dropped, stop both and count.
    let mut state = (0.0, 0, 0.0);
    let settled = wait_until(DELIVERY_TIMEOUT, "every line delivered or dropped", || {
        let dropped = agent.metric(&client, DROPPED_LINES).unwrap_or(0.0);
        let batches = agent.metric(&client, SPOOL_BATCHES).unwrap_or(f64::NAN);
        let in_sink = sink::count_lines(&agg.sink_path).unwrap_or(0);
        state = (dropped, in_sink, batches);
        batches == 0.0 && in_sink as f64 + dropped >= ledger.len() as f64
    });
    if let Err(e) = settled {
        panic!(
            "{e}: {} dropped, {} in the sink, {} batches still spooled, {} written\n{}",
            state.0,
            state.1,
            state.2,
            ledger.len(),
            agent.process.log_tail()
        );
    }
    let dropped = agent_metric(&agent, &client, DROPPED_LINES);
    agent.stop().expect("the agent exits 0 on SIGTERM");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");

    let acc = Accounting::of(&agg.events().expect("read the sink"), &ledger);
    eprintln!("drop_oldest: {dropped} lines counted dropped; {acc}");
    assert!(
        dropped > 0.0,
        "a full spool with drop_oldest dropped nothing"
    );
    assert!(
        acc.duplicated.is_empty() && acc.unexpected.is_empty(),
        "drop_oldest: {acc}"
    );
    let missing = acc.missing.len() as f64;
    let difference = if missing < dropped {
        format!(
            "{} lines counted as dropped arrived anyway",
            dropped - missing
        )
    } else {
        format!("{} lines missing were not counted", missing - dropped)
    };
    assert_eq!(
        missing, dropped,
        "drop_oldest: the lines missing at the sink must be exactly the lines the agent \
         counted in {DROPPED_LINES}, but {difference}; {acc}"
    );
}

/// The ids of the lines in `app.log` and in each rotated copy `app.log.N`, in file
/// order, by file name.
fn lines_on_disk(logs: &Path) -> BTreeMap<String, Vec<String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(logs)
        .expect("list the logs dir")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "app.log" && !name.starts_with("app.log.") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read a log file");
        let ids = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| lines::line_id(l).map(str::to_owned))
            .collect();
        files.insert(name, ids);
    }
    files
}

/// Every id on disk (each must be there once), by id.
fn ids_on_disk(files: &BTreeMap<String, Vec<String>>) -> HashSet<String> {
    let mut all = HashSet::new();
    for (name, ids) in files {
        for id in ids {
            assert!(all.insert(id.clone()), "{id} is on disk twice (in {name})");
        }
    }
    all
}

/// How many files in `logs` are rotated copies (`app.log.N`).
fn rotated_copies(logs: &Path) -> usize {
    std::fs::read_dir(logs)
        .expect("list the logs dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("app.log."))
        .count()
}

/// Rotates `logs/app.log` with the real logrotate six times while a writer appends about
/// 2,000 lines a second to it; returns the ledger and the running processes.
fn rotate_under_write(test: &str, bin: &Path, mode: &str) -> (TestDir, Aggregator, Agent, Ledger) {
    const ROTATIONS: usize = 6;
    let seed = lines::seed(test);
    let dir = TestDir::new().expect("test dir");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create the logs dir");
    let app = logs.join("app.log");
    let conf = dir
        .write(
            "logrotate.conf",
            &format!(
                "{} {{\n    rotate 50\n    {mode}\n    missingok\n    nocompress\n}}\n",
                app.display()
            ),
        )
        .expect("write the logrotate config");
    let state = dir.join("logrotate.state");

    let agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir)).retry_max("300ms");
    let agent = Agent::start(&dir, options).expect("start the agent");
    let mut writer_options = WriterOptions::new(vec![app], 4, Duration::from_millis(2), seed);
    writer_options.prefix = "app".to_owned();
    if mode == "copytruncate" {
        // Whole lines per write: logrotate copies and truncates at any byte, and a line cut
        // in two by it would be two broken lines, logrotate's doing again.
        writer_options.split_writes = false;
    } else {
        writer_options.reopen = Reopen::WhenReplaced;
    }
    let writer = Writer::start(writer_options);
    for rotation in 0..ROTATIONS {
        writer
            .wait_written(1_000 * (rotation + 1), Duration::from_secs(30))
            .expect("writing between rotations");
        run_logrotate(bin, &state, &conf);
    }
    writer
        .wait_written(1_000 * (ROTATIONS + 1), Duration::from_secs(30))
        .expect("writing after the rotations");
    let ledger = writer.finish();
    assert_eq!(
        rotated_copies(&logs),
        ROTATIONS,
        "logrotate did not rotate {ROTATIONS} times"
    );
    (dir, agg, agent, ledger)
}

#[test]
fn logrotate_create_mode_under_write_loses_and_duplicates_nothing() {
    let test = "logrotate_create_mode_under_write";
    let Some(bin) = logrotate_or_skip(test) else {
        return;
    };
    let (dir, mut agg, mut agent, ledger) = rotate_under_write(test, &bin, "create 0644");
    // With rename rotation nothing is lost on disk: every line written is in app.log or a
    // rotated copy, once (a check of the scenario itself).
    let on_disk = ids_on_disk(&lines_on_disk(&dir.join("logs")));
    assert_eq!(on_disk.len(), ledger.len(), "lines on disk vs written");
    assert_delivered_exactly_once("logrotate create", &mut agg, &mut agent, &ledger);
}

/// copytruncate copies the file, then truncates it in place, and two windows of that are
/// inherent to the method, not to the agent:
/// - a line written between the copy and the truncation is in neither the copy nor the
///   live file: logrotate lost it (the agent may or may not have read it before);
/// - a line written after the agent's last read and before the truncation is only in the
///   copy, which the agent does not tail (`*.log` does not match `app.log.N`): it is lost
///   to the agent, and can only be the end of that copy.
///
/// So the ground truth is what logrotate kept on disk, read with those windows: every
/// line of the live file arrives exactly once; of each rotated copy, every line arrives
/// exactly once except for a final run of lines the agent had not read yet at the
/// truncation (bounded here to half the copy, so a tailer that falls behind fails); a line
/// logrotate lost arrives once or not at all; nothing else arrives.
#[test]
fn logrotate_copytruncate_under_write_delivers_what_logrotate_kept_exactly_once() {
    let test = "logrotate_copytruncate_under_write";
    let Some(bin) = logrotate_or_skip(test) else {
        return;
    };
    let (dir, mut agg, mut agent, ledger) = rotate_under_write(test, &bin, "copytruncate");
    let files = lines_on_disk(&dir.join("logs"));
    let on_disk = ids_on_disk(&files);
    let live = ledger.filter(|id| files["app.log"].iter().any(|l| l == id));

    // The live file is read last: once its lines are in, everything else that will
    // arrive has.
    let acc = wait_for_ledger(&agg, &live, DELIVERY_TIMEOUT);
    assert!(
        acc.missing.is_empty(),
        "copytruncate: lines of the live file never arrived: {acc}"
    );
    agent.stop().expect("the agent exits 0 on SIGTERM");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");

    let acc = Accounting::of(&agg.events().expect("read the sink"), &ledger);
    assert!(
        acc.duplicated.is_empty() && acc.unexpected.is_empty(),
        "copytruncate: {acc}"
    );
    let mut unread_at_truncation = 0;
    for (name, ids) in files.iter().filter(|(n, _)| *n != "app.log") {
        let missing: Vec<usize> = (0..ids.len())
            .filter(|i| !acc.delivered.contains_key(&ids[*i]))
            .collect();
        let tail_from = ids.len() - missing.len();
        assert!(
            missing.iter().all(|i| *i >= tail_from),
            "copytruncate: lines of {name} missing before its end (only the lines after the \
             agent's last read may be missing): {:?}",
            missing
                .iter()
                .take(10)
                .map(|i| &ids[*i])
                .collect::<Vec<_>>()
        );
        assert!(
            missing.len() * 2 <= ids.len(),
            "copytruncate: the last {} of {} lines of {name} never arrived: the agent was \
             far behind the writer",
            missing.len(),
            ids.len()
        );
        unread_at_truncation += missing.len();
    }
    let lost_by_logrotate = ledger.filter(|id| !on_disk.contains(id));
    let lost_and_delivered = lost_by_logrotate
        .ids()
        .filter(|id| acc.delivered.contains_key(*id))
        .count();
    eprintln!(
        "copytruncate: {} lines written, {} kept on disk, {} lost by logrotate \
         ({lost_and_delivered} of them read by the agent before the truncation), \
         {unread_at_truncation} only in a copy, unread at the truncation",
        ledger.len(),
        on_disk.len(),
        lost_by_logrotate.len()
    );
}
