//! Log lines with unique ids, written by a background thread while the test does other
//! things (or in one go), and the accounting that compares the aggregator's sink with
//! what was written.
//!
//! Every line starts with its id, `line-<file>-<n>`, followed by a space and random
//! padding (random so that compression cannot shrink the volume to nothing); the
//! [`Ledger`] keeps every line written, by id. [`Accounting`] matches the sink's events
//! to the ledger by the id that opens each `message` and checks the whole text.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{Agent, Aggregator};

/// Environment variable that fixes the seed of the tests' random choices.
pub const SEED_ENV: &str = "LOGFERRY_E2E_SEED";

/// The seed for `test`'s random choices: `LOGFERRY_E2E_SEED` if set, else a fresh one.
/// Printed, so a failing run can be repeated.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: seed {seed} (set {SEED_ENV}={seed} to repeat)");
    seed
}

/// The id that opens `message` (`line-…` up to the first space), if any.
pub fn line_id(message: &str) -> Option<&str> {
    let id = message.split(' ').next()?;
    id.starts_with("line-").then_some(id)
}

/// `len` random ASCII letters and digits.
pub fn padding(rng: &mut fastrand::Rng, len: usize) -> String {
    (0..len).map(|_| rng.alphanumeric()).collect()
}

/// Every line written, by id.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    lines: HashMap<String, String>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records `text` (which starts with its id).
    ///
    /// # Panics
    ///
    /// When the text has no id or its id was recorded before: a mistake in the test.
    pub fn record(&mut self, text: &str) {
        let id = line_id(text).unwrap_or_else(|| panic!("line without an id: {text:?}"));
        let old = self.lines.insert(id.to_owned(), text.to_owned());
        assert!(old.is_none(), "line id {id} written twice");
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when no line was written.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The text of line `id`.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.lines.get(id).map(String::as_str)
    }

    /// Every id.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.lines.keys().map(String::as_str)
    }

    /// Adds every line of `other`.
    pub fn extend(&mut self, other: &Ledger) {
        for text in other.lines.values() {
            self.record(text);
        }
    }

    /// The lines whose id `keep` accepts.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> Ledger {
        Ledger {
            lines: self
                .lines
                .iter()
                .filter(|(id, _)| keep(id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// How the sink's events compare with a [`Ledger`].
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    /// Lines expected.
    pub expected: usize,
    /// Events read from the sink.
    pub events: usize,
    /// Ids in the ledger that no event carries (sorted).
    pub missing: Vec<String>,
    /// Ids carried by more than one event, with their counts (sorted).
    pub duplicated: Vec<(String, usize)>,
    /// Messages that are not a ledger line: an unknown id, or a known id with other text.
    pub unexpected: Vec<String>,
    /// Id → number of events carrying it, for the ids in the ledger.
    pub delivered: HashMap<String, usize>,
}

impl Accounting {
    /// Compares `events` (the sink) with `ledger`.
    pub fn of(events: &[serde_json::Value], ledger: &Ledger) -> Accounting {
        let mut delivered: HashMap<String, usize> = HashMap::new();
        let mut unexpected = Vec::new();
        for e in events {
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            match line_id(message).and_then(|id| Some((id, ledger.get(id)?))) {
                Some((id, text)) if text == message => {
                    *delivered.entry(id.to_owned()).or_insert(0) += 1;
                }
                _ => unexpected.push(abbreviate(&e.to_string())),
            }
        }
        let mut missing: Vec<String> = ledger
            .ids()
            .filter(|id| !delivered.contains_key(*id))
            .map(str::to_owned)
            .collect();
        missing.sort();
        let mut duplicated: Vec<(String, usize)> = delivered
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        duplicated.sort();
        Accounting {
            expected: ledger.len(),
            events: events.len(),
            missing,
            duplicated,
            unexpected,
            delivered,
        }
    }

    /// True when every line arrived exactly once and nothing else did.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }

    /// Panics, with [`Accounting`]'s summary, unless every line arrived exactly once.
    pub fn assert_exactly_once(&self, what: &str) {
        assert!(self.is_exact(), "{what}: not exactly once: {self}");
    }
}

impl std::fmt::Display for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines written, {} events in the sink; {} missing, {} duplicated, {} unexpected",
            self.expected,
            self.events,
            self.missing.len(),
            self.duplicated.len(),
            self.unexpected.len()
        )?;
        if !self.missing.is_empty() {
            write!(f, "\n  missing, e.g.: {:?}", first(&self.missing))?;
        }
        if !self.duplicated.is_empty() {
            write!(f, "\n  duplicated, e.g.: {:?}", first(&self.duplicated))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected, e.g.: {:?}", first(&self.unexpected))?;
        }
        Ok(())
    }
}

