//! The agent's data path in one process, without the network: the real tailer reads a
//! pre-written file, splits, batches, compresses and commits to the real spool, and the
//! bench acknowledges every spooled batch (as a fast aggregator would). Prints MiB/s,
//! CPU seconds per GiB of input, the compression ratio and the spool's write
//! amplification (bytes written to disk per compressed byte spooled).
//!
//! `cargo bench -p logferry-agent --bench tail`. Environment:
//! - `LOGFERRY_BENCH_INPUT=FILE`: the input (e.g. the end-to-end bench's generated file);
//!   default: 256 MiB of generated access, JSON and syslog lines;
//! - `LOGFERRY_BENCH_COMPRESSION=zstd|gzip|none` (default zstd) and
//!   `LOGFERRY_BENCH_LEVEL=N` (default: the agent's default for the codec).

mod common;
use common::{cpu_seconds, proc_field};

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use logferry_agent::config::AgentConfig;
use logferry_agent::metrics::Metrics;
use logferry_agent::spool::Spool;
use logferry_agent::tailer::Tailer;
use logferry_shared::runtime::Shutdown;

fn generate(path: &Path, bytes: u64) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    let mut written = 0u64;
    let mut n = 0u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while written < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = match x % 20 {
            0..=8 => format!(
                "10.{}.{}.{} - - [22/Nov/2026:10:00:{:02} +0000] \"GET /api/v1/items/{} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) bench/{}\" seq={n}",
                x % 256, (x >> 8) % 256, (x >> 16) % 256, n % 60, x % 100_000,
                [200, 200, 200, 404, 500][(x % 5) as usize], x % 50_000, x % 9
            ),
            9..=15 => format!(
                "{{\"ts\":\"2026-11-22T10:00:{:02}.{:03}Z\",\"level\":\"{}\",\"msg\":\"request handled\",\"user_id\":{},\"latency_ms\":{:.3},\"trace\":\"{:032x}\",\"seq\":{n}}}",
                n % 60, n % 1000, ["info", "warn", "error", "debug"][(x % 4) as usize],
                x % 5_000_000, (x % 90_000) as f64 / 100.0, x
            ),
            _ => format!(
                "<{}>Nov 22 10:00:{:02} node-{} app[{}]: connection from 10.0.{}.{} closed after {} ms seq={n}",
                x % 191, n % 60, x % 50, x % 30_000, x % 256, (x >> 8) % 256, x % 10_000
            ),
        };
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
        written += line.len() as u64 + 1;
        n += 1;
    }
    out.flush().expect("flush");
    n
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let input = logs.join("input.log");
    let lines = match std::env::var_os("LOGFERRY_BENCH_INPUT") {
        Some(src) => {
            let src = PathBuf::from(src);
            std::fs::hard_link(&src, &input)
                .or_else(|_| std::fs::copy(&src, &input).map(|_| ()))
                .expect("input file");
            std::io::BufReader::new(std::fs::File::open(&input).expect("open input"))
                .split(b'\n')
                .count() as u64
        }
        None => generate(&input, 256 << 20),
    };
    let size = std::fs::metadata(&input).expect("input").len();
    let compression = std::env::var("LOGFERRY_BENCH_COMPRESSION").unwrap_or_else(|_| "zstd".into());
    let level = std::env::var("LOGFERRY_BENCH_LEVEL")
        .map(|l| format!("compression_level = {l}\n"))
        .unwrap_or_default();
    let text = format!(
        "data_dir = {data:?}\n\
         [[inputs]]\ninclude = [{glob:?}]\n\
         [output]\nurl = \"https://127.0.0.1:1\"\ntoken = \"t\"\ncompression = {compression:?}\n{level}\
         [tail]\nwatch = false\n",
        data = dir.path().join("data"),
        glob = logs.join("*.log").to_string_lossy(),
    );
    let cfg_path = dir.path().join("agent.toml");
    std::fs::write(&cfg_path, text).expect("config");
    let cfg = AgentConfig::load(&cfg_path).expect("config");
    let (spool, _) = Spool::open(
        &cfg.data_dir.join("spool"),
        cfg.spool.max_bytes,
        cfg.spool.when_full,
    )
    .expect("spool");
    let spool = Arc::new(spool);
    let metrics = Arc::new(Metrics::new());
    let mut tailer = Tailer::new(
        &cfg,
        spool.clone(),
        metrics.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Shutdown::new(),
        "bench".to_owned(),
    )
    .expect("tailer");
    // Read the input once so it is in the page cache.
    if let Ok(mut f) = std::fs::File::open(&input) {
        let _ = std::io::copy(&mut f, &mut std::io::sink());
    }
    let written0 = proc_field("/proc/self/io", "write_bytes:");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut spooled = 0u64;
    let mut acked = 0u64;
    while metrics.lines_read.get() < lines {
        tailer.tick();
        if metrics.lines_read.get() >= lines {
            tailer.seal();
        }
        while let Some((seq, frame)) = spool.next_after(acked).expect("spool read") {
            spooled += frame.len() as u64;
            spool.ack(seq).expect("ack");
            acked = seq;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let written = proc_field("/proc/self/io", "write_bytes:") - written0;
    let gib = size as f64 / (1u64 << 30) as f64;
    println!(
        "tail: {lines} lines, {:.0} MiB, {compression}: {:.1} MiB/s, {:.2} CPU-s per GiB, ratio {:.2}, spool writes {:.2} x the compressed bytes, peak RSS {} MiB",
        size as f64 / (1 << 20) as f64,
        size as f64 / secs / (1 << 20) as f64,
        cpu / gib,
        size as f64 / spooled.max(1) as f64,
        written as f64 / spooled.max(1) as f64,
        proc_field("/proc/self/status", "VmHWM:") / 1024,
    );
}
