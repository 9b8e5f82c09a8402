//! Web server error logs: Nginx (`nginx_error`) and Apache httpd 2.2 / 2.4
//! (`apache_error`).
//!
//! Nginx:
//!
//! ```text
//! 2026/11/22 10:00:00 [error] 1234#5678: *99 open() "/x" failed (2: No such file or directory), client: 1.2.3.4, server: shop, request: "GET /x HTTP/1.1", host: "shop"
//! ```
//!
//! Extracted: timestamp (no zone in the line: read in the configured zone), level from the
//! bracket word (`debug info notice warn error crit alert emerg`), `pid`, `tid` and
//! `connection` (the `*N`, when present) as Int, and the request context Nginx appends
//! (`, client: ..., server: ..., request: "...", subrequest: "...", upstream: "...",
//! host: "...", referrer: "..."`), one string field per key with the quotes removed. The
//! message is the text before that context. The context is only split off when it starts
//! with `, client: ` and the whole tail reads as `, key: value` pairs; otherwise (the stream
//! module's `bytes from/to client:0/0`, say) it stays in the message.
//!
//! Apache httpd 2.4 (default `ErrorLogFormat`) and 2.2:
//!
//! ```text
//! [Sun Nov 22 10:00:00.123456 2026] [core:error] [pid 1234:tid 5678] [client 1.2.3.4:5555] AH00126: Invalid URI in request GET /x
//! [Sun Nov 22 10:00:00 2026] [error] [client 1.2.3.4] File does not exist: /var/www/x
//! ```
//!
//! Extracted: timestamp (read in the configured zone), level (`emerg` ... `debug`,
//! `trace1`–`trace8`), and the fields `module`, `pid`, `tid` (Int), `source_file` and
//! `source_line` (the `mod_ssl.c(123): ` part written at debug levels), `os_error` (the
//! `(111)Connection refused` part), `client` (from `[client ...]` or `[remote ...]`, address
//! as written), `error_code` (the `AH01234` message tag) and `referrer` (the
//! `, referer: ...` suffix). The message is the rest.
//!
//! Not handled: custom `ErrorLogFormat`s (for instance ISO times via `%{cu}t`), Nginx
//! `error_log` lines written through syslog (the syslog parser takes those), and
//! multi-line messages (each line stands alone).

use std::borrow::Cow;

use logferry_shared::event::Level;

use super::{time, ParseContext, Parsed, Parser, Value};

/// Nginx `error_log` lines (`nginx_error`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NginxErrorParser;

/// Apache httpd 2.2 and 2.4 error log lines (`apache_error`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApacheErrorParser;

impl Parser for NginxErrorParser {
    fn name(&self) -> &'static str {
        "nginx_error"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        parse_nginx(line, ctx)
    }
}

impl Parser for ApacheErrorParser {
    fn name(&self) -> &'static str {
        "apache_error"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        parse_apache(line, ctx)
    }
}

fn str_field<'a>(k: &'a str, v: &'a str) -> (Cow<'a, str>, Value<'a>) {
    (Cow::Borrowed(k), Value::Str(Cow::Borrowed(v)))
}

fn int_field(k: &str, v: i64) -> (Cow<'_, str>, Value<'_>) {
    (Cow::Borrowed(k), Value::Int(v))
}

/// Leading ASCII digits of `b` as an i64: (value, count). `None` when there are none or
/// they overflow.
fn digits(b: &[u8]) -> Option<(i64, usize)> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 18 {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
    Some((v, n))
}

/// The first index at or after `from` where `s` continues with `pat`. Looks for the
/// pattern's first byte with `str::find(char)` (memchr), which on short log lines is
/// much cheaper than `str::find(&str)`'s two-way searcher.
fn find_from(s: &str, from: usize, pat: &str) -> Option<usize> {
    let first = char::from(*pat.as_bytes().first()?);
    let mut i = from;
    loop {
        let p = i + s.get(i..)?.find(first)?;
        if s.as_bytes()[p..].starts_with(pat.as_bytes()) {
            return Some(p);
        }
        i = p + 1;
    }
}

