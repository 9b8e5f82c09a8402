//! Parse + render throughput: `cargo bench -p logferry-aggregator --bench parse`.
//!
//! For every corpus format (`tests/corpus/parse/*.jsonl`) and for a mix of all of them, it
//! builds 1 MiB batches of those lines (repeated, uncompressed), then times what one
//! pipeline worker does with them ([`FrameRenderer`]: decode, parse, render to output JSON
//! lines) on one thread, and prints events/s, ns/event, and events per CPU-second of the
//! thread (steadier than wall time on a shared machine). With
//! `LOGFERRY_BENCH_INPUT=FILE` it also measures a real file (e.g. the end-to-end
//! benchmark's generated input); `LOGFERRY_BENCH_ONLY=json,input-file` runs only the named
//! cases (for profiling).

use std::path::PathBuf;
use std::time::Instant;

use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;
use logferry_aggregator::pipeline::FrameRenderer;
use logferry_aggregator::render::RenderedLines;
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::wire::{decode_frame, BatchBuilder, DecodeLimits};

/// Builds frames of about 1 MiB from `lines`, repeated until `total` lines.
fn frames(lines: &[String], total: usize) -> Vec<Vec<u8>> {
    frames_with(lines, total, Codec::None, 0)
}

fn frames_with(lines: &[String], total: usize, codec: Codec, level: i32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut compressor = Compressor::new(codec, level).expect("compressor");
    let mut b = BatchBuilder::new("bench", 1_795_341_600_000, 1 << 20);
    let mut src = b.add_source("/var/log/bench.log", &[]);
    for (i, line) in lines.iter().cycle().take(total).enumerate() {
        b.push(src, 1_795_341_600_000, 0, line.as_bytes());
        if b.raw_len() >= 1 << 20 {
            let full = std::mem::replace(
                &mut b,
                BatchBuilder::new("bench", 1_795_341_600_000, 1 << 20),
            );
            out.push(
                full.seal("a", "s", i as u64, &mut compressor)
                    .expect("seal"),
            );
            src = b.add_source("/var/log/bench.log", &[]);
        }
    }
    if !b.is_empty() {
        out.push(b.seal("a", "s", u64::MAX, &mut compressor).expect("seal"));
    }
    out
}

fn run(name: &str, lines: &[String]) {
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    if lines.is_empty() || !(only.is_empty() || only.split(',').any(|o| o == name)) {
        return;
    }
    let total = 400_000;
    let frames = frames(lines, total);
    let detector = Detector::new(Zone::Utc, &[], &[]).expect("detector");
    // What a pipeline worker runs: decode into a reused buffer, parse, render.
    let mut renderer = FrameRenderer::new(detector, DecodeLimits::default());
    let mut out = RenderedLines::default();
    // Warm up once, then measure the best of three passes, by wall time and by the
    // thread's CPU time (which other processes on a shared machine disturb less).
    let mut best = f64::MAX;
    let mut best_cpu = f64::MAX;
    let mut events = 0u64;
    let mut bytes_in = 0usize;
    for pass in 0..4 {
        let start = Instant::now();
        let cpu_start = thread_cpu_secs();
        events = 0;
        bytes_in = 0;
        for f in &frames {
            out.clear();
            events += renderer.render(f, &mut out).expect("render").events();
            bytes_in += f.len();
        }
        let secs = start.elapsed().as_secs_f64();
        if pass > 0 {
            best = best.min(secs);
            if let (Some(a), Some(b)) = (cpu_start, thread_cpu_secs()) {
                best_cpu = best_cpu.min(b - a);
            }
        }
    }
    let per_cpu = if best_cpu < f64::MAX {
        format!("{:>12.0} events/CPU-s", events as f64 / best_cpu)
    } else {
        String::new()
    };
    println!(
        "{name:<14} {:>12.0} events/s {:>8.0} ns/event {:>8.1} MiB/s in {per_cpu}",
        events as f64 / best,
        best * 1e9 / events as f64,
        bytes_in as f64 / best / (1 << 20) as f64
    );
}

/// What decompressing costs next to the rest: zstd frames (level 1, as agents send them)
/// timed through `decode_frame` + `batch()` alone (what ingest does to check a batch) and
/// through a pipeline worker (decode, parse, render).
fn decode_share(name: &str, lines: &[String]) {
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let name = format!("{name}-zstd");
    if lines.is_empty() || !(only.is_empty() || only.split(',').any(|o| o == name)) {
        return;
    }
    let frames = frames_with(lines, 400_000, Codec::Zstd, 1);
    let limits = DecodeLimits::default();
    let mut renderer = FrameRenderer::new(
        Detector::new(Zone::Utc, &[], &[]).expect("detector"),
        limits,
    );
    let mut out = RenderedLines::default();
    let (mut decode, mut whole) = (f64::MAX, f64::MAX);
    let mut events = 0u64;
    for _ in 0..4 {
        let Some(a) = thread_cpu_secs() else {
            return;
        };
        events = 0;
        for f in &frames {
            let d = decode_frame(f, &limits).expect("decode");
            events += d.batch().expect("batch").records.len() as u64;
        }
        let b = thread_cpu_secs().unwrap_or(a);
        for f in &frames {
            out.clear();
            renderer.render(f, &mut out).expect("render");
        }
        let c = thread_cpu_secs().unwrap_or(b);
        decode = decode.min(b - a);
        whole = whole.min(c - b);
    }
    let per = |s: f64| s * 1e9 / events as f64;
    println!(
        "{name:<14} decode {:>6.0} ns/event, decode+parse+render {:>6.0} ns/event (decode {:.0}%)",
        per(decode),
        per(whole),
        100.0 * decode / whole
    );
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux), in seconds.
fn thread_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    (nanos > 0).then(|| nanos as f64 / 1e9)
}

fn corpus_lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["line"].as_str().map(str::to_owned))
        .collect()
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    println!("parse + render, one thread, 1 MiB batches, best of 3 passes");
    let mut groups = Vec::new();
    for f in &files {
        let lines = corpus_lines(f);
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        run(&name, &lines);
        groups.push(lines);
    }
    // Interleave so consecutive lines differ in format: the worst case for detection.
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    let all: Vec<String> = (0..longest)
        .flat_map(|i| groups.iter().filter_map(move |g| g.get(i).cloned()))
        .collect();
    run("mixed-corpus", &all);
    decode_share("mixed-corpus", &all);
    if let Ok(input) = std::env::var("LOGFERRY_BENCH_INPUT") {
        let text = std::fs::read_to_string(&input).unwrap_or_default();
        let lines: Vec<String> = text.lines().take(400_000).map(str::to_owned).collect();
        run("input-file", &lines);
        decode_share("input-file", &lines);
    }
}
