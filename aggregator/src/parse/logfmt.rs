//! logfmt: `key=value key2="quoted value with \" escapes" flag` pairs, as written by Go's
//! `go-logfmt` / go-kit, slog's `TextHandler`, logrus' `TextFormatter` (without a TTY),
//! log15 / go-ethereum, Heroku's router and runtime, Grafana/Loki/Prometheus and
//! `tracing-logfmt`.
//!
//! # Grammar (hand-written byte scanner, no regex)
//!
//! Tokens are separated by spaces or tabs. A token is
//! - `key=value`: the key is everything up to `=` (no space, `=` or `"`); the value is
//!   either quoted — `"..."` with backslash escapes, ending at the first unescaped `"` (an
//!   unterminated quote runs to the end of the line) — or unquoted, running to the next
//!   space or tab (it may contain `=` and `"`, as in `query=a=b`); `key=` is an empty value;
//! - a bare key, `flag`, which becomes `Bool(true)`;
//! - anything else (a token starting with `=` or `"`) is junk and is skipped.
//!
//! Escapes in quoted values are those of Go's `strconv.Quote` and `go-logfmt`: `\"`, `\\`,
//! `\/`, `\n`, `\r`, `\t`, `\a`, `\b`, `\f`, `\v`, `\xNN`, `\uNNNN` (with surrogate pairs),
//! `\UNNNNNNNN`; an unknown escape is kept as written and an escape that is not valid
//! Unicode becomes U+FFFD.
//!
//! # When a line is claimed
//!
//! The line (after leading spaces) must start with a key made of identifier characters
//! (ASCII letters and digits, `.`, `-`, `_`, `/`) directly followed by `=`, must hold at
//! least two `key=value` pairs, and no more bare words than pairs (so prose such as
//! `retrying with x=5 after timeout` is not logfmt).
//!
//! # What is extracted
//!
//! The same keys as the JSON parser ([`super::fields`]), matched without regard to ASCII
//! case, first usable key of each list wins:
//! - timestamp: `time`, `ts`, `timestamp`, `@timestamp`, `datetime`, `date`, `t`, `@t`,
//!   `asctime` — RFC 3339 / ISO (zoneless ones in [`ParseContext::zone`]), or epoch numbers
//!   in s/ms/µs/ns (at least 10⁸; decimals read exactly from their digits);
//! - level: `level`, `severity`, `lvl`, `log.level`, `loglevel`, `levelname`,
//!   `severity_text`, `@l`, and, for Heroku's router, `at` — level words (log15's `dbug`,
//!   `eror`, `crit` included) and bunyan/pino numbers;
//! - message: `msg`, `message`, `log`, `text`, `event`, ... — any value; unquoted numbers
//!   and booleans are taken as written.
//!
//! These keys are removed from the fields. **Without a message key the message is the
//! whole line (leading and trailing spaces trimmed) and every key stays a field**, as in
//! the JSON parser. Other pairs become fields in line order:
//!
//! | value | [`Value`] |
//! |---|---|
//! | unquoted `true` / `false` | `Bool` |
//! | unquoted integer (`-`? digits, no leading zero) fitting `i64` | `Int` |
//! | unquoted decimal / exponent number (`1.5`, `-0.25`, `1e3`), finite | `Float` |
//! | any other unquoted text (`10ms`, `007`, `1.2.3`, `nil`) | `Str`, borrowed |
//! | quoted text (never converted) | `Str`, borrowed unless it has escapes |
//! | bare key | `Bool(true)` |
//!
//! Duplicate keys: the last value wins, at the position of the first occurrence.
//!
//! # Not handled
//!
//! Prefixes before the pairs (`2026-... heroku[router]: at=info ...` as Heroku's drain
//! shows it, klog's header) — such lines are left to other parsers; multi-line values;
//! nested keys are not turned into objects (`user.id=1` stays a flat key).

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};

use super::fields::{
    has_backslash, level_of, roles, timestamp_of, trim_bytes, trim_newline, Fields, LEVEL_KEYS,
};
use super::{ParseContext, Parsed, Parser, Value};

/// Parser for logfmt lines. See the [module docs](self).
pub struct LogfmtParser;

/// Rank of Heroku's `at` (after every [`LEVEL_KEYS`] entry).
const AT_RANK: u8 = LEVEL_KEYS.len() as u8;

