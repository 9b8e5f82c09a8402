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

use logferry_shared::event::Level;

mod timestamp;

use super::{level, ParseContext, Parsed, Parser, Value};
use timestamp::timestamp_at;
pub(crate) use timestamp::timestamp_exact;

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
    // The word is the letters at the end; only a bracketed token may have a `module:`
    // before them. (Scanning back over letters is cheaper than searching for a `:`, and
    // most tokens fail at their last byte.)
    let ib = inner.as_bytes();
    let letters = ib
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if !(2..=13).contains(&letters) {
        return None;
    }
    let split = ib.len() - letters;
    let word = &inner[split..];
    let module = match (form, split) {
        (_, 0) => None,
        (Form::Bracketed, _) if ib[split - 1] == b':' => {
            let m = &inner[..split - 1];
            if m.is_empty()
                || !m
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                return None;
            }
            Some(m)
        }
        _ => return None,
    };
    let wb = word.as_bytes();
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

#[cfg(test)]
mod tests;
