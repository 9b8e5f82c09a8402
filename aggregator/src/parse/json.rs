//! JSON lines: one JSON object per line, as written by pino, bunyan, zap, logrus, slog's
//! `JSONHandler`, Serilog, ECS loggers, Docker's `json-file` driver, python-json-logger,
//! GELF senders and most structured loggers.
//!
//! A line is claimed when, after leading and trailing JSON whitespace, it is exactly one
//! JSON object. Invalid JSON, anything that is not an object (arrays, strings, numbers),
//! and trailing text after the object give `None`. Nested values are skipped by
//! serde_json without recursion, so any depth is fine.
//!
//! # What is extracted
//!
//! Top-level keys are matched without regard to ASCII case. For each role the first key in
//! the list below that is present *and usable* wins (a `time` that is not a time leaves
//! `ts` a chance, and stays a field):
//!
//! | role | keys, in priority order | usable values |
//! |---|---|---|
//! | timestamp | `time`, `ts`, `timestamp`, `@timestamp`, `datetime`, `date`, `t`, `@t` (Serilog CLEF), `asctime` (python) | RFC 3339 / ISO string ([`time::rfc3339`], zoneless ones in [`ParseContext::zone`]); epoch number or numeric string in s/ms/µs/ns ([`time::epoch_int`], [`time::epoch`]), at least 10⁸ (1973) |
//! | level | `level`, `severity`, `lvl`, `log.level` (flat ECS key), `loglevel`, `levelname`, `severity_text`, `@l` (CLEF) | a level word ([`level::from_word`]); a bunyan/pino number, also as a string ([`level::from_number`]) |
//! | level | `log` holding an object with a `level` member (nested ECS, `{"log":{"level":"info"}}`); same rank as `log.level` | as above |
//! | message | `msg`, `message`, `log` (Docker), `text`, `event` (structlog), `@m`, `@mt` (CLEF), `RenderedMessage`, `MessageTemplate` (Serilog `JsonFormatter`), `short_message` (GELF) | a string |
//!
//! Special cases: a Serilog CLEF event (message from `@m`/`@mt`) without a level is `info`,
//! as CLEF omits `@l` for Information; a GELF event (message from `short_message`) reads an
//! integer `level` 0–7 as a syslog severity. A trailing `\n` / `\r\n` is cut from the
//! message (Docker's `json-file` keeps the newline in `log`).
//!
//! The keys that supplied timestamp, level and message are removed from the fields; for the
//! nested ECS form only the `level` member is removed from the `log` object (the field is
//! dropped if nothing else is left in it). **If no message key is found, the message is the
//! whole (trimmed) line and every key is kept as a field**, though timestamp and level are
//! still read.
//!
//! Every other top-level key becomes a field, in line order:
//!
//! | JSON | [`Value`] |
//! |---|---|
//! | string | `Str`, borrowed from the line when it has no escapes |
//! | integer fitting `i64` | `Int` |
//! | other number | `Float`; integers beyond `i64` and numbers that overflow `f64` stay exact as `Str` of their digits |
//! | `true` / `false` | `Bool` |
//! | `null` | `Null` |
//! | object / array | `Json`, the raw text borrowed from the line |
//!
//! Duplicate keys: the last value wins, at the position of the first occurrence.
//!
//! # Performance and design
//!
//! The target is well over a million ~200-byte lines per second per core. A serde_json
//! map visitor over `&RawValue`s (zero-copy, the first version of this parser) spent
//! about half its time in serde's per-token machinery, so the top level is scanned here
//! by [`scan_object`]: strings eight bytes at a time, numbers and literals by hand, with
//! exactly JSON's grammar. serde_json still does what it is best at: nested objects and
//! arrays are validated and skipped by it as one `&RawValue` (iteratively, so any depth is
//! fine), and strings with escapes are decoded by it. A differential property test checks
//! the scanner against serde_json on random and mutated objects: same verdict, same
//! members, same values.
//!
//! Role keys are found with a perfect hash ([`roles`]); duplicate keys are detected with
//! a 64-bit filter before any search ([`Fields`]). Keys and strings without escapes are
//! borrowed; per line there is one allocation (the field vector), none per field.
//! Measured in an optimised build on a shared machine: about 6,400 instructions and
//! ~1.4 M lines/s for a 210-byte, 9-key line (zap/slog style), ~1.6 M lines/s over the
//! corpus; other formats are refused in ~25 ns.
//!
//! # Not handled
//!
//! Dotted paths other than `log.level` (`{"event":{"created":...}}` is a plain `Json`
//! field), message templates (`@mt` is not rendered), multi-line JSON (one line, one
//! object), and JSON embedded after a text prefix (`2026-... {"a":1}`).
//!
//! The key lists ([`TIME_KEYS`], [`LEVEL_KEYS`], [`MESSAGE_KEYS`]) and the `pub(crate)`
//! helpers here ([`roles`], [`timestamp_of`], [`level_of`], [`Fields`]) are shared with the
//! logfmt and syslog parsers.

use std::borrow::Cow;
use std::collections::HashMap;

use logferry_shared::event::{Level, Timestamp};
use serde_json::value::RawValue;

use super::{level, time, ParseContext, Parsed, Parser, Value, Zone};

/// Parser for JSON-object lines. See the [module docs](self).
pub struct JsonParser;

/// Timestamp keys, in priority order (matched ignoring ASCII case).
pub const TIME_KEYS: &[&str] = &[
    "time",
    "ts",
    "timestamp",
    "@timestamp",
    "datetime",
    "date",
    "t",
    "@t",
    "asctime",
];
/// Level keys, in priority order (matched ignoring ASCII case).
pub const LEVEL_KEYS: &[&str] = &[
    "level",
    "severity",
    "lvl",
    "log.level",
    "loglevel",
    "levelname",
    "severity_text",
    "@l",
];
/// Message keys, in priority order (matched ignoring ASCII case).
pub const MESSAGE_KEYS: &[&str] = &[
    "msg",
    "message",
    "log",
    "text",
    "event",
    "@m",
    "@mt",
    "renderedmessage",
    "messagetemplate",
    "short_message",
];

