//! Plain text: the fallback parser. It accepts every line ([`PlainParser`] always answers
//! `Some`) and pulls out what the start of the line makes unambiguous.
//!
//! **Timestamp** — at the start of the line, optionally in brackets (`[...]`), or right
//! after one leading token (a level word, a `-` placeholder, or anything else, which is
//! then kept in the field `prefix`). Layouts:
//!
//! | layout | example | notes |
//! |---|---|---|
//! | ISO 8601 / RFC 3339 | `2026-11-22T10:00:00.123Z`, `2026/11/22 10:00:00,5` | [`time::iso_prefix`] |
//! | BSD syslog | `Nov 22 10:00:00` | [`time::bsd_prefix`]; year inferred |
//! | ctime | `Sun Nov 22 10:00:00 2026`, `Sun Nov 22 10:00:00.123456 2026` | Apache error log |
//! | Android logcat | `11-22 10:00:00.123` | `MM-DD` (or `MM.DD`); year inferred |
//! | HDFS | `261122 100000` | `yyMMdd HHmmss` |
//! | log4j short | `26/11/22 10:00:00` | `yy/MM/dd HH:mm:ss` (Spark, Hadoop); always read year first |
//! | compact | `20261122-10:00:00:123` | `yyyyMMdd`, `-`/`T`/space; clock may be unpadded; `:fff` is milliseconds |
//! | epoch | `1795341600.123` | seconds with a fraction; a bare 10-digit (seconds) or 13-digit (milliseconds) integer only at the very start of the line or after `-` / a level |
//! | CLF (bracketed only) | `[22/Nov/2026:10:00:00 +0000]` | [`time::clf`] |
//!
//! A time of day alone (`10:00:00`) is not a timestamp. A timestamp must end at a word
//! boundary. Zone-less times are read in [`ParseContext::zone`].
//!
//! **Head** — after the timestamp (and separators `-`, `|`, `,`), in this order:
//!
//! * Android logcat `pid tid L tag: text` (threadtime): fields `pid`, `tid`, `component`
//!   (the tag) and the level from the single letter `V D I W E F A`. This is the only
//!   place a single-letter level is accepted.
//! * `pid LEVEL` (HDFS, OpenStack): field `pid`, then the level.
//! * `LEVEL`: a level word ([`level::from_word`]) bare (`ERROR`, `Info`), bracketed
//!   (`[warn]`, `<error>`, Apache 2.4's `[core:error]`, whose module becomes the field
//!   `module`) or with a colon (`ERROR:`). Bare words that are also ordinary English
//!   (`ok`, `fine`, `config`, …) count only in brackets. A bare level word that is not
//!   upper-case and not preceded by a timestamp (`Error handling request`) sets the level
//!   but stays in the message unless padding (two blanks or a tab) follows it.
//! * After a level, optionally a thread in brackets (field `thread`: `[main]`; with
//!   blanks only when a logger or a lone `-` follows, so Apache's `[client 1.2.3.4]`
//!   stays in the message) and a logger: a dotted or `$` name ending in `:` or followed
//!   by a lone `-` (`org.example.Service:`, field `logger`).
//!
//! The message is the rest of the line after the pieces taken out (trailing blanks
//! trimmed).
//!
//! **Level further in** — when the head has no level, the first ten tokens are scanned
//! for a level token that cannot be prose: bracketed, with a colon, or an upper-case word
//! of three letters or more (`combo sshd[1]: error: ...`, BGL's `RAS KERNEL INFO ...`).
//! A word with a colon counts only where a message segment starts (first, or after a
//! token ending in `:` or `]`), as `Component Information:` further in is a label. The
//! scan stops at the first two consecutive ordinary words (the message has started).
//! Such a level is not removed from the message.
//!
//! No regex, no allocation besides the field list; every slice borrows from the line.

use std::borrow::Cow;

use chrono::NaiveDate;
use logferry_shared::event::{Level, Timestamp};

use super::{level, time, ParseContext, Parsed, Parser, Value};

/// The plain-text fallback parser (`plain`). See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainParser;

impl Parser for PlainParser {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        Some(parse_line(line, ctx))
    }
}

/// How many tokens the level scan looks at.
const SCAN_TOKENS: usize = 10;
/// The longest leading token skipped to find a timestamp after it.
const MAX_PREFIX: usize = 64;
/// The longest bracketed timestamp considered.
const MAX_BRACKET: usize = 64;
/// The longest bracketed thread considered.
const MAX_THREAD: usize = 256;
/// The longest logcat tag considered.
const MAX_TAG: usize = 128;

