//! The tailer reading gzip-compressed files, in-process with the real spool: files read
//! once and decompressed, multi-member files, a crash in the middle of a compressed file,
//! a compressed file still being written, corrupt files, `read_from = "end"`, and a
//! rotated file compressed after it was read (logrotate's `delaycompress`), also while the
//! agent is down. The test plays the aggregator: it takes every batch out of the spool,
//! decodes it and acknowledges it, and counts every line it got.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use logferry_agent::config::AgentConfig;
use logferry_agent::metrics::Metrics;
use logferry_agent::spool::Spool;
use logferry_agent::tailer::Tailer;
use logferry_shared::runtime::Shutdown;
use logferry_shared::wire::{decode_frame, DecodeLimits};

struct World {
    dir: tempfile::TempDir,
    cfg: AgentConfig,
    spool: Arc<Spool>,
    metrics: Arc<Metrics>,
    tailer: Option<Tailer>,
    /// Line → times delivered, and the source path of its last delivery.
    delivered: HashMap<String, (usize, String)>,
}

impl World {
    /// An agent tailing `logs/<include>`, with `input` (TOML) in its `[[inputs]]` and
    /// `tail` in `[tail]`, sealing batches at 4 KiB.
    fn new(include: &str, input: &str, tail: &str) -> World {
        World::with_batch(include, input, tail, 4096)
    }

    /// [`World::new`] with batches sealed at `batch_max_bytes`.
    fn with_batch(include: &str, input: &str, tail: &str, batch_max_bytes: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let text = format!(
            "data_dir = {data:?}\n\
             [[inputs]]\ninclude = [{glob:?}]\n{input}\
             [output]\nurl = \"https://127.0.0.1:1\"\ntoken = \"t\"\n\
             batch_timeout = \"1ms\"\nbatch_max_bytes = {batch_max_bytes}\n\
             [spool]\nmax_bytes = 67108864\n\
             [tail]\nscan_interval = \"1ms\"\npoll_interval = \"1ms\"\nwatch = false\n\
             rotate_wait = \"1ms\"\n{tail}",
            data = dir.path().join("data"),
            glob = logs.join(include).to_string_lossy(),
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
            dir,
            cfg,
            spool: Arc::new(spool),
            metrics: Arc::new(Metrics::new()),
            tailer: None,
            delivered: HashMap::new(),
        };
        w.start();
        w
    }

    fn start(&mut self) {
        self.metrics = Arc::new(Metrics::new());
        self.tailer = Some(
            Tailer::new(
                &self.cfg,
                self.spool.clone(),
                self.metrics.clone(),
                Arc::new(tokio::sync::Notify::new()),
                Shutdown::new(),
                "gzip-agent".to_owned(),
            )
            .unwrap(),
        );
    }