/// Rank of the nested ECS `{"log":{"level":..}}`: that of `log.level`.
const ECS_LEVEL_RANK: u8 = 3;
/// Ranks of `@m` and `@mt` in [`MESSAGE_KEYS`] (Serilog CLEF: no level means info).
const CLEF_MESSAGE_RANKS: [u8; 2] = [5, 6];
/// Rank of `short_message` in [`MESSAGE_KEYS`] (GELF: `level` is a syslog severity).
const GELF_MESSAGE_RANK: u8 = 9;

/// Position of `key` in `keys`, ignoring ASCII case.
pub fn rank(keys: &[&str], key: &str) -> Option<u8> {
    keys.iter()
        .position(|k| k.eq_ignore_ascii_case(key))
        .map(|p| p as u8)
}

/// Every role key with its ranks in ([`TIME_KEYS`], [`LEVEL_KEYS`], [`MESSAGE_KEYS`]);
/// [`NO_ROLE`] where it is not in a list.
const ROLE_KEYS: [(&str, [u8; 3]); 27] = {
    const N: u8 = NO_ROLE;
    [
        ("time", [0, N, N]),
        ("ts", [1, N, N]),
        ("timestamp", [2, N, N]),
        ("@timestamp", [3, N, N]),
        ("datetime", [4, N, N]),
        ("date", [5, N, N]),
        ("t", [6, N, N]),
        ("@t", [7, N, N]),
        ("asctime", [8, N, N]),
        ("level", [N, 0, N]),
        ("severity", [N, 1, N]),
        ("lvl", [N, 2, N]),
        ("log.level", [N, 3, N]),
        ("loglevel", [N, 4, N]),
        ("levelname", [N, 5, N]),
        ("severity_text", [N, 6, N]),
        ("@l", [N, 7, N]),
        ("msg", [N, N, 0]),
        ("message", [N, N, 1]),
        ("log", [N, N, 2]),
        ("text", [N, N, 3]),
        ("event", [N, N, 4]),
        ("@m", [N, N, 5]),
        ("@mt", [N, N, 6]),
        ("renderedmessage", [N, N, 7]),
        ("messagetemplate", [N, N, 8]),
        ("short_message", [N, N, 9]),
    ]
};
const NO_ROLE: u8 = u8::MAX;

/// A hash of a key's length and its first, second and last bytes (lowercased) into
/// 0..256. The multipliers were chosen so that the 27 role keys land in distinct slots
/// (checked when [`ROLE_SLOTS`] is built, at compile time).
const fn slot(len: usize, first: u8, second: u8, last: u8) -> usize {
    let x =
        (len as u32 & 0xff) * 127 + first as u32 * 195 + second as u32 * 116 + last as u32 * 121;
    (x.wrapping_mul(0x9E37_79B1) >> 24) as usize
}

/// For each hash slot, 1 + the index of the role key there, or 0.
const ROLE_SLOTS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < ROLE_KEYS.len() {
        let k = ROLE_KEYS[i].0.as_bytes();
        let second = if k.len() > 1 { k[1] } else { k[0] };
        let s = slot(k.len(), k[0], second, k[k.len() - 1]);
        assert!(
            t[s] == 0,
            "role keys collide: pick other multipliers in `slot`"
        );
        t[s] = i as u8 + 1;
        i += 1;
    }
    t
};

/// The ranks of `key` in [`TIME_KEYS`], [`LEVEL_KEYS`] and [`MESSAGE_KEYS`] in one
/// lookup (the same answer as three [`rank`] calls, which a test checks): this is the
/// hot path, run for every key of every line, so it is a hash probe and one compare.
pub(crate) fn roles(key: &str) -> (Option<u8>, Option<u8>, Option<u8>) {
    let b = key.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return (None, None, None);
    };
    let first = first.to_ascii_lowercase();
    let second = b.get(1).map_or(first, u8::to_ascii_lowercase);
    let at = usize::from(ROLE_SLOTS[slot(b.len(), first, second, last.to_ascii_lowercase())]);
    match ROLE_KEYS.get(at.wrapping_sub(1)) {
        // The names are lowercase; a plain loop beats `eq_ignore_ascii_case` at this size.
        Some((name, [t, l, m]))
            if name.len() == b.len()
                && name
                    .bytes()
                    .zip(b)
                    .all(|(n, c)| n == c.to_ascii_lowercase()) =>
        {
            let some = |r: u8| (r != NO_ROLE).then_some(r);
            (some(*t), some(*l), some(*m))
        }
        _ => (None, None, None),
    }
}

/// `s` without the ASCII bytes `ws` accepts at either end (cheaper than `trim_matches`,
/// which decodes characters).
pub(crate) fn trim_bytes(s: &str, ws: impl Fn(u8) -> bool) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && ws(b[start]) {
        start += 1;
    }
    while end > start && ws(b[end - 1]) {
        end -= 1;
    }
    // `ws` only accepts ASCII, so both ends are character boundaries.
    s.get(start..end).unwrap_or(s)
}

/// Whether `b` holds a backslash: eight bytes at a time, as strings are mostly short and
/// `<[u8]>::contains` costs more to set up than to run on them.
pub(crate) fn has_backslash(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const BS: u64 = LO * b'\\' as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w) ^ BS;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return true;
        }
    }
    chunks.remainder().contains(&b'\\')
}

impl Parser for JsonParser {
    fn name(&self) -> &'static str {
        "json"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        let body = trim_bytes(line, is_json_ws);
        // Cheap rejection of other formats before any scanning.
        if !(body.starts_with('{') && body.ends_with('}')) {
            return None;
        }
        let mut c = Collected {
            fields: Fields::with_capacity(16),
            time: None,
            level: None,
            message: None,
        };
        scan_object(body, |key, value, text| c.add(key, value, text, &ctx.zone))?;
        Some(c.finish(body))
    }
}

fn is_json_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Skips JSON whitespace from `i`.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_json_ws(b[i]) {
        i += 1;
    }
    i
}

