//! The batch frame that agents send to the aggregator (one frame per HTTP request body).
//!
//! `docs/wire.md` describes the layout byte by byte. In short:
//!
//! ```text
//! fixed header (30 bytes) | agent id | stream id | compressed body | crc32 (4 bytes)
//! ```
//!
//! Invariants the decoder enforces, in this order, before it allocates anything sized by
//! the frame: the frame is at most `max_frame_bytes`; magic and version match; the lengths
//! in the header add up to exactly the frame's length; the CRC-32 over everything before
//! the trailer matches; flags are zero; the codec is known; the declared uncompressed size
//! is within `max_raw_bytes`. Only then is the body inflated, capped at the declared size,
//! and parsed; every length inside the body is checked against what remains. No input makes
//! it panic (see the corruption and property tests, and the `fuzz/` target).

use crate::codec::{self, Codec, DecompressError};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"LFRY";
/// The frame version this code writes and reads.
pub const VERSION: u8 = 1;
/// Size of the fixed part of the header.
pub const FIXED_HEADER_LEN: usize = 30;
/// Size of the CRC-32 trailer.
pub const TRAILER_LEN: usize = 4;
/// Longest agent or stream id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Record flag: the line was longer than the agent's limit and was cut.
pub const FLAG_TRUNCATED: u8 = 0b0000_0001;
/// Record flag: the line was not valid UTF-8 at the source.
pub const FLAG_INVALID_UTF8: u8 = 0b0000_0010;
/// Record flag: the line had no trailing newline (flushed after a timeout or at EOF of a
/// deleted file).
pub const FLAG_NO_NEWLINE: u8 = 0b0000_0100;
/// Record flag: the line came from a container's stderr (CRI and Docker logs record the
/// stream; lines without this flag are stdout or plain file lines).
pub const FLAG_STDERR: u8 = 0b0000_1000;
const KNOWN_RECORD_FLAGS: u8 = FLAG_TRUNCATED | FLAG_INVALID_UTF8 | FLAG_NO_NEWLINE | FLAG_STDERR;

/// Why a frame was refused. Every variant is a client error; [`WireError::status_class`]
/// maps it to the HTTP answer the aggregator gives.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the header says.
    #[error("frame truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header calls for.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// More bytes than the header says.
    #[error("frame has {0} trailing bytes after its checksum")]
    TrailingBytes(usize),
    /// Not a Logferry frame.
    #[error("bad magic: not a logferry batch frame")]
    BadMagic,
    /// A frame version this build does not read.
    #[error("unsupported frame version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u8),
    /// The checksum does not match: the frame was damaged.
    #[error("checksum mismatch: frame is corrupt")]
    Checksum,
    /// Reserved header flags set.
    #[error("unsupported header flags {0:#06x}")]
    UnsupportedFlags(u16),
    /// A codec id this build does not know.
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    /// The frame or its declared body exceeds a limit.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Which size.
        what: &'static str,
        /// The size found.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A header field is invalid.
    #[error("bad header: {0}")]
    BadHeader(&'static str),
    /// The body does not decompress.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The decompressed body is malformed.
    #[error("bad body: {0}")]
    BadBody(&'static str),
}

/// How the aggregator should answer a refused frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalClass {
    /// 400: malformed.
    BadRequest,
    /// 413: too large.
    TooLarge,
    /// 415: unknown codec.
    UnsupportedMedia,
}

impl WireError {
    /// The HTTP answer class for this error.
    pub fn status_class(&self) -> RefusalClass {
        match self {
            WireError::TooLarge { .. }
            | WireError::Decompress(DecompressError::TooLarge { .. }) => RefusalClass::TooLarge,
            WireError::UnknownCodec(_) => RefusalClass::UnsupportedMedia,
            _ => RefusalClass::BadRequest,
        }
    }
}

/// Limits the decoder enforces.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest whole frame accepted.
    pub max_frame_bytes: usize,
    /// Largest declared (and actual) uncompressed body.
    pub max_raw_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_frame_bytes: 16 << 20,
            max_raw_bytes: 64 << 20,
        }
    }
}

