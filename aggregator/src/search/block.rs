//! One block of events: filled in memory by appends ([`OpenBlock`]), sealed into a text
//! filter (`trigrams.rs`) and two checksummed, compressed sections for a segment file
//! ([`Sealer::seal`]), and read back ([`open_section`], [`Columns::decode`]).
//!
//! A block's events are numbered `first_seq..first_seq + count` in append order. The meta
//! section holds the block's names and one column per field, so filters on time, level,
//! host, namespace and source read about 19 bytes per event; the lines section holds the
//! JSON lines back to back and is read only for text search and for the events a page
//! returns.
//!
//! Meta section, little-endian: `count u32 | names u32 | names × end u32 | name bytes |
//! count × ts i64 | count × level u8 | count × host u16 | count × namespace u16 |
//! count × source u16 | count × line end u32`. Names are ids into the block's own name
//! list ([`NO_NAME`] for a missing namespace), so a block reads without any other state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use logferry_shared::event::Level;
use xxhash_rust::xxh3::xxh3_64;

use super::summary::{Bloom, NameKind, Reader, Summary, FLAG_ZSTD};
use super::trigrams::FilterBuilder;

/// Most events in one block: with three names per event the ids stay below [`NO_NAME`].
pub const MAX_EVENTS: usize = 16_384;
/// Longest line kept; longer ones are not stored (counted as skipped).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Longest host, namespace or source kept (Linux paths are shorter); longer: skipped.
pub const MAX_NAME_BYTES: usize = 4096;
/// Largest decompressed section read back: a full block plus its longest line, with room.
pub const MAX_SECTION_BYTES: u32 = 16 << 20;
/// The id of a missing namespace.
pub const NO_NAME: u16 = u16::MAX;

/// One event to store, as the pipeline rendered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEvent<'a> {
    /// The event's `timestamp`, in ms since the epoch.
    pub timestamp_ms: i64,
    /// Its level, when known.
    pub level: Option<Level>,
    /// The host (empty when unknown).
    pub host: &'a str,
    /// The source file's path.
    pub source: &'a str,
    /// The Kubernetes namespace, when known.
    pub namespace: Option<&'a str>,
    /// The JSON line exactly as the file sink writes it, without the newline.
    pub line: &'a [u8],
}

/// A level as stored: 0 for none, 1 (trace) to 6 (fatal).
pub fn level_code(level: Option<Level>) -> u8 {
    match level {
        None => 0,
        Some(Level::Trace) => 1,
        Some(Level::Debug) => 2,
        Some(Level::Info) => 3,
        Some(Level::Warn) => 4,
        Some(Level::Error) => 5,
        Some(Level::Fatal) => 6,
    }
}

/// The per-event fields of a block, column by column, and the names they refer to.
#[derive(Debug, Default, Clone)]
pub struct Columns {
    name_ends: Vec<u32>,
    names: Vec<u8>,
    /// Timestamps (ms).
    pub ts: Vec<i64>,
    /// Level codes ([`level_code`]).
    pub level: Vec<u8>,
    /// Host name ids.
    pub host: Vec<u16>,
    /// Namespace name ids, [`NO_NAME`] when absent.
    pub namespace: Vec<u16>,
    /// Source path ids.
    pub source: Vec<u16>,
    /// End of each line in the lines section.
    pub ends: Vec<u32>,
}

impl Columns {
    /// Events.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True without events.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Names in the block.
    pub fn name_count(&self) -> usize {
        self.name_ends.len()
    }

    /// Name `id` (empty for an id the block does not have).
    pub fn name(&self, id: u16) -> &[u8] {
        let i = usize::from(id);
        let end = self.name_ends.get(i).copied().unwrap_or(0) as usize;
        let start = match i.checked_sub(1) {
            Some(p) => self.name_ends.get(p).copied().unwrap_or(0) as usize,
            None => 0,
        };
        self.names.get(start..end).unwrap_or_default()
    }

