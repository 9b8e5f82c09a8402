//! The `file` sink's rotation through the real aggregator binary: batches acknowledged by
//! the aggregator are written to file sinks that rotate every few kilobytes (and every
//! second), the aggregator is killed with SIGKILL while it is writing and rotating, and
//! restarted. At the end every line is in the rotated files exactly once, in order, no
//! file is over `max_bytes`, and a sink with `keep = 3` holds the newest three rotated
//! files and the active one: the same lines as the tail of the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logferry_e2e::{http, sink, toml_path, Aggregator, AggregatorOptions, TestDir};

const MAX_BYTES: u64 = 16_384;
const BATCHES_PER_ROUND: u64 = 40;
const LINES_PER_BATCH: usize = 500;
const WAIT: Duration = Duration::from_secs(120);

/// The rotated files of `path` (`path.N`, oldest first), then `path` itself.
fn generations(path: &Path) -> Vec<PathBuf> {
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut rotated: Vec<(u64, PathBuf)> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name.strip_prefix(base)?.strip_prefix('.')?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(path.to_owned());
    out
}

/// The messages of every generation, in order.
fn messages(path: &Path) -> Vec<String> {
    generations(path)
        .iter()
        .flat_map(|p| sink::read_events(p).unwrap())
        .map(|e| e["message"].as_str().unwrap_or("<none>").to_owned())
        .collect()
}

fn count(path: &Path) -> usize {
    generations(path)
        .iter()
        .map(|p| sink::count_lines(p).unwrap_or(0))
        .sum()
}

fn rotated_count(path: &Path) -> usize {
    generations(path).len() - 1
}

/// Sends batches `seqs`; line `i` of batch `s` is `m-s-i` padded to about 200 bytes.
fn send(
    agg: &Aggregator,
    client: &reqwest::blocking::Client,
    seqs: std::ops::Range<u64>,
    sent: &mut Vec<String>,
) -> anyhow::Result<()> {
    let pad = "p".repeat(120);
    for seq in seqs {
        let lines: Vec<String> = (0..LINES_PER_BATCH)
            .map(|i| format!("m-{seq}-{i} {pad}"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        agg.send_lines(
            client,
            "e2e-rotation",
            seq,
            ("node-1", "/var/log/app.log"),
            &refs,
        )?;
        sent.extend(lines);
    }
    Ok(())
}

#[test]
fn rotating_file_sinks_keep_every_line_once_across_kill9() -> anyhow::Result<()> {
    let dir = TestDir::new()?;
    let all = dir.join("rotating/all.log");
    let kept = dir.join("rotating/kept.log");
    let extra = format!(
        r#"
[sinks.all]
type = "file"
path = {all}
max_bytes = {MAX_BYTES}
rotate_every = "1s"

[sinks.kept]
type = "file"
path = {kept}
max_bytes = {MAX_BYTES}
keep = 3
"#,
        all = toml_path(&all),
        kept = toml_path(&kept),
    );
    let options = AggregatorOptions::default().extra(&extra);
    let mut agg = Aggregator::start(&dir, options)?;
    let client = http::client(&dir, false)?;
    let mut sent = Vec::new();
    let mut mid_work = 0;
    // Each kill comes after a different number of rotations: before the pipeline has
    // recorded anything of the round, and after it has recorded some of it.
    for (round, rotations) in [2, 40, 120, 10].into_iter().enumerate() {
        let first = round as u64 * BATCHES_PER_ROUND + 1;
        // Every batch is acknowledged, so durable in the inbox, before the kill.
        send(&agg, &client, first..first + BATCHES_PER_ROUND, &mut sent)?;
        let before = rotated_count(&all);
        let deadline = Instant::now() + WAIT;
        while rotated_count(&all) < before + rotations && count(&all) < sent.len() {
            assert!(Instant::now() < deadline, "the sink did not rotate");
            std::thread::sleep(Duration::from_millis(2));
        }
        let written = count(&all);
        agg.kill9()?;
        if written < sent.len() {
            mid_work += 1;
        }
        eprintln!(
            "round {round}: killed with {written} of {} lines written, {} rotated files",
            sent.len(),
            rotated_count(&all)
        );
        agg = Aggregator::restart(&dir, agg.restart_options())?;
    }
    assert!(mid_work > 0, "no kill came while the sink was writing");
    logferry_e2e::wait_until(WAIT, "every line in the rotating sink", || {
        count(&all) >= sent.len() && count(&kept) > 0
    })?;
    agg.wait_for_events(sent.len(), WAIT)?;
    agg.stop()?;

    // Every line once, in the order sent, across all generations.
    let got = messages(&all);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &got {
        *seen.entry(m).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "duplicated: {doubled:?}");
    assert_eq!(got.len(), sent.len(), "lines in all generations");
    assert_eq!(got, sent, "order across generations");
    let files = generations(&all);
    assert!(
        files.len() > 100,
        "only {} files: rotation barely ran",
        files.len()
    );
    for f in &files {
        let len = std::fs::metadata(f)?.len();
        assert!(len <= MAX_BYTES, "{} is {len} bytes", f.display());
    }
    // The plain file sink next to them got the same lines once too.
    let plain: Vec<String> = agg
        .events()?
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(plain, sent, "the plain file sink");
    // keep = 3: the three newest rotated files and the active one, the tail of the rest.
    assert_eq!(rotated_count(&kept), 3, "{:?}", generations(&kept));
    let tail = messages(&kept);
    assert!(!tail.is_empty() && tail.len() < sent.len());
    assert_eq!(
        tail,
        sent[sent.len() - tail.len()..],
        "kept files are the newest lines"
    );
    Ok(())
}
