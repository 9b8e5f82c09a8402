//! Syslog over a byte stream (TCP, TLS): splitting the stream into messages, sans I/O.
//!
//! Two framings exist (RFC 6587) and senders do not announce which they use, so the
//! framing is detected per message, as rsyslog's imtcp does:
//!
//! - **Octet counting**: `MSG-LEN SP SYSLOG-MSG`, where `MSG-LEN` is a decimal number
//!   without a leading zero. A message that starts with a digit `1`–`9` followed by at
//!   most 18 more digits and a space is read this way.
//! - **Non-transparent framing**: anything else is one message up to a line feed (a `\r`
//!   before the `\n` is removed). Empty lines are skipped.
//!
//! Limits, the same whatever the framing:
//!
//! - A message longer than `max_message_bytes` is cut to that length and flagged
//!   [`Message::truncated`]; the rest of it (up to the next `\n`, or the rest of the
//!   counted octets) is read and thrown away, so the stream stays in step.
//! - An octet count above [`Decoder::max_octet_count`] (16 × `max_message_bytes`) is not
//!   taken as a message length but as garbage: [`FramingError::OctetCountTooLarge`], after
//!   which the decoder yields nothing more and the connection should be closed.
//! - The decoder buffers at most `max_message_bytes` + 20 bytes of an incomplete message
//!   beyond what one [`Decoder::feed`] brings.
//!
//! The output does not depend on how the input is split into [`Decoder::feed`] calls; a
//! property test and the `syslog_framing` fuzz target ([`fuzz_check`], also run on stable
//! by `tests/fuzz_seeds.rs`) check it.

use memchr::memchr;

/// Octet counts above `max_message_bytes` times this are refused as garbage.
pub const OCTET_COUNT_FACTOR: u64 = 16;
/// Most digits in an octet count (`u64` holds 19); a longer run of digits starts a line.
const MAX_COUNT_DIGITS: usize = 19;

/// How a message was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `LEN SP MSG`.
    OctetCounting,
    /// `MSG LF`.
    LineFeed,
}

/// One message cut from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message, without its octet count or line feed.
    pub bytes: &'a [u8],
    /// Longer than the limit and cut to it.
    pub truncated: bool,
    /// The stream ended (or the connection is being closed) inside the message.
    pub incomplete: bool,
    /// How it was framed.
    pub framing: Framing,
}

/// A stream that cannot be read on: the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// An octet count far above the message limit: not a syslog stream, or a hostile one.
    #[error("octet count {count} exceeds the limit of {limit} bytes")]
    OctetCountTooLarge {
        /// The count read.
        count: u64,
        /// [`Decoder::max_octet_count`].
        limit: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a message boundary (or inside a message whose bytes are still arriving).
    Start,
    /// Throwing away the rest of an over-long line, up to and including its `\n`.
    SkipLine,
    /// Throwing away this many more octets of an over-long counted message.
    SkipOctets(u64),
    /// A framing error was reported; nothing more is decoded.
    Failed,
}

/// The start of an octet-counted frame, if the bytes at a message boundary are one.
enum Header {
    /// `len` octets follow a header of `header_len` bytes (digits and the space).
    Counted { len: u64, header_len: usize },
    /// Only digits so far: wait for more bytes.
    NeedMore,
    /// Not octet counting: a line.
    Line,
}

fn octet_header(rest: &[u8]) -> Header {
    if !matches!(rest.first(), Some(b'1'..=b'9')) {
        return Header::Line;
    }
    let mut len: u64 = 0;
    for (i, &b) in rest.iter().enumerate().take(MAX_COUNT_DIGITS + 1) {
        match b {
            b'0'..=b'9' if i < MAX_COUNT_DIGITS => {
                len = len.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            }
            b' ' => {
                return Header::Counted {
                    len,
                    header_len: i + 1,
                }
            }
            _ => return Header::Line,
        }
    }
    Header::NeedMore
}

/// Splits a byte stream into syslog messages. Feed bytes with [`Decoder::feed`], then
/// take messages with [`Decoder::next_message`] until it returns `None`; at the end of the
/// stream, [`Decoder::finish`] returns what is left as an incomplete message.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    buf: Vec<u8>,
    pos: usize,
    state: State,
}

