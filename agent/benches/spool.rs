//! Spool throughput, CPU, memory and write amplification: commits compressed-sized
//! frames with a checkpoint each (as the tailer does), reads them back and acknowledges
//! them (as the shipper does), with a bounded backlog. Prints CPU seconds per GiB of
//! frames, bytes written to disk per byte spooled (from /proc/self/io), and peak RSS.
//!
//! `cargo bench -p logferry-agent --bench spool [-- FRAMES FRAME_KIB BACKLOG]`

mod common;
use common::{cpu_seconds, proc_field};

use std::path::PathBuf;
use std::time::Instant;

use logferry_agent::config::WhenFull;
use logferry_agent::fingerprint::Fingerprint;
use logferry_agent::spool::{Checkpoint, Spool};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let frames = args.first().copied().unwrap_or(2000);
    let frame_kib = args.get(1).copied().unwrap_or(180);
    let backlog = args.get(2).copied().unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) =
        Spool::open(&dir.path().join("spool"), 256 << 20, WhenFull::Block).expect("open");
    // Incompressible-looking content, like a compressed frame.
    let mut frame = vec![0u8; frame_kib << 10];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in frame.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    frame[16..20].copy_from_slice(&1000u32.to_be_bytes());
    let written0 = proc_field("/proc/self/io", "write_bytes:");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut next_ack = 1u64;
    for seq in 1..=frames as u64 {
        let cp = Checkpoint {
            offset: seq * 1_000_000,
            path: PathBuf::from("/var/log/app.log"),
            dev: 1,
            ino: 2,
            fingerprint: Fingerprint::of(b"first line"),
            updated_ms: seq,
            gzip: None,
        };
        spool.commit(seq, &frame, &[cp], &|| false).expect("commit");
        while seq - next_ack + 1 > backlog as u64 {
            let (s, v) = spool
                .next_after(next_ack - 1)
                .expect("read")
                .expect("a batch");
            assert_eq!(v.len(), frame.len());
            spool.ack(s).expect("ack");
            next_ack = s + 1;
        }
    }
    while let Some((s, _)) = spool.next_after(next_ack - 1).expect("read") {
        spool.ack(s).expect("ack");
        next_ack = s + 1;
    }
    spool.flush().expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let written = proc_field("/proc/self/io", "write_bytes:") - written0;
    let total = (frames * frame.len()) as f64;
    let gib = total / (1u64 << 30) as f64;
    println!(
        "spool: {frames} frames of {frame_kib} KiB, backlog {backlog}: {:.1} MiB/s, {:.2} CPU-s per GiB of frames, write amplification {:.2}, peak RSS {} MiB",
        total / secs / (1 << 20) as f64,
        cpu / gib,
        written as f64 / total,
        proc_field("/proc/self/status", "VmHWM:") / 1024,
    );
}
