//! Go's standard `log` package with its default header.
//!
//! ```text
//! 2026/11/22 10:00:00 message                       (log.LstdFlags)
//! 2026/11/22 10:00:00.123456 message                (| log.Lmicroseconds)
//! 2026/11/22 10:00:00 main.go:42: message           (| log.Lshortfile; Llongfile gives a path)
//! INFO: 2026/11/22 10:00:00 main.go:42: message     (log.New(w, "INFO: ", flags))
//! 2026/11/22 10:00:00 [ERROR] message               (a level written into the message)
//! ```
//!
//! Extracted: timestamp (the line has no zone: read in the context's zone), `source_file`
//! and `source_line` (Int) from `Lshortfile`/`Llongfile` (the file must end in `.go`), and
//! the level from a level word at the start of the message, which is then removed:
//! `[ERROR] x`, `[warn] x`, `ERROR: x`, `error: x`, or a bare capitalised `INFO x` (what
//! `slog`'s default logger writes through `log`). Level words recognised:
//! `trace debug dbg info inf notice warn warning wrn error err fatal ftl panic crit
//! critical` (bare form: `TRACE DEBUG INFO WARN WARNING ERROR FATAL PANIC` only). A
//! `log.New` prefix before the date (one token, such as `myapp:` or `[api]`) gives the level
//! when it is a level word, otherwise the field `prefix` (without `:` or brackets).
//!
//! Nginx error-log lines, which share the date layout, are refused (`[error] 1#1: ...`).
//!
//! Not handled: `slog`'s `TextHandler` (`time=... level=...`: logfmt) and `JSONHandler`,
//! headers without a time (`log.Ldate` alone), prefixes containing spaces, the
//! `key=value` pairs `slog`'s default logger appends (they stay in the message), and
//! multi-line output such as panics.

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};

use super::{time, ParseContext, Parsed, Parser, Value};

/// Go `log` package lines (`go`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GoLogParser;

impl Parser for GoLogParser {
    fn name(&self) -> &'static str {
        "go"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        parse(line, ctx)
    }
}

/// Longest `log.New` prefix accepted before the date.
const MAX_PREFIX: usize = 32;

fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let b = line.as_bytes();
    // Allocated by the first push: most lines tried here are not Go log lines.
    let mut fields = Vec::new();
    let mut level = None;
    let mut start = 0;
    if !b.first()?.is_ascii_digit() {
        let sp = b.iter().take(MAX_PREFIX + 1).position(|&c| c == b' ')?;
        let prefix = line.get(..sp)?;
        if sp == 0
            || !prefix
                .bytes()
                .all(|c| c > b' ' && c != b'"' && c != b'=' && c != 0x7f)
        {
            return None;
        }
        let bare = prefix.trim_start_matches('[').trim_end_matches([']', ':']);
        match word_level(bare) {
            Some(l) => level = Some(l),
            None if !bare.is_empty() => {
                fields.push((Cow::Borrowed("prefix"), Value::Str(Cow::Borrowed(bare))))
            }
            None => return None,
        }
        start = sp + 1;
    }
    let (timestamp, used) = go_time(b.get(start..)?, ctx)?;
    let mut rest = match b.get(start + used) {
        None => "",
        Some(b' ') => line.get(start + used + 1..)?,
        _ => return None,
    };

    if is_nginx_error(rest) {
        return None;
    }

    // `main.go:42: ` (the first token, no spaces in it).
    let tok_len = rest.bytes().position(|c| c == b' ').unwrap_or(rest.len());
    if let Some((file, ln)) = rest
        .get(..tok_len)
        .and_then(|t| t.strip_suffix(':'))
        .and_then(|loc| loc.rsplit_once(':'))
    {
        if file.len() > 3
            && file.ends_with(".go")
            && !ln.is_empty()
            && ln.len() <= 9
            && ln.bytes().all(|c| c.is_ascii_digit())
        {
            fields.push((
                Cow::Borrowed("source_file"),
                Value::Str(Cow::Borrowed(file)),
            ));
            fields.push((Cow::Borrowed("source_line"), Value::Int(ln.parse().ok()?)));
            rest = rest.get((tok_len + 1).min(rest.len())..)?;
        }
    }

    if let Some((l, used)) = message_level(rest) {
        if level.is_none() {
            level = Some(l);
        }
        rest = rest.get(used..)?.trim_start_matches(' ');
    }

    Some(Parsed {
        timestamp: Some(timestamp),
        level,
        message: Cow::Borrowed(rest),
        fields,
    })
}

/// `2026/11/22 10:00:00[.123456]` at the start of `b`, read in the context's zone.
fn go_time(b: &[u8], ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let h = b.get(..19)?;
    if h[4] != b'/' || h[7] != b'/' || h[10] != b' ' || h[13] != b':' || h[16] != b':' {
        return None;
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(&h[0..4])?, num(&h[5..7])?, num(&h[8..10])?);
    let (hh, mi, ss) = (num(&h[11..13])?, num(&h[14..16])?, num(&h[17..19])?);
    let mut used = 19;
    let mut nanos = 0;
    if b.get(19) == Some(&b'.') {
        let n = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = num(&b[20..20 + n])? * 10u32.pow(9 - n as u32);
        used = 20 + n;
    }
    let t = time::local(&ctx.zone, y as i32, mo, d, (hh, mi, ss.min(59), nanos))?;
    Some((t, used))
}