/// The fixed identity and shape of a batch, from the frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// Stable id of the sending agent.
    pub agent_id: String,
    /// The agent's stream this batch belongs to; `seq` counts per (agent, stream).
    pub stream: String,
    /// Sequence number, unique and increasing per (agent, stream).
    pub seq: u64,
    /// Number of records in the body.
    pub record_count: u32,
    /// Codec of the body.
    pub codec: Codec,
    /// Uncompressed body size.
    pub raw_len: u32,
}

/// One file (or other origin) that records in a batch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef<'a> {
    /// File path as the agent saw it.
    pub path: &'a str,
    /// Extra key/value metadata (e.g. `k8s.namespace`), in the order written.
    pub attrs: Vec<(&'a str, &'a str)>,
}

/// One line of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Index into [`Batch::sources`].
    pub source: u32,
    /// When the agent read the line, milliseconds since the Unix epoch.
    pub observed_ms: u64,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The line without its newline; not necessarily UTF-8.
    pub line: &'a [u8],
}

/// A parsed batch body, borrowing from the decompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Host name of the sending node.
    pub host: &'a str,
    /// Where the records came from.
    pub sources: Vec<SourceRef<'a>>,
    /// The lines, in the order read.
    pub records: Vec<Record<'a>>,
}

/// A decoded frame: its header and its decompressed body, ready for [`parse_body`].
#[derive(Debug)]
pub struct DecodedFrame {
    /// Header fields.
    pub header: BatchHeader,
    /// Decompressed body bytes.
    pub body: Vec<u8>,
}

impl DecodedFrame {
    /// Parses the body into records.
    pub fn batch(&self) -> Result<Batch<'_>, WireError> {
        parse_body(&self.body, self.header.record_count)
    }
}