/// Parses one line; never fails.
pub fn parse_line<'a>(line: &'a str, ctx: &ParseContext) -> Parsed<'a> {
    let b = line.as_bytes();
    let mut out = Parsed {
        message: Cow::Borrowed(""),
        ..Parsed::default()
    };

    // 1. Timestamp: at the start, or after one leading token.
    let mut head = 0;
    let mut have_ts = false;
    if let Some((t, end)) = timestamp_at(line, 0, true, ctx) {
        out.timestamp = Some(t);
        head = end;
        have_ts = true;
    } else {
        let first_end = token_end(b, 0);
        let next = skip_blanks(b, first_end);
        if first_end > 0 && first_end <= MAX_PREFIX && next > first_end {
            let first = &line[..first_end];
            let lv = classify(first).filter(|t| t.accept_adjacent());
            let allow_int = lv.is_some() || first == "-";
            if let Some((t, end)) = timestamp_at(line, next, allow_int, ctx) {
                out.timestamp = Some(t);
                head = end;
                have_ts = true;
                match lv {
                    Some(l) => {
                        out.level = Some(l.level);
                        if let Some(m) = l.module {
                            out.fields.push(("module".into(), Value::Str(m.into())));
                        }
                    }
                    None if first == "-" => {}
                    None => out.fields.push(("prefix".into(), Value::Str(first.into()))),
                }
            }
        }
    }
    let head = if have_ts {
        skip_separators(b, head)
    } else {
        skip_blanks(b, 0)
    };
    // Without a timestamp the message keeps leading blanks (continuation lines).
    let mut msg_start = if have_ts { head } else { 0 };

    // 2. Head: logcat and `pid LEVEL` (after a timestamp only), `LEVEL`.
    if out.level.is_none() {
        let logcat_end = if have_ts {
            logcat(line, head, &mut out)
        } else {
            None
        };
        if let Some(after) = logcat_end {
            msg_start = after;
        } else if let Some(after) = have_ts.then(|| pid_level(line, head, &mut out)).flatten() {
            msg_start = after_level(line, after, &mut out);
        } else if let Some((s, e)) = token(b, head) {
            if let Some(l) = classify(&line[s..e]).filter(|t| t.accept_adjacent()) {
                out.level = Some(l.level);
                if let Some(m) = l.module {
                    out.fields.push(("module".into(), Value::Str(m.into())));
                }
                let keep = l.form == Form::Bare && !l.upper && !have_ts && !padded(b, e);
                if !keep {
                    msg_start = after_level(line, e, &mut out);
                }
            }
        }
    } else {
        // The level came before the timestamp; a thread or logger may still follow.
        msg_start = after_level(line, head, &mut out);
    }

    // 3. A level further in, not removed.
    if out.level.is_none() {
        out.level = scan_level(line, head);
    }

    out.message = Cow::Borrowed(line.get(msg_start..).unwrap_or("").trim_end());
    out
}

// ---------------------------------------------------------------------------------------
// Tokens

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !is_blank(b[i]) {
        i += 1;
    }
    i
}

/// The next blank-delimited token at or after `i`, as a byte range.
fn token(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let s = skip_blanks(b, i);
    if s >= b.len() {
        return None;
    }
    Some((s, token_end(b, s)))
}

/// Blanks and separator punctuation between header pieces: `,` `|` anywhere, `-` `:`
/// when they stand alone.
fn skip_separators(b: &[u8], mut i: usize) -> usize {
    loop {
        i = skip_blanks(b, i);
        match b.get(i) {
            Some(b',' | b'|') => i += 1,
            Some(b'-' | b':') if b.get(i + 1).is_none_or(|&c| is_blank(c)) => i += 1,
            _ => return i,
        }
    }
}

/// Whether column padding (two blanks, or a tab) follows position `i`.
fn padded(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(b'\t') => true,
        Some(b' ') => b.get(i + 1).is_some_and(|&c| is_blank(c)),
        _ => false,
    }
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// An ordinary word (`failed`, `Received`), used to tell where prose starts.
fn is_plain_word(tok: &str) -> bool {
    let w = tok.trim_end_matches([',', ';', '.']);
    let b = w.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1..].iter().all(u8::is_ascii_lowercase)
}

// ---------------------------------------------------------------------------------------
// Levels

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Bare,
    Bracketed,
    Colon,
}

#[derive(Debug, Clone, Copy)]
struct LevelToken<'a> {
    level: Level,
    form: Form,
    /// All upper-case (`ERROR`).
    upper: bool,
    /// A level word that is also an everyday word (`ok`, `fine`, `config`).
    weak: bool,
    /// Apache 2.4 `[module:level]`.
    module: Option<&'a str>,
}

