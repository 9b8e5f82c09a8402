//! Writing JSON text straight into the output buffer: strings (escaped), integers and
//! timestamps, with no allocation and no `fmt` machinery. These run several times for
//! every event, so they are written for speed; tests hold each one against serde_json or
//! the `Display` it replaces, byte for byte.

use logferry_shared::event::Timestamp;

use crate::parse::civil::{civil_from_days, NANOS_PER_SEC, SECS_PER_DAY};

/// For every byte, how it is written inside a JSON string: 0 as itself, otherwise the
/// character after the backslash (`u` for the `\u00XX` form). The same choices as
/// serde_json: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00XX`
/// (lower-case hex), everything else — DEL and non-ASCII included — as is.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte in `w` (eight bytes, little-endian) that needs escaping, if
/// any: a `"`, a `\`, or a byte below 0x20. The lowest flagged byte of each test is always
/// a real hit (borrows only flag bytes above one), so the lowest flag overall is too.
#[inline]
fn first_special(w: u64) -> Option<usize> {
    let quote = w ^ (LO * u64::from(b'"'));
    let slash = w ^ (LO * u64::from(b'\\'));
    let hits = ((quote.wrapping_sub(LO) & !quote)
        | (slash.wrapping_sub(LO) & !slash)
        | (w.wrapping_sub(LO * 0x20) & !w))
        & HI;
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

#[inline]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// The index of the first byte at or after `start` that needs escaping.
#[inline]
fn next_special(b: &[u8], start: usize) -> Option<usize> {
    let n = b.len();
    let mut i = start;
    // Sixteen bytes per step while they last: strings are mostly clean, so this loop is
    // where the time goes.
    while let Some(block) = b.get(i..i + 16) {
        if let Some(k) = first_special(word(&block[..8])) {
            return Some(i + k);
        }
        if let Some(k) = first_special(word(&block[8..])) {
            return Some(i + 8 + k);
        }
        i += 16;
    }
    if let Some(chunk) = b.get(i..i + 8) {
        if let Some(k) = first_special(word(chunk)) {
            return Some(i + k);
        }
        i += 8;
    }
    if i >= n {
        return None;
    }
    if n >= start + 8 {
        // The last eight bytes: those before `i` are known clean, so a hit is in the tail.
        // (Loading them whole is much cheaper than assembling a partial word.)
        return first_special(word(&b[n - 8..])).map(|k| n - 8 + k);
    }
    short_special(b, i)
}

/// [`next_special`] for fewer than eight bytes from `i` to the end: two overlapping
/// loads make up one word (bytes past what is loaded are spaces), no loop.
#[inline]
fn short_special(b: &[u8], i: usize) -> Option<usize> {
    let n = b.len();
    let tail = b.get(i..)?;
    let (w, split) = match tail.len() {
        0 => return None,
        1 => return (ESCAPE[usize::from(tail[0])] != 0).then_some(i),
        2 | 3 => {
            let lo = u64::from(u16::from_le_bytes([tail[0], tail[1]]));
            let hi = u64::from(u16::from_le_bytes([b[n - 2], b[n - 1]]));
            (lo | hi << 16 | 0x2020_2020 << 32, 2)
        }
        _ => {
            let lo = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
            let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
            (lo | hi << 32, 4)
        }
    };
    // Bytes of the second load that overlap the first were checked clean there, so the
    // first hit is where it says.
    first_special(w).map(|k| {
        if k < split {
            i + k
        } else {
            n - split + (k - split)
        }
    })
}

/// Appends `s` as a JSON string literal, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_special(b, start) {
        let c = b[at];
        out.extend_from_slice(&b[start..at]);
        match ESCAPE[usize::from(c)] {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]),
            esc => out.extend_from_slice(&[b'\\', esc]),
        }
        start = at + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `v`.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

/// The length of [`timestamp_text`]'s answer: `"2026-11-22T10:00:00.123Z"` with quotes.
pub const TIMESTAMP_LEN: usize = 26;

/// `t` as a quoted RFC 3339 string in UTC with milliseconds (truncated) and a `Z`: the
/// same text as `Timestamp`'s `Display`, including its clamping of times before 1970 to
/// the epoch. A `Timestamp` ends in 2262, so the year always has four digits.
pub fn timestamp_text(t: Timestamp) -> [u8; TIMESTAMP_LEN] {
    let (days, sod, millis) = split_time(t);
    let mut b = *b"\"0000-00-00T00:00:00.000Z\"";
    put_date(&mut b, days);
    put_time_of_day(&mut b, sod, millis);
    b
}

/// (days since the epoch, second of the day, milliseconds) of `t`, clamped at the epoch.
#[inline]
fn split_time(t: Timestamp) -> (i64, u32, u32) {
    let nanos = t.0.max(0);
    let secs = nanos / NANOS_PER_SEC;
    let millis = (nanos % NANOS_PER_SEC / 1_000_000) as u32;
    (secs / SECS_PER_DAY, (secs % SECS_PER_DAY) as u32, millis)
}

