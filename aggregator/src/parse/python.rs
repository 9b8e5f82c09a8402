//! Python `logging` output in the layouts the standard library, frameworks and common
//! configurations produce.
//!
//! | layout | example |
//! |---|---|
//! | `basicConfig()` default | `WARNING:root:disk usage at 91%` |
//! | `%(asctime)s - %(name)s - %(levelname)s - %(message)s` | `2026-11-22 10:00:00,123 - app.db - ERROR - connection lost` |
//! | `%(asctime)s - %(levelname)s - %(message)s` | `2026-11-22 10:00:00,123 - INFO - started` |
//! | `%(asctime)s %(levelname)s %(name)s: %(message)s` (level may be padded or in `[]`) | `2026-11-22 10:00:00,123 ERROR django.request: Internal Server Error: /api/` |
//! | `%(asctime)s:%(levelname)s:%(name)s:%(message)s` | `2026-11-22 10:00:00,123:INFO:app:ready` |
//! | Django docs' `verbose` | `ERROR 2026-11-22 10:00:00,123 log 4242 140021 Internal Server Error: /x` |
//! | Flask default handler | `[2026-11-22 10:00:00,123] ERROR in app: Exception on /checkout [POST]` |
//! | Celery worker (and its task format) | `[2026-11-22 10:00:00,123: WARNING/ForkPoolWorker-2] shop.tasks.charge[8f1c...]: retrying` |
//! | Gunicorn | `[2026-11-22 10:00:00 +0000] [7] [INFO] Booting worker with pid: 7` |
//! | Uvicorn default | `INFO:     127.0.0.1:51234 - "GET / HTTP/1.1" 200 OK` |
//!
//! The level must be one of Python's names, in capitals: `DEBUG INFO WARNING ERROR
//! CRITICAL`. Times are `asctime` (`YYYY-MM-DD HH:MM:SS[,mmm]`, read in the configured zone
//! unless Gunicorn's offset is present). Extracted fields: `logger` (`%(name)s`), `module`
//! (Flask, Django verbose), `pid` and `thread_id` (Int; Django verbose, Gunicorn: `pid`),
//! `process` (Celery process name), `task_name` and `task_id` (Celery task lines). The
//! message is the rest of the line.
//!
//! Not handled: tracebacks (each following line stands alone), custom `datefmt`s other
//! than ISO-like dates with `-`, the Django development server's `[22/Nov/2026 10:00:00]`
//! lines, custom level names, and Python JSON loggers (the JSON parser takes those).

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};

use super::{time, ParseContext, Parsed, Parser, Value};

/// Python `logging` lines (`python`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonParser;

impl Parser for PythonParser {
    fn name(&self) -> &'static str {
        "python"
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        match line.as_bytes().first()? {
            b'[' => bracketed(line, ctx),
            b'0'..=b'9' => asctime_first(line, ctx),
            b'A'..=b'Z' => level_first(line, ctx),
            _ => None,
        }
    }
}

type Fields<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

fn str_field<'a>(k: &'a str, v: &'a str) -> (Cow<'a, str>, Value<'a>) {
    (Cow::Borrowed(k), Value::Str(Cow::Borrowed(v)))
}

fn done<'a>(
    timestamp: Option<Timestamp>,
    level: Level,
    message: &'a str,
    fields: Fields<'a>,
) -> Option<Parsed<'a>> {
    Some(Parsed {
        timestamp,
        level: Some(level),
        message: Cow::Borrowed(message),
        fields,
    })
}

/// A Python level name at the start of `s`, ending at a word boundary: (level, length).
fn py_level(s: &str) -> Option<(Level, usize)> {
    let b = s.as_bytes();
    let (level, n) = match b.first()? {
        b'D' if b.starts_with(b"DEBUG") => (Level::Debug, 5),
        b'I' if b.starts_with(b"INFO") => (Level::Info, 4),
        b'W' if b.starts_with(b"WARNING") => (Level::Warn, 7),
        b'E' if b.starts_with(b"ERROR") => (Level::Error, 5),
        b'C' if b.starts_with(b"CRITICAL") => (Level::Fatal, 8),
        _ => return None,
    };
    if b.get(n)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    Some((level, n))
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Length of the logger/module name at the start of `s` (0 when there is none).
fn name_len(s: &str) -> usize {
    s.bytes().take_while(|&c| is_name_byte(c)).count()
}

/// `asctime` at the start of `s`: `YYYY-MM-DD HH:MM:SS[,mmm]` (also `T`, `.`, an optional
/// zone), read in the context's zone when it has none.
fn asctime(s: &str, ctx: &ParseContext) -> Option<(Timestamp, usize)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    time::iso_prefix(s, &ctx.zone)
}