impl LevelToken<'_> {
    /// Right after the timestamp (or at the start of the line).
    fn accept_adjacent(&self) -> bool {
        !self.weak || self.form == Form::Bracketed
    }

    /// Further in, where prose is possible: only forms prose does not produce.
    fn accept_scan(&self) -> bool {
        !self.weak && (self.form != Form::Bare || self.upper)
    }
}

/// A token that is a multi-letter level word: `WARN`, `[warn]`, `<warn>`, `warn:`,
/// `[warn]:`, `[core:warn]`.
fn classify(tok: &str) -> Option<LevelToken<'_>> {
    let t = tok.strip_suffix(':').unwrap_or(tok);
    let bracketed = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .or_else(|| t.strip_prefix('<').and_then(|r| r.strip_suffix('>')));
    let (inner, form) = if let Some(inner) = bracketed {
        (inner, Form::Bracketed)
    } else if let Some(inner) = tok.strip_suffix(':') {
        (inner, Form::Colon)
    } else {
        (tok, Form::Bare)
    };
    let (module, word) = match (form, inner.rfind(':')) {
        (Form::Bracketed, Some(i)) => {
            let m = &inner[..i];
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                return None;
            }
            (Some(m), &inner[i + 1..])
        }
        _ => (None, inner),
    };
    let wb = word.as_bytes();
    if wb.len() < 2 || wb.len() > 13 || !wb.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let level = level::from_word(word)?;
    let upper = wb.iter().all(u8::is_ascii_uppercase);
    let weak = ["ok", "fine", "finer", "finest", "config"]
        .iter()
        .any(|w| w.eq_ignore_ascii_case(word));
    if upper && wb.len() < 3 && form == Form::Bare {
        // `OK` and the like: too short to be sure.
        return None;
    }
    Some(LevelToken {
        level,
        form,
        upper,
        weak,
        module,
    })
}

/// The first scan-safe level token among the first [`SCAN_TOKENS`] tokens from `i`. A
/// word with a colon counts only where a message starts: first, or after a token ending
/// in `:` or `]` (`sshd[1]: error: ...`, but not `IOPMPowerSource Information: ...`).
pub(crate) fn scan_level(line: &str, mut i: usize) -> Option<Level> {
    let b = line.as_bytes();
    let mut prev_plain = false;
    let mut at_start = true;
    for _ in 0..SCAN_TOKENS {
        let (s, e) = token(b, i)?;
        let tok = &line[s..e];
        if let Some(l) = classify(tok).filter(|t| t.accept_scan()) {
            if l.form != Form::Colon || at_start {
                return Some(l.level);
            }
        }
        at_start = tok.ends_with(':') || tok.ends_with(']');
        let plain = is_plain_word(tok);
        if plain && prev_plain {
            return None;
        }
        prev_plain = plain;
        i = e;
    }
    None
}

/// A single-letter logcat level (`A` is logcat's "assert").
fn logcat_letter(c: u8) -> Option<Level> {
    Some(match c {
        b'V' => Level::Trace,
        b'D' => Level::Debug,
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' | b'A' => Level::Fatal,
        _ => return None,
    })
}

fn int_value(s: &str) -> Value<'_> {
    s.parse::<i64>()
        .map(Value::Int)
        .unwrap_or(Value::Str(s.into()))
}

/// Android logcat threadtime after the timestamp: `pid tid L tag: text`. Returns where the
/// message starts.
fn logcat<'a>(line: &'a str, i: usize, out: &mut Parsed<'a>) -> Option<usize> {
    let b = line.as_bytes();
    let (ps, pe) = token(b, i)?;
    let (ts_, te) = token(b, pe)?;
    let (ls, le) = token(b, te)?;
    if pe - ps > 10 || te - ts_ > 10 || le - ls != 1 {
        return None;
    }
    if !all_digits(&b[ps..pe]) || !all_digits(&b[ts_..te]) {
        return None;
    }
    let lv = logcat_letter(b[ls])?;
    out.level = Some(lv);
    out.fields.push(("pid".into(), int_value(&line[ps..pe])));
    out.fields.push(("tid".into(), int_value(&line[ts_..te])));
    let rest = skip_blanks(b, le);
    // The tag runs to the first `: ` (or a `:` ending the line).
    let limit = b.len().min(rest + MAX_TAG);
    let colon = (rest..limit).find(|&k| b[k] == b':' && b.get(k + 1).is_none_or(|&c| is_blank(c)));
    match colon {
        Some(k) => {
            let tag = line[rest..k].trim_end();
            if !tag.is_empty() {
                out.fields
                    .push(("component".into(), Value::Str(tag.into())));
            }
            Some(skip_blanks(b, k + 1))
        }
        None => Some(rest),
    }
}