/// The last index where `s` continues with `pat`, which starts with `,`.
fn rfind_comma(s: &str, pat: &str) -> Option<usize> {
    let mut end = s.len();
    loop {
        let p = s.get(..end)?.rfind(',')?;
        if s.as_bytes()[p..].starts_with(pat.as_bytes()) {
            return Some(p);
        }
        end = p;
    }
}

// ---------------------------------------------------------------------------------------
// Nginx

fn nginx_level(word: &[u8]) -> Option<Level> {
    Some(match word {
        b"debug" => Level::Debug,
        b"info" | b"notice" => Level::Info,
        b"warn" => Level::Warn,
        b"error" => Level::Error,
        b"crit" | b"alert" | b"emerg" => Level::Fatal,
        _ => return None,
    })
}

fn parse_nginx<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let b = line.as_bytes();
    // `2026/11/22 10:00:00 [`
    if b.len() < 24 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    if b[20] != b'[' {
        return None;
    }
    let (timestamp, used) = time::iso_prefix(line.get(..19)?, &ctx.zone)?;
    if used != 19 {
        return None;
    }
    // `[error] `
    let close = 21
        + b.get(21..b.len().min(29))?
            .iter()
            .position(|&c| c == b']')?;
    let level = nginx_level(&b[21..close])?;
    let mut i = close + 1;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // `1234#5678: `
    let (pid, n) = digits(b.get(i..)?)?;
    i += n;
    if b.get(i) != Some(&b'#') {
        return None;
    }
    i += 1;
    let (tid, n) = digits(b.get(i..)?)?;
    i += n;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    match b.get(i) {
        Some(b' ') => i += 1,
        None => {}
        _ => return None,
    }
    let mut fields = Vec::with_capacity(8);
    fields.push(int_field("pid", pid));
    fields.push(int_field("tid", tid));
    // `*99 `
    if b.get(i) == Some(&b'*') {
        if let Some((conn, n)) = digits(b.get(i + 1..)?) {
            if b.get(i + 1 + n) == Some(&b' ') {
                fields.push(int_field("connection", conn));
                i += n + 2;
            }
        }
    }
    let text = line.get(i..)?;
    let mut message = text;
    if let Some(at) = find_from(text, 0, ", client: ") {
        let before = fields.len();
        if nginx_context(text.get(at..)?, &mut fields) {
            message = text.get(..at)?;
        } else {
            fields.truncate(before);
        }
    }
    Some(Parsed {
        timestamp: Some(timestamp),
        level: Some(level),
        message: Cow::Borrowed(message),
        fields,
    })
}

/// Length of the key when `s` starts with `, key: ` (key of `[a-z_]`), else 0.
fn pair_start(s: &[u8]) -> usize {
    if !s.starts_with(b", ") {
        return 0;
    }
    let key_len = s[2..]
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || **c == b'_')
        .count();
    if key_len == 0 || s.get(2 + key_len..4 + key_len) != Some(b": ") {
        return 0;
    }
    key_len
}

/// Parses Nginx's `, key: value, key: "value"` tail into `fields`; false when some part
/// does not read as a pair (then `fields` may hold part of the pairs).
fn nginx_context<'a>(tail: &'a str, fields: &mut Vec<(Cow<'a, str>, Value<'a>)>) -> bool {
    let b = tail.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let key_len = pair_start(&b[i..]);
        if key_len == 0 {
            return false;
        }
        let Some(key) = tail.get(i + 2..i + 2 + key_len) else {
            return false;
        };
        let v_start = i + 4 + key_len;
        let (value, next) = if b.get(v_start) == Some(&b'"') {
            // The closing quote is the one followed by the next pair or the end.
            let mut j = v_start + 1;
            loop {
                let Some(q) = tail.get(j..).and_then(|r| r.find('"')) else {
                    return false;
                };
                j += q;
                if j + 1 == b.len() || pair_start(&b[j + 1..]) > 0 {
                    break;
                }
                j += 1;
            }
            (tail.get(v_start + 1..j), j + 1)
        } else {
            // Up to the next `, key: ` or the end.
            let mut j = v_start;
            loop {
                match find_from(tail, j, ", ") {
                    Some(c) if pair_start(&b[c..]) > 0 => {
                        j = c;
                        break;
                    }
                    Some(c) => j = c + 1,
                    None => {
                        j = b.len();
                        break;
                    }
                }
            }
            (tail.get(v_start..j), j)
        };
        let Some(value) = value else {
            return false;
        };
        if !fields.iter().any(|(k, _)| k == key) {
            fields.push(str_field(key, value));
        }
        i = next;
    }
    true
}