    /// Drops the tailer without sealing its open batch (as kill -9) and starts again.
    fn crash(&mut self) {
        self.tailer = None;
        self.start();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    /// One round of the tailer and then a crash: what it read and did not seal yet is
    /// lost with it.
    fn tick_and_crash(&mut self) {
        self.tailer.as_mut().unwrap().tick();
        self.take_batches();
        self.crash();
    }

    /// One round of the tailer, its batch sealed, every spooled batch taken.
    fn tick(&mut self) {
        std::thread::sleep(Duration::from_millis(2));
        let t = self.tailer.as_mut().unwrap();
        t.tick();
        t.seal();
        self.take_batches();
    }

    /// Ticks until `done` holds (at most 2,000 rounds).
    fn tick_until(&mut self, what: &str, done: impl Fn(&World) -> bool) {
        for _ in 0..2_000 {
            if done(self) {
                return;
            }
            self.tick();
        }
        panic!("{what}: not reached after 2,000 rounds");
    }

    /// Ticks until every one of `lines` arrived.
    fn read_all_of(&mut self, lines: &[String]) {
        self.tick_until("all lines delivered", |w| {
            lines.iter().all(|l| w.delivered.contains_key(l))
        });
    }

    fn take_batches(&mut self) {
        let limits = DecodeLimits::default();
        while let Some((seq, frame)) = self.spool.next_after(0).unwrap() {
            let decoded = decode_frame(&frame, &limits).unwrap();
            let batch = decoded.batch().unwrap();
            for r in &batch.records {
                let line = String::from_utf8_lossy(r.line).into_owned();
                let source = batch
                    .sources
                    .get(r.source as usize)
                    .map(|s| s.path.to_owned())
                    .unwrap_or_default();
                let e = self.delivered.entry(line).or_insert((0, String::new()));
                e.0 += 1;
                e.1 = source;
            }
            self.spool.ack(seq).unwrap();
        }
    }

    /// Every line of `lines` delivered exactly once, and nothing else.
    fn assert_exactly(&self, lines: &[String]) {
        let mut missing = Vec::new();
        for l in lines {
            match self.delivered.get(l) {
                Some((1, _)) => {}
                Some((n, _)) => panic!("{l} delivered {n} times"),
                None => missing.push(l),
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} lines never delivered, e.g. {:?}",
            missing.len(),
            lines.len(),
            &missing[..missing.len().min(5)]
        );
        let written: std::collections::HashSet<&String> = lines.iter().collect();
        let extra: Vec<&String> = self
            .delivered
            .keys()
            .filter(|k| !written.contains(k))
            .take(5)
            .collect();
        assert!(extra.is_empty(), "delivered but not written: {extra:?}");
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
    }
}

const GZIP: &str = "compression = \"gzip\"\n";
const AUTO: &str = "compression = \"auto\"\n";
const GZIP_AT_END: &str = "compression = \"gzip\"\nread_from = \"end\"\n";

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:07}")).collect()
}