fn first<T>(v: &[T]) -> &[T] {
    &v[..v.len().min(10)]
}

/// `s` cut to a few hundred characters, for messages.
pub fn abbreviate(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

/// When the writer opens its files again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// Never: each file is opened (created) once, in append mode, like a program that
    /// relies on `copytruncate`.
    Never,
    /// When the path names another file than the one held open (it was renamed away and
    /// a new one created there), checked every few milliseconds, like a program that
    /// reopens its log after rotation. The new file is not created by the writer: until
    /// it exists, lines keep going to the old one.
    WhenReplaced,
}

/// What a [`Writer`] writes.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The files; file `i` gets the ids `line-<prefix><i>-<n>`.
    pub paths: Vec<PathBuf>,
    /// Prefix of the file part of the ids (to tell several writers apart).
    pub prefix: String,
    /// Lines written per tick, to one file chosen at random.
    pub lines_per_tick: usize,
    /// Pause between ticks (scenario pacing).
    pub tick: Duration,
    /// Length range of the random padding after the id.
    pub padding: std::ops::Range<usize>,
    /// When files are opened again.
    pub reopen: Reopen,
    /// Write each tick's lines in two `write` calls cut at a random byte (default), so
    /// readers see half lines; otherwise in one call.
    pub split_writes: bool,
    /// Seed of the random choices.
    pub seed: u64,
}

impl WriterOptions {
    /// `lines_per_tick` lines every `tick` over `paths`, 20 to 120 bytes of padding,
    /// files opened once.
    pub fn new(paths: Vec<PathBuf>, lines_per_tick: usize, tick: Duration, seed: u64) -> Self {
        WriterOptions {
            paths,
            prefix: String::new(),
            lines_per_tick,
            tick,
            padding: 20..120,
            reopen: Reopen::Never,
            split_writes: true,
            seed,
        }
    }
}

/// A thread appending lines to files until told to stop. Unless told otherwise, each
/// tick's lines are written in two `write` calls cut at a random byte, so most ticks leave
/// half a line on disk for a moment.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    handle: Option<JoinHandle<anyhow::Result<Ledger>>>,
}

