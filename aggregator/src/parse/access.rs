//! Apache / Nginx access logs: Common Log Format and Combined Log Format.
//!
//! ```text
//! 203.0.113.7 - alice [22/Nov/2026:10:00:00 +0000] "GET /api/orders?page=2 HTTP/1.1" 200 5120 "https://ref/" "Mozilla/5.0 ..." 0.012
//! ^host       ^ident ^user ^time                     ^request                         ^status ^bytes ^referrer  ^user agent     ^extra
//! ```
//!
//! Accepted: `host ident user [time] "request" status bytes`, optionally followed by
//! `"referrer" "user agent"` (Combined) and anything after that (Nginx `$request_time`,
//! `$upstream_*`, `"$http_x_forwarded_for"`, ...), which is kept verbatim as `extra`. An
//! Apache `vhost_combined` prefix (`shop.example:443 203.0.113.7 - - [...] ...`) is also
//! accepted (field `vhost`).
//!
//! Extracted: timestamp (the bracketed time, with its offset), level from the status class
//! (5xx error, 4xx warn, else info), and the fields `vhost`, `client_ip`, `ident` and
//! `user` (each unless `-`), `method`, `path` (with the query string), `protocol`,
//! `status` (Int), `bytes` (Int, 0 for `-`), `referrer` and `user_agent` (each unless
//! `-`), `extra`. The message is the request line as sent (`GET /x HTTP/1.1`), or
//! whatever the client sent when that is not a request (`-`, TLS bytes logged as
//! `\x16\x03\x01`, garbage): then there are no `method`/`path`/`protocol` fields.
//!
//! Quoted strings are unescaped only for quotes and backslashes (`\"`, `\\`, and Nginx's
//! `\x22`, `\x5C`); other `\xHH` escapes are kept as written, since they usually stand
//! for bytes that are not text.
//!
//! Not handled (the line is refused, so another parser or plain text takes it): custom
//! `LogFormat`s that reorder the fields, a time that is not `dd/Mon/yyyy:HH:MM:SS ±zzzz`,
//! a status that is not three digits in 100–599, user names containing spaces, and JSON
//! access logs (the JSON parser takes those).

use std::borrow::Cow;

use super::{level, time, ParseContext, Parsed, Parser, Value};

/// Apache/Nginx Common and Combined Log Format (`access`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessParser;

impl Parser for AccessParser {
    fn name(&self) -> &'static str {
        "access"
    }

    fn parse<'a>(&self, line: &'a str, _ctx: &ParseContext) -> Option<Parsed<'a>> {
        parse(line)
    }
}

/// Longest `vhost host ident user` prefix looked at before giving up.
const MAX_HEAD: usize = 512;

