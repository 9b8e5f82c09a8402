//! The agent against hostile or unusual input, as real processes: a 50 MiB line, binary
//! garbage and invalid UTF-8, a file deleted while it is being read, 2,000 files at once.
//!
//! Every line carries a unique id (`line-<file>-<n>`) and the aggregator's file sink is
//! compared with what was written. Faults of the processes themselves (kill -9, outages,
//! full spool, logrotate) are in `agent_faults.rs`; container formats and multiline
//! joining in `agent_container_formats.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use logferry_e2e::http;
use logferry_e2e::lines::{self, append, wait_for_ledger, with_newlines, Ledger};
use logferry_e2e::{sink, wait_until, Agent, AgentOptions, Aggregator, AggregatorOptions, TestDir};

/// How long all lines may take to arrive once written.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn logs_dir(dir: &TestDir) -> PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create the logs dir");
    logs
}

fn include(dir: &TestDir) -> Vec<String> {
    vec![format!("{}/logs/**/*.log", dir.path().display())]
}

fn assert_delivered_exactly_once(
    what: &str,
    agg: &mut Aggregator,
    agent: &mut Agent,
    ledger: &Ledger,
) -> Vec<serde_json::Value> {
    lines::assert_delivered_exactly_once(what, agg, agent, ledger, DELIVERY_TIMEOUT)
}

#[test]
fn a_50_mib_line_is_truncated_and_the_lines_after_it_arrive_intact() {
    const MAX_LINE: usize = 256 << 10;
    const HUGE: usize = 50 << 20;
    let seed = lines::seed("a_50_mib_line");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let client = http::client(&dir, false).expect("client");
    let path = logs_dir(&dir).join("huge.log");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir)).max_line_bytes(MAX_LINE);
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let mut ledger = Ledger::new();
    let before = lines::make_lines(&mut rng, "huge", 0, 100);
    append(&path, with_newlines(&before).as_bytes());
    // The huge line, written in 1 MiB pieces while the agent reads.
    let head = "line-huge-100 ";
    append(&path, head.as_bytes());
    let piece: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..HUGE / piece.len() {
        append(&path, &piece);
    }
    append(&path, b"\n");
    let after = lines::make_lines(&mut rng, "huge", 101, 100);
    append(&path, with_newlines(&after).as_bytes());
    for l in before.iter().chain(&after) {
        ledger.record(l);
    }
    // What the huge line must arrive as: its first max_line_bytes bytes.
    let mut truncated = head.as_bytes().to_vec();
    truncated.extend_from_slice(&piece[..MAX_LINE - head.len()]);
    let truncated = String::from_utf8(truncated).expect("ASCII");
    ledger.record(&truncated);

    let mut truncated_count = f64::NAN;
    let counted = wait_until(
        DELIVERY_TIMEOUT,
        "the agent to count one truncated line",
        || {
            truncated_count = agent
                .metric(&client, "logferry_agent_lines_truncated_total")
                .unwrap_or(f64::NAN);
            truncated_count >= 1.0
        },
    );
    let events = assert_delivered_exactly_once("a 50 MiB line", &mut agg, &mut agent, &ledger);
    counted.unwrap_or_else(|e| panic!("{e}: {truncated_count}"));
    assert_eq!(truncated_count, 1.0, "lines counted truncated");
    for e in &events {
        let id = e["message"].as_str().and_then(lines::line_id);
        let flagged = e["fields"].get("truncated") == Some(&serde_json::Value::Bool(true));
        assert_eq!(
            flagged,
            id == Some("line-huge-100"),
            "only the huge line is flagged truncated: {}",
            lines::abbreviate(&e.to_string())
        );
    }
}