fn strip_spaces(s: &str) -> (&str, usize) {
    let n = s.bytes().take_while(|&c| c == b' ').count();
    (s.get(n..).unwrap_or(""), n)
}

/// Forms that start with the level: `LEVEL:name:msg`, Uvicorn's `LEVEL:    msg`, Django's
/// `verbose`.
fn level_first<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let (level, n) = py_level(line)?;
    let rest = line.get(n..)?;
    if let Some(r) = rest.strip_prefix(':') {
        if let Some((logger, msg)) = name_colon(r) {
            return done(None, level, msg, vec![str_field("logger", logger)]);
        }
        // Uvicorn: the level and colon padded with spaces so the message starts at
        // column 10.
        let (msg, spaces) = strip_spaces(r);
        if spaces >= 1 && n + 1 + spaces == 10 && !msg.is_empty() {
            return done(None, level, msg, Vec::new());
        }
        return None;
    }
    // Django `{levelname} {asctime} {module} {process:d} {thread:d} {message}`.
    let r = rest.strip_prefix(' ')?;
    let (timestamp, used) = asctime(r, ctx)?;
    let r = r.get(used..)?.strip_prefix(' ')?;
    let m = name_len(r);
    if m == 0 {
        return None;
    }
    let module = r.get(..m)?;
    let r = r.get(m..)?.strip_prefix(' ')?;
    let (pid, r) = int_then_space(r)?;
    let (tid, msg) = int_then_space(r)?;
    let fields = vec![
        str_field("module", module),
        (Cow::Borrowed("pid"), Value::Int(pid)),
        (Cow::Borrowed("thread_id"), Value::Int(tid)),
    ];
    done(Some(timestamp), level, msg, fields)
}

/// `digits ` at the start of `s`: the number and what follows the space (or the end).
fn int_then_space(s: &str) -> Option<(i64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 18 {
        return None;
    }
    let v = s.get(..n)?.parse().ok()?;
    let rest = s.get(n..)?;
    if rest.is_empty() {
        return Some((v, rest));
    }
    Some((v, rest.strip_prefix(' ')?))
}

/// `name:message` at the start of `s`: (name, message).
fn name_colon(s: &str) -> Option<(&str, &str)> {
    let n = name_len(s);
    if n == 0 || s.as_bytes().get(n) != Some(&b':') {
        return None;
    }
    Some((s.get(..n)?, s.get(n + 1..)?))
}

/// Forms that start with `asctime`.
fn asctime_first<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let (timestamp, used) = asctime(line, ctx)?;
    let rest = line.get(used..)?;
    let ts = Some(timestamp);

    // `asctime - name - LEVEL - msg` and `asctime - LEVEL - msg`.
    if let Some(r) = rest.strip_prefix(" - ") {
        if let Some((level, n)) = py_level(r) {
            if let Some(msg) = dash_sep(r.get(n..)?) {
                return done(ts, level, msg, Vec::new());
            }
        }
        let m = name_len(r);
        if m == 0 {
            return None;
        }
        let logger = r.get(..m)?;
        let r = r.get(m..)?.strip_prefix(" - ")?;
        let (level, n) = py_level(r)?;
        let msg = dash_sep(r.get(n..)?)?;
        return done(ts, level, msg, vec![str_field("logger", logger)]);
    }

    // `asctime:LEVEL:name:msg`.
    if let Some(r) = rest.strip_prefix(':') {
        let (level, n) = py_level(r)?;
        let (logger, msg) = name_colon(r.get(n..)?.strip_prefix(':')?)?;
        return done(ts, level, msg, vec![str_field("logger", logger)]);
    }

    // `asctime LEVEL name: msg` (level may be padded, or bracketed).
    let r = rest.strip_prefix(' ')?;
    let (level, r) = match r.strip_prefix('[') {
        Some(inner) => {
            let (level, n) = py_level(inner)?;
            (level, inner.get(n..)?.strip_prefix(']')?)
        }
        None => {
            let (level, n) = py_level(r)?;
            (level, r.get(n..)?)
        }
    };
    let (r, spaces) = strip_spaces(r);
    if spaces == 0 {
        return None;
    }
    let (logger, msg) = name_colon(r)?;
    let msg = match msg.strip_prefix(' ') {
        Some(m) => m,
        None if msg.is_empty() => msg,
        None => return None,
    };
    done(ts, level, msg, vec![str_field("logger", logger)])
}