fn parse(line: &str) -> Option<Parsed<'_>> {
    let b = line.as_bytes();
    // Cheap first check: CLF starts with a host name or address.
    if !b.first().is_some_and(|&c| is_host_byte(c)) {
        return None;
    }

    // Head: three or four tokens separated by single spaces, then ` [`. One pass that
    // records where the tokens end and checks their bytes.
    let mut ends = [0usize; 4];
    let mut n = 0;
    let mut i = 0;
    // Bit k set: token k (k < 2) holds a byte not allowed in an address.
    let mut not_host = 0u8;
    loop {
        let c = *b.get(i)?;
        if c == b' ' {
            if i == 0 || b[i - 1] == b' ' || n == 4 {
                return None;
            }
            ends[n] = i;
            n += 1;
            if b.get(i + 1) == Some(&b'[') {
                break;
            }
        } else {
            let class = CLASS[usize::from(c)];
            if class & PLAIN == 0 || i >= MAX_HEAD {
                return None;
            }
            if n < 2 && class & HOST == 0 {
                not_host |= 1 << n;
            }
        }
        i += 1;
    }
    let open = i + 1;
    let tok = |k: usize| -> Option<&str> {
        let start = if k == 0 { 0 } else { ends[k - 1] + 1 };
        line.get(start..ends[k])
    };
    let (vhost, host, ident, user) = match n {
        3 if not_host & 1 == 0 => (None, tok(0)?, tok(1)?, tok(2)?),
        // Apache vhost_combined: `%v:%p %h %l %u ...`.
        4 if not_host == 0 && tok(0)?.contains(':') => (tok(0), tok(1)?, tok(2)?, tok(3)?),
        _ => return None,
    };

    // `[22/Nov/2026:10:00:00 +0000]`
    let close = open
        + 1
        + b.get(open + 1..b.len().min(open + 41))?
            .iter()
            .position(|&c| c == b']')?;
    let timestamp = time::clf(line.get(open + 1..close)?)?;

    // ` "request"`
    let mut i = close + 1;
    if b.get(i..i + 2)? != b" \"" {
        return None;
    }
    let req_start = i + 2;
    let (req_end, req_escaped) = quoted_end(b, req_start)?;
    let request = line.get(req_start..req_end)?;
    i = req_end + 1;

    // ` 200`
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let sb = b.get(i + 1..i + 4)?;
    if !sb.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = sb.iter().fold(0u16, |v, &c| v * 10 + u16::from(c - b'0'));
    if !(100..=599).contains(&status) {
        return None;
    }
    i += 4;

    // ` 5120` or ` -`
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let bytes_start = i;
    let mut bytes = 0i64;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        bytes = bytes.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
        i += 1;
    }
    if i == bytes_start {
        if b.get(i) != Some(&b'-') {
            return None;
        }
        i += 1;
    }
    match b.get(i) {
        None | Some(b' ') => {}
        _ => return None,
    }

    // Combined: ` "referrer" "user agent"`, then extras.
    let mut referrer = None;
    let mut user_agent = None;
    if b.get(i..i + 2) == Some(b" \"") {
        let (r_end, r_escaped) = quoted_end(b, i + 2)?;
        referrer = Some((line.get(i + 2..r_end)?, r_escaped));
        i = r_end + 1;
        if b.get(i..i + 2) == Some(b" \"") {
            let (u_end, u_escaped) = quoted_end(b, i + 2)?;
            user_agent = Some((line.get(i + 2..u_end)?, u_escaped));
            i = u_end + 1;
        }
        match b.get(i) {
            None | Some(b' ') => {}
            _ => return None,
        }
    }
    let extra = line.get(i..)?.trim_matches(' ');

    let mut fields: Vec<(Cow<'_, str>, Value<'_>)> = Vec::with_capacity(11);
    if let Some(v) = vhost {
        fields.push((Cow::Borrowed("vhost"), Value::Str(Cow::Borrowed(v))));
    }
    fields.push((Cow::Borrowed("client_ip"), Value::Str(Cow::Borrowed(host))));
    if ident != "-" {
        fields.push((Cow::Borrowed("ident"), Value::Str(Cow::Borrowed(ident))));
    }
    if user != "-" {
        fields.push((Cow::Borrowed("user"), Value::Str(Cow::Borrowed(user))));
    }
    if let Some((method, path, protocol)) = split_request(request) {
        fields.push((Cow::Borrowed("method"), Value::Str(Cow::Borrowed(method))));
        fields.push((Cow::Borrowed("path"), Value::Str(text(path, req_escaped))));
        if let Some(p) = protocol {
            fields.push((Cow::Borrowed("protocol"), Value::Str(Cow::Borrowed(p))));
        }
    }
    fields.push((Cow::Borrowed("status"), Value::Int(i64::from(status))));
    fields.push((Cow::Borrowed("bytes"), Value::Int(bytes)));
    if let Some((r, escaped)) = referrer.filter(|(r, _)| *r != "-" && !r.is_empty()) {
        fields.push((Cow::Borrowed("referrer"), Value::Str(text(r, escaped))));
    }
    if let Some((u, escaped)) = user_agent.filter(|(u, _)| *u != "-" && !u.is_empty()) {
        fields.push((Cow::Borrowed("user_agent"), Value::Str(text(u, escaped))));
    }
    if !extra.is_empty() {
        fields.push((Cow::Borrowed("extra"), Value::Str(Cow::Borrowed(extra))));
    }

    Some(Parsed {
        timestamp: Some(timestamp),
        level: Some(level::from_http_status(status)),
        message: text(request, req_escaped),
        fields,
    })
}