/// Reads just the header of a frame, after checking the checksum, without decompressing.
pub fn decode_header<'a>(
    frame: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(BatchHeader, &'a [u8]), WireError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(WireError::TooLarge {
            what: "frame",
            size: frame.len(),
            limit: limits.max_frame_bytes,
        });
    }
    let need = FIXED_HEADER_LEN + TRAILER_LEN;
    if frame.len() < need {
        if frame.len() >= 4 && frame[..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        return Err(WireError::Truncated {
            need,
            have: frame.len(),
        });
    }
    if frame[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if frame[4] != VERSION {
        return Err(WireError::UnsupportedVersion(frame[4]));
    }
    let codec_id = frame[5];
    let flags = u16::from_be_bytes([frame[6], frame[7]]);
    let seq = u64::from_be_bytes(
        frame[8..16]
            .try_into()
            .map_err(|_| WireError::BadHeader("seq"))?,
    );
    let record_count = be_u32(&frame[16..20]);
    let raw_len = be_u32(&frame[20..24]);
    let body_len = be_u32(&frame[24..28]) as usize;
    let agent_len = frame[28] as usize;
    let stream_len = frame[29] as usize;
    let total = FIXED_HEADER_LEN + agent_len + stream_len + body_len + TRAILER_LEN;
    if frame.len() < total {
        return Err(WireError::Truncated {
            need: total,
            have: frame.len(),
        });
    }
    if frame.len() > total {
        return Err(WireError::TrailingBytes(frame.len() - total));
    }
    let (covered, trailer) = frame.split_at(total - TRAILER_LEN);
    if crc32fast::hash(covered) != be_u32(trailer) {
        return Err(WireError::Checksum);
    }
    if flags != 0 {
        return Err(WireError::UnsupportedFlags(flags));
    }
    let codec = Codec::from_id(codec_id).ok_or(WireError::UnknownCodec(codec_id))?;
    if raw_len as usize > limits.max_raw_bytes {
        return Err(WireError::TooLarge {
            what: "declared body",
            size: raw_len as usize,
            limit: limits.max_raw_bytes,
        });
    }
    let mut pos = FIXED_HEADER_LEN;
    let agent_id = id_str(&covered[pos..pos + agent_len], "agent id")?;
    pos += agent_len;
    let stream = id_str(&covered[pos..pos + stream_len], "stream id")?;
    pos += stream_len;
    let body = &covered[pos..];
    Ok((
        BatchHeader {
            agent_id,
            stream,
            seq,
            record_count,
            codec,
            raw_len,
        },
        body,
    ))
}

/// Checks and decompresses a frame. See the module docs for the order of checks.
pub fn decode_frame(frame: &[u8], limits: &DecodeLimits) -> Result<DecodedFrame, WireError> {
    let (header, packed) = decode_header(frame, limits)?;
    let mut body = Vec::new();
    codec::decompress_capped(header.codec, packed, header.raw_len as usize, &mut body)?;
    if body.len() != header.raw_len as usize {
        return Err(WireError::BadBody("body length differs from the header"));
    }
    Ok(DecodedFrame { header, body })
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn id_str(bytes: &[u8], what: &'static str) -> Result<String, WireError> {
    if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
        return Err(WireError::BadHeader(what));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(WireError::BadHeader(what)),
    }
}

/// Parses a decompressed body holding `record_count` records.
pub fn parse_body(body: &[u8], record_count: u32) -> Result<Batch<'_>, WireError> {
    let mut r = Reader { buf: body, pos: 0 };
    let host = r.str("host")?;
    let base_ms = r.varint()?;
    // Every record takes at least 4 bytes, so a count larger than that is a lie; checking
    // it first keeps the allocation below bounded by the body size.
    if record_count as usize > body.len() / 4 + 1 {
        return Err(WireError::BadBody(
            "record count larger than the body allows",
        ));
    }
    let mut records = Vec::with_capacity(record_count as usize);
    for _ in 0..record_count {
        let source = r.varint()?;
        let delta = r.varint()?;
        let flags = r.byte()?;
        if flags & !KNOWN_RECORD_FLAGS != 0 {
            return Err(WireError::BadBody("unknown record flags"));
        }
        let line = r.bytes()?;
        let source = u32::try_from(source).map_err(|_| WireError::BadBody("source index"))?;
        let observed_ms = base_ms
            .checked_add(delta)
            .ok_or(WireError::BadBody("timestamp overflow"))?;
        records.push(Record {
            source,
            observed_ms,
            flags,
            line,
        });
    }
    let source_count = r.varint()?;
    if source_count > (r.remaining() as u64) / 2 {
        return Err(WireError::BadBody(
            "source count larger than the body allows",
        ));
    }
    let mut sources = Vec::with_capacity(source_count as usize);
    for _ in 0..source_count {
        let path = r.str("source path")?;
        let attr_count = r.varint()?;
        if attr_count > (r.remaining() as u64) / 2 {
            return Err(WireError::BadBody(
                "attribute count larger than the body allows",
            ));
        }
        let mut attrs = Vec::with_capacity(attr_count as usize);
        for _ in 0..attr_count {
            attrs.push((r.str("attribute key")?, r.str("attribute value")?));
        }
        sources.push(SourceRef { path, attrs });
    }
    if r.remaining() != 0 {
        return Err(WireError::BadBody("trailing bytes after the source table"));
    }
    if records
        .iter()
        .any(|rec| rec.source as usize >= sources.len())
    {
        return Err(WireError::BadBody("record refers to a missing source"));
    }
    Ok(Batch {
        host,
        sources,
        records,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::BadBody("unexpected end of body"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(WireError::BadBody("varint overflows 64 bits"));
            }
            value |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::BadBody("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        if len > self.remaining() as u64 {
            return Err(WireError::BadBody("length runs past the end of the body"));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| WireError::BadBody(what))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Builds a batch body record by record, then seals it into a frame.
///
/// Records are appended straight into the body buffer (no per-line allocation); the source
/// table is written after the records when the frame is sealed.
#[derive(Debug)]
pub struct BatchBuilder {
    body: Vec<u8>,
    base_ms: u64,
    records: u32,
    sources: Vec<u8>,
    source_count: u32,
}

impl BatchBuilder {
    /// Starts a batch from `host`; `base_ms` is the observed time all record times are
    /// relative to (the first record's time, or earlier).
    pub fn new(host: &str, base_ms: u64, capacity: usize) -> BatchBuilder {
        BatchBuilder::with_buffer(Vec::new(), host, base_ms, capacity)
    }

    /// [`BatchBuilder::new`] writing into `buffer` (cleared first), such as the body a
    /// previous [`BatchBuilder::seal_with_body`] handed back: a sender that keeps it
    /// allocates (and the kernel zeroes) the body's memory once, not once per batch.
    pub fn with_buffer(
        mut buffer: Vec<u8>,
        host: &str,
        base_ms: u64,
        capacity: usize,
    ) -> BatchBuilder {
        buffer.clear();
        buffer.reserve(capacity);
        let mut body = buffer;
        put_bytes(&mut body, host.as_bytes());
        put_varint(&mut body, base_ms);
        BatchBuilder {
            body,
            base_ms,
            records: 0,
            sources: Vec::new(),
            source_count: 0,
        }
    }

    /// Adds a source and returns its index for [`BatchBuilder::push`].
    pub fn add_source(&mut self, path: &str, attrs: &[(&str, &str)]) -> u32 {
        put_bytes(&mut self.sources, path.as_bytes());
        put_varint(&mut self.sources, attrs.len() as u64);
        for (k, v) in attrs {
            put_bytes(&mut self.sources, k.as_bytes());
            put_bytes(&mut self.sources, v.as_bytes());
        }
        self.source_count += 1;
        self.source_count - 1
    }

    /// Appends one line. `observed_ms` earlier than the base is stored as the base.
    pub fn push(&mut self, source: u32, observed_ms: u64, flags: u8, line: &[u8]) {
        put_varint(&mut self.body, u64::from(source));
        put_varint(&mut self.body, observed_ms.saturating_sub(self.base_ms));
        self.body.push(flags & KNOWN_RECORD_FLAGS);
        put_bytes(&mut self.body, line);
        self.records += 1;
    }

    /// Records added so far.
    pub fn record_count(&self) -> u32 {
        self.records
    }

    /// Uncompressed bytes so far (records and header; the source table is small).
    pub fn raw_len(&self) -> usize {
        self.body.len() + self.sources.len()
    }

    /// True when no record has been added.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Completes the body and encodes the frame.
    pub fn seal(
        self,
        agent_id: &str,
        stream: &str,
        seq: u64,
        compressor: &mut codec::Compressor,
    ) -> std::io::Result<Vec<u8>> {
        self.seal_with_body(agent_id, stream, seq, compressor)
            .map(|(frame, _)| frame)
    }

    /// [`BatchBuilder::seal`], also handing back the uncompressed body (what
    /// [`parse_body`] reads), for a receiver that keeps it instead of decompressing the
    /// frame again.
    pub fn seal_with_body(
        mut self,
        agent_id: &str,
        stream: &str,
        seq: u64,
        compressor: &mut codec::Compressor,
    ) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
        put_varint(&mut self.body, u64::from(self.source_count));
        self.body.extend_from_slice(&self.sources);
        let frame = encode_frame(agent_id, stream, seq, self.records, &self.body, compressor)?;
        Ok((frame, self.body))
    }
}

/// Encodes a frame around an already built raw body.
pub fn encode_frame(
    agent_id: &str,
    stream: &str,
    seq: u64,
    record_count: u32,
    raw_body: &[u8],
    compressor: &mut codec::Compressor,
) -> std::io::Result<Vec<u8>> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
    if agent_id.is_empty() || agent_id.len() > MAX_ID_LEN {
        return Err(invalid("agent id must be 1..=128 bytes"));
    }
    if stream.is_empty() || stream.len() > MAX_ID_LEN {
        return Err(invalid("stream id must be 1..=128 bytes"));
    }
    let raw_len = u32::try_from(raw_body.len()).map_err(|_| invalid("body over 4 GiB"))?;
    let mut out = Vec::with_capacity(FIXED_HEADER_LEN + 256 + raw_body.len() / 4);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(compressor.codec().id());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(&raw_len.to_be_bytes());
    out.extend_from_slice(&[0u8; 4]); // body length, filled below
    out.push(agent_id.len() as u8);
    out.push(stream.len() as u8);
    out.extend_from_slice(agent_id.as_bytes());
    out.extend_from_slice(stream.as_bytes());
    let body_start = out.len();
    compressor.compress(raw_body, &mut out)?;
    let body_len =
        u32::try_from(out.len() - body_start).map_err(|_| invalid("compressed body over 4 GiB"))?;
    out[24..28].copy_from_slice(&body_len.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests;

mod fuzz;
#[doc(hidden)]
pub use fuzz::fuzz_decode;