// ---------------------------------------------------------------------------------------
// Apache

fn apache_level(word: &[u8]) -> Option<Level> {
    Some(match word {
        b"emerg" | b"alert" | b"crit" => Level::Fatal,
        b"error" => Level::Error,
        b"warn" => Level::Warn,
        b"notice" | b"info" => Level::Info,
        b"debug" => Level::Debug,
        [b't', b'r', b'a', b'c', b'e', b'1'..=b'8'] => Level::Trace,
        _ => return None,
    })
}

fn weekday(b: &[u8]) -> bool {
    matches!(
        b,
        b"Mon" | b"Tue" | b"Wed" | b"Thu" | b"Fri" | b"Sat" | b"Sun"
    )
}

/// `[Sun Nov 22 10:00:00.123456 2026]` at the start of `line` (day zero- or
/// space-padded, fraction optional): the instant and the bytes used.
fn apache_time(
    line: &str,
    ctx: &ParseContext,
) -> Option<(logferry_shared::event::Timestamp, usize)> {
    let b = line.as_bytes();
    if b.first() != Some(&b'[') || !weekday(b.get(1..4)?) || b.get(4) != Some(&b' ') {
        return None;
    }
    let month = time::month(b.get(5..8)?)?;
    if b.get(8) != Some(&b' ') {
        return None;
    }
    let day = match b.get(9..11)? {
        [b' ', d] if d.is_ascii_digit() => u32::from(d - b'0'),
        [a, d] if a.is_ascii_digit() && d.is_ascii_digit() => {
            u32::from(a - b'0') * 10 + u32::from(d - b'0')
        }
        _ => return None,
    };
    let t = b.get(11..21)?;
    if t[0] != b' ' || t[3] != b':' || t[6] != b':' {
        return None;
    }
    let two = |x: &[u8]| -> Option<u32> {
        match x {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            }
            _ => None,
        }
    };
    let (h, mi, s) = (two(&t[1..3])?, two(&t[4..6])?, two(&t[7..9])?);
    let mut i = 20;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        for &c in &b[i + 1..i + 1 + n] {
            nanos = nanos * 10 + u32::from(c - b'0');
        }
        nanos *= 10u32.pow(9 - n as u32);
        i += 1 + n;
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let y = b.get(i + 1..i + 5)?;
    if !y.iter().all(u8::is_ascii_digit) || b.get(i + 5) != Some(&b']') {
        return None;
    }
    let year = y.iter().fold(0i32, |v, &c| v * 10 + i32::from(c - b'0'));
    let t = time::local(&ctx.zone, year, month, day, (h, mi, s.min(59), nanos))?;
    Some((t, i + 6))
}

/// `name.c(123): ` at the start of `s`: (file, line, bytes used).
fn source_location(s: &str) -> Option<(&str, i64, usize)> {
    let b = s.as_bytes();
    let open = b.iter().take(64).position(|&c| c == b'(')?;
    let file = s.get(..open)?;
    if !file.ends_with(".c")
        || !file
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        return None;
    }
    let (line, n) = digits(b.get(open + 1..)?)?;
    if b.get(open + 1 + n..open + 4 + n)? != b"): " {
        return None;
    }
    Some((file, line, open + 4 + n))
}