/// `pid LEVEL` after the timestamp. Returns the end of the level token.
fn pid_level<'a>(line: &'a str, i: usize, out: &mut Parsed<'a>) -> Option<usize> {
    let b = line.as_bytes();
    let (ps, pe) = token(b, i)?;
    if pe - ps > 10 || !all_digits(&b[ps..pe]) {
        return None;
    }
    let (ls, le) = token(b, pe)?;
    let l = classify(&line[ls..le]).filter(|t| t.accept_adjacent())?;
    out.level = Some(l.level);
    out.fields.push(("pid".into(), int_value(&line[ps..pe])));
    if let Some(m) = l.module {
        out.fields.push(("module".into(), Value::Str(m.into())));
    }
    Some(le)
}

/// A logger name: starts with a letter, identifier characters, at least one `.` or `$`
/// inside.
fn is_logger(name: &str) -> bool {
    let b = name.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.len() <= 200
        && !name.ends_with('.')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'$' | b'-' | b'/'))
        && b[1..].iter().any(|&c| c == b'.' || c == b'$')
}

/// A logger at `p`: `name:` or `name -` with [`is_logger`] `name`. Returns the name and
/// where the text after it starts.
fn logger_at(line: &str, p: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    let (s, e) = token(b, p)?;
    let tok = &line[s..e];
    if let Some(name) = tok.strip_suffix(':').filter(|n| is_logger(n)) {
        return Some((name, skip_blanks(b, e)));
    }
    if is_logger(tok) {
        let (ds, de) = token(b, e)?;
        if &line[ds..de] == "-" {
            return Some((tok, skip_blanks(b, de)));
        }
    }
    None
}

/// The end (index of the closing `]`) of a balanced bracket starting at `p`, and
/// whether it holds blanks.
fn bracket_end(b: &[u8], p: usize) -> Option<(usize, bool)> {
    let mut depth = 0usize;
    let mut blanks = false;
    let limit = b.len().min(p + MAX_THREAD);
    for (k, &c) in b.iter().enumerate().take(limit).skip(p) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some((k, blanks));
                }
            }
            c if is_blank(c) => blanks = true,
            _ => {}
        }
    }
    None
}

/// After a level: separators, an optional `[thread]`, an optional logger. Returns where
/// the message starts.
///
/// A bracket is a thread when it holds no blanks (`[main]`,
/// `[QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:Election@774]`), or when a logger or a lone
/// `-` follows it (`[IPC Server handler 0 on 62270] org.apache.Server: ...`); otherwise
/// it stays in the message (Apache's `[client 203.0.113.9] File does not exist`).
fn after_level<'a>(line: &'a str, i: usize, out: &mut Parsed<'a>) -> usize {
    let b = line.as_bytes();
    let mut p = skip_separators(b, i);
    if b.get(p) == Some(&b'[') {
        if let Some((k, blanks)) = bracket_end(b, p) {
            let after = k + 1;
            let ends = b.get(after).is_none_or(|&c| is_blank(c));
            let dash = token(b, after).is_some_and(|(s, e)| &line[s..e] == "-");
            if k > p + 1 && ends && (!blanks || dash || logger_at(line, after).is_some()) {
                out.fields
                    .push(("thread".into(), Value::Str(line[p + 1..k].into())));
                p = skip_separators(b, after);
            }
        }
    }
    if let Some((name, next)) = logger_at(line, p) {
        out.fields.push(("logger".into(), Value::Str(name.into())));
        p = next;
    }
    p
}

// ---------------------------------------------------------------------------------------
// Timestamps

/// A timestamp starting at byte `i` of `line`, bracketed or not, ending at a word
/// boundary: the instant and the byte offset after it (after `]` if bracketed).
fn timestamp_at(
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

/// A byte cursor for the layouts time.rs does not cover.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        if !all_digits(s) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |v, &c| v * 10 + u32::from(c - b'0')))
    }

    fn byte(&mut self, allowed: &[u8]) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if allowed.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    /// One or two digits.
    fn day(&mut self) -> Option<u32> {
        self.digits(2).or_else(|| self.digits(1))
    }

    /// A fraction after one of `seps`, as nanoseconds; nothing consumed if no digit.
    fn fraction(&mut self, seps: &[u8]) -> u32 {
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
        let n = self.i - start;
        if n == 0 {
            self.i = save;
            return 0;
        }
        nanos * 10u32.pow(9 - n.min(9) as u32)
    }

    /// `HH:MM:SS` and an optional fraction after one of `seps`.
    fn clock(&mut self, seps: &[u8]) -> Option<(u32, u32, u32, u32)> {
        let h = self.digits(2)?;
        self.byte(b":")?;
        let m = self.digits(2)?;
        self.byte(b":")?;
        let s = self.digits(2)?;
        Some((h, m, s, self.fraction(seps)))
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
    let s = s.min(59);
    let dt = NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_nano_opt(h, mi, s, ns)?;
    ctx.zone.resolve(dt)
}

