//! The timestamp layouts of the plain-text parser (see the table in [`super`]): where a
//! timestamp starts, bracketed or not, and the layouts [`time`] does not cover.

use logferry_shared::event::Timestamp;

use crate::parse::time::{self, Cursor};
use crate::parse::ParseContext;

/// The longest bracketed timestamp considered.
const MAX_BRACKET: usize = 64;

/// A timestamp starting at byte `i` of `line`, bracketed or not, ending at a word
/// boundary: the instant and the byte offset after it (after `]` if bracketed).
pub(super) fn timestamp_at(
    line: &str,
    i: usize,
    allow_int_epoch: bool,
    ctx: &ParseContext,
) -> Option<(Timestamp, usize)> {
    let b = line.as_bytes();
    if b.get(i) == Some(&b'[') {
        let limit = b.len().min(i + 1 + MAX_BRACKET);
        let close = (i + 1..limit).find(|&k| b[k] == b']')?;
        let inner = line[i + 1..close].trim_matches(' ');
        let t = timestamp_exact(inner, ctx)?;
        return Some((t, close + 1));
    }
    let s = line.get(i..)?;
    let (t, used) = timestamp_prefix(s, allow_int_epoch, ctx)?;
    if s.as_bytes()
        .get(used)
        .is_some_and(u8::is_ascii_alphanumeric)
    {
        return None;
    }
    Some((t, i + used))
}

/// A timestamp making up the whole of `s`, in any layout this module reads (including
/// CLF and bare epoch integers). Used for bracketed timestamps and by the custom parser.
pub(crate) fn timestamp_exact(s: &str, ctx: &ParseContext) -> Option<Timestamp> {
    if let Some(t) = time::clf(s) {
        return Some(t);
    }
    match timestamp_prefix(s, true, ctx) {
        Some((t, used)) if used == s.len() => Some(t),
        _ => None,
    }
}

/// A timestamp at the start of `s`, in the layouts of the module table (not CLF).
fn timestamp_prefix(
    s: &str,
    allow_int_epoch: bool,
    ctx: &ParseContext,
) -> Option<(Timestamp, usize)> {
    let first = *s.as_bytes().first()?;
    if first.is_ascii_digit() {
        time::iso_prefix(s, &ctx.zone)
            .or_else(|| compact(s, ctx))
            .or_else(|| hdfs(s, ctx))
            .or_else(|| log4j_short(s, ctx))
            .or_else(|| month_day(s, ctx))
            .or_else(|| epoch_prefix(s, allow_int_epoch))
    } else if first.is_ascii_alphabetic() {
        ctime(s, ctx).or_else(|| time::bsd_prefix(s, &ctx.zone, ctx.now))
    } else {
        None
    }
}

/// A wall-clock date and time in the context's zone.
fn resolve(
    ctx: &ParseContext,
    y: i32,
    mo: u32,
    d: u32,
    (h, mi, s, ns): (u32, u32, u32, u32),
) -> Option<Timestamp> {
    time::local(&ctx.zone, y, mo, d, (h, mi, s.min(59), ns))
}

/// `yyyyMMdd-HH:MM:SS.fff` (also `T` or a space between date and time). Hours, minutes
/// and seconds may be unpadded, and a fraction after `:` is a millisecond count
/// (HealthApp writes `20171223-22:16:0:119` and `20171223-22:15:35:11`).
fn compact(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let mut c = Cursor::new(s.as_bytes(), 0);
    let y = c.digits(4)?;
    let mo = c.digits(2)?;
    let d = c.digits(2)?;
    c.byte(b"-T ")?;
    let h = c.day()?;
    c.byte(b":")?;
    let mi = c.day()?;
    c.byte(b":")?;
    let sec = c.day()?;
    let mut ns = c.fraction(b".,");
    if ns == 0 && c.byte(b":").is_some() {
        let ms = c
            .digits(3)
            .or_else(|| c.digits(2))
            .or_else(|| c.digits(1))?;
        ns = ms * 1_000_000;
    }
    Some((resolve(ctx, y as i32, mo, d, (h, mi, sec, ns))?, c.i))
}

