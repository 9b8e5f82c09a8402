//! Timestamp parsing shared by the parsers: hand-written scanners for the layouts logs use
//! (no regex, no allocation), integer calendar arithmetic ([`civil`](super::civil)) for UTC
//! and fixed offsets, and chrono for named zones.
//!
//! Every `*_prefix` function parses a timestamp at the start of its input and returns it
//! with the number of bytes it used, so a parser can take the rest as the message.
//! Timestamps without a zone are read in the configured [`Zone`] (default UTC).

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use logferry_shared::event::Timestamp;

use super::civil::{self, Civil, NANOS_PER_SEC, SECS_PER_DAY};

/// The zone for timestamps that carry none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Zone {
    /// UTC.
    #[default]
    Utc,
    /// A fixed offset such as `+02:00`.
    Fixed(FixedOffset),
    /// An IANA zone such as `Europe/Berlin` (daylight saving applied).
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, `Z`, `+HH:MM` / `-HH:MM` / `+HHMM`, or an IANA name.
    pub fn parse(s: &str) -> Result<Zone, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Zone::Utc);
        }
        if t.starts_with('+') || t.starts_with('-') {
            return offset_prefix(t)
                .filter(|(_, used)| *used == t.len())
                .map(|(o, _)| Zone::Fixed(o))
                .ok_or_else(|| format!("`{s}` is not an offset like +02:00"));
        }
        t.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("`{s}` is not UTC, an offset like +02:00, or an IANA zone name"))
    }

    /// The instant a wall-clock time in this zone denotes (the earlier one when a
    /// daylight-saving change makes it ambiguous; `None` when it does not exist).
    pub fn resolve(&self, naive: NaiveDateTime) -> Option<Timestamp> {
        let utc = match self {
            Zone::Utc => naive.and_utc(),
            Zone::Fixed(o) => o
                .from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&Utc),
            Zone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&Utc),
        };
        from_utc(utc)
    }

    /// [`Zone::resolve`] for a [`Civil`] time: integer arithmetic for UTC and fixed
    /// offsets, chrono's zone rules for named zones.
    pub fn resolve_civil(&self, c: Civil) -> Option<Timestamp> {
        match self {
            Zone::Utc => c.at_offset(0),
            Zone::Fixed(o) => c.at_offset(i64::from(o.local_minus_utc())),
            Zone::Named(_) => self.resolve(c.to_naive()?),
        }
    }
}

/// A wall-clock date and time read in `zone`: `None` when the date or time does not exist
/// (30 February, hour 24) or, in a named zone, falls in a daylight-saving gap. The second
/// may be given as 60 (a leap second), read as 59.999999999.
pub fn local(
    zone: &Zone,
    year: i32,
    month: u32,
    day: u32,
    tod: (u32, u32, u32, u32),
) -> Option<Timestamp> {
    zone.resolve_civil(civil(year, month, day, tod)?)
}

fn from_utc(t: DateTime<Utc>) -> Option<Timestamp> {
    t.timestamp_nanos_opt().map(Timestamp)
}

/// Seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart by
/// magnitude (values for years 1973–5138 in seconds, and the same span in the finer
/// units). Negative and non-finite values are refused.
pub fn epoch(value: f64) -> Option<Timestamp> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let nanos = if value < 1e11 {
        value * 1e9
    } else if value < 1e14 {
        value * 1e6
    } else if value < 1e17 {
        value * 1e3
    } else {
        value
    };
    if nanos >= 9.2e18 {
        return None;
    }
    Some(Timestamp(nanos as i64))
}

/// Integer form of [`epoch`], exact for nanoseconds.
pub fn epoch_int(value: i64) -> Option<Timestamp> {
    // Seconds past 2262 do not fit in i64 nanoseconds: no timestamp, as in [`epoch`].
    match value {
        v if v <= 0 => None,
        v if v < 100_000_000_000 => v.checked_mul(1_000_000_000).map(Timestamp),
        v if v < 100_000_000_000_000 => v.checked_mul(1_000_000).map(Timestamp),
        v if v < 100_000_000_000_000_000 => v.checked_mul(1_000).map(Timestamp),
        v => Some(Timestamp(v)),
    }
}

