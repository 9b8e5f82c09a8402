//! Running a query over blocks: skip a block by its summary, or by its text filter (read
//! from disk, only for a text of three bytes or more), filter its events by their columns,
//! search the lines of the survivors for the text, and keep the newest `limit + 1` matches
//! in a heap (the extra one tells whether there is a next page).
//!
//! The store hands blocks over newest first (by their latest timestamp), so once the heap
//! is full a block whose latest event is older than the heap's oldest ends the scan. The
//! newest blocks are scanned on the caller's thread, where most first pages end; a scan
//! that goes on past them (a rare match, a deep page) is shared by a few threads, each
//! with its own heap, taking the next block in order and stopping at the oldest match
//! that any of them holds; their heaps are merged at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use tracing::warn;

use super::block::{open_section, Columns, Damage, OpenBlock, NO_NAME};
use super::query::{Key, LevelSet, Page, Query, QueryError, TextFilter, MAX_LIMIT};
use super::segment::Location;
use super::summary::{Bloom, NameKind, Summary};
use super::trigrams;

/// A block on disk, as the store's index holds it.
#[derive(Debug)]
pub struct StoredBlock {
    /// Its summary.
    pub summary: Summary,
    /// Where it is.
    pub location: Location,
    /// Set once a read found it damaged, so it is reported once and then skipped.
    pub damaged: AtomicBool,
}

/// What scans count, for [`super::StoreStats`].
#[derive(Debug, Default)]
pub struct ScanCounts {
    /// Blocks found damaged.
    pub damaged: AtomicU64,
    /// Blocks a text query skipped by their text filter.
    pub text_skipped: AtomicU64,
}

/// What a summary check needs from a block, stored or in memory.
struct Facts<'a> {
    min_ts: i64,
    max_ts: i64,
    first_seq: u64,
    levels: u8,
    bloom: &'a Bloom,
}

/// A query ready to run.
#[derive(Debug)]
pub struct Filter {
    text: Option<TextFilter>,
    levels: LevelSet,
    source: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
    namespace: Option<Vec<u8>>,
    since: i64,
    until: i64,
    cursor: Option<Key>,
    /// Events per page.
    pub limit: usize,
}

impl Filter {
    /// Checks and prepares `q`.
    pub fn new(q: &Query) -> Result<Filter, QueryError> {
        let cursor = q.cursor.as_deref().map(Key::from_cursor).transpose()?;
        Ok(Filter {
            text: q.text.as_deref().and_then(TextFilter::new),
            levels: q.levels,
            source: q.source.clone().map(String::into_bytes),
            host: q.host.clone().map(String::into_bytes),
            namespace: q.namespace.clone().map(String::into_bytes),
            since: q.since_ms.unwrap_or(i64::MIN),
            until: q.until_ms.unwrap_or(i64::MAX),
            cursor,
            limit: q.limit.clamp(1, MAX_LIMIT),
        })
    }

    /// True when no event of the block can match.
    fn skips(&self, f: &Facts<'_>) -> bool {
        f.max_ts < self.since
            || f.min_ts >= self.until
            || !self.levels.meets(f.levels)
            || self.cursor.is_some_and(|c| {
                Key {
                    ts: f.min_ts,
                    seq: f.first_seq,
                } >= c
            })
            || self
                .host
                .as_ref()
                .is_some_and(|h| !f.bloom.may_contain(NameKind::Host, h))
            || self
                .namespace
                .as_ref()
                .is_some_and(|n| !f.bloom.may_contain(NameKind::Namespace, n))
    }

    /// True when the summary rules the block out.
    pub fn skips_summary(&self, s: &Summary) -> bool {
        self.skips(&Facts {
            min_ts: s.min_ts,
            max_ts: s.max_ts,
            first_seq: s.first_seq,
            levels: s.levels,
            bloom: &s.bloom,
        })
    }