    /// Event `i`'s line within `lines` (empty if out of range).
    pub fn line<'a>(&self, lines: &'a [u8], i: usize) -> &'a [u8] {
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0) as usize,
            None => 0,
        };
        lines.get(start..end).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.name_ends.clear();
        self.names.clear();
        self.ts.clear();
        self.level.clear();
        self.host.clear();
        self.namespace.clear();
        self.source.clear();
        self.ends.clear();
    }

    fn add_name(&mut self, name: &str) -> u16 {
        let id = self.name_ends.len() as u16;
        self.names.extend_from_slice(name.as_bytes());
        self.name_ends.push(self.names.len() as u32);
        id
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.name_ends.len() as u32).to_le_bytes());
        for e in &self.name_ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
        out.extend_from_slice(&self.names);
        for t in &self.ts {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&self.level);
        for col in [&self.host, &self.namespace, &self.source] {
            for id in col {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        for e in &self.ends {
            out.extend_from_slice(&e.to_le_bytes());
        }
    }

    /// Reads a meta section of a block whose lines section is `lines_len` bytes; `None`
    /// when anything is inconsistent (wrong lengths, ids without a name, lines out of
    /// order), so a damaged block is skipped rather than misread.
    pub fn decode(b: &[u8], lines_len: u32) -> Option<Columns> {
        let mut r = Reader(b);
        let count = r.u32()? as usize;
        let names = r.u32()? as usize;
        if count > MAX_EVENTS || names > 3 * MAX_EVENTS {
            return None;
        }
        let name_ends: Vec<u32> = ends(r.take(names * 4)?)?;
        let names_len = name_ends.last().copied().unwrap_or(0) as usize;
        let names_bytes = r.take(names_len)?.to_vec();
        let ts = r
            .take(count * 8)?
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let level = r.take(count)?.to_vec();
        if level.iter().any(|&l| l > 6) {
            return None;
        }
        let mut ids = || -> Option<Vec<u16>> {
            Some(
                r.take(count * 2)?
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
        };
        let (host, namespace, source) = (ids()?, ids()?, ids()?);
        let line_ends = ends(r.take(count * 4)?)?;
        let known = |id: &u16| usize::from(*id) < names;
        let consistent = r.rest() == 0
            && host.iter().all(known)
            && source.iter().all(known)
            && namespace.iter().all(|id| *id == NO_NAME || known(id))
            && line_ends.last().copied().unwrap_or(0) == lines_len;
        consistent.then_some(Columns {
            name_ends,
            names: names_bytes,
            ts,
            level,
            host,
            namespace,
            source,
            ends: line_ends,
        })
    }
}

/// Non-decreasing `u32` offsets.
fn ends(b: &[u8]) -> Option<Vec<u32>> {
    let v: Vec<u32> = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    v.windows(2).all(|w| w[0] <= w[1]).then_some(v)
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Name ids by the name's xxh3 hash. Two names with one hash (never seen in practice)
/// only cost a duplicate name: the second is added again each time it is met.
type NameIds = HashMap<u64, u16, BuildHasherDefault<Prehashed>>;

/// The block being filled by appends.
#[derive(Debug)]
pub struct OpenBlock {
    /// Sequence number of the first event.
    pub first_seq: u64,
    /// The events' fields.
    pub cols: Columns,
    /// The events' lines, back to back.
    pub lines: Vec<u8>,
    /// Name ids by kind (host, namespace, source).
    ids: [NameIds; 3],
    /// The id each kind got last: consecutive events mostly share their names.
    last: [u16; 3],
    /// Earliest timestamp.
    pub min_ts: i64,
    /// Latest timestamp.
    pub max_ts: i64,
    /// Level codes present, as bits.
    pub levels: u8,
    /// Hosts and namespaces present.
    pub bloom: Bloom,
}

impl OpenBlock {
    /// An empty block whose first event will be `first_seq`.
    pub fn new(first_seq: u64) -> OpenBlock {
        OpenBlock {
            first_seq,
            cols: Columns::default(),
            lines: Vec::new(),
            ids: Default::default(),
            last: [NO_NAME; 3],
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            levels: 0,
            bloom: Bloom::default(),
        }
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// Empties the block for reuse (keeping its buffers), to start at `first_seq`.
    pub fn reset(&mut self, first_seq: u64) {
        self.first_seq = first_seq;
        self.cols.clear();
        self.lines.clear();
        for ids in &mut self.ids {
            ids.clear();
        }
        self.last = [NO_NAME; 3];
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
        self.levels = 0;
        self.bloom = Bloom::default();
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.len() as u64
    }

    /// True once the block should be sealed.
    pub fn is_full(&self, events: usize, bytes: usize) -> bool {
        self.len() >= events || self.lines.len() >= bytes
    }

    /// Adds an event; false (and nothing added) when a line or name is too long to keep.
    pub fn push(&mut self, e: &NewEvent<'_>) -> bool {
        let too_long = e.line.len() > MAX_LINE_BYTES
            || [e.host, e.source, e.namespace.unwrap_or_default()]
                .iter()
                .any(|n| n.len() > MAX_NAME_BYTES);
        if too_long {
            return false;
        }
        let host = self.intern(0, e.host);
        let namespace = match e.namespace {
            Some(ns) => self.intern(1, ns),
            None => NO_NAME,
        };
        let source = self.intern(2, e.source);
        let code = level_code(e.level);
        self.cols.ts.push(e.timestamp_ms);
        self.cols.level.push(code);
        self.cols.host.push(host);
        self.cols.namespace.push(namespace);
        self.cols.source.push(source);
        self.lines.extend_from_slice(e.line);
        self.cols.ends.push(self.lines.len() as u32);
        self.min_ts = self.min_ts.min(e.timestamp_ms);
        self.max_ts = self.max_ts.max(e.timestamp_ms);
        self.levels |= 1 << code;
        true
    }

    fn intern(&mut self, kind: usize, name: &str) -> u16 {
        let last = self.last[kind];
        if last != NO_NAME && self.cols.name(last) == name.as_bytes() {
            return last;
        }
        let hash = xxh3_64(name.as_bytes());
        let id = match self.ids[kind].get(&hash) {
            Some(&id) if self.cols.name(id) == name.as_bytes() => id,
            found => {
                let id = self.cols.add_name(name);
                if found.is_none() {
                    self.ids[kind].insert(hash, id);
                }
                match kind {
                    0 => self.bloom.insert(NameKind::Host, name.as_bytes()),
                    1 => self.bloom.insert(NameKind::Namespace, name.as_bytes()),
                    _ => {}
                }
                id
            }
        };
        self.last[kind] = id;
        id
    }
}

/// Encodes and compresses blocks and builds their text filters, keeping its zstd context
/// and buffers from block to block (about one block's worth).
pub struct Sealer {
    /// `None`: blocks are stored uncompressed.
    compressor: Option<zstd::bulk::Compressor<'static>>,
    trigrams: FilterBuilder,
    filter: Vec<u8>,
    meta_raw: Vec<u8>,
    meta: Vec<u8>,
    lines: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("compressed", &self.compressor.is_some())
            .finish_non_exhaustive()
    }
}

fn compress_into(
    c: &mut zstd::bulk::Compressor<'static>,
    src: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(src.len()));
    c.compress_to_buffer(src, out).map(drop)
}

impl Sealer {
    /// A sealer compressing at zstd `level` (0: not compressing).
    pub fn new(level: i32) -> io::Result<Sealer> {
        Ok(Sealer {
            compressor: match level {
                0 => None,
                level => Some(zstd::bulk::Compressor::new(level)?),
            },
            trigrams: FilterBuilder::default(),
            filter: Vec::new(),
            meta_raw: Vec::new(),
            meta: Vec::new(),
            lines: Vec::new(),
        })
    }

    /// Encodes and compresses `block`, builds its text filter and sums it up.
    pub fn seal<'a>(
        &'a mut self,
        block: &'a OpenBlock,
        sealed_ms: u64,
    ) -> io::Result<SealedBlock<'a>> {
        self.meta_raw.clear();
        block.cols.encode(&mut self.meta_raw);
        self.trigrams.build(&block.lines, &mut self.filter);
        let (flags, meta, lines): (u8, &[u8], &[u8]) = match &mut self.compressor {
            Some(c) => {
                compress_into(c, &self.meta_raw, &mut self.meta)?;
                compress_into(c, &block.lines, &mut self.lines)?;
                (FLAG_ZSTD, &self.meta, &self.lines)
            }
            None => (0, &self.meta_raw, &block.lines),
        };
        let len = |n: usize| {
            u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block"))
        };
        let summary = Summary {
            first_seq: block.first_seq,
            count: len(block.len())?,
            min_ts: block.min_ts,
            max_ts: block.max_ts,
            sealed_ms,
            levels: block.levels,
            flags,
            meta_raw_len: len(self.meta_raw.len())?,
            meta_len: len(meta.len())?,
            meta_crc: crc32fast::hash(meta),
            lines_raw_len: len(block.lines.len())?,
            lines_len: len(lines.len())?,
            lines_crc: crc32fast::hash(lines),
            bloom: block.bloom.clone(),
            filter_len: len(self.filter.len())?,
            filter_crc: crc32fast::hash(&self.filter),
        };
        Ok(SealedBlock {
            summary,
            filter: &self.filter,
            meta,
            lines,
        })
    }
}

