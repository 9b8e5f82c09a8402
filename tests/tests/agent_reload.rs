//! The agent's discovery and reload against the real binaries: a file created after
//! start is found through inotify although the periodic scan is an hour away, and SIGHUP
//! applies a changed config (a new input, new batch settings) without losing or doubling
//! a line, while a broken config is refused and the running one kept.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use logferry_e2e::{
    sink, Agent, AgentOptions, Aggregator, AggregatorOptions, InputOptions, TestDir,
};

/// Appends `ids` as lines to `path`.
fn append(path: &Path, ids: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    let mut text = String::new();
    for id in ids {
        text.push_str(id);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).expect("write log");
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The sink's messages; fails on a duplicate.
fn messages_once(agg: &Aggregator, n: usize) -> HashSet<String> {
    let events = agg.events_once(n).expect("events");
    let counts = sink::message_counts(&events);
    let dups = sink::duplicates(&counts, 10);
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    counts.into_keys().collect()
}

#[test]
fn a_new_file_is_found_by_inotify_without_waiting_for_the_scan() {
    let dir = TestDir::new().expect("test dir");
    let agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("aggregator");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let mut options = AgentOptions::new(agg.ingest_url(), &[format!("{}/*.log", logs.display())]);
    // The first scan runs at start; the next one would come an hour later.
    options.scan_interval = "1h".to_owned();
    let mut agent = Agent::start(&dir, options).expect("agent");
    let lines = ids("inotify", 50);
    append(&logs.join("new.log"), &lines);
    let got = messages_once(&agg, lines.len());
    for id in &lines {
        assert!(got.contains(id), "{id} missing");
    }
    agent.stop().expect("agent stops");
}

#[test]
fn sighup_adds_an_input_and_a_broken_config_is_refused() {
    let dir = TestDir::new().expect("test dir");
    let agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("aggregator");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let a = logs.join("a.log");
    let b = logs.join("b.other");
    let options = AgentOptions::new(agg.ingest_url(), &[a.to_string_lossy().into_owned()]);
    let mut agent = Agent::start(&dir, options.clone()).expect("agent");

    let first = ids("a-first", 200);
    append(&a, &first);
    // b is not an input yet: its lines must wait for the reload.
    let early_b = ids("b-early", 100);
    append(&b, &early_b);
    messages_once(&agg, first.len());

    // Reload with a second input and other batch settings.
    let mut reloaded = options.clone();
    reloaded.batch_timeout = "50ms".to_owned();
    reloaded = reloaded
        .batch_max_bytes(8192)
        .input(InputOptions::new(&[b.to_string_lossy().into_owned()]));
    std::fs::write(&agent.config_path, reloaded.config_text(&dir)).expect("rewrite config");
    agent.process.signal(libc::SIGHUP).expect("SIGHUP");
    let second = ids("a-second", 300);
    append(&a, &second);
    let late_b = ids("b-late", 100);
    append(&b, &late_b);
    let total = first.len() + early_b.len() + second.len() + late_b.len();
    let got = messages_once(&agg, total);
    for id in first.iter().chain(&early_b).chain(&second).chain(&late_b) {
        assert!(got.contains(id), "{id} missing after the reload");
    }
    assert!(agent.is_running());

    // A broken config: refused, logged, and the agent keeps tailing with the old one.
    std::fs::write(&agent.config_path, "data_dir = \n").expect("break config");
    agent.process.signal(libc::SIGHUP).expect("SIGHUP");
    let third = ids("a-third", 100);
    append(&a, &third);
    let got = messages_once(&agg, total + third.len());
    for id in &third {
        assert!(got.contains(id), "{id} missing after a refused reload");
    }
    assert!(agent.is_running(), "the agent died on a broken config");
    logferry_e2e::wait_until(Duration::from_secs(10), "the refusal in the log", || {
        agent.process.log_text().contains("reload refused")
    })
    .expect("refusal logged");
    assert_eq!(
        sink::count_lines(&agg.sink_path).expect("count"),
        total + third.len(),
        "lines were doubled"
    );
    agent.stop().expect("agent stops");
}