impl Decoder {
    /// A decoder for messages of at most `max_message_bytes` (at least 1).
    pub fn new(max_message_bytes: usize) -> Decoder {
        Decoder {
            max_message: max_message_bytes.max(1),
            buf: Vec::new(),
            pos: 0,
            state: State::Start,
        }
    }

    /// The largest octet count taken as a message length (longer messages up to it are
    /// truncated, larger counts are a [`FramingError`]).
    pub fn max_octet_count(&self) -> u64 {
        self.max_message as u64 * OCTET_COUNT_FACTOR
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        match self.state {
            State::Failed => {}
            // Bytes being skipped need not be kept: consume what can be consumed now.
            State::SkipOctets(n) if self.buf.is_empty() => {
                let take = data.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                self.state = if take as u64 == n {
                    State::Start
                } else {
                    State::SkipOctets(n - take as u64)
                };
                self.buf.extend_from_slice(&data[take..]);
            }
            _ => self.buf.extend_from_slice(data),
        }
    }

    /// Bytes held that do not yet make a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when part of a message has been read and the rest has not.
    pub fn in_message(&self) -> bool {
        match self.state {
            State::Start => self.buffered() > 0,
            State::SkipLine | State::SkipOctets(_) => true,
            State::Failed => false,
        }
    }

    /// The next complete message, a framing error (after which this returns `None`), or
    /// `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Option<Result<Message<'_>, FramingError>> {
        loop {
            let (start, mut end, truncated, framing) = match self.next_range()? {
                Ok(range) => range,
                Err(e) => return Some(Err(e)),
            };
            if !truncated {
                end = start + trim_line_end(&self.buf[start..end], framing).len();
                if end == start {
                    // Empty messages (blank lines, `1 \n`) are skipped.
                    continue;
                }
            }
            return Some(Ok(Message {
                bytes: &self.buf[start..end],
                truncated,
                incomplete: false,
                framing,
            }));
        }
    }

    /// The byte range of the next message in `buf`, and how it was framed.
    #[allow(clippy::type_complexity)]
    fn next_range(&mut self) -> Option<Result<(usize, usize, bool, Framing), FramingError>> {
        loop {
            match self.state {
                State::Failed => return None,
                State::SkipOctets(n) => {
                    let avail = (self.buf.len() - self.pos) as u64;
                    let take = avail.min(n);
                    self.pos += take as usize;
                    if take < n {
                        self.state = State::SkipOctets(n - take);
                        return None;
                    }
                    self.state = State::Start;
                }
                State::SkipLine => match memchr(b'\n', &self.buf[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = State::Start;
                    }
                    None => {
                        self.pos = self.buf.len();
                        return None;
                    }
                },
                State::Start => {
                    let rest = &self.buf[self.pos..];
                    if rest.is_empty() {
                        return None;
                    }
                    match octet_header(rest) {
                        Header::NeedMore => return None,
                        Header::Counted { len, header_len } => {
                            if len > self.max_octet_count() {
                                self.state = State::Failed;
                                self.buf.clear();
                                self.pos = 0;
                                return Some(Err(FramingError::OctetCountTooLarge {
                                    count: len,
                                    limit: self.max_octet_count(),
                                }));
                            }
                            let keep = len.min(self.max_message as u64) as usize;
                            if rest.len() < header_len + keep {
                                return None;
                            }
                            let start = self.pos + header_len;
                            self.pos = start + keep;
                            let truncated = len > keep as u64;
                            if truncated {
                                self.state = State::SkipOctets(len - keep as u64);
                            }
                            return Some(Ok((
                                start,
                                start + keep,
                                truncated,
                                Framing::OctetCounting,
                            )));
                        }
                        Header::Line => match memchr(b'\n', rest) {
                            Some(0) => self.pos += 1,
                            Some(i) if i <= self.max_message => {
                                let start = self.pos;
                                self.pos += i + 1;
                                return Some(Ok((start, start + i, false, Framing::LineFeed)));
                            }
                            Some(i) => {
                                let start = self.pos;
                                self.pos += i + 1;
                                return Some(Ok((
                                    start,
                                    start + self.max_message,
                                    true,
                                    Framing::LineFeed,
                                )));
                            }
                            None if rest.len() > self.max_message => {
                                let start = self.pos;
                                self.pos = self.buf.len();
                                self.state = State::SkipLine;
                                return Some(Ok((
                                    start,
                                    start + self.max_message,
                                    true,
                                    Framing::LineFeed,
                                )));
                            }
                            None => return None,
                        },
                    }
                }
            }
        }
    }

    /// At the end of the stream: the bytes of a message that never completed, if any
    /// (an octet count is removed when its space was read). The decoder is empty after.
    pub fn finish(&mut self) -> Option<Message<'_>> {
        let state = std::mem::replace(&mut self.state, State::Start);
        let rest_start = self.pos;
        self.pos = self.buf.len();
        if state != State::Start || rest_start == self.buf.len() {
            return None;
        }
        let rest = &self.buf[rest_start..];
        let (bytes, framing) = match octet_header(rest) {
            Header::Counted { header_len, .. } => (&rest[header_len..], Framing::OctetCounting),
            _ => (rest, Framing::LineFeed),
        };
        let bytes = trim_line_end(bytes, framing);
        if bytes.is_empty() {
            return None;
        }
        let truncated = bytes.len() > self.max_message;
        Some(Message {
            bytes: &bytes[..bytes.len().min(self.max_message)],
            truncated,
            incomplete: true,
            framing,
        })
    }
}