/// After a level: optional padding, then `- `, then the message (or the end after `-`).
fn dash_sep(s: &str) -> Option<&str> {
    let (r, _) = strip_spaces(s);
    let r = r.strip_prefix('-')?;
    if r.is_empty() {
        return Some(r);
    }
    r.strip_prefix(' ')
}

/// Flask, Celery and Gunicorn: lines that start with a bracketed time.
fn bracketed<'a>(line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
    let (timestamp, used) = asctime(line.get(1..)?, ctx)?;
    let rest = line.get(1 + used..)?;
    let ts = Some(timestamp);

    // Celery: `[asctime: LEVEL/ProcessName] msg`.
    if let Some(r) = rest.strip_prefix(": ") {
        let (level, n) = py_level(r)?;
        let r = r.get(n..)?.strip_prefix('/')?;
        let p = r
            .bytes()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            .count();
        if p == 0 {
            return None;
        }
        let process = r.get(..p)?;
        let msg = r.get(p..)?.strip_prefix(']')?;
        let msg = match msg.strip_prefix(' ') {
            Some(m) => m,
            None if msg.is_empty() => msg,
            None => return None,
        };
        let mut fields = vec![str_field("process", process)];
        // The task format: `task.name[task-id]: msg`.
        let mut msg = msg;
        if let Some((name, id, rest)) = celery_task(msg) {
            fields.push(str_field("task_name", name));
            fields.push(str_field("task_id", id));
            msg = rest;
        }
        return done(ts, level, msg, fields);
    }

    let rest = rest.strip_prefix(']')?;

    // Gunicorn: `[asctime zone] [pid] [LEVEL] msg`.
    if let Some(r) = rest.strip_prefix(" [") {
        let (pid, r) = {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 || n > 18 {
                return None;
            }
            (r.get(..n)?.parse::<i64>().ok()?, r.get(n..)?)
        };
        let r = r.strip_prefix("] [")?;
        let (level, n) = py_level(r)?;
        let r = r.get(n..)?.strip_prefix(']')?;
        let msg = match r.strip_prefix(' ') {
            Some(m) => m,
            None if r.is_empty() => r,
            None => return None,
        };
        return done(
            ts,
            level,
            msg,
            vec![(Cow::Borrowed("pid"), Value::Int(pid))],
        );
    }

    // Flask: `[asctime] LEVEL in module: msg`.
    let r = rest.strip_prefix(' ')?;
    let (level, n) = py_level(r)?;
    let r = r.get(n..)?.strip_prefix(" in ")?;
    let (module, msg) = name_colon(r)?;
    let msg = match msg.strip_prefix(' ') {
        Some(m) => m,
        None if msg.is_empty() => msg,
        None => return None,
    };
    done(ts, level, msg, vec![str_field("module", module)])
}