    /// The events of `cols` that pass every filter but the text and would enter `top`.
    fn candidates(&self, cols: &Columns, first_seq: u64, top: &TopK, out: &mut Vec<u32>) {
        out.clear();
        let mask = |want: &Option<Vec<u8>>, prefix: bool| -> Option<Vec<bool>> {
            let want = want.as_deref()?;
            Some(
                (0..cols.name_count())
                    .map(|id| {
                        let name = cols.name(id as u16);
                        if prefix {
                            name.starts_with(want)
                        } else {
                            name == want
                        }
                    })
                    .collect(),
            )
        };
        let host = mask(&self.host, false);
        let namespace = mask(&self.namespace, false);
        let source = mask(&self.source, true);
        let pass = |m: &Option<Vec<bool>>, id: u16| match m {
            None => true,
            Some(m) => m.get(usize::from(id)).copied().unwrap_or(false),
        };
        for i in 0..cols.len() {
            let ts = cols.ts[i];
            if ts < self.since || ts >= self.until || !self.levels.contains_code(cols.level[i]) {
                continue;
            }
            let ns = cols.namespace[i];
            if !pass(&host, cols.host[i])
                || !pass(&source, cols.source[i])
                || (namespace.is_some() && (ns == NO_NAME || !pass(&namespace, ns)))
            {
                continue;
            }
            let key = Key {
                ts,
                seq: first_seq + i as u64,
            };
            if self.cursor.is_some_and(|c| key >= c) || !top.admits(key) {
                continue;
            }
            out.push(i as u32);
        }
    }
}

/// Blocks scanned on the caller's thread before others help.
const ALONE: usize = 2;

/// The newest matches so far.
#[derive(Debug)]
pub struct TopK {
    cap: usize,
    /// Only keys above this are admitted (another heap already holds `cap` newer ones).
    above: Option<Key>,
    heap: BinaryHeap<Reverse<(Key, Vec<u8>)>>,
}

impl TopK {
    /// Keeps at most `cap` matches.
    pub fn new(cap: usize) -> TopK {
        TopK {
            cap,
            above: None,
            heap: BinaryHeap::with_capacity(cap + 1),
        }
    }

    /// The oldest match kept, once full.
    pub fn floor(&self) -> Option<Key> {
        if self.heap.len() < self.cap {
            return None;
        }
        self.heap.peek().map(|Reverse((k, _))| *k)
    }

    fn admits(&self, key: Key) -> bool {
        self.floor().or(self.above).is_none_or(|f| key > f)
    }

    fn push(&mut self, key: Key, line: &[u8]) {
        if self.admits(key) {
            self.insert(key, line.to_vec());
        }
    }

    fn insert(&mut self, key: Key, line: Vec<u8>) {
        if self.heap.len() >= self.cap {
            self.heap.pop();
        }
        self.heap.push(Reverse((key, line)));
    }

    /// Takes in the matches of another heap.
    fn merge(&mut self, other: TopK) {
        for Reverse((key, line)) in other.heap {
            if self.admits(key) {
                self.insert(key, line);
            }
        }
    }

    /// The page: the newest `limit` matches, and a cursor when there were more.
    pub fn into_page(self, limit: usize) -> Page {
        let mut all: Vec<(Key, Vec<u8>)> = self.heap.into_iter().map(|Reverse(e)| e).collect();
        all.sort_unstable_by_key(|e| Reverse(e.0));
        let next_cursor = (all.len() > limit).then(|| all[limit - 1].0.cursor());
        all.truncate(limit);
        Page {
            lines: all.into_iter().map(|(_, line)| line).collect(),
            next_cursor,
        }
    }
}

