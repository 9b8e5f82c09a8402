//! Decoding container runtime log files: a pure core over the lines of one file.
//!
//! Two formats are read, and plain lines pass through untouched:
//! - CRI (containerd, CRI-O): `<RFC 3339 time> <stdout|stderr> <P|F>[:tags] <message>`;
//!   `P` marks a piece of a longer line, joined with the pieces that follow up to the
//!   next `F` piece of the same stream.
//! - Docker json-file: `{"log":"...\n","stream":"stdout","time":"..."}`; a `log` without
//!   a trailing newline is a piece (Docker splits at 16 KiB), joined likewise.
//!
//! Pieces are joined per stream, as runtimes interleave stdout and stderr pieces. A line
//! that does not decode is passed on as it is (never dropped) and counted in
//! [`DecodeStats::decode_errors`]. [`Format::Auto`] picks the format from a file's first
//! line and keeps it for that file.
//!
//! Order and offsets: every physical line is pushed with `end_offset`, the file offset just
//! past it; an [`Entry`] carries the `end_offset` of the last physical line in it. Entries
//! come out in the order their last piece was read, so `end_offset` never decreases. A
//! complete line read while the other stream has a piece pending is queued behind it. Each
//! call either emits nothing, or emits and leaves nothing held: so between calls, every
//! physical line before the last emitted `end_offset` has been emitted, and what is held
//! lies after it and is read again after a crash. Checkpoint between calls, not inside the
//! `emit` callback (a joined line and the lines queued behind it must land together).
//!
//! Bounds: a joined line keeps at most `max_bytes` bytes (the rest of that line is
//! dropped and it is flagged [`FLAG_TRUNCATED`]); the queue holds at most `max_bytes`
//! bytes and [`MAX_QUEUED_LINES`] lines, past which pending pieces are emitted as they are
//! (flagged [`FLAG_NO_NEWLINE`]), as they are by [`ContainerDecoder::flush_due`] after the
//! timeout and by [`ContainerDecoder::take_pending`] when the file is let go. In all at
//! most about four times `max_bytes` is held per file.

mod json;
mod time;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use logferry_shared::wire::{FLAG_NO_NEWLINE, FLAG_STDERR, FLAG_TRUNCATED};
use serde::Deserialize;

use crate::lines::Line;

pub use time::rfc3339_ms;

/// Most complete lines queued behind a pending piece of the other stream.
pub const MAX_QUEUED_LINES: usize = 1024;
/// Buffers grown past this by a long line are shrunk back once it is emitted.
const KEEP_CAPACITY: usize = 64 << 10;

/// How the lines of a file are encoded (`format` in an input's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decided per file from its first line: CRI, Docker, or else raw.
    #[default]
    Auto,
    /// Plain lines.
    Raw,
    /// CRI runtime logs (containerd, CRI-O).
    Cri,
    /// Docker json-file logs.
    Docker,
}

/// Which output of a container wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The wire flag for this stream ([`FLAG_STDERR`] or nothing).
    pub fn flag(self) -> u8 {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => FLAG_STDERR,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One logical line on its way to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The message, without newline.
    pub bytes: &'a [u8],
    /// Wire `FLAG_*` bits, [`FLAG_STDERR`] included.
    pub flags: u8,
    /// The runtime's timestamp, Unix milliseconds (of the first piece), if it had one.
    pub time_ms: Option<u64>,
    /// The stream, for decoded container lines; `None` for raw lines.
    pub stream: Option<Stream>,
    /// File offset just past the last physical line in this entry.
    pub end_offset: u64,
}

impl<'a> Entry<'a> {
    /// A plain line from the line splitter.
    pub fn raw(line: Line<'a>, end_offset: u64) -> Entry<'a> {
        Entry {
            bytes: line.bytes,
            flags: line.flags,
            time_ms: None,
            stream: None,
            end_offset,
        }
    }
}

/// What decoding found, for the metrics. Counts since the last
/// [`ContainerDecoder::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines passed on as they were because they did not decode in the file's format.
    pub decode_errors: u64,
    /// Lines made of more than one piece.
    pub joined_lines: u64,
    /// Pending pieces emitted without their final piece (timeout, release, queue bound).
    pub flushed_partials: u64,
}

/// A line being joined from pieces.
#[derive(Debug, Default)]
struct Partial {
    active: bool,
    buf: Vec<u8>,
    flags: u8,
    time_ms: Option<u64>,
    end_offset: u64,
    pieces: u32,
    since: Option<Instant>,
}

impl Partial {
    fn append(&mut self, msg: &[u8], flags: u8, end_offset: u64, max_bytes: usize) {
        self.flags |= flags;
        self.end_offset = end_offset;
        self.pieces += 1;
        let room = max_bytes.saturating_sub(self.buf.len());
        if msg.len() > room {
            self.buf.extend_from_slice(&msg[..room]);
            self.flags |= FLAG_TRUNCATED;
        } else {
            self.buf.extend_from_slice(msg);
        }
    }
}

