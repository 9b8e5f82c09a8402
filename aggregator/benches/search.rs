//! Search store cost: `cargo bench -p logferry-aggregator --bench search`.
//!
//! Renders 1,000,000 realistic events (JSON lines of 250-320 bytes, as the file sink
//! writes them: 20 hosts, 8 namespaces of 5 pods each and two node files, access logs
//! without a level and
//! application logs at every level, timestamps spread over an hour and a little out of
//! order between hosts), then
//! - appends them to a store with the default settings in a temporary directory, in
//!   batches of 1,000 on one thread, and reports events/s and the slowest batch;
//! - runs each kind of query (one filter each, combined, a time window, page 1 and page 5,
//!   a rare text, a text that matches nothing) [`RUNS`] times, interleaved, and reports
//!   p50, p95 and max latency, CPU time, and the blocks its text filters let it skip;
//! - appends 200,000 more events on one thread while another runs the queries in a loop,
//!   and reports both sides.
//!
//! `SEARCH_BENCH_LEVEL=N` sets the zstd level instead of the default (0: uncompressed);
//! `SEARCH_BENCH_BLOCK_BYTES=N` the line bytes at which a block is sealed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_aggregator::rules::SystemClock;
use logferry_aggregator::search::{EventStore, LevelSet, NewEvent, Query, StoreSettings};
use logferry_shared::event::{Level, Timestamp};

const EVENTS: usize = 1_000_000;
const MORE: usize = 200_000;
const BATCH: usize = 1_000;
const RUNS: usize = 40;
const T0: i64 = 1_795_341_600_000;
const NAMESPACES: [&str; 8] = [
    "shop",
    "payments",
    "prod",
    "kube-system",
    "search",
    "auth",
    "billing",
    "monitoring",
];
const APPS: [&str; 5] = ["api", "worker", "web", "cron", "proxy"];

struct Generated {
    ts: i64,
    level: Option<Level>,
    host: String,
    source: String,
    namespace: Option<String>,
    line: String,
}

impl Generated {
    fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            timestamp_ms: self.ts,
            level: self.level,
            host: &self.host,
            source: &self.source,
            namespace: self.namespace.as_deref(),
            line: self.line.as_bytes(),
        }
    }
}

