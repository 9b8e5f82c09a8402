//! End-to-end aggregator throughput: `cargo bench -p logferry-aggregator --bench pipeline`.
//!
//! For each input — every corpus format (`tests/corpus/parse/*.jsonl`), the mixed corpus
//! (formats interleaved line by line), and generated lines shaped like the end-to-end
//! benchmark's input (45% nginx combined, 35% JSON, 20% syslog, 100–400 bytes) — it builds
//! zstd frames as an agent sends them (1 MiB of lines each), admits them into a real
//! [`Inbox`] in a temporary directory, and then times the real pipeline with a real file
//! sink, from start until the inbox is empty: every frame decoded, parsed, rendered,
//! written, fsynced and completed. Each input runs with one worker and with one worker per
//! CPU, and prints events/s, MiB/s of input lines, MiB/s written, and the CPU the process
//! used meanwhile (200% is two cores busy).
//!
//! Every event goes through the ten typical rules of `src/rules/bench_rules.toml` (drop,
//! sample, redact, tag, set, route, alerts; routes and alerts aimed at the one file sink
//! and at two notifiers whose outbox nobody drains) and is counted in the traffic
//! summaries, as in the aggregator. `LOGFERRY_BENCH_RULES=0` runs without rules.
//!
//! Environment: `LOGFERRY_BENCH_ONLY=generator,mixed-corpus` runs only those inputs;
//! `LOGFERRY_BENCH_EVENTS=N` sets the events per input (default 300,000; 600,000 for the
//! mixed inputs); `LOGFERRY_BENCH_WORKERS=1,2,4` sets the worker counts;
//! `LOGFERRY_BENCH_INPUT=FILE` adds a real file as the input `input-file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_aggregator::inbox::{Admit, Inbox};
use logferry_aggregator::metrics::{Metrics, StageLabel};
use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;
use logferry_aggregator::pipeline::{self, PipelineSetup, Wake};
use logferry_aggregator::rules::config::rules_from_toml;
use logferry_aggregator::rules::{EngineContext, Outbox, RuleSet, SystemClock};
use logferry_aggregator::sink::{FileSink, Sink};
use logferry_aggregator::stats::{SharedTraffic, StatsSettings};
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{BatchBuilder, DecodeLimits};

/// Lines per frame: about what an agent puts in a 1 MiB batch.
const FRAME_RAW_BYTES: usize = 1 << 20;

