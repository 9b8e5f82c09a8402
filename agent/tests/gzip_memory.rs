//! Memory while reading a large compressed file: a global allocator counts the bytes
//! allocated and live, and the peak while a 64 MiB (decompressed) file is read must stay
//! far below its size — with the gzip reader alone, and through the whole tailer into the
//! spool. (One test binary of its own, so that no other test allocates meanwhile.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use logferry_agent::config::AgentConfig;
use logferry_agent::gzip::{GzipReader, MemberLog, MemberStart, Step};
use logferry_agent::metrics::Metrics;
use logferry_agent::spool::Spool;
use logferry_agent::tailer::Tailer;
use logferry_shared::runtime::Shutdown;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counters are
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONTENT: usize = 64 << 20;

/// Writes `CONTENT` bytes of numbered lines, compressed, streaming; returns the line
/// count.
fn write_big(path: &std::path::Path) -> usize {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut written = 0;
    let mut lines = 0;
    while written < CONTENT {
        let line = format!(
            "2026-11-22T10:00:00.{:06}Z INFO request {lines} took {}ms path=/api/v1/items/{}\n",
            lines % 1_000_000,
            lines % 977,
            lines * 7 % 10_007
        );
        gz.write_all(line.as_bytes()).unwrap();
        written += line.len();
        lines += 1;
    }
    gz.finish().unwrap().flush().unwrap();
    lines
}

/// Resets the peak to what is live now and returns that.
fn baseline() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

#[test]
fn a_large_compressed_file_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = logs.join("big.log.gz");
    let lines = write_big(&path);

    // The reader alone, into a 256 KiB buffer like the tailer's.
    let mut buf = vec![0u8; 256 << 10];
    let base = baseline();
    let mut members = MemberLog::new(MemberStart::default());
    let mut reader = GzipReader::open(
        std::fs::File::open(&path).unwrap(),
        MemberStart::default(),
        0,
    );
    let (mut bytes, mut newlines) = (0usize, 0usize);
    loop {
        match reader.read(&mut buf, &mut members).unwrap() {
            Step::Data(n) => {
                bytes += n;
                newlines += buf[..n].iter().filter(|b| **b == b'\n').count();
            }
            Step::Skipped(_) => unreachable!("nothing to skip"),
            Step::Pending => panic!("a complete file read as cut short"),
            Step::Complete => break,
        }
    }
    drop(reader);
    let reader_peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(
        bytes >= CONTENT && newlines == lines,
        "{bytes} bytes, {newlines} lines"
    );
    eprintln!("gzip reader: peak {reader_peak} bytes above the baseline for {bytes} bytes");
    assert!(
        reader_peak < 256 << 10,
        "the reader held {reader_peak} bytes at its peak"
    );

    // The whole tailer: reading, splitting, batching (1 MiB batches, set here so that the
    // bound below stays about the reader, not the batch size: the open batch, its
    // compressed frame and the compressor's buffers each take about a batch) and spooling.
    let text = format!(
        "data_dir = {data:?}\n\
         [[inputs]]\ninclude = [{glob:?}]\ncompression = \"auto\"\n\
         [output]\nurl = \"https://127.0.0.1:1\"\ntoken = \"t\"\nbatch_max_bytes = 1048576\n\
         [spool]\nmax_bytes = 536870912\n\
         [tail]\nwatch = false\nscan_interval = \"1ms\"\n",
        data = dir.path().join("data"),
        glob = logs.join("*.gz").to_string_lossy(),
    );
    std::fs::write(dir.path().join("agent.toml"), text).unwrap();
    let cfg = AgentConfig::load(&dir.path().join("agent.toml")).unwrap();
    let (spool, _) = Spool::open(
        &cfg.data_dir.join("spool"),
        cfg.spool.max_bytes,
        cfg.spool.when_full,
    )
    .unwrap();
    let spool = Arc::new(spool);
    let metrics = Arc::new(Metrics::new());
    let mut tailer = Tailer::new(
        &cfg,
        spool.clone(),
        metrics.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Shutdown::new(),
        "memory-agent".to_owned(),
    )
    .unwrap();
    let base = baseline();
    let read = || {
        metrics
            .encode()
            .lines()
            .find_map(|l| {
                l.strip_prefix("logferry_agent_lines_read_total ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0usize)
    };
    for _ in 0..100_000 {
        if read() >= lines {
            break;
        }
        tailer.tick();
        // Play the aggregator: acknowledge what is spooled, so the spool does not grow.
        while let Some((seq, _)) = spool.next_after(0).unwrap() {
            spool.ack(seq).unwrap();
        }
    }
    tailer.seal();
    let tailer_peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(read(), lines, "every line read once");
    eprintln!("tailer: peak {tailer_peak} bytes above the baseline");
    assert!(
        tailer_peak < 8 << 20,
        "the tailer held {tailer_peak} bytes at its peak reading a {CONTENT}-byte file"
    );
}