/// A complete line waiting behind a pending piece of the other stream.
#[derive(Debug)]
struct Queued {
    start: usize,
    len: usize,
    flags: u8,
    time_ms: Option<u64>,
    stream: Option<Stream>,
    end_offset: u64,
}

/// The decoded form of one physical line.
struct Piece<'a> {
    stream: Stream,
    time_ms: Option<u64>,
    partial: bool,
    msg: &'a [u8],
}

/// Decodes the lines of one file. See the module docs for order and bounds.
#[derive(Debug)]
pub struct ContainerDecoder {
    format: Format,
    max_bytes: usize,
    timeout: Duration,
    partials: [Partial; 2],
    queue: VecDeque<Queued>,
    arena: Vec<u8>,
    scratch: Vec<u8>,
    stats: DecodeStats,
}

impl ContainerDecoder {
    /// A decoder for one file. `max_bytes` bounds a joined line (`tail.max_line_bytes`);
    /// pending pieces are emitted `timeout` after the first of them was read.
    pub fn new(format: Format, max_bytes: usize, timeout: Duration) -> ContainerDecoder {
        ContainerDecoder {
            format,
            max_bytes: max_bytes.max(1),
            timeout,
            partials: Default::default(),
            queue: VecDeque::new(),
            arena: Vec::new(),
            scratch: Vec::new(),
            stats: DecodeStats::default(),
        }
    }

    /// The file's format: as configured, or once the first line is read, what
    /// [`Format::Auto`] chose.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether anything is held (pending pieces or lines queued behind them).
    pub fn is_holding(&self) -> bool {
        self.partials.iter().any(|p| p.active)
    }

