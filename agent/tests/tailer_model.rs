//! Model-based test of the tailer: random sequences of writes, rename rotations,
//! copytruncates, deletions, compression of rotated files (gzip, read by the input with
//! `compression = "auto"`), clean restarts and crashes run against the real tailer and
//! spool in a temp dir, while a simple model records which lines were written where.
//! The test plays the aggregator: it takes every batch out of the spool, decodes it,
//! and acknowledges it. Half the cases write CRI container lines, a third of them split
//! into partial pieces, through an input that joins them: a crash between pieces must
//! neither lose nor double a line.
//!
//! What must hold at the end, once everything is read:
//! - no line is delivered twice, ever (across restarts and crashes);
//! - every line of a file that still exists is delivered;
//! - lines of files deleted or truncated before the tailer read them may be missing
//!   (no tailer can read bytes that are gone), but nothing else.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logferry_agent::config::AgentConfig;
use logferry_agent::metrics::Metrics;
use logferry_agent::spool::Spool;
use logferry_agent::tailer::Tailer;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{decode_frame, DecodeLimits};
use proptest::prelude::*;

const FILES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` lines to live file `f`.
    Write { f: usize, n: usize },
    /// Rename live file `f` aside and start a new one at its path (logrotate `create`).
    Rotate { f: usize },
    /// Copy live file `f` aside (not matched by the include glob) and truncate it.
    CopyTruncate { f: usize },
    /// Delete live file `f`.
    Delete { f: usize },
    /// Rename live file `f` to a name no include glob matches (the tailer reads it to its
    /// end and lets it go) ...
    Hide { f: usize },
    /// ... and back, if its path is free: it must resume where it was, not from 0.
    Unhide { f: usize },
    /// One round of the tailer.
    Tick,
    /// Stop cleanly (seal the open batch) and start again.
    Restart,
    /// Drop the tailer without sealing (as kill -9 between rounds) and start again.
    Crash,
    /// Compress the oldest rotated copy of file `f` into `<copy>.gz` and delete the copy,
    /// as logrotate's `compress` after `delaycompress`; with `pause`, the tailer runs a
    /// round while the compressed file is half written.
    Compress { f: usize, pause: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FILES, 1..40usize).prop_map(|(f, n)| Op::Write { f, n }),
        1 => (0..FILES).prop_map(|f| Op::Rotate { f }),
        1 => (0..FILES).prop_map(|f| Op::CopyTruncate { f }),
        1 => (0..FILES).prop_map(|f| Op::Delete { f }),
        2 => (0..FILES).prop_map(|f| Op::Hide { f }),
        2 => (0..FILES).prop_map(|f| Op::Unhide { f }),
        6 => Just(Op::Tick),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        2 => (0..FILES, proptest::bool::ANY).prop_map(|(f, pause)| Op::Compress { f, pause }),
    ]
}

struct World {
    /// Lines are written as CRI container lines, some split into `P` pieces, and the
    /// input decodes them (`format = "cri"`).
    cri: bool,
    dir: tempfile::TempDir,
    cfg: AgentConfig,
    spool: Arc<Spool>,
    tailer: Option<Tailer>,
    next_id: u64,
    rotations: u64,
    /// Lines written and still on disk in a file the include glob matches.
    must_arrive: HashSet<String>,
    /// Lines whose file was deleted or truncated: may be missing.
    may_miss: HashSet<String>,
    /// Lines per live path, in order (to know what a truncation or deletion removes).
    live: HashMap<PathBuf, Vec<String>>,
    delivered: HashMap<String, usize>,
}

impl World {
    fn new(cri: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let text = format!(
            "data_dir = {data:?}\n\
             [[inputs]]\ninclude = [{glob:?}]\nformat = {format:?}\ncompression = \"auto\"\n\
             [output]\nurl = \"https://127.0.0.1:1\"\ntoken = \"t\"\n\
             batch_timeout = \"1ms\"\nbatch_max_bytes = 4096\n\
             [spool]\nmax_bytes = 1048576\n\
             [tail]\nscan_interval = \"1ms\"\npoll_interval = \"1ms\"\nwatch = false\n\
             rotate_wait = \"1ms\"\n",
            data = dir.path().join("data"),
            glob = logs.join("*.log*").to_string_lossy(),
            format = if cri { "cri" } else { "raw" },
        );
        let cfg_path = dir.path().join("agent.toml");
        std::fs::write(&cfg_path, text).unwrap();
        let cfg = AgentConfig::load(&cfg_path).unwrap();
        let (spool, _) = Spool::open(
            &cfg.data_dir.join("spool"),
            cfg.spool.max_bytes,
            cfg.spool.when_full,
        )
        .unwrap();
        let mut w = World {
            cri,
            dir,
            cfg,
            spool: Arc::new(spool),
            tailer: None,
            next_id: 0,
            rotations: 0,
            must_arrive: HashSet::new(),
            may_miss: HashSet::new(),
            live: HashMap::new(),
            delivered: HashMap::new(),
        };
        w.start();
        w
    }

    fn start(&mut self) {
        self.tailer = Some(
            Tailer::new(
                &self.cfg,
                self.spool.clone(),
                Arc::new(Metrics::new()),
                Arc::new(tokio::sync::Notify::new()),
                Shutdown::new(),
                "model-agent".to_owned(),
            )
            .unwrap(),
        );
    }

    fn live_path(&self, f: usize) -> PathBuf {
        self.dir.path().join("logs").join(format!("f{f}.log"))
    }

    fn hidden_path(&self, f: usize) -> PathBuf {
        self.dir.path().join("logs").join(format!("f{f}.hidden"))
    }

    /// Moves the lines recorded for `from` to `to`.
    fn moved(&mut self, from: &Path, to: PathBuf) {
        if let Some(lines) = self.live.remove(from) {
            self.live.insert(to, lines);
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write { f, n } => {
                let path = self.live_path(f);
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                let mut text = String::new();
                for _ in 0..n {
                    // About 60 bytes, so that files pass the 1 KiB of a full fingerprint
                    // (see `compress`).
                    let id = format!("line-{:06}-{}", self.next_id, "p".repeat(48));
                    self.next_id += 1;
                    if self.cri {
                        // Every third line in pieces: P pieces, then the F piece.
                        let pieces: Vec<&str> = if self.next_id.is_multiple_of(3) {
                            vec![&id[..2], &id[2..4], &id[4..]]
                        } else {
                            vec![&id[..]]
                        };
                        for (i, piece) in pieces.iter().enumerate() {
                            let tag = if i + 1 == pieces.len() { 'F' } else { 'P' };
                            text.push_str(&format!(
                                "2026-11-22T10:00:00.{:09}Z stdout {tag} {piece}\n",
                                self.next_id
                            ));
                        }
                    } else {
                        text.push_str(&id);
                        text.push('\n');
                    }
                    self.must_arrive.insert(id.clone());
                    self.live.entry(path.clone()).or_default().push(id);
                }
                file.write_all(text.as_bytes()).unwrap();
            }
            Op::Rotate { f } => {
                let path = self.live_path(f);
                if path.exists() {
                    self.rotations += 1;
                    let to = PathBuf::from(format!("{}.{}", path.display(), self.rotations));
                    std::fs::rename(&path, &to).unwrap();
                    if let Some(lines) = self.live.remove(&path) {
                        self.live.insert(to, lines);
                    }
                }
            }
            Op::CopyTruncate { f } => {
                let path = self.live_path(f);
                if path.exists() {
                    self.rotations += 1;
                    // Outside the include glob, as a compressed or dated copy would be.
                    let to = self
                        .dir
                        .path()
                        .join(format!("copy-{}-{}", f, self.rotations));
                    std::fs::copy(&path, to).unwrap();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(&path)
                        .unwrap();
                    self.lose(&path);
                }
            }
            Op::Delete { f } => {
                let path = self.live_path(f);
                if path.exists() {
                    std::fs::remove_file(&path).unwrap();
                    self.lose(&path);
                }
            }
            Op::Hide { f } => {
                let (live, hidden) = (self.live_path(f), self.hidden_path(f));
                if live.exists() && !hidden.exists() {
                    std::fs::rename(&live, &hidden).unwrap();
                    self.moved(&live, hidden);
                }
            }
            Op::Unhide { f } => {
                let (live, hidden) = (self.live_path(f), self.hidden_path(f));
                if hidden.exists() && !live.exists() {
                    std::fs::rename(&hidden, &live).unwrap();
                    self.moved(&hidden, live);
                }
            }
            Op::Tick => self.tick(),
            Op::Restart => {
                if let Some(mut t) = self.tailer.take() {
                    t.seal();
                }
                self.start();
            }
            Op::Crash => {
                self.tailer = None;
                self.start();
            }
            Op::Compress { f, pause } => self.compress(f, pause),
        }
    }

    /// [`Op::Compress`]. Only copies of at least 1 KiB are compressed: a compressed copy
    /// of a shorter file is recognised only if that file was read to its end (its
    /// fingerprint covers its whole content), which a crash just before the rotation can
    /// prevent (README, "Compressed files").
    fn compress(&mut self, f: usize, pause: bool) {
        let prefix = format!("{}.", self.live_path(f).display());
        let mut copies: Vec<PathBuf> = self
            .live
            .keys()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.starts_with(&prefix) && !s.ends_with(".gz")
            })
            .cloned()
            .collect();
        copies.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let Some(from) = copies.into_iter().next() else {
            return;
        };
        let content = std::fs::read(&from).unwrap();
        if content.len() < 1024 {
            return;
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&content).unwrap();
        let gz = e.finish().unwrap();
        let to = PathBuf::from(format!("{}.gz", from.display()));
        let mut out = std::fs::File::create(&to).unwrap();
        if pause {
            out.write_all(&gz[..gz.len() / 2]).unwrap();
            self.tick();
            out.write_all(&gz[gz.len() / 2..]).unwrap();
        } else {
            out.write_all(&gz).unwrap();
        }
        drop(out);
        std::fs::remove_file(&from).unwrap();
        self.moved(&from, to);
    }

    /// The lines of `path` are gone from disk: the tailer may or may not have read them.
    fn lose(&mut self, path: &Path) {
        for id in self.live.remove(path).unwrap_or_default() {
            self.must_arrive.remove(&id);
            self.may_miss.insert(id);
        }
    }

    fn tick(&mut self) {
        // Past the scan interval (1 ms), so each round also scans.
        std::thread::sleep(std::time::Duration::from_millis(2));
        if let Some(t) = self.tailer.as_mut() {
            t.tick();
            t.seal();
        }
        self.take_batches();
    }

    /// Plays the aggregator: decodes and acknowledges every spooled batch.
    fn take_batches(&mut self) {
        let limits = DecodeLimits::default();
        while let Some((seq, frame)) = self.spool.next_after(0).unwrap() {
            let decoded = decode_frame(&frame, &limits).unwrap();
            let batch = decoded.batch().unwrap();
            for r in &batch.records {
                let id = String::from_utf8(r.line.to_vec()).unwrap();
                *self.delivered.entry(id).or_default() += 1;
            }
            self.spool.ack(seq).unwrap();
        }
    }

    fn check_no_duplicates(&self) -> Result<(), TestCaseError> {
        let dups: Vec<_> = self.delivered.iter().filter(|(_, n)| **n > 1).collect();
        prop_assert!(dups.is_empty(), "delivered more than once: {dups:?}");
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TestCaseError> {
        // Hidden files come back (where their name is free) so their lines can arrive; a
        // hidden file whose name was taken again is lost to the tailer for good.
        for f in 0..FILES {
            self.apply(&Op::Unhide { f });
            let hidden = self.hidden_path(f);
            if hidden.exists() {
                self.lose(&hidden);
            }
        }
        // Read everything that is left: bounded number of rounds.
        for _ in 0..500 {
            if self
                .must_arrive
                .iter()
                .all(|id| self.delivered.contains_key(id))
            {
                break;
            }
            self.tick();
        }
        self.check_no_duplicates()?;
        let missing: Vec<_> = self
            .must_arrive
            .iter()
            .filter(|id| !self.delivered.contains_key(*id))
            .take(10)
            .collect();
        prop_assert!(missing.is_empty(), "never delivered: {missing:?}");
        let unknown: Vec<_> = self
            .delivered
            .keys()
            .filter(|id| !self.must_arrive.contains(*id) && !self.may_miss.contains(*id))
            .take(10)
            .collect();
        prop_assert!(
            unknown.is_empty(),
            "delivered but never written: {unknown:?}"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn tailer_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 1..40),
        cri in proptest::bool::ANY,
    ) {
        let mut w = World::new(cri);
        for op in &ops {
            w.apply(op);
            w.check_no_duplicates()?;
        }
        w.finish()?;
    }
}