#[test]
fn binary_garbage_and_invalid_utf8_pass_through_flagged() {
    let seed = lines::seed("binary_garbage_and_invalid_utf8");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let path = logs_dir(&dir).join("binary.log");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    let client = http::client(&dir, false).expect("client");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir));
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    // Raw lines (without newline) and whether they are invalid UTF-8.
    let mut raw: Vec<(Vec<u8>, bool)> = Vec::new();
    for n in 0..300 {
        let id = format!("line-bin-{n} ");
        let mut line = id.into_bytes();
        match n % 5 {
            // Random bytes: C0 controls (no \n or \r) and bytes >= 0x80, which never form
            // valid UTF-8 starting with a lone continuation byte.
            0 => {
                line.push(0x80);
                for _ in 0..rng.usize(1..300) {
                    let b = if rng.bool() {
                        rng.u8(0x80..=0xff)
                    } else {
                        rng.u8(0x00..0x20)
                    };
                    if b != b'\n' && b != b'\r' {
                        line.push(b);
                    }
                }
                line.extend_from_slice(b" end");
                raw.push((line, true));
            }
            // Classic invalid sequences: lone bytes, a truncated sequence, an overlong
            // encoding, a UTF-16 surrogate, and a valid character among them.
            1 => {
                line.extend_from_slice(b"bad \xff\xfe byte \xc3\x28 cut \xe2\x82 over \xc0\xaf sur \xed\xa0\x80 ok \xc3\xa9 end");
                raw.push((line, true));
            }
            // Valid UTF-8 with NUL and other control characters.
            2 => {
                line.extend_from_slice(b"nul\0inside bell\x07 esc\x1b[31m end");
                raw.push((line, false));
            }
            _ => {
                let pad_len = rng.usize(20..120);
                line.extend_from_slice(lines::padding(&mut rng, pad_len).as_bytes());
                raw.push((line, false));
            }
        }
    }
    let mut ledger = Ledger::new();
    let mut invalid = HashMap::new();
    for (i, (line, bad)) in raw.iter().enumerate() {
        let mut bytes = line.clone();
        bytes.push(b'\n');
        append(&path, &bytes);
        if i == 150 {
            // Half of them first, then check both processes are still up and serving.
            agg.wait_for_events(1, Duration::from_secs(30))
                .expect("lines flow");
            assert!(agent.is_running() && agg.is_running());
        }
        let lossy = String::from_utf8_lossy(line).into_owned();
        ledger.record(&lossy);
        invalid.insert(lines::line_id(&lossy).expect("id").to_owned(), *bad);
    }
    // And ordinary lines after the garbage.
    let after = lines::make_lines(&mut rng, "bin", 300, 50);
    append(&path, with_newlines(&after).as_bytes());
    for l in &after {
        ledger.record(l);
        invalid.insert(lines::line_id(l).expect("id").to_owned(), false);
    }

    let (status, _) = agent
        .admin_get(&client, "/healthz")
        .expect("agent /healthz");
    assert_eq!(status, 200, "agent /healthz");
    assert_eq!(agg.healthz(&client).expect("aggregator /healthz"), 200);
    let events = assert_delivered_exactly_once("binary lines", &mut agg, &mut agent, &ledger);
    for e in &events {
        let id = e["message"].as_str().and_then(lines::line_id).expect("id");
        let flagged = e["fields"].get("invalid_utf8") == Some(&serde_json::Value::Bool(true));
        assert_eq!(
            flagged,
            invalid[id],
            "invalid_utf8 flag of {id}: {}",
            lines::abbreviate(&e.to_string())
        );
    }
}