    /// When [`ContainerDecoder::flush_due`] will next have something to emit.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partials
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| p.since)
            .min()
            .map(|t| t + self.timeout)
    }

    /// Counts since the last call.
    pub fn take_stats(&mut self) -> DecodeStats {
        std::mem::take(&mut self.stats)
    }

    /// Forgets everything held (the file was truncated and is read again from the start).
    pub fn reset(&mut self) {
        for p in &mut self.partials {
            p.active = false;
            p.buf.clear();
        }
        self.queue.clear();
        self.arena.clear();
    }

    /// Decodes one physical line (as split by [`crate::lines::LineSplitter`]) that ends at
    /// file offset `end_offset`, calling `emit` for each entry it completes.
    pub fn push<F>(&mut self, line: Line<'_>, end_offset: u64, now: Instant, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        if self.format == Format::Auto {
            self.format = detect(line.bytes);
        }
        match self.format {
            Format::Cri => match parse_cri(line.bytes) {
                Some(p) => self.piece(p, line.flags, end_offset, now, emit),
                None => self.undecoded(line, end_offset, emit),
            },
            Format::Docker => {
                let mut scratch = std::mem::take(&mut self.scratch);
                match json::parse_docker(line.bytes, &mut scratch) {
                    Some(f) => {
                        let (msg, partial) = match scratch.strip_suffix(b"\n") {
                            Some(m) => (m.strip_suffix(b"\r").unwrap_or(m), false),
                            None => (&scratch[..], true),
                        };
                        let p = Piece {
                            stream: f.stream,
                            time_ms: f.time_ms,
                            partial,
                            msg,
                        };
                        self.piece(p, line.flags, end_offset, now, emit);
                    }
                    None => self.undecoded(line, end_offset, emit),
                }
                if scratch.capacity() > KEEP_CAPACITY {
                    scratch = Vec::new();
                }
                self.scratch = scratch;
            }
            Format::Raw | Format::Auto => self.complete(Entry::raw(line, end_offset), emit),
        }
    }

    /// Emits pending pieces first read `timeout` ago or earlier, flagged
    /// [`FLAG_NO_NEWLINE`] (and with them anything else held, keeping the order).
    pub fn flush_due<F>(&mut self, now: Instant, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        if self.next_deadline().is_some_and(|d| d <= now) {
            self.take_pending(emit);
        }
    }

    /// Emits everything held, in order: pending pieces as they are, flagged
    /// [`FLAG_NO_NEWLINE`]. For when the file is let go (or at shutdown).
    pub fn take_pending<F>(&mut self, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        let active = [self.partials[0].active, self.partials[1].active];
        let mut order = [0, 1];
        if self.partials[1].end_offset < self.partials[0].end_offset {
            order.swap(0, 1);
        }
        let mut forced = order.into_iter().filter(|&i| active[i]).peekable();
        // Marked inactive first, so that completing one does not queue it behind the other.
        for p in &mut self.partials {
            p.active = false;
        }
        let mut queue = std::mem::take(&mut self.queue);
        let mut arena = std::mem::take(&mut self.arena);
        for q in &queue {
            while let Some(i) = forced.next_if(|&i| self.partials[i].end_offset < q.end_offset) {
                self.emit_partial(i, FLAG_NO_NEWLINE, emit);
                self.stats.flushed_partials += 1;
            }
            emit(Entry {
                bytes: &arena[q.start..q.start + q.len],
                flags: q.flags,
                time_ms: q.time_ms,
                stream: q.stream,
                end_offset: q.end_offset,
            });
        }
        for i in forced {
            self.emit_partial(i, FLAG_NO_NEWLINE, emit);
            self.stats.flushed_partials += 1;
        }
        queue.clear();
        arena.clear();
        if arena.capacity() > KEEP_CAPACITY {
            arena = Vec::new();
        }
        self.queue = queue;
        self.arena = arena;
    }

    fn undecoded<F>(&mut self, line: Line<'_>, end_offset: u64, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        self.stats.decode_errors += 1;
        self.complete(Entry::raw(line, end_offset), emit);
    }

    fn piece<F>(&mut self, p: Piece<'_>, flags: u8, end_offset: u64, now: Instant, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        let i = p.stream.index();
        let flags = flags | p.stream.flag();
        let max = self.max_bytes;
        let partial = &mut self.partials[i];
        if !partial.active {
            if !p.partial {
                let (bytes, cut) = match p.msg.get(..max) {
                    Some(b) if b.len() < p.msg.len() => (b, FLAG_TRUNCATED),
                    _ => (p.msg, 0),
                };
                let entry = Entry {
                    bytes,
                    flags: flags | cut,
                    time_ms: p.time_ms,
                    stream: Some(p.stream),
                    end_offset,
                };
                self.complete(entry, emit);
                return;
            }
            partial.active = true;
            partial.buf.clear();
            partial.flags = 0;
            partial.pieces = 0;
            partial.time_ms = p.time_ms;
            partial.since = Some(now);
        }
        partial.append(p.msg, flags, end_offset, max);
        if !p.partial {
            self.stats.joined_lines += 1;
            self.emit_partial(i, 0, emit);
        }
    }

    /// Completes the pending line of stream `i`, adding `extra` flags.
    fn emit_partial<F>(&mut self, i: usize, extra: u8, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        let p = &mut self.partials[i];
        p.active = false;
        let mut buf = std::mem::take(&mut p.buf);
        let entry = Entry {
            bytes: &buf,
            flags: p.flags | extra,
            time_ms: p.time_ms,
            stream: Some(if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            }),
            end_offset: p.end_offset,
        };
        self.complete(entry, emit);
        buf.clear();
        if buf.capacity() > KEEP_CAPACITY {
            buf = Vec::new();
        }
        self.partials[i].buf = buf;
    }

    /// A line is complete: emit it, or queue it while a piece is pending.
    fn complete<F>(&mut self, entry: Entry<'_>, emit: &mut F)
    where
        F: FnMut(Entry<'_>),
    {
        if !self.is_holding() {
            // Lines queued behind the piece just completed come first.
            if !self.queue.is_empty() {
                self.take_pending(emit);
            }
            emit(entry);
            return;
        }
        let over = self.queue.len() >= MAX_QUEUED_LINES
            || self.arena.len() + entry.bytes.len() > self.max_bytes;
        if over {
            self.take_pending(emit);
            emit(entry);
            return;
        }
        self.queue.push_back(Queued {
            start: self.arena.len(),
            len: entry.bytes.len(),
            flags: entry.flags,
            time_ms: entry.time_ms,
            stream: entry.stream,
            end_offset: entry.end_offset,
        });
        self.arena.extend_from_slice(entry.bytes);
    }
}

/// The format [`Format::Auto`] picks for a file whose first line is `line`.
pub fn detect(line: &[u8]) -> Format {
    if parse_cri(line).is_some() {
        Format::Cri
    } else if line.starts_with(b"{\"log\":") {
        Format::Docker
    } else {
        Format::Raw
    }
}

/// Splits a CRI line into its parts; `None` if it is not one.
fn parse_cri(line: &[u8]) -> Option<Piece<'_>> {
    // The time is at most 35 bytes (nanoseconds and an offset); don't scan a long line.
    let sp = memchr::memchr(b' ', &line[..line.len().min(48)])?;
    let time_ms = rfc3339_ms(&line[..sp])?;
    let rest = &line[sp + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (Stream::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (Stream::Stderr, r)
    } else {
        return None;
    };
    let (tags, msg) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let partial = match tags.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Piece {
        stream,
        time_ms: Some(time_ms),
        partial,
        msg,
    })
}