/// A block ready for its segment file.
#[derive(Debug)]
pub struct SealedBlock<'a> {
    /// Its summary (the block header on disk).
    pub summary: Summary,
    /// Its text filter.
    pub filter: &'a [u8],
    /// The stored meta section.
    pub meta: &'a [u8],
    /// The stored lines section.
    pub lines: &'a [u8],
}

/// Why a stored section could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// Reading the file failed.
    #[error("read: {0}")]
    Io(#[from] io::Error),
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Checksum,
    /// Decompression failed or gave another length than recorded.
    #[error("does not decompress to its recorded length")]
    Decompress,
    /// The meta section is inconsistent.
    #[error("meta section is inconsistent")]
    Meta,
}

/// Checks a stored section against its checksum and decompresses it into `out`
/// (replacing what `out` held).
pub fn open_section(
    stored: &[u8],
    crc: u32,
    raw_len: u32,
    flags: u8,
    decompressor: &mut zstd::bulk::Decompressor<'static>,
    out: &mut Vec<u8>,
) -> Result<(), Damage> {
    if crc32fast::hash(stored) != crc {
        return Err(Damage::Checksum);
    }
    if raw_len > MAX_SECTION_BYTES {
        return Err(Damage::Decompress);
    }
    out.clear();
    if flags & FLAG_ZSTD == 0 {
        if stored.len() != raw_len as usize {
            return Err(Damage::Decompress);
        }
        out.extend_from_slice(stored);
        return Ok(());
    }
    out.reserve(raw_len as usize);
    match decompressor.decompress_to_buffer(stored, out) {
        Ok(n) if n == raw_len as usize => Ok(()),
        _ => Err(Damage::Decompress),
    }
}