/// HDFS `yyMMdd HHmmss`.
fn hdfs(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let mut c = Cursor::new(s.as_bytes(), 0);
    let y = c.digits(2)?;
    let mo = c.digits(2)?;
    let d = c.digits(2)?;
    c.byte(b" ")?;
    let h = c.digits(2)?;
    let mi = c.digits(2)?;
    let sec = c.digits(2)?;
    if sec > 59 {
        return None;
    }
    let t = resolve(ctx, 2000 + y as i32, mo, d, (h, mi, sec, 0))?;
    Some((t, c.i))
}

/// log4j's `yy/MM/dd HH:mm:ss` (Spark, Hadoop defaults).
fn log4j_short(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let mut c = Cursor::new(s.as_bytes(), 0);
    let y = c.digits(2)?;
    c.byte(b"/")?;
    let mo = c.digits(2)?;
    c.byte(b"/")?;
    let d = c.digits(2)?;
    c.byte(b" ")?;
    let tod = c.clock(b".,")?;
    Some((resolve(ctx, 2000 + y as i32, mo, d, tod)?, c.i))
}

/// Android logcat `MM-DD HH:MM:SS.mmm` (also `MM.DD`), year inferred.
fn month_day(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let mut c = Cursor::new(s.as_bytes(), 0);
    let mo = c.digits(2)?;
    c.byte(b"-.")?;
    let d = c.digits(2)?;
    c.byte(b" ")?;
    let tod = c.clock(b".,")?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let y = time::infer_year(mo, d, ctx.now);
    Some((resolve(ctx, y, mo, d, tod)?, c.i))
}

/// `Www Mmm dd HH:MM:SS[.frac] [yyyy]` or `Mmm dd HH:MM:SS[.frac] yyyy`: a weekday or a
/// trailing year (or both) is required; the plain BSD form is left to
/// [`time::bsd_prefix`].
fn ctime(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
    let b = s.as_bytes();
    let mut c = Cursor::new(b, 0);
    let weekday = b
        .get(..3)
        .is_some_and(|w| b.get(3) == Some(&b' ') && DAYS.iter().any(|d| d.eq_ignore_ascii_case(w)));
    if weekday {
        c.i = 4;
    }
    let mo = time::month(b.get(c.i..c.i + 3)?)?;
    c.i += 3;
    c.byte(b" ")?;
    c.byte(b" ");
    let d = c.day()?;
    c.byte(b" ")?;
    let tod = c.clock(b".,")?;
    let save = c.i;
    let year = match c.byte(b" ").and_then(|_| c.digits(4)) {
        Some(y) if !c.b.get(c.i).is_some_and(u8::is_ascii_alphanumeric) => Some(y as i32),
        _ => {
            c.i = save;
            None
        }
    };
    if !weekday && year.is_none() {
        return None;
    }
    let y = year.unwrap_or_else(|| time::infer_year(mo, d, ctx.now));
    Some((resolve(ctx, y, mo, d, tod)?, c.i))
}

/// Epoch time: `1795341600.123` (9–10 digits and a fraction, seconds), or with
/// `allow_int` a bare integer of 10 digits (seconds) or 13 (milliseconds).
fn epoch_prefix(s: &str, allow_int: bool) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let int: i64 = s[..int_len].parse().ok()?;
    let mut c = Cursor::new(b, int_len);
    let before = c.i;
    let nanos = c.fraction(b".");
    if c.i > before {
        if !(9..=10).contains(&int_len) {
            return None;
        }
        let t = int
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(nanos))?;
        return (t > 0).then_some((Timestamp(t), c.i));
    }
    if allow_int && (int_len == 10 || int_len == 13) {
        return time::epoch_int(int).map(|t| (t, int_len));
    }
    None
}
