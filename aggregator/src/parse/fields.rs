//! Helpers shared by the parsers of key/value formats (JSON, logfmt, syslog structured
//! data): the role keys (which keys hold the time, the level and the message), the field
//! set with unique keys, and reading timestamps and levels out of field values.
//!
//! Role keys are matched without regard to ASCII case; for each role the first key of its
//! list that is present and usable wins. [`roles`] answers all three lists with one hash
//! probe, as it runs for every key of every line.

use std::borrow::Cow;
use std::collections::HashMap;

use logferry_shared::event::{Level, Timestamp};

use super::{level, time, Value, Zone};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