/// Nginx's `[level] pid#tid: ` after the same date layout.
fn is_nginx_error(rest: &str) -> bool {
    let b = rest.as_bytes();
    let Some(r) = b.strip_prefix(b"[") else {
        return false;
    };
    let w = r.iter().take_while(|c| c.is_ascii_lowercase()).count();
    let Some(r) = r.get(w..).and_then(|r| r.strip_prefix(b"] ")) else {
        return false;
    };
    let pid = r.iter().take_while(|c| c.is_ascii_digit()).count();
    w > 0 && pid > 0 && r.get(pid) == Some(&b'#')
}

/// A level word in any case (`error`, `WARN`, `Info`, ...).
fn word_level(w: &str) -> Option<Level> {
    if w.len() < 3 || w.len() > 8 {
        return None;
    }
    let mut buf = [0u8; 8];
    for (d, s) in buf.iter_mut().zip(w.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    Some(match &buf[..w.len()] {
        b"trace" => Level::Trace,
        b"debug" | b"dbg" => Level::Debug,
        b"info" | b"inf" | b"notice" => Level::Info,
        b"warn" | b"warning" | b"wrn" => Level::Warn,
        b"error" | b"err" => Level::Error,
        b"fatal" | b"ftl" | b"panic" | b"crit" | b"critical" => Level::Fatal,
        _ => return None,
    })
}

/// A level at the start of the message: `[WORD]`, `WORD:` (followed by a space or the
/// end), or a bare capitalised `WORD ` — the level and the bytes it takes.
fn message_level(s: &str) -> Option<(Level, usize)> {
    let b = s.as_bytes();
    let ends = |i: usize| matches!(b.get(i), None | Some(b' '));
    if b.first() == Some(&b'[') {
        let n = b[1..]
            .iter()
            .take(9)
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        if b.get(1 + n) == Some(&b']') && ends(n + 2) {
            return Some((word_level(s.get(1..1 + n)?)?, n + 2));
        }
        return None;
    }
    let n = b
        .iter()
        .take(9)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if b.get(n) == Some(&b':') && ends(n + 1) {
        return Some((word_level(s.get(..n)?)?, n + 1));
    }
    let word = s.get(..n)?;
    if ends(n)
        && n < b.len()
        && matches!(
            word,
            "TRACE" | "DEBUG" | "INFO" | "WARN" | "WARNING" | "ERROR" | "FATAL" | "PANIC"
        )
    {
        return Some((word_level(word)?, n));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
    use proptest::prelude::*;

    fn p(line: &str) -> Parsed<'_> {
        GoLogParser
            .parse(line, &ctx())
            .unwrap_or_else(|| panic!("refused {line}"))
    }

    #[test]
    fn default_header() {
        let e = p("2026/11/22 10:00:00 listening on :8080");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(e.level, None);
        assert_eq!(e.message, "listening on :8080");
        assert!(e.fields.is_empty());
        let e = p("2026/11/22 10:00:00.123456 shutting down");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123456Z")));
        assert_eq!(p("2026/11/22 10:00:00").message, "");
        let c = ParseContext {
            zone: crate::parse::Zone::parse("America/New_York").unwrap(),
            ..ctx()
        };
        let e = GoLogParser.parse("2026/11/22 10:00:00 x", &c).unwrap();
        assert_eq!(e.timestamp, Some(ts("2026-11-22T15:00:00Z")));
        // A zone-like word starts the message; it is not part of the time.
        assert_eq!(
            p("2026/11/22 10:00:00 UTC offset applied").message,
            "UTC offset applied"
        );
    }

    #[test]
    fn short_and_long_file() {
        let e = p("2026/11/22 10:00:00 main.go:42: message here: with colon");
        assert_eq!(*field(&e, "source_file"), s("main.go"));
        assert_eq!(*field(&e, "source_line"), Value::Int(42));
        assert_eq!(e.message, "message here: with colon");
        let e = p(
            "2026/11/22 10:00:00.000001 /src/app/internal/db/pool.go:118: [WARN] pool exhausted",
        );
        assert_eq!(*field(&e, "source_file"), s("/src/app/internal/db/pool.go"));
        assert_eq!(e.level, Some(Level::Warn));
        assert_eq!(e.message, "pool exhausted");
        let e = p("2026/11/22 10:00:00 config: loaded from main.go:12");
        assert!(!has(&e, "source_file"));
        assert_eq!(e.level, None);
    }

    #[test]
    fn levels_in_message() {
        for (line, lvl, msg) in [
            ("2026/11/22 10:00:00 [ERROR] x", Some(Level::Error), "x"),
            ("2026/11/22 10:00:00 [error] x", Some(Level::Error), "x"),
            ("2026/11/22 10:00:00 ERROR: x", Some(Level::Error), "x"),
            ("2026/11/22 10:00:00 error: x", Some(Level::Error), "x"),
            (
                "2026/11/22 10:00:00 warning: disk",
                Some(Level::Warn),
                "disk",
            ),
            (
                "2026/11/22 10:00:00 INFO hello count=3",
                Some(Level::Info),
                "hello count=3",
            ),
            (
                "2026/11/22 10:00:00 [DEBUG]   padded",
                Some(Level::Debug),
                "padded",
            ),
            ("2026/11/22 10:00:00 Info is fine", None, "Info is fine"),
            ("2026/11/22 10:00:00 INFO", None, "INFO"),
            ("2026/11/22 10:00:00 errors: 3", None, "errors: 3"),
            ("2026/11/22 10:00:00 [x] done", None, "[x] done"),
            ("2026/11/22 10:00:00 e: x", None, "e: x"),
            ("2026/11/22 10:00:00 config: x", None, "config: x"),
        ] {
            let e = p(line);
            assert_eq!(e.level, lvl, "{line}");
            assert_eq!(e.message, msg, "{line}");
        }
    }

    #[test]
    fn prefixes() {
        let e = p("INFO: 2026/11/22 10:00:00 main.go:12: Starting the application...");
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(e.message, "Starting the application...");
        assert!(!has(&e, "prefix"));
        let e = p("[api] 2026/11/22 10:00:00 ready");
        assert_eq!(*field(&e, "prefix"), s("api"));
        assert_eq!(e.level, None);
        let e = p("myapp: 2026/11/22 10:00:00 ERROR: x");
        assert_eq!(*field(&e, "prefix"), s("myapp"));
        assert_eq!(e.level, Some(Level::Error));
    }

    #[test]
    fn refuses_near_misses() {
        for bad in [
            "2026/11/22 10:00:00 [error] 1234#5678: *99 open() failed",
            "2026/11/22 10:00:00 [notice] 1#1: start worker processes",
            "2026-11-22 10:00:00 message",
            "2026/11/22 10:00 message",
            "2026/11/22 10:00:00message",
            "2026/13/22 10:00:00 message",
            "2026/11/22T10:00:00 message",
            "2026/11/22 10:00:00. message",
            "level=info 2026/11/22 10:00:00 x",
            "two words 2026/11/22 10:00:00 x",
            "time=2026-11-22T10:00:00Z level=info msg=x",
        ] {
            assert!(GoLogParser.parse(bad, &ctx()).is_none(), "{bad}");
        }
    }

    #[test]
    fn corpus() {
        check_corpus(&GoLogParser);
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = GoLogParser.parse(&line, &ctx());
        }

        #[test]
        fn never_panics_on_near_lines(line in r#"([A-Za-zé:\[\]]{0,6} )?2026/11/2[0-9] 10:00:0[0-9](\.[0-9]{0,7})? ?([a-zé/_]{0,6}\.go:[0-9]{0,3}: )?\[?[A-Za-zé]{0,6}[\]:]? {0,2}[0-9#]{0,3}.{0,8}"#) {
            let _ = GoLogParser.parse(&line, &ctx());
        }

        #[test]
        fn round_trips(
            secs in 0i64..4_000_000_000,
            micros in proptest::option::of(0u32..1_000_000),
            file in proptest::option::of("[a-z_/]{1,20}\\.go"),
            line_no in 1i64..100_000,
            lvl in proptest::option::of(prop::sample::select(vec!["[ERROR] ", "WARN: ", "info: ", "DEBUG ", "[fatal] "])),
            msg in "[a-z][a-zA-Z0-9 ,.=/-]{0,40}|",
        ) {
            let t = chrono::DateTime::from_timestamp(secs, micros.unwrap_or(0) * 1000).unwrap();
            let mut line = match micros {
                Some(_) => t.format("%Y/%m/%d %H:%M:%S%.6f ").to_string(),
                None => t.format("%Y/%m/%d %H:%M:%S ").to_string(),
            };
            if let Some(f) = &file {
                line.push_str(&format!("{f}:{line_no}: "));
            }
            // A bare level word needs a message after it.
            let lvl = lvl.filter(|l| !msg.is_empty() || l.ends_with(": ") || l.ends_with("] "));
            if let Some(l) = lvl {
                line.push_str(l);
            }
            line.push_str(&msg);
            let e = GoLogParser.parse(&line, &ctx()).unwrap();
            prop_assert_eq!(e.timestamp, Some(Timestamp(secs * 1_000_000_000 + i64::from(micros.unwrap_or(0)) * 1000)));
            prop_assert_eq!(e.level.is_some(), lvl.is_some());
            if let Some(l) = lvl {
                prop_assert_eq!(e.level, word_level(l.trim_matches(|c| c == '[' || c == ']' || c == ':' || c == ' ')));
            }
            if let Some(f) = &file {
                prop_assert_eq!(field(&e, "source_file"), &s(f));
                prop_assert_eq!(field(&e, "source_line"), &Value::Int(line_no));
            } else {
                prop_assert!(!has(&e, "source_file"));
            }
            prop_assert_eq!(e.message.as_ref(), msg.as_str());
        }
    }
}