/// Writes `v` as `width` decimal digits at `at`.
#[inline]
fn put_digits(b: &mut [u8; TIMESTAMP_LEN], at: usize, v: u32, width: usize) {
    let mut v = v;
    for k in (0..width).rev() {
        b[at + k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The `YYYY-MM-DD` part of [`timestamp_text`].
fn put_date(b: &mut [u8; TIMESTAMP_LEN], days: i64) {
    let (year, month, day) = civil_from_days(days);
    put_digits(b, 1, year as u32, 4);
    put_digits(b, 6, month, 2);
    put_digits(b, 9, day, 2);
}

/// The `hh:mm:ss.mmm` part of [`timestamp_text`].
#[inline]
fn put_time_of_day(b: &mut [u8; TIMESTAMP_LEN], sod: u32, millis: u32) {
    put_digits(b, 12, sod / 3600, 2);
    put_digits(b, 15, sod / 60 % 60, 2);
    put_digits(b, 18, sod % 60, 2);
    put_digits(b, 21, millis, 3);
}

/// [`timestamp_text`] for a run of timestamps, most of them on the same day as the one
/// before: the date is worked out once per day, and a repeated millisecond is not
/// formatted again. Gives the same bytes as [`timestamp_text`] for every timestamp.
#[derive(Debug, Clone)]
pub struct TimestampCache {
    /// The millisecond (since the epoch, clamped) `text` shows, or `i64::MIN`.
    ms: i64,
    /// The day `text` shows, or `i64::MIN`.
    day: i64,
    text: [u8; TIMESTAMP_LEN],
}

impl Default for TimestampCache {
    fn default() -> Self {
        TimestampCache {
            ms: i64::MIN,
            day: i64::MIN,
            text: *b"\"0000-00-00T00:00:00.000Z\"",
        }
    }
}

impl TimestampCache {
    /// `t` as [`timestamp_text`] writes it.
    #[inline]
    pub fn text(&mut self, t: Timestamp) -> &[u8; TIMESTAMP_LEN] {
        let ms = t.0.max(0) / 1_000_000;
        if ms != self.ms {
            let (days, sod, millis) = split_time(t);
            if days != self.day {
                put_date(&mut self.text, days);
                self.day = days;
            }
            put_time_of_day(&mut self.text, sod, millis);
            self.ms = ms;
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "a \"quoted\" word",
            "back\\slash",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \u{7f}",
            "é ünïcödé 😀 \u{2028}",
            "exactly8",
            "sixteen bytes!!!",
            "\"\"\"\"\"\"\"\"\"",
            "1234567\n",
            "12345678\n",
        ] {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn every_position_of_one_or_two_special_bytes() {
        for len in 0..40 {
            for at in 0..len {
                for c in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    let mut s: Vec<char> = vec!['a'; len];
                    s[at] = c;
                    let one: String = s.iter().collect();
                    assert_eq!(escaped(&one), serde_json::to_string(&one).unwrap());
                    for then in at + 1..len {
                        s[then] = '"';
                        let two: String = s.iter().collect();
                        assert_eq!(escaped(&two), serde_json::to_string(&two).unwrap());
                        s[then] = 'a';
                    }
                }
            }
        }
    }

    #[test]
    fn integers_and_timestamps() {
        for v in [0, 1, -1, 9, 10, 42, -42, i64::MAX, i64::MIN, 1_000_000] {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        for t in [0, -1, i64::MIN, i64::MAX, 1_795_341_600_123_456_789] {
            let t = Timestamp(t);
            assert_eq!(timestamp_text(t).as_slice(), format!("\"{t}\"").as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn any_string_escapes_like_serde_json(s in "\\PC*|[\\x00-\\x7f]{0,40}|.{0,40}") {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn mostly_clean_strings_escape_like_serde_json(
            parts in prop::collection::vec(("[a-z ]{0,11}", "[\\x00-\\x1f\"\\\\\\x7f]?"), 0..8),
        ) {
            let s: String = parts.iter().map(|(a, b)| format!("{a}{b}")).collect();
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn any_integer_like_display(v in any::<i64>()) {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            prop_assert_eq!(out, v.to_string().into_bytes());
        }

        #[test]
        fn cached_timestamps_like_uncached(
            start in any::<i64>(),
            steps in prop::collection::vec(
                prop_oneof![
                    Just(0i64),
                    0i64..1_000_000,
                    0i64..1_000_000_000,
                    0i64..200_000_000_000_000,
                    any::<i64>(),
                ],
                1..40,
            ),
        ) {
            let mut cache = TimestampCache::default();
            let mut t = start;
            for step in steps {
                t = if step % 3 == 0 { t.wrapping_sub(step) } else { t.wrapping_add(step) };
                let ts = Timestamp(t);
                prop_assert_eq!(cache.text(ts), &timestamp_text(ts), "{}", t);
            }
        }

        #[test]
        fn any_timestamp_like_display(t in any::<i64>()) {
            let t = Timestamp(t);
            prop_assert_eq!(timestamp_text(t).to_vec(), format!("\"{t}\"").into_bytes());
        }
    }
}