fn corpus(n: usize, seed: u64, start: i64) -> Vec<Generated> {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let r = next();
        let host_n = r % 20;
        let host = format!("node-{:02}", host_n + 1);
        // An hour for the million, each host's clock up to 2 s off.
        let ts = start + (i as i64 * 36) / 10 + (host_n as i64 * 211 % 4000) - 2000;
        let ns = NAMESPACES[(r >> 8) as usize % NAMESPACES.len()];
        let app = APPS[(r >> 12) as usize % APPS.len()];
        let pod = format!("{app}-{}", (r >> 16) % 5);
        // A quarter of the events come from the nodes' own files, without Kubernetes
        // metadata.
        let in_pod = (r >> 50) % 4 != 0;
        let source = if in_pod {
            format!("/var/log/pods/{ns}_{pod}_7d9f/{app}/0.log")
        } else {
            ["/var/log/syslog", "/var/log/nginx/access.log"][(r >> 52) as usize % 2].to_owned()
        };
        let roll = (r >> 20) % 1000;
        let (level, format, message, fields) = if roll < 350 {
            let status = if roll < 10 { 503 } else { 200 };
            (
                None,
                "access",
                format!(
                    "GET /api/orders/{} {status} {}",
                    (r >> 24) % 1000,
                    (r >> 40) % 50_000
                ),
                format!(r#"{{"status":{status}}}"#),
            )
        } else {
            let (level, message) = match roll {
                350..=449 => (
                    Level::Debug,
                    format!("cache miss for key user:{}", r % 100_000),
                ),
                450..=839 => (
                    Level::Info,
                    format!("order {} processed in {}ms", r % 100_000, (r >> 30) % 3000),
                ),
                840..=919 => (
                    Level::Warn,
                    format!("retrying upstream call, attempt {}", (r >> 30) % 5),
                ),
                920..=989 => (
                    Level::Error,
                    if roll < 935 {
                        format!(
                            "db timeout after {}ms on shard {}",
                            (r >> 30) % 5000,
                            r % 16
                        )
                    } else {
                        format!("payment {} declined: card expired", r % 100_000)
                    },
                ),
                990..=998 => (
                    Level::Error,
                    format!("connection reset by peer {}", r % 250),
                ),
                _ => (
                    Level::Fatal,
                    if r % 10 == 0 {
                        "deadlock detected, exiting".to_owned()
                    } else {
                        "out of memory, exiting".to_owned()
                    },
                ),
            };
            (
                Some(level),
                "json",
                message,
                if roll % 4 == 0 {
                    format!(r#"{{"req":"{:08x}"}}"#, r as u32)
                } else {
                    "{}".to_owned()
                },
            )
        };
        let t = Timestamp::from_millis(ts as u64).to_string();
        let level_json = level.map_or(String::new(), |l| format!(r#","level":"{}""#, l.as_str()));
        let k8s = if in_pod {
            format!(r#","k8s":{{"namespace":"{ns}","pod":"{pod}","container":"{app}"}}"#)
        } else {
            String::new()
        };
        let line = format!(
            r#"{{"timestamp":"{t}","observed_timestamp":"{t}"{level_json},"message":"{message}","host":"{host}","format":"{format}","source":{{"type":"file","path":"{source}"}}{k8s},"fields":{fields}}}"#
        );
        out.push(Generated {
            ts,
            level,
            host,
            source,
            namespace: in_pod.then(|| ns.to_owned()),
            line,
        });
    }
    out
}

fn queries() -> Vec<(&'static str, Query, usize)> {
    let q = Query::default;
    let mid = T0 + 1_800_000;
    vec![
        (
            "level>=error",
            Query {
                levels: LevelSet::at_least(Level::Error),
                ..q()
            },
            1,
        ),
        (
            "level>=error page 5",
            Query {
                levels: LevelSet::at_least(Level::Error),
                ..q()
            },
            5,
        ),
        (
            "level=fatal (0.1%)",
            Query {
                levels: LevelSet::only(Level::Fatal),
                ..q()
            },
            1,
        ),
        (
            "namespace=payments",
            Query {
                namespace: Some("payments".into()),
                ..q()
            },
            1,
        ),
        (
            "namespace=payments page 5",
            Query {
                namespace: Some("payments".into()),
                ..q()
            },
            5,
        ),
        (
            "host=node-07",
            Query {
                host: Some("node-07".into()),
                ..q()
            },
            1,
        ),
        (
            "source=/var/log/pods/auth_",
            Query {
                source: Some("/var/log/pods/auth_".into()),
                ..q()
            },
            1,
        ),
        (
            "q=timeout (1.5%)",
            Query {
                text: Some("timeout".into()),
                ..q()
            },
            1,
        ),
        (
            "q=timeout page 5",
            Query {
                text: Some("timeout".into()),
                ..q()
            },
            5,
        ),
        (
            "q=deadlock (0.01%)",
            Query {
                text: Some("Deadlock".into()),
                ..q()
            },
            1,
        ),
        (
            "q=zebra (no match)",
            Query {
                text: Some("zebra".into()),
                ..q()
            },
            1,
        ),
        (
            "ns+level>=warn+q",
            Query {
                namespace: Some("shop".into()),
                levels: LevelSet::at_least(Level::Warn),
                text: Some("timeout".into()),
                ..q()
            },
            1,
        ),
        (
            "5 min window, level>=warn",
            Query {
                since_ms: Some(mid),
                until_ms: Some(mid + 300_000),
                levels: LevelSet::at_least(Level::Warn),
                ..q()
            },
            1,
        ),
        (
            "5 min window, level>=warn page 5",
            Query {
                since_ms: Some(mid),
                until_ms: Some(mid + 300_000),
                levels: LevelSet::at_least(Level::Warn),
                ..q()
            },
            5,
        ),
        (
            "1 min window, q=declined",
            Query {
                since_ms: Some(mid),
                until_ms: Some(mid + 60_000),
                text: Some("declined".into()),
                ..q()
            },
            1,
        ),
    ]
}

/// The query for page `page` (following the cursors from page 1), and how many events
/// that page has.
fn at_page(store: &EventStore, q: &Query, page: usize) -> (Query, usize) {
    let mut q = q.clone();
    for _ in 1..page {
        match store.search(&q).ok().and_then(|p| p.next_cursor) {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    let n = store.search(&q).map_or(0, |p| p.lines.len());
    (q, n)
}

/// CPU time of the whole process so far, every thread included (`/proc/self/stat`, in
/// clock ticks of 10 ms: summed over many queries the rounding averages out). The
/// machine is shared, so wall-clock latency depends on what else runs; CPU time does not.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15 of the line, so 11 and 12 counting from 0 after
    // the command name (ticks of 1/100 s, the usual USER_HZ).
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run_queries(store: &EventStore, kinds: &[(&str, Query, usize)], runs: usize) {
    let prepared: Vec<(Query, usize)> = kinds
        .iter()
        .map(|(_, q, page)| at_page(store, q, *page))
        .collect();
    let mut times = vec![Vec::with_capacity(runs); kinds.len()];
    let mut cpu = vec![Duration::ZERO; kinds.len()];
    let mut skipped = vec![0; kinds.len()];
    for _ in 0..runs {
        for (i, (q, _)) in prepared.iter().enumerate() {
            let before = store.stats().text_skipped_blocks_total;
            let (start, start_cpu) = (Instant::now(), cpu_time());
            let page = store.search(q).expect("query");
            times[i].push(start.elapsed());
            cpu[i] += cpu_time().saturating_sub(start_cpu);
            skipped[i] += store.stats().text_skipped_blocks_total - before;
            std::hint::black_box(page);
        }
    }
    println!(
        "  {:<34} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "query (limit 100)", "events", "p50 ms", "p95 ms", "max ms", "cpu ms", "skipped"
    );
    for (i, (name, _, _)) in kinds.iter().enumerate() {
        let t = &mut times[i];
        t.sort();
        println!(
            "  {:<34} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>8}",
            name,
            prepared[i].1,
            ms(percentile(t, 0.5)),
            ms(percentile(t, 0.95)),
            ms(t[t.len() - 1]),
            ms(cpu[i]) / runs as f64,
            skipped[i] / runs as u64
        );
    }
    println!("  (skipped: blocks per query that the text filters ruled out unread)");
}

/// Appends in batches: (seconds, CPU seconds, slowest batch).
fn append_all(store: &EventStore, events: &[Generated]) -> (f64, f64, Duration) {
    let mut slowest = Duration::ZERO;
    let (start, start_cpu) = (Instant::now(), cpu_time());
    for batch in events.chunks(BATCH) {
        let b = Instant::now();
        store.append(batch.iter().map(Generated::as_new));
        slowest = slowest.max(b.elapsed());
    }
    let cpu = cpu_time().saturating_sub(start_cpu).as_secs_f64();
    (start.elapsed().as_secs_f64(), cpu, slowest)
}

fn main() {
    let events = corpus(EVENTS, 0x2545_f491_4f6c_dd1d, T0);
    let line_bytes: usize = events.iter().map(|e| e.line.len()).sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = StoreSettings::default();
    if let Some(level) = std::env::var("SEARCH_BENCH_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.compression_level = level;
    }
    if let Some(bytes) = std::env::var("SEARCH_BENCH_BLOCK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.block_bytes = bytes;
    }
    println!(
        "zstd level {}, blocks of up to {} events and {} line bytes; load average {} (2 CPUs, shared)",
        settings.compression_level,
        settings.block_events,
        settings.block_bytes,
        load_average()
    );
    let store = Arc::new(
        EventStore::open(&dir.path().join("search"), settings, Arc::new(SystemClock))
            .expect("open"),
    );
    let (secs, cpu, slowest) = append_all(&store, &events);
    store.flush();
    let stats = store.stats();
    println!(
        "appended {} events ({:.0} bytes/line average) in {:.2} s ({:.2} CPU s): {:.2} M events/s, {:.0} MiB/s of lines, {:.2} us CPU/event; slowest batch of {BATCH}: {:.2} ms",
        EVENTS,
        line_bytes as f64 / EVENTS as f64,
        secs,
        cpu,
        EVENTS as f64 / secs / 1e6,
        line_bytes as f64 / secs / (1 << 20) as f64,
        cpu * 1e6 / EVENTS as f64,
        ms(slowest)
    );
    println!(
        "on disk: {:.1} MiB in {} segments, {} blocks ({:.1} bytes/event, {:.1}x smaller than the lines), of which text filters {:.2} MiB ({:.1} KiB/block)",
        stats.bytes as f64 / (1 << 20) as f64,
        stats.segments,
        stats.blocks,
        stats.bytes as f64 / EVENTS as f64,
        line_bytes as f64 / stats.bytes as f64,
        stats.text_filter_bytes as f64 / (1 << 20) as f64,
        stats.text_filter_bytes as f64 / 1024.0 / stats.blocks.max(1) as f64
    );
    let kinds = queries();
    println!("queries over {EVENTS} events, {RUNS} runs each, interleaved:");
    run_queries(&store, &kinds, RUNS);

    // Appends and queries at the same time, one thread each.
    let more = corpus(MORE, 0x9e37_79b9_7f4a_7c15, T0 + 3_600_000);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        let kinds = kinds.clone();
        std::thread::spawn(move || {
            let mut times = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for (_, q, _) in &kinds {
                    let start = Instant::now();
                    std::hint::black_box(store.search(q).expect("query"));
                    times.push(start.elapsed());
                }
            }
            times
        })
    };
    let (secs, _, slowest) = append_all(&store, &more);
    done.store(true, Ordering::Relaxed);
    let mut times = reader.join().expect("reader");
    times.sort();
    if times.is_empty() {
        times.push(Duration::ZERO);
    }
    println!(
        "while queries run on another thread: appended {MORE} events at {:.2} M events/s, slowest batch {:.2} ms; {} queries (all kinds, page 1 cursors), p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        MORE as f64 / secs / 1e6,
        ms(slowest),
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(times[times.len() - 1])
    );
    println!("load average at the end: {}", load_average());
}
