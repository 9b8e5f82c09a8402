//! Java logging: the Log4j / Logback pattern layouts in common use, Spring Boot's console
//! format, Kafka, Elasticsearch, Tomcat (JULI `OneLineFormatter`) and JBoss/WildFly.
//!
//! | layout | example |
//! |---|---|
//! | `%d %-5level [%thread] %logger - %msg` | `2026-11-22 10:00:00,123 ERROR [main] com.shop.OrderService - payment declined` |
//! | `%d [%thread] %-5level %logger - %msg` (Logback default; also time only) | `10:00:00.123 [main] WARN  c.s.App - msg` |
//! | `%d %-5p %c - %m` / `%d %p %c [%t] %m` (logger must contain a dot) | `2026-11-22 10:00:00,123 INFO  c.s.App [main] Started` |
//! | Spring Boot 2 and 3 | `2026-11-22 10:00:00.123  INFO 1234 --- [nio-8080-exec-1] c.s.web.Controller : request served` |
//! | Kafka, and `[%d] %p [%t] %c: %m` | `[2026-11-22 10:00:00,123] INFO [KafkaServer id=1] started (kafka.server.KafkaServer)` |
//! | Elasticsearch | `[2026-11-22T10:00:00,123][INFO ][o.e.n.Node               ] [es-1] started` |
//! | Tomcat / JULI | `22-Nov-2026 10:00:00.123 INFO [main] org.apache.catalina.startup.Catalina.start Server startup in [812] milliseconds` |
//! | JBoss / WildFly | `10:00:00,123 INFO  [org.jboss.as] (MSC service thread 1-2) WFLYSRV0049: started` |
//!
//! Levels: `TRACE DEBUG INFO WARN ERROR FATAL` in capitals (Tomcat: the `java.util.logging`
//! names `SEVERE WARNING INFO CONFIG FINE FINER FINEST`). Times: `YYYY-MM-DD HH:MM:SS[.,]mmm`
//! (or `T`, with an optional zone: Spring Boot 3 writes `+01:00`), Tomcat's
//! `dd-Mon-yyyy HH:MM:SS.mmm`, or a time of day alone, which is put on the day (yesterday,
//! today or tomorrow in the context's zone) that brings it nearest the context's `now`.
//! Times without a zone are read in the context's zone.
//!
//! Extracted fields: `thread`, `logger` (for Tomcat the `class.method` source), `pid`
//! (Int, Spring Boot), `application` and `correlation` (Spring Boot 3 extra brackets),
//! `node` (Elasticsearch). The message is the text after the logger's separator.
//!
//! Not handled: stack traces and other continuation lines (each stands alone),
//! `java.util.logging`'s default two-line `SimpleFormatter`, MDC fields in custom
//! patterns, dates written with `/`, and JSON layouts (the JSON parser takes those).

use std::borrow::Cow;

use chrono::{Duration, NaiveDate, NaiveTime};
use logferry_shared::event::{Level, Timestamp};

use super::{level, time, ParseContext, Parsed, Parser, Value};

/// Log4j / Logback style Java lines (`java`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JavaParser;