fn text(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(content).unwrap();
    e.finish().unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Compresses `from` into `to` as logrotate's `compress` does (writes the copy, then
/// deletes the original).
fn compress_file(from: &Path, to: &Path) {
    let content = std::fs::read(from).unwrap();
    std::fs::write(to, gzip(&content)).unwrap();
    std::fs::remove_file(from).unwrap();
}

#[test]
fn a_multi_member_file_is_read_once_decompressed() {
    let mut w = World::new("*.gz", GZIP, "");
    let parts = [ids("a", 0..3000), ids("b", 0..1), ids("c", 0..2000)];
    let bytes: Vec<u8> = parts.iter().flat_map(|p| gzip(&text(p))).collect();
    std::fs::write(w.path("old.log.gz"), bytes).unwrap();
    let all = parts.concat();
    w.read_all_of(&all);
    for _ in 0..20 {
        w.tick();
    }
    w.assert_exactly(&all);
    let (_, source) = &w.delivered[&all[0]];
    assert!(source.ends_with("logs/old.log.gz"), "source {source}");
    assert_eq!(w.metric("logferry_agent_gzip_corrupt_files_total"), 0.0);
    assert_eq!(w.metric("logferry_agent_gzip_incomplete_files_total"), 0.0);
}

#[test]
fn a_crash_in_the_middle_of_a_compressed_file_loses_and_doubles_nothing() {
    // One member (decoded again from the start on resume) and many (resumed from the
    // member holding the position).
    for members in [1, 9] {
        let mut w = World::with_batch("*.gz", GZIP, "", 256 << 10);
        let all: Vec<String> = (0..120_000)
            .map(|i| format!("line-{i:07} {}", "x".repeat(i % 150)))
            .collect();
        let bytes: Vec<u8> = all
            .chunks(all.len().div_ceil(members))
            .flat_map(|c| gzip(&text(c)))
            .collect();
        std::fs::write(w.path("big.gz"), bytes).unwrap();
        // Crash five times part way through, each time after more has arrived; every
        // other time in the middle of a round, with read lines not sealed yet.
        for round in 1..=5 {
            let want = all.len() * round / 6;
            w.tick_until("part of the file read", |w| w.delivered.len() >= want);
            assert!(
                w.delivered.len() < all.len(),
                "{members} members: the whole file was read before crash {round}"
            );
            if round % 2 == 0 {
                w.tick_and_crash();
            } else {
                w.crash();
            }
        }
        w.read_all_of(&all);
        for _ in 0..20 {
            w.tick();
        }
        w.assert_exactly(&all);
    }
}

#[test]
fn a_file_still_being_written_waits_and_reads_on() {
    let mut w = World::new("*.gz", AUTO, "gzip_incomplete_timeout = \"1h\"\n");
    let all = ids("w", 0..5000);
    let bytes = gzip(&text(&all));
    let path = w.path("slow.gz");
    let cut = bytes.len() / 2;
    std::fs::write(&path, &bytes[..cut]).unwrap();
    w.tick_until("the first half", |w| w.delivered.len() > 1000);
    for _ in 0..20 {
        w.tick();
    }
    let first = w.delivered.len();
    assert!(first < all.len());
    append(&path, &bytes[cut..]);
    w.read_all_of(&all);
    w.assert_exactly(&all);
    assert_eq!(w.metric("logferry_agent_gzip_incomplete_files_total"), 0.0);
    assert_eq!(w.metric("logferry_agent_gzip_corrupt_files_total"), 0.0);
}

#[test]
fn a_file_cut_short_is_reported_and_read_on_if_it_grows() {
    let mut w = World::new(
        "*.gz",
        AUTO,
        "gzip_incomplete_timeout = \"50ms\"\npartial_line_timeout = \"1h\"\n",
    );
    let all = ids("cut", 0..5000);
    let bytes = gzip(&text(&all));
    let path = w.path("cut.gz");
    let cut = bytes.len() * 3 / 4;
    std::fs::write(&path, &bytes[..cut]).unwrap();
    w.tick_until("reported as cut short", |w| {
        w.metric("logferry_agent_gzip_incomplete_files_total") == 1.0
    });
    let got = w.delivered.len();
    assert!(got > 2000 && got < all.len(), "{got} lines before the cut");
    let missing: Vec<&String> = all[..got]
        .iter()
        .filter(|l| !w.delivered.contains_key(*l))
        .collect();
    let extra: Vec<&String> = w.delivered.keys().filter(|k| !all.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "the lines before the cut arrive in order: missing {missing:?}, extra {extra:?}"
    );
    for _ in 0..50 {
        w.tick();
    }
    assert_eq!(w.metric("logferry_agent_gzip_incomplete_files_total"), 1.0);
    append(&path, &bytes[cut..]);
    w.read_all_of(&all);
    w.assert_exactly(&all);
}

#[test]
fn a_corrupt_file_is_reported_and_skipped_and_the_others_are_read() {
    let mut w = World::new("*.gz", AUTO, "");
    let good = ids("good", 0..3000);
    std::fs::write(w.path("good.gz"), gzip(&text(&good))).unwrap();
    let bad = ids("bad", 0..100_000);
    let mut bytes = gzip(&text(&bad));
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 32] {
        *b = !*b;
    }
    std::fs::write(w.path("bad.gz"), bytes).unwrap();
    std::fs::write(w.path("plain-text.gz"), b"not compressed at all\n").unwrap();
    w.read_all_of(&good);
    w.tick_until("both bad files reported", |w| {
        w.metric("logferry_agent_gzip_corrupt_files_total") == 2.0
    });
    for _ in 0..50 {
        w.tick();
    }
    assert_eq!(w.metric("logferry_agent_gzip_corrupt_files_total"), 2.0);
    let bad_got = bad.iter().filter(|l| w.delivered.contains_key(*l)).count();
    assert!(
        bad_got > bad.len() / 4 && bad_got < bad.len(),
        "{bad_got} lines of the corrupt file, expected those before the damage"
    );
    // Up to the damage the lines are the file's own, once each. Right at it the decoder
    // may put out garbage before it notices, including repeats of the last 32 KiB
    // (deflate copies earlier bytes): that much is left out of the check.
    let wrong: Vec<(&String, usize)> = bad[..bad_got - 3000]
        .iter()
        .map(|l| (l, w.delivered.get(l).map_or(0, |d| d.0)))
        .filter(|(_, n)| *n != 1)
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "lines before the damage: {wrong:?}");
    for l in &good {
        assert_eq!(w.delivered[l].0, 1, "{l}");
    }
    // Nothing else but garbled lines from the damage on (deflate may decode garbage
    // for a while before it meets an invalid code).
    let other = w
        .delivered
        .keys()
        .filter(|k| !k.starts_with("good-") && !k.starts_with("bad-"))
        .count();
    assert!(other < bad.len() / 4, "{other} unexpected lines");
}

