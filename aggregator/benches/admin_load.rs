//! Ingest throughput while the admin endpoint is used:
//! `cargo bench -p logferry-aggregator --bench admin_load`.
//!
//! Starts a real aggregator in this process (`app::start`: TLS ingest on 127.0.0.1 with
//! certificates made here, a file sink, log search on, the admin endpoint) and sends it
//! the same number of events twice over, in frames of 1,000 JSON lines from four senders
//! over HTTPS, as agents would:
//!
//! - `quiet`: nobody uses the admin endpoint;
//! - `busy`: meanwhile two clients search `/api/logs` back to back (the newest page; errors
//!   only; a text found in no event over the last 5 minutes, which reads every block in
//!   range: the worst case) and four live tails read `/api/tail` (two filtered on level,
//!   two on text).
//!
//! For each phase it prints the events/s accepted by ingest (first frame sent to last
//! frame answered) and through the pipeline (until the file sink has every event, read
//! from `/metrics`), the 429s (inbox full) met, and in `busy` the searches done with
//! their latency (median, p95, max) and the events the tails received. The senders and
//! the admin clients run in this process and share its two cores with the aggregator, as
//! an operator's browser would not: read the two phases against each other, not as
//! absolute figures. Everything is bounded: a fixed number of events, and the admin load
//! stops when the phase's events are through.
//!
//! Environment: `LOGFERRY_BENCH_EVENTS=N` events per phase (default 300,000);
//! `LOGFERRY_BENCH_ROUNDS=N` runs the pair of phases N times (default 1);
//! `LOGFERRY_BENCH_LOAD=search` or `=tail` keeps only that part of the admin load.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logferry_aggregator::app;
use logferry_aggregator::config::AggregatorConfig;
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::tls::{self, DevCerts};
use logferry_shared::wire::BatchBuilder;

const LINES_PER_FRAME: usize = 1000;
const SENDERS: usize = 4;
const SEARCHERS: usize = 2;
const TAILS: usize = 4;
const TOKEN: &str = "bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A JSON line of about 200 bytes; levels and services vary with `i`.
fn line(i: usize) -> String {
    const LEVELS: [&str; 8] = [
        "info", "info", "info", "debug", "info", "warn", "info", "error",
    ];
    const SERVICES: [&str; 4] = ["checkout", "search", "payments", "auth"];
    format!(
        r#"{{"level":"{}","service":"{}","msg":"request {} handled for user u{} in {} ms","path":"/api/v1/items/{}","status":{}}}"#,
        LEVELS[i % LEVELS.len()],
        SERVICES[i % SERVICES.len()],
        i,
        i % 977,
        i % 300,
        i % 5000,
        if i.is_multiple_of(40) { 500 } else { 200 },
    )
}

/// The phase's frames, sealed before timing starts (sealing is the agents' work).
fn frames(agent: &str, events: usize) -> Vec<Vec<u8>> {
    let mut c = Compressor::new(Codec::Zstd, 1).expect("zstd");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    (0..events.div_ceil(LINES_PER_FRAME))
        .map(|seq| {
            let mut b = BatchBuilder::new("bench-node", now, 4 << 20);
            let src = b.add_source("/var/log/bench/app.log", &[]);
            for i in 0..LINES_PER_FRAME.min(events - seq * LINES_PER_FRAME) {
                b.push(src, now, 0, line(seq * LINES_PER_FRAME + i).as_bytes());
            }
            b.seal(agent, "s", seq as u64 + 1, &mut c).expect("seal")
        })
        .collect()
}

fn config(dir: &Path) -> AggregatorConfig {
    let certs = dir.join("certs");
    DevCerts::generate(&["127.0.0.1".into()], "bench")
        .expect("certificates")
        .write_to(&certs)
        .expect("writing certificates");
    let d = dir.display();
    let text = format!(
        "data_dir = \"{d}/data\"\n\
         [ingest]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\n\
         [ingest.tls]\ncert = \"{d}/certs/server.pem\"\nkey = \"{d}/certs/server-key.pem\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [sinks.out]\ntype = \"file\"\npath = \"{d}/out.jsonl\"\n"
    );
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, text).expect("writing the config");
    AggregatorConfig::load(&path).expect("config")
}

fn client(dir: &Path) -> reqwest::Client {
    let tls = tls::client_config(Some(&dir.join("certs/ca.pem")), None).expect("client TLS");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A counter from the Prometheus text, e.g. `logferry_sink_events_total{sink="out"}`.
async fn metric(client: &reqwest::Client, admin: &str, series: &str) -> u64 {
    let Ok(resp) = client.get(format!("{admin}/metrics")).send().await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[derive(Default)]
struct AdminLoad {
    stop: AtomicBool,
    latencies_ms: Mutex<Vec<f64>>,
    failed: AtomicUsize,
    tailed: AtomicU64,
    /// Frames the tails missed (`event: lagged`).
    lagged: AtomicU64,
}

async fn search_loop(client: reqwest::Client, admin: String, load: Arc<AdminLoad>, k: usize) {
    let queries = [
        "/api/logs?limit=100",
        "/api/logs?level=error&limit=100",
        "/api/logs?q=no-such-text-anywhere&since=5m&limit=100",
    ];
    let mut i = k;
    while !load.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = match client
            .get(format!("{admin}{}", queries[i % queries.len()]))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        };
        if ok {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            load.latencies_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ms);
        } else {
            load.failed.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
    }
}