#[test]
fn a_file_deleted_while_being_read_is_delivered_whole_and_then_closed() {
    let seed = lines::seed("a_file_deleted_while_being_read");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let client = http::client(&dir, false).expect("client");
    let path = logs_dir(&dir).join("doomed.log");
    let written = lines::make_lines(&mut rng, "doomed", 0, 30_000);
    append(&path, with_newlines(&written).as_bytes());
    let mut ledger = Ledger::new();
    for l in &written {
        ledger.record(l);
    }

    // The aggregator is down and the spool small, so the agent stops in the middle of the
    // file (when_full = "block"): the deletion surely lands while it is being read.
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir))
        .retry_max("500ms")
        .batch_max_bytes(16 << 10)
        .spool(128 << 10, "block");
    let mut agent = Agent::start(&dir, options).expect("start the agent");
    let mut read = 0.0;
    let started = wait_until(
        Duration::from_secs(60),
        "the agent to read some lines",
        || {
            read = agent
                .metric(&client, "logferry_agent_lines_read_total")
                .unwrap_or(0.0);
            read > 0.0
        },
    );
    started.unwrap_or_else(|e| panic!("{e}\n{}", agent.process.log_tail()));
    std::fs::remove_file(&path).expect("delete the file");
    let read = agent
        .metric(&client, "logferry_agent_lines_read_total")
        .expect("lines read");
    assert!(
        read < written.len() as f64 / 2.0,
        "the agent read {read} of {} lines before the deletion: not in the middle",
        written.len()
    );

    let mut agg = Aggregator::restart(&dir, agg.restart_options())
        .expect("start the aggregator on the agent's port");
    // Read to the end, then let go: the deleted file must not stay open.
    let pid = agent.process.pid();
    let held = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|t| t.to_string_lossy().contains("doomed.log"))
                })
            })
            .unwrap_or(false)
    };
    let acc = wait_for_ledger(&agg, &ledger, DELIVERY_TIMEOUT);
    assert!(
        acc.missing.is_empty(),
        "lines of the deleted file never arrived: {acc}"
    );
    wait_until(
        Duration::from_secs(30),
        "the agent to close the deleted file",
        || !held(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.process.log_tail()));
    assert_delivered_exactly_once("a deleted file", &mut agg, &mut agent, &ledger);
}

#[test]
fn two_thousand_files_at_once_are_all_delivered() {
    const FILES: usize = 2_000;
    const LINES: usize = 5;
    let seed = lines::seed("two_thousand_files_at_once");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new().expect("test dir");
    let client = http::client(&dir, false).expect("client");
    let many = logs_dir(&dir).join("many");
    std::fs::create_dir_all(&many).expect("create logs/many");
    let mut agg = Aggregator::start(&dir, AggregatorOptions::default()).expect("start aggregator");
    // 1024 open files, the common default soft limit (shells, systemd services): the
    // agent must cope with more files than that without running out of descriptors.
    let options = AgentOptions::new(agg.ingest_url(), &include(&dir)).open_files_limit(1024);
    let mut agent = Agent::start(&dir, options).expect("start the agent");

    let mut ledger = Ledger::new();
    let mut write_round = |ledger: &mut Ledger, first: usize, count: usize| {
        for f in 0..FILES {
            let name = format!("f{f:04}");
            let lines = lines::make_lines(&mut rng, &name, first, count);
            append(
                &many.join(format!("{name}.log")),
                with_newlines(&lines).as_bytes(),
            );
            for l in &lines {
                ledger.record(l);
            }
        }
    };
    write_round(&mut ledger, 0, LINES);
    // Seconds when it works; a shorter wait keeps a failing run short.
    let acc = wait_for_ledger(&agg, &ledger, Duration::from_secs(60));
    let open = agent.metric(&client, "logferry_agent_files_open");
    eprintln!("2,000 files: logferry_agent_files_open = {open:?}");
    if !acc.missing.is_empty() {
        let files_missing: std::collections::HashSet<&str> = acc
            .missing
            .iter()
            .filter_map(|id| id.rsplit_once('-').map(|(f, _)| f))
            .collect();
        panic!(
            "2,000 files: lines missing after 60 s, from {} files: {acc}",
            files_missing.len()
        );
    }
    assert!(agent.is_running(), "the agent died");

    // A second line in every file, now that they are all known (and possibly closed as
    // idle): each must still be followed.
    write_round(&mut ledger, LINES, 1);
    let events = assert_delivered_exactly_once("2,000 files", &mut agg, &mut agent, &ledger);
    let sources: std::collections::HashSet<&str> =
        events.iter().filter_map(|e| sink::source_path(e)).collect();
    assert_eq!(sources.len(), FILES, "events from every file");
}