/// `(111)Connection refused: ` at the start of `s`: (error, bytes used).
fn os_error(s: &str) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'(') {
        return None;
    }
    let neg = usize::from(b.get(1) == Some(&b'-'));
    let (_, n) = digits(b.get(1 + neg..)?)?;
    if b.get(1 + neg + n) != Some(&b')') {
        return None;
    }
    let end = s.find(": ")?;
    if end <= 2 + neg + n || end > 200 {
        return None;
    }
    Some((s.get(..end)?, end + 2))
}

fn parse_apache<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let (timestamp, mut i) = apache_time(line, ctx)?;
    let b = line.as_bytes();
    // ` [core:error]` (2.4) or ` [error]` (2.2).
    if b.get(i..i + 2)? != b" [" {
        return None;
    }
    i += 2;
    let close = i + b.get(i..)?.iter().take(64).position(|&c| c == b']')?;
    let tag = line.get(i..close)?;
    let (module, word) = match tag.rfind(':') {
        Some(c) => (tag.get(..c)?, tag.get(c + 1..)?),
        None => ("", tag),
    };
    let level = apache_level(word.as_bytes())?;
    if !module
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return None;
    }
    i = close + 1;

    let mut fields = Vec::with_capacity(8);
    if !module.is_empty() {
        fields.push(str_field("module", module));
    }
    // ` [pid 1234:tid 5678]` or ` [pid 1234]`
    if b.get(i..i + 6) == Some(b" [pid ") {
        let (pid, n) = digits(b.get(i + 6..)?)?;
        fields.push(int_field("pid", pid));
        i += 6 + n;
        if b.get(i..i + 5) == Some(b":tid ") {
            let (tid, n) = digits(b.get(i + 5..)?)?;
            fields.push(int_field("tid", tid));
            i += 5 + n;
        }
        if b.get(i) != Some(&b']') {
            return None;
        }
        i += 1;
    }
    match b.get(i) {
        Some(b' ') => i += 1,
        None => {}
        _ => return None,
    }
    let rest = line.get(i..)?;
    let mut rest = rest;
    if let Some((file, line_no, used)) = source_location(rest) {
        fields.push(str_field("source_file", file));
        fields.push(int_field("source_line", line_no));
        rest = rest.get(used..)?;
    }
    if let Some((err, used)) = os_error(rest) {
        fields.push(str_field("os_error", err));
        rest = rest.get(used..)?;
    }
    // Apache 2.4 writes `[client …] AHnnnnn: text`: a structured prefix, stripped. Apache
    // 2.2 has no error code and the `[client …]` tag reads as part of the text, so there it
    // stays in the message (as in the hand-checked Loghub templates); it is a field in both.
    let offset = |s: &str| s.as_ptr() as usize - line.as_ptr() as usize;
    let mut keep_from = None;
    for tag in ["[client ", "[remote "] {
        if let Some(r) = rest.strip_prefix(tag) {
            let end = r.find(']')?;
            let addr = r.get(..end)?;
            if addr.is_empty() || addr.contains(' ') {
                return None;
            }
            keep_from = Some(offset(rest));
            fields.push(str_field("client", addr));
            rest = r.get(end + 1..)?;
            rest = rest.strip_prefix(' ').unwrap_or(rest);
            break;
        }
    }
    // `AH00126: `
    let rb = rest.as_bytes();
    if rb.len() >= 8
        && rb.starts_with(b"AH")
        && rb[2..7].iter().all(u8::is_ascii_digit)
        && rb[7] == b':'
        && (rb.len() == 8 || rb[8] == b' ')
    {
        fields.push(str_field("error_code", rest.get(..7)?));
        rest = rest.get(rb.len().min(9)..)?;
        keep_from = None;
    }
    if let Some(at) = rfind_comma(rest, ", referer: ") {
        let r = rest.get(at + 11..)?;
        if !r.is_empty() && !r.contains(' ') {
            fields.push(str_field("referrer", r));
            rest = rest.get(..at)?;
        }
    }
    let message = match keep_from {
        Some(start) => line.get(start..offset(rest) + rest.len())?,
        None => rest,
    };
    Some(Parsed {
        timestamp: Some(timestamp),
        level: Some(level),
        message: Cow::Borrowed(message),
        fields,
    })
}

#[cfg(test)]
mod tests;
