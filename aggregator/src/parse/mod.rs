//! Parsing: turning one raw line into the parts of a normalised event.
//!
//! A parser is one file implementing [`Parser`], registered in [`builtin`]; adding one
//! touches nothing else. Parsers are pure functions over a `&str`: they borrow from the
//! line wherever they can ([`Parsed`] holds `Cow`s), never panic, and answer `None` when
//! the line is not in their format, so detection can try the next one.
//!
//! Detection (see [`Detector`]) tries the format that last matched on the same stream
//! first, so steady traffic takes one parser per line, and falls back per line, so files
//! that mix formats still parse. [`plain`] always matches, so every line yields an event.

pub mod access;
pub mod civil;
pub mod custom;
pub mod detect;
pub mod fields;
mod fuzz;
pub mod golog;
pub mod java;
pub mod json;
pub mod klog;
pub mod level;
pub mod logfmt;
pub mod plain;
pub mod python;
pub mod syslog;
#[cfg(test)]
pub(crate) mod testkit;
pub mod time;
pub mod weberror;

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};

pub use time::Zone;

#[doc(hidden)]
pub use fuzz::fuzz_check;

/// A field value as a parser extracted it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A floating point number (finite).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// JSON null.
    Null,
    /// A JSON text (object or array), already valid JSON, written out verbatim.
    Json(Cow<'a, str>),
}

/// What a parser found in a line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed<'a> {
    /// The event's own time, when the line carries one.
    pub timestamp: Option<Timestamp>,
    /// Normalised severity, when the line carries one.
    pub level: Option<Level>,
    /// The message: the human text without the parsed prefix (time, level, ...).
    pub message: Cow<'a, str>,
    /// Extracted fields, in the order found. Keys are unique.
    pub fields: Vec<(Cow<'a, str>, Value<'a>)>,
}

/// What parsers may need besides the line.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// Zone for timestamps that carry none (default UTC).
    pub zone: Zone,
    /// "Now", for formats that omit the year (RFC 3164 syslog, klog): the year is chosen
    /// so the timestamp is not more than a day in the future.
    pub now: Timestamp,
}

impl Default for ParseContext {
    fn default() -> Self {
        ParseContext {
            zone: Zone::Utc,
            now: Timestamp::now(),
        }
    }
}

/// One log format.
pub trait Parser: Send + Sync {
    /// The name written to the event's `format` field (`json`, `logfmt`, ...).
    fn name(&self) -> &'static str;
    /// Parses `line` (no trailing newline), or `None` if it is not in this format.
    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>>;
}

/// Every built-in parser, in detection order: the most specific first, plain text last
/// (it always matches).
pub fn builtin() -> Vec<Box<dyn Parser>> {
    vec![
        Box::new(json::JsonParser),
        Box::new(syslog::SyslogParser),
        Box::new(access::AccessParser),
        Box::new(weberror::NginxErrorParser),
        Box::new(weberror::ApacheErrorParser),
        Box::new(klog::KlogParser),
        Box::new(logfmt::LogfmtParser),
        Box::new(python::PythonParser),
        Box::new(java::JavaParser),
        Box::new(golog::GoLogParser),
        Box::new(plain::PlainParser),
    ]
}
