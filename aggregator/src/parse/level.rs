//! Normalising severities to `trace debug info warn error fatal`.
//!
//! | input (any case) | level |
//! |---|---|
//! | `trace`, `trc`, `finest`, `finer`, `verbose`, `v` | trace |
//! | `debug`, `dbg`, `debu`, `d`, `fine`, `config` | debug |
//! | `info`, `inf`, `information`, `informational`, `i`, `notice`, `n`, `ok` | info |
//! | `warn`, `warning`, `wrn`, `w` | warn |
//! | `error`, `err`, `eror`, `e`, `severe` | error |
//! | `fatal`, `ftl`, `f`, `critical`, `crit`, `c`, `panic`, `alert`, `emerg`, `emergency` | fatal |
//!
//! Numbers: bunyan/pino levels 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
//! (values in between round down to the level below); syslog severities 0–2 fatal
//! (emerg, alert, crit), 3 error, 4 warn, 5–6 info (notice, info), 7 debug.

use logferry_shared::event::Level;

/// A level word or abbreviation, in any case; surrounding brackets, spaces, colons are
/// ignored (`[WARN]`, `ERROR:`).
pub fn from_word(word: &str) -> Option<Level> {
    let w = word.trim_matches(|c: char| {
        c == '[' || c == ']' || c == ':' || c == ' ' || c == '<' || c == '>'
    });
    if w.is_empty() || w.len() > 13 {
        return None;
    }
    let mut buf = [0u8; 13];
    for (d, s) in buf.iter_mut().zip(w.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    Some(match &buf[..w.len()] {
        b"trace" | b"trc" | b"finest" | b"finer" | b"verbose" | b"v" => Level::Trace,
        b"debug" | b"dbg" | b"debu" | b"d" | b"fine" | b"config" => Level::Debug,
        b"info" | b"inf" | b"information" | b"informational" | b"i" | b"notice" | b"n" | b"ok" => {
            Level::Info
        }
        b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
        b"error" | b"err" | b"eror" | b"e" | b"severe" => Level::Error,
        b"fatal" | b"ftl" | b"f" | b"critical" | b"crit" | b"c" | b"panic" | b"alert"
        | b"emerg" | b"emergency" => Level::Fatal,
        _ => return None,
    })
}

/// A bunyan/pino numeric level (10–60).
pub fn from_number(n: i64) -> Option<Level> {
    Some(match n {
        10..=19 => Level::Trace,
        20..=29 => Level::Debug,
        30..=39 => Level::Info,
        40..=49 => Level::Warn,
        50..=59 => Level::Error,
        60..=69 => Level::Fatal,
        _ => return None,
    })
}

/// A syslog severity (0–7).
pub fn from_syslog_severity(severity: u8) -> Option<Level> {
    Some(match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        7 => Level::Debug,
        _ => return None,
    })
}

/// An HTTP status class, for access logs: 5xx error, 4xx warn, otherwise info.
pub fn from_http_status(status: u16) -> Level {
    match status {
        500..=599 => Level::Error,
        400..=499 => Level::Warn,
        _ => Level::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_in_any_case_and_dress() {
        for (w, l) in [
            ("WARNING", Level::Warn),
            ("warn", Level::Warn),
            ("W", Level::Warn),
            ("CRITICAL", Level::Fatal),
            ("err", Level::Error),
            ("Information", Level::Info),
            ("[INFO]", Level::Info),
            ("ERROR:", Level::Error),
            ("<notice>", Level::Info),
            ("V", Level::Trace),
            ("Severe", Level::Error),
            ("FINE", Level::Debug),
        ] {
            assert_eq!(from_word(w), Some(l), "{w}");
        }
        for w in ["", "x", "warned", "informationally-long", "[]"] {
            assert_eq!(from_word(w), None, "{w}");
        }
    }

    #[test]
    fn numbers_and_severities() {
        assert_eq!(from_number(30), Some(Level::Info));
        assert_eq!(from_number(55), Some(Level::Error));
        assert_eq!(from_number(5), None);
        assert_eq!(from_syslog_severity(2), Some(Level::Fatal));
        assert_eq!(from_syslog_severity(5), Some(Level::Info));
        assert_eq!(from_syslog_severity(8), None);
        assert_eq!(from_http_status(503), Level::Error);
        assert_eq!(from_http_status(404), Level::Warn);
        assert_eq!(from_http_status(304), Level::Info);
    }
}
