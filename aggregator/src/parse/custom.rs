//! User-defined formats from the configuration: a regex with named captures, or a
//! grok-style pattern compiled to one.
//!
//! Capture names with a meaning:
//!
//! * `timestamp` — read in any layout the built-in parsers know (ISO 8601 / RFC 3339,
//!   CLF/HTTPDATE, BSD syslog, ctime, logcat, epoch seconds/milliseconds, … see
//!   [`super::plain`]); text that is no timestamp is kept as the field `timestamp`.
//! * `level` — normalised with [`level::from_word`] (or as a syslog severity digit);
//!   text that is no level is kept as the field `level`.
//! * `message` — the message; without this capture the message is the whole line.
//!
//! Every other named capture becomes a field of that name (captures that did not take
//! part in the match are left out). A line the regex does not match is refused (`None`),
//! so detection moves on. The regex matches anywhere in the line unless anchored
//! (`^...$`); it is compiled once and only ever run on the one line.
//!
//! Grok patterns (`%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:level} %{GREEDYDATA:message}`)
//! are regexes in which `%{NAME}`, `%{NAME:field}` and `%{NAME:field:int|float}` stand for
//! the built-in patterns of [`GROK_PATTERNS`]; `:int` and `:float` turn the field into a
//! number (kept as text when it does not convert). Text outside `%{...}` is regex, as in
//! Logstash (escape `[`, `.`, `(` … to match them literally).
//!
//! **Leaked names.** [`Parser::name`] returns `&'static str`, and fields borrow their
//! keys for the line's lifetime, so the format name and the capture names are leaked
//! (`Box::leak`) once, when the parser is built. Configurations are loaded rarely (at
//! start and on reload), so this costs a few bytes per custom format per load.

use std::borrow::Cow;

use logferry_shared::event::{Level, Timestamp};
use regex::Regex;

use super::{level, plain, time, ParseContext, Parsed, Parser, Value};

/// How a custom format is written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomPattern {
    /// A regex (Rust `regex` syntax) with named captures: `(?P<level>\w+)`.
    Regex(String),
    /// A grok pattern: `%{IP:client} %{WORD:method} %{GREEDYDATA:message}`.
    Grok(String),
}

/// Type conversion of a captured field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    Text,
    Int,
    Float,
}