/// A byte cursor for the hand-written timestamp scanners (here and in the parsers): each
/// step either consumes what it reads or leaves the position alone and answers `None`.
pub(crate) struct Cursor<'a> {
    /// The input.
    pub b: &'a [u8],
    /// The position.
    pub i: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at `i` in `b`.
    pub fn new(b: &'a [u8], i: usize) -> Self {
        Cursor { b, i }
    }

    /// Exactly `n` ASCII digits, as a number.
    pub fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    /// One byte out of `allowed`.
    pub fn byte(&mut self, allowed: &[u8]) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if allowed.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    /// One or two digits (a day, or an unpadded clock part).
    pub fn day(&mut self) -> Option<u32> {
        self.digits(2).or_else(|| self.digits(1))
    }

    /// A fraction of a second after one of `seps`, as nanoseconds (digits past the ninth
    /// are read and ignored); 0 and nothing consumed when no digit follows the separator.
    pub fn fraction(&mut self, seps: &[u8]) -> u32 {
        let save = self.i;
        if self.byte(seps).is_none() {
            return 0;
        }
        let start = self.i;
        let mut nanos = 0u32;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            if self.i - start < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
            self.i += 1;
        }
        let n = (self.i - start).min(9);
        if n == 0 {
            // A lone separator: not part of the timestamp.
            self.i = save;
            return 0;
        }
        nanos * 10u32.pow(9 - n as u32)
    }

    /// `HH:MM:SS` and an optional fraction after one of `seps`.
    pub fn clock(&mut self, seps: &[u8]) -> Option<(u32, u32, u32, u32)> {
        let h = self.digits(2)?;
        self.byte(b":")?;
        let m = self.digits(2)?;
        self.byte(b":")?;
        let s = self.digits(2)?;
        Some((h, m, s, self.fraction(seps)))
    }
}

/// `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH`, at the start of `s`.
pub fn offset_prefix(s: &str) -> Option<(FixedOffset, usize)> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let sign = c.byte(b"+-")?;
    let h = c.digits(2)?;
    let m = if c.byte(b":").is_some() {
        c.digits(2)?
    } else {
        c.digits(2).unwrap_or(0)
    };
    if h > 23 || m > 59 {
        return None;
    }
    let secs = (h * 3600 + m * 60) as i32;
    let off = if sign == b'-' {
        FixedOffset::west_opt(secs)?
    } else {
        FixedOffset::east_opt(secs)?
    };
    Some((off, c.i))
}

fn time_of_day(c: &mut Cursor<'_>) -> Option<(u32, u32, u32, u32)> {
    c.clock(b".,")
}

fn civil(y: i32, mo: u32, d: u32, (h, mi, s, ns): (u32, u32, u32, u32)) -> Option<Civil> {
    // Leap second 60 is clamped to 59.999…, as a Unix timestamp cannot hold it.
    let (s, ns) = if s == 60 { (59, 999_999_999) } else { (s, ns) };
    Civil::new(y, mo, d, (h, mi, s, ns))
}