/// Frames as an agent would send them: 1 MiB of lines each, zstd level 1, lines spread
/// over four sources. Returns the frames and the bytes of lines in them.
fn frames(lines: &[String], total: usize) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut raw = 0usize;
    let mut compressor = Compressor::new(Codec::Zstd, 1).expect("compressor");
    let new_batch = || {
        let mut b = BatchBuilder::new("node-1", 1_795_341_600_000, FRAME_RAW_BYTES);
        let sources: Vec<u32> = (0..4)
            .map(|i| b.add_source(&format!("/var/log/app-{i}.log"), &[]))
            .collect();
        (b, sources)
    };
    let mut batch = new_batch();
    for (i, line) in lines.iter().cycle().take(total).enumerate() {
        raw += line.len();
        let observed = 1_795_341_600_000 + i as u64 / 1000;
        batch.0.push(batch.1[i % 4], observed, 0, line.as_bytes());
        if batch.0.raw_len() >= FRAME_RAW_BYTES {
            let (full, _) = std::mem::replace(&mut batch, new_batch());
            let seq = out.len() as u64 + 1;
            out.push(full.seal("bench", "s", seq, &mut compressor).expect("seal"));
        }
    }
    if !batch.0.is_empty() {
        let seq = out.len() as u64 + 1;
        out.push(
            batch
                .0
                .seal("bench", "s", seq, &mut compressor)
                .expect("seal"),
        );
    }
    (out, raw)
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat` (Linux).
fn process_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Outcome {
    secs: f64,
    written: u64,
    cpu: Option<f64>,
    /// Seconds the coordinator spent writing, syncing and waiting for workers, and the
    /// workers idle.
    stages: [f64; 4],
}

/// Admits `frames` into a fresh inbox, then runs the pipeline until it is empty.
fn run_once(dir: &Path, frames: &[Vec<u8>], workers: usize) -> Outcome {
    let inbox = Arc::new(Inbox::open(&dir.join("inbox"), 1 << 40).expect("inbox"));
    for (i, f) in frames.iter().enumerate() {
        let admitted = inbox.admit("bench", "s", i as u64 + 1, f).expect("admit");
        assert_eq!(admitted, Admit::Accepted);
    }
    let out = dir.join("out.jsonl");
    let sink: Box<dyn Sink> = Box::new(FileSink::open("archive", &out).expect("sink"));
    let shutdown = Shutdown::new();
    let wake = Arc::new(Wake::default());
    let metrics = Arc::new(Metrics::new());
    let setup = PipelineSetup {
        inbox: inbox.clone(),
        detector: Detector::new(Zone::Utc, &[], &[]).expect("detector"),
        sinks: vec![sink],
        limits: DecodeLimits::default(),
        workers,
        metrics: metrics.clone(),
        wake: wake.clone(),
        rules: with_rules().then(bench_rules),
        traffic: Some(Arc::new(SharedTraffic::new(
            StatsSettings::default(),
            workers,
        ))),
        board: None,
        tail: None,
        search: None,
    };
    let cpu_start = process_cpu_secs();
    let start = Instant::now();
    let handle = pipeline::spawn(setup, shutdown.clone()).expect("pipeline");
    while !inbox.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, process_cpu_secs()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    shutdown.trigger();
    wake.notify();
    handle.join().expect("pipeline thread");
    let written = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let stages = ["write", "sync", "wait", "idle"].map(|stage| {
        metrics
            .pipeline_seconds
            .get_or_create(&StageLabel { stage })
            .get()
    });
    Outcome {
        secs,
        written,
        cpu,
        stages,
    }
}

fn with_rules() -> bool {
    std::env::var("LOGFERRY_BENCH_RULES").map_or(true, |v| v != "0")
}

/// The ten bench rules, routed to the bench's one sink.
fn bench_rules() -> Arc<RuleSet> {
    let text = include_str!("../src/rules/bench_rules.toml").replace(
        r#"sinks = ["cloudwatch", "archive"]"#,
        r#"sinks = ["archive"]"#,
    );
    let rules = rules_from_toml(&text).expect("bench rules");
    assert_eq!(rules.len(), 10);
    let ctx = EngineContext {
        sinks: vec!["archive".into()],
        notifiers: vec!["oncall".into(), "team".into()],
        clock: Arc::new(SystemClock),
        outbox: Arc::new(Outbox::new(1000)),
    };
    Arc::new(RuleSet::open(&rules, None, ctx).expect("rule set"))
}

fn bench(name: &str, lines: &[String], total: usize, workers: &[usize]) {
    if lines.is_empty() {
        return;
    }
    let (frames, raw) = frames(lines, total);
    for &w in workers {
        let dir = tempfile::tempdir().expect("temp dir");
        let o = run_once(dir.path(), &frames, w);
        let mib = (1 << 20) as f64;
        let cpu = o
            .cpu
            .map(|c| format!("{:>5.0}% CPU", 100.0 * c / o.secs))
            .unwrap_or_default();
        let [write, sync, wait, idle] = o.stages.map(|s| 100.0 * s / o.secs);
        let idle = idle / w as f64;
        println!(
            "{name:<14} {w:>2} worker{} {:>10.0} events/s {:>7.1} MiB/s in {:>7.1} MiB/s out {cpu} \
             (coordinator: write {write:.0}%, sync {sync:.0}%, wait {wait:.0}%; workers idle {idle:.0}%)",
            if w == 1 { " " } else { "s" },
            total as f64 / o.secs,
            raw as f64 / o.secs / mib,
            o.written as f64 / o.secs / mib,
        );
    }
}

fn corpus_lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["line"].as_str().map(str::to_owned))
        .collect()
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Lines shaped like the end-to-end benchmark's generator (`bench/run.py`,
/// `../shared/bench/gen_logs.py`): 45% nginx combined, 35% JSON, 20% BSD syslog,
/// 100–400 bytes, a unique `seq` in each.
fn generated(n: usize) -> Vec<String> {
    const METHODS: &[&str] = &[
        "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE",
    ];
    const PATHS: &[&str] = &[
        "/",
        "/index.html",
        "/api/v1/users/4711",
        "/api/v1/orders/163033/items",
        "/static/js/app.3f2a9c1e.js",
        "/search?q=wireless+headphones&page=3",
        "/health",
        "/api/v1/products?category=electronics&sort=price_asc&limit=50&offset=200",
    ];
    const STATUS: &[&str] = &[
        "200", "200", "200", "200", "200", "304", "404", "500", "201",
    ];
    const REFS: &[&str] = &[
        "-",
        "https://www.example.com/",
        "https://www.google.com/search?q=example+shop",
        "https://m.facebook.com/",
    ];
    const UAS: &[&str] = &[
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "curl/7.88.1",
        "kube-probe/1.29",
    ];
    const LEVELS: &[&str] = &["info", "info", "info", "info", "debug", "warn", "error"];
    const LOGGERS: &[&str] = &[
        "app.http",
        "app.db",
        "app.cache",
        "worker.billing",
        "grpc.server",
    ];
    const MSGS: &[&str] = &[
        "request completed",
        "cache miss for key",
        "retrying upstream call after timeout",
        "connection pool exhausted, waiting for free connection",
        "failed to parse header value, using default",
    ];
    const SYSLOG: &[&str] = &[
        "sshd[2211]: Accepted publickey for deploy from 10.16.51.81 port 27314 ssh2: ED25519 SHA256:448aaa9e448aaa9e",
        "CRON[3120]: (root) CMD (/usr/local/bin/backup.sh --incremental --target s3://backups/e27a984d >/dev/null 2>&1)",
        "kernel: [12345.678] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
        "systemd[1]: Started session 4242 of user deploy.",
        "dockerd[911]: time=\"2024-10-10T13:55:41.26952Z\" level=info msg=\"ignoring event\" container=e27a984de27a984d",
    ];
    let mut rng = Rng(42);
    let mut t = 1_728_568_536u64;
    (1..=n)
        .map(|seq| {
            if seq % 40 == 0 {
                t += 1;
            }
            let (h, m, s) = ((t / 3600) % 24, (t / 60) % 60, t % 60);
            let k = rng.below(100);
            let mut line = if k < 45 {
                format!(
                    "{}.{}.{}.{} - - [10/Oct/2024:{h:02}:{m:02}:{s:02} +0000] \"{} {} HTTP/1.1\" {} {} \"{}\" \"{}\" rt={}.{:03} seq={seq}",
                    1 + rng.below(223),
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254),
                    rng.pick(METHODS),
                    rng.pick(PATHS),
                    rng.pick(STATUS),
                    rng.below(250_000),
                    rng.pick(REFS),
                    rng.pick(UAS),
                    rng.below(2),
                    rng.below(1000),
                )
            } else if k < 80 {
                let extra = if rng.below(2) == 0 {
                    format!(
                        ",\"path\":\"/api/v1/orders/{}\",\"status\":{}",
                        rng.below(1_000_000),
                        rng.pick(STATUS)
                    )
                } else {
                    String::new()
                };
                format!(
                    "{{\"ts\":\"2024-10-10T{h:02}:{m:02}:{s:02}.{:03}Z\",\"level\":\"{}\",\"logger\":\"{}\",\"msg\":\"{}\",\"trace_id\":\"{:016x}{:016x}\",\"user_id\":{},\"duration_ms\":{}.{:02},\"seq\":{seq}{extra}}}",
                    rng.below(1000),
                    rng.pick(LEVELS),
                    rng.pick(LOGGERS),
                    rng.pick(MSGS),
                    rng.next(),
                    rng.next(),
                    1 + rng.below(5_000_000),
                    rng.below(900),
                    rng.below(100),
                )
            } else {
                format!(
                    "Oct 10 {h:02}:{m:02}:{s:02} web-{:02} {} seq={seq}",
                    1 + rng.below(12),
                    rng.pick(SYSLOG)
                )
            };
            while line.len() < 100 {
                line.push_str(" lorem ipsum");
            }
            line
        })
        .collect()
}

fn main() {
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let events: Option<usize> = std::env::var("LOGFERRY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<usize> = std::env::var("LOGFERRY_BENCH_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .filter(|w: &Vec<usize>| !w.is_empty())
        .unwrap_or_else(|| if cpus > 1 { vec![1, cpus] } else { vec![1] });
    println!(
        "pipeline: zstd frames of 1 MiB in a real inbox -> decode, parse, {} render -> file \
         sink (fsync) -> inbox completed; {cpus} CPUs",
        if with_rules() {
            "10 rules, summaries,"
        } else {
            "no rules,"
        }
    );

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut groups = Vec::new();
    for f in &files {
        let lines = corpus_lines(f);
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if wanted(&name) {
            bench(&name, &lines, events.unwrap_or(300_000), &workers);
        }
        groups.push(lines);
    }
    // Interleaved so consecutive lines differ in format: the worst case for detection.
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mixed: Vec<String> = (0..longest)
        .flat_map(|i| groups.iter().filter_map(move |g| g.get(i).cloned()))
        .collect();
    let big = events.unwrap_or(600_000);
    if wanted("mixed-corpus") {
        bench("mixed-corpus", &mixed, big, &workers);
    }
    if wanted("generator") {
        bench("generator", &generated(big), big, &workers);
    }
    if let Ok(input) = std::env::var("LOGFERRY_BENCH_INPUT") {
        let text = std::fs::read_to_string(&input).unwrap_or_default();
        let lines: Vec<String> = text.lines().take(big).map(str::to_owned).collect();
        if wanted("input-file") {
            bench("input-file", &lines, lines.len(), &workers);
        }
    }
}