/// Scans `s`, which must be exactly one JSON object (surrounding whitespace allowed),
/// calling `f(key, value, text)` for each member in order, `text` being the value's JSON
/// text. `None` when `s` is not valid JSON (RFC 8259, as serde_json reads it).
///
/// The top level is scanned here (eight bytes at a time inside strings); nested objects
/// and arrays are validated and skipped by serde_json as a `&RawValue`, and strings with
/// escapes are decoded by serde_json. Every slice boundary is at an ASCII byte.
pub(crate) fn scan_object<'a>(
    s: &'a str,
    mut f: impl FnMut(Cow<'a, str>, Value<'a>, &'a str),
) -> Option<()> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = scan_string(b, i + 1)?;
        let key = if escaped {
            // Keys must decode (a lone surrogate fails, as in serde_json).
            Cow::Owned(serde_json::from_str::<String>(s.get(i..=end)?).ok()?)
        } else {
            Cow::Borrowed(s.get(i + 1..end)?)
        };
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let start = i;
        let value = match *b.get(i)? {
            b'"' => {
                let (end, escaped) = scan_string(b, i + 1)?;
                i = end + 1;
                Value::Str(if escaped {
                    decode_str(s.get(start..i)?)
                } else {
                    Cow::Borrowed(s.get(start + 1..end)?)
                })
            }
            b'{' | b'[' => {
                let mut de = serde_json::Deserializer::from_str(s.get(i..)?);
                let raw = <&RawValue as serde::Deserialize>::deserialize(&mut de).ok()?;
                i += raw.get().len();
                Value::Json(Cow::Borrowed(s.get(start..i)?))
            }
            b't' if b.get(i..i + 4) == Some(b"true") => {
                i += 4;
                Value::Bool(true)
            }
            b'f' if b.get(i..i + 5) == Some(b"false") => {
                i += 5;
                Value::Bool(false)
            }
            b'n' if b.get(i..i + 4) == Some(b"null") => {
                i += 4;
                Value::Null
            }
            b'-' | b'0'..=b'9' => {
                i = scan_number(b, i)?;
                number(s.get(start..i)?)
            }
            _ => return None,
        };
        f(key, value, s.get(start..i)?);
        i = skip_ws(b, i);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

/// From just after an opening quote: the index of the closing quote and whether escapes
/// came before it. `None` for an unterminated string, a raw control character or a bad
/// escape.
fn scan_string(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut escaped = false;
    loop {
        // Skip eight bytes at a time while none is `"`, `\` or below 0x20.
        while let Some(chunk) = b.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let x = u64::from_le_bytes(w);
            let quote = x ^ (LO * u64::from(b'"'));
            let slash = x ^ (LO * u64::from(b'\\'));
            let special = (quote.wrapping_sub(LO) & !quote)
                | (slash.wrapping_sub(LO) & !slash)
                | (x.wrapping_sub(LO * 0x20) & !x);
            let hits = special & HI;
            if hits != 0 {
                // The lowest flagged byte is always a real hit: go straight to it.
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                };
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// A JSON number from `i`: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?;
/// the index after it.
fn scan_number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i > s).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

/// Fields with unique keys: a later value for a key replaces the earlier one in place.
/// Small sets are searched linearly; past [`Fields::INDEX_AT`] entries a hash index is
/// kept so pathological lines with thousands of keys stay linear.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    /// The fields, in order.
    pub list: Vec<(Cow<'a, str>, Value<'a>)>,
    /// One bit per (length, last byte) class of the keys so far: a key whose bit is clear
    /// is certainly new, so the common line with distinct keys never searches.
    seen: u64,
    index: Option<HashMap<Cow<'a, str>, usize>>,
}

impl<'a> Fields<'a> {
    const INDEX_AT: usize = 24;

    /// With room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Fields {
            list: Vec::with_capacity(n),
            seen: 0,
            index: None,
        }
    }

    fn class(key: &str) -> u64 {
        let b = key.as_bytes();
        let h = b.len().wrapping_mul(7) + usize::from(b.last().copied().unwrap_or(0));
        1 << (h & 63)
    }

    /// Adds a field, or replaces the value of the field with the same key. Returns its
    /// index and whether it replaced an earlier value.
    pub fn put(&mut self, key: Cow<'a, str>, value: Value<'a>) -> (usize, bool) {
        let class = Self::class(&key);
        let found = match &self.index {
            Some(ix) => ix.get(key.as_ref()).copied(),
            None if self.seen & class == 0 => None,
            None => self.list.iter().position(|(k, _)| *k == key),
        };
        self.seen |= class;
        if let Some(i) = found {
            self.list[i].1 = value;
            return (i, true);
        }
        let i = self.list.len();
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), i);
        } else if i + 1 >= Self::INDEX_AT {
            let mut ix: HashMap<Cow<'a, str>, usize> = self
                .list
                .iter()
                .enumerate()
                .map(|(n, (k, _))| (k.clone(), n))
                .collect();
            ix.insert(key.clone(), i);
            self.index = Some(ix);
        }
        self.list.push((key, value));
        (i, false)
    }

    /// Removes the fields at `indices` (any order; out-of-range ones are ignored) and
    /// returns the rest, in one pass. Consumes the set: the index is not maintained across removals.
    pub fn remove_all(self, indices: &[usize]) -> Vec<(Cow<'a, str>, Value<'a>)> {
        let mut list = self.list;
        let mut i = 0;
        list.retain(|_| {
            let keep = !indices.contains(&i);
            i += 1;
            keep
        });
        list
    }
}

/// A timestamp from a field value: an RFC 3339 / ISO string, or an epoch number (or
/// numeric string) in seconds, milliseconds, microseconds or nanoseconds. Epoch values
/// below 10⁸ (i.e. before 1973 in seconds) are refused: they are counters, not times.
/// `number_text` is the number as written, for `Float`s: `1795341600.123456` is read
/// exactly from its digits rather than through `f64` (which has only ~0.2 µs resolution
/// at that magnitude).
pub(crate) fn timestamp_of(value: &Value<'_>, number_text: &str, zone: &Zone) -> Option<Timestamp> {
    match value {
        Value::Str(s) => timestamp_of_str(s, zone),
        Value::Int(i) => epoch_int(*i),
        Value::Float(f) => epoch_decimal(number_text).or_else(|| epoch_float(*f)),
        _ => None,
    }
}

/// [`timestamp_of`] for a string.
pub(crate) fn timestamp_of_str(s: &str, zone: &Zone) -> Option<Timestamp> {
    let first = *s.as_bytes().first()?;
    if !first.is_ascii_digit() {
        return None;
    }
    if let Some(t) = time::rfc3339(s, zone) {
        return Some(t);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return epoch_int(s.parse().ok()?);
    }
    epoch_decimal(s)
}

fn epoch_int(i: i64) -> Option<Timestamp> {
    if i < 100_000_000 {
        return None;
    }
    time::epoch_int(i)
}