/// Buffers reused from block to block by one query.
#[derive(Default)]
pub struct Scratch {
    stored: Vec<u8>,
    meta: Vec<u8>,
    lines: Vec<u8>,
    lowered: Vec<u8>,
    line: Vec<u8>,
    candidates: Vec<u32>,
    hits: Vec<bool>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

/// Adds the matches of a block in memory (the open block, or one being sealed).
pub fn scan_memory(filter: &Filter, block: &OpenBlock, top: &mut TopK, s: &mut Scratch) {
    if block.is_empty() {
        return;
    }
    let facts = Facts {
        min_ts: block.min_ts,
        max_ts: block.max_ts,
        first_seq: block.first_seq,
        levels: block.levels,
        bloom: &block.bloom,
    };
    if filter.skips(&facts) {
        return;
    }
    let mut candidates = std::mem::take(&mut s.candidates);
    filter.candidates(&block.cols, block.first_seq, top, &mut candidates);
    add_matches(
        filter,
        &block.cols,
        block.first_seq,
        &block.lines,
        &candidates,
        top,
        s,
    );
    s.candidates = candidates;
}

/// What to do with the next block, given the oldest match kept (`floor`) and the newest
/// timestamp below which no match can make the page (`stop_below`).
enum Step {
    /// This block and all after it are too old.
    Stop,
    /// This block is too old.
    Skip,
    /// Read it.
    Scan,
}

fn step(s: &Summary, floor: Option<Key>, stop_below: i64) -> Step {
    if s.max_ts < stop_below.max(floor.map_or(i64::MIN, |f| f.ts)) {
        return Step::Stop;
    }
    let newest = Key {
        ts: s.max_ts,
        seq: s.last_seq(),
    };
    if floor.is_some_and(|f| newest <= f) {
        return Step::Skip;
    }
    Step::Scan
}

/// Adds the matches of stored `blocks`, ordered newest first by their latest timestamp,
/// using up to `threads` threads (see the module docs).
pub fn scan_blocks(
    filter: &Filter,
    blocks: &[&StoredBlock],
    top: &mut TopK,
    threads: usize,
    counts: &ScanCounts,
) {
    let mut s = Scratch::default();
    let mut rest = blocks;
    while let Some((b, tail)) = rest.split_first() {
        if threads > 1 && blocks.len() - rest.len() >= ALONE {
            break;
        }
        match step(&b.summary, top.floor(), i64::MIN) {
            Step::Stop => return,
            Step::Skip => {}
            Step::Scan => scan_stored(filter, b, top, &mut s, counts),
        }
        rest = tail;
    }
    if rest.is_empty() {
        return;
    }
    let (cap, above) = (top.cap, top.floor());
    let next = AtomicUsize::new(0);
    let stop_below = AtomicI64::new(above.map_or(i64::MIN, |f| f.ts));
    let (next, stop_below) = (&next, &stop_below);
    let work = move || {
        let mut mine = TopK::new(cap);
        mine.above = above;
        let mut s = Scratch::default();
        while let Some(b) = rest.get(next.fetch_add(1, Ordering::Relaxed)) {
            match step(&b.summary, mine.floor(), stop_below.load(Ordering::Relaxed)) {
                Step::Stop => break,
                Step::Skip => continue,
                Step::Scan => scan_stored(filter, b, &mut mine, &mut s, counts),
            }
            // Each heap's oldest match bounds the page for everyone.
            if let Some(f) = mine.floor() {
                stop_below.fetch_max(f.ts, Ordering::Relaxed);
            }
        }
        mine
    };
    let found: Vec<TopK> = std::thread::scope(|scope| {
        // This thread works too; a helper that cannot be started is simply not there.
        let helpers: Vec<_> = (1..threads.min(rest.len()))
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("search-scan".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut found = vec![work()];
        for h in helpers {
            found.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        found
    });
    for mine in found {
        top.merge(mine);
    }
}

/// Adds the matches of a stored block. A block that cannot be read is reported (once,
/// counting it in `counts`) and skipped.
fn scan_stored(
    filter: &Filter,
    block: &StoredBlock,
    top: &mut TopK,
    s: &mut Scratch,
    counts: &ScanCounts,
) {
    if block.damaged.load(Ordering::Relaxed) {
        return;
    }
    match text_excludes(filter, block, s) {
        Ok(true) => {
            counts.text_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(false) => {}
        Err(e) => return report_damage(block, &e, counts),
    }
    if let Err(e) = try_scan_stored(filter, block, top, s) {
        report_damage(block, &e, counts);
    }
}

/// True when the block's text filter shows that it cannot hold the query's text. Reads
/// the filter only when there is one and the text has a trigram.
fn text_excludes(filter: &Filter, block: &StoredBlock, s: &mut Scratch) -> Result<bool, Damage> {
    let sum = &block.summary;
    let hashes = match &filter.text {
        Some(text) if sum.filter_len > 0 && !text.trigrams().is_empty() => text.trigrams(),
        _ => return Ok(false),
    };
    let at = block
        .location
        .meta_at
        .checked_sub(u64::from(sum.filter_len))
        .ok_or(Damage::Meta)?;
    let seg = &block.location.segment;
    seg.read_at(at, sum.filter_len as usize, &mut s.stored)?;
    if crc32fast::hash(&s.stored) != sum.filter_crc {
        return Err(Damage::Checksum);
    }
    Ok(!trigrams::may_contain(&s.stored, hashes))
}

/// Marks a block damaged, warning and counting it the first time.
fn report_damage(block: &StoredBlock, e: &Damage, counts: &ScanCounts) {
    if !block.damaged.swap(true, Ordering::Relaxed) {
        counts.damaged.fetch_add(1, Ordering::Relaxed);
        warn!(
            path = %block.location.segment.path.display(),
            offset = block.location.meta_at,
            first_seq = block.summary.first_seq,
            error = %e,
            "search block damaged; skipping it"
        );
    }
}

fn try_scan_stored(
    filter: &Filter,
    block: &StoredBlock,
    top: &mut TopK,
    s: &mut Scratch,
) -> Result<(), Damage> {
    let sum = &block.summary;
    let seg = &block.location.segment;
    if s.decompressor.is_none() {
        s.decompressor = Some(zstd::bulk::Decompressor::new()?);
    }
    let Some(dec) = s.decompressor.as_mut() else {
        return Ok(());
    };
    seg.read_at(block.location.meta_at, sum.meta_len as usize, &mut s.stored)?;
    open_section(
        &s.stored,
        sum.meta_crc,
        sum.meta_raw_len,
        sum.flags,
        dec,
        &mut s.meta,
    )?;
    let cols = Columns::decode(&s.meta, sum.lines_raw_len).ok_or(Damage::Meta)?;
    if cols.len() != sum.count as usize {
        return Err(Damage::Meta);
    }
    let mut candidates = std::mem::take(&mut s.candidates);
    filter.candidates(&cols, sum.first_seq, top, &mut candidates);
    if !candidates.is_empty() {
        let lines_at = block.location.meta_at + u64::from(sum.meta_len);
        seg.read_at(lines_at, sum.lines_len as usize, &mut s.stored)?;
        let mut lines = std::mem::take(&mut s.lines);
        let opened = open_section(
            &s.stored,
            sum.lines_crc,
            sum.lines_raw_len,
            sum.flags,
            dec,
            &mut lines,
        );
        if opened.is_ok() {
            add_matches(filter, &cols, sum.first_seq, &lines, &candidates, top, s);
        }
        s.lines = lines;
        opened?;
    }
    s.candidates = candidates;
    Ok(())
}

/// Pushes the candidates whose lines contain the text (all of them without text).
fn add_matches(
    filter: &Filter,
    cols: &Columns,
    first_seq: u64,
    lines: &[u8],
    candidates: &[u32],
    top: &mut TopK,
    s: &mut Scratch,
) {
    let key = |i: usize| Key {
        ts: cols.ts[i],
        seq: first_seq + i as u64,
    };
    let Some(text) = &filter.text else {
        for &i in candidates {
            let i = i as usize;
            top.push(key(i), cols.line(lines, i));
        }
        return;
    };
    // Few candidates: search their lines one by one. Many: search the whole section in
    // one pass (lower-cased once) and map the hits back to lines.
    if candidates.len() * 4 < cols.len() {
        for &i in candidates {
            let i = i as usize;
            let line = cols.line(lines, i);
            if text.matches(line, &mut s.line) {
                top.push(key(i), line);
            }
        }
        return;
    }
    let hay: &[u8] = if text.folds() {
        s.lowered.clear();
        s.lowered.extend_from_slice(lines);
        s.lowered.make_ascii_lowercase();
        &s.lowered
    } else {
        lines
    };
    s.hits.clear();
    s.hits.resize(cols.len(), false);
    let mut pos = 0;
    while let Some(at) = text.find_from(hay, pos) {
        // The line holding the match; a match running into the next line does not count,
        // and the search goes on from the start of that next line.
        let i = cols.ends.partition_point(|&e| (e as usize) <= at);
        let Some(&end) = cols.ends.get(i) else {
            break;
        };
        if at + text.needle_len() <= end as usize {
            s.hits[i] = true;
        }
        pos = end as usize;
    }
    for &i in candidates {
        let i = i as usize;
        if s.hits[i] {
            top.push(key(i), cols.line(lines, i));
        }
    }
}