/// A quoted string's text: unescaped only when it had escapes.
fn text(s: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        unescape(s)
    } else {
        Cow::Borrowed(s)
    }
}

/// Bytes allowed in a host name or address (`%h`, `$remote_addr`, `%v:%p`).
const fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-' | b'_' | b'%')
}

/// Bytes allowed in `ident` and `user`: printable, no quotes or brackets.
const fn is_plain_byte(c: u8) -> bool {
    c > b' ' && !matches!(c, b'"' | b'[' | b']' | 0x7f)
}

const PLAIN: u8 = 1;
const HOST: u8 = 2;

/// [`is_plain_byte`] and [`is_host_byte`] as one table lookup per byte.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if is_plain_byte(b) { PLAIN } else { 0 } | if is_host_byte(b) { HOST } else { 0 };
        c += 1;
    }
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Marks (high bit set) the bytes of `w` equal to `n` repeated in `rep`; the lowest mark
/// is always exact.
fn marks(w: u64, rep: u64) -> u64 {
    let x = w ^ rep;
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the quote closing a string whose text starts at `start`, and whether the
/// string contains backslash escapes (skipped: `\"` does not close it). Scans eight
/// bytes at a time: user agents are long.
fn quoted_end(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start;
    let mut escaped = false;
    loop {
        // Word at a time while whole words remain.
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().ok()?);
            let m = marks(w, LO * u64::from(b'"')) | marks(w, LO * u64::from(b'\\'));
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *b.get(i)? {
            b'"' => return Some((i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// `METHOD target [HTTP/x]` → (method, target, protocol), or `None` when the client sent
/// something that is not a request line.
fn split_request(r: &str) -> Option<(&str, &str, Option<&str>)> {
    let b = r.as_bytes();
    let sp = b[..b.len().min(25)].iter().position(|&c| c == b' ')?;
    if sp == 0
        || !b[..sp]
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c == b'-' || c == b'_')
    {
        return None;
    }
    let method = r.get(..sp)?;
    let rest = r.get(sp + 1..)?;
    if let Some(lsp) = rest.as_bytes().iter().rposition(|&c| c == b' ') {
        let proto = rest.get(lsp + 1..)?;
        let target = rest.get(..lsp)?;
        if proto.starts_with("HTTP/") && !target.is_empty() && !target.starts_with(' ') {
            return Some((method, target, Some(proto)));
        }
        return None;
    }
    // HTTP/0.9 style: `GET /`.
    if rest.is_empty() {
        return None;
    }
    Some((method, rest, None))
}

/// Undoes the escapes Apache (`\"`, `\\`) and Nginx (`\x22`, `\x5C`) use for quotes and
/// backslashes; other escapes are kept. Borrows when there is nothing to undo.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('\\') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        let (repl, used) = if tail.starts_with("\\\"") {
            ("\"", 2)
        } else if tail.starts_with("\\\\") {
            ("\\", 2)
        } else if tail.starts_with("\\x22") {
            ("\"", 4)
        } else if tail.starts_with("\\x5C") || tail.starts_with("\\x5c") {
            ("\\", 4)
        } else {
            ("\\", 1)
        };
        out.push_str(repl);
        rest = &tail[used..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
    use logferry_shared::event::Level;
    use proptest::prelude::*;

    fn p(line: &str) -> Parsed<'_> {
        AccessParser
            .parse(line, &ctx())
            .unwrap_or_else(|| panic!("refused {line}"))
    }

    #[test]
    fn combined() {
        let line = r#"203.0.113.7 - alice [22/Nov/2026:10:00:00 +0100] "GET /api/orders?page=2 HTTP/1.1" 200 5120 "https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64)""#;
        let e = p(line);
        assert_eq!(e.timestamp, Some(ts("2026-11-22T09:00:00Z")));
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(e.message, "GET /api/orders?page=2 HTTP/1.1");
        assert!(matches!(e.message, Cow::Borrowed(_)));
        let want = vec![
            ("client_ip", s("203.0.113.7")),
            ("user", s("alice")),
            ("method", s("GET")),
            ("path", s("/api/orders?page=2")),
            ("protocol", s("HTTP/1.1")),
            ("status", Value::Int(200)),
            ("bytes", Value::Int(5120)),
            ("referrer", s("https://shop.example/cart")),
            ("user_agent", s("Mozilla/5.0 (X11; Linux x86_64)")),
        ];
        let got: Vec<_> = e
            .fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn common_log_format_and_dash_bytes() {
        let e = p(r#"192.0.2.1 - - [22/Nov/2026:10:00:00 -0500] "HEAD / HTTP/1.0" 304 -"#);
        assert_eq!(e.timestamp, Some(ts("2026-11-22T15:00:00Z")));
        assert_eq!(*field(&e, "bytes"), Value::Int(0));
        assert_eq!(*field(&e, "status"), Value::Int(304));
        assert!(!has(&e, "ident") && !has(&e, "user") && !has(&e, "referrer"));
        assert!(!has(&e, "user_agent") && !has(&e, "extra"));
    }

    #[test]
    fn status_classes() {
        for (status, lvl) in [
            (200, Level::Info),
            (301, Level::Info),
            (404, Level::Warn),
            (499, Level::Warn),
            (502, Level::Error),
        ] {
            let line = format!(
                r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" {status} 1 "-" "-""#
            );
            assert_eq!(p(&line).level, Some(lvl), "{status}");
        }
    }

    #[test]
    fn nginx_extras_are_kept() {
        let e = p(
            r#"10.1.2.3 - - [22/Nov/2026:10:00:00 +0000] "POST /api/pay HTTP/2.0" 502 166 "-" "okhttp/4.12.0" "198.51.100.9" rt=0.503 uct="0.001" urt="0.502""#,
        );
        assert_eq!(
            *field(&e, "extra"),
            s(r#""198.51.100.9" rt=0.503 uct="0.001" urt="0.502""#)
        );
        assert_eq!(e.level, Some(Level::Error));
        assert!(!has(&e, "referrer"));
    }

    #[test]
    fn requests_that_are_not_requests() {
        let e = p(r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "-" 400 0 "-" "-""#);
        assert_eq!(e.message, "-");
        assert!(!has(&e, "method") && !has(&e, "path") && !has(&e, "protocol"));
        let e = p(
            r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" 400 157 "-" "-""#,
        );
        assert_eq!(e.message, r"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03");
        assert!(!has(&e, "method"));
        let e = p(r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "" 408 0 "-" "-""#);
        assert_eq!(e.message, "");
        let e = p(r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "get lost" 400 0"#);
        assert!(!has(&e, "method"));
        let e = p(r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "GET /" 200 10"#);
        assert_eq!(*field(&e, "path"), s("/"));
        assert!(!has(&e, "protocol"));
        let e = p(
            r#"198.51.100.4 - - [22/Nov/2026:10:00:00 +0000] "CONNECT api.example:443 HTTP/1.1" 200 0"#,
        );
        assert_eq!(*field(&e, "path"), s("api.example:443"));
    }

    #[test]
    fn escapes_in_quoted_strings() {
        let e = p(
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /q?x=\"a\" HTTP/1.1" 200 1 "-" "Bot \"v2\" \\o/ \x22n\x22 \xff""#,
        );
        assert_eq!(*field(&e, "path"), s(r#"/q?x="a""#));
        assert_eq!(*field(&e, "user_agent"), s(r#"Bot "v2" \o/ "n" \xff"#));
    }

    #[test]
    fn vhost_ipv6_and_ident() {
        let e = p(
            r#"shop.example:443 2001:db8::7 ident42 - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8.5.0""#,
        );
        assert_eq!(*field(&e, "vhost"), s("shop.example:443"));
        assert_eq!(*field(&e, "client_ip"), s("2001:db8::7"));
        assert_eq!(*field(&e, "ident"), s("ident42"));
        assert_eq!(*field(&e, "user_agent"), s("curl/8.5.0"));
    }

    #[test]
    fn refuses_near_misses() {
        let ok = r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#;
        assert!(AccessParser.parse(ok, &ctx()).is_some());
        for bad in [
            r#"10.0.0.1 - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00] "GET / HTTP/1.1" 200 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 2000 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 700 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1 200 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] GET / HTTP/1.1 200 1"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1x"#,
            r#"10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"x"#,
            r#"10.0.0.1  - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"a b c d [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
            r#"[22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#,
        ] {
            assert!(AccessParser.parse(bad, &ctx()).is_none(), "{bad}");
        }
    }

    #[test]
    fn refuses_other_formats_and_matches_corpus() {
        check_corpus(&AccessParser);
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = AccessParser.parse(&line, &ctx());
        }

        #[test]
        fn never_panics_on_near_lines(line in r#"[0-9a-z.: -]{0,12}\[[0-9A-Za-z/: +-]{0,28}\]? ?"?[A-Z /\\"x0-9a-f.é]{0,20}"? ?[0-9-]{0,4} ?[0-9-]{0,4} ?"?[^"]{0,6}"?.{0,8}"#) {
            let _ = AccessParser.parse(&line, &ctx());
        }

        #[test]
        fn escaped_strings_round_trip(
            pad in "[a-z]{0,9}",
            agent in r#"[a-z "\\é]{0,40}"#,
            referrer in r#"[a-z/"\\]{0,20}"#,
        ) {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            let line = format!(
                r#"10.0.0.1 - {pad}x [22/Nov/2026:10:00:00 +0000] "GET /{} HTTP/1.1" 200 1 "{}" "{}" tail"#,
                esc(&agent).replace(' ', "_"),
                esc(&referrer),
                esc(&agent),
            );
            let e = AccessParser.parse(&line, &ctx()).unwrap();
            if !agent.is_empty() && agent != "-" {
                prop_assert_eq!(field(&e, "user_agent"), &s(&agent));
            }
            if !referrer.is_empty() && referrer != "-" {
                prop_assert_eq!(field(&e, "referrer"), &s(&referrer));
            }
            let path = format!("/{}", agent.replace(' ', "_"));
            prop_assert_eq!(field(&e, "path"), &s(&path));
            prop_assert_eq!(field(&e, "extra"), &s("tail"));
        }

        #[test]
        fn round_trips(
            ip in (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255),
            user in "-|[a-z][a-z0-9_.@]{0,11}",
            method in "GET|POST|PUT|DELETE|PATCH|OPTIONS|PROPFIND",
            path in "/[A-Za-z0-9/._~%?=&-]{0,40}",
            proto in "HTTP/1\\.0|HTTP/1\\.1|HTTP/2\\.0",
            status in 100u16..600,
            bytes in proptest::option::of(0i64..10_000_000_000),
            referrer in "-|https://[a-z.]{1,12}/[a-z/]{0,10}",
            agent in "[ -!#-\\[\\]-~]{1,40}",
            secs in 0i64..4_000_000_000,
        ) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let host = format!("{}.{}.{}.{}", ip.0, ip.1, ip.2, ip.3);
            let bytes_text = bytes.map_or("-".to_string(), |b| b.to_string());
            let line = format!(
                r#"{host} - {user} [{}] "{method} {path} {proto}" {status} {bytes_text} "{referrer}" "{agent}""#,
                t.format("%d/%b/%Y:%H:%M:%S %z"),
            );
            let e = AccessParser.parse(&line, &ctx()).unwrap();
            prop_assert_eq!(e.timestamp, Some(logferry_shared::event::Timestamp(secs * 1_000_000_000)));
            prop_assert_eq!(e.level, Some(level::from_http_status(status)));
            prop_assert_eq!(&e.message, &format!("{method} {path} {proto}"));
            prop_assert_eq!(field(&e, "client_ip"), &s(&host));
            prop_assert_eq!(field(&e, "method"), &s(&method));
            prop_assert_eq!(field(&e, "path"), &s(&path));
            prop_assert_eq!(field(&e, "protocol"), &s(&proto));
            prop_assert_eq!(field(&e, "status"), &Value::Int(i64::from(status)));
            prop_assert_eq!(field(&e, "bytes"), &Value::Int(bytes.unwrap_or(0)));
            prop_assert_eq!(has(&e, "user"), user != "-");
            prop_assert_eq!(has(&e, "referrer"), referrer != "-");
            if agent != "-" {
                prop_assert_eq!(field(&e, "user_agent"), &s(agent.as_str()));
            }
            prop_assert!(!has(&e, "extra"));
        }
    }
}