impl Parser for LogfmtParser {
    fn name(&self) -> &'static str {
        "logfmt"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        // A stray `\r` (CRLF files) must not end up in the last value.
        let body = trim_bytes(line, |c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
        if !starts_with_pair(body) {
            return None;
        }
        let mut scan = Scanner { s: body, i: 0 };
        let mut fields = Fields::with_capacity(16);
        let mut roles = Roles::default();
        let (mut pairs, mut bare) = (0usize, 0usize);
        while let Some(tok) = scan.next_token() {
            match tok {
                Token::Pair { key, raw, quoted } => {
                    pairs += 1;
                    let value = if quoted {
                        Value::Str(unescape(raw))
                    } else {
                        unquoted(raw)
                    };
                    let how = if quoted { How::Quoted } else { How::Unquoted };
                    roles.add(&mut fields, Cow::Borrowed(key), value, raw, how, ctx);
                }
                Token::Bare(key) => {
                    bare += 1;
                    roles.add(
                        &mut fields,
                        Cow::Borrowed(key),
                        Value::Bool(true),
                        key,
                        How::Bare,
                        ctx,
                    );
                }
                Token::Junk => bare += 1,
            }
        }
        if pairs < 2 || bare > pairs {
            return None;
        }
        Some(roles.finish(fields, body))
    }
}

/// Identifier characters allowed in the first key.
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/')
}

/// `ident=` at the start.
fn starts_with_pair(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.iter().take_while(|&&c| is_ident(c)).count();
    n > 0 && b.get(n) == Some(&b'=')
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

enum Token<'a> {
    /// `key=value`; `raw` is the value without its quotes, escapes not yet decoded.
    Pair {
        key: &'a str,
        raw: &'a str,
        quoted: bool,
    },
    Bare(&'a str),
    Junk,
}

/// Splits a line into tokens. Every slice boundary is at an ASCII byte (space, tab, `=`,
/// `"`) or at the ends, so slicing the `str` never splits a character.
struct Scanner<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    fn next_token(&mut self) -> Option<Token<'a>> {
        let b = self.s.as_bytes();
        while self.i < b.len() && is_space(b[self.i]) {
            self.i += 1;
        }
        if self.i >= b.len() {
            return None;
        }
        let start = self.i;
        while self.i < b.len() && !is_space(b[self.i]) && b[self.i] != b'=' && b[self.i] != b'"' {
            self.i += 1;
        }
        let key = &self.s[start..self.i];
        let next = b.get(self.i).copied();
        if key.is_empty() {
            // `=x` or a stray quoted string: skip it (a quoted one as a whole).
            if next == Some(b'"') {
                self.quoted();
            } else {
                self.skip_to_space();
            }
            return Some(Token::Junk);
        }
        match next {
            Some(b'=') => {
                self.i += 1;
                if b.get(self.i) == Some(&b'"') {
                    let raw = self.quoted();
                    Some(Token::Pair {
                        key,
                        raw,
                        quoted: true,
                    })
                } else {
                    let vstart = self.i;
                    self.skip_to_space();
                    Some(Token::Pair {
                        key,
                        raw: &self.s[vstart..self.i],
                        quoted: false,
                    })
                }
            }
            Some(b'"') => {
                // `key"..."`: not logfmt; skip the rest of the token.
                self.skip_to_space();
                Some(Token::Junk)
            }
            _ => Some(Token::Bare(key)),
        }
    }

    fn skip_to_space(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() && !is_space(b[self.i]) {
            self.i += 1;
        }
    }

    /// At an opening `"`: the text up to the closing unescaped `"` (or the end of the
    /// line), leaving the cursor after the closing quote.
    fn quoted(&mut self) -> &'a str {
        let b = self.s.as_bytes();
        self.i += 1;
        let start = self.i;
        while self.i < b.len() {
            match b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return raw;
                }
                _ => self.i += 1,
            }
        }
        // Unterminated (or ending in a lone backslash): the rest of the line.
        self.i = b.len();
        &self.s[start..]
    }
}

/// An unquoted value: bool, integer, float, or text.
fn unquoted(raw: &str) -> Value<'_> {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    match number_kind(raw) {
        Some(false) => match raw.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Str(Cow::Borrowed(raw)),
        },
        Some(true) => match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => Value::Str(Cow::Borrowed(raw)),
        },
        None => Value::Str(Cow::Borrowed(raw)),
    }
}

/// `Some(false)` for an integer, `Some(true)` for a decimal or exponent number (JSON's
/// number syntax: `-`? (`0` | non-zero digit digits*) (`.` digits+)? ([eE] [+-]? digits+)?),
/// `None` otherwise.
fn number_kind(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return None;
    }
    let mut float = false;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == f {
            return None;
        }
        float = true;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
        float = true;
    }
    (i == b.len()).then_some(float)
}