impl Parser for JavaParser {
    fn name(&self) -> &'static str {
        "java"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        let b = line.as_bytes();
        match b.first()? {
            b'[' => bracketed(line, ctx),
            b'0'..=b'9' => match (b.get(2)?, b.get(4)?) {
                (_, b'-') => {
                    let (t, used) = time::iso_prefix(line, &ctx.zone)?;
                    after_time(t, line.get(used..)?)
                }
                (b'-', _) => tomcat(line, ctx),
                (b':', _) => {
                    let (tod, used) = clock(b)?;
                    after_time(time_today(tod, ctx)?, line.get(used..)?)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

type Fields<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

fn str_field<'a>(k: &'a str, v: &'a str) -> (Cow<'a, str>, Value<'a>) {
    (Cow::Borrowed(k), Value::Str(Cow::Borrowed(v)))
}

fn done<'a>(
    timestamp: Timestamp,
    level: Level,
    message: &'a str,
    fields: Fields<'a>,
) -> Option<Parsed<'a>> {
    Some(Parsed {
        timestamp: Some(timestamp),
        level: Some(level),
        message: Cow::Borrowed(message),
        fields,
    })
}

// ---------------------------------------------------------------------------------------
// Times

/// `HH:MM:SS` with an optional `.` or `,` fraction at the start of `b`.
fn clock(b: &[u8]) -> Option<(NaiveTime, usize)> {
    let t = b.get(..8)?;
    if t[2] != b':' || t[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        let (x, y) = (t[i], t[i + 1]);
        (x.is_ascii_digit() && y.is_ascii_digit())
            .then(|| u32::from(x - b'0') * 10 + u32::from(y - b'0'))
    };
    let (h, m, s) = (two(0)?, two(3)?, two(6)?);
    let mut used = 8;
    let mut nanos = 0;
    if matches!(b.get(8), Some(b'.') | Some(b',')) {
        let n = b[9..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 {
            for &c in &b[9..9 + n.min(9)] {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
            nanos *= 10u32.pow(9 - n.min(9) as u32);
            used = 9 + n;
        }
    }
    Some((NaiveTime::from_hms_nano_opt(h, m, s.min(59), nanos)?, used))
}

/// A time of day on the local day (yesterday, today, tomorrow) nearest to `now`.
fn time_today(tod: NaiveTime, ctx: &ParseContext) -> Option<Timestamp> {
    let offset = i64::from(time::offset_at(&ctx.zone, ctx.now));
    let local_now = time::to_utc(ctx.now)
        .naive_utc()
        .checked_add_signed(Duration::seconds(offset))?;
    let today = local_now.date();
    [today.pred_opt(), Some(today), today.succ_opt()]
        .into_iter()
        .flatten()
        .filter_map(|d| ctx.zone.resolve(d.and_time(tod)))
        .min_by_key(|t| t.0.abs_diff(ctx.now.0))
}

/// Tomcat: `22-Nov-2026 10:00:00.123 LEVEL [thread] source message`.
fn tomcat<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let b = line.as_bytes();
    let d = b.get(..12)?;
    if d[2] != b'-' || d[6] != b'-' || d[11] != b' ' {
        return None;
    }
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })
    };
    let day = num(&d[0..2])?;
    let month = time::month(&d[3..6])?;
    let year = num(&d[7..11])?;
    let (tod, used) = clock(b.get(12..)?)?;
    let dt = NaiveDate::from_ymd_opt(year as i32, month, day)?.and_time(tod);
    let timestamp = ctx.zone.resolve(dt)?;
    let rest = line.get(12 + used..)?.strip_prefix(' ')?;
    let word_len = rest.bytes().take_while(u8::is_ascii_uppercase).count();
    let word = rest.get(..word_len)?;
    if !matches!(
        word,
        "SEVERE" | "WARNING" | "INFO" | "CONFIG" | "FINE" | "FINER" | "FINEST"
    ) {
        return None;
    }
    let level = level::from_word(word)?;
    let rest = rest.get(word_len..)?.strip_prefix(' ')?;
    let (thread, rest) = thread(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let n = logger_len(rest)?;
    let source = rest.get(..n)?;
    let msg = rest.get(n..)?;
    let msg = msg
        .strip_prefix(' ')
        .or_else(|| msg.is_empty().then_some(msg))?;
    done(
        timestamp,
        level,
        msg,
        vec![str_field("thread", thread), str_field("logger", source)],
    )
}

// ---------------------------------------------------------------------------------------
// Pieces

/// A Log4j/Logback level at the start of `s`, ending at a space or `]`.
fn java_level(s: &str) -> Option<(Level, usize)> {
    let b = s.as_bytes();
    let (level, n) = match b.first()? {
        b'T' if b.starts_with(b"TRACE") => (Level::Trace, 5),
        b'D' if b.starts_with(b"DEBUG") => (Level::Debug, 5),
        b'I' if b.starts_with(b"INFO") => (Level::Info, 4),
        b'W' if b.starts_with(b"WARN") => (Level::Warn, 4),
        b'E' if b.starts_with(b"ERROR") => (Level::Error, 5),
        b'F' if b.starts_with(b"FATAL") => (Level::Fatal, 5),
        _ => return None,
    };
    match b.get(n) {
        None | Some(b' ') | Some(b']') => Some((level, n)),
        _ => None,
    }
}

/// `[thread]` at the start of `s`: the trimmed name and what follows.
fn thread(s: &str) -> Option<(&str, &str)> {
    let r = s.strip_prefix('[')?;
    let end = r.bytes().take(256).position(|c| c == b']')?;
    let name = r.get(..end)?.trim();
    if name.is_empty() {
        return None;
    }
    Some((name, r.get(end + 1..)?))
}

