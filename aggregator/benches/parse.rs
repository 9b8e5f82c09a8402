//! Parse + render throughput: `cargo bench -p logferry-aggregator --bench parse`.
//!
//! For every corpus format (`tests/corpus/parse/*.jsonl`) and for a mix of all of them, it
//! builds 1 MiB batches of those lines (repeated), then times decoding and rendering them
//! to output JSON lines on one thread, and prints events/s and ns/event. With
//! `LOGFERRY_BENCH_INPUT=FILE` it also measures a real file (e.g. the end-to-end
//! benchmark's generated input).

use std::path::PathBuf;
use std::time::Instant;

use logferry_aggregator::parse::detect::Detector;
use logferry_aggregator::parse::Zone;
use logferry_aggregator::render::render_batch;
use logferry_shared::codec::{Codec, Compressor};
use logferry_shared::wire::{decode_frame, BatchBuilder, DecodeLimits};

/// Builds frames of about 1 MiB from `lines`, repeated until `total` lines.
fn frames(lines: &[String], total: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut compressor = Compressor::new(Codec::None, 0).expect("compressor");
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
    if lines.is_empty() {
        return;
    }
    let total = 400_000;
    let frames = frames(lines, total);
    let mut detector = Detector::new(Zone::Utc, &[], &[]).expect("detector");
    let mut out = Vec::with_capacity(4 << 20);
    let limits = DecodeLimits::default();
    // Warm up once, then measure the best of three passes.
    let mut best = f64::MAX;
    let mut events = 0u64;
    let mut bytes_in = 0usize;
    for pass in 0..4 {
        let start = Instant::now();
        events = 0;
        bytes_in = 0;
        for f in &frames {
            let decoded = decode_frame(f, &limits).expect("decode");
            bytes_in += decoded.body.len();
            let batch = decoded.batch().expect("batch");
            out.clear();
            events += render_batch(&batch, &mut detector, &mut out).events();
        }
        let secs = start.elapsed().as_secs_f64();
        if pass > 0 {
            best = best.min(secs);
        }
    }
    println!(
        "{name:<14} {:>12.0} events/s {:>8.0} ns/event {:>8.1} MiB/s in",
        events as f64 / best,
        best * 1e9 / events as f64,
        bytes_in as f64 / best / (1 << 20) as f64
    );
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
    if let Ok(input) = std::env::var("LOGFERRY_BENCH_INPUT") {
        let text = std::fs::read_to_string(&input).unwrap_or_default();
        let lines: Vec<String> = text.lines().take(400_000).map(str::to_owned).collect();
        run("input-file", &lines);
    }
}
