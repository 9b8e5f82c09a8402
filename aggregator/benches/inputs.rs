//! Input throughput: `cargo bench -p logferry-aggregator --bench inputs` (add `-- --quick`
//! for a short run).
//!
//! Starts the real `logferry-aggregator` binary (built in the bench's profile) with five
//! inputs on 127.0.0.1 — syslog over TCP, UDP and TLS, `http` (JSON) and `otlp` — and a
//! file sink, then drives one input at a time with load generators in this process:
//!
//! - syslog TCP and TLS: the same events over 4 connections, two octet-counted and two
//!   line-feed framed, RFC 5424 (with and without structured data) and RFC 3164 (with
//!   and without a PID) in turn, each connection's bytes written whole;
//! - syslog UDP: the same events as datagrams from 2 sockets, unpaced: what the input
//!   cannot take is dropped, and the drops are reported, by the kernel (`RcvbufErrors`)
//!   and by the input (`logferry_input_dropped_messages_total`);
//! - `http`: NDJSON bodies of 1,000 records (about 230 bytes each) from 4 keep-alive
//!   clients, plain and gzip-compressed;
//! - `otlp`: `ExportLogsServiceRequest` protobuf bodies of 1,000 records (one resource and
//!   scope per body, attributes and trace context on each record) from 4 clients.
//!
//! Each phase is timed from the first byte sent until the sink file holds every event,
//! and checked: every event carries `seq=<n>` and must be in the file exactly once (UDP:
//! at most once, the rest reported as dropped). CPU is the aggregator process's (user +
//! system, from `/proc/PID/stat`) over the same span; the load generators' CPU is shown
//! apart.
//!
//! In the same run, if `rsyslogd` is installed (Debian's rsyslog), the syslog TCP traffic
//! — the same bytes over the same connections — goes to rsyslog too: started unprivileged
//! in the foreground with imtcp on a free port and omfile writing one JSON line per
//! message (see `inputs_support/rsyslog.rs`), timed until its file holds every line. Both
//! are printed side by side. The aggregator does more per event than that rsyslog config:
//! it stores each batch durably (fsynced inbox) before it parses, and fsyncs the sink;
//! omfile writes through the page cache. Without rsyslogd the run says so and measures
//! the aggregator alone.
//!
//! Environment: `LOGFERRY_BENCH_EVENTS=N` events per phase (default 200,000; 20,000 with
//! `--quick`), `LOGFERRY_BENCH_ROUNDS=N` repeats the phases (default 1),
//! `LOGFERRY_BENCH_ONLY=tcp,rsyslog,tls,udp,http,http_gzip,otlp` runs only those phases.

#[path = "inputs_support/measure.rs"]
mod measure;
#[path = "inputs_support/rsyslog.rs"]
mod rsyslog;
#[path = "inputs_support/send.rs"]
mod send;
#[path = "inputs_support/traffic.rs"]
mod traffic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logferry_e2e::{toml_path, Aggregator, AggregatorOptions, TestDir};
use measure::{cpu_secs, Follower, Tally};

const CONNECTIONS: usize = 4;
const UDP_SENDERS: usize = 2;
const HTTP_SENDERS: usize = 4;
const RECORDS_PER_BODY: usize = 1000;
/// How long a phase may see nothing arrive before it stops waiting.
const STALL: Duration = Duration::from_secs(60);
/// UDP: how long nothing more arrives before the rest counts as dropped.
const UDP_QUIET: Duration = Duration::from_secs(3);
const DROPPED: &str = "logferry_input_dropped_messages_total";

/// One phase's figures.
struct Row {
    name: String,
    sent: usize,
    tally: Tally,
    secs: f64,
    cpu: f64,
    client_cpu: f64,
    note: String,
}