fn epoch_float(f: f64) -> Option<Timestamp> {
    if f.is_nan() || f < 1e8 {
        return None;
    }
    time::epoch(f)
}

/// `digits.digits` read exactly, in the unit [`time::epoch`] picks by magnitude.
fn epoch_decimal(s: &str) -> Option<Timestamp> {
    let (int, frac) = s.split_once('.')?;
    if int.is_empty()
        || frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    if whole < 100_000_000 {
        return None;
    }
    // Nanoseconds per unit of `whole`, by the same magnitudes as `time::epoch`.
    let (unit, digits) = if whole < 100_000_000_000 {
        (1_000_000_000i64, 9)
    } else if whole < 100_000_000_000_000 {
        (1_000_000, 6)
    } else if whole < 100_000_000_000_000_000 {
        (1_000, 3)
    } else {
        (1, 0)
    };
    let mut part = 0i64;
    for (n, c) in frac.bytes().take(digits).enumerate() {
        part += i64::from(c - b'0') * 10i64.pow((digits - 1 - n) as u32);
    }
    whole.checked_mul(unit)?.checked_add(part).map(Timestamp)
}

/// A level from a field value: a level word (and log15's `dbug`), or a bunyan/pino
/// number (also as a string).
pub(crate) fn level_of(value: &Value<'_>) -> Option<Level> {
    match value {
        Value::Str(s) => level::from_word(s).or_else(|| {
            if s.eq_ignore_ascii_case("dbug") {
                // log15 / go-ethereum (`lvl=dbug`), missing from `level::from_word`.
                Some(Level::Debug)
            } else if !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()) {
                level::from_number(s.parse().ok()?)
            } else {
                None
            }
        }),
        Value::Int(i) => level::from_number(*i),
        _ => None,
    }
}

/// Cuts one trailing `\n` or `\r\n` (Docker keeps the newline in `log`).
pub(crate) fn trim_newline(s: Cow<'_, str>) -> Cow<'_, str> {
    let n = if s.ends_with("\r\n") {
        2
    } else if s.ends_with('\n') {
        1
    } else {
        return s;
    };
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..b.len() - n]),
        Cow::Owned(mut o) => {
            o.truncate(o.len() - n);
            Cow::Owned(o)
        }
    }
}

/// A JSON string literal with escapes (quotes included, already validated), decoded.
fn decode_str(lit: &str) -> Cow<'_, str> {
    match serde_json::from_str::<String>(lit) {
        Ok(s) => Cow::Owned(s),
        // Lone surrogate escapes (`"\ud800"`) are valid JSON but not text: keep them as
        // written, as serde_json's own `RawValue` would.
        Err(_) => Cow::Borrowed(
            lit.strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(lit),
        ),
    }
}

/// A JSON number's text as `Int`, `Float`, or (when it fits neither exactly) `Str`.
fn number(s: &str) -> Value<'_> {
    let integral = !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integral {
        return match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(Cow::Borrowed(s)),
        };
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::Float(f),
        _ => Value::Str(Cow::Borrowed(s)),
    }
}

struct Pick<T> {
    rank: u8,
    idx: usize,
    val: T,
}

struct LevelPick {
    rank: u8,
    idx: usize,
    level: Level,
    /// For the nested ECS form: the `log` object without `level` (`None`: nothing left).
    ecs_rest: Option<Option<String>>,
}

/// Better (lower) rank, or the same key again (a duplicate: last wins).
fn takes<T>(current: &Option<Pick<T>>, rank: u8) -> bool {
    current.as_ref().is_none_or(|p| rank <= p.rank)
}

struct Collected<'a> {
    fields: Fields<'a>,
    time: Option<Pick<Timestamp>>,
    level: Option<LevelPick>,
    message: Option<Pick<()>>,
}

