//! The http input's body decoder: a JSON object, a JSON array of objects, or NDJSON, cut
//! into records, each the object's own JSON text on one line. Pure: bytes in, records out.
//!
//! - `application/json`: the body is one object (one record) or an array of objects (one
//!   record each; an empty array is no record).
//! - `application/x-ndjson` (also `application/ndjson`, `application/jsonl`,
//!   `application/x-jsonl`, `application/jsonlines`, `application/x-jsonlines`): one
//!   object per line; blank lines are skipped, `\r\n` is fine.
//!
//! A record is written without the whitespace between JSON tokens (so an object spread
//! over lines becomes one line); everything else, key order included, is kept. The first
//! bad record stops decoding with its 1-based record number and line (and column where
//! the JSON parser knows it): the caller refuses the whole request.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How a body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// One JSON object or an array of them.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// The media types read as NDJSON.
pub const NDJSON_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
];

impl BodyKind {
    /// The kind for a `Content-Type` value (parameters such as `charset` are ignored), or
    /// `None` for a type this input does not read.
    pub fn from_content_type(value: &str) -> Option<BodyKind> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" {
            Some(BodyKind::Json)
        } else if NDJSON_TYPES.contains(&essence.as_str()) {
            Some(BodyKind::Ndjson)
        } else {
            None
        }
    }
}

/// The first bad record of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based record number (for a syntax error: the record being read).
    pub record: usize,
    /// 1-based line in the (decompressed) body.
    pub line: usize,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} (line {}", self.record, self.line)?;
        if let Some(c) = self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, "): {}", self.reason)
    }
}

/// Why [`records`] stopped.
#[derive(Debug)]
pub enum Stop<E> {
    /// A bad record.
    Bad(BadRecord),
    /// `emit` said stop.
    Emit(E),
}

/// Calls `emit` with each record's one-line JSON text, in order; returns how many there
/// were, or why it stopped: the first bad record, or `emit`'s error (records emitted
/// before are then to be discarded).
pub fn records<E>(
    kind: BodyKind,
    body: &[u8],
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, Stop<E>> {
    let mut line_buf = Vec::new();
    let mut emit_one = |raw: &str, record: usize, line: usize| {
        if !raw.starts_with('{') {
            return Err(Stop::Bad(BadRecord {
                record,
                line,
                column: None,
                reason: format!("a record must be a JSON object, not {}", kind_of(raw)),
            }));
        }
        compact(raw.as_bytes(), &mut line_buf);
        emit(&line_buf).map_err(Stop::Emit)
    };
    match kind {
        BodyKind::Json => {
            let first = body.iter().position(|b| !b.is_ascii_whitespace());
            if first.is_some_and(|i| body[i] == b'[') {
                let read = Cell::new(0usize);
                let mut de = serde_json::Deserializer::from_slice(body);
                let items = ArraySeed(&read)
                    .deserialize(&mut de)
                    .and_then(|items| de.end().map(|()| items))
                    .map_err(|e| Stop::Bad(syntax(&e, read.get() + 1)))?;
                for (i, raw) in items.iter().enumerate() {
                    emit_one(raw.get(), i + 1, line_of(body, raw.get()))?;
                }
                Ok(items.len())
            } else {
                let raw: &RawValue =
                    serde_json::from_slice(body).map_err(|e| Stop::Bad(syntax(&e, 1)))?;
                emit_one(raw.get(), 1, line_of(body, raw.get()))?;
                Ok(1)
            }
        }
        BodyKind::Ndjson => {
            let mut n = 0;
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                n += 1;
                let raw: &RawValue = serde_json::from_slice(line).map_err(|e| {
                    let mut bad = syntax(&e, n);
                    bad.line = i + 1;
                    Stop::Bad(bad)
                })?;
                emit_one(raw.get(), n, i + 1)?;
            }
            Ok(n)
        }
    }
}

/// A serde_json syntax error as the bad record `record`.
fn syntax(e: &serde_json::Error, record: usize) -> BadRecord {
    // serde_json's message ends with " at line L column C"; those are given apart.
    let text = e.to_string();
    let reason = match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    BadRecord {
        record,
        line: e.line().max(1),
        column: (e.column() > 0).then_some(e.column()),
        reason,
    }
}

/// The 1-based line of `part`, a slice of `body`.
fn line_of(body: &[u8], part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    let before = body.get(..offset).unwrap_or(body);
    1 + memchr::memchr_iter(b'\n', before).count()
}

fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Copies valid JSON `text` into `out` (cleared first) without the whitespace between
/// tokens; strings are copied as they are.
pub fn compact(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

/// Reads a JSON array into its elements' raw text, counting them in `self.0` as it goes
/// (so a syntax error can name the record it is in).
struct ArraySeed<'c>(&'c Cell<usize>);

impl<'de> DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArraySeed<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            out.push(v);
            self.0.set(out.len());
        }
        Ok(out)
    }
}