/// Length of a logger name at the start of `s` (`com.shop.App`, `c.s.App$Inner`, and
/// Tomcat's `o.a.c.c.C.[Tomcat].[localhost].[/]`).
fn logger_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'$')
    {
        return None;
    }
    Some(
        b.iter()
            .take_while(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, b'_' | b'$' | b'.' | b'-' | b'[' | b']' | b'/')
            })
            .count(),
    )
}

/// After a (possibly padded) logger: spaces, then `-` or `:` (`dash_only`: just `-`),
/// then a space or the end. Returns the message.
fn separator(s: &str, dash_only: bool) -> Option<&str> {
    let r = s.trim_start_matches(' ');
    let r = match r.strip_prefix('-') {
        Some(r) => r,
        None if !dash_only => r.strip_prefix(':')?,
        None => return None,
    };
    if r.is_empty() {
        return Some(r);
    }
    r.strip_prefix(' ')
}

fn skip_spaces(s: &str) -> Option<&str> {
    let r = s.trim_start_matches(' ');
    (r.len() < s.len()).then_some(r)
}

// ---------------------------------------------------------------------------------------
// Layouts

/// What follows an unbracketed date-time or time of day.
fn after_time(timestamp: Timestamp, rest: &str) -> Option<Parsed<'_>> {
    let rest = skip_spaces(rest)?;

    // `[thread] LEVEL logger - msg` (Logback default).
    if rest.starts_with('[') {
        let (thread, r) = thread(rest)?;
        let r = r.strip_prefix(' ')?;
        let (level, n) = java_level(r)?;
        let r = skip_spaces(r.get(n..)?)?;
        let ln = logger_len(r)?;
        let logger = r.get(..ln)?;
        let msg = separator(r.get(ln..)?, false)?;
        return done(
            timestamp,
            level,
            msg,
            vec![str_field("thread", thread), str_field("logger", logger)],
        );
    }

    let (level, n) = java_level(rest)?;
    let r = skip_spaces(rest.get(n..)?)?;

    // Spring Boot: `LEVEL pid --- [app] [thread] [correlation] logger : msg` (the pid is
    // blank when Spring Boot does not know it).
    if let Some(r) = r.strip_prefix("--- ") {
        return spring(timestamp, level, None, r);
    }
    let pid_len = r.bytes().take_while(u8::is_ascii_digit).count();
    if pid_len > 0 {
        if pid_len > 18 {
            return None;
        }
        let pid: i64 = r.get(..pid_len)?.parse().ok()?;
        let r = r.get(pid_len..)?.strip_prefix(" --- ")?;
        return spring(timestamp, level, Some(pid), r);
    }

    if r.starts_with('[') {
        let (inner, after) = thread(r)?;
        // JBoss / WildFly: `[logger] (thread) msg`.
        if let Some(a) = after.strip_prefix(" (") {
            if logger_len(inner) == Some(inner.len()) {
                let end = a.bytes().take(256).position(|c| c == b')')?;
                let thread = a.get(..end)?;
                let msg = a.get(end + 1..)?;
                let msg = msg
                    .strip_prefix(' ')
                    .or_else(|| msg.is_empty().then_some(msg))?;
                return done(
                    timestamp,
                    level,
                    msg,
                    vec![str_field("thread", thread), str_field("logger", inner)],
                );
            }
        }
        // `[thread] logger - msg`.
        let a = after.strip_prefix(' ')?;
        let ln = logger_len(a)?;
        let logger = a.get(..ln)?;
        let msg = separator(a.get(ln..)?, false)?;
        return done(
            timestamp,
            level,
            msg,
            vec![str_field("thread", inner), str_field("logger", logger)],
        );
    }

    // `LEVEL logger - msg` and `LEVEL logger [thread] msg`: the logger must be dotted.
    let ln = logger_len(r)?;
    let logger = r.get(..ln)?;
    if !logger.contains('.') || logger.ends_with('.') {
        return None;
    }
    let after = r.get(ln..)?;
    if after.starts_with(" [") {
        let (thread, a) = thread(after.get(1..)?)?;
        let msg = a.strip_prefix(' ').or_else(|| a.is_empty().then_some(a))?;
        return done(
            timestamp,
            level,
            msg,
            vec![str_field("logger", logger), str_field("thread", thread)],
        );
    }
    let msg = separator(after, true)?;
    done(timestamp, level, msg, vec![str_field("logger", logger)])
}

