//! RFC 3339 timestamps as container runtimes write them (`2026-11-22T10:00:00.123456789Z`,
//! or with a `+02:00` offset), to Unix milliseconds. Hand-written because it runs once per
//! line: no allocation, no locale, no time zone database.

/// Unix milliseconds of an RFC 3339 timestamp, or `None` when `s` is not one (or is
/// before 1970). Fractions of any length are accepted; digits past milliseconds are
/// dropped. A leap second (`:60`) counts as `:59.999`.
pub fn rfc3339_ms(s: &[u8]) -> Option<u64> {
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let mut second = digits(s, 17, 2)?;
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| s.get(i) != Some(&c))
        || !matches!(s.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 3 {
                millis = millis * 10 + u64::from(d - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    if second == 60 {
        second = 59;
        millis = 999;
    }
    let offset_secs: i64 = match s.get(i)? {
        b'Z' | b'z' if s.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if s.len() == i + 6 && s.get(i + 3) == Some(&b':') => {
            let h = digits(s, i + 1, 2)?;
            let m = digits(s, i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(secs * 1000 + millis)
}

/// The number in `s[at..at + n]`, all ASCII digits.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use proptest::prelude::*;

    fn ms(s: &str) -> Option<u64> {
        rfc3339_ms(s.as_bytes())
    }

    #[test]
    fn runtime_timestamps() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            ms("2026-11-22T10:00:00.123456789Z"),
            Some(1_795_341_600_123)
        );
        assert_eq!(ms("2026-11-22T10:00:00.1Z"), Some(1_795_341_600_100));
        assert_eq!(ms("2026-11-22T12:00:00.123+02:00"), Some(1_795_341_600_123));
        assert_eq!(ms("2026-11-22T05:30:00.123-04:30"), Some(1_795_341_600_123));
        assert_eq!(ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(ms("2016-12-31T23:59:60Z"), Some(1_483_228_799_999));
    }

    #[test]
    fn not_timestamps() {
        for s in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:00",
            "2026-11-22T10:00:00.Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00Zjunk",
            "2026-11-22T10:00:00+0200",
            "1969-12-31T23:59:59Z",
            "2026-11-22T10:00:00.123+2:00",
            "2026/11/22T10:00:00Z",
            "+026-11-22T10:00:00Z",
        ] {
            assert_eq!(ms(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(secs in 0i64..8_000_000_000, nanos in 0u32..1_000_000_000, off in -1439i32..1440) {
            let tz = chrono::FixedOffset::east_opt(off * 60).unwrap();
            let t = DateTime::from_timestamp(secs, nanos).unwrap().with_timezone(&tz);
            let text = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            prop_assert_eq!(rfc3339_ms(text.as_bytes()), Some(secs as u64 * 1000 + u64::from(nanos / 1_000_000)));
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = rfc3339_ms(&s);
        }
    }
}