#[test]
fn read_from_end_skips_what_a_compressed_file_holds() {
    let mut w = World::new("*.gz", GZIP_AT_END, "");
    w.tailer = None;
    let old = ids("old", 0..20_000);
    std::fs::write(w.path("old.gz"), gzip(&text(&old))).unwrap();
    w.start();
    for _ in 0..200 {
        w.tick();
    }
    assert!(
        w.delivered.is_empty(),
        "{} old lines sent",
        w.delivered.len()
    );
    let new = ids("new", 0..100);
    append(&w.path("old.gz"), &gzip(&text(&new)));
    w.read_all_of(&new);
    // Its position was stored: after a restart it resumes there (it is not skipped to
    // its end again, which would lose lines added while the agent was down).
    w.tailer = None;
    let newer = ids("newer", 0..100);
    append(&w.path("old.gz"), &gzip(&text(&newer)));
    w.start();
    let all = [new, newer].concat();
    w.read_all_of(&all);
    for _ in 0..50 {
        w.tick();
    }
    w.assert_exactly(&all);
}

/// logrotate with `delaycompress`: `app.log` → `app.log.1` (read to its end under its own
/// fingerprint) → compressed into `app.log.2.gz` while `app.log.1` still exists, which is
/// then deleted. The copy must not be read again.
#[test]
fn a_rotated_file_compressed_after_it_was_read_is_not_read_again() {
    let mut w = World::new("app.log*", AUTO, "");
    let mut all = Vec::new();
    for round in 0..4 {
        let lines = ids(&format!("r{round}"), 0..2000);
        append(&w.path("app.log"), &text(&lines));
        all.extend(lines);
        w.read_all_of(&all);
        // Compress the previous rotation (written while the plain file exists, as gzip
        // does), delete it, then rotate the live file.
        if w.path("app.log.1").exists() {
            compress_file(
                &w.path("app.log.1"),
                &w.path(&format!("app.log.{round}.gz")),
            );
        }
        std::fs::rename(w.path("app.log"), w.path("app.log.1")).unwrap();
        for _ in 0..30 {
            w.tick();
        }
    }
    compress_file(&w.path("app.log.1"), &w.path("app.log.9.gz"));
    for _ in 0..100 {
        w.tick();
    }
    w.assert_exactly(&all);
    assert_eq!(w.metric("logferry_agent_gzip_copies_total"), 4.0);
}

/// The same while the agent is down: the plain file is rotated, partly unread, and
/// compressed (and deleted) before the agent starts again; the copy is read from where
/// the plain file's reading stopped.
#[test]
fn a_file_compressed_while_the_agent_was_down_is_read_from_where_it_stopped() {
    let mut w = World::new("app.log*", AUTO, "");
    let first = ids("first", 0..3000);
    append(&w.path("app.log"), &text(&first));
    w.read_all_of(&first);
    // Lines the agent never reads as a plain file: written just before it dies.
    let late = ids("late", 0..500);
    append(&w.path("app.log"), &text(&late));
    w.tailer = None;
    std::fs::rename(w.path("app.log"), w.path("app.log.1")).unwrap();
    compress_file(&w.path("app.log.1"), &w.path("app.log.1.gz"));
    let after = ids("after", 0..100);
    append(&w.path("app.log"), &text(&after));
    w.start();
    let all = [first, late, after].concat();
    w.read_all_of(&all);
    for _ in 0..50 {
        w.tick();
    }
    w.assert_exactly(&all);
    assert_eq!(w.metric("logferry_agent_gzip_copies_total"), 1.0);
}