/// Spring Boot after `pid --- `: one to three bracket groups, then `logger : msg`.
fn spring(timestamp: Timestamp, level: Level, pid: Option<i64>, s: &str) -> Option<Parsed<'_>> {
    let mut groups: [&str; 3] = [""; 3];
    let mut n = 0;
    let mut r = s;
    while r.starts_with('[') && n < 3 {
        let inner = r.get(1..)?;
        let end = inner.bytes().take(256).position(|c| c == b']')?;
        groups[n] = inner.get(..end)?.trim();
        n += 1;
        r = inner.get(end + 1..)?.strip_prefix(' ')?;
    }
    let (app, thread, correlation) = match n {
        1 => ("", groups[0], ""),
        // `[thread] [trace-span]` (no application name) or `[app] [thread]`.
        2 if is_correlation(groups[1]) => ("", groups[0], groups[1]),
        2 => (groups[0], groups[1], ""),
        3 => (groups[0], groups[1], groups[2]),
        _ => return None,
    };
    let ln = logger_len(r)?;
    let logger = r.get(..ln)?;
    let msg = separator(r.get(ln..)?, false)?;
    let mut fields: Fields<'_> = Vec::with_capacity(5);
    if let Some(pid) = pid {
        fields.push((Cow::Borrowed("pid"), Value::Int(pid)));
    }
    if !app.is_empty() {
        fields.push(str_field("application", app));
    }
    if !thread.is_empty() {
        fields.push(str_field("thread", thread));
    }
    if !correlation.is_empty() {
        fields.push(str_field("correlation", correlation));
    }
    fields.push(str_field("logger", logger));
    done(timestamp, level, msg, fields)
}

/// A Spring Boot correlation id: `traceId-spanId` in hex.
fn is_correlation(s: &str) -> bool {
    s.len() >= 3 && s.contains('-') && s.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
}

/// Kafka, `[%d] %p [%t] %c: %m`, and Elasticsearch: lines that start with `[date time]`.
fn bracketed<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let inner = line.get(1..)?;
    if inner.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let (timestamp, used) = time::iso_prefix(inner, &ctx.zone)?;
    let rest = inner.get(used..)?.strip_prefix(']')?;

    // Elasticsearch: `[ts][LEVEL ][logger   ] [node] msg`.
    if let Some(r) = rest.strip_prefix('[') {
        let (level, n) = java_level(r)?;
        let r = r.get(n..)?.trim_start_matches(' ').strip_prefix("][")?;
        let end = r.bytes().take(256).position(|c| c == b']')?;
        let logger = r.get(..end)?.trim_end_matches(' ');
        if logger_len(logger) != Some(logger.len()) {
            return None;
        }
        let r = r.get(end + 1..)?;
        let mut msg = r.strip_prefix(' ').or_else(|| r.is_empty().then_some(r))?;
        let mut fields = vec![str_field("logger", logger)];
        if let Some((node, after)) = thread(msg) {
            if !node.contains(' ') {
                if let Some(m) = after
                    .strip_prefix(' ')
                    .or_else(|| after.is_empty().then_some(after))
                {
                    fields.push(str_field("node", node));
                    msg = m;
                }
            }
        }
        return done(timestamp, level, msg, fields);
    }

    let r = rest.strip_prefix(' ')?;
    let (level, n) = java_level(r)?;
    let text = skip_spaces(r.get(n..)?)?;

    // Flask's `[asctime] LEVEL in module: msg` is Python's.
    if let Some(r) = text.strip_prefix("in ") {
        let n = logger_len(r).unwrap_or(0);
        if n > 0 && r.as_bytes().get(n) == Some(&b':') {
            return None;
        }
    }

    // Kafka: `msg (logger.Name)`.
    if let Some(body) = text.strip_suffix(')') {
        if let Some(open) = body.rfind(" (") {
            let logger = body.get(open + 2..)?;
            if logger.contains('.') && logger_len(logger) == Some(logger.len()) {
                return done(
                    timestamp,
                    level,
                    body.get(..open)?,
                    vec![str_field("logger", logger)],
                );
            }
        }
    }

    // `[thread] logger: msg` / `[thread] logger - msg`.
    let (thread, a) = thread(text)?;
    let a = a.strip_prefix(' ')?;
    let ln = logger_len(a)?;
    let logger = a.get(..ln)?;
    let msg = separator(a.get(ln..)?, false)?;
    done(
        timestamp,
        level,
        msg,
        vec![str_field("thread", thread), str_field("logger", logger)],
    )
}

#[cfg(test)]
mod tests;
