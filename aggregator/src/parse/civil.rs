//! Calendar arithmetic on plain integers (proleptic Gregorian calendar), for the paths that
//! run once per line: turning a parsed date and time into a [`Timestamp`], and a timestamp
//! back into its date for the output. chrono does the same work through its general types
//! at several times the cost; it stays in charge of named zones (daylight saving rules).
//!
//! [`days_from_civil`] and [`civil_from_days`] are Howard Hinnant's algorithms
//! (<https://howardhinnant.github.io/date_algorithms.html>): exact for every date, no
//! tables, no loops. [`Civil::new`] accepts exactly the dates and times chrono's
//! `NaiveDate::from_ymd_opt(..)?.and_hms_nano_opt(..)` accepts (with nanoseconds below
//! one second), and [`Civil::at_offset`] gives the instant chrono gives; property tests
//! hold both against chrono.

use chrono::{NaiveDate, NaiveDateTime};
use logferry_shared::event::Timestamp;

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Seconds in a day (no leap seconds, as in Unix time).
pub const SECS_PER_DAY: i64 = 86_400;
/// The years chrono's dates can hold; outside them [`Civil::new`] refuses, as chrono does.
const YEARS: std::ops::RangeInclusive<i32> = -262_144..=262_143;

/// Whether `year` has a 29 February.
pub const fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`; 0 for a month out of range.
pub const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to `year`-`month`-`day` (negative before it). The date must be
/// valid (see [`days_in_month`]).
pub const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years start on 1 March, so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (month as i64 + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01: (year, month 1–12, day 1–31).
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// A valid calendar date and wall-clock time, without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year (astronomical: year 0 is 1 BC).
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
    /// Nanoseconds, below one second.
    pub nanos: u32,
}

impl Civil {
    /// The date and time, if they exist (no 30 February, no hour 24, no second 60).
    pub fn new(
        year: i32,
        month: u32,
        day: u32,
        (hour, minute, second, nanos): (u32, u32, u32, u32),
    ) -> Option<Civil> {
        let ok = YEARS.contains(&year)
            && day >= 1
            && day <= days_in_month(i64::from(year), month)
            && hour < 24
            && minute < 60
            && second < 60
            && i64::from(nanos) < NANOS_PER_SEC;
        ok.then_some(Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        })
    }

    /// The instant this wall-clock time denotes at `offset` seconds east of UTC; `None`
    /// outside what a [`Timestamp`] holds (years 1677–2262).
    pub fn at_offset(&self, offset: i64) -> Option<Timestamp> {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * SECS_PER_DAY
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
            - offset;
        secs.checked_mul(NANOS_PER_SEC)?
            .checked_add(i64::from(self.nanos))
            .map(Timestamp)
    }

    /// The same wall-clock time as chrono's type (for named zones).
    pub fn to_naive(self) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)?.and_hms_nano_opt(
            self.hour,
            self.minute,
            self.second,
            self.nanos,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc};
    use proptest::prelude::*;

    #[test]
    fn known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2026, 13), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn days_agree_with_chrono(days in -95_000_000i64..95_000_000) {
            let (y, m, d) = civil_from_days(days);
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(days);
            prop_assert_eq!((y, m, d), (i64::from(date.year()), date.month(), date.day()));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn civil_agrees_with_chrono(
            year in prop_oneof![-300_000i32..300_000, 1600i32..2400],
            month in 0u32..14,
            day in 0u32..33,
            hour in 0u32..26,
            minute in 0u32..62,
            second in 0u32..62,
            nanos in prop_oneof![0u32..1_000_000_000, 999_999_990u32..1_000_000_010],
            offset in -86_399i64..86_400,
        ) {
            let ours = Civil::new(year, month, day, (hour, minute, second, nanos));
            let theirs = NaiveDate::from_ymd_opt(year, month, day)
                .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nanos))
                .filter(|_| nanos < 1_000_000_000);
            prop_assert_eq!(ours.and_then(Civil::to_naive), theirs);
            if let (Some(c), Some(n)) = (ours, theirs) {
                prop_assert_eq!(c.at_offset(0), n.and_utc().timestamp_nanos_opt().map(Timestamp));
                let fixed = chrono::FixedOffset::east_opt(offset as i32).unwrap();
                let want = fixed
                    .from_local_datetime(&n)
                    .earliest()
                    .and_then(|t| t.with_timezone(&Utc).timestamp_nanos_opt())
                    .map(Timestamp);
                prop_assert_eq!(c.at_offset(offset), want);
            }
        }
    }
}