/// `yyyyMMdd-HH:MM:SS.fff` (also `T` or a space between date and time). Hours, minutes
/// and seconds may be unpadded, and a fraction after `:` is a millisecond count
/// (HealthApp writes `20171223-22:16:0:119` and `20171223-22:15:35:11`).
fn compact(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let mut c = Cur {
        b: s.as_bytes(),
        i: 0,
    };
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
    let mut c = Cur {
        b: s.as_bytes(),
        i: 0,
    };
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
    let mut c = Cur {
        b: s.as_bytes(),
        i: 0,
    };
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
    let mut c = Cur {
        b: s.as_bytes(),
        i: 0,
    };
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
    let mut c = Cur { b, i: 0 };
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
    let mut c = Cur { b, i: int_len };
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp(
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .timestamp_nanos_opt()
                .unwrap(),
        )
    }

    fn ctx() -> ParseContext {
        ParseContext {
            zone: time::Zone::Utc,
            now: ts("2026-11-22T12:00:00Z"),
        }
    }

    fn p(line: &str) -> Parsed<'_> {
        PlainParser
            .parse(line, &ctx())
            .expect("plain always parses")
    }

    fn field<'p>(p: &'p Parsed<'_>, key: &str) -> Option<&'p Value<'p>> {
        p.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn s(v: &str) -> Value<'_> {
        Value::Str(v.into())
    }

    #[test]
    fn timestamp_layouts() {
        let cases = [
            ("2026-11-22T10:00:00.123Z hello", "2026-11-22T10:00:00.123Z"),
            ("2026/11/22 10:00:00 hello", "2026-11-22T10:00:00Z"),
            ("[2026-11-22 10:00:00,5] hello", "2026-11-22T10:00:00.5Z"),
            ("Nov 22 10:00:00 hello", "2026-11-22T10:00:00Z"),
            ("[Nov  2 10:00:00] hello", "2026-11-02T10:00:00Z"),
            ("[Sun Dec 04 04:47:44 2005] hello", "2005-12-04T04:47:44Z"),
            (
                "[Sun Nov 22 10:00:00.250000 2026] hello",
                "2026-11-22T10:00:00.25Z",
            ),
            ("Sun Nov 22 10:00:00 hello", "2026-11-22T10:00:00Z"),
            ("Nov 22 10:00:00 2025 hello", "2025-11-22T10:00:00Z"),
            ("11-22 10:00:00.123 hello", "2026-11-22T10:00:00.123Z"),
            ("[11.22 10:00:00] hello", "2026-11-22T10:00:00Z"),
            ("081109 203615 hello", "2008-11-09T20:36:15Z"),
            ("17/06/09 20:10:40 hello", "2017-06-09T20:10:40Z"),
            ("20171223-22:15:29:606|x|hello", "2017-12-23T22:15:29.606Z"),
            ("20171223-22:16:0:11|x|hello", "2017-12-23T22:16:00.011Z"),
            ("20171223T22:15:29.5 hello", "2017-12-23T22:15:29.5Z"),
            ("1795341600.123 hello", "2026-11-22T10:00:00.123Z"),
            ("1795341600 hello", "2026-11-22T10:00:00Z"),
            ("1795341600123 hello", "2026-11-22T10:00:00.123Z"),
            ("[1795341600] hello", "2026-11-22T10:00:00Z"),
            ("[22/Nov/2026:11:00:00 +0100] hello", "2026-11-22T10:00:00Z"),
            ("- 1795341600 hello", "2026-11-22T10:00:00Z"),
        ];
        for (line, want) in cases {
            let got = p(line);
            assert_eq!(got.timestamp, Some(ts(want)), "{line}");
            assert!(got.message.ends_with("hello"), "{line}: {:?}", got.message);
        }
        // December lines read in January, logcat flavour.
        let jan = ParseContext {
            zone: time::Zone::Utc,
            now: ts("2027-01-01T00:10:00Z"),
        };
        let got = PlainParser.parse("12-31 23:59:59.000 x", &jan).unwrap();
        assert_eq!(got.timestamp, Some(ts("2026-12-31T23:59:59Z")));
    }

    #[test]
    fn not_timestamps() {
        for line in [
            "10:00:00 started",
            "12:00 noon",
            "1234 items",
            "123456789 items",
            "2026-11-22 only a date",
            "13-45 10:00:00 bad month",
            "081109 2036151 too many digits",
            "Nov 22 10:00 no seconds",
            "Foo 22 10:00:00 x",
            "[10:00:00] bracketed time",
            "[2026-11-22 10:00:00 trailing] x",
            "1795341600x glued",
            "2026-11-22T10:00:00Zulu",
            "the 1795341600 is not at the start",
        ] {
            assert_eq!(p(line).timestamp, None, "{line}");
            assert_eq!(p(line).message, line.trim_end(), "{line}");
        }
    }

    #[test]
    fn zone_applies_to_zoneless_layouts() {
        let berlin = ParseContext {
            zone: time::Zone::parse("Europe/Berlin").unwrap(),
            now: ts("2026-11-22T12:00:00Z"),
        };
        for line in [
            "2026-11-22 11:00:00 x",
            "11-22 11:00:00.000 x",
            "261122 110000 x",
            "Nov 22 11:00:00 x",
        ] {
            let got = PlainParser.parse(line, &berlin).unwrap();
            assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00Z")), "{line}");
        }
        let got = PlainParser.parse("1795341600.5 x", &berlin).unwrap();
        assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00.5Z")));
    }

    #[test]
    fn levels_after_the_timestamp() {
        let cases = [
            ("2026-11-22 10:00:00 ERROR db down", Level::Error, "db down"),
            (
                "2026-11-22 10:00:00 [warn] disk 91%",
                Level::Warn,
                "disk 91%",
            ),
            ("2026-11-22 10:00:00 WARNING: slow", Level::Warn, "slow"),
            (
                "2026-11-22 10:00:00 - INFO - started",
                Level::Info,
                "started",
            ),
            ("2026-11-22 10:00:00, Info     CBS x", Level::Info, "CBS x"),
            ("2026-11-22 10:00:00 <crit> boom", Level::Fatal, "boom"),
            ("[2026-11-22 10:00:00] debug: x=1", Level::Debug, "x=1"),
            (
                "2026-11-22 10:00:00 error cannot open",
                Level::Error,
                "cannot open",
            ),
            ("[WARN] 2026-11-22 10:00:00 late", Level::Warn, "late"),
            ("ERROR: 2026-11-22T10:00:00Z bad", Level::Error, "bad"),
        ];
        for (line, lv, msg) in cases {
            let got = p(line);
            assert!(got.timestamp.is_some(), "{line}");
            assert_eq!(got.level, Some(lv), "{line}");
            assert_eq!(got.message, msg, "{line}");
        }
    }

    #[test]
    fn levels_without_a_timestamp() {
        let cases = [
            (
                "ERROR something broke",
                Some(Level::Error),
                "something broke",
            ),
            ("[warn] low disk", Some(Level::Warn), "low disk"),
            ("Warning: deprecated", Some(Level::Warn), "deprecated"),
            // Capitalised bare word: the level is taken, the word stays.
            (
                "Error handling request",
                Some(Level::Error),
                "Error handling request",
            ),
            (
                "info    padded columns",
                Some(Level::Info),
                "padded columns",
            ),
            // Further in: kept in the message.
            ("10:00:00 ERROR x", Some(Level::Error), "10:00:00 ERROR x"),
            (
                "host app[1]: error: bad thing",
                Some(Level::Error),
                "host app[1]: error: bad thing",
            ),
            // Prose: no level.
            (
                "the build failed with an error",
                None,
                "the build failed with an error",
            ),
            (
                "just some text ERROR later",
                None,
                "just some text ERROR later",
            ),
            ("ok then", None, "ok then"),
            ("OK done", None, "OK done"),
            ("Fine, thanks", None, "Fine, thanks"),
            ("config: reloaded", None, "config: reloaded"),
            ("E something", None, "E something"),
            ("W", None, "W"),
            ("  indented continuation", None, "  indented continuation"),
            // pid/tid layouts need a timestamp before them.
            ("1702 2395 D Tag: x", None, "1702 2395 D Tag: x"),
            ("148 INFO started", Some(Level::Info), "148 INFO started"),
            (
                "\tat com.example.Foo.bar(Foo.java:10)",
                None,
                "\tat com.example.Foo.bar(Foo.java:10)",
            ),
        ];
        for (line, lv, msg) in cases {
            let got = p(line);
            assert_eq!(got.timestamp, None, "{line}");
            assert_eq!(got.level, lv, "{line}");
            assert_eq!(got.message, msg, "{line}");
        }
    }

    #[test]
    fn weak_words_only_in_brackets() {
        assert_eq!(
            p("2026-11-22 10:00:00 [OK] mounted").level,
            Some(Level::Info)
        );
        assert_eq!(p("2026-11-22 10:00:00 [OK] mounted").message, "mounted");
        let got = p("2026-11-22 10:00:00 ok mounted");
        assert_eq!(got.level, None);
        assert_eq!(got.message, "ok mounted");
        assert_eq!(p("2026-11-22 10:00:00 200 OK").level, None);
    }

    #[test]
    fn logcat() {
        let got = p("11-22 10:00:00.123  1702  2395 D WindowManager: opening app");
        assert_eq!(got.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
        assert_eq!(got.level, Some(Level::Debug));
        assert_eq!(got.message, "opening app");
        assert_eq!(field(&got, "pid"), Some(&Value::Int(1702)));
        assert_eq!(field(&got, "tid"), Some(&Value::Int(2395)));
        assert_eq!(field(&got, "component"), Some(&s("WindowManager")));
        for (letter, lv) in [
            ("V", Level::Trace),
            ("I", Level::Info),
            ("W", Level::Warn),
            ("E", Level::Error),
            ("F", Level::Fatal),
            ("A", Level::Fatal),
        ] {
            let line = format!("11-22 10:00:00.123 1 2 {letter} Tag   : x");
            let got = p(&line);
            assert_eq!(got.level, Some(lv), "{line}");
            assert_eq!(got.message, "x");
            assert_eq!(field(&got, "component"), Some(&s("Tag")));
        }
        // Not a logcat letter, or not after a pid/tid pair.
        let got = p("11-22 10:00:00.123 1 2 X Tag: x");
        assert_eq!(got.level, None);
        assert_eq!(got.message, "1 2 X Tag: x");
        assert_eq!(p("2026-11-22 10:00:00 1 E x").level, None);
        assert_eq!(p("2026-11-22 10:00:00 I think so").level, None);
        // No tag colon: the message follows the letter.
        let got = p("11-22 10:00:00.123 1 2 I no tag here");
        assert_eq!(got.message, "no tag here");
        assert_eq!(field(&got, "component"), None);
    }

    #[test]
    fn java_like_heads() {
        let got = p("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.App: Created it");
        assert_eq!(got.level, Some(Level::Info));
        assert_eq!(got.message, "Created it");
        assert_eq!(field(&got, "thread"), Some(&s("main")));
        assert_eq!(field(&got, "logger"), Some(&s("org.apache.hadoop.App")));

        let got = p("2015-07-29 17:41:44,747 - WARN  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:Election@774] - Notification time out: 3200");
        assert_eq!(got.level, Some(Level::Warn));
        assert_eq!(got.message, "Notification time out: 3200");
        assert_eq!(
            field(&got, "thread"),
            Some(&s("QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:Election@774"))
        );

        let got =
            p("2026-11-22 10:00:00.000 ERROR [http-nio-8080-exec-1] c.e.web.Api - request failed");
        assert_eq!(got.message, "request failed");
        assert_eq!(field(&got, "logger"), Some(&s("c.e.web.Api")));

        let got = p(
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
        );
        assert_eq!(got.timestamp, Some(ts("2008-11-09T20:36:15Z")));
        assert_eq!(got.level, Some(Level::Info));
        assert_eq!(field(&got, "pid"), Some(&Value::Int(148)));
        assert_eq!(
            field(&got, "logger"),
            Some(&s("dfs.DataNode$PacketResponder"))
        );
        assert_eq!(got.message, "PacketResponder 1 terminating");

        // A bracket with blanks is not a thread; a plain word is not a logger.
        let got = p("2026-11-22 10:00:00 [error] [client 1.2.3.4] File does not exist");
        assert_eq!(field(&got, "thread"), None);
        assert_eq!(got.message, "[client 1.2.3.4] File does not exist");
        let got = p("2026-11-22 10:00:00 WARN Retrying: attempt 3");
        assert_eq!(field(&got, "logger"), None);
        assert_eq!(got.message, "Retrying: attempt 3");
    }

    #[test]
    fn apache_module_level_and_prefix() {
        let got = p("[Sun Nov 22 10:00:00.123456 2026] [core:error] [pid 1:tid 2] AH00128: nope");
        assert_eq!(got.level, Some(Level::Error));
        assert_eq!(field(&got, "module"), Some(&s("core")));
        assert_eq!(got.message, "[pid 1:tid 2] AH00128: nope");

        let got = p("nova-api.log.1 2017-05-16 00:00:00.008 25746 INFO nova.api [req-1] GET /");
        assert_eq!(got.timestamp, Some(ts("2017-05-16T00:00:00.008Z")));
        assert_eq!(field(&got, "prefix"), Some(&s("nova-api.log.1")));
        assert_eq!(field(&got, "pid"), Some(&Value::Int(25746)));
        assert_eq!(got.level, Some(Level::Info));
        assert_eq!(got.message, "nova.api [req-1] GET /");
    }

    #[test]
    fn scan_finds_structured_levels_only() {
        let got = p("- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL INFO instruction cache parity error corrected");
        assert_eq!(got.timestamp, Some(ts("2005-06-03T22:42:50Z")));
        assert_eq!(got.level, Some(Level::Info));
        assert!(got
            .message
            .ends_with("RAS KERNEL INFO instruction cache parity error corrected"));
        let got = p("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; ERROR");
        assert_eq!(got.level, None);
        let got = p("Jun 15 04:06:20 combo logrotate: ALERT exited abnormally with [1]");
        assert_eq!(got.level, Some(Level::Fatal));
        assert_eq!(
            got.message,
            "combo logrotate: ALERT exited abnormally with [1]"
        );
        let got = p("Jul  2 02:32:17 host kernel[0]: [HID] [ATC] [Error] AppleDevice start");
        assert_eq!(got.level, Some(Level::Error));
    }

    #[test]
    fn message_is_borrowed_and_trimmed() {
        let line = "2026-11-22 10:00:00 INFO hello   \r";
        let got = p(line);
        assert!(matches!(got.message, Cow::Borrowed("hello")));
        assert_eq!(p("").message, "");
        assert_eq!(p("2026-11-22T10:00:00Z").message, "");
        assert_eq!(p("2026-11-22T10:00:00Z INFO").message, "");
        assert_eq!(p("2026-11-22T10:00:00Z INFO").level, Some(Level::Info));
    }

    /// The shared corpus file for this format.
    #[test]
    fn corpus_cases() {
        #[derive(serde::Deserialize)]
        struct Case {
            line: String,
            format: String,
            timestamp: Option<String>,
            level: Option<String>,
            message: String,
            #[serde(default)]
            fields: serde_json::Map<String, serde_json::Value>,
            #[serde(default)]
            now: Option<String>,
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/corpus/parse/plain.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut n = 0;
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let c: Case = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            assert_eq!(c.format, "plain");
            let cx = ParseContext {
                zone: time::Zone::Utc,
                now: ts(c.now.as_deref().unwrap_or("2026-11-22T12:00:00Z")),
            };
            let got = PlainParser.parse(&c.line, &cx).unwrap();
            assert_eq!(got.timestamp, c.timestamp.as_deref().map(ts), "{}", c.line);
            assert_eq!(
                got.level.map(Level::as_str),
                c.level.as_deref(),
                "{}",
                c.line
            );
            assert_eq!(got.message, c.message, "{}", c.line);
            let mut keys: Vec<&str> = got.fields.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            let total = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), total, "duplicate keys: {}", c.line);
            assert_eq!(
                got.fields.len(),
                c.fields.len(),
                "fields of {}: {:?}",
                c.line,
                got.fields
            );
            for (k, want) in &c.fields {
                let v = field(&got, k).unwrap_or_else(|| panic!("no {k}: {}", c.line));
                let v = match v {
                    Value::Str(s) => serde_json::Value::String(s.to_string()),
                    Value::Int(i) => (*i).into(),
                    other => panic!("unexpected value {other:?}"),
                };
                assert_eq!(&v, want, "field {k}: {}", c.line);
            }
            n += 1;
        }
        assert!(n >= 15, "only {n} cases");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_and_borrows(line in "\\PC{0,80}") {
            let got = PlainParser.parse(&line, &ctx()).unwrap();
            prop_assert!(line.contains(got.message.as_ref()));
        }

        #[test]
        fn never_panics_on_near_misses(
            head in prop::sample::select(vec![
                "2026-11-22 10:00:00", "[Sun Nov 22 10:00:00 2026]", "11-22 10:00:00.1",
                "081109 203615", "17/06/09 20:10:40", "1795341600.5", "- 1795341600",
                "Nov 22 10:00:00", "[", "20171223-22:15:29:606", "ERROR", "[core:warn]",
            ]),
            tail in "[ \\t0-9A-Za-z:\\[\\]\\-.,|$<>é]{0,40}",
        ) {
            let line = format!("{head}{tail}");
            let got = PlainParser.parse(&line, &ctx()).unwrap();
            prop_assert!(line.contains(got.message.as_ref()));
            let cut: String = line.chars().take(line.chars().count() / 2).collect();
            let _ = PlainParser.parse(&cut, &ctx());
        }
    }
}