/// Removes the `\r` of a CRLF line; a counted message also loses one trailing `\n` (some
/// senders count the line feed they append).
fn trim_line_end(bytes: &[u8], framing: Framing) -> &[u8] {
    let bytes = match framing {
        Framing::OctetCounting => bytes.strip_suffix(b"\n").unwrap_or(bytes),
        Framing::LineFeed => bytes,
    };
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// What decoding `data` fed in the given pieces yields: (message, truncated) pairs, then
/// `Err` if a framing error stopped it, then what [`Decoder::finish`] gives. The entry
/// point of the fuzz target and the property tests; it must never panic.
#[doc(hidden)]
pub fn decode_all(max_message: usize, pieces: &[&[u8]]) -> Vec<Result<(Vec<u8>, bool), ()>> {
    let mut d = Decoder::new(max_message);
    let mut out = Vec::new();
    for piece in pieces {
        d.feed(piece);
        while let Some(m) = d.next_message() {
            match m {
                Ok(m) => out.push(Ok((m.bytes.to_vec(), m.truncated))),
                Err(_) => out.push(Err(())),
            }
        }
        assert!(
            d.buffered() <= max_message.max(1) + MAX_COUNT_DIGITS + 1,
            "decoder holds {} bytes",
            d.buffered()
        );
    }
    if let Some(m) = d.finish() {
        out.push(Ok((m.bytes.to_vec(), m.truncated)));
    }
    out
}

/// The `syslog_framing` fuzz target's check (also run on stable over its seeds and
/// mutations of them by `tests/fuzz_seeds.rs`). Byte 0 picks the message limit
/// (1..=256), byte 1 the piece length (1..=256); the rest is the stream. It panics if
/// decoding the stream whole and in pieces differ, if the decoder's buffer outgrows its
/// bound, if a message is empty or over the limit, if a line-framed message holds a line
/// feed, or if anything follows a framing error.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let [max, piece, stream @ ..] = data else {
        return;
    };
    let max = usize::from(*max) + 1;
    let piece = usize::from(*piece) + 1;
    let whole = decode_all(max, &[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(piece).collect();
    assert_eq!(
        decode_all(max, &pieces),
        whole,
        "split into pieces of {piece}"
    );
    if let Some(i) = whole.iter().position(Result::is_err) {
        assert_eq!(i + 1, whole.len(), "messages after a framing error");
    }
    let mut d = Decoder::new(max);
    d.feed(stream);
    let mut seen = 0;
    while let Some(m) = d.next_message() {
        let Ok(m) = m else { break };
        assert!(
            !m.bytes.is_empty() && m.bytes.len() <= max,
            "message of {}",
            m.bytes.len()
        );
        assert!(m.framing == Framing::OctetCounting || !m.bytes.contains(&b'\n'));
        assert_eq!(whole.get(seen), Some(&Ok((m.bytes.to_vec(), m.truncated))));
        seen += 1;
    }
    if let Some(m) = d.finish() {
        assert!(m.incomplete && !m.bytes.is_empty() && m.bytes.len() <= max);
        assert!(m.framing == Framing::OctetCounting || !m.bytes.contains(&b'\n'));
        seen += 1;
    }
    let errors = whole.iter().filter(|m| m.is_err()).count();
    assert_eq!(seen + errors, whole.len());
}