/// ISO-8601-like date and time at the start of `s`: `YYYY-MM-DD` (or `/`), then `T` or a
/// space, `HH:MM:SS`, an optional fraction after `.` or `,`, and an optional `Z`, `UTC`,
/// or offset (a space before the zone is allowed). Covers RFC 3339, Log4j/Logback,
/// Python logging and Go log layouts.
pub fn iso_prefix(s: &str, zone: &Zone) -> Option<(Timestamp, usize)> {
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let y = c.digits(4)?;
    let sep = c.byte(b"-/")?;
    let mo = c.digits(2)?;
    c.byte(&[sep])?;
    let d = c.digits(2)?;
    c.byte(b"T ")?;
    let tod = time_of_day(&mut c)?;
    let dt = civil(y as i32, mo, d, tod)?;
    let before_zone = c.i;
    let rest = &s[c.i..];
    let (trimmed, space) = match rest.strip_prefix(' ') {
        Some(r) => (r, 1),
        None => (rest, 0),
    };
    if let Some(r) = trimmed.strip_prefix('Z') {
        // "Z" must end the token: "Zone" would not be a zone designator.
        if !r.starts_with(|ch: char| ch.is_ascii_alphanumeric()) {
            return dt.at_offset(0).map(|t| (t, c.i + space + 1));
        }
    }
    if trimmed.starts_with("UTC")
        && !trimmed[3..].starts_with(|ch: char| ch.is_ascii_alphanumeric())
    {
        return dt.at_offset(0).map(|t| (t, c.i + space + 3));
    }
    if let Some((off, used)) = offset_prefix(trimmed) {
        let t = dt.at_offset(i64::from(off.local_minus_utc()))?;
        return Some((t, c.i + space + used));
    }
    zone.resolve_civil(dt).map(|t| (t, before_zone))
}

/// An RFC 3339 timestamp making up the whole of `s` (JSON `time` fields and the like).
pub fn rfc3339(s: &str, zone: &Zone) -> Option<Timestamp> {
    iso_prefix(s, zone)
        .filter(|(_, used)| *used == s.len())
        .map(|(t, _)| t)
}

/// Month from its English three-letter abbreviation, any case.
pub fn month(abbr: &[u8]) -> Option<u32> {
    let m = [
        abbr.first()?.to_ascii_lowercase(),
        abbr.get(1)?.to_ascii_lowercase(),
        abbr.get(2)?.to_ascii_lowercase(),
    ];
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// The year for a month and day given without one: the current year, or the previous
/// one if that would put the date more than a day in the future (December lines read in
/// January).
pub fn infer_year(month: u32, day: u32, now: Timestamp) -> i32 {
    let day_nanos = i128::from(SECS_PER_DAY * NANOS_PER_SEC);
    let today = now.0.div_euclid(SECS_PER_DAY * NANOS_PER_SEC);
    let (year, _, _) = civil::civil_from_days(today);
    let valid = day >= 1 && day <= civil::days_in_month(year, month);
    // Midnight of that date, against `now` plus a day (in i128: no overflow at the edges).
    if valid
        && i128::from(civil::days_from_civil(year, month, day)) * day_nanos
            > i128::from(now.0) + day_nanos
    {
        return year as i32 - 1;
    }
    year as i32
}

/// BSD syslog time at the start of `s`: `Mmm dd HH:MM:SS` (day space-padded), optionally
/// followed by a year (`Mmm dd yyyy HH:MM:SS` is also accepted).
pub fn bsd_prefix(s: &str, zone: &Zone, now: Timestamp) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    let mo = month(b.get(..3)?)?;
    let mut c = Cursor { b, i: 3 };
    c.byte(b" ")?;
    c.byte(b" ");
    let d = c.day()?;
    c.byte(b" ")?;
    let mut year = None;
    let save = c.i;
    if let Some(y) = c.digits(4) {
        if c.byte(b" ").is_some() {
            year = Some(y as i32);
        } else {
            c.i = save;
        }
    }
    let tod = time_of_day(&mut c)?;
    let y = year.unwrap_or_else(|| infer_year(mo, d, now));
    local(zone, y, mo, d, tod).map(|t| (t, c.i))
}