/// Decodes the escapes of a quoted value; borrowed when there are none.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !has_backslash(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[copied..i]);
        let Some(&e) = b.get(i + 1) else {
            // A lone trailing backslash stays.
            out.push('\\');
            i += 1;
            copied = i;
            break;
        };
        let mut used = 2;
        match e {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'a' => out.push('\u{7}'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'v' => out.push('\u{b}'),
            b'x' => match hex(b, i + 2, 2) {
                Some(v) => {
                    out.push(if v < 0x80 {
                        char::from(v as u8)
                    } else {
                        char::REPLACEMENT_CHARACTER
                    });
                    used = 4;
                }
                None => out.push_str("\\x"),
            },
            b'u' => match hex(b, i + 2, 4) {
                Some(hi @ 0xD800..=0xDBFF) => {
                    // A surrogate pair `\uD83D\uDE00`, as JSON-style encoders write it.
                    let lo = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                        .then(|| hex(b, i + 8, 4))
                        .flatten()
                        .filter(|lo| (0xDC00..=0xDFFF).contains(lo));
                    match lo {
                        Some(lo) => {
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                            used = 12;
                        }
                        None => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            used = 6;
                        }
                    }
                }
                Some(v) => {
                    out.push(char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER));
                    used = 6;
                }
                None => out.push_str("\\u"),
            },
            b'U' => match hex(b, i + 2, 8) {
                Some(v) => {
                    out.push(char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER));
                    used = 10;
                }
                None => out.push_str("\\U"),
            },
            _ => {
                // Unknown escape: keep the backslash; the next character is copied as is
                // (it may be multi-byte, so do not step over it here).
                out.push('\\');
                used = 1;
            }
        }
        i += used;
        copied = i;
    }
    out.push_str(&raw[copied..]);
    Cow::Owned(out)
}

/// `n` hex digits at `b[at..]`.
fn hex(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = b.get(at..at + n)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// How a field was written.
#[derive(Clone, Copy, PartialEq)]
enum How {
    Quoted,
    Unquoted,
    Bare,
}

struct Pick<T> {
    rank: u8,
    idx: usize,
    val: T,
}

fn takes<T>(current: &Option<Pick<T>>, rank: u8) -> bool {
    current.as_ref().is_none_or(|p| rank <= p.rank)
}

#[derive(Default)]
struct Roles<'a> {
    time: Option<Pick<Timestamp>>,
    level: Option<Pick<Level>>,
    /// The message's text as written, for unquoted values (`msg=42` is the text `42`).
    message: Option<Pick<Option<&'a str>>>,
}

impl<'a> Roles<'a> {
    fn add(
        &mut self,
        fields: &mut Fields<'a>,
        key: Cow<'a, str>,
        value: Value<'a>,
        raw: &'a str,
        how: How,
        ctx: &ParseContext,
    ) {
        let (time_rank, level_rank, message_rank) = roles(&key);
        let level_rank = level_rank.or_else(|| (key == "at").then_some(AT_RANK));
        let (idx, replaced) = fields.put(key, value);
        if replaced {
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
        if how == How::Bare {
            // A bare `msg` is a flag, not a message.
            return;
        }
        let value = &fields.list[idx].1;
        if let Some(r) = time_rank {
            if takes(&self.time, r) {
                if let Some(t) = timestamp_of(value, raw, &ctx.zone) {
                    self.time = Some(Pick {
                        rank: r,
                        idx,
                        val: t,
                    });
                }
            }
        }
        if let Some(r) = level_rank {
            if takes(&self.level, r) {
                if let Some(l) = level_of(value) {
                    self.level = Some(Pick {
                        rank: r,
                        idx,
                        val: l,
                    });
                }
            }
        }
        if let Some(r) = message_rank {
            if takes(&self.message, r) {
                self.message = Some(Pick {
                    rank: r,
                    idx,
                    val: (how == How::Unquoted).then_some(raw),
                });
            }
        }
    }

    fn finish(self, mut fields: Fields<'a>, body: &'a str) -> Parsed<'a> {
        let Roles {
            time,
            level,
            message,
        } = self;
        let timestamp = time.as_ref().map(|p| p.val);
        let level_out = level.as_ref().map(|p| p.val);
        let Some(message) = message else {
            return Parsed {
                timestamp,
                level: level_out,
                message: Cow::Borrowed(body),
                fields: fields.list,
            };
        };
        let text = match std::mem::replace(&mut fields.list[message.idx].1, Value::Null) {
            Value::Str(s) => trim_newline(s),
            _ => Cow::Borrowed(message.val.unwrap_or("")),
        };
        let remove = [
            message.idx,
            time.map_or(usize::MAX, |p| p.idx),
            level.map_or(usize::MAX, |p| p.idx),
        ];
        Parsed {
            timestamp,
            level: level_out,
            message: text,
            fields: fields.remove_all(&remove),
        }
    }
}

#[cfg(test)]
mod tests;