impl Writer {
    /// Starts the thread.
    pub fn start(options: WriterOptions) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let handle = {
            let (stop, written) = (stop.clone(), written.clone());
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || write_until_stopped(&options, &stop, &written))
                .expect("spawn the writer thread")
        };
        Writer {
            stop,
            written,
            handle: Some(handle),
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits (with a deadline) until at least `n` lines are written.
    pub fn wait_written(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        crate::wait_until(timeout, &format!("the writer to write {n} lines"), || {
            self.written() >= n || self.handle.as_ref().is_none_or(|h| h.is_finished())
        })?;
        anyhow::ensure!(
            self.written() >= n,
            "the writer stopped after {} lines",
            self.written()
        );
        Ok(())
    }

    /// Stops the thread and returns every line it wrote. Each file ends with a newline.
    ///
    /// # Panics
    ///
    /// When writing failed.
    pub fn finish(mut self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("the writer runs");
        match handle.join() {
            Ok(Ok(ledger)) => ledger,
            Ok(Err(e)) => panic!("the log writer failed: {e:#}"),
            Err(_) => panic!("the log writer panicked"),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A file the writer holds open, and the inode it had when opened.
struct Open {
    file: File,
    ino: u64,
    checked: Instant,
}

/// How often [`Reopen::WhenReplaced`] looks at the path.
const REPLACED_CHECK: Duration = Duration::from_millis(10);

fn open_file(path: &Path, create: bool) -> std::io::Result<Open> {
    let file = File::options().create(create).append(true).open(path)?;
    let ino = file.metadata()?.ino();
    Ok(Open {
        file,
        ino,
        checked: Instant::now(),
    })
}

fn write_until_stopped(
    o: &WriterOptions,
    stop: &AtomicBool,
    written: &AtomicUsize,
) -> anyhow::Result<Ledger> {
    let mut rng = fastrand::Rng::with_seed(o.seed);
    let mut ledger = Ledger::new();
    let mut files: Vec<Option<Open>> = o.paths.iter().map(|_| None).collect();
    let mut next: Vec<usize> = vec![0; o.paths.len()];
    let mut chunk = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let f = rng.usize(..o.paths.len());
        let path = &o.paths[f];
        let slot = &mut files[f];
        match slot {
            None => {
                let opened = open_file(path, true)
                    .with_context(|| format!("creating {}", path.display()))?;
                *slot = Some(opened);
            }
            Some(open)
                if o.reopen == Reopen::WhenReplaced && open.checked.elapsed() >= REPLACED_CHECK =>
            {
                open.checked = Instant::now();
                let replaced = std::fs::metadata(path).is_ok_and(|m| m.ino() != open.ino);
                if replaced {
                    // The new file may vanish again (another rotation): then keep the old.
                    if let Ok(new) = open_file(path, false) {
                        *open = new;
                    }
                }
            }
            Some(_) => {}
        }
        let Some(open) = slot.as_mut() else {
            continue;
        };
        chunk.clear();
        for _ in 0..o.lines_per_tick {
            let pad_len = rng.usize(o.padding.clone());
            let line = format!(
                "line-{}{f}-{} {}",
                o.prefix,
                next[f],
                padding(&mut rng, pad_len)
            );
            next[f] += 1;
            ledger.record(&line);
            chunk.extend_from_slice(line.as_bytes());
            chunk.push(b'\n');
        }
        let cut = if o.split_writes {
            rng.usize(..=chunk.len())
        } else {
            chunk.len()
        };
        open.file
            .write_all(&chunk[..cut])
            .and_then(|()| open.file.write_all(&chunk[cut..]))
            .with_context(|| format!("appending to {}", path.display()))?;
        written.fetch_add(o.lines_per_tick, Ordering::Relaxed);
        if !o.tick.is_zero() {
            std::thread::sleep(o.tick);
        }
    }
    Ok(ledger)
}

/// `count` lines with ids `line-<file>-<first>` onwards and random padding, without
/// newlines, for tests that write their files in one go.
pub fn make_lines(rng: &mut fastrand::Rng, file: &str, first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|n| {
            let pad_len = rng.usize(20..120);
            format!("line-{file}-{n} {}", padding(rng, pad_len))
        })
        .collect()
}

/// `lines` each followed by a newline, as one text.
pub fn with_newlines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Appends `bytes` to `path`, creating the file.
///
/// # Panics
///
/// When the file cannot be written.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Waits until the sink holds every line of `ledger` (or `timeout` passes) and returns
/// the accounting of the sink against it (more lines, duplicates or strangers may be in
/// it too; the accounting says).
pub fn wait_for_ledger(agg: &Aggregator, ledger: &Ledger, timeout: Duration) -> Accounting {
    let mut acc = Accounting::default();
    let waited = crate::wait_until(timeout, "every line in the sink", || {
        // Parsing the sink is dearer than counting its lines: only once there are enough.
        if crate::sink::count_lines(&agg.sink_path).unwrap_or(0) < ledger.len() {
            return false;
        }
        acc = Accounting::of(&agg.events().unwrap_or_default(), ledger);
        acc.missing.is_empty()
    });
    if waited.is_err() {
        acc = Accounting::of(&agg.events().unwrap_or_default(), ledger);
    }
    acc
}

/// The end of most tests: waits until every line of `ledger` is in the sink, checks
/// both processes still run, stops them (SIGTERM, exit 0), and checks, after the stop so
/// that late duplicates would show, that each line arrived exactly once with the agent's
/// host name. Returns the sink's events.
///
/// # Panics
///
/// With the accounting, when a line is missing, doubled or altered, or a process failed
/// (their logs are printed as they are dropped).
pub fn assert_delivered_exactly_once(
    what: &str,
    agg: &mut Aggregator,
    agent: &mut Agent,
    ledger: &Ledger,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let acc = wait_for_ledger(agg, ledger, timeout);
    assert!(
        acc.missing.is_empty(),
        "{what}: lines still missing after {timeout:?}: {acc}"
    );
    assert!(agent.is_running(), "{what}: the agent died");
    assert!(agg.is_running(), "{what}: the aggregator died");
    agent.stop().expect("the agent exits 0 on SIGTERM");
    agg.stop().expect("the aggregator exits 0 on SIGTERM");
    let events = agg.events().expect("read the sink");
    Accounting::of(&events, ledger).assert_exactly_once(what);
    let host = &agent.options().host;
    for e in &events {
        assert_eq!(
            e["host"].as_str(),
            Some(host.as_str()),
            "{what}: host of {e}"
        );
    }
    events
}