/// A parser for one user-defined format.
#[derive(Debug, Clone)]
pub struct CustomParser {
    /// The format's name (leaked once; see the module documentation).
    name: &'static str,
    regex: Regex,
    timestamp: Option<usize>,
    level: Option<usize>,
    message: Option<usize>,
    /// Other captures: (field name, group index, conversion).
    fields: Vec<(&'static str, usize, Conversion)>,
}

/// The built-in grok patterns, in `regex` syntax. Entries may refer to each other with
/// `%{NAME}`; they use only non-capturing groups.
pub const GROK_PATTERNS: &[(&str, &str)] = &[
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("INT", r"[+-]?[0-9]+"),
    ("POSINT", r"\b[1-9][0-9]*\b"),
    ("NONNEGINT", r"\b[0-9]+\b"),
    ("NUMBER", r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"),
    ("BASE16NUM", r"[+-]?(?:0x)?[0-9A-Fa-f]+"),
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    (
        "EMAILADDRESS",
        r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.-]+@%{HOSTNAME}",
    ),
    (
        "IPV4",
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
    ),
    // Shape of an IPv6 address: eight groups, or `::` compression, optionally ending in
    // an IPv4 address. (No lookaround in `regex`, so not every rule is enforced.)
    (
        "IPV6",
        r"(?:(?:[0-9A-Fa-f]{1,4}:){6}%{IPV4}|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{0,4}::(?:[0-9A-Fa-f]{1,4}:){0,5}(?:%{IPV4}|[0-9A-Fa-f]{1,4})?)",
    ),
    ("IP", r"(?:%{IPV6}|%{IPV4})"),
    (
        "HOSTNAME",
        r"\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\.?",
    ),
    ("IPORHOST", r"(?:%{IP}|%{HOSTNAME})"),
    ("HOSTPORT", r"%{IPORHOST}:%{POSINT}"),
    (
        "TIMESTAMP_ISO8601",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    ),
    (
        "HTTPDATE",
        r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    ),
    (
        "SYSLOGTIMESTAMP",
        r"[A-Za-z]{3} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
    ),
    (
        "LOGLEVEL",
        r"(?:[Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo(?:rmation)?|INFO(?:RMATION)?|[Ww]arn(?:ing)?|WARN(?:ING)?|[Ee]rr(?:or)?|ERR(?:OR)?|[Cc]rit(?:ical)?|CRIT(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|[Ee]merg(?:ency)?|EMERG(?:ENCY)?)",
    ),
    (
        "UUID",
        r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    ),
    ("UNIXPATH", r"(?:/[\w_%!$@:.,+~-]*)+"),
    ("WINPATH", r"(?:[A-Za-z]+:|\\)(?:\\[^\\?*]*)+"),
    ("PATH", r"(?:%{UNIXPATH}|%{WINPATH})"),
    ("URIPROTO", r"[A-Za-z][A-Za-z0-9+.-]*"),
    ("URIPATH", r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+"),
    ("URIPARAM", r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*"),
    ("URIPATHPARAM", r"%{URIPATH}(?:%{URIPARAM})?"),
    ("URI", r#"%{URIPROTO}://[^\s"'<>]+"#),
    ("QS", r#"(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"#),
    ("QUOTEDSTRING", r"%{QS}"),
];

/// Internal capture-group names of grok references: `__grok0`, `__grok1`, ….
const GROUP_PREFIX: &str = "__grok";

/// How deep built-in patterns may refer to each other.
const MAX_GROK_DEPTH: usize = 8;

impl CustomParser {
    /// Builds the parser for format `name`. Errors name the problem: an unknown grok
    /// pattern, a bad conversion, a regex that does not compile, a duplicate field.
    pub fn new(name: &str, pattern: CustomPattern) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("custom format needs a name".into());
        }
        let (source, grok_fields) = match &pattern {
            CustomPattern::Regex(r) => (r.clone(), Vec::new()),
            CustomPattern::Grok(g) => {
                compile_grok(g).map_err(|e| format!("format `{name}`: {e}"))?
            }
        };
        let regex = Regex::new(&source).map_err(|e| format!("format `{name}`: bad regex: {e}"))?;
        let mut parser = CustomParser {
            name: "",
            regex,
            timestamp: None,
            level: None,
            message: None,
            fields: Vec::new(),
        };
        // Capture groups with their user-facing field names and conversions: grok
        // references map from the internal group names; other named groups (in a regex,
        // or written inline in a grok pattern) are text fields under their own name.
        let groups: Vec<(usize, String, Conversion)> = parser
            .regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n?;
                Some(match grok_fields.iter().find(|(g, _, _)| g == n) {
                    Some((_, field, conv)) => (i, field.clone(), *conv),
                    None => (i, n.to_string(), Conversion::Text),
                })
            })
            .collect();
        for (k, (_, field, _)) in groups.iter().enumerate() {
            if groups[..k].iter().any(|(_, f, _)| f == field) {
                return Err(format!(
                    "format `{name}`: field `{field}` is captured twice"
                ));
            }
        }
        // Valid: only now leak the names (see the module documentation).
        for (i, field, conv) in groups {
            match field.as_str() {
                "timestamp" => parser.timestamp = Some(i),
                "level" => parser.level = Some(i),
                "message" => parser.message = Some(i),
                _ => parser
                    .fields
                    .push((Box::leak(field.into_boxed_str()), i, conv)),
            }
        }
        parser.name = Box::leak(name.to_string().into_boxed_str());
        Ok(parser)
    }

    /// The compiled regex (for diagnostics).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }
}

impl Parser for CustomParser {
    fn name(&self) -> &'static str {
        self.name
    }

    fn parse<'a>(&self, line: &'a str, ctx: &ParseContext) -> Option<Parsed<'a>> {
        let caps = self.regex.captures(line)?;
        let mut out = Parsed {
            message: Cow::Borrowed(line),
            ..Parsed::default()
        };
        if let Some(m) = self.message.and_then(|i| caps.get(i)) {
            out.message = Cow::Borrowed(m.as_str());
        }
        if let Some(m) = self.timestamp.and_then(|i| caps.get(i)) {
            let text = m.as_str().trim();
            match parse_timestamp(text, ctx) {
                Some(t) => out.timestamp = Some(t),
                None if !text.is_empty() => out
                    .fields
                    .push((Cow::Borrowed("timestamp"), Value::Str(text.into()))),
                None => {}
            }
        }
        if let Some(m) = self.level.and_then(|i| caps.get(i)) {
            let text = m.as_str().trim();
            match parse_level(text) {
                Some(l) => out.level = Some(l),
                None if !text.is_empty() => out
                    .fields
                    .push((Cow::Borrowed("level"), Value::Str(text.into()))),
                None => {}
            }
        }
        for &(key, i, conv) in &self.fields {
            let Some(m) = caps.get(i) else { continue };
            let text = m.as_str();
            let value = match conv {
                Conversion::Text => None,
                Conversion::Int => text.trim().parse::<i64>().ok().map(Value::Int),
                Conversion::Float => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Value::Float),
            }
            .unwrap_or(Value::Str(Cow::Borrowed(text)));
            out.fields.push((Cow::Borrowed(key), value));
        }
        Some(out)
    }
}