/// Celery's task prefix `shop.tasks.charge[8f1c2a0e-...]: ` → (name, id, rest).
fn celery_task(s: &str) -> Option<(&str, &str, &str)> {
    let n = s
        .bytes()
        .take_while(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        .count();
    if n == 0 || s.as_bytes().get(n) != Some(&b'[') {
        return None;
    }
    let r = s.get(n + 1..)?;
    let id = r
        .bytes()
        .take_while(|&c| c.is_ascii_alphanumeric() || c == b'-')
        .count();
    if id == 0 {
        return None;
    }
    let rest = r.get(id..)?.strip_prefix("]:")?;
    let rest = match rest.strip_prefix(' ') {
        Some(m) => m,
        None if rest.is_empty() => rest,
        None => return None,
    };
    Some((s.get(..n)?, r.get(..id)?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testkit::{check_corpus, ctx, expect_field as field, has, s, ts};
    use proptest::prelude::*;

    fn p(line: &str) -> Parsed<'_> {
        PythonParser
            .parse(line, &ctx())
            .unwrap_or_else(|| panic!("refused {line}"))
    }

    #[test]
    fn basic_config_default() {
        let e = p("WARNING:root:disk usage at 91%");
        assert_eq!(e.timestamp, None);
        assert_eq!(e.level, Some(Level::Warn));
        assert_eq!(e.message, "disk usage at 91%");
        assert_eq!(e.fields, vec![str_field("logger", "root")]);
        let e = p("CRITICAL:app.worker:");
        assert_eq!(e.level, Some(Level::Fatal));
        assert_eq!(e.message, "");
        let e = p("INFO:__main__:loaded 3 plugins: a, b, c");
        assert_eq!(*field(&e, "logger"), s("__main__"));
        assert_eq!(e.message, "loaded 3 plugins: a, b, c");
    }

    #[test]
    fn dashes() {
        let e = p("2026-11-22 10:00:00,123 - app.db - ERROR - connection lost");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
        assert_eq!(e.level, Some(Level::Error));
        assert_eq!(e.message, "connection lost");
        assert_eq!(*field(&e, "logger"), s("app.db"));
        let e = p("2026-11-22 10:00:00,123 - INFO - started - pid 4");
        assert_eq!(e.message, "started - pid 4");
        assert!(!has(&e, "logger"));
        let e = p("2026-11-22 10:00:00,123 - app - WARNING  - padded");
        assert_eq!(e.level, Some(Level::Warn));
        assert_eq!(e.message, "padded");
    }

    #[test]
    fn level_then_name_colon() {
        let e = p("2026-11-22 10:00:00,123 INFO app.db: pool ready: 10 connections");
        assert_eq!(e.message, "pool ready: 10 connections");
        assert_eq!(*field(&e, "logger"), s("app.db"));
        let e = p("2026-11-22 10:00:00 WARNING  urllib3.connectionpool: Retrying");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(e.level, Some(Level::Warn));
        let e = p("2026-11-22 10:00:00,5 [ERROR] app: boom");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.5Z")));
        assert_eq!(e.message, "boom");
        let e = p("2026-11-22 10:00:00,123:DEBUG:asyncio:Using selector: EpollSelector");
        assert_eq!(e.level, Some(Level::Debug));
        assert_eq!(*field(&e, "logger"), s("asyncio"));
        assert_eq!(e.message, "Using selector: EpollSelector");
    }

    #[test]
    fn frameworks() {
        let e = p("[2026-11-22 10:00:00,123] ERROR in app: Exception on /checkout [POST]");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00.123Z")));
        assert_eq!(*field(&e, "module"), s("app"));
        assert_eq!(e.message, "Exception on /checkout [POST]");

        let e = p("[2026-11-22 10:00:00,123: INFO/MainProcess] Connected to redis://redis:6379/0");
        assert_eq!(*field(&e, "process"), s("MainProcess"));
        assert_eq!(e.message, "Connected to redis://redis:6379/0");
        let e = p("[2026-11-22 10:00:00,123: WARNING/ForkPoolWorker-2] shop.tasks.charge[8f1c2a0e-1b2c-4d5e-8f90-a1b2c3d4e5f6]: retrying in 10s");
        assert_eq!(*field(&e, "task_name"), s("shop.tasks.charge"));
        assert_eq!(
            *field(&e, "task_id"),
            s("8f1c2a0e-1b2c-4d5e-8f90-a1b2c3d4e5f6")
        );
        assert_eq!(e.message, "retrying in 10s");

        let e = p("[2026-11-22 11:00:00 +0100] [7] [INFO] Booting worker with pid: 7");
        assert_eq!(e.timestamp, Some(ts("2026-11-22T10:00:00Z")));
        assert_eq!(*field(&e, "pid"), Value::Int(7));
        assert_eq!(e.message, "Booting worker with pid: 7");

        let e = p("INFO:     127.0.0.1:51234 - \"GET /health HTTP/1.1\" 200 OK");
        assert_eq!(e.level, Some(Level::Info));
        assert_eq!(
            e.message,
            "127.0.0.1:51234 - \"GET /health HTTP/1.1\" 200 OK"
        );
        assert!(e.fields.is_empty());
        assert_eq!(
            p("WARNING:  Invalid HTTP request received.").level,
            Some(Level::Warn)
        );
        assert_eq!(p("CRITICAL: x").level, Some(Level::Fatal));

        let e =
            p("ERROR 2026-11-22 10:00:00,123 log 4242 140021 Internal Server Error: /api/orders/");
        assert_eq!(*field(&e, "module"), s("log"));
        assert_eq!(*field(&e, "pid"), Value::Int(4242));
        assert_eq!(*field(&e, "thread_id"), Value::Int(140021));
        assert_eq!(e.message, "Internal Server Error: /api/orders/");
    }

    #[test]
    fn refuses_near_misses() {
        for bad in [
            "WARN:root:x",
            "Warning:root:x",
            "WARNING:root x",
            "WARNING: disk full",
            "INFO: x",
            "INFO:    x",
            "INFOS:root:x",
            "2026/11/22 10:00:00 INFO app: x",
            "2026-11-22 10:00:00,123 INFO app - x",
            "2026-11-22 10:00:00,123 WARN app: x",
            "2026-11-22 10:00:00,123  INFO app: x",
            "2026-11-22 10:00:00,123 INFO [main] app: x",
            "2026-11-22 10:00:00,123 - app.db - ERR - x",
            "2026-11-22 10:00:00,123 - app db - ERROR - x",
            "[2026-11-22 10:00:00,123] ERROR [main] app: x",
            "[2026-11-22 10:00:00,123] INFO [KafkaServer id=1] started (kafka.server.KafkaServer)",
            "[2026-11-22 10:00:00,123: INFO] x",
            "[2026-11-22 10:00:00 +0000] [x] [INFO] x",
            "ERROR 2026-11-22 10:00:00,123 log x 1 y",
            "ERROR Something failed",
        ] {
            assert!(PythonParser.parse(bad, &ctx()).is_none(), "{bad}");
        }
    }

    #[test]
    fn corpus() {
        check_corpus(&PythonParser);
    }

    fn level_name() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = PythonParser.parse(&line, &ctx());
        }

        #[test]
        fn never_panics_on_near_lines(line in r#"\[?(2026-11-22 10:00:0[0-9](,[0-9]{1,3})?( \+0000)?\]?)?[ :/\-\[\]]{0,3}(INFO|WARNING|ERROR|CRITICAL|DEBUG)?[ :/\-\]\[]{0,4}[a-zé._0-9\[\]-]{0,8}[ :\-\]\[]{0,3}.{0,8}"#) {
            let _ = PythonParser.parse(&line, &ctx());
        }

        #[test]
        fn round_trips(
            form in 0usize..6,
            level in level_name(),
            logger in "[a-z_][a-z0-9_]{0,8}(\\.[a-z_][a-z0-9_]{0,8}){0,3}",
            millis in 0i64..1000,
            secs in 0i64..4_000_000_000,
            pid in 0i64..1_000_000,
            msg in "[^ ]\\PC{0,40}|",
        ) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let asctime = format!("{},{millis:03}", t.format("%Y-%m-%d %H:%M:%S"));
            let line = match form {
                0 => format!("{level}:{logger}:{msg}"),
                1 => format!("{asctime} - {logger} - {level} - {msg}"),
                2 => format!("{asctime} {level:<8} {logger}: {msg}"),
                3 => format!("[{asctime}] {level} in {logger}: {msg}"),
                4 => format!("[{asctime}: {level}/ForkPoolWorker-{pid}] {msg}"),
                _ => format!("[{} +0000] [{pid}] [{level}] {msg}", t.format("%Y-%m-%d %H:%M:%S")),
            };
            let e = PythonParser.parse(&line, &ctx()).unwrap();
            prop_assert_eq!(e.level, py_level(level).map(|(l, _)| l));
            let want_ts = match form {
                0 => None,
                5 => Some(Timestamp(secs * 1_000_000_000)),
                _ => Some(Timestamp(secs * 1_000_000_000 + millis * 1_000_000)),
            };
            prop_assert_eq!(e.timestamp, want_ts);
            match form {
                0..=2 => prop_assert_eq!(field(&e, "logger"), &s(&logger)),
                3 => prop_assert_eq!(field(&e, "module"), &s(&logger)),
                4 => {
                    let process = format!("ForkPoolWorker-{pid}");
                    prop_assert_eq!(field(&e, "process"), &s(&process));
                }
                _ => prop_assert_eq!(field(&e, "pid"), &Value::Int(pid)),
            }
            if form == 4 && celery_task(&msg).is_some() {
                return Ok(());
            }
            prop_assert_eq!(e.message.as_ref(), msg.as_str());
        }
    }
}