impl Row {
    fn print(&self) {
        let stored = self.tally.found as f64;
        println!(
            "{:<28} {:>9} {:>10.0} {:>8.2} {:>7.2} {:>11.0} {:>8.2}  {}",
            self.name,
            self.tally.found,
            stored / self.secs,
            self.secs,
            self.cpu,
            stored / self.cpu.max(1e-9),
            self.client_cpu,
            self.note
        );
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Waits (at most 10 s) until process `pid` uses no more than 5% of a core over 200 ms,
/// so one phase's leftover work is not counted in the next.
fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = cpu_secs(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = cpu_secs(pid);
        if now - before <= 0.01 {
            return;
        }
        before = now;
    }
}

fn aggregator(dir: &TestDir) -> Aggregator {
    let tls = format!(
        "type = \"syslog\"\nmode = \"tls\"\nlisten = \"127.0.0.1:0\"\n[inputs.tls]\ncert = {}\nkey = {}\n",
        toml_path(&dir.cert("server.pem")),
        toml_path(&dir.cert("server-key.pem")),
    );
    let options = AggregatorOptions::default()
        .input(
            "syslog_tcp",
            "type = \"syslog\"\nmode = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        )
        .input(
            "syslog_udp",
            "type = \"syslog\"\nmode = \"udp\"\nlisten = \"127.0.0.1:0\"",
        )
        .input("syslog_tls", &tls)
        .input("http", "type = \"http\"\nlisten = \"127.0.0.1:0\"")
        .input("otlp", "type = \"otlp\"\nlisten = \"127.0.0.1:0\"");
    Aggregator::start(dir, options).expect("starting the aggregator")
}

/// The sum of every series of `metric` for input `input` in the aggregator's metrics.
fn input_metric(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    metric: &str,
    input: &str,
) -> f64 {
    let text = agg.metrics(client).expect("GET /metrics");
    let prefix = format!("{metric}{{input=\"{input}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `send`, then waits until `follower` holds `n` events (or, with `lossy`, until
/// nothing more arrives); panics, with the accounting, if a lossless phase misses any.
fn phase(
    name: &str,
    n: usize,
    pid: u32,
    follower: &mut Follower,
    lossy: bool,
    send: impl FnOnce() -> String,
) -> Row {
    settle(pid);
    follower.phase(n);
    let cpu0 = cpu_secs(pid);
    let me0 = cpu_secs(std::process::id());
    let start = Instant::now();
    let note = send();
    let client_cpu = cpu_secs(std::process::id()) - me0;
    let quiet = if lossy { UDP_QUIET } else { STALL };
    let (complete, end) = follower.wait(n as u64, quiet, Instant::now() + Duration::from_secs(600));
    let cpu = cpu_secs(pid) - cpu0;
    follower.poll();
    let tally = follower.tally();
    let row = Row {
        name: name.to_owned(),
        sent: n,
        tally,
        secs: end.duration_since(start).as_secs_f64(),
        cpu,
        client_cpu,
        note,
    };
    let all_once = complete && tally.missing == 0 && tally.duplicates == 0 && tally.strays == 0;
    if !lossy && !all_once {
        panic!("{name}: not every event arrived exactly once: {tally:?}");
    }
    assert!(
        tally.duplicates == 0 && tally.strays == 0,
        "{name}: duplicated or unknown events: {tally:?}"
    );
    row
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let n = env_usize(
        "LOGFERRY_BENCH_EVENTS",
        if quick { 20_000 } else { 200_000 },
    );
    let rounds = env_usize("LOGFERRY_BENCH_ROUNDS", 1);
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let wanted = |p: &str| only.is_empty() || only.split(',').any(|o| o.trim() == p);

    // The HTTP senders' reqwest clients use rustls with the process's provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TestDir::new().expect("bench directory");
    let agg = aggregator(&dir);
    let pid = agg.process.pid();
    let addr = |name: &str| -> SocketAddr { agg.input_addrs[name] };
    let rsyslogd = rsyslog::find();
    let rs = rsyslogd
        .as_ref()
        .map(|p| rsyslog::Rsyslog::start(p, dir.path()));
    let profile = if cfg!(debug_assertions) {
        "with debug assertions (a dev-profile build; see README for one with optimised code)"
    } else {
        "without debug assertions (bench or release profile)"
    };
    println!("inputs: {n} events per phase, {rounds} round(s); aggregator built {profile}");
    match &rsyslogd {
        Some(p) => println!("rsyslog: {} (imtcp → omfile, JSON lines)", p.display()),
        None => println!(
            "\n!!! rsyslogd NOT FOUND (install Debian's `rsyslog`): measuring the aggregator alone, \
             no rsyslog comparison !!!\n"
        ),
    }

    let streams = traffic::syslog_streams(n, CONNECTIONS);
    let datagrams = traffic::syslog_datagrams(n);
    let ndjson = traffic::ndjson_bodies(n, RECORDS_PER_BODY, false);
    let ndjson_gz = traffic::ndjson_bodies(n, RECORDS_PER_BODY, true);
    let otlp = traffic::otlp_bodies(n, RECORDS_PER_BODY);
    let mb = |bodies: &[Vec<u8>]| bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "traffic: syslog {:.1} MB over {CONNECTIONS} connections; NDJSON {:.1} MB ({:.1} MB gzip); OTLP protobuf {:.1} MB; bodies of {RECORDS_PER_BODY} records",
        mb(&streams),
        mb(&ndjson),
        mb(&ndjson_gz),
        mb(&otlp)
    );
    let client_tls = Arc::new(
        logferry_shared::tls::client_config(Some(&dir.cert("ca.pem")), None).expect("client TLS"),
    );
    let admin = logferry_e2e::http::client(&dir, false).expect("admin client");
    let mut ours = Follower::new(&agg.sink_path);
    let mut theirs = rs.as_ref().map(|r| Follower::new(&r.out));

    for round in 0..rounds {
        println!(
            "\nround {round}:\n{:<28} {:>9} {:>10} {:>8} {:>7} {:>11} {:>8}  notes",
            "phase", "events", "events/s", "wall s", "CPU s", "events/CPU-s", "load CPU"
        );
        if wanted("tcp") {
            phase("syslog tcp → file", n, pid, &mut ours, false, || {
                send::tcp_streams(addr("syslog_tcp"), &streams);
                String::new()
            })
            .print();
        }
        if let (Some(rs), Some(follower), true) = (&rs, theirs.as_mut(), wanted("rsyslog")) {
            phase(
                "rsyslog imtcp → omfile",
                n,
                rs.process.pid(),
                follower,
                false,
                || {
                    send::tcp_streams(rs.addr, &streams);
                    "the same bytes as syslog tcp".to_owned()
                },
            )
            .print();
        }
        if wanted("tls") {
            phase("syslog tls → file", n, pid, &mut ours, false, || {
                send::tls_streams(addr("syslog_tls"), &streams, client_tls.clone());
                String::new()
            })
            .print();
        }
        if wanted("udp") {
            let kernel0 = measure::udp_rcvbuf_errors();
            let input0 = input_metric(&agg, &admin, DROPPED, "syslog_udp");
            let row = phase("syslog udp → file", n, pid, &mut ours, true, || {
                send::udp_datagrams(addr("syslog_udp"), &datagrams, UDP_SENDERS);
                String::new()
            });
            let kernel = measure::udp_rcvbuf_errors() - kernel0;
            let input = input_metric(&agg, &admin, DROPPED, "syslog_udp") - input0;
            let note = format!(
                "{} of {} dropped: {kernel} by the kernel (RcvbufErrors, machine-wide), {input} by the input",
                row.tally.missing, row.sent
            );
            Row { note, ..row }.print();
        }
        for (key, name, bodies, ctype, gzip, path) in [
            (
                "http",
                "http NDJSON → file",
                &ndjson,
                "application/x-ndjson",
                false,
                "http",
            ),
            (
                "http_gzip",
                "http NDJSON gzip → file",
                &ndjson_gz,
                "application/x-ndjson",
                true,
                "http",
            ),
            (
                "otlp",
                "otlp protobuf → file",
                &otlp,
                "application/x-protobuf",
                false,
                "otlp",
            ),
        ] {
            if !wanted(key) {
                continue;
            }
            let url = format!("http://{}/v1/logs", addr(path));
            let queue: Vec<bytes::Bytes> = bodies.iter().cloned().map(Into::into).collect();
            phase(name, n, pid, &mut ours, false, || {
                let requests = queue.len();
                let retries = send::post_bodies(&url, queue, ctype, gzip, HTTP_SENDERS);
                format!("{requests} requests, {retries} retried (429/503)")
            })
            .print();
        }
    }
    println!(
        "\nevents/s: from the first byte sent until the file holds every event; CPU s: the receiving \
         process (aggregator or rsyslogd), user + system; load CPU: this process's senders."
    );
    drop(rs);
    let mut agg = agg;
    agg.stop().expect("the aggregator stops on SIGTERM");
}