/// A captured timestamp: the layouts of the plain parser (ISO, CLF/HTTPDATE, BSD, ctime,
/// logcat, …), then a number as epoch seconds / milliseconds / microseconds /
/// nanoseconds ([`time::epoch`]).
fn parse_timestamp(text: &str, ctx: &ParseContext) -> Option<Timestamp> {
    if let Some(t) = plain::timestamp_exact(text, ctx) {
        return Some(t);
    }
    if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) {
        return text.parse::<i64>().ok().and_then(time::epoch_int);
    }
    if text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return text.parse::<f64>().ok().and_then(time::epoch);
    }
    None
}

/// A captured level: a word, or a syslog severity digit.
fn parse_level(text: &str) -> Option<Level> {
    level::from_word(text).or_else(|| {
        text.parse::<u8>()
            .ok()
            .filter(|_| text.len() == 1)
            .and_then(level::from_syslog_severity)
    })
}

/// One `%{...}` reference found in a grok pattern.
struct GrokRef<'p> {
    /// Byte range of the whole `%{...}`.
    start: usize,
    end: usize,
    pattern: &'p str,
    field: Option<&'p str>,
    conversion: Option<&'p str>,
}

/// The next `%{...}` at or after `from`, or an error for an unterminated or empty one.
fn next_ref(src: &str, from: usize) -> Result<Option<GrokRef<'_>>, String> {
    let Some(rel) = src[from..].find("%{") else {
        return Ok(None);
    };
    let start = from + rel;
    let Some(close) = src[start..].find('}') else {
        return Err(format!("unterminated grok reference `{}`", &src[start..]));
    };
    let end = start + close + 1;
    let inner = &src[start + 2..end - 1];
    let mut parts = inner.splitn(3, ':');
    let pattern = parts.next().unwrap_or("").trim();
    let field = parts.next().map(str::trim).filter(|f| !f.is_empty());
    let conversion = parts.next().map(str::trim);
    if pattern.is_empty() {
        return Err(format!("empty grok reference `{}`", &src[start..end]));
    }
    Ok(Some(GrokRef {
        start,
        end,
        pattern,
        field,
        conversion,
    }))
}

fn builtin_pattern(name: &str) -> Option<&'static str> {
    GROK_PATTERNS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
}

/// Expands a built-in pattern body (references inside become non-capturing groups).
fn expand_builtin(body: &str, depth: usize, out: &mut String) -> Result<(), String> {
    if depth > MAX_GROK_DEPTH {
        return Err("grok patterns nest too deep".into());
    }
    let mut at = 0;
    while let Some(r) = next_ref(body, at)? {
        out.push_str(&body[at..r.start]);
        let inner = builtin_pattern(r.pattern)
            .ok_or_else(|| format!("unknown grok pattern `%{{{}}}`", r.pattern))?;
        out.push_str("(?:");
        expand_builtin(inner, depth + 1, out)?;
        out.push(')');
        at = r.end;
    }
    out.push_str(&body[at..]);
    Ok(())
}

/// Compiles a grok pattern to regex source and the list of (group name, field name,
/// conversion) it captures. Groups are named `__grok0`, `__grok1`, … internally so field
/// names are free-form.
type GrokFields = Vec<(String, String, Conversion)>;

fn compile_grok(src: &str) -> Result<(String, GrokFields), String> {
    let mut out = String::with_capacity(src.len() * 4);
    let mut fields = Vec::new();
    let mut at = 0;
    while let Some(r) = next_ref(src, at)? {
        out.push_str(&src[at..r.start]);
        let body = builtin_pattern(r.pattern)
            .ok_or_else(|| format!("unknown grok pattern `%{{{}}}`", r.pattern))?;
        let conversion = match r.conversion {
            None => Conversion::Text,
            Some("int") => Conversion::Int,
            Some("float") => Conversion::Float,
            Some(other) => {
                return Err(format!(
                    "unknown conversion `{other}` in `{}` (int or float)",
                    &src[r.start..r.end]
                ))
            }
        };
        match r.field {
            Some(field) => {
                let group = format!("{GROUP_PREFIX}{}", fields.len());
                out.push_str("(?P<");
                out.push_str(&group);
                out.push('>');
                expand_builtin(body, 1, &mut out)?;
                out.push(')');
                fields.push((group, field.to_string(), conversion));
            }
            None if conversion != Conversion::Text => {
                return Err(format!(
                    "conversion without a field name in `{}`",
                    &src[r.start..r.end]
                ))
            }
            None => {
                out.push_str("(?:");
                expand_builtin(body, 1, &mut out)?;
                out.push(')');
            }
        }
        at = r.end;
    }
    out.push_str(&src[at..]);
    Ok((out, fields))
}

#[cfg(test)]
mod tests;