async fn tail_loop(client: reqwest::Client, admin: String, load: Arc<AdminLoad>, k: usize) {
    let filter = ["level=warn", "q=checkout"][k % 2];
    let Ok(mut resp) = client
        .get(format!("{admin}/api/tail?{filter}"))
        .send()
        .await
    else {
        load.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    while !load.stop.load(Ordering::Relaxed) {
        let chunk = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => {
                // Whole messages mostly; a message split across chunks is rare and
                // only shifts the count by one.
                for msg in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    if msg.starts_with(b"data: ") {
                        load.tailed.fetch_add(1, Ordering::Relaxed);
                    } else if msg.starts_with(b"event: lagged") {
                        load.lagged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(_) => return,
            Err(_) => {}
        }
    }
}

struct Outcome {
    accepted_per_s: f64,
    through_per_s: f64,
    retries: usize,
}

/// Sends the frames from `SENDERS` tasks; retries a 429 after a pause.
async fn send(
    client: &reqwest::Client,
    ingest: &str,
    admin: &str,
    frames: Vec<Vec<u8>>,
    events: usize,
    already: u64,
) -> Outcome {
    let queue = Arc::new(Mutex::new(frames));
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (client, queue, retries) = (client.clone(), queue.clone(), retries.clone());
        let url = format!("{ingest}{}", logferry_aggregator::ingest::BATCH_PATH);
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(frame) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                    return;
                };
                for attempt in 0.. {
                    let resp = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/vnd.logferry.batch")
                        .body(frame.clone())
                        .send()
                        .await;
                    match resp.map(|r| r.status().as_u16()) {
                        Ok(200) => break,
                        Ok(429) | Ok(503) if attempt < 10_000 => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("ingest answered {other:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let accepted = started.elapsed();
    let want = already + events as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(client, admin, "logferry_sink_events_total{sink=\"out\"}").await < want {
        assert!(Instant::now() < deadline, "the pipeline did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let through = started.elapsed();
    Outcome {
        accepted_per_s: events as f64 / accepted.as_secs_f64(),
        through_per_s: events as f64 / through.as_secs_f64(),
        retries: retries.load(Ordering::Relaxed),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let events = env_usize("LOGFERRY_BENCH_EVENTS", 300_000);
    let rounds = env_usize("LOGFERRY_BENCH_ROUNDS", 1);
    let only = std::env::var("LOGFERRY_BENCH_LOAD").unwrap_or_default();
    let (searchers, tails) = match only.as_str() {
        "search" => (SEARCHERS, 0),
        "tail" => (0, TAILS),
        _ => (SEARCHERS, TAILS),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let running = app::start(config(dir.path())).await.expect("aggregator");
    let ingest = format!("https://{}", running.ingest_addr);
    let admin = format!("http://{}", running.admin_addr);
    let client = client(dir.path());
    println!(
        "admin_load: {events} events per phase in frames of {LINES_PER_FRAME}, {SENDERS} senders over HTTPS; \
         busy = {searchers} search clients back to back + {tails} live tails"
    );
    let mut sent = 0u64;
    for round in 0..rounds {
        for busy in [false, true] {
            let name = if busy { "busy" } else { "quiet" };
            let frames = frames(&format!("bench-{round}-{name}"), events);
            let load = Arc::new(AdminLoad::default());
            let mut admin_tasks = Vec::new();
            if busy {
                for k in 0..searchers {
                    admin_tasks.push(tokio::spawn(search_loop(
                        client.clone(),
                        admin.clone(),
                        load.clone(),
                        k,
                    )));
                }
                for k in 0..tails {
                    admin_tasks.push(tokio::spawn(tail_loop(
                        client.clone(),
                        admin.clone(),
                        load.clone(),
                        k,
                    )));
                }
            }
            let out = send(&client, &ingest, &admin, frames, events, sent).await;
            sent += events as u64;
            load.stop.store(true, Ordering::Relaxed);
            for t in admin_tasks {
                let _ = t.await;
            }
            let mut lat =
                std::mem::take(&mut *load.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()));
            lat.sort_by(f64::total_cmp);
            let admin_line = if busy {
                format!(
                    "; {} searches (median {:.0} ms, p95 {:.0} ms, max {:.0} ms, {} failed), {} events tailed, {} lagged notices",
                    lat.len(),
                    percentile(&lat, 0.5),
                    percentile(&lat, 0.95),
                    lat.last().copied().unwrap_or(f64::NAN),
                    load.failed.load(Ordering::Relaxed),
                    // A lagged notice has a data line too.
                    load.tailed
                        .load(Ordering::Relaxed)
                        .saturating_sub(load.lagged.load(Ordering::Relaxed)),
                    load.lagged.load(Ordering::Relaxed),
                )
            } else {
                String::new()
            };
            println!(
                "round {round} {name:>5}: ingest {:.0} events/s accepted, {:.0} events/s through to the sink, {} retries (429){admin_line}",
                out.accepted_per_s, out.through_per_s, out.retries,
            );
        }
    }
    running.stop().await.expect("stop");
}