impl<'a> Collected<'a> {
    fn add(&mut self, key: Cow<'a, str>, value: Value<'a>, text: &'a str, zone: &Zone) {
        let (time_rank, level_rank, message_rank) = roles(&key);
        let (idx, replaced) = self.fields.put(key, value);
        if replaced {
            // The earlier value under this key is gone: forget any role it had.
            if self.time.as_ref().is_some_and(|p| p.idx == idx) {
                self.time = None;
            }
            if self.level.as_ref().is_some_and(|p| p.idx == idx) {
                self.level = None;
            }
            if self.message.as_ref().is_some_and(|p| p.idx == idx) {
                self.message = None;
            }
        }
        let value = &self.fields.list[idx].1;
        if let Some(r) = time_rank {
            if takes(&self.time, r) {
                if let Some(t) = timestamp_of(value, text, zone) {
                    self.time = Some(Pick {
                        rank: r,
                        idx,
                        val: t,
                    });
                }
            }
        }
        if let Some(r) = level_rank {
            if self.level.as_ref().is_none_or(|p| r <= p.rank) {
                if let Some(l) = level_of(value) {
                    self.level = Some(LevelPick {
                        rank: r,
                        idx,
                        level: l,
                        ecs_rest: None,
                    });
                }
            }
        }
        if let Some(r) = message_rank {
            match value {
                Value::Str(_) if takes(&self.message, r) => {
                    self.message = Some(Pick {
                        rank: r,
                        idx,
                        val: (),
                    });
                }
                Value::Json(raw)
                    if r == 2
                        && raw.starts_with('{')
                        && self.level.as_ref().is_none_or(|p| ECS_LEVEL_RANK <= p.rank) =>
                {
                    if let Some((l, rest)) = ecs_level(raw) {
                        self.level = Some(LevelPick {
                            rank: ECS_LEVEL_RANK,
                            idx,
                            level: l,
                            ecs_rest: Some(rest),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    fn finish(self, body: &'a str) -> Parsed<'a> {
        let Collected {
            mut fields,
            time,
            mut level,
            message,
        } = self;
        let Some(message) = message else {
            // No message: the whole line is the message and every key stays a field.
            return Parsed {
                timestamp: time.map(|p| p.val),
                level: level.map(|p| p.level),
                message: Cow::Borrowed(body),
                fields: fields.list,
            };
        };
        if level.is_none() && CLEF_MESSAGE_RANKS.contains(&message.rank) {
            level = Some(LevelPick {
                rank: 0,
                idx: usize::MAX,
                level: Level::Info,
                ecs_rest: None,
            });
        }
        if message.rank == GELF_MESSAGE_RANK {
            // GELF's `level` is a syslog severity, which `from_number` does not read.
            if let Some(idx) = fields.list.iter().position(|(k, _)| k == "level") {
                if let Value::Int(sev @ 0..=7) = fields.list[idx].1 {
                    level = level::from_syslog_severity(sev as u8).map(|l| LevelPick {
                        rank: 0,
                        idx,
                        level: l,
                        ecs_rest: None,
                    });
                }
            }
        }
        let text = match std::mem::replace(&mut fields.list[message.idx].1, Value::Null) {
            Value::Str(s) => trim_newline(s),
            _ => Cow::Borrowed(""),
        };
        let mut remove = [message.idx, usize::MAX, usize::MAX];
        if let Some(t) = &time {
            remove[1] = t.idx;
        }
        let mut level_out = None;
        if let Some(l) = level {
            level_out = Some(l.level);
            match l.ecs_rest {
                None => remove[2] = l.idx,
                Some(None) => remove[2] = l.idx,
                Some(Some(rest)) => fields.list[l.idx].1 = Value::Json(Cow::Owned(rest)),
            }
        }
        Parsed {
            timestamp: time.map(|p| p.val),
            level: level_out,
            message: text,
            fields: fields.remove_all(&remove),
        }
    }
}

/// The nested ECS level: `{"level":"info", ...}` → the level and the object without it
/// (`None` when nothing else is in it).
fn ecs_level(raw: &str) -> Option<(Level, Option<String>)> {
    let mut entries = Vec::new();
    scan_object(raw, |k, v, text| entries.push((k, v, text)))?;
    let pos = entries.iter().position(|(k, _, _)| k == "level")?;
    let level = level_of(&entries[pos].1)?;
    if entries.len() == 1 {
        return Some((level, None));
    }
    let mut out = String::with_capacity(raw.len());
    out.push('{');
    for (i, (k, _, text)) in entries.iter().enumerate() {
        if i == pos {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k.as_ref()).ok()?);
        out.push(':');
        out.push_str(text);
    }
    out.push('}');
    Some((level, Some(out)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::DateTime;
    use proptest::prelude::*;

    pub(crate) fn ts(s: &str) -> Timestamp {
        Timestamp(
            DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap(),
        )
    }

    pub(crate) fn ctx() -> ParseContext {
        ParseContext {
            zone: Zone::Utc,
            now: ts("2026-11-22T12:00:00Z"),
        }
    }

    fn parse(line: &str) -> Option<Parsed<'_>> {
        JsonParser.parse(line, &ctx())
    }

    pub(crate) fn field<'p>(p: &'p Parsed<'_>, key: &str) -> Option<&'p Value<'p>> {
        p.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn s(v: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(v))
    }

    #[test]
    fn pino() {
        let p = parse(r#"{"level":30,"time":1795341600123,"pid":4242,"hostname":"api-7d9","reqId":"req-1","msg":"request completed","responseTime":12.5}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.message, "request completed");
        assert_eq!(
            p.fields,
            vec![
                (Cow::Borrowed("pid"), Value::Int(4242)),
                (Cow::Borrowed("hostname"), s("api-7d9")),
                (Cow::Borrowed("reqId"), s("req-1")),
                (Cow::Borrowed("responseTime"), Value::Float(12.5)),
            ]
        );
        assert!(matches!(p.message, Cow::Borrowed(_)));
        assert!(p.fields.iter().all(|(k, _)| matches!(k, Cow::Borrowed(_))));
    }

    #[test]
    fn bunyan_zap_logrus() {
        let p = parse(r#"{"name":"shop","hostname":"web-1","pid":17,"level":50,"err":{"message":"boom","name":"Error"},"msg":"payment failed","time":"2026-11-22T10:00:00.000Z","v":0}"#).unwrap();
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(
            field(&p, "err"),
            Some(&Value::Json(Cow::Borrowed(
                r#"{"message":"boom","name":"Error"}"#
            )))
        );
        assert_eq!(field(&p, "v"), Some(&Value::Int(0)));

        let p = parse(r#"{"level":"warn","ts":1795341600.5,"caller":"orders/sync.go:88","msg":"retrying","attempt":3,"backoff":"2s"}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.5Z")));
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(field(&p, "caller"), Some(&s("orders/sync.go:88")));

        let p = parse(r#"{"level":"error","msg":"db timeout","time":"2026-11-22T11:00:00+01:00","table":"orders"}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.fields.len(), 1);
    }

    #[test]
    fn ecs_nested_and_dotted() {
        let line = r#"{"@timestamp":"2026-11-22T10:00:00.250Z","log":{"level":"WARN","logger":"co.shop.Api"},"message":"slow","ecs.version":"1.6.0","service":{"name":"api"}}"#;
        let p = parse(line).unwrap();
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.25Z")));
        assert_eq!(p.message, "slow");
        assert_eq!(
            field(&p, "log"),
            Some(&Value::Json(Cow::Owned(
                r#"{"logger":"co.shop.Api"}"#.into()
            )))
        );
        assert_eq!(field(&p, "ecs.version"), Some(&s("1.6.0")));

        let p =
            parse(r#"{"@timestamp":"2026-11-22T10:00:00Z","log":{"level":"error"},"message":"x"}"#)
                .unwrap();
        assert_eq!(p.level, Some(Level::Error));
        assert!(field(&p, "log").is_none());

        let p = parse(r#"{"@timestamp":"2026-11-22T10:00:00Z","log.level":"debug","log.logger":"a","message":"x"}"#).unwrap();
        assert_eq!(p.level, Some(Level::Debug));
        assert!(field(&p, "log.level").is_none());
        assert_eq!(field(&p, "log.logger"), Some(&s("a")));
    }

    #[test]
    fn priorities_and_unusable_keys() {
        // `time` is not a time, so `ts` wins and `time` stays a field.
        let p = parse(r#"{"time":"slow","ts":"2026-11-22T10:00:00Z","severity":"ERROR","level":"verbose-ish","msg":"m"}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(field(&p, "time"), Some(&s("slow")));
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(field(&p, "level"), Some(&s("verbose-ish")));
        // `msg` beats `message` regardless of order; `message` stays a field.
        let p = parse(r#"{"message":"second","msg":"first"}"#).unwrap();
        assert_eq!(p.message, "first");
        assert_eq!(field(&p, "message"), Some(&s("second")));
        // A non-string message key is a field.
        let p = parse(r#"{"msg":42,"text":"hello"}"#).unwrap();
        assert_eq!(p.message, "hello");
        assert_eq!(field(&p, "msg"), Some(&Value::Int(42)));
        // Small numbers are not epochs.
        let p = parse(r#"{"t":5,"msg":"x"}"#).unwrap();
        assert_eq!(p.timestamp, None);
        assert_eq!(field(&p, "t"), Some(&Value::Int(5)));
    }

    #[test]
    fn case_insensitive_keys_serilog_and_python() {
        let p = parse(r#"{"Timestamp":"2026-11-22T10:00:00.1234567+00:00","Level":"Warning","MessageTemplate":"Disk {Disk} low","RenderedMessage":"Disk \"C:\" low","Properties":{"Disk":"C:"}}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.1234567Z")));
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.message, "Disk \"C:\" low");
        assert!(matches!(p.message, Cow::Owned(_)));
        assert_eq!(field(&p, "MessageTemplate"), Some(&s("Disk {Disk} low")));

        let p = parse(
            r#"{"@t":"2026-11-22T10:00:00.000Z","@mt":"User {UserId} signed in","UserId":42}"#,
        )
        .unwrap();
        assert_eq!(p.level, Some(Level::Info), "CLEF omits @l for info");
        assert_eq!(p.message, "User {UserId} signed in");

        let p = parse(r#"{"asctime":"2026-11-22 10:00:00,123","levelname":"ERROR","name":"app.db","message":"lost connection"}"#).unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
        assert_eq!(p.level, Some(Level::Error));
    }

    #[test]
    fn docker_gelf_and_zones() {
        let p = parse(r#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}"#).unwrap();
        assert_eq!(p.message, "GET /healthz 200");
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.123456789Z")));
        assert_eq!(field(&p, "stream"), Some(&s("stdout")));

        let p = parse(r#"{"version":"1.1","host":"db-2","short_message":"checkpoint","timestamp":1795341600.25,"level":4,"_query_ms":88}"#).unwrap();
        assert_eq!(p.level, Some(Level::Warn));
        assert!(field(&p, "level").is_none());
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00.25Z")));

        let berlin = ParseContext {
            zone: Zone::parse("Europe/Berlin").unwrap(),
            now: ts("2026-11-22T12:00:00Z"),
        };
        let p = JsonParser
            .parse(r#"{"time":"2026-11-22 11:00:00","msg":"x"}"#, &berlin)
            .unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        let p = JsonParser
            .parse(r#"{"time":"2026-11-22T11:00:00Z","msg":"x"}"#, &berlin)
            .unwrap();
        assert_eq!(p.timestamp, Some(ts("2026-11-22T11:00:00Z")));
        // Epochs as strings, in every unit.
        for t in [
            "1795341600",
            "1795341600000",
            "1795341600000000",
            "1795341600000000000",
        ] {
            let line = format!(r#"{{"ts":"{t}","msg":"x"}}"#);
            assert_eq!(
                parse(&line).unwrap().timestamp,
                Some(ts("2026-11-22T10:00:00Z"))
            );
        }
    }

    #[test]
    fn no_message_keeps_everything() {
        let line = r#"  {"time":"2026-11-22T10:00:00Z","level":"info","user":"bob"}  "#;
        let p = parse(line).unwrap();
        assert_eq!(p.message, line.trim());
        assert_eq!(p.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.fields.len(), 3);
        let p = parse("{}").unwrap();
        assert_eq!(p.message, "{}");
        assert!(p.fields.is_empty());
    }

    #[test]
    fn values() {
        let p = parse(r#"{"msg":"x","a":-0,"b":1.5e3,"c":18446744073709551616,"d":1e999,"e":null,"f":[1,{"g":2}],"h":false,"k\"q":"v\u00e9","u":"\ud800"}"#).unwrap();
        assert_eq!(field(&p, "a"), Some(&Value::Int(0)));
        assert_eq!(field(&p, "b"), Some(&Value::Float(1500.0)));
        assert_eq!(field(&p, "c"), Some(&s("18446744073709551616")));
        assert_eq!(field(&p, "d"), Some(&s("1e999")));
        assert_eq!(field(&p, "e"), Some(&Value::Null));
        assert_eq!(
            field(&p, "f"),
            Some(&Value::Json(Cow::Borrowed(r#"[1,{"g":2}]"#)))
        );
        assert_eq!(field(&p, "h"), Some(&Value::Bool(false)));
        assert_eq!(
            field(&p, "k\"q"),
            Some(&Value::Str(Cow::Owned("v\u{e9}".into())))
        );
        assert_eq!(field(&p, "u"), Some(&s("\\ud800")));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = parse(r#"{"a":1,"msg":"first","b":2,"a":3,"msg":"second"}"#).unwrap();
        assert_eq!(p.message, "second");
        assert_eq!(
            p.fields,
            vec![
                (Cow::Borrowed("a"), Value::Int(3)),
                (Cow::Borrowed("b"), Value::Int(2))
            ]
        );
        // Past the hash-index threshold too.
        let mut line = String::from("{");
        for i in 0..100 {
            line.push_str(&format!(r#""k{}":{},"#, i % 40, i));
        }
        line.push_str(r#""msg":"m"}"#);
        let p = parse(&line).unwrap();
        assert_eq!(p.fields.len(), 40);
        assert_eq!(field(&p, "k0"), Some(&Value::Int(80)));
        assert_eq!(field(&p, "k39"), Some(&Value::Int(79)));
    }

    #[test]
    fn backslash_scan() {
        for n in 0..40 {
            let mut v = vec![b'a'; n];
            assert!(!has_backslash(&v));
            for i in 0..n {
                v[i] = b'\\';
                assert!(has_backslash(&v), "{n} {i}");
                v[i] = b'\\' ^ 0x80;
                assert!(!has_backslash(&v), "{n} {i}");
                v[i] = b'a';
            }
        }
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_bytes("  x y \t", |c| c == b' ' || c == b'\t'), "x y");
        assert_eq!(trim_bytes("   ", |c| c == b' '), "");
        assert_eq!(trim_bytes("é ", |c| c == b' '), "é");
    }

    #[test]
    fn roles_match_the_key_lists() {
        let mut keys: Vec<String> = TIME_KEYS
            .iter()
            .chain(LEVEL_KEYS)
            .chain(MESSAGE_KEYS)
            .flat_map(|k| [k.to_string(), k.to_ascii_uppercase()])
            .collect();
        keys.extend(
            [
                "",
                "x",
                "tim",
                "times",
                "levels",
                "@",
                "msgs",
                "a_very_long_key_name",
            ]
            .map(String::from),
        );
        for k in &keys {
            assert_eq!(
                roles(k),
                (
                    rank(TIME_KEYS, k),
                    rank(LEVEL_KEYS, k),
                    rank(MESSAGE_KEYS, k)
                ),
                "{k}"
            );
        }
    }

    #[test]
    fn not_json_objects() {
        for line in [
            "",
            "   ",
            "{",
            "}",
            "{}x",
            "x{}",
            "[1,2]",
            r#""just a string""#,
            "42",
            r#"{"a":1}{"b":2}"#,
            r#"{"a":1,}"#,
            r#"{'a':1}"#,
            r#"{"a":1} trailing"#,
            "{ this is prose in braces }",
            r#"time=2026-11-22T10:00:00Z level=info msg="hello {world}""#,
            "time=2026-11-22T10:00:00Z level=info msg={}",
            "Nov 22 10:00:00 web-1 sshd[2211]: Accepted publickey for deploy",
            r#"<34>1 2026-11-22T10:00:02.003Z web-1 su 2301 ID47 - {"a":1}"#,
            r#"2026-11-22T10:00:00Z INFO {"a":1}"#,
            r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5"#,
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
        // Deep nesting is skipped without recursion: fine, it is one raw field.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            field(&parse(&deep).unwrap(), "a"),
            Some(Value::Json(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = parse(&line);
        }

        #[test]
        fn never_panics_on_jsonish(line in r#"[ {}\[\]":,.0-9a-zA-Z\\eE+-]{0,60}"#) {
            let _ = parse(&line);
        }

        #[test]
        fn round_trips_values(
            msg in "\\PC*",
            s in "\\PC*",
            key in "[a-z_]{1,12}",
            i in any::<i64>(),
            f in -1e300f64..1e300,
            b in any::<bool>(),
            nanos in 1_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        ) {
            prop_assume!(!msg.ends_with('\n'));
            prop_assume!(rank(TIME_KEYS, &key).is_none()
                && rank(LEVEL_KEYS, &key).is_none()
                && rank(MESSAGE_KEYS, &key).is_none()
                && !["n", "fl", "b", "arr"].contains(&key.as_str()));
            let line = serde_json::json!({
                "ts": nanos,
                "level": "warn",
                "msg": msg,
                key.clone(): s,
                "n": i,
                "fl": f,
                "b": b,
                "arr": [i, s],
            })
            .to_string();
            let p = parse(&line).unwrap();
            prop_assert_eq!(p.timestamp, Some(Timestamp(nanos)));
            prop_assert_eq!(p.level, Some(Level::Warn));
            prop_assert_eq!(p.message.as_ref(), msg.as_str());
            prop_assert_eq!(field(&p, &key), Some(&Value::Str(Cow::Owned(s.clone()))));
            prop_assert_eq!(field(&p, "n"), Some(&Value::Int(i)));
            prop_assert_eq!(field(&p, "b"), Some(&Value::Bool(b)));
            match field(&p, "fl") {
                Some(Value::Float(g)) => prop_assert_eq!(*g, f),
                // serde_json writes integral floats such as 3.0 as `3.0`, never bare `3`.
                other => prop_assert!(false, "fl: {:?}", other),
            }
            match field(&p, "arr") {
                Some(Value::Json(raw)) => {
                    let back: serde_json::Value = serde_json::from_str(raw).unwrap();
                    prop_assert_eq!(back, serde_json::json!([i, s]));
                }
                other => prop_assert!(false, "arr: {:?}", other),
            }
        }
    }

    /// Corpus lines as the lead's runner will read them.
    #[derive(serde::Deserialize)]
    pub(crate) struct Case {
        pub line: String,
        pub format: String,
        pub timestamp: Option<String>,
        pub level: Option<String>,
        pub message: String,
        #[serde(default)]
        pub fields: serde_json::Map<String, serde_json::Value>,
        /// "Now" for year-less timestamps (RFC 3164 syslog); default 2026-11-22T12:00:00Z.
        #[serde(default)]
        pub now: Option<String>,
    }

    pub(crate) fn corpus(name: &str) -> Vec<Case> {
        let path = format!(
            "{}/../tests/corpus/parse/{name}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(n, l)| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", n + 1))
            })
            .collect()
    }

    pub(crate) fn value_json(v: &Value<'_>) -> serde_json::Value {
        match v {
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Int(i) => serde_json::json!(i),
            Value::Float(f) => serde_json::json!(f),
            Value::Bool(b) => serde_json::json!(b),
            Value::Null => serde_json::Value::Null,
            Value::Json(raw) => serde_json::from_str(raw).unwrap(),
        }
    }

    /// Checks every case of corpus `name` against `parser`.
    pub(crate) fn check_corpus(name: &str, parser: &dyn Parser) -> usize {
        let cases = corpus(name);
        for c in &cases {
            assert_eq!(c.format, name, "{}", c.line);
            let ctx = ParseContext {
                zone: Zone::Utc,
                now: ts(c.now.as_deref().unwrap_or("2026-11-22T12:00:00Z")),
            };
            let p = parser
                .parse(&c.line, &ctx)
                .unwrap_or_else(|| panic!("not parsed: {}", c.line));
            assert_eq!(
                p.timestamp,
                c.timestamp.as_deref().map(ts),
                "timestamp: {}",
                c.line
            );
            assert_eq!(
                p.level.map(|l| l.as_str()),
                c.level.as_deref(),
                "level: {}",
                c.line
            );
            assert_eq!(p.message, c.message, "message: {}", c.line);
            for (k, want) in &c.fields {
                let got = field(&p, k).unwrap_or_else(|| panic!("no field {k}: {}", c.line));
                assert_eq!(&value_json(got), want, "field {k}: {}", c.line);
            }
            let mut keys: Vec<&str> = p.fields.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            let n = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), n, "duplicate keys: {}", c.line);
        }
        cases.len()
    }

    /// Every case of the other formats' corpora must be refused by `parser`.
    pub(crate) fn check_refuses(others: &[&str], parser: &dyn Parser) {
        for name in others {
            for c in corpus(name) {
                assert!(
                    parser.parse(&c.line, &ctx()).is_none(),
                    "{} claimed a {name} line: {}",
                    parser.name(),
                    c.line
                );
            }
        }
    }

    // ---- serde_json as the oracle for the hand-written top-level scanner ----

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
    use std::fmt;

    /// Deserialises an object key, borrowing it when it has no escapes.
    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(KeySeed)
        }
    }

    impl<'de> Visitor<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    type Entries<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

    /// An object's entries as raw values, in order.
    struct EntriesVisitor;

    impl<'de> Visitor<'de> for EntriesVisitor {
        type Value = Entries<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key_seed(KeySeed)? {
                let v: &'de RawValue = map.next_value()?;
                out.push((k, v));
            }
            Ok(out)
        }
    }

    /// What serde_json makes of `s`: its members as raw values, or `None`.
    fn oracle(s: &str) -> Option<Entries<'_>> {
        let mut de = serde_json::Deserializer::from_str(s);
        let e = de.deserialize_map(EntriesVisitor).ok()?;
        de.end().ok()?;
        Some(e)
    }

    /// A raw JSON value as the scanner should report it.
    fn to_value(raw: &RawValue) -> Value<'_> {
        let s = raw.get();
        match s.as_bytes().first() {
            Some(b'"') => Value::Str(if s.contains('\\') {
                decode_str(s)
            } else {
                Cow::Borrowed(&s[1..s.len() - 1])
            }),
            Some(b't') => Value::Bool(true),
            Some(b'f') => Value::Bool(false),
            Some(b'n') => Value::Null,
            Some(b'{') | Some(b'[') => Value::Json(Cow::Borrowed(s)),
            _ => number(s),
        }
    }

    fn scanned(s: &str) -> Option<Vec<(Cow<'_, str>, Value<'_>, &str)>> {
        let mut out = Vec::new();
        scan_object(s, |k, v, t| out.push((k, v, t)))?;
        Some(out)
    }

    fn same_as_serde(s: &str) -> Result<(), TestCaseError> {
        match (scanned(s), oracle(s)) {
            (None, None) => {}
            (Some(mine), Some(theirs)) => {
                prop_assert_eq!(mine.len(), theirs.len(), "{}", s);
                for ((k, v, t), (k2, raw)) in mine.iter().zip(&theirs) {
                    prop_assert_eq!(k, k2, "{}", s);
                    prop_assert_eq!(v, &to_value(raw), "{}", s);
                    prop_assert_eq!(*t, raw.get(), "{}", s);
                }
            }
            (mine, theirs) => prop_assert!(
                false,
                "scanner {:?} but serde_json {:?} for {:?}",
                mine.is_some(),
                theirs.is_some(),
                s
            ),
        }
        Ok(())
    }

    /// Random JSON-ish text: valid values, then mutated.
    fn jsonish() -> impl Strategy<Value = String> {
        (
            json_object(),
            any::<prop::sample::Index>(),
            0..4u8,
            "[\x00-\x7f]|\\PC",
        )
            .prop_map(|(s, at, how, ch)| {
                // Mutate at a character boundary: keep, delete a char, insert one, or cut.
                let cuts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                let i = cuts[at.index(cuts.len())];
                match how {
                    0 => s,
                    1 => {
                        let mut t = s.clone();
                        if i < t.len() {
                            t.remove(i);
                        }
                        t
                    }
                    2 => {
                        let mut t = s.clone();
                        t.insert_str(i, &ch);
                        t
                    }
                    _ => s[..i].to_string(),
                }
            })
    }

    /// Random valid JSON objects with varied keys, values, nesting and whitespace.
    fn json_object() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            r#""([a-z ]|\\[nrtbf"/\\]|\\u[0-9a-fA-F]{4}|[\u{80}-\u{10FFFF}]){0,10}""#,
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..4).prop_map(|v| {
                    let m: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{}:{}", serde_json::to_string(&k).unwrap(), v))
                        .collect();
                    format!("{{{}}}", m.join(","))
                }),
            ]
        });
        prop::collection::vec(("[a-zA-Z_@.\\\\\"]{0,6}", value, "[ \t\n\r]{0,2}"), 0..6).prop_map(
            |v| {
                let m: Vec<String> = v
                    .into_iter()
                    .map(|(k, v, ws)| {
                        format!("{ws}{}{ws}:{ws}{v}{ws}", serde_json::to_string(&k).unwrap())
                    })
                    .collect();
                format!("{{{}}}", m.join(","))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn scanner_agrees_with_serde_json(s in jsonish()) {
            same_as_serde(&s)?;
        }

        #[test]
        fn scanner_reads_valid_objects(s in json_object()) {
            prop_assert!(scanned(&s).is_some(), "{}", s);
            same_as_serde(&s)?;
        }

        #[test]
        fn scanner_agrees_with_serde_json_on_noise(s in r#"[{}\[\]":,. 0-9a-zA-Z\\eE+\-\u{0}-\u{1f}]{0,40}"#) {
            same_as_serde(&format!("{{{s}}}"))?;
            same_as_serde(&s)?;
        }
    }

    #[test]
    fn scanner_edge_cases() {
        for s in [
            "{}",
            " { } ",
            "{\"a\":1}",
            "{\"a\":-0}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":-}",
            "{\"a\":+1}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":truex}",
            "{\"a\":[1,]}",
            "{\"a\":{}}",
            "{\"a\":[]}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\t\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"\\ud800\":1}",
            "{\"a\"1}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}}",
            "{\"a\":\"é\\u00e9\"}",
            "{\"a\" : [ {\"b\" : null} ] , \"c\" : \"\"}",
            "{\"a\":1}\n",
            "{\"abcdefghijklmnop\":\"0123456789abcdefg\\\"h\"}",
        ] {
            same_as_serde(s).unwrap();
        }
    }

    #[test]
    fn corpus_cases() {
        assert!(check_corpus("json", &JsonParser) >= 15);
        check_refuses(&["logfmt", "syslog"], &JsonParser);
    }
}