/// Common Log Format time, the part between the brackets: `22/Nov/2026:10:00:00 +0000`.
pub fn clf(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let mut c = Cursor { b, i: 0 };
    let d = c.digits(2)?;
    c.byte(b"/")?;
    let mo = month(b.get(c.i..c.i + 3)?)?;
    c.i += 3;
    c.byte(b"/")?;
    let y = c.digits(4)?;
    c.byte(b":")?;
    let tod = time_of_day(&mut c)?;
    c.byte(b" ")?;
    let (off, used) = offset_prefix(&s[c.i..])?;
    if c.i + used != s.len() {
        return None;
    }
    civil(y as i32, mo, d, tod)?.at_offset(i64::from(off.local_minus_utc()))
}

/// Reads `Timestamp` back as UTC chrono time (for tests and formatting).
pub fn to_utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t.0)
}

/// Offset of a zone at an instant, in seconds east of UTC (for tests and docs).
pub fn offset_at(zone: &Zone, t: Timestamp) -> i32 {
    let utc = to_utc(t);
    match zone {
        Zone::Utc => 0,
        Zone::Fixed(o) => o.local_minus_utc(),
        Zone::Named(tz) => tz
            .offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp(
            DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap(),
        )
    }

    #[test]
    fn iso_layouts() {
        let z = Zone::Utc;
        let cases = [
            (
                "2026-11-22T10:00:00.123Z rest",
                "2026-11-22T10:00:00.123Z",
                24,
            ),
            ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z", 20),
            (
                "2026-11-22T12:00:00.5+02:00 x",
                "2026-11-22T10:00:00.5Z",
                27,
            ),
            (
                "2026-11-22 10:00:00,123 ERROR",
                "2026-11-22T10:00:00.123Z",
                23,
            ),
            ("2026/11/22 10:00:00 msg", "2026-11-22T10:00:00Z", 19),
            (
                "2026-11-22T10:00:00.123456789123Z",
                "2026-11-22T10:00:00.123456789Z",
                33,
            ),
            ("2026-11-22 10:00:00 UTC x", "2026-11-22T10:00:00Z", 23),
            ("2026-11-22 10:00:00 +0100 x", "2026-11-22T09:00:00Z", 25),
        ];
        for (input, expect, used) in cases {
            let (t, n) = iso_prefix(input, &z).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(t, ts(expect), "{input}");
            assert_eq!(n, used, "{input}");
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-11-22",
            "20261122T100000Z",
            "2026-11-22X10:00:00",
            "2026-11-22T10:00",
        ] {
            assert!(iso_prefix(bad, &z).is_none(), "{bad}");
        }
        assert!(rfc3339("2026-11-22T10:00:00Z", &z).is_some());
        assert!(rfc3339("2026-11-22T10:00:00Z trailing", &z).is_none());
    }

    #[test]
    fn zones_apply_to_zoneless_times_only() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let (t, _) = iso_prefix("2026-11-22 10:00:00", &berlin).unwrap();
        assert_eq!(t, ts("2026-11-22T09:00:00Z"));
        let (t, _) = iso_prefix("2026-07-01 10:00:00", &berlin).unwrap();
        assert_eq!(t, ts("2026-07-01T08:00:00Z"), "summer time");
        let (t, _) = iso_prefix("2026-11-22T10:00:00Z", &berlin).unwrap();
        assert_eq!(t, ts("2026-11-22T10:00:00Z"), "explicit zone wins");
        assert_eq!(
            Zone::parse("+05:30").unwrap(),
            Zone::Fixed(FixedOffset::east_opt(19800).unwrap())
        );
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert_eq!(offset_at(&berlin, ts("2026-07-01T00:00:00Z")), 7200);
    }

    #[test]
    fn epochs_by_magnitude() {
        let want = ts("2026-11-22T10:00:00Z");
        assert_eq!(epoch_int(1_795_341_600), Some(want));
        assert_eq!(epoch_int(1_795_341_600_000), Some(want));
        assert_eq!(epoch_int(1_795_341_600_000_000), Some(want));
        assert_eq!(epoch_int(1_795_341_600_000_000_000), Some(want));
        assert_eq!(
            epoch(1_795_341_600.5),
            Some(Timestamp(want.0 + 500_000_000))
        );
        assert_eq!(epoch(-1.0), None);
        assert_eq!(epoch(f64::NAN), None);
        assert_eq!(epoch_int(0), None);
    }

    /// Found by the `parse_line` fuzz check (`{"ts":17630905600}`): seconds past 2262
    /// overflowed the multiplication to nanoseconds (a panic in debug builds, a wrapped
    /// time in release).
    #[test]
    fn epochs_past_2262_are_no_timestamp() {
        assert_eq!(epoch_int(17_630_905_600), None);
        assert_eq!(epoch_int(99_999_999_999), None);
        assert_eq!(
            epoch_int(9_223_372_036),
            Some(Timestamp(9_223_372_036_000_000_000))
        );
        assert_eq!(epoch_int(9_223_372_037), None);
        assert_eq!(epoch(17_630_905_600.0), None);
    }

    #[test]
    fn bsd_and_clf() {
        let now = ts("2026-11-22T12:00:00Z");
        let (t, n) = bsd_prefix("Nov 22 10:00:00 host app: x", &Zone::Utc, now).unwrap();
        assert_eq!((t, n), (ts("2026-11-22T10:00:00Z"), 15));
        let (t, _) = bsd_prefix("Nov  2 10:00:00 host", &Zone::Utc, now).unwrap();
        assert_eq!(t, ts("2026-11-02T10:00:00Z"));
        // A December line read in January belongs to the previous year.
        let jan = ts("2027-01-01T00:10:00Z");
        let (t, _) = bsd_prefix("Dec 31 23:59:59 host", &Zone::Utc, jan).unwrap();
        assert_eq!(t, ts("2026-12-31T23:59:59Z"));
        let (t, _) = bsd_prefix("Nov 22 2025 10:00:00 host", &Zone::Utc, now).unwrap();
        assert_eq!(t, ts("2025-11-22T10:00:00Z"));
        assert!(bsd_prefix("Foo 22 10:00:00", &Zone::Utc, now).is_none());
        assert_eq!(
            clf("22/Nov/2026:10:00:00 +0100"),
            Some(ts("2026-11-22T09:00:00Z"))
        );
        assert_eq!(clf("22/Nov/2026:10:00:00"), None);
    }

    /// `infer_year` as it was written on chrono, the reference for the integer version.
    fn infer_year_chrono(month: u32, day: u32, now: Timestamp) -> i32 {
        let now_utc = DateTime::<Utc>::from_timestamp_nanos(now.0);
        let year = chrono::Datelike::year(&now_utc);
        let candidate =
            chrono::NaiveDate::from_ymd_opt(year, month, day).and_then(|d| d.and_hms_opt(0, 0, 0));
        match candidate {
            Some(c) if c.and_utc() > now_utc + chrono::Duration::days(1) => year - 1,
            _ => year,
        }
    }

    proptest::proptest! {
        #[test]
        fn infer_year_agrees_with_chrono(
            month in 0u32..14,
            day in 0u32..33,
            now in proptest::prop_oneof![
                proptest::prelude::any::<i64>(),
                1_700_000_000_000_000_000i64..1_900_000_000_000_000_000,
            ],
        ) {
            proptest::prop_assert_eq!(
                infer_year(month, day, Timestamp(now)),
                infer_year_chrono(month, day, Timestamp(now))
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            "2",
            "2026-",
            "\u{1F600}\u{1F600}",
            "Nov",
            "Nov 3",
            "99/Zzz/9999:99:99:99 +9999",
            "2026-11-22T10:00:00.",
            "2026-11-22T10:00:00+",
        ] {
            let _ = iso_prefix(s, &Zone::Utc);
            let _ = bsd_prefix(s, &Zone::Utc, Timestamp(0));
            let _ = clf(s);
            let _ = offset_prefix(s);
        }
    }
}
